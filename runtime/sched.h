/*
 * sched.h -- scheduler integration for a training loop: the stop signals,
 * and rank 0's progress reports (status.json, Prometheus metrics over HTTP
 * and as a node_exporter textfile, the Slurm job comment), and the
 * "checkpointed, requeue me" ending with Slurm's requeue.
 *
 * Every rank calls the same functions; only rank 0 publishes. The training
 * thread only copies numbers into a snapshot under a mutex: the files, the
 * HTTP server and scontrol all run on rank 0's reporter and server threads,
 * so a slow file system or slurmctld never stalls a step.
 *
 * States (runtime/report.h): starting --weft_sched_step--> running
 *   --stop signal seen (weft_sched_stopping)--> stopping
 *   --weft_sched_preempted--> preempted (exit sched.requeue_exit_code)
 *   running --weft_sched_finish--> done | failed
 */
#ifndef WEFT_RUNTIME_SCHED_H
#define WEFT_RUNTIME_SCHED_H

#include "runtime/api.h"
#include <stdint.h>

#include "runtime/config.h"
#include "runtime/ctx.h"
#include "runtime/report.h"

/* The sched.* configuration keys. */
extern WEFT_API const weft_config_key weft_sched_config_keys[];

typedef struct weft_sched weft_sched;

/* What one step did, as the training loop measured it. */
typedef struct weft_sched_step_info {
    int64_t step;     /* steps completed, counting this one */
    double loss;
    int64_t tokens;   /* tokens in this step (all ranks) */
    double step_s, compute_s, comm_s, data_s, ckpt_s;
    double flops_per_rank;   /* model FLOPs of this step on one rank (0: unknown) */
    double peak_flops;       /* one rank's peak FLOP/s, what MFU divides by (0: unknown) */
} weft_sched_step_info;

/* Installs the stop-signal handlers (every rank) unless weft_stop_install
 * already did; on rank 0 starts the
 * reporter thread and, with sched.metrics_port >= 0, the metrics server
 * (port written to run.dir/metrics.port). total_steps: train.steps. */
WEFT_API int weft_sched_start(weft_ctx *ctx, const weft_config *cfg, int64_t total_steps, weft_sched **out);

/* Record a finished step (cheap; never blocks on I/O). */
WEFT_API void weft_sched_step(weft_sched *s, const weft_sched_step_info *info);
/* Steps already done when this attempt started (a resumed run). */
WEFT_API void weft_sched_resumed(weft_sched *s, int64_t step);
/* The memory account and the measured peak (status.json's "memory",
 * Prometheus' weft_memory_*); rank 0's call publishes it. */
WEFT_API void weft_sched_memory(weft_sched *s, const weft_report_memory *m);
/* A checkpoint of `step` is committed at path. */
WEFT_API void weft_sched_checkpoint(weft_sched *s, int64_t step, const char *path);
/* Two checkpoint tiers: the drain to the shared tier so far (status.json's
 * shared_tier, the weft_checkpoint_drain* metrics). error: the last
 * failure, "" after a success. */
WEFT_API void weft_sched_drain(weft_sched *s, int64_t drained_step, int drains, int retries, int failures,
                               const char *error);
/* The training loop is alive (long evaluations, checkpoint waits). */
WEFT_API void weft_sched_heartbeat(weft_sched *s);

/* The signal that asked this rank to stop, or 0 (see runtime/stop.h). */
WEFT_API int weft_sched_stop_signal(const weft_sched *s);
/* All ranks agreed to stop after `step` (signal: the one seen, or 0 when
 * another rank saw it): state stopping, logged once by rank 0. */
WEFT_API void weft_sched_stopping(weft_sched *s, int64_t step, int signal);

/* The stop is complete and (committed) a checkpoint is durable: state
 * preempted; under Slurm rank 0 requeues the job, unless it has already
 * been restarted sched.max_requeues times or sched.requeue is off. Returns
 * the exit status to end with: sched.requeue_exit_code after a committed
 * checkpoint, else WEFT_EXIT_TEMPFAIL (75: stopped, nothing saved). */
WEFT_API int weft_sched_preempted(weft_sched *s, int committed);

/* Final report (done or failed, with a message), written synchronously;
 * stops the threads and frees s. NULL is a no-op. */
WEFT_API void weft_sched_finish(weft_sched *s, weft_run_state final, const char *message);
/* The exit status the program will end with, for status.json's exit_code
 * (call before weft_sched_finish; weft_abort and weft_sched_preempted set
 * it themselves). */
WEFT_API void weft_sched_exit_status(weft_sched *s, int status);

/* The step the training loop last reported on this rank (for the watchdog
 * and the abort path); -1 before the first. */
WEFT_API int64_t weft_sched_current_step(void);

/* Write text to path through a temporary name and a rename (mode 0640),
 * never fsynced: runtime/durable.h's best-effort policy, for files a
 * program rewrites often (status.json, the Prometheus textfile). */
WEFT_API int weft_write_atomic(const char *path, const char *text, size_t len);

#endif
