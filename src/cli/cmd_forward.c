/* plstm forward: run the vision model on a batch of images from a safetensors
 * file and write the logits (and pooled features). */
#include "cli/commands.h"
#include "cli/verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: plstm forward (--config C | --preset P) (--weights W | --seed S)\n"
            "                     --input X.safetensors --output Y.safetensors [options]\n\n"
            "Runs the pLSTM vision model on the images of X and writes Y with the tensors\n"
            "'logits' [B, classes] and, with --features, 'features' [B, Dp] (the pooled\n"
            "features before the head). The images are the float tensor 'pixels' (else\n"
            "'input.pixels', else the only tensor of X), shaped [B, H, W, C], channels last,\n"
            "already normalized. H and W may differ from the training resolution; the\n"
            "position embedding is then resized bicubically.\n\n"
            "model:\n"
            "  --config C       JSON config: a file, or inline text starting with '{';\n"
            "                   may name a \"preset\" and override any field\n"
            "  --preset P       a named preset:");
    const char *const *names = plstm_vision_preset_names();
    for (int i = 0; names[i]; i++)
        fprintf(f, "%s%s", i % 4 ? ", " : (i ? ",\n                     " : " "), names[i]);
    fprintf(f,
            "\n"
            "                   --preset and --config together: the config overrides the preset\n"
            "                   Neither: the config stored in W (a plstm checkpoint's 'config', or\n"
            "                   a reference test vector's config_json)\n"
            "  --weights W      parameters from W, named '<key>', 'param.<key>' or\n"
            "                   'params/<key>' (checkpoints); every parameter is required\n"
            "  --seed S         instead of --weights: the model's random initialization\n"
            "options:\n"
            "  --input-name N   name of the image tensor in X\n"
            "  --features       also write 'features'\n"
            "  --batch N        images per forward call (default 32)\n"
            "  --dtype D        f32 | f64 compute precision (default f32)\n"
            "  --threads N      CPU threads (default: OpenMP's)\n");
}

typedef struct fwd_args {
    const char *config, *preset, *weights, *input, *output, *input_name;
    int features, batch, threads, have_seed;
    unsigned long long seed;
    plstm_dtype dtype;
} fwd_args;

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || end == s || v < lo || v > hi)
        return 0;
    *out = (int)v;
    return 1;
}

static int parse_args(int argc, char **argv, fwd_args *a)
{
    memset(a, 0, sizeof *a);
    a->batch = 32;
    a->dtype = PLSTM_F32;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(o, "--features")) {
            a->features = 1;
            continue;
        }
        if (!v || o[0] != '-') {
            fprintf(stderr, "plstm forward: unknown or incomplete argument '%s'\n\n", o);
            usage(stderr);
            return -1;
        }
        i++;
        if (!strcmp(o, "--config")) a->config = v;
        else if (!strcmp(o, "--preset")) a->preset = v;
        else if (!strcmp(o, "--weights")) a->weights = v;
        else if (!strcmp(o, "--input")) a->input = v;
        else if (!strcmp(o, "--output")) a->output = v;
        else if (!strcmp(o, "--input-name")) a->input_name = v;
        else if (!strcmp(o, "--seed")) {
            char *end;
            a->seed = strtoull(v, &end, 10);
            if (*end || end == v) {
                fprintf(stderr, "plstm forward: bad --seed '%s'\n", v);
                return -1;
            }
            a->have_seed = 1;
        } else if (!strcmp(o, "--batch")) {
            if (!parse_int(v, 1, 1 << 20, &a->batch)) {
                fprintf(stderr, "plstm forward: bad --batch '%s'\n", v);
                return -1;
            }
        } else if (!strcmp(o, "--threads")) {
            if (!parse_int(v, 1, 4096, &a->threads)) {
                fprintf(stderr, "plstm forward: bad --threads '%s'\n", v);
                return -1;
            }
        } else if (!strcmp(o, "--dtype")) {
            if (!strcmp(v, "f32")) a->dtype = PLSTM_F32;
            else if (!strcmp(v, "f64")) a->dtype = PLSTM_F64;
            else {
                fprintf(stderr, "plstm forward: bad --dtype '%s'\n", v);
                return -1;
            }
        } else {
            fprintf(stderr, "plstm forward: unknown option '%s'\n\n", o);
            usage(stderr);
            return -1;
        }
    }
    if (!a->input || !a->output || (!a->weights == !a->have_seed)) {
        fprintf(stderr, "plstm forward: --input, --output and one of --weights / --seed are "
                        "required\n\n");
        usage(stderr);
        return -1;
    }
    return 1;
}

/* The model configuration from --preset / --config, else from the weights file. */
static int make_config(const fwd_args *a, const plstm_safetensors *wst, plstm_vision_config *c)
{
    plstm_status s = PLSTM_OK;
    *c = plstm_vision_config_default();
    if (a->preset)
        s = plstm_vision_preset(a->preset, c);
    if (s == PLSTM_OK && a->config) {
        const plstm_vision_config base = *c;
        s = a->config[0] == '{' ? plstm_vision_config_from_json(a->config, &base, c)
                                : plstm_vision_config_load(a->config, &base, c);
    }
    if (s == PLSTM_OK && !a->preset && !a->config) {
        const char *ck = wst ? plstm_safetensors_metadata(wst, "config") : NULL;
        if (ck)
            s = plstm_vision_config_from_json(ck, NULL, c);
        else if (wst && plstm_safetensors_metadata(wst, "config_json"))
            s = verify_vision_config(wst, c);
        else {
            fprintf(stderr, "plstm forward: give --config or --preset (the weights file has no "
                            "model config)\n");
            return 0;
        }
    }
    if (s != PLSTM_OK) {
        cli_report_error("model config", s);
        return 0;
    }
    return 1;
}

static const char *weights_prefix(const plstm_safetensors *st)
{
    static const char *const prefixes[] = {"", "param.", "params/"};
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "%spatch_embed.proj.weight", prefixes[i]);
        if (plstm_safetensors_find(st, name))
            return prefixes[i];
    }
    return "";
}

static const plstm_safetensors_tensor *find_images(const plstm_safetensors *st, const char *name)
{
    if (name)
        return plstm_safetensors_find(st, name);
    const plstm_safetensors_tensor *t = plstm_safetensors_find(st, "pixels");
    if (!t)
        t = plstm_safetensors_find(st, "input.pixels");
    if (!t && plstm_safetensors_count(st) == 1)
        t = plstm_safetensors_at(st, 0);
    return t;
}

typedef struct fwd_state {
    plstm_context *ctx;
    plstm_safetensors *wst, *xst;
    plstm_vision_model *m;
    plstm_vision_workspace *ws;
    void *params, *images, *logits, *features;
    char *config_json;
} fwd_state;

static void state_free(fwd_state *s)
{
    plstm_vision_workspace_destroy(s->ws);
    plstm_vision_model_destroy(s->m);
    plstm_safetensors_close(s->wst);
    plstm_safetensors_close(s->xst);
    plstm_context_destroy(s->ctx);
    free(s->params);
    free(s->images);
    free(s->logits);
    free(s->features);
    free(s->config_json);
}

static int run(const fwd_args *a, fwd_state *s)
{
    plstm_status st;
    if (a->weights && (st = plstm_safetensors_open(&s->wst, a->weights)) != PLSTM_OK)
        return cli_report_error(a->weights, st);
    plstm_vision_config cfg;
    if (!make_config(a, s->wst, &cfg))
        return 1;
    if ((st = plstm_vision_model_create(&s->m, &cfg)) != PLSTM_OK)
        return cli_report_error("model", st);
    const plstm_params *lay = plstm_vision_model_params(s->m);
    const plstm_dtype dt = a->dtype;
    const size_t esz = plstm_dtype_size(dt);
    s->params = calloc(plstm_params_size(lay) + 1, esz);
    if (!s->params)
        return cli_report_error("parameters", PLSTM_ERR_OUT_OF_MEMORY);
    st = s->wst ? plstm_params_load(lay, s->params, dt, s->wst, weights_prefix(s->wst), 0)
                : plstm_vision_model_init(s->m, s->params, dt, a->seed);
    if (st == PLSTM_OK && s->wst) /* every parameter must be there: check by name */
        for (size_t i = 0; i < plstm_params_count(lay) && st == PLSTM_OK; i++) {
            char name[PLSTM_PARAM_NAME_MAX + 16];
            snprintf(name, sizeof name, "%s%s", weights_prefix(s->wst),
                     plstm_params_at(lay, i)->name);
            if (!plstm_safetensors_find(s->wst, name)) {
                fprintf(stderr, "plstm forward: %s: missing parameter '%s'\n", a->weights, name);
                return 1;
            }
        }
    if (st != PLSTM_OK)
        return cli_report_error(a->weights ? a->weights : "init", st);

    if ((st = plstm_safetensors_open(&s->xst, a->input)) != PLSTM_OK)
        return cli_report_error(a->input, st);
    const plstm_safetensors_tensor *t = find_images(s->xst, a->input_name);
    if (!t) {
        fprintf(stderr, "plstm forward: %s: no image tensor '%s'\n", a->input,
                a->input_name ? a->input_name : "pixels");
        return 1;
    }
    if (t->rank != 4 || t->shape[3] != cfg.num_channels || t->shape[0] < 1) {
        fprintf(stderr, "plstm forward: %s: tensor '%s' must be [B, H, W, %d]\n", a->input,
                t->name, cfg.num_channels);
        return 1;
    }
    if (t->shape[0] > (1 << 24) || t->shape[1] > (1 << 20) || t->shape[2] > (1 << 20)) {
        fprintf(stderr, "plstm forward: %s: tensor '%s' is too large\n", a->input, t->name);
        return 1;
    }
    const int B = (int)t->shape[0], H = (int)t->shape[1], W = (int)t->shape[2];
    int X, Y;
    if ((st = plstm_vision_model_grid(s->m, H, W, &X, &Y)) != PLSTM_OK)
        return cli_report_error(a->input, st);
    const size_t per_image = (size_t)H * W * cfg.num_channels;
    const int Dp = plstm_vision_model_feature_dim(s->m), K = cfg.num_classes;
    s->images = malloc((size_t)B * per_image * esz);
    s->logits = malloc((size_t)B * K * esz);
    s->features = malloc((size_t)B * Dp * esz);
    if (!s->images || !s->logits || !s->features)
        return cli_report_error("buffers", PLSTM_ERR_OUT_OF_MEMORY);
    st = dt == PLSTM_F32 ? plstm_safetensors_read_f32(s->xst, t->name, s->images, B * per_image)
                         : plstm_safetensors_read_f64(s->xst, t->name, s->images, B * per_image);
    if (st != PLSTM_OK)
        return cli_report_error(a->input, st);

    if ((st = plstm_context_create(&s->ctx, PLSTM_BACKEND_CPU, 0)) != PLSTM_OK ||
        (a->threads && (st = plstm_context_set_threads(s->ctx, a->threads)) != PLSTM_OK))
        return cli_report_error("context", st);
    const int chunk = B < a->batch ? B : a->batch;
    if ((st = plstm_vision_workspace_create(&s->ws, s->m, dt, chunk, H, W, 0)) != PLSTM_OK)
        return cli_report_error("workspace", st);
    for (int b0 = 0; b0 < B; b0 += chunk) {
        const int nb = B - b0 < chunk ? B - b0 : chunk;
        st = plstm_vision_forward(s->ctx, s->m, s->ws, s->params, nb,
                                  (char *)s->images + (size_t)b0 * per_image * esz,
                                  (char *)s->logits + (size_t)b0 * K * esz,
                                  (char *)s->features + (size_t)b0 * Dp * esz);
        if (st != PLSTM_OK)
            return cli_report_error("forward", st);
    }

    plstm_safetensors_writer *w = NULL;
    const int64_t ls[2] = {B, K}, fs[2] = {B, Dp};
    char sizes[64];
    snprintf(sizes, sizeof sizes, "[%d, %d]", H, W);
    if ((st = plstm_safetensors_writer_create(&w)) == PLSTM_OK &&
        (st = plstm_vision_config_to_json(&cfg, &s->config_json)) == PLSTM_OK &&
        (st = plstm_safetensors_writer_add_metadata(w, "config", s->config_json)) == PLSTM_OK &&
        (st = plstm_safetensors_writer_add_metadata(w, "resolution", sizes)) == PLSTM_OK &&
        (st = plstm_safetensors_writer_add_tensor(w, "logits", dt, 2, ls, s->logits)) ==
            PLSTM_OK &&
        (!a->features ||
         (st = plstm_safetensors_writer_add_tensor(w, "features", dt, 2, fs, s->features)) ==
             PLSTM_OK))
        st = plstm_safetensors_writer_write(w, a->output);
    plstm_safetensors_writer_destroy(w);
    if (st != PLSTM_OK)
        return cli_report_error(a->output, st);
    printf("%s: %d images %dx%d -> logits [%d, %d]%s\n", a->output, B, H, W, B, K,
           a->features ? " + features" : "");
    return 0;
}

int cmd_forward(int argc, char **argv)
{
    fwd_args a;
    const int p = parse_args(argc, argv, &a);
    if (p <= 0)
        return p == 0 ? 0 : 2;
    fwd_state s;
    memset(&s, 0, sizeof s);
    const int rc = run(&a, &s);
    state_free(&s);
    return rc;
}
