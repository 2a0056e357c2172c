/* Small helpers of the 1D core over one real type (REAL, FN defined by the
 * including file): public <-> internal state layout. */

/* public [DK,DV,JT] -> internal [JT][DK·DV]; src NULL gives zeros */
static void FN(state_in)(const c1_dims *m, const REAL *src, REAL *dst)
{
    const size_t N = m->N;
    const int JT = m->JT;
    if (!src) {
        memset(dst, 0, sizeof(REAL) * m->SZ);
        return;
    }
    for (size_t n = 0; n < N; n++)
        for (int t = 0; t < JT; t++)
            dst[(size_t)t * N + n] = src[n * JT + t];
}

/* internal [JT][DK·DV] -> public [DK,DV,JT] */
static void FN(state_out)(const c1_dims *m, const REAL *src, REAL *dst)
{
    const size_t N = m->N;
    const int JT = m->JT;
    for (size_t n = 0; n < N; n++)
        for (int t = 0; t < JT; t++)
            dst[n * JT + t] = src[(size_t)t * N + n];
}
