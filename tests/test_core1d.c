/* The 1D core (plstm-math.md §2): backward against central finite differences
 * (F64, every input including C0, with a dC_last cotangent), the chunked form
 * against the sequential one (forward and every gradient, F32 and F64, many
 * lengths and chunk sizes), the forward against an independent sum over the
 * unrolled gating matrix (§1 eq. 3), and the gating doctest of §2.2 read out
 * through the outputs. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { T_Q, T_K, T_V, T_S, T_T, T_M, T_D, T_C0, NT };
static const char *const tname[NT] = {"Q", "K", "V", "S", "T", "M", "D", "C0"};

typedef struct jdims {
    int B, L, DK, DV, JQ, JK, JV, JT, JO;
} jdims;

static const jdims J2 = {2, 7, 3, 2, 2, 2, 3, 2, 2};
static const jdims J1 = {2, 7, 3, 2, 1, 1, 1, 1, 1};

typedef struct prob {
    plstm_core1d_desc d;
    double *t[NT]; /* C0 NULL when absent */
    size_t n[NT];
    double *dY, *dCl; /* cotangents; dCl NULL = no C_last cotangent */
    size_t ny, nc;
} prob;

static size_t pos_elems(const plstm_core1d_desc *d, int i)
{
    size_t DK = d->DK, DV = d->DV, JQ = d->JQ, JK = d->JK, JV = d->JV, JT = d->JT, JO = d->JO;
    switch (i) {
    case T_Q: return DK * JQ;
    case T_K: return DK * JK;
    case T_V: return DV * JV;
    case T_S: return JT * JK * JV;
    case T_T: return JT * JT;
    case T_M: return JO * JQ * JT;
    case T_D: return JO * JQ * JK * JV;
    default: return DK * DV * JT;
    }
}

static prob make_prob(jdims j, int has_c0, int has_dcl, uint64_t seed)
{
    prob p;
    memset(&p, 0, sizeof p);
    p.d = (plstm_core1d_desc){.dtype = PLSTM_F64, .B = j.B, .L = j.L, .DK = j.DK, .DV = j.DV,
                              .JQ = j.JQ, .JK = j.JK, .JV = j.JV, .JT = j.JT, .JO = j.JO,
                              .scale = 0.7, .algo = PLSTM_ALGO_SEQUENTIAL};
    tu_rng r;
    tu_rng_seed(&r, seed);
    for (int i = 0; i < NT; i++) {
        if (i == T_C0 && !has_c0)
            continue;
        size_t cnt = i == T_C0 ? (size_t)j.B : (size_t)j.B * j.L;
        p.n[i] = cnt * pos_elems(&p.d, i);
        p.t[i] = tu_calloc(p.n[i], sizeof(double));
        /* transitions with row sums below 1, so long chains stay bounded */
        double a = i == T_T ? 0.95 / j.JT : 1.0;
        tu_fill_f64(&r, p.t[i], p.n[i], -a, a);
    }
    p.ny = (size_t)j.B * j.L * j.DV * j.JO;
    p.nc = (size_t)j.B * j.DK * j.DV * j.JT;
    p.dY = tu_calloc(p.ny, sizeof(double));
    tu_fill_f64(&r, p.dY, p.ny, -1, 1);
    if (has_dcl) {
        p.dCl = tu_calloc(p.nc, sizeof(double));
        tu_fill_f64(&r, p.dCl, p.nc, -1, 1);
    }
    return p;
}

static void free_prob(prob *p)
{
    for (int i = 0; i < NT; i++)
        free(p->t[i]);
    free(p->dY);
    free(p->dCl);
}

static plstm_context *g_ctx;

static plstm_core1d_inputs inputs_of(void *const t[NT])
{
    return (plstm_core1d_inputs){t[T_Q], t[T_K], t[T_V], t[T_S],
                                 t[T_T], t[T_M], t[T_D], t[T_C0]};
}

/* Forward and backward of `p` in its dtype/algo; buffers are double or float
 * as the dtype says. g[T_C0] is only written when C0 exists. */
static void run_both(const plstm_core1d_desc *d, void *const t[NT], const void *dY,
                     const void *dCl, void *Y, void *Cl, void *const g[NT])
{
    plstm_core1d_inputs in = inputs_of(t);
    plstm_core1d_outputs out = {Y, Cl};
    TU_OK(plstm_core1d_forward(g_ctx, d, &in, &out));
    if (!g)
        return;
    plstm_core1d_cotangents dout = {dY, dCl};
    plstm_core1d_grads gr = {g[T_Q], g[T_K], g[T_V], g[T_S], g[T_T], g[T_M], g[T_D], g[T_C0]};
    TU_OK(plstm_core1d_backward(g_ctx, d, &in, &dout, &gr));
}

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* loss = <dY, Y> + <dC_last, C_last> */
static double loss(const prob *p, double *Y, double *Cl)
{
    run_both(&p->d, (void *const *)p->t, NULL, NULL, Y, Cl, NULL);
    return dot(p->dY, Y, p->ny) + (p->dCl ? dot(p->dCl, Cl, p->nc) : 0);
}

/* The loss is affine in every single input element (each appears at most
 * once on every path), so central differences are exact up to rounding. */
static void check_fd(prob *p)
{
    double *g[NT] = {0};
    for (int i = 0; i < NT; i++)
        if (p->t[i])
            g[i] = tu_calloc(p->n[i], sizeof(double));
    double *Y = tu_calloc(p->ny, sizeof(double)), *Cl = tu_calloc(p->nc, sizeof(double));
    run_both(&p->d, (void *const *)p->t, p->dY, p->dCl, Y, Cl, (void *const *)g);
    const double h = 1e-3;
    for (int i = 0; i < NT; i++) {
        if (!p->t[i])
            continue;
        double *fd = tu_calloc(p->n[i], sizeof(double));
        for (size_t e = 0; e < p->n[i]; e++) {
            const double x0 = p->t[i][e];
            p->t[i][e] = x0 + h;
            const double lp = loss(p, Y, Cl);
            p->t[i][e] = x0 - h;
            const double lm = loss(p, Y, Cl);
            p->t[i][e] = x0;
            fd[e] = (lp - lm) / (2 * h);
        }
        char what[64];
        snprintf(what, sizeof what, "d%s (algo %d, chunk %d)", tname[i], (int)p->d.algo,
                 p->d.chunk);
        TU_ASSERT_CLOSE(tu_rel_err_f64(g[i], fd, p->n[i]), 1e-8, what);
        free(fd);
    }
    for (int i = 0; i < NT; i++)
        free(g[i]);
    free(Y);
    free(Cl);
}

static void fd_both_algos(jdims j)
{
    prob p = make_prob(j, 1, 1, 11);
    check_fd(&p);
    p.d.algo = PLSTM_ALGO_PARALLEL;
    p.d.chunk = 3; /* chunks 3,3,1: several chunks and a partial one */
    check_fd(&p);
    free_prob(&p);
}

static void test_fd_J2(void **s)
{
    (void)s;
    fd_both_algos(J2);
}

static void test_fd_J1(void **s)
{
    (void)s;
    fd_both_algos(J1);
}

/* Without C0 and without dC_last (the NULL paths). */
static void test_fd_no_state(void **s)
{
    (void)s;
    prob p = make_prob(J2, 0, 0, 12);
    p.d.algo = PLSTM_ALGO_PARALLEL;
    p.d.chunk = 2;
    check_fd(&p);
    free_prob(&p);
}

/* ---- chunked vs sequential ------------------------------------------------ */

typedef struct result {
    void *Y, *Cl, *g[NT];
} result;

static result run_result(const prob *p, plstm_dtype dt, plstm_algo algo, int chunk)
{
    const size_t es = dt == PLSTM_F32 ? sizeof(float) : sizeof(double);
    plstm_core1d_desc d = p->d;
    d.dtype = dt;
    d.algo = algo;
    d.chunk = chunk;
    void *t[NT] = {0}, *dY, *dCl = NULL;
    result r;
    memset(&r, 0, sizeof r);
    for (int i = 0; i < NT; i++) {
        if (!p->t[i])
            continue;
        t[i] = tu_calloc(p->n[i], es);
        r.g[i] = tu_calloc(p->n[i], es);
        if (dt == PLSTM_F32)
            tu_f64_to_f32(p->t[i], t[i], p->n[i]);
        else
            memcpy(t[i], p->t[i], p->n[i] * es);
    }
    dY = tu_calloc(p->ny, es);
    if (p->dCl)
        dCl = tu_calloc(p->nc, es);
    if (dt == PLSTM_F32) {
        tu_f64_to_f32(p->dY, dY, p->ny);
        if (dCl)
            tu_f64_to_f32(p->dCl, dCl, p->nc);
    } else {
        memcpy(dY, p->dY, p->ny * es);
        if (dCl)
            memcpy(dCl, p->dCl, p->nc * es);
    }
    r.Y = tu_calloc(p->ny, es);
    r.Cl = tu_calloc(p->nc, es);
    run_both(&d, t, dY, dCl, r.Y, r.Cl, r.g);
    for (int i = 0; i < NT; i++)
        free(t[i]);
    free(dY);
    free(dCl);
    return r;
}

static void free_result(result *r)
{
    free(r->Y);
    free(r->Cl);
    for (int i = 0; i < NT; i++)
        free(r->g[i]);
}

static double rel(plstm_dtype dt, const void *a, const void *b, size_t n)
{
    return dt == PLSTM_F32 ? tu_rel_err_f32(a, b, n) : tu_rel_err_f64(a, b, n);
}

static void compare_chunked(jdims j, plstm_dtype dt, double tol)
{
    static const int Ls[] = {1, 5, 16, 37};
    static const int chunks[] = {1, 4, 8, 64};
    for (int li = 0; li < 4; li++) {
        j.L = Ls[li];
        prob p = make_prob(j, 1, 1, 100 + (uint64_t)li);
        result ref = run_result(&p, dt, PLSTM_ALGO_SEQUENTIAL, 0);
        for (int ci = 0; ci < 4; ci++) {
            result r = run_result(&p, dt, PLSTM_ALGO_PARALLEL, chunks[ci]);
            char what[96];
            snprintf(what, sizeof what, "%s L=%d chunk=%d Y", plstm_dtype_name(dt), j.L,
                     chunks[ci]);
            TU_ASSERT_CLOSE(rel(dt, r.Y, ref.Y, p.ny), tol, what);
            snprintf(what, sizeof what, "%s L=%d chunk=%d C_last", plstm_dtype_name(dt), j.L,
                     chunks[ci]);
            TU_ASSERT_CLOSE(rel(dt, r.Cl, ref.Cl, p.nc), tol, what);
            for (int i = 0; i < NT; i++) {
                snprintf(what, sizeof what, "%s L=%d chunk=%d d%s", plstm_dtype_name(dt), j.L,
                         chunks[ci], tname[i]);
                TU_ASSERT_CLOSE(rel(dt, r.g[i], ref.g[i], p.n[i]), tol, what);
            }
            free_result(&r);
        }
        free_result(&ref);
        free_prob(&p);
    }
}

static const jdims CJ1 = {3, 0, 8, 6, 1, 1, 1, 1, 1};
static const jdims CJ2 = {2, 0, 5, 4, 2, 2, 3, 2, 2};
static const jdims CJD = {2, 0, 4, 4, 1, 1, 4, 4, 4}; /* the 1D layer's default J */

static void test_chunked_f64(void **s)
{
    (void)s;
    compare_chunked(CJ1, PLSTM_F64, 1e-10);
    compare_chunked(CJ2, PLSTM_F64, 1e-10);
    compare_chunked(CJD, PLSTM_F64, 1e-10);
}

static void test_chunked_f32(void **s)
{
    (void)s;
    compare_chunked(CJ1, PLSTM_F32, 1e-5);
    compare_chunked(CJ2, PLSTM_F32, 1e-5);
    compare_chunked(CJD, PLSTM_F32, 1e-5);
}

/* AUTO and chunk = 0 (backend's choice) give the sequential result too. */
static void test_auto(void **s)
{
    (void)s;
    jdims j = CJ2;
    j.L = 70;
    prob p = make_prob(j, 1, 1, 5);
    result ref = run_result(&p, PLSTM_F64, PLSTM_ALGO_SEQUENTIAL, 0);
    for (int a = 0; a < 2; a++) {
        result r = run_result(&p, PLSTM_F64, a ? PLSTM_ALGO_AUTO : PLSTM_ALGO_PARALLEL, 0);
        TU_ASSERT_CLOSE(tu_rel_err_f64(r.Y, ref.Y, p.ny), 1e-10, "Y");
        for (int i = 0; i < NT; i++)
            TU_ASSERT_CLOSE(tu_rel_err_f64(r.g[i], ref.g[i], p.n[i]), 1e-10, tname[i]);
        free_result(&r);
    }
    free_result(&ref);
    free_prob(&p);
}

/* ---- independent forward: unrolled gating (§1 eq. 3) ---------------------- */

/* y_n = scale·Σ_m q_n ⋆ G_{n,m} ⋆ (k_m v_m) + scale·q_n ⋆ M_n T_{n-1}⋯T_0 ⋆ C0,
 * G_{n,m} = M_n T_{n-1}⋯T_{m+1} S_m (m < n), G_{n,n} = D_n. */
static void gating_forward(const prob *p, double *Y)
{
    const plstm_core1d_desc *d = &p->d;
    const int L = d->L, DK = d->DK, DV = d->DV, JQ = d->JQ, JK = d->JK, JV = d->JV,
              JT = d->JT, JO = d->JO;
    const size_t nq = pos_elems(d, T_Q), nk = pos_elems(d, T_K), nv = pos_elems(d, T_V),
                 ns = pos_elems(d, T_S), nt = pos_elems(d, T_T), nm = pos_elems(d, T_M),
                 nd = pos_elems(d, T_D), nc = pos_elems(d, T_C0);
    double *P = tu_calloc((size_t)JO * JQ * JT, sizeof(double));  /* M_n T_{n-1}⋯T_{m+1} */
    double *P2 = tu_calloc((size_t)JO * JQ * JT, sizeof(double));
    double *G = tu_calloc((size_t)JO * JQ * JK * JV, sizeof(double));
    for (int b = 0; b < d->B; b++)
        for (int n = 0; n < L; n++) {
            const size_t in = (size_t)b * L + n;
            const double *q = p->t[T_Q] + in * nq;
            double *y = Y + in * (size_t)DV * JO;
            memset(y, 0, sizeof(double) * DV * JO);
            memcpy(P, p->t[T_M] + in * nm, sizeof(double) * nm);
            for (int m = n; m >= -1; m--) {
                const size_t im = (size_t)b * L + m;
                if (m == n) {
                    memcpy(G, p->t[T_D] + in * nd, sizeof(double) * nd);
                } else if (m >= 0) {
                    const double *S = p->t[T_S] + im * ns;
                    for (int op = 0; op < JO * JQ; op++)
                        for (int ac = 0; ac < JK * JV; ac++) {
                            double acc = 0;
                            for (int t = 0; t < JT; t++)
                                acc += P[op * JT + t] * S[(size_t)t * JK * JV + ac];
                            G[op * JK * JV + ac] = acc;
                        }
                }
                if (m >= 0) {
                    const double *k = p->t[T_K] + im * nk, *v = p->t[T_V] + im * nv;
                    for (int j = 0; j < DV; j++)
                        for (int o = 0; o < JO; o++) {
                            double acc = 0;
                            for (int pp = 0; pp < JQ; pp++)
                                for (int a = 0; a < JK; a++)
                                    for (int c = 0; c < JV; c++) {
                                        double qk = 0;
                                        for (int dd = 0; dd < DK; dd++)
                                            qk += q[dd * JQ + pp] * k[dd * JK + a];
                                        acc += G[((o * JQ + pp) * JK + a) * JV + c] * qk *
                                               v[j * JV + c];
                                    }
                            y[j * JO + o] += d->scale * acc;
                        }
                } else if (p->t[T_C0]) {
                    const double *C0 = p->t[T_C0] + (size_t)b * nc;
                    for (int j = 0; j < DV; j++)
                        for (int o = 0; o < JO; o++) {
                            double acc = 0;
                            for (int dd = 0; dd < DK; dd++)
                                for (int pp = 0; pp < JQ; pp++)
                                    for (int t = 0; t < JT; t++)
                                        acc += q[dd * JQ + pp] * P[(o * JQ + pp) * JT + t] *
                                               C0[((size_t)dd * DV + j) * JT + t];
                            y[j * JO + o] += d->scale * acc;
                        }
                }
                /* P <- P T_m, for the next (earlier) m */
                if (m >= 0 && m < n) {
                    const double *T = p->t[T_T] + im * nt;
                    for (int op = 0; op < JO * JQ; op++)
                        for (int u = 0; u < JT; u++) {
                            double acc = 0;
                            for (int t = 0; t < JT; t++)
                                acc += P[op * JT + t] * T[t * JT + u];
                            P2[op * JT + u] = acc;
                        }
                    memcpy(P, P2, sizeof(double) * nm);
                }
            }
        }
    free(P);
    free(P2);
    free(G);
}

static void test_gating(void **s)
{
    (void)s;
    const jdims js[2] = {J2, J1};
    for (int ji = 0; ji < 2; ji++) {
        prob p = make_prob(js[ji], 1, 0, 21 + (uint64_t)ji);
        double *Yg = tu_calloc(p.ny, sizeof(double)), *Y = tu_calloc(p.ny, sizeof(double));
        gating_forward(&p, Yg);
        for (int a = 0; a < 2; a++) {
            p.d.algo = a ? PLSTM_ALGO_PARALLEL : PLSTM_ALGO_SEQUENTIAL;
            p.d.chunk = 4;
            run_both(&p.d, (void *const *)p.t, NULL, NULL, Y, NULL, NULL);
            TU_ASSERT_CLOSE(tu_rel_err_f64(Y, Yg, p.ny), 1e-12, "Y vs unrolled gating");
        }
        free(Y);
        free(Yg);
        free_prob(&p);
    }
}

/* ---- §2.2 doctest: S=1..4, M=4..1, T=0.5 --------------------------------- */

/* With DK = 1, q = k = 1, scale 1 and v_b the one-hot e_b in DV = 4, output
 * y_a[b] = G[a,b]: the gating matrix is read off Y. D_a = 10 + a marks the
 * diagonal; entries above it must be 0. */
static void test_doctest(void **s)
{
    (void)s;
    double Q[4], K[4], V[16] = {0}, S[4], T[4], M[4], D[4], Y[16];
    for (int a = 0; a < 4; a++) {
        Q[a] = K[a] = 1;
        V[a * 4 + a] = 1;
        S[a] = a + 1;
        M[a] = 4 - a;
        T[a] = 0.5;
        D[a] = 10 + a;
    }
    const double G[4][4] = {{10, 0, 0, 0}, {3, 11, 0, 0}, {1, 4, 12, 0}, {0.25, 1, 3, 13}};
    plstm_core1d_desc d = {.dtype = PLSTM_F64, .B = 1, .L = 4, .DK = 1, .DV = 4, .JQ = 1,
                           .JK = 1, .JV = 1, .JT = 1, .JO = 1, .scale = 1};
    plstm_core1d_inputs in = {Q, K, V, S, T, M, D, NULL};
    plstm_core1d_outputs out = {Y, NULL};
    for (int c = 0; c <= 4; c++) {
        d.algo = c ? PLSTM_ALGO_PARALLEL : PLSTM_ALGO_SEQUENTIAL;
        d.chunk = c;
        TU_OK(plstm_core1d_forward(g_ctx, &d, &in, &out));
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 4; b++)
                if (fabs(Y[a * 4 + b] - G[a][b]) > 1e-14)
                    fail_msg("chunk %d: G[%d,%d] = %g, expected %g", c, a, b, Y[a * 4 + b],
                             G[a][b]);
    }
}

/* Thread count does not change the result (each batch entry is independent). */
static void test_threads(void **s)
{
    (void)s;
    jdims j = CJ1;
    j.B = 5;
    j.L = 20;
    j.DK = j.DV = 32; /* large enough to be run on a team */
    prob p = make_prob(j, 1, 1, 9);
    for (int a = 0; a < 2; a++) {
        plstm_algo algo = a ? PLSTM_ALGO_PARALLEL : PLSTM_ALGO_SEQUENTIAL;
        TU_OK(plstm_context_set_threads(g_ctx, 1));
        result r1 = run_result(&p, PLSTM_F64, algo, 8);
        TU_OK(plstm_context_set_threads(g_ctx, 2));
        result r2 = run_result(&p, PLSTM_F64, algo, 8);
        TU_ASSERT_CLOSE(tu_rel_err_f64(r2.Y, r1.Y, p.ny), 0, "Y threads");
        for (int i = 0; i < NT; i++)
            TU_ASSERT_CLOSE(tu_rel_err_f64(r2.g[i], r1.g[i], p.n[i]), 0, tname[i]);
        free_result(&r1);
        free_result(&r2);
    }
    TU_OK(plstm_context_set_threads(g_ctx, 0));
    free_prob(&p);
}

static void test_bad_dtype(void **s)
{
    (void)s;
    prob p = make_prob(J1, 0, 0, 1);
    p.d.dtype = PLSTM_BF16;
    double Y[64];
    plstm_core1d_inputs in = inputs_of((void *const *)p.t);
    plstm_core1d_outputs out = {Y, NULL};
    assert_int_not_equal(plstm_core1d_forward(g_ctx, &p.d, &in, &out), PLSTM_OK);
    free_prob(&p);
}

static int setup(void **s)
{
    (void)s;
    return plstm_context_create(&g_ctx, PLSTM_BACKEND_CPU, 0) == PLSTM_OK ? 0 : -1;
}

static int teardown(void **s)
{
    (void)s;
    plstm_context_destroy(g_ctx);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_J2),       cmocka_unit_test(test_fd_J1),
        cmocka_unit_test(test_fd_no_state), cmocka_unit_test(test_chunked_f64),
        cmocka_unit_test(test_chunked_f32), cmocka_unit_test(test_auto),
        cmocka_unit_test(test_gating),      cmocka_unit_test(test_doctest),
        cmocka_unit_test(test_threads),     cmocka_unit_test(test_bad_dtype),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
