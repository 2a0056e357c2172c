/* Finite-difference gradient checks for the NN operator tests (F64).
 * A test wraps its forward in an nf_forward callback that reads the current
 * input buffers; nf_check perturbs one buffer element by element and compares
 * the central difference of L = Σ dy ⊙ y with the analytic gradient. */
#ifndef PLSTM_NN_FD_H
#define PLSTM_NN_FD_H

#include <math.h>
#include <stdlib.h>
#include "testutil.h"

typedef void (*nf_forward)(void *user, double *y);

/* Max |fd − grad| / max |fd| over the np elements of p (p is restored). */
static inline double nf_check(nf_forward f, void *user, size_t ny, const double *dy, double *p,
                              size_t np, const double *grad)
{
    const double h = 1e-6;
    double *y = tu_calloc(ny, sizeof *y), diff = 0, ref = 0;
    for (size_t i = 0; i < np; i++) {
        const double save = p[i];
        double l[2];
        for (int k = 0; k < 2; k++) {
            p[i] = save + (k ? -h : h);
            f(user, y);
            l[k] = 0;
            for (size_t j = 0; j < ny; j++)
                l[k] += dy[j] * y[j];
        }
        p[i] = save;
        const double fd = (l[0] - l[1]) / (2 * h);
        if (!(fabs(fd - grad[i]) <= diff))
            diff = fabs(fd - grad[i]);
        if (fabs(fd) > ref)
            ref = fabs(fd);
    }
    free(y);
    return ref > 0 ? diff / ref : diff;
}

/* Random F64 buffer in [lo, hi). */
static inline double *nf_rand(tu_rng *r, size_t n, double lo, double hi)
{
    double *x = tu_calloc(n ? n : 1, sizeof *x);
    tu_fill_f64(r, x, n, lo, hi);
    return x;
}

/* F32 copy of an F64 buffer. */
static inline float *nf_to_f32(const double *x, size_t n)
{
    float *y = tu_calloc(n ? n : 1, sizeof *y);
    tu_f64_to_f32(x, y, n);
    return y;
}

/* Constant fill (to check that gradients accumulate or overwrite). */
static inline double *nf_const(size_t n, double v)
{
    double *x = tu_calloc(n ? n : 1, sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = v;
    return x;
}

/* Subtracts v from every element (removes a pre-filled accumulator offset). */
static inline void nf_sub(double *x, size_t n, double v)
{
    for (size_t i = 0; i < n; i++)
        x[i] -= v;
}

/* max |a − b| / max |b| between an F32 result and an F64 one. */
static inline double nf_err_32_64(const float *a, const double *b, size_t n)
{
    double diff = 0, ref = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]);
        if (!(d <= diff))
            diff = d;
        if (fabs(b[i]) > ref)
            ref = fabs(b[i]);
    }
    return ref > 0 ? diff / ref : diff;
}

#endif
