/* plstm tu: the pLSTM TU graph-classification benchmark (experiments.md §2.7,
 * §3.4): stratified k-fold CV, test accuracy at the best validation epoch,
 * mean ± std next to the paper's numbers. */
#include "cli/commands.h"
#include "plstm/graph_layers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void openblas_set_num_threads(int);

/* Paper Table 3/4, pLSTM row. */
static double paper_acc(const char *ds, double *std)
{
    static const struct { const char *name; double mean, std; } rows[] = {
        {"MUTAG", 0.8512, 0.06}, {"NCI1", 0.7324, 0.03}, {"PROTEINS", 0.7502, 0.05},
        {"PTC_FM", 0.6133, 0.08}};
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        if (!strcmp(ds, rows[i].name)) {
            *std = rows[i].std;
            return rows[i].mean;
        }
    *std = 0;
    return -1;
}

/* <this source file's folder>/../../../shared/data/tu: the checkout's data. */
static void default_data_dir(char *out, size_t n)
{
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    const int len = slash ? (int)(slash - file) : 0;
    snprintf(out, n, "%.*s%s../../../shared/data/tu", len, file, len ? "/" : "");
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: plstm tu [options]\n\n"
            "Trains the pLSTM graph model on a TU dataset with the paper's protocol\n"
            "(stratified k-fold CV, 80/10/10, test accuracy at the best validation epoch)\n"
            "and prints per-fold results and mean ± std next to the paper's value.\n\n"
            "options:\n"
            "  --dataset NAME   MUTAG | NCI1 | PROTEINS | PTC_FM (default MUTAG)\n"
            "  --preset P       tu-mutag | tu-nci1 | tu-proteins | tu-ptc_fm\n"
            "  --data DIR       folder holding NAME/ (default: the checkout's shared/data/tu)\n"
            "  --folds K        number of folds (default 10)\n"
            "  --fold I         run only folds I .. I+N-1 (with --num-folds N, default 1)\n"
            "  --num-folds N    number of folds to run (default all)\n"
            "  --epochs N       epochs per fold (default 100)\n"
            "  --batch B        graphs per optimizer step (default 64)\n"
            "  --lr X           peak learning rate (default 1e-3)\n"
            "  --warmup N       warmup epochs (default 5)\n"
            "  --hidden D       hidden size (default 96)\n"
            "  --heads H        heads (default 4)\n"
            "  --blocks N       P+D block pairs (default 2)\n"
            "  --layer K        edge | node: graph layer kind (default edge)\n"
            "  --seed S         init/shuffle seed (default 0)\n"
            "  --threads T      CPU threads (default: OpenMP default)\n"
            "  --jsonl FILE     per-epoch log records\n"
            "  --verbose        per-epoch lines\n");
}

int cmd_tu(int argc, char **argv)
{
    plstm_tu_train_config c;
    plstm_tu_preset("tu-mutag", &c);
    const char *jsonl = NULL;
    int fold_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--verbose")) {
            c.verbose = 1;
            continue;
        }
        if (!v || a[0] != '-') {
            fprintf(stderr, "plstm tu: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "--preset")) {
            plstm_tu_train_config p;
            if (plstm_tu_preset(v, &p) != PLSTM_OK)
                return cli_report_error("--preset", PLSTM_ERR_INVALID_ARGUMENT);
            snprintf(c.dataset, sizeof c.dataset, "%s", p.dataset);
        } else if (!strcmp(a, "--dataset"))
            snprintf(c.dataset, sizeof c.dataset, "%s", v);
        else if (!strcmp(a, "--data"))
            snprintf(c.data_dir, sizeof c.data_dir, "%s", v);
        else if (!strcmp(a, "--folds"))
            c.folds = atoi(v);
        else if (!strcmp(a, "--fold"))
            c.first_fold = atoi(v), fold_given = 1;
        else if (!strcmp(a, "--num-folds"))
            c.num_run_folds = atoi(v);
        else if (!strcmp(a, "--epochs"))
            c.epochs = atoi(v);
        else if (!strcmp(a, "--batch"))
            c.batch_size = atoi(v);
        else if (!strcmp(a, "--lr"))
            c.lr = atof(v);
        else if (!strcmp(a, "--warmup"))
            c.warmup_epochs = atoi(v);
        else if (!strcmp(a, "--hidden"))
            c.model.hidden_dim = atoi(v);
        else if (!strcmp(a, "--heads"))
            c.model.num_heads = atoi(v);
        else if (!strcmp(a, "--blocks"))
            c.model.num_blocks = atoi(v);
        else if (!strcmp(a, "--layer")) {
            if (!strcmp(v, "edge"))
                c.model.layer_kind = PLSTM_GRAPH_LAYER_EDGE;
            else if (!strcmp(v, "node"))
                c.model.layer_kind = PLSTM_GRAPH_LAYER_NODEWISE;
            else {
                fprintf(stderr, "plstm tu: bad --layer '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--seed"))
            c.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--threads"))
            c.threads = atoi(v);
        else if (!strcmp(a, "--jsonl"))
            jsonl = v;
        else {
            fprintf(stderr, "plstm tu: unknown option '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (c.threads > 0) /* idle OpenBLAS threads beside a 1-thread run cost system time */
        openblas_set_num_threads(c.threads);
    if (fold_given && c.num_run_folds <= 0)
        c.num_run_folds = 1;
    if (c.warmup_epochs >= c.epochs)
        c.warmup_epochs = c.epochs / 20;
    if (!c.data_dir[0])
        default_data_dir(c.data_dir, sizeof c.data_dir);
    plstm_tu_result r;
    plstm_status s = plstm_tu_train(&c, stderr, jsonl, &r);
    if (s != PLSTM_OK)
        return cli_report_error("tu", s);
    printf("\n%s, %d of %d folds, %d epochs, hidden %d, %d heads, %d x (P+D) %s blocks, "
           "%zu parameters, %.0f s\n",
           c.dataset, r.folds_run, c.folds, c.epochs, c.model.hidden_dim, c.model.num_heads,
           c.model.num_blocks, c.model.layer_kind == PLSTM_GRAPH_LAYER_EDGE ? "edge" : "node-wise",
           r.num_params, r.seconds);
    printf("| fold | best val acc | best epoch | test acc |\n|---|---|---|---|\n");
    const int first = c.first_fold > 0 ? c.first_fold : 0;
    for (int k = 0; k < r.folds_run; k++)
        printf("| %d | %.4f | %d | %.4f |\n", first + k, r.best_val_acc[k], r.best_epoch[k],
               r.test_acc[k]);
    double pstd, pm = paper_acc(c.dataset, &pstd);
    printf("\n| model | %s test acc (mean ± std) |\n|---|---|\n", c.dataset);
    printf("| plstm (this run) | %.4f ± %.4f |\n", r.mean, r.std);
    if (pm >= 0)
        printf("| pLSTM (paper) | %.4f ± %.2f |\n", pm, pstd);
    return 0;
}
