/* CPU activations, elementwise helpers and grid pooling. */
#include "backends/cpu/cpu_nn.h"
#include "backends/cpu/nn_common.h"

#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#define REAL float
#define FN(x) x##_f32
#include "backends/cpu/nn_real.h"
#include "backends/cpu/nn_eltwise_impl.h"
#undef REAL
#undef FN

#define REAL double
#define FN(x) x##_f64
#include "backends/cpu/nn_real.h"
#include "backends/cpu/nn_eltwise_impl.h"
#undef REAL
#undef FN

/* Calls name_f32 or name_f64 with the remaining arguments. */
#define BY_DTYPE(dtype, name, ...)                 \
    do {                                           \
        if ((dtype) == PLSTM_F32)                  \
            name##_f32(__VA_ARGS__);               \
        else                                       \
            name##_f64(__VA_ARGS__);               \
        return PLSTM_OK;                           \
    } while (0)

plstm_status cpu_activation_forward(plstm_context *ctx, plstm_dtype dtype, plstm_activation act,
                                    size_t count, const void *x, void *y)
{
    BY_DTYPE(dtype, activation_forward, ctx, act, count, x, y);
}

plstm_status cpu_activation_backward(plstm_context *ctx, plstm_dtype dtype, plstm_activation act,
                                     size_t count, const void *x, const void *dy, void *dx)
{
    BY_DTYPE(dtype, activation_backward, ctx, act, count, x, dy, dx);
}

plstm_status cpu_add(plstm_context *ctx, plstm_dtype dtype, size_t count, const void *a,
                     const void *b, void *y)
{
    BY_DTYPE(dtype, add, ctx, count, a, b, y);
}

plstm_status cpu_axpy(plstm_context *ctx, plstm_dtype dtype, size_t count, double alpha,
                      const void *x, void *y)
{
    if (dtype == PLSTM_F32)
        axpy_f32(ctx, count, (float)alpha, x, y);
    else
        axpy_f64(ctx, count, alpha, x, y);
    return PLSTM_OK;
}

plstm_status cpu_scale_forward(plstm_context *ctx, plstm_dtype dtype, int n, int D, const void *x,
                               const void *s, void *y)
{
    BY_DTYPE(dtype, scale_forward, ctx, n, D, x, s, y);
}

plstm_status cpu_scale_backward(plstm_context *ctx, plstm_dtype dtype, int n, int D,
                                const void *x, const void *s, const void *dy, void *dx, void *ds)
{
    BY_DTYPE(dtype, scale_backward, ctx, n, D, x, s, dy, dx, ds);
}

plstm_status cpu_broadcast_add_forward(plstm_context *ctx, plstm_dtype dtype, int B, int M,
                                       const void *x, const void *v, void *y)
{
    BY_DTYPE(dtype, broadcast_add_forward, ctx, B, M, x, v, y);
}

plstm_status cpu_broadcast_add_backward(plstm_context *ctx, plstm_dtype dtype, int B, int M,
                                        const void *dy, void *dv)
{
    BY_DTYPE(dtype, colsum_acc, (size_t)B, M, dy, dv, nn_threads(ctx));
}

plstm_status cpu_pool_forward(plstm_context *ctx, plstm_dtype dtype, plstm_pool_kind kind, int B,
                              int X, int Y, int D, const void *x, void *y)
{
    BY_DTYPE(dtype, pool_forward, ctx, kind, B, X, Y, D, x, y);
}

plstm_status cpu_pool_backward(plstm_context *ctx, plstm_dtype dtype, plstm_pool_kind kind, int B,
                               int X, int Y, int D, const void *dy, void *dx)
{
    BY_DTYPE(dtype, pool_backward, ctx, kind, B, X, Y, D, dy, dx);
}
