/* CPU linear layer: one OpenBLAS GEMM per product. */
#include "backends/cpu/cpu_nn.h"
#include "backends/cpu/nn_common.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#define REAL float
#define FN(x) x##_f32
#define GEMM cblas_sgemm
#include "backends/cpu/nn_real.h"
#include "backends/cpu/nn_linear_impl.h"
#undef REAL
#undef FN
#undef GEMM

#define REAL double
#define FN(x) x##_f64
#define GEMM cblas_dgemm
#include "backends/cpu/nn_real.h"
#include "backends/cpu/nn_linear_impl.h"
#undef REAL
#undef FN
#undef GEMM

plstm_status cpu_linear_forward(plstm_context *ctx, plstm_dtype dtype, int n, int in, int out,
                                const void *x, const void *W, const void *b, void *y)
{
    if (dtype == PLSTM_F32)
        linear_forward_f32(ctx, n, in, out, x, W, b, y);
    else
        linear_forward_f64(ctx, n, in, out, x, W, b, y);
    return PLSTM_OK;
}

plstm_status cpu_linear_backward(plstm_context *ctx, plstm_dtype dtype, int n, int in, int out,
                                 const void *x, const void *W, const void *dy, void *dx, void *dW,
                                 void *db)
{
    if (dtype == PLSTM_F32)
        linear_backward_f32(ctx, n, in, out, x, W, dy, dx, dW, db);
    else
        linear_backward_f64(ctx, n, in, out, x, W, dy, dx, dW, db);
    return PLSTM_OK;
}
