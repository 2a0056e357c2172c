/* Model-independent training machinery: AdamW, learning-rate schedule,
 * gradient clipping, a reproducible random generator, checkpoints, a
 * JSON-lines log, a progress bar and PNG training curves.
 *
 * Everything works on the parameter layout of include/plstm/params.h: the
 * parameters, their gradients and the two Adam moments are F32 buffers of
 * plstm_params_size() elements with the same layout (padding stays zero).
 * Buffers here are host memory. The update kernels take plain float arrays
 * so that a device version can be added behind the same signatures.
 *
 * Conventions follow the reference trainer (JAX + optax, experiments.md §2.1,
 * §2.4): optax.adamw, optax.clip_by_global_norm, and
 * optax.warmup_cosine_decay_schedule, with `step` = the number of updates
 * already applied (0 for the first update). */
#ifndef PLSTM_TRAIN_H
#define PLSTM_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "plstm/params.h"
#include "plstm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- AdamW ---------------------------------------------------------------
 * For the update with index `step` (t = step + 1):
 *   m = b1 m + (1 - b1) g          v = b2 v + (1 - b2) g^2
 *   u = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 *   p = p - lr (u + wd * mask * p)          (decoupled decay, old p)
 * mask is 1 for decayed parameters and 0 for those flagged
 * PLSTM_PARAM_NO_DECAY and for padding; padding has g = 0 and so stays 0. */
typedef struct plstm_adamw_config {
    double beta1, beta2, eps, weight_decay;
} plstm_adamw_config;

/* beta (0.9, 0.999), eps 1e-8, weight decay 0.05 (experiments.md §2.4). */
plstm_adamw_config plstm_adamw_defaults(void);

/* Per-step scalars of one update, as floats for a kernel. */
typedef struct plstm_adamw_coeffs {
    float lr, beta1, beta2, eps, weight_decay;
    float one_minus_beta1, one_minus_beta2; /* rounded from double: 1 - 0.999f is off by 1e-5 */
    float inv_bc1, inv_bc2; /* 1 / (1 - b1^t), 1 / (1 - b2^t), computed in double */
} plstm_adamw_coeffs;

/* Validates the configuration and lr >= 0, step >= 0, and fills `c`. */
plstm_status plstm_adamw_coeffs_at(const plstm_adamw_config *cfg, double lr, int64_t step,
                                   plstm_adamw_coeffs *c);

/* The element-wise update over n elements; the signature a device backend implements. */
typedef void (*plstm_adamw_kernel_fn)(const plstm_adamw_coeffs *c, size_t n, float *param,
                                      const float *grad, float *m, float *v,
                                      const float *decay_mask);
/* CPU version (OpenMP, vectorized). */
void plstm_adamw_kernel_cpu(const plstm_adamw_coeffs *c, size_t n, float *param,
                            const float *grad, float *m, float *v, const float *decay_mask);

/* Writes the decay mask of a layout into `mask` (plstm_params_size()
 * floats): 1 on the views of parameters without PLSTM_PARAM_NO_DECAY, 0 elsewhere. */
plstm_status plstm_adamw_decay_mask(const plstm_params *layout, float *mask);

/* One AdamW update of n elements on the CPU (coeffs + kernel). */
plstm_status plstm_adamw_step(const plstm_adamw_config *cfg, double lr, int64_t step, size_t n,
                              float *param, const float *grad, float *m, float *v,
                              const float *decay_mask);

/* ---- learning-rate schedule ----------------------------------------------
 * optax.warmup_cosine_decay_schedule(0, peak, warmup, total, peak * min_ratio):
 *   step < warmup:  lr = peak * step / warmup            (0 at the first update)
 *   otherwise:      lr = floor + (peak - floor) * (1 + cos(pi * s / D)) / 2,
 *                   s = min(step - warmup, D), D = total - warmup,
 *                   floor = min_lr_ratio * peak.
 * So lr reaches the peak at step == warmup and the floor at step == total
 * (the last update, step total - 1, is one cosine increment above it;
 * for the APE run that is 1.7e-13 above 1e-7). */
typedef struct plstm_lr_schedule {
    double peak;
    int64_t warmup_steps; /* >= 0; 0: no warmup */
    int64_t total_steps;  /* > warmup_steps */
    double min_lr_ratio;  /* in [0, 1] */
} plstm_lr_schedule;

plstm_status plstm_lr_schedule_check(const plstm_lr_schedule *s);
/* Learning rate of update `step` (steps < 0 give 0; steps >= total the floor). */
double plstm_lr_at(const plstm_lr_schedule *s, int64_t step);

/* ---- gradient norm and clipping -------------------------------------------
 * The L2 norm over the whole buffer, summed in double in fixed blocks, so
 * the result does not depend on the thread count. A NaN or Inf in the
 * gradient gives PLSTM_ERR_NUMERIC naming the element (and the parameter,
 * when `layout` is given; it may be NULL). */
plstm_status plstm_grad_norm(const plstm_params *layout, const float *grad, size_t n,
                             double *norm);
/* As optax.clip_by_global_norm: when the norm exceeds max_norm (> 0) the
 * gradient is scaled by max_norm / norm. `pre_norm` (may be NULL) gets the
 * norm before clipping. On a non-finite gradient nothing is scaled. */
plstm_status plstm_grad_clip(const plstm_params *layout, float *grad, size_t n, double max_norm,
                             double *pre_norm);

/* ---- random numbers --------------------------------------------------------
 * Counter-based: output i of a stream is splitmix64's finalizer applied to
 * key + i * golden-ratio constant, so the state is (key, counter), can be
 * saved and restored exactly, and any position can be reached in O(1).
 * Streams with different (seed, stream) pairs have unrelated keys. */
typedef struct plstm_rng {
    uint64_t key;
    uint64_t counter; /* outputs drawn so far */
} plstm_rng;

/* A stream for `seed` and an independent sub-stream id (init, data, dropout...). */
void plstm_rng_seed(plstm_rng *r, uint64_t seed, uint64_t stream);
uint64_t plstm_rng_u64(plstm_rng *r);
/* Output `index` of the stream without moving it (for parallel draws). */
uint64_t plstm_rng_u64_at(const plstm_rng *r, uint64_t index);
/* Uniform double in [0, 1) with 53 random bits (one output). */
double plstm_rng_uniform(plstm_rng *r);
/* Unbiased integer in [0, n), n >= 1 (Lemire's method; usually one output). */
uint64_t plstm_rng_below(plstm_rng *r, uint64_t n);
/* Standard normal by Box-Muller (two outputs per value; no cached state). */
double plstm_rng_normal(plstm_rng *r);
/* Standard normal conditioned on [lo, hi] (rejection; lo < hi). */
double plstm_rng_truncated_normal(plstm_rng *r, double lo, double hi);

void plstm_rng_fill_uniform_f32(plstm_rng *r, float *x, size_t n, double lo, double hi);
void plstm_rng_fill_normal_f32(plstm_rng *r, float *x, size_t n, double mean, double std);
/* mean + std * z, z standard normal truncated to [lo, hi] (in units of std;
 * the interval must hold at least 1e-3 of the mass). */
plstm_status plstm_rng_fill_truncated_normal_f32(plstm_rng *r, float *x, size_t n, double mean,
                                                 double std, double lo, double hi);
/* A uniformly random permutation of 0..n-1 (Fisher-Yates). */
void plstm_rng_permutation(plstm_rng *r, int64_t *perm, size_t n);

/* ---- checkpoints ----------------------------------------------------------
 * One safetensors file: tensors "params/<name>", "adam_m/<name>",
 * "adam_v/<name>" (F32, each parameter's shape), "step" and
 * "data_position" (I64 scalars), "rng" (I64 [num_rngs, 2]: key, counter);
 * metadata "format" = "plstm-checkpoint", "format_version", "model",
 * "config" (a JSON string), "extra" (free JSON for the trainer), and
 * "step" for people. Written atomically: an existing file is either kept or
 * replaced whole. */
typedef struct plstm_checkpoint {
    const char *model_name;  /* save: required; load: checked when non-NULL   */
    const char *config_json; /* save: required JSON; load: must be JSON-equal
                                to the file's when non-NULL                   */
    float *params;           /* plstm_params_size() floats; required           */
    float *adam_m, *adam_v;  /* same size; NULL: not saved / not loaded       */
    int64_t step;            /* updates applied                              */
    int64_t data_position;   /* samples consumed (the trainer's meaning)      */
    plstm_rng *rngs;         /* num_rngs states                              */
    int num_rngs;            /* load: must equal the file's count             */
    const char *extra_json;  /* save only, may be NULL                        */
} plstm_checkpoint;

plstm_status plstm_checkpoint_save(const char *path, const plstm_params *layout,
                                   const plstm_checkpoint *ck);

/* Validates the whole file against the layout and `ck` (format, model,
 * config, every tensor present with its shape and dtype, no tensor the
 * layout lacks) before writing anything: on any error the caller's buffers,
 * step, data_position and rngs are untouched. On success they hold the
 * file's values; `extra_json` (may be NULL) gets a malloc'd copy of the
 * extra metadata ("" when absent), to be released with free(). */
plstm_status plstm_checkpoint_load(const char *path, const plstm_params *layout,
                                   plstm_checkpoint *ck, char **extra_json);

/* Reads model name, config and step of a checkpoint without a layout
 * (malloc'd strings, release with free(); any output may be NULL). */
plstm_status plstm_checkpoint_info(const char *path, char **model_name, char **config_json,
                                   int64_t *step);

/* Saves "<dir>/ckpt_<step, 8 digits>.safetensors", then points
 * "<dir>/latest.safetensors" at it (a symbolic link replaced atomically, or
 * an atomic copy where links are not supported), then deletes the oldest
 * numbered checkpoints beyond the newest `keep` (keep <= 0: keep all).
 * The folder must exist. */
plstm_status plstm_checkpoint_save_rotating(const char *dir, const plstm_params *layout,
                                            const plstm_checkpoint *ck, int keep);

/* ---- JSON-lines log --------------------------------------------------------
 * One JSON object per line, flushed (and written with one write call) per
 * line. Build a record with begin / add_* / end. Non-finite numbers are
 * written as null. */
typedef struct plstm_jsonl plstm_jsonl;

/* Opens `path`. resume_step < 0: a new file (an existing one is replaced).
 * resume_step >= 0: appends to the existing file after dropping the lines a
 * crashed run wrote past the checkpoint (records with "step" > resume_step)
 * and a torn last line; the rewrite is atomic. */
plstm_status plstm_jsonl_open(plstm_jsonl **lg, const char *path, int64_t resume_step);
void plstm_jsonl_close(plstm_jsonl *lg);

plstm_status plstm_jsonl_begin(plstm_jsonl *lg);
plstm_status plstm_jsonl_add_int(plstm_jsonl *lg, const char *key, int64_t value);
plstm_status plstm_jsonl_add_real(plstm_jsonl *lg, const char *key, double value);
plstm_status plstm_jsonl_add_string(plstm_jsonl *lg, const char *key, const char *value);
/* Writes the record as one line and flushes. */
plstm_status plstm_jsonl_end(plstm_jsonl *lg);

/* ---- progress bar ----------------------------------------------------------
 * Writes only to the caller's stream (stderr in the CLI). On a terminal one
 * line is redrawn in place with '\r' (at most 10 times per second); otherwise
 * a plain line is written at the first update, every `plain_every_s` seconds
 * (<= 0: 30) and at the end. */
typedef struct plstm_progress plstm_progress;

/* tty: 1 terminal, 0 plain lines, -1 detect with isatty(). start_step: the
 * step the run (re)starts at, for the rate and ETA. */
plstm_status plstm_progress_create(plstm_progress **pb, FILE *out, int64_t total_steps,
                                   int64_t start_step, int tty, double plain_every_s);
void plstm_progress_destroy(plstm_progress *pb);
/* Reports `step` updates done; negative loss/acc/images_per_s are left out. */
void plstm_progress_update(plstm_progress *pb, int64_t step, double loss, double acc,
                           double images_per_s);
/* Prints a line (no newline needed) above the bar, e.g. validation results. */
void plstm_progress_message(plstm_progress *pb, const char *text);
/* Final redraw and newline. */
void plstm_progress_finish(plstm_progress *pb);

/* ---- plots -----------------------------------------------------------------
 * Line charts in panels side by side, drawn with a built-in 5x7 bitmap font,
 * written as an RGB PNG (atomically). */
typedef struct plstm_plot_series {
    const char *label;
    const double *x, *y; /* n points; non-finite y are skipped */
    size_t n;
    uint8_t rgb[3];
} plstm_plot_series;

typedef struct plstm_plot_panel {
    const char *title;
    const char *xlabel;
    const plstm_plot_series *series;
    size_t num_series;
} plstm_plot_panel;

plstm_status plstm_plot_write_png(const char *path, int width, int height,
                                  const plstm_plot_panel *panels, size_t num_panels);

/* Reads a training log (records with "step", "split" and "loss"/"acc") and
 * plots loss and accuracy vs step, one line per split (train, val, ...). */
plstm_status plstm_plot_training_log(const char *png_path, const char *jsonl_path, int width,
                                     int height);

#ifdef __cplusplus
}
#endif
#endif
