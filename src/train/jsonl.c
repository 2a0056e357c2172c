/* JSON-lines training log. Each record is written with a single write() on
 * an O_APPEND descriptor, so lines never interleave and reach the kernel
 * immediately. */
#include "plstm/train.h"
#include "core/status_internal.h"
#include "io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct plstm_jsonl {
    int fd;
    char *path;
    json_t *rec; /* record being built, NULL outside begin/end */
};

/* Keeps a complete line when it is a JSON object with no "step" past resume_step. */
static int keep_line(const char *line, size_t len, int64_t resume_step)
{
    json_error_t err;
    json_t *j = json_loadb(line, len, 0, &err);
    if (!j)
        return 0;
    const json_t *s = json_object_get(j, "step");
    const int keep = !s || !json_is_integer(s) || json_integer_value(s) <= resume_step;
    json_decref(j);
    return keep;
}

/* Rewrites `path` without the records past resume_step and a torn last line. */
static plstm_status trim_for_resume(const char *path, int64_t resume_step)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? PLSTM_OK
                               : plstm_fail(PLSTM_ERR_IO, "cannot read log %s: %s", path,
                                            strerror(errno));
    size_t cap = 1 << 16, size = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + size, 1, cap - size, f)) > 0) {
        size += got;
        if (size == cap) {
            char *t = realloc(buf, cap *= 2);
            if (!t)
                free(buf);
            buf = t;
        }
    }
    const int bad = ferror(f);
    fclose(f);
    if (!buf)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory reading log %s", path);
    if (bad) {
        free(buf);
        return plstm_fail(PLSTM_ERR_IO, "cannot read log %s", path);
    }
    size_t out = 0, pos = 0;
    while (pos < size) {
        char *nl = memchr(buf + pos, '\n', size - pos);
        if (!nl)
            break; /* torn last line */
        const size_t len = (size_t)(nl - (buf + pos)) + 1;
        if (keep_line(buf + pos, len - 1, resume_step)) {
            memmove(buf + out, buf + pos, len);
            out += len;
        }
        pos += len;
    }
    plstm_status st = out == size ? PLSTM_OK : plstm_atomic_write(path, buf, out);
    free(buf);
    return st;
}

plstm_status plstm_jsonl_open(plstm_jsonl **lg, const char *path, int64_t resume_step)
{
    PLSTM_CHECK_ARG(lg && path, "plstm_jsonl_open: NULL argument");
    *lg = NULL;
    if (resume_step >= 0)
        PLSTM_TRY(trim_for_resume(path, resume_step));
    const int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (resume_step < 0 ? O_TRUNC : 0);
    int fd = open(path, flags, 0666);
    if (fd < 0)
        return plstm_fail(PLSTM_ERR_IO, "cannot open log %s: %s", path, strerror(errno));
    plstm_jsonl *l = calloc(1, sizeof *l);
    if (l)
        l->path = strdup(path);
    if (!l || !l->path) {
        free(l);
        close(fd);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory opening log %s", path);
    }
    l->fd = fd;
    *lg = l;
    return PLSTM_OK;
}

void plstm_jsonl_close(plstm_jsonl *lg)
{
    if (!lg)
        return;
    json_decref(lg->rec);
    close(lg->fd);
    free(lg->path);
    free(lg);
}

plstm_status plstm_jsonl_begin(plstm_jsonl *lg)
{
    PLSTM_CHECK_ARG(lg, "plstm_jsonl_begin: NULL log");
    json_decref(lg->rec);
    lg->rec = json_object();
    return lg->rec ? PLSTM_OK : plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "log: out of memory");
}

static plstm_status add(plstm_jsonl *lg, const char *key, json_t *value)
{
    if (!value)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "log: out of memory");
    if (!lg || !lg->rec || !key) {
        json_decref(value);
        return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "log: field '%s' outside begin/end",
                          key ? key : "(null)");
    }
    if (json_object_set_new(lg->rec, key, value) != 0)
        return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "log: bad key '%s'", key);
    return PLSTM_OK;
}

plstm_status plstm_jsonl_add_int(plstm_jsonl *lg, const char *key, int64_t value)
{
    return add(lg, key, json_integer((json_int_t)value));
}

plstm_status plstm_jsonl_add_real(plstm_jsonl *lg, const char *key, double value)
{
    return add(lg, key, isfinite(value) ? json_real(value) : json_null());
}

plstm_status plstm_jsonl_add_string(plstm_jsonl *lg, const char *key, const char *value)
{
    return add(lg, key, value ? json_string(value) : json_null());
}

plstm_status plstm_jsonl_end(plstm_jsonl *lg)
{
    PLSTM_CHECK_ARG(lg && lg->rec, "plstm_jsonl_end: no record begun");
    char *text = json_dumps(lg->rec, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(lg->rec);
    lg->rec = NULL;
    if (!text)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "log: out of memory");
    const size_t len = strlen(text);
    text[len] = '\n'; /* replaces the terminator; the write below is length-based */
    ssize_t w;
    do
        w = write(lg->fd, text, len + 1);
    while (w < 0 && errno == EINTR);
    free(text);
    if (w != (ssize_t)(len + 1))
        return plstm_fail(PLSTM_ERR_IO, "cannot write log %s: %s", lg->path,
                          w < 0 ? strerror(errno) : "short write");
    return PLSTM_OK;
}
