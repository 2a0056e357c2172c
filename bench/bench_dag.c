/* Benchmark of the DAG pLSTM core (F32, J = 1): forward and backward, the
 * level-parallel form against the per-entry topological pass, on
 *   1. a batch of 64 random molecule-like graphs (~18 nodes, ~20 edges:
 *      a random tree plus a few ring closures, oriented low -> high index),
 *      B·H = 4, DK = DV = 24;
 *   2. a 48×48 grid DAG (right and down edges), B·H = 48, DK = DV = 32.
 * Usage: bench_dag [threads]   (default: OpenMP default). */
#include "plstm/plstm.h"
#include "cli/blas_tune.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 12345;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float frand(float lo, float hi) { return lo + (hi - lo) * (float)(rnd() >> 40) / 16777216.0f; }

#define CHECK(expr)                                                                       \
    do {                                                                                  \
        plstm_status s_ = (expr);                                                         \
        if (s_ != PLSTM_OK) {                                                             \
            fprintf(stderr, "%s: %s: %s\n", #expr, plstm_status_name(s_), plstm_last_error()); \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

/* 64 molecule-like graphs: tree on n nodes + r extra edges, oriented low -> high. */
static plstm_dag *molecules(int graphs)
{
    int64_t *nodes = calloc((size_t)graphs, sizeof *nodes), *ecnt = calloc((size_t)graphs, sizeof *ecnt);
    int64_t *edges = calloc((size_t)graphs * 64, sizeof *edges), ne = 0;
    for (int g = 0; g < graphs; g++) {
        int n = 12 + (int)(rnd() % 13), r = (int)(rnd() % 4);
        int64_t *ge = edges + 2 * ne;
        int k = 0;
        for (int i = 1; i < n; i++, k++) {
            ge[2 * k] = (int64_t)(rnd() % (uint64_t)i);
            ge[2 * k + 1] = i;
        }
        for (int tries = 0; r > 0 && tries < 100; tries++) {
            int64_t a = (int64_t)(rnd() % (uint64_t)n), b = (int64_t)(rnd() % (uint64_t)n);
            if (a == b)
                continue;
            if (a > b) {
                int64_t t = a;
                a = b;
                b = t;
            }
            int dup = 0;
            for (int j = 0; j < k; j++)
                dup |= ge[2 * j] == a && ge[2 * j + 1] == b;
            if (dup)
                continue;
            ge[2 * k] = a;
            ge[2 * k + 1] = b;
            k++;
            r--;
        }
        nodes[g] = n;
        ecnt[g] = k;
        ne += k;
    }
    plstm_dag *dag = NULL;
    CHECK(plstm_dag_create_batch(&dag, graphs, nodes, ecnt, edges));
    free(nodes);
    free(ecnt);
    free(edges);
    return dag;
}

static plstm_dag *grid(int X, int Y)
{
    int64_t *e = calloc((size_t)4 * X * Y, sizeof *e), k = 0;
    for (int x = 0; x < X; x++)
        for (int y = 0; y < Y; y++) {
            if (x + 1 < X) {
                e[2 * k] = (int64_t)x * Y + y;
                e[2 * k + 1] = (int64_t)(x + 1) * Y + y;
                k++;
            }
            if (y + 1 < Y) {
                e[2 * k] = (int64_t)x * Y + y;
                e[2 * k + 1] = (int64_t)x * Y + y + 1;
                k++;
            }
        }
    plstm_dag *dag = NULL;
    CHECK(plstm_dag_create(&dag, (int64_t)X * Y, k, e));
    free(e);
    return dag;
}

/* Floating-point operations of the J = 1 core (multiply-add = 2). */
static void flops(const plstm_dag *dag, int B, int DK, int DV, double *fwd, double *bwd)
{
    const double N = (double)plstm_dag_num_nodes(dag), E = (double)plstm_dag_num_edges(dag);
    const double A = (double)plstm_dag_num_arcs(dag), S = (double)DK * DV;
    const double edges = E * 2 * S + A * 2 * S;      /* source write, transitions */
    const double nodes = E * 2 * S + N * 2 * (DK + DV); /* mark reads, direct        */
    *fwd = B * (edges + nodes);
    /* recompute states; g: mark write + transposed transitions; dT; node side:
     * cy, gk, dk (3 per edge) and the small terms */
    *bwd = B * (edges + E * 2 * S + 2 * A * 2 * S + E * 3 * 2 * S + N * 6 * (DK + DV));
}

typedef struct result {
    double fwd_s, bwd_s;
} result;

static result run(plstm_context *ctx, const plstm_dag *dag, int B, int DK, int DV, plstm_algo algo)
{
    const size_t N = (size_t)plstm_dag_num_nodes(dag), E = (size_t)plstm_dag_num_edges(dag);
    const size_t A = (size_t)plstm_dag_num_arcs(dag), Bs = (size_t)B;
    const size_t n[7] = {Bs * N * DK, Bs * N * DK, Bs * N * DV, Bs * E, Bs * A, Bs * E, Bs * N};
    float *x[7], *gx[7];
    for (int i = 0; i < 7; i++) {
        x[i] = malloc((n[i] + 1) * sizeof(float));
        gx[i] = malloc((n[i] + 1) * sizeof(float));
        for (size_t j = 0; j < n[i]; j++)
            x[i][j] = i == 4 ? frand(0.3f, 0.5f) : frand(-1, 1); /* |T| sum ~ < 1 */
    }
    float *y = malloc(Bs * N * DV * sizeof(float)), *dy = malloc(Bs * N * DV * sizeof(float));
    for (size_t j = 0; j < Bs * N * DV; j++)
        dy[j] = frand(-1, 1);
    const plstm_dag_core_desc d = {.dtype = PLSTM_F32, .B = B, .DK = DK, .DV = DV, .JQ = 1,
                                   .JK = 1, .JV = 1, .JT = 1, .JO = 1, .scale = 0.2, .algo = algo};
    const plstm_dag_core_inputs in = {x[0], x[1], x[2], x[3], x[4], x[5], x[6]};
    const plstm_dag_core_grads gr = {gx[0], gx[1], gx[2], gx[3], gx[4], gx[5], gx[6]};
    result r = {0, 0};
    CHECK(plstm_dag_core_forward(ctx, &d, dag, &in, y)); /* warm-up */
    int reps = 0;
    double t0 = now();
    do {
        CHECK(plstm_dag_core_forward(ctx, &d, dag, &in, y));
        reps++;
    } while (now() - t0 < 1.0);
    r.fwd_s = (now() - t0) / reps;
    reps = 0;
    t0 = now();
    do {
        CHECK(plstm_dag_core_backward(ctx, &d, dag, &in, dy, &gr));
        reps++;
    } while (now() - t0 < 1.5);
    r.bwd_s = (now() - t0) / reps;
    for (int i = 0; i < 7; i++) {
        free(x[i]);
        free(gx[i]);
    }
    free(y);
    free(dy);
    return r;
}

static void bench_case(plstm_context *ctx, const char *name, const plstm_dag *dag, int B, int DK,
                       int DV)
{
    double ff, fb;
    flops(dag, B, DK, DV, &ff, &fb);
    printf("\n%s: %lld graphs, N=%lld E=%lld A=%lld levels=%lld, B*H=%d, DK=DV=%d, J=1, F32\n",
           name, (long long)plstm_dag_num_graphs(dag), (long long)plstm_dag_num_nodes(dag),
           (long long)plstm_dag_num_edges(dag), (long long)plstm_dag_num_arcs(dag),
           (long long)plstm_dag_num_levels(dag), B, DK);
    printf("  %-16s %10s %10s %10s %10s\n", "algo", "fwd ms", "fwd GF/s", "bwd ms", "bwd GF/s");
    result rp = run(ctx, dag, B, DK, DV, PLSTM_ALGO_PARALLEL);
    result rs = run(ctx, dag, B, DK, DV, PLSTM_ALGO_SEQUENTIAL);
    printf("  %-16s %10.3f %10.2f %10.3f %10.2f\n", "level-parallel", 1e3 * rp.fwd_s,
           ff / rp.fwd_s * 1e-9, 1e3 * rp.bwd_s, fb / rp.bwd_s * 1e-9);
    printf("  %-16s %10.3f %10.2f %10.3f %10.2f\n", "sequential", 1e3 * rs.fwd_s,
           ff / rs.fwd_s * 1e-9, 1e3 * rs.bwd_s, fb / rs.bwd_s * 1e-9);
    printf("  speed-up of level-parallel over sequential: fwd %.2fx, bwd %.2fx\n",
           rs.fwd_s / rp.fwd_s, rs.bwd_s / rp.bwd_s);
}

int main(int argc, char **argv)
{
    plstm_program_tune_blas(argv);
    plstm_context *ctx = NULL;
    CHECK(plstm_context_create(&ctx, PLSTM_BACKEND_CPU, 0));
    if (argc > 1)
        CHECK(plstm_context_set_threads(ctx, atoi(argv[1])));
    printf("bench_dag: threads = %d (sequential = one batch entry per thread, topological "
           "order;\n  level-parallel = threads over batch x edges of a level)\n",
           argc > 1 ? atoi(argv[1]) : omp_get_max_threads());
    plstm_dag *mol = molecules(64);
    bench_case(ctx, "molecules (MUTAG-like)", mol, 4, 24, 24);
    plstm_dag_destroy(mol);
    plstm_dag *g = grid(48, 48);
    bench_case(ctx, "grid 48x48", g, 48, 32, 32);
    plstm_dag_destroy(g);
    plstm_context_destroy(ctx);
    return 0;
}
