/* The interface the trainer sees: an image classifier over one contiguous
 * parameter buffer. The pLSTM vision model and the ViT baseline provide one
 * each (plstm_vision_classifier, plstm_vit_classifier). */
#ifndef PLSTM_CLASSIFIER_H
#define PLSTM_CLASSIFIER_H

#include "plstm/context.h"
#include "plstm/params.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct plstm_classifier plstm_classifier;

typedef struct plstm_classifier_ops {
    /* Logits [B, num_classes] for pixels [B, H, W, C] (channels last, F32).
     * training != 0 keeps what backward needs (and enables drop-path). Any H, W
     * the model supports (e.g. multiples of the patch size; the position
     * embedding is resized from the training resolution). */
    plstm_status (*forward)(plstm_classifier *m, plstm_context *ctx, const float *params,
                            int B, int H, int W, const float *pixels, float *logits,
                            int training);
    /* After a training forward: accumulates d(loss)/d(params) into grads given
     * dlogits [B, num_classes]. */
    plstm_status (*backward)(plstm_classifier *m, plstm_context *ctx, const float *params,
                             const float *dlogits, float *grads);
    /* Fills params with the model's initialization. */
    plstm_status (*init)(plstm_classifier *m, float *params, uint64_t seed);
    void (*destroy)(plstm_classifier *m);
} plstm_classifier_ops;

struct plstm_classifier {
    const plstm_classifier_ops *ops;
    const plstm_params *params; /* layout of params/grads/optimizer buffers */
    int num_classes;
    int channels;               /* C of the input images */
    int train_height, train_width;
    const char *name;           /* model name stored in checkpoints */
    const char *config_json;    /* full config, stored in checkpoints */
    void *impl;
};

#ifdef __cplusplus
}
#endif
#endif
