/*
 * test_invariant.c -- the invariant checks (runtime/invariant.h) can fail:
 * weft_request_queue_check accepts a queue through pushes, pops and growth
 * and names each way a queue can be broken; WEFT_INVARIANT with a broken
 * check ends the process with exit 70 (weft_bug) after printing where and
 * why, and does nothing when the check holds. weft_dp_check accepts a
 * data-parallel state built here by hand (three buckets over 300 floats,
 * ZeRO-3 with two units) through a step, and names each way it can be
 * broken. The loader's, the checkpoint writer's and
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
#include "parallel/dp_int.h"
#include "runtime/error.h"
#include "runtime/device_impl.h"
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

/* 300 floats in buckets [200, 300) [100, 200) [0, 100), rank 0 of 2 (shard:
 * each bucket's first 50); ZeRO-3 units [0, 100) and [100, 300). */
static void dp_fixture(weft_dp *dp, bucket *b, unit *u)
{
    memset(dp, 0, sizeof *dp);
    memset(b, 0, 3 * sizeof *b);
    memset(u, 0, 2 * sizeof *u);
    for (int i = 0; i < 3; i++)
        b[i] = (bucket){.start = (size_t)(200 - 100 * i), .len = 100, .shard_off = 0, .shard_len = 50};
    u[0] = (unit){.start = 0, .len = 100, .b0 = 2, .nb = 1, .state = RELEASED};
    u[1] = (unit){.start = 100, .len = 200, .b0 = 0, .nb = 2, .state = RELEASED};
    dp->b = b;
    dp->nb = 3;
    dp->n = 300;
    dp->u = u;
    dp->nu = 2;
    dp->opts.zero = 3;
}

#define DP_BROKEN(reduced, text)                                                                               \
    do {                                                                                                       \
        assert_int_equal(weft_dp_check(&dp, (reduced), "test"), WEFT_EINTERNAL);                               \
        assert_non_null(strstr(weft_last_error(), (text)));                                                    \
        dp_fixture(&dp, b, u);                                                                                 \
    } while (0)

static void test_dp(void **state)
{
    (void)state;
    weft_dp dp;
    bucket b[3];
    unit u[2];
    weft_request *req = (weft_request *)&dp; /* any non-NULL pointer: the check never follows it */
    dp_fixture(&dp, b, u);
    assert_int_equal(weft_dp_check(&dp, 0, "created"), 0);
    /* through a step: two launched, one done; then all done */
    dp.next = 2;
    b[0].state = DONE;
    b[1].state = LAUNCHED;
    b[1].req = req;
    u[1].state = GATHERED;
    u[1].users = 1;
    u[0].state = GATHERING;
    assert_int_equal(weft_dp_check(&dp, -1, "a hook"), 0);
    dp.next = 3;
    for (int i = 0; i < 3; i++)
        b[i].state = DONE;
    assert_int_equal(weft_dp_check(&dp, 1, "reduced"), 0);

    dp_fixture(&dp, b, u);
    b[1].len = 90; /* a gap between two buckets */
    DP_BROKEN(0, "bucket 1 is [100, 190); the buckets must tile [0, 300) from its end, so it must end at 200");
    b[2].shard_off = 60; /* a shard past its bucket */
    DP_BROKEN(0, "bucket 2's shard [60, +50) is outside its 100 floats");
    b[0].drop[1][0] = 240, b[0].drop[1][1] = 260; /* pages given back inside the shard [200, 250) */
    DP_BROKEN(0, "bucket 0 gives back gradient floats [240, 260), not inside [250, 300)");
    b[1].state = LAUNCHED; /* launched beyond next */
    b[1].req = req;
    DP_BROKEN(0, "bucket 1 is in state 1; expected IDLE (0 of 3 launched)");
    dp.next = 1; /* a launched bucket without its request */
    b[0].state = LAUNCHED;
    DP_BROKEN(0, "bucket 0 is LAUNCHED without a request");
    dp.next = 3; /* ZeRO-3: three reductions in flight after a hook */
    for (int i = 0; i < 3; i++)
        b[i].state = LAUNCHED, b[i].req = req;
    DP_BROKEN(-1, "3 reductions in flight under ZeRO-3; at most 2");
    dp.next = 3; /* reduced, but one still in flight */
    b[0].state = b[1].state = DONE;
    b[2].state = LAUNCHED;
    b[2].req = req;
    DP_BROKEN(1, "the gradients are reduced but bucket 2 is in state 1, not DONE");
    u[0].users = 1; /* in use while released */
    DP_BROKEN(0, "ZeRO-3 unit 0 has 1 users in state 0");
    dp.whole = 1; /* all gathered, but one is not */
    u[0].state = GATHERED;
    DP_BROKEN(0, "ZeRO-3 unit 1 has 0 users in state 0 (all gathered)");
    u[1].b0 = 1; /* a unit that is not its buckets */
    DP_BROKEN(0, "ZeRO-3 unit 1 [100, 300) is not its buckets 1..2");
}

/* A device arena built by hand (device_impl.h), valid, then broken one
 * invariant at a time. Real arenas run the check at every carving (tests
 * in test_device). */
static void test_arena(void **state)
{
    (void)state;
    static _Alignas(WEFT_DEVICE_ALIGN) char mem[4096];
    weft_device_arena a = {(weft_dev *)&a, "model", mem, sizeof mem, 1000};
    assert_int_equal(weft_device_arena_check(&a), 0);
#define ARENA_BROKEN(want)                                                                                   \
    do {                                                                                                     \
        assert_int_equal(weft_device_arena_check(&a), WEFT_EINTERNAL);                                       \
        assert_non_null(strstr(weft_last_error(), want));                                                    \
        a = (weft_device_arena){(weft_dev *)&a, "model", mem, sizeof mem, 1000};                             \
    } while (0)
    a.used = 4097;
    ARENA_BROKEN("device arena 'model': 4097 bytes carved from 4096");
    a.base = mem + 8;
    ARENA_BROKEN("is not aligned to WEFT_DEVICE_ALIGN");
    a.base = NULL;
    ARENA_BROKEN("device arena 'model': backing (nil) is missing");
    a.d = NULL;
    ARENA_BROKEN("device arena model: no device");
    a.name[0] = '\0';
    ARENA_BROKEN("no name");
    a.used = a.size; /* full is fine */
    assert_int_equal(weft_device_arena_check(&a), 0);
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
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 70);
    assert_non_null(strstr(out, "bug: invariant violated at tests/unit/test_invariant.c:"));
    assert_non_null(strstr(out, "(a batch taken): slot 3 is READY with 2 rows still to read"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_dp),
        cmocka_unit_test(test_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
