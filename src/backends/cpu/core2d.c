/* CPU 2D core: picks the sequential recurrence or the tiled parallel form. */
#include "backends/cpu/cpu_ops.h"

#include <omp.h>

/* Below this many pixels the tiled form has nothing to gain. */
enum { TILED_MIN_PIXELS = 64 };

/* AUTO: the sequential sweep already keeps every thread busy when there are
 * at least as many grids as threads, and measured as fast as the tiled form
 * there (bench_core2d); the tiled form adds parallelism inside one grid
 * (tiles of an anti-diagonal), which only pays when grids are fewer than threads. */
static int use_tiled(plstm_context *ctx, const plstm_core2d_desc *d)
{
    if (d->algo == PLSTM_ALGO_SEQUENTIAL)
        return 0;
    if (d->algo == PLSTM_ALGO_PARALLEL)
        return 1;
    int threads = ctx->threads > 0 ? ctx->threads : omp_get_max_threads();
    return d->B < threads && (long)d->X * d->Y >= TILED_MIN_PIXELS;
}

plstm_status cpu_core2d_forward(plstm_context *ctx, const plstm_core2d_desc *d,
                                const plstm_core2d_inputs *in, const plstm_core2d_outputs *out)
{
    return use_tiled(ctx, d) ? cpu_core2d_tiled_forward(ctx, d, in, out)
                        : cpu_core2d_seq_forward(ctx, d, in, out);
}

plstm_status cpu_core2d_backward(plstm_context *ctx, const plstm_core2d_desc *d,
                                 const plstm_core2d_inputs *in,
                                 const plstm_core2d_cotangents *dout,
                                 const plstm_core2d_grads *grad)
{
    return use_tiled(ctx, d) ? cpu_core2d_tiled_backward(ctx, d, in, dout, grad)
                        : cpu_core2d_seq_backward(ctx, d, in, dout, grad);
}
