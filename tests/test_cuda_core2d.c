/* The CUDA 2D core (plain and fused4, forward and backward) against the CPU
 * sequential recurrence (plstm-math.md §3.2, §3.7) in float64 on the same
 * inputs: odd grid sizes, J = 1 and J > 1 (JT = 3 takes the generic path),
 * with and without initial states, border cotangents and T_dl/T_ru. Every
 * device output is poisoned with NaN first, so an unwritten element fails.
 * Skips when the build has no CUDA backend or no GPU is present. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { T_Q, T_K, T_V, T_SR, T_SD, T_TRL, T_TDU, T_TDL, T_TRU, T_ML, T_MU, T_D, T_C0L, T_C0T, NT };
static const char *const tname[NT] = {"dQ",   "dK",   "dV",  "dS_r", "dS_d",    "dT_rl", "dT_du",
                                      "dT_dl", "dT_ru", "dM_l", "dM_u", "dD", "dC0_left", "dC0_top"};

typedef struct cfg {
    int B, X, Y, DK, DV, JQ, JK, JV, JT, JO;
    int fused, has_tdl, has_tru, has_c0, has_dc;
} cfg;

typedef struct prob {
    plstm_core2d_desc d;
    cfg c;
    double *t[NT];
    size_t n[NT];
    double *dY, *dCr, *dCb;
    size_t ny, ncr, ncb;
} prob;

static size_t node_elems(const cfg *c, int i)
{
    size_t DK = c->DK, DV = c->DV, JQ = c->JQ, JK = c->JK, JV = c->JV, JT = c->JT, JO = c->JO;
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

/* Values are rounded to float so the F32 device run sees the same inputs. */
static void fill(tu_rng *r, double *x, size_t n, double a)
{
    tu_fill_f64(r, x, n, -a, a);
    for (size_t i = 0; i < n; i++)
        x[i] = (double)(float)x[i];
}

static prob make_prob(cfg c, uint64_t seed)
{
    prob p;
    memset(&p, 0, sizeof p);
    p.c = c;
    p.d = (plstm_core2d_desc){.dtype = PLSTM_F64, .B = c.B, .X = c.X, .Y = c.Y, .DK = c.DK,
                              .DV = c.DV, .JQ = c.JQ, .JK = c.JK, .JV = c.JV, .JT = c.JT,
                              .JO = c.JO, .scale = 1.0 / sqrt((double)c.DK),
                              .algo = PLSTM_ALGO_SEQUENTIAL};
    tu_rng r;
    tu_rng_seed(&r, seed);
    size_t nodes = (size_t)c.B * c.X * c.Y;
    for (int i = 0; i < NT; i++) {
        if ((i == T_TDL && !c.has_tdl) || (i == T_TRU && !c.has_tru) ||
            ((i == T_C0L || i == T_C0T) && (!c.has_c0 || c.fused)))
            continue;
        size_t cnt = i == T_C0L ? (size_t)c.B * c.Y : i == T_C0T ? (size_t)c.B * c.X : nodes;
        if (c.fused && i >= T_SR && i <= T_MU)
            cnt *= 4;
        p.n[i] = cnt * node_elems(&c, i);
        p.t[i] = tu_calloc(p.n[i], sizeof(double));
        /* |T| <= 0.5 per edge keeps the sums over paths bounded */
        double a = (i >= T_TRL && i <= T_TRU) ? 0.5 / c.JT : 1.0;
        fill(&r, p.t[i], p.n[i], a);
    }
    p.ny = nodes * c.DV * c.JO;
    p.dY = tu_calloc(p.ny, sizeof(double));
    fill(&r, p.dY, p.ny, 1);
    if (!c.fused) {
        p.ncr = (size_t)c.B * c.Y * c.DK * c.DV * c.JT;
        p.ncb = (size_t)c.B * c.X * c.DK * c.DV * c.JT;
        if (c.has_dc) {
            p.dCr = tu_calloc(p.ncr, sizeof(double));
            p.dCb = tu_calloc(p.ncb, sizeof(double));
            fill(&r, p.dCr, p.ncr, 1);
            fill(&r, p.dCb, p.ncb, 1);
        }
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

static plstm_core2d_grads grads_of(void *const g[NT])
{
    return (plstm_core2d_grads){g[T_Q],   g[T_K],   g[T_V],   g[T_SR],  g[T_SD],
                                g[T_TRL], g[T_TDU], g[T_TDL], g[T_TRU], g[T_ML],
                                g[T_MU],  g[T_D],   g[T_C0L], g[T_C0T]};
}

/* Host results of one run: Y, C_right, C_bottom and the gradients. */
typedef struct result {
    double *Y, *Cr, *Cb, *g[NT];
} result;

static void free_result(result *r)
{
    free(r->Y);
    free(r->Cr);
    free(r->Cb);
    for (int i = 0; i < NT; i++)
        free(r->g[i]);
}

static plstm_context *g_cpu, *g_gpu;

/* Elements of gradient i: every gradient is requested, also of absent inputs
 * (T_dl/T_ru/C0 absent = 0 still have a gradient); fused4 has no C0. */
static size_t grad_elems(const prob *p, int i)
{
    const cfg *c = &p->c;
    if (i == T_C0L || i == T_C0T) {
        if (c->fused)
            return 0;
        return (i == T_C0L ? (size_t)c->B * c->Y : (size_t)c->B * c->X) * node_elems(c, i);
    }
    size_t cnt = (size_t)c->B * c->X * c->Y;
    if (c->fused && i >= T_SR && i <= T_MU)
        cnt *= 4;
    return cnt * node_elems(c, i);
}

static result run_cpu(const prob *p)
{
    result r;
    memset(&r, 0, sizeof r);
    plstm_core2d_inputs in = inputs_of((void *const *)p->t);
    r.Y = tu_calloc(p->ny, sizeof(double));
    void *g[NT];
    for (int i = 0; i < NT; i++)
        g[i] = r.g[i] = grad_elems(p, i) ? tu_calloc(grad_elems(p, i), sizeof(double)) : NULL;
    plstm_core2d_grads gr = grads_of(g);
    if (p->c.fused) {
        plstm_core2d_outputs out = {.Y = r.Y};
        TU_OK(plstm_core2d_fused4_forward(g_cpu, &p->d, &in, &out));
        plstm_core2d_cotangents dout = {.Y = p->dY};
        TU_OK(plstm_core2d_fused4_backward(g_cpu, &p->d, &in, &dout, &gr));
    } else {
        r.Cr = tu_calloc(p->ncr, sizeof(double));
        r.Cb = tu_calloc(p->ncb, sizeof(double));
        plstm_core2d_outputs out = {.Y = r.Y, .C_right = r.Cr, .C_bottom = r.Cb};
        TU_OK(plstm_core2d_forward(g_cpu, &p->d, &in, &out));
        plstm_core2d_cotangents dout = {.Y = p->dY, .C_right = p->dCr, .C_bottom = p->dCb};
        TU_OK(plstm_core2d_backward(g_cpu, &p->d, &in, &dout, &gr));
    }
    return r;
}

/* Device copy of host doubles in dtype dt (NULL for NULL). */
static void *to_dev(const double *h, size_t n, plstm_dtype dt)
{
    if (!h)
        return NULL;
    size_t es = plstm_dtype_size(dt);
    unsigned char *tmp = tu_calloc(n, es);
    for (size_t i = 0; i < n; i++) {
        if (dt == PLSTM_F32)
            ((float *)tmp)[i] = (float)h[i];
        else
            ((double *)tmp)[i] = h[i];
    }
    void *d = NULL;
    TU_OK(plstm_malloc(g_gpu, &d, n * es));
    TU_OK(plstm_copy_to_device(g_gpu, d, tmp, n * es));
    free(tmp);
    return d;
}

/* Device buffer of n NaNs (poison: every element must be overwritten). */
static void *dev_nan(size_t n, plstm_dtype dt)
{
    if (!n)
        return NULL;
    double *h = tu_calloc(n, sizeof(double));
    for (size_t i = 0; i < n; i++)
        h[i] = NAN;
    void *d = to_dev(h, n, dt);
    free(h);
    return d;
}

/* Host doubles of a device buffer, which is freed. */
static double *from_dev(void *d, size_t n, plstm_dtype dt)
{
    if (!d)
        return NULL;
    size_t es = plstm_dtype_size(dt);
    unsigned char *tmp = tu_calloc(n, es);
    TU_OK(plstm_copy_to_host(g_gpu, tmp, d, n * es));
    double *h = tu_calloc(n, sizeof(double));
    for (size_t i = 0; i < n; i++)
        h[i] = dt == PLSTM_F32 ? (double)((float *)tmp)[i] : ((double *)tmp)[i];
    free(tmp);
    plstm_free(g_gpu, d);
    return h;
}

static result run_gpu(const prob *p, plstm_dtype dt)
{
    result r;
    memset(&r, 0, sizeof r);
    plstm_core2d_desc d = p->d;
    d.dtype = dt;
    d.algo = PLSTM_ALGO_AUTO;
    void *t[NT], *g[NT];
    for (int i = 0; i < NT; i++) {
        t[i] = to_dev(p->t[i], p->n[i], dt);
        g[i] = dev_nan(grad_elems(p, i), dt);
    }
    plstm_core2d_inputs in = inputs_of(t);
    plstm_core2d_grads gr = grads_of(g);
    void *Y = dev_nan(p->ny, dt), *dY = to_dev(p->dY, p->ny, dt);
    if (p->c.fused) {
        plstm_core2d_outputs out = {.Y = Y};
        TU_OK(plstm_core2d_fused4_forward(g_gpu, &d, &in, &out));
        plstm_core2d_cotangents dout = {.Y = dY};
        TU_OK(plstm_core2d_fused4_backward(g_gpu, &d, &in, &dout, &gr));
    } else {
        void *Cr = dev_nan(p->ncr, dt), *Cb = dev_nan(p->ncb, dt);
        void *dCr = to_dev(p->dCr, p->ncr, dt), *dCb = to_dev(p->dCb, p->ncb, dt);
        plstm_core2d_outputs out = {.Y = Y, .C_right = Cr, .C_bottom = Cb};
        TU_OK(plstm_core2d_forward(g_gpu, &d, &in, &out));
        plstm_core2d_cotangents dout = {.Y = dY, .C_right = dCr, .C_bottom = dCb};
        TU_OK(plstm_core2d_backward(g_gpu, &d, &in, &dout, &gr));
        r.Cr = from_dev(Cr, p->ncr, dt);
        r.Cb = from_dev(Cb, p->ncb, dt);
        plstm_free(g_gpu, dCr);
        plstm_free(g_gpu, dCb);
    }
    TU_OK(plstm_context_synchronize(g_gpu));
    r.Y = from_dev(Y, p->ny, dt);
    plstm_free(g_gpu, dY);
    for (int i = 0; i < NT; i++) {
        plstm_free(g_gpu, t[i]);
        r.g[i] = from_dev(g[i], grad_elems(p, i), dt);
    }
    return r;
}

static double worst;

static void expect_close(const double *gpu, const double *cpu, size_t n, double tol,
                         const char *what, const char *label)
{
    double e = tu_rel_err_f64(gpu, cpu, n);
    print_message("  %-34s %-9s rel err %.2e\n", label, what, e);
    if (e > worst || e != e)
        worst = e;
    char msg[96];
    snprintf(msg, sizeof msg, "%s %s", label, what);
    TU_ASSERT_CLOSE(e, tol, msg);
}

static void check(cfg c, uint64_t seed, const char *label)
{
    prob p = make_prob(c, seed);
    result ref = run_cpu(&p);
    const plstm_dtype dts[2] = {PLSTM_F32, PLSTM_F64};
    const double tols[2] = {1e-4, 1e-10};
    for (int k = 0; k < 2; k++) {
        result got = run_gpu(&p, dts[k]);
        char lab[64];
        snprintf(lab, sizeof lab, "%s %s", label, k ? "f64" : "f32");
        expect_close(got.Y, ref.Y, p.ny, tols[k], "Y", lab);
        if (!c.fused) {
            expect_close(got.Cr, ref.Cr, p.ncr, tols[k], "C_right", lab);
            expect_close(got.Cb, ref.Cb, p.ncb, tols[k], "C_bottom", lab);
        }
        for (int i = 0; i < NT; i++)
            if (ref.g[i])
                expect_close(got.g[i], ref.g[i], grad_elems(&p, i), tols[k], tname[i], lab);
        free_result(&got);
    }
    free_result(&ref);
    free_prob(&p);
}

#define NEED_GPU()                                                        \
    do {                                                                  \
        if (!g_gpu) {                                                     \
            print_message("no CUDA device: skipped\n");                  \
            skip();                                                       \
        }                                                                 \
    } while (0)

static void test_j1_small_with_states(void **s)
{
    (void)s;
    NEED_GPU();
    cfg c = {.B = 2, .X = 7, .Y = 5, .DK = 8, .DV = 4, .JQ = 1, .JK = 1, .JV = 1, .JT = 1, .JO = 1,
             .has_tdl = 1, .has_tru = 1, .has_c0 = 1, .has_dc = 1};
    check(c, 11, "J1 7x5 C0 dC");
}

static void test_j1_odd_no_tdl(void **s)
{
    (void)s;
    NEED_GPU();
    cfg c = {.B = 3, .X = 33, .Y = 17, .DK = 32, .DV = 16, .JQ = 1, .JK = 1, .JV = 1, .JT = 1,
             .JO = 1, .has_tdl = 0, .has_tru = 1, .has_c0 = 0, .has_dc = 0};
    check(c, 12, "J1 33x17 no T_dl");
}

static void test_jn_odd_dk(void **s)
{
    (void)s;
    NEED_GPU();
    /* DK = 5: no aligned lane segments, the mark read uses per-lane atomics */
    cfg c = {.B = 2, .X = 7, .Y = 5, .DK = 5, .DV = 6, .JQ = 2, .JK = 2, .JV = 3, .JT = 2, .JO = 2,
             .has_tdl = 1, .has_tru = 0, .has_c0 = 1, .has_dc = 1};
    check(c, 13, "J>1 7x5 DK5 no T_ru");
}

static void test_jt3_generic(void **s)
{
    (void)s;
    NEED_GPU();
    cfg c = {.B = 1, .X = 6, .Y = 9, .DK = 64, .DV = 3, .JQ = 1, .JK = 2, .JV = 1, .JT = 3, .JO = 2,
             .has_tdl = 1, .has_tru = 1, .has_c0 = 1, .has_dc = 1};
    check(c, 14, "JT3 6x9 DK64");
}

static void test_fused4(void **s)
{
    (void)s;
    NEED_GPU();
    cfg c = {.B = 2, .X = 9, .Y = 13, .DK = 16, .DV = 8, .JQ = 1, .JK = 1, .JV = 1, .JT = 1,
             .JO = 1, .fused = 1, .has_tdl = 1, .has_tru = 1};
    check(c, 15, "fused4 J1 9x13");
}

static void test_fused4_jn(void **s)
{
    (void)s;
    NEED_GPU();
    cfg c = {.B = 1, .X = 5, .Y = 7, .DK = 4, .DV = 5, .JQ = 2, .JK = 1, .JV = 2, .JT = 4, .JO = 3,
             .fused = 1, .has_tdl = 0, .has_tru = 1};
    check(c, 16, "fused4 JT4 5x7");
}

static int setup(void **s)
{
    (void)s;
    if (plstm_context_create(&g_cpu, PLSTM_BACKEND_CPU, 0) != PLSTM_OK)
        return -1;
    g_gpu = NULL;
    if (plstm_backend_available(PLSTM_BACKEND_CUDA) &&
        plstm_context_create(&g_gpu, PLSTM_BACKEND_CUDA, 0) != PLSTM_OK)
        return -1;
    return 0;
}

static int teardown(void **s)
{
    (void)s;
    if (g_gpu)
        print_message("worst relative error over all checks: %.2e\n", worst);
    plstm_context_destroy(g_gpu);
    plstm_context_destroy(g_cpu);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_j1_small_with_states),
        cmocka_unit_test(test_j1_odd_no_tdl),
        cmocka_unit_test(test_jn_odd_dk),
        cmocka_unit_test(test_jt3_generic),
        cmocka_unit_test(test_fused4),
        cmocka_unit_test(test_fused4_jn),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
