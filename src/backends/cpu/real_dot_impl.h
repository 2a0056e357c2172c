/* Shared by the CPU cores' templates (included once per REAL/FN instance). */
/* Σ a[n] b[n] with 8 partial sums, so it vectorizes without -ffast-math. */
static REAL FN(dot)(const REAL *restrict a, const REAL *restrict b, size_t n)
{
    REAL acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[i + l] * b[i + l];
    REAL s = 0;
    for (; i < n; i++)
        s += a[i] * b[i];
    for (int l = 0; l < 8; l++)
        s += acc[l];
    return s;
}
