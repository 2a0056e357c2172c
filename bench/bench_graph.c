/* Benchmark of the graph pLSTM layers (F32, input_dim 96, 4 heads): forward +
 * backward on batches of 64 MUTAG graphs (~18 nodes, ~20 edges each) run as
 * one batched computation, against a one-graph-at-a-time loop over the same
 * graphs, for the edge-feature and node-wise layers in P and D mode.
 * Without the MUTAG files it generates molecule-like graphs (a random tree
 * plus two ring closures, 18 nodes).
 * Usage: bench_graph [threads] [seconds per measurement (default 1.5)] */
#include "plstm/plstm.h"
#include "plstm/tu.h"
#include "cli/blas_tune.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(expr)                                                                       \
    do {                                                                                  \
        plstm_status s_ = (expr);                                                         \
        if (s_ != PLSTM_OK) {                                                             \
            fprintf(stderr, "%s: %s: %s\n", #expr, plstm_status_name(s_), plstm_last_error()); \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

enum { BATCH = 64, NBATCH = 3, DIM = 96, HEADS = 4 };

static uint64_t rs = 12345;
static uint64_t rnd(void)
{
    uint64_t z = (rs += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float frand(void) { return (float)((double)(rnd() >> 40) / 16777216.0 * 2.0 - 1.0); }

typedef struct graphs {
    int64_t G, *nodes, *nedges, *eoff, *edges;
} graphs;

/* MUTAG from the checkout's shared/data, else generated graphs. */
static void load_graphs(graphs *g)
{
    char dir[1024];
    const char *f = __FILE__, *sl = strrchr(f, '/');
    snprintf(dir, sizeof dir, "%.*s/../../shared/data/tu/MUTAG", sl ? (int)(sl - f) : 1,
             sl ? f : ".");
    plstm_tu_dataset *ds = NULL;
    if (plstm_tu_load(&ds, dir) == PLSTM_OK) {
        g->G = ds->num_graphs;
        g->nodes = malloc((size_t)g->G * sizeof(int64_t));
        g->nedges = malloc((size_t)g->G * sizeof(int64_t));
        g->eoff = malloc((size_t)(g->G + 1) * sizeof(int64_t));
        g->edges = malloc((size_t)ds->num_edges * 2 * sizeof(int64_t));
        for (int64_t i = 0; i < g->G; i++) {
            g->nodes[i] = ds->node_off[i + 1] - ds->node_off[i];
            g->nedges[i] = ds->edge_off[i + 1] - ds->edge_off[i];
            g->eoff[i] = ds->edge_off[i];
        }
        g->eoff[g->G] = ds->num_edges;
        memcpy(g->edges, ds->edges, (size_t)ds->num_edges * 2 * sizeof(int64_t));
        printf("graphs: MUTAG, %lld graphs, %.1f nodes / %.1f edges on average\n",
               (long long)g->G, (double)ds->num_nodes / g->G, (double)ds->num_edges / g->G);
        plstm_tu_destroy(ds);
        return;
    }
    g->G = 192;
    g->nodes = malloc((size_t)g->G * sizeof(int64_t));
    g->nedges = malloc((size_t)g->G * sizeof(int64_t));
    g->eoff = malloc((size_t)(g->G + 1) * sizeof(int64_t));
    g->edges = malloc((size_t)g->G * 20 * 2 * sizeof(int64_t));
    int64_t e = 0;
    for (int64_t i = 0; i < g->G; i++) {
        g->nodes[i] = 18;
        g->eoff[i] = e;
        for (int n = 1; n < 18; n++, e++)
            g->edges[2 * e] = (int64_t)(rnd() % (uint64_t)n), g->edges[2 * e + 1] = n;
        g->edges[2 * e] = 0, g->edges[2 * e + 1] = 5, e++;
        g->edges[2 * e] = 8, g->edges[2 * e + 1] = 13, e++;
        g->nedges[i] = e - g->eoff[i];
    }
    g->eoff[g->G] = e;
    printf("graphs: generated (MUTAG not found at %s), 18 nodes / 19 edges\n", dir);
}

static double run(plstm_context *ctx, const plstm_graph_layer *L, const float *params,
                  float *grads, plstm_graph_batch **b, int nb, float *x, float *ex, float *y,
                  float *dy, float *dx, float *dex, float *acts, double seconds, int *graphs_done)
{
    const double t0 = omp_get_wtime();
    double t = t0;
    int done = 0;
    for (int it = 0; t - t0 < seconds || it < nb; it++) {
        const plstm_graph_batch *bb = b[it % nb];
        CHECK(plstm_graph_layer_forward(ctx, L, PLSTM_F32, params, bb, x, ex, y, acts));
        CHECK(plstm_graph_layer_backward(ctx, L, PLSTM_F32, params, bb, x, ex, acts, dy, dx,
                                         ex ? dex : NULL, grads));
        done += (int)bb->num_graphs;
        t = omp_get_wtime();
    }
    *graphs_done = done;
    return t - t0;
}

int main(int argc, char **argv)
{
    plstm_program_tune_blas(argv);
    const int threads = argc > 1 ? atoi(argv[1]) : 0;
    const double secs = argc > 2 ? atof(argv[2]) : 1.5;
    if (threads > 0)
        omp_set_num_threads(threads);
    graphs g;
    load_graphs(&g);
    plstm_context *ctx;
    CHECK(plstm_context_create(&ctx, PLSTM_BACKEND_CPU, 0));
    if (threads > 0)
        CHECK(plstm_context_set_threads(ctx, threads));
    printf("threads %d, input_dim %d, %d heads, batches of %d graphs, F32\n",
           threads > 0 ? threads : omp_get_max_threads(), DIM, HEADS, BATCH);
    const size_t maxN = 64 * 64, maxE = 64 * 80; /* bounds for MUTAG batches (28 nodes max) */
    float *x = malloc(maxN * DIM * sizeof(float)), *dy = malloc(maxN * DIM * sizeof(float));
    float *y = malloc(maxN * DIM * sizeof(float)), *dx = malloc(maxN * DIM * sizeof(float));
    float *ex = malloc(maxE * DIM * sizeof(float)), *dex = malloc(maxE * DIM * sizeof(float));
    for (size_t i = 0; i < maxN * DIM; i++)
        x[i] = frand(), dy[i] = frand();
    for (size_t i = 0; i < maxE * DIM; i++)
        ex[i] = frand();
    for (int kind = 0; kind < 2; kind++)
        for (int mode = 0; mode < 2; mode++) {
            const plstm_graph_prep_opts o = {.directed = 0, .mode = (plstm_graph_mode)mode,
                                             .reverse = 0};
            plstm_graph_batch *b[NBATCH], *one[NBATCH * BATCH];
            int64_t ids[BATCH];
            for (int i = 0; i < NBATCH; i++) {
                int64_t nc[BATCH], ec[BATCH], *el = malloc(maxE * 2 * sizeof(int64_t)), ne = 0;
                for (int j = 0; j < BATCH; j++) {
                    ids[j] = (i * BATCH + j) % g.G;
                    nc[j] = g.nodes[ids[j]], ec[j] = g.nedges[ids[j]];
                    memcpy(el + 2 * ne, g.edges + 2 * g.eoff[ids[j]],
                           (size_t)ec[j] * 2 * sizeof(int64_t));
                    ne += ec[j];
                    CHECK(plstm_graph_batch_prepare(&one[i * BATCH + j], 1, &nc[j], &ec[j],
                                                    g.edges + 2 * g.eoff[ids[j]], &o));
                }
                CHECK(plstm_graph_batch_prepare(&b[i], BATCH, nc, ec, el, &o));
                free(el);
            }
            plstm_graph_layer_config c = plstm_graph_layer_config_default(
                kind ? PLSTM_GRAPH_LAYER_NODEWISE : PLSTM_GRAPH_LAYER_EDGE, DIM, HEADS,
                (plstm_graph_mode)mode);
            c.max_edges = 4;
            plstm_params *p;
            plstm_graph_layer L;
            CHECK(plstm_params_create(&p));
            CHECK(plstm_graph_layer_declare(&L, &c, p, NULL));
            const size_t np = plstm_params_size(p);
            float *params = calloc(np, sizeof(float)), *grads = calloc(np, sizeof(float));
            CHECK(plstm_graph_layer_init(&L, params, PLSTM_F32, 1));
            size_t na = 0;
            for (int i = 0; i < NBATCH; i++) {
                size_t s = plstm_graph_layer_activation_size(&L, b[i]);
                na = s > na ? s : na;
            }
            float *acts = malloc(na * sizeof(float));
            const int edge = kind == 0;
            int nbat = 0, nsingle = 0;
            run(ctx, &L, params, grads, b, NBATCH, x, edge ? ex : NULL, y, dy, dx, dex, acts, 0,
                &nbat); /* warm-up */
            const double tb = run(ctx, &L, params, grads, b, NBATCH, x, edge ? ex : NULL, y, dy,
                                  dx, dex, acts, secs, &nbat);
            const double ts = run(ctx, &L, params, grads, one, NBATCH * BATCH, x,
                                  edge ? ex : NULL, y, dy, dx, dex, acts, secs, &nsingle);
            const double rb = nbat / tb, rsg = nsingle / ts;
            /* cost of building a batch from prepared graphs is part of a training step */
            const double tp0 = omp_get_wtime();
            int nprep = 0;
            for (; omp_get_wtime() - tp0 < 0.3; nprep++) {
                plstm_graph_batch *tmp;
                int64_t nc[BATCH], ec[BATCH], *el = malloc(maxE * 2 * sizeof(int64_t)), ne = 0;
                for (int j = 0; j < BATCH; j++) {
                    nc[j] = g.nodes[j], ec[j] = g.nedges[j];
                    memcpy(el + 2 * ne, g.edges + 2 * g.eoff[j], (size_t)ec[j] * 2 * sizeof(int64_t));
                    ne += ec[j];
                }
                CHECK(plstm_graph_batch_prepare(&tmp, BATCH, nc, ec, el, &o));
                plstm_graph_batch_destroy(tmp);
                free(el);
            }
            const double tprep = (omp_get_wtime() - tp0) / nprep;
            printf("%-9s layer, mode %c: batched %8.0f graphs/s (%.2f ms per batch of 64), "
                   "one at a time %7.0f graphs/s, ratio %.1fx; preparing a batch of 64 from "
                   "edge lists %.2f ms\n",
                   edge ? "edge" : "node-wise", mode ? 'D' : 'P', rb, 1e3 * BATCH / rb, rsg,
                   rb / rsg, 1e3 * tprep);
            fflush(stdout);
            for (int i = 0; i < NBATCH; i++)
                plstm_graph_batch_destroy(b[i]);
            for (int i = 0; i < NBATCH * BATCH; i++)
                plstm_graph_batch_destroy(one[i]);
            free(params), free(grads), free(acts);
            plstm_params_destroy(p);
        }
    free(x), free(dy), free(y), free(dx), free(ex), free(dex);
    free(g.nodes), free(g.nedges), free(g.eoff), free(g.edges);
    plstm_context_destroy(ctx);
    return 0;
}
