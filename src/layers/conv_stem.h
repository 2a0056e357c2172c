/* A convolutional patch stem shared by the vision models (pLSTM and ViT):
 * stage i is a k×k conv with stride 1 or 2 and "same" zero padding (k−1)/2
 * to channels[i], then a norm (RMSNorm over each pixel's channels, or
 * instance norm of each channel over the image) and GELU. The model's patch
 * embedding then patchifies the stem's output with patch / shrink, where
 * shrink is the product of the strides. Parameters are named
 * stem.<i>.weight, stem.<i>.bias, stem.<i>.norm.scale (and stem.<i>.norm.bias
 * with instance norm); buffers live in the model's workspace at offsets this
 * module lays out. Internal to the library. */
#ifndef PLSTM_CONV_STEM_H
#define PLSTM_CONV_STEM_H

#include "plstm/context.h"
#include "plstm/params.h"
#include "plstm/train.h"
#include "plstm/vision.h"

enum { CONV_STEM_MAX = PLSTM_VISION_MAX_STEM };

typedef struct conv_stem {
    int stages, kernel, pad, cin;
    int channels[CONV_STEM_MAX], strides[CONV_STEM_MAX];
    plstm_vision_stem_norm norm;
    double eps;
    size_t w[CONV_STEM_MAX], b[CONV_STEM_MAX], g[CONV_STEM_MAX], nb[CONV_STEM_MAX];
} conv_stem;

/* Element offsets of the stem's buffers for a batch shape: per stage the
 * padded input p (kernel > 2 only), conv output u, normed n, activation a
 * and, when training, the activation's gradient ga; shared gu and gp. */
typedef struct conv_stem_ws {
    int H, W;
    size_t p[CONV_STEM_MAX], u[CONV_STEM_MAX], n[CONV_STEM_MAX], a[CONV_STEM_MAX];
    size_t ga[CONV_STEM_MAX], gu, gp;
} conv_stem_ws;

/* Checks a stem's settings (`what` names the config in messages): stages
 * 0..4, channels 1..65536, strides 0 (= 2), 1 or 2 and none past the stages,
 * kernel 0 (= 2) or 2..16 and odd for a stride-1 stage, and a patch size
 * divisible by the strides' product with non-overlapping patches (stride 0 or
 * equal to the patch). */
plstm_status conv_stem_check(const char *what, int stages, const int *channels,
                             const int *strides, int kernel, plstm_vision_stem_norm norm,
                             int patch_size, int patch_stride);
/* JSON keys of a stem: stem_channels [c, ...] (its length sets the stages),
 * stem_strides [s, ...], stem_kernel, stem_norm "rms"|"instance".
 * conv_stem_json_set returns 1 when `key` is one of them (and sets it, or
 * fails with a message naming the key), 0 otherwise. conv_stem_json_put
 * adds them to an object when there is a stem. */
typedef struct conv_stem_fields {
    int *stages, *channels, *strides, *kernel;
    plstm_vision_stem_norm *norm;
} conv_stem_fields;
int conv_stem_json_set(const char *what, const conv_stem_fields *f, const char *key,
                       const void *json_value, plstm_status *status);
void conv_stem_json_put(void *json_object, int stages, const int *channels, const int *strides,
                        int kernel, plstm_vision_stem_norm norm);

/* Fills s from checked settings; cin: image channels. */
void conv_stem_setup(conv_stem *s, int stages, const int *channels, const int *strides,
                     int kernel, plstm_vision_stem_norm norm, double eps, int cin);
/* Product of the strides (1 without stages). */
int conv_stem_shrink(const conv_stem *s);
/* Channels of the stem's output (cin without stages). */
int conv_stem_out_channels(const conv_stem *s);
plstm_status conv_stem_declare(conv_stem *s, plstm_params *P);
/* Conv weights normal with std 1/sqrt(2.5·fan_in) from r, biases 0, norm
 * scales 1 (params must be zeroed). */
void conv_stem_init(const conv_stem *s, void *params, plstm_dtype dtype, plstm_rng *r);
/* Lays out the buffers from element offset o on; returns the next offset. */
size_t conv_stem_layout(const conv_stem *s, int B, int H, int W, int training, size_t o,
                        conv_stem_ws *w);
/* The stem's output [B, H/shrink, W/shrink, out_channels] for pixels
 * [B, H, W, cin]: *out points into buf (pixels itself without stages). */
plstm_status conv_stem_forward(plstm_context *ctx, const conv_stem *s, const conv_stem_ws *w,
                               plstm_dtype dt, const void *params, void *buf, int B,
                               const void *pixels, const void **out);
/* The output of the last conv_stem_forward (pixels without stages). */
const void *conv_stem_output(const conv_stem *s, const conv_stem_ws *w, plstm_dtype dt,
                             const void *buf, const void *pixels);
/* Where the caller writes d(loss)/d(output) before conv_stem_backward
 * (dpixels without stages). */
void *conv_stem_output_grad(const conv_stem *s, const conv_stem_ws *w, plstm_dtype dt, void *buf,
                            void *dpixels);
/* Accumulates the stem's parameter gradients and writes dpixels (may be
 * NULL) from the output gradient at conv_stem_output_grad. */
plstm_status conv_stem_backward(plstm_context *ctx, const conv_stem *s, const conv_stem_ws *w,
                                plstm_dtype dt, const void *params, void *buf, int B,
                                const void *pixels, void *dpixels, void *grads);

#endif
