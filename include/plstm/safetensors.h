/* safetensors files: reader and writer (checkpoints, weights, test vectors).
 *
 * Format: 8-byte little-endian header length N, N bytes of UTF-8 JSON (an
 * object, padded with spaces), then the data section. Each JSON key except
 * "__metadata__" names a tensor {"dtype", "shape", "data_offsets": [begin, end]}
 * whose bytes lie at data section offsets [begin, end), row-major,
 * little-endian. "__metadata__" maps strings to strings.
 *
 * The reader validates everything before exposing anything and accepts
 * exactly what the reference (Rust) implementation accepts for the supported
 * dtypes: header at most 100,000,000 bytes, starting with '{', no duplicate
 * keys, tensors packed without gaps or overlaps and covering the whole data
 * section (a gap is an error, as in the reference). Any malformed or hostile
 * file gives PLSTM_ERR_FORMAT with a message naming the problem and the tensor
 * (PLSTM_ERR_IO for operating-system errors). Dtypes other than F32, F64,
 * BF16, F16, I64, I32 and U8 are rejected as well.
 *
 * Alignment: the data section is loaded at a 64-byte aligned address, so a
 * tensor's data pointer is aligned to its element size whenever its begin
 * offset is a multiple of the element size (`aligned` says so). Files from the
 * writer below always are. For other files use the plstm_safetensors_read_*
 * copies, which work at any alignment. Direct data pointers hold little-endian
 * values (the byte order of every supported host). */
#ifndef PLSTM_SAFETENSORS_H
#define PLSTM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "plstm/context.h"
#include "plstm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest header accepted (as in the reference implementation). */
#define PLSTM_SAFETENSORS_MAX_HEADER 100000000u

typedef struct plstm_safetensors plstm_safetensors;

/* One tensor of an open file; valid until plstm_safetensors_close. */
typedef struct plstm_safetensors_tensor {
    const char *name;
    plstm_dtype dtype;
    int rank;             /* 0 for a scalar                                  */
    const int64_t *shape; /* rank entries                                    */
    int64_t numel;        /* product of shape (1 for a scalar)               */
    size_t nbytes;        /* numel * plstm_dtype_size(dtype)                 */
    size_t offset;        /* begin offset within the data section            */
    const void *data;     /* nbytes bytes, read-only                         */
    int aligned;          /* 1 if data is aligned to the element size        */
} plstm_safetensors_tensor;

/* Reads and validates a whole file into memory. */
plstm_status plstm_safetensors_open(plstm_safetensors **st, const char *path);
/* Same from a buffer of `size` bytes; the buffer is copied (it may be freed after). */
plstm_status plstm_safetensors_open_memory(plstm_safetensors **st, const void *buf, size_t size);
void plstm_safetensors_close(plstm_safetensors *st);

/* Tensors in the order of the file's header. */
size_t plstm_safetensors_count(const plstm_safetensors *st);
/* Tensor i (0 <= i < count), NULL when out of range. */
const plstm_safetensors_tensor *plstm_safetensors_at(const plstm_safetensors *st, size_t i);
/* Tensor by name, NULL if absent. */
const plstm_safetensors_tensor *plstm_safetensors_find(const plstm_safetensors *st,
                                                       const char *name);
/* Tensor by name; PLSTM_ERR_FORMAT naming the tensor if absent. */
plstm_status plstm_safetensors_get(const plstm_safetensors *st, const char *name,
                                   const plstm_safetensors_tensor **tensor);
/* PLSTM_ERR_FORMAT unless tensor `name` exists with exactly this rank and shape. */
plstm_status plstm_safetensors_expect_shape(const plstm_safetensors *st, const char *name,
                                            int rank, const int64_t *shape);

/* Metadata value of `key`, NULL if absent. */
const char *plstm_safetensors_metadata(const plstm_safetensors *st, const char *key);
/* Metadata pairs in the order of the file (key and value NULL when i is out of range). */
size_t plstm_safetensors_metadata_count(const plstm_safetensors *st);
void plstm_safetensors_metadata_at(const plstm_safetensors *st, size_t i, const char **key,
                                   const char **value);

/* Copies tensor `name` into dst, converting any float dtype (F32, F64, BF16,
 * F16). `count` must equal the tensor's element count; a missing tensor, a
 * non-float dtype or a count mismatch is PLSTM_ERR_FORMAT naming the tensor. */
plstm_status plstm_safetensors_read_f32(const plstm_safetensors *st, const char *name,
                                        float *dst, size_t count);
plstm_status plstm_safetensors_read_f64(const plstm_safetensors *st, const char *name,
                                        double *dst, size_t count);
/* Same for integer dtypes (I64, I32, U8) into int64. */
plstm_status plstm_safetensors_read_i64(const plstm_safetensors *st, const char *name,
                                        int64_t *dst, size_t count);

/* Element conversions used by the readers (exact; F16 handles subnormals, inf, NaN). */
float plstm_bf16_to_f32(uint16_t bits);
float plstm_f16_to_f32(uint16_t bits);
/* Round to nearest even (NaN stays NaN, overflow gives inf). */
uint16_t plstm_f32_to_bf16(float x);
uint16_t plstm_f32_to_f16(float x);

/* ---- writer ------------------------------------------------------------- */

typedef struct plstm_safetensors_writer plstm_safetensors_writer;

plstm_status plstm_safetensors_writer_create(plstm_safetensors_writer **w);
void plstm_safetensors_writer_destroy(plstm_safetensors_writer *w);

/* Adds a tensor. Name and shape are copied; `data` (numel * element size
 * bytes, may be NULL when that is 0) is borrowed and must stay valid until
 * the last write call. Names must be unique, non-empty and not "__metadata__". */
plstm_status plstm_safetensors_writer_add_tensor(plstm_safetensors_writer *w, const char *name,
                                                 plstm_dtype dtype, int rank,
                                                 const int64_t *shape, const void *data);
/* Adds a metadata pair (copied); keys must be unique. */
plstm_status plstm_safetensors_writer_add_metadata(plstm_safetensors_writer *w, const char *key,
                                                   const char *value);

/* Writes the file atomically: the target is either the complete new file or
 * left untouched, and no temporary file remains. The header lists
 * "__metadata__" first, then the tensors in the order added, padded with
 * spaces to a multiple of 8 bytes. In the data section tensors are packed
 * without gaps, ordered by decreasing element size and in the order added
 * within one size, so every tensor starts at a multiple of its element size
 * (for F32-only files this is simply the order added). */
plstm_status plstm_safetensors_writer_write(const plstm_safetensors_writer *w, const char *path);
/* Same file content into a new malloc'd buffer (release with free()). */
plstm_status plstm_safetensors_writer_serialize(const plstm_safetensors_writer *w, void **buf,
                                                size_t *size);

#ifdef __cplusplus
}
#endif
#endif
