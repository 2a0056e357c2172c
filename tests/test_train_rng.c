/* The training random generator: exact save/restore, stream separation,
 * and the moments of its distributions. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_save_restore(void **state)
{
    (void)state;
    plstm_rng r;
    plstm_rng_seed(&r, 43, 1);
    for (int i = 0; i < 17; i++)
        (void)plstm_rng_normal(&r);
    const plstm_rng saved = r; /* the state is the struct: copy it or store its two words */
    uint64_t a[64];
    for (int i = 0; i < 64; i++)
        a[i] = plstm_rng_u64(&r);
    plstm_rng back;
    memcpy(&back, &saved, sizeof back);
    for (int i = 0; i < 64; i++)
        assert_true(plstm_rng_u64(&back) == a[i]);
    /* random access agrees with sequential draws */
    for (int i = 0; i < 64; i++)
        assert_true(plstm_rng_u64_at(&saved, saved.counter + (uint64_t)i) == a[i]);
    /* reseeding gives the same stream */
    plstm_rng x, y;
    plstm_rng_seed(&x, 43, 1);
    plstm_rng_seed(&y, 43, 1);
    for (int i = 0; i < 100; i++)
        assert_true(plstm_rng_u64(&x) == plstm_rng_u64(&y));
}

static void test_streams_differ(void **state)
{
    (void)state;
    const uint64_t seeds[3][2] = {{43, 0}, {43, 1}, {44, 0}};
    uint64_t first[3][8];
    for (int s = 0; s < 3; s++) {
        plstm_rng r;
        plstm_rng_seed(&r, seeds[s][0], seeds[s][1]);
        for (int i = 0; i < 8; i++)
            first[s][i] = plstm_rng_u64(&r);
    }
    for (int s = 0; s < 3; s++)
        for (int t = s + 1; t < 3; t++)
            for (int i = 0; i < 8; i++)
                for (int j = 0; j < 8; j++)
                    assert_true(first[s][i] != first[t][j]);
}

static void test_distributions(void **state)
{
    (void)state;
    enum { N = 200000 };
    plstm_rng r;
    plstm_rng_seed(&r, 5, 0);
    double s1 = 0, s2 = 0;
    for (int i = 0; i < N; i++) {
        const double u = plstm_rng_uniform(&r);
        assert_true(u >= 0 && u < 1);
        s1 += u, s2 += u * u;
    }
    /* mean 1/2, variance 1/12; 5 standard errors */
    assert_true(fabs(s1 / N - 0.5) < 5 * sqrt(1.0 / 12 / N));
    assert_true(fabs(s2 / N - s1 * s1 / N / N - 1.0 / 12) < 0.002);
    s1 = s2 = 0;
    double s4 = 0;
    for (int i = 0; i < N; i++) {
        const double z = plstm_rng_normal(&r);
        s1 += z, s2 += z * z, s4 += z * z * z * z;
    }
    assert_true(fabs(s1 / N) < 5 / sqrt(N));
    assert_true(fabs(s2 / N - 1) < 5 * sqrt(2.0 / N));
    assert_true(fabs(s4 / N - 3) < 0.1); /* kurtosis of a normal */
    /* truncated to [-2, 2]: variance 1 - 4 phi(2) / (Phi(2) - Phi(-2)) */
    const double phi2 = exp(-2.0) / sqrt(2 * acos(-1.0)), mass = erf(2 / sqrt(2.0));
    const double tvar = 1 - 4 * phi2 / mass;
    float *x = tu_calloc(N, sizeof *x);
    TU_OK(plstm_rng_fill_truncated_normal_f32(&r, x, N, 1.0, 0.02, -2, 2));
    s1 = s2 = 0;
    for (int i = 0; i < N; i++) {
        assert_true(x[i] >= 1.0f - 0.04f - 1e-6f && x[i] <= 1.0f + 0.04f + 1e-6f);
        const double z = (x[i] - 1.0) / 0.02;
        s1 += z, s2 += z * z;
    }
    assert_true(fabs(s1 / N) < 5 * sqrt(tvar / N));
    assert_true(fabs(s2 / N - tvar) < 0.01);
    assert_int_equal(plstm_rng_fill_truncated_normal_f32(&r, x, 4, 0, 1, 8, 9),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_int_equal(plstm_rng_fill_truncated_normal_f32(&r, x, 4, 0, 1, 1, 1),
                     PLSTM_ERR_INVALID_ARGUMENT);
    free(x);
}

static void test_integers_and_permutation(void **state)
{
    (void)state;
    plstm_rng r;
    plstm_rng_seed(&r, 9, 2);
    int count[7] = {0};
    for (int i = 0; i < 70000; i++) {
        const uint64_t k = plstm_rng_below(&r, 7);
        assert_true(k < 7);
        count[k]++;
    }
    for (int k = 0; k < 7; k++) /* 10000 expected, sd ~93 */
        assert_true(abs(count[k] - 10000) < 500);
    assert_true(plstm_rng_below(&r, 1) == 0);
    enum { N = 1000 };
    int64_t perm[N];
    plstm_rng_permutation(&r, perm, N);
    char seen[N] = {0};
    int moved = 0;
    for (int i = 0; i < N; i++) {
        assert_true(perm[i] >= 0 && perm[i] < N && !seen[perm[i]]);
        seen[perm[i]] = 1;
        moved += perm[i] != i;
    }
    assert_true(moved > N / 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_save_restore),
        cmocka_unit_test(test_streams_differ),
        cmocka_unit_test(test_distributions),
        cmocka_unit_test(test_integers_and_permutation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
