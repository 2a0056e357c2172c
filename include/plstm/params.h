/* Parameter sets: every parameter of a model lives in one contiguous buffer,
 * and gradients and optimizer states in buffers of the same layout, so each is
 * one allocation, one memcpy, one all-reduce, one file write. A plstm_params
 * describes the layout: named views (the reference's PyTorch state_dict keys)
 * with shape, element offset and flags. */
#ifndef PLSTM_PARAMS_H
#define PLSTM_PARAMS_H

#include <stddef.h>
#include <stdint.h>
#include "plstm/context.h"
#include "plstm/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PLSTM_PARAM_MAX_RANK 8
#define PLSTM_PARAM_NAME_MAX 160

enum {
    PLSTM_PARAM_NO_DECAY = 1u << 0 /* excluded from weight decay (biases, norms, pos-emb) */
};

typedef struct plstm_param_info {
    char name[PLSTM_PARAM_NAME_MAX];
    int rank;
    int64_t shape[PLSTM_PARAM_MAX_RANK];
    size_t numel;
    size_t offset; /* in elements from the buffer start; a multiple of 16 */
    unsigned flags;
} plstm_param_info;

typedef struct plstm_params plstm_params;

plstm_status plstm_params_create(plstm_params **p);
void plstm_params_destroy(plstm_params *p);

/* Declares a parameter; returns its element offset. Names must be unique. */
plstm_status plstm_params_declare(plstm_params *p, const char *name, int rank,
                                  const int64_t *shape, unsigned flags, size_t *offset);

size_t plstm_params_count(const plstm_params *p);
const plstm_param_info *plstm_params_at(const plstm_params *p, size_t i);
const plstm_param_info *plstm_params_find(const plstm_params *p, const char *name);
/* Elements a buffer of this layout needs (views plus alignment padding). */
size_t plstm_params_size(const plstm_params *p);
/* Sum of the views' elements (the model's parameter count). */
size_t plstm_params_numel(const plstm_params *p);

/* Loads every parameter from tensors named prefix+name (any float dtype,
 * converted to `dtype`) into the host buffer `data`. strict: a parameter the
 * file lacks, a shape mismatch, or a tensor with the prefix that is not a
 * parameter is an error naming it; non-strict only fails on shape mismatch
 * and leaves missing parameters untouched. */
plstm_status plstm_params_load(const plstm_params *p, void *data, plstm_dtype dtype,
                               const plstm_safetensors *st, const char *prefix, int strict);

/* Adds every parameter as a tensor named prefix+name (F32 or F64 as `dtype`)
 * to a writer; `data` must stay valid until the writer has written. */
plstm_status plstm_params_save(const plstm_params *p, const void *data, plstm_dtype dtype,
                               plstm_safetensors_writer *w, const char *prefix);

#ifdef __cplusplus
}
#endif
#endif
