/* CPU implementations of the core operators (one file per form). */
#ifndef PLSTM_CPU_OPS_H
#define PLSTM_CPU_OPS_H

#include "ops/backend.h"

/* 1D: core1d.c dispatches between the sequential recurrence and the chunked form. */
plstm_status cpu_core1d_forward(plstm_context *, const plstm_core1d_desc *,
                                const plstm_core1d_inputs *, const plstm_core1d_outputs *);
plstm_status cpu_core1d_backward(plstm_context *, const plstm_core1d_desc *,
                                 const plstm_core1d_inputs *, const plstm_core1d_cotangents *,
                                 const plstm_core1d_grads *);

/* 2D: core2d.c dispatches; core2d_seq.c is the defining recurrence,
 * core2d_tiled.c the tiled parallel form. */
plstm_status cpu_core2d_forward(plstm_context *, const plstm_core2d_desc *,
                                const plstm_core2d_inputs *, const plstm_core2d_outputs *);
plstm_status cpu_core2d_backward(plstm_context *, const plstm_core2d_desc *,
                                 const plstm_core2d_inputs *, const plstm_core2d_cotangents *,
                                 const plstm_core2d_grads *);
plstm_status cpu_core2d_seq_forward(plstm_context *, const plstm_core2d_desc *,
                                    const plstm_core2d_inputs *, const plstm_core2d_outputs *);
plstm_status cpu_core2d_seq_backward(plstm_context *, const plstm_core2d_desc *,
                                     const plstm_core2d_inputs *,
                                     const plstm_core2d_cotangents *, const plstm_core2d_grads *);
plstm_status cpu_core2d_tiled_forward(plstm_context *, const plstm_core2d_desc *,
                                      const plstm_core2d_inputs *, const plstm_core2d_outputs *);
plstm_status cpu_core2d_tiled_backward(plstm_context *, const plstm_core2d_desc *,
                                       const plstm_core2d_inputs *,
                                       const plstm_core2d_cotangents *,
                                       const plstm_core2d_grads *);
plstm_status cpu_core2d_fused4_forward(plstm_context *, const plstm_core2d_desc *,
                                       const plstm_core2d_inputs *, const plstm_core2d_outputs *);
plstm_status cpu_core2d_fused4_backward(plstm_context *, const plstm_core2d_desc *,
                                        const plstm_core2d_inputs *,
                                        const plstm_core2d_cotangents *,
                                        const plstm_core2d_grads *);

/* General DAG core, level-parallel or per-entry topological (dag_core.c). */
plstm_status cpu_dag_core_forward(plstm_context *, const plstm_dag_core_desc *, const plstm_dag *,
                                  const plstm_dag_core_inputs *, void *);
plstm_status cpu_dag_core_backward(plstm_context *, const plstm_dag_core_desc *,
                                   const plstm_dag *, const plstm_dag_core_inputs *, const void *,
                                   const plstm_dag_core_grads *);

#endif
