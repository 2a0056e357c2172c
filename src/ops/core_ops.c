/* Public core operators: validate once, then dispatch to the backend. */
#include "ops/backend.h"
#include "ops/core_validate.h"
#include "core/status_internal.h"

#include <stddef.h>

static plstm_status check_dims(const char *op, plstm_dtype dtype, const int *dims,
                               const char *const *names, int n)
{
    if (dtype != PLSTM_F32 && dtype != PLSTM_F64)
        return plstm_fail(PLSTM_ERR_UNSUPPORTED, "%s: dtype %s not supported (F32 or F64)", op,
                          plstm_dtype_name(dtype));
    for (int i = 0; i < n; i++)
        if (dims[i] < 1)
            return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "%s: %s = %d, must be >= 1", op,
                              names[i], dims[i]);
    return PLSTM_OK;
}

#define REQUIRE(ptr, op, name) \
    PLSTM_CHECK_ARG((ptr) != NULL, "%s: required tensor %s is NULL", op, name)

plstm_status plstm_core1d_validate(const plstm_core1d_desc *d, const plstm_core1d_inputs *in)
{
    static const char *const names[] = {"B", "L", "DK", "DV", "JQ", "JK", "JV", "JT", "JO"};
    PLSTM_CHECK_ARG(d && in, "core1d: NULL descriptor or inputs");
    const int dims[] = {d->B, d->L, d->DK, d->DV, d->JQ, d->JK, d->JV, d->JT, d->JO};
    PLSTM_TRY(check_dims("core1d", d->dtype, dims, names, 9));
    PLSTM_CHECK_ARG(d->chunk >= 0, "core1d: chunk = %d, must be >= 0", d->chunk);
    const char *op = "core1d";
    REQUIRE(in->Q, op, "Q"); REQUIRE(in->K, op, "K"); REQUIRE(in->V, op, "V");
    REQUIRE(in->S, op, "S"); REQUIRE(in->T, op, "T"); REQUIRE(in->M, op, "M");
    REQUIRE(in->D, op, "D");
    return PLSTM_OK;
}

plstm_status plstm_core2d_validate(const plstm_core2d_desc *d, const plstm_core2d_inputs *in)
{
    static const char *const names[] = {"B", "X", "Y", "DK", "DV", "JQ", "JK", "JV", "JT", "JO"};
    PLSTM_CHECK_ARG(d && in, "core2d: NULL descriptor or inputs");
    const int dims[] = {d->B, d->X, d->Y, d->DK, d->DV, d->JQ, d->JK, d->JV, d->JT, d->JO};
    PLSTM_TRY(check_dims("core2d", d->dtype, dims, names, 10));
    PLSTM_CHECK_ARG(d->tile >= 0, "core2d: tile = %d, must be >= 0", d->tile);
    const char *op = "core2d";
    REQUIRE(in->Q, op, "Q"); REQUIRE(in->K, op, "K"); REQUIRE(in->V, op, "V");
    REQUIRE(in->S_r, op, "S_r"); REQUIRE(in->S_d, op, "S_d");
    REQUIRE(in->T_rl, op, "T_rl"); REQUIRE(in->T_du, op, "T_du");
    REQUIRE(in->M_l, op, "M_l"); REQUIRE(in->M_u, op, "M_u"); REQUIRE(in->D, op, "D");
    return PLSTM_OK;
}

#define DISPATCH(ctx, fn, ...)                                                              \
    do {                                                                                    \
        PLSTM_CHECK_ARG((ctx) != NULL, #fn ": ctx is NULL");                                \
        if (!(ctx)->ops->fn)                                                                \
            return plstm_fail(PLSTM_ERR_UNSUPPORTED, #fn " is not implemented on the %s backend", \
                              (ctx)->ops->name);                                            \
        return (ctx)->ops->fn(ctx, __VA_ARGS__);                                            \
    } while (0)

plstm_status plstm_core1d_forward(plstm_context *ctx, const plstm_core1d_desc *desc,
                                  const plstm_core1d_inputs *in, const plstm_core1d_outputs *out)
{
    PLSTM_TRY(plstm_core1d_validate(desc, in));
    PLSTM_CHECK_ARG(out && out->Y, "core1d forward: output Y is NULL");
    DISPATCH(ctx, core1d_forward, desc, in, out);
}

plstm_status plstm_core1d_backward(plstm_context *ctx, const plstm_core1d_desc *desc,
                                   const plstm_core1d_inputs *in,
                                   const plstm_core1d_cotangents *dout,
                                   const plstm_core1d_grads *grad)
{
    PLSTM_TRY(plstm_core1d_validate(desc, in));
    PLSTM_CHECK_ARG(dout && dout->Y && grad, "core1d backward: cotangent dY or grads is NULL");
    DISPATCH(ctx, core1d_backward, desc, in, dout, grad);
}

plstm_status plstm_core2d_forward(plstm_context *ctx, const plstm_core2d_desc *desc,
                                  const plstm_core2d_inputs *in, const plstm_core2d_outputs *out)
{
    PLSTM_TRY(plstm_core2d_validate(desc, in));
    PLSTM_CHECK_ARG(out && out->Y, "core2d forward: output Y is NULL");
    DISPATCH(ctx, core2d_forward, desc, in, out);
}

plstm_status plstm_core2d_backward(plstm_context *ctx, const plstm_core2d_desc *desc,
                                   const plstm_core2d_inputs *in,
                                   const plstm_core2d_cotangents *dout,
                                   const plstm_core2d_grads *grad)
{
    PLSTM_TRY(plstm_core2d_validate(desc, in));
    PLSTM_CHECK_ARG(dout && dout->Y && grad, "core2d backward: cotangent dY or grads is NULL");
    DISPATCH(ctx, core2d_backward, desc, in, dout, grad);
}

static plstm_status check_fused4(const plstm_core2d_inputs *in)
{
    PLSTM_CHECK_ARG(!in->C0_left && !in->C0_top,
                    "core2d fused4: initial states are not part of the fused form");
    return PLSTM_OK;
}

plstm_status plstm_core2d_fused4_forward(plstm_context *ctx, const plstm_core2d_desc *desc,
                                         const plstm_core2d_inputs *in,
                                         const plstm_core2d_outputs *out)
{
    PLSTM_TRY(plstm_core2d_validate(desc, in));
    PLSTM_TRY(check_fused4(in));
    PLSTM_CHECK_ARG(out && out->Y && !out->C_right && !out->C_bottom,
                    "core2d fused4 forward: Y is required, border outputs must be NULL");
    DISPATCH(ctx, core2d_fused4_forward, desc, in, out);
}

plstm_status plstm_core2d_fused4_backward(plstm_context *ctx, const plstm_core2d_desc *desc,
                                          const plstm_core2d_inputs *in,
                                          const plstm_core2d_cotangents *dout,
                                          const plstm_core2d_grads *grad)
{
    PLSTM_TRY(plstm_core2d_validate(desc, in));
    PLSTM_TRY(check_fused4(in));
    PLSTM_CHECK_ARG(dout && dout->Y && grad, "core2d fused4 backward: dY or grads is NULL");
    DISPATCH(ctx, core2d_fused4_backward, desc, in, dout, grad);
}
