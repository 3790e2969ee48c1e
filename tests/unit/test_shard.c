/*
 * test_shard.c -- shard specs: the slabs of every part tile the global tensor
 * exactly once, and a blocked split (attention's fused qkv) gives each part
 * the rows of its own heads of q, k and v, as computed independently here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "runtime/shard.h"

/* Copy part's piece out of a row-major global (d0, d1) tensor via the slabs. */
static void extract(const weft_shard_spec *s, const int *global, int *local)
{
    int64_t lshape[2];
    weft_shard_local_shape(s, lshape);
    int64_t gcols = s->ndim == 2 ? s->global_shape[1] : 1, lcols = s->ndim == 2 ? lshape[1] : 1;
    for (int i = 0; i < weft_shard_nslabs(s); i++) {
        int64_t st[2], ct[2], ls;
        weft_shard_slab(s, i, st, ct, &ls);
        for (int64_t r = 0; r < ct[0]; r++)
            for (int64_t c = 0; c < ct[1]; c++) {
                int64_t lr = s->split_dim == 0 ? ls + r : r, lc = s->split_dim == 1 ? ls + c : c;
                local[lr * lcols + lc] = global[(st[0] + r) * gcols + st[1] + c];
            }
    }
}

static void tiles_once(int64_t d0, int64_t d1, int dim, int nblocks, int nparts)
{
    int64_t n = d0 * (d1 ? d1 : 1);
    int seen[4096] = {0};
    assert_true(n <= 4096);
    for (int p = 0; p < nparts; p++) {
        weft_shard_spec s = weft_shard_split(d0, d1, dim, nblocks, p, nparts);
        assert_int_equal(weft_shard_local_numel(&s) * (size_t)nparts, (size_t)n);
        for (int i = 0; i < weft_shard_nslabs(&s); i++) {
            int64_t st[2], ct[2], ls;
            weft_shard_slab(&s, i, st, ct, &ls);
            for (int64_t r = 0; r < ct[0]; r++)
                for (int64_t c = 0; c < ct[1]; c++)
                    seen[(st[0] + r) * (d1 ? d1 : 1) + st[1] + c]++;
        }
    }
    for (int64_t i = 0; i < n; i++)
        assert_int_equal(seen[i], 1);
}

static void test_tiling(void **state)
{
    (void)state;
    tiles_once(12, 8, 0, 1, 4);
    tiles_once(12, 8, 1, 1, 2);
    tiles_once(24, 4, 0, 3, 2);
    tiles_once(48, 0, 0, 3, 4);
    tiles_once(16, 0, 0, 1, 1);
}

static void test_whole(void **state)
{
    (void)state;
    weft_shard_spec s = weft_shard_whole(5, 7);
    int64_t l[2];
    weft_shard_local_shape(&s, l);
    assert_int_equal(l[0], 5);
    assert_int_equal(l[1], 7);
    assert_int_equal(weft_shard_nslabs(&s), 1);
    s = weft_shard_whole(9, 0);
    assert_int_equal(s.ndim, 1);
    assert_int_equal(weft_shard_local_numel(&s), 9);
}

/* qkv weight (3C, C) with NH heads of hs = C/NH rows each in q, k and v;
 * tensor-parallel part p of P holds heads [p*NH/P, (p+1)*NH/P) of each. */
static void test_qkv_heads(void **state)
{
    (void)state;
    enum { C = 8, NH = 4, P = 2, HS = C / NH };
    int global[3 * C * C], local[3 * C * C / P];
    for (int i = 0; i < 3 * C * C; i++)
        global[i] = i;
    for (int p = 0; p < P; p++) {
        weft_shard_spec s = weft_shard_split(3 * C, C, 0, 3, p, P);
        extract(&s, global, local);
        int row = 0;
        for (int which = 0; which < 3; which++)             /* q, k, v */
            for (int h = p * NH / P; h < (p + 1) * NH / P; h++)
                for (int i = 0; i < HS; i++, row++)
                    assert_memory_equal(&local[row * C], &global[(which * C + h * HS + i) * C], C * sizeof(int));
        assert_int_equal(row, 3 * C / P);
    }
}

/* Row-parallel weight (C, 4C) split along its input dimension. */
static void test_column_split(void **state)
{
    (void)state;
    enum { R = 3, K = 8, P = 4 };
    int global[R * K], local[R * K / P];
    for (int i = 0; i < R * K; i++)
        global[i] = 100 + i;
    for (int p = 0; p < P; p++) {
        weft_shard_spec s = weft_shard_split(R, K, 1, 1, p, P);
        extract(&s, global, local);
        for (int r = 0; r < R; r++)
            for (int c = 0; c < K / P; c++)
                assert_int_equal(local[r * (K / P) + c], global[r * K + p * (K / P) + c]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole),
        cmocka_unit_test(test_tiling),
        cmocka_unit_test(test_qkv_heads),
        cmocka_unit_test(test_column_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
