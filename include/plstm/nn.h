/* Neural-network primitive operators the pLSTM layers and models are built
 * from (plstm-math.md §5.4–5.6, §7.1, §7.5, §7.7): linear, norms,
 * activations, causal depthwise conv, patch embedding, bicubic resize,
 * softmax cross-entropy, multi-head attention, pooling and elementwise helpers.
 *
 * Conventions shared by every operator here:
 *  - `dtype` is PLSTM_F32 or PLSTM_F64; all float buffers have that dtype and
 *    live on the context's device. Buffers are dense and row-major.
 *  - GRADIENT RULE: a backward call ACCUMULATES (+=) into parameter gradients
 *    (dW, db, dgamma, dbeta, ds, dv, ...) so several uses and micro-batches sum,
 *    and WRITES (=) input gradients (dx, dq, dimages, ...). Every gradient
 *    pointer may be NULL when that gradient is not wanted.
 *  - Weights use the PyTorch layouts (Linear [out, in], Conv2d [out, in, kh, kw]).
 *  - Input and output buffers must not overlap, except where an operator says
 *    "in place" (elementwise operators).
 *  - Backward calls recompute cheap statistics (norm moments, softmax) from the
 *    forward inputs instead of asking for saved activations, except attention,
 *    which takes the output and row log-sum-exp its forward wrote. */
#ifndef PLSTM_NN_H
#define PLSTM_NN_H

#include <stddef.h>
#include <stdint.h>
#include "plstm/context.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Linear: y[n, out] = x[n, in] · W[out, in]ᵀ + b[out] (b may be NULL) ---- */
plstm_status plstm_linear_forward(plstm_context *ctx, plstm_dtype dtype, int n, int in, int out,
                                  const void *x, const void *W, const void *b, void *y);
/* dx = dy·W; dW += dyᵀ·x; db += Σ_n dy. x is needed only for dW, W only for dx. */
plstm_status plstm_linear_backward(plstm_context *ctx, plstm_dtype dtype, int n, int in, int out,
                                   const void *x, const void *W, const void *dy, void *dx,
                                   void *dW, void *db);

/* ---- Several Linears of one input, fused: y[n, P] with P = Σ out[i] holds
 * segment i, x·W[i]ᵀ + b[i], in columns Σ_{j<i} out[j] onward. W[i] is
 * [out[i], in]; b (or b[i]) may be NULL. One pass over x for a layer's q, k,
 * v and gate projections. Backward: dx = Σ_i dy_i·W[i] (written; may be
 * NULL), dW[i] += dy_iᵀ·x, db[i] += Σ_n dy_i (dW, db or their entries may be
 * NULL). ---- */
plstm_status plstm_linear_multi_forward(plstm_context *ctx, plstm_dtype dtype, int n, int in,
                                        int nseg, const int *out, const void *const *W,
                                        const void *const *b, const void *x, void *y);
plstm_status plstm_linear_multi_backward(plstm_context *ctx, plstm_dtype dtype, int n, int in,
                                         int nseg, const int *out, const void *const *W,
                                         const void *x, const void *dy, void *dx,
                                         void *const *dW, void *const *db);

/* ---- Norms over the last axis of x [n, D], split into NH contiguous groups
 * of D/NH (NH = 1: plain norm; NH > 1: the multi-head form with γ, β of shape
 * [NH, D/NH], i.e. D values in the same memory order).
 *   RMS:   y = x / sqrt(mean(x²) + eps) ⊙ γ (+ β)
 *   LAYER: y = (x − mean) / sqrt(var + eps) ⊙ γ (+ β), biased variance.
 * gamma NULL means γ = 1, beta NULL means no β. ---- */
typedef enum plstm_norm_kind { PLSTM_NORM_RMS = 0, PLSTM_NORM_LAYER } plstm_norm_kind;

plstm_status plstm_norm_forward(plstm_context *ctx, plstm_dtype dtype, plstm_norm_kind kind,
                                int n, int D, int NH, double eps, const void *x,
                                const void *gamma, const void *beta, void *y);
/* dx =; dgamma += Σ_n dy ⊙ x̂; dbeta += Σ_n dy. */
plstm_status plstm_norm_backward(plstm_context *ctx, plstm_dtype dtype, plstm_norm_kind kind,
                                 int n, int D, int NH, double eps, const void *x,
                                 const void *gamma, const void *dy, void *dx, void *dgamma,
                                 void *dbeta);

/* ---- Instance norm of B channels-last grids x [B, N, C] (N = H·W pixels):
 * channel c of each image is normalized over that image's N pixels,
 *   y = (x − mean) / sqrt(var + eps) ⊙ γ[c] + β[c], biased variance;
 * gamma NULL means γ = 1, beta NULL no β. Backward: dx = (dx may be NULL);
 * dgamma += Σ dy ⊙ x̂; dbeta += Σ dy (either may be NULL). ---- */
plstm_status plstm_instance_norm_forward(plstm_context *ctx, plstm_dtype dtype, int B, int N,
                                         int C, double eps, const void *x, const void *gamma,
                                         const void *beta, void *y);
plstm_status plstm_instance_norm_backward(plstm_context *ctx, plstm_dtype dtype, int B, int N,
                                          int C, double eps, const void *x, const void *gamma,
                                          const void *dy, void *dx, void *dgamma, void *dbeta);

/* Normalization of a vision model's conv-stem stage (plstm_vision_config,
 * plstm_vit_config): RMSNorm over each pixel's
 * channels with a scale (stem.i.norm.scale), or instance norm of each
 * channel over the image's pixels with a scale and a bias (stem.i.norm.scale,
 * stem.i.norm.bias), which makes the thin lines of sparse images like APE's
 * stand out at any contrast. */
typedef enum plstm_vision_stem_norm {
    PLSTM_STEM_NORM_RMS = 0,
    PLSTM_STEM_NORM_INSTANCE
} plstm_vision_stem_norm;

/* ---- Activations, elementwise over `count` values; y may equal x (in place),
 * dx may equal dy. ---- */
typedef enum plstm_activation {
    PLSTM_ACT_GELU = 0,   /* exact: x·Φ(x) = 0.5·x·(1 + erf(x/√2))  (torch default)     */
    PLSTM_ACT_GELU_TANH,  /* 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))  (JAX default) */
    PLSTM_ACT_SILU        /* x·sigmoid(x)                                               */
} plstm_activation;

plstm_status plstm_activation_forward(plstm_context *ctx, plstm_dtype dtype, plstm_activation act,
                                      size_t count, const void *x, void *y);
/* dx = dy ⊙ act'(x). */
plstm_status plstm_activation_backward(plstm_context *ctx, plstm_dtype dtype,
                                       plstm_activation act, size_t count, const void *x,
                                       const void *dy, void *dx);

/* ---- Causal depthwise 2D convolution on x [B, X, Y, C] (§5.5), kernel
 * KX×KY (3×3 in the 2D layers; KX = 1, KY = k with X = 1 is the 1D conv):
 *   y[b,x,y,c] = bias[c] + Σ_{i<KX, j<KY} w[c,i,j] · x[b, x−(KX−1)+i, y−(KY−1)+j, c]
 * with x = 0 outside the grid. w has the torch layout [C, 1, KX, KY]; bias may be NULL. ---- */
plstm_status plstm_dwconv2d_forward(plstm_context *ctx, plstm_dtype dtype, int B, int X, int Y,
                                    int C, int KX, int KY, const void *x, const void *w,
                                    const void *bias, void *y);
plstm_status plstm_dwconv2d_backward(plstm_context *ctx, plstm_dtype dtype, int B, int X, int Y,
                                     int C, int KX, int KY, const void *x, const void *w,
                                     const void *dy, void *dx, void *dw, void *dbias);

/* ---- Patch embedding: Conv2d(C → dim, kernel p, stride s) on channels-last
 * images [B, H, W, C] → y [B, H', W', dim], H' = (H − p)/s + 1, W' = (W − p)/s + 1
 * (floor, as torch). weight [dim, C, p, p] (torch layout), bias [dim] or NULL.
 * Runs as im2col + GEMM on chunks of images. ---- */
plstm_status plstm_patch_embed_forward(plstm_context *ctx, plstm_dtype dtype, int B, int H,
                                       int W, int C, int dim, int p, int s, const void *images,
                                       const void *weight, const void *bias, void *y);
plstm_status plstm_patch_embed_backward(plstm_context *ctx, plstm_dtype dtype, int B, int H,
                                        int W, int C, int dim, int p, int s, const void *images,
                                        const void *weight, const void *dy, void *dimages,
                                        void *dweight, void *dbias);

/* ---- Zero padding of channels-last grids x [B, H, W, C] by q on every side
 * → y [B, H + 2q, W + 2q, C] (q = 0 copies); backward crops dy back to dx.
 * With it a patch embedding becomes a "same"-padded convolution. ---- */
plstm_status plstm_pad2d_forward(plstm_context *ctx, plstm_dtype dtype, int B, int H, int W,
                                 int C, int q, const void *x, void *y);
plstm_status plstm_pad2d_backward(plstm_context *ctx, plstm_dtype dtype, int B, int H, int W,
                                  int C, int q, const void *dy, void *dx);

/* ---- Bicubic resize of B grids [h, w, dim] → [h2, w2, dim] (channels last),
 * separable along h and w. Two semantics:
 *  TORCH: F.interpolate(mode="bicubic", align_corners=False) with an output
 *         size: source = (o + 0.5)·in/out − 0.5, cubic convolution A = −0.75,
 *         the 4 taps at floor(source)−1 … +2 clamped into [0, in−1]
 *         (plstm-math.md §7.5, the torch reference model).
 *  JAX:   jax.image.resize(method="bicubic") (ape.md §1.8, the paper's APE runs):
 *         Keys kernel a = −0.5 at the same half-pixel source positions, taps
 *         outside the input dropped and the weights renormalized to sum 1; when
 *         downsampling the kernel is widened by in/out (antialias, the default).
 * Resizing to the same size is the identity in both. ---- */
typedef enum plstm_resize_kind {
    PLSTM_RESIZE_BICUBIC_TORCH = 0,
    PLSTM_RESIZE_BICUBIC_JAX
} plstm_resize_kind;

plstm_status plstm_resize_forward(plstm_context *ctx, plstm_dtype dtype, plstm_resize_kind kind,
                                  int B, int h, int w, int h2, int w2, int dim, const void *x,
                                  void *y);
/* dx [B, h, w, dim] = the adjoint of the resize applied to dy [B, h2, w2, dim]. */
plstm_status plstm_resize_backward(plstm_context *ctx, plstm_dtype dtype, plstm_resize_kind kind,
                                   int B, int h, int w, int h2, int w2, int dim, const void *dy,
                                   void *dx);

/* ---- Softmax cross-entropy over logits [n, classes] with labels[n] in
 * [0, classes) (int32, on the context's device). *loss (host) = mean over rows
 * of −log softmax(logits)[label]; *correct (host, may be NULL) = the number of
 * rows whose first arg-max equals the label. ---- */
plstm_status plstm_softmax_xent_forward(plstm_context *ctx, plstm_dtype dtype, int n, int classes,
                                        const void *logits, const int32_t *labels, double *loss,
                                        int *correct);
/* dlogits = dloss · (softmax(logits) − onehot(label)) / n: the gradient of
 * dloss · (mean loss). */
plstm_status plstm_softmax_xent_backward(plstm_context *ctx, plstm_dtype dtype, int n,
                                         int classes, const void *logits, const int32_t *labels,
                                         double dloss, void *dlogits);

/* ---- Multi-head softmax attention (ViT baseline, §7.7), no mask:
 *   out[b,i,h,:] = Σ_j softmax_j(scale · q[b,i,h,:]·k[b,j,h,:]) · v[b,j,h,:],
 * scale = 1/sqrt(Dh); q, k, v, out are [B, N, H, Dh] (so [B, N, H·Dh] rows feed
 * the out projection directly). lse [B, H, N] receives the row log-sum-exp of
 * the scaled scores (NULL at inference); backward needs out and lse. ---- */
plstm_status plstm_attention_forward(plstm_context *ctx, plstm_dtype dtype, int B, int N, int H,
                                     int Dh, const void *q, const void *k, const void *v,
                                     void *out, void *lse);
plstm_status plstm_attention_backward(plstm_context *ctx, plstm_dtype dtype, int B, int N, int H,
                                      int Dh, const void *q, const void *k, const void *v,
                                      const void *out, const void *lse, const void *dout, void *dq,
                                      void *dk, void *dv);

/* ---- Elementwise helpers ---- */
/* y = a + b over `count` values (y may equal a or b). */
plstm_status plstm_add(plstm_context *ctx, plstm_dtype dtype, size_t count, const void *a,
                       const void *b, void *y);
/* y += alpha · x over `count` values. */
plstm_status plstm_axpy(plstm_context *ctx, plstm_dtype dtype, size_t count, double alpha,
                        const void *x, void *y);

/* Scale by a vector over the last axis (ScaleLayer, LayerScale, Passthrough):
 * y[n, d] = x[n, d] · s[d] (y may equal x). Backward: dx = dy ⊙ s (dx may
 * equal dy); ds += Σ_n dy ⊙ x. */
plstm_status plstm_scale_forward(plstm_context *ctx, plstm_dtype dtype, int n, int D,
                                 const void *x, const void *s, void *y);
plstm_status plstm_scale_backward(plstm_context *ctx, plstm_dtype dtype, int n, int D,
                                  const void *x, const void *s, const void *dy, void *dx,
                                  void *ds);

/* Broadcast add over a leading batch axis (position embedding):
 * y[b, m] = x[b, m] + v[m] for b < B, m < M (y may equal x). The input
 * gradient is dy itself; backward only does dv += Σ_b dy[b, :]. */
plstm_status plstm_broadcast_add_forward(plstm_context *ctx, plstm_dtype dtype, int B, int M,
                                         const void *x, const void *v, void *y);
plstm_status plstm_broadcast_add_backward(plstm_context *ctx, plstm_dtype dtype, int B, int M,
                                          const void *dy, void *dv);

/* Pooling of a grid x [B, X, Y, D] (§7.5 step 5) into y [B, Dout]:
 *  CORNERS: concat(p[0,0], p[X−1,0], p[0,Y−1], p[X−1,Y−1]), Dout = 4·D;
 *  CENTER:  p[X/2, Y/2] (floor), Dout = D;
 *  MEAN:    mean over (x, y), Dout = D;
 *  FIRST:   p[0, 0] (CLS-token pooling of a [B, N, 1, D] sequence), Dout = D.
 * Backward writes the whole dx (zeros where the pooling does not read). */
typedef enum plstm_pool_kind {
    PLSTM_POOL_CORNERS = 0,
    PLSTM_POOL_CENTER,
    PLSTM_POOL_MEAN,
    PLSTM_POOL_FIRST
} plstm_pool_kind;

/* Dout of a pooling kind for feature size D (0 for an unknown kind). */
int plstm_pool_output_dim(plstm_pool_kind kind, int D);
plstm_status plstm_pool_forward(plstm_context *ctx, plstm_dtype dtype, plstm_pool_kind kind, int B,
                                int X, int Y, int D, const void *x, void *y);
plstm_status plstm_pool_backward(plstm_context *ctx, plstm_dtype dtype, plstm_pool_kind kind,
                                 int B, int X, int Y, int D, const void *dy, void *dx);

#ifdef __cplusplus
}
#endif
#endif
