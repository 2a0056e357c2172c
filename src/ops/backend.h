/* The operator interface every backend implements. Model and layer code only
 * calls the public plstm_* operators; they validate arguments once and then
 * dispatch through this table. A backend leaves an entry NULL when it does not
 * implement the operator; the call then fails with PLSTM_ERR_UNSUPPORTED. */
#ifndef PLSTM_BACKEND_H
#define PLSTM_BACKEND_H

#include "plstm/context.h"
#include "plstm/core1d.h"
#include "plstm/core2d.h"
#include "plstm/dag.h"
#include "ops/nn_backend.h"

typedef struct plstm_backend_ops {
    const char *name;
    plstm_status (*init)(plstm_context *ctx, int device);
    void (*destroy)(plstm_context *ctx);
    plstm_status (*synchronize)(plstm_context *ctx);

    plstm_status (*malloc_)(plstm_context *ctx, void **ptr, size_t bytes);
    void (*free_)(plstm_context *ctx, void *ptr);
    plstm_status (*memset_zero)(plstm_context *ctx, void *ptr, size_t bytes);
    plstm_status (*copy_to_device)(plstm_context *ctx, void *dst, const void *src, size_t bytes);
    plstm_status (*copy_to_host)(plstm_context *ctx, void *dst, const void *src, size_t bytes);

    plstm_status (*core1d_forward)(plstm_context *, const plstm_core1d_desc *,
                                   const plstm_core1d_inputs *, const plstm_core1d_outputs *);
    plstm_status (*core1d_backward)(plstm_context *, const plstm_core1d_desc *,
                                    const plstm_core1d_inputs *, const plstm_core1d_cotangents *,
                                    const plstm_core1d_grads *);
    plstm_status (*core2d_forward)(plstm_context *, const plstm_core2d_desc *,
                                   const plstm_core2d_inputs *, const plstm_core2d_outputs *);
    plstm_status (*core2d_backward)(plstm_context *, const plstm_core2d_desc *,
                                    const plstm_core2d_inputs *, const plstm_core2d_cotangents *,
                                    const plstm_core2d_grads *);
    plstm_status (*core2d_fused4_forward)(plstm_context *, const plstm_core2d_desc *,
                                          const plstm_core2d_inputs *,
                                          const plstm_core2d_outputs *);
    plstm_status (*core2d_fused4_backward)(plstm_context *, const plstm_core2d_desc *,
                                           const plstm_core2d_inputs *,
                                           const plstm_core2d_cotangents *,
                                           const plstm_core2d_grads *);
    plstm_status (*dag_core_forward)(plstm_context *, const plstm_dag_core_desc *,
                                     const plstm_dag *, const plstm_dag_core_inputs *, void *);
    plstm_status (*dag_core_backward)(plstm_context *, const plstm_dag_core_desc *,
                                      const plstm_dag *, const plstm_dag_core_inputs *,
                                      const void *, const plstm_dag_core_grads *);

    /* NN primitive operators (plstm/nn.h): their own table, see ops/nn_backend.h. */
    plstm_nn_backend_ops nn;
} plstm_backend_ops;

struct plstm_context {
    const plstm_backend_ops *ops;
    plstm_backend_kind kind;
    int threads;
    void *impl; /* backend state (CUDA stream, cuBLAS handle, ...) */
};

extern const plstm_backend_ops plstm_cpu_backend;
#ifdef PLSTM_HAVE_CUDA
extern const plstm_backend_ops plstm_cuda_backend;
int plstm_cuda_device_count(void);
#endif

#endif
