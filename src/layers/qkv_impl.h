/* Query/key/value projection over REAL; included by qkv.c with REAL,
 * FN(name) and GEMM defined.
 *
 * The output row [NH·DK·J] is NB = G·S_h blocks of blk = DKs·J values; block
 * b = g·S_h + s is W[g,:,:,s,:] (blk rows, row stride Din in the weight)
 * times the input slice s. */

static void FN(qkv_project)(const plstm_qkv *L, const REAL *W, size_t N, const REAL *x, REAL *out)
{
    const int S = L->cfg.sub_heads, Din = L->cfg.input_dim, Dsub = Din / S;
    const int blk = L->DKs * L->cfg.J, NB = L->G * S, row = NB * blk;
    if (S == 1) { /* one [NH·DK·J, Din] matrix */
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, row, Din, 1, x, Din, W, Din, 0, out, row);
        return;
    }
    for (int b = 0; b < NB; b++) {
        const int g = b / S, s = b % S;
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, blk, Dsub, 1, x + (size_t)s * Dsub, Din,
             W + ((size_t)g * blk * S + s) * Dsub, Din, 0, out + (size_t)b * blk, row);
    }
}

static void FN(qkv_forward)(const plstm_qkv *L, const REAL *prm, size_t N, const REAL *x, REAL *y,
                            REAL *pre, int nt)
{
    const size_t row = (size_t)L->cfg.num_heads * L->cfg.DK * L->cfg.J;
    const int J = L->cfg.J;
    REAL *out = L->cfg.l2_norm ? pre : y;
    FN(qkv_project)(L, prm + L->weight_off, N, x, out);
    const REAL *bias = L->bias_off != PLSTM_NO_PARAM ? prm + L->bias_off : NULL;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t n = 0; n < N; n++) {
        REAL *o = out + n * row;
        if (bias)
            for (size_t c = 0; c < row; c++)
                o[c] += bias[c];
        if (!L->cfg.l2_norm)
            continue;
        REAL *yr = y + n * row;
        for (size_t c0 = 0; c0 < row; c0 += J) {
            double m = 0;
            for (int j = 0; j < J; j++)
                m += (double)o[c0 + j] * o[c0 + j];
            const double r = 1.0 / sqrt(m / J + 1e-5);
            for (int j = 0; j < J; j++)
                yr[c0 + j] = (REAL)(o[c0 + j] * r);
        }
    }
}

static plstm_status FN(qkv_backward)(const plstm_qkv *L, const REAL *prm, size_t N, const REAL *x,
                                     const REAL *pre, const REAL *dy, REAL *dx, REAL *grads, int nt)
{
    const int S = L->cfg.sub_heads, Din = L->cfg.input_dim, Dsub = Din / S, J = L->cfg.J;
    const int blk = L->DKs * J, NB = L->G * S, row = NB * blk;
    const REAL *dout = dy;
    REAL *tmp = NULL;
    if (L->cfg.l2_norm) {
        if (!(tmp = malloc(N * (size_t)row * sizeof(REAL))))
            return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "qkv backward: out of memory");
#pragma omp parallel for num_threads(nt) schedule(static)
        for (size_t n = 0; n < N; n++)
            for (size_t c0 = 0; c0 < (size_t)row; c0 += J) {
                const REAL *o = pre + n * row + c0, *g = dy + n * row + c0;
                double m = 0, dot = 0;
                for (int j = 0; j < J; j++) {
                    m += (double)o[j] * o[j];
                    dot += (double)g[j] * o[j];
                }
                const double r = 1.0 / sqrt(m / J + 1e-5);
                for (int j = 0; j < J; j++)
                    tmp[n * row + c0 + j] = (REAL)(r * g[j] - r * r * r * dot * o[j] / J);
            }
        dout = tmp;
    }
    if (L->bias_off != PLSTM_NO_PARAM) {
        REAL *db = grads + L->bias_off;
        for (size_t n = 0; n < N; n++)
            for (int c = 0; c < row; c++)
                db[c] += dout[n * row + c];
    }
    const REAL *W = prm + L->weight_off;
    REAL *dW = grads + L->weight_off;
    if (S == 1) {
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, row, Din, (int)N, 1, dout, row, x, Din, 1, dW, Din);
        if (dx)
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, Din, row, 1, dout, row, W, Din, 0, dx,
                 Din);
    } else {
        if (dx)
            memset(dx, 0, N * (size_t)Din * sizeof(REAL));
        for (int b = 0; b < NB; b++) {
            const int g = b / S, s = b % S;
            const size_t wo = ((size_t)g * blk * S + s) * Dsub, xo = (size_t)s * Dsub;
            GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, blk, Dsub, (int)N, 1, dout + (size_t)b * blk, row,
                 x + xo, Din, 1, dW + wo, Din);
            if (dx)
                GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, Dsub, blk, 1,
                     dout + (size_t)b * blk, row, W + wo, Din, 1, dx + xo, Din);
        }
    }
    free(tmp);
    return PLSTM_OK;
}
