/* The tiled parallel 2D core (plstm-math.md §3.3–3.5) against the sequential
 * recurrence (§3.2): forward (Y and border states) and every gradient, on
 * random inputs with odd grid sizes (partial tiles), J > 1, absent T_dl /
 * T_ru, with and without initial states and border outputs, tile sides 1, 2,
 * 4, 8 and larger than the grid; F64 to 1e-10, F32 to 1e-5. Also a direct
 * finite-difference check of the tiled backward. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_Q, T_K, T_V, T_SR, T_SD, T_TRL, T_TDU, T_TDL, T_TRU, T_ML, T_MU, T_D, T_C0L, T_C0T, NT };
static const char *const tname[NT] = {"Q",  "K",    "V",   "S_r", "S_d", "T_rl", "T_du",
                                      "T_dl", "T_ru", "M_l", "M_u", "D",   "C0_left", "C0_top"};

typedef struct cfg {
    int B, X, Y, DK, DV, JQ, JK, JV, JT, JO;
    int tile;
    int tdl, tru; /* T_dl / T_ru present            */
    int c0;       /* initial states given          */
    int cout;     /* border outputs and their dC   */
} cfg;

static plstm_context *g_ctx;

static size_t elems(const cfg *c, int i)
{
    size_t DK = c->DK, DV = c->DV, JQ = c->JQ, JK = c->JK, JV = c->JV, JT = c->JT, JO = c->JO;
    size_t nodes = (size_t)c->B * c->X * c->Y;
    switch (i) {
    case T_Q: return nodes * DK * JQ;
    case T_K: return nodes * DK * JK;
    case T_V: return nodes * DV * JV;
    case T_SR: case T_SD: return nodes * JT * JK * JV;
    case T_TRL: case T_TDU: case T_TDL: case T_TRU: return nodes * JT * JT;
    case T_ML: case T_MU: return nodes * JO * JQ * JT;
    case T_D: return nodes * JO * JQ * JK * JV;
    case T_C0L: return (size_t)c->B * c->Y * DK * DV * JT;
    default: return (size_t)c->B * c->X * DK * DV * JT;
    }
}

/* One problem in F64 plus its copy in the run dtype. */
typedef struct prob {
    cfg c;
    plstm_dtype dt;
    size_t esz;
    double *t[NT]; /* NULL = absent input */
    void *r[NT];   /* run-dtype copies */
    size_t n[NT];
    void *dY, *dCr, *dCb; /* cotangents (run dtype), dCr/dCb NULL unless cout */
    size_t ny, ncr, ncb;
} prob;

static void *to_dtype(const double *src, size_t n, plstm_dtype dt)
{
    if (dt == PLSTM_F64) {
        double *d = tu_calloc(n, sizeof(double));
        memcpy(d, src, n * sizeof(double));
        return d;
    }
    float *f = tu_calloc(n, sizeof(float));
    tu_f64_to_f32(src, f, n);
    return f;
}

static void *rand_dtype(tu_rng *r, size_t n, plstm_dtype dt)
{
    double *x = tu_calloc(n, sizeof(double));
    tu_fill_f64(r, x, n, -1, 1);
    void *y = to_dtype(x, n, dt);
    free(x);
    return y;
}

static prob make_prob(cfg c, plstm_dtype dt, uint64_t seed)
{
    prob p;
    memset(&p, 0, sizeof p);
    p.c = c;
    p.dt = dt;
    p.esz = plstm_dtype_size(dt);
    tu_rng r;
    tu_rng_seed(&r, seed);
    for (int i = 0; i < NT; i++) {
        p.n[i] = elems(&c, i);
        if ((i == T_TDL && !c.tdl) || (i == T_TRU && !c.tru) ||
            ((i == T_C0L || i == T_C0T) && !c.c0))
            continue;
        p.t[i] = tu_calloc(p.n[i], sizeof(double));
        double a = (i >= T_TRL && i <= T_TRU) ? 0.6 : 1.0; /* keeps path sums bounded */
        tu_fill_f64(&r, p.t[i], p.n[i], -a, a);
        p.r[i] = to_dtype(p.t[i], p.n[i], dt);
    }
    p.ny = (size_t)c.B * c.X * c.Y * c.DV * c.JO;
    p.ncr = elems(&c, T_C0L);
    p.ncb = elems(&c, T_C0T);
    p.dY = rand_dtype(&r, p.ny, dt);
    if (c.cout) {
        p.dCr = rand_dtype(&r, p.ncr, dt);
        p.dCb = rand_dtype(&r, p.ncb, dt);
    }
    return p;
}

static void free_prob(prob *p)
{
    for (int i = 0; i < NT; i++) {
        free(p->t[i]);
        free(p->r[i]);
    }
    free(p->dY);
    free(p->dCr);
    free(p->dCb);
}

static plstm_core2d_desc desc_of(const prob *p, plstm_algo algo)
{
    const cfg *c = &p->c;
    return (plstm_core2d_desc){.dtype = p->dt, .B = c->B, .X = c->X, .Y = c->Y, .DK = c->DK,
                               .DV = c->DV, .JQ = c->JQ, .JK = c->JK, .JV = c->JV, .JT = c->JT,
                               .JO = c->JO, .scale = 0.7, .algo = algo, .tile = c->tile};
}

static plstm_core2d_inputs inputs_of(void *const t[NT])
{
    return (plstm_core2d_inputs){t[T_Q],   t[T_K],   t[T_V],   t[T_SR],  t[T_SD],
                                 t[T_TRL], t[T_TDU], t[T_TDL], t[T_TRU], t[T_ML],
                                 t[T_MU],  t[T_D],   t[T_C0L], t[T_C0T]};
}

/* Outputs of one algorithm: Y, C_right, C_bottom, and every gradient (also
 * those of absent T_dl / T_ru / initial states: the gradient at zero). */
typedef struct result {
    void *Y, *Cr, *Cb;
    void *g[NT];
} result;

static result run(const prob *p, plstm_algo algo)
{
    result res;
    memset(&res, 0, sizeof res);
    plstm_core2d_desc d = desc_of(p, algo);
    plstm_core2d_inputs in = inputs_of(p->r);
    res.Y = tu_calloc(p->ny, p->esz);
    if (p->c.cout) {
        res.Cr = tu_calloc(p->ncr, p->esz);
        res.Cb = tu_calloc(p->ncb, p->esz);
    }
    plstm_core2d_outputs out = {.Y = res.Y, .C_right = res.Cr, .C_bottom = res.Cb};
    TU_OK(plstm_core2d_forward(g_ctx, &d, &in, &out));
    for (int i = 0; i < NT; i++)
        res.g[i] = tu_calloc(p->n[i], p->esz);
    plstm_core2d_grads gr = {res.g[T_Q],   res.g[T_K],   res.g[T_V],   res.g[T_SR],
                             res.g[T_SD],  res.g[T_TRL], res.g[T_TDU], res.g[T_TDL],
                             res.g[T_TRU], res.g[T_ML],  res.g[T_MU],  res.g[T_D],
                             res.g[T_C0L], res.g[T_C0T]};
    plstm_core2d_cotangents dout = {.Y = p->dY, .C_right = p->dCr, .C_bottom = p->dCb};
    TU_OK(plstm_core2d_backward(g_ctx, &d, &in, &dout, &gr));
    return res;
}

static void free_result(result *r)
{
    free(r->Y);
    free(r->Cr);
    free(r->Cb);
    for (int i = 0; i < NT; i++)
        free(r->g[i]);
}

static double rel_err(const prob *p, const void *a, const void *b, size_t n)
{
    return p->dt == PLSTM_F64 ? tu_rel_err_f64(a, b, n) : tu_rel_err_f32(a, b, n);
}

/* Tiled vs sequential on one configuration. */
static void check(cfg c, plstm_dtype dt, uint64_t seed)
{
    const double tol = dt == PLSTM_F64 ? 1e-10 : 1e-5;
    prob p = make_prob(c, dt, seed);
    result s = run(&p, PLSTM_ALGO_SEQUENTIAL);
    result t = run(&p, PLSTM_ALGO_PARALLEL);
    char what[160];
#define CASE(name)                                                                           \
    snprintf(what, sizeof what, "%s (%dx%d J=%d%d%d%d%d tile %d tdl %d tru %d c0 %d cout %d %s)", \
             name, c.X, c.Y, c.JQ, c.JK, c.JV, c.JT, c.JO, c.tile, c.tdl, c.tru, c.c0, c.cout,  \
             dt == PLSTM_F64 ? "F64" : "F32")
    CASE("Y");
    TU_ASSERT_CLOSE(rel_err(&p, t.Y, s.Y, p.ny), tol, what);
    if (c.cout) {
        CASE("C_right");
        TU_ASSERT_CLOSE(rel_err(&p, t.Cr, s.Cr, p.ncr), tol, what);
        CASE("C_bottom");
        TU_ASSERT_CLOSE(rel_err(&p, t.Cb, s.Cb, p.ncb), tol, what);
    }
    for (int i = 0; i < NT; i++) {
        CASE(tname[i]);
        TU_ASSERT_CLOSE(rel_err(&p, t.g[i], s.g[i], p.n[i]), tol, what);
    }
#undef CASE
    free_result(&s);
    free_result(&t);
    free_prob(&p);
}

static const cfg J1 = {.B = 2, .X = 7, .Y = 5, .DK = 3, .DV = 4, .JQ = 1, .JK = 1, .JV = 1,
                       .JT = 1, .JO = 1, .tile = 4, .tdl = 1, .tru = 1, .c0 = 1, .cout = 1};
static const cfg J2 = {.B = 2, .X = 13, .Y = 9, .DK = 3, .DV = 2, .JQ = 2, .JK = 2, .JV = 1,
                       .JT = 2, .JO = 2, .tile = 4, .tdl = 1, .tru = 1, .c0 = 1, .cout = 1};

static void both(cfg c, uint64_t seed)
{
    check(c, PLSTM_F64, seed);
    check(c, PLSTM_F32, seed);
}

static void test_j1_odd(void **s)
{
    (void)s;
    both(J1, 1);
    cfg c = J1;
    c.X = 13, c.Y = 9;
    both(c, 2);
}

static void test_j2_odd(void **s)
{
    (void)s;
    both(J2, 3);
    cfg c = J2;
    c.JV = 2, c.JK = 1, c.JQ = 1, c.JO = 3; /* the other J dims > 1 */
    c.X = 7, c.Y = 5;
    both(c, 4);
}

static void test_optional(void **s)
{
    (void)s;
    const cfg base[2] = {J1, J2};
    for (int k = 0; k < 2; k++)
        for (int mask = 0; mask < 16; mask++) {
            cfg c = base[k];
            c.X = 7, c.Y = 6, c.B = 1;
            c.tdl = mask & 1, c.tru = (mask >> 1) & 1, c.c0 = (mask >> 2) & 1,
            c.cout = (mask >> 3) & 1;
            check(c, PLSTM_F64, 10 + mask);
        }
}

static void test_tile_sides(void **s)
{
    (void)s;
    const int tiles[] = {1, 2, 3, 4, 8, 16, 0};
    for (size_t k = 0; k < sizeof tiles / sizeof *tiles; k++) {
        cfg c = J1;
        c.tile = tiles[k];
        both(c, 20 + k);
        cfg c2 = J2;
        c2.X = 9, c2.Y = 7;
        c2.tile = tiles[k];
        check(c2, PLSTM_F64, 30 + k);
    }
}

/* Many batch entries and threads on one anti-diagonal; 1-pixel-wide grids. */
static void test_shapes(void **s)
{
    (void)s;
    cfg c = J1;
    c.B = 5, c.X = 11, c.Y = 10, c.tile = 3;
    both(c, 40);
    c.B = 2, c.X = 1, c.Y = 9;
    both(c, 41);
    c.X = 9, c.Y = 1;
    both(c, 42);
    c.X = 1, c.Y = 1, c.tile = 0;
    both(c, 43);
    /* more threads than batch entries: tiles of an anti-diagonal in parallel */
    TU_OK(plstm_context_set_threads(g_ctx, 3));
    c = J2;
    both(c, 44);
    TU_OK(plstm_context_set_threads(g_ctx, 0));
}

/* The tiled backward against central differences of the tiled forward (F64).
 * The loss is linear in every single input element, so the quotient is exact
 * up to rounding. */
static void test_fd(void **s)
{
    (void)s;
    cfg c = J2;
    c.B = 1, c.X = 5, c.Y = 3, c.DK = 2, c.DV = 2, c.tile = 2;
    prob p = make_prob(c, PLSTM_F64, 50);
    result t = run(&p, PLSTM_ALGO_PARALLEL);
    plstm_core2d_desc d = desc_of(&p, PLSTM_ALGO_PARALLEL);
    double *Y = tu_calloc(p.ny, sizeof(double)), *Cr = tu_calloc(p.ncr, sizeof(double)),
           *Cb = tu_calloc(p.ncb, sizeof(double));
    const double h = 1e-3;
    for (int i = 0; i < NT; i++) {
        double *x = p.r[i];
        if (!x)
            continue;
        double *fd = tu_calloc(p.n[i], sizeof(double));
        for (size_t e = 0; e < p.n[i]; e++) {
            double l[2];
            const double x0 = x[e];
            for (int sgn = 0; sgn < 2; sgn++) {
                x[e] = x0 + (sgn ? -h : h);
                plstm_core2d_inputs in = inputs_of(p.r);
                plstm_core2d_outputs out = {.Y = Y, .C_right = Cr, .C_bottom = Cb};
                TU_OK(plstm_core2d_forward(g_ctx, &d, &in, &out));
                double acc = 0;
                for (size_t k = 0; k < p.ny; k++)
                    acc += Y[k] * ((double *)p.dY)[k];
                for (size_t k = 0; k < p.ncr; k++)
                    acc += Cr[k] * ((double *)p.dCr)[k];
                for (size_t k = 0; k < p.ncb; k++)
                    acc += Cb[k] * ((double *)p.dCb)[k];
                l[sgn] = acc;
            }
            x[e] = x0;
            fd[e] = (l[0] - l[1]) / (2 * h);
        }
        TU_ASSERT_CLOSE(tu_rel_err_f64(t.g[i], fd, p.n[i]), 1e-8, tname[i]);
        free(fd);
    }
    free(Y), free(Cr), free(Cb);
    free_result(&t);
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
        cmocka_unit_test(test_j1_odd),     cmocka_unit_test(test_j2_odd),
        cmocka_unit_test(test_optional),   cmocka_unit_test(test_tile_sides),
        cmocka_unit_test(test_shapes),     cmocka_unit_test(test_fd),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
