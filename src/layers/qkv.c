/* Query / key / value projections (plstm-math.md §5.3): per-head block
 * projections with sub_heads, bias, optional l2 normalization over J. */
#include "layers/sublayer_impl.h"

#include <cblas.h>
#include <stdlib.h>

#define REAL float
#define FN(name) name##_f32
#define GEMM cblas_sgemm
#include "layers/qkv_impl.h"
#undef REAL
#undef FN
#undef GEMM
#define REAL double
#define FN(name) name##_f64
#define GEMM cblas_dgemm
#include "layers/qkv_impl.h"
#undef REAL
#undef FN
#undef GEMM

plstm_qkv_config plstm_qkv_config_default(int input_dim, int num_heads, int DK, int J)
{
    plstm_qkv_config c;
    memset(&c, 0, sizeof c);
    c.input_dim = input_dim;
    c.num_heads = num_heads;
    c.sub_heads = num_heads;
    c.DK = DK;
    c.J = J;
    c.bias = 1;
    c.l2_norm = 0;
    c.init_mup = 1.0;
    return c;
}

plstm_status plstm_qkv_declare(plstm_qkv *L, const plstm_qkv_config *cfg, plstm_params *p,
                               const char *prefix)
{
    PLSTM_CHECK_ARG(L && cfg && p, "plstm_qkv_declare: NULL argument");
    const plstm_qkv_config *c = cfg;
    const char *pf = prefix ? prefix : "";
    PLSTM_CHECK_ARG(c->input_dim >= 1 && c->num_heads >= 1 && c->sub_heads >= 1 && c->DK >= 1 &&
                        c->J >= 1,
                    "qkv %s: input_dim %d, num_heads %d, sub_heads %d, DK %d, J %d must be >= 1",
                    pf, c->input_dim, c->num_heads, c->sub_heads, c->DK, c->J);
    PLSTM_CHECK_ARG(c->input_dim % c->sub_heads == 0,
                    "qkv %s: sub_heads %d must divide input_dim %d", pf, c->sub_heads,
                    c->input_dim);
    PLSTM_CHECK_ARG(c->num_heads % c->sub_heads == 0 || c->sub_heads % c->num_heads == 0,
                    "qkv %s: one of num_heads %d and sub_heads %d must divide the other", pf,
                    c->num_heads, c->sub_heads);
    const int split = c->sub_heads > c->num_heads ? c->sub_heads / c->num_heads : 1;
    PLSTM_CHECK_ARG(c->DK % split == 0, "qkv %s: DK %d must be a multiple of sub_heads/num_heads %d",
                    pf, c->DK, split);
    PLSTM_CHECK_ARG((long long)c->num_heads * c->DK * c->J < (1LL << 30),
                    "qkv %s: too many outputs per row", pf);
    memset(L, 0, sizeof *L);
    L->cfg = *c;
    L->G = c->num_heads > c->sub_heads ? c->num_heads / c->sub_heads : 1;
    L->DKs = c->DK / split;
    const int64_t sw[5] = {L->G, L->DKs, c->J, c->sub_heads, c->input_dim / c->sub_heads};
    const int64_t sb[3] = {c->num_heads, c->DK, c->J};
    PLSTM_TRY(sl_declare(p, prefix, "weight", 5, sw, 0, &L->weight_off));
    L->bias_off = PLSTM_NO_PARAM;
    if (c->bias)
        PLSTM_TRY(sl_declare(p, prefix, "bias", 3, sb, PLSTM_PARAM_NO_DECAY, &L->bias_off));
    return PLSTM_OK;
}

plstm_status plstm_qkv_init(const plstm_qkv *L, void *params, plstm_dtype dtype, uint64_t seed)
{
    PLSTM_CHECK_ARG(L && params, "plstm_qkv_init: NULL argument");
    PLSTM_CHECK_ARG(dtype == PLSTM_F32 || dtype == PLSTM_F64, "plstm_qkv_init: F32 or F64");
    /* SmallInit with fan = input features of a block (the torch Linear meaning) */
    const int Dsub = L->cfg.input_dim / L->cfg.sub_heads;
    const double sigma = L->cfg.init_mup / sqrt(2.5 * Dsub);
    const size_t nw = (size_t)L->G * L->DKs * L->cfg.J * L->cfg.sub_heads * Dsub;
    sl_rng r = {.s = seed ^ 0x51CA11A7ull, .has_spare = 0, .spare = 0};
    for (size_t i = 0; i < nw; i++)
        sl_set(params, dtype, L->weight_off + i, sigma * sl_rng_normal(&r));
    if (L->bias_off != PLSTM_NO_PARAM)
        for (size_t i = 0; i < (size_t)L->cfg.num_heads * L->cfg.DK * L->cfg.J; i++)
            sl_set(params, dtype, L->bias_off + i, 0.0);
    return PLSTM_OK;
}

size_t plstm_qkv_activation_size(const plstm_qkv *L, size_t N)
{
    return L && L->cfg.l2_norm ? N * (size_t)L->cfg.num_heads * L->cfg.DK * L->cfg.J : 0;
}

static plstm_status qkv_check(plstm_context *ctx, const plstm_qkv *L, plstm_dtype dtype,
                              const void *params, size_t N, const void *x, const char *what)
{
    PLSTM_TRY(sl_check(ctx, dtype, what));
    PLSTM_CHECK_ARG(L && params, "%s: NULL layer or params", what);
    PLSTM_CHECK_ARG(N <= (size_t)1 << 30, "%s: %zu rows is too many", what, N);
    PLSTM_CHECK_ARG(x || N == 0, "%s: NULL input", what);
    return PLSTM_OK;
}

plstm_status plstm_qkv_forward(plstm_context *ctx, const plstm_qkv *L, plstm_dtype dtype,
                               const void *params, size_t N, const void *x, void *y, void *acts)
{
    PLSTM_TRY(qkv_check(ctx, L, dtype, params, N, x, "plstm_qkv_forward"));
    PLSTM_CHECK_ARG(y || N == 0, "plstm_qkv_forward: NULL output");
    if (N == 0)
        return PLSTM_OK;
    void *pre = acts;
    if (L->cfg.l2_norm && !pre &&
        !(pre = malloc(plstm_qkv_activation_size(L, N) * plstm_dtype_size(dtype))))
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "plstm_qkv_forward: out of memory");
    const int nt = sl_threads(ctx);
    if (dtype == PLSTM_F32)
        qkv_forward_f32(L, params, N, x, y, pre, nt);
    else
        qkv_forward_f64(L, params, N, x, y, pre, nt);
    if (pre != acts)
        free(pre);
    return PLSTM_OK;
}

plstm_status plstm_qkv_backward(plstm_context *ctx, const plstm_qkv *L, plstm_dtype dtype,
                                const void *params, size_t N, const void *x, const void *acts,
                                const void *dy, void *dx, void *grads)
{
    PLSTM_TRY(qkv_check(ctx, L, dtype, params, N, x, "plstm_qkv_backward"));
    PLSTM_CHECK_ARG((dy && grads) || N == 0, "plstm_qkv_backward: NULL dy or grads");
    PLSTM_CHECK_ARG(acts || !L->cfg.l2_norm || N == 0,
                    "plstm_qkv_backward: the forward's acts are needed (l2 normalization)");
    if (N == 0)
        return PLSTM_OK;
    const int nt = sl_threads(ctx);
    if (dtype == PLSTM_F32)
        return qkv_backward_f32(L, params, N, x, acts, dy, dx, grads, nt);
    return qkv_backward_f64(L, params, N, x, acts, dy, dx, grads, nt);
}
