/* CPU instance norm of channels-last grids (each image's channels normalized
 * over its pixels), the normalization of the vision model's conv stem. */
#include "backends/cpu/cpu_nn.h"
#include "backends/cpu/nn_common.h"
#include "core/status_internal.h"

#include <stdlib.h>
#include <tgmath.h>

#define REAL float
#define FN(x) x##_f32
#include "backends/cpu/nn_real.h"
#include "backends/cpu/nn_instance_norm_impl.h"
#undef REAL
#undef FN

#define REAL double
#define FN(x) x##_f64
#include "backends/cpu/nn_real.h"
#include "backends/cpu/nn_instance_norm_impl.h"
#undef REAL
#undef FN

static int inorm_team(plstm_context *ctx, int B, int N, int C)
{
    const int nt = nn_team(ctx, (size_t)B * N * C * 4);
    return nt > B ? B : nt;
}

plstm_status cpu_instance_norm_forward(plstm_context *ctx, plstm_dtype dtype, int B, int N, int C,
                                       double eps, const void *x, const void *gamma,
                                       const void *beta, void *y)
{
    const int nt = inorm_team(ctx, B, N, C);
    double *scratch = malloc((size_t)nt * 2 * C * sizeof *scratch);
    if (!scratch)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "instance norm forward: no memory");
    if (dtype == PLSTM_F32)
        inorm_forward_f32(nt, B, N, C, eps, x, gamma, beta, y, scratch);
    else
        inorm_forward_f64(nt, B, N, C, eps, x, gamma, beta, y, scratch);
    free(scratch);
    return PLSTM_OK;
}

plstm_status cpu_instance_norm_backward(plstm_context *ctx, plstm_dtype dtype, int B, int N,
                                        int C, double eps, const void *x, const void *gamma,
                                        const void *dy, void *dx, void *dgamma, void *dbeta)
{
    const int nt = inorm_team(ctx, B, N, C);
    double *scratch = malloc((size_t)nt * 4 * C * sizeof *scratch);
    void *part = calloc((size_t)nt * 2 * C, plstm_dtype_size(dtype));
    plstm_status st = PLSTM_OK;
    if (!scratch || !part)
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "instance norm backward: no memory");
    else if (dtype == PLSTM_F32)
        inorm_backward_f32(nt, B, N, C, eps, x, gamma, dy, dx, dgamma, dbeta, scratch, part);
    else
        inorm_backward_f64(nt, B, N, C, eps, x, gamma, dy, dx, dgamma, dbeta, scratch, part);
    free(scratch);
    free(part);
    return st;
}
