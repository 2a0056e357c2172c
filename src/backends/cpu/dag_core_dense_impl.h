/* The dense per-graph form of the scalar-gate DAG core over one real type
 * (see dag_core_dense.h). Included by dag_core_dense.c with REAL, FN(name)
 * and GEMM (cblas_sgemm / cblas_dgemm). One work unit is (batch entry b,
 * graph gi); units never share outputs. The per-graph products are small
 * GEMMs (single-threaded BLAS inside the team). */

/* p + off, keeping NULL (empty tensors may be NULL). */
static const REAL *FN(at)(const void *p, size_t off) { return p ? (const REAL *)p + off : NULL; }
static REAL *FN(atw)(void *p, size_t off) { return p ? (REAL *)p + off : NULL; }

typedef struct FN(dscr) {
    REAL *alpha, *dalpha;   /* [edges of the graph][n] */
    REAL *beta, *qk, *vd, *db; /* [n][n] */
} FN(dscr);

static void FN(dscr_init)(const dense_plan *p, REAL *w, FN(dscr) *s)
{
    const size_t n = (size_t)p->nmax, ea = (size_t)p->emax * n;
    s->alpha = w, w += ea;
    s->dalpha = w, w += ea;
    s->beta = w, w += n * n;
    s->qk = w, w += n * n;
    s->vd = w, w += n * n;
    s->db = w;
}

/* α of the graph's edges in topological order, β = Σ m_e α_e into the heads
 * plus d on the diagonal, and qk[i][j] = q_i·k_j (local node indices). */
static void FN(dense_prepare)(const dense_plan *p, const plstm_dag_core_inputs *in, int64_t b,
                              int64_t gi, FN(dscr) *s)
{
    const plstm_dag *g = p->g;
    const int64_t n0 = g->node_off[gi], e0 = g->edge_off[gi];
    const size_t n = (size_t)(g->node_off[gi + 1] - n0), ne = (size_t)(g->edge_off[gi + 1] - e0);
    const size_t DK = (size_t)p->DK;
    const REAL *S = FN(at)(in->S, (size_t)b * g->E), *T = FN(at)(in->T, (size_t)b * g->A);
    const REAL *M = FN(at)(in->M, (size_t)b * g->E);
    const REAL *D = (const REAL *)in->D + (size_t)b * g->N + n0;
    const REAL *Q = (const REAL *)in->Q + ((size_t)b * g->N + n0) * DK;
    const REAL *K = (const REAL *)in->K + ((size_t)b * g->N + n0) * DK;
    for (size_t i = 0; i < ne; i++) {
        const int64_t e = p->order[e0 + (int64_t)i];
        REAL *restrict ae = s->alpha + (size_t)(e - e0) * n;
        memset(ae, 0, n * sizeof(REAL));
        ae[g->tail[e] - n0] = S[e];
        for (int64_t a = g->arc_off[e]; a < g->arc_off[e + 1]; a++) {
            const REAL c = T[a];
            const REAL *restrict af = s->alpha + (size_t)(g->arc_from[a] - e0) * n;
            for (size_t u = 0; u < n; u++)
                ae[u] += c * af[u];
        }
    }
    memset(s->beta, 0, n * n * sizeof(REAL));
    for (size_t i = 0; i < ne; i++) {
        const int64_t e = e0 + (int64_t)i;
        const REAL c = M[e];
        REAL *restrict bh = s->beta + (size_t)(g->head[e] - n0) * n;
        const REAL *restrict ae = s->alpha + i * n;
        for (size_t u = 0; u < n; u++)
            bh[u] += c * ae[u];
    }
    for (size_t i = 0; i < n; i++)
        s->beta[i * n + i] += D[i];
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)DK, 1, Q, (int)DK, K,
         (int)DK, 0, s->qk, (int)n);
}

static void FN(dense_fwd_unit)(const dense_plan *p, const plstm_dag_core_inputs *in, REAL *Y,
                               int64_t b, int64_t gi, FN(dscr) *s)
{
    const plstm_dag *g = p->g;
    const int64_t n0 = g->node_off[gi];
    const size_t n = (size_t)(g->node_off[gi + 1] - n0), DV = (size_t)p->DV;
    if (!n)
        return;
    FN(dense_prepare)(p, in, b, gi, s);
    const REAL sc = (REAL)p->scale;
    const REAL *V = (const REAL *)in->V + ((size_t)b * g->N + n0) * DV;
    REAL *y = Y + ((size_t)b * g->N + n0) * DV;
    for (size_t i = 0; i < n * n; i++)
        s->qk[i] *= sc * s->beta[i];
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)DV, (int)n, 1, s->qk, (int)n, V,
         (int)DV, 0, y, (int)DV);
}

static void FN(dense_bwd_unit)(const dense_plan *p, const plstm_dag_core_inputs *in,
                               const REAL *dY, const plstm_dag_core_grads *gr, int64_t b,
                               int64_t gi, FN(dscr) *s)
{
    const plstm_dag *g = p->g;
    const int64_t n0 = g->node_off[gi], e0 = g->edge_off[gi];
    const size_t n = (size_t)(g->node_off[gi + 1] - n0), ne = (size_t)(g->edge_off[gi + 1] - e0);
    const size_t DK = (size_t)p->DK, DV = (size_t)p->DV;
    if (!n)
        return;
    FN(dense_prepare)(p, in, b, gi, s);
    const REAL sc = (REAL)p->scale;
    const size_t nb = (size_t)b * g->N + n0;
    const REAL *Q = (const REAL *)in->Q + nb * DK, *K = (const REAL *)in->K + nb * DK;
    const REAL *V = (const REAL *)in->V + nb * DV, *dy = dY + nb * DV;
    /* vd[i][j] = dy_i·v_j */
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)DV, 1, dy, (int)DV, V,
         (int)DV, 0, s->vd, (int)n);
    /* db = scale qk vd;  qk <- scale β qk (weights of dv);  vd <- scale β vd (of dq, dk) */
    for (size_t i = 0; i < n * n; i++) {
        const REAL bt = s->beta[i], qk = s->qk[i], vd = s->vd[i];
        s->db[i] = sc * qk * vd;
        s->qk[i] = sc * bt * qk;
        s->vd[i] = sc * bt * vd;
    }
    REAL *dQ = FN(atw)(gr->Q, nb * DK), *dK = FN(atw)(gr->K, nb * DK);
    REAL *dV = FN(atw)(gr->V, nb * DV);
    const int ni = (int)n, iK = (int)DK, iV = (int)DV;
    if (dQ) /* dq_i = Σ_j w_ij k_j */
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, ni, iK, ni, 1, s->vd, ni, K, iK, 0, dQ, iK);
    if (dK) /* dk_j = Σ_i w_ij q_i */
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, ni, iK, ni, 1, s->vd, ni, Q, iK, 0, dK, iK);
    if (dV) /* dv_j = Σ_i p_ij dy_i */
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, ni, iV, ni, 1, s->qk, ni, dy, iV, 0, dV, iV);
    if (gr->D) {
        REAL *dD = FN(atw)(gr->D, (size_t)b * g->N + n0);
        for (size_t i = 0; i < n; i++)
            dD[i] = s->db[i * n + i];
    }
    if (!ne)
        return;
    /* dα_e = m_e db[head(e)] + Σ_{arcs e->e''} t dα_e''; dm_e = α_e·db[head(e)] */
    const REAL *Mb = FN(at)(in->M, (size_t)b * g->E), *Tb = FN(at)(in->T, (size_t)b * g->A);
    REAL *dM = FN(atw)(gr->M, (size_t)b * g->E), *dS = FN(atw)(gr->S, (size_t)b * g->E);
    REAL *dT = FN(atw)(gr->T, (size_t)b * g->A);
    for (size_t i = 0; i < ne; i++) {
        const int64_t e = e0 + (int64_t)i;
        const REAL c = Mb[e];
        const REAL *restrict dbh = s->db + (size_t)(g->head[e] - n0) * n;
        const REAL *restrict ae = s->alpha + i * n;
        REAL *restrict de = s->dalpha + i * n;
        REAL acc = 0;
        for (size_t u = 0; u < n; u++) {
            de[u] = c * dbh[u];
            acc += ae[u] * dbh[u];
        }
        if (dM)
            dM[e] = acc;
    }
    /* reverse topological order: dα_e is complete when e is reached; push it
     * to the edges before e and form dt of the arcs into e */
    for (size_t i = ne; i-- > 0;) {
        const int64_t e = p->order[e0 + (int64_t)i];
        const REAL *restrict de = s->dalpha + (size_t)(e - e0) * n;
        if (dS)
            dS[e] = de[g->tail[e] - n0];
        for (int64_t a = g->arc_off[e]; a < g->arc_off[e + 1]; a++) {
            const size_t f = (size_t)(g->arc_from[a] - e0);
            const REAL *restrict af = s->alpha + f * n;
            REAL *restrict df = s->dalpha + f * n;
            const REAL c = Tb[a];
            REAL acc = 0;
            for (size_t u = 0; u < n; u++) {
                acc += af[u] * de[u];
                df[u] += c * de[u];
            }
            if (dT)
                dT[a] = acc;
        }
    }
}

static void FN(dense_run)(const dense_plan *p, const plstm_dag_core_inputs *in, REAL *Y,
                          const REAL *dY, const plstm_dag_core_grads *gr, REAL *work)
{
    const int64_t G = p->g->G, units = (int64_t)p->B * G;
#pragma omp parallel num_threads(p->threads) if (p->threads > 1)
    {
        FN(dscr) s;
        FN(dscr_init)(p, work + (size_t)omp_get_thread_num() * p->scr, &s);
#pragma omp for schedule(dynamic, 4)
        for (int64_t u = 0; u < units; u++) {
            if (gr)
                FN(dense_bwd_unit)(p, in, dY, gr, u / G, u % G, &s);
            else
                FN(dense_fwd_unit)(p, in, Y, u / G, u % G, &s);
        }
    }
}
