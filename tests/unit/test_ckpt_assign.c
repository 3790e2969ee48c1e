/*
 * test_ckpt_assign.c -- weft_ckpt_assign_by_bytes (checkpoint/plan.c), which
 * says which rank hashes a dataset at a save and verifies it at a load:
 * a dataset goes only to a rank that holds it whole when any does; the
 * others are spread so that no rank takes more than the best possible
 * assignment's largest share plus the largest dataset (the greedy bound,
 * against a brute-force optimum on small cases); the answer is a function of its inputs alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "checkpoint/plan.h"

enum { MAXN = 12, MAXR = 4 };

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static int holds_any(const unsigned char *held, int i, int n, int size)
{
    for (int r = 0; r < size; r++)
        if (held[r * n + i])
            return 1;
    return 0;
}

/* The smallest possible largest load over every assignment that respects
 * the holders: the exhaustive reference. */
static size_t best_max(const size_t *bytes, const unsigned char *held, int n, int size, int i, size_t *load)
{
    if (i == n) {
        size_t m = 0;
        for (int r = 0; r < size; r++)
            m = load[r] > m ? load[r] : m;
        return m;
    }
    size_t best = SIZE_MAX;
    for (int r = 0; r < size; r++) {
        if (holds_any(held, i, n, size) && !held[r * n + i])
            continue;
        load[r] += bytes[i];
        size_t m = best_max(bytes, held, n, size, i + 1, load);
        load[r] -= bytes[i];
        best = m < best ? m : best;
    }
    return best;
}

static void holders_are_respected_and_loads_balanced(void **state)
{
    (void)state;
    for (int trial = 0; trial < 400; trial++) {
        int n = 1 + (int)(next() % MAXN), size = 1 + (int)(next() % MAXR);
        size_t bytes[MAXN], load[MAXR] = {0}, ref[MAXR] = {0}, big = 0;
        unsigned char held[MAXN * MAXR] = {0};
        int owner[MAXN], again[MAXN];
        for (int i = 0; i < n; i++) {
            bytes[i] = 1 + next() % 1000;
            int kind = (int)(next() % 3); /* 0: nobody holds it, 1: one rank, 2: every rank */
            for (int r = 0; r < size; r++)
                held[r * n + i] = kind == 2 || (kind == 1 && r == (int)(next() % size) && !holds_any(held, i, n, size));
            if (kind == 1 && !holds_any(held, i, n, size))
                held[i] = 1; /* rank 0 */
        }
        weft_ckpt_assign_by_bytes(bytes, held, n, size, owner);
        weft_ckpt_assign_by_bytes(bytes, held, n, size, again);
        assert_memory_equal(owner, again, sizeof(int) * (size_t)n);
        for (int i = 0; i < n; i++) {
            assert_in_range(owner[i], 0, size - 1);
            if (holds_any(held, i, n, size))
                assert_true(held[owner[i] * n + i]);
            load[owner[i]] += bytes[i];
            big = bytes[i] > big ? bytes[i] : big;
        }
        size_t worst = 0;
        for (int r = 0; r < size; r++)
            worst = load[r] > worst ? load[r] : worst;
        size_t opt = best_max(bytes, held, n, size, 0, ref);
        /* the forced datasets go first, so a rank's last free dataset went
         * to the least loaded rank (at most the mean, at most the optimum):
         * the greedy answer is within the largest dataset of the optimum */
        assert_true(worst <= opt + big);
    }
}

static void without_holders_the_largest_are_spread(void **state)
{
    (void)state;
    /* 4 equal datasets over 2 ranks: two each; a dataset only rank 1 holds
     * goes to rank 1 even when that makes rank 1 the busier */
    size_t bytes[5] = {100, 100, 100, 100, 10};
    unsigned char held[10] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    int owner[5], per[2] = {0, 0};
    weft_ckpt_assign_by_bytes(bytes, held, 5, 2, owner);
    assert_int_equal(owner[4], 1);
    for (int i = 0; i < 4; i++)
        per[owner[i]]++;
    assert_int_equal(per[0], 2);
    assert_int_equal(per[1], 2);
    /* held NULL: by bytes alone; one huge dataset and many small ones end
     * on different ranks */
    size_t b2[4] = {1000, 300, 300, 300};
    int o2[4];
    weft_ckpt_assign_by_bytes(b2, NULL, 4, 2, o2);
    assert_true(o2[1] != o2[0] && o2[2] != o2[0] && o2[3] != o2[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(holders_are_respected_and_loads_balanced),
        cmocka_unit_test(without_holders_the_largest_are_spread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
