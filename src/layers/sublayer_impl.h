/* Shared helpers of the gate sub-layers (gate_sml.c, transition.c, qkv.c,
 * orientation_gate.c): parameter names, argument checks, thread count,
 * deterministic normal numbers for SmallInit. */
#ifndef PLSTM_SUBLAYER_IMPL_H
#define PLSTM_SUBLAYER_IMPL_H

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "plstm/layers.h"
#include "core/status_internal.h"

/* Declares "prefix.name" (or "name" for an empty prefix). */
static inline plstm_status sl_declare(plstm_params *p, const char *prefix, const char *name,
                                      int rank, const int64_t *shape, unsigned flags,
                                      size_t *off)
{
    char full[PLSTM_PARAM_NAME_MAX];
    int n = (prefix && prefix[0]) ? snprintf(full, sizeof full, "%s.%s", prefix, name)
                                   : snprintf(full, sizeof full, "%s", name);
    PLSTM_CHECK_ARG(n > 0 && (size_t)n < sizeof full, "parameter name %s.%s is too long",
                    prefix ? prefix : "", name);
    return plstm_params_declare(p, full, rank, shape, flags, off);
}

/* Operators of this file need a CPU context and F32/F64. */
static inline plstm_status sl_check(plstm_context *ctx, plstm_dtype dtype, const char *what)
{
    PLSTM_CHECK_ARG(ctx, "%s: NULL context", what);
    if (plstm_context_backend(ctx) != PLSTM_BACKEND_CPU)
        return plstm_fail(PLSTM_ERR_UNSUPPORTED, "%s: only the CPU backend is implemented (got %s)",
                          what, plstm_context_backend_name(ctx));
    PLSTM_CHECK_ARG(dtype == PLSTM_F32 || dtype == PLSTM_F64, "%s: dtype must be F32 or F64",
                    what);
    return PLSTM_OK;
}

static inline int sl_threads(const plstm_context *ctx)
{
    int t = ctx ? plstm_context_threads(ctx) : 0;
    return t > 0 ? t : omp_get_max_threads();
}

/* Writes value v at element i of a dtype buffer. */
static inline void sl_set(void *buf, plstm_dtype dtype, size_t i, double v)
{
    if (dtype == PLSTM_F32)
        ((float *)buf)[i] = (float)v;
    else
        ((double *)buf)[i] = v;
}

/* splitmix64 stream + Box-Muller: the same numbers on every machine. */
typedef struct sl_rng {
    uint64_t s;
    int has_spare;
    double spare;
} sl_rng;

static inline uint64_t sl_rng_u64(sl_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline double sl_rng_normal(sl_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1 = ((double)(sl_rng_u64(r) >> 11) + 0.5) * 0x1.0p-53; /* (0,1) */
    double u2 = (double)(sl_rng_u64(r) >> 11) * 0x1.0p-53;
    double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
    r->spare = rad * sin(th);
    r->has_spare = 1;
    return rad * cos(th);
}

#endif
