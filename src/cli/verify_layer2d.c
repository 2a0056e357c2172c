/* Verifier for the fused 2D layer (kind layer2d_fused): builds the layer from
 * the file's config (config_json, else the flat metadata keys), loads every
 * `param.*` by name, runs forward on input.x and backward with input.dY, and
 * compares output.Y, grad.x and every grad.param.*. */
#include "cli/verify.h"
#include "core/status_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- configuration ------------------------------------------------------ */

static int json_int(json_t *o, const char *key, int fallback)
{
    json_t *v = o ? json_object_get(o, key) : NULL;
    return json_is_integer(v) ? (int)json_integer_value(v) : fallback;
}

static double json_num(json_t *o, const char *key, double fallback)
{
    json_t *v = o ? json_object_get(o, key) : NULL;
    return json_is_number(v) ? json_number_value(v) : fallback;
}

static int json_flag(json_t *o, const char *key, int fallback)
{
    json_t *v = o ? json_object_get(o, key) : NULL;
    return json_is_boolean(v) ? json_is_true(v) : fallback;
}

static const char *json_str(json_t *o, const char *key, const char *fallback)
{
    json_t *v = o ? json_object_get(o, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : fallback;
}

static plstm_status gate_from_json(json_t *o, plstm_gate_config *g, const char *what)
{
    if (!json_is_object(o))
        return PLSTM_OK;
    g->weight = json_flag(o, "weight", g->weight);
    g->sub_heads = json_int(o, "sub_heads", g->sub_heads);
    g->activation_scale = json_num(o, "activation_scale", g->activation_scale);
    const char *act = json_str(o, "activation", "logsigmoid");
    if (!strcmp(act, "logsigmoid"))
        g->activation = PLSTM_GATE_ACT_LOGSIGMOID;
    else if (!strcmp(act, "tanh"))
        g->activation = PLSTM_GATE_ACT_TANH;
    else if (!strcmp(act, "identity"))
        g->activation = PLSTM_GATE_ACT_IDENTITY;
    else
        return plstm_fail(PLSTM_ERR_UNSUPPORTED, "%s: activation '%s' is not supported", what, act);
    return PLSTM_OK;
}

static plstm_status trans_from_json(json_t *o, plstm_transition_config *t)
{
    if (!json_is_object(o))
        return PLSTM_OK;
    t->weight = json_flag(o, "weight", t->weight);
    t->sub_heads = json_int(o, "sub_heads", t->sub_heads);
    t->symmetric = json_flag(o, "symmetric", t->symmetric);
    t->eigenvalue_factor = json_num(o, "eigenvalue_factor", t->eigenvalue_factor);
    t->orthogonalization_factor = json_num(o, "orthogonalization_factor",
                                           t->orthogonalization_factor);
    t->orthogonalization_order = json_int(o, "orthogonalization_order",
                                          t->orthogonalization_order);
    const char *ev = json_str(o, "eigenvalue_representation", "tanh");
    if (!strcmp(ev, "tanh"))
        t->eigenvalue_repr = PLSTM_EIG_TANH;
    else if (!strcmp(ev, "logsigmoid"))
        t->eigenvalue_repr = PLSTM_EIG_LOGSIGMOID;
    else if (!strcmp(ev, "expexp"))
        t->eigenvalue_repr = PLSTM_EIG_EXPEXP;
    else
        return plstm_fail(PLSTM_ERR_UNSUPPORTED, "transition: eigenvalue_representation '%s'", ev);
    const char *nm = json_str(o, "normalization_mode", "exponential_orthogonalization");
    if (strcmp(nm, "exponential_orthogonalization"))
        return plstm_fail(PLSTM_ERR_UNSUPPORTED, "transition: normalization_mode '%s'", nm);
    return PLSTM_OK;
}

static plstm_status qkv_from_json(json_t *o, plstm_qkv_config *q, const char *what)
{
    if (!json_is_object(o))
        return PLSTM_OK;
    q->sub_heads = json_int(o, "sub_heads", q->sub_heads);
    q->bias = json_flag(o, "bias", q->bias);
    const char *nm = json_str(o, "normalization", "none");
    if (!strcmp(nm, "l2"))
        q->l2_norm = 1;
    else if (strcmp(nm, "none"))
        return plstm_fail(PLSTM_ERR_UNSUPPORTED, "%s: normalization '%s'", what, nm);
    return PLSTM_OK;
}

static plstm_status config_from_json(const char *text, plstm_layer2d_config *c)
{
    json_error_t err;
    json_t *root = json_loads(text, 0, &err);
    if (!json_is_object(root)) {
        json_decref(root);
        return plstm_fail(PLSTM_ERR_FORMAT, "config_json: %s (line %d)", err.text, err.line);
    }
    const char *mode = json_str(root, "mode", "P");
    const int Din = json_int(root, "input_dim", 0), H = json_int(root, "num_heads", 0);
    plstm_status s = PLSTM_OK;
    if (strcmp(mode, "P") && strcmp(mode, "D"))
        s = plstm_fail(PLSTM_ERR_FORMAT, "config_json: mode '%s'", mode);
    else if (json_flag(root, "tie_query_key", 0))
        s = plstm_fail(PLSTM_ERR_UNSUPPORTED, "config_json: tie_query_key is not supported");
    if (s == PLSTM_OK) {
        *c = plstm_layer2d_fused_config_default(Din, H, mode[0] == 'P' ? PLSTM_LAYER2D_P
                                                                       : PLSTM_LAYER2D_D);
        c->DK = json_int(root, "DK", 0);
        c->DV = json_int(root, "DV", 0);
        c->JQ = json_int(root, "JQ", 1), c->JK = json_int(root, "JK", 1);
        c->JV = json_int(root, "JV", 1), c->JT = json_int(root, "JT", 1);
        c->JO = json_int(root, "JO", 1);
        c->chirality = !strcmp(json_str(root, "dmode_chirality", "L"), "R") ? PLSTM_CHIRALITY_R
                                                                            : PLSTM_CHIRALITY_L;
        c->orientation_scale = json_num(root, "pmode_orientation_scale", 0.5);
        c->conv = json_flag(root, "additional_convolution", 0);
        c->passthrough = json_flag(root, "additional_passthrough", 0);
        c->outprojection = json_flag(root, "outprojection", 1);
        c->outprojection_bias = json_flag(root, "outprojection_bias", 0);
        const char *ci = json_str(root, "convolution_inputs", "STMDQKsO");
        if (strlen(ci) < sizeof c->conv_inputs)
            strcpy(c->conv_inputs, ci);
        json_t *mh = json_object_get(root, "mhnorm");
        c->mhnorm = json_is_object(mh);
        if (c->mhnorm) {
            const char *cls = json_str(mh, "class_name", "MultiHeadRMSNorm");
            if (strcmp(cls, "MultiHeadRMSNorm") || json_flag(mh, "bias", 0))
                s = plstm_fail(PLSTM_ERR_UNSUPPORTED, "config_json: mhnorm %s with bias %d", cls,
                               json_flag(mh, "bias", 0));
            c->mhnorm_eps = json_num(mh, "eps", 1e-5);
        }
    }
    if (s == PLSTM_OK)
        s = gate_from_json(json_object_get(root, "source"), &c->source, "source");
    if (s == PLSTM_OK)
        s = gate_from_json(json_object_get(root, "mark"), &c->mark, "mark");
    if (s == PLSTM_OK)
        s = gate_from_json(json_object_get(root, "direct"), &c->direct, "direct");
    if (s == PLSTM_OK)
        s = trans_from_json(json_object_get(root, "transition"), &c->transition);
    if (s == PLSTM_OK)
        s = qkv_from_json(json_object_get(root, "query"), &c->query, "query");
    if (s == PLSTM_OK)
        s = qkv_from_json(json_object_get(root, "key"), &c->key, "key");
    if (s == PLSTM_OK)
        s = qkv_from_json(json_object_get(root, "value"), &c->value, "value");
    json_decref(root);
    return s;
}

/* Without config_json: the flat metadata keys. */
static plstm_status config_from_metadata(const plstm_safetensors *st, plstm_layer2d_config *c)
{
    int Din, H;
    PLSTM_TRY(meta_int(st, "input_dim", &Din));
    PLSTM_TRY(meta_int(st, "num_heads", &H));
    const char *mode = plstm_safetensors_metadata(st, "mode");
    if (!mode || (strcmp(mode, "P") && strcmp(mode, "D")))
        return plstm_fail(PLSTM_ERR_FORMAT, "metadata 'mode' must be P or D");
    *c = plstm_layer2d_fused_config_default(Din, H, mode[0] == 'P' ? PLSTM_LAYER2D_P
                                                                   : PLSTM_LAYER2D_D);
    const char *keys[7] = {"DK", "DV", "JQ", "JK", "JV", "JT", "JO"};
    int *vals[7] = {&c->DK, &c->DV, &c->JQ, &c->JK, &c->JV, &c->JT, &c->JO};
    for (int i = 0; i < 7; i++)
        if (plstm_safetensors_metadata(st, keys[i]))
            PLSTM_TRY(meta_int(st, keys[i], vals[i]));
    const char *ch = plstm_safetensors_metadata(st, "dmode_chirality");
    c->chirality = ch && !strcmp(ch, "R") ? PLSTM_CHIRALITY_R : PLSTM_CHIRALITY_L;
    c->orientation_scale = meta_double(st, "pmode_orientation_scale", 0.5);
    c->mhnorm_eps = meta_double(st, "mhnorm_eps", 1e-5);
    const char *gw = plstm_safetensors_metadata(st, "gate_weights");
    const int w = gw && strstr(gw, "weight=true");
    c->source.weight = c->mark.weight = c->direct.weight = w;
    return PLSTM_OK;
}

/* ---- the check ---------------------------------------------------------- */

typedef struct l2d_case {
    plstm_params *p;
    void *params, *grads, *acts;
    vtensor x, dy, y, dx;
} l2d_case;

static void case_free(l2d_case *k)
{
    plstm_params_destroy(k->p);
    free(k->params);
    free(k->grads);
    free(k->acts);
    vt_free(&k->x);
    vt_free(&k->dy);
    vt_free(&k->y);
    vt_free(&k->dx);
}

static plstm_status run_layer2d(const plstm_safetensors *st, const verify_opts *o,
                                verify_report *r, l2d_case *k)
{
    const plstm_dtype dt = o->dtype;
    plstm_layer2d_config cfg;
    const char *cj = plstm_safetensors_metadata(st, "config_json");
    PLSTM_TRY(cj ? config_from_json(cj, &cfg) : config_from_metadata(st, &cfg));
    cfg.algo = o->algo;
    plstm_layer2d L;
    PLSTM_TRY(plstm_params_create(&k->p));
    PLSTM_TRY(plstm_layer2d_declare(&L, &cfg, k->p, NULL));
    const size_t np = plstm_params_size(k->p), esz = plstm_dtype_size(dt);
    k->params = calloc(np ? np : 1, esz);
    k->grads = calloc(np ? np : 1, esz);
    if (!k->params || !k->grads)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate %zu parameters", np);
    PLSTM_TRY(plstm_params_load(k->p, k->params, dt, st, "param.", 1));

    const plstm_safetensors_tensor *xt;
    PLSTM_TRY(plstm_safetensors_get(st, "input.x", &xt));
    if (xt->rank != 4 || xt->shape[3] != cfg.input_dim)
        return plstm_fail(PLSTM_ERR_FORMAT, "input.x must be [B,X,Y,%d]", cfg.input_dim);
    for (int i = 0; i < 3; i++)
        if (xt->shape[i] < 1 || xt->shape[i] > (1 << 20))
            return plstm_fail(PLSTM_ERR_FORMAT, "input.x has an unusable size on axis %d", i);
    const int B = (int)xt->shape[0], X = (int)xt->shape[1], Y = (int)xt->shape[2];
    const int64_t xs[4] = {B, X, Y, cfg.input_dim}, ys[4] = {B, X, Y, L.Dout};
    PLSTM_TRY(vt_load(st, "input.x", 4, xs, dt, &k->x));
    PLSTM_TRY(vt_load(st, "input.dY", 4, ys, dt, &k->dy));
    PLSTM_TRY(vt_zeros((size_t)B * X * Y * L.Dout, dt, &k->y));
    PLSTM_TRY(vt_zeros(k->x.n, dt, &k->dx));
    const size_t na = plstm_layer2d_fused_activation_size(&L, B, X, Y);
    if (!(k->acts = malloc((na ? na : 1) * esz)))
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate %zu activations", na);

    PLSTM_TRY(plstm_layer2d_fused_forward(o->ctx, &L, dt, k->params, B, X, Y, vt_ptr(&k->x, dt),
                                          vt_ptr(&k->y, dt), k->acts));
    PLSTM_TRY(verify_compare(st, "output.Y", &k->y, dt, o, r));
    PLSTM_TRY(plstm_layer2d_fused_backward(o->ctx, &L, dt, k->params, B, X, Y, vt_ptr(&k->x, dt),
                                           k->acts, vt_ptr(&k->dy, dt), vt_ptr(&k->dx, dt),
                                           k->grads));
    PLSTM_TRY(verify_compare(st, "grad.x", &k->dx, dt, o, r));
    return verify_compare_param_grads(st, k->p, k->grads, o, r);
}

plstm_status verify_layer2d_fused(const plstm_safetensors *st, const verify_opts *o,
                                  verify_report *r)
{
    l2d_case k;
    memset(&k, 0, sizeof k);
    plstm_status s = run_layer2d(st, o, r, &k);
    case_free(&k);
    return s;
}
