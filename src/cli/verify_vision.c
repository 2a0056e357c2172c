/* Verifier for the vision model (kind vision_model): builds the model from the
 * file's reference config (config_json, else the flat metadata keys), loads
 * every `param.*` strictly, runs forward on input.pixels and compares
 * output.logits; compares output.pos_embed_interpolated with the resized
 * position embedding when present; with input.dlogits runs backward and
 * compares grad.pixels and every grad.param.*. */
#include "cli/verify.h"
#include "core/status_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- configuration from the reference's pLSTMVisionModelConfig ---------- */

static json_t *path_get(json_t *o, const char *a, const char *b, const char *c)
{
    const char *keys[3] = {a, b, c};
    for (int i = 0; i < 3 && keys[i] && o; i++)
        o = json_is_object(o) ? json_object_get(o, keys[i]) : NULL;
    return o;
}

static plstm_status get_int(json_t *o, const char *key, int *out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return PLSTM_OK;
    if (!json_is_integer(v))
        return plstm_fail(PLSTM_ERR_FORMAT, "config_json: '%s' must be an integer", key);
    *out = (int)json_integer_value(v);
    return PLSTM_OK;
}

static int get_flag(json_t *o, const char *key, int fallback)
{
    json_t *v = o ? json_object_get(o, key) : NULL;
    return json_is_boolean(v) ? json_is_true(v) : fallback;
}

static const char *get_str(json_t *o, const char *key, const char *fallback)
{
    json_t *v = o ? json_object_get(o, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : fallback;
}

static plstm_status get_pair(json_t *o, const char *key, int *out)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return PLSTM_OK;
    if (!json_is_array(v) || json_array_size(v) != 2 ||
        !json_is_integer(json_array_get(v, 0)) || !json_is_integer(json_array_get(v, 1)))
        return plstm_fail(PLSTM_ERR_FORMAT, "config_json: '%s' must be [H, W]", key);
    out[0] = (int)json_integer_value(json_array_get(v, 0));
    out[1] = (int)json_integer_value(json_array_get(v, 1));
    return PLSTM_OK;
}

/* Reads the settings of one interaction module; both blocks must agree. */
static plstm_status layer_from_json(json_t *im, plstm_vision_config *c, int first)
{
    if (!json_is_object(im))
        return PLSTM_OK;
    if (strcmp(get_str(im, "class_name", "pLSTM2DLayerFused"), "pLSTM2DLayerFused"))
        return plstm_fail(PLSTM_ERR_UNSUPPORTED, "config_json: interaction module %s",
                          get_str(im, "class_name", "?"));
    if (get_flag(im, "additional_convolution", 0) || get_flag(im, "additional_passthrough", 0) ||
        get_flag(im, "tie_query_key", 0) || !get_flag(im, "outprojection", 1) ||
        get_flag(im, "outprojection_bias", 0))
        return plstm_fail(PLSTM_ERR_UNSUPPORTED,
                          "config_json: conv/passthrough/tied QK/out-projection variants");
    const char *ch = get_str(im, "dmode_chirality", "L");
    if (strcmp(ch, "L"))
        return plstm_fail(PLSTM_ERR_UNSUPPORTED, "config_json: dmode_chirality %s", ch);
    const int H = c->num_heads;
    int J[5] = {1, 1, 1, 1, 1}, DK = c->dim / H, DV = c->dim / H;
    const char *jk[5] = {"JQ", "JK", "JV", "JT", "JO"};
    for (int i = 0; i < 5; i++) {
        PLSTM_TRY(get_int(im, jk[i], &J[i]));
        if (J[i] != 1)
            return plstm_fail(PLSTM_ERR_UNSUPPORTED, "config_json: %s = %d (the vision model "
                                                     "uses J = 1)", jk[i], J[i]);
    }
    PLSTM_TRY(get_int(im, "DK", &DK));
    PLSTM_TRY(get_int(im, "DV", &DV));
    if (DK * H != c->dim || DV * H != c->dim)
        return plstm_fail(PLSTM_ERR_UNSUPPORTED, "config_json: DK %d, DV %d must be dim/heads",
                          DK, DV);
    plstm_vision_config t = *c;
    t.source_weight = get_flag(json_object_get(im, "source"), "weight", 0);
    t.mark_weight = get_flag(json_object_get(im, "mark"), "weight", 0);
    t.direct_weight = get_flag(json_object_get(im, "direct"), "weight", 0);
    t.transition_weight = get_flag(json_object_get(im, "transition"), "weight", 1);
    int qs = H, gs = 1;
    PLSTM_TRY(get_int(json_object_get(im, "query"), "sub_heads", &qs));
    PLSTM_TRY(get_int(json_object_get(im, "source"), "sub_heads", &gs));
    t.qkv_sub_heads = qs == H ? 0 : qs;
    t.gate_sub_heads = gs == 4 * H ? 0 : gs;
    json_t *mh = json_object_get(im, "mhnorm");
    if (json_is_object(mh) && json_is_number(json_object_get(mh, "eps")))
        t.mhnorm_eps = json_number_value(json_object_get(mh, "eps"));
    if (!first && (t.source_weight != c->source_weight || t.mark_weight != c->mark_weight ||
                   t.direct_weight != c->direct_weight ||
                   t.transition_weight != c->transition_weight ||
                   t.qkv_sub_heads != c->qkv_sub_heads || t.gate_sub_heads != c->gate_sub_heads ||
                   t.mhnorm_eps != c->mhnorm_eps))
        return plstm_fail(PLSTM_ERR_UNSUPPORTED,
                          "config_json: block0 and block1 layers differ beyond their mode");
    *c = t;
    return PLSTM_OK;
}

static plstm_status config_from_json(const char *text, plstm_vision_config *c)
{
    json_error_t err;
    json_t *root = json_loads(text, 0, &err);
    if (!json_is_object(root)) {
        json_decref(root);
        return plstm_fail(PLSTM_ERR_FORMAT, "config_json: %s (line %d)", err.text, err.line);
    }
    plstm_status s = PLSTM_OK;
    *c = plstm_vision_config_default();
#define TRY_S(e)              \
    do {                      \
        if (s == PLSTM_OK)    \
            s = (e);          \
    } while (0)
    TRY_S(get_int(root, "dim", &c->dim));
    TRY_S(get_int(root, "num_heads", &c->num_heads));
    TRY_S(get_int(root, "num_blocks", &c->num_blocks));
    TRY_S(get_int(root, "patch_size", &c->patch_size));
    TRY_S(get_int(root, "stride", &c->stride));
    TRY_S(get_int(root, "num_channels", &c->num_channels));
    TRY_S(get_pair(root, "resolution", c->image_size));
    json_t *os = json_object_get(root, "output_shape");
    if (s == PLSTM_OK && os) {
        if (!json_is_array(os) || json_array_size(os) != 1 ||
            !json_is_integer(json_array_get(os, 0)))
            s = plstm_fail(PLSTM_ERR_UNSUPPORTED, "config_json: output_shape must be [classes]");
        else
            c->num_classes = (int)json_integer_value(json_array_get(os, 0));
    }
    c->use_pos_embed = get_flag(root, "use_pos_embed", 1);
    const char *pool = get_str(root, "pooling", "corners");
    if (!strcmp(pool, "corners")) c->pooling = PLSTM_POOL_CORNERS;
    else if (!strcmp(pool, "center")) c->pooling = PLSTM_POOL_CENTER;
    else if (!strcmp(pool, "mean")) c->pooling = PLSTM_POOL_MEAN;
    else TRY_S(plstm_fail(PLSTM_ERR_UNSUPPORTED, "config_json: pooling '%s'", pool));
    if (get_flag(root, "channels_first", 0))
        TRY_S(plstm_fail(PLSTM_ERR_UNSUPPORTED, "config_json: channels_first input"));
    json_t *cap = json_object_get(root, "logit_softcap");
    if (cap && !json_is_null(cap))
        TRY_S(plstm_fail(PLSTM_ERR_UNSUPPORTED, "config_json: logit_softcap"));
    if (strcmp(get_str(root, "mode", "classifier"), "classifier"))
        TRY_S(plstm_fail(PLSTM_ERR_UNSUPPORTED, "config_json: mode '%s'",
                         get_str(root, "mode", "")));
    json_t *ne = path_get(root, "norm", "eps", NULL);
    if (json_is_number(ne))
        c->norm_eps = json_number_value(ne);
    json_t *blk = path_get(root, "block_stack", "block", NULL);
    const char *bm = get_str(blk, "block_mode", "PD");
    if (strlen(bm) != 2)
        TRY_S(plstm_fail(PLSTM_ERR_UNSUPPORTED, "config_json: block_mode '%s'", bm));
    else
        memcpy(c->block_mode, bm, 3);
    for (int j = 0; j < 2 && s == PLSTM_OK; j++) {
        json_t *b = json_object_get(blk, j ? "block1" : "block0");
        if (!json_is_object(b))
            continue;
        if (strcmp(get_str(b, "class_name", "PostUpProjectionBlock"), "PostUpProjectionBlock") ||
            get_flag(b, "gated", 0) || get_flag(b, "use_scale", 0) ||
            strcmp(get_str(b, "gating_function", "gelu"), "gelu")) {
            s = plstm_fail(PLSTM_ERR_UNSUPPORTED, "config_json: block%d is not a plain GELU "
                                                  "PostUpProjectionBlock", j);
            break;
        }
        TRY_S(get_int(b, "projection_scaling", &c->projection_scaling));
        TRY_S(get_int(b, "projection_round", &c->projection_round));
        json_t *be = path_get(b, "norm", "eps", NULL);
        if (json_is_number(be) && json_number_value(be) != c->norm_eps)
            TRY_S(plstm_fail(PLSTM_ERR_UNSUPPORTED, "config_json: block and final norm eps "
                                                    "differ"));
        TRY_S(layer_from_json(json_object_get(b, "interaction_module"), c, j == 0));
    }
#undef TRY_S
    json_decref(root);
    return s;
}

/* Without config_json: the flat metadata keys (torch defaults otherwise). */
static plstm_status config_from_metadata(const plstm_safetensors *st, plstm_vision_config *c)
{
    *c = plstm_vision_config_default();
    PLSTM_TRY(meta_int(st, "dim", &c->dim));
    PLSTM_TRY(meta_int(st, "num_heads", &c->num_heads));
    PLSTM_TRY(meta_int(st, "num_blocks", &c->num_blocks));
    PLSTM_TRY(meta_int(st, "patch_size", &c->patch_size));
    if (plstm_safetensors_metadata(st, "num_channels"))
        PLSTM_TRY(meta_int(st, "num_channels", &c->num_channels));
    const char *os = plstm_safetensors_metadata(st, "output_shape");
    const char *tr = plstm_safetensors_metadata(st, "train_resolution");
    if (!os || sscanf(os, " [ %d ]", &c->num_classes) != 1)
        return plstm_fail(PLSTM_ERR_FORMAT, "metadata 'output_shape' must be [classes]");
    if (!tr || sscanf(tr, " [ %d , %d ]", &c->image_size[0], &c->image_size[1]) != 2)
        return plstm_fail(PLSTM_ERR_FORMAT, "metadata 'train_resolution' must be [H, W]");
    const char *pool = plstm_safetensors_metadata(st, "pooling");
    if (pool && !strcmp(pool, "center")) c->pooling = PLSTM_POOL_CENTER;
    else if (pool && !strcmp(pool, "mean")) c->pooling = PLSTM_POOL_MEAN;
    else if (pool && strcmp(pool, "corners"))
        return plstm_fail(PLSTM_ERR_UNSUPPORTED, "metadata pooling '%s'", pool);
    c->norm_eps = meta_double(st, "norm_eps", 1e-5);
    return PLSTM_OK;
}

plstm_status verify_vision_config(const plstm_safetensors *st, plstm_vision_config *c)
{
    const char *cj = plstm_safetensors_metadata(st, "config_json");
    return cj ? config_from_json(cj, c) : config_from_metadata(st, c);
}

/* ---- the check ---------------------------------------------------------- */

typedef struct vm_case {
    plstm_vision_model *m;
    plstm_vision_workspace *ws;
    void *params, *grads;
    vtensor pixels, dlogits, logits, dpixels, pe;
} vm_case;

static void case_free(vm_case *k)
{
    plstm_vision_workspace_destroy(k->ws);
    plstm_vision_model_destroy(k->m);
    free(k->params);
    free(k->grads);
    vt_free(&k->pixels);
    vt_free(&k->dlogits);
    vt_free(&k->logits);
    vt_free(&k->dpixels);
    vt_free(&k->pe);
}

static plstm_status run_vision(const plstm_safetensors *st, const verify_opts *o,
                               verify_report *r, vm_case *k)
{
    const plstm_dtype dt = o->dtype;
    plstm_vision_config cfg;
    PLSTM_TRY(verify_vision_config(st, &cfg));
    cfg.algo = o->algo;
    PLSTM_TRY(plstm_vision_model_create(&k->m, &cfg));
    const plstm_params *lay = plstm_vision_model_params(k->m);
    const size_t np = plstm_params_size(lay), esz = plstm_dtype_size(dt);
    k->params = calloc(np ? np : 1, esz);
    k->grads = calloc(np ? np : 1, esz);
    if (!k->params || !k->grads)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate %zu parameters", np);
    PLSTM_TRY(plstm_params_load(lay, k->params, dt, st, "param.", 1));

    const plstm_safetensors_tensor *pt;
    PLSTM_TRY(plstm_safetensors_get(st, "input.pixels", &pt));
    if (pt->rank != 4 || pt->shape[3] != cfg.num_channels)
        return plstm_fail(PLSTM_ERR_FORMAT, "input.pixels must be [B,H,W,%d]", cfg.num_channels);
    for (int i = 0; i < 3; i++)
        if (pt->shape[i] < 1 || pt->shape[i] > (1 << 20))
            return plstm_fail(PLSTM_ERR_FORMAT, "input.pixels has an unusable size on axis %d",
                              i);
    const int B = (int)pt->shape[0], H = (int)pt->shape[1], W = (int)pt->shape[2];
    const int64_t ps[4] = {B, H, W, cfg.num_channels}, ls[2] = {B, cfg.num_classes};
    const int train = plstm_safetensors_find(st, "input.dlogits") != NULL;
    PLSTM_TRY(vt_load(st, "input.pixels", 4, ps, dt, &k->pixels));
    PLSTM_TRY(vt_zeros((size_t)B * cfg.num_classes, dt, &k->logits));
    PLSTM_TRY(plstm_vision_workspace_create(&k->ws, k->m, dt, B, H, W, train));

    PLSTM_TRY(plstm_vision_forward(o->ctx, k->m, k->ws, k->params, B, vt_ptr(&k->pixels, dt),
                                   vt_ptr(&k->logits, dt), NULL));
    PLSTM_TRY(verify_compare(st, "output.logits", &k->logits, dt, o, r));
    if (plstm_safetensors_find(st, "output.pos_embed_interpolated")) {
        int X, Y;
        PLSTM_TRY(plstm_vision_model_grid(k->m, H, W, &X, &Y));
        PLSTM_TRY(vt_zeros((size_t)X * Y * cfg.dim, dt, &k->pe));
        PLSTM_TRY(plstm_vision_pos_embed(o->ctx, k->m, dt, k->params, X, Y, vt_ptr(&k->pe, dt)));
        PLSTM_TRY(verify_compare(st, "output.pos_embed_interpolated", &k->pe, dt, o, r));
    }
    if (!train)
        return PLSTM_OK;
    PLSTM_TRY(vt_load(st, "input.dlogits", 2, ls, dt, &k->dlogits));
    PLSTM_TRY(vt_zeros(k->pixels.n, dt, &k->dpixels));
    PLSTM_TRY(plstm_vision_backward(o->ctx, k->m, k->ws, k->params, B, vt_ptr(&k->pixels, dt),
                                    vt_ptr(&k->dlogits, dt), NULL, vt_ptr(&k->dpixels, dt),
                                    k->grads));
    PLSTM_TRY(verify_compare(st, "grad.pixels", &k->dpixels, dt, o, r));
    return verify_compare_param_grads(st, lay, k->grads, o, r);
}

plstm_status verify_vision_model(const plstm_safetensors *st, const verify_opts *o,
                                 verify_report *r)
{
    vm_case k;
    memset(&k, 0, sizeof k);
    plstm_status s = run_vision(st, o, r, &k);
    case_free(&k);
    return s;
}
