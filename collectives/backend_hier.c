/*
 * backend_hier.c -- the hierarchical backend: shm among the ranks of each
 * node, a network backend (comm.hier_net: tcp, mpi or ib) among one leader
 * per node, composed from three inner communicators made at init:
 *   node     the ranks sharing this node (shm)
 *   leaders  local rank 0 of every node (the network backend)
 *   flat     every rank (the network backend): alltoall, send/recv,
 *            allgather, and reductions under comm.deterministic
 * so only one rank per node puts reduction traffic on the network.
 *
 * A hier operation is a sequence of phases, each one inner operation
 * posted and tested without blocking:
 *   allreduce / reduce_scatter / reduce  (wide type, SUM/MAX/MIN)
 *     1 node reduce to the leader  2 leaders allreduce  3 node broadcast
 *     then finish(): AVG divides by the group size, the result narrows
 *     (reduce_scatter keeps this rank's piece, reduce only the root's copy)
 *   broadcast   1 node broadcast on the root's node  2 leaders broadcast
 *               from the root's node  3 node broadcast on the other nodes
 *   barrier     node barrier, leaders barrier, node barrier
 *   allgather, alltoall, send/recv: one operation on flat
 * Requests run in posting order (the queue head advances, the rest wait):
 * a leader's and a non-leader's node phases then always line up.
 */
#include "collectives/backend.h"
#include "collectives/request_queue.h"
#include "collectives/reduce_simd.h"
#include "runtime/error.h"

#include <stdlib.h>
#include <string.h>

typedef struct hier_state {
    weft_comm *node, *leaders, *flat;
    int *node_of, *local_of; /* per rank of the group: node index, rank in its node */
    int *leader_rank;        /* per node: its leader's rank in the leaders comm */
    int my_node;
    weft_request_queue queue; /* posted collectives, in posting order */
    uint64_t tickets, completed;
    int phase;               /* of the queue head */
    weft_request *inner;     /* the inner operation in flight */
    weft_comm *inner_comm;
    char *buf;               /* the running reduction's wide copy (one at a */
    size_t cap;              /* time: one buffer, grown to the peak) */
} hier_state;

static int is_reduction(weft_op_kind k)
{
    return k == WEFT_OP_ALLREDUCE || k == WEFT_OP_REDUCE_SCATTER || k == WEFT_OP_REDUCE;
}

static int is_leader(const hier_state *h) { return weft_comm_rank(h->node) == 0; }

/* --- phases ---------------------------------------------------------------- */

static weft_redop inner_op(weft_redop op) { return op == WEFT_AVG ? WEFT_SUM : op; }

/* Post phase k of r; *posted = 0 when this rank sits the phase out, and
 * *last = 1 after the final phase. */
static int post_reduction(hier_state *h, weft_request *r, int k, weft_request **out, int *last)
{
    const weft_op *op = &r->op;
    weft_redop rop = inner_op(op->redop);
    *last = k == 2;
    switch (k) {
    case 0:
        return weft_comm_ireduce(h->node, r->res, r->res, op->count, r->wide, rop, 0, out);
    case 1:
        return is_leader(h) ? weft_comm_iallreduce(h->leaders, r->res, r->res, op->count, r->wide, rop, out) : 0;
    default:
        return weft_comm_ibroadcast(h->node, r->res, r->res, op->count, r->wide, 0, out);
    }
}

static int post_broadcast(hier_state *h, weft_request *r, int k, weft_request **out, int *last)
{
    const weft_op *op = &r->op;
    int rnode = h->node_of[op->peer], mine = rnode == h->my_node;
    *last = k == 2;
    switch (k) {
    case 0:
        return mine ? weft_comm_ibroadcast(h->node, op->recv, op->recv, op->count, op->dtype, h->local_of[op->peer], out)
                    : 0;
    case 1:
        return is_leader(h) && h->leaders
                   ? weft_comm_ibroadcast(h->leaders, op->recv, op->recv, op->count, op->dtype, h->leader_rank[rnode], out)
                   : 0;
    default:
        return !mine ? weft_comm_ibroadcast(h->node, op->recv, op->recv, op->count, op->dtype, 0, out) : 0;
    }
}

static int post_barrier(hier_state *h, int k, weft_request **out, int *last)
{
    *last = k == 2;
    if (k == 1)
        return is_leader(h) ? weft_comm_ibarrier(h->leaders, out) : 0;
    return weft_comm_ibarrier(h->node, out);
}

static int post_flat(hier_state *h, weft_request *r, weft_request **out, int *last)
{
    const weft_op *op = &r->op;
    *last = 1;
    switch (op->kind) {
    case WEFT_OP_ALLGATHER: return weft_comm_iallgather(h->flat, op->send, op->recv, op->count, op->dtype, out);
    case WEFT_OP_ALLTOALL: return weft_comm_ialltoall(h->flat, op->send, op->recv, op->count, op->dtype, out);
    case WEFT_OP_ALLREDUCE: return weft_comm_iallreduce(h->flat, op->send, op->recv, op->count, op->dtype, op->redop, out);
    case WEFT_OP_REDUCE_SCATTER:
        return weft_comm_ireduce_scatter(h->flat, op->send, op->recv, op->count, op->dtype, op->redop, out);
    default: return weft_comm_ireduce(h->flat, op->send, op->recv, op->count, op->dtype, op->redop, op->peer, out);
    }
}

static int uses_flat(const weft_comm *c, const weft_op *op)
{
    return op->kind == WEFT_OP_ALLGATHER || op->kind == WEFT_OP_ALLTOALL ||
           (c->opts.deterministic && is_reduction(op->kind));
}

static int post_phase(hier_state *h, weft_comm *c, weft_request *r, int k, int *last)
{
    weft_request *in = NULL;
    int rc;
    if (uses_flat(c, &r->op))
        rc = post_flat(h, r, &in, last);
    else if (is_reduction(r->op.kind))
        rc = post_reduction(h, r, k, &in, last);
    else if (r->op.kind == WEFT_OP_BROADCAST)
        rc = post_broadcast(h, r, k, &in, last);
    else
        rc = post_barrier(h, k, &in, last);
    h->inner = in;
    h->inner_comm = !in ? NULL : k == 1 && !uses_flat(c, &r->op) ? h->leaders
                               : uses_flat(c, &r->op)            ? h->flat
                                                                 : h->node;
    return rc;
}

/* Reductions start by widening the input into the work buffer. */
static int start(hier_state *h, weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    r->finish = NULL;
    if (!is_reduction(op->kind) || uses_flat(c, op)) {
        if (op->kind == WEFT_OP_BROADCAST && op->peer == c->rank && op->send != op->recv)
            memcpy(op->recv, op->send, op->count * weft_dtype_size(op->dtype));
        return 0;
    }
    r->wide = weft_reduce_wide_type(op->dtype, op->redop);
    size_t bytes = op->count * weft_dtype_size(r->wide) + 64;
    if (bytes > h->cap) {
        char *p = realloc(h->buf, bytes);
        if (!p)
            return weft_error(WEFT_ENOMEM, "hier: communicator '%s': %zu bytes: out of memory", c->name, bytes);
        h->buf = p;
        h->cap = bytes;
    }
    r->res = h->buf;
    weft_simd_widen(op->send, op->dtype, r->res, r->wide, op->count);
    return 0;
}

/* Advance the head: 1 done, 0 waiting, <0 error. */
static int advance(hier_state *h, weft_comm *c, weft_request *r)
{
    for (;;) {
        if (h->inner) {
            int done = 0;
            WEFT_CHECK(weft_request_test(h->inner, &done));
            if (!done)
                return 0;
            h->inner = NULL;
            h->phase++;
            continue;
        }
        if (h->phase < 0) {
            WEFT_CHECK(start(h, c, r));
            h->phase = 0;
        }
        if (h->phase >= 3 || (h->phase >= 1 && uses_flat(c, &r->op)))
            break;
        int last = 0;
        WEFT_CHECK(post_phase(h, c, r, h->phase, &last));
        if (!h->inner) { /* this rank sits the phase out */
            h->phase++;
            if (last)
                break;
        }
    }
    if (is_reduction(r->op.kind) && !uses_flat(c, &r->op))
        weft_reduce_finish_wide(r); /* now: the buffer is the next reduction's */
    return 1;
}

static int progress(hier_state *h, weft_comm *c)
{
    for (weft_request *r; (r = weft_request_queue_front(&h->queue));) {
        int rc = advance(h, c, r);
        if (rc <= 0)
            return rc;
        weft_request_queue_pop(&h->queue);
        h->completed++;
        h->phase = -1;
    }
    return 0;
}

/* --- the backend ------------------------------------------------------------ */

static int hier_post(weft_comm *c, weft_request *r)
{
    hier_state *h = c->backend_state;
    const weft_op *op = &r->op;
    if (op->kind == WEFT_OP_SEND || op->kind == WEFT_OP_RECV) {
        weft_request *in;
        int rc = op->kind == WEFT_OP_SEND ? weft_comm_isend(h->flat, op->send, op->count, op->dtype, op->peer, op->tag, &in)
                                          : weft_comm_irecv(h->flat, op->recv, op->count, op->dtype, op->peer, op->tag, &in);
        r->res = in;
        return rc;
    }
    WEFT_CHECK(weft_request_queue_push(&h->queue, r, c));
    r->res_n = (size_t)h->tickets++;
    return progress(h, c);
}

static int hier_test(weft_comm *c, weft_request *r, int *done)
{
    hier_state *h = c->backend_state;
    if (r->op.kind == WEFT_OP_SEND || r->op.kind == WEFT_OP_RECV) {
        WEFT_CHECK(progress(h, c));
        return weft_request_test(r->res, done);
    }
    WEFT_CHECK(progress(h, c));
    *done = (uint64_t)r->res_n < h->completed;
    return 0;
}

static int hier_reserve(weft_comm *c, int n)
{
    hier_state *h = c->backend_state;
    WEFT_CHECK(weft_request_queue_reserve(&h->queue, (size_t)(n > 0 ? n : 0), c));
    WEFT_CHECK(weft_comm_reserve(h->node, n));
    WEFT_CHECK(weft_comm_reserve(h->flat, n));
    return h->leaders ? weft_comm_reserve(h->leaders, n) : 0;
}

static void hier_describe(weft_comm *c, weft_request *r, char *buf, size_t n)
{
    hier_state *h = c->backend_state;
    weft_request *in = r->op.kind == WEFT_OP_SEND || r->op.kind == WEFT_OP_RECV ? r->res : h->inner;
    weft_comm *ic = r->op.kind == WEFT_OP_SEND || r->op.kind == WEFT_OP_RECV ? h->flat : h->inner_comm;
    buf[0] = '\0';
    if (!in || !ic || !ic->backend->describe)
        return;
    char inner[448];
    ic->backend->describe(ic, in, inner, sizeof inner);
    if (inner[0])
        snprintf(buf, n, "in '%s' (%s): %s", ic->name, ic->backend->name, inner);
}

/* The placement: which node each rank is on and its rank there. */
static int placement(hier_state *h, weft_comm *c)
{
    int me[2] = {0, weft_comm_rank(h->node)}, nn = 0;
    if (is_leader(h))
        me[0] = weft_comm_rank(h->leaders);
    MPI_Bcast(&me[0], 1, MPI_INT, 0, h->node->mpi); /* my node's index = its leader's rank */
    h->my_node = me[0];
    int *all = malloc(2 * sizeof(int) * (size_t)c->size);
    h->node_of = malloc(sizeof(int) * (size_t)c->size);
    h->local_of = malloc(sizeof(int) * (size_t)c->size);
    h->leader_rank = malloc(sizeof(int) * (size_t)c->size);
    if (!all || !h->node_of || !h->local_of || !h->leader_rank) {
        free(all);
        return weft_error(WEFT_ENOMEM, "hier: out of memory");
    }
    MPI_Allgather(me, 2, MPI_INT, all, 2, MPI_INT, c->mpi);
    for (int j = 0; j < c->size; j++) {
        h->node_of[j] = all[2 * j];
        h->local_of[j] = all[2 * j + 1];
        h->leader_rank[j] = j; /* node index is the leader's rank among leaders */
        nn = all[2 * j] + 1 > nn ? all[2 * j] + 1 : nn;
    }
    free(all);
    return 0;
}

static const char *net_backend(const weft_comm *c)
{
    return c->opts.hier_net[0] ? c->opts.hier_net : "tcp";
}

static int make_inner(weft_comm *c, hier_state *h)
{
    MPI_Comm node, leaders;
    /* WEFT_HIER_RANKS_PER_NODE=k (tests): pretend nodes of k consecutive
     * ranks, so one machine exercises every multi-node path. */
    const char *fake = getenv("WEFT_HIER_RANKS_PER_NODE");
    int k = fake ? atoi(fake) : 0, rc0 = k > 0 ? MPI_Comm_split(c->mpi, c->rank / k, c->rank, &node)
                                               : MPI_Comm_split_type(c->mpi, MPI_COMM_TYPE_SHARED, c->rank,
                                                                     MPI_INFO_NULL, &node);
    if (rc0 != MPI_SUCCESS)
        return weft_error(WEFT_ECOMM, "hier: communicator '%s': splitting by node failed", c->name);
    int local;
    MPI_Comm_rank(node, &local);
    MPI_Comm_split(c->mpi, local == 0 ? 0 : MPI_UNDEFINED, c->rank, &leaders);
    int rc = weft_comm_sub(c, node, "node", "shm", &h->node);
    int ok = rc == 0, all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, c->mpi);
    if (all && leaders != MPI_COMM_NULL)
        rc = weft_comm_sub(c, leaders, "leaders", net_backend(c), &h->leaders);
    ok = rc == 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, c->mpi);
    if (all)
        rc = weft_comm_sub(c, c->mpi, "flat", net_backend(c), &h->flat);
    ok = rc == 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, c->mpi);
    MPI_Comm_free(&node);
    if (leaders != MPI_COMM_NULL)
        MPI_Comm_free(&leaders);
    if (!all)
        return rc ? rc : weft_error(WEFT_ECOMM, "hier: communicator '%s': another rank could not build its "
                                    "inner communicators", c->name);
    return placement(h, c);
}

static void hier_fini(weft_comm *c)
{
    hier_state *h = c->backend_state;
    if (!h)
        return;
    weft_comm_free(h->flat);
    weft_comm_free(h->leaders);
    weft_comm_free(h->node);
    free(h->node_of);
    free(h->local_of);
    free(h->leader_rank);
    free(h->buf);
    weft_request_queue_free(&h->queue);
    free(h);
    c->backend_state = NULL;
}

static int hier_init(weft_comm *c)
{
    hier_state *h = calloc(1, sizeof *h);
    if (!h)
        return weft_error(WEFT_ENOMEM, "hier: out of memory");
    h->phase = -1;
    c->backend_state = h;
    int rc = make_inner(c, h);
    if (rc)
        hier_fini(c);
    return rc;
}

/* hier serves any group; auto takes it for groups spanning nodes. */
static int hier_can_connect(const weft_comm *c)
{
    if (strcmp(c->opts.backend, "hier") == 0)
        return 1;
    MPI_Comm node;
    if (MPI_Comm_split_type(c->mpi, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) != MPI_SUCCESS)
        return 0;
    int n = 0;
    MPI_Comm_size(node, &n);
    MPI_Comm_free(&node);
    int split = n < c->size, any = 0;
    MPI_Allreduce(&split, &any, 1, MPI_INT, MPI_MAX, c->mpi);
    return any;
}

static void hier_request_release(weft_request *r) { free(r->scratch); }

const weft_backend weft_backend_hier = {
    .name = "hier",
    .can_connect = hier_can_connect,
    .init = hier_init,
    .fini = hier_fini,
    .post = hier_post,
    .test = hier_test,
    .request_release = hier_request_release,
    .reserve = hier_reserve,
    .describe = hier_describe,
};
