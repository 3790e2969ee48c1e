/*
 * cpu.h -- what this CPU's vector units can run, read once from cpuid and
 * XGETBV: the instruction sets the kernels choose between at run time
 * (kernels/vexp.c's loops, bf16.c's rounding and bf16 support check).
 * Instructions count only when the operating system also saves their
 * registers (XCR0), so a CPU with AVX-512 under a kernel or hypervisor that
 * does not enable the zmm state reports none.
 */
#ifndef WEFT_KERNELS_CPU_H
#define WEFT_KERNELS_CPU_H

typedef struct {
    int avx2;        /* AVX2 and the ymm state */
    int avx512f;     /* AVX-512 Foundation and the zmm/opmask state */
    int avx512_bf16; /* AVX512_BF16 (with avx512f) */
    int amx_bf16;    /* AMX-BF16 (cpuid only) */
} weft_cpu_features;

/* This CPU's features, detected on the first call (thread-safe). */
const weft_cpu_features *weft_cpu(void);

#endif
