/* PostUpProjectionBlock (plstm-math.md §7.1) around the fused 2D pLSTM layer:
 *   x1 = norm(x); x2 = x + layer(x1); x3 = norm2(x2); x4 = up(x3);
 *   y2 = act(x4); y = x2 + down(y2).
 * Saved for backward (acts): x1, the layer's acts, x2, x3, x4, y2.
 * Work: [N, inner] + 3 × [N, dim], shared by forward (inference
 * intermediates) and backward (cotangents). */
#include "plstm/vision.h"
#include "layers/sublayer_impl.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#define PU "PostUpProjectionBlock"

static void *at(void *buf, size_t esz, size_t off) { return (char *)buf + off * esz; }
static const void *cat(const void *buf, size_t esz, size_t off)
{
    return (const char *)buf + off * esz;
}

/* ---- F32 GELU --------------------------------------------------------------
 * The MLP's activation runs on B·X·Y·inner values per block (10.6M per APE
 * training step each way); the libm tanhf/erff loop of the generic operator
 * took ~20% of a step. These F32 kernels are branch-free and vectorize
 * (AVX-512 / AVX2 clones where GCC supports target_clones). Accuracy: tanh
 * from a Cephes-style expf (~2 ulp), |error| < 1e-7; erf by Abramowitz–Stegun
 * 7.1.26, |error| < 1.5e-7. F64 uses the generic operator. */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define PU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PU_CLONES
#endif

/* e^x with x clamped to [-87, 88], as float; NaN stays NaN. */
static inline float pu_expf(float x)
{
    float xc = x > -87.0f ? x : -87.0f; /* NaN -> -87: no undefined conversion below */
    xc = xc < 88.0f ? xc : 88.0f;
    const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round */
    const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x == x ? p * scale : x;
}

static inline float pu_tanhf(float u) { return 1.0f - 2.0f / (pu_expf(2.0f * u) + 1.0f); }

/* erf(z) = 1 − (a1 t + … + a5 t⁵) e^{−z²}, t = 1/(1 + p|z|), odd. */
static inline float pu_erff(float z)
{
    const float a = z < 0 ? -z : z, t = 1.0f / (1.0f + 0.3275911f * a);
    const float poly =
        t * (0.254829592f +
             t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    const float e = 1.0f - poly * pu_expf(-a * a);
    return z < 0 ? -e : e;
}

#define PU_C0 0.7978845608028654f /* sqrt(2/π) */
#define PU_C1 0.044715f
#define PU_RS2 0.7071067811865476f /* 1/sqrt(2) */
#define PU_RS2PI 0.3989422804014327f /* 1/sqrt(2π) */

PU_CLONES static void pu_gelu_fwd(int tanh_form, size_t n, const float *x, float *y)
{
    if (tanh_form) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            const float v = x[i];
            y[i] = 0.5f * v * (1.0f + pu_tanhf(PU_C0 * (v + PU_C1 * v * v * v)));
        }
    } else {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            const float v = x[i];
            y[i] = 0.5f * v * (1.0f + pu_erff(v * PU_RS2));
        }
    }
}

/* d = dy ⊙ gelu'(x) (d may equal dy). */
PU_CLONES static void pu_gelu_bwd(int tanh_form, size_t n, const float *x, const float *dy,
                                  float *d)
{
    if (tanh_form) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            const float v = x[i], t = pu_tanhf(PU_C0 * (v + PU_C1 * v * v * v));
            d[i] = dy[i] * (0.5f * (1.0f + t) +
                            0.5f * v * (1.0f - t * t) * PU_C0 * (1.0f + 3.0f * PU_C1 * v * v));
        }
    } else {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            const float v = x[i];
            d[i] = dy[i] * (0.5f * (1.0f + pu_erff(v * PU_RS2)) +
                            v * PU_RS2PI * pu_expf(-0.5f * v * v));
        }
    }
}

/* Chunks over the context's threads. */
static plstm_status act_forward(plstm_context *ctx, plstm_dtype dtype, plstm_activation act,
                                size_t n, const void *x, void *y)
{
    if (dtype != PLSTM_F32 || (act != PLSTM_ACT_GELU && act != PLSTM_ACT_GELU_TANH))
        return plstm_activation_forward(ctx, dtype, act, n, x, y);
    const size_t chunk = 16384, nc = (n + chunk - 1) / chunk;
    const int tf = act == PLSTM_ACT_GELU_TANH;
#pragma omp parallel for num_threads(sl_threads(ctx)) schedule(static) if (nc > 1)
    for (size_t c = 0; c < nc; c++) {
        const size_t a = c * chunk, m = n - a < chunk ? n - a : chunk;
        pu_gelu_fwd(tf, m, (const float *)x + a, (float *)y + a);
    }
    return PLSTM_OK;
}

static plstm_status act_backward(plstm_context *ctx, plstm_dtype dtype, plstm_activation act,
                                 size_t n, const void *x, const void *dy, void *dx)
{
    if (dtype != PLSTM_F32 || (act != PLSTM_ACT_GELU && act != PLSTM_ACT_GELU_TANH))
        return plstm_activation_backward(ctx, dtype, act, n, x, dy, dx);
    const size_t chunk = 16384, nc = (n + chunk - 1) / chunk;
    const int tf = act == PLSTM_ACT_GELU_TANH;
#pragma omp parallel for num_threads(sl_threads(ctx)) schedule(static) if (nc > 1)
    for (size_t c = 0; c < nc; c++) {
        const size_t a = c * chunk, m = n - a < chunk ? n - a : chunk;
        pu_gelu_bwd(tf, m, (const float *)x + a, (const float *)dy + a, (float *)dx + a);
    }
    return PLSTM_OK;
}

/* Adds the time since *t0 to sec[part] (when timing) and restarts the clock. */
static void lap(double *sec, int part, double *t0)
{
    if (!sec)
        return;
    const double t = omp_get_wtime();
    sec[part] += t - *t0;
    *t0 = t;
}

plstm_postup_config plstm_postup_config_default(int dim, int num_heads, plstm_layer2d_mode mode)
{
    plstm_postup_config c;
    memset(&c, 0, sizeof c);
    c.dim = dim;
    c.layer = plstm_layer2d_fused_config_default(dim, num_heads, mode);
    c.projection_scaling = 4;
    c.projection_round = 64;
    c.act = PLSTM_ACT_GELU;
    c.norm_eps = 1e-5;
    return c;
}

plstm_status plstm_postup_declare(plstm_postup *L, const plstm_postup_config *cfg,
                                  plstm_params *p, const char *prefix)
{
    PLSTM_CHECK_ARG(L && cfg && p, PU ": NULL argument");
    const int D = cfg->dim;
    PLSTM_CHECK_ARG(D >= 1, PU ": dim %d must be >= 1", D);
    PLSTM_CHECK_ARG(cfg->layer.input_dim == D, PU ": layer input_dim %d differs from dim %d",
                    cfg->layer.input_dim, D);
    PLSTM_CHECK_ARG(cfg->projection_scaling >= 1 && cfg->projection_round >= 1,
                    PU ": projection_scaling %d and projection_round %d must be >= 1",
                    cfg->projection_scaling, cfg->projection_round);
    PLSTM_CHECK_ARG(cfg->norm_eps > 0, PU ": norm_eps must be > 0");
    PLSTM_CHECK_ARG(cfg->act == PLSTM_ACT_GELU || cfg->act == PLSTM_ACT_GELU_TANH ||
                        cfg->act == PLSTM_ACT_SILU,
                    PU ": unknown activation %d", (int)cfg->act);
    const double inner_d = ceil((double)cfg->projection_scaling * D / cfg->projection_round) *
                           cfg->projection_round;
    PLSTM_CHECK_ARG(inner_d <= (1 << 24), PU ": inner size %.0f is too large", inner_d);
    memset(L, 0, sizeof *L);
    L->cfg = *cfg;
    /* (floor((s·D − 1)/r) + 1)·r, as the reference */
    L->inner = ((cfg->projection_scaling * D - 1) / cfg->projection_round + 1) *
               cfg->projection_round;
    const int I = L->inner;
    const int64_t sD[1] = {D}, sI[1] = {I}, sup[2] = {I, D}, sdown[2] = {D, I};
    char sub[PLSTM_PARAM_NAME_MAX];
    PLSTM_TRY(sl_declare(p, prefix, "norm.scale", 1, sD, PLSTM_PARAM_NO_DECAY, &L->norm_off));
    PLSTM_TRY(sl_declare(p, prefix, "norm2.scale", 1, sD, PLSTM_PARAM_NO_DECAY, &L->norm2_off));
    PLSTM_TRY(sl_declare(p, prefix, "upproj.weight", 2, sup, 0, &L->up_w_off));
    PLSTM_TRY(sl_declare(p, prefix, "upproj.bias", 1, sI, PLSTM_PARAM_NO_DECAY, &L->up_b_off));
    int n = (prefix && prefix[0]) ? snprintf(sub, sizeof sub, "%s.interaction_module", prefix)
                                   : snprintf(sub, sizeof sub, "interaction_module");
    PLSTM_CHECK_ARG(n > 0 && (size_t)n < sizeof sub, PU ": prefix is too long");
    PLSTM_TRY(plstm_layer2d_declare(&L->layer, &cfg->layer, p, sub));
    PLSTM_CHECK_ARG(L->layer.Dout == D, PU ": the layer's output size %d must equal dim %d",
                    L->layer.Dout, D);
    PLSTM_TRY(sl_declare(p, prefix, "downproj.weight", 2, sdown, 0, &L->down_w_off));
    PLSTM_TRY(sl_declare(p, prefix, "downproj.bias", 1, sD, PLSTM_PARAM_NO_DECAY,
                         &L->down_b_off));
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

plstm_status plstm_postup_init(const plstm_postup *L, void *params, plstm_dtype dtype,
                               uint64_t seed)
{
    PLSTM_CHECK_ARG(L && params, PU " init: NULL argument");
    PLSTM_CHECK_ARG(dtype == PLSTM_F32 || dtype == PLSTM_F64, PU " init: F32 or F64");
    const size_t D = (size_t)L->cfg.dim, I = (size_t)L->inner;
    fill(params, dtype, L->norm_off, D, 1.0);
    fill(params, dtype, L->norm2_off, D, 1.0);
    fill(params, dtype, L->up_b_off, I, 0.0);
    fill(params, dtype, L->down_b_off, D, 0.0);
    sl_rng r = {.s = seed ^ 0x5DEECE66Dull, .has_spare = 0, .spare = 0};
    small_init(params, dtype, L->up_w_off, I * D, (int)D, &r);
    small_init(params, dtype, L->down_w_off, D * I, (int)I, &r);
    return plstm_layer2d_init(&L->layer, params, dtype, seed * 0x2545F4914F6CDD1Dull + 1);
}

/* ---- activation layout -------------------------------------------------- */

typedef struct pu_layout {
    size_t N, ND, NI;
    size_t x1, lacts, x2, x3, x4, y2, total; /* acts */
    size_t wa, w1, w2, w3, wtotal;           /* work */
} pu_layout;

static int pu_layout_make(const plstm_postup *L, int B, int X, int Y, pu_layout *l)
{
    if (!L || B < 1 || X < 1 || Y < 1)
        return 0;
    memset(l, 0, sizeof *l);
    l->N = (size_t)B * X * Y;
    l->ND = l->N * (size_t)L->cfg.dim;
    l->NI = l->N * (size_t)L->inner;
    size_t o = 0;
    l->x1 = o, o += l->ND;
    l->lacts = o, o += plstm_layer2d_fused_activation_size(&L->layer, B, X, Y);
    l->x2 = o, o += l->ND;
    l->x3 = o, o += l->ND;
    l->x4 = o, o += l->NI;
    l->y2 = o, o += l->NI;
    l->total = o;
    o = 0;
    l->wa = o, o += l->NI;
    l->w1 = o, o += l->ND;
    l->w2 = o, o += l->ND;
    l->w3 = o, o += l->ND;
    l->wtotal = o;
    return 1;
}

size_t plstm_postup_activation_size(const plstm_postup *L, int B, int X, int Y)
{
    pu_layout l;
    return pu_layout_make(L, B, X, Y, &l) ? l.total : 0;
}

size_t plstm_postup_work_size(const plstm_postup *L, int B, int X, int Y)
{
    pu_layout l;
    return pu_layout_make(L, B, X, Y, &l) ? l.wtotal : 0;
}

static plstm_status check_call(plstm_context *ctx, const plstm_postup *L, plstm_dtype dtype,
                               const void *params, int B, int X, int Y, const void *work,
                               const char *what)
{
    PLSTM_TRY(sl_check(ctx, dtype, what));
    PLSTM_CHECK_ARG(L && params && work, "%s: NULL block, parameters or work buffer", what);
    PLSTM_CHECK_ARG(B >= 1 && X >= 1 && Y >= 1, "%s: sizes B %d, X %d, Y %d must be >= 1", what,
                    B, X, Y);
    PLSTM_CHECK_ARG((double)B * X * Y * L->inner < 9e15 && (double)B * X * Y < 2147483647.0,
                    "%s: input B %d, X %d, Y %d is too large", what, B, X, Y);
    return PLSTM_OK;
}

plstm_status plstm_postup_forward(plstm_context *ctx, const plstm_postup *L, plstm_dtype dtype,
                                  const void *params, int B, int X, int Y, const void *x,
                                  void *y, void *acts, void *work)
{
    return plstm_postup_forward_timed(ctx, L, dtype, params, B, X, Y, x, y, acts, work, NULL);
}

plstm_status plstm_postup_backward(plstm_context *ctx, const plstm_postup *L, plstm_dtype dtype,
                                   const void *params, int B, int X, int Y, const void *x,
                                   const void *acts, const void *dy, void *dx, void *grads,
                                   void *work)
{
    return plstm_postup_backward_timed(ctx, L, dtype, params, B, X, Y, x, acts, dy, dx, grads,
                                       work, NULL);
}

plstm_status plstm_postup_forward_timed(plstm_context *ctx, const plstm_postup *L,
                                        plstm_dtype dtype, const void *params, int B, int X,
                                        int Y, const void *x, void *y, void *acts, void *work,
                                        double *sec)
{
    PLSTM_TRY(check_call(ctx, L, dtype, params, B, X, Y, work, PU " forward"));
    PLSTM_CHECK_ARG(x && y, PU " forward: NULL input or output");
    pu_layout l;
    pu_layout_make(L, B, X, Y, &l);
    const size_t e = plstm_dtype_size(dtype);
    const int n = (int)l.N, D = L->cfg.dim, I = L->inner;
    const double eps = L->cfg.norm_eps;
    void *x1, *x2, *x3, *x4, *y2, *la = NULL;
    if (acts) {
        x1 = at(acts, e, l.x1), x2 = at(acts, e, l.x2), x3 = at(acts, e, l.x3);
        x4 = at(acts, e, l.x4), y2 = at(acts, e, l.y2), la = at(acts, e, l.lacts);
    } else {
        x1 = at(work, e, l.w1), x2 = at(work, e, l.w2), x3 = at(work, e, l.w3);
        x4 = y2 = at(work, e, l.wa); /* activation in place */
    }
    double t0 = sec ? omp_get_wtime() : 0;
    PLSTM_TRY(plstm_norm_forward(ctx, dtype, PLSTM_NORM_RMS, n, D, 1, eps, x,
                                 cat(params, e, L->norm_off), NULL, x1));
    lap(sec, PLSTM_VPART_NORM, &t0);
    PLSTM_TRY(plstm_layer2d_fused_forward(ctx, &L->layer, dtype, params, B, X, Y, x1, x2, la));
    lap(sec, PLSTM_VPART_LAYER, &t0);
    PLSTM_TRY(plstm_add(ctx, dtype, l.ND, x2, x, x2));
    PLSTM_TRY(plstm_norm_forward(ctx, dtype, PLSTM_NORM_RMS, n, D, 1, eps, x2,
                                 cat(params, e, L->norm2_off), NULL, x3));
    lap(sec, PLSTM_VPART_NORM, &t0);
    PLSTM_TRY(plstm_linear_forward(ctx, dtype, n, D, I, x3, cat(params, e, L->up_w_off),
                                   cat(params, e, L->up_b_off), x4));
    PLSTM_TRY(act_forward(ctx, dtype, L->cfg.act, l.NI, x4, y2));
    PLSTM_TRY(plstm_linear_forward(ctx, dtype, n, I, D, y2, cat(params, e, L->down_w_off),
                                   cat(params, e, L->down_b_off), y));
    PLSTM_TRY(plstm_add(ctx, dtype, l.ND, y, x2, y));
    lap(sec, PLSTM_VPART_MLP, &t0);
    return PLSTM_OK;
}

plstm_status plstm_postup_backward_timed(plstm_context *ctx, const plstm_postup *L,
                                         plstm_dtype dtype, const void *params, int B, int X,
                                         int Y, const void *x, const void *acts, const void *dy,
                                         void *dx, void *grads, void *work, double *sec)
{
    PLSTM_TRY(check_call(ctx, L, dtype, params, B, X, Y, work, PU " backward"));
    PLSTM_CHECK_ARG(x && acts && dy && grads, PU " backward: NULL input, acts, dy or grads");
    pu_layout l;
    pu_layout_make(L, B, X, Y, &l);
    const size_t e = plstm_dtype_size(dtype);
    const int n = (int)l.N, D = L->cfg.dim, I = L->inner;
    const double eps = L->cfg.norm_eps;
    void *ga = at(work, e, l.wa), *t1 = at(work, e, l.w1), *t2 = at(work, e, l.w2);
    void *dx2 = at(work, e, l.w3);
    double t0 = sec ? omp_get_wtime() : 0;
    /* MLP branch: y = x2 + down(act(up(norm2(x2)))) */
    PLSTM_TRY(plstm_linear_backward(ctx, dtype, n, I, D, cat(acts, e, l.y2),
                                    cat(params, e, L->down_w_off), dy, ga,
                                    at(grads, e, L->down_w_off), at(grads, e, L->down_b_off)));
    PLSTM_TRY(act_backward(ctx, dtype, L->cfg.act, l.NI, cat(acts, e, l.x4), ga, ga));
    PLSTM_TRY(plstm_linear_backward(ctx, dtype, n, D, I, cat(acts, e, l.x3),
                                    cat(params, e, L->up_w_off), ga, t1,
                                    at(grads, e, L->up_w_off), at(grads, e, L->up_b_off)));
    lap(sec, PLSTM_VPART_MLP, &t0);
    PLSTM_TRY(plstm_norm_backward(ctx, dtype, PLSTM_NORM_RMS, n, D, 1, eps, cat(acts, e, l.x2),
                                  cat(params, e, L->norm2_off), t1, t2,
                                  at(grads, e, L->norm2_off), NULL));
    PLSTM_TRY(plstm_add(ctx, dtype, l.ND, dy, t2, dx2));
    lap(sec, PLSTM_VPART_NORM, &t0);
    /* interaction branch: x2 = x + layer(norm(x)) */
    PLSTM_TRY(plstm_layer2d_fused_backward(ctx, &L->layer, dtype, params, B, X, Y,
                                           cat(acts, e, l.x1), cat(acts, e, l.lacts), dx2, t1,
                                           grads));
    lap(sec, PLSTM_VPART_LAYER, &t0);
    PLSTM_TRY(plstm_norm_backward(ctx, dtype, PLSTM_NORM_RMS, n, D, 1, eps, x,
                                  cat(params, e, L->norm_off), t1, t2,
                                  at(grads, e, L->norm_off), NULL));
    if (dx)
        PLSTM_TRY(plstm_add(ctx, dtype, l.ND, dx2, t2, dx));
    lap(sec, PLSTM_VPART_NORM, &t0);
    return PLSTM_OK;
}
