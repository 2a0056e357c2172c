/* Small helpers shared by the CPU NN operator files (nn_*.c). */
#ifndef PLSTM_CPU_NN_COMMON_H
#define PLSTM_CPU_NN_COMMON_H

#include <omp.h>
#include "ops/backend.h"

/* OpenMP team size for an operator: the context's setting or the default. */
static inline int nn_threads(const plstm_context *ctx)
{
    return ctx && ctx->threads > 0 ? ctx->threads : omp_get_max_threads();
}

/* Team size for about `work` elementary operations: small problems stay on
 * one thread (starting a parallel region costs microseconds). */
static inline int nn_team(const plstm_context *ctx, size_t work)
{
    int nt = nn_threads(ctx);
    if (work < 32768)
        return 1;
    return nt;
}

#endif
