/* Tiled 2D core over one real type: per-tile GEMM work and the wavefront
 * drivers. Included by core2d_tiled.c with REAL, FN(name) and GEMM defined,
 * after core2d_tiled_maps.h.
 *
 * Tile-local layouts (n, s: pixels; j = (entry, t): border components):
 *   Qp [(n,p)][d]   Kp [(s,a)][d]   Vp [(s,c)][v]      packed q, k, v
 *   IN = [Lin | Uin], OUT = [Rout | Dout]  [j][d][v]: in / out border states
 *                        (internal state layout [t][d][v], entries in a row)
 *   Ct [d][j][v]         IN with d outermost, so Qp·Ct is one GEMM
 *   QK [(n,p)][(s,a)],  W [(n,o)][(s,c)] = Σ_{p,a} G ⊙ QK,  Yt [(n,o)][v]
 *   QC [(n,p)][j][v] = Σ_d q_n[d,p] IN[j][d][v]
 *   AkT [(s,c)][(j,d)] = Σ_a S̄[j,(s,a,c)] k_s[d,a]   (source → out border) */

typedef struct FN(ws) {
    REAL *CL, *CU, *Mrow, *OMAP;
    REAL *Qp, *Kp, *Vp, *QK, *W, *Yt, *Ct, *QC, *AkT;
    /* backward only */
    REAL *gCL, *gCU, *dMrow, *dOMAP;
    REAL *dYt, *dYV, *dQK, *dQp, *dKp, *dVp, *dIN, *dOUT, *ET, *dQC, *dCt;
    REAL *buf;
} FN(ws);

/* Allocates the workspace of one thread for tiles up to PX×PY; 0 on failure. */
static int FN(ws_alloc)(const tl2d_dims *m, int backward, FN(ws) *w)
{
    const size_t P = (size_t)m->PX * m->PY, E = (size_t)m->PX + m->PY, JT = m->JT;
    const size_t ncol = E * JT + P * m->JKV;
    const size_t DK = m->DK, DV = m->DV, JQ = m->JQ, JK = m->JK, JV = m->JV, JO = m->JO;
    const size_t nC = P * JT * ncol, nMr = P * m->JOQ * ncol, nOM = E * JT * ncol;
    const size_t nQK = P * JQ * P * JK, nW = P * JO * P * JV, nY = P * JO * DV;
    const size_t nB = E * m->SZ, nQC = P * JQ * E * JT * DV, nAk = P * JV * E * JT * DK;
    const size_t nQ = P * JQ * DK, nK = P * JK * DK, nV = P * JV * DV;
    size_t sizes[32] = {nC, nC, nMr, nOM, nQ, nK, nV, nQK, nW, nY, nB, nQC, nAk};
    REAL **ptrs[32] = {&w->CL, &w->CU, &w->Mrow, &w->OMAP, &w->Qp, &w->Kp, &w->Vp,
                       &w->QK, &w->W, &w->Yt, &w->Ct, &w->QC, &w->AkT};
    int cnt = 13;
    memset(w, 0, sizeof *w);
    if (backward) {
        size_t bs[11] = {nC, nC, nMr, nOM, nY, nW, nQK, nQ, nK, nV, nB};
        REAL **bp[11] = {&w->gCL, &w->gCU, &w->dMrow, &w->dOMAP, &w->dYt, &w->dYV,
                         &w->dQK, &w->dQp, &w->dKp, &w->dVp, &w->dIN};
        for (int i = 0; i < 11; i++) {
            sizes[cnt] = bs[i];
            ptrs[cnt++] = bp[i];
        }
        size_t bs2[4] = {nB, nAk, nQC, nB};
        REAL **bp2[4] = {&w->dOUT, &w->ET, &w->dQC, &w->dCt};
        for (int i = 0; i < 4; i++) {
            sizes[cnt] = bs2[i];
            ptrs[cnt++] = bp2[i];
        }
    }
    size_t total = 0;
    for (int i = 0; i < cnt; i++)
        total += sizes[i];
    w->buf = malloc(sizeof(REAL) * (total ? total : 1));
    if (!w->buf)
        return 0;
    REAL *p = w->buf;
    for (int i = 0; i < cnt; i++) {
        *ptrs[i] = p;
        p += sizes[i];
    }
    return 1;
}

/* ---- state layout conversion (public [d][v][t] <-> internal [t][d][v]) ---- */

static void FN(state_in)(const tl2d_dims *m, const REAL *src, REAL *dst)
{
    if (!src) {
        memset(dst, 0, sizeof(REAL) * m->SZ);
        return;
    }
    const int JT = m->JT;
    for (int t = 0; t < JT; t++)
        for (size_t e = 0; e < m->N; e++)
            dst[(size_t)t * m->N + e] = src[e * JT + t];
}

static void FN(state_out)(const tl2d_dims *m, const REAL *src, REAL *dst)
{
    const int JT = m->JT;
    for (int t = 0; t < JT; t++)
        for (size_t e = 0; e < m->N; e++)
            dst[e * JT + t] = src[(size_t)t * m->N + e];
}

/* ---- per-tile pieces ------------------------------------------------------ */

static size_t FN(pix)(const tl2d_dims *m, const tl2d_tile *t, int n)
{
    const int w = n / t->by, z = n % t->by;
    return ((size_t)t->b * m->X + t->x0 + w) * m->Y + t->y0 + z;
}

/* Packs q (if Qp), k and v of the tile's pixels. */
static void FN(pack)(const tl2d_dims *m, const plstm_core2d_inputs *in, const tl2d_tile *t,
                     REAL *Qp, REAL *Kp, REAL *Vp)
{
    const int DK = m->DK, DV = m->DV, JQ = m->JQ, JK = m->JK, JV = m->JV;
    if (JQ == 1 && JK == 1 && JV == 1) { /* rows of the tile are contiguous */
        for (int x = 0; x < t->bx; x++) {
            const size_t i = FN(pix)(m, t, x * t->by), n = (size_t)x * t->by;
            memcpy(Kp + n * DK, (const REAL *)in->K + i * DK, sizeof(REAL) * t->by * DK);
            memcpy(Vp + n * DV, (const REAL *)in->V + i * DV, sizeof(REAL) * t->by * DV);
            if (Qp)
                memcpy(Qp + n * DK, (const REAL *)in->Q + i * DK, sizeof(REAL) * t->by * DK);
        }
        return;
    }
    for (int n = 0; n < t->np; n++) {
        const size_t i = FN(pix)(m, t, n);
        const REAL *k = (const REAL *)in->K + i * m->nk, *v = (const REAL *)in->V + i * m->nv;
        for (int a = 0; a < JK; a++)
            for (int d = 0; d < DK; d++)
                Kp[((size_t)n * JK + a) * DK + d] = k[(size_t)d * JK + a];
        for (int c = 0; c < JV; c++)
            for (int j = 0; j < DV; j++)
                Vp[((size_t)n * JV + c) * DV + j] = v[(size_t)j * JV + c];
        if (Qp) {
            const REAL *q = (const REAL *)in->Q + i * m->nq;
            for (int p = 0; p < JQ; p++)
                for (int d = 0; d < DK; d++)
                    Qp[((size_t)n * JQ + p) * DK + d] = q[(size_t)d * JQ + p];
        }
    }
}

/* AkT[(s,c)][(j,d)] = Σ_a OMAP[j][src(s,a,c)] k_s[d,a] */
static void FN(build_akt)(const tl2d_dims *m, const tl2d_tile *t, const REAL *OMAP,
                          const REAL *Kp, REAL *AkT)
{
    const int DK = m->DK, JK = m->JK, JV = m->JV, nej = t->nej, ncol = t->ncol;
    const size_t ld = (size_t)nej * DK;
    for (int s = 0; s < t->np; s++)
        for (int c = 0; c < JV; c++) {
            REAL *row = AkT + ((size_t)s * JV + c) * ld;
            for (int j = 0; j < nej; j++) {
                REAL *o = row + (size_t)j * DK;
                const REAL *om = OMAP + (size_t)j * ncol + nej + (size_t)s * JK * JV + c;
                FN(scal)(DK, om[0], Kp + (size_t)s * JK * DK, o);
                for (int a = 1; a < JK; a++)
                    FN(axpy)(DK, om[(size_t)a * JV], Kp + ((size_t)s * JK + a) * DK, o);
            }
        }
}

/* W[(n,o)][(s,c)] = Σ_{p,a} Mrow[n][(o,p)][src(s,a,c)] QK[(n,p)][(s,a)] */
static void FN(build_w)(const tl2d_dims *m, const tl2d_tile *t, const REAL *Mrow,
                        const REAL *QK, REAL *W)
{
    const int JQ = m->JQ, JK = m->JK, JV = m->JV, JO = m->JO, np = t->np, ncol = t->ncol;
    if (JQ == 1 && JK == 1 && JV == 1 && JO == 1) {
        for (int n = 0; n < np; n++)
            FN(mul)(np, Mrow + (size_t)n * ncol + t->nej, QK + (size_t)n * np, W + (size_t)n * np);
        return;
    }
    for (int n = 0; n < np; n++)
        for (int o = 0; o < JO; o++) {
            REAL *restrict wr = W + ((size_t)n * JO + o) * np * JV;
            memset(wr, 0, sizeof(REAL) * np * JV);
            for (int p = 0; p < JQ; p++) {
                const REAL *mr = Mrow + ((size_t)n * m->JOQ + o * JQ + p) * ncol + t->nej;
                const REAL *qk = QK + ((size_t)n * JQ + p) * np * JK;
                for (int s = 0; s < np; s++)
                    for (int a = 0; a < JK; a++)
                        for (int c = 0; c < JV; c++)
                            wr[(size_t)s * JV + c] +=
                                mr[((size_t)s * JK + a) * JV + c] * qk[(size_t)s * JK + a];
            }
        }
}

/* Ct[d][j][v] = IN[j][d][v], IN = [Lin | Uin] */
static void FN(build_ct)(const tl2d_dims *m, const tl2d_tile *t, const REAL *Lin,
                         const REAL *Uin, REAL *Ct)
{
    const int DK = m->DK, DV = m->DV, nej = t->nej, nl = t->by * m->JT;
    for (int j = 0; j < nej; j++) {
        const REAL *src = j < nl ? Lin + (size_t)j * m->N : Uin + (size_t)(j - nl) * m->N;
        for (int d = 0; d < DK; d++)
            FN(copy)(DV, src + (size_t)d * DV, Ct + ((size_t)d * nej + j) * DV);
    }
}

/* Border states out of the tile: [Rout | Dout] = T̄ [Lin | Uin] + S̄ ⋄ (k v),
 * one GEMM per (out piece, in piece) straight into the slots. */
static void FN(border_write)(const tl2d_dims *m, const tl2d_tile *t, const REAL *Lin,
                             const REAL *Uin, REAL *Rout, REAL *Dout, FN(ws) *w)
{
    const int nej = t->nej, N = (int)m->N, ncol = t->ncol, JT = m->JT;
    const int nl = t->by * JT, nu = t->bx * JT;
    const REAL *A = w->OMAP;
    FN(build_akt)(m, t, w->OMAP, w->Kp, w->AkT);
    for (int h = 0; h < 2; h++) {
        const int rows = h ? nu : nl;
        REAL *out = h ? Dout : Rout;
        const REAL *Ah = A + (size_t)(h ? nl : 0) * ncol;
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, N, nl, 1, Ah, ncol, Lin, N, 0, out,
             N);
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, N, nu, 1, Ah + nl, ncol, Uin, N, 1,
             out, N);
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, rows * m->DK, m->DV, t->np * m->JV, 1,
             w->AkT + (size_t)(h ? nl : 0) * m->DK, nej * m->DK, w->Vp, m->DV, 1, out, m->DV);
    }
}

/* Forward of one tile: reads Lin (by states) and Uin (bx states), writes Rout,
 * Dout (which must not alias them) and, if Y, the tile's outputs. */
static void FN(tile_fwd)(const tl2d_dims *m, const plstm_core2d_inputs *in, const tl2d_tile *t,
                         const REAL *Lin, const REAL *Uin, REAL *Rout, REAL *Dout, REAL *Y,
                         FN(ws) *w)
{
    const int np = t->np, nej = t->nej, ncol = t->ncol;
    const int DK = m->DK, DV = m->DV, JQ = m->JQ, JO = m->JO, JK = m->JK, JV = m->JV;
    FN(maps_build)(m, in, t, w->CL, w->CU, w->Mrow, w->OMAP);
    FN(pack)(m, in, t, Y ? w->Qp : NULL, w->Kp, w->Vp);
    FN(border_write)(m, t, Lin, Uin, Rout, Dout, w);
    if (!Y)
        return;

    /* Intra-tile part: Yt = ((Q Kᵀ) ⊙ G) V. */
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, np * JQ, np * JK, DK, 1, w->Qp, DK, w->Kp, DK,
         0, w->QK, np * JK);
    FN(build_w)(m, t, w->Mrow, w->QK, w->W);
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, np * JO, DV, np * JV, 1, w->W, np * JV,
         w->Vp, DV, 0, w->Yt, DV);

    /* Border reads: Yt[(n,o)] += Σ_{p,j} M̄[n][(o,p)][j] QC[(n,p)][j]. */
    FN(build_ct)(m, t, Lin, Uin, w->Ct);
    const int ldc = nej * DV;
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, np * JQ, ldc, DK, 1, w->Qp, DK, w->Ct, ldc, 0,
         w->QC, ldc);
    for (int n = 0; n < np; n++)
        for (int o = 0; o < JO; o++) {
            REAL *yt = w->Yt + ((size_t)n * JO + o) * DV;
            for (int p = 0; p < JQ; p++) {
                const REAL *mr = w->Mrow + ((size_t)n * m->JOQ + o * JQ + p) * ncol;
                const REAL *qc = w->QC + ((size_t)n * JQ + p) * ldc;
                for (int j = 0; j < nej; j++)
                    if (mr[j] != 0)
                        FN(axpy)(DV, mr[j], qc + (size_t)j * DV, yt);
            }
        }

    const REAL scale = (REAL)m->scale;
    for (int n = 0; n < np; n++) {
        REAL *y = Y + FN(pix)(m, t, n) * m->ny;
        for (int o = 0; o < JO; o++)
            for (int v = 0; v < DV; v++)
                y[(size_t)v * JO + o] = scale * w->Yt[((size_t)n * JO + o) * DV + v];
    }
}

/* Intra-tile adjoint through W = G ⊙ QK, from dYV[(n,o)][(s,c)] = dYt · Vpᵀ:
 * dMrow (source columns) = dYV ⊙ QK,  dQK = Σ_{o,c} Mrow ⊙ dYV. */
static void FN(intra_grad)(const tl2d_dims *m, const tl2d_tile *t, FN(ws) *w)
{
    const int np = t->np, nej = t->nej, ncol = t->ncol;
    const int JQ = m->JQ, JO = m->JO, JK = m->JK, JV = m->JV, JOQ = m->JOQ;
    if (JQ == 1 && JK == 1 && JV == 1 && JO == 1) {
        for (int n = 0; n < np; n++) {
            const size_t row = (size_t)n * ncol + nej;
            FN(mul)(np, w->dYV + (size_t)n * np, w->QK + (size_t)n * np, w->dMrow + row);
            FN(mul)(np, w->dYV + (size_t)n * np, w->Mrow + row, w->dQK + (size_t)n * np);
        }
        return;
    }
    for (int n = 0; n < np; n++)
        for (int p = 0; p < JQ; p++) {
            const REAL *qk = w->QK + ((size_t)n * JQ + p) * np * JK;
            REAL *dqk = w->dQK + ((size_t)n * JQ + p) * np * JK;
            memset(dqk, 0, sizeof(REAL) * np * JK);
            for (int o = 0; o < JO; o++) {
                const size_t row = ((size_t)n * JOQ + o * JQ + p) * ncol + nej;
                const REAL *mr = w->Mrow + row;
                REAL *dmr = w->dMrow + row;
                const REAL *dyv = w->dYV + ((size_t)n * JO + o) * np * JV;
                for (int s = 0; s < np; s++)
                    for (int a = 0; a < JK; a++)
                        for (int c = 0; c < JV; c++) {
                            const size_t sac = ((size_t)s * JK + a) * JV + c;
                            const REAL g = dyv[(size_t)s * JV + c];
                            dmr[sac] = g * qk[(size_t)s * JK + a];
                            dqk[(size_t)s * JK + a] += mr[sac] * g;
                        }
            }
        }
}

/* Adjoint of tile_fwd. Lin, Uin: the tile's incoming states. gR (by states),
 * gD (bx states): on entry the gradients of the tile's out-border states, on
 * exit those of its in-border states. Writes the gradients of every input of
 * the tile's pixels. */
static void FN(tile_bwd)(const tl2d_dims *m, const plstm_core2d_inputs *in,
                         const plstm_core2d_cotangents *dout, const plstm_core2d_grads *grad,
                         const tl2d_tile *t, const REAL *Lin, const REAL *Uin, REAL *gR,
                         REAL *gD, FN(ws) *w)
{
    const size_t SZ = m->SZ;
    const int np = t->np, nej = t->nej, ncol = t->ncol, N = (int)m->N;
    const int DK = m->DK, DV = m->DV, JQ = m->JQ, JO = m->JO, JK = m->JK, JV = m->JV;
    const int JOQ = m->JOQ;
    const REAL scale = (REAL)m->scale;
    FN(maps_build)(m, in, t, w->CL, w->CU, w->Mrow, w->OMAP);
    FN(pack)(m, in, t, w->Qp, w->Kp, w->Vp);
    memcpy(w->dOUT, gR, sizeof(REAL) * t->by * SZ);
    memcpy(w->dOUT + (size_t)t->by * SZ, gD, sizeof(REAL) * t->bx * SZ);
    for (int n = 0; n < np; n++) { /* dYt = scale · dy, transposed */
        const REAL *dy = (const REAL *)dout->Y + FN(pix)(m, t, n) * m->ny;
        for (int o = 0; o < JO; o++)
            for (int v = 0; v < DV; v++)
                w->dYt[((size_t)n * JO + o) * DV + v] = scale * dy[(size_t)v * JO + o];
    }

    /* Border write OUT = T̄ IN + S̄ ⋄ (k v). */
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, nej, N, nej, 1, w->OMAP, ncol, w->dOUT, N, 0,
         w->dIN, N);
    const int nl = t->by * m->JT;
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, nej, nl, N, 1, w->dOUT, N, Lin, N, 0, w->dOMAP,
         ncol);
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, nej, nej - nl, N, 1, w->dOUT, N, Uin, N, 0,
         w->dOMAP + nl, ncol);
    const int ldj = nej * DK;
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, np * JV, ldj, DV, 1, w->Vp, DV, w->dOUT, DV, 0,
         w->ET, ldj);
    memset(w->dKp, 0, sizeof(REAL) * np * JK * DK);
    for (int s = 0; s < np; s++)
        for (int a = 0; a < JK; a++) {
            const REAL *k = w->Kp + ((size_t)s * JK + a) * DK;
            REAL *dk = w->dKp + ((size_t)s * JK + a) * DK;
            for (int c = 0; c < JV; c++) {
                const size_t col = (size_t)nej + ((size_t)s * JK + a) * JV + c;
                const REAL *et = w->ET + ((size_t)s * JV + c) * ldj;
                for (int j = 0; j < nej; j++) {
                    const REAL *e = et + (size_t)j * DK;
                    w->dOMAP[(size_t)j * ncol + col] = FN(dot)(DK, e, k);
                    const REAL coef = w->OMAP[(size_t)j * ncol + col];
                    if (coef != 0)
                        FN(axpy)(DK, coef, e, dk);
                }
            }
        }
    FN(build_akt)(m, t, w->OMAP, w->Kp, w->AkT);
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, np * JV, DV, ldj, 1, w->AkT, ldj, w->dOUT, DV,
         0, w->dVp, DV);

    /* Intra-tile part Yt = ((Q Kᵀ) ⊙ G) V. */
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, np * JQ, np * JK, DK, 1, w->Qp, DK, w->Kp, DK,
         0, w->QK, np * JK);
    FN(build_w)(m, t, w->Mrow, w->QK, w->W);
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, np * JO, np * JV, DV, 1, w->dYt, DV, w->Vp, DV,
         0, w->dYV, np * JV);
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, np * JV, DV, np * JO, 1, w->W, np * JV, w->dYt,
         DV, 1, w->dVp, DV);
    FN(intra_grad)(m, t, w);
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, np * JQ, DK, np * JK, 1, w->dQK, np * JK,
         w->Kp, DK, 0, w->dQp, DK);
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, np * JK, DK, np * JQ, 1, w->dQK, np * JK, w->Qp,
         DK, 1, w->dKp, DK);

    /* Border reads. */
    FN(build_ct)(m, t, Lin, Uin, w->Ct);
    const int ldc = nej * DV;
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, np * JQ, ldc, DK, 1, w->Qp, DK, w->Ct, ldc, 0,
         w->QC, ldc);
    memset(w->dQC, 0, sizeof(REAL) * np * JQ * ldc);
    for (int n = 0; n < np; n++)
        for (int o = 0; o < JO; o++) {
            const REAL *dyt = w->dYt + ((size_t)n * JO + o) * DV;
            for (int p = 0; p < JQ; p++) {
                const size_t row = ((size_t)n * JOQ + o * JQ + p) * ncol;
                const REAL *qc = w->QC + ((size_t)n * JQ + p) * ldc;
                REAL *dqc = w->dQC + ((size_t)n * JQ + p) * ldc;
                for (int j = 0; j < nej; j++) {
                    w->dMrow[row + j] = FN(dot)(DV, dyt, qc + (size_t)j * DV);
                    const REAL c = w->Mrow[row + j];
                    if (c != 0)
                        FN(axpy)(DV, c, dyt, dqc + (size_t)j * DV);
                }
            }
        }
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, np * JQ, DK, ldc, 1, w->dQC, ldc, w->Ct, ldc, 1,
         w->dQp, DK);
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, DK, ldc, np * JQ, 1, w->Qp, DK, w->dQC, ldc, 0,
         w->dCt, ldc);
    for (int j = 0; j < nej; j++)
        for (int d = 0; d < DK; d++)
            FN(axpy)(DV, 1, w->dCt + ((size_t)d * nej + j) * DV,
                     w->dIN + ((size_t)j * DK + d) * DV);

    /* Gates, then q, k, v and the in-border gradients. */
    FN(maps_adjoint)(m, in, grad, t, w->CL, w->CU, w->dMrow, w->dOMAP, w->gCL, w->gCU);
    for (int n = 0; n < np; n++) {
        const size_t i = FN(pix)(m, t, n);
        if (grad->Q) {
            REAL *dq = (REAL *)grad->Q + i * m->nq;
            for (int p = 0; p < JQ; p++)
                for (int d = 0; d < DK; d++)
                    dq[(size_t)d * JQ + p] = w->dQp[((size_t)n * JQ + p) * DK + d];
        }
        if (grad->K) {
            REAL *dk = (REAL *)grad->K + i * m->nk;
            for (int a = 0; a < JK; a++)
                for (int d = 0; d < DK; d++)
                    dk[(size_t)d * JK + a] = w->dKp[((size_t)n * JK + a) * DK + d];
        }
        if (grad->V) {
            REAL *dv = (REAL *)grad->V + i * m->nv;
            for (int c = 0; c < JV; c++)
                for (int v = 0; v < DV; v++)
                    dv[(size_t)v * JV + c] = w->dVp[((size_t)n * JV + c) * DV + v];
        }
    }
    memcpy(gR, w->dIN, sizeof(REAL) * t->by * SZ);
    memcpy(gD, w->dIN + (size_t)t->by * SZ, sizeof(REAL) * t->bx * SZ);
}

/* ---- drivers ---------------------------------------------------------------- */

/* Tiles on anti-diagonal k: tx in [lo, lo + cnt). */
static int FN(diag)(const tl2d_dims *m, int k, int *lo)
{
    *lo = k - (m->NY - 1) > 0 ? k - (m->NY - 1) : 0;
    int hi = k < m->NX - 1 ? k : m->NX - 1;
    return hi - *lo + 1;
}

/* Border-state storage of a driver. R slots hang off tile rows, D slots off
 * tile columns; slot sx = 0..NX holds the states entering tile column sx
 * (sy likewise). Forward: two lines per batch entry, used alternately (slot
 * sx & 1; tiles of one anti-diagonal touch distinct rows and columns).
 * Backward: every slot of a chunk of batch entries, plus gradient lines. */
typedef struct FN(store) {
    REAL *R, *D, *gR, *gD;
    size_t slotR, slotD; /* elements per slot: PY resp. PX states */
    int all;             /* every slot (backward) or lines (forward) */
} FN(store);

static REAL *FN(rs)(const tl2d_dims *m, const FN(store) *s, int bl, int sx, int ty)
{
    size_t i = ((size_t)bl * (s->all ? m->NX + 1 : 2) + (s->all ? sx : sx & 1)) * m->NY + ty;
    return s->R + i * s->slotR;
}

static REAL *FN(ds)(const tl2d_dims *m, const FN(store) *s, int bl, int tx, int sy)
{
    size_t i = s->all ? ((size_t)bl * m->NX + tx) * (m->NY + 1) + sy
                      : ((size_t)bl * 2 + (sy & 1)) * m->NX + tx;
    return s->D + i * s->slotD;
}

/* Initial states of batch entry b into its first slots (and, backward, the
 * border cotangents into the gradient lines). */
static void FN(store_init)(const tl2d_dims *m, const FN(store) *s, int bl, size_t b,
                           const REAL *C0l, const REAL *C0t, const REAL *dCr, const REAL *dCb)
{
    const size_t SZ = m->SZ;
    const int BP = m->BP;
    for (int y = 0; y < m->Y; y++) {
        FN(state_in)(m, C0l ? C0l + (b * m->Y + y) * SZ : NULL,
                     FN(rs)(m, s, bl, 0, y / BP) + (size_t)(y % BP) * SZ);
        if (s->gR)
            FN(state_in)(m, dCr ? dCr + (b * m->Y + y) * SZ : NULL,
                         s->gR + ((size_t)bl * m->NY + y / BP) * s->slotR + (size_t)(y % BP) * SZ);
    }
    for (int x = 0; x < m->X; x++) {
        FN(state_in)(m, C0t ? C0t + (b * m->X + x) * SZ : NULL,
                     FN(ds)(m, s, bl, x / BP, 0) + (size_t)(x % BP) * SZ);
        if (s->gD)
            FN(state_in)(m, dCb ? dCb + (b * m->X + x) * SZ : NULL,
                         s->gD + ((size_t)bl * m->NX + x / BP) * s->slotD + (size_t)(x % BP) * SZ);
    }
}

/* Writes n states of a line (R: per row, D: per column) out in public layout. */
static void FN(line_out)(const tl2d_dims *m, const REAL *line, size_t slot, int n, REAL *dst)
{
    for (int k = 0; k < n; k++)
        FN(state_out)(m, line + (size_t)(k / m->BP) * slot + (size_t)(k % m->BP) * m->SZ,
                      dst + (size_t)k * m->SZ);
}

/* Forward of tile (tx,ty) of batch entry b0 + bl; Y NULL: border states only. */
static void FN(fwd_tile)(const tl2d_dims *m, const plstm_core2d_inputs *in, const FN(store) *s,
                         int b0, int bl, int tx, int ty, REAL *Y, FN(ws) *w)
{
    const tl2d_tile t = tl2d_make_tile(m, b0 + bl, tx, ty);
    FN(tile_fwd)(m, in, &t, FN(rs)(m, s, bl, tx, ty), FN(ds)(m, s, bl, tx, ty),
                 FN(rs)(m, s, bl, tx + 1, ty), FN(ds)(m, s, bl, tx, ty + 1), Y, w);
}

static void FN(bwd_tile)(const tl2d_dims *m, const plstm_core2d_inputs *in,
                         const plstm_core2d_cotangents *dout, const plstm_core2d_grads *grad,
                         const FN(store) *s, int b0, int bl, int tx, int ty, FN(ws) *w)
{
    const tl2d_tile t = tl2d_make_tile(m, b0 + bl, tx, ty);
    FN(tile_bwd)(m, in, dout, grad, &t, FN(rs)(m, s, bl, tx, ty), FN(ds)(m, s, bl, tx, ty),
                 s->gR + ((size_t)bl * m->NY + ty) * s->slotR,
                 s->gD + ((size_t)bl * m->NX + tx) * s->slotD, w);
}

/* Whole batch entries per thread when that balances (no barrier per
 * anti-diagonal); otherwise the tiles of one anti-diagonal in parallel. */
static int FN(by_batch)(int nb, int threads)
{
    return nb >= 4 * threads || nb % threads == 0;
}

static plstm_status FN(forward)(const tl2d_dims *m, int threads, const plstm_core2d_inputs *in,
                                const plstm_core2d_outputs *out)
{
    const int B = m->B, NX = m->NX, NY = m->NY;
    FN(store) s = {.slotR = (size_t)m->PY * m->SZ, .slotD = (size_t)m->PX * m->SZ};
    s.R = malloc(sizeof(REAL) * (size_t)B * 2 * NY * s.slotR);
    s.D = malloc(sizeof(REAL) * (size_t)B * 2 * NX * s.slotD);
    if (!s.R || !s.D) {
        free(s.R);
        free(s.D);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "core2d tiled forward: out of memory");
    }
    REAL *Y = out->Y;
    const int by_batch = FN(by_batch)(B, threads);
    int failed = 0;
    const int blas_prev = cpu_blas_serial_begin(threads);
#pragma omp parallel num_threads(threads)
    {
        FN(ws) w;
        const int ok = FN(ws_alloc)(m, 0, &w);
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            FN(store_init)(m, &s, b, (size_t)b, in->C0_left, in->C0_top, NULL, NULL);
            for (int tx = 0; tx < NX && by_batch && ok; tx++)
                for (int ty = 0; ty < NY; ty++)
                    FN(fwd_tile)(m, in, &s, 0, b, tx, ty, Y, &w);
        }
        for (int k = 0; k < NX + NY - 1 && !by_batch; k++) {
            int lo;
            const int cnt = FN(diag)(m, k, &lo);
#pragma omp for schedule(dynamic, 1)
            for (int it = 0; it < B * cnt; it++)
                if (ok)
                    FN(fwd_tile)(m, in, &s, 0, it / cnt, lo + it % cnt, k - lo - it % cnt, Y, &w);
        }
#pragma omp for
        for (int b = 0; b < B; b++) {
            if (out->C_right)
                FN(line_out)(m, FN(rs)(m, &s, b, NX, 0), s.slotR, m->Y,
                             (REAL *)out->C_right + (size_t)b * m->Y * m->SZ);
            if (out->C_bottom)
                FN(line_out)(m, FN(ds)(m, &s, b, 0, NY), s.slotD, m->X,
                             (REAL *)out->C_bottom + (size_t)b * m->X * m->SZ);
        }
        free(w.buf);
    }
    cpu_blas_serial_end(blas_prev);
    free(s.R);
    free(s.D);
    if (failed)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "core2d tiled forward: out of memory");
    return PLSTM_OK;
}

static plstm_status FN(backward)(const tl2d_dims *m, int threads, const plstm_core2d_inputs *in,
                                 const plstm_core2d_cotangents *dout,
                                 const plstm_core2d_grads *grad)
{
    const int B = m->B, NX = m->NX, NY = m->NY;
    FN(store) s = {.slotR = (size_t)m->PY * m->SZ, .slotD = (size_t)m->PX * m->SZ, .all = 1};
    /* Every tile's in-states are stored for the adjoint; batch chunks of bc
     * entries bound that memory. */
    const size_t nR = (size_t)(NX + 1) * NY * s.slotR, nD = (size_t)NX * (NY + 1) * s.slotD;
    int bc = (int)(TL2D_BWD_BUDGET_BYTES / (sizeof(REAL) * (nR + nD)));
    bc = bc < threads ? threads : bc - bc % threads; /* whole rounds of threads */
    bc = bc > B ? B : bc;
    s.R = malloc(sizeof(REAL) * (size_t)bc * nR);
    s.D = malloc(sizeof(REAL) * (size_t)bc * nD);
    s.gR = malloc(sizeof(REAL) * (size_t)bc * NY * s.slotR);
    s.gD = malloc(sizeof(REAL) * (size_t)bc * NX * s.slotD);
    if (!s.R || !s.D || !s.gR || !s.gD) {
        free(s.R);
        free(s.D);
        free(s.gR);
        free(s.gD);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "core2d tiled backward: out of memory");
    }
    int failed = 0;
    const int blas_prev = cpu_blas_serial_begin(threads);
#pragma omp parallel num_threads(threads)
    {
        FN(ws) w;
        const int ok = FN(ws_alloc)(m, 1, &w);
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
        for (int b0 = 0; b0 < B; b0 += bc) {
            const int nb = B - b0 < bc ? B - b0 : bc;
            const int by_batch = FN(by_batch)(nb, threads);
#pragma omp for schedule(dynamic, 1)
            for (int bl = 0; bl < nb; bl++) {
                FN(store_init)(m, &s, bl, (size_t)b0 + bl, in->C0_left, in->C0_top,
                               dout->C_right, dout->C_bottom);
                /* Whole entry here: recompute every tile's states, then the adjoint
                 * in reverse raster order. */
                for (int tx = 0; tx < NX && by_batch && ok; tx++)
                    for (int ty = 0; ty < NY; ty++)
                        FN(fwd_tile)(m, in, &s, b0, bl, tx, ty, NULL, &w);
                for (int tx = NX - 1; tx >= 0 && by_batch && ok; tx--)
                    for (int ty = NY - 1; ty >= 0; ty--)
                        FN(bwd_tile)(m, in, dout, grad, &s, b0, bl, tx, ty, &w);
            }
            for (int k = 0; k < NX + NY - 1 && !by_batch; k++) {
                int lo;
                const int cnt = FN(diag)(m, k, &lo);
#pragma omp for schedule(dynamic, 1)
                for (int it = 0; it < nb * cnt; it++)
                    if (ok)
                        FN(fwd_tile)(m, in, &s, b0, it / cnt, lo + it % cnt, k - lo - it % cnt,
                                     NULL, &w);
            }
            for (int k = NX + NY - 2; k >= 0 && !by_batch; k--) {
                int lo;
                const int cnt = FN(diag)(m, k, &lo);
#pragma omp for schedule(dynamic, 1)
                for (int it = 0; it < nb * cnt; it++)
                    if (ok)
                        FN(bwd_tile)(m, in, dout, grad, &s, b0, it / cnt, lo + it % cnt,
                                     k - lo - it % cnt, &w);
            }
#pragma omp for
            for (int bl = 0; bl < nb; bl++) {
                const size_t b = (size_t)b0 + bl;
                if (grad->C0_left)
                    FN(line_out)(m, s.gR + (size_t)bl * NY * s.slotR, s.slotR, m->Y,
                                 (REAL *)grad->C0_left + b * m->Y * m->SZ);
                if (grad->C0_top)
                    FN(line_out)(m, s.gD + (size_t)bl * NX * s.slotD, s.slotD, m->X,
                                 (REAL *)grad->C0_top + b * m->X * m->SZ);
            }
        }
        free(w.buf);
    }
    cpu_blas_serial_end(blas_prev);
    free(s.R);
    free(s.D);
    free(s.gR);
    free(s.gD);
    if (failed)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "core2d tiled backward: out of memory");
    return PLSTM_OK;
}
