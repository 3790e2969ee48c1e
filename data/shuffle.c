/*
 * shuffle.c -- Feistel permutation with cycle-walking (see shuffle.h).
 */
#include "data/shuffle.h"

uint64_t weft_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void weft_shuffle_init(weft_shuffle *s, uint64_t n, uint64_t seed, uint64_t stream, uint64_t epoch)
{
    unsigned bits = 2;
    while (bits < 64 && (1ull << bits) < n)
        bits += 2;
    s->n = n;
    s->half_bits = bits / 2;
    s->half_mask = (1ull << s->half_bits) - 1;
    uint64_t k = weft_mix64(seed ^ weft_mix64(stream ^ weft_mix64(epoch + 0x5eed)));
    for (int r = 0; r < WEFT_SHUFFLE_ROUNDS; r++) {
        k = weft_mix64(k + (uint64_t)r);
        s->keys[r] = k;
    }
}

static uint64_t feistel(const weft_shuffle *s, uint64_t x)
{
    uint64_t l = x >> s->half_bits, r = x & s->half_mask;
    for (int i = 0; i < WEFT_SHUFFLE_ROUNDS; i++) {
        uint64_t t = l ^ (weft_mix64(r ^ s->keys[i]) & s->half_mask);
        l = r;
        r = t;
    }
    return l << s->half_bits | r;
}

uint64_t weft_shuffle_apply(const weft_shuffle *s, uint64_t i)
{
    if (s->n <= 1)
        return 0;
    do
        i = feistel(s, i);
    while (i >= s->n);
    return i;
}
