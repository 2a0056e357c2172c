/* Shared helpers for the cmocka tests: deterministic random numbers, buffer
 * comparison, and paths to the shipped reference data. */
#ifndef PLSTM_TESTUTIL_H
#define PLSTM_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "plstm/plstm.h"

/* splitmix64-based generator; same seed, same numbers on every machine. */
typedef struct { uint64_t state; } tu_rng;
void tu_rng_seed(tu_rng *r, uint64_t seed);
uint64_t tu_rng_u64(tu_rng *r);
double tu_rng_uniform(tu_rng *r, double lo, double hi);

/* Fill with uniform values in [lo, hi). */
void tu_fill_f64(tu_rng *r, double *x, size_t n, double lo, double hi);
void tu_fill_f32(tu_rng *r, float *x, size_t n, double lo, double hi);
void tu_f64_to_f32(const double *src, float *dst, size_t n);

/* max|a-b| / max|b| (max|a-b| when b is all zero). */
double tu_rel_err_f64(const double *a, const double *b, size_t n);
double tu_rel_err_f32(const float *a, const float *b, size_t n);

/* Aborts the current cmocka test unless the relative error is <= tol, with a message. */
#define TU_ASSERT_CLOSE(err, tol, what)                                              \
    do {                                                                             \
        double tu_e_ = (err);                                                        \
        if (!(tu_e_ <= (tol)))                                                       \
            fail_msg("%s: relative error %.3e > %.1e", (what), tu_e_, (double)(tol)); \
    } while (0)

/* Asserts a plstm call succeeded, printing the library's message if not. */
#define TU_OK(expr)                                                                  \
    do {                                                                             \
        plstm_status tu_s_ = (expr);                                                 \
        if (tu_s_ != PLSTM_OK)                                                       \
            fail_msg("%s failed: %s: %s", #expr, plstm_status_name(tu_s_),           \
                     plstm_last_error());                                            \
    } while (0)

/* "<reference dir>/<name>" in a static buffer. */
const char *tu_reference_path(const char *name);
/* "<data dir>/<name>" in a static buffer. */
const char *tu_data_path(const char *name);

/* Calloc that fails the test instead of returning NULL. */
void *tu_calloc(size_t n, size_t size);

#endif
