/*
 * request.c -- the request pool and the timed wait.
 *
 * Requests are recycled through a per-communicator free list, and each keeps
 * its scratch buffer, so after warm-up posting an operation allocates
 * nothing. A request's life: get (in_use) -> backend post -> test/wait until
 * done -> finish() -> put back. A wait longer than comm.timeout fails the
 * communicator and aborts the job (or, with abort_on_timeout = 0, returns
 * WEFT_ETIMEDOUT and keeps the request for another wait).
 *
 * MPI progress: an MPI operation moves only while its process calls MPI. A
 * large message goes by rendezvous, and the sender's MPI must see the
 * receiver's answer before it sends the rest; a nonblocking MPI collective
 * advances only inside MPI calls. The shm and tcp/ib backends' collectives
 * never call MPI, so a rank spinning in one of them with an MPI send in
 * flight (a pipeline stage's activations, then a tensor-parallel
 * allreduce) starves that send's receiver -- and when the receiver's group
 * is waiting for the spinning rank's group, nobody moves again. So while
 * any MPI operation of this process is in flight, every test of a request
 * that is not done also makes an MPI progress call.
 */
#include "collectives/backend.h"
#include "collectives/watchdog.h"
#include "runtime/error.h"
#include "runtime/invariant.h"
#include "runtime/log.h"
#include "runtime/timer.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

/* A new request, recorded in the communicator (freed with it). */
static weft_request *request_new(weft_comm *c)
{
    if (c->nrequests == c->requests_cap) {
        int cap = c->requests_cap ? 2 * c->requests_cap : 8;
        weft_request **all = realloc(c->all_requests, (size_t)cap * sizeof *all);
        if (!all)
            return NULL;
        c->all_requests = all;
        c->requests_cap = cap;
    }
    weft_request *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->comm = c;
    c->all_requests[c->nrequests++] = r;
    return r;
}

/* The pool's invariants: every request the communicator made is recorded
 * once, belongs to it, and is either in use or on the free list, never
 * both (a request put back twice, or used after it was put back, breaks
 * this); the free list ends (no cycle). */
static int pool_check(const weft_comm *c, const char *when)
{
    int nfree = 0, inuse = 0;
    if (c->nrequests > c->requests_cap)
        return weft_error(WEFT_EINTERNAL, "communicator '%s' (%s): %d requests recorded in room for %d", c->name,
                          when, c->nrequests, c->requests_cap);
    for (int i = 0; i < c->nrequests; i++)
        inuse += c->all_requests[i]->in_use != 0;
    for (const weft_request *r = c->free_list; r; r = r->next_free) {
        if (++nfree > c->nrequests || r->in_use || r->comm != c)
            return weft_error(WEFT_EINTERNAL, "communicator '%s' (%s): free list entry %d is %s", c->name, when,
                              nfree, nfree > c->nrequests ? "one more than the requests made (a cycle, or a "
                              "request put back twice)" : r->in_use ? "in use" : "another communicator's");
    }
    if (nfree + inuse != c->nrequests)
        return weft_error(WEFT_EINTERNAL, "communicator '%s' (%s): %d requests made, %d free + %d in use", c->name,
                          when, c->nrequests, nfree, inuse);
    return 0;
}

int weft_comm_reserve(weft_comm *c, int n)
{
    if (!c)
        return weft_error(WEFT_EINVAL, "weft_comm_reserve: communicator is NULL");
    while (c->nrequests < n) {
        weft_request *r = request_new(c);
        if (!r)
            return weft_error(WEFT_ENOMEM, "communicator '%s': %d requests: out of memory", c->name, n);
        r->next_free = c->free_list;
        c->free_list = r;
    }
    return c->backend->reserve ? c->backend->reserve(c, n) : 0;
}

weft_request *weft_request_get(weft_comm *c)
{
    weft_request *r = c->free_list;
    if (r) {
        c->free_list = r->next_free;
    } else {
        r = request_new(c);
        if (!r)
            return NULL;
    }
    r->in_use = 1;
    r->timed_out = 0;
    r->finish = NULL;
    WEFT_INVARIANT(pool_check(c, "a request taken"), "request pool");
    return r;
}

/* MPI operations posted through any communicator and not yet settled:
 * process-wide, since MPI's progress engine is. */
static _Atomic int mpi_inflight;

void weft_request_mpi_posted(weft_request *r)
{
    r->mpi_active = 1;
    atomic_fetch_add_explicit(&mpi_inflight, 1, memory_order_relaxed);
}

void weft_request_mpi_settled(weft_request *r)
{
    if (!r->mpi_active)
        return;
    r->mpi_active = 0;
    atomic_fetch_sub_explicit(&mpi_inflight, 1, memory_order_relaxed);
}

/* r is not done: if some other MPI operation is in flight (r's own, if it
 * is one, was just tested, which progressed MPI), drive MPI's progress.
 * MPI_Iprobe runs the progress engine (Open MPI's and MPICH's alike) and
 * neither matches nor consumes a message. It probes r's communicator, the
 * one this thread is using, so the thread rules stay those of comm.h (a
 * thread other than the main one communicates only under
 * MPI_THREAD_MULTIPLE, where any thread may drive progress). */
static void keep_mpi_moving(weft_request *r)
{
    if (atomic_load_explicit(&mpi_inflight, memory_order_relaxed) <= r->mpi_active)
        return;
    int flag = 0;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, r->comm->mpi, &flag, MPI_STATUS_IGNORE);
}

void weft_request_put(weft_request *r)
{
    weft_comm *c = r->comm;
    weft_request_mpi_settled(r);
    r->in_use = 0;
    r->next_free = c->free_list;
    c->free_list = r;
    WEFT_INVARIANT(pool_check(c, "a request put back"), "request pool");
}

int weft_request_scratch(weft_request *r, size_t bytes)
{
    if (bytes <= r->scratch_bytes)
        return 0;
    void *p = realloc(r->scratch, bytes);
    if (!p)
        return weft_error(WEFT_ENOMEM, "communicator '%s': %zu bytes of scratch: out of memory",
                          r->comm->name, bytes);
    r->scratch = p;
    r->scratch_bytes = bytes;
    return 0;
}

static int check_request(weft_request *r, const char *what)
{
    if (!r)
        return weft_error(WEFT_EINVAL, "%s: request is NULL", what);
    if (!r->in_use)
        return weft_error(WEFT_EINVAL, "%s: request was already completed and released", what);
    return 0;
}

/* One progress step. Returns <0 on failure, else sets *done. */
static int progress(weft_request *r, int *done)
{
    weft_comm *c = r->comm;
    int rc = c->backend->test(c, r, done);
    if (rc < 0) {
        weft_flight_end(c->flight, r->seq, WEFT_FLIGHT_FAILED);
        weft_comm_fail(c, rc, "%s #%llu failed: %s", weft_op_name(r->op.kind),
                       (unsigned long long)r->seq, weft_last_error());
        weft_request_put(r);
        return c->failed;
    }
    if (*done) {
        if (r->finish)
            r->finish(r);
        weft_flight_end(c->flight, r->seq, WEFT_FLIGHT_DONE);
        weft_request_put(r);
    } else {
        keep_mpi_moving(r);
    }
    return 0;
}

int weft_request_test(weft_request *r, int *done)
{
    WEFT_CHECK(check_request(r, "weft_request_test"));
    *done = 0;
    return progress(r, done);
}

static int timed_out(weft_request *r, double waited_s)
{
    weft_comm *c = r->comm;
    const weft_op *op = &r->op;
    char peer[32] = "";
    if (op->peer >= 0)
        snprintf(peer, sizeof peer, ", %s %d",
                 op->kind == WEFT_OP_SEND || op->kind == WEFT_OP_RECV ? "peer" : "root", op->peer);
    /* Who never arrived, from the other ranks' heartbeats (before the
     * entry leaves the pending state). */
    char who[2048] = "";
    weft_watchdog_explain(c, r->seq, op->kind, waited_s, who, sizeof who);
    char why[512] = "";
    if (c->backend->describe)
        c->backend->describe(c, r, why, sizeof why);
    weft_flight_end(c->flight, r->seq, WEFT_FLIGHT_TIMEDOUT);
    r->timed_out = 1;
    weft_comm_fail(c, WEFT_ETIMEDOUT,
                   "%s #%llu (%s, %zu elements%s) still pending after %.1f s (comm.timeout = %g s); "
                   "%s%s%s", weft_op_name(op->kind), (unsigned long long)r->seq, weft_dtype_name(op->dtype),
                   op->count, peer, waited_s, c->opts.timeout_s,
                   who[0] ? who + 2 : "some rank of the group never reached it", why[0] ? "; " : "", why);
    if (c->opts.abort_on_timeout)
        weft_abort("%s", weft_last_error());
    return WEFT_ETIMEDOUT;
}

/* How a wait spends its time between tests: spin (lowest latency, what
 * MPI_Wait does), yielding the core when ranks outnumber cores, and after
 * a second of waiting sleep a little between tests, since an operation that
 * slow is waiting for a late rank, not for bandwidth. */
static void backoff(const weft_comm *c, int64_t waited_ns)
{
    if (waited_ns > 1000000000) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    } else if (c->oversubscribed) {
        sched_yield();
    }
}

int weft_request_wait(weft_request *r)
{
    WEFT_CHECK(check_request(r, "weft_request_wait"));
    weft_comm *c = r->comm;
    int64_t t0 = weft_now_ns(), limit = (int64_t)(c->opts.timeout_s * 1e9);
    for (;;) {
        int done = 0;
        WEFT_CHECK(progress(r, &done));
        if (done)
            return 0;
        int64_t waited = weft_now_ns() - t0;
        if (waited > limit)
            return timed_out(r, 1e-9 * (double)waited);
        backoff(c, waited);
    }
}
