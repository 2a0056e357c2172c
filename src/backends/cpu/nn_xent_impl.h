/* Softmax cross-entropy over REAL; included by nn_xent.c with REAL and FN.
 * Row statistics in double: max, log-sum-exp. */

static double FN(row_lse)(int classes, const REAL *l, int *argmax)
{
    int am = 0;
    for (int c = 1; c < classes; c++)
        if (l[c] > l[am])
            am = c;
    const double m = l[am];
    double s = 0;
    for (int c = 0; c < classes; c++)
        s += exp((double)l[c] - m);
    *argmax = am;
    return m + log(s);
}

static void FN(xent_forward)(plstm_context *ctx, int n, int classes, const REAL *logits,
                             const int32_t *labels, double *loss, int *correct)
{
    double sum = 0;
    int hits = 0;
    const int nt = nn_team(ctx, (size_t)n * classes * 8);
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : sum, hits)
    for (int r = 0; r < n; r++) {
        const REAL *l = logits + (size_t)r * classes;
        int am;
        const double lse = FN(row_lse)(classes, l, &am);
        sum += lse - (double)l[labels[r]];
        hits += am == labels[r];
    }
    *loss = sum / n;
    if (correct)
        *correct = hits;
}

static void FN(xent_backward)(plstm_context *ctx, int n, int classes, const REAL *logits,
                              const int32_t *labels, double dloss, REAL *dl)
{
    const double g = dloss / n;
    const int nt = nn_team(ctx, (size_t)n * classes * 8);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int r = 0; r < n; r++) {
        const REAL *l = logits + (size_t)r * classes;
        REAL *d = dl + (size_t)r * classes;
        int am;
        const double lse = FN(row_lse)(classes, l, &am);
        for (int c = 0; c < classes; c++)
            d[c] = (REAL)(g * (exp((double)l[c] - lse) - (c == labels[r])));
    }
}
