/* The ViT baseline of the APE experiments (experiments.md §2.3; plstm-math.md
 * §7.5, §7.7): the authors' pLSTMVisionModel with TransformerBlocks and CLS
 * pooling (plstm_experiments config/model/vit.yaml).
 *
 *   patch embed → + position embedding (patch grid, bicubically resized for
 *   other resolutions) → prepend the CLS token → depth × TransformerBlock →
 *   final RMSNorm → CLS token → head Linear(dim → classes).
 *
 * The CLS token has NO position-embedding entry: the embedding covers the
 * patch grid only and is added before the CLS token is prepended, as in the
 * authors' model and DeiT-III (the original ViT/timm instead give the CLS
 * token its own entry). This keeps the embedding a pure 2D grid, so resizing
 * it needs no special case.
 *
 * Layout: images are channels last [B, H, W, C]; tokens are [B, T, dim] with
 * T = 1 + X·Y, token 0 the CLS token, token 1 + x·Y + y the patch at patch row
 * x, column y. Parameter names (PyTorch state_dict style of the reference
 * torch pLSTMVisionModel / TransformerBlock):
 *   stem.<i>.{weight [c_i, c_(i-1), k, k], bias, norm.scale, norm.bias} (stem;
 *     norm.bias with instance norm), then C = the stem's channels and
 *     p = patch_size / (product of the stem strides)
 *   patch_embed.proj.weight [dim, C, p, p], patch_embed.proj.bias [dim]
 *   cls_token [dim, 1]
 *   pos_embed.embed [1, X0, Y0, dim]                          (use_pos_embed)
 *   block_stack.blocks.<i>.{norm.scale [dim], qkv.weight [3·dim, dim],
 *     qkv.bias [3·dim], outproj.weight [dim, dim], outproj.bias [dim],
 *     scale.scale [dim], norm2.scale [dim], upproj.weight [inner, dim],
 *     upproj.bias [inner], downproj.weight [dim, inner], downproj.bias [dim],
 *     scale2.scale [dim]}
 *   norm.scale [dim], head.weight [classes, dim], head.bias [classes]
 * Every name not ending in "weight" (biases, norm scales, LayerScale, CLS
 * token, position embedding) is flagged PLSTM_PARAM_NO_DECAY.
 *
 * Drop-path is not implemented (the paper's APE runs use rate 0).
 * CPU backend, F32 or F64 (F64 for finite-difference tests). */
#ifndef PLSTM_VIT_H
#define PLSTM_VIT_H

#include <stddef.h>
#include <stdint.h>
#include "plstm/classifier.h"
#include "plstm/context.h"
#include "plstm/nn.h"
#include "plstm/params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================== */
/* TransformerBlock (§7.7)                                                  */
/* ======================================================================== */
/*   x0 = RMSNorm(x); q,k,v = split(qkv(x0)); o = softmax attention (scale
 *   1/sqrt(dim/heads), no mask); x2 = x + scale ⊙ outproj(o);
 *   x3 = RMSNorm2(x2); y = x2 + scale2 ⊙ downproj(act(upproj(x3))).
 * inner = ceil(projection_scaling·dim / projection_round)·projection_round
 * (768 for dim 192). qkv rows 0..dim are q, dim..2dim k, 2dim..3dim v; head h
 * uses features h·dim/heads .. (h+1)·dim/heads of each. */

typedef struct plstm_transformer_block_config {
    int dim, num_heads;
    int projection_scaling, projection_round; /* 4, 64                             */
    plstm_activation act;                     /* GELU (exact) or GELU_TANH (JAX)    */
    double norm_eps;                          /* 1e-5 (both RMSNorms, no bias)      */
    double layerscale_init;                   /* init of scale and scale2: 1        */
} plstm_transformer_block_config;

/* dim, heads with the defaults above (exact GELU, LayerScale 1). */
plstm_transformer_block_config plstm_transformer_block_config_default(int dim, int num_heads);

typedef struct plstm_transformer_block {
    plstm_transformer_block_config cfg;
    int inner, head_dim;
    size_t norm_off, qkv_w_off, qkv_b_off, out_w_off, out_b_off, scale_off;
    size_t norm2_off, up_w_off, up_b_off, down_w_off, down_b_off, scale2_off;
} plstm_transformer_block;

/* Declares "prefix.<name>" parameters (names above); checks the config
 * (heads must divide dim, ...). */
plstm_status plstm_transformer_block_declare(plstm_transformer_block *L,
                                             const plstm_transformer_block_config *cfg,
                                             plstm_params *p, const char *prefix);
/* Norm scales 1, LayerScales layerscale_init, weights SmallInit
 * N(0, 1/(2.5·fan_in)) with fan_in = input features (the torch Linear
 * meaning; the JAX reference uses the output axis), biases 0. */
plstm_status plstm_transformer_block_init(const plstm_transformer_block *L, void *params,
                                          plstm_dtype dtype, uint64_t seed);
/* Elements saved by forward for backward, for B sequences of N tokens. */
size_t plstm_transformer_block_activation_size(const plstm_transformer_block *L, int B, int N);
/* Scratch elements forward and backward need. */
size_t plstm_transformer_block_work_size(const plstm_transformer_block *L, int B, int N);
/* x, y [B, N, dim] (must not overlap); acts may be NULL (inference). */
plstm_status plstm_transformer_block_forward(plstm_context *ctx, const plstm_transformer_block *L,
                                             plstm_dtype dtype, const void *params, int B, int N,
                                             const void *x, void *y, void *acts, void *work);
/* Writes dx (may be NULL), accumulates parameter gradients into grads. */
plstm_status plstm_transformer_block_backward(plstm_context *ctx,
                                              const plstm_transformer_block *L, plstm_dtype dtype,
                                              const void *params, int B, int N, const void *x,
                                              const void *acts, const void *dy, void *dx,
                                              void *grads, void *work);

/* ======================================================================== */
/* Model configuration                                                      */
/* ======================================================================== */

typedef struct plstm_vit_config {
    int dim, num_heads, depth;
    int patch_size;                  /* kernel = stride                            */
    int image_size[2];               /* training resolution (H, W): pos-emb grid    */
    int num_channels, num_classes;
    double layerscale_init;          /* 1 (the paper: important for APE)           */
    int use_pos_embed;
    plstm_resize_kind pos_resize;    /* resize semantics at other resolutions       */
    plstm_activation mlp_activation; /* GELU (exact) or GELU_TANH                   */
    int projection_scaling, projection_round; /* 4, 64                              */
    double norm_eps;                 /* 1e-5                                        */
    /* Optional convolutional patch stem, as in plstm_vision_config (not in the
     * paper): 0 stages = the linear patch embedding. */
    int stem_stages;                 /* 0..4                                        */
    int stem_channels[4];
    int stem_strides[4];             /* 1 or 2 (0 = 2)                              */
    int stem_kernel;                 /* 0 (= 2) or 2..16, odd for a stride-1 stage  */
    plstm_vision_stem_norm stem_norm;
} plstm_vit_config;

/* The vit-ape preset. */
plstm_vit_config plstm_vit_config_default(void);

/* Named presets (case-insensitive):
 *   vit-ape    dim 192, 6 heads, depth 12, patch 16, 192×192×3, 2 classes,
 *              LayerScale 1, JAX semantics of the paper's runs (tanh GELU,
 *              jax.image.resize bicubic for the position embedding)
 *   vit-tiny   dim 16, 2 heads, depth 2, patch 4, 16×16×3, 2 classes (tests)
 * An unknown name is PLSTM_ERR_INVALID_ARGUMENT listing the known ones. */
plstm_status plstm_vit_preset(const char *name, plstm_vit_config *cfg);
const char *const *plstm_vit_preset_names(void);

/* Validates a configuration; errors name the problem (heads not dividing dim,
 * image not divisible by the patch, ...). */
plstm_status plstm_vit_config_check(const plstm_vit_config *cfg);

/* JSON object of every field (malloc'd; free()), readable by from_json:
 * dim, num_heads, depth, patch_size, image_size [H,W], num_channels,
 * num_classes, layerscale_init, use_pos_embed, pos_resize "torch"|"jax",
 * mlp_activation "gelu"|"gelu_tanh", projection_scaling, projection_round,
 * norm_eps, and with a stem stem_channels [c, ...], stem_strides [s, ...],
 * stem_kernel, stem_norm "rms"|"instance". */
plstm_status plstm_vit_config_to_json(const plstm_vit_config *cfg, char **json);
/* An optional "preset" applied first, then any fields above; `base` (may be
 * NULL: the default) is the start without a preset. Unknown keys, wrong types
 * and bad values are errors naming them. */
plstm_status plstm_vit_config_from_json(const char *json, const plstm_vit_config *base,
                                        plstm_vit_config *cfg);

/* ======================================================================== */
/* Model                                                                    */
/* ======================================================================== */

typedef struct plstm_vit_model plstm_vit_model;

plstm_status plstm_vit_model_create(plstm_vit_model **m, const plstm_vit_config *cfg);
void plstm_vit_model_destroy(plstm_vit_model *m);
const plstm_vit_config *plstm_vit_model_config(const plstm_vit_model *m);
const plstm_params *plstm_vit_model_params(const plstm_vit_model *m);
/* Patch grid of an image size; INVALID_ARGUMENT when the patches do not tile it. */
plstm_status plstm_vit_model_grid(const plstm_vit_model *m, int H, int W, int *X, int *Y);

/* Deterministic in seed: patch embed SmallInit (fan C·p·p), position
 * embedding SmallInit (fan dim), CLS token N(0, 1/2.5) (the references'
 * SmallInit over the last axis of its [dim, 1] shape, fan 1), blocks per
 * plstm_transformer_block_init, norm 1, head SmallInit (fan dim), biases 0. */
plstm_status plstm_vit_model_init(const plstm_vit_model *m, void *params, plstm_dtype dtype,
                                  uint64_t seed);

/* Buffers for batches of up to max_batch images of H×W in `dtype`, so steps
 * allocate nothing; training = 0 keeps only inference buffers. */
typedef struct plstm_vit_workspace plstm_vit_workspace;

plstm_status plstm_vit_workspace_create(plstm_vit_workspace **ws, const plstm_vit_model *m,
                                        plstm_dtype dtype, int max_batch, int H, int W,
                                        int training);
void plstm_vit_workspace_destroy(plstm_vit_workspace *ws);
size_t plstm_vit_workspace_bytes(const plstm_vit_workspace *ws);

/* pixels [B, H, W, C] → logits [B, classes]. B <= max_batch. A training
 * workspace keeps what backward needs. */
plstm_status plstm_vit_forward(plstm_context *ctx, const plstm_vit_model *m,
                               plstm_vit_workspace *ws, const void *params, int B,
                               const void *pixels, void *logits);
/* After a forward of the same batch on the same workspace: accumulates every
 * parameter gradient into grads and writes dpixels (may be NULL). */
plstm_status plstm_vit_backward(plstm_context *ctx, const plstm_vit_model *m,
                                plstm_vit_workspace *ws, const void *params, int B,
                                const void *pixels, const void *dlogits, void *dpixels,
                                void *grads);

/* The position embedding at grid X×Y: pos_embed.embed resized (copied at the
 * training grid) into out [X, Y, dim]. */
plstm_status plstm_vit_pos_embed(plstm_context *ctx, const plstm_vit_model *m, plstm_dtype dtype,
                                 const void *params, int X, int Y, void *out);

/* The trainer's interface (classifier.h) over an F32 model; name "vit". The
 * workspace is (re)sized when a call needs a larger batch or another
 * resolution; the pixels of a training forward are copied for backward. */
plstm_status plstm_vit_classifier_create(const plstm_vit_config *cfg, plstm_classifier **out);

#ifdef __cplusplus
}
#endif
#endif
