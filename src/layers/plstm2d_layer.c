/* Non-fused 2D layer (plstm-math.md §4.4): per orientation o (list position
 * oi, S/T/M head index oi·H + h) the plain 2D core runs on the grid flipped in
 * x when o&1 and in y when (o>>1)&1 — the intended rule; the reference's
 * (o>>2) (Q5) is not copied — with the full D, then the multi-head RMSNorm,
 * un-flip, and the mean over the four orientations. */
#include "backends/cpu/flip.h"
#include "layers/plstm2d_internal.h"
#include "core/status_internal.h"
#include "plstm/nn.h"

#include <stdlib.h>
#include <string.h>

#define NO 4 /* orientations */
#define NT (L2D_QKVD_N + L2D_G_N)

/* Activations: the front, per orientation the un-flipped core output in the
 * heads layout yh [N, H·Dh] (the norm's input), the mean of the normalized
 * outputs zsum [N, H·Dh] (the out projection's input), passthrough scratch. */
typedef struct nf_layout {
    l2d_dims d;
    l2d_front f;
    size_t yh[NO], zsum, tmp, total;
    size_t per_node[NT]; /* elements per grid node of Q K V D and the gates */
} nf_layout;

static plstm_status nf_layout_make(const plstm_layer2d *L, plstm_dtype dtype, int B, int X, int Y,
                                   nf_layout *l)
{
    PLSTM_TRY(l2d_make_dims(L, dtype, B, X, Y, &l->d));
    l2d_front_layout(L, &l->d, PLSTM_HOMAP_INTENDED, 0, &l->f);
    const l2d_dims *d = &l->d;
    size_t off = l->f.size;
    for (int o = 0; o < NO; o++) {
        l->yh[o] = off;
        off += d->N * d->Dy;
    }
    l->zsum = off;
    off += d->N * d->Dy;
    l->tmp = off;
    if (L->passthrough_off != PLSTM_NO_PARAM)
        off += d->N * (size_t)d->Din;
    l->total = off;
    const size_t pn[NT] = {d->PQ, d->PK, d->PV, d->PD, d->PS, d->PS, d->PT, d->PT,
                           d->PT, d->PT, d->PM, d->PM};
    memcpy(l->per_node, pn, sizeof pn);
    return PLSTM_OK;
}

size_t plstm_layer2d_activation_size(const plstm_layer2d *L, int B, int X, int Y)
{
    nf_layout l;
    if (!L || B < 1 || X < 1 || Y < 1 || nf_layout_make(L, PLSTM_F32, B, X, Y, &l) != PLSTM_OK)
        return 0;
    return l.total;
}

/* Dense per-orientation buffers: one slot per Q K V D and gate. */
typedef struct nf_slots {
    void *t[NT];
} nf_slots;

static size_t slots_size(const nf_layout *l)
{
    size_t n = 0;
    for (int i = 0; i < NT; i++)
        n += l->d.G * l->per_node[i];
    return n;
}

static void slots_make(const nf_layout *l, void *buf, nf_slots *s)
{
    size_t off = 0;
    for (int i = 0; i < NT; i++) {
        s->t[i] = l2d_at(buf, &l->d, off);
        off += l->d.G * l->per_node[i];
    }
}

static int flip_x(const plstm_layer2d *L, int oi) { return L->cfg.orientations[oi] & 1; }
static int flip_y(const plstm_layer2d *L, int oi) { return (L->cfg.orientations[oi] >> 1) & 1; }

/* Offsets of Q K V D (dense) and the gates ([B·H, 4, X, Y, P]) in `base`. */
static void src_offsets(const l2d_front *f, const l2d_dfront *df, size_t *off)
{
    for (int i = 0; i < L2D_QKVD_N; i++)
        off[i] = f ? f->grid[i] : df->grid[i];
    for (int g = 0; g < L2D_G_N; g++)
        off[L2D_QKVD_N + g] = f ? f->gate[g] : df->gate[g];
}

/* dst slots = orientation oi's flipped view of the front's tensors. */
static void flip_in(const plstm_layer2d *L, const nf_layout *l, const void *acts, int oi,
                    nf_slots *dst, int nt)
{
    const l2d_dims *d = &l->d;
    size_t off[NT];
    src_offsets(&l->f, NULL, off);
    for (int i = 0; i < NT; i++) {
        if (off[i] == L2D_ABSENT)
            continue;
        const size_t node = l->per_node[i] * d->esz, plane = d->XY * node;
        const char *src = l2d_cat(acts, d, off[i]);
        size_t stride = plane;
        if (i >= L2D_QKVD_N) { /* gate: orientation oi of [B·H, 4, X, Y, P] */
            src += (size_t)oi * plane;
            stride = 4 * plane;
        }
        cpu_flip_grid(dst->t[i], plane, src, stride, d->B * d->H, d->X, d->Y, node,
                      flip_x(L, oi), flip_y(L, oi), nt);
    }
}

static plstm_core2d_inputs slot_inputs(const plstm_layer2d *L, const nf_layout *l,
                                       const nf_slots *s)
{
    const void *g[L2D_G_N];
    for (int i = 0; i < L2D_G_N; i++)
        g[i] = l->f.gate[i] == L2D_ABSENT ? NULL : s->t[L2D_QKVD_N + i];
    if (L->cfg.mode == PLSTM_LAYER2D_P) {
        g[L2D_G_TDL] = g[L2D_G_TDU];
        g[L2D_G_TRU] = g[L2D_G_TRL];
        g[L2D_G_MU] = g[L2D_G_ML];
    }
    plstm_core2d_inputs in = {s->t[L2D_Q], s->t[L2D_K], s->t[L2D_V], g[L2D_G_SR], g[L2D_G_SD],
                              g[L2D_G_TRL], g[L2D_G_TDU], g[L2D_G_TDL], g[L2D_G_TRU],
                              g[L2D_G_ML], g[L2D_G_MU], s->t[L2D_D], NULL, NULL};
    return in;
}

static void flip_add(const l2d_dims *d, void *dst, const void *src, size_t n, int fx, int fy,
                     int nt)
{
    if (d->dtype == PLSTM_F32)
        cpu_flip_grid_add_f32(dst, src, d->B * d->H, d->X, d->Y, n, fx, fy, nt);
    else
        cpu_flip_grid_add_f64(dst, src, d->B * d->H, d->X, d->Y, n, fx, fy, nt);
}

/* A [B·H, X, Y, Dh] grid flipped (or un-flipped: a flip is its own inverse). */
static void flip_out(const l2d_dims *d, void *dst, const void *src, int fx, int fy, int nt)
{
    const size_t node = d->Dh * d->esz, plane = d->XY * node;
    cpu_flip_grid(dst, plane, src, plane, d->B * d->H, d->X, d->Y, node, fx, fy, nt);
}

static void scale_buf(const l2d_dims *d, void *buf, double a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (d->dtype == PLSTM_F32)
            ((float *)buf)[i] *= (float)a;
        else
            ((double *)buf)[i] *= a;
    }
}

plstm_status plstm_layer2d_forward(plstm_context *ctx, const plstm_layer2d *L, plstm_dtype dtype,
                                   const void *params, int B, int X, int Y, const void *x,
                                   void *y, void *acts)
{
    const char *what = "plstm_layer2d_forward";
    PLSTM_TRY(l2d_check_call(ctx, L, dtype, params, B, X, Y, what));
    PLSTM_CHECK_ARG(x && y, "%s: NULL input or output", what);
    nf_layout l;
    PLSTM_TRY(nf_layout_make(L, dtype, B, X, Y, &l));
    const l2d_dims *d = &l.d;
    const size_t nslot = slots_size(&l), ng = d->G * d->Dh, ny = d->N * d->Dy;
    void *own = NULL, *ws = malloc((nslot + 2 * ng + ny) * d->esz);
    if (!acts)
        acts = own = malloc(l.total * d->esz);
    if (!ws || !acts) {
        free(ws);
        free(own);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    }
    const int nt = l2d_threads(ctx);
    nf_slots sl;
    slots_make(&l, ws, &sl);
    void *yf = l2d_at(ws, d, nslot), *ug = l2d_at(ws, d, nslot + ng);
    void *zt = l2d_at(ws, d, nslot + 2 * ng), *zsum = l2d_at(acts, d, l.zsum);
    plstm_status s = l2d_front_forward(ctx, L, &l.f, params, x, acts);
    const plstm_core2d_desc cd = l2d_core_desc(L, d);
    l2d_zero(d, zsum, ny);
    for (int oi = 0; oi < NO && s == PLSTM_OK; oi++) {
        flip_in(L, &l, acts, oi, &sl, nt);
        plstm_core2d_inputs in = slot_inputs(L, &l, &sl);
        plstm_core2d_outputs out = {yf, NULL, NULL};
        s = plstm_core2d_forward(ctx, &cd, &in, &out);
        void *yh = l2d_at(acts, d, l.yh[oi]);
        if (s == PLSTM_OK) {
            flip_out(d, ug, yf, flip_x(L, oi), flip_y(L, oi), nt);
            s = plstm_grid_to_heads(ctx, dtype, B, X, Y, X, Y, d->H, d->Dh, ug, yh);
        }
        if (s == PLSTM_OK)
            s = l2d_norm_forward(ctx, L, d, params, yh, zt);
        if (s == PLSTM_OK)
            s = plstm_axpy(ctx, dtype, ny, 1.0 / NO, zt, zsum);
    }
    if (s == PLSTM_OK)
        s = l2d_out_forward(ctx, L, d, params, zsum, x, y, l2d_at(acts, d, l.tmp));
    free(ws);
    free(own);
    return s;
}

plstm_status plstm_layer2d_backward(plstm_context *ctx, const plstm_layer2d *L,
                                    plstm_dtype dtype, const void *params, int B, int X, int Y,
                                    const void *x, const void *acts, const void *dy, void *dx,
                                    void *grads)
{
    const char *what = "plstm_layer2d_backward";
    PLSTM_TRY(l2d_check_call(ctx, L, dtype, params, B, X, Y, what));
    PLSTM_CHECK_ARG(x && acts && dy && grads, "%s: NULL input, activations, dy or grads", what);
    nf_layout l;
    PLSTM_TRY(nf_layout_make(L, dtype, B, X, Y, &l));
    const l2d_dims *d = &l.d;
    l2d_dfront df;
    l2d_dfront_layout(L, &l.f, 0, &df);
    const size_t nslot = slots_size(&l), ng = d->G * d->Dh, ny = d->N * d->Dy;
    const size_t o_in = df.size, o_din = o_in + nslot, o_dz = o_din + nslot;
    const size_t o_dyh = o_dz + ny, o_ug = o_dyh + ny, o_dyf = o_ug + ng;
    const size_t o_work = o_dyf + ng, total = o_work + l2d_front_backward_work(&l.f);
    void *ws = malloc(total * d->esz);
    if (!ws)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    const int nt = l2d_threads(ctx);
    nf_slots in_sl, g_sl;
    slots_make(&l, l2d_at(ws, d, o_in), &in_sl);
    slots_make(&l, l2d_at(ws, d, o_din), &g_sl);
    void *dz = l2d_at(ws, d, o_dz), *dyh = l2d_at(ws, d, o_dyh);
    void *ug = l2d_at(ws, d, o_ug), *dyf = l2d_at(ws, d, o_dyf), *work = l2d_at(ws, d, o_work);
    if (dx)
        l2d_zero(d, dx, d->N * (size_t)d->Din);
    plstm_status s = l2d_out_backward(ctx, L, d, params, l2d_cat(acts, d, l.zsum), x, dy, dz, dx,
                                      grads, work);
    scale_buf(d, dz, 1.0 / NO, ny); /* the mean over orientations */
    size_t doff[NT];
    src_offsets(NULL, &df, doff);
    for (int i = 0; i < L2D_QKVD_N; i++)
        l2d_zero(d, l2d_at(ws, d, doff[i]), d->G * l.per_node[i]);
    const plstm_core2d_desc cd = l2d_core_desc(L, d);
    for (int oi = 0; oi < NO && s == PLSTM_OK; oi++) {
        const int fx = flip_x(L, oi), fy = flip_y(L, oi);
        s = l2d_norm_backward(ctx, L, d, params, l2d_cat(acts, d, l.yh[oi]), dz, dyh, grads);
        if (s == PLSTM_OK)
            s = plstm_heads_to_grid(ctx, dtype, B, X, Y, X, Y, d->H, d->Dh, dyh, ug);
        if (s != PLSTM_OK)
            break;
        flip_out(d, dyf, ug, fx, fy, nt);
        flip_in(L, &l, acts, oi, &in_sl, nt);
        plstm_core2d_inputs in = slot_inputs(L, &l, &in_sl);
        plstm_core2d_cotangents dout = {dyf, NULL, NULL};
        void *g[NT];
        for (int i = 0; i < NT; i++)
            g[i] = doff[i] == L2D_ABSENT ? NULL : g_sl.t[i];
        plstm_core2d_grads gr = {g[L2D_Q], g[L2D_K], g[L2D_V],
                                 g[L2D_QKVD_N + L2D_G_SR], g[L2D_QKVD_N + L2D_G_SD],
                                 g[L2D_QKVD_N + L2D_G_TRL], g[L2D_QKVD_N + L2D_G_TDU],
                                 g[L2D_QKVD_N + L2D_G_TDL], g[L2D_QKVD_N + L2D_G_TRU],
                                 g[L2D_QKVD_N + L2D_G_ML], g[L2D_QKVD_N + L2D_G_MU], g[L2D_D],
                                 NULL, NULL};
        s = plstm_core2d_backward(ctx, &cd, &in, &dout, &gr);
        if (s != PLSTM_OK)
            break;
        /* un-flip: Q K V D accumulate over orientations, gates go to slice oi */
        for (int i = 0; i < L2D_QKVD_N; i++)
            flip_add(d, l2d_at(ws, d, doff[i]), g[i], l.per_node[i], fx, fy, nt);
        for (int i = L2D_QKVD_N; i < NT; i++) {
            if (!g[i])
                continue;
            const size_t node = l.per_node[i] * d->esz, plane = d->XY * node;
            char *dst = (char *)l2d_at(ws, d, doff[i]) + (size_t)oi * plane;
            cpu_flip_grid(dst, 4 * plane, g[i], plane, d->B * d->H, d->X, d->Y, node, fx, fy, nt);
        }
    }
    if (s == PLSTM_OK)
        s = l2d_front_backward(ctx, L, &l.f, params, x, acts, &df, ws, work, dx, grads);
    free(ws);
    return s;
}
