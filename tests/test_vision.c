/* Vision model and PostUp block (plstm-math.md §7.1, §7.3–7.5): backward
 * against central finite differences in F64 (block; tiny models with every
 * pooling, a resized position embedding in both resize semantics, the
 * feature cotangent), parameter flags and names, presets against the paper's
 * parameter counts, configuration errors, JSON round trips, init values, and
 * the reference test vector in F32. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static plstm_context *g_ctx;

static int setup(void **state)
{
    (void)state;
    /* one thread: the cases are tiny, and OpenMP barriers on a busy 2-core
     * machine would cost more than the work */
    return plstm_context_create(&g_ctx, PLSTM_BACKEND_CPU, 0) == PLSTM_OK &&
                   plstm_context_set_threads(g_ctx, 1) == PLSTM_OK
               ? 0
               : -1;
}

static int teardown(void **state)
{
    (void)state;
    plstm_context_destroy(g_ctx);
    return 0;
}

/* Random parameters around the init: every parameter N(init, 0.3²)-ish, so no
 * gate sits at a saturated constant and every path carries gradient. */
static void perturb(double *prm, size_t n, uint64_t seed)
{
    tu_rng r;
    tu_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        prm[i] += tu_rng_uniform(&r, -0.5, 0.5);
}

/* Picks up to `max` indices of [0, n) spread over the range (all when n <= max). */
static size_t pick(size_t n, size_t max, size_t k) { return n <= max ? k : k * n / max; }

/* Fourth-order central difference of loss(ctx) in *v (error O(h⁴): the
 * random cases are curved enough that the two-point rule is off by ~1e-5). */
static double fd4(double *v, double (*loss)(void *), void *ctx)
{
    const double h = 1e-4, k = *v, o[4] = {2 * h, h, -h, -2 * h};
    double f[4];
    for (int j = 0; j < 4; j++) {
        *v = k + o[j];
        f[j] = loss(ctx);
    }
    *v = k;
    return (8 * (f[1] - f[2]) - (f[0] - f[3])) / (12 * h);
}

/* ---- PostUp block ------------------------------------------------------- */

typedef struct block_case {
    plstm_postup L;
    plstm_params *p;
    int B, X, Y;
    double *work;
    const double *prm, *x, *dy; /* for fd4 */
    double *y;
} block_case;

static double block_loss(block_case *c, const double *prm, const double *x, const double *dy,
                         double *y)
{
    TU_OK(plstm_postup_forward(g_ctx, &c->L, PLSTM_F64, prm, c->B, c->X, c->Y, x, y, NULL,
                               c->work));
    const size_t n = (size_t)c->B * c->X * c->Y * c->L.cfg.dim;
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += y[i] * dy[i];
    return s;
}

static double block_loss_cb(void *p)
{
    block_case *c = p;
    return block_loss(c, c->prm, c->x, c->dy, c->y);
}

static void check_block(plstm_layer2d_mode mode)
{
    block_case c;
    memset(&c, 0, sizeof c);
    c.B = 2, c.X = 3, c.Y = 3;
    const int D = 8;
    plstm_postup_config cfg = plstm_postup_config_default(D, 2, mode);
    cfg.layer.source.weight = cfg.layer.mark.weight = 1; /* input-dependent gates too */
    TU_OK(plstm_params_create(&c.p));
    TU_OK(plstm_postup_declare(&c.L, &cfg, c.p, "blk"));
    assert_int_equal(c.L.inner, 64); /* ceil64(4·8) */
    const size_t np = plstm_params_size(c.p), n = (size_t)c.B * c.X * c.Y * D;
    double *prm = tu_calloc(np, sizeof *prm), *g = tu_calloc(np, sizeof *g);
    TU_OK(plstm_postup_init(&c.L, prm, PLSTM_F64, 7));
    perturb(prm, np, 11);
    const size_t na = plstm_postup_activation_size(&c.L, c.B, c.X, c.Y);
    double *acts = tu_calloc(na, sizeof *acts);
    c.work = tu_calloc(plstm_postup_work_size(&c.L, c.B, c.X, c.Y), sizeof(double));
    double *x = tu_calloc(n, sizeof *x), *dy = tu_calloc(n, sizeof *dy);
    double *y = tu_calloc(n, sizeof *y), *y2 = tu_calloc(n, sizeof *y2);
    double *dx = tu_calloc(n, sizeof *dx), *num = tu_calloc(n > np ? n : np, sizeof *num);
    tu_rng r;
    tu_rng_seed(&r, 3);
    tu_fill_f64(&r, x, n, -1.5, 1.5);
    tu_fill_f64(&r, dy, n, -1, 1);
    /* training forward = inference forward */
    TU_OK(plstm_postup_forward(g_ctx, &c.L, PLSTM_F64, prm, c.B, c.X, c.Y, x, y, acts, c.work));
    block_loss(&c, prm, x, dy, y2);
    TU_ASSERT_CLOSE(tu_rel_err_f64(y2, y, n), 1e-14, "inference vs training forward");
    for (size_t i = 0; i < np; i++)
        g[i] = 0.25; /* gradients accumulate */
    TU_OK(plstm_postup_backward(g_ctx, &c.L, PLSTM_F64, prm, c.B, c.X, c.Y, x, acts, dy, dx, g,
                                c.work));
    c.prm = prm, c.x = x, c.dy = dy, c.y = y2;
    for (size_t i = 0; i < n; i++)
        num[i] = fd4(&x[i], block_loss_cb, &c);
    TU_ASSERT_CLOSE(tu_rel_err_f64(dx, num, n), 1e-6, "block dx");
    for (size_t j = 0; j < plstm_params_count(c.p); j++) {
        const plstm_param_info *pi = plstm_params_at(c.p, j);
        double worst = 0, scale = 0;
        for (size_t k = 0; k < pi->numel; k++) {
            const double fd = fd4(&prm[pi->offset + k], block_loss_cb, &c);
            const double an = g[pi->offset + k] - 0.25;
            worst = fmax(worst, fabs(fd - an));
            scale = fmax(scale, fabs(fd));
        }
        if (!(worst <= 1e-6 * fmax(scale, 1e-3)))
            fail_msg("block %c: gradient of %s off by %.3e (scale %.3e)", mode ? 'D' : 'P',
                     pi->name, worst, scale);
    }
    free(prm), free(g), free(acts), free(c.work), free(x), free(dy), free(y), free(y2), free(dx);
    free(num);
    plstm_params_destroy(c.p);
}

static void test_block_fd_p(void **s) { (void)s; check_block(PLSTM_LAYER2D_P); }
static void test_block_fd_d(void **s) { (void)s; check_block(PLSTM_LAYER2D_D); }

/* F32 (with its own vectorized GELU) against F64 (the generic operator):
 * forward, dx and parameter gradients, for both GELU forms. */
static void check_block_f32(plstm_activation act)
{
    const int B = 2, X = 4, Y = 3, D = 16;
    plstm_postup_config cfg = plstm_postup_config_default(D, 2, PLSTM_LAYER2D_P);
    cfg.act = act;
    plstm_params *p;
    plstm_postup L;
    TU_OK(plstm_params_create(&p));
    TU_OK(plstm_postup_declare(&L, &cfg, p, NULL));
    const size_t np = plstm_params_size(p), n = (size_t)B * X * Y * D;
    const size_t na = plstm_postup_activation_size(&L, B, X, Y);
    const size_t nw = plstm_postup_work_size(&L, B, X, Y);
    double *prm = tu_calloc(np, 8), *g = tu_calloc(np, 8), *acts = tu_calloc(na, 8);
    double *work = tu_calloc(nw, 8), *x = tu_calloc(n, 8), *dy = tu_calloc(n, 8);
    double *y = tu_calloc(n, 8), *dx = tu_calloc(n, 8);
    float *prmf = tu_calloc(np, 4), *gf = tu_calloc(np, 4), *actsf = tu_calloc(na, 4);
    float *workf = tu_calloc(nw, 4), *xf = tu_calloc(n, 4), *dyf = tu_calloc(n, 4);
    float *yf = tu_calloc(n, 4), *dxf = tu_calloc(n, 4);
    TU_OK(plstm_postup_init(&L, prm, PLSTM_F64, 1));
    perturb(prm, np, 2);
    tu_rng r;
    tu_rng_seed(&r, 4);
    tu_fill_f64(&r, x, n, -4, 4); /* wide: GELU's tails and its middle */
    tu_fill_f64(&r, dy, n, -1, 1);
    tu_f64_to_f32(prm, prmf, np);
    tu_f64_to_f32(x, xf, n);
    tu_f64_to_f32(dy, dyf, n);
    TU_OK(plstm_postup_forward(g_ctx, &L, PLSTM_F64, prm, B, X, Y, x, y, acts, work));
    TU_OK(plstm_postup_backward(g_ctx, &L, PLSTM_F64, prm, B, X, Y, x, acts, dy, dx, g, work));
    TU_OK(plstm_postup_forward(g_ctx, &L, PLSTM_F32, prmf, B, X, Y, xf, yf, actsf, workf));
    TU_OK(plstm_postup_backward(g_ctx, &L, PLSTM_F32, prmf, B, X, Y, xf, actsf, dyf, dxf, gf,
                                workf));
    float *yr = tu_calloc(n, 4), *dxr = tu_calloc(n, 4), *gr = tu_calloc(np, 4);
    tu_f64_to_f32(y, yr, n);
    tu_f64_to_f32(dx, dxr, n);
    tu_f64_to_f32(g, gr, np);
    TU_ASSERT_CLOSE(tu_rel_err_f32(yf, yr, n), 2e-6, "F32 block forward");
    TU_ASSERT_CLOSE(tu_rel_err_f32(dxf, dxr, n), 1e-5, "F32 block dx");
    for (size_t j = 0; j < plstm_params_count(p); j++) {
        const plstm_param_info *pi = plstm_params_at(p, j);
        TU_ASSERT_CLOSE(tu_rel_err_f32(gf + pi->offset, gr + pi->offset, pi->numel), 1e-4,
                        pi->name);
    }
    free(prm), free(g), free(acts), free(work), free(x), free(dy), free(y), free(dx);
    free(prmf), free(gf), free(actsf), free(workf), free(xf), free(dyf), free(yf), free(dxf);
    free(yr), free(dxr), free(gr);
    plstm_params_destroy(p);
}

static void test_block_f32(void **s)
{
    (void)s;
    check_block_f32(PLSTM_ACT_GELU);
    check_block_f32(PLSTM_ACT_GELU_TANH);
}

/* ---- tiny model --------------------------------------------------------- */

static plstm_vision_config tiny_config(void)
{
    plstm_vision_config c = plstm_vision_config_default();
    c.dim = 8, c.num_heads = 2, c.num_blocks = 1;
    c.patch_size = 2;
    c.image_size[0] = c.image_size[1] = 6; /* grid 3×3 */
    c.num_channels = 2, c.num_classes = 3;
    c.source_weight = c.mark_weight = 1;
    return c;
}

typedef struct model_case {
    plstm_vision_model *m;
    plstm_vision_workspace *ws;
    int B, H, W, K, Dp;
    const double *dlogits, *dfeat;
    double *logits, *feat;
    const double *prm, *px; /* for fd4 */
} model_case;

static double model_loss(model_case *c, const double *prm, const double *px)
{
    TU_OK(plstm_vision_forward(g_ctx, c->m, c->ws, prm, c->B, px, c->logits, c->feat));
    double s = 0;
    for (int i = 0; i < c->B * c->K; i++)
        s += c->logits[i] * c->dlogits[i];
    for (int i = 0; c->dfeat && i < c->B * c->Dp; i++)
        s += c->feat[i] * c->dfeat[i];
    return s;
}

static double model_loss_cb(void *p)
{
    model_case *c = p;
    return model_loss(c, c->prm, c->px);
}

/* FD check of (a spread subset of) dpixels and every parameter's gradient. */
static void check_model(const plstm_vision_config *cfg, int H, int W, int use_dfeat,
                        const char *what)
{
    model_case c;
    memset(&c, 0, sizeof c);
    TU_OK(plstm_vision_model_create(&c.m, cfg));
    c.B = 2, c.H = H, c.W = W, c.K = cfg->num_classes;
    c.Dp = plstm_vision_model_feature_dim(c.m);
    TU_OK(plstm_vision_workspace_create(&c.ws, c.m, PLSTM_F64, c.B, H, W, 1));
    const plstm_params *lay = plstm_vision_model_params(c.m);
    const size_t np = plstm_params_size(lay), npx = (size_t)c.B * H * W * cfg->num_channels;
    double *prm = tu_calloc(np, sizeof *prm), *g = tu_calloc(np, sizeof *g);
    TU_OK(plstm_vision_model_init(c.m, prm, PLSTM_F64, 5));
    perturb(prm, np, 17);
    double *px = tu_calloc(npx, sizeof *px), *dpx = tu_calloc(npx, sizeof *dpx);
    double *dl = tu_calloc((size_t)c.B * c.K, sizeof *dl);
    double *df = tu_calloc((size_t)c.B * c.Dp, sizeof *df);
    c.logits = tu_calloc((size_t)c.B * c.K, sizeof *c.logits);
    c.feat = tu_calloc((size_t)c.B * c.Dp, sizeof *c.feat);
    tu_rng r;
    tu_rng_seed(&r, 9);
    tu_fill_f64(&r, px, npx, -1, 1);
    tu_fill_f64(&r, dl, (size_t)c.B * c.K, -1, 1);
    tu_fill_f64(&r, df, (size_t)c.B * c.Dp, -1, 1);
    c.dlogits = dl;
    c.dfeat = use_dfeat ? df : NULL;
    model_loss(&c, prm, px);
    { /* an inference workspace gives the training forward's logits */
        plstm_vision_workspace *wi = NULL;
        TU_OK(plstm_vision_workspace_create(&wi, c.m, PLSTM_F64, c.B + 1, H, W, 0));
        double *li = tu_calloc((size_t)c.B * c.K, sizeof *li);
        TU_OK(plstm_vision_forward(g_ctx, c.m, wi, prm, c.B, px, li, NULL));
        if (tu_rel_err_f64(li, c.logits, (size_t)c.B * c.K) > 1e-13)
            fail_msg("%s: inference logits differ from training logits", what);
        free(li);
        plstm_vision_workspace_destroy(wi);
    }
    TU_OK(plstm_vision_backward(g_ctx, c.m, c.ws, prm, c.B, px, dl, c.dfeat, dpx, g));
    c.prm = prm, c.px = px;
    double worst = 0, scale = 0;
    const size_t mpx = npx < 64 ? npx : 64;
    for (size_t q = 0; q < mpx; q++) {
        const size_t i = pick(npx, 64, q);
        const double fd = fd4(&px[i], model_loss_cb, &c);
        worst = fmax(worst, fabs(fd - dpx[i]));
        scale = fmax(scale, fabs(fd));
    }
    if (!(worst <= 1e-6 * fmax(scale, 1e-3)))
        fail_msg("%s: dpixels off by %.3e (scale %.3e)", what, worst, scale);
    for (size_t j = 0; j < plstm_params_count(lay); j++) {
        const plstm_param_info *pi = plstm_params_at(lay, j);
        const size_t cnt = pi->numel < 6 ? pi->numel : 6;
        worst = 0, scale = 0;
        for (size_t q = 0; q < cnt; q++) {
            double *v = &prm[pi->offset + pick(pi->numel, 6, q)];
            const double fd = fd4(v, model_loss_cb, &c);
            worst = fmax(worst, fabs(fd - g[v - prm]));
            scale = fmax(scale, fabs(fd));
        }
        if (!(worst <= 1e-6 * fmax(scale, 1e-3)))
            fail_msg("%s: gradient of %s off by %.3e (scale %.3e)", what, pi->name, worst, scale);
    }
    free(prm), free(g), free(px), free(dpx), free(dl), free(df), free(c.logits), free(c.feat);
    plstm_vision_workspace_destroy(c.ws);
    plstm_vision_model_destroy(c.m);
}

static void test_model_fd_corners(void **s)
{
    (void)s;
    plstm_vision_config c = tiny_config();
    check_model(&c, 6, 6, 0, "corners");
}

static void test_model_fd_center_features(void **s)
{
    (void)s;
    plstm_vision_config c = tiny_config();
    c.pooling = PLSTM_POOL_CENTER;
    strcpy(c.block_mode, "DP");
    check_model(&c, 6, 6, 1, "center + features");
}

static void test_model_fd_mean_stride(void **s)
{
    (void)s;
    plstm_vision_config c = tiny_config();
    c.pooling = PLSTM_POOL_MEAN;
    c.patch_size = 3, c.stride = 2; /* overlapping patches: (7 − 3)/2 + 1 = 3 */
    c.image_size[0] = c.image_size[1] = 7;
    check_model(&c, 7, 7, 0, "mean, stride 2");
}

static void test_model_fd_resized_pos(void **s)
{
    (void)s;
    plstm_vision_config c = tiny_config();
    check_model(&c, 8, 6, 0, "torch resize 3x3 -> 4x3");
    c.pos_resize = PLSTM_RESIZE_BICUBIC_JAX;
    c.mlp_activation = PLSTM_ACT_GELU_TANH;
    check_model(&c, 8, 4, 0, "jax resize 3x3 -> 4x2");
    c.use_pos_embed = 0;
    strcpy(c.block_mode, "DD");
    check_model(&c, 4, 4, 0, "no pos-emb, DD");
}

/* Two stem stages (2×2 convs, RMSNorm, GELU) then a 1×1 patch embedding at
 * the training size and at a larger one (resized position embedding). */
static void test_model_fd_stem(void **s)
{
    (void)s;
    plstm_vision_config c = tiny_config();
    c.patch_size = 4, c.image_size[0] = c.image_size[1] = 12; /* grid 3×3 */
    c.stem_stages = 2, c.stem_channels[0] = 3, c.stem_channels[1] = 5;
    check_model(&c, 12, 12, 0, "stem [3,5]");
    c.stem_stages = 1; /* then a 2×2 patch embedding */
    c.pooling = PLSTM_POOL_MEAN;
    check_model(&c, 16, 12, 1, "stem [3], 16x12");
    c.stem_stages = 2, c.stem_kernel = 4; /* overlapping 4×4 convs, zero-padded by 1 */
    check_model(&c, 12, 12, 1, "stem [3,5] kernel 4");
    c.stem_kernel = 6;
    check_model(&c, 16, 12, 0, "stem [3,5] kernel 6, 16x12");
    c.stem_kernel = 3, c.stem_strides[0] = 1; /* a full-resolution 3×3 stage, then 2×2 patches */
    check_model(&c, 12, 12, 1, "stem [3,5] kernel 3 strides [1,2]");
    c.stem_kernel = 5, c.stem_strides[0] = 0;
    check_model(&c, 16, 12, 0, "stem [3,5] kernel 5, 16x12");
    c.stem_norm = PLSTM_STEM_NORM_INSTANCE; /* per-image channel statistics, scale and bias */
    c.stem_kernel = 3, c.stem_strides[0] = 1;
    check_model(&c, 12, 12, 1, "instance-norm stem [3,5] kernel 3 strides [1,2]");
    check_model(&c, 16, 12, 0, "instance-norm stem, 16x12");
}

/* ---- flags, presets, configuration ------------------------------------- */

static int ends_with(const char *s, const char *t)
{
    const size_t a = strlen(s), b = strlen(t);
    return a >= b && !strcmp(s + a - b, t);
}

/* The AdamW rule of experiments.md §2.4: decay exactly the "*weight" parameters. */
static void check_flags(const plstm_vision_model *m)
{
    const plstm_params *p = plstm_vision_model_params(m);
    for (size_t i = 0; i < plstm_params_count(p); i++) {
        const plstm_param_info *pi = plstm_params_at(p, i);
        const int no_decay = (pi->flags & PLSTM_PARAM_NO_DECAY) != 0;
        if (no_decay == ends_with(pi->name, "weight"))
            fail_msg("%s: NO_DECAY is %d", pi->name, no_decay);
    }
}

static void test_presets_counts(void **s)
{
    (void)s;
    const char *names[3] = {"plstm-vis-t", "pLSTM-Vis-S", "plstm-vis-b"};
    const double paper[3] = {6e6, 23e6, 89e6}; /* paper Table 1 */
    for (int i = 0; i < 3; i++) {
        plstm_vision_config c;
        TU_OK(plstm_vision_preset(names[i], &c));
        plstm_vision_model *m;
        TU_OK(plstm_vision_model_create(&m, &c));
        const double n = (double)plstm_params_numel(plstm_vision_model_params(m));
        print_message("%s: %.2fM parameters (paper %.0fM)\n", names[i], n / 1e6, paper[i] / 1e6);
        if (fabs(n / paper[i] - 1) > 0.1)
            fail_msg("%s has %.0f parameters, paper %.0f", names[i], n, paper[i]);
        check_flags(m);
        plstm_vision_model_destroy(m);
    }
    const char *const *pn = plstm_vision_preset_names();
    int count = 0;
    for (; pn[count]; count++) {
        plstm_vision_config c, back;
        TU_OK(plstm_vision_preset(pn[count], &c));
        char *json;
        TU_OK(plstm_vision_config_to_json(&c, &json));
        TU_OK(plstm_vision_config_from_json(json, NULL, &back));
        free(json);
        char *j1, *j2;
        TU_OK(plstm_vision_config_to_json(&c, &j1));
        TU_OK(plstm_vision_config_to_json(&back, &j2));
        assert_string_equal(j1, j2);
        free(j1), free(j2);
    }
    assert_true(count >= 8);
}

static void test_ablations(void **s)
{
    (void)s;
    plstm_vision_config c;
    TU_OK(plstm_vision_preset("ape", &c));
    assert_int_equal(c.dim, 192);
    assert_int_equal(c.num_heads, 6);
    assert_int_equal(c.num_blocks, 6);
    assert_int_equal(c.num_classes, 2);
    assert_int_equal(c.image_size[0], 192);
    assert_string_equal(c.block_mode, "PD");
    TU_OK(plstm_vision_preset("ape-p-only", &c));
    assert_string_equal(c.block_mode, "PP");
    TU_OK(plstm_vision_preset("ape-d-only", &c));
    assert_string_equal(c.block_mode, "DD");
    TU_OK(plstm_vision_preset("ape-no-pos", &c));
    assert_int_equal(c.use_pos_embed, 0);
    plstm_vision_model *m;
    TU_OK(plstm_vision_model_create(&m, &c));
    assert_null(plstm_params_find(plstm_vision_model_params(m), "pos_embed.embed"));
    plstm_vision_model_destroy(m);
    TU_OK(plstm_vision_preset("ape-const-stm", &c));
    TU_OK(plstm_vision_model_create(&m, &c));
    const plstm_params *p = plstm_vision_model_params(m);
    assert_null(plstm_params_find(p, "block_stack.blocks.0.block0.interaction_module.source."
                                     "weight"));
    assert_non_null(plstm_params_find(p, "block_stack.blocks.0.block0.interaction_module."
                                         "source.bias"));
    plstm_vision_model_destroy(m);
    TU_OK(plstm_vision_preset("ape", &c));
    TU_OK(plstm_vision_model_create(&m, &c));
    p = plstm_vision_model_params(m);
    /* the authors' config: S/T/M weights on 4·H input groups, full Q/K/V */
    const plstm_param_info *sw =
        plstm_params_find(p, "block_stack.blocks.5.block1.interaction_module.source_r.weight");
    assert_non_null(sw);
    const plstm_param_info *qw =
        plstm_params_find(p, "block_stack.blocks.0.block0.interaction_module.query.weight");
    assert_non_null(qw);
    assert_int_equal(qw->numel, 192 * 192);
    check_flags(m);
    plstm_vision_model_destroy(m);
}

static void expect_error(plstm_status s, plstm_status want, const char *needle)
{
    assert_int_equal(s, want);
    if (!strstr(plstm_last_error(), needle))
        fail_msg("error message '%s' lacks '%s'", plstm_last_error(), needle);
}

static void test_config_errors(void **s)
{
    (void)s;
    plstm_vision_config c;
    expect_error(plstm_vision_preset("plstm-vis-xl", &c), PLSTM_ERR_INVALID_ARGUMENT,
                 "unknown vision preset 'plstm-vis-xl'");
    c = tiny_config();
    c.num_heads = 3;
    expect_error(plstm_vision_config_check(&c), PLSTM_ERR_INVALID_ARGUMENT,
                 "num_heads 3 does not divide dim 8");
    c = tiny_config();
    c.image_size[0] = 7;
    expect_error(plstm_vision_config_check(&c), PLSTM_ERR_INVALID_ARGUMENT, "not tiled");
    c = tiny_config();
    strcpy(c.block_mode, "PX");
    expect_error(plstm_vision_config_check(&c), PLSTM_ERR_INVALID_ARGUMENT, "block_mode");
    c = tiny_config();
    c.pooling = PLSTM_POOL_FIRST;
    expect_error(plstm_vision_config_check(&c), PLSTM_ERR_INVALID_ARGUMENT, "pooling");
    plstm_vision_model *m;
    c = tiny_config();
    TU_OK(plstm_vision_model_create(&m, &c));
    plstm_vision_workspace *ws = NULL;
    expect_error(plstm_vision_workspace_create(&ws, m, PLSTM_F32, 2, 7, 6, 0),
                 PLSTM_ERR_INVALID_ARGUMENT, "not tiled");
    expect_error(plstm_vision_workspace_create(&ws, m, PLSTM_F32, 2, 1, 6, 0),
                 PLSTM_ERR_INVALID_ARGUMENT, "smaller than the patch");
    TU_OK(plstm_vision_workspace_create(&ws, m, PLSTM_F32, 2, 6, 6, 0));
    float px[2 * 6 * 6 * 2] = {0}, lg[6], dl[6] = {0}, g[1] = {0};
    expect_error(plstm_vision_forward(g_ctx, m, ws, g, 3, px, lg, NULL),
                 PLSTM_ERR_INVALID_ARGUMENT, "batch 3");
    float *prm = tu_calloc(plstm_params_size(plstm_vision_model_params(m)), sizeof *prm);
    TU_OK(plstm_vision_forward(g_ctx, m, ws, prm, 2, px, lg, NULL));
    expect_error(plstm_vision_backward(g_ctx, m, ws, prm, 2, px, dl, NULL, NULL, prm),
                 PLSTM_ERR_INVALID_ARGUMENT, "inference");
    free(prm);
    plstm_vision_workspace_destroy(ws);
    plstm_vision_model_destroy(m);

    const plstm_vision_config base = tiny_config();
    expect_error(plstm_vision_config_from_json("{\"preset\":\"ape\",\"dimm\":3}", NULL, &c),
                 PLSTM_ERR_INVALID_ARGUMENT, "unknown key 'dimm'");
    expect_error(plstm_vision_config_from_json("{\"dim\":\"8\"}", &base, &c),
                 PLSTM_ERR_INVALID_ARGUMENT, "'dim' must be an integer");
    expect_error(plstm_vision_config_from_json("{\"pooling\":\"max\"}", &base, &c),
                 PLSTM_ERR_INVALID_ARGUMENT, "'pooling' must be one of");
    expect_error(plstm_vision_config_from_json("{\"use_pos_embed\":1}", &base, &c),
                 PLSTM_ERR_INVALID_ARGUMENT, "true or false");
    expect_error(plstm_vision_config_from_json("{\"preset\":\"vit\"}", &base, &c),
                 PLSTM_ERR_INVALID_ARGUMENT, "unknown vision preset");
    expect_error(plstm_vision_config_from_json("{\"dim\":", &base, &c), PLSTM_ERR_FORMAT,
                 "invalid JSON");
    expect_error(plstm_vision_config_from_json("{\"num_heads\":3}", &base, &c),
                 PLSTM_ERR_INVALID_ARGUMENT, "does not divide");
    TU_OK(plstm_vision_config_from_json(
        "{\"preset\":\"ape\",\"num_blocks\":1,\"resolution\":[32,48],\"block_mode\":\"DD\"}",
        NULL, &c));
    assert_int_equal(c.num_blocks, 1);
    assert_int_equal(c.image_size[1], 48);
    assert_int_equal(c.dim, 192);
    assert_string_equal(c.block_mode, "DD");

    /* the stem: an array of channel counts whose length sets the stages */
    TU_OK(plstm_vision_config_from_json("{\"preset\":\"ape\",\"stem_channels\":[16,32]}", NULL,
                                        &c));
    assert_int_equal(c.stem_stages, 2);
    assert_int_equal(c.stem_channels[1], 32);
    char *js = NULL;
    TU_OK(plstm_vision_config_to_json(&c, &js));
    assert_non_null(strstr(js, "\"stem_channels\": [16, 32]"));
    free(js);
    TU_OK(plstm_vision_config_from_json(
        "{\"preset\":\"ape\",\"stem_channels\":[16,32],\"stem_kernel\":4}", NULL, &c));
    assert_int_equal(c.stem_kernel, 4);
    TU_OK(plstm_vision_config_to_json(&c, &js));
    assert_non_null(strstr(js, "\"stem_kernel\": 4"));
    free(js);
    TU_OK(plstm_vision_config_to_json(&base, &js)); /* no stem: no keys */
    assert_null(strstr(js, "stem_channels"));
    assert_null(strstr(js, "stem_kernel"));
    assert_null(strstr(js, "stem_norm"));
    assert_null(strstr(js, "stem_strides"));
    free(js);
    TU_OK(plstm_vision_config_from_json("{\"preset\":\"ape\",\"stem_channels\":[16,32],"
                                        "\"stem_strides\":[1],\"stem_kernel\":3}",
                                        NULL, &c));
    assert_int_equal(c.stem_strides[0], 1);
    assert_int_equal(c.stem_strides[1], 0);
    TU_OK(plstm_vision_config_to_json(&c, &js));
    assert_non_null(strstr(js, "\"stem_strides\": [1, 2]"));
    plstm_vision_config back;
    TU_OK(plstm_vision_config_from_json(js, NULL, &back));
    free(js);
    assert_int_equal(back.stem_strides[0], 1);
    assert_int_equal(back.stem_strides[1], 2);
    assert_int_equal(back.stem_kernel, 3);
    assert_int_equal(back.stem_norm, PLSTM_STEM_NORM_RMS);
    TU_OK(plstm_vision_config_from_json(
        "{\"preset\":\"ape\",\"stem_channels\":[16],\"stem_norm\":\"instance\"}", NULL, &c));
    assert_int_equal(c.stem_norm, PLSTM_STEM_NORM_INSTANCE);
    TU_OK(plstm_vision_config_to_json(&c, &js));
    assert_non_null(strstr(js, "\"stem_norm\": \"instance\""));
    free(js);
    expect_error(plstm_vision_config_from_json(
                     "{\"preset\":\"ape\",\"stem_channels\":[16],\"stem_norm\":\"batch\"}",
                     NULL, &c),
                 PLSTM_ERR_INVALID_ARGUMENT, "stem_norm");
    expect_error(plstm_vision_config_from_json(
                     "{\"preset\":\"ape\",\"stem_channels\":[16],\"stem_strides\":[1]}", NULL,
                     &c),
                 PLSTM_ERR_INVALID_ARGUMENT, "odd stem_kernel");
    expect_error(plstm_vision_config_from_json(
                     "{\"preset\":\"ape\",\"stem_channels\":[16],\"stem_strides\":[3]}", NULL,
                     &c),
                 PLSTM_ERR_INVALID_ARGUMENT, "stem_strides[0] = 3");
    expect_error(plstm_vision_config_from_json(
                     "{\"preset\":\"ape\",\"stem_channels\":[16],\"stem_strides\":[2,2]}",
                     NULL, &c),
                 PLSTM_ERR_INVALID_ARGUMENT, "more entries");
    expect_error(plstm_vision_config_from_json(
                     "{\"preset\":\"ape\",\"stem_channels\":[16],\"stem_kernel\":17}", NULL,
                     &c),
                 PLSTM_ERR_INVALID_ARGUMENT, "stem_kernel 17");
    expect_error(plstm_vision_config_from_json("{\"stem_channels\":[4,4,4,4,4]}", &base, &c),
                 PLSTM_ERR_INVALID_ARGUMENT, "at most 4");
    expect_error(plstm_vision_config_from_json("{\"stem_channels\":8}", &base, &c),
                 PLSTM_ERR_INVALID_ARGUMENT, "stem_channels");
    expect_error(plstm_vision_config_from_json("{\"stem_channels\":[0]}", &base, &c),
                 PLSTM_ERR_INVALID_ARGUMENT, "stem_channels[0] = 0");
    expect_error(plstm_vision_config_from_json("{\"stem_channels\":[4,4]}", &base, &c),
                 PLSTM_ERR_INVALID_ARGUMENT, "multiple of 4"); /* patch 2 */
}

/* The APE init (experiments.md §2.2, Table 5) read back by parameter name. */
static void test_init_values(void **s)
{
    (void)s;
    plstm_vision_config c;
    TU_OK(plstm_vision_preset("ape", &c));
    c.num_blocks = 1, c.dim = 48, c.num_heads = 2; /* small: only the values matter */
    c.image_size[0] = c.image_size[1] = 64;
    plstm_vision_model *m;
    TU_OK(plstm_vision_model_create(&m, &c));
    const plstm_params *p = plstm_vision_model_params(m);
    const size_t np = plstm_params_size(p);
    float *a = tu_calloc(np, sizeof *a), *b = tu_calloc(np, sizeof *b);
    TU_OK(plstm_vision_model_init(m, a, PLSTM_F32, 43));
    TU_OK(plstm_vision_model_init(m, b, PLSTM_F32, 43));
    assert_memory_equal(a, b, np * sizeof *a);
    TU_OK(plstm_vision_model_init(m, b, PLSTM_F32, 44));
    assert_true(memcmp(a, b, np * sizeof *a) != 0);
    struct {
        const char *name;
        double value;
    } want[] = {
        {"block_stack.blocks.0.block0.interaction_module.source.bias", -4},
        {"block_stack.blocks.0.block0.interaction_module.mark.bias", -4},
        {"block_stack.blocks.0.block0.interaction_module.direct.bias", -6},
        {"block_stack.blocks.0.block1.interaction_module.source_r.bias", -4},
        {"block_stack.blocks.0.block1.interaction_module.source_d.bias", -4},
        {"block_stack.blocks.0.block1.interaction_module.mark_l.bias", -4},
        {"block_stack.blocks.0.block1.interaction_module.mark_u.bias", -4},
        {"block_stack.blocks.0.block1.interaction_module.direct.bias", -6},
        {"block_stack.blocks.0.block1.interaction_module.transition_rd.eigenvalues_bias", 1},
        {"block_stack.blocks.0.block0.interaction_module.source.weight", 0},
        {"block_stack.blocks.0.block0.interaction_module.orientation_weight", 0},
        {"block_stack.blocks.0.block0.norm.scale", 1},
        {"block_stack.blocks.0.block1.norm2.scale", 1},
        {"block_stack.blocks.0.block0.upproj.bias", 0},
        {"norm.scale", 1},
        {"head.bias", 0},
        {"patch_embed.proj.bias", 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const plstm_param_info *pi = plstm_params_find(p, want[i].name);
        if (!pi)
            fail_msg("no parameter %s", want[i].name);
        for (size_t k = 0; k < pi->numel; k++)
            if (a[pi->offset + k] != (float)want[i].value)
                fail_msg("%s[%zu] = %g, want %g", want[i].name, k, a[pi->offset + k],
                         want[i].value);
    }
    /* orientation bias: linspace(−2, 2) over the heads of each orientation */
    const plstm_param_info *ob =
        plstm_params_find(p, "block_stack.blocks.0.block0.interaction_module.orientation_bias");
    assert_non_null(ob);
    assert_float_equal(a[ob->offset], -2.0f, 1e-6);
    assert_float_equal(a[ob->offset + 1], 2.0f, 1e-6);
    /* SmallInit spreads: patch embed σ = 1/sqrt(2.5·C·p²), head σ = 1/sqrt(2.5·4·dim) */
    const plstm_param_info *pw = plstm_params_find(p, "patch_embed.proj.weight");
    double ss = 0;
    for (size_t k = 0; k < pw->numel; k++)
        ss += (double)a[pw->offset + k] * a[pw->offset + k];
    const double sd = sqrt(ss / pw->numel), want_sd = 1.0 / sqrt(2.5 * 3 * 16 * 16);
    if (fabs(sd / want_sd - 1) > 0.05)
        fail_msg("patch embed std %.4g, want %.4g", sd, want_sd);
    free(a), free(b);
    plstm_vision_model_destroy(m);
}

/* The reference test vector in F32 (the CLI verify covers all tensors; this
 * also checks inference = training workspace and smaller batches). */
static void test_reference_f32(void **s)
{
    (void)s;
    plstm_safetensors *st;
    TU_OK(plstm_safetensors_open(&st, tu_reference_path("vision_model_small.safetensors")));
    plstm_vision_config c = plstm_vision_config_default();
    c.dim = 32, c.num_heads = 2, c.num_blocks = 2, c.patch_size = 8;
    c.image_size[0] = c.image_size[1] = 32;
    c.num_classes = 2;
    plstm_vision_model *m;
    TU_OK(plstm_vision_model_create(&m, &c));
    const plstm_params *p = plstm_vision_model_params(m);
    float *prm = tu_calloc(plstm_params_size(p), sizeof *prm);
    TU_OK(plstm_params_load(p, prm, PLSTM_F32, st, "param.", 1));
    float px[2 * 32 * 32 * 3], want[4], got[4], one[2];
    TU_OK(plstm_safetensors_read_f32(st, "input.pixels", px, sizeof px / sizeof *px));
    TU_OK(plstm_safetensors_read_f32(st, "output.logits", want, 4));
    plstm_vision_workspace *wt, *wi;
    TU_OK(plstm_vision_workspace_create(&wt, m, PLSTM_F32, 2, 32, 32, 1));
    TU_OK(plstm_vision_workspace_create(&wi, m, PLSTM_F32, 2, 32, 32, 0));
    TU_OK(plstm_vision_forward(g_ctx, m, wt, prm, 2, px, got, NULL));
    TU_ASSERT_CLOSE(tu_rel_err_f32(got, want, 4), 1e-4, "logits (training workspace)");
    TU_OK(plstm_vision_forward(g_ctx, m, wi, prm, 2, px, got, NULL));
    TU_ASSERT_CLOSE(tu_rel_err_f32(got, want, 4), 1e-4, "logits (inference workspace)");
    TU_OK(plstm_vision_forward(g_ctx, m, wi, prm, 1, px + 32 * 32 * 3, one, NULL));
    TU_ASSERT_CLOSE(tu_rel_err_f32(one, want + 2, 2), 1e-4, "logits of image 1 alone");
    plstm_vision_workspace_destroy(wt);
    plstm_vision_workspace_destroy(wi);
    free(prm);
    plstm_vision_model_destroy(m);
    plstm_safetensors_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_fd_p),
        cmocka_unit_test(test_block_fd_d),
        cmocka_unit_test(test_block_f32),
        cmocka_unit_test(test_model_fd_corners),
        cmocka_unit_test(test_model_fd_center_features),
        cmocka_unit_test(test_model_fd_mean_stride),
        cmocka_unit_test(test_model_fd_resized_pos),
        cmocka_unit_test(test_model_fd_stem),
        cmocka_unit_test(test_presets_counts),
        cmocka_unit_test(test_ablations),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_init_values),
        cmocka_unit_test(test_reference_f32),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
