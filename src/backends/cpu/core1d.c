/* The 1D core on the CPU: picks the sequential recurrence (core1d_seq.c) or
 * the chunkwise-parallel form (core1d_chunk.c); both compute the same thing. */
#include "backends/cpu/core1d_common.h"
#include "core/status_internal.h"

#include <cblas.h>
#include <omp.h>

/* Default chunk length of the parallel form (desc->chunk = 0), measured with
 * bench_core1d (DK = DV = 32): the chunk costs O(BT²) per chunk in the gate
 * maps and the Q Kᵀ / W V GEMMs, so short chunks win; larger J makes the
 * per-pair gate work heavier. AUTO takes the sequential form only for
 * sequences shorter than one chunk. */
enum { C1_CHUNK_J1 = 16, C1_CHUNK_J = 8 };

c1_dims c1_make_dims(const plstm_core1d_desc *d)
{
    c1_dims m = {.B = d->B, .L = d->L, .DK = d->DK, .DV = d->DV, .JQ = d->JQ, .JK = d->JK,
                 .JV = d->JV, .JT = d->JT, .JO = d->JO, .scale = d->scale};
    m.N = (size_t)d->DK * d->DV;
    m.SZ = m.N * d->JT;
    m.nq = (size_t)d->DK * d->JQ;
    m.nk = (size_t)d->DK * d->JK;
    m.nv = (size_t)d->DV * d->JV;
    m.ns = (size_t)d->JT * d->JK * d->JV;
    m.nt = (size_t)d->JT * d->JT;
    m.nm = (size_t)d->JO * d->JQ * d->JT;
    m.nd = (size_t)d->JO * d->JQ * d->JK * d->JV;
    m.ny = (size_t)d->DV * d->JO;
    m.j1 = d->JQ == 1 && d->JK == 1 && d->JV == 1 && d->JT == 1 && d->JO == 1;
    return m;
}

int c1_threads(const plstm_context *ctx, const c1_dims *m)
{
    /* Tiny problems run on one thread: waking an OpenMP team (which spins
     * while it waits) costs more than the work, badly so on a busy machine. */
    if ((double)m->B * m->L * (double)m->SZ < 65536.0)
        return 1;
    int t = ctx && ctx->threads > 0 ? ctx->threads : omp_get_max_threads();
    return t < m->B ? t : m->B;
}

static int check_dtype(const plstm_core1d_desc *d)
{
    return d->dtype == PLSTM_F32 || d->dtype == PLSTM_F64;
}

/* Chunk length of the parallel form, or 0 for the sequential form. */
static int pick_chunk(const plstm_core1d_desc *d)
{
    const int j1 = d->JQ == 1 && d->JK == 1 && d->JV == 1 && d->JT == 1 && d->JO == 1;
    const int bt = d->chunk > 0 ? d->chunk : j1 ? C1_CHUNK_J1 : C1_CHUNK_J;
    if (d->algo == PLSTM_ALGO_SEQUENTIAL || (d->algo == PLSTM_ALGO_AUTO && d->L < bt))
        return 0;
    return bt < d->L ? bt : d->L;
}

plstm_status cpu_core1d_forward(plstm_context *ctx, const plstm_core1d_desc *d,
                                const plstm_core1d_inputs *in, const plstm_core1d_outputs *out)
{
    if (!check_dtype(d))
        return plstm_fail(PLSTM_ERR_UNSUPPORTED, "core1d: dtype %s not supported on the CPU",
                          plstm_dtype_name(d->dtype));
    const int bt = pick_chunk(d);
    if (bt == 0)
        return cpu_core1d_seq_forward(ctx, d, in, out);
    return cpu_core1d_chunk_forward(ctx, d, bt, in, out);
}

plstm_status cpu_core1d_backward(plstm_context *ctx, const plstm_core1d_desc *d,
                                 const plstm_core1d_inputs *in,
                                 const plstm_core1d_cotangents *dout,
                                 const plstm_core1d_grads *grad)
{
    if (!check_dtype(d))
        return plstm_fail(PLSTM_ERR_UNSUPPORTED, "core1d: dtype %s not supported on the CPU",
                          plstm_dtype_name(d->dtype));
    const int bt = pick_chunk(d);
    if (bt == 0)
        return cpu_core1d_seq_backward(ctx, d, in, dout, grad);
    return cpu_core1d_chunk_backward(ctx, d, bt, in, dout, grad);
}
