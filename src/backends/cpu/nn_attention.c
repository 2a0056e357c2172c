/* CPU multi-head softmax attention: OpenMP over (batch, head) pairs, each
 * pair's products on single-threaded OpenBLAS GEMMs. */
#include "backends/cpu/blas_threads.h"
#include "backends/cpu/cpu_nn.h"
#include "backends/cpu/nn_common.h"
#include "core/status_internal.h"

#include <cblas.h>
#include <stdlib.h>
#include <tgmath.h>

#define REAL float
#define FN(x) x##_f32
#define GEMM cblas_sgemm
#include "backends/cpu/nn_attention_impl.h"
#undef REAL
#undef FN
#undef GEMM

#define REAL double
#define FN(x) x##_f64
#define GEMM cblas_dgemm
#include "backends/cpu/nn_attention_impl.h"
#undef REAL
#undef FN
#undef GEMM

/* Team size and its scratch (2·N·N values per thread). */
static plstm_status attn_setup(plstm_context *ctx, plstm_dtype dtype, int B, int N, int H,
                               int Dh, int *nt, void **scratch)
{
    const int pairs = B * H;
    int t = nn_team(ctx, (size_t)pairs * N * N * Dh);
    t = t > pairs ? pairs : t;
    *nt = t;
    *scratch = malloc((size_t)t * 2 * N * N * plstm_dtype_size(dtype));
    if (!*scratch)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "attention: no memory for %d×%d scores", N, N);
    return PLSTM_OK;
}

plstm_status cpu_attention_forward(plstm_context *ctx, plstm_dtype dtype, int B, int N, int H,
                                   int Dh, const void *q, const void *k, const void *v, void *out,
                                   void *lse)
{
    int nt;
    void *scratch;
    PLSTM_TRY(attn_setup(ctx, dtype, B, N, H, Dh, &nt, &scratch));
    const int prev = cpu_blas_serial_begin(nt);
    if (dtype == PLSTM_F32)
        attention_forward_f32(nt, B, N, H, Dh, q, k, v, out, lse, scratch);
    else
        attention_forward_f64(nt, B, N, H, Dh, q, k, v, out, lse, scratch);
    cpu_blas_serial_end(prev);
    free(scratch);
    return PLSTM_OK;
}

plstm_status cpu_attention_backward(plstm_context *ctx, plstm_dtype dtype, int B, int N, int H,
                                    int Dh, const void *q, const void *k, const void *v,
                                    const void *out, const void *lse, const void *dout, void *dq,
                                    void *dk, void *dv)
{
    if (!dq && !dk && !dv)
        return PLSTM_OK;
    int nt;
    void *scratch;
    PLSTM_TRY(attn_setup(ctx, dtype, B, N, H, Dh, &nt, &scratch));
    const int prev = cpu_blas_serial_begin(nt);
    if (dtype == PLSTM_F32)
        attention_backward_f32(nt, B, N, H, Dh, q, k, v, out, lse, dout, dq, dk, dv, scratch);
    else
        attention_backward_f64(nt, B, N, H, Dh, q, k, v, out, lse, dout, dq, dk, dv, scratch);
    cpu_blas_serial_end(prev);
    free(scratch);
    return PLSTM_OK;
}
