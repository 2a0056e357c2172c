/* The pLSTM vision model (plstm-math.md §7.1, §7.3–7.5; experiments.md §2.2):
 * patch embedding, learnable 2D position embedding (bicubically resized for
 * other resolutions), num_blocks × (block0, block1) PostUpProjection blocks
 * around fused 2D pLSTM layers (modes from block_mode, default P then D),
 * final RMSNorm, pooling and a linear head.
 *
 * Layout: images are channels last [B, H, W, C]; the token grid is
 * [B, X, Y, dim] with x = patch row, y = patch column. Parameters carry the
 * reference PyTorch state_dict keys:
 *   patch_embed.proj.weight [dim, C, p, p], patch_embed.proj.bias [dim]
 *   pos_embed.embed [1, X0, Y0, dim]                       (use_pos_embed)
 *   block_stack.blocks.<i>.block<j>.{norm.scale, norm2.scale, upproj.weight,
 *     upproj.bias, interaction_module.<layer keys>, downproj.weight, downproj.bias}
 *   norm.scale [dim], head.weight [classes, Dp], head.bias [classes]
 * Biases, norm scales and the position embedding (every name not ending in
 * "weight") are flagged PLSTM_PARAM_NO_DECAY.
 *
 * CPU backend, F32 or F64 (F64 for finite-difference tests). */
#ifndef PLSTM_VISION_H
#define PLSTM_VISION_H

#include <stddef.h>
#include <stdint.h>
#include "plstm/context.h"
#include "plstm/layer2d.h"
#include "plstm/nn.h"
#include "plstm/params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Time spent per part (seconds, accumulated while a workspace's timing is on). */
typedef enum plstm_vision_part {
    PLSTM_VPART_EMBED = 0, /* patch embedding + position embedding (and resize) */
    PLSTM_VPART_NORM,      /* block and final RMSNorms, residual adds          */
    PLSTM_VPART_LAYER,     /* fused 2D pLSTM layers (QKV, gates, core, mhnorm, out proj) */
    PLSTM_VPART_MLP,       /* up projection, activation, down projection       */
    PLSTM_VPART_HEAD,      /* pooling + head                                  */
    PLSTM_VPART_COUNT
} plstm_vision_part;

/* ======================================================================== */
/* PostUpProjectionBlock (§7.1)                                             */
/* ======================================================================== */
/*   x1 = RMSNorm(x); x2 = x + Layer(x1); x3 = RMSNorm2(x2);
 *   y  = x2 + DownProj(act(UpProj(x3)))
 * inner = ceil64(projection_scaling · dim) (rounded up to projection_round).
 * Parameters "prefix.norm.scale", "prefix.norm2.scale", "prefix.upproj.{weight,bias}",
 * "prefix.interaction_module.*", "prefix.downproj.{weight,bias}". */

typedef struct plstm_postup_config {
    int dim;
    plstm_layer2d_config layer;  /* the fused 2D layer; layer.input_dim must equal dim */
    int projection_scaling;      /* 4 */
    int projection_round;        /* 64 */
    plstm_activation act;        /* PLSTM_ACT_GELU (exact, torch) */
    double norm_eps;             /* 1e-5 (both RMSNorms) */
} plstm_postup_config;

plstm_postup_config plstm_postup_config_default(int dim, int num_heads, plstm_layer2d_mode mode);

typedef struct plstm_postup {
    plstm_postup_config cfg;
    int inner;
    plstm_layer2d layer;
    size_t norm_off, norm2_off, up_w_off, up_b_off, down_w_off, down_b_off;
} plstm_postup;

plstm_status plstm_postup_declare(plstm_postup *L, const plstm_postup_config *cfg,
                                  plstm_params *p, const char *prefix);
/* Norm scales 1, projections SmallInit (fan = input features), biases 0, the
 * layer's own init. */
plstm_status plstm_postup_init(const plstm_postup *L, void *params, plstm_dtype dtype,
                               uint64_t seed);
/* Elements saved by forward for backward. */
size_t plstm_postup_activation_size(const plstm_postup *L, int B, int X, int Y);
/* Scratch elements forward and backward need (the caller owns it, so steps
 * do not allocate). */
size_t plstm_postup_work_size(const plstm_postup *L, int B, int X, int Y);
/* x, y [B, X, Y, dim] (must not overlap); acts may be NULL (inference). */
plstm_status plstm_postup_forward(plstm_context *ctx, const plstm_postup *L, plstm_dtype dtype,
                                  const void *params, int B, int X, int Y, const void *x,
                                  void *y, void *acts, void *work);
/* Writes dx (may be NULL), accumulates parameter gradients into grads. */
plstm_status plstm_postup_backward(plstm_context *ctx, const plstm_postup *L, plstm_dtype dtype,
                                   const void *params, int B, int X, int Y, const void *x,
                                   const void *acts, const void *dy, void *dx, void *grads,
                                   void *work);
/* The same, adding the seconds spent per part to sec[PLSTM_VPART_*] (sec may be NULL). */
plstm_status plstm_postup_forward_timed(plstm_context *ctx, const plstm_postup *L,
                                        plstm_dtype dtype, const void *params, int B, int X,
                                        int Y, const void *x, void *y, void *acts, void *work,
                                        double *sec);
plstm_status plstm_postup_backward_timed(plstm_context *ctx, const plstm_postup *L,
                                         plstm_dtype dtype, const void *params, int B, int X,
                                         int Y, const void *x, const void *acts, const void *dy,
                                         void *dx, void *grads, void *work, double *sec);

/* ======================================================================== */
/* Model configuration                                                      */
/* ======================================================================== */

typedef struct plstm_vision_config {
    int dim, num_heads, num_blocks;  /* num_blocks pairs (block0, block1)          */
    int patch_size, stride;          /* stride 0: = patch_size                      */
    int image_size[2];               /* training resolution (H, W): pos-emb grid    */
    int num_channels, num_classes;
    char block_mode[3];              /* modes of block0, block1: "PD", "PP", "DD", "DP" */
    plstm_pool_kind pooling;         /* CORNERS, CENTER or MEAN                     */
    int use_pos_embed;
    plstm_resize_kind pos_resize;    /* resize semantics at other resolutions       */
    plstm_activation mlp_activation; /* GELU (exact) or GELU_TANH                   */
    int projection_scaling, projection_round; /* 4, 64                              */
    double norm_eps, mhnorm_eps;     /* 1e-5, 1e-5                                  */
    /* interaction layers */
    int qkv_sub_heads;               /* input groups of Q/K/V: 0 = num_heads (block-
                                        diagonal, torch default), 1 = full projection */
    int source_weight, mark_weight, transition_weight, direct_weight; /* input-dependent gates */
    int gate_sub_heads;              /* input groups of S/T/M weights: 0 = 4·num_heads */
    plstm_head_orientation_map map;  /* REFERENCE (Q7) to load reference weights    */
    plstm_algo algo;                 /* core form                                   */
    /* initialization */
    double source_bias_init, mark_bias_init, direct_bias_init;
    double pos_embed_init_std;       /* 0: SmallInit 1/sqrt(2.5·dim); > 0: truncated
                                        normal clamped to ±2σ                       */
    /* Convolutional patch stem (not in the paper; 0 stages = its linear patch
     * embedding): stage i is a k×k conv with stride stem_strides[i] to
     * stem_channels[i], a norm (stem_norm) and GELU; the patch embedding
     * then patchifies the result with patch_size / (product of the strides).
     * It shares weights below the patch size. */
    int stem_stages;                 /* 0..PLSTM_VISION_MAX_STEM                    */
    int stem_channels[4];
    int stem_strides[4];             /* 1 or 2 (0 = 2); entries past stem_stages 0  */
    plstm_vision_stem_norm stem_norm; /* after each stem conv, before GELU          */
    int stem_kernel;                 /* k in 2..16 (0 = 2), zero-padded by (k−1)/2 so
                                        a stage divides the size by its stride
                                        ("same" conv); k > 2 overlaps neighbouring
                                        patches; stride 1 needs an odd k            */
} plstm_vision_config;
#define PLSTM_VISION_MAX_STEM 4

/* The torch reference pLSTMVisionModel defaults (§7.5): dim 128, 8 heads, 12
 * pairs, patch 16, 224×224×3, 1000 classes, PD, corners, pos-emb with torch
 * bicubic resize, exact GELU, block-diagonal QKV, S/M/D constant gates with
 * bias −5, input-dependent transition, pos-emb SmallInit. */
plstm_vision_config plstm_vision_config_default(void);

/* Named presets (case-insensitive):
 *   plstm-vis-t / -s / -b   paper Table 1: dim 192/384/768, heads 3/6/12, 6 pairs,
 *                           patch 16, 224, 1000 classes, in the authors' config
 *                           (plstm_experiments config/model/plstm_vision.yaml):
 *                           full QKV, S/T/M input-dependent with 4·H input groups,
 *                           zero-initialized gate weights, biases −4/−4/−6, JAX
 *                           semantics (tanh GELU, jax.image.resize bicubic)
 *   ape                     the T width with 6 heads, 192×192, 2 classes
 *   ape-p-only, ape-d-only  block_mode PP / DD
 *   ape-no-pos              use_pos_embed 0
 *   ape-const-stm           source/mark/transition without input weights
 * An unknown name is PLSTM_ERR_INVALID_ARGUMENT listing the known ones. */
plstm_status plstm_vision_preset(const char *name, plstm_vision_config *cfg);
/* Names of the presets, NULL-terminated. */
const char *const *plstm_vision_preset_names(void);

/* Validates a configuration (sizes, heads dividing dim, modes, pooling, ...). */
plstm_status plstm_vision_config_check(const plstm_vision_config *cfg);

/* JSON object: an optional "preset" applied first, then any of the fields
 * above by name (dim, num_heads, num_blocks, patch_size, stride, image_size
 * [H,W] or "resolution", num_channels, num_classes, block_mode, pooling
 * "corners"|"center"|"mean", use_pos_embed, pos_resize "torch"|"jax",
 * mlp_activation "gelu"|"gelu_tanh", projection_scaling, projection_round,
 * norm_eps, mhnorm_eps, qkv_sub_heads, source_weight, mark_weight,
 * transition_weight, direct_weight, gate_sub_heads, head_orientation_map
 * "reference"|"intended", algo "auto"|"sequential"|"parallel",
 * source_bias_init, mark_bias_init, direct_bias_init, pos_embed_init_std,
 * stem_channels [c1, ...] (its length sets stem_stages), stem_strides
 * [s1, ...] (at most as many as stem_channels), stem_norm "rms"|"instance",
 * stem_kernel).
 * `base` (may be NULL: the defaults) is the starting point when there is no
 * preset. Unknown keys, wrong types and bad values are errors naming them. */
plstm_status plstm_vision_config_from_json(const char *json, const plstm_vision_config *base,
                                           plstm_vision_config *cfg);
/* Same from a file. */
plstm_status plstm_vision_config_load(const char *path, const plstm_vision_config *base,
                                      plstm_vision_config *cfg);
/* Every field as a JSON object (malloc'd; free()), readable by from_json. */
plstm_status plstm_vision_config_to_json(const plstm_vision_config *cfg, char **json);

/* ======================================================================== */
/* Model                                                                    */
/* ======================================================================== */

typedef struct plstm_vision_model plstm_vision_model;

plstm_status plstm_vision_model_create(plstm_vision_model **m, const plstm_vision_config *cfg);
void plstm_vision_model_destroy(plstm_vision_model *m);
const plstm_vision_config *plstm_vision_model_config(const plstm_vision_model *m);
/* The parameter layout (owned by the model). */
const plstm_params *plstm_vision_model_params(const plstm_vision_model *m);
/* Pooled feature size (4·dim for corners, else dim): the head's input. */
int plstm_vision_model_feature_dim(const plstm_vision_model *m);
/* Token grid of an image size; INVALID_ARGUMENT when the patches do not tile it. */
plstm_status plstm_vision_model_grid(const plstm_vision_model *m, int H, int W, int *X, int *Y);

/* Initialization (deterministic in seed): patch embed SmallInit with fan
 * C·p·p, bias 0; pos-emb per pos_embed_init_std; blocks per plstm_postup_init
 * with the configured gate biases; norm 1; head SmallInit (fan = Dp), bias 0. */
plstm_status plstm_vision_model_init(const plstm_vision_model *m, void *params,
                                     plstm_dtype dtype, uint64_t seed);

/* Buffers for one batch shape: saved activations (training) and scratch, so a
 * step allocates nothing itself. */
typedef struct plstm_vision_workspace plstm_vision_workspace;

/* For batches of up to max_batch images of H×W (fixed) in `dtype`; training
 * = 0 keeps only inference buffers (backward is then an error). */
plstm_status plstm_vision_workspace_create(plstm_vision_workspace **ws,
                                           const plstm_vision_model *m, plstm_dtype dtype,
                                           int max_batch, int H, int W, int training);
void plstm_vision_workspace_destroy(plstm_vision_workspace *ws);
size_t plstm_vision_workspace_bytes(const plstm_vision_workspace *ws);
/* Turns per-part timing on (1) or off (0) and resets the totals. */
void plstm_vision_workspace_set_timing(plstm_vision_workspace *ws, int on);
/* Accumulated seconds per part, forward and backward together. */
void plstm_vision_workspace_timing(const plstm_vision_workspace *ws,
                                   double seconds[PLSTM_VPART_COUNT]);

/* pixels [B, H, W, C] -> logits [B, classes] (may be NULL) and features
 * [B, Dp] (the pooled features before the head; may be NULL). B <= max_batch.
 * With a training workspace the activations for backward are saved. */
plstm_status plstm_vision_forward(plstm_context *ctx, const plstm_vision_model *m,
                                  plstm_vision_workspace *ws, const void *params, int B,
                                  const void *pixels, void *logits, void *features);
/* After a forward of the same batch on the same workspace: from dlogits
 * [B, classes] (and dfeatures [B, Dp], may be NULL; added to the head's input
 * gradient) accumulates every parameter gradient into grads and writes
 * dpixels [B, H, W, C] (may be NULL). */
plstm_status plstm_vision_backward(plstm_context *ctx, const plstm_vision_model *m,
                                   plstm_vision_workspace *ws, const void *params, int B,
                                   const void *pixels, const void *dlogits,
                                   const void *dfeatures, void *dpixels, void *grads);

/* The position embedding added at grid X×Y: pos_embed.embed resized (or
 * copied when X×Y is the training grid) into out [X, Y, dim]. */
plstm_status plstm_vision_pos_embed(plstm_context *ctx, const plstm_vision_model *m,
                                    plstm_dtype dtype, const void *params, int X, int Y,
                                    void *out);

#ifdef __cplusplus
}
#endif
#endif
