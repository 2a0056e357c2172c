/* Multi-head softmax attention over REAL; included by nn_attention.c with
 * REAL, FN and GEMM. One (batch, head) pair at a time: its rows of q, k, v,
 * out are strided by ld = H·Dh inside [B, N, H, Dh]. S and G are N×N scratch. */

static void FN(attn_pair_forward)(int N, int ld, int Dh, REAL scale, const REAL *q, const REAL *k,
                                  const REAL *v, REAL *o, REAL *lse, REAL *S)
{
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, Dh, scale, q, ld, k, ld, 0, S, N);
    for (int i = 0; i < N; i++) {
        REAL *s = S + (size_t)i * N;
        REAL m = s[0];
        for (int j = 1; j < N; j++)
            m = s[j] > m ? s[j] : m;
        double sum = 0;
        for (int j = 0; j < N; j++) {
            s[j] = exp(s[j] - m);
            sum += s[j];
        }
        const REAL inv = (REAL)(1.0 / sum);
        for (int j = 0; j < N; j++)
            s[j] *= inv;
        if (lse)
            lse[i] = (REAL)(m + log(sum));
    }
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, Dh, N, 1, S, N, v, ld, 0, o, ld);
}

static void FN(attn_pair_backward)(int N, int ld, int Dh, REAL scale, const REAL *q,
                                   const REAL *k, const REAL *v, const REAL *o, const REAL *lse,
                                   const REAL *dout, REAL *dq, REAL *dk, REAL *dv, REAL *S,
                                   REAL *G)
{
    /* P = exp(scale·q·kᵀ − lse), recomputed from the saved row statistics. */
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, Dh, scale, q, ld, k, ld, 0, S, N);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            S[(size_t)i * N + j] = exp(S[(size_t)i * N + j] - lse[i]);
    if (dv) /* dv = Pᵀ·dout */
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, N, Dh, N, 1, S, N, dout, ld, 0, dv, ld);
    if (!dq && !dk)
        return;
    /* dS = P ⊙ (dout·vᵀ − rowsum(dout ⊙ out)) */
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, Dh, 1, dout, ld, v, ld, 0, G, N);
    for (int i = 0; i < N; i++) {
        double di = 0;
        for (int d = 0; d < Dh; d++)
            di += (double)dout[(size_t)i * ld + d] * o[(size_t)i * ld + d];
        for (int j = 0; j < N; j++)
            G[(size_t)i * N + j] = S[(size_t)i * N + j] * (G[(size_t)i * N + j] - (REAL)di);
    }
    if (dq)
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, Dh, N, scale, G, N, k, ld, 0, dq, ld);
    if (dk)
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, N, Dh, N, scale, G, N, q, ld, 0, dk, ld);
}

/* scratch: nt · 2·N·N values. */
static void FN(attention_forward)(int nt, int B, int N, int H, int Dh, const REAL *q,
                                  const REAL *k, const REAL *v, REAL *out, REAL *lse,
                                  REAL *scratch)
{
    const int ld = H * Dh;
    const REAL scale = (REAL)(1.0 / sqrt((double)Dh));
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (long bh = 0; bh < (long)B * H; bh++) {
        const int b = (int)(bh / H), h = (int)(bh % H);
        const size_t off = (size_t)b * N * ld + (size_t)h * Dh;
        REAL *S = scratch + (size_t)omp_get_thread_num() * 2 * N * N;
        FN(attn_pair_forward)(N, ld, Dh, scale, q + off, k + off, v + off, out + off,
                              lse ? lse + (size_t)bh * N : NULL, S);
    }
}

static void FN(attention_backward)(int nt, int B, int N, int H, int Dh, const REAL *q,
                                   const REAL *k, const REAL *v, const REAL *out, const REAL *lse,
                                   const REAL *dout, REAL *dq, REAL *dk, REAL *dv, REAL *scratch)
{
    const int ld = H * Dh;
    const REAL scale = (REAL)(1.0 / sqrt((double)Dh));
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (long bh = 0; bh < (long)B * H; bh++) {
        const int b = (int)(bh / H), h = (int)(bh % H);
        const size_t off = (size_t)b * N * ld + (size_t)h * Dh;
        REAL *S = scratch + (size_t)omp_get_thread_num() * 2 * N * N;
        FN(attn_pair_backward)(N, ld, Dh, scale, q + off, k + off, v + off, out + off,
                               lse + (size_t)bh * N, dout + off, dq ? dq + off : NULL,
                               dk ? dk + off : NULL, dv ? dv + off : NULL, S, S + (size_t)N * N);
    }
}
