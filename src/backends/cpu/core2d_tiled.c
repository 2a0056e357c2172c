/* The tiled parallel form of the 2D core (plstm-math.md §3.3–3.5) on the CPU.
 *
 * The grid is cut into tiles of side BP (partial tiles at the right and bottom
 * edges, no padding). Per tile, the transfer maps are built from the gates
 * alone by an impulse-response recurrence over the tile (core2d_tiled_maps.h):
 * the intra-tile gating G (with D on the diagonal), the in-border → target
 * marks, and the in-border / source → out-border maps. All DK×DV work is then
 * GEMMs (core2d_tiled_impl.h). Only the tile-border states are materialized;
 * they are passed between tiles in wavefront order, the tiles of one
 * anti-diagonal (of every batch entry) running in parallel. Cost is linear in
 * the number of pixels and quadratic in BP inside a tile.
 *
 * The backward is the exact adjoint of that computation: the tile-border
 * states are recomputed (a batch chunk at a time, to bound memory), then the
 * tiles are visited in reverse wavefront order; each tile forms the gradients
 * of its maps by GEMMs and runs the adjoint of the impulse recurrence. */
#include "backends/cpu/blas_threads.h"
#include "backends/cpu/cpu_ops.h"
#include "core/status_internal.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Default tile side (desc->tile = 0). */
enum { TL2D_DEFAULT_TILE = 4 };
/* Memory for the stored tile-border states of one backward batch chunk
 * (more only costs page faults; at least one entry per thread). */
#define TL2D_BWD_BUDGET_BYTES ((size_t)32 << 20)

typedef struct tl2d_dims {
    int B, X, Y, DK, DV, JQ, JK, JV, JT, JO;
    int BP, NX, NY;          /* tile side, tiles along x and y              */
    int PX, PY;              /* largest tile extent (min(BP, X), min(BP, Y)) */
    size_t N, SZ;            /* DK·DV, one state JT·DK·DV                    */
    size_t nq, nk, nv, nS, nT, nM, nD, ny; /* elements per node              */
    int JKV, JOQ;
    double scale;
} tl2d_dims;

/* Geometry of one tile. Pixel n = w·by + z (w: x-offset, z: y-offset).
 * Border entries: in = [left rows 0..by) | top columns 0..bx)], out = [right
 * rows | bottom columns]; each entry is a state of JT components. */
typedef struct tl2d_tile {
    int b, tx, ty, x0, y0, bx, by;
    int np;   /* bx·by pixels                            */
    int ne;   /* bx+by border entries per side pair      */
    int nej;  /* ne·JT border components                  */
    int ncol; /* nej + np·JKV: columns of the map matrices */
} tl2d_tile;

static tl2d_dims tl2d_make_dims(const plstm_core2d_desc *d)
{
    tl2d_dims m = {.B = d->B, .X = d->X, .Y = d->Y, .DK = d->DK, .DV = d->DV, .JQ = d->JQ,
                   .JK = d->JK, .JV = d->JV, .JT = d->JT, .JO = d->JO, .scale = d->scale};
    m.BP = d->tile > 0 ? d->tile : TL2D_DEFAULT_TILE;
    m.NX = (d->X + m.BP - 1) / m.BP;
    m.NY = (d->Y + m.BP - 1) / m.BP;
    m.PX = m.BP < d->X ? m.BP : d->X;
    m.PY = m.BP < d->Y ? m.BP : d->Y;
    m.N = (size_t)d->DK * d->DV;
    m.SZ = m.N * d->JT;
    m.nq = (size_t)d->DK * d->JQ;
    m.nk = (size_t)d->DK * d->JK;
    m.nv = (size_t)d->DV * d->JV;
    m.nS = (size_t)d->JT * d->JK * d->JV;
    m.nT = (size_t)d->JT * d->JT;
    m.nM = (size_t)d->JO * d->JQ * d->JT;
    m.nD = (size_t)d->JO * d->JQ * d->JK * d->JV;
    m.ny = (size_t)d->DV * d->JO;
    m.JKV = d->JK * d->JV;
    m.JOQ = d->JO * d->JQ;
    return m;
}

static tl2d_tile tl2d_make_tile(const tl2d_dims *m, int b, int tx, int ty)
{
    tl2d_tile t = {.b = b, .tx = tx, .ty = ty, .x0 = tx * m->BP, .y0 = ty * m->BP};
    t.bx = m->X - t.x0 < m->BP ? m->X - t.x0 : m->BP;
    t.by = m->Y - t.y0 < m->BP ? m->Y - t.y0 : m->BP;
    t.np = t.bx * t.by;
    t.ne = t.bx + t.by;
    t.nej = t.ne * m->JT;
    t.ncol = t.nej + t.np * m->JKV;
    return t;
}

static int tl2d_threads(const plstm_context *ctx)
{
    return ctx && ctx->threads > 0 ? ctx->threads : omp_get_max_threads();
}

#define REAL float
#define FN(x) tl2d_##x##_f32
#define GEMM cblas_sgemm
#include "backends/cpu/core2d_tiled_maps.h"
#include "backends/cpu/core2d_tiled_impl.h"
#undef REAL
#undef FN
#undef GEMM

#define REAL double
#define FN(x) tl2d_##x##_f64
#define GEMM cblas_dgemm
#include "backends/cpu/core2d_tiled_maps.h"
#include "backends/cpu/core2d_tiled_impl.h"
#undef REAL
#undef FN
#undef GEMM

plstm_status cpu_core2d_tiled_forward(plstm_context *ctx, const plstm_core2d_desc *d,
                                      const plstm_core2d_inputs *in,
                                      const plstm_core2d_outputs *out)
{
    const tl2d_dims m = tl2d_make_dims(d);
    const int threads = tl2d_threads(ctx);
    if (d->dtype == PLSTM_F32)
        return tl2d_forward_f32(&m, threads, in, out);
    if (d->dtype == PLSTM_F64)
        return tl2d_forward_f64(&m, threads, in, out);
    return plstm_fail(PLSTM_ERR_UNSUPPORTED, "core2d tiled: dtype %s not supported",
                      plstm_dtype_name(d->dtype));
}

plstm_status cpu_core2d_tiled_backward(plstm_context *ctx, const plstm_core2d_desc *d,
                                       const plstm_core2d_inputs *in,
                                       const plstm_core2d_cotangents *dout,
                                       const plstm_core2d_grads *grad)
{
    const tl2d_dims m = tl2d_make_dims(d);
    const int threads = tl2d_threads(ctx);
    if (d->dtype == PLSTM_F32)
        return tl2d_backward_f32(&m, threads, in, dout, grad);
    if (d->dtype == PLSTM_F64)
        return tl2d_backward_f64(&m, threads, in, dout, grad);
    return plstm_fail(PLSTM_ERR_UNSUPPORTED, "core2d tiled: dtype %s not supported",
                      plstm_dtype_name(d->dtype));
}
