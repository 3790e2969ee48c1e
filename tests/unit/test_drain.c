/*
 * test_drain.c -- the second checkpoint tier's drain (checkpoint/drain.h)
 * on its own, with real files and its real thread, no MPI: a committed
 * local file arrives byte for byte under the shared tier's latest; a newer
 * post wins; a local checkpoint newer than the shared latest is drained at
 * start; a failed attempt is retried (fault fail_drain, runtime/fault.h)
 * and, past the retries, reported with the step and left out of the shared
 * tier; a wait past its timeout says so while the drain is held (hold_drain)
 * and a close abandons the held copy; one directory for both tiers is
 * refused.
 * Checkpoints here are files of random bytes under checkpoint names: the
 * drain copies files, it never reads HDF5.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/commit.h"
#include "checkpoint/drain.h"
#include "runtime/error.h"
#include "runtime/fault.h"

typedef struct {
    char root[64], from[128], to[128];
} dirs;

static int setup(void **state)
{
    dirs *d = calloc(1, sizeof *d);
    snprintf(d->root, sizeof d->root, "/tmp/weft-drain.XXXXXX");
    if (!mkdtemp(d->root))
        return -1;
    snprintf(d->from, sizeof d->from, "%s/local", d->root);
    snprintf(d->to, sizeof d->to, "%s/shared", d->root);
    weft_fault_set(NULL, 0);
    weft_fault_set_dir(d->root);
    *state = d;
    return weft_ckpt_mkdir(d->from);
}

static int teardown(void **state)
{
    dirs *d = *state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->root);
    int rc = system(cmd);
    free(d);
    return rc;
}

/* DIR/step-N.h5 of `bytes` random bytes (seeded by step), committed
 * (latest names it) with the commit protocol. */
static void commit_file(const char *dir, int64_t step, size_t bytes)
{
    char name[64], tmp[256];
    weft_ckpt_file_name(step, name, sizeof name);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    FILE *f = fopen(tmp, "wb");
    assert_non_null(f);
    srand((unsigned)step);
    for (size_t i = 0; i < bytes; i++)
        fputc(rand() & 0xff, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(weft_ckpt_publish(dir, tmp, name, -1), 0);
}

/* The two files are equal byte for byte. */
static int same_file(const char *a, const char *b)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

static int64_t latest_step(const char *dir)
{
    char path[4300];
    int64_t s = -1;
    if (weft_ckpt_find_latest(dir, path, sizeof path) != 0 || !weft_ckpt_parse_name(strrchr(path, '/') + 1, &s))
        return -1;
    return s;
}

static weft_ckpt_drain *start(const dirs *d, int retries)
{
    weft_ckpt_drain_opts o = {.from = d->from, .to = d->to, .keep_last = 2, .retries = retries, .preflight = 1};
    weft_ckpt_drain *dr = NULL;
    assert_int_equal(weft_ckpt_drain_new(&o, &dr), 0);
    return dr;
}

static void test_copy(void **state)
{
    dirs *d = *state;
    weft_ckpt_drain *dr = start(d, 0);
    /* 44 MiB and a tail: chunks of 8 MiB, the last one short, and past
     * the 32 MiB the drain keeps in write-back before it drops what is
     * on disk (a dropped range still arrives byte for byte) */
    const size_t big = (44u << 20) + 12345;
    for (int64_t s = 10; s <= 30; s += 10) {
        commit_file(d->from, s, s == 30 ? big : 4096);
        weft_ckpt_drain_post(dr, s);
        assert_int_equal(weft_ckpt_drain_wait(dr, s, 60), 0);
    }
    char a[256], b[256];
    snprintf(a, sizeof a, "%s/step-00000030.h5", d->from);
    snprintf(b, sizeof b, "%s/step-00000030.h5", d->to);
    assert_true(same_file(a, b));
    assert_int_equal(latest_step(d->to), 30);
    snprintf(b, sizeof b, "%s/step-00000010.h5", d->to);
    assert_int_equal(access(b, F_OK), -1); /* keep_last 2 */
    weft_ckpt_drain_stats st;
    weft_ckpt_drain_get(dr, &st);
    assert_int_equal(st.drained, 3);
    assert_int_equal(st.drained_step, 30);
    assert_int_equal(st.last_bytes, big);
    assert_string_equal(st.error, "");
    weft_ckpt_drain_close(dr);
}

/* A checkpoint the local tier holds newer than the shared latest (a job
 * killed before its drain) is drained at start, without a post. */
static void test_catch_up(void **state)
{
    dirs *d = *state;
    assert_int_equal(weft_ckpt_mkdir(d->to), 0);
    commit_file(d->to, 3, 1000);
    commit_file(d->from, 7, 1000);
    weft_ckpt_drain *dr = start(d, 0);
    assert_int_equal(weft_ckpt_drain_wait(dr, 7, 60), 0);
    assert_int_equal(latest_step(d->to), 7);
    weft_ckpt_drain_close(dr);
}

static void test_retry(void **state)
{
    dirs *d = *state;
    assert_int_equal(weft_fault_set("fail_drain:1", 0), 0);
    weft_ckpt_drain *dr = start(d, 1);
    commit_file(d->from, 4, 5000);
    weft_ckpt_drain_post(dr, 4);
    assert_int_equal(weft_ckpt_drain_wait(dr, 4, 60), 0);
    weft_ckpt_drain_stats st;
    weft_ckpt_drain_get(dr, &st);
    assert_int_equal(st.retried, 1);
    assert_int_equal(st.failed, 0);
    assert_int_equal(latest_step(d->to), 4);
    weft_ckpt_drain_close(dr);
}

static void test_give_up(void **state)
{
    dirs *d = *state;
    assert_int_equal(weft_fault_set("fail_drain", 0), 0);
    weft_ckpt_drain *dr = start(d, 1);
    commit_file(d->from, 4, 5000);
    weft_ckpt_drain_post(dr, 4);
    assert_int_equal(weft_ckpt_drain_wait(dr, 4, 60), WEFT_EIO);
    assert_non_null(strstr(weft_last_error(), "checkpoint step 4 was not drained to"));
    assert_non_null(strstr(weft_last_error(), "it is on the local tier only"));
    weft_ckpt_drain_stats st;
    weft_ckpt_drain_get(dr, &st);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.retried, 1);
    assert_int_equal((int)st.failed_step, 4);
    assert_non_null(strstr(st.error, "fault injected: fail_drain"));
    assert_int_equal(latest_step(d->to), -1);
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s/.step-00000004.h5.tmp", d->to);
    assert_int_equal(access(tmp, F_OK), -1);
    weft_ckpt_drain_close(dr);
}

/* Held mid-copy: a wait times out and says so; released, the drain ends. */
static void test_hold_timeout(void **state)
{
    dirs *d = *state;
    assert_int_equal(weft_fault_set("hold_drain", 0), 0);
    weft_ckpt_drain *dr = start(d, 0);
    commit_file(d->from, 9, 5000);
    weft_ckpt_drain_post(dr, 9);
    assert_int_equal(weft_ckpt_drain_wait(dr, 9, 0.2), WEFT_EIO);
    assert_non_null(strstr(weft_last_error(), "within checkpoint.drain_timeout (0.2 s)"));
    char held[256], release[256];
    snprintf(held, sizeof held, "%s/fault-held-r0", d->root);
    snprintf(release, sizeof release, "%s/fault-release-r0", d->root);
    for (int i = 0; i < 60000 && access(held, F_OK) != 0; i++) /* the copy announces itself (bounded: 60 s) */
        usleep(1000);
    assert_int_equal(access(held, F_OK), 0);
    FILE *f = fopen(release, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(weft_ckpt_drain_wait(dr, 9, 60), 0);
    assert_int_equal(latest_step(d->to), 9);
    weft_ckpt_drain_close(dr);
}

/* Held at step 6's copy (kill_drain/stall_drain share the point): a close
 * abandons the copy -- nothing in the shared tier, no temporary left. */
static void test_hold_close(void **state)
{
    dirs *d = *state;
    assert_int_equal(weft_fault_set("hold_drain:6", 0), 0);
    weft_ckpt_drain *dr = start(d, 0);
    commit_file(d->from, 6, 5000);
    weft_ckpt_drain_post(dr, 6);
    char held[256], tmp[256];
    snprintf(held, sizeof held, "%s/fault-held-r0", d->root);
    for (int i = 0; i < 60000 && access(held, F_OK) != 0; i++)
        usleep(1000);
    assert_int_equal(access(held, F_OK), 0);
    weft_ckpt_drain_close(dr);
    assert_int_equal(latest_step(d->to), -1);
    snprintf(tmp, sizeof tmp, "%s/.step-00000006.h5.tmp", d->to);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(access(held, F_OK), -1);
}

static void test_same_dir(void **state)
{
    dirs *d = *state;
    weft_ckpt_drain_opts o = {.from = d->from, .to = d->from, .keep_last = 1};
    weft_ckpt_drain *dr = (weft_ckpt_drain *)1;
    assert_int_equal(weft_ckpt_drain_new(&o, &dr), WEFT_ECONFIG);
    assert_null(dr);
    assert_non_null(strstr(weft_last_error(), "are the same directory"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catch_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_give_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
