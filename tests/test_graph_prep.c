/* Graph preparation (plstm-math.md §6.1): the orders and slot maps against
 * the `graph_*` metadata of the four reference graph files and against a
 * fixture computed with networkx; multitree pruning (a diamond, and random
 * DAGs checked by brute-force path counting written here); reversal; dagify;
 * input errors; batching into one DAG object, whose scalar-gate graph
 * forward is checked against a naive recurrence over the pruned arcs. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const plstm_graph_prep_opts OPT_P = {0, PLSTM_GRAPH_MODE_P, 0};
static const plstm_graph_prep_opts OPT_D = {0, PLSTM_GRAPH_MODE_D, 0};

/* All integers of a metadata string like "[[0, 1], [1, 2]]", in order. */
static int64_t parse_ints(const char *s, int64_t *out, int64_t cap)
{
    int64_t n = 0;
    while (*s) {
        if ((*s >= '0' && *s <= '9') || (*s == '-' && s[1] >= '0' && s[1] <= '9')) {
            char *end;
            long long v = strtoll(s, &end, 10);
            if (n < cap)
                out[n] = v;
            n++;
            s = end;
        } else {
            s++;
        }
    }
    return n;
}

static int64_t find_edge(const plstm_prepared_graph *g, int64_t t, int64_t h)
{
    for (int64_t i = 0; i < g->num_edges; i++)
        if (g->tail[i] == t && g->head[i] == h)
            return i;
    return -1;
}

/* ---- reference files ------------------------------------------------------ */

static void check_reference(const char *file)
{
    plstm_safetensors *st = NULL;
    TU_OK(plstm_safetensors_open(&st, tu_reference_path(file)));
    const plstm_safetensors_tensor *te = plstm_safetensors_find(st, "input.edges");
    assert_non_null(te);
    assert_int_equal(te->rank, 2);
    const int64_t E = te->shape[0];
    int64_t *edges = tu_calloc((size_t)(2 * E), sizeof(int64_t));
    TU_OK(plstm_safetensors_read_i64(st, "input.edges", edges, (size_t)(2 * E)));
    const plstm_safetensors_tensor *tx = plstm_safetensors_find(st, "input.x");
    assert_non_null(tx);
    const int64_t N = tx->shape[0];
    const char *mode = plstm_safetensors_metadata(st, "mode");
    assert_non_null(mode);
    plstm_graph_prep_opts o = {0, mode[0] == 'D' ? PLSTM_GRAPH_MODE_D : PLSTM_GRAPH_MODE_P, 0};
    plstm_prepared_graph *g = NULL;
    TU_OK(plstm_graph_prepare(&g, N, E, edges, &o));

    enum { CAP = 4096 };
    int64_t *v = tu_calloc(CAP, sizeof(int64_t));
#define META(key) parse_ints(plstm_safetensors_metadata(st, key) ? plstm_safetensors_metadata(st, key) : "", v, CAP)
    /* DAG edges in dag.edges order. */
    assert_int_equal(META("graph_dag_edges"), 2 * E);
    for (int64_t i = 0; i < E; i++) {
        assert_int_equal(g->tail[g->dag_order[i]], v[2 * i]);
        assert_int_equal(g->head[g->dag_order[i]], v[2 * i + 1]);
    }
    assert_int_equal(META("graph_dag_edge_orig_idx"), E);
    for (int64_t i = 0; i < E; i++)
        assert_int_equal(g->dag_order[i], v[i]);
    /* Topological edge order. */
    assert_int_equal(META("graph_topo_edge_order"), 2 * E);
    for (int64_t i = 0; i < E; i++) {
        assert_int_equal(g->tail[g->topo_order[i]], v[2 * i]);
        assert_int_equal(g->head[g->topo_order[i]], v[2 * i + 1]);
        assert_int_equal(g->topo_pos[g->topo_order[i]], i);
    }
    assert_int_equal(META("graph_topo_edge_orig_idx"), E);
    for (int64_t i = 0; i < E; i++)
        assert_int_equal(g->topo_order[i], v[i]);
    /* Line-graph arcs (after pruning in D mode), in enumeration order. */
    const int64_t A = g->num_arcs;
    assert_int_equal(META("graph_line_graph_arcs"), 4 * A);
    for (int64_t a = 0; a < A; a++) {
        assert_int_equal(g->tail[g->arc_in[a]], v[4 * a]);
        assert_int_equal(g->head[g->arc_in[a]], v[4 * a + 1]);
        assert_int_equal(g->tail[g->arc_out[a]], v[4 * a + 2]);
        assert_int_equal(g->head[g->arc_out[a]], v[4 * a + 3]);
    }
    assert_int_equal(META("graph_line_graph_arc_in_orig_idx"), A);
    for (int64_t a = 0; a < A; a++)
        assert_int_equal(g->arc_in[a], v[a]);
    assert_int_equal(META("graph_line_graph_arc_out_orig_idx"), A);
    for (int64_t a = 0; a < A; a++)
        assert_int_equal(g->arc_out[a], v[a]);
    assert_int_equal(META("graph_line_graph_arc_nodeidx"), A);
    for (int64_t a = 0; a < A; a++) {
        assert_int_equal(g->arc_node_q8[a], v[a]); /* Q8: tail of e' */
        assert_int_equal(g->arc_node[a], g->head[g->arc_in[a]]);
        assert_int_equal(g->arc_node[a], g->tail[g->arc_out[a]]);
    }
    /* Slot maps [u, v, s] and degrees. */
    assert_int_equal(META("graph_out_slot"), 3 * E);
    for (int64_t i = 0; i < E; i++) {
        int64_t e = find_edge(g, v[3 * i], v[3 * i + 1]);
        assert_true(e >= 0);
        assert_int_equal(g->out_slot[e], v[3 * i + 2]);
    }
    assert_int_equal(META("graph_in_slot"), 3 * E);
    for (int64_t i = 0; i < E; i++) {
        int64_t e = find_edge(g, v[3 * i], v[3 * i + 1]);
        assert_true(e >= 0);
        assert_int_equal(g->in_slot[e], v[3 * i + 2]);
    }
    assert_int_equal(META("graph_indegree"), N);
    for (int64_t n = 0; n < N; n++)
        assert_int_equal(g->indegree[n], v[n]);
    assert_int_equal(META("graph_outdegree"), N);
    for (int64_t n = 0; n < N; n++)
        assert_int_equal(g->outdegree[n], v[n]);
#undef META
    if (o.mode == PLSTM_GRAPH_MODE_D)
        assert_int_equal(plstm_prepared_graph_is_multitree(g), 1);
    free(v);
    free(edges);
    plstm_prepared_graph_destroy(g);
    plstm_safetensors_close(st);
}

static void test_reference_orders(void **state)
{
    (void)state;
    check_reference("graph_layer_P.safetensors");
    check_reference("graph_edge_layer_P.safetensors");
    check_reference("graph_layer_D.safetensors");
    check_reference("graph_edge_layer_D.safetensors");
}

/* ---- networkx fixture -------------------------------------------------------
 * Expected values computed once with networkx 3.6 (nx.line_graph,
 * nx.topological_sort) following the reference's PreparedGraph.create and
 * PreparedGraph.reverse, for this 9-node graph given in Graph.edges order.
 * Indices are original edge indices; arcs are (in, out, tail of in). */
static const int64_t fx_edges[] = {0, 5, 1, 2, 1, 3, 2, 3, 2, 5, 2, 4,
                                   3, 5, 4, 5, 4, 7, 4, 8, 5, 6, 5, 8};
static const int64_t fx_fwd_P_dag[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
static const int64_t fx_fwd_P_topo[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
static const int64_t fx_fwd_P_arcs[] = {0, 10, 0, 0, 11, 0, 1, 3, 1, 1, 4, 1, 1, 5, 1, 3, 6, 2,
                                        4, 10, 2, 4, 11, 2, 5, 7, 2, 5, 8, 2, 5, 9, 2, 2, 6, 1,
                                        6, 10, 3, 6, 11, 3, 7, 10, 4, 7, 11, 4};
static const int64_t fx_fwd_P_fslot[] = {0, 0, 1, 0, 1, 2, 0, 0, 1, 2, 0, 1};
static const int64_t fx_fwd_P_bslot[] = {0, 0, 0, 1, 1, 0, 2, 3, 0, 0, 0, 1};
static const int64_t fx_fwd_D_topo[] = {0, 1, 2, 3, 4, 5, 6, 10, 11, 7, 8, 9};
static const int64_t fx_fwd_D_arcs[] = {0, 10, 0, 0, 11, 0, 1, 3, 1, 1, 4, 1, 1, 5, 1, 3, 6, 2,
                                        4, 10, 2, 4, 11, 2, 5, 7, 2, 5, 8, 2, 5, 9, 2, 2, 6, 1};
static const int64_t fx_rev_dag[] = {11, 9, 8, 10, 7, 6, 4, 0, 5, 3, 2, 1};
static const int64_t fx_rev_topo[] = {11, 9, 8, 10, 7, 6, 4, 0, 5, 3, 2, 1};
static const int64_t fx_rev_P_arcs[] = {11, 7, 8, 11, 6, 8, 11, 4, 8, 11, 0, 8, 7, 5, 5, 6, 3, 5,
                                        6, 2, 5, 4, 1, 5, 9, 5, 8, 5, 1, 4, 8, 5, 7, 10, 7, 6,
                                        10, 6, 6, 10, 4, 6, 10, 0, 6, 3, 1, 3};
static const int64_t fx_rev_D_arcs[] = {11, 7, 8, 11, 6, 8, 11, 4, 8, 11, 0, 8, 7, 5, 5, 6, 3, 5,
                                        6, 2, 5, 4, 1, 5, 9, 5, 8, 8, 5, 7, 10, 7, 6, 10, 6, 6,
                                        10, 4, 6, 10, 0, 6};
static const int64_t fx_rev_fslot[] = {3, 0, 1, 0, 2, 0, 1, 0, 0, 1, 0, 0};
static const int64_t fx_rev_bslot[] = {0, 1, 0, 2, 0, 1, 0, 2, 1, 0, 1, 0};

static void check_fixture(int reverse, plstm_graph_mode mode, const int64_t *dag,
                          const int64_t *topo, const int64_t *arcs, int64_t A,
                          const int64_t *fslot, const int64_t *bslot)
{
    plstm_graph_prep_opts o = {0, mode, reverse};
    plstm_prepared_graph *g = NULL;
    TU_OK(plstm_graph_prepare(&g, 9, 12, fx_edges, &o));
    assert_int_equal(g->num_arcs, A);
    for (int64_t i = 0; i < 12; i++) {
        assert_int_equal(g->dag_order[i], dag[i]);
        assert_int_equal(g->topo_order[i], topo[i]);
        assert_int_equal(g->out_slot[i], fslot[i]);
        assert_int_equal(g->in_slot[i], bslot[i]);
    }
    for (int64_t a = 0; a < A; a++) {
        assert_int_equal(g->arc_in[a], arcs[3 * a]);
        assert_int_equal(g->arc_out[a], arcs[3 * a + 1]);
        assert_int_equal(g->arc_node_q8[a], arcs[3 * a + 2]);
    }
    plstm_prepared_graph_destroy(g);
}

static void test_networkx_fixture(void **state)
{
    (void)state;
    check_fixture(0, PLSTM_GRAPH_MODE_P, fx_fwd_P_dag, fx_fwd_P_topo, fx_fwd_P_arcs, 16,
                  fx_fwd_P_fslot, fx_fwd_P_bslot);
    check_fixture(0, PLSTM_GRAPH_MODE_D, fx_fwd_P_dag, fx_fwd_D_topo, fx_fwd_D_arcs, 12,
                  fx_fwd_P_fslot, fx_fwd_P_bslot);
    check_fixture(1, PLSTM_GRAPH_MODE_P, fx_rev_dag, fx_rev_topo, fx_rev_P_arcs, 16,
                  fx_rev_fslot, fx_rev_bslot);
    check_fixture(1, PLSTM_GRAPH_MODE_D, fx_rev_dag, fx_rev_topo, fx_rev_D_arcs, 14,
                  fx_rev_fslot, fx_rev_bslot);
}

/* ---- multitree pruning ----------------------------------------------------- */

static int has_arc(const plstm_prepared_graph *g, int64_t from, int64_t to)
{
    for (int64_t a = 0; a < g->num_arcs; a++)
        if (g->arc_in[a] == from && g->arc_out[a] == to)
            return 1;
    return 0;
}

/* A diamond between a source and a sink edge: (0,1) reaches (4,5) through
 * (1,2),(2,4) and through (1,3),(3,4). D mode keeps the topologically earlier
 * predecessor (2,4) of (4,5) and drops (3,4) -> (4,5). */
static void test_diamond(void **state)
{
    (void)state;
    const int64_t edges[] = {0, 1, 1, 2, 1, 3, 2, 4, 3, 4, 4, 5};
    plstm_prepared_graph *p = NULL, *d = NULL;
    TU_OK(plstm_graph_prepare(&p, 6, 6, edges, &OPT_P));
    TU_OK(plstm_graph_prepare(&d, 6, 6, edges, &OPT_D));
    assert_int_equal(p->num_arcs, 6);
    assert_int_equal(d->num_arcs, 5);
    assert_int_equal(plstm_prepared_graph_is_multitree(p), 0);
    assert_int_equal(plstm_prepared_graph_is_multitree(d), 1);
    assert_true(has_arc(p, 4, 5));
    assert_false(has_arc(d, 4, 5));
    assert_true(has_arc(d, 3, 5));
    for (int64_t a = 0; a < d->num_arcs; a++)
        assert_true(has_arc(p, d->arc_in[a], d->arc_out[a]));
    plstm_prepared_graph_destroy(p);
    plstm_prepared_graph_destroy(d);
}

/* Brute force: number of directed paths between every ordered pair of
 * line-graph nodes (capped at 2), by DFS from each source. */
static int64_t count_paths(const plstm_prepared_graph *g, int64_t from, int64_t to, int depth)
{
    if (from == to)
        return 1;
    if (depth > g->num_edges)
        return 99; /* longer than any path of a DAG: a cycle */
    int64_t n = 0;
    for (int64_t a = 0; a < g->num_arcs && n < 2; a++)
        if (g->arc_in[a] == from)
            n += count_paths(g, g->arc_out[a], to, depth + 1);
    return n;
}

static int brute_multitree(const plstm_prepared_graph *g)
{
    for (int64_t x = 0; x < g->num_edges; x++)
        for (int64_t y = 0; y < g->num_edges; y++)
            if (x != y && count_paths(g, x, y, 0) > 1)
                return 0;
    return 1;
}

static int64_t random_graph(tu_rng *r, int64_t N, double p, int64_t *edges)
{
    int64_t E = 0;
    for (int64_t u = 0; u < N; u++)
        for (int64_t v = u + 1; v < N; v++)
            if (tu_rng_uniform(r, 0, 1) < p) {
                int flip = tu_rng_u64(r) & 1;
                edges[2 * E] = flip ? v : u;
                edges[2 * E + 1] = flip ? u : v;
                E++;
            }
    /* shuffle the edge list */
    for (int64_t i = E - 1; i > 0; i--) {
        int64_t j = (int64_t)(tu_rng_u64(r) % (uint64_t)(i + 1));
        for (int k = 0; k < 2; k++) {
            int64_t t = edges[2 * i + k];
            edges[2 * i + k] = edges[2 * j + k];
            edges[2 * j + k] = t;
        }
    }
    return E;
}

static void test_multitree_random(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 11);
    int64_t edges[2 * 66];
    int pruned_some = 0, p_not_multitree = 0;
    for (int trial = 0; trial < 120; trial++) {
        const int64_t N = 2 + (int64_t)(tu_rng_u64(&r) % 10);
        const double dens = tu_rng_uniform(&r, 0.15, 0.8);
        const int64_t E = random_graph(&r, N, dens, edges);
        for (int rev = 0; rev < 2; rev++) {
            plstm_graph_prep_opts op = {0, PLSTM_GRAPH_MODE_P, rev};
            plstm_graph_prep_opts od = {0, PLSTM_GRAPH_MODE_D, rev};
            plstm_prepared_graph *p = NULL, *d = NULL;
            TU_OK(plstm_graph_prepare(&p, N, E, edges, &op));
            TU_OK(plstm_graph_prepare(&d, N, E, edges, &od));
            assert_int_equal(brute_multitree(d), 1);
            assert_int_equal(plstm_prepared_graph_is_multitree(d), 1);
            const int bp = brute_multitree(p);
            assert_int_equal(plstm_prepared_graph_is_multitree(p), bp);
            p_not_multitree += !bp;
            /* D keeps a subset of P's arcs and never cuts an edge off:
             * an edge with incoming arcs keeps its earliest one. */
            assert_true(d->num_arcs <= p->num_arcs);
            pruned_some += d->num_arcs < p->num_arcs;
            for (int64_t a = 0; a < d->num_arcs; a++)
                assert_true(has_arc(p, d->arc_in[a], d->arc_out[a]));
            for (int64_t e = 0; e < E; e++) {
                int in_p = 0, in_d = 0;
                for (int64_t a = 0; a < p->num_arcs; a++)
                    in_p |= p->arc_out[a] == e;
                for (int64_t a = 0; a < d->num_arcs; a++)
                    in_d |= d->arc_out[a] == e;
                assert_int_equal(in_p, in_d);
            }
            plstm_prepared_graph_destroy(p);
            plstm_prepared_graph_destroy(d);
        }
    }
    assert_true(pruned_some > 20);
    assert_true(p_not_multitree > 20);
}

/* ---- structure: dagify, reversal, orders, slots ---------------------------- */

static void check_structure(const plstm_prepared_graph *g)
{
    const int64_t E = g->num_edges, N = g->num_nodes;
    /* topo_order is a permutation and a topological order of the kept arcs. */
    for (int64_t a = 0; a < g->num_arcs; a++) {
        assert_true(g->topo_pos[g->arc_in[a]] < g->topo_pos[g->arc_out[a]]);
        assert_int_equal(g->head[g->arc_in[a]], g->tail[g->arc_out[a]]);
    }
    int64_t *cnt = tu_calloc((size_t)(E + N + 1), sizeof(int64_t));
    for (int64_t i = 0; i < E; i++)
        cnt[g->topo_order[i]]++;
    for (int64_t i = 0; i < E; i++)
        assert_int_equal(cnt[i], 1);
    /* Slots at each node are 0..degree-1, each once. */
    for (int64_t n = 0; n < N; n++) {
        int64_t in = 0, out = 0, in_mask = 0, out_mask = 0;
        for (int64_t i = 0; i < E; i++) {
            if (g->head[i] == n) {
                in++;
                in_mask |= (int64_t)1 << g->in_slot[i];
            }
            if (g->tail[i] == n) {
                out++;
                out_mask |= (int64_t)1 << g->out_slot[i];
            }
        }
        assert_int_equal(g->indegree[n], in);
        assert_int_equal(g->outdegree[n], out);
        assert_int_equal(in_mask, ((int64_t)1 << in) - 1);
        assert_int_equal(out_mask, ((int64_t)1 << out) - 1);
        assert_true(g->max_degree >= in && g->max_degree >= out);
    }
    free(cnt);
}

static void test_dagify_and_reverse(void **state)
{
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 5);
    int64_t edges[2 * 66];
    for (int trial = 0; trial < 40; trial++) {
        const int64_t N = 2 + (int64_t)(tu_rng_u64(&r) % 10);
        const int64_t E = random_graph(&r, N, 0.4, edges);
        plstm_graph_prep_opts of = {0, PLSTM_GRAPH_MODE_P, 0}, orv = {0, PLSTM_GRAPH_MODE_P, 1};
        plstm_prepared_graph *f = NULL, *b = NULL;
        TU_OK(plstm_graph_prepare(&f, N, E, edges, &of));
        TU_OK(plstm_graph_prepare(&b, N, E, edges, &orv));
        assert_int_equal(b->reversed, 1);
        assert_int_equal(f->num_arcs, b->num_arcs);
        for (int64_t i = 0; i < E; i++) {
            const int64_t lo = edges[2 * i] < edges[2 * i + 1] ? edges[2 * i] : edges[2 * i + 1];
            const int64_t hi = edges[2 * i] ^ edges[2 * i + 1] ^ lo;
            assert_int_equal(f->tail[i], lo); /* dagify: low -> high */
            assert_int_equal(f->head[i], hi);
            assert_int_equal(b->tail[i], hi); /* reversed */
            assert_int_equal(b->head[i], lo);
        }
        for (int64_t n = 0; n < N; n++) {
            assert_int_equal(f->indegree[n], b->outdegree[n]);
            assert_int_equal(f->outdegree[n], b->indegree[n]);
        }
        for (int64_t a = 0; a < f->num_arcs; a++) /* arcs turn around */
            assert_true(has_arc(b, f->arc_out[a], f->arc_in[a]));
        check_structure(f);
        check_structure(b);
        plstm_prepared_graph_destroy(f);
        plstm_prepared_graph_destroy(b);
    }
}

/* A directed acyclic input is oriented low -> high as well, and gives the
 * same DAG as the same edges undirected. */
static void test_directed_input(void **state)
{
    (void)state;
    const int64_t edges[] = {3, 1, 1, 0, 3, 2, 2, 0, 4, 3};
    plstm_graph_prep_opts od = {1, PLSTM_GRAPH_MODE_D, 0};
    plstm_prepared_graph *d = NULL, *u = NULL;
    TU_OK(plstm_graph_prepare(&d, 5, 5, edges, &od));
    TU_OK(plstm_graph_prepare(&u, 5, 5, edges, &OPT_D));
    for (int64_t i = 0; i < 5; i++) {
        assert_true(d->tail[i] < d->head[i]);
        assert_int_equal(d->tail[i], u->tail[i]);
        assert_int_equal(d->head[i], u->head[i]);
        assert_int_equal(d->topo_order[i], u->topo_order[i]);
    }
    assert_int_equal(d->num_arcs, u->num_arcs);
    plstm_prepared_graph_destroy(d);
    plstm_prepared_graph_destroy(u);
}

static void expect_error(int64_t N, int64_t E, const int64_t *edges, int directed,
                         const char *needle)
{
    plstm_graph_prep_opts o = {directed, PLSTM_GRAPH_MODE_D, 0};
    static plstm_prepared_graph dummy;
    plstm_prepared_graph *g = &dummy; /* must be reset to NULL */
    plstm_status s = plstm_graph_prepare(&g, N, E, edges, &o);
    assert_int_equal(s, PLSTM_ERR_GRAPH);
    assert_null(g);
    if (!strstr(plstm_last_error(), needle))
        fail_msg("message '%s' lacks '%s'", plstm_last_error(), needle);
}

static void test_errors(void **state)
{
    (void)state;
    const int64_t cyc[] = {0, 1, 1, 2, 2, 0, 2, 3};
    expect_error(4, 4, cyc, 1, "cycle");
    const int64_t two[] = {0, 1, 1, 0};
    expect_error(2, 2, two, 1, "cycle");
    expect_error(2, 2, two, 0, "duplicate of edge 0");
    const int64_t dup[] = {0, 1, 1, 2, 0, 1};
    expect_error(3, 3, dup, 1, "edge 2 (0, 1): duplicate of edge 0");
    const int64_t loop[] = {0, 1, 2, 2};
    expect_error(3, 2, loop, 0, "edge 1 (2, 2): self-loop");
    const int64_t bad[] = {0, 1, 1, 3};
    expect_error(3, 2, bad, 0, "edge 1 (1, 3): node index out of range [0, 3)");
    const int64_t neg[] = {-1, 1};
    expect_error(3, 1, neg, 1, "out of range");
    /* The cycle through a larger acyclic part is still found. */
    const int64_t cyc2[] = {0, 1, 1, 2, 2, 3, 3, 4, 4, 2, 0, 5};
    expect_error(6, 6, cyc2, 1, "cycle through this edge");
    /* Undirected, the same edges are fine. */
    plstm_prepared_graph *g = NULL;
    TU_OK(plstm_graph_prepare(&g, 6, 6, cyc2, &OPT_P));
    plstm_prepared_graph_destroy(g);
    /* Empty graphs are fine. */
    TU_OK(plstm_graph_prepare(&g, 0, 0, NULL, &OPT_D));
    assert_int_equal(g->num_arcs, 0);
    plstm_prepared_graph_destroy(g);
    assert_int_equal(plstm_graph_prepare(&g, 3, 1, NULL, NULL), PLSTM_ERR_INVALID_ARGUMENT);
}

/* ---- batches --------------------------------------------------------------- */

/* Naive scalar-gate graph forward (§6.2), H = 1, over the given arcs. */
static void naive_forward(int64_t N, int64_t E, const int64_t *tail, const int64_t *head,
                          const int64_t *topo, int64_t A, const int64_t *afrom,
                          const int64_t *ato, int K, int V, const double *q, const double *k,
                          const double *v, const double *s, const double *t, const double *m,
                          const double *d, double *y)
{
    double *C = tu_calloc((size_t)(E * K * V + 1), sizeof(double));
    memset(y, 0, (size_t)(N * V) * sizeof(double));
    for (int64_t i = 0; i < E; i++) {
        const int64_t e = topo[i], a0 = tail[e], b = head[e];
        double *Ce = C + e * K * V;
        for (int64_t a = 0; a < A; a++)
            if (ato[a] == e)
                for (int j = 0; j < K * V; j++)
                    Ce[j] += t[a] * C[afrom[a] * K * V + j];
        for (int x = 0; x < K; x++)
            for (int z = 0; z < V; z++)
                Ce[x * V + z] += s[e] * k[a0 * K + x] * v[a0 * V + z];
        for (int z = 0; z < V; z++)
            for (int x = 0; x < K; x++)
                y[b * V + z] += m[e] * q[b * K + x] * Ce[x * V + z];
    }
    for (int64_t n = 0; n < N; n++) {
        double qk = 0;
        for (int x = 0; x < K; x++)
            qk += q[n * K + x] * k[n * K + x];
        for (int z = 0; z < V; z++)
            y[n * V + z] += d[n] * qk * v[n * V + z];
    }
    free(C);
}

static void test_batch(void **state)
{
    (void)state;
    const int64_t diamond[] = {0, 1, 1, 2, 1, 3, 2, 4, 3, 4, 4, 5};
    const int64_t node_counts[] = {9, 3, 6};
    const int64_t edge_counts[] = {12, 0, 6};
    int64_t all[2 * 18];
    memcpy(all, fx_edges, sizeof fx_edges);
    memcpy(all + 24, diamond, sizeof diamond);
    for (int mode = 0; mode < 2; mode++) {
        plstm_graph_prep_opts o = {0, mode ? PLSTM_GRAPH_MODE_D : PLSTM_GRAPH_MODE_P, mode};
        plstm_graph_batch *b = NULL;
        TU_OK(plstm_graph_batch_prepare(&b, 3, node_counts, edge_counts, all, &o));
        plstm_prepared_graph *pg[3];
        int64_t e0 = 0, A = 0;
        for (int g = 0; g < 3; g++) {
            TU_OK(plstm_graph_prepare(&pg[g], node_counts[g], edge_counts[g], all + 2 * e0, &o));
            e0 += edge_counts[g];
            A += pg[g]->num_arcs;
        }
        assert_int_equal(b->num_arcs, A);
        assert_int_equal(plstm_dag_num_arcs(b->dag), A);
        assert_int_equal(plstm_dag_num_edges(b->dag), 18);
        assert_int_equal(b->max_degree, 4);
        for (int g = 0; g < 3; g++) {
            int64_t n0, ed0, a0, na;
            TU_OK(plstm_dag_graph_range(b->dag, g, &n0, NULL, &ed0, NULL, &a0, &na));
            assert_int_equal(na, pg[g]->num_arcs);
            for (int64_t i = 0; i < pg[g]->num_edges; i++) {
                int64_t t, h;
                TU_OK(plstm_dag_edge(b->dag, ed0 + i, &t, &h, NULL));
                assert_int_equal(t, n0 + pg[g]->tail[i]);
                assert_int_equal(h, n0 + pg[g]->head[i]);
                assert_int_equal(b->in_slot[ed0 + i], pg[g]->in_slot[i]);
                assert_int_equal(b->out_slot[ed0 + i], pg[g]->out_slot[i]);
                assert_int_equal(b->topo_pos[ed0 + i], pg[g]->topo_pos[i]);
            }
            for (int64_t a = a0; a < a0 + na; a++) {
                int64_t f, t;
                TU_OK(plstm_dag_arc(b->dag, a, &f, &t));
                const int64_t r = b->arc_ref[a];
                assert_int_equal(f, ed0 + pg[g]->arc_in[r]);
                assert_int_equal(t, ed0 + pg[g]->arc_out[r]);
                assert_int_equal(b->arc_node[a], n0 + pg[g]->arc_node[r]);
                assert_int_equal(b->arc_node_q8[a], n0 + pg[g]->arc_node_q8[r]);
            }
        }
        /* The batched object drives the graph core over exactly these arcs. */
        const int64_t N = 18, E = 18;
        const int K = 2, V = 3;
        tu_rng r;
        tu_rng_seed(&r, 3 + (uint64_t)mode);
        double q[18 * 2], k[18 * 2], v[18 * 3], s[18], m[18], d[18], t[64], y[18 * 3],
            yn[18 * 3];
        tu_fill_f64(&r, q, 36, -1, 1);
        tu_fill_f64(&r, k, 36, -1, 1);
        tu_fill_f64(&r, v, 54, -1, 1);
        tu_fill_f64(&r, s, 18, 0, 1);
        tu_fill_f64(&r, m, 18, 0, 1);
        tu_fill_f64(&r, d, 18, 0, 1);
        tu_fill_f64(&r, t, 64, -1, 1);
        int64_t tail[18], head[18], topo[18], afrom[64], ato[64];
        for (int64_t e = 0; e < E; e++)
            TU_OK(plstm_dag_edge(b->dag, e, &tail[e], &head[e], NULL));
        for (int64_t a = 0; a < A; a++)
            TU_OK(plstm_dag_arc(b->dag, a, &afrom[a], &ato[a]));
        for (int64_t i = 0, g = 0, off = 0; g < 3; off += pg[g]->num_edges, g++)
            for (int64_t j = 0; j < pg[g]->num_edges; j++)
                topo[i++] = off + pg[g]->topo_order[j];
        naive_forward(N, E, tail, head, topo, A, afrom, ato, K, V, q, k, v, s, t, m, d, yn);
        plstm_context *ctx = NULL;
        TU_OK(plstm_context_create(&ctx, PLSTM_BACKEND_CPU, 0));
        plstm_graph_desc gd = {.dtype = PLSTM_F64, .H = 1, .K = K, .V = V};
        plstm_graph_inputs in = {q, k, v, s, t, m, d};
        TU_OK(plstm_graph_forward(ctx, &gd, b->dag, &in, y));
        TU_ASSERT_CLOSE(tu_rel_err_f64(y, yn, 54), 1e-12, "batched graph forward");
        plstm_context_destroy(ctx);
        for (int g = 0; g < 3; g++)
            plstm_prepared_graph_destroy(pg[g]);
        plstm_graph_batch_destroy(b);
    }
}

static void test_dag_arcs_errors(void **state)
{
    (void)state;
    const int64_t edges[] = {0, 1, 1, 2, 2, 3};
    const int64_t nc = 4, ec = 3;
    plstm_dag *dag = NULL;
    const int64_t ok_arcs[] = {1, 2, 0, 1};
    int64_t idx[2];
    int64_t ac = 2;
    TU_OK(plstm_dag_create_batch_arcs(&dag, 1, &nc, &ec, edges, &ac, ok_arcs, idx));
    assert_int_equal(plstm_dag_num_arcs(dag), 2);
    assert_int_equal(idx[0], 1); /* sorted by target edge */
    assert_int_equal(idx[1], 0);
    plstm_dag_destroy(dag);
    const int64_t not_adjacent[] = {0, 2};
    ac = 1;
    assert_int_equal(plstm_dag_create_batch_arcs(&dag, 1, &nc, &ec, edges, &ac, not_adjacent,
                                                 NULL),
                     PLSTM_ERR_GRAPH);
    assert_non_null(strstr(plstm_last_error(), "is not the tail"));
    const int64_t out_of_range[] = {0, 3};
    assert_int_equal(plstm_dag_create_batch_arcs(&dag, 1, &nc, &ec, edges, &ac, out_of_range,
                                                 NULL),
                     PLSTM_ERR_GRAPH);
    const int64_t twice[] = {0, 1, 0, 1};
    ac = 2;
    assert_int_equal(plstm_dag_create_batch_arcs(&dag, 1, &nc, &ec, edges, &ac, twice, NULL),
                     PLSTM_ERR_GRAPH);
    assert_non_null(strstr(plstm_last_error(), "twice"));
    assert_null(dag);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_orders), cmocka_unit_test(test_networkx_fixture),
        cmocka_unit_test(test_diamond),          cmocka_unit_test(test_multitree_random),
        cmocka_unit_test(test_dagify_and_reverse), cmocka_unit_test(test_directed_input),
        cmocka_unit_test(test_errors),           cmocka_unit_test(test_batch),
        cmocka_unit_test(test_dag_arcs_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
