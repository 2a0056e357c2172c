/* Graph pLSTM layers, PostUp graph blocks and the graph model: float64
 * finite-difference gradients (both layer kinds, P and D, both slot maps, Q8
 * on and off), batched computation equal to graph-by-graph, and argument
 * errors. The reference vectors are checked by `plstm verify` (CTest). */
#include "testutil.h"
#include "plstm/graph_layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Three small graphs: a 4-cycle with branches, a triangle with a tail, a path. */
static const int64_t G_NODES[3] = {7, 5, 4};
static const int64_t G_EDGES[3] = {8, 5, 3};
static const int64_t G_LIST[] = {0, 1, 1, 2, 1, 3, 2, 4, 3, 4, 4, 5, 4, 6, 0, 6, /* graph 0 */
                                 0, 1, 1, 2, 0, 2, 2, 3, 3, 4,                   /* graph 1 */
                                 0, 1, 1, 2, 2, 3};                              /* graph 2 */

typedef enum { K_LAYER, K_BLOCK, K_MODEL } kind;

typedef struct fixture {
    kind k;
    plstm_context *ctx;
    plstm_params *p;
    plstm_graph_layer L;
    plstm_graph_postup B;
    plstm_graph_model M;
    plstm_graph_batch *gb[2][2];
    const plstm_graph_batch *b; /* the layer/block's batch */
    double *params, *grads, *x, *ex, *dy, *y, *acts;
    size_t np, nx, nex, ny;
} fixture;

static double *rnd(tu_rng *r, size_t n, double scale)
{
    double *v = tu_calloc(n ? n : 1, sizeof *v);
    tu_fill_f64(r, v, n, -scale, scale);
    return v;
}

static void prepare(fixture *f, int first, int count)
{
    int64_t e0 = 0;
    for (int g = 0; g < first; g++)
        e0 += G_EDGES[g];
    for (int m = 0; m < 2; m++)
        for (int rv = 0; rv < 2; rv++) {
            plstm_graph_prep_opts o = {.directed = 0,
                                       .mode = m ? PLSTM_GRAPH_MODE_D : PLSTM_GRAPH_MODE_P,
                                       .reverse = rv};
            TU_OK(plstm_graph_batch_prepare(&f->gb[m][rv], count, G_NODES + first,
                                            G_EDGES + first, G_LIST + 2 * e0, &o));
        }
}

static void fixture_free(fixture *f)
{
    plstm_params_destroy(f->p);
    plstm_context_destroy(f->ctx);
    for (int i = 0; i < 4; i++)
        plstm_graph_batch_destroy(f->gb[i / 2][i % 2]);
    free(f->params), free(f->grads), free(f->x), free(f->ex), free(f->dy), free(f->y);
    free(f->acts);
}

static plstm_graph_model_input model_input(const fixture *f)
{
    plstm_graph_model_input in = {{{f->gb[0][0], f->gb[0][1]}, {f->gb[1][0], f->gb[1][1]}},
                                  f->x};
    return in;
}

static size_t acts_size(const fixture *f)
{
    if (f->k == K_LAYER)
        return plstm_graph_layer_activation_size(&f->L, f->b);
    if (f->k == K_BLOCK)
        return plstm_graph_postup_activation_size(&f->B, f->b);
    plstm_graph_model_input in = model_input(f);
    return plstm_graph_model_activation_size(&f->M, &in);
}

/* L = Σ y·dy at the current params, x, ex. */
static double loss(fixture *f)
{
    if (f->k == K_LAYER)
        TU_OK(plstm_graph_layer_forward(f->ctx, &f->L, PLSTM_F64, f->params, f->b, f->x, f->ex,
                                        f->y, NULL));
    else if (f->k == K_BLOCK)
        TU_OK(plstm_graph_postup_forward(f->ctx, &f->B, PLSTM_F64, f->params, f->b, f->x, f->ex,
                                         f->y, NULL));
    else {
        plstm_graph_model_input in = model_input(f);
        TU_OK(plstm_graph_model_forward(f->ctx, &f->M, PLSTM_F64, f->params, &in, f->y, NULL));
    }
    double s = 0;
    for (size_t i = 0; i < f->ny; i++)
        s += f->y[i] * f->dy[i];
    return s;
}

/* Analytic gradients: params into f->grads, dx, dex. */
static void analytic(fixture *f, double *dx, double *dex)
{
    const size_t na = acts_size(f);
    f->acts = tu_calloc(na ? na : 1, sizeof(double));
    memset(f->grads, 0, f->np * sizeof(double));
    if (f->k == K_LAYER) {
        TU_OK(plstm_graph_layer_forward(f->ctx, &f->L, PLSTM_F64, f->params, f->b, f->x, f->ex,
                                        f->y, f->acts));
        TU_OK(plstm_graph_layer_backward(f->ctx, &f->L, PLSTM_F64, f->params, f->b, f->x, f->ex,
                                         f->acts, f->dy, dx, dex, f->grads));
    } else if (f->k == K_BLOCK) {
        TU_OK(plstm_graph_postup_forward(f->ctx, &f->B, PLSTM_F64, f->params, f->b, f->x, f->ex,
                                         f->y, f->acts));
        if (dex)
            memset(dex, 0, f->nex * sizeof(double));
        TU_OK(plstm_graph_postup_backward(f->ctx, &f->B, PLSTM_F64, f->params, f->b, f->x, f->ex,
                                          f->acts, f->dy, dx, dex, f->grads));
    } else {
        plstm_graph_model_input in = model_input(f);
        TU_OK(plstm_graph_model_forward(f->ctx, &f->M, PLSTM_F64, f->params, &in, f->y, f->acts));
        TU_OK(plstm_graph_model_backward(f->ctx, &f->M, PLSTM_F64, f->params, &in, f->acts, f->dy,
                                         f->grads));
    }
    free(f->acts);
    f->acts = NULL;
}

/* Central differences of entries 0, stride, 2·stride, ... of v against g. */
static double fd_check(fixture *f, double *v, const double *g, size_t n, size_t stride)
{
    const double h = 1e-6;
    double worst = 0, scale = 1e-3;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(g[i]));
    for (size_t i = 0; i < n; i += stride) {
        const double v0 = v[i];
        v[i] = v0 + h;
        const double lp = loss(f);
        v[i] = v0 - h;
        const double lm = loss(f);
        v[i] = v0;
        worst = fmax(worst, fabs((lp - lm) / (2 * h) - g[i]));
    }
    return worst / scale;
}

/* Random parameters: weights ~ U(±0.5), everything else around its role. */
static void random_params(fixture *f, tu_rng *r)
{
    tu_fill_f64(r, f->params, f->np, -0.5, 0.5);
    for (size_t i = 0; i < plstm_params_count(f->p); i++) {
        const plstm_param_info *pi = plstm_params_at(f->p, i);
        if (strstr(pi->name, "scale"))
            for (size_t j = 0; j < pi->numel; j++)
                f->params[pi->offset + j] += 1.0;
        if (strstr(pi->name, "transition.bias"))
            for (size_t j = 0; j < pi->numel; j++)
                f->params[pi->offset + j] *= 3.0;
    }
}

static void setup_common(fixture *f, tu_rng *r, size_t nx, size_t nex, size_t ny)
{
    f->np = plstm_params_size(f->p);
    f->params = tu_calloc(f->np, sizeof(double));
    f->grads = tu_calloc(f->np, sizeof(double));
    random_params(f, r);
    f->nx = nx, f->nex = nex, f->ny = ny;
    f->x = rnd(r, nx, 1.0);
    f->ex = nex ? rnd(r, nex, 1.0) : NULL;
    f->dy = rnd(r, ny, 1.0);
    f->y = tu_calloc(ny, sizeof(double));
}

static void check_layer(plstm_graph_layer_kind lk, plstm_graph_mode mode, plstm_graph_slot_map sm,
                        int q8, uint64_t seed)
{
    fixture f;
    memset(&f, 0, sizeof f);
    f.k = K_LAYER;
    tu_rng r;
    tu_rng_seed(&r, seed);
    TU_OK(plstm_context_create(&f.ctx, PLSTM_BACKEND_CPU, 0));
    prepare(&f, 0, 2);
    f.b = f.gb[mode == PLSTM_GRAPH_MODE_D][0];
    plstm_graph_layer_config c = plstm_graph_layer_config_default(lk, 8, 2, mode);
    c.max_edges = 3;
    c.slots = sm;
    c.q8 = q8;
    c.bias = 1;
    c.edge_input_dim = lk == PLSTM_GRAPH_LAYER_EDGE ? 3 : 0;
    TU_OK(plstm_params_create(&f.p));
    TU_OK(plstm_graph_layer_declare(&f.L, &c, f.p, "layer"));
    const size_t N = (size_t)f.b->num_nodes, E = (size_t)f.b->num_edges;
    setup_common(&f, &r, N * 8, lk == PLSTM_GRAPH_LAYER_EDGE ? E * 3 : 0, N * 8);
    double *dx = tu_calloc(f.nx, sizeof(double)), *dex = tu_calloc(f.nex + 1, sizeof(double));
    analytic(&f, dx, f.nex ? dex : NULL);
    TU_ASSERT_CLOSE(fd_check(&f, f.params, f.grads, f.np, 1), 1e-6, "layer param grads");
    TU_ASSERT_CLOSE(fd_check(&f, f.x, dx, f.nx, 1), 1e-6, "layer dx");
    if (f.nex)
        TU_ASSERT_CLOSE(fd_check(&f, f.ex, dex, f.nex, 1), 1e-6, "layer dedge_x");
    free(dx), free(dex);
    fixture_free(&f);
}

static void test_nodewise_fd(void **state)
{
    (void)state;
    check_layer(PLSTM_GRAPH_LAYER_NODEWISE, PLSTM_GRAPH_MODE_P, PLSTM_GRAPH_SLOTS_REFERENCE, 0, 1);
    check_layer(PLSTM_GRAPH_LAYER_NODEWISE, PLSTM_GRAPH_MODE_D, PLSTM_GRAPH_SLOTS_REFERENCE, 0, 2);
    check_layer(PLSTM_GRAPH_LAYER_NODEWISE, PLSTM_GRAPH_MODE_P, PLSTM_GRAPH_SLOTS_INTENDED, 0, 3);
    check_layer(PLSTM_GRAPH_LAYER_NODEWISE, PLSTM_GRAPH_MODE_D, PLSTM_GRAPH_SLOTS_INTENDED, 0, 4);
}

static void test_edge_fd(void **state)
{
    (void)state;
    check_layer(PLSTM_GRAPH_LAYER_EDGE, PLSTM_GRAPH_MODE_P, PLSTM_GRAPH_SLOTS_INTENDED, 1, 5);
    check_layer(PLSTM_GRAPH_LAYER_EDGE, PLSTM_GRAPH_MODE_D, PLSTM_GRAPH_SLOTS_INTENDED, 1, 6);
    check_layer(PLSTM_GRAPH_LAYER_EDGE, PLSTM_GRAPH_MODE_P, PLSTM_GRAPH_SLOTS_INTENDED, 0, 7);
    check_layer(PLSTM_GRAPH_LAYER_EDGE, PLSTM_GRAPH_MODE_D, PLSTM_GRAPH_SLOTS_INTENDED, 0, 8);
}

static void test_block_fd(void **state)
{
    (void)state;
    fixture f;
    memset(&f, 0, sizeof f);
    f.k = K_BLOCK;
    tu_rng r;
    tu_rng_seed(&r, 11);
    TU_OK(plstm_context_create(&f.ctx, PLSTM_BACKEND_CPU, 0));
    prepare(&f, 0, 2);
    f.b = f.gb[0][1]; /* P on the reversed DAG */
    plstm_graph_layer_config c =
        plstm_graph_layer_config_default(PLSTM_GRAPH_LAYER_EDGE, 8, 2, PLSTM_GRAPH_MODE_P);
    TU_OK(plstm_params_create(&f.p));
    TU_OK(plstm_graph_postup_declare(&f.B, &c, f.p, "blk"));
    const size_t N = (size_t)f.b->num_nodes, E = (size_t)f.b->num_edges;
    setup_common(&f, &r, N * 8, E * 8, N * 8);
    double *dx = tu_calloc(f.nx, sizeof(double)), *dex = tu_calloc(f.nex, sizeof(double));
    analytic(&f, dx, dex);
    TU_ASSERT_CLOSE(fd_check(&f, f.params, f.grads, f.np, 3), 1e-6, "block param grads");
    TU_ASSERT_CLOSE(fd_check(&f, f.x, dx, f.nx, 1), 1e-6, "block dx");
    TU_ASSERT_CLOSE(fd_check(&f, f.ex, dex, f.nex, 1), 1e-6, "block dedge_x");
    free(dx), free(dex);
    fixture_free(&f);
}

static void check_model(plstm_graph_layer_kind lk, uint64_t seed)
{
    fixture f;
    memset(&f, 0, sizeof f);
    f.k = K_MODEL;
    tu_rng r;
    tu_rng_seed(&r, seed);
    TU_OK(plstm_context_create(&f.ctx, PLSTM_BACKEND_CPU, 0));
    prepare(&f, 0, 3);
    plstm_graph_model_config c = plstm_graph_model_config_default(5, 3);
    c.hidden_dim = 8;
    c.num_heads = 2;
    c.layer_kind = lk;
    c.max_edges = 3;
    TU_OK(plstm_params_create(&f.p));
    TU_OK(plstm_graph_model_declare(&f.M, &c, f.p));
    const size_t N = (size_t)f.gb[0][0]->num_nodes;
    setup_common(&f, &r, N * 5, 0, 3 * 3);
    analytic(&f, NULL, NULL);
    TU_ASSERT_CLOSE(fd_check(&f, f.params, f.grads, f.np, 7), 1e-6, "model param grads");
    fixture_free(&f);
}

static void test_model_fd(void **state)
{
    (void)state;
    check_model(PLSTM_GRAPH_LAYER_EDGE, 21);
    check_model(PLSTM_GRAPH_LAYER_NODEWISE, 22);
}

/* One batch of three graphs equals three single-graph calls. */
static void check_batched(plstm_graph_layer_kind lk, plstm_graph_mode mode)
{
    fixture all;
    memset(&all, 0, sizeof all);
    all.k = K_LAYER;
    tu_rng r;
    tu_rng_seed(&r, 31 + (uint64_t)mode);
    TU_OK(plstm_context_create(&all.ctx, PLSTM_BACKEND_CPU, 0));
    prepare(&all, 0, 3);
    const int md = mode == PLSTM_GRAPH_MODE_D;
    all.b = all.gb[md][1];
    plstm_graph_layer_config c = plstm_graph_layer_config_default(lk, 8, 2, mode);
    c.max_edges = 3;
    c.edge_input_dim = lk == PLSTM_GRAPH_LAYER_EDGE ? 4 : 0;
    TU_OK(plstm_params_create(&all.p));
    TU_OK(plstm_graph_layer_declare(&all.L, &c, all.p, NULL));
    const size_t N = (size_t)all.b->num_nodes, E = (size_t)all.b->num_edges;
    const size_t De = (size_t)c.edge_input_dim;
    setup_common(&all, &r, N * 8, E * De, N * 8);
    double *dx = tu_calloc(N * 8, sizeof(double)), *dex = tu_calloc(E * De + 1, sizeof(double));
    analytic(&all, dx, De ? dex : NULL);
    double *gsum = tu_calloc(all.np, sizeof(double));
    double *y1 = tu_calloc(N * 8, sizeof(double)), *dx1 = tu_calloc(N * 8, sizeof(double));
    double *dex1 = tu_calloc(E * De + 1, sizeof(double));
    size_t n0 = 0, e0 = 0;
    for (int g = 0; g < 3; g++) {
        fixture one;
        memset(&one, 0, sizeof one);
        one.k = K_LAYER;
        one.ctx = all.ctx;
        one.L = all.L;
        prepare(&one, g, 1);
        one.b = one.gb[md][1];
        const size_t n = (size_t)G_NODES[g], e = (size_t)G_EDGES[g];
        one.np = all.np;
        one.params = all.params;
        one.grads = tu_calloc(all.np, sizeof(double));
        one.x = all.x + n0 * 8;
        one.ex = De ? all.ex + e0 * De : NULL;
        one.dy = all.dy + n0 * 8;
        one.y = y1 + n0 * 8;
        one.ny = n * 8, one.nx = n * 8, one.nex = e * De;
        analytic(&one, dx1 + n0 * 8, De ? dex1 + e0 * De : NULL);
        for (size_t i = 0; i < all.np; i++)
            gsum[i] += one.grads[i];
        free(one.grads);
        for (int i = 0; i < 4; i++)
            plstm_graph_batch_destroy(one.gb[i / 2][i % 2]);
        n0 += n, e0 += e;
    }
    /* all.y holds the batched forward from analytic() */
    TU_ASSERT_CLOSE(tu_rel_err_f64(y1, all.y, N * 8), 1e-12, "batched y");
    TU_ASSERT_CLOSE(tu_rel_err_f64(dx1, dx, N * 8), 1e-12, "batched dx");
    if (De)
        TU_ASSERT_CLOSE(tu_rel_err_f64(dex1, dex, E * De), 1e-12, "batched dedge_x");
    TU_ASSERT_CLOSE(tu_rel_err_f64(gsum, all.grads, all.np), 1e-12, "batched param grads");
    free(gsum), free(y1), free(dx1), free(dex1), free(dx), free(dex);
    fixture_free(&all);
}

static void test_batched_equals_single(void **state)
{
    (void)state;
    check_batched(PLSTM_GRAPH_LAYER_NODEWISE, PLSTM_GRAPH_MODE_P);
    check_batched(PLSTM_GRAPH_LAYER_NODEWISE, PLSTM_GRAPH_MODE_D);
    check_batched(PLSTM_GRAPH_LAYER_EDGE, PLSTM_GRAPH_MODE_P);
    check_batched(PLSTM_GRAPH_LAYER_EDGE, PLSTM_GRAPH_MODE_D);
}

static void test_errors(void **state)
{
    (void)state;
    fixture f;
    memset(&f, 0, sizeof f);
    TU_OK(plstm_context_create(&f.ctx, PLSTM_BACKEND_CPU, 0));
    prepare(&f, 0, 1);
    plstm_graph_layer_config c =
        plstm_graph_layer_config_default(PLSTM_GRAPH_LAYER_NODEWISE, 8, 2, PLSTM_GRAPH_MODE_P);
    c.max_edges = 1; /* graph 0 has nodes with two successors */
    TU_OK(plstm_params_create(&f.p));
    TU_OK(plstm_graph_layer_declare(&f.L, &c, f.p, NULL));
    f.np = plstm_params_size(f.p);
    f.params = tu_calloc(f.np, sizeof(double));
    TU_OK(plstm_graph_layer_init(&f.L, f.params, PLSTM_F64, 1));
    f.x = tu_calloc(7 * 8, sizeof(double));
    f.y = tu_calloc(7 * 8, sizeof(double));
    assert_int_equal(plstm_graph_layer_forward(f.ctx, &f.L, PLSTM_F64, f.params, f.gb[0][0], f.x,
                                               NULL, f.y, NULL),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "max_edges"));
    /* the edge layer without edge features */
    plstm_graph_layer Le;
    plstm_graph_layer_config ce =
        plstm_graph_layer_config_default(PLSTM_GRAPH_LAYER_EDGE, 8, 2, PLSTM_GRAPH_MODE_D);
    plstm_params *p2;
    TU_OK(plstm_params_create(&p2));
    TU_OK(plstm_graph_layer_declare(&Le, &ce, p2, NULL));
    double *pe = tu_calloc(plstm_params_size(p2), sizeof(double));
    assert_int_equal(plstm_graph_layer_forward(f.ctx, &Le, PLSTM_F64, pe, f.gb[1][0], f.x, NULL,
                                               f.y, NULL),
                     PLSTM_ERR_INVALID_ARGUMENT);
    free(pe);
    plstm_params_destroy(p2);
    fixture_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nodewise_fd),
        cmocka_unit_test(test_edge_fd),
        cmocka_unit_test(test_block_fd),
        cmocka_unit_test(test_model_fd),
        cmocka_unit_test(test_batched_equals_single),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
