/* Shared machinery of the fused and non-fused 2D layers (plstm2d_common.c):
 * sizes, the buffer layout of everything before the core (conv, sub-layers,
 * gate assembly into the fused-core layout) and after it (multi-head RMSNorm,
 * out projection, passthrough), and their forward/backward. */
#ifndef PLSTM_LAYERS_PLSTM2D_INTERNAL_H
#define PLSTM_LAYERS_PLSTM2D_INTERNAL_H

#include "plstm/core2d.h"
#include "plstm/layer2d.h"

#define L2D_ABSENT ((size_t)-1)
#define L2D_MAX_SUBS 11

/* Sizes of one call. */
typedef struct l2d_dims {
    plstm_dtype dtype;
    size_t esz;
    int B, X, Y, H, Din, DK, DV, JQ, JK, JV, JT, JO;
    size_t N;                       /* B·X·Y positions                     */
    size_t G;                       /* B·H·X·Y grid nodes (heads in batch)  */
    size_t XY;
    size_t PQ, PK, PV, PD;          /* per-node sizes of Q, K, V, D         */
    size_t PS, PT, PM;              /* per-node sizes of S, T, M            */
    size_t Dh, Dy, Dout;            /* DV·JO, H·Dh, output features         */
} l2d_dims;

typedef enum { L2D_SUB_GATE, L2D_SUB_TRANS, L2D_SUB_QKV, L2D_SUB_OGATE } l2d_subkind;

/* Roles of the sub-layers in the `sub` list. */
enum {
    L2D_R_OGATE, L2D_R_S, L2D_R_T, L2D_R_M,                      /* P */
    L2D_R_SR, L2D_R_SD, L2D_R_TR, L2D_R_TD, L2D_R_TRD, L2D_R_ML, L2D_R_MU, /* D */
    L2D_R_D, L2D_R_Q, L2D_R_K, L2D_R_V, L2D_R_N
};

typedef struct l2d_sub {
    l2d_subkind kind;
    const void *layer;
    int role;
    char part;       /* input selector letter of convolution_inputs          */
    size_t width;    /* output elements per position                          */
    size_t nacts;    /* activation elements                                   */
    int has_dx;      /* the output depends on the input                       */
    size_t out, acts; /* offsets (elements) in the activation buffer          */
} l2d_sub;

/* Core gates: S_r S_d T_rl T_du T_dl T_ru M_l M_u. */
enum { L2D_G_SR, L2D_G_SD, L2D_G_TRL, L2D_G_TDU, L2D_G_TDL, L2D_G_TRU, L2D_G_ML, L2D_G_MU,
       L2D_G_N };
/* Heads-in-batch Q K V D. */
enum { L2D_Q, L2D_K, L2D_V, L2D_D, L2D_QKVD_N };

/* Layout of the part before the core. Offsets in elements of one buffer. */
typedef struct l2d_front {
    l2d_dims d;
    plstm_head_orientation_map map; /* of the gate assembly                          */
    int nsub;
    l2d_sub sub[L2D_MAX_SUBS];
    int role_index[L2D_R_N];     /* index in sub[] or -1                            */
    size_t c;                    /* conv output [N, Din] or ABSENT                  */
    size_t grid[L2D_QKVD_N];     /* [B·H, X, Y, P]                                 */
    size_t gate[L2D_G_N];        /* [B·H, 4, X, Y, P]; ABSENT when aliased/absent   */
    size_t size;                 /* elements used                                   */
} l2d_front;

plstm_status l2d_make_dims(const plstm_layer2d *L, plstm_dtype dtype, int B, int X, int Y,
                           l2d_dims *d);
/* Front layout starting at element offset `base`. */
void l2d_front_layout(const plstm_layer2d *L, const l2d_dims *d, plstm_head_orientation_map map,
                      size_t base, l2d_front *f);

/* Core descriptor with heads in the batch. */
plstm_core2d_desc l2d_core_desc(const plstm_layer2d *L, const l2d_dims *d);
/* Core gate pointers into buf (P mode: T_dl = T_du, T_ru = T_rl, M_u = M_l). */
void l2d_core_gates(const plstm_layer2d *L, const l2d_front *f, void *buf, const void **g);

/* conv, sub-layers, heads to the grid, gate assembly: fills the front of acts. */
plstm_status l2d_front_forward(plstm_context *ctx, const plstm_layer2d *L, const l2d_front *f,
                               const void *params, const void *x, void *acts);

/* Gradient buffers of the front: dgrid/dgate in the same layout as the
 * front's grid/gate, written by the core backward (P mode: all eight gates
 * separately; D mode: all but the chirality's absent one). */
typedef struct l2d_dfront {
    size_t grid[L2D_QKVD_N];
    size_t gate[L2D_G_N];
    size_t size;
} l2d_dfront;
void l2d_dfront_layout(const plstm_layer2d *L, const l2d_front *f, size_t base, l2d_dfront *df);
/* Core gradient pointers into dbuf. */
void l2d_core_dgates(const l2d_dfront *df, const l2d_dims *d, void *dbuf, void **g);

/* From the core's gradients (in dbuf) back through the gate assembly, the
 * sub-layers and the conv: accumulates the parameter gradients and ADDS into
 * dx (may be NULL). `work` has l2d_front_backward_work(f) elements. */
size_t l2d_front_backward_work(const l2d_front *f);
plstm_status l2d_front_backward(plstm_context *ctx, const plstm_layer2d *L, const l2d_front *f,
                                const void *params, const void *x, const void *acts,
                                const l2d_dfront *df, void *dbuf, void *work, void *dx,
                                void *grads);

/* ---- after the core (nn.h operators) ---- */

/* Multi-head RMSNorm of yh [N, H·Dh] (γ = mhnorm.scale [H, Dh]) into z;
 * without mhnorm z = yh (copied unless the same buffer). */
plstm_status l2d_norm_forward(plstm_context *ctx, const plstm_layer2d *L, const l2d_dims *d,
                              const void *params, const void *yh, void *z);
/* dyh = (dz/dyh)ᵀ dz; dγ += ... */
plstm_status l2d_norm_backward(plstm_context *ctx, const plstm_layer2d *L, const l2d_dims *d,
                               const void *params, const void *yh, const void *dz, void *dyh,
                               void *grads);

/* y [N, Dout] = z [N, Dy] · Wᵀ (+ b) (+ s ⊙ x); `tmp` has N·Din elements. */
plstm_status l2d_out_forward(plstm_context *ctx, const plstm_layer2d *L, const l2d_dims *d,
                             const void *params, const void *z, const void *x, void *y,
                             void *tmp);
/* dz = dy·W (or dy); dW, db, ds += ...; dx += dy ⊙ s (passthrough). */
plstm_status l2d_out_backward(plstm_context *ctx, const plstm_layer2d *L, const l2d_dims *d,
                              const void *params, const void *z, const void *x, const void *dy,
                              void *dz, void *dx, void *grads, void *tmp);

void l2d_zero(const l2d_dims *d, void *buf, size_t n);
int l2d_threads(const plstm_context *ctx);
plstm_status l2d_check_call(plstm_context *ctx, const plstm_layer2d *L, plstm_dtype dtype,
                            const void *params, int B, int X, int Y, const char *what);

static inline void *l2d_at(void *buf, const l2d_dims *d, size_t off)
{
    return off == L2D_ABSENT ? NULL : (char *)buf + off * d->esz;
}
static inline const void *l2d_cat(const void *buf, const l2d_dims *d, size_t off)
{
    return off == L2D_ABSENT ? NULL : (const char *)buf + off * d->esz;
}

#endif
