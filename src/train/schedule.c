/* Linear warmup + cosine decay, as optax.warmup_cosine_decay_schedule. */
#include "plstm/train.h"
#include "core/status_internal.h"

#include <math.h>

plstm_status plstm_lr_schedule_check(const plstm_lr_schedule *s)
{
    PLSTM_CHECK_ARG(s, "plstm_lr_schedule_check: NULL argument");
    PLSTM_CHECK_ARG(s->peak >= 0 && isfinite(s->peak), "LR schedule: peak %g must be >= 0",
                    s->peak);
    PLSTM_CHECK_ARG(s->warmup_steps >= 0, "LR schedule: %lld warmup steps",
                    (long long)s->warmup_steps);
    PLSTM_CHECK_ARG(s->total_steps > s->warmup_steps,
                    "LR schedule: total steps %lld must exceed the warmup steps %lld",
                    (long long)s->total_steps, (long long)s->warmup_steps);
    PLSTM_CHECK_ARG(s->min_lr_ratio >= 0 && s->min_lr_ratio <= 1,
                    "LR schedule: min_lr_ratio %g must lie in [0, 1]", s->min_lr_ratio);
    return PLSTM_OK;
}

double plstm_lr_at(const plstm_lr_schedule *s, int64_t step)
{
    if (step < 0)
        return 0.0;
    if (step < s->warmup_steps)
        return s->peak * (double)step / (double)s->warmup_steps;
    const double floor_lr = s->min_lr_ratio * s->peak;
    const int64_t decay = s->total_steps - s->warmup_steps;
    int64_t k = step - s->warmup_steps;
    if (k > decay)
        k = decay;
    const double pi = 3.14159265358979323846;
    const double c = 0.5 * (1.0 + cos(pi * (double)k / (double)decay));
    return floor_lr + (s->peak - floor_lr) * c;
}
