/* Placeholder: being written. */
#include "backends/cpu/cpu_ops.h"
#include "core/status_internal.h"

plstm_status cpu_core1d_forward(plstm_context *ctx, const plstm_core1d_desc *d, const plstm_core1d_inputs *in,
                const plstm_core1d_outputs *out)
{
    (void)ctx; (void)d; (void)in; (void)out;
    return plstm_fail(PLSTM_ERR_UNSUPPORTED, "cpu_core1d_forward: not implemented yet");
}

plstm_status cpu_core1d_backward(plstm_context *ctx, const plstm_core1d_desc *d, const plstm_core1d_inputs *in,
                const plstm_core1d_cotangents *dout, const plstm_core1d_grads *grad)
{
    (void)ctx; (void)d; (void)in; (void)dout; (void)grad;
    return plstm_fail(PLSTM_ERR_UNSUPPORTED, "cpu_core1d_backward: not implemented yet");
}
