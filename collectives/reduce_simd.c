/*
 * reduce_simd.c -- see reduce_simd.h. One macro writes the loops for a
 * type; it is expanded twice, once for the baseline ISA and once under
 * target("avx2"), and a table picked on first use dispatches. The loops
 * use restrict pointers and branch-free bodies so GCC vectorises them
 * (this file asks for -O3's vectoriser; -O2's "very cheap" model skips
 * loops whose trip count is unknown).
 */
#pragma GCC optimize("O3")
#include "collectives/reduce_simd.h"
#include "collectives/backend.h"

#include <stdint.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Integer sums go through the unsigned type so overflow wraps, defined. */
#define ADD_F(a, b, U) ((a) + (b))
#define ADD_I(a, b, U) (U)((U)(a) + (U)(b))

#define KERNELS(SFX, ATTR, T, U, ADD)                                                              \
    ATTR static void comb_##T##SFX(int op, void *vd, const void *va, const void *vb, size_t n)    \
    {                                                                                              \
        T *restrict d = vd;                                                                        \
        const T *restrict a = va, *restrict b = vb;                                                \
        if (op == WEFT_MAX)                                                                        \
            for (size_t i = 0; i < n; i++) d[i] = a[i] > b[i] ? a[i] : b[i];                       \
        else if (op == WEFT_MIN)                                                                   \
            for (size_t i = 0; i < n; i++) d[i] = a[i] < b[i] ? a[i] : b[i];                       \
        else                                                                                       \
            for (size_t i = 0; i < n; i++) d[i] = (T)ADD(a[i], b[i], U);                           \
    }                                                                                              \
    ATTR static void acc_##T##SFX(int op, void *vd, const void *vs, size_t n)                      \
    {                                                                                              \
        T *restrict d = vd;                                                                        \
        const T *restrict s = vs;                                                                  \
        if (op == WEFT_MAX)                                                                        \
            for (size_t i = 0; i < n; i++) d[i] = d[i] > s[i] ? d[i] : s[i];                       \
        else if (op == WEFT_MIN)                                                                   \
            for (size_t i = 0; i < n; i++) d[i] = d[i] < s[i] ? d[i] : s[i];                       \
        else                                                                                       \
            for (size_t i = 0; i < n; i++) d[i] = (T)ADD(d[i], s[i], U);                           \
    }

/* Sums written to two places at once (the shared slot and the caller's
 * buffer): out-of-place (comb2) and with d2 holding one operand (acc2). */
#define SUM2(SFX, ATTR, T, U, ADD)                                                                 \
    ATTR static void comb2_##T##SFX(void *vd1, void *vd2, const void *va, const void *vb, size_t n) \
    {                                                                                              \
        T *restrict d1 = vd1, *restrict d2 = vd2;                                                  \
        const T *restrict a = va, *restrict b = vb;                                                \
        for (size_t i = 0; i < n; i++) d1[i] = d2[i] = (T)ADD(a[i], b[i], U);                      \
    }                                                                                              \
    ATTR static void acc2_##T##SFX(void *vd1, void *vd2, const void *vb, size_t n)                 \
    {                                                                                              \
        T *restrict d1 = vd1, *restrict d2 = vd2;                                                  \
        const T *restrict b = vb;                                                                  \
        for (size_t i = 0; i < n; i++) d1[i] = d2[i] = (T)ADD(d2[i], b[i], U);                     \
    }

typedef float f32;
typedef double f64;

#define ALL_TYPES(SFX, ATTR)                                                                       \
    SUM2(SFX, ATTR, f32, f32, ADD_F)                                                               \
    SUM2(SFX, ATTR, f64, f64, ADD_F)                                                               \
    KERNELS(SFX, ATTR, f32, f32, ADD_F)                                                            \
    KERNELS(SFX, ATTR, f64, f64, ADD_F)                                                            \
    KERNELS(SFX, ATTR, int32_t, uint32_t, ADD_I)                                                   \
    KERNELS(SFX, ATTR, int64_t, uint64_t, ADD_I)                                                   \
    KERNELS(SFX, ATTR, uint8_t, uint8_t, ADD_I)

ALL_TYPES(_gen, )
#if defined(__x86_64__)
ALL_TYPES(_avx2, __attribute__((target("avx2"))))
#endif

typedef void (*comb_fn)(int, void *, const void *, const void *, size_t);
typedef void (*acc_fn)(int, void *, const void *, size_t);

typedef void (*comb2_fn)(void *, void *, const void *, const void *, size_t);
typedef void (*acc2_fn)(void *, void *, const void *, size_t);

typedef struct {
    const char *isa;
    comb_fn comb[WEFT_NDTYPES];
    acc_fn acc[WEFT_NDTYPES];
    comb2_fn comb2[WEFT_NDTYPES];
    acc2_fn acc2[WEFT_NDTYPES];
} kernel_table;

#define ENTRY(SFX, DT, T) [DT] = comb_##T##SFX
#define AENTRY(SFX, DT, T) [DT] = acc_##T##SFX
#define TABLE(NAME, SFX)                                                                           \
    {NAME,                                                                                         \
     {ENTRY(SFX, WEFT_F32, f32), ENTRY(SFX, WEFT_F64, f64), ENTRY(SFX, WEFT_I32, int32_t),         \
      ENTRY(SFX, WEFT_I64, int64_t), ENTRY(SFX, WEFT_U8, uint8_t)},                                \
     {AENTRY(SFX, WEFT_F32, f32), AENTRY(SFX, WEFT_F64, f64), AENTRY(SFX, WEFT_I32, int32_t),      \
      AENTRY(SFX, WEFT_I64, int64_t), AENTRY(SFX, WEFT_U8, uint8_t)},                              \
     {[WEFT_F32] = comb2_f32##SFX, [WEFT_F64] = comb2_f64##SFX},                                   \
     {[WEFT_F32] = acc2_f32##SFX, [WEFT_F64] = acc2_f64##SFX}}

static const kernel_table generic = TABLE("generic", _gen);
#if defined(__x86_64__)
static const kernel_table avx2 = TABLE("avx2", _avx2);
#endif

static const kernel_table *table(void)
{
    static const kernel_table *chosen;
    const kernel_table *t = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (t)
        return t;
    t = &generic;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2"))
        t = &avx2;
#endif
    __atomic_store_n(&chosen, t, __ATOMIC_RELEASE);
    return t;
}

void weft_simd_combine(weft_dtype wide, weft_redop op, void *dst, const void *a, const void *b, size_t n)
{
    table()->comb[wide]((int)op, dst, a, b, n);
}

void weft_simd_accumulate(weft_dtype wide, weft_redop op, void *dst, const void *src, size_t n)
{
    table()->acc[wide]((int)op, dst, src, n);
}

int weft_simd_sum2(weft_dtype wide, void *d1, void *d2, const void *a, const void *b, size_t n)
{
    const kernel_table *t = table();
    if (!t->comb2[wide])
        return -1;
    if (d2 == a)
        t->acc2[wide](d1, d2, b, n);
    else if (d2 == b)
        t->acc2[wide](d1, d2, a, n);
    else
        t->comb2[wide](d1, d2, a, b, n);
    return 0;
}

/* --- bf16 and f16 to and from f32 ---------------------------------------- */

/* bf16 is the top half of an f32: widening is a shift; narrowing rounds to
 * nearest even and keeps NaNs quiet, as weft_f32_to_bf16 does. */
#define BF16(SFX, ATTR)                                                                            \
    ATTR static void bf16_widen##SFX(const uint16_t *restrict in, float *restrict out, size_t n)   \
    {                                                                                              \
        for (size_t i = 0; i < n; i++) {                                                           \
            uint32_t u = (uint32_t)in[i] << 16;                                                    \
            memcpy(&out[i], &u, 4);                                                                \
        }                                                                                          \
    }                                                                                              \
    ATTR static void bf16_narrow##SFX(const float *restrict in, uint16_t *restrict out, size_t n)  \
    {                                                                                              \
        for (size_t i = 0; i < n; i++) {                                                           \
            uint32_t u;                                                                            \
            memcpy(&u, &in[i], 4);                                                                 \
            uint32_t nan = (u & 0x7fffffffu) > 0x7f800000u;                                        \
            uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;                                   \
            out[i] = (uint16_t)(nan ? (u >> 16) | 0x40u : r);                                      \
        }                                                                                          \
    }

BF16(_gen, )
#if defined(__x86_64__)
BF16(_avx2, __attribute__((target("avx2"))))

/* f16 through the F16C instructions (IEEE round to nearest even, as
 * weft_f32_to_f16); the tails go through the scalar reference. */
__attribute__((target("avx2,f16c"))) static void f16_widen_f16c(const uint16_t *in, float *out, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(in + i))));
    weft_half_to_f32(WEFT_F16, in + i, out + i, n - i);
}

__attribute__((target("avx2,f16c"))) static void f16_narrow_f16c(const float *in, uint16_t *out, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT));
    weft_f32_to_half(WEFT_F16, in + i, out + i, n - i);
}
#endif

static int has(int avx2_only)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && (avx2_only || __builtin_cpu_supports("f16c"));
#else
    (void)avx2_only;
    return 0;
#endif
}

void weft_simd_widen(const void *src, weft_dtype dt, void *dst, weft_dtype wide, size_t n)
{
    if (dt == WEFT_BF16 && wide == WEFT_F32) {
#if defined(__x86_64__)
        if (has(1)) {
            bf16_widen_avx2(src, dst, n);
            return;
        }
#endif
        bf16_widen_gen(src, dst, n);
        return;
    }
#if defined(__x86_64__)
    if (dt == WEFT_F16 && wide == WEFT_F32 && has(0)) {
        f16_widen_f16c(src, dst, n);
        return;
    }
#endif
    weft_reduce_widen(src, dt, dst, wide, n);
}

void weft_simd_narrow(const void *src, weft_dtype wide, void *dst, weft_dtype dt, size_t n)
{
    if (dt == WEFT_BF16 && wide == WEFT_F32) {
#if defined(__x86_64__)
        if (has(1)) {
            bf16_narrow_avx2(src, dst, n);
            return;
        }
#endif
        bf16_narrow_gen(src, dst, n);
        return;
    }
#if defined(__x86_64__)
    if (dt == WEFT_F16 && wide == WEFT_F32 && has(0)) {
        f16_narrow_f16c(src, dst, n);
        return;
    }
#endif
    weft_reduce_narrow(src, wide, dst, dt, n);
}

const char *weft_simd_isa(void) { return table()->isa; }
