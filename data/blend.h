/*
 * blend.h -- deterministic weighted interleaving of several datasets.
 *
 * Weights are turned once into integers W_d with sum S = 2^30 (the largest
 * remainder rounding of w_d / sum(w) * S), so every decision after that is
 * exact integer arithmetic and identical on every machine. At global position
 * n, with c_d samples already taken from dataset d (sum c_d = n), the next
 * sample comes from the dataset with the earliest deadline (c_d + 1) / W_d
 * among those still below their upper bound (c_d * S < W_d * (n + 1)); ties
 * go to the lower index. This keeps every prefix within one sample of its
 * target: |c_d - n W_d / S| < 1 for every d and n (tested exhaustively in
 * tests/unit/test_loader.c).
 */
#ifndef WEFT_DATA_BLEND_H
#define WEFT_DATA_BLEND_H

#include <stdint.h>

#include "data/loader.h" /* WEFT_BLEND_MAX, the public bound on datasets */
#define WEFT_BLEND_SCALE (1ull << 30)

typedef struct weft_blend {
    int k;                        /* number of datasets */
    uint64_t w[WEFT_BLEND_MAX];   /* integer weights, sum WEFT_BLEND_SCALE */
} weft_blend;

/* Weights must be finite and > 0; 1 <= k <= WEFT_BLEND_MAX. WEFT_EINVAL
 * otherwise. */
int weft_blend_init(weft_blend *b, const double *weights, int k);

/* The dataset the sample at position n = sum(counts) comes from. */
int weft_blend_pick(const weft_blend *b, const uint64_t *counts, uint64_t n);

#endif
