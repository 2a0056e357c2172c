/* Graph preparation: input validation, dagify (low -> high node index),
 * optional reversal, then the derived orders (prep_nx.c). */
#include "graph/prep_internal.h"
#include "core/status_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void plstm_prepared_graph_destroy(plstm_prepared_graph *pg)
{
    if (!pg)
        return;
    int64_t **arrays[] = {&pg->tail,     &pg->head,      &pg->in_slot,   &pg->out_slot,
                          &pg->topo_pos, &pg->indegree,  &pg->outdegree, &pg->dag_order,
                          &pg->topo_order, &pg->arc_in,  &pg->arc_out,   &pg->arc_node,
                          &pg->arc_node_q8};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
        free(*arrays[i]);
    free(pg);
}

static plstm_status edge_fail(int64_t i, int64_t t, int64_t h, const char *what)
{
    return plstm_fail(PLSTM_ERR_GRAPH, "graph prep: edge %lld (%lld, %lld): %s", (long long)i,
                      (long long)t, (long long)h, what);
}

/* Duplicate edges: bucket by key0, mark key1 per bucket. `work` is [2N+E]. */
static plstm_status check_duplicates(int64_t N, int64_t E, const int64_t *edges,
                                     const int64_t *key0, const int64_t *key1, int64_t *work)
{
    int64_t *off = work, *list = work + N + 1, *mark = list + E;
    prep_bucket(NULL, E, key0, N, off, list);
    for (int64_t n = 0; n < N; n++)
        mark[n] = -1;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t j = off[n]; j < off[n + 1]; j++) {
            int64_t i = list[j], h = key1[i];
            if (mark[h] >= 0 && mark[h] >= off[n]) {
                int64_t prev = list[mark[h]];
                char what[96];
                snprintf(what, sizeof what, "duplicate of edge %lld", (long long)prev);
                return edge_fail(i, edges[2 * i], edges[2 * i + 1], what);
            }
            mark[h] = j;
        }
    }
    return PLSTM_OK;
}

/* A directed input must be acyclic; on a cycle, name one of its edges. */
static plstm_status check_acyclic(int64_t N, int64_t E, const int64_t *edges,
                                  const int64_t *tail, const int64_t *head)
{
    int64_t *id = prep_alloc(N), *off = prep_alloc(N + 1), *succ = prep_alloc(E);
    int64_t *out = prep_alloc(N), *indeg = prep_alloc(N), *poff = prep_alloc(N + 1);
    int64_t *pred = prep_alloc(E);
    plstm_status st = PLSTM_OK;
    if (!id || !off || !succ || !out || !indeg || !poff || !pred) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "graph prep: cannot allocate the cycle check");
        goto done;
    }
    for (int64_t n = 0; n < N; n++)
        id[n] = n;
    prep_bucket(NULL, E, tail, N, off, succ);
    for (int64_t j = 0; j < E; j++)
        succ[j] = head[succ[j]];
    if (prep_toposort(N, id, off, succ, out, indeg) == N)
        goto done;
    /* Unfinished nodes all have an unfinished predecessor: walk back until
     * a node repeats; the edge that closes the walk lies on a cycle. */
    prep_bucket(NULL, E, head, N, poff, pred);
    int64_t v = 0;
    while (indeg[v] == 0)
        v++;
    for (int64_t n = 0; n < N; n++)
        id[n] = -1; /* visit step */
    for (int64_t s = 0;; s++) {
        id[v] = s;
        int64_t e = -1;
        for (int64_t j = poff[v]; j < poff[v + 1] && e < 0; j++)
            if (indeg[tail[pred[j]]] > 0)
                e = pred[j];
        if (id[tail[e]] >= 0) {
            st = edge_fail(e, edges[2 * e], edges[2 * e + 1],
                           "the directed graph has a cycle through this edge");
            goto done;
        }
        v = tail[e];
    }
done:
    free(id);
    free(off);
    free(succ);
    free(out);
    free(indeg);
    free(poff);
    free(pred);
    return st;
}

static plstm_status validate(int64_t N, int64_t E, const int64_t *edges, int directed,
                             int64_t *tail, int64_t *head)
{
    for (int64_t i = 0; i < E; i++) {
        const int64_t t = edges[2 * i], h = edges[2 * i + 1];
        if (t < 0 || t >= N || h < 0 || h >= N) {
            char what[96];
            snprintf(what, sizeof what, "node index out of range [0, %lld)", (long long)N);
            return edge_fail(i, t, h, what);
        }
        if (t == h)
            return edge_fail(i, t, h, "self-loop");
        tail[i] = directed ? t : (t < h ? t : h);
        head[i] = directed ? h : (t < h ? h : t);
    }
    int64_t *work = prep_alloc(2 * N + E + 1);
    if (!work)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "graph prep: cannot allocate checks");
    plstm_status st = check_duplicates(N, E, edges, tail, head, work);
    free(work);
    PLSTM_TRY(st);
    if (directed)
        PLSTM_TRY(check_acyclic(N, E, edges, tail, head));
    return PLSTM_OK;
}

static plstm_prepared_graph *alloc_graph(int64_t N, int64_t E)
{
    plstm_prepared_graph *pg = calloc(1, sizeof *pg);
    if (!pg)
        return NULL;
    pg->num_nodes = N;
    pg->num_edges = E;
    int64_t **per_edge[] = {&pg->tail,     &pg->head,      &pg->in_slot,  &pg->out_slot,
                            &pg->topo_pos, &pg->dag_order, &pg->topo_order};
    int ok = 1;
    for (size_t i = 0; i < sizeof per_edge / sizeof per_edge[0]; i++)
        ok &= (*per_edge[i] = prep_alloc(E)) != NULL;
    ok &= (pg->indegree = prep_alloc(N)) != NULL;
    ok &= (pg->outdegree = prep_alloc(N)) != NULL;
    if (!ok) {
        plstm_prepared_graph_destroy(pg);
        return NULL;
    }
    return pg;
}

/* The reference reverses with revert_dag (nodes in reversed order, edges
 * inserted in reversed dag.edges order, turned around) and prepares that
 * DiGraph again, whose dagify re-inserts its edges in its own dag.edges
 * order. Returns that final insertion order in `ins`; flips tail/head. */
static plstm_status reverse_order(plstm_prepared_graph *pg, int64_t *node_order, int64_t *ins)
{
    const int64_t N = pg->num_nodes, E = pg->num_edges;
    int64_t *off = prep_alloc(N + 1), *fwd = prep_alloc(E), *seq = prep_alloc(E);
    if (!off || !fwd || !seq) {
        free(off);
        free(fwd);
        free(seq);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "graph prep: cannot allocate the reversal");
    }
    /* Forward dag.edges: grouped by tail in node order 0..N-1, input order. */
    prep_bucket(NULL, E, pg->tail, N, off, fwd);
    for (int64_t k = 0; k < E; k++)
        seq[k] = fwd[E - 1 - k];
    for (int64_t i = 0; i < E; i++) {
        int64_t t = pg->tail[i];
        pg->tail[i] = pg->head[i];
        pg->head[i] = t;
    }
    /* revDAG.edges: grouped by (new) tail in node order N-1..0. */
    prep_bucket(seq, E, pg->tail, N, off, fwd);
    int64_t k = 0;
    for (int64_t u = N - 1; u >= 0; u--)
        for (int64_t j = off[u]; j < off[u + 1]; j++)
            ins[k++] = fwd[j];
    for (int64_t n = 0; n < N; n++)
        node_order[n] = N - 1 - n;
    free(off);
    free(fwd);
    free(seq);
    return PLSTM_OK;
}

plstm_status plstm_graph_prepare(plstm_prepared_graph **out, int64_t N, int64_t E,
                                 const int64_t *edges, const plstm_graph_prep_opts *opts)
{
    PLSTM_CHECK_ARG(out != NULL, "graph prep: output pointer is NULL");
    *out = NULL;
    PLSTM_CHECK_ARG(N >= 0 && E >= 0 && N < INT32_MAX && E < INT32_MAX,
                    "graph prep: %lld nodes and %lld edges (must be in [0, 2^31))",
                    (long long)N, (long long)E);
    PLSTM_CHECK_ARG(E == 0 || edges != NULL, "graph prep: %lld edges but the edge list is NULL",
                    (long long)E);
    const plstm_graph_prep_opts def = {0, PLSTM_GRAPH_MODE_P, 0};
    if (!opts)
        opts = &def;
    PLSTM_CHECK_ARG(opts->mode == PLSTM_GRAPH_MODE_P || opts->mode == PLSTM_GRAPH_MODE_D,
                    "graph prep: mode %d is neither P nor D", (int)opts->mode);

    plstm_prepared_graph *pg = alloc_graph(N, E);
    int64_t *node_order = prep_alloc(N), *ins = prep_alloc(E);
    plstm_status st = PLSTM_OK;
    if (!pg || !node_order || !ins) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "graph prep: cannot allocate a graph of %lld "
                        "nodes, %lld edges", (long long)N, (long long)E);
        goto done;
    }
    pg->mode = opts->mode;
    pg->reversed = opts->reverse != 0;
    if ((st = validate(N, E, edges, opts->directed, pg->tail, pg->head)) != PLSTM_OK)
        goto done;
    /* dagify: low -> high node index, also for a directed (acyclic) input. */
    for (int64_t i = 0; i < E; i++) {
        int64_t t = pg->tail[i], h = pg->head[i];
        pg->tail[i] = t < h ? t : h;
        pg->head[i] = t < h ? h : t;
        ins[i] = i;
    }
    for (int64_t n = 0; n < N; n++)
        node_order[n] = n;
    if (pg->reversed && (st = reverse_order(pg, node_order, ins)) != PLSTM_OK)
        goto done;
    st = prep_derive(pg, node_order, ins);
done:
    free(node_order);
    free(ins);
    if (st != PLSTM_OK)
        plstm_prepared_graph_destroy(pg);
    else
        *out = pg;
    return st;
}
