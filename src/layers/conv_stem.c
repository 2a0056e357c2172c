/* The convolutional patch stem shared by the vision models (conv_stem.h). */
#include "layers/conv_stem.h"
#include "plstm/nn.h"
#include "core/status_internal.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static void *at(void *buf, size_t esz, size_t off) { return (char *)buf + off * esz; }
static const void *cat(const void *buf, size_t esz, size_t off)
{
    return (const char *)buf + off * esz;
}
static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

plstm_status conv_stem_check(const char *what, int stages, const int *channels,
                             const int *strides, int kernel, plstm_vision_stem_norm norm,
                             int patch_size, int patch_stride)
{
    PLSTM_CHECK_ARG(stages >= 0 && stages <= CONV_STEM_MAX, "%s: stem_stages %d out of range 0..%d",
                    what, stages, CONV_STEM_MAX);
    for (int i = stages; i < CONV_STEM_MAX; i++)
        PLSTM_CHECK_ARG(strides[i] == 0,
                        "%s: stem_strides has more entries than stem_channels (%d)", what, stages);
    PLSTM_CHECK_ARG(norm == PLSTM_STEM_NORM_RMS || norm == PLSTM_STEM_NORM_INSTANCE,
                    "%s: unknown stem_norm", what);
    if (!stages)
        return PLSTM_OK;
    PLSTM_CHECK_ARG(kernel == 0 || (kernel >= 2 && kernel <= 16),
                    "%s: stem_kernel %d must be 0 (= 2) or in 2..16", what, kernel);
    int f = 1;
    for (int i = 0; i < stages; i++) {
        PLSTM_CHECK_ARG(channels[i] >= 1 && channels[i] <= 65536,
                        "%s: stem_channels[%d] = %d out of range 1..65536", what, i, channels[i]);
        const int st = strides[i];
        PLSTM_CHECK_ARG(st == 0 || st == 1 || st == 2, "%s: stem_strides[%d] = %d must be 1 or 2",
                        what, i, st);
        PLSTM_CHECK_ARG(st != 1 || kernel % 2 == 1,
                        "%s: a stride-1 stem stage keeps the size only with an odd stem_kernel "
                        "(got %d)",
                        what, kernel);
        f *= st ? st : 2;
    }
    PLSTM_CHECK_ARG(patch_size % f == 0 && (!patch_stride || patch_stride == patch_size),
                    "%s: a stem with strides multiplying to %d needs non-overlapping patches "
                    "whose size %d is a multiple of %d",
                    what, f, patch_size, f);
    return PLSTM_OK;
}

static plstm_status int_array(const char *what, const char *key, json_t *v, int *dst, int *n)
{
    const size_t len = json_is_array(v) ? json_array_size(v) : (size_t)-1;
    PLSTM_CHECK_ARG(len <= CONV_STEM_MAX, "%s: '%s' must be an array of at most %d integers",
                    what, key, CONV_STEM_MAX);
    for (size_t i = 0; i < len; i++) {
        json_t *e = json_array_get(v, i);
        PLSTM_CHECK_ARG(json_is_integer(e) && json_integer_value(e) >= -65536 &&
                            json_integer_value(e) <= 65536,
                        "%s: '%s' must be an array of at most %d integers", what, key,
                        CONV_STEM_MAX);
    }
    for (int i = 0; i < CONV_STEM_MAX; i++)
        dst[i] = (size_t)i < len ? (int)json_integer_value(json_array_get(v, (size_t)i)) : 0;
    if (n)
        *n = (int)len;
    return PLSTM_OK;
}

int conv_stem_json_set(const char *what, const conv_stem_fields *f, const char *key,
                       const void *json_value, plstm_status *status)
{
    json_t *v = (json_t *)json_value;
    if (!strcmp(key, "stem_channels"))
        *status = int_array(what, key, v, f->channels, f->stages);
    else if (!strcmp(key, "stem_strides"))
        *status = int_array(what, key, v, f->strides, NULL);
    else if (!strcmp(key, "stem_kernel")) { /* its range is conv_stem_check's */
        *status = json_is_integer(v) && json_integer_value(v) >= -65536 &&
                          json_integer_value(v) <= 65536
                      ? PLSTM_OK
                      : plstm_fail(PLSTM_ERR_INVALID_ARGUMENT,
                                   "%s: 'stem_kernel' must be an integer", what);
        if (*status == PLSTM_OK)
            *f->kernel = (int)json_integer_value(v);
    } else if (!strcmp(key, "stem_norm")) {
        const char *s = json_string_value(v);
        if (s && !strcmp(s, "rms"))
            *f->norm = PLSTM_STEM_NORM_RMS, *status = PLSTM_OK;
        else if (s && !strcmp(s, "instance"))
            *f->norm = PLSTM_STEM_NORM_INSTANCE, *status = PLSTM_OK;
        else
            *status = plstm_fail(PLSTM_ERR_INVALID_ARGUMENT,
                                 "%s: 'stem_norm' must be \"rms\" or \"instance\"", what);
    } else
        return 0;
    return 1;
}

void conv_stem_json_put(void *json_object, int stages, const int *channels, const int *strides,
                        int kernel, plstm_vision_stem_norm norm)
{
    json_t *o = json_object;
    if (!stages)
        return;
    json_t *ch = json_array(), *st = json_array();
    for (int i = 0; i < stages; i++) {
        json_array_append_new(ch, json_integer(channels[i]));
        json_array_append_new(st, json_integer(strides[i] ? strides[i] : 2));
    }
    json_object_set_new(o, "stem_channels", ch);
    json_object_set_new(o, "stem_strides", st);
    json_object_set_new(o, "stem_kernel", json_integer(kernel));
    json_object_set_new(o, "stem_norm",
                        json_string(norm == PLSTM_STEM_NORM_INSTANCE ? "instance" : "rms"));
}

void conv_stem_setup(conv_stem *s, int stages, const int *channels, const int *strides,
                     int kernel, plstm_vision_stem_norm norm, double eps, int cin)
{
    memset(s, 0, sizeof *s);
    s->stages = stages, s->cin = cin, s->norm = norm, s->eps = eps;
    s->kernel = kernel ? kernel : 2;
    s->pad = (s->kernel - 1) / 2;
    for (int i = 0; i < stages; i++) {
        s->channels[i] = channels[i];
        s->strides[i] = strides[i] ? strides[i] : 2;
    }
}

int conv_stem_shrink(const conv_stem *s)
{
    int f = 1;
    for (int i = 0; i < s->stages; i++)
        f *= s->strides[i];
    return f;
}

int conv_stem_out_channels(const conv_stem *s)
{
    return s->stages ? s->channels[s->stages - 1] : s->cin;
}

plstm_status conv_stem_declare(conv_stem *s, plstm_params *P)
{
    int cin = s->cin;
    for (int i = 0; i < s->stages; i++) {
        const int64_t co = s->channels[i], sw[4] = {co, cin, s->kernel, s->kernel}, sc[1] = {co};
        char name[64];
        snprintf(name, sizeof name, "stem.%d.weight", i);
        PLSTM_TRY(plstm_params_declare(P, name, 4, sw, 0, &s->w[i]));
        snprintf(name, sizeof name, "stem.%d.bias", i);
        PLSTM_TRY(plstm_params_declare(P, name, 1, sc, PLSTM_PARAM_NO_DECAY, &s->b[i]));
        snprintf(name, sizeof name, "stem.%d.norm.scale", i);
        PLSTM_TRY(plstm_params_declare(P, name, 1, sc, PLSTM_PARAM_NO_DECAY, &s->g[i]));
        s->nb[i] = PLSTM_NO_PARAM;
        if (s->norm == PLSTM_STEM_NORM_INSTANCE) {
            snprintf(name, sizeof name, "stem.%d.norm.bias", i);
            PLSTM_TRY(plstm_params_declare(P, name, 1, sc, PLSTM_PARAM_NO_DECAY, &s->nb[i]));
        }
        cin = (int)co;
    }
    return PLSTM_OK;
}

static void put(void *buf, plstm_dtype dt, size_t i, double v)
{
    if (dt == PLSTM_F32)
        ((float *)buf)[i] = (float)v;
    else
        ((double *)buf)[i] = v;
}

void conv_stem_init(const conv_stem *s, void *params, plstm_dtype dtype, plstm_rng *r)
{
    size_t cin = (size_t)s->cin;
    for (int i = 0; i < s->stages; i++) { /* a norm follows each conv: its scale is free */
        const size_t co = (size_t)s->channels[i], fan = cin * (size_t)s->kernel * s->kernel;
        const double sd = 1.0 / sqrt(2.5 * (double)fan);
        for (size_t j = 0; j < co * fan; j++)
            put(params, dtype, s->w[i] + j, sd * plstm_rng_normal(r));
        for (size_t j = 0; j < co; j++)
            put(params, dtype, s->g[i] + j, 1.0);
        cin = co;
    }
}

size_t conv_stem_layout(const conv_stem *s, int B, int H, int W, int training, size_t o,
                        conv_stem_ws *w)
{
    memset(w, 0, sizeof *w);
    w->H = H, w->W = W;
    size_t st_max = 0, pad_max = 0;
    int h = H, wd = W, cin = s->cin;
    for (int i = 0; i < s->stages; i++) {
        const int q = s->pad;
        const size_t np =
            q ? align16((size_t)B * (size_t)(h + 2 * q) * (size_t)(wd + 2 * q) * (size_t)cin) : 0;
        w->p[i] = o, o += np;
        pad_max = np > pad_max ? np : pad_max;
        h /= s->strides[i], wd /= s->strides[i];
        const size_t n = align16((size_t)B * (size_t)h * (size_t)wd * (size_t)s->channels[i]);
        w->u[i] = o, o += n;
        w->n[i] = o, o += n;
        w->a[i] = o, o += n;
        if (training)
            w->ga[i] = o, o += n;
        st_max = n > st_max ? n : st_max;
        cin = s->channels[i];
    }
    if (training && s->stages)
        w->gu = o, o += st_max, w->gp = o, o += pad_max;
    return o;
}

plstm_status conv_stem_forward(plstm_context *ctx, const conv_stem *s, const conv_stem_ws *w,
                               plstm_dtype dt, const void *params, void *buf, int B,
                               const void *pixels, const void **out)
{
    const size_t e = plstm_dtype_size(dt);
    const void *in = pixels;
    int h = w->H, wd = w->W, cin = s->cin;
    for (int i = 0; i < s->stages; i++) {
        const int co = s->channels[i], q = s->pad, st = s->strides[i];
        void *u = at(buf, e, w->u[i]), *n = at(buf, e, w->n[i]), *a = at(buf, e, w->a[i]);
        if (q) { /* "same" padding: the k×k conv divides the size by its stride */
            void *pin = at(buf, e, w->p[i]);
            PLSTM_TRY(plstm_pad2d_forward(ctx, dt, B, h, wd, cin, q, in, pin));
            in = pin;
        }
        PLSTM_TRY(plstm_patch_embed_forward(ctx, dt, B, h + 2 * q, wd + 2 * q, cin, co, s->kernel,
                                            st, in, cat(params, e, s->w[i]),
                                            cat(params, e, s->b[i]), u));
        h /= st, wd /= st, cin = co;
        if (s->norm == PLSTM_STEM_NORM_INSTANCE)
            PLSTM_TRY(plstm_instance_norm_forward(ctx, dt, B, h * wd, co, s->eps, u,
                                                  cat(params, e, s->g[i]),
                                                  cat(params, e, s->nb[i]), n));
        else
            PLSTM_TRY(plstm_norm_forward(ctx, dt, PLSTM_NORM_RMS, B * h * wd, co, 1, s->eps, u,
                                         cat(params, e, s->g[i]), NULL, n));
        PLSTM_TRY(plstm_activation_forward(ctx, dt, PLSTM_ACT_GELU, (size_t)B * h * wd * co, n,
                                           a));
        in = a;
    }
    *out = in;
    return PLSTM_OK;
}

const void *conv_stem_output(const conv_stem *s, const conv_stem_ws *w, plstm_dtype dt,
                             const void *buf, const void *pixels)
{
    return s->stages ? cat(buf, plstm_dtype_size(dt), w->a[s->stages - 1]) : pixels;
}

void *conv_stem_output_grad(const conv_stem *s, const conv_stem_ws *w, plstm_dtype dt, void *buf,
                            void *dpixels)
{
    return s->stages ? at(buf, plstm_dtype_size(dt), w->ga[s->stages - 1]) : dpixels;
}

plstm_status conv_stem_backward(plstm_context *ctx, const conv_stem *s, const conv_stem_ws *w,
                                plstm_dtype dt, const void *params, void *buf, int B,
                                const void *pixels, void *dpixels, void *grads)
{
    const size_t e = plstm_dtype_size(dt);
    const int shrink = conv_stem_shrink(s);
    int h = w->H / shrink, wd = w->W / shrink;
    for (int i = s->stages - 1; i >= 0; i--) {
        const int co = s->channels[i], q = s->pad, st = s->strides[i];
        const size_t cnt = (size_t)B * h * wd * co;
        void *ga = at(buf, e, w->ga[i]), *gu = at(buf, e, w->gu);
        PLSTM_TRY(plstm_activation_backward(ctx, dt, PLSTM_ACT_GELU, cnt, at(buf, e, w->n[i]), ga,
                                            ga));
        if (s->norm == PLSTM_STEM_NORM_INSTANCE)
            PLSTM_TRY(plstm_instance_norm_backward(ctx, dt, B, h * wd, co, s->eps,
                                                   at(buf, e, w->u[i]), cat(params, e, s->g[i]),
                                                   ga, gu, at(grads, e, s->g[i]),
                                                   at(grads, e, s->nb[i])));
        else
            PLSTM_TRY(plstm_norm_backward(ctx, dt, PLSTM_NORM_RMS, B * h * wd, co, 1, s->eps,
                                          at(buf, e, w->u[i]), cat(params, e, s->g[i]), ga, gu,
                                          at(grads, e, s->g[i]), NULL));
        const int cin = i ? s->channels[i - 1] : s->cin;
        const void *in = i ? at(buf, e, w->a[i - 1]) : pixels;
        void *din = i ? at(buf, e, w->ga[i - 1]) : dpixels;
        h *= st, wd *= st;
        void *dconv = q && din ? at(buf, e, w->gp) : din;
        PLSTM_TRY(plstm_patch_embed_backward(ctx, dt, B, h + 2 * q, wd + 2 * q, cin, co, s->kernel,
                                             st, q ? at(buf, e, w->p[i]) : in,
                                             cat(params, e, s->w[i]), gu, dconv,
                                             at(grads, e, s->w[i]), at(grads, e, s->b[i])));
        if (q && din)
            PLSTM_TRY(plstm_pad2d_backward(ctx, dt, B, h, wd, cin, q, dconv, din));
    }
    return PLSTM_OK;
}
