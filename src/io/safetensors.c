/* safetensors reader: loads a whole file, validates the header against the
 * data section, then serves tensors and metadata. See include/plstm/safetensors.h. */
#include "plstm/safetensors.h"
#include "core/status_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DATA_ALIGN 64

struct plstm_safetensors {
    unsigned char *alloc;        /* owns the file bytes                     */
    const unsigned char *data;   /* data section, DATA_ALIGN-aligned        */
    size_t data_size;
    size_t ntensors;
    plstm_safetensors_tensor *tensors; /* header order                      */
    size_t *by_name;             /* tensor indices sorted by name           */
    size_t nmeta;
    char **meta_keys;
    char **meta_values;
};

static const plstm_dtype all_dtypes[] = {PLSTM_F32, PLSTM_F64, PLSTM_BF16, PLSTM_F16,
                                         PLSTM_I64, PLSTM_I32, PLSTM_U8};

static int dtype_from_name(const char *s, plstm_dtype *out)
{
    for (size_t i = 0; i < sizeof all_dtypes / sizeof all_dtypes[0]; ++i)
        if (strcmp(s, plstm_dtype_name(all_dtypes[i])) == 0) {
            *out = all_dtypes[i];
            return 1;
        }
    return 0;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void plstm_safetensors_close(plstm_safetensors *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->ntensors; ++i) {
        free((void *)st->tensors[i].name);
        free((void *)st->tensors[i].shape);
    }
    for (size_t i = 0; i < st->nmeta; ++i) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->tensors);
    free(st->by_name);
    free(st->meta_keys);
    free(st->meta_values);
    free(st->alloc);
    free(st);
}

/* ---- header parsing ------------------------------------------------------ */

/* Reads a JSON integer in [0, INT64_MAX]; 0 if it is not one. */
static int get_nonneg(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return 0;
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

static plstm_status parse_tensor(plstm_safetensors *st, plstm_safetensors_tensor *t,
                                 const char *name, const json_t *info)
{
    t->name = dup_str(name);
    if (!t->name)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory reading tensor '%.200s'", name);
    if (!json_is_object(info))
        return plstm_fail(PLSTM_ERR_FORMAT, "tensor '%.200s': header entry is not an object",
                          name);

    const json_t *jd = json_object_get(info, "dtype");
    if (!json_is_string(jd))
        return plstm_fail(PLSTM_ERR_FORMAT, "tensor '%.200s': missing or non-string \"dtype\"",
                          name);
    if (!dtype_from_name(json_string_value(jd), &t->dtype))
        return plstm_fail(PLSTM_ERR_FORMAT, "tensor '%.200s': unknown or unsupported dtype '%.40s'",
                          name, json_string_value(jd));
    uint64_t esize = plstm_dtype_size(t->dtype);

    const json_t *js = json_object_get(info, "shape");
    if (!json_is_array(js))
        return plstm_fail(PLSTM_ERR_FORMAT, "tensor '%.200s': missing or non-list \"shape\"", name);
    size_t rank = json_array_size(js);
    if (rank > 1000000)
        return plstm_fail(PLSTM_ERR_FORMAT, "tensor '%.200s': rank %zu is absurd", name, rank);
    int64_t *shape = malloc((rank ? rank : 1) * sizeof *shape);
    if (!shape)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory reading tensor '%.200s'", name);
    t->shape = shape;
    t->rank = (int)rank;
    uint64_t numel = 1;
    int overflow = 0;
    for (size_t d = 0; d < rank; ++d) {
        uint64_t dim;
        if (!get_nonneg(json_array_get(js, d), &dim))
            return plstm_fail(PLSTM_ERR_FORMAT,
                              "tensor '%.200s': shape entry %zu is not a non-negative integer",
                              name, d);
        shape[d] = (int64_t)dim;
        if (dim != 0 && numel > INT64_MAX / dim)
            overflow = 1;
        else
            numel *= dim;
    }
    /* Like the reference: an overflowing product is an error even if a later dim is 0. */
    if (overflow || numel > INT64_MAX / esize)
        return plstm_fail(PLSTM_ERR_FORMAT, "tensor '%.200s': shape size overflows", name);
    t->numel = (int64_t)numel;
    uint64_t nbytes = numel * esize;

    const json_t *jo = json_object_get(info, "data_offsets");
    uint64_t begin, end;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !get_nonneg(json_array_get(jo, 0), &begin)
        || !get_nonneg(json_array_get(jo, 1), &end))
        return plstm_fail(PLSTM_ERR_FORMAT,
                          "tensor '%.200s': \"data_offsets\" is not two non-negative integers",
                          name);
    if (begin > end)
        return plstm_fail(PLSTM_ERR_FORMAT,
                          "tensor '%.200s': data_offsets begin %llu > end %llu", name,
                          (unsigned long long)begin, (unsigned long long)end);
    if (end > st->data_size)
        return plstm_fail(PLSTM_ERR_FORMAT,
                          "tensor '%.200s': data_offsets end %llu is past the data section "
                          "(%zu bytes)", name, (unsigned long long)end, st->data_size);
    if (end - begin != nbytes)
        return plstm_fail(PLSTM_ERR_FORMAT,
                          "tensor '%.200s': data_offsets span %llu bytes but dtype %s and its "
                          "shape need %llu", name, (unsigned long long)(end - begin),
                          plstm_dtype_name(t->dtype), (unsigned long long)nbytes);
    t->nbytes = (size_t)nbytes;
    t->offset = (size_t)begin;
    t->data = st->data + begin;
    t->aligned = ((uintptr_t)t->data % esize) == 0;
    return PLSTM_OK;
}

static plstm_status parse_metadata(plstm_safetensors *st, const json_t *meta)
{
    if (!json_is_object(meta))
        return plstm_fail(PLSTM_ERR_FORMAT, "\"__metadata__\" is not an object");
    size_t n = json_object_size(meta);
    st->meta_keys = calloc(n ? n : 1, sizeof *st->meta_keys);
    st->meta_values = calloc(n ? n : 1, sizeof *st->meta_values);
    if (!st->meta_keys || !st->meta_values)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory reading metadata");
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)meta, key, value) {
        if (!json_is_string(value))
            return plstm_fail(PLSTM_ERR_FORMAT, "metadata '%.200s' is not a string", key);
        st->meta_keys[st->nmeta] = dup_str(key);
        st->meta_values[st->nmeta] = dup_str(json_string_value(value));
        st->nmeta++;
        if (!st->meta_keys[st->nmeta - 1] || !st->meta_values[st->nmeta - 1])
            return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory reading metadata");
    }
    return PLSTM_OK;
}

typedef struct { size_t begin, end, idx; } span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

/* Tensors must tile the data section exactly: no overlap, no gap, nothing left over. */
static plstm_status check_packing(const plstm_safetensors *st)
{
    span *sp = malloc((st->ntensors ? st->ntensors : 1) * sizeof *sp);
    if (!sp)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory validating tensors");
    for (size_t i = 0; i < st->ntensors; ++i)
        sp[i] = (span){st->tensors[i].offset, st->tensors[i].offset + st->tensors[i].nbytes, i};
    qsort(sp, st->ntensors, sizeof *sp, cmp_span);
    size_t pos = 0;
    plstm_status s = PLSTM_OK;
    for (size_t k = 0; k < st->ntensors && s == PLSTM_OK; ++k) {
        const char *name = st->tensors[sp[k].idx].name;
        if (sp[k].begin < pos)
            s = plstm_fail(PLSTM_ERR_FORMAT, "tensor '%.200s' overlaps tensor '%.200s'", name,
                           st->tensors[sp[k - 1].idx].name);
        else if (sp[k].begin > pos)
            s = plstm_fail(PLSTM_ERR_FORMAT,
                           "gap of %zu bytes before tensor '%.200s' (tensors must be packed)",
                           sp[k].begin - pos, name);
        pos = sp[k].end;
    }
    free(sp);
    if (s == PLSTM_OK && pos != st->data_size)
        s = plstm_fail(PLSTM_ERR_FORMAT, "%zu bytes of the data section belong to no tensor",
                       st->data_size - pos);
    return s;
}

typedef struct { const char *name; size_t idx; } named;

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const named *)a)->name, ((const named *)b)->name);
}

static plstm_status build_name_index(plstm_safetensors *st)
{
    st->by_name = malloc((st->ntensors ? st->ntensors : 1) * sizeof *st->by_name);
    if (!st->by_name)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory indexing tensors");
    /* Sort (name pointer, index) pairs so no global state is needed. */
    named *nm = malloc((st->ntensors ? st->ntensors : 1) * sizeof *nm);
    if (!nm)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory indexing tensors");
    for (size_t i = 0; i < st->ntensors; ++i)
        nm[i] = (named){st->tensors[i].name, i};
    qsort(nm, st->ntensors, sizeof *nm, cmp_name);
    plstm_status s = PLSTM_OK;
    for (size_t i = 0; i < st->ntensors; ++i) {
        st->by_name[i] = nm[i].idx;
        if (i > 0 && strcmp(nm[i].name, nm[i - 1].name) == 0 && s == PLSTM_OK)
            s = plstm_fail(PLSTM_ERR_FORMAT, "duplicate tensor name '%.200s'", nm[i].name);
    }
    free(nm);
    return s;
}

/* `file` holds `size` bytes with the data section at a DATA_ALIGN boundary. */
static plstm_status parse_file(plstm_safetensors *st, const unsigned char *file, size_t size,
                               size_t header_len)
{
    const char *header = (const char *)file + 8;
    st->data = file + 8 + header_len;
    st->data_size = size - 8 - header_len;
    if (header_len == 0 || header[0] != '{')
        return plstm_fail(PLSTM_ERR_FORMAT, "header does not start with '{'");
    json_error_t jerr;
    json_t *root = json_loadb(header, header_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return plstm_fail(PLSTM_ERR_FORMAT, "header is not valid JSON: %s (at byte %d)", jerr.text,
                          jerr.position);
    plstm_status s = PLSTM_OK;
    if (!json_is_object(root)) {
        s = plstm_fail(PLSTM_ERR_FORMAT, "header is not a JSON object");
        goto done;
    }
    const json_t *meta = json_object_get(root, "__metadata__");
    size_t n = json_object_size(root) - (meta ? 1 : 0);
    st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
    if (!st->tensors) {
        s = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory reading %zu tensors", n);
        goto done;
    }
    if (meta && (s = parse_metadata(st, meta)) != PLSTM_OK)
        goto done;
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        st->ntensors++; /* counted before parsing so close() frees partial entries */
        if ((s = parse_tensor(st, &st->tensors[st->ntensors - 1], key, value)) != PLSTM_OK)
            goto done;
    }
    if ((s = build_name_index(st)) != PLSTM_OK)
        goto done;
    s = check_packing(st);
done:
    json_decref(root);
    return s;
}

/* Validates the 8-byte prefix against the total size; returns the header length. */
static plstm_status check_prefix(const unsigned char *prefix, size_t size, size_t *header_len)
{
    if (size < 8)
        return plstm_fail(PLSTM_ERR_FORMAT,
                          "file is %zu bytes, shorter than the 8-byte header length", size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i)
        n = (n << 8) | prefix[i];
    if (n > PLSTM_SAFETENSORS_MAX_HEADER)
        return plstm_fail(PLSTM_ERR_FORMAT, "header length %llu exceeds the limit of %u bytes",
                          (unsigned long long)n, PLSTM_SAFETENSORS_MAX_HEADER);
    if (n > size - 8)
        return plstm_fail(PLSTM_ERR_FORMAT,
                          "header length %llu exceeds the %zu bytes after the length field",
                          (unsigned long long)n, size - 8);
    *header_len = (size_t)n;
    return PLSTM_OK;
}

/* Allocates the object and a buffer for `size` bytes whose data section is aligned. */
static plstm_status alloc_st(plstm_safetensors **out, size_t size, size_t header_len,
                             unsigned char **file)
{
    plstm_safetensors *st = calloc(1, sizeof *st);
    if (!st)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory opening safetensors");
    if (size > SIZE_MAX - DATA_ALIGN || !(st->alloc = malloc(size + DATA_ALIGN))) {
        free(st);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory for a %zu-byte file", size);
    }
    uintptr_t data_at = (uintptr_t)(st->alloc + 8 + header_len);
    size_t shift = (DATA_ALIGN - data_at % DATA_ALIGN) % DATA_ALIGN;
    *file = st->alloc + shift;
    *out = st;
    return PLSTM_OK;
}

static plstm_status finish_open(plstm_safetensors **out, plstm_safetensors *st,
                                const unsigned char *file, size_t size, size_t header_len)
{
    plstm_status s = parse_file(st, file, size, header_len);
    if (s != PLSTM_OK) {
        plstm_safetensors_close(st);
        return s;
    }
    *out = st;
    return PLSTM_OK;
}

plstm_status plstm_safetensors_open_memory(plstm_safetensors **out, const void *buf, size_t size)
{
    PLSTM_CHECK_ARG(out != NULL && (buf != NULL || size == 0), "safetensors: NULL argument");
    *out = NULL;
    size_t header_len = 0;
    PLSTM_TRY(check_prefix(buf, size, &header_len));
    plstm_safetensors *st = NULL;
    unsigned char *file = NULL;
    PLSTM_TRY(alloc_st(&st, size, header_len, &file));
    memcpy(file, buf, size);
    return finish_open(out, st, file, size, header_len);
}

/* Prefixes this thread's error message with the file path. */
static plstm_status with_path(plstm_status s, const char *path)
{
    char reason[768];
    snprintf(reason, sizeof reason, "%s", plstm_last_error());
    return plstm_fail(s, "'%s': %s", path, reason);
}

/* Reads exactly `n` bytes at `off`; 0 on error or early end of file. */
static int read_full(int fd, unsigned char *dst, size_t n, off_t off)
{
    while (n > 0) {
        ssize_t r = pread(fd, dst, n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return 0;
        dst += r;
        off += r;
        n -= (size_t)r;
    }
    return 1;
}

plstm_status plstm_safetensors_open(plstm_safetensors **out, const char *path)
{
    PLSTM_CHECK_ARG(out != NULL && path != NULL, "safetensors: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return plstm_fail(PLSTM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    plstm_status s = PLSTM_OK;
    if (fstat(fd, &sb) != 0) {
        s = plstm_fail(PLSTM_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        s = plstm_fail(PLSTM_ERR_IO, "'%s' is not a regular file", path);
    } else if ((uint64_t)sb.st_size > SIZE_MAX - DATA_ALIGN) {
        s = plstm_fail(PLSTM_ERR_IO, "'%s' is too large to load", path);
    }
    if (s != PLSTM_OK) {
        close(fd);
        return s;
    }
    size_t size = (size_t)sb.st_size;
    unsigned char prefix[8] = {0};
    size_t header_len = 0;
    if (size >= 8 && !read_full(fd, prefix, 8, 0))
        s = plstm_fail(PLSTM_ERR_IO, "cannot read '%s': %s", path,
                       errno ? strerror(errno) : "file shrank while reading");
    if (s == PLSTM_OK && (s = check_prefix(prefix, size, &header_len)) != PLSTM_OK)
        with_path(s, path);
    plstm_safetensors *st = NULL;
    unsigned char *file = NULL;
    if (s == PLSTM_OK)
        s = alloc_st(&st, size, header_len, &file);
    if (s == PLSTM_OK && !read_full(fd, file, size, 0)) {
        s = plstm_fail(PLSTM_ERR_IO, "cannot read '%s': %s", path,
                       errno ? strerror(errno) : "file shrank while reading");
        plstm_safetensors_close(st);
    }
    close(fd);
    if (s != PLSTM_OK)
        return s;
    s = finish_open(out, st, file, size, header_len);
    return s == PLSTM_ERR_FORMAT ? with_path(s, path) : s;
}

/* ---- accessors ----------------------------------------------------------- */

size_t plstm_safetensors_count(const plstm_safetensors *st) { return st ? st->ntensors : 0; }

const plstm_safetensors_tensor *plstm_safetensors_at(const plstm_safetensors *st, size_t i)
{
    return st && i < st->ntensors ? &st->tensors[i] : NULL;
}

const plstm_safetensors_tensor *plstm_safetensors_find(const plstm_safetensors *st,
                                                       const char *name)
{
    if (!st || !name)
        return NULL;
    size_t lo = 0, hi = st->ntensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const plstm_safetensors_tensor *t = &st->tensors[st->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

plstm_status plstm_safetensors_get(const plstm_safetensors *st, const char *name,
                                   const plstm_safetensors_tensor **tensor)
{
    PLSTM_CHECK_ARG(st != NULL && name != NULL && tensor != NULL, "safetensors: NULL argument");
    *tensor = plstm_safetensors_find(st, name);
    if (!*tensor)
        return plstm_fail(PLSTM_ERR_FORMAT, "tensor '%.200s' not found", name);
    return PLSTM_OK;
}

plstm_status plstm_safetensors_expect_shape(const plstm_safetensors *st, const char *name,
                                            int rank, const int64_t *shape)
{
    PLSTM_CHECK_ARG(rank >= 0 && (shape != NULL || rank == 0), "safetensors: bad expected shape");
    const plstm_safetensors_tensor *t;
    PLSTM_TRY(plstm_safetensors_get(st, name, &t));
    int same = t->rank == rank;
    for (int d = 0; same && d < rank; ++d)
        same = t->shape[d] == shape[d];
    if (same)
        return PLSTM_OK;
    char got[256], want[256];
    size_t gp = 0, wp = 0;
    got[0] = want[0] = '\0';
    for (int d = 0; d < t->rank && gp < sizeof got; ++d)
        gp += (size_t)snprintf(got + gp, sizeof got - gp, "%s%lld", d ? "," : "",
                               (long long)t->shape[d]);
    for (int d = 0; d < rank && wp < sizeof want; ++d)
        wp += (size_t)snprintf(want + wp, sizeof want - wp, "%s%lld", d ? "," : "",
                               (long long)shape[d]);
    return plstm_fail(PLSTM_ERR_FORMAT, "tensor '%.200s' has shape [%s], expected [%s]", name, got,
                      want);
}

const char *plstm_safetensors_metadata(const plstm_safetensors *st, const char *key)
{
    if (!st || !key)
        return NULL;
    for (size_t i = 0; i < st->nmeta; ++i)
        if (strcmp(st->meta_keys[i], key) == 0)
            return st->meta_values[i];
    return NULL;
}

size_t plstm_safetensors_metadata_count(const plstm_safetensors *st) { return st ? st->nmeta : 0; }

void plstm_safetensors_metadata_at(const plstm_safetensors *st, size_t i, const char **key,
                                   const char **value)
{
    int ok = st && i < st->nmeta;
    if (key)
        *key = ok ? st->meta_keys[i] : NULL;
    if (value)
        *value = ok ? st->meta_values[i] : NULL;
}
