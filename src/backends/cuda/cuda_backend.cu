// The CUDA backend: device memory on one stream, cuBLAS handle per context.
#include "backends/cuda/cuda_internal.cuh"

#include <stdlib.h>

extern "C" int plstm_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // clear the sticky "no device" error
        return 0;
    }
    return n;
}

static plstm_status cuda_init(plstm_context *ctx, int device)
{
    int n = plstm_cuda_device_count();
    if (device < 0 || device >= n)
        return plstm_fail(PLSTM_ERR_DEVICE, "CUDA device %d not available (%d found)", device, n);
    cuda_state *st = (cuda_state *)calloc(1, sizeof *st);
    if (!st)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate CUDA state");
    st->device = device;
    plstm_status s = cuda_check(cudaSetDevice(device), "cudaSetDevice");
    if (s == PLSTM_OK)
        s = cuda_check(cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking),
                       "cudaStreamCreate");
    if (s == PLSTM_OK && cublasCreate(&st->blas) != CUBLAS_STATUS_SUCCESS)
        s = plstm_fail(PLSTM_ERR_DEVICE, "cublasCreate failed");
    if (s == PLSTM_OK)
        cublasSetStream(st->blas, st->stream);
    if (s != PLSTM_OK) {
        free(st);
        return s;
    }
    ctx->impl = st;
    return PLSTM_OK;
}

static void cuda_destroy(plstm_context *ctx)
{
    cuda_state *st = (cuda_state *)ctx->impl;
    if (!st)
        return;
    if (st->ws) {
        cudaStreamSynchronize(st->stream);
        cudaFree(st->ws);
    }
    cublasDestroy(st->blas);
    cudaStreamDestroy(st->stream);
    free(st);
}

static plstm_status cuda_sync(plstm_context *ctx)
{
    return cuda_check(cudaStreamSynchronize(((cuda_state *)ctx->impl)->stream),
                      "cudaStreamSynchronize");
}

static plstm_status cuda_malloc(plstm_context *ctx, void **ptr, size_t bytes)
{
    *ptr = NULL;
    if (bytes == 0)
        return PLSTM_OK;
    return cuda_check(cudaMalloc(ptr, bytes), "cudaMalloc");
}

static void cuda_free(plstm_context *ctx, void *ptr) { cudaFree(ptr); }

static plstm_status cuda_memset_zero(plstm_context *ctx, void *ptr, size_t bytes)
{
    return cuda_check(cudaMemsetAsync(ptr, 0, bytes, ((cuda_state *)ctx->impl)->stream),
                      "cudaMemsetAsync");
}

static plstm_status cuda_h2d(plstm_context *ctx, void *dst, const void *src, size_t bytes)
{
    cudaStream_t s = ((cuda_state *)ctx->impl)->stream;
    PLSTM_TRY(cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s),
                         "cudaMemcpy host->device"));
    return cuda_check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
}

static plstm_status cuda_d2h(plstm_context *ctx, void *dst, const void *src, size_t bytes)
{
    cudaStream_t s = ((cuda_state *)ctx->impl)->stream;
    PLSTM_TRY(cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s),
                         "cudaMemcpy device->host"));
    return cuda_check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
}

plstm_status plstm_cuda_workspace(plstm_context *ctx, size_t bytes, void **ptr)
{
    cuda_state *st = cuda_st(ctx);
    if (bytes > st->ws_bytes) {
        PLSTM_TRY(cuda_check(cudaStreamSynchronize(st->stream), "cudaStreamSynchronize"));
        cudaFree(st->ws);
        st->ws = NULL;
        st->ws_bytes = 0;
        PLSTM_TRY(cuda_check(cudaMalloc(&st->ws, bytes), "cudaMalloc (workspace)"));
        st->ws_bytes = bytes;
    }
    *ptr = st->ws;
    return PLSTM_OK;
}

static plstm_backend_ops make_cuda_backend()
{
    plstm_backend_ops ops = {};
    ops.name = "cuda";
    ops.init = cuda_init;
    ops.destroy = cuda_destroy;
    ops.synchronize = cuda_sync;
    ops.malloc_ = cuda_malloc;
    ops.free_ = cuda_free;
    ops.memset_zero = cuda_memset_zero;
    ops.copy_to_device = cuda_h2d;
    ops.copy_to_host = cuda_d2h;
    ops.core2d_forward = plstm_cuda_core2d_forward;
    ops.core2d_backward = plstm_cuda_core2d_backward;
    ops.core2d_fused4_forward = plstm_cuda_core2d_fused4_forward;
    ops.core2d_fused4_backward = plstm_cuda_core2d_fused4_backward;
    return ops;
}

extern "C" const plstm_backend_ops plstm_cuda_backend = make_cuda_backend();
