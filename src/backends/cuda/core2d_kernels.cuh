// Kernels of the 2D pLSTM core on CUDA (plstm-math.md §3.2, §3.7).
//
// Every (d, v) entry of a state evolves on its own: transitions mix only the
// JT index, the source write is k[d]·v[v]-separable. So each sweep gives one
// thread a (b, d, v) entry (all JT slots) and walks the whole grid in row-major
// order without any synchronisation. Only the mark read (a sum over d, done
// with warp shuffles + atomics) and the parameter gradients (sums over d and
// v, done per node in a separate fully parallel kernel) couple entries.
//
// Orientations (fused4): blockIdx.z is an orientation slot; the sweep runs in
// the flipped ("logical") frame, (x, y) -> physical (X-1-x or x, ...), so no
// tensor is copied. Internal state layout: entry e = v·DK + d (d fastest, so
// a warp's loads are contiguous), element (e, t) at e·JT + t. Public border
// states (C0_*, C_right, C_bottom and their gradients) are [DK, DV, JT].
#ifndef PLSTM_CUDA_CORE2D_KERNELS_CUH
#define PLSTM_CUDA_CORE2D_KERNELS_CUH

#include <cuda_runtime.h>
#include <stddef.h>

#define C2_JT_MAX 16

template <typename R> struct C2Args {
    int B, X, Y, DK, DV, JQ, JK, JV, JT, JO;
    int gmul;      // 1, or 4 when S/T/M carry an orientation axis [B,4,X,Y,...]
    R scale;
    long long SZ;  // DK·DV·JT elements per state
    const R *Q, *K, *V, *Sr, *Sd, *Trl, *Tdu, *Tdl, *Tru, *Ml, *Mu, *D, *C0l, *C0t;
};

template <typename R> struct C2Grads {
    R *Q, *K, *V, *Sr, *Sd, *Trl, *Tdu, *Tdl, *Tru, *Ml, *Mu, *D;
};

template <typename R> __device__ __forceinline__ R c2_ld(const R *p) { return __ldg(p); }

// Node index of physical (xp, yp) in Q/K/V/D/Y; gate node index (orientation ori).
template <typename R>
__device__ __forceinline__ size_t c2_node(const C2Args<R> &a, int b, int xp, int yp)
{
    return ((size_t)b * a.X + xp) * a.Y + yp;
}
template <typename R>
__device__ __forceinline__ size_t c2_gnode(const C2Args<R> &a, int b, int ori, int xp, int yp)
{
    return (((size_t)b * a.gmul + (a.gmul > 1 ? ori : 0)) * a.X + xp) * a.Y + yp;
}

// Lanes that share (b, v) and differ in d form aligned segments of `seg`
// lanes when DK is a power of two <= 32 (or a multiple of 32); else seg = 1.
__host__ __device__ inline int c2_seg(int DK)
{
    if (DK <= 32 && (DK & (DK - 1)) == 0)
        return DK;
    return DK % 32 == 0 ? 32 : 1;
}

// ---- forward sweep ---------------------------------------------------------
// full = 1: stores every node's outgoing states Cr/Cd ([slot][B][X][Y][SZ],
//           internal layout) for the backward.
// full = 0: Cr is a line buffer [slot][B][Y][SZ]; the mark read is added into
//           Yout (atomics; Yout holds the direct term beforehand).
template <typename R, int JTC>
__global__ void __launch_bounds__(128)
c2_fwd_sweep(const C2Args<R> a, int o0, int full, R *Cr, R *Cd, R *Yout, R *Cright, R *Cbot)
{
    constexpr int NT = JTC > 0 ? JTC : C2_JT_MAX;
    const int JT = JTC > 0 ? JTC : a.JT;
    const long long ent = (long long)a.DK * a.DV, total = (long long)a.B * ent;
    long long gid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const bool live = gid < total;
    if (!live)
        gid = total - 1; // idle lanes follow along so the shuffles stay convergent
    const int b = (int)(gid / ent), e = (int)(gid % ent), v = e / a.DK, d = e % a.DK;
    const int pub = (d * a.DV + v) * JT; // offset in a public-layout state
    const int slot = blockIdx.z, ori = o0 + slot, fx = ori & 1, fy = ori >> 1;
    const size_t SZ = (size_t)a.SZ, grid = (size_t)a.X * a.Y;
    R *Crs = Cr + (size_t)slot * a.B * (full ? grid : (size_t)a.Y) * SZ;
    R *Cds = full ? Cd + (size_t)slot * a.B * grid * SZ : nullptr;
    const int seg = c2_seg(a.DK);
    const size_t nq = (size_t)a.DK * a.JQ, nk = (size_t)a.DK * a.JK, nv = (size_t)a.DV * a.JV;
    const size_t ns = (size_t)JT * a.JK * a.JV, nt = (size_t)JT * JT, nm = (size_t)a.JO * a.JQ * JT;
    const size_t ny = (size_t)a.DV * a.JO;

    R cd[NT];
    for (int x = 0; x < a.X; x++) {
        const int xp = fx ? a.X - 1 - x : x;
        for (int t = 0; t < JT; t++)
            cd[t] = a.C0t ? c2_ld(a.C0t + ((size_t)b * a.X + x) * SZ + pub + t) : R(0);
        for (int y = 0; y < a.Y; y++) {
            const int yp = fy ? a.Y - 1 - y : y;
            const size_t ni = c2_node(a, b, xp, yp), gi = c2_gnode(a, b, ori, xp, yp);
            // line / full-storage position of C^r_{x,y} and of C^r_{x-1,y}
            const size_t rpos = full ? ((size_t)b * a.X + x) * a.Y + y : (size_t)b * a.Y + y;
            R l[NT];
            if (x == 0) {
                for (int t = 0; t < JT; t++)
                    l[t] = a.C0l ? c2_ld(a.C0l + ((size_t)b * a.Y + y) * SZ + pub + t) : R(0);
            } else {
                const R *src = Crs + (full ? rpos - a.Y : rpos) * SZ + (size_t)e * JT;
                for (int t = 0; t < JT; t++)
                    l[t] = src[t];
            }
            const R *Sr = a.Sr + gi * ns, *Sd = a.Sd + gi * ns;
            const R *Trl = a.Trl + gi * nt, *Tdu = a.Tdu + gi * nt;
            const R *Tdl = a.Tdl ? a.Tdl + gi * nt : nullptr, *Tru = a.Tru ? a.Tru + gi * nt : nullptr;
            R r[NT], dn[NT];
            for (int t = 0; t < JT; t++)
                r[t] = dn[t] = 0;
            // source S ⋄ k v
            for (int ka = 0; ka < a.JK; ka++) {
                const R kd = c2_ld(a.K + ni * nk + (size_t)d * a.JK + ka);
                for (int c = 0; c < a.JV; c++) {
                    const R kv = kd * c2_ld(a.V + ni * nv + (size_t)v * a.JV + c);
                    for (int t = 0; t < JT; t++) {
                        r[t] += c2_ld(Sr + ((size_t)t * a.JK + ka) * a.JV + c) * kv;
                        dn[t] += c2_ld(Sd + ((size_t)t * a.JK + ka) * a.JV + c) * kv;
                    }
                }
            }
            // transitions (row = outgoing, column = incoming)
            for (int t = 0; t < JT; t++)
                for (int u = 0; u < JT; u++) {
                    r[t] += c2_ld(Trl + t * JT + u) * l[u];
                    dn[t] += c2_ld(Tdu + t * JT + u) * cd[u];
                    if (Tru)
                        r[t] += c2_ld(Tru + t * JT + u) * cd[u];
                    if (Tdl)
                        dn[t] += c2_ld(Tdl + t * JT + u) * l[u];
                }
            if (!full) {
                // mark read Σ_{d,p,t} q[d,p] M[o,p,t] C[d,v,t] for both inputs
                const R *Ml = a.Ml + gi * nm, *Mu = a.Mu + gi * nm;
                for (int o = 0; o < a.JO; o++) {
                    R m = 0;
                    for (int p = 0; p < a.JQ; p++) {
                        const R qd = c2_ld(a.Q + ni * nq + (size_t)d * a.JQ + p);
                        R s = 0;
                        for (int t = 0; t < JT; t++)
                            s += c2_ld(Ml + ((size_t)o * a.JQ + p) * JT + t) * l[t] +
                                 c2_ld(Mu + ((size_t)o * a.JQ + p) * JT + t) * cd[t];
                        m += qd * s;
                    }
                    for (int off = seg >> 1; off > 0; off >>= 1)
                        m += __shfl_xor_sync(0xffffffffu, m, off);
                    if (live && d % seg == 0)
                        atomicAdd(Yout + ni * ny + (size_t)v * a.JO + o, a.scale * m);
                }
            }
            if (live) {
                R *dst = Crs + rpos * SZ + (size_t)e * JT;
                for (int t = 0; t < JT; t++)
                    dst[t] = r[t];
                if (full) {
                    R *dd = Cds + (((size_t)b * a.X + x) * a.Y + y) * SZ + (size_t)e * JT;
                    for (int t = 0; t < JT; t++)
                        dd[t] = dn[t];
                }
                if (Cright && x == a.X - 1)
                    for (int t = 0; t < JT; t++)
                        Cright[((size_t)b * a.Y + y) * SZ + pub + t] = r[t];
                if (Cbot && y == a.Y - 1)
                    for (int t = 0; t < JT; t++)
                        Cbot[((size_t)b * a.X + x) * SZ + pub + t] = dn[t];
            }
            for (int t = 0; t < JT; t++)
                cd[t] = dn[t];
        }
    }
}

// ---- direct term: Y = scale · q ⋆ D ⋆ k v (or 0) ---------------------------
template <typename R>
__global__ void c2_direct(const C2Args<R> a, int with_direct, R *Yout)
{
    const size_t ny = (size_t)a.DV * a.JO;
    const size_t n = (size_t)a.B * a.X * a.Y * ny;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    if (!with_direct) {
        Yout[i] = 0;
        return;
    }
    const size_t ni = i / ny;
    const int v = (int)(i % ny) / a.JO, o = (int)(i % ny) % a.JO;
    const R *q = a.Q + ni * a.DK * a.JQ, *k = a.K + ni * a.DK * a.JK, *vv = a.V + ni * a.DV * a.JV;
    const R *D = a.D + ni * (size_t)a.JO * a.JQ * a.JK * a.JV;
    R acc = 0;
    for (int p = 0; p < a.JQ; p++)
        for (int ka = 0; ka < a.JK; ka++) {
            R qk = 0;
            for (int d = 0; d < a.DK; d++)
                qk += c2_ld(q + d * a.JQ + p) * c2_ld(k + d * a.JK + ka);
            R dv = 0;
            for (int c = 0; c < a.JV; c++)
                dv += c2_ld(D + (((size_t)o * a.JQ + p) * a.JK + ka) * a.JV + c) *
                      c2_ld(vv + (size_t)v * a.JV + c);
            acc += qk * dv;
        }
    Yout[i] = a.scale * acc;
}

// ---- adjoint sweep ---------------------------------------------------------
// Stores, per node, a_l = dL/d(in_l) and a_u = dL/d(in_u) in Al/Au
// ([slot][B][X][Y][SZ], internal layout); g^r_{x,y} is then Al at (x+1, y)
// (or dC_right) and g^d_{x,y} is Au at (x, y+1) (or dC_bottom).
template <typename R, int JTC>
__global__ void __launch_bounds__(128)
c2_bwd_sweep(const C2Args<R> a, int o0, const R *dY, const R *dCr, const R *dCb, R *Al, R *Au,
             R *dC0l, R *dC0t)
{
    constexpr int NT = JTC > 0 ? JTC : C2_JT_MAX;
    const int JT = JTC > 0 ? JTC : a.JT;
    const long long ent = (long long)a.DK * a.DV, total = (long long)a.B * ent;
    const long long gid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (gid >= total)
        return;
    const int b = (int)(gid / ent), e = (int)(gid % ent), v = e / a.DK, d = e % a.DK;
    const int pub = (d * a.DV + v) * JT;
    const int slot = blockIdx.z, ori = o0 + slot, fx = ori & 1, fy = ori >> 1;
    const size_t SZ = (size_t)a.SZ, grid = (size_t)a.X * a.Y;
    R *Als = Al + (size_t)slot * a.B * grid * SZ, *Aus = Au + (size_t)slot * a.B * grid * SZ;
    const size_t nq = (size_t)a.DK * a.JQ, nt = (size_t)JT * JT, nm = (size_t)a.JO * a.JQ * JT;
    const size_t ny = (size_t)a.DV * a.JO;

    R au[NT];
    for (int x = a.X - 1; x >= 0; x--) {
        const int xp = fx ? a.X - 1 - x : x;
        for (int t = 0; t < JT; t++)
            au[t] = dCb ? c2_ld(dCb + ((size_t)b * a.X + x) * SZ + pub + t) : R(0);
        for (int y = a.Y - 1; y >= 0; y--) {
            const int yp = fy ? a.Y - 1 - y : y;
            const size_t ni = c2_node(a, b, xp, yp), gi = c2_gnode(a, b, ori, xp, yp);
            const size_t pos = ((size_t)b * a.X + x) * a.Y + y;
            R gr[NT], gd[NT], al[NT], an[NT];
            if (x == a.X - 1) {
                for (int t = 0; t < JT; t++)
                    gr[t] = dCr ? c2_ld(dCr + ((size_t)b * a.Y + y) * SZ + pub + t) : R(0);
            } else {
                const R *src = Als + (pos + a.Y) * SZ + (size_t)e * JT;
                for (int t = 0; t < JT; t++)
                    gr[t] = src[t];
            }
            for (int t = 0; t < JT; t++) {
                gd[t] = au[t];
                al[t] = an[t] = 0;
            }
            const R *Trl = a.Trl + gi * nt, *Tdu = a.Tdu + gi * nt;
            const R *Tdl = a.Tdl ? a.Tdl + gi * nt : nullptr, *Tru = a.Tru ? a.Tru + gi * nt : nullptr;
            for (int t = 0; t < JT; t++)
                for (int u = 0; u < JT; u++) { // a[u] += Σ_t T[t,u] g[t]
                    al[u] += c2_ld(Trl + t * JT + u) * gr[t];
                    an[u] += c2_ld(Tdu + t * JT + u) * gd[t];
                    if (Tdl)
                        al[u] += c2_ld(Tdl + t * JT + u) * gd[t];
                    if (Tru)
                        an[u] += c2_ld(Tru + t * JT + u) * gr[t];
                }
            // scale · R(M)[d,v,t] = scale Σ_{o,p} q[d,p] M[o,p,t] dy[v,o]
            const R *Ml = a.Ml + gi * nm, *Mu = a.Mu + gi * nm;
            for (int o = 0; o < a.JO; o++) {
                const R g = a.scale * c2_ld(dY + ni * ny + (size_t)v * a.JO + o);
                for (int p = 0; p < a.JQ; p++) {
                    const R qg = g * c2_ld(a.Q + ni * nq + (size_t)d * a.JQ + p);
                    for (int t = 0; t < JT; t++) {
                        al[t] += qg * c2_ld(Ml + ((size_t)o * a.JQ + p) * JT + t);
                        an[t] += qg * c2_ld(Mu + ((size_t)o * a.JQ + p) * JT + t);
                    }
                }
            }
            R *dl = Als + pos * SZ + (size_t)e * JT, *du = Aus + pos * SZ + (size_t)e * JT;
            for (int t = 0; t < JT; t++) {
                dl[t] = al[t];
                du[t] = an[t];
                au[t] = an[t];
            }
            if (dC0l && x == 0)
                for (int t = 0; t < JT; t++)
                    dC0l[((size_t)b * a.Y + y) * SZ + pub + t] = al[t];
            if (dC0t && y == 0)
                for (int t = 0; t < JT; t++)
                    dC0t[((size_t)b * a.X + x) * SZ + pub + t] = an[t];
        }
    }
}

// ---- per-node parameter gradients -----------------------------------------

// A state seen through its layout: internal (e = v·DK + d) or public [DK,DV,JT].
template <typename R> struct C2State {
    const R *p; // NULL = zero
    int pub;
};

template <typename R>
__device__ __forceinline__ R c2_st(const C2State<R> &s, const C2Args<R> &a, int JT, int d, int v,
                                   int t)
{
    if (!s.p)
        return R(0);
    return s.pub ? s.p[((size_t)d * a.DV + v) * JT + t] : s.p[((size_t)v * a.DK + d) * JT + t];
}

// Sum over the block; every thread gets the total. red: >= 33 elements.
template <typename R> __device__ R c2_block_sum(R x, R *red)
{
    for (int off = 16; off > 0; off >>= 1)
        x += __shfl_xor_sync(0xffffffffu, x, off);
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    if (lane == 0)
        red[w] = x;
    __syncthreads();
    if (w == 0) {
        x = lane < nw ? red[lane] : R(0);
        for (int off = 16; off > 0; off >>= 1)
            x += __shfl_xor_sync(0xffffffffu, x, off);
        if (lane == 0)
            red[32] = x;
    }
    __syncthreads();
    x = red[32];
    __syncthreads();
    return x;
}

// One block per physical node; loops over the orientation slots of the group.
// Writes gate gradients; dQ/dK/dV are written (accumulate = 0) or added.
template <typename R>
__global__ void c2_node_grads(const C2Args<R> a, int o0, int nslots, const R *Cr, const R *Cd,
                              const R *Al, const R *Au, const R *dY, const R *dCr, const R *dCb,
                              C2Grads<R> g, int accumulate)
{
    extern __shared__ unsigned char c2_smem_raw[];
    R *sm = reinterpret_cast<R *>(c2_smem_raw);
    const int JT = a.JT, DK = a.DK, DV = a.DV, JQ = a.JQ, JK = a.JK, JV = a.JV, JO = a.JO;
    R *red = sm, *sdq = red + 33, *sdk = sdq + DK * JQ, *sdv = sdk + DK * JK;
    R *sqk = sdv + DV * JV, *sdyv = sqk + JQ * JK;
    const size_t ni = blockIdx.x;
    const int b = (int)(ni / ((size_t)a.X * a.Y)), xp = (int)(ni / a.Y % a.X), yp = (int)(ni % a.Y);
    const size_t SZ = (size_t)a.SZ, grid = (size_t)a.X * a.Y;
    const size_t nq = (size_t)DK * JQ, nk = (size_t)DK * JK, nv = (size_t)DV * JV;
    const size_t ns = (size_t)JT * JK * JV, nt = (size_t)JT * JT, nm = (size_t)JO * JQ * JT;
    const size_t ny = (size_t)DV * JO, nd = (size_t)JO * JQ * JK * JV;
    const int tid = threadIdx.x, nth = blockDim.x, ent = DK * DV;
    const R *q = a.Q + ni * nq, *k = a.K + ni * nk, *vv = a.V + ni * nv, *dy = dY + ni * ny;

    for (int i = tid; i < DK * JQ; i += nth)
        sdq[i] = 0;
    for (int i = tid; i < DK * JK; i += nth)
        sdk[i] = 0;
    for (int i = tid; i < DV * JV; i += nth)
        sdv[i] = 0;

    for (int s = 0; s < nslots; s++) {
        const int ori = o0 + s, fx = ori & 1, fy = ori >> 1;
        const int x = fx ? a.X - 1 - xp : xp, y = fy ? a.Y - 1 - yp : yp;
        const size_t base = (size_t)s * a.B * grid, pos = ((size_t)b * a.X + x) * a.Y + y;
        const size_t gi = c2_gnode(a, b, ori, xp, yp);
        C2State<R> L, U, Gr, Gd;
        if (x > 0)
            L = {Cr + (base + pos - a.Y) * SZ, 0};
        else
            L = {a.C0l ? a.C0l + ((size_t)b * a.Y + y) * SZ : nullptr, 1};
        if (y > 0)
            U = {Cd + (base + pos - 1) * SZ, 0};
        else
            U = {a.C0t ? a.C0t + ((size_t)b * a.X + x) * SZ : nullptr, 1};
        if (x < a.X - 1)
            Gr = {Al + (base + pos + a.Y) * SZ, 0};
        else
            Gr = {dCr ? dCr + ((size_t)b * a.Y + y) * SZ : nullptr, 1};
        if (y < a.Y - 1)
            Gd = {Au + (base + pos + 1) * SZ, 0};
        else
            Gd = {dCb ? dCb + ((size_t)b * a.X + x) * SZ : nullptr, 1};

        // dT = g ⊗ in  (Σ_{d,v} g[d,v,t] in[d,v,t'])
        R *dTs[4] = {g.Trl, g.Tru, g.Tdl, g.Tdu};
        const C2State<R> *gs[4] = {&Gr, &Gr, &Gd, &Gd}, *is[4] = {&L, &U, &L, &U};
        for (int m = 0; m < 4; m++) {
            if (!dTs[m])
                continue;
            for (int t = 0; t < JT; t++)
                for (int u = 0; u < JT; u++) {
                    R acc = 0;
                    for (int i = tid; i < ent; i += nth) {
                        const int d = i % DK, v = i / DK;
                        acc += c2_st(*gs[m], a, JT, d, v, t) * c2_st(*is[m], a, JT, d, v, u);
                    }
                    acc = c2_block_sum(acc, red);
                    if (tid == 0)
                        dTs[m][gi * nt + t * JT + u] = acc;
                }
        }
        // dS[t,a,c] = Σ_{d,v} g[d,v,t] k[d,a] v[v,c]
        R *dSs[2] = {g.Sr, g.Sd};
        for (int m = 0; m < 2; m++) {
            if (!dSs[m])
                continue;
            const C2State<R> &G = m ? Gd : Gr;
            for (int t = 0; t < JT; t++)
                for (int ka = 0; ka < JK; ka++)
                    for (int c = 0; c < JV; c++) {
                        R acc = 0;
                        for (int i = tid; i < ent; i += nth) {
                            const int d = i % DK, v = i / DK;
                            acc += c2_st(G, a, JT, d, v, t) * c2_ld(k + d * JK + ka) *
                                   c2_ld(vv + v * JV + c);
                        }
                        acc = c2_block_sum(acc, red);
                        if (tid == 0)
                            dSs[m][gi * ns + ((size_t)t * JK + ka) * JV + c] = acc;
                    }
        }
        // dM[o,p,t] = scale Σ_{d,v} q[d,p] in[d,v,t] dy[v,o]
        R *dMs[2] = {g.Ml, g.Mu};
        for (int m = 0; m < 2; m++) {
            if (!dMs[m])
                continue;
            const C2State<R> &C = m ? U : L;
            for (int o = 0; o < JO; o++)
                for (int p = 0; p < JQ; p++)
                    for (int t = 0; t < JT; t++) {
                        R acc = 0;
                        for (int i = tid; i < ent; i += nth) {
                            const int d = i % DK, v = i / DK;
                            acc += c2_ld(q + d * JQ + p) * c2_st(C, a, JT, d, v, t) *
                                   c2_ld(dy + v * JO + o);
                        }
                        acc = c2_block_sum(acc, red);
                        if (tid == 0)
                            dMs[m][gi * nm + ((size_t)o * JQ + p) * JT + t] = a.scale * acc;
                    }
        }
        const R *Ml = a.Ml + gi * nm, *Mu = a.Mu + gi * nm;
        const R *Sr = a.Sr + gi * ns, *Sd = a.Sd + gi * ns;
        // dq[d,p] += scale Σ_{v,o,t} (M_l[o,p,t] in_l + M_u[o,p,t] in_u)[d,v,t] dy[v,o]
        if (g.Q)
            for (int i = tid; i < DK * JQ; i += nth) {
                const int d = i / JQ, p = i % JQ;
                R acc = 0;
                for (int v = 0; v < DV; v++)
                    for (int o = 0; o < JO; o++) {
                        R s2 = 0;
                        for (int t = 0; t < JT; t++)
                            s2 += c2_ld(Ml + ((size_t)o * JQ + p) * JT + t) * c2_st(L, a, JT, d, v, t) +
                                  c2_ld(Mu + ((size_t)o * JQ + p) * JT + t) * c2_st(U, a, JT, d, v, t);
                        acc += s2 * c2_ld(dy + v * JO + o);
                    }
                sdq[i] += a.scale * acc;
            }
        // dk[d,a] += Σ_{v,t,c} (g_r S_r + g_d S_d)[t,a,c] · g[d,v,t] v[v,c]
        if (g.K)
            for (int i = tid; i < DK * JK; i += nth) {
                const int d = i / JK, ka = i % JK;
                R acc = 0;
                for (int v = 0; v < DV; v++)
                    for (int t = 0; t < JT; t++) {
                        const R gr = c2_st(Gr, a, JT, d, v, t), gd = c2_st(Gd, a, JT, d, v, t);
                        for (int c = 0; c < JV; c++)
                            acc += (gr * c2_ld(Sr + ((size_t)t * JK + ka) * JV + c) +
                                    gd * c2_ld(Sd + ((size_t)t * JK + ka) * JV + c)) *
                                   c2_ld(vv + v * JV + c);
                    }
                sdk[i] += acc;
            }
        // dv[v,c] += Σ_{d,t,a} (g_r S_r + g_d S_d)[t,a,c] · g[d,v,t] k[d,a]
        if (g.V)
            for (int i = tid; i < DV * JV; i += nth) {
                const int v = i / JV, c = i % JV;
                R acc = 0;
                for (int d = 0; d < DK; d++)
                    for (int t = 0; t < JT; t++) {
                        const R gr = c2_st(Gr, a, JT, d, v, t), gd = c2_st(Gd, a, JT, d, v, t);
                        for (int ka = 0; ka < JK; ka++)
                            acc += (gr * c2_ld(Sr + ((size_t)t * JK + ka) * JV + c) +
                                    gd * c2_ld(Sd + ((size_t)t * JK + ka) * JV + c)) *
                                   c2_ld(k + d * JK + ka);
                    }
                sdv[i] += acc;
            }
    }

    // direct term (counted once: the group that holds orientation 0)
    if (o0 == 0) {
        for (int p = 0; p < JQ; p++)
            for (int ka = 0; ka < JK; ka++) {
                R acc = 0;
                for (int d = tid; d < DK; d += nth)
                    acc += c2_ld(q + d * JQ + p) * c2_ld(k + d * JK + ka);
                acc = c2_block_sum(acc, red);
                if (tid == 0)
                    sqk[p * JK + ka] = acc;
            }
        for (int o = 0; o < JO; o++)
            for (int c = 0; c < JV; c++) {
                R acc = 0;
                for (int v = tid; v < DV; v += nth)
                    acc += c2_ld(dy + v * JO + o) * c2_ld(vv + v * JV + c);
                acc = c2_block_sum(acc, red);
                if (tid == 0)
                    sdyv[o * JV + c] = acc;
            }
        __syncthreads();
        const R *D = a.D + ni * nd;
        if (g.D)
            for (size_t i = tid; i < nd; i += nth) {
                const int c = (int)(i % JV), ka = (int)(i / JV % JK), p = (int)(i / JV / JK % JQ);
                const int o = (int)(i / JV / JK / JQ);
                g.D[ni * nd + i] = a.scale * sqk[p * JK + ka] * sdyv[o * JV + c];
            }
        // dqk[p,a] = scale Σ_{o,c} D[o,p,a,c] dyv[o,c]
        if (g.Q)
            for (int i = tid; i < DK * JQ; i += nth) {
                const int d = i / JQ, p = i % JQ;
                R acc = 0;
                for (int ka = 0; ka < JK; ka++) {
                    R dqk = 0;
                    for (int o = 0; o < JO; o++)
                        for (int c = 0; c < JV; c++)
                            dqk += c2_ld(D + (((size_t)o * JQ + p) * JK + ka) * JV + c) * sdyv[o * JV + c];
                    acc += dqk * c2_ld(k + d * JK + ka);
                }
                sdq[i] += a.scale * acc;
            }
        if (g.K)
            for (int i = tid; i < DK * JK; i += nth) {
                const int d = i / JK, ka = i % JK;
                R acc = 0;
                for (int p = 0; p < JQ; p++) {
                    R dqk = 0;
                    for (int o = 0; o < JO; o++)
                        for (int c = 0; c < JV; c++)
                            dqk += c2_ld(D + (((size_t)o * JQ + p) * JK + ka) * JV + c) * sdyv[o * JV + c];
                    acc += dqk * c2_ld(q + d * JQ + p);
                }
                sdk[i] += a.scale * acc;
            }
        // dv[v,c] += scale Σ_o coef[o,c] dy[v,o],  coef[o,c] = Σ_{p,a} D[o,p,a,c] qk[p,a]
        if (g.V)
            for (int i = tid; i < DV * JV; i += nth) {
                const int v = i / JV, c = i % JV;
                R acc = 0;
                for (int o = 0; o < JO; o++) {
                    R coef = 0;
                    for (int p = 0; p < JQ; p++)
                        for (int ka = 0; ka < JK; ka++)
                            coef += c2_ld(D + (((size_t)o * JQ + p) * JK + ka) * JV + c) * sqk[p * JK + ka];
                    acc += coef * c2_ld(dy + v * JO + o);
                }
                sdv[i] += a.scale * acc;
            }
    }
    // each index of sdq/sdk/sdv is owned by one thread throughout: no barrier needed
    if (g.Q)
        for (int i = tid; i < DK * JQ; i += nth)
            g.Q[ni * nq + i] = accumulate ? g.Q[ni * nq + i] + sdq[i] : sdq[i];
    if (g.K)
        for (int i = tid; i < DK * JK; i += nth)
            g.K[ni * nk + i] = accumulate ? g.K[ni * nk + i] + sdk[i] : sdk[i];
    if (g.V)
        for (int i = tid; i < DV * JV; i += nth)
            g.V[ni * nv + i] = accumulate ? g.V[ni * nv + i] + sdv[i] : sdv[i];
}

#endif
