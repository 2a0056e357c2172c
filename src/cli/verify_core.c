/* Verifiers for the core kinds (core1d, core2d): all sizes come from the
 * tensor shapes, optional tensors (initial states, absent transitions, last
 * states) from their presence in the file. */
#include "cli/verify.h"
#include "core/status_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Shape of `name`, which must have rank `rank`. */
static plstm_status shape_of(const plstm_safetensors *st, const char *name, int rank,
                             int64_t *shape)
{
    const plstm_safetensors_tensor *t;
    PLSTM_TRY(plstm_safetensors_get(st, name, &t));
    if (t->rank != rank)
        return plstm_fail(PLSTM_ERR_FORMAT, "%s has rank %d, expected %d", name, t->rank, rank);
    for (int i = 0; i < rank; i++) {
        if (t->shape[i] < 1 || t->shape[i] > (1 << 24))
            return plstm_fail(PLSTM_ERR_FORMAT, "%s has an unusable size %lld on axis %d", name,
                              (long long)t->shape[i], i);
        shape[i] = t->shape[i];
    }
    return PLSTM_OK;
}

/* One named tensor of a verification case: where it is in the file, its
 * shape, and the slot of the operator argument struct it feeds. */
typedef struct slot {
    const char *name;     /* without the "input."/"grad." prefix */
    int rank;
    int64_t shape[8];
    int optional;
    vtensor value, grad;
    int present;
} slot;

static plstm_status load_slots(const plstm_safetensors *st, slot *s, int n, plstm_dtype dt)
{
    char key[128];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "input.%s", s[i].name);
        if (!plstm_safetensors_find(st, key)) {
            if (!s[i].optional)
                return plstm_fail(PLSTM_ERR_FORMAT, "required tensor %s is missing", key);
            continue;
        }
        PLSTM_TRY(vt_load(st, key, s[i].rank, s[i].shape, dt, &s[i].value));
        PLSTM_TRY(vt_zeros(s[i].value.n, dt, &s[i].grad));
        s[i].present = 1;
    }
    return PLSTM_OK;
}

static void free_slots(slot *s, int n)
{
    for (int i = 0; i < n; i++) {
        vt_free(&s[i].value);
        vt_free(&s[i].grad);
    }
}

static plstm_status compare_grads(const plstm_safetensors *st, slot *s, int n,
                                  const verify_opts *o, verify_report *r)
{
    char key[128];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "grad.%s", s[i].name);
        if (s[i].present && plstm_safetensors_find(st, key))
            PLSTM_TRY(verify_compare(st, key, &s[i].grad, o->dtype, o, r));
    }
    return PLSTM_OK;
}

static void set_shape(slot *s, int rank, const int64_t *dims)
{
    s->rank = rank;
    memcpy(s->shape, dims, (size_t)rank * sizeof *dims);
}

#define SHAPE(...) (const int64_t[]){__VA_ARGS__}

/* ---- core1d ------------------------------------------------------------- */

enum { C1_Q, C1_K, C1_V, C1_S, C1_T, C1_M, C1_D, C1_C0, C1_N };

static plstm_status run_core1d(const plstm_safetensors *st, const verify_opts *o,
                               verify_report *r, slot *s)
{
    int64_t q[4], k[4], v[4], sh[5], m[5];
    PLSTM_TRY(shape_of(st, "input.Q", 4, q));
    PLSTM_TRY(shape_of(st, "input.K", 4, k));
    PLSTM_TRY(shape_of(st, "input.V", 4, v));
    PLSTM_TRY(shape_of(st, "input.S0", 5, sh));
    PLSTM_TRY(shape_of(st, "input.M0", 5, m));
    const int64_t B = q[0], L = q[1], DK = q[2], JQ = q[3], JK = k[3], DV = v[2], JV = v[3];
    const int64_t JT = sh[2], JO = m[2];
    const char *names[C1_N] = {"Q", "K", "V", "S0", "T0", "M0", "D0", "C_initial"};
    for (int i = 0; i < C1_N; i++)
        s[i].name = names[i];
    set_shape(&s[C1_Q], 4, q);
    set_shape(&s[C1_K], 4, SHAPE(B, L, DK, JK));
    set_shape(&s[C1_V], 4, SHAPE(B, L, DV, JV));
    set_shape(&s[C1_S], 5, SHAPE(B, L, JT, JK, JV));
    set_shape(&s[C1_T], 4, SHAPE(B, L, JT, JT));
    set_shape(&s[C1_M], 5, SHAPE(B, L, JO, JQ, JT));
    set_shape(&s[C1_D], 6, SHAPE(B, L, JO, JQ, JK, JV));
    set_shape(&s[C1_C0], 4, SHAPE(B, DK, DV, JT));
    s[C1_C0].optional = 1;
    const plstm_dtype dt = o->dtype;
    PLSTM_TRY(load_slots(st, s, C1_N, dt));

    plstm_core1d_desc d = {.dtype = dt, .B = (int)B, .L = (int)L, .DK = (int)DK, .DV = (int)DV,
                           .JQ = (int)JQ, .JK = (int)JK, .JV = (int)JV, .JT = (int)JT,
                           .JO = (int)JO, .algo = o->algo};
    d.scale = meta_double(st, "qk_scale", 1.0 / sqrt((double)DK));
    plstm_core1d_inputs in = {vt_ptr(&s[C1_Q].value, dt), vt_ptr(&s[C1_K].value, dt),
                              vt_ptr(&s[C1_V].value, dt), vt_ptr(&s[C1_S].value, dt),
                              vt_ptr(&s[C1_T].value, dt), vt_ptr(&s[C1_M].value, dt),
                              vt_ptr(&s[C1_D].value, dt), vt_ptr(&s[C1_C0].value, dt)};
    const int want_last = plstm_safetensors_find(st, "output.C_last") != NULL;
    vtensor y = {0}, clast = {0}, dy = {0}, dclast = {0};
    plstm_status status = vt_zeros((size_t)(B * L * DV * JO), dt, &y);
    if (status == PLSTM_OK && want_last)
        status = vt_zeros((size_t)(B * DK * DV * JT), dt, &clast);
    if (status == PLSTM_OK)
        status = vt_load(st, "input.dY", 4, SHAPE(B, L, DV, JO), dt, &dy);
    if (status == PLSTM_OK && plstm_safetensors_find(st, "input.dC_last"))
        status = vt_load(st, "input.dC_last", 4, SHAPE(B, DK, DV, JT), dt, &dclast);
    if (status == PLSTM_OK) {
        plstm_core1d_outputs out = {vt_ptr(&y, dt), vt_ptr(&clast, dt)};
        status = plstm_core1d_forward(o->ctx, &d, &in, &out);
    }
    if (status == PLSTM_OK)
        status = verify_compare(st, "output.Y", &y, dt, o, r);
    if (status == PLSTM_OK && want_last)
        status = verify_compare(st, "output.C_last", &clast, dt, o, r);
    if (status == PLSTM_OK) {
        plstm_core1d_cotangents dout = {vt_ptr(&dy, dt), vt_ptr(&dclast, dt)};
        plstm_core1d_grads g = {vt_ptr(&s[C1_Q].grad, dt), vt_ptr(&s[C1_K].grad, dt),
                                vt_ptr(&s[C1_V].grad, dt), vt_ptr(&s[C1_S].grad, dt),
                                vt_ptr(&s[C1_T].grad, dt), vt_ptr(&s[C1_M].grad, dt),
                                vt_ptr(&s[C1_D].grad, dt), vt_ptr(&s[C1_C0].grad, dt)};
        status = plstm_core1d_backward(o->ctx, &d, &in, &dout, &g);
    }
    if (status == PLSTM_OK)
        status = compare_grads(st, s, C1_N, o, r);
    vt_free(&y);
    vt_free(&clast);
    vt_free(&dy);
    vt_free(&dclast);
    return status;
}

plstm_status verify_core1d(const plstm_safetensors *st, const verify_opts *o, verify_report *r)
{
    slot s[C1_N];
    memset(s, 0, sizeof s);
    plstm_status status = run_core1d(st, o, r, s);
    free_slots(s, C1_N);
    return status;
}

/* ---- core2d ------------------------------------------------------------- */

enum {
    C2_Q, C2_K, C2_V, C2_SR, C2_SD, C2_TRL, C2_TDU, C2_TDL, C2_TRU, C2_ML, C2_MU, C2_D,
    C2_C0L, C2_C0T, C2_N
};

static plstm_status run_core2d(const plstm_safetensors *st, const verify_opts *o,
                               verify_report *r, slot *s)
{
    int64_t q[5], k[5], v[5], sr[6], ml[6];
    PLSTM_TRY(shape_of(st, "input.Q", 5, q));
    PLSTM_TRY(shape_of(st, "input.K", 5, k));
    PLSTM_TRY(shape_of(st, "input.V", 5, v));
    PLSTM_TRY(shape_of(st, "input.S0_r", 6, sr));
    PLSTM_TRY(shape_of(st, "input.M0_l", 6, ml));
    const int64_t B = q[0], X = q[1], Y = q[2], DK = q[3], JQ = q[4], JK = k[4];
    const int64_t DV = v[3], JV = v[4], JT = sr[3], JO = ml[3];
    const char *names[C2_N] = {"Q", "K", "V", "S0_r", "S0_d", "T0_rl", "T0_du", "T0_dl",
                               "T0_ru", "M0_l", "M0_u", "D0", "C_initial_left",
                               "C_initial_top"};
    for (int i = 0; i < C2_N; i++)
        s[i].name = names[i];
    set_shape(&s[C2_Q], 5, q);
    set_shape(&s[C2_K], 5, SHAPE(B, X, Y, DK, JK));
    set_shape(&s[C2_V], 5, SHAPE(B, X, Y, DV, JV));
    for (int i = C2_SR; i <= C2_SD; i++)
        set_shape(&s[i], 6, SHAPE(B, X, Y, JT, JK, JV));
    for (int i = C2_TRL; i <= C2_TRU; i++)
        set_shape(&s[i], 5, SHAPE(B, X, Y, JT, JT));
    for (int i = C2_ML; i <= C2_MU; i++)
        set_shape(&s[i], 6, SHAPE(B, X, Y, JO, JQ, JT));
    set_shape(&s[C2_D], 7, SHAPE(B, X, Y, JO, JQ, JK, JV));
    set_shape(&s[C2_C0L], 5, SHAPE(B, Y, DK, DV, JT));
    set_shape(&s[C2_C0T], 5, SHAPE(B, X, DK, DV, JT));
    s[C2_TDL].optional = s[C2_TRU].optional = s[C2_C0L].optional = s[C2_C0T].optional = 1;
    const plstm_dtype dt = o->dtype;
    PLSTM_TRY(load_slots(st, s, C2_N, dt));

    plstm_core2d_desc d = {.dtype = dt, .B = (int)B, .X = (int)X, .Y = (int)Y, .DK = (int)DK,
                           .DV = (int)DV, .JQ = (int)JQ, .JK = (int)JK, .JV = (int)JV,
                           .JT = (int)JT, .JO = (int)JO, .algo = o->algo};
    d.scale = meta_double(st, "qk_scale", 1.0 / sqrt((double)DK));
#define IN(i) vt_ptr(&s[i].value, dt)
#define GR(i) vt_ptr(&s[i].grad, dt)
    plstm_core2d_inputs in = {IN(C2_Q), IN(C2_K), IN(C2_V), IN(C2_SR), IN(C2_SD),
                              IN(C2_TRL), IN(C2_TDU), IN(C2_TDL), IN(C2_TRU), IN(C2_ML),
                              IN(C2_MU), IN(C2_D), IN(C2_C0L), IN(C2_C0T)};
    const int want_right = plstm_safetensors_find(st, "output.C_last_right") != NULL;
    const int want_bottom = plstm_safetensors_find(st, "output.C_last_bottom") != NULL;
    vtensor y = {0}, cr = {0}, cb = {0}, dy = {0}, dcr = {0}, dcb = {0};
    plstm_status status = vt_zeros((size_t)(B * X * Y * DV * JO), dt, &y);
    if (status == PLSTM_OK && want_right)
        status = vt_zeros((size_t)(B * Y * DK * DV * JT), dt, &cr);
    if (status == PLSTM_OK && want_bottom)
        status = vt_zeros((size_t)(B * X * DK * DV * JT), dt, &cb);
    if (status == PLSTM_OK)
        status = vt_load(st, "input.dY", 5, SHAPE(B, X, Y, DV, JO), dt, &dy);
    if (status == PLSTM_OK && plstm_safetensors_find(st, "input.dC_last_right"))
        status = vt_load(st, "input.dC_last_right", 5, SHAPE(B, Y, DK, DV, JT), dt, &dcr);
    if (status == PLSTM_OK && plstm_safetensors_find(st, "input.dC_last_bottom"))
        status = vt_load(st, "input.dC_last_bottom", 5, SHAPE(B, X, DK, DV, JT), dt, &dcb);
    if (status == PLSTM_OK) {
        plstm_core2d_outputs out = {vt_ptr(&y, dt), vt_ptr(&cr, dt), vt_ptr(&cb, dt)};
        status = plstm_core2d_forward(o->ctx, &d, &in, &out);
    }
    if (status == PLSTM_OK)
        status = verify_compare(st, "output.Y", &y, dt, o, r);
    if (status == PLSTM_OK && want_right)
        status = verify_compare(st, "output.C_last_right", &cr, dt, o, r);
    if (status == PLSTM_OK && want_bottom)
        status = verify_compare(st, "output.C_last_bottom", &cb, dt, o, r);
    if (status == PLSTM_OK) {
        plstm_core2d_cotangents dout = {vt_ptr(&dy, dt), vt_ptr(&dcr, dt), vt_ptr(&dcb, dt)};
        plstm_core2d_grads g = {GR(C2_Q), GR(C2_K), GR(C2_V), GR(C2_SR), GR(C2_SD),
                                GR(C2_TRL), GR(C2_TDU), GR(C2_TDL), GR(C2_TRU), GR(C2_ML),
                                GR(C2_MU), GR(C2_D), GR(C2_C0L), GR(C2_C0T)};
        status = plstm_core2d_backward(o->ctx, &d, &in, &dout, &g);
    }
#undef IN
#undef GR
    if (status == PLSTM_OK)
        status = compare_grads(st, s, C2_N, o, r);
    vtensor *tmp[] = {&y, &cr, &cb, &dy, &dcr, &dcb};
    for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++)
        vt_free(tmp[i]);
    return status;
}

plstm_status verify_core2d(const plstm_safetensors *st, const verify_opts *o, verify_report *r)
{
    slot s[C2_N];
    memset(s, 0, sizeof s);
    plstm_status status = run_core2d(st, o, r, s);
    free_slots(s, C2_N);
    return status;
}
