/* The pLSTM vision model (plstm-math.md §7.3–7.5): patch embedding, position
 * embedding (resized for other grids), PostUp blocks, final RMSNorm, pooling,
 * head. A workspace holds every buffer of one batch shape, so forward and
 * backward allocate nothing themselves. */
#include "plstm/vision.h"
#include "plstm/train.h"
#include "core/status_internal.h"
#include "layers/conv_stem.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

struct plstm_vision_model {
    plstm_vision_config cfg;
    plstm_params *p;
    int stride, X0, Y0, Dp, nb; /* nb = 2·num_blocks PostUp blocks */
    plstm_postup *blocks;
    size_t pe_w, pe_b, pos, norm, head_w, head_b;
    conv_stem stem;
    int pp, shrink; /* patch size after the stem; the stem's size reduction */
};

static void *at(void *buf, size_t esz, size_t off) { return (char *)buf + off * esz; }
static const void *cat(const void *buf, size_t esz, size_t off)
{
    return (const char *)buf + off * esz;
}

/* ---- model -------------------------------------------------------------- */

static plstm_postup_config block_config(const plstm_vision_config *c, char mode)
{
    const int H = c->num_heads;
    plstm_postup_config b = plstm_postup_config_default(
        c->dim, H, mode == 'P' ? PLSTM_LAYER2D_P : PLSTM_LAYER2D_D);
    b.act = c->mlp_activation;
    b.norm_eps = c->norm_eps;
    b.projection_scaling = c->projection_scaling;
    b.projection_round = c->projection_round;
    plstm_layer2d_config *l = &b.layer;
    l->mhnorm_eps = c->mhnorm_eps;
    l->map = c->map;
    l->algo = c->algo;
    const int qs = c->qkv_sub_heads ? c->qkv_sub_heads : H;
    l->query.sub_heads = l->key.sub_heads = l->value.sub_heads = qs;
    const int gs = c->gate_sub_heads ? c->gate_sub_heads : 4 * H;
    l->source.weight = c->source_weight;
    l->mark.weight = c->mark_weight;
    l->transition.weight = c->transition_weight;
    l->direct.weight = c->direct_weight;
    l->source.sub_heads = l->mark.sub_heads = l->transition.sub_heads = gs;
    l->direct.sub_heads = 1; /* H heads: S/T/M's 4·H groups would not divide them */
    l->source.bias_init = c->source_bias_init;
    l->mark.bias_init = c->mark_bias_init;
    l->direct.bias_init = c->direct_bias_init;
    return b;
}

static plstm_status declare_all(plstm_vision_model *m)
{
    const plstm_vision_config *c = &m->cfg;
    const int D = c->dim, p = m->pp;
    plstm_params *P = m->p;
    PLSTM_TRY(conv_stem_declare(&m->stem, P));
    const int cin = conv_stem_out_channels(&m->stem);
    const int64_t spw[4] = {D, cin, p, p}, sD[1] = {D};
    PLSTM_TRY(plstm_params_declare(P, "patch_embed.proj.weight", 4, spw, 0, &m->pe_w));
    PLSTM_TRY(plstm_params_declare(P, "patch_embed.proj.bias", 1, sD, PLSTM_PARAM_NO_DECAY,
                                   &m->pe_b));
    m->pos = PLSTM_NO_PARAM;
    if (c->use_pos_embed) {
        const int64_t sp[4] = {1, m->X0, m->Y0, D};
        PLSTM_TRY(plstm_params_declare(P, "pos_embed.embed", 4, sp, PLSTM_PARAM_NO_DECAY,
                                       &m->pos));
    }
    for (int i = 0; i < m->nb; i++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "block_stack.blocks.%d.block%d", i / 2, i % 2);
        const plstm_postup_config bc = block_config(c, c->block_mode[i % 2]);
        PLSTM_TRY(plstm_postup_declare(&m->blocks[i], &bc, P, prefix));
    }
    const int64_t sh[2] = {c->num_classes, m->Dp}, sc[1] = {c->num_classes};
    PLSTM_TRY(plstm_params_declare(P, "norm.scale", 1, sD, PLSTM_PARAM_NO_DECAY, &m->norm));
    PLSTM_TRY(plstm_params_declare(P, "head.weight", 2, sh, 0, &m->head_w));
    PLSTM_TRY(plstm_params_declare(P, "head.bias", 1, sc, PLSTM_PARAM_NO_DECAY, &m->head_b));
    return PLSTM_OK;
}

plstm_status plstm_vision_model_create(plstm_vision_model **out, const plstm_vision_config *cfg)
{
    PLSTM_CHECK_ARG(out && cfg, "plstm_vision_model_create: NULL argument");
    *out = NULL;
    PLSTM_TRY(plstm_vision_config_check(cfg));
    plstm_vision_model *m = calloc(1, sizeof *m);
    if (!m)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate the vision model");
    m->cfg = *cfg;
    m->stride = cfg->stride ? cfg->stride : cfg->patch_size;
    m->X0 = (cfg->image_size[0] - cfg->patch_size) / m->stride + 1;
    m->Y0 = (cfg->image_size[1] - cfg->patch_size) / m->stride + 1;
    m->Dp = plstm_pool_output_dim(cfg->pooling, cfg->dim);
    m->nb = 2 * cfg->num_blocks;
    conv_stem_setup(&m->stem, cfg->stem_stages, cfg->stem_channels, cfg->stem_strides,
                    cfg->stem_kernel, cfg->stem_norm, cfg->norm_eps, cfg->num_channels);
    m->shrink = conv_stem_shrink(&m->stem);
    m->pp = cfg->patch_size / m->shrink;
    m->blocks = calloc(m->nb ? (size_t)m->nb : 1, sizeof *m->blocks);
    plstm_status s = m->blocks ? plstm_params_create(&m->p)
                               : plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate blocks");
    if (s == PLSTM_OK)
        s = declare_all(m);
    if (s != PLSTM_OK) {
        plstm_vision_model_destroy(m);
        return s;
    }
    *out = m;
    return PLSTM_OK;
}

void plstm_vision_model_destroy(plstm_vision_model *m)
{
    if (!m)
        return;
    plstm_params_destroy(m->p);
    free(m->blocks);
    free(m);
}

const plstm_vision_config *plstm_vision_model_config(const plstm_vision_model *m)
{
    return m ? &m->cfg : NULL;
}

const plstm_params *plstm_vision_model_params(const plstm_vision_model *m)
{
    return m ? m->p : NULL;
}

int plstm_vision_model_feature_dim(const plstm_vision_model *m) { return m ? m->Dp : 0; }

plstm_status plstm_vision_model_grid(const plstm_vision_model *m, int H, int W, int *X, int *Y)
{
    PLSTM_CHECK_ARG(m && X && Y, "plstm_vision_model_grid: NULL argument");
    const int p = m->cfg.patch_size, s = m->stride;
    PLSTM_CHECK_ARG(H >= p && W >= p && H <= (1 << 20) && W <= (1 << 20),
                    "vision model: image %dx%d is smaller than the patch size %d (or too large)",
                    H, W, p);
    PLSTM_CHECK_ARG((H - p) % s == 0 && (W - p) % s == 0,
                    "vision model: image %dx%d is not tiled by %dx%d patches with stride %d "
                    "(size − patch must be a multiple of the stride)",
                    H, W, p, p, s);
    *X = (H - p) / s + 1;
    *Y = (W - p) / s + 1;
    return PLSTM_OK;
}

static void set(void *buf, plstm_dtype dt, size_t i, double v)
{
    if (dt == PLSTM_F32)
        ((float *)buf)[i] = (float)v;
    else
        ((double *)buf)[i] = v;
}

static void fill_normal(void *buf, plstm_dtype dt, size_t off, size_t n, double sigma,
                        int truncated, plstm_rng *r)
{
    for (size_t i = 0; i < n; i++)
        set(buf, dt, off + i,
            sigma * (truncated ? plstm_rng_truncated_normal(r, -2.0, 2.0) : plstm_rng_normal(r)));
}

static void fill_const(void *buf, plstm_dtype dt, size_t off, size_t n, double v)
{
    for (size_t i = 0; i < n; i++)
        set(buf, dt, off + i, v);
}

plstm_status plstm_vision_model_init(const plstm_vision_model *m, void *params,
                                     plstm_dtype dtype, uint64_t seed)
{
    PLSTM_CHECK_ARG(m && params, "plstm_vision_model_init: NULL argument");
    PLSTM_CHECK_ARG(dtype == PLSTM_F32 || dtype == PLSTM_F64,
                    "plstm_vision_model_init: dtype must be F32 or F64");
    const plstm_vision_config *c = &m->cfg;
    const size_t D = (size_t)c->dim, p = (size_t)m->pp;
    const size_t C = (size_t)conv_stem_out_channels(&m->stem);
    memset(params, 0, plstm_params_size(m->p) * plstm_dtype_size(dtype));
    plstm_rng r;
    plstm_rng_seed(&r, seed, 0x766973696f6eull); /* "vision" stream */
    conv_stem_init(&m->stem, params, dtype, &r);
    fill_normal(params, dtype, m->pe_w, D * C * p * p, 1.0 / sqrt(2.5 * (double)(C * p * p)), 0,
                &r);
    fill_const(params, dtype, m->pe_b, D, 0.0);
    if (m->pos != PLSTM_NO_PARAM) {
        const int trunc = c->pos_embed_init_std > 0;
        const double sd = trunc ? c->pos_embed_init_std : 1.0 / sqrt(2.5 * (double)D);
        fill_normal(params, dtype, m->pos, (size_t)m->X0 * m->Y0 * D, sd, trunc, &r);
    }
    for (int i = 0; i < m->nb; i++) {
        const uint64_t bseed = plstm_rng_u64(&r);
        PLSTM_TRY(plstm_postup_init(&m->blocks[i], params, dtype, bseed));
    }
    fill_const(params, dtype, m->norm, D, 1.0);
    fill_normal(params, dtype, m->head_w, (size_t)c->num_classes * m->Dp,
                1.0 / sqrt(2.5 * (double)m->Dp), 0, &r);
    fill_const(params, dtype, m->head_b, (size_t)c->num_classes, 0.0);
    return PLSTM_OK;
}

plstm_status plstm_vision_pos_embed(plstm_context *ctx, const plstm_vision_model *m,
                                    plstm_dtype dtype, const void *params, int X, int Y,
                                    void *out)
{
    PLSTM_CHECK_ARG(ctx && m && params && out, "plstm_vision_pos_embed: NULL argument");
    PLSTM_CHECK_ARG(m->pos != PLSTM_NO_PARAM, "vision model: no position embedding");
    PLSTM_CHECK_ARG(X >= 1 && Y >= 1, "plstm_vision_pos_embed: grid %dx%d", X, Y);
    const size_t e = plstm_dtype_size(dtype);
    if (X == m->X0 && Y == m->Y0) {
        memcpy(out, cat(params, e, m->pos), (size_t)X * Y * m->cfg.dim * e);
        return PLSTM_OK;
    }
    return plstm_resize_forward(ctx, dtype, m->cfg.pos_resize, 1, m->X0, m->Y0, X, Y, m->cfg.dim,
                                cat(params, e, m->pos), out);
}

/* ---- workspace ---------------------------------------------------------- */

struct plstm_vision_workspace {
    const plstm_vision_model *m;
    plstm_dtype dtype;
    size_t esz;
    int Bmax, H, W, X, Y, training;
    void *buf;
    size_t total;
    /* element offsets for Bmax images */
    size_t pe, xs, xs_stride, nxs, acts, acts_stride, z, f, work;
    size_t g0, g1, df, dpe, dpos;
    conv_stem_ws stem;
    int fwd_B; /* batch of the last training forward, 0 if none */
    int timing;
    double sec[PLSTM_VPART_COUNT];
};

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

plstm_status plstm_vision_workspace_create(plstm_vision_workspace **out,
                                           const plstm_vision_model *m, plstm_dtype dtype,
                                           int max_batch, int H, int W, int training)
{
    PLSTM_CHECK_ARG(out && m, "plstm_vision_workspace_create: NULL argument");
    *out = NULL;
    PLSTM_CHECK_ARG(dtype == PLSTM_F32 || dtype == PLSTM_F64,
                    "vision workspace: dtype must be F32 or F64");
    PLSTM_CHECK_ARG(max_batch >= 1, "vision workspace: batch %d must be >= 1", max_batch);
    int X, Y;
    PLSTM_TRY(plstm_vision_model_grid(m, H, W, &X, &Y));
    PLSTM_CHECK_ARG((double)max_batch * X * Y * m->cfg.dim * 4 < 4e12,
                    "vision workspace: batch %d at %dx%d is too large", max_batch, H, W);
    plstm_vision_workspace *ws = calloc(1, sizeof *ws);
    if (!ws)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate the vision workspace");
    ws->m = m, ws->dtype = dtype, ws->esz = plstm_dtype_size(dtype);
    ws->Bmax = max_batch, ws->H = H, ws->W = W, ws->X = X, ws->Y = Y;
    ws->training = training != 0;
    const int B = max_batch, D = m->cfg.dim;
    const size_t N = (size_t)B * X * Y, ND = N * D;
    size_t act = 0, work = 0;
    for (int i = 0; i < m->nb; i++) {
        const size_t a = plstm_postup_activation_size(&m->blocks[i], B, X, Y);
        const size_t w = plstm_postup_work_size(&m->blocks[i], B, X, Y);
        act = a > act ? a : act;
        work = w > work ? w : work;
    }
    size_t o = 0;
    ws->pe = o, o += align16((size_t)X * Y * D);
    ws->xs_stride = align16(ND);
    ws->nxs = ws->training ? (size_t)m->nb + 1 : 2;
    ws->xs = o, o += ws->nxs * ws->xs_stride;
    ws->acts_stride = ws->training ? align16(act) : 0;
    ws->acts = o, o += (size_t)m->nb * ws->acts_stride;
    ws->z = o, o += align16(ND);
    ws->f = o, o += align16((size_t)B * m->Dp);
    ws->work = o, o += align16(work);
    if (ws->training) {
        ws->g0 = o, o += align16(ND);
        ws->g1 = o, o += align16(ND);
        ws->df = o, o += align16((size_t)B * m->Dp);
        ws->dpe = o, o += align16((size_t)X * Y * D);
        ws->dpos = o, o += align16((size_t)m->X0 * m->Y0 * D);
    }
    o = conv_stem_layout(&m->stem, B, H, W, ws->training, o, &ws->stem);
    ws->total = o;
    const size_t bytes = (o ? o : 1) * ws->esz;
    ws->buf = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!ws->buf) {
        free(ws);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes of vision workspace",
                          bytes);
    }
    memset(ws->buf, 0, bytes);
    *out = ws;
    return PLSTM_OK;
}

void plstm_vision_workspace_destroy(plstm_vision_workspace *ws)
{
    if (!ws)
        return;
    free(ws->buf);
    free(ws);
}

size_t plstm_vision_workspace_bytes(const plstm_vision_workspace *ws)
{
    return ws ? ws->total * ws->esz : 0;
}

void plstm_vision_workspace_set_timing(plstm_vision_workspace *ws, int on)
{
    if (!ws)
        return;
    ws->timing = on != 0;
    memset(ws->sec, 0, sizeof ws->sec);
}

void plstm_vision_workspace_timing(const plstm_vision_workspace *ws,
                                   double seconds[PLSTM_VPART_COUNT])
{
    for (int i = 0; i < PLSTM_VPART_COUNT; i++)
        seconds[i] = ws ? ws->sec[i] : 0.0;
}

/* ---- forward / backward ------------------------------------------------- */

static void lap(plstm_vision_workspace *ws, int part, double *t0)
{
    if (!ws->timing)
        return;
    const double t = omp_get_wtime();
    ws->sec[part] += t - *t0;
    *t0 = t;
}

static plstm_status check_step(plstm_context *ctx, const plstm_vision_model *m,
                               const plstm_vision_workspace *ws, const void *params, int B,
                               const void *pixels, const char *what)
{
    PLSTM_CHECK_ARG(ctx && m && ws && params && pixels, "%s: NULL argument", what);
    PLSTM_CHECK_ARG(ws->m == m, "%s: the workspace belongs to another model", what);
    PLSTM_CHECK_ARG(B >= 1 && B <= ws->Bmax, "%s: batch %d must be in 1..%d (the workspace's)",
                    what, B, ws->Bmax);
    if (plstm_context_backend(ctx) != PLSTM_BACKEND_CPU)
        return plstm_fail(PLSTM_ERR_UNSUPPORTED, "%s: only the CPU backend is implemented", what);
    return PLSTM_OK;
}

/* Token activations xs[i] (inference: ping-pong between two buffers). */
static void *xs_at(plstm_vision_workspace *ws, int i)
{
    const size_t k = ws->training ? (size_t)i : (size_t)(i & 1);
    return at(ws->buf, ws->esz, ws->xs + k * ws->xs_stride);
}

plstm_status plstm_vision_forward(plstm_context *ctx, const plstm_vision_model *m,
                                  plstm_vision_workspace *ws, const void *params, int B,
                                  const void *pixels, void *logits, void *features)
{
    PLSTM_TRY(check_step(ctx, m, ws, params, B, pixels, "vision forward"));
    const plstm_vision_config *c = &m->cfg;
    const plstm_dtype dt = ws->dtype;
    const size_t e = ws->esz;
    const int X = ws->X, Y = ws->Y, D = c->dim, N = B * X * Y;
    void *buf = ws->buf;
    double *sec = ws->timing ? ws->sec : NULL;
    double t0 = ws->timing ? omp_get_wtime() : 0;
    ws->fwd_B = 0;

    void *x0 = xs_at(ws, 0);
    const void *in = NULL;
    PLSTM_TRY(conv_stem_forward(ctx, &m->stem, &ws->stem, dt, params, buf, B, pixels, &in));
    PLSTM_TRY(plstm_patch_embed_forward(ctx, dt, B, ws->H / m->shrink, ws->W / m->shrink,
                                        conv_stem_out_channels(&m->stem), D, m->pp,
                                        m->stride / m->shrink, in, cat(params, e, m->pe_w),
                                        cat(params, e, m->pe_b), x0));
    if (m->pos != PLSTM_NO_PARAM) {
        void *pe = at(buf, e, ws->pe);
        PLSTM_TRY(plstm_vision_pos_embed(ctx, m, dt, params, X, Y, pe));
        PLSTM_TRY(plstm_broadcast_add_forward(ctx, dt, B, X * Y * D, x0, pe, x0));
    }
    lap(ws, PLSTM_VPART_EMBED, &t0);
    void *work = at(buf, e, ws->work);
    for (int i = 0; i < m->nb; i++) {
        void *acts = ws->training ? at(buf, e, ws->acts + (size_t)i * ws->acts_stride) : NULL;
        PLSTM_TRY(plstm_postup_forward_timed(ctx, &m->blocks[i], dt, params, B, X, Y,
                                             xs_at(ws, i), xs_at(ws, i + 1), acts, work, sec));
    }
    if (ws->timing)
        t0 = omp_get_wtime();
    void *z = at(buf, e, ws->z), *f = at(buf, e, ws->f);
    PLSTM_TRY(plstm_norm_forward(ctx, dt, PLSTM_NORM_RMS, N, D, 1, c->norm_eps, xs_at(ws, m->nb),
                                 cat(params, e, m->norm), NULL, z));
    lap(ws, PLSTM_VPART_NORM, &t0);
    PLSTM_TRY(plstm_pool_forward(ctx, dt, c->pooling, B, X, Y, D, z, f));
    if (features)
        memcpy(features, f, (size_t)B * m->Dp * e);
    if (logits)
        PLSTM_TRY(plstm_linear_forward(ctx, dt, B, m->Dp, c->num_classes, f,
                                       cat(params, e, m->head_w), cat(params, e, m->head_b),
                                       logits));
    lap(ws, PLSTM_VPART_HEAD, &t0);
    if (ws->training)
        ws->fwd_B = B;
    return PLSTM_OK;
}

plstm_status plstm_vision_backward(plstm_context *ctx, const plstm_vision_model *m,
                                   plstm_vision_workspace *ws, const void *params, int B,
                                   const void *pixels, const void *dlogits,
                                   const void *dfeatures, void *dpixels, void *grads)
{
    PLSTM_TRY(check_step(ctx, m, ws, params, B, pixels, "vision backward"));
    PLSTM_CHECK_ARG(grads && (dlogits || dfeatures),
                    "vision backward: NULL gradients or no cotangent");
    PLSTM_CHECK_ARG(ws->training, "vision backward: the workspace was created for inference");
    PLSTM_CHECK_ARG(ws->fwd_B == B,
                    "vision backward: needs a forward of the same batch (%d images) first", B);
    const plstm_vision_config *c = &m->cfg;
    const plstm_dtype dt = ws->dtype;
    const size_t e = ws->esz;
    const int X = ws->X, Y = ws->Y, D = c->dim, N = B * X * Y;
    void *buf = ws->buf;
    double *sec = ws->timing ? ws->sec : NULL;
    double t0 = ws->timing ? omp_get_wtime() : 0;
    const size_t nf = (size_t)B * m->Dp;

    void *df = at(buf, e, ws->df), *g0 = at(buf, e, ws->g0), *g1 = at(buf, e, ws->g1);
    if (dlogits)
        PLSTM_TRY(plstm_linear_backward(ctx, dt, B, m->Dp, c->num_classes, at(buf, e, ws->f),
                                        cat(params, e, m->head_w), dlogits, df,
                                        at(grads, e, m->head_w), at(grads, e, m->head_b)));
    else
        memset(df, 0, nf * e);
    if (dfeatures)
        PLSTM_TRY(plstm_add(ctx, dt, nf, df, dfeatures, df));
    PLSTM_TRY(plstm_pool_backward(ctx, dt, c->pooling, B, X, Y, D, df, g0));
    lap(ws, PLSTM_VPART_HEAD, &t0);
    PLSTM_TRY(plstm_norm_backward(ctx, dt, PLSTM_NORM_RMS, N, D, 1, c->norm_eps,
                                  xs_at(ws, m->nb), cat(params, e, m->norm), g0, g1,
                                  at(grads, e, m->norm), NULL));
    lap(ws, PLSTM_VPART_NORM, &t0);
    void *work = at(buf, e, ws->work);
    void *g = g1, *h = g0;
    for (int i = m->nb - 1; i >= 0; i--) {
        const void *acts = at(buf, e, ws->acts + (size_t)i * ws->acts_stride);
        PLSTM_TRY(plstm_postup_backward_timed(ctx, &m->blocks[i], dt, params, B, X, Y,
                                              xs_at(ws, i), acts, g, h, grads, work, sec));
        void *t = g;
        g = h, h = t;
    }
    if (ws->timing)
        t0 = omp_get_wtime();
    if (m->pos != PLSTM_NO_PARAM) {
        const size_t M = (size_t)X * Y * D;
        if (X == m->X0 && Y == m->Y0) {
            PLSTM_TRY(plstm_broadcast_add_backward(ctx, dt, B, (int)M, g, at(grads, e, m->pos)));
        } else {
            void *dpe = at(buf, e, ws->dpe), *dpos = at(buf, e, ws->dpos);
            memset(dpe, 0, M * e);
            PLSTM_TRY(plstm_broadcast_add_backward(ctx, dt, B, (int)M, g, dpe));
            PLSTM_TRY(plstm_resize_backward(ctx, dt, c->pos_resize, 1, m->X0, m->Y0, X, Y, D, dpe,
                                            dpos));
            PLSTM_TRY(plstm_axpy(ctx, dt, (size_t)m->X0 * m->Y0 * D, 1.0, dpos,
                                 at(grads, e, m->pos)));
        }
    }
    /* the patch embedding, then the stem stages backwards */
    const void *sin = conv_stem_output(&m->stem, &ws->stem, dt, buf, pixels);
    PLSTM_TRY(plstm_patch_embed_backward(
        ctx, dt, B, ws->H / m->shrink, ws->W / m->shrink, conv_stem_out_channels(&m->stem), D,
        m->pp, m->stride / m->shrink, sin, cat(params, e, m->pe_w), g,
        conv_stem_output_grad(&m->stem, &ws->stem, dt, buf, dpixels), at(grads, e, m->pe_w),
        at(grads, e, m->pe_b)));
    PLSTM_TRY(conv_stem_backward(ctx, &m->stem, &ws->stem, dt, params, buf, B, pixels, dpixels,
                                 grads));
    lap(ws, PLSTM_VPART_EMBED, &t0);
    return PLSTM_OK;
}
