/* The dense per-graph form of the scalar-gate DAG core (dag_core_dense.h):
 * threads over (batch entry × graph) units; the real-type code is in
 * dag_core_dense_impl.h, included for float and double. */
#include "backends/cpu/blas_threads.h"
#include "backends/cpu/dag_core_dense.h"
#include "graph/dag_internal.h"
#include "core/status_internal.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Graphs above this many nodes use the state form (α vectors grow as E·n). */
#define DENSE_MAX_NODES 64
/* Below this many multiply-adds in a call, one thread: waking a team costs more. */
#define DENSE_SERIAL_WORK 200000.0

typedef struct dense_plan {
    const plstm_dag *g;
    int B, DK, DV, threads;
    double scale;
    int64_t nmax, emax; /* largest graph: nodes, edges */
    int64_t *order;     /* [E] each graph's edges in topological order, at its edge range */
    size_t scr;         /* scratch elements per thread */
} dense_plan;

int cpu_dag_dense_applies(const plstm_dag_core_desc *d, const plstm_dag *g)
{
    if (d->algo != PLSTM_ALGO_AUTO || d->JQ != 1 || d->JK != 1 || d->JV != 1 || d->JT != 1 ||
        d->JO != 1)
        return 0;
    double dense = 0, state = (double)(g->E + g->A) * d->DK * d->DV * 3.0 +
                              (double)g->N * (d->DK + d->DV);
    for (int64_t i = 0; i < g->G; i++) {
        const int64_t n = g->node_off[i + 1] - g->node_off[i];
        if (n > DENSE_MAX_NODES)
            return 0;
        dense += (double)n * n * (d->DK + d->DV);
    }
    return dense <= state;
}

/* Counting sort of the level order by graph: within a graph it stays
 * topological. */
static plstm_status dense_plan_make(plstm_context *ctx, const plstm_dag_core_desc *d,
                                    const plstm_dag *g, dense_plan *p)
{
    *p = (dense_plan){.g = g, .B = d->B, .DK = d->DK, .DV = d->DV, .scale = d->scale};
    double work = 0;
    for (int64_t i = 0; i < g->G; i++) {
        const int64_t n = g->node_off[i + 1] - g->node_off[i];
        const int64_t e = g->edge_off[i + 1] - g->edge_off[i];
        p->nmax = n > p->nmax ? n : p->nmax;
        p->emax = e > p->emax ? e : p->emax;
        work += (double)n * n * (d->DK + d->DV);
    }
    const int t = ctx && ctx->threads > 0 ? ctx->threads : omp_get_max_threads();
    const int64_t units = (int64_t)d->B * g->G;
    p->threads = work * d->B < DENSE_SERIAL_WORK ? 1 : (units < t ? (int)units : t);
    if (p->threads < 1)
        p->threads = 1;
    const size_t n = (size_t)p->nmax;
    p->scr = 2 * (size_t)p->emax * n + 4 * n * n;
    p->order = malloc((size_t)(g->E + 1) * sizeof(int64_t) +
                      (size_t)(g->G + 1) * sizeof(int64_t));
    if (!p->order)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "dag core: cannot allocate the edge order");
    int64_t *pos = p->order + g->E + 1; /* next place of each graph's edges */
    for (int64_t i = 0; i < g->G; i++)
        pos[i] = g->edge_off[i];
    /* graph of an edge: edges of graph i are edge_off[i] .. edge_off[i+1]-1 */
    for (int64_t k = 0; k < g->E; k++) {
        const int64_t e = g->level_edges[k];
        int64_t lo = 0, hi = g->G - 1;
        while (lo < hi) { /* last graph with edge_off <= e */
            const int64_t mid = (lo + hi + 1) / 2;
            if (g->edge_off[mid] <= e)
                lo = mid;
            else
                hi = mid - 1;
        }
        p->order[pos[lo]++] = e;
    }
    return PLSTM_OK;
}

#define REAL float
#define FN(x) dn_##x##_f32
#define GEMM cblas_sgemm
#include "backends/cpu/dag_core_dense_impl.h"
#undef REAL
#undef FN
#undef GEMM

#define REAL double
#define FN(x) dn_##x##_f64
#define GEMM cblas_dgemm
#include "backends/cpu/dag_core_dense_impl.h"
#undef REAL
#undef FN
#undef GEMM

static plstm_status dense_call(plstm_context *ctx, const plstm_dag_core_desc *d,
                               const plstm_dag *g, const plstm_dag_core_inputs *in, void *Y,
                               const void *dY, const plstm_dag_core_grads *gr)
{
    dense_plan p;
    PLSTM_TRY(dense_plan_make(ctx, d, g, &p));
    const size_t esz = d->dtype == PLSTM_F32 ? sizeof(float) : sizeof(double);
    void *work = malloc(((size_t)p.threads * p.scr + 1) * esz);
    if (!work) {
        free(p.order);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "dag core: cannot allocate scratch");
    }
    /* the per-graph GEMMs are tiny and run inside the thread team */
    const int blas = cpu_blas_serial_begin(p.threads);
    if (d->dtype == PLSTM_F32)
        dn_dense_run_f32(&p, in, Y, dY, gr, work);
    else
        dn_dense_run_f64(&p, in, Y, dY, gr, work);
    cpu_blas_serial_end(blas);
    free(work);
    free(p.order);
    return PLSTM_OK;
}

plstm_status cpu_dag_dense_forward(plstm_context *ctx, const plstm_dag_core_desc *d,
                                   const plstm_dag *g, const plstm_dag_core_inputs *in, void *Y)
{
    return dense_call(ctx, d, g, in, Y, NULL, NULL);
}

plstm_status cpu_dag_dense_backward(plstm_context *ctx, const plstm_dag_core_desc *d,
                                    const plstm_dag *g, const plstm_dag_core_inputs *in,
                                    const void *dY, const plstm_dag_core_grads *grad)
{
    return dense_call(ctx, d, g, in, NULL, dY, grad);
}
