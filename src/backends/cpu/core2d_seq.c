/* The defining sequential 2D recurrence (plstm-math.md §3.2) and its adjoint
 * on the CPU, parallel over the batch. The real-type code is in
 * core2d_seq_impl.h, included once for float and once for double. */
#include "backends/cpu/cpu_ops.h"
#include "core/status_internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef struct seq2d_dims {
    int B, X, Y, DK, DV, JQ, JK, JV, JT, JO;
    size_t N, SZ;                          /* DK·DV, one state DK·DV·JT */
    size_t nq, nk, nv, ns, nt, nm, nd, ny; /* elements per node         */
    double scale;
    int j1;                                /* all J = 1: fused kernels  */
} seq2d_dims;

static seq2d_dims seq2d_make_dims(const plstm_core2d_desc *d)
{
    seq2d_dims m = {.B = d->B, .X = d->X, .Y = d->Y, .DK = d->DK, .DV = d->DV, .JQ = d->JQ,
                    .JK = d->JK, .JV = d->JV, .JT = d->JT, .JO = d->JO, .scale = d->scale};
    m.N = (size_t)d->DK * d->DV;
    m.SZ = m.N * d->JT;
    m.nq = (size_t)d->DK * d->JQ;
    m.nk = (size_t)d->DK * d->JK;
    m.nv = (size_t)d->DV * d->JV;
    m.ns = (size_t)d->JT * d->JK * d->JV;
    m.nt = (size_t)d->JT * d->JT;
    m.nm = (size_t)d->JO * d->JQ * d->JT;
    m.nd = (size_t)d->JO * d->JQ * d->JK * d->JV;
    m.ny = (size_t)d->DV * d->JO;
    m.j1 = d->JQ == 1 && d->JK == 1 && d->JV == 1 && d->JT == 1 && d->JO == 1;
    return m;
}

static int seq2d_threads(const plstm_context *ctx, int B)
{
    int t = ctx && ctx->threads > 0 ? ctx->threads : omp_get_max_threads();
    return t < B ? t : B;
}

#define REAL float
#define FN(x) seq2d_##x##_f32
#include "backends/cpu/core2d_seq_impl.h"
#undef REAL
#undef FN

#define REAL double
#define FN(x) seq2d_##x##_f64
#include "backends/cpu/core2d_seq_impl.h"
#undef REAL
#undef FN

plstm_status cpu_core2d_seq_forward(plstm_context *ctx, const plstm_core2d_desc *d,
                                    const plstm_core2d_inputs *in, const plstm_core2d_outputs *out)
{
    const seq2d_dims m = seq2d_make_dims(d);
    const int threads = seq2d_threads(ctx, d->B);
    if (d->dtype == PLSTM_F32)
        return seq2d_forward_f32(&m, threads, in, out);
    if (d->dtype == PLSTM_F64)
        return seq2d_forward_f64(&m, threads, in, out);
    return plstm_fail(PLSTM_ERR_UNSUPPORTED, "core2d sequential: dtype %s not supported",
                      plstm_dtype_name(d->dtype));
}

plstm_status cpu_core2d_seq_backward(plstm_context *ctx, const plstm_core2d_desc *d,
                                     const plstm_core2d_inputs *in,
                                     const plstm_core2d_cotangents *dout,
                                     const plstm_core2d_grads *grad)
{
    const seq2d_dims m = seq2d_make_dims(d);
    const int threads = seq2d_threads(ctx, d->B);
    if (d->dtype == PLSTM_F32)
        return seq2d_backward_f32(&m, threads, in, dout, grad);
    if (d->dtype == PLSTM_F64)
        return seq2d_backward_f64(&m, threads, in, dout, grad);
    return plstm_fail(PLSTM_ERR_UNSUPPORTED, "core2d sequential: dtype %s not supported",
                      plstm_dtype_name(d->dtype));
}
