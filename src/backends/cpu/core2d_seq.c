/* Placeholder: being written. */
#include "backends/cpu/cpu_ops.h"
#include "core/status_internal.h"

plstm_status cpu_core2d_seq_forward(plstm_context *ctx, const plstm_core2d_desc *d, const plstm_core2d_inputs *in,
                const plstm_core2d_outputs *out)
{
    (void)ctx; (void)d; (void)in; (void)out;
    return plstm_fail(PLSTM_ERR_UNSUPPORTED, "cpu_core2d_seq_forward: not implemented yet");
}

plstm_status cpu_core2d_seq_backward(plstm_context *ctx, const plstm_core2d_desc *d, const plstm_core2d_inputs *in,
                const plstm_core2d_cotangents *dout, const plstm_core2d_grads *grad)
{
    (void)ctx; (void)d; (void)in; (void)dout; (void)grad;
    return plstm_fail(PLSTM_ERR_UNSUPPORTED, "cpu_core2d_seq_backward: not implemented yet");
}
