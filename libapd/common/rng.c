/* rng.c: xoshiro256** (Blackman & Vigna) seeded by splitmix64; see rng.h. */
#include <math.h>

#include "common/rng.h"

uint64_t apd__mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void apd__rng_seed(apd__rng *r, uint64_t seed, uint64_t stream)
{
    /* Two mixing rounds so that (seed, stream) pairs that differ in one bit diverge fully. */
    uint64_t x = apd__mix64(seed) ^ apd__mix64(stream ^ 0xD1B54A32D192ED03ull);
    for (int i = 0; i < 4; i++) {
        x += 0x9E3779B97F4A7C15ull;
        r->s[i] = apd__mix64(x);
    }
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0) r->s[0] = 1; /* never all-zero */
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t apd__rng_u64(apd__rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t apd__rng_below(apd__rng *r, uint64_t n)
{
    if (n == 0) return 0;
    /* Lemire's multiply-shift with rejection: unbiased. */
    uint64_t x = apd__rng_u64(r);
    __uint128_t m = (__uint128_t)x * n;
    uint64_t l = (uint64_t)m;
    if (l < n) {
        uint64_t t = (0 - n) % n;
        while (l < t) {
            x = apd__rng_u64(r);
            m = (__uint128_t)x * n;
            l = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

float apd__rng_uniform(apd__rng *r) { return (float)(apd__rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

double apd__rng_uniform_d(apd__rng *r) { return (double)(apd__rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

float apd__rng_range(apd__rng *r, float lo, float hi) { return lo + (hi - lo) * apd__rng_uniform(r); }

float apd__rng_normal(apd__rng *r)
{
    double u1 = apd__rng_uniform_d(r), u2 = apd__rng_uniform_d(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void apd__rng_shuffle_u32(apd__rng *r, uint32_t *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)apd__rng_below(r, i);
        uint32_t t = a[i - 1]; a[i - 1] = a[j]; a[j] = t;
    }
}

void apd__rng_shuffle_u64(apd__rng *r, uint64_t *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)apd__rng_below(r, i);
        uint64_t t = a[i - 1]; a[i - 1] = a[j]; a[j] = t;
    }
}
