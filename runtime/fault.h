/*
 * fault.h -- the fault registry: faults a test asks for by name in the
 * environment, injected at exact points of the library, never by timing.
 *
 *   WEFT_FAULT=name[:arg][@rank],...     e.g.  kill_save_data:4@1,nan_step:3
 *
 * The list is read once, by weft_init (weft_fault_init); an unknown name, a
 * malformed argument or rank is a configuration error naming the entry
 * (WEFT_ECONFIG, exit 64). Without the variable every point costs one
 * branch. `@rank` restricts a fault to that world rank; without it every
 * rank takes it.
 *
 * Each point is reached with a number n: the step the code is at (the 1-
 * based step the logs print, or the checkpoint's step for a save), or -1
 * where it has none, in which case the registry counts the point's hits on
 * this rank and uses the count. A fault fires when its arg equals n; a fault
 * given without an arg fires at every hit (a kill or a stall: at the first).
 * What a fault does depends on its action:
 *
 *   kill_*    SIGKILL of this process, after a log line naming the fault;
 *   stall_*   SIGSTOP of this process: it stays, silent, until killed (the
 *             other ranks' watchdog must notice and end the job);
 *   usr1_step SIGUSR1 to this process, as a scheduler sends before a time
 *             limit: the job agrees on a step, checkpoints and stops;
 *   hold_save the checkpoint writer waits, before writing, until the
 *             training loop has begun step arg: saves due meanwhile find the
 *             writer busy, whatever the machine's speed;
 *   hold_*    (the others) a handshake with the test, once: the point
 *             creates DIR/fault-held-r<rank> (DIR: weft_fault_set_dir,
 *             run.dir in a job) and waits until DIR/fault-release-r<rank>
 *             exists, removes both and goes on; the test does what it needs
 *             with the process parked at an exact point (cut its link, kill
 *             it). A rank's own watchdog does not count the held time
 *             against comm.timeout (weft_fault_held_since);
 *   others    weft_fault_at returns a value for the caller to act on: 1 (a
 *             NaN loss, a dropped reduction, a closed connection), an errno
 *             (a failed write), milliseconds (a slow step).
 *
 * The table of names, args and points is in docs/operations.md ("Fault
 * injection"); weft_fault_names lists them for messages.
 */
#ifndef WEFT_RUNTIME_FAULT_H
#define WEFT_RUNTIME_FAULT_H

#include <stdint.h>

typedef enum {
    WEFT_FAULT_START,       /* start-up done, before the first step (n: -1) */
    WEFT_FAULT_STEP,        /* the start of step n */
    WEFT_FAULT_EVAL,        /* the evaluation after step n, after its first batch */
    WEFT_FAULT_SAVE_DATA,   /* save of step n: its first dataset written, the rest not */
    WEFT_FAULT_SAVE_COMMIT, /* save of step n: the file fsynced, not yet renamed into place */
    WEFT_FAULT_SAVE_LATEST, /* save of step n: renamed into place, `latest` not yet updated */
    WEFT_FAULT_RESUME,      /* --resume: checkpoint chosen, before it is read (n: -1) */
    WEFT_FAULT_SAVE_WRITE,  /* save of step n: a data write (pwrite) fails (errno) */
    WEFT_FAULT_FILE_WRITE,  /* a small file's write, temp + rename (errno; n: -1) -- the durable-file hook */
    WEFT_FAULT_LOSS,        /* step n's local loss (1: make it NaN) */
    WEFT_FAULT_TP_GRAD,     /* a tensor-parallel input-gradient reduction (1: skip it; n: -1) */
    WEFT_FAULT_TCP_SEND,    /* a tcp transport send (1: shut the connection down first; n: -1) */
    WEFT_FAULT_OP_POSTED,   /* a collective or point-to-point operation posted (n: -1, any communicator) */
    WEFT_FAULT_STEP_DELAY,  /* after each step (milliseconds to sleep; n: -1) */
    WEFT_FAULT_SAVE_HOLD,   /* a save of step n, before it writes (hold_save:N waits there for step N) */
    WEFT_FAULT_SAVE_OPEN,   /* save of step n: before the file is created (HDF5's collective MPI-IO open) */
    WEFT_FAULT_DRAIN_COPY,  /* the drain of step n to the shared tier: its first chunk copied, the rest not */
    WEFT_FAULT_DRAIN_TRY,   /* a drain attempt, at the same place (errno; n: -1) */
    WEFT_FAULT_GRAD_REDUCE, /* step n's gradient reduction: every bucket posted, none waited for
                             * (n: -1; the registry uses the step the loop last began) */
    WEFT_FAULT_END,         /* the run done on this rank, before the job's last barrier (n: -1) */
    WEFT_FAULT_FINALIZE,    /* weft_finalize, right before MPI_Finalize (n: -1) */
    WEFT_FAULT_SAVE_SHORT,  /* save of step n: a data write takes half its bytes, then fails (1) */
    WEFT_FAULT_SAVE_LOST,   /* save of step n: the first data write reports success, writes nothing (1) */
    WEFT_FAULT_NPOINTS
} weft_fault_point;

/* Parse WEFT_FAULT for world rank `rank`. 0, or WEFT_ECONFIG naming the entry. */
int weft_fault_init(int rank);

/* Parse `spec` (the WEFT_FAULT syntax) as this process's faults, replacing
 * any earlier ones; NULL or "" clears them. For weft_fault_init and tests. */
int weft_fault_set(const char *spec, int rank);

/* The point is reached with number n (-1: count the hits). Kills and stalls
 * act here; otherwise 0, or the fault's value for the caller. */
int weft_fault_at(weft_fault_point p, int64_t n);

/* As weft_fault_at; a hold_* handshake waiting here also ends when
 * cancelled(arg) returns nonzero (polled): then ECANCELED. */
int weft_fault_at_or(weft_fault_point p, int64_t n, int (*cancelled)(void *), void *arg);

/* The directory of the hold_* handshake files (a copy is kept; NULL: the
 * current directory). weft_init sets run.dir. */
void weft_fault_set_dir(const char *dir);

/* For the watchdog: the monotonic time (weft_now_ns) since which this
 * process has not been held by a hold_* fault -- now while one waits, the
 * end of the last one after, 0 when none ever did. An operation's pending
 * time counts from no earlier than this. */
int64_t weft_fault_held_since(void);

/* Every fault name, comma-separated (for messages and --help). */
const char *weft_fault_names(void);

#endif
