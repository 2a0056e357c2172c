/* Gate sub-layers (plstm-math.md §4.2–4.5, §5.1–5.3, §5.7): every backward
 * against central finite differences in F64 (input and all parameters), F32
 * against F64, the exponential orthogonalization against a naive series, the
 * Q7 head/orientation mapping on a hand-made example, the default init values
 * and the parameter names/shapes against the reference test vectors. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static plstm_context *g_ctx;

/* ---- generic finite-difference and F32 checks --------------------------- */

typedef struct fd_case fd_case;
struct fd_case {
    size_t nx, ny, na;  /* elements of input, output, acts */
    plstm_params *p;    /* NULL: no parameters */
    void (*fwd)(const fd_case *c, plstm_dtype dt, const void *prm, const void *x, void *y,
                void *acts);
    void (*bwd)(const fd_case *c, plstm_dtype dt, const void *prm, const void *x,
                const void *acts, const void *dy, void *dx, void *g);
};

static size_t np_of(const fd_case *c)
{
    return c->p ? plstm_params_size(c->p) : 0;
}

static double eval_loss(const fd_case *c, const double *prm, const double *x, const double *dy,
                        double *y)
{
    c->fwd(c, PLSTM_F64, prm, x, y, NULL);
    double L = 0;
    for (size_t i = 0; i < c->ny; i++)
        L += y[i] * dy[i];
    return L;
}

/* Central differences of L = Σ y·dy with respect to v[0..n). */
static void numeric_grad(const fd_case *c, double *prm, double *x, const double *dy, double *v,
                         size_t n, double *out, double *y)
{
    const double h = 1e-5;
    for (size_t i = 0; i < n; i++) {
        const double keep = v[i];
        v[i] = keep + h;
        double lp = eval_loss(c, prm, x, dy, y);
        v[i] = keep - h;
        double lm = eval_loss(c, prm, x, dy, y);
        v[i] = keep;
        out[i] = (lp - lm) / (2 * h);
    }
}

/* FD check of dx and all parameter gradients, the "=" / "+=" semantics, and
 * F32 against F64 (forward, dx, grads). */
static void check_case(const fd_case *c, double *prm, double *x, const char *what, uint64_t seed)
{
    const size_t np = np_of(c);
    tu_rng r;
    tu_rng_seed(&r, seed);
    double *dy = tu_calloc(c->ny, sizeof(double)), *y = tu_calloc(c->ny, sizeof(double));
    double *acts = tu_calloc(c->na + 1, sizeof(double));
    double *dx = tu_calloc(c->nx + 1, sizeof(double)), *ndx = tu_calloc(c->nx + 1, sizeof(double));
    double *g = tu_calloc(np + 1, sizeof(double)), *ng = tu_calloc(np + 1, sizeof(double));
    tu_fill_f64(&r, dy, c->ny, -1, 1);
    for (size_t i = 0; i < c->nx; i++)
        dx[i] = 1e30; /* dx is written, not accumulated */
    c->fwd(c, PLSTM_F64, prm, x, y, acts);
    c->bwd(c, PLSTM_F64, prm, x, acts, dy, dx, g);
    double *y2 = tu_calloc(c->ny, sizeof(double));
    numeric_grad(c, prm, x, dy, x, c->nx, ndx, y2);
    numeric_grad(c, prm, x, dy, prm, np, ng, y2);
    char msg[256];
    snprintf(msg, sizeof msg, "%s: dx vs finite differences", what);
    TU_ASSERT_CLOSE(tu_rel_err_f64(dx, ndx, c->nx), 1e-6, msg);
    snprintf(msg, sizeof msg, "%s: parameter grads vs finite differences", what);
    TU_ASSERT_CLOSE(tu_rel_err_f64(g, ng, np), 1e-6, msg);
    /* a second backward accumulates into the grads */
    if (np) {
        c->bwd(c, PLSTM_F64, prm, x, acts, dy, dx, g);
        for (size_t i = 0; i < np; i++)
            ng[i] *= 2;
        snprintf(msg, sizeof msg, "%s: grads accumulate", what);
        TU_ASSERT_CLOSE(tu_rel_err_f64(g, ng, np), 1e-6, msg);
        for (size_t i = 0; i < np; i++)
            g[i] /= 2;
    }

    /* F32 path on the same numbers */
    float *fp = tu_calloc(np + 1, sizeof(float)), *fx = tu_calloc(c->nx + 1, sizeof(float));
    float *fdy = tu_calloc(c->ny, sizeof(float)), *fy = tu_calloc(c->ny, sizeof(float));
    float *fa = tu_calloc(c->na + 1, sizeof(float)), *fdx = tu_calloc(c->nx + 1, sizeof(float));
    float *fg = tu_calloc(np + 1, sizeof(float));
    float *ry = tu_calloc(c->ny, sizeof(float)), *rdx = tu_calloc(c->nx + 1, sizeof(float));
    float *rg = tu_calloc(np + 1, sizeof(float));
    tu_f64_to_f32(prm, fp, np);
    tu_f64_to_f32(x, fx, c->nx);
    tu_f64_to_f32(dy, fdy, c->ny);
    tu_f64_to_f32(y, ry, c->ny);
    tu_f64_to_f32(dx, rdx, c->nx);
    tu_f64_to_f32(g, rg, np);
    c->fwd(c, PLSTM_F32, fp, fx, fy, fa);
    c->bwd(c, PLSTM_F32, fp, fx, fa, fdy, fdx, fg);
    snprintf(msg, sizeof msg, "%s: F32 forward vs F64", what);
    TU_ASSERT_CLOSE(tu_rel_err_f32(fy, ry, c->ny), 2e-5, msg);
    snprintf(msg, sizeof msg, "%s: F32 dx vs F64", what);
    TU_ASSERT_CLOSE(tu_rel_err_f32(fdx, rdx, c->nx), 1e-4, msg);
    snprintf(msg, sizeof msg, "%s: F32 grads vs F64", what);
    TU_ASSERT_CLOSE(tu_rel_err_f32(fg, rg, np), 1e-4, msg);

    free(dy), free(y), free(y2), free(acts), free(dx), free(ndx), free(g), free(ng);
    free(fp), free(fx), free(fdy), free(fy), free(fa), free(fdx), free(fg), free(ry), free(rdx);
    free(rg);
}

/* Random parameter buffer (weights in ±wa, everything else in ±ba). */
static double *random_params(const plstm_params *p, uint64_t seed, double ba, double wa)
{
    tu_rng r;
    tu_rng_seed(&r, seed);
    size_t n = plstm_params_size(p);
    double *v = tu_calloc(n + 1, sizeof(double));
    for (size_t i = 0; i < plstm_params_count(p); i++) {
        const plstm_param_info *it = plstm_params_at(p, i);
        double a = strstr(it->name, "weight") ? wa : ba;
        tu_fill_f64(&r, v + it->offset, it->numel, -a, a);
    }
    return v;
}

static double *random_vec(size_t n, uint64_t seed, double lo, double hi)
{
    tu_rng r;
    tu_rng_seed(&r, seed);
    double *v = tu_calloc(n + 1, sizeof(double));
    tu_fill_f64(&r, v, n, lo, hi);
    return v;
}

/* ---- Source / Mark / Direct --------------------------------------------- */

typedef struct gate_case {
    fd_case c;
    plstm_gate L;
    size_t N;
} gate_case;

static void gate_fwd(const fd_case *c, plstm_dtype dt, const void *prm, const void *x, void *y,
                     void *acts)
{
    const gate_case *g = (const gate_case *)c;
    TU_OK(plstm_gate_forward(g_ctx, &g->L, dt, prm, g->N, x, y, acts));
}

static void gate_bwd(const fd_case *c, plstm_dtype dt, const void *prm, const void *x,
                     const void *acts, const void *dy, void *dx, void *gr)
{
    const gate_case *g = (const gate_case *)c;
    TU_OK(plstm_gate_backward(g_ctx, &g->L, dt, prm, g->N, x, acts, dy, dx, gr));
}

static void run_gate(plstm_gate_config cfg, size_t N, const char *what, uint64_t seed)
{
    gate_case gc;
    memset(&gc, 0, sizeof gc);
    TU_OK(plstm_params_create(&gc.c.p));
    TU_OK(plstm_gate_declare(&gc.L, &cfg, gc.c.p, "source"));
    gc.N = N;
    gc.c.nx = N * cfg.input_dim;
    gc.c.ny = N * cfg.num_heads * gc.L.P;
    gc.c.na = plstm_gate_activation_size(&gc.L, N);
    gc.c.fwd = gate_fwd;
    gc.c.bwd = gate_bwd;
    double *prm = random_params(gc.c.p, seed, 1.5, 0.6);
    double *x = random_vec(gc.c.nx, seed + 1, -1, 1);
    check_case(&gc.c, prm, x, what, seed + 2);
    free(prm), free(x);
    plstm_params_destroy(gc.c.p);
}

static void test_gate_grads(void **state)
{
    (void)state;
    plstm_gate_config c = plstm_gate_config_default(PLSTM_GATE_SOURCE, 6, 4);
    c.JT = 2, c.JK = 1, c.JV = 3, c.weight = 1;
    run_gate(c, 5, "source logsigmoid", 10);
    c.activation_scale = 0.7;
    run_gate(c, 5, "source logsigmoid kappa 0.7", 11);
    c.sub_heads = 2, c.activation = PLSTM_GATE_ACT_TANH, c.activation_scale = 2.0;
    run_gate(c, 5, "source tanh sub_heads 2", 12);
    c.activation = PLSTM_GATE_ACT_IDENTITY;
    run_gate(c, 4, "source identity", 13);
    c = plstm_gate_config_default(PLSTM_GATE_MARK, 6, 2);
    c.JO = 2, c.JQ = 1, c.JT = 2, c.weight = 1, c.activation = PLSTM_GATE_ACT_TANH;
    run_gate(c, 4, "mark tanh", 14);
    c.weight = 0, c.activation = PLSTM_GATE_ACT_LOGSIGMOID;
    run_gate(c, 3, "mark bias only", 15);
    c = plstm_gate_config_default(PLSTM_GATE_DIRECT, 4, 2);
    c.JO = 1, c.JQ = 2, c.JK = 1, c.JV = 2, c.weight = 1, c.sub_heads = 2;
    run_gate(c, 4, "direct", 16);
}

/* ---- LongRangeTransition ------------------------------------------------ */

typedef struct tr_case {
    fd_case c;
    plstm_transition L;
    size_t N;
} tr_case;

static void tr_fwd(const fd_case *c, plstm_dtype dt, const void *prm, const void *x, void *y,
                   void *acts)
{
    const tr_case *t = (const tr_case *)c;
    TU_OK(plstm_transition_forward(g_ctx, &t->L, dt, prm, t->N, x, y, acts));
}

static void tr_bwd(const fd_case *c, plstm_dtype dt, const void *prm, const void *x,
                   const void *acts, const void *dy, void *dx, void *gr)
{
    const tr_case *t = (const tr_case *)c;
    TU_OK(plstm_transition_backward(g_ctx, &t->L, dt, prm, t->N, x, acts, dy, dx, gr));
}

static void run_tr(plstm_transition_config cfg, size_t N, const char *what, uint64_t seed)
{
    tr_case tc;
    memset(&tc, 0, sizeof tc);
    TU_OK(plstm_params_create(&tc.c.p));
    TU_OK(plstm_transition_declare(&tc.L, &cfg, tc.c.p, "transition"));
    tc.N = N;
    tc.c.nx = N * cfg.input_dim;
    tc.c.ny = N * cfg.num_heads * cfg.JT * cfg.JT;
    tc.c.na = plstm_transition_activation_size(&tc.L, N);
    tc.c.fwd = tr_fwd;
    tc.c.bwd = tr_bwd;
    /* generators of norm > 1 so the ν scaling is exercised */
    double *prm = random_params(tc.c.p, seed, 1.0, 0.3);
    double *x = random_vec(tc.c.nx, seed + 1, -1, 1);
    check_case(&tc.c, prm, x, what, seed + 2);
    free(prm), free(x);
    plstm_params_destroy(tc.c.p);
}

static void test_transition_grads(void **state)
{
    (void)state;
    plstm_transition_config c = plstm_transition_config_default(4, 3, 1);
    c.eigenvalue_factor = 1.5; /* keep tanh away from saturation */
    run_tr(c, 5, "transition JT=1 tanh", 20);
    c.eigenvalue_repr = PLSTM_EIG_LOGSIGMOID;
    run_tr(c, 5, "transition JT=1 logsigmoid", 21);
    c.eigenvalue_repr = PLSTM_EIG_EXPEXP;
    run_tr(c, 5, "transition JT=1 expexp", 22);
    c = plstm_transition_config_default(4, 2, 3);
    c.eigenvalue_factor = 1.5;
    run_tr(c, 4, "transition JT=3 exp-orth", 23);
    c.symmetric = 1;
    c.orthogonalization_factor = 0.8;
    run_tr(c, 4, "transition JT=3 exp-orth symmetric", 24);
    c.symmetric = 0;
    c.sub_heads = 2;
    c.eigenvalue_repr = PLSTM_EIG_LOGSIGMOID;
    run_tr(c, 3, "transition JT=3 sub_heads 2", 25);
    c.sub_heads = 1;
    c.weight = 0;
    run_tr(c, 3, "transition JT=3 no weight", 26);
    c = plstm_transition_config_default(4, 2, 2);
    c.orthogonalization_order = 5;
    run_tr(c, 3, "transition JT=2 order 5", 27);
}

static void test_transition_unsupported(void **state)
{
    (void)state;
    plstm_params *p;
    TU_OK(plstm_params_create(&p));
    plstm_transition L;
    plstm_transition_config c = plstm_transition_config_default(4, 2, 2);
    c.normalization = PLSTM_TNORM_QR;
    assert_int_equal(plstm_transition_declare(&L, &c, p, "t"), PLSTM_ERR_UNSUPPORTED);
    assert_non_null(strstr(plstm_last_error(), "qr"));
    c.JT = 1; /* no normalization with JT = 1 */
    TU_OK(plstm_transition_declare(&L, &c, p, "t"));
    plstm_params_destroy(p);
}

/* ---- exponential orthogonalization on its own ---------------------------- */

/* Naive Σ_{k<K} A^k/k!, A = φ(R − Rᵀ). */
static void naive_series(int n, const double *R, double phi, int K, double *O)
{
    double *A = tu_calloc(n * n, sizeof(double)), *t = tu_calloc(n * n, sizeof(double));
    double *t2 = tu_calloc(n * n, sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            A[i * n + j] = phi * (R[i * n + j] - R[j * n + i]);
            t[i * n + j] = O[i * n + j] = i == j;
        }
    for (int k = 1; k < K; k++) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int m = 0; m < n; m++)
                    s += t[i * n + m] * A[m * n + j];
                t2[i * n + j] = s / k;
            }
        memcpy(t, t2, n * n * sizeof(double));
        for (int i = 0; i < n * n; i++)
            O[i] += t[i];
    }
    free(A), free(t), free(t2);
}

static void test_exp_orthogonalize(void **state)
{
    (void)state;
    const int n = 4;
    double *R = random_vec(n * n, 30, -0.05, 0.05), O[16], Q[16];
    TU_OK(plstm_exp_orthogonalize(PLSTM_F64, n, 1, 1.0, 16, R, O));
    double dev = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int m = 0; m < n; m++)
                s += O[m * n + i] * O[m * n + j];
            dev = fmax(dev, fabs(s - (i == j)));
        }
    if (!(dev < 1e-13))
        fail_msg("small generator: |O^T O - I| = %.3e", dev);
    free(R);
    /* a large generator (ν > 1) against the naive series, several orders */
    R = random_vec(n * n, 31, -1.5, 1.5);
    const int orders[3] = {16, 5, 1};
    for (int k = 0; k < 3; k++) {
        TU_OK(plstm_exp_orthogonalize(PLSTM_F64, n, 1, 0.7, orders[k], R, O));
        naive_series(n, R, 0.7, orders[k], Q);
        TU_ASSERT_CLOSE(tu_rel_err_f64(O, Q, n * n), 1e-12, "exp orthogonalization vs naive series");
    }
    /* backward: against finite differences of the naive series */
    double *G = random_vec(n * n, 32, -1, 1), dR[16], num[16];
    TU_OK(plstm_exp_orthogonalize_backward(PLSTM_F64, n, 1, 0.7, 16, R, G, dR));
    for (int i = 0; i < n * n; i++) {
        double keep = R[i], lp = 0, lm = 0;
        R[i] = keep + 1e-6;
        naive_series(n, R, 0.7, 16, Q);
        for (int j = 0; j < n * n; j++)
            lp += Q[j] * G[j];
        R[i] = keep - 1e-6;
        naive_series(n, R, 0.7, 16, Q);
        for (int j = 0; j < n * n; j++)
            lm += Q[j] * G[j];
        R[i] = keep;
        num[i] = (lp - lm) / 2e-6;
    }
    TU_ASSERT_CLOSE(tu_rel_err_f64(dR, num, n * n), 1e-7, "exp orthogonalization backward");
    free(R), free(G);
}

/* ---- QKV ------------------------------------------------------------------ */

typedef struct qkv_case {
    fd_case c;
    plstm_qkv L;
    size_t N;
} qkv_case;

static void qkv_fwd(const fd_case *c, plstm_dtype dt, const void *prm, const void *x, void *y,
                    void *acts)
{
    const qkv_case *q = (const qkv_case *)c;
    TU_OK(plstm_qkv_forward(g_ctx, &q->L, dt, prm, q->N, x, y, acts));
}

static void qkv_bwd(const fd_case *c, plstm_dtype dt, const void *prm, const void *x,
                    const void *acts, const void *dy, void *dx, void *gr)
{
    const qkv_case *q = (const qkv_case *)c;
    TU_OK(plstm_qkv_backward(g_ctx, &q->L, dt, prm, q->N, x, acts, dy, dx, gr));
}

/* Direct evaluation of §5.3 from the weight layout [G, DKs, J, S, Dsub]. */
static void qkv_naive(const plstm_qkv *L, const double *prm, size_t N, const double *x, double *y)
{
    const plstm_qkv_config *c = &L->cfg;
    const int S = c->sub_heads, Dsub = c->input_dim / S, J = c->J;
    const int split = S > c->num_heads ? S / c->num_heads : 1;
    for (size_t n = 0; n < N; n++)
        for (int g = 0; g < L->G; g++)
            for (int s = 0; s < S; s++)
                for (int k = 0; k < L->DKs; k++)
                    for (int j = 0; j < J; j++) {
                        double v = 0;
                        for (int i = 0; i < Dsub; i++)
                            v += prm[L->weight_off + (((size_t)(g * L->DKs + k) * J + j) * S + s) * Dsub + i] *
                                 x[n * c->input_dim + s * Dsub + i];
                        /* head and dk of (g, s, k) */
                        int h = S >= c->num_heads ? s / split : g * S + s;
                        int dk = S > c->num_heads ? (s % split) * L->DKs + k : k;
                        size_t o = ((n * c->num_heads + h) * c->DK + dk) * J + j;
                        if (L->bias_off != PLSTM_NO_PARAM)
                            v += prm[L->bias_off + ((size_t)h * c->DK + dk) * J + j];
                        y[o] = v;
                    }
}

static void run_qkv(plstm_qkv_config cfg, size_t N, const char *what, uint64_t seed)
{
    qkv_case qc;
    memset(&qc, 0, sizeof qc);
    TU_OK(plstm_params_create(&qc.c.p));
    TU_OK(plstm_qkv_declare(&qc.L, &cfg, qc.c.p, "query"));
    qc.N = N;
    qc.c.nx = N * cfg.input_dim;
    qc.c.ny = N * cfg.num_heads * cfg.DK * cfg.J;
    qc.c.na = plstm_qkv_activation_size(&qc.L, N);
    qc.c.fwd = qkv_fwd;
    qc.c.bwd = qkv_bwd;
    double *prm = random_params(qc.c.p, seed, 1.0, 1.0);
    double *x = random_vec(qc.c.nx, seed + 1, -1, 1);
    if (!cfg.l2_norm) { /* the block layout against a direct evaluation */
        double *y = tu_calloc(qc.c.ny, sizeof(double)), *yn = tu_calloc(qc.c.ny, sizeof(double));
        TU_OK(plstm_qkv_forward(g_ctx, &qc.L, PLSTM_F64, prm, N, x, y, NULL));
        qkv_naive(&qc.L, prm, N, x, yn);
        TU_ASSERT_CLOSE(tu_rel_err_f64(y, yn, qc.c.ny), 1e-14, what);
        free(y), free(yn);
    }
    check_case(&qc.c, prm, x, what, seed + 2);
    free(prm), free(x);
    plstm_params_destroy(qc.c.p);
}

static void test_qkv_grads(void **state)
{
    (void)state;
    plstm_qkv_config c = plstm_qkv_config_default(8, 2, 3, 2); /* S_h = NH */
    run_qkv(c, 5, "qkv sub_heads = heads", 40);
    c.sub_heads = 1; /* S_h < NH: every head sees all of x */
    run_qkv(c, 4, "qkv sub_heads 1", 41);
    c = plstm_qkv_config_default(8, 4, 2, 1);
    c.sub_heads = 2; /* S_h < NH, heads g·S+s share slice s */
    run_qkv(c, 4, "qkv sub_heads 2 < heads 4", 42);
    c = plstm_qkv_config_default(8, 2, 4, 2);
    c.sub_heads = 4; /* S_h > NH: heads concatenate blocks along DK */
    c.bias = 0;
    run_qkv(c, 4, "qkv sub_heads 4 > heads 2, no bias", 43);
    c.l2_norm = 1;
    c.bias = 1;
    run_qkv(c, 4, "qkv l2 norm", 44);
}

/* ---- orientation gate ------------------------------------------------------ */

typedef struct og_case {
    fd_case c;
    plstm_orientation_gate L;
    size_t N;
} og_case;

static void og_fwd(const fd_case *c, plstm_dtype dt, const void *prm, const void *x, void *y,
                   void *acts)
{
    const og_case *o = (const og_case *)c;
    TU_OK(plstm_orientation_gate_forward(g_ctx, &o->L, dt, prm, o->N, x, y, acts));
}

static void og_bwd(const fd_case *c, plstm_dtype dt, const void *prm, const void *x,
                   const void *acts, const void *dy, void *dx, void *gr)
{
    const og_case *o = (const og_case *)c;
    TU_OK(plstm_orientation_gate_backward(g_ctx, &o->L, dt, prm, o->N, x, acts, dy, dx, gr));
}

static void test_orientation_gate_grads(void **state)
{
    (void)state;
    og_case oc;
    memset(&oc, 0, sizeof oc);
    plstm_orientation_gate_config cfg = plstm_orientation_gate_config_default(5, 3);
    TU_OK(plstm_params_create(&oc.c.p));
    TU_OK(plstm_orientation_gate_declare(&oc.L, &cfg, oc.c.p, ""));
    oc.N = 4;
    oc.c.nx = oc.N * 5;
    oc.c.ny = oc.N * 4 * 3;
    oc.c.na = plstm_orientation_gate_activation_size(&oc.L, oc.N);
    oc.c.fwd = og_fwd;
    oc.c.bwd = og_bwd;
    double *prm = random_params(oc.c.p, 50, 1.0, 3.0);
    double *x = random_vec(oc.c.nx, 51, -2, 2);
    check_case(&oc.c, prm, x, "orientation gate", 52);
    free(prm), free(x);
    plstm_params_destroy(oc.c.p);
}

/* ---- P / D assembly ----------------------------------------------------- */

typedef struct asm_case {
    fd_case c;
    plstm_gates2d_desc d;
    int dmode;
    plstm_chirality ch;
    size_t PS, PT, PM, N, cells; /* cells = B·H·4·Xp·Yp */
} asm_case;

/* Splits a concatenation of the 8 core gates. */
static plstm_gates2d split_gates(const asm_case *a, void *buf, plstm_dtype dt)
{
    char *p = buf;
    const size_t es = plstm_dtype_size(dt), c = a->cells;
    plstm_gates2d g;
    g.S_r = p, p += c * a->PS * es;
    g.S_d = p, p += c * a->PS * es;
    g.T_rl = p, p += c * a->PT * es;
    g.T_du = p, p += c * a->PT * es;
    g.T_dl = p, p += c * a->PT * es;
    g.T_ru = p, p += c * a->PT * es;
    g.M_l = p, p += c * a->PM * es;
    g.M_u = p;
    return g;
}

/* Input layout: P mode [ω | S | T | M]; D mode [S_r | S_d | T_r | T_d | T_rd | M_l | M_u]. */
static void split_inputs(const asm_case *a, const void *buf, plstm_dtype dt, void **w, void **S,
                         void **T, void **M, plstm_dmode_gates *dg)
{
    char *p = (char *)buf;
    const size_t es = plstm_dtype_size(dt), r = a->N * 4 * a->d.H;
    if (!a->dmode) {
        *w = p, p += r * es;
        *S = p, p += r * a->PS * es;
        *T = p, p += r * a->PT * es;
        *M = p;
        return;
    }
    dg->S_r = p, p += r * a->PS * es;
    dg->S_d = p, p += r * a->PS * es;
    dg->T_r = p, p += r * a->PT * es;
    dg->T_d = p, p += r * a->PT * es;
    dg->T_rd = p, p += r * a->PT * es;
    dg->M_l = p, p += r * a->PM * es;
    dg->M_u = p;
}

static void asm_fwd(const fd_case *c, plstm_dtype dt, const void *prm, const void *x, void *y,
                    void *acts)
{
    const asm_case *a = (const asm_case *)c;
    plstm_gates2d_desc d = a->d;
    d.dtype = dt;
    plstm_gates2d out = split_gates(a, y, dt);
    void *w = NULL, *S = NULL, *T = NULL, *M = NULL;
    plstm_dmode_gates in;
    split_inputs(a, x, dt, &w, &S, &T, &M, &in);
    if (a->dmode)
        TU_OK(plstm_dmode_gates_forward(g_ctx, &d, a->ch, &in, &out));
    else
        TU_OK(plstm_pmode_gates_forward(g_ctx, &d, w, S, T, M, &out));
}

static void asm_bwd(const fd_case *c, plstm_dtype dt, const void *prm, const void *x,
                    const void *acts, const void *dy, void *dx, void *gr)
{
    const asm_case *a = (const asm_case *)c;
    plstm_gates2d_desc d = a->d;
    d.dtype = dt;
    plstm_gates2d dg = split_gates(a, (void *)dy, dt);
    void *w = NULL, *S = NULL, *T = NULL, *M = NULL, *dw = NULL, *dS = NULL, *dT = NULL,
         *dM = NULL;
    plstm_dmode_gates in, din;
    split_inputs(a, x, dt, &w, &S, &T, &M, &in);
    split_inputs(a, dx, dt, &dw, &dS, &dT, &dM, &din);
    if (a->dmode)
        TU_OK(plstm_dmode_gates_backward(g_ctx, &d, a->ch, &dg, &din));
    else
        TU_OK(plstm_pmode_gates_backward(g_ctx, &d, w, S, T, &dg, dw, dS, dT, dM));
}

static asm_case make_asm(int dmode, plstm_chirality ch, plstm_head_orientation_map map)
{
    asm_case a;
    memset(&a, 0, sizeof a);
    a.d = (plstm_gates2d_desc){.dtype = PLSTM_F64, .B = 2, .X = 3, .Y = 2, .Xp = 4, .Yp = 4,
                               .H = 2, .JT = 2, .JK = 1, .JV = 2, .JQ = 1, .JO = 2, .map = map};
    a.dmode = dmode;
    a.ch = ch;
    a.PS = 4, a.PT = 4, a.PM = 4;
    a.N = 2 * 3 * 2;
    a.cells = 2 * 2 * 4 * 4 * 4;
    const size_t r = a.N * 4 * a.d.H;
    a.c.nx = dmode ? r * (2 * a.PS + 3 * a.PT + 2 * a.PM) : r * (1 + a.PS + a.PT + a.PM);
    a.c.ny = a.cells * (2 * a.PS + 4 * a.PT + 2 * a.PM);
    a.c.fwd = asm_fwd;
    a.c.bwd = asm_bwd;
    return a;
}

static void test_assembly_grads(void **state)
{
    (void)state;
    asm_case a = make_asm(0, PLSTM_CHIRALITY_L, PLSTM_HOMAP_REFERENCE);
    double *x = random_vec(a.c.nx, 60, 0.05, 0.95);
    check_case(&a.c, NULL, x, "P assembly (reference map)", 61);
    a = make_asm(0, PLSTM_CHIRALITY_L, PLSTM_HOMAP_INTENDED);
    check_case(&a.c, NULL, x, "P assembly (intended map)", 62);
    free(x);
    a = make_asm(1, PLSTM_CHIRALITY_L, PLSTM_HOMAP_REFERENCE);
    x = random_vec(a.c.nx, 63, -1, 1);
    check_case(&a.c, NULL, x, "D assembly chirality L", 64);
    a = make_asm(1, PLSTM_CHIRALITY_R, PLSTM_HOMAP_INTENDED);
    check_case(&a.c, NULL, x, "D assembly chirality R", 65);
    free(x);
}

/* Q7 on a hand-made example: distinct values per flat index; which one lands
 * on (h, o). B = X = Y = 1, H = 2, all J = 1. */
static void test_q7_mapping(void **state)
{
    (void)state;
    const int H = 2;
    double omega[8], S[8], T[8], M[8], ones[8];
    double Sr[8], Sd[8], Trl[8], Tdu[8], Ml[8];
    for (int i = 0; i < 8; i++) {
        omega[i] = 0.01 * (i + 1); /* flat o'·H + h' */
        S[i] = 10 + i;
        T[i] = 20 + i;
        M[i] = 30 + i;
        ones[i] = 1;
    }
    plstm_gates2d_desc d = {.dtype = PLSTM_F64, .B = 1, .X = 1, .Y = 1, .Xp = 1, .Yp = 1, .H = H,
                            .JT = 1, .JK = 1, .JV = 1, .JQ = 1, .JO = 1,
                            .map = PLSTM_HOMAP_REFERENCE};
    plstm_gates2d out = {.S_r = Sr, .S_d = Sd, .T_rl = Trl, .T_du = Tdu, .M_l = Ml};
    /* ω = 1: S/T/M of flat index 4h+o land on core cell (h, o) = h·4 + o */
    TU_OK(plstm_pmode_gates_forward(g_ctx, &d, ones, S, T, M, &out));
    assert_true(Sr[1 * 4 + 2] == S[6]); /* h=1, o=2 -> i=6 */
    assert_true(Trl[0 * 4 + 3] == T[3]);
    assert_true(Ml[1 * 4 + 1] == M[5]);
    assert_true(Sd[1 * 4 + 2] == 1 - S[6]);
    assert_true(Tdu[1 * 4 + 0] == 1 - T[4]);
    /* S = 1: ω flat[4h+o] = ω[o' = (4h+o)/H, h' = (4h+o) mod H] */
    TU_OK(plstm_pmode_gates_forward(g_ctx, &d, omega, ones, ones, ones, &out));
    assert_true(Sr[1 * 4 + 2] == omega[3 * H + 0]); /* (h=1,o=2) -> i=6 -> o'=3, h'=0 */
    assert_true(Sr[0 * 4 + 1] == omega[0 * H + 1]); /* (h=0,o=1) -> i=1 -> o'=0, h'=1 */
    /* intended: S/T/M index o·H + h and ω[o, h] */
    d.map = PLSTM_HOMAP_INTENDED;
    TU_OK(plstm_pmode_gates_forward(g_ctx, &d, ones, S, T, M, &out));
    assert_true(Sr[1 * 4 + 2] == S[2 * H + 1]);
    assert_true(Ml[0 * 4 + 3] == M[3 * H + 0]);
    TU_OK(plstm_pmode_gates_forward(g_ctx, &d, omega, ones, ones, ones, &out));
    assert_true(Sr[1 * 4 + 2] == omega[2 * H + 1]);
    assert_true(Trl[0 * 4 + 1] == omega[1 * H + 0]);
    /* D mode chirality: L puts T_rd on T_ru and zeroes T_dl; R the other way */
    double Tr[8], Td[8], Trd[8], g_dl[8], g_ru[8], Mu[8];
    for (int i = 0; i < 8; i++)
        Tr[i] = 40 + i, Td[i] = 50 + i, Trd[i] = 60 + i, g_dl[i] = g_ru[i] = -1;
    plstm_dmode_gates in = {.S_r = S, .S_d = S, .T_r = Tr, .T_d = Td, .T_rd = Trd, .M_l = M,
                            .M_u = M};
    plstm_gates2d dout = {.S_r = Sr, .S_d = Sd, .T_rl = Trl, .T_du = Tdu, .T_dl = g_dl,
                          .T_ru = g_ru, .M_l = Ml, .M_u = Mu};
    d.map = PLSTM_HOMAP_REFERENCE;
    TU_OK(plstm_dmode_gates_forward(g_ctx, &d, PLSTM_CHIRALITY_L, &in, &dout));
    assert_true(g_ru[1 * 4 + 2] == Trd[6] && g_dl[1 * 4 + 2] == 0 && Tdu[5] == Td[5]);
    TU_OK(plstm_dmode_gates_forward(g_ctx, &d, PLSTM_CHIRALITY_R, &in, &dout));
    assert_true(g_dl[1 * 4 + 2] == Trd[6] && g_ru[1 * 4 + 2] == 0 && Trl[7] == Tr[7]);
}

/* Padding: padded cells are 0 for every gate (S_d and T_du included). */
static void test_padding_and_heads_grid(void **state)
{
    (void)state;
    asm_case a = make_asm(0, PLSTM_CHIRALITY_L, PLSTM_HOMAP_REFERENCE);
    double *x = random_vec(a.c.nx, 70, 0.1, 0.9), *y = tu_calloc(a.c.ny, sizeof(double));
    for (size_t i = 0; i < a.c.ny; i++)
        y[i] = 7;
    asm_fwd(&a.c, PLSTM_F64, NULL, x, y, NULL);
    plstm_gates2d g = split_gates(&a, y, PLSTM_F64);
    const double *Sd = g.S_d, *Tdu = g.T_du;
    /* cell (b=1, h=0, o=2, x=3, y=1) is padding (X = 3); (x=2, y=1) is not */
    size_t pad = ((((size_t)1 * 2 + 0) * 4 + 2) * 4 + 3) * 4 + 1, in = pad - 4;
    for (int k = 0; k < 4; k++) {
        assert_true(Sd[pad * 4 + k] == 0 && Tdu[pad * 4 + k] == 0);
        assert_true(Sd[in * 4 + k] > 0);
    }
    free(x), free(y);
    /* heads_to_grid: round trip and one element's place */
    const int B = 2, X = 3, Y = 2, Xp = 4, Yp = 3, H = 3;
    const size_t P = 5, n = (size_t)B * X * Y * H * P, ng = (size_t)B * H * Xp * Yp * P;
    double *src = random_vec(n, 71, -1, 1), *grid = tu_calloc(ng, sizeof(double));
    double *back = tu_calloc(n, sizeof(double));
    for (size_t i = 0; i < ng; i++)
        grid[i] = 9;
    TU_OK(plstm_heads_to_grid(g_ctx, PLSTM_F64, B, X, Y, Xp, Yp, H, P, src, grid));
    /* (b=1, x=2, y=1, h=2, p=3) */
    size_t si = ((((size_t)1 * X + 2) * Y + 1) * H + 2) * P + 3;
    size_t gi = ((((size_t)1 * H + 2) * Xp + 2) * Yp + 1) * P + 3;
    assert_true(grid[gi] == src[si]);
    assert_true(grid[((((size_t)1 * H + 2) * Xp + 3) * Yp + 1) * P] == 0);
    TU_OK(plstm_grid_to_heads(g_ctx, PLSTM_F64, B, X, Y, Xp, Yp, H, P, grid, back));
    assert_memory_equal(back, src, n * sizeof(double));
    free(src), free(grid), free(back);
}

/* ---- default initialization -------------------------------------------- */

static void test_default_init(void **state)
{
    (void)state;
    plstm_params *p;
    TU_OK(plstm_params_create(&p));
    plstm_gate src, mk;
    plstm_transition t1, t3;
    plstm_qkv q;
    plstm_orientation_gate og;
    plstm_gate_config sc = plstm_gate_config_default(PLSTM_GATE_SOURCE, 64, 8);
    plstm_gate_config mc = plstm_gate_config_default(PLSTM_GATE_MARK, 64, 8);
    mc.weight = 1;
    plstm_transition_config tc1 = plstm_transition_config_default(64, 8, 1);
    plstm_transition_config tc3 = plstm_transition_config_default(64, 2, 3);
    plstm_qkv_config qc = plstm_qkv_config_default(64, 1, 64, 1);
    qc.sub_heads = 1;
    plstm_orientation_gate_config oc = plstm_orientation_gate_config_default(64, 3);
    TU_OK(plstm_gate_declare(&src, &sc, p, "source"));
    TU_OK(plstm_gate_declare(&mk, &mc, p, "mark"));
    TU_OK(plstm_transition_declare(&t1, &tc1, p, "transition"));
    TU_OK(plstm_transition_declare(&t3, &tc3, p, "transition3"));
    TU_OK(plstm_qkv_declare(&q, &qc, p, "query"));
    TU_OK(plstm_orientation_gate_declare(&og, &oc, p, NULL));
    assert_non_null(plstm_params_find(p, "transition3.outproj_weight"));
    assert_non_null(plstm_params_find(p, "orientation_bias"));
    const size_t np = plstm_params_size(p);
    double *prm = tu_calloc(np, sizeof(double));
    for (size_t i = 0; i < np; i++)
        prm[i] = NAN;
    TU_OK(plstm_gate_init(&src, prm, PLSTM_F64, 1));
    TU_OK(plstm_gate_init(&mk, prm, PLSTM_F64, 1));
    TU_OK(plstm_transition_init(&t1, prm, PLSTM_F64, 1));
    TU_OK(plstm_transition_init(&t3, prm, PLSTM_F64, 1));
    TU_OK(plstm_qkv_init(&q, prm, PLSTM_F64, 1));
    TU_OK(plstm_orientation_gate_init(&og, prm, PLSTM_F64, 1));
    /* every declared element got a value */
    for (size_t i = 0; i < plstm_params_count(p); i++) {
        const plstm_param_info *it = plstm_params_at(p, i);
        for (size_t k = 0; k < it->numel; k++)
            if (isnan(prm[it->offset + k]))
                fail_msg("parameter %s not initialized", it->name);
    }
    const size_t N = 3;
    double *x = random_vec(N * 64, 80, -1, 1), *y = tu_calloc(N * 8 * 9 * 4, sizeof(double));
    TU_OK(plstm_gate_forward(g_ctx, &src, PLSTM_F64, prm, N, x, y, NULL));
    for (size_t i = 0; i < N * 8; i++) {
        assert_true(fabs(y[i] - 1.0 / (1.0 + exp(5.0))) < 1e-15);
        assert_true(fabs(y[i] - 0.0066928509) < 1e-10);
    }
    TU_OK(plstm_gate_forward(g_ctx, &mk, PLSTM_F64, prm, N, x, y, NULL)); /* zero weights */
    for (size_t i = 0; i < N * 8; i++)
        assert_true(fabs(y[i] - 0.0066928509) < 1e-10);
    TU_OK(plstm_transition_forward(g_ctx, &t1, PLSTM_F64, prm, N, x, y, NULL));
    for (size_t i = 0; i < N * 8; i++) {
        assert_true(fabs(y[i] - tanh(5.0)) < 1e-15);
        assert_true(fabs(y[i] - 0.9999092) < 1e-7);
    }
    TU_OK(plstm_transition_forward(g_ctx, &t3, PLSTM_F64, prm, N, x, y, NULL));
    for (size_t i = 0; i < N * 2 * 9; i++) /* O = exp(0) = I, T = tanh(5)·I */
        assert_true(fabs(y[i] - (i % 9 % 4 == 0 ? tanh(5.0) : 0.0)) < 1e-12);
    TU_OK(plstm_orientation_gate_forward(g_ctx, &og, PLSTM_F64, prm, N, x, y, NULL));
    for (size_t n = 0; n < N; n++)
        for (int o = 0; o < 4; o++)
            for (int h = 0; h < 3; h++)
                assert_true(fabs(y[(n * 4 + o) * 3 + h] - 1.0 / (1.0 + exp(2.0 - 2.0 * h))) < 1e-15);
    /* SmallInit: N(0, 1/(2.5·64)) over 4096 weights, zero bias, seeded */
    double s1 = 0, s2 = 0;
    for (size_t i = 0; i < 4096; i++) {
        double w = prm[q.weight_off + i];
        s1 += w, s2 += w * w;
    }
    const double sd = sqrt(s2 / 4096), want = 1.0 / sqrt(2.5 * 64);
    if (fabs(sd / want - 1) > 0.05 || fabs(s1 / 4096) > 4 * want / 64)
        fail_msg("SmallInit: std %.4f (want %.4f), mean %.4f", sd, want, s1 / 4096);
    for (size_t i = 0; i < 64; i++)
        assert_true(prm[q.bias_off + i] == 0);
    double w0 = prm[q.weight_off];
    TU_OK(plstm_qkv_init(&q, prm, PLSTM_F64, 1));
    assert_true(prm[q.weight_off] == w0);
    TU_OK(plstm_qkv_init(&q, prm, PLSTM_F64, 2));
    assert_true(prm[q.weight_off] != w0);
    /* Linspace needs two heads */
    plstm_orientation_gate og1;
    oc.num_heads = 1;
    TU_OK(plstm_orientation_gate_declare(&og1, &oc, p, "one"));
    assert_int_equal(plstm_orientation_gate_init(&og1, prm, PLSTM_F64, 1),
                     PLSTM_ERR_INVALID_ARGUMENT);
    free(prm), free(x), free(y);
    plstm_params_destroy(p);
}

/* ---- parameter names and shapes vs the reference ------------------------ */

static void check_reference_names(const char *file, int dmode, int gate_weight)
{
    plstm_safetensors *st;
    TU_OK(plstm_safetensors_open(&st, tu_reference_path(file)));
    plstm_params *p;
    TU_OK(plstm_params_create(&p));
    const int Din = 32, H = 2;
    plstm_gate_config sc = plstm_gate_config_default(PLSTM_GATE_SOURCE, Din, 4 * H);
    plstm_gate_config mc = plstm_gate_config_default(PLSTM_GATE_MARK, Din, 4 * H);
    plstm_gate_config dc = plstm_gate_config_default(PLSTM_GATE_DIRECT, Din, H);
    sc.weight = mc.weight = dc.weight = gate_weight;
    plstm_transition_config tc = plstm_transition_config_default(Din, 4 * H, 1);
    plstm_qkv_config qc = plstm_qkv_config_default(Din, H, Din / H, 1);
    plstm_gate g;
    plstm_transition t;
    plstm_qkv q;
    plstm_orientation_gate og;
    plstm_orientation_gate_config oc = plstm_orientation_gate_config_default(Din, H);
    if (dmode) {
        TU_OK(plstm_gate_declare(&g, &sc, p, "source_r"));
        TU_OK(plstm_gate_declare(&g, &sc, p, "source_d"));
        TU_OK(plstm_transition_declare(&t, &tc, p, "transition_r"));
        TU_OK(plstm_transition_declare(&t, &tc, p, "transition_d"));
        TU_OK(plstm_transition_declare(&t, &tc, p, "transition_rd"));
        TU_OK(plstm_gate_declare(&g, &mc, p, "mark_l"));
        TU_OK(plstm_gate_declare(&g, &mc, p, "mark_u"));
    } else {
        TU_OK(plstm_orientation_gate_declare(&og, &oc, p, ""));
        TU_OK(plstm_gate_declare(&g, &sc, p, "source"));
        TU_OK(plstm_transition_declare(&t, &tc, p, "transition"));
        TU_OK(plstm_gate_declare(&g, &mc, p, "mark"));
    }
    TU_OK(plstm_gate_declare(&g, &dc, p, "direct"));
    TU_OK(plstm_qkv_declare(&q, &qc, p, "query"));
    TU_OK(plstm_qkv_declare(&q, &qc, p, "key"));
    TU_OK(plstm_qkv_declare(&q, &qc, p, "value_"));
    char key[256];
    for (size_t i = 0; i < plstm_params_count(p); i++) {
        snprintf(key, sizeof key, "param.%s", plstm_params_at(p, i)->name);
        if (!plstm_safetensors_find(st, key))
            fail_msg("%s: %s is not in the reference file", file, key);
    }
    /* every reference parameter but the layer's own norm/outprojection is declared */
    size_t ref_params = 0;
    for (size_t i = 0; i < plstm_safetensors_count(st); i++) {
        const char *nm = plstm_safetensors_at(st, i)->name;
        if (!strncmp(nm, "param.", 6) && !strstr(nm, "mhnorm") && !strstr(nm, "outprojection"))
            ref_params++;
    }
    assert_int_equal(ref_params, plstm_params_count(p));
    float *prm = tu_calloc(plstm_params_size(p), sizeof(float));
    TU_OK(plstm_params_load(p, prm, PLSTM_F32, st, "param.", 0)); /* checks the shapes */
    free(prm);
    plstm_params_destroy(p);
    plstm_safetensors_close(st);
}

static void test_reference_names(void **state)
{
    (void)state;
    check_reference_names("layer2d_fused_P.safetensors", 0, 1);
    check_reference_names("layer2d_fused_P_default.safetensors", 0, 0);
    check_reference_names("layer2d_fused_D.safetensors", 1, 1);
    check_reference_names("layer2d_fused_D_default.safetensors", 1, 0);
}

static void test_bad_args(void **state)
{
    (void)state;
    plstm_params *p;
    TU_OK(plstm_params_create(&p));
    plstm_gate g;
    plstm_gate_config c = plstm_gate_config_default(PLSTM_GATE_SOURCE, 6, 4);
    c.sub_heads = 3; /* does not divide 4 heads */
    assert_int_equal(plstm_gate_declare(&g, &c, p, "s"), PLSTM_ERR_INVALID_ARGUMENT);
    plstm_qkv q;
    plstm_qkv_config qc = plstm_qkv_config_default(8, 2, 3, 1);
    qc.sub_heads = 4; /* DK 3 not a multiple of 4/2 */
    assert_int_equal(plstm_qkv_declare(&q, &qc, p, "q"), PLSTM_ERR_INVALID_ARGUMENT);
    plstm_gates2d_desc d = {.dtype = PLSTM_F64, .B = 1, .X = 4, .Y = 4, .Xp = 2, .Yp = 4, .H = 1,
                            .JT = 1, .JK = 1, .JV = 1, .JQ = 1, .JO = 1};
    double v[64];
    plstm_gates2d out = {.S_r = v};
    assert_int_equal(plstm_pmode_gates_forward(g_ctx, &d, v, v, v, v, &out),
                     PLSTM_ERR_INVALID_ARGUMENT);
    plstm_params_destroy(p);
}

static int setup(void **state)
{
    (void)state;
    return plstm_context_create(&g_ctx, PLSTM_BACKEND_CPU, 0) == PLSTM_OK ? 0 : -1;
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
        cmocka_unit_test(test_gate_grads),
        cmocka_unit_test(test_transition_grads),
        cmocka_unit_test(test_transition_unsupported),
        cmocka_unit_test(test_exp_orthogonalize),
        cmocka_unit_test(test_qkv_grads),
        cmocka_unit_test(test_orientation_gate_grads),
        cmocka_unit_test(test_assembly_grads),
        cmocka_unit_test(test_q7_mapping),
        cmocka_unit_test(test_padding_and_heads_grid),
        cmocka_unit_test(test_default_init),
        cmocka_unit_test(test_reference_names),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
