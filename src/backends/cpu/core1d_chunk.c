/* The chunkwise-parallel form of the 1D core (plstm-math.md §2.2) and its
 * exact adjoint on the CPU: chunks of any length (the last one partial, no
 * padding), DK×DV work in OpenBLAS GEMMs, parallel over the batch. The
 * real-type code is in core1d_chunk_impl.h, included for float and double. */
#include "backends/cpu/blas_threads.h"
#include "backends/cpu/core1d_common.h"
#include "core/status_internal.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#define REAL float
#define FN(x) c1chk_##x##_f32
#define GEMM cblas_sgemm
#include "backends/cpu/core1d_util_impl.h"
#include "backends/cpu/core1d_chunk_impl.h"
#undef REAL
#undef FN
#undef GEMM

#define REAL double
#define FN(x) c1chk_##x##_f64
#define GEMM cblas_dgemm
#include "backends/cpu/core1d_util_impl.h"
#include "backends/cpu/core1d_chunk_impl.h"
#undef REAL
#undef FN
#undef GEMM

plstm_status cpu_core1d_chunk_forward(plstm_context *ctx, const plstm_core1d_desc *d, int chunk,
                                      const plstm_core1d_inputs *in,
                                      const plstm_core1d_outputs *out)
{
    const c1_dims m = c1_make_dims(d);
    const int threads = c1_threads(ctx, &m);
    const int blas = cpu_blas_serial_begin(threads);
    plstm_status s = d->dtype == PLSTM_F32 ? c1chk_forward_f32(&m, chunk, threads, in, out)
                                           : c1chk_forward_f64(&m, chunk, threads, in, out);
    cpu_blas_serial_end(blas);
    return s;
}

plstm_status cpu_core1d_chunk_backward(plstm_context *ctx, const plstm_core1d_desc *d, int chunk,
                                       const plstm_core1d_inputs *in,
                                       const plstm_core1d_cotangents *dout,
                                       const plstm_core1d_grads *grad)
{
    const c1_dims m = c1_make_dims(d);
    const int threads = c1_threads(ctx, &m);
    const int blas = cpu_blas_serial_begin(threads);
    plstm_status s = d->dtype == PLSTM_F32
                         ? c1chk_backward_f32(&m, chunk, threads, in, dout, grad)
                         : c1chk_backward_f64(&m, chunk, threads, in, dout, grad);
    cpu_blas_serial_end(blas);
    return s;
}
