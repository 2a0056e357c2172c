/* NN primitives, part 2: causal depthwise conv, patch embedding, bicubic
 * resize. Forward against naive loops / hand-derived values / the reference
 * model's resized position embedding; backward against finite differences. */
#include "testutil.h"
#include "nn_fd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static plstm_context *new_ctx(void)
{
    plstm_context *ctx = NULL;
    TU_OK(plstm_context_create(&ctx, PLSTM_BACKEND_CPU, 0));
    return ctx;
}

#define ACC0 0.5
#define JUNK 1e30

/* ======================================================================== */
/* causal depthwise conv                                                    */
/* ======================================================================== */

typedef struct {
    plstm_context *ctx;
    int B, X, Y, C, KX, KY;
    double *x, *w, *b;
} conv_case;

static void conv_fwd(void *u, double *y)
{
    conv_case *c = u;
    TU_OK(plstm_dwconv2d_forward(c->ctx, PLSTM_F64, c->B, c->X, c->Y, c->C, c->KX, c->KY, c->x,
                                 c->w, c->b, y));
}

/* §5.5 literally: y[x,y,c] = b_c + Σ w_c[i,j] in[x−(KX−1)+i, y−(KY−1)+j, c]. */
static void conv_naive(const conv_case *c, double *y)
{
    for (int b = 0; b < c->B; b++)
        for (int px = 0; px < c->X; px++)
            for (int py = 0; py < c->Y; py++)
                for (int ch = 0; ch < c->C; ch++) {
                    double s = c->b ? c->b[ch] : 0;
                    for (int i = 0; i < c->KX; i++)
                        for (int j = 0; j < c->KY; j++) {
                            const int sx = px - (c->KX - 1) + i, sy = py - (c->KY - 1) + j;
                            if (sx < 0 || sy < 0)
                                continue;
                            s += c->w[((size_t)ch * c->KX + i) * c->KY + j] *
                                 c->x[(((size_t)b * c->X + sx) * c->Y + sy) * c->C + ch];
                        }
                    y[(((size_t)b * c->X + px) * c->Y + py) * c->C + ch] = s;
                }
}

static void check_conv(plstm_context *ctx, tu_rng *rng, int B, int X, int Y, int C, int KX, int KY,
                       int fd)
{
    const size_t N = (size_t)B * X * Y * C, K = (size_t)C * KX * KY;
    conv_case c = {ctx, B, X, Y, C, KX, KY, nf_rand(rng, N, -1, 1), nf_rand(rng, K, -1, 1),
                   nf_rand(rng, C, -1, 1)};
    double *y = tu_calloc(N, 8), *ref = tu_calloc(N, 8);
    conv_fwd(&c, y);
    conv_naive(&c, ref);
    TU_ASSERT_CLOSE(tu_rel_err_f64(y, ref, N), 1e-14, "dwconv vs naive loop");
    float *x32 = nf_to_f32(c.x, N), *w32 = nf_to_f32(c.w, K), *b32 = nf_to_f32(c.b, C);
    float *y32 = tu_calloc(N, 4);
    TU_OK(plstm_dwconv2d_forward(ctx, PLSTM_F32, B, X, Y, C, KX, KY, x32, w32, b32, y32));
    TU_ASSERT_CLOSE(nf_err_32_64(y32, y, N), 1e-5, "dwconv f32 vs f64");

    double *dy = nf_rand(rng, N, -1, 1), *dx = nf_const(N, JUNK);
    double *dw = nf_const(K, ACC0), *db = nf_const(C, ACC0);
    TU_OK(plstm_dwconv2d_backward(ctx, PLSTM_F64, B, X, Y, C, KX, KY, c.x, c.w, dy, dx, dw, db));
    nf_sub(dw, K, ACC0);
    nf_sub(db, C, ACC0);
    if (fd) {
        TU_ASSERT_CLOSE(nf_check(conv_fwd, &c, N, dy, c.x, N, dx), 1e-7, "dwconv dx");
        TU_ASSERT_CLOSE(nf_check(conv_fwd, &c, N, dy, c.w, K, dw), 1e-7, "dwconv dw");
        TU_ASSERT_CLOSE(nf_check(conv_fwd, &c, N, dy, c.b, C, db), 1e-7, "dwconv db");
    } else { /* threaded against one thread */
        double *dx1 = tu_calloc(N, 8), *dw1 = tu_calloc(K, 8);
        TU_OK(plstm_context_set_threads(ctx, 1));
        TU_OK(plstm_dwconv2d_backward(ctx, PLSTM_F64, B, X, Y, C, KX, KY, c.x, c.w, dy, dx1, dw1,
                                      NULL));
        TU_OK(plstm_context_set_threads(ctx, 0));
        TU_ASSERT_CLOSE(tu_rel_err_f64(dx, dx1, N), 0, "dwconv dx threads");
        TU_ASSERT_CLOSE(tu_rel_err_f64(dw, dw1, K), 1e-14, "dwconv dw threads");
        free(dx1); free(dw1);
    }
    free(c.x); free(c.w); free(c.b); free(y); free(ref); free(x32); free(w32); free(b32);
    free(y32); free(dy); free(dx); free(dw); free(db);
}

static void test_dwconv(void **state)
{
    (void)state;
    plstm_context *ctx = new_ctx();
    tu_rng rng;
    tu_rng_seed(&rng, 11);
    check_conv(ctx, &rng, 2, 4, 5, 3, 3, 3, 1);
    check_conv(ctx, &rng, 1, 1, 9, 2, 1, 4, 1); /* the 1D conv, k = 4 */
    check_conv(ctx, &rng, 2, 3, 2, 1, 2, 3, 1); /* kernel larger than Y */
    check_conv(ctx, &rng, 2, 14, 13, 64, 3, 3, 0);
    plstm_context_destroy(ctx);
}

/* ======================================================================== */
/* patch embedding                                                          */
/* ======================================================================== */

typedef struct {
    plstm_context *ctx;
    int B, H, W, C, dim, p, s;
    double *img, *w, *b;
} patch_case;

static void patch_fwd(void *u, double *y)
{
    patch_case *c = u;
    TU_OK(plstm_patch_embed_forward(c->ctx, PLSTM_F64, c->B, c->H, c->W, c->C, c->dim, c->p, c->s,
                                    c->img, c->w, c->b, y));
}

/* torch Conv2d on the channels-first view, written as loops. */
static void patch_naive(const patch_case *c, double *y)
{
    const int Hp = (c->H - c->p) / c->s + 1, Wp = (c->W - c->p) / c->s + 1;
    for (int b = 0; b < c->B; b++)
        for (int i = 0; i < Hp; i++)
            for (int j = 0; j < Wp; j++)
                for (int o = 0; o < c->dim; o++) {
                    double acc = c->b ? c->b[o] : 0;
                    for (int ch = 0; ch < c->C; ch++)
                        for (int ki = 0; ki < c->p; ki++)
                            for (int kj = 0; kj < c->p; kj++)
                                acc += c->w[(((size_t)o * c->C + ch) * c->p + ki) * c->p + kj] *
                                       c->img[(((size_t)b * c->H + i * c->s + ki) * c->W +
                                               j * c->s + kj) * c->C + ch];
                    y[(((size_t)b * Hp + i) * Wp + j) * c->dim + o] = acc;
                }
}

static void check_patch(plstm_context *ctx, tu_rng *rng, int B, int H, int W, int C, int dim, int p,
                        int s)
{
    const int Hp = (H - p) / s + 1, Wp = (W - p) / s + 1;
    const size_t NI = (size_t)B * H * W * C, K = (size_t)dim * C * p * p;
    const size_t NY = (size_t)B * Hp * Wp * dim;
    patch_case c = {ctx, B, H, W, C, dim, p, s, nf_rand(rng, NI, -1, 1), nf_rand(rng, K, -1, 1),
                    nf_rand(rng, dim, -1, 1)};
    double *y = tu_calloc(NY, 8), *ref = tu_calloc(NY, 8);
    patch_fwd(&c, y);
    patch_naive(&c, ref);
    TU_ASSERT_CLOSE(tu_rel_err_f64(y, ref, NY), 1e-14, "patch embed vs naive conv");
    float *i32 = nf_to_f32(c.img, NI), *w32 = nf_to_f32(c.w, K), *b32 = nf_to_f32(c.b, dim);
    float *y32 = tu_calloc(NY, 4);
    TU_OK(plstm_patch_embed_forward(ctx, PLSTM_F32, B, H, W, C, dim, p, s, i32, w32, b32, y32));
    TU_ASSERT_CLOSE(nf_err_32_64(y32, y, NY), 1e-5, "patch embed f32 vs f64");

    double *dy = nf_rand(rng, NY, -1, 1), *di = nf_const(NI, JUNK);
    double *dw = nf_const(K, ACC0), *db = nf_const(dim, ACC0);
    TU_OK(plstm_patch_embed_backward(ctx, PLSTM_F64, B, H, W, C, dim, p, s, c.img, c.w, dy, di, dw,
                                     db));
    nf_sub(dw, K, ACC0);
    nf_sub(db, dim, ACC0);
    TU_ASSERT_CLOSE(nf_check(patch_fwd, &c, NY, dy, c.img, NI, di), 1e-7, "patch embed dimages");
    TU_ASSERT_CLOSE(nf_check(patch_fwd, &c, NY, dy, c.w, K, dw), 1e-7, "patch embed dweight");
    TU_ASSERT_CLOSE(nf_check(patch_fwd, &c, NY, dy, c.b, dim, db), 1e-7, "patch embed dbias");
    /* Parameter gradients only (no dimages): the same dweight, accumulated twice. */
    double *dw2 = nf_const(K, 0);
    TU_OK(plstm_patch_embed_backward(ctx, PLSTM_F64, B, H, W, C, dim, p, s, c.img, c.w, dy, NULL,
                                     dw2, NULL));
    TU_OK(plstm_patch_embed_backward(ctx, PLSTM_F64, B, H, W, C, dim, p, s, c.img, c.w, dy, NULL,
                                     dw2, NULL));
    for (size_t i = 0; i < K; i++)
        assert_true(fabs(dw2[i] - 2 * dw[i]) < 1e-12);
    free(dw2);
    free(c.img); free(c.w); free(c.b); free(y); free(ref); free(i32); free(w32); free(b32);
    free(y32); free(dy); free(di); free(dw); free(db);
}

/* A batch large enough to be split into several im2col chunks (F32). */
static void check_patch_chunked(plstm_context *ctx, tu_rng *rng)
{
    const int B = 30, H = 64, W = 48, C = 3, dim = 5, p = 16, s = 8;
    const int Hp = (H - p) / s + 1, Wp = (W - p) / s + 1;
    const size_t NI = (size_t)B * H * W * C, K = (size_t)dim * C * p * p;
    const size_t NY = (size_t)B * Hp * Wp * dim;
    patch_case c = {ctx, B, H, W, C, dim, p, s, nf_rand(rng, NI, -1, 1), nf_rand(rng, K, -1, 1),
                    NULL};
    double *ref = tu_calloc(NY, 8), *dy = nf_rand(rng, NY, -1, 1), *dref = tu_calloc(NI, 8);
    patch_naive(&c, ref);
    for (int b = 0; b < B; b++) /* dimages by scattering dy through the weight */
        for (int i = 0; i < Hp; i++)
            for (int j = 0; j < Wp; j++)
                for (int o = 0; o < dim; o++)
                    for (int ch = 0; ch < C; ch++)
                        for (int ki = 0; ki < p; ki++)
                            for (int kj = 0; kj < p; kj++)
                                dref[(((size_t)b * H + i * s + ki) * W + j * s + kj) * C + ch] +=
                                    dy[(((size_t)b * Hp + i) * Wp + j) * dim + o] *
                                    c.w[(((size_t)o * C + ch) * p + ki) * p + kj];
    float *i32 = nf_to_f32(c.img, NI), *w32 = nf_to_f32(c.w, K), *y32 = tu_calloc(NY, 4);
    float *dy32 = nf_to_f32(dy, NY), *di32 = tu_calloc(NI, 4);
    TU_OK(plstm_patch_embed_forward(ctx, PLSTM_F32, B, H, W, C, dim, p, s, i32, w32, NULL, y32));
    TU_ASSERT_CLOSE(nf_err_32_64(y32, ref, NY), 1e-5, "patch embed chunked forward");
    TU_OK(plstm_patch_embed_backward(ctx, PLSTM_F32, B, H, W, C, dim, p, s, i32, w32, dy32, di32,
                                     NULL, NULL));
    TU_ASSERT_CLOSE(nf_err_32_64(di32, dref, NI), 1e-5, "patch embed chunked dimages");
    free(c.img); free(c.w); free(ref); free(dy); free(dref); free(i32); free(w32); free(y32);
    free(dy32); free(di32);
}

static void test_patch_embed(void **state)
{
    (void)state;
    plstm_context *ctx = new_ctx();
    tu_rng rng;
    tu_rng_seed(&rng, 12);
    check_patch(ctx, &rng, 2, 8, 6, 3, 4, 2, 2);  /* stride = patch */
    check_patch(ctx, &rng, 1, 7, 9, 2, 3, 3, 2);  /* overlapping patches */
    check_patch(ctx, &rng, 2, 9, 11, 1, 5, 4, 4); /* leftover border pixels */
    check_patch_chunked(ctx, &rng);
    plstm_context_destroy(ctx);
}

/* ======================================================================== */
/* bicubic resize                                                           */
/* ======================================================================== */

typedef struct {
    plstm_context *ctx;
    plstm_resize_kind kind;
    int B, h, w, h2, w2, dim;
    double *x;
} rs_case;

static void rs_fwd(void *u, double *y)
{
    rs_case *c = u;
    TU_OK(plstm_resize_forward(c->ctx, PLSTM_F64, c->kind, c->B, c->h, c->w, c->h2, c->w2, c->dim,
                               c->x, y));
}

static void test_resize_identity(void **state)
{
    (void)state;
    plstm_context *ctx = new_ctx();
    tu_rng rng;
    tu_rng_seed(&rng, 13);
    for (int k = 0; k < 2; k++) {
        const size_t N = 2 * 5 * 7 * 3;
        double *x = nf_rand(&rng, N, -1, 1), *y = tu_calloc(N, 8);
        TU_OK(plstm_resize_forward(ctx, PLSTM_F64, (plstm_resize_kind)k, 2, 5, 7, 5, 7, 3, x, y));
        assert_memory_equal(x, y, N * 8);
        TU_OK(plstm_resize_backward(ctx, PLSTM_F64, (plstm_resize_kind)k, 2, 5, 7, 5, 7, 3, x, y));
        assert_memory_equal(x, y, N * 8);
        free(x);
        free(y);
    }
    plstm_context_destroy(ctx);
}

/* 2×2 → 4×4 with hand-derived 1D weights R [4, 2]; Y = R·X·Rᵀ per channel.
 *
 * torch (A = −0.75): source = (o + 0.5)/2 − 0.5 = −0.25, 0.25, 0.75, 1.25, so
 * (floor, t) = (−1, .75), (0, .25), (0, .75), (1, .25). Kernel values
 *   t = .25: W(1.25) = ((A·1.25 − 5A)·1.25 + 8A)·1.25 − 4A = −0.10546875,
 *            W(.25) = ((A+2)·.25 − (A+3))·.25² + 1 = 0.87890625,
 *            W(.75) = 0.26171875, W(1.75) = −0.03515625  (taps floor−1 … floor+2);
 *   t = .75: the same four reversed.
 * Clamping taps into {0, 1} merges them:
 *   o=0: taps −2,−1,0,1 → 0,0,0,1: a: −0.03515625+0.26171875+0.87890625 = 1.10546875, b: −0.10546875
 *   o=1: taps −1,0,1,2 → 0,0,1,1: a: −0.10546875+0.87890625 = 0.7734375, b: 0.2265625
 *   o=2: mirror of o=1; o=3: mirror of o=0.
 * jax (Keys a = −0.5, renormalized, no clamping): k(.25) = 0.8671875,
 * k(.75) = 0.2265625, k(1.25) = −0.0703125:
 *   o=0: (0.8671875, −0.0703125)/0.796875 = (37/34, −3/34)
 *   o=1: (0.8671875, 0.2265625)/1.09375 = (111/140, 29/140); o=2, o=3 mirrored. */
static void check_hand(plstm_context *ctx, plstm_resize_kind kind, const double R[4][2])
{
    const double X[2][2][2] = {{{1, -2}, {2, 0.5}}, {{3, 4}, {-4, 1}}}; /* [h][w][dim] */
    double Y[4][4][2], want[4][4][2];
    TU_OK(plstm_resize_forward(ctx, PLSTM_F64, kind, 1, 2, 2, 4, 4, 2, X, Y));
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            for (int d = 0; d < 2; d++) {
                want[i][j][d] = 0;
                for (int a = 0; a < 2; a++)
                    for (int b = 0; b < 2; b++)
                        want[i][j][d] += R[i][a] * R[j][b] * X[a][b][d];
            }
    TU_ASSERT_CLOSE(tu_rel_err_f64(&Y[0][0][0], &want[0][0][0], 32), 1e-15, "resize 2x2->4x4");
    /* e.g. torch Y[1][2][0] = R1·X·R2ᵀ with R1 = (0.7734375, 0.2265625), R2 = (0.2265625, 0.7734375):
     * 0.7734375·0.2265625·1 + 0.7734375·0.7734375·2 + 0.2265625·0.2265625·3 + 0.2265625·0.7734375·(−4) */
}

static void test_resize_hand(void **state)
{
    (void)state;
    plstm_context *ctx = new_ctx();
    const double Rt[4][2] = {{1.10546875, -0.10546875},
                             {0.7734375, 0.2265625},
                             {0.2265625, 0.7734375},
                             {-0.10546875, 1.10546875}};
    const double Rj[4][2] = {{37.0 / 34, -3.0 / 34},
                             {111.0 / 140, 29.0 / 140},
                             {29.0 / 140, 111.0 / 140},
                             {-3.0 / 34, 37.0 / 34}};
    check_hand(ctx, PLSTM_RESIZE_BICUBIC_TORCH, Rt);
    check_hand(ctx, PLSTM_RESIZE_BICUBIC_JAX, Rj);
    double X[4] = {1, 2, 3, 4}, Y[16];
    TU_OK(plstm_resize_forward(ctx, PLSTM_F64, PLSTM_RESIZE_BICUBIC_TORCH, 1, 2, 2, 4, 4, 1, X, Y));
    const double y12 = 0.7734375 * 0.2265625 * 1 + 0.7734375 * 0.7734375 * 2 +
                       0.2265625 * 0.2265625 * 3 + 0.2265625 * 0.7734375 * 4;
    assert_true(fabs(Y[1 * 4 + 2] - y12) < 1e-15);
    plstm_context_destroy(ctx);
}

/* A constant is reproduced everywhere. When `ramp`, a linear ramp is
 * reproduced exactly wherever all 4 taps are inside the input. That holds for
 * the Keys kernel a = −0.5 (jax, upsampling) at any phase t, but for torch's
 * A = −0.75 only where the taps are symmetric (t = 0 or 0.5, i.e. integer
 * downsampling): e.g. t = .25 gives Σ w·offset = 0.296875 ≠ 0.25. */
static void check_ramp(plstm_context *ctx, plstm_resize_kind kind, int h, int w, int h2, int w2,
                       int ramp)
{
    const int dim = 2;
    double *x = tu_calloc((size_t)h * w * dim, 8), *y = tu_calloc((size_t)h2 * w2 * dim, 8);
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++)
            for (int d = 0; d < dim; d++)
                x[((size_t)i * w + j) * dim + d] = d ? 1.5 : 0.3 * i - 0.7 * j + 2;
    TU_OK(plstm_resize_forward(ctx, PLSTM_F64, kind, 1, h, w, h2, w2, dim, x, y));
    int interior = 0;
    for (int o1 = 0; o1 < h2; o1++)
        for (int o2 = 0; o2 < w2; o2++) {
            const double s1 = (o1 + 0.5) * h / h2 - 0.5, s2 = (o2 + 0.5) * w / w2 - 0.5;
            const double *yo = y + ((size_t)o1 * w2 + o2) * dim;
            assert_true(fabs(yo[1] - 1.5) < 1e-14);
            if (!ramp || floor(s1) - 1 < 0 || floor(s1) + 2 > h - 1 || floor(s2) - 1 < 0 ||
                floor(s2) + 2 > w - 1)
                continue;
            interior++;
            assert_true(fabs(yo[0] - (0.3 * s1 - 0.7 * s2 + 2)) < 1e-13);
        }
    assert_true(interior > 0 || !ramp);
    free(x);
    free(y);
}

static void test_resize_ramp(void **state)
{
    (void)state;
    plstm_context *ctx = new_ctx();
    check_ramp(ctx, PLSTM_RESIZE_BICUBIC_TORCH, 6, 7, 13, 10, 0);
    check_ramp(ctx, PLSTM_RESIZE_BICUBIC_TORCH, 16, 15, 8, 5, 1); /* t = 0.5 and t = 0 */
    check_ramp(ctx, PLSTM_RESIZE_BICUBIC_JAX, 6, 7, 13, 10, 1);
    check_ramp(ctx, PLSTM_RESIZE_BICUBIC_JAX, 5, 8, 11, 17, 1);
    check_ramp(ctx, PLSTM_RESIZE_BICUBIC_JAX, 12, 24, 24, 11, 0);
    plstm_context_destroy(ctx);
}

static void test_resize_backward(void **state)
{
    (void)state;
    plstm_context *ctx = new_ctx();
    tu_rng rng;
    tu_rng_seed(&rng, 14);
    const int sizes[][4] = {{3, 4, 5, 2}, {4, 4, 7, 9}, {5, 3, 2, 3}};
    for (int k = 0; k < 2; k++)
        for (int t = 0; t < 3; t++) {
            rs_case c = {ctx, (plstm_resize_kind)k, 2, sizes[t][0], sizes[t][1], sizes[t][2],
                         sizes[t][3], 3, NULL};
            const size_t nx = (size_t)c.B * c.h * c.w * c.dim, ny = (size_t)c.B * c.h2 * c.w2 * c.dim;
            c.x = nf_rand(&rng, nx, -1, 1);
            double *dy = nf_rand(&rng, ny, -1, 1), *dx = nf_const(nx, JUNK), *y = tu_calloc(ny, 8);
            TU_OK(plstm_resize_backward(ctx, PLSTM_F64, c.kind, c.B, c.h, c.w, c.h2, c.w2, c.dim, dy,
                                        dx));
            TU_ASSERT_CLOSE(nf_check(rs_fwd, &c, ny, dy, c.x, nx, dx), 1e-8, "resize dx");
            rs_fwd(&c, y);
            float *x32 = nf_to_f32(c.x, nx), *y32 = tu_calloc(ny, 4);
            TU_OK(plstm_resize_forward(ctx, PLSTM_F32, c.kind, c.B, c.h, c.w, c.h2, c.w2, c.dim, x32,
                                       y32));
            TU_ASSERT_CLOSE(nf_err_32_64(y32, y, ny), 1e-6, "resize f32 vs f64");
            free(c.x); free(dy); free(dx); free(y); free(x32); free(y32);
        }
    plstm_context_destroy(ctx);
}

/* The reference model's position embedding, resized 4×4 → 8×8 by torch. */
static void test_resize_reference(void **state)
{
    (void)state;
    plstm_safetensors *st = NULL;
    if (plstm_safetensors_open(&st, tu_reference_path("vision_model_ext.safetensors")) != PLSTM_OK)
        skip();
    plstm_context *ctx = new_ctx();
    float pe[4 * 4 * 32], want[8 * 8 * 32], got[8 * 8 * 32];
    double pe64[4 * 4 * 32], got64[8 * 8 * 32];
    TU_OK(plstm_safetensors_read_f32(st, "param.pos_embed.embed", pe, 4 * 4 * 32));
    TU_OK(plstm_safetensors_read_f32(st, "output.pos_embed_interpolated", want, 8 * 8 * 32));
    TU_OK(plstm_resize_forward(ctx, PLSTM_F32, PLSTM_RESIZE_BICUBIC_TORCH, 1, 4, 4, 8, 8, 32, pe,
                               got));
    TU_ASSERT_CLOSE(tu_rel_err_f32(got, want, 8 * 8 * 32), 1e-6, "pos embed resize f32 vs torch");
    for (int i = 0; i < 4 * 4 * 32; i++)
        pe64[i] = pe[i];
    TU_OK(plstm_resize_forward(ctx, PLSTM_F64, PLSTM_RESIZE_BICUBIC_TORCH, 1, 4, 4, 8, 8, 32, pe64,
                               got64));
    double want64[8 * 8 * 32];
    for (int i = 0; i < 8 * 8 * 32; i++)
        want64[i] = want[i];
    TU_ASSERT_CLOSE(tu_rel_err_f64(got64, want64, 8 * 8 * 32), 1e-6, "pos embed resize f64 vs torch");
    /* The jax semantics differ at this size (different kernel, no clamping). */
    TU_OK(plstm_resize_forward(ctx, PLSTM_F32, PLSTM_RESIZE_BICUBIC_JAX, 1, 4, 4, 8, 8, 32, pe, got));
    assert_true(tu_rel_err_f32(got, want, 8 * 8 * 32) > 1e-3);
    plstm_context_destroy(ctx);
    plstm_safetensors_close(st);
}

/* ======================================================================== */
/* zero padding                                                             */
/* ======================================================================== */

/* Every output element is its input element or 0; backward is the adjoint
 * (<pad x, y> = <x, crop y>); F32 moves the same values; bad sizes fail. */
static void test_pad2d(void **state)
{
    (void)state;
    plstm_context *ctx = new_ctx();
    tu_rng rng;
    tu_rng_seed(&rng, 31);
    const int B = 2, H = 5, W = 3, C = 4;
    for (int q = 0; q <= 2; q++) {
        const int H2 = H + 2 * q, W2 = W + 2 * q;
        const size_t n = (size_t)B * H * W * C, n2 = (size_t)B * H2 * W2 * C;
        double *x = malloc(n * sizeof *x), *y = malloc(n2 * sizeof *y);
        double *dy = malloc(n2 * sizeof *dy), *dx = malloc(n * sizeof *dx);
        float *x32 = malloc(n * sizeof *x32), *y32 = malloc(n2 * sizeof *y32);
        tu_fill_f64(&rng, x, n, -1, 1);
        tu_fill_f64(&rng, dy, n2, -1, 1);
        for (size_t i = 0; i < n; i++)
            x32[i] = (float)x[i];
        TU_OK(plstm_pad2d_forward(ctx, PLSTM_F64, B, H, W, C, q, x, y));
        TU_OK(plstm_pad2d_forward(ctx, PLSTM_F32, B, H, W, C, q, x32, y32));
        for (int b = 0; b < B; b++)
            for (int i = 0; i < H2; i++)
                for (int j = 0; j < W2; j++)
                    for (int c = 0; c < C; c++) {
                        const size_t o = (((size_t)b * H2 + i) * W2 + j) * C + c;
                        const int in = i >= q && i < H + q && j >= q && j < W + q;
                        const double want =
                            in ? x[(((size_t)b * H + i - q) * W + j - q) * C + c] : 0.0;
                        assert_true(y[o] == want);
                        assert_true(y32[o] == (float)want);
                    }
        TU_OK(plstm_pad2d_backward(ctx, PLSTM_F64, B, H, W, C, q, dy, dx));
        double lhs = 0, rhs = 0;
        for (size_t i = 0; i < n2; i++)
            lhs += y[i] * dy[i];
        for (size_t i = 0; i < n; i++)
            rhs += x[i] * dx[i];
        TU_ASSERT_CLOSE(fabs(lhs - rhs) / (fabs(lhs) + 1e-300), 1e-12, "pad2d adjoint");
        free(x), free(y), free(dy), free(dx), free(x32), free(y32);
    }
    double v[4] = {0};
    assert_int_equal(plstm_pad2d_forward(ctx, PLSTM_F64, 1, 1, 1, 1, -1, v, v + 2),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_int_equal(plstm_pad2d_forward(ctx, PLSTM_F64, 1, 1, 1, 1, 0, v, v),
                     PLSTM_ERR_INVALID_ARGUMENT);
    assert_int_equal(plstm_pad2d_backward(ctx, PLSTM_F64, 1, 0, 1, 1, 0, v, v + 2),
                     PLSTM_ERR_INVALID_ARGUMENT);
    plstm_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dwconv),          cmocka_unit_test(test_patch_embed),
        cmocka_unit_test(test_resize_identity), cmocka_unit_test(test_resize_hand),
        cmocka_unit_test(test_resize_ramp),     cmocka_unit_test(test_resize_backward),
        cmocka_unit_test(test_resize_reference), cmocka_unit_test(test_pad2d),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
