/* CPU fused Linears of one input into column segments of one output. The
 * rows (forward, dx) or output columns (dW, db) are split over the OpenMP
 * team, each thread issuing single-threaded GEMMs on its block: for the
 * tall-skinny products of graph layers (tens of thousands of nodes, a few
 * hundred features) this beats OpenBLAS's own threading. */
#include "backends/cpu/blas_threads.h"
#include "backends/cpu/cpu_nn.h"
#include "backends/cpu/nn_common.h"

#include <cblas.h>
#include <string.h>

/* Products below this many multiply-adds run on the calling thread. */
#define MULTI_PAR_WORK 1000000.0

static int multi_team(const plstm_context *ctx, double work, int parts)
{
    const int t = nn_threads(ctx);
    if (work < MULTI_PAR_WORK || t < 2)
        return 1;
    return t < parts ? t : parts;
}

static void block_of(int total, int part, int parts, int *lo, int *hi)
{
    *lo = (int)((long long)total * part / parts);
    *hi = (int)((long long)total * (part + 1) / parts);
}

/* C[m, n] = op(A)·op(B) + beta·C, row-major. */
static void gemm(plstm_dtype dt, int ta, int tb, int m, int n, int k, const void *A, int lda,
                 const void *B, int ldb, double beta, void *C, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    const enum CBLAS_TRANSPOSE a = ta ? CblasTrans : CblasNoTrans, b = tb ? CblasTrans : CblasNoTrans;
    if (dt == PLSTM_F32)
        cblas_sgemm(CblasRowMajor, a, b, m, n, k, 1.0f, A, lda, B, ldb, (float)beta, C, ldc);
    else
        cblas_dgemm(CblasRowMajor, a, b, m, n, k, 1.0, A, lda, B, ldb, beta, C, ldc);
}

static int total_out(int nseg, const int *out)
{
    int P = 0;
    for (int i = 0; i < nseg; i++)
        P += out[i];
    return P;
}

plstm_status cpu_linear_multi_forward(plstm_context *ctx, plstm_dtype dt, int n, int in, int nseg,
                                      const int *out, const void *const *W,
                                      const void *const *b, const void *x, void *y)
{
    const size_t e = plstm_dtype_size(dt);
    const int P = total_out(nseg, out);
    const int nt = multi_team(ctx, (double)n * in * P, n);
    const int blas = cpu_blas_serial_begin(nt);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int r0, r1;
        block_of(n, omp_get_thread_num(), omp_get_num_threads(), &r0, &r1);
        for (int i = 0, c = 0; i < nseg; c += out[i++]) {
            for (int r = r0; b[i] && r < r1; r++)
                memcpy((char *)y + ((size_t)r * P + c) * e, b[i], (size_t)out[i] * e);
            gemm(dt, 0, 1, r1 - r0, out[i], in, (const char *)x + (size_t)r0 * in * e, in, W[i],
                 in, b[i] ? 1.0 : 0.0, (char *)y + ((size_t)r0 * P + c) * e, P);
        }
    }
    cpu_blas_serial_end(blas);
    return PLSTM_OK;
}

/* Column sums of dy's columns a..z (of P) over n rows, added to o[a..z]. */
#define COLSUM(R)                                                                         \
    do {                                                                                  \
        const R *g = dy;                                                                  \
        R *o = (R *)db[i] - c;                                                            \
        for (int r = 0; r < n; r++)                                                       \
            for (int k = a; k < z; k++)                                                   \
                o[k] += g[(size_t)r * P + k];                                             \
    } while (0)

plstm_status cpu_linear_multi_backward(plstm_context *ctx, plstm_dtype dt, int n, int in,
                                       int nseg, const int *out, const void *const *W,
                                       const void *x, const void *dy, void *dx,
                                       void *const *dW, void *const *db)
{
    const size_t e = plstm_dtype_size(dt);
    const int P = total_out(nseg, out);
    const int nt = multi_team(ctx, (double)n * in * P, n < P ? n : P);
    const int blas = cpu_blas_serial_begin(nt);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        int r0, r1, o0, o1;
        block_of(n, t, T, &r0, &r1);
        block_of(P, t, T, &o0, &o1); /* this thread's output columns */
        for (int i = 0, c = 0; i < nseg; c += out[i++]) {
            if (dx) /* rows r0..r1 of dx */
                gemm(dt, 0, 0, r1 - r0, in, out[i], (const char *)dy + ((size_t)r0 * P + c) * e,
                     P, W[i], in, i ? 1.0 : 0.0, (char *)dx + (size_t)r0 * in * e, in);
            const int a = o0 > c ? o0 : c, z = o1 < c + out[i] ? o1 : c + out[i];
            if (a >= z)
                continue;
            if (dW && dW[i]) /* rows a−c .. z−c of dW[i] */
                gemm(dt, 1, 0, z - a, in, n, (const char *)dy + (size_t)a * e, P, x, in, 1.0,
                     (char *)dW[i] + (size_t)(a - c) * in * e, in);
            if (db && db[i]) {
                if (dt == PLSTM_F32)
                    COLSUM(float);
                else
                    COLSUM(double);
            }
        }
    }
    cpu_blas_serial_end(blas);
    return PLSTM_OK;
}
