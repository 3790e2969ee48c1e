/*
 * test_ckpt_region.c -- checkpoint/region.c: for every shard spec and every
 * flat range [a, b) of a rank's local piece (ZeRO-1 ranges start and end
 * mid-row), the rectangles, enumerated the way HDF5 transfers a hyperslab
 * union (row-major over the union), are exactly the global elements of
 * local elements a..b-1, in that order. The reference maps each local
 * element to its global index through weft_shard_slab, independently.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "checkpoint/rawdata.h"
#include "checkpoint/region.h"

enum { BASE = 4096, MEM = 64, ES = 4 };

/* The segments of rects r[0..n) against the reference map (local element
 * a + k at global map[a + k]). */
static void check_segments(const weft_shard_spec *s, const int64_t *map, size_t a, size_t b,
                           const weft_ckpt_rect *r, int n)
{
    weft_ckpt_segs v = {0};
    int64_t shape[2] = {s->global_shape[0], s->ndim == 2 ? s->global_shape[1] : 0};
    assert_int_equal(weft_ckpt_segs_add(&v, s->ndim, shape, ES, r, n, BASE, MEM, 3), 0);
    size_t bytes = 0;
    for (int i = 0; i < v.n; i++) {
        assert_int_equal(v.s[i].dset, 3);
        assert_true(i == 0 || v.s[i].off >= v.s[i - 1].off + v.s[i - 1].len);
        bytes += v.s[i].len;
    }
    assert_int_equal(bytes, (b - a) * ES);
    for (size_t k = 0; k < b - a; k++) { /* the segment holding memory byte of element k */
        size_t m = MEM + k * ES;
        int i = 0;
        while (i < v.n && !(m >= v.s[i].mem && m < v.s[i].mem + v.s[i].len))
            i++;
        assert_true(i < v.n);
        assert_int_equal(v.s[i].off + (m - v.s[i].mem), BASE + (size_t)map[a + k] * ES);
    }
    for (int i = 0, j; i < v.n; i = j) {
        size_t len;
        j = weft_ckpt_segs_run(&v, i, &len);
        assert_true(j > i);
        assert_int_equal(len, v.s[j - 1].off + v.s[j - 1].len - v.s[i].off);
        assert_int_equal(len, v.s[j - 1].mem + v.s[j - 1].len - v.s[i].mem);
        assert_true(j == v.n || v.s[j].off != v.s[j - 1].off + v.s[j - 1].len ||
                    v.s[j].mem != v.s[j - 1].mem + v.s[j - 1].len); /* runs are maximal */
    }
    weft_ckpt_segs_free(&v);
}

/* Global flat index of every local element, via the slabs. */
static void local_to_global(const weft_shard_spec *s, int64_t *map)
{
    int64_t l[2];
    weft_shard_local_shape(s, l);
    int64_t gcols = s->ndim == 2 ? s->global_shape[1] : 1, lcols = s->ndim == 2 ? l[1] : 1;
    for (int i = 0; i < weft_shard_nslabs(s); i++) {
        int64_t st[2], ct[2], ls;
        weft_shard_slab(s, i, st, ct, &ls);
        for (int64_t r = 0; r < ct[0]; r++)
            for (int64_t c = 0; c < ct[1]; c++) {
                int64_t lr = s->split_dim == 0 ? ls + r : r, lc = s->split_dim == 1 ? ls + c : c;
                map[lr * lcols + lc] = (st[0] + r) * gcols + st[1] + c;
            }
    }
}

static int cmp64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

static void check_range(const weft_shard_spec *s, const int64_t *map, size_t a, size_t b)
{
    weft_ckpt_rect r[64];
    assert_true(weft_ckpt_region_cap(s) <= 64);
    int n = weft_ckpt_region(s, a, b, r);
    assert_true(n >= 1 && n <= weft_ckpt_region_cap(s));
    int64_t gcols = s->ndim == 2 ? s->global_shape[1] : 1;
    int64_t *got = malloc((b - a + 1) * sizeof *got);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        assert_true(r[i].count[0] > 0 && r[i].count[1] > 0);
        for (int64_t y = 0; y < r[i].count[0]; y++)
            for (int64_t x = 0; x < r[i].count[1]; x++) {
                assert_true(k < b - a);
                got[k++] = (r[i].start[0] + y) * gcols + r[i].start[1] + x;
            }
    }
    assert_int_equal(k, b - a);
    /* HDF5 walks the union in row-major order: sort, then no duplicates,
     * and it must be the local order's images. */
    qsort(got, k, sizeof *got, cmp64);
    for (size_t i = 0; i < k; i++)
        assert_int_equal(got[i], map[a + i]);
    free(got);
    check_segments(s, map, a, b, r, n);
}

static void all_ranges(const weft_shard_spec *s)
{
    size_t n = weft_shard_local_numel(s);
    int64_t *map = malloc(n * sizeof *map);
    local_to_global(s, map);
    for (size_t a = 0; a < n; a++)
        for (size_t b = a + 1; b <= n; b++)
            check_range(s, map, a, b);
    free(map);
}

static void test_whole(void **state)
{
    (void)state;
    weft_shard_spec s = weft_shard_whole(5, 7);
    all_ranges(&s);
    s = weft_shard_whole(13, 0);
    all_ranges(&s);
}

static void test_row_split(void **state)
{
    (void)state;
    for (int p = 0; p < 2; p++) {
        weft_shard_spec s = weft_shard_split(8, 3, 0, 1, p, 2); /* column-parallel weight */
        all_ranges(&s);
        s = weft_shard_split(12, 4, 0, 3, p, 2); /* fused qkv: 3 blocks of rows */
        all_ranges(&s);
        s = weft_shard_split(12, 0, 0, 3, p, 2); /* its bias */
        all_ranges(&s);
    }
}

static void test_column_split(void **state)
{
    (void)state;
    for (int p = 0; p < 3; p++) {
        weft_shard_spec s = weft_shard_split(4, 6, 1, 1, p, 3); /* row-parallel weight */
        all_ranges(&s);
        s = weft_shard_split(3, 12, 1, 2, p, 3); /* blocks along columns */
        all_ranges(&s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole),
        cmocka_unit_test(test_row_split),
        cmocka_unit_test(test_column_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
