/*
 * reduce_simd.h -- vectorised element-wise reductions for the native
 * backends: plain C loops the compiler vectorises, built twice (baseline
 * and AVX2) and chosen once at run time from the CPU's features.
 *
 * They work on the "wide" types only (f32, f64, i32, i64, u8; halves are
 * reduced in f32): AVG reduces as SUM, the division comes after. Integer
 * sums wrap (two's complement), never saturate.
 */
#ifndef WEFT_COLLECTIVES_REDUCE_SIMD_H
#define WEFT_COLLECTIVES_REDUCE_SIMD_H

#include <stddef.h>

#include "collectives/comm.h"

/* dst = a op b over n elements; dst must not overlap a or b. */
void weft_simd_combine(weft_dtype wide, weft_redop op, void *dst, const void *a, const void *b, size_t n);
/* dst = dst op src; they must not overlap. */
void weft_simd_accumulate(weft_dtype wide, weft_redop op, void *dst, const void *src, size_t n);
/* d1 = d2 = a + b (f32 and f64 only; returns -1 for other types and does
 * nothing). d1 overlaps nothing; d2 may be exactly a or b (in place: then
 * the sum is taken as d2 + other, the same value since + commutes). */
int weft_simd_sum2(weft_dtype wide, void *d1, void *d2, const void *a, const void *b, size_t n);
/* weft_reduce_widen / weft_reduce_narrow (reduce.c), vectorised for
 * bf16 and f16 <-> f32 (bit-identical results; f16 NaN payloads aside). */
void weft_simd_widen(const void *src, weft_dtype dt, void *dst, weft_dtype wide, size_t n);
void weft_simd_narrow(const void *src, weft_dtype wide, void *dst, weft_dtype dt, size_t n);
/* "avx2" or "generic": what the dispatcher chose. */
const char *weft_simd_isa(void);

#endif
