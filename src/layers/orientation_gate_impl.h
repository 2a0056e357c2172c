/* P-mode orientation gate and the 2D gate assembly over REAL; included by
 * orientation_gate.c with REAL, FN(name), GEMM and MATH defined, after
 * realmath_impl.h. */

static void FN(og_forward)(const plstm_orientation_gate *L, const REAL *prm, size_t N, const REAL *x,
                           REAL *omega, REAL *acts, int nt)
{
    const int Din = L->cfg.input_dim, C = 4 * L->cfg.num_heads;
    const REAL *bias = prm + L->bias_off;
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, C, Din, (REAL)(L->cfg.scale / Din), x, Din,
         prm + L->weight_off, Din, 0, omega, C);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const size_t i = n * C + c;
            const REAL pre = omega[i] + bias[c];
            if (acts)
                acts[i] = pre;
            omega[i] = FN(sigmoid)(pre);
        }
}

static plstm_status FN(og_backward)(const plstm_orientation_gate *L, const REAL *prm, size_t N,
                                    const REAL *x, const REAL *acts, const REAL *domega, REAL *dx,
                                    REAL *grads, int nt)
{
    const int Din = L->cfg.input_dim, C = 4 * L->cfg.num_heads;
    REAL *dpre = malloc(N * (size_t)C * sizeof(REAL));
    if (!dpre)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "orientation gate backward: out of memory");
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const size_t i = n * C + c;
            REAL s, sm;
            FN(sigmoid2)(acts[i], &s, &sm);
            dpre[i] = domega[i] * s * sm;
        }
    REAL *db = grads + L->bias_off;
    for (size_t n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            db[c] += dpre[n * C + c];
    const REAL a = (REAL)(L->cfg.scale / Din);
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, C, Din, (int)N, a, dpre, C, x, Din, 1,
         grads + L->weight_off, Din);
    if (dx)
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, Din, C, a, dpre, C, prm + L->weight_off,
             Din, 0, dx, Din);
    free(dpre);
    return PLSTM_OK;
}

/* ---- assembly ----------------------------------------------------------- */

/* Element offset of cell (b·H + h, o, x, y) of a [B·H, 4, Xp, Yp, P] buffer. */
static inline size_t FN(cell)(const plstm_gates2d_desc *d, int b, int h, int o, int x, int y,
                              size_t P)
{
    return (((((size_t)b * d->H + h) * 4 + o) * d->Xp + x) * d->Yp + y) * P;
}

/* Zeroes the padded cells (x ≥ X or y ≥ Y) of a [B·H·4, Xp, Yp, P] buffer. */
static void FN(zero_pad)(const plstm_gates2d_desc *d, REAL *buf, size_t P)
{
    if (!buf || (d->Xp == d->X && d->Yp == d->Y))
        return;
    const size_t planes = (size_t)d->B * d->H * 4;
    for (size_t p = 0; p < planes; p++)
        for (int x = 0; x < d->Xp; x++) {
            REAL *r = buf + ((p * d->Xp + x) * d->Yp) * P;
            if (x >= d->X)
                memset(r, 0, (size_t)d->Yp * P * sizeof(REAL));
            else
                memset(r + (size_t)d->Y * P, 0, (size_t)(d->Yp - d->Y) * P * sizeof(REAL));
        }
}

static void FN(copy_or_zero)(REAL *dst, const REAL *src, size_t P)
{
    if (src)
        memcpy(dst, src, P * sizeof(REAL));
    else
        memset(dst, 0, P * sizeof(REAL));
}

static void FN(pmode_forward)(const plstm_gates2d_desc *d, const REAL *omega, const REAL *S,
                              const REAL *T, const REAL *M, const plstm_gates2d *out, int nt)
{
    const int H = d->H;
    const size_t PS = (size_t)d->JT * d->JK * d->JV, PT = (size_t)d->JT * d->JT;
    const size_t PM = (size_t)d->JO * d->JQ * d->JT, N = (size_t)d->B * d->X * d->Y;
    REAL *Sr = out->S_r, *Sd = out->S_d, *Trl = out->T_rl, *Tdu = out->T_du, *Ml = out->M_l;
    REAL *Tru = out->T_ru != out->T_rl ? out->T_ru : NULL;
    REAL *Tdl = out->T_dl != out->T_du ? out->T_dl : NULL;
    REAL *Mu = out->M_u != out->M_l ? out->M_u : NULL;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t n = 0; n < N; n++) {
        const int b = (int)(n / ((size_t)d->X * d->Y)), x = (int)(n / d->Y % d->X), y = (int)(n % d->Y);
        for (int h = 0; h < H; h++)
            for (int o = 0; o < 4; o++) {
                const size_t i = n * 4 * H + plstm_head_orientation_index(d->map, H, h, o);
                const REAL w = omega[i];
                size_t c = FN(cell)(d, b, h, o, x, y, PS);
                for (size_t k = 0; k < PS; k++) {
                    const REAL v = w * S[i * PS + k];
                    if (Sr)
                        Sr[c + k] = v;
                    if (Sd)
                        Sd[c + k] = 1 - v;
                }
                c = FN(cell)(d, b, h, o, x, y, PT);
                for (size_t k = 0; k < PT; k++) {
                    const REAL v = w * T[i * PT + k];
                    if (Trl)
                        Trl[c + k] = v;
                    if (Tru)
                        Tru[c + k] = v;
                    if (Tdu)
                        Tdu[c + k] = 1 - v;
                    if (Tdl)
                        Tdl[c + k] = 1 - v;
                }
                c = FN(cell)(d, b, h, o, x, y, PM);
                if (Ml)
                    memcpy(Ml + c, M + i * PM, PM * sizeof(REAL));
                if (Mu)
                    memcpy(Mu + c, M + i * PM, PM * sizeof(REAL));
            }
    }
    FN(zero_pad)(d, Sr, PS);
    FN(zero_pad)(d, Sd, PS);
    FN(zero_pad)(d, Trl, PT);
    FN(zero_pad)(d, Tru, PT);
    FN(zero_pad)(d, Tdu, PT);
    FN(zero_pad)(d, Tdl, PT);
    FN(zero_pad)(d, Ml, PM);
    FN(zero_pad)(d, Mu, PM);
}

static inline REAL FN(at)(const void *buf, size_t i)
{
    return buf ? ((const REAL *)buf)[i] : 0;
}

static void FN(pmode_backward)(const plstm_gates2d_desc *d, const REAL *omega, const REAL *S,
                               const REAL *T, const plstm_gates2d *g, REAL *domega, REAL *dS,
                               REAL *dT, REAL *dM, int nt)
{
    const int H = d->H;
    const size_t PS = (size_t)d->JT * d->JK * d->JV, PT = (size_t)d->JT * d->JT;
    const size_t PM = (size_t)d->JO * d->JQ * d->JT, N = (size_t)d->B * d->X * d->Y;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t n = 0; n < N; n++) {
        const int b = (int)(n / ((size_t)d->X * d->Y)), x = (int)(n / d->Y % d->X), y = (int)(n % d->Y);
        for (int h = 0; h < H; h++)
            for (int o = 0; o < 4; o++) {
                const size_t i = n * 4 * H + plstm_head_orientation_index(d->map, H, h, o);
                const REAL w = omega[i];
                double dw = 0;
                size_t c = FN(cell)(d, b, h, o, x, y, PS);
                for (size_t k = 0; k < PS; k++) { /* S_d = 1 − S_r */
                    const REAL gs = FN(at)(g->S_r, c + k) - FN(at)(g->S_d, c + k);
                    dw += (double)gs * S[i * PS + k];
                    if (dS)
                        dS[i * PS + k] = w * gs;
                }
                c = FN(cell)(d, b, h, o, x, y, PT);
                for (size_t k = 0; k < PT; k++) { /* T_ru = T_rl, T_du = T_dl = 1 − T_rl */
                    const REAL gt = FN(at)(g->T_rl, c + k) + FN(at)(g->T_ru, c + k) -
                                    FN(at)(g->T_du, c + k) - FN(at)(g->T_dl, c + k);
                    dw += (double)gt * T[i * PT + k];
                    if (dT)
                        dT[i * PT + k] = w * gt;
                }
                c = FN(cell)(d, b, h, o, x, y, PM);
                if (dM)
                    for (size_t k = 0; k < PM; k++)
                        dM[i * PM + k] = FN(at)(g->M_l, c + k) + FN(at)(g->M_u, c + k);
                if (domega)
                    domega[i] = (REAL)dw;
            }
    }
}

/* D mode: gather (to_core = 0) or scatter (to_core = 1) one sub-layer tensor
 * [N, 4H, P] <-> one core gate [B·H, 4, Xp, Yp, P]. NULL core source = 0. */
static void FN(dmode_move)(const plstm_gates2d_desc *d, REAL *sub, REAL *core, size_t P, int to_core,
                           int nt)
{
    const int H = d->H;
    const size_t N = (size_t)d->B * d->X * d->Y;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t n = 0; n < N; n++) {
        const int b = (int)(n / ((size_t)d->X * d->Y)), x = (int)(n / d->Y % d->X), y = (int)(n % d->Y);
        for (int h = 0; h < H; h++)
            for (int o = 0; o < 4; o++) {
                const size_t i = n * 4 * H + plstm_head_orientation_index(d->map, H, h, o);
                const size_t c = FN(cell)(d, b, h, o, x, y, P);
                if (to_core)
                    memcpy(core + c, sub + i * P, P * sizeof(REAL));
                else
                    FN(copy_or_zero)(sub + i * P, core ? core + c : NULL, P);
            }
    }
    if (to_core)
        FN(zero_pad)(d, core, P);
}

/* src [B·X·Y, H, P] <-> dst [B·H, Xp, Yp, P]. */
static void FN(heads_grid)(int B, int X, int Y, int Xp, int Yp, int H, size_t P, REAL *flat,
                           REAL *grid, int to_grid, int nt)
{
    const size_t N = (size_t)B * X * Y;
    if (to_grid && (Xp != X || Yp != Y))
        memset(grid, 0, (size_t)B * H * Xp * Yp * P * sizeof(REAL));
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t n = 0; n < N; n++) {
        const size_t b = n / ((size_t)X * Y), x = n / Y % X, y = n % Y;
        for (int h = 0; h < H; h++) {
            REAL *f = flat + (n * H + h) * P, *gc = grid + (((b * H + h) * Xp + x) * Yp + y) * P;
            if (to_grid)
                memcpy(gc, f, P * sizeof(REAL));
            else
                memcpy(f, gc, P * sizeof(REAL));
        }
    }
}
