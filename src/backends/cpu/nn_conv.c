/* CPU causal depthwise 2D convolution (the 1D conv is the KX = 1 case). */
#include "backends/cpu/cpu_nn.h"
#include "backends/cpu/nn_common.h"
#include "core/status_internal.h"

#include <stdlib.h>
#include <string.h>

#define REAL float
#define FN(x) x##_f32
#include "backends/cpu/nn_real.h"
#include "backends/cpu/nn_conv_impl.h"
#undef REAL
#undef FN

#define REAL double
#define FN(x) x##_f64
#include "backends/cpu/nn_real.h"
#include "backends/cpu/nn_conv_impl.h"
#undef REAL
#undef FN

plstm_status cpu_dwconv2d_forward(plstm_context *ctx, plstm_dtype dtype, int B, int X, int Y,
                                  int C, int KX, int KY, const void *x, const void *w,
                                  const void *bias, void *y)
{
    const size_t es = plstm_dtype_size(dtype), K = (size_t)KX * KY;
    void *wt = malloc(K * C * es);
    if (!wt)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "dwconv2d forward: no memory");
    if (dtype == PLSTM_F32) {
        dwconv_transpose_f32(C, (int)K, w, wt);
        dwconv_forward_f32(ctx, B, X, Y, C, KX, KY, x, wt, bias, y);
    } else {
        dwconv_transpose_f64(C, (int)K, w, wt);
        dwconv_forward_f64(ctx, B, X, Y, C, KX, KY, x, wt, bias, y);
    }
    free(wt);
    return PLSTM_OK;
}

plstm_status cpu_dwconv2d_backward(plstm_context *ctx, plstm_dtype dtype, int B, int X, int Y,
                                   int C, int KX, int KY, const void *x, const void *w,
                                   const void *dy, void *dx, void *dw, void *dbias)
{
    const size_t es = plstm_dtype_size(dtype), K = (size_t)KX * KY;
    const size_t rows = (size_t)B * X * Y;
    int nt = nn_team(ctx, rows * C * K);
    nt = nt > B * X ? B * X : nt;
    /* The transposed weight, then nt partial dw accumulators. */
    void *buf = calloc((size_t)nt * K * C, es);
    if (!buf)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "dwconv2d backward: no memory");
    if (dtype == PLSTM_F32) {
        if (dx) {
            dwconv_transpose_f32(C, (int)K, w, buf);
            dwconv_backward_input_f32(ctx, B, X, Y, C, KX, KY, buf, dy, dx);
            memset(buf, 0, K * C * es);
        }
        if (dw)
            dwconv_backward_weight_f32(nt, B, X, Y, C, KX, KY, x, dy, dw, buf);
        if (dbias)
            colsum_acc_f32(rows, C, dy, dbias, nn_threads(ctx));
    } else {
        if (dx) {
            dwconv_transpose_f64(C, (int)K, w, buf);
            dwconv_backward_input_f64(ctx, B, X, Y, C, KX, KY, buf, dy, dx);
            memset(buf, 0, K * C * es);
        }
        if (dw)
            dwconv_backward_weight_f64(nt, B, X, Y, C, KX, KY, x, dy, dw, buf);
        if (dbias)
            colsum_acc_f64(rows, C, dy, dbias, nn_threads(ctx));
    }
    free(buf);
    return PLSTM_OK;
}
