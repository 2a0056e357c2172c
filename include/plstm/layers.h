/* pLSTM gate sub-layers (plstm-math.md §4.1–4.3, §5.1–5.3, §5.7): Source /
 * Mark / Direct, LongRangeTransition, Query/Key/Value projections, the P-mode
 * orientation gate, and the P/D-mode assembly of the 2D core gates.
 *
 * Every sub-layer follows the layer pattern of docs/ARCHITECTURE.md:
 *
 *   declare(L, cfg, params, prefix)  declares "prefix.<name>" parameters with
 *                                    the reference PyTorch state_dict keys;
 *   init(L, params, dtype, seed)     writes the spec's default initial values;
 *   activation_size(L, N)            elements of `acts` saved for backward;
 *   forward(ctx, L, dtype, params, N, x, y, acts)
 *   backward(ctx, L, dtype, params, N, x, acts, dy, dx, grads)
 *
 * `params` and `grads` are whole parameter buffers (plstm_params layout) of
 * `dtype` (PLSTM_F32 or PLSTM_F64); a layer reads/writes only its own views.
 * The input x is N rows of Din features, row-major [N, Din]; N is any number
 * of positions (B·X·Y in the 2D layer). `acts` has activation_size(L, N)
 * elements of `dtype`; forward may get acts = NULL (inference), backward needs
 * the acts its forward wrote. Backward WRITES dx (=; dx may be NULL when not
 * wanted) and ACCUMULATES (+=) into grads. A prefix of NULL or "" declares the
 * bare names.
 *
 * These sub-layers run on the CPU backend (host buffers); matrix products use
 * OpenBLAS, elementwise loops OpenMP with the context's thread count. Another
 * backend gets PLSTM_ERR_UNSUPPORTED. */
#ifndef PLSTM_LAYERS_H
#define PLSTM_LAYERS_H

#include <stddef.h>
#include <stdint.h>
#include "plstm/context.h"
#include "plstm/params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Offset value of a parameter a configuration does not have. */
#define PLSTM_NO_PARAM ((size_t)-1)

/* ======================================================================== */
/* Source / Mark / Direct (§5.1)                                            */
/* ======================================================================== */

typedef enum plstm_gate_kind {
    PLSTM_GATE_SOURCE = 0, /* per head [JT, JK, JV]      */
    PLSTM_GATE_MARK,       /* per head [JO, JQ, JT]      */
    PLSTM_GATE_DIRECT      /* per head [JO, JQ, JK, JV]  */
} plstm_gate_kind;

typedef enum plstm_gate_activation {
    PLSTM_GATE_ACT_LOGSIGMOID = 0, /* sigmoid(pre)^κ  (= exp(κ·logsigmoid(pre))) */
    PLSTM_GATE_ACT_TANH,           /* κ·tanh(pre/κ)                              */
    PLSTM_GATE_ACT_IDENTITY        /* pre                                         */
} plstm_gate_activation;

typedef struct plstm_gate_config {
    plstm_gate_kind kind;
    int input_dim;  /* Din                                                    */
    int num_heads;  /* NH (4·H for the 2D layers' S/T/M, H for Direct)        */
    int sub_heads;  /* S_h: divides NH and Din; default 1 (every head sees x) */
    int JT, JK, JV, JQ, JO; /* J dims; only those of `kind` are used          */
    int weight;     /* 1: pre = bias + W·x;  0 (default): pre = bias          */
    plstm_gate_activation activation; /* default logsigmoid                   */
    double activation_scale;          /* κ, default 1                         */
    double bias_init;                 /* Constant init of the bias, default −5 */
} plstm_gate_config;

/* Defaults of §5.1: all J = 1, sub_heads 1, weight off, logsigmoid, κ = 1,
 * bias −5 (→ sigmoid(−5) = 0.0066928509). */
plstm_gate_config plstm_gate_config_default(plstm_gate_kind kind, int input_dim, int num_heads);

typedef struct plstm_gate {
    plstm_gate_config cfg;
    int P;             /* per-head gate elements (product of the kind's J dims) */
    size_t bias_off;   /* "prefix.bias"   [NH, <J dims>]                    init −5 */
    size_t weight_off; /* "prefix.weight" [NH/S_h, S_h, <J dims>, Din/S_h]  init 0;
                          PLSTM_NO_PARAM without weight */
} plstm_gate;

/* Head h = g·S_h + s reads the input slice x[s·Din/S_h .. (s+1)·Din/S_h). */
plstm_status plstm_gate_declare(plstm_gate *L, const plstm_gate_config *cfg, plstm_params *p,
                                const char *prefix);
plstm_status plstm_gate_init(const plstm_gate *L, void *params, plstm_dtype dtype, uint64_t seed);
/* acts: the pre-activations [N, NH, P] (0 without weight: pre is the bias). */
size_t plstm_gate_activation_size(const plstm_gate *L, size_t N);
/* x [N, Din] -> y [N, NH, <J dims>]. */
plstm_status plstm_gate_forward(plstm_context *ctx, const plstm_gate *L, plstm_dtype dtype,
                                const void *params, size_t N, const void *x, void *y, void *acts);
/* dy [N, NH, <J dims>] -> dx [N, Din] (zeros without weight), grads += dbias, dweight. */
plstm_status plstm_gate_backward(plstm_context *ctx, const plstm_gate *L, plstm_dtype dtype,
                                 const void *params, size_t N, const void *x, const void *acts,
                                 const void *dy, void *dx, void *grads);

/* ======================================================================== */
/* LongRangeTransition (§5.2)                                               */
/* ======================================================================== */

typedef enum plstm_eigenvalue_repr {
    PLSTM_EIG_TANH = 0,   /* λ = tanh(f·e)            (default)  */
    PLSTM_EIG_LOGSIGMOID, /* λ = sigmoid(e)^f                    */
    PLSTM_EIG_EXPEXP      /* λ = exp(−f·exp(−e))                 */
} plstm_eigenvalue_repr;

typedef enum plstm_transition_norm {
    PLSTM_TNORM_EXPONENTIAL = 0,     /* truncated Taylor series of exp(φ(R−Rᵀ)) (default) */
    PLSTM_TNORM_QR,                  /* not implemented: UNSUPPORTED        */
    PLSTM_TNORM_HOUSEHOLDER,         /* not implemented: UNSUPPORTED        */
    PLSTM_TNORM_EIGENVALUE_RESTRICTION,   /* not implemented: UNSUPPORTED   */
    PLSTM_TNORM_SINGULARVALUE_RESTRICTION /* not implemented: UNSUPPORTED   */
} plstm_transition_norm;

typedef struct plstm_transition_config {
    int input_dim, num_heads, sub_heads; /* Din, NH, S_h (default 1)          */
    int JT;                              /* transition_dim                    */
    int weight;                          /* input-dependent (default 1)       */
    plstm_eigenvalue_repr eigenvalue_repr;   /* default tanh                  */
    double eigenvalue_factor;                /* f, default 5                  */
    int symmetric;                           /* O_out = O_inᵀ (default 0)     */
    plstm_transition_norm normalization;     /* default exponential           */
    double orthogonalization_factor;         /* φ, default 1                  */
    int orthogonalization_order;             /* K Taylor terms, default 16    */
} plstm_transition_config;

plstm_transition_config plstm_transition_config_default(int input_dim, int num_heads, int JT);

/* Parameters in the reference's state_dict order. The weights exist even with
 * weight = 0 (as in the reference); they are then unused and get no gradient. */
typedef struct plstm_transition {
    plstm_transition_config cfg;
    size_t inproj_bias_off;    /* "inproj_bias"  [NH, JT, JT]               init I  (JT>1) */
    size_t inproj_weight_off;  /* "inproj_weight" [NH/S_h, S_h, JT, JT, Din/S_h] init 0 (JT>1) */
    size_t eig_bias_off;       /* "eigenvalues_bias" [NH, JT]               init 1  */
    size_t eig_weight_off;     /* "eigenvalues_weight" [NH/S_h, S_h, JT, Din/S_h] init 0 */
    size_t outproj_bias_off;   /* "outproj_bias"  like inproj (JT>1, not symmetric)   */
    size_t outproj_weight_off; /* "outproj_weight" like inproj (JT>1, not symmetric)  */
} plstm_transition;

/* JT > 1 with a normalization other than exponential: PLSTM_ERR_UNSUPPORTED. */
plstm_status plstm_transition_declare(plstm_transition *L, const plstm_transition_config *cfg,
                                      plstm_params *p, const char *prefix);
plstm_status plstm_transition_init(const plstm_transition *L, void *params, plstm_dtype dtype,
                                   uint64_t seed);
/* acts: pre-activations e [R, NH, JT], R_in [R, NH, JT, JT] and (not symmetric)
 * R_out [R, NH, JT, JT], with R = N (weight) or 1 (no weight). */
size_t plstm_transition_activation_size(const plstm_transition *L, size_t N);
/* x [N, Din] -> T [N, NH, JT, JT]  (T[a,c] = Σ_b O_out[a,b] λ[b] O_in[b,c]; JT=1: T = λ). */
plstm_status plstm_transition_forward(plstm_context *ctx, const plstm_transition *L,
                                      plstm_dtype dtype, const void *params, size_t N,
                                      const void *x, void *T, void *acts);
plstm_status plstm_transition_backward(plstm_context *ctx, const plstm_transition *L,
                                       plstm_dtype dtype, const void *params, size_t N,
                                       const void *x, const void *acts, const void *dT, void *dx,
                                       void *grads);

/* The exponential orthogonalization on `count` n×n matrices R (row-major,
 * [count, n, n]): O = Σ_{k<order} A^k/k!, A = φ(R − Rᵀ), evaluated like the
 * reference with A/ν powers and ν^k/k! weights, ν = max(sqrt(Σ(A²+1e-3)), 1).
 * Backward writes dR (=) for the cotangent dO: the exact gradient of the
 * truncated series. Host buffers; F32 or F64. */
plstm_status plstm_exp_orthogonalize(plstm_dtype dtype, int n, size_t count, double factor,
                                     int order, const void *R, void *O);
plstm_status plstm_exp_orthogonalize_backward(plstm_dtype dtype, int n, size_t count,
                                              double factor, int order, const void *R,
                                              const void *dO, void *dR);

/* ======================================================================== */
/* Query / Key / Value (§5.3)                                               */
/* ======================================================================== */

typedef struct plstm_qkv_config {
    int input_dim;  /* Din                                                     */
    int num_heads;  /* NH                                                      */
    int sub_heads;  /* S_h: divides Din; NH | S_h or S_h | NH (default NH)     */
    int DK;         /* features per head (DK, or DV for values)                */
    int J;          /* JQ / JK / JV                                            */
    int bias;       /* default 1 (init zeros)                                  */
    int l2_norm;    /* 1: y / sqrt(mean_J(y²) + 1e-5) over J (default 0)       */
    double init_mup; /* SmallInit σ = mup / sqrt(2.5·Din/S_h) (default 1)      */
} plstm_qkv_config;

/* sub_heads = num_heads (the layers' setting), bias on, no norm, mup 1. */
plstm_qkv_config plstm_qkv_config_default(int input_dim, int num_heads, int DK, int J);

typedef struct plstm_qkv {
    plstm_qkv_config cfg;
    int G;        /* max(1, NH/S_h)                                         */
    int DKs;      /* DK / max(1, S_h/NH): rows per input group              */
    size_t weight_off; /* "weight" [G, DKs, J, S_h, Din/S_h]  SmallInit (fan = Din/S_h) */
    size_t bias_off;   /* "bias"   [NH, DK, J] zeros; PLSTM_NO_PARAM without bias     */
} plstm_qkv;

/* Output block b = g·S_h + s (DKs·J values on the flat NH·DK·J row) is
 * W[g,:,:,s,:] times the input slice s: S_h = NH: block-diagonal per head;
 * S_h < NH: heads g·S_h+s share slice s; S_h > NH: a head concatenates S_h/NH
 * blocks along DK. */
plstm_status plstm_qkv_declare(plstm_qkv *L, const plstm_qkv_config *cfg, plstm_params *p,
                               const char *prefix);
plstm_status plstm_qkv_init(const plstm_qkv *L, void *params, plstm_dtype dtype, uint64_t seed);
/* acts: the un-normalized projection [N, NH, DK, J] with l2_norm, else 0. */
size_t plstm_qkv_activation_size(const plstm_qkv *L, size_t N);
/* x [N, Din] -> y [N, NH, DK, J]. */
plstm_status plstm_qkv_forward(plstm_context *ctx, const plstm_qkv *L, plstm_dtype dtype,
                               const void *params, size_t N, const void *x, void *y, void *acts);
plstm_status plstm_qkv_backward(plstm_context *ctx, const plstm_qkv *L, plstm_dtype dtype,
                                const void *params, size_t N, const void *x, const void *acts,
                                const void *dy, void *dx, void *grads);

/* ======================================================================== */
/* P-mode orientation gate (§4.2)                                           */
/* ======================================================================== */

typedef struct plstm_orientation_gate_config {
    int input_dim, num_heads; /* Din, H                                       */
    double scale;             /* pmode_orientation_scale, default 0.5         */
    double bias_low, bias_high; /* Linspace init over heads, default −2, 2     */
} plstm_orientation_gate_config;

plstm_orientation_gate_config plstm_orientation_gate_config_default(int input_dim, int num_heads);

typedef struct plstm_orientation_gate {
    plstm_orientation_gate_config cfg;
    size_t bias_off;   /* "orientation_bias"   [4, H]       Linspace(−2,2) over h */
    size_t weight_off; /* "orientation_weight" [4, H, Din]  zeros                 */
} plstm_orientation_gate;

/* The prefix is the owning layer's (the keys are "<layer>.orientation_bias"). */
plstm_status plstm_orientation_gate_declare(plstm_orientation_gate *L,
                                            const plstm_orientation_gate_config *cfg,
                                            plstm_params *p, const char *prefix);
/* H = 1 cannot be Linspace-initialized (as in the reference): INVALID_ARGUMENT. */
plstm_status plstm_orientation_gate_init(const plstm_orientation_gate *L, void *params,
                                         plstm_dtype dtype, uint64_t seed);
/* acts: pre-activations [N, 4, H]. */
size_t plstm_orientation_gate_activation_size(const plstm_orientation_gate *L, size_t N);
/* x [N, Din] -> ω [N, 4, H] = sigmoid(bias[o,h] + scale·(Σ_i W[o,h,i] x_i)/Din). */
plstm_status plstm_orientation_gate_forward(plstm_context *ctx, const plstm_orientation_gate *L,
                                            plstm_dtype dtype, const void *params, size_t N,
                                            const void *x, void *omega, void *acts);
plstm_status plstm_orientation_gate_backward(plstm_context *ctx,
                                             const plstm_orientation_gate *L, plstm_dtype dtype,
                                             const void *params, size_t N, const void *x,
                                             const void *acts, const void *domega, void *dx,
                                             void *grads);

/* ======================================================================== */
/* Assembly of the fused 2D core's gates (§4.2, §4.3, §4.5)                 */
/* ======================================================================== */

/* Which flat index i of the 4·H axis (of S/T/M and of the orientation gate)
 * drives head h, orientation o (o: 0 none, 1 flip x, 2 flip y, 3 both):
 *   REFERENCE (Q7, default; needed for reference weights): i = 4h + o. The
 *     orientation gate, flattened o'·H + h', is read at the same flat i, i.e.
 *     ω[o' = i / H, h' = i mod H].
 *   INTENDED: i = o·H + h for S/T/M and ω[o, h] (gate and S/T/M agree). */
typedef enum plstm_head_orientation_map {
    PLSTM_HOMAP_REFERENCE = 0,
    PLSTM_HOMAP_INTENDED = 1
} plstm_head_orientation_map;

static inline int plstm_head_orientation_index(plstm_head_orientation_map map, int H, int h, int o)
{
    return map == PLSTM_HOMAP_INTENDED ? o * H + h : 4 * h + o;
}

typedef enum plstm_chirality {
    PLSTM_CHIRALITY_L = 0, /* T_ru = T_rd, T_dl absent (default) */
    PLSTM_CHIRALITY_R = 1  /* T_dl = T_rd, T_ru absent           */
} plstm_chirality;

/* Sizes of an assembly. Sub-layer outputs have N = B·X·Y rows ((b,x,y)
 * row-major) and a 4·H head axis:
 *   S [N, 4H, JT, JK, JV]   T [N, 4H, JT, JT]   M [N, 4H, JO, JQ, JT]
 *   ω [N, 4, H]             (P mode)
 * Core gates (plstm_core2d_fused4 layout, heads in the batch, b·H + h):
 *   S_r, S_d [B·H, 4, Xp, Yp, JT, JK, JV]
 *   T_*      [B·H, 4, Xp, Yp, JT, JT]
 *   M_l, M_u [B·H, 4, Xp, Yp, JO, JQ, JT]
 * with the padded grid Xp ≥ X, Yp ≥ Y; positions x ≥ X or y ≥ Y are set to 0
 * (the reference pads after computing the gates, so S_d = T_du = 0 there). */
typedef struct plstm_gates2d_desc {
    plstm_dtype dtype;
    int B, X, Y, Xp, Yp, H;
    int JT, JK, JV, JQ, JO;
    plstm_head_orientation_map map;
} plstm_gates2d_desc;

/* Core gate buffers (forward outputs, or their gradients in backward). */
typedef struct plstm_gates2d {
    void *S_r, *S_d;
    void *T_rl, *T_du, *T_dl, *T_ru;
    void *M_l, *M_u;
} plstm_gates2d;

/* P mode: S_r = ω·S, S_d = 1 − S_r, T_rl = ω·T, T_du = 1 − T_rl (elementwise),
 * M_l = M. T_ru (= T_rl), T_dl (= T_du) and M_u (= M_l) are written when
 * non-NULL; they may also be NULL and the caller passes T_rl/T_du/M_l for them
 * to the core. */
plstm_status plstm_pmode_gates_forward(plstm_context *ctx, const plstm_gates2d_desc *d,
                                       const void *omega, const void *S, const void *T,
                                       const void *M, const plstm_gates2d *out);
/* dg: cotangents of the core gates (any may be NULL = 0; dT_ru adds to dT_rl,
 * dT_dl to dT_du, dM_u to dM_l). Writes (=) domega [N,4,H], dS, dT, dM
 * (sub-layer layouts; any may be NULL). Needs the forward's omega, S, T. */
plstm_status plstm_pmode_gates_backward(plstm_context *ctx, const plstm_gates2d_desc *d,
                                        const void *omega, const void *S, const void *T,
                                        const plstm_gates2d *dg, void *domega, void *dS,
                                        void *dT, void *dM);

/* D mode: outputs of the seven sub-layers (each with 4H heads). */
typedef struct plstm_dmode_gates {
    void *S_r, *S_d;        /* source_r, source_d          [N, 4H, JT, JK, JV] */
    void *T_r, *T_d, *T_rd; /* transition_r, _d, _rd       [N, 4H, JT, JT]     */
    void *M_l, *M_u;        /* mark_l, mark_u              [N, 4H, JO, JQ, JT] */
} plstm_dmode_gates;

/* T_rl = T_r, T_du = T_d; L: T_ru = T_rd and T_dl (pass NULL to the core) is
 * zero-filled if non-NULL; R: T_dl = T_rd, T_ru likewise. */
plstm_status plstm_dmode_gates_forward(plstm_context *ctx, const plstm_gates2d_desc *d,
                                       plstm_chirality chirality, const plstm_dmode_gates *in,
                                       const plstm_gates2d *out);
/* Gathers core-gate cotangents back (=) to the sub-layer outputs' gradients;
 * NULL cotangents count as 0, NULL outputs are skipped. */
plstm_status plstm_dmode_gates_backward(plstm_context *ctx, const plstm_gates2d_desc *d,
                                        plstm_chirality chirality, const plstm_gates2d *dg,
                                        const plstm_dmode_gates *dsub);

/* Heads into the batch for Q/K/V/D: src [B·X·Y, H, P] -> dst [B·H, Xp, Yp, P]
 * (padding zero-filled), and back (dst -> src, padding ignored). */
plstm_status plstm_heads_to_grid(plstm_context *ctx, plstm_dtype dtype, int B, int X, int Y,
                                 int Xp, int Yp, int H, size_t P, const void *src, void *dst);
plstm_status plstm_grid_to_heads(plstm_context *ctx, plstm_dtype dtype, int B, int X, int Y,
                                 int Xp, int Yp, int H, size_t P, const void *src, void *dst);

#ifdef __cplusplus
}
#endif
#endif
