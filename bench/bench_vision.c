/* Benchmark of the pLSTM vision model: one training step (forward, softmax
 * cross-entropy, backward, grad-norm clip 1.0, AdamW over the whole parameter
 * buffer) and inference on the same batch, F32, by default the APE model
 * (preset "ape": dim 192, 6 heads, 6 P+D pairs, patch 16) at 192×192, batch 8.
 *
 * FLOP count of a step (multiply-add = 2 FLOPs; elementwise work, norms,
 * gates' nonlinearities, the loss and the optimizer are not counted):
 *   matrix forward  Fm = 2·N·Σ_w numel(w) + 2·B·numel(head.weight)
 *                   over every token-wise "*weight" parameter w (patch embed,
 *                   Q/K/V, gate weights, out projection, up/down projection),
 *                   N = B·X·Y tokens;
 *   core forward    Fc = 15·DK·DV·(B·H)·X·Y·4 per layer (the fused core's
 *                   sequential recurrence, 4 orientations; see bench_core2d);
 *   core backward   33·DK·DV·(B·H)·X·Y·4 per layer;
 *   training step   3·Fm (forward, dX, dW) + 48·DK·DV·(B·H)·X·Y·4·layers;
 *   inference       Fm + Fc·layers.
 * The "core" row of the breakdown is measured separately (plstm_core2d_fused4
 * forward + backward at the model's sizes, times the number of layers) and
 * subtracted from the layer time, which leaves QKV, gates, mhnorm and the out
 * projection. Peak: nominal 2 FMA × 16 lanes × 2 FLOPs × cores × base clock,
 * and a measured 2048³ SGEMM.
 *
 * Runs with OMP_WAIT_POLICY=passive unless the environment sets it (see main).
 *
 * Usage: bench_vision [--preset P|JSON] [--batch B] [--res R] [--steps N]
 *                     [--threads T] [--seed S] [--ghz G] [--algo A]
 */
#include "cli/blas_tune.h"
#include "plstm/plstm.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(expr)                                                                       \
    do {                                                                                  \
        plstm_status s_ = (expr);                                                         \
        if (s_ != PLSTM_OK) {                                                             \
            fprintf(stderr, "%s: %s: %s\n", #expr, plstm_status_name(s_), plstm_last_error()); \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

static double now(void) { return omp_get_wtime(); }

/* CPU seconds of all threads of this process (less sensitive than wall time
 * to other programs on a shared machine). */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static void fill(plstm_rng *r, float *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * plstm_rng_uniform(r));
}

/* Measured SGEMM rate (GFLOP/s) of an n³ product, best of 3. */
static double sgemm_rate(int n)
{
    float *a = xcalloc((size_t)n * n, 4), *b = xcalloc((size_t)n * n, 4);
    float *c = xcalloc((size_t)n * n, 4);
    plstm_rng r;
    plstm_rng_seed(&r, 1, 2);
    fill(&r, a, (size_t)n * n, -1, 1);
    fill(&r, b, (size_t)n * n, -1, 1);
    double best = 1e300;
    for (int k = 0; k < 3; k++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                    c, n);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    free(a), free(b), free(c);
    return 2.0 * n * n * n / best / 1e9;
}

/* Seconds of one fused-core forward + backward at the model's sizes (best of 3). */
static double core_time(plstm_context *ctx, int BH, int X, int Y, int DK, int DV, int dmode,
                        plstm_algo algo)
{
    const size_t nodes = (size_t)BH * X * Y;
    plstm_core2d_desc d = {.dtype = PLSTM_F32, .B = BH, .X = X, .Y = Y, .DK = DK, .DV = DV,
                           .JQ = 1, .JK = 1, .JV = 1, .JT = 1, .JO = 1,
                           .scale = 1.0 / sqrt((double)DK), .algo = algo};
    plstm_rng r;
    plstm_rng_seed(&r, 3, 4);
    float *q = xcalloc(nodes * DK, 4), *k = xcalloc(nodes * DK, 4), *v = xcalloc(nodes * DV, 4);
    float *dd = xcalloc(nodes, 4), *y = xcalloc(nodes * DV, 4), *dy = xcalloc(nodes * DV, 4);
    fill(&r, q, nodes * DK, -1, 1), fill(&r, k, nodes * DK, -1, 1), fill(&r, v, nodes * DV, -1, 1);
    fill(&r, dd, nodes, 0, 0.1), fill(&r, dy, nodes * DV, -1, 1);
    float *g[8], *dg[8];
    for (int i = 0; i < 8; i++) {
        g[i] = xcalloc(4 * nodes, 4), dg[i] = xcalloc(4 * nodes, 4);
        fill(&r, g[i], 4 * nodes, i >= 2 && i < 6 ? 0.1 : 0.0, i >= 2 && i < 6 ? 0.5 : 0.1);
    }
    float *dq = xcalloc(nodes * DK, 4), *dk = xcalloc(nodes * DK, 4), *dv = xcalloc(nodes * DV, 4);
    float *ddd = xcalloc(nodes, 4);
    plstm_core2d_inputs in = {.Q = q, .K = k, .V = v, .S_r = g[0], .S_d = g[1], .T_rl = g[2],
                              .T_du = g[3], .T_dl = dmode ? NULL : g[4], .T_ru = g[5],
                              .M_l = g[6], .M_u = g[7], .D = dd};
    plstm_core2d_outputs out = {.Y = y};
    plstm_core2d_cotangents dout = {.Y = dy};
    plstm_core2d_grads gr = {.Q = dq, .K = dk, .V = dv, .S_r = dg[0], .S_d = dg[1],
                             .T_rl = dg[2], .T_du = dg[3], .T_dl = dmode ? NULL : dg[4],
                             .T_ru = dg[5], .M_l = dg[6], .M_u = dg[7], .D = ddd};
    double best = 1e300;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        CHECK(plstm_core2d_fused4_forward(ctx, &d, &in, &out));
        CHECK(plstm_core2d_fused4_backward(ctx, &d, &in, &dout, &gr));
        double t = now() - t0;
        best = t < best ? t : best;
    }
    for (int i = 0; i < 8; i++)
        free(g[i]), free(dg[i]);
    free(q), free(k), free(v), free(dd), free(y), free(dy), free(dq), free(dk), free(dv);
    free(ddd);
    return best;
}

static int ends_with(const char *s, const char *t)
{
    const size_t a = strlen(s), b = strlen(t);
    return a >= b && !strcmp(s + a - b, t);
}

int main(int argc, char **argv)
{
    plstm_program_tune_blas(argv);
    /* OpenMP threads spinning at a barrier compete with OpenBLAS's own
     * (pthread) threads for the same cores: passive waiting halves the GEMM
     * time and makes the step ~15% faster on 2 cores. libgomp reads this at
     * load time, hence the re-exec. PLSTM_OMP_SPIN=1 keeps the default. */
    if (!getenv("OMP_WAIT_POLICY") && !getenv("PLSTM_OMP_SPIN")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
    }
    const char *preset = "ape";
    int B = 8, res = 0, steps = 3, threads = 0;
    unsigned long long seed = 43;
    double ghz = 2.3;
    const char *algo = "auto";
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--preset") && v) preset = v, i++;
        else if (!strcmp(argv[i], "--batch") && v) B = atoi(v), i++;
        else if (!strcmp(argv[i], "--res") && v) res = atoi(v), i++;
        else if (!strcmp(argv[i], "--steps") && v) steps = atoi(v), i++;
        else if (!strcmp(argv[i], "--threads") && v) threads = atoi(v), i++;
        else if (!strcmp(argv[i], "--seed") && v) seed = strtoull(v, NULL, 10), i++;
        else if (!strcmp(argv[i], "--ghz") && v) ghz = atof(v), i++;
        else if (!strcmp(argv[i], "--algo") && v) algo = v, i++;
        else {
            fprintf(stderr, "usage: bench_vision [--preset P] [--batch B] [--res R] [--steps N] "
                            "[--threads T] [--seed S] [--ghz G] [--algo auto|sequential|parallel]\n");
            return 2;
        }
    }
    if (B < 1 || steps < 1) {
        fprintf(stderr, "bench_vision: batch and steps must be >= 1\n");
        return 2;
    }
    plstm_vision_config cfg;
    if (preset[0] == '{') /* a JSON config, e.g. {"preset":"ape","dim":64} */
        CHECK(plstm_vision_config_from_json(preset, NULL, &cfg));
    else
        CHECK(plstm_vision_preset(preset, &cfg));
    cfg.algo = !strcmp(algo, "sequential") ? PLSTM_ALGO_SEQUENTIAL
               : !strcmp(algo, "parallel") ? PLSTM_ALGO_PARALLEL
                                           : PLSTM_ALGO_AUTO;
    if (res <= 0)
        res = cfg.image_size[0];
    plstm_context *ctx;
    CHECK(plstm_context_create(&ctx, PLSTM_BACKEND_CPU, 0));
    if (threads > 0)
        CHECK(plstm_context_set_threads(ctx, threads));
    const int nthreads = threads > 0 ? threads : omp_get_max_threads();

    plstm_vision_model *m;
    CHECK(plstm_vision_model_create(&m, &cfg));
    const plstm_params *lay = plstm_vision_model_params(m);
    const size_t np = plstm_params_size(lay);
    float *prm = xcalloc(np, 4), *grad = xcalloc(np, 4), *am = xcalloc(np, 4);
    float *av = xcalloc(np, 4), *mask = xcalloc(np, 4);
    CHECK(plstm_vision_model_init(m, prm, PLSTM_F32, seed));
    CHECK(plstm_adamw_decay_mask(lay, mask));
    int X, Y;
    CHECK(plstm_vision_model_grid(m, res, res, &X, &Y));
    plstm_vision_workspace *ws, *wi;
    CHECK(plstm_vision_workspace_create(&ws, m, PLSTM_F32, B, res, res, 1));
    CHECK(plstm_vision_workspace_create(&wi, m, PLSTM_F32, B, res, res, 0));
    const size_t npx = (size_t)B * res * res * cfg.num_channels;
    float *px = xcalloc(npx, 4), *logits = xcalloc((size_t)B * cfg.num_classes, 4);
    float *dlogits = xcalloc((size_t)B * cfg.num_classes, 4);
    int32_t *labels = xcalloc((size_t)B, 4);
    plstm_rng r;
    plstm_rng_seed(&r, seed, 7);
    fill(&r, px, npx, -2.1, 2.6); /* the range of normalized APE pixels */
    for (int b = 0; b < B; b++)
        labels[b] = (int32_t)plstm_rng_below(&r, (uint64_t)cfg.num_classes);
    const plstm_adamw_config ac = plstm_adamw_defaults();

    /* FLOPs */
    const double N = (double)B * X * Y, H = cfg.num_heads, DK = cfg.dim / cfg.num_heads;
    const int layers = 2 * cfg.num_blocks;
    double wtok = 0, whead = 0, wmlp = 0;
    for (size_t i = 0; i < plstm_params_count(lay); i++) {
        const plstm_param_info *pi = plstm_params_at(lay, i);
        if (!ends_with(pi->name, "weight"))
            continue;
        if (!strcmp(pi->name, "head.weight"))
            whead += (double)pi->numel;
        else
            wtok += (double)pi->numel;
        if (strstr(pi->name, "upproj.weight") || strstr(pi->name, "downproj.weight"))
            wmlp += (double)pi->numel;
    }
    const double Fm = 2 * N * wtok + 2.0 * B * whead;
    const double Fc_fwd = 15 * DK * DK * B * H * X * Y * 4 * layers;
    const double Fc_bwd = 33 * DK * DK * B * H * X * Y * 4 * layers;
    const double F_train = 3 * Fm + Fc_fwd + Fc_bwd, F_inf = Fm + Fc_fwd;

    printf("bench_vision: preset %s (dim %d, %d heads, %d blocks of %s), %d images %dx%d "
           "(grid %dx%d), F32, %d threads\n",
           preset, cfg.dim, cfg.num_heads, cfg.num_blocks, cfg.block_mode, B, res, res, X, Y,
           nthreads);
    printf("  parameters %.3fM, workspace %.1f MB (training) + %.1f MB (inference)\n",
           plstm_params_numel(lay) / 1e6, plstm_vision_workspace_bytes(ws) / 1e6,
           plstm_vision_workspace_bytes(wi) / 1e6);
    printf("  FLOPs per step: matrix fwd %.3f G, core fwd %.3f G, core bwd %.3f G -> training "
           "%.3f G, inference %.3f G\n",
           Fm / 1e9, Fc_fwd / 1e9, Fc_bwd / 1e9, F_train / 1e9, F_inf / 1e9);

    /* training steps (the first one warms up and is not counted) */
    double best = 1e300, tsum = 0, part[PLSTM_VPART_COUNT] = {0}, loss_t = 0, opt_t = 0;
    double loss = 0, cpusum = 0;
    for (int s = 0; s <= steps; s++) {
        plstm_vision_workspace_set_timing(ws, 1);
        const double t0 = now(), c0 = cpu_now();
        memset(grad, 0, np * 4);
        CHECK(plstm_vision_forward(ctx, m, ws, prm, B, px, logits, NULL));
        const double t1 = now();
        CHECK(plstm_softmax_xent_forward(ctx, PLSTM_F32, B, cfg.num_classes, logits, labels,
                                         &loss, NULL));
        CHECK(plstm_softmax_xent_backward(ctx, PLSTM_F32, B, cfg.num_classes, logits, labels, 1.0,
                                          dlogits));
        const double t2 = now();
        CHECK(plstm_vision_backward(ctx, m, ws, prm, B, px, dlogits, NULL, NULL, grad));
        const double t3 = now();
        double gn;
        CHECK(plstm_grad_clip(lay, grad, np, 1.0, &gn));
        CHECK(plstm_adamw_step(&ac, 1e-4, s, np, prm, grad, am, av, mask));
        const double t4 = now(), t = t4 - t0, cpu = cpu_now() - c0;
        if (s == 0)
            continue;
        cpusum += cpu;
        tsum += t;
        best = t < best ? t : best;
        double sec[PLSTM_VPART_COUNT];
        plstm_vision_workspace_timing(ws, sec);
        for (int k = 0; k < PLSTM_VPART_COUNT; k++)
            part[k] += sec[k] / steps;
        loss_t += (t2 - t1) / steps;
        opt_t += (t4 - t3) / steps;
        printf("  step %d: %.3f s (forward %.3f, backward %.3f, clip+AdamW %.3f; %.3f CPU s), "
               "loss %.4f, grad norm %.3f\n",
               s, t, t1 - t0, t3 - t2, t4 - t3, cpu, loss, gn);
    }
    const double mean = tsum / steps;

    /* inference */
    double ibest = 1e300;
    for (int s = 0; s < 3; s++) {
        const double t0 = now();
        CHECK(plstm_vision_forward(ctx, m, wi, prm, B, px, logits, NULL));
        const double t = now() - t0;
        ibest = t < ibest ? t : ibest;
    }

    /* core alone at the model's sizes, P (4 transitions) and D (T_dl absent) */
    int nP = 0;
    for (int i = 0; i < layers; i++)
        nP += cfg.block_mode[i % 2] == 'P';
    const double tcP = core_time(ctx, B * cfg.num_heads, X, Y, (int)DK, (int)DK, 0, cfg.algo);
    const double tcD = core_time(ctx, B * cfg.num_heads, X, Y, (int)DK, (int)DK, 1, cfg.algo);
    const double tcore = nP * tcP + (layers - nP) * tcD;
    const double peak = ghz * 64.0 * nthreads, sg = sgemm_rate(2048);

    printf("training step: best %.3f s, mean %.3f s over %d steps -> %.1f GFLOP/s "
           "(%.1f%% of nominal peak %.0f GFLOP/s at %.1f GHz)\n",
           best, mean, steps, F_train / mean / 1e9, 100 * F_train / mean / 1e9 / peak, peak, ghz);
    printf("               CPU time %.3f s per step (all threads; /%d = %.3f s if the cores were "
           "ours alone)\n",
           cpusum / steps, nthreads, cpusum / steps / nthreads);
    printf("inference:     best %.3f s -> %.1f GFLOP/s, %.1f images/s\n", ibest,
           F_inf / ibest / 1e9, B / ibest);
    printf("measured SGEMM 2048^3: %.1f GFLOP/s (%.0f%% of nominal)\n", sg, 100 * sg / peak);
    const char *names[PLSTM_VPART_COUNT] = {"patch+pos embed", "norms+residuals",
                                            "pLSTM layers", "MLP", "pool+head"};
    printf("breakdown of a training step (mean, forward+backward):\n");
    for (int k = 0; k < PLSTM_VPART_COUNT; k++) {
        printf("  %-28s %7.3f s  %5.1f%%", names[k], part[k], 100 * part[k] / mean);
        if (k == PLSTM_VPART_MLP)
            printf("   %.1f GFLOP/s (%.0f%% of nominal peak)", 3 * 2 * N * wmlp / part[k] / 1e9,
                   100 * 3 * 2 * N * wmlp / part[k] / 1e9 / peak);
        printf("\n");
        if (k == PLSTM_VPART_LAYER) {
            printf("    %-26s %7.3f s  %5.1f%%   (fused core fwd+bwd measured alone: P %.4f s, "
                   "D %.4f s per layer; %.1f GFLOP/s)\n",
                   "core (measured alone)", tcore, 100 * tcore / mean, tcP, tcD,
                   (Fc_fwd + Fc_bwd) / tcore / 1e9);
            printf("    %-26s %7.3f s  %5.1f%%\n", "QKV/gates/mhnorm/outproj", part[k] - tcore,
                   100 * (part[k] - tcore) / mean);
        }
    }
    printf("  %-28s %7.3f s  %5.1f%%\n", "loss", loss_t, 100 * loss_t / mean);
    printf("  %-28s %7.3f s  %5.1f%%\n", "grad clip + AdamW", opt_t, 100 * opt_t / mean);
    const double Fm3 = 3 * Fm, tm = mean - tcore - opt_t - loss_t - part[PLSTM_VPART_NORM];
    printf("matrix work: %.3f GFLOP in ~%.3f s (step - core - norms - loss - optimizer) -> "
           "%.1f GFLOP/s, %.0f%% of nominal peak\n",
           Fm3 / 1e9, tm, Fm3 / tm / 1e9, 100 * Fm3 / tm / 1e9 / peak);

    plstm_vision_workspace_destroy(ws);
    plstm_vision_workspace_destroy(wi);
    plstm_vision_model_destroy(m);
    plstm_context_destroy(ctx);
    free(prm), free(grad), free(am), free(av), free(mask), free(px), free(logits), free(dlogits);
    free(labels);
    return 0;
}
