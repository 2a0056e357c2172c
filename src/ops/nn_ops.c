/* Public NN primitive operators (include/plstm/nn.h): validate the arguments
 * once, then dispatch through the backend's `nn` table. */
#include "ops/backend.h"
#include "core/status_internal.h"

#include <stddef.h>

static plstm_status check_dtype(const char *op, plstm_dtype dtype)
{
    if (dtype != PLSTM_F32 && dtype != PLSTM_F64)
        return plstm_fail(PLSTM_ERR_UNSUPPORTED, "%s: dtype %s not supported (F32 or F64)", op,
                          plstm_dtype_name(dtype));
    return PLSTM_OK;
}

/* Every size must be >= 1. */
static plstm_status check_sizes(const char *op, const int *v, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (v[i] < 1)
            return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "%s: %s = %d, must be >= 1", op, names[i],
                              v[i]);
    return PLSTM_OK;
}

#define CHECK(op, dtype, ...)                                                          \
    do {                                                                               \
        PLSTM_CHECK_ARG(ctx != NULL, "%s: ctx is NULL", op);                           \
        PLSTM_TRY(check_dtype(op, dtype));                                             \
        static const char *const names_[] = {__VA_ARGS__};                             \
        const int vals_[] = {SIZES};                                                   \
        PLSTM_TRY(check_sizes(op, vals_, names_, (int)(sizeof vals_ / sizeof *vals_))); \
    } while (0)

#define REQUIRE(ptr, op, name) PLSTM_CHECK_ARG((ptr) != NULL, "%s: %s is NULL", op, name)

#define DISPATCH(fn, ...)                                                                   \
    do {                                                                                    \
        if (!ctx->ops->nn.fn)                                                               \
            return plstm_fail(PLSTM_ERR_UNSUPPORTED, #fn " is not implemented on the %s backend", \
                              ctx->ops->name);                                              \
        return ctx->ops->nn.fn(ctx, __VA_ARGS__);                                           \
    } while (0)

/* ---- linear ---- */
#define SIZES n, in, out
plstm_status plstm_linear_forward(plstm_context *ctx, plstm_dtype dtype, int n, int in, int out,
                                  const void *x, const void *W, const void *b, void *y)
{
    CHECK("linear forward", dtype, "n", "in", "out");
    REQUIRE(x, "linear forward", "x");
    REQUIRE(W, "linear forward", "W");
    REQUIRE(y, "linear forward", "y");
    DISPATCH(linear_forward, dtype, n, in, out, x, W, b, y);
}

plstm_status plstm_linear_backward(plstm_context *ctx, plstm_dtype dtype, int n, int in, int out,
                                   const void *x, const void *W, const void *dy, void *dx,
                                   void *dW, void *db)
{
    CHECK("linear backward", dtype, "n", "in", "out");
    REQUIRE(dy, "linear backward", "dy");
    PLSTM_CHECK_ARG(!dx || W, "linear backward: W is needed for dx");
    PLSTM_CHECK_ARG(!dW || x, "linear backward: x is needed for dW");
    DISPATCH(linear_backward, dtype, n, in, out, x, W, dy, dx, dW, db);
}
#undef SIZES

/* ---- fused linears ---- */
static plstm_status check_multi(const char *op, int nseg, const int *out, const void *const *W,
                                int need_w)
{
    PLSTM_CHECK_ARG(nseg >= 1 && nseg <= 1024, "%s: nseg = %d, must be in 1..1024", op, nseg);
    PLSTM_CHECK_ARG(out != NULL, "%s: out is NULL", op);
    PLSTM_CHECK_ARG(!need_w || W != NULL, "%s: W is NULL", op);
    long long P = 0;
    for (int i = 0; i < nseg; i++) {
        PLSTM_CHECK_ARG(out[i] >= 1, "%s: out[%d] = %d, must be >= 1", op, i, out[i]);
        PLSTM_CHECK_ARG(!need_w || W[i], "%s: W[%d] is NULL", op, i);
        P += out[i];
    }
    PLSTM_CHECK_ARG(P <= 0x7fffffff, "%s: %lld outputs in all is too many", op, P);
    return PLSTM_OK;
}

#define SIZES n, in
plstm_status plstm_linear_multi_forward(plstm_context *ctx, plstm_dtype dtype, int n, int in,
                                        int nseg, const int *out, const void *const *W,
                                        const void *const *b, const void *x, void *y)
{
    CHECK("linear_multi forward", dtype, "n", "in");
    PLSTM_TRY(check_multi("linear_multi forward", nseg, out, W, 1));
    REQUIRE(x, "linear_multi forward", "x");
    REQUIRE(y, "linear_multi forward", "y");
    static const void *const no_bias[1024];
    DISPATCH(linear_multi_forward, dtype, n, in, nseg, out, W, b ? b : no_bias, x, y);
}

plstm_status plstm_linear_multi_backward(plstm_context *ctx, plstm_dtype dtype, int n, int in,
                                         int nseg, const int *out, const void *const *W,
                                         const void *x, const void *dy, void *dx,
                                         void *const *dW, void *const *db)
{
    CHECK("linear_multi backward", dtype, "n", "in");
    PLSTM_TRY(check_multi("linear_multi backward", nseg, out, W, dx != NULL));
    REQUIRE(dy, "linear_multi backward", "dy");
    int any_dw = 0;
    for (int i = 0; dW && i < nseg; i++)
        any_dw |= dW[i] != NULL;
    PLSTM_CHECK_ARG(!any_dw || x, "linear_multi backward: x is needed for dW");
    DISPATCH(linear_multi_backward, dtype, n, in, nseg, out, W, x, dy, dx, dW, db);
}
#undef SIZES

/* ---- norms ---- */
static plstm_status check_norm(const char *op, plstm_norm_kind kind, int D, int NH, double eps)
{
    PLSTM_CHECK_ARG(kind == PLSTM_NORM_RMS || kind == PLSTM_NORM_LAYER, "%s: unknown kind %d", op,
                    (int)kind);
    PLSTM_CHECK_ARG(D % NH == 0, "%s: D = %d is not a multiple of NH = %d", op, D, NH);
    PLSTM_CHECK_ARG(eps >= 0, "%s: eps = %g, must be >= 0", op, eps);
    return PLSTM_OK;
}

#define SIZES n, D, NH
plstm_status plstm_norm_forward(plstm_context *ctx, plstm_dtype dtype, plstm_norm_kind kind,
                                int n, int D, int NH, double eps, const void *x,
                                const void *gamma, const void *beta, void *y)
{
    CHECK("norm forward", dtype, "n", "D", "NH");
    PLSTM_TRY(check_norm("norm forward", kind, D, NH, eps));
    REQUIRE(x, "norm forward", "x");
    REQUIRE(y, "norm forward", "y");
    DISPATCH(norm_forward, dtype, kind, n, D, NH, eps, x, gamma, beta, y);
}

plstm_status plstm_norm_backward(plstm_context *ctx, plstm_dtype dtype, plstm_norm_kind kind,
                                 int n, int D, int NH, double eps, const void *x,
                                 const void *gamma, const void *dy, void *dx, void *dgamma,
                                 void *dbeta)
{
    CHECK("norm backward", dtype, "n", "D", "NH");
    PLSTM_TRY(check_norm("norm backward", kind, D, NH, eps));
    REQUIRE(x, "norm backward", "x");
    REQUIRE(dy, "norm backward", "dy");
    DISPATCH(norm_backward, dtype, kind, n, D, NH, eps, x, gamma, dy, dx, dgamma, dbeta);
}
#undef SIZES

/* ---- activations ---- */
static plstm_status check_act(const char *op, plstm_context *ctx, plstm_dtype dtype,
                              plstm_activation act)
{
    PLSTM_CHECK_ARG(ctx != NULL, "%s: ctx is NULL", op);
    PLSTM_TRY(check_dtype(op, dtype));
    PLSTM_CHECK_ARG(act == PLSTM_ACT_GELU || act == PLSTM_ACT_GELU_TANH || act == PLSTM_ACT_SILU,
                    "%s: unknown activation %d", op, (int)act);
    return PLSTM_OK;
}

plstm_status plstm_activation_forward(plstm_context *ctx, plstm_dtype dtype, plstm_activation act,
                                      size_t count, const void *x, void *y)
{
    PLSTM_TRY(check_act("activation forward", ctx, dtype, act));
    if (count == 0)
        return PLSTM_OK;
    REQUIRE(x, "activation forward", "x");
    REQUIRE(y, "activation forward", "y");
    DISPATCH(activation_forward, dtype, act, count, x, y);
}

plstm_status plstm_activation_backward(plstm_context *ctx, plstm_dtype dtype,
                                       plstm_activation act, size_t count, const void *x,
                                       const void *dy, void *dx)
{
    PLSTM_TRY(check_act("activation backward", ctx, dtype, act));
    if (count == 0 || !dx)
        return PLSTM_OK;
    REQUIRE(x, "activation backward", "x");
    REQUIRE(dy, "activation backward", "dy");
    DISPATCH(activation_backward, dtype, act, count, x, dy, dx);
}

/* ---- depthwise causal conv ---- */
#define SIZES B, X, Y, C, KX, KY
plstm_status plstm_dwconv2d_forward(plstm_context *ctx, plstm_dtype dtype, int B, int X, int Y,
                                    int C, int KX, int KY, const void *x, const void *w,
                                    const void *bias, void *y)
{
    CHECK("dwconv2d forward", dtype, "B", "X", "Y", "C", "KX", "KY");
    REQUIRE(x, "dwconv2d forward", "x");
    REQUIRE(w, "dwconv2d forward", "w");
    REQUIRE(y, "dwconv2d forward", "y");
    DISPATCH(dwconv2d_forward, dtype, B, X, Y, C, KX, KY, x, w, bias, y);
}

plstm_status plstm_dwconv2d_backward(plstm_context *ctx, plstm_dtype dtype, int B, int X, int Y,
                                     int C, int KX, int KY, const void *x, const void *w,
                                     const void *dy, void *dx, void *dw, void *dbias)
{
    CHECK("dwconv2d backward", dtype, "B", "X", "Y", "C", "KX", "KY");
    REQUIRE(dy, "dwconv2d backward", "dy");
    PLSTM_CHECK_ARG(!dx || w, "dwconv2d backward: w is needed for dx");
    PLSTM_CHECK_ARG(!dw || x, "dwconv2d backward: x is needed for dw");
    DISPATCH(dwconv2d_backward, dtype, B, X, Y, C, KX, KY, x, w, dy, dx, dw, dbias);
}
#undef SIZES

/* ---- patch embedding ---- */
#define SIZES B, H, W, C, dim, p, s
static plstm_status check_patch(const char *op, int H, int W, int p)
{
    PLSTM_CHECK_ARG(H >= p && W >= p, "%s: image %dx%d is smaller than the patch %d", op, H, W, p);
    return PLSTM_OK;
}

plstm_status plstm_patch_embed_forward(plstm_context *ctx, plstm_dtype dtype, int B, int H,
                                       int W, int C, int dim, int p, int s, const void *images,
                                       const void *weight, const void *bias, void *y)
{
    CHECK("patch_embed forward", dtype, "B", "H", "W", "C", "dim", "p", "s");
    PLSTM_TRY(check_patch("patch_embed forward", H, W, p));
    REQUIRE(images, "patch_embed forward", "images");
    REQUIRE(weight, "patch_embed forward", "weight");
    REQUIRE(y, "patch_embed forward", "y");
    DISPATCH(patch_embed_forward, dtype, B, H, W, C, dim, p, s, images, weight, bias, y);
}

plstm_status plstm_patch_embed_backward(plstm_context *ctx, plstm_dtype dtype, int B, int H,
                                        int W, int C, int dim, int p, int s, const void *images,
                                        const void *weight, const void *dy, void *dimages,
                                        void *dweight, void *dbias)
{
    CHECK("patch_embed backward", dtype, "B", "H", "W", "C", "dim", "p", "s");
    PLSTM_TRY(check_patch("patch_embed backward", H, W, p));
    REQUIRE(dy, "patch_embed backward", "dy");
    PLSTM_CHECK_ARG(!dimages || weight, "patch_embed backward: weight is needed for dimages");
    PLSTM_CHECK_ARG(!dweight || images, "patch_embed backward: images are needed for dweight");
    DISPATCH(patch_embed_backward, dtype, B, H, W, C, dim, p, s, images, weight, dy, dimages,
             dweight, dbias);
}
#undef SIZES

/* ---- instance norm ---- */
#define SIZES B, N, C
plstm_status plstm_instance_norm_forward(plstm_context *ctx, plstm_dtype dtype, int B, int N,
                                         int C, double eps, const void *x, const void *gamma,
                                         const void *beta, void *y)
{
    CHECK("instance norm forward", dtype, "B", "N", "C");
    PLSTM_CHECK_ARG(eps > 0 && eps < 1, "instance norm forward: eps = %g, must be in (0, 1)",
                    eps);
    REQUIRE(x, "instance norm forward", "x");
    REQUIRE(y, "instance norm forward", "y");
    DISPATCH(instance_norm_forward, dtype, B, N, C, eps, x, gamma, beta, y);
}

plstm_status plstm_instance_norm_backward(plstm_context *ctx, plstm_dtype dtype, int B, int N,
                                          int C, double eps, const void *x, const void *gamma,
                                          const void *dy, void *dx, void *dgamma, void *dbeta)
{
    CHECK("instance norm backward", dtype, "B", "N", "C");
    PLSTM_CHECK_ARG(eps > 0 && eps < 1, "instance norm backward: eps = %g, must be in (0, 1)",
                    eps);
    REQUIRE(x, "instance norm backward", "x");
    REQUIRE(dy, "instance norm backward", "dy");
    PLSTM_CHECK_ARG(!dx || (dx != x && dx != dy),
                    "instance norm backward: dx must not overlap x or dy");
    DISPATCH(instance_norm_backward, dtype, B, N, C, eps, x, gamma, dy, dx, dgamma, dbeta);
}
#undef SIZES

/* ---- zero padding ---- */
#define SIZES B, H, W, C, q + 1
plstm_status plstm_pad2d_forward(plstm_context *ctx, plstm_dtype dtype, int B, int H, int W,
                                 int C, int q, const void *x, void *y)
{
    CHECK("pad2d forward", dtype, "B", "H", "W", "C", "q + 1");
    REQUIRE(x, "pad2d forward", "x");
    REQUIRE(y, "pad2d forward", "y");
    PLSTM_CHECK_ARG(x != y, "pad2d forward: x and y must not overlap");
    DISPATCH(pad2d_forward, dtype, B, H, W, C, q, x, y);
}

plstm_status plstm_pad2d_backward(plstm_context *ctx, plstm_dtype dtype, int B, int H, int W,
                                  int C, int q, const void *dy, void *dx)
{
    CHECK("pad2d backward", dtype, "B", "H", "W", "C", "q + 1");
    REQUIRE(dy, "pad2d backward", "dy");
    REQUIRE(dx, "pad2d backward", "dx");
    PLSTM_CHECK_ARG(dx != dy, "pad2d backward: dy and dx must not overlap");
    DISPATCH(pad2d_backward, dtype, B, H, W, C, q, dy, dx);
}
#undef SIZES

/* ---- bicubic resize ---- */
#define SIZES B, h, w, h2, w2, dim
static plstm_status check_resize(const char *op, plstm_resize_kind kind)
{
    PLSTM_CHECK_ARG(kind == PLSTM_RESIZE_BICUBIC_TORCH || kind == PLSTM_RESIZE_BICUBIC_JAX,
                    "%s: unknown kind %d", op, (int)kind);
    return PLSTM_OK;
}

plstm_status plstm_resize_forward(plstm_context *ctx, plstm_dtype dtype, plstm_resize_kind kind,
                                  int B, int h, int w, int h2, int w2, int dim, const void *x,
                                  void *y)
{
    CHECK("resize forward", dtype, "B", "h", "w", "h2", "w2", "dim");
    PLSTM_TRY(check_resize("resize forward", kind));
    REQUIRE(x, "resize forward", "x");
    REQUIRE(y, "resize forward", "y");
    DISPATCH(resize_forward, dtype, kind, B, h, w, h2, w2, dim, x, y);
}

plstm_status plstm_resize_backward(plstm_context *ctx, plstm_dtype dtype, plstm_resize_kind kind,
                                   int B, int h, int w, int h2, int w2, int dim, const void *dy,
                                   void *dx)
{
    CHECK("resize backward", dtype, "B", "h", "w", "h2", "w2", "dim");
    PLSTM_TRY(check_resize("resize backward", kind));
    REQUIRE(dy, "resize backward", "dy");
    if (!dx)
        return PLSTM_OK;
    DISPATCH(resize_backward, dtype, kind, B, h, w, h2, w2, dim, dy, dx);
}
#undef SIZES

/* ---- softmax cross-entropy ---- */
#define SIZES n, classes
plstm_status plstm_softmax_xent_forward(plstm_context *ctx, plstm_dtype dtype, int n, int classes,
                                        const void *logits, const int32_t *labels, double *loss,
                                        int *correct)
{
    CHECK("softmax_xent forward", dtype, "n", "classes");
    REQUIRE(logits, "softmax_xent forward", "logits");
    REQUIRE(labels, "softmax_xent forward", "labels");
    REQUIRE(loss, "softmax_xent forward", "loss");
    DISPATCH(softmax_xent_forward, dtype, n, classes, logits, labels, loss, correct);
}

plstm_status plstm_softmax_xent_backward(plstm_context *ctx, plstm_dtype dtype, int n,
                                         int classes, const void *logits, const int32_t *labels,
                                         double dloss, void *dlogits)
{
    CHECK("softmax_xent backward", dtype, "n", "classes");
    REQUIRE(logits, "softmax_xent backward", "logits");
    REQUIRE(labels, "softmax_xent backward", "labels");
    if (!dlogits)
        return PLSTM_OK;
    DISPATCH(softmax_xent_backward, dtype, n, classes, logits, labels, dloss, dlogits);
}
#undef SIZES

/* ---- attention ---- */
#define SIZES B, N, H, Dh
plstm_status plstm_attention_forward(plstm_context *ctx, plstm_dtype dtype, int B, int N, int H,
                                     int Dh, const void *q, const void *k, const void *v,
                                     void *out, void *lse)
{
    CHECK("attention forward", dtype, "B", "N", "H", "Dh");
    REQUIRE(q, "attention forward", "q");
    REQUIRE(k, "attention forward", "k");
    REQUIRE(v, "attention forward", "v");
    REQUIRE(out, "attention forward", "out");
    DISPATCH(attention_forward, dtype, B, N, H, Dh, q, k, v, out, lse);
}

plstm_status plstm_attention_backward(plstm_context *ctx, plstm_dtype dtype, int B, int N, int H,
                                      int Dh, const void *q, const void *k, const void *v,
                                      const void *out, const void *lse, const void *dout, void *dq,
                                      void *dk, void *dv)
{
    CHECK("attention backward", dtype, "B", "N", "H", "Dh");
    const char *op = "attention backward";
    REQUIRE(q, op, "q"); REQUIRE(k, op, "k"); REQUIRE(v, op, "v");
    REQUIRE(out, op, "out"); REQUIRE(lse, op, "lse"); REQUIRE(dout, op, "dout");
    DISPATCH(attention_backward, dtype, B, N, H, Dh, q, k, v, out, lse, dout, dq, dk, dv);
}
#undef SIZES

/* ---- elementwise helpers ---- */
plstm_status plstm_add(plstm_context *ctx, plstm_dtype dtype, size_t count, const void *a,
                       const void *b, void *y)
{
    PLSTM_CHECK_ARG(ctx != NULL, "add: ctx is NULL");
    PLSTM_TRY(check_dtype("add", dtype));
    if (count == 0)
        return PLSTM_OK;
    PLSTM_CHECK_ARG(a && b && y, "add: a, b and y are required");
    DISPATCH(add, dtype, count, a, b, y);
}

plstm_status plstm_axpy(plstm_context *ctx, plstm_dtype dtype, size_t count, double alpha,
                        const void *x, void *y)
{
    PLSTM_CHECK_ARG(ctx != NULL, "axpy: ctx is NULL");
    PLSTM_TRY(check_dtype("axpy", dtype));
    if (count == 0)
        return PLSTM_OK;
    PLSTM_CHECK_ARG(x && y, "axpy: x and y are required");
    DISPATCH(axpy, dtype, count, alpha, x, y);
}

#define SIZES n, D
plstm_status plstm_scale_forward(plstm_context *ctx, plstm_dtype dtype, int n, int D,
                                 const void *x, const void *s, void *y)
{
    CHECK("scale forward", dtype, "n", "D");
    PLSTM_CHECK_ARG(x && s && y, "scale forward: x, s and y are required");
    DISPATCH(scale_forward, dtype, n, D, x, s, y);
}

plstm_status plstm_scale_backward(plstm_context *ctx, plstm_dtype dtype, int n, int D,
                                  const void *x, const void *s, const void *dy, void *dx,
                                  void *ds)
{
    CHECK("scale backward", dtype, "n", "D");
    REQUIRE(dy, "scale backward", "dy");
    PLSTM_CHECK_ARG(!dx || s, "scale backward: s is needed for dx");
    PLSTM_CHECK_ARG(!ds || x, "scale backward: x is needed for ds");
    DISPATCH(scale_backward, dtype, n, D, x, s, dy, dx, ds);
}
#undef SIZES

#define SIZES B, M
plstm_status plstm_broadcast_add_forward(plstm_context *ctx, plstm_dtype dtype, int B, int M,
                                         const void *x, const void *v, void *y)
{
    CHECK("broadcast_add forward", dtype, "B", "M");
    PLSTM_CHECK_ARG(x && v && y, "broadcast_add forward: x, v and y are required");
    DISPATCH(broadcast_add_forward, dtype, B, M, x, v, y);
}

plstm_status plstm_broadcast_add_backward(plstm_context *ctx, plstm_dtype dtype, int B, int M,
                                          const void *dy, void *dv)
{
    CHECK("broadcast_add backward", dtype, "B", "M");
    REQUIRE(dy, "broadcast_add backward", "dy");
    if (!dv)
        return PLSTM_OK;
    DISPATCH(broadcast_add_backward, dtype, B, M, dy, dv);
}
#undef SIZES

/* ---- pooling ---- */
int plstm_pool_output_dim(plstm_pool_kind kind, int D)
{
    switch (kind) {
    case PLSTM_POOL_CORNERS: return 4 * D;
    case PLSTM_POOL_CENTER:
    case PLSTM_POOL_MEAN:
    case PLSTM_POOL_FIRST: return D;
    }
    return 0;
}

#define SIZES B, X, Y, D
plstm_status plstm_pool_forward(plstm_context *ctx, plstm_dtype dtype, plstm_pool_kind kind, int B,
                                int X, int Y, int D, const void *x, void *y)
{
    CHECK("pool forward", dtype, "B", "X", "Y", "D");
    PLSTM_CHECK_ARG(plstm_pool_output_dim(kind, 1) > 0, "pool forward: unknown kind %d", (int)kind);
    PLSTM_CHECK_ARG(x && y, "pool forward: x and y are required");
    DISPATCH(pool_forward, dtype, kind, B, X, Y, D, x, y);
}

plstm_status plstm_pool_backward(plstm_context *ctx, plstm_dtype dtype, plstm_pool_kind kind,
                                 int B, int X, int Y, int D, const void *dy, void *dx)
{
    CHECK("pool backward", dtype, "B", "X", "Y", "D");
    PLSTM_CHECK_ARG(plstm_pool_output_dim(kind, 1) > 0, "pool backward: unknown kind %d",
                    (int)kind);
    REQUIRE(dy, "pool backward", "dy");
    if (!dx)
        return PLSTM_OK;
    DISPATCH(pool_backward, dtype, kind, B, X, Y, D, dy, dx);
}
#undef SIZES
