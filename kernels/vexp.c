/*
 * vexp.c -- picks the copy of the exp loops (vexp.h) this CPU runs best,
 * once: AVX-512 when cpu.h reports it (with the OS's zmm state), else AVX2,
 * else SSE2, which every x86-64 has. Never assumed: CI's CPU may lack both.
 */
#include "kernels/vexp.h"
#include "kernels/cpu.h"

#include <pthread.h>
#include <string.h>

static const weft_vexp_ops *chosen;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void choose(void)
{
    const weft_cpu_features *f = weft_cpu();
    chosen = f->avx512f ? &weft_vexp_avx512 : f->avx2 ? &weft_vexp_avx2 : &weft_vexp_sse2;
}

const weft_vexp_ops *weft_vexp(void)
{
    pthread_once(&once, choose);
    return chosen;
}

const weft_vexp_ops *weft_vexp_isa(const char *isa)
{
    const weft_cpu_features *f = weft_cpu();
    if (!strcmp(isa, "sse2"))
        return &weft_vexp_sse2;
    if (!strcmp(isa, "avx2"))
        return f->avx2 ? &weft_vexp_avx2 : NULL;
    if (!strcmp(isa, "avx512"))
        return f->avx512f ? &weft_vexp_avx512 : NULL;
    return NULL;
}
