/*
 * backend.h -- what a transport backend implements, and the structures the
 * generic layer (comm.c, ops.c, request.c) shares with it. Not installed for
 * users: programs see only comm.h.
 *
 * The generic layer validates arguments, records the flight recorder,
 * hands out requests and enforces timeouts; a backend only moves and
 * reduces bytes. A backend posts an operation described by a weft_op and
 * reports progress through test(); it never blocks longer than a test.
 */
#ifndef WEFT_COLLECTIVES_BACKEND_H
#define WEFT_COLLECTIVES_BACKEND_H

#include <mpi.h>
#include <stdint.h>

#include "collectives/comm.h"
#include "collectives/flight.h"

/* One operation as the caller described it, after validation. */
typedef struct weft_op {
    weft_op_kind kind;
    const void *send;
    void *recv;
    size_t count;    /* as in comm.h: total for reduce_scatter/allgather */
    weft_dtype dtype;
    weft_redop redop;
    int peer;        /* root for broadcast/reduce, peer for send/recv; -1 otherwise */
    int tag;
} weft_op;

struct weft_request {
    weft_comm *comm;
    weft_op op;
    uint64_t seq;          /* flight-recorder sequence number */
    int64_t t_post_ns;
    int in_use;
    int timed_out;
    weft_request *next_free;
    /* Backend-owned state, reused across the request's lives: a scratch
     * buffer that only grows, and per-rank count/displacement arrays. */
    MPI_Request mpi_req;
    void *scratch;
    size_t scratch_bytes;
    int *counts, *displs;
    /* Where a reduction's result sits until finish() moves it: res holds
     * res_n elements of type wide (the dtype, or f32/i64 when widened). */
    weft_dtype wide;
    void *res;
    size_t res_n;
    void (*finish)(weft_request *r); /* runs once when the backend completes */
    void *backend_req;     /* a backend's own per-request object (a CUDA event),
                            * made once and freed by request_release */
    int mpi_active;        /* mpi_req is an MPI operation in flight, counted in
                            * the process's total (weft_request_mpi_posted) */
};

typedef struct weft_backend {
    const char *name;
    /* Can this backend serve this group here? (1 yes, 0 no) */
    int (*can_connect)(const weft_comm *c);
    int (*init)(weft_comm *c);
    void (*fini)(weft_comm *c);
    int (*post)(weft_comm *c, weft_request *r);
    int (*test)(weft_comm *c, weft_request *r, int *done);
    void (*request_release)(weft_request *r); /* free backend state at comm free */
    /* Optional: size per-communicator state for n requests in flight. */
    int (*reserve)(weft_comm *c, int n);
    /* Optional: why can_connect said no, for the error when this backend
     * was asked for by name (e.g. "no CUDA device"). */
    const char *(*why_not)(const weft_comm *c);
    /* Optional: what a request that timed out still waits for (the peer,
     * its address), appended to the timeout message. */
    void (*describe)(weft_comm *c, weft_request *r, char *buf, size_t n);
} weft_backend;

struct weft_comm {
    char name[64];
    int rank, size;
    weft_ctx *ctx;
    MPI_Comm mpi;          /* every communicator has one: bootstrap and checks */
    const weft_backend *backend;
    void *backend_state;
    weft_comm_opts opts;
    weft_flight *flight;
    int oversubscribed;    /* more ranks on this node than cores: waits yield */
    int failed;            /* sticky WEFT_E* code, 0 while healthy */
    char failure[512];     /* why it failed */
    weft_request *free_list;
    weft_request **all_requests; /* every request ever made, freed with the comm */
    int nrequests, requests_cap;
    weft_comm *next_live, *prev_live; /* registry for flight dumps */
    char id[80];           /* "name.k": the k-th communicator of this name that
                            * this rank made; the same on every member, so
                            * the watchdog can match ranks' heartbeats */
    int *world_ranks;      /* (size) each member's rank in the world */
};

/* Visit every live communicator under the registry lock (watchdog.c).
 * fn must not create or free communicators. */
void weft_comm_foreach_live(void (*fn)(weft_comm *c, void *arg), void *arg);

/* The backend registry (backends.c): NULL-terminated, in preference order. */
extern const weft_backend *const weft_backends[];
extern const weft_backend weft_backend_mpi;

/* A communicator over mpi (duplicated) with parent's options but the named
 * backend, called "<parent>.<suffix>": the inner groups of a composition
 * (hier). Collective over mpi. */
int weft_comm_sub(weft_comm *parent, MPI_Comm mpi, const char *suffix, const char *backend, weft_comm **out);

/* The request pool (request.c). */
weft_request *weft_request_get(weft_comm *c);
void weft_request_put(weft_request *r);
/* A backend that started an MPI operation for r (r->mpi_req) says so: while
 * any is in flight, every wait in the process keeps MPI's progress engine
 * turning (request.c). Putting the request back, or freeing its
 * communicator, settles it. */
void weft_request_mpi_posted(weft_request *r);
void weft_request_mpi_settled(weft_request *r);

/* Helpers shared by backends. */
int weft_comm_fail(weft_comm *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int weft_request_scratch(weft_request *r, size_t bytes);
/* Element-wise helpers for reductions (reduce.c). A reduction runs in the
 * "wide" type: f32 for bf16/f16, i64 for AVG of i32/u8, else the dtype. */
weft_dtype weft_reduce_wide_type(weft_dtype dt, weft_redop op);
void weft_reduce_widen(const void *src, weft_dtype dt, void *dst, weft_dtype wide, size_t n);
void weft_reduce_narrow(const void *src, weft_dtype wide, void *dst, weft_dtype dt, size_t n);
void weft_reduce_avg_inplace(void *buf, size_t n, weft_dtype dt, int nranks);
/* A reduction whose whole result sits, wide, at r->res (tcp/ib, hier): AVG
 * divides this rank's part (all of it; its chunk for reduce_scatter; nothing
 * off the root for reduce) and narrows it into the caller's recv. */
void weft_reduce_finish_wide(weft_request *r);

#endif
