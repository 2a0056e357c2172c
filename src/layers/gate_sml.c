/* Source / Mark / Direct sub-layers (plstm-math.md §5.1): per-head gate
 * tensors, bias-only or bias + W·x, through logsigmoid / tanh / identity. */
#include "layers/sublayer_impl.h"

#include <cblas.h>
#include <stdlib.h>

#define REAL float
#define FN(name) name##_f32
#define GEMM cblas_sgemm
#define MATH(fn) fn##f
#include "layers/realmath_impl.h"
#include "layers/headproj_impl.h"
#include "layers/gate_sml_impl.h"
#undef REAL
#undef FN
#undef GEMM
#undef MATH
#define REAL double
#define FN(name) name##_f64
#define GEMM cblas_dgemm
#define MATH(fn) fn
#include "layers/realmath_impl.h"
#include "layers/headproj_impl.h"
#include "layers/gate_sml_impl.h"
#undef REAL
#undef FN
#undef GEMM
#undef MATH

plstm_gate_config plstm_gate_config_default(plstm_gate_kind kind, int input_dim, int num_heads)
{
    plstm_gate_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.input_dim = input_dim;
    c.num_heads = num_heads;
    c.sub_heads = 1;
    c.JT = c.JK = c.JV = c.JQ = c.JO = 1;
    c.weight = 0;
    c.activation = PLSTM_GATE_ACT_LOGSIGMOID;
    c.activation_scale = 1.0;
    c.bias_init = -5.0;
    return c;
}

/* The kind's J dims in parameter order; returns their count. */
static int gate_jdims(const plstm_gate_config *c, int64_t *d)
{
    switch (c->kind) {
    case PLSTM_GATE_SOURCE: d[0] = c->JT, d[1] = c->JK, d[2] = c->JV; return 3;
    case PLSTM_GATE_MARK: d[0] = c->JO, d[1] = c->JQ, d[2] = c->JT; return 3;
    default: d[0] = c->JO, d[1] = c->JQ, d[2] = c->JK, d[3] = c->JV; return 4;
    }
}

plstm_status plstm_gate_declare(plstm_gate *L, const plstm_gate_config *cfg, plstm_params *p,
                                const char *prefix)
{
    PLSTM_CHECK_ARG(L && cfg && p, "plstm_gate_declare: NULL argument");
    const plstm_gate_config *c = cfg;
    PLSTM_CHECK_ARG(c->kind >= PLSTM_GATE_SOURCE && c->kind <= PLSTM_GATE_DIRECT,
                    "gate %s: unknown kind %d", prefix ? prefix : "", (int)c->kind);
    PLSTM_CHECK_ARG(c->input_dim >= 1 && c->num_heads >= 1 && c->sub_heads >= 1,
                    "gate %s: input_dim %d, num_heads %d, sub_heads %d must be >= 1",
                    prefix ? prefix : "", c->input_dim, c->num_heads, c->sub_heads);
    PLSTM_CHECK_ARG(c->num_heads % c->sub_heads == 0 && c->input_dim % c->sub_heads == 0,
                    "gate %s: sub_heads %d must divide num_heads %d and input_dim %d",
                    prefix ? prefix : "", c->sub_heads, c->num_heads, c->input_dim);
    PLSTM_CHECK_ARG(c->activation >= PLSTM_GATE_ACT_LOGSIGMOID &&
                        c->activation <= PLSTM_GATE_ACT_IDENTITY,
                    "gate %s: unknown activation %d", prefix ? prefix : "", (int)c->activation);
    PLSTM_CHECK_ARG(c->activation != PLSTM_GATE_ACT_TANH || c->activation_scale != 0,
                    "gate %s: tanh activation needs a nonzero activation_scale",
                    prefix ? prefix : "");
    int64_t jd[4];
    int nj = gate_jdims(c, jd);
    long long P = 1;
    for (int i = 0; i < nj; i++) {
        PLSTM_CHECK_ARG(jd[i] >= 1 && jd[i] <= 4096, "gate %s: J dims must be in 1..4096",
                        prefix ? prefix : "");
        P *= jd[i];
    }
    PLSTM_CHECK_ARG(P * c->num_heads < (1LL << 30), "gate %s: too many outputs per row",
                    prefix ? prefix : "");
    memset(L, 0, sizeof *L);
    L->cfg = *c;
    L->P = (int)P;
    int64_t shape[PLSTM_PARAM_MAX_RANK];
    shape[0] = c->num_heads;
    for (int i = 0; i < nj; i++)
        shape[1 + i] = jd[i];
    PLSTM_TRY(sl_declare(p, prefix, "bias", 1 + nj, shape, PLSTM_PARAM_NO_DECAY, &L->bias_off));
    L->weight_off = PLSTM_NO_PARAM;
    if (c->weight) {
        shape[0] = c->num_heads / c->sub_heads;
        shape[1] = c->sub_heads;
        for (int i = 0; i < nj; i++)
            shape[2 + i] = jd[i];
        shape[2 + nj] = c->input_dim / c->sub_heads;
        PLSTM_TRY(sl_declare(p, prefix, "weight", 3 + nj, shape, 0, &L->weight_off));
    }
    return PLSTM_OK;
}

plstm_status plstm_gate_init(const plstm_gate *L, void *params, plstm_dtype dtype, uint64_t seed)
{
    PLSTM_CHECK_ARG(L && params, "plstm_gate_init: NULL argument");
    PLSTM_CHECK_ARG(dtype == PLSTM_F32 || dtype == PLSTM_F64, "plstm_gate_init: F32 or F64");
    const size_t nb = (size_t)L->cfg.num_heads * L->P;
    for (size_t i = 0; i < nb; i++)
        sl_set(params, dtype, L->bias_off + i, L->cfg.bias_init);
    if (L->weight_off != PLSTM_NO_PARAM)
        for (size_t i = 0; i < nb * (size_t)(L->cfg.input_dim / L->cfg.sub_heads); i++)
            sl_set(params, dtype, L->weight_off + i, 0.0);
    return PLSTM_OK;
}

size_t plstm_gate_activation_size(const plstm_gate *L, size_t N)
{
    return L && L->cfg.weight ? N * (size_t)L->cfg.num_heads * L->P : 0;
}

static plstm_status gate_check(plstm_context *ctx, const plstm_gate *L, plstm_dtype dtype,
                               const void *params, size_t N, const void *x, const char *what)
{
    PLSTM_TRY(sl_check(ctx, dtype, what));
    PLSTM_CHECK_ARG(L && params, "%s: NULL layer or params", what);
    PLSTM_CHECK_ARG(N <= (size_t)1 << 30, "%s: %zu rows is too many", what, N);
    PLSTM_CHECK_ARG(x || !L->cfg.weight || N == 0, "%s: NULL input", what);
    return PLSTM_OK;
}

plstm_status plstm_gate_forward(plstm_context *ctx, const plstm_gate *L, plstm_dtype dtype,
                                const void *params, size_t N, const void *x, void *y, void *acts)
{
    PLSTM_TRY(gate_check(ctx, L, dtype, params, N, x, "plstm_gate_forward"));
    PLSTM_CHECK_ARG(y || N == 0, "plstm_gate_forward: NULL output");
    if (N == 0)
        return PLSTM_OK;
    const int nt = sl_threads(ctx);
    if (dtype == PLSTM_F32)
        gate_forward_f32(L, params, N, x, y, acts, nt);
    else
        gate_forward_f64(L, params, N, x, y, acts, nt);
    return PLSTM_OK;
}

plstm_status plstm_gate_backward(plstm_context *ctx, const plstm_gate *L, plstm_dtype dtype,
                                 const void *params, size_t N, const void *x, const void *acts,
                                 const void *dy, void *dx, void *grads)
{
    PLSTM_TRY(gate_check(ctx, L, dtype, params, N, x, "plstm_gate_backward"));
    PLSTM_CHECK_ARG((dy && grads) || N == 0, "plstm_gate_backward: NULL dy or grads");
    PLSTM_CHECK_ARG(acts || !L->cfg.weight || N == 0,
                    "plstm_gate_backward: the forward's acts are needed (weight = 1)");
    if (N == 0)
        return PLSTM_OK;
    const int nt = sl_threads(ctx);
    if (dtype == PLSTM_F32)
        return gate_backward_f32(L, params, N, x, acts, dy, dx, grads, nt);
    return gate_backward_f64(L, params, N, x, acts, dy, dx, grads, nt);
}
