/*
 * net_sched.c -- collective schedules: building them (the algorithms call
 * weft_net_sched_send/recv/... and weft_net_sched_step) and running them over a
 * weft_net_link. The arrays only grow and are reused by the next collective, so
 * after warm-up a collective allocates nothing.
 *
 * Running: step cur is "posted" once its transfers are handed to the link;
 * each call moves bytes, folds arrived bytes of reducing receives into
 * their destinations, and when every transfer of the step has completed
 * runs the step's computations and moves to the next step.
 */
#include "collectives/net.h"
#include "collectives/reduce_simd.h"
#include "runtime/error.h"

#include <stdlib.h>
#include <string.h>

/* Reduce in slices of at least this many bytes while a receive arrives. */
#define FOLD_BYTES (64u << 10)

void weft_net_sched_reset(weft_net_sched *s, weft_dtype wide, weft_redop redop)
{
    s->nsteps = s->nx = s->ncomp = 0;
    s->err = 0;
    s->wide = wide;
    s->redop = redop;
    s->wes = weft_dtype_size(wide);
    s->cur = s->posted = 0;
    /* the step being built */
    if (!s->cap_steps && !(s->steps = calloc(16, sizeof *s->steps))) {
        s->err = 1;
        return;
    }
    if (!s->cap_steps)
        s->cap_steps = 16;
    s->steps[0] = (weft_net_step){0, 0, 0, 0};
}

void weft_net_sched_free(weft_net_sched *s)
{
    free(s->steps);
    free(s->x);
    free(s->comp);
    memset(s, 0, sizeof *s);
}

static int grow(void **arr, int *cap, int want, size_t es)
{
    if (want <= *cap)
        return 0;
    int c = *cap ? *cap : 16;
    while (c < want)
        c *= 2;
    void *p = realloc(*arr, (size_t)c * es);
    if (!p)
        return -1;
    *arr = p;
    *cap = c;
    return 0;
}

static weft_net_step *cur_step(weft_net_sched *s) { return &s->steps[s->nsteps]; }

static weft_net_xfer *add_x(weft_net_sched *s)
{
    if (s->err || grow((void **)&s->x, &s->cap_x, s->nx + 1, sizeof *s->x)) {
        s->err = 1;
        return NULL;
    }
    weft_net_xfer *x = &s->x[s->nx++];
    memset(x, 0, sizeof *x);
    cur_step(s)->nx++;
    return x;
}

static weft_net_comp *add_c(weft_net_sched *s)
{
    if (s->err || grow((void **)&s->comp, &s->cap_comp, s->ncomp + 1, sizeof *s->comp)) {
        s->err = 1;
        return NULL;
    }
    weft_net_comp *c = &s->comp[s->ncomp++];
    cur_step(s)->nc++;
    return c;
}

void weft_net_sched_send(weft_net_sched *s, int peer, const void *buf, size_t bytes)
{
    weft_net_xfer *x = add_x(s);
    if (x)
        *x = (weft_net_xfer){.kind = WEFT_NET_X_SEND, .peer = peer, .buf = (char *)buf, .bytes = bytes};
}

void weft_net_sched_recv(weft_net_sched *s, int peer, void *buf, size_t bytes)
{
    weft_net_xfer *x = add_x(s);
    if (x)
        *x = (weft_net_xfer){.kind = WEFT_NET_X_RECV, .peer = peer, .buf = buf, .bytes = bytes};
}

void weft_net_sched_recv_acc(weft_net_sched *s, int peer, void *tmp, void *acc, size_t n)
{
    weft_net_xfer *x = add_x(s);
    if (x)
        *x = (weft_net_xfer){.kind = WEFT_NET_X_RECV, .peer = peer, .buf = tmp, .bytes = n * s->wes, .acc = acc};
}

static void add_comp(weft_net_sched *s, weft_net_ckind k, void *dst, const void *a, const void *b, size_t n)
{
    weft_net_comp *c = add_c(s);
    if (c)
        *c = (weft_net_comp){k, dst, a, b, n};
}

void weft_net_sched_copy(weft_net_sched *s, void *dst, const void *src, size_t bytes)
{
    if (dst != src && bytes)
        add_comp(s, WEFT_NET_C_COPY, dst, src, NULL, bytes);
}

void weft_net_sched_acc(weft_net_sched *s, void *dst, const void *src, size_t n) { add_comp(s, WEFT_NET_C_ACC, dst, src, NULL, n); }

void weft_net_sched_combine(weft_net_sched *s, void *dst, const void *a, const void *b, size_t n)
{
    add_comp(s, WEFT_NET_C_COMBINE, dst, a, b, n);
}

void weft_net_sched_step(weft_net_sched *s)
{
    if (s->err)
        return;
    weft_net_step *st = cur_step(s);
    if (st->nx == 0 && st->nc == 0)
        return;
    if (grow((void **)&s->steps, &s->cap_steps, s->nsteps + 2, sizeof *s->steps)) {
        s->err = 1;
        return;
    }
    s->nsteps++;
    s->steps[s->nsteps] = (weft_net_step){s->nx, 0, s->ncomp, 0};
}

/* --- running ------------------------------------------------------------- */

static void run_comp(weft_net_sched *s, const weft_net_comp *c)
{
    switch (c->kind) {
    case WEFT_NET_C_COPY: memmove(c->dst, c->a, c->n); break;
    case WEFT_NET_C_ACC: weft_simd_accumulate(s->wide, s->redop, c->dst, c->a, c->n); break;
    case WEFT_NET_C_COMBINE: weft_simd_combine(s->wide, s->redop, c->dst, c->a, c->b, c->n); break;
    }
}

/* Fold the arrived, not yet reduced elements of x into its destination. */
static void fold(weft_net_sched *s, weft_net_xfer *x, int final)
{
    size_t have = x->msg.done / s->wes * s->wes;
    if (have <= x->reduced || (!final && have - x->reduced < FOLD_BYTES))
        return;
    weft_simd_accumulate(s->wide, s->redop, x->acc + x->reduced, x->buf + x->reduced, (have - x->reduced) / s->wes);
    x->reduced = have;
}

static void post_step(weft_net_sched *s, weft_net_link *l, uint64_t ticket)
{
    weft_net_step *st = &s->steps[s->cur];
    for (int i = st->x0; i < st->x0 + st->nx; i++) {
        weft_net_xfer *x = &s->x[i];
        x->reduced = 0;
        x->msg.esize = 0;
        if (x->kind == WEFT_NET_X_SEND)
            weft_net_msg_send(l, &x->msg, x->peer, WEFT_NET_COLL | ticket, x->buf, x->bytes);
        else
            weft_net_msg_recv(l, &x->msg, x->peer, WEFT_NET_COLL | ticket, x->buf, x->bytes);
    }
    s->posted = 1;
}

/* 1 when every transfer of the current step completed. */
static int step_done(weft_net_sched *s)
{
    weft_net_step *st = &s->steps[s->cur];
    int all = 1;
    for (int i = st->x0; i < st->x0 + st->nx; i++) {
        weft_net_xfer *x = &s->x[i];
        if (x->acc)
            fold(s, x, x->msg.complete);
        all &= x->msg.complete;
    }
    return all;
}

int weft_net_sched_run(weft_net_sched *s, weft_net_link *l, uint64_t ticket)
{
    if (s->err)
        return weft_error(WEFT_ENOMEM, "communicator '%s': out of memory for a collective schedule", l->comm->name);
    while (s->cur < s->nsteps) {
        if (!s->posted)
            post_step(s, l, ticket);
        WEFT_CHECK(weft_net_link_progress(l));
        if (!step_done(s))
            return 0;
        weft_net_step *st = &s->steps[s->cur];
        for (int i = st->c0; i < st->c0 + st->nc; i++)
            run_comp(s, &s->comp[i]);
        s->cur++;
        s->posted = 0;
    }
    return 1;
}

int weft_net_sched_waiting_on(const weft_net_sched *s)
{
    if (s->cur >= s->nsteps || !s->posted)
        return -1;
    const weft_net_step *st = &s->steps[s->cur];
    for (int i = st->x0; i < st->x0 + st->nx; i++)
        if (!s->x[i].msg.complete && s->x[i].kind == WEFT_NET_X_RECV)
            return s->x[i].peer;
    for (int i = st->x0; i < st->x0 + st->nx; i++)
        if (!s->x[i].msg.complete)
            return s->x[i].peer;
    return -1;
}
