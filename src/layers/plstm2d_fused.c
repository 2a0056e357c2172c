/* 2D pLSTM layers: configuration, parameters, initialization, and the fused
 * four-orientation layer (plstm-math.md §4.5): one fused core call with heads
 * in the batch, one direct term, one multi-head RMSNorm. */
#include "layers/plstm2d_internal.h"
#include "layers/sublayer_impl.h"

#include <stdlib.h>
#include <string.h>

static plstm_layer2d_config config_common(int input_dim, int num_heads, plstm_layer2d_mode mode)
{
    plstm_layer2d_config c;
    memset(&c, 0, sizeof c);
    c.input_dim = input_dim;
    c.num_heads = num_heads;
    c.mode = mode;
    c.chirality = PLSTM_CHIRALITY_L;
    c.DK = c.DV = 0;
    c.JQ = c.JK = c.JV = c.JT = c.JO = 1;
    c.source = plstm_gate_config_default(PLSTM_GATE_SOURCE, input_dim, 4 * num_heads);
    c.mark = plstm_gate_config_default(PLSTM_GATE_MARK, input_dim, 4 * num_heads);
    c.direct = plstm_gate_config_default(PLSTM_GATE_DIRECT, input_dim, num_heads);
    c.transition = plstm_transition_config_default(input_dim, 4 * num_heads, 1);
    const int dh = num_heads > 0 ? input_dim / num_heads : 0;
    c.query = plstm_qkv_config_default(input_dim, num_heads, dh, 1);
    c.key = plstm_qkv_config_default(input_dim, num_heads, dh, 1);
    c.value = plstm_qkv_config_default(input_dim, num_heads, dh, 1);
    c.orientation_scale = 0.5;
    c.orientation_bias_low = -2.0;
    c.orientation_bias_high = 2.0;
    strcpy(c.conv_inputs, "STMDQKsO");
    c.outprojection = 1;
    c.outprojection_bias = 0;
    c.mhnorm = 1;
    c.mhnorm_eps = 1e-5;
    c.map = PLSTM_HOMAP_REFERENCE;
    for (int o = 0; o < 4; o++)
        c.orientations[o] = o;
    c.algo = PLSTM_ALGO_AUTO;
    return c;
}

plstm_layer2d_config plstm_layer2d_fused_config_default(int input_dim, int num_heads,
                                                        plstm_layer2d_mode mode)
{
    plstm_layer2d_config c = config_common(input_dim, num_heads, mode);
    c.conv = 0;
    c.passthrough = 0;
    return c;
}

plstm_layer2d_config plstm_layer2d_config_default(int input_dim, int num_heads,
                                                  plstm_layer2d_mode mode)
{
    plstm_layer2d_config c = config_common(input_dim, num_heads, mode);
    c.conv = 1;
    c.passthrough = 1;
    return c;
}

/* ---- declaration -------------------------------------------------------- */

typedef struct namer {
    const char *prefix;
    char buf[PLSTM_PARAM_NAME_MAX];
} namer;

/* "prefix.name", or "name" for an empty prefix. */
static const char *sub_name(namer *n, const char *name)
{
    if (n->prefix && n->prefix[0])
        snprintf(n->buf, sizeof n->buf, "%s.%s", n->prefix, name);
    else
        snprintf(n->buf, sizeof n->buf, "%s", name);
    return n->buf;
}

static plstm_status check_config(const plstm_layer2d_config *c)
{
    PLSTM_CHECK_ARG(c->input_dim >= 1 && c->num_heads >= 1,
                    "2D layer: input_dim %d and num_heads %d must be >= 1", c->input_dim,
                    c->num_heads);
    PLSTM_CHECK_ARG(c->input_dim % c->num_heads == 0,
                    "2D layer: num_heads %d does not divide input_dim %d", c->num_heads,
                    c->input_dim);
    PLSTM_CHECK_ARG(c->mode == PLSTM_LAYER2D_P || c->mode == PLSTM_LAYER2D_D,
                    "2D layer: unknown mode %d", (int)c->mode);
    PLSTM_CHECK_ARG(c->chirality == PLSTM_CHIRALITY_L || c->chirality == PLSTM_CHIRALITY_R,
                    "2D layer: unknown chirality %d", (int)c->chirality);
    PLSTM_CHECK_ARG(c->map == PLSTM_HOMAP_REFERENCE || c->map == PLSTM_HOMAP_INTENDED,
                    "2D layer: unknown head/orientation map %d", (int)c->map);
    PLSTM_CHECK_ARG(c->DK >= 0 && c->DV >= 0 && c->DK <= 65536 && c->DV <= 65536,
                    "2D layer: DK %d, DV %d out of range", c->DK, c->DV);
    const int J[5] = {c->JQ, c->JK, c->JV, c->JT, c->JO};
    for (int i = 0; i < 5; i++)
        PLSTM_CHECK_ARG(J[i] >= 1 && J[i] <= 256, "2D layer: J dims must be in 1..256");
    PLSTM_CHECK_ARG(memchr(c->conv_inputs, 0, sizeof c->conv_inputs) != NULL,
                    "2D layer: conv_inputs is not a terminated string");
    PLSTM_CHECK_ARG(c->mhnorm_eps > 0 || !c->mhnorm, "2D layer: mhnorm_eps must be > 0");
    for (int o = 0; o < 4; o++)
        PLSTM_CHECK_ARG(c->orientations[o] >= 0 && c->orientations[o] <= 3,
                        "2D layer: orientation %d must be in 0..3", c->orientations[o]);
    return PLSTM_OK;
}

static plstm_status declare_gate(plstm_gate *g, const plstm_gate_config *base, plstm_gate_kind kind,
                                 const plstm_layer2d_config *c, int NH, plstm_params *p,
                                 namer *n, const char *name)
{
    plstm_gate_config gc = *base;
    gc.kind = kind;
    gc.input_dim = c->input_dim;
    gc.num_heads = NH;
    gc.JT = c->JT, gc.JK = c->JK, gc.JV = c->JV, gc.JQ = c->JQ, gc.JO = c->JO;
    return plstm_gate_declare(g, &gc, p, sub_name(n, name));
}

static plstm_status declare_trans(plstm_transition *t, const plstm_layer2d_config *c,
                                  plstm_params *p, namer *n, const char *name)
{
    plstm_transition_config tc = c->transition;
    tc.input_dim = c->input_dim;
    tc.num_heads = 4 * c->num_heads;
    tc.JT = c->JT;
    return plstm_transition_declare(t, &tc, p, sub_name(n, name));
}

static plstm_status declare_qkv(plstm_qkv *q, const plstm_qkv_config *base,
                                const plstm_layer2d_config *c, int DK, int J, plstm_params *p,
                                namer *n, const char *name)
{
    plstm_qkv_config qc = *base;
    qc.input_dim = c->input_dim;
    qc.num_heads = c->num_heads;
    qc.DK = DK;
    qc.J = J;
    return plstm_qkv_declare(q, &qc, p, sub_name(n, name));
}

static plstm_status declare_own(plstm_params *p, namer *n, const char *name, int rank,
                                const int64_t *shape, unsigned flags, size_t *off)
{
    return plstm_params_declare(p, sub_name(n, name), rank, shape, flags, off);
}

plstm_status plstm_layer2d_declare(plstm_layer2d *L, const plstm_layer2d_config *cfg,
                                   plstm_params *p, const char *prefix)
{
    PLSTM_CHECK_ARG(L && cfg && p, "plstm_layer2d_declare: NULL argument");
    PLSTM_TRY(check_config(cfg));
    memset(L, 0, sizeof *L);
    L->cfg = *cfg;
    plstm_layer2d_config *c = &L->cfg;
    const int H = c->num_heads, Din = c->input_dim;
    if (!c->DK)
        c->DK = Din / H;
    if (!c->DV)
        c->DV = Din / H;
    const int Dy = H * c->DV * c->JO;
    L->Dout = c->outprojection ? Din : Dy;
    PLSTM_CHECK_ARG(!c->passthrough || L->Dout == Din,
                    "2D layer: the passthrough needs output features %d = input_dim %d", L->Dout,
                    Din);
    namer n = {.prefix = prefix};
    L->conv_weight_off = L->conv_bias_off = L->mhnorm_off = PLSTM_NO_PARAM;
    L->outproj_weight_off = L->outproj_bias_off = L->passthrough_off = PLSTM_NO_PARAM;
    if (c->conv) {
        const int64_t sw[4] = {Din, 1, 3, 3}, sb[1] = {Din};
        PLSTM_TRY(declare_own(p, &n, "convolution._conv.weight", 4, sw, 0, &L->conv_weight_off));
        PLSTM_TRY(declare_own(p, &n, "convolution._conv.bias", 1, sb, PLSTM_PARAM_NO_DECAY,
                              &L->conv_bias_off));
    }
    if (c->mode == PLSTM_LAYER2D_P) {
        plstm_orientation_gate_config oc = plstm_orientation_gate_config_default(Din, H);
        oc.scale = c->orientation_scale;
        oc.bias_low = c->orientation_bias_low;
        oc.bias_high = c->orientation_bias_high;
        PLSTM_TRY(plstm_orientation_gate_declare(&L->ogate, &oc, p, prefix));
        PLSTM_TRY(declare_gate(&L->source, &c->source, PLSTM_GATE_SOURCE, c, 4 * H, p, &n,
                               "source"));
        PLSTM_TRY(declare_trans(&L->transition, c, p, &n, "transition"));
        PLSTM_TRY(declare_gate(&L->mark, &c->mark, PLSTM_GATE_MARK, c, 4 * H, p, &n, "mark"));
    } else {
        PLSTM_TRY(declare_gate(&L->source_r, &c->source, PLSTM_GATE_SOURCE, c, 4 * H, p, &n,
                               "source_r"));
        PLSTM_TRY(declare_gate(&L->source_d, &c->source, PLSTM_GATE_SOURCE, c, 4 * H, p, &n,
                               "source_d"));
        PLSTM_TRY(declare_trans(&L->transition_r, c, p, &n, "transition_r"));
        PLSTM_TRY(declare_trans(&L->transition_d, c, p, &n, "transition_d"));
        PLSTM_TRY(declare_trans(&L->transition_rd, c, p, &n, "transition_rd"));
        PLSTM_TRY(declare_gate(&L->mark_l, &c->mark, PLSTM_GATE_MARK, c, 4 * H, p, &n, "mark_l"));
        PLSTM_TRY(declare_gate(&L->mark_u, &c->mark, PLSTM_GATE_MARK, c, 4 * H, p, &n, "mark_u"));
    }
    PLSTM_TRY(declare_gate(&L->direct, &c->direct, PLSTM_GATE_DIRECT, c, H, p, &n, "direct"));
    PLSTM_TRY(declare_qkv(&L->query, &c->query, c, c->DK, c->JQ, p, &n, "query"));
    PLSTM_TRY(declare_qkv(&L->key, &c->key, c, c->DK, c->JK, p, &n, "key"));
    PLSTM_TRY(declare_qkv(&L->value, &c->value, c, c->DV, c->JV, p, &n, "value_"));
    if (c->mhnorm) {
        const int64_t s[2] = {H, c->DV * c->JO};
        PLSTM_TRY(declare_own(p, &n, "mhnorm.scale", 2, s, PLSTM_PARAM_NO_DECAY, &L->mhnorm_off));
    }
    if (c->outprojection) {
        const int64_t sw[2] = {Din, Dy}, sb[1] = {Din};
        PLSTM_TRY(declare_own(p, &n, "outprojection.weight", 2, sw, 0, &L->outproj_weight_off));
        if (c->outprojection_bias)
            PLSTM_TRY(declare_own(p, &n, "outprojection.bias", 1, sb, PLSTM_PARAM_NO_DECAY,
                                  &L->outproj_bias_off));
    }
    if (c->passthrough) {
        const int64_t s[1] = {Din};
        PLSTM_TRY(declare_own(p, &n, "passthrough.scale", 1, s, PLSTM_PARAM_NO_DECAY,
                              &L->passthrough_off));
    }
    return PLSTM_OK;
}

/* ---- initialization ----------------------------------------------------- */

static void fill(void *params, plstm_dtype dtype, size_t off, size_t n, double v)
{
    for (size_t i = 0; i < n; i++)
        sl_set(params, dtype, off + i, v);
}

plstm_status plstm_layer2d_init(const plstm_layer2d *L, void *params, plstm_dtype dtype,
                                uint64_t seed)
{
    PLSTM_CHECK_ARG(L && params, "plstm_layer2d_init: NULL argument");
    PLSTM_CHECK_ARG(dtype == PLSTM_F32 || dtype == PLSTM_F64, "plstm_layer2d_init: F32 or F64");
    const plstm_layer2d_config *c = &L->cfg;
    const int H = c->num_heads, Din = c->input_dim;
    const size_t Dy = (size_t)H * c->DV * c->JO;
    uint64_t k = 0;
#define NEXT_SEED (seed + 0x9E3779B97F4A7C15ull * ++k)
    if (c->mode == PLSTM_LAYER2D_P) {
        PLSTM_TRY(plstm_orientation_gate_init(&L->ogate, params, dtype, NEXT_SEED));
        PLSTM_TRY(plstm_gate_init(&L->source, params, dtype, NEXT_SEED));
        PLSTM_TRY(plstm_transition_init(&L->transition, params, dtype, NEXT_SEED));
        PLSTM_TRY(plstm_gate_init(&L->mark, params, dtype, NEXT_SEED));
    } else {
        PLSTM_TRY(plstm_gate_init(&L->source_r, params, dtype, NEXT_SEED));
        PLSTM_TRY(plstm_gate_init(&L->source_d, params, dtype, NEXT_SEED));
        PLSTM_TRY(plstm_transition_init(&L->transition_r, params, dtype, NEXT_SEED));
        PLSTM_TRY(plstm_transition_init(&L->transition_d, params, dtype, NEXT_SEED));
        PLSTM_TRY(plstm_transition_init(&L->transition_rd, params, dtype, NEXT_SEED));
        PLSTM_TRY(plstm_gate_init(&L->mark_l, params, dtype, NEXT_SEED));
        PLSTM_TRY(plstm_gate_init(&L->mark_u, params, dtype, NEXT_SEED));
    }
    PLSTM_TRY(plstm_gate_init(&L->direct, params, dtype, NEXT_SEED));
    PLSTM_TRY(plstm_qkv_init(&L->query, params, dtype, NEXT_SEED));
    PLSTM_TRY(plstm_qkv_init(&L->key, params, dtype, NEXT_SEED));
    PLSTM_TRY(plstm_qkv_init(&L->value, params, dtype, NEXT_SEED));
    if (L->mhnorm_off != PLSTM_NO_PARAM)
        fill(params, dtype, L->mhnorm_off, Dy, 1.0);
    sl_rng r = {.s = NEXT_SEED, .has_spare = 0, .spare = 0};
    if (L->outproj_weight_off != PLSTM_NO_PARAM) {
        const double sigma = 1.0 / sqrt(2.5 * (double)Dy);
        for (size_t i = 0; i < (size_t)Din * Dy; i++)
            sl_set(params, dtype, L->outproj_weight_off + i, sigma * sl_rng_normal(&r));
    }
    if (L->outproj_bias_off != PLSTM_NO_PARAM)
        fill(params, dtype, L->outproj_bias_off, (size_t)Din, 0.0);
    if (L->conv_weight_off != PLSTM_NO_PARAM) {
        /* torch Conv2d default: U(±1/sqrt(fan_in)), fan_in = 9 */
        for (size_t i = 0; i < (size_t)Din * 9; i++)
            sl_set(params, dtype, L->conv_weight_off + i,
                   (2.0 * ((double)(sl_rng_u64(&r) >> 11) * 0x1.0p-53) - 1.0) / 3.0);
        for (size_t i = 0; i < (size_t)Din; i++)
            sl_set(params, dtype, L->conv_bias_off + i,
                   (2.0 * ((double)(sl_rng_u64(&r) >> 11) * 0x1.0p-53) - 1.0) / 3.0);
    }
    if (L->passthrough_off != PLSTM_NO_PARAM)
        fill(params, dtype, L->passthrough_off, (size_t)Din, 1.0);
#undef NEXT_SEED
    return PLSTM_OK;
}

/* ---- fused forward / backward ------------------------------------------- */

/* Activations: the front, then the core output yc [B·H, X, Y, Dh], its heads
 * layout yh [N, H·Dh] (the norm's input), z [N, H·Dh] (the out projection's
 * input; = yh without mhnorm) and a passthrough scratch [N, Din]. */
typedef struct fused_layout {
    l2d_dims d;
    l2d_front f;
    size_t yc, yh, z, tmp, total;
} fused_layout;

static plstm_status fused_layout_make(const plstm_layer2d *L, plstm_dtype dtype, int B, int X,
                                      int Y, fused_layout *l)
{
    PLSTM_TRY(l2d_make_dims(L, dtype, B, X, Y, &l->d));
    l2d_front_layout(L, &l->d, L->cfg.map, 0, &l->f);
    const l2d_dims *d = &l->d;
    size_t off = l->f.size;
    l->yc = off;
    off += d->G * d->Dh;
    l->yh = off;
    off += d->N * d->Dy;
    l->z = l->yh;
    if (L->mhnorm_off != PLSTM_NO_PARAM) {
        l->z = off;
        off += d->N * d->Dy;
    }
    l->tmp = off;
    if (L->passthrough_off != PLSTM_NO_PARAM)
        off += d->N * (size_t)d->Din;
    l->total = off;
    return PLSTM_OK;
}

size_t plstm_layer2d_fused_activation_size(const plstm_layer2d *L, int B, int X, int Y)
{
    fused_layout l;
    if (!L || B < 1 || X < 1 || Y < 1 || fused_layout_make(L, PLSTM_F32, B, X, Y, &l) != PLSTM_OK)
        return 0;
    return l.total;
}

static plstm_core2d_inputs core_inputs(const plstm_layer2d *L, const l2d_front *f,
                                       const void *acts)
{
    const void *g[L2D_G_N];
    l2d_core_gates(L, f, (void *)acts, g);
    const l2d_dims *d = &f->d;
    plstm_core2d_inputs in = {l2d_cat(acts, d, f->grid[L2D_Q]), l2d_cat(acts, d, f->grid[L2D_K]),
                              l2d_cat(acts, d, f->grid[L2D_V]), g[L2D_G_SR], g[L2D_G_SD],
                              g[L2D_G_TRL], g[L2D_G_TDU], g[L2D_G_TDL], g[L2D_G_TRU],
                              g[L2D_G_ML], g[L2D_G_MU], l2d_cat(acts, d, f->grid[L2D_D]),
                              NULL, NULL};
    return in;
}

plstm_status plstm_layer2d_fused_forward(plstm_context *ctx, const plstm_layer2d *L,
                                         plstm_dtype dtype, const void *params, int B, int X,
                                         int Y, const void *x, void *y, void *acts)
{
    const char *what = "plstm_layer2d_fused_forward";
    PLSTM_TRY(l2d_check_call(ctx, L, dtype, params, B, X, Y, what));
    PLSTM_CHECK_ARG(x && y, "%s: NULL input or output", what);
    fused_layout l;
    PLSTM_TRY(fused_layout_make(L, dtype, B, X, Y, &l));
    const l2d_dims *d = &l.d;
    void *own = NULL;
    if (!acts && !(acts = own = malloc(l.total * d->esz)))
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    plstm_status s = l2d_front_forward(ctx, L, &l.f, params, x, acts);
    void *yc = l2d_at(acts, d, l.yc), *yh = l2d_at(acts, d, l.yh), *z = l2d_at(acts, d, l.z);
    if (s == PLSTM_OK) {
        const plstm_core2d_desc cd = l2d_core_desc(L, d);
        plstm_core2d_inputs in = core_inputs(L, &l.f, acts);
        plstm_core2d_outputs out = {yc, NULL, NULL};
        s = plstm_core2d_fused4_forward(ctx, &cd, &in, &out);
    }
    if (s == PLSTM_OK)
        s = plstm_grid_to_heads(ctx, dtype, B, X, Y, X, Y, d->H, d->Dh, yc, yh);
    if (s == PLSTM_OK)
        s = l2d_norm_forward(ctx, L, d, params, yh, z);
    if (s == PLSTM_OK)
        s = l2d_out_forward(ctx, L, d, params, z, x, y, l2d_at(acts, d, l.tmp));
    free(own);
    return s;
}

plstm_status plstm_layer2d_fused_backward(plstm_context *ctx, const plstm_layer2d *L,
                                          plstm_dtype dtype, const void *params, int B, int X,
                                          int Y, const void *x, const void *acts, const void *dy,
                                          void *dx, void *grads)
{
    const char *what = "plstm_layer2d_fused_backward";
    PLSTM_TRY(l2d_check_call(ctx, L, dtype, params, B, X, Y, what));
    PLSTM_CHECK_ARG(x && acts && dy && grads, "%s: NULL input, activations, dy or grads", what);
    fused_layout l;
    PLSTM_TRY(fused_layout_make(L, dtype, B, X, Y, &l));
    const l2d_dims *d = &l.d;
    l2d_dfront df;
    l2d_dfront_layout(L, &l.f, 0, &df);
    const size_t o_dz = df.size, o_dyh = o_dz + d->N * d->Dy, o_dyc = o_dyh + d->N * d->Dy;
    const size_t o_work = o_dyc + d->G * d->Dh, total = o_work + l2d_front_backward_work(&l.f);
    void *ws = malloc(total * d->esz);
    if (!ws)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    void *dz = l2d_at(ws, d, o_dz), *dyh = l2d_at(ws, d, o_dyh), *dyc = l2d_at(ws, d, o_dyc);
    void *work = l2d_at(ws, d, o_work);
    if (dx)
        l2d_zero(d, dx, d->N * (size_t)d->Din);
    plstm_status s = l2d_out_backward(ctx, L, d, params, l2d_cat(acts, d, l.z), x, dy, dz, dx,
                                      grads, work);
    if (s == PLSTM_OK)
        s = l2d_norm_backward(ctx, L, d, params, l2d_cat(acts, d, l.yh), dz, dyh, grads);
    if (s == PLSTM_OK)
        s = plstm_heads_to_grid(ctx, dtype, B, X, Y, X, Y, d->H, d->Dh, dyh, dyc);
    if (s == PLSTM_OK) {
        const plstm_core2d_desc cd = l2d_core_desc(L, d);
        plstm_core2d_inputs in = core_inputs(L, &l.f, acts);
        plstm_core2d_cotangents dout = {dyc, NULL, NULL};
        void *gg[L2D_G_N];
        l2d_core_dgates(&df, d, ws, gg);
        plstm_core2d_grads g = {l2d_at(ws, d, df.grid[L2D_Q]), l2d_at(ws, d, df.grid[L2D_K]),
                                l2d_at(ws, d, df.grid[L2D_V]), gg[L2D_G_SR], gg[L2D_G_SD],
                                gg[L2D_G_TRL], gg[L2D_G_TDU], gg[L2D_G_TDL], gg[L2D_G_TRU],
                                gg[L2D_G_ML], gg[L2D_G_MU], l2d_at(ws, d, df.grid[L2D_D]),
                                NULL, NULL};
        s = plstm_core2d_fused4_backward(ctx, &cd, &in, &dout, &g);
    }
    if (s == PLSTM_OK)
        s = l2d_front_backward(ctx, L, &l.f, params, x, acts, &df, ws, work, dx, grads);
    free(ws);
    return s;
}
