/*
 * backend_mpi.c -- the MPI backend: every operation through MPI's
 * non-blocking calls. It is the portable reference every other backend is
 * tested against, so it favours obvious correctness over speed.
 *
 * MPI has no bf16/f16 and no AVG: reductions run in the wide type (see
 * reduce.c) in a per-request scratch buffer, and finish() divides for AVG
 * and narrows into the caller's buffer once the operation has completed.
 */
#include "collectives/backend.h"
#include "collectives/reduce_simd.h"
#include "runtime/error.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static MPI_Datatype mpi_type(weft_dtype dt)
{
    switch (dt) {
    case WEFT_F32: return MPI_FLOAT;
    case WEFT_F64: return MPI_DOUBLE;
    case WEFT_I32: return MPI_INT32_T;
    case WEFT_I64: return MPI_INT64_T;
    case WEFT_U8: return MPI_UINT8_T;
    default: return MPI_UINT16_T; /* bf16/f16: moved as bits, never reduced by MPI */
    }
}

static MPI_Op mpi_op(weft_redop op)
{
    return op == WEFT_MAX ? MPI_MAX : op == WEFT_MIN ? MPI_MIN : MPI_SUM;
}

static int mpi_err(weft_comm *c, int mpirc, const char *call)
{
    char s[MPI_MAX_ERROR_STRING];
    int n = 0;
    MPI_Error_string(mpirc, s, &n);
    return weft_error(WEFT_ECOMM, "communicator '%s': %s failed: %s", c->name, call, s);
}

static int fits_int(weft_comm *c, size_t n)
{
    if (n <= INT_MAX)
        return 0;
    return weft_error(WEFT_EUNSUPPORTED,
                      "communicator '%s': %zu elements exceed the MPI backend's limit of %d per "
                      "call; split the buffer", c->name, n, INT_MAX);
}

/* Reductions finish here: AVG divides, widened results narrow into dst. */
static void finish_reduction(weft_request *r)
{
    const weft_op *op = &r->op;
    if (op->redop == WEFT_AVG)
        weft_reduce_avg_inplace(r->res, r->res_n, r->wide, r->comm->size);
    if (op->kind == WEFT_OP_REDUCE_SCATTER) {
        size_t off, len;
        weft_comm_chunk(op->count, r->comm->size, r->comm->rank, &off, &len);
        weft_reduce_narrow(r->res, r->wide, op->recv, op->dtype, len);
    } else {
        weft_reduce_narrow(r->res, r->wide, op->recv, op->dtype, r->res_n);
    }
}

/* Copy (widening if needed) n elements of src into scratch; res = scratch. */
static int stage(weft_request *r, const void *src, size_t n)
{
    WEFT_CHECK(weft_request_scratch(r, n * weft_dtype_size(r->wide) + 1));
    weft_reduce_widen(src, r->op.dtype, r->scratch, r->wide, n);
    r->res = r->scratch;
    return 0;
}

static int post_allreduce(weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    WEFT_CHECK(fits_int(c, op->count));
    r->res_n = op->count;
    int inplace = op->send == op->recv;
    const void *sbuf = MPI_IN_PLACE;
    if (r->wide != op->dtype)
        WEFT_CHECK(stage(r, op->send, op->count));
    else if (!inplace)
        sbuf = op->send;
    if (r->wide == op->dtype)
        r->res = op->recv;
    r->finish = finish_reduction;
    int rc = MPI_Iallreduce(sbuf, r->res, (int)op->count, mpi_type(r->wide), mpi_op(op->redop), c->mpi,
                            &r->mpi_req);
    return rc == MPI_SUCCESS ? 0 : mpi_err(c, rc, "MPI_Iallreduce");
}

static int set_counts(weft_comm *c, weft_request *r)
{
    if (!r->counts) {
        r->counts = malloc((size_t)c->size * sizeof(int));
        r->displs = malloc((size_t)c->size * sizeof(int));
        if (!r->counts || !r->displs)
            return weft_error(WEFT_ENOMEM, "communicator '%s': out of memory", c->name);
    }
    WEFT_CHECK(fits_int(c, r->op.count));
    for (int i = 0; i < c->size; i++) {
        size_t off, len;
        weft_comm_chunk(r->op.count, c->size, i, &off, &len);
        r->counts[i] = (int)len;
        r->displs[i] = (int)off;
    }
    return 0;
}

static int post_reduce_scatter(weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    WEFT_CHECK(set_counts(c, r));
    /* MPI's in-place reduce-scatter reads the whole input from recvbuf and
     * leaves this rank's block at its start; res points there and finish()
     * moves it to the caller's position. Widened or not, the input is first
     * staged so the caller's send buffer is never written. */
    WEFT_CHECK(stage(r, op->send, op->count));
    r->res_n = (size_t)r->counts[c->rank];
    r->finish = finish_reduction;
    int rc = MPI_Ireduce_scatter(MPI_IN_PLACE, r->res, r->counts, mpi_type(r->wide), mpi_op(op->redop),
                                 c->mpi, &r->mpi_req);
    return rc == MPI_SUCCESS ? 0 : mpi_err(c, rc, "MPI_Ireduce_scatter");
}

static int post_reduce(weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    WEFT_CHECK(fits_int(c, op->count));
    int root = op->peer == c->rank;
    WEFT_CHECK(stage(r, op->send, op->count));
    r->res_n = op->count;
    r->finish = root ? finish_reduction : NULL;
    int rc = MPI_Ireduce(root ? MPI_IN_PLACE : r->res, root ? r->res : NULL, (int)op->count,
                         mpi_type(r->wide), mpi_op(op->redop), op->peer, c->mpi, &r->mpi_req);
    return rc == MPI_SUCCESS ? 0 : mpi_err(c, rc, "MPI_Ireduce");
}

static int post_allgather(weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    WEFT_CHECK(set_counts(c, r));
    MPI_Datatype t = mpi_type(op->dtype);
    size_t es = weft_dtype_size(op->dtype);
    int inplace = (const char *)op->send == (char *)op->recv + (size_t)r->displs[c->rank] * es;
    int rc = MPI_Iallgatherv(inplace ? MPI_IN_PLACE : op->send, r->counts[c->rank], t, op->recv, r->counts,
                             r->displs, t, c->mpi, &r->mpi_req);
    return rc == MPI_SUCCESS ? 0 : mpi_err(c, rc, "MPI_Iallgatherv");
}

static int post_broadcast(weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    WEFT_CHECK(fits_int(c, op->count));
    if (op->peer == c->rank && op->send != op->recv && op->count)
        memcpy(op->recv, op->send, op->count * weft_dtype_size(op->dtype));
    int rc = MPI_Ibcast(op->recv, (int)op->count, mpi_type(op->dtype), op->peer, c->mpi, &r->mpi_req);
    return rc == MPI_SUCCESS ? 0 : mpi_err(c, rc, "MPI_Ibcast");
}

static int post_alltoall(weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    WEFT_CHECK(fits_int(c, op->count * (size_t)c->size));
    const void *sbuf = op->send;
    size_t bytes = op->count * (size_t)c->size * weft_dtype_size(op->dtype);
    if (op->send == op->recv && bytes) {
        /* Non-blocking in-place alltoall is not portable: stage a copy. */
        WEFT_CHECK(weft_request_scratch(r, bytes));
        memcpy(r->scratch, op->send, bytes);
        sbuf = r->scratch;
    }
    MPI_Datatype t = mpi_type(op->dtype);
    int rc = MPI_Ialltoall(sbuf, (int)op->count, t, op->recv, (int)op->count, t, c->mpi, &r->mpi_req);
    return rc == MPI_SUCCESS ? 0 : mpi_err(c, rc, "MPI_Ialltoall");
}

static int post_p2p(weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    WEFT_CHECK(fits_int(c, op->count));
    MPI_Datatype t = mpi_type(op->dtype);
    int rc = op->kind == WEFT_OP_SEND
                 ? MPI_Isend(op->send, (int)op->count, t, op->peer, op->tag, c->mpi, &r->mpi_req)
                 : MPI_Irecv(op->recv, (int)op->count, t, op->peer, op->tag, c->mpi, &r->mpi_req);
    return rc == MPI_SUCCESS ? 0 : mpi_err(c, rc, op->kind == WEFT_OP_SEND ? "MPI_Isend" : "MPI_Irecv");
}

/* comm.deterministic: every rank receives every contribution (all of them,
 * or at the root for reduce) and combines them itself in rank order,
 * x0 + x1 + ... in the wide type, with the same element-wise kernels the
 * shm backend uses, so a reduction's bits do not depend on the backend, on
 * MPI's algorithm or on chunking. It moves n times the data of a reduction:
 * a reproducibility mode, not the fast path. */
static void finish_ordered(weft_request *r)
{
    const weft_op *op = &r->op;
    int n = r->comm->size;
    size_t off = 0, len = op->count, wes = weft_dtype_size(r->wide);
    if (op->kind == WEFT_OP_REDUCE_SCATTER)
        weft_comm_chunk(op->count, n, r->comm->rank, &off, &len);
    char *g = r->scratch; /* n blocks of count wide elements, in rank order */
    char *acc = g + off * wes;
#define BLOCK(j) (g + ((size_t)(j) * op->count + off) * wes)
    if (n > 1)
        weft_simd_combine(r->wide, op->redop, acc, BLOCK(0), BLOCK(1), len);
    for (int j = 2; j < n; j++)
        weft_simd_accumulate(r->wide, op->redop, acc, BLOCK(j), len);
#undef BLOCK
    if (op->redop == WEFT_AVG)
        weft_reduce_avg_inplace(acc, len, r->wide, n);
    weft_simd_narrow(acc, r->wide, op->recv, op->dtype, len);
}

static int post_ordered(weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    int n = c->size, cnt = (int)op->count;
    WEFT_CHECK(fits_int(c, op->count * (size_t)n));
    r->wide = weft_reduce_wide_type(op->dtype, op->redop);
    size_t wes = weft_dtype_size(r->wide);
    WEFT_CHECK(weft_request_scratch(r, ((size_t)n + 1) * op->count * wes + 1));
    char *mine = (char *)r->scratch + (size_t)n * op->count * wes;
    weft_simd_widen(op->send, op->dtype, mine, r->wide, op->count);
    MPI_Datatype t = mpi_type(r->wide);
    int rc;
    if (op->kind == WEFT_OP_REDUCE) {
        r->finish = op->peer == c->rank ? finish_ordered : NULL;
        rc = MPI_Igather(mine, cnt, t, r->scratch, cnt, t, op->peer, c->mpi, &r->mpi_req);
    } else {
        r->finish = finish_ordered;
        rc = MPI_Iallgather(mine, cnt, t, r->scratch, cnt, t, c->mpi, &r->mpi_req);
    }
    return rc == MPI_SUCCESS ? 0 : mpi_err(c, rc, op->kind == WEFT_OP_REDUCE ? "MPI_Igather" : "MPI_Iallgather");
}

static int is_reduction(weft_op_kind k)
{
    return k == WEFT_OP_ALLREDUCE || k == WEFT_OP_REDUCE_SCATTER || k == WEFT_OP_REDUCE;
}

/* Open MPI 4.1's AVX reduction component saturates MPI_UINT8_T sums at 255
 * instead of wrapping (found by the conformance suite), so u8 sums are
 * widened to i64 here like u8 averages; narrowing then wraps mod 256. */
static weft_dtype mpi_wide_type(weft_dtype dt, weft_redop op)
{
    if (dt == WEFT_U8 && op == WEFT_SUM)
        return WEFT_I64;
    return weft_reduce_wide_type(dt, op);
}

static int post_op(weft_comm *c, weft_request *r)
{
    r->res = NULL;
    r->res_n = 0;
    if (c->opts.deterministic && is_reduction(r->op.kind))
        return post_ordered(c, r);
    r->wide = mpi_wide_type(r->op.dtype, r->op.redop);
    switch (r->op.kind) {
    case WEFT_OP_ALLREDUCE: return post_allreduce(c, r);
    case WEFT_OP_REDUCE_SCATTER: return post_reduce_scatter(c, r);
    case WEFT_OP_REDUCE: return post_reduce(c, r);
    case WEFT_OP_ALLGATHER: return post_allgather(c, r);
    case WEFT_OP_BROADCAST: return post_broadcast(c, r);
    case WEFT_OP_ALLTOALL: return post_alltoall(c, r);
    case WEFT_OP_SEND:
    case WEFT_OP_RECV: return post_p2p(c, r);
    case WEFT_OP_BARRIER: {
        int rc = MPI_Ibarrier(c->mpi, &r->mpi_req);
        return rc == MPI_SUCCESS ? 0 : mpi_err(c, rc, "MPI_Ibarrier");
    }
    default: return weft_error(WEFT_EINTERNAL, "MPI backend: unknown operation %d", r->op.kind);
    }
}

/* Every operation that posts is an MPI request in flight, which moves only
 * while this process calls MPI: a wait on another backend's request must
 * keep MPI going (request.c). */
static int mpi_post(weft_comm *c, weft_request *r)
{
    int rc = post_op(c, r);
    if (rc == 0)
        weft_request_mpi_posted(r);
    return rc;
}

/* A receive must get exactly the count it asked for: a shorter message is a
 * protocol error between ranks, not data. */
static int check_recv_count(weft_comm *c, weft_request *r, MPI_Status *st)
{
    int got = 0;
    MPI_Get_count(st, mpi_type(r->op.dtype), &got);
    if ((size_t)got == r->op.count)
        return 0;
    return weft_error(WEFT_ECOMM, "communicator '%s': recv from rank %d tag %d expected %zu %s elements, got %d",
                      c->name, r->op.peer, r->op.tag, r->op.count, weft_dtype_name(r->op.dtype), got);
}

static int mpi_test(weft_comm *c, weft_request *r, int *done)
{
    MPI_Status st;
    int rc = MPI_Test(&r->mpi_req, done, &st);
    if (rc != MPI_SUCCESS)
        return mpi_err(c, rc, "MPI_Test");
    if (*done && r->op.kind == WEFT_OP_RECV)
        return check_recv_count(c, r, &st);
    return 0;
}

static int mpi_can_connect(const weft_comm *c) { (void)c; return 1; }
static int mpi_init(weft_comm *c) { (void)c; return 0; }
static void mpi_fini(weft_comm *c) { (void)c; }

static void mpi_request_release(weft_request *r)
{
    free(r->scratch);
    free(r->counts);
    free(r->displs);
}

const weft_backend weft_backend_mpi = {
    .name = "mpi",
    .can_connect = mpi_can_connect,
    .init = mpi_init,
    .fini = mpi_fini,
    .post = mpi_post,
    .test = mpi_test,
    .request_release = mpi_request_release,
};
