// 2D pLSTM core on CUDA: forward, backward, and the four-orientation fused
// form, all on the context's stream (kernels and their design in
// core2d_kernels.cuh).
#include "backends/cuda/cuda_internal.cuh"
#include "backends/cuda/core2d_kernels.cuh"
#include "backends/cuda/core2d_j1.cuh"

namespace {

// Workspace of the backward is 4 full state grids per orientation; orientations
// share one launch while their workspace stays under this many bytes.
const size_t C2_GROUP_BYTES = (size_t)16 << 30;

template <typename R>
C2Args<R> c2_args(const plstm_core2d_desc *d, const plstm_core2d_inputs *in, int fused)
{
    C2Args<R> a;
    a.B = d->B; a.X = d->X; a.Y = d->Y; a.DK = d->DK; a.DV = d->DV;
    a.JQ = d->JQ; a.JK = d->JK; a.JV = d->JV; a.JT = d->JT; a.JO = d->JO;
    a.gmul = fused ? 4 : 1;
    a.scale = (R)d->scale;
    a.SZ = (long long)d->DK * d->DV * d->JT;
    a.Q = (const R *)in->Q; a.K = (const R *)in->K; a.V = (const R *)in->V;
    a.Sr = (const R *)in->S_r; a.Sd = (const R *)in->S_d;
    a.Trl = (const R *)in->T_rl; a.Tdu = (const R *)in->T_du;
    a.Tdl = (const R *)in->T_dl; a.Tru = (const R *)in->T_ru;
    a.Ml = (const R *)in->M_l; a.Mu = (const R *)in->M_u; a.D = (const R *)in->D;
    a.C0l = (const R *)in->C0_left; a.C0t = (const R *)in->C0_top;
    return a;
}

plstm_status c2_launched(const char *what)
{
    return cuda_check(cudaGetLastError(), what);
}

template <typename R> bool c2_all_j1(const C2Args<R> &a)
{
    return a.JQ == 1 && a.JK == 1 && a.JV == 1 && a.JT == 1 && a.JO == 1;
}

unsigned c2_blocks(long long n, int threads) { return (unsigned)((n + threads - 1) / threads); }

template <typename R>
void c2_launch_fwd_sweep(const C2Args<R> &a, cudaStream_t s, int o0, int nslots, int full, R *Cr,
                         R *Cd, R *Yout, R *Cright, R *Cbot)
{
    dim3 grid(c2_blocks((long long)a.B * a.DK * a.DV, 128), 1, nslots);
    switch (a.JT) {
    case 1:
        if (c2_all_j1(a))
            c2_fwd_sweep1<R><<<grid, 128, 0, s>>>(a, o0, full, Cr, Cd, Yout, Cright, Cbot);
        else
            c2_fwd_sweep<R, 1><<<grid, 128, 0, s>>>(a, o0, full, Cr, Cd, Yout, Cright, Cbot);
        break;
    case 2: c2_fwd_sweep<R, 2><<<grid, 128, 0, s>>>(a, o0, full, Cr, Cd, Yout, Cright, Cbot); break;
    case 4: c2_fwd_sweep<R, 4><<<grid, 128, 0, s>>>(a, o0, full, Cr, Cd, Yout, Cright, Cbot); break;
    default: c2_fwd_sweep<R, 0><<<grid, 128, 0, s>>>(a, o0, full, Cr, Cd, Yout, Cright, Cbot); break;
    }
}

template <typename R>
void c2_launch_bwd_sweep(const C2Args<R> &a, cudaStream_t s, int o0, int nslots, const R *dY,
                         const R *dCr, const R *dCb, R *Al, R *Au, R *dC0l, R *dC0t)
{
    dim3 grid(c2_blocks((long long)a.B * a.DK * a.DV, 128), 1, nslots);
    switch (a.JT) {
    case 1:
        if (c2_all_j1(a))
            c2_bwd_sweep1<R><<<grid, 128, 0, s>>>(a, o0, dY, dCr, dCb, Al, Au, dC0l, dC0t);
        else
            c2_bwd_sweep<R, 1><<<grid, 128, 0, s>>>(a, o0, dY, dCr, dCb, Al, Au, dC0l, dC0t);
        break;
    case 2: c2_bwd_sweep<R, 2><<<grid, 128, 0, s>>>(a, o0, dY, dCr, dCb, Al, Au, dC0l, dC0t); break;
    case 4: c2_bwd_sweep<R, 4><<<grid, 128, 0, s>>>(a, o0, dY, dCr, dCb, Al, Au, dC0l, dC0t); break;
    default: c2_bwd_sweep<R, 0><<<grid, 128, 0, s>>>(a, o0, dY, dCr, dCb, Al, Au, dC0l, dC0t); break;
    }
}

plstm_status c2_check(const plstm_core2d_desc *d)
{
    if (d->dtype != PLSTM_F32 && d->dtype != PLSTM_F64)
        return plstm_fail(PLSTM_ERR_UNSUPPORTED, "core2d (cuda): dtype %s not supported",
                          plstm_dtype_name(d->dtype));
    if (d->JT > C2_JT_MAX)
        return plstm_fail(PLSTM_ERR_UNSUPPORTED, "core2d (cuda): JT = %d, at most %d supported",
                          d->JT, C2_JT_MAX);
    return PLSTM_OK;
}

template <typename R>
plstm_status c2_forward(plstm_context *ctx, const plstm_core2d_desc *d,
                        const plstm_core2d_inputs *in, const plstm_core2d_outputs *out, int fused)
{
    const C2Args<R> a = c2_args<R>(d, in, fused);
    cudaStream_t s = cuda_st(ctx)->stream;
    const int nslots = fused ? 4 : 1;
    const size_t line = (size_t)a.B * a.Y * (size_t)a.SZ; // elements per orientation
    void *ws;
    PLSTM_TRY(plstm_cuda_workspace(ctx, nslots * line * sizeof(R), &ws));
    R *Yout = (R *)out->Y;
    const long long ny = (long long)a.B * a.X * a.Y * a.DV * a.JO;
    c2_direct<R><<<c2_blocks(ny, 256), 256, 0, s>>>(a, 1, Yout);
    PLSTM_TRY(c2_launched("core2d direct kernel"));
    c2_launch_fwd_sweep<R>(a, s, 0, nslots, 0, (R *)ws, nullptr, Yout, (R *)out->C_right,
                           (R *)out->C_bottom);
    return c2_launched("core2d forward sweep");
}

template <typename R>
plstm_status c2_backward(plstm_context *ctx, const plstm_core2d_desc *d,
                         const plstm_core2d_inputs *in, const plstm_core2d_cotangents *dout,
                         const plstm_core2d_grads *grad, int fused)
{
    const C2Args<R> a = c2_args<R>(d, in, fused);
    cudaStream_t s = cuda_st(ctx)->stream;
    const int norient = fused ? 4 : 1;
    const size_t full = (size_t)a.B * a.X * a.Y * (size_t)a.SZ; // elements of one state grid
    const size_t per = 4 * full * sizeof(R);
    int group = (int)(C2_GROUP_BYTES / per);
    group = group < 1 ? 1 : group > norient ? norient : group;
    void *ws;
    PLSTM_TRY(plstm_cuda_workspace(ctx, group * per, &ws));
    R *Cr = (R *)ws, *Cd = Cr + group * full, *Al = Cd + group * full, *Au = Al + group * full;
    const R *dY = (const R *)dout->Y, *dCr = (const R *)dout->C_right,
            *dCb = (const R *)dout->C_bottom;
    C2Grads<R> g = {(R *)grad->Q,   (R *)grad->K,    (R *)grad->V,    (R *)grad->S_r,
                    (R *)grad->S_d, (R *)grad->T_rl, (R *)grad->T_du, (R *)grad->T_dl,
                    (R *)grad->T_ru, (R *)grad->M_l, (R *)grad->M_u,  (R *)grad->D};
    const int DK = a.DK, DV = a.DV, JQ = a.JQ, JK = a.JK, JV = a.JV, JO = a.JO;
    const size_t smem =
        sizeof(R) * (size_t)(33 + DK * JQ + DK * JK + DV * JV + JQ * JK + JO * JV);
    if (smem > 48 * 1024)
        return plstm_fail(PLSTM_ERR_UNSUPPORTED, "core2d backward (cuda): DK/DV/J too large");
    const unsigned nodes = (unsigned)((size_t)a.B * a.X * a.Y);
    for (int o0 = 0; o0 < norient; o0 += group) {
        const int n = o0 + group <= norient ? group : norient - o0;
        c2_launch_fwd_sweep<R>(a, s, o0, n, 1, Cr, Cd, nullptr, nullptr, nullptr);
        PLSTM_TRY(c2_launched("core2d backward: forward sweep"));
        c2_launch_bwd_sweep<R>(a, s, o0, n, dY, dCr, dCb, Al, Au,
                               fused ? nullptr : (R *)grad->C0_left,
                               fused ? nullptr : (R *)grad->C0_top);
        PLSTM_TRY(c2_launched("core2d backward: adjoint sweep"));
        if (c2_all_j1(a) && a.DK + a.DV <= 4 * 128)
            c2_node_grads1<R><<<nodes, 128, 0, s>>>(a, o0, n, Cr, Cd, Al, Au, dY, dCr, dCb, g,
                                                    o0 > 0);
        else
            c2_node_grads<R><<<nodes, 128, smem, s>>>(a, o0, n, Cr, Cd, Al, Au, dY, dCr, dCb, g,
                                                      o0 > 0);
        PLSTM_TRY(c2_launched("core2d backward: node gradients"));
    }
    return PLSTM_OK;
}

} // namespace

extern "C" plstm_status plstm_cuda_core2d_forward(plstm_context *ctx, const plstm_core2d_desc *d,
                                                  const plstm_core2d_inputs *in,
                                                  const plstm_core2d_outputs *out)
{
    PLSTM_TRY(c2_check(d));
    return d->dtype == PLSTM_F32 ? c2_forward<float>(ctx, d, in, out, 0)
                                 : c2_forward<double>(ctx, d, in, out, 0);
}

extern "C" plstm_status plstm_cuda_core2d_backward(plstm_context *ctx, const plstm_core2d_desc *d,
                                                   const plstm_core2d_inputs *in,
                                                   const plstm_core2d_cotangents *dout,
                                                   const plstm_core2d_grads *grad)
{
    PLSTM_TRY(c2_check(d));
    return d->dtype == PLSTM_F32 ? c2_backward<float>(ctx, d, in, dout, grad, 0)
                                 : c2_backward<double>(ctx, d, in, dout, grad, 0);
}

extern "C" plstm_status plstm_cuda_core2d_fused4_forward(plstm_context *ctx,
                                                         const plstm_core2d_desc *d,
                                                         const plstm_core2d_inputs *in,
                                                         const plstm_core2d_outputs *out)
{
    PLSTM_TRY(c2_check(d));
    return d->dtype == PLSTM_F32 ? c2_forward<float>(ctx, d, in, out, 1)
                                 : c2_forward<double>(ctx, d, in, out, 1);
}

extern "C" plstm_status plstm_cuda_core2d_fused4_backward(plstm_context *ctx,
                                                          const plstm_core2d_desc *d,
                                                          const plstm_core2d_inputs *in,
                                                          const plstm_core2d_cotangents *dout,
                                                          const plstm_core2d_grads *grad)
{
    PLSTM_TRY(c2_check(d));
    return d->dtype == PLSTM_F32 ? c2_backward<float>(ctx, d, in, dout, grad, 1)
                                 : c2_backward<double>(ctx, d, in, dout, grad, 1);
}
