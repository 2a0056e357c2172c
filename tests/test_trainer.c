/* The trainer with a tiny test classifier (a linear head on block-averaged
 * pixels): loss goes down, resume is bit-exact, bad checkpoints and configs
 * are clear errors that change nothing, and the loader's batches do not
 * depend on its thread count. */
#include "testutil.h"
#include "plstm/trainer.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- tiny classifier ------------------------------------------------------------ */
enum { G = 8, NF = G * G };

typedef struct tiny {
    plstm_classifier base;
    plstm_params *L;
    size_t w_off, b_off;
    float *feats; /* [B, NF] of the last training forward */
    int cap, B;
} tiny;

static void features(int H, int W, const float *px, float *f)
{
    const int bh = H / G, bw = W / G;
    for (int gy = 0; gy < G; gy++)
        for (int gx = 0; gx < G; gx++) {
            double s = 0;
            for (int y = gy * bh; y < (gy + 1) * bh; y++)
                for (int x = gx * bw; x < (gx + 1) * bw; x++)
                    s += px[((size_t)y * W + x) * 3];
            f[gy * G + gx] = (float)(s / (bh * bw));
        }
}

static plstm_status tiny_forward(plstm_classifier *m, plstm_context *ctx, const float *params,
                                 int B, int H, int W, const float *pixels, float *logits,
                                 int training)
{
    (void)ctx;
    tiny *t = m->impl;
    const int NC = m->num_classes;
    float f[NF];
    if (training && B > t->cap) {
        free(t->feats);
        t->feats = malloc((size_t)B * NF * sizeof *t->feats);
        t->cap = B;
    }
    for (int b = 0; b < B; b++) {
        features(H, W, pixels + (size_t)b * H * W * 3, f);
        if (training)
            memcpy(t->feats + (size_t)b * NF, f, sizeof f);
        for (int c = 0; c < NC; c++) {
            float z = params[t->b_off + c];
            for (int i = 0; i < NF; i++)
                z += params[t->w_off + (size_t)c * NF + i] * f[i];
            logits[b * NC + c] = z;
        }
    }
    t->B = training ? B : 0;
    return PLSTM_OK;
}

static plstm_status tiny_backward(plstm_classifier *m, plstm_context *ctx, const float *params,
                                  const float *dlogits, float *grads)
{
    (void)ctx, (void)params;
    tiny *t = m->impl;
    const int NC = m->num_classes;
    if (!t->B)
        return PLSTM_ERR_INVALID_ARGUMENT;
    for (int b = 0; b < t->B; b++)
        for (int c = 0; c < NC; c++) {
            const float d = dlogits[b * NC + c];
            grads[t->b_off + c] += d;
            for (int i = 0; i < NF; i++)
                grads[t->w_off + (size_t)c * NF + i] += d * t->feats[(size_t)b * NF + i];
        }
    return PLSTM_OK;
}

static plstm_status tiny_init(plstm_classifier *m, float *params, uint64_t seed)
{
    tiny *t = m->impl;
    memset(params, 0, plstm_params_size(t->L) * sizeof *params);
    plstm_rng r;
    plstm_rng_seed(&r, seed, 1);
    plstm_rng_fill_normal_f32(&r, params + t->w_off, (size_t)m->num_classes * NF, 0, 0.05);
    return PLSTM_OK;
}

static void tiny_destroy(plstm_classifier *m)
{
    tiny *t = m->impl;
    plstm_params_destroy(t->L);
    free(t->feats);
    free(t);
}

static const plstm_classifier_ops tiny_ops = {tiny_forward, tiny_backward, tiny_init,
                                              tiny_destroy};

/* A linear head with NC outputs on 8×8 block means of channel 0. */
static plstm_classifier *tiny_create_k(const char *name, int side, int NC)
{
    tiny *t = tu_calloc(1, sizeof *t);
    TU_OK(plstm_params_create(&t->L));
    const int64_t ws[2] = {NC, NF}, bs[1] = {NC};
    TU_OK(plstm_params_declare(t->L, "head.weight", 2, ws, 0, &t->w_off));
    TU_OK(plstm_params_declare(t->L, "head.bias", 1, bs, PLSTM_PARAM_NO_DECAY, &t->b_off));
    t->base = (plstm_classifier){&tiny_ops, t->L, NC, 3, side, side, name, "{}", t};
    return &t->base;
}

static plstm_classifier *tiny_create(const char *name, int side)
{
    return tiny_create_k(name, side, 2);
}

/* ---- helpers ----------------------------------------------------------------------- */
typedef struct fixture {
    char dir[64];
    plstm_context *ctx;
} fixture;

static int setup(void **state)
{
    fixture *f = tu_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/plstm_trainer_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    TU_OK(plstm_context_create(&f->ctx, PLSTM_BACKEND_CPU, 0));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    plstm_context_destroy(f->ctx);
    free(f);
    return 0;
}

/* A few-second run: 64 training images at 24 px (192 / 8), batch 16. */
static plstm_train_config tiny_config(void)
{
    plstm_train_config c;
    plstm_train_config_default(&c);
    strcpy(c.model, "tiny");
    strcpy(c.model_config, "{}");
    c.seed = 7;
    c.steps = 80, c.batch_size = 16, c.lr = 0.02, c.warmup_steps = 4, c.min_lr_ratio = 0.01;
    c.train_size = 64, c.downsample = 8;
    c.log_every = 10, c.eval_every = 40, c.eval_count = 32, c.test_count = 32;
    c.checkpoint_every = 10, c.keep_checkpoints = 0;
    c.loader_threads = 0, c.prefetch = 2;
    return c;
}

static const char *sub(const fixture *f, const char *name)
{
    static char p[4][256];
    static int k;
    char *s = p[k++ % 4];
    snprintf(s, 256, "%s/%s", f->dir, name);
    return s;
}

static void make_dir(const char *path) { assert_int_equal(mkdir(path, 0777), 0); }

static plstm_status train(fixture *f, const plstm_train_config *c, const char *dir, int resume,
                          int64_t stop_after, plstm_train_result *res)
{
    /* 2 class logits, plus the geometry outputs with aux_geometry */
    const int K = 2 + (c->aux_geometry > 0 ? PLSTM_APE_GEOMETRY_DIM : 0);
    plstm_classifier *m = tiny_create_k("tiny", 192 / c->downsample, K);
    plstm_train_options o;
    memset(&o, 0, sizeof o);
    o.out_dir = dir, o.resume = resume, o.stop_after = stop_after, o.no_plot = 1;
    plstm_status s = plstm_train_run(f->ctx, m, c, &o, res);
    plstm_classifier_destroy(m);
    return s;
}

/* Parameters and moments of a checkpoint. */
static float *load_params(const char *path, const plstm_train_config *c, float **mv)
{
    const int K = 2 + (c->aux_geometry > 0 ? PLSTM_APE_GEOMETRY_DIM : 0);
    plstm_classifier *m = tiny_create_k("tiny", 192 / c->downsample, K);
    const size_t n = plstm_params_size(m->params);
    float *p = tu_calloc(3 * n, sizeof *p);
    plstm_rng r;
    plstm_checkpoint ck = {"tiny", NULL, p, p + n, p + 2 * n, 0, 0, &r, 1, NULL};
    TU_OK(plstm_checkpoint_load(path, m->params, &ck, NULL));
    plstm_classifier_destroy(m);
    if (mv)
        *mv = p + n;
    return p;
}

/* Value `key` of every train record of a log that has it, in order. */
static int train_values(const char *log, const char *key, double *out, int cap)
{
    FILE *fp = fopen(log, "r");
    assert_non_null(fp);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, fp)) {
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j);
        const char *split = json_string_value(json_object_get(j, "split"));
        json_t *v = json_object_get(j, key);
        if (split && !strcmp(split, "train") && v && n < cap)
            out[n++] = json_number_value(v);
        json_decref(j);
    }
    fclose(fp);
    return n;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *len = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = tu_calloc(*len + 1, 1);
    assert_int_equal(fread(b, 1, *len, fp), *len);
    fclose(fp);
    return b;
}

/* ---- tests ---------------------------------------------------------------------- */
static void test_loss_goes_down(void **state)
{
    fixture *f = *state;
    plstm_train_config c = tiny_config();
    plstm_train_result res;
    TU_OK(train(f, &c, f->dir, 0, 0, &res));
    assert_int_equal(res.step, c.steps);
    assert_true(res.finished);
    double loss[64];
    const int n = train_values(sub(f, "train.jsonl"), "loss", loss, 64);
    assert_int_equal(n, (int)(c.steps / c.log_every));
    /* The first window is near chance; the 64 images get memorized. */
    assert_true(loss[0] > 0.5);
    assert_true(loss[n - 1] < 0.6 * loss[0]);
    assert_true(res.train_acc > 0.75);
    assert_int_equal(res.val.count, 32);
    assert_int_equal(res.test_ext.count, 32);
    assert_true(res.test.acc >= 0 && res.test.acc <= 1);
    assert_int_equal(access(sub(f, "results.json"), R_OK), 0);
    /* Evaluating the saved weights again gives the run's final numbers. */
    float *p = load_params(sub(f, "latest.safetensors"), &c, NULL);
    plstm_classifier *m = tiny_create("tiny", 24);
    plstm_split_result ev;
    TU_OK(plstm_train_evaluate(f->ctx, m, p, &c, PLSTM_APE_TEST_EXT, 32, &ev));
    assert_int_equal(ev.count, 32);
    assert_true(ev.acc == res.test_ext.acc && ev.loss == res.test_ext.loss);
    plstm_classifier_destroy(m);
    free(p);
    assert_int_equal(access(sub(f, "ckpt_00000080.safetensors"), R_OK), 0);
    /* The run does not start again over itself. */
    plstm_train_result r2;
    assert_int_equal(train(f, &c, f->dir, 0, 0, &r2), PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "already holds a run"));
    /* Resuming a finished run does nothing. */
    TU_OK(train(f, &c, f->dir, 1, 0, &r2));
    assert_true(r2.finished);
}

static void test_resume_bit_exact(void **state)
{
    fixture *f = *state;
    plstm_train_config c = tiny_config();
    c.test_count = -1;
    plstm_train_result res;
    const char *a = sub(f, "a"), *b = sub(f, "b");
    make_dir(a), make_dir(b);
    TU_OK(train(f, &c, a, 0, 0, &res));
    /* Stop at 15 (not a checkpoint step, not a log step), resume with worker threads. */
    TU_OK(train(f, &c, b, 0, 15, &res));
    assert_int_equal(res.step, 15);
    assert_false(res.finished);
    c.loader_threads = 3;
    TU_OK(train(f, &c, b, 1, 0, &res));
    assert_int_equal(res.step, c.steps);
    char pa[128], pb[128];
    snprintf(pa, sizeof pa, "%s/latest.safetensors", a);
    snprintf(pb, sizeof pb, "%s/latest.safetensors", b);
    float *ma, *mb;
    float *xa = load_params(pa, &c, &ma), *xb = load_params(pb, &c, &mb);
    plstm_classifier *m = tiny_create("tiny", 24);
    const size_t n = plstm_params_size(m->params);
    plstm_classifier_destroy(m);
    assert_memory_equal(xa, xb, n * sizeof *xa);
    assert_memory_equal(ma, mb, 2 * n * sizeof *ma);
    free(xa), free(xb);
    /* The logs agree too (the partial window at 15 was carried over). */
    char la[128], lb[128];
    snprintf(la, sizeof la, "%s/train.jsonl", a);
    snprintf(lb, sizeof lb, "%s/train.jsonl", b);
    double lossa[16], lossb[16];
    const int na = train_values(la, "loss", lossa, 16), nb = train_values(lb, "loss", lossb, 16);
    assert_int_equal(na, nb);
    assert_memory_equal(lossa, lossb, (size_t)na * sizeof *lossa);
}

static void test_stop_flag(void **state)
{
    fixture *f = *state;
    plstm_train_config c = tiny_config();
    volatile sig_atomic_t stop = 1;
    plstm_classifier *m = tiny_create("tiny", 24);
    plstm_train_options o;
    memset(&o, 0, sizeof o);
    o.out_dir = f->dir, o.stop = &stop, o.no_plot = 1;
    plstm_train_result res;
    TU_OK(plstm_train_run(f->ctx, m, &c, &o, &res));
    plstm_classifier_destroy(m);
    assert_int_equal(res.step, 1);
    assert_int_equal(access(sub(f, "ckpt_00000001.safetensors"), R_OK), 0);
}

/* A run stopped at step 10 whose files must survive bad resumes. */
static void check_untouched(fixture *f, const char *ckpt, const char *log, size_t nc, size_t nl)
{
    size_t n1, n2;
    char *c1 = slurp(sub(f, "ckpt_00000010.safetensors"), &n1);
    char *l1 = slurp(sub(f, "train.jsonl"), &n2);
    assert_int_equal(n1, nc);
    assert_int_equal(n2, nl);
    assert_memory_equal(c1, ckpt, nc);
    assert_memory_equal(l1, log, nl);
    free(c1), free(l1);
    assert_int_equal(access(sub(f, "ckpt_00000011.safetensors"), F_OK), -1);
}

static void test_bad_resume(void **state)
{
    fixture *f = *state;
    plstm_train_config c = tiny_config();
    plstm_train_result res;
    TU_OK(train(f, &c, f->dir, 0, 10, &res));
    size_t nc, nl;
    char *ckpt = slurp(sub(f, "ckpt_00000010.safetensors"), &nc);
    char *log = slurp(sub(f, "train.jsonl"), &nl);

    /* Another configuration. */
    plstm_train_config c2 = c;
    c2.lr = 0.01;
    assert_int_not_equal(train(f, &c2, f->dir, 1, 0, &res), PLSTM_OK);
    assert_non_null(strstr(plstm_last_error(), "lr is 0.02 in the file and 0.01"));
    check_untouched(f, ckpt, log, nc, nl);

    /* Another model. */
    plstm_classifier *m = tiny_create("other", 24);
    plstm_train_options o;
    memset(&o, 0, sizeof o);
    o.out_dir = f->dir, o.resume = 1, o.no_plot = 1;
    assert_int_not_equal(plstm_train_run(f->ctx, m, &c, &o, &res), PLSTM_OK);
    assert_non_null(strstr(plstm_last_error(), "other"));
    plstm_classifier_destroy(m);
    check_untouched(f, ckpt, log, nc, nl);

    /* A corrupt file (latest points at a truncated checkpoint). */
    const char *bad = sub(f, "ckpt_00000010.safetensors");
    FILE *fp = fopen(bad, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(ckpt, 1, nc / 2, fp), nc / 2);
    fclose(fp);
    const plstm_status s = train(f, &c, f->dir, 1, 0, &res);
    assert_true(s == PLSTM_ERR_FORMAT || s == PLSTM_ERR_IO);
    assert_non_null(strstr(plstm_last_error(), "latest.safetensors"));
    size_t n2;
    char *l2 = slurp(sub(f, "train.jsonl"), &n2);
    assert_int_equal(n2, nl);
    assert_memory_equal(l2, log, nl);
    free(l2);
    assert_int_equal(access(sub(f, "ckpt_00000011.safetensors"), F_OK), -1);

    /* Nothing to resume. */
    const char *empty = sub(f, "empty");
    make_dir(empty);
    assert_int_equal(train(f, &c, empty, 1, 0, &res), PLSTM_ERR_IO);
    assert_non_null(strstr(plstm_last_error(), "nothing to resume"));
    free(ckpt), free(log);
}

static void test_config_errors(void **state)
{
    (void)state;
    plstm_train_config c;
    TU_OK(plstm_train_config_preset("ape-paper", &c));
    /* experiments.md §2.4 */
    assert_int_equal(c.steps, 39050);
    assert_int_equal(c.batch_size, 128);
    assert_true(c.lr == 1e-4 && c.warmup_steps == 781 && c.min_lr_ratio == 0.001);
    assert_true(c.weight_decay == 0.05 && c.clip_norm == 1.0);
    assert_true(c.beta1 == 0.9 && c.beta2 == 0.999 && c.adam_eps == 1e-8);
    assert_int_equal(c.train_size, 100000);
    assert_int_equal(c.downsample, 1);
    assert_non_null(strstr(c.model_config, "\"ape\""));
    TU_OK(plstm_train_config_check(&c));
    for (const plstm_train_preset *p = plstm_train_presets(); p->name; p++) {
        plstm_train_config q;
        TU_OK(plstm_train_config_preset(p->name, &q));
        TU_OK(plstm_train_config_check(&q));
        assert_true(strlen(p->description) > 10);
    }

    assert_int_equal(plstm_train_config_preset("ape-papr", &c), PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "ape-papr"));
    assert_non_null(strstr(plstm_last_error(), "ape-quick"));

    TU_OK(plstm_train_config_preset("ape-paper", &c));
    const plstm_train_config before = c;
    assert_int_equal(plstm_train_config_apply_json(&c, "{\"lr\": 1e-3, \"stepz\": 5}", "x.json"),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "stepz"));
    assert_memory_equal(&c, &before, sizeof c); /* all or nothing */
    assert_int_equal(plstm_train_config_apply_override(&c, "batch_size=0"),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "batch_size"));
    assert_int_equal(plstm_train_config_apply_override(&c, "lr=fast"), PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "lr"));
    assert_int_equal(plstm_train_config_apply_override(&c, "norm=sphere"),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_int_equal(plstm_train_config_apply_override(&c, "steps"), PLSTM_ERR_INVALID_ARGUMENT);
    assert_int_equal(plstm_train_config_apply_json(&c, "{\"lr\": ", "x"),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_int_equal(plstm_train_config_apply_json(&c, "{\"model_config\": 3}", "x"),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_memory_equal(&c, &before, sizeof c);

    TU_OK(plstm_train_config_apply_override(&c, "model=vit"));
    assert_string_equal(c.model, "vit");
    TU_OK(plstm_train_config_apply_override(&c, "model_config.dim=64"));
    TU_OK(plstm_train_config_apply_json(&c, "{\"model_config\": {\"num_blocks\": 1}}", "f"));
    TU_OK(plstm_train_config_apply_override(&c, "lr=3e-4"));
    assert_true(c.lr == 3e-4);
    char *mj = NULL;
    TU_OK(plstm_train_model_json(&c, &mj));
    json_t *o = json_loads(mj, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(o, "dim")), 64);
    assert_int_equal(json_integer_value(json_object_get(o, "num_blocks")), 1);
    assert_string_equal(json_string_value(json_object_get(o, "preset")), "ape"); /* merged */
    assert_int_equal(json_integer_value(json_array_get(json_object_get(o, "image_size"), 0)),
                     192);
    json_decref(o);
    free(mj);

    /* JSON round trip. */
    char *js = NULL;
    TU_OK(plstm_train_config_to_json(&c, 0, &js));
    plstm_train_config d;
    plstm_train_config_default(&d);
    strcpy(d.model_config, "{}");
    TU_OK(plstm_train_config_apply_json(&d, js, "round trip"));
    assert_memory_equal(&c, &d, sizeof c);
    free(js);

    c.warmup_steps = c.steps;
    assert_int_equal(plstm_train_config_check(&c), PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "warmup_steps"));
    c = before;
    c.downsample = 5;
    assert_int_equal(plstm_train_config_check(&c), PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "downsample"));

    plstm_classifier *m = NULL;
    assert_int_equal(plstm_model_create("resnet", "{}", &m), PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "resnet"));
    assert_null(m);
}

/* Batches 0..nb-1 of a loader, concatenated. */
static float *draw(const plstm_loader_config *lc, int64_t start, int nb, int32_t *labels)
{
    plstm_loader *ld = NULL;
    TU_OK(plstm_loader_create(&ld, lc, start));
    const int side = plstm_loader_side(ld);
    const size_t per = (size_t)lc->batch * side * side * 3;
    float *out = tu_calloc(per * nb, sizeof *out);
    for (int k = 0; k < nb; k++) {
        const float *px;
        const int32_t *lab;
        int n;
        TU_OK(plstm_loader_next(ld, &px, &lab, &n));
        assert_int_equal(n, lc->batch);
        memcpy(out + per * k, px, per * sizeof *px);
        memcpy(labels + (size_t)lc->batch * k, lab, (size_t)n * sizeof *lab);
    }
    plstm_loader_destroy(ld);
    return out;
}

static void test_loader_threads(void **state)
{
    (void)state;
    plstm_loader_config lc;
    memset(&lc, 0, sizeof lc);
    TU_OK(plstm_ape_init(&lc.ds, 43, 192));
    lc.count = 20, lc.batch = 6, lc.downsample = 4, lc.norm = PLSTM_APE_NORM_UNIT;
    lc.repeat = 1, lc.shuffle = 1, lc.shuffle_seed = 99, lc.prefetch = 3;
    enum { NB = 8 }; /* 3 batches per epoch: crosses two epoch boundaries */
    const size_t per = 6 * 48 * 48 * 3;
    int32_t l0[6 * NB], l1[6 * NB], l3[6 * NB];
    float *b0 = draw(&lc, 0, NB, l0);
    lc.threads = 1;
    float *b1 = draw(&lc, 0, NB, l1);
    lc.threads = 3;
    float *b3 = draw(&lc, 0, NB, l3);
    assert_memory_equal(b0, b1, per * NB * sizeof *b0);
    assert_memory_equal(b0, b3, per * NB * sizeof *b0);
    assert_memory_equal(l0, l3, sizeof l0);
    /* Starting at batch 5 gives batches 5.. of the stream. */
    float *b5 = draw(&lc, 5, 3, l3);
    assert_memory_equal(b5, b0 + per * 5, per * 3 * sizeof *b0);
    /* Epochs are permutations: the 18 images of an epoch are distinct samples, and
     * epochs differ in order. Images are compared via their labels+pixel sums. */
    assert_memory_not_equal(b0, b0 + per * 3, per * sizeof *b0);
    /* Each image is the 4x4 average of the rendered sample. */
    uint8_t *u8 = tu_calloc(192 * 192, 1);
    int found = 0;
    for (uint64_t idx = 0; idx < 20 && !found; idx++) {
        plstm_ape_sample s;
        TU_OK(plstm_ape_render_u8(&lc.ds, idx, u8, &s));
        int same = 1;
        for (int y = 0; y < 48 && same; y++)
            for (int x = 0; x < 48 && same; x++) {
                int sum = 0;
                for (int dy = 0; dy < 4; dy++)
                    for (int dx = 0; dx < 4; dx++)
                        sum += u8[(y * 4 + dy) * 192 + x * 4 + dx];
                const float v = (float)sum / (255.0f * 16);
                for (int ch = 0; ch < 3; ch++)
                    same &= fabsf(b0[(y * 48 + x) * 3 + ch] - v) < 1e-6f;
            }
        found = same && s.label == l0[0];
    }
    assert_true(found);
    free(u8), free(b0), free(b1), free(b3), free(b5);

    /* One pass: partial last batch, then the end. */
    lc.repeat = 0, lc.shuffle = 0, lc.threads = 2, lc.batch = 8;
    plstm_loader *ld = NULL;
    TU_OK(plstm_loader_create(&ld, &lc, 0));
    const int expect[4] = {8, 8, 4, 0};
    for (int k = 0; k < 4; k++) {
        const float *px;
        const int32_t *lab;
        int n = -1;
        TU_OK(plstm_loader_next(ld, &px, &lab, &n));
        assert_int_equal(n, expect[k]);
    }
    plstm_loader_destroy(ld);
    lc.downsample = 5;
    assert_int_equal(plstm_loader_create(&ld, &lc, 0), PLSTM_ERR_INVALID_ARGUMENT);
}

/* The diagnostic targets relabel the same images (unshuffled, so batch
 * position = sample index), at the native and a downsampled size. */
static void test_loader_targets(void **state)
{
    (void)state;
    plstm_loader_config lc;
    memset(&lc, 0, sizeof lc);
    TU_OK(plstm_ape_init(&lc.ds, 43, 192));
    lc.count = 64, lc.batch = 64, lc.norm = PLSTM_APE_NORM_UNIT, lc.prefetch = 1;
    for (int d = 1; d <= 2; d++) {
        lc.downsample = d;
        int32_t lab[3][64];
        float *px[3];
        for (int t = 0; t < 3; t++) {
            lc.target = (plstm_ape_target)t;
            px[t] = draw(&lc, 0, 1, lab[t]);
        }
        const size_t per = (size_t)64 * (192 / d) * (192 / d) * 3;
        assert_memory_equal(px[0], px[1], per * sizeof *px[0]); /* same images */
        assert_memory_equal(px[0], px[2], per * sizeof *px[0]);
        int ones[3] = {0, 0, 0}, differ = 0;
        for (int i = 0; i < 64; i++) {
            plstm_ape_sample s;
            TU_OK(plstm_ape_sample_params(&lc.ds, (uint64_t)i, &s));
            assert_int_equal(lab[0][i], s.label);
            assert_int_equal(lab[1][i], s.circle_x > 96.0);
            assert_int_equal(lab[2][i], cos(s.phi) > 0);
            for (int t = 0; t < 3; t++)
                ones[t] += lab[t][i];
            differ += lab[1][i] != lab[0][i];
        }
        for (int t = 0; t < 3; t++) /* both classes occur */
            assert_true(ones[t] > 8 && ones[t] < 56);
        assert_true(differ > 8);
        for (int t = 0; t < 3; t++)
            free(px[t]);
    }
    /* the configuration key */
    plstm_train_config c;
    plstm_train_config_default(&c);
    TU_OK(plstm_train_config_apply_override(&c, "target=arrow_right"));
    assert_int_equal(c.target, PLSTM_APE_TARGET_ARROW_RIGHT);
    assert_int_equal(plstm_train_config_apply_override(&c, "target=left"),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "circle_right"));
}

/* aux_geometry: the loader hands out each sample's geometry, the extra
 * outputs learn it (the MSE falls), evaluation reads only the 2 class
 * logits, resume stays bit-exact, and a model without the extra outputs is a
 * clear error. */
static void test_aux_geometry(void **state)
{
    fixture *f = *state;
    /* the loader's geometry is plstm_ape_geometry of the sample, for any thread count */
    plstm_loader_config lc;
    memset(&lc, 0, sizeof lc);
    TU_OK(plstm_ape_init(&lc.ds, 43, 192));
    lc.count = 24, lc.batch = 8, lc.norm = PLSTM_APE_NORM_UNIT, lc.prefetch = 2;
    lc.geometry = 1;
    for (int v = 0; v < 3; v++) {
        lc.downsample = v == 1 ? 1 : 4, lc.threads = v == 2 ? 2 : 0;
        plstm_loader *ld = NULL;
        TU_OK(plstm_loader_create(&ld, &lc, 0));
        assert_null(plstm_loader_geometry(ld));
        for (int k = 0; k < 3; k++) {
            const float *px, *geo;
            const int32_t *lab;
            int n = 0;
            TU_OK(plstm_loader_next(ld, &px, &lab, &n));
            assert_int_equal(n, 8);
            assert_non_null(geo = plstm_loader_geometry(ld));
            for (int b = 0; b < n; b++) {
                plstm_ape_sample s;
                float want[PLSTM_APE_GEOMETRY_DIM];
                TU_OK(plstm_ape_sample_params(&lc.ds, (uint64_t)(k * 8 + b), &s));
                plstm_ape_geometry(&lc.ds, &s, want);
                const float *g = geo + (size_t)b * PLSTM_APE_GEOMETRY_DIM;
                assert_memory_equal(g, want, sizeof want);
                assert_true(fabs(g[0] - (s.arrow_x / 96.0 - 1)) < 1e-6);
                assert_true(fabs(g[5] * g[5] + g[6] * g[6] - 1) < 1e-5);
                for (int j = 0; j < PLSTM_APE_GEOMETRY_DIM; j++)
                    assert_true(fabsf(g[j]) <= 1.0f);
            }
        }
        plstm_loader_destroy(ld);
    }
    lc.geometry = 0;
    plstm_loader *ld = NULL;
    TU_OK(plstm_loader_create(&ld, &lc, 0));
    const float *px;
    const int32_t *lab;
    int n = 0;
    TU_OK(plstm_loader_next(ld, &px, &lab, &n));
    assert_null(plstm_loader_geometry(ld));
    plstm_loader_destroy(ld);

    /* the model config gets the extra outputs */
    plstm_train_config c = tiny_config();
    char *js = NULL;
    TU_OK(plstm_train_model_json(&c, &js));
    assert_non_null(strstr(js, "\"num_classes\":2"));
    free(js);
    c.aux_geometry = 1;
    TU_OK(plstm_train_model_json(&c, &js));
    assert_non_null(strstr(js, "\"num_classes\":9"));
    free(js);

    /* a run: the geometry error falls; evaluation uses the class logits */
    c.steps = 60, c.log_every = 10, c.lr = 0.01, c.test_count = -1;
    const char *a = sub(f, "a"), *b = sub(f, "b");
    make_dir(a), make_dir(b);
    plstm_train_result res;
    TU_OK(train(f, &c, a, 0, 0, &res));
    char la[128];
    snprintf(la, sizeof la, "%s/train.jsonl", a);
    double aux[16];
    const int na = train_values(la, "aux_loss", aux, 16);
    assert_int_equal(na, 6);
    assert_true(aux[0] > 0 && aux[na - 1] < 0.8 * aux[0]);
    assert_int_equal(res.val.count, 32);
    assert_true(res.val.acc >= 0 && res.val.acc <= 1 && res.val.loss > 0);
    /* stopped at 15 and resumed: the same weights and logged aux losses */
    TU_OK(train(f, &c, b, 0, 15, &res));
    TU_OK(train(f, &c, b, 1, 0, &res));
    char pa[128], pb[128], lb[128];
    snprintf(pa, sizeof pa, "%s/latest.safetensors", a);
    snprintf(pb, sizeof pb, "%s/latest.safetensors", b);
    snprintf(lb, sizeof lb, "%s/train.jsonl", b);
    float *xa = load_params(pa, &c, NULL), *xb = load_params(pb, &c, NULL);
    assert_memory_equal(xa, xb, (size_t)(9 * NF + 9) * sizeof *xa);
    free(xa), free(xb);
    double auxb[16];
    assert_int_equal(train_values(lb, "aux_loss", auxb, 16), na);
    for (int i = 0; i < na; i++)
        assert_true(aux[i] == auxb[i]);

    /* a model with only the class logits */
    plstm_classifier *m = tiny_create("tiny", 24);
    plstm_train_options o;
    memset(&o, 0, sizeof o);
    o.out_dir = sub(f, "c"), o.no_plot = 1;
    make_dir(o.out_dir);
    assert_int_equal(plstm_train_run(f->ctx, m, &c, &o, &res), PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "aux_geometry needs a model with 9 outputs"));
    plstm_classifier_destroy(m);
    /* the key */
    TU_OK(plstm_train_config_apply_override(&c, "aux_geometry=0.5"));
    assert_true(c.aux_geometry == 0.5);
    assert_int_equal(plstm_train_config_apply_override(&c, "aux_geometry=-1"),
                     PLSTM_ERR_INVALID_ARGUMENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_loss_goes_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_bit_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_resume, setup, teardown),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_loader_threads), cmocka_unit_test(test_loader_targets),
        cmocka_unit_test_setup_teardown(test_aux_geometry, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
