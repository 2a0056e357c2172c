/* RMSNorm / LayerNorm (plain and multi-head) over REAL; included by
 * nn_norm.c with REAL and FN defined. Rows of D values are split into NH
 * groups of G = D/NH; statistics are accumulated in double. */

/* Mean (0 for RMS) and 1/sqrt(var + eps) (mean square for RMS) of one group. */
static void FN(norm_stats)(plstm_norm_kind kind, int G, double eps, const REAL *x, double *mu,
                           double *rs)
{
    double m = 0, v = 0;
    if (kind == PLSTM_NORM_LAYER) {
        for (int i = 0; i < G; i++)
            m += x[i];
        m /= G;
    }
    for (int i = 0; i < G; i++) {
        const double d = x[i] - m;
        v += d * d;
    }
    *mu = m;
    *rs = 1.0 / sqrt(v / G + eps);
}

static void FN(norm_forward)(plstm_context *ctx, plstm_norm_kind kind, int n, int D, int NH,
                             double eps, const REAL *x, const REAL *gamma, const REAL *beta,
                             REAL *y)
{
    const int G = D / NH, nt = nn_team(ctx, (size_t)n * D * 4);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int r = 0; r < n; r++)
        for (int g = 0; g < NH; g++) {
            const size_t o = (size_t)r * D + (size_t)g * G;
            double mu, rs;
            FN(norm_stats)(kind, G, eps, x + o, &mu, &rs);
            const REAL m = (REAL)mu, s = (REAL)rs;
            const REAL *ga = gamma ? gamma + (size_t)g * G : NULL;
            const REAL *be = beta ? beta + (size_t)g * G : NULL;
            for (int i = 0; i < G; i++) {
                REAL v = (x[o + i] - m) * s;
                if (ga)
                    v *= ga[i];
                if (be)
                    v += be[i];
                y[o + i] = v;
            }
        }
}

/* Row-parallel; each thread owns a partial [dgamma | dbeta] row of 2·D
 * values in `part` (nt·2·D, zeroed; NULL when neither is wanted), added to
 * the gradients in thread order at the end (deterministic per team size). */
static void FN(norm_backward)(int nt, plstm_norm_kind kind, int n, int D, int NH, double eps,
                              const REAL *x, const REAL *gamma, const REAL *dy, REAL *dx,
                              REAL *dgamma, REAL *dbeta, REAL *part)
{
    const int G = D / NH;
#pragma omp parallel num_threads(nt)
    {
        size_t r0, r1;
        FN(row_block)((size_t)n, omp_get_thread_num(), omp_get_num_threads(), &r0, &r1);
        REAL *pg = part ? part + (size_t)omp_get_thread_num() * 2 * D : NULL;
        for (size_t r = r0; r < r1; r++)
            for (int g = 0; g < NH; g++) {
                const size_t o = r * D + (size_t)g * G;
                double mu, rs;
                FN(norm_stats)(kind, G, eps, x + o, &mu, &rs);
                if (pg)
                    for (int i = 0; i < G; i++) {
                        pg[g * G + i] += dy[o + i] * (REAL)((x[o + i] - mu) * rs);
                        pg[D + g * G + i] += dy[o + i];
                    }
                if (!dx)
                    continue;
                const REAL *ga = gamma ? gamma + (size_t)g * G : NULL;
                double sg = 0, sgx = 0; /* Σ g, Σ g·x̂ with g = dy·γ */
                for (int i = 0; i < G; i++) {
                    const double gi = ga ? (double)dy[o + i] * ga[i] : dy[o + i];
                    sg += gi;
                    sgx += gi * (x[o + i] - mu) * rs;
                }
                const double mg = kind == PLSTM_NORM_LAYER ? sg / G : 0, mgx = sgx / G;
                for (int i = 0; i < G; i++) {
                    const double gi = ga ? (double)dy[o + i] * ga[i] : dy[o + i];
                    const double xh = (x[o + i] - mu) * rs;
                    dx[o + i] = (REAL)(rs * (gi - mg - xh * mgx));
                }
            }
    }
    if (!part)
        return;
    for (int t = 0; t < nt; t++) {
        const REAL *pg = part + (size_t)t * 2 * D;
        for (int c = 0; c < D; c++) {
            if (dgamma)
                dgamma[c] += pg[c];
            if (dbeta)
                dbeta[c] += pg[D + c];
        }
    }
}
