/* common/rng.h: the one seeded PRNG of libapd (xoshiro256** seeded through splitmix64).
 *
 * Every random choice in the library (network init, DSA draws, shuffles, sampling,
 * k-means seeding, selection) takes an apd__rng owned by the caller: no global state, and
 * the same (seed, stream) always gives the same sequence on every host. Independent
 * streams for threads or sub-tasks come from apd__rng_seed(&r, seed, stream_id), so results
 * do not depend on how work is split between threads.
 */
#ifndef APD_COMMON_RNG_H
#define APD_COMMON_RNG_H

#include <stdint.h>
#include <stddef.h>

typedef struct apd__rng {
    uint64_t s[4];
} apd__rng;

/* Seed from (seed, stream); different streams give statistically independent sequences. */
void apd__rng_seed(apd__rng *r, uint64_t seed, uint64_t stream);
uint64_t apd__rng_u64(apd__rng *r);
/* Uniform in [0, n) without modulo bias; n = 0 returns 0. */
uint64_t apd__rng_below(apd__rng *r, uint64_t n);
/* Uniform float in [0, 1) with 24 random bits; double with 53. */
float apd__rng_uniform(apd__rng *r);
double apd__rng_uniform_d(apd__rng *r);
/* Uniform float in [lo, hi). */
float apd__rng_range(apd__rng *r, float lo, float hi);
/* Standard normal (Box-Muller, one value per call, deterministic). */
float apd__rng_normal(apd__rng *r);
/* Fisher-Yates shuffle of n uint32 / uint64 values. */
void apd__rng_shuffle_u32(apd__rng *r, uint32_t *a, size_t n);
void apd__rng_shuffle_u64(apd__rng *r, uint64_t *a, size_t n);
/* splitmix64 mixing step: a good 64-bit hash of x (used for keyed derivations). */
uint64_t apd__mix64(uint64_t x);

#endif
