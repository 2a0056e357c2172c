/* The parts of the 2D layers around the core (plstm-math.md §4.1–4.3, §4.5):
 * conv, sub-layers, gate assembly into the fused-core layout, and after the
 * core the multi-head RMSNorm, out projection and passthrough. */
#include "layers/plstm2d_internal.h"
#include "layers/sublayer_impl.h"
#include "plstm/nn.h"

#include <stdlib.h>
#include <string.h>

int l2d_threads(const plstm_context *ctx) { return sl_threads(ctx); }

void l2d_zero(const l2d_dims *d, void *buf, size_t n)
{
    if (buf && n)
        memset(buf, 0, n * d->esz);
}

plstm_status l2d_check_call(plstm_context *ctx, const plstm_layer2d *L, plstm_dtype dtype,
                            const void *params, int B, int X, int Y, const char *what)
{
    PLSTM_TRY(sl_check(ctx, dtype, what));
    PLSTM_CHECK_ARG(L && params, "%s: NULL layer or parameters", what);
    PLSTM_CHECK_ARG(B >= 1 && X >= 1 && Y >= 1, "%s: input size B %d, X %d, Y %d must be >= 1",
                    what, B, X, Y);
    const double nodes = (double)B * X * Y * L->cfg.num_heads * 4;
    PLSTM_CHECK_ARG(nodes < 2147483647.0, "%s: input size B %d, X %d, Y %d is too large", what, B,
                    X, Y);
    return PLSTM_OK;
}

plstm_status l2d_make_dims(const plstm_layer2d *L, plstm_dtype dtype, int B, int X, int Y,
                           l2d_dims *d)
{
    const plstm_layer2d_config *c = &L->cfg;
    memset(d, 0, sizeof *d);
    d->dtype = dtype;
    d->esz = plstm_dtype_size(dtype);
    d->B = B, d->X = X, d->Y = Y, d->H = c->num_heads, d->Din = c->input_dim;
    d->DK = c->DK, d->DV = c->DV;
    d->JQ = c->JQ, d->JK = c->JK, d->JV = c->JV, d->JT = c->JT, d->JO = c->JO;
    d->XY = (size_t)X * Y;
    d->N = (size_t)B * d->XY;
    d->G = d->N * (size_t)d->H;
    d->PQ = (size_t)d->DK * d->JQ;
    d->PK = (size_t)d->DK * d->JK;
    d->PV = (size_t)d->DV * d->JV;
    d->PD = (size_t)d->JO * d->JQ * d->JK * d->JV;
    d->PS = (size_t)d->JT * d->JK * d->JV;
    d->PT = (size_t)d->JT * d->JT;
    d->PM = (size_t)d->JO * d->JQ * d->JT;
    d->Dh = (size_t)d->DV * d->JO;
    d->Dy = d->Dh * (size_t)d->H;
    d->Dout = (size_t)L->Dout;
    return PLSTM_OK;
}

/* ---- sub-layer list ----------------------------------------------------- */

static void add_sub(l2d_front *f, l2d_subkind kind, const void *layer, int role, char part,
                    size_t width, size_t nacts, int has_dx)
{
    l2d_sub *s = &f->sub[f->nsub];
    s->kind = kind, s->layer = layer, s->role = role, s->part = part;
    s->width = width, s->nacts = nacts, s->has_dx = has_dx;
    f->role_index[role] = f->nsub++;
}

static void add_gate(l2d_front *f, const plstm_gate *g, int role, char part)
{
    add_sub(f, L2D_SUB_GATE, g, role, part, (size_t)g->cfg.num_heads * g->P,
            plstm_gate_activation_size(g, f->d.N), g->cfg.weight);
}

static void add_trans(l2d_front *f, const plstm_transition *t, int role)
{
    add_sub(f, L2D_SUB_TRANS, t, role, 'T', (size_t)t->cfg.num_heads * t->cfg.JT * t->cfg.JT,
            plstm_transition_activation_size(t, f->d.N), t->cfg.weight);
}

static void add_qkv(l2d_front *f, const plstm_qkv *q, int role, char part)
{
    add_sub(f, L2D_SUB_QKV, q, role, part, (size_t)q->cfg.num_heads * q->cfg.DK * q->cfg.J,
            plstm_qkv_activation_size(q, f->d.N), 1);
}

void l2d_front_layout(const plstm_layer2d *L, const l2d_dims *d, plstm_head_orientation_map map,
                      size_t base, l2d_front *f)
{
    memset(f, 0, sizeof *f);
    f->d = *d;
    f->map = map;
    for (int r = 0; r < L2D_R_N; r++)
        f->role_index[r] = -1;
    const int P = L->cfg.mode == PLSTM_LAYER2D_P;
    if (P) {
        add_sub(f, L2D_SUB_OGATE, &L->ogate, L2D_R_OGATE, 'O', (size_t)4 * d->H,
                plstm_orientation_gate_activation_size(&L->ogate, d->N), 1);
        add_gate(f, &L->source, L2D_R_S, 'S');
        add_trans(f, &L->transition, L2D_R_T);
        add_gate(f, &L->mark, L2D_R_M, 'M');
    } else {
        add_gate(f, &L->source_r, L2D_R_SR, 'S');
        add_gate(f, &L->source_d, L2D_R_SD, 'S');
        add_trans(f, &L->transition_r, L2D_R_TR);
        add_trans(f, &L->transition_d, L2D_R_TD);
        add_trans(f, &L->transition_rd, L2D_R_TRD);
        add_gate(f, &L->mark_l, L2D_R_ML, 'M');
        add_gate(f, &L->mark_u, L2D_R_MU, 'M');
    }
    add_gate(f, &L->direct, L2D_R_D, 'D');
    add_qkv(f, &L->query, L2D_R_Q, 'Q');
    add_qkv(f, &L->key, L2D_R_K, 'K');
    add_qkv(f, &L->value, L2D_R_V, 'V');

    size_t off = base;
    f->c = L2D_ABSENT;
    if (L->cfg.conv) {
        f->c = off;
        off += d->N * (size_t)d->Din;
    }
    for (int i = 0; i < f->nsub; i++) {
        f->sub[i].out = off;
        off += d->N * f->sub[i].width;
        f->sub[i].acts = off;
        off += f->sub[i].nacts;
    }
    const size_t pg[L2D_QKVD_N] = {d->PQ, d->PK, d->PV, d->PD};
    for (int i = 0; i < L2D_QKVD_N; i++) {
        f->grid[i] = off;
        off += d->G * pg[i];
    }
    const size_t pgate[L2D_G_N] = {d->PS, d->PS, d->PT, d->PT, d->PT, d->PT, d->PM, d->PM};
    for (int i = 0; i < L2D_G_N; i++) {
        int absent;
        if (P)
            absent = i == L2D_G_TDL || i == L2D_G_TRU || i == L2D_G_MU; /* aliases */
        else
            absent = i == (L->cfg.chirality == PLSTM_CHIRALITY_L ? L2D_G_TDL : L2D_G_TRU);
        f->gate[i] = absent ? L2D_ABSENT : off;
        if (!absent)
            off += 4 * d->G * pgate[i];
    }
    f->size = off - base;
}

plstm_core2d_desc l2d_core_desc(const plstm_layer2d *L, const l2d_dims *d)
{
    plstm_core2d_desc cd;
    memset(&cd, 0, sizeof cd);
    cd.dtype = d->dtype;
    cd.B = d->B * d->H, cd.X = d->X, cd.Y = d->Y;
    cd.DK = d->DK, cd.DV = d->DV, cd.JQ = d->JQ, cd.JK = d->JK, cd.JV = d->JV, cd.JT = d->JT;
    cd.JO = d->JO;
    cd.scale = 1.0 / sqrt((double)d->DK);
    cd.algo = L->cfg.algo;
    return cd;
}

void l2d_core_gates(const plstm_layer2d *L, const l2d_front *f, void *buf, const void **g)
{
    for (int i = 0; i < L2D_G_N; i++)
        g[i] = l2d_at(buf, &f->d, f->gate[i]);
    if (L->cfg.mode == PLSTM_LAYER2D_P) {
        g[L2D_G_TDL] = g[L2D_G_TDU];
        g[L2D_G_TRU] = g[L2D_G_TRL];
        g[L2D_G_MU] = g[L2D_G_ML];
    }
}

static plstm_gates2d_desc gates_desc(const plstm_layer2d *L, const l2d_front *f)
{
    const l2d_dims *d = &f->d;
    plstm_gates2d_desc gd = {.dtype = d->dtype, .B = d->B, .X = d->X, .Y = d->Y, .Xp = d->X,
                             .Yp = d->Y, .H = d->H, .JT = d->JT, .JK = d->JK, .JV = d->JV,
                             .JQ = d->JQ, .JO = d->JO, .map = f->map};
    return gd;
}

/* ---- sub-layer dispatch ------------------------------------------------- */

static plstm_status sub_forward(plstm_context *ctx, const l2d_sub *s, plstm_dtype dt,
                                const void *params, size_t N, const void *x, void *out,
                                void *acts)
{
    switch (s->kind) {
    case L2D_SUB_GATE: return plstm_gate_forward(ctx, s->layer, dt, params, N, x, out, acts);
    case L2D_SUB_TRANS:
        return plstm_transition_forward(ctx, s->layer, dt, params, N, x, out, acts);
    case L2D_SUB_QKV: return plstm_qkv_forward(ctx, s->layer, dt, params, N, x, out, acts);
    default: return plstm_orientation_gate_forward(ctx, s->layer, dt, params, N, x, out, acts);
    }
}

static plstm_status sub_backward(plstm_context *ctx, const l2d_sub *s, plstm_dtype dt,
                                 const void *params, size_t N, const void *x, const void *acts,
                                 const void *dout, void *dx, void *grads)
{
    switch (s->kind) {
    case L2D_SUB_GATE:
        return plstm_gate_backward(ctx, s->layer, dt, params, N, x, acts, dout, dx, grads);
    case L2D_SUB_TRANS:
        return plstm_transition_backward(ctx, s->layer, dt, params, N, x, acts, dout, dx, grads);
    case L2D_SUB_QKV:
        return plstm_qkv_backward(ctx, s->layer, dt, params, N, x, acts, dout, dx, grads);
    default:
        return plstm_orientation_gate_backward(ctx, s->layer, dt, params, N, x, acts, dout, dx,
                                               grads);
    }
}

static int reads_conv(const plstm_layer2d *L, char part)
{
    return L->cfg.conv && strchr(L->cfg.conv_inputs, part) != NULL;
}

/* Sub-layer outputs of a role (NULL when the role is not in the list). */
static void *role_buf(const l2d_front *f, void *buf, const size_t *offs, int role)
{
    const int i = f->role_index[role];
    return i < 0 ? NULL : l2d_at(buf, &f->d, offs[i]);
}

static const int qkvd_roles[L2D_QKVD_N] = {L2D_R_Q, L2D_R_K, L2D_R_V, L2D_R_D};

/* ---- front forward ------------------------------------------------------ */

plstm_status l2d_front_forward(plstm_context *ctx, const plstm_layer2d *L, const l2d_front *f,
                               const void *params, const void *x, void *acts)
{
    const l2d_dims *d = &f->d;
    void *c = l2d_at(acts, d, f->c);
    if (c) {
        const char *p = params;
        PLSTM_TRY(plstm_dwconv2d_forward(ctx, d->dtype, d->B, d->X, d->Y, d->Din, 3, 3, x,
                                         p + L->conv_weight_off * d->esz,
                                         p + L->conv_bias_off * d->esz, c));
    }
    size_t outs[L2D_MAX_SUBS];
    for (int i = 0; i < f->nsub; i++) {
        const l2d_sub *s = &f->sub[i];
        outs[i] = s->out;
        const void *in = reads_conv(L, s->part) ? c : x;
        PLSTM_TRY(sub_forward(ctx, s, d->dtype, params, d->N, in, l2d_at(acts, d, s->out),
                              l2d_at(acts, d, s->acts)));
    }
    const size_t pg[L2D_QKVD_N] = {d->PQ, d->PK, d->PV, d->PD};
    for (int i = 0; i < L2D_QKVD_N; i++)
        PLSTM_TRY(plstm_heads_to_grid(ctx, d->dtype, d->B, d->X, d->Y, d->X, d->Y, d->H, pg[i],
                                      role_buf(f, acts, outs, qkvd_roles[i]),
                                      l2d_at(acts, d, f->grid[i])));
    plstm_gates2d_desc gd = gates_desc(L, f);
    plstm_gates2d g = {l2d_at(acts, d, f->gate[L2D_G_SR]),  l2d_at(acts, d, f->gate[L2D_G_SD]),
                       l2d_at(acts, d, f->gate[L2D_G_TRL]), l2d_at(acts, d, f->gate[L2D_G_TDU]),
                       l2d_at(acts, d, f->gate[L2D_G_TDL]), l2d_at(acts, d, f->gate[L2D_G_TRU]),
                       l2d_at(acts, d, f->gate[L2D_G_ML]),  l2d_at(acts, d, f->gate[L2D_G_MU])};
    if (L->cfg.mode == PLSTM_LAYER2D_P)
        return plstm_pmode_gates_forward(ctx, &gd, role_buf(f, acts, outs, L2D_R_OGATE),
                                         role_buf(f, acts, outs, L2D_R_S),
                                         role_buf(f, acts, outs, L2D_R_T),
                                         role_buf(f, acts, outs, L2D_R_M), &g);
    plstm_dmode_gates dm = {role_buf(f, acts, outs, L2D_R_SR),  role_buf(f, acts, outs, L2D_R_SD),
                            role_buf(f, acts, outs, L2D_R_TR),  role_buf(f, acts, outs, L2D_R_TD),
                            role_buf(f, acts, outs, L2D_R_TRD), role_buf(f, acts, outs, L2D_R_ML),
                            role_buf(f, acts, outs, L2D_R_MU)};
    return plstm_dmode_gates_forward(ctx, &gd, L->cfg.chirality, &dm, &g);
}

/* ---- front backward ----------------------------------------------------- */

void l2d_dfront_layout(const plstm_layer2d *L, const l2d_front *f, size_t base, l2d_dfront *df)
{
    const l2d_dims *d = &f->d;
    size_t off = base;
    const size_t pg[L2D_QKVD_N] = {d->PQ, d->PK, d->PV, d->PD};
    for (int i = 0; i < L2D_QKVD_N; i++) {
        df->grid[i] = off;
        off += d->G * pg[i];
    }
    const size_t pgate[L2D_G_N] = {d->PS, d->PS, d->PT, d->PT, d->PT, d->PT, d->PM, d->PM};
    for (int i = 0; i < L2D_G_N; i++) {
        int absent = L->cfg.mode == PLSTM_LAYER2D_D &&
                     i == (L->cfg.chirality == PLSTM_CHIRALITY_L ? L2D_G_TDL : L2D_G_TRU);
        df->gate[i] = absent ? L2D_ABSENT : off;
        if (!absent)
            off += 4 * d->G * pgate[i];
    }
    df->size = off - base;
}

void l2d_core_dgates(const l2d_dfront *df, const l2d_dims *d, void *dbuf, void **g)
{
    for (int i = 0; i < L2D_G_N; i++)
        g[i] = l2d_at(dbuf, d, df->gate[i]);
}

size_t l2d_front_backward_work(const l2d_front *f)
{
    size_t n = 2 * f->d.N * (size_t)f->d.Din; /* dx temp, dc */
    for (int i = 0; i < f->nsub; i++)
        n += f->d.N * f->sub[i].width;
    return n;
}

plstm_status l2d_front_backward(plstm_context *ctx, const plstm_layer2d *L, const l2d_front *f,
                                const void *params, const void *x, const void *acts,
                                const l2d_dfront *df, void *dbuf, void *work, void *dx,
                                void *grads)
{
    const l2d_dims *d = &f->d;
    const size_t nx = d->N * (size_t)d->Din;
    size_t douts[L2D_MAX_SUBS], outs[L2D_MAX_SUBS], off = 0;
    void *dxt = l2d_at(work, d, off);
    off += nx;
    void *dc = l2d_at(work, d, off);
    off += nx;
    for (int i = 0; i < f->nsub; i++) {
        douts[i] = off;
        off += d->N * f->sub[i].width;
        outs[i] = f->sub[i].out;
    }
    const size_t pg[L2D_QKVD_N] = {d->PQ, d->PK, d->PV, d->PD};
    for (int i = 0; i < L2D_QKVD_N; i++)
        PLSTM_TRY(plstm_grid_to_heads(ctx, d->dtype, d->B, d->X, d->Y, d->X, d->Y, d->H, pg[i],
                                      l2d_at(dbuf, d, df->grid[i]),
                                      role_buf(f, work, douts, qkvd_roles[i])));
    plstm_gates2d_desc gd = gates_desc(L, f);
    void *gg[L2D_G_N];
    l2d_core_dgates(df, d, dbuf, gg);
    plstm_gates2d dg = {gg[0], gg[1], gg[2], gg[3], gg[4], gg[5], gg[6], gg[7]};
    if (L->cfg.mode == PLSTM_LAYER2D_P) {
        PLSTM_TRY(plstm_pmode_gates_backward(
            ctx, &gd, role_buf(f, (void *)acts, outs, L2D_R_OGATE),
            role_buf(f, (void *)acts, outs, L2D_R_S), role_buf(f, (void *)acts, outs, L2D_R_T),
            &dg, role_buf(f, work, douts, L2D_R_OGATE), role_buf(f, work, douts, L2D_R_S),
            role_buf(f, work, douts, L2D_R_T), role_buf(f, work, douts, L2D_R_M)));
    } else {
        plstm_dmode_gates dm = {
            role_buf(f, work, douts, L2D_R_SR),  role_buf(f, work, douts, L2D_R_SD),
            role_buf(f, work, douts, L2D_R_TR),  role_buf(f, work, douts, L2D_R_TD),
            role_buf(f, work, douts, L2D_R_TRD), role_buf(f, work, douts, L2D_R_ML),
            role_buf(f, work, douts, L2D_R_MU)};
        PLSTM_TRY(plstm_dmode_gates_backward(ctx, &gd, L->cfg.chirality, &dg, &dm));
    }
    const void *c = l2d_cat(acts, d, f->c);
    if (c)
        l2d_zero(d, dc, nx);
    for (int i = 0; i < f->nsub; i++) {
        const l2d_sub *s = &f->sub[i];
        const int conv_in = reads_conv(L, s->part);
        void *target = conv_in ? dc : dx;
        const int want = s->has_dx && target;
        PLSTM_TRY(sub_backward(ctx, s, d->dtype, params, d->N, conv_in ? c : x,
                               l2d_cat(acts, d, s->acts), l2d_at(work, d, douts[i]),
                               want ? dxt : NULL, grads));
        if (want)
            PLSTM_TRY(plstm_axpy(ctx, d->dtype, nx, 1.0, dxt, target));
    }
    if (c) {
        const char *p = params;
        char *g = grads;
        PLSTM_TRY(plstm_dwconv2d_backward(ctx, d->dtype, d->B, d->X, d->Y, d->Din, 3, 3, x,
                                          p + L->conv_weight_off * d->esz, dc,
                                          dx ? dxt : NULL, g + L->conv_weight_off * d->esz,
                                          g + L->conv_bias_off * d->esz));
        if (dx)
            PLSTM_TRY(plstm_axpy(ctx, d->dtype, nx, 1.0, dxt, dx));
    }
    return PLSTM_OK;
}

/* ---- after the core ----------------------------------------------------- */

static const void *pptr(const void *base, const l2d_dims *d, size_t off)
{
    return off == PLSTM_NO_PARAM ? NULL : (const char *)base + off * d->esz;
}

static void *gptr(void *base, const l2d_dims *d, size_t off)
{
    return off == PLSTM_NO_PARAM ? NULL : (char *)base + off * d->esz;
}

plstm_status l2d_norm_forward(plstm_context *ctx, const plstm_layer2d *L, const l2d_dims *d,
                              const void *params, const void *yh, void *z)
{
    if (L->mhnorm_off == PLSTM_NO_PARAM) {
        if (z != yh)
            memcpy(z, yh, d->N * d->Dy * d->esz);
        return PLSTM_OK;
    }
    return plstm_norm_forward(ctx, d->dtype, PLSTM_NORM_RMS, (int)d->N, (int)d->Dy, d->H,
                              L->cfg.mhnorm_eps, yh, pptr(params, d, L->mhnorm_off), NULL, z);
}

plstm_status l2d_norm_backward(plstm_context *ctx, const plstm_layer2d *L, const l2d_dims *d,
                               const void *params, const void *yh, const void *dz, void *dyh,
                               void *grads)
{
    if (L->mhnorm_off == PLSTM_NO_PARAM) {
        if (dyh != dz)
            memcpy(dyh, dz, d->N * d->Dy * d->esz);
        return PLSTM_OK;
    }
    return plstm_norm_backward(ctx, d->dtype, PLSTM_NORM_RMS, (int)d->N, (int)d->Dy, d->H,
                               L->cfg.mhnorm_eps, yh, pptr(params, d, L->mhnorm_off), dz, dyh,
                               gptr(grads, d, L->mhnorm_off), NULL);
}

plstm_status l2d_out_forward(plstm_context *ctx, const plstm_layer2d *L, const l2d_dims *d,
                             const void *params, const void *z, const void *x, void *y,
                             void *tmp)
{
    if (L->outproj_weight_off != PLSTM_NO_PARAM)
        PLSTM_TRY(plstm_linear_forward(ctx, d->dtype, (int)d->N, (int)d->Dy, (int)d->Dout, z,
                                       pptr(params, d, L->outproj_weight_off),
                                       pptr(params, d, L->outproj_bias_off), y));
    else
        memcpy(y, z, d->N * d->Dout * d->esz);
    if (L->passthrough_off == PLSTM_NO_PARAM)
        return PLSTM_OK;
    PLSTM_TRY(plstm_scale_forward(ctx, d->dtype, (int)d->N, d->Din, x,
                                  pptr(params, d, L->passthrough_off), tmp));
    return plstm_axpy(ctx, d->dtype, d->N * (size_t)d->Din, 1.0, tmp, y);
}

plstm_status l2d_out_backward(plstm_context *ctx, const plstm_layer2d *L, const l2d_dims *d,
                              const void *params, const void *z, const void *x, const void *dy,
                              void *dz, void *dx, void *grads, void *tmp)
{
    if (L->outproj_weight_off != PLSTM_NO_PARAM)
        PLSTM_TRY(plstm_linear_backward(ctx, d->dtype, (int)d->N, (int)d->Dy, (int)d->Dout, z,
                                        pptr(params, d, L->outproj_weight_off), dy, dz,
                                        gptr(grads, d, L->outproj_weight_off),
                                        gptr(grads, d, L->outproj_bias_off)));
    else
        memcpy(dz, dy, d->N * d->Dout * d->esz);
    if (L->passthrough_off == PLSTM_NO_PARAM)
        return PLSTM_OK;
    PLSTM_TRY(plstm_scale_backward(ctx, d->dtype, (int)d->N, d->Din, x,
                                   pptr(params, d, L->passthrough_off), dy, dx ? tmp : NULL,
                                   gptr(grads, d, L->passthrough_off)));
    return dx ? plstm_axpy(ctx, d->dtype, d->N * (size_t)d->Din, 1.0, tmp, dx) : PLSTM_OK;
}
