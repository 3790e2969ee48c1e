/*
 * test_vexp.c -- the exp loops at each vector width (kernels/vexp.h):
 *   - every copy this CPU runs (SSE2 always; AVX2, AVX-512 when present --
 *     the test says which ran) against double exp over the whole range the
 *     ops feed it, [-120, 0] and -inf: within 3 ulp-sized relative error
 *     down to -87.3, exactly 0 below (never a subnormal), NaN kept;
 *   - every copy bit for bit against the SSE2 one, each loop, on lengths
 *     that take the 16-wide blocks, the 8-wide block and the scalar tail:
 *     what keeps training's results the same on every CPU;
 *   - weft_vexp() chose the widest copy the CPU runs.
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

#include "kernels/cpu.h"
#include "kernels/vexp.h"

static uint64_t rng = 0xD1B54A32D192ED03ull;
static double urand(void) /* uniform in [-1, 1) */
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (double)(rng >> 11) / 4503599627370496.0 - 1.0;
}

static const char *const isas[] = {"sse2", "avx2", "avx512"};
enum { NISA = 3, MAXN = 4096 };

static void test_exp_accuracy(void **state)
{
    (void)state;
    static float x[MAXN], y[MAXN];
    char ran[64] = "";
    for (int c = 0; c < NISA; c++) {
        const weft_vexp_ops *v = weft_vexp_isa(isas[c]);
        if (!v)
            continue;
        strcat(ran, " "), strcat(ran, isas[c]);
        for (int i = 0; i < MAXN; i++)
            x[i] = -120.0f + 120.0f * (float)i / (MAXN - 1);   // ends at 0
        x[5] = -INFINITY;
        x[6] = -1e30f;
        x[9] = NAN;
        memcpy(y, x, sizeof y);
        v->exp_shift(y, MAXN, 0.0f);
        double worst = 0;
        for (int i = 0; i < MAXN; i++) {
            if (i == 9) {
                assert_true(isnan(y[i]));
                continue;
            }
            assert_true(fpclassify(y[i]) != FP_SUBNORMAL);
            if (x[i] < -87.3f) {
                assert_true(y[i] == 0.0f);
                continue;
            }
            double r = exp((double)x[i]);
            worst = fmax(worst, fabs(y[i] - r) / r);
        }
        if (worst > 3.6e-7)   // 3 ulp at the top of a binade
            print_message("%s: exp relative error %.3g\n", isas[c], worst);
        assert_true(worst <= 3.6e-7);
        assert_true(y[MAXN - 1] == 1.0f);   // exp(0)
        // a row's sum of exponentials against double
        double ref = 0;
        for (int i = 10; i < MAXN; i++)
            ref += x[i] < -87.3f ? 0 : exp((double)x[i]);
        double s = v->sum_exp(x + 10, MAXN - 10, 0.0f);
        assert_true(fabs(s - ref) < 1e-6 * ref);
    }
    print_message("copies run on this CPU:%s\n", ran);
}

static void fill(float *x, int n, float scale)
{
    for (int i = 0; i < n; i++)
        x[i] = (float)(scale * urand());
}

/* Every loop of copy v against the SSE2 copy on length n: the same bits. */
static void same_bits(const weft_vexp_ops *v, int n)
{
    const weft_vexp_ops *s = &weft_vexp_sse2;
    static float x[MAXN], g[MAXN], d[MAXN], a1[MAXN], a2[MAXN], b1[MAXN], b2[MAXN];
    fill(x, n, 30);
    fill(g, n, 8);
    fill(d, n, 1);
    memcpy(a1, x, n * 4), memcpy(a2, x, n * 4);
    s->exp_shift(a1, n, 31.0f), v->exp_shift(a2, n, 31.0f);
    assert_memory_equal(a1, a2, n * 4);
    float s1 = s->sum_exp(x, n, 31.0f), s2 = v->sum_exp(x, n, 31.0f);
    assert_memory_equal(&s1, &s2, 4);
    s->exp_affine(a1, x, n, 30.5f, 1e-6f, 0.25f), v->exp_affine(a2, x, n, 30.5f, 1e-6f, 0.25f);
    assert_memory_equal(a1, a2, n * 4);
    memcpy(a1, x, n * 4), memcpy(a2, x, n * 4);
    s->exp_affine_inplace(a1, n, 30.5f, 1e-6f, 0.25f), v->exp_affine_inplace(a2, n, 30.5f, 1e-6f, 0.25f);
    assert_memory_equal(a1, a2, n * 4);
    s->gelu_forward(a1, g, n), v->gelu_forward(a2, g, n);
    assert_memory_equal(a1, a2, n * 4);
    memcpy(a1, d, n * 4), memcpy(a2, d, n * 4);
    s->gelu_backward(a1, g, x, n), v->gelu_backward(a2, g, x, n);
    assert_memory_equal(a1, a2, n * 4);
    s->swiglu_forward(a1, g, d, n), v->swiglu_forward(a2, g, d, n);
    assert_memory_equal(a1, a2, n * 4);
    memcpy(a1, d, n * 4), memcpy(a2, d, n * 4), memcpy(b1, x, n * 4), memcpy(b2, x, n * 4);
    s->swiglu_backward(a1, b1, g, x, d, n), v->swiglu_backward(a2, b2, g, x, d, n);
    assert_memory_equal(a1, a2, n * 4);
    assert_memory_equal(b1, b2, n * 4);
}

static void test_copies_same_bits(void **state)
{
    (void)state;
    static const int lens[] = {1, 7, 8, 15, 16, 23, 24, 31, 33, 40, 64, 1000, MAXN};
    for (int c = 1; c < NISA; c++) {
        const weft_vexp_ops *v = weft_vexp_isa(isas[c]);
        if (!v) {
            print_message("%s: not on this CPU, not compared\n", isas[c]);
            continue;
        }
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
            same_bits(v, lens[i]);
    }
}

static void test_choice(void **state)
{
    (void)state;
    const weft_cpu_features *f = weft_cpu();
    const char *want = f->avx512f ? "avx512" : f->avx2 ? "avx2" : "sse2";
    assert_string_equal(weft_vexp()->isa, want);
    assert_ptr_equal(weft_vexp(), weft_vexp_isa(want));
    assert_null(weft_vexp_isa("avx1024"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exp_accuracy),
        cmocka_unit_test(test_copies_same_bits),
        cmocka_unit_test(test_choice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
