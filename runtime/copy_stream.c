/*
 * copy_stream.c -- weft_copy_stream (see copy_stream.h).
 *
 * Why by hand: glibc's memcpy switches to non-temporal stores only above
 * a threshold derived from the last-level cache (3/4 of it per thread);
 * on the development VM, which reports a 480 MiB L3, that is ~180 MB, so
 * a checkpoint's staging copies (a few to tens of MB each) always took the
 * cached path: each destination line read before it is written, and the
 * step loop's stall 1.6-1.9x one memcpy of the same bytes (bench_ckpt;
 * on one core, 288 MB in 8 MB pieces: cached 0.042 s, these stores 0.033 s,
 * glibc's own non-temporal path 0.026 s). The destination is not read by
 * this core before the writer thread writes it out, so keeping it out of
 * the cache costs nothing.
 */
#include "runtime/copy_stream.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

/* Large copies go through four streams at once, each 4 KiB apart, a
 * 128-byte line pair from each in turn (as glibc's own large copy does):
 * with one stream these stores copied 288 MB in 0.056 s, slower than the
 * cached memcpy's 0.045 s, on a Xeon VM where four took 0.041 s (the
 * earlier EPYC VM: 0.033 s against 0.042 s with one; bench_ckpt's stall
 * follows this copy). Prefetching further ahead than two lines made it
 * slower on both. */
enum { STREAM_PAGE = 4096, STREAM_WAYS = 4 };

__attribute__((target("avx2"))) static inline void line2_avx2(char *d, const char *s)
{
    _mm_prefetch(s + 256, _MM_HINT_T0);
    _mm_prefetch(s + 256 + 64, _MM_HINT_T0);
    __m256i a = _mm256_loadu_si256((const __m256i *)s), b = _mm256_loadu_si256((const __m256i *)(s + 32));
    __m256i c = _mm256_loadu_si256((const __m256i *)(s + 64)), e = _mm256_loadu_si256((const __m256i *)(s + 96));
    _mm256_stream_si256((__m256i *)d, a);
    _mm256_stream_si256((__m256i *)(d + 32), b);
    _mm256_stream_si256((__m256i *)(d + 64), c);
    _mm256_stream_si256((__m256i *)(d + 96), e);
}

/* The same 128 bytes with 16-byte stores: every x86-64 has SSE2. */
static inline void line2_sse2(char *d, const char *s)
{
    _mm_prefetch(s + 256, _MM_HINT_T0);
    _mm_prefetch(s + 256 + 64, _MM_HINT_T0);
    for (int q = 0; q < 128; q += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(s + q)), b = _mm_loadu_si128((const __m128i *)(s + q + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(s + q + 32)), e = _mm_loadu_si128((const __m128i *)(s + q + 48));
        _mm_stream_si128((__m128i *)(d + q), a);
        _mm_stream_si128((__m128i *)(d + q + 16), b);
        _mm_stream_si128((__m128i *)(d + q + 32), c);
        _mm_stream_si128((__m128i *)(d + q + 48), e);
    }
}

/* Whole 16 KiB blocks four streams at a time, then whole 128-byte pairs
 * one stream at a time: the bytes done (the caller copies the rest). */
#define STREAM_BODY(line2)                                                                    \
    size_t blocks = n / (STREAM_PAGE * STREAM_WAYS), done = blocks * STREAM_PAGE * STREAM_WAYS; \
    for (size_t b = 0; b < blocks; b++, d += STREAM_PAGE * STREAM_WAYS, s += STREAM_PAGE * STREAM_WAYS) \
        for (size_t o = 0; o < STREAM_PAGE; o += 128)                                        \
            for (int w = 0; w < STREAM_WAYS; w++)                                            \
                line2(d + w * STREAM_PAGE + o, s + w * STREAM_PAGE + o);                     \
    for (; done + 128 <= n; done += 128, d += 128, s += 128)                                 \
        line2(d, s);                                                                         \
    return done;

__attribute__((target("avx2"))) static size_t stream_avx2(char *d, const char *s, size_t n) { STREAM_BODY(line2_avx2) }
static size_t stream_sse2(char *d, const char *s, size_t n) { STREAM_BODY(line2_sse2) }

void weft_copy_stream(void *dst, const void *src, size_t n)
{
    if (n < WEFT_COPY_STREAM_MIN) {
        memcpy(dst, src, n);
        return;
    }
    char *d = dst;
    const char *s = src;
    /* Streaming stores want aligned destinations, and whole cache lines:
     * 32-byte aligned but 16 bytes into a line, each 128-byte pair of
     * stores touched three lines, and a 747 MB copy took 0.167 s instead
     * of 0.084 s (one core, this VM; bench_ckpt's stall: a ZeRO share
     * starts wherever its elements do, so staging copies often begin
     * mid-line). */
    size_t head = (64 - ((uintptr_t)d & 63)) & 63;
    memcpy(d, s, head);
    d += head, s += head, n -= head;
    size_t done = __builtin_cpu_supports("avx2") ? stream_avx2(d, s, n) : stream_sse2(d, s, n);
    memcpy(d + done, s + done, n - done);
    _mm_sfence(); /* the streaming stores are weakly ordered: visible before the caller goes on */
}

/* Why zeroing too: memset, like memcpy, stays on cached stores below its
 * threshold, so zeroing a line it does not hold first reads it: the
 * backward's 150 MB of activation gradients (bench-cpu, per step) cost
 * 22 ms more that way than with these stores, 5% of a bf16 step
 * (measured alternately, 2 ranks: 416 against 438 ms). One stream: stores
 * alone, nothing to prefetch. */
void weft_zero_stream(void *dst, size_t n)
{
    char *d = dst;
    if (n < WEFT_COPY_STREAM_MIN) {
        memset(d, 0, n);
        return;
    }
    size_t head = (16 - ((uintptr_t)d & 15)) & 15; /* 16 bytes do here: 150 MB took the same at */
    memset(d, 0, head);                             /* offsets 0, 16, 32, 48 into a line */
    d += head, n -= head;
    const __m128i z = _mm_setzero_si128();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        _mm_stream_si128((__m128i *)(d + i), z);
        _mm_stream_si128((__m128i *)(d + i + 16), z);
        _mm_stream_si128((__m128i *)(d + i + 32), z);
        _mm_stream_si128((__m128i *)(d + i + 48), z);
    }
    memset(d + i, 0, n - i);
    _mm_sfence();
}

#else

void weft_copy_stream(void *dst, const void *src, size_t n) { memcpy(dst, src, n); }
void weft_zero_stream(void *dst, size_t n) { memset(dst, 0, n); }

#endif
