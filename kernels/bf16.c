/*
 * bf16.c -- the bf16 side of the linear layer (train.precision = bf16):
 * whether this CPU and oneDNN can run bf16 products at speed, f32 -> bf16
 * rounding, the bf16 mirrors of weights, and the scratch that activations
 * are rounded into for each product. matmul_dnnl.c runs the products.
 *
 * Mirrors: a caller (the trainer) registers a float array that holds
 * weights -- the model's flat parameter buffer, its frozen base -- and
 * gets a bf16 copy of it, kept here. A product whose operand lies inside a
 * registered array reads the copy instead of rounding the floats again on
 * every call; the copy is only as fresh as the last
 * weft_matmul_bf16_refresh over that range, which the trainer calls after
 * every write to the weights (the optimizer step and the ZeRO gather, a
 * checkpoint load). Operands outside every mirror (activations, gradients
 * of outputs) are rounded into one of two scratch buffers per call; the
 * buffers grow to the largest operand during the first step and are kept,
 * so later steps allocate nothing.
 *
 * Why detection looks at both the CPU and oneDNN: cpuid says whether the
 * instructions exist; oneDNN's effective ISA (which ONEDNN_MAX_CPU_ISA or
 * DNNL_MAX_CPU_ISA can cap) says whether its kernels will use them. Without
 * them oneDNN still runs a bf16 matmul, but through a slow emulation
 * (gemm:jit, a quarter to a fifth of the f32 rate, measured with
 * ONEDNN_MAX_CPU_ISA=AVX512_CORE): never chosen silently.
 */
#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "kernels/matmul_dnnl.h"
#include "runtime/error.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dnnl.h>
#include <dnnl_debug.h>

#define MAX_MIRRORS 8 /* parameters, frozen base, a few gathered layers */

typedef struct {
    const float *base;  /* the registered floats (n) */
    size_t n;
    uint16_t *bf;       /* (n) their bf16 copy */
} mirror;

static struct {
    pthread_mutex_t mu;
    mirror m[MAX_MIRRORS];
    int n;
    uint16_t *scratch[2]; /* per-call rounded operands, A and B of a product */
    size_t cap[2];        /* their capacities, in elements */
} bf = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* --- detection ---------------------------------------------------------------- */

/* avx512_bf16 and AMX-BF16, from the features cpu.c read once */
static void cpu_bf16(int *avx512_bf16, int *amx_bf16)
{
    const weft_cpu_features *f = weft_cpu();
    *avx512_bf16 = f->avx512_bf16;
    *amx_bf16 = f->amx_bf16;
}

int weft_matmul_bf16_supported(char *why, size_t len)
{
    int avx, amx;
    cpu_bf16(&avx, &amx);
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    int dnnl_ok = (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
    if (!avx && !amx) {
        snprintf(why, len, "this CPU has neither avx512_bf16 nor AMX-BF16 (cpuid), so bf16 products would run "
                 "slower than f32");
        return 0;
    }
    if (!dnnl_ok) {
        const char *cap = getenv("ONEDNN_MAX_CPU_ISA") ? "ONEDNN_MAX_CPU_ISA"
                          : getenv("DNNL_MAX_CPU_ISA") ? "DNNL_MAX_CPU_ISA" : NULL;
        const char *name = dnnl_cpu_isa2str(isa);
        if (!strncmp(name, "cpu_isa_", 8))
            name += 8;
        snprintf(why, len, "the CPU has %s, but oneDNN's instruction set is limited to %s%s%s%s, which has no "
                 "bf16 instructions", avx ? "avx512_bf16" : "AMX-BF16", name,
                 cap ? " (by " : "", cap ? cap : "", cap ? ")" : "");
        return 0;
    }
    snprintf(why, len, "%s", avx ? "avx512_bf16" : "AMX-BF16");
    return 1;
}

/* --- rounding ----------------------------------------------------------------- */

/* Round to nearest, ties to even; a NaN stays a (quiet) NaN. */
static uint16_t round1(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* 16 at a time with VCVTNEPS2BF16 (also round to nearest even); only ever
 * called once weft_matmul_bf16_supported said the CPU has it. */
__attribute__((target("avx512f,avx512bf16"))) static void round_avx512(uint16_t *out, const float *in, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(in + i));
        _mm256_storeu_si256((__m256i *)(out + i), (__m256i)h);
    }
    for (; i < n; i++)
        out[i] = round1(in[i]);
}

void weft_bf16_round(uint16_t *out, const float *in, size_t n)
{
    if (weft_cpu()->avx512_bf16) { /* detected once, thread-safe (cpu.c) */
        round_avx512(out, in, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = round1(in[i]);
}

/* --- mirrors ------------------------------------------------------------------ */

static mirror *find(const float *p, size_t n)
{
    for (int i = 0; i < bf.n; i++)
        if (p >= bf.m[i].base && p + n <= bf.m[i].base + bf.m[i].n)
            return &bf.m[i];
    return NULL;
}

int weft_matmul_bf16_mirror(const float *base, size_t n)
{
    pthread_mutex_lock(&bf.mu);
    int rc = 0;
    mirror *m = find(base, n);
    if (!m && n > 0) {
        uint16_t *copy = bf.n < MAX_MIRRORS ? malloc(n * sizeof *copy) : NULL;
        if (copy)
            bf.m[bf.n++] = (mirror){base, n, copy};
        else
            rc = bf.n < MAX_MIRRORS
                     ? weft_error(WEFT_ENOMEM, "kernels: out of memory for a bf16 copy of %zu weights", n)
                     : weft_error(WEFT_EINVAL, "kernels: a bf16 copy of %zu weights: all %d mirrors are in use "
                                  "(weft_matmul_bf16_forget the ones no longer needed)", n, MAX_MIRRORS);
    }
    pthread_mutex_unlock(&bf.mu);
    if (rc == 0)
        weft_matmul_bf16_refresh(base, n);
    return rc;
}

void weft_matmul_bf16_refresh(const float *p, size_t n)
{
    pthread_mutex_lock(&bf.mu);
    for (int i = 0; i < bf.n; i++) { /* the overlap of [p, p + n) with each mirror */
        const mirror *m = &bf.m[i];
        const float *lo = p > m->base ? p : m->base, *hi = p + n < m->base + m->n ? p + n : m->base + m->n;
        if (lo < hi)
            weft_bf16_round(m->bf + (lo - m->base), lo, (size_t)(hi - lo));
    }
    pthread_mutex_unlock(&bf.mu);
}

void weft_matmul_bf16_forget(const float *base)
{
    pthread_mutex_lock(&bf.mu);
    for (int i = 0; i < bf.n; i++)
        if (bf.m[i].base == base) {
            free(bf.m[i].bf);
            bf.m[i] = bf.m[--bf.n];
            break;
        }
    pthread_mutex_unlock(&bf.mu);
}

/* Scratch buffer slot holds at least n (first step only: the largest
 * operand so far); 0 when there is no memory for it. bf.mu held. */
static int grow(int slot, size_t n)
{
    if (n <= bf.cap[slot])
        return 1;
    uint16_t *grown = NULL;
    if (posix_memalign((void **)&grown, 64, n * sizeof *grown))
        return 0;
    free(bf.scratch[slot]);
    bf.scratch[slot] = grown;
    bf.cap[slot] = n;
    return 1;
}

const uint16_t *weft_bf16_operand_colsum(const float *p, int rows, int cols, int slot, float *colsum)
{
    size_t n = (size_t)rows * cols;
    uint16_t *out = NULL;
    pthread_mutex_lock(&bf.mu);
    if (colsum && !find(p, n) && grow(slot, n)) {
        out = bf.scratch[slot];
        for (int r = 0; r < rows; r++) { /* the row is in L1 for its second pass */
            weft_bf16_round(out + (size_t)r * cols, p + (size_t)r * cols, (size_t)cols);
            weft_colsum_acc(colsum, p + (size_t)r * cols, 1, cols);
        }
    }
    pthread_mutex_unlock(&bf.mu);
    if (out)
        return out;
    if (colsum) /* a mirror's, or no scratch: apart */
        weft_colsum_acc(colsum, p, rows, cols);
    return weft_bf16_operand(p, n, slot);
}

const uint16_t *weft_bf16_operand(const float *p, size_t n, int slot)
{
    pthread_mutex_lock(&bf.mu);
    const mirror *m = find(p, n);
    const uint16_t *out = m ? m->bf + (p - m->base) : NULL;
    if (!m && grow(slot, n)) {
        weft_bf16_round(bf.scratch[slot], p, n);
        out = bf.scratch[slot];
    }
    pthread_mutex_unlock(&bf.mu);
    return out;
}
