/* safetensors writer: collects tensors (borrowed data) and metadata, then
 * writes header + data atomically or into a buffer. */
#include "plstm/safetensors.h"
#include "core/status_internal.h"
#include "io/atomic_file.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name;
    plstm_dtype dtype;
    int rank;
    int64_t *shape;
    const void *data;
    size_t nbytes;
} wtensor;

struct plstm_safetensors_writer {
    wtensor *t;
    size_t n, cap;
    char **mkey, **mval;
    size_t nm, capm;
};

/* The serialized form: header text (padded) and the data order. */
typedef struct {
    char *header;      /* padded with spaces to header_len bytes */
    size_t header_len;
    size_t *order;     /* tensor indices in data-section order   */
    size_t data_size;
} layout;

static void free_layout(layout *l)
{
    free(l->header);
    free(l->order);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* jansson refuses invalid UTF-8, which is exactly the check the format needs. */
static int valid_utf8(const char *s)
{
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

plstm_status plstm_safetensors_writer_create(plstm_safetensors_writer **w)
{
    PLSTM_CHECK_ARG(w != NULL, "safetensors writer: NULL argument");
    *w = calloc(1, sizeof **w);
    if (!*w)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory creating a safetensors writer");
    return PLSTM_OK;
}

void plstm_safetensors_writer_destroy(plstm_safetensors_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; ++i) {
        free(w->t[i].name);
        free(w->t[i].shape);
    }
    for (size_t i = 0; i < w->nm; ++i) {
        free(w->mkey[i]);
        free(w->mval[i]);
    }
    free(w->t);
    free(w->mkey);
    free(w->mval);
    free(w);
}

plstm_status plstm_safetensors_writer_add_tensor(plstm_safetensors_writer *w, const char *name,
                                                 plstm_dtype dtype, int rank,
                                                 const int64_t *shape, const void *data)
{
    PLSTM_CHECK_ARG(w != NULL && name != NULL, "safetensors writer: NULL argument");
    PLSTM_CHECK_ARG(name[0] != '\0' && strcmp(name, "__metadata__") != 0,
                    "safetensors writer: tensor name '%.200s' is reserved or empty", name);
    PLSTM_CHECK_ARG(valid_utf8(name), "safetensors writer: tensor name is not valid UTF-8");
    PLSTM_CHECK_ARG(plstm_dtype_size(dtype) != 0, "safetensors writer: tensor '%.200s': bad dtype %d",
                    name, (int)dtype);
    PLSTM_CHECK_ARG(rank >= 0 && (rank == 0 || shape != NULL),
                    "safetensors writer: tensor '%.200s': bad rank %d or NULL shape", name, rank);
    for (size_t i = 0; i < w->n; ++i)
        PLSTM_CHECK_ARG(strcmp(w->t[i].name, name) != 0,
                        "safetensors writer: duplicate tensor name '%.200s'", name);
    uint64_t numel = 1;
    for (int d = 0; d < rank; ++d) {
        PLSTM_CHECK_ARG(shape[d] >= 0, "safetensors writer: tensor '%.200s': negative dim %lld",
                        name, (long long)shape[d]);
        uint64_t dim = (uint64_t)shape[d];
        PLSTM_CHECK_ARG(dim == 0 || numel <= INT64_MAX / dim,
                        "safetensors writer: tensor '%.200s': size overflows", name);
        numel *= dim;
    }
    uint64_t esize = plstm_dtype_size(dtype);
    PLSTM_CHECK_ARG(numel <= INT64_MAX / esize && numel * esize <= SIZE_MAX,
                    "safetensors writer: tensor '%.200s': size overflows", name);
    size_t nbytes = (size_t)(numel * esize);
    PLSTM_CHECK_ARG(data != NULL || nbytes == 0, "safetensors writer: tensor '%.200s': NULL data",
                    name);
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        wtensor *t = realloc(w->t, cap * sizeof *t);
        if (!t)
            return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory adding tensor '%.200s'", name);
        w->t = t;
        w->cap = cap;
    }
    wtensor *e = &w->t[w->n];
    e->name = dup_str(name);
    e->shape = malloc((rank ? (size_t)rank : 1) * sizeof *e->shape);
    if (!e->name || !e->shape) {
        free(e->name);
        free(e->shape);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory adding tensor '%.200s'", name);
    }
    if (rank)
        memcpy(e->shape, shape, (size_t)rank * sizeof *shape);
    e->dtype = dtype;
    e->rank = rank;
    e->data = data;
    e->nbytes = nbytes;
    w->n++;
    return PLSTM_OK;
}

plstm_status plstm_safetensors_writer_add_metadata(plstm_safetensors_writer *w, const char *key,
                                                   const char *value)
{
    PLSTM_CHECK_ARG(w != NULL && key != NULL && value != NULL, "safetensors writer: NULL argument");
    PLSTM_CHECK_ARG(valid_utf8(key) && valid_utf8(value),
                    "safetensors writer: metadata '%.200s' is not valid UTF-8", key);
    for (size_t i = 0; i < w->nm; ++i)
        PLSTM_CHECK_ARG(strcmp(w->mkey[i], key) != 0,
                        "safetensors writer: duplicate metadata key '%.200s'", key);
    if (w->nm == w->capm) {
        size_t cap = w->capm ? 2 * w->capm : 16;
        char **k = realloc(w->mkey, cap * sizeof *k);
        if (k)
            w->mkey = k;
        char **v = realloc(w->mval, cap * sizeof *v);
        if (v)
            w->mval = v;
        if (!k || !v)
            return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory adding metadata");
        w->capm = cap;
    }
    char *k = dup_str(key), *v = dup_str(value);
    if (!k || !v) {
        free(k);
        free(v);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory adding metadata");
    }
    w->mkey[w->nm] = k;
    w->mval[w->nm] = v;
    w->nm++;
    return PLSTM_OK;
}

/* Data order: decreasing element size, order added within a size, so every
 * begin offset is a multiple of its element size. Header order: as added. */
static plstm_status make_layout(const plstm_safetensors_writer *w, layout *l)
{
    memset(l, 0, sizeof *l);
    size_t *offset = malloc((w->n ? w->n : 1) * sizeof *offset);
    l->order = malloc((w->n ? w->n : 1) * sizeof *l->order);
    json_t *root = json_object();
    plstm_status s = PLSTM_OK;
    if (!offset || !l->order || !root) {
        s = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory serializing safetensors");
        goto done;
    }
    size_t k = 0, pos = 0;
    for (size_t esize = 8; esize >= 1; esize /= 2)
        for (size_t i = 0; i < w->n; ++i)
            if (plstm_dtype_size(w->t[i].dtype) == esize) {
                l->order[k++] = i;
                offset[i] = pos;
                pos += w->t[i].nbytes;
            }
    l->data_size = pos;
    int bad = 0;
    if (w->nm) {
        json_t *meta = json_object();
        bad |= json_object_set_new(root, "__metadata__", meta) != 0;
        for (size_t i = 0; i < w->nm && !bad; ++i)
            bad |= json_object_set_new(meta, w->mkey[i], json_string(w->mval[i])) != 0;
    }
    for (size_t i = 0; i < w->n && !bad; ++i) {
        const wtensor *t = &w->t[i];
        json_t *info = json_object(), *shape = json_array(), *offs = json_array();
        bad |= json_object_set_new(root, t->name, info) != 0;
        bad |= json_object_set_new(info, "dtype", json_string(plstm_dtype_name(t->dtype))) != 0;
        bad |= json_object_set_new(info, "shape", shape) != 0;
        bad |= json_object_set_new(info, "data_offsets", offs) != 0;
        for (int d = 0; d < t->rank && !bad; ++d)
            bad |= json_array_append_new(shape, json_integer(t->shape[d])) != 0;
        bad |= json_array_append_new(offs, json_integer((json_int_t)offset[i])) != 0;
        bad |= json_array_append_new(offs, json_integer((json_int_t)(offset[i] + t->nbytes))) != 0;
    }
    char *text = bad ? NULL : json_dumps(root, JSON_COMPACT);
    if (!text) {
        s = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory serializing safetensors header");
        goto done;
    }
    size_t len = strlen(text);
    l->header_len = (len + 7) / 8 * 8;
    l->header = malloc(l->header_len);
    if (!l->header) {
        free(text);
        s = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory serializing safetensors header");
        goto done;
    }
    memcpy(l->header, text, len);
    memset(l->header + len, ' ', l->header_len - len);
    free(text);
    if (l->header_len > PLSTM_SAFETENSORS_MAX_HEADER)
        s = plstm_fail(PLSTM_ERR_INVALID_ARGUMENT,
                       "safetensors writer: header of %zu bytes exceeds the format's limit",
                       l->header_len);
done:
    json_decref(root);
    free(offset);
    if (s != PLSTM_OK)
        free_layout(l);
    return s;
}

static void le64(unsigned char out[8], uint64_t v)
{
    for (int i = 0; i < 8; ++i)
        out[i] = (unsigned char)(v >> (8 * i));
}

plstm_status plstm_safetensors_writer_serialize(const plstm_safetensors_writer *w, void **buf,
                                                size_t *size)
{
    PLSTM_CHECK_ARG(w != NULL && buf != NULL && size != NULL, "safetensors writer: NULL argument");
    *buf = NULL;
    *size = 0;
    layout l;
    PLSTM_TRY(make_layout(w, &l));
    size_t total = 8 + l.header_len + l.data_size;
    unsigned char *out = total >= l.data_size ? malloc(total) : NULL;
    if (!out) {
        free_layout(&l);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory for a %zu-byte file", total);
    }
    le64(out, l.header_len);
    memcpy(out + 8, l.header, l.header_len);
    size_t pos = 8 + l.header_len;
    for (size_t k = 0; k < w->n; ++k) {
        const wtensor *t = &w->t[l.order[k]];
        if (t->nbytes)
            memcpy(out + pos, t->data, t->nbytes);
        pos += t->nbytes;
    }
    free_layout(&l);
    *buf = out;
    *size = total;
    return PLSTM_OK;
}

plstm_status plstm_safetensors_writer_write(const plstm_safetensors_writer *w, const char *path)
{
    PLSTM_CHECK_ARG(w != NULL && path != NULL, "safetensors writer: NULL argument");
    layout l;
    PLSTM_TRY(make_layout(w, &l));
    plstm_atomic_file *af = NULL;
    plstm_status s = plstm_atomic_file_open(&af, path);
    if (s == PLSTM_OK) {
        unsigned char prefix[8];
        le64(prefix, l.header_len);
        s = plstm_atomic_file_write(af, prefix, 8);
        if (s == PLSTM_OK)
            s = plstm_atomic_file_write(af, l.header, l.header_len);
        for (size_t k = 0; k < w->n && s == PLSTM_OK; ++k)
            s = plstm_atomic_file_write(af, w->t[l.order[k]].data, w->t[l.order[k]].nbytes);
        if (s == PLSTM_OK)
            s = plstm_atomic_file_commit(af);
        else
            plstm_atomic_file_abort(af);
    }
    free_layout(&l);
    return s;
}
