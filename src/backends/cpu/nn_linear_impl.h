/* Linear layer over REAL; included by nn_linear.c with REAL, FN and GEMM. */

static void FN(linear_forward)(plstm_context *ctx, int n, int in, int out, const REAL *x,
                               const REAL *W, const REAL *b, REAL *y)
{
    if (b) {
        const int nt = nn_team(ctx, (size_t)n * out);
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int r = 0; r < n; r++)
            memcpy(y + (size_t)r * out, b, (size_t)out * sizeof(REAL));
    }
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1, x, in, W, in, b ? 1 : 0, y, out);
}

static void FN(linear_backward)(plstm_context *ctx, int n, int in, int out, const REAL *x,
                                const REAL *W, const REAL *dy, REAL *dx, REAL *dW, REAL *db)
{
    if (dx)
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1, dy, out, W, in, 0, dx, in);
    if (dW)
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1, dy, out, x, in, 1, dW, in);
    if (db)
        FN(colsum_acc)((size_t)n, out, dy, db, nn_threads(ctx));
}
