/* TU graph classification with the pLSTM graph model (experiments.md §2.7):
 * 10-fold stratified CV with a stratified validation split inside each fold,
 * AdamW (torch defaults, weight decay 0.01 on every parameter) at 1e-3 with a
 * per-epoch cosine schedule after 5 warmup epochs, clipping at 1, batches of
 * 64 graphs (the reference: batch 1 with gradient accumulation 64, i.e. the
 * mean loss over 64 graphs; here the 64 graphs run as one batched pass), test
 * accuracy at the epoch of best validation accuracy, mean ± std over folds.
 *
 * Every graph is prepared once per variant (P, D, each forward and reversed);
 * a mini-batch only concatenates prepared graphs. */
#include "plstm/graph_layers.h"
#include "plstm/nn.h"
#include "plstm/train.h"
#include "plstm/tu.h"
#include "core/status_internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define TT "tu train"

static const char *const PRESETS[][2] = {
    {"tu-mutag", "MUTAG"}, {"tu-nci1", "NCI1"}, {"tu-proteins", "PROTEINS"},
    {"tu-ptc_fm", "PTC_FM"}};
enum { NUM_PRESETS = sizeof PRESETS / sizeof PRESETS[0] };

const char *plstm_tu_preset_name(int i)
{
    return i >= 0 && i < NUM_PRESETS ? PRESETS[i][0] : NULL;
}

plstm_status plstm_tu_preset(const char *name, plstm_tu_train_config *c)
{
    PLSTM_CHECK_ARG(name && c, TT ": NULL preset name or config");
    for (int i = 0; i < NUM_PRESETS; i++)
        if (!strcmp(name, PRESETS[i][0])) {
            memset(c, 0, sizeof *c);
            snprintf(c->dataset, sizeof c->dataset, "%s", PRESETS[i][1]);
            c->folds = 10;
            c->epochs = 100;
            c->batch_size = 64;
            c->lr = 1e-3;
            c->warmup_epochs = 5;
            c->weight_decay = 0.01;
            c->clip = 1.0;
            c->seed = 0;
            c->split_seed = 42;
            c->model = plstm_graph_model_config_default(1, 2);
            return PLSTM_OK;
        }
    return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT,
                      TT ": unknown preset '%s' (tu-mutag, tu-nci1, tu-proteins, tu-ptc_fm)", name);
}

/* ---- data ------------------------------------------------------------------ */

typedef struct tu_state {
    const plstm_tu_dataset *ds;
    plstm_prepared_graph **pg[2][2]; /* [mode][reversed][graph] */
    int need[2][2];
    float *x;                        /* [N][node_dim] */
} tu_state;

static void state_free(tu_state *s)
{
    for (int v = 0; v < 4; v++) {
        plstm_prepared_graph **a = s->pg[v / 2][v % 2];
        for (int64_t g = 0; a && g < s->ds->num_graphs; g++)
            plstm_prepared_graph_destroy(a[g]);
        free(a);
    }
    free(s->x);
}

static plstm_status state_make(tu_state *s, const plstm_tu_dataset *ds,
                               const plstm_graph_model_config *mc)
{
    memset(s, 0, sizeof *s);
    s->ds = ds;
    for (int i = 0; i < 2 * mc->num_blocks; i++) {
        const int d = mc->block_mode[i % 2] == 'D';
        const int r = mc->reverse_alternate && (i / 2) % 2 == 1;
        s->need[d][r] = 1;
    }
    const size_t G = (size_t)ds->num_graphs;
    s->x = malloc((size_t)ds->num_nodes * (size_t)ds->node_dim * sizeof(float) + 1);
    if (!s->x)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, TT ": cannot allocate node features");
    for (size_t i = 0; i < (size_t)ds->num_nodes * (size_t)ds->node_dim; i++)
        s->x[i] = (float)ds->x[i];
    for (int v = 0; v < 4; v++) {
        if (!s->need[v / 2][v % 2])
            continue;
        plstm_prepared_graph **a = calloc(G, sizeof *a);
        if (!(s->pg[v / 2][v % 2] = a))
            return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, TT ": cannot allocate graphs");
        const plstm_graph_prep_opts o = {.directed = 0,
                                         .mode = v / 2 ? PLSTM_GRAPH_MODE_D : PLSTM_GRAPH_MODE_P,
                                         .reverse = v % 2};
        for (size_t g = 0; g < G; g++) {
            const int64_t e0 = ds->edge_off[g];
            PLSTM_TRY(plstm_graph_prepare(&a[g], ds->node_off[g + 1] - ds->node_off[g],
                                          ds->edge_off[g + 1] - e0, ds->edges + 2 * e0, &o));
        }
    }
    return PLSTM_OK;
}

typedef struct tu_batch {
    plstm_graph_batch *gb[2][2];
    float *x;
    int32_t *labels;
    int n;
} tu_batch;

static void batch_free(tu_batch *b)
{
    for (int v = 0; v < 4; v++)
        plstm_graph_batch_destroy(b->gb[v / 2][v % 2]);
    free(b->x);
    free(b->labels);
    memset(b, 0, sizeof *b);
}

static plstm_status batch_make(const tu_state *s, const int64_t *idx, int n, tu_batch *b)
{
    memset(b, 0, sizeof *b);
    const plstm_tu_dataset *ds = s->ds;
    const size_t nd = (size_t)ds->node_dim;
    size_t N = 0;
    for (int i = 0; i < n; i++)
        N += (size_t)(ds->node_off[idx[i] + 1] - ds->node_off[idx[i]]);
    b->n = n;
    b->x = malloc(N * nd * sizeof(float) + 1);
    b->labels = malloc((size_t)n * sizeof(int32_t));
    const plstm_prepared_graph **ptr = malloc((size_t)n * sizeof *ptr);
    plstm_status st = PLSTM_OK;
    if (!b->x || !b->labels || !ptr) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, TT ": cannot allocate a batch");
        goto done;
    }
    for (int i = 0, r = 0; i < n; i++) {
        const int64_t g = idx[i], c = ds->node_off[g + 1] - ds->node_off[g];
        memcpy(b->x + (size_t)r * nd, s->x + (size_t)ds->node_off[g] * nd,
               (size_t)c * nd * sizeof(float));
        r += (int)c;
        b->labels[i] = (int32_t)ds->label[g];
    }
    for (int v = 0; v < 4 && st == PLSTM_OK; v++) {
        if (!s->need[v / 2][v % 2])
            continue;
        for (int i = 0; i < n; i++)
            ptr[i] = s->pg[v / 2][v % 2][idx[i]];
        st = plstm_graph_batch_create(&b->gb[v / 2][v % 2], n,
                                      (const plstm_prepared_graph *const *)ptr);
    }
done:
    free(ptr);
    if (st != PLSTM_OK)
        batch_free(b);
    return st;
}

static plstm_graph_model_input input_of(const tu_batch *b)
{
    plstm_graph_model_input in = {{{b->gb[0][0], b->gb[0][1]}, {b->gb[1][0], b->gb[1][1]}}, b->x};
    return in;
}

/* ---- training ---------------------------------------------------------------- */

typedef struct tu_run {
    plstm_context *ctx;
    const plstm_graph_model *M;
    const plstm_params *p;
    const plstm_tu_train_config *cfg;
    const tu_state *s;
    size_t np;
    float *params, *grads, *m, *v, *mask, *logits, *dlogits, *acts;
    size_t acts_cap;
} tu_run;

/* Accuracy (and mean loss, may be NULL) over a list of graphs, no gradients. */
static plstm_status evaluate(tu_run *r, const int64_t *idx, int64_t n, double *acc, double *loss)
{
    int64_t correct = 0;
    double lsum = 0;
    const int bs = r->cfg->batch_size;
    for (int64_t i = 0; i < n; i += bs) {
        const int cnt = (int)(n - i < bs ? n - i : bs);
        tu_batch b;
        PLSTM_TRY(batch_make(r->s, idx + i, cnt, &b));
        plstm_graph_model_input in = input_of(&b);
        plstm_status st = plstm_graph_model_forward(r->ctx, r->M, PLSTM_F32, r->params, &in,
                                                    r->logits, NULL);
        double l = 0;
        int c = 0;
        if (st == PLSTM_OK)
            st = plstm_softmax_xent_forward(r->ctx, PLSTM_F32, cnt, r->M->cfg.num_classes,
                                            r->logits, b.labels, &l, &c);
        batch_free(&b);
        PLSTM_TRY(st);
        correct += c;
        lsum += l * cnt;
    }
    *acc = n ? (double)correct / (double)n : 0;
    if (loss)
        *loss = n ? lsum / (double)n : 0;
    return PLSTM_OK;
}

/* One optimizer step on a batch; adds loss·n and correct to the sums. */
static plstm_status train_step(tu_run *r, const int64_t *idx, int n, double lr, int64_t step,
                               double *lsum, int64_t *correct)
{
    tu_batch b;
    PLSTM_TRY(batch_make(r->s, idx, n, &b));
    plstm_graph_model_input in = input_of(&b);
    plstm_status st = PLSTM_OK;
    const size_t na = plstm_graph_model_activation_size(r->M, &in);
    if (na > r->acts_cap) {
        free(r->acts);
        r->acts_cap = na + na / 4;
        if (!(r->acts = malloc(r->acts_cap * sizeof(float)))) {
            r->acts_cap = 0;
            st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, TT ": cannot allocate activations");
        }
    }
    const int C = r->M->cfg.num_classes;
    double l = 0;
    int c = 0;
    if (st == PLSTM_OK)
        st = plstm_graph_model_forward(r->ctx, r->M, PLSTM_F32, r->params, &in, r->logits,
                                       r->acts);
    if (st == PLSTM_OK)
        st = plstm_softmax_xent_forward(r->ctx, PLSTM_F32, n, C, r->logits, b.labels, &l, &c);
    if (st == PLSTM_OK)
        st = plstm_softmax_xent_backward(r->ctx, PLSTM_F32, n, C, r->logits, b.labels, 1.0,
                                         r->dlogits);
    if (st == PLSTM_OK) {
        memset(r->grads, 0, r->np * sizeof(float));
        st = plstm_graph_model_backward(r->ctx, r->M, PLSTM_F32, r->params, &in, r->acts,
                                        r->dlogits, r->grads);
    }
    if (st == PLSTM_OK && r->cfg->clip > 0)
        st = plstm_grad_clip(r->p, r->grads, r->np, r->cfg->clip, NULL);
    if (st == PLSTM_OK) {
        plstm_adamw_config ac = plstm_adamw_defaults();
        ac.weight_decay = r->cfg->weight_decay;
        st = plstm_adamw_step(&ac, lr, step, r->np, r->params, r->grads, r->m, r->v, r->mask);
    }
    batch_free(&b);
    *lsum += l * n;
    *correct += c;
    return st;
}

static plstm_status run_fold(tu_run *r, const plstm_tu_fold *fold, int k, FILE *log,
                             plstm_jsonl *jl, plstm_tu_result *res)
{
    const plstm_tu_train_config *cfg = r->cfg;
    PLSTM_TRY(plstm_graph_model_init(r->M, r->params, PLSTM_F32, cfg->seed * 1000 + (uint64_t)k));
    memset(r->m, 0, r->np * sizeof(float));
    memset(r->v, 0, r->np * sizeof(float));
    const int E = cfg->epochs;
    double *val = calloc((size_t)E, sizeof *val), *test = calloc((size_t)E, sizeof *test);
    int64_t *order = malloc(((size_t)fold->num_train + 1) * sizeof *order);
    plstm_status st = PLSTM_OK;
    if (!val || !test || !order) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, TT ": cannot allocate fold state");
        goto done;
    }
    const plstm_lr_schedule sched = {.peak = cfg->lr, .warmup_steps = cfg->warmup_epochs,
                                     .total_steps = E, .min_lr_ratio = 0};
    plstm_rng rng;
    plstm_rng_seed(&rng, cfg->seed, 100 + (uint64_t)k);
    int64_t step = 0;
    for (int ep = 0; ep < E && st == PLSTM_OK; ep++) {
        const double lr = plstm_lr_at(&sched, ep);
        const double t0 = omp_get_wtime();
        memcpy(order, fold->train, (size_t)fold->num_train * sizeof *order);
        plstm_rng_permutation(&rng, order, (size_t)fold->num_train);
        double lsum = 0;
        int64_t correct = 0;
        for (int64_t i = 0; i < fold->num_train && st == PLSTM_OK; i += cfg->batch_size) {
            const int n = (int)(fold->num_train - i < cfg->batch_size ? fold->num_train - i
                                                                       : cfg->batch_size);
            st = train_step(r, order + i, n, lr, step++, &lsum, &correct);
        }
        if (st == PLSTM_OK)
            st = evaluate(r, fold->val, fold->num_val, &val[ep], NULL);
        if (st == PLSTM_OK)
            st = evaluate(r, fold->test, fold->num_test, &test[ep], NULL);
        if (st != PLSTM_OK)
            break;
        const double tl = lsum / (double)fold->num_train;
        const double ta = (double)correct / (double)fold->num_train;
        if (log && cfg->verbose)
            fprintf(log, "fold %d epoch %3d  lr %.2e  loss %.4f  train %.3f  val %.3f  test %.3f"
                         "  (%.2fs)\n", k, ep, lr, tl, ta, val[ep], test[ep], omp_get_wtime() - t0);
        if (jl) {
            plstm_jsonl_begin(jl);
            plstm_jsonl_add_int(jl, "fold", k);
            plstm_jsonl_add_int(jl, "epoch", ep);
            plstm_jsonl_add_int(jl, "step", step);
            plstm_jsonl_add_real(jl, "lr", lr);
            plstm_jsonl_add_real(jl, "train_loss", tl);
            plstm_jsonl_add_real(jl, "train_acc", ta);
            plstm_jsonl_add_real(jl, "val_acc", val[ep]);
            plstm_jsonl_add_real(jl, "test_acc", test[ep]);
            plstm_jsonl_end(jl);
        }
    }
    if (st == PLSTM_OK) {
        const int f = res->folds_run;
        int best = 0;
        for (int ep = 1; ep < E; ep++)
            if (val[ep] > val[best])
                best = ep;
        res->test_acc[f] = plstm_tu_test_at_best_val(val, test, E);
        res->best_val_acc[f] = val[best];
        res->best_epoch[f] = best;
        res->folds_run++;
        if (log)
            fprintf(log, "fold %d: best val %.4f at epoch %d, test %.4f\n", k, val[best], best,
                    res->test_acc[f]);
    }
done:
    free(val);
    free(test);
    free(order);
    return st;
}

plstm_status plstm_tu_train(const plstm_tu_train_config *cfg, FILE *log, const char *jsonl_path,
                            plstm_tu_result *res)
{
    PLSTM_CHECK_ARG(cfg && res, TT ": NULL config or result");
    PLSTM_CHECK_ARG(cfg->folds >= 2 && cfg->folds <= 64, TT ": folds %d must be in 2..64",
                    cfg->folds);
    PLSTM_CHECK_ARG(cfg->epochs >= 1 && cfg->batch_size >= 1 && cfg->lr >= 0,
                    TT ": epochs, batch_size must be >= 1 and lr >= 0");
    PLSTM_CHECK_ARG(cfg->warmup_epochs >= 0 && cfg->warmup_epochs < cfg->epochs,
                    TT ": warmup_epochs %d must be in 0..epochs-1", cfg->warmup_epochs);
    PLSTM_CHECK_ARG(cfg->data_dir[0], TT ": no data folder");
    memset(res, 0, sizeof *res);
    const double t_start = omp_get_wtime();
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", cfg->data_dir, cfg->dataset);
    plstm_tu_dataset *ds = NULL;
    PLSTM_TRY(plstm_tu_load(&ds, dir));
    plstm_graph_model_config mc = cfg->model;
    mc.node_dim = (int)ds->node_dim;
    mc.num_classes = (int)ds->num_classes;
    if (mc.layer_kind == PLSTM_GRAPH_LAYER_NODEWISE && mc.max_edges < 1)
        mc.max_edges = 4;
    plstm_graph_model M;
    plstm_params *p = NULL;
    plstm_tu_fold *folds = calloc((size_t)cfg->folds, sizeof *folds);
    tu_state s;
    memset(&s, 0, sizeof s);
    s.ds = ds;
    tu_run r;
    memset(&r, 0, sizeof r);
    plstm_jsonl *jl = NULL;
    plstm_status st = folds ? PLSTM_OK
                            : plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, TT ": cannot allocate folds");
    if (st == PLSTM_OK)
        st = plstm_params_create(&p);
    if (st == PLSTM_OK)
        st = plstm_graph_model_declare(&M, &mc, p);
    if (st == PLSTM_OK)
        st = state_make(&s, ds, &mc);
    if (st == PLSTM_OK)
        st = plstm_tu_stratified_folds(ds->num_graphs, ds->label, cfg->folds, 0.111111,
                                       cfg->split_seed, folds);
    if (st == PLSTM_OK)
        st = plstm_context_create(&r.ctx, PLSTM_BACKEND_CPU, 0);
    if (st == PLSTM_OK && cfg->threads > 0)
        st = plstm_context_set_threads(r.ctx, cfg->threads);
    if (st == PLSTM_OK && jsonl_path)
        st = plstm_jsonl_open(&jl, jsonl_path, -1);
    if (st != PLSTM_OK)
        goto done;
    r.M = &M, r.p = p, r.cfg = cfg, r.s = &s;
    r.np = plstm_params_size(p);
    res->num_params = plstm_params_numel(p);
    const size_t np = r.np ? r.np : 1, C = (size_t)mc.num_classes, B = (size_t)cfg->batch_size;
    r.params = calloc(np, sizeof(float));
    r.grads = calloc(np, sizeof(float));
    r.m = calloc(np, sizeof(float));
    r.v = calloc(np, sizeof(float));
    r.mask = calloc(np, sizeof(float));
    r.logits = calloc(B * C, sizeof(float));
    r.dlogits = calloc(B * C, sizeof(float));
    if (!r.params || !r.grads || !r.m || !r.v || !r.mask || !r.logits || !r.dlogits) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, TT ": cannot allocate %zu parameters", np);
        goto done;
    }
    /* torch AdamW decays every parameter */
    for (size_t i = 0; i < plstm_params_count(p); i++) {
        const plstm_param_info *pi = plstm_params_at(p, i);
        for (size_t j = 0; j < pi->numel; j++)
            r.mask[pi->offset + j] = 1.0f;
    }
    if (log)
        fprintf(log, "%s: %lld graphs, %lld classes, node_dim %lld; model %zu parameters\n",
                ds->name, (long long)ds->num_graphs, (long long)ds->num_classes,
                (long long)ds->node_dim, res->num_params);
    const int first = cfg->first_fold > 0 ? cfg->first_fold : 0;
    const int count = cfg->num_run_folds > 0 ? cfg->num_run_folds : cfg->folds - first;
    for (int k = first; k < first + count && k < cfg->folds && st == PLSTM_OK; k++)
        st = run_fold(&r, &folds[k], k, log, jl, res);
    if (st == PLSTM_OK)
        plstm_tu_mean_std(res->test_acc, res->folds_run, &res->mean, &res->std);
done:
    res->seconds = omp_get_wtime() - t_start;
    plstm_jsonl_close(jl);
    free(r.params), free(r.grads), free(r.m), free(r.v), free(r.mask);
    free(r.logits), free(r.dlogits), free(r.acts);
    plstm_context_destroy(r.ctx);
    if (folds)
        plstm_tu_folds_free(folds, cfg->folds); /* frees each fold's lists */
    free(folds);
    state_free(&s);
    plstm_params_destroy(p);
    plstm_tu_destroy(ds);
    return st;
}
