/* CPU patch embedding: im2col on chunks of images, then the linear layer's
 * GEMMs (the column matrix of a chunk stays around NN_PATCH_COL_ELEMS). */
#include "backends/cpu/cpu_nn.h"
#include "backends/cpu/nn_common.h"
#include "core/status_internal.h"

#include <stdlib.h>
#include <string.h>

#ifndef NN_PATCH_COL_ELEMS
#define NN_PATCH_COL_ELEMS (4u << 20)
#endif

#define REAL float
#define FN(x) x##_f32
#include "backends/cpu/nn_patch_impl.h"
#undef REAL
#undef FN

#define REAL double
#define FN(x) x##_f64
#include "backends/cpu/nn_patch_impl.h"
#undef REAL
#undef FN

typedef struct patch_geom {
    int Hp, Wp, K, nb; /* output grid, column width C·p·p, images per chunk */
    size_t es;         /* element size */
} patch_geom;

static patch_geom patch_geometry(plstm_dtype dtype, int B, int H, int W, int C, int p, int s)
{
    patch_geom g;
    g.Hp = (H - p) / s + 1;
    g.Wp = (W - p) / s + 1;
    g.K = C * p * p;
    const size_t per_image = (size_t)g.Hp * g.Wp * g.K;
    size_t nb = NN_PATCH_COL_ELEMS / (per_image ? per_image : 1);
    g.nb = nb < 1 ? 1 : nb > (size_t)B ? B : (int)nb;
    g.es = plstm_dtype_size(dtype);
    return g;
}

static void im2col(plstm_context *ctx, plstm_dtype dtype, int nb, int H, int W, int C, int p,
                   int s, const patch_geom *g, const void *img, void *col)
{
    if (dtype == PLSTM_F32)
        im2col_f32(ctx, nb, H, W, C, p, s, g->Hp, g->Wp, img, col);
    else
        im2col_f64(ctx, nb, H, W, C, p, s, g->Hp, g->Wp, img, col);
}

plstm_status cpu_patch_embed_forward(plstm_context *ctx, plstm_dtype dtype, int B, int H, int W,
                                     int C, int dim, int p, int s, const void *images,
                                     const void *weight, const void *bias, void *y)
{
    const patch_geom g = patch_geometry(dtype, B, H, W, C, p, s);
    const size_t P = (size_t)g.Hp * g.Wp;
    void *col = malloc((size_t)g.nb * P * g.K * g.es);
    if (!col)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "patch_embed forward: no memory");
    for (int b0 = 0; b0 < B; b0 += g.nb) {
        const int nb = B - b0 < g.nb ? B - b0 : g.nb;
        im2col(ctx, dtype, nb, H, W, C, p, s, &g,
               (const char *)images + (size_t)b0 * H * W * C * g.es, col);
        cpu_linear_forward(ctx, dtype, (int)(nb * P), g.K, dim, col, weight, bias,
                           (char *)y + (size_t)b0 * P * dim * g.es);
    }
    free(col);
    return PLSTM_OK;
}

plstm_status cpu_patch_embed_backward(plstm_context *ctx, plstm_dtype dtype, int B, int H, int W,
                                      int C, int dim, int p, int s, const void *images,
                                      const void *weight, const void *dy, void *dimages,
                                      void *dweight, void *dbias)
{
    const patch_geom g = patch_geometry(dtype, B, H, W, C, p, s);
    const size_t P = (size_t)g.Hp * g.Wp, chunk = (size_t)g.nb * P * g.K * g.es;
    char *col = dweight ? malloc(chunk) : NULL, *dcol = dimages ? malloc(chunk) : NULL;
    if ((dweight && !col) || (dimages && !dcol)) {
        free(col);
        free(dcol);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "patch_embed backward: no memory");
    }
    if (dimages)
        memset(dimages, 0, (size_t)B * H * W * C * g.es);
    for (int b0 = 0; b0 < B; b0 += g.nb) {
        const int nb = B - b0 < g.nb ? B - b0 : g.nb;
        const size_t img_off = (size_t)b0 * H * W * C * g.es;
        if (dweight)
            im2col(ctx, dtype, nb, H, W, C, p, s, &g, (const char *)images + img_off, col);
        cpu_linear_backward(ctx, dtype, (int)(nb * P), g.K, dim, col, weight,
                            (const char *)dy + (size_t)b0 * P * dim * g.es, dcol, dweight, dbias);
        if (!dimages)
            continue;
        if (dtype == PLSTM_F32)
            col2im_f32(ctx, nb, H, W, C, p, s, g.Hp, g.Wp, (const float *)dcol,
                       (float *)((char *)dimages + img_off));
        else
            col2im_f64(ctx, nb, H, W, C, p, s, g.Hp, g.Wp, (const double *)dcol,
                       (double *)((char *)dimages + img_off));
    }
    free(col);
    free(dcol);
    return PLSTM_OK;
}
