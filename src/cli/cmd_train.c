/* plstm train: trains a classifier on APE per a preset, a JSON file and
 * key=value overrides; log, checkpoints, resume, results and curves in --out. */
#include "cli/commands.h"
#include "plstm/plstm.h"
#include "plstm/trainer.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_sigint(int sig)
{
    (void)sig;
    stop_requested = 1;
    static const char msg[] = "\nplstm train: stopping after this step (Ctrl-C again to kill)\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: plstm train --preset NAME [--config FILE.json] [key=value ...] [--out DIR]\n"
            "                   [--resume] [--print-config] [--stop-after STEP]\n\n"
            "Trains on Arrow Pointing Extrapolation. The configuration is the preset, then the\n"
            "JSON file, then the key=value overrides (value: JSON or a bare string; e.g.\n"
            "steps=1000 lr=3e-4 model_config.dim=96). `plstm presets` lists the presets and\n"
            "`--print-config` shows every key. Unknown keys are errors.\n\n"
            "  --out DIR        output folder (default runs/<preset>); gets train.jsonl,\n"
            "                   ckpt_<step>.safetensors, latest.safetensors, results.json,\n"
            "                   curves.png\n"
            "  --resume         continue the run in DIR from latest.safetensors (bit-exact)\n"
            "  --print-config   print the resolved configuration as JSON and exit\n"
            "  --stop-after S   stop (with a checkpoint) once S steps are done\n\n"
            "Ctrl-C finishes the current step, writes a checkpoint and exits (status 130).\n");
}

/* mkdir -p */
static int make_dirs(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -1;
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0777) && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(buf, 0777) && errno != EEXIST ? -1 : 0;
}

int cmd_train(int argc, char **argv)
{
    /* Graph presets (tu-*) train the graph model under the TU protocol. */
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--preset") && !strncmp(argv[i + 1], "tu-", 3))
            return cmd_tu(argc, argv);
    const char *preset = NULL, *file = NULL, *out = NULL;
    int resume = 0, print_config = 0;
    long long stop_after = 0;
    const char **overrides = calloc((size_t)argc, sizeof *overrides);
    int num_overrides = 0;
    if (!overrides)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            free(overrides);
            return 0;
        } else if (!strcmp(a, "--resume")) {
            resume = 1;
        } else if (!strcmp(a, "--print-config")) {
            print_config = 1;
        } else if (a[0] != '-' && strchr(a, '=')) {
            overrides[num_overrides++] = a;
        } else if (val && (!strcmp(a, "--preset") || !strcmp(a, "--config") ||
                           !strcmp(a, "--out") || !strcmp(a, "--stop-after"))) {
            i++;
            if (!strcmp(a, "--preset"))
                preset = val;
            else if (!strcmp(a, "--config"))
                file = val;
            else if (!strcmp(a, "--out"))
                out = val;
            else {
                char *end;
                stop_after = strtoll(val, &end, 10);
                if (*end || stop_after < 1) {
                    fprintf(stderr, "plstm train: --stop-after expects a step >= 1\n");
                    free(overrides);
                    return 2;
                }
            }
        } else {
            fprintf(stderr, "plstm train: unknown option or missing value: '%s'\n\n", a);
            usage(stderr);
            free(overrides);
            return 2;
        }
    }
    if (!preset) {
        fprintf(stderr, "plstm train: --preset is required (see `plstm presets`)\n\n");
        usage(stderr);
        free(overrides);
        return 2;
    }
    plstm_train_config cfg;
    plstm_status s = plstm_train_config_preset(preset, &cfg);
    if (s == PLSTM_OK && file)
        s = plstm_train_config_apply_file(&cfg, file);
    for (int i = 0; s == PLSTM_OK && i < num_overrides; i++)
        s = plstm_train_config_apply_override(&cfg, overrides[i]);
    free(overrides);
    if (s == PLSTM_OK)
        s = plstm_train_config_check(&cfg);
    if (s != PLSTM_OK)
        return cli_report_error("configuration", s);
    if (print_config) {
        char *js = NULL;
        if ((s = plstm_train_config_to_json(&cfg, 0, &js)) != PLSTM_OK)
            return cli_report_error("configuration", s);
        printf("%s\n", js);
        free(js);
        return 0;
    }
    char out_buf[4096];
    if (!out) {
        snprintf(out_buf, sizeof out_buf, "runs/%s", preset);
        out = out_buf;
    }
    if (make_dirs(out)) {
        fprintf(stderr, "plstm train: cannot create %s: %s\n", out, strerror(errno));
        return 1;
    }

    plstm_context *ctx = NULL;
    plstm_classifier *model = NULL;
    char *model_json = NULL;
    if ((s = plstm_context_create(&ctx, PLSTM_BACKEND_CPU, 0)) != PLSTM_OK)
        return cli_report_error("context", s);
    if (cfg.threads > 0)
        s = plstm_context_set_threads(ctx, cfg.threads);
    if (s == PLSTM_OK)
        s = plstm_train_model_json(&cfg, &model_json);
    if (s == PLSTM_OK)
        s = plstm_model_create(cfg.model, model_json, &model);
    if (s != PLSTM_OK) {
        free(model_json);
        plstm_context_destroy(ctx);
        return cli_report_error("model", s);
    }
    fprintf(stderr, "plstm train: %s %s, %zu parameters, %s -> %s\n", preset, cfg.model,
            plstm_params_numel(model->params), resume ? "resuming" : "starting", out);
    free(model_json);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C kills */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    plstm_train_options opt;
    memset(&opt, 0, sizeof opt);
    opt.out_dir = out, opt.resume = resume, opt.progress = stderr, opt.progress_tty = -1;
    opt.stop = &stop_requested, opt.stop_after = stop_after;
    plstm_train_result res;
    s = plstm_train_run(ctx, model, &cfg, &opt, &res);
    plstm_classifier_destroy(model);
    plstm_context_destroy(ctx);
    if (s != PLSTM_OK)
        return cli_report_error("train", s);
    int r1 = 0, r2 = 0;
    plstm_train_split_resolution(&cfg, PLSTM_APE_TEST, &r1);
    plstm_train_split_resolution(&cfg, PLSTM_APE_TEST_EXT, &r2);
    if (!res.finished) {
        printf("stopped at step %lld of %lld; continue with the same command plus --resume "
               "(--out %s)\n",
               (long long)res.step, (long long)cfg.steps, out);
        return stop_requested ? 130 : 0;
    }
    printf("finished %lld steps; results in %s/results.json\n", (long long)res.step, out);
    if (res.test.count)
        printf("test     (%4d px): acc %.4f  loss %.4f  (%lld images)\n", r1, res.test.acc,
               res.test.loss, (long long)res.test.count);
    if (res.test_ext.count)
        printf("test_ext (%4d px): acc %.4f  loss %.4f  (%lld images)\n", r2, res.test_ext.acc,
               res.test_ext.loss, (long long)res.test_ext.count);
    return 0;
}
