/* The 1D pLSTM core (plstm-math.md §2): a chain 0 -> 1 -> ... -> L-1 per
 * batch entry (batch and heads flattened into B). Row-major, batch first:
 *
 *   Q [B,L,DK,JQ]  K [B,L,DK,JK]  V [B,L,DV,JV]
 *   S [B,L,JT,JK,JV]  T [B,L,JT,JT]  M [B,L,JO,JQ,JT]  D [B,L,JO,JQ,JK,JV]
 *   C0 [B,DK,DV,JT] (optional initial state, NULL = 0)
 *   Y  [B,L,DV,JO]   C_last [B,DK,DV,JT] (optional)
 *
 * Backward writes every non-NULL gradient, including dC0 (the reference's
 * quirk Q1, dropping inter-chunk gradients, is not reproduced). */
#ifndef PLSTM_CORE1D_H
#define PLSTM_CORE1D_H

#include "plstm/context.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct plstm_core1d_desc {
    plstm_dtype dtype; /* PLSTM_F32 or PLSTM_F64 */
    int B, L;
    int DK, DV, JQ, JK, JV, JT, JO;
    double scale;
    plstm_algo algo;
    int chunk;         /* chunk length of the parallel form; 0 = backend's choice */
} plstm_core1d_desc;

typedef struct plstm_core1d_inputs {
    const void *Q, *K, *V, *S, *T, *M, *D, *C0;
} plstm_core1d_inputs;

typedef struct plstm_core1d_outputs {
    void *Y, *C_last;
} plstm_core1d_outputs;

typedef struct plstm_core1d_grads {
    void *Q, *K, *V, *S, *T, *M, *D, *C0;
} plstm_core1d_grads;

typedef struct plstm_core1d_cotangents {
    const void *Y, *C_last; /* C_last may be NULL (= 0) */
} plstm_core1d_cotangents;

plstm_status plstm_core1d_forward(plstm_context *ctx, const plstm_core1d_desc *desc,
                                  const plstm_core1d_inputs *in, const plstm_core1d_outputs *out);

plstm_status plstm_core1d_backward(plstm_context *ctx, const plstm_core1d_desc *desc,
                                   const plstm_core1d_inputs *in,
                                   const plstm_core1d_cotangents *dout,
                                   const plstm_core1d_grads *grad);

#ifdef __cplusplus
}
#endif
#endif
