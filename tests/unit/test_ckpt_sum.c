/*
 * test_ckpt_sum.c -- checkpoint/sum.c's checksum in blocks against the
 * definition written out here with the one-shot XXH3 of xxhash: bytes fed
 * in pieces of any size (smaller and larger than a block, crossing block
 * boundaries) give what one call gives, and what the root of the block
 * hashes gives; a dataset of at most one block (or none) keeps the XXH3-64
 * of its bytes; block 0 (a format 1 file) is the XXH3-64 of all of them;
 * a changed byte in any block changes the checksum; the blocks of a part
 * fed with gaps are exactly those wholly inside it. (tests/ckpt/
 * sum_check.py checks a saved file against python3-xxhash.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "checkpoint/sum.h"

enum { B = 4096, N = 5 * B + 123 }; /* five whole blocks and a short one */

/* The definition: XXH3 of each block, then XXH3 of their little-endian bytes. */
static uint64_t reference(const unsigned char *p, size_t n, size_t block)
{
    if (n <= block)
        return XXH3_64bits(p, n);
    size_t nb = (n + block - 1) / block;
    unsigned char *cat = malloc(8 * nb);
    for (size_t k = 0; k < nb; k++) {
        size_t len = n - k * block < block ? n - k * block : block;
        uint64_t h = XXH3_64bits(p + k * block, len);
        for (int i = 0; i < 8; i++)
            cat[8 * k + (size_t)i] = (unsigned char)(h >> (8 * i));
    }
    uint64_t r = XXH3_64bits(cat, 8 * nb);
    free(cat);
    return r;
}

static unsigned char *bytes(void)
{
    unsigned char *p = malloc(N);
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (unsigned char)x;
    }
    return p;
}

static void test_pieces(void **state)
{
    (void)state;
    unsigned char *p = bytes();
    uint64_t want = reference(p, N, B);
    assert_true(weft_ckpt_sum_of(p, N, B) == want);
    static const size_t pieces[] = {1, 7, 1000, B - 1, B, B + 1, 3 * B + 5, N};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        weft_ckpt_sum s;
        weft_ckpt_sum_begin(&s, B);
        for (size_t a = 0; a < N; a += pieces[i])
            weft_ckpt_sum_update(&s, p + a, N - a < pieces[i] ? N - a : pieces[i]);
        assert_true(weft_ckpt_sum_end(&s) == want);
    }
    uint64_t h[6];
    assert_int_equal(weft_ckpt_sum_nblocks(N, B), 6);
    for (size_t k = 0; k < 6; k++)
        h[k] = XXH3_64bits(p + k * B, k < 5 ? B : N - 5 * B);
    assert_true(weft_ckpt_sum_root(h, 6) == want);
    /* every block counts */
    for (size_t k = 0; k < 6; k++) {
        p[k * B + 17] ^= 1;
        assert_true(weft_ckpt_sum_of(p, N, B) != want);
        p[k * B + 17] ^= 1;
    }
    free(p);
}

static void test_small_and_format_1(void **state)
{
    (void)state;
    unsigned char *p = bytes();
    /* one block, exactly one block, no bytes: the XXH3 of the bytes */
    assert_true(weft_ckpt_sum_of(p, 100, B) == XXH3_64bits(p, 100));
    assert_true(weft_ckpt_sum_of(p, B, B) == XXH3_64bits(p, B));
    assert_true(weft_ckpt_sum_of(NULL, 0, B) == XXH3_64bits(NULL, 0));
    weft_ckpt_sum s;
    weft_ckpt_sum_begin(&s, B);
    assert_true(weft_ckpt_sum_end(&s) == XXH3_64bits(NULL, 0));
    weft_ckpt_sum_begin(&s, B);
    weft_ckpt_sum_update(&s, p, B);
    assert_true(weft_ckpt_sum_end(&s) == XXH3_64bits(p, B));
    assert_int_equal(weft_ckpt_sum_nblocks(0, B), 1);
    assert_int_equal(weft_ckpt_sum_nblocks(B, B), 1);
    assert_int_equal(weft_ckpt_sum_nblocks(B + 1, B), 2);
    /* two blocks differ from the whole bytes' hash */
    assert_true(weft_ckpt_sum_of(p, B + 1, B) != XXH3_64bits(p, B + 1));
    /* block 0: one hash of everything, in pieces too */
    assert_true(weft_ckpt_sum_of(p, N, 0) == XXH3_64bits(p, N));
    weft_ckpt_sum_begin(&s, 0);
    weft_ckpt_sum_update(&s, p, 1000);
    weft_ckpt_sum_update(&s, p + 1000, N - 1000);
    assert_true(weft_ckpt_sum_end(&s) == XXH3_64bits(p, N));
    assert_int_equal(weft_ckpt_sum_nblocks(N, 0), 1);
    free(p);
}

/* weft_ckpt_blocks: a rank's part of a dataset, fed in pieces with a gap
 * (another rank's part): exactly the blocks wholly inside a stretch fed are
 * hashed, each as XXH3 of its bytes; the others left untouched. */
static void test_blocks_of_a_part(void **state)
{
    (void)state;
    unsigned char *p = bytes();
    uint64_t h[6] = {0}, in[6] = {0};
    weft_ckpt_blocks b;
    weft_ckpt_blocks_begin(&b, B, N, h, in);
    /* [100, 3B + 7) in pieces of 1000, then [4B, N) in one piece */
    for (size_t a = 100; a < 3 * B + 7; a += 1000)
        weft_ckpt_blocks_update(&b, a, p + a, 3 * B + 7 - a < 1000 ? 3 * B + 7 - a : 1000);
    weft_ckpt_blocks_update(&b, 4 * B, p + 4 * B, N - 4 * B);
    static const uint64_t want_in[6] = {0, 1, 1, 0, 1, 1};
    for (size_t k = 0; k < 6; k++) {
        assert_int_equal(in[k], want_in[k]);
        if (in[k])
            assert_true(h[k] == XXH3_64bits(p + k * B, k < 5 ? B : N - 5 * B));
        else
            assert_true(h[k] == 0);
    }
    /* the missing blocks hashed apart: the root is the checksum */
    h[0] = XXH3_64bits(p, B), h[3] = XXH3_64bits(p + 3 * B, B);
    assert_true(weft_ckpt_sum_root(h, 6) == reference(p, N, B));
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pieces),
        cmocka_unit_test(test_small_and_format_1),
        cmocka_unit_test(test_blocks_of_a_part),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
