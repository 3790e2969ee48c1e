/*
 * fastmath.h -- exp for the f32 ops as an inline polynomial that gcc
 * vectorises at -O2 (a call to libm's expf/tanhf keeps a loop scalar: tanhf
 * alone made GELU cost more than the MLP's matrix products).
 *
 * weft_expf: for x <= 0 only (every caller exponentiates a value shifted
 * by its row max, or -2|u| in GELU). Cephes' range reduction x = n ln2 + r,
 * |r| <= ln2/2, a degree-6 polynomial for e^r, and 2^n built in the exponent
 * bits. Relative error about 2 ulp down to -87.3, where e^x nears the
 * smallest normal float; below it (and at -inf) the result is exactly 0,
 * never a subnormal: a subnormal would cost a microcode assist in every
 * product it then enters (a probability times the loss scale). NaN stays
 * NaN, so a non-finite loss is still seen by the trainer. The clamp and the
 * zero are bit selects (weft_selectf) rather than ?:, which gcc turns into
 * a branch that stops vectorisation.
 *
 * The f64 ops keep libm's exp: they are the reference.
 */
#ifndef WEFT_KERNELS_FASTMATH_H
#define WEFT_KERNELS_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* c ? a : b, branch-free: gcc vectorises this mask select, while it turns
 * a float ?: into control flow and then leaves the loop scalar. */
static inline float weft_selectf(int c, float a, float b)
{
    uint32_t m = -(uint32_t)(c != 0), ua, ub;
    memcpy(&ua, &a, sizeof ua);
    memcpy(&ub, &b, sizeof ub);
    ua = (ua & m) | (ub & ~m);
    memcpy(&a, &ua, sizeof a);
    return a;
}

static inline float weft_expf(float x)
{
    int under = x < -87.3f;                     // NaN compares false: stays NaN
    x = weft_selectf(under, -87.3f, x);
    // n = round(x / ln2): adding and subtracting 1.5 * 2^23 rounds to nearest
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    // r = x - n ln2, with ln2 split in two so that n * ln2_hi is exact
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    // 2^n: n + 127 in the exponent field (n in [-126, 0] after the clamp)
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return weft_selectf(under, 0.0f, p * scale);
}

#endif
