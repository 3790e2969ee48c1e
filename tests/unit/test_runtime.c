/*
 * test_runtime.c -- error codes and messages, exit-code mapping, log prefix
 * and levels, launcher detection, and weft_comm_chunk (pure functions, no
 * MPI start-up needed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "collectives/comm.h"
#include "runtime/ctx.h"
#include "runtime/error.h"
#include "runtime/log.h"

static int helper_fails(void) { return weft_error(WEFT_EIO, "write %s failed", "x.bin"); }
static int checked(void)
{
    WEFT_CHECK(helper_fails());
    return 0;
}

static void test_errors(void **state)
{
    (void)state;
    weft_error_clear();
    assert_string_equal(weft_last_error(), "");
    assert_int_equal(checked(), WEFT_EIO);
    assert_string_equal(weft_last_error(), "write x.bin failed");
    assert_int_equal(weft_last_error_code(), WEFT_EIO);
    assert_string_equal(weft_strerror(WEFT_ETIMEDOUT), "WEFT_ETIMEDOUT");
    assert_string_equal(weft_strerror(-999), "WEFT_E?");
    weft_log_set_identity(3, 8, "node01");
    weft_error(WEFT_EDATA, "bad");
    assert_string_equal(weft_last_error(), "rank 3: bad");
    /* A message wrapping the last one names the rank once. */
    weft_error(WEFT_EIO, "saving: %s", weft_last_error());
    assert_string_equal(weft_last_error(), "rank 3: saving: bad");
    weft_error(WEFT_EIO, "peer rank 3: %s", "x"); /* not this rank's prefix: kept */
    assert_string_equal(weft_last_error(), "rank 3: peer rank 3: x");
    weft_log_set_identity(-1, 0, "");
}

static void test_exit_codes(void **state)
{
    (void)state;
    assert_int_equal(weft_exit_code(0), 0);
    assert_int_equal(weft_exit_code(WEFT_ECONFIG), 64);
    assert_int_equal(weft_exit_code(WEFT_EINVAL), 64);
    assert_int_equal(weft_exit_code(WEFT_EDATA), 65);
    assert_int_equal(weft_exit_code(WEFT_ENOENT), 66);
    assert_int_equal(weft_exit_code(WEFT_EIO), 74);
    assert_int_equal(weft_exit_code(WEFT_ECOMM), 70);
    assert_int_equal(weft_exit_code(WEFT_EINTERRUPTED), 75);
    assert_int_equal(weft_exit_code(WEFT_EUNAVAILABLE), 69);
}

static void test_log(void **state)
{
    (void)state;
    char buf[128];
    weft_log_prefix(buf, sizeof buf);
    assert_string_equal(buf, "[weft]");
    weft_log_set_identity(3, 8, "node01");
    weft_log_prefix(buf, sizeof buf);
    assert_string_equal(buf, "[weft r3/8 node01]");
    weft_log_set_identity(-1, 0, "");
    weft_log_level lv;
    assert_int_equal(weft_log_level_parse("DEBUG", &lv), 0);
    assert_int_equal(lv, WEFT_LOG_DEBUG);
    assert_int_equal(weft_log_level_parse("2", &lv), 0);
    assert_int_equal(lv, WEFT_LOG_INFO);
    assert_int_equal(weft_log_level_parse("loud", &lv), WEFT_EINVAL);
}

static const char *fake_env[16][2];
static const char *fake_lookup(const char *name)
{
    for (int i = 0; fake_env[i][0]; i++)
        if (strcmp(fake_env[i][0], name) == 0)
            return fake_env[i][1];
    return NULL;
}
static void set_env(const char *a, const char *b)
{
    memset(fake_env, 0, sizeof fake_env);
    fake_env[0][0] = a;
    fake_env[0][1] = "1";
    fake_env[1][0] = b;
    fake_env[1][1] = b ? "1" : NULL;
}

static void test_launcher(void **state)
{
    (void)state;
    set_env(NULL, NULL);
    assert_int_equal(weft_launcher_detect(fake_lookup), WEFT_LAUNCHER_NONE);
    set_env("OMPI_MCA_orte_hnp_uri", "SLURM_JOB_ID");
    assert_int_equal(weft_launcher_detect(fake_lookup), WEFT_LAUNCHER_MPIRUN);
    set_env("SLURM_PROCID", "PMIX_RANK");
    assert_int_equal(weft_launcher_detect(fake_lookup), WEFT_LAUNCHER_SRUN_PMIX);
    set_env("SLURM_STEP_ID", "PMI_FD");
    assert_int_equal(weft_launcher_detect(fake_lookup), WEFT_LAUNCHER_SRUN_PMI2);
    set_env("SLURM_PROCID", NULL);
    assert_int_equal(weft_launcher_detect(fake_lookup), WEFT_LAUNCHER_SRUN_NOPMI);
    assert_string_equal(weft_launcher_name(WEFT_LAUNCHER_SRUN_PMIX), "srun-pmix");
}

static void test_chunk(void **state)
{
    (void)state;
    for (size_t count = 0; count < 50; count++)
        for (int size = 1; size <= 7; size++) {
            size_t next = 0, minl = SIZE_MAX, maxl = 0;
            for (int r = 0; r < size; r++) {
                size_t off, len;
                weft_comm_chunk(count, size, r, &off, &len);
                assert_int_equal(off, next); /* contiguous, in rank order */
                next = off + len;
                minl = len < minl ? len : minl;
                maxl = len > maxl ? len : maxl;
            }
            assert_int_equal(next, count); /* covers everything */
            assert_true(maxl - minl <= 1); /* balanced */
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),   cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_log),      cmocka_unit_test(test_launcher),
        cmocka_unit_test(test_chunk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
