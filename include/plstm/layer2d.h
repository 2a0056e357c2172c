/* 2D pLSTM layers (plstm-math.md §4): the fused four-orientation layer
 * (pLSTM2DLayerFused, §4.5, used by the vision model) and the non-fused
 * per-orientation layer (pLSTM2DLayer, §4.4). Both follow the layer pattern of
 * docs/ARCHITECTURE.md and share one configuration and parameter set.
 *
 * Input x [B, X, Y, Din] (any X, Y >= 1; no padding is needed: padding never
 * changes valid outputs), output [B, X, Y, Dout] with Dout = Din when the out
 * projection is on, else H·DV·JO. Steps:
 *   c = causal depthwise 3×3 conv(x)           (optional; parts in conv_inputs read c)
 *   q, k, v, d = Query, Key, Value, Direct     (H heads, shared by orientations)
 *   S/T/M gates (P or D mode) with 4·H heads   (one set per orientation and head)
 *   fused:     y = core2d_fused4 (one D), heads in the batch (b·H + h),
 *              channel h·DV·JO + dv·JO + o, multi-head RMSNorm per head
 *   non-fused: per orientation o (flip x: o&1, flip y: (o>>1)&1 — the intended
 *              rule, not the reference's Q5), 2D core with full D, mhnorm,
 *              un-flip; mean over the 4 orientations
 *   then the out projection (no bias by default) and the passthrough s ⊙ x.
 *
 * Parameters carry the reference state_dict keys under `prefix`:
 *   convolution._conv.weight [Din,1,3,3], convolution._conv.bias [Din]   (conv)
 *   P: orientation_bias [4,H], orientation_weight [4,H,Din], source.*, transition.*, mark.*
 *   D: source_r.*, source_d.*, transition_r.*, transition_d.*, transition_rd.*,
 *      mark_l.*, mark_u.*
 *   direct.*, query.*, key.*, value_.*, mhnorm.scale [H, DV·JO],
 *   outprojection.weight [Dout, H·DV·JO] (+ .bias), passthrough.scale [Din]
 *
 * The CPU backend only (sub-layers are host code); F32 or F64. Backward WRITES
 * dx (may be NULL) and ACCUMULATES parameter gradients. */
#ifndef PLSTM_LAYER2D_H
#define PLSTM_LAYER2D_H

#include <stddef.h>
#include <stdint.h>
#include "plstm/context.h"
#include "plstm/layers.h"
#include "plstm/params.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum plstm_layer2d_mode {
    PLSTM_LAYER2D_P = 0, /* directed propagation: orientation gate, convex split */
    PLSTM_LAYER2D_D = 1  /* diffusive: seven sub-layers, multitree by chirality  */
} plstm_layer2d_mode;

typedef struct plstm_layer2d_config {
    int input_dim, num_heads;     /* Din, H (H divides Din)                           */
    plstm_layer2d_mode mode;      /* default P                                       */
    plstm_chirality chirality;    /* D mode, default L                               */
    int DK, DV;                   /* per head; 0 = Din/H                             */
    int JQ, JK, JV, JT, JO;       /* default 1                                       */
    /* Sub-layer settings. input_dim, num_heads and the J dims are set by declare
     * (S/T/M get 4·H heads, Direct and QKV H heads, QKV rows DK/DV). */
    plstm_gate_config source, mark, direct;   /* weight off by default (§4.5)     */
    plstm_transition_config transition;       /* weight on, tanh ×5, exp-orth.    */
    plstm_qkv_config query, key, value;       /* sub_heads = H, bias on           */
    double orientation_scale;                 /* pmode_orientation_scale, 0.5     */
    double orientation_bias_low, orientation_bias_high; /* Linspace init, −2, 2   */
    int conv;                    /* additional_convolution (fused 0, non-fused 1)    */
    char conv_inputs[16];        /* parts reading the conv output, "STMDQKsO"        */
    int passthrough;             /* additional_passthrough (fused 0, non-fused 1)    */
    int outprojection;           /* 1                                                */
    int outprojection_bias;      /* 0                                                */
    int mhnorm;                  /* multi-head RMSNorm on (1)                        */
    double mhnorm_eps;           /* 1e-5                                             */
    /* Fused form only: which of the 4·H S/T/M heads and orientation-gate entries
     * drive (head h, orientation o). REFERENCE (Q7, default) loads reference
     * weights; the non-fused layer always uses o·H + h (as the reference does). */
    plstm_head_orientation_map map;
    int orientations[4];         /* non-fused: orientation_combinations, {0,1,2,3}   */
    plstm_algo algo;             /* core form (AUTO)                                 */
} plstm_layer2d_config;

/* Defaults of pLSTM2DLayerFusedConfig (conv and passthrough off, Q7 map). */
plstm_layer2d_config plstm_layer2d_fused_config_default(int input_dim, int num_heads,
                                                        plstm_layer2d_mode mode);
/* Defaults of pLSTM2DLayerConfig (conv and passthrough on). */
plstm_layer2d_config plstm_layer2d_config_default(int input_dim, int num_heads,
                                                  plstm_layer2d_mode mode);

typedef struct plstm_layer2d {
    plstm_layer2d_config cfg;     /* with DK, DV resolved                            */
    int Dout;                     /* output features                                 */
    plstm_orientation_gate ogate; /* P                                               */
    plstm_gate source, mark;      /* P                                               */
    plstm_transition transition;  /* P                                               */
    plstm_gate source_r, source_d, mark_l, mark_u;                 /* D              */
    plstm_transition transition_r, transition_d, transition_rd;    /* D              */
    plstm_gate direct;
    plstm_qkv query, key, value;
    size_t conv_weight_off, conv_bias_off; /* PLSTM_NO_PARAM without conv             */
    size_t mhnorm_off;                     /* PLSTM_NO_PARAM without mhnorm           */
    size_t outproj_weight_off, outproj_bias_off;
    size_t passthrough_off;
} plstm_layer2d;

/* Checks the configuration (H divides Din, sizes >= 1, Dout = Din when the
 * passthrough is on, ...) and declares the parameters "prefix.<key>". */
plstm_status plstm_layer2d_declare(plstm_layer2d *L, const plstm_layer2d_config *cfg,
                                   plstm_params *p, const char *prefix);
/* Default initialization: the sub-layers' own, mhnorm ones, out projection
 * SmallInit (σ = 1/sqrt(2.5·fan_in), the nnx choice; torch uses U(±1/√fan_in)),
 * conv U(±1/3), passthrough ones. P mode needs H >= 2 (Linspace). */
plstm_status plstm_layer2d_init(const plstm_layer2d *L, void *params, plstm_dtype dtype,
                                uint64_t seed);

/* ---- fused layer (§4.5) ---- */
size_t plstm_layer2d_fused_activation_size(const plstm_layer2d *L, int B, int X, int Y);
/* x [B,X,Y,Din] -> y [B,X,Y,Dout]; acts (activation_size elements) or NULL. */
plstm_status plstm_layer2d_fused_forward(plstm_context *ctx, const plstm_layer2d *L,
                                         plstm_dtype dtype, const void *params, int B, int X,
                                         int Y, const void *x, void *y, void *acts);
plstm_status plstm_layer2d_fused_backward(plstm_context *ctx, const plstm_layer2d *L,
                                          plstm_dtype dtype, const void *params, int B, int X,
                                          int Y, const void *x, const void *acts, const void *dy,
                                          void *dx, void *grads);

/* ---- non-fused layer (§4.4) ---- */
size_t plstm_layer2d_activation_size(const plstm_layer2d *L, int B, int X, int Y);
plstm_status plstm_layer2d_forward(plstm_context *ctx, const plstm_layer2d *L, plstm_dtype dtype,
                                   const void *params, int B, int X, int Y, const void *x,
                                   void *y, void *acts);
plstm_status plstm_layer2d_backward(plstm_context *ctx, const plstm_layer2d *L,
                                    plstm_dtype dtype, const void *params, int B, int X, int Y,
                                    const void *x, const void *acts, const void *dy, void *dx,
                                    void *grads);

#ifdef __cplusplus
}
#endif
#endif
