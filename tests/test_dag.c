/* The DAG object and the DAG pLSTM core (plstm-math.md §1, §6.1, §6.2):
 * validation errors, levels and line-graph arc order against their
 * definitions, the level-parallel and per-entry topological forms against a
 * naive sequential pass written here, the chain against the unrolled
 * formula (3), a batch of graphs against the graphs one by one, backward
 * against central finite differences (F64), F32 against F64, and the
 * scalar-gate graph form against its own naive recurrence. */
#include "testutil.h"
#include "graph/dag_internal.h" /* slot map invariant */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- graphs --------------------------------------------------------------- */

typedef struct tgraph {
    int64_t N, E, A;
    int64_t *edges;            /* [E][2] */
    int64_t *arc_from, *arc_to; /* the documented arc order, built here */
} tgraph;

static void tgraph_arcs(tgraph *g)
{
    g->A = 0;
    for (int64_t e = 0; e < g->E; e++)
        for (int64_t f = 0; f < g->E; f++)
            if (g->edges[2 * f + 1] == g->edges[2 * e])
                g->A++;
    g->arc_from = tu_calloc((size_t)g->A + 1, sizeof(int64_t));
    g->arc_to = tu_calloc((size_t)g->A + 1, sizeof(int64_t));
    int64_t a = 0;
    for (int64_t e = 0; e < g->E; e++)
        for (int64_t f = 0; f < g->E; f++)
            if (g->edges[2 * f + 1] == g->edges[2 * e]) {
                g->arc_from[a] = f;
                g->arc_to[a++] = e;
            }
}

static tgraph tgraph_make(int64_t N, int64_t E, const int64_t *edges)
{
    tgraph g = {.N = N, .E = E};
    g.edges = tu_calloc((size_t)(2 * E + 1), sizeof(int64_t));
    memcpy(g.edges, edges, (size_t)(2 * E) * sizeof(int64_t));
    tgraph_arcs(&g);
    return g;
}

static void tgraph_free(tgraph *g)
{
    free(g->edges);
    free(g->arc_from);
    free(g->arc_to);
}

static tgraph chain(int64_t n)
{
    int64_t *e = tu_calloc((size_t)(2 * n), sizeof(int64_t));
    for (int64_t i = 0; i + 1 < n; i++) {
        e[2 * i] = i;
        e[2 * i + 1] = i + 1;
    }
    tgraph g = tgraph_make(n, n - 1, e);
    free(e);
    return g;
}

/* X×Y grid, right and down edges (node x·Y + y). */
static tgraph grid(int64_t X, int64_t Y)
{
    int64_t *e = tu_calloc((size_t)(4 * X * Y), sizeof(int64_t)), k = 0;
    for (int64_t x = 0; x < X; x++)
        for (int64_t y = 0; y < Y; y++) {
            if (x + 1 < X) {
                e[2 * k] = x * Y + y;
                e[2 * k + 1] = (x + 1) * Y + y;
                k++;
            }
            if (y + 1 < Y) {
                e[2 * k] = x * Y + y;
                e[2 * k + 1] = x * Y + y + 1;
                k++;
            }
        }
    tgraph g = tgraph_make(X * Y, k, e);
    free(e);
    return g;
}

static tgraph diamond(void)
{
    static const int64_t e[] = {0, 1, 0, 2, 1, 3, 2, 3};
    return tgraph_make(4, 4, e);
}

/* Random DAG: distinct pairs i < j of a random permutation of the nodes, so
 * node indices are not in topological order. */
static tgraph random_dag(int64_t N, int64_t E, uint64_t seed)
{
    tu_rng r;
    tu_rng_seed(&r, seed);
    int64_t *perm = tu_calloc((size_t)N, sizeof(int64_t));
    for (int64_t i = 0; i < N; i++)
        perm[i] = i;
    for (int64_t i = N - 1; i > 0; i--) {
        int64_t j = (int64_t)(tu_rng_u64(&r) % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int64_t *e = tu_calloc((size_t)(2 * E), sizeof(int64_t));
    for (int64_t k = 0; k < E;) {
        int64_t i = (int64_t)(tu_rng_u64(&r) % (uint64_t)N);
        int64_t j = (int64_t)(tu_rng_u64(&r) % (uint64_t)N);
        if (i >= j)
            continue;
        int dup = 0;
        for (int64_t f = 0; f < k; f++)
            dup |= e[2 * f] == perm[i] && e[2 * f + 1] == perm[j];
        if (dup)
            continue;
        e[2 * k] = perm[i];
        e[2 * k + 1] = perm[j];
        k++;
    }
    tgraph g = tgraph_make(N, E, e);
    free(e);
    free(perm);
    return g;
}

/* ---- problems --------------------------------------------------------------- */

enum { P_Q, P_K, P_V, P_S, P_T, P_M, P_D, NP };
static const char *const pname[NP] = {"Q", "K", "V", "S", "T", "M", "D"};

typedef struct prob {
    plstm_dag_core_desc d;
    tgraph g;
    double *x[NP];
    size_t per[NP], n[NP]; /* elements per node/edge/arc, total */
    double *dY;
    size_t ny, per_y;
} prob;

static prob make_prob(tgraph g, int B, int DK, int DV, int JQ, int JK, int JV, int JT, int JO,
                      double scale, uint64_t seed)
{
    prob p;
    memset(&p, 0, sizeof p);
    p.g = g;
    p.d = (plstm_dag_core_desc){.dtype = PLSTM_F64, .B = B, .DK = DK, .DV = DV, .JQ = JQ,
                                .JK = JK, .JV = JV, .JT = JT, .JO = JO, .scale = scale,
                                .algo = PLSTM_ALGO_PARALLEL};
    const size_t per[NP] = {(size_t)DK * JQ, (size_t)DK * JK, (size_t)DV * JV,
                            (size_t)JT * JK * JV, (size_t)JT * JT, (size_t)JO * JQ * JT,
                            (size_t)JO * JQ * JK * JV};
    const int64_t cnt[NP] = {g.N, g.N, g.N, g.E, g.A, g.E, g.N};
    tu_rng r;
    tu_rng_seed(&r, seed);
    for (int i = 0; i < NP; i++) {
        p.per[i] = per[i];
        p.n[i] = (size_t)B * (size_t)cnt[i] * per[i];
        p.x[i] = tu_calloc(p.n[i] + 1, sizeof(double));
        /* Transitions below 1 in size keep long paths bounded. */
        double amp = i == P_T ? 0.6 / JT : 1.0;
        tu_fill_f64(&r, p.x[i], p.n[i], -amp, amp);
    }
    p.per_y = (size_t)DV * JO;
    p.ny = (size_t)B * (size_t)g.N * p.per_y;
    p.dY = tu_calloc(p.ny + 1, sizeof(double));
    tu_fill_f64(&r, p.dY, p.ny, -1, 1);
    return p;
}

static void free_prob(prob *p)
{
    for (int i = 0; i < NP; i++)
        free(p->x[i]);
    free(p->dY);
}

static plstm_dag_core_inputs inputs_of(const prob *p)
{
    return (plstm_dag_core_inputs){p->x[P_Q], p->x[P_K], p->x[P_V], p->x[P_S],
                                   p->x[P_T], p->x[P_M], p->x[P_D]};
}

/* ---- naive sequential pass (formulas (1), (2) as written) ------------------ */

static void naive_forward(const prob *p, double *Y)
{
    const plstm_dag_core_desc *d = &p->d;
    const tgraph *g = &p->g;
    const int DK = d->DK, DV = d->DV, JQ = d->JQ, JK = d->JK, JV = d->JV, JT = d->JT, JO = d->JO;
    const size_t sz = (size_t)DK * DV * JT;
    double *C = tu_calloc((size_t)g->E * sz + 1, sizeof(double));
    int *done = tu_calloc((size_t)g->E + 1, sizeof(int));
    for (int b = 0; b < d->B; b++) {
#define X(i, idx) (p->x[i] + ((size_t)b * (size_t)(i == P_S || i == P_M ? g->E : i == P_T ? g->A : g->N) + (size_t)(idx)) * p->per[i])
        memset(done, 0, (size_t)g->E * sizeof(int));
        /* Topological order by repeated scans: an edge is ready once every
         * edge into its tail is done. */
        for (int64_t finished = 0; finished < g->E;) {
            for (int64_t e = 0; e < g->E; e++) {
                if (done[e])
                    continue;
                int ready = 1;
                for (int64_t f = 0; f < g->E; f++)
                    if (g->edges[2 * f + 1] == g->edges[2 * e] && !done[f])
                        ready = 0;
                if (!ready)
                    continue;
                const int64_t n = g->edges[2 * e];
                const double *k = X(P_K, n), *v = X(P_V, n), *S = X(P_S, e);
                double *Ce = C + (size_t)e * sz;
                for (int dd = 0; dd < DK; dd++)
                    for (int vv = 0; vv < DV; vv++)
                        for (int t = 0; t < JT; t++) {
                            double acc = 0;
                            for (int a = 0; a < JK; a++)
                                for (int c = 0; c < JV; c++)
                                    acc += S[(t * JK + a) * JV + c] * k[dd * JK + a] * v[vv * JV + c];
                            for (int64_t ai = 0; ai < g->A; ai++) {
                                if (g->arc_to[ai] != e)
                                    continue;
                                const double *T = X(P_T, ai);
                                const double *Cf = C + (size_t)g->arc_from[ai] * sz;
                                for (int u = 0; u < JT; u++)
                                    acc += T[t * JT + u] * Cf[((size_t)dd * DV + vv) * JT + u];
                            }
                            Ce[((size_t)dd * DV + vv) * JT + t] = acc;
                        }
                done[e] = 1;
                finished++;
            }
        }
        for (int64_t n = 0; n < g->N; n++) {
            const double *q = X(P_Q, n), *k = X(P_K, n), *v = X(P_V, n), *D = X(P_D, n);
            double *y = Y + ((size_t)b * g->N + (size_t)n) * p->per_y;
            for (int vv = 0; vv < DV; vv++)
                for (int o = 0; o < JO; o++) {
                    double acc = 0;
                    for (int64_t e = 0; e < g->E; e++) {
                        if (g->edges[2 * e + 1] != n)
                            continue;
                        const double *M = X(P_M, e), *Ce = C + (size_t)e * sz;
                        for (int dd = 0; dd < DK; dd++)
                            for (int pp = 0; pp < JQ; pp++)
                                for (int t = 0; t < JT; t++)
                                    acc += q[dd * JQ + pp] * M[(o * JQ + pp) * JT + t] *
                                           Ce[((size_t)dd * DV + vv) * JT + t];
                    }
                    for (int dd = 0; dd < DK; dd++)
                        for (int pp = 0; pp < JQ; pp++)
                            for (int a = 0; a < JK; a++)
                                for (int c = 0; c < JV; c++)
                                    acc += q[dd * JQ + pp] *
                                           D[((o * JQ + pp) * JK + a) * JV + c] * k[dd * JK + a] *
                                           v[vv * JV + c];
                    y[vv * JO + o] = d->scale * acc;
                }
        }
#undef X
    }
    free(C);
    free(done);
}

/* ---- helpers ---------------------------------------------------------------- */

static plstm_context *cpu(void)
{
    plstm_context *ctx = NULL;
    TU_OK(plstm_context_create(&ctx, PLSTM_BACKEND_CPU, 0));
    return ctx;
}

static plstm_dag *dag_of(const tgraph *g)
{
    plstm_dag *dag = NULL;
    TU_OK(plstm_dag_create(&dag, g->N, g->E, g->edges));
    return dag;
}

static void lib_forward(plstm_context *ctx, const prob *p, const plstm_dag *dag, double *Y)
{
    const plstm_dag_core_inputs in = inputs_of(p);
    TU_OK(plstm_dag_core_forward(ctx, &p->d, dag, &in, Y));
}

static double **alloc_grads(const prob *p, plstm_dag_core_grads *gr)
{
    double **gg = tu_calloc(NP, sizeof(double *));
    for (int i = 0; i < NP; i++)
        gg[i] = tu_calloc(p->n[i] + 1, sizeof(double));
    *gr = (plstm_dag_core_grads){gg[P_Q], gg[P_K], gg[P_V], gg[P_S], gg[P_T], gg[P_M], gg[P_D]};
    return gg;
}

static void free_grads(double **gg)
{
    for (int i = 0; i < NP; i++)
        free(gg[i]);
    free(gg);
}

static double loss(plstm_context *ctx, const prob *p, const plstm_dag *dag, double *Y)
{
    lib_forward(ctx, p, dag, Y);
    double s = 0;
    for (size_t i = 0; i < p->ny; i++)
        s += Y[i] * p->dY[i];
    return s;
}

/* ---- tests: graph object -------------------------------------------------- */

static void expect_graph_error(plstm_status st, const char *needle)
{
    if (st != PLSTM_ERR_GRAPH)
        fail_msg("expected PLSTM_ERR_GRAPH (%s), got %s", needle, plstm_status_name(st));
    if (!strstr(plstm_last_error(), needle))
        fail_msg("message \"%s\" does not mention \"%s\"", plstm_last_error(), needle);
}

static void test_validation(void **state)
{
    (void)state;
    plstm_dag *dag = NULL;
    const int64_t cyc[] = {0, 1, 1, 2, 2, 3, 3, 1};
    expect_graph_error(plstm_dag_create(&dag, 4, 4, cyc), "cycle");
    assert_null(dag);
    const int64_t loop[] = {0, 1, 1, 1};
    expect_graph_error(plstm_dag_create(&dag, 2, 2, loop), "self-loop");
    assert_non_null(strstr(plstm_last_error(), "edge 1 (1 -> 1)"));
    const int64_t bad[] = {0, 1, 2, 5};
    expect_graph_error(plstm_dag_create(&dag, 3, 2, bad), "out of range");
    assert_non_null(strstr(plstm_last_error(), "2 -> 5"));
    const int64_t neg[] = {-1, 1};
    expect_graph_error(plstm_dag_create(&dag, 3, 1, neg), "out of range");
    const int64_t dup[] = {0, 1, 1, 2, 0, 1};
    expect_graph_error(plstm_dag_create(&dag, 3, 3, dup), "duplicate of edge 0");
    /* In a batch, errors name the graph and its local indices. */
    const int64_t nodes[] = {3, 3}, ecnt[] = {2, 3};
    const int64_t batch[] = {0, 1, 1, 2, /* graph 1: */ 0, 1, 1, 2, 2, 0};
    expect_graph_error(plstm_dag_create_batch(&dag, 2, nodes, ecnt, batch), "graph 1");
    assert_non_null(strstr(plstm_last_error(), "cycle"));
    assert_null(dag);
    assert_int_equal(plstm_dag_create(NULL, 3, 0, NULL), PLSTM_ERR_INVALID_ARGUMENT);
    assert_int_equal(plstm_dag_create(&dag, 3, 2, NULL), PLSTM_ERR_INVALID_ARGUMENT);
    /* A valid graph with an isolated node and no arcs. */
    const int64_t ok[] = {0, 1, 0, 2};
    TU_OK(plstm_dag_create(&dag, 4, 2, ok));
    assert_int_equal(plstm_dag_num_arcs(dag), 0);
    assert_int_equal(plstm_dag_num_levels(dag), 1);
    plstm_dag_destroy(dag);
    /* The empty graph is valid, and running on it is a no-op. */
    TU_OK(plstm_dag_create(&dag, 0, 0, NULL));
    assert_int_equal(plstm_dag_num_levels(dag), 0);
    plstm_context *ctx = NULL;
    TU_OK(plstm_context_create(&ctx, PLSTM_BACKEND_CPU, 0));
    const plstm_dag_core_desc d = {.dtype = PLSTM_F32, .B = 2, .DK = 2, .DV = 2, .JQ = 1,
                                   .JK = 1, .JV = 1, .JT = 1, .JO = 1, .scale = 1};
    const plstm_dag_core_inputs in = {0};
    TU_OK(plstm_dag_core_forward(ctx, &d, dag, &in, NULL));
    /* Bad descriptors are argument errors. */
    plstm_dag_core_desc bad_desc = d;
    bad_desc.JT = 0;
    assert_int_equal(plstm_dag_core_forward(ctx, &bad_desc, dag, &in, NULL),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "JT"));
    plstm_context_destroy(ctx);
    plstm_dag_destroy(dag);
}

/* Levels and arcs against their definitions, on the shapes the tests use. */
static void check_structure(const tgraph *g)
{
    plstm_dag *dag = dag_of(g);
    assert_int_equal(plstm_dag_num_nodes(dag), g->N);
    assert_int_equal(plstm_dag_num_edges(dag), g->E);
    assert_int_equal(plstm_dag_num_arcs(dag), g->A);
    for (int64_t a = 0; a < g->A; a++) {
        int64_t f, t;
        TU_OK(plstm_dag_arc(dag, a, &f, &t));
        assert_int_equal(f, g->arc_from[a]);
        assert_int_equal(t, g->arc_to[a]);
    }
    /* level by relaxation to the fixed point of its definition */
    int64_t *lev = tu_calloc((size_t)g->E + 1, sizeof(int64_t));
    for (int changed = 1; changed;) {
        changed = 0;
        for (int64_t a = 0; a < g->A; a++)
            if (lev[g->arc_to[a]] < lev[g->arc_from[a]] + 1) {
                lev[g->arc_to[a]] = lev[g->arc_from[a]] + 1;
                changed = 1;
            }
    }
    int64_t maxl = -1;
    for (int64_t e = 0; e < g->E; e++) {
        int64_t t, h, l, first, cnt;
        TU_OK(plstm_dag_edge(dag, e, &t, &h, &l));
        assert_int_equal(t, g->edges[2 * e]);
        assert_int_equal(h, g->edges[2 * e + 1]);
        assert_int_equal(l, lev[e]);
        maxl = l > maxl ? l : maxl;
        TU_OK(plstm_dag_arc_range(dag, e, &first, &cnt));
        for (int64_t a = first; a < first + cnt; a++)
            assert_int_equal(g->arc_to[a], e);
    }
    assert_int_equal(plstm_dag_num_levels(dag), maxl + 1);
    /* Forward state slots: two edges share a slot only if their lifetimes
     * [level(e), height(head(e))] are disjoint. */
    assert_true(dag->num_slots <= g->E);
    for (int64_t e = 0; e < g->E; e++)
        for (int64_t f = 0; f < e; f++) {
            if (dag->slot[e] != dag->slot[f])
                continue;
            const int64_t e_end = dag->height[g->edges[2 * e + 1]];
            const int64_t f_end = dag->height[g->edges[2 * f + 1]];
            if (!(e_end < lev[f] || f_end < lev[e]))
                fail_msg("edges %lld and %lld share slot %lld while both alive", (long long)e,
                         (long long)f, (long long)dag->slot[e]);
        }
    free(lev);
    plstm_dag_destroy(dag);
}

static void test_structure(void **state)
{
    (void)state;
    tgraph gs[] = {chain(5), diamond(), random_dag(8, 14, 7), random_dag(12, 30, 8), grid(3, 4)};
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
        check_structure(&gs[i]);
        tgraph_free(&gs[i]);
    }
    tgraph d = diamond();
    plstm_dag *dag = dag_of(&d);
    assert_int_equal(plstm_dag_num_levels(dag), 2);
    assert_int_equal(plstm_dag_num_arcs(dag), 2); /* 0->1->3 and 0->2->3 */
    plstm_dag_destroy(dag);
    tgraph_free(&d);
}

/* ---- tests: core forward ---------------------------------------------------- */

static void check_forward(tgraph g, int B, int DK, int DV, int JQ, int JK, int JV, int JT, int JO,
                          uint64_t seed)
{
    plstm_context *ctx = cpu();
    prob p = make_prob(g, B, DK, DV, JQ, JK, JV, JT, JO, 0.8, seed);
    plstm_dag *dag = dag_of(&g);
    double *ref = tu_calloc(p.ny + 1, sizeof(double)), *y = tu_calloc(p.ny + 1, sizeof(double));
    naive_forward(&p, ref);
    const plstm_algo algos[] = {PLSTM_ALGO_PARALLEL, PLSTM_ALGO_SEQUENTIAL, PLSTM_ALGO_AUTO};
    for (int a = 0; a < 3; a++) {
        p.d.algo = algos[a];
        lib_forward(ctx, &p, dag, y);
        TU_ASSERT_CLOSE(tu_rel_err_f64(y, ref, p.ny), 1e-13, "forward vs naive sequential pass");
    }
    /* Tiny workspace: one batch entry per chunk. */
    p.d.algo = PLSTM_ALGO_PARALLEL;
    p.d.max_workspace = 1;
    lib_forward(ctx, &p, dag, y);
    TU_ASSERT_CLOSE(tu_rel_err_f64(y, ref, p.ny), 1e-13, "forward in batch chunks");
    free(ref);
    free(y);
    plstm_dag_destroy(dag);
    free_prob(&p);
    plstm_context_destroy(ctx);
}

static void test_forward_naive(void **state)
{
    (void)state;
    static const int64_t none[2] = {0, 0}; /* a graph without edges: direct term only */
    tgraph gs[] = {chain(6), diamond(), random_dag(8, 14, 11), random_dag(10, 25, 12),
                   grid(3, 4), tgraph_make(3, 0, none)};
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
        check_forward(gs[i], 3, 3, 4, 1, 1, 1, 1, 1, 100 + i);
        check_forward(gs[i], 2, 3, 2, 2, 3, 2, 3, 2, 200 + i);
        tgraph_free(&gs[i]);
    }
}

/* Chain 0 -> ... -> L-1 against the unrolled formula (3): edge e_i = (i -> i+1),
 * arc i-1 = e_{i-1} -> e_i. */
static void test_chain_unrolled(void **state)
{
    (void)state;
    const int L = 7;
    tgraph g = chain(L);
    prob p = make_prob(g, 2, 3, 2, 2, 2, 3, 3, 2, 0.6, 33);
    const int DK = 3, DV = 2, JQ = 2, JK = 2, JV = 3, JT = 3, JO = 2;
    double *ref = tu_calloc(p.ny, sizeof(double)), *y = tu_calloc(p.ny, sizeof(double));
    double X[3 * 2 * 3], X2[3 * 2 * 3], G[2 * 2 * 2 * 3];
    for (int b = 0; b < p.d.B; b++) {
#define AT(i, idx) (p.x[i] + ((size_t)b * (i == P_S || i == P_M ? (size_t)g.E : i == P_T ? (size_t)g.A : (size_t)g.N) + (size_t)(idx)) * p.per[i])
        for (int n = 0; n < L; n++)
            for (int m = 0; m <= n; m++) {
                if (m == n) {
                    memcpy(G, AT(P_D, n), sizeof G);
                } else {
                    memcpy(X, AT(P_S, m), sizeof X); /* X[t][a][c] */
                    for (int j = m + 1; j < n; j++) {  /* apply T of arc e_{j-1} -> e_j */
                        const double *T = AT(P_T, j - 1);
                        for (int t = 0; t < JT; t++)
                            for (int ac = 0; ac < JK * JV; ac++) {
                                double acc = 0;
                                for (int u = 0; u < JT; u++)
                                    acc += T[t * JT + u] * X[u * JK * JV + ac];
                                X2[t * JK * JV + ac] = acc;
                            }
                        memcpy(X, X2, sizeof X);
                    }
                    const double *M = AT(P_M, n - 1);
                    for (int op = 0; op < JO * JQ; op++)
                        for (int ac = 0; ac < JK * JV; ac++) {
                            double acc = 0;
                            for (int t = 0; t < JT; t++)
                                acc += M[op * JT + t] * X[t * JK * JV + ac];
                            G[op * JK * JV + ac] = acc;
                        }
                }
                const double *q = AT(P_Q, n), *k = AT(P_K, m), *v = AT(P_V, m);
                double *yn = ref + ((size_t)b * L + n) * DV * JO;
                for (int vv = 0; vv < DV; vv++)
                    for (int o = 0; o < JO; o++)
                        for (int pp = 0; pp < JQ; pp++)
                            for (int a = 0; a < JK; a++) {
                                double qk = 0;
                                for (int d = 0; d < DK; d++)
                                    qk += q[d * JQ + pp] * k[d * JK + a];
                                for (int c = 0; c < JV; c++)
                                    yn[vv * JO + o] += p.d.scale * qk *
                                                       G[((o * JQ + pp) * JK + a) * JV + c] *
                                                       v[vv * JV + c];
                            }
            }
#undef AT
    }
    plstm_context *ctx = cpu();
    plstm_dag *dag = dag_of(&g);
    lib_forward(ctx, &p, dag, y);
    TU_ASSERT_CLOSE(tu_rel_err_f64(y, ref, p.ny), 1e-13, "chain vs unrolled formula (3)");
    plstm_dag_destroy(dag);
    plstm_context_destroy(ctx);
    free(ref);
    free(y);
    free_prob(&p);
    tgraph_free(&g);
}

/* ---- tests: backward --------------------------------------------------------- */

static void check_gradients(tgraph g, int B, int DK, int DV, int JQ, int JK, int JV, int JT,
                            int JO, uint64_t seed)
{
    plstm_context *ctx = cpu();
    prob p = make_prob(g, B, DK, DV, JQ, JK, JV, JT, JO, 0.7, seed);
    plstm_dag *dag = dag_of(&g);
    plstm_dag_core_grads gr, gs;
    double **an = alloc_grads(&p, &gr), **sq = alloc_grads(&p, &gs);
    const plstm_dag_core_inputs in = inputs_of(&p);
    TU_OK(plstm_dag_core_backward(ctx, &p.d, dag, &in, p.dY, &gr));
    double *Y = tu_calloc(p.ny + 1, sizeof(double));
    const double h = 1e-5;
    /* The many tiny finite-difference forwards run on one thread: a barrier
     * per level is slow on a loaded machine, and threads are checked below. */
    plstm_context *ctx1 = cpu();
    TU_OK(plstm_context_set_threads(ctx1, 1));
    for (int i = 0; i < NP; i++) {
        double *fd = tu_calloc(p.n[i] + 1, sizeof(double));
        for (size_t j = 0; j < p.n[i]; j++) {
            const double x0 = p.x[i][j];
            p.x[i][j] = x0 + h;
            const double lp = loss(ctx1, &p, dag, Y);
            p.x[i][j] = x0 - h;
            const double lm = loss(ctx1, &p, dag, Y);
            p.x[i][j] = x0;
            fd[j] = (lp - lm) / (2 * h);
        }
        char what[64];
        snprintf(what, sizeof what, "d%s vs finite differences", pname[i]);
        TU_ASSERT_CLOSE(tu_rel_err_f64(an[i], fd, p.n[i]), 1e-7, what);
        free(fd);
    }
    /* The per-entry topological form and a chunked run give the same gradients. */
    p.d.algo = PLSTM_ALGO_SEQUENTIAL;
    TU_OK(plstm_dag_core_backward(ctx, &p.d, dag, &in, p.dY, &gs));
    for (int i = 0; i < NP; i++)
        TU_ASSERT_CLOSE(tu_rel_err_f64(sq[i], an[i], p.n[i]), 1e-13, "sequential backward");
    p.d.algo = PLSTM_ALGO_PARALLEL;
    p.d.max_workspace = 1;
    TU_OK(plstm_dag_core_backward(ctx, &p.d, dag, &in, p.dY, &gs));
    for (int i = 0; i < NP; i++)
        TU_ASSERT_CLOSE(tu_rel_err_f64(sq[i], an[i], p.n[i]), 1e-13, "chunked backward");
    /* NULL gradients are skipped; the others are unchanged. */
    plstm_dag_core_grads partial = gs;
    partial.T = partial.M = partial.S = partial.D = NULL;
    memset(gs.Q, 0, p.n[P_Q] * sizeof(double));
    TU_OK(plstm_dag_core_backward(ctx, &p.d, dag, &in, p.dY, &partial));
    TU_ASSERT_CLOSE(tu_rel_err_f64(sq[P_Q], an[P_Q], p.n[P_Q]), 1e-13, "dQ with NULL grads");
    plstm_context_destroy(ctx1);
    free(Y);
    free_grads(an);
    free_grads(sq);
    plstm_dag_destroy(dag);
    free_prob(&p);
    plstm_context_destroy(ctx);
}

static void test_gradients(void **state)
{
    (void)state;
    tgraph gs[] = {chain(5), diamond(), random_dag(8, 14, 21)};
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
        check_gradients(gs[i], 2, 3, 2, 1, 1, 1, 1, 1, 300 + i);
        check_gradients(gs[i], 2, 2, 3, 2, 2, 2, 3, 2, 400 + i);
        tgraph_free(&gs[i]);
    }
}

/* F32 forward and backward against F64. */
static void test_f32(void **state)
{
    (void)state;
    tgraph g = random_dag(8, 14, 5);
    prob p = make_prob(g, 3, 8, 6, 2, 1, 2, 2, 2, 0.5, 55);
    plstm_context *ctx = cpu();
    plstm_dag *dag = dag_of(&g);
    double *y = tu_calloc(p.ny, sizeof(double));
    lib_forward(ctx, &p, dag, y);
    plstm_dag_core_grads gr;
    double **gd = alloc_grads(&p, &gr);
    const plstm_dag_core_inputs in = inputs_of(&p);
    TU_OK(plstm_dag_core_backward(ctx, &p.d, dag, &in, p.dY, &gr));

    float *xf[NP], *gf[NP];
    for (int i = 0; i < NP; i++) {
        xf[i] = tu_calloc(p.n[i], sizeof(float));
        gf[i] = tu_calloc(p.n[i], sizeof(float));
        tu_f64_to_f32(p.x[i], xf[i], p.n[i]);
    }
    float *yf = tu_calloc(p.ny, sizeof(float)), *dyf = tu_calloc(p.ny, sizeof(float)),
          *y32 = tu_calloc(p.ny, sizeof(float));
    tu_f64_to_f32(p.dY, dyf, p.ny);
    tu_f64_to_f32(y, y32, p.ny);
    plstm_dag_core_desc d = p.d;
    d.dtype = PLSTM_F32;
    const plstm_dag_core_inputs inf = {xf[0], xf[1], xf[2], xf[3], xf[4], xf[5], xf[6]};
    const plstm_dag_core_grads grf = {gf[0], gf[1], gf[2], gf[3], gf[4], gf[5], gf[6]};
    TU_OK(plstm_dag_core_forward(ctx, &d, dag, &inf, yf));
    TU_ASSERT_CLOSE(tu_rel_err_f32(yf, y32, p.ny), 1e-5, "F32 forward");
    TU_OK(plstm_dag_core_backward(ctx, &d, dag, &inf, dyf, &grf));
    for (int i = 0; i < NP; i++) {
        float *ref = tu_calloc(p.n[i], sizeof(float));
        tu_f64_to_f32(gd[i], ref, p.n[i]);
        TU_ASSERT_CLOSE(tu_rel_err_f32(gf[i], ref, p.n[i]), 1e-5, pname[i]);
        free(ref);
        free(xf[i]);
        free(gf[i]);
    }
    free(yf);
    free(dyf);
    free(y32);
    free(y);
    free_grads(gd);
    plstm_dag_destroy(dag);
    plstm_context_destroy(ctx);
    free_prob(&p);
    tgraph_free(&g);
}

/* ---- tests: batch of graphs --------------------------------------------------- */

/* dst[b][0..cnt) = src[b][off..off+cnt) for rows of `per` elements. */
static void slice(const double *src, double *dst, int B, int64_t total, int64_t off,
                  int64_t cnt, size_t per)
{
    for (int b = 0; b < B; b++)
        memcpy(dst + (size_t)b * (size_t)cnt * per,
               src + ((size_t)b * (size_t)total + (size_t)off) * per,
               (size_t)cnt * per * sizeof(double));
}

static void test_batch(void **state)
{
    (void)state;
    /* Three different graphs; the first has an isolated node (4). */
    tgraph parts[3] = {chain(4), diamond(), random_dag(6, 8, 9)};
    const int64_t extra[] = {0, 1, 1, 2, 0, 2, 2, 3};
    tgraph_free(&parts[0]);
    parts[0] = tgraph_make(5, 4, extra);
    int64_t nodes[3], ecnt[3], Etot = 0, Ntot = 0;
    for (int i = 0; i < 3; i++) {
        nodes[i] = parts[i].N;
        ecnt[i] = parts[i].E;
        Etot += parts[i].E;
        Ntot += parts[i].N;
    }
    int64_t *local = tu_calloc((size_t)(2 * Etot), sizeof(int64_t));
    int64_t *global = tu_calloc((size_t)(2 * Etot), sizeof(int64_t));
    for (int i = 0, e = 0, n0 = 0; i < 3; n0 += (int)parts[i].N, i++)
        for (int64_t j = 0; j < parts[i].E; j++, e++) {
            local[2 * e] = parts[i].edges[2 * j];
            local[2 * e + 1] = parts[i].edges[2 * j + 1];
            global[2 * e] = local[2 * e] + n0;
            global[2 * e + 1] = local[2 * e + 1] + n0;
        }
    tgraph all = tgraph_make(Ntot, Etot, global);
    plstm_dag *dag = NULL;
    TU_OK(plstm_dag_create_batch(&dag, 3, nodes, ecnt, local));
    assert_int_equal(plstm_dag_num_graphs(dag), 3);
    assert_int_equal(plstm_dag_num_arcs(dag), all.A);

    plstm_context *ctx = cpu();
    const int B = 2;
    prob p = make_prob(all, B, 3, 2, 2, 1, 2, 2, 2, 0.9, 77);
    double *y = tu_calloc(p.ny, sizeof(double));
    lib_forward(ctx, &p, dag, y);
    plstm_dag_core_grads gr;
    double **gd = alloc_grads(&p, &gr);
    const plstm_dag_core_inputs in = inputs_of(&p);
    TU_OK(plstm_dag_core_backward(ctx, &p.d, dag, &in, p.dY, &gr));

    for (int i = 0; i < 3; i++) {
        int64_t n0, nn, e0, ne, a0, na;
        TU_OK(plstm_dag_graph_range(dag, i, &n0, &nn, &e0, &ne, &a0, &na));
        assert_int_equal(nn, parts[i].N);
        assert_int_equal(ne, parts[i].E);
        assert_int_equal(na, parts[i].A);
        prob q = make_prob(parts[i], B, 3, 2, 2, 1, 2, 2, 2, 0.9, 1);
        const int64_t off[NP] = {n0, n0, n0, e0, a0, e0, n0};
        const int64_t tot[NP] = {Ntot, Ntot, Ntot, Etot, all.A, Etot, Ntot};
        for (int t = 0; t < NP; t++)
            slice(p.x[t], q.x[t], B, tot[t], off[t], (int64_t)(q.n[t] / q.per[t] / B), q.per[t]);
        slice(p.dY, q.dY, B, Ntot, n0, nn, q.per_y);
        plstm_dag *one = dag_of(&parts[i]);
        double *yq = tu_calloc(q.ny + 1, sizeof(double)), *ys = tu_calloc(q.ny + 1, sizeof(double));
        lib_forward(ctx, &q, one, yq);
        slice(y, ys, B, Ntot, n0, nn, q.per_y);
        TU_ASSERT_CLOSE(tu_rel_err_f64(ys, yq, q.ny), 1e-14, "batched forward vs one graph");
        plstm_dag_core_grads gq;
        double **gqd = alloc_grads(&q, &gq);
        const plstm_dag_core_inputs inq = inputs_of(&q);
        TU_OK(plstm_dag_core_backward(ctx, &q.d, one, &inq, q.dY, &gq));
        for (int t = 0; t < NP; t++) {
            double *s = tu_calloc(q.n[t] + 1, sizeof(double));
            slice(gd[t], s, B, tot[t], off[t], (int64_t)(q.n[t] / q.per[t] / B), q.per[t]);
            TU_ASSERT_CLOSE(tu_rel_err_f64(s, gqd[t], q.n[t]), 1e-14, pname[t]);
            free(s);
        }
        free_grads(gqd);
        free(yq);
        free(ys);
        plstm_dag_destroy(one);
        free_prob(&q);
    }
    free_grads(gd);
    free(y);
    free_prob(&p);
    plstm_context_destroy(ctx);
    plstm_dag_destroy(dag);
    tgraph_free(&all);
    for (int i = 0; i < 3; i++)
        tgraph_free(&parts[i]);
    free(local);
    free(global);
}

/* ---- tests: scalar-gate graph form (§6.2) --------------------------------------- */

/* Naive plstm_graph: edges in a topological order (by repeated scans). */
static void naive_graph(const tgraph *g, int H, int K, int V, double *const x[NP], double *y)
{
    double *C = tu_calloc((size_t)g->E * K * V + 1, sizeof(double));
    int *done = tu_calloc((size_t)g->E + 1, sizeof(int));
    for (int h = 0; h < H; h++) {
        const double *q = x[P_Q] + (size_t)h * g->N * K, *k = x[P_K] + (size_t)h * g->N * K;
        const double *v = x[P_V] + (size_t)h * g->N * V, *s = x[P_S] + (size_t)h * g->E;
        const double *t = x[P_T] + (size_t)h * g->A, *m = x[P_M] + (size_t)h * g->E;
        const double *dd = x[P_D] + (size_t)h * g->N;
        double *yh = y + (size_t)h * g->N * V;
        memset(done, 0, (size_t)g->E * sizeof(int));
        memset(yh, 0, (size_t)g->N * V * sizeof(double));
        for (int64_t fin = 0; fin < g->E;)
            for (int64_t e = 0; e < g->E; e++) {
                int ready = !done[e];
                for (int64_t a = 0; a < g->A && ready; a++)
                    if (g->arc_to[a] == e && !done[g->arc_from[a]])
                        ready = 0;
                if (!ready)
                    continue;
                const int64_t ta = g->edges[2 * e], hb = g->edges[2 * e + 1];
                double *Ce = C + (size_t)e * K * V;
                for (int i = 0; i < K; i++)
                    for (int j = 0; j < V; j++)
                        Ce[i * V + j] = s[e] * k[ta * K + i] * v[ta * V + j];
                for (int64_t a = 0; a < g->A; a++)
                    if (g->arc_to[a] == e)
                        for (int i = 0; i < K * V; i++)
                            Ce[i] += t[a] * C[(size_t)g->arc_from[a] * K * V + i];
                for (int j = 0; j < V; j++)
                    for (int i = 0; i < K; i++)
                        yh[hb * V + j] += m[e] * q[hb * K + i] * Ce[i * V + j];
                done[e] = 1;
                fin++;
            }
        for (int64_t n = 0; n < g->N; n++) {
            double qk = 0;
            for (int i = 0; i < K; i++)
                qk += q[n * K + i] * k[n * K + i];
            for (int j = 0; j < V; j++)
                yh[n * V + j] += dd[n] * qk * v[n * V + j];
        }
    }
    free(C);
    free(done);
}

static void test_graph_form(void **state)
{
    (void)state;
    tgraph gs[] = {diamond(), random_dag(8, 14, 31)};
    plstm_context *ctx = cpu();
    for (size_t gi = 0; gi < 2; gi++) {
        const tgraph *g = &gs[gi];
        const int H = 2, K = 3, V = 2;
        /* Same shapes as the J = 1 core problem, so make_prob fills them. */
        prob p = make_prob(*g, H, K, V, 1, 1, 1, 1, 1, 1.0, 500 + gi);
        plstm_dag *dag = dag_of(g);
        const plstm_graph_desc gd = {.dtype = PLSTM_F64, .H = H, .K = K, .V = V,
                                     .algo = PLSTM_ALGO_PARALLEL};
        const plstm_graph_inputs in = {p.x[P_Q], p.x[P_K], p.x[P_V], p.x[P_S],
                                       p.x[P_T], p.x[P_M], p.x[P_D]};
        double *ref = tu_calloc(p.ny, sizeof(double)), *y = tu_calloc(p.ny, sizeof(double));
        naive_graph(g, H, K, V, p.x, ref);
        TU_OK(plstm_graph_forward(ctx, &gd, dag, &in, y));
        TU_ASSERT_CLOSE(tu_rel_err_f64(y, ref, p.ny), 1e-14, "graph form vs naive");

        plstm_dag_core_grads cg;
        double **an = alloc_grads(&p, &cg);
        const plstm_graph_grads gg = {an[P_Q], an[P_K], an[P_V], an[P_S],
                                      an[P_T], an[P_M], an[P_D]};
        TU_OK(plstm_graph_backward(ctx, &gd, dag, &in, p.dY, &gg));
        const double h = 1e-5;
        for (int i = 0; i < NP; i++) {
            double *fd = tu_calloc(p.n[i] + 1, sizeof(double));
            for (size_t j = 0; j < p.n[i]; j++) {
                const double x0 = p.x[i][j];
                double l[2];
                for (int sgn = 0; sgn < 2; sgn++) {
                    p.x[i][j] = x0 + (sgn ? -h : h);
                    naive_graph(g, H, K, V, p.x, y);
                    l[sgn] = 0;
                    for (size_t r = 0; r < p.ny; r++)
                        l[sgn] += y[r] * p.dY[r];
                }
                p.x[i][j] = x0;
                fd[j] = (l[0] - l[1]) / (2 * h);
            }
            TU_ASSERT_CLOSE(tu_rel_err_f64(an[i], fd, p.n[i]), 1e-7, pname[i]);
            free(fd);
        }
        free_grads(an);
        free(ref);
        free(y);
        plstm_dag_destroy(dag);
        free_prob(&p);
        tgraph_free(&gs[gi]);
    }
    plstm_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation),    cmocka_unit_test(test_structure),
        cmocka_unit_test(test_forward_naive), cmocka_unit_test(test_chain_unrolled),
        cmocka_unit_test(test_gradients),     cmocka_unit_test(test_f32),
        cmocka_unit_test(test_batch),         cmocka_unit_test(test_graph_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
