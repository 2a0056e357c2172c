/* Transfer maps of one tile, built from the gates alone (no DK/DV), and their
 * adjoint. Included by core2d_tiled.c with REAL and FN(name) defined.
 *
 * Every edge state inside the tile is a linear function of the tile's
 * in-border states and of its pixels' sources P_s = k_s v_s:
 *     C_e = Σ_j A_e[·,j] C_in[j]  +  Σ_{s,a,c} B_e[·,(s,a,c)] k_s[·,a] v_s[·,c]
 * stored as one JT × ncol coefficient matrix (columns: nej in-border
 * components, then np·JK·JV source components). An impulse recurrence in
 * raster order gives these matrices for every node's incoming edges (CL, CU);
 * from them
 *     Mrow[n] = M_l CL[n] + M_u CU[n] (+ D on the columns of pixel n)
 *             — row (o,p): what target n reads (marks and intra-tile gating G)
 *     OMAP    — rows (out entry, t): the out-border states (T̄ and S̄ maps). */

typedef struct FN(gates) {
    const REAL *Sr, *Sd, *Trl, *Tdu, *Tdl, *Tru, *Ml, *Mu, *D;
} FN(gates);

typedef struct FN(dgates) {
    REAL *Sr, *Sd, *Trl, *Tdu, *Tdl, *Tru, *Ml, *Mu, *D;
} FN(dgates);

#define TL2D_AT(p, i, n) ((p) ? (p) + (size_t)(i) * (n) : NULL)

static void FN(gates_at)(const tl2d_dims *m, const plstm_core2d_inputs *in, size_t i,
                         FN(gates) *g)
{
    g->Sr = TL2D_AT((const REAL *)in->S_r, i, m->nS);
    g->Sd = TL2D_AT((const REAL *)in->S_d, i, m->nS);
    g->Trl = TL2D_AT((const REAL *)in->T_rl, i, m->nT);
    g->Tdu = TL2D_AT((const REAL *)in->T_du, i, m->nT);
    g->Tdl = TL2D_AT((const REAL *)in->T_dl, i, m->nT);
    g->Tru = TL2D_AT((const REAL *)in->T_ru, i, m->nT);
    g->Ml = TL2D_AT((const REAL *)in->M_l, i, m->nM);
    g->Mu = TL2D_AT((const REAL *)in->M_u, i, m->nM);
    g->D = TL2D_AT((const REAL *)in->D, i, m->nD);
}

static void FN(dgates_at)(const tl2d_dims *m, const plstm_core2d_grads *gr, size_t i,
                          FN(dgates) *g)
{
    g->Sr = TL2D_AT((REAL *)gr->S_r, i, m->nS);
    g->Sd = TL2D_AT((REAL *)gr->S_d, i, m->nS);
    g->Trl = TL2D_AT((REAL *)gr->T_rl, i, m->nT);
    g->Tdu = TL2D_AT((REAL *)gr->T_du, i, m->nT);
    g->Tdl = TL2D_AT((REAL *)gr->T_dl, i, m->nT);
    g->Tru = TL2D_AT((REAL *)gr->T_ru, i, m->nT);
    g->Ml = TL2D_AT((REAL *)gr->M_l, i, m->nM);
    g->Mu = TL2D_AT((REAL *)gr->M_u, i, m->nM);
    g->D = TL2D_AT((REAL *)gr->D, i, m->nD);
}

/* Vector kernels with restrict parameters (GCC ignores restrict on local
 * pointers), so the loops vectorize without alias checks. */
static void FN(axpy)(int n, REAL a, const REAL *restrict x, REAL *restrict y)
{
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

static void FN(scal)(int n, REAL a, const REAL *restrict x, REAL *restrict y)
{
    for (int i = 0; i < n; i++)
        y[i] = a * x[i];
}

static void FN(copy)(int n, const REAL *restrict src, REAL *restrict dst)
{
    for (int i = 0; i < n; i++)
        dst[i] = src[i];
}

static void FN(mul)(int n, const REAL *restrict a, const REAL *restrict b, REAL *restrict out)
{
    for (int i = 0; i < n; i++)
        out[i] = a[i] * b[i];
}

/* Σ a[i] b[i] with 8 partial sums, so it vectorizes without -ffast-math. */
static REAL FN(dot)(int n, const REAL *restrict a, const REAL *restrict b)
{
    REAL acc[8] = {0};
    int i = 0;
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

/* out[rows×ncol] += A[rows×JT] · C[JT×ncol]   (A NULL = absent) */
static void FN(mm_acc)(int rows, int JT, int ncol, const REAL *A, const REAL *C, REAL *out)
{
    if (!A)
        return;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < JT; j++) {
            const REAL a = A[(size_t)r * JT + j];
            if (a != 0)
                FN(axpy)(ncol, a, C + (size_t)j * ncol, out + (size_t)r * ncol);
        }
}

/* out[JT×ncol] += A[rows×JT]ᵀ · G[rows×ncol]   (A NULL = absent) */
static void FN(mtm_acc)(int rows, int JT, int ncol, const REAL *A, const REAL *G, REAL *out)
{
    if (!A)
        return;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < JT; j++) {
            const REAL a = A[(size_t)r * JT + j];
            if (a != 0)
                FN(axpy)(ncol, a, G + (size_t)r * ncol, out + (size_t)j * ncol);
        }
}

/* out[rows×JT] = G[rows×ncol] · C[JT×ncol]ᵀ   (out NULL = not wanted) */
static void FN(mmt)(int rows, int JT, int ncol, const REAL *G, const REAL *C, REAL *out)
{
    if (!out)
        return;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < JT; j++)
            out[(size_t)r * JT + j] = FN(dot)(ncol, G + (size_t)r * ncol, C + (size_t)j * ncol);
}

/* Where node n's right / down outgoing coefficient matrix goes. */
static REAL *FN(maps_r)(const tl2d_tile *t, int w, int z, size_t blk, REAL *CL, REAL *OMAP)
{
    return w < t->bx - 1 ? CL + (size_t)((w + 1) * t->by + z) * blk : OMAP + (size_t)z * blk;
}

static REAL *FN(maps_d)(const tl2d_tile *t, int w, int z, size_t blk, REAL *CU, REAL *OMAP)
{
    return z < t->by - 1 ? CU + (size_t)(w * t->by + z + 1) * blk
                         : OMAP + (size_t)(t->by + w) * blk;
}

/* CL, CU [np][JT][ncol]; Mrow [np][JOQ][ncol]; OMAP [ne·JT][ncol]. */
static void FN(maps_build)(const tl2d_dims *m, const plstm_core2d_inputs *in, const tl2d_tile *t,
                           REAL *CL, REAL *CU, REAL *Mrow, REAL *OMAP)
{
    const int JT = m->JT, JKV = m->JKV, JOQ = m->JOQ, ncol = t->ncol, nej = t->nej;
    const size_t blk = (size_t)JT * ncol;
    for (int z = 0; z < t->by; z++) { /* left border: identity on entry z */
        REAL *c = CL + (size_t)z * blk;
        memset(c, 0, sizeof(REAL) * blk);
        for (int j = 0; j < JT; j++)
            c[(size_t)j * ncol + (size_t)z * JT + j] = 1;
    }
    for (int w = 0; w < t->bx; w++) { /* top border: identity on entry by + w */
        REAL *c = CU + (size_t)w * t->by * blk;
        memset(c, 0, sizeof(REAL) * blk);
        for (int j = 0; j < JT; j++)
            c[(size_t)j * ncol + (size_t)(t->by + w) * JT + j] = 1;
    }
    for (int w = 0; w < t->bx; w++)
        for (int z = 0; z < t->by; z++) {
            const int n = w * t->by + z;
            const size_t i = ((size_t)t->b * m->X + t->x0 + w) * m->Y + t->y0 + z;
            FN(gates) g;
            FN(gates_at)(m, in, i, &g);
            const REAL *cl = CL + (size_t)n * blk, *cu = CU + (size_t)n * blk;
            const size_t src = (size_t)nej + (size_t)n * JKV; /* pixel n's source columns */

            REAL *mr = Mrow + (size_t)n * JOQ * ncol;
            memset(mr, 0, sizeof(REAL) * JOQ * ncol);
            FN(mm_acc)(JOQ, JT, ncol, g.Ml, cl, mr);
            FN(mm_acc)(JOQ, JT, ncol, g.Mu, cu, mr);
            for (int op = 0; op < JOQ; op++)
                for (int ac = 0; ac < JKV; ac++)
                    mr[(size_t)op * ncol + src + ac] += g.D[(size_t)op * JKV + ac];

            REAL *r = FN(maps_r)(t, w, z, blk, CL, OMAP);
            memset(r, 0, sizeof(REAL) * blk);
            FN(mm_acc)(JT, JT, ncol, g.Trl, cl, r);
            FN(mm_acc)(JT, JT, ncol, g.Tru, cu, r);
            REAL *d = FN(maps_d)(t, w, z, blk, CU, OMAP);
            memset(d, 0, sizeof(REAL) * blk);
            FN(mm_acc)(JT, JT, ncol, g.Tdl, cl, d);
            FN(mm_acc)(JT, JT, ncol, g.Tdu, cu, d);
            for (int j = 0; j < JT; j++)
                for (int ac = 0; ac < JKV; ac++) {
                    r[(size_t)j * ncol + src + ac] += g.Sr[(size_t)j * JKV + ac];
                    d[(size_t)j * ncol + src + ac] += g.Sd[(size_t)j * JKV + ac];
                }
        }
}

/* Adjoint of maps_build: from dMrow and dOMAP (same layouts as Mrow, OMAP)
 * writes the gradients of every gate of the tile's pixels. gCL, gCU are
 * scratch of the size of CL, CU. */
static void FN(maps_adjoint)(const tl2d_dims *m, const plstm_core2d_inputs *in,
                             const plstm_core2d_grads *grad, const tl2d_tile *t, const REAL *CL,
                             const REAL *CU, const REAL *dMrow, REAL *dOMAP, REAL *gCL,
                             REAL *gCU)
{
    const int JT = m->JT, JKV = m->JKV, JOQ = m->JOQ, ncol = t->ncol, nej = t->nej;
    const size_t blk = (size_t)JT * ncol;
    for (int w = t->bx - 1; w >= 0; w--)
        for (int z = t->by - 1; z >= 0; z--) {
            const int n = w * t->by + z;
            const size_t i = ((size_t)t->b * m->X + t->x0 + w) * m->Y + t->y0 + z;
            FN(gates) g;
            FN(gates_at)(m, in, i, &g);
            FN(dgates) dg;
            FN(dgates_at)(m, grad, i, &dg);
            const REAL *cl = CL + (size_t)n * blk, *cu = CU + (size_t)n * blk;
            const REAL *gr = FN(maps_r)(t, w, z, blk, gCL, dOMAP);
            const REAL *gd = FN(maps_d)(t, w, z, blk, gCU, dOMAP);
            const REAL *dmr = dMrow + (size_t)n * JOQ * ncol;
            const size_t src = (size_t)nej + (size_t)n * JKV;

            FN(mmt)(JOQ, JT, ncol, dmr, cl, dg.Ml);
            FN(mmt)(JOQ, JT, ncol, dmr, cu, dg.Mu);
            FN(mmt)(JT, JT, ncol, gr, cl, dg.Trl);
            FN(mmt)(JT, JT, ncol, gr, cu, dg.Tru);
            FN(mmt)(JT, JT, ncol, gd, cl, dg.Tdl);
            FN(mmt)(JT, JT, ncol, gd, cu, dg.Tdu);
            for (int op = 0; op < JOQ && dg.D; op++)
                for (int ac = 0; ac < JKV; ac++)
                    dg.D[(size_t)op * JKV + ac] = dmr[(size_t)op * ncol + src + ac];
            for (int j = 0; j < JT; j++)
                for (int ac = 0; ac < JKV; ac++) {
                    if (dg.Sr)
                        dg.Sr[(size_t)j * JKV + ac] = gr[(size_t)j * ncol + src + ac];
                    if (dg.Sd)
                        dg.Sd[(size_t)j * JKV + ac] = gd[(size_t)j * ncol + src + ac];
                }
            /* Gradients of this node's incoming coefficient matrices (not needed
             * on the tile border, where they are constant identities). */
            if (w > 0) {
                REAL *a = gCL + (size_t)n * blk;
                memset(a, 0, sizeof(REAL) * blk);
                FN(mtm_acc)(JOQ, JT, ncol, g.Ml, dmr, a);
                FN(mtm_acc)(JT, JT, ncol, g.Trl, gr, a);
                FN(mtm_acc)(JT, JT, ncol, g.Tdl, gd, a);
            }
            if (z > 0) {
                REAL *a = gCU + (size_t)n * blk;
                memset(a, 0, sizeof(REAL) * blk);
                FN(mtm_acc)(JOQ, JT, ncol, g.Mu, dmr, a);
                FN(mtm_acc)(JT, JT, ncol, g.Tru, gr, a);
                FN(mtm_acc)(JT, JT, ncol, g.Tdu, gd, a);
            }
        }
}

#undef TL2D_AT
