/* plstm eval: accuracy and loss of a training checkpoint on an APE split. */
#include "cli/commands.h"
#include "plstm/plstm.h"
#include "plstm/trainer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: plstm eval --checkpoint CK [--split NAME] [--count N] [key=value ...]\n\n"
               "Evaluates a checkpoint written by `plstm train` on an APE split: train, val,\n"
               "val_ext, test or test_ext (default test_ext: the 2x resolution). The model and\n"
               "data settings come from the checkpoint; overrides may set eval_batch, threads\n"
               "and loader_threads. --count N: the first N samples (default: the whole split).\n");
}

int cmd_eval(int argc, char **argv)
{
    const char *ck = NULL, *split_name = "test_ext";
    long long count = 0;
    const char **overrides = calloc((size_t)argc, sizeof *overrides);
    int num_overrides = 0;
    if (!overrides)
        return 1;
    int bad = 0;
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            free(overrides);
            return 0;
        } else if (a[0] != '-' && strchr(a, '=')) {
            if (strncmp(a, "eval_batch=", 11) && strncmp(a, "threads=", 8) &&
                strncmp(a, "loader_threads=", 15)) {
                fprintf(stderr, "plstm eval: only eval_batch, threads and loader_threads can be "
                                "overridden, not '%s'\n", a);
                bad = 1;
            }
            overrides[num_overrides++] = a;
        } else if (val && !strcmp(a, "--checkpoint")) {
            ck = argv[++i];
        } else if (val && !strcmp(a, "--split")) {
            split_name = argv[++i];
        } else if (val && !strcmp(a, "--count")) {
            char *end;
            count = strtoll(argv[++i], &end, 10);
            bad = *end || count < 0;
            if (bad)
                fprintf(stderr, "plstm eval: --count expects an integer >= 0\n");
        } else {
            fprintf(stderr, "plstm eval: unknown option or missing value: '%s'\n\n", a);
            usage(stderr);
            bad = 1;
        }
    }
    if (!bad && !ck) {
        fprintf(stderr, "plstm eval: --checkpoint is required\n\n");
        usage(stderr);
        bad = 1;
    }
    plstm_ape_split split;
    plstm_status s;
    if (!bad && (s = plstm_ape_split_parse(split_name, &split)) != PLSTM_OK) {
        free(overrides);
        return cli_report_error("--split", s);
    }
    if (bad) {
        free(overrides);
        return 2;
    }
    char *model_name = NULL, *config = NULL;
    int64_t step = 0;
    if ((s = plstm_checkpoint_info(ck, &model_name, &config, &step)) != PLSTM_OK) {
        free(overrides);
        return cli_report_error("checkpoint", s);
    }
    plstm_train_config cfg;
    plstm_train_config_default(&cfg);
    strcpy(cfg.model_config, "{}"); /* the checkpoint's object exactly, not merged */
    s = plstm_train_config_apply_json(&cfg, config, ck);
    for (int i = 0; s == PLSTM_OK && i < num_overrides; i++)
        s = plstm_train_config_apply_override(&cfg, overrides[i]);
    free(overrides);
    free(config);
    plstm_context *ctx = NULL;
    plstm_classifier *model = NULL;
    char *model_json = NULL;
    float *params = NULL;
    if (s == PLSTM_OK)
        s = plstm_context_create(&ctx, PLSTM_BACKEND_CPU, 0);
    if (s == PLSTM_OK && cfg.threads > 0)
        s = plstm_context_set_threads(ctx, cfg.threads);
    if (s == PLSTM_OK)
        s = plstm_train_model_json(&cfg, &model_json);
    if (s == PLSTM_OK)
        s = plstm_model_create(cfg.model, model_json, &model);
    if (s == PLSTM_OK) {
        params = calloc(plstm_params_size(model->params), sizeof *params);
        plstm_rng rng;
        plstm_checkpoint c = {model_name, NULL, params, NULL, NULL, 0, 0, &rng, 1, NULL};
        s = params ? plstm_checkpoint_load(ck, model->params, &c, NULL) : PLSTM_ERR_OUT_OF_MEMORY;
    }
    plstm_split_result res;
    if (s == PLSTM_OK)
        s = plstm_train_evaluate(ctx, model, params, &cfg, split, count, &res);
    int side = 0;
    if (s == PLSTM_OK)
        s = plstm_train_split_resolution(&cfg, split, &side);
    free(params);
    free(model_json);
    plstm_classifier_destroy(model);
    plstm_context_destroy(ctx);
    if (s != PLSTM_OK) {
        free(model_name);
        return cli_report_error("eval", s);
    }
    printf("%s step %lld, %s at %d px: accuracy %.4f  loss %.4f  (%lld images)\n", model_name,
           (long long)step, split_name, side, res.acc, res.loss, (long long)res.count);
    free(model_name);
    return 0;
}
