/* The DAG object (validation, in/out lists, line graph, levels) and the
 * public DAG core operators (validate once, dispatch to the backend). */
#include "graph/dag_internal.h"
#include "ops/backend.h"
#include "core/status_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void plstm_dag_destroy(plstm_dag *g)
{
    if (!g)
        return;
    int64_t **arrays[] = {&g->node_off, &g->edge_off, &g->tail, &g->head, &g->in_off,
                          &g->in_edges, &g->out_off, &g->out_edges, &g->arc_off, &g->arc_from,
                          &g->arc_to, &g->succ_off, &g->succ_arcs, &g->level, &g->level_off,
                          &g->level_edges, &g->height, &g->hnode_off, &g->hnodes, &g->slot};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
        free(*arrays[i]);
    free(g);
}

static int64_t *alloc_i64(int64_t n, int *ok)
{
    int64_t *p = calloc((size_t)(n > 0 ? n : 1), sizeof(int64_t));
    if (!p)
        *ok = 0;
    return p;
}

/* Graph that owns global edge e (binary search over edge_off). */
static int64_t graph_of_edge(const plstm_dag *g, int64_t e)
{
    int64_t lo = 0, hi = g->G - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if (g->edge_off[mid] <= e)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

static plstm_status edge_error(const plstm_dag *g, int64_t e, const char *what)
{
    int64_t gi = graph_of_edge(g, e), n0 = g->node_off[gi];
    return plstm_fail(PLSTM_ERR_GRAPH, "dag: graph %lld, edge %lld (%lld -> %lld): %s",
                      (long long)gi, (long long)(e - g->edge_off[gi]),
                      (long long)(g->tail[e] - n0), (long long)(g->head[e] - n0), what);
}

/* Stable counting sort of items 0..n-1 by key[i] in [0, nkeys): off[nkeys+1], out[n]. */
static void bucket(const int64_t *key, int64_t n, int64_t nkeys, int64_t *off, int64_t *out)
{
    memset(off, 0, (size_t)(nkeys + 1) * sizeof *off);
    for (int64_t i = 0; i < n; i++)
        off[key[i] + 1]++;
    for (int64_t k = 0; k < nkeys; k++)
        off[k + 1] += off[k];
    for (int64_t i = 0; i < n; i++)
        out[off[key[i]]++] = i;
    for (int64_t k = nkeys; k > 0; k--)
        off[k] = off[k - 1];
    off[0] = 0;
}

/* Rejects duplicate edges: marks each head seen from the current tail. */
static plstm_status check_duplicates(plstm_dag *g, int64_t *seen_from, int64_t *seen_edge)
{
    for (int64_t n = 0; n < g->N; n++)
        seen_from[n] = -1;
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t i = g->out_off[n]; i < g->out_off[n + 1]; i++) {
            int64_t e = g->out_edges[i], h = g->head[e];
            if (seen_from[h] == n) {
                char what[96];
                snprintf(what, sizeof what, "duplicate of edge %lld",
                         (long long)(seen_edge[h] - g->edge_off[graph_of_edge(g, e)]));
                return edge_error(g, e, what);
            }
            seen_from[h] = n;
            seen_edge[h] = e;
        }
    return PLSTM_OK;
}

/* Kahn's algorithm: node heights, or a cycle error naming one of its edges. */
static plstm_status topo_heights(plstm_dag *g, int64_t *indeg, int64_t *queue)
{
    int64_t head_q = 0, tail_q = 0;
    for (int64_t n = 0; n < g->N; n++) {
        indeg[n] = g->in_off[n + 1] - g->in_off[n];
        g->height[n] = 0;
        if (indeg[n] == 0)
            queue[tail_q++] = n;
    }
    while (head_q < tail_q) {
        int64_t n = queue[head_q++];
        for (int64_t i = g->out_off[n]; i < g->out_off[n + 1]; i++) {
            int64_t h = g->head[g->out_edges[i]];
            if (g->height[h] < g->height[n] + 1)
                g->height[h] = g->height[n] + 1;
            if (--indeg[h] == 0)
                queue[tail_q++] = h;
        }
    }
    if (tail_q == g->N)
        return PLSTM_OK;
    /* Every unprocessed node has an unprocessed predecessor: walk backwards
     * until a node repeats; the walk from there on is a cycle. */
    int64_t v = 0;
    while (indeg[v] == 0)
        v++;
    int64_t *step = queue; /* reuse: step at which a node was visited, -1 = never */
    for (int64_t n = 0; n < g->N; n++)
        step[n] = -1;
    for (int64_t s = 0;; s++) {
        step[v] = s;
        int64_t e = -1;
        for (int64_t i = g->in_off[v]; i < g->in_off[v + 1] && e < 0; i++)
            if (indeg[g->tail[g->in_edges[i]]] > 0)
                e = g->in_edges[i];
        int64_t u = g->tail[e];
        if (step[u] >= 0)
            return edge_error(g, e, "the graph has a cycle through this edge");
        v = u;
    }
}

static plstm_status build_levels(plstm_dag *g)
{
    g->L = 0;
    for (int64_t e = 0; e < g->E; e++) {
        g->level[e] = g->height[g->tail[e]];
        if (g->level[e] + 1 > g->L)
            g->L = g->level[e] + 1;
    }
    int ok = 1;
    g->level_off = alloc_i64(g->L + 1, &ok);
    if (!ok)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "dag: cannot allocate level lists");
    bucket(g->level, g->E, g->L, g->level_off, g->level_edges);
    g->hnode_off = alloc_i64(g->L + 2, &ok);
    if (!ok)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "dag: cannot allocate level lists");
    bucket(g->height, g->N, g->L + 1, g->hnode_off, g->hnodes);
    return PLSTM_OK;
}

/* Greedy slot reuse over the phases (interval colouring, so num_slots is
 * the largest number of states alive in one phase). */
static plstm_status build_slots(plstm_dag *g)
{
    int ok = 1;
    int64_t *last = alloc_i64(g->E, &ok), *by_last = alloc_i64(g->E, &ok);
    int64_t *last_off = alloc_i64(g->L + 2, &ok), *free_slots = alloc_i64(g->E, &ok);
    plstm_status st = PLSTM_OK;
    if (!ok) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "dag: cannot allocate slot maps");
        goto done;
    }
    for (int64_t e = 0; e < g->E; e++)
        last[e] = g->height[g->head[e]]; /* in 1..L */
    bucket(last, g->E, g->L + 1, last_off, by_last);
    int64_t nfree = 0;
    g->num_slots = 0;
    for (int64_t h = 0; h < g->L; h++) {
        if (h > 0) /* states last read in phase h-1 are free now */
            for (int64_t i = last_off[h - 1]; i < last_off[h]; i++)
                free_slots[nfree++] = g->slot[by_last[i]];
        for (int64_t i = g->level_off[h]; i < g->level_off[h + 1]; i++)
            g->slot[g->level_edges[i]] = nfree > 0 ? free_slots[--nfree] : g->num_slots++;
    }
done:
    free(last);
    free(by_last);
    free(last_off);
    free(free_slots);
    return st;
}

static plstm_status build_line_graph(plstm_dag *g)
{
    g->arc_off[0] = 0;
    for (int64_t e = 0; e < g->E; e++) {
        int64_t n = g->tail[e];
        g->arc_off[e + 1] = g->arc_off[e] + (g->in_off[n + 1] - g->in_off[n]);
    }
    g->A = g->arc_off[g->E];
    int ok = 1;
    g->arc_from = alloc_i64(g->A, &ok);
    g->arc_to = alloc_i64(g->A, &ok);
    g->succ_arcs = alloc_i64(g->A, &ok);
    if (!ok)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "dag: cannot allocate %lld line-graph arcs",
                          (long long)g->A);
    for (int64_t e = 0; e < g->E; e++) {
        int64_t n = g->tail[e], a = g->arc_off[e];
        for (int64_t i = g->in_off[n]; i < g->in_off[n + 1]; i++, a++) {
            g->arc_from[a] = g->in_edges[i];
            g->arc_to[a] = e;
        }
    }
    bucket(g->arc_from, g->A, g->E, g->succ_off, g->succ_arcs);
    return PLSTM_OK;
}

plstm_status plstm_dag_create_batch(plstm_dag **out, int64_t num_graphs,
                                    const int64_t *node_counts, const int64_t *edge_counts,
                                    const int64_t *edges)
{
    PLSTM_CHECK_ARG(out != NULL, "dag: output pointer is NULL");
    *out = NULL;
    PLSTM_CHECK_ARG(num_graphs >= 1, "dag: num_graphs = %lld, must be >= 1",
                    (long long)num_graphs);
    PLSTM_CHECK_ARG(node_counts && edge_counts, "dag: node_counts or edge_counts is NULL");
    int64_t N = 0, E = 0;
    for (int64_t i = 0; i < num_graphs; i++) {
        PLSTM_CHECK_ARG(node_counts[i] >= 0 && edge_counts[i] >= 0,
                        "dag: graph %lld has %lld nodes and %lld edges (must be >= 0)",
                        (long long)i, (long long)node_counts[i], (long long)edge_counts[i]);
        PLSTM_CHECK_ARG(node_counts[i] < INT32_MAX && edge_counts[i] < INT32_MAX &&
                            N < INT64_MAX / 4 - node_counts[i] && E < INT64_MAX / 4 - edge_counts[i],
                        "dag: graph %lld is too large", (long long)i);
        N += node_counts[i];
        E += edge_counts[i];
    }
    PLSTM_CHECK_ARG(E == 0 || edges != NULL, "dag: %lld edges but the edge list is NULL",
                    (long long)E);

    plstm_dag *g = calloc(1, sizeof *g);
    if (!g)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "dag: cannot allocate the graph object");
    g->G = num_graphs;
    g->N = N;
    g->E = E;
    int ok = 1;
    g->node_off = alloc_i64(num_graphs + 1, &ok);
    g->edge_off = alloc_i64(num_graphs + 1, &ok);
    g->tail = alloc_i64(E, &ok);
    g->head = alloc_i64(E, &ok);
    g->in_off = alloc_i64(N + 1, &ok);
    g->in_edges = alloc_i64(E, &ok);
    g->out_off = alloc_i64(N + 1, &ok);
    g->out_edges = alloc_i64(E, &ok);
    g->arc_off = alloc_i64(E + 1, &ok);
    g->succ_off = alloc_i64(E + 1, &ok);
    g->level = alloc_i64(E, &ok);
    g->level_edges = alloc_i64(E, &ok);
    g->height = alloc_i64(N, &ok);
    g->hnodes = alloc_i64(N, &ok);
    g->slot = alloc_i64(E, &ok);
    int64_t *work1 = alloc_i64(N, &ok), *work2 = alloc_i64(N, &ok);
    plstm_status st = PLSTM_OK;
    if (!ok) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "dag: cannot allocate a graph of %lld nodes, "
                        "%lld edges", (long long)N, (long long)E);
        goto done;
    }
    for (int64_t i = 0; i < num_graphs; i++) {
        g->node_off[i + 1] = g->node_off[i] + node_counts[i];
        g->edge_off[i + 1] = g->edge_off[i] + edge_counts[i];
    }
    for (int64_t i = 0; i < num_graphs; i++)
        for (int64_t e = g->edge_off[i]; e < g->edge_off[i + 1]; e++) {
            int64_t t = edges[2 * e], h = edges[2 * e + 1], n = node_counts[i];
            g->tail[e] = g->node_off[i] + (t >= 0 && t < n ? t : 0);
            g->head[e] = g->node_off[i] + (h >= 0 && h < n ? h : 0);
            if (t < 0 || t >= n || h < 0 || h >= n) {
                st = plstm_fail(PLSTM_ERR_GRAPH,
                                "dag: graph %lld, edge %lld (%lld -> %lld): node index out of "
                                "range [0, %lld)",
                                (long long)i, (long long)(e - g->edge_off[i]), (long long)t,
                                (long long)h, (long long)n);
                goto done;
            }
            if (t == h) {
                st = edge_error(g, e, "self-loop");
                goto done;
            }
        }
    bucket(g->head, E, N, g->in_off, g->in_edges);
    bucket(g->tail, E, N, g->out_off, g->out_edges);
    if ((st = check_duplicates(g, work1, work2)) != PLSTM_OK)
        goto done;
    if ((st = topo_heights(g, work1, work2)) != PLSTM_OK)
        goto done;
    if ((st = build_levels(g)) != PLSTM_OK)
        goto done;
    if ((st = build_slots(g)) != PLSTM_OK)
        goto done;
    st = build_line_graph(g);
done:
    free(work1);
    free(work2);
    if (st != PLSTM_OK)
        plstm_dag_destroy(g);
    else
        *out = g;
    return st;
}

plstm_status plstm_dag_create(plstm_dag **dag, int64_t num_nodes, int64_t num_edges,
                              const int64_t *edges)
{
    return plstm_dag_create_batch(dag, 1, &num_nodes, &num_edges, edges);
}

/* ---- accessors ----------------------------------------------------------- */

int64_t plstm_dag_num_graphs(const plstm_dag *g) { return g ? g->G : 0; }
int64_t plstm_dag_num_nodes(const plstm_dag *g) { return g ? g->N : 0; }
int64_t plstm_dag_num_edges(const plstm_dag *g) { return g ? g->E : 0; }
int64_t plstm_dag_num_arcs(const plstm_dag *g) { return g ? g->A : 0; }
int64_t plstm_dag_num_levels(const plstm_dag *g) { return g ? g->L : 0; }

#define SET(p, v) \
    do {          \
        if (p)    \
            *(p) = (v); \
    } while (0)

plstm_status plstm_dag_graph_range(const plstm_dag *g, int64_t i, int64_t *node0,
                                   int64_t *num_nodes, int64_t *edge0, int64_t *num_edges,
                                   int64_t *arc0, int64_t *num_arcs)
{
    PLSTM_CHECK_ARG(g && i >= 0 && i < g->G, "dag: graph index %lld out of range", (long long)i);
    SET(node0, g->node_off[i]);
    SET(num_nodes, g->node_off[i + 1] - g->node_off[i]);
    SET(edge0, g->edge_off[i]);
    SET(num_edges, g->edge_off[i + 1] - g->edge_off[i]);
    SET(arc0, g->arc_off[g->edge_off[i]]);
    SET(num_arcs, g->arc_off[g->edge_off[i + 1]] - g->arc_off[g->edge_off[i]]);
    return PLSTM_OK;
}

plstm_status plstm_dag_edge(const plstm_dag *g, int64_t e, int64_t *tail, int64_t *head,
                            int64_t *level)
{
    PLSTM_CHECK_ARG(g && e >= 0 && e < g->E, "dag: edge index %lld out of range", (long long)e);
    SET(tail, g->tail[e]);
    SET(head, g->head[e]);
    SET(level, g->level[e]);
    return PLSTM_OK;
}

plstm_status plstm_dag_arc(const plstm_dag *g, int64_t a, int64_t *from_edge, int64_t *to_edge)
{
    PLSTM_CHECK_ARG(g && a >= 0 && a < g->A, "dag: arc index %lld out of range", (long long)a);
    SET(from_edge, g->arc_from[a]);
    SET(to_edge, g->arc_to[a]);
    return PLSTM_OK;
}

plstm_status plstm_dag_arc_range(const plstm_dag *g, int64_t e, int64_t *first, int64_t *count)
{
    PLSTM_CHECK_ARG(g && e >= 0 && e < g->E, "dag: edge index %lld out of range", (long long)e);
    SET(first, g->arc_off[e]);
    SET(count, g->arc_off[e + 1] - g->arc_off[e]);
    return PLSTM_OK;
}

/* ---- public core operators ------------------------------------------------ */

static plstm_status validate_core(const char *op, const plstm_dag_core_desc *d,
                                  const plstm_dag *g, const plstm_dag_core_inputs *in)
{
    PLSTM_CHECK_ARG(d && g && in, "%s: NULL descriptor, graph or inputs", op);
    if (d->dtype != PLSTM_F32 && d->dtype != PLSTM_F64)
        return plstm_fail(PLSTM_ERR_UNSUPPORTED, "%s: dtype %s not supported (F32 or F64)", op,
                          plstm_dtype_name(d->dtype));
    static const char *const names[] = {"B", "DK", "DV", "JQ", "JK", "JV", "JT", "JO"};
    const int dims[] = {d->B, d->DK, d->DV, d->JQ, d->JK, d->JV, d->JT, d->JO};
    for (int i = 0; i < 8; i++)
        PLSTM_CHECK_ARG(dims[i] >= 1, "%s: %s = %d, must be >= 1", op, names[i], dims[i]);
    PLSTM_CHECK_ARG(g->N == 0 || (in->Q && in->K && in->V && in->D),
                    "%s: a required node tensor (Q, K, V or D) is NULL", op);
    PLSTM_CHECK_ARG(g->E == 0 || (in->S && in->M), "%s: edge tensor S or M is NULL", op);
    PLSTM_CHECK_ARG(g->A == 0 || in->T, "%s: arc tensor T is NULL", op);
    return PLSTM_OK;
}

#define DISPATCH(ctx, fn, ...)                                                              \
    do {                                                                                    \
        PLSTM_CHECK_ARG((ctx) != NULL, #fn ": ctx is NULL");                                \
        if (!(ctx)->ops->fn)                                                                \
            return plstm_fail(PLSTM_ERR_UNSUPPORTED, #fn " is not implemented on the %s backend", \
                              (ctx)->ops->name);                                            \
        return (ctx)->ops->fn(ctx, __VA_ARGS__);                                            \
    } while (0)

plstm_status plstm_dag_core_forward(plstm_context *ctx, const plstm_dag_core_desc *desc,
                                    const plstm_dag *dag, const plstm_dag_core_inputs *in,
                                    void *Y)
{
    PLSTM_TRY(validate_core("dag core forward", desc, dag, in));
    PLSTM_CHECK_ARG(Y || dag->N == 0, "dag core forward: output Y is NULL");
    DISPATCH(ctx, dag_core_forward, desc, dag, in, Y);
}

plstm_status plstm_dag_core_backward(plstm_context *ctx, const plstm_dag_core_desc *desc,
                                     const plstm_dag *dag, const plstm_dag_core_inputs *in,
                                     const void *dY, const plstm_dag_core_grads *grad)
{
    PLSTM_TRY(validate_core("dag core backward", desc, dag, in));
    PLSTM_CHECK_ARG((dY || dag->N == 0) && grad, "dag core backward: dY or grads is NULL");
    DISPATCH(ctx, dag_core_backward, desc, dag, in, dY, grad);
}

/* ---- scalar-gate graph form: the core with all J = 1 and scale 1 ---------- */

static plstm_status graph_desc(const plstm_graph_desc *gd, plstm_dag_core_desc *cd)
{
    PLSTM_CHECK_ARG(gd != NULL, "graph: NULL descriptor");
    *cd = (plstm_dag_core_desc){.dtype = gd->dtype, .B = gd->H, .DK = gd->K, .DV = gd->V,
                                .JQ = 1, .JK = 1, .JV = 1, .JT = 1, .JO = 1, .scale = 1.0,
                                .algo = gd->algo, .max_workspace = gd->max_workspace};
    return PLSTM_OK;
}

plstm_status plstm_graph_forward(plstm_context *ctx, const plstm_graph_desc *desc,
                                 const plstm_dag *dag, const plstm_graph_inputs *in, void *y)
{
    plstm_dag_core_desc cd;
    PLSTM_TRY(graph_desc(desc, &cd));
    PLSTM_CHECK_ARG(in != NULL, "graph forward: NULL inputs");
    const plstm_dag_core_inputs ci = {in->q, in->k, in->v, in->s, in->t, in->m, in->d};
    return plstm_dag_core_forward(ctx, &cd, dag, &ci, y);
}

plstm_status plstm_graph_backward(plstm_context *ctx, const plstm_graph_desc *desc,
                                  const plstm_dag *dag, const plstm_graph_inputs *in,
                                  const void *dy, const plstm_graph_grads *grad)
{
    plstm_dag_core_desc cd;
    PLSTM_TRY(graph_desc(desc, &cd));
    PLSTM_CHECK_ARG(in && grad, "graph backward: NULL inputs or grads");
    const plstm_dag_core_inputs ci = {in->q, in->k, in->v, in->s, in->t, in->m, in->d};
    const plstm_dag_core_grads cg = {grad->q, grad->k, grad->v, grad->s, grad->t, grad->m,
                                     grad->d};
    return plstm_dag_core_backward(ctx, &cd, dag, &ci, dy, &cg);
}
