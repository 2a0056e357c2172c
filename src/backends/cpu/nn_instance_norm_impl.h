/* Instance norm of channels-last grids over REAL; included by
 * nn_instance_norm.c with REAL and FN defined. Image-parallel; statistics in
 * double. */

/* Per-channel mean and 1/sqrt(var + eps) of one image x [N, C]. */
static void FN(inorm_stats)(int N, int C, double eps, const REAL *x, double *mu, double *rs)
{
    for (int c = 0; c < C; c++)
        mu[c] = 0, rs[c] = 0;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            mu[c] += x[(size_t)n * C + c];
    for (int c = 0; c < C; c++)
        mu[c] /= N;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const double d = x[(size_t)n * C + c] - mu[c];
            rs[c] += d * d;
        }
    for (int c = 0; c < C; c++)
        rs[c] = 1.0 / sqrt(rs[c] / N + eps);
}

/* scratch: nt·2·C doubles. */
static void FN(inorm_forward)(int nt, int B, int N, int C, double eps, const REAL *x,
                              const REAL *gamma, const REAL *beta, REAL *y, double *scratch)
{
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int b = 0; b < B; b++) {
        double *mu = scratch + (size_t)omp_get_thread_num() * 2 * C, *rs = mu + C;
        const size_t o = (size_t)b * N * C;
        FN(inorm_stats)(N, C, eps, x + o, mu, rs);
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) {
                const size_t i = o + (size_t)n * C + c;
                double v = (x[i] - mu[c]) * rs[c];
                if (gamma)
                    v *= gamma[c];
                if (beta)
                    v += beta[c];
                y[i] = (REAL)v;
            }
    }
}

/* scratch: nt·4·C doubles; part: nt·2·C REALs, zeroed ([dgamma | dbeta]
 * partials per thread, added in thread order: deterministic per team size). */
static void FN(inorm_backward)(int nt, int B, int N, int C, double eps, const REAL *x,
                               const REAL *gamma, const REAL *dy, REAL *dx, REAL *dgamma,
                               REAL *dbeta, double *scratch, REAL *part)
{
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        double *mu = scratch + (size_t)t * 4 * C, *rs = mu + C, *sg = rs + C, *sgx = sg + C;
        REAL *pg = part + (size_t)t * 2 * C;
        size_t b0, b1;
        FN(row_block)((size_t)B, t, T, &b0, &b1);
        for (size_t b = b0; b < b1; b++) {
            const size_t o = b * N * C;
            FN(inorm_stats)(N, C, eps, x + o, mu, rs);
            for (int c = 0; c < C; c++)
                sg[c] = 0, sgx[c] = 0;
            for (int n = 0; n < N; n++) /* Σ g, Σ g·x̂ (g = dy·γ); the γ, β gradients */
                for (int c = 0; c < C; c++) {
                    const size_t i = o + (size_t)n * C + c;
                    const double xh = (x[i] - mu[c]) * rs[c], d = dy[i];
                    const double g = gamma ? d * gamma[c] : d;
                    sg[c] += g, sgx[c] += g * xh;
                    pg[c] += (REAL)(d * xh), pg[C + c] += (REAL)d;
                }
            if (!dx)
                continue;
            for (int n = 0; n < N; n++)
                for (int c = 0; c < C; c++) {
                    const size_t i = o + (size_t)n * C + c;
                    const double xh = (x[i] - mu[c]) * rs[c];
                    const double g = gamma ? (double)dy[i] * gamma[c] : dy[i];
                    dx[i] = (REAL)(rs[c] * (g - sg[c] / N - xh * sgx[c] / N));
                }
        }
    }
    for (int t = 0; t < nt; t++)
        for (int c = 0; c < C; c++) {
            if (dgamma)
                dgamma[c] += part[(size_t)t * 2 * C + c];
            if (dbeta)
                dbeta[c] += part[(size_t)t * 2 * C + C + c];
        }
}
