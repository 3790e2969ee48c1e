/*
 * dtype.c -- dtype table and bf16/f16 <-> f32 conversion (round to nearest,
 * ties to even; NaN stays NaN; f16 handles subnormals and overflow to inf).
 */
#include "runtime/dtype.h"
#include "runtime/error.h"

#include <string.h>

static const struct {
    const char *name;
    size_t size;
    int is_float;
} dtypes[WEFT_NDTYPES] = {
    [WEFT_F32] = {"f32", 4, 1}, [WEFT_BF16] = {"bf16", 2, 1}, [WEFT_F16] = {"f16", 2, 1},
    [WEFT_F64] = {"f64", 8, 1}, [WEFT_I32] = {"i32", 4, 0},   [WEFT_I64] = {"i64", 8, 0},
    [WEFT_U8] = {"u8", 1, 0},
};

int weft_dtype_valid(int dt) { return dt >= 0 && dt < WEFT_NDTYPES; }
size_t weft_dtype_size(weft_dtype dt) { return weft_dtype_valid((int)dt) ? dtypes[dt].size : 0; }
const char *weft_dtype_name(weft_dtype dt) { return weft_dtype_valid((int)dt) ? dtypes[dt].name : "invalid"; }
int weft_dtype_is_float(weft_dtype dt) { return weft_dtype_valid((int)dt) && dtypes[dt].is_float; }

int weft_dtype_parse(const char *s, weft_dtype *out)
{
    for (int i = 0; s && i < WEFT_NDTYPES; i++) {
        if (strcmp(s, dtypes[i].name) == 0) {
            *out = (weft_dtype)i;
            return 0;
        }
    }
    return WEFT_EINVAL;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t weft_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)          /* NaN: keep sign, force quiet */
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);               /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float weft_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t weft_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return sign | 0x7e00u;                     /* NaN */
    if (a >= 0x477ff000u)                          /* >= 65520 rounds to inf */
        return sign | 0x7c00u;
    if (a < 0x38800000u) {                         /* below 2^-14: subnormal or zero */
        if (a < 0x33000000u)                       /* below half the smallest subnormal */
            return sign;
        uint32_t mant = (a & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(a >> 23);          /* 14..24 */
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u)))
            half++;
        return sign | (uint16_t)half;
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u);   /* round mantissa to 10 bits */
    return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

float weft_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0x1f)
        return bits_f32(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        if (mant == 0)
            return bits_f32(sign);
        float v = (float)mant * (1.0f / 16777216.0f); /* mant * 2^-24 */
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

void weft_half_to_f32(weft_dtype dt, const uint16_t *in, float *out, size_t n)
{
    if (dt == WEFT_BF16)
        for (size_t i = 0; i < n; i++) out[i] = weft_bf16_to_f32(in[i]);
    else
        for (size_t i = 0; i < n; i++) out[i] = weft_f16_to_f32(in[i]);
}

void weft_f32_to_half(weft_dtype dt, const float *in, uint16_t *out, size_t n)
{
    if (dt == WEFT_BF16)
        for (size_t i = 0; i < n; i++) out[i] = weft_f32_to_bf16(in[i]);
    else
        for (size_t i = 0; i < n; i++) out[i] = weft_f32_to_f16(in[i]);
}

double weft_dtype_load(const void *b, size_t i, weft_dtype dt)
{
    switch (dt) {
    case WEFT_F64: return ((const double *)b)[i];
    case WEFT_F32: return ((const float *)b)[i];
    case WEFT_BF16: return weft_bf16_to_f32(((const uint16_t *)b)[i]);
    case WEFT_F16: return weft_f16_to_f32(((const uint16_t *)b)[i]);
    case WEFT_I32: return ((const int32_t *)b)[i];
    case WEFT_I64: return (double)((const int64_t *)b)[i];
    default: return ((const uint8_t *)b)[i];
    }
}

void weft_dtype_store(void *b, size_t i, weft_dtype dt, double v)
{
    switch (dt) {
    case WEFT_F64: ((double *)b)[i] = v; break;
    case WEFT_F32: ((float *)b)[i] = (float)v; break;
    case WEFT_BF16: ((uint16_t *)b)[i] = weft_f32_to_bf16((float)v); break;
    case WEFT_F16: ((uint16_t *)b)[i] = weft_f32_to_f16((float)v); break;
    case WEFT_I32: ((int32_t *)b)[i] = (int32_t)v; break;
    case WEFT_I64: ((int64_t *)b)[i] = (int64_t)v; break;
    default: ((uint8_t *)b)[i] = (uint8_t)v; break;
    }
}
