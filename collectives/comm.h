/*
 * comm.h -- weft_comm: an ordered group of ranks with a backend, and the
 * collective and point-to-point operations on it.
 *
 * Every operation has an async form (weft_comm_iX) that returns a request to
 * wait on or test, and a blocking form (weft_comm_X) that is the async form
 * followed by a wait. All ranks of a communicator must call its collectives
 * in the same order with matching arguments (count, dtype, op, root); set
 * comm.check_args to have weft verify that on every call.
 *
 * Conventions shared by every backend:
 * - count is in elements of dtype. reduce_scatter and allgather take the
 *   TOTAL count and split it over ranks as evenly as possible (rank r owns
 *   weft_comm_chunk(count, size, r)), so any count works, divisible or not.
 * - In-place: allreduce with send == recv; reduce_scatter with
 *   recv == send + offset(rank); allgather with send == recv + offset(rank);
 *   broadcast with send == recv (only root's send is read); reduce with
 *   send == recv at root; alltoall with send == recv.
 * - bf16 and f16 are reduced in f32 and rounded once at the end. AVG is the
 *   sum divided by the group size; for integers it is computed in 64 bits
 *   and truncated toward zero.
 * - A request must be waited on (or tested until done) exactly once; that
 *   releases it. A wait that exceeds comm.timeout marks the communicator
 *   failed and, by default, aborts the job naming the operation (see
 *   weft_comm_opts.abort_on_timeout).
 * - Failures are sticky: once a communicator has failed, every later call on
 *   it returns WEFT_ESTATE and weft_last_error() says why.
 * - A communicator is used by one thread at a time; a thread that talks to
 *   other ranks in the background gets its own with weft_comm_dup().
 */
#ifndef WEFT_COLLECTIVES_COMM_H
#define WEFT_COLLECTIVES_COMM_H

#include "runtime/api.h"

#include <stddef.h>
#include <stdio.h>

#include "runtime/config.h"
#include "runtime/ctx.h"
#include "runtime/dtype.h"

typedef struct weft_comm weft_comm;
typedef struct weft_request weft_request;

typedef enum { WEFT_SUM = 0, WEFT_AVG, WEFT_MAX, WEFT_MIN, WEFT_NREDOPS } weft_redop;

typedef struct weft_comm_opts {
    char backend[16];     /* "auto" or a backend name ("mpi") */
    char algo[8];         /* "auto", "ring" or "tree" (native network backends) */
    char tcp_ifname[32];
    char hier_net[8];     /* the hier backend's backend between nodes: "tcp" or "mpi" */  /* interface the tcp backend listens on; "" picks one */
    double timeout_s;     /* a wait longer than this fails the communicator */
    int abort_on_timeout; /* 1: a timeout aborts the job; 0: returns WEFT_ETIMEDOUT */
    int flight_records;   /* flight-recorder ring size (entries) */
    int check_args;       /* 1: verify every collective's arguments across ranks */
    int deterministic;    /* 1: reductions bitwise identical for every backend,
                           * algorithm and chunking (rank-order sums) */
} weft_comm_opts;

/* The comm.* configuration keys. */
extern WEFT_API const weft_config_key weft_comm_config_keys[];
WEFT_API void weft_comm_opts_default(weft_comm_opts *o);
/* cfg must have been built with weft_comm_config_keys. */
WEFT_API void weft_comm_opts_from_config(const weft_config *cfg, weft_comm_opts *o);

/* A communicator over ctx's world (opts NULL: defaults). */
WEFT_API int weft_comm_world(weft_ctx *ctx, const weft_comm_opts *opts, weft_comm **out);
/* Ranks passing the same color form a group, ordered by key (then parent
 * rank). color < 0: this rank joins no group and *out is NULL. Collective. */
WEFT_API int weft_comm_split(weft_comm *parent, int color, int key, const char *name, weft_comm **out);
/* Same group, independent traffic: for another thread. Collective. */
WEFT_API int weft_comm_dup(weft_comm *c, const char *name, weft_comm **out);
/* Collective over the group if the communicator is healthy. */
WEFT_API void weft_comm_free(weft_comm *c);
/* A new MPI communicator over the same ranks in the same order, for a
 * library that takes one (parallel HDF5); the caller frees it. Collective. */
WEFT_API int weft_comm_mpi_dup(weft_comm *c, MPI_Comm *out);

WEFT_API int weft_comm_rank(const weft_comm *c);
WEFT_API int weft_comm_size(const weft_comm *c);
WEFT_API const char *weft_comm_name(const weft_comm *c);
WEFT_API const char *weft_comm_backend(const weft_comm *c);
/* Make sure n requests can be in flight at once without allocating: a
 * caller that knows its peak (data parallelism: one per gradient bucket)
 * reserves them at start, so the steady state never grows the pool. */
WEFT_API int weft_comm_reserve(weft_comm *c, int n);

/* 0 while healthy; the failure code once failed. */
WEFT_API int weft_comm_failed(const weft_comm *c);

/* The part of a count-element buffer that rank owns in reduce_scatter and
 * allgather: the first count % size ranks get one element more. */
WEFT_API void weft_comm_chunk(size_t count, int size, int rank, size_t *offset, size_t *len);

WEFT_API const char *weft_redop_name(weft_redop op);

/* --- async forms: *req must later go to weft_request_wait/test ------------ */
WEFT_API int weft_comm_iallreduce(weft_comm *c, const void *send, void *recv, size_t count,
                                  weft_dtype dt, weft_redop op, weft_request **req);
WEFT_API int weft_comm_ireduce_scatter(weft_comm *c, const void *send, void *recv, size_t count,
                                       weft_dtype dt, weft_redop op, weft_request **req);
WEFT_API int weft_comm_iallgather(weft_comm *c, const void *send, void *recv, size_t count,
                                  weft_dtype dt, weft_request **req);
WEFT_API int weft_comm_ibroadcast(weft_comm *c, const void *send, void *recv, size_t count,
                                  weft_dtype dt, int root, weft_request **req);
WEFT_API int weft_comm_ireduce(weft_comm *c, const void *send, void *recv, size_t count,
                               weft_dtype dt, weft_redop op, int root, weft_request **req);
/* count: elements sent to (and received from) each rank. */
WEFT_API int weft_comm_ialltoall(weft_comm *c, const void *send, void *recv, size_t count,
                                 weft_dtype dt, weft_request **req);
/* tag in [0, 32767]. */
WEFT_API int weft_comm_isend(weft_comm *c, const void *buf, size_t count, weft_dtype dt, int peer,
                             int tag, weft_request **req);
WEFT_API int weft_comm_irecv(weft_comm *c, void *buf, size_t count, weft_dtype dt, int peer, int tag,
                             weft_request **req);
WEFT_API int weft_comm_ibarrier(weft_comm *c, weft_request **req);

/* Wait for completion (bounded by comm.timeout) and release the request.
 * A request that timed out with abort_on_timeout = 0 is NOT released: it may
 * be waited on again, and completes if the late ranks arrive. */
WEFT_API int weft_request_wait(weft_request *req);
/* *done = 1 and the request is released when it has completed. */
WEFT_API int weft_request_test(weft_request *req, int *done);

/* --- blocking forms ------------------------------------------------------ */
WEFT_API int weft_comm_allreduce(weft_comm *c, const void *send, void *recv, size_t count,
                                 weft_dtype dt, weft_redop op);
WEFT_API int weft_comm_reduce_scatter(weft_comm *c, const void *send, void *recv, size_t count,
                                      weft_dtype dt, weft_redop op);
WEFT_API int weft_comm_allgather(weft_comm *c, const void *send, void *recv, size_t count, weft_dtype dt);
WEFT_API int weft_comm_broadcast(weft_comm *c, const void *send, void *recv, size_t count,
                                 weft_dtype dt, int root);
WEFT_API int weft_comm_reduce(weft_comm *c, const void *send, void *recv, size_t count, weft_dtype dt,
                              weft_redop op, int root);
WEFT_API int weft_comm_alltoall(weft_comm *c, const void *send, void *recv, size_t count, weft_dtype dt);
WEFT_API int weft_comm_send(weft_comm *c, const void *buf, size_t count, weft_dtype dt, int peer, int tag);
WEFT_API int weft_comm_recv(weft_comm *c, void *buf, size_t count, weft_dtype dt, int peer, int tag);
WEFT_API int weft_comm_barrier(weft_comm *c);

/* The flight recorder of c as JSON (see docs/flight-recorder.md). */
WEFT_API int weft_comm_flight_dump(const weft_comm *c, FILE *out);
/* Every live communicator's recorder into DIR/flight-r<rank>.json, written
 * to a temporary name and renamed. Also runs from weft_abort. */
WEFT_API int weft_comm_flight_dump_all(const char *dir);

#endif
