/* The dense per-graph form of the scalar-gate DAG core (all J = 1, AUTO on
 * batches of small graphs, dag_core_dense.c) against the general state form
 * (SEQUENTIAL) on random inputs: forward and every gradient, F64 and F32,
 * odd head sizes, node orders that are not topological, graphs without
 * edges, partial gradient requests, serial and threaded runs; the graph
 * layers (both kinds, P and D) with AUTO on two threads (dense core, linear
 * maps split over the team) against SEQUENTIAL on one. */
#include "testutil.h"
#include "plstm/graph_layers.h"
#include "backends/cpu/dag_core_dense.h"
#include "graph/dag_internal.h"

#include <stdlib.h>
#include <string.h>

/* Random DAGs: each graph's edges join random node pairs, oriented along a
 * random permutation (so node order is not a topological order). */
typedef struct tbatch {
    int64_t G, N, E, *nodes, *edges_n, *edges;
} tbatch;

static tbatch random_batch(tu_rng *r, int64_t G, const int64_t *nodes, double density)
{
    tbatch t = {.G = G};
    t.nodes = tu_calloc((size_t)G, sizeof(int64_t));
    t.edges_n = tu_calloc((size_t)G, sizeof(int64_t));
    size_t cap = 0;
    for (int64_t g = 0; g < G; g++)
        cap += (size_t)(nodes[g] * nodes[g]);
    t.edges = tu_calloc(2 * cap + 2, sizeof(int64_t));
    for (int64_t g = 0; g < G; g++) {
        const int64_t n = nodes[g];
        int64_t *perm = tu_calloc((size_t)n + 1, sizeof(int64_t));
        for (int64_t i = 0; i < n; i++)
            perm[i] = i;
        for (int64_t i = n - 1; i > 0; i--) {
            const int64_t j = (int64_t)(tu_rng_u64(r) % (uint64_t)(i + 1)), x = perm[i];
            perm[i] = perm[j], perm[j] = x;
        }
        t.nodes[g] = n;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = i + 1; j < n; j++)
                if (tu_rng_uniform(r, 0, 1) < density) {
                    int64_t *e = t.edges + 2 * t.E++;
                    e[0] = perm[i], e[1] = perm[j];
                    t.edges_n[g]++;
                }
        t.N += n;
        free(perm);
    }
    return t;
}

static void tbatch_free(tbatch *t) { free(t->nodes), free(t->edges_n), free(t->edges); }

enum { NP = 7 };

typedef struct run {
    double *x[NP]; /* Q K V S T M D (F64 master copies) */
    size_t n[NP];
    double *dy;
    size_t ny;
} run;

static run make_run(tu_rng *r, const plstm_dag *g, int B, int DK, int DV)
{
    run u;
    const size_t N = (size_t)g->N, E = (size_t)g->E, A = (size_t)g->A;
    const size_t n[NP] = {B * N * DK, B * N * DK, B * N * DV, B * E, B * A, B * E, B * N};
    const double lo[NP] = {-1, -1, -1, 0.05, -0.9, 0.05, 0.05}, hi[NP] = {1, 1, 1, 1, 0.9, 1, 1};
    for (int i = 0; i < NP; i++) {
        u.n[i] = n[i];
        u.x[i] = tu_calloc(n[i] + 1, sizeof(double));
        tu_fill_f64(r, u.x[i], n[i], lo[i], hi[i]);
    }
    u.ny = (size_t)B * N * DV;
    u.dy = tu_calloc(u.ny + 1, sizeof(double));
    tu_fill_f64(r, u.dy, u.ny, -1, 1);
    return u;
}

static void run_free(run *u)
{
    for (int i = 0; i < NP; i++)
        free(u->x[i]);
    free(u->dy);
}

/* Forward and backward with `algo` in dtype; outputs converted to F64:
 * out[0] = y, out[1 + i] = gradient of input i (NULL where mask bit i is 0). */
static void core(plstm_context *ctx, const plstm_dag *g, const run *u, int B, int DK, int DV,
                 plstm_dtype dt, plstm_algo algo, unsigned mask, double *out[1 + NP])
{
    const plstm_dag_core_desc d = {.dtype = dt, .B = B, .DK = DK, .DV = DV, .JQ = 1, .JK = 1,
                                   .JV = 1, .JT = 1, .JO = 1, .scale = 0.7, .algo = algo};
    const size_t es = dt == PLSTM_F32 ? sizeof(float) : sizeof(double);
    void *x[NP], *gr[NP], *dy = tu_calloc(u->ny + 1, es), *y = tu_calloc(u->ny + 1, es);
    for (int i = 0; i < NP; i++) { /* empty tensors are passed as NULL */
        x[i] = u->n[i] ? tu_calloc(u->n[i], es) : NULL;
        gr[i] = (mask >> i) & 1 && u->n[i] ? tu_calloc(u->n[i], es) : NULL;
        if (!x[i])
            continue;
        if (dt == PLSTM_F32)
            tu_f64_to_f32(u->x[i], x[i], u->n[i]);
        else
            memcpy(x[i], u->x[i], u->n[i] * es);
    }
    if (dt == PLSTM_F32)
        tu_f64_to_f32(u->dy, dy, u->ny);
    else
        memcpy(dy, u->dy, u->ny * es);
    const plstm_dag_core_inputs in = {x[0], x[1], x[2], x[3], x[4], x[5], x[6]};
    const plstm_dag_core_grads gg = {gr[0], gr[1], gr[2], gr[3], gr[4], gr[5], gr[6]};
    TU_OK(plstm_dag_core_forward(ctx, &d, g, &in, y));
    TU_OK(plstm_dag_core_backward(ctx, &d, g, &in, dy, &gg));
    for (int i = 0; i <= NP; i++) {
        void *src = i ? gr[i - 1] : y;
        const size_t n = i ? u->n[i - 1] : u->ny;
        out[i] = NULL;
        if (!src)
            continue;
        out[i] = tu_calloc(n + 1, sizeof(double));
        for (size_t k = 0; k < n; k++)
            out[i][k] = dt == PLSTM_F32 ? (double)((float *)src)[k] : ((double *)src)[k];
    }
    for (int i = 0; i < NP; i++)
        free(x[i]), free(gr[i]);
    free(dy), free(y);
}

static void compare_batch(int threads, const tbatch *tb, int B, int DK, int DV, int dense,
                          tu_rng *rp)
{
    const tbatch t = *tb;
    tu_rng r = *rp;
    plstm_dag *g;
    TU_OK(plstm_dag_create_batch(&g, t.G, t.nodes, t.edges_n, t.edges));
    plstm_context *ctx;
    TU_OK(plstm_context_create(&ctx, PLSTM_BACKEND_CPU, 0));
    TU_OK(plstm_context_set_threads(ctx, threads));
    const plstm_dag_core_desc probe = {.dtype = PLSTM_F64, .B = B, .DK = DK, .DV = DV, .JQ = 1,
                                       .JK = 1, .JV = 1, .JT = 1, .JO = 1, .scale = 0.7,
                                       .algo = PLSTM_ALGO_AUTO};
    assert_int_equal(cpu_dag_dense_applies(&probe, g), dense);
    run u = make_run(&r, g, B, DK, DV);
    const size_t sizes[1 + NP] = {u.ny, u.n[0], u.n[1], u.n[2], u.n[3], u.n[4], u.n[5], u.n[6]};
    for (int f32 = 0; f32 < 2; f32++) {
        const plstm_dtype dt = f32 ? PLSTM_F32 : PLSTM_F64;
        const double tol = f32 ? 2e-5 : 1e-12;
        for (int part = 0; part < 2; part++) {
            const unsigned mask = part ? 0x56u : 0x7Fu; /* part: K, T, M, D only */
            double *ref[1 + NP], *got[1 + NP];
            core(ctx, g, &u, B, DK, DV, dt, PLSTM_ALGO_SEQUENTIAL, 0x7F, ref);
            core(ctx, g, &u, B, DK, DV, dt, PLSTM_ALGO_AUTO, mask, got);
            for (int i = 0; i <= NP; i++) {
                if (!got[i] || !sizes[i])
                    continue;
                const double err = tu_rel_err_f64(got[i], ref[i], sizes[i]);
                if (err > tol)
                    fail_msg("output %d (0 = y, then Q K V S T M D) %s part %d: rel err %g", i,
                             f32 ? "F32" : "F64", part, err);
            }
            for (int i = 0; i <= NP; i++)
                free(ref[i]), free(got[i]);
        }
    }
    run_free(&u);
    plstm_context_destroy(ctx);
    plstm_dag_destroy(g);
}

static void compare_core(int threads, int64_t G, const int64_t *nodes, double density, int B,
                         int DK, int DV, uint64_t seed)
{
    tu_rng r;
    tu_rng_seed(&r, seed);
    tbatch t = random_batch(&r, G, nodes, density);
    /* the form under test serves AUTO (it is not worth it without edges) */
    compare_batch(threads, &t, B, DK, DV, t.E > 0, &r);
    tbatch_free(&t);
}

static void test_core_small(void **state)
{
    (void)state;
    const int64_t nodes[5] = {1, 7, 3, 12, 5};
    compare_core(2, 5, nodes, 0.35, 3, 3, 5, 11);  /* serial (below the thread threshold) */
    compare_core(1, 5, nodes, 0.6, 2, 5, 2, 12);   /* denser: many line-graph paths */
    const int64_t none[2] = {4, 1};
    compare_core(2, 2, none, 0.0, 2, 3, 3, 13);    /* no edges: the state form */
    /* single nodes (dense, S, M, T are NULL) and stars (no arcs: T is NULL) */
    tu_rng r;
    tu_rng_seed(&r, 14);
    int64_t one[3] = {1, 1, 1}, zero[3] = {0, 0, 0};
    tbatch t = {.G = 3, .N = 3, .E = 0, .nodes = one, .edges_n = zero, .edges = NULL};
    compare_batch(2, &t, 2, 3, 4, 1, &r);
    int64_t sn[2] = {4, 3}, se[2] = {3, 2}, star[10] = {0, 1, 0, 2, 0, 3, 2, 0, 2, 1};
    t = (tbatch){.G = 2, .N = 7, .E = 5, .nodes = sn, .edges_n = se, .edges = star};
    compare_batch(1, &t, 3, 5, 3, 1, &r);
}

static void test_core_threaded(void **state)
{
    (void)state;
    int64_t nodes[14];
    for (int i = 0; i < 14; i++)
        nodes[i] = 9 + (i * 5) % 13;
    compare_core(2, 14, nodes, 0.25, 4, 17, 15, 21); /* above the threshold: a team */
}

static void test_fallback(void **state)
{
    (void)state;
    /* a 70-node chain is too large for the dense form; AUTO then takes the
     * state form, and SEQUENTIAL / PARALLEL never use the dense one */
    int64_t e[2 * 69];
    for (int i = 0; i < 69; i++)
        e[2 * i] = i, e[2 * i + 1] = i + 1;
    plstm_dag *g;
    TU_OK(plstm_dag_create(&g, 70, 69, e));
    plstm_dag_core_desc d = {.dtype = PLSTM_F32, .B = 2, .DK = 4, .DV = 4, .JQ = 1, .JK = 1,
                             .JV = 1, .JT = 1, .JO = 1, .scale = 1, .algo = PLSTM_ALGO_AUTO};
    assert_false(cpu_dag_dense_applies(&d, g));
    plstm_dag_destroy(g);
    TU_OK(plstm_dag_create(&g, 3, 2, e));
    assert_true(cpu_dag_dense_applies(&d, g));
    d.algo = PLSTM_ALGO_SEQUENTIAL;
    assert_false(cpu_dag_dense_applies(&d, g));
    d.algo = PLSTM_ALGO_AUTO, d.JT = 2;
    assert_false(cpu_dag_dense_applies(&d, g));
    plstm_dag_destroy(g);
}

/* ---- the graph layers: AUTO (dense core) against SEQUENTIAL ---------------- */

static void layer_pass(plstm_context *ctx, plstm_graph_layer_kind kind, plstm_graph_mode mode,
                       plstm_dtype dt, plstm_algo algo, const plstm_graph_batch *b,
                       const double *p64, size_t np, const double *x64, const double *ex64,
                       const double *dy64, int D, int H, double *out, size_t *nout)
{
    plstm_graph_layer_config c = plstm_graph_layer_config_default(kind, D, H, mode);
    c.algo = algo;
    c.max_edges = 6;
    plstm_params *p;
    plstm_graph_layer L;
    TU_OK(plstm_params_create(&p));
    TU_OK(plstm_graph_layer_declare(&L, &c, p, NULL));
    assert_int_equal(plstm_params_size(p), np);
    const size_t N = (size_t)b->num_nodes, E = (size_t)b->num_edges, De = (size_t)D;
    const size_t es = dt == PLSTM_F32 ? sizeof(float) : sizeof(double);
    const size_t na = plstm_graph_layer_activation_size(&L, b);
    const size_t cnt[4] = {np, N * D, E * De, N * D}; /* params, x, edge_x, dy */
    const double *src[4] = {p64, x64, ex64, dy64};
    void *buf[4];
    for (int i = 0; i < 4; i++) {
        buf[i] = tu_calloc(cnt[i] + 1, es);
        if (dt == PLSTM_F32)
            tu_f64_to_f32(src[i], buf[i], cnt[i]);
        else
            memcpy(buf[i], src[i], cnt[i] * es);
    }
    void *acts = tu_calloc(na + 1, es), *y = tu_calloc(N * D + 1, es);
    void *dx = tu_calloc(N * D + 1, es), *dex = tu_calloc(E * De + 1, es);
    void *grads = tu_calloc(np + 1, es);
    const int edge = kind == PLSTM_GRAPH_LAYER_EDGE;
    TU_OK(plstm_graph_layer_forward(ctx, &L, dt, buf[0], b, buf[1], edge ? buf[2] : NULL, y,
                                    acts));
    TU_OK(plstm_graph_layer_backward(ctx, &L, dt, buf[0], b, buf[1], edge ? buf[2] : NULL, acts,
                                     buf[3], dx, edge ? dex : NULL, grads));
    const void *res[4] = {y, dx, dex, grads};
    const size_t rn[4] = {N * D, N * D, edge ? E * De : 0, np};
    size_t o = 0;
    for (int i = 0; i < 4; i++)
        for (size_t k = 0; k < rn[i]; k++)
            out[o++] = dt == PLSTM_F32 ? (double)((const float *)res[i])[k]
                                       : ((const double *)res[i])[k];
    *nout = o;
    for (int i = 0; i < 4; i++)
        free(buf[i]);
    free(acts), free(y), free(dx), free(dex), free(grads);
    plstm_params_destroy(p);
}

static void test_layers(void **state)
{
    (void)state;
    /* large enough that the joint x projection splits over threads */
    const int D = 48, H = 4;
    tu_rng r;
    tu_rng_seed(&r, 31);
    int64_t nodes[14];
    for (int i = 0; i < 14; i++)
        nodes[i] = 2 + (i * 7) % 19;
    tbatch t = random_batch(&r, 14, nodes, 0.3);
    /* keep degrees within max_edges: drop edges of nodes that have 6 already */
    int64_t *deg = tu_calloc((size_t)t.N, sizeof(int64_t)), kept = 0, off = 0, e = 0;
    for (int64_t g = 0; g < t.G; g++) {
        int64_t ng = 0;
        for (int64_t i = 0; i < t.edges_n[g]; i++, e++) {
            const int64_t u = off + t.edges[2 * e], v = off + t.edges[2 * e + 1];
            if (deg[u] >= 6 || deg[v] >= 6)
                continue;
            deg[u]++, deg[v]++;
            t.edges[2 * kept] = t.edges[2 * e], t.edges[2 * kept + 1] = t.edges[2 * e + 1];
            kept++, ng++;
        }
        t.edges_n[g] = ng;
        off += t.nodes[g];
    }
    t.E = kept;
    free(deg);
    plstm_context *ctx1, *ctx2; /* reference: one thread */
    TU_OK(plstm_context_create(&ctx1, PLSTM_BACKEND_CPU, 0));
    TU_OK(plstm_context_set_threads(ctx1, 1));
    TU_OK(plstm_context_create(&ctx2, PLSTM_BACKEND_CPU, 0));
    TU_OK(plstm_context_set_threads(ctx2, 2));
    for (int kind = 0; kind < 2; kind++)
        for (int mode = 0; mode < 2; mode++) {
            const plstm_graph_prep_opts o = {.directed = 0, .mode = (plstm_graph_mode)mode,
                                             .reverse = 0};
            plstm_graph_batch *b;
            TU_OK(plstm_graph_batch_prepare(&b, t.G, t.nodes, t.edges_n, t.edges, &o));
            const plstm_graph_layer_kind k =
                kind ? PLSTM_GRAPH_LAYER_NODEWISE : PLSTM_GRAPH_LAYER_EDGE;
            plstm_graph_layer_config c = plstm_graph_layer_config_default(k, D, H, mode);
            c.max_edges = 6;
            plstm_params *p;
            plstm_graph_layer L;
            TU_OK(plstm_params_create(&p));
            TU_OK(plstm_graph_layer_declare(&L, &c, p, NULL));
            const size_t np = plstm_params_size(p), N = (size_t)b->num_nodes;
            const size_t E = (size_t)b->num_edges;
            double *p64 = tu_calloc(np, sizeof(double));
            TU_OK(plstm_graph_layer_init(&L, p64, PLSTM_F64, 5));
            for (size_t i = 0; i < np; i++) /* perturb: non-trivial gates */
                p64[i] += tu_rng_uniform(&r, -0.3, 0.3);
            double *x = tu_calloc(N * D + 1, sizeof(double));
            double *ex = tu_calloc(E * D + 1, sizeof(double));
            double *dy = tu_calloc(N * D + 1, sizeof(double));
            tu_fill_f64(&r, x, N * D, -1, 1);
            tu_fill_f64(&r, ex, E * D, -1, 1);
            tu_fill_f64(&r, dy, N * D, -1, 1);
            const size_t cap = 3 * N * D + E * D + np + 1;
            double *ref = tu_calloc(cap, sizeof(double)), *got = tu_calloc(cap, sizeof(double));
            for (int f32 = 0; f32 < 2; f32++) {
                const plstm_dtype dt = f32 ? PLSTM_F32 : PLSTM_F64;
                size_t n1, n2;
                layer_pass(ctx1, k, (plstm_graph_mode)mode, dt, PLSTM_ALGO_SEQUENTIAL, b, p64,
                           np, x, ex, dy, D, H, ref, &n1);
                layer_pass(ctx2, k, (plstm_graph_mode)mode, dt, PLSTM_ALGO_AUTO, b, p64, np, x,
                           ex, dy, D, H, got, &n2);
                assert_int_equal(n1, n2);
                const double err = tu_rel_err_f64(got, ref, n1);
                if (err > (f32 ? 1e-4 : 1e-11))
                    fail_msg("layer kind %d mode %d %s: rel err %g", kind, mode,
                             f32 ? "F32" : "F64", err);
            }
            free(ref), free(got), free(x), free(ex), free(dy), free(p64);
            plstm_params_destroy(p);
            plstm_graph_batch_destroy(b);
        }
    plstm_context_destroy(ctx1);
    plstm_context_destroy(ctx2);
    tbatch_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_core_small),
        cmocka_unit_test(test_core_threaded),
        cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_layers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
