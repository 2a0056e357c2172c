/* Vision model configurations: defaults, named presets (paper Table 1, the
 * APE model and its ablations) and the JSON form (jansson). */
#include "plstm/vision.h"
#include "core/status_internal.h"
#include "layers/conv_stem.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

plstm_vision_config plstm_vision_config_default(void)
{
    plstm_vision_config c;
    memset(&c, 0, sizeof c);
    c.dim = 128, c.num_heads = 8, c.num_blocks = 12;
    c.patch_size = 16, c.stride = 0;
    c.image_size[0] = c.image_size[1] = 224;
    c.num_channels = 3, c.num_classes = 1000;
    strcpy(c.block_mode, "PD");
    c.pooling = PLSTM_POOL_CORNERS;
    c.use_pos_embed = 1;
    c.pos_resize = PLSTM_RESIZE_BICUBIC_TORCH;
    c.mlp_activation = PLSTM_ACT_GELU;
    c.projection_scaling = 4, c.projection_round = 64;
    c.norm_eps = 1e-5, c.mhnorm_eps = 1e-5;
    c.qkv_sub_heads = 0;
    c.source_weight = c.mark_weight = c.direct_weight = 0;
    c.transition_weight = 1;
    c.gate_sub_heads = 1;
    c.map = PLSTM_HOMAP_REFERENCE;
    c.algo = PLSTM_ALGO_AUTO;
    c.source_bias_init = c.mark_bias_init = c.direct_bias_init = -5.0;
    c.pos_embed_init_std = 0.0;
    return c;
}

/* The authors' plstm_vision.yaml at a given width. */
static plstm_vision_config paper(int dim, int heads, int res, int classes)
{
    plstm_vision_config c = plstm_vision_config_default();
    c.dim = dim, c.num_heads = heads, c.num_blocks = 6;
    c.image_size[0] = c.image_size[1] = res;
    c.num_classes = classes;
    c.pos_resize = PLSTM_RESIZE_BICUBIC_JAX;
    c.mlp_activation = PLSTM_ACT_GELU_TANH;
    c.qkv_sub_heads = 1;
    c.source_weight = c.mark_weight = c.transition_weight = 1;
    c.direct_weight = 0;
    c.gate_sub_heads = 0; /* stmd_sub_heads = 4·num_heads */
    c.source_bias_init = -4.0, c.mark_bias_init = -4.0, c.direct_bias_init = -6.0;
    return c;
}

static const char *const preset_names[] = {
    "plstm-vis-t", "plstm-vis-s", "plstm-vis-b", "ape", "ape-p-only", "ape-d-only",
    "ape-no-pos", "ape-const-stm", NULL};

const char *const *plstm_vision_preset_names(void) { return preset_names; }

plstm_status plstm_vision_preset(const char *name, plstm_vision_config *cfg)
{
    PLSTM_CHECK_ARG(name && cfg, "plstm_vision_preset: NULL argument");
    plstm_vision_config c;
    if (!strcasecmp(name, "plstm-vis-t"))
        c = paper(192, 3, 224, 1000);
    else if (!strcasecmp(name, "plstm-vis-s"))
        c = paper(384, 6, 224, 1000);
    else if (!strcasecmp(name, "plstm-vis-b"))
        c = paper(768, 12, 224, 1000);
    else if (!strncasecmp(name, "ape", 3) && (!name[3] || name[3] == '-')) {
        c = paper(192, 6, 192, 2);
        const char *v = name[3] ? name + 4 : "";
        if (!*v) {
        } else if (!strcasecmp(v, "p-only"))
            strcpy(c.block_mode, "PP");
        else if (!strcasecmp(v, "d-only"))
            strcpy(c.block_mode, "DD");
        else if (!strcasecmp(v, "no-pos"))
            c.use_pos_embed = 0;
        else if (!strcasecmp(v, "const-stm"))
            c.source_weight = c.mark_weight = c.transition_weight = 0;
        else
            goto unknown;
    } else
        goto unknown;
    *cfg = c;
    return PLSTM_OK;
unknown:;
    char list[256] = "";
    for (int i = 0; preset_names[i]; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, preset_names[i], sizeof list - strlen(list) - 1);
    }
    return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "unknown vision preset '%s' (known: %s)", name,
                      list);
}

plstm_status plstm_vision_config_check(const plstm_vision_config *c)
{
    PLSTM_CHECK_ARG(c, "vision config: NULL");
    PLSTM_CHECK_ARG(c->dim >= 1 && c->dim <= 65536, "vision config: dim %d out of range 1..65536",
                    c->dim);
    PLSTM_CHECK_ARG(c->num_heads >= 1, "vision config: num_heads %d must be >= 1", c->num_heads);
    PLSTM_CHECK_ARG(c->dim % c->num_heads == 0,
                    "vision config: num_heads %d does not divide dim %d", c->num_heads, c->dim);
    PLSTM_CHECK_ARG(c->num_blocks >= 0 && c->num_blocks <= 1024,
                    "vision config: num_blocks %d out of range 0..1024", c->num_blocks);
    PLSTM_CHECK_ARG(c->patch_size >= 1 && c->patch_size <= 4096,
                    "vision config: patch_size %d out of range", c->patch_size);
    PLSTM_CHECK_ARG(c->stride >= 0 && c->stride <= 4096, "vision config: stride %d out of range",
                    c->stride);
    const int s = c->stride ? c->stride : c->patch_size;
    for (int i = 0; i < 2; i++) {
        const int n = c->image_size[i];
        PLSTM_CHECK_ARG(n >= c->patch_size && n <= (1 << 20),
                        "vision config: image size %d must be >= patch_size %d", n,
                        c->patch_size);
        PLSTM_CHECK_ARG((n - c->patch_size) % s == 0,
                        "vision config: image size %d is not tiled by patches of %d with stride "
                        "%d",
                        n, c->patch_size, s);
    }
    PLSTM_CHECK_ARG(c->num_channels >= 1 && c->num_channels <= 4096,
                    "vision config: num_channels %d out of range", c->num_channels);
    PLSTM_CHECK_ARG(c->num_classes >= 1 && c->num_classes <= (1 << 24),
                    "vision config: num_classes %d out of range", c->num_classes);
    for (int i = 0; i < 2; i++)
        PLSTM_CHECK_ARG(c->block_mode[i] == 'P' || c->block_mode[i] == 'D',
                        "vision config: block_mode '%.3s' must be two of P/D (e.g. \"PD\")",
                        c->block_mode);
    PLSTM_CHECK_ARG(c->block_mode[2] == 0, "vision config: block_mode must be two characters");
    PLSTM_CHECK_ARG(c->pooling == PLSTM_POOL_CORNERS || c->pooling == PLSTM_POOL_CENTER ||
                        c->pooling == PLSTM_POOL_MEAN,
                    "vision config: pooling must be corners, center or mean");
    PLSTM_CHECK_ARG(c->pos_resize == PLSTM_RESIZE_BICUBIC_TORCH ||
                        c->pos_resize == PLSTM_RESIZE_BICUBIC_JAX,
                    "vision config: unknown pos_resize %d", (int)c->pos_resize);
    PLSTM_CHECK_ARG(c->mlp_activation == PLSTM_ACT_GELU ||
                        c->mlp_activation == PLSTM_ACT_GELU_TANH,
                    "vision config: mlp_activation must be gelu or gelu_tanh");
    PLSTM_CHECK_ARG(c->projection_scaling >= 1 && c->projection_scaling <= 64 &&
                        c->projection_round >= 1 && c->projection_round <= 4096,
                    "vision config: projection_scaling %d / projection_round %d out of range",
                    c->projection_scaling, c->projection_round);
    PLSTM_CHECK_ARG(c->norm_eps > 0 && c->mhnorm_eps > 0, "vision config: eps must be > 0");
    PLSTM_CHECK_ARG(c->qkv_sub_heads >= 0 && c->gate_sub_heads >= 0,
                    "vision config: sub_heads must be >= 0");
    PLSTM_CHECK_ARG(c->map == PLSTM_HOMAP_REFERENCE || c->map == PLSTM_HOMAP_INTENDED,
                    "vision config: unknown head_orientation_map");
    PLSTM_CHECK_ARG(c->algo == PLSTM_ALGO_AUTO || c->algo == PLSTM_ALGO_SEQUENTIAL ||
                        c->algo == PLSTM_ALGO_PARALLEL,
                    "vision config: unknown algo");
    PLSTM_CHECK_ARG(c->pos_embed_init_std >= 0, "vision config: pos_embed_init_std must be >= 0");
    PLSTM_TRY(conv_stem_check("vision config", c->stem_stages, c->stem_channels,
                              c->stem_strides, c->stem_kernel, c->stem_norm, c->patch_size,
                              c->stride));
    return PLSTM_OK;
}

/* ---- JSON --------------------------------------------------------------- */

typedef struct named {
    const char *name;
    int value;
} named;

static const named pool_names[] = {
    {"corners", PLSTM_POOL_CORNERS}, {"center", PLSTM_POOL_CENTER}, {"mean", PLSTM_POOL_MEAN}, {0, 0}};
static const named resize_names[] = {
    {"torch", PLSTM_RESIZE_BICUBIC_TORCH}, {"jax", PLSTM_RESIZE_BICUBIC_JAX}, {0, 0}};
static const named act_names[] = {
    {"gelu", PLSTM_ACT_GELU}, {"gelu_tanh", PLSTM_ACT_GELU_TANH}, {0, 0}};
static const named map_names[] = {
    {"reference", PLSTM_HOMAP_REFERENCE}, {"intended", PLSTM_HOMAP_INTENDED}, {0, 0}};
static const named algo_names[] = {{"auto", PLSTM_ALGO_AUTO},
                                   {"sequential", PLSTM_ALGO_SEQUENTIAL},
                                   {"parallel", PLSTM_ALGO_PARALLEL},
                                   {0, 0}};

static const char *name_of(const named *t, int v)
{
    for (; t->name; t++)
        if (t->value == v)
            return t->name;
    return "?";
}

typedef enum ftype { F_INT, F_BOOL, F_REAL, F_ENUM, F_MODE, F_SIZE } ftype;

typedef struct field {
    const char *key;
    ftype type;
    size_t off;
    const named *names; /* F_ENUM */
} field;

#define FLD(k, t, m) {k, t, offsetof(plstm_vision_config, m), NULL}
#define ENUMF(k, m, tbl) {k, F_ENUM, offsetof(plstm_vision_config, m), tbl}

static const field fields[] = {
    FLD("dim", F_INT, dim),
    FLD("num_heads", F_INT, num_heads),
    FLD("num_blocks", F_INT, num_blocks),
    FLD("patch_size", F_INT, patch_size),
    FLD("stride", F_INT, stride),
    FLD("image_size", F_SIZE, image_size),
    FLD("num_channels", F_INT, num_channels),
    FLD("num_classes", F_INT, num_classes),
    FLD("block_mode", F_MODE, block_mode),
    ENUMF("pooling", pooling, pool_names),
    FLD("use_pos_embed", F_BOOL, use_pos_embed),
    ENUMF("pos_resize", pos_resize, resize_names),
    ENUMF("mlp_activation", mlp_activation, act_names),
    FLD("projection_scaling", F_INT, projection_scaling),
    FLD("projection_round", F_INT, projection_round),
    FLD("norm_eps", F_REAL, norm_eps),
    FLD("mhnorm_eps", F_REAL, mhnorm_eps),
    FLD("qkv_sub_heads", F_INT, qkv_sub_heads),
    FLD("source_weight", F_BOOL, source_weight),
    FLD("mark_weight", F_BOOL, mark_weight),
    FLD("transition_weight", F_BOOL, transition_weight),
    FLD("direct_weight", F_BOOL, direct_weight),
    FLD("gate_sub_heads", F_INT, gate_sub_heads),
    ENUMF("head_orientation_map", map, map_names),
    ENUMF("algo", algo, algo_names),
    FLD("source_bias_init", F_REAL, source_bias_init),
    FLD("mark_bias_init", F_REAL, mark_bias_init),
    FLD("direct_bias_init", F_REAL, direct_bias_init),
    FLD("pos_embed_init_std", F_REAL, pos_embed_init_std),
};
/* The stem's keys (stem_channels, stem_strides, stem_kernel, stem_norm) are
 * read and written by the stem shared with the ViT (conv_stem.h), and only
 * written when there is a stem. */
static conv_stem_fields stem_fields(plstm_vision_config *c)
{
    return (conv_stem_fields){&c->stem_stages, c->stem_channels, c->stem_strides, &c->stem_kernel,
                              &c->stem_norm};
}
enum { NFIELDS = sizeof fields / sizeof fields[0] };

/* Every enum field is stored as an int-sized enum. */
static int *ifield(plstm_vision_config *c, const field *f) { return (int *)((char *)c + f->off); }
static double *rfield(plstm_vision_config *c, const field *f)
{
    return (double *)((char *)c + f->off);
}

static plstm_status int_value(json_t *v, const char *key, int *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < -2147483647LL ||
        json_integer_value(v) > 2147483647LL)
        return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "vision config: '%s' must be an integer",
                          key);
    *out = (int)json_integer_value(v);
    return PLSTM_OK;
}

static plstm_status set_field(plstm_vision_config *c, const field *f, json_t *v)
{
    switch (f->type) {
    case F_INT:
        return int_value(v, f->key, ifield(c, f));
    case F_BOOL:
        if (!json_is_boolean(v))
            return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT,
                              "vision config: '%s' must be true or false", f->key);
        *ifield(c, f) = json_is_true(v);
        return PLSTM_OK;
    case F_REAL:
        if (!json_is_number(v))
            return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "vision config: '%s' must be a number",
                              f->key);
        *rfield(c, f) = json_number_value(v);
        return PLSTM_OK;
    case F_ENUM: {
        const char *s = json_string_value(v);
        for (const named *t = f->names; s && t->name; t++)
            if (!strcmp(s, t->name)) {
                *ifield(c, f) = t->value;
                return PLSTM_OK;
            }
        char list[128] = "";
        for (const named *t = f->names; t->name; t++) {
            strncat(list, t == f->names ? "" : ", ", sizeof list - strlen(list) - 1);
            strncat(list, t->name, sizeof list - strlen(list) - 1);
        }
        return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "vision config: '%s' must be one of %s",
                          f->key, list);
    }
    case F_MODE: {
        const char *s = json_string_value(v);
        if (!s || strlen(s) != 2 || !strchr("PD", s[0]) || !strchr("PD", s[1]))
            return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT,
                              "vision config: 'block_mode' must be \"PD\", \"PP\", \"DD\" or "
                              "\"DP\"");
        memcpy(c->block_mode, s, 3);
        return PLSTM_OK;
    }
    case F_SIZE:
        if (json_is_integer(v)) {
            PLSTM_TRY(int_value(v, f->key, &c->image_size[0]));
            c->image_size[1] = c->image_size[0];
            return PLSTM_OK;
        }
        if (!json_is_array(v) || json_array_size(v) != 2)
            return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT,
                              "vision config: '%s' must be [H, W] or one integer", f->key);
        PLSTM_TRY(int_value(json_array_get(v, 0), f->key, &c->image_size[0]));
        return int_value(json_array_get(v, 1), f->key, &c->image_size[1]);
    }
    return PLSTM_OK;
}

static plstm_status from_object(json_t *root, const plstm_vision_config *base,
                                plstm_vision_config *out)
{
    if (!json_is_object(root))
        return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "vision config: not a JSON object");
    plstm_vision_config c = base ? *base : plstm_vision_config_default();
    json_t *pr = json_object_get(root, "preset");
    if (pr) {
        if (!json_is_string(pr))
            return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT,
                              "vision config: 'preset' must be a string");
        PLSTM_TRY(plstm_vision_preset(json_string_value(pr), &c));
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (!strcmp(key, "preset"))
            continue;
        const conv_stem_fields sf = stem_fields(&c);
        plstm_status st = PLSTM_OK;
        if (conv_stem_json_set("vision config", &sf, key, v, &st)) {
            PLSTM_TRY(st);
            continue;
        }
        const char *k = !strcmp(key, "resolution") ? "image_size" : key;
        int i = 0;
        while (i < NFIELDS && strcmp(fields[i].key, k))
            i++;
        if (i == NFIELDS)
            return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "vision config: unknown key '%s'", key);
        PLSTM_TRY(set_field(&c, &fields[i], v));
    }
    PLSTM_TRY(plstm_vision_config_check(&c));
    *out = c;
    return PLSTM_OK;
}

plstm_status plstm_vision_config_from_json(const char *json, const plstm_vision_config *base,
                                           plstm_vision_config *cfg)
{
    PLSTM_CHECK_ARG(json && cfg, "plstm_vision_config_from_json: NULL argument");
    json_error_t err;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return plstm_fail(PLSTM_ERR_FORMAT, "vision config: invalid JSON: %s (line %d, column %d)",
                          err.text, err.line, err.column);
    plstm_status s = from_object(root, base, cfg);
    json_decref(root);
    return s;
}

plstm_status plstm_vision_config_load(const char *path, const plstm_vision_config *base,
                                      plstm_vision_config *cfg)
{
    PLSTM_CHECK_ARG(path && cfg, "plstm_vision_config_load: NULL argument");
    json_error_t err;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return plstm_fail(PLSTM_ERR_FORMAT, "vision config %s: %s (line %d, column %d)", path,
                          err.text, err.line, err.column);
    plstm_status s = from_object(root, base, cfg);
    json_decref(root);
    return s;
}

plstm_status plstm_vision_config_to_json(const plstm_vision_config *cfg, char **json)
{
    PLSTM_CHECK_ARG(cfg && json, "plstm_vision_config_to_json: NULL argument");
    plstm_vision_config c = *cfg;
    json_t *o = json_object();
    if (!o)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "vision config: cannot build JSON");
    for (int i = 0; i < NFIELDS; i++) {
        const field *f = &fields[i];
        json_t *v = NULL;
        switch (f->type) {
        case F_INT: v = json_integer(*ifield(&c, f)); break;
        case F_BOOL: v = json_boolean(*ifield(&c, f)); break;
        case F_REAL: v = json_real(*rfield(&c, f)); break;
        case F_ENUM: v = json_string(name_of(f->names, *ifield(&c, f))); break;
        case F_MODE: v = json_stringn(c.block_mode, strnlen(c.block_mode, 2)); break;
        case F_SIZE: v = json_pack("[ii]", c.image_size[0], c.image_size[1]); break;
        }
        json_object_set_new(o, f->key, v);
    }
    conv_stem_json_put(o, c.stem_stages, c.stem_channels, c.stem_strides, c.stem_kernel,
                       c.stem_norm);
    *json = json_dumps(o, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (!*json)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "vision config: cannot serialize JSON");
    return PLSTM_OK;
}
