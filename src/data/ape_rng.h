/* numpy-compatible random streams for the APE generator: SeedSequence
 * seeding and the PCG64 bit generator (ape.md §1.3). Plain value types, no
 * global state, so every thread can own its generators. */
#ifndef PLSTM_DATA_APE_RNG_H
#define PLSTM_DATA_APE_RNG_H

#include <stdint.h>

__extension__ typedef unsigned __int128 ape_u128;

typedef struct ape_pcg64 {
    ape_u128 state;
    ape_u128 inc;
} ape_pcg64;

/* numpy.random.default_rng(seed): PCG64(SeedSequence(seed)). */
void ape_pcg64_seed(ape_pcg64 *g, uint64_t seed);

/* Next raw 64-bit output (step, then XSL-RR). */
uint64_t ape_pcg64_next64(ape_pcg64 *g);

/* Generator.random(): a double in [0, 1) with 53 random bits. */
double ape_pcg64_random(ape_pcg64 *g);

/* Generator.uniform(lo, hi) = lo + (hi - lo) * random(). */
double ape_pcg64_uniform(ape_pcg64 *g, double lo, double hi);

/* Generator.integers(1 << 62): Lemire's method reduces to next64 >> 2 for a
 * power-of-two range (no rejection can happen). */
uint64_t ape_pcg64_integers_2p62(ape_pcg64 *g);

/* SeedSequence(seed).generate_state(8, uint32). */
void ape_seed_sequence_state8(uint64_t seed, uint32_t out[8]);

#endif
