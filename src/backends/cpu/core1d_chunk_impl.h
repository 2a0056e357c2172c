/* Chunkwise-parallel 1D core (plstm-math.md §2.2) and its exact adjoint over
 * one real type; included by core1d_chunk.c with REAL, FN(name) and GEMM
 * (cblas_sgemm / cblas_dgemm) defined. States are internal [JT][DK][DV].
 *
 * Gate maps of a chunk of n positions. Rows a = 0..n-1 are the positions'
 * reads (M_a, rdim JO·JQ), row a = n is the chunk's outgoing state (M = I,
 * rdim JT); columns b = 0..n-1 are the positions' writes (S_b, cdim JK·JV),
 * column b = -1 the incoming state (S = I, cdim JT). Then
 *     G(a,b) = M_a T_{a-1} ⋯ T_{b+1} S_b   (a > b),   G(a,a) = D_a,
 * so G(a,-1) = M̄[a], G(n,b) = S̄[b], G(n,-1) = T̄ in §2.2's names. With the
 * chunk's incoming state C:
 *     Y[(a,o)][v] = scale·( Σ_{b≤a} W[(a,o),(b,γ)] V[(b,γ)][v] + Σ qm[(a,o),(t,d)] C[t][d][v] )
 *     W[a,o,b,γ]  = Σ_{p,α} G(a,b)[o,p,α,γ] A[a,p,b,α],   A = Q Kᵀ (over d)
 *     qm[a,o,t,d] = Σ_p q_a[d,p] M̄[a][o,p,t]
 *     C' = T̄ C + Σ_t Kᵀ vs[t],  vs[t][(b,α)][v] = Σ_γ S̄[b][t,α,γ] v_b[v,γ]
 * Every DK×DV product is a GEMM. The backward recomputes the chunk-boundary
 * states, then per chunk in reverse forms the adjoints of those GEMMs and of
 * G, and maps dG back to S, T, M, D by a reverse sweep over each row a:
 *     dS_j += X_{a,j}ᵀ dG(a,j),  dT_j += X_{a,j}ᵀ F_{a,j},  dM_a = F_{a,a}
 * with X_{a,j} = M_a T_{a-1} ⋯ T_{j+1} and F_{a,0} = dG(a,-1),
 * F_{a,j+1} = F_{a,j} T_jᵀ + dG(a,j) S_jᵀ. */

/* Pointers to one chunk's inputs (position 0 of the chunk). */
typedef struct FN(chunk) {
    int n; /* positions in this chunk */
    const REAL *q, *k, *v, *S, *T, *M, *D, *dy;
} FN(chunk);

/* Per-thread scratch; sizes for chunks of up to BT positions. */
typedef struct FN(work) {
    int BT;
    size_t RM, CM, E; /* max rdim, max cdim, RM·CM = one G entry */
    REAL *G, *dG;     /* [(BT+1)²][E]                          */
    REAL *Xs;         /* [BT+1][RM·JT]                          */
    REAL *F, *F2;     /* [RM·JT]                                */
    REAL *Qt, *Kt, *Vt, *Yt; /* [n·JQ][DK] [n·JK][DK] [n·JV][DV] [n·JO][DV] */
    REAL *A, *W;      /* [n·JQ][n·JK] [n·JO][n·JV]              */
    REAL *qm;         /* [n·JO][JT·DK]                          */
    REAL *vs, *gk;    /* [JT][n·JK][DV]                         */
    REAL *dQt, *dKt, *dVt, *dA, *dW, *dqm;
    REAL *dS, *dT, *dM, *dD; /* per chunk position              */
    REAL *g, *gn;     /* [SZ]                                   */
} FN(work);

static size_t FN(work_elems)(const c1_dims *m, int BT, int bwd)
{
    const size_t n = BT, DK = m->DK, DV = m->DV, JQ = m->JQ, JK = m->JK, JV = m->JV,
                 JT = m->JT, JO = m->JO;
    const size_t RM = JO * JQ > JT ? JO * JQ : JT, CM = JK * JV > JT ? JK * JV : JT;
    size_t s = (n + 1) * (n + 1) * RM * CM + (n + 1) * RM * JT + 2 * RM * JT;
    s += n * (JQ * DK + JK * DK + JV * DV + JO * DV) + n * n * (JQ * JK + JO * JV);
    s += n * JO * JT * DK + 2 * JT * n * JK * DV;
    if (bwd) {
        s += (n + 1) * (n + 1) * RM * CM;
        s += n * (JQ * DK + JK * DK + JV * DV) + n * n * (JQ * JK + JO * JV) + n * JO * JT * DK;
        s += n * (m->ns + m->nt + m->nm + m->nd) + 2 * m->SZ;
    }
    return s;
}

static void FN(work_init)(const c1_dims *m, int BT, int bwd, FN(work) *w, REAL *p)
{
    const size_t n = BT, DK = m->DK, DV = m->DV, JQ = m->JQ, JK = m->JK, JV = m->JV,
                 JT = m->JT, JO = m->JO;
    memset(w, 0, sizeof *w);
    w->BT = BT;
    w->RM = JO * JQ > JT ? JO * JQ : JT;
    w->CM = JK * JV > JT ? JK * JV : JT;
    w->E = w->RM * w->CM;
    w->G = p; p += (n + 1) * (n + 1) * w->E;
    w->Xs = p; p += (n + 1) * w->RM * JT;
    w->F = p; p += w->RM * JT;
    w->F2 = p; p += w->RM * JT;
    w->Qt = p; p += n * JQ * DK;
    w->Kt = p; p += n * JK * DK;
    w->Vt = p; p += n * JV * DV;
    w->Yt = p; p += n * JO * DV;
    w->A = p; p += n * n * JQ * JK;
    w->W = p; p += n * n * JO * JV;
    w->qm = p; p += n * JO * JT * DK;
    w->vs = p; p += JT * n * JK * DV;
    w->gk = p; p += JT * n * JK * DV;
    if (!bwd)
        return;
    w->dG = p; p += (n + 1) * (n + 1) * w->E;
    w->dQt = p; p += n * JQ * DK;
    w->dKt = p; p += n * JK * DK;
    w->dVt = p; p += n * JV * DV;
    w->dA = p; p += n * n * JQ * JK;
    w->dW = p; p += n * n * JO * JV;
    w->dqm = p; p += n * JO * JT * DK;
    w->dS = p; p += n * m->ns;
    w->dT = p; p += n * m->nt;
    w->dM = p; p += n * m->nm;
    w->dD = p; p += n * m->nd;
    w->g = p; p += m->SZ;
    w->gn = p;
}

static FN(chunk) FN(chunk_at)(const c1_dims *m, const plstm_core1d_inputs *in, const REAL *dY,
                              size_t i, int n)
{
    return (FN(chunk)){n,
                       (const REAL *)in->Q + i * m->nq,
                       (const REAL *)in->K + i * m->nk,
                       (const REAL *)in->V + i * m->nv,
                       (const REAL *)in->S + i * m->ns,
                       (const REAL *)in->T + i * m->nt,
                       (const REAL *)in->M + i * m->nm,
                       (const REAL *)in->D + i * m->nd,
                       dY ? dY + i * m->ny : NULL};
}

/* G entry (a,b), b = -1 .. n-1. */
static REAL *FN(gat)(const FN(work) *w, REAL *G, int n, int a, int b)
{
    return G + ((size_t)a * (n + 1) + (size_t)(b + 1)) * w->E;
}

/* C[r][c] (+)= Σ_k A[r][k] B[k][c], all dense row-major. */
static void FN(mm)(int R, int K, int Cn, const REAL *A, const REAL *B, REAL *C, int acc)
{
    for (int r = 0; r < R; r++)
        for (int c = 0; c < Cn; c++) {
            REAL s = acc ? C[(size_t)r * Cn + c] : 0;
            for (int k = 0; k < K; k++)
                s += A[(size_t)r * K + k] * B[(size_t)k * Cn + c];
            C[(size_t)r * Cn + c] = s;
        }
}

/* G rows a0..n of a chunk (row n alone is all the state recurrence needs). */
static void FN(build_G)(const c1_dims *m, const FN(chunk) *x, FN(work) *w, int a0)
{
    const int n = x->n, JT = m->JT, JQO = m->JO * m->JQ, JKV = m->JK * m->JV;
    if (m->j1) {
        for (int a = a0; a <= n; a++) {
            REAL *Ga = w->G + (size_t)a * (n + 1), X = a < n ? x->M[a] : 1;
            for (int b = a - 1; b >= 0; b--) {
                Ga[b + 1] = X * x->S[b];
                X *= x->T[b];
            }
            Ga[0] = X;
            if (a < n)
                Ga[a + 1] = x->D[a];
        }
        return;
    }
    for (int a = a0; a <= n; a++) {
        const int rd = a < n ? JQO : JT;
        REAL *X = w->F, *X2 = w->F2;
        if (a < n) {
            memcpy(X, x->M + (size_t)a * m->nm, sizeof(REAL) * m->nm);
        } else {
            memset(X, 0, sizeof(REAL) * m->nt);
            for (int t = 0; t < JT; t++)
                X[t * JT + t] = 1;
        }
        for (int b = a - 1; b >= 0; b--) {
            FN(mm)(rd, JT, JKV, X, x->S + (size_t)b * m->ns, FN(gat)(w, w->G, n, a, b), 0);
            FN(mm)(rd, JT, JT, X, x->T + (size_t)b * m->nt, X2, 0);
            REAL *tmp = X; X = X2; X2 = tmp;
        }
        memcpy(FN(gat)(w, w->G, n, a, -1), X, sizeof(REAL) * (size_t)rd * JT);
        if (a < n)
            memcpy(FN(gat)(w, w->G, n, a, a), x->D + (size_t)a * m->nd, sizeof(REAL) * m->nd);
    }
}

/* Qt, Kt, Vt: position-major copies [(a,j)][d] for the GEMMs. */
static void FN(load_qkv)(const c1_dims *m, const FN(chunk) *x, FN(work) *w, int want_q)
{
    const int n = x->n, DK = m->DK, DV = m->DV, JQ = m->JQ, JK = m->JK, JV = m->JV;
    if (m->j1) {
        if (want_q)
            memcpy(w->Qt, x->q, sizeof(REAL) * (size_t)n * DK);
        memcpy(w->Kt, x->k, sizeof(REAL) * (size_t)n * DK);
        memcpy(w->Vt, x->v, sizeof(REAL) * (size_t)n * DV);
        return;
    }
    for (int a = 0; a < n; a++) {
        if (want_q)
            for (int p = 0; p < JQ; p++)
                for (int d = 0; d < DK; d++)
                    w->Qt[((size_t)a * JQ + p) * DK + d] = x->q[(size_t)a * m->nq + (size_t)d * JQ + p];
        for (int al = 0; al < JK; al++)
            for (int d = 0; d < DK; d++)
                w->Kt[((size_t)a * JK + al) * DK + d] = x->k[(size_t)a * m->nk + (size_t)d * JK + al];
        for (int c = 0; c < JV; c++)
            for (int j = 0; j < DV; j++)
                w->Vt[((size_t)a * JV + c) * DV + j] = x->v[(size_t)a * m->nv + (size_t)j * JV + c];
    }
}

/* vs[t][(b,α)][v] = Σ_γ S̄[b][t,α,γ] Vt[(b,γ)][v] */
static void FN(make_vs)(const c1_dims *m, const FN(chunk) *x, FN(work) *w)
{
    const int n = x->n, DV = m->DV, JK = m->JK, JV = m->JV, JT = m->JT, JKV = JK * JV;
    for (int b = 0; b < n; b++) {
        const REAL *Sb = FN(gat)(w, w->G, n, n, b);
        for (int t = 0; t < JT; t++)
            for (int al = 0; al < JK; al++) {
                REAL *restrict o = w->vs + (((size_t)t * n + b) * JK + al) * DV;
                for (int c = 0; c < JV; c++) {
                    const REAL s = Sb[(size_t)t * JKV + (size_t)al * JV + c];
                    const REAL *restrict vr = w->Vt + ((size_t)b * JV + c) * DV;
                    if (c == 0)
                        for (int j = 0; j < DV; j++)
                            o[j] = s * vr[j];
                    else
                        for (int j = 0; j < DV; j++)
                            o[j] += s * vr[j];
                }
            }
    }
}

/* Cn = T̄ C + Σ_t Ktᵀ vs[t]   (needs G row n, Kt, Vt) */
static void FN(advance)(const c1_dims *m, const FN(chunk) *x, FN(work) *w, const REAL *C,
                        REAL *Cn)
{
    const int n = x->n, DK = m->DK, DV = m->DV, JK = m->JK, JT = m->JT;
    FN(make_vs)(m, x, w);
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, JT, (int)m->N, JT, 1,
         FN(gat)(w, w->G, n, n, -1), JT, C, (int)m->N, 0, Cn, (int)m->N);
    for (int t = 0; t < JT; t++)
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, DK, DV, n * JK, 1, w->Kt, DK,
             w->vs + (size_t)t * n * JK * DV, DV, 1, Cn + (size_t)t * m->N, DV);
}

/* A = Qt Ktᵀ, W (causal), qm (needs G rows 0..n-1, Qt, Kt) */
static void FN(make_AW)(const c1_dims *m, const FN(chunk) *x, FN(work) *w)
{
    const int n = x->n, DK = m->DK, JQ = m->JQ, JK = m->JK, JV = m->JV, JT = m->JT,
              JO = m->JO, JKV = JK * JV;
    const int nJK = n * JK, nJV = n * JV;
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, n * JQ, nJK, DK, 1, w->Qt, DK, w->Kt, DK, 0,
         w->A, nJK);
    memset(w->W, 0, sizeof(REAL) * (size_t)n * JO * nJV);
    for (int a = 0; a < n && m->j1; a++) {
        const REAL *Ga = w->G + (size_t)a * (n + 1) + 1, *Aa = w->A + (size_t)a * n;
        REAL *Wa = w->W + (size_t)a * n;
        for (int b = 0; b <= a; b++)
            Wa[b] = Ga[b] * Aa[b];
    }
    for (int a = 0; a < n && !m->j1; a++)
        for (int b = 0; b <= a; b++) {
            const REAL *Gab = FN(gat)(w, w->G, n, a, b);
            for (int o = 0; o < JO; o++)
                for (int c = 0; c < JV; c++) {
                    REAL s = 0;
                    for (int p = 0; p < JQ; p++)
                        for (int al = 0; al < JK; al++)
                            s += Gab[((size_t)o * JQ + p) * JKV + (size_t)al * JV + c] *
                                 w->A[((size_t)a * JQ + p) * nJK + (size_t)b * JK + al];
                    w->W[((size_t)a * JO + o) * nJV + (size_t)b * JV + c] = s;
                }
        }
    const size_t TD = (size_t)JT * DK;
    for (int a = 0; a < n; a++) {
        const REAL *Mb = FN(gat)(w, w->G, n, a, -1);
        for (int o = 0; o < JO; o++)
            for (int t = 0; t < JT; t++) {
                REAL *restrict qo = w->qm + ((size_t)a * JO + o) * TD + (size_t)t * DK;
                for (int p = 0; p < JQ; p++) {
                    const REAL c = Mb[((size_t)o * JQ + p) * JT + t];
                    const REAL *restrict qr = w->Qt + ((size_t)a * JQ + p) * DK;
                    if (p == 0)
                        for (int d = 0; d < DK; d++)
                            qo[d] = c * qr[d];
                    else
                        for (int d = 0; d < DK; d++)
                            qo[d] += c * qr[d];
                }
            }
    }
}

static void FN(chunk_forward)(const c1_dims *m, const FN(chunk) *x, FN(work) *w, const REAL *C,
                              REAL *Cn, REAL *Y)
{
    const int n = x->n, DV = m->DV, JV = m->JV, JT = m->JT, JO = m->JO, DK = m->DK;
    const REAL sc = (REAL)m->scale;
    FN(load_qkv)(m, x, w, 1);
    FN(build_G)(m, x, w, 0);
    FN(make_AW)(m, x, w);
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, n * JO, DV, n * JV, sc, w->W, n * JV, w->Vt,
         DV, 0, w->Yt, DV);
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, n * JO, DV, JT * DK, sc, w->qm, JT * DK, C,
         DV, 1, w->Yt, DV);
    for (int a = 0; a < n; a++)
        for (int o = 0; o < JO; o++)
            for (int j = 0; j < DV; j++)
                Y[(size_t)a * m->ny + (size_t)j * JO + o] = w->Yt[((size_t)a * JO + o) * DV + j];
    if (Cn)
        FN(advance)(m, x, w, C, Cn);
}

/* dG rows 0..n -> dS, dT, dM, dD of the chunk's positions (w->dS ...). */
static void FN(gates_backward)(const c1_dims *m, const FN(chunk) *x, FN(work) *w)
{
    const int n = x->n, JT = m->JT, JQO = m->JO * m->JQ, JKV = m->JK * m->JV;
    const size_t XS = w->RM * JT;
    memset(w->dS, 0, sizeof(REAL) * n * m->ns);
    memset(w->dT, 0, sizeof(REAL) * n * m->nt);
    if (m->j1) {
        REAL *Xs = w->Xs; /* Xs[j] = X_{a,j} */
        for (int a = 0; a <= n; a++) {
            const REAL *dGa = w->dG + (size_t)a * (n + 1) + 1; /* dGa[b], b = -1 .. a */
            REAL X = a < n ? x->M[a] : 1;
            for (int j = a - 1; j >= 0; j--) {
                Xs[j] = X;
                X *= x->T[j];
            }
            REAL F = dGa[-1];
            for (int j = 0; j < a; j++) {
                w->dT[j] += Xs[j] * F;
                w->dS[j] += Xs[j] * dGa[j];
                F = F * x->T[j] + dGa[j] * x->S[j];
            }
            if (a < n) {
                w->dM[a] = F;
                w->dD[a] = dGa[a];
            }
        }
        return;
    }
    for (int a = 0; a <= n; a++) {
        const int rd = a < n ? JQO : JT;
        /* Xs[j+1] = X_{a,j} = M_a T_{a-1} ⋯ T_{j+1}, j = a-1 .. 0 */
        REAL *Xa = w->Xs + (size_t)a * XS;
        if (a < n) {
            memcpy(Xa, x->M + (size_t)a * m->nm, sizeof(REAL) * m->nm);
        } else {
            memset(Xa, 0, sizeof(REAL) * m->nt);
            for (int t = 0; t < JT; t++)
                Xa[t * JT + t] = 1;
        }
        for (int j = a - 1; j >= 1; j--)
            FN(mm)(rd, JT, JT, w->Xs + (size_t)(j + 1) * XS, x->T + (size_t)j * m->nt,
                   w->Xs + (size_t)j * XS, 0);
        REAL *F = w->F, *F2 = w->F2;
        memcpy(F, FN(gat)(w, w->dG, n, a, -1), sizeof(REAL) * (size_t)rd * JT);
        for (int j = 0; j < a; j++) {
            const REAL *X = w->Xs + (size_t)(j + 1) * XS, *dGj = FN(gat)(w, w->dG, n, a, j);
            const REAL *Tj = x->T + (size_t)j * m->nt, *Sj = x->S + (size_t)j * m->ns;
            REAL *dT = w->dT + (size_t)j * m->nt, *dS = w->dS + (size_t)j * m->ns;
            for (int r = 0; r < rd; r++)
                for (int t = 0; t < JT; t++) {
                    const REAL xr = X[(size_t)r * JT + t];
                    for (int u = 0; u < JT; u++)
                        dT[t * JT + u] += xr * F[(size_t)r * JT + u];
                    for (int c = 0; c < JKV; c++)
                        dS[(size_t)t * JKV + c] += xr * dGj[(size_t)r * JKV + c];
                }
            for (int r = 0; r < rd; r++)
                for (int t = 0; t < JT; t++) {
                    REAL s = 0;
                    for (int u = 0; u < JT; u++)
                        s += F[(size_t)r * JT + u] * Tj[t * JT + u];
                    for (int c = 0; c < JKV; c++)
                        s += dGj[(size_t)r * JKV + c] * Sj[(size_t)t * JKV + c];
                    F2[(size_t)r * JT + t] = s;
                }
            REAL *tmp = F; F = F2; F2 = tmp;
        }
        if (a < n) {
            memcpy(w->dM + (size_t)a * m->nm, F, sizeof(REAL) * m->nm);
            memcpy(w->dD + (size_t)a * m->nd, FN(gat)(w, w->dG, n, a, a), sizeof(REAL) * m->nd);
        }
    }
}

/* Adjoint of one chunk: C = incoming state, w->g = dL/d(outgoing state);
 * writes w->gn = dL/dC and the positions' gradients (pointers at the chunk). */
static void FN(chunk_backward)(const c1_dims *m, const FN(chunk) *x, FN(work) *w, const REAL *C,
                               const plstm_core1d_grads *gr, size_t i0)
{
    const int n = x->n, DK = m->DK, DV = m->DV, JQ = m->JQ, JK = m->JK, JV = m->JV,
              JT = m->JT, JO = m->JO, JKV = JK * JV;
    const int nJQ = n * JQ, nJK = n * JK, nJV = n * JV, nJO = n * JO, TD = JT * DK;
    const REAL sc = (REAL)m->scale;
    const size_t N = m->N;
    FN(load_qkv)(m, x, w, 1);
    FN(build_G)(m, x, w, 0);
    FN(make_AW)(m, x, w);
    FN(make_vs)(m, x, w);
    for (int a = 0; a < n; a++)
        for (int o = 0; o < JO; o++)
            for (int j = 0; j < DV; j++)
                w->Yt[((size_t)a * JO + o) * DV + j] = x->dy[(size_t)a * m->ny + (size_t)j * JO + o];
    const REAL *dYt = w->Yt;

    /* Y = scale·W Vt + scale·qm C */
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, nJO, nJV, DV, sc, dYt, DV, w->Vt, DV, 0, w->dW,
         nJV);
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, nJV, DV, nJO, sc, w->W, nJV, dYt, DV, 0, w->dVt,
         DV);
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, nJO, TD, DV, sc, dYt, DV, C, DV, 0, w->dqm, TD);
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, TD, DV, nJO, sc, w->qm, TD, dYt, DV, 0, w->gn,
         DV);
    /* C' = T̄ C + ... */
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, JT, (int)N, JT, 1, FN(gat)(w, w->G, n, n, -1),
         JT, w->g, (int)N, 1, w->gn, (int)N);
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, JT, JT, (int)N, 1, w->g, (int)N, C, (int)N, 0,
         FN(gat)(w, w->dG, n, n, -1), JT);

    /* qm = Σ_p Qt M̄: dQt and dM̄ = dG(a,-1) */
    for (int a = 0; a < n; a++) {
        const REAL *Mb = FN(gat)(w, w->G, n, a, -1);
        REAL *dMb = FN(gat)(w, w->dG, n, a, -1);
        for (int p = 0; p < JQ; p++) {
            REAL *restrict dq = w->dQt + ((size_t)a * JQ + p) * DK;
            const REAL *restrict qr = w->Qt + ((size_t)a * JQ + p) * DK;
            memset(dq, 0, sizeof(REAL) * DK);
            for (int o = 0; o < JO; o++)
                for (int t = 0; t < JT; t++) {
                    const REAL *restrict dr = w->dqm + ((size_t)a * JO + o) * TD + (size_t)t * DK;
                    const REAL c = Mb[((size_t)o * JQ + p) * JT + t];
                    REAL s = 0;
                    for (int d = 0; d < DK; d++) {
                        dq[d] += c * dr[d];
                        s += qr[d] * dr[d];
                    }
                    dMb[((size_t)o * JQ + p) * JT + t] = s;
                }
        }
    }

    /* W = G ⋅ A: dA and dG(a,b), b ≤ a */
    memset(w->dA, 0, sizeof(REAL) * (size_t)nJQ * nJK);
    for (int a = 0; a < n && m->j1; a++) {
        const REAL *Ga = w->G + (size_t)a * (n + 1) + 1, *Aa = w->A + (size_t)a * n;
        const REAL *dWa = w->dW + (size_t)a * n;
        REAL *dGa = w->dG + (size_t)a * (n + 1) + 1, *dAa = w->dA + (size_t)a * n;
        for (int b = 0; b <= a; b++) {
            dAa[b] = Ga[b] * dWa[b];
            dGa[b] = dWa[b] * Aa[b];
        }
    }
    for (int a = 0; a < n && !m->j1; a++)
        for (int b = 0; b <= a; b++) {
            const REAL *Gab = FN(gat)(w, w->G, n, a, b);
            REAL *dGab = FN(gat)(w, w->dG, n, a, b);
            for (int o = 0; o < JO; o++)
                for (int p = 0; p < JQ; p++)
                    for (int al = 0; al < JK; al++) {
                        const REAL Ar = w->A[((size_t)a * JQ + p) * nJK + (size_t)b * JK + al];
                        REAL s = 0;
                        for (int c = 0; c < JV; c++) {
                            const size_t gi = ((size_t)o * JQ + p) * JKV + (size_t)al * JV + c;
                            const REAL dw = w->dW[((size_t)a * JO + o) * nJV + (size_t)b * JV + c];
                            s += Gab[gi] * dw;
                            dGab[gi] = dw * Ar;
                        }
                        w->dA[((size_t)a * JQ + p) * nJK + (size_t)b * JK + al] += s;
                    }
        }
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, nJQ, DK, nJK, 1, w->dA, nJK, w->Kt, DK, 1,
         w->dQt, DK);
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, nJK, DK, nJQ, 1, w->dA, nJK, w->Qt, DK, 0,
         w->dKt, DK);

    /* C' = ... + Σ_t Ktᵀ vs[t]: gk, dKt, dS̄ = dG(n,b), dVt */
    for (int t = 0; t < JT; t++) {
        const REAL *gt = w->g + (size_t)t * N;
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, nJK, DV, DK, 1, w->Kt, DK, gt, DV, 0,
             w->gk + (size_t)t * nJK * DV, DV);
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, nJK, DK, DV, 1,
             w->vs + (size_t)t * nJK * DV, DV, gt, DV, 1, w->dKt, DK);
    }
    for (int b = 0; b < n; b++) {
        const REAL *Sb = FN(gat)(w, w->G, n, n, b);
        REAL *dSb = FN(gat)(w, w->dG, n, n, b);
        for (int t = 0; t < JT; t++)
            for (int al = 0; al < JK; al++) {
                const REAL *restrict gkr = w->gk + (((size_t)t * n + b) * JK + al) * DV;
                for (int c = 0; c < JV; c++) {
                    REAL *restrict dv = w->dVt + ((size_t)b * JV + c) * DV;
                    const REAL *restrict vr = w->Vt + ((size_t)b * JV + c) * DV;
                    const REAL s = Sb[(size_t)t * JKV + (size_t)al * JV + c];
                    REAL acc = 0;
                    for (int j = 0; j < DV; j++) {
                        dv[j] += s * gkr[j];
                        acc += gkr[j] * vr[j];
                    }
                    dSb[(size_t)t * JKV + (size_t)al * JV + c] = acc;
                }
            }
    }

    FN(gates_backward)(m, x, w);

    /* write out */
    for (int a = 0; a < n; a++) {
        const size_t i = i0 + (size_t)a;
        if (gr->Q)
            for (int p = 0; p < JQ; p++)
                for (int d = 0; d < DK; d++)
                    ((REAL *)gr->Q)[i * m->nq + (size_t)d * JQ + p] = w->dQt[((size_t)a * JQ + p) * DK + d];
        if (gr->K)
            for (int al = 0; al < JK; al++)
                for (int d = 0; d < DK; d++)
                    ((REAL *)gr->K)[i * m->nk + (size_t)d * JK + al] = w->dKt[((size_t)a * JK + al) * DK + d];
        if (gr->V)
            for (int c = 0; c < JV; c++)
                for (int j = 0; j < DV; j++)
                    ((REAL *)gr->V)[i * m->nv + (size_t)j * JV + c] = w->dVt[((size_t)a * JV + c) * DV + j];
    }
    if (gr->S)
        memcpy((REAL *)gr->S + i0 * m->ns, w->dS, sizeof(REAL) * n * m->ns);
    if (gr->T)
        memcpy((REAL *)gr->T + i0 * m->nt, w->dT, sizeof(REAL) * n * m->nt);
    if (gr->M)
        memcpy((REAL *)gr->M + i0 * m->nm, w->dM, sizeof(REAL) * n * m->nm);
    if (gr->D)
        memcpy((REAL *)gr->D + i0 * m->nd, w->dD, sizeof(REAL) * n * m->nd);
}

static plstm_status FN(forward)(const c1_dims *m, int BT, int threads,
                                const plstm_core1d_inputs *in, const plstm_core1d_outputs *out)
{
    const size_t SZ = m->SZ, L = (size_t)m->L;
    const size_t nw = FN(work_elems)(m, BT, 0);
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        REAL *buf = malloc(sizeof(REAL) * (2 * SZ + nw));
        FN(work) w;
        if (!buf) {
#pragma omp atomic write
            failed = 1;
        } else {
            FN(work_init)(m, BT, 0, &w, buf + 2 * SZ);
        }
#pragma omp for schedule(dynamic)
        for (int b = 0; b < m->B; b++) {
            if (!buf)
                continue;
            REAL *C = buf, *Cn = buf + SZ;
            FN(state_in)(m, in->C0 ? (const REAL *)in->C0 + (size_t)b * SZ : NULL, C);
            for (size_t c0 = 0; c0 < L; c0 += (size_t)BT) {
                const int n = (int)(L - c0 < (size_t)BT ? L - c0 : (size_t)BT);
                const size_t i = (size_t)b * L + c0;
                const FN(chunk) x = FN(chunk_at)(m, in, NULL, i, n);
                const int last = c0 + (size_t)n >= L;
                FN(chunk_forward)(m, &x, &w, C, last && !out->C_last ? NULL : Cn,
                                  (REAL *)out->Y + i * m->ny);
                REAL *tmp = C; C = Cn; Cn = tmp;
            }
            if (out->C_last)
                FN(state_out)(m, C, (REAL *)out->C_last + (size_t)b * SZ);
        }
        free(buf);
    }
    if (failed)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "core1d chunked forward: out of memory");
    return PLSTM_OK;
}

static plstm_status FN(backward)(const c1_dims *m, int BT, int threads,
                                 const plstm_core1d_inputs *in,
                                 const plstm_core1d_cotangents *dout,
                                 const plstm_core1d_grads *grad)
{
    const size_t SZ = m->SZ, L = (size_t)m->L;
    const size_t NC = (L + (size_t)BT - 1) / (size_t)BT;
    const size_t nw = FN(work_elems)(m, BT, 1);
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        REAL *buf = malloc(sizeof(REAL) * (NC * SZ + nw));
        FN(work) w;
        if (!buf) {
#pragma omp atomic write
            failed = 1;
        } else {
            FN(work_init)(m, BT, 1, &w, buf + NC * SZ);
        }
#pragma omp for schedule(dynamic)
        for (int b = 0; b < m->B; b++) {
            if (!buf)
                continue;
            REAL *bnd = buf; /* bnd[c] = state entering chunk c */
            const size_t ib = (size_t)b * L;
            FN(state_in)(m, in->C0 ? (const REAL *)in->C0 + (size_t)b * SZ : NULL, bnd);
            for (size_t c = 0; c + 1 < NC; c++) {
                const FN(chunk) x = FN(chunk_at)(m, in, NULL, ib + c * BT, BT);
                FN(load_qkv)(m, &x, &w, 0);
                FN(build_G)(m, &x, &w, BT);
                FN(advance)(m, &x, &w, bnd + c * SZ, bnd + (c + 1) * SZ);
            }
            FN(state_in)(m, dout->C_last ? (const REAL *)dout->C_last + (size_t)b * SZ : NULL,
                         w.g);
            for (size_t c = NC; c-- > 0;) {
                const size_t c0 = c * (size_t)BT;
                const int n = (int)(L - c0 < (size_t)BT ? L - c0 : (size_t)BT);
                const FN(chunk) x = FN(chunk_at)(m, in, dout->Y, ib + c0, n);
                FN(chunk_backward)(m, &x, &w, bnd + c * SZ, grad, ib + c0);
                REAL *tmp = w.g; w.g = w.gn; w.gn = tmp;
            }
            if (grad->C0)
                FN(state_out)(m, w.g, (REAL *)grad->C0 + (size_t)b * SZ);
        }
        free(buf);
    }
    if (failed)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "core1d chunked backward: out of memory");
    return PLSTM_OK;
}
