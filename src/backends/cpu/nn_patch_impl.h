/* im2col / col2im of the patch embedding over REAL; included by nn_patch.c
 * with REAL and FN defined. Images [nb, H, W, C] channels last; column row
 * (b, i, j) holds the patch at (i·s, j·s) in the order (c, ki, kj) of the
 * torch weight [dim, C, p, p]. */

static void FN(im2col)(plstm_context *ctx, int nb, int H, int W, int C, int p, int s, int Hp,
                       int Wp, const REAL *img, REAL *col)
{
    const size_t K = (size_t)C * p * p;
    const int nt = nn_team(ctx, (size_t)nb * Hp * Wp * K);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (long bi = 0; bi < (long)nb * Hp; bi++) {
        const int b = (int)(bi / Hp), i = (int)(bi % Hp);
        for (int j = 0; j < Wp; j++) {
            REAL *r = col + ((size_t)bi * Wp + j) * K;
            for (int ki = 0; ki < p; ki++) {
                const REAL *src = img + (((size_t)b * H + (size_t)i * s + ki) * W + (size_t)j * s) * C;
                for (int c = 0; c < C; c++) /* contiguous writes along kj */
                    for (int kj = 0; kj < p; kj++)
                        r[((size_t)c * p + ki) * p + kj] = src[(size_t)kj * C + c];
            }
        }
    }
}

/* dimg (zeroed by the caller) += scatter of dcol; one thread per image, so
 * overlapping patches (s < p) never race. */
static void FN(col2im)(plstm_context *ctx, int nb, int H, int W, int C, int p, int s, int Hp,
                       int Wp, const REAL *dcol, REAL *dimg)
{
    const size_t K = (size_t)C * p * p;
    const int nt = nn_team(ctx, (size_t)nb * Hp * Wp * K);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int b = 0; b < nb; b++)
        for (int i = 0; i < Hp; i++)
            for (int j = 0; j < Wp; j++) {
                const REAL *r = dcol + (((size_t)b * Hp + i) * Wp + j) * K;
                for (int ki = 0; ki < p; ki++) {
                    REAL *dst = dimg + (((size_t)b * H + (size_t)i * s + ki) * W + (size_t)j * s) * C;
                    for (int c = 0; c < C; c++)
                        for (int kj = 0; kj < p; kj++)
                            dst[(size_t)kj * C + c] += r[((size_t)c * p + ki) * p + kj];
                }
            }
}
