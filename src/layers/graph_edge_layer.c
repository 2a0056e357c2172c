/* Gates of the edge-feature graph layer (plstm-math.md §6.4):
 *   s_e = sigmoid(Ws [x_tail(e); f_e] + bs),  m_e = sigmoid(Wm [x_head(e); f_e] + bm),
 *   t(e'->e) = Wt [f_e'; f_e; x_node] + bt, node = tail(e') (Q8, reference)
 *              or head(e') = tail(e) (the node between the edges);
 * P mode divides t by 0.5 + Σ |t| over the arcs into the same edge e, D mode
 * takes tanh. Gate inputs are gathered into row blocks, so every gate is one
 * Linear over all edges (arcs) of the batch. */
#include "layers/graph_layer_internal.h"

#include <stdlib.h>

#define GE "graph edge layer"

/* rows [n, w0 + w1 (+ w2)] = [a[ia[r]], b[ib[r]] (, c[ic[r]])] */
static void gather3(size_t esz, size_t n, const void *a, const int64_t *ia, size_t wa,
                    const void *b, const int64_t *ib, size_t wb, const void *c,
                    const int64_t *ic, size_t wc, void *out)
{
    const size_t w = wa + wb + wc;
    for (size_t r = 0; r < n; r++) {
        char *o = (char *)out + r * w * esz;
        memcpy(o, (const char *)a + (size_t)ia[r] * wa * esz, wa * esz);
        memcpy(o + wa * esz, (const char *)b + (size_t)ib[r] * wb * esz, wb * esz);
        if (wc)
            memcpy(o + (wa + wb) * esz, (const char *)c + (size_t)ic[r] * wc * esz, wc * esz);
    }
}

/* a[ia[r]] += rows[r, 0:wa], b[ib[r]] += rows[r, wa:wa+wb], c[ic[r]] += the rest. */
static void scatter3(plstm_dtype dt, size_t n, void *a, const int64_t *ia, size_t wa, void *b,
                     const int64_t *ib, size_t wb, void *c, const int64_t *ic, size_t wc,
                     const void *rows)
{
    const size_t w = wa + wb + wc;
    GL_REAL(dt, {
        const R *in = rows;
        for (size_t r = 0; r < n; r++) {
            const R *row = in + r * w;
            R *pa = (R *)a + (size_t)ia[r] * wa, *pb = (R *)b + (size_t)ib[r] * wb;
            for (size_t j = 0; j < wa; j++)
                pa[j] += row[j];
            for (size_t j = 0; j < wb; j++)
                pb[j] += row[wa + j];
            if (wc) {
                R *pc = (R *)c + (size_t)ic[r] * wc;
                for (size_t j = 0; j < wc; j++)
                    pc[j] += row[wa + wb + j];
            }
        }
    });
}

typedef struct edge_maps {
    int64_t *tail, *head, *self; /* [E] */
    int64_t *node;               /* [A] node whose features enter t */
} edge_maps;

static void maps_free(edge_maps *m)
{
    free(m->tail), free(m->head), free(m->self), free(m->node);
}

static plstm_status maps_make(const plstm_graph_layer *L, const plstm_graph_batch *b,
                              edge_maps *m)
{
    const size_t E = (size_t)b->num_edges, A = (size_t)b->num_arcs;
    m->tail = malloc((E + 1) * sizeof(int64_t));
    m->head = malloc((E + 1) * sizeof(int64_t));
    m->self = malloc((E + 1) * sizeof(int64_t));
    m->node = malloc((A + 1) * sizeof(int64_t));
    if (!m->tail || !m->head || !m->self || !m->node) {
        maps_free(m);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, GE ": cannot allocate index maps");
    }
    for (size_t e = 0; e < E; e++) {
        PLSTM_TRY(plstm_dag_edge(b->dag, (int64_t)e, &m->tail[e], &m->head[e], NULL));
        m->self[e] = (int64_t)e;
    }
    for (size_t a = 0; a < A; a++)
        m->node[a] = L->cfg.q8 ? b->arc_node_q8[a] : b->arc_node[a];
    return PLSTM_OK;
}

static plstm_status lin(plstm_context *ctx, plstm_dtype dt, size_t n, int in, int out,
                        const void *x, const void *params, size_t w, size_t bias, void *y)
{
    if (!n)
        return PLSTM_OK;
    const size_t e = plstm_dtype_size(dt);
    return plstm_linear_forward(ctx, dt, (int)n, in, out, x, gl_cat(params, e, w),
                                gl_cat(params, e, bias), y);
}

static plstm_status lin_bw(plstm_context *ctx, plstm_dtype dt, size_t n, int in, int out,
                           const void *x, const void *params, size_t w, size_t bias,
                           const void *dy, void *dx, void *grads)
{
    if (!n)
        return PLSTM_OK;
    const size_t e = plstm_dtype_size(dt);
    return plstm_linear_backward(ctx, dt, (int)n, in, out, x, gl_cat(params, e, w), dy, dx,
                                 gl_at(grads, e, w), gl_at(grads, e, bias));
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
    const size_t E = (size_t)b->num_edges, A = (size_t)b->num_arcs;
    const size_t D = (size_t)L->cfg.input_dim, De = (size_t)L->cfg.edge_input_dim;
    const size_t H = (size_t)L->cfg.num_heads, esz = plstm_dtype_size(dt);
    const size_t rows = E > A ? E : A, width = 2 * De + D;
    edge_maps mp = {0};
    PLSTM_TRY(maps_make(L, b, &mp));
    void *in = malloc((rows * width + 1) * esz), *pre = malloc((E * H + 1) * esz);
    plstm_status st = PLSTM_OK;
    if (!in || !pre) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, GE ": cannot allocate gate inputs");
        goto done;
    }
    for (int pass = 0; pass < 2 && st == PLSTM_OK; pass++) {
        gather3(esz, E, x, pass ? mp.head : mp.tail, D, edge_x, mp.self, De, NULL, NULL, 0, in);
        st = lin(ctx, dt, E, (int)(D + De), (int)H, in, params, pass ? L->m_w : L->s_w,
                 pass ? L->m_b : L->s_b, pre);
        if (st != PLSTM_OK)
            break;
        GL_REAL(dt, {
            R *p = pre;
            for (size_t i = 0; i < E * H; i++)
                p[i] = (R)(1.0 / (1.0 + exp(-(double)p[i])));
        });
        gl_swap01(esz, E, H, 1, pre, pass ? m : s);
    }
    if (st != PLSTM_OK)
        goto done;
    gather3(esz, A, edge_x, afrom, De, edge_x, ato, De, x, mp.node, D, in);
    st = lin(ctx, dt, A, (int)width, (int)H, in, params, L->t_w, L->t_b, traw);
    if (st == PLSTM_OK)
        normalize(L, dt, b, traw, t);
done:
    free(in);
    free(pre);
    maps_free(&mp);
    return st;
}

plstm_status gl_edge_gates_backward(plstm_context *ctx, const plstm_graph_layer *L,
                                    plstm_dtype dt, const void *params,
                                    const plstm_graph_batch *b, const int64_t *afrom,
                                    const int64_t *ato, const void *x, const void *edge_x,
                                    const void *s, const void *m, const void *traw,
                                    const void *ds, const void *dm, const void *dtv, void *dx,
                                    void *dedge_x, void *grads)
{
    const size_t E = (size_t)b->num_edges, A = (size_t)b->num_arcs;
    const size_t D = (size_t)L->cfg.input_dim, De = (size_t)L->cfg.edge_input_dim;
    const size_t H = (size_t)L->cfg.num_heads, esz = plstm_dtype_size(dt);
    const size_t rows = E > A ? E : A, width = 2 * De + D;
    edge_maps mp = {0};
    PLSTM_TRY(maps_make(L, b, &mp));
    void *in = malloc((rows * width + 1) * esz), *din = malloc((rows * width + 1) * esz);
    void *dpre = malloc((rows * H + 1) * esz);
    plstm_status st = PLSTM_OK;
    if (!in || !din || !dpre) {
        st = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, GE ": cannot allocate gate scratch");
        goto done;
    }
    memset(dedge_x, 0, E * De * esz);
    for (int pass = 0; pass < 2 && st == PLSTM_OK; pass++) {
        const void *val = pass ? m : s, *dv = pass ? dm : ds;
        GL_REAL(dt, {
            R *dp = dpre;
            const R *vv = val, *gv = dv;
            for (size_t e = 0; e < E; e++)
                for (size_t h = 0; h < H; h++) {
                    const R sv = vv[h * E + e];
                    dp[e * H + h] = gv[h * E + e] * sv * (1 - sv);
                }
        });
        int64_t *nodes = pass ? mp.head : mp.tail;
        gather3(esz, E, x, nodes, D, edge_x, mp.self, De, NULL, NULL, 0, in);
        st = lin_bw(ctx, dt, E, (int)(D + De), (int)H, in, params, pass ? L->m_w : L->s_w,
                    pass ? L->m_b : L->s_b, dpre, din, grads);
        if (st == PLSTM_OK)
            scatter3(dt, E, dx, nodes, D, dedge_x, mp.self, De, NULL, NULL, 0, din);
    }
    if (st != PLSTM_OK)
        goto done;
    normalize_bw(L, dt, b, traw, dtv, dpre);
    gather3(esz, A, edge_x, afrom, De, edge_x, ato, De, x, mp.node, D, in);
    st = lin_bw(ctx, dt, A, (int)width, (int)H, in, params, L->t_w, L->t_b, dpre, din, grads);
    if (st == PLSTM_OK)
        scatter3(dt, A, dedge_x, afrom, De, dedge_x, ato, De, dx, mp.node, D, din);
done:
    free(in);
    free(din);
    free(dpre);
    maps_free(&mp);
    return st;
}
