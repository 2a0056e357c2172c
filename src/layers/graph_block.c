/* PostUpProjectionBlock (plstm-math.md §7.1) around a graph pLSTM layer
 * (§6.5: a graph block is two of these, P then D):
 *   x1 = norm(x); x2 = x + layer(x1); x3 = norm2(x2); x4 = up(x3);
 *   y2 = GELU(x4); y = x2 + down(y2).
 * Saved for backward (acts): x1, the layer's acts, x2, x3, x4, y2. */
#include "layers/graph_layer_internal.h"
#include "layers/sublayer_impl.h"

#include <stdlib.h>

#define GB "graph PostUp block"

plstm_status plstm_graph_postup_declare(plstm_graph_postup *B, const plstm_graph_layer_config *lc,
                                        plstm_params *p, const char *prefix)
{
    PLSTM_CHECK_ARG(B && lc && p, GB ": NULL argument");
    const int D = lc->input_dim;
    PLSTM_CHECK_ARG(D >= 1 && D <= (1 << 20), GB ": dim %d out of range", D);
    memset(B, 0, sizeof *B);
    B->dim = D;
    B->inner = ((4 * D - 1) / 64 + 1) * 64;
    B->act = PLSTM_ACT_GELU;
    B->norm_eps = 1e-5;
    const int I = B->inner;
    const int64_t sD[1] = {D}, sI[1] = {I}, sup[2] = {I, D}, sdown[2] = {D, I};
    PLSTM_TRY(sl_declare(p, prefix, "norm.scale", 1, sD, PLSTM_PARAM_NO_DECAY, &B->norm_off));
    PLSTM_TRY(sl_declare(p, prefix, "norm2.scale", 1, sD, PLSTM_PARAM_NO_DECAY, &B->norm2_off));
    PLSTM_TRY(sl_declare(p, prefix, "upproj.weight", 2, sup, 0, &B->up_w));
    PLSTM_TRY(sl_declare(p, prefix, "upproj.bias", 1, sI, PLSTM_PARAM_NO_DECAY, &B->up_b));
    char sub[PLSTM_PARAM_NAME_MAX];
    int n = (prefix && prefix[0]) ? snprintf(sub, sizeof sub, "%s.interaction_module", prefix)
                                   : snprintf(sub, sizeof sub, "interaction_module");
    PLSTM_CHECK_ARG(n > 0 && (size_t)n < sizeof sub, GB ": prefix is too long");
    PLSTM_TRY(plstm_graph_layer_declare(&B->layer, lc, p, sub));
    PLSTM_CHECK_ARG(lc->out || B->layer.HV == D, GB ": the layer's output size must equal dim");
    PLSTM_TRY(sl_declare(p, prefix, "downproj.weight", 2, sdown, 0, &B->down_w));
    PLSTM_TRY(sl_declare(p, prefix, "downproj.bias", 1, sD, PLSTM_PARAM_NO_DECAY, &B->down_b));
    return PLSTM_OK;
}

plstm_status plstm_graph_postup_init(const plstm_graph_postup *B, void *params, plstm_dtype dtype,
                                     uint64_t seed)
{
    PLSTM_CHECK_ARG(B && params, GB " init: NULL argument");
    PLSTM_CHECK_ARG(dtype == PLSTM_F32 || dtype == PLSTM_F64, GB " init: F32 or F64");
    const size_t D = (size_t)B->dim, I = (size_t)B->inner;
    for (size_t i = 0; i < D; i++) {
        sl_set(params, dtype, B->norm_off + i, 1.0);
        sl_set(params, dtype, B->norm2_off + i, 1.0);
        sl_set(params, dtype, B->down_b + i, 0.0);
    }
    for (size_t i = 0; i < I; i++)
        sl_set(params, dtype, B->up_b + i, 0.0);
    sl_rng r = {.s = seed ^ 0xBB67AE8584CAA73Bull, .has_spare = 0, .spare = 0};
    for (size_t i = 0; i < I * D; i++)
        sl_set(params, dtype, B->up_w + i, sl_rng_normal(&r) / sqrt(2.5 * (double)D));
    for (size_t i = 0; i < D * I; i++)
        sl_set(params, dtype, B->down_w + i, sl_rng_normal(&r) / sqrt(2.5 * (double)I));
    return plstm_graph_layer_init(&B->layer, params, dtype, seed * 0x9E3779B97F4A7C15ull + 7);
}

typedef struct gb_layout {
    size_t ND, NI, x1, la, x2, x3, x4, y2, total;
} gb_layout;

static void layout_make(const plstm_graph_postup *B, const plstm_graph_batch *b, gb_layout *l)
{
    const size_t N = (size_t)b->num_nodes;
    l->ND = N * (size_t)B->dim;
    l->NI = N * (size_t)B->inner;
    size_t o = 0;
    l->x1 = o, o += l->ND;
    l->la = o, o += plstm_graph_layer_activation_size(&B->layer, b);
    l->x2 = o, o += l->ND;
    l->x3 = o, o += l->ND;
    l->x4 = o, o += l->NI;
    l->y2 = o, o += l->NI;
    l->total = o;
}

size_t plstm_graph_postup_activation_size(const plstm_graph_postup *B, const plstm_graph_batch *b)
{
    if (!B || !b)
        return 0;
    gb_layout l;
    layout_make(B, b, &l);
    return l.total;
}

plstm_status plstm_graph_postup_forward(plstm_context *ctx, const plstm_graph_postup *B,
                                        plstm_dtype dt, const void *params,
                                        const plstm_graph_batch *b, const void *x,
                                        const void *edge_x, void *y, void *acts)
{
    PLSTM_TRY(sl_check(ctx, dt, GB " forward"));
    PLSTM_CHECK_ARG(B && params && b && x && y, GB " forward: NULL argument");
    gb_layout l;
    layout_make(B, b, &l);
    const size_t e = plstm_dtype_size(dt);
    const int n = (int)b->num_nodes, D = B->dim, I = B->inner;
    if (n == 0)
        return PLSTM_OK;
    /* inference: the layer runs without acts, x1..x3 in scratch, x4 = y2 in place */
    void *own = acts ? NULL : malloc((3 * l.ND + l.NI) * e);
    if (!acts && !own)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, GB " forward: cannot allocate scratch");
    void *x1, *x2, *x3, *x4, *y2, *la = NULL;
    if (acts) {
        x1 = gl_at(acts, e, l.x1), x2 = gl_at(acts, e, l.x2), x3 = gl_at(acts, e, l.x3);
        x4 = gl_at(acts, e, l.x4), y2 = gl_at(acts, e, l.y2), la = gl_at(acts, e, l.la);
    } else {
        x1 = own, x2 = gl_at(own, e, l.ND), x3 = gl_at(own, e, 2 * l.ND);
        x4 = y2 = gl_at(own, e, 3 * l.ND);
    }
    plstm_status st = plstm_norm_forward(ctx, dt, PLSTM_NORM_RMS, n, D, 1, B->norm_eps, x,
                                         gl_cat(params, e, B->norm_off), NULL, x1);
    if (st == PLSTM_OK)
        st = plstm_graph_layer_forward(ctx, &B->layer, dt, params, b, x1, edge_x, x2, la);
    if (st == PLSTM_OK)
        st = plstm_add(ctx, dt, l.ND, x2, x, x2);
    if (st == PLSTM_OK)
        st = plstm_norm_forward(ctx, dt, PLSTM_NORM_RMS, n, D, 1, B->norm_eps, x2,
                                gl_cat(params, e, B->norm2_off), NULL, x3);
    if (st == PLSTM_OK)
        st = plstm_linear_forward(ctx, dt, n, D, I, x3, gl_cat(params, e, B->up_w),
                                  gl_cat(params, e, B->up_b), x4);
    if (st == PLSTM_OK)
        st = plstm_activation_forward(ctx, dt, B->act, l.NI, x4, y2);
    if (st == PLSTM_OK)
        st = plstm_linear_forward(ctx, dt, n, I, D, y2, gl_cat(params, e, B->down_w),
                                  gl_cat(params, e, B->down_b), y);
    if (st == PLSTM_OK)
        st = plstm_add(ctx, dt, l.ND, y, x2, y);
    free(own);
    return st;
}

plstm_status plstm_graph_postup_backward(plstm_context *ctx, const plstm_graph_postup *B,
                                         plstm_dtype dt, const void *params,
                                         const plstm_graph_batch *b, const void *x,
                                         const void *edge_x, const void *acts, const void *dy,
                                         void *dx, void *dedge_x, void *grads)
{
    PLSTM_TRY(sl_check(ctx, dt, GB " backward"));
    PLSTM_CHECK_ARG(B && params && b && x && acts && dy && grads, GB " backward: NULL argument");
    gb_layout l;
    layout_make(B, b, &l);
    const size_t e = plstm_dtype_size(dt);
    const int n = (int)b->num_nodes, D = B->dim, I = B->inner;
    const size_t nde = B->layer.cfg.kind == PLSTM_GRAPH_LAYER_EDGE
                           ? (size_t)b->num_edges * (size_t)B->layer.cfg.edge_input_dim : 0;
    if (n == 0)
        return PLSTM_OK;
    void *ga = malloc((l.NI + 3 * l.ND + nde + 1) * e);
    if (!ga)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, GB " backward: cannot allocate scratch");
    void *t1 = gl_at(ga, e, l.NI), *t2 = gl_at(ga, e, l.NI + l.ND);
    void *dx2 = gl_at(ga, e, l.NI + 2 * l.ND), *dex = gl_at(ga, e, l.NI + 3 * l.ND);
    plstm_status st = plstm_linear_backward(ctx, dt, n, I, D, gl_cat(acts, e, l.y2),
                                            gl_cat(params, e, B->down_w), dy, ga,
                                            gl_at(grads, e, B->down_w), gl_at(grads, e, B->down_b));
    if (st == PLSTM_OK)
        st = plstm_activation_backward(ctx, dt, B->act, l.NI, gl_cat(acts, e, l.x4), ga, ga);
    if (st == PLSTM_OK)
        st = plstm_linear_backward(ctx, dt, n, D, I, gl_cat(acts, e, l.x3),
                                   gl_cat(params, e, B->up_w), ga, t1, gl_at(grads, e, B->up_w),
                                   gl_at(grads, e, B->up_b));
    if (st == PLSTM_OK)
        st = plstm_norm_backward(ctx, dt, PLSTM_NORM_RMS, n, D, 1, B->norm_eps,
                                 gl_cat(acts, e, l.x2), gl_cat(params, e, B->norm2_off), t1, t2,
                                 gl_at(grads, e, B->norm2_off), NULL);
    if (st == PLSTM_OK)
        st = plstm_add(ctx, dt, l.ND, dy, t2, dx2);
    if (st == PLSTM_OK)
        st = plstm_graph_layer_backward(ctx, &B->layer, dt, params, b, gl_cat(acts, e, l.x1),
                                        edge_x, gl_cat(acts, e, l.la), dx2, t1,
                                        nde ? dex : NULL, grads);
    if (st == PLSTM_OK && nde && dedge_x)
        st = plstm_axpy(ctx, dt, nde, 1.0, dex, dedge_x);
    if (st == PLSTM_OK)
        st = plstm_norm_backward(ctx, dt, PLSTM_NORM_RMS, n, D, 1, B->norm_eps, x,
                                 gl_cat(params, e, B->norm_off), t1, t2,
                                 gl_at(grads, e, B->norm_off), NULL);
    if (st == PLSTM_OK && dx)
        st = plstm_add(ctx, dt, l.ND, dx2, t2, dx);
    free(ga);
    return st;
}
