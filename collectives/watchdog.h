/*
 * watchdog.h -- hang detection: a thread on every rank that publishes the
 * rank's progress out of band and ends the job when a collective stays
 * pending longer than comm.timeout, naming the ranks that never reached it.
 *
 * Out of band means not through the communicators that may be stuck: every
 * `heartbeat` seconds each rank's watchdog rewrites a small text file,
 * run.dir/heartbeat/rank-N (format in docs/operations.md): time, step, and
 * for each live communicator its id, members (world ranks), the number of
 * operations posted and the oldest still pending. A multi-node job needs
 * run.dir on a file system every node sees (it already does for
 * checkpoints). A rank that is stopped or dead stops rewriting its file,
 * which is itself evidence.
 *
 * When an operation (comm id C, sequence number S) is pending too long --
 * seen by the thread waiting on it (request.c) or by the watchdog when no
 * thread waits -- weft_watchdog_explain reads the other members' files:
 * a member whose posted count is <= S never reached the operation; one
 * whose heartbeat is old is stopped, hung or dead. The verdict goes into
 * the abort message and run.dir/hang-rN.txt, the flight recorder into
 * run.dir/flight-rN.json (weft_abort's hook), and weft-doctor reads them.
 *
 * Raw MPI: HDF5's collective file calls (a checkpoint's create, writes,
 * close; a load's open and reads) go through MPI directly, where no
 * operation of a weft communicator is pending, so a rank stopped before
 * one of them would leave the others inside it forever. Code brackets such
 * calls with weft_watchdog_raw_begin/end; once this rank has been inside
 * longer than comm.timeout, the watchdog reads the other ranks' heartbeats
 * and ends the job naming any that is silent (stopped, hung or dead). A
 * long but live call (a large checkpoint on a slow disk) is left alone:
 * every heartbeat is fresh.
 *
 * States: stopped --weft_watchdog_start--> running --weft_watchdog_stop-->
 * stopped; running --hang found--> the job is aborted.
 */
#ifndef WEFT_COLLECTIVES_WATCHDOG_H
#define WEFT_COLLECTIVES_WATCHDOG_H

#include <stddef.h>
#include <stdint.h>

#include "collectives/comm.h"
#include "collectives/flight.h"

/* dir: run.dir; heartbeat_s: seconds between heartbeat files (> 0; at most
 * a quarter of timeout_s is used); timeout_s: comm.timeout. One watchdog per
 * process. */
int weft_watchdog_start(weft_ctx *ctx, const char *dir, double heartbeat_s, double timeout_s);
void weft_watchdog_stop(void);

/* The run is over but the process is not: the watchdog keeps publishing
 * heartbeats and bounding raw MPI until weft_finalize's MPI_Finalize has
 * returned, then stops (weft_at_finalize). So a peer stopped at the very
 * end is named, not left holding MPI_Finalize. A later weft_watchdog_start
 * stops this one first. States: running --end_run--> ending --MPI_Finalize
 * returned, or weft_watchdog_stop--> stopped. */
void weft_watchdog_end_run(void);

/* Which members of c have not reached operation seq (an op), from their heartbeat
 * files: "; never reached it: rank 1 (...)" appended to buf. Also writes
 * run.dir/hang-r<rank>.txt. No-op when the watchdog is not running. */
void weft_watchdog_explain(const weft_comm *c, uint64_t seq, weft_op_kind op, double pending_s, char *buf,
                           size_t len);

/* This thread enters (leaves) calls into raw MPI that every rank of the
 * world makes together; `what` names them for the abort message ("creating
 * checkpoint file X"). Nested pairs count as one, the outermost's name. May
 * be called whether the watchdog runs or not, from any one thread at a
 * time (the HDF5 lock serialises the callers). */
void weft_watchdog_raw_begin(const char *what);
void weft_watchdog_raw_end(void);

#endif
