/*
 * pipeline.c -- GPipe and 1F1B over the pipeline communicator. See
 * pipeline.h.
 *
 * Per step a stage walks its plan (weft_pipe_plan). A forward: receive the
 * input (not on the first stage), make sure the slot's previous output send
 * has finished, compute, post the send of the output (not on the last
 * stage). A backward: receive the output's gradient (not on the last
 * stage), make sure the previous input-gradient send has finished (its
 * buffer is about to be overwritten), compute, post the send of the input's
 * gradient (not on the first stage). The step ends when every send is done.
 *
 * Messages between two stages are matched by tag (2 mb for activations,
 * 2 mb + 1 for gradients) and, like all MPI traffic on one communicator
 * between two ranks, arrive in order.
 */
#include "parallel/pipeline.h"
#include "runtime/error.h"
#include "runtime/invariant.h"
#include "runtime/timer.h"
#include "runtime/trace.h"

#include <stdlib.h>
#include <string.h>

struct weft_pipe {
    weft_comm *comm;
    weft_pipe_schedule sched;
    int pp, stage, m, nslots;
    size_t count;
    weft_pipe_stage st;
    weft_pipe_action *plan;  /* 2m */
    weft_request **fsend;    /* nslots: output sends in flight */
    weft_request *bsend;     /* the input-gradient send in flight */
    weft_pipe_stats stats;
};

int weft_pipe_schedule_parse(const char *name, weft_pipe_schedule *out)
{
    if (strcmp(name, "1f1b") == 0)
        *out = WEFT_PIPE_1F1B;
    else if (strcmp(name, "gpipe") == 0)
        *out = WEFT_PIPE_GPIPE;
    else
        return weft_error(WEFT_ECONFIG, "parallel.schedule '%s': use 1f1b or gpipe", name);
    return 0;
}

const char *weft_pipe_schedule_name(weft_pipe_schedule s) { return s == WEFT_PIPE_GPIPE ? "gpipe" : "1f1b"; }

int weft_pipe_nslots(weft_pipe_schedule s, int pp, int stage, int m)
{
    if (s == WEFT_PIPE_GPIPE)
        return m;
    return pp - stage < m ? pp - stage : m;
}

int weft_pipe_slot(weft_pipe_schedule s, int pp, int stage, int m, int mb)
{
    return mb % weft_pipe_nslots(s, pp, stage, m);
}

void weft_pipe_plan(weft_pipe_schedule s, int pp, int stage, int m, weft_pipe_action *out)
{
    int n = 0, f = 0, b = 0;
    int warm = s == WEFT_PIPE_GPIPE ? m : pp - stage - 1;
    if (warm > m)
        warm = m;
    while (f < warm)
        out[n++] = (weft_pipe_action){0, f++};
    while (f < m) { /* steady 1F1B: one forward, one backward */
        out[n++] = (weft_pipe_action){0, f++};
        out[n++] = (weft_pipe_action){1, b++};
    }
    while (b < m)
        out[n++] = (weft_pipe_action){1, b++};
}

int weft_pipe_plan_check(weft_pipe_schedule s, int pp, int stage, int m, const weft_pipe_action *plan)
{
    int f = 0, b = 0, most = weft_pipe_nslots(s, pp, stage, m);
    for (int i = 0; i < 2 * m; i++) {
        const weft_pipe_action *a = &plan[i];
        int *next = a->backward ? &b : &f;
        if (a->mb < 0 || a->mb >= m)
            return weft_error(WEFT_EINTERNAL, "pipeline plan (%s, pp %d, stage %d, m %d): action %d names micro-"
                              "batch %d, outside 0..%d", weft_pipe_schedule_name(s), pp, stage, m, i, a->mb, m - 1);
        if (a->mb != *next)
            return weft_error(WEFT_EINTERNAL, "pipeline plan (%s, pp %d, stage %d, m %d): action %d is the %s of "
                              "micro-batch %d, expected micro-batch %d", weft_pipe_schedule_name(s), pp, stage, m,
                              i, a->backward ? "backward" : "forward", a->mb, *next);
        (*next)++;
        if (b > f)
            return weft_error(WEFT_EINTERNAL, "pipeline plan (%s, pp %d, stage %d, m %d): action %d runs the "
                              "backward of micro-batch %d before its forward", weft_pipe_schedule_name(s), pp,
                              stage, m, i, a->mb);
        if (f - b > most)
            return weft_error(WEFT_EINTERNAL, "pipeline plan (%s, pp %d, stage %d, m %d): after action %d, %d "
                              "micro-batches in flight, more than %d", weft_pipe_schedule_name(s), pp, stage, m,
                              i, f - b, most);
    }
    if (f != m || b != m)
        return weft_error(WEFT_EINTERNAL, "pipeline plan (%s, pp %d, stage %d, m %d): %d forwards and %d backwards",
                          weft_pipe_schedule_name(s), pp, stage, m, f, b);
    return 0;
}

int weft_pipe_new(weft_comm *comm, weft_pipe_schedule s, int m, size_t act_floats, const weft_pipe_stage *stage,
                  weft_pipe **out)
{
    if (!comm || m < 1 || !stage)
        return weft_error(WEFT_EINVAL, "weft_pipe_new: a communicator, m >= 1 and a stage are required");
    weft_pipe *p = calloc(1, sizeof *p);
    if (!p)
        return weft_error(WEFT_ENOMEM, "pipeline: out of memory");
    p->comm = comm;
    p->sched = s;
    p->pp = weft_comm_size(comm);
    p->stage = weft_comm_rank(comm);
    p->m = m;
    p->nslots = weft_pipe_nslots(s, p->pp, p->stage, m);
    p->count = act_floats;
    p->st = *stage;
    p->plan = calloc(2 * (size_t)m, sizeof *p->plan);
    p->fsend = calloc((size_t)p->nslots, sizeof *p->fsend);
    /* In flight at once: every slot's output send, one gradient send and
     * one receive, plus the step's small reductions on this group. */
    int rc = p->plan && p->fsend ? weft_comm_reserve(comm, p->nslots + 4)
                                 : weft_error(WEFT_ENOMEM, "pipeline: out of memory");
    if (rc) {
        weft_pipe_free(p);
        return rc;
    }
    weft_pipe_plan(s, p->pp, p->stage, m, p->plan);
    WEFT_INVARIANT(weft_pipe_plan_check(s, p->pp, p->stage, m, p->plan), "a new pipeline's plan");
    *out = p;
    return 0;
}

void weft_pipe_free(weft_pipe *p)
{
    if (!p)
        return;
    free(p->plan);
    free(p->fsend);
    free(p);
}

/* Wait for a request (if any), counting the time as idle. */
static int wait_idle(weft_pipe *p, weft_request **r)
{
    if (!*r)
        return 0;
    int64_t t0 = weft_now_ns();
    int rc = weft_request_wait(*r);
    *r = NULL;
    p->stats.wait_ns += weft_now_ns() - t0;
    return rc;
}

static int recv_idle(weft_pipe *p, float *buf, int peer, int tag)
{
    weft_request *r = NULL;
    int64_t t0 = weft_trace_begin();
    WEFT_CHECK(weft_comm_irecv(p->comm, buf, p->count, WEFT_F32, peer, tag, &r));
    int rc = wait_idle(p, &r);
    weft_trace_end("pipe.recv %d", "pipeline", WEFT_TRACE_COMM, tag, t0);
    return rc;
}

static int forward(weft_pipe *p, const void *batch, int mb, int slot, double *loss_sum)
{
    if (p->stage > 0)
        WEFT_CHECK(recv_idle(p, p->st.input(p->st.arg, slot), p->stage - 1, 2 * mb));
    WEFT_CHECK(wait_idle(p, &p->fsend[slot]));
    int64_t t0 = weft_now_ns();
    double loss = 0;
    WEFT_CHECK(p->st.forward(p->st.arg, batch, mb, slot, &loss));
    *loss_sum += loss;
    p->stats.compute_ns += weft_now_ns() - t0;
    if (p->stage < p->pp - 1)
        WEFT_CHECK(weft_comm_isend(p->comm, p->st.output(p->st.arg, slot), p->count, WEFT_F32, p->stage + 1,
                                   2 * mb, &p->fsend[slot]));
    return 0;
}

static int backward(weft_pipe *p, int mb, int slot)
{
    if (p->stage < p->pp - 1)
        WEFT_CHECK(recv_idle(p, p->st.doutput(p->st.arg), p->stage + 1, 2 * mb + 1));
    WEFT_CHECK(wait_idle(p, &p->bsend));
    int64_t t0 = weft_now_ns();
    WEFT_CHECK(p->st.backward(p->st.arg, mb, slot, mb == p->m - 1));
    p->stats.compute_ns += weft_now_ns() - t0;
    if (p->stage > 0)
        WEFT_CHECK(weft_comm_isend(p->comm, p->st.dinput(p->st.arg), p->count, WEFT_F32, p->stage - 1, 2 * mb + 1,
                                   &p->bsend));
    return 0;
}

static int drain(weft_pipe *p)
{
    for (int i = 0; i < p->nslots; i++)
        WEFT_CHECK(wait_idle(p, &p->fsend[i]));
    return wait_idle(p, &p->bsend);
}

int weft_pipe_train(weft_pipe *p, const void *batch, double *loss_sum)
{
    *loss_sum = 0;
    int64_t t0 = weft_now_ns();
    int inflight = 0;
    p->stats = (weft_pipe_stats){0};
    for (int i = 0; i < 2 * p->m; i++) {
        const weft_pipe_action *a = &p->plan[i];
        int slot = weft_pipe_slot(p->sched, p->pp, p->stage, p->m, a->mb);
        if (a->backward) {
            WEFT_CHECK(backward(p, a->mb, slot));
            inflight--;
        } else {
            WEFT_CHECK(forward(p, batch, a->mb, slot, loss_sum));
            if (++inflight > p->stats.peak_inflight)
                p->stats.peak_inflight = inflight;
        }
    }
    WEFT_CHECK(drain(p));
    p->stats.total_ns = weft_now_ns() - t0;
    return 0;
}

int weft_pipe_forward(weft_pipe *p, const void *batch, int m, double *loss_sum)
{
    for (int mb = 0; mb < m; mb++)
        WEFT_CHECK(forward(p, batch, mb, 0, loss_sum));
    return drain(p);
}

void weft_pipe_get_stats(const weft_pipe *p, weft_pipe_stats *out) { *out = p->stats; }
