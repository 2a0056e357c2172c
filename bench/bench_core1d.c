/* Benchmark of the 1D pLSTM core: forward + backward, B·H = 48,
 * DK = DV = 32, all J = 1, the sequential recurrence against the chunkwise
 * parallel form (desc.algo), per sequence length.
 *
 * GFLOP/s counts the useful FLOPs of the sequential recurrence for both forms
 * (the chunked form does more arithmetic than that), per position, J = 1, a
 * multiply-add = 2 FLOPs:
 *   forward   5·DK·DV: mark read q⋆M⋆C (2), transition T C (1), source
 *                      write k (S v)ᵀ (2);
 *   backward 11·DK·DV: C dy for dq/dM (2), incoming gradient Tᵀ g + (q M) dyᵀ
 *                      (3), dT (2), kᵀ g for dS/dv (2), dk (2);
 *   total    16·DK·DV·B·L (the direct term, O(DK+DV), and the state
 *            recompute of the backward not counted).
 *
 * Usage: bench_core1d [--lengths 256,1024,4096] [--reps N] [--threads T]
 *                     [--dtype f32|f64] [--chunk BT]
 * Each timing is the best of N repetitions (default 10; a length stops
 * repeating once it has used ~4 s). "maxrel" is the max relative difference
 * of Y and dQ between the two forms.
 * Note: OpenBLAS may pick a generic kernel on virtual CPUs (the header line
 * prints the one in use); OPENBLAS_CORETYPE (e.g. Haswell, SkylakeX) forces
 * the right one, which the chunked form's GEMMs depend on. */
#include "plstm/plstm.h"
#include "cli/blas_tune.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BH = 48, DK = 32, DV = 32 };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
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

static void *alloc_fill(size_t n, int f64, double lo, double hi)
{
    void *p = malloc(n * (f64 ? sizeof(double) : sizeof(float)));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        double x = lo == hi ? lo : urand(lo, hi);
        if (f64)
            ((double *)p)[i] = x;
        else
            ((float *)p)[i] = (float)x;
    }
    return p;
}

static double max_rel(const void *a, const void *b, size_t n, int f64)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double x = f64 ? ((const double *)a)[i] : ((const float *)a)[i];
        double y = f64 ? ((const double *)b)[i] : ((const float *)b)[i];
        num = fmax(num, fabs(x - y));
        den = fmax(den, fabs(y));
    }
    return den > 0 ? num / den : num;
}

typedef struct bufs {
    void *Q, *K, *V, *S, *T, *M, *D, *dY, *Y, *g[7];
} bufs;

/* Best forward+backward time over up to `reps` runs; Y and dQ of the last. */
static double time_fwbw(plstm_context *ctx, const plstm_core1d_desc *d, bufs *b, int reps)
{
    plstm_core1d_inputs in = {b->Q, b->K, b->V, b->S, b->T, b->M, b->D, NULL};
    plstm_core1d_outputs out = {b->Y, NULL};
    plstm_core1d_cotangents dout = {b->dY, NULL};
    plstm_core1d_grads gr = {b->g[0], b->g[1], b->g[2], b->g[3], b->g[4], b->g[5], b->g[6], NULL};
    double best = 1e30, spent = 0;
    for (int r = 0; r < reps && (r == 0 || spent < 4.0); r++) {
        double t0 = now_s();
        CHECK(plstm_core1d_forward(ctx, d, &in, &out));
        CHECK(plstm_core1d_backward(ctx, d, &in, &dout, &gr));
        double t = now_s() - t0;
        spent += t;
        if (t < best)
            best = t;
    }
    return best;
}

static void free_bufs(bufs *b)
{
    void *all[] = {b->Q, b->K, b->V, b->S, b->T, b->M, b->D, b->dY, b->Y};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
    for (int i = 0; i < 7; i++)
        free(b->g[i]);
}

int main(int argc, char **argv)
{
    plstm_program_tune_blas(argv);
    int reps = 10, threads = 0, chunk = 0, f64 = 0;
    int lengths[16] = {256, 1024, 4096}, nl = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--reps") && v) {
            reps = atoi(v), i++;
        } else if (!strcmp(a, "--threads") && v) {
            threads = atoi(v), i++;
        } else if (!strcmp(a, "--chunk") && v) {
            chunk = atoi(v), i++;
        } else if (!strcmp(a, "--dtype") && v) {
            f64 = !strcmp(v, "f64"), i++;
        } else if (!strcmp(a, "--lengths") && v) {
            nl = 0;
            for (char *s = argv[++i]; *s && nl < 16;) {
                lengths[nl++] = (int)strtol(s, &s, 10);
                if (*s == ',')
                    s++;
                else
                    break;
            }
        } else {
            fprintf(stderr,
                    "usage: %s [--lengths 256,1024,4096] [--reps N] [--threads T] "
                    "[--dtype f32|f64] [--chunk BT]\n",
                    argv[0]);
            return 2;
        }
    }
    if (reps < 1)
        reps = 1;
    plstm_context *ctx;
    CHECK(plstm_context_create(&ctx, PLSTM_BACKEND_CPU, 0));
    CHECK(plstm_context_set_threads(ctx, threads));
    printf("core1d fwd+bwd, B*H=%d DK=%d DV=%d J=1, %s, threads %d (0 = OpenMP default), "
           "chunk %d (0 = default), best of %d, OpenBLAS core %s\n",
           BH, DK, DV, f64 ? "f64" : "f32", plstm_context_threads(ctx), chunk, reps,
           openblas_get_corename());
    printf("%6s | %9s %8s | %9s %8s | %6s | %8s\n", "L", "seq s", "GFLOP/s", "chunk s",
           "GFLOP/s", "ratio", "maxrel");
    for (int li = 0; li < nl; li++) {
        const int L = lengths[li];
        const size_t P = (size_t)BH * L;
        bufs b, c;
        memset(&b, 0, sizeof b);
        b.Q = alloc_fill(P * DK, f64, -1, 1);
        b.K = alloc_fill(P * DK, f64, -1, 1);
        b.V = alloc_fill(P * DV, f64, -1, 1);
        b.S = alloc_fill(P, f64, 0, 1);
        b.T = alloc_fill(P, f64, 0.9, 1.0);
        b.M = alloc_fill(P, f64, 0, 1);
        b.D = alloc_fill(P, f64, 0, 1);
        b.dY = alloc_fill(P * DV, f64, -1, 1);
        b.Y = alloc_fill(P * DV, f64, 0, 0);
        const size_t gn[7] = {P * DK, P * DK, P * DV, P, P, P, P};
        for (int i = 0; i < 7; i++)
            b.g[i] = alloc_fill(gn[i], f64, 0, 0);
        c = b;
        c.Y = alloc_fill(P * DV, f64, 0, 0);
        for (int i = 0; i < 7; i++)
            c.g[i] = alloc_fill(gn[i], f64, 0, 0);
        plstm_core1d_desc d = {.dtype = f64 ? PLSTM_F64 : PLSTM_F32, .B = BH, .L = L, .DK = DK,
                               .DV = DV, .JQ = 1, .JK = 1, .JV = 1, .JT = 1, .JO = 1,
                               .scale = 1.0 / sqrt((double)DK), .chunk = chunk};
        d.algo = PLSTM_ALGO_SEQUENTIAL;
        const double ts = time_fwbw(ctx, &d, &b, reps);
        d.algo = PLSTM_ALGO_PARALLEL;
        const double tc = time_fwbw(ctx, &d, &c, reps);
        const double flops = 16.0 * DK * DV * (double)P;
        const double err = fmax(max_rel(c.Y, b.Y, P * DV, f64), max_rel(c.g[0], b.g[0], P * DK, f64));
        printf("%6d | %9.4f %8.2f | %9.4f %8.2f | %6.2f | %8.1e\n", L, ts, flops / ts * 1e-9, tc,
               flops / tc * 1e-9, ts / tc, err);
        fflush(stdout);
        free(c.Y);
        for (int i = 0; i < 7; i++)
            free(c.g[i]);
        free_bufs(&b);
    }
    plstm_context_destroy(ctx);
    return 0;
}
