/* Four-orientation fused 2D core (plstm-math.md §3.7, §4.5) on the CPU.
 *
 * Orientation o (bit 0: flip x, bit 1: flip y) runs the plain 2D core
 * (cpu_core2d_forward/backward, sequential or tiled by desc->algo) on the
 * flipped grid with its own S/T/M; results are flipped back and summed. The
 * direct term is counted once: orientation 0 (no flip) gets D, the others a
 * zero D, so D's gradient and the direct parts of dQ/dK/dV come from o = 0. */
#include "backends/cpu/cpu_ops.h"
#include "backends/cpu/flip.h"
#include "core/status_internal.h"

#include <stdlib.h>
#include <string.h>

enum { F4_Q, F4_K, F4_V, F4_SR, F4_SD, F4_TRL, F4_TDU, F4_TDL, F4_TRU, F4_ML, F4_MU, F4_N };

typedef struct f4_layout {
    size_t esz;         /* bytes per element               */
    size_t grid;        /* X·Y nodes                       */
    size_t n[F4_N];     /* elements per node, per tensor   */
    size_t nd, ny;
} f4_layout;

static f4_layout f4_make_layout(const plstm_core2d_desc *d)
{
    f4_layout l;
    l.esz = plstm_dtype_size(d->dtype);
    l.grid = (size_t)d->X * d->Y;
    size_t nt = (size_t)d->JT * d->JT;
    size_t ns = (size_t)d->JT * d->JK * d->JV;
    size_t nm = (size_t)d->JO * d->JQ * d->JT;
    size_t n[F4_N] = {(size_t)d->DK * d->JQ, (size_t)d->DK * d->JK, (size_t)d->DV * d->JV,
                      ns, ns, nt, nt, nt, nt, nm, nm};
    memcpy(l.n, n, sizeof n);
    l.nd = (size_t)d->JO * d->JQ * d->JK * d->JV;
    l.ny = (size_t)d->DV * d->JO;
    return l;
}

/* Tensor `i` of the core2d input (or gradient) struct, as a pointer slot. */
static const void **f4_in_slot(plstm_core2d_inputs *in, int i)
{
    const void **s[F4_N] = {&in->Q, &in->K, &in->V, &in->S_r, &in->S_d, &in->T_rl,
                            &in->T_du, &in->T_dl, &in->T_ru, &in->M_l, &in->M_u};
    return s[i];
}

static void **f4_grad_slot(plstm_core2d_grads *g, int i)
{
    void **s[F4_N] = {&g->Q, &g->K, &g->V, &g->S_r, &g->S_d, &g->T_rl,
                      &g->T_du, &g->T_dl, &g->T_ru, &g->M_l, &g->M_u};
    return s[i];
}

/* Orientation-axis tensors are [B,4,X,Y,...]; Q, K, V are [B,X,Y,...]. */
static int f4_has_orient(int i) { return i >= F4_SR; }

/* Buffers for one orientation's flipped tensors (reused across o). */
typedef struct f4_bufs {
    void *t[F4_N];
    void *zero_d; /* D for o > 0 */
    void *y;      /* flipped Y or dY */
} f4_bufs;

static void f4_free(f4_bufs *b)
{
    for (int i = 0; i < F4_N; i++)
        free(b->t[i]);
    free(b->zero_d);
    free(b->y);
}

/* Allocates a flipped buffer for every tensor present in `present`. */
static plstm_status f4_alloc(const plstm_core2d_desc *d, const f4_layout *l,
                             const plstm_core2d_inputs *present, f4_bufs *b)
{
    memset(b, 0, sizeof *b);
    plstm_core2d_inputs p = *present;
    const size_t nodes = (size_t)d->B * l->grid;
    int ok = 1;
    for (int i = 0; i < F4_N; i++)
        if (*f4_in_slot(&p, i) && !(b->t[i] = malloc(nodes * l->n[i] * l->esz)))
            ok = 0;
    if (!(b->zero_d = calloc(nodes * l->nd, l->esz)) || !(b->y = malloc(nodes * l->ny * l->esz)))
        ok = 0;
    if (!ok) {
        f4_free(b);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "core2d fused4: out of memory");
    }
    return PLSTM_OK;
}

/* dst (dense [B,X,Y,n]) = orientation o's flipped view of src. */
static void f4_flip_in(const plstm_core2d_desc *d, const f4_layout *l, int i, int o,
                       void *dst, const void *src, int threads)
{
    size_t bytes = l->grid * l->n[i] * l->esz;
    const unsigned char *s = src;
    size_t sstride = bytes;
    if (f4_has_orient(i)) {
        s += (size_t)o * bytes;
        sstride = 4 * bytes;
    }
    cpu_flip_grid(dst, bytes, s, sstride, d->B, d->X, d->Y, l->n[i] * l->esz, o & 1, o >> 1,
                  threads);
}

static void f4_flip_add(const plstm_core2d_desc *d, void *dst, const void *src, size_t n, int o,
                        int threads)
{
    if (d->dtype == PLSTM_F32)
        cpu_flip_grid_add_f32(dst, src, d->B, d->X, d->Y, n, o & 1, o >> 1, threads);
    else
        cpu_flip_grid_add_f64(dst, src, d->B, d->X, d->Y, n, o & 1, o >> 1, threads);
}

/* The core inputs of orientation o: flipped copies in b, D only for o = 0. */
static plstm_core2d_inputs f4_orient_inputs(const plstm_core2d_desc *d, const f4_layout *l,
                                            const plstm_core2d_inputs *in, int o, f4_bufs *b,
                                            int threads)
{
    plstm_core2d_inputs fin = {0};
    plstm_core2d_inputs src = *in;
    for (int i = 0; i < F4_N; i++) {
        const void *s = *f4_in_slot(&src, i);
        if (!s)
            continue;
        if (o == 0 && !f4_has_orient(i)) { /* identity: no copy */
            *f4_in_slot(&fin, i) = s;
            continue;
        }
        f4_flip_in(d, l, i, o, b->t[i], s, threads);
        *f4_in_slot(&fin, i) = b->t[i];
    }
    fin.D = o == 0 ? in->D : b->zero_d;
    return fin;
}

static plstm_status f4_check(const plstm_core2d_desc *d)
{
    if (d->dtype != PLSTM_F32 && d->dtype != PLSTM_F64)
        return plstm_fail(PLSTM_ERR_UNSUPPORTED, "core2d fused4: dtype %s not supported",
                          plstm_dtype_name(d->dtype));
    return PLSTM_OK;
}

plstm_status cpu_core2d_fused4_forward(plstm_context *ctx, const plstm_core2d_desc *d,
                                       const plstm_core2d_inputs *in,
                                       const plstm_core2d_outputs *out)
{
    PLSTM_TRY(f4_check(d));
    const f4_layout l = f4_make_layout(d);
    f4_bufs b;
    PLSTM_TRY(f4_alloc(d, &l, in, &b));
    const size_t ybytes = (size_t)d->B * l.grid * l.ny * l.esz;
    memset(out->Y, 0, ybytes);
    plstm_status s = PLSTM_OK;
    for (int o = 0; o < 4 && s == PLSTM_OK; o++) {
        plstm_core2d_inputs fin = f4_orient_inputs(d, &l, in, o, &b, ctx->threads);
        plstm_core2d_outputs fout = {.Y = b.y};
        s = cpu_core2d_forward(ctx, d, &fin, &fout);
        if (s == PLSTM_OK)
            f4_flip_add(d, out->Y, b.y, l.ny, o, ctx->threads);
    }
    f4_free(&b);
    return s;
}

/* Gradient buffers of one orientation: flipped, then mapped back. */
typedef struct f4_gbufs {
    void *t[F4_N];
} f4_gbufs;

plstm_status cpu_core2d_fused4_backward(plstm_context *ctx, const plstm_core2d_desc *d,
                                        const plstm_core2d_inputs *in,
                                        const plstm_core2d_cotangents *dout,
                                        const plstm_core2d_grads *grad)
{
    PLSTM_TRY(f4_check(d));
    const f4_layout l = f4_make_layout(d);
    const size_t nodes = (size_t)d->B * l.grid;
    f4_bufs b;
    PLSTM_TRY(f4_alloc(d, &l, in, &b));
    f4_gbufs g = {{0}};
    plstm_core2d_grads gsrc = *grad;
    plstm_status s = PLSTM_OK;
    for (int i = 0; i < F4_N && s == PLSTM_OK; i++) {
        void *dst = *f4_grad_slot(&gsrc, i);
        if (!dst)
            continue;
        if (!(g.t[i] = malloc(nodes * l.n[i] * l.esz)))
            s = plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "core2d fused4 backward: out of memory");
        else if (!f4_has_orient(i))
            memset(dst, 0, nodes * l.n[i] * l.esz); /* Q, K, V: summed over o */
    }
    for (int o = 0; o < 4 && s == PLSTM_OK; o++) {
        plstm_core2d_inputs fin = f4_orient_inputs(d, &l, in, o, &b, ctx->threads);
        const size_t ybytes = l.grid * l.ny * l.esz;
        if (o > 0)
            cpu_flip_grid(b.y, ybytes, dout->Y, ybytes, d->B, d->X, d->Y, l.ny * l.esz, o & 1,
                          o >> 1, ctx->threads);
        plstm_core2d_cotangents fdout = {.Y = o > 0 ? b.y : dout->Y};
        plstm_core2d_grads fg = {0};
        for (int i = 0; i < F4_N; i++)
            *f4_grad_slot(&fg, i) = g.t[i];
        fg.D = o == 0 ? grad->D : NULL;
        s = cpu_core2d_backward(ctx, d, &fin, &fdout, &fg);
        for (int i = 0; i < F4_N && s == PLSTM_OK; i++) {
            if (!g.t[i])
                continue;
            unsigned char *dst = *f4_grad_slot(&gsrc, i);
            const size_t bytes = l.grid * l.n[i] * l.esz;
            if (f4_has_orient(i))
                cpu_flip_grid(dst + (size_t)o * bytes, 4 * bytes, g.t[i], bytes, d->B, d->X,
                              d->Y, l.n[i] * l.esz, o & 1, o >> 1, ctx->threads);
            else
                f4_flip_add(d, dst, g.t[i], l.n[i], o, ctx->threads);
        }
    }
    for (int i = 0; i < F4_N; i++)
        free(g.t[i]);
    f4_free(&b);
    return s;
}
