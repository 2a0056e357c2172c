/* Counter-based generator: splitmix64's output function over a counter. */
#include "plstm/train.h"
#include "core/status_internal.h"

#include <math.h>

static const uint64_t GOLDEN = 0x9E3779B97F4A7C15ull;

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void plstm_rng_seed(plstm_rng *r, uint64_t seed, uint64_t stream)
{
    /* Two rounds of mixing so nearby seeds and streams give unrelated keys. */
    r->key = mix64(mix64(seed + GOLDEN) ^ mix64(~stream * GOLDEN + 0x632BE59BD9B4E019ull));
    r->counter = 0;
}

uint64_t plstm_rng_u64_at(const plstm_rng *r, uint64_t index)
{
    return mix64(r->key + (index + 1) * GOLDEN);
}

uint64_t plstm_rng_u64(plstm_rng *r) { return plstm_rng_u64_at(r, r->counter++); }

double plstm_rng_uniform(plstm_rng *r)
{
    return (double)(plstm_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t plstm_rng_below(plstm_rng *r, uint64_t n)
{
    if (n <= 1)
        return 0;
    __extension__ typedef unsigned __int128 u128;
    u128 prod = (u128)plstm_rng_u64(r) * n;
    uint64_t low = (uint64_t)prod;
    if (low < n) {
        const uint64_t threshold = (0 - n) % n;
        while (low < threshold) {
            prod = (u128)plstm_rng_u64(r) * n;
            low = (uint64_t)prod;
        }
    }
    return (uint64_t)(prod >> 64);
}

double plstm_rng_normal(plstm_rng *r)
{
    const double u1 = 1.0 - plstm_rng_uniform(r); /* (0, 1]: log is finite */
    const double u2 = plstm_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

double plstm_rng_truncated_normal(plstm_rng *r, double lo, double hi)
{
    for (;;) {
        const double z = plstm_rng_normal(r);
        if (z >= lo && z <= hi)
            return z;
    }
}

void plstm_rng_fill_uniform_f32(plstm_rng *r, float *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * plstm_rng_uniform(r));
}

void plstm_rng_fill_normal_f32(plstm_rng *r, float *x, size_t n, double mean, double std)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(mean + std * plstm_rng_normal(r));
}

plstm_status plstm_rng_fill_truncated_normal_f32(plstm_rng *r, float *x, size_t n, double mean,
                                                 double std, double lo, double hi)
{
    PLSTM_CHECK_ARG(r && (x || n == 0), "plstm_rng_fill_truncated_normal_f32: NULL argument");
    PLSTM_CHECK_ARG(lo < hi, "truncated normal: empty interval [%g, %g]", lo, hi);
    const double mass = 0.5 * (erfc(lo / sqrt(2.0)) - erfc(hi / sqrt(2.0)));
    PLSTM_CHECK_ARG(mass >= 1e-3,
                    "truncated normal: interval [%g, %g] holds only %.2g of the mass", lo, hi,
                    mass);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(mean + std * plstm_rng_truncated_normal(r, lo, hi));
    return PLSTM_OK;
}

void plstm_rng_permutation(plstm_rng *r, int64_t *perm, size_t n)
{
    for (size_t i = 0; i < n; i++)
        perm[i] = (int64_t)i;
    for (size_t i = n; i > 1; i--) {
        const size_t j = (size_t)plstm_rng_below(r, i);
        const int64_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}
