/*
 * trainer_int.h -- the trainer's state, shared by its files and nobody
 * else: trainer.c (set-up, the loop, close), step.c (one step and
 * evaluation), cadence.c (checkpoints: resume at start, save after steps),
 * report.c (metrics.jsonl, the log line, run.json, scheduler reports),
 * rundir.c (who owns run.dir: refuse, move aside, claim).
 *
 * Options are resolved into fields once, in weft_trainer_new; the step
 * never looks a key up by string.
 */
#ifndef WEFT_TRAIN_TRAINER_INT_H
#define WEFT_TRAIN_TRAINER_INT_H

#include <stdio.h>

#include "checkpoint/state.h"
#include "model/optim.h"
#include "parallel/dp.h"
#include "parallel/pipeline.h"
#include "runtime/sched.h"
#include "train/memory.h"
#include "train/trainer.h"
#include "runtime/device.h"

typedef struct {
    /* resolved options */
    int64_t steps, T, b, G, k;  /* k micro-batches per step of b sequences of T tokens */
    int64_t eval_every, eval_batches, log_every, ckpt_every;
    uint64_t seed;
    int at_end, on_error_continue, skip_nonfinite, tty, zero, recompute;
    const char *run_dir, *schedule;
    weft_adamw_opts adamw;
} trainer_opts;

struct weft_trainer {
    weft_ctx *ctx;
    const weft_config *cfg;
    trainer_opts o;
    weft_comm *world;
    int rank, size;             /* in world */
    int owns_world;             /* made here (weft_trainer_new), not lent (weft_trainer_new_on) */
    weft_mesh *mesh;
    weft_comm *comm;            /* the data-parallel group (the mesh's DP axis) */
    int D;                      /* its size */
    weft_model *model;          /* this rank's stage and tensor-parallel slice */
    weft_dev *dev;              /* where its buffers live (runtime/device.h; the process's device) */
    char device_note[512];      /* how run.device chose it (the start line) */
    char devices[256];          /* rank 0: every rank's device, for the start line */
    weft_dp *dp;
    weft_optim *opt;
    weft_pipe *pipe;
    size_t (*norm)[2];          /* ranges this rank counts in the global gradient norm */
    int nnorm;
    size_t (*tied)[2];          /* ranges of tied tensors (summed over the embedding group) */
    int ntied;
    weft_source *train, *val;
    int metrics_fd;             /* rank 0: metrics.jsonl, O_APPEND (runtime/durable.h); -1 elsewhere */
    char metrics_path[4200];
    int metrics_warned;         /* told once that a row could not be written */
    int64_t t_start_ns;
    int running;                /* past set-up: a failure now leaves ranks mid-collective */
    int started;                /* weft_trainer_start succeeded: services to stop */
    weft_sched *sched;          /* stop signals and progress reports (runtime/sched.h) */
    int exit_status;            /* set when the run ends with its own status (preemption) */
    weft_ckpt *ckpt;
    weft_ckpt_model cdesc;      /* the model as the checkpoint sees it */
    uint8_t *source_state;      /* staging for the source's position */
    int64_t start_step;         /* steps already done (resumed) */
    int64_t reported_ckpt;      /* the last committed step told to the scheduler */
    int resuming;               /* --resume: metrics.jsonl is kept up to the resumed step */
    int nothing_to_do;          /* resumed at or past train.steps: start and run touch nothing */
    int loaded;                 /* a checkpoint was resumed (not --init-from) */
    char *base_path;            /* where the model's frozen tensors came from (absolute), or NULL */
    uint64_t base_hash;         /* its weft_ckpt_params_hash */
    double peak_flops;          /* one rank's peak FLOP/s in train.precision, what MFU divides by:
                                   run.peak_flops, or weft_matmul_peak_as at start (0: not known yet) */
    int peak_warned;            /* told once that a step beat the peak */
    int bf16;                   /* train.precision = bf16: linear layers on bf16 copies (kernels.h) */
    size_t runtime_rss;         /* resident bytes when weft_trainer_new began: the process before the run */
    weft_mem_account mem;       /* this rank's memory account (memreport.c) */
    double *mem_all;            /* (size, WEFT_MEM_NCAT + 1) every rank's account and total, at start */
    double *mem_peak;           /* (size) every rank's peak resident memory, last measured */
    uint64_t owner_id;          /* XXH3-64 of run.dir/owner.json, every rank (0: none yet); rundir.c */
    /* provenance.c: the checkpoint this run started from (rank 0) */
    int has_parent;
    uint64_t parent_id;         /* its identity (checkpoint/seal.h) */
    char parent_kind[16];       /* resume | init-from */
    char parent_path[4300];
};

/* step.c: the weights' bf16 copies rounded again from the f32 masters
 * (train.precision = bf16; nothing in f32), after anything writes the
 * weights: an optimizer step and its gather, a checkpoint load. */
void weft_trainer_weights_changed(weft_trainer *t);

/* cadence.c */
int weft_trainer_ckpt_resume(weft_trainer *t, const weft_trainer_start_opts *o);
int weft_trainer_ckpt_setup(weft_trainer *t);
int weft_trainer_ckpt_save(weft_trainer *t, weft_step_stats *s, int wait);
int weft_trainer_ckpt_step(weft_trainer *t, weft_step_stats *s);
/* With checkpoint.local_dir: wait (checkpoint.drain_timeout) until the last
 * checkpoint is in the shared tier too; the agreed error otherwise. */
int weft_trainer_ckpt_drained(weft_trainer *t);
int weft_trainer_ckpt_final(weft_trainer *t, weft_step_stats *s);
void weft_trainer_ckpt_report(weft_trainer *t);

/* provenance.c: checkpoint.trusted_keys before a checkpoint is loaded
 * (collective; WEFT_EDATA naming why it is refused), what a loaded one was
 * (rank 0), and the provenance every checkpoint of this run records
 * (collective, after weft_ckpt_new; ini: the stored configuration). */
int weft_trainer_check_trusted(weft_trainer *t, const char *path);
void weft_trainer_note_parent(weft_trainer *t, const char *path, const char *kind);
int weft_trainer_provenance(weft_trainer *t, const char *ini);

/* rundir.c: before anything is written (collective), and once the run
 * will train (rank 0 writes owner.json) */
int weft_trainer_rundir_claim(weft_trainer *t, const weft_trainer_start_opts *o);
int weft_trainer_rundir_own(weft_trainer *t);
int weft_trainer_owner_id(weft_trainer *t);

/* report.c */
int weft_trainer_open_metrics(weft_trainer *t);
int weft_trainer_metrics_resume(weft_trainer *t);
int weft_trainer_write_run_info(weft_trainer *t);
int weft_trainer_write_file(const weft_trainer *t, const char *name, const char *text);
void weft_trainer_describe(const weft_trainer *t);
void weft_trainer_log_step(weft_trainer *t, const weft_step_stats *s);
void weft_trainer_progress(const weft_trainer *t, const weft_step_stats *s);
void weft_trainer_report_step(weft_trainer *t, const weft_step_stats *s);
/* memreport.c (collective): the account at start, the measured peaks */
int weft_trainer_memory_start(weft_trainer *t);
int weft_trainer_memory_peak(weft_trainer *t, int final);

#endif
