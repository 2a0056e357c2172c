/* Templated helpers of the CPU NN operators, written once over REAL and
 * included by every nn_*.c with REAL and FN(name) defined (float: _f32,
 * double: _f64). <tgmath.h> picks the float or double math function.
 *
 * Column sums over many rows (bias and scale gradients) run row-parallel:
 * thread t of a team of nt sums a contiguous block of rows into its own
 * partial row, and the partials are added to dst in thread order, so the
 * result depends only on the team size, never on scheduling. */

/* Rows [*r0, *r1) of thread t out of T. */
static inline void FN(row_block)(size_t rows, int t, int T, size_t *r0, size_t *r1)
{
    *r0 = rows * (size_t)t / (size_t)T;
    *r1 = rows * (size_t)(t + 1) / (size_t)T;
}

/* dst[c] += Σ_t part[t·cols + c], t = 0 … nt−1. */
static inline void FN(part_reduce)(int nt, int cols, const REAL *part, REAL *dst)
{
    for (int t = 0; t < nt; t++)
        for (int c = 0; c < cols; c++)
            dst[c] += part[(size_t)t * cols + c];
}

/* dst[c] += Σ_r a[r·cols + c] · (b ? b[r·cols + c] : 1). */
static inline void FN(colsum_acc2)(size_t rows, int cols, const REAL *a, const REAL *b, REAL *dst,
                                   int nt)
{
    REAL *part = NULL;
    if (nt > 1 && rows * (size_t)cols >= 65536 && rows >= (size_t)nt)
        part = calloc((size_t)nt * cols, sizeof(REAL));
    if (!part) { /* small (or no memory for partials): one thread */
        for (size_t r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                dst[c] += a[r * cols + c] * (b ? b[r * cols + c] : 1);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        size_t r0, r1;
        FN(row_block)(rows, omp_get_thread_num(), omp_get_num_threads(), &r0, &r1);
        REAL *p = part + (size_t)omp_get_thread_num() * cols;
        for (size_t r = r0; r < r1; r++)
            for (int c = 0; c < cols; c++)
                p[c] += a[r * cols + c] * (b ? b[r * cols + c] : 1);
    }
    FN(part_reduce)(nt, cols, part, dst);
    free(part);
}

/* dst[c] += Σ_r src[r·cols + c]. */
static inline void FN(colsum_acc)(size_t rows, int cols, const REAL *src, REAL *dst, int nt)
{
    FN(colsum_acc2)(rows, cols, src, NULL, dst, nt);
}
