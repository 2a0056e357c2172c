/* Graph pLSTM layers (plstm-math.md §6.3, §6.4): the common path (Q/K/V
 * projections, direct gate, the batched DAG core, multi-head RMSNorm with the
 * heads on axis 0, out projection) and the node-wise gates of §6.3. The
 * edge-feature gates are in graph_edge_layer.c.
 *
 * Layout: projections run on node rows [N, H·K]; the core wants head-major
 * [H, N, K], so rows are transposed in and out (plain row copies). The core's
 * gate tensors are per edge s, m [H, E], per arc t [H, A] and per node d
 * [H, N] in the batch's global numbering. Saved for backward (acts): q, k, v,
 * s, m, t, d, the raw transitions, the core output (transposed to [N, H·V])
 * and the normalized output.
 *
 * Speed (batches of small graphs on few cores): q, k, v and the direct gate
 * are one pass over x (column segments of one [N, P] output); the Linears
 * split their rows over the OpenMP team with BLAS single-threaded for the
 * whole layer call, since idle OpenBLAS threads spinning next to the team
 * cost more than they give on such sizes. */
#include "layers/graph_layer_internal.h"
#include "layers/sublayer_impl.h"

#include <stdlib.h>

#define GL "graph layer"

plstm_graph_layer_config plstm_graph_layer_config_default(plstm_graph_layer_kind kind,
                                                          int input_dim, int num_heads,
                                                          plstm_graph_mode mode)
{
    plstm_graph_layer_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.mode = mode;
    c.input_dim = input_dim;
    c.num_heads = num_heads;
    c.bias = kind == PLSTM_GRAPH_LAYER_EDGE;
    c.out = 1;
    c.mhnorm_eps = 1e-5;
    c.max_edges = 4;
    c.slots = PLSTM_GRAPH_SLOTS_INTENDED;
    c.edge_input_dim = kind == PLSTM_GRAPH_LAYER_EDGE ? input_dim : 0;
    c.q8 = 0;
    c.algo = PLSTM_ALGO_AUTO;
    return c;
}

/* ---- declaration and initialization ---------------------------------------- */

static plstm_status decl_linear(plstm_params *p, const char *prefix, const char *name, int out,
                                int in, int bias, size_t *w, size_t *b)
{
    char full[PLSTM_PARAM_NAME_MAX];
    const int64_t sw[2] = {out, in}, sb[1] = {out};
    snprintf(full, sizeof full, "%s.weight", name);
    PLSTM_TRY(sl_declare(p, prefix, full, 2, sw, 0, w));
    *b = PLSTM_NO_PARAM;
    if (bias) {
        snprintf(full, sizeof full, "%s.bias", name);
        PLSTM_TRY(sl_declare(p, prefix, full, 1, sb, PLSTM_PARAM_NO_DECAY, b));
    }
    return PLSTM_OK;
}

plstm_status plstm_graph_layer_declare(plstm_graph_layer *L, const plstm_graph_layer_config *cfg,
                                       plstm_params *p, const char *prefix)
{
    PLSTM_CHECK_ARG(L && cfg && p, GL " declare: NULL argument");
    const int D = cfg->input_dim, H = cfg->num_heads;
    PLSTM_CHECK_ARG(D >= 1 && H >= 1, GL ": input_dim %d and num_heads %d must be >= 1", D, H);
    const int K = cfg->qk_head_dim > 0 ? cfg->qk_head_dim : D / H;
    const int V = cfg->hv_head_dim > 0 ? cfg->hv_head_dim : D / H;
    PLSTM_CHECK_ARG(K >= 1 && V >= 1, GL ": head dims K %d, V %d must be >= 1", K, V);
    PLSTM_CHECK_ARG(cfg->kind == PLSTM_GRAPH_LAYER_NODEWISE || cfg->kind == PLSTM_GRAPH_LAYER_EDGE,
                    GL ": unknown kind %d", (int)cfg->kind);
    PLSTM_CHECK_ARG(cfg->mode == PLSTM_GRAPH_MODE_P || cfg->mode == PLSTM_GRAPH_MODE_D,
                    GL ": unknown mode %d", (int)cfg->mode);
    PLSTM_CHECK_ARG(cfg->mhnorm_eps >= 0, GL ": mhnorm_eps must be >= 0");
    const int edge = cfg->kind == PLSTM_GRAPH_LAYER_EDGE;
    const int E = edge ? 0 : cfg->max_edges, De = cfg->edge_input_dim;
    PLSTM_CHECK_ARG(edge || (E >= 1 && E <= 64), GL ": max_edges %d must be in 1..64", E);
    PLSTM_CHECK_ARG(!edge || De >= 1, GL ": edge_input_dim %d must be >= 1", De);
    PLSTM_CHECK_ARG((double)H * (E > 0 ? E * E : 1) * D < 2e9 && (double)H * K * D < 2e9,
                    GL ": sizes too large");
    memset(L, 0, sizeof *L);
    L->cfg = *cfg;
    L->K = K, L->V = V, L->HK = H * K, L->HV = H * V, L->E = E;
    const int b = cfg->bias;
    PLSTM_TRY(decl_linear(p, prefix, "query", L->HK, D, b, &L->q_w, &L->q_b));
    PLSTM_TRY(decl_linear(p, prefix, "key", L->HK, D, b, &L->k_w, &L->k_b));
    PLSTM_TRY(decl_linear(p, prefix, "value_", L->HV, D, b, &L->v_w, &L->v_b));
    if (edge) {
        PLSTM_TRY(decl_linear(p, prefix, "source", H, D + De, 1, &L->s_w, &L->s_b));
        PLSTM_TRY(decl_linear(p, prefix, "transition", H, 2 * De + D, 1, &L->t_w, &L->t_b));
        PLSTM_TRY(decl_linear(p, prefix, "mark", H, D + De, 1, &L->m_w, &L->m_b));
    } else {
        PLSTM_TRY(decl_linear(p, prefix, "source", H * E, D, 1, &L->s_w, &L->s_b));
        PLSTM_TRY(decl_linear(p, prefix, "transition", H * E * E, D, 1, &L->t_w, &L->t_b));
        PLSTM_TRY(decl_linear(p, prefix, "mark", H * E, D, 1, &L->m_w, &L->m_b));
    }
    PLSTM_TRY(decl_linear(p, prefix, "direct", H, D, 1, &L->d_w, &L->d_b));
    const int64_t sn[2] = {H, V};
    PLSTM_TRY(sl_declare(p, prefix, "mhnorm.scale", 2, sn, PLSTM_PARAM_NO_DECAY, &L->norm));
    L->o_w = L->o_b = PLSTM_NO_PARAM;
    if (cfg->out)
        PLSTM_TRY(decl_linear(p, prefix, "out", D, L->HV, b, &L->o_w, &L->o_b));
    return PLSTM_OK;
}

static void fill(void *params, plstm_dtype dt, size_t off, size_t n, double v)
{
    for (size_t i = 0; off != PLSTM_NO_PARAM && i < n; i++)
        sl_set(params, dt, off + i, v);
}

static void small_init(void *params, plstm_dtype dt, size_t off, size_t n, int fan, sl_rng *r)
{
    const double sigma = 1.0 / sqrt(2.5 * fan);
    for (size_t i = 0; i < n; i++)
        sl_set(params, dt, off + i, sigma * sl_rng_normal(r));
}

/* torch.nn.Linear's default bias init U(±1/sqrt(fan_in)). */
static void uniform_init(void *params, plstm_dtype dt, size_t off, size_t n, int fan, sl_rng *r)
{
    const double bound = 1.0 / sqrt((double)fan);
    for (size_t i = 0; off != PLSTM_NO_PARAM && i < n; i++)
        sl_set(params, dt, off + i,
               bound * (2.0 * (double)(sl_rng_u64(r) >> 11) * 0x1.0p-53 - 1.0));
}

plstm_status plstm_graph_layer_init(const plstm_graph_layer *L, void *params, plstm_dtype dtype,
                                    uint64_t seed)
{
    PLSTM_CHECK_ARG(L && params, GL " init: NULL argument");
    PLSTM_CHECK_ARG(dtype == PLSTM_F32 || dtype == PLSTM_F64, GL " init: F32 or F64");
    const int D = L->cfg.input_dim, H = L->cfg.num_heads;
    const int edge = L->cfg.kind == PLSTM_GRAPH_LAYER_EDGE;
    const int De = L->cfg.edge_input_dim, E = L->E;
    sl_rng r = {.s = seed ^ 0x6A09E667F3BCC909ull, .has_spare = 0, .spare = 0};
    small_init(params, dtype, L->q_w, (size_t)L->HK * D, D, &r);
    small_init(params, dtype, L->k_w, (size_t)L->HK * D, D, &r);
    small_init(params, dtype, L->v_w, (size_t)L->HV * D, D, &r);
    if (L->o_w != PLSTM_NO_PARAM)
        small_init(params, dtype, L->o_w, (size_t)D * L->HV, L->HV, &r);
    if (edge) { /* the reference's reset skips these biases: torch default */
        uniform_init(params, dtype, L->q_b, (size_t)L->HK, D, &r);
        uniform_init(params, dtype, L->k_b, (size_t)L->HK, D, &r);
        uniform_init(params, dtype, L->v_b, (size_t)L->HV, D, &r);
        uniform_init(params, dtype, L->o_b, (size_t)D, L->HV, &r);
    } else {
        fill(params, dtype, L->q_b, (size_t)L->HK, 0.0);
        fill(params, dtype, L->k_b, (size_t)L->HK, 0.0);
        fill(params, dtype, L->v_b, (size_t)L->HV, 0.0);
        fill(params, dtype, L->o_b, (size_t)D, 0.0);
    }
    const size_t ns = edge ? (size_t)H : (size_t)H * E, nt = edge ? (size_t)H : (size_t)H * E * E;
    const size_t ins = edge ? (size_t)(D + De) : (size_t)D;
    const size_t tin = edge ? (size_t)(2 * De + D) : (size_t)D;
    fill(params, dtype, L->s_w, ns * ins, 0.0);
    fill(params, dtype, L->m_w, ns * ins, 0.0);
    fill(params, dtype, L->t_w, nt * tin, 0.0);
    fill(params, dtype, L->d_w, (size_t)H * D, 0.0);
    fill(params, dtype, L->s_b, ns, -5.0);
    fill(params, dtype, L->m_b, ns, -5.0);
    fill(params, dtype, L->d_b, (size_t)H, -5.0);
    if (edge) {
        for (size_t i = 0; i < nt; i++)
            sl_set(params, dtype, L->t_b + i, 10.0 * sl_rng_normal(&r));
    } else {
        for (int h = 0; h < H; h++)
            for (int i = 0; i < E; i++)
                for (int j = 0; j < E; j++)
                    sl_set(params, dtype, L->t_b + ((size_t)h * E + i) * E + j, i == j ? 1.0 : 0.0);
    }
    fill(params, dtype, L->norm, (size_t)L->HV, 1.0);
    return PLSTM_OK;
}

/* ---- activation layout ------------------------------------------------------ */

typedef struct gl_layout {
    size_t q, k, v, s, m, t, d, traw, yt, yn, total;
} gl_layout;

static void layout_make(const plstm_graph_layer *L, size_t N, size_t E, size_t A, gl_layout *l)
{
    const size_t H = (size_t)L->cfg.num_heads, Es = (size_t)L->E;
    size_t o = 0;
    l->q = o, o += N * L->HK;
    l->k = o, o += N * L->HK;
    l->v = o, o += N * L->HV;
    l->s = o, o += H * E;
    l->m = o, o += H * E;
    l->t = o, o += H * A;
    l->d = o, o += H * N;
    l->traw = o, o += L->cfg.kind == PLSTM_GRAPH_LAYER_EDGE ? A * H : N * H * Es * Es;
    l->yt = o, o += N * L->HV;
    l->yn = o, o += L->cfg.out ? N * L->HV : 0;
    l->total = o;
}

size_t plstm_graph_layer_activation_size(const plstm_graph_layer *L, const plstm_graph_batch *b)
{
    if (!L || !b)
        return 0;
    gl_layout l;
    layout_make(L, (size_t)b->num_nodes, (size_t)b->num_edges, (size_t)b->num_arcs, &l);
    return l.total;
}

plstm_status gl_arcs(const plstm_graph_batch *b, int64_t **from, int64_t **to)
{
    const int64_t A = b->num_arcs;
    *from = malloc((size_t)(A ? A : 1) * sizeof **from);
    *to = malloc((size_t)(A ? A : 1) * sizeof **to);
    if (!*from || !*to) {
        free(*from), free(*to);
        *from = *to = NULL;
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, GL ": cannot allocate %lld arcs",
                          (long long)A);
    }
    for (int64_t a = 0; a < A; a++)
        PLSTM_TRY(plstm_dag_arc(b->dag, a, &(*from)[a], &(*to)[a]));
    return PLSTM_OK;
}

/* ---- linear maps ------------------------------------------------------------ */

plstm_status gl_linear_fw(plstm_context *ctx, plstm_dtype dt, int n, int in, int out,
                          const void *x, const void *W, const void *b, void *y)
{
    return n > 0 ? plstm_linear_multi_forward(ctx, dt, n, in, 1, &out, &W, &b, x, y) : PLSTM_OK;
}

plstm_status gl_linear_bw(plstm_context *ctx, plstm_dtype dt, int n, int in, int out,
                          const void *x, const void *W, const void *dy, void *dx, void *dW,
                          void *db)
{
    return n > 0 ? plstm_linear_multi_backward(ctx, dt, n, in, 1, &out, &W, x, dy, dx, &dW, &db)
                 : PLSTM_OK;
}

/* Linear on n rows; nothing to do for n = 0. */
static plstm_status lin_fw(plstm_context *ctx, plstm_dtype dt, size_t n, int in, int out,
                           const void *x, const void *params, size_t w, size_t b, void *y)
{
    if (!n)
        return PLSTM_OK;
    const size_t e = plstm_dtype_size(dt);
    return gl_linear_fw(ctx, dt, (int)n, in, out, x, gl_cat(params, e, w),
                        b == PLSTM_NO_PARAM ? NULL : gl_cat(params, e, b), y);
}

static plstm_status lin_bw(plstm_context *ctx, plstm_dtype dt, size_t n, int in, int out,
                           const void *x, const void *params, size_t w, size_t b, const void *dy,
                           void *dx, void *grads)
{
    if (!n)
        return PLSTM_OK;
    const size_t e = plstm_dtype_size(dt);
    return gl_linear_bw(ctx, dt, (int)n, in, out, x, gl_cat(params, e, w), dy, dx,
                        gl_at(grads, e, w), b == PLSTM_NO_PARAM ? NULL : gl_at(grads, e, b));
}

/* ---- node-wise gates (§6.3) ------------------------------------------------- */

/* Slot of edge e's source / mark gate and of arc (f -> e)'s transition (i, j). */
static int64_t src_slot(const plstm_graph_layer *L, const plstm_graph_batch *b, int64_t e)
{
    return L->cfg.slots == PLSTM_GRAPH_SLOTS_REFERENCE ? b->in_slot[e] : b->out_slot[e];
}
static int64_t mark_slot(const plstm_graph_layer *L, const plstm_graph_batch *b, int64_t e)
{
    return L->cfg.slots == PLSTM_GRAPH_SLOTS_REFERENCE ? b->out_slot[e] : b->in_slot[e];
}
static void arc_slots(const plstm_graph_layer *L, const plstm_graph_batch *b, int64_t f, int64_t e,
                      int64_t *i, int64_t *j)
{
    if (L->cfg.slots == PLSTM_GRAPH_SLOTS_REFERENCE)
        *i = b->out_slot[f], *j = b->in_slot[e];
    else
        *i = b->in_slot[f], *j = b->out_slot[e];
}

/* Transition (i, j) of node n, head h from the raw ones [N, H, Es, Es]: P
 * mode masks rows i >= indegree(n) and divides each row by 0.5 + Σ|row|; D
 * mode tanh. Only the entries the arcs use are formed. */
static double node_transition(const plstm_graph_layer *L, const plstm_graph_batch *b,
                              const double *row, int64_t n, int64_t i, int64_t j)
{
    const size_t Es = (size_t)L->E;
    if (L->cfg.mode != PLSTM_GRAPH_MODE_P)
        return tanh(row[j]);
    if (i >= b->indegree[n])
        return 0.0;
    double sum = 0.5;
    for (size_t k = 0; k < Es; k++)
        sum += fabs(row[k]);
    return row[j] / sum;
}

/* dT [N, H, Es, Es] -> d raw (in place). Rows without gradient stay 0. */
static void node_transitions_bw(const plstm_graph_layer *L, plstm_dtype dt,
                                const plstm_graph_batch *b, const void *raw, void *dT)
{
    const size_t N = (size_t)b->num_nodes, H = (size_t)L->cfg.num_heads, Es = (size_t)L->E;
    const int pm = L->cfg.mode == PLSTM_GRAPH_MODE_P;
    GL_REAL(dt, {
        const R *r = raw;
        R *g = dT;
        for (size_t n = 0; n < N; n++)
            for (size_t h = 0; h < H; h++)
                for (size_t i = 0; i < Es; i++) {
                    const size_t o = ((n * H + h) * Es + i) * Es;
                    int any = 0;
                    for (size_t j = 0; j < Es; j++)
                        any |= g[o + j] != 0;
                    if (!any)
                        continue;
                    if (!pm) {
                        for (size_t j = 0; j < Es; j++) {
                            if (g[o + j] == 0)
                                continue;
                            const double th = tanh((double)r[o + j]);
                            g[o + j] = (R)((double)g[o + j] * (1.0 - th * th));
                        }
                    } else if ((int64_t)i >= b->indegree[n]) {
                        for (size_t j = 0; j < Es; j++)
                            g[o + j] = 0;
                    } else {
                        double sum = 0.5, dot = 0;
                        for (size_t j = 0; j < Es; j++) {
                            sum += fabs((double)r[o + j]);
                            dot += (double)g[o + j] * (double)r[o + j];
                        }
                        for (size_t j = 0; j < Es; j++) {
                            const double rj = (double)r[o + j];
                            const double sg = rj > 0 ? 1.0 : rj < 0 ? -1.0 : 0.0;
                            g[o + j] = (R)((double)g[o + j] / sum - sg * dot / (sum * sum));
                        }
                    }
                }
    });
}

static plstm_status nodewise_gates_forward(plstm_context *ctx, const plstm_graph_layer *L,
                                           plstm_dtype dt, const void *params,
                                           const plstm_graph_batch *b, const int64_t *afrom,
                                           const int64_t *ato, const void *x, void *s, void *m,
                                           void *t, void *traw)
{
    const size_t N = (size_t)b->num_nodes, E = (size_t)b->num_edges, A = (size_t)b->num_arcs;
    const int D = L->cfg.input_dim, H = L->cfg.num_heads, Es = L->E;
    const size_t esz = plstm_dtype_size(dt);
    const size_t HE = (size_t)H * Es, HEE = HE * Es;
    void *w = malloc((N * HEE > 0 ? N * HEE : 1) * esz);
    if (!w)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, GL ": cannot allocate gate scratch");
    plstm_status st = PLSTM_OK;
    const plstm_dag *g = b->dag;
    /* source at the tail, mark at the head */
    for (int pass = 0; pass < 2 && st == PLSTM_OK; pass++) {
        const size_t wo = pass ? L->m_w : L->s_w, bo = pass ? L->m_b : L->s_b;
        st = lin_fw(ctx, dt, N, D, (int)HE, x, params, wo, bo, w);
        if (st != PLSTM_OK)
            break;
        GL_REAL(dt, { /* sigmoid of the used slots only */
            const R *S = w;
            R *out = pass ? m : s;
            for (size_t e = 0; e < E; e++) {
                int64_t tl, hd;
                plstm_dag_edge(g, (int64_t)e, &tl, &hd, NULL);
                const int64_t node = pass ? hd : tl;
                const int64_t slot = pass ? mark_slot(L, b, (int64_t)e) : src_slot(L, b, (int64_t)e);
                for (int h = 0; h < H; h++) {
                    const double v = (double)S[(size_t)node * HE + (size_t)h * Es + slot];
                    out[(size_t)h * E + e] = (R)(1.0 / (1.0 + exp(-v)));
                }
            }
        });
    }
    if (st == PLSTM_OK)
        st = lin_fw(ctx, dt, N, D, (int)HEE, x, params, L->t_w, L->t_b, traw);
    if (st == PLSTM_OK) {
        GL_REAL(dt, {
            const R *T = traw;
            R *out = t;
            double row[64];
            for (size_t a = 0; a < A; a++) {
                int64_t tl, i, j;
                plstm_dag_edge(g, ato[a], &tl, NULL, NULL);
                arc_slots(L, b, afrom[a], ato[a], &i, &j);
                for (int h = 0; h < H; h++) {
                    const R *r = T + (size_t)tl * HEE + ((size_t)h * Es + (size_t)i) * Es;
                    for (int k = 0; k < Es; k++)
                        row[k] = (double)r[k];
                    out[(size_t)h * A + a] = (R)node_transition(L, b, row, tl, i, j);
                }
            }
        });
    }
    free(w);
    return st;
}

/* Adds the gates' input gradient to dx; accumulates parameter gradients. */
static plstm_status nodewise_gates_backward(plstm_context *ctx, const plstm_graph_layer *L,
                                            plstm_dtype dt, const void *params,
                                            const plstm_graph_batch *b, const int64_t *afrom,
                                            const int64_t *ato, const void *x, const void *s,
                                            const void *m, const void *traw, const void *ds,
                                            const void *dm, const void *dtr, void *dx,
                                            void *grads)
{
    const size_t N = (size_t)b->num_nodes, E = (size_t)b->num_edges, A = (size_t)b->num_arcs;
    const int D = L->cfg.input_dim, H = L->cfg.num_heads, Es = L->E;
    const size_t esz = plstm_dtype_size(dt);
    const size_t HE = (size_t)H * Es, HEE = HE * Es;
    void *w = calloc(N * HEE > 0 ? N * HEE : 1, esz);
    void *dxt = malloc((N * D > 0 ? N * D : 1) * esz);
    plstm_status st = PLSTM_OK;
    if (!w || !dxt) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, GL ": cannot allocate gate scratch");
        goto done;
    }
    const plstm_dag *g = b->dag;
    for (int pass = 0; pass < 2 && st == PLSTM_OK; pass++) {
        memset(w, 0, N * HE * esz);
        GL_REAL(dt, {
            R *dS = w;
            const R *val = pass ? m : s, *dv = pass ? dm : ds;
            for (size_t e = 0; e < E; e++) {
                int64_t tl, hd;
                plstm_dag_edge(g, (int64_t)e, &tl, &hd, NULL);
                const int64_t node = pass ? hd : tl;
                const int64_t slot = pass ? mark_slot(L, b, (int64_t)e) : src_slot(L, b, (int64_t)e);
                for (int h = 0; h < H; h++) {
                    const R sv = val[(size_t)h * E + e];
                    dS[(size_t)node * HE + (size_t)h * Es + slot] +=
                        dv[(size_t)h * E + e] * sv * (1 - sv);
                }
            }
        });
        const size_t wo = pass ? L->m_w : L->s_w, bo = pass ? L->m_b : L->s_b;
        st = lin_bw(ctx, dt, N, D, (int)HE, x, params, wo, bo, w, dxt, grads);
        if (st == PLSTM_OK && N)
            st = plstm_axpy(ctx, dt, N * D, 1.0, dxt, dx);
    }
    if (st != PLSTM_OK)
        goto done;
    memset(w, 0, N * HEE * esz);
    GL_REAL(dt, {
        R *dT = w;
        const R *gt = dtr;
        for (size_t a = 0; a < A; a++) {
            int64_t tl, i, j;
            plstm_dag_edge(g, ato[a], &tl, NULL, NULL);
            arc_slots(L, b, afrom[a], ato[a], &i, &j);
            for (int h = 0; h < H; h++)
                dT[(size_t)tl * HEE + (size_t)h * Es * Es + (size_t)i * Es + (size_t)j] +=
                    gt[(size_t)h * A + a];
        }
    });
    node_transitions_bw(L, dt, b, traw, w);
    st = lin_bw(ctx, dt, N, D, (int)HEE, x, params, L->t_w, L->t_b, w, dxt, grads);
    if (st == PLSTM_OK && N)
        st = plstm_axpy(ctx, dt, N * D, 1.0, dxt, dx);
done:
    free(w);
    free(dxt);
    return st;
}

/* ---- forward / backward ----------------------------------------------------- */

static plstm_status check_call(plstm_context *ctx, const plstm_graph_layer *L, plstm_dtype dt,
                               const void *params, const plstm_graph_batch *b, const void *x,
                               const void *edge_x, const char *what)
{
    PLSTM_TRY(sl_check(ctx, dt, what));
    PLSTM_CHECK_ARG(L && params && b && b->dag && x, "%s: NULL layer, parameters, batch or x",
                    what);
    PLSTM_CHECK_ARG(L->cfg.kind != PLSTM_GRAPH_LAYER_EDGE || edge_x || b->num_edges == 0,
                    "%s: the edge layer needs edge features", what);
    PLSTM_CHECK_ARG(b->num_nodes < 2000000000 && b->num_edges < 2000000000 &&
                        b->num_arcs < 2000000000,
                    "%s: batch too large", what);
    if (L->cfg.kind == PLSTM_GRAPH_LAYER_NODEWISE && b->max_degree > L->E)
        return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT,
                          "%s: a node has degree %lld, more than max_edges = %d slots", what,
                          (long long)b->max_degree, L->E);
    return PLSTM_OK;
}

static plstm_graph_desc core_desc(const plstm_graph_layer *L, plstm_dtype dt)
{
    plstm_graph_desc d = {.dtype = dt, .H = L->cfg.num_heads, .K = L->K, .V = L->V,
                          .algo = L->cfg.algo, .max_workspace = 0};
    return d;
}

/* q, k, v and the direct gate all project x: one pass x -> [N, P] with
 * P = 2·HK + HV + H, column segments q | k | v | d (plstm_linear_multi_*). */
static int proj_width(const plstm_graph_layer *L) { return 2 * L->HK + L->HV + L->cfg.num_heads; }

static void proj_segments(const plstm_graph_layer *L, int rows[4], size_t wo[4], size_t bo[4])
{
    rows[0] = rows[1] = L->HK, rows[2] = L->HV, rows[3] = L->cfg.num_heads;
    wo[0] = L->q_w, wo[1] = L->k_w, wo[2] = L->v_w, wo[3] = L->d_w;
    bo[0] = L->q_b, bo[1] = L->k_b, bo[2] = L->v_b, bo[3] = L->d_b;
}

/* dst[h, n, :] = src[n, c0 + h·hd : c0 + (h+1)·hd] for rows of width P (and back). */
static void gather_heads(size_t esz, size_t N, size_t H, size_t hd, size_t P, size_t c0,
                         const void *src, void *dst)
{
    for (size_t n = 0; n < N; n++)
        for (size_t h = 0; h < H; h++)
            memcpy((char *)dst + (h * N + n) * hd * esz,
                   (const char *)src + (n * P + c0 + h * hd) * esz, hd * esz);
}
static void scatter_heads(size_t esz, size_t N, size_t H, size_t hd, size_t P, size_t c0,
                          const void *src, void *dst)
{
    for (size_t n = 0; n < N; n++)
        for (size_t h = 0; h < H; h++)
            memcpy((char *)dst + (n * P + c0 + h * hd) * esz,
                   (const char *)src + (h * N + n) * hd * esz, hd * esz);
}

static plstm_status layer_forward(plstm_context *ctx, const plstm_graph_layer *L,
                                  plstm_dtype dtype, const void *params,
                                  const plstm_graph_batch *b, const void *x, const void *edge_x,
                                  void *y, void *acts)
{
    PLSTM_TRY(check_call(ctx, L, dtype, params, b, x, edge_x, GL " forward"));
    PLSTM_CHECK_ARG(y != NULL, GL " forward: NULL output");
    const size_t N = (size_t)b->num_nodes, E = (size_t)b->num_edges, A = (size_t)b->num_arcs;
    const size_t esz = plstm_dtype_size(dtype);
    const int D = L->cfg.input_dim, H = L->cfg.num_heads;
    gl_layout l;
    layout_make(L, N, E, A, &l);
    /* without acts everything lives in one scratch block of the same layout */
    const size_t P = (size_t)proj_width(L);
    void *own = acts ? NULL : malloc((l.total ? l.total : 1) * esz);
    void *w = malloc((N * P + 1) * esz);
    int64_t *afrom = NULL, *ato = NULL;
    plstm_status st = PLSTM_OK;
    if ((!acts && !own) || !w) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, GL " forward: cannot allocate scratch");
        goto done;
    }
    void *ac = acts ? acts : own;
    if ((st = gl_arcs(b, &afrom, &ato)) != PLSTM_OK)
        goto done;
    /* q, k, v: [N, H·K] -> [H, N, K]; d = sigmoid, [H, N] */
    if (N) {
        int rows[4];
        size_t wo[4], bo[4];
        proj_segments(L, rows, wo, bo);
        const void *W[4], *B[4];
        for (int i = 0; i < 4; i++)
            W[i] = gl_cat(params, esz, wo[i]),
            B[i] = bo[i] == PLSTM_NO_PARAM ? NULL : gl_cat(params, esz, bo[i]);
        if ((st = plstm_linear_multi_forward(ctx, dtype, (int)N, D, 4, rows, W, B, x, w)) !=
            PLSTM_OK)
            goto done;
        gather_heads(esz, N, (size_t)H, (size_t)L->K, P, 0, w, gl_at(ac, esz, l.q));
        gather_heads(esz, N, (size_t)H, (size_t)L->K, P, (size_t)L->HK, w, gl_at(ac, esz, l.k));
        gather_heads(esz, N, (size_t)H, (size_t)L->V, P, 2 * (size_t)L->HK, w,
                     gl_at(ac, esz, l.v));
        const size_t c0 = 2 * (size_t)L->HK + (size_t)L->HV;
        GL_REAL(dtype, {
            const R *pr = w;
            R *dd = gl_at(ac, esz, l.d);
            for (size_t n = 0; n < N; n++)
                for (int h = 0; h < H; h++)
                    dd[(size_t)h * N + n] = (R)(1.0 / (1.0 + exp(-(double)pr[n * P + c0 + h])));
        });
    }
    if (L->cfg.kind == PLSTM_GRAPH_LAYER_EDGE)
        st = gl_edge_gates_forward(ctx, L, dtype, params, b, afrom, ato, x, edge_x,
                                   gl_at(ac, esz, l.s), gl_at(ac, esz, l.m), gl_at(ac, esz, l.t),
                                   gl_at(ac, esz, l.traw));
    else
        st = nodewise_gates_forward(ctx, L, dtype, params, b, afrom, ato, x, gl_at(ac, esz, l.s),
                                    gl_at(ac, esz, l.m), gl_at(ac, esz, l.t),
                                    gl_at(ac, esz, l.traw));
    if (st != PLSTM_OK || N == 0)
        goto done;
    const plstm_graph_desc cd = core_desc(L, dtype);
    const plstm_graph_inputs in = {gl_at(ac, esz, l.q), gl_at(ac, esz, l.k), gl_at(ac, esz, l.v),
                                   gl_at(ac, esz, l.s), gl_at(ac, esz, l.t), gl_at(ac, esz, l.m),
                                   gl_at(ac, esz, l.d)};
    if ((st = plstm_graph_forward(ctx, &cd, b->dag, &in, w)) != PLSTM_OK)
        goto done;
    void *yt = gl_at(ac, esz, l.yt);
    gl_swap01(esz, (size_t)H, N, (size_t)L->V, w, yt);
    void *yn = L->cfg.out ? gl_at(ac, esz, l.yn) : y;
    st = plstm_norm_forward(ctx, dtype, PLSTM_NORM_RMS, (int)N, L->HV, H, L->cfg.mhnorm_eps, yt,
                            gl_cat(params, esz, L->norm), NULL, yn);
    if (st == PLSTM_OK && L->cfg.out)
        st = lin_fw(ctx, dtype, N, L->HV, D, yn, params, L->o_w, L->o_b, y);
done:
    free(own);
    free(w);
    free(afrom);
    free(ato);
    return st;
}

static plstm_status layer_backward(plstm_context *ctx, const plstm_graph_layer *L,
                                   plstm_dtype dtype, const void *params,
                                   const plstm_graph_batch *b, const void *x, const void *edge_x,
                                   const void *acts, const void *dy, void *dx, void *dedge_x,
                                   void *grads)
{
    PLSTM_TRY(check_call(ctx, L, dtype, params, b, x, edge_x, GL " backward"));
    PLSTM_CHECK_ARG(acts && dy && grads, GL " backward: NULL acts, dy or grads");
    const size_t N = (size_t)b->num_nodes, E = (size_t)b->num_edges, A = (size_t)b->num_arcs;
    const size_t esz = plstm_dtype_size(dtype);
    const int D = L->cfg.input_dim, H = L->cfg.num_heads;
    const int De = L->cfg.edge_input_dim;
    gl_layout l;
    layout_make(L, N, E, A, &l);
    /* gradient buffers of the core inputs, laid out like acts */
    void *g = malloc((l.traw + 1) * esz); /* q .. d; the core writes all of it */
    const size_t HW = (size_t)(L->HK > L->HV ? L->HK : L->HV), PW = (size_t)proj_width(L);
    const size_t n1 = N * PW; /* dP; also >= N·HV for the norm */
    void *w1 = malloc((n1 + 1) * esz), *w2 = malloc((N * HW + 1) * esz);
    void *dxo = dx ? NULL : malloc((N * D + 1) * esz);
    void *dex = (L->cfg.kind == PLSTM_GRAPH_LAYER_EDGE && !dedge_x)
                    ? malloc((E * (size_t)De + 1) * esz) : NULL;
    int64_t *afrom = NULL, *ato = NULL;
    plstm_status st = PLSTM_OK;
    if (!g || !w1 || !w2 || (!dx && !dxo) ||
        (L->cfg.kind == PLSTM_GRAPH_LAYER_EDGE && !dedge_x && !dex)) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, GL " backward: cannot allocate scratch");
        goto done;
    }
    if (!dx)
        dx = dxo;
    if (dex)
        dedge_x = dex;
    if ((st = gl_arcs(b, &afrom, &ato)) != PLSTM_OK)
        goto done;
    memset(dx, 0, N * D * esz);
    if (N) {
        /* out projection and norm: dyn [N, H·V] -> dyt -> core cotangent [H, N, V] */
        const void *dyn = dy;
        if (L->cfg.out) {
            st = lin_bw(ctx, dtype, N, L->HV, D, gl_cat(acts, esz, l.yn), params, L->o_w, L->o_b,
                        dy, w2, grads);
            dyn = w2;
        }
        if (st == PLSTM_OK)
            st = plstm_norm_backward(ctx, dtype, PLSTM_NORM_RMS, (int)N, L->HV, H,
                                     L->cfg.mhnorm_eps, gl_cat(acts, esz, l.yt),
                                     gl_cat(params, esz, L->norm), dyn, w1,
                                     gl_at(grads, esz, L->norm), NULL);
        if (st != PLSTM_OK)
            goto done;
        void *dyc = w2; /* [H, N, V] */
        gl_swap01(esz, N, (size_t)H, (size_t)L->V, w1, dyc);
        const plstm_graph_desc cd = core_desc(L, dtype);
        const plstm_graph_inputs in = {gl_cat(acts, esz, l.q), gl_cat(acts, esz, l.k),
                                       gl_cat(acts, esz, l.v), gl_cat(acts, esz, l.s),
                                       gl_cat(acts, esz, l.t), gl_cat(acts, esz, l.m),
                                       gl_cat(acts, esz, l.d)};
        const plstm_graph_grads gr = {gl_at(g, esz, l.q), gl_at(g, esz, l.k), gl_at(g, esz, l.v),
                                      gl_at(g, esz, l.s), gl_at(g, esz, l.t), gl_at(g, esz, l.m),
                                      gl_at(g, esz, l.d)};
        if ((st = plstm_graph_backward(ctx, &cd, b->dag, &in, dyc, &gr)) != PLSTM_OK)
            goto done;
        /* q, k, v and direct gate through the joint projection: dP [N, P] */
        const size_t P = (size_t)proj_width(L), c0 = 2 * (size_t)L->HK + (size_t)L->HV;
        char *dP = w1;
        scatter_heads(esz, N, (size_t)H, (size_t)L->K, P, 0, gl_cat(g, esz, l.q), dP);
        scatter_heads(esz, N, (size_t)H, (size_t)L->K, P, (size_t)L->HK, gl_cat(g, esz, l.k), dP);
        scatter_heads(esz, N, (size_t)H, (size_t)L->V, P, 2 * (size_t)L->HK, gl_cat(g, esz, l.v),
                      dP);
        GL_REAL(dtype, {
            R *dp = (R *)dP;
            const R *dv = gl_cat(acts, esz, l.d), *gd = gl_cat(g, esz, l.d);
            for (size_t n = 0; n < N; n++)
                for (int h = 0; h < H; h++) {
                    const R v = dv[(size_t)h * N + n];
                    dp[n * P + c0 + (size_t)h] = gd[(size_t)h * N + n] * v * (1 - v);
                }
        });
        int rows[4];
        size_t wo[4], bo[4];
        proj_segments(L, rows, wo, bo);
        const void *W[4];
        void *dW[4], *dB[4];
        for (int i = 0; i < 4; i++)
            W[i] = gl_cat(params, esz, wo[i]), dW[i] = gl_at(grads, esz, wo[i]),
            dB[i] = bo[i] == PLSTM_NO_PARAM ? NULL : gl_at(grads, esz, bo[i]);
        st = plstm_linear_multi_backward(ctx, dtype, (int)N, D, 4, rows, W, x, dP, dx, dW, dB);
    }
    if (st != PLSTM_OK)
        goto done;
    if (L->cfg.kind == PLSTM_GRAPH_LAYER_EDGE)
        st = gl_edge_gates_backward(ctx, L, dtype, params, b, afrom, ato, x, edge_x,
                                    gl_cat(acts, esz, l.s), gl_cat(acts, esz, l.m),
                                    gl_cat(acts, esz, l.traw), gl_at(g, esz, l.s),
                                    gl_at(g, esz, l.m), gl_at(g, esz, l.t), dx, dedge_x, grads);
    else
        st = nodewise_gates_backward(ctx, L, dtype, params, b, afrom, ato, x,
                                     gl_cat(acts, esz, l.s), gl_cat(acts, esz, l.m),
                                     gl_cat(acts, esz, l.traw), gl_at(g, esz, l.s),
                                     gl_at(g, esz, l.m), gl_at(g, esz, l.t), dx, grads);
done:
    free(g);
    free(w1);
    free(w2);
    free(dxo);
    free(dex);
    free(afrom);
    free(ato);
    return st;
}

plstm_status plstm_graph_layer_forward(plstm_context *ctx, const plstm_graph_layer *L,
                                       plstm_dtype dtype, const void *params,
                                       const plstm_graph_batch *b, const void *x,
                                       const void *edge_x, void *y, void *acts)
{
    return layer_forward(ctx, L, dtype, params, b, x, edge_x, y, acts);
}

plstm_status plstm_graph_layer_backward(plstm_context *ctx, const plstm_graph_layer *L,
                                        plstm_dtype dtype, const void *params,
                                        const plstm_graph_batch *b, const void *x,
                                        const void *edge_x, const void *acts, const void *dy,
                                        void *dx, void *dedge_x, void *grads)
{
    return layer_backward(ctx, L, dtype, params, b, x, edge_x, acts, dy, dx, dedge_x, grads);
}
