/* Shared between the 1D core's forms (core1d.c dispatches, core1d_seq.c is
 * the defining recurrence, core1d_chunk.c the chunkwise-parallel form).
 *
 * Internally a state is stored [JT][DK][DV] (t outermost): every transition,
 * source write and mark read is then a loop over contiguous DK×DV or DV
 * elements, or a GEMM. The public layout [DK,DV,JT] is converted only at the
 * borders (C0, C_last and their gradients). */
#ifndef PLSTM_CPU_CORE1D_COMMON_H
#define PLSTM_CPU_CORE1D_COMMON_H

#include "backends/cpu/cpu_ops.h"

#include <stddef.h>

typedef struct c1_dims {
    int B, L, DK, DV, JQ, JK, JV, JT, JO;
    size_t N, SZ;                          /* DK·DV, one state DK·DV·JT */
    size_t nq, nk, nv, ns, nt, nm, nd, ny; /* elements per position     */
    double scale;
    int j1;                                /* all J = 1: scalar-gate kernels */
} c1_dims;

c1_dims c1_make_dims(const plstm_core1d_desc *d);
/* OpenMP team size for a loop over the B batch entries. */
int c1_threads(const plstm_context *ctx, const c1_dims *m);


plstm_status cpu_core1d_seq_forward(plstm_context *, const plstm_core1d_desc *,
                                    const plstm_core1d_inputs *, const plstm_core1d_outputs *);
plstm_status cpu_core1d_seq_backward(plstm_context *, const plstm_core1d_desc *,
                                     const plstm_core1d_inputs *, const plstm_core1d_cotangents *,
                                     const plstm_core1d_grads *);
/* chunk = chunk length, >= 1 (the dispatcher resolves desc->chunk == 0). */
plstm_status cpu_core1d_chunk_forward(plstm_context *, const plstm_core1d_desc *, int chunk,
                                      const plstm_core1d_inputs *, const plstm_core1d_outputs *);
plstm_status cpu_core1d_chunk_backward(plstm_context *, const plstm_core1d_desc *, int chunk,
                                       const plstm_core1d_inputs *,
                                       const plstm_core1d_cotangents *,
                                       const plstm_core1d_grads *);

#endif
