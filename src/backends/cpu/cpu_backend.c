/* The CPU backend: host memory, OpenMP threads, OpenBLAS GEMM. */
#include "backends/cpu/cpu_ops.h"
#include "backends/cpu/cpu_nn.h"
#include "core/status_internal.h"

#include <stdlib.h>
#include <string.h>

static plstm_status cpu_malloc(plstm_context *ctx, void **ptr, size_t bytes)
{
    (void)ctx;
    *ptr = NULL;
    if (bytes == 0)
        return PLSTM_OK;
    /* 64-byte alignment for AVX-512 loads. */
    size_t rounded = (bytes + 63) & ~(size_t)63;
    *ptr = aligned_alloc(64, rounded);
    if (!*ptr)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes", bytes);
    return PLSTM_OK;
}

static void cpu_free(plstm_context *ctx, void *ptr)
{
    (void)ctx;
    free(ptr);
}

static plstm_status cpu_memset_zero(plstm_context *ctx, void *ptr, size_t bytes)
{
    (void)ctx;
    if (bytes)
        memset(ptr, 0, bytes);
    return PLSTM_OK;
}

static plstm_status cpu_copy(plstm_context *ctx, void *dst, const void *src, size_t bytes)
{
    (void)ctx;
    if (bytes)
        memmove(dst, src, bytes);
    return PLSTM_OK;
}

const plstm_backend_ops plstm_cpu_backend = {
    .name = "cpu",
    .malloc_ = cpu_malloc,
    .free_ = cpu_free,
    .memset_zero = cpu_memset_zero,
    .copy_to_device = cpu_copy,
    .copy_to_host = cpu_copy,
    .core1d_forward = cpu_core1d_forward,
    .core1d_backward = cpu_core1d_backward,
    .core2d_forward = cpu_core2d_forward,
    .core2d_backward = cpu_core2d_backward,
    .core2d_fused4_forward = cpu_core2d_fused4_forward,
    .core2d_fused4_backward = cpu_core2d_fused4_backward,
    .dag_core_forward = cpu_dag_core_forward,
    .dag_core_backward = cpu_dag_core_backward,
    .nn = PLSTM_CPU_NN_OPS, /* NN primitives (cpu_nn.h) */
};
