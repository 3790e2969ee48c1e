/*
 * shuffle.h -- a keyed pseudo-random permutation of [0, n) in O(1) memory.
 *
 * The loader never materialises a permutation of the dataset: position i of
 * an epoch maps to sample weft_shuffle_apply(&s, i), a 4-round Feistel
 * network over the smallest even-bit-width power of two >= n, with
 * cycle-walking (re-apply until the value falls below n) to stay inside
 * [0, n). A Feistel network is a bijection for any round function, and
 * cycle-walking a bijection restricted to a subset is again a bijection, so
 * every sample appears exactly once per epoch. The domain is < 4n, so the
 * expected number of walks is below 4. The key is derived from (seed,
 * stream, epoch), so every epoch of every dataset has its own order.
 */
#ifndef WEFT_DATA_SHUFFLE_H
#define WEFT_DATA_SHUFFLE_H

#include <stdint.h>

#define WEFT_SHUFFLE_ROUNDS 4

typedef struct weft_shuffle {
    uint64_t n;                          /* domain size */
    unsigned half_bits;                  /* bits in each Feistel half */
    uint64_t half_mask;
    uint64_t keys[WEFT_SHUFFLE_ROUNDS];  /* one round key each */
} weft_shuffle;

/* n >= 1. stream separates independent permutations (e.g. datasets). */
void weft_shuffle_init(weft_shuffle *s, uint64_t n, uint64_t seed, uint64_t stream, uint64_t epoch);

/* The permuted value of i, for i < n. */
uint64_t weft_shuffle_apply(const weft_shuffle *s, uint64_t i);

/* splitmix64 finaliser: the mixing function used for keys and rounds. */
uint64_t weft_mix64(uint64_t x);

#endif
