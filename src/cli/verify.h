/* `plstm verify`: recompute a reference test-vector file and compare. Each
 * kind of file has one verifier; they share the loading and reporting below. */
#ifndef PLSTM_CLI_VERIFY_H
#define PLSTM_CLI_VERIFY_H

#include "plstm/plstm.h"
#include "plstm/params.h"
#include "plstm/safetensors.h"

typedef struct verify_opts {
    double tol;          /* max relative error per tensor */
    plstm_algo algo;     /* which form of the core to check */
    plstm_dtype dtype;   /* compute precision: F32 or F64 */
    plstm_context *ctx;
} verify_opts;

/* A tensor loaded as doubles (for comparison) plus, when computing in F32, a
 * float copy handed to the operators. */
typedef struct vtensor {
    double *f64;
    float *f32;
    size_t n;
} vtensor;

typedef struct verify_report {
    int checked, failed;
    double worst;
} verify_report;

/* Loads `name` as doubles (and a float copy when dtype is F32); shape must match. */
plstm_status vt_load(const plstm_safetensors *st, const char *name, int rank,
                     const int64_t *shape, plstm_dtype dtype, vtensor *t);
/* Zero tensor of n elements in both precisions. */
plstm_status vt_zeros(size_t n, plstm_dtype dtype, vtensor *t);
/* Pointer to hand to an operator (float or double buffer), NULL for an empty tensor. */
void *vt_ptr(vtensor *t, plstm_dtype dtype);
void vt_free(vtensor *t);

/* Compares computed `got` (in `dtype`) against reference tensor `ref_name`,
 * prints one line and counts it into the report. */
plstm_status verify_compare(const plstm_safetensors *st, const char *ref_name, vtensor *got,
                            plstm_dtype dtype, const verify_opts *o, verify_report *r);

/* Compares every parameter's gradient (a `params`-layout buffer in `dtype`)
 * against the file's grad.param.<name>. */
plstm_status verify_compare_param_grads(const plstm_safetensors *st, const plstm_params *params,
                                        const void *grads, const verify_opts *o,
                                        verify_report *r);

/* Integer metadata value; PLSTM_ERR_FORMAT if absent or malformed. */
plstm_status meta_int(const plstm_safetensors *st, const char *key, int *out);
/* Floating metadata value, `fallback` if absent. */
double meta_double(const plstm_safetensors *st, const char *key, double fallback);

plstm_status verify_core1d(const plstm_safetensors *st, const verify_opts *o, verify_report *r);
plstm_status verify_core2d(const plstm_safetensors *st, const verify_opts *o, verify_report *r);
plstm_status verify_layer2d_fused(const plstm_safetensors *st, const verify_opts *o,
                                  verify_report *r);
plstm_status verify_vision_model(const plstm_safetensors *st, const verify_opts *o,
                                 verify_report *r);
plstm_status verify_graph_layer(const plstm_safetensors *st, const verify_opts *o,
                                verify_report *r);
/* The vision model configuration of a reference file (kind vision_model):
 * its config_json (the torch pLSTMVisionModelConfig), else the flat metadata. */
plstm_status verify_vision_config(const plstm_safetensors *st, plstm_vision_config *c);

#endif
