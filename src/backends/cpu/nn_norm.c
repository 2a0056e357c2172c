/* CPU RMSNorm / LayerNorm, plain and multi-head. */
#include "backends/cpu/cpu_nn.h"
#include "backends/cpu/nn_common.h"
#include "core/status_internal.h"

#include <stdlib.h>
#include <tgmath.h>

#define REAL float
#define FN(x) x##_f32
#include "backends/cpu/nn_real.h"
#include "backends/cpu/nn_norm_impl.h"
#undef REAL
#undef FN

#define REAL double
#define FN(x) x##_f64
#include "backends/cpu/nn_real.h"
#include "backends/cpu/nn_norm_impl.h"
#undef REAL
#undef FN

plstm_status cpu_norm_forward(plstm_context *ctx, plstm_dtype dtype, plstm_norm_kind kind, int n,
                              int D, int NH, double eps, const void *x, const void *gamma,
                              const void *beta, void *y)
{
    if (dtype == PLSTM_F32)
        norm_forward_f32(ctx, kind, n, D, NH, eps, x, gamma, beta, y);
    else
        norm_forward_f64(ctx, kind, n, D, NH, eps, x, gamma, beta, y);
    return PLSTM_OK;
}

plstm_status cpu_norm_backward(plstm_context *ctx, plstm_dtype dtype, plstm_norm_kind kind, int n,
                               int D, int NH, double eps, const void *x, const void *gamma,
                               const void *dy, void *dx, void *dgamma, void *dbeta)
{
    int nt = nn_team(ctx, (size_t)n * D * 6);
    nt = nt > n ? n : nt;
    void *part = NULL;
    if (dgamma || dbeta) {
        part = calloc((size_t)nt * 2 * D, plstm_dtype_size(dtype));
        if (!part)
            return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "norm backward: no memory");
    }
    if (dtype == PLSTM_F32)
        norm_backward_f32(nt, kind, n, D, NH, eps, x, gamma, dy, dx, dgamma, dbeta, part);
    else
        norm_backward_f64(nt, kind, n, D, NH, eps, x, gamma, dy, dx, dgamma, dbeta, part);
    free(part);
    return PLSTM_OK;
}
