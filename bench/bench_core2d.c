/* Benchmark of the 2D pLSTM core: forward + backward of the four-orientation
 * fused form (plstm_core2d_fused4_*, i.e. four plain cores on flipped grids),
 * B·H = 48, DK = DV = 32, all J = 1, the sequential recurrence against the
 * tiled parallel form (desc.algo), per grid size.
 *
 * GFLOP/s counts the useful FLOPs of the sequential recurrence for both forms
 * (the tiled form does more arithmetic than that), per node, per orientation,
 * J = 1, a multiply-add = 2 FLOPs:
 *   forward  15·DK·DV: k vᵀ (1), two outgoing states of three terms each (2·5),
 *                      two mark reads (2·2);
 *   backward 33·DK·DV: two incoming gradients of three terms (2·5), four dT
 *                      (4·2), two dS (2·2), dk and dv through the sources (7),
 *                      dq through the two marks (4);
 *   total    48·DK·DV·B·X·Y·4 (the direct term and the recompute not counted).
 *
 * Usage: bench_core2d [--grids 12,24,48,128] [--reps N] [--threads T]
 *                     [--dtype f32|f64] [--tile BP]
 * Each timing is the best of up to N repetitions (a grid stops repeating once
 * it has used ~3 s); "cpu" columns are the CPU seconds of that run.
 * Note: OpenBLAS may pick a generic kernel on virtual CPUs; OPENBLAS_CORETYPE
 * (e.g. Haswell, SkylakeX) forces the right one. */
#include "plstm/plstm.h"
#include "cli/blas_tune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BH = 48, DK = 32, DV = 32 };

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static unsigned long long rng_state = 12345;
static double urand(double lo, double hi)
{
    unsigned long long z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return lo + (hi - lo) * (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

#define CHECK(expr)                                                                       \
    do {                                                                                  \
        plstm_status s_ = (expr);                                                         \
        if (s_ != PLSTM_OK) {                                                             \
            fprintf(stderr, "%s: %s: %s\n", #expr, plstm_status_name(s_), plstm_last_error()); \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

static void *alloc_fill(size_t n, size_t esz, double lo, double hi)
{
    void *p = malloc(n * esz);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        double v = urand(lo, hi);
        if (esz == 4)
            ((float *)p)[i] = (float)v;
        else
            ((double *)p)[i] = v;
    }
    return p;
}

static void *alloc_zero(size_t n, size_t esz)
{
    void *p = calloc(n, esz);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

/* max|a-b| / max|b| */
static double rel_diff(const void *a, const void *b, size_t n, size_t esz)
{
    double diff = 0, ref = 0;
    for (size_t i = 0; i < n; i++) {
        double x = esz == 4 ? ((const float *)a)[i] : ((const double *)a)[i];
        double y = esz == 4 ? ((const float *)b)[i] : ((const double *)b)[i];
        double d = x > y ? x - y : y - x, m = y > 0 ? y : -y;
        diff = d > diff ? d : diff;
        ref = m > ref ? m : ref;
    }
    return ref > 0 ? diff / ref : diff;
}

/* Times fwd+bwd of one algorithm (best wall time; *cpu: CPU seconds of all
 * threads in that run, less sensitive to other load on a shared machine). */
static double time_algo(plstm_context *ctx, plstm_core2d_desc d, plstm_algo algo,
                        const plstm_core2d_inputs *in, void *Y, const void *dY,
                        const plstm_core2d_grads *g, int reps, double *cpu)
{
    d.algo = algo;
    plstm_core2d_outputs out = {.Y = Y};
    plstm_core2d_cotangents dout = {.Y = dY};
    double best = 1e300, spent = 0;
    for (int r = 0; r < reps && (r == 0 || spent < 3.0); r++) {
        double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        CHECK(plstm_core2d_fused4_forward(ctx, &d, in, &out));
        CHECK(plstm_core2d_fused4_backward(ctx, &d, in, &dout, g));
        double t = clock_s(CLOCK_MONOTONIC) - t0, c = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        spent += t;
        if (t < best) {
            best = t;
            *cpu = c;
        }
    }
    return best;
}

static void run_grid(plstm_context *ctx, plstm_dtype dt, int G, int reps, int tile)
{
    const size_t esz = plstm_dtype_size(dt), nodes = (size_t)BH * G * G;
    plstm_core2d_desc d = {.dtype = dt, .B = BH, .X = G, .Y = G, .DK = DK, .DV = DV, .JQ = 1,
                           .JK = 1, .JV = 1, .JT = 1, .JO = 1, .scale = 0.17677669529663687,
                           .tile = tile};
    void *Q = alloc_fill(nodes * DK, esz, -1, 1), *K = alloc_fill(nodes * DK, esz, -1, 1);
    void *V = alloc_fill(nodes * DV, esz, -1, 1), *D = alloc_fill(nodes, esz, 0, 0.1);
    void *gate[8]; /* S_r S_d T_rl T_du T_dl T_ru M_l M_u, orientation axis */
    for (int i = 0; i < 8; i++)
        gate[i] = i >= 2 && i < 6 ? alloc_fill(4 * nodes, esz, 0.1, 0.5)
                                  : alloc_fill(4 * nodes, esz, 0, 0.1);
    plstm_core2d_inputs in = {.Q = Q, .K = K, .V = V, .S_r = gate[0], .S_d = gate[1],
                              .T_rl = gate[2], .T_du = gate[3], .T_dl = gate[4],
                              .T_ru = gate[5], .M_l = gate[6], .M_u = gate[7], .D = D};
    void *dY = alloc_fill(nodes * DV, esz, -1, 1);
    void *Y[2] = {alloc_zero(nodes * DV, esz), alloc_zero(nodes * DV, esz)};
    void *dQ[2] = {alloc_zero(nodes * DK, esz), alloc_zero(nodes * DK, esz)};
    void *dK = alloc_zero(nodes * DK, esz), *dV = alloc_zero(nodes * DV, esz);
    void *dD = alloc_zero(nodes, esz), *dgate[8];
    for (int i = 0; i < 8; i++)
        dgate[i] = alloc_zero(4 * nodes, esz);

    double t[2], cpu[2];
    const plstm_algo algos[2] = {PLSTM_ALGO_SEQUENTIAL, PLSTM_ALGO_PARALLEL};
    for (int a = 0; a < 2; a++) {
        plstm_core2d_grads g = {.Q = dQ[a], .K = dK, .V = dV, .S_r = dgate[0],
                                .S_d = dgate[1], .T_rl = dgate[2], .T_du = dgate[3],
                                .T_dl = dgate[4], .T_ru = dgate[5], .M_l = dgate[6],
                                .M_u = dgate[7], .D = dD};
        t[a] = time_algo(ctx, d, algos[a], &in, Y[a], dY, &g, reps, &cpu[a]);
    }
    const double gflop = 48.0 * DK * DV * (double)nodes * 4 * 1e-9;
    printf("%4dx%-4d %9.3f %9.2f %9.3f %9.2f %8.2fx %9.2f %9.2f   %.1e %.1e\n", G, G, t[0],
           gflop / t[0], t[1], gflop / t[1], t[0] / t[1], cpu[0], cpu[1],
           rel_diff(Y[1], Y[0], nodes * DV, esz), rel_diff(dQ[1], dQ[0], nodes * DK, esz));
    fflush(stdout);
    free(Q), free(K), free(V), free(D), free(dY), free(dK), free(dV), free(dD);
    for (int i = 0; i < 8; i++)
        free(gate[i]), free(dgate[i]);
    for (int a = 0; a < 2; a++)
        free(Y[a]), free(dQ[a]);
}

int main(int argc, char **argv)
{
    plstm_program_tune_blas(argv);
    const char *grids = "12,24,48,128";
    int reps = 3, threads = 0, tile = 0;
    plstm_dtype dt = PLSTM_F32;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--grids") && i + 1 < argc)
            grids = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tile") && i + 1 < argc)
            tile = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) {
            const char *s = argv[++i];
            if (!strcmp(s, "f32"))
                dt = PLSTM_F32;
            else if (!strcmp(s, "f64"))
                dt = PLSTM_F64;
            else {
                fprintf(stderr, "--dtype: f32 or f64\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: %s [--grids 12,24,48,128] [--reps N] [--threads T] "
                            "[--dtype f32|f64] [--tile BP]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1)
        reps = 1;
    plstm_context *ctx;
    CHECK(plstm_context_create(&ctx, PLSTM_BACKEND_CPU, 0));
    if (threads > 0)
        CHECK(plstm_context_set_threads(ctx, threads));
    printf("core2d fused4 fwd+bwd, B*H=%d DK=DV=%d J=1 %s, threads %d (0: OpenMP default), "
           "tile %d (0: default), best of <= %d\n",
           BH, DK, dt == PLSTM_F32 ? "f32" : "f64", plstm_context_threads(ctx), tile, reps);
    printf("%-9s %9s %9s %9s %9s %9s %9s %9s   %s\n", "grid", "seq s", "seq GF/s", "tiled s",
           "tiledGF/s", "speedup", "seq cpu", "tiledcpu", "rel.diff Y, dQ");
    char *list = strdup(grids);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ","))
        if (atoi(tok) > 0)
            run_grid(ctx, dt, atoi(tok), reps, tile);
    free(list);
    plstm_context_destroy(ctx);
    return 0;
}
