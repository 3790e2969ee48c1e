/*
 * dtype.h -- element types weft stores and communicates, and the 16-bit
 * float conversions.
 *
 * bf16 and f16 are stored as raw uint16_t bit patterns. Arithmetic on them
 * always goes through f32; the conversions round to nearest, ties to even,
 * as hardware does, and keep NaN a NaN.
 */
#ifndef WEFT_RUNTIME_DTYPE_H
#define WEFT_RUNTIME_DTYPE_H

#include "runtime/api.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    WEFT_F32 = 0,
    WEFT_BF16,
    WEFT_F16,
    WEFT_F64,
    WEFT_I32,
    WEFT_I64,
    WEFT_U8,
    WEFT_NDTYPES
} weft_dtype;

/* Bytes per element; 0 for an invalid dtype. */
WEFT_API size_t weft_dtype_size(weft_dtype dt);
/* "f32", "bf16", ...; "invalid" for an out-of-range value. */
WEFT_API const char *weft_dtype_name(weft_dtype dt);
/* Parse a name as printed by weft_dtype_name: 0 or WEFT_EINVAL. */
WEFT_API int weft_dtype_parse(const char *s, weft_dtype *out);
WEFT_API int weft_dtype_valid(int dt);
WEFT_API int weft_dtype_is_float(weft_dtype dt);

WEFT_API uint16_t weft_f32_to_bf16(float f);
WEFT_API float weft_bf16_to_f32(uint16_t h);
WEFT_API uint16_t weft_f32_to_f16(float f);
WEFT_API float weft_f16_to_f32(uint16_t h);

/* Element i of a buffer of dtype dt, as a double (16-bit floats widened),
 * and the reverse (rounded to dt; integers truncated). For tests, checks
 * and tools, not for hot loops. */
WEFT_API double weft_dtype_load(const void *buf, size_t i, weft_dtype dt);
WEFT_API void weft_dtype_store(void *buf, size_t i, weft_dtype dt, double v);

/* Convert n elements between a 16-bit float type and f32. */
WEFT_API void weft_half_to_f32(weft_dtype dt, const uint16_t *in, float *out, size_t n);
WEFT_API void weft_f32_to_half(weft_dtype dt, const float *in, uint16_t *out, size_t n);

#endif
