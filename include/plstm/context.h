/* Data types, execution contexts and device memory: the backend seam.
 *
 * Every operator takes a plstm_context. The context picks the backend (CPU or
 * CUDA) and carries its state (threads, CUDA stream, cuBLAS handle, scratch).
 * Tensor pointers passed to an operator must live where the context's backend
 * computes: host memory for CPU, device memory (plstm_malloc) for CUDA. */
#ifndef PLSTM_CONTEXT_H
#define PLSTM_CONTEXT_H

#include <stddef.h>
#include "plstm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum plstm_dtype {
    PLSTM_F32 = 0,
    PLSTM_F64,
    PLSTM_BF16,
    PLSTM_F16,
    PLSTM_I64,
    PLSTM_I32,
    PLSTM_U8
} plstm_dtype;

/* Bytes per element (0 for an unknown dtype). */
size_t plstm_dtype_size(plstm_dtype dtype);
/* safetensors name of a dtype: "F32", "F64", "BF16", "F16", "I64", "I32", "U8". */
const char *plstm_dtype_name(plstm_dtype dtype);

typedef enum plstm_backend_kind {
    PLSTM_BACKEND_CPU = 0,
    PLSTM_BACKEND_CUDA = 1
} plstm_backend_kind;

/* Algorithm choice for operators that have several equivalent forms. */
typedef enum plstm_algo {
    PLSTM_ALGO_AUTO = 0,   /* the fastest form the backend has            */
    PLSTM_ALGO_SEQUENTIAL, /* the defining recurrence, node by node       */
    PLSTM_ALGO_PARALLEL    /* chunked (1D) / tiled (2D) / levelled (DAG)  */
} plstm_algo;

typedef struct plstm_context plstm_context;

/* 1 if this build has the backend and (for CUDA) a usable device exists. */
int plstm_backend_available(plstm_backend_kind kind);

/* Creates a context on `kind`; `device` is the CUDA device index (ignored on CPU). */
plstm_status plstm_context_create(plstm_context **ctx, plstm_backend_kind kind, int device);
void plstm_context_destroy(plstm_context *ctx);
plstm_backend_kind plstm_context_backend(const plstm_context *ctx);
const char *plstm_context_backend_name(const plstm_context *ctx);

/* CPU threads used by operators (0 = OpenMP default). */
plstm_status plstm_context_set_threads(plstm_context *ctx, int threads);
int plstm_context_threads(const plstm_context *ctx);

/* Waits for all queued device work. A no-op on the CPU. */
plstm_status plstm_context_synchronize(plstm_context *ctx);

/* Memory on the context's device (host memory on the CPU backend). */
plstm_status plstm_malloc(plstm_context *ctx, void **ptr, size_t bytes);
void plstm_free(plstm_context *ctx, void *ptr);
plstm_status plstm_memset_zero(plstm_context *ctx, void *ptr, size_t bytes);
plstm_status plstm_copy_to_device(plstm_context *ctx, void *dst, const void *host_src, size_t bytes);
plstm_status plstm_copy_to_host(plstm_context *ctx, void *host_dst, const void *src, size_t bytes);

#ifdef __cplusplus
}
#endif
#endif
