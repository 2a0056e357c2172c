/* The ViT baseline (experiments.md §2.3, plstm-math.md §7.5, §7.7): patch
 * embedding + position embedding (resized for other grids), CLS token,
 * TransformerBlocks, final RMSNorm on the CLS token, head. Configuration and
 * presets, the model with its workspace, and the classifier interface.
 * Because only the CLS token reaches the head, the final norm runs on the
 * pooled CLS rows alone (the norm is per token, so this is the same map). */
#include "plstm/vit.h"
#include "plstm/train.h"
#include "core/status_internal.h"
#include "layers/conv_stem.h"

#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void *at(void *buf, size_t esz, size_t off) { return (char *)buf + off * esz; }
static const void *cat(const void *buf, size_t esz, size_t off)
{
    return (const char *)buf + off * esz;
}

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

/* ======================================================================== */
/* Configuration                                                            */
/* ======================================================================== */

static plstm_vit_config vit_ape(void)
{
    plstm_vit_config c;
    memset(&c, 0, sizeof c);
    c.dim = 192, c.num_heads = 6, c.depth = 12;
    c.patch_size = 16;
    c.image_size[0] = c.image_size[1] = 192;
    c.num_channels = 3, c.num_classes = 2;
    c.layerscale_init = 1.0;
    c.use_pos_embed = 1;
    c.pos_resize = PLSTM_RESIZE_BICUBIC_JAX;
    c.mlp_activation = PLSTM_ACT_GELU_TANH;
    c.projection_scaling = 4, c.projection_round = 64;
    c.norm_eps = 1e-5;
    return c;
}

plstm_vit_config plstm_vit_config_default(void) { return vit_ape(); }

static const char *const preset_names[] = {"vit-ape", "vit-tiny", NULL};

const char *const *plstm_vit_preset_names(void) { return preset_names; }

plstm_status plstm_vit_preset(const char *name, plstm_vit_config *cfg)
{
    PLSTM_CHECK_ARG(name && cfg, "plstm_vit_preset: NULL argument");
    plstm_vit_config c = vit_ape();
    if (!strcasecmp(name, "vit-ape")) {
    } else if (!strcasecmp(name, "vit-tiny")) {
        c.dim = 16, c.num_heads = 2, c.depth = 2, c.patch_size = 4;
        c.image_size[0] = c.image_size[1] = 16;
    } else {
        return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT,
                          "unknown ViT preset \"%s\" (known: vit-ape, vit-tiny)", name);
    }
    *cfg = c;
    return PLSTM_OK;
}

plstm_status plstm_vit_config_check(const plstm_vit_config *c)
{
    PLSTM_CHECK_ARG(c, "ViT config: NULL");
    PLSTM_CHECK_ARG(c->dim >= 1 && c->dim <= (1 << 16), "ViT config: dim %d must be in 1..65536",
                    c->dim);
    PLSTM_CHECK_ARG(c->num_heads >= 1 && c->dim % c->num_heads == 0,
                    "ViT config: num_heads %d must be >= 1 and divide dim %d", c->num_heads,
                    c->dim);
    PLSTM_CHECK_ARG(c->depth >= 1 && c->depth <= 4096, "ViT config: depth %d must be in 1..4096",
                    c->depth);
    PLSTM_CHECK_ARG(c->patch_size >= 1 && c->patch_size <= 4096,
                    "ViT config: patch_size %d must be in 1..4096", c->patch_size);
    for (int i = 0; i < 2; i++)
        PLSTM_CHECK_ARG(c->image_size[i] >= c->patch_size && c->image_size[i] <= (1 << 16) &&
                            c->image_size[i] % c->patch_size == 0,
                        "ViT config: image size %dx%d is not divisible by the patch size %d",
                        c->image_size[0], c->image_size[1], c->patch_size);
    PLSTM_CHECK_ARG(c->num_channels >= 1 && c->num_channels <= 4096,
                    "ViT config: num_channels %d must be in 1..4096", c->num_channels);
    PLSTM_CHECK_ARG(c->num_classes >= 1 && c->num_classes <= (1 << 24),
                    "ViT config: num_classes %d must be >= 1", c->num_classes);
    PLSTM_CHECK_ARG(isfinite(c->layerscale_init), "ViT config: layerscale_init must be finite");
    PLSTM_CHECK_ARG(c->pos_resize == PLSTM_RESIZE_BICUBIC_TORCH ||
                        c->pos_resize == PLSTM_RESIZE_BICUBIC_JAX,
                    "ViT config: unknown pos_resize %d", (int)c->pos_resize);
    PLSTM_CHECK_ARG(c->mlp_activation == PLSTM_ACT_GELU ||
                        c->mlp_activation == PLSTM_ACT_GELU_TANH ||
                        c->mlp_activation == PLSTM_ACT_SILU,
                    "ViT config: unknown mlp_activation %d", (int)c->mlp_activation);
    PLSTM_CHECK_ARG(c->projection_scaling >= 1 && c->projection_scaling <= 64 &&
                        c->projection_round >= 1 && c->projection_round <= 4096,
                    "ViT config: projection_scaling %d (1..64) / projection_round %d (1..4096)",
                    c->projection_scaling, c->projection_round);
    PLSTM_CHECK_ARG(c->norm_eps > 0 && isfinite(c->norm_eps), "ViT config: norm_eps must be > 0");
    return conv_stem_check("ViT config", c->stem_stages, c->stem_channels, c->stem_strides,
                           c->stem_kernel, c->stem_norm, c->patch_size, 0);
}

static conv_stem_fields stem_fields(plstm_vit_config *c)
{
    return (conv_stem_fields){&c->stem_stages, c->stem_channels, c->stem_strides, &c->stem_kernel,
                              &c->stem_norm};
}

/* ---- JSON --------------------------------------------------------------- */

typedef struct vit_int_field {
    const char *key;
    size_t off;
} vit_int_field;

static const vit_int_field int_fields[] = {
    {"dim", offsetof(plstm_vit_config, dim)},
    {"num_heads", offsetof(plstm_vit_config, num_heads)},
    {"depth", offsetof(plstm_vit_config, depth)},
    {"patch_size", offsetof(plstm_vit_config, patch_size)},
    {"num_channels", offsetof(plstm_vit_config, num_channels)},
    {"num_classes", offsetof(plstm_vit_config, num_classes)},
    {"use_pos_embed", offsetof(plstm_vit_config, use_pos_embed)},
    {"projection_scaling", offsetof(plstm_vit_config, projection_scaling)},
    {"projection_round", offsetof(plstm_vit_config, projection_round)},
};
static const vit_int_field real_fields[] = {
    {"layerscale_init", offsetof(plstm_vit_config, layerscale_init)},
    {"norm_eps", offsetof(plstm_vit_config, norm_eps)},
};
#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

plstm_status plstm_vit_config_to_json(const plstm_vit_config *c, char **json)
{
    PLSTM_CHECK_ARG(c && json, "plstm_vit_config_to_json: NULL argument");
    *json = NULL;
    json_t *o = json_object();
    if (!o)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate JSON");
    for (size_t i = 0; i < NFIELDS(int_fields); i++)
        json_object_set_new(o, int_fields[i].key,
                            json_integer(*(const int *)((const char *)c + int_fields[i].off)));
    for (size_t i = 0; i < NFIELDS(real_fields); i++)
        json_object_set_new(o, real_fields[i].key,
                            json_real(*(const double *)((const char *)c + real_fields[i].off)));
    json_object_set_new(o, "image_size", json_pack("[ii]", c->image_size[0], c->image_size[1]));
    json_object_set_new(o, "pos_resize",
                        json_string(c->pos_resize == PLSTM_RESIZE_BICUBIC_JAX ? "jax" : "torch"));
    const char *act = c->mlp_activation == PLSTM_ACT_GELU_TANH ? "gelu_tanh"
                      : c->mlp_activation == PLSTM_ACT_SILU    ? "silu"
                                                                : "gelu";
    json_object_set_new(o, "mlp_activation", json_string(act));
    conv_stem_json_put(o, c->stem_stages, c->stem_channels, c->stem_strides, c->stem_kernel,
                       c->stem_norm);
    *json = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (!*json)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot write the ViT config as JSON");
    return PLSTM_OK;
}

static plstm_status set_field(plstm_vit_config *c, const char *key, json_t *v)
{
    const conv_stem_fields sf = stem_fields(c);
    plstm_status st = PLSTM_OK;
    if (conv_stem_json_set("ViT config", &sf, key, v, &st))
        return st;
    for (size_t i = 0; i < NFIELDS(int_fields); i++) {
        if (strcmp(key, int_fields[i].key))
            continue;
        int ok = json_is_integer(v) && json_integer_value(v) >= -2147483647 &&
                 json_integer_value(v) <= 2147483647;
        int *dst = (int *)((char *)c + int_fields[i].off);
        if (!ok && json_is_boolean(v) && !strcmp(key, "use_pos_embed")) {
            *dst = json_is_true(v);
            return PLSTM_OK;
        }
        PLSTM_CHECK_ARG(ok, "ViT config: \"%s\" must be an integer", key);
        *dst = (int)json_integer_value(v);
        return PLSTM_OK;
    }
    for (size_t i = 0; i < NFIELDS(real_fields); i++) {
        if (strcmp(key, real_fields[i].key))
            continue;
        PLSTM_CHECK_ARG(json_is_number(v), "ViT config: \"%s\" must be a number", key);
        *(double *)((char *)c + real_fields[i].off) = json_number_value(v);
        return PLSTM_OK;
    }
    if (!strcmp(key, "image_size") || !strcmp(key, "resolution")) {
        if (json_is_integer(v)) {
            c->image_size[0] = c->image_size[1] = (int)json_integer_value(v);
            return PLSTM_OK;
        }
        PLSTM_CHECK_ARG(json_is_array(v) && json_array_size(v) == 2 &&
                            json_is_integer(json_array_get(v, 0)) &&
                            json_is_integer(json_array_get(v, 1)),
                        "ViT config: \"%s\" must be [H, W] or an integer", key);
        c->image_size[0] = (int)json_integer_value(json_array_get(v, 0));
        c->image_size[1] = (int)json_integer_value(json_array_get(v, 1));
        return PLSTM_OK;
    }
    const char *s = json_string_value(v);
    if (!strcmp(key, "pos_resize")) {
        if (s && !strcasecmp(s, "torch"))
            c->pos_resize = PLSTM_RESIZE_BICUBIC_TORCH;
        else if (s && !strcasecmp(s, "jax"))
            c->pos_resize = PLSTM_RESIZE_BICUBIC_JAX;
        else
            return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT,
                              "ViT config: \"pos_resize\" must be \"torch\" or \"jax\"");
        return PLSTM_OK;
    }
    if (!strcmp(key, "mlp_activation")) {
        if (s && !strcasecmp(s, "gelu"))
            c->mlp_activation = PLSTM_ACT_GELU;
        else if (s && !strcasecmp(s, "gelu_tanh"))
            c->mlp_activation = PLSTM_ACT_GELU_TANH;
        else if (s && !strcasecmp(s, "silu"))
            c->mlp_activation = PLSTM_ACT_SILU;
        else
            return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT,
                              "ViT config: \"mlp_activation\" must be \"gelu\", \"gelu_tanh\" "
                              "or \"silu\"");
        return PLSTM_OK;
    }
    return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "ViT config: unknown key \"%s\"", key);
}

plstm_status plstm_vit_config_from_json(const char *json, const plstm_vit_config *base,
                                        plstm_vit_config *cfg)
{
    PLSTM_CHECK_ARG(json && cfg, "plstm_vit_config_from_json: NULL argument");
    json_error_t err;
    json_t *o = json_loads(json, 0, &err);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "ViT config: not a JSON object (%s)",
                          o ? "other value" : err.text);
    }
    plstm_vit_config c = base ? *base : plstm_vit_config_default();
    plstm_status s = PLSTM_OK;
    json_t *preset = json_object_get(o, "preset");
    if (preset) {
        s = json_is_string(preset)
                ? plstm_vit_preset(json_string_value(preset), &c)
                : plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "ViT config: \"preset\" must be a string");
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        if (s != PLSTM_OK)
            break;
        if (strcmp(key, "preset"))
            s = set_field(&c, key, v);
    }
    json_decref(o);
    if (s == PLSTM_OK)
        s = plstm_vit_config_check(&c);
    if (s == PLSTM_OK)
        *cfg = c;
    return s;
}

/* ======================================================================== */
/* Model                                                                    */
/* ======================================================================== */

struct plstm_vit_model {
    plstm_vit_config cfg;
    plstm_params *p;
    int X0, Y0;
    plstm_transformer_block *blocks;
    size_t pe_w, pe_b, cls, pos, norm, head_w, head_b;
    conv_stem stem;
    int pp, shrink; /* patch size after the stem; the stem's size reduction */
};

static plstm_status declare_all(plstm_vit_model *m)
{
    const plstm_vit_config *c = &m->cfg;
    const int D = c->dim, p = m->pp;
    plstm_params *P = m->p;
    const unsigned ND = PLSTM_PARAM_NO_DECAY;
    PLSTM_TRY(conv_stem_declare(&m->stem, P));
    const int64_t spw[4] = {D, conv_stem_out_channels(&m->stem), p, p}, sD[1] = {D},
                  scls[2] = {D, 1};
    PLSTM_TRY(plstm_params_declare(P, "patch_embed.proj.weight", 4, spw, 0, &m->pe_w));
    PLSTM_TRY(plstm_params_declare(P, "patch_embed.proj.bias", 1, sD, ND, &m->pe_b));
    PLSTM_TRY(plstm_params_declare(P, "cls_token", 2, scls, ND, &m->cls));
    m->pos = (size_t)-1;
    if (c->use_pos_embed) {
        const int64_t sp[4] = {1, m->X0, m->Y0, D};
        PLSTM_TRY(plstm_params_declare(P, "pos_embed.embed", 4, sp, ND, &m->pos));
    }
    plstm_transformer_block_config bc = plstm_transformer_block_config_default(D, c->num_heads);
    bc.projection_scaling = c->projection_scaling;
    bc.projection_round = c->projection_round;
    bc.act = c->mlp_activation;
    bc.norm_eps = c->norm_eps;
    bc.layerscale_init = c->layerscale_init;
    for (int i = 0; i < c->depth; i++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "block_stack.blocks.%d", i);
        PLSTM_TRY(plstm_transformer_block_declare(&m->blocks[i], &bc, P, prefix));
    }
    const int64_t sh[2] = {c->num_classes, D}, sc[1] = {c->num_classes};
    PLSTM_TRY(plstm_params_declare(P, "norm.scale", 1, sD, ND, &m->norm));
    PLSTM_TRY(plstm_params_declare(P, "head.weight", 2, sh, 0, &m->head_w));
    PLSTM_TRY(plstm_params_declare(P, "head.bias", 1, sc, ND, &m->head_b));
    return PLSTM_OK;
}

plstm_status plstm_vit_model_create(plstm_vit_model **out, const plstm_vit_config *cfg)
{
    PLSTM_CHECK_ARG(out && cfg, "plstm_vit_model_create: NULL argument");
    *out = NULL;
    PLSTM_TRY(plstm_vit_config_check(cfg));
    plstm_vit_model *m = calloc(1, sizeof *m);
    if (!m)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate the ViT model");
    m->cfg = *cfg;
    m->X0 = cfg->image_size[0] / cfg->patch_size;
    m->Y0 = cfg->image_size[1] / cfg->patch_size;
    conv_stem_setup(&m->stem, cfg->stem_stages, cfg->stem_channels, cfg->stem_strides,
                    cfg->stem_kernel, cfg->stem_norm, cfg->norm_eps, cfg->num_channels);
    m->shrink = conv_stem_shrink(&m->stem);
    m->pp = cfg->patch_size / m->shrink;
    m->blocks = calloc((size_t)cfg->depth, sizeof *m->blocks);
    plstm_status s = m->blocks ? plstm_params_create(&m->p)
                               : plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate ViT blocks");
    if (s == PLSTM_OK)
        s = declare_all(m);
    if (s != PLSTM_OK) {
        plstm_vit_model_destroy(m);
        return s;
    }
    *out = m;
    return PLSTM_OK;
}

void plstm_vit_model_destroy(plstm_vit_model *m)
{
    if (!m)
        return;
    plstm_params_destroy(m->p);
    free(m->blocks);
    free(m);
}

const plstm_vit_config *plstm_vit_model_config(const plstm_vit_model *m)
{
    return m ? &m->cfg : NULL;
}

const plstm_params *plstm_vit_model_params(const plstm_vit_model *m) { return m ? m->p : NULL; }

plstm_status plstm_vit_model_grid(const plstm_vit_model *m, int H, int W, int *X, int *Y)
{
    PLSTM_CHECK_ARG(m && X && Y, "plstm_vit_model_grid: NULL argument");
    const int p = m->cfg.patch_size;
    PLSTM_CHECK_ARG(H >= p && W >= p && H <= (1 << 16) && W <= (1 << 16) && H % p == 0 &&
                        W % p == 0,
                    "ViT: image %dx%d is not divisible by the patch size %d (or too large)", H, W,
                    p);
    *X = H / p;
    *Y = W / p;
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
                        plstm_rng *r)
{
    for (size_t i = 0; i < n; i++)
        set(buf, dt, off + i, sigma * plstm_rng_normal(r));
}

static void fill_const(void *buf, plstm_dtype dt, size_t off, size_t n, double v)
{
    for (size_t i = 0; i < n; i++)
        set(buf, dt, off + i, v);
}

plstm_status plstm_vit_model_init(const plstm_vit_model *m, void *params, plstm_dtype dtype,
                                  uint64_t seed)
{
    PLSTM_CHECK_ARG(m && params, "plstm_vit_model_init: NULL argument");
    PLSTM_CHECK_ARG(dtype == PLSTM_F32 || dtype == PLSTM_F64,
                    "plstm_vit_model_init: dtype must be F32 or F64");
    const plstm_vit_config *c = &m->cfg;
    const size_t D = (size_t)c->dim, p = (size_t)m->pp;
    const size_t C = (size_t)conv_stem_out_channels(&m->stem);
    memset(params, 0, plstm_params_size(m->p) * plstm_dtype_size(dtype));
    plstm_rng r;
    plstm_rng_seed(&r, seed, 0x766974ull); /* "vit" stream */
    conv_stem_init(&m->stem, params, dtype, &r); /* draws nothing without a stem */
    const double sd = 1.0 / sqrt(2.5 * (double)D);
    fill_normal(params, dtype, m->pe_w, D * C * p * p, 1.0 / sqrt(2.5 * (double)(C * p * p)), &r);
    fill_const(params, dtype, m->pe_b, D, 0.0);
    /* both references apply SmallInit over the last axis of the [dim, 1] tensor: fan 1 */
    fill_normal(params, dtype, m->cls, D, 1.0 / sqrt(2.5), &r);
    if (m->pos != (size_t)-1)
        fill_normal(params, dtype, m->pos, (size_t)m->X0 * m->Y0 * D, sd, &r);
    for (int i = 0; i < c->depth; i++)
        PLSTM_TRY(plstm_transformer_block_init(&m->blocks[i], params, dtype, plstm_rng_u64(&r)));
    fill_const(params, dtype, m->norm, D, 1.0);
    fill_normal(params, dtype, m->head_w, (size_t)c->num_classes * D, sd, &r);
    fill_const(params, dtype, m->head_b, (size_t)c->num_classes, 0.0);
    return PLSTM_OK;
}

plstm_status plstm_vit_pos_embed(plstm_context *ctx, const plstm_vit_model *m, plstm_dtype dtype,
                                 const void *params, int X, int Y, void *out)
{
    PLSTM_CHECK_ARG(ctx && m && params && out, "plstm_vit_pos_embed: NULL argument");
    PLSTM_CHECK_ARG(m->pos != (size_t)-1, "ViT: the model has no position embedding");
    PLSTM_CHECK_ARG(X >= 1 && Y >= 1, "plstm_vit_pos_embed: grid %dx%d", X, Y);
    const size_t e = plstm_dtype_size(dtype);
    if (X == m->X0 && Y == m->Y0) {
        memcpy(out, cat(params, e, m->pos), (size_t)X * Y * m->cfg.dim * e);
        return PLSTM_OK;
    }
    return plstm_resize_forward(ctx, dtype, m->cfg.pos_resize, 1, m->X0, m->Y0, X, Y, m->cfg.dim,
                                cat(params, e, m->pos), out);
}

/* ======================================================================== */
/* Workspace                                                                */
/* ======================================================================== */

struct plstm_vit_workspace {
    const plstm_vit_model *m;
    plstm_dtype dtype;
    size_t esz;
    int Bmax, H, W, X, Y, T, training;
    void *buf;
    size_t total;
    /* element offsets for Bmax images */
    size_t pe, posr, xs, xs_stride, nxs, acts, acts_stride, f, z, work;
    size_t g0, g1, dz, df, dpe, dposr;
    conv_stem_ws stem;
    int fwd_B; /* batch of the last training forward, 0 if none */
};

plstm_status plstm_vit_workspace_create(plstm_vit_workspace **out, const plstm_vit_model *m,
                                        plstm_dtype dtype, int max_batch, int H, int W,
                                        int training)
{
    PLSTM_CHECK_ARG(out && m, "plstm_vit_workspace_create: NULL argument");
    *out = NULL;
    PLSTM_CHECK_ARG(dtype == PLSTM_F32 || dtype == PLSTM_F64,
                    "ViT workspace: dtype must be F32 or F64");
    PLSTM_CHECK_ARG(max_batch >= 1, "ViT workspace: batch %d must be >= 1", max_batch);
    int X = 0, Y = 0;
    PLSTM_TRY(plstm_vit_model_grid(m, H, W, &X, &Y));
    const int T = 1 + X * Y, D = m->cfg.dim;
    const plstm_transformer_block *L0 = &m->blocks[0];
    PLSTM_CHECK_ARG((double)max_batch * T * (L0->inner + 8.0 * D) < 2e9 &&
                        (double)max_batch * H * W * m->cfg.num_channels < 2e9,
                    "ViT workspace: batch %d at %dx%d is too large", max_batch, H, W);
    plstm_vit_workspace *ws = calloc(1, sizeof *ws);
    if (!ws)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate the ViT workspace");
    ws->m = m, ws->dtype = dtype, ws->esz = plstm_dtype_size(dtype);
    ws->Bmax = max_batch, ws->H = H, ws->W = W, ws->X = X, ws->Y = Y, ws->T = T;
    ws->training = training != 0;
    const int B = max_batch, depth = m->cfg.depth;
    const size_t P = (size_t)X * Y, BP = (size_t)B * P * D, BT = (size_t)B * T * D;
    /* all blocks have the same configuration, so the same sizes */
    const size_t act = plstm_transformer_block_activation_size(L0, B, T);
    const size_t work = plstm_transformer_block_work_size(L0, B, T);
    size_t o = 0;
    ws->pe = o, o += align16(BP);
    ws->posr = o, o += align16(P * D);
    ws->xs_stride = align16(BT);
    ws->nxs = ws->training ? (size_t)depth + 1 : 2;
    ws->xs = o, o += ws->nxs * ws->xs_stride;
    ws->acts_stride = ws->training ? align16(act) : 0;
    ws->acts = o, o += (size_t)depth * ws->acts_stride;
    ws->f = o, o += align16((size_t)B * D);
    ws->z = o, o += align16((size_t)B * D);
    ws->work = o, o += align16(work);
    if (ws->training) {
        ws->g0 = o, o += align16(BT);
        ws->g1 = o, o += align16(BT);
        ws->dz = o, o += align16((size_t)B * D);
        ws->df = o, o += align16((size_t)B * D);
        ws->dpe = o, o += align16(BP);
        ws->dposr = o, o += align16((size_t)m->X0 * m->Y0 * D);
    }
    o = conv_stem_layout(&m->stem, B, H, W, ws->training, o, &ws->stem);
    ws->total = o;
    const size_t bytes = ((o ? o : 1) * ws->esz + 63) & ~(size_t)63;
    ws->buf = aligned_alloc(64, bytes);
    if (!ws->buf) {
        free(ws);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes of ViT workspace",
                          bytes);
    }
    memset(ws->buf, 0, bytes);
    *out = ws;
    return PLSTM_OK;
}

void plstm_vit_workspace_destroy(plstm_vit_workspace *ws)
{
    if (!ws)
        return;
    free(ws->buf);
    free(ws);
}

size_t plstm_vit_workspace_bytes(const plstm_vit_workspace *ws)
{
    return ws ? ws->total * ws->esz : 0;
}

/* ======================================================================== */
/* Forward / backward                                                       */
/* ======================================================================== */

static plstm_status check_step(plstm_context *ctx, const plstm_vit_model *m,
                               const plstm_vit_workspace *ws, const void *params, int B,
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
static void *xs_at(plstm_vit_workspace *ws, int i)
{
    const size_t k = ws->training ? (size_t)i : (size_t)(i & 1);
    return at(ws->buf, ws->esz, ws->xs + k * ws->xs_stride);
}

plstm_status plstm_vit_forward(plstm_context *ctx, const plstm_vit_model *m,
                               plstm_vit_workspace *ws, const void *params, int B,
                               const void *pixels, void *logits)
{
    PLSTM_TRY(check_step(ctx, m, ws, params, B, pixels, "ViT forward"));
    PLSTM_CHECK_ARG(logits, "ViT forward: NULL logits");
    const plstm_vit_config *c = &m->cfg;
    const plstm_dtype dt = ws->dtype;
    const size_t e = ws->esz;
    const int X = ws->X, Y = ws->Y, T = ws->T, D = c->dim, PD = X * Y * D;
    void *buf = ws->buf;
    ws->fwd_B = 0;

    void *pe = at(buf, e, ws->pe), *x0 = xs_at(ws, 0);
    const void *in = NULL;
    PLSTM_TRY(conv_stem_forward(ctx, &m->stem, &ws->stem, dt, params, buf, B, pixels, &in));
    PLSTM_TRY(plstm_patch_embed_forward(ctx, dt, B, ws->H / m->shrink, ws->W / m->shrink,
                                        conv_stem_out_channels(&m->stem), D, m->pp, m->pp, in,
                                        cat(params, e, m->pe_w), cat(params, e, m->pe_b), pe));
    if (m->pos != (size_t)-1) {
        const void *pos = cat(params, e, m->pos);
        if (X != m->X0 || Y != m->Y0) {
            PLSTM_TRY(plstm_vit_pos_embed(ctx, m, dt, params, X, Y, at(buf, e, ws->posr)));
            pos = at(buf, e, ws->posr);
        }
        PLSTM_TRY(plstm_broadcast_add_forward(ctx, dt, B, PD, pe, pos, pe));
    }
    /* tokens [B, T, D]: the CLS token, then the patches */
    for (int b = 0; b < B; b++) {
        char *row = at(x0, e, (size_t)b * T * D);
        memcpy(row, cat(params, e, m->cls), (size_t)D * e);
        memcpy(row + (size_t)D * e, cat(pe, e, (size_t)b * PD), (size_t)PD * e);
    }
    void *work = at(buf, e, ws->work);
    for (int i = 0; i < c->depth; i++) {
        void *acts = ws->training ? at(buf, e, ws->acts + (size_t)i * ws->acts_stride) : NULL;
        PLSTM_TRY(plstm_transformer_block_forward(ctx, &m->blocks[i], dt, params, B, T,
                                                  xs_at(ws, i), xs_at(ws, i + 1), acts, work));
    }
    void *f = at(buf, e, ws->f), *z = at(buf, e, ws->z);
    PLSTM_TRY(plstm_pool_forward(ctx, dt, PLSTM_POOL_FIRST, B, T, 1, D, xs_at(ws, c->depth), f));
    PLSTM_TRY(plstm_norm_forward(ctx, dt, PLSTM_NORM_RMS, B, D, 1, c->norm_eps, f,
                                 cat(params, e, m->norm), NULL, z));
    PLSTM_TRY(plstm_linear_forward(ctx, dt, B, D, c->num_classes, z, cat(params, e, m->head_w),
                                   cat(params, e, m->head_b), logits));
    if (ws->training)
        ws->fwd_B = B;
    return PLSTM_OK;
}

plstm_status plstm_vit_backward(plstm_context *ctx, const plstm_vit_model *m,
                                plstm_vit_workspace *ws, const void *params, int B,
                                const void *pixels, const void *dlogits, void *dpixels,
                                void *grads)
{
    PLSTM_TRY(check_step(ctx, m, ws, params, B, pixels, "ViT backward"));
    PLSTM_CHECK_ARG(grads && dlogits, "ViT backward: NULL gradients or dlogits");
    PLSTM_CHECK_ARG(ws->training, "ViT backward: the workspace was created for inference");
    PLSTM_CHECK_ARG(ws->fwd_B == B,
                    "ViT backward: needs a training forward of the same batch (%d images) first",
                    B);
    const plstm_vit_config *c = &m->cfg;
    const plstm_dtype dt = ws->dtype;
    const size_t e = ws->esz;
    const int X = ws->X, Y = ws->Y, T = ws->T, D = c->dim, PD = X * Y * D;
    void *buf = ws->buf;

    void *dz = at(buf, e, ws->dz), *df = at(buf, e, ws->df);
    void *g = at(buf, e, ws->g0), *h = at(buf, e, ws->g1);
    PLSTM_TRY(plstm_linear_backward(ctx, dt, B, D, c->num_classes, at(buf, e, ws->z),
                                    cat(params, e, m->head_w), dlogits, dz,
                                    at(grads, e, m->head_w), at(grads, e, m->head_b)));
    PLSTM_TRY(plstm_norm_backward(ctx, dt, PLSTM_NORM_RMS, B, D, 1, c->norm_eps,
                                  at(buf, e, ws->f), cat(params, e, m->norm), dz, df,
                                  at(grads, e, m->norm), NULL));
    PLSTM_TRY(plstm_pool_backward(ctx, dt, PLSTM_POOL_FIRST, B, T, 1, D, df, g));
    void *work = at(buf, e, ws->work);
    for (int i = c->depth - 1; i >= 0; i--) {
        const void *acts = at(buf, e, ws->acts + (size_t)i * ws->acts_stride);
        PLSTM_TRY(plstm_transformer_block_backward(ctx, &m->blocks[i], dt, params, B, T,
                                                   xs_at(ws, i), acts, g, h, grads, work));
        void *t = g;
        g = h, h = t;
    }
    /* split the token gradient: CLS rows into the CLS token, patches into dpe */
    void *dpe = at(buf, e, ws->dpe);
    for (int b = 0; b < B; b++) {
        const char *row = cat(g, e, (size_t)b * T * D);
        PLSTM_TRY(plstm_axpy(ctx, dt, (size_t)D, 1.0, row, at(grads, e, m->cls)));
        memcpy(at(dpe, e, (size_t)b * PD), row + (size_t)D * e, (size_t)PD * e);
    }
    if (m->pos != (size_t)-1) {
        if (X == m->X0 && Y == m->Y0) {
            PLSTM_TRY(plstm_broadcast_add_backward(ctx, dt, B, PD, dpe, at(grads, e, m->pos)));
        } else { /* dposr = Σ_b dpe; pos grad += resizeᵀ(dposr) */
            void *dposr = at(buf, e, ws->posr), *dpos = at(buf, e, ws->dposr);
            memset(dposr, 0, (size_t)PD * e);
            PLSTM_TRY(plstm_broadcast_add_backward(ctx, dt, B, PD, dpe, dposr));
            PLSTM_TRY(plstm_resize_backward(ctx, dt, c->pos_resize, 1, m->X0, m->Y0, X, Y, D,
                                            dposr, dpos));
            PLSTM_TRY(plstm_axpy(ctx, dt, (size_t)m->X0 * m->Y0 * D, 1.0, dpos,
                                 at(grads, e, m->pos)));
        }
    }
    PLSTM_TRY(plstm_patch_embed_backward(
        ctx, dt, B, ws->H / m->shrink, ws->W / m->shrink, conv_stem_out_channels(&m->stem), D,
        m->pp, m->pp, conv_stem_output(&m->stem, &ws->stem, dt, buf, pixels),
        cat(params, e, m->pe_w), dpe, conv_stem_output_grad(&m->stem, &ws->stem, dt, buf, dpixels),
        at(grads, e, m->pe_w), at(grads, e, m->pe_b)));
    return conv_stem_backward(ctx, &m->stem, &ws->stem, dt, params, buf, B, pixels, dpixels,
                              grads);
}

/* ======================================================================== */
/* Classifier interface                                                     */
/* ======================================================================== */

typedef struct vit_classifier {
    plstm_classifier base;
    plstm_vit_model *m;
    plstm_vit_workspace *train_ws, *eval_ws;
    float *pixels; /* copy of the last training batch, for backward */
    size_t pixels_cap;
    char *json;
} vit_classifier;

/* Keeps *ws able to take B images of H×W (grown, never shrunk in batch). */
static plstm_status ensure_ws(vit_classifier *v, plstm_vit_workspace **ws, int B, int H, int W,
                              int training)
{
    plstm_vit_workspace *w = *ws;
    if (w && w->H == H && w->W == W && w->Bmax >= B)
        return PLSTM_OK;
    const int Bmax = (w && w->H == H && w->W == W && w->Bmax > B) ? w->Bmax : B;
    plstm_vit_workspace_destroy(w);
    *ws = NULL;
    return plstm_vit_workspace_create(ws, v->m, PLSTM_F32, Bmax, H, W, training);
}

static plstm_status cls_forward(plstm_classifier *cm, plstm_context *ctx, const float *params,
                                int B, int H, int W, const float *pixels, float *logits,
                                int training)
{
    PLSTM_CHECK_ARG(cm && cm->impl && params && pixels && logits,
                    "ViT classifier forward: NULL argument");
    vit_classifier *v = cm->impl;
    PLSTM_CHECK_ARG(B >= 1, "ViT classifier forward: batch %d must be >= 1", B);
    if (!training) {
        PLSTM_TRY(ensure_ws(v, &v->eval_ws, B, H, W, 0));
        return plstm_vit_forward(ctx, v->m, v->eval_ws, params, B, pixels, logits);
    }
    PLSTM_TRY(ensure_ws(v, &v->train_ws, B, H, W, 1));
    const size_t n = (size_t)B * H * W * v->m->cfg.num_channels;
    if (n > v->pixels_cap) {
        free(v->pixels);
        v->pixels = malloc(n * sizeof(float));
        v->pixels_cap = v->pixels ? n : 0;
        if (!v->pixels)
            return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate the ViT pixel copy");
    }
    memcpy(v->pixels, pixels, n * sizeof(float));
    return plstm_vit_forward(ctx, v->m, v->train_ws, params, B, v->pixels, logits);
}

static plstm_status cls_backward(plstm_classifier *cm, plstm_context *ctx, const float *params,
                                 const float *dlogits, float *grads)
{
    PLSTM_CHECK_ARG(cm && cm->impl && params && dlogits && grads,
                    "ViT classifier backward: NULL argument");
    vit_classifier *v = cm->impl;
    PLSTM_CHECK_ARG(v->train_ws && v->train_ws->fwd_B > 0,
                    "ViT classifier backward: needs a training forward first");
    return plstm_vit_backward(ctx, v->m, v->train_ws, params, v->train_ws->fwd_B, v->pixels,
                              dlogits, NULL, grads);
}

static plstm_status cls_init(plstm_classifier *cm, float *params, uint64_t seed)
{
    PLSTM_CHECK_ARG(cm && cm->impl && params, "ViT classifier init: NULL argument");
    vit_classifier *v = cm->impl;
    return plstm_vit_model_init(v->m, params, PLSTM_F32, seed);
}

static void cls_destroy(plstm_classifier *cm)
{
    if (!cm)
        return;
    vit_classifier *v = cm->impl;
    plstm_vit_workspace_destroy(v->train_ws);
    plstm_vit_workspace_destroy(v->eval_ws);
    plstm_vit_model_destroy(v->m);
    free(v->pixels);
    free(v->json);
    free(v);
}

static const plstm_classifier_ops vit_classifier_ops = {
    .forward = cls_forward,
    .backward = cls_backward,
    .init = cls_init,
    .destroy = cls_destroy,
};

plstm_status plstm_vit_classifier_create(const plstm_vit_config *cfg, plstm_classifier **out)
{
    PLSTM_CHECK_ARG(cfg && out, "plstm_vit_classifier_create: NULL argument");
    *out = NULL;
    vit_classifier *v = calloc(1, sizeof *v);
    if (!v)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate the ViT classifier");
    plstm_status s = plstm_vit_model_create(&v->m, cfg);
    if (s == PLSTM_OK)
        s = plstm_vit_config_to_json(cfg, &v->json);
    if (s != PLSTM_OK) {
        plstm_vit_model_destroy(v->m);
        free(v);
        return s;
    }
    plstm_classifier *c = &v->base;
    c->ops = &vit_classifier_ops;
    c->params = v->m->p;
    c->num_classes = cfg->num_classes;
    c->channels = cfg->num_channels;
    c->train_height = cfg->image_size[0];
    c->train_width = cfg->image_size[1];
    c->name = "vit";
    c->config_json = v->json;
    c->impl = v;
    *out = c;
    return PLSTM_OK;
}
