/* Sequential 1D core (plstm-math.md §2.1) and its adjoint (§2.3, "A simpler
 * correct backward") over one real type; included by core1d_seq.c with REAL
 * and FN(name) defined. States are internal [JT][DK][DV] (core1d_common.h).
 *
 * The backward recomputes the states: a forward sweep keeps the state
 * entering every block of K ≈ √L positions, then block by block from the last
 * one the block's states are recomputed and the adjoint runs over it. */

#include "backends/cpu/real_dot_impl.h"

typedef struct FN(pos) {
    const REAL *q, *k, *v, *S, *T, *M, *D;
} FN(pos);

static FN(pos) FN(pos_at)(const c1_dims *m, const plstm_core1d_inputs *in, size_t i)
{
    return (FN(pos)){(const REAL *)in->Q + i * m->nq, (const REAL *)in->K + i * m->nk,
                     (const REAL *)in->V + i * m->nv, (const REAL *)in->S + i * m->ns,
                     (const REAL *)in->T + i * m->nt, (const REAL *)in->M + i * m->nm,
                     (const REAL *)in->D + i * m->nd};
}

/* Per-thread scratch for one position. */
typedef struct FN(work) {
    REAL *qm;   /* [JT][DK][JO]  Σ_p q[d,p] M[o,p,t]          */
    REAL *cy;   /* [JT][DK][JO]  Σ_v C[t,d,v] dy[v,o]         */
    REAL *vs;   /* [JT][JK][DV]  Σ_c S[t,a,c] v[v,c]          */
    REAL *gk;   /* [JT][JK][DV]  Σ_d k[d,a] g[t,d,v]          */
    REAL *ybuf; /* [JO][DV]                                    */
    REAL *dyT;  /* [JO][DV]      dy transposed                 */
    REAL *qk;   /* [JQ][JK]      Σ_d q[d,p] k[d,a]            */
    REAL *dqk;  /* [JQ][JK]                                    */
    REAL *coef; /* [JO][JV]      Σ_{p,a} D[o,p,a,c] qk[p,a]   */
    REAL *dyv;  /* [JO][JV]      Σ_v dy[v,o] v[v,c]            */
    REAL *dq, *dk, *dv;
} FN(work);

static size_t FN(work_elems)(const c1_dims *m)
{
    size_t DK = m->DK, DV = m->DV, JQ = m->JQ, JK = m->JK, JV = m->JV, JT = m->JT, JO = m->JO;
    return 2 * JT * DK * JO + 2 * JT * JK * DV + 2 * JO * DV + 2 * JQ * JK + 2 * JO * JV +
           DK * JQ + DK * JK + DV * JV;
}

static void FN(work_init)(const c1_dims *m, FN(work) *w, REAL *p)
{
    size_t DK = m->DK, DV = m->DV, JQ = m->JQ, JK = m->JK, JV = m->JV, JT = m->JT, JO = m->JO;
    w->qm = p; p += JT * DK * JO;
    w->cy = p; p += JT * DK * JO;
    w->vs = p; p += JT * JK * DV;
    w->gk = p; p += JT * JK * DV;
    w->ybuf = p; p += JO * DV;
    w->dyT = p; p += JO * DV;
    w->qk = p; p += JQ * JK;
    w->dqk = p; p += JQ * JK;
    w->coef = p; p += JO * JV;
    w->dyv = p; p += JO * JV;
    w->dq = p; p += DK * JQ;
    w->dk = p; p += DK * JK;
    w->dv = p;
}

/* qm, qk and coef of a position (they depend on q, k, M, D only). */
static void FN(prep)(const c1_dims *m, const FN(pos) *x, FN(work) *w)
{
    const int DK = m->DK, JQ = m->JQ, JK = m->JK, JV = m->JV, JT = m->JT, JO = m->JO;
    for (int t = 0; t < JT; t++)
        for (int d = 0; d < DK; d++)
            for (int o = 0; o < JO; o++) {
                REAL acc = 0;
                for (int p = 0; p < JQ; p++)
                    acc += x->q[(size_t)d * JQ + p] * x->M[((size_t)o * JQ + p) * JT + t];
                w->qm[((size_t)t * DK + d) * JO + o] = acc;
            }
    for (int p = 0; p < JQ; p++)
        for (int a = 0; a < JK; a++) {
            REAL acc = 0;
            for (int d = 0; d < DK; d++)
                acc += x->q[(size_t)d * JQ + p] * x->k[(size_t)d * JK + a];
            w->qk[(size_t)p * JK + a] = acc;
        }
    for (int o = 0; o < JO; o++)
        for (int c = 0; c < JV; c++) {
            REAL acc = 0;
            for (int p = 0; p < JQ; p++)
                for (int a = 0; a < JK; a++)
                    acc += x->D[(((size_t)o * JQ + p) * JK + a) * JV + c] * w->qk[(size_t)p * JK + a];
            w->coef[(size_t)o * JV + c] = acc;
        }
}

/* y[v,o] = scale·(q ⋆ M ⋆ C + q ⋆ D ⋆ k v), C the incoming state. */
static void FN(read)(const c1_dims *m, const FN(pos) *x, const REAL *C, FN(work) *w, REAL *y)
{
    const int DK = m->DK, DV = m->DV, JV = m->JV, JT = m->JT, JO = m->JO;
    FN(prep)(m, x, w);
    memset(w->ybuf, 0, sizeof(REAL) * (size_t)JO * DV);
    for (int t = 0; t < JT; t++)
        for (int d = 0; d < DK; d++) {
            const REAL *restrict row = C + (size_t)t * m->N + (size_t)d * DV;
            for (int o = 0; o < JO; o++) {
                const REAL c = w->qm[((size_t)t * DK + d) * JO + o];
                REAL *restrict yb = w->ybuf + (size_t)o * DV;
                for (int j = 0; j < DV; j++)
                    yb[j] += c * row[j];
            }
        }
    const REAL sc = (REAL)m->scale;
    for (int j = 0; j < DV; j++)
        for (int o = 0; o < JO; o++) {
            REAL acc = w->ybuf[(size_t)o * DV + j];
            for (int c = 0; c < JV; c++)
                acc += w->coef[(size_t)o * JV + c] * x->v[(size_t)j * JV + c];
            y[(size_t)j * JO + o] = sc * acc;
        }
}

/* vs[t][a][v] = Σ_c S[t,a,c] v[v,c] */
static void FN(src_vs)(const c1_dims *m, const FN(pos) *x, REAL *vs)
{
    const int DV = m->DV, JK = m->JK, JV = m->JV, JT = m->JT;
    for (int t = 0; t < JT; t++)
        for (int a = 0; a < JK; a++) {
            const REAL *s = x->S + ((size_t)t * JK + a) * JV;
            REAL *o = vs + ((size_t)t * JK + a) * DV;
            for (int j = 0; j < DV; j++) {
                REAL acc = 0;
                for (int c = 0; c < JV; c++)
                    acc += s[c] * x->v[(size_t)j * JV + c];
                o[j] = acc;
            }
        }
}

/* Cn = T C + S ⋄ k v */
static void FN(advance)(const c1_dims *m, const FN(pos) *x, const REAL *C, REAL *Cn,
                        FN(work) *w)
{
    const size_t N = m->N;
    const int DK = m->DK, DV = m->DV, JK = m->JK, JT = m->JT;
    FN(src_vs)(m, x, w->vs);
    for (int t = 0; t < JT; t++) {
        REAL *restrict o = Cn + (size_t)t * N;
        for (int u = 0; u < JT; u++) {
            const REAL c = x->T[(size_t)t * JT + u];
            const REAL *restrict s = C + (size_t)u * N;
            if (u == 0)
                for (size_t n = 0; n < N; n++)
                    o[n] = c * s[n];
            else
                for (size_t n = 0; n < N; n++)
                    o[n] += c * s[n];
        }
        for (int d = 0; d < DK; d++) {
            REAL *restrict od = o + (size_t)d * DV;
            for (int a = 0; a < JK; a++) {
                const REAL ka = x->k[(size_t)d * JK + a];
                const REAL *restrict vs = w->vs + ((size_t)t * JK + a) * DV;
                for (int j = 0; j < DV; j++)
                    od[j] += ka * vs[j];
            }
        }
    }
}

/* Gradients of one position; NULL entries are not wanted. */
typedef struct FN(pgrad) {
    REAL *q, *k, *v, *S, *T, *M, *D;
} FN(pgrad);

/* Adjoint of one step: Cp = C_{t-1}, g = dL/dC_t, dy = dL/dy_t.
 * Writes the position's gradients and gn = dL/dC_{t-1}. */
static void FN(adjoint)(const c1_dims *m, const FN(pos) *x, const REAL *Cp, const REAL *g,
                        const REAL *dy, REAL *gn, FN(work) *w, const FN(pgrad) *pg)
{
    const size_t N = m->N;
    const int DK = m->DK, DV = m->DV, JQ = m->JQ, JK = m->JK, JV = m->JV, JT = m->JT,
              JO = m->JO;
    const REAL sc = (REAL)m->scale;
    FN(prep)(m, x, w);
    FN(src_vs)(m, x, w->vs);
    for (int o = 0; o < JO; o++)
        for (int j = 0; j < DV; j++)
            w->dyT[(size_t)o * DV + j] = dy[(size_t)j * JO + o];

    /* mark read: cy, dq, dM */
    for (int t = 0; t < JT; t++)
        for (int d = 0; d < DK; d++)
            for (int o = 0; o < JO; o++)
                w->cy[((size_t)t * DK + d) * JO + o] =
                    FN(dot)(Cp + (size_t)t * N + (size_t)d * DV, w->dyT + (size_t)o * DV, DV);
    for (int d = 0; d < DK; d++)
        for (int p = 0; p < JQ; p++) {
            REAL acc = 0;
            for (int o = 0; o < JO; o++)
                for (int t = 0; t < JT; t++)
                    acc += x->M[((size_t)o * JQ + p) * JT + t] * w->cy[((size_t)t * DK + d) * JO + o];
            w->dq[(size_t)d * JQ + p] = sc * acc;
        }
    if (pg->M)
        for (int o = 0; o < JO; o++)
            for (int p = 0; p < JQ; p++)
                for (int t = 0; t < JT; t++) {
                    REAL acc = 0;
                    for (int d = 0; d < DK; d++)
                        acc += x->q[(size_t)d * JQ + p] * w->cy[((size_t)t * DK + d) * JO + o];
                    pg->M[((size_t)o * JQ + p) * JT + t] = sc * acc;
                }

    /* direct: dD, dq, dk, dv */
    for (int o = 0; o < JO; o++)
        for (int c = 0; c < JV; c++) {
            REAL acc = 0;
            for (int j = 0; j < DV; j++)
                acc += w->dyT[(size_t)o * DV + j] * x->v[(size_t)j * JV + c];
            w->dyv[(size_t)o * JV + c] = acc;
        }
    for (int p = 0; p < JQ; p++)
        for (int a = 0; a < JK; a++) {
            REAL acc = 0;
            for (int o = 0; o < JO; o++)
                for (int c = 0; c < JV; c++) {
                    const size_t i = (((size_t)o * JQ + p) * JK + a) * JV + c;
                    acc += x->D[i] * w->dyv[(size_t)o * JV + c];
                    if (pg->D)
                        pg->D[i] = sc * w->qk[(size_t)p * JK + a] * w->dyv[(size_t)o * JV + c];
                }
            w->dqk[(size_t)p * JK + a] = sc * acc;
        }
    for (int d = 0; d < DK; d++) {
        for (int p = 0; p < JQ; p++) {
            REAL acc = 0;
            for (int a = 0; a < JK; a++)
                acc += x->k[(size_t)d * JK + a] * w->dqk[(size_t)p * JK + a];
            w->dq[(size_t)d * JQ + p] += acc;
        }
        for (int a = 0; a < JK; a++) {
            REAL acc = 0;
            for (int p = 0; p < JQ; p++)
                acc += x->q[(size_t)d * JQ + p] * w->dqk[(size_t)p * JK + a];
            w->dk[(size_t)d * JK + a] = acc;
        }
    }
    for (int j = 0; j < DV; j++)
        for (int c = 0; c < JV; c++) {
            REAL acc = 0;
            for (int o = 0; o < JO; o++)
                acc += w->dyT[(size_t)o * DV + j] * w->coef[(size_t)o * JV + c];
            w->dv[(size_t)j * JV + c] = sc * acc;
        }

    /* source write: gk, dS, dk, dv */
    memset(w->gk, 0, sizeof(REAL) * (size_t)JT * JK * DV);
    for (int t = 0; t < JT; t++)
        for (int d = 0; d < DK; d++) {
            const REAL *restrict gr = g + (size_t)t * N + (size_t)d * DV;
            for (int a = 0; a < JK; a++) {
                const REAL ka = x->k[(size_t)d * JK + a];
                REAL *restrict o = w->gk + ((size_t)t * JK + a) * DV;
                for (int j = 0; j < DV; j++)
                    o[j] += ka * gr[j];
                w->dk[(size_t)d * JK + a] +=
                    FN(dot)(gr, w->vs + ((size_t)t * JK + a) * DV, DV);
            }
        }
    for (int t = 0; t < JT; t++)
        for (int a = 0; a < JK; a++) {
            const REAL *gk = w->gk + ((size_t)t * JK + a) * DV;
            const REAL *s = x->S + ((size_t)t * JK + a) * JV;
            for (int j = 0; j < DV; j++)
                for (int c = 0; c < JV; c++)
                    w->dv[(size_t)j * JV + c] += gk[j] * s[c];
            if (pg->S)
                for (int c = 0; c < JV; c++) {
                    REAL acc = 0;
                    for (int j = 0; j < DV; j++)
                        acc += gk[j] * x->v[(size_t)j * JV + c];
                    pg->S[((size_t)t * JK + a) * JV + c] = acc;
                }
        }

    /* transition: dT and gn = Tᵀ g + scale·(q M)ᵀ dy */
    if (pg->T)
        for (int t = 0; t < JT; t++)
            for (int u = 0; u < JT; u++)
                pg->T[(size_t)t * JT + u] = FN(dot)(g + (size_t)t * N, Cp + (size_t)u * N, N);
    for (int u = 0; u < JT; u++) {
        REAL *restrict o = gn + (size_t)u * N;
        for (int t = 0; t < JT; t++) {
            const REAL c = x->T[(size_t)t * JT + u];
            const REAL *restrict s = g + (size_t)t * N;
            if (t == 0)
                for (size_t n = 0; n < N; n++)
                    o[n] = c * s[n];
            else
                for (size_t n = 0; n < N; n++)
                    o[n] += c * s[n];
        }
        for (int d = 0; d < DK; d++) {
            REAL *restrict od = o + (size_t)d * DV;
            for (int oo = 0; oo < JO; oo++) {
                const REAL c = sc * w->qm[((size_t)u * DK + d) * JO + oo];
                const REAL *restrict dr = w->dyT + (size_t)oo * DV;
                for (int j = 0; j < DV; j++)
                    od[j] += c * dr[j];
            }
        }
    }
    if (pg->q)
        memcpy(pg->q, w->dq, sizeof(REAL) * m->nq);
    if (pg->k)
        memcpy(pg->k, w->dk, sizeof(REAL) * m->nk);
    if (pg->v)
        memcpy(pg->v, w->dv, sizeof(REAL) * m->nv);
}

/* ---- all J = 1: one fused pass over the state per position ------------- */

/* y = scale·(q M C + D (q·k) v) with the incoming C, then C <- T C + S k vᵀ
 * in place; y NULL = only the state update. */
static void FN(step1)(const c1_dims *m, const FN(pos) *x, const REAL *C, REAL *Cn, REAL *y,
                      REAL *ybuf)
{
    const int DK = m->DK, DV = m->DV;
    const REAL Mg = x->M[0], Tg = x->T[0], Sg = x->S[0];
    const REAL *restrict v = x->v;
    if (y) {
        const REAL dd = x->D[0] * FN(dot)(x->q, x->k, (size_t)DK);
        for (int j = 0; j < DV; j++)
            ybuf[j] = dd * v[j];
    }
    for (int d = 0; d < DK; d++) {
        const REAL *cr = C + (size_t)d * DV;
        REAL *cn = Cn + (size_t)d * DV;
        const REAL qd = x->q[d] * Mg, kd = x->k[d] * Sg;
        if (y) {
            REAL *restrict yb = ybuf;
            for (int j = 0; j < DV; j++)
                yb[j] += qd * cr[j];
        }
        for (int j = 0; j < DV; j++)
            cn[j] = Tg * cr[j] + kd * v[j];
    }
    if (y) {
        const REAL sc = (REAL)m->scale;
        for (int j = 0; j < DV; j++)
            y[j] = sc * ybuf[j];
    }
}

/* Adjoint of step1: Cp = C_{t-1}; g = dL/dC_t on entry, dL/dC_{t-1} on exit. */
static void FN(adjoint1)(const c1_dims *m, const FN(pos) *x, const REAL *Cp, REAL *g,
                         const REAL *dy, FN(work) *w, const FN(pgrad) *pg)
{
    const int DK = m->DK, DV = m->DV;
    const REAL sc = (REAL)m->scale;
    const REAL Mg = x->M[0], Tg = x->T[0], Sg = x->S[0], Dg = x->D[0];
    const REAL *restrict v = x->v;
    const REAL qk = FN(dot)(x->q, x->k, (size_t)DK), dyv = FN(dot)(dy, v, (size_t)DV);
    REAL *restrict gk = w->gk, *dq = pg->q ? pg->q : w->dq, *dk = pg->k ? pg->k : w->dk;
    REAL *dv = pg->v ? pg->v : w->dv;
    memset(gk, 0, sizeof(REAL) * (size_t)DV);
    REAL dM = 0, dT = 0;
    for (int d = 0; d < DK; d++) {
        REAL *restrict gr = g + (size_t)d * DV;
        const REAL *restrict cr = Cp + (size_t)d * DV;
        const REAL kd = x->k[d], c = sc * x->q[d] * Mg;
        REAL cy = 0, gv = 0, gc = 0;
#pragma omp simd reduction(+ : cy, gv, gc)
        for (int j = 0; j < DV; j++) {
            const REAL gj = gr[j];
            cy += cr[j] * dy[j];
            gv += gj * v[j];
            gc += gj * cr[j];
            gk[j] += kd * gj;
            gr[j] = Tg * gj + c * dy[j];
        }
        dq[d] = sc * (Mg * cy + Dg * dyv * kd);
        dk[d] = Sg * gv + sc * Dg * dyv * x->q[d];
        dM += x->q[d] * cy;
        dT += gc;
    }
    for (int j = 0; j < DV; j++)
        dv[j] = Sg * gk[j] + sc * Dg * qk * dy[j];
    if (pg->S)
        pg->S[0] = FN(dot)(gk, v, (size_t)DV);
    if (pg->T)
        pg->T[0] = dT;
    if (pg->M)
        pg->M[0] = sc * dM;
    if (pg->D)
        pg->D[0] = sc * qk * dyv;
}

static REAL *FN(opt)(void *base, size_t i, size_t n)
{
    return base ? (REAL *)base + i * n : NULL;
}

static plstm_status FN(forward)(const c1_dims *m, int threads, const plstm_core1d_inputs *in,
                                const plstm_core1d_outputs *out)
{
    const size_t SZ = m->SZ, L = (size_t)m->L;
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        REAL *buf = malloc(sizeof(REAL) * (2 * SZ + FN(work_elems)(m)));
        FN(work) w;
        if (!buf) {
#pragma omp atomic write
            failed = 1;
        } else {
            FN(work_init)(m, &w, buf + 2 * SZ);
        }
#pragma omp for schedule(dynamic)
        for (int b = 0; b < m->B; b++) {
            if (!buf)
                continue;
            REAL *C = buf, *Cn = buf + SZ;
            FN(state_in)(m, in->C0 ? (const REAL *)in->C0 + (size_t)b * SZ : NULL, C);
            for (size_t t = 0; t < L; t++) {
                const size_t i = (size_t)b * L + t;
                const FN(pos) x = FN(pos_at)(m, in, i);
                if (m->j1) {
                    FN(step1)(m, &x, C, Cn, (REAL *)out->Y + i * m->ny, w.ybuf);
                } else {
                    FN(read)(m, &x, C, &w, (REAL *)out->Y + i * m->ny);
                    FN(advance)(m, &x, C, Cn, &w);
                }
                REAL *tmp = C; C = Cn; Cn = tmp;
            }
            if (out->C_last)
                FN(state_out)(m, C, (REAL *)out->C_last + (size_t)b * SZ);
        }
        free(buf);
    }
    if (failed)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "core1d sequential forward: out of memory");
    return PLSTM_OK;
}

static plstm_status FN(backward)(const c1_dims *m, int threads, const plstm_core1d_inputs *in,
                                 const plstm_core1d_cotangents *dout,
                                 const plstm_core1d_grads *grad)
{
    const size_t SZ = m->SZ, L = (size_t)m->L;
    size_t K = 1;
    while (K * K < L)
        K++;
    const size_t nblk = (L + K - 1) / K;
    /* ckpt: nblk states entering each block; st: K states of one block; g, gn */
    const size_t nbuf = (nblk + K + 2) * SZ + FN(work_elems)(m);
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        REAL *buf = malloc(sizeof(REAL) * nbuf);
        FN(work) w;
        if (!buf) {
#pragma omp atomic write
            failed = 1;
        } else {
            FN(work_init)(m, &w, buf + (nblk + K + 2) * SZ);
        }
#pragma omp for schedule(dynamic)
        for (int b = 0; b < m->B; b++) {
            if (!buf)
                continue;
            REAL *ckpt = buf, *st = buf + nblk * SZ, *g = st + K * SZ, *gn = g + SZ;
            const size_t i0 = (size_t)b * L;
            FN(state_in)(m, in->C0 ? (const REAL *)in->C0 + (size_t)b * SZ : NULL, ckpt);
            for (size_t blk = 0; blk + 1 < nblk; blk++) {
                REAL *C = ckpt + blk * SZ, *Cn = st;
                for (size_t t = blk * K; t < (blk + 1) * K; t++) {
                    const FN(pos) x = FN(pos_at)(m, in, i0 + t);
                    if (m->j1)
                        FN(step1)(m, &x, C, Cn, NULL, NULL);
                    else
                        FN(advance)(m, &x, C, Cn, &w);
                    C = Cn;
                    Cn = Cn == st ? st + SZ : st;
                }
                memcpy(ckpt + (blk + 1) * SZ, C, sizeof(REAL) * SZ);
            }
            FN(state_in)(m, dout->C_last ? (const REAL *)dout->C_last + (size_t)b * SZ : NULL, g);
            for (size_t blk = nblk; blk-- > 0;) {
                const size_t t0 = blk * K, t1 = t0 + K < L ? t0 + K : L;
                memcpy(st, ckpt + blk * SZ, sizeof(REAL) * SZ);
                for (size_t t = t0; t + 1 < t1; t++) {
                    const FN(pos) x = FN(pos_at)(m, in, i0 + t);
                    REAL *C = st + (t - t0) * SZ;
                    if (m->j1)
                        FN(step1)(m, &x, C, C + SZ, NULL, NULL);
                    else
                        FN(advance)(m, &x, C, C + SZ, &w);
                }
                for (size_t t = t1; t-- > t0;) {
                    const size_t i = i0 + t;
                    const FN(pos) x = FN(pos_at)(m, in, i);
                    const FN(pgrad) pg = {FN(opt)(grad->Q, i, m->nq), FN(opt)(grad->K, i, m->nk),
                                          FN(opt)(grad->V, i, m->nv), FN(opt)(grad->S, i, m->ns),
                                          FN(opt)(grad->T, i, m->nt), FN(opt)(grad->M, i, m->nm),
                                          FN(opt)(grad->D, i, m->nd)};
                    const REAL *dy = (const REAL *)dout->Y + i * m->ny;
                    if (m->j1) {
                        FN(adjoint1)(m, &x, st + (t - t0) * SZ, g, dy, &w, &pg);
                    } else {
                        FN(adjoint)(m, &x, st + (t - t0) * SZ, g, dy, gn, &w, &pg);
                        REAL *tmp = g; g = gn; gn = tmp;
                    }
                }
            }
            if (grad->C0)
                FN(state_out)(m, g, (REAL *)grad->C0 + (size_t)b * SZ);
        }
        free(buf);
    }
    if (failed)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "core1d sequential backward: out of memory");
    return PLSTM_OK;
}
