/* Graph classification model of the pLSTM TU experiments (experiments.md
 * §2.7, plstm_experiments/plstm_graph/src/models/plstm.py):
 *   h0 = node_encoder(x) + sinusoidal degree encoding (width hidden)
 *   f  = (h0[u] + h0[v]) / 2 per edge {u, v}   (edge layers; the same f for all blocks)
 *   h  = blocks (PostUp P, PostUp D) × num_blocks, odd blocks on the reversed DAGs
 *   p  = mean (or sum) of h over each graph's nodes
 *   logits = decoder.2(ReLU(decoder.0(p)))
 * Saved for backward: h0..h_nb, f, every block's acts, p, decoder.0's output. */
#include "layers/graph_layer_internal.h"
#include "layers/sublayer_impl.h"
#include "plstm/tu.h"

#include <stdlib.h>

#define GM "graph model"

plstm_graph_model_config plstm_graph_model_config_default(int node_dim, int num_classes)
{
    plstm_graph_model_config c;
    memset(&c, 0, sizeof c);
    c.node_dim = node_dim;
    c.num_classes = num_classes;
    c.hidden_dim = 96;
    c.num_heads = 4;
    c.num_blocks = 2;
    strcpy(c.block_mode, "PD");
    c.reverse_alternate = 1;
    c.layer_kind = PLSTM_GRAPH_LAYER_EDGE;
    c.max_edges = 4;
    c.slots = PLSTM_GRAPH_SLOTS_INTENDED;
    c.q8 = 0;
    c.degree_encoding = 1;
    c.sum_pooling = 0;
    c.algo = PLSTM_ALGO_AUTO;
    return c;
}

static plstm_status decl_lin(plstm_params *p, const char *name, int out, int in, size_t *w,
                             size_t *b)
{
    char full[PLSTM_PARAM_NAME_MAX];
    const int64_t sw[2] = {out, in}, sb[1] = {out};
    snprintf(full, sizeof full, "%s.weight", name);
    PLSTM_TRY(plstm_params_declare(p, full, 2, sw, 0, w));
    snprintf(full, sizeof full, "%s.bias", name);
    return plstm_params_declare(p, full, 1, sb, PLSTM_PARAM_NO_DECAY, b);
}

static plstm_graph_mode block_mode(const plstm_graph_model *M, int i)
{
    return M->cfg.block_mode[i % 2] == 'D' ? PLSTM_GRAPH_MODE_D : PLSTM_GRAPH_MODE_P;
}

static int block_reversed(const plstm_graph_model *M, int i)
{
    return M->cfg.reverse_alternate && (i / 2) % 2 == 1;
}

plstm_status plstm_graph_model_declare(plstm_graph_model *M, const plstm_graph_model_config *cfg,
                                       plstm_params *p)
{
    PLSTM_CHECK_ARG(M && cfg && p, GM ": NULL argument");
    PLSTM_CHECK_ARG(cfg->node_dim >= 1 && cfg->num_classes >= 1 && cfg->hidden_dim >= 1,
                    GM ": node_dim %d, num_classes %d, hidden_dim %d must be >= 1",
                    cfg->node_dim, cfg->num_classes, cfg->hidden_dim);
    PLSTM_CHECK_ARG(cfg->num_blocks >= 1 && cfg->num_blocks <= PLSTM_GRAPH_MODEL_MAX_BLOCKS,
                    GM ": num_blocks %d must be in 1..%d", cfg->num_blocks,
                    PLSTM_GRAPH_MODEL_MAX_BLOCKS);
    for (int i = 0; i < 2; i++)
        PLSTM_CHECK_ARG(cfg->block_mode[i] == 'P' || cfg->block_mode[i] == 'D',
                        GM ": block_mode must be two of P, D");
    memset(M, 0, sizeof *M);
    M->cfg = *cfg;
    M->nb = 2 * cfg->num_blocks;
    const int Hd = cfg->hidden_dim;
    PLSTM_TRY(decl_lin(p, "node_encoder", Hd, cfg->node_dim, &M->enc_w, &M->enc_b));
    for (int i = 0; i < M->nb; i++) {
        plstm_graph_layer_config lc =
            plstm_graph_layer_config_default(cfg->layer_kind, Hd, cfg->num_heads, block_mode(M, i));
        lc.max_edges = cfg->max_edges;
        lc.slots = cfg->slots;
        lc.q8 = cfg->q8;
        lc.algo = cfg->algo;
        char prefix[64];
        snprintf(prefix, sizeof prefix, "node_convs.%d.block%d", i / 2, i % 2);
        PLSTM_TRY(plstm_graph_postup_declare(&M->blocks[i], &lc, p, prefix));
    }
    PLSTM_TRY(decl_lin(p, "decoder.0", Hd, Hd, &M->dec0_w, &M->dec0_b));
    return decl_lin(p, "decoder.2", cfg->num_classes, Hd, &M->dec2_w, &M->dec2_b);
}

/* torch.nn.Linear's default init: U(±1/sqrt(fan_in)) for weight and bias. */
static void torch_linear_init(void *params, plstm_dtype dt, size_t w, size_t b, int out, int in,
                              sl_rng *r)
{
    const double bound = 1.0 / sqrt((double)in);
    for (size_t i = 0; i < (size_t)out * in; i++)
        sl_set(params, dt, w + i, bound * (2.0 * (double)(sl_rng_u64(r) >> 11) * 0x1.0p-53 - 1));
    for (size_t i = 0; i < (size_t)out; i++)
        sl_set(params, dt, b + i, bound * (2.0 * (double)(sl_rng_u64(r) >> 11) * 0x1.0p-53 - 1));
}

plstm_status plstm_graph_model_init(const plstm_graph_model *M, void *params, plstm_dtype dtype,
                                    uint64_t seed)
{
    PLSTM_CHECK_ARG(M && params, GM " init: NULL argument");
    PLSTM_CHECK_ARG(dtype == PLSTM_F32 || dtype == PLSTM_F64, GM " init: F32 or F64");
    sl_rng r = {.s = seed ^ 0x3C6EF372FE94F82Bull, .has_spare = 0, .spare = 0};
    const int Hd = M->cfg.hidden_dim;
    torch_linear_init(params, dtype, M->enc_w, M->enc_b, Hd, M->cfg.node_dim, &r);
    torch_linear_init(params, dtype, M->dec0_w, M->dec0_b, Hd, Hd, &r);
    torch_linear_init(params, dtype, M->dec2_w, M->dec2_b, M->cfg.num_classes, Hd, &r);
    for (int i = 0; i < M->nb; i++)
        PLSTM_TRY(plstm_graph_postup_init(&M->blocks[i], params, dtype,
                                          seed * 1000003ull + (uint64_t)i * 7919 + 1));
    return PLSTM_OK;
}

static const plstm_graph_batch *block_batch(const plstm_graph_model *M,
                                            const plstm_graph_model_input *in, int i)
{
    return in->graphs[block_mode(M, i) == PLSTM_GRAPH_MODE_D][block_reversed(M, i)];
}

/* Any batch of the input (they share nodes and edges). */
static const plstm_graph_batch *any_batch(const plstm_graph_model_input *in)
{
    for (int i = 0; i < 4; i++)
        if (in->graphs[i / 2][i % 2])
            return in->graphs[i / 2][i % 2];
    return NULL;
}

typedef struct gm_layout {
    size_t h[2 * PLSTM_GRAPH_MODEL_MAX_BLOCKS + 1], ba[2 * PLSTM_GRAPH_MODEL_MAX_BLOCKS];
    size_t f, pool, z1, total;
} gm_layout;

static void layout_make(const plstm_graph_model *M, const plstm_graph_model_input *in,
                        gm_layout *l)
{
    const plstm_graph_batch *b = any_batch(in);
    const size_t N = (size_t)b->num_nodes, E = (size_t)b->num_edges, G = (size_t)b->num_graphs;
    const size_t Hd = (size_t)M->cfg.hidden_dim;
    size_t o = 0;
    for (int i = 0; i <= M->nb; i++)
        l->h[i] = o, o += N * Hd;
    l->f = o, o += M->cfg.layer_kind == PLSTM_GRAPH_LAYER_EDGE ? E * Hd : 0;
    for (int i = 0; i < M->nb; i++)
        l->ba[i] = o, o += plstm_graph_postup_activation_size(&M->blocks[i], block_batch(M, in, i));
    l->pool = o, o += G * Hd;
    l->z1 = o, o += G * Hd;
    l->total = o;
}

static plstm_status check_input(const plstm_graph_model *M, const plstm_graph_model_input *in,
                                const char *what)
{
    PLSTM_CHECK_ARG(M && in && in->x, "%s: NULL model or input", what);
    const plstm_graph_batch *b0 = any_batch(in);
    PLSTM_CHECK_ARG(b0 != NULL, "%s: no graph batch", what);
    for (int i = 0; i < M->nb; i++) {
        const plstm_graph_batch *b = block_batch(M, in, i);
        if (!b)
            return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "%s: block %d needs the %s%s batch",
                              what, i, block_mode(M, i) == PLSTM_GRAPH_MODE_D ? "D" : "P",
                              block_reversed(M, i) ? " reversed" : "");
        PLSTM_CHECK_ARG(b->num_nodes == b0->num_nodes && b->num_edges == b0->num_edges &&
                            b->num_graphs == b0->num_graphs,
                        "%s: the input's batches hold different graphs", what);
    }
    return PLSTM_OK;
}

size_t plstm_graph_model_activation_size(const plstm_graph_model *M,
                                         const plstm_graph_model_input *in)
{
    if (!M || !in || !any_batch(in))
        return 0;
    for (int i = 0; i < M->nb; i++)
        if (!block_batch(M, in, i))
            return 0;
    gm_layout l;
    layout_make(M, in, &l);
    return l.total;
}

plstm_status plstm_graph_model_forward(plstm_context *ctx, const plstm_graph_model *M,
                                       plstm_dtype dt, const void *params,
                                       const plstm_graph_model_input *in, void *logits,
                                       void *acts)
{
    PLSTM_TRY(sl_check(ctx, dt, GM " forward"));
    PLSTM_TRY(check_input(M, in, GM " forward"));
    PLSTM_CHECK_ARG(params && logits, GM " forward: NULL params or logits");
    const plstm_graph_batch *b = any_batch(in);
    const size_t N = (size_t)b->num_nodes, E = (size_t)b->num_edges, G = (size_t)b->num_graphs;
    const int Hd = M->cfg.hidden_dim, edge = M->cfg.layer_kind == PLSTM_GRAPH_LAYER_EDGE;
    const size_t esz = plstm_dtype_size(dt);
    gm_layout l;
    layout_make(M, in, &l);
    void *own = acts ? NULL : malloc((l.total ? l.total : 1) * esz);
    double *enc = malloc(((size_t)Hd + 1) * sizeof *enc);
    if ((!acts && !own) || !enc) {
        free(own), free(enc);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, GM " forward: cannot allocate activations");
    }
    void *ac = acts ? acts : own;
    plstm_status st = PLSTM_OK;
    void *h0 = gl_at(ac, esz, l.h[0]), *f = gl_at(ac, esz, l.f);
    if (N)
        st = plstm_linear_forward(ctx, dt, (int)N, M->cfg.node_dim, Hd, in->x,
                                  gl_cat(params, esz, M->enc_w), gl_cat(params, esz, M->enc_b), h0);
    if (st == PLSTM_OK && M->cfg.degree_encoding)
        GL_REAL(dt, {
            R *h = h0;
            for (size_t n = 0; n < N; n++) {
                plstm_tu_degree_encoding(b->indegree[n] + b->outdegree[n], Hd, enc);
                for (int j = 0; j < Hd; j++)
                    h[n * Hd + j] += (R)enc[j];
            }
        });
    if (st == PLSTM_OK && edge)
        GL_REAL(dt, {
            const R *h = h0;
            R *fo = f;
            for (size_t e = 0; e < E; e++) {
                int64_t u, v;
                plstm_dag_edge(b->dag, (int64_t)e, &u, &v, NULL);
                for (int j = 0; j < Hd; j++)
                    fo[e * Hd + j] = (R)0.5 * (h[(size_t)u * Hd + j] + h[(size_t)v * Hd + j]);
            }
        });
    for (int i = 0; i < M->nb && st == PLSTM_OK; i++)
        st = plstm_graph_postup_forward(ctx, &M->blocks[i], dt, params, block_batch(M, in, i),
                                        gl_at(ac, esz, l.h[i]), edge ? f : NULL,
                                        gl_at(ac, esz, l.h[i + 1]), gl_at(ac, esz, l.ba[i]));
    if (st != PLSTM_OK)
        goto done;
    void *pool = gl_at(ac, esz, l.pool), *z1 = gl_at(ac, esz, l.z1);
    const int sum = M->cfg.sum_pooling;
    GL_REAL(dt, {
        const R *h = gl_cat(ac, esz, l.h[M->nb]);
        R *p = pool;
        for (size_t g = 0; g < G; g++) {
            int64_t n0, cnt;
            plstm_dag_graph_range(b->dag, (int64_t)g, &n0, &cnt, NULL, NULL, NULL, NULL);
            for (int j = 0; j < Hd; j++) {
                double s = 0;
                for (int64_t n = n0; n < n0 + cnt; n++)
                    s += (double)h[(size_t)n * Hd + j];
                p[g * Hd + j] = (R)(sum || cnt == 0 ? s : s / (double)cnt);
            }
        }
    });
    st = plstm_linear_forward(ctx, dt, (int)G, Hd, Hd, pool, gl_cat(params, esz, M->dec0_w),
                              gl_cat(params, esz, M->dec0_b), z1);
    if (st != PLSTM_OK)
        goto done;
    void *rl = malloc(G * (size_t)Hd * esz + 1);
    if (!rl) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, GM " forward: cannot allocate scratch");
        goto done;
    }
    GL_REAL(dt, {
        const R *z = z1;
        R *r = rl;
        for (size_t i = 0; i < G * (size_t)Hd; i++)
            r[i] = z[i] > 0 ? z[i] : 0;
    });
    st = plstm_linear_forward(ctx, dt, (int)G, Hd, M->cfg.num_classes, rl,
                              gl_cat(params, esz, M->dec2_w), gl_cat(params, esz, M->dec2_b),
                              logits);
    free(rl);
done:
    free(own);
    free(enc);
    return st;
}

plstm_status plstm_graph_model_backward(plstm_context *ctx, const plstm_graph_model *M,
                                        plstm_dtype dt, const void *params,
                                        const plstm_graph_model_input *in, const void *acts,
                                        const void *dlogits, void *grads)
{
    PLSTM_TRY(sl_check(ctx, dt, GM " backward"));
    PLSTM_TRY(check_input(M, in, GM " backward"));
    PLSTM_CHECK_ARG(params && acts && dlogits && grads, GM " backward: NULL argument");
    const plstm_graph_batch *b = any_batch(in);
    const size_t N = (size_t)b->num_nodes, E = (size_t)b->num_edges, G = (size_t)b->num_graphs;
    const int Hd = M->cfg.hidden_dim, edge = M->cfg.layer_kind == PLSTM_GRAPH_LAYER_EDGE;
    const size_t esz = plstm_dtype_size(dt), NH = N * (size_t)Hd;
    gm_layout l;
    layout_make(M, in, &l);
    void *buf = calloc(2 * NH + (edge ? E * (size_t)Hd : 0) + 3 * G * (size_t)Hd + 1, esz);
    if (!buf)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, GM " backward: cannot allocate scratch");
    void *dh = buf, *dh2 = gl_at(buf, esz, NH), *df = gl_at(buf, esz, 2 * NH);
    void *rl = gl_at(buf, esz, 2 * NH + (edge ? E * (size_t)Hd : 0));
    void *dr = gl_at(rl, esz, G * (size_t)Hd), *dp = gl_at(dr, esz, G * (size_t)Hd);
    const void *z1 = gl_cat(acts, esz, l.z1);
    GL_REAL(dt, {
        const R *z = z1;
        R *r = rl;
        for (size_t i = 0; i < G * (size_t)Hd; i++)
            r[i] = z[i] > 0 ? z[i] : 0;
    });
    plstm_status st = plstm_linear_backward(ctx, dt, (int)G, Hd, M->cfg.num_classes, rl,
                                            gl_cat(params, esz, M->dec2_w), dlogits, dr,
                                            gl_at(grads, esz, M->dec2_w),
                                            gl_at(grads, esz, M->dec2_b));
    GL_REAL(dt, {
        const R *z = z1;
        R *d = dr;
        for (size_t i = 0; i < G * (size_t)Hd; i++)
            d[i] = z[i] > 0 ? d[i] : 0;
    });
    if (st == PLSTM_OK)
        st = plstm_linear_backward(ctx, dt, (int)G, Hd, Hd, gl_cat(acts, esz, l.pool),
                                   gl_cat(params, esz, M->dec0_w), dr, dp,
                                   gl_at(grads, esz, M->dec0_w), gl_at(grads, esz, M->dec0_b));
    if (st != PLSTM_OK)
        goto done;
    const int sum = M->cfg.sum_pooling;
    GL_REAL(dt, {
        const R *p = dp;
        R *d = dh;
        for (size_t g = 0; g < G; g++) {
            int64_t n0, cnt;
            plstm_dag_graph_range(b->dag, (int64_t)g, &n0, &cnt, NULL, NULL, NULL, NULL);
            const double sc = sum || cnt == 0 ? 1.0 : 1.0 / (double)cnt;
            for (int64_t n = n0; n < n0 + cnt; n++)
                for (int j = 0; j < Hd; j++)
                    d[(size_t)n * Hd + j] = (R)(sc * (double)p[g * Hd + j]);
        }
    });
    for (int i = M->nb - 1; i >= 0 && st == PLSTM_OK; i--) {
        st = plstm_graph_postup_backward(ctx, &M->blocks[i], dt, params, block_batch(M, in, i),
                                         gl_cat(acts, esz, l.h[i]),
                                         edge ? gl_cat(acts, esz, l.f) : NULL,
                                         gl_cat(acts, esz, l.ba[i]), dh, dh2, edge ? df : NULL,
                                         grads);
        void *t = dh;
        dh = dh2, dh2 = t;
    }
    if (st != PLSTM_OK)
        goto done;
    if (edge)
        GL_REAL(dt, {
            const R *g = df;
            R *d = dh;
            for (size_t e = 0; e < E; e++) {
                int64_t u, v;
                plstm_dag_edge(b->dag, (int64_t)e, &u, &v, NULL);
                for (int j = 0; j < Hd; j++) {
                    d[(size_t)u * Hd + j] += (R)0.5 * g[e * Hd + j];
                    d[(size_t)v * Hd + j] += (R)0.5 * g[e * Hd + j];
                }
            }
        });
    if (N)
        st = plstm_linear_backward(ctx, dt, (int)N, M->cfg.node_dim, Hd, in->x, NULL, dh, NULL,
                                   gl_at(grads, esz, M->enc_w), gl_at(grads, esz, M->enc_b));
done:
    free(buf);
    return st;
}
