/*
 * test_mesh.c -- the DP x TP x PP factorisation without ranks: parallel.dp
 * inferred, layouts that do not cover the world or do not divide the model
 * rejected with the constraint named, and the rank <-> coordinate map a
 * bijection that keeps tensor-parallel ranks adjacent (checked against
 * coordinates computed independently by counting).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "parallel/mesh.h"
#include "runtime/error.h"

static int layout(const char *dp, const char *tp, const char *pp, int world, weft_mesh_layout *l)
{
    const weft_config_key *const tables[] = {weft_mesh_config_keys, NULL};
    weft_config *cfg;
    assert_int_equal(weft_config_new(tables, &cfg), 0);
    assert_int_equal(weft_config_set(cfg, "parallel.dp", dp, "test"), 0);
    assert_int_equal(weft_config_set(cfg, "parallel.tp", tp, "test"), 0);
    assert_int_equal(weft_config_set(cfg, "parallel.pp", pp, "test"), 0);
    int rc = weft_mesh_layout_from_config(cfg, world, l);
    weft_config_free(cfg);
    return rc;
}

static void has(const char *needle)
{
    if (!strstr(weft_last_error(), needle)) {
        print_error("message \"%s\"\n  does not contain \"%s\"\n", weft_last_error(), needle);
        fail();
    }
}

static void test_factorisation(void **state)
{
    (void)state;
    weft_mesh_layout l;
    assert_int_equal(layout("0", "2", "2", 8, &l), 0); /* dp inferred */
    assert_int_equal(l.size[WEFT_AXIS_DP], 2);
    assert_int_equal(l.size[WEFT_AXIS_TP], 2);
    assert_int_equal(l.size[WEFT_AXIS_PP], 2);
    assert_int_equal(layout("4", "1", "1", 4, &l), 0);
    assert_int_equal(layout("0", "1", "1", 3, &l), 0);
    assert_int_equal(l.size[WEFT_AXIS_DP], 3);
    assert_int_equal(layout("0", "3", "1", 4, &l), WEFT_ECONFIG);
    has("parallel.tp (3) x parallel.pp (1) = 3 does not divide the world size 4");
    assert_int_equal(layout("2", "2", "2", 4, &l), WEFT_ECONFIG);
    has("parallel.dp (2) x parallel.tp (2) x parallel.pp (2) = 8 is not the world size 4");
}

/* Every rank maps to distinct coordinates and back; TP ranks adjacent, then
 * DP, PP slowest (the order a nested count produces). */
static void test_coords(void **state)
{
    (void)state;
    const int layouts[][3] = {{4, 1, 1}, {1, 4, 1}, {1, 1, 4}, {2, 2, 1}, {2, 1, 2}, {1, 2, 2}, {2, 3, 2}};
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        weft_mesh_layout l = {.size = {layouts[i][0], layouts[i][1], layouts[i][2]}};
        int r = 0;
        for (int pp = 0; pp < l.size[WEFT_AXIS_PP]; pp++)
            for (int dp = 0; dp < l.size[WEFT_AXIS_DP]; dp++)
                for (int tp = 0; tp < l.size[WEFT_AXIS_TP]; tp++, r++) {
                    int c[WEFT_NAXES];
                    weft_mesh_coords_of(&l, r, c);
                    assert_int_equal(c[WEFT_AXIS_DP], dp);
                    assert_int_equal(c[WEFT_AXIS_TP], tp);
                    assert_int_equal(c[WEFT_AXIS_PP], pp);
                    assert_int_equal(weft_mesh_world_rank(&l, c), r);
                }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_factorisation),
        cmocka_unit_test(test_coords),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
