/*
 * test_flash_bf16.c -- flash attention with bf16 tile products
 * (kernels/flash_bf16_impl.h: the flash ops while weft_matmul_precision()
 * is bf16) against float64 references, with tolerances from the rounding:
 *
 *   u = 2^-8, bf16's unit roundoff. The kernel rounds q, k, v, dO to bf16
 *   once, and each tile's probabilities P and score gradient dS; it sums in
 *   f32. So against the f64 flash op run on q, k, v (and dO) already
 *   rounded to bf16 here (runtime/dtype.c's rounding, not the kernel's),
 *   what is left is P's rounding -- each weight off by at most u relative,
 *   an output off by at most u times the largest |v| -- and, in backward,
 *   dS's, which enters every gradient once more and is multiplied by a
 *   second rounded factor: the bounds are 2u (forward, over the largest
 *   output) and 8u (gradients, over the largest gradient). Against the f64
 *   op on the unrounded inputs the error must exceed f32's own (1e-4):
 *   bf16 was really in effect, not a silent f32 fallback.
 * Also: the same bits twice; the fused-qkv form bitwise the grouped one;
 * the causal mask across padded tiles (later tokens never change earlier
 * outputs); gradients accumulate (+=). Skipped where the CPU has no bf16.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "runtime/dtype.h"

#define KF_SEED 0x9E3779B97F4A7C15ull
#include "tests/unit/kernel_fixtures.h"

#define U16 (1.0 / 256)

static double r16(double x) { return weft_bf16_to_f32(weft_f32_to_bf16((float)x)); }

static double *rounded(const double *x, size_t n)
{
    double *y = malloc(n * sizeof *y);
    assert_non_null(y);
    for (size_t i = 0; i < n; i++)
        y[i] = r16(x[i]);
    return y;
}

/* One grouped case: f64 inputs, their f32 copies, the bf16 op's results. */
typedef struct {
    int B, T, NH, NKV, hs;
    size_t nq, nkv, nrow;
    double *q, *k, *v, *dO;
} bcase;

static bcase make(int B, int T, int NH, int NKV, int hs)
{
    bcase c = {B, T, NH, NKV, hs, (size_t)B * T * NH * hs, (size_t)B * T * NKV * hs, (size_t)B * NH * T,
               NULL, NULL, NULL, NULL};
    c.q = rnd(c.nq, 2);   // scores of a few units: the softmax is far from uniform
    c.k = rnd(c.nkv, 2);
    c.v = rnd(c.nkv, 1);
    c.dO = rnd(c.nq, 1);
    return c;
}

static void drop(bcase *c) { free(c->q); free(c->k); free(c->v); free(c->dO); }

/* The f64 flash forward and backward (one call onto zeros) of q, k, v, dO. */
static void ref_f64(const bcase *c, const double *q, const double *k, const double *v, const double *dO, double *out,
                    double *dq, double *dk, double *dv)
{
    double *lse = filled(c->nrow, 0);
    memset(dq, 0, c->nq * 8);
    memset(dk, 0, c->nkv * 8);
    memset(dv, 0, c->nkv * 8);
    weft_gqa_attention_flash_forward_f64(out, lse, q, k, v, c->B, c->T, c->NH, c->NKV, c->hs);
    weft_gqa_attention_flash_backward_f64(dq, dk, dv, dO, q, k, v, out, lse, c->B, c->T, c->NH, c->NKV, c->hs);
    free(lse);
}

static void check_case(int B, int T, int NH, int NKV, int hs)
{
    bcase c = make(B, T, NH, NKV, hs);
    double *o = malloc(c.nq * 8), *dq = malloc(c.nq * 8), *dk = malloc(c.nkv * 8), *dv = malloc(c.nkv * 8);
    double *o16 = malloc(c.nq * 8), *dq16 = malloc(c.nq * 8), *dk16 = malloc(c.nkv * 8), *dv16 = malloc(c.nkv * 8);
    ref_f64(&c, c.q, c.k, c.v, c.dO, o, dq, dk, dv);
    double *q16 = rounded(c.q, c.nq), *k16 = rounded(c.k, c.nkv), *v16 = rounded(c.v, c.nkv),
           *d16 = rounded(c.dO, c.nq);
    ref_f64(&c, q16, k16, v16, d16, o16, dq16, dk16, dv16);

    float *fq = to_f32(c.q, c.nq), *fk = to_f32(c.k, c.nkv), *fv = to_f32(c.v, c.nkv), *fd = to_f32(c.dO, c.nq);
    float *fo = calloc(c.nq, 4), *fo2 = calloc(c.nq, 4), *fl = calloc(c.nrow, 4);
    float *gq = malloc(c.nq * 4), *gk = malloc(c.nkv * 4), *gv = malloc(c.nkv * 4);
    for (size_t i = 0; i < c.nq; i++)
        gq[i] = G0;
    for (size_t i = 0; i < c.nkv; i++)
        gk[i] = gv[i] = G0;
    weft_gqa_attention_flash_forward(fo, fl, fq, fk, fv, B, T, NH, NKV, hs);
    weft_gqa_attention_flash_forward(fo2, fl, fq, fk, fv, B, T, NH, NKV, hs);
    assert_memory_equal(fo, fo2, c.nq * 4);
    weft_gqa_attention_flash_backward(gq, gk, gv, fd, fq, fk, fv, fo, fl, B, T, NH, NKV, hs);
    for (size_t i = 0; i < c.nq; i++)   // back to one call's: proves += (G0 is exact in f32)
        gq[i] -= G0;
    for (size_t i = 0; i < c.nkv; i++) {
        gk[i] -= G0;
        gv[i] -= G0;
    }
    double eo = rel_err_f32(fo, o16, c.nq), eq = rel_err_f32(gq, dq16, c.nq), ek = rel_err_f32(gk, dk16, c.nkv),
           ev = rel_err_f32(gv, dv16, c.nkv);
    double fo_err = rel_err_f32(fo, o, c.nq), fq_err = rel_err_f32(gq, dq, c.nq);
    printf("# B %d T %d NH %d NKV %d hs %d: against f64 of bf16 inputs out %.2e dq %.2e dk %.2e dv %.2e "
           "(bounds %.1e, %.1e); against f64 out %.2e dq %.2e\n",
           B, T, NH, NKV, hs, eo, eq, ek, ev, 2 * U16, 8 * U16, fo_err, fq_err);
    assert_true(eo < 2 * U16);
    assert_true(eq < 8 * U16 && ek < 8 * U16 && ev < 8 * U16);
    assert_true(fo_err > 1e-4 && fq_err > 1e-4);   // bf16 in effect
    free(o); free(dq); free(dk); free(dv); free(o16); free(dq16); free(dk16); free(dv16);
    free(q16); free(k16); free(v16); free(d16);
    free(fq); free(fk); free(fv); free(fd); free(fo); free(fo2); free(fl); free(gq); free(gk); free(gv);
    drop(&c);
}

static int bf16_here(void)
{
    char why[256];
    if (weft_matmul_bf16_supported(why, sizeof why) && weft_matmul_set_precision(WEFT_BF16) == 0)
        return 1;
    printf("# skipped: %s\n", why);
    return 0;
}

/* T = 150: tiles of 64, 64, 22 (the last padded); grouped and not; GPT-2's
 * head size on whole tiles; shorter than a tile; an odd head size. */
static void test_flash_bf16_grouped(void **state)
{
    (void)state;
    if (!bf16_here())
        skip();
    check_case(2, 150, 4, 2, 16);
    check_case(1, 150, 4, 4, 16);
    check_case(1, 128, 2, 2, 64);
    check_case(1, 5, 2, 1, 8);
    check_case(1, 70, 2, 1, 24);
    check_case(1, 67, 2, 2, 7);
    weft_matmul_set_precision(WEFT_F32);
}

/* The fused-qkv form: bitwise the grouped one with NKV = NH, forward and
 * backward (the same heads on other strides). */
static void test_flash_bf16_fused(void **state)
{
    (void)state;
    if (!bf16_here())
        skip();
    enum { B = 2, T = 133, NH = 4, HS = 16, C = NH * HS };
    size_t n = (size_t)B * T * C, nr = (size_t)B * NH * T;
    float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4), *dO = malloc(n * 4), *qkv = malloc(3 * n * 4);
    for (size_t i = 0; i < n; i++) {
        q[i] = (float)(2 * urand());
        k[i] = (float)(2 * urand());
        v[i] = (float)urand();
        dO[i] = (float)urand();
    }
    for (size_t r = 0; r < (size_t)B * T; r++) {
        memcpy(qkv + r * 3 * C, q + r * C, C * 4);
        memcpy(qkv + r * 3 * C + C, k + r * C, C * 4);
        memcpy(qkv + r * 3 * C + 2 * C, v + r * C, C * 4);
    }
    float *o1 = calloc(n, 4), *o2 = calloc(n, 4), *l1 = calloc(nr, 4), *l2 = calloc(nr, 4);
    float *dq = calloc(n, 4), *dk = calloc(n, 4), *dv = calloc(n, 4), *dqkv = calloc(3 * n, 4);
    weft_gqa_attention_flash_forward(o1, l1, q, k, v, B, T, NH, NH, HS);
    weft_attention_flash_forward(o2, l2, qkv, B, T, C, NH);
    assert_memory_equal(o1, o2, n * 4);
    assert_memory_equal(l1, l2, nr * 4);
    weft_gqa_attention_flash_backward(dq, dk, dv, dO, q, k, v, o1, l1, B, T, NH, NH, HS);
    weft_attention_flash_backward(dqkv, dO, qkv, o2, l2, B, T, C, NH);
    for (size_t r = 0; r < (size_t)B * T; r++) {
        assert_memory_equal(dqkv + r * 3 * C, dq + r * C, C * 4);
        assert_memory_equal(dqkv + r * 3 * C + C, dk + r * C, C * 4);
        assert_memory_equal(dqkv + r * 3 * C + 2 * C, dv + r * C, C * 4);
    }
    free(q); free(k); free(v); free(dO); free(qkv); free(o1); free(o2); free(l1); free(l2);
    free(dq); free(dk); free(dv); free(dqkv);
    weft_matmul_set_precision(WEFT_F32);
}

/* The causal mask across padded tiles (kernel_fixtures.h). */
static void test_flash_bf16_causal(void **state)
{
    (void)state;
    if (!bf16_here())
        skip();
    flash_causal_check();
    weft_matmul_set_precision(WEFT_F32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flash_bf16_grouped),
        cmocka_unit_test(test_flash_bf16_fused),
        cmocka_unit_test(test_flash_bf16_causal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
