/*
 * test_copy_stream.c -- weft_copy_stream (runtime/copy_stream.c) copies
 * exactly what memcpy copies: every size around the streaming threshold
 * and the vector widths' multiples, every alignment of source and
 * destination within 64 bytes, and not a byte outside the destination;
 * weft_zero_stream zeroes exactly what memset would, at the same sizes and
 * alignments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "runtime/copy_stream.h"

enum { GUARD = 64 };

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((i * 131u + seed * 7u) >> 3);
}

static void check(size_t n, size_t so, size_t dofs)
{
    unsigned char *src = malloc(n + 2 * GUARD), *dst = malloc(n + 2 * GUARD);
    assert_non_null(src);
    assert_non_null(dst);
    fill(src, n + 2 * GUARD, 1);
    memset(dst, 0xA5, n + 2 * GUARD);
    unsigned char *d = dst + GUARD + dofs; /* dofs < GUARD */
    weft_copy_stream(d, src + so, n);
    assert_memory_equal(d, src + so, n);
    for (unsigned char *p = dst; p < d; p++)
        assert_int_equal(*p, 0xA5);
    for (unsigned char *p = d + n; p < dst + n + 2 * GUARD; p++)
        assert_int_equal(*p, 0xA5);
    free(src);
    free(dst);
}

static void small_and_threshold_sizes(void **state)
{
    (void)state;
    size_t sizes[] = {0, 1, 31, 64, 4096, WEFT_COPY_STREAM_MIN - 1, WEFT_COPY_STREAM_MIN, WEFT_COPY_STREAM_MIN + 1,
                      WEFT_COPY_STREAM_MIN + 127, WEFT_COPY_STREAM_MIN + 128, WEFT_COPY_STREAM_MIN + 4099};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        check(sizes[i], 0, 0);
}

static void every_alignment(void **state)
{
    (void)state;
    for (size_t so = 0; so < 64; so += 3)
        for (size_t dofs = 0; dofs < 64; dofs++)
            check(WEFT_COPY_STREAM_MIN + 4096 + so, so, dofs);
}

static void large(void **state)
{
    (void)state;
    check((size_t)9 << 20, 5, 17); /* several MB: the loop's main body */
}

/* n bytes at offset dofs zeroed, the guards around untouched */
static void check_zero(size_t n, size_t dofs)
{
    unsigned char *buf = malloc(n + 2 * GUARD);
    assert_non_null(buf);
    fill(buf, n + 2 * GUARD, 3);
    unsigned char *keep = malloc(n + 2 * GUARD), *d = buf + GUARD + dofs;
    assert_non_null(keep);
    memcpy(keep, buf, n + 2 * GUARD);
    weft_zero_stream(d, n);
    for (size_t i = 0; i < n; i++)
        if (d[i])
            fail_msg("weft_zero_stream(%zu bytes at +%zu): byte %zu is %u", n, dofs, i, d[i]);
    assert_memory_equal(buf, keep, GUARD + dofs);
    assert_memory_equal(d + n, keep + GUARD + dofs + n, GUARD - dofs);
    free(buf);
    free(keep);
}

static void zero_sizes_and_alignments(void **state)
{
    (void)state;
    size_t sizes[] = {0, 1, 63, 4096, WEFT_COPY_STREAM_MIN - 1, WEFT_COPY_STREAM_MIN, WEFT_COPY_STREAM_MIN + 1,
                      WEFT_COPY_STREAM_MIN + 63, WEFT_COPY_STREAM_MIN + 4099, (size_t)9 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (size_t dofs = 0; dofs < GUARD; dofs += 5)
            check_zero(sizes[i], dofs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(small_and_threshold_sizes),
        cmocka_unit_test(every_alignment),
        cmocka_unit_test(large),
        cmocka_unit_test(zero_sizes_and_alignments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
