/* Source/Mark/Direct forward and backward, written once over REAL (float or
 * double); included by gate_sml.c with REAL, FN(name) and GEMM defined,
 * after headproj_impl.h and realmath_impl.h. */

static inline REAL FN(gate_act)(int act, REAL kappa, REAL pre)
{
    switch (act) {
    case PLSTM_GATE_ACT_LOGSIGMOID: return FN(sigmoid_pow)(pre, kappa);
    case PLSTM_GATE_ACT_TANH: return kappa * MATH(tanh)(pre / kappa);
    default: return pre;
    }
}

/* d act / d pre */
static inline REAL FN(gate_dact)(int act, REAL kappa, REAL pre)
{
    switch (act) {
    case PLSTM_GATE_ACT_LOGSIGMOID: return FN(dsigmoid_pow)(pre, kappa);
    case PLSTM_GATE_ACT_TANH: {
        const REAL t = MATH(tanh)(pre / kappa);
        return 1 - t * t;
    }
    default: return 1;
    }
}

static void FN(gate_forward)(const plstm_gate *L, const REAL *prm, size_t N, const REAL *x, REAL *y,
                             REAL *acts, int nt)
{
    const size_t HP = (size_t)L->cfg.num_heads * L->P;
    const REAL *bias = prm + L->bias_off;
    const int act = (int)L->cfg.activation;
    const REAL kappa = (REAL)L->cfg.activation_scale;
    if (!L->cfg.weight) {
        /* input-independent: activate the bias once, broadcast */
        for (size_t c = 0; c < HP; c++)
            y[c] = FN(gate_act)(act, kappa, bias[c]);
        for (size_t n = 1; n < N; n++)
            memcpy(y + n * HP, y, HP * sizeof(REAL));
        return;
    }
    FN(headproj)(L->cfg.num_heads, L->P, L->cfg.sub_heads, L->cfg.input_dim, prm + L->weight_off, N,
                 x, y);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t n = 0; n < N; n++) {
        REAL *yr = y + n * HP;
        for (size_t c = 0; c < HP; c++) {
            REAL pre = yr[c] + bias[c];
            if (acts)
                acts[n * HP + c] = pre;
            yr[c] = FN(gate_act)(act, kappa, pre);
        }
    }
}

static plstm_status FN(gate_backward)(const plstm_gate *L, const REAL *prm, size_t N, const REAL *x,
                                      const REAL *acts, const REAL *dy, REAL *dx, REAL *grads, int nt)
{
    const int NH = L->cfg.num_heads, P = L->P, S = L->cfg.sub_heads, Din = L->cfg.input_dim;
    const int HP = NH * P;
    const REAL *bias = prm + L->bias_off;
    REAL *dbias = grads + L->bias_off;
    const int act = (int)L->cfg.activation;
    const REAL kappa = (REAL)L->cfg.activation_scale;
    if (!L->cfg.weight) {
        for (int c = 0; c < HP; c++) {
            double s = 0;
            for (size_t n = 0; n < N; n++)
                s += dy[n * HP + c];
            dbias[c] += (REAL)(s * FN(gate_dact)(act, kappa, bias[c]));
        }
        if (dx)
            memset(dx, 0, N * (size_t)Din * sizeof(REAL));
        return PLSTM_OK;
    }
    REAL *dpre = malloc(N * (size_t)HP * sizeof(REAL));
    if (!dpre)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "gate backward: cannot allocate %zu rows", N);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t n = 0; n < N; n++)
        for (int c = 0; c < HP; c++) {
            size_t i = n * HP + c;
            dpre[i] = dy[i] * FN(gate_dact)(act, kappa, acts[i]);
        }
    for (size_t n = 0; n < N; n++)
        for (int c = 0; c < HP; c++)
            dbias[c] += dpre[n * HP + c];
    FN(headproj_backward)(NH, P, S, Din, prm + L->weight_off, N, x, dpre, grads + L->weight_off, dx,
                          0);
    free(dpre);
    return PLSTM_OK;
}
