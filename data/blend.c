/*
 * blend.c -- integer earliest-deadline blending (see blend.h).
 */
#include "data/blend.h"
#include "runtime/error.h"

#include <math.h>

typedef unsigned __int128 u128;

int weft_blend_init(weft_blend *b, const double *weights, int k)
{
    double sum = 0, frac[WEFT_BLEND_MAX];
    uint64_t given = 0;
    if (k < 1 || k > WEFT_BLEND_MAX)
        return weft_error(WEFT_EINVAL, "blend: %d datasets; expected 1..%d", k, WEFT_BLEND_MAX);
    for (int d = 0; d < k; d++) {
        if (!isfinite(weights[d]) || !(weights[d] > 0))
            return weft_error(WEFT_EINVAL, "blend: weight %d is %g; expected a finite number > 0", d, weights[d]);
        sum += weights[d];
    }
    b->k = k;
    for (int d = 0; d < k; d++) {
        double x = weights[d] / sum * (double)WEFT_BLEND_SCALE;
        b->w[d] = (uint64_t)floor(x);
        frac[d] = x - floor(x);
        given += b->w[d];
    }
    /* Largest remainder: hand out the rounding loss one unit at a time. */
    while (given < WEFT_BLEND_SCALE) {
        int best = 0;
        for (int d = 1; d < k; d++)
            if (frac[d] > frac[best])
                best = d;
        b->w[best]++;
        frac[best] = -1;
        given++;
    }
    for (int d = 0; d < k; d++)
        if (b->w[d] == 0)
            return weft_error(WEFT_EINVAL, "blend: weight %d (%g) is too small next to the others (below 2^-30 of the total)",
                              d, weights[d]);
    return 0;
}

int weft_blend_pick(const weft_blend *b, const uint64_t *counts, uint64_t n)
{
    int best = -1;
    for (int d = 0; d < b->k; d++) {
        /* Upper bound: taking one more must keep c_d + 1 - (n+1) W_d/S < 1. */
        if ((u128)counts[d] * WEFT_BLEND_SCALE >= (u128)b->w[d] * (n + 1))
            continue;
        /* Deadline (c+1)/W: compare (c_d+1) W_best < (c_best+1) W_d. */
        if (best < 0 || (u128)(counts[d] + 1) * b->w[best] < (u128)(counts[best] + 1) * b->w[d])
            best = d;
    }
    return best < 0 ? 0 : best;
}
