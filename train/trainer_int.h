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
#include "train/trainer.h"

typedef struct {
    /* resolved options */
    int64_t steps, T, b, G, k;  /* k micro-batches per step of b sequences of T tokens */
    int64_t eval_every, eval_batches, log_every, ckpt_every;
    uint64_t seed;
    int at_end, on_error_continue, skip_nonfinite, tty, zero;
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
    weft_dp *dp;
    weft_optim *opt;
    weft_pipe *pipe;
    size_t (*norm)[2];          /* ranges this rank counts in the global gradient norm */
    int nnorm;
    size_t (*tied)[2];          /* ranges of tied tensors (summed over the embedding group) */
    int ntied;
    weft_source *train, *val;
    FILE *metrics;
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
    double peak_flops;          /* one rank's f32 peak FLOP/s, what MFU divides by: run.peak_flops,
                                   or weft_matmul_peak at start (0: not known yet) */
    int peak_warned;            /* told once that a step beat the peak */
    /* provenance.c: the checkpoint this run started from (rank 0) */
    int has_parent;
    uint64_t parent_id;         /* its identity (checkpoint/seal.h) */
    char parent_kind[16];       /* resume | init-from */
    char parent_path[4300];
};


/* cadence.c */
int weft_trainer_ckpt_resume(weft_trainer *t, const weft_trainer_start_opts *o);
int weft_trainer_ckpt_setup(weft_trainer *t);
int weft_trainer_ckpt_save(weft_trainer *t, weft_step_stats *s, int wait);
int weft_trainer_ckpt_step(weft_trainer *t, weft_step_stats *s);
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

/* report.c */
int weft_trainer_open_metrics(weft_trainer *t);
int weft_trainer_metrics_resume(weft_trainer *t);
int weft_trainer_write_run_info(weft_trainer *t);
int weft_trainer_write_file(const weft_trainer *t, const char *name, const char *text);
void weft_trainer_describe(const weft_trainer *t);
void weft_trainer_log_step(weft_trainer *t, const weft_step_stats *s);
void weft_trainer_progress(const weft_trainer *t, const weft_step_stats *s);
void weft_trainer_report_step(weft_trainer *t, const weft_step_stats *s);

#endif
