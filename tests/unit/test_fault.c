/*
 * test_fault.c -- the fault registry (runtime/fault.h) against its
 * contract: the WEFT_FAULT grammar, every refusal naming the entry, rank
 * restriction, step matching, counted points, values, and that nothing
 * fires without a fault. Kills and stalls are exercised for real by the
 * shell tests (tests/ckpt/test_faults.sh, tests/faults/); here a fork
 * checks that kill_step really ends the process with SIGKILL, and a thread
 * parked by a hold_* fault checks the handshake files, the step a
 * hold_grad matches, the watchdog's held time and a cancelled hold.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "runtime/error.h"
#include "runtime/fault.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void refused(const char *spec, const char *needle)
{
    assert_int_equal(weft_fault_set(spec, 0), WEFT_ECONFIG);
    const char *m = weft_last_error();
    if (!strstr(m, needle))
        fail_msg("WEFT_FAULT=%s: message '%s' lacks '%s'", spec, m, needle);
    assert_non_null(strstr(m, "WEFT_FAULT"));
    /* a refused list leaves no fault behind */
    assert_int_equal(weft_fault_at(WEFT_FAULT_LOSS, 3), 0);
}

static void test_refusals(void **state)
{
    (void)state;
    refused("nan_stp:3", "'nan_stp:3' is not a fault name");
    refused("nan_step:x", "'nan_step:x' has an argument that is not a non-negative number");
    refused("nan_step:-1", "not a non-negative number");
    refused("nan_step:3@r1", "'nan_step:3@r1' has a rank that is not a number");
    refused("nan_step:3,bogus", "'bogus' is not a fault name");
    refused("slow_step", "'slow_step' needs an argument (milliseconds)");
    refused("hold_save", "needs an argument (a step)");
    refused("nan_step:", "not a non-negative number");
    /* the message lists the names to choose from */
    refused("x", "kill_save_data");
}

static void test_nothing_without_faults(void **state)
{
    (void)state;
    assert_int_equal(weft_fault_set(NULL, 0), 0);
    for (int p = 0; p < WEFT_FAULT_NPOINTS; p++)
        assert_int_equal(weft_fault_at((weft_fault_point)p, 5), 0);
    assert_int_equal(weft_fault_set("", 0), 0);
    assert_int_equal(weft_fault_at(WEFT_FAULT_SAVE_WRITE, 2), 0);
}

static void test_steps_and_ranks(void **state)
{
    (void)state;
    assert_int_equal(weft_fault_set("nan_step:4@1,enospc_save:6,eio_file", 1), 0);
    assert_int_equal(weft_fault_at(WEFT_FAULT_LOSS, 3), 0);
    assert_int_equal(weft_fault_at(WEFT_FAULT_LOSS, 4), 1);
    assert_int_equal(weft_fault_at(WEFT_FAULT_LOSS, 5), 0);
    assert_int_equal(weft_fault_at(WEFT_FAULT_SAVE_WRITE, 4), 0);
    assert_int_equal(weft_fault_at(WEFT_FAULT_SAVE_WRITE, 6), ENOSPC);
    assert_int_equal(weft_fault_at(WEFT_FAULT_FILE_WRITE, -1), EIO); /* no arg: every hit */
    assert_int_equal(weft_fault_at(WEFT_FAULT_FILE_WRITE, -1), EIO);
    /* the same list on rank 0: nan_step:4@1 is not its fault */
    assert_int_equal(weft_fault_set("nan_step:4@1,enospc_save:6", 0), 0);
    assert_int_equal(weft_fault_at(WEFT_FAULT_LOSS, 4), 0);
    assert_int_equal(weft_fault_at(WEFT_FAULT_SAVE_WRITE, 6), ENOSPC);
}

static void test_counted_points(void **state)
{
    (void)state;
    /* drop_tp_grad:3 drops the third reduction only; counts are per point */
    assert_int_equal(weft_fault_set("drop_tp_grad:3,close_tcp:1", 0), 0);
    assert_int_equal(weft_fault_at(WEFT_FAULT_TP_GRAD, -1), 0);
    assert_int_equal(weft_fault_at(WEFT_FAULT_TP_GRAD, -1), 0);
    assert_int_equal(weft_fault_at(WEFT_FAULT_TP_GRAD, -1), 1);
    assert_int_equal(weft_fault_at(WEFT_FAULT_TP_GRAD, -1), 0);
    assert_int_equal(weft_fault_at(WEFT_FAULT_TCP_SEND, -1), 1);
    assert_int_equal(weft_fault_at(WEFT_FAULT_TCP_SEND, -1), 0);
    /* slow_step's arg is its value, at every step */
    assert_int_equal(weft_fault_set("slow_step:25", 0), 0);
    assert_int_equal(weft_fault_at(WEFT_FAULT_STEP_DELAY, -1), 25);
    assert_int_equal(weft_fault_at(WEFT_FAULT_STEP_DELAY, -1), 25);
    /* setting again starts the counts over */
    assert_int_equal(weft_fault_set("drop_tp_grad:1", 0), 0);
    assert_int_equal(weft_fault_at(WEFT_FAULT_TP_GRAD, -1), 1);
}

/* kill_step:3 in a child: steps 1 and 2 pass, step 3 ends it by SIGKILL. */
static void test_kill_is_real(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (weft_fault_set("kill_step:3@0", 0) != 0)
            _exit(2);
        weft_fault_at(WEFT_FAULT_STEP, 1);
        weft_fault_at(WEFT_FAULT_STEP, 2);
        weft_fault_at(WEFT_FAULT_STEP, 3);
        _exit(0); /* reached only if the kill did not happen */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
    /* on another rank the same list never fires */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (weft_fault_set("kill_step:3@0", 1) != 0)
            _exit(2);
        weft_fault_at(WEFT_FAULT_STEP, 3);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static char dir[64];

static void *reach_grad(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_fault_at(WEFT_FAULT_GRAD_REDUCE, -1);
}

static int exists(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static void touch(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
}

/* hold_grad:3@1 on rank 1: no hold at step 2; at step 3 the point waits,
 * announced, until released; the watchdog sees it held; once only. */
static void test_hold_handshake(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/weft-fault.XXXXXX");
    assert_non_null(mkdtemp(dir));
    weft_fault_set_dir(dir);
    assert_int_equal(weft_fault_set("hold_grad:3@1", 0), 0);
    weft_fault_at(WEFT_FAULT_STEP, 3);
    assert_int_equal(weft_fault_at(WEFT_FAULT_GRAD_REDUCE, -1), 0); /* another rank's */
    assert_int_equal(weft_fault_set("hold_grad:3@1", 1), 0);
    assert_int_equal(weft_fault_held_since(), 0);
    weft_fault_at(WEFT_FAULT_STEP, 2);
    assert_int_equal(weft_fault_at(WEFT_FAULT_GRAD_REDUCE, -1), 0);
    assert_false(exists("fault-held-r1"));
    weft_fault_at(WEFT_FAULT_STEP, 3);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reach_grad, NULL), 0);
    for (int i = 0; i < 60000 && !exists("fault-held-r1"); i++) /* bounded: 60 s */
        usleep(1000);
    assert_true(exists("fault-held-r1"));
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int64_t held = weft_fault_held_since(); /* while held: now */
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_true(held >= (int64_t)a.tv_sec * 1000000000 + a.tv_nsec);
    assert_true(held <= (int64_t)b.tv_sec * 1000000000 + b.tv_nsec);
    touch("fault-release-r1");
    void *rc;
    pthread_join(th, &rc);
    assert_int_equal((int)(intptr_t)rc, 0);
    assert_false(exists("fault-held-r1"));
    assert_false(exists("fault-release-r1"));
    int64_t ended = weft_fault_held_since();
    assert_true(ended >= held);
    assert_int_equal(weft_fault_at(WEFT_FAULT_GRAD_REDUCE, -1), 0); /* once */
    assert_int_equal(weft_fault_held_since(), ended);
    rmdir(dir);
}

static int always(void *arg) { return arg != NULL; }

/* A hold whose caller cancels it: ECANCELED, the announcement removed. */
static void test_hold_cancelled(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/weft-fault.XXXXXX");
    assert_non_null(mkdtemp(dir));
    weft_fault_set_dir(dir);
    assert_int_equal(weft_fault_set("hold_drain:4,fail_drain:2", 0), 0);
    assert_int_equal(weft_fault_at_or(WEFT_FAULT_DRAIN_COPY, 3, always, dir), 0);
    assert_int_equal(weft_fault_at_or(WEFT_FAULT_DRAIN_COPY, 4, always, dir), ECANCELED);
    assert_false(exists("fault-held-r0"));
    assert_int_equal(weft_fault_at(WEFT_FAULT_DRAIN_TRY, -1), 0);
    assert_int_equal(weft_fault_at(WEFT_FAULT_DRAIN_TRY, -1), EIO); /* the second attempt */
    assert_int_equal(weft_fault_at(WEFT_FAULT_DRAIN_TRY, -1), 0);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_nothing_without_faults),
        cmocka_unit_test(test_steps_and_ranks),
        cmocka_unit_test(test_counted_points),
        cmocka_unit_test(test_kill_is_real),
        cmocka_unit_test(test_hold_handshake),
        cmocka_unit_test(test_hold_cancelled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
