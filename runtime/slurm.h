/*
 * slurm.h -- what weft asks of Slurm while a job runs: the restart count,
 * job comment updates and requeue, all through `scontrol`, the one
 * interface every Slurm installation has.
 *
 * scontrol runs as a child started with posix_spawn (no fork of a large
 * multithreaded MPI process), its output discarded. weft_slurm_spawn
 * returns at once; weft_slurm_reap collects the child later, so the caller
 * (the reporter thread) never waits on slurmctld. weft_slurm_run waits,
 * bounded, for the one call that must finish (requeue).
 */
#ifndef WEFT_RUNTIME_SLURM_H
#define WEFT_RUNTIME_SLURM_H

#include <sys/types.h>

/* SLURM_RESTART_COUNT (0 when unset: never restarted, or not Slurm). */
int weft_slurm_restart_count(void);

/* Start `scontrol ARGS...` (argv NULL-terminated, without "scontrol");
 * *pid gets the child. */
int weft_slurm_spawn(char *const argv[], pid_t *pid);

/* 1 and *status (the exit status, or 128+signal) once the child has
 * ended; 0 while it runs. */
int weft_slurm_reap(pid_t pid, int *status);

/* Run scontrol and wait at most timeout_s; a child still running then is
 * killed. WEFT_EIO naming the command and its status on failure. */
int weft_slurm_run(char *const argv[], double timeout_s);

/* scontrol update JobId=job Comment=text, in the background (*pid). */
int weft_slurm_comment(const char *job, const char *text, pid_t *pid);

/* scontrol requeue job, waited for (at most 30 s). */
int weft_slurm_requeue(const char *job);

#endif
