/* Benchmark of the 2D pLSTM core on the CUDA backend: the four-orientation
 * fused form (plstm_core2d_fused4_*), B·H = 48, DK = DV = 32, all J = 1, F32,
 * forward and backward, per grid size. Also one orientation of the plain core.
 *
 * FLOPs as in bench_core2d.c (useful FLOPs of the sequential recurrence, per
 * node and orientation: forward 15·DK·DV, backward 33·DK·DV). Bytes: the
 * fewest the operator must move, each input read once and each output written
 * once (forward: Q,K,V,gates,D in, Y out; backward: the same inputs plus dY in,
 * every gradient out), F32.
 *
 * Usage: bench_cuda_core2d [--grids 12,24,48,128] [--reps N]
 * Times are the median of N timed calls after 2 warm-up calls, wall clock
 * around each call followed by a stream synchronize. */
#include "plstm/plstm.h"
#include "cli/blas_tune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BH = 48, DK = 32, DV = 32 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static unsigned long long rng_state = 12345;
static float frand(float lo, float hi)
{
    unsigned long long z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return lo + (hi - lo) * (float)(z >> 40) / 16777216.0f;
}

#define CHECK(expr)                                                                         \
    do {                                                                                    \
        plstm_status s_ = (expr);                                                           \
        if (s_ != PLSTM_OK) {                                                               \
            fprintf(stderr, "%s: %s: %s\n", #expr, plstm_status_name(s_), plstm_last_error()); \
            exit(1);                                                                        \
        }                                                                                   \
    } while (0)

static plstm_context *ctx;

static void *dev_random(size_t n, float lo, float hi)
{
    float *h = malloc(n * sizeof *h);
    if (!h)
        exit(1);
    for (size_t i = 0; i < n; i++)
        h[i] = frand(lo, hi);
    void *d;
    CHECK(plstm_malloc(ctx, &d, n * sizeof(float)));
    CHECK(plstm_copy_to_device(ctx, d, h, n * sizeof(float)));
    free(h);
    return d;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct problem {
    plstm_core2d_desc d;
    plstm_core2d_inputs in;
    plstm_core2d_outputs out;
    plstm_core2d_cotangents dout;
    plstm_core2d_grads g;
    void *bufs[32];
    int nbufs;
} problem;

static void *track(problem *p, void *x)
{
    p->bufs[p->nbufs++] = x;
    return x;
}

static problem make(int G, int orient)
{
    problem p;
    memset(&p, 0, sizeof p);
    p.d = (plstm_core2d_desc){.dtype = PLSTM_F32, .B = BH, .X = G, .Y = G, .DK = DK, .DV = DV,
                              .JQ = 1, .JK = 1, .JV = 1, .JT = 1, .JO = 1, .scale = 0.17677669,
                              .algo = PLSTM_ALGO_AUTO};
    size_t nodes = (size_t)BH * G * G, gn = nodes * orient;
    p.in.Q = track(&p, dev_random(nodes * DK, -1, 1));
    p.in.K = track(&p, dev_random(nodes * DK, -1, 1));
    p.in.V = track(&p, dev_random(nodes * DV, -1, 1));
    p.in.S_r = track(&p, dev_random(gn, 0, 1));
    p.in.S_d = track(&p, dev_random(gn, 0, 1));
    p.in.T_rl = track(&p, dev_random(gn, 0, 0.5f));
    p.in.T_du = track(&p, dev_random(gn, 0, 0.5f));
    p.in.T_dl = track(&p, dev_random(gn, 0, 0.5f));
    p.in.T_ru = track(&p, dev_random(gn, 0, 0.5f));
    p.in.M_l = track(&p, dev_random(gn, 0, 1));
    p.in.M_u = track(&p, dev_random(gn, 0, 1));
    p.in.D = track(&p, dev_random(nodes, 0, 1));
    p.out.Y = track(&p, dev_random(nodes * DV, 0, 1));
    p.dout.Y = track(&p, dev_random(nodes * DV, -1, 1));
    p.g.Q = track(&p, dev_random(nodes * DK, 0, 1));
    p.g.K = track(&p, dev_random(nodes * DK, 0, 1));
    p.g.V = track(&p, dev_random(nodes * DV, 0, 1));
    void **gates[8] = {&p.g.S_r, &p.g.S_d, &p.g.T_rl, &p.g.T_du,
                       &p.g.T_dl, &p.g.T_ru, &p.g.M_l, &p.g.M_u};
    for (int i = 0; i < 8; i++)
        *gates[i] = track(&p, dev_random(gn, 0, 1));
    p.g.D = track(&p, dev_random(nodes, 0, 1));
    return p;
}

static void release(problem *p)
{
    for (int i = 0; i < p->nbufs; i++)
        plstm_free(ctx, p->bufs[i]);
}

/* Median seconds of one call (mode 0 forward, 1 backward). */
static double time_call(problem *p, int fused, int mode, int reps)
{
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int r = -2; r < reps; r++) {
        double t0 = now();
        if (mode == 0)
            CHECK(fused ? plstm_core2d_fused4_forward(ctx, &p->d, &p->in, &p->out)
                        : plstm_core2d_forward(ctx, &p->d, &p->in, &p->out));
        else
            CHECK(fused ? plstm_core2d_fused4_backward(ctx, &p->d, &p->in, &p->dout, &p->g)
                        : plstm_core2d_backward(ctx, &p->d, &p->in, &p->dout, &p->g));
        CHECK(plstm_context_synchronize(ctx));
        if (r >= 0)
            t[r] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    double m = t[reps / 2];
    free(t);
    return m;
}

int main(int argc, char **argv)
{
    plstm_program_tune_blas(argv);
    int grids[16] = {12, 24, 48, 128}, ng = 4, reps = 7;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--grids") && i + 1 < argc) {
            ng = 0;
            for (char *s = strtok(argv[++i], ","); s && ng < 16; s = strtok(NULL, ","))
                grids[ng++] = atoi(s);
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        }
    }
    if (!plstm_backend_available(PLSTM_BACKEND_CUDA)) {
        printf("no CUDA device\n");
        return 0;
    }
    CHECK(plstm_context_create(&ctx, PLSTM_BACKEND_CUDA, 0));
    printf("core2d on CUDA, F32, B*H=%d, DK=DV=%d, J=1; median of %d\n", BH, DK, reps);
    printf("%-6s %-7s %9s %9s %9s %9s %9s %9s\n", "grid", "form", "fwd ms", "bwd ms", "f+b ms",
           "GFLOP/s", "floorB ms", "floorF ms");
    for (int gi = 0; gi < ng; gi++) {
        const int G = grids[gi];
        for (int fused = 1; fused >= 0; fused--) {
            const int orient = fused ? 4 : 1;
            problem p = make(G, orient);
            double tf = time_call(&p, fused, 0, reps), tb = time_call(&p, fused, 1, reps);
            double nodes = (double)BH * G * G;
            double flops = 48.0 * DK * DV * nodes * orient;
            /* bytes, F32: fwd in Q,K,V,D + 8 gates/orient, out Y; bwd adds dY in and all grads out */
            double fin = nodes * (2 * DK + DV + 1 + 8.0 * orient), fbytes = 4 * (fin + nodes * DV);
            double bbytes = 4 * (2 * fin + nodes * DV);
            /* ceilings: ~4.3 TB/s copy (KINDS.md), ~60 TFLOP/s FP32 FMA */
            double floor_b = (fbytes + bbytes) / 4.3e12, floor_f = flops / 60e12;
            printf("%-6d %-7s %9.3f %9.3f %9.3f %9.0f %9.3f %9.3f\n", G, fused ? "fused4" : "plain",
                   1e3 * tf, 1e3 * tb, 1e3 * (tf + tb), flops / (tf + tb) / 1e9, 1e3 * floor_b,
                   1e3 * floor_f);
            release(&p);
        }
    }
    plstm_context_destroy(ctx);
    return 0;
}
