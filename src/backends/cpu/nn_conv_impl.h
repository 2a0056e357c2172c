/* Causal depthwise 2D convolution (plstm-math.md §5.5) over REAL; included by
 * nn_conv.c with REAL and FN defined. Channels-last [B, X, Y, C]; the weight
 * [C, KX, KY] is transposed to wt [KX, KY, C] so the inner loops run over
 * contiguous channels. Tap (i, j) of output (x, y) reads input
 * (x − (KX−1) + i, y − (KY−1) + j). */

static void FN(dwconv_transpose)(int C, int K, const REAL *w, REAL *wt)
{
    for (int c = 0; c < C; c++)
        for (int k = 0; k < K; k++)
            wt[(size_t)k * C + c] = w[(size_t)c * K + k];
}

static void FN(dwconv_forward)(plstm_context *ctx, int B, int X, int Y, int C, int KX, int KY,
                               const REAL *x, const REAL *wt, const REAL *bias, REAL *y)
{
    const int nt = nn_team(ctx, (size_t)B * X * Y * C * KX * KY);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (long bx = 0; bx < (long)B * X; bx++) {
        const int b = (int)(bx / X), px = (int)(bx % X);
        for (int py = 0; py < Y; py++) {
            REAL *o = y + ((size_t)bx * Y + py) * C;
            for (int c = 0; c < C; c++)
                o[c] = bias ? bias[c] : 0;
            for (int i = 0; i < KX; i++) {
                const int sx = px - (KX - 1) + i;
                if (sx < 0)
                    continue;
                for (int j = 0; j < KY; j++) {
                    const int sy = py - (KY - 1) + j;
                    if (sy < 0)
                        continue;
                    const REAL *in = x + (((size_t)b * X + sx) * Y + sy) * C;
                    const REAL *wk = wt + ((size_t)i * KY + j) * C;
                    for (int c = 0; c < C; c++)
                        o[c] += wk[c] * in[c];
                }
            }
        }
    }
}

static void FN(dwconv_backward_input)(plstm_context *ctx, int B, int X, int Y, int C, int KX,
                                      int KY, const REAL *wt, const REAL *dy, REAL *dx)
{
    const int nt = nn_team(ctx, (size_t)B * X * Y * C * KX * KY);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (long bx = 0; bx < (long)B * X; bx++) {
        const int b = (int)(bx / X), px = (int)(bx % X);
        for (int py = 0; py < Y; py++) {
            REAL *o = dx + ((size_t)bx * Y + py) * C;
            for (int c = 0; c < C; c++)
                o[c] = 0;
            for (int i = 0; i < KX; i++) {
                const int tx = px + (KX - 1) - i; /* output that read (px, py) through tap i */
                if (tx >= X)
                    continue;
                for (int j = 0; j < KY; j++) {
                    const int ty = py + (KY - 1) - j;
                    if (ty >= Y)
                        continue;
                    const REAL *g = dy + (((size_t)b * X + tx) * Y + ty) * C;
                    const REAL *wk = wt + ((size_t)i * KY + j) * C;
                    for (int c = 0; c < C; c++)
                        o[c] += wk[c] * g[c];
                }
            }
        }
    }
}

/* dw[c, i, j] += Σ dy · shifted x. Row-parallel over (b, x); thread t
 * accumulates into part + t·K·C (transposed layout [K, C], zeroed), and the
 * partials are added in thread order (deterministic per team size). */
static void FN(dwconv_backward_weight)(int nt, int B, int X, int Y, int C, int KX, int KY,
                                       const REAL *x, const REAL *dy, REAL *dw, REAL *part)
{
    const int K = KX * KY;
#pragma omp parallel num_threads(nt)
    {
        size_t r0, r1;
        FN(row_block)((size_t)B * X, omp_get_thread_num(), omp_get_num_threads(), &r0, &r1);
        REAL *acc = part + (size_t)omp_get_thread_num() * K * C;
        for (size_t bx = r0; bx < r1; bx++) {
            const int b = (int)(bx / X), px = (int)(bx % X);
            for (int py = 0; py < Y; py++) {
                const REAL *g = dy + (bx * Y + py) * C;
                for (int i = 0; i < KX; i++) {
                    const int sx = px - (KX - 1) + i;
                    if (sx < 0)
                        continue;
                    for (int j = 0; j < KY; j++) {
                        const int sy = py - (KY - 1) + j;
                        if (sy < 0)
                            continue;
                        const REAL *in = x + (((size_t)b * X + sx) * Y + sy) * C;
                        REAL *a = acc + ((size_t)i * KY + j) * C;
                        for (int c = 0; c < C; c++)
                            a[c] += g[c] * in[c];
                    }
                }
            }
        }
    }
    for (int t = 1; t < nt; t++)
        for (size_t e = 0; e < (size_t)K * C; e++)
            part[e] += part[(size_t)t * K * C + e];
    for (int c = 0; c < C; c++)
        for (int k = 0; k < K; k++)
            dw[(size_t)c * K + k] += part[(size_t)k * C + c];
}
