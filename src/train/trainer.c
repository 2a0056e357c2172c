/* The training loop (experiments.md §2.4): AdamW with warmup + cosine, global
 * norm clipping, softmax cross-entropy; JSON-lines log, periodic evaluation on
 * val / val_ext, rotating checkpoints with bit-exact resume, a final test /
 * test_ext pass, results.json and a PNG of the curves. */
#include "plstm/trainer.h"
#include "plstm/nn.h"
#include "core/status_internal.h"
#include "io/atomic_file.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { RNG_STREAM_DATA = 0x64617461 };

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* APE has 2 classes; with aux_geometry the model's outputs after them are
 * the geometry regression. */
enum { APE_CLASSES = 2 };

static plstm_status check_model(const plstm_classifier *m, const plstm_train_config *cfg)
{
    PLSTM_CHECK_ARG(m && m->ops && m->ops->forward && m->ops->backward && m->ops->init &&
                        m->params,
                    "trainer: incomplete classifier");
    PLSTM_CHECK_ARG(m->name && *m->name, "trainer: the classifier has no name");
    if (cfg->aux_geometry > 0)
        PLSTM_CHECK_ARG(m->num_classes == APE_CLASSES + PLSTM_APE_GEOMETRY_DIM,
                        "trainer: aux_geometry needs a model with %d outputs (2 classes + %d "
                        "geometry values), it has %d",
                        APE_CLASSES + PLSTM_APE_GEOMETRY_DIM, PLSTM_APE_GEOMETRY_DIM,
                        m->num_classes);
    else
        PLSTM_CHECK_ARG(m->num_classes >= APE_CLASSES,
                        "trainer: APE needs >= 2 classes, the model has %d", m->num_classes);
    PLSTM_CHECK_ARG(m->channels == 3, "trainer: APE images have 3 channels, the model takes %d",
                    m->channels);
    return PLSTM_OK;
}

static plstm_loader_config split_loader(const plstm_train_config *cfg, const plstm_ape *ds,
                                        int64_t count, int batch)
{
    plstm_loader_config lc;
    memset(&lc, 0, sizeof lc);
    lc.ds = *ds;
    lc.count = count;
    lc.batch = batch;
    lc.downsample = cfg->downsample;
    lc.norm = cfg->norm;
    lc.target = cfg->target;
    lc.threads = cfg->loader_threads;
    lc.prefetch = cfg->prefetch;
    return lc;
}

/* Number of class logits among the model's K outputs. */
static int class_count(const plstm_train_config *cfg, int K)
{
    return cfg->aux_geometry > 0 ? APE_CLASSES : K;
}

/* The first C of every row of K outputs, packed (a no-op view when C == K). */
static const float *class_logits(const float *out, int B, int K, int C, float *packed)
{
    if (C == K)
        return out;
    for (int b = 0; b < B; b++)
        memcpy(packed + (size_t)b * C, out + (size_t)b * K, (size_t)C * sizeof *packed);
    return packed;
}

/* ---- evaluation --------------------------------------------------------------- */
plstm_status plstm_train_evaluate(plstm_context *ctx, plstm_classifier *model,
                                  const float *params, const plstm_train_config *cfg,
                                  plstm_ape_split split, int64_t count,
                                  plstm_split_result *res)
{
    PLSTM_CHECK_ARG(ctx && params && cfg && res, "plstm_train_evaluate: NULL argument");
    PLSTM_TRY(check_model(model, cfg));
    PLSTM_CHECK_ARG(count >= 0, "evaluate: negative count");
    plstm_ape_split_info info;
    PLSTM_TRY(plstm_ape_split_get(split, cfg->seed, &info));
    plstm_ape ds;
    PLSTM_TRY(plstm_ape_init_split(&ds, split, cfg->seed));
    const int64_t n = count > 0 && count < info.count ? count : info.count;
    const int batch = cfg->eval_batch > 0 ? cfg->eval_batch : cfg->batch_size;
    plstm_loader_config lc = split_loader(cfg, &ds, n, batch);
    if (lc.prefetch > 2)
        lc.prefetch = 2; /* eval batches can be large (384 px) */
    plstm_loader *ld = NULL;
    PLSTM_TRY(plstm_loader_create(&ld, &lc, 0));
    const int side = plstm_loader_side(ld), K = model->num_classes, C = class_count(cfg, K);
    float *logits = malloc((size_t)batch * K * sizeof *logits);
    float *packed = malloc((size_t)batch * C * sizeof *packed);
    plstm_status st = logits && packed
                          ? PLSTM_OK
                          : plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "evaluate: out of memory");
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    while (st == PLSTM_OK) {
        const float *px;
        const int32_t *lab;
        int b = 0;
        st = plstm_loader_next(ld, &px, &lab, &b);
        if (st != PLSTM_OK || b == 0)
            break;
        st = model->ops->forward(model, ctx, params, b, side, side, px, logits, 0);
        double loss = 0;
        int ok = 0;
        if (st == PLSTM_OK)
            st = plstm_softmax_xent_forward(ctx, PLSTM_F32, b, C,
                                            class_logits(logits, b, K, C, packed), lab, &loss,
                                            &ok);
        loss_sum += loss * b, correct += ok, seen += b;
    }
    plstm_loader_destroy(ld);
    free(logits), free(packed);
    if (st != PLSTM_OK)
        return plstm_fail(st, "evaluating %s (%dx%d): %s", info.name, side, side,
                          plstm_last_error());
    res->count = seen;
    res->loss = loss_sum / (double)seen;
    res->acc = (double)correct / (double)seen;
    return PLSTM_OK;
}

/* ---- the run ------------------------------------------------------------------ */
typedef struct window {
    double loss_sum, aux_sum, gnorm_sum, seconds; /* aux_sum: geometry MSE · images */
    int64_t correct, images, steps;
} window;

typedef struct run {
    plstm_context *ctx;
    plstm_classifier *model;
    const plstm_train_config *cfg;
    const plstm_train_options *opt;
    const plstm_params *L;
    size_t n;
    float *params, *grads, *m, *v, *mask, *logits, *dlogits;
    float *cls, *dcls; /* packed class logits and their gradient (aux_geometry) */
    char *ident;
    int side;
    int64_t step;
    plstm_rng data_rng;
    window win;
    double train_seconds; /* over all sessions of the run */
    plstm_jsonl *log;
    plstm_progress *pb;
    char path[4][4096]; /* latest, log, results, plot */
} run;

enum { P_LATEST, P_LOG, P_RESULTS, P_PLOT };

static plstm_status extra_json(const run *r, char **out)
{
    json_t *o = json_pack("{s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:f}", "window_loss_sum",
                          r->win.loss_sum, "window_aux_sum", r->win.aux_sum,
                          "window_gnorm_sum", r->win.gnorm_sum,
                          "window_seconds", r->win.seconds, "window_correct",
                          (json_int_t)r->win.correct, "window_images", (json_int_t)r->win.images,
                          "window_steps", (json_int_t)r->win.steps, "train_seconds",
                          r->train_seconds);
    *out = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(o);
    return *out ? PLSTM_OK : plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "trainer: out of memory");
}

static void read_extra(run *r, const char *text)
{
    json_t *o = json_loads(text, 0, NULL);
    if (!o)
        return;
    json_int_t c = 0, i = 0, s = 0;
    double t = 0, ws = 0;
    r->win.aux_sum = 0;
    if (!json_unpack(o, "{s:F, s?F, s:F, s:F, s:I, s:I, s:I, s:F}", "window_loss_sum",
                     &r->win.loss_sum, "window_aux_sum", &r->win.aux_sum, "window_gnorm_sum",
                     &r->win.gnorm_sum, "window_seconds",
                     &ws, "window_correct", &c, "window_images", &i, "window_steps", &s,
                     "train_seconds", &t)) {
        r->win.correct = c, r->win.images = i, r->win.steps = s;
        r->win.seconds = ws;
        r->train_seconds = t;
    }
    json_decref(o);
}

static plstm_status save_checkpoint(run *r)
{
    char *extra = NULL;
    PLSTM_TRY(extra_json(r, &extra));
    plstm_checkpoint ck = {r->model->name, r->ident, r->params, r->m, r->v, r->step,
                           r->step * r->cfg->batch_size, &r->data_rng, 1, extra};
    plstm_status st =
        plstm_checkpoint_save_rotating(r->opt->out_dir, r->L, &ck, r->cfg->keep_checkpoints);
    free(extra);
    return st;
}

static plstm_status log_split(run *r, const char *split, int64_t step,
                              const plstm_split_result *res, int side)
{
    PLSTM_TRY(plstm_jsonl_begin(r->log));
    PLSTM_TRY(plstm_jsonl_add_int(r->log, "step", step));
    PLSTM_TRY(plstm_jsonl_add_string(r->log, "split", split));
    PLSTM_TRY(plstm_jsonl_add_real(r->log, "loss", res->loss));
    PLSTM_TRY(plstm_jsonl_add_real(r->log, "acc", res->acc));
    PLSTM_TRY(plstm_jsonl_add_int(r->log, "count", res->count));
    PLSTM_TRY(plstm_jsonl_add_int(r->log, "resolution", side));
    return plstm_jsonl_end(r->log);
}

/* Evaluates two splits (val + val_ext or test + test_ext), logs, reports. */
static plstm_status eval_pair(run *r, plstm_ape_split a, plstm_ape_split b, int64_t count,
                              plstm_split_result *ra, plstm_split_result *rb)
{
    const plstm_ape_split sp[2] = {a, b};
    plstm_split_result *rs[2] = {ra, rb};
    char msg[256];
    int len = snprintf(msg, sizeof msg, "step %lld:", (long long)r->step);
    for (int i = 0; i < 2; i++) {
        plstm_ape_split_info info;
        int side = 0;
        PLSTM_TRY(plstm_ape_split_get(sp[i], r->cfg->seed, &info));
        PLSTM_TRY(plstm_train_split_resolution(r->cfg, sp[i], &side));
        PLSTM_TRY(plstm_train_evaluate(r->ctx, r->model, r->params, r->cfg, sp[i], count, rs[i]));
        PLSTM_TRY(log_split(r, info.name, r->step, rs[i], side));
        if (len > 0 && (size_t)len < sizeof msg)
            len += snprintf(msg + len, sizeof msg - (size_t)len, "  %s@%d acc %.4f loss %.4f",
                            info.name, side, rs[i]->acc, rs[i]->loss);
    }
    plstm_progress_message(r->pb, msg);
    return PLSTM_OK;
}

static plstm_status log_train(run *r, double lr, plstm_train_result *res)
{
    const window *w = &r->win;
    const double loss = w->loss_sum / (double)w->images;
    const double acc = (double)w->correct / (double)w->images;
    PLSTM_TRY(plstm_jsonl_begin(r->log));
    PLSTM_TRY(plstm_jsonl_add_int(r->log, "step", r->step));
    PLSTM_TRY(plstm_jsonl_add_string(r->log, "split", "train"));
    PLSTM_TRY(plstm_jsonl_add_real(r->log, "loss", loss));
    PLSTM_TRY(plstm_jsonl_add_real(r->log, "acc", acc));
    if (r->cfg->aux_geometry > 0)
        PLSTM_TRY(plstm_jsonl_add_real(r->log, "aux_loss", w->aux_sum / (double)w->images));
    PLSTM_TRY(plstm_jsonl_add_real(r->log, "lr", lr));
    PLSTM_TRY(plstm_jsonl_add_real(r->log, "grad_norm", w->gnorm_sum / (double)w->steps));
    PLSTM_TRY(plstm_jsonl_add_real(r->log, "images_per_s",
                                   w->seconds > 0 ? (double)w->images / w->seconds : -1));
    PLSTM_TRY(plstm_jsonl_add_real(r->log, "train_seconds", r->train_seconds));
    PLSTM_TRY(plstm_jsonl_end(r->log));
    res->train_loss = loss, res->train_acc = acc;
    memset(&r->win, 0, sizeof r->win);
    return PLSTM_OK;
}

/* The auxiliary geometry loss w · mean((out[:, C:] − geometry)²) over the
 * batch's B·G values: returns the mean and writes its gradient into dout's
 * geometry columns. */
static double geometry_loss(const float *out, const float *geometry, int B, int K, int C,
                            double w, float *dout)
{
    const int G = K - C;
    const double scale = 2.0 * w / ((double)B * G);
    double sum = 0;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < G; j++) {
            const double d = (double)out[(size_t)b * K + C + j] - geometry[(size_t)b * G + j];
            sum += d * d;
            dout[(size_t)b * K + C + j] = (float)(scale * d);
        }
    return sum / ((double)B * G);
}

/* One optimizer update on one batch (geometry: NULL without aux_geometry). */
static plstm_status train_step(run *r, const float *px, const int32_t *lab, const float *geometry,
                               int B, double *loss, double *aux, int *correct, double *gnorm,
                               double *lr)
{
    const plstm_train_config *c = r->cfg;
    const int K = r->model->num_classes, C = class_count(c, K);
    memset(r->grads, 0, r->n * sizeof *r->grads);
    PLSTM_TRY(r->model->ops->forward(r->model, r->ctx, r->params, B, r->side, r->side, px,
                                     r->logits, 1));
    const float *cls = class_logits(r->logits, B, K, C, r->cls);
    float *dcls = C == K ? r->dlogits : r->dcls;
    PLSTM_TRY(plstm_softmax_xent_forward(r->ctx, PLSTM_F32, B, C, cls, lab, loss, correct));
    PLSTM_TRY(plstm_softmax_xent_backward(r->ctx, PLSTM_F32, B, C, cls, lab, 1.0, dcls));
    *aux = 0;
    if (C < K) {
        PLSTM_CHECK_ARG(geometry, "trainer: aux_geometry without geometry from the loader");
        *aux = geometry_loss(r->logits, geometry, B, K, C, c->aux_geometry, r->dlogits);
        for (int b = 0; b < B; b++)
            memcpy(r->dlogits + (size_t)b * K, dcls + (size_t)b * C, (size_t)C * sizeof *dcls);
    }
    PLSTM_TRY(r->model->ops->backward(r->model, r->ctx, r->params, r->dlogits, r->grads));
    if (c->clip_norm > 0)
        PLSTM_TRY(plstm_grad_clip(r->L, r->grads, r->n, c->clip_norm, gnorm));
    else
        PLSTM_TRY(plstm_grad_norm(r->L, r->grads, r->n, gnorm));
    const plstm_lr_schedule sch = {c->lr, c->warmup_steps, c->steps, c->min_lr_ratio};
    *lr = plstm_lr_at(&sch, r->step);
    const plstm_adamw_config ac = {c->beta1, c->beta2, c->adam_eps, c->weight_decay};
    return plstm_adamw_step(&ac, *lr, r->step, r->n, r->params, r->grads, r->m, r->v, r->mask);
}

static plstm_status write_results(run *r, const plstm_train_result *res)
{
    int s1 = 0, s2 = 0;
    PLSTM_TRY(plstm_train_split_resolution(r->cfg, PLSTM_APE_TEST, &s1));
    PLSTM_TRY(plstm_train_split_resolution(r->cfg, PLSTM_APE_TEST_EXT, &s2));
    json_t *o = json_pack("{s:s, s:I, s:i, s:i, s:f}", "model", r->model->name, "step",
                          (json_int_t)res->step, "resolution", s1, "ext_resolution", s2,
                          "train_seconds", r->train_seconds);
    const struct {
        const char *name;
        const plstm_split_result *s;
    } sp[4] = {{"val", &res->val}, {"val_ext", &res->val_ext}, {"test", &res->test},
               {"test_ext", &res->test_ext}};
    for (int i = 0; o && i < 4; i++) {
        if (!sp[i].s->count)
            continue;
        char k[64];
        snprintf(k, sizeof k, "%s_acc", sp[i].name);
        json_object_set_new(o, k, json_real(sp[i].s->acc));
        snprintf(k, sizeof k, "%s_loss", sp[i].name);
        json_object_set_new(o, k, json_real(sp[i].s->loss));
        snprintf(k, sizeof k, "%s_count", sp[i].name);
        json_object_set_new(o, k, json_integer(sp[i].s->count));
    }
    char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(o);
    if (!text)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "trainer: out of memory");
    const size_t len = strlen(text);
    char *with_nl = realloc(text, len + 2);
    if (!with_nl) {
        free(text);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "trainer: out of memory");
    }
    with_nl[len] = '\n', with_nl[len + 1] = 0;
    plstm_status st = plstm_atomic_write(r->path[P_RESULTS], with_nl, len + 1);
    free(with_nl);
    return st;
}

static plstm_status allocate(run *r)
{
    const size_t n = r->n, C = (size_t)r->model->num_classes, B = (size_t)r->cfg->batch_size;
    r->params = calloc(n, sizeof(float));
    r->grads = calloc(n, sizeof(float));
    r->m = calloc(n, sizeof(float));
    r->v = calloc(n, sizeof(float));
    r->mask = calloc(n, sizeof(float));
    r->logits = calloc(B * C, sizeof(float));
    r->dlogits = calloc(B * C, sizeof(float));
    r->cls = calloc(B * APE_CLASSES, sizeof(float));
    r->dcls = calloc(B * APE_CLASSES, sizeof(float));
    if (!r->params || !r->grads || !r->m || !r->v || !r->mask || !r->logits || !r->dlogits ||
        !r->cls || !r->dcls)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "trainer: out of memory for %zu parameters",
                          n);
    return plstm_adamw_decay_mask(r->L, r->mask);
}

static void release(run *r)
{
    free(r->params), free(r->grads), free(r->m), free(r->v), free(r->mask);
    free(r->logits), free(r->dlogits), free(r->cls), free(r->dcls), free(r->ident);
    plstm_progress_destroy(r->pb);
    plstm_jsonl_close(r->log);
}

static plstm_status prepare(run *r)
{
    const plstm_train_config *cfg = r->cfg;
    const plstm_train_options *opt = r->opt;
    PLSTM_CHECK_ARG(plstm_context_backend(r->ctx) == PLSTM_BACKEND_CPU,
                    "trainer: needs a CPU context (buffers are host memory)");
    PLSTM_TRY(plstm_train_config_check(cfg));
    PLSTM_TRY(check_model(r->model, cfg));
    PLSTM_TRY(plstm_train_split_resolution(cfg, PLSTM_APE_TRAIN, &r->side));
    PLSTM_CHECK_ARG(r->model->train_height == r->side && r->model->train_width == r->side,
                    "trainer: the model trains at %dx%d but the data gives %dx%d images "
                    "(APE 192 / downsample %d); set model_config.image_size",
                    r->model->train_height, r->model->train_width, r->side, r->side,
                    cfg->downsample);
    PLSTM_CHECK_ARG(opt->out_dir && *opt->out_dir, "trainer: no output folder");
    struct stat st;
    if (stat(opt->out_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return plstm_fail(PLSTM_ERR_IO, "trainer: output folder %s does not exist",
                          opt->out_dir);
    static const char *const names[4] = {"latest.safetensors", "train.jsonl", "results.json",
                                         "curves.png"};
    for (int i = 0; i < 4; i++)
        if ((size_t)snprintf(r->path[i], sizeof r->path[i], "%s/%s", opt->out_dir, names[i]) >=
            sizeof r->path[i])
            return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "trainer: output path too long");
    return PLSTM_OK;
}

/* Loads latest.safetensors into the run (nothing changes on failure). */
static plstm_status resume_from(run *r)
{
    if (!file_exists(r->path[P_LATEST]))
        return plstm_fail(PLSTM_ERR_IO, "trainer: nothing to resume: %s does not exist",
                          r->path[P_LATEST]);
    plstm_rng rng = r->data_rng;
    plstm_checkpoint ck = {r->model->name, r->ident, r->params, r->m, r->v, 0, 0, &rng, 1, NULL};
    char *extra = NULL;
    PLSTM_TRY(plstm_checkpoint_load(r->path[P_LATEST], r->L, &ck, &extra));
    plstm_status st = PLSTM_OK;
    if (ck.step < 0 || ck.step > r->cfg->steps)
        st = plstm_fail(PLSTM_ERR_FORMAT, "%s: step %lld is outside this run's 0..%lld",
                        r->path[P_LATEST], (long long)ck.step, (long long)r->cfg->steps);
    else if (ck.data_position != ck.step * r->cfg->batch_size)
        st = plstm_fail(PLSTM_ERR_FORMAT,
                        "%s: data position %lld does not match step %lld x batch %d",
                        r->path[P_LATEST], (long long)ck.data_position, (long long)ck.step,
                        r->cfg->batch_size);
    else if (rng.key != r->data_rng.key)
        st = plstm_fail(PLSTM_ERR_FORMAT, "%s: data stream of another seed", r->path[P_LATEST]);
    if (st == PLSTM_OK) {
        r->step = ck.step;
        r->data_rng = rng;
        read_extra(r, extra);
    }
    free(extra);
    return st;
}

static plstm_status final_pass(run *r, plstm_train_result *res)
{
    if (r->cfg->test_count >= 0)
        PLSTM_TRY(eval_pair(r, PLSTM_APE_TEST, PLSTM_APE_TEST_EXT, r->cfg->test_count,
                            &res->test, &res->test_ext));
    PLSTM_TRY(write_results(r, res));
    if (!r->opt->no_plot)
        PLSTM_TRY(plstm_plot_training_log(r->path[P_PLOT], r->path[P_LOG], 1200, 480));
    return PLSTM_OK;
}

static plstm_status train_loop(run *r, plstm_train_result *res)
{
    const plstm_train_config *c = r->cfg;
    const plstm_train_options *opt = r->opt;
    plstm_loader_config lc;
    plstm_ape ds;
    PLSTM_TRY(plstm_ape_init_split(&ds, PLSTM_APE_TRAIN, c->seed));
    lc = split_loader(c, &ds, c->train_size, c->batch_size);
    lc.repeat = 1, lc.shuffle = 1, lc.shuffle_seed = r->data_rng.key;
    lc.geometry = c->aux_geometry > 0;
    plstm_loader *ld = NULL;
    PLSTM_TRY(plstm_loader_create(&ld, &lc, r->step));
    plstm_status st = PLSTM_OK;
    double t0 = now_s();
    while (r->step < c->steps) {
        const float *px;
        const int32_t *lab;
        int B;
        if ((st = plstm_loader_next(ld, &px, &lab, &B)) != PLSTM_OK)
            break;
        double loss = 0, aux = 0, gnorm = 0, lr = 0;
        int correct;
        if ((st = train_step(r, px, lab, plstm_loader_geometry(ld), B, &loss, &aux, &correct,
                             &gnorm, &lr)) != PLSTM_OK) {
            st = plstm_fail(st, "step %lld: %s", (long long)r->step, plstm_last_error());
            break;
        }
        r->step++;
        const double t1 = now_s();
        r->win.seconds += t1 - t0, r->train_seconds += t1 - t0;
        r->win.loss_sum += loss * B, r->win.aux_sum += aux * B;
        r->win.correct += correct, r->win.images += B;
        r->win.gnorm_sum += gnorm, r->win.steps++;
        plstm_progress_update(r->pb, r->step, r->win.loss_sum / (double)r->win.images,
                              (double)r->win.correct / (double)r->win.images,
                              r->win.seconds > 0 ? (double)r->win.images / r->win.seconds
                                                 : -1);
        const int last = r->step == c->steps;
        if (r->step % c->log_every == 0 || last)
            if ((st = log_train(r, lr, res)) != PLSTM_OK)
                break;
        if ((c->eval_every && r->step % c->eval_every == 0) || last)
            if ((st = eval_pair(r, PLSTM_APE_VAL, PLSTM_APE_VAL_EXT, c->eval_count, &res->val,
                                &res->val_ext)) != PLSTM_OK)
                break;
        const int stop = (opt->stop && *opt->stop) ||
                         (opt->stop_after > 0 && r->step >= opt->stop_after);
        if ((c->checkpoint_every && r->step % c->checkpoint_every == 0) || last || stop)
            if ((st = save_checkpoint(r)) != PLSTM_OK)
                break;
        if (stop)
            break;
        t0 = now_s(); /* evaluation and checkpoint time is not training time */
    }
    plstm_loader_destroy(ld);
    return st;
}

plstm_status plstm_train_run(plstm_context *ctx, plstm_classifier *model,
                             const plstm_train_config *cfg, const plstm_train_options *opt,
                             plstm_train_result *result)
{
    PLSTM_CHECK_ARG(ctx && model && cfg && opt && result, "plstm_train_run: NULL argument");
    memset(result, 0, sizeof *result);
    run r;
    memset(&r, 0, sizeof r);
    r.ctx = ctx, r.model = model, r.cfg = cfg, r.opt = opt;
    plstm_status st = prepare(&r);
    if (st != PLSTM_OK)
        return st;
    r.L = model->params;
    r.n = plstm_params_size(r.L);
    plstm_rng_seed(&r.data_rng, cfg->seed, RNG_STREAM_DATA);
    if (!opt->resume && (file_exists(r.path[P_LATEST]) || file_exists(r.path[P_LOG])))
        return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT,
                          "trainer: %s already holds a run; continue it with resume or choose "
                          "another output folder",
                          opt->out_dir);
    if ((st = plstm_train_config_to_json(cfg, 1, &r.ident)) == PLSTM_OK &&
        (st = allocate(&r)) == PLSTM_OK) {
        st = opt->resume ? resume_from(&r) : model->ops->init(model, r.params, cfg->seed);
    }
    const int64_t start = r.step;
    const int done_before = opt->resume && st == PLSTM_OK && r.step == cfg->steps;
    if (st == PLSTM_OK && done_before && file_exists(r.path[P_RESULTS])) {
        /* Finished and reported: nothing to do. */
        result->step = r.step, result->finished = 1;
        release(&r);
        return PLSTM_OK;
    }
    if (st == PLSTM_OK)
        st = plstm_jsonl_open(&r.log, r.path[P_LOG], opt->resume ? r.step : -1);
    if (st == PLSTM_OK && !done_before) {
        /* Provenance: the full configuration at every (re)start. */
        char *full = NULL;
        st = plstm_train_config_to_json(cfg, 0, &full);
        if (st == PLSTM_OK && (st = plstm_jsonl_begin(r.log)) == PLSTM_OK &&
            (st = plstm_jsonl_add_int(r.log, "step", r.step)) == PLSTM_OK &&
            (st = plstm_jsonl_add_string(r.log, "event", opt->resume ? "resume" : "start")) ==
                PLSTM_OK &&
            (st = plstm_jsonl_add_string(r.log, "model", model->name)) == PLSTM_OK &&
            (st = plstm_jsonl_add_string(r.log, "config", full)) == PLSTM_OK)
            st = plstm_jsonl_end(r.log);
        free(full);
    }
    if (st == PLSTM_OK && opt->progress)
        st = plstm_progress_create(&r.pb, opt->progress, cfg->steps, start, opt->progress_tty, 0);
    if (st == PLSTM_OK && !done_before)
        st = train_loop(&r, result);
    plstm_progress_finish(r.pb);
    result->step = r.step;
    result->finished = r.step == cfg->steps;
    if (st == PLSTM_OK && result->finished)
        st = final_pass(&r, result);
    else if (st == PLSTM_OK && !opt->no_plot && r.step > start)
        (void)plstm_plot_training_log(r.path[P_PLOT], r.path[P_LOG], 1200, 480);
    release(&r);
    return st;
}
