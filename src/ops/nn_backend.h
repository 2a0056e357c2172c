/* Backend table of the NN primitive operators (include/plstm/nn.h). It is one
 * member (`nn`) of plstm_backend_ops. The entries have the public signatures;
 * src/ops/nn_ops.c validates the arguments before dispatching, so a backend
 * may assume valid sizes, dtype F32/F64 and the required non-NULL pointers.
 * A NULL entry makes the public call fail with PLSTM_ERR_UNSUPPORTED. */
#ifndef PLSTM_NN_BACKEND_H
#define PLSTM_NN_BACKEND_H

#include "plstm/nn.h"

typedef struct plstm_nn_backend_ops {
    plstm_status (*linear_forward)(plstm_context *, plstm_dtype, int, int, int, const void *,
                                   const void *, const void *, void *);
    plstm_status (*linear_backward)(plstm_context *, plstm_dtype, int, int, int, const void *,
                                    const void *, const void *, void *, void *, void *);
    plstm_status (*linear_multi_forward)(plstm_context *, plstm_dtype, int, int, int, const int *,
                                         const void *const *, const void *const *, const void *,
                                         void *);
    plstm_status (*linear_multi_backward)(plstm_context *, plstm_dtype, int, int, int,
                                          const int *, const void *const *, const void *,
                                          const void *, void *, void *const *, void *const *);
    plstm_status (*norm_forward)(plstm_context *, plstm_dtype, plstm_norm_kind, int, int, int,
                                 double, const void *, const void *, const void *, void *);
    plstm_status (*norm_backward)(plstm_context *, plstm_dtype, plstm_norm_kind, int, int, int,
                                  double, const void *, const void *, const void *, void *,
                                  void *, void *);
    plstm_status (*activation_forward)(plstm_context *, plstm_dtype, plstm_activation, size_t,
                                       const void *, void *);
    plstm_status (*activation_backward)(plstm_context *, plstm_dtype, plstm_activation, size_t,
                                        const void *, const void *, void *);
    plstm_status (*dwconv2d_forward)(plstm_context *, plstm_dtype, int, int, int, int, int, int,
                                     const void *, const void *, const void *, void *);
    plstm_status (*dwconv2d_backward)(plstm_context *, plstm_dtype, int, int, int, int, int, int,
                                      const void *, const void *, const void *, void *, void *,
                                      void *);
    plstm_status (*patch_embed_forward)(plstm_context *, plstm_dtype, int, int, int, int, int, int,
                                        int, const void *, const void *, const void *, void *);
    plstm_status (*patch_embed_backward)(plstm_context *, plstm_dtype, int, int, int, int, int,
                                         int, int, const void *, const void *, const void *,
                                         void *, void *, void *);
    plstm_status (*instance_norm_forward)(plstm_context *, plstm_dtype, int, int, int, double,
                                          const void *, const void *, const void *, void *);
    plstm_status (*instance_norm_backward)(plstm_context *, plstm_dtype, int, int, int, double,
                                           const void *, const void *, const void *, void *,
                                           void *, void *);
    plstm_status (*pad2d_forward)(plstm_context *, plstm_dtype, int, int, int, int, int,
                                  const void *, void *);
    plstm_status (*pad2d_backward)(plstm_context *, plstm_dtype, int, int, int, int, int,
                                   const void *, void *);
    plstm_status (*resize_forward)(plstm_context *, plstm_dtype, plstm_resize_kind, int, int, int,
                                   int, int, int, const void *, void *);
    plstm_status (*resize_backward)(plstm_context *, plstm_dtype, plstm_resize_kind, int, int, int,
                                    int, int, int, const void *, void *);
    plstm_status (*softmax_xent_forward)(plstm_context *, plstm_dtype, int, int, const void *,
                                         const int32_t *, double *, int *);
    plstm_status (*softmax_xent_backward)(plstm_context *, plstm_dtype, int, int, const void *,
                                          const int32_t *, double, void *);
    plstm_status (*attention_forward)(plstm_context *, plstm_dtype, int, int, int, int,
                                      const void *, const void *, const void *, void *, void *);
    plstm_status (*attention_backward)(plstm_context *, plstm_dtype, int, int, int, int,
                                       const void *, const void *, const void *, const void *,
                                       const void *, const void *, void *, void *, void *);
    plstm_status (*add)(plstm_context *, plstm_dtype, size_t, const void *, const void *, void *);
    plstm_status (*axpy)(plstm_context *, plstm_dtype, size_t, double, const void *, void *);
    plstm_status (*scale_forward)(plstm_context *, plstm_dtype, int, int, const void *,
                                  const void *, void *);
    plstm_status (*scale_backward)(plstm_context *, plstm_dtype, int, int, const void *,
                                   const void *, const void *, void *, void *);
    plstm_status (*broadcast_add_forward)(plstm_context *, plstm_dtype, int, int, const void *,
                                          const void *, void *);
    plstm_status (*broadcast_add_backward)(plstm_context *, plstm_dtype, int, int, const void *,
                                           void *);
    plstm_status (*pool_forward)(plstm_context *, plstm_dtype, plstm_pool_kind, int, int, int, int,
                                 const void *, void *);
    plstm_status (*pool_backward)(plstm_context *, plstm_dtype, plstm_pool_kind, int, int, int,
                                  int, const void *, void *);
} plstm_nn_backend_ops;

#endif
