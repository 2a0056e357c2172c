/* CPU implementations of the NN primitive operators (nn_*.c, one file per
 * family) and the initializer of the CPU backend's `nn` table. */
#ifndef PLSTM_CPU_NN_H
#define PLSTM_CPU_NN_H

#include "ops/backend.h"

plstm_status cpu_linear_forward(plstm_context *, plstm_dtype, int, int, int, const void *,
                                const void *, const void *, void *);
plstm_status cpu_linear_backward(plstm_context *, plstm_dtype, int, int, int, const void *,
                                 const void *, const void *, void *, void *, void *);
plstm_status cpu_norm_forward(plstm_context *, plstm_dtype, plstm_norm_kind, int, int, int, double,
                              const void *, const void *, const void *, void *);
plstm_status cpu_norm_backward(plstm_context *, plstm_dtype, plstm_norm_kind, int, int, int,
                               double, const void *, const void *, const void *, void *, void *,
                               void *);
plstm_status cpu_activation_forward(plstm_context *, plstm_dtype, plstm_activation, size_t,
                                    const void *, void *);
plstm_status cpu_activation_backward(plstm_context *, plstm_dtype, plstm_activation, size_t,
                                     const void *, const void *, void *);
plstm_status cpu_dwconv2d_forward(plstm_context *, plstm_dtype, int, int, int, int, int, int,
                                  const void *, const void *, const void *, void *);
plstm_status cpu_dwconv2d_backward(plstm_context *, plstm_dtype, int, int, int, int, int, int,
                                   const void *, const void *, const void *, void *, void *,
                                   void *);
plstm_status cpu_patch_embed_forward(plstm_context *, plstm_dtype, int, int, int, int, int, int,
                                     int, const void *, const void *, const void *, void *);
plstm_status cpu_patch_embed_backward(plstm_context *, plstm_dtype, int, int, int, int, int, int,
                                      int, const void *, const void *, const void *, void *,
                                      void *, void *);
plstm_status cpu_linear_multi_forward(plstm_context *, plstm_dtype, int, int, int, const int *,
                                      const void *const *, const void *const *, const void *,
                                      void *);
plstm_status cpu_linear_multi_backward(plstm_context *, plstm_dtype, int, int, int, const int *,
                                       const void *const *, const void *, const void *, void *,
                                       void *const *, void *const *);
plstm_status cpu_instance_norm_forward(plstm_context *, plstm_dtype, int, int, int, double,
                                       const void *, const void *, const void *, void *);
plstm_status cpu_instance_norm_backward(plstm_context *, plstm_dtype, int, int, int, double,
                                        const void *, const void *, const void *, void *, void *,
                                        void *);
plstm_status cpu_pad2d_forward(plstm_context *, plstm_dtype, int, int, int, int, int,
                               const void *, void *);
plstm_status cpu_pad2d_backward(plstm_context *, plstm_dtype, int, int, int, int, int,
                                const void *, void *);
plstm_status cpu_resize_forward(plstm_context *, plstm_dtype, plstm_resize_kind, int, int, int,
                                int, int, int, const void *, void *);
plstm_status cpu_resize_backward(plstm_context *, plstm_dtype, plstm_resize_kind, int, int, int,
                                 int, int, int, const void *, void *);
plstm_status cpu_softmax_xent_forward(plstm_context *, plstm_dtype, int, int, const void *,
                                      const int32_t *, double *, int *);
plstm_status cpu_softmax_xent_backward(plstm_context *, plstm_dtype, int, int, const void *,
                                       const int32_t *, double, void *);
plstm_status cpu_attention_forward(plstm_context *, plstm_dtype, int, int, int, int, const void *,
                                   const void *, const void *, void *, void *);
plstm_status cpu_attention_backward(plstm_context *, plstm_dtype, int, int, int, int,
                                    const void *, const void *, const void *, const void *,
                                    const void *, const void *, void *, void *, void *);
plstm_status cpu_add(plstm_context *, plstm_dtype, size_t, const void *, const void *, void *);
plstm_status cpu_axpy(plstm_context *, plstm_dtype, size_t, double, const void *, void *);
plstm_status cpu_scale_forward(plstm_context *, plstm_dtype, int, int, const void *, const void *,
                               void *);
plstm_status cpu_scale_backward(plstm_context *, plstm_dtype, int, int, const void *,
                                const void *, const void *, void *, void *);
plstm_status cpu_broadcast_add_forward(plstm_context *, plstm_dtype, int, int, const void *,
                                       const void *, void *);
plstm_status cpu_broadcast_add_backward(plstm_context *, plstm_dtype, int, int, const void *,
                                        void *);
plstm_status cpu_pool_forward(plstm_context *, plstm_dtype, plstm_pool_kind, int, int, int, int,
                              const void *, void *);
plstm_status cpu_pool_backward(plstm_context *, plstm_dtype, plstm_pool_kind, int, int, int, int,
                               const void *, void *);

/* Designated initializer of plstm_backend_ops.nn for the CPU backend. */
#define PLSTM_CPU_NN_OPS                                                                        \
    {                                                                                           \
        .linear_forward = cpu_linear_forward, .linear_backward = cpu_linear_backward,           \
        .linear_multi_forward = cpu_linear_multi_forward,                                       \
        .linear_multi_backward = cpu_linear_multi_backward,                                     \
        .norm_forward = cpu_norm_forward, .norm_backward = cpu_norm_backward,                   \
        .activation_forward = cpu_activation_forward,                                           \
        .activation_backward = cpu_activation_backward,                                         \
        .dwconv2d_forward = cpu_dwconv2d_forward, .dwconv2d_backward = cpu_dwconv2d_backward,   \
        .patch_embed_forward = cpu_patch_embed_forward,                                         \
        .patch_embed_backward = cpu_patch_embed_backward,                                       \
        .instance_norm_forward = cpu_instance_norm_forward,                                     \
        .instance_norm_backward = cpu_instance_norm_backward,                                   \
        .pad2d_forward = cpu_pad2d_forward, .pad2d_backward = cpu_pad2d_backward,               \
        .resize_forward = cpu_resize_forward, .resize_backward = cpu_resize_backward,           \
        .softmax_xent_forward = cpu_softmax_xent_forward,                                       \
        .softmax_xent_backward = cpu_softmax_xent_backward,                                     \
        .attention_forward = cpu_attention_forward,                                             \
        .attention_backward = cpu_attention_backward, .add = cpu_add, .axpy = cpu_axpy,         \
        .scale_forward = cpu_scale_forward, .scale_backward = cpu_scale_backward,               \
        .broadcast_add_forward = cpu_broadcast_add_forward,                                     \
        .broadcast_add_backward = cpu_broadcast_add_backward, .pool_forward = cpu_pool_forward, \
        .pool_backward = cpu_pool_backward,                                                     \
    }

#endif
