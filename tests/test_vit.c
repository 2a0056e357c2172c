/* ViT baseline: TransformerBlock and tiny-ViT gradients against central
 * finite differences (F64), position-embedding resizing at other resolutions,
 * configuration errors, JSON round trip, parameter layout, and the
 * classifier interface (F32 against F64, a few SGD steps lower the loss). */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------ */

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* A scalar loss L(v) where v is one of the problem's buffers (params or input). */
typedef double (*loss_fn)(void *u);

/* Max of |fd − g| / max(max|g|, 1e-3) over [lo, hi) with central differences
 * on v: every element of small ranges, FD_SAMPLES spread-out elements of large
 * ones (so the programs stay fast under sanitizers). */
#define FD_SAMPLES 40
static double fd_err(loss_fn f, void *u, double *v, size_t lo, size_t hi, const double *g)
{
    const double h = 1e-5;
    double err = 0, gmax = 1e-3;
    for (size_t i = lo; i < hi; i++)
        gmax = fmax(gmax, fabs(g[i]));
    const size_t n = hi - lo, step = n > FD_SAMPLES ? n / FD_SAMPLES : 1;
    for (size_t i = lo + (step > 1 ? (n * 7919) % step : 0); i < hi; i += step) {
        const double v0 = v[i];
        v[i] = v0 + h;
        const double lp = f(u);
        v[i] = v0 - h;
        const double lm = f(u);
        v[i] = v0;
        err = fmax(err, fabs((lp - lm) / (2 * h) - g[i]));
    }
    return err / gmax;
}

/* Checks every parameter tensor of a layout, one relative error per tensor. */
static void fd_check_params(loss_fn f, void *u, const plstm_params *layout, double *params,
                            const double *grads, double tol, const char *what)
{
    for (size_t i = 0; i < plstm_params_count(layout); i++) {
        const plstm_param_info *pi = plstm_params_at(layout, i);
        const double err = fd_err(f, u, params, pi->offset, pi->offset + pi->numel, grads);
        char name[256];
        snprintf(name, sizeof name, "%s: d/d %s", what, pi->name);
        TU_ASSERT_CLOSE(err, tol, name);
    }
}

/* init, then random offsets so norm scales, LayerScales and biases are not 1/0 */
static void perturb(tu_rng *r, double *params, size_t n, double amp)
{
    for (size_t i = 0; i < n; i++)
        params[i] += tu_rng_uniform(r, -amp, amp);
}

/* One thread: these problems are tiny, so threads only add overhead. */
static plstm_status make_ctx(plstm_context **ctx)
{
    plstm_status s = plstm_context_create(ctx, PLSTM_BACKEND_CPU, 0);
    return s == PLSTM_OK ? plstm_context_set_threads(*ctx, 1) : s;
}

/* Field-wise (struct padding may differ). */
static void assert_config_equal(const plstm_vit_config *a, const plstm_vit_config *b)
{
    assert_int_equal(a->dim, b->dim);
    assert_int_equal(a->num_heads, b->num_heads);
    assert_int_equal(a->depth, b->depth);
    assert_int_equal(a->patch_size, b->patch_size);
    assert_int_equal(a->image_size[0], b->image_size[0]);
    assert_int_equal(a->image_size[1], b->image_size[1]);
    assert_int_equal(a->num_channels, b->num_channels);
    assert_int_equal(a->num_classes, b->num_classes);
    assert_true(a->layerscale_init == b->layerscale_init);
    assert_int_equal(a->use_pos_embed, b->use_pos_embed);
    assert_int_equal(a->pos_resize, b->pos_resize);
    assert_int_equal(a->mlp_activation, b->mlp_activation);
    assert_int_equal(a->projection_scaling, b->projection_scaling);
    assert_int_equal(a->projection_round, b->projection_round);
    assert_true(a->norm_eps == b->norm_eps);
    assert_int_equal(a->stem_stages, b->stem_stages);
    for (int i = 0; i < a->stem_stages; i++) {
        assert_int_equal(a->stem_channels[i], b->stem_channels[i]);
        assert_int_equal(a->stem_strides[i] ? a->stem_strides[i] : 2,
                         b->stem_strides[i] ? b->stem_strides[i] : 2);
    }
    assert_int_equal(a->stem_kernel, b->stem_kernel);
    assert_int_equal(a->stem_norm, b->stem_norm);
}

/* ---- TransformerBlock --------------------------------------------------- */

typedef struct {
    plstm_context *ctx;
    plstm_transformer_block L;
    int B, N;
    double *params, *x, *y, *r, *work;
} block_case;

static double block_loss(void *u)
{
    block_case *c = u;
    TU_OK(plstm_transformer_block_forward(c->ctx, &c->L, PLSTM_F64, c->params, c->B, c->N, c->x,
                                          c->y, NULL, c->work));
    return dot(c->y, c->r, (size_t)c->B * c->N * c->L.cfg.dim);
}

static void test_block_fd(void **state)
{
    (void)state;
    plstm_context *ctx;
    TU_OK(make_ctx(&ctx));
    plstm_params *p;
    TU_OK(plstm_params_create(&p));
    block_case c = {.ctx = ctx, .B = 2, .N = 5};
    plstm_transformer_block_config cfg = plstm_transformer_block_config_default(8, 2);
    cfg.projection_scaling = 2, cfg.projection_round = 4; /* inner 16 */
    TU_OK(plstm_transformer_block_declare(&c.L, &cfg, p, "blk"));
    assert_int_equal(c.L.inner, 16);
    assert_int_equal(c.L.head_dim, 4);
    const size_t np = plstm_params_size(p), nx = (size_t)c.B * c.N * 8;
    c.params = tu_calloc(np, 8);
    TU_OK(plstm_transformer_block_init(&c.L, c.params, PLSTM_F64, 7));
    tu_rng r;
    tu_rng_seed(&r, 11);
    perturb(&r, c.params, np, 0.3);
    c.x = tu_calloc(nx, 8), c.y = tu_calloc(nx, 8), c.r = tu_calloc(nx, 8);
    tu_fill_f64(&r, c.x, nx, -1, 1);
    tu_fill_f64(&r, c.r, nx, -1, 1);
    c.work = tu_calloc(plstm_transformer_block_work_size(&c.L, c.B, c.N), 8);
    double *acts = tu_calloc(plstm_transformer_block_activation_size(&c.L, c.B, c.N), 8);
    double *y2 = tu_calloc(nx, 8), *dx = tu_calloc(nx, 8), *grads = tu_calloc(np, 8);

    /* training and inference forward agree */
    TU_OK(plstm_transformer_block_forward(ctx, &c.L, PLSTM_F64, c.params, c.B, c.N, c.x, y2, acts,
                                          c.work));
    block_loss(&c);
    TU_ASSERT_CLOSE(tu_rel_err_f64(y2, c.y, nx), 1e-15, "block: acts vs inference forward");

    TU_OK(plstm_transformer_block_backward(ctx, &c.L, PLSTM_F64, c.params, c.B, c.N, c.x, acts,
                                           c.r, dx, grads, c.work));
    TU_ASSERT_CLOSE(fd_err(block_loss, &c, c.x, 0, nx, dx), 1e-7, "block: dx");
    fd_check_params(block_loss, &c, p, c.params, grads, 1e-7, "block");

    /* gradients accumulate: a second backward doubles them */
    double *g2 = tu_calloc(np, 8);
    memcpy(g2, grads, np * 8);
    TU_OK(plstm_transformer_block_backward(ctx, &c.L, PLSTM_F64, c.params, c.B, c.N, c.x, acts,
                                           c.r, NULL, g2, c.work));
    for (size_t i = 0; i < np; i++)
        grads[i] *= 2;
    TU_ASSERT_CLOSE(tu_rel_err_f64(g2, grads, np), 1e-14, "block: accumulated gradients");

    /* heads not dividing dim */
    plstm_transformer_block L2;
    cfg = plstm_transformer_block_config_default(10, 4);
    assert_int_equal(plstm_transformer_block_declare(&L2, &cfg, p, "bad"),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "num_heads"));

    free(g2), free(grads), free(dx), free(y2), free(acts), free(c.work);
    free(c.r), free(c.y), free(c.x), free(c.params);
    plstm_params_destroy(p);
    plstm_context_destroy(ctx);
}

/* ---- tiny ViT ----------------------------------------------------------- */

typedef struct {
    plstm_context *ctx;
    plstm_vit_model *m;
    plstm_vit_workspace *ws;
    int B, classes;
    double *params, *pixels, *logits, *r;
} vit_case;

static double vit_loss(void *u)
{
    vit_case *c = u;
    TU_OK(plstm_vit_forward(c->ctx, c->m, c->ws, c->params, c->B, c->pixels, c->logits));
    return dot(c->logits, c->r, (size_t)c->B * c->classes);
}

/* stem: 0 none; 1 a full-resolution 3×3 stage then a stride-2 one with
 * instance norm (then a 2×2 patch embedding: 4 / 2); 2 two
 * stride-2 RMS-normed 2×2 stages (1×1 patch embedding). */
static void vit_fd_at(int H, int W, int all_params, int stem)
{
    plstm_context *ctx;
    TU_OK(make_ctx(&ctx));
    plstm_vit_config cfg;
    TU_OK(plstm_vit_preset("vit-tiny", &cfg));
    assert_int_equal(cfg.dim, 16);
    assert_int_equal(cfg.num_heads, 2);
    assert_int_equal(cfg.depth, 2);
    assert_int_equal(cfg.patch_size, 4);
    assert_int_equal(cfg.image_size[0], 16);
    if (stem) {
        cfg.stem_stages = 2, cfg.stem_channels[0] = 3, cfg.stem_channels[1] = 4;
        if (stem == 1)
            cfg.stem_strides[0] = 1, cfg.stem_kernel = 3, cfg.stem_norm = PLSTM_STEM_NORM_INSTANCE;
    }
    vit_case c = {.ctx = ctx, .B = 2, .classes = cfg.num_classes};
    TU_OK(plstm_vit_model_create(&c.m, &cfg));
    TU_OK(plstm_vit_workspace_create(&c.ws, c.m, PLSTM_F64, c.B, H, W, 1));
    const plstm_params *layout = plstm_vit_model_params(c.m);
    const size_t np = plstm_params_size(layout);
    const size_t npix = (size_t)c.B * H * W * cfg.num_channels, nl = (size_t)c.B * c.classes;
    c.params = tu_calloc(np, 8);
    TU_OK(plstm_vit_model_init(c.m, c.params, PLSTM_F64, 3));
    tu_rng r;
    tu_rng_seed(&r, 5);
    perturb(&r, c.params, np, 0.2);
    c.pixels = tu_calloc(npix, 8), c.logits = tu_calloc(nl, 8), c.r = tu_calloc(nl, 8);
    tu_fill_f64(&r, c.pixels, npix, 0, 1);
    tu_fill_f64(&r, c.r, nl, -1, 1);
    double *grads = tu_calloc(np, 8), *dpix = tu_calloc(npix, 8);
    vit_loss(&c);
    TU_OK(plstm_vit_backward(ctx, c.m, c.ws, c.params, c.B, c.pixels, c.r, dpix, grads));
    char what[64];
    snprintf(what, sizeof what, "vit %dx%d stem %d", H, W, stem);
    if (all_params) {
        fd_check_params(vit_loss, &c, layout, c.params, grads, 1e-6, what);
        TU_ASSERT_CLOSE(fd_err(vit_loss, &c, c.pixels, 0, npix, dpix), 1e-6, "vit: dpixels");
    } else { /* the parameters the resolution changes the path of */
        const char *names[] = {"pos_embed.embed", "cls_token", "patch_embed.proj.weight",
                               "block_stack.blocks.0.qkv.weight"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            const plstm_param_info *pi = plstm_params_find(layout, names[i]);
            assert_non_null(pi);
            char name[128];
            snprintf(name, sizeof name, "%s: d/d %s", what, names[i]);
            TU_ASSERT_CLOSE(fd_err(vit_loss, &c, c.params, pi->offset, pi->offset + pi->numel,
                                   grads),
                            1e-6, name);
        }
    }
    free(dpix), free(grads), free(c.r), free(c.logits), free(c.pixels), free(c.params);
    plstm_vit_workspace_destroy(c.ws);
    plstm_vit_model_destroy(c.m);
    plstm_context_destroy(ctx);
}

static void test_vit_fd(void **state)
{
    (void)state;
    vit_fd_at(16, 16, 1, 0);
    vit_fd_at(16, 16, 1, 1);
    vit_fd_at(16, 16, 1, 2);
}

/* At another resolution the position embedding goes through resize (and its
 * adjoint in backward). */
static void test_vit_fd_other_resolution(void **state)
{
    (void)state;
    vit_fd_at(24, 20, 0, 0);
    vit_fd_at(24, 20, 0, 1);
}

/* Evaluating at 32×24 equals a model built for 32×24 whose position
 * embedding is the resized one (where the identity path is taken), and at
 * the training grid plstm_vit_pos_embed is the parameter itself. */
static void test_vit_resolution(void **state)
{
    (void)state;
    plstm_context *ctx;
    TU_OK(make_ctx(&ctx));
    for (int kind = 0; kind < 2; kind++) {
        plstm_vit_config c1;
        TU_OK(plstm_vit_preset("vit-tiny", &c1));
        c1.pos_resize = kind ? PLSTM_RESIZE_BICUBIC_JAX : PLSTM_RESIZE_BICUBIC_TORCH;
        plstm_vit_config c2 = c1;
        c2.image_size[0] = 32, c2.image_size[1] = 24;
        plstm_vit_model *m1, *m2;
        TU_OK(plstm_vit_model_create(&m1, &c1));
        TU_OK(plstm_vit_model_create(&m2, &c2));
        const plstm_params *l1 = plstm_vit_model_params(m1), *l2 = plstm_vit_model_params(m2);
        double *p1 = tu_calloc(plstm_params_size(l1), 8), *p2 = tu_calloc(plstm_params_size(l2), 8);
        TU_OK(plstm_vit_model_init(m1, p1, PLSTM_F64, 9));
        /* identity at the training grid */
        const plstm_param_info *pos1 = plstm_params_find(l1, "pos_embed.embed");
        assert_non_null(pos1);
        assert_int_equal(pos1->shape[1], 4);
        assert_int_equal(pos1->shape[2], 4);
        double *pe = tu_calloc(8 * 6 * 16, 8);
        TU_OK(plstm_vit_pos_embed(ctx, m1, PLSTM_F64, p1, 4, 4, pe));
        assert_memory_equal(pe, p1 + pos1->offset, pos1->numel * 8);
        /* copy every parameter by name, the position embedding resized */
        for (size_t i = 0; i < plstm_params_count(l2); i++) {
            const plstm_param_info *b = plstm_params_at(l2, i), *a = plstm_params_find(l1, b->name);
            assert_non_null(a);
            if (!strcmp(b->name, "pos_embed.embed")) {
                assert_int_equal(b->numel, 8 * 6 * 16);
                TU_OK(plstm_vit_pos_embed(ctx, m1, PLSTM_F64, p1, 8, 6, p2 + b->offset));
            } else {
                assert_int_equal(a->numel, b->numel);
                memcpy(p2 + b->offset, p1 + a->offset, a->numel * 8);
            }
        }
        const int B = 2;
        const size_t npix = (size_t)B * 32 * 24 * 3;
        double *pix = tu_calloc(npix, 8), *y1 = tu_calloc(4, 8), *y2 = tu_calloc(4, 8);
        tu_rng r;
        tu_rng_seed(&r, 17);
        tu_fill_f64(&r, pix, npix, 0, 1);
        plstm_vit_workspace *w1, *w2;
        TU_OK(plstm_vit_workspace_create(&w1, m1, PLSTM_F64, B, 32, 24, 0));
        TU_OK(plstm_vit_workspace_create(&w2, m2, PLSTM_F64, B, 32, 24, 0));
        TU_OK(plstm_vit_forward(ctx, m1, w1, p1, B, pix, y1));
        TU_OK(plstm_vit_forward(ctx, m2, w2, p2, B, pix, y2));
        TU_ASSERT_CLOSE(tu_rel_err_f64(y1, y2, 4), 1e-14, "resized vs re-built model");
        /* the embedding really changes with the grid (not a constant) */
        double diff = 0;
        for (size_t i = 0; i < 4 * 16; i++)
            diff = fmax(diff, fabs(p2[plstm_params_find(l2, "pos_embed.embed")->offset + i] -
                                   p1[pos1->offset + i]));
        assert_true(diff > 1e-3);
        /* an image the patches do not tile */
        plstm_vit_workspace *w3 = NULL;
        assert_int_equal(plstm_vit_workspace_create(&w3, m1, PLSTM_F64, B, 18, 16, 0),
                         PLSTM_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(plstm_last_error(), "divisible"));
        assert_null(w3);
        plstm_vit_workspace_destroy(w1);
        plstm_vit_workspace_destroy(w2);
        free(y2), free(y1), free(pix), free(pe), free(p2), free(p1);
        plstm_vit_model_destroy(m2);
        plstm_vit_model_destroy(m1);
    }
    plstm_context_destroy(ctx);
}

/* ---- configuration ------------------------------------------------------ */

static void expect_config_error(const plstm_vit_config *c, const char *needle)
{
    plstm_vit_model *m = NULL;
    assert_int_equal(plstm_vit_model_create(&m, c), PLSTM_ERR_INVALID_ARGUMENT);
    assert_null(m);
    if (!strstr(plstm_last_error(), needle))
        fail_msg("error \"%s\" does not mention \"%s\"", plstm_last_error(), needle);
}

static void test_config(void **state)
{
    (void)state;
    plstm_vit_config c;
    TU_OK(plstm_vit_preset("VIT-APE", &c));
    assert_int_equal(c.dim, 192);
    assert_int_equal(c.num_heads, 6);
    assert_int_equal(c.depth, 12);
    assert_int_equal(c.patch_size, 16);
    assert_int_equal(c.image_size[0], 192);
    assert_int_equal(c.image_size[1], 192);
    assert_int_equal(c.num_classes, 2);
    assert_true(c.layerscale_init == 1.0);
    assert_int_equal(plstm_vit_preset("vit-huge", &c), PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "vit-ape"));

    plstm_vit_config b;
    TU_OK(plstm_vit_preset("vit-ape", &b));
    c = b, c.num_heads = 5;
    expect_config_error(&c, "divide dim");
    c = b, c.image_size[0] = 200;
    expect_config_error(&c, "divisible by the patch size");
    c = b, c.depth = 0;
    expect_config_error(&c, "depth");
    c = b, c.norm_eps = 0;
    expect_config_error(&c, "norm_eps");

    /* JSON round trip and errors */
    char *js;
    c = b, c.pos_resize = PLSTM_RESIZE_BICUBIC_TORCH, c.layerscale_init = 1e-4, c.depth = 3;
    TU_OK(plstm_vit_config_to_json(&c, &js));
    plstm_vit_config d;
    TU_OK(plstm_vit_config_from_json(js, NULL, &d));
    assert_config_equal(&c, &d);
    free(js);
    TU_OK(plstm_vit_config_from_json("{\"preset\": \"vit-tiny\", \"depth\": 3}", NULL, &d));
    assert_int_equal(d.dim, 16);
    assert_int_equal(d.depth, 3);
    assert_int_equal(plstm_vit_config_from_json("{\"dimm\": 3}", NULL, &d),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "dimm"));
    assert_int_equal(plstm_vit_config_from_json("{\"num_heads\": 7}", NULL, &d),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_int_equal(plstm_vit_config_from_json("{\"pos_resize\": \"cubic\"}", NULL, &d),
                     PLSTM_ERR_INVALID_ARGUMENT);

    /* a conv stem: JSON round trip, no stem keys without one, errors */
    TU_OK(plstm_vit_config_to_json(&b, &js));
    assert_null(strstr(js, "stem"));
    free(js);
    TU_OK(plstm_vit_config_from_json(
        "{\"preset\": \"vit-tiny\", \"stem_channels\": [4, 8], \"stem_strides\": [1], "
        "\"stem_kernel\": 3, \"stem_norm\": \"instance\"}",
        NULL, &d));
    assert_int_equal(d.stem_stages, 2);
    assert_int_equal(d.stem_strides[0], 1);
    assert_int_equal(d.stem_norm, PLSTM_STEM_NORM_INSTANCE);
    TU_OK(plstm_vit_config_to_json(&d, &js));
    assert_non_null(strstr(js, "\"stem_strides\":[1,2]"));
    plstm_vit_config e;
    TU_OK(plstm_vit_config_from_json(js, NULL, &e));
    free(js);
    assert_config_equal(&d, &e);
    assert_int_equal(plstm_vit_config_from_json(
                         "{\"preset\": \"vit-tiny\", \"stem_channels\": [4], \"stem_strides\": [1]}",
                         NULL, &d),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "odd stem_kernel"));
    assert_int_equal(plstm_vit_config_from_json(
                         "{\"preset\": \"vit-tiny\", \"stem_channels\": [4, 4, 4]}", NULL, &d),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "multiple of 8"));
    assert_int_equal(plstm_vit_config_from_json("{\"stem_norm\": \"batch\"}", NULL, &d),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "stem_norm"));
}

/* Parameter count of vit-ape from the spec's shapes; weight decay flags. */
static void test_params(void **state)
{
    (void)state;
    plstm_vit_config c;
    TU_OK(plstm_vit_preset("vit-ape", &c));
    plstm_vit_model *m;
    TU_OK(plstm_vit_model_create(&m, &c));
    const plstm_params *p = plstm_vit_model_params(m);
    const size_t D = 192, I = 768, grid = 12 * 12;
    const size_t block = 4 * D /* norms, scales */ + 3 * D * D + 3 * D + D * D + D + I * D + I +
                         D * I + D;
    const size_t expect = D * 3 * 16 * 16 + D + D + grid * D + 12 * block + D + 2 * D + 2;
    assert_int_equal(plstm_params_numel(p), expect);
    assert_int_equal(plstm_params_count(p), 3 + 1 + 12 * 12 + 3);
    for (size_t i = 0; i < plstm_params_count(p); i++) {
        const plstm_param_info *pi = plstm_params_at(p, i);
        const size_t n = strlen(pi->name);
        const int is_weight = n >= 6 && !strcmp(pi->name + n - 6, "weight");
        if (is_weight == !!(pi->flags & PLSTM_PARAM_NO_DECAY))
            fail_msg("%s: NO_DECAY flag %u", pi->name, pi->flags);
    }
    const plstm_param_info *q = plstm_params_find(p, "block_stack.blocks.11.qkv.weight");
    assert_non_null(q);
    assert_int_equal(q->shape[0], 3 * D);
    assert_int_equal(q->shape[1], D);
    assert_non_null(plstm_params_find(p, "block_stack.blocks.0.scale2.scale"));
    assert_non_null(plstm_params_find(p, "cls_token"));
    /* init: LayerScale 1, norms 1, biases 0 */
    float *w = tu_calloc(plstm_params_size(p), 4);
    TU_OK(plstm_vit_model_init(m, w, PLSTM_F32, 1));
    const plstm_param_info *s = plstm_params_find(p, "block_stack.blocks.3.scale.scale");
    const plstm_param_info *bq = plstm_params_find(p, "block_stack.blocks.3.qkv.bias");
    for (size_t i = 0; i < D; i++) {
        assert_true(w[s->offset + i] == 1.0f);
        assert_true(w[bq->offset + i] == 0.0f);
    }
    free(w);
    plstm_vit_model_destroy(m);
}

/* ---- classifier interface ----------------------------------------------- */

static void test_classifier(void **state)
{
    (void)state;
    plstm_context *ctx;
    TU_OK(make_ctx(&ctx));
    plstm_vit_config cfg;
    TU_OK(plstm_vit_preset("vit-tiny", &cfg));
    plstm_classifier *cl;
    TU_OK(plstm_vit_classifier_create(&cfg, &cl));
    assert_string_equal(cl->name, "vit");
    assert_int_equal(cl->num_classes, 2);
    assert_int_equal(cl->train_height, 16);
    plstm_vit_config back;
    TU_OK(plstm_vit_config_from_json(cl->config_json, NULL, &back));
    assert_config_equal(&back, &cfg);

    const size_t np = plstm_params_size(cl->params);
    const int B = 4;
    const size_t npix = (size_t)B * 16 * 16 * 3;
    float *p = tu_calloc(np, 4), *g = tu_calloc(np, 4), *pix = tu_calloc(npix, 4);
    float *logits = tu_calloc(B * 2, 4), *dl = tu_calloc(B * 2, 4);
    TU_OK(cl->ops->init(cl, p, 42));
    tu_rng r;
    tu_rng_seed(&r, 3);
    int32_t labels[4] = {0, 1, 1, 0};
    /* a learnable task: class 1 is bright in the top half, class 0 in the bottom */
    for (int b = 0; b < B; b++)
        for (int i = 0; i < 16 * 16 * 3; i++) {
            const int top = i / (16 * 3) < 8;
            pix[(size_t)b * 16 * 16 * 3 + i] =
                (float)(0.2 * tu_rng_uniform(&r, 0, 1) + (top == labels[b] ? 0.8 : 0.0));
        }

    /* F32 gradient agrees with the F64 model's */
    TU_OK(cl->ops->forward(cl, ctx, p, B, 16, 16, pix, logits, 1));
    double loss0;
    TU_OK(plstm_softmax_xent_forward(ctx, PLSTM_F32, B, 2, logits, labels, &loss0, NULL));
    TU_OK(plstm_softmax_xent_backward(ctx, PLSTM_F32, B, 2, logits, labels, 1.0, dl));
    TU_OK(cl->ops->backward(cl, ctx, p, dl, g));
    {
        plstm_vit_model *m;
        plstm_vit_workspace *ws;
        TU_OK(plstm_vit_model_create(&m, &cfg));
        TU_OK(plstm_vit_workspace_create(&ws, m, PLSTM_F64, B, 16, 16, 1));
        double *p64 = tu_calloc(np, 8), *g64 = tu_calloc(np, 8), *pix64 = tu_calloc(npix, 8);
        double *l64 = tu_calloc(B * 2, 8), *dl64 = tu_calloc(B * 2, 8);
        for (size_t i = 0; i < np; i++)
            p64[i] = p[i];
        for (size_t i = 0; i < npix; i++)
            pix64[i] = pix[i];
        TU_OK(plstm_vit_forward(ctx, m, ws, p64, B, pix64, l64));
        TU_OK(plstm_softmax_xent_backward(ctx, PLSTM_F64, B, 2, l64, labels, 1.0, dl64));
        TU_OK(plstm_vit_backward(ctx, m, ws, p64, B, pix64, dl64, NULL, g64));
        double *g32 = tu_calloc(np, 8);
        for (size_t i = 0; i < np; i++)
            g32[i] = g[i];
        TU_ASSERT_CLOSE(tu_rel_err_f64(g32, g64, np), 1e-4, "classifier F32 vs F64 gradient");
        free(g32), free(dl64), free(l64), free(pix64), free(g64), free(p64);
        plstm_vit_workspace_destroy(ws);
        plstm_vit_model_destroy(m);
    }
    /* an inference forward at another resolution in between does not disturb
     * the saved training batch */
    float *pix2 = tu_calloc((size_t)B * 24 * 32 * 3, 4), *l2 = tu_calloc(B * 2, 4);
    tu_fill_f32(&r, pix2, (size_t)B * 24 * 32 * 3, 0, 1);
    TU_OK(cl->ops->forward(cl, ctx, p, B, 24, 32, pix2, l2, 0));
    for (int i = 0; i < B * 2; i++)
        assert_true(isfinite(l2[i]));
    float *g2 = tu_calloc(np, 4);
    TU_OK(cl->ops->backward(cl, ctx, p, dl, g2));
    assert_memory_equal(g, g2, np * 4);

    /* plain SGD learns the fixed batch */
    double loss = loss0;
    for (int step = 0; step < 30; step++) {
        memset(g, 0, np * 4);
        TU_OK(cl->ops->forward(cl, ctx, p, B, 16, 16, pix, logits, 1));
        TU_OK(plstm_softmax_xent_forward(ctx, PLSTM_F32, B, 2, logits, labels, &loss, NULL));
        TU_OK(plstm_softmax_xent_backward(ctx, PLSTM_F32, B, 2, logits, labels, 1.0, dl));
        TU_OK(cl->ops->backward(cl, ctx, p, dl, g));
        for (size_t i = 0; i < np; i++)
            p[i] -= 0.05f * g[i];
    }
    if (!(loss < 0.1))
        fail_msg("SGD: loss %.4f (from %.4f) did not fall below 0.1", loss, loss0);

    free(g2), free(l2), free(pix2), free(dl), free(logits), free(pix), free(g), free(p);
    cl->ops->destroy(cl);
    plstm_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_fd),
        cmocka_unit_test(test_vit_fd),
        cmocka_unit_test(test_vit_fd_other_resolution),
        cmocka_unit_test(test_vit_resolution),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_classifier),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
