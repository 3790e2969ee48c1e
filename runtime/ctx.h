/*
 * ctx.h -- the process's view of the job: who started it, where each rank
 * runs, the configuration, and how to end the whole job when something is
 * beyond repair.
 *
 * weft_init() initialises MPI with MPI_THREAD_MULTIPLE (or adopts an MPI the
 * program already initialised), learns the placement (world rank/size, node
 * index and count, local rank and size from MPI_COMM_TYPE_SHARED), detects
 * the launcher and job id, reads the configuration from the command line,
 * and has rank 0 print a one-line job summary. weft_finalize() undoes it.
 *
 * The fields of weft_ctx are read-only for everyone but ctx.c.
 */
#ifndef WEFT_RUNTIME_CTX_H
#define WEFT_RUNTIME_CTX_H

#include "runtime/api.h"

#include <mpi.h>
#include <stdint.h>
#include <stdnoreturn.h>

#include "runtime/config.h"

typedef enum {
    WEFT_LAUNCHER_NONE = 0,   /* a single process started by hand (singleton) */
    WEFT_LAUNCHER_MPIRUN,     /* Open MPI's mpirun/mpiexec (also inside sbatch) */
    WEFT_LAUNCHER_SRUN_PMIX,  /* Slurm srun --mpi=pmix */
    WEFT_LAUNCHER_SRUN_PMI2,  /* Slurm srun --mpi=pmi2 */
    WEFT_LAUNCHER_SRUN_NOPMI, /* srun without a PMI plugin: each task is a singleton */
} weft_launcher;

typedef struct weft_ctx {
    int rank, size;             /* in MPI_COMM_WORLD */
    int local_rank, local_size; /* among the ranks on this node */
    int node, nnodes;           /* this node's index; number of nodes */
    char host[64];              /* short host name */
    weft_launcher launcher;
    int in_slurm;               /* running inside a Slurm allocation */
    char job_id[64];            /* SLURM_JOB_ID, or generated and shared by rank 0 */
    int thread_level;           /* MPI thread support provided */
    int owns_mpi;               /* weft_init initialised MPI and will finalise it */
    MPI_Comm world;             /* private duplicate of MPI_COMM_WORLD */
    MPI_Comm node_comm;         /* ranks sharing this node */
    weft_config *config;
    int64_t t_init_ns;          /* monotonic time of weft_init */
    double finalize_timeout_s;  /* weft_finalize gives MPI_Finalize twice this + 5 s, then ends this
                                 * rank (exit 70): a peer stopped or dead inside it would hold the
                                 * job forever. 0: no bound. The trainer sets it to comm.timeout. */
} weft_ctx;

/* Keys the runtime itself reads (log.level, run.dir). */
extern WEFT_API const weft_config_key weft_runtime_config_keys[];

/* keys: NULL-terminated list of key tables the program uses (the runtime's
 * own table is added automatically). Consumes --config/--section.key=value
 * from argv (see weft_config_parse_args). On a configuration error, rank 0
 * logs the message, MPI is finalised if weft initialised it, and the code is
 * returned (WEFT_ECONFIG or WEFT_ENOENT): pass it to weft_exit_code(). */
WEFT_API int weft_init(int *argc, char **argv, const weft_config_key *const *keys, weft_ctx **out);
WEFT_API void weft_finalize(weft_ctx *ctx);

/* Launcher detection from an environment lookup (getenv, or a test's). */
WEFT_API weft_launcher weft_launcher_detect(const char *(*lookup)(const char *name));
WEFT_API const char *weft_launcher_name(weft_launcher l);

/* The one-line job summary rank 0 prints at start. */
WEFT_API void weft_job_summary(const weft_ctx *ctx, char *buf, size_t len);

/* The current context (set by weft_init, NULL before and after). For code
 * that must act on the whole job from anywhere: abort hooks, signal paths. */
WEFT_API weft_ctx *weft_ctx_current(void);

/* End the whole job now: log the message on this rank, run the abort hooks
 * (flight-recorder dumps, ...) once, then MPI_Abort with exit status 70, or
 * _exit(70) without MPI. Never returns; never hangs. */
WEFT_API noreturn void weft_abort(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same, ending the job with exit status `status` (e.g. 65 for bad data
 * found mid-run) instead of 70. */
WEFT_API noreturn void weft_abort_with(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Register fn(arg) to run inside weft_abort (at most 16 hooks). */
WEFT_API int weft_at_abort(void (*fn)(void *arg), void *arg);

/* fn(0) right before weft_finalize's MPI_Finalize, fn(1) right after it
 * returned: the watchdog keeps a run's last moments bounded and names a
 * peer stopped there (collectives/watchdog.h). One hook; a second call
 * replaces the first. */
WEFT_API void weft_at_finalize(void (*fn)(int after));
/* Inside a hook: the message the job is being aborted with. */
WEFT_API const char *weft_abort_reason(void);
/* Inside a hook: the exit status the job is being aborted with. */
WEFT_API int weft_abort_status(void);

#endif
