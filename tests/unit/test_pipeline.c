/*
 * test_pipeline.c -- the pipeline schedules without ranks. For every (pp, m)
 * and both schedules, each stage's plan runs every micro-batch's forward
 * before its backward and backwards in order; no two micro-batches in flight
 * share an activation slot; 1F1B keeps at most pp - s in flight on stage s,
 * GPipe all m. Then all stages' plans are executed together in a simulation
 * with unit-time forwards and backwards where an action waits for the
 * neighbour it receives from: it must finish (no deadlock), and each stage's
 * idle time must be exactly the theoretical bubble, (pp - 1) / (m + pp - 1)
 * of the step, for both schedules. weft_pipe_plan_check accepts every plan
 * and rejects broken ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "parallel/pipeline.h"
#include "runtime/error.h"

enum { MAXP = 8, MAXM = 16 };

static void check_plan(weft_pipe_schedule s, int pp, int stage, int m)
{
    weft_pipe_action plan[2 * MAXM];
    weft_pipe_plan(s, pp, stage, m, plan);
    int fwd[MAXM] = {0}, next_b = 0, inflight = 0, peak = 0, nslots = weft_pipe_nslots(s, pp, stage, m);
    int slot_owner[MAXM];
    for (int i = 0; i < MAXM; i++)
        slot_owner[i] = -1;
    for (int i = 0; i < 2 * m; i++) {
        int mb = plan[i].mb, slot = weft_pipe_slot(s, pp, stage, m, mb);
        assert_true(mb >= 0 && mb < m && slot >= 0 && slot < nslots);
        if (plan[i].backward) {
            assert_true(fwd[mb]);
            assert_int_equal(mb, next_b++); /* FIFO */
            assert_int_equal(slot_owner[slot], mb);
            slot_owner[slot] = -1;
            inflight--;
        } else {
            assert_false(fwd[mb]);
            fwd[mb] = 1;
            assert_int_equal(slot_owner[slot], -1); /* the slot is free */
            slot_owner[slot] = mb;
            if (++inflight > peak)
                peak = inflight;
        }
    }
    assert_int_equal(next_b, m);
    int want = s == WEFT_PIPE_GPIPE ? m : (pp - stage < m ? pp - stage : m);
    assert_int_equal(peak, want);
    assert_int_equal(nslots, want); /* a stage's slots are what it has in flight, no more */
}

static void test_plans(void **state)
{
    (void)state;
    for (int s = 0; s < 2; s++)
        for (int pp = 1; pp <= MAXP; pp++)
            for (int m = 1; m <= MAXM; m++)
                for (int stage = 0; stage < pp; stage++)
                    check_plan((weft_pipe_schedule)s, pp, stage, m);
}

/* Run every stage's plan: an action starts when its stage is free and its
 * input is there (forward: the previous stage's forward of mb finished;
 * backward: the next stage's backward of mb finished). Returns the makespan
 * and each stage's busy time (always 2m). */
static int simulate(weft_pipe_schedule s, int pp, int m, int idle[MAXP])
{
    weft_pipe_action plan[MAXP][2 * MAXM];
    int pos[MAXP] = {0}, clock[MAXP] = {0};
    int fdone[MAXP][MAXM], bdone[MAXP][MAXM];
    memset(fdone, -1, sizeof fdone);
    memset(bdone, -1, sizeof bdone);
    for (int st = 0; st < pp; st++)
        weft_pipe_plan(s, pp, st, m, plan[st]);
    for (int progress = 1; progress;) {
        progress = 0;
        for (int st = 0; st < pp; st++) {
            if (pos[st] == 2 * m)
                continue;
            const weft_pipe_action *a = &plan[st][pos[st]];
            int ready = 0;
            if (!a->backward)
                ready = st == 0 ? 0 : fdone[st - 1][a->mb];
            else
                ready = st == pp - 1 ? 0 : bdone[st + 1][a->mb];
            if (ready < 0)
                continue; /* waits for a neighbour */
            int start = clock[st] > ready ? clock[st] : ready;
            clock[st] = start + 1;
            (a->backward ? bdone : fdone)[st][a->mb] = clock[st];
            pos[st]++;
            progress = 1;
        }
    }
    int end = 0;
    for (int st = 0; st < pp; st++) {
        assert_int_equal(pos[st], 2 * m); /* every stage finished: no deadlock */
        end = clock[st] > end ? clock[st] : end;
    }
    for (int st = 0; st < pp; st++)
        idle[st] = end - 2 * m;
    return end;
}

static void test_bubble(void **state)
{
    (void)state;
    for (int s = 0; s < 2; s++)
        for (int pp = 1; pp <= MAXP; pp++)
            for (int m = 1; m <= MAXM; m++) {
                int idle[MAXP];
                int end = simulate((weft_pipe_schedule)s, pp, m, idle);
                /* (p-1)/(m+p-1) of a step of 2(m+p-1) units is 2(p-1). */
                assert_int_equal(end, 2 * (m + pp - 1));
                for (int st = 0; st < pp; st++)
                    assert_int_equal(idle[st] * (m + pp - 1), end * (pp - 1));
            }
}

/* weft_pipe_plan_check (the invariant weft_pipe_new enforces) holds on every
 * plan weft_pipe_plan makes and names the broken action in plans broken
 * each way: two forwards swapped, a backward before its forward, a
 * micro-batch missing, and a GPipe plan (all in flight) checked as 1F1B. */
static void test_plan_check(void **state)
{
    (void)state;
    weft_pipe_action plan[2 * MAXM], bad[2 * MAXM];
    for (int s = 0; s < 2; s++)
        for (int pp = 1; pp <= MAXP; pp++)
            for (int st = 0; st < pp; st++)
                for (int m = 1; m <= MAXM; m++) {
                    weft_pipe_plan((weft_pipe_schedule)s, pp, st, m, plan);
                    assert_int_equal(weft_pipe_plan_check((weft_pipe_schedule)s, pp, st, m, plan), 0);
                }
    weft_pipe_plan(WEFT_PIPE_1F1B, 4, 0, 8, plan);
    memcpy(bad, plan, sizeof plan);
    bad[0].mb = 1, bad[1].mb = 0;
    assert_int_equal(weft_pipe_plan_check(WEFT_PIPE_1F1B, 4, 0, 8, bad), WEFT_EINTERNAL);
    assert_non_null(strstr(weft_last_error(), "action 0 is the forward of micro-batch 1, expected micro-batch 0"));
    memcpy(bad, plan, sizeof plan);
    bad[0] = (weft_pipe_action){1, 0};
    assert_int_equal(weft_pipe_plan_check(WEFT_PIPE_1F1B, 4, 0, 8, bad), WEFT_EINTERNAL);
    assert_non_null(strstr(weft_last_error(), "backward of micro-batch 0 before its forward"));
    assert_int_equal(weft_pipe_plan_check(WEFT_PIPE_1F1B, 4, 0, 7, plan), WEFT_EINTERNAL);
    assert_non_null(strstr(weft_last_error(), "action 11 names micro-batch 7, outside 0..6"));
    weft_pipe_plan(WEFT_PIPE_GPIPE, 4, 0, 8, plan);
    assert_int_equal(weft_pipe_plan_check(WEFT_PIPE_1F1B, 4, 0, 8, plan), WEFT_EINTERNAL);
    assert_non_null(strstr(weft_last_error(), "5 micro-batches in flight, more than 4"));
}

static void test_parse(void **state)
{
    (void)state;
    weft_pipe_schedule s;
    assert_int_equal(weft_pipe_schedule_parse("gpipe", &s), 0);
    assert_int_equal(s, WEFT_PIPE_GPIPE);
    assert_int_equal(weft_pipe_schedule_parse("1f1b", &s), 0);
    assert_int_equal(s, WEFT_PIPE_1F1B);
    assert_true(weft_pipe_schedule_parse("zigzag", &s) < 0);
    assert_int_equal(weft_pipe_nslots(WEFT_PIPE_1F1B, 4, 0, 8), 4);
    assert_int_equal(weft_pipe_nslots(WEFT_PIPE_1F1B, 4, 2, 8), 2);
    assert_int_equal(weft_pipe_nslots(WEFT_PIPE_1F1B, 4, 3, 8), 1);
    assert_int_equal(weft_pipe_nslots(WEFT_PIPE_1F1B, 4, 0, 2), 2);
    assert_int_equal(weft_pipe_nslots(WEFT_PIPE_1F1B, 4, 3, 2), 1);
    assert_int_equal(weft_pipe_nslots(WEFT_PIPE_GPIPE, 4, 3, 8), 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plans),
        cmocka_unit_test(test_bubble),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_plan_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
