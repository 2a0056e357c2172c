/* Scalar activations in REAL precision (expf for float, exp for double);
 * included with REAL, FN(name) and MATH(fn) (fn##f or fn) defined. */

/* sigmoid(x) and sigmoid(−x) with one exp, no overflow. */
static inline void FN(sigmoid2)(REAL x, REAL *s, REAL *sm)
{
    const REAL e = MATH(exp)(-MATH(fabs)(x)), p = 1 / (1 + e), q = e / (1 + e);
    *s = x >= 0 ? p : q;
    *sm = x >= 0 ? q : p;
}

static inline REAL FN(sigmoid)(REAL x)
{
    REAL s, sm;
    FN(sigmoid2)(x, &s, &sm);
    return s;
}

/* log(sigmoid(x)) */
static inline REAL FN(logsigmoid)(REAL x)
{
    const REAL l = MATH(log1p)(MATH(exp)(-MATH(fabs)(x)));
    return x >= 0 ? -l : x - l;
}

/* sigmoid(x)^κ = exp(κ·logsigmoid(x)) and its derivative κ·y·sigmoid(−x). */
static inline REAL FN(sigmoid_pow)(REAL x, REAL kappa)
{
    return kappa == 1 ? FN(sigmoid)(x) : MATH(exp)(kappa * FN(logsigmoid)(x));
}

static inline REAL FN(dsigmoid_pow)(REAL x, REAL kappa)
{
    REAL s, sm;
    FN(sigmoid2)(x, &s, &sm);
    const REAL y = kappa == 1 ? s : MATH(exp)(kappa * FN(logsigmoid)(x));
    return kappa * y * sm;
}
