/* numpy SeedSequence + PCG64, re-derived from numpy's _bit_generator.pyx and
 * pcg64.h (unchanged from numpy 1.17 to 2.x). All arithmetic is modular. */
#include "data/ape_rng.h"

#define SS_POOL 4
#define SS_INIT_A 0x43b0d7e5u
#define SS_MULT_A 0x931e8875u
#define SS_INIT_B 0x8b51f9ddu
#define SS_MULT_B 0x58f38dedu
#define SS_MIX_L 0xca01f9ddu
#define SS_MIX_R 0x4973f715u
#define SS_XSHIFT 16

static uint32_t ss_hash(uint32_t v, uint32_t *hc)
{
    v ^= *hc;
    *hc *= SS_MULT_A;
    v *= *hc;
    v ^= v >> SS_XSHIFT;
    return v;
}

static uint32_t ss_mix(uint32_t x, uint32_t y)
{
    uint32_t r = SS_MIX_L * x - SS_MIX_R * y;
    return r ^ (r >> SS_XSHIFT);
}

void ape_seed_sequence_state8(uint64_t seed, uint32_t out[8])
{
    /* Entropy words, least significant first; 0 gives [0]. */
    uint32_t ent[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    int nent = (seed >> 32) ? 2 : 1;

    uint32_t pool[SS_POOL];
    uint32_t hc = SS_INIT_A;
    for (int i = 0; i < SS_POOL; i++)
        pool[i] = ss_hash(i < nent ? ent[i] : 0u, &hc);
    for (int s = 0; s < SS_POOL; s++)
        for (int d = 0; d < SS_POOL; d++)
            if (s != d)
                pool[d] = ss_mix(pool[d], ss_hash(pool[s], &hc));
    /* (Entropy beyond the pool size cannot occur for a 64-bit seed.) */

    uint32_t hb = SS_INIT_B;
    for (int i = 0; i < 8; i++) {
        uint32_t v = pool[i % SS_POOL] ^ hb;
        hb *= SS_MULT_B;
        v *= hb;
        v ^= v >> SS_XSHIFT;
        out[i] = v;
    }
}

#define PCG_MULT_HI 0x2360ED051FC65DA4ull
#define PCG_MULT_LO 0x4385DF649FCCF645ull

static void pcg_step(ape_pcg64 *g)
{
    const ape_u128 mult = ((ape_u128)PCG_MULT_HI << 64) | PCG_MULT_LO;
    g->state = g->state * mult + g->inc;
}

void ape_pcg64_seed(ape_pcg64 *g, uint64_t seed)
{
    uint32_t w32[8];
    ape_seed_sequence_state8(seed, w32);
    uint64_t w[4];
    for (int k = 0; k < 4; k++)
        w[k] = (uint64_t)w32[2 * k] | ((uint64_t)w32[2 * k + 1] << 32);
    ape_u128 initstate = ((ape_u128)w[0] << 64) | w[1];
    ape_u128 initseq = ((ape_u128)w[2] << 64) | w[3];
    g->state = 0;
    g->inc = (initseq << 1) | 1u;
    pcg_step(g);
    g->state += initstate;
    pcg_step(g);
}

uint64_t ape_pcg64_next64(ape_pcg64 *g)
{
    pcg_step(g);
    uint64_t hi = (uint64_t)(g->state >> 64), lo = (uint64_t)g->state;
    unsigned rot = (unsigned)(g->state >> 122);
    uint64_t x = hi ^ lo;
    return (x >> rot) | (x << ((64u - rot) & 63u));
}

double ape_pcg64_random(ape_pcg64 *g)
{
    return (double)(ape_pcg64_next64(g) >> 11) * (1.0 / 9007199254740992.0);
}

double ape_pcg64_uniform(ape_pcg64 *g, double lo, double hi)
{
    return lo + (hi - lo) * ape_pcg64_random(g);
}

uint64_t ape_pcg64_integers_2p62(ape_pcg64 *g)
{
    return ape_pcg64_next64(g) >> 2;
}
