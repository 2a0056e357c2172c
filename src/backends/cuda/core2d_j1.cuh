// All-J = 1 kernels of the 2D core (the vision model's case). Same thread
// mapping and storage as core2d_kernels.cuh, but each sweep first loads the
// inputs of C2_CH consecutive nodes of a row (all independent of the
// recurrence) and then runs the C2_CH dependent steps: one memory round trip
// per C2_CH nodes instead of one per node, which is what bounds the generic
// sweep (few warps per SM, each waiting on its loads every step).
#ifndef PLSTM_CUDA_CORE2D_J1_CUH
#define PLSTM_CUDA_CORE2D_J1_CUH

#include "backends/cuda/core2d_kernels.cuh"

#define C2_CH 8

template <typename R>
__global__ void __launch_bounds__(128)
c2_fwd_sweep1(const C2Args<R> a, int o0, int full, R *Cr, R *Cd, R *Yout, R *Cright, R *Cbot)
{
    const long long ent = (long long)a.DK * a.DV, total = (long long)a.B * ent;
    long long gid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const bool live = gid < total;
    if (!live)
        gid = total - 1;
    const int b = (int)(gid / ent), e = (int)(gid % ent), v = e / a.DK, d = e % a.DK;
    const int pub = d * a.DV + v;
    const int slot = blockIdx.z, ori = o0 + slot, fx = ori & 1, fy = ori >> 1;
    const size_t SZ = (size_t)a.SZ, grid = (size_t)a.X * a.Y;
    R *Crs = Cr + (size_t)slot * a.B * (full ? grid : (size_t)a.Y) * SZ;
    R *Cds = full ? Cd + (size_t)slot * a.B * grid * SZ : nullptr;
    const int seg = c2_seg(a.DK);
    const size_t goff = ((size_t)b * a.gmul + (a.gmul > 1 ? ori : 0)) * grid; // gate batch offset

    R cd = 0;
    for (int x = 0; x < a.X; x++) {
        const int xp = fx ? a.X - 1 - x : x;
        cd = a.C0t ? c2_ld(a.C0t + ((size_t)b * a.X + x) * SZ + pub) : R(0);
        const size_t nrow = ((size_t)b * a.X + xp) * a.Y, grow = goff + (size_t)xp * a.Y;
        for (int y0 = 0; y0 < a.Y; y0 += C2_CH) {
            R kv[C2_CH], qd[C2_CH], sr[C2_CH], sd[C2_CH], trl[C2_CH], tdu[C2_CH], tdl[C2_CH],
                tru[C2_CH], ml[C2_CH], mu[C2_CH], l[C2_CH];
#pragma unroll
            for (int j = 0; j < C2_CH; j++) {
                const int y = y0 + j < a.Y ? y0 + j : a.Y - 1; // clamp: loads stay in range
                const int yp = fy ? a.Y - 1 - y : y;
                const size_t ni = nrow + yp, gi = grow + yp;
                kv[j] = c2_ld(a.K + ni * a.DK + d) * c2_ld(a.V + ni * a.DV + v);
                qd[j] = full ? R(0) : a.scale * c2_ld(a.Q + ni * a.DK + d);
                sr[j] = c2_ld(a.Sr + gi);
                sd[j] = c2_ld(a.Sd + gi);
                trl[j] = c2_ld(a.Trl + gi);
                tdu[j] = c2_ld(a.Tdu + gi);
                tdl[j] = a.Tdl ? c2_ld(a.Tdl + gi) : R(0);
                tru[j] = a.Tru ? c2_ld(a.Tru + gi) : R(0);
                ml[j] = full ? R(0) : c2_ld(a.Ml + gi);
                mu[j] = full ? R(0) : c2_ld(a.Mu + gi);
                if (x == 0)
                    l[j] = a.C0l ? c2_ld(a.C0l + ((size_t)b * a.Y + y) * SZ + pub) : R(0);
                else
                    l[j] = Crs[(full ? ((size_t)b * a.X + x - 1) * a.Y + y : (size_t)b * a.Y + y) * SZ + e];
            }
#pragma unroll
            for (int j = 0; j < C2_CH; j++) {
                const int y = y0 + j;
                if (y >= a.Y)
                    break;
                const R r = sr[j] * kv[j] + trl[j] * l[j] + tru[j] * cd;
                const R dn = sd[j] * kv[j] + tdu[j] * cd + tdl[j] * l[j];
                if (!full) {
                    R m = qd[j] * (ml[j] * l[j] + mu[j] * cd);
                    for (int off = seg >> 1; off > 0; off >>= 1)
                        m += __shfl_xor_sync(0xffffffffu, m, off);
                    const int yp = fy ? a.Y - 1 - y : y;
                    if (live && d % seg == 0)
                        atomicAdd(Yout + (nrow + yp) * a.DV + v, m);
                }
                if (live) {
                    const size_t rpos = full ? ((size_t)b * a.X + x) * a.Y + y : (size_t)b * a.Y + y;
                    Crs[rpos * SZ + e] = r;
                    if (full)
                        Cds[rpos * SZ + e] = dn;
                    if (Cright && x == a.X - 1)
                        Cright[((size_t)b * a.Y + y) * SZ + pub] = r;
                    if (Cbot && y == a.Y - 1)
                        Cbot[((size_t)b * a.X + x) * SZ + pub] = dn;
                }
                cd = dn;
            }
        }
    }
}

template <typename R>
__global__ void __launch_bounds__(128)
c2_bwd_sweep1(const C2Args<R> a, int o0, const R *dY, const R *dCr, const R *dCb, R *Al, R *Au,
              R *dC0l, R *dC0t)
{
    const long long ent = (long long)a.DK * a.DV, total = (long long)a.B * ent;
    const long long gid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (gid >= total)
        return;
    const int b = (int)(gid / ent), e = (int)(gid % ent), v = e / a.DK, d = e % a.DK;
    const int pub = d * a.DV + v;
    const int slot = blockIdx.z, ori = o0 + slot, fx = ori & 1, fy = ori >> 1;
    const size_t SZ = (size_t)a.SZ, grid = (size_t)a.X * a.Y;
    R *Als = Al + (size_t)slot * a.B * grid * SZ, *Aus = Au + (size_t)slot * a.B * grid * SZ;
    const size_t goff = ((size_t)b * a.gmul + (a.gmul > 1 ? ori : 0)) * grid;

    R gd = 0;
    for (int x = a.X - 1; x >= 0; x--) {
        const int xp = fx ? a.X - 1 - x : x;
        gd = dCb ? c2_ld(dCb + ((size_t)b * a.X + x) * SZ + pub) : R(0);
        const size_t nrow = ((size_t)b * a.X + xp) * a.Y, grow = goff + (size_t)xp * a.Y;
        const size_t prow = ((size_t)b * a.X + x) * a.Y; // logical row in Al/Au
        for (int y0 = a.Y - 1; y0 >= 0; y0 -= C2_CH) {
            R gr[C2_CH], trl[C2_CH], tdu[C2_CH], tdl[C2_CH], tru[C2_CH], cl[C2_CH], cu[C2_CH];
#pragma unroll
            for (int j = 0; j < C2_CH; j++) {
                const int y = y0 - j >= 0 ? y0 - j : 0;
                const int yp = fy ? a.Y - 1 - y : y;
                const size_t ni = nrow + yp, gi = grow + yp;
                const R qg = a.scale * c2_ld(a.Q + ni * a.DK + d) * c2_ld(dY + ni * a.DV + v);
                cl[j] = qg * c2_ld(a.Ml + gi);
                cu[j] = qg * c2_ld(a.Mu + gi);
                trl[j] = c2_ld(a.Trl + gi);
                tdu[j] = c2_ld(a.Tdu + gi);
                tdl[j] = a.Tdl ? c2_ld(a.Tdl + gi) : R(0);
                tru[j] = a.Tru ? c2_ld(a.Tru + gi) : R(0);
                if (x == a.X - 1)
                    gr[j] = dCr ? c2_ld(dCr + ((size_t)b * a.Y + y) * SZ + pub) : R(0);
                else
                    gr[j] = Als[(prow + a.Y + y) * SZ + e];
            }
#pragma unroll
            for (int j = 0; j < C2_CH; j++) {
                const int y = y0 - j;
                if (y < 0)
                    break;
                const R al = trl[j] * gr[j] + tdl[j] * gd + cl[j];
                const R an = tru[j] * gr[j] + tdu[j] * gd + cu[j];
                Als[(prow + y) * SZ + e] = al;
                Aus[(prow + y) * SZ + e] = an;
                if (dC0l && x == 0)
                    dC0l[((size_t)b * a.Y + y) * SZ + pub] = al;
                if (dC0t && y == 0)
                    dC0t[((size_t)b * a.X + x) * SZ + pub] = an;
                gd = an;
            }
        }
    }
}

// Sums N values over the block; every thread gets the totals. red: 33·N.
template <typename R, int N> __device__ void c2_block_sum_n(R (&x)[N], R *red)
{
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
#pragma unroll
    for (int i = 0; i < N; i++) {
        for (int off = 16; off > 0; off >>= 1)
            x[i] += __shfl_xor_sync(0xffffffffu, x[i], off);
        if (lane == 0)
            red[i * 32 + w] = x[i];
    }
    __syncthreads();
    if (w == 0) {
#pragma unroll
        for (int i = 0; i < N; i++) {
            R s = lane < nw ? red[i * 32 + lane] : R(0);
            for (int off = 16; off > 0; off >>= 1)
                s += __shfl_xor_sync(0xffffffffu, s, off);
            if (lane == 0)
                red[32 * N + i] = s;
        }
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < N; i++)
        x[i] = red[32 * N + i];
    __syncthreads();
}

// Per-node gradients, all J = 1: one pass over the node's DK·DV entries for the
// eight gate sums (plus q·k and dy·v for the direct term), one block reduction.
template <typename R>
__global__ void __launch_bounds__(128)
c2_node_grads1(const C2Args<R> a, int o0, int nslots, const R *Cr, const R *Cd, const R *Al,
               const R *Au, const R *dY, const R *dCr, const R *dCb, C2Grads<R> g, int accumulate)
{
    enum { NS = 10 };
    __shared__ R red[33 * NS];
    const int DK = a.DK, DV = a.DV, tid = threadIdx.x, nth = blockDim.x, ent = DK * DV;
    const size_t ni = blockIdx.x;
    const int b = (int)(ni / ((size_t)a.X * a.Y)), xp = (int)(ni / a.Y % a.X), yp = (int)(ni % a.Y);
    const size_t SZ = (size_t)a.SZ, grid = (size_t)a.X * a.Y;
    const R *q = a.Q + ni * DK, *k = a.K + ni * DK, *vv = a.V + ni * DV, *dy = dY + ni * DV;
    const R scale = a.scale;
    // thread-owned accumulators of dq/dk (index i < DK) and dv (i - DK < DV)
    const int nown = (DK + DV + nth - 1) / nth;
    R acc1[4] = {0, 0, 0, 0}, acc2[4] = {0, 0, 0, 0};

    for (int s = 0; s < nslots; s++) {
        const int ori = o0 + s, fx = ori & 1, fy = ori >> 1;
        const int x = fx ? a.X - 1 - xp : xp, y = fy ? a.Y - 1 - yp : yp;
        const size_t base = (size_t)s * a.B * grid, pos = ((size_t)b * a.X + x) * a.Y + y;
        const size_t gi = c2_gnode(a, b, ori, xp, yp);
        C2State<R> L, U, Gr, Gd;
        if (x > 0) L = {Cr + (base + pos - a.Y) * SZ, 0};
        else L = {a.C0l ? a.C0l + ((size_t)b * a.Y + y) * SZ : nullptr, 1};
        if (y > 0) U = {Cd + (base + pos - 1) * SZ, 0};
        else U = {a.C0t ? a.C0t + ((size_t)b * a.X + x) * SZ : nullptr, 1};
        if (x < a.X - 1) Gr = {Al + (base + pos + a.Y) * SZ, 0};
        else Gr = {dCr ? dCr + ((size_t)b * a.Y + y) * SZ : nullptr, 1};
        if (y < a.Y - 1) Gd = {Au + (base + pos + 1) * SZ, 0};
        else Gd = {dCb ? dCb + ((size_t)b * a.X + x) * SZ : nullptr, 1};
        const bool direct = o0 == 0 && s == 0;

        R sum[NS];
#pragma unroll
        for (int i = 0; i < NS; i++)
            sum[i] = 0;
        for (int i = tid; i < ent; i += nth) {
            const int d = i % DK, v = i / DK;
            const R l = c2_st(L, a, 1, d, v, 0), u = c2_st(U, a, 1, d, v, 0);
            const R gr = c2_st(Gr, a, 1, d, v, 0), gd = c2_st(Gd, a, 1, d, v, 0);
            const R kv = c2_ld(k + d) * c2_ld(vv + v), qy = c2_ld(q + d) * c2_ld(dy + v);
            sum[0] += gr * l; sum[1] += gr * u; sum[2] += gd * l; sum[3] += gd * u;
            sum[4] += gr * kv; sum[5] += gd * kv; sum[6] += qy * l; sum[7] += qy * u;
        }
        if (direct) {
            for (int d = tid; d < DK; d += nth)
                sum[8] += c2_ld(q + d) * c2_ld(k + d);
            for (int v = tid; v < DV; v += nth)
                sum[9] += c2_ld(dy + v) * c2_ld(vv + v);
        }
        c2_block_sum_n<R, NS>(sum, red);
        if (tid == 0) {
            R *outs[8] = {g.Trl, g.Tru, g.Tdl, g.Tdu, g.Sr, g.Sd, g.Ml, g.Mu};
            for (int i = 0; i < 8; i++)
                if (outs[i])
                    outs[i][gi] = i >= 6 ? scale * sum[i] : sum[i];
            if (direct && g.D)
                g.D[ni] = scale * sum[8] * sum[9];
        }
        const R ml = c2_ld(a.Ml + gi), mu = c2_ld(a.Mu + gi);
        const R sr = c2_ld(a.Sr + gi), sd = c2_ld(a.Sd + gi);
        const R Dn = c2_ld(a.D + ni), dqk = scale * Dn * sum[9], cdv = scale * Dn * sum[8];
        for (int w = 0; w < nown; w++) {
            const int i = tid + w * nth;
            if (i < DK) { // dq, dk for d = i
                const int d = i;
                R cl = 0, cu = 0, gv = 0;
                for (int v = 0; v < DV; v++) {
                    const R dyv = c2_ld(dy + v), vv_ = c2_ld(vv + v);
                    cl += c2_st(L, a, 1, d, v, 0) * dyv;
                    cu += c2_st(U, a, 1, d, v, 0) * dyv;
                    gv += (sr * c2_st(Gr, a, 1, d, v, 0) + sd * c2_st(Gd, a, 1, d, v, 0)) * vv_;
                }
                acc1[w] += scale * (ml * cl + mu * cu) + (direct ? dqk * c2_ld(k + d) : R(0));
                acc2[w] += gv + (direct ? dqk * c2_ld(q + d) : R(0));
            } else if (i < DK + DV) { // dv for v = i - DK
                const int v = i - DK;
                R gk = 0;
                for (int d = 0; d < DK; d++)
                    gk += (sr * c2_st(Gr, a, 1, d, v, 0) + sd * c2_st(Gd, a, 1, d, v, 0)) *
                          c2_ld(k + d);
                acc1[w] += gk + (direct ? cdv * c2_ld(dy + v) : R(0));
            }
        }
    }
    for (int w = 0; w < nown; w++) {
        const int i = tid + w * nth;
        if (i < DK) {
            if (g.Q) g.Q[ni * DK + i] = accumulate ? g.Q[ni * DK + i] + acc1[w] : acc1[w];
            if (g.K) g.K[ni * DK + i] = accumulate ? g.K[ni * DK + i] + acc2[w] : acc2[w];
        } else if (i < DK + DV && g.V) {
            const size_t j = ni * DV + (i - DK);
            g.V[j] = accumulate ? g.V[j] + acc1[w] : acc1[w];
        }
    }
}

#endif
