/* Per-head input projections shared by the gate and transition sub-layers,
 * written once over REAL; included with REAL, FN(name) and GEMM defined.
 *
 * Weight layout [NH/S, S, P, Dsub] (Dsub = Din/S), i.e. head h = g·S + s owns
 * the P×Dsub block at h·P·Dsub and reads the input slice s = h mod S:
 *   y[n, h·P + p] = Σ_i W[h, p, i] · x[n, s·Dsub + i]                     */

static void FN(headproj)(int NH, int P, int S, int Din, const REAL *W, size_t N, const REAL *x,
                         REAL *y)
{
    const int Dsub = Din / S, HP = NH * P;
    if (S == 1) {
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, HP, Din, 1, x, Din, W, Din, 0, y, HP);
        return;
    }
    for (int h = 0; h < NH; h++)
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, P, Dsub, 1, x + (size_t)(h % S) * Dsub,
             Din, W + (size_t)h * P * Dsub, Dsub, 0, y + (size_t)h * P, HP);
}

/* dW += dyᵀ·x per head; dx (if not NULL) = dy·W, or += when dx_accumulate. */
static void FN(headproj_backward)(int NH, int P, int S, int Din, const REAL *W, size_t N,
                                  const REAL *x, const REAL *dy, REAL *dW, REAL *dx,
                                  int dx_accumulate)
{
    const int Dsub = Din / S, HP = NH * P;
    if (S == 1) {
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, HP, Din, (int)N, 1, dy, HP, x, Din, 1, dW, Din);
        if (dx)
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, Din, HP, 1, dy, HP, W, Din,
                 dx_accumulate ? 1 : 0, dx, Din);
        return;
    }
    if (dx && !dx_accumulate)
        memset(dx, 0, N * (size_t)Din * sizeof(REAL));
    for (int h = 0; h < NH; h++) {
        const size_t xo = (size_t)(h % S) * Dsub, wo = (size_t)h * P * Dsub;
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, P, Dsub, (int)N, 1, dy + (size_t)h * P, HP, x + xo,
             Din, 1, dW + wo, Dsub);
        if (dx)
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, Dsub, P, 1, dy + (size_t)h * P, HP,
                 W + wo, Dsub, 1, dx + xo, Din);
    }
}
