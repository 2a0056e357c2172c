/* Benchmark of one fused 2D pLSTM layer (plstm_layer2d_fused_*) at the APE
 * model's sizes: B = 8, grid 12×12, dim 192, 6 heads (DK = DV = 32, all J = 1),
 * default vision-model sub-layer config, P and D mode. Prints the best-of-N
 * forward and backward wall times, and for comparison the fused core alone
 * (plstm_core2d_fused4_*) on the same sizes.
 *
 * Usage: bench_layer2d [--reps N] [--threads T] [--dtype f32|f64] [--batch B]
 *                      [--grid G] [--dim D] [--heads H] [--algo auto|sequential|parallel] */
#include "plstm/plstm.h"
#include "cli/blas_tune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(expr)                                                                            \
    do {                                                                                       \
        plstm_status s_ = (expr);                                                              \
        if (s_ != PLSTM_OK) {                                                                  \
            fprintf(stderr, "%s: %s: %s\n", #expr, plstm_status_name(s_), plstm_last_error()); \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of the whole process (all threads). */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best-of timing of one call: wall and CPU seconds of the fastest run. */
typedef struct best {
    double wall, cpu;
} best;

static void best_update(best *b, double w0, double c0)
{
    const double w = now() - w0, c = cpu_now() - c0;
    if (w < b->wall) {
        b->wall = w;
        b->cpu = c;
    }
}

static unsigned long long rng_state = 777;
static double urand(double lo, double hi)
{
    unsigned long long z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return lo + (hi - lo) * (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static void *filled(size_t n, plstm_dtype dt, double lo, double hi)
{
    const size_t esz = plstm_dtype_size(dt);
    void *p = malloc((n ? n : 1) * esz);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        if (dt == PLSTM_F32)
            ((float *)p)[i] = (float)urand(lo, hi);
        else
            ((double *)p)[i] = urand(lo, hi);
    }
    return p;
}

typedef struct opts {
    int reps, threads, B, G, D, H;
    plstm_dtype dt;
    plstm_algo algo;
} opts;

static void bench_layer(plstm_context *ctx, const opts *o, plstm_layer2d_mode mode)
{
    plstm_params *p;
    CHECK(plstm_params_create(&p));
    plstm_layer2d L;
    plstm_layer2d_config cfg = plstm_layer2d_fused_config_default(o->D, o->H, mode);
    cfg.algo = o->algo;
    CHECK(plstm_layer2d_declare(&L, &cfg, p, "layer"));
    const size_t np = plstm_params_size(p), esz = plstm_dtype_size(o->dt);
    void *prm = calloc(np, esz), *g = calloc(np, esz);
    CHECK(plstm_layer2d_init(&L, prm, o->dt, 1));
    const size_t nx = (size_t)o->B * o->G * o->G * o->D;
    void *x = filled(nx, o->dt, -1, 1), *dy = filled(nx, o->dt, -1, 1);
    void *y = filled(nx, o->dt, 0, 0), *dx = filled(nx, o->dt, 0, 0);
    const size_t na = plstm_layer2d_fused_activation_size(&L, o->B, o->G, o->G);
    void *acts = filled(na, o->dt, 0, 0);
    best bf = {1e30, 0}, bb = {1e30, 0};
    for (int r = 0; r < o->reps; r++) {
        double w0 = now(), c0 = cpu_now();
        CHECK(plstm_layer2d_fused_forward(ctx, &L, o->dt, prm, o->B, o->G, o->G, x, y, acts));
        best_update(&bf, w0, c0);
        w0 = now(), c0 = cpu_now();
        CHECK(plstm_layer2d_fused_backward(ctx, &L, o->dt, prm, o->B, o->G, o->G, x, acts, dy, dx,
                                           g));
        best_update(&bb, w0, c0);
    }
    printf("layer %s-mode: forward %8.3f ms (cpu %8.3f)  backward %8.3f ms (cpu %8.3f)  "
           "[%zu params, %.1f MiB acts]\n",
           mode == PLSTM_LAYER2D_P ? "P" : "D", 1e3 * bf.wall, 1e3 * bf.cpu, 1e3 * bb.wall,
           1e3 * bb.cpu, plstm_params_numel(p), (double)na * esz / (1 << 20));
    free(prm), free(g), free(x), free(dy), free(y), free(dx), free(acts);
    plstm_params_destroy(p);
}

/* The fused core alone with the same sizes (inputs random, gates in (0, 1)). */
static void bench_core(plstm_context *ctx, const opts *o)
{
    const int BH = o->B * o->H, X = o->G, Y = o->G, DK = o->D / o->H, DV = DK;
    const size_t nodes = (size_t)BH * X * Y;
    plstm_core2d_desc d = {.dtype = o->dt, .B = BH, .X = X, .Y = Y, .DK = DK, .DV = DV,
                           .JQ = 1, .JK = 1, .JV = 1, .JT = 1, .JO = 1, .scale = 0.17,
                           .algo = o->algo};
    void *q = filled(nodes * DK, o->dt, -1, 1), *k = filled(nodes * DK, o->dt, -1, 1);
    void *v = filled(nodes * DV, o->dt, -1, 1), *D = filled(nodes, o->dt, 0, 1);
    void *gates[8], *dgates[8];
    for (int i = 0; i < 8; i++) {
        gates[i] = filled(4 * nodes, o->dt, 0, 0.5);
        dgates[i] = filled(4 * nodes, o->dt, 0, 0);
    }
    void *y = filled(nodes * DV, o->dt, 0, 0), *dy = filled(nodes * DV, o->dt, -1, 1);
    void *dq = filled(nodes * DK, o->dt, 0, 0), *dk = filled(nodes * DK, o->dt, 0, 0);
    void *dv = filled(nodes * DV, o->dt, 0, 0), *dD = filled(nodes, o->dt, 0, 0);
    plstm_core2d_inputs in = {q, k, v, gates[0], gates[1], gates[2], gates[3], gates[4], gates[5],
                              gates[6], gates[7], D, NULL, NULL};
    plstm_core2d_outputs out = {y, NULL, NULL};
    plstm_core2d_cotangents co = {dy, NULL, NULL};
    plstm_core2d_grads gr = {dq, dk, dv, dgates[0], dgates[1], dgates[2], dgates[3],
                             dgates[4], dgates[5], dgates[6], dgates[7], dD, NULL, NULL};
    best bf = {1e30, 0}, bb = {1e30, 0};
    for (int r = 0; r < o->reps; r++) {
        double w0 = now(), c0 = cpu_now();
        CHECK(plstm_core2d_fused4_forward(ctx, &d, &in, &out));
        best_update(&bf, w0, c0);
        w0 = now(), c0 = cpu_now();
        CHECK(plstm_core2d_fused4_backward(ctx, &d, &in, &co, &gr));
        best_update(&bb, w0, c0);
    }
    printf("core fused4 alone: forward %8.3f ms (cpu %8.3f)  backward %8.3f ms (cpu %8.3f)\n",
           1e3 * bf.wall, 1e3 * bf.cpu, 1e3 * bb.wall, 1e3 * bb.cpu);
    for (int i = 0; i < 8; i++)
        free(gates[i]), free(dgates[i]);
    free(q), free(k), free(v), free(D), free(y), free(dy), free(dq), free(dk), free(dv), free(dD);
}

int main(int argc, char **argv)
{
    plstm_program_tune_blas(argv);
    opts o = {.reps = 10, .threads = 0, .B = 8, .G = 12, .D = 192, .H = 6, .dt = PLSTM_F32};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--reps")) o.reps = atoi(v);
        else if (!strcmp(a, "--threads")) o.threads = atoi(v);
        else if (!strcmp(a, "--batch")) o.B = atoi(v);
        else if (!strcmp(a, "--grid")) o.G = atoi(v);
        else if (!strcmp(a, "--dim")) o.D = atoi(v);
        else if (!strcmp(a, "--heads")) o.H = atoi(v);
        else if (!strcmp(a, "--algo"))
            o.algo = !strcmp(v, "sequential") ? PLSTM_ALGO_SEQUENTIAL
                     : !strcmp(v, "parallel") ? PLSTM_ALGO_PARALLEL : PLSTM_ALGO_AUTO;
        else if (!strcmp(a, "--dtype")) o.dt = strcmp(v, "f64") ? PLSTM_F32 : PLSTM_F64;
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
    }
    if (o.reps < 1 || o.B < 1 || o.G < 1 || o.H < 2 || o.D % o.H) {
        fprintf(stderr, "bad sizes\n");
        return 2;
    }
    plstm_context *ctx;
    CHECK(plstm_context_create(&ctx, PLSTM_BACKEND_CPU, 0));
    if (o.threads)
        CHECK(plstm_context_set_threads(ctx, o.threads));
    printf("B %d, grid %dx%d, dim %d, heads %d, %s, threads %d, algo %d, best of %d\n", o.B, o.G,
           o.G, o.D, o.H, o.dt == PLSTM_F32 ? "f32" : "f64", plstm_context_threads(ctx),
           (int)o.algo, o.reps);
    bench_layer(ctx, &o, PLSTM_LAYER2D_P);
    bench_layer(ctx, &o, PLSTM_LAYER2D_D);
    bench_core(ctx, &o);
    plstm_context_destroy(ctx);
    return 0;
}
