/*
 * cpu.c -- cpuid and XGETBV read once into weft_cpu_features (cpu.h).
 * Leaf 1 ECX: OSXSAVE (27), AVX (28); leaf 7 subleaf 0: EBX AVX2 (5),
 * AVX512F (16), EDX AMX-BF16 (22); leaf 7 subleaf 1 EAX: AVX512_BF16 (5).
 * XCR0 bits 1-2 (xmm, ymm) must be set for AVX2, and 5-7 (opmask, zmm
 * upper halves, zmm16-31) as well for AVX-512.
 */
#include "kernels/cpu.h"

#include <cpuid.h>
#include <pthread.h>
#include <stdint.h>

static weft_cpu_features feat;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static uint64_t xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    uint64_t xcr = osxsave ? xcr0() : 0;
    int ymm = avx && (xcr & 0x6) == 0x6, zmm = ymm && (xcr & 0xe0) == 0xe0;
    if (__get_cpuid_max(0, NULL) < 7)
        return;
    __cpuid_count(7, 0, a, b, c, d);
    feat.avx2 = ymm && ((b >> 5) & 1);
    feat.avx512f = zmm && ((b >> 16) & 1);
    feat.amx_bf16 = (d >> 22) & 1;
    if (a >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        feat.avx512_bf16 = feat.avx512f && ((a >> 5) & 1);
    }
}

const weft_cpu_features *weft_cpu(void)
{
    pthread_once(&once, detect);
    return &feat;
}
