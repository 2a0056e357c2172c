/* Context creation, status messages, device-memory helpers on the CPU. */
#include "testutil.h"

#include <string.h>

static void test_cpu_context(void **state)
{
    (void)state;
    plstm_context *ctx = NULL;
    TU_OK(plstm_context_create(&ctx, PLSTM_BACKEND_CPU, 0));
    assert_string_equal(plstm_context_backend_name(ctx), "cpu");
    void *p = NULL;
    TU_OK(plstm_malloc(ctx, &p, 100));
    TU_OK(plstm_memset_zero(ctx, p, 100));
    assert_int_equal(((unsigned char *)p)[99], 0);
    plstm_free(ctx, p);
    plstm_context_destroy(ctx);
}

static void test_errors_have_messages(void **state)
{
    (void)state;
    plstm_context *ctx = NULL;
    assert_int_equal(plstm_context_create(NULL, PLSTM_BACKEND_CPU, 0), PLSTM_ERR_INVALID_ARGUMENT);
    assert_true(strlen(plstm_last_error()) > 0);
    TU_OK(plstm_context_create(&ctx, PLSTM_BACKEND_CPU, 0));
    plstm_core2d_desc d = {.dtype = PLSTM_F32, .B = 1, .X = 0, .Y = 2, .DK = 1, .DV = 1,
                           .JQ = 1, .JK = 1, .JV = 1, .JT = 1, .JO = 1, .scale = 1};
    plstm_core2d_inputs in = {0};
    float y[4];
    plstm_core2d_outputs out = {.Y = y};
    assert_int_equal(plstm_core2d_forward(ctx, &d, &in, &out), PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "X = 0"));
    plstm_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_context),
        cmocka_unit_test(test_errors_have_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
