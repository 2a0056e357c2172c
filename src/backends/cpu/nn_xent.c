/* CPU softmax cross-entropy with integer labels. */
#include "backends/cpu/cpu_nn.h"
#include "backends/cpu/nn_common.h"
#include "core/status_internal.h"

#include <math.h>

#define REAL float
#define FN(x) x##_f32
#include "backends/cpu/nn_xent_impl.h"
#undef REAL
#undef FN

#define REAL double
#define FN(x) x##_f64
#include "backends/cpu/nn_xent_impl.h"
#undef REAL
#undef FN

static plstm_status check_labels(const char *op, int n, int classes, const int32_t *labels)
{
    for (int r = 0; r < n; r++)
        if (labels[r] < 0 || labels[r] >= classes)
            return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "%s: labels[%d] = %d is not in [0, %d)",
                              op, r, (int)labels[r], classes);
    return PLSTM_OK;
}

plstm_status cpu_softmax_xent_forward(plstm_context *ctx, plstm_dtype dtype, int n, int classes,
                                      const void *logits, const int32_t *labels, double *loss,
                                      int *correct)
{
    PLSTM_TRY(check_labels("softmax_xent forward", n, classes, labels));
    if (dtype == PLSTM_F32)
        xent_forward_f32(ctx, n, classes, logits, labels, loss, correct);
    else
        xent_forward_f64(ctx, n, classes, logits, labels, loss, correct);
    return PLSTM_OK;
}

plstm_status cpu_softmax_xent_backward(plstm_context *ctx, plstm_dtype dtype, int n, int classes,
                                       const void *logits, const int32_t *labels, double dloss,
                                       void *dlogits)
{
    PLSTM_TRY(check_labels("softmax_xent backward", n, classes, labels));
    if (dtype == PLSTM_F32)
        xent_backward_f32(ctx, n, classes, logits, labels, dloss, dlogits);
    else
        xent_backward_f64(ctx, n, classes, logits, labels, dloss, dlogits);
    return PLSTM_OK;
}
