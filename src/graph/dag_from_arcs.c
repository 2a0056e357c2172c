/* A batched DAG object whose line graph is a given subset of the full one
 * (the D-mode multitree). Built as the full object, then its arc lists are
 * replaced: levels, heights and state slots stay valid because they only
 * assume that an arc e'->e has head(e') == tail(e), which every subset keeps. */
#include "graph/dag_internal.h"
#include "plstm/graph_prep.h"
#include "core/status_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct arc_key {
    int64_t from, to, idx;
} arc_key;

static int cmp_arc(const void *pa, const void *pb)
{
    const arc_key *a = pa, *b = pb;
    if (a->to != b->to)
        return a->to < b->to ? -1 : 1;
    if (a->from != b->from)
        return a->from < b->from ? -1 : 1;
    return 0;
}

/* Replaces g's arcs by the sorted list `k` (A entries, global edge indices). */
static plstm_status set_arcs(plstm_dag *g, const arc_key *k, int64_t A, int64_t *arc_index)
{
    int64_t *from = calloc((size_t)(A > 0 ? A : 1), sizeof *from);
    int64_t *to = calloc((size_t)(A > 0 ? A : 1), sizeof *to);
    int64_t *succ = calloc((size_t)(A > 0 ? A : 1), sizeof *succ);
    if (!from || !to || !succ) {
        free(from);
        free(to);
        free(succ);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "dag: cannot allocate %lld arcs",
                          (long long)A);
    }
    memset(g->arc_off, 0, (size_t)(g->E + 1) * sizeof *g->arc_off);
    memset(g->succ_off, 0, (size_t)(g->E + 1) * sizeof *g->succ_off);
    for (int64_t a = 0; a < A; a++) {
        from[a] = k[a].from;
        to[a] = k[a].to;
        g->arc_off[k[a].to + 1]++;
        g->succ_off[k[a].from + 1]++;
        if (arc_index)
            arc_index[k[a].idx] = a;
    }
    for (int64_t e = 0; e < g->E; e++) {
        g->arc_off[e + 1] += g->arc_off[e];
        g->succ_off[e + 1] += g->succ_off[e];
    }
    /* Stable fill: arcs out of each edge in ascending arc index. */
    int64_t *fill = calloc((size_t)(g->E > 0 ? g->E : 1), sizeof *fill);
    if (!fill) {
        free(from);
        free(to);
        free(succ);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "dag: cannot allocate arc lists");
    }
    for (int64_t a = 0; a < A; a++)
        succ[g->succ_off[from[a]] + fill[from[a]]++] = a;
    free(fill);
    free(g->arc_from);
    free(g->arc_to);
    free(g->succ_arcs);
    g->arc_from = from;
    g->arc_to = to;
    g->succ_arcs = succ;
    g->A = A;
    return PLSTM_OK;
}

plstm_status plstm_dag_create_batch_arcs(plstm_dag **out, int64_t num_graphs,
                                         const int64_t *node_counts, const int64_t *edge_counts,
                                         const int64_t *edges, const int64_t *arc_counts,
                                         const int64_t *arcs, int64_t *arc_index)
{
    PLSTM_CHECK_ARG(out != NULL, "dag: output pointer is NULL");
    *out = NULL;
    PLSTM_CHECK_ARG(num_graphs >= 1 && arc_counts != NULL,
                    "dag: num_graphs must be >= 1 and arc_counts non-NULL");
    int64_t A = 0;
    for (int64_t i = 0; i < num_graphs; i++) {
        PLSTM_CHECK_ARG(arc_counts[i] >= 0 && arc_counts[i] < INT32_MAX &&
                            A < INT64_MAX / 4 - arc_counts[i],
                        "dag: graph %lld has an invalid arc count %lld", (long long)i,
                        (long long)arc_counts[i]);
        A += arc_counts[i];
    }
    PLSTM_CHECK_ARG(A == 0 || arcs != NULL, "dag: %lld arcs but the arc list is NULL",
                    (long long)A);
    plstm_dag *g = NULL;
    PLSTM_TRY(plstm_dag_create_batch(&g, num_graphs, node_counts, edge_counts, edges));

    arc_key *k = calloc((size_t)(A > 0 ? A : 1), sizeof *k);
    plstm_status st = PLSTM_OK;
    if (!k) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "dag: cannot allocate %lld arcs", (long long)A);
        goto done;
    }
    for (int64_t gi = 0, a = 0; gi < num_graphs; gi++) {
        const int64_t e0 = g->edge_off[gi], ne = g->edge_off[gi + 1] - e0;
        for (int64_t j = 0; j < arc_counts[gi]; j++, a++) {
            const int64_t f = arcs[2 * a], t = arcs[2 * a + 1];
            if (f < 0 || f >= ne || t < 0 || t >= ne) {
                st = plstm_fail(PLSTM_ERR_GRAPH,
                                "dag: graph %lld, arc %lld (edge %lld -> edge %lld): edge index "
                                "out of range [0, %lld)",
                                (long long)gi, (long long)j, (long long)f, (long long)t,
                                (long long)ne);
                goto done;
            }
            if (g->head[e0 + f] != g->tail[e0 + t]) {
                st = plstm_fail(PLSTM_ERR_GRAPH,
                                "dag: graph %lld, arc %lld (edge %lld -> edge %lld): the head of "
                                "the first edge (node %lld) is not the tail of the second (node "
                                "%lld)",
                                (long long)gi, (long long)j, (long long)f, (long long)t,
                                (long long)(g->head[e0 + f] - g->node_off[gi]),
                                (long long)(g->tail[e0 + t] - g->node_off[gi]));
                goto done;
            }
            k[a] = (arc_key){e0 + f, e0 + t, a};
        }
    }
    qsort(k, (size_t)A, sizeof *k, cmp_arc);
    for (int64_t a = 1; a < A; a++)
        if (k[a].from == k[a - 1].from && k[a].to == k[a - 1].to) {
            st = plstm_fail(PLSTM_ERR_GRAPH, "dag: arc (global edge %lld -> edge %lld) is listed "
                            "twice (input arcs %lld and %lld)",
                            (long long)k[a].from, (long long)k[a].to, (long long)k[a - 1].idx,
                            (long long)k[a].idx);
            goto done;
        }
    st = set_arcs(g, k, A, arc_index);
done:
    free(k);
    if (st != PLSTM_OK)
        plstm_dag_destroy(g);
    else
        *out = g;
    return st;
}
