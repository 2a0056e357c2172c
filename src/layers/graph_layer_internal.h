/* Shared internals of the graph layers (graph_layer.c: common path and
 * node-wise gates; graph_edge_layer.c: edge-feature gates). */
#ifndef PLSTM_GRAPH_LAYER_INTERNAL_H
#define PLSTM_GRAPH_LAYER_INTERNAL_H

#include <math.h>
#include <string.h>

#include "plstm/graph_layers.h"
#include "core/status_internal.h"

/* Runs the statements with R = float or double by dtype (commas allowed). */
#define GL_REAL(dtype, ...)         \
    do {                            \
        if ((dtype) == PLSTM_F32) { \
            typedef float R;        \
            __VA_ARGS__             \
        } else {                    \
            typedef double R;       \
            __VA_ARGS__             \
        }                           \
    } while (0)

static inline void *gl_at(void *buf, size_t esz, size_t off) { return (char *)buf + off * esz; }
static inline const void *gl_cat(const void *buf, size_t esz, size_t off)
{
    return (const char *)buf + off * esz;
}

/* dst[j, i, :] = src[i, j, :] for a [n0, n1, c] tensor (rows of c elements). */
static inline void gl_swap01(size_t esz, size_t n0, size_t n1, size_t c, const void *src,
                             void *dst)
{
    const size_t row = c * esz;
    for (size_t i = 0; i < n0; i++)
        for (size_t j = 0; j < n1; j++)
            memcpy((char *)dst + (j * n0 + i) * row, (const char *)src + (i * n1 + j) * row, row);
}

/* plstm_linear_forward / _backward for the graph layers (same contracts, and
 * n = 0 is allowed): the backend's fused form with one segment, which splits
 * the tall node/edge products over the OpenMP team. */
plstm_status gl_linear_fw(plstm_context *ctx, plstm_dtype dt, int n, int in, int out,
                          const void *x, const void *W, const void *b, void *y);
plstm_status gl_linear_bw(plstm_context *ctx, plstm_dtype dt, int n, int in, int out,
                          const void *x, const void *W, const void *dy, void *dx, void *dW,
                          void *db);

/* The arcs of a batch's DAG object: from-edge, to-edge (global). */
plstm_status gl_arcs(const plstm_graph_batch *b, int64_t **from, int64_t **to);

/* Edge-feature gates (§6.4): s, m [H, E], t [H, A] (normalized), traw [A, H]
 * (before normalization, kept for backward). */
plstm_status gl_edge_gates_forward(plstm_context *ctx, const plstm_graph_layer *L,
                                   plstm_dtype dtype, const void *params,
                                   const plstm_graph_batch *b, const int64_t *afrom,
                                   const int64_t *ato, const void *x, const void *edge_x,
                                   void *s, void *m, void *t, void *traw);
/* Adds the gate contributions to dx (must be initialized), writes dedge_x
 * (may be NULL), accumulates parameter gradients. ds, dm [H, E], dt [H, A]. */
plstm_status gl_edge_gates_backward(plstm_context *ctx, const plstm_graph_layer *L,
                                    plstm_dtype dtype, const void *params,
                                    const plstm_graph_batch *b, const int64_t *afrom,
                                    const int64_t *ato, const void *x, const void *edge_x,
                                    const void *s, const void *m, const void *traw,
                                    const void *ds, const void *dm, const void *dt, void *dx,
                                    void *dedge_x, void *grads);

#endif
