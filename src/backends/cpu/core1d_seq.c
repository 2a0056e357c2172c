/* The defining sequential 1D recurrence (plstm-math.md §2.1) and its adjoint
 * on the CPU, parallel over the batch. The real-type code is in
 * core1d_seq_impl.h, included once for float and once for double. */
#include "backends/cpu/core1d_common.h"
#include "core/status_internal.h"

#include <stdlib.h>
#include <string.h>

#define REAL float
#define FN(x) c1seq_##x##_f32
#include "backends/cpu/core1d_util_impl.h"
#include "backends/cpu/core1d_seq_impl.h"
#undef REAL
#undef FN

#define REAL double
#define FN(x) c1seq_##x##_f64
#include "backends/cpu/core1d_util_impl.h"
#include "backends/cpu/core1d_seq_impl.h"
#undef REAL
#undef FN

plstm_status cpu_core1d_seq_forward(plstm_context *ctx, const plstm_core1d_desc *d,
                                    const plstm_core1d_inputs *in, const plstm_core1d_outputs *out)
{
    const c1_dims m = c1_make_dims(d);
    const int threads = c1_threads(ctx, &m);
    if (d->dtype == PLSTM_F32)
        return c1seq_forward_f32(&m, threads, in, out);
    return c1seq_forward_f64(&m, threads, in, out);
}

plstm_status cpu_core1d_seq_backward(plstm_context *ctx, const plstm_core1d_desc *d,
                                     const plstm_core1d_inputs *in,
                                     const plstm_core1d_cotangents *dout,
                                     const plstm_core1d_grads *grad)
{
    const c1_dims m = c1_make_dims(d);
    const int threads = c1_threads(ctx, &m);
    if (d->dtype == PLSTM_F32)
        return c1seq_backward_f32(&m, threads, in, dout, grad);
    return c1seq_backward_f64(&m, threads, in, dout, grad);
}
