/* Atomic file replacement through a temporary file and rename(2). */
#include "io/atomic_file.h"
#include "core/status_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct plstm_atomic_file {
    FILE *fp;
    char *path;   /* target                    */
    char *tmp;    /* temporary file, same folder */
    char *dir;    /* folder to fsync after rename */
    int failed;
};

static void free_af(plstm_atomic_file *af)
{
    free(af->path);
    free(af->tmp);
    free(af->dir);
    free(af);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* Splits `path` into its folder ("." when there is none) and base name. */
static plstm_status split_path(const char *path, char **dir, const char **base)
{
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    if (**base == '\0')
        return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "path '%s' names no file", path);
    size_t dlen = slash ? (size_t)(slash - path) : 1;
    if (slash && dlen == 0)
        dlen = 1; /* "/name": the root folder */
    *dir = malloc(dlen + 1);
    if (!*dir)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory for path '%s'", path);
    memcpy(*dir, slash ? path : ".", dlen);
    (*dir)[dlen] = '\0';
    return PLSTM_OK;
}

plstm_status plstm_atomic_file_open(plstm_atomic_file **out, const char *path)
{
    PLSTM_CHECK_ARG(out != NULL && path != NULL && path[0] != '\0',
                    "atomic file: NULL argument or empty path");
    *out = NULL;
    plstm_atomic_file *af = calloc(1, sizeof *af);
    if (!af)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory opening '%s'", path);
    const char *base = NULL;
    plstm_status s = split_path(path, &af->dir, &base);
    if (s != PLSTM_OK) {
        free_af(af);
        return s;
    }
    af->path = dup_str(path);
    size_t tlen = strlen(af->dir) + strlen(base) + 64;
    af->tmp = malloc(tlen);
    if (!af->path || !af->tmp) {
        free_af(af);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory opening '%s'", path);
    }
    /* A unique hidden name; O_EXCL makes a collision a retry, never a clobber. */
    static _Atomic unsigned counter;
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
        unsigned c = counter++;
        snprintf(af->tmp, tlen, "%s/.%s.tmp-%ld-%u-%d", af->dir, base, (long)getpid(), c,
                 attempt);
        fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        int e = errno;
        free_af(af);
        return plstm_fail(PLSTM_ERR_IO, "cannot create a temporary file next to '%s': %s", path,
                          strerror(e));
    }
    af->fp = fdopen(fd, "wb");
    if (!af->fp) {
        int e = errno;
        close(fd);
        unlink(af->tmp);
        free_af(af);
        return plstm_fail(PLSTM_ERR_IO, "cannot open a stream for '%s': %s", path, strerror(e));
    }
    *out = af;
    return PLSTM_OK;
}

plstm_status plstm_atomic_file_write(plstm_atomic_file *af, const void *data, size_t size)
{
    PLSTM_CHECK_ARG(af != NULL && (data != NULL || size == 0), "atomic file: NULL argument");
    if (af->failed)
        return plstm_fail(PLSTM_ERR_IO, "writing '%s': an earlier write failed", af->path);
    if (size == 0)
        return PLSTM_OK;
    errno = 0;
    if (fwrite(data, 1, size, af->fp) != size) {
        af->failed = 1;
        return plstm_fail(PLSTM_ERR_IO, "writing '%s' failed: %s", af->path,
                          errno ? strerror(errno) : "short write");
    }
    return PLSTM_OK;
}

void plstm_atomic_file_abort(plstm_atomic_file *af)
{
    if (!af)
        return;
    if (af->fp)
        fclose(af->fp);
    unlink(af->tmp);
    free_af(af);
}

/* fsync of the folder makes the rename durable. Some file systems cannot
 * fsync a folder (EINVAL); the rename has happened, so that is not an error. */
static plstm_status sync_dir(const char *dir, const char *path)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return plstm_fail(PLSTM_ERR_IO, "wrote '%s' but cannot open its folder to sync: %s", path,
                          strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL && e != ENOTSUP)
        return plstm_fail(PLSTM_ERR_IO, "wrote '%s' but syncing its folder failed: %s", path,
                          strerror(e));
    return PLSTM_OK;
}

plstm_status plstm_atomic_file_commit(plstm_atomic_file *af)
{
    PLSTM_CHECK_ARG(af != NULL, "atomic file: NULL argument");
    if (af->failed) {
        plstm_status s = plstm_fail(PLSTM_ERR_IO, "writing '%s': an earlier write failed",
                                    af->path);
        plstm_atomic_file_abort(af);
        return s;
    }
    const char *step = "flush";
    int ok = fflush(af->fp) == 0;
    if (ok) {
        step = "fsync";
        ok = fsync(fileno(af->fp)) == 0;
    }
    int e = errno;
    int closed = fclose(af->fp) == 0;
    af->fp = NULL;
    if (ok && !closed) {
        step = "close";
        e = errno;
        ok = 0;
    }
    if (ok) {
        step = "rename";
        ok = rename(af->tmp, af->path) == 0;
        e = errno;
    }
    if (!ok) {
        plstm_status s = plstm_fail(PLSTM_ERR_IO, "writing '%s' failed at %s: %s", af->path, step,
                                    strerror(e));
        plstm_atomic_file_abort(af);
        return s;
    }
    plstm_status s = sync_dir(af->dir, af->path);
    free_af(af);
    return s;
}

plstm_status plstm_atomic_write(const char *path, const void *data, size_t size)
{
    plstm_atomic_file *af = NULL;
    PLSTM_TRY(plstm_atomic_file_open(&af, path));
    plstm_status s = plstm_atomic_file_write(af, data, size);
    if (s != PLSTM_OK) {
        plstm_atomic_file_abort(af);
        return s;
    }
    return plstm_atomic_file_commit(af);
}
