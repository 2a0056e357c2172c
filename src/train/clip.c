/* Global gradient norm and clipping (optax.clip_by_global_norm). The sum of
 * squares is accumulated in double per fixed block and the block sums are
 * added in order, so the norm is the same for any thread count. */
#include "plstm/train.h"
#include "core/status_internal.h"

#include <math.h>
#include <stdlib.h>

enum { NORM_BLOCK = 8192 };

static double block_sumsq(const float *g, size_t n)
{
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < n; i++)
        s += (double)g[i] * (double)g[i];
    return s;
}

/* Names the first non-finite element (and its parameter) in the error. */
static plstm_status numeric_error(const plstm_params *layout, const float *g, size_t n)
{
    size_t bad = 0;
    while (bad < n && isfinite(g[bad]))
        bad++;
    if (bad == n) /* finite elements whose squares overflowed double: impossible for F32 */
        return plstm_fail(PLSTM_ERR_NUMERIC, "gradient norm is not finite");
    const char *what = isnan(g[bad]) ? "NaN" : "Inf";
    if (layout) {
        for (size_t i = 0; i < plstm_params_count(layout); i++) {
            const plstm_param_info *it = plstm_params_at(layout, i);
            if (bad >= it->offset && bad < it->offset + it->numel)
                return plstm_fail(PLSTM_ERR_NUMERIC,
                                  "gradient of %s has a %s (element %zu of %zu)", it->name, what,
                                  bad - it->offset, it->numel);
        }
    }
    return plstm_fail(PLSTM_ERR_NUMERIC, "gradient has a %s at element %zu of %zu", what, bad, n);
}

plstm_status plstm_grad_norm(const plstm_params *layout, const float *grad, size_t n,
                             double *norm)
{
    PLSTM_CHECK_ARG((grad || n == 0) && norm, "plstm_grad_norm: NULL argument");
    const size_t nb = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    double total = 0.0;
    if (nb <= 1) {
        total = block_sumsq(grad, n);
    } else {
        double *part = malloc(nb * sizeof *part);
        if (!part)
            return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "plstm_grad_norm: out of memory");
        const long long nbl = (long long)nb;
#pragma omp parallel for schedule(static)
        for (long long b = 0; b < nbl; b++) {
            const size_t lo = (size_t)b * NORM_BLOCK;
            const size_t len = lo + NORM_BLOCK <= n ? NORM_BLOCK : n - lo;
            part[b] = block_sumsq(grad + lo, len);
        }
        for (size_t b = 0; b < nb; b++)
            total += part[b];
        free(part);
    }
    if (!isfinite(total))
        return numeric_error(layout, grad, n);
    *norm = sqrt(total);
    return PLSTM_OK;
}

plstm_status plstm_grad_clip(const plstm_params *layout, float *grad, size_t n, double max_norm,
                             double *pre_norm)
{
    PLSTM_CHECK_ARG(max_norm > 0 && isfinite(max_norm), "gradient clipping: max norm %g",
                    max_norm);
    double norm = 0.0;
    PLSTM_TRY(plstm_grad_norm(layout, grad, n, &norm));
    if (pre_norm)
        *pre_norm = norm;
    if (norm > max_norm) {
        const float scale = (float)(max_norm / norm);
        const long long nn = (long long)n;
#pragma omp parallel for simd schedule(static) if (nn > 65536)
        for (long long i = 0; i < nn; i++)
            grad[i] *= scale;
    }
    return PLSTM_OK;
}
