/* Separable resize over REAL with dense per-axis weight matrices Mh [h2, h]
 * and Mw [w2, w] (nn_resize.c builds them); included with REAL and FN.
 * Grids are [h, w, dim] channels last; tmp holds B·h2·w·dim values. */

static void FN(resize_forward)(plstm_context *ctx, int B, int h, int w, int h2, int w2, int dim,
                               const double *Mh, const double *Mw, const REAL *x, REAL *tmp,
                               REAL *y)
{
    const size_t row = (size_t)w * dim, row2 = (size_t)w2 * dim;
    const int nt = nn_team(ctx, (size_t)B * h2 * (h * row + w * row2));
#pragma omp parallel for num_threads(nt) schedule(static)
    for (long bo = 0; bo < (long)B * h2; bo++) {
        const int b = (int)(bo / h2), o1 = (int)(bo % h2);
        REAL *t = tmp + (size_t)bo * row;
        for (size_t e = 0; e < row; e++)
            t[e] = 0;
        for (int i1 = 0; i1 < h; i1++) { /* along h: t = Σ_i1 Mh[o1, i1] x[i1] */
            const REAL m = (REAL)Mh[(size_t)o1 * h + i1];
            if (m == 0)
                continue;
            const REAL *xr = x + ((size_t)b * h + i1) * row;
            for (size_t e = 0; e < row; e++)
                t[e] += m * xr[e];
        }
        REAL *yr = y + (size_t)bo * row2;
        for (int o2 = 0; o2 < w2; o2++) { /* along w */
            REAL *yo = yr + (size_t)o2 * dim;
            for (int d = 0; d < dim; d++)
                yo[d] = 0;
            for (int i2 = 0; i2 < w; i2++) {
                const REAL m = (REAL)Mw[(size_t)o2 * w + i2];
                if (m == 0)
                    continue;
                const REAL *ti = t + (size_t)i2 * dim;
                for (int d = 0; d < dim; d++)
                    yo[d] += m * ti[d];
            }
        }
    }
}

static void FN(resize_backward)(plstm_context *ctx, int B, int h, int w, int h2, int w2, int dim,
                                const double *Mh, const double *Mw, const REAL *dy, REAL *tmp,
                                REAL *dx)
{
    const size_t row = (size_t)w * dim, row2 = (size_t)w2 * dim;
    const int nt = nn_team(ctx, (size_t)B * h2 * (h * row + w * row2));
    /* dtmp[o1, i2] = Σ_o2 Mw[o2, i2] dy[o1, o2] */
#pragma omp parallel for num_threads(nt) schedule(static)
    for (long bo = 0; bo < (long)B * h2; bo++) {
        REAL *t = tmp + (size_t)bo * row;
        const REAL *g = dy + (size_t)bo * row2;
        for (size_t e = 0; e < row; e++)
            t[e] = 0;
        for (int o2 = 0; o2 < w2; o2++)
            for (int i2 = 0; i2 < w; i2++) {
                const REAL m = (REAL)Mw[(size_t)o2 * w + i2];
                if (m == 0)
                    continue;
                for (int d = 0; d < dim; d++)
                    t[(size_t)i2 * dim + d] += m * g[(size_t)o2 * dim + d];
            }
    }
    /* dx[i1] = Σ_o1 Mh[o1, i1] dtmp[o1] */
#pragma omp parallel for num_threads(nt) schedule(static)
    for (long bi = 0; bi < (long)B * h; bi++) {
        const int b = (int)(bi / h), i1 = (int)(bi % h);
        REAL *o = dx + (size_t)bi * row;
        for (size_t e = 0; e < row; e++)
            o[e] = 0;
        for (int o1 = 0; o1 < h2; o1++) {
            const REAL m = (REAL)Mh[(size_t)o1 * h + i1];
            if (m == 0)
                continue;
            const REAL *t = tmp + ((size_t)b * h2 + o1) * row;
            for (size_t e = 0; e < row; e++)
                o[e] += m * t[e];
        }
    }
}
