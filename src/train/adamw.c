/* AdamW as optax.adamw (scale_by_adam, add_decayed_weights, scale by -lr). */
#include "plstm/train.h"
#include "core/status_internal.h"

#include <math.h>
#include <string.h>

plstm_adamw_config plstm_adamw_defaults(void)
{
    return (plstm_adamw_config){.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.05};
}

plstm_status plstm_adamw_coeffs_at(const plstm_adamw_config *cfg, double lr, int64_t step,
                                   plstm_adamw_coeffs *c)
{
    PLSTM_CHECK_ARG(cfg && c, "plstm_adamw_coeffs_at: NULL argument");
    PLSTM_CHECK_ARG(cfg->beta1 >= 0 && cfg->beta1 < 1 && cfg->beta2 >= 0 && cfg->beta2 < 1,
                    "AdamW: betas (%g, %g) must lie in [0, 1)", cfg->beta1, cfg->beta2);
    PLSTM_CHECK_ARG(cfg->eps > 0 && isfinite(cfg->eps), "AdamW: eps %g must be > 0", cfg->eps);
    PLSTM_CHECK_ARG(cfg->weight_decay >= 0 && isfinite(cfg->weight_decay),
                    "AdamW: weight decay %g must be >= 0", cfg->weight_decay);
    PLSTM_CHECK_ARG(lr >= 0 && isfinite(lr), "AdamW: learning rate %g must be >= 0", lr);
    PLSTM_CHECK_ARG(step >= 0, "AdamW: step %lld must be >= 0", (long long)step);
    const double t = (double)step + 1.0;
    c->lr = (float)lr;
    c->beta1 = (float)cfg->beta1;
    c->beta2 = (float)cfg->beta2;
    c->one_minus_beta1 = (float)(1.0 - cfg->beta1);
    c->one_minus_beta2 = (float)(1.0 - cfg->beta2);
    c->eps = (float)cfg->eps;
    c->weight_decay = (float)cfg->weight_decay;
    c->inv_bc1 = (float)(1.0 / -expm1(t * log(cfg->beta1)));
    c->inv_bc2 = (float)(1.0 / -expm1(t * log(cfg->beta2)));
    if (cfg->beta1 == 0)
        c->inv_bc1 = 1.0f;
    if (cfg->beta2 == 0)
        c->inv_bc2 = 1.0f;
    return PLSTM_OK;
}

/* Elements [lo, hi). Memory-bound (7 floats of traffic per element). GCC
 * vectorizes it only under -fno-math-errno (sqrtf's errno branch); the
 * function and pragma forms of that option did not take effect here. */
static void adamw_range(const plstm_adamw_coeffs *c, size_t lo, size_t hi, float *restrict param,
                        const float *restrict grad, float *restrict m, float *restrict v,
                        const float *restrict decay_mask)
{
    const float b1 = c->beta1, b2 = c->beta2, a1 = c->one_minus_beta1,
                a2 = c->one_minus_beta2;
    const float eps = c->eps, lr = c->lr, wd = c->weight_decay;
    const float ib1 = c->inv_bc1, ib2 = c->inv_bc2;
#pragma omp simd
    for (size_t i = lo; i < hi; i++) {
        const float g = grad[i];
        const float mi = b1 * m[i] + a1 * g;
        const float vi = b2 * v[i] + a2 * (g * g);
        m[i] = mi;
        v[i] = vi;
        const float u = (mi * ib1) / (sqrtf(vi * ib2) + eps);
        param[i] -= lr * (u + wd * decay_mask[i] * param[i]);
    }
}

void plstm_adamw_kernel_cpu(const plstm_adamw_coeffs *c, size_t n, float *param,
                            const float *grad, float *m, float *v, const float *decay_mask)
{
    enum { CHUNK = 16384 };
    const long long chunks = (long long)((n + CHUNK - 1) / CHUNK);
#pragma omp parallel for schedule(static) if (chunks > 4)
    for (long long k = 0; k < chunks; k++) {
        const size_t lo = (size_t)k * CHUNK, hi = lo + CHUNK < n ? lo + CHUNK : n;
        adamw_range(c, lo, hi, param, grad, m, v, decay_mask);
    }
}

plstm_status plstm_adamw_decay_mask(const plstm_params *layout, float *mask)
{
    PLSTM_CHECK_ARG(layout && mask, "plstm_adamw_decay_mask: NULL argument");
    const size_t size = plstm_params_size(layout);
    memset(mask, 0, size * sizeof *mask);
    for (size_t i = 0; i < plstm_params_count(layout); i++) {
        const plstm_param_info *it = plstm_params_at(layout, i);
        if (it->flags & PLSTM_PARAM_NO_DECAY)
            continue;
        for (size_t j = 0; j < it->numel; j++)
            mask[it->offset + j] = 1.0f;
    }
    return PLSTM_OK;
}

plstm_status plstm_adamw_step(const plstm_adamw_config *cfg, double lr, int64_t step, size_t n,
                              float *param, const float *grad, float *m, float *v,
                              const float *decay_mask)
{
    PLSTM_CHECK_ARG(n == 0 || (param && grad && m && v && decay_mask),
                    "plstm_adamw_step: NULL buffer");
    plstm_adamw_coeffs c = {0};
    PLSTM_TRY(plstm_adamw_coeffs_at(cfg, lr, step, &c));
    plstm_adamw_kernel_cpu(&c, n, param, grad, m, v, decay_mask);
    return PLSTM_OK;
}
