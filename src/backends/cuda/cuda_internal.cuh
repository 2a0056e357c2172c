// Shared state and helpers of the CUDA backend's translation units.
#ifndef PLSTM_CUDA_INTERNAL_CUH
#define PLSTM_CUDA_INTERNAL_CUH

#include <cuda_runtime.h>
#include <cublas_v2.h>

extern "C" {
#include "ops/backend.h"
#include "core/status_internal.h"
}

struct cuda_state {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *ws;        // grow-only scratch for operators (stream-ordered reuse)
    size_t ws_bytes;
};

static inline cuda_state *cuda_st(plstm_context *ctx) { return (cuda_state *)ctx->impl; }

static inline plstm_status cuda_check(cudaError_t err, const char *what)
{
    if (err == cudaSuccess)
        return PLSTM_OK;
    return plstm_fail(PLSTM_ERR_DEVICE, "%s: %s", what, cudaGetErrorString(err));
}

// Scratch of at least `bytes` on the context's device, valid until the next
// call; earlier work on the stream that used the old buffer is waited for.
plstm_status plstm_cuda_workspace(plstm_context *ctx, size_t bytes, void **ptr);

// 2D core (core2d.cu).
extern "C" {
plstm_status plstm_cuda_core2d_forward(plstm_context *, const plstm_core2d_desc *,
                                       const plstm_core2d_inputs *, const plstm_core2d_outputs *);
plstm_status plstm_cuda_core2d_backward(plstm_context *, const plstm_core2d_desc *,
                                        const plstm_core2d_inputs *,
                                        const plstm_core2d_cotangents *,
                                        const plstm_core2d_grads *);
plstm_status plstm_cuda_core2d_fused4_forward(plstm_context *, const plstm_core2d_desc *,
                                              const plstm_core2d_inputs *,
                                              const plstm_core2d_outputs *);
plstm_status plstm_cuda_core2d_fused4_backward(plstm_context *, const plstm_core2d_desc *,
                                               const plstm_core2d_inputs *,
                                               const plstm_core2d_cotangents *,
                                               const plstm_core2d_grads *);
}

#endif
