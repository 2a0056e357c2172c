/* LongRangeTransition math over REAL; included by transition.c with REAL,
 * FN(name), GEMM and MATH defined, after headproj_impl.h and
 * realmath_impl.h. Matrices are small (JT×JT), so plain loops. */

/* Eigenvalue representation λ(e) and dλ/de. */
static inline REAL FN(eig_act)(const plstm_transition *L, REAL e)
{
    const REAL f = (REAL)L->cfg.eigenvalue_factor;
    switch (L->cfg.eigenvalue_repr) {
    case PLSTM_EIG_LOGSIGMOID: return FN(sigmoid_pow)(e, f);
    case PLSTM_EIG_EXPEXP: return MATH(exp)(-f * MATH(exp)(-e));
    default: return MATH(tanh)(f * e);
    }
}

static inline REAL FN(deig_act)(const plstm_transition *L, REAL e)
{
    const REAL f = (REAL)L->cfg.eigenvalue_factor;
    switch (L->cfg.eigenvalue_repr) {
    case PLSTM_EIG_LOGSIGMOID: return FN(dsigmoid_pow)(e, f);
    case PLSTM_EIG_EXPEXP: {
        const REAL u = MATH(exp)(-e);
        return f * u * MATH(exp)(-f * u);
    }
    default: {
        const REAL t = MATH(tanh)(f * e);
        return f * (1 - t * t);
    }
    }
}

/* C = A·B, all m×m. */
static void FN(mm)(int m, const REAL *A, const REAL *B, REAL *C)
{
    for (int i = 0; i < m; i++) {
        REAL *c = C + (size_t)i * m;
        for (int j = 0; j < m; j++)
            c[j] = 0;
        for (int k = 0; k < m; k++) {
            const REAL a = A[(size_t)i * m + k];
            const REAL *b = B + (size_t)k * m;
            for (int j = 0; j < m; j++)
                c[j] += a * b[j];
        }
    }
}

/* O = Σ_{k<K} (ν^k/k!) An^k for an m×m An; Pw, T scratch of m² each. */
static void FN(series)(int m, const REAL *An, double nu, int K, REAL *O, REAL *Pw, REAL *T)
{
    const size_t mm = (size_t)m * m;
    for (size_t i = 0; i < mm; i++)
        O[i] = Pw[i] = 0;
    for (int i = 0; i < m; i++)
        O[(size_t)i * m + i] = Pw[(size_t)i * m + i] = 1;
    const double lnu = log(nu);
    for (int k = 1; k < K; k++) {
        FN(mm)(m, Pw, An, T);
        memcpy(Pw, T, mm * sizeof(REAL));
        const REAL c = (REAL)exp(k * lnu - lgamma(k + 1.0));
        for (size_t i = 0; i < mm; i++)
            O[i] += c * Pw[i];
    }
}

/* A = φ(R − Rᵀ)/ν with ν = max(sqrt(Σ(A²+1e-3)), 1), as the reference scales it. */
static double FN(skew_scaled)(int n, double phi, const REAL *R, REAL *A)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            REAL a = (REAL)(phi * (R[i * n + j] - R[j * n + i]));
            A[i * n + j] = a;
            ss += (double)a * a + 1e-3;
        }
    double nu = fmax(sqrt(ss), 1.0);
    for (int i = 0; i < n * n; i++)
        A[i] = (REAL)(A[i] / nu);
    return nu;
}

static void FN(expo_forward)(int n, double phi, int K, const REAL *R, REAL *O, REAL *work)
{
    REAL *A = work, *Pw = work + n * n, *T = work + 2 * n * n;
    double nu = FN(skew_scaled)(n, phi, R, A);
    FN(series)(n, A, nu, K, O, Pw, T);
}

/* dR (=) from dO = G: dA = Σ_k (1/k!) Σ_m (Aᵀ)^m G (Aᵀ)^{k−1−m}, the upper
 * right block of the truncated series of [[Aᵀ, G], [0, Aᵀ]]; dR = φ(dA − dAᵀ). */
static void FN(expo_backward)(int n, double phi, int K, const REAL *R, const REAL *G, REAL *dR,
                              REAL *work)
{
    const int m = 2 * n;
    const size_t mm = (size_t)m * m;
    REAL *A = work, *B = A + n * n, *F = B + mm, *Pw = F + mm, *T = Pw + mm;
    double nu = FN(skew_scaled)(n, phi, R, A);
    for (size_t i = 0; i < mm; i++)
        B[i] = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            B[(size_t)i * m + j] = B[(size_t)(n + i) * m + n + j] = A[j * n + i];
            B[(size_t)i * m + n + j] = (REAL)(G[i * n + j] / nu);
        }
    FN(series)(m, B, nu, K, F, Pw, T);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            dR[i * n + j] = (REAL)(phi * (F[(size_t)i * m + n + j] - F[(size_t)j * m + n + i]));
}

/* ---- the layer ---------------------------------------------------------- */

typedef struct FN(tr_view) {
    int NH, JT, sym;
    size_t rows;           /* N with weight, 1 without */
    REAL *e, *Ri, *Ro;     /* [rows, NH, JT], [rows, NH, JT²] ×2 (Ro NULL if symmetric) */
} FN(tr_view);

static FN(tr_view) FN(tr_split)(const plstm_transition *L, size_t rows, REAL *buf)
{
    FN(tr_view) v;
    v.NH = L->cfg.num_heads;
    v.JT = L->cfg.JT;
    v.sym = L->cfg.symmetric;
    v.rows = rows;
    const size_t ne = rows * v.NH * v.JT, nr = rows * v.NH * v.JT * v.JT;
    v.e = buf;
    v.Ri = v.JT > 1 ? buf + ne : NULL;
    v.Ro = v.JT > 1 && !v.sym ? buf + ne + nr : NULL;
    return v;
}

/* pre = bias (+ W·x) for one parameter pair, P values per head. */
static void FN(tr_pre)(const plstm_transition *L, const REAL *prm, size_t bias_off, size_t w_off,
                       int P, size_t rows, const REAL *x, REAL *pre)
{
    const int NH = L->cfg.num_heads;
    const size_t HP = (size_t)NH * P;
    if (L->cfg.weight)
        FN(headproj)(NH, P, L->cfg.sub_heads, L->cfg.input_dim, prm + w_off, rows, x, pre);
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < HP; c++)
            pre[r * HP + c] = (L->cfg.weight ? pre[r * HP + c] : 0) + prm[bias_off + c];
}

/* Per row and head: λ, O_in, O_out from the pre-activations, and T. */
static void FN(tr_row_forward)(const plstm_transition *L, const FN(tr_view) *v, size_t r, int h,
                               REAL *T, REAL *lam, REAL *Oi, REAL *Oo, REAL *work)
{
    const int n = v->JT;
    const size_t rh = r * v->NH + h;
    for (int j = 0; j < n; j++)
        lam[j] = FN(eig_act)(L, v->e[rh * n + j]);
    if (n == 1) {
        T[0] = lam[0];
        return;
    }
    const double phi = L->cfg.orthogonalization_factor;
    const int K = L->cfg.orthogonalization_order;
    FN(expo_forward)(n, phi, K, v->Ri + rh * n * n, Oi, work);
    if (v->sym) {
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++)
                Oo[a * n + b] = Oi[b * n + a];
    } else {
        FN(expo_forward)(n, phi, K, v->Ro + rh * n * n, Oo, work);
    }
    for (int a = 0; a < n; a++)
        for (int c = 0; c < n; c++) {
            REAL s = 0;
            for (int b = 0; b < n; b++)
                s += Oo[a * n + b] * lam[b] * Oi[b * n + c];
            T[a * n + c] = s;
        }
}

/* T for every row and head; returns 1 when out of memory. */
static int FN(tr_rows_forward)(const plstm_transition *L, const FN(tr_view) *v, REAL *T, int nt)
{
    const int NH = v->NH, n = v->JT;
    const size_t nn = (size_t)n * n;
    if (n == 1) { /* T = λ elementwise */
        const size_t cnt = v->rows * NH;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t i = 0; i < cnt; i++)
            T[i] = FN(eig_act)(L, v->e[i]);
        return 0;
    }
    int oom = 0;
#pragma omp parallel num_threads(nt) reduction(| : oom)
    {
        REAL *s = malloc(((EXPO_WORK + 2) * nn + n) * sizeof(REAL));
        if (!s)
            oom = 1;
#pragma omp for schedule(static)
        for (size_t r = 0; r < v->rows; r++)
            for (int h = 0; h < NH && s; h++)
                FN(tr_row_forward)(L, v, r, h, T + (r * NH + h) * nn, s, s + n, s + n + nn,
                                   s + n + 2 * nn);
        free(s);
    }
    return oom;
}

static plstm_status FN(tr_forward)(const plstm_transition *L, const REAL *prm, size_t N, const REAL *x,
                                   REAL *T, REAL *acts, int nt)
{
    const int NH = L->cfg.num_heads, n = L->cfg.JT;
    const size_t rows = L->cfg.weight ? N : 1, nn = (size_t)n * n;
    REAL *buf = acts;
    if (!buf && !(buf = malloc(plstm_transition_activation_size(L, N) * sizeof(REAL))))
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "transition forward: out of memory");
    FN(tr_view) v = FN(tr_split)(L, rows, buf);
    FN(tr_pre)(L, prm, L->eig_bias_off, L->eig_weight_off, n, rows, x, v.e);
    if (v.Ri)
        FN(tr_pre)(L, prm, L->inproj_bias_off, L->inproj_weight_off, n * n, rows, x, v.Ri);
    if (v.Ro)
        FN(tr_pre)(L, prm, L->outproj_bias_off, L->outproj_weight_off, n * n, rows, x, v.Ro);
    const int oom = FN(tr_rows_forward)(L, &v, T, nt);
    if (buf != acts)
        free(buf);
    if (oom)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "transition forward: out of memory");
    for (size_t r = 1; r < N && rows == 1; r++)
        memcpy(T + r * NH * nn, T, NH * nn * sizeof(REAL));
    return PLSTM_OK;
}

/* Per row and head: cotangents of the pre-activations (de, dRi, dRo) from dT. */
static void FN(tr_row_backward)(const plstm_transition *L, const FN(tr_view) *v,
                                const FN(tr_view) *dv, size_t r, int h, const REAL *dT, REAL *s)
{
    const int n = v->JT;
    const size_t nn = (size_t)n * n, rh = r * v->NH + h;
    REAL *lam = s, *Oi = s + n, *Oo = Oi + nn, *dOi = Oo + nn, *dOo = dOi + nn, *U = dOo + nn;
    REAL *Tt = U + nn, *work = Tt + nn;
    FN(tr_row_forward)(L, v, r, h, Tt, lam, Oi, Oo, work);
    REAL *de = dv->e + rh * n;
    if (n == 1) {
        de[0] = dT[0] * FN(deig_act)(L, v->e[rh]);
        return;
    }
    /* U = dT·Oiᵀ;  dOo[a,b] = U[a,b] λ[b];  dλ[b] = Σ_a Oo[a,b] U[a,b];  dOi = diag(λ) Ooᵀ dT */
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++) {
            REAL u = 0, w = 0;
            for (int c = 0; c < n; c++) {
                u += dT[a * n + c] * Oi[b * n + c];
                w += Oo[c * n + a] * dT[c * n + b];
            }
            U[a * n + b] = u;
            dOo[a * n + b] = u * lam[b];
            dOi[a * n + b] = lam[a] * w;
        }
    for (int b = 0; b < n; b++) {
        REAL dl = 0;
        for (int a = 0; a < n; a++)
            dl += Oo[a * n + b] * U[a * n + b];
        de[b] = dl * FN(deig_act)(L, v->e[rh * n + b]);
    }
    const double phi = L->cfg.orthogonalization_factor;
    const int K = L->cfg.orthogonalization_order;
    if (v->sym) /* Oo = Oiᵀ */
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++)
                dOi[a * n + b] += dOo[b * n + a];
    else
        FN(expo_backward)(n, phi, K, v->Ro + rh * nn, dOo, dv->Ro + rh * nn, work);
    FN(expo_backward)(n, phi, K, v->Ri + rh * nn, dOi, dv->Ri + rh * nn, work);
}

/* Bias and weight gradients of one pre-activation block, and its dx share. */
static void FN(tr_pre_backward)(const plstm_transition *L, const REAL *prm, REAL *grads,
                                size_t bias_off, size_t w_off, int P, size_t rows, const REAL *x,
                                const REAL *dpre, REAL *dx, int *dx_started)
{
    const int NH = L->cfg.num_heads;
    const size_t HP = (size_t)NH * P;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < HP; c++)
            grads[bias_off + c] += dpre[r * HP + c];
    if (L->cfg.weight) {
        FN(headproj_backward)(NH, P, L->cfg.sub_heads, L->cfg.input_dim, prm + w_off, rows, x, dpre,
                              grads + w_off, dx, *dx_started);
        *dx_started = 1;
    }
}

/* Cotangents of the pre-activations for every row and head; 1 when out of memory. */
static int FN(tr_rows_backward)(const plstm_transition *L, const FN(tr_view) *v,
                                const FN(tr_view) *dv, const REAL *dT, int nt)
{
    const int NH = v->NH, n = v->JT;
    const size_t nn = (size_t)n * n;
    if (n == 1) { /* de = dT·λ'(e) elementwise */
        const size_t cnt = v->rows * NH;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t i = 0; i < cnt; i++)
            dv->e[i] = dT[i] * FN(deig_act)(L, v->e[i]);
        return 0;
    }
    int oom = 0;
#pragma omp parallel num_threads(nt) reduction(| : oom)
    {
        REAL *s = malloc(((EXPO_WORK + 8) * nn + n) * sizeof(REAL));
        if (!s)
            oom = 1;
#pragma omp for schedule(static)
        for (size_t r = 0; r < v->rows; r++)
            for (int h = 0; h < NH && s; h++)
                FN(tr_row_backward)(L, v, dv, r, h, dT + (r * NH + h) * nn, s);
        free(s);
    }
    return oom;
}

static plstm_status FN(tr_backward)(const plstm_transition *L, const REAL *prm, size_t N,
                                    const REAL *x, const REAL *acts, const REAL *dT, REAL *dx,
                                    REAL *grads, int nt)
{
    const int NH = L->cfg.num_heads, n = L->cfg.JT;
    const size_t rows = L->cfg.weight ? N : 1, nn = (size_t)n * n;
    const size_t asz = plstm_transition_activation_size(L, N);
    REAL *dbuf = malloc((asz + (rows == 1 ? NH * nn : 0)) * sizeof(REAL));
    if (!dbuf)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "transition backward: out of memory");
    FN(tr_view) v = FN(tr_split)(L, rows, (REAL *)acts);
    FN(tr_view) dv = FN(tr_split)(L, rows, dbuf);
    const REAL *dTr = dT;
    if (rows == 1) { /* T is the same in every row: sum the cotangents */
        REAL *sum = dbuf + asz;
        memset(sum, 0, NH * nn * sizeof(REAL));
        for (size_t r = 0; r < N; r++)
            for (size_t i = 0; i < NH * nn; i++)
                sum[i] += dT[r * NH * nn + i];
        dTr = sum;
    }
    const int oom = FN(tr_rows_backward)(L, &v, &dv, dTr, nt);
    if (oom) {
        free(dbuf);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "transition backward: out of memory");
    }
    int started = 0;
    FN(tr_pre_backward)(L, prm, grads, L->eig_bias_off, L->eig_weight_off, n, rows, x, dv.e, dx,
                        &started);
    if (dv.Ri)
        FN(tr_pre_backward)(L, prm, grads, L->inproj_bias_off, L->inproj_weight_off, n * n, rows, x,
                            dv.Ri, dx, &started);
    if (dv.Ro)
        FN(tr_pre_backward)(L, prm, grads, L->outproj_bias_off, L->outproj_weight_off, n * n, rows,
                            x, dv.Ro, dx, &started);
    if (dx && !started)
        memset(dx, 0, N * (size_t)L->cfg.input_dim * sizeof(REAL));
    free(dbuf);
    return PLSTM_OK;
}
