/* NN primitives, part 1: linear, norms, activations, elementwise helpers,
 * pooling, softmax cross-entropy. Forward results against naive loops or
 * direct formulas; every backward against central finite differences (F64);
 * F32 against F64; accumulate (+=) vs write (=) semantics of the gradients. */
#include "testutil.h"
#include "nn_fd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static plstm_context *new_ctx(void)
{
    plstm_context *ctx = NULL;
    TU_OK(plstm_context_create(&ctx, PLSTM_BACKEND_CPU, 0));
    return ctx;
}

/* Pre-fill of parameter gradients (must be kept: +=) and input gradients
 * (must be overwritten: =). */
#define ACC0 0.5
#define JUNK 1e30

/* ======================================================================== */
/* linear                                                                   */
/* ======================================================================== */

typedef struct {
    plstm_context *ctx;
    int n, in, out;
    double *x, *W, *b;
} lin_case;

static void lin_fwd(void *u, double *y)
{
    lin_case *c = u;
    TU_OK(plstm_linear_forward(c->ctx, PLSTM_F64, c->n, c->in, c->out, c->x, c->W, c->b, y));
}

static void lin_naive(const lin_case *c, double *y)
{
    for (int r = 0; r < c->n; r++)
        for (int o = 0; o < c->out; o++) {
            double s = c->b ? c->b[o] : 0;
            for (int i = 0; i < c->in; i++)
                s += c->x[(size_t)r * c->in + i] * c->W[(size_t)o * c->in + i];
            y[(size_t)r * c->out + o] = s;
        }
}

static void check_linear(plstm_context *ctx, tu_rng *rng, int n, int in, int out, int bias, int fd)
{
    lin_case c = {ctx, n, in, out, nf_rand(rng, (size_t)n * in, -1, 1),
                  nf_rand(rng, (size_t)out * in, -1, 1), bias ? nf_rand(rng, out, -1, 1) : NULL};
    const size_t ny = (size_t)n * out;
    double *y = tu_calloc(ny, 8), *yref = tu_calloc(ny, 8);
    lin_fwd(&c, y);
    lin_naive(&c, yref);
    TU_ASSERT_CLOSE(tu_rel_err_f64(y, yref, ny), 1e-13, "linear vs naive loop");

    /* F32 forward agrees with F64. */
    float *x32 = nf_to_f32(c.x, (size_t)n * in), *W32 = nf_to_f32(c.W, (size_t)out * in);
    float *b32 = bias ? nf_to_f32(c.b, out) : NULL, *y32 = tu_calloc(ny, 4);
    TU_OK(plstm_linear_forward(ctx, PLSTM_F32, n, in, out, x32, W32, b32, y32));
    TU_ASSERT_CLOSE(nf_err_32_64(y32, y, ny), 1e-5, "linear f32 vs f64");

    /* Backward: dx written, dW/db accumulated. */
    double *dy = nf_rand(rng, ny, -1, 1), *dx = nf_const((size_t)n * in, JUNK);
    double *dW = nf_const((size_t)out * in, ACC0), *db = nf_const(out, ACC0);
    TU_OK(plstm_linear_backward(ctx, PLSTM_F64, n, in, out, c.x, c.W, dy, dx, dW, bias ? db : NULL));
    nf_sub(dW, (size_t)out * in, ACC0);
    nf_sub(db, out, ACC0);
    if (fd) {
        TU_ASSERT_CLOSE(nf_check(lin_fwd, &c, ny, dy, c.x, (size_t)n * in, dx), 1e-6, "linear dx");
        TU_ASSERT_CLOSE(nf_check(lin_fwd, &c, ny, dy, c.W, (size_t)out * in, dW), 1e-6, "linear dW");
        if (bias)
            TU_ASSERT_CLOSE(nf_check(lin_fwd, &c, ny, dy, c.b, out, db), 1e-6, "linear db");
    } else { /* large case: db is the column sum of dy */
        double *ref = tu_calloc(out, 8);
        for (int r = 0; r < n; r++)
            for (int o = 0; o < out; o++)
                ref[o] += dy[(size_t)r * out + o];
        if (bias)
            TU_ASSERT_CLOSE(tu_rel_err_f64(db, ref, out), 1e-13, "linear db (large)");
        free(ref);
    }
    free(c.x); free(c.W); free(c.b); free(y); free(yref); free(x32); free(W32); free(b32);
    free(y32); free(dy); free(dx); free(dW); free(db);
}

static void test_linear(void **state)
{
    (void)state;
    plstm_context *ctx = new_ctx();
    tu_rng rng;
    tu_rng_seed(&rng, 1);
    check_linear(ctx, &rng, 7, 5, 3, 1, 1);
    check_linear(ctx, &rng, 1, 9, 4, 0, 1);
    check_linear(ctx, &rng, 11, 1, 13, 1, 1);
    check_linear(ctx, &rng, 1000, 40, 70, 1, 0); /* threaded bias fill and column sums */
    plstm_context_destroy(ctx);
}

/* Fused linears against one plstm_linear per segment (itself FD-tested):
 * forward, dx (written), dW and db (accumulated), segments without a bias,
 * NULL gradients; a size on one thread and one split over the team. */
static void check_linear_multi(plstm_context *ctx, tu_rng *rng, int n, int in)
{
    enum { S = 4 };
    const int out[S] = {3, 17, 1, 6};
    int P = 0, c0[S];
    for (int i = 0; i < S; i++)
        c0[i] = P, P += out[i];
    double *x = tu_calloc((size_t)n * in, sizeof *x), *dy = tu_calloc((size_t)n * P, sizeof *dy);
    double *y = tu_calloc((size_t)n * P, sizeof *y), *dx = tu_calloc((size_t)n * in, sizeof *dx);
    double *want = tu_calloc((size_t)n * P, sizeof *want);
    double *wdx = tu_calloc((size_t)n * in, sizeof *wdx), *t = tu_calloc((size_t)n * in, sizeof *t);
    double *seg = tu_calloc((size_t)n * P, sizeof *seg);
    double *W[S], *b[S], *dW[S], *db[S], *wdW[S], *wdb[S];
    tu_fill_f64(rng, x, (size_t)n * in, -1, 1);
    tu_fill_f64(rng, dy, (size_t)n * P, -1, 1);
    for (int i = 0; i < S; i++) {
        W[i] = tu_calloc((size_t)out[i] * in, sizeof *W[i]);
        tu_fill_f64(rng, W[i], (size_t)out[i] * in, -1, 1);
        b[i] = i == 2 ? NULL : tu_calloc((size_t)out[i], sizeof *b[i]); /* segment 2: no bias */
        if (b[i])
            tu_fill_f64(rng, b[i], (size_t)out[i], -1, 1);
        dW[i] = tu_calloc((size_t)out[i] * in, sizeof *dW[i]);
        wdW[i] = tu_calloc((size_t)out[i] * in, sizeof *wdW[i]);
        db[i] = i == 1 ? NULL : tu_calloc((size_t)out[i], sizeof *db[i]); /* segment 1: no db */
        wdb[i] = tu_calloc((size_t)out[i], sizeof *wdb[i]);
        for (size_t k = 0; k < (size_t)out[i] * in; k++)
            dW[i][k] = wdW[i][k] = ACC0;
        for (int k = 0; k < out[i]; k++) {
            if (db[i])
                db[i][k] = ACC0;
            wdb[i][k] = ACC0;
        }
    }
    for (size_t k = 0; k < (size_t)n * in; k++)
        dx[k] = JUNK;
    const void *Wc[S] = {W[0], W[1], W[2], W[3]}, *bc[S] = {b[0], b[1], b[2], b[3]};
    void *dWv[S] = {dW[0], dW[1], dW[2], dW[3]}, *dbv[S] = {db[0], db[1], db[2], db[3]};
    TU_OK(plstm_linear_multi_forward(ctx, PLSTM_F64, n, in, S, out, Wc, bc, x, y));
    TU_OK(plstm_linear_multi_backward(ctx, PLSTM_F64, n, in, S, out, Wc, x, dy, dx, dWv, dbv));
    for (int i = 0; i < S; i++) { /* the same with one linear per segment */
        TU_OK(plstm_linear_forward(ctx, PLSTM_F64, n, in, out[i], x, W[i], b[i], seg));
        for (int r = 0; r < n; r++)
            for (int k = 0; k < out[i]; k++)
                want[(size_t)r * P + c0[i] + k] = seg[(size_t)r * out[i] + k];
        for (int r = 0; r < n; r++)
            for (int k = 0; k < out[i]; k++)
                seg[(size_t)r * out[i] + k] = dy[(size_t)r * P + c0[i] + k];
        TU_OK(plstm_linear_backward(ctx, PLSTM_F64, n, in, out[i], x, W[i], seg, t, wdW[i],
                                    wdb[i]));
        for (size_t k = 0; k < (size_t)n * in; k++)
            wdx[k] = (i ? wdx[k] : 0) + t[k];
    }
    TU_ASSERT_CLOSE(tu_rel_err_f64(y, want, (size_t)n * P), 1e-13, "linear_multi forward");
    TU_ASSERT_CLOSE(tu_rel_err_f64(dx, wdx, (size_t)n * in), 1e-13, "linear_multi dx");
    for (int i = 0; i < S; i++) {
        TU_ASSERT_CLOSE(tu_rel_err_f64(dW[i], wdW[i], (size_t)out[i] * in), 1e-13,
                        "linear_multi dW");
        if (db[i])
            TU_ASSERT_CLOSE(tu_rel_err_f64(db[i], wdb[i], (size_t)out[i]), 1e-13,
                            "linear_multi db");
    }
    /* no weight gradients at all, dx only */
    TU_OK(plstm_linear_multi_backward(ctx, PLSTM_F64, n, in, S, out, Wc, NULL, dy, dx, NULL,
                                      NULL));
    TU_ASSERT_CLOSE(tu_rel_err_f64(dx, wdx, (size_t)n * in), 1e-13, "linear_multi dx only");
    for (int i = 0; i < S; i++)
        free(W[i]), free(b[i]), free(dW[i]), free(db[i]), free(wdW[i]), free(wdb[i]);
    free(x), free(dy), free(y), free(dx), free(want), free(wdx), free(t), free(seg);
}

static void test_linear_multi(void **state)
{
    (void)state;
    plstm_context *ctx = new_ctx();
    tu_rng rng;
    tu_rng_seed(&rng, 2);
    check_linear_multi(ctx, &rng, 9, 5);    /* one thread */
    check_linear_multi(ctx, &rng, 3001, 37); /* rows and columns split over the team */
    const int bad[2] = {4, 0};
    double v[64] = {0};
    const void *Wv[2] = {v, v};
    assert_int_equal(plstm_linear_multi_forward(ctx, PLSTM_F64, 2, 2, 2, bad, Wv, NULL, v, v + 32),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_int_equal(plstm_linear_multi_forward(ctx, PLSTM_F64, 2, 2, 0, bad, Wv, NULL, v, v + 32),
                     PLSTM_ERR_INVALID_ARGUMENT);
    const void *Wn[2] = {v, NULL};
    const int ok[2] = {1, 1};
    assert_int_equal(plstm_linear_multi_forward(ctx, PLSTM_F64, 2, 2, 2, ok, Wn, NULL, v, v + 32),
                     PLSTM_ERR_INVALID_ARGUMENT);
    plstm_context_destroy(ctx);
}

/* ======================================================================== */
/* norms                                                                    */
/* ======================================================================== */

typedef struct {
    plstm_context *ctx;
    plstm_norm_kind kind;
    int n, D, NH;
    double eps, *x, *g, *b;
} norm_case;

static void norm_fwd(void *u, double *y)
{
    norm_case *c = u;
    TU_OK(plstm_norm_forward(c->ctx, PLSTM_F64, c->kind, c->n, c->D, c->NH, c->eps, c->x, c->g,
                             c->b, y));
}

static void norm_naive(const norm_case *c, double *y)
{
    const int G = c->D / c->NH;
    for (int r = 0; r < c->n; r++)
        for (int h = 0; h < c->NH; h++) {
            const double *x = c->x + (size_t)r * c->D + h * G;
            double mu = 0, var = 0;
            if (c->kind == PLSTM_NORM_LAYER) {
                for (int i = 0; i < G; i++)
                    mu += x[i] / G;
            }
            for (int i = 0; i < G; i++)
                var += (x[i] - mu) * (x[i] - mu) / G;
            for (int i = 0; i < G; i++) {
                const int ci = h * G + i;
                y[(size_t)r * c->D + ci] = (x[i] - mu) / sqrt(var + c->eps) * (c->g ? c->g[ci] : 1) +
                                           (c->b ? c->b[ci] : 0);
            }
        }
}

static void check_norm(plstm_context *ctx, tu_rng *rng, plstm_norm_kind kind, int n, int D, int NH,
                       int affine, int fd)
{
    const size_t N = (size_t)n * D;
    norm_case c = {ctx, kind, n, D, NH, 1e-5, nf_rand(rng, N, -1, 2),
                   affine ? nf_rand(rng, D, 0.5, 1.5) : NULL, affine ? nf_rand(rng, D, -1, 1) : NULL};
    double *y = tu_calloc(N, 8), *yref = tu_calloc(N, 8);
    norm_fwd(&c, y);
    norm_naive(&c, yref);
    TU_ASSERT_CLOSE(tu_rel_err_f64(y, yref, N), 1e-13, "norm vs formula");

    float *x32 = nf_to_f32(c.x, N), *y32 = tu_calloc(N, 4);
    float *g32 = affine ? nf_to_f32(c.g, D) : NULL, *b32 = affine ? nf_to_f32(c.b, D) : NULL;
    TU_OK(plstm_norm_forward(ctx, PLSTM_F32, kind, n, D, NH, c.eps, x32, g32, b32, y32));
    TU_ASSERT_CLOSE(nf_err_32_64(y32, y, N), 1e-5, "norm f32 vs f64");

    double *dy = nf_rand(rng, N, -1, 1), *dx = nf_const(N, JUNK);
    double *dg = nf_const(D, ACC0), *db = nf_const(D, ACC0);
    TU_OK(plstm_norm_backward(ctx, PLSTM_F64, kind, n, D, NH, c.eps, c.x, c.g, dy, dx,
                              affine ? dg : NULL, affine ? db : NULL));
    nf_sub(dg, D, ACC0);
    nf_sub(db, D, ACC0);
    if (fd) {
        TU_ASSERT_CLOSE(nf_check(norm_fwd, &c, N, dy, c.x, N, dx), 1e-6, "norm dx");
        if (affine) {
            TU_ASSERT_CLOSE(nf_check(norm_fwd, &c, N, dy, c.g, D, dg), 1e-6, "norm dgamma");
            TU_ASSERT_CLOSE(nf_check(norm_fwd, &c, N, dy, c.b, D, db), 1e-6, "norm dbeta");
        }
    } else { /* large case: threaded gradients equal the single-threaded ones */
        double *dx1 = tu_calloc(N, 8), *dg1 = tu_calloc(D, 8), *db1 = tu_calloc(D, 8);
        TU_OK(plstm_context_set_threads(ctx, 1));
        TU_OK(plstm_norm_backward(ctx, PLSTM_F64, kind, n, D, NH, c.eps, c.x, c.g, dy, dx1,
                                  affine ? dg1 : NULL, affine ? db1 : NULL));
        TU_OK(plstm_context_set_threads(ctx, 0));
        TU_ASSERT_CLOSE(tu_rel_err_f64(dx, dx1, N), 0, "norm dx threads");
        TU_ASSERT_CLOSE(tu_rel_err_f64(dg, dg1, D), 1e-14, "norm dgamma threads");
        free(dx1); free(dg1); free(db1);
    }
    free(c.x); free(c.g); free(c.b); free(y); free(yref); free(x32); free(y32); free(g32);
    free(b32); free(dy); free(dx); free(dg); free(db);
}

static void test_norms(void **state)
{
    (void)state;
    plstm_context *ctx = new_ctx();
    tu_rng rng;
    tu_rng_seed(&rng, 2);
    for (int k = 0; k < 2; k++) {
        const plstm_norm_kind kind = k ? PLSTM_NORM_LAYER : PLSTM_NORM_RMS;
        check_norm(ctx, &rng, kind, 5, 12, 1, 1, 1);
        check_norm(ctx, &rng, kind, 3, 12, 3, 1, 1); /* multi-head */
        check_norm(ctx, &rng, kind, 4, 7, 1, 0, 1);  /* no γ, β */
        check_norm(ctx, &rng, kind, 2, 15, 5, 1, 1);
        check_norm(ctx, &rng, kind, 600, 96, 4, 1, 0);
    }
    /* NH must divide D. */
    double x[6] = {0}, y[6];
    assert_int_equal(plstm_norm_forward(ctx, PLSTM_F64, PLSTM_NORM_RMS, 1, 6, 4, 1e-5, x, NULL,
                                        NULL, y),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "NH"));
    plstm_context_destroy(ctx);
}

/* ---- instance norm: each image's channels over its pixels ---- */
typedef struct {
    plstm_context *ctx;
    int B, N, C;
    double eps, *x, *g, *b;
} inorm_case;

static void inorm_fwd(void *u, double *y)
{
    inorm_case *c = u;
    TU_OK(plstm_instance_norm_forward(c->ctx, PLSTM_F64, c->B, c->N, c->C, c->eps, c->x, c->g,
                                      c->b, y));
}

static void inorm_naive(const inorm_case *c, double *y)
{
    for (int b = 0; b < c->B; b++)
        for (int ch = 0; ch < c->C; ch++) {
            const double *x = c->x + (size_t)b * c->N * c->C + ch;
            double mu = 0, var = 0;
            for (int n = 0; n < c->N; n++)
                mu += x[(size_t)n * c->C] / c->N;
            for (int n = 0; n < c->N; n++)
                var += (x[(size_t)n * c->C] - mu) * (x[(size_t)n * c->C] - mu) / c->N;
            for (int n = 0; n < c->N; n++)
                y[((size_t)b * c->N + n) * c->C + ch] =
                    (x[(size_t)n * c->C] - mu) / sqrt(var + c->eps) * (c->g ? c->g[ch] : 1) +
                    (c->b ? c->b[ch] : 0);
        }
}

static void check_inorm(plstm_context *ctx, tu_rng *rng, int B, int N, int C, int affine, int fd)
{
    const size_t M = (size_t)B * N * C;
    inorm_case c = {ctx, B, N, C, 1e-5, nf_rand(rng, M, -1, 2),
                    affine ? nf_rand(rng, C, 0.5, 1.5) : NULL, affine ? nf_rand(rng, C, -1, 1) : NULL};
    double *y = tu_calloc(M, 8), *yref = tu_calloc(M, 8);
    inorm_fwd(&c, y);
    inorm_naive(&c, yref);
    TU_ASSERT_CLOSE(tu_rel_err_f64(y, yref, M), 1e-13, "instance norm vs formula");

    float *x32 = nf_to_f32(c.x, M), *y32 = tu_calloc(M, 4);
    float *g32 = affine ? nf_to_f32(c.g, C) : NULL, *b32 = affine ? nf_to_f32(c.b, C) : NULL;
    TU_OK(plstm_instance_norm_forward(ctx, PLSTM_F32, B, N, C, c.eps, x32, g32, b32, y32));
    TU_ASSERT_CLOSE(nf_err_32_64(y32, y, M), 1e-5, "instance norm f32 vs f64");

    double *dy = nf_rand(rng, M, -1, 1), *dx = nf_const(M, JUNK);
    double *dg = nf_const(C, ACC0), *db = nf_const(C, ACC0);
    TU_OK(plstm_instance_norm_backward(ctx, PLSTM_F64, B, N, C, c.eps, c.x, c.g, dy, dx,
                                       affine ? dg : NULL, affine ? db : NULL));
    nf_sub(dg, C, ACC0);
    nf_sub(db, C, ACC0);
    if (fd) {
        TU_ASSERT_CLOSE(nf_check(inorm_fwd, &c, M, dy, c.x, M, dx), 1e-6, "instance norm dx");
        if (affine) {
            TU_ASSERT_CLOSE(nf_check(inorm_fwd, &c, M, dy, c.g, C, dg), 1e-6, "inorm dgamma");
            TU_ASSERT_CLOSE(nf_check(inorm_fwd, &c, M, dy, c.b, C, db), 1e-6, "inorm dbeta");
        }
    } else { /* large case: threaded results equal the single-threaded ones */
        double *dx1 = tu_calloc(M, 8), *dg1 = tu_calloc(C, 8), *db1 = tu_calloc(C, 8);
        double *y1 = tu_calloc(M, 8);
        TU_OK(plstm_context_set_threads(ctx, 1));
        inorm_fwd(&c, y1);
        TU_OK(plstm_instance_norm_backward(ctx, PLSTM_F64, B, N, C, c.eps, c.x, c.g, dy, dx1,
                                           affine ? dg1 : NULL, affine ? db1 : NULL));
        TU_OK(plstm_context_set_threads(ctx, 0));
        TU_ASSERT_CLOSE(tu_rel_err_f64(y, y1, M), 0, "instance norm y threads");
        TU_ASSERT_CLOSE(tu_rel_err_f64(dx, dx1, M), 0, "instance norm dx threads");
        TU_ASSERT_CLOSE(tu_rel_err_f64(dg, dg1, C), 1e-14, "instance norm dgamma threads");
        TU_ASSERT_CLOSE(tu_rel_err_f64(db, db1, C), 1e-14, "instance norm dbeta threads");
        free(dx1); free(dg1); free(db1); free(y1);
    }
    free(c.x); free(c.g); free(c.b); free(y); free(yref); free(x32); free(y32); free(g32);
    free(b32); free(dy); free(dx); free(dg); free(db);
}

static void test_instance_norm(void **state)
{
    (void)state;
    plstm_context *ctx = new_ctx();
    tu_rng rng;
    tu_rng_seed(&rng, 12);
    check_inorm(ctx, &rng, 3, 5, 4, 1, 1);
    check_inorm(ctx, &rng, 2, 7, 3, 0, 1); /* no γ, β */
    check_inorm(ctx, &rng, 1, 9, 1, 1, 1);
    check_inorm(ctx, &rng, 6, 700, 24, 1, 0);
    double x[6] = {0}, y[6];
    assert_int_equal(plstm_instance_norm_forward(ctx, PLSTM_F64, 1, 0, 6, 1e-5, x, NULL, NULL, y),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "N = 0"));
    assert_int_equal(plstm_instance_norm_forward(ctx, PLSTM_F64, 1, 6, 1, 0, x, NULL, NULL, y),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "eps"));
    assert_int_equal(plstm_instance_norm_backward(ctx, PLSTM_F64, 1, 6, 1, 1e-5, x, NULL, y, y,
                                                  NULL, NULL),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "overlap"));
    plstm_context_destroy(ctx);
}

/* ======================================================================== */
/* activations                                                              */
/* ======================================================================== */

typedef struct {
    plstm_context *ctx;
    plstm_activation act;
    size_t n;
    double *x;
} act_case;

static void act_fwd(void *u, double *y)
{
    act_case *c = u;
    TU_OK(plstm_activation_forward(c->ctx, PLSTM_F64, c->act, c->n, c->x, y));
}

static void test_activations(void **state)
{
    (void)state;
    plstm_context *ctx = new_ctx();
    /* Exact GELU = x·Φ(x) at points with tabulated normal CDF values
     * Φ(1) = 0.8413447460685429, Φ(2) = 0.9772498680518208, Φ(0.5) = 0.6914624612740131. */
    const double xs[] = {0, 1, -1, 2, -2, 0.5};
    const double want[] = {0, 0.8413447460685429, -0.15865525393145707, 1.9544997361036416,
                           -0.0455002638963584, 0.34573123063700655};
    double got[6];
    TU_OK(plstm_activation_forward(ctx, PLSTM_F64, PLSTM_ACT_GELU, 6, xs, got));
    TU_ASSERT_CLOSE(tu_rel_err_f64(got, want, 6), 1e-14, "gelu exact vs tabulated");
    float xs32[6], got32[6];
    for (int i = 0; i < 6; i++)
        xs32[i] = (float)xs[i];
    TU_OK(plstm_activation_forward(ctx, PLSTM_F32, PLSTM_ACT_GELU, 6, xs32, got32));
    TU_ASSERT_CLOSE(nf_err_32_64(got32, want, 6), 1e-6, "gelu exact f32");

    tu_rng rng;
    tu_rng_seed(&rng, 3);
    const size_t n = 101;
    act_case c = {ctx, PLSTM_ACT_GELU, n, nf_rand(&rng, n, -5, 5)};
    double *y = tu_calloc(n, 8), *ye = tu_calloc(n, 8), *ref = tu_calloc(n, 8);
    /* tanh form against its formula, and within 1e-3 of the exact GELU. */
    TU_OK(plstm_activation_forward(ctx, PLSTM_F64, PLSTM_ACT_GELU_TANH, n, c.x, y));
    TU_OK(plstm_activation_forward(ctx, PLSTM_F64, PLSTM_ACT_GELU, n, c.x, ye));
    for (size_t i = 0; i < n; i++) {
        const double v = c.x[i];
        ref[i] = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
        assert_true(fabs(y[i] - ye[i]) < 1e-3);
        assert_true(fabs(ye[i] - 0.5 * v * erfc(-v / sqrt(2))) < 1e-14);
    }
    TU_ASSERT_CLOSE(tu_rel_err_f64(y, ref, n), 1e-14, "gelu tanh vs formula");
    TU_OK(plstm_activation_forward(ctx, PLSTM_F64, PLSTM_ACT_SILU, n, c.x, y));
    for (size_t i = 0; i < n; i++)
        ref[i] = c.x[i] / (1 + exp(-c.x[i]));
    TU_ASSERT_CLOSE(tu_rel_err_f64(y, ref, n), 1e-14, "silu vs formula");

    const plstm_activation acts[] = {PLSTM_ACT_GELU, PLSTM_ACT_GELU_TANH, PLSTM_ACT_SILU};
    for (int a = 0; a < 3; a++) {
        c.act = acts[a];
        double *dy = nf_rand(&rng, n, -1, 1), *dx = nf_const(n, JUNK);
        TU_OK(plstm_activation_backward(ctx, PLSTM_F64, c.act, n, c.x, dy, dx));
        TU_ASSERT_CLOSE(nf_check(act_fwd, &c, n, dy, c.x, n, dx), 1e-7, "activation dx");
        /* in place: dx == dy */
        TU_OK(plstm_activation_backward(ctx, PLSTM_F64, c.act, n, c.x, dy, dy));
        TU_ASSERT_CLOSE(tu_rel_err_f64(dy, dx, n), 0, "activation backward in place");
        float *x32 = nf_to_f32(c.x, n), *y32 = tu_calloc(n, 4);
        TU_OK(plstm_activation_forward(ctx, PLSTM_F32, c.act, n, x32, y32));
        act_fwd(&c, y);
        TU_ASSERT_CLOSE(nf_err_32_64(y32, y, n), 1e-6, "activation f32 vs f64");
        free(dy); free(dx); free(x32); free(y32);
    }
    free(c.x); free(y); free(ye); free(ref);
    plstm_context_destroy(ctx);
}

/* ======================================================================== */
/* elementwise helpers                                                      */
/* ======================================================================== */

typedef struct {
    plstm_context *ctx;
    int n, D;
    double *x, *s;
} scale_case;

static void scale_fwd(void *u, double *y)
{
    scale_case *c = u;
    TU_OK(plstm_scale_forward(c->ctx, PLSTM_F64, c->n, c->D, c->x, c->s, y));
}

static void bcast_fwd(void *u, double *y)
{
    scale_case *c = u; /* x [n, D] + s [D] */
    TU_OK(plstm_broadcast_add_forward(c->ctx, PLSTM_F64, c->n, c->D, c->x, c->s, y));
}

static void test_elementwise(void **state)
{
    (void)state;
    plstm_context *ctx = new_ctx();
    tu_rng rng;
    tu_rng_seed(&rng, 4);
    const int n = 6, D = 5;
    const size_t N = (size_t)n * D;
    scale_case c = {ctx, n, D, nf_rand(&rng, N, -1, 1), nf_rand(&rng, D, -1, 1)};
    double *y = tu_calloc(N, 8), *dy = nf_rand(&rng, N, -1, 1);
    double *dx = nf_const(N, JUNK), *ds = nf_const(D, ACC0);

    scale_fwd(&c, y);
    for (size_t i = 0; i < N; i++)
        assert_true(y[i] == c.x[i] * c.s[i % D]);
    TU_OK(plstm_scale_backward(ctx, PLSTM_F64, n, D, c.x, c.s, dy, dx, ds));
    nf_sub(ds, D, ACC0);
    TU_ASSERT_CLOSE(nf_check(scale_fwd, &c, N, dy, c.x, N, dx), 1e-8, "scale dx");
    TU_ASSERT_CLOSE(nf_check(scale_fwd, &c, N, dy, c.s, D, ds), 1e-8, "scale ds");

    bcast_fwd(&c, y);
    for (size_t i = 0; i < N; i++)
        assert_true(y[i] == c.x[i] + c.s[i % D]);
    double *dv = nf_const(D, ACC0);
    TU_OK(plstm_broadcast_add_backward(ctx, PLSTM_F64, n, D, dy, dv));
    nf_sub(dv, D, ACC0);
    TU_ASSERT_CLOSE(nf_check(bcast_fwd, &c, N, dy, c.s, D, dv), 1e-8, "broadcast_add dv");

    /* add (in place into a) and axpy */
    double *a = nf_rand(&rng, N, -1, 1), *a0 = tu_calloc(N, 8);
    memcpy(a0, a, N * 8);
    TU_OK(plstm_add(ctx, PLSTM_F64, N, a, c.x, a));
    for (size_t i = 0; i < N; i++)
        assert_true(a[i] == a0[i] + c.x[i]);
    TU_OK(plstm_axpy(ctx, PLSTM_F64, N, -2.0, c.x, a));
    for (size_t i = 0; i < N; i++)
        assert_true(fabs(a[i] - (a0[i] - c.x[i])) < 1e-15);
    free(c.x); free(c.s); free(y); free(dy); free(dx); free(ds); free(dv); free(a); free(a0);
    plstm_context_destroy(ctx);
}

/* ======================================================================== */
/* pooling                                                                  */
/* ======================================================================== */

typedef struct {
    plstm_context *ctx;
    plstm_pool_kind kind;
    int B, X, Y, D;
    double *x;
} pool_case;

static void pool_fwd(void *u, double *y)
{
    pool_case *c = u;
    TU_OK(plstm_pool_forward(c->ctx, PLSTM_F64, c->kind, c->B, c->X, c->Y, c->D, c->x, y));
}

static double grid_at(const pool_case *c, int b, int px, int py, int d)
{
    return c->x[(((size_t)b * c->X + px) * c->Y + py) * c->D + d];
}

static void check_pool(plstm_context *ctx, tu_rng *rng, plstm_pool_kind kind, int B, int X, int Y,
                       int D)
{
    const size_t N = (size_t)B * X * Y * D;
    const int Do = plstm_pool_output_dim(kind, D);
    pool_case c = {ctx, kind, B, X, Y, D, nf_rand(rng, N, -1, 1)};
    double *y = tu_calloc((size_t)B * Do, 8), *ref = tu_calloc((size_t)B * Do, 8);
    pool_fwd(&c, y);
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++) {
            double *r = ref + (size_t)b * Do;
            switch (kind) {
            case PLSTM_POOL_CORNERS:
                r[d] = grid_at(&c, b, 0, 0, d);
                r[D + d] = grid_at(&c, b, X - 1, 0, d);
                r[2 * D + d] = grid_at(&c, b, 0, Y - 1, d);
                r[3 * D + d] = grid_at(&c, b, X - 1, Y - 1, d);
                break;
            case PLSTM_POOL_CENTER: r[d] = grid_at(&c, b, X / 2, Y / 2, d); break;
            case PLSTM_POOL_FIRST: r[d] = grid_at(&c, b, 0, 0, d); break;
            case PLSTM_POOL_MEAN:
                for (int px = 0; px < X; px++)
                    for (int py = 0; py < Y; py++)
                        r[d] += grid_at(&c, b, px, py, d) / (X * Y);
                break;
            }
        }
    TU_ASSERT_CLOSE(tu_rel_err_f64(y, ref, (size_t)B * Do), 1e-15, "pool forward");
    double *dy = nf_rand(rng, (size_t)B * Do, -1, 1), *dx = nf_const(N, JUNK);
    TU_OK(plstm_pool_backward(ctx, PLSTM_F64, kind, B, X, Y, D, dy, dx));
    TU_ASSERT_CLOSE(nf_check(pool_fwd, &c, (size_t)B * Do, dy, c.x, N, dx), 1e-8, "pool dx");
    free(c.x); free(y); free(ref); free(dy); free(dx);
}

static void test_pooling(void **state)
{
    (void)state;
    plstm_context *ctx = new_ctx();
    tu_rng rng;
    tu_rng_seed(&rng, 5);
    const plstm_pool_kind kinds[] = {PLSTM_POOL_CORNERS, PLSTM_POOL_CENTER, PLSTM_POOL_MEAN,
                                     PLSTM_POOL_FIRST};
    for (int k = 0; k < 4; k++) {
        check_pool(ctx, &rng, kinds[k], 2, 5, 4, 3);
        check_pool(ctx, &rng, kinds[k], 1, 1, 3, 2); /* corners coincide */
    }
    assert_int_equal(plstm_pool_output_dim(PLSTM_POOL_CORNERS, 32), 128);
    plstm_context_destroy(ctx);
}

/* ======================================================================== */
/* softmax cross-entropy                                                    */
/* ======================================================================== */

typedef struct {
    plstm_context *ctx;
    int n, classes;
    double *logits;
    const int32_t *labels;
} xent_case;

static void xent_fwd(void *u, double *y)
{
    xent_case *c = u;
    TU_OK(plstm_softmax_xent_forward(c->ctx, PLSTM_F64, c->n, c->classes, c->logits, c->labels, y,
                                     NULL));
}

static void test_softmax_xent(void **state)
{
    (void)state;
    plstm_context *ctx = new_ctx();
    tu_rng rng;
    tu_rng_seed(&rng, 6);
    const int n = 7, K = 5;
    int32_t labels[7] = {0, 4, 2, 2, 1, 3, 0};
    xent_case c = {ctx, n, K, nf_rand(&rng, (size_t)n * K, -3, 3), labels};
    c.logits[3 * K + 2] = 50; /* large logit: stable log-sum-exp */
    double loss;
    int correct;
    TU_OK(plstm_softmax_xent_forward(ctx, PLSTM_F64, n, K, c.logits, labels, &loss, &correct));
    double ref = 0;
    int hits = 0;
    for (int r = 0; r < n; r++) {
        const double *l = c.logits + (size_t)r * K;
        double z = 0;
        int am = 0;
        for (int k = 0; k < K; k++) {
            z += exp(l[k] - 50);
            am = l[k] > l[am] ? k : am;
        }
        ref += -(l[labels[r]] - 50 - log(z)) / n;
        hits += am == labels[r];
    }
    assert_true(fabs(loss - ref) < 1e-13 * fabs(ref));
    assert_int_equal(correct, hits);
    assert_true(hits >= 1); /* row 3 is a hit by construction */

    double *dl = nf_const((size_t)n * K, JUNK), one = 1;
    TU_OK(plstm_softmax_xent_backward(ctx, PLSTM_F64, n, K, c.logits, labels, 1.0, dl));
    TU_ASSERT_CLOSE(nf_check(xent_fwd, &c, 1, &one, c.logits, (size_t)n * K, dl), 1e-7,
                    "xent dlogits");
    double *dl2 = tu_calloc((size_t)n * K, 8);
    TU_OK(plstm_softmax_xent_backward(ctx, PLSTM_F64, n, K, c.logits, labels, 2.5, dl2));
    for (size_t i = 0; i < (size_t)n * K; i++)
        assert_true(fabs(dl2[i] - 2.5 * dl[i]) < 1e-15);

    float *l32 = nf_to_f32(c.logits, (size_t)n * K);
    double loss32;
    TU_OK(plstm_softmax_xent_forward(ctx, PLSTM_F32, n, K, l32, labels, &loss32, NULL));
    assert_true(fabs(loss32 - loss) < 1e-5 * fabs(loss));

    labels[2] = K; /* out of range */
    assert_int_equal(plstm_softmax_xent_forward(ctx, PLSTM_F64, n, K, c.logits, labels, &loss, NULL),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "labels[2]"));
    free(c.logits); free(dl); free(dl2); free(l32);
    plstm_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),      cmocka_unit_test(test_linear_multi),
        cmocka_unit_test(test_norms),       cmocka_unit_test(test_instance_norm),
        cmocka_unit_test(test_activations), cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_pooling),     cmocka_unit_test(test_softmax_xent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
