/* Atomic file replacement: data goes to a temporary file in the target's
 * folder, is flushed and fsync'ed, then renamed over the target and the folder
 * fsync'ed. A failure at any step removes the temporary file and leaves the
 * old target (if any) untouched; readers never see a partial target.
 * If `path` is a symbolic link, the link itself is replaced. */
#ifndef PLSTM_IO_ATOMIC_FILE_H
#define PLSTM_IO_ATOMIC_FILE_H

#include <stddef.h>
#include "plstm/status.h"

typedef struct plstm_atomic_file plstm_atomic_file;

/* Creates the temporary file next to `path` (mode 0666 minus the umask). */
plstm_status plstm_atomic_file_open(plstm_atomic_file **af, const char *path);
/* Appends bytes. After a failure further writes fail too; call _abort. */
plstm_status plstm_atomic_file_write(plstm_atomic_file *af, const void *data, size_t size);
/* Flushes, fsyncs, renames over the target, fsyncs the folder, frees `af`.
 * On failure the temporary file is removed and `af` is freed as well. */
plstm_status plstm_atomic_file_commit(plstm_atomic_file *af);
/* Removes the temporary file and frees `af` (NULL is a no-op). */
void plstm_atomic_file_abort(plstm_atomic_file *af);

/* Convenience: writes `size` bytes of `data` to `path` atomically. */
plstm_status plstm_atomic_write(const char *path, const void *data, size_t size);

#endif
