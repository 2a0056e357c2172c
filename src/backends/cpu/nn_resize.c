/* CPU bicubic resize (torch or jax semantics, see plstm/nn.h). Each axis is a
 * dense [out, in] weight matrix built in double; grids are small (position
 * embeddings), so the dense form costs nothing and handles clamped and
 * renormalized taps alike. */
#include "backends/cpu/cpu_nn.h"
#include "backends/cpu/nn_common.h"
#include "core/status_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

#define REAL float
#define FN(x) x##_f32
#include "backends/cpu/nn_resize_impl.h"
#undef REAL
#undef FN

#define REAL double
#define FN(x) x##_f64
#include "backends/cpu/nn_resize_impl.h"
#undef REAL
#undef FN

/* torch upsample_bicubic2d, align_corners=False: source = (o + 0.5)·in/out − 0.5,
 * A = −0.75, taps floor(source) − 1 … + 2 clamped into [0, in − 1]. */
static void torch_weights(int in, int out, double *M)
{
    const double A = -0.75, scale = (double)in / out;
    for (int o = 0; o < out; o++) {
        const double src = scale * (o + 0.5) - 0.5, fl = floor(src), t = src - fl;
        const double x1 = t + 1, x2 = 1 - t, x3 = 2 - t;
        const double c[4] = {
            ((A * x1 - 5 * A) * x1 + 8 * A) * x1 - 4 * A, /* |d| in [1, 2) */
            ((A + 2) * t - (A + 3)) * t * t + 1,           /* |d| in [0, 1) */
            ((A + 2) * x2 - (A + 3)) * x2 * x2 + 1,
            ((A * x3 - 5 * A) * x3 + 8 * A) * x3 - 4 * A,
        };
        for (int k = 0; k < 4; k++) {
            long idx = (long)fl - 1 + k;
            idx = idx < 0 ? 0 : idx > in - 1 ? in - 1 : idx;
            M[(size_t)o * in + idx] += c[k];
        }
    }
}

/* Keys cubic kernel with a = −0.5 (jax.image._keys_cubic_kernel). */
static double keys_cubic(double x)
{
    x = fabs(x);
    if (x >= 2)
        return 0;
    if (x >= 1)
        return ((-0.5 * x + 2.5) * x - 4) * x + 2;
    return (1.5 * x - 2.5) * x * x + 1;
}

/* jax.image.scale_and_translate's compute_weight_mat with scale = out/in,
 * translation 0, antialias on: the kernel is widened by in/out when
 * downsampling, every input sample gets a weight, the weights are
 * renormalized to sum 1, and outputs sampled outside [−0.5, in − 0.5] get 0. */
static void jax_weights(int in, int out, double *M)
{
    const double inv = (double)in / out, ks = inv > 1 ? inv : 1;
    for (int o = 0; o < out; o++) {
        const double src = (o + 0.5) * inv - 0.5;
        double total = 0;
        for (int i = 0; i < in; i++)
            total += M[(size_t)o * in + i] = keys_cubic(fabs(src - i) / ks);
        const int valid = fabs(total) > 1000.0 * FLT_EPSILON && src >= -0.5 && src <= in - 0.5;
        for (int i = 0; i < in; i++)
            M[(size_t)o * in + i] = valid ? M[(size_t)o * in + i] / total : 0;
    }
}

/* Mh [h2, h] followed by Mw [w2, w] in one zeroed allocation. */
static plstm_status resize_matrices(plstm_resize_kind kind, int h, int w, int h2, int w2,
                                    double **out)
{
    double *M = calloc((size_t)h2 * h + (size_t)w2 * w, sizeof *M);
    if (!M)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "resize: no memory for the weights");
    void (*build)(int, int, double *) =
        kind == PLSTM_RESIZE_BICUBIC_TORCH ? torch_weights : jax_weights;
    build(h, h2, M);
    build(w, w2, M + (size_t)h2 * h);
    *out = M;
    return PLSTM_OK;
}

static plstm_status resize_run(plstm_context *ctx, plstm_dtype dtype, plstm_resize_kind kind,
                               int B, int h, int w, int h2, int w2, int dim, const void *src,
                               void *dst, int backward)
{
    double *M = NULL;
    PLSTM_TRY(resize_matrices(kind, h, w, h2, w2, &M));
    void *tmp = malloc((size_t)B * h2 * w * dim * plstm_dtype_size(dtype));
    if (!tmp) {
        free(M);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "resize: no memory for %d grids", B);
    }
    const double *Mh = M, *Mw = M + (size_t)h2 * h;
    if (dtype == PLSTM_F32 && !backward)
        resize_forward_f32(ctx, B, h, w, h2, w2, dim, Mh, Mw, src, tmp, dst);
    else if (dtype == PLSTM_F32)
        resize_backward_f32(ctx, B, h, w, h2, w2, dim, Mh, Mw, src, tmp, dst);
    else if (!backward)
        resize_forward_f64(ctx, B, h, w, h2, w2, dim, Mh, Mw, src, tmp, dst);
    else
        resize_backward_f64(ctx, B, h, w, h2, w2, dim, Mh, Mw, src, tmp, dst);
    free(tmp);
    free(M);
    return PLSTM_OK;
}

plstm_status cpu_resize_forward(plstm_context *ctx, plstm_dtype dtype, plstm_resize_kind kind,
                                int B, int h, int w, int h2, int w2, int dim, const void *x,
                                void *y)
{
    return resize_run(ctx, dtype, kind, B, h, w, h2, w2, dim, x, y, 0);
}

plstm_status cpu_resize_backward(plstm_context *ctx, plstm_dtype dtype, plstm_resize_kind kind,
                                 int B, int h, int w, int h2, int w2, int dim, const void *dy,
                                 void *dx)
{
    return resize_run(ctx, dtype, kind, B, h, w, h2, w2, dim, dy, dx, 1);
}
