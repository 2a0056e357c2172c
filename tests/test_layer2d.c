/* 2D pLSTM layers (plstm-math.md §4): fused and non-fused layer gradients
 * against central finite differences in F64 (input and every parameter), both
 * layers against an independent construction in this file (sub-layer outputs
 * assembled by hand, the sequential 2D core per flipped orientation, own
 * norm / out projection / conv), F32 against F64, and argument errors. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static plstm_context *g_ctx;

typedef struct lcase {
    plstm_layer2d L;
    plstm_params *p;
    int fused;
    int B, X, Y;
    size_t nx, ny, np;
    double *prm, *x;
} lcase;

/* Random parameters (all entries, so no gate is degenerate), norm scales near 1. */
static void random_params(lcase *c, uint64_t seed)
{
    tu_rng r;
    tu_rng_seed(&r, seed);
    for (size_t i = 0; i < plstm_params_count(c->p); i++) {
        const plstm_param_info *pi = plstm_params_at(c->p, i);
        const int is_norm = strstr(pi->name, "mhnorm") || strstr(pi->name, "passthrough");
        for (size_t j = 0; j < pi->numel; j++)
            c->prm[pi->offset + j] = is_norm ? tu_rng_uniform(&r, 0.7, 1.3)
                                             : tu_rng_uniform(&r, -0.6, 0.6);
    }
}

static void lcase_make(lcase *c, const plstm_layer2d_config *cfg, int fused, int B, int X, int Y,
                       uint64_t seed)
{
    memset(c, 0, sizeof *c);
    TU_OK(plstm_params_create(&c->p));
    TU_OK(plstm_layer2d_declare(&c->L, cfg, c->p, "layer"));
    c->fused = fused;
    c->B = B, c->X = X, c->Y = Y;
    c->np = plstm_params_size(c->p);
    c->nx = (size_t)B * X * Y * cfg->input_dim;
    c->ny = (size_t)B * X * Y * c->L.Dout;
    c->prm = tu_calloc(c->np, sizeof(double));
    c->x = tu_calloc(c->nx, sizeof(double));
    TU_OK(plstm_layer2d_init(&c->L, c->prm, PLSTM_F64, seed));
    random_params(c, seed + 1);
    tu_rng r;
    tu_rng_seed(&r, seed + 2);
    tu_fill_f64(&r, c->x, c->nx, -1, 1);
}

static void lcase_free(lcase *c)
{
    plstm_params_destroy(c->p);
    free(c->prm);
    free(c->x);
}

static size_t act_size(const lcase *c)
{
    return c->fused ? plstm_layer2d_fused_activation_size(&c->L, c->B, c->X, c->Y)
                    : plstm_layer2d_activation_size(&c->L, c->B, c->X, c->Y);
}

static void run_fwd(const lcase *c, plstm_dtype dt, const void *prm, const void *x, void *y,
                    void *acts)
{
    if (c->fused)
        TU_OK(plstm_layer2d_fused_forward(g_ctx, &c->L, dt, prm, c->B, c->X, c->Y, x, y, acts));
    else
        TU_OK(plstm_layer2d_forward(g_ctx, &c->L, dt, prm, c->B, c->X, c->Y, x, y, acts));
}

static void run_bwd(const lcase *c, plstm_dtype dt, const void *prm, const void *x,
                    const void *acts, const void *dy, void *dx, void *g)
{
    if (c->fused)
        TU_OK(plstm_layer2d_fused_backward(g_ctx, &c->L, dt, prm, c->B, c->X, c->Y, x, acts, dy,
                                           dx, g));
    else
        TU_OK(plstm_layer2d_backward(g_ctx, &c->L, dt, prm, c->B, c->X, c->Y, x, acts, dy, dx,
                                     g));
}

static double loss(const lcase *c, const double *dy, double *y)
{
    run_fwd(c, PLSTM_F64, c->prm, c->x, y, NULL);
    double L = 0;
    for (size_t i = 0; i < c->ny; i++)
        L += y[i] * dy[i];
    return L;
}

/* Central difference of Σ y·dy with respect to v[i]. */
static double numeric1(lcase *c, double *v, size_t i, const double *dy, double *y)
{
    const double h = 1e-5, keep = v[i];
    v[i] = keep + h;
    const double lp = loss(c, dy, y);
    v[i] = keep - h;
    const double lm = loss(c, dy, y);
    v[i] = keep;
    return (lp - lm) / (2 * h);
}

/* Max |analytic − numeric| over at most FD_SAMPLES random entries of v[0..n)
 * (all when n is small), relative to max |analytic| over all n. */
#define FD_SAMPLES 16
static double fd_err(lcase *c, double *v, const double *an, size_t n, const double *dy, double *y,
                     tu_rng *r)
{
    double scale = 0, diff = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(an[i]));
    const size_t m = n < FD_SAMPLES ? n : FD_SAMPLES;
    for (size_t s = 0; s < m; s++) {
        const size_t i = n <= FD_SAMPLES ? s : (size_t)(tu_rng_u64(r) % n);
        const double d = fabs(numeric1(c, v, i, dy, y) - an[i]);
        if (!(d <= diff))
            diff = d;
    }
    return scale > 0 ? diff / scale : diff;
}

/* FD of dx and every parameter; backward accumulates into grads (checked by
 * starting from a nonzero buffer); F32 forward/backward against F64. */
static void check_fd(lcase *c, const char *what)
{
    tu_rng r;
    tu_rng_seed(&r, 99);
    double *dy = tu_calloc(c->ny, sizeof *dy), *y = tu_calloc(c->ny, sizeof *y);
    double *dx = tu_calloc(c->nx, sizeof *dx), *g = tu_calloc(c->np, sizeof *g);
    const size_t na = act_size(c);
    assert_true(na > 0);
    double *acts = tu_calloc(na, sizeof *acts);
    tu_fill_f64(&r, dy, c->ny, -1, 1);
    for (size_t i = 0; i < c->np; i++)
        g[i] = 0.25; /* backward must add to this */
    run_fwd(c, PLSTM_F64, c->prm, c->x, y, acts);
    run_bwd(c, PLSTM_F64, c->prm, c->x, acts, dy, dx, g);
    for (size_t i = 0; i < c->np; i++)
        g[i] -= 0.25;
    char msg[256];
    snprintf(msg, sizeof msg, "%s: dx", what);
    TU_ASSERT_CLOSE(fd_err(c, c->x, dx, c->nx, dy, y, &r), 1e-6, msg);
    for (size_t i = 0; i < plstm_params_count(c->p); i++) {
        const plstm_param_info *pi = plstm_params_at(c->p, i);
        snprintf(msg, sizeof msg, "%s: d %s", what, pi->name);
        TU_ASSERT_CLOSE(fd_err(c, c->prm + pi->offset, g + pi->offset, pi->numel, dy, y, &r),
                        1e-6, msg);
        double mx = 0;
        for (size_t j = 0; j < pi->numel; j++)
            mx = fmax(mx, fabs(g[pi->offset + j]));
        if (!(mx > 0))
            fail_msg("%s: gradient of %s is identically zero", what, pi->name);
    }

    /* F32 path */
    float *pf = tu_calloc(c->np, sizeof *pf), *xf = tu_calloc(c->nx, sizeof *xf);
    float *yf = tu_calloc(c->ny, sizeof *yf), *dyf = tu_calloc(c->ny, sizeof *dyf);
    float *dxf = tu_calloc(c->nx, sizeof *dxf), *gf = tu_calloc(c->np, sizeof *gf);
    float *af = tu_calloc(na, sizeof *af);
    tu_f64_to_f32(c->prm, pf, c->np);
    tu_f64_to_f32(c->x, xf, c->nx);
    tu_f64_to_f32(dy, dyf, c->ny);
    run_fwd(c, PLSTM_F64, c->prm, c->x, y, NULL);
    run_fwd(c, PLSTM_F32, pf, xf, yf, af);
    run_bwd(c, PLSTM_F32, pf, xf, af, dyf, dxf, gf);
    float *t = tu_calloc(c->np > c->ny ? (c->np > c->nx ? c->np : c->nx) : (c->ny > c->nx ? c->ny : c->nx), sizeof *t);
    tu_f64_to_f32(y, t, c->ny);
    snprintf(msg, sizeof msg, "%s: f32 y", what);
    TU_ASSERT_CLOSE(tu_rel_err_f32(yf, t, c->ny), 1e-4, msg);
    tu_f64_to_f32(dx, t, c->nx);
    snprintf(msg, sizeof msg, "%s: f32 dx", what);
    TU_ASSERT_CLOSE(tu_rel_err_f32(dxf, t, c->nx), 1e-4, msg);
    tu_f64_to_f32(g, t, c->np);
    snprintf(msg, sizeof msg, "%s: f32 grads", what);
    TU_ASSERT_CLOSE(tu_rel_err_f32(gf, t, c->np), 1e-4, msg);
    free(pf), free(xf), free(yf), free(dyf), free(dxf), free(gf), free(af), free(t);
    free(dy), free(y), free(dx), free(g), free(acts);
}

/* ---- independent construction ------------------------------------------- */

/* One sub-layer output [N, width] in F64. */
static double *sub_gate(const plstm_gate *g, const double *prm, size_t N, const double *x)
{
    double *y = tu_calloc(N * g->cfg.num_heads * (size_t)g->P, sizeof *y);
    double *a = tu_calloc(plstm_gate_activation_size(g, N) + 1, sizeof *a);
    TU_OK(plstm_gate_forward(g_ctx, g, PLSTM_F64, prm, N, x, y, a));
    free(a);
    return y;
}

static double *sub_trans(const plstm_transition *t, const double *prm, size_t N, const double *x)
{
    const size_t JT = (size_t)t->cfg.JT;
    double *y = tu_calloc(N * t->cfg.num_heads * JT * JT, sizeof *y);
    double *a = tu_calloc(plstm_transition_activation_size(t, N) + 1, sizeof *a);
    TU_OK(plstm_transition_forward(g_ctx, t, PLSTM_F64, prm, N, x, y, a));
    free(a);
    return y;
}

static double *sub_qkv(const plstm_qkv *q, const double *prm, size_t N, const double *x)
{
    double *y = tu_calloc(N * q->cfg.num_heads * (size_t)q->cfg.DK * q->cfg.J, sizeof *y);
    double *a = tu_calloc(plstm_qkv_activation_size(q, N) + 1, sizeof *a);
    TU_OK(plstm_qkv_forward(g_ctx, q, PLSTM_F64, prm, N, x, y, a));
    free(a);
    return y;
}

/* Reference computation of either layer (c->fused) by hand. */
static void construct(const lcase *c, double *out)
{
    const plstm_layer2d *L = &c->L;
    const plstm_layer2d_config *cfg = &L->cfg;
    const int B = c->B, X = c->X, Y = c->Y, H = cfg->num_heads, Din = cfg->input_dim;
    const int DK = cfg->DK, DV = cfg->DV, JQ = cfg->JQ, JK = cfg->JK, JV = cfg->JV;
    const int JT = cfg->JT, JO = cfg->JO;
    const size_t N = (size_t)B * X * Y, Dh = (size_t)DV * JO, Dy = Dh * H;
    const size_t PS = (size_t)JT * JK * JV, PT = (size_t)JT * JT, PM = (size_t)JO * JQ * JT;
    const size_t PD = (size_t)JO * JQ * JK * JV, PQ = (size_t)DK * JQ, PK = (size_t)DK * JK;
    const size_t PV = (size_t)DV * JV;
    const double *prm = c->prm;
    const int P = cfg->mode == PLSTM_LAYER2D_P;

    /* causal depthwise 3x3 conv */
    double *cx = NULL;
    if (cfg->conv) {
        cx = tu_calloc(N * Din, sizeof *cx);
        const double *w = prm + L->conv_weight_off, *bs = prm + L->conv_bias_off;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < X; i++)
                for (int j = 0; j < Y; j++)
                    for (int ch = 0; ch < Din; ch++) {
                        double s = bs[ch];
                        for (int a = 0; a < 3; a++)
                            for (int e = 0; e < 3; e++) {
                                int xi = i - 2 + a, yj = j - 2 + e;
                                if (xi >= 0 && yj >= 0)
                                    s += w[ch * 9 + a * 3 + e] *
                                         c->x[(((size_t)b * X + xi) * Y + yj) * Din + ch];
                            }
                        cx[(((size_t)b * X + i) * Y + j) * Din + ch] = s;
                    }
    }
#define IN(part) ((cfg->conv && strchr(cfg->conv_inputs, part)) ? cx : c->x)
    double *q = sub_qkv(&L->query, prm, N, IN('Q')), *k = sub_qkv(&L->key, prm, N, IN('K'));
    double *v = sub_qkv(&L->value, prm, N, IN('V'));
    double *dd = sub_gate(&L->direct, prm, N, IN('D'));
    double *om = NULL, *S = NULL, *T = NULL, *M = NULL;
    double *sr = NULL, *sd = NULL, *tr = NULL, *td = NULL, *trd = NULL, *ml = NULL, *mu = NULL;
    if (P) {
        om = tu_calloc(N * 4 * H, sizeof *om);
        double *a = tu_calloc(plstm_orientation_gate_activation_size(&L->ogate, N), sizeof *a);
        TU_OK(plstm_orientation_gate_forward(g_ctx, &L->ogate, PLSTM_F64, prm, N, IN('O'), om, a));
        free(a);
        S = sub_gate(&L->source, prm, N, IN('S'));
        T = sub_trans(&L->transition, prm, N, IN('T'));
        M = sub_gate(&L->mark, prm, N, IN('M'));
    } else {
        sr = sub_gate(&L->source_r, prm, N, IN('S'));
        sd = sub_gate(&L->source_d, prm, N, IN('S'));
        tr = sub_trans(&L->transition_r, prm, N, IN('T'));
        td = sub_trans(&L->transition_d, prm, N, IN('T'));
        trd = sub_trans(&L->transition_rd, prm, N, IN('T'));
        ml = sub_gate(&L->mark_l, prm, N, IN('M'));
        mu = sub_gate(&L->mark_u, prm, N, IN('M'));
    }
#undef IN
    const size_t G = N * H;
    double *cQ = tu_calloc(G * PQ, 8), *cK = tu_calloc(G * PK, 8), *cV = tu_calloc(G * PV, 8);
    double *cD = tu_calloc(G * PD, 8), *cSr = tu_calloc(G * PS, 8), *cSd = tu_calloc(G * PS, 8);
    double *cTrl = tu_calloc(G * PT, 8), *cTdu = tu_calloc(G * PT, 8);
    double *cTdl = tu_calloc(G * PT, 8), *cTru = tu_calloc(G * PT, 8);
    double *cMl = tu_calloc(G * PM, 8), *cMu = tu_calloc(G * PM, 8), *cY = tu_calloc(G * Dh, 8);
    double *acc = tu_calloc(N * Dy, sizeof *acc);
    const int use_dl = P || cfg->chirality == PLSTM_CHIRALITY_R;
    const int use_ru = P || cfg->chirality == PLSTM_CHIRALITY_L;
    plstm_core2d_desc d = {.dtype = PLSTM_F64, .B = B * H, .X = X, .Y = Y, .DK = DK, .DV = DV,
                           .JQ = JQ, .JK = JK, .JV = JV, .JT = JT, .JO = JO,
                           .scale = 1.0 / sqrt((double)DK), .algo = PLSTM_ALGO_SEQUENTIAL};
    for (int oi = 0; oi < 4; oi++) {
        const int o = c->fused ? oi : cfg->orientations[oi];
        const int fx = o & 1, fy = (o >> 1) & 1;
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int xx = 0; xx < X; xx++)
                    for (int yy = 0; yy < Y; yy++) {
                        const size_t n = ((size_t)b * X + xx) * Y + yy;
                        const int xf = fx ? X - 1 - xx : xx, yf = fy ? Y - 1 - yy : yy;
                        const size_t gn = (((size_t)b * H + h) * X + xf) * Y + yf;
                        /* Q7: fused reference map reads flat index 4h+o */
                        const int i = (c->fused && cfg->map == PLSTM_HOMAP_REFERENCE)
                                          ? 4 * h + oi : oi * H + h;
                        memcpy(cQ + gn * PQ, q + (n * H + h) * PQ, PQ * 8);
                        memcpy(cK + gn * PK, k + (n * H + h) * PK, PK * 8);
                        memcpy(cV + gn * PV, v + (n * H + h) * PV, PV * 8);
                        for (size_t e = 0; e < PD; e++)
                            cD[gn * PD + e] = dd[(n * H + h) * PD + e] * (c->fused ? 0.25 : 1.0);
                        const size_t si = n * 4 * H + i;
                        for (size_t e = 0; e < PS; e++) {
                            if (P) {
                                cSr[gn * PS + e] = om[si] * S[si * PS + e];
                                cSd[gn * PS + e] = 1.0 - om[si] * S[si * PS + e];
                            } else {
                                cSr[gn * PS + e] = sr[si * PS + e];
                                cSd[gn * PS + e] = sd[si * PS + e];
                            }
                        }
                        for (size_t e = 0; e < PT; e++) {
                            if (P) {
                                cTrl[gn * PT + e] = cTru[gn * PT + e] = om[si] * T[si * PT + e];
                                cTdu[gn * PT + e] = cTdl[gn * PT + e] =
                                    1.0 - om[si] * T[si * PT + e];
                            } else {
                                cTrl[gn * PT + e] = tr[si * PT + e];
                                cTdu[gn * PT + e] = td[si * PT + e];
                                cTdl[gn * PT + e] = cTru[gn * PT + e] = trd[si * PT + e];
                            }
                        }
                        for (size_t e = 0; e < PM; e++) {
                            cMl[gn * PM + e] = P ? M[si * PM + e] : ml[si * PM + e];
                            cMu[gn * PM + e] = P ? M[si * PM + e] : mu[si * PM + e];
                        }
                    }
        plstm_core2d_inputs in = {cQ, cK, cV, cSr, cSd, cTrl, cTdu, use_dl ? cTdl : NULL,
                                  use_ru ? cTru : NULL, cMl, cMu, cD, NULL, NULL};
        plstm_core2d_outputs co = {cY, NULL, NULL};
        TU_OK(plstm_core2d_forward(g_ctx, &d, &in, &co));
        /* un-flip into [N, H, Dh]; non-fused: norm per orientation, mean */
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int xx = 0; xx < X; xx++)
                    for (int yy = 0; yy < Y; yy++) {
                        const size_t n = ((size_t)b * X + xx) * Y + yy;
                        const int xf = fx ? X - 1 - xx : xx, yf = fy ? Y - 1 - yy : yy;
                        const double *src = cY + ((((size_t)b * H + h) * X + xf) * Y + yf) * Dh;
                        double *dst = acc + n * Dy + h * Dh;
                        const int norm = L->mhnorm_off != PLSTM_NO_PARAM;
                        double rs = 1.0;
                        if (!c->fused && norm) {
                            double ss = 0;
                            for (size_t e = 0; e < Dh; e++)
                                ss += src[e] * src[e];
                            rs = 1.0 / sqrt(ss / Dh + cfg->mhnorm_eps);
                        }
                        for (size_t e = 0; e < Dh; e++)
                            dst[e] += c->fused ? src[e]
                                      : 0.25 * src[e] * rs * (norm ? prm[L->mhnorm_off + h * Dh + e] : 1);
                    }
    }
    if (c->fused && L->mhnorm_off != PLSTM_NO_PARAM) /* one norm of the summed orientations */
        for (size_t n = 0; n < N; n++)
            for (int h = 0; h < H; h++) {
                double *a = acc + n * Dy + h * Dh, ss = 0;
                for (size_t e = 0; e < Dh; e++)
                    ss += a[e] * a[e];
                const double rs = 1.0 / sqrt(ss / Dh + cfg->mhnorm_eps);
                for (size_t e = 0; e < Dh; e++)
                    a[e] *= rs * prm[L->mhnorm_off + h * Dh + e];
            }
    const double *W = cfg->outprojection ? prm + L->outproj_weight_off : NULL;
    for (size_t n = 0; n < N; n++)
        for (int j = 0; j < L->Dout; j++) {
            double s = W ? 0 : acc[n * Dy + j];
            for (size_t e = 0; W && e < Dy; e++)
                s += W[j * Dy + e] * acc[n * Dy + e];
            if (cfg->outprojection_bias)
                s += prm[L->outproj_bias_off + j];
            if (cfg->passthrough)
                s += prm[L->passthrough_off + j] * c->x[n * Din + j];
            out[n * L->Dout + j] = s;
        }
    double *bufs[] = {cx, q, k, v, dd, om, S, T, M, sr, sd, tr, td, trd, ml, mu, cQ, cK, cV,
                      cD, cSr, cSd, cTrl, cTdu, cTdl, cTru, cMl, cMu, cY, acc};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
}

static void check_construction(const lcase *c, const char *what)
{
    double *y = tu_calloc(c->ny, sizeof *y), *want = tu_calloc(c->ny, sizeof *want);
    run_fwd(c, PLSTM_F64, c->prm, c->x, y, NULL);
    construct(c, want);
    char msg[200];
    snprintf(msg, sizeof msg, "%s: layer vs independent construction", what);
    TU_ASSERT_CLOSE(tu_rel_err_f64(y, want, c->ny), 1e-11, msg);
    free(y);
    free(want);
}

/* ---- cases --------------------------------------------------------------- */

static plstm_layer2d_config small_cfg(plstm_layer2d_mode mode, int fused, int weights)
{
    plstm_layer2d_config cfg = fused ? plstm_layer2d_fused_config_default(8, 2, mode)
                                     : plstm_layer2d_config_default(8, 2, mode);
    cfg.source.weight = cfg.mark.weight = cfg.direct.weight = weights;
    return cfg;
}

static void test_fused_fd_P(void **state)
{
    (void)state;
    lcase c;
    plstm_layer2d_config cfg = small_cfg(PLSTM_LAYER2D_P, 1, 1);
    lcase_make(&c, &cfg, 1, 1, 3, 5, 11);
    check_fd(&c, "fused P weights");
    check_construction(&c, "fused P weights");
    lcase_free(&c);
    cfg = small_cfg(PLSTM_LAYER2D_P, 1, 0);
    lcase_make(&c, &cfg, 1, 2, 5, 3, 12);
    check_fd(&c, "fused P bias-only");
    check_construction(&c, "fused P bias-only");
    lcase_free(&c);
}

static void test_fused_fd_D(void **state)
{
    (void)state;
    lcase c;
    plstm_layer2d_config cfg = small_cfg(PLSTM_LAYER2D_D, 1, 1);
    lcase_make(&c, &cfg, 1, 1, 3, 5, 21);
    check_fd(&c, "fused D L weights");
    check_construction(&c, "fused D L weights");
    lcase_free(&c);
    cfg = small_cfg(PLSTM_LAYER2D_D, 1, 0);
    cfg.chirality = PLSTM_CHIRALITY_R;
    lcase_make(&c, &cfg, 1, 1, 4, 3, 22);
    check_fd(&c, "fused D R bias-only");
    check_construction(&c, "fused D R bias-only");
    lcase_free(&c);
}

/* JT = 2 (exp-orthogonalized transitions) with other J dims > 1 and the
 * intended head/orientation map. */
static void test_fused_fd_J(void **state)
{
    (void)state;
    lcase c;
    plstm_layer2d_config cfg = small_cfg(PLSTM_LAYER2D_D, 1, 1);
    cfg.JT = 2, cfg.JV = 2, cfg.JO = 2, cfg.DV = 2;
    cfg.chirality = PLSTM_CHIRALITY_R;
    lcase_make(&c, &cfg, 1, 1, 3, 3, 31);
    check_fd(&c, "fused D JT=2");
    check_construction(&c, "fused D JT=2");
    lcase_free(&c);
    cfg = small_cfg(PLSTM_LAYER2D_P, 1, 1);
    cfg.JT = 2, cfg.JK = 2, cfg.JQ = 2;
    cfg.map = PLSTM_HOMAP_INTENDED;
    cfg.conv = 1, cfg.passthrough = 1;
    lcase_make(&c, &cfg, 1, 1, 2, 3, 32);
    check_fd(&c, "fused P JT=2 intended map, conv, passthrough");
    check_construction(&c, "fused P JT=2 intended map, conv, passthrough");
    lcase_free(&c);
}

/* Options: no mhnorm, out projection with bias; no out projection. */
static void test_options(void **state)
{
    (void)state;
    lcase c;
    plstm_layer2d_config cfg = small_cfg(PLSTM_LAYER2D_P, 1, 1);
    cfg.mhnorm = 0, cfg.outprojection_bias = 1;
    lcase_make(&c, &cfg, 1, 1, 3, 2, 71);
    check_fd(&c, "fused P no mhnorm, outprojection bias");
    check_construction(&c, "fused P no mhnorm, outprojection bias");
    lcase_free(&c);
    cfg = small_cfg(PLSTM_LAYER2D_D, 0, 1);
    cfg.outprojection = 0, cfg.JO = 2, cfg.passthrough = 0;
    lcase_make(&c, &cfg, 0, 1, 3, 3, 72);
    assert_int_equal(c.L.Dout, 16);
    check_fd(&c, "non-fused D no outprojection");
    check_construction(&c, "non-fused D no outprojection");
    lcase_free(&c);
}

/* A larger odd grid through the fast (AUTO) core against the sequential build. */
static void test_fused_large_grid(void **state)
{
    (void)state;
    TU_OK(plstm_context_set_threads(g_ctx, 0));
    lcase c;
    plstm_layer2d_config cfg = plstm_layer2d_fused_config_default(24, 3, PLSTM_LAYER2D_P);
    cfg.source.weight = cfg.mark.weight = 1;
    lcase_make(&c, &cfg, 1, 2, 13, 7, 41);
    check_construction(&c, "fused P 13x7");
    lcase_free(&c);
    TU_OK(plstm_context_set_threads(g_ctx, 1));
}

static void test_nonfused(void **state)
{
    (void)state;
    lcase c;
    plstm_layer2d_config cfg = small_cfg(PLSTM_LAYER2D_P, 0, 1);
    lcase_make(&c, &cfg, 0, 1, 3, 5, 51);
    check_fd(&c, "non-fused P");
    check_construction(&c, "non-fused P");
    lcase_free(&c);
    cfg = small_cfg(PLSTM_LAYER2D_D, 0, 0);
    cfg.orientations[0] = 3, cfg.orientations[1] = 2, cfg.orientations[2] = 2;
    cfg.orientations[3] = 1;
    lcase_make(&c, &cfg, 0, 2, 4, 3, 52);
    check_fd(&c, "non-fused D permuted orientations");
    check_construction(&c, "non-fused D permuted orientations");
    lcase_free(&c);
}

/* The non-fused layer's orientation 2 flips y (intended rule; not the
 * reference's Q5): orientation lists {2,2,2,2} and {0,0,0,0} give different
 * outputs, and {2,...} equals the {0,...} layer applied to the y-flipped grid
 * when there is no (causal) conv. */
static void test_nonfused_flip_rule(void **state)
{
    (void)state;
    plstm_layer2d_config cfg = small_cfg(PLSTM_LAYER2D_P, 0, 1);
    cfg.conv = 0;
    for (int o = 0; o < 4; o++)
        cfg.orientations[o] = 2;
    lcase a, b;
    lcase_make(&a, &cfg, 0, 1, 3, 4, 61);
    for (int o = 0; o < 4; o++)
        cfg.orientations[o] = 0;
    lcase_make(&b, &cfg, 0, 1, 3, 4, 61);
    memcpy(b.prm, a.prm, a.np * sizeof(double));
    const int X = 3, Y = 4, D = 8;
    for (int x = 0; x < X; x++)
        for (int y = 0; y < Y; y++)
            memcpy(b.x + ((size_t)x * Y + y) * D, a.x + ((size_t)x * Y + (Y - 1 - y)) * D,
                   D * sizeof(double));
    double *ya = tu_calloc(a.ny, 8), *yb = tu_calloc(b.ny, 8), *yb0 = tu_calloc(b.ny, 8);
    run_fwd(&a, PLSTM_F64, a.prm, a.x, ya, NULL);
    run_fwd(&b, PLSTM_F64, b.prm, b.x, yb, NULL);
    run_fwd(&b, PLSTM_F64, b.prm, a.x, yb0, NULL);
    for (int x = 0; x < X; x++)
        for (int y = 0; y < Y; y++)
            TU_ASSERT_CLOSE(tu_rel_err_f64(ya + ((size_t)x * Y + y) * D,
                                           yb + ((size_t)x * Y + (Y - 1 - y)) * D, D),
                            1e-12, "orientation 2 = flip y");
    assert_true(tu_rel_err_f64(ya, yb0, a.ny) > 1e-3);
    free(ya), free(yb), free(yb0);
    lcase_free(&a);
    lcase_free(&b);
}

static void test_errors(void **state)
{
    (void)state;
    plstm_params *p;
    TU_OK(plstm_params_create(&p));
    plstm_layer2d L;
    plstm_layer2d_config cfg = plstm_layer2d_fused_config_default(10, 3, PLSTM_LAYER2D_P);
    assert_int_equal(plstm_layer2d_declare(&L, &cfg, p, "l"), PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "num_heads 3 does not divide input_dim 10"));
    cfg = plstm_layer2d_fused_config_default(8, 2, PLSTM_LAYER2D_P);
    cfg.outprojection = 0, cfg.passthrough = 1, cfg.JO = 2;
    assert_int_equal(plstm_layer2d_declare(&L, &cfg, p, "l"), PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "passthrough"));
    plstm_params_destroy(p);

    TU_OK(plstm_params_create(&p));
    cfg = plstm_layer2d_fused_config_default(8, 2, PLSTM_LAYER2D_P);
    TU_OK(plstm_layer2d_declare(&L, &cfg, p, NULL));
    assert_non_null(plstm_params_find(p, "orientation_bias"));
    assert_non_null(plstm_params_find(p, "value_.weight"));
    assert_non_null(plstm_params_find(p, "outprojection.weight"));
    assert_null(plstm_params_find(p, "outprojection.bias"));
    double *prm = tu_calloc(plstm_params_size(p), sizeof *prm), x[8], y[8];
    memset(x, 0, sizeof x);
    TU_OK(plstm_layer2d_init(&L, prm, PLSTM_F64, 1));
    assert_int_equal(plstm_layer2d_fused_forward(g_ctx, &L, PLSTM_F64, prm, 1, 0, 1, x, y, NULL),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "X 0"));
    assert_int_equal(plstm_layer2d_forward(g_ctx, &L, PLSTM_F64, prm, 1, 1, -2, x, y, NULL),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_int_equal(plstm_layer2d_fused_forward(g_ctx, &L, PLSTM_F64, prm, 1, 1, 1, NULL, y,
                                                 NULL),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_int_equal(plstm_layer2d_fused_forward(g_ctx, &L, PLSTM_BF16, prm, 1, 1, 1, x, y, NULL),
                     PLSTM_ERR_INVALID_ARGUMENT);
    TU_OK(plstm_layer2d_fused_forward(g_ctx, &L, PLSTM_F64, prm, 1, 1, 1, x, y, NULL));
    assert_int_equal(plstm_layer2d_fused_activation_size(&L, 0, 1, 1), 0);
    free(prm);
    plstm_params_destroy(p);
}

/* One thread: the finite differences run thousands of tiny forwards, where
 * OpenMP barriers would only cost time; test_fused_large_grid and the
 * reference vectors (plstm verify) run with the default threads. */
static int setup(void **state)
{
    (void)state;
    if (plstm_context_create(&g_ctx, PLSTM_BACKEND_CPU, 0) != PLSTM_OK)
        return -1;
    return plstm_context_set_threads(g_ctx, 1) == PLSTM_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    plstm_context_destroy(g_ctx);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fused_fd_P),         cmocka_unit_test(test_fused_fd_D),
        cmocka_unit_test(test_fused_fd_J),         cmocka_unit_test(test_fused_large_grid),
        cmocka_unit_test(test_nonfused),           cmocka_unit_test(test_nonfused_flip_rule),
        cmocka_unit_test(test_options),           cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
