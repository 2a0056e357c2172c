/* Sequential 2D pLSTM core (plstm-math.md §3.2) over one real type.
 * Included by core2d_seq.c with REAL (float/double) and FN(name) defined.
 *
 * Internally a state is stored [JT][DK][DV] (t outermost) so every
 * transition, source write and mark read is a loop over contiguous DK×DV or
 * DV elements that vectorizes; the public layout [DK,DV,JT] is converted only
 * at the borders (C0_*, C_right, C_bottom and their gradients).
 *
 * Forward keeps one line of right-going states (one per y) and the running
 * down-going state. Backward recomputes the states: a first forward sweep
 * saves the state line every K rows; then, block by block from the last one,
 * the block's incoming states are recomputed and the adjoint runs over it. */

typedef struct FN(node_in) {
    const REAL *q, *k, *v, *Sr, *Sd, *Trl, *Tdu, *Tdl, *Tru, *Ml, *Mu, *D;
} FN(node_in);

typedef struct FN(node_grad) {
    REAL *Sr, *Sd, *Trl, *Tdu, *Tdl, *Tru, *Ml, *Mu, *D;
} FN(node_grad);

/* Per-thread scratch for one node. */
typedef struct FN(scratch) {
    REAL *vs;   /* [JT][JK][DV]  Σ_c S[t,a,c] v[·,c]           */
    REAL *qm;   /* [JT][DK][JO]  Σ_p q[d,p] M[o,p,t]           */
    REAL *ybuf; /* [JO][DV]      output before transpose/scale  */
    REAL *qk;   /* [JQ][JK]      Σ_d q[d,p] k[d,a]             */
    REAL *coef; /* [JO][JV]      Σ_{p,a} D[o,p,a,c] qk[p,a]    */
    REAL *dyT;  /* [JO][DV]      dy transposed                  */
    REAL *cy;   /* [JT][DK][JO]  Σ_v C[t,d,v] dy[v,o]          */
    REAL *gk;   /* [JT][JK][DV]  Σ_d k[d,a] g[t,d,v]           */
    REAL *dyv;  /* [JO][JV]      Σ_v dy[v,o] v[v,c]             */
    REAL *dqk;  /* [JQ][JK]                                      */
    REAL *dq, *dk, *dv;
    REAL *j1;   /* all-J=1 kernels: 6 DV-vectors + 3 DK-vectors     */
} FN(scratch);

static size_t FN(scratch_elems)(const seq2d_dims *m)
{
    size_t DK = m->DK, DV = m->DV, JQ = m->JQ, JK = m->JK, JV = m->JV, JT = m->JT, JO = m->JO;
    return 2 * JT * JK * DV + 2 * JT * DK * JO + 2 * JO * DV + 2 * JQ * JK + 2 * JO * JV +
           DK * JQ + DK * JK + DV * JV + 6 * DV + 3 * DK;
}

static void FN(scratch_init)(const seq2d_dims *m, FN(scratch) *w, REAL *p)
{
    size_t DK = m->DK, DV = m->DV, JQ = m->JQ, JK = m->JK, JV = m->JV, JT = m->JT, JO = m->JO;
    w->vs = p; p += JT * JK * DV;
    w->gk = p; p += JT * JK * DV;
    w->qm = p; p += JT * DK * JO;
    w->cy = p; p += JT * DK * JO;
    w->ybuf = p; p += JO * DV;
    w->dyT = p; p += JO * DV;
    w->qk = p; p += JQ * JK;
    w->dqk = p; p += JQ * JK;
    w->coef = p; p += JO * JV;
    w->dyv = p; p += JO * JV;
    w->dq = p; p += DK * JQ;
    w->dk = p; p += DK * JK;
    w->dv = p; p += DV * JV;
    w->j1 = p;
}

/* ---- elementary operations on internal states ------------------------- */

#include "backends/cpu/real_dot_impl.h"

/* vs[t][a][v] = Σ_c S[t,a,c] v[v,c] */
static void FN(src_vs)(const seq2d_dims *m, const REAL *S, const REAL *v, REAL *vs)
{
    const int DV = m->DV, JK = m->JK, JV = m->JV, JT = m->JT;
    for (int t = 0; t < JT; t++)
        for (int a = 0; a < JK; a++) {
            const REAL *s = S + ((size_t)t * JK + a) * JV;
            REAL *w = vs + ((size_t)t * JK + a) * DV;
            for (int j = 0; j < DV; j++) {
                REAL acc = 0;
                for (int c = 0; c < JV; c++)
                    acc += s[c] * v[(size_t)j * JV + c];
                w[j] = acc;
            }
        }
}

/* out[t][d][:] = Σ_a k[d,a] vs[t][a][:]  (S ⋄ k v, overwriting out) */
static void FN(src_write)(const seq2d_dims *m, const REAL *k, const REAL *vs, REAL *out)
{
    const int DK = m->DK, DV = m->DV, JK = m->JK, JT = m->JT;
    for (int t = 0; t < JT; t++)
        for (int d = 0; d < DK; d++) {
            REAL *restrict o = out + (size_t)t * m->N + (size_t)d * DV;
            const REAL *restrict w0 = vs + (size_t)t * JK * DV;
            const REAL k0 = k[(size_t)d * JK];
            for (int j = 0; j < DV; j++)
                o[j] = k0 * w0[j];
            for (int a = 1; a < JK; a++) {
                const REAL *restrict w = w0 + (size_t)a * DV;
                const REAL ka = k[(size_t)d * JK + a];
                for (int j = 0; j < DV; j++)
                    o[j] += ka * w[j];
            }
        }
}

/* out[t] += Σ_t' T[t,t'] in[t']   (T NULL = absent) */
static void FN(trans_acc)(const seq2d_dims *m, const REAL *T, const REAL *in, REAL *out)
{
    if (!T)
        return;
    const size_t N = m->N;
    const int JT = m->JT;
    for (int t = 0; t < JT; t++) {
        REAL *restrict o = out + (size_t)t * N;
        for (int u = 0; u < JT; u++) {
            const REAL c = T[(size_t)t * JT + u];
            const REAL *restrict s = in + (size_t)u * N;
            for (size_t n = 0; n < N; n++)
                o[n] += c * s[n];
        }
    }
}

/* a[t'] += Σ_t T[t,t'] g[t]   (adjoint of trans_acc) */
static void FN(transT_acc)(const seq2d_dims *m, const REAL *T, const REAL *g, REAL *a)
{
    if (!T)
        return;
    const size_t N = m->N;
    const int JT = m->JT;
    for (int u = 0; u < JT; u++) {
        REAL *restrict o = a + (size_t)u * N;
        for (int t = 0; t < JT; t++) {
            const REAL c = T[(size_t)t * JT + u];
            const REAL *restrict s = g + (size_t)t * N;
            for (size_t n = 0; n < N; n++)
                o[n] += c * s[n];
        }
    }
}

/* dT[t,t'] = Σ_n g[t][n] in[t'][n] */
static void FN(trans_grad)(const seq2d_dims *m, const REAL *g, const REAL *in, REAL *dT)
{
    if (!dT)
        return;
    const size_t N = m->N;
    const int JT = m->JT;
    for (int t = 0; t < JT; t++)
        for (int u = 0; u < JT; u++) {
            dT[(size_t)t * JT + u] = FN(dot)(g + (size_t)t * N, in + (size_t)u * N, N);
        }
}

/* qm[t][d][o] = Σ_p q[d,p] M[o,p,t] */
static void FN(mark_qm)(const seq2d_dims *m, const REAL *q, const REAL *M, REAL *qm)
{
    const int DK = m->DK, JQ = m->JQ, JT = m->JT, JO = m->JO;
    for (int t = 0; t < JT; t++)
        for (int d = 0; d < DK; d++)
            for (int o = 0; o < JO; o++) {
                REAL acc = 0;
                for (int p = 0; p < JQ; p++)
                    acc += q[(size_t)d * JQ + p] * M[((size_t)o * JQ + p) * JT + t];
                qm[((size_t)t * DK + d) * JO + o] = acc;
            }
}

/* ybuf[o][v] += Σ_{t,d} qm[t][d][o] C[t][d][v] */
static void FN(mark_read)(const seq2d_dims *m, const REAL *qm, const REAL *C, REAL *ybuf)
{
    const int DK = m->DK, DV = m->DV, JT = m->JT, JO = m->JO;
    for (int o = 0; o < JO; o++) {
        REAL *restrict yo = ybuf + (size_t)o * DV;
        for (int t = 0; t < JT; t++)
            for (int d = 0; d < DK; d++) {
                const REAL c = qm[((size_t)t * DK + d) * JO + o];
                const REAL *restrict s = C + (size_t)t * m->N + (size_t)d * DV;
                for (int j = 0; j < DV; j++)
                    yo[j] += c * s[j];
            }
    }
}

/* qk[p][a] = Σ_d q[d,p] k[d,a];  coef[o][c] = Σ_{p,a} D[o,p,a,c] qk[p,a] */
static void FN(direct_coef)(const seq2d_dims *m, const FN(node_in) *ni, REAL *qk, REAL *coef)
{
    const int DK = m->DK, JQ = m->JQ, JK = m->JK, JV = m->JV, JO = m->JO;
    for (int p = 0; p < JQ; p++)
        for (int a = 0; a < JK; a++) {
            REAL acc = 0;
            for (int d = 0; d < DK; d++)
                acc += ni->q[(size_t)d * JQ + p] * ni->k[(size_t)d * JK + a];
            qk[(size_t)p * JK + a] = acc;
        }
    for (int o = 0; o < JO; o++)
        for (int c = 0; c < JV; c++) {
            REAL acc = 0;
            for (int p = 0; p < JQ; p++)
                for (int a = 0; a < JK; a++)
                    acc += ni->D[(((size_t)o * JQ + p) * JK + a) * JV + c] * qk[(size_t)p * JK + a];
            coef[(size_t)o * JV + c] = acc;
        }
}

/* ---- all J = 1: one fused pass over the DK×DV state ---------------------- */

static void FN(fwd1_row)(int DV, const REAL *c, const REAL *restrict v,
                         const REAL *restrict l, const REAL *restrict u, REAL *restrict r,
                         REAL *restrict dn)
{
    const REAL kd = c[0], sr = c[1], trl = c[2], tru = c[3], sd = c[4], tdl = c[5], tdu = c[6];
    for (int j = 0; j < DV; j++) {
        const REAL P = kd * v[j];
        r[j] = sr * P + trl * l[j] + tru * u[j];
        dn[j] = sd * P + tdl * l[j] + tdu * u[j];
    }
}

static void FN(node_fwd1)(const seq2d_dims *m, const FN(node_in) *ni, const REAL *in_l,
                          const REAL *in_u, REAL *out_r, REAL *out_d, REAL *y,
                          const FN(scratch) *w)
{
    const int DK = m->DK, DV = m->DV;
    const REAL sr = ni->Sr[0], sd = ni->Sd[0], trl = ni->Trl[0], tdu = ni->Tdu[0];
    const REAL tdl = ni->Tdl ? ni->Tdl[0] : 0, tru = ni->Tru ? ni->Tru[0] : 0;
    const REAL ml = ni->Ml[0], mu = ni->Mu[0];
    const REAL *restrict v = ni->v;
    REAL *restrict yb = w->ybuf;
    if (y)
        memset(yb, 0, sizeof(REAL) * (size_t)DV);
    for (int d = 0; d < DK; d++) {
        const REAL kd = ni->k[d], cl = ni->q[d] * ml, cu = ni->q[d] * mu;
        const REAL *restrict l = in_l + (size_t)d * DV, *restrict u = in_u + (size_t)d * DV;
        REAL *restrict r = out_r + (size_t)d * DV, *restrict dn = out_d + (size_t)d * DV;
        const REAL c[8] = {kd, sr, trl, tru, sd, tdl, tdu, 0};
        FN(fwd1_row)(DV, c, v, l, u, r, dn);
        if (y)
            for (int j = 0; j < DV; j++)
                yb[j] += cl * l[j] + cu * u[j];
    }
    if (!y)
        return;
    const REAL scale = (REAL)m->scale;
    const REAL dqk = ni->D[0] * FN(dot)(ni->q, ni->k, (size_t)DK);
    for (int j = 0; j < DV; j++)
        y[j] = scale * (yb[j] + dqk * v[j]);
}

/* One DV row of node_bwd1's main loop; restrict parameters (GCC ignores
 * restrict on local pointers) so it vectorizes without alias checks. */
static void FN(bwd1_row)(int DV, const REAL *c, const REAL *restrict dy,
                         const REAL *restrict l, const REAL *restrict u,
                         const REAL *restrict gr, const REAL *restrict gd, REAL *restrict al,
                         REAL *restrict au, REAL *restrict vrl, REAL *restrict vru,
                         REAL *restrict vdl, REAL *restrict vdu, REAL *restrict gkr,
                         REAL *restrict gkd)
{
    const REAL cl = c[0], cu = c[1], trl = c[2], tdl = c[3], tru = c[4], tdu = c[5], kd = c[6];
    for (int j = 0; j < DV; j++) {
        al[j] = cl * dy[j] + trl * gr[j] + tdl * gd[j];
        au[j] = cu * dy[j] + tru * gr[j] + tdu * gd[j];
        vrl[j] += gr[j] * l[j];
        vru[j] += gr[j] * u[j];
        vdl[j] += gd[j] * l[j];
        vdu[j] += gd[j] * u[j];
        gkr[j] += kd * gr[j];
        gkd[j] += kd * gd[j];
    }
}

static void FN(node_bwd1)(const seq2d_dims *m, const FN(node_in) *ni, const REAL *in_l,
                          const REAL *in_u, const REAL *g_r, const REAL *g_d,
                          const REAL *restrict dy, REAL *a_l, REAL *a_u,
                          const FN(node_grad) *ng, const FN(scratch) *w)
{
    const int DK = m->DK, DV = m->DV;
    const REAL scale = (REAL)m->scale;
    const REAL sr = ni->Sr[0], sd = ni->Sd[0], trl = ni->Trl[0], tdu = ni->Tdu[0];
    const REAL tdl = ni->Tdl ? ni->Tdl[0] : 0, tru = ni->Tru ? ni->Tru[0] : 0;
    const REAL ml = ni->Ml[0], mu = ni->Mu[0], D = ni->D[0];
    const REAL *restrict v = ni->v;
    /* per-lane accumulators, summed at the end (keeps the main loop vectorized) */
    REAL *restrict vrl = w->j1, *restrict vru = vrl + DV, *restrict vdl = vru + DV;
    REAL *restrict vdu = vdl + DV, *restrict gkr = vdu + DV, *restrict gkd = gkr + DV;
    REAL *restrict cyl = gkd + DV, *restrict cyu = cyl + DK, *restrict dks = cyu + DK;
    memset(vrl, 0, sizeof(REAL) * 6 * (size_t)DV);
    for (int d = 0; d < DK; d++) {
        const REAL kd = ni->k[d], cl = scale * ni->q[d] * ml, cu = scale * ni->q[d] * mu;
        const size_t o = (size_t)d * DV;
        const REAL *restrict l = in_l + o, *restrict u = in_u + o;
        const REAL *restrict gr = g_r + o, *restrict gd = g_d + o;
        REAL *restrict al = a_l + o, *restrict au = a_u + o;
        const REAL c[7] = {cl, cu, trl, tdl, tru, tdu, kd};
        FN(bwd1_row)(DV, c, dy, l, u, gr, gd, al, au, vrl, vru, vdl, vdu, gkr, gkd);
        cyl[d] = FN(dot)(l, dy, (size_t)DV);
        cyu[d] = FN(dot)(u, dy, (size_t)DV);
        dks[d] = sr * FN(dot)(gr, v, (size_t)DV) + sd * FN(dot)(gd, v, (size_t)DV);
    }
    REAL srl = 0, sru = 0, sdl = 0, sdu = 0;
    for (int j = 0; j < DV; j++) {
        srl += vrl[j];
        sru += vru[j];
        sdl += vdl[j];
        sdu += vdu[j];
    }
    if (ng->Trl) *ng->Trl = srl;
    if (ng->Tru) *ng->Tru = sru;
    if (ng->Tdl) *ng->Tdl = sdl;
    if (ng->Tdu) *ng->Tdu = sdu;
    const REAL qk = FN(dot)(ni->q, ni->k, (size_t)DK);
    const REAL dyv = FN(dot)(dy, v, (size_t)DV);
    const REAL dqk = scale * D * dyv;
    if (ng->D) *ng->D = scale * qk * dyv;
    if (ng->Ml) *ng->Ml = scale * FN(dot)(ni->q, cyl, (size_t)DK);
    if (ng->Mu) *ng->Mu = scale * FN(dot)(ni->q, cyu, (size_t)DK);
    if (ng->Sr) *ng->Sr = FN(dot)(gkr, v, (size_t)DV);
    if (ng->Sd) *ng->Sd = FN(dot)(gkd, v, (size_t)DV);
    for (int d = 0; d < DK; d++) {
        w->dq[d] = scale * (ml * cyl[d] + mu * cyu[d]) + dqk * ni->k[d];
        w->dk[d] = dks[d] + dqk * ni->q[d];
    }
    const REAL cd = scale * D * qk;
    for (int j = 0; j < DV; j++)
        w->dv[j] = sr * gkr[j] + sd * gkd[j] + cd * dy[j];
}

/* ---- one node, forward ------------------------------------------------- */

/* Reads in_l/in_u, writes out_r/out_d (must not alias the inputs) and, if y
 * is non-NULL, the output y [DV,JO]. */
static void FN(node_fwd)(const seq2d_dims *m, const FN(node_in) *ni, const REAL *in_l,
                         const REAL *in_u, REAL *out_r, REAL *out_d, REAL *y,
                         const FN(scratch) *w)
{
    if (m->j1) {
        FN(node_fwd1)(m, ni, in_l, in_u, out_r, out_d, y, w);
        return;
    }
    FN(src_vs)(m, ni->Sr, ni->v, w->vs);
    FN(src_write)(m, ni->k, w->vs, out_r);
    FN(trans_acc)(m, ni->Trl, in_l, out_r);
    FN(trans_acc)(m, ni->Tru, in_u, out_r);
    FN(src_vs)(m, ni->Sd, ni->v, w->vs);
    FN(src_write)(m, ni->k, w->vs, out_d);
    FN(trans_acc)(m, ni->Tdl, in_l, out_d);
    FN(trans_acc)(m, ni->Tdu, in_u, out_d);
    if (!y)
        return;
    const int DV = m->DV, JV = m->JV, JO = m->JO;
    memset(w->ybuf, 0, sizeof(REAL) * (size_t)JO * DV);
    FN(mark_qm)(m, ni->q, ni->Ml, w->qm);
    FN(mark_read)(m, w->qm, in_l, w->ybuf);
    FN(mark_qm)(m, ni->q, ni->Mu, w->qm);
    FN(mark_read)(m, w->qm, in_u, w->ybuf);
    FN(direct_coef)(m, ni, w->qk, w->coef);
    const REAL scale = (REAL)m->scale;
    for (int j = 0; j < DV; j++)
        for (int o = 0; o < JO; o++) {
            REAL acc = w->ybuf[(size_t)o * DV + j];
            for (int c = 0; c < JV; c++)
                acc += w->coef[(size_t)o * JV + c] * ni->v[(size_t)j * JV + c];
            y[(size_t)j * JO + o] = scale * acc;
        }
}

/* ---- one node, backward ------------------------------------------------ */

/* Mark term for one incoming state C with mark M:
 * a = scale·R(M) (overwrites a), dM (if non-NULL), dq += ... */
static void FN(mark_bwd)(const seq2d_dims *m, const FN(node_in) *ni, const REAL *M,
                         const REAL *C, REAL *a, REAL *dM, const FN(scratch) *w)
{
    const int DK = m->DK, DV = m->DV, JQ = m->JQ, JT = m->JT, JO = m->JO;
    const REAL scale = (REAL)m->scale;
    FN(mark_qm)(m, ni->q, M, w->qm);
    for (int t = 0; t < JT; t++)
        for (int d = 0; d < DK; d++) {
            REAL *restrict o_ = a + (size_t)t * m->N + (size_t)d * DV;
            const REAL *restrict s = C + (size_t)t * m->N + (size_t)d * DV;
            for (int j = 0; j < DV; j++)
                o_[j] = 0;
            for (int o = 0; o < JO; o++) {
                const REAL c = scale * w->qm[((size_t)t * DK + d) * JO + o];
                const REAL *restrict g = w->dyT + (size_t)o * DV;
                for (int j = 0; j < DV; j++)
                    o_[j] += c * g[j];
                w->cy[((size_t)t * DK + d) * JO + o] = FN(dot)(s, g, (size_t)DV);
            }
        }
    /* dq[d,p] += scale Σ_{o,t} M[o,p,t] cy[t][d][o];  dM[o,p,t] = scale Σ_d q[d,p] cy[t][d][o] */
    for (int d = 0; d < DK; d++)
        for (int p = 0; p < JQ; p++) {
            REAL acc = 0;
            for (int o = 0; o < JO; o++)
                for (int t = 0; t < JT; t++)
                    acc += M[((size_t)o * JQ + p) * JT + t] * w->cy[((size_t)t * DK + d) * JO + o];
            w->dq[(size_t)d * JQ + p] += scale * acc;
        }
    if (dM)
        for (int o = 0; o < JO; o++)
            for (int p = 0; p < JQ; p++)
                for (int t = 0; t < JT; t++) {
                    REAL acc = 0;
                    for (int d = 0; d < DK; d++)
                        acc += ni->q[(size_t)d * JQ + p] * w->cy[((size_t)t * DK + d) * JO + o];
                    dM[((size_t)o * JQ + p) * JT + t] = scale * acc;
                }
}

/* Source term S ⋄ k v with state gradient g: dS (if non-NULL), dk, dv. */
static void FN(src_bwd)(const seq2d_dims *m, const FN(node_in) *ni, const REAL *S,
                        const REAL *g, REAL *dS, const FN(scratch) *w)
{
    const int DK = m->DK, DV = m->DV, JK = m->JK, JV = m->JV, JT = m->JT;
    FN(src_vs)(m, S, ni->v, w->vs);
    memset(w->gk, 0, sizeof(REAL) * (size_t)JT * JK * DV);
    for (int t = 0; t < JT; t++)
        for (int d = 0; d < DK; d++) {
            const REAL *restrict gs = g + (size_t)t * m->N + (size_t)d * DV;
            for (int a = 0; a < JK; a++) {
                /* dk[d,a] += Σ_v g[t,d,v] vs[t,a,v];  gk[t,a,v] += k[d,a] g[t,d,v] */
                const REAL *restrict vs = w->vs + ((size_t)t * JK + a) * DV;
                REAL *restrict gk = w->gk + ((size_t)t * JK + a) * DV;
                const REAL ka = ni->k[(size_t)d * JK + a];
                for (int j = 0; j < DV; j++)
                    gk[j] += ka * gs[j];
                w->dk[(size_t)d * JK + a] += FN(dot)(gs, vs, (size_t)DV);
            }
        }
    /* dS[t,a,c] = Σ_v gk[t,a,v] v[v,c];  dv[v,c] += Σ_{t,a} S[t,a,c] gk[t,a,v] */
    for (int t = 0; t < JT; t++)
        for (int a = 0; a < JK; a++) {
            const REAL *gk = w->gk + ((size_t)t * JK + a) * DV;
            for (int c = 0; c < JV; c++) {
                const REAL s = S[((size_t)t * JK + a) * JV + c];
                REAL acc = 0;
                for (int j = 0; j < DV; j++) {
                    acc += gk[j] * ni->v[(size_t)j * JV + c];
                    w->dv[(size_t)j * JV + c] += s * gk[j];
                }
                if (dS)
                    dS[((size_t)t * JK + a) * JV + c] = acc;
            }
        }
}

/* Direct term: dD (if non-NULL), dq, dk, dv. */
static void FN(direct_bwd)(const seq2d_dims *m, const FN(node_in) *ni, REAL *dD,
                           const FN(scratch) *w)
{
    const int DK = m->DK, DV = m->DV, JQ = m->JQ, JK = m->JK, JV = m->JV, JO = m->JO;
    const REAL scale = (REAL)m->scale;
    FN(direct_coef)(m, ni, w->qk, w->coef);
    for (int o = 0; o < JO; o++)
        for (int c = 0; c < JV; c++) {
            REAL acc = 0;
            for (int j = 0; j < DV; j++)
                acc += w->dyT[(size_t)o * DV + j] * ni->v[(size_t)j * JV + c];
            w->dyv[(size_t)o * JV + c] = acc;
        }
    for (int p = 0; p < JQ; p++)
        for (int a = 0; a < JK; a++) {
            REAL acc = 0;
            for (int o = 0; o < JO; o++)
                for (int c = 0; c < JV; c++) {
                    size_t i = (((size_t)o * JQ + p) * JK + a) * JV + c;
                    acc += ni->D[i] * w->dyv[(size_t)o * JV + c];
                    if (dD)
                        dD[i] = scale * w->qk[(size_t)p * JK + a] * w->dyv[(size_t)o * JV + c];
                }
            w->dqk[(size_t)p * JK + a] = scale * acc;
        }
    for (int d = 0; d < DK; d++) {
        for (int p = 0; p < JQ; p++)
            for (int a = 0; a < JK; a++)
                w->dq[(size_t)d * JQ + p] += w->dqk[(size_t)p * JK + a] * ni->k[(size_t)d * JK + a];
        for (int a = 0; a < JK; a++)
            for (int p = 0; p < JQ; p++)
                w->dk[(size_t)d * JK + a] += w->dqk[(size_t)p * JK + a] * ni->q[(size_t)d * JQ + p];
    }
    for (int j = 0; j < DV; j++)
        for (int c = 0; c < JV; c++) {
            REAL acc = 0;
            for (int o = 0; o < JO; o++)
                acc += w->coef[(size_t)o * JV + c] * w->dyT[(size_t)o * DV + j];
            w->dv[(size_t)j * JV + c] += scale * acc;
        }
}

/* Adjoint of node_fwd. g_r/g_d: gradients of the node's outgoing states.
 * Writes a_l/a_u (gradients of the incoming states; must not alias), the
 * node's gate gradients (non-NULL ones) and w->dq/dk/dv. */
static void FN(node_bwd)(const seq2d_dims *m, const FN(node_in) *ni, const REAL *in_l,
                         const REAL *in_u, const REAL *g_r, const REAL *g_d, const REAL *dy,
                         REAL *a_l, REAL *a_u, const FN(node_grad) *ng, const FN(scratch) *w)
{
    if (m->j1) {
        FN(node_bwd1)(m, ni, in_l, in_u, g_r, g_d, dy, a_l, a_u, ng, w);
        return;
    }
    const int DK = m->DK, DV = m->DV, JQ = m->JQ, JK = m->JK, JV = m->JV, JO = m->JO;
    for (int o = 0; o < JO; o++)
        for (int j = 0; j < DV; j++)
            w->dyT[(size_t)o * DV + j] = dy[(size_t)j * JO + o];
    memset(w->dq, 0, sizeof(REAL) * (size_t)DK * JQ);
    memset(w->dk, 0, sizeof(REAL) * (size_t)DK * JK);
    memset(w->dv, 0, sizeof(REAL) * (size_t)DV * JV);

    FN(mark_bwd)(m, ni, ni->Ml, in_l, a_l, ng->Ml, w);
    FN(mark_bwd)(m, ni, ni->Mu, in_u, a_u, ng->Mu, w);
    FN(transT_acc)(m, ni->Trl, g_r, a_l);
    FN(transT_acc)(m, ni->Tdl, g_d, a_l);
    FN(transT_acc)(m, ni->Tru, g_r, a_u);
    FN(transT_acc)(m, ni->Tdu, g_d, a_u);

    FN(trans_grad)(m, g_r, in_l, ng->Trl);
    FN(trans_grad)(m, g_r, in_u, ng->Tru);
    FN(trans_grad)(m, g_d, in_l, ng->Tdl);
    FN(trans_grad)(m, g_d, in_u, ng->Tdu);

    FN(src_bwd)(m, ni, ni->Sr, g_r, ng->Sr, w);
    FN(src_bwd)(m, ni, ni->Sd, g_d, ng->Sd, w);
    FN(direct_bwd)(m, ni, ng->D, w);
}

/* ---- layout conversion and per-node pointers ---------------------------- */

/* public [DK,DV,JT] -> internal [JT][DK·DV]; src NULL gives zeros */
static void FN(state_in)(const seq2d_dims *m, const REAL *src, REAL *dst)
{
    const size_t N = m->N;
    const int JT = m->JT;
    if (!src) {
        memset(dst, 0, sizeof(REAL) * m->SZ);
        return;
    }
    for (size_t n = 0; n < N; n++)
        for (int t = 0; t < JT; t++)
            dst[(size_t)t * N + n] = src[n * JT + t];
}

static void FN(state_out)(const seq2d_dims *m, const REAL *src, REAL *dst)
{
    const size_t N = m->N;
    const int JT = m->JT;
    for (size_t n = 0; n < N; n++)
        for (int t = 0; t < JT; t++)
            dst[n * JT + t] = src[(size_t)t * N + n];
}

#define SEQ2D_AT(ptr, i, n) ((ptr) ? (ptr) + (size_t)(i) * (n) : NULL)

static void FN(node_inputs)(const seq2d_dims *m, const plstm_core2d_inputs *in, size_t i,
                            FN(node_in) *ni)
{
    ni->q = (const REAL *)in->Q + i * m->nq;
    ni->k = (const REAL *)in->K + i * m->nk;
    ni->v = (const REAL *)in->V + i * m->nv;
    ni->Sr = (const REAL *)in->S_r + i * m->ns;
    ni->Sd = (const REAL *)in->S_d + i * m->ns;
    ni->Trl = (const REAL *)in->T_rl + i * m->nt;
    ni->Tdu = (const REAL *)in->T_du + i * m->nt;
    ni->Tdl = SEQ2D_AT((const REAL *)in->T_dl, i, m->nt);
    ni->Tru = SEQ2D_AT((const REAL *)in->T_ru, i, m->nt);
    ni->Ml = (const REAL *)in->M_l + i * m->nm;
    ni->Mu = (const REAL *)in->M_u + i * m->nm;
    ni->D = (const REAL *)in->D + i * m->nd;
}

static void FN(node_grads)(const seq2d_dims *m, const plstm_core2d_grads *g, size_t i,
                           FN(node_grad) *ng)
{
    ng->Sr = SEQ2D_AT((REAL *)g->S_r, i, m->ns);
    ng->Sd = SEQ2D_AT((REAL *)g->S_d, i, m->ns);
    ng->Trl = SEQ2D_AT((REAL *)g->T_rl, i, m->nt);
    ng->Tdu = SEQ2D_AT((REAL *)g->T_du, i, m->nt);
    ng->Tdl = SEQ2D_AT((REAL *)g->T_dl, i, m->nt);
    ng->Tru = SEQ2D_AT((REAL *)g->T_ru, i, m->nt);
    ng->Ml = SEQ2D_AT((REAL *)g->M_l, i, m->nm);
    ng->Mu = SEQ2D_AT((REAL *)g->M_u, i, m->nm);
    ng->D = SEQ2D_AT((REAL *)g->D, i, m->nd);
}

static void FN(swap)(REAL **a, REAL **b)
{
    REAL *t = *a;
    *a = *b;
    *b = t;
}

/* ---- forward over one batch entry --------------------------------------- */

/* Runs rows x0..x1-1. `line[y]` holds C^r_{x0-1,y} on entry and C^r_{x1-1,y}
 * on exit (pointers are swapped with `spare`). Writes Y (if y_out) and
 * C_bottom (if cb_out) for these rows. */
static void FN(fwd_rows)(const seq2d_dims *m, const plstm_core2d_inputs *in, int b, int x0,
                         int x1, REAL **line, REAL **spare, REAL **cd, REAL **cd_spare,
                         REAL *y_out, REAL *cb_out, const FN(scratch) *w)
{
    for (int x = x0; x < x1; x++) {
        FN(state_in)(m, SEQ2D_AT((const REAL *)in->C0_top, (size_t)b * m->X + x, m->SZ), *cd);
        for (int y = 0; y < m->Y; y++) {
            size_t i = ((size_t)b * m->X + x) * m->Y + y;
            FN(node_in) ni;
            FN(node_inputs)(m, in, i, &ni);
            FN(node_fwd)(m, &ni, line[y], *cd, *spare, *cd_spare, SEQ2D_AT(y_out, i, m->ny), w);
            FN(swap)(&line[y], spare);
            FN(swap)(cd, cd_spare);
        }
        if (cb_out)
            FN(state_out)(m, *cd, cb_out + ((size_t)b * m->X + x) * m->SZ);
    }
}

static plstm_status FN(forward)(const seq2d_dims *m, int threads,
                                const plstm_core2d_inputs *in, const plstm_core2d_outputs *out)
{
    const size_t SZ = m->SZ;
    const int Yn = m->Y;
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        /* line: Y states + 1 spare; cd + spare; then node scratch */
        size_t nstate = (size_t)Yn + 3;
        REAL *buf = malloc(sizeof(REAL) * (nstate * SZ + FN(scratch_elems)(m)));
        REAL **line = malloc(sizeof(REAL *) * (size_t)Yn);
        if (!buf || !line) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int b = 0; b < m->B; b++) {
            if (!buf || !line)
                continue;
            FN(scratch) w;
            FN(scratch_init)(m, &w, buf + nstate * SZ);
            for (int y = 0; y < Yn; y++) {
                line[y] = buf + (size_t)y * SZ;
                FN(state_in)(m, SEQ2D_AT((const REAL *)in->C0_left, (size_t)b * Yn + y, SZ),
                             line[y]);
            }
            REAL *spare = buf + (size_t)Yn * SZ, *cd = spare + SZ, *cd_spare = cd + SZ;
            FN(fwd_rows)(m, in, b, 0, m->X, line, &spare, &cd, &cd_spare, (REAL *)out->Y,
                         (REAL *)out->C_bottom, &w);
            if (out->C_right)
                for (int y = 0; y < Yn; y++)
                    FN(state_out)(m, line[y], (REAL *)out->C_right + ((size_t)b * Yn + y) * SZ);
        }
        free(line);
        free(buf);
    }
    if (failed)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "core2d sequential forward: out of memory");
    return PLSTM_OK;
}

/* ---- backward over one batch entry -------------------------------------- */

/* Workspace of one thread for the backward (see the file comment). */
typedef struct FN(bwd_ws) {
    REAL *ckpt; /* [nblk][Y] state lines at block starts             */
    REAL *L;    /* [K+1][Y]  left-incoming states of the block's nodes */
    REAL *U;    /* [K][Y+1]  top-incoming states of the block's nodes  */
    REAL *gline_buf; /* Y+1 gradient states (right-going)             */
    REAL *tmp;  /* 4 states: cd/cd_spare in sweep 1, gd/gd spare      */
    REAL **line, **gline;
    FN(scratch) w;
} FN(bwd_ws);

static void FN(backward_batch)(const seq2d_dims *m, const plstm_core2d_inputs *in,
                               const plstm_core2d_cotangents *dout,
                               const plstm_core2d_grads *grad, int b, int K, FN(bwd_ws) *ws)
{
    const size_t SZ = m->SZ;
    const int X = m->X, Yn = m->Y;
    const int nblk = (X + K - 1) / K;

    /* Sweep 1: forward, saving the state line at every block start. */
    REAL *spare = ws->gline_buf, *cd = ws->tmp, *cd_spare = ws->tmp + SZ;
    for (int y = 0; y < Yn; y++) {
        ws->line[y] = ws->L + (size_t)y * SZ; /* L is free in this sweep */
        FN(state_in)(m, SEQ2D_AT((const REAL *)in->C0_left, (size_t)b * Yn + y, SZ), ws->line[y]);
    }
    for (int blk = 0; blk < nblk; blk++) {
        REAL *ck = ws->ckpt + (size_t)blk * Yn * SZ;
        for (int y = 0; y < Yn; y++)
            memcpy(ck + (size_t)y * SZ, ws->line[y], sizeof(REAL) * SZ);
        if (blk + 1 < nblk) {
            int x1 = (blk + 1) * K;
            FN(fwd_rows)(m, in, b, blk * K, x1, ws->line, &spare, &cd, &cd_spare, NULL, NULL,
                         &ws->w);
        }
    }

    /* Gradient line: g^r for the current row, started from dC_right. */
    for (int y = 0; y < Yn; y++) {
        ws->gline[y] = ws->gline_buf + (size_t)y * SZ;
        FN(state_in)(m, SEQ2D_AT((const REAL *)dout->C_right, (size_t)b * Yn + y, SZ),
                     ws->gline[y]);
    }
    REAL *gspare = ws->gline_buf + (size_t)Yn * SZ;
    REAL *gd = ws->tmp + 2 * SZ, *gd_spare = ws->tmp + 3 * SZ;

    for (int blk = nblk - 1; blk >= 0; blk--) {
        const int x0 = blk * K, x1 = (x0 + K < X) ? x0 + K : X;
        /* Recompute the block's incoming states into L / U. */
        memcpy(ws->L, ws->ckpt + (size_t)blk * Yn * SZ, sizeof(REAL) * (size_t)Yn * SZ);
        for (int x = x0; x < x1; x++) {
            const int xi = x - x0;
            REAL *Urow = ws->U + (size_t)xi * (Yn + 1) * SZ;
            FN(state_in)(m, SEQ2D_AT((const REAL *)in->C0_top, (size_t)b * X + x, SZ), Urow);
            for (int y = 0; y < Yn; y++) {
                size_t i = ((size_t)b * X + x) * Yn + y;
                FN(node_in) ni;
                FN(node_inputs)(m, in, i, &ni);
                FN(node_fwd)(m, &ni, ws->L + ((size_t)xi * Yn + y) * SZ, Urow + (size_t)y * SZ,
                             ws->L + ((size_t)(xi + 1) * Yn + y) * SZ,
                             Urow + (size_t)(y + 1) * SZ, NULL, &ws->w);
            }
        }
        /* Adjoint over the block in reverse order. */
        for (int x = x1 - 1; x >= x0; x--) {
            const int xi = x - x0;
            const REAL *Urow = ws->U + (size_t)xi * (Yn + 1) * SZ;
            FN(state_in)(m, SEQ2D_AT((const REAL *)dout->C_bottom, (size_t)b * X + x, SZ), gd);
            for (int y = Yn - 1; y >= 0; y--) {
                size_t i = ((size_t)b * X + x) * Yn + y;
                FN(node_in) ni;
                FN(node_inputs)(m, in, i, &ni);
                FN(node_grad) ng;
                FN(node_grads)(m, grad, i, &ng);
                FN(node_bwd)(m, &ni, ws->L + ((size_t)xi * Yn + y) * SZ, Urow + (size_t)y * SZ,
                             ws->gline[y], gd, (const REAL *)dout->Y + i * m->ny, gspare,
                             gd_spare, &ng, &ws->w);
                FN(swap)(&ws->gline[y], &gspare);
                FN(swap)(&gd, &gd_spare);
                if (grad->Q)
                    memcpy((REAL *)grad->Q + i * m->nq, ws->w.dq, sizeof(REAL) * m->nq);
                if (grad->K)
                    memcpy((REAL *)grad->K + i * m->nk, ws->w.dk, sizeof(REAL) * m->nk);
                if (grad->V)
                    memcpy((REAL *)grad->V + i * m->nv, ws->w.dv, sizeof(REAL) * m->nv);
            }
            if (grad->C0_top)
                FN(state_out)(m, gd, (REAL *)grad->C0_top + ((size_t)b * X + x) * SZ);
        }
    }
    if (grad->C0_left)
        for (int y = 0; y < Yn; y++)
            FN(state_out)(m, ws->gline[y], (REAL *)grad->C0_left + ((size_t)b * Yn + y) * SZ);
}

static plstm_status FN(backward)(const seq2d_dims *m, int threads,
                                 const plstm_core2d_inputs *in,
                                 const plstm_core2d_cotangents *dout,
                                 const plstm_core2d_grads *grad)
{
    const size_t SZ = m->SZ, Yn = (size_t)m->Y;
    /* Block height K ~ sqrt(X/2) balances checkpoints (X/K lines) against the
     * recomputed block (2K lines). */
    int K = (int)(sqrt(0.5 * m->X) + 0.5);
    if (K < 1)
        K = 1;
    /* Small grids of non-tiny states: keep every state of the grid (one
     * block), so the backward recomputes the forward once instead of twice;
     * same arithmetic. Tiny states (SZ < 32, only in tests) keep the blocks. */
    if (SZ >= 32 && (size_t)(2 * m->X + 1) * (Yn + 1) * SZ * sizeof(REAL) <= ((size_t)4 << 20))
        K = m->X;
    const size_t nblk = ((size_t)m->X + K - 1) / K;
    const size_t nstate = nblk * Yn + (K + 1) * Yn + (size_t)K * (Yn + 1) + (Yn + 1) + 4;
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        REAL *buf = malloc(sizeof(REAL) * (nstate * SZ + FN(scratch_elems)(m)));
        REAL **ptrs = malloc(sizeof(REAL *) * 2 * Yn);
        if (!buf || !ptrs) {
#pragma omp atomic write
            failed = 1;
        }
        FN(bwd_ws) ws;
        if (buf && ptrs) {
            REAL *p = buf;
            ws.ckpt = p; p += nblk * Yn * SZ;
            ws.L = p; p += (K + 1) * Yn * SZ;
            ws.U = p; p += (size_t)K * (Yn + 1) * SZ;
            ws.gline_buf = p; p += (Yn + 1) * SZ;
            ws.tmp = p; p += 4 * SZ;
            FN(scratch_init)(m, &ws.w, p);
            ws.line = ptrs;
            ws.gline = ptrs + Yn;
        }
#pragma omp for schedule(dynamic, 1)
        for (int b = 0; b < m->B; b++)
            if (buf && ptrs)
                FN(backward_batch)(m, in, dout, grad, b, K, &ws);
        free(ptrs);
        free(buf);
    }
    if (failed)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "core2d sequential backward: out of memory");
    return PLSTM_OK;
}

#undef SEQ2D_AT
