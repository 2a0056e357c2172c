/* Many prepared graphs as one batched DAG object plus the per-edge,
 * per-node and per-arc maps the graph layers read (plstm-math.md §6.3, §6.4),
 * all in the DAG object's global numbering. */
#include "graph/dag_internal.h"
#include "graph/prep_internal.h"
#include "core/status_internal.h"

#include <stdio.h>
#include <stdlib.h>

void plstm_graph_batch_destroy(plstm_graph_batch *b)
{
    if (!b)
        return;
    plstm_dag_destroy(b->dag);
    int64_t **arrays[] = {&b->in_slot,  &b->out_slot, &b->topo_pos,    &b->indegree,
                          &b->outdegree, &b->arc_node, &b->arc_node_q8, &b->arc_ref};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
        free(*arrays[i]);
    free(b);
}

/* Global per-edge, per-node and per-arc arrays (dag built, counts set). */
static plstm_status fill_maps(plstm_graph_batch *b, const plstm_prepared_graph *const *graphs,
                              const int64_t *arc_index)
{
    const int64_t E = b->num_edges, N = b->num_nodes, A = b->num_arcs;
    int ok = 1;
    int64_t **per_edge[] = {&b->in_slot, &b->out_slot, &b->topo_pos};
    for (size_t i = 0; i < 3; i++)
        ok &= (*per_edge[i] = prep_alloc(E)) != NULL;
    ok &= (b->indegree = prep_alloc(N)) != NULL;
    ok &= (b->outdegree = prep_alloc(N)) != NULL;
    ok &= (b->arc_node = prep_alloc(A)) != NULL;
    ok &= (b->arc_node_q8 = prep_alloc(A)) != NULL;
    ok &= (b->arc_ref = prep_alloc(A)) != NULL;
    if (!ok)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "graph batch: cannot allocate the maps");
    const plstm_dag *d = b->dag;
    int64_t a0 = 0;
    b->max_degree = 0;
    for (int64_t g = 0; g < b->num_graphs; g++) {
        const plstm_prepared_graph *pg = graphs[g];
        const int64_t n0 = d->node_off[g], e0 = d->edge_off[g];
        for (int64_t i = 0; i < pg->num_edges; i++) {
            b->in_slot[e0 + i] = pg->in_slot[i];
            b->out_slot[e0 + i] = pg->out_slot[i];
            b->topo_pos[e0 + i] = pg->topo_pos[i];
        }
        for (int64_t n = 0; n < pg->num_nodes; n++) {
            b->indegree[n0 + n] = pg->indegree[n];
            b->outdegree[n0 + n] = pg->outdegree[n];
        }
        for (int64_t a = 0; a < pg->num_arcs; a++) {
            const int64_t ga = arc_index[a0 + a];
            b->arc_node[ga] = n0 + pg->arc_node[a];
            b->arc_node_q8[ga] = n0 + pg->arc_node_q8[a];
            b->arc_ref[ga] = a;
        }
        a0 += pg->num_arcs;
        if (pg->max_degree > b->max_degree)
            b->max_degree = pg->max_degree;
    }
    return PLSTM_OK;
}

plstm_status plstm_graph_batch_create(plstm_graph_batch **out, int64_t G,
                                      const plstm_prepared_graph *const *graphs)
{
    PLSTM_CHECK_ARG(out != NULL, "graph batch: output pointer is NULL");
    *out = NULL;
    PLSTM_CHECK_ARG(G >= 1 && graphs != NULL, "graph batch: need >= 1 graph (got %lld)",
                    (long long)G);
    int64_t N = 0, E = 0, A = 0;
    for (int64_t g = 0; g < G; g++) {
        PLSTM_CHECK_ARG(graphs[g] != NULL, "graph batch: graph %lld is NULL", (long long)g);
        N += graphs[g]->num_nodes;
        E += graphs[g]->num_edges;
        A += graphs[g]->num_arcs;
    }
    plstm_graph_batch *b = calloc(1, sizeof *b);
    int64_t *nc = prep_alloc(G), *ec = prep_alloc(G), *ac = prep_alloc(G);
    int64_t *edges = prep_alloc(2 * E), *arcs = prep_alloc(2 * A), *arc_index = prep_alloc(A);
    plstm_status st = PLSTM_OK;
    if (!b || !nc || !ec || !ac || !edges || !arcs || !arc_index) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "graph batch: cannot allocate %lld graphs",
                        (long long)G);
        goto done;
    }
    b->num_graphs = G;
    b->num_nodes = N;
    b->num_edges = E;
    b->num_arcs = A;
    for (int64_t g = 0, e = 0, a = 0; g < G; g++) {
        const plstm_prepared_graph *pg = graphs[g];
        nc[g] = pg->num_nodes;
        ec[g] = pg->num_edges;
        ac[g] = pg->num_arcs;
        for (int64_t i = 0; i < pg->num_edges; i++, e++) {
            edges[2 * e] = pg->tail[i];
            edges[2 * e + 1] = pg->head[i];
        }
        for (int64_t i = 0; i < pg->num_arcs; i++, a++) {
            arcs[2 * a] = pg->arc_in[i];
            arcs[2 * a + 1] = pg->arc_out[i];
        }
    }
    if ((st = plstm_dag_create_batch_arcs(&b->dag, G, nc, ec, edges, ac, arcs, arc_index)) !=
        PLSTM_OK)
        goto done;
    st = fill_maps(b, graphs, arc_index);
done:
    free(nc);
    free(ec);
    free(ac);
    free(edges);
    free(arcs);
    free(arc_index);
    if (st != PLSTM_OK)
        plstm_graph_batch_destroy(b);
    else
        *out = b;
    return st;
}

plstm_status plstm_graph_batch_prepare(plstm_graph_batch **out, int64_t G,
                                       const int64_t *node_counts, const int64_t *edge_counts,
                                       const int64_t *edges, const plstm_graph_prep_opts *opts)
{
    PLSTM_CHECK_ARG(out != NULL, "graph batch: output pointer is NULL");
    *out = NULL;
    PLSTM_CHECK_ARG(G >= 1 && node_counts && edge_counts,
                    "graph batch: need >= 1 graph and its node/edge counts");
    plstm_prepared_graph **pgs = calloc((size_t)G, sizeof *pgs);
    if (!pgs)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "graph batch: cannot allocate %lld graphs",
                          (long long)G);
    plstm_status st = PLSTM_OK;
    int64_t e0 = 0;
    for (int64_t g = 0; g < G && st == PLSTM_OK; g++) {
        if (edge_counts[g] < 0) {
            st = plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "graph batch: graph %lld has %lld edges",
                            (long long)g, (long long)edge_counts[g]);
            break;
        }
        st = plstm_graph_prepare(&pgs[g], node_counts[g], edge_counts[g],
                                 edges ? edges + 2 * e0 : NULL, opts);
        if (st != PLSTM_OK) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", plstm_last_error());
            st = plstm_fail(st, "graph batch: graph %lld: %s", (long long)g, msg);
        }
        e0 += edge_counts[g];
    }
    if (st == PLSTM_OK)
        st = plstm_graph_batch_create(out, G, (const plstm_prepared_graph *const *)pgs);
    for (int64_t g = 0; g < G; g++)
        plstm_prepared_graph_destroy(pgs[g]);
    free(pgs);
    return st;
}
