/* The 2D pLSTM core (plstm-math.md §3): one grid per batch entry (batch and
 * heads flattened into B), states on the edges of the grid's DAG.
 *
 * Directions: +x is "right", +y is "down". Node (x,y) reads the state coming
 * from the left (x-1,y) and from the top (x,y-1), and writes a state to the
 * right and one down. All tensors are dense, row-major, batch first, of the
 * descriptor's dtype (F32 or F64):
 *
 *   Q    [B,X,Y,DK,JQ]      K [B,X,Y,DK,JK]     V [B,X,Y,DV,JV]
 *   S_r, S_d                [B,X,Y,JT,JK,JV]
 *   T_rl, T_du, T_dl, T_ru  [B,X,Y,JT,JT]        (JT out, JT in); T_dl and/or
 *                                                T_ru may be NULL (absent = 0)
 *   M_l, M_u                [B,X,Y,JO,JQ,JT]
 *   D                       [B,X,Y,JO,JQ,JK,JV]
 *   C0_left  [B,Y,DK,DV,JT] state entering column x=0 from the left, per row y
 *   C0_top   [B,X,DK,DV,JT] state entering row y=0 from the top, per column x
 *   Y        [B,X,Y,DV,JO]
 *   C_right  [B,Y,DK,DV,JT] right-border states C^r_{X-1,y}
 *   C_bottom [B,X,DK,DV,JT] bottom-border states C^d_{x,Y-1}
 *
 * Optional tensors are NULL when absent (initial states = 0; border outputs
 * not wanted). Backward writes (does not accumulate) every non-NULL gradient. */
#ifndef PLSTM_CORE2D_H
#define PLSTM_CORE2D_H

#include "plstm/context.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct plstm_core2d_desc {
    plstm_dtype dtype; /* PLSTM_F32 or PLSTM_F64 */
    int B, X, Y;
    int DK, DV, JQ, JK, JV, JT, JO;
    double scale;      /* QK scale on mark and direct terms, usually DK^-1/2 */
    plstm_algo algo;
    int tile;          /* tile side of the parallel form; 0 = backend's choice */
} plstm_core2d_desc;

typedef struct plstm_core2d_inputs {
    const void *Q, *K, *V;
    const void *S_r, *S_d;
    const void *T_rl, *T_du, *T_dl, *T_ru;
    const void *M_l, *M_u;
    const void *D;
    const void *C0_left, *C0_top;
} plstm_core2d_inputs;

typedef struct plstm_core2d_outputs {
    void *Y;
    void *C_right, *C_bottom;
} plstm_core2d_outputs;

/* Gradients: same names and shapes as the inputs. */
typedef struct plstm_core2d_grads {
    void *Q, *K, *V;
    void *S_r, *S_d;
    void *T_rl, *T_du, *T_dl, *T_ru;
    void *M_l, *M_u;
    void *D;
    void *C0_left, *C0_top;
} plstm_core2d_grads;

/* Cotangents of the outputs; C_right/C_bottom may be NULL (= 0). */
typedef struct plstm_core2d_cotangents {
    const void *Y;
    const void *C_right, *C_bottom;
} plstm_core2d_cotangents;

plstm_status plstm_core2d_forward(plstm_context *ctx, const plstm_core2d_desc *desc,
                                  const plstm_core2d_inputs *in, const plstm_core2d_outputs *out);

plstm_status plstm_core2d_backward(plstm_context *ctx, const plstm_core2d_desc *desc,
                                   const plstm_core2d_inputs *in,
                                   const plstm_core2d_cotangents *dout,
                                   const plstm_core2d_grads *grad);

/* Four-orientation fused form (§3.7): orientation o in {0: none, 1: flip x,
 * 2: flip y, 3: flip x and y}. S_*, T_*, M_* carry an orientation axis
 * [B,4,X,Y,...]; Q, K, V, D do not. Orientation o runs the recurrence on the
 * flipped grid with its own S/T/M; results are flipped back and summed; D is
 * added once. Initial/border states are not part of this form (C0_*, C_* must
 * be NULL). */
plstm_status plstm_core2d_fused4_forward(plstm_context *ctx, const plstm_core2d_desc *desc,
                                         const plstm_core2d_inputs *in,
                                         const plstm_core2d_outputs *out);

plstm_status plstm_core2d_fused4_backward(plstm_context *ctx, const plstm_core2d_desc *desc,
                                          const plstm_core2d_inputs *in,
                                          const plstm_core2d_cotangents *dout,
                                          const plstm_core2d_grads *grad);

#ifdef __cplusplus
}
#endif
#endif
