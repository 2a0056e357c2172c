/* The plstm_dag object's layout, shared by src/graph/dag.c (which builds it)
 * and the backends (which read it). All index arrays are CSR-style int64. */
#ifndef PLSTM_DAG_INTERNAL_H
#define PLSTM_DAG_INTERNAL_H

#include "plstm/dag.h"

struct plstm_dag {
    int64_t G, N, E, A, L;  /* graphs, nodes, edges, line-graph arcs, levels */
    int64_t *node_off;      /* [G+1] first global node of each graph          */
    int64_t *edge_off;      /* [G+1] first global edge of each graph          */
    int64_t *tail, *head;   /* [E]                                            */
    int64_t *in_off;        /* [N+1] edges into node n: in_edges[in_off[n]..] */
    int64_t *in_edges;      /* [E]   ascending edge index                     */
    int64_t *out_off;       /* [N+1] edges out of node n                       */
    int64_t *out_edges;     /* [E]   ascending edge index                     */
    int64_t *arc_off;       /* [E+1] arcs into edge e: arc_off[e]..arc_off[e+1] */
    int64_t *arc_from;      /* [A]   source edge e' of arc a                  */
    int64_t *arc_to;        /* [A]   target edge e of arc a                   */
    int64_t *succ_off;      /* [E+1] arcs out of edge e' (reverse CSR)         */
    int64_t *succ_arcs;     /* [A]   arc indices, ascending                   */
    int64_t *level;         /* [E]   level of each edge                       */
    int64_t *level_off;     /* [L+1] edges of level l: level_edges[level_off[l]..] */
    int64_t *level_edges;   /* [E]   by level, then ascending edge index      */
    int64_t *height;        /* [N]   longest path (in edges) ending at node n */
    /* Forward phases h = 0..L: edges of level h and nodes of height h only
     * read states of lower levels, so a phase is one parallel step. */
    int64_t *hnode_off;     /* [L+2] nodes of height h: hnodes[hnode_off[h]..] */
    int64_t *hnodes;        /* [N]   by height, then ascending node index     */
    /* State slots for the forward: edge e's state lives from phase level(e)
     * to phase height(head(e)) (its last reader); slots are reused after. */
    int64_t *slot;          /* [E]   slot of edge e                            */
    int64_t num_slots;      /* most states alive at once                      */
};

#endif
