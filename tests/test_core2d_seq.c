/* The sequential 2D core (plstm-math.md §3.2) and the four-orientation fused
 * form (§3.7): backward against central finite differences (F64, every input
 * including the initial states), F32 against F64, the forward against an
 * independent sum over paths (formula (3) of §1), and fused4 against four
 * flipped plain calls plus the direct term. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { T_Q, T_K, T_V, T_SR, T_SD, T_TRL, T_TDU, T_TDL, T_TRU, T_ML, T_MU, T_D, T_C0L, T_C0T, NT };
static const char *const tname[NT] = {"Q",  "K",    "V",   "S_r", "S_d", "T_rl", "T_du",
                                      "T_dl", "T_ru", "M_l", "M_u", "D",   "C0_left", "C0_top"};

typedef struct prob {
    plstm_core2d_desc d;
    int fused;      /* S/T/M carry an orientation axis of 4 */
    double *t[NT];  /* NULL = absent */
    size_t n[NT];
    double *dY, *dCr, *dCb; /* cotangents; dCr/dCb NULL when border outputs are not used */
    size_t ny, ncr, ncb;
} prob;

typedef struct jdims {
    int B, X, Y, DK, DV, JQ, JK, JV, JT, JO;
} jdims;

static size_t node_elems(const plstm_core2d_desc *d, int i)
{
    size_t DK = d->DK, DV = d->DV, JQ = d->JQ, JK = d->JK, JV = d->JV, JT = d->JT, JO = d->JO;
    switch (i) {
    case T_Q: return DK * JQ;
    case T_K: return DK * JK;
    case T_V: return DV * JV;
    case T_SR: case T_SD: return JT * JK * JV;
    case T_TRL: case T_TDU: case T_TDL: case T_TRU: return JT * JT;
    case T_ML: case T_MU: return JO * JQ * JT;
    case T_D: return JO * JQ * JK * JV;
    default: return DK * DV * JT;
    }
}

/* Random problem; has_tdl/has_tru/has_c0 choose the optional tensors. */
static prob make_prob(jdims j, int fused, int has_tdl, int has_tru, int has_c0, uint64_t seed)
{
    prob p;
    memset(&p, 0, sizeof p);
    p.d = (plstm_core2d_desc){.dtype = PLSTM_F64, .B = j.B, .X = j.X, .Y = j.Y, .DK = j.DK,
                              .DV = j.DV, .JQ = j.JQ, .JK = j.JK, .JV = j.JV, .JT = j.JT,
                              .JO = j.JO, .scale = 0.7, .algo = PLSTM_ALGO_SEQUENTIAL};
    p.fused = fused;
    tu_rng r;
    tu_rng_seed(&r, seed);
    size_t nodes = (size_t)j.B * j.X * j.Y;
    for (int i = 0; i < NT; i++) {
        if ((i == T_TDL && !has_tdl) || (i == T_TRU && !has_tru) ||
            ((i == T_C0L || i == T_C0T) && (!has_c0 || fused)))
            continue;
        size_t cnt = i == T_C0L ? (size_t)j.B * j.Y : i == T_C0T ? (size_t)j.B * j.X : nodes;
        if (fused && i >= T_SR && i <= T_MU)
            cnt *= 4;
        p.n[i] = cnt * node_elems(&p.d, i);
        p.t[i] = tu_calloc(p.n[i], sizeof(double));
        /* transitions kept small so paths stay bounded */
        double a = (i >= T_TRL && i <= T_TRU) ? 0.6 : 1.0;
        tu_fill_f64(&r, p.t[i], p.n[i], -a, a);
    }
    p.ny = nodes * j.DV * j.JO;
    p.dY = tu_calloc(p.ny, sizeof(double));
    tu_fill_f64(&r, p.dY, p.ny, -1, 1);
    if (!fused) {
        p.ncr = (size_t)j.B * j.Y * j.DK * j.DV * j.JT;
        p.ncb = (size_t)j.B * j.X * j.DK * j.DV * j.JT;
        p.dCr = tu_calloc(p.ncr, sizeof(double));
        p.dCb = tu_calloc(p.ncb, sizeof(double));
        tu_fill_f64(&r, p.dCr, p.ncr, -1, 1);
        tu_fill_f64(&r, p.dCb, p.ncb, -1, 1);
    }
    return p;
}

static void free_prob(prob *p)
{
    for (int i = 0; i < NT; i++)
        free(p->t[i]);
    free(p->dY);
    free(p->dCr);
    free(p->dCb);
}

static plstm_core2d_inputs inputs_of(void *const t[NT])
{
    return (plstm_core2d_inputs){t[T_Q],   t[T_K],   t[T_V],   t[T_SR],  t[T_SD],
                                 t[T_TRL], t[T_TDU], t[T_TDL], t[T_TRU], t[T_ML],
                                 t[T_MU],  t[T_D],   t[T_C0L], t[T_C0T]};
}

static plstm_context *g_ctx;

/* Y, C_right, C_bottom (the latter two only for the plain form). */
static void run_forward(const prob *p, double *Y, double *Cr, double *Cb)
{
    plstm_core2d_inputs in = inputs_of((void *const *)p->t);
    if (p->fused) {
        plstm_core2d_outputs out = {.Y = Y};
        TU_OK(plstm_core2d_fused4_forward(g_ctx, &p->d, &in, &out));
    } else {
        plstm_core2d_outputs out = {.Y = Y, .C_right = Cr, .C_bottom = Cb};
        TU_OK(plstm_core2d_forward(g_ctx, &p->d, &in, &out));
    }
}

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* loss = Σ Y·dY + Σ C_right·dC_right + Σ C_bottom·dC_bottom */
static double loss(const prob *p, double *Y, double *Cr, double *Cb)
{
    run_forward(p, Y, Cr, Cb);
    double l = dot(Y, p->dY, p->ny);
    if (!p->fused)
        l += dot(Cr, p->dCr, p->ncr) + dot(Cb, p->dCb, p->ncb);
    return l;
}

static void run_backward(const prob *p, double *g[NT])
{
    for (int i = 0; i < NT; i++)
        g[i] = p->t[i] ? tu_calloc(p->n[i], sizeof(double)) : NULL;
    plstm_core2d_inputs in = inputs_of((void *const *)p->t);
    plstm_core2d_grads gr = {g[T_Q],   g[T_K],   g[T_V],   g[T_SR],  g[T_SD],
                             g[T_TRL], g[T_TDU], g[T_TDL], g[T_TRU], g[T_ML],
                             g[T_MU],  g[T_D],   g[T_C0L], g[T_C0T]};
    if (p->fused) {
        plstm_core2d_cotangents dout = {.Y = p->dY};
        TU_OK(plstm_core2d_fused4_backward(g_ctx, &p->d, &in, &dout, &gr));
    } else {
        plstm_core2d_cotangents dout = {.Y = p->dY, .C_right = p->dCr, .C_bottom = p->dCb};
        TU_OK(plstm_core2d_backward(g_ctx, &p->d, &in, &dout, &gr));
    }
}

/* Every gradient against central differences. The loss is linear in each
 * single input element (a path meets every node at most once), so the
 * difference quotient is exact up to rounding. */
static void check_fd(prob *p)
{
    double *g[NT];
    run_backward(p, g);
    double *Y = tu_calloc(p->ny, sizeof(double));
    double *Cr = tu_calloc(p->ncr + 1, sizeof(double)), *Cb = tu_calloc(p->ncb + 1, sizeof(double));
    const double h = 1e-3;
    for (int i = 0; i < NT; i++) {
        if (!p->t[i])
            continue;
        double *fd = tu_calloc(p->n[i], sizeof(double));
        for (size_t e = 0; e < p->n[i]; e++) {
            double x0 = p->t[i][e];
            p->t[i][e] = x0 + h;
            double lp = loss(p, Y, Cr, Cb);
            p->t[i][e] = x0 - h;
            double lm = loss(p, Y, Cr, Cb);
            p->t[i][e] = x0;
            fd[e] = (lp - lm) / (2 * h);
        }
        TU_ASSERT_CLOSE(tu_rel_err_f64(g[i], fd, p->n[i]), 1e-8, tname[i]);
        free(fd);
        free(g[i]);
    }
    free(Y);
    free(Cr);
    free(Cb);
}

static const jdims J2 = {.B = 2, .X = 3, .Y = 5, .DK = 2, .DV = 3, .JQ = 2, .JK = 2, .JV = 1,
                         .JT = 2, .JO = 2};
static const jdims J1 = {.B = 2, .X = 3, .Y = 5, .DK = 2, .DV = 3, .JQ = 1, .JK = 1, .JV = 1,
                         .JT = 1, .JO = 1};

static void test_fd_J2(void **s)
{
    (void)s;
    prob p = make_prob(J2, 0, 1, 1, 1, 1);
    check_fd(&p);
    free_prob(&p);
}

static void test_fd_J1(void **s)
{
    (void)s;
    prob p = make_prob(J1, 0, 1, 1, 1, 2);
    check_fd(&p);
    free_prob(&p);
}

static void test_fd_no_Tdl(void **s)
{
    (void)s;
    jdims j = J2;
    j.JV = 2; /* every J > 1 somewhere */
    prob p = make_prob(j, 0, 0, 1, 1, 3);
    check_fd(&p);
    free_prob(&p);
    prob p1 = make_prob(J1, 0, 0, 1, 1, 6); /* the all-J=1 kernels */
    check_fd(&p1);
    free_prob(&p1);
}

static void test_fd_no_Tru(void **s)
{
    (void)s;
    prob p = make_prob(J1, 0, 1, 0, 1, 4);
    check_fd(&p);
    free_prob(&p);
}

/* Tall grid: the backward's checkpoint blocks (K ~ sqrt(X/2)) end unevenly. */
static void test_fd_tall(void **s)
{
    (void)s;
    jdims j = {.B = 1, .X = 9, .Y = 2, .DK = 2, .DV = 2, .JQ = 1, .JK = 1, .JV = 1, .JT = 2,
               .JO = 1};
    prob p = make_prob(j, 0, 1, 1, 1, 5);
    check_fd(&p);
    free_prob(&p);
}

/* ---- independent forward: sum over paths -------------------------------- */

typedef struct pathsum {
    const prob *p;
    int b;
    double *Y, *Cr, *Cb;
} pathsum;

static const double *at(const prob *p, int i, int b, int x, int y)
{
    size_t node = ((size_t)b * p->d.X + x) * p->d.Y + y;
    return p->t[i] + node * node_elems(&p->d, i);
}

/* State C ([DK,DV,JT]) enters node (x,y) from the left (dir 0) or the top
 * (dir 1): it is marked into y_{x,y} and carried on along every onward
 * edge, leaving the grid into C_right / C_bottom. */
static void walk(const pathsum *ps, int x, int y, int dir, const double *C)
{
    const prob *p = ps->p;
    const plstm_core2d_desc *d = &p->d;
    const int DK = d->DK, DV = d->DV, JQ = d->JQ, JT = d->JT, JO = d->JO;
    const size_t sz = (size_t)DK * DV * JT;
    if (x == d->X || y == d->Y) {
        double *dst = x == d->X ? ps->Cr + ((size_t)ps->b * d->Y + y) * sz
                                : ps->Cb + ((size_t)ps->b * d->X + x) * sz;
        for (size_t e = 0; e < sz; e++)
            dst[e] += C[e];
        return;
    }
    const double *q = at(p, T_Q, ps->b, x, y);
    const double *M = at(p, dir ? T_MU : T_ML, ps->b, x, y);
    double *yo = ps->Y + (((size_t)ps->b * d->X + x) * d->Y + y) * DV * JO;
    for (int v = 0; v < DV; v++)
        for (int o = 0; o < JO; o++)
            for (int dd = 0; dd < DK; dd++)
                for (int pp = 0; pp < JQ; pp++)
                    for (int t = 0; t < JT; t++)
                        yo[v * JO + o] += d->scale * q[dd * JQ + pp] *
                                          M[(o * JQ + pp) * JT + t] * C[(dd * DV + v) * JT + t];
    int tr[2] = {dir ? T_TRU : T_TRL, dir ? T_TDU : T_TDL}; /* to right, to down */
    double *Cn = tu_calloc(sz, sizeof(double));
    for (int k = 0; k < 2; k++) {
        if (!p->t[tr[k]])
            continue;
        const double *T = at(p, tr[k], ps->b, x, y);
        for (int n = 0; n < DK * DV; n++)
            for (int t = 0; t < JT; t++) {
                double acc = 0;
                for (int u = 0; u < JT; u++)
                    acc += T[t * JT + u] * C[n * JT + u];
                Cn[n * JT + t] = acc;
            }
        walk(ps, k ? x : x + 1, k ? y + 1 : y, k, Cn);
    }
    free(Cn);
}

static void path_forward(const prob *p, double *Y, double *Cr, double *Cb)
{
    const plstm_core2d_desc *d = &p->d;
    const int DK = d->DK, DV = d->DV, JQ = d->JQ, JK = d->JK, JV = d->JV, JT = d->JT,
              JO = d->JO;
    const size_t sz = (size_t)DK * DV * JT;
    double *C = tu_calloc(sz, sizeof(double));
    for (int b = 0; b < d->B; b++) {
        pathsum ps = {p, b, Y, Cr, Cb};
        for (int y = 0; y < d->Y; y++)
            if (p->t[T_C0L])
                walk(&ps, 0, y, 0, p->t[T_C0L] + ((size_t)b * d->Y + y) * sz);
        for (int x = 0; x < d->X; x++)
            if (p->t[T_C0T])
                walk(&ps, x, 0, 1, p->t[T_C0T] + ((size_t)b * d->X + x) * sz);
        for (int x = 0; x < d->X; x++)
            for (int y = 0; y < d->Y; y++) {
                const double *q = at(p, T_Q, b, x, y), *k = at(p, T_K, b, x, y);
                const double *v = at(p, T_V, b, x, y), *D = at(p, T_D, b, x, y);
                for (int dir = 0; dir < 2; dir++) {
                    const double *S = at(p, dir ? T_SD : T_SR, b, x, y);
                    for (int dd = 0; dd < DK; dd++)
                        for (int vv = 0; vv < DV; vv++)
                            for (int t = 0; t < JT; t++) {
                                double acc = 0;
                                for (int a = 0; a < JK; a++)
                                    for (int c = 0; c < JV; c++)
                                        acc += S[(t * JK + a) * JV + c] * k[dd * JK + a] *
                                               v[vv * JV + c];
                                C[(dd * DV + vv) * JT + t] = acc;
                            }
                    walk(&ps, dir ? x : x + 1, dir ? y + 1 : y, dir, C);
                }
                double *yo = Y + (((size_t)b * d->X + x) * d->Y + y) * DV * JO;
                for (int vv = 0; vv < DV; vv++)
                    for (int o = 0; o < JO; o++)
                        for (int dd = 0; dd < DK; dd++)
                            for (int pp = 0; pp < JQ; pp++)
                                for (int a = 0; a < JK; a++)
                                    for (int c = 0; c < JV; c++)
                                        yo[vv * JO + o] += d->scale * q[dd * JQ + pp] *
                                                           D[((o * JQ + pp) * JK + a) * JV + c] *
                                                           k[dd * JK + a] * v[vv * JV + c];
            }
    }
    free(C);
}

static void check_paths(prob *p)
{
    double *Y = tu_calloc(p->ny, sizeof(double)), *Y2 = tu_calloc(p->ny, sizeof(double));
    double *Cr = tu_calloc(p->ncr, sizeof(double)), *Cr2 = tu_calloc(p->ncr, sizeof(double));
    double *Cb = tu_calloc(p->ncb, sizeof(double)), *Cb2 = tu_calloc(p->ncb, sizeof(double));
    run_forward(p, Y, Cr, Cb);
    path_forward(p, Y2, Cr2, Cb2);
    TU_ASSERT_CLOSE(tu_rel_err_f64(Y, Y2, p->ny), 1e-12, "Y vs paths");
    TU_ASSERT_CLOSE(tu_rel_err_f64(Cr, Cr2, p->ncr), 1e-12, "C_right vs paths");
    TU_ASSERT_CLOSE(tu_rel_err_f64(Cb, Cb2, p->ncb), 1e-12, "C_bottom vs paths");
    free(Y), free(Y2), free(Cr), free(Cr2), free(Cb), free(Cb2);
}

static void test_paths(void **s)
{
    (void)s;
    jdims j = {.B = 2, .X = 3, .Y = 4, .DK = 2, .DV = 3, .JQ = 2, .JK = 2, .JV = 2, .JT = 2,
               .JO = 2};
    prob p = make_prob(j, 0, 1, 1, 1, 10);
    check_paths(&p);
    free_prob(&p);
    prob p2 = make_prob(J1, 0, 0, 1, 0, 11);
    check_paths(&p2);
    free_prob(&p2);
}

/* ---- F32 equals F64 ------------------------------------------------------ */

static void test_f32(void **s)
{
    (void)s;
    jdims j = {.B = 3, .X = 6, .Y = 7, .DK = 4, .DV = 5, .JQ = 2, .JK = 1, .JV = 2, .JT = 2,
               .JO = 2};
    prob p = make_prob(j, 0, 1, 1, 1, 20);
    double *Y = tu_calloc(p.ny, sizeof(double)), *Cr = tu_calloc(p.ncr, sizeof(double));
    double *Cb = tu_calloc(p.ncb, sizeof(double));
    run_forward(&p, Y, Cr, Cb);
    double *g[NT];
    run_backward(&p, g);

    void *f[NT] = {0}, *gf[NT] = {0};
    for (int i = 0; i < NT; i++)
        if (p.t[i]) {
            f[i] = tu_calloc(p.n[i], sizeof(float));
            gf[i] = tu_calloc(p.n[i], sizeof(float));
            tu_f64_to_f32(p.t[i], f[i], p.n[i]);
        }
    float *Yf = tu_calloc(p.ny, sizeof(float)), *Crf = tu_calloc(p.ncr, sizeof(float));
    float *Cbf = tu_calloc(p.ncb, sizeof(float)), *dYf = tu_calloc(p.ny, sizeof(float));
    float *dCrf = tu_calloc(p.ncr, sizeof(float)), *dCbf = tu_calloc(p.ncb, sizeof(float));
    tu_f64_to_f32(p.dY, dYf, p.ny);
    tu_f64_to_f32(p.dCr, dCrf, p.ncr);
    tu_f64_to_f32(p.dCb, dCbf, p.ncb);
    plstm_core2d_desc d = p.d;
    d.dtype = PLSTM_F32;
    plstm_core2d_inputs in = inputs_of(f);
    plstm_core2d_outputs out = {.Y = Yf, .C_right = Crf, .C_bottom = Cbf};
    TU_OK(plstm_core2d_forward(g_ctx, &d, &in, &out));
    plstm_core2d_cotangents dout = {.Y = dYf, .C_right = dCrf, .C_bottom = dCbf};
    plstm_core2d_grads gr = {gf[T_Q],   gf[T_K],   gf[T_V],   gf[T_SR],  gf[T_SD],
                             gf[T_TRL], gf[T_TDU], gf[T_TDL], gf[T_TRU], gf[T_ML],
                             gf[T_MU],  gf[T_D],   gf[T_C0L], gf[T_C0T]};
    TU_OK(plstm_core2d_backward(g_ctx, &d, &in, &dout, &gr));

    float *tmp = tu_calloc(p.ny + p.ncr + p.ncb, sizeof(float));
    tu_f64_to_f32(Y, tmp, p.ny);
    TU_ASSERT_CLOSE(tu_rel_err_f32(Yf, tmp, p.ny), 1e-5, "Y f32");
    tu_f64_to_f32(Cr, tmp, p.ncr);
    TU_ASSERT_CLOSE(tu_rel_err_f32(Crf, tmp, p.ncr), 1e-5, "C_right f32");
    tu_f64_to_f32(Cb, tmp, p.ncb);
    TU_ASSERT_CLOSE(tu_rel_err_f32(Cbf, tmp, p.ncb), 1e-5, "C_bottom f32");
    free(tmp);
    for (int i = 0; i < NT; i++) {
        if (!p.t[i])
            continue;
        float *gd = tu_calloc(p.n[i], sizeof(float));
        tu_f64_to_f32(g[i], gd, p.n[i]);
        TU_ASSERT_CLOSE(tu_rel_err_f32(gf[i], gd, p.n[i]), 1e-5, tname[i]);
        free(gd), free(g[i]), free(f[i]), free(gf[i]);
    }
    free(Y), free(Cr), free(Cb), free(Yf), free(Crf), free(Cbf), free(dYf), free(dCrf),
        free(dCbf);
    free_prob(&p);
}

/* Threads split the batch; every batch entry is computed the same way. */
static void test_threads_identical(void **s)
{
    (void)s;
    jdims j = {.B = 5, .X = 4, .Y = 6, .DK = 3, .DV = 2, .JQ = 1, .JK = 2, .JV = 1, .JT = 2,
               .JO = 1};
    prob p = make_prob(j, 0, 1, 1, 1, 30);
    double *Y1 = tu_calloc(p.ny, sizeof(double)), *Y3 = tu_calloc(p.ny, sizeof(double));
    double *Cr = tu_calloc(p.ncr, sizeof(double)), *Cb = tu_calloc(p.ncb, sizeof(double));
    TU_OK(plstm_context_set_threads(g_ctx, 1));
    run_forward(&p, Y1, Cr, Cb);
    TU_OK(plstm_context_set_threads(g_ctx, 3));
    run_forward(&p, Y3, Cr, Cb);
    TU_OK(plstm_context_set_threads(g_ctx, 0));
    assert_memory_equal(Y1, Y3, p.ny * sizeof(double));
    free(Y1), free(Y3), free(Cr), free(Cb);
    free_prob(&p);
}

/* ---- fused four-orientation form ---------------------------------------- */

/* dst[b][x][y] = src[b][flip x][flip y] (n doubles per node); batch b of src
 * starts at src + b*sstride doubles. */
static void flip(double *dst, const double *src, size_t sstride, const plstm_core2d_desc *d,
                 size_t n, int o)
{
    for (int b = 0; b < d->B; b++)
        for (int x = 0; x < d->X; x++)
            for (int y = 0; y < d->Y; y++) {
                int sx = (o & 1) ? d->X - 1 - x : x, sy = (o & 2) ? d->Y - 1 - y : y;
                memcpy(dst + (((size_t)b * d->X + x) * d->Y + y) * n,
                       src + b * sstride + ((size_t)sx * d->Y + sy) * n, n * sizeof(double));
            }
}

static void fused_expected(const prob *p, double *Y)
{
    const plstm_core2d_desc *d = &p->d;
    const size_t grid = (size_t)d->X * d->Y, nodes = d->B * grid;
    double *ft[NT] = {0};
    double *Yo = tu_calloc(p->ny, sizeof(double)), *Yu = tu_calloc(p->ny, sizeof(double));
    double *zeroD = tu_calloc(p->n[T_D], sizeof(double));
    for (int i = T_Q; i <= T_MU; i++)
        if (p->t[i])
            ft[i] = tu_calloc(nodes * node_elems(d, i), sizeof(double));
    for (int o = 0; o < 4; o++) {
        for (int i = T_Q; i <= T_MU; i++) {
            if (!p->t[i])
                continue;
            size_t n = node_elems(d, i);
            if (i <= T_V)
                flip(ft[i], p->t[i], grid * n, d, n, o);
            else
                flip(ft[i], p->t[i] + o * grid * n, 4 * grid * n, d, n, o);
        }
        ft[T_D] = zeroD;
        plstm_core2d_inputs in = inputs_of((void *const *)ft);
        plstm_core2d_outputs out = {.Y = Yo};
        TU_OK(plstm_core2d_forward(g_ctx, d, &in, &out));
        flip(Yu, Yo, grid * d->DV * d->JO, d, d->DV * d->JO, o);
        for (size_t e = 0; e < p->ny; e++)
            Y[e] += Yu[e];
    }
    /* direct term once: the plain core with zero sources is exactly q⋆D⋆kv */
    double *zeroS = tu_calloc(nodes * node_elems(d, T_SR), sizeof(double));
    free(ft[T_SR]);
    free(ft[T_SD]);
    ft[T_SR] = ft[T_SD] = zeroS;
    double *dt[NT] = {p->t[T_Q], p->t[T_K], p->t[T_V], zeroS, zeroS, ft[T_TRL], ft[T_TDU],
                      ft[T_TDL], ft[T_TRU], ft[T_ML], ft[T_MU], p->t[T_D]};
    plstm_core2d_inputs in = inputs_of((void *const *)dt);
    plstm_core2d_outputs out = {.Y = Yo};
    TU_OK(plstm_core2d_forward(g_ctx, d, &in, &out));
    for (size_t e = 0; e < p->ny; e++)
        Y[e] += Yo[e];
    for (int i = T_Q; i <= T_MU; i++)
        if (i != T_SR && i != T_SD)
            free(ft[i]);
    free(zeroS), free(zeroD), free(Yo), free(Yu);
}

static void test_fused_vs_flips(void **s)
{
    (void)s;
    jdims j = {.B = 2, .X = 4, .Y = 3, .DK = 2, .DV = 3, .JQ = 2, .JK = 1, .JV = 2, .JT = 2,
               .JO = 2};
    for (int tdl = 0; tdl < 2; tdl++) {
        prob p = make_prob(j, 1, tdl, 1, 0, 40 + tdl);
        double *Y = tu_calloc(p.ny, sizeof(double)), *Ye = tu_calloc(p.ny, sizeof(double));
        run_forward(&p, Y, NULL, NULL);
        fused_expected(&p, Ye);
        TU_ASSERT_CLOSE(tu_rel_err_f64(Y, Ye, p.ny), 1e-13, "fused4 vs four flipped calls");
        free(Y), free(Ye);
        free_prob(&p);
    }
}

static void test_fused_fd(void **s)
{
    (void)s;
    jdims j = {.B = 2, .X = 3, .Y = 4, .DK = 2, .DV = 2, .JQ = 2, .JK = 2, .JV = 1, .JT = 2,
               .JO = 1};
    prob p = make_prob(j, 1, 1, 1, 0, 50);
    check_fd(&p);
    free_prob(&p);
    prob p2 = make_prob(J1, 1, 1, 0, 0, 51);
    check_fd(&p2);
    free_prob(&p2);
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
        cmocka_unit_test(test_fd_J2),         cmocka_unit_test(test_fd_J1),
        cmocka_unit_test(test_fd_no_Tdl),     cmocka_unit_test(test_fd_no_Tru),
        cmocka_unit_test(test_fd_tall),       cmocka_unit_test(test_paths),
        cmocka_unit_test(test_f32),           cmocka_unit_test(test_threads_identical),
        cmocka_unit_test(test_fused_vs_flips), cmocka_unit_test(test_fused_fd),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
