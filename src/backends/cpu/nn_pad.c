/* CPU zero padding of channels-last grids and its adjoint (a crop). Pure
 * data movement, so one byte-level implementation serves F32 and F64. */
#include "backends/cpu/cpu_nn.h"
#include "backends/cpu/nn_common.h"

#include <string.h>

plstm_status cpu_pad2d_forward(plstm_context *ctx, plstm_dtype dtype, int B, int H, int W, int C,
                               int q, const void *x, void *y)
{
    const size_t es = plstm_dtype_size(dtype), row = (size_t)W * C * es;
    const int H2 = H + 2 * q, W2 = W + 2 * q;
    const size_t row2 = (size_t)W2 * C * es, lead = (size_t)q * C * es;
    const int nt = nn_team(ctx, (size_t)B * H2 * W2 * C);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (long bi = 0; bi < (long)B * H2; bi++) {
        const long b = bi / H2, i = bi % H2 - q;
        char *dst = (char *)y + (size_t)bi * row2;
        if (i < 0 || i >= H) {
            memset(dst, 0, row2);
            continue;
        }
        memset(dst, 0, lead);
        memcpy(dst + lead, (const char *)x + ((size_t)b * H + (size_t)i) * row, row);
        memset(dst + lead + row, 0, lead);
    }
    return PLSTM_OK;
}

plstm_status cpu_pad2d_backward(plstm_context *ctx, plstm_dtype dtype, int B, int H, int W,
                                int C, int q, const void *dy, void *dx)
{
    const size_t es = plstm_dtype_size(dtype), row = (size_t)W * C * es;
    const int H2 = H + 2 * q, W2 = W + 2 * q;
    const size_t row2 = (size_t)W2 * C * es, lead = (size_t)q * C * es;
    const int nt = nn_team(ctx, (size_t)B * H * W * C);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (long bi = 0; bi < (long)B * H; bi++) {
        const long b = bi / H, i = bi % H;
        memcpy((char *)dx + (size_t)bi * row,
               (const char *)dy + ((size_t)b * H2 + (size_t)(i + q)) * row2 + lead, row);
    }
    return PLSTM_OK;
}
