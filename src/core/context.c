#include "ops/backend.h"
#include "core/status_internal.h"

#include <stdlib.h>
#include <stdint.h>

size_t plstm_dtype_size(plstm_dtype dtype)
{
    switch (dtype) {
    case PLSTM_F32: return 4;
    case PLSTM_F64: return 8;
    case PLSTM_BF16: return 2;
    case PLSTM_F16: return 2;
    case PLSTM_I64: return 8;
    case PLSTM_I32: return 4;
    case PLSTM_U8: return 1;
    }
    return 0;
}

const char *plstm_dtype_name(plstm_dtype dtype)
{
    switch (dtype) {
    case PLSTM_F32: return "F32";
    case PLSTM_F64: return "F64";
    case PLSTM_BF16: return "BF16";
    case PLSTM_F16: return "F16";
    case PLSTM_I64: return "I64";
    case PLSTM_I32: return "I32";
    case PLSTM_U8: return "U8";
    }
    return "?";
}

int plstm_backend_available(plstm_backend_kind kind)
{
    if (kind == PLSTM_BACKEND_CPU)
        return 1;
#ifdef PLSTM_HAVE_CUDA
    if (kind == PLSTM_BACKEND_CUDA)
        return plstm_cuda_device_count() > 0;
#endif
    return 0;
}

plstm_status plstm_context_create(plstm_context **out, plstm_backend_kind kind, int device)
{
    PLSTM_CHECK_ARG(out != NULL, "plstm_context_create: out is NULL");
    *out = NULL;
    const plstm_backend_ops *ops = NULL;
    if (kind == PLSTM_BACKEND_CPU)
        ops = &plstm_cpu_backend;
#ifdef PLSTM_HAVE_CUDA
    else if (kind == PLSTM_BACKEND_CUDA)
        ops = &plstm_cuda_backend;
#endif
    else
        return plstm_fail(PLSTM_ERR_UNSUPPORTED,
                          "backend %d is not available in this build (built without CUDA?)",
                          (int)kind);
    plstm_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate a context");
    ctx->ops = ops;
    ctx->kind = kind;
    if (ops->init) {
        plstm_status s = ops->init(ctx, device);
        if (s != PLSTM_OK) {
            free(ctx);
            return s;
        }
    }
    *out = ctx;
    return PLSTM_OK;
}

void plstm_context_destroy(plstm_context *ctx)
{
    if (!ctx)
        return;
    if (ctx->ops->destroy)
        ctx->ops->destroy(ctx);
    free(ctx);
}

plstm_backend_kind plstm_context_backend(const plstm_context *ctx) { return ctx->kind; }

const char *plstm_context_backend_name(const plstm_context *ctx) { return ctx->ops->name; }

plstm_status plstm_context_set_threads(plstm_context *ctx, int threads)
{
    PLSTM_CHECK_ARG(ctx && threads >= 0, "plstm_context_set_threads: threads must be >= 0");
    ctx->threads = threads;
    return PLSTM_OK;
}

int plstm_context_threads(const plstm_context *ctx) { return ctx->threads; }

plstm_status plstm_context_synchronize(plstm_context *ctx)
{
    PLSTM_CHECK_ARG(ctx, "plstm_context_synchronize: ctx is NULL");
    return ctx->ops->synchronize ? ctx->ops->synchronize(ctx) : PLSTM_OK;
}

plstm_status plstm_malloc(plstm_context *ctx, void **ptr, size_t bytes)
{
    PLSTM_CHECK_ARG(ctx && ptr, "plstm_malloc: NULL argument");
    return ctx->ops->malloc_(ctx, ptr, bytes);
}

void plstm_free(plstm_context *ctx, void *ptr)
{
    if (ctx && ptr)
        ctx->ops->free_(ctx, ptr);
}

plstm_status plstm_memset_zero(plstm_context *ctx, void *ptr, size_t bytes)
{
    PLSTM_CHECK_ARG(ctx && (ptr || bytes == 0), "plstm_memset_zero: NULL argument");
    return ctx->ops->memset_zero(ctx, ptr, bytes);
}

plstm_status plstm_copy_to_device(plstm_context *ctx, void *dst, const void *src, size_t bytes)
{
    PLSTM_CHECK_ARG(ctx && ((dst && src) || bytes == 0), "plstm_copy_to_device: NULL argument");
    return ctx->ops->copy_to_device(ctx, dst, src, bytes);
}

plstm_status plstm_copy_to_host(plstm_context *ctx, void *dst, const void *src, size_t bytes)
{
    PLSTM_CHECK_ARG(ctx && ((dst && src) || bytes == 0), "plstm_copy_to_host: NULL argument");
    return ctx->ops->copy_to_host(ctx, dst, src, bytes);
}
