/* Model registry: the trainer creates classifiers by name and JSON config. */
#include "plstm/trainer.h"
#include "plstm/vision.h"
#include "plstm/vit.h"
#include "core/status_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"plstm-vision", "vit", NULL};

const char *const *plstm_model_names(void) { return names; }

void plstm_classifier_destroy(plstm_classifier *model)
{
    if (model && model->ops && model->ops->destroy)
        model->ops->destroy(model);
}

/* ---- pLSTM vision model as a classifier -----------------------------------------
 * Interim adapter over the public vision.h API until the vision model ships
 * its own constructor: workspaces sized on demand (training and inference
 * kept apart, so evaluating at 2x does not drop the training buffers), the
 * training batch's pixels copied for backward. */
typedef struct vis_ws {
    plstm_vision_workspace *ws;
    int B, H, W;
} vis_ws;

typedef struct vis_classifier {
    plstm_classifier base;
    plstm_vision_model *m;
    vis_ws train, eval;
    int fwd_B; /* batch of the last training forward (0: none) */
    float *pixels;
    size_t pixels_cap;
    char *json;
} vis_classifier;

static plstm_status ensure_ws(vis_classifier *v, vis_ws *w, int B, int H, int W, int training)
{
    if (w->ws && w->H == H && w->W == W && w->B >= B)
        return PLSTM_OK;
    plstm_vision_workspace_destroy(w->ws);
    w->ws = NULL;
    PLSTM_TRY(plstm_vision_workspace_create(&w->ws, v->m, PLSTM_F32, B, H, W, training));
    w->B = B, w->H = H, w->W = W;
    return PLSTM_OK;
}

static plstm_status vis_forward(plstm_classifier *cm, plstm_context *ctx, const float *params,
                                int B, int H, int W, const float *pixels, float *logits,
                                int training)
{
    PLSTM_CHECK_ARG(cm && params && pixels && logits && B >= 1,
                    "pLSTM classifier forward: bad argument");
    vis_classifier *v = cm->impl;
    if (!training) {
        PLSTM_TRY(ensure_ws(v, &v->eval, B, H, W, 0));
        return plstm_vision_forward(ctx, v->m, v->eval.ws, params, B, pixels, logits, NULL);
    }
    v->fwd_B = 0;
    PLSTM_TRY(ensure_ws(v, &v->train, B, H, W, 1));
    const size_t n = (size_t)B * H * W * v->base.channels;
    if (n > v->pixels_cap) {
        free(v->pixels);
        v->pixels = malloc(n * sizeof(float));
        v->pixels_cap = v->pixels ? n : 0;
        if (!v->pixels)
            return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "pLSTM classifier: out of memory");
    }
    memcpy(v->pixels, pixels, n * sizeof(float));
    PLSTM_TRY(plstm_vision_forward(ctx, v->m, v->train.ws, params, B, v->pixels, logits, NULL));
    v->fwd_B = B;
    return PLSTM_OK;
}

static plstm_status vis_backward(plstm_classifier *cm, plstm_context *ctx, const float *params,
                                 const float *dlogits, float *grads)
{
    PLSTM_CHECK_ARG(cm && params && dlogits && grads, "pLSTM classifier backward: NULL argument");
    vis_classifier *v = cm->impl;
    PLSTM_CHECK_ARG(v->fwd_B > 0, "pLSTM classifier backward: needs a training forward first");
    return plstm_vision_backward(ctx, v->m, v->train.ws, params, v->fwd_B, v->pixels, dlogits,
                                 NULL, NULL, grads);
}

static plstm_status vis_init(plstm_classifier *cm, float *params, uint64_t seed)
{
    PLSTM_CHECK_ARG(cm && params, "pLSTM classifier init: NULL argument");
    vis_classifier *v = cm->impl;
    return plstm_vision_model_init(v->m, params, PLSTM_F32, seed);
}

static void vis_destroy(plstm_classifier *cm)
{
    if (!cm)
        return;
    vis_classifier *v = cm->impl;
    plstm_vision_workspace_destroy(v->train.ws);
    plstm_vision_workspace_destroy(v->eval.ws);
    plstm_vision_model_destroy(v->m);
    free(v->pixels);
    free(v->json);
    free(v);
}

static const plstm_classifier_ops vis_ops = {vis_forward, vis_backward, vis_init, vis_destroy};

static plstm_status vision_create(const char *config_json, plstm_classifier **out)
{
    plstm_vision_config cfg;
    PLSTM_TRY(plstm_vision_config_from_json(config_json, NULL, &cfg));
    vis_classifier *v = calloc(1, sizeof *v);
    if (!v)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "pLSTM classifier: out of memory");
    plstm_status s = plstm_vision_model_create(&v->m, &cfg);
    if (s == PLSTM_OK)
        s = plstm_vision_config_to_json(&cfg, &v->json);
    if (s != PLSTM_OK) {
        plstm_vision_model_destroy(v->m);
        free(v->json);
        free(v);
        return s;
    }
    plstm_classifier *c = &v->base;
    c->ops = &vis_ops;
    c->params = plstm_vision_model_params(v->m);
    c->num_classes = cfg.num_classes;
    c->channels = cfg.num_channels;
    c->train_height = cfg.image_size[0];
    c->train_width = cfg.image_size[1];
    c->name = "plstm-vision";
    c->config_json = v->json;
    c->impl = v;
    *out = c;
    return PLSTM_OK;
}

plstm_status plstm_model_create(const char *name, const char *config_json,
                                plstm_classifier **model)
{
    PLSTM_CHECK_ARG(name && config_json && model, "plstm_model_create: NULL argument");
    *model = NULL;
    if (!strcmp(name, "plstm-vision") || !strcmp(name, "plstm"))
        return vision_create(config_json, model);
    if (!strcmp(name, "vit")) {
        plstm_vit_config cfg;
        PLSTM_TRY(plstm_vit_config_from_json(config_json, NULL, &cfg));
        return plstm_vit_classifier_create(&cfg, model);
    }
    return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "unknown model '%s' (known: plstm-vision, vit)",
                      name);
}
