/*
 * backend_shm.c -- the shared-memory backend: every rank of the
 * communicator on one node, one shared segment per communicator, and the
 * collectives done by loads and stores into it. Point-to-point messages
 * are not done here: send/recv go through MPI's own point-to-point on the
 * communicator's MPI handle (itself shared memory within a node).
 *
 * Segment (see shm_segment.h for its lifecycle and cleanup on death):
 *   ctl[n]         one control block per rank, each on its own cache lines:
 *                  the counters a and b (below) and the rank's pid
 *   slot[n][2]     per rank, two buffers of slot bytes (double buffering)
 *
 * Every collective is a sequence of rounds; a round moves one "piece" per
 * rank and has up to three phases:
 *   A  each rank writes its input pieces into its own slot[me][epoch % 2],
 *      then publishes a[me] = epoch + 1 (release);
 *      all ranks wait until every a[j] >= epoch + 1 (acquire)
 *   B  (reductions) rank me reduces piece me over all ranks, in rank order,
 *      into slot[me][epoch % 2] at position me, publishes b[me] = epoch + 1,
 *      and all wait for every b[j]
 *   C  each rank copies the pieces it needs out of the slots.
 * Allreduce is thus reduce-scatter (A+B) then allgather (C), pipelined in
 * pieces of slot/n bytes. A buffer written in round e was last read in
 * round e - 2, and every rank finished that before publishing a for round
 * e - 1, which the writer waited for: two buffers suffice, no extra flag.
 * The epoch counts rounds over the communicator's life and is the same on
 * every rank because all ranks run the same collectives in the same order.
 *
 * Progress: post() queues the collective; test() advances the queue head
 * as far as it can without waiting, and then the next, so requests in
 * flight complete in posting order whichever one is waited on. Nothing
 * here blocks: a peer that never arrives shows up as a wait that
 * request.c times out (comm.timeout); a peer that died is noticed sooner
 * by probing its pid and fails the communicator with WEFT_EPEER.
 */
#include "collectives/backend.h"
#include "collectives/request_queue.h"
#include "collectives/reduce_simd.h"
#include "collectives/shm_segment.h"
#include "runtime/error.h"
#include "runtime/timer.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bytes per rank per buffer; a round of allreduce moves this much per
 * rank. Sized to stay in L2 with both buffers: see docs/collectives.md. */
#define SLOT_BYTES_DEFAULT (256u << 10)
#define SLOT_BYTES_MIN (4u << 10)
#define SLOT_BYTES_MAX (64u << 20)
#define CTL_BYTES 256
/* Allreduces up to this many (wide) bytes take one round with one
 * synchronisation instead of two: every rank reduces the whole vector. */
#define SMALL_BYTES (16u << 10)
#define PROBE_NS 100000000 /* probe lagging peers' pids every 0.1 s of waiting */
#define YIELD_NS 20000     /* after 20 us of waiting, yield the core between checks
                              (WEFT_SHM_YIELD_US overrides; negative: never) */

typedef struct shm_ctl {
    _Alignas(64) _Atomic uint64_t a;
    _Alignas(64) _Atomic uint64_t b;
    _Alignas(64) int32_t pid;
} shm_ctl;
_Static_assert(sizeof(shm_ctl) <= CTL_BYTES, "control block fits its lines");

enum { PH_A, PH_WAIT_A, PH_B, PH_WAIT_B, PH_C };

typedef struct shm_state {
    weft_shm_segment seg;
    char *ctl;              /* n control blocks of CTL_BYTES */
    char *data;             /* slot[n][2] */
    size_t slot;            /* bytes per rank per buffer */
    int probe;              /* 1: peers' pids are visible, probe them */
    int64_t yield_ns;       /* yield between checks after waiting this long; <0 never */
    uint64_t epoch;         /* rounds completed on this communicator */
    weft_request_queue queue; /* posted collectives, in posting order */
    uint64_t tickets;       /* collectives posted */
    uint64_t completed;     /* collectives completed: ticket < completed is done */
    /* the queue head's progress */
    size_t round, nrounds, piece;
    int phase, started;
    int small;              /* one-round allreduce: every rank reduces it all */
    int dual;               /* f32/f64 sum: phase B also writes my piece's result out */
    unsigned spins;         /* checks since the clock was last read */
    int64_t wait_since, last_probe;
} shm_state;

static shm_ctl *ctl(shm_state *st, int rank) { return (shm_ctl *)(st->ctl + (size_t)rank * CTL_BYTES); }

static char *slot(shm_state *st, int rank)
{
    return st->data + ((size_t)rank * 2 + (st->epoch & 1)) * st->slot;
}

static int is_reduction(weft_op_kind k)
{
    return k == WEFT_OP_ALLREDUCE || k == WEFT_OP_REDUCE_SCATTER || k == WEFT_OP_REDUCE;
}

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* --- the rounds of each operation --------------------------------------- */

/* Piece size (elements) and round count of op on n ranks. */
static void plan(shm_state *st, const weft_comm *c, const weft_request *r)
{
    const weft_op *op = &r->op;
    size_t n = (size_t)c->size, es = weft_dtype_size(is_reduction(op->kind) ? r->wide : op->dtype);
    size_t per = op->kind == WEFT_OP_BROADCAST || op->kind == WEFT_OP_ALLGATHER ? st->slot : st->slot / n;
    size_t piece = per / 64 * 64 / es, len0 = (op->count + n - 1) / n, span = op->count;
    if (piece == 0)
        piece = 1;
    if (op->kind == WEFT_OP_ALLREDUCE || op->kind == WEFT_OP_REDUCE_SCATTER || op->kind == WEFT_OP_REDUCE ||
        op->kind == WEFT_OP_ALLGATHER)
        span = len0;
    st->piece = piece;
    st->nrounds = op->kind == WEFT_OP_BARRIER ? 1 : (span + piece - 1) / piece;
    st->small = op->kind == WEFT_OP_ALLREDUCE && op->count * es <= min_sz(SMALL_BYTES, st->slot);
    /* Dual writes need the last operand apart from my output: with 3+ ranks
     * in place, the last rank's own input is its output. */
    int last_aliases = n > 2 && (size_t)c->rank == n - 1 && op->send == op->recv;
    st->dual = op->kind == WEFT_OP_ALLREDUCE && !st->small && op->redop == WEFT_SUM && r->wide == op->dtype &&
               (op->dtype == WEFT_F32 || op->dtype == WEFT_F64) && !last_aliases;
    if (st->small) {
        st->piece = op->count;
        st->nrounds = op->count ? 1 : 0;
    }
}

/* The one-round allreduce: all of my input into my slot ... */
static void small_write(shm_state *st, weft_comm *c, weft_request *r)
{
    weft_simd_widen(r->op.send, r->op.dtype, slot(st, c->rank), r->wide, r->op.count);
}

/* ... and every rank reduces every slot, in rank order, so all agree. */
static void small_read(shm_state *st, weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    void *out = r->wide == op->dtype ? op->recv : r->scratch;
    weft_simd_combine(r->wide, op->redop, out, slot(st, 0), slot(st, 1), op->count);
    for (int j = 2; j < c->size; j++)
        weft_simd_accumulate(r->wide, op->redop, out, slot(st, j), op->count);
    if (op->redop == WEFT_AVG)
        weft_reduce_avg_inplace(out, op->count, r->wide, c->size);
    if (out != op->recv)
        weft_simd_narrow(out, r->wide, op->recv, op->dtype, op->count);
}

/* Reductions, phase A: pieces destined for other ranks into my slot;
 * my own piece is read in place, or widened into scratch. */
static void red_write(shm_state *st, weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    size_t des = weft_dtype_size(op->dtype), wes = weft_dtype_size(r->wide), s = st->round * st->piece;
    char *mine = slot(st, c->rank);
    for (int j = 0; j < c->size; j++) {
        size_t off, len;
        weft_comm_chunk(op->count, c->size, j, &off, &len);
        if (s >= len)
            continue;
        size_t m = min_sz(st->piece, len - s);
        const char *src = (const char *)op->send + (off + s) * des;
        if (j != c->rank)
            weft_simd_widen(src, op->dtype, mine + (size_t)j * st->piece * wes, r->wide, m);
        else if (r->wide != op->dtype)
            weft_simd_widen(src, op->dtype, r->scratch, r->wide, m);
    }
}

/* Reductions, phase B: my piece over all ranks, in rank order. */
static void red_reduce(shm_state *st, weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    size_t off, len, des = weft_dtype_size(op->dtype), wes = weft_dtype_size(r->wide), s = st->round * st->piece;
    weft_comm_chunk(op->count, c->size, c->rank, &off, &len);
    if (s >= len)
        return;
    int n = c->size;
    size_t m = min_sz(st->piece, len - s), at = (size_t)c->rank * st->piece * wes;
    const void *own = r->wide != op->dtype ? r->scratch : (const char *)op->send + (off + s) * des;
    char *dst = slot(st, c->rank) + at, *out = (char *)op->recv + (off + s) * des;
#define SRC(j) ((j) == c->rank ? own : (const void *)(slot(st, (j)) + at))
    /* Summing f32/f64 (st->dual), the last step writes the result both to
     * the slot, for the others, and straight to my output, saving phase C
     * a pass over my piece. */
    if (st->dual && n == 2) {
        weft_simd_sum2(r->wide, dst, out, SRC(0), SRC(1), m);
        return;
    }
    int last = st->dual ? n - 1 : n;
    weft_simd_combine(r->wide, op->redop, dst, SRC(0), SRC(1), m);
    for (int j = 2; j < last; j++)
        weft_simd_accumulate(r->wide, op->redop, dst, SRC(j), m);
    if (st->dual)
        weft_simd_sum2(r->wide, out, dst, dst, SRC(n - 1), m); /* out = dst = dst + x[n-1] */
#undef SRC
    if (op->redop == WEFT_AVG)
        weft_reduce_avg_inplace(dst, m, r->wide, n);
}

/* Reductions, phase C: the reduced pieces into the caller's buffer. */
static void red_read(shm_state *st, weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    size_t des = weft_dtype_size(op->dtype), wes = weft_dtype_size(r->wide), s = st->round * st->piece;
    if (op->kind == WEFT_OP_REDUCE && op->peer != c->rank)
        return;
    for (int j = 0; j < c->size; j++) {
        size_t off, len;
        weft_comm_chunk(op->count, c->size, j, &off, &len);
        if (s >= len || (op->kind == WEFT_OP_REDUCE_SCATTER && j != c->rank) || (st->dual && j == c->rank))
            continue;
        size_t m = min_sz(st->piece, len - s);
        char *dst = (char *)op->recv + (op->kind == WEFT_OP_REDUCE_SCATTER ? s : off + s) * des;
        weft_simd_narrow(slot(st, j) + (size_t)j * st->piece * wes, r->wide, dst, op->dtype, m);
    }
}

static void allgather_write(shm_state *st, weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    size_t off, len, es = weft_dtype_size(op->dtype), s = st->round * st->piece;
    weft_comm_chunk(op->count, c->size, c->rank, &off, &len);
    if (s < len && c->size > 1)
        memcpy(slot(st, c->rank), (const char *)op->send + s * es, min_sz(st->piece, len - s) * es);
}

static void allgather_read(shm_state *st, weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    size_t es = weft_dtype_size(op->dtype), s = st->round * st->piece;
    for (int j = 0; j < c->size; j++) {
        size_t off, len;
        weft_comm_chunk(op->count, c->size, j, &off, &len);
        if (s >= len)
            continue;
        size_t m = min_sz(st->piece, len - s);
        char *dst = (char *)op->recv + (off + s) * es;
        const char *src = j == c->rank ? (const char *)op->send + s * es : slot(st, j);
        if (src != dst)
            memcpy(dst, src, m * es);
    }
}

static void bcast_write(shm_state *st, weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    size_t es = weft_dtype_size(op->dtype), s = st->round * st->piece, m = min_sz(st->piece, op->count - s);
    if (op->peer != c->rank)
        return;
    const char *src = (const char *)op->send + s * es;
    if (c->size > 1)
        memcpy(slot(st, c->rank), src, m * es);
    if (op->send != op->recv)
        memcpy((char *)op->recv + s * es, src, m * es);
}

static void bcast_read(shm_state *st, weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    size_t es = weft_dtype_size(op->dtype), s = st->round * st->piece, m = min_sz(st->piece, op->count - s);
    if (op->peer != c->rank)
        memcpy((char *)op->recv + s * es, slot(st, op->peer), m * es);
}

static void a2a_write(shm_state *st, weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    size_t es = weft_dtype_size(op->dtype), s = st->round * st->piece, m = min_sz(st->piece, op->count - s);
    char *mine = slot(st, c->rank);
    for (int j = 0; j < c->size; j++)
        if (j != c->rank) /* my own block never goes through the segment */
            memcpy(mine + (size_t)j * st->piece * es, (const char *)op->send + ((size_t)j * op->count + s) * es,
                   m * es);
}

static void a2a_read(shm_state *st, weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    size_t es = weft_dtype_size(op->dtype), s = st->round * st->piece, m = min_sz(st->piece, op->count - s);
    for (int j = 0; j < c->size; j++) {
        char *dst = (char *)op->recv + ((size_t)j * op->count + s) * es;
        if (j != c->rank)
            memcpy(dst, slot(st, j) + (size_t)c->rank * st->piece * es, m * es);
        else if (op->send != op->recv) /* in place, my block is already there */
            memcpy(dst, (const char *)op->send + ((size_t)j * op->count + s) * es, m * es);
    }
}

static void phase_write(shm_state *st, weft_comm *c, weft_request *r)
{
    if (st->small) {
        small_write(st, c, r);
        return;
    }
    switch (r->op.kind) {
    case WEFT_OP_ALLREDUCE:
    case WEFT_OP_REDUCE_SCATTER:
    case WEFT_OP_REDUCE: red_write(st, c, r); break;
    case WEFT_OP_ALLGATHER: allgather_write(st, c, r); break;
    case WEFT_OP_BROADCAST: bcast_write(st, c, r); break;
    case WEFT_OP_ALLTOALL: a2a_write(st, c, r); break;
    default: break;
    }
}

static void phase_read(shm_state *st, weft_comm *c, weft_request *r)
{
    if (st->small) {
        small_read(st, c, r);
        return;
    }
    switch (r->op.kind) {
    case WEFT_OP_ALLREDUCE:
    case WEFT_OP_REDUCE_SCATTER:
    case WEFT_OP_REDUCE: red_read(st, c, r); break;
    case WEFT_OP_ALLGATHER: allgather_read(st, c, r); break;
    case WEFT_OP_BROADCAST: bcast_read(st, c, r); break;
    case WEFT_OP_ALLTOALL: a2a_read(st, c, r); break;
    default: break;
    }
}

/* --- synchronisation ----------------------------------------------------- */

/* A lagging peer whose process is gone: fail now rather than at timeout. */
static int probe_peer(shm_state *st, weft_comm *c, int j)
{
    if (++st->spins & 31) /* the clock costs more than a check: read it now and then */
        return 0;
    int64_t now = weft_now_ns();
    if (!st->wait_since)
        st->wait_since = st->last_probe = now;
    /* A peer this late has most likely lost its core (to another process,
     * or to us when ranks outnumber cores): let it run. */
    if (st->yield_ns >= 0 && now - st->wait_since > st->yield_ns)
        sched_yield();
    if (!st->probe || now - st->last_probe < PROBE_NS)
        return 0;
    st->last_probe = now;
    pid_t pid = ctl(st, j)->pid;
    if (kill(pid, 0) == 0 || errno != ESRCH)
        return 0;
    return weft_error(WEFT_EPEER,
                      "shm: rank %d of '%s' (pid %d on this node) died while rank %d waited %.1f s for it "
                      "in round %llu; the job cannot continue",
                      j, c->name, (int)pid, c->rank, 1e-9 * (double)(now - st->wait_since),
                      (unsigned long long)st->epoch);
}

/* 1 when every rank published counter `which` for this round, 0 while
 * some has not, <0 when a lagging peer died. */
static int all_arrived(shm_state *st, weft_comm *c, int which)
{
    uint64_t want = st->epoch + 1;
    for (int j = 0; j < c->size; j++) {
        _Atomic uint64_t *x = which ? &ctl(st, j)->b : &ctl(st, j)->a;
        if (atomic_load_explicit(x, memory_order_acquire) < want)
            return probe_peer(st, c, j);
    }
    st->wait_since = 0;
    return 1;
}

static void publish(shm_state *st, weft_comm *c, int which)
{
    _Atomic uint64_t *x = which ? &ctl(st, c->rank)->b : &ctl(st, c->rank)->a;
    atomic_store_explicit(x, st->epoch + 1, memory_order_release);
}

/* Advance r (the queue head) as far as possible. 1 done, 0 waiting, <0 error. */
static int advance(shm_state *st, weft_comm *c, weft_request *r)
{
    if (!st->started) {
        plan(st, c, r);
        st->round = 0;
        st->phase = PH_A;
        st->started = 1;
    }
    int red = is_reduction(r->op.kind), rc;
    while (st->round < st->nrounds) {
        switch (st->phase) {
        case PH_A:
            phase_write(st, c, r);
            publish(st, c, 0);
            st->phase = PH_WAIT_A;
            /* fallthrough */
        case PH_WAIT_A:
            if ((rc = all_arrived(st, c, 0)) <= 0)
                return rc;
            st->phase = red && !st->small ? PH_B : PH_C;
            break;
        case PH_B:
            red_reduce(st, c, r);
            publish(st, c, 1);
            st->phase = PH_WAIT_B;
            /* fallthrough */
        case PH_WAIT_B:
            if ((rc = all_arrived(st, c, 1)) <= 0)
                return rc;
            st->phase = PH_C;
            /* fallthrough */
        case PH_C:
            phase_read(st, c, r);
            st->epoch++;
            st->round++;
            st->phase = PH_A;
            break;
        }
    }
    return 1;
}

/* Run the queue in order until its head must wait. */
static int progress(shm_state *st, weft_comm *c)
{
    for (weft_request *r; (r = weft_request_queue_front(&st->queue));) {
        int rc = advance(st, c, r);
        if (rc <= 0)
            return rc;
        weft_request_queue_pop(&st->queue);
        st->completed++;
        st->started = 0;
    }
    return 0;
}

/* weft_comm_reserve: room for n operations queued at once, allocated now. */
static int shm_reserve(weft_comm *c, int n)
{
    shm_state *st = c->backend_state;
    return weft_request_queue_reserve(&st->queue, (size_t)(n > 0 ? n : 0), c);
}

static int enqueue(shm_state *st, weft_comm *c, weft_request *r)
{
    WEFT_CHECK(weft_request_queue_push(&st->queue, r, c));
    r->res_n = (size_t)st->tickets++;
    return 0;
}

/* --- point-to-point through MPI ------------------------------------------ */

static MPI_Datatype mpi_bytes_type(weft_dtype dt)
{
    switch (weft_dtype_size(dt)) {
    case 1: return MPI_UINT8_T;
    case 2: return MPI_UINT16_T;
    case 4: return MPI_UINT32_T;
    default: return MPI_UINT64_T;
    }
}

static int post_p2p(weft_comm *c, weft_request *r)
{
    const weft_op *op = &r->op;
    if (op->count > INT_MAX)
        return weft_error(WEFT_EUNSUPPORTED, "shm: communicator '%s': %zu elements exceed %d per message; "
                          "split the buffer", c->name, op->count, INT_MAX);
    MPI_Datatype t = mpi_bytes_type(op->dtype);
    int rc = op->kind == WEFT_OP_SEND
                 ? MPI_Isend(op->send, (int)op->count, t, op->peer, op->tag, c->mpi, &r->mpi_req)
                 : MPI_Irecv(op->recv, (int)op->count, t, op->peer, op->tag, c->mpi, &r->mpi_req);
    if (rc != MPI_SUCCESS)
        return weft_error(WEFT_ECOMM, "shm: communicator '%s': MPI_I%s to/from rank %d failed", c->name,
                          op->kind == WEFT_OP_SEND ? "send" : "recv", op->peer);
    /* A large message moves only while this process calls MPI, and our
     * collectives never do: have every wait here keep MPI going. */
    weft_request_mpi_posted(r);
    return 0;
}

static int test_p2p(weft_comm *c, weft_request *r, int *done)
{
    MPI_Status st;
    if (MPI_Test(&r->mpi_req, done, &st) != MPI_SUCCESS)
        return weft_error(WEFT_ECOMM, "shm: communicator '%s': MPI_Test failed", c->name);
    if (!*done || r->op.kind != WEFT_OP_RECV)
        return 0;
    int got = 0;
    MPI_Get_count(&st, mpi_bytes_type(r->op.dtype), &got);
    if ((size_t)got == r->op.count)
        return 0;
    return weft_error(WEFT_ECOMM, "communicator '%s': recv from rank %d tag %d expected %zu %s elements, got %d",
                      c->name, r->op.peer, r->op.tag, r->op.count, weft_dtype_name(r->op.dtype), got);
}

/* --- the backend --------------------------------------------------------- */

/* One rank: every operation is a copy (a reduction of one contribution is
 * that contribution, exactly, for every op and dtype). */
static void post_single(weft_request *r)
{
    const weft_op *op = &r->op;
    size_t bytes = op->count * weft_dtype_size(op->dtype);
    if (op->kind != WEFT_OP_BARRIER && op->recv && op->send && op->send != op->recv && bytes)
        memmove(op->recv, op->send, bytes);
}

static int shm_post(weft_comm *c, weft_request *r)
{
    shm_state *st = c->backend_state;
    if (r->op.kind == WEFT_OP_SEND || r->op.kind == WEFT_OP_RECV)
        return post_p2p(c, r);
    r->wide = is_reduction(r->op.kind) ? weft_reduce_wide_type(r->op.dtype, r->op.redop) : r->op.dtype;
    if (c->size == 1 && st->queue.len == 0) {
        post_single(r);
        r->res_n = (size_t)st->tickets++;
        st->completed++;
        return 0;
    }
    if (r->wide != r->op.dtype)
        WEFT_CHECK(weft_request_scratch(r, st->slot / (size_t)c->size + SMALL_BYTES + 64));
    WEFT_CHECK(enqueue(st, c, r));
    return progress(st, c);
}

static int shm_test(weft_comm *c, weft_request *r, int *done)
{
    if (r->op.kind == WEFT_OP_SEND || r->op.kind == WEFT_OP_RECV)
        return test_p2p(c, r, done);
    shm_state *st = c->backend_state;
    WEFT_CHECK(progress(st, c));
    *done = (uint64_t)r->res_n < st->completed;
    return 0;
}

/* Every rank of the group on this node: a shared-memory split is whole. */
static int shm_can_connect(const weft_comm *c)
{
    MPI_Comm node;
    if (MPI_Comm_split_type(c->mpi, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) != MPI_SUCCESS)
        return 0;
    int n = 0;
    MPI_Comm_size(node, &n);
    MPI_Comm_free(&node);
    int here = n == c->size, all = 0;
    MPI_Allreduce(&here, &all, 1, MPI_INT, MPI_MIN, c->mpi);
    return all;
}

static size_t slot_bytes(void)
{
    const char *e = getenv("WEFT_SHM_SLOT_BYTES");
    size_t v = e ? strtoull(e, NULL, 0) : SLOT_BYTES_DEFAULT;
    if (v < SLOT_BYTES_MIN)
        v = SLOT_BYTES_MIN;
    if (v > SLOT_BYTES_MAX)
        v = SLOT_BYTES_MAX;
    return v / 64 * 64;
}

typedef struct {
    int rc;
    uint64_t bytes, slot;
    char name[WEFT_SHM_NAME_MAX];
    char why[256];
} seg_announce;

/* Rank 0 creates the segment and announces it; the others map it; once
 * all have, rank 0 removes the name. Collective over c->mpi. */
static int attach(weft_comm *c, shm_state *st, int named)
{
    seg_announce a = {0};
    static _Atomic int swept;
    if (c->rank == 0) {
        /* Leftovers of dead creators: once per process, and before each
         * named segment (the only kind that can leave one). */
        if (named || atomic_exchange(&swept, 1) == 0)
            weft_shm_segment_sweep();
        a.slot = slot_bytes();
        a.bytes = (uint64_t)c->size * CTL_BYTES + (uint64_t)c->size * 2 * a.slot;
        a.rc = weft_shm_segment_create(&st->seg, c->ctx ? c->ctx->job_id : "", a.bytes, named);
        snprintf(a.name, sizeof a.name, "%s", st->seg.name);
        if (a.rc)
            snprintf(a.why, sizeof a.why, "%s", weft_last_error());
    }
    MPI_Bcast(&a, sizeof a, MPI_BYTE, 0, c->mpi);
    int rc = a.rc;
    if (c->rank != 0 && rc == 0)
        rc = weft_shm_segment_open(&st->seg, a.name, a.bytes);
    int ok = rc == 0, all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, c->mpi);
    if (c->rank == 0)
        weft_shm_segment_unlink(&st->seg);
    if (!all) {
        weft_shm_segment_unmap(&st->seg);
        if (a.rc)
            return weft_error(a.rc, "shm: communicator '%s': rank 0 could not make the segment: %s", c->name, a.why);
        return rc ? rc : weft_error(WEFT_EIO, "shm: communicator '%s': some rank could not map %s", c->name, a.name);
    }
    st->slot = a.slot;
    st->ctl = st->seg.base;
    st->data = st->ctl + (size_t)c->size * CTL_BYTES;
    return 0;
}

/* Publish pids; probe only if every peer's pid is visible here (ranks in
 * separate pid namespaces would otherwise all look dead). */
static void share_pids(weft_comm *c, shm_state *st)
{
    ctl(st, c->rank)->pid = (int32_t)getpid();
    MPI_Barrier(c->mpi);
    int visible = 1, all = 0;
    for (int j = 0; j < c->size; j++)
        if (kill(ctl(st, j)->pid, 0) != 0 && errno == ESRCH)
            visible = 0;
    MPI_Allreduce(&visible, &all, 1, MPI_INT, MPI_MIN, c->mpi);
    st->probe = all;
}

static int shm_init(weft_comm *c)
{
    shm_state *st = calloc(1, sizeof *st);
    if (!st)
        return weft_error(WEFT_ENOMEM, "shm: communicator '%s': out of memory", c->name);
    /* Anonymous first; named when some rank cannot open the creator's
     * memfd (or WEFT_SHM_NAMED=1 asks for it). */
    const char *e = getenv("WEFT_SHM_NAMED");
    int named = e && *e && strcmp(e, "0") != 0;
    int rc = attach(c, st, named);
    if (rc && !named)
        rc = attach(c, st, 1);
    if (rc) {
        free(st);
        return rc;
    }
    share_pids(c, st);
    const char *y = getenv("WEFT_SHM_YIELD_US");
    st->yield_ns = y ? (int64_t)(atof(y) * 1e3) : YIELD_NS;
    c->backend_state = st;
    return 0;
}

static void shm_fini(weft_comm *c)
{
    shm_state *st = c->backend_state;
    if (!st)
        return;
    weft_shm_segment_unmap(&st->seg);
    weft_request_queue_free(&st->queue);
    free(st);
    c->backend_state = NULL;
}

static void shm_request_release(weft_request *r) { free(r->scratch); }

const weft_backend weft_backend_shm = {
    .name = "shm",
    .can_connect = shm_can_connect,
    .init = shm_init,
    .fini = shm_fini,
    .post = shm_post,
    .test = shm_test,
    .request_release = shm_request_release,
    .reserve = shm_reserve,
};
