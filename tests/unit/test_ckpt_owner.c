/*
 * test_ckpt_owner.c -- checkpoint/owner.c's local tier mark, case by case
 * on real directories: a missing or empty tier is claimed; checkpoints
 * with this run's mark are accepted, with another run's refused
 * (WEFT_ECONFIG naming the directory, the steps and both identities), with
 * no mark taken as this run's and claimed; a `latest` alone counts as a
 * checkpoint; a malformed mark beside checkpoints is WEFT_EDATA, without
 * them overwritten; a run without an identity (0) matches no mark and
 * claims nothing; the mark written is exactly "owner <16 hex>\n"; the
 * mark read back, and released (removed, its run reported; malformed or
 * missing alike), after which another run claims the tier.
 * (tests/ckpt/test_tiers.sh part 9 runs the same through weft-train.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/owner.h"
#include "runtime/error.h"

static const uint64_t A = 0x009fd76cf57f426full, B = 0xcdc27442813e7ae9ull;

static char dir[256];

static void put(const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void mark_is(const char *want)
{
    char p[512], got[64] = "";
    snprintf(p, sizeof p, "%s/" WEFT_CKPT_OWNER_MARK, dir);
    FILE *f = fopen(p, "r");
    if (!want) {
        assert_null(f);
        return;
    }
    assert_non_null(f);
    size_t n = fread(got, 1, sizeof got - 1, f);
    fclose(f);
    got[n] = '\0';
    assert_string_equal(got, want);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/weft-owner-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_missing_and_empty(void **state)
{
    (void)state;
    char gone[300];
    snprintf(gone, sizeof gone, "%s/not-there", dir);
    assert_int_equal(weft_ckpt_owner_check(gone, A, 0), 0);
    assert_int_equal(weft_ckpt_owner_check(dir, A, 0), 0);
    mark_is(NULL); /* a check alone writes nothing */
    assert_int_equal(weft_ckpt_owner_check(dir, A, 1), 0);
    mark_is("owner 009fd76cf57f426f\n");
    /* empty of checkpoints: another run claims it */
    assert_int_equal(weft_ckpt_owner_check(dir, B, 1), 0);
    mark_is("owner cdc27442813e7ae9\n");
}

static void test_checkpoints(void **state)
{
    (void)state;
    put("step-00000002.h5", "x");
    put("step-00000004.h5", "x");
    put("latest", "step-00000004.h5\n");
    /* no mark: an older weft's tier, taken as this run's */
    assert_int_equal(weft_ckpt_owner_check(dir, A, 1), 0);
    mark_is("owner 009fd76cf57f426f\n");
    assert_int_equal(weft_ckpt_owner_check(dir, A, 0), 0);
    /* another run's: refused, and the mark kept */
    assert_int_equal(weft_ckpt_owner_check(dir, B, 1), WEFT_ECONFIG);
    const char *m = weft_last_error();
    assert_non_null(strstr(m, dir));
    assert_non_null(strstr(m, "holds 2 checkpoints (steps 2 to 4) of another run"));
    assert_non_null(strstr(m, "names run 009fd76cf57f426f; this one is cdc27442813e7ae9"));
    mark_is("owner 009fd76cf57f426f\n");
    /* a run without an identity yet matches no mark */
    assert_int_equal(weft_ckpt_owner_check(dir, 0, 0), WEFT_ECONFIG);
    assert_non_null(strstr(weft_last_error(), "this run has no run.dir/owner.json yet"));
}

static void test_latest_alone(void **state)
{
    (void)state;
    put(WEFT_CKPT_OWNER_MARK, "owner 009fd76cf57f426f\n");
    put("latest", "step-00000009.h5\n");
    assert_int_equal(weft_ckpt_owner_check(dir, B, 0), WEFT_ECONFIG);
    assert_non_null(strstr(weft_last_error(), "holds only a latest file of another run"));
}

static void test_malformed(void **state)
{
    (void)state;
    put(WEFT_CKPT_OWNER_MARK, "owner 009FD76CF57F426F\n"); /* upper case: not what weft writes */
    assert_int_equal(weft_ckpt_owner_check(dir, A, 1), 0); /* nothing to protect: rewritten */
    mark_is("owner 009fd76cf57f426f\n");
    put(WEFT_CKPT_OWNER_MARK, "owner 0000000000000000\n");
    put("step-00000001.h5", "x");
    assert_int_equal(weft_ckpt_owner_check(dir, A, 1), WEFT_EDATA);
    assert_non_null(strstr(weft_last_error(), "is malformed ('owner 0000000000000000')"));
    mark_is("owner 0000000000000000\n"); /* left for a person to look at */
}

static void test_read_and_release(void **state)
{
    (void)state;
    uint64_t id = 1;
    assert_int_equal(weft_ckpt_owner_read(dir, &id), 0);
    assert_int_equal(id, 0); /* no mark */
    put("step-00000002.h5", "x");
    put(WEFT_CKPT_OWNER_MARK, "owner 009fd76cf57f426f\n");
    assert_int_equal(weft_ckpt_owner_read(dir, &id), 0);
    assert_true(id == A);
    /* released: the mark gone, its run reported, the checkpoints kept;
     * then another run takes the tier and claims it */
    id = 0;
    assert_int_equal(weft_ckpt_owner_release(dir, &id), 0);
    assert_true(id == A);
    mark_is(NULL);
    assert_int_equal(weft_ckpt_owner_check(dir, B, 1), 0);
    mark_is("owner cdc27442813e7ae9\n");
    /* released twice: nothing to remove, no error */
    assert_int_equal(weft_ckpt_owner_release(dir, &id), 0);
    assert_int_equal(weft_ckpt_owner_release(dir, &id), 0);
    assert_int_equal(id, 0);
    /* a malformed mark: read says so, release removes it all the same */
    put(WEFT_CKPT_OWNER_MARK, "owner of this: me\n");
    assert_int_equal(weft_ckpt_owner_read(dir, &id), WEFT_EDATA);
    assert_int_equal(weft_ckpt_owner_release(dir, &id), 0);
    assert_int_equal(id, 0);
    mark_is(NULL);
    /* not a directory, or none */
    char p[300];
    snprintf(p, sizeof p, "%s/not-there", dir);
    assert_int_equal(weft_ckpt_owner_release(p, &id), WEFT_ENOENT);
    snprintf(p, sizeof p, "%s/step-00000002.h5", dir);
    assert_int_equal(weft_ckpt_owner_release(p, &id), WEFT_EINVAL);
    assert_non_null(strstr(weft_last_error(), "is not a directory"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_and_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latest_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_and_release, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
