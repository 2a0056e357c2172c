/* Training checkpoints in one safetensors file (layout in train.h). Loading
 * reads everything into temporaries and validates it all before the caller's
 * buffers are touched. */
#include "plstm/train.h"
#include "core/status_internal.h"
#include "train/json_diff.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define CKPT_FORMAT "plstm-checkpoint"
#define CKPT_VERSION "1"

static plstm_status check_json(const char *what, const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &err);
    if (!j)
        return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "checkpoint: %s is not valid JSON: %s", what,
                          err.text);
    json_decref(j);
    return PLSTM_OK;
}

static plstm_status add_i64(plstm_safetensors_writer *w, const char *name, const int64_t *v)
{
    return plstm_safetensors_writer_add_tensor(w, name, PLSTM_I64, 0, NULL, v);
}

static plstm_status build(plstm_safetensors_writer *w, const plstm_params *layout,
                          const plstm_checkpoint *ck, int64_t *rng_words)
{
    char step_text[32];
    snprintf(step_text, sizeof step_text, "%lld", (long long)ck->step);
    PLSTM_TRY(plstm_safetensors_writer_add_metadata(w, "format", CKPT_FORMAT));
    PLSTM_TRY(plstm_safetensors_writer_add_metadata(w, "format_version", CKPT_VERSION));
    PLSTM_TRY(plstm_safetensors_writer_add_metadata(w, "model", ck->model_name));
    PLSTM_TRY(plstm_safetensors_writer_add_metadata(w, "config", ck->config_json));
    PLSTM_TRY(plstm_safetensors_writer_add_metadata(w, "extra",
                                                    ck->extra_json ? ck->extra_json : ""));
    PLSTM_TRY(plstm_safetensors_writer_add_metadata(w, "step", step_text));
    PLSTM_TRY(plstm_params_save(layout, ck->params, PLSTM_F32, w, "params/"));
    if (ck->adam_m)
        PLSTM_TRY(plstm_params_save(layout, ck->adam_m, PLSTM_F32, w, "adam_m/"));
    if (ck->adam_v)
        PLSTM_TRY(plstm_params_save(layout, ck->adam_v, PLSTM_F32, w, "adam_v/"));
    PLSTM_TRY(add_i64(w, "step", &ck->step));
    PLSTM_TRY(add_i64(w, "data_position", &ck->data_position));
    for (int i = 0; i < ck->num_rngs; i++) {
        memcpy(&rng_words[2 * i], &ck->rngs[i].key, 8);
        memcpy(&rng_words[2 * i + 1], &ck->rngs[i].counter, 8);
    }
    const int64_t shape[2] = {ck->num_rngs, 2};
    return plstm_safetensors_writer_add_tensor(w, "rng", PLSTM_I64, 2, shape, rng_words);
}

static plstm_status check_save_args(const plstm_params *layout, const plstm_checkpoint *ck)
{
    PLSTM_CHECK_ARG(layout && ck && ck->params, "plstm_checkpoint_save: NULL argument");
    PLSTM_CHECK_ARG(ck->model_name && ck->model_name[0], "checkpoint: model name missing");
    PLSTM_CHECK_ARG(ck->config_json, "checkpoint: config JSON missing");
    PLSTM_CHECK_ARG(ck->step >= 0 && ck->data_position >= 0,
                    "checkpoint: negative step %lld or data position %lld", (long long)ck->step,
                    (long long)ck->data_position);
    PLSTM_CHECK_ARG(ck->num_rngs >= 0 && (ck->rngs || ck->num_rngs == 0),
                    "checkpoint: %d random streams without states", ck->num_rngs);
    PLSTM_TRY(check_json("the config", ck->config_json));
    if (ck->extra_json && ck->extra_json[0])
        PLSTM_TRY(check_json("the extra state", ck->extra_json));
    return PLSTM_OK;
}

plstm_status plstm_checkpoint_save(const char *path, const plstm_params *layout,
                                   const plstm_checkpoint *ck)
{
    PLSTM_CHECK_ARG(path, "plstm_checkpoint_save: NULL path");
    PLSTM_TRY(check_save_args(layout, ck));
    int64_t *rng_words = malloc(((size_t)ck->num_rngs * 2 + 1) * sizeof *rng_words);
    plstm_safetensors_writer *w = NULL;
    plstm_status st = rng_words ? plstm_safetensors_writer_create(&w)
                                : plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "checkpoint: out of memory");
    if (st == PLSTM_OK)
        st = build(w, layout, ck, rng_words);
    if (st == PLSTM_OK)
        st = plstm_safetensors_writer_write(w, path);
    plstm_safetensors_writer_destroy(w);
    free(rng_words);
    return st;
}

/* ---- loading ------------------------------------------------------------- */

static plstm_status check_header(const char *path, const plstm_safetensors *st,
                                 const plstm_checkpoint *ck)
{
    const char *format = plstm_safetensors_metadata(st, "format");
    if (!format || strcmp(format, CKPT_FORMAT))
        return plstm_fail(PLSTM_ERR_FORMAT, "%s is not a plstm checkpoint (metadata format '%s')",
                          path, format ? format : "(none)");
    const char *version = plstm_safetensors_metadata(st, "format_version");
    if (!version || strcmp(version, CKPT_VERSION))
        return plstm_fail(PLSTM_ERR_FORMAT, "%s: checkpoint format version '%s', expected '%s'",
                          path, version ? version : "(none)", CKPT_VERSION);
    const char *model = plstm_safetensors_metadata(st, "model");
    const char *config = plstm_safetensors_metadata(st, "config");
    if (!model || !config)
        return plstm_fail(PLSTM_ERR_FORMAT, "%s: checkpoint lacks the %s metadata", path,
                          model ? "config" : "model");
    if (ck->model_name && strcmp(model, ck->model_name))
        return plstm_fail(PLSTM_ERR_FORMAT, "%s holds model '%s', not '%s'", path, model,
                          ck->model_name);
    if (ck->config_json) {
        char diff[512];
        PLSTM_TRY(plstm_json_diff(config, ck->config_json, diff, sizeof diff));
        if (diff[0])
            return plstm_fail(PLSTM_ERR_FORMAT,
                              "%s was written with a different configuration: %s", path, diff);
    }
    return PLSTM_OK;
}

static plstm_status check_f32(const char *path, const plstm_params *layout,
                              const plstm_safetensors *st, const char *prefix)
{
    char key[PLSTM_PARAM_NAME_MAX + 16];
    for (size_t i = 0; i < plstm_params_count(layout); i++) {
        snprintf(key, sizeof key, "%s%s", prefix, plstm_params_at(layout, i)->name);
        const plstm_safetensors_tensor *t = plstm_safetensors_find(st, key);
        if (t && t->dtype != PLSTM_F32)
            return plstm_fail(PLSTM_ERR_FORMAT, "%s: tensor %s is %s, checkpoints hold F32", path,
                              key, plstm_dtype_name(t->dtype));
    }
    return PLSTM_OK;
}

static int has_prefix(const plstm_safetensors *st, const char *prefix)
{
    for (size_t i = 0; i < plstm_safetensors_count(st); i++)
        if (!strncmp(plstm_safetensors_at(st, i)->name, prefix, strlen(prefix)))
            return 1;
    return 0;
}

static plstm_status load_buffer(const char *path, const plstm_params *layout,
                                const plstm_safetensors *st, const char *prefix, float *dst)
{
    if (strcmp(prefix, "params/") && !has_prefix(st, prefix))
        return plstm_fail(PLSTM_ERR_FORMAT,
                          "%s holds no optimizer state (no %s tensors): it cannot resume training",
                          path, prefix);
    PLSTM_TRY(check_f32(path, layout, st, prefix));
    plstm_status s = plstm_params_load(layout, dst, PLSTM_F32, st, prefix, 1);
    if (s != PLSTM_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", plstm_last_error());
        return plstm_fail(s, "%s: %s", path, msg);
    }
    return PLSTM_OK;
}

static plstm_status read_scalar(const char *path, const plstm_safetensors *st, const char *name,
                                int64_t *v)
{
    const plstm_safetensors_tensor *t = plstm_safetensors_find(st, name);
    if (!t || t->dtype != PLSTM_I64 || t->rank != 0)
        return plstm_fail(PLSTM_ERR_FORMAT, "%s: checkpoint %s tensor '%s' (I64 scalar)", path,
                          t ? "has a malformed" : "lacks the", name);
    PLSTM_TRY(plstm_safetensors_read_i64(st, name, v, 1));
    if (*v < 0)
        return plstm_fail(PLSTM_ERR_FORMAT, "%s: negative %s %lld", path, name, (long long)*v);
    return PLSTM_OK;
}

static plstm_status read_rngs(const char *path, const plstm_safetensors *st, int count,
                              int64_t *words)
{
    const plstm_safetensors_tensor *t = plstm_safetensors_find(st, "rng");
    if (!t || t->dtype != PLSTM_I64 || t->rank != 2 || t->shape[1] != 2)
        return plstm_fail(PLSTM_ERR_FORMAT, "%s: checkpoint %s tensor 'rng' (I64 [n, 2])", path,
                          t ? "has a malformed" : "lacks the");
    if (t->shape[0] != count)
        return plstm_fail(PLSTM_ERR_FORMAT,
                          "%s holds %lld random generator states, this run has %d", path,
                          (long long)t->shape[0], count);
    return count ? plstm_safetensors_read_i64(st, "rng", words, (size_t)count * 2) : PLSTM_OK;
}

typedef struct staged {
    float *p, *m, *v;
    int64_t *rng;
    int64_t step, pos;
    char *extra;
} staged;

static plstm_status stage(const char *path, const plstm_params *layout,
                          const plstm_safetensors *st, const plstm_checkpoint *ck, staged *s)
{
    const size_t size = plstm_params_size(layout);
    s->p = calloc(size + 1, sizeof(float));
    s->m = ck->adam_m ? calloc(size + 1, sizeof(float)) : NULL;
    s->v = ck->adam_v ? calloc(size + 1, sizeof(float)) : NULL;
    s->rng = malloc(((size_t)ck->num_rngs * 2 + 1) * sizeof(int64_t));
    if (!s->p || (ck->adam_m && !s->m) || (ck->adam_v && !s->v) || !s->rng)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "%s: out of memory loading a checkpoint", path);
    PLSTM_TRY(check_header(path, st, ck));
    PLSTM_TRY(load_buffer(path, layout, st, "params/", s->p));
    if (s->m)
        PLSTM_TRY(load_buffer(path, layout, st, "adam_m/", s->m));
    if (s->v)
        PLSTM_TRY(load_buffer(path, layout, st, "adam_v/", s->v));
    PLSTM_TRY(read_scalar(path, st, "step", &s->step));
    PLSTM_TRY(read_scalar(path, st, "data_position", &s->pos));
    PLSTM_TRY(read_rngs(path, st, ck->num_rngs, s->rng));
    const char *extra = plstm_safetensors_metadata(st, "extra");
    s->extra = strdup(extra ? extra : "");
    if (!s->extra)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    return PLSTM_OK;
}

plstm_status plstm_checkpoint_load(const char *path, const plstm_params *layout,
                                   plstm_checkpoint *ck, char **extra_json)
{
    PLSTM_CHECK_ARG(path && layout && ck && ck->params, "plstm_checkpoint_load: NULL argument");
    PLSTM_CHECK_ARG(ck->num_rngs >= 0 && (ck->rngs || ck->num_rngs == 0),
                    "checkpoint: %d random streams without states", ck->num_rngs);
    plstm_safetensors *st = NULL;
    PLSTM_TRY(plstm_safetensors_open(&st, path));
    staged s = {0};
    plstm_status status = stage(path, layout, st, ck, &s);
    plstm_safetensors_close(st);
    if (status == PLSTM_OK) { /* everything validated: commit */
        const size_t bytes = plstm_params_size(layout) * sizeof(float);
        memcpy(ck->params, s.p, bytes);
        if (s.m)
            memcpy(ck->adam_m, s.m, bytes);
        if (s.v)
            memcpy(ck->adam_v, s.v, bytes);
        ck->step = s.step;
        ck->data_position = s.pos;
        for (int i = 0; i < ck->num_rngs; i++) {
            memcpy(&ck->rngs[i].key, &s.rng[2 * i], 8);
            memcpy(&ck->rngs[i].counter, &s.rng[2 * i + 1], 8);
        }
        if (extra_json) {
            *extra_json = s.extra;
            s.extra = NULL;
        }
    }
    free(s.p);
    free(s.m);
    free(s.v);
    free(s.rng);
    free(s.extra);
    return status;
}

static plstm_status dup_out(char **out, const char *value)
{
    if (!out)
        return PLSTM_OK;
    *out = strdup(value);
    return *out ? PLSTM_OK : plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory");
}

plstm_status plstm_checkpoint_info(const char *path, char **model_name, char **config_json,
                                   int64_t *step)
{
    PLSTM_CHECK_ARG(path, "plstm_checkpoint_info: NULL path");
    plstm_safetensors *st = NULL;
    PLSTM_TRY(plstm_safetensors_open(&st, path));
    const plstm_checkpoint none = {0};
    int64_t s = 0;
    plstm_status status = check_header(path, st, &none);
    if (status == PLSTM_OK)
        status = read_scalar(path, st, "step", &s);
    char *model = NULL, *config = NULL;
    if (status == PLSTM_OK)
        status = dup_out(&model, plstm_safetensors_metadata(st, "model"));
    if (status == PLSTM_OK)
        status = dup_out(&config, plstm_safetensors_metadata(st, "config"));
    plstm_safetensors_close(st);
    if (status != PLSTM_OK) {
        free(model);
        free(config);
        return status;
    }
    if (model_name)
        *model_name = model;
    else
        free(model);
    if (config_json)
        *config_json = config;
    else
        free(config);
    if (step)
        *step = s;
    return PLSTM_OK;
}
