#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void tu_rng_seed(tu_rng *r, uint64_t seed) { r->state = seed * 0x9E3779B97F4A7C15ull + 1; }

uint64_t tu_rng_u64(tu_rng *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double tu_rng_uniform(tu_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * ((double)(tu_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0));
}

void tu_fill_f64(tu_rng *r, double *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = tu_rng_uniform(r, lo, hi);
}

void tu_fill_f32(tu_rng *r, float *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)tu_rng_uniform(r, lo, hi);
}

void tu_f64_to_f32(const double *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (float)src[i];
}

double tu_rel_err_f64(const double *a, const double *b, size_t n)
{
    double diff = 0, ref = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (!(d <= diff))
            diff = d; /* NaN propagates */
        if (fabs(b[i]) > ref)
            ref = fabs(b[i]);
    }
    return ref > 0 ? diff / ref : diff;
}

double tu_rel_err_f32(const float *a, const float *b, size_t n)
{
    double diff = 0, ref = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= diff))
            diff = d;
        if (fabs((double)b[i]) > ref)
            ref = fabs((double)b[i]);
    }
    return ref > 0 ? diff / ref : diff;
}

const char *tu_reference_path(const char *name)
{
    static char buf[4096];
    const char *dir = getenv("PLSTM_REFERENCE_DIR");
    snprintf(buf, sizeof buf, "%s/%s", dir ? dir : PLSTM_REFERENCE_DIR, name);
    return buf;
}

const char *tu_data_path(const char *name)
{
    static char buf[4096];
    const char *dir = getenv("PLSTM_DATA_DIR");
    snprintf(buf, sizeof buf, "%s/%s", dir ? dir : PLSTM_DATA_DIR, name);
    return buf;
}

void *tu_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        fail_msg("out of memory (%zu x %zu)", n, size);
    return p;
}
