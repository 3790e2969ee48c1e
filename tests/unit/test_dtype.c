/*
 * test_dtype.c -- dtype table and the 16-bit float conversions, checked
 * against independent references: the compiler's _Float16 for f16, and a
 * nearest-of-two-candidates search in double for bf16.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "runtime/dtype.h"
#include "runtime/error.h"

static float from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static uint64_t rng = 88172645463325252ull;
static uint32_t next32(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (uint32_t)rng;
}

static void test_table(void **state)
{
    (void)state;
    assert_int_equal(weft_dtype_size(WEFT_F32), 4);
    assert_int_equal(weft_dtype_size(WEFT_BF16), 2);
    assert_int_equal(weft_dtype_size(WEFT_F64), 8);
    assert_int_equal(weft_dtype_size(WEFT_U8), 1);
    assert_int_equal(weft_dtype_size((weft_dtype)42), 0);
    for (int i = 0; i < WEFT_NDTYPES; i++) {
        weft_dtype d;
        assert_int_equal(weft_dtype_parse(weft_dtype_name((weft_dtype)i), &d), 0);
        assert_int_equal(d, i);
    }
    weft_dtype d;
    assert_int_equal(weft_dtype_parse("float", &d), WEFT_EINVAL);
    assert_string_equal(weft_dtype_name((weft_dtype)-1), "invalid");
}

static void test_f16_to_f32_exhaustive(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        _Float16 ref;
        uint16_t b = (uint16_t)h;
        memcpy(&ref, &b, 2);
        float want = (float)ref, got = weft_f16_to_f32(b);
        if (isnan(want))
            assert_true(isnan(got));
        else
            assert_memory_equal(&want, &got, 4);
    }
}

static void check_f16(float f)
{
    _Float16 ref = (_Float16)f;
    uint16_t want, got = weft_f32_to_f16(f);
    memcpy(&want, &ref, 2);
    if (isnan(f))
        assert_true((got & 0x7c00) == 0x7c00 && (got & 0x3ff));
    else if (want != got)
        fail_msg("f32 %a (0x%08x) -> f16 0x%04x, reference 0x%04x", (double)f, 0, got, want);
}

static void test_f32_to_f16(void **state)
{
    (void)state;
    const float special[] = {0.0f, -0.0f, 1.0f, 65504.0f, 65519.99f, 65520.0f, 1e9f, -1e9f,
                             0x1p-14f, 0x1p-24f, 0x1p-25f, 0x1.8p-25f, 0x1p-26f, 1.0009765625f,
                             1.00048828125f, 1.00146484375f, INFINITY, -INFINITY, NAN};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        check_f16(special[i]);
    for (int i = 0; i < 2000000; i++)
        check_f16(from_bits(next32()));
    /* Dense around the f16 range, where rounding matters. */
    for (int i = 0; i < 2000000; i++)
        check_f16(from_bits((next32() & 0x87ffffffu) | 0x30000000u));
}

/* bf16 reference: of the two bf16 values around f, the nearer; ties to the
 * even one. */
static uint16_t bf16_ref(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
    double dlo = fabs((double)from_bits((uint32_t)lo << 16) - f);
    double dhi = fabs((double)from_bits((uint32_t)hi << 16) - f);
    if (dlo < dhi || (dlo == dhi && !(lo & 1)))
        return lo;
    return hi;
}

static void test_bf16(void **state)
{
    (void)state;
    for (int i = 0; i < 3000000; i++) {
        float f = from_bits(next32());
        if (isnan(f)) {
            assert_true(isnan(weft_bf16_to_f32(weft_f32_to_bf16(f))));
            continue;
        }
        if (isinf(f) || fabsf(f) > 3.38e38f)
            continue; /* the reference's hi candidate would be NaN */
        uint16_t got = weft_f32_to_bf16(f), want = bf16_ref(f);
        if (got != want)
            fail_msg("f32 %a -> bf16 0x%04x, reference 0x%04x", (double)f, got, want);
    }
    assert_int_equal(weft_f32_to_bf16(INFINITY), 0x7f80);
    assert_int_equal(weft_f32_to_bf16(1.0f), 0x3f80);
    assert_true(weft_bf16_to_f32(0x3f80) == 1.0f);
}

static void test_bulk(void **state)
{
    (void)state;
    float in[5] = {1.5f, -2.25f, 0.0f, 1e-3f, 300.0f}, out[5];
    uint16_t h[5];
    for (int dt = WEFT_BF16; dt <= WEFT_F16; dt++) {
        weft_f32_to_half((weft_dtype)dt, in, h, 5);
        weft_half_to_f32((weft_dtype)dt, h, out, 5);
        for (int i = 0; i < 3; i++)
            assert_true(out[i] == in[i]);
        assert_true(fabsf(out[4] - 300.0f) <= 1.0f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_f16_to_f32_exhaustive),
        cmocka_unit_test(test_f32_to_f16),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_bulk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
