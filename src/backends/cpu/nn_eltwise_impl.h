/* Activations, elementwise helpers and grid pooling over REAL; included by
 * nn_eltwise.c with REAL and FN defined. Elementwise loops read element i
 * before writing it, so in-place use (y == x, dx == dy) is safe. */

#define NN_SQRT_2_PI 0.79788456080286535588 /* √(2/π)  */
#define NN_INV_SQRT_2PI 0.39894228040143267794 /* 1/√(2π) */
#define NN_INV_SQRT_2 0.70710678118654752440 /* 1/√2    */
#define NN_GELU_C 0.044715

static void FN(activation_forward)(plstm_context *ctx, plstm_activation act, size_t count,
                                   const REAL *x, REAL *y)
{
    const int nt = nn_team(ctx, count * 16);
    const REAL h = (REAL)0.5, one = 1;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < count; i++) {
        const REAL v = x[i];
        switch (act) {
        case PLSTM_ACT_GELU:
            y[i] = h * v * (one + erf(v * (REAL)NN_INV_SQRT_2));
            break;
        case PLSTM_ACT_GELU_TANH:
            y[i] = h * v * (one + tanh((REAL)NN_SQRT_2_PI * (v + (REAL)NN_GELU_C * v * v * v)));
            break;
        case PLSTM_ACT_SILU:
            y[i] = v / (one + exp(-v));
            break;
        }
    }
}

static void FN(activation_backward)(plstm_context *ctx, plstm_activation act, size_t count,
                                    const REAL *x, const REAL *dy, REAL *dx)
{
    const int nt = nn_team(ctx, count * 16);
    const REAL h = (REAL)0.5, one = 1;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < count; i++) {
        const REAL v = x[i];
        REAL d = 0;
        switch (act) {
        case PLSTM_ACT_GELU: /* Φ(x) + x·φ(x) */
            d = h * (one + erf(v * (REAL)NN_INV_SQRT_2)) +
                v * (REAL)NN_INV_SQRT_2PI * exp(-h * v * v);
            break;
        case PLSTM_ACT_GELU_TANH: {
            const REAL t = tanh((REAL)NN_SQRT_2_PI * (v + (REAL)NN_GELU_C * v * v * v));
            d = h * (one + t) +
                h * v * (one - t * t) * (REAL)NN_SQRT_2_PI * (one + (REAL)(3 * NN_GELU_C) * v * v);
            break;
        }
        case PLSTM_ACT_SILU: {
            const REAL s = one / (one + exp(-v));
            d = s * (one + v * (one - s));
            break;
        }
        }
        dx[i] = dy[i] * d;
    }
}

static void FN(add)(plstm_context *ctx, size_t count, const REAL *a, const REAL *b, REAL *y)
{
    const int nt = nn_team(ctx, count);
#pragma omp parallel for simd num_threads(nt) schedule(static)
    for (size_t i = 0; i < count; i++)
        y[i] = a[i] + b[i];
}

static void FN(axpy)(plstm_context *ctx, size_t count, REAL alpha, const REAL *x, REAL *y)
{
    const int nt = nn_team(ctx, count);
#pragma omp parallel for simd num_threads(nt) schedule(static)
    for (size_t i = 0; i < count; i++)
        y[i] += alpha * x[i];
}

static void FN(scale_forward)(plstm_context *ctx, int n, int D, const REAL *x, const REAL *s,
                              REAL *y)
{
    const int nt = nn_team(ctx, (size_t)n * D);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int r = 0; r < n; r++)
        for (int c = 0; c < D; c++)
            y[(size_t)r * D + c] = x[(size_t)r * D + c] * s[c];
}

static void FN(scale_backward)(plstm_context *ctx, int n, int D, const REAL *x, const REAL *s,
                               const REAL *dy, REAL *dx, REAL *ds)
{
    if (ds) /* first: dx may alias dy */
        FN(colsum_acc2)((size_t)n, D, dy, x, ds, nn_threads(ctx));
    if (dx)
        FN(scale_forward)(ctx, n, D, dy, s, dx);
}

static void FN(broadcast_add_forward)(plstm_context *ctx, int B, int M, const REAL *x,
                                      const REAL *v, REAL *y)
{
    const int nt = nn_team(ctx, (size_t)B * M);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int b = 0; b < B; b++)
        for (int m = 0; m < M; m++)
            y[(size_t)b * M + m] = x[(size_t)b * M + m] + v[m];
}

/* Offsets (in elements, within one [X, Y, D] grid) of the rows a pooling reads. */
static int FN(pool_sites)(plstm_pool_kind kind, int X, int Y, int D, size_t *off)
{
    const size_t row = (size_t)Y * D;
    switch (kind) {
    case PLSTM_POOL_CORNERS:
        off[0] = 0;
        off[1] = (size_t)(X - 1) * row;
        off[2] = (size_t)(Y - 1) * D;
        off[3] = (size_t)(X - 1) * row + (size_t)(Y - 1) * D;
        return 4;
    case PLSTM_POOL_CENTER:
        off[0] = (size_t)(X / 2) * row + (size_t)(Y / 2) * D;
        return 1;
    case PLSTM_POOL_FIRST:
        off[0] = 0;
        return 1;
    case PLSTM_POOL_MEAN:
        break;
    }
    return 0;
}

static void FN(pool_forward)(plstm_context *ctx, plstm_pool_kind kind, int B, int X, int Y, int D,
                             const REAL *x, REAL *y)
{
    const size_t grid = (size_t)X * Y * D;
    size_t off[4];
    const int ns = FN(pool_sites)(kind, X, Y, D, off);
    const int nt = nn_team(ctx, kind == PLSTM_POOL_MEAN ? (size_t)B * grid : 0);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int b = 0; b < B; b++) {
        const REAL *xb = x + (size_t)b * grid;
        if (kind != PLSTM_POOL_MEAN) {
            for (int k = 0; k < ns; k++)
                memcpy(y + ((size_t)b * ns + k) * D, xb + off[k], (size_t)D * sizeof(REAL));
            continue;
        }
        REAL *yb = y + (size_t)b * D;
        for (int d = 0; d < D; d++)
            yb[d] = 0;
        for (size_t p = 0; p < (size_t)X * Y; p++)
            for (int d = 0; d < D; d++)
                yb[d] += xb[p * D + d];
        const REAL inv = (REAL)(1.0 / ((double)X * Y));
        for (int d = 0; d < D; d++)
            yb[d] *= inv;
    }
}

static void FN(pool_backward)(plstm_context *ctx, plstm_pool_kind kind, int B, int X, int Y, int D,
                              const REAL *dy, REAL *dx)
{
    const size_t grid = (size_t)X * Y * D;
    size_t off[4];
    const int ns = FN(pool_sites)(kind, X, Y, D, off);
    const int nt = nn_team(ctx, (size_t)B * grid);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int b = 0; b < B; b++) {
        REAL *xb = dx + (size_t)b * grid;
        if (kind == PLSTM_POOL_MEAN) {
            const REAL inv = (REAL)(1.0 / ((double)X * Y));
            for (size_t p = 0; p < (size_t)X * Y; p++)
                for (int d = 0; d < D; d++)
                    xb[p * D + d] = dy[(size_t)b * D + d] * inv;
            continue;
        }
        memset(xb, 0, grid * sizeof(REAL));
        for (int k = 0; k < ns; k++) /* += : corners coincide when X or Y is 1 */
            for (int d = 0; d < D; d++)
                xb[off[k] + d] += dy[((size_t)b * ns + k) * D + d];
    }
}
