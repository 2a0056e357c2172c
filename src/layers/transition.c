/* LongRangeTransition sub-layer (plstm-math.md §5.2): per-head JT×JT
 * transitions T = O_out·diag(λ)·O_in with bounded eigenvalues λ and
 * (approximately) orthogonal O from the truncated exponential series. */
#include "layers/sublayer_impl.h"

#include <cblas.h>
#include <stdlib.h>

/* Scratch of the orthogonalization, in n² elements (the backward's 2n×2n series). */
enum { EXPO_WORK = 20 };

#define REAL float
#define FN(name) name##_f32
#define GEMM cblas_sgemm
#define MATH(fn) fn##f
#include "layers/realmath_impl.h"
#include "layers/headproj_impl.h"
#include "layers/transition_impl.h"
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
#include "layers/transition_impl.h"
#undef REAL
#undef FN
#undef GEMM
#undef MATH

static const char *const tnorm_names[] = {"exponential_orthogonalization", "qr",
                                          "householder_orthogonalization",
                                          "eigenvalue_restriction", "singularvalue_restriction"};

plstm_transition_config plstm_transition_config_default(int input_dim, int num_heads, int JT)
{
    plstm_transition_config c;
    memset(&c, 0, sizeof c);
    c.input_dim = input_dim;
    c.num_heads = num_heads;
    c.sub_heads = 1;
    c.JT = JT;
    c.weight = 1;
    c.eigenvalue_repr = PLSTM_EIG_TANH;
    c.eigenvalue_factor = 5.0;
    c.symmetric = 0;
    c.normalization = PLSTM_TNORM_EXPONENTIAL;
    c.orthogonalization_factor = 1.0;
    c.orthogonalization_order = 16;
    return c;
}

plstm_status plstm_transition_declare(plstm_transition *L, const plstm_transition_config *cfg,
                                      plstm_params *p, const char *prefix)
{
    PLSTM_CHECK_ARG(L && cfg && p, "plstm_transition_declare: NULL argument");
    const plstm_transition_config *c = cfg;
    const char *pf = prefix ? prefix : "";
    PLSTM_CHECK_ARG(c->input_dim >= 1 && c->num_heads >= 1 && c->sub_heads >= 1,
                    "transition %s: input_dim %d, num_heads %d, sub_heads %d must be >= 1", pf,
                    c->input_dim, c->num_heads, c->sub_heads);
    PLSTM_CHECK_ARG(c->num_heads % c->sub_heads == 0 && c->input_dim % c->sub_heads == 0,
                    "transition %s: sub_heads %d must divide num_heads %d and input_dim %d", pf,
                    c->sub_heads, c->num_heads, c->input_dim);
    PLSTM_CHECK_ARG(c->JT >= 1 && c->JT <= 256, "transition %s: JT %d must be in 1..256", pf, c->JT);
    PLSTM_CHECK_ARG(c->eigenvalue_repr >= PLSTM_EIG_TANH && c->eigenvalue_repr <= PLSTM_EIG_EXPEXP,
                    "transition %s: unknown eigenvalue representation %d", pf,
                    (int)c->eigenvalue_repr);
    PLSTM_CHECK_ARG(c->normalization >= PLSTM_TNORM_EXPONENTIAL &&
                        c->normalization <= PLSTM_TNORM_SINGULARVALUE_RESTRICTION,
                    "transition %s: unknown normalization %d", pf, (int)c->normalization);
    if (c->JT > 1 && c->normalization != PLSTM_TNORM_EXPONENTIAL)
        return plstm_fail(PLSTM_ERR_UNSUPPORTED,
                          "transition %s: normalization_mode '%s' is not implemented (only "
                          "exponential_orthogonalization)",
                          pf, tnorm_names[c->normalization]);
    PLSTM_CHECK_ARG(c->orthogonalization_order >= 1 && c->orthogonalization_order <= 64,
                    "transition %s: orthogonalization_order %d must be in 1..64", pf,
                    c->orthogonalization_order);
    memset(L, 0, sizeof *L);
    L->cfg = *c;
    L->inproj_bias_off = L->inproj_weight_off = PLSTM_NO_PARAM;
    L->outproj_bias_off = L->outproj_weight_off = PLSTM_NO_PARAM;
    const int64_t NH = c->num_heads, S = c->sub_heads, JT = c->JT, Dsub = c->input_dim / S;
    const int64_t sb[3] = {NH, JT, JT}, sw[5] = {NH / S, S, JT, JT, Dsub};
    const int64_t eb[2] = {NH, JT}, ew[4] = {NH / S, S, JT, Dsub};
    if (JT > 1) {
        PLSTM_TRY(sl_declare(p, prefix, "inproj_bias", 3, sb, PLSTM_PARAM_NO_DECAY,
                             &L->inproj_bias_off));
        PLSTM_TRY(sl_declare(p, prefix, "inproj_weight", 5, sw, 0, &L->inproj_weight_off));
    }
    PLSTM_TRY(sl_declare(p, prefix, "eigenvalues_bias", 2, eb, PLSTM_PARAM_NO_DECAY,
                         &L->eig_bias_off));
    PLSTM_TRY(sl_declare(p, prefix, "eigenvalues_weight", 4, ew, 0, &L->eig_weight_off));
    if (JT > 1 && !c->symmetric) {
        PLSTM_TRY(sl_declare(p, prefix, "outproj_bias", 3, sb, PLSTM_PARAM_NO_DECAY,
                             &L->outproj_bias_off));
        PLSTM_TRY(sl_declare(p, prefix, "outproj_weight", 5, sw, 0, &L->outproj_weight_off));
    }
    return PLSTM_OK;
}

/* Identity per head (DiagonalInit) into a [NH, JT, JT] view. */
static void set_identity(void *params, plstm_dtype dtype, size_t off, int NH, int JT)
{
    for (int h = 0; h < NH; h++)
        for (int a = 0; a < JT; a++)
            for (int b = 0; b < JT; b++)
                sl_set(params, dtype, off + ((size_t)h * JT + a) * JT + b, a == b ? 1.0 : 0.0);
}

static void set_const(void *params, plstm_dtype dtype, size_t off, size_t n, double v)
{
    for (size_t i = 0; i < n; i++)
        sl_set(params, dtype, off + i, v);
}

plstm_status plstm_transition_init(const plstm_transition *L, void *params, plstm_dtype dtype,
                                   uint64_t seed)
{
    PLSTM_CHECK_ARG(L && params, "plstm_transition_init: NULL argument");
    PLSTM_CHECK_ARG(dtype == PLSTM_F32 || dtype == PLSTM_F64, "plstm_transition_init: F32 or F64");
    const int NH = L->cfg.num_heads, JT = L->cfg.JT;
    const size_t nw = (size_t)NH * L->cfg.input_dim / L->cfg.sub_heads;
    set_const(params, dtype, L->eig_bias_off, (size_t)NH * JT, 1.0);
    set_const(params, dtype, L->eig_weight_off, nw * JT, 0.0);
    if (L->inproj_bias_off != PLSTM_NO_PARAM) {
        set_identity(params, dtype, L->inproj_bias_off, NH, JT);
        set_const(params, dtype, L->inproj_weight_off, nw * JT * JT, 0.0);
    }
    if (L->outproj_bias_off != PLSTM_NO_PARAM) {
        set_identity(params, dtype, L->outproj_bias_off, NH, JT);
        set_const(params, dtype, L->outproj_weight_off, nw * JT * JT, 0.0);
    }
    return PLSTM_OK;
}

size_t plstm_transition_activation_size(const plstm_transition *L, size_t N)
{
    if (!L)
        return 0;
    const size_t rows = L->cfg.weight ? N : 1, NH = L->cfg.num_heads, JT = L->cfg.JT;
    const size_t nmat = JT > 1 ? (L->cfg.symmetric ? 1 : 2) : 0;
    return rows * NH * (JT + nmat * JT * JT);
}

static plstm_status tr_check(plstm_context *ctx, const plstm_transition *L, plstm_dtype dtype,
                             const void *params, size_t N, const void *x, const char *what)
{
    PLSTM_TRY(sl_check(ctx, dtype, what));
    PLSTM_CHECK_ARG(L && params, "%s: NULL layer or params", what);
    PLSTM_CHECK_ARG(N <= (size_t)1 << 30, "%s: %zu rows is too many", what, N);
    PLSTM_CHECK_ARG(x || !L->cfg.weight || N == 0, "%s: NULL input", what);
    return PLSTM_OK;
}

plstm_status plstm_transition_forward(plstm_context *ctx, const plstm_transition *L,
                                      plstm_dtype dtype, const void *params, size_t N,
                                      const void *x, void *T, void *acts)
{
    PLSTM_TRY(tr_check(ctx, L, dtype, params, N, x, "plstm_transition_forward"));
    PLSTM_CHECK_ARG(T || N == 0, "plstm_transition_forward: NULL output");
    if (N == 0)
        return PLSTM_OK;
    const int nt = sl_threads(ctx);
    if (dtype == PLSTM_F32)
        return tr_forward_f32(L, params, N, x, T, acts, nt);
    return tr_forward_f64(L, params, N, x, T, acts, nt);
}

plstm_status plstm_transition_backward(plstm_context *ctx, const plstm_transition *L,
                                       plstm_dtype dtype, const void *params, size_t N,
                                       const void *x, const void *acts, const void *dT, void *dx,
                                       void *grads)
{
    PLSTM_TRY(tr_check(ctx, L, dtype, params, N, x, "plstm_transition_backward"));
    PLSTM_CHECK_ARG((dT && grads && acts) || N == 0,
                    "plstm_transition_backward: NULL dT, grads or acts (the forward's acts are "
                    "needed)");
    if (N == 0)
        return PLSTM_OK;
    const int nt = sl_threads(ctx);
    if (dtype == PLSTM_F32)
        return tr_backward_f32(L, params, N, x, acts, dT, dx, grads, nt);
    return tr_backward_f64(L, params, N, x, acts, dT, dx, grads, nt);
}

/* ---- the orthogonalization on its own ----------------------------------- */

static plstm_status expo_check(plstm_dtype dtype, int n, int order, const char *what)
{
    PLSTM_CHECK_ARG(dtype == PLSTM_F32 || dtype == PLSTM_F64, "%s: dtype must be F32 or F64", what);
    PLSTM_CHECK_ARG(n >= 1 && n <= 256, "%s: matrix size %d must be in 1..256", what, n);
    PLSTM_CHECK_ARG(order >= 1 && order <= 64, "%s: order %d must be in 1..64", what, order);
    return PLSTM_OK;
}

plstm_status plstm_exp_orthogonalize(plstm_dtype dtype, int n, size_t count, double factor,
                                     int order, const void *R, void *O)
{
    PLSTM_TRY(expo_check(dtype, n, order, "plstm_exp_orthogonalize"));
    PLSTM_CHECK_ARG((R && O) || count == 0, "plstm_exp_orthogonalize: NULL buffer");
    const size_t nn = (size_t)n * n, es = plstm_dtype_size(dtype);
    void *w = malloc(EXPO_WORK * nn * es);
    if (!w)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "plstm_exp_orthogonalize: out of memory");
    for (size_t i = 0; i < count; i++) {
        if (dtype == PLSTM_F32)
            expo_forward_f32(n, factor, order, (const float *)R + i * nn, (float *)O + i * nn, w);
        else
            expo_forward_f64(n, factor, order, (const double *)R + i * nn, (double *)O + i * nn, w);
    }
    free(w);
    return PLSTM_OK;
}

plstm_status plstm_exp_orthogonalize_backward(plstm_dtype dtype, int n, size_t count,
                                              double factor, int order, const void *R,
                                              const void *dO, void *dR)
{
    PLSTM_TRY(expo_check(dtype, n, order, "plstm_exp_orthogonalize_backward"));
    PLSTM_CHECK_ARG((R && dO && dR) || count == 0, "plstm_exp_orthogonalize_backward: NULL buffer");
    const size_t nn = (size_t)n * n, es = plstm_dtype_size(dtype);
    void *w = malloc(EXPO_WORK * nn * es);
    if (!w)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "plstm_exp_orthogonalize_backward: out of memory");
    for (size_t i = 0; i < count; i++) {
        if (dtype == PLSTM_F32)
            expo_backward_f32(n, factor, order, (const float *)R + i * nn,
                              (const float *)dO + i * nn, (float *)dR + i * nn, w);
        else
            expo_backward_f64(n, factor, order, (const double *)R + i * nn,
                              (const double *)dO + i * nn, (double *)dR + i * nn, w);
    }
    free(w);
    return PLSTM_OK;
}
