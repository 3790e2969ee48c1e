/*
 * test_invariant.c -- the invariant checks (runtime/invariant.h) can fail:
 * weft_request_queue_check accepts a queue through pushes, pops and growth
 * and names each way a queue can be broken; WEFT_INVARIANT with a broken
 * check aborts the process (SIGABRT) after printing where and why, and does
 * nothing when the check holds. The loader's, the checkpoint writer's and
 * the request pool's checks run inside every test that uses those objects.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "collectives/request_queue.h"
#include "runtime/error.h"
#include "runtime/invariant.h"

static void test_queue(void **state)
{
    (void)state;
    weft_request_queue q = {0};
    weft_request reqs[40];
    assert_int_equal(weft_request_queue_check(&q), 0);
    /* through growth (16 -> 32) with the ring wrapped */
    for (int i = 0; i < 10; i++)
        assert_int_equal(weft_request_queue_push(&q, &reqs[i], NULL), 0);
    for (int i = 0; i < 8; i++)
        weft_request_queue_pop(&q);
    for (int i = 10; i < 40; i++)
        assert_int_equal(weft_request_queue_push(&q, &reqs[i], NULL), 0);
    assert_int_equal(weft_request_queue_check(&q), 0);
    assert_ptr_equal(weft_request_queue_front(&q), &reqs[8]);
    assert_int_equal(q.cap, 32);

    weft_request_queue b = q;
    b.len = b.cap + 1;
    assert_int_equal(weft_request_queue_check(&b), WEFT_EINTERNAL);
    assert_non_null(strstr(weft_last_error(), "33 requests in a capacity of 32"));
    b = q;
    b.head = b.cap;
    assert_int_equal(weft_request_queue_check(&b), WEFT_EINTERNAL);
    assert_non_null(strstr(weft_last_error(), "head 32 outside capacity 32"));
    b = q;
    b.cap = 48;
    assert_int_equal(weft_request_queue_check(&b), WEFT_EINTERNAL);
    assert_non_null(strstr(weft_last_error(), "capacity 48 is not a power of two"));
    b = q;
    b.ring[(b.head + 5) % b.cap] = NULL;
    assert_int_equal(weft_request_queue_check(&b), WEFT_EINTERNAL);
    assert_non_null(strstr(weft_last_error(), "entry 5 of 32"));
    b.ring[(b.head + 5) % b.cap] = &reqs[13];
    b = (weft_request_queue){.cap = 16};
    assert_int_equal(weft_request_queue_check(&b), WEFT_EINTERNAL);
    assert_non_null(strstr(weft_last_error(), "ring (nil) with capacity 16"));
    weft_request_queue_free(&q);
}

static int broken(void) { return weft_error(WEFT_EINTERNAL, "slot 3 is READY with 2 rows still to read"); }
static int holds(void) { return 0; }

static void test_abort(void **state)
{
    (void)state;
    WEFT_INVARIANT(holds(), "a check that holds"); /* returns */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        WEFT_INVARIANT(broken(), "a batch taken");
        _exit(0); /* not reached when the check aborts */
    }
    close(fds[1]);
    char out[1024] = "";
    ssize_t n = 0, r;
    while ((r = read(fds[0], out + n, sizeof out - 1 - (size_t)n)) > 0)
        n += r;
    close(fds[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    assert_non_null(strstr(out, "weft: invariant violated at tests/unit/test_invariant.c:"));
    assert_non_null(strstr(out, "(a batch taken): slot 3 is READY with 2 rows still to read"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue),
        cmocka_unit_test(test_abort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
