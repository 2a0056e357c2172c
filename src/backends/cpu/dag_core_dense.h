/* The scalar-gate DAG core (all J = 1) on batches of small graphs in its
 * dense per-graph form (dag_core_dense.c).
 *
 * With scalar gates every edge state is a combination of the source terms
 * k_u v_uᵀ of the graph's nodes: C_e = Σ_u α_e(u) k_u v_uᵀ with
 *   α_e = s_e δ_tail(e) + Σ_{arcs e'->e} t α_e'        (vectors over the graph's nodes)
 * so y_i = scale Σ_j β_ij (q_i·k_j) v_j with β_i = Σ_{e into i} m_e α_e + d_i δ_i:
 * a masked attention per graph. For graphs of a few dozen nodes this costs
 * n²(DK+DV) per graph instead of (E + A)·DK·DV, needs no stored states, and
 * its backward is a reverse pass over the α vectors. */
#ifndef PLSTM_DAG_CORE_DENSE_H
#define PLSTM_DAG_CORE_DENSE_H

#include "ops/backend.h"

/* 1 when the dense form serves this call: AUTO, all J = 1, every graph
 * small enough, and cheaper than the state form by a rough flop count. */
int cpu_dag_dense_applies(const plstm_dag_core_desc *d, const plstm_dag *g);

plstm_status cpu_dag_dense_forward(plstm_context *ctx, const plstm_dag_core_desc *d,
                                   const plstm_dag *g, const plstm_dag_core_inputs *in, void *Y);
plstm_status cpu_dag_dense_backward(plstm_context *ctx, const plstm_dag_core_desc *d,
                                    const plstm_dag *g, const plstm_dag_core_inputs *in,
                                    const void *dY, const plstm_dag_core_grads *grad);

#endif
