/* Gates of the edge-feature graph layer (plstm-math.md §6.4):
 *   s_e = sigmoid(Ws [x_tail(e); f_e] + bs),  m_e = sigmoid(Wm [x_head(e); f_e] + bm),
 *   t(e'->e) = Wt [f_e'; f_e; x_node] + bt, node = tail(e') (Q8, reference)
 *              or head(e') = tail(e) (the node between the edges);
 * P mode divides t by 0.5 + Σ |t| over the arcs into the same edge e, D mode
 * takes tanh. Each gate is computed as a sum of projections of its input's
 * parts (below), over all edges (arcs) of the batch at once. */
#include "layers/graph_layer_internal.h"

#include <stdlib.h>

#define GE "graph edge layer"

/* Every gate input is a concatenation, so each gate is a sum of per-part
 * projections: Px = x·Wxᵀ [N, 3H] (x parts of source, mark, transition)
 * and Pf = edge_x·Wfᵀ [E, 4H] (edge parts of source, mark, transition-in,
 * transition-out), then s_e = Px[tail] + Pf[e] + b etc. This does the same
 * multiply-adds as one Linear over gathered rows without building the
 * [A, 2·De + D] gathered matrix. */

typedef struct gate_parts {
    int64_t *tail, *head; /* [E] */
    void *wx, *wf;        /* [3H, D], [4H, De]: the weight parts, contiguous */
} gate_parts;

static void parts_free(gate_parts *g) { free(g->tail), free(g->head), free(g->wx), free(g->wf); }

static plstm_status parts_make(const plstm_graph_layer *L, plstm_dtype dt, const void *params,
                               const plstm_graph_batch *b, gate_parts *g)
{
    const size_t E = (size_t)b->num_edges, D = (size_t)L->cfg.input_dim;
    const size_t De = (size_t)L->cfg.edge_input_dim, H = (size_t)L->cfg.num_heads;
    const size_t esz = plstm_dtype_size(dt);
    g->tail = malloc((E + 1) * sizeof(int64_t));
    g->head = malloc((E + 1) * sizeof(int64_t));
    g->wx = malloc(3 * H * D * esz);
    g->wf = malloc(4 * H * De * esz);
    if (!g->tail || !g->head || !g->wx || !g->wf) {
        parts_free(g);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, GE ": cannot allocate gate scratch");
    }
    for (size_t e = 0; e < E; e++) {
        const plstm_status st = plstm_dag_edge(b->dag, (int64_t)e, &g->tail[e], &g->head[e], NULL);
        if (st != PLSTM_OK) {
            parts_free(g);
            return st;
        }
    }
    const char *ws = gl_cat(params, esz, L->s_w), *wm = gl_cat(params, esz, L->m_w);
    const char *wt = gl_cat(params, esz, L->t_w);
    const size_t rs = (D + De) * esz, rt = (2 * De + D) * esz; /* weight rows */
    char *wx = g->wx, *wf = g->wf;
    for (size_t h = 0; h < H; h++) {
        memcpy(wx + h * D * esz, ws + h * rs, D * esz);
        memcpy(wx + (H + h) * D * esz, wm + h * rs, D * esz);
        memcpy(wx + (2 * H + h) * D * esz, wt + h * rt + 2 * De * esz, D * esz);
        memcpy(wf + h * De * esz, ws + h * rs + D * esz, De * esz);
        memcpy(wf + (H + h) * De * esz, wm + h * rs + D * esz, De * esz);
        memcpy(wf + (2 * H + h) * De * esz, wt + h * rt, De * esz);
        memcpy(wf + (3 * H + h) * De * esz, wt + h * rt + De * esz, De * esz);
    }
    return PLSTM_OK;
}

/* y [n, out] = x [n, in] · Wᵀ (no bias); nothing to do for n = 0. */
static plstm_status mm(plstm_context *ctx, plstm_dtype dt, size_t n, size_t in, size_t out,
                       const void *x, const void *W, void *y)
{
    return n ? gl_linear_fw(ctx, dt, (int)n, (int)in, (int)out, x, W, NULL, y) : PLSTM_OK;
}

/* t [H, A] from traw [A, H]. */
static void normalize(const plstm_graph_layer *L, plstm_dtype dt, const plstm_graph_batch *b,
                      const void *traw, void *t)
{
    const size_t A = (size_t)b->num_arcs, H = (size_t)L->cfg.num_heads;
    const int64_t E = b->num_edges;
    const int pm = L->cfg.mode == PLSTM_GRAPH_MODE_P;
    GL_REAL(dt, {
        const R *r = traw;
        R *o = t;
        for (int64_t e = 0; e < E; e++) {
            int64_t a0 = 0, na = 0;
            plstm_dag_arc_range(b->dag, e, &a0, &na);
            for (size_t h = 0; h < H; h++) {
                double sum = 0.5;
                for (int64_t a = a0; a < a0 + na; a++)
                    sum += fabs((double)r[(size_t)a * H + h]);
                for (int64_t a = a0; a < a0 + na; a++) {
                    const double v = (double)r[(size_t)a * H + h];
                    o[h * A + (size_t)a] = (R)(pm ? v / sum : tanh(v));
                }
            }
        }
    });
}

/* dtraw [A, H] from dt [H, A]. */
static void normalize_bw(const plstm_graph_layer *L, plstm_dtype dt, const plstm_graph_batch *b,
                         const void *traw, const void *dtv, void *dtraw)
{
    const size_t A = (size_t)b->num_arcs, H = (size_t)L->cfg.num_heads;
    const int64_t E = b->num_edges;
    const int pm = L->cfg.mode == PLSTM_GRAPH_MODE_P;
    GL_REAL(dt, {
        const R *r = traw, *g = dtv;
        R *o = dtraw;
        for (int64_t e = 0; e < E; e++) {
            int64_t a0 = 0, na = 0;
            plstm_dag_arc_range(b->dag, e, &a0, &na);
            for (size_t h = 0; h < H; h++) {
                double sum = 0.5, dot = 0;
                for (int64_t a = a0; a < a0 + na; a++) {
                    sum += fabs((double)r[(size_t)a * H + h]);
                    dot += (double)g[h * A + (size_t)a] * (double)r[(size_t)a * H + h];
                }
                for (int64_t a = a0; a < a0 + na; a++) {
                    const double v = (double)r[(size_t)a * H + h], gv = (double)g[h * A + (size_t)a];
                    double d;
                    if (pm) {
                        const double sg = v > 0 ? 1.0 : v < 0 ? -1.0 : 0.0;
                        d = gv / sum - sg * dot / (sum * sum);
                    } else {
                        const double th = tanh(v);
                        d = gv * (1.0 - th * th);
                    }
                    o[(size_t)a * H + h] = (R)d;
                }
            }
        }
    });
}

plstm_status gl_edge_gates_forward(plstm_context *ctx, const plstm_graph_layer *L,
                                   plstm_dtype dt, const void *params,
                                   const plstm_graph_batch *b, const int64_t *afrom,
                                   const int64_t *ato, const void *x, const void *edge_x,
                                   void *s, void *m, void *t, void *traw)
{
    const size_t N = (size_t)b->num_nodes, E = (size_t)b->num_edges, A = (size_t)b->num_arcs;
    const size_t D = (size_t)L->cfg.input_dim, De = (size_t)L->cfg.edge_input_dim;
    const size_t H = (size_t)L->cfg.num_heads, esz = plstm_dtype_size(dt);
    gate_parts gp = {0};
    PLSTM_TRY(parts_make(L, dt, params, b, &gp));
    void *px = malloc((N * 3 * H + 1) * esz), *pf = malloc((E * 4 * H + 1) * esz);
    plstm_status st = PLSTM_OK;
    if (!px || !pf) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, GE ": cannot allocate gate projections");
        goto done;
    }
    if ((st = mm(ctx, dt, N, D, 3 * H, x, gp.wx, px)) != PLSTM_OK ||
        (st = mm(ctx, dt, E, De, 4 * H, edge_x, gp.wf, pf)) != PLSTM_OK)
        goto done;
    const int64_t *node = L->cfg.q8 ? b->arc_node_q8 : b->arc_node;
    GL_REAL(dt, {
        const R *X = px, *F = pf;
        const R *bs = gl_cat(params, esz, L->s_b), *bm = gl_cat(params, esz, L->m_b);
        const R *bt = gl_cat(params, esz, L->t_b);
        R *so = s, *mo = m, *tr = traw;
        for (size_t e = 0; e < E; e++)
            for (size_t h = 0; h < H; h++) {
                const R *fe = F + e * 4 * H;
                const R ps = X[(size_t)gp.tail[e] * 3 * H + h] + fe[h] + bs[h];
                const R pm = X[(size_t)gp.head[e] * 3 * H + H + h] + fe[H + h] + bm[h];
                so[h * E + e] = (R)(1.0 / (1.0 + exp(-(double)ps)));
                mo[h * E + e] = (R)(1.0 / (1.0 + exp(-(double)pm)));
            }
        for (size_t a = 0; a < A; a++)
            for (size_t h = 0; h < H; h++)
                tr[a * H + h] = F[(size_t)afrom[a] * 4 * H + 2 * H + h] +
                                F[(size_t)ato[a] * 4 * H + 3 * H + h] +
                                X[(size_t)node[a] * 3 * H + 2 * H + h] + bt[h];
    });
    normalize(L, dt, b, traw, t);
done:
    free(px);
    free(pf);
    parts_free(&gp);
    return st;
}

/* grads[off + r·stride + c0 + j] += W[r][j] for a [rows, w] block. */
static void add_block(plstm_dtype dt, void *grads, size_t off, size_t stride, size_t c0,
                      size_t rows, size_t w, const void *W)
{
    GL_REAL(dt, {
        R *o = (R *)grads + off;
        const R *in = W;
        for (size_t r = 0; r < rows; r++)
            for (size_t j = 0; j < w; j++)
                o[r * stride + c0 + j] += in[r * w + j];
    });
}

plstm_status gl_edge_gates_backward(plstm_context *ctx, const plstm_graph_layer *L,
                                    plstm_dtype dt, const void *params,
                                    const plstm_graph_batch *b, const int64_t *afrom,
                                    const int64_t *ato, const void *x, const void *edge_x,
                                    const void *s, const void *m, const void *traw,
                                    const void *ds, const void *dm, const void *dtv, void *dx,
                                    void *dedge_x, void *grads)
{
    const size_t N = (size_t)b->num_nodes, E = (size_t)b->num_edges, A = (size_t)b->num_arcs;
    const size_t D = (size_t)L->cfg.input_dim, De = (size_t)L->cfg.edge_input_dim;
    const size_t H = (size_t)L->cfg.num_heads, esz = plstm_dtype_size(dt);
    gate_parts gp = {0};
    PLSTM_TRY(parts_make(L, dt, params, b, &gp));
    /* dpx [N, 3H], dpf [E, 4H], dtraw [A, H], dwx [3H, D], dwf [4H, De], dxt [N, D] */
    const size_t nx = N * 3 * H, nf = E * 4 * H, nw = 3 * H * D + 4 * H * De;
    char *w = calloc(nx + nf + A * H + nw + N * D + 1, esz);
    plstm_status st = PLSTM_OK;
    if (!w) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, GE ": cannot allocate gate scratch");
        goto done;
    }
    void *dpx = w, *dpf = w + nx * esz, *dtraw = w + (nx + nf) * esz;
    void *dwx = w + (nx + nf + A * H) * esz, *dwf = w + (nx + nf + A * H + 3 * H * D) * esz;
    void *dxt = w + (nx + nf + A * H + nw) * esz;
    normalize_bw(L, dt, b, traw, dtv, dtraw);
    const int64_t *node = L->cfg.q8 ? b->arc_node_q8 : b->arc_node;
    GL_REAL(dt, {
        R *X = dpx, *F = dpf;
        R *gs = gl_at(grads, esz, L->s_b), *gm = gl_at(grads, esz, L->m_b);
        R *gt = gl_at(grads, esz, L->t_b);
        const R *sv = s, *mv = m, *dsv = ds, *dmv = dm, *dtr = dtraw;
        for (size_t e = 0; e < E; e++)
            for (size_t h = 0; h < H; h++) {
                const R a = sv[h * E + e], c = mv[h * E + e];
                const R gsv = dsv[h * E + e] * a * (1 - a), gmv = dmv[h * E + e] * c * (1 - c);
                X[(size_t)gp.tail[e] * 3 * H + h] += gsv;
                X[(size_t)gp.head[e] * 3 * H + H + h] += gmv;
                F[e * 4 * H + h] += gsv;
                F[e * 4 * H + H + h] += gmv;
                gs[h] += gsv;
                gm[h] += gmv;
            }
        for (size_t a = 0; a < A; a++)
            for (size_t h = 0; h < H; h++) {
                const R g = dtr[a * H + h];
                F[(size_t)afrom[a] * 4 * H + 2 * H + h] += g;
                F[(size_t)ato[a] * 4 * H + 3 * H + h] += g;
                X[(size_t)node[a] * 3 * H + 2 * H + h] += g;
                gt[h] += g;
            }
    });
    if (N) {
        st = gl_linear_bw(ctx, dt, (int)N, (int)D, (int)(3 * H), x, gp.wx, dpx, dxt, dwx,
                          NULL);
        if (st == PLSTM_OK)
            st = plstm_axpy(ctx, dt, N * D, 1.0, dxt, dx);
    }
    if (st == PLSTM_OK && E)
        st = gl_linear_bw(ctx, dt, (int)E, (int)De, (int)(4 * H), edge_x, gp.wf, dpf, dedge_x,
                          dwf, NULL);
    if (st != PLSTM_OK)
        goto done;
    const size_t rs = D + De, rt = 2 * De + D;
    const char *wxp = dwx, *wfp = dwf;
    add_block(dt, grads, L->s_w, rs, 0, H, D, wxp);
    add_block(dt, grads, L->m_w, rs, 0, H, D, wxp + H * D * esz);
    add_block(dt, grads, L->t_w, rt, 2 * De, H, D, wxp + 2 * H * D * esz);
    add_block(dt, grads, L->s_w, rs, D, H, De, wfp);
    add_block(dt, grads, L->m_w, rs, D, H, De, wfp + H * De * esz);
    add_block(dt, grads, L->t_w, rt, 0, H, De, wfp + 2 * H * De * esz);
    add_block(dt, grads, L->t_w, rt, De, H, De, wfp + 3 * H * De * esz);
done:
    free(w);
    parts_free(&gp);
    return st;
}
