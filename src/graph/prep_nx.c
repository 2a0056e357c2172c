/* The prepared graph's orders, reproduced as networkx builds them in the
 * reference (plstm-math.md §6.1): line graph, multitree pruning, topological
 * order, arc enumeration, slot maps. A networkx DiGraph keeps nodes and each
 * node's successor / predecessor lists in insertion order; every order below
 * follows from those lists. */
#include "graph/prep_internal.h"
#include "core/status_internal.h"

#include <stdlib.h>
#include <string.h>

int64_t *prep_alloc(int64_t n)
{
    return calloc((size_t)(n > 0 ? n : 1), sizeof(int64_t));
}

void prep_bucket(const int64_t *list, int64_t n, const int64_t *key, int64_t nkeys,
                 int64_t *off, int64_t *out)
{
    memset(off, 0, (size_t)(nkeys + 1) * sizeof *off);
    for (int64_t i = 0; i < n; i++)
        off[key[list ? list[i] : i] + 1]++;
    for (int64_t k = 0; k < nkeys; k++)
        off[k + 1] += off[k];
    for (int64_t i = 0; i < n; i++) {
        int64_t item = list ? list[i] : i;
        out[off[key[item]]++] = item;
    }
    for (int64_t k = nkeys; k > 0; k--)
        off[k] = off[k - 1];
    off[0] = 0;
}

/* networkx topological_generations, flattened: the generations are filled
 * in one FIFO queue, so this is Kahn's algorithm with a queue that starts
 * with the zero in-degree nodes in node order. */
int64_t prep_toposort(int64_t n, const int64_t *order, const int64_t *succ_off,
                      const int64_t *succ, int64_t *out, int64_t *indeg)
{
    memset(indeg, 0, (size_t)n * sizeof *indeg);
    for (int64_t v = 0; v < n; v++)
        for (int64_t i = succ_off[v]; i < succ_off[v + 1]; i++)
            indeg[succ[i]]++;
    int64_t qt = 0;
    for (int64_t i = 0; i < n; i++)
        if (indeg[order[i]] == 0)
            out[qt++] = order[i];
    for (int64_t qh = 0; qh < qt; qh++) {
        int64_t v = out[qh];
        for (int64_t i = succ_off[v]; i < succ_off[v + 1]; i++)
            if (--indeg[succ[i]] == 0)
                out[qt++] = succ[i];
    }
    return qt;
}

typedef struct pos_item {
    int64_t pos, e;
} pos_item;

static int cmp_pos(const void *a, const void *b)
{
    const pos_item *x = a, *y = b;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

static int intersects(const uint64_t *a, const uint64_t *b, int64_t W)
{
    for (int64_t w = 0; w < W; w++)
        if (a[w] & b[w])
            return 1;
    return 0;
}

/* Bitset of E bits per line-graph node, or an error if that is too large. */
static plstm_status alloc_bitsets(int64_t E, uint64_t **bits, int64_t *W)
{
    *W = (E + 63) / 64;
    const double bytes = (double)E * (double)*W * 8.0;
    if (bytes > (double)(1u << 30))
        return plstm_fail(PLSTM_ERR_UNSUPPORTED,
                          "graph prep: multitree pruning of a graph with %lld edges needs "
                          "%.0f MiB of ancestor sets (limit 1024 MiB)",
                          (long long)E, bytes / (1 << 20));
    *bits = calloc((size_t)(E * *W > 0 ? E * *W : 1), sizeof **bits);
    if (!*bits)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY,
                          "graph prep: cannot allocate ancestor sets for %lld edges",
                          (long long)E);
    return PLSTM_OK;
}

/* prune_dag_to_multitree on the line graph (nodes = DAG edges): current in
 * topological order, its predecessors sorted by topological position; p ->
 * current is dropped when an ancestor of p is already an ancestor of
 * current. The kept arcs become each p's successor list in the order they
 * were added (= topological order of current), as networkx stores them.
 * Output: m_off[E+1], m_succ[kept]. */
static plstm_status prune(const plstm_prepared_graph *pg, const int64_t *lorder,
                          const int64_t *l_off, const int64_t *l_succ, const int64_t *pred_off,
                          const int64_t *pred, int64_t *m_off, int64_t **m_succ, int64_t *kept)
{
    const int64_t E = pg->num_edges, Afull = l_off[E];
    int64_t W = 0;
    uint64_t *anc = NULL;
    PLSTM_TRY(alloc_bitsets(E, &anc, &W));
    int64_t *topo = prep_alloc(E), *pos = prep_alloc(E), *kf = prep_alloc(Afull);
    int64_t *kt = prep_alloc(Afull), *order = prep_alloc(Afull);
    pos_item *items = calloc((size_t)(pg->max_degree > 0 ? pg->max_degree : 1), sizeof *items);
    plstm_status st = PLSTM_OK;
    if (!topo || !pos || !kf || !kt || !order || !items) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "graph prep: cannot allocate pruning work");
        goto done;
    }
    prep_toposort(E, lorder, l_off, l_succ, topo, pos);
    for (int64_t i = 0; i < E; i++)
        pos[topo[i]] = i;
    int64_t nk = 0;
    for (int64_t i = 0; i < E; i++) {
        const int64_t cur = topo[i], v = pg->tail[cur];
        const int64_t np = pred_off[v + 1] - pred_off[v];
        for (int64_t j = 0; j < np; j++)
            items[j] = (pos_item){pos[pred[pred_off[v] + j]], pred[pred_off[v] + j]};
        qsort(items, (size_t)np, sizeof *items, cmp_pos);
        uint64_t *ac = anc + (size_t)cur * (size_t)W;
        for (int64_t j = 0; j < np; j++) {
            const int64_t p = items[j].e;
            const uint64_t *ap = anc + (size_t)p * (size_t)W;
            if (intersects(ap, ac, W))
                continue;
            kf[nk] = p;
            kt[nk++] = cur;
            for (int64_t w = 0; w < W; w++)
                ac[w] |= ap[w];
            ac[p >> 6] |= (uint64_t)1 << (p & 63);
        }
    }
    *m_succ = prep_alloc(nk);
    if (!*m_succ) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "graph prep: cannot allocate pruned arcs");
        goto done;
    }
    prep_bucket(NULL, nk, kf, E, m_off, order);
    for (int64_t j = 0; j < nk; j++)
        (*m_succ)[j] = kt[order[j]];
    *kept = nk;
done:
    free(anc);
    free(topo);
    free(pos);
    free(kf);
    free(kt);
    free(order);
    free(items);
    return st;
}

/* Slot maps, degrees and the dag.edges order from the DAG's lists. */
static void derive_slots(plstm_prepared_graph *pg, const int64_t *node_order,
                         const int64_t *succ_off, const int64_t *succ, const int64_t *pred_off,
                         const int64_t *pred)
{
    pg->max_degree = 0;
    for (int64_t v = 0; v < pg->num_nodes; v++) {
        for (int64_t i = succ_off[v]; i < succ_off[v + 1]; i++)
            pg->out_slot[succ[i]] = i - succ_off[v];
        for (int64_t i = pred_off[v]; i < pred_off[v + 1]; i++)
            pg->in_slot[pred[i]] = i - pred_off[v];
        pg->outdegree[v] = succ_off[v + 1] - succ_off[v];
        pg->indegree[v] = pred_off[v + 1] - pred_off[v];
        if (pg->outdegree[v] > pg->max_degree)
            pg->max_degree = pg->outdegree[v];
        if (pg->indegree[v] > pg->max_degree)
            pg->max_degree = pg->indegree[v];
    }
    int64_t k = 0;
    for (int64_t i = 0; i < pg->num_nodes; i++) {
        const int64_t u = node_order[i];
        for (int64_t j = succ_off[u]; j < succ_off[u + 1]; j++)
            pg->dag_order[k++] = succ[j];
    }
}

plstm_status prep_derive(plstm_prepared_graph *pg, const int64_t *node_order, const int64_t *ins)
{
    const int64_t N = pg->num_nodes, E = pg->num_edges;
    int64_t *succ_off = prep_alloc(N + 1), *succ = prep_alloc(E);
    int64_t *pred_off = prep_alloc(N + 1), *pred = prep_alloc(E);
    int64_t *lorder = prep_alloc(E), *seen = prep_alloc(E), *l_off = prep_alloc(E + 1);
    int64_t *m_off = prep_alloc(E + 1), *l_succ = NULL, *m_succ = NULL;
    plstm_status st = PLSTM_OK;
    if (!succ_off || !succ || !pred_off || !pred || !lorder || !seen || !l_off || !m_off) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "graph prep: cannot allocate work arrays");
        goto done;
    }
    prep_bucket(ins, E, pg->tail, N, succ_off, succ);
    prep_bucket(ins, E, pg->head, N, pred_off, pred);
    derive_slots(pg, node_order, succ_off, succ, pred_off, pred);

    /* nx.line_graph: for each DAG edge f in dag.edges order, add node f, then
     * arcs f -> e for e in successors-edges of head(f); nodes appear in the
     * order they are first mentioned. */
    int64_t nl = 0;
    for (int64_t i = 0; i < E; i++) {
        const int64_t f = pg->dag_order[i], v = pg->head[f];
        if (!seen[f]) {
            seen[f] = 1;
            lorder[nl++] = f;
        }
        for (int64_t j = succ_off[v]; j < succ_off[v + 1]; j++)
            if (!seen[succ[j]]) {
                seen[succ[j]] = 1;
                lorder[nl++] = succ[j];
            }
    }
    for (int64_t f = 0; f < E; f++) {
        const int64_t v = pg->head[f];
        l_off[f + 1] = l_off[f] + succ_off[v + 1] - succ_off[v];
    }
    if (!(l_succ = prep_alloc(l_off[E]))) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "graph prep: cannot allocate %lld line-graph arcs",
                        (long long)l_off[E]);
        goto done;
    }
    for (int64_t f = 0; f < E; f++) {
        const int64_t v = pg->head[f];
        memcpy(l_succ + l_off[f], succ + succ_off[v],
               (size_t)(succ_off[v + 1] - succ_off[v]) * sizeof *succ);
    }

    const int64_t *a_off = l_off, *a_succ = l_succ;
    int64_t A = l_off[E];
    if (pg->mode == PLSTM_GRAPH_MODE_D) {
        if ((st = prune(pg, lorder, l_off, l_succ, pred_off, pred, m_off, &m_succ, &A)) !=
            PLSTM_OK)
            goto done;
        a_off = m_off;
        a_succ = m_succ;
    }

    /* ldag_sorted, and ldag.edges: per line-graph node in node order, its
     * successors in insertion order. */
    prep_toposort(E, lorder, a_off, a_succ, pg->topo_order, seen);
    for (int64_t i = 0; i < E; i++)
        pg->topo_pos[pg->topo_order[i]] = i;
    pg->num_arcs = A;
    pg->arc_in = prep_alloc(A);
    pg->arc_out = prep_alloc(A);
    pg->arc_node = prep_alloc(A);
    pg->arc_node_q8 = prep_alloc(A);
    if (!pg->arc_in || !pg->arc_out || !pg->arc_node || !pg->arc_node_q8) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "graph prep: cannot allocate %lld arcs",
                        (long long)A);
        goto done;
    }
    int64_t a = 0;
    for (int64_t i = 0; i < E; i++) {
        const int64_t f = lorder[i];
        for (int64_t j = a_off[f]; j < a_off[f + 1]; j++, a++) {
            pg->arc_in[a] = f;
            pg->arc_out[a] = a_succ[j];
            pg->arc_node[a] = pg->head[f];
            pg->arc_node_q8[a] = pg->tail[f];
        }
    }
done:
    free(succ_off);
    free(succ);
    free(pred_off);
    free(pred);
    free(lorder);
    free(seen);
    free(l_off);
    free(l_succ);
    free(m_off);
    free(m_succ);
    return st;
}

int plstm_prepared_graph_is_multitree(const plstm_prepared_graph *pg)
{
    if (!pg)
        return 0;
    const int64_t E = pg->num_edges, A = pg->num_arcs;
    const int64_t W = (E + 63) / 64;
    uint64_t *anc = calloc((size_t)(E * W > 0 ? E * W : 1), sizeof *anc);
    uint64_t *u = calloc((size_t)(W > 0 ? W : 1), sizeof *u);
    int64_t *off = prep_alloc(E + 1), *by_to = prep_alloc(A);
    int result = -1;
    if (!anc || !u || !off || !by_to)
        goto done;
    prep_bucket(NULL, A, pg->arc_out, E, off, by_to);
    /* Two paths x ~> e exist iff two in-arcs of some edge e reach back to a
     * common x (or one in-arc's source already has two paths, found earlier):
     * so the sets {p} ∪ anc(p) over e's in-arcs must be pairwise disjoint. */
    result = 1;
    for (int64_t i = 0; i < E && result == 1; i++) {
        const int64_t e = pg->topo_order[i];
        memset(u, 0, (size_t)W * sizeof *u);
        for (int64_t j = off[e]; j < off[e + 1]; j++) {
            const int64_t p = pg->arc_in[by_to[j]];
            const uint64_t *ap = anc + (size_t)p * (size_t)W;
            const uint64_t pbit = (uint64_t)1 << (p & 63);
            if (intersects(ap, u, W) || (u[p >> 6] & pbit)) {
                result = 0;
                break;
            }
            for (int64_t w = 0; w < W; w++)
                u[w] |= ap[w];
            u[p >> 6] |= pbit;
        }
        memcpy(anc + (size_t)e * (size_t)W, u, (size_t)W * sizeof *u);
    }
done:
    free(anc);
    free(u);
    free(off);
    free(by_to);
    return result;
}
