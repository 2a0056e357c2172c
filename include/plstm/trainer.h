/* Training and evaluation of image classifiers on APE (experiments.md §2.4,
 * ape.md §1.6–1.8): run configuration and presets, the model registry, a
 * prefetching batch loader, the training loop (log, checkpoints, resume,
 * plot) and evaluation on the paper's splits.
 *
 * Buffers are host memory; the trainer needs a CPU context. */
#ifndef PLSTM_TRAINER_H
#define PLSTM_TRAINER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "plstm/ape.h"
#include "plstm/classifier.h"
#include "plstm/context.h"
#include "plstm/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- model registry ---------------------------------------------------------
 * "plstm-vision" (alias "plstm"): the pLSTM vision model, config as
 * plstm_vision_config_from_json; "vit": the ViT baseline. A model whose code
 * is not in this build is PLSTM_ERR_UNSUPPORTED; an unknown name is
 * PLSTM_ERR_INVALID_ARGUMENT listing the known ones. */
plstm_status plstm_model_create(const char *name, const char *config_json,
                                plstm_classifier **model);
/* Calls the model's destroy (NULL is a no-op). */
void plstm_classifier_destroy(plstm_classifier *model);
/* Registry names, NULL-terminated. */
const char *const *plstm_model_names(void);

/* ---- run configuration ------------------------------------------------------
 * A run is: preset, then a JSON file, then key=value overrides. Every key of
 * plstm_train_config_to_json is settable; "model_config" is a JSON object
 * handed to the model, and an object given later is merged into it key by
 * key ("model_config.dim=64" sets one key). Unknown keys and bad values are
 * errors naming them; a failed apply changes nothing. */
#define PLSTM_TRAIN_MODEL_CONFIG_MAX 4096

typedef struct plstm_train_config {
    char model[64];                                   /* registry name                 */
    char model_config[PLSTM_TRAIN_MODEL_CONFIG_MAX];  /* JSON object                   */
    uint64_t seed;                 /* init, train data (APE train split seed)          */
    int64_t steps;                 /* optimizer updates                                */
    int batch_size;
    double lr, min_lr_ratio;       /* peak; cosine floor = min_lr_ratio * lr            */
    int64_t warmup_steps;
    double weight_decay, beta1, beta2, adam_eps;
    double clip_norm;              /* global-norm clip; 0: off                          */
    int64_t train_size;            /* train images (100,000)                           */
    int downsample;                /* images rendered at the split's size, then averaged
                                      over d×d blocks: model input = size / d          */
    plstm_ape_norm norm;           /* "imagenet" | "unit"                               */
    plstm_ape_target target;       /* "pointing" (the task) or a diagnostic sub-task    */
    double aux_geometry;           /* weight of an auxiliary loss (0: off): the model's
                                      outputs after the 2 class logits regress the
                                      sample's plstm_ape_geometry (mean squared error);
                                      only the class logits are evaluated             */
    /* Not part of the run's identity (may change on --resume): */
    int64_t log_every;             /* train record every N steps                       */
    int64_t eval_every;            /* val + val_ext every N steps (0: only at the end)  */
    int64_t eval_count;            /* samples per val split (0: whole split)           */
    int64_t test_count;            /* samples per test split at the end (0: whole; <0: skip) */
    int eval_batch;                /* 0: batch_size                                   */
    int64_t checkpoint_every;      /* 0: only at the end                               */
    int keep_checkpoints;          /* newest numbered checkpoints kept (0: all)        */
    int threads;                   /* operator threads (0: OpenMP default)             */
    int loader_threads;            /* batch-rendering worker threads (0: in the loop)  */
    int prefetch;                  /* batches rendered ahead                          */
} plstm_train_config;

typedef struct plstm_train_preset {
    const char *name, *description;
} plstm_train_preset;

/* Presets, terminated by a {NULL, NULL} entry. */
const plstm_train_preset *plstm_train_presets(void);
/* Library defaults (the paper's APE recipe without a model). */
void plstm_train_config_default(plstm_train_config *cfg);
/* Defaults, then the preset (unknown name: error listing the presets). */
plstm_status plstm_train_config_preset(const char *name, plstm_train_config *cfg);
/* Applies the keys of a JSON object; `what` names the source in messages. */
plstm_status plstm_train_config_apply_json(plstm_train_config *cfg, const char *json,
                                           const char *what);
plstm_status plstm_train_config_apply_file(plstm_train_config *cfg, const char *path);
/* "key=value": value is JSON when it parses as JSON, else a string. */
plstm_status plstm_train_config_apply_override(plstm_train_config *cfg, const char *kv);
plstm_status plstm_train_config_check(const plstm_train_config *cfg);
/* identity_only: only the keys that define the run's result (stored and
 * compared in checkpoints). malloc'd; free(). */
plstm_status plstm_train_config_to_json(const plstm_train_config *cfg, int identity_only,
                                        char **json);
/* The model's config: model_config plus image_size [r, r] (r = 192 / downsample),
 * num_channels 3 and num_classes 2 (2 + PLSTM_APE_GEOMETRY_DIM outputs with
 * aux_geometry) where it does not set them. malloc'd. */
plstm_status plstm_train_model_json(const plstm_train_config *cfg, char **json);
/* Model input side of a split: its APE size / downsample. */
plstm_status plstm_train_split_resolution(const plstm_train_config *cfg, plstm_ape_split split,
                                          int *side);

/* ---- batch loader -----------------------------------------------------------
 * Renders APE batches (channels last [B, H, W, 3] F32, int32 labels). Batch
 * k's content is a pure function of the configuration and k, whatever the
 * thread count and timing: with `repeat`, epoch e = k / (count / batch) uses
 * a permutation drawn from (shuffle_seed, e) (or the identity without
 * `shuffle`) and the partial last batch is dropped; without `repeat` there
 * is one pass in order and the last batch may be partial. Worker threads
 * render up to `prefetch` batches ahead into a ring. */
typedef struct plstm_loader_config {
    plstm_ape ds;
    int64_t count;       /* samples 0..count-1 of ds                            */
    int batch;
    int downsample;      /* >= 1, divides ds.size                               */
    plstm_ape_norm norm;
    plstm_ape_target target;
    int repeat, shuffle;
    uint64_t shuffle_seed;
    int threads;         /* 0: render in plstm_loader_next                     */
    int prefetch;        /* ring slots (>= 1)                                   */
    int geometry;        /* also deliver plstm_ape_geometry of every sample     */
} plstm_loader_config;

typedef struct plstm_loader plstm_loader;

/* Starts at batch `start_batch` (resume). */
plstm_status plstm_loader_create(plstm_loader **ld, const plstm_loader_config *cfg,
                                 int64_t start_batch);
void plstm_loader_destroy(plstm_loader *ld);
/* The next batch: *n images (0 at the end of a one-pass loader). The buffers
 * stay valid until the next call. */
plstm_status plstm_loader_next(plstm_loader *ld, const float **pixels, const int32_t **labels,
                               int *n);
/* Model input side (ds.size / downsample). */
int plstm_loader_side(const plstm_loader *ld);
/* Geometry [n, PLSTM_APE_GEOMETRY_DIM] of the batch the last plstm_loader_next
 * handed out (NULL without cfg.geometry or before the first batch); valid as
 * long as that batch. */
const float *plstm_loader_geometry(const plstm_loader *ld);

/* ---- training ---------------------------------------------------------------- */
typedef struct plstm_train_options {
    const char *out_dir;   /* required, must exist: train.jsonl, checkpoints,
                              latest.safetensors, results.json, curves.png  */
    int resume;            /* continue from out_dir/latest.safetensors      */
    FILE *progress;        /* progress bar and messages (NULL: silent)      */
    int progress_tty;      /* 1, 0, -1: detect                               */
    volatile sig_atomic_t *stop; /* when set: finish the step, checkpoint, return */
    int64_t stop_after;    /* > 0: stop (with a checkpoint) at this step    */
    int no_plot;
} plstm_train_options;

typedef struct plstm_split_result {
    int64_t count;
    double loss, acc;
} plstm_split_result;

typedef struct plstm_train_result {
    int64_t step;          /* updates applied when the run returned         */
    int finished;          /* all steps done (else stopped)                */
    double train_loss, train_acc; /* last log window                        */
    plstm_split_result val, val_ext, test, test_ext; /* count 0: not run    */
} plstm_train_result;

/* Trains `model` (created for cfg) per cfg. Without resume, out_dir must not
 * hold a run yet (nothing is overwritten). With resume, the checkpoint must
 * match the model and the run's identity config; on any error nothing in
 * out_dir is changed. */
plstm_status plstm_train_run(plstm_context *ctx, plstm_classifier *model,
                             const plstm_train_config *cfg, const plstm_train_options *opt,
                             plstm_train_result *result);

/* Accuracy and mean loss on the first `count` samples (0: all) of an APE
 * split, at the split's resolution / cfg->downsample. */
plstm_status plstm_train_evaluate(plstm_context *ctx, plstm_classifier *model,
                                  const float *params, const plstm_train_config *cfg,
                                  plstm_ape_split split, int64_t count,
                                  plstm_split_result *result);

#ifdef __cplusplus
}
#endif
#endif
