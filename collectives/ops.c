/*
 * ops.c -- the public operations: argument validation, the optional
 * cross-rank argument check, flight recording, and hand-off to the backend.
 * Blocking forms are the async form followed by a wait.
 *
 * Validation happens here, once, so every backend can trust its weft_op:
 * buffers present where bytes move, roots and peers in range, buffers that
 * overlap only in the documented in-place positions, byte counts that fit.
 */
#include "collectives/backend.h"
#include "runtime/error.h"
#include "runtime/fault.h"

#include <stdint.h>
#include <string.h>

static int bad(const weft_comm *c, const weft_op *op, const char *fmt, const char *detail)
{
    return weft_error(WEFT_EINVAL, "%s on communicator '%s' (rank %d of %d): %s%s", weft_op_name(op->kind),
                      c->name, c->rank, c->size, fmt, detail ? detail : "");
}

static int overlaps(const void *a, size_t na, const void *b, size_t nb)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return na && nb && x < y + nb && y < x + na;
}

static int is_reduction(weft_op_kind k)
{
    return k == WEFT_OP_ALLREDUCE || k == WEFT_OP_REDUCE_SCATTER || k == WEFT_OP_REDUCE;
}

/* Bytes each buffer spans on this rank: *ns for send, *nr for recv. */
static void spans(const weft_comm *c, const weft_op *op, size_t es, size_t *ns, size_t *nr)
{
    size_t off, len, n = op->count * es;
    weft_comm_chunk(op->count, c->size, c->rank, &off, &len);
    int root = op->peer == c->rank;
    switch (op->kind) {
    case WEFT_OP_REDUCE_SCATTER: *ns = n; *nr = len * es; break;
    case WEFT_OP_ALLGATHER: *ns = len * es; *nr = n; break;
    case WEFT_OP_BROADCAST: *ns = root ? n : 0; *nr = n; break;
    case WEFT_OP_REDUCE: *ns = n; *nr = root ? n : 0; break;
    case WEFT_OP_ALLTOALL: *ns = *nr = n * (size_t)c->size; break;
    case WEFT_OP_SEND: *ns = n; *nr = 0; break;
    case WEFT_OP_RECV: *ns = 0; *nr = n; break;
    case WEFT_OP_BARRIER: *ns = *nr = 0; break;
    default: *ns = *nr = n; break;
    }
}

/* The only overlap allowed is the documented in-place position. */
static int inplace_ok(const weft_comm *c, const weft_op *op, size_t es)
{
    size_t off, len;
    weft_comm_chunk(op->count, c->size, c->rank, &off, &len);
    const char *s = op->send;
    char *r = op->recv;
    switch (op->kind) {
    case WEFT_OP_REDUCE_SCATTER: return r == s + off * es;
    case WEFT_OP_ALLGATHER: return s == r + off * es;
    default: return (const void *)s == (void *)r;
    }
}

static int validate_args(const weft_comm *c, const weft_op *op)
{
    if (!weft_dtype_valid((int)op->dtype))
        return bad(c, op, "unknown dtype", NULL);
    if (is_reduction(op->kind) && (unsigned)op->redop >= WEFT_NREDOPS)
        return bad(c, op, "unknown reduction op", NULL);
    size_t es = weft_dtype_size(op->dtype);
    size_t mul = op->kind == WEFT_OP_ALLTOALL ? (size_t)c->size : 1;
    if (op->count > SIZE_MAX / es / mul)
        return bad(c, op, "count overflows the address space", NULL);
    int needs_peer = op->kind == WEFT_OP_BROADCAST || op->kind == WEFT_OP_REDUCE ||
                     op->kind == WEFT_OP_SEND || op->kind == WEFT_OP_RECV;
    if (needs_peer && (op->peer < 0 || op->peer >= c->size))
        return bad(c, op, op->kind == WEFT_OP_SEND || op->kind == WEFT_OP_RECV ? "peer out of range"
                                                                               : "root out of range", NULL);
    if ((op->kind == WEFT_OP_SEND || op->kind == WEFT_OP_RECV) && (op->tag < 0 || op->tag > 32767))
        return bad(c, op, "tag must be in [0, 32767]", NULL);
    size_t ns, nr;
    spans(c, op, es, &ns, &nr);
    if (ns && !op->send)
        return bad(c, op, "send buffer is NULL", " but this rank sends data");
    if (nr && !op->recv)
        return bad(c, op, "receive buffer is NULL", " but this rank receives data");
    if (overlaps(op->send, ns, op->recv, nr) && !inplace_ok(c, op, es))
        return bad(c, op, "send and receive buffers overlap", " outside the in-place position (see comm.h)");
    return 0;
}

/* comm.check_args: every rank compares (op, dtype, redop, count, root) with
 * every other through a MAX allreduce of the values and their negations. */
static int check_across_ranks(weft_comm *c, const weft_op *op)
{
    static const char *const field[] = {"operation", "dtype", "reduction op", "count", "root"};
    int64_t v[10] = {op->kind, op->dtype, is_reduction(op->kind) ? op->redop : 0, (int64_t)op->count,
                     op->kind == WEFT_OP_BROADCAST || op->kind == WEFT_OP_REDUCE ? op->peer : 0};
    int64_t mine[5];
    for (int i = 0; i < 5; i++)
        v[5 + i] = -(mine[i] = v[i]);
    if (MPI_Allreduce(MPI_IN_PLACE, v, 10, MPI_INT64_T, MPI_MAX, c->mpi) != MPI_SUCCESS)
        return weft_comm_fail(c, WEFT_ECOMM, "argument check of %s failed in MPI", weft_op_name(op->kind));
    for (int i = 0; i < 5; i++) {
        if (v[i] != -v[5 + i])
            return weft_error(WEFT_EINVAL,
                              "%s on communicator '%s': ranks disagree on the %s (from %lld to %lld; "
                              "rank %d passed %lld): every rank must call collectives in the same "
                              "order with the same arguments",
                              weft_op_name(op->kind), c->name, field[i], (long long)-v[5 + i],
                              (long long)v[i], c->rank, (long long)mine[i]);
    }
    return 0;
}

static int start(weft_comm *c, const weft_op *op, weft_request **out)
{
    if (!c)
        return weft_error(WEFT_EINVAL, "%s: communicator is NULL", weft_op_name(op->kind));
    if (!out)
        return weft_error(WEFT_EINVAL, "%s: request pointer is NULL", weft_op_name(op->kind));
    if (c->failed)
        return weft_error(WEFT_ESTATE, "%s on communicator '%s' refused: it failed earlier: %s",
                          weft_op_name(op->kind), c->name, c->failure);
    WEFT_CHECK(validate_args(c, op));
    int p2p = op->kind == WEFT_OP_SEND || op->kind == WEFT_OP_RECV;
    if (c->opts.check_args && !p2p)
        WEFT_CHECK(check_across_ranks(c, op));
    weft_request *r = weft_request_get(c);
    if (!r)
        return weft_error(WEFT_ENOMEM, "communicator '%s': no memory for a request", c->name);
    r->op = *op;
    r->seq = weft_flight_begin(c->flight, op->kind, (int)op->dtype,
                               is_reduction(op->kind) ? (int)op->redop : -1, op->count, op->peer);
    int rc = c->backend->post(c, r);
    if (rc < 0) {
        weft_flight_end(c->flight, r->seq, WEFT_FLIGHT_FAILED);
        weft_request_put(r);
        if (rc != WEFT_EINVAL && rc != WEFT_EUNSUPPORTED && rc != WEFT_ENOMEM)
            weft_comm_fail(c, rc, "posting %s #%llu failed: %s", weft_op_name(op->kind),
                           (unsigned long long)r->seq, weft_last_error());
        return rc;
    }
    weft_fault_at(WEFT_FAULT_OP_POSTED, -1); /* kill_op, stall_op: the peers are in it, or about to be */
    *out = r;
    return 0;
}

static int run(weft_comm *c, const weft_op *op)
{
    weft_request *r;
    WEFT_CHECK(start(c, op, &r));
    return weft_request_wait(r);
}

#define OP(kind_, send_, recv_, count_, dt_, redop_, peer_, tag_)                                  \
    (&(weft_op){.kind = (kind_), .send = (send_), .recv = (recv_), .count = (count_),             \
                .dtype = (dt_), .redop = (redop_), .peer = (peer_), .tag = (tag_)})

int weft_comm_iallreduce(weft_comm *c, const void *send, void *recv, size_t count, weft_dtype dt,
                         weft_redop op, weft_request **req)
{
    return start(c, OP(WEFT_OP_ALLREDUCE, send, recv, count, dt, op, -1, 0), req);
}

int weft_comm_ireduce_scatter(weft_comm *c, const void *send, void *recv, size_t count,
                              weft_dtype dt, weft_redop op, weft_request **req)
{
    return start(c, OP(WEFT_OP_REDUCE_SCATTER, send, recv, count, dt, op, -1, 0), req);
}

int weft_comm_iallgather(weft_comm *c, const void *send, void *recv, size_t count, weft_dtype dt,
                         weft_request **req)
{
    return start(c, OP(WEFT_OP_ALLGATHER, send, recv, count, dt, WEFT_SUM, -1, 0), req);
}

int weft_comm_ibroadcast(weft_comm *c, const void *send, void *recv, size_t count, weft_dtype dt,
                         int root, weft_request **req)
{
    return start(c, OP(WEFT_OP_BROADCAST, send, recv, count, dt, WEFT_SUM, root, 0), req);
}

int weft_comm_ireduce(weft_comm *c, const void *send, void *recv, size_t count, weft_dtype dt,
                      weft_redop op, int root, weft_request **req)
{
    return start(c, OP(WEFT_OP_REDUCE, send, recv, count, dt, op, root, 0), req);
}

int weft_comm_ialltoall(weft_comm *c, const void *send, void *recv, size_t count, weft_dtype dt,
                        weft_request **req)
{
    return start(c, OP(WEFT_OP_ALLTOALL, send, recv, count, dt, WEFT_SUM, -1, 0), req);
}

int weft_comm_isend(weft_comm *c, const void *buf, size_t count, weft_dtype dt, int peer, int tag,
                    weft_request **req)
{
    return start(c, OP(WEFT_OP_SEND, buf, NULL, count, dt, WEFT_SUM, peer, tag), req);
}

int weft_comm_irecv(weft_comm *c, void *buf, size_t count, weft_dtype dt, int peer, int tag,
                    weft_request **req)
{
    return start(c, OP(WEFT_OP_RECV, NULL, buf, count, dt, WEFT_SUM, peer, tag), req);
}

int weft_comm_ibarrier(weft_comm *c, weft_request **req)
{
    return start(c, OP(WEFT_OP_BARRIER, NULL, NULL, 0, WEFT_U8, WEFT_SUM, -1, 0), req);
}

int weft_comm_allreduce(weft_comm *c, const void *send, void *recv, size_t count, weft_dtype dt,
                        weft_redop op)
{
    return run(c, OP(WEFT_OP_ALLREDUCE, send, recv, count, dt, op, -1, 0));
}

int weft_comm_reduce_scatter(weft_comm *c, const void *send, void *recv, size_t count,
                             weft_dtype dt, weft_redop op)
{
    return run(c, OP(WEFT_OP_REDUCE_SCATTER, send, recv, count, dt, op, -1, 0));
}

int weft_comm_allgather(weft_comm *c, const void *send, void *recv, size_t count, weft_dtype dt)
{
    return run(c, OP(WEFT_OP_ALLGATHER, send, recv, count, dt, WEFT_SUM, -1, 0));
}

int weft_comm_broadcast(weft_comm *c, const void *send, void *recv, size_t count, weft_dtype dt,
                        int root)
{
    return run(c, OP(WEFT_OP_BROADCAST, send, recv, count, dt, WEFT_SUM, root, 0));
}

int weft_comm_reduce(weft_comm *c, const void *send, void *recv, size_t count, weft_dtype dt,
                     weft_redop op, int root)
{
    return run(c, OP(WEFT_OP_REDUCE, send, recv, count, dt, op, root, 0));
}

int weft_comm_alltoall(weft_comm *c, const void *send, void *recv, size_t count, weft_dtype dt)
{
    return run(c, OP(WEFT_OP_ALLTOALL, send, recv, count, dt, WEFT_SUM, -1, 0));
}

int weft_comm_send(weft_comm *c, const void *buf, size_t count, weft_dtype dt, int peer, int tag)
{
    return run(c, OP(WEFT_OP_SEND, buf, NULL, count, dt, WEFT_SUM, peer, tag));
}

int weft_comm_recv(weft_comm *c, void *buf, size_t count, weft_dtype dt, int peer, int tag)
{
    return run(c, OP(WEFT_OP_RECV, NULL, buf, count, dt, WEFT_SUM, peer, tag));
}

int weft_comm_barrier(weft_comm *c)
{
    return run(c, OP(WEFT_OP_BARRIER, NULL, NULL, 0, WEFT_U8, WEFT_SUM, -1, 0));
}
