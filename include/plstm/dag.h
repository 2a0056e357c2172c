/* pLSTM on general directed acyclic graphs (plstm-math.md §1, §6.1, §6.2).
 *
 * A plstm_dag holds one DAG, or a batch of disjoint DAGs processed in one
 * call, plus everything precomputed from it: in/out edge lists, the line
 * graph and the topological levels. It lives in host memory and is
 * read-only after creation, so one graph object serves any number of calls
 * (and threads).
 *
 * Indices. Nodes and edges of a batch are numbered globally in input order:
 * graph g's nodes are node_off[g] .. node_off[g+1]-1 and its edges
 * edge_off[g] .. edge_off[g+1]-1, where the offsets are the prefix sums of
 * node_counts / edge_counts. Edge e goes tail(e) -> head(e).
 *
 * Line graph. One arc e' -> e for every pair with head(e') == tail(e). Arcs
 * are numbered grouped by their target edge e (ascending e); inside a group
 * by the source edge e' in ascending edge index (= the order of in(tail(e))).
 * So the arcs into edge e are arc_off[e] .. arc_off[e+1]-1
 * (plstm_dag_arc_range), and a batch's arcs are grouped by graph too.
 *
 * Levels. level(e) = 0 if tail(e) has no incoming edge, else
 * 1 + max level of the edges into tail(e) (= length of the longest path
 * ending at tail(e)). Edges of one level depend only on lower levels and are
 * computed in parallel; levels are global over the batch.
 *
 * Validation (PLSTM_ERR_GRAPH with a message naming graph, edge and nodes):
 * node index out of range, self-loop, duplicate edge (the same tail -> head
 * twice; rejected because the reference graphs cannot express it and it is
 * almost always an input error), cycle (an edge on the cycle is named). */
#ifndef PLSTM_DAG_H
#define PLSTM_DAG_H

#include <stdint.h>
#include "plstm/context.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct plstm_dag plstm_dag;

/* One graph: `edges` is [num_edges][2] (tail, head) in 0..num_nodes-1. */
plstm_status plstm_dag_create(plstm_dag **dag, int64_t num_nodes, int64_t num_edges,
                              const int64_t *edges);

/* A batch of disjoint graphs. `edges` is the concatenation of every graph's
 * [edge_counts[g]][2] list, with node indices LOCAL to graph g. */
plstm_status plstm_dag_create_batch(plstm_dag **dag, int64_t num_graphs,
                                    const int64_t *node_counts, const int64_t *edge_counts,
                                    const int64_t *edges);

void plstm_dag_destroy(plstm_dag *dag);

int64_t plstm_dag_num_graphs(const plstm_dag *dag);
int64_t plstm_dag_num_nodes(const plstm_dag *dag);
int64_t plstm_dag_num_edges(const plstm_dag *dag);
int64_t plstm_dag_num_arcs(const plstm_dag *dag);  /* line-graph arcs A       */
int64_t plstm_dag_num_levels(const plstm_dag *dag);

/* Global index ranges of graph g: nodes [*node0, *node0 + count), etc. Any
 * output pointer may be NULL. */
plstm_status plstm_dag_graph_range(const plstm_dag *dag, int64_t g, int64_t *node0,
                                   int64_t *num_nodes, int64_t *edge0, int64_t *num_edges,
                                   int64_t *arc0, int64_t *num_arcs);
/* Edge e: tail, head (global node indices) and level. */
plstm_status plstm_dag_edge(const plstm_dag *dag, int64_t e, int64_t *tail, int64_t *head,
                            int64_t *level);
/* Arc a of the line graph: from edge e' (into the node) to edge e (out of it). */
plstm_status plstm_dag_arc(const plstm_dag *dag, int64_t a, int64_t *from_edge,
                           int64_t *to_edge);
/* Arcs into edge e are [*first, *first + *count). */
plstm_status plstm_dag_arc_range(const plstm_dag *dag, int64_t e, int64_t *first,
                                 int64_t *count);

/* ---- general J-dimensional core on the DAG (§1) ------------------------
 *
 * Per batch entry b (batch·heads, all sharing the graph), row-major:
 *
 *   Q [B,N,DK,JQ]  K [B,N,DK,JK]  V [B,N,DV,JV]
 *   S [B,E,JT,JK,JV]   source of edge e, written at its tail
 *   T [B,A,JT,JT]      transition of arc e'->e (row = e, column = e')
 *   M [B,E,JO,JQ,JT]   mark of edge e, read at its head
 *   D [B,N,JO,JQ,JK,JV]
 *   Y [B,N,DV,JO]
 *
 *   C_e = Σ_{arcs e'->e} T C_{e'} + S_e ⋄ (k_tail v_tail)                  (1)
 *   y_n = scale·[ Σ_{e' into n} q_n ⋆ M_e' ⋆ C_e' + q_n ⋆ D_n ⋆ (k_n v_n) ]  (2)
 *
 * S and M may be NULL when E = 0, T when A = 0. The backward writes (not
 * accumulates) every non-NULL gradient.
 *
 * Memory: the forward keeps only the states alive at once (a few diagonals
 * of a grid); the backward recomputes and keeps all E states and their
 * gradients per batch entry, in chunks of the batch that fit max_workspace. */
typedef struct plstm_dag_core_desc {
    plstm_dtype dtype; /* PLSTM_F32 or PLSTM_F64 */
    int B;
    int DK, DV, JQ, JK, JV, JT, JO;
    double scale;
    /* SEQUENTIAL: one batch entry per thread, edges in topological order.
     * PARALLEL: level by level, threads over (batch × edges of a level).
     * AUTO: SEQUENTIAL when B >= 2·threads, else PARALLEL; with all J = 1
     * on graphs of at most 64 nodes, where cheaper, a dense per-graph form
     * (each graph as masked attention, CPU). Same results up to rounding. */
    plstm_algo algo;
    /* Bytes for the edge-state workspace (E states per batch entry, twice in
     * the backward); the batch is processed in chunks that fit. 0 = 256 MiB. */
    size_t max_workspace;
} plstm_dag_core_desc;

typedef struct plstm_dag_core_inputs {
    const void *Q, *K, *V, *S, *T, *M, *D;
} plstm_dag_core_inputs;

typedef struct plstm_dag_core_grads {
    void *Q, *K, *V, *S, *T, *M, *D;
} plstm_dag_core_grads;

plstm_status plstm_dag_core_forward(plstm_context *ctx, const plstm_dag_core_desc *desc,
                                    const plstm_dag *dag, const plstm_dag_core_inputs *in,
                                    void *Y);

/* dY [B,N,DV,JO] is the cotangent of Y. */
plstm_status plstm_dag_core_backward(plstm_context *ctx, const plstm_dag_core_desc *desc,
                                     const plstm_dag *dag, const plstm_dag_core_inputs *in,
                                     const void *dY, const plstm_dag_core_grads *grad);

/* ---- scalar-gate graph form `plstm_graph` (§6.2, edge variant) ---------
 *
 *   q,k [H,N,K]  v [H,N,V]  s,m [H,E]  t [H,A]  d [H,N]   ->  y [H,N,V]
 *
 *   C_e = Σ_{arcs e'->e} t C_e' + s_e k_tail v_tailᵀ
 *   y_n = Σ_{e into n} m_e q_nᵀ C_e + d_n (q_n·k_n) v_n      (no QK scale)
 *
 * s and m are indexed by edge in this object's (input) order, t by arc in
 * the documented arc order (the reference indexes s, m by the edge's
 * topological position instead; a caller porting its tensors permutes). This
 * is the general core with all J = 1 and scale 1 (same memory layout). */
typedef struct plstm_graph_desc {
    plstm_dtype dtype;
    int H, K, V;
    plstm_algo algo;
    size_t max_workspace; /* as in plstm_dag_core_desc */
} plstm_graph_desc;

typedef struct plstm_graph_inputs {
    const void *q, *k, *v, *s, *t, *m, *d;
} plstm_graph_inputs;

typedef struct plstm_graph_grads {
    void *q, *k, *v, *s, *t, *m, *d;
} plstm_graph_grads;

plstm_status plstm_graph_forward(plstm_context *ctx, const plstm_graph_desc *desc,
                                 const plstm_dag *dag, const plstm_graph_inputs *in, void *y);

plstm_status plstm_graph_backward(plstm_context *ctx, const plstm_graph_desc *desc,
                                  const plstm_dag *dag, const plstm_graph_inputs *in,
                                  const void *dy, const plstm_graph_grads *grad);

#ifdef __cplusplus
}
#endif
#endif
