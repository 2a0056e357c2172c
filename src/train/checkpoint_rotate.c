/* Numbered checkpoints plus a "latest" pointer, pruning old ones. */
#include "plstm/train.h"
#include "core/status_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NUMBERED_FMT "ckpt_%08lld.safetensors"

/* The step of a file name written with NUMBERED_FMT, or -1. */
static long long numbered_step(const char *name)
{
    long long step;
    char again[64];
    if (sscanf(name, "ckpt_%lld.safetensors", &step) != 1 || step < 0)
        return -1;
    snprintf(again, sizeof again, NUMBERED_FMT, step);
    return strcmp(again, name) ? -1 : step;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Points dir/latest.safetensors at `target` (a name in dir) with a symlink
 * renamed into place; returns 0 on success. */
static int link_latest(const char *dir, const char *target, const char *latest)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/.latest.safetensors.tmp-%ld", dir, (long)getpid());
    unlink(tmp);
    if (symlink(target, tmp) != 0)
        return -1;
    if (rename(tmp, latest) != 0) {
        unlink(tmp);
        return -1;
    }
    sync_dir(dir);
    return 0;
}

static int cmp_desc(const void *a, const void *b)
{
    const long long x = *(const long long *)a, y = *(const long long *)b;
    return (x < y) - (x > y);
}

/* Deletes numbered checkpoints other than `current`, oldest first, until
 * `keep` remain. Failures to delete are ignored (the next save retries). */
static plstm_status prune(const char *dir, long long current, int keep)
{
    DIR *d = opendir(dir);
    if (!d)
        return plstm_fail(PLSTM_ERR_IO, "cannot list %s: %s", dir, strerror(errno));
    long long *steps = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const long long s = numbered_step(e->d_name);
        if (s < 0 || s == current)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            long long *t = realloc(steps, cap * sizeof *t);
            if (!t) {
                free(steps);
                closedir(d);
                return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory listing %s", dir);
            }
            steps = t;
        }
        steps[n++] = s;
    }
    closedir(d);
    if (n > 1)
        qsort(steps, n, sizeof *steps, cmp_desc);
    char path[4096];
    for (size_t i = (size_t)(keep - 1); i < n; i++) {
        snprintf(path, sizeof path, "%s/" NUMBERED_FMT, dir, steps[i]);
        unlink(path);
    }
    free(steps);
    return PLSTM_OK;
}

plstm_status plstm_checkpoint_save_rotating(const char *dir, const plstm_params *layout,
                                            const plstm_checkpoint *ck, int keep)
{
    PLSTM_CHECK_ARG(dir && ck, "plstm_checkpoint_save_rotating: NULL argument");
    PLSTM_CHECK_ARG(strlen(dir) < 3000, "checkpoint folder name too long");
    char name[64], path[4096], latest[4096];
    snprintf(name, sizeof name, NUMBERED_FMT, (long long)ck->step);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(latest, sizeof latest, "%s/latest.safetensors", dir);
    PLSTM_TRY(plstm_checkpoint_save(path, layout, ck));
    if (link_latest(dir, name, latest) != 0)
        PLSTM_TRY(plstm_checkpoint_save(latest, layout, ck)); /* no symlinks here: a copy */
    if (keep > 0)
        PLSTM_TRY(prune(dir, (long long)ck->step, keep));
    return PLSTM_OK;
}
