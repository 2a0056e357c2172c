/* The general DAG pLSTM core (plstm-math.md §1) and its adjoint on the CPU:
 * level by level, threads over (batch × edges of a level), or one batch
 * entry per thread in topological order (PLSTM_ALGO_SEQUENTIAL). The
 * real-type code is in dag_core_impl.h, included for float and double. */
#include "backends/cpu/cpu_ops.h"
#include "backends/cpu/dag_core_dense.h"
#include "graph/dag_internal.h"
#include "core/status_internal.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef struct dag_dims {
    int B, DK, DV, JQ, JK, JV, JT, JO;
    size_t NS, SZ;                         /* DK·DV, one edge state DK·DV·JT */
    size_t nq, nk, nv, ns, nt, nm, nd, ny; /* elements per node / edge / arc */
    double scale;
    size_t budget; /* workspace bytes */
} dag_dims;

/* Default edge-state workspace per call; larger batches run in chunks. */
#define DAG_WORKSPACE_BYTES ((size_t)256 << 20)

static dag_dims dag_make_dims(const plstm_dag_core_desc *d)
{
    dag_dims m = {.B = d->B, .DK = d->DK, .DV = d->DV, .JQ = d->JQ, .JK = d->JK, .JV = d->JV,
                  .JT = d->JT, .JO = d->JO, .scale = d->scale,
                  .budget = d->max_workspace ? d->max_workspace : DAG_WORKSPACE_BYTES};
    m.NS = (size_t)d->DK * d->DV;
    m.SZ = m.NS * d->JT;
    m.nq = (size_t)d->DK * d->JQ;
    m.nk = (size_t)d->DK * d->JK;
    m.nv = (size_t)d->DV * d->JV;
    m.ns = (size_t)d->JT * d->JK * d->JV;
    m.nt = (size_t)d->JT * d->JT;
    m.nm = (size_t)d->JO * d->JQ * d->JT;
    m.nd = (size_t)d->JO * d->JQ * d->JK * d->JV;
    m.ny = (size_t)d->DV * d->JO;
    return m;
}

static size_t dag_scratch_elems(const dag_dims *m)
{
    size_t DK = m->DK, DV = m->DV, JQ = m->JQ, JK = m->JK, JV = m->JV, JT = m->JT, JO = m->JO;
    return 2 * JT * JK * DV + 2 * JT * DK * JO + 2 * JO * DV + 2 * JQ * JK + 2 * JO * JV +
           DK * JQ + DK * JK + DV * JV;
}

/* Batch entries per chunk: as many as fit the budget, at least one. */
static int dag_chunk(int B, size_t bytes_per_b, size_t budget)
{
    if (bytes_per_b == 0)
        return B;
    size_t c = budget / bytes_per_b;
    if (c < 1)
        c = 1;
    return c < (size_t)B ? (int)c : B;
}

static int dag_threads(const plstm_context *ctx)
{
    return ctx && ctx->threads > 0 ? ctx->threads : omp_get_max_threads();
}

#define REAL float
#define FN(x) dag_##x##_f32
#include "backends/cpu/dag_core_impl.h"
#undef REAL
#undef FN

#define REAL double
#define FN(x) dag_##x##_f64
#include "backends/cpu/dag_core_impl.h"
#undef REAL
#undef FN

/* AUTO with all J = 1 on small graphs: the dense form (dag_core_dense.c).
 * AUTO otherwise: with at least two batch entries per thread the per-entry pass keeps
 * every thread busy without a barrier per level, and is a little faster. */
static int dag_sequential(const plstm_dag_core_desc *d, int threads)
{
    if (d->algo == PLSTM_ALGO_AUTO)
        return d->B >= 2 * threads;
    return d->algo == PLSTM_ALGO_SEQUENTIAL;
}

plstm_status cpu_dag_core_forward(plstm_context *ctx, const plstm_dag_core_desc *d,
                                  const plstm_dag *g, const plstm_dag_core_inputs *in, void *Y)
{
    const dag_dims m = dag_make_dims(d);
    const int threads = dag_threads(ctx), seq = dag_sequential(d, threads);
    if ((d->dtype == PLSTM_F32 || d->dtype == PLSTM_F64) && cpu_dag_dense_applies(d, g))
        return cpu_dag_dense_forward(ctx, d, g, in, Y);
    if (d->dtype == PLSTM_F32)
        return dag_run_f32(&m, threads, g, in, Y, NULL, NULL, seq);
    if (d->dtype == PLSTM_F64)
        return dag_run_f64(&m, threads, g, in, Y, NULL, NULL, seq);
    return plstm_fail(PLSTM_ERR_UNSUPPORTED, "dag core: dtype %s not supported",
                      plstm_dtype_name(d->dtype));
}

plstm_status cpu_dag_core_backward(plstm_context *ctx, const plstm_dag_core_desc *d,
                                   const plstm_dag *g, const plstm_dag_core_inputs *in,
                                   const void *dY, const plstm_dag_core_grads *grad)
{
    const dag_dims m = dag_make_dims(d);
    const int threads = dag_threads(ctx), seq = dag_sequential(d, threads);
    if ((d->dtype == PLSTM_F32 || d->dtype == PLSTM_F64) && cpu_dag_dense_applies(d, g))
        return cpu_dag_dense_backward(ctx, d, g, in, dY, grad);
    if (d->dtype == PLSTM_F32)
        return dag_run_f32(&m, threads, g, in, NULL, dY, grad, seq);
    if (d->dtype == PLSTM_F64)
        return dag_run_f64(&m, threads, g, in, NULL, dY, grad, seq);
    return plstm_fail(PLSTM_ERR_UNSUPPORTED, "dag core: dtype %s not supported",
                      plstm_dtype_name(d->dtype));
}
