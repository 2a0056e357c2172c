/* Graph preparation for the graph pLSTM layers (plstm-math.md §6.1-§6.4).
 *
 * A graph is N nodes 0..N-1 and an edge list; "original edge index" i is the
 * position of an edge in that list. Preparation:
 *
 *   dagify    every edge {u,v} is oriented from the lower to the higher node
 *             index (undirected and directed inputs alike; a directed input
 *             is first checked for cycles).
 *   reverse   (optional) every DAG edge turned around, as the reference's
 *             PreparedGraph.reverse (revert_dag, then prepared again).
 *   line graph  one arc e' -> e whenever head(e') == tail(e).
 *   D mode    the line graph pruned to a multitree exactly as the
 *             reference's prune_dag_to_multitree: nodes in topological
 *             order, each node's predecessors in topological order, an arc
 *             p -> cur is dropped if an ancestor of p is already an ancestor
 *             of cur (earlier predecessors win). P mode keeps every arc.
 *
 * Orders. The reference derives its orders from networkx insertion orders;
 * they are reproduced here exactly, given that the input edge list is in the
 * order networkx's graph.edges yields (the reference test files list their
 * edges that way). The DAG's edges are inserted in input order, so
 * successors(u) / predecessors(v) are in input order; dag.edges is grouped
 * by tail in node order; topological orders are networkx topological_sort
 * (Kahn's algorithm, FIFO, starting from the zero in-degree nodes in node
 * order); line-graph arcs are enumerated as networkx lists them.
 *
 * Node and edge indices in every output are the caller's (node n, original
 * edge i), also for a reversed graph; the reference renumbers both there
 * (its node index is the position in the reversed node order, its edge index
 * the position in revDAG.edges). The reference's PreparedGraph.reverse
 * always prepares in its default mode D; here opts->mode applies.
 *
 * Errors (PLSTM_ERR_GRAPH, the message names the edge): node index out of
 * range, self-loop, duplicate edge ({u,v} twice for an undirected input,
 * (u,v) twice for a directed one), a cycle in a directed input. */
#ifndef PLSTM_GRAPH_PREP_H
#define PLSTM_GRAPH_PREP_H

#include <stdint.h>
#include "plstm/dag.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum plstm_graph_mode {
    PLSTM_GRAPH_MODE_P = 0, /* keep the full line graph                     */
    PLSTM_GRAPH_MODE_D = 1  /* prune the line graph to a multitree          */
} plstm_graph_mode;

typedef struct plstm_graph_prep_opts {
    int directed;          /* 1: edges are (tail, head), a cycle is an error */
    plstm_graph_mode mode;
    int reverse;           /* 1: prepare the reversed DAG                    */
} plstm_graph_prep_opts;

/* A prepared graph; every array is owned and read-only. E = num_edges (the
 * DAG has one edge per input edge), A = num_arcs (after pruning). */
typedef struct plstm_prepared_graph {
    int64_t num_nodes, num_edges, num_arcs;
    plstm_graph_mode mode;
    int reversed;
    /* Per original edge i. */
    int64_t *tail, *head; /* [E] oriented DAG edge                              */
    int64_t *in_slot;     /* [E] index of tail among head's predecessors
                           *     (reference incidence_backward, "Bk")          */
    int64_t *out_slot;    /* [E] index of head among tail's successors
                           *     (reference incidence_forward, "F")            */
    int64_t *topo_pos;    /* [E] position in topo_order (reference ldag_idx_map) */
    /* Per node. */
    int64_t *indegree, *outdegree; /* [N]                                       */
    int64_t max_degree;   /* max over nodes of in- and out-degree              */
    /* Orders, as original edge indices. */
    int64_t *dag_order;   /* [E] the DAG's edges in networkx dag.edges order   */
    int64_t *topo_order;  /* [E] edge state processing order (ldag_sorted)     */
    /* Line-graph arcs in the reference's enumeration order (ldag.edges),
     * which indexes per-arc transitions there. */
    int64_t *arc_in, *arc_out; /* [A] original index of e' and of e           */
    int64_t *arc_node;    /* [A] the node in between: head(e') = tail(e)       */
    int64_t *arc_node_q8; /* [A] tail(e'), the reference's ldag_edge_nodeidx (Q8) */
} plstm_prepared_graph;

/* Prepares one graph: `edges` is [num_edges][2] with node indices in
 * 0..num_nodes-1. opts NULL = undirected, P mode, not reversed. */
plstm_status plstm_graph_prepare(plstm_prepared_graph **graph, int64_t num_nodes,
                                 int64_t num_edges, const int64_t *edges,
                                 const plstm_graph_prep_opts *opts);
void plstm_prepared_graph_destroy(plstm_prepared_graph *graph);

/* 1 if the graph's line graph (the kept arcs) has at most one directed path
 * between any two edges, else 0. For tests and checks: O(A·E/64) time and
 * E²/8 bytes. Returns -1 if out of memory. */
int plstm_prepared_graph_is_multitree(const plstm_prepared_graph *graph);

/* ---- batches ---------------------------------------------------------------
 *
 * Many prepared graphs as one batched plstm_dag (disjoint graphs, processed in
 * one call). Graph g's edges keep their original order: its edge i is global
 * edge edge_off[g] + i, and its nodes are global node_off[g] + n (see dag.h).
 * The DAG object's arcs are exactly the prepared (possibly pruned) arcs, in
 * the DAG object's own arc order; the per-edge / per-node / per-arc arrays
 * below are in the DAG object's global numbering. */
typedef struct plstm_graph_batch {
    plstm_dag *dag; /* owned */
    int64_t num_graphs, num_nodes, num_edges, num_arcs;
    int64_t max_degree;            /* over all graphs                          */
    int64_t *in_slot, *out_slot;   /* [E] as in plstm_prepared_graph           */
    int64_t *topo_pos;             /* [E] position in its graph's topo_order   */
    int64_t *indegree, *outdegree; /* [N]                                      */
    int64_t *arc_node;             /* [A] global node between the arc's edges  */
    int64_t *arc_node_q8;          /* [A] global tail of the arc's first edge (Q8) */
    int64_t *arc_ref;              /* [A] index of the arc in its graph's
                                    *     reference enumeration (arc_in/arc_out) */
} plstm_graph_batch;

/* From prepared graphs (not taken over; they may be destroyed afterwards). */
plstm_status plstm_graph_batch_create(plstm_graph_batch **batch, int64_t num_graphs,
                                      const plstm_prepared_graph *const *graphs);
/* Prepares every graph with the same options and batches them. `edges` is the
 * concatenation of each graph's [edge_counts[g]][2] list, node indices local. */
plstm_status plstm_graph_batch_prepare(plstm_graph_batch **batch, int64_t num_graphs,
                                       const int64_t *node_counts, const int64_t *edge_counts,
                                       const int64_t *edges, const plstm_graph_prep_opts *opts);
void plstm_graph_batch_destroy(plstm_graph_batch *batch);

/* A batched DAG object with a given subset of line-graph arcs (e.g. the
 * D-mode multitree) instead of all of them. Nodes and edges as in
 * plstm_dag_create_batch; `arcs` is the concatenation of each graph's
 * [arc_counts[g]][2] list of (from_edge, to_edge), edge indices local to the
 * graph, each with head(from_edge) == tail(to_edge) and no arc twice. The
 * object numbers arcs in its documented order (grouped by to_edge, then
 * ascending from_edge); arc_index (optional, [sum arc_counts]) receives the
 * global object index of every input arc. */
plstm_status plstm_dag_create_batch_arcs(plstm_dag **dag, int64_t num_graphs,
                                         const int64_t *node_counts, const int64_t *edge_counts,
                                         const int64_t *edges, const int64_t *arc_counts,
                                         const int64_t *arcs, int64_t *arc_index);

#ifdef __cplusplus
}
#endif
#endif
