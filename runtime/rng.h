/*
 * rng.h -- a small deterministic random generator (SplitMix64), the same on
 * every machine, for weight initialisation and sampling. Its whole state is
 * one uint64_t, so it is trivially saved in checkpoints.
 */
#ifndef WEFT_RUNTIME_RNG_H
#define WEFT_RUNTIME_RNG_H

#include "runtime/api.h"

#include <math.h>
#include <stdint.h>

typedef struct weft_rng {
    uint64_t state;
} weft_rng;

static inline void weft_rng_seed(weft_rng *r, uint64_t seed) { r->state = seed; }

/* SplitMix64's step: a well-mixed hash of x, and the next value of a
 * generator whose state is x. Tests use it to draw the value for a (rank,
 * index) pair directly, without stepping a generator. */
static inline uint64_t weft_rng_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static inline uint64_t weft_rng_u64(weft_rng *r)
{
    uint64_t z = weft_rng_mix(r->state);
    r->state += 0x9e3779b97f4a7c15ull;
    return z;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double weft_rng_uniform(weft_rng *r) { return (double)(weft_rng_u64(r) >> 11) * 0x1p-53; }

/* Standard normal (Box-Muller; one value per call, for simplicity and
 * reproducibility over speed: initialisation runs once). */
static inline double weft_rng_normal(weft_rng *r)
{
    double u1 = weft_rng_uniform(r), u2 = weft_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
