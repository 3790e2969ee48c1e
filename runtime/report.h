/*
 * report.h -- what a running job tells the people and programs watching it,
 * and the three ways it is written down: status.json, Prometheus text
 * exposition format 0.0.4, and a one-line Slurm job comment.
 *
 * weft_report is a plain snapshot; the renderers are pure functions of it
 * (and the wall-clock time passed in), so they are tested without a job.
 * runtime/sched.c owns the snapshot and decides when each is written.
 */
#ifndef WEFT_RUNTIME_REPORT_H
#define WEFT_RUNTIME_REPORT_H

#include <stddef.h>
#include "runtime/api.h"
#include <stdint.h>

typedef enum {
    WEFT_RUN_STARTING = 0, /* set-up: model, data, communicators */
    WEFT_RUN_RUNNING,      /* training steps */
    WEFT_RUN_STOPPING,     /* a stop signal arrived; checkpointing */
    WEFT_RUN_PREEMPTED,    /* stopped after a committed checkpoint: requeue me */
    WEFT_RUN_DONE,         /* every step done */
    WEFT_RUN_FAILED,       /* ended by an error */
    WEFT_RUN_NSTATES
} weft_run_state;

WEFT_API const char *weft_run_state_name(weft_run_state s);

/* What a rank's memory holds, by category (train/memory.h computes them). */
typedef enum {
    WEFT_MEM_PARAMS = 0, /* parameters (trained and frozen) */
    WEFT_MEM_GRADS,      /* their gradients */
    WEFT_MEM_OPTIM,      /* optimizer state (AdamW's two moments) */
    WEFT_MEM_ACTS,       /* activations of the micro-batches in flight, their gradients */
    WEFT_MEM_COMM,       /* communication buffers */
    WEFT_MEM_CKPT,       /* checkpoint staging */
    WEFT_MEM_RUNTIME,    /* the process before the model: code, libraries, MPI (measured) */
    WEFT_MEM_NCAT
} weft_mem_cat;
/* "params", "grads", "optimizer", "activations", "comm", "checkpoint", "runtime" */
WEFT_API const char *weft_mem_cat_name(weft_mem_cat c);

/* The memory part of a report: the account of the rank that plans to hold
 * the most, and the largest peak resident memory measured over the ranks. */
typedef struct weft_report_memory {
    int known;                   /* 0: no account yet (left out of the reports) */
    int rank;                    /* whose account bytes[] is */
    double bytes[WEFT_MEM_NCAT]; /* by category */
    double planned;              /* their sum */
    double peak_rss;             /* the largest VmHWM over the ranks (NaN: not measured yet) */
    int peak_rank;               /* the rank it was measured on */
} weft_report_memory;


typedef struct weft_report {
    char job_id[64];
    weft_run_state state;
    int64_t step, total_steps;  /* optimizer steps completed / planned */
    double loss;                /* last step's training loss (NaN: none yet) */
    double tokens_per_s;        /* last logged step's throughput */
    double flops_per_s;         /* its model FLOP/s on one rank (NaN: unknown) */
    double peak_flops;          /* one rank's peak FLOP/s that MFU = flops_per_s / peak_flops uses (NaN: unknown) */
    double eta_s;               /* remaining steps x mean recent step time (NaN: unknown) */
    double step_s;              /* last step's wall time, and its parts: */
    double compute_s, comm_s, data_s, ckpt_s; /* compute, exposed communication, data wait, checkpoint stall */
    int64_t tokens;             /* tokens trained by this attempt */
    int64_t ckpt_step;          /* last committed checkpoint's step (-1: none) */
    char ckpt_path[1024];
    double ckpt_time;           /* wall time of its commit */
    /* two checkpoint tiers (checkpoint.local_dir): the drain to the shared one */
    int tiered;                 /* 1: the drain fields below are reported */
    int64_t drained_step;       /* newest checkpoint drained to the shared tier by this attempt (-1: none) */
    int drains, drain_retries, drain_failures;
    char drain_error[512];      /* the last drain failure ("" after a success) */
    int restarts;               /* times the scheduler restarted the job */
    int stop_signal;            /* the signal that asked to stop (0: none) */
    double started;             /* wall time of the attempt's start */
    double heartbeat;           /* wall time of the training loop's last report */
    char message[512];          /* why it failed or stopped ("" otherwise) */
    int exit_code;              /* the exit status it ended with (-1: not ended, or unknown) */
    weft_report_memory mem;     /* bytes held by category, and the measured peak */
} weft_report;

/* A report of nothing yet (loss NaN, no checkpoint, state starting). */
WEFT_API void weft_report_init(weft_report *r, const char *job_id);

/* status.json: one JSON object and a newline. Returns the length written
 * (truncated output is a bug: the buffer should be >= 4 KiB). */
WEFT_API int weft_report_json(const weft_report *r, double now, char *buf, size_t len);

/* Prometheus text exposition format 0.0.4: HELP and TYPE for every metric,
 * samples labelled with the job id. */
WEFT_API int weft_report_prometheus(const weft_report *r, double now, char *buf, size_t len);

/* The Slurm job comment: "step 50/100 loss 2.31 5.1k tok/s ETA 1m40s ckpt 40". */
WEFT_API int weft_report_comment(const weft_report *r, char *buf, size_t len);

#endif
