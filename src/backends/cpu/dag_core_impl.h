/* The DAG pLSTM core (plstm-math.md §1) over one real type. Included by
 * dag_core.c with REAL (float/double) and FN(name) defined.
 *
 * Internally an edge state is [JT][DK][DV] (t outermost), so transitions,
 * source writes and mark reads are loops over contiguous DK·DV or DV runs.
 *
 * Work units never write the same memory, so no atomics are needed:
 *   forward  edge (b,e): C_e from the states into tail(e) and the source;
 *            node (b,n): y_n from the states into n and the direct term;
 *   backward edge (b,e): g_e = dL/dC_e pulled from the arcs out of e plus the
 *            mark term at head(e); dT of the arcs into e;
 *            node (b,n): dq, dk, dv, dD of n, dM of the edges into n, dS of
 *            the edges out of n.
 * Edge units of one level (and all node units) are independent. */

typedef struct FN(bdata) {
    const REAL *Q, *K, *V, *S, *T, *M, *D, *dY;
    REAL *Y, *C, *G; /* C, G: this entry's edge states / their gradients */
    REAL *dQ, *dK, *dV, *dS, *dT, *dM, *dD;
} FN(bdata);

typedef struct FN(scratch) {
    REAL *vs, *gk;   /* [JT][JK][DV] */
    REAL *qm, *cy;   /* [JT][DK][JO] */
    REAL *ybuf, *dyT; /* [JO][DV]     */
    REAL *qk, *dqk;  /* [JQ][JK]     */
    REAL *coef, *dyv; /* [JO][JV]     */
    REAL *dq, *dk, *dv;
} FN(scratch);

static void FN(scratch_init)(const dag_dims *m, FN(scratch) *w, REAL *p)
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
    w->dv = p;
}

static FN(bdata) FN(bdata_at)(const dag_dims *m, const plstm_dag *g,
                              const plstm_dag_core_inputs *in, const REAL *dY, REAL *Y,
                              const plstm_dag_core_grads *gr, int64_t b, REAL *C, REAL *G)
{
    const size_t N = (size_t)g->N, E = (size_t)g->E, A = (size_t)g->A, bb = (size_t)b;
#define OFF(ptr, per) ((ptr) ? (REAL *)(ptr) + bb * (per) : NULL)
    FN(bdata) d = {
        .Q = OFF(in->Q, N * m->nq), .K = OFF(in->K, N * m->nk), .V = OFF(in->V, N * m->nv),
        .S = OFF(in->S, E * m->ns), .T = OFF(in->T, A * m->nt), .M = OFF(in->M, E * m->nm),
        .D = OFF(in->D, N * m->nd), .dY = OFF(dY, N * m->ny), .Y = OFF(Y, N * m->ny),
        .C = C, .G = G};
    if (gr) {
        d.dQ = OFF(gr->Q, N * m->nq); d.dK = OFF(gr->K, N * m->nk);
        d.dV = OFF(gr->V, N * m->nv); d.dS = OFF(gr->S, E * m->ns);
        d.dT = OFF(gr->T, A * m->nt); d.dM = OFF(gr->M, E * m->nm);
        d.dD = OFF(gr->D, N * m->nd);
    }
#undef OFF
    return d;
}

/* ---- elementary operations ------------------------------------------------ */

#include "backends/cpu/real_dot_impl.h"

/* vs[t][a][v] = Σ_c S[t,a,c] v[v,c] */
static void FN(src_vs)(const dag_dims *m, const REAL *S, const REAL *v, REAL *vs)
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

/* out[t][d][:] = Σ_a k[d,a] vs[t][a][:]   (S ⋄ k v, overwriting out) */
static void FN(src_write)(const dag_dims *m, const REAL *k, const REAL *vs, REAL *out)
{
    const int DK = m->DK, DV = m->DV, JK = m->JK, JT = m->JT;
    for (int t = 0; t < JT; t++)
        for (int d = 0; d < DK; d++) {
            REAL *restrict o = out + (size_t)t * m->NS + (size_t)d * DV;
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

/* out[t] += Σ_t' T[t,t'] in[t'] */
static void FN(trans_acc)(const dag_dims *m, const REAL *T, const REAL *in, REAL *out)
{
    const size_t NS = m->NS;
    const int JT = m->JT;
    for (int t = 0; t < JT; t++) {
        REAL *restrict o = out + (size_t)t * NS;
        for (int u = 0; u < JT; u++) {
            const REAL c = T[(size_t)t * JT + u];
            const REAL *restrict s = in + (size_t)u * NS;
            for (size_t n = 0; n < NS; n++)
                o[n] += c * s[n];
        }
    }
}

/* a[t'] += Σ_t T[t,t'] g[t]   (adjoint of trans_acc) */
static void FN(transT_acc)(const dag_dims *m, const REAL *T, const REAL *g, REAL *a)
{
    const size_t NS = m->NS;
    const int JT = m->JT;
    for (int u = 0; u < JT; u++) {
        REAL *restrict o = a + (size_t)u * NS;
        for (int t = 0; t < JT; t++) {
            const REAL c = T[(size_t)t * JT + u];
            const REAL *restrict s = g + (size_t)t * NS;
            for (size_t n = 0; n < NS; n++)
                o[n] += c * s[n];
        }
    }
}

/* qm[t][d][o] = Σ_p q[d,p] M[o,p,t] */
static void FN(mark_qm)(const dag_dims *m, const REAL *q, const REAL *M, REAL *qm)
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
static void FN(mark_read)(const dag_dims *m, const REAL *qm, const REAL *C, REAL *ybuf)
{
    const int DK = m->DK, DV = m->DV, JT = m->JT, JO = m->JO;
    for (int o = 0; o < JO; o++) {
        REAL *restrict yo = ybuf + (size_t)o * DV;
        for (int t = 0; t < JT; t++)
            for (int d = 0; d < DK; d++) {
                const REAL c = qm[((size_t)t * DK + d) * JO + o];
                const REAL *restrict s = C + (size_t)t * m->NS + (size_t)d * DV;
                for (int j = 0; j < DV; j++)
                    yo[j] += c * s[j];
            }
    }
}

/* g[t][d][v] = scale Σ_o qm[t][d][o] dyT[o][v]   (adjoint of mark_read, overwriting g) */
static void FN(mark_write)(const dag_dims *m, const REAL *qm, const REAL *dyT, REAL *g)
{
    const int DK = m->DK, DV = m->DV, JT = m->JT, JO = m->JO;
    const REAL sc = (REAL)m->scale;
    for (int t = 0; t < JT; t++)
        for (int d = 0; d < DK; d++) {
            REAL *restrict o = g + (size_t)t * m->NS + (size_t)d * DV;
            const REAL *qmd = qm + ((size_t)t * DK + d) * JO;
            for (int j = 0; j < DV; j++)
                o[j] = 0;
            for (int oo = 0; oo < JO; oo++) {
                const REAL c = sc * qmd[oo];
                const REAL *restrict s = dyT + (size_t)oo * DV;
                for (int j = 0; j < DV; j++)
                    o[j] += c * s[j];
            }
        }
}

/* dyT[o][v] = dy[v,o] */
static void FN(transpose_dy)(const dag_dims *m, const REAL *dy, REAL *dyT)
{
    for (int v = 0; v < m->DV; v++)
        for (int o = 0; o < m->JO; o++)
            dyT[(size_t)o * m->DV + v] = dy[(size_t)v * m->JO + o];
}

/* qk[p][a] = Σ_d q[d,p] k[d,a];  coef[o][c] = Σ_{p,a} D[o,p,a,c] qk[p,a] */
static void FN(direct_coef)(const dag_dims *m, const REAL *q, const REAL *k, const REAL *D,
                            REAL *qk, REAL *coef)
{
    const int DK = m->DK, JQ = m->JQ, JK = m->JK, JV = m->JV, JO = m->JO;
    for (int p = 0; p < JQ; p++)
        for (int a = 0; a < JK; a++) {
            REAL acc = 0;
            for (int d = 0; d < DK; d++)
                acc += q[(size_t)d * JQ + p] * k[(size_t)d * JK + a];
            qk[p * JK + a] = acc;
        }
    for (int o = 0; o < JO; o++)
        for (int c = 0; c < JV; c++) {
            REAL acc = 0;
            for (int p = 0; p < JQ; p++)
                for (int a = 0; a < JK; a++)
                    acc += D[(((size_t)o * JQ + p) * JK + a) * JV + c] * qk[p * JK + a];
            coef[o * JV + c] = acc;
        }
}

/* ---- forward units ----------------------------------------------------------
 * `slot` maps an edge to its state's place in bd->C (NULL: the edge index). */

#define STATE(bd, slot, e) ((bd)->C + (size_t)((slot) ? (slot)[e] : (e)) * m->SZ)

static void FN(edge_fwd)(const dag_dims *m, const plstm_dag *g, const FN(bdata) *bd,
                         const int64_t *slot, int64_t e, FN(scratch) *w)
{
    const int64_t n = g->tail[e];
    REAL *Ce = STATE(bd, slot, e);
    FN(src_vs)(m, bd->S + (size_t)e * m->ns, bd->V + (size_t)n * m->nv, w->vs);
    FN(src_write)(m, bd->K + (size_t)n * m->nk, w->vs, Ce);
    for (int64_t a = g->arc_off[e]; a < g->arc_off[e + 1]; a++)
        FN(trans_acc)(m, bd->T + (size_t)a * m->nt, STATE(bd, slot, g->arc_from[a]), Ce);
}

static void FN(node_fwd)(const dag_dims *m, const plstm_dag *g, const FN(bdata) *bd,
                         const int64_t *slot, int64_t n, FN(scratch) *w)
{
    const int DV = m->DV, JO = m->JO, JV = m->JV;
    const REAL *q = bd->Q + (size_t)n * m->nq, *v = bd->V + (size_t)n * m->nv;
    memset(w->ybuf, 0, (size_t)JO * DV * sizeof(REAL));
    for (int64_t i = g->in_off[n]; i < g->in_off[n + 1]; i++) {
        const int64_t e = g->in_edges[i];
        FN(mark_qm)(m, q, bd->M + (size_t)e * m->nm, w->qm);
        FN(mark_read)(m, w->qm, STATE(bd, slot, e), w->ybuf);
    }
    FN(direct_coef)(m, q, bd->K + (size_t)n * m->nk, bd->D + (size_t)n * m->nd, w->qk, w->coef);
    REAL *y = bd->Y + (size_t)n * m->ny;
    const REAL sc = (REAL)m->scale;
    for (int j = 0; j < DV; j++)
        for (int o = 0; o < JO; o++) {
            REAL acc = w->ybuf[(size_t)o * DV + j];
            for (int c = 0; c < JV; c++)
                acc += w->coef[o * JV + c] * v[(size_t)j * JV + c];
            y[(size_t)j * JO + o] = sc * acc;
        }
}

#undef STATE

/* ---- backward units --------------------------------------------------------- */

static void FN(edge_bwd)(const dag_dims *m, const plstm_dag *g, const FN(bdata) *bd, int64_t e,
                         FN(scratch) *w)
{
    const int64_t h = g->head[e];
    REAL *Ge = bd->G + (size_t)e * m->SZ;
    FN(transpose_dy)(m, bd->dY + (size_t)h * m->ny, w->dyT);
    FN(mark_qm)(m, bd->Q + (size_t)h * m->nq, bd->M + (size_t)e * m->nm, w->qm);
    FN(mark_write)(m, w->qm, w->dyT, Ge);
    for (int64_t i = g->succ_off[e]; i < g->succ_off[e + 1]; i++) {
        const int64_t a = g->succ_arcs[i];
        FN(transT_acc)(m, bd->T + (size_t)a * m->nt, bd->G + (size_t)g->arc_to[a] * m->SZ, Ge);
    }
    if (!bd->dT)
        return;
    const int JT = m->JT;
    for (int64_t a = g->arc_off[e]; a < g->arc_off[e + 1]; a++) {
        const REAL *Cin = bd->C + (size_t)g->arc_from[a] * m->SZ;
        REAL *dT = bd->dT + (size_t)a * m->nt;
        for (int t = 0; t < JT; t++)
            for (int u = 0; u < JT; u++)
                dT[t * JT + u] = FN(dot)(Ge + (size_t)t * m->NS, Cin + (size_t)u * m->NS, m->NS);
    }
}

/* The mark side of node n: dM of each edge into n and its part of dq. */
static void FN(node_bwd_marks)(const dag_dims *m, const plstm_dag *g, const FN(bdata) *bd,
                               int64_t n, FN(scratch) *w)
{
    const int DK = m->DK, DV = m->DV, JQ = m->JQ, JT = m->JT, JO = m->JO;
    const REAL sc = (REAL)m->scale;
    const REAL *q = bd->Q + (size_t)n * m->nq;
    for (int64_t i = g->in_off[n]; i < g->in_off[n + 1]; i++) {
        const int64_t e = g->in_edges[i];
        const REAL *C = bd->C + (size_t)e * m->SZ, *M = bd->M + (size_t)e * m->nm;
        /* cy[t][d][o] = Σ_v C[t][d][v] dy[v,o] */
        for (int t = 0; t < JT; t++)
            for (int d = 0; d < DK; d++)
                for (int o = 0; o < JO; o++)
                    w->cy[((size_t)t * DK + d) * JO + o] =
                        FN(dot)(C + (size_t)t * m->NS + (size_t)d * DV, w->dyT + (size_t)o * DV,
                                (size_t)DV);
        if (bd->dM) {
            REAL *dM = bd->dM + (size_t)e * m->nm;
            for (int o = 0; o < JO; o++)
                for (int p = 0; p < JQ; p++)
                    for (int t = 0; t < JT; t++) {
                        REAL acc = 0;
                        for (int d = 0; d < DK; d++)
                            acc += q[(size_t)d * JQ + p] * w->cy[((size_t)t * DK + d) * JO + o];
                        dM[((size_t)o * JQ + p) * JT + t] = sc * acc;
                    }
        }
        for (int d = 0; d < DK; d++)
            for (int p = 0; p < JQ; p++) {
                REAL acc = 0;
                for (int t = 0; t < JT; t++)
                    for (int o = 0; o < JO; o++)
                        acc += M[((size_t)o * JQ + p) * JT + t] *
                               w->cy[((size_t)t * DK + d) * JO + o];
                w->dq[(size_t)d * JQ + p] += sc * acc;
            }
    }
}

/* The source side of node n: dS of each edge out of n and its part of dk, dv. */
static void FN(node_bwd_sources)(const dag_dims *m, const plstm_dag *g, const FN(bdata) *bd,
                                 int64_t n, FN(scratch) *w)
{
    const int DK = m->DK, DV = m->DV, JK = m->JK, JV = m->JV, JT = m->JT;
    const REAL *k = bd->K + (size_t)n * m->nk, *v = bd->V + (size_t)n * m->nv;
    for (int64_t i = g->out_off[n]; i < g->out_off[n + 1]; i++) {
        const int64_t e = g->out_edges[i];
        const REAL *Ge = bd->G + (size_t)e * m->SZ, *S = bd->S + (size_t)e * m->ns;
        /* gk[t][a][v] = Σ_d k[d,a] g[t][d][v] */
        for (int t = 0; t < JT; t++)
            for (int a = 0; a < JK; a++) {
                REAL *restrict o = w->gk + ((size_t)t * JK + a) * DV;
                for (int j = 0; j < DV; j++)
                    o[j] = 0;
                for (int d = 0; d < DK; d++) {
                    const REAL c = k[(size_t)d * JK + a];
                    const REAL *restrict s = Ge + (size_t)t * m->NS + (size_t)d * DV;
                    for (int j = 0; j < DV; j++)
                        o[j] += c * s[j];
                }
            }
        REAL *dS = bd->dS ? bd->dS + (size_t)e * m->ns : NULL;
        for (int t = 0; t < JT; t++)
            for (int a = 0; a < JK; a++) {
                const REAL *gka = w->gk + ((size_t)t * JK + a) * DV;
                const REAL *Sta = S + ((size_t)t * JK + a) * JV;
                for (int j = 0; j < DV; j++)
                    for (int c = 0; c < JV; c++)
                        w->dv[(size_t)j * JV + c] += gka[j] * Sta[c];
                if (dS)
                    for (int c = 0; c < JV; c++) {
                        REAL acc = 0;
                        for (int j = 0; j < DV; j++)
                            acc += gka[j] * v[(size_t)j * JV + c];
                        dS[((size_t)t * JK + a) * JV + c] = acc;
                    }
            }
        /* dk[d,a] += Σ_t Σ_v g[t][d][v] vs[t][a][v] */
        FN(src_vs)(m, S, v, w->vs);
        for (int d = 0; d < DK; d++)
            for (int a = 0; a < JK; a++) {
                REAL acc = 0;
                for (int t = 0; t < JT; t++)
                    acc += FN(dot)(Ge + (size_t)t * m->NS + (size_t)d * DV,
                                   w->vs + ((size_t)t * JK + a) * DV, (size_t)DV);
                w->dk[(size_t)d * JK + a] += acc;
            }
    }
}

/* The direct term of node n: dD and its parts of dq, dk, dv. */
static void FN(node_bwd_direct)(const dag_dims *m, const FN(bdata) *bd, int64_t n,
                                FN(scratch) *w)
{
    const int DK = m->DK, DV = m->DV, JQ = m->JQ, JK = m->JK, JV = m->JV, JO = m->JO;
    const REAL sc = (REAL)m->scale;
    const REAL *q = bd->Q + (size_t)n * m->nq, *k = bd->K + (size_t)n * m->nk;
    const REAL *v = bd->V + (size_t)n * m->nv, *D = bd->D + (size_t)n * m->nd;
    FN(direct_coef)(m, q, k, D, w->qk, w->coef);
    /* dyv[o][c] = scale Σ_v dy[v,o] v[v,c] */
    for (int o = 0; o < JO; o++)
        for (int c = 0; c < JV; c++) {
            REAL acc = 0;
            for (int j = 0; j < DV; j++)
                acc += w->dyT[(size_t)o * DV + j] * v[(size_t)j * JV + c];
            w->dyv[o * JV + c] = sc * acc;
        }
    for (int j = 0; j < DV; j++)
        for (int c = 0; c < JV; c++) {
            REAL acc = 0;
            for (int o = 0; o < JO; o++)
                acc += w->coef[o * JV + c] * w->dyT[(size_t)o * DV + j];
            w->dv[(size_t)j * JV + c] += sc * acc;
        }
    REAL *dD = bd->dD ? bd->dD + (size_t)n * m->nd : NULL;
    for (int p = 0; p < JQ; p++)
        for (int a = 0; a < JK; a++) {
            REAL acc = 0;
            for (int o = 0; o < JO; o++)
                for (int c = 0; c < JV; c++) {
                    const size_t i = (((size_t)o * JQ + p) * JK + a) * JV + c;
                    acc += D[i] * w->dyv[o * JV + c];
                    if (dD)
                        dD[i] = w->qk[p * JK + a] * w->dyv[o * JV + c];
                }
            w->dqk[p * JK + a] = acc;
        }
    for (int d = 0; d < DK; d++) {
        for (int p = 0; p < JQ; p++) {
            REAL acc = 0;
            for (int a = 0; a < JK; a++)
                acc += w->dqk[p * JK + a] * k[(size_t)d * JK + a];
            w->dq[(size_t)d * JQ + p] += acc;
        }
        for (int a = 0; a < JK; a++) {
            REAL acc = 0;
            for (int p = 0; p < JQ; p++)
                acc += w->dqk[p * JK + a] * q[(size_t)d * JQ + p];
            w->dk[(size_t)d * JK + a] += acc;
        }
    }
}

static void FN(node_bwd)(const dag_dims *m, const plstm_dag *g, const FN(bdata) *bd, int64_t n,
                         FN(scratch) *w)
{
    memset(w->dq, 0, m->nq * sizeof(REAL));
    memset(w->dk, 0, m->nk * sizeof(REAL));
    memset(w->dv, 0, m->nv * sizeof(REAL));
    FN(transpose_dy)(m, bd->dY + (size_t)n * m->ny, w->dyT);
    FN(node_bwd_marks)(m, g, bd, n, w);
    FN(node_bwd_sources)(m, g, bd, n, w);
    FN(node_bwd_direct)(m, bd, n, w);
    if (bd->dQ)
        memcpy(bd->dQ + (size_t)n * m->nq, w->dq, m->nq * sizeof(REAL));
    if (bd->dK)
        memcpy(bd->dK + (size_t)n * m->nk, w->dk, m->nk * sizeof(REAL));
    if (bd->dV)
        memcpy(bd->dV + (size_t)n * m->nv, w->dv, m->nv * sizeof(REAL));
}

/* ---- drivers -----------------------------------------------------------------
 *
 * The batch is processed in chunks of `bc` entries so the edge states of one
 * chunk fit the workspace budget. The forward keeps only the live states
 * (g->slot); the backward keeps every state and every state gradient. */

static plstm_status FN(run)(const dag_dims *m, int threads, const plstm_dag *g,
                            const plstm_dag_core_inputs *in, REAL *Y, const REAL *dY,
                            const plstm_dag_core_grads *gr, int sequential)
{
    const int backward = gr != NULL;
    const size_t per_b = (size_t)(backward ? 2 * g->E : g->num_slots) * m->SZ;
    int bc = dag_chunk(m->B, per_b * sizeof(REAL), m->budget);
    if (sequential && bc < threads) /* keep every thread busy */
        bc = threads < m->B ? threads : m->B;
    const size_t scr_n = dag_scratch_elems(m);
    REAL *work = malloc(((size_t)bc * per_b + (size_t)threads * scr_n + 1) * sizeof(REAL));
    if (!work)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY,
                          "dag core: cannot allocate edge states for %d batch entries", bc);
    REAL *states = work + (size_t)threads * scr_n;
    const int64_t L = g->L, E = g->E, N = g->N;
    const int64_t *fslot = backward ? NULL : g->slot;

    for (int b0 = 0; b0 < m->B; b0 += bc) {
        const int nb = m->B - b0 < bc ? m->B - b0 : bc;
#define BD(bi) \
    FN(bdata_at)(m, g, in, dY, Y, gr, b0 + (bi), states + (size_t)(bi) * per_b, \
                 backward ? states + (size_t)(bi) * per_b + (size_t)E * m->SZ : NULL)
        if (sequential) {
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
            for (int bi = 0; bi < nb; bi++) {
                FN(scratch) w;
                FN(scratch_init)(m, &w, work + (size_t)omp_get_thread_num() * scr_n);
                const FN(bdata) bd = BD(bi);
                if (!backward) {
                    for (int64_t h = 0; h <= L; h++) {
                        if (h < L)
                            for (int64_t i = g->level_off[h]; i < g->level_off[h + 1]; i++)
                                FN(edge_fwd)(m, g, &bd, fslot, g->level_edges[i], &w);
                        for (int64_t i = g->hnode_off[h]; i < g->hnode_off[h + 1]; i++)
                            FN(node_fwd)(m, g, &bd, fslot, g->hnodes[i], &w);
                    }
                    continue;
                }
                for (int64_t i = 0; i < E; i++)
                    FN(edge_fwd)(m, g, &bd, NULL, g->level_edges[i], &w);
                for (int64_t i = E - 1; i >= 0; i--)
                    FN(edge_bwd)(m, g, &bd, g->level_edges[i], &w);
                for (int64_t n = 0; n < N; n++)
                    FN(node_bwd)(m, g, &bd, n, &w);
            }
            continue;
        }
#pragma omp parallel num_threads(threads)
        {
            FN(scratch) w;
            FN(scratch_init)(m, &w, work + (size_t)omp_get_thread_num() * scr_n);
            if (!backward)
                for (int64_t h = 0; h <= L; h++) {
                    /* phase h: edges of level h, then nodes of height h */
                    const int64_t e0 = h < L ? g->level_off[h] : 0;
                    const int64_t ne = h < L ? g->level_off[h + 1] - e0 : 0;
                    const int64_t n0 = g->hnode_off[h], nn = g->hnode_off[h + 1] - n0;
                    const int64_t per = ne + nn;
#pragma omp for schedule(static)
                    for (int64_t i = 0; i < nb * per; i++) {
                        const FN(bdata) bd = BD(i / per);
                        const int64_t j = i % per;
                        if (j < ne)
                            FN(edge_fwd)(m, g, &bd, fslot, g->level_edges[e0 + j], &w);
                        else
                            FN(node_fwd)(m, g, &bd, fslot, g->hnodes[n0 + j - ne], &w);
                    }
                }
            else {
                for (int64_t l = 0; l < L; l++) {
                    const int64_t e0 = g->level_off[l], ne = g->level_off[l + 1] - e0;
#pragma omp for schedule(static)
                    for (int64_t i = 0; i < nb * ne; i++) {
                        const FN(bdata) bd = BD(i / ne);
                        FN(edge_fwd)(m, g, &bd, NULL, g->level_edges[e0 + i % ne], &w);
                    }
                }
                for (int64_t l = L - 1; l >= 0; l--) {
                    const int64_t e0 = g->level_off[l], ne = g->level_off[l + 1] - e0;
#pragma omp for schedule(static)
                    for (int64_t i = 0; i < nb * ne; i++) {
                        const FN(bdata) bd = BD(i / ne);
                        FN(edge_bwd)(m, g, &bd, g->level_edges[e0 + i % ne], &w);
                    }
                }
#pragma omp for schedule(static)
                for (int64_t i = 0; i < nb * N; i++) {
                    const FN(bdata) bd = BD(i / N);
                    FN(node_bwd)(m, g, &bd, i % N, &w);
                }
            }
        }
#undef BD
    }
    free(work);
    return PLSTM_OK;
}
