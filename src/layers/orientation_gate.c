/* P-mode orientation gate (plstm-math.md §4.2) and the assembly of the fused
 * 2D core's gates from the sub-layer outputs in P and D mode (§4.2, §4.3),
 * with the head/orientation index mapping of §4.5 (Q7). */
#include "layers/sublayer_impl.h"

#include <cblas.h>
#include <stdlib.h>

#define REAL float
#define FN(name) name##_f32
#define GEMM cblas_sgemm
#define MATH(fn) fn##f
#include "layers/realmath_impl.h"
#include "layers/orientation_gate_impl.h"
#undef REAL
#undef FN
#undef GEMM
#undef MATH
#define REAL double
#define FN(name) name##_f64
#define GEMM cblas_dgemm
#define MATH(fn) fn
#include "layers/realmath_impl.h"
#include "layers/orientation_gate_impl.h"
#undef REAL
#undef FN
#undef GEMM
#undef MATH

plstm_orientation_gate_config plstm_orientation_gate_config_default(int input_dim, int num_heads)
{
    plstm_orientation_gate_config c;
    memset(&c, 0, sizeof c);
    c.input_dim = input_dim;
    c.num_heads = num_heads;
    c.scale = 0.5;
    c.bias_low = -2.0;
    c.bias_high = 2.0;
    return c;
}

plstm_status plstm_orientation_gate_declare(plstm_orientation_gate *L,
                                            const plstm_orientation_gate_config *cfg,
                                            plstm_params *p, const char *prefix)
{
    PLSTM_CHECK_ARG(L && cfg && p, "plstm_orientation_gate_declare: NULL argument");
    PLSTM_CHECK_ARG(cfg->input_dim >= 1 && cfg->num_heads >= 1,
                    "orientation gate %s: input_dim %d and num_heads %d must be >= 1",
                    prefix ? prefix : "", cfg->input_dim, cfg->num_heads);
    memset(L, 0, sizeof *L);
    L->cfg = *cfg;
    const int64_t sb[2] = {4, cfg->num_heads}, sw[3] = {4, cfg->num_heads, cfg->input_dim};
    PLSTM_TRY(sl_declare(p, prefix, "orientation_bias", 2, sb, PLSTM_PARAM_NO_DECAY, &L->bias_off));
    PLSTM_TRY(sl_declare(p, prefix, "orientation_weight", 3, sw, 0, &L->weight_off));
    return PLSTM_OK;
}

plstm_status plstm_orientation_gate_init(const plstm_orientation_gate *L, void *params,
                                         plstm_dtype dtype, uint64_t seed)
{
    PLSTM_CHECK_ARG(L && params, "plstm_orientation_gate_init: NULL argument");
    PLSTM_CHECK_ARG(dtype == PLSTM_F32 || dtype == PLSTM_F64,
                    "plstm_orientation_gate_init: F32 or F64");
    const int H = L->cfg.num_heads;
    PLSTM_CHECK_ARG(H >= 2, "orientation gate: the Linspace bias init needs num_heads >= 2 "
                            "(got %d), as in the reference", H);
    for (int o = 0; o < 4; o++)
        for (int h = 0; h < H; h++)
            sl_set(params, dtype, L->bias_off + (size_t)o * H + h,
                   L->cfg.bias_low + (L->cfg.bias_high - L->cfg.bias_low) * h / (H - 1));
    for (size_t i = 0; i < (size_t)4 * H * L->cfg.input_dim; i++)
        sl_set(params, dtype, L->weight_off + i, 0.0);
    return PLSTM_OK;
}

size_t plstm_orientation_gate_activation_size(const plstm_orientation_gate *L, size_t N)
{
    return L ? N * 4 * (size_t)L->cfg.num_heads : 0;
}

static plstm_status og_check(plstm_context *ctx, const plstm_orientation_gate *L, plstm_dtype dtype,
                             const void *params, size_t N, const void *x, const char *what)
{
    PLSTM_TRY(sl_check(ctx, dtype, what));
    PLSTM_CHECK_ARG(L && params, "%s: NULL layer or params", what);
    PLSTM_CHECK_ARG(N <= (size_t)1 << 30, "%s: %zu rows is too many", what, N);
    PLSTM_CHECK_ARG(x || N == 0, "%s: NULL input", what);
    return PLSTM_OK;
}

plstm_status plstm_orientation_gate_forward(plstm_context *ctx, const plstm_orientation_gate *L,
                                            plstm_dtype dtype, const void *params, size_t N,
                                            const void *x, void *omega, void *acts)
{
    PLSTM_TRY(og_check(ctx, L, dtype, params, N, x, "plstm_orientation_gate_forward"));
    PLSTM_CHECK_ARG(omega || N == 0, "plstm_orientation_gate_forward: NULL output");
    if (N == 0)
        return PLSTM_OK;
    if (dtype == PLSTM_F32)
        og_forward_f32(L, params, N, x, omega, acts, sl_threads(ctx));
    else
        og_forward_f64(L, params, N, x, omega, acts, sl_threads(ctx));
    return PLSTM_OK;
}

plstm_status plstm_orientation_gate_backward(plstm_context *ctx,
                                             const plstm_orientation_gate *L, plstm_dtype dtype,
                                             const void *params, size_t N, const void *x,
                                             const void *acts, const void *domega, void *dx,
                                             void *grads)
{
    PLSTM_TRY(og_check(ctx, L, dtype, params, N, x, "plstm_orientation_gate_backward"));
    PLSTM_CHECK_ARG((acts && domega && grads) || N == 0,
                    "plstm_orientation_gate_backward: NULL acts, domega or grads");
    if (N == 0)
        return PLSTM_OK;
    if (dtype == PLSTM_F32)
        return og_backward_f32(L, params, N, x, acts, domega, dx, grads, sl_threads(ctx));
    return og_backward_f64(L, params, N, x, acts, domega, dx, grads, sl_threads(ctx));
}

/* ---- assembly ----------------------------------------------------------- */

static plstm_status desc_check(plstm_context *ctx, const plstm_gates2d_desc *d, const char *what)
{
    PLSTM_CHECK_ARG(d, "%s: NULL descriptor", what);
    PLSTM_TRY(sl_check(ctx, d->dtype, what));
    PLSTM_CHECK_ARG(d->B >= 1 && d->X >= 1 && d->Y >= 1 && d->H >= 1,
                    "%s: B %d, X %d, Y %d, H %d must be >= 1", what, d->B, d->X, d->Y, d->H);
    PLSTM_CHECK_ARG(d->Xp >= d->X && d->Yp >= d->Y,
                    "%s: padded grid %dx%d smaller than the grid %dx%d", what, d->Xp, d->Yp, d->X,
                    d->Y);
    PLSTM_CHECK_ARG(d->JT >= 1 && d->JK >= 1 && d->JV >= 1 && d->JQ >= 1 && d->JO >= 1,
                    "%s: J dims must be >= 1", what);
    PLSTM_CHECK_ARG(d->map == PLSTM_HOMAP_REFERENCE || d->map == PLSTM_HOMAP_INTENDED,
                    "%s: unknown head/orientation map %d", what, (int)d->map);
    return PLSTM_OK;
}

plstm_status plstm_pmode_gates_forward(plstm_context *ctx, const plstm_gates2d_desc *d,
                                       const void *omega, const void *S, const void *T,
                                       const void *M, const plstm_gates2d *out)
{
    const char *what = "plstm_pmode_gates_forward";
    PLSTM_TRY(desc_check(ctx, d, what));
    PLSTM_CHECK_ARG(omega && S && T && M && out, "%s: NULL input or output", what);
    if (d->dtype == PLSTM_F32)
        pmode_forward_f32(d, omega, S, T, M, out, sl_threads(ctx));
    else
        pmode_forward_f64(d, omega, S, T, M, out, sl_threads(ctx));
    return PLSTM_OK;
}

plstm_status plstm_pmode_gates_backward(plstm_context *ctx, const plstm_gates2d_desc *d,
                                        const void *omega, const void *S, const void *T,
                                        const plstm_gates2d *dg, void *domega, void *dS,
                                        void *dT, void *dM)
{
    const char *what = "plstm_pmode_gates_backward";
    PLSTM_TRY(desc_check(ctx, d, what));
    PLSTM_CHECK_ARG(omega && S && T && dg, "%s: NULL omega, S, T or gate cotangents", what);
    if (d->dtype == PLSTM_F32)
        pmode_backward_f32(d, omega, S, T, dg, domega, dS, dT, dM, sl_threads(ctx));
    else
        pmode_backward_f64(d, omega, S, T, dg, domega, dS, dT, dM, sl_threads(ctx));
    return PLSTM_OK;
}

/* The seven (sub-layer, core gate, element count) pairs of D mode; `absent`
 * is the core transition the chirality leaves out. */
typedef struct dpair {
    void *sub, *core;
    size_t P;
} dpair;

static int dmode_pairs(const plstm_gates2d_desc *d, plstm_chirality ch, const plstm_dmode_gates *s,
                       const plstm_gates2d *g, dpair *pr, void **absent)
{
    const size_t PS = (size_t)d->JT * d->JK * d->JV, PT = (size_t)d->JT * d->JT;
    const size_t PM = (size_t)d->JO * d->JQ * d->JT;
    const int L = ch == PLSTM_CHIRALITY_L;
    pr[0] = (dpair){s->S_r, g->S_r, PS};
    pr[1] = (dpair){s->S_d, g->S_d, PS};
    pr[2] = (dpair){s->T_r, g->T_rl, PT};
    pr[3] = (dpair){s->T_d, g->T_du, PT};
    pr[4] = (dpair){s->T_rd, L ? g->T_ru : g->T_dl, PT};
    pr[5] = (dpair){s->M_l, g->M_l, PM};
    pr[6] = (dpair){s->M_u, g->M_u, PM};
    *absent = L ? g->T_dl : g->T_ru;
    return 7;
}

plstm_status plstm_dmode_gates_forward(plstm_context *ctx, const plstm_gates2d_desc *d,
                                       plstm_chirality chirality, const plstm_dmode_gates *in,
                                       const plstm_gates2d *out)
{
    const char *what = "plstm_dmode_gates_forward";
    PLSTM_TRY(desc_check(ctx, d, what));
    PLSTM_CHECK_ARG(chirality == PLSTM_CHIRALITY_L || chirality == PLSTM_CHIRALITY_R,
                    "%s: unknown chirality %d", what, (int)chirality);
    PLSTM_CHECK_ARG(in && out, "%s: NULL inputs or outputs", what);
    dpair pr[7];
    void *absent;
    int np = dmode_pairs(d, chirality, in, out, pr, &absent);
    for (int k = 0; k < np; k++)
        PLSTM_CHECK_ARG(pr[k].sub && pr[k].core, "%s: NULL sub-layer output or core gate %d", what,
                        k);
    const int nt = sl_threads(ctx);
    for (int k = 0; k < np; k++) {
        if (d->dtype == PLSTM_F32)
            dmode_move_f32(d, pr[k].sub, pr[k].core, pr[k].P, 1, nt);
        else
            dmode_move_f64(d, pr[k].sub, pr[k].core, pr[k].P, 1, nt);
    }
    if (absent)
        memset(absent, 0,
               (size_t)d->B * d->H * 4 * d->Xp * d->Yp * d->JT * d->JT * plstm_dtype_size(d->dtype));
    return PLSTM_OK;
}

plstm_status plstm_dmode_gates_backward(plstm_context *ctx, const plstm_gates2d_desc *d,
                                        plstm_chirality chirality, const plstm_gates2d *dg,
                                        const plstm_dmode_gates *dsub)
{
    const char *what = "plstm_dmode_gates_backward";
    PLSTM_TRY(desc_check(ctx, d, what));
    PLSTM_CHECK_ARG(chirality == PLSTM_CHIRALITY_L || chirality == PLSTM_CHIRALITY_R,
                    "%s: unknown chirality %d", what, (int)chirality);
    PLSTM_CHECK_ARG(dg && dsub, "%s: NULL cotangents or outputs", what);
    dpair pr[7];
    void *absent;
    int np = dmode_pairs(d, chirality, dsub, dg, pr, &absent);
    const int nt = sl_threads(ctx);
    for (int k = 0; k < np; k++) {
        if (!pr[k].sub)
            continue;
        if (d->dtype == PLSTM_F32)
            dmode_move_f32(d, pr[k].sub, pr[k].core, pr[k].P, 0, nt);
        else
            dmode_move_f64(d, pr[k].sub, pr[k].core, pr[k].P, 0, nt);
    }
    return PLSTM_OK;
}

static plstm_status hg_check(plstm_context *ctx, plstm_dtype dtype, int B, int X, int Y, int Xp,
                             int Yp, int H, size_t P, const void *src, void *dst, const char *what)
{
    PLSTM_TRY(sl_check(ctx, dtype, what));
    PLSTM_CHECK_ARG(B >= 1 && X >= 1 && Y >= 1 && H >= 1 && P >= 1 && Xp >= X && Yp >= Y,
                    "%s: bad sizes B %d, X %d, Y %d, Xp %d, Yp %d, H %d, P %zu", what, B, X, Y, Xp,
                    Yp, H, P);
    PLSTM_CHECK_ARG(src && dst, "%s: NULL buffer", what);
    return PLSTM_OK;
}

plstm_status plstm_heads_to_grid(plstm_context *ctx, plstm_dtype dtype, int B, int X, int Y,
                                 int Xp, int Yp, int H, size_t P, const void *src, void *dst)
{
    PLSTM_TRY(hg_check(ctx, dtype, B, X, Y, Xp, Yp, H, P, src, dst, "plstm_heads_to_grid"));
    if (dtype == PLSTM_F32)
        heads_grid_f32(B, X, Y, Xp, Yp, H, P, (float *)src, dst, 1, sl_threads(ctx));
    else
        heads_grid_f64(B, X, Y, Xp, Yp, H, P, (double *)src, dst, 1, sl_threads(ctx));
    return PLSTM_OK;
}

plstm_status plstm_grid_to_heads(plstm_context *ctx, plstm_dtype dtype, int B, int X, int Y,
                                 int Xp, int Yp, int H, size_t P, const void *src, void *dst)
{
    PLSTM_TRY(hg_check(ctx, dtype, B, X, Y, Xp, Yp, H, P, src, dst, "plstm_grid_to_heads"));
    if (dtype == PLSTM_F32)
        heads_grid_f32(B, X, Y, Xp, Yp, H, P, dst, (float *)src, 0, sl_threads(ctx));
    else
        heads_grid_f64(B, X, Y, Xp, Yp, H, P, dst, (double *)src, 0, sl_threads(ctx));
    return PLSTM_OK;
}
