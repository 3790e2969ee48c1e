/*
 * backend_net.c -- the native network backends (tcp, ib): a weft_backend
 * made of a transport (transport.h), the message layer (net_msg.c) and the
 * algorithms (algo_*.c). This file chooses the algorithm for each
 * operation, prepares its buffers, and runs the collectives in posting
 * order; it never touches a socket or a queue pair itself.
 *
 * Reductions run in the wide type (f32 for bf16/f16, i64 for integer AVG)
 * in a per-request work buffer: the ranks exchange wide partial results,
 * so bf16/f16 are summed in f32 and rounded once, in finish(). With
 * comm.deterministic every reduction is reduced in rank order
 * (algo_direct.c), bitwise equal to the shm and mpi backends.
 *
 * Choice (comm.algo): auto takes the binomial tree up to TREE_BYTES and the
 * ring above; ring or tree force one where the operation has both.
 * Reduce-scatter and allgather are always rings, alltoall pairwise,
 * barrier a dissemination.
 *
 * Queue: post() appends a collective; test() advances the head and then
 * the next, so collectives complete in posting order on every rank (which
 * is what lets the ranks agree on each message's ticket without talking).
 * Point-to-point messages bypass the queue and match by (peer, tag).
 */
#include "collectives/net.h"
#include "collectives/request_queue.h"
#include "collectives/reduce_simd.h"
#include "runtime/error.h"
#include "runtime/timer.h"

#include <stdlib.h>
#include <string.h>

#define TREE_BYTES (32u << 10) /* auto: tree up to here, ring above */
#define CHAIN_SEG (256u << 10) /* broadcast chain segment */

enum { ALGO_AUTO, ALGO_RING, ALGO_TREE };

typedef struct net_state {
    weft_net_link link;
    weft_net_sched sched;
    char *buf;    /* the running collective's work and scratch: one at a */
    size_t cap;   /* time, so one buffer per communicator, grown to the peak */
    int algo;
    weft_request_queue queue; /* posted collectives, in posting order */
    uint64_t tickets, completed;
    int started;
} net_state;

static int is_reduction(weft_op_kind k)
{
    return k == WEFT_OP_ALLREDUCE || k == WEFT_OP_REDUCE_SCATTER || k == WEFT_OP_REDUCE;
}

/* --- planning: buffers, algorithm, schedule ------------------------------ */

static int use_tree(const net_state *st, size_t bytes)
{
    return st->algo == ALGO_TREE || (st->algo == ALGO_AUTO && bytes <= TREE_BYTES);
}

static int scratch(net_state *st, weft_comm *c, size_t bytes)
{
    if (bytes <= st->cap)
        return 0;
    char *p = realloc(st->buf, bytes);
    if (!p)
        return weft_error(WEFT_ENOMEM, "%s: communicator '%s': %zu bytes of scratch: out of memory",
                          c->backend->name, c->name, bytes);
    st->buf = p;
    st->cap = bytes;
    return 0;
}

/* Work (count wide elements) and tmp (tmp_n wide elements) in scratch. */
static int stage_wide(net_state *st, weft_comm *c, weft_request *r, size_t tmp_n, weft_net_algo_args *a)
{
    const weft_op *op = &r->op;
    size_t wes = weft_dtype_size(r->wide), work_b = (op->count * wes + 63) / 64 * 64;
    WEFT_CHECK(scratch(st, c, work_b + tmp_n * wes + 64));
    a->work = st->buf;
    a->tmp = st->buf + work_b;
    weft_simd_widen(op->send, op->dtype, a->work, r->wide, op->count);
    return 0;
}

static int plan_allreduce(net_state *st, weft_comm *c, weft_request *r, weft_net_algo_args *a)
{
    const weft_op *op = &r->op;
    size_t piece = (op->count + (size_t)c->size - 1) / (size_t)c->size;
    int det = c->opts.deterministic, tree = !det && use_tree(st, op->count * a->es);
    size_t tmp_n = det ? piece * (size_t)c->size : tree ? op->count : piece;
    if (r->wide == op->dtype && !det && !tree) {
        /* reduce straight in the caller's buffer */
        WEFT_CHECK(scratch(st, c, tmp_n * a->es + 64));
        if (op->send != op->recv)
            memcpy(op->recv, op->send, op->count * a->es);
        a->work = op->recv;
        a->tmp = st->buf;
    } else {
        WEFT_CHECK(stage_wide(st, c, r, tmp_n, a));
    }
    if (tree) {
        weft_net_tree_reduce(&st->sched, a, 0);
        weft_net_tree_broadcast(&st->sched, a, 0);
    } else {
        if (det)
            weft_net_direct_reduce_scatter(&st->sched, a);
        else
            weft_net_ring_reduce_scatter(&st->sched, a);
        weft_net_ring_allgather(&st->sched, a);
    }
    return 0;
}

static int plan_reduce(net_state *st, weft_comm *c, weft_request *r, weft_net_algo_args *a)
{
    const weft_op *op = &r->op;
    size_t piece = (op->count + (size_t)c->size - 1) / (size_t)c->size;
    int det = c->opts.deterministic, tree = !det && use_tree(st, op->count * a->es);
    int scatter = op->kind == WEFT_OP_REDUCE_SCATTER;
    if (scatter)
        tree = 0; /* a reduce-scatter is a ring (or direct) whatever the size */
    WEFT_CHECK(stage_wide(st, c, r, det ? piece * (size_t)c->size : tree ? op->count : piece, a));
    if (tree) {
        weft_net_tree_reduce(&st->sched, a, op->peer);
        return 0;
    }
    if (det)
        weft_net_direct_reduce_scatter(&st->sched, a);
    else
        weft_net_ring_reduce_scatter(&st->sched, a);
    if (!scatter)
        weft_net_direct_gather(&st->sched, a, op->peer);
    return 0;
}

static int plan_move(net_state *st, weft_comm *c, weft_request *r, weft_net_algo_args *a)
{
    const weft_op *op = &r->op;
    size_t bytes = op->count * a->es;
    a->work = op->recv;
    switch (op->kind) {
    case WEFT_OP_ALLGATHER: {
        size_t off, len;
        weft_comm_chunk(op->count, c->size, c->rank, &off, &len);
        if (op->send != a->work + off * a->es)
            memmove(a->work + off * a->es, op->send, len * a->es);
        weft_net_ring_allgather(&st->sched, a);
        return 0;
    }
    case WEFT_OP_BROADCAST:
        if (op->peer == c->rank && op->send != op->recv)
            memcpy(op->recv, op->send, bytes);
        if (use_tree(st, bytes) || st->algo == ALGO_TREE)
            weft_net_tree_broadcast(&st->sched, a, op->peer);
        else
            weft_net_chain_broadcast(&st->sched, a, op->peer, CHAIN_SEG);
        return 0;
    case WEFT_OP_ALLTOALL: {
        const char *send = op->send;
        if (op->send == op->recv && bytes) { /* in place: stage what we send */
            WEFT_CHECK(scratch(st, c, bytes * (size_t)c->size));
            memcpy(st->buf, op->send, bytes * (size_t)c->size);
            send = st->buf;
        }
        weft_net_pairwise_alltoall(&st->sched, a, send);
        return 0;
    }
    default: /* barrier */
        weft_net_dissemination_barrier(&st->sched, c->size, c->rank);
        return 0;
    }
}

static int plan(net_state *st, weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    int red = is_reduction(op->kind);
    r->wide = red ? weft_reduce_wide_type(op->dtype, op->redop) : op->dtype;
    weft_net_algo_args a = {.n = c->size, .me = c->rank, .count = op->count, .es = weft_dtype_size(r->wide)};
    weft_net_sched_reset(&st->sched, r->wide, op->redop);
    int rc;
    if (op->kind == WEFT_OP_ALLREDUCE)
        rc = plan_allreduce(st, c, r, &a);
    else if (red)
        rc = plan_reduce(st, c, r, &a);
    else
        rc = plan_move(st, c, r, &a);
    r->res = a.work;
    r->finish = NULL;
    return rc;
}

/* --- the queue ----------------------------------------------------------- */

static int progress(net_state *st, weft_comm *c)
{
    for (weft_request *r; (r = weft_request_queue_front(&st->queue));) {
        if (!st->started) {
            WEFT_CHECK(plan(st, c, r));
            st->started = 1;
        }
        int rc = weft_net_sched_run(&st->sched, &st->link, (uint64_t)r->res_n);
        if (rc <= 0)
            return rc;
        if (is_reduction(r->op.kind))
            weft_reduce_finish_wide(r);
        weft_request_queue_pop(&st->queue);
        st->completed++;
        st->started = 0;
    }
    return weft_net_link_progress(&st->link);
}

static int net_reserve(weft_comm *c, int n)
{
    net_state *st = c->backend_state;
    return weft_request_queue_reserve(&st->queue, (size_t)(n > 0 ? n : 0), c);
}

/* --- point-to-point ------------------------------------------------------ */

static weft_net_msg *p2p_msg(weft_request *r) { return (weft_net_msg *)r->scratch; }

static int post_p2p(net_state *st, weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    WEFT_CHECK(weft_request_scratch(r, sizeof(weft_net_msg)));
    weft_net_msg *m = p2p_msg(r);
    size_t bytes = op->count * weft_dtype_size(op->dtype);
    if (op->kind == WEFT_OP_SEND) {
        weft_net_msg_send(&st->link, m, op->peer, (uint64_t)op->tag, op->send, bytes);
    } else {
        m->esize = weft_dtype_size(op->dtype);
        m->what = weft_dtype_name(op->dtype);
        weft_net_msg_recv(&st->link, m, op->peer, (uint64_t)op->tag, op->recv, bytes);
    }
    r->res_n = 0;
    (void)c;
    return weft_net_link_progress(&st->link);
}

/* --- the backend --------------------------------------------------------- */

static int net_post(weft_comm *c, weft_request *r)
{
    net_state *st = c->backend_state;
    if (r->op.kind == WEFT_OP_SEND || r->op.kind == WEFT_OP_RECV)
        return post_p2p(st, c, r);
    WEFT_CHECK(weft_request_queue_push(&st->queue, r, c));
    r->res_n = (size_t)st->tickets++;
    return progress(st, c);
}

static int net_test(weft_comm *c, weft_request *r, int *done)
{
    net_state *st = c->backend_state;
    WEFT_CHECK(progress(st, c));
    if (r->op.kind == WEFT_OP_SEND || r->op.kind == WEFT_OP_RECV) {
        if (!p2p_msg(r)->complete)
            WEFT_CHECK(weft_net_link_progress(&st->link));
        *done = p2p_msg(r)->complete;
    } else {
        *done = (uint64_t)r->res_n < st->completed;
    }
    return 0;
}

/* What a late request waits for, appended to the timeout message. */
static void net_describe(weft_comm *c, weft_request *r, char *buf, size_t n)
{
    net_state *st = c->backend_state;
    int peer = -1;
    const char *how = "";
    if (r->op.kind == WEFT_OP_SEND || r->op.kind == WEFT_OP_RECV) {
        peer = r->op.peer;
        how = r->op.kind == WEFT_OP_SEND ? "sending to" : "receiving from";
    } else if (st->queue.len && weft_request_queue_front(&st->queue) != r && (uint64_t)r->res_n >= st->completed) {
        snprintf(buf, n, "queued behind an earlier collective that has not completed");
        return;
    } else if (st->started) {
        peer = weft_net_sched_waiting_on(&st->sched);
        how = "step waits on";
    }
    if (peer < 0) {
        buf[0] = '\0';
        return;
    }
    int64_t last = st->link.peers[peer].last_rx_ns;
    size_t u;
    if (last)
        u = (size_t)snprintf(buf, n, "%s %s: nothing received from it for %.1f s (unreachable or stopped?)", how,
                             weft_net_peer_name(&st->link, peer), 1e-9 * (double)(weft_now_ns() - last));
    else
        u = (size_t)snprintf(buf, n, "%s %s: nothing ever received from it", how, weft_net_peer_name(&st->link, peer));
    char own[256] = "";
    if (st->link.tp->link_state)
        st->link.tp->link_state(st->link.tstate, peer, own, sizeof own);
    if (own[0] && u < n)
        snprintf(buf + u, n - u, "; %s", own);
}

static int parse_algo(weft_comm *c)
{
    const char *a = c->opts.algo;
    if (!*a || !strcmp(a, "auto"))
        return ALGO_AUTO;
    if (!strcmp(a, "ring"))
        return ALGO_RING;
    if (!strcmp(a, "tree"))
        return ALGO_TREE;
    return weft_error(WEFT_ECONFIG, "comm.algo = '%s' is not one of auto|ring|tree", a);
}

int weft_net_init(weft_comm *c, const weft_transport *tp)
{
    int algo = parse_algo(c);
    if (algo < 0)
        return algo;
    net_state *st = calloc(1, sizeof *st);
    if (!st)
        return weft_error(WEFT_ENOMEM, "%s: communicator '%s': out of memory", tp->name, c->name);
    st->algo = algo;
    int rc = weft_net_link_open(&st->link, c, tp);
    if (rc) {
        free(st);
        return rc;
    }
    c->backend_state = st;
    return 0;
}

void weft_net_fini(weft_comm *c)
{
    net_state *st = c->backend_state;
    if (!st)
        return;
    weft_net_link_close(&st->link);
    weft_net_sched_free(&st->sched);
    free(st->buf);
    weft_request_queue_free(&st->queue);
    free(st);
    c->backend_state = NULL;
}

static void net_request_release(weft_request *r) { free(r->scratch); }

/* --- tcp ------------------------------------------------------------------ */

static int tcp_can_connect(const weft_comm *c)
{
    char why[256];
    return weft_transport_tcp.can_connect(c, why, sizeof why);
}

static int tcp_init(weft_comm *c) { return weft_net_init(c, &weft_transport_tcp); }

const weft_backend weft_backend_tcp = {
    .name = "tcp",
    .can_connect = tcp_can_connect,
    .init = tcp_init,
    .fini = weft_net_fini,
    .post = net_post,
    .test = net_test,
    .request_release = net_request_release,
    .reserve = net_reserve,
    .describe = net_describe,
};

/* --- ib --------------------------------------------------------------------- */

static _Thread_local char ib_why[256];

static int ib_can_connect(const weft_comm *c)
{
    return weft_transport_ib.can_connect(c, ib_why, sizeof ib_why);
}

static const char *ib_why_not(const weft_comm *c)
{
    weft_transport_ib.can_connect(c, ib_why, sizeof ib_why);
    return ib_why;
}

static int ib_init(weft_comm *c) { return weft_net_init(c, &weft_transport_ib); }

const weft_backend weft_backend_ib = {
    .name = "ib",
    .can_connect = ib_can_connect,
    .init = ib_init,
    .fini = weft_net_fini,
    .post = net_post,
    .test = net_test,
    .request_release = net_request_release,
    .reserve = net_reserve,
    .describe = net_describe,
    .why_not = ib_why_not,
};
