/* TransformerBlock (plstm-math.md §7.7), the ViT baseline's block:
 *   x0 = norm(x); q,k,v = qkv(x0); o = attention(q,k,v); y1 = outproj(o);
 *   x2 = x + scale ⊙ y1; x3 = norm2(x2); x4 = up(x3); y2 = act(x4);
 *   y3 = down(y2); y = x2 + scale2 ⊙ y3.
 * The qkv Linear(D → 3D) runs as three D → D products on the row blocks of
 * its weight, so q, k, v land in the contiguous [B, N, H, Dh] buffers the
 * attention operator takes without a split copy.
 * Saved for backward (acts): x0, q, k, v, o, lse, y1, x2, x3, x4, y2, y3.
 * Work: [N, inner] + 6 × [N, dim], shared by the inference forward and
 * backward. */
#include "plstm/vit.h"
#include "layers/sublayer_impl.h"

#include <math.h>
#include <string.h>

#define TB "TransformerBlock"

static void *at(void *buf, size_t esz, size_t off) { return (char *)buf + off * esz; }
static const void *cat(const void *buf, size_t esz, size_t off)
{
    return (const char *)buf + off * esz;
}

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

plstm_transformer_block_config plstm_transformer_block_config_default(int dim, int num_heads)
{
    plstm_transformer_block_config c;
    memset(&c, 0, sizeof c);
    c.dim = dim;
    c.num_heads = num_heads;
    c.projection_scaling = 4;
    c.projection_round = 64;
    c.act = PLSTM_ACT_GELU;
    c.norm_eps = 1e-5;
    c.layerscale_init = 1.0;
    return c;
}

plstm_status plstm_transformer_block_declare(plstm_transformer_block *L,
                                             const plstm_transformer_block_config *cfg,
                                             plstm_params *p, const char *prefix)
{
    PLSTM_CHECK_ARG(L && cfg && p, TB ": NULL argument");
    const int D = cfg->dim, H = cfg->num_heads;
    PLSTM_CHECK_ARG(D >= 1 && D <= (1 << 16), TB ": dim %d must be in 1..65536", D);
    PLSTM_CHECK_ARG(H >= 1 && D % H == 0, TB ": num_heads %d must be >= 1 and divide dim %d", H,
                    D);
    PLSTM_CHECK_ARG(cfg->projection_scaling >= 1 && cfg->projection_round >= 1 &&
                        (double)cfg->projection_scaling * D + cfg->projection_round <= (1 << 24),
                    TB ": projection_scaling %d and projection_round %d must be >= 1 (and small)",
                    cfg->projection_scaling, cfg->projection_round);
    PLSTM_CHECK_ARG(cfg->norm_eps > 0, TB ": norm_eps must be > 0");
    PLSTM_CHECK_ARG(isfinite(cfg->layerscale_init), TB ": layerscale_init must be finite");
    PLSTM_CHECK_ARG(cfg->act == PLSTM_ACT_GELU || cfg->act == PLSTM_ACT_GELU_TANH ||
                        cfg->act == PLSTM_ACT_SILU,
                    TB ": unknown activation %d", (int)cfg->act);
    memset(L, 0, sizeof *L);
    L->cfg = *cfg;
    /* (floor((s·D − 1)/r) + 1)·r, as the reference */
    L->inner = ((cfg->projection_scaling * D - 1) / cfg->projection_round + 1) *
               cfg->projection_round;
    L->head_dim = D / H;
    const int I = L->inner;
    const int64_t sD[1] = {D}, s3D[1] = {3 * (int64_t)D}, sI[1] = {I};
    const int64_t sqkv[2] = {3 * (int64_t)D, D}, sout[2] = {D, D}, sup[2] = {I, D},
                  sdown[2] = {D, I};
    const unsigned ND = PLSTM_PARAM_NO_DECAY;
    PLSTM_TRY(sl_declare(p, prefix, "norm.scale", 1, sD, ND, &L->norm_off));
    PLSTM_TRY(sl_declare(p, prefix, "qkv.weight", 2, sqkv, 0, &L->qkv_w_off));
    PLSTM_TRY(sl_declare(p, prefix, "qkv.bias", 1, s3D, ND, &L->qkv_b_off));
    PLSTM_TRY(sl_declare(p, prefix, "outproj.weight", 2, sout, 0, &L->out_w_off));
    PLSTM_TRY(sl_declare(p, prefix, "outproj.bias", 1, sD, ND, &L->out_b_off));
    PLSTM_TRY(sl_declare(p, prefix, "scale.scale", 1, sD, ND, &L->scale_off));
    PLSTM_TRY(sl_declare(p, prefix, "norm2.scale", 1, sD, ND, &L->norm2_off));
    PLSTM_TRY(sl_declare(p, prefix, "upproj.weight", 2, sup, 0, &L->up_w_off));
    PLSTM_TRY(sl_declare(p, prefix, "upproj.bias", 1, sI, ND, &L->up_b_off));
    PLSTM_TRY(sl_declare(p, prefix, "downproj.weight", 2, sdown, 0, &L->down_w_off));
    PLSTM_TRY(sl_declare(p, prefix, "downproj.bias", 1, sD, ND, &L->down_b_off));
    PLSTM_TRY(sl_declare(p, prefix, "scale2.scale", 1, sD, ND, &L->scale2_off));
    return PLSTM_OK;
}

static void fill(void *params, plstm_dtype dtype, size_t off, size_t n, double v)
{
    for (size_t i = 0; i < n; i++)
        sl_set(params, dtype, off + i, v);
}

static void small_init(void *params, plstm_dtype dtype, size_t off, size_t n, int fan,
                       sl_rng *r)
{
    const double sigma = 1.0 / sqrt(2.5 * fan);
    for (size_t i = 0; i < n; i++)
        sl_set(params, dtype, off + i, sigma * sl_rng_normal(r));
}

plstm_status plstm_transformer_block_init(const plstm_transformer_block *L, void *params,
                                          plstm_dtype dtype, uint64_t seed)
{
    PLSTM_CHECK_ARG(L && params, TB " init: NULL argument");
    PLSTM_CHECK_ARG(dtype == PLSTM_F32 || dtype == PLSTM_F64, TB " init: F32 or F64");
    const size_t D = (size_t)L->cfg.dim, I = (size_t)L->inner;
    fill(params, dtype, L->norm_off, D, 1.0);
    fill(params, dtype, L->norm2_off, D, 1.0);
    fill(params, dtype, L->scale_off, D, L->cfg.layerscale_init);
    fill(params, dtype, L->scale2_off, D, L->cfg.layerscale_init);
    fill(params, dtype, L->qkv_b_off, 3 * D, 0.0);
    fill(params, dtype, L->out_b_off, D, 0.0);
    fill(params, dtype, L->up_b_off, I, 0.0);
    fill(params, dtype, L->down_b_off, D, 0.0);
    sl_rng r = {.s = seed ^ 0x7472616e73666d72ull, .has_spare = 0, .spare = 0};
    small_init(params, dtype, L->qkv_w_off, 3 * D * D, (int)D, &r);
    small_init(params, dtype, L->out_w_off, D * D, (int)D, &r);
    small_init(params, dtype, L->up_w_off, I * D, (int)D, &r);
    small_init(params, dtype, L->down_w_off, D * I, (int)I, &r);
    return PLSTM_OK;
}

/* ---- buffer layout ------------------------------------------------------ */

typedef struct tb_layout {
    size_t ND, NI, NL;
    size_t x0, q, k, v, o, lse, y1, x2, x3, x4, y2, y3, total; /* acts */
    size_t wa, w[6], wtotal;                                    /* work */
} tb_layout;

static int tb_layout_make(const plstm_transformer_block *L, int B, int N, tb_layout *l)
{
    if (!L || B < 1 || N < 1)
        return 0;
    memset(l, 0, sizeof *l);
    const size_t n = (size_t)B * N;
    l->ND = n * (size_t)L->cfg.dim;
    l->NI = n * (size_t)L->inner;
    l->NL = n * (size_t)L->cfg.num_heads;
    size_t o = 0;
    const size_t ND = align16(l->ND), NI = align16(l->NI);
    l->x0 = o, o += ND;
    l->q = o, o += ND;
    l->k = o, o += ND;
    l->v = o, o += ND;
    l->o = o, o += ND;
    l->lse = o, o += align16(l->NL);
    l->y1 = o, o += ND;
    l->x2 = o, o += ND;
    l->x3 = o, o += ND;
    l->x4 = o, o += NI;
    l->y2 = o, o += NI;
    l->y3 = o, o += ND;
    l->total = o;
    o = 0;
    l->wa = o, o += NI;
    for (int i = 0; i < 6; i++)
        l->w[i] = o, o += ND;
    l->wtotal = o;
    return 1;
}

size_t plstm_transformer_block_activation_size(const plstm_transformer_block *L, int B, int N)
{
    tb_layout l;
    return tb_layout_make(L, B, N, &l) ? l.total : 0;
}

size_t plstm_transformer_block_work_size(const plstm_transformer_block *L, int B, int N)
{
    tb_layout l;
    return tb_layout_make(L, B, N, &l) ? l.wtotal : 0;
}

static plstm_status check_call(plstm_context *ctx, const plstm_transformer_block *L,
                               plstm_dtype dtype, const void *params, int B, int N,
                               const void *work, const char *what)
{
    PLSTM_TRY(sl_check(ctx, dtype, what));
    PLSTM_CHECK_ARG(L && params && work, "%s: NULL block, parameters or work buffer", what);
    PLSTM_CHECK_ARG(B >= 1 && N >= 1, "%s: sizes B %d, N %d must be >= 1", what, B, N);
    PLSTM_CHECK_ARG((double)B * N * (L->inner + 6.0 * L->cfg.dim) < 9e15 &&
                        (double)B * N < 2147483647.0,
                    "%s: input B %d, N %d is too large", what, B, N);
    return PLSTM_OK;
}

plstm_status plstm_transformer_block_forward(plstm_context *ctx, const plstm_transformer_block *L,
                                             plstm_dtype dtype, const void *params, int B, int N,
                                             const void *x, void *y, void *acts, void *work)
{
    PLSTM_TRY(check_call(ctx, L, dtype, params, B, N, work, TB " forward"));
    PLSTM_CHECK_ARG(x && y && x != y, TB " forward: NULL or identical input and output");
    tb_layout l;
    tb_layout_make(L, B, N, &l);
    const size_t e = plstm_dtype_size(dtype), DD = (size_t)L->cfg.dim * L->cfg.dim;
    const int n = B * N, D = L->cfg.dim, I = L->inner, H = L->cfg.num_heads, Dh = L->head_dim;
    const double eps = L->cfg.norm_eps;
    void *x0, *q, *k, *v, *o, *lse, *y1, *x2, *x3, *x4, *y2, *y3;
    if (acts) {
        x0 = at(acts, e, l.x0), q = at(acts, e, l.q), k = at(acts, e, l.k);
        v = at(acts, e, l.v), o = at(acts, e, l.o), lse = at(acts, e, l.lse);
        y1 = at(acts, e, l.y1), x2 = at(acts, e, l.x2), x3 = at(acts, e, l.x3);
        x4 = at(acts, e, l.x4), y2 = at(acts, e, l.y2), y3 = at(acts, e, l.y3);
    } else { /* reuse buffers whose values are no longer needed */
        x0 = at(work, e, l.w[0]), q = at(work, e, l.w[1]), k = at(work, e, l.w[2]);
        v = at(work, e, l.w[3]), o = at(work, e, l.w[4]), lse = NULL;
        y1 = x0, x2 = at(work, e, l.w[5]), x3 = q, x4 = y2 = at(work, e, l.wa), y3 = k;
    }
    const void *Wqkv = cat(params, e, L->qkv_w_off), *bqkv = cat(params, e, L->qkv_b_off);
    /* attention branch */
    PLSTM_TRY(plstm_norm_forward(ctx, dtype, PLSTM_NORM_RMS, n, D, 1, eps, x,
                                 cat(params, e, L->norm_off), NULL, x0));
    PLSTM_TRY(plstm_linear_forward(ctx, dtype, n, D, D, x0, Wqkv, bqkv, q));
    PLSTM_TRY(plstm_linear_forward(ctx, dtype, n, D, D, x0, cat(Wqkv, e, DD),
                                   cat(bqkv, e, (size_t)D), k));
    PLSTM_TRY(plstm_linear_forward(ctx, dtype, n, D, D, x0, cat(Wqkv, e, 2 * DD),
                                   cat(bqkv, e, 2 * (size_t)D), v));
    PLSTM_TRY(plstm_attention_forward(ctx, dtype, B, N, H, Dh, q, k, v, o, lse));
    PLSTM_TRY(plstm_linear_forward(ctx, dtype, n, D, D, o, cat(params, e, L->out_w_off),
                                   cat(params, e, L->out_b_off), y1));
    PLSTM_TRY(plstm_scale_forward(ctx, dtype, n, D, y1, cat(params, e, L->scale_off), x2));
    PLSTM_TRY(plstm_add(ctx, dtype, l.ND, x2, x, x2));
    /* MLP branch */
    PLSTM_TRY(plstm_norm_forward(ctx, dtype, PLSTM_NORM_RMS, n, D, 1, eps, x2,
                                 cat(params, e, L->norm2_off), NULL, x3));
    PLSTM_TRY(plstm_linear_forward(ctx, dtype, n, D, I, x3, cat(params, e, L->up_w_off),
                                   cat(params, e, L->up_b_off), x4));
    PLSTM_TRY(plstm_activation_forward(ctx, dtype, L->cfg.act, l.NI, x4, y2));
    PLSTM_TRY(plstm_linear_forward(ctx, dtype, n, I, D, y2, cat(params, e, L->down_w_off),
                                   cat(params, e, L->down_b_off), y3));
    PLSTM_TRY(plstm_scale_forward(ctx, dtype, n, D, y3, cat(params, e, L->scale2_off), y));
    PLSTM_TRY(plstm_add(ctx, dtype, l.ND, y, x2, y));
    return PLSTM_OK;
}

plstm_status plstm_transformer_block_backward(plstm_context *ctx,
                                              const plstm_transformer_block *L, plstm_dtype dtype,
                                              const void *params, int B, int N, const void *x,
                                              const void *acts, const void *dy, void *dx,
                                              void *grads, void *work)
{
    PLSTM_TRY(check_call(ctx, L, dtype, params, B, N, work, TB " backward"));
    PLSTM_CHECK_ARG(x && acts && dy && grads, TB " backward: NULL input, acts, dy or grads");
    tb_layout l;
    tb_layout_make(L, B, N, &l);
    const size_t e = plstm_dtype_size(dtype), DD = (size_t)L->cfg.dim * L->cfg.dim;
    const int n = B * N, D = L->cfg.dim, I = L->inner, H = L->cfg.num_heads, Dh = L->head_dim;
    const double eps = L->cfg.norm_eps;
    void *ga = at(work, e, l.wa), *w0 = at(work, e, l.w[0]), *w1 = at(work, e, l.w[1]);
    void *w2 = at(work, e, l.w[2]), *w3 = at(work, e, l.w[3]), *w4 = at(work, e, l.w[4]);
    void *w5 = at(work, e, l.w[5]);
    const void *x0 = cat(acts, e, l.x0);
    const void *Wqkv = cat(params, e, L->qkv_w_off);
    void *gWqkv = at(grads, e, L->qkv_w_off), *gbqkv = at(grads, e, L->qkv_b_off);

    /* MLP branch: y = x2 + scale2 ⊙ down(act(up(norm2(x2)))) */
    PLSTM_TRY(plstm_scale_backward(ctx, dtype, n, D, cat(acts, e, l.y3),
                                   cat(params, e, L->scale2_off), dy, w0,
                                   at(grads, e, L->scale2_off)));
    PLSTM_TRY(plstm_linear_backward(ctx, dtype, n, I, D, cat(acts, e, l.y2),
                                    cat(params, e, L->down_w_off), w0, ga,
                                    at(grads, e, L->down_w_off), at(grads, e, L->down_b_off)));
    PLSTM_TRY(plstm_activation_backward(ctx, dtype, L->cfg.act, l.NI, cat(acts, e, l.x4), ga,
                                        ga));
    PLSTM_TRY(plstm_linear_backward(ctx, dtype, n, D, I, cat(acts, e, l.x3),
                                    cat(params, e, L->up_w_off), ga, w1,
                                    at(grads, e, L->up_w_off), at(grads, e, L->up_b_off)));
    PLSTM_TRY(plstm_norm_backward(ctx, dtype, PLSTM_NORM_RMS, n, D, 1, eps, cat(acts, e, l.x2),
                                  cat(params, e, L->norm2_off), w1, w2,
                                  at(grads, e, L->norm2_off), NULL));
    void *dx2 = w3;
    PLSTM_TRY(plstm_add(ctx, dtype, l.ND, dy, w2, dx2));
    /* attention branch: x2 = x + scale ⊙ outproj(attention(qkv(norm(x)))) */
    PLSTM_TRY(plstm_scale_backward(ctx, dtype, n, D, cat(acts, e, l.y1),
                                   cat(params, e, L->scale_off), dx2, w0,
                                   at(grads, e, L->scale_off)));
    PLSTM_TRY(plstm_linear_backward(ctx, dtype, n, D, D, cat(acts, e, l.o),
                                    cat(params, e, L->out_w_off), w0, w1,
                                    at(grads, e, L->out_w_off), at(grads, e, L->out_b_off)));
    void *dq = w2, *dk = w4, *dv = w5;
    PLSTM_TRY(plstm_attention_backward(ctx, dtype, B, N, H, Dh, cat(acts, e, l.q),
                                       cat(acts, e, l.k), cat(acts, e, l.v), cat(acts, e, l.o),
                                       cat(acts, e, l.lse), w1, dq, dk, dv));
    PLSTM_TRY(plstm_linear_backward(ctx, dtype, n, D, D, x0, Wqkv, dq, w0, gWqkv, gbqkv));
    PLSTM_TRY(plstm_linear_backward(ctx, dtype, n, D, D, x0, cat(Wqkv, e, DD), dk, w1,
                                    at(gWqkv, e, DD), at(gbqkv, e, (size_t)D)));
    PLSTM_TRY(plstm_add(ctx, dtype, l.ND, w0, w1, w0));
    PLSTM_TRY(plstm_linear_backward(ctx, dtype, n, D, D, x0, cat(Wqkv, e, 2 * DD), dv, w1,
                                    at(gWqkv, e, 2 * DD), at(gbqkv, e, 2 * (size_t)D)));
    PLSTM_TRY(plstm_add(ctx, dtype, l.ND, w0, w1, w0));
    if (dx) {
        PLSTM_TRY(plstm_norm_backward(ctx, dtype, PLSTM_NORM_RMS, n, D, 1, eps, x,
                                      cat(params, e, L->norm_off), w0, w1,
                                      at(grads, e, L->norm_off), NULL));
        PLSTM_TRY(plstm_add(ctx, dtype, l.ND, dx2, w1, dx));
    } else {
        PLSTM_TRY(plstm_norm_backward(ctx, dtype, PLSTM_NORM_RMS, n, D, 1, eps, x,
                                      cat(params, e, L->norm_off), w0, NULL,
                                      at(grads, e, L->norm_off), NULL));
    }
    return PLSTM_OK;
}
