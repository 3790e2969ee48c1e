/*
 * vexp.h -- the f32 exp loops (vexp_impl.h) at the widest vector width this
 * CPU runs: SSE2 (x86-64's baseline, what the rest of the library is
 * compiled for), AVX2 or AVX-512, chosen once on first use from cpu.h's
 * detection. ops_f32.c calls them for softmax rows, the cross-entropy
 * gradient, GELU and SwiGLU; every copy gives the same bits (vexp_impl.h),
 * so the choice changes speed only.
 */
#ifndef WEFT_KERNELS_VEXP_H
#define WEFT_KERNELS_VEXP_H

#include <stddef.h>

typedef struct {
    const char *isa; /* "sse2", "avx2", "avx512" */
    void (*exp_shift)(float *restrict x, int n, float shift);
    float (*sum_exp)(const float *restrict x, int n, float shift);
    void (*exp_affine)(float *restrict d, const float *restrict x, int n, float hi, float lo, float s);
    void (*exp_affine_inplace)(float *restrict d, int n, float hi, float lo, float s);
    void (*gelu_forward)(float *restrict out, const float *restrict inp, size_t n);
    void (*gelu_backward)(float *restrict dinp, const float *restrict inp, const float *restrict dout, size_t n);
    void (*swiglu_forward)(float *restrict out, const float *restrict gate, const float *restrict up, size_t n);
    void (*swiglu_backward)(float *restrict dgate, float *restrict dup, const float *restrict gate,
                            const float *restrict up, const float *restrict dout, size_t n);
} weft_vexp_ops;

/* The copy the ops use: the widest this CPU runs. */
const weft_vexp_ops *weft_vexp(void);

/* One copy by name ("sse2", "avx2", "avx512"): NULL when the CPU (or its
 * operating system) cannot run it or the name is unknown. For tests and
 * benchmarks that compare the copies. */
const weft_vexp_ops *weft_vexp_isa(const char *isa);

extern const weft_vexp_ops weft_vexp_sse2, weft_vexp_avx2, weft_vexp_avx512;

#endif
