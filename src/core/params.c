#include "plstm/params.h"
#include "core/status_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Views start at multiples of 16 elements (64 bytes for F32) for SIMD loads. */
enum { PARAM_ALIGN = 16 };

struct plstm_params {
    plstm_param_info *items;
    size_t count, cap;
    size_t size;  /* elements incl. padding */
    size_t numel; /* elements of the views */
};

plstm_status plstm_params_create(plstm_params **p)
{
    PLSTM_CHECK_ARG(p, "plstm_params_create: NULL argument");
    *p = calloc(1, sizeof **p);
    return *p ? PLSTM_OK : plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate a parameter set");
}

void plstm_params_destroy(plstm_params *p)
{
    if (p) {
        free(p->items);
        free(p);
    }
}

plstm_status plstm_params_declare(plstm_params *p, const char *name, int rank,
                                  const int64_t *shape, unsigned flags, size_t *offset)
{
    PLSTM_CHECK_ARG(p && name && (shape || rank == 0), "plstm_params_declare: NULL argument");
    PLSTM_CHECK_ARG(strlen(name) > 0 && strlen(name) < PLSTM_PARAM_NAME_MAX,
                    "parameter name '%s' is empty or too long", name);
    PLSTM_CHECK_ARG(rank >= 0 && rank <= PLSTM_PARAM_MAX_RANK, "parameter %s: rank %d", name,
                    rank);
    PLSTM_CHECK_ARG(!plstm_params_find(p, name), "parameter %s declared twice", name);
    size_t n = 1;
    for (int i = 0; i < rank; i++) {
        PLSTM_CHECK_ARG(shape[i] >= 1 && shape[i] < ((int64_t)1 << 31),
                        "parameter %s: bad size %lld on axis %d", name, (long long)shape[i], i);
        n *= (size_t)shape[i];
    }
    if (p->count == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        plstm_param_info *items = realloc(p->items, cap * sizeof *items);
        if (!items)
            return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot grow the parameter set");
        p->items = items;
        p->cap = cap;
    }
    plstm_param_info *it = &p->items[p->count++];
    memset(it, 0, sizeof *it);
    strcpy(it->name, name);
    it->rank = rank;
    for (int i = 0; i < rank; i++)
        it->shape[i] = shape[i];
    it->numel = n;
    it->flags = flags;
    it->offset = p->size;
    p->size += (n + PARAM_ALIGN - 1) / PARAM_ALIGN * PARAM_ALIGN;
    p->numel += n;
    if (offset)
        *offset = it->offset;
    return PLSTM_OK;
}

size_t plstm_params_count(const plstm_params *p) { return p->count; }

const plstm_param_info *plstm_params_at(const plstm_params *p, size_t i)
{
    return i < p->count ? &p->items[i] : NULL;
}

const plstm_param_info *plstm_params_find(const plstm_params *p, const char *name)
{
    for (size_t i = 0; i < p->count; i++)
        if (!strcmp(p->items[i].name, name))
            return &p->items[i];
    return NULL;
}

size_t plstm_params_size(const plstm_params *p) { return p->size; }

size_t plstm_params_numel(const plstm_params *p) { return p->numel; }

static plstm_status check_shape(const plstm_param_info *it, const plstm_safetensors_tensor *t)
{
    int same = t->rank == it->rank;
    for (int i = 0; same && i < it->rank; i++)
        same = t->shape[i] == it->shape[i];
    if (same)
        return PLSTM_OK;
    char want[128] = "", got[128] = "";
    for (int i = 0; i < it->rank; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? "," : "",
                 (long long)it->shape[i]);
    for (int i = 0; i < t->rank; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "," : "",
                 (long long)t->shape[i]);
    return plstm_fail(PLSTM_ERR_FORMAT, "parameter %s: file has shape [%s], model expects [%s]",
                      it->name, got, want);
}

plstm_status plstm_params_load(const plstm_params *p, void *data, plstm_dtype dtype,
                               const plstm_safetensors *st, const char *prefix, int strict)
{
    PLSTM_CHECK_ARG(p && data && st, "plstm_params_load: NULL argument");
    PLSTM_CHECK_ARG(dtype == PLSTM_F32 || dtype == PLSTM_F64, "plstm_params_load: dtype %s",
                    plstm_dtype_name(dtype));
    if (!prefix)
        prefix = "";
    const size_t plen = strlen(prefix);
    char key[PLSTM_PARAM_NAME_MAX + 256];
    for (size_t i = 0; i < p->count; i++) {
        const plstm_param_info *it = &p->items[i];
        snprintf(key, sizeof key, "%s%s", prefix, it->name);
        const plstm_safetensors_tensor *t = plstm_safetensors_find(st, key);
        if (!t) {
            if (strict)
                return plstm_fail(PLSTM_ERR_FORMAT, "parameter %s is missing from the file", key);
            continue;
        }
        PLSTM_TRY(check_shape(it, t));
        if (dtype == PLSTM_F32)
            PLSTM_TRY(plstm_safetensors_read_f32(st, key, (float *)data + it->offset, it->numel));
        else
            PLSTM_TRY(plstm_safetensors_read_f64(st, key, (double *)data + it->offset, it->numel));
    }
    if (strict) {
        for (size_t i = 0; i < plstm_safetensors_count(st); i++) {
            const char *name = plstm_safetensors_at(st, i)->name;
            if (!strncmp(name, prefix, plen) && !plstm_params_find(p, name + plen))
                return plstm_fail(PLSTM_ERR_FORMAT,
                                  "the file has tensor %s, which is not a parameter of this model",
                                  name);
        }
    }
    return PLSTM_OK;
}

plstm_status plstm_params_save(const plstm_params *p, const void *data, plstm_dtype dtype,
                               plstm_safetensors_writer *w, const char *prefix)
{
    PLSTM_CHECK_ARG(p && data && w, "plstm_params_save: NULL argument");
    PLSTM_CHECK_ARG(dtype == PLSTM_F32 || dtype == PLSTM_F64, "plstm_params_save: dtype %s",
                    plstm_dtype_name(dtype));
    char key[PLSTM_PARAM_NAME_MAX + 256];
    const size_t es = plstm_dtype_size(dtype);
    for (size_t i = 0; i < p->count; i++) {
        const plstm_param_info *it = &p->items[i];
        snprintf(key, sizeof key, "%s%s", prefix ? prefix : "", it->name);
        PLSTM_TRY(plstm_safetensors_writer_add_tensor(w, key, dtype, it->rank, it->shape,
                                                      (const char *)data + it->offset * es));
    }
    return PLSTM_OK;
}
