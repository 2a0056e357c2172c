/* AdamW, the learning-rate schedule and gradient clipping against the
 * textbook formulas evaluated here in double. */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Layout: "w" [3,5] decayed, "b" [5] NO_DECAY (32 elements with padding). */
static plstm_params *make_layout(void)
{
    plstm_params *p = NULL;
    TU_OK(plstm_params_create(&p));
    const int64_t ws[2] = {3, 5}, bs[1] = {5};
    TU_OK(plstm_params_declare(p, "w", 2, ws, 0, NULL));
    TU_OK(plstm_params_declare(p, "b", 1, bs, PLSTM_PARAM_NO_DECAY, NULL));
    return p;
}

/* Reference AdamW (decoupled decay) for one element, all in double. */
static void ref_adamw(double *p, double *m, double *v, double g, double lr, int t, int decay,
                      double b1, double b2, double eps, double wd)
{
    *m = b1 * *m + (1 - b1) * g;
    *v = b2 * *v + (1 - b2) * g * g;
    const double mhat = *m / (1 - pow(b1, t)), vhat = *v / (1 - pow(b2, t));
    *p -= lr * (mhat / (sqrt(vhat) + eps) + (decay ? wd * *p : 0.0));
}

static void test_adamw_two_steps(void **state)
{
    (void)state;
    plstm_params *L = make_layout();
    const size_t n = plstm_params_size(L);
    assert_int_equal(n, 32);
    float *p = tu_calloc(n, 4), *g = tu_calloc(n, 4), *m = tu_calloc(n, 4), *v = tu_calloc(n, 4);
    float *mask = tu_calloc(n, 4);
    double *rp = tu_calloc(n, 8), *rm = tu_calloc(n, 8), *rv = tu_calloc(n, 8);
    TU_OK(plstm_adamw_decay_mask(L, mask));
    const plstm_param_info *w = plstm_params_find(L, "w"), *b = plstm_params_find(L, "b");
    tu_rng r;
    tu_rng_seed(&r, 7);
    for (size_t i = 0; i < w->numel; i++)
        p[w->offset + i] = (float)tu_rng_uniform(&r, -1, 1);
    for (size_t i = 0; i < b->numel; i++)
        p[b->offset + i] = (float)tu_rng_uniform(&r, -1, 1);
    for (size_t i = 0; i < n; i++)
        rp[i] = p[i];
    const plstm_adamw_config cfg = {0.9, 0.999, 1e-8, 0.05};
    const double lrs[2] = {0.1, 0.05};
    for (int step = 0; step < 2; step++) {
        memset(g, 0, n * 4);
        for (size_t i = 0; i < w->numel; i++)
            g[w->offset + i] = (float)tu_rng_uniform(&r, -2, 2);
        for (size_t i = 0; i < b->numel; i++) /* tiny gradients: eps matters */
            g[b->offset + i] = (float)tu_rng_uniform(&r, -1e-7, 1e-7);
        float before[32];
        memcpy(before, p, sizeof before);
        TU_OK(plstm_adamw_step(&cfg, lrs[step], step, n, p, g, m, v, mask));
        for (size_t i = 0; i < n; i++) {
            const int in_w = i >= w->offset && i < w->offset + w->numel;
            const double p0 = rp[i];
            ref_adamw(&rp[i], &rm[i], &rv[i], g[i], lrs[step], step + 1, in_w, 0.9, 0.999, 1e-8,
                      0.05);
            /* the change, which is what the formula defines */
            const double want = rp[i] - p0, got = (double)p[i] - (double)before[i];
            if (fabs(got - want) > 1e-5 * fabs(want) + 2e-7)
                fail_msg("step %d element %zu: change %.9g, expected %.9g", step, i, got, want);
            assert_true(fabs(m[i] - rm[i]) <= 1e-6 * fabs(rm[i]) + 1e-30);
            assert_true(fabs(v[i] - rv[i]) <= 1e-6 * fabs(rv[i]) + 1e-30);
        }
    }
    /* padding stays zero */
    for (size_t i = w->numel; i < b->offset; i++)
        assert_true(p[i] == 0.0f && m[i] == 0.0f && v[i] == 0.0f);
    free(p), free(g), free(m), free(v), free(mask), free(rp), free(rm), free(rv);
    plstm_params_destroy(L);
}

static void test_adamw_decay_only_on_weights(void **state)
{
    (void)state;
    plstm_params *L = make_layout();
    const size_t n = plstm_params_size(L);
    float *p = tu_calloc(n, 4), *g = tu_calloc(n, 4), *m = tu_calloc(n, 4), *v = tu_calloc(n, 4);
    float *mask = tu_calloc(n, 4), *p0 = tu_calloc(n, 4);
    TU_OK(plstm_adamw_decay_mask(L, mask));
    const plstm_param_info *w = plstm_params_find(L, "w"), *b = plstm_params_find(L, "b");
    for (size_t i = 0; i < w->numel; i++)
        p[w->offset + i] = 0.5f + (float)i;
    for (size_t i = 0; i < b->numel; i++)
        p[b->offset + i] = -1.5f - (float)i;
    memcpy(p0, p, n * 4);
    const plstm_adamw_config cfg = {0.9, 0.999, 1e-8, 0.05};
    TU_OK(plstm_adamw_step(&cfg, 0.01, 0, n, p, g, m, v, mask)); /* zero gradient */
    for (size_t i = 0; i < w->numel; i++) {
        const double want = (double)p0[w->offset + i] * (1.0 - 0.01 * 0.05);
        assert_true(fabs(p[w->offset + i] - want) <= 1e-6 * fabs(want));
    }
    for (size_t i = 0; i < b->numel; i++)
        assert_true(p[b->offset + i] == p0[b->offset + i]);
    free(p), free(g), free(m), free(v), free(mask), free(p0);
    plstm_params_destroy(L);
}

static void test_adamw_rejects_bad_config(void **state)
{
    (void)state;
    plstm_adamw_coeffs c;
    plstm_adamw_config cfg = plstm_adamw_defaults();
    assert_true(cfg.beta1 == 0.9 && cfg.beta2 == 0.999 && cfg.eps == 1e-8 &&
                cfg.weight_decay == 0.05);
    cfg.beta2 = 1.0;
    assert_int_equal(plstm_adamw_coeffs_at(&cfg, 1e-3, 0, &c), PLSTM_ERR_INVALID_ARGUMENT);
    cfg = plstm_adamw_defaults();
    assert_int_equal(plstm_adamw_coeffs_at(&cfg, -1, 0, &c), PLSTM_ERR_INVALID_ARGUMENT);
    assert_int_equal(plstm_adamw_coeffs_at(&cfg, 1e-3, -1, &c), PLSTM_ERR_INVALID_ARGUMENT);
    TU_OK(plstm_adamw_coeffs_at(&cfg, 1e-3, 99, &c));
    assert_true(fabs(c.inv_bc2 - 1.0 / (1.0 - pow(0.999, 100))) < 1e-6 * c.inv_bc2);
}

static void test_schedule(void **state)
{
    (void)state;
    const double pi = acos(-1.0);
    plstm_lr_schedule s = {1e-4, 781, 39050, 1e-3};
    TU_OK(plstm_lr_schedule_check(&s));
    const double peak = 1e-4, fl = 1e-7, D = 39050 - 781;
    assert_true(plstm_lr_at(&s, 0) == 0.0);
    assert_true(fabs(plstm_lr_at(&s, 1) - peak / 781) <= 1e-15 * peak);
    assert_true(fabs(plstm_lr_at(&s, 390) - peak * 390 / 781) <= 1e-15 * peak);
    assert_true(fabs(plstm_lr_at(&s, 781) - peak) <= 1e-15 * peak);
    const int64_t mid = 781 + 19134;
    const double want_mid = fl + (peak - fl) * 0.5 * (1 + cos(pi * 19134 / D));
    assert_true(fabs(plstm_lr_at(&s, mid) - want_mid) <= 1e-12 * peak);
    const double want_last = fl + (peak - fl) * 0.5 * (1 + cos(pi * (D - 1) / D));
    assert_true(fabs(plstm_lr_at(&s, 39049) - want_last) <= 1e-12 * peak);
    assert_true(plstm_lr_at(&s, 39049) - fl < 1e-12); /* the last update is at the floor */
    assert_true(fabs(plstm_lr_at(&s, 39050) - fl) <= 1e-15 * peak);
    assert_true(fabs(plstm_lr_at(&s, 100000) - fl) <= 1e-15 * peak);
    double prev = plstm_lr_at(&s, 781);
    for (int64_t k = 782; k <= 39050; k += 97) {
        const double lr = plstm_lr_at(&s, k);
        assert_true(lr <= prev && lr >= fl);
        prev = lr;
    }
    /* an even decay length has its midpoint exactly halfway */
    plstm_lr_schedule e = {2.0, 10, 110, 0.25};
    assert_true(fabs(plstm_lr_at(&e, 60) - 0.5 * (2.0 + 0.5)) < 1e-15);
    assert_true(fabs(plstm_lr_at(&e, 5) - 1.0) < 1e-15);
    plstm_lr_schedule nowarm = {1.0, 0, 10, 0.0};
    assert_true(plstm_lr_at(&nowarm, 0) == 1.0);
    plstm_lr_schedule bad = {1.0, 10, 10, 0.0};
    assert_int_equal(plstm_lr_schedule_check(&bad), PLSTM_ERR_INVALID_ARGUMENT);
    bad = (plstm_lr_schedule){1.0, 1, 10, 1.5};
    assert_int_equal(plstm_lr_schedule_check(&bad), PLSTM_ERR_INVALID_ARGUMENT);
}

static double norm_f64(const float *g, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)g[i] * g[i];
    return sqrt(s);
}

static void test_clip(void **state)
{
    (void)state;
    const size_t n = 100003; /* several norm blocks, ragged end */
    float *g = tu_calloc(n, 4), *g0 = tu_calloc(n, 4);
    tu_rng r;
    tu_rng_seed(&r, 3);
    tu_fill_f32(&r, g, n, -1, 1);
    memcpy(g0, g, n * 4);
    double pre = 0;
    TU_OK(plstm_grad_clip(NULL, g, n, 1.0, &pre));
    const double want = norm_f64(g0, n);
    assert_true(fabs(pre - want) <= 1e-12 * want);
    assert_true(want > 100);
    assert_true(fabs(norm_f64(g, n) - 1.0) <= 1e-6);
    for (size_t i = 0; i < n; i += 997) /* a uniform scale */
        assert_true(fabs(g[i] - g0[i] / want) <= 1e-6 * fabs(g0[i] / want) + 1e-12);
    /* below the threshold: untouched */
    memcpy(g, g0, n * 4);
    TU_OK(plstm_grad_clip(NULL, g, n, 2 * want, &pre));
    assert_memory_equal(g, g0, n * 4);
    /* the norm does not depend on the thread count */
    double n1 = 0, n2 = 0;
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    TU_OK(plstm_grad_norm(NULL, g0, n, &n1));
    omp_set_num_threads(3);
    TU_OK(plstm_grad_norm(NULL, g0, n, &n2));
    omp_set_num_threads(threads);
    assert_true(n1 == n2);
    assert_int_equal(plstm_grad_clip(NULL, g, n, 0.0, &pre), PLSTM_ERR_INVALID_ARGUMENT);
    free(g), free(g0);
}

static void test_nonfinite_gradient(void **state)
{
    (void)state;
    plstm_params *L = make_layout();
    const size_t n = plstm_params_size(L);
    float *g = tu_calloc(n, 4), *g0 = tu_calloc(n, 4);
    for (size_t i = 0; i < n; i++)
        g[i] = 100.0f;
    const plstm_param_info *b = plstm_params_find(L, "b");
    g[b->offset + 3] = NAN;
    memcpy(g0, g, n * 4);
    double pre = -1;
    assert_int_equal(plstm_grad_clip(L, g, n, 1.0, &pre), PLSTM_ERR_NUMERIC);
    assert_non_null(strstr(plstm_last_error(), "gradient of b"));
    assert_non_null(strstr(plstm_last_error(), "NaN"));
    assert_memory_equal(g, g0, n * 4); /* nothing scaled */
    g[b->offset + 3] = 1.0f;
    g[2] = -INFINITY;
    double nrm;
    assert_int_equal(plstm_grad_norm(L, g, n, &nrm), PLSTM_ERR_NUMERIC);
    assert_non_null(strstr(plstm_last_error(), "gradient of w has a Inf (element 2"));
    assert_int_equal(plstm_grad_norm(NULL, g, n, &nrm), PLSTM_ERR_NUMERIC);
    assert_non_null(strstr(plstm_last_error(), "element 2"));
    free(g), free(g0);
    plstm_params_destroy(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw_two_steps),
        cmocka_unit_test(test_adamw_decay_only_on_weights),
        cmocka_unit_test(test_adamw_rejects_bad_config),
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_clip),
        cmocka_unit_test(test_nonfinite_gradient),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
