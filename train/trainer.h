/*
 * trainer.h -- the library trainer: the training step and the services
 * around it for any model that implements model/model.h. A program builds
 * its model; the trainer does the rest, the same for GPT-2 and for a
 * researcher's own model:
 *
 *   weft_trainer_new          the world communicator, the DP x TP x PP mesh,
 *                             stop signals, tracing (collective)
 *   weft_trainer_open_tokens  training (and validation) batches from the
 *   or weft_trainer_set_source  token datasets of data.path, or your own source
 *   weft_trainer_part         which part of the model this rank builds
 *   weft_trainer_set_model    data parallelism (buckets, ZeRO), AdamW, the
 *                             pipeline schedule (collective)
 *   weft_trainer_start        metrics, run.json, scheduler reporting, the
 *                             watchdog, checkpoints, --resume / --init-from
 *   weft_trainer_run          every step until train.steps or a stop signal
 *   weft_trainer_close        the run's exit status; frees everything
 *
 * One step (weft_trainer_step), as in llm.c's main: next batch -> the
 * pipeline schedule runs forward and backward of every micro-batch through
 * this rank's stage (the last backward reduces gradient buckets as it
 * goes) -> sum tied parameters between first and last stage -> finish the
 * reductions -> mean loss over the mesh -> global gradient norm -> clip ->
 * AdamW on this rank's shard -> (ZeRO) gather the parameters. The loop
 * around it adds the checkpoint cadence, evaluation, metrics, scheduler
 * reports and the stop agreement. Everything is sized at start: a step
 * allocates nothing.
 *
 * A run directory holds one run: a fresh start where one is refused (or
 * with run.overwrite moves it to run.dir/previous/), decided by rank 0
 * before anything is written (train/rundir.c; docs/operations.md).
 * Everything the run writes goes under run.dir: config.ini and run.json at
 * start, metrics.jsonl as it goes, checkpoints/ (docs/checkpoint-format.md),
 * status.json (docs/slurm.md), trace/rank-N.json when trace.steps is set.
 */
#ifndef WEFT_TRAIN_TRAINER_H
#define WEFT_TRAIN_TRAINER_H

#include <stdint.h>

#include "checkpoint/ckpt.h"
#include "checkpoint/state.h"
#include "collectives/comm.h"
#include "data/loader.h"
#include "model/model.h"
#include "model/optim.h"
#include "parallel/dp.h"
#include "parallel/mesh.h"
#include "runtime/sched.h"
#include "runtime/trace.h"
#include "runtime/api.h"
#include "runtime/config.h"
#include "runtime/ctx.h"
#include "train/source.h"

/* The [train] keys (train.steps, train.micro_batch, ...). */
extern WEFT_API const weft_config_key weft_train_config_keys[];

/* Every key table the trainer reads, for a program's list of key tables
 * (weft_init): put the model's own keys beside them, then NULL. */
#define WEFT_TRAINER_CONFIG_KEYS                                                                              \
    weft_comm_config_keys, weft_data_config_keys, weft_optim_config_keys, weft_parallel_config_keys,          \
        weft_mesh_config_keys, weft_train_config_keys, weft_trace_config_keys, weft_sched_config_keys,        \
        weft_ckpt_config_keys

typedef struct weft_trainer weft_trainer;

/* What the configuration is checked against, besides itself. */
typedef struct weft_trainer_check_in {
    int world;               /* ranks the job runs on */
    int rank;                /* this rank: only rank 0 prints warnings */
    int vocab;               /* the datasets' vocabulary; 0: unknown (its rules are skipped) */
    const char *whole_model; /* an option that needs the whole model on rank 0 ("--sample"), or NULL */
} weft_trainer_check_in;

/* The rules between keys (train/check.c: optim.min_lr <= optim.lr, the
 * batch and the model against the mesh, train.seq_len <= model.context,
 * ...), each applied when the program declares its keys. Allocates
 * nothing and starts nothing, so a program calls it before anything else
 * (weft-train --check); weft_trainer_new calls it too. WEFT_ECONFIG naming
 * every key involved. */
WEFT_API int weft_trainer_check(const weft_config *cfg, const weft_trainer_check_in *in);

/* Collective over every rank of ctx. Reads ctx->config once. */
WEFT_API int weft_trainer_new(weft_ctx *ctx, weft_trainer **out);
/* The same over the ranks of world only (not owned; NULL: every rank) with
 * the keys of cfg (which must hold weft_runtime_config_keys and the
 * trainer's): several trainers in one program, as benchmarks run them. */
WEFT_API int weft_trainer_new_on(weft_ctx *ctx, weft_comm *world, const weft_config *cfg, weft_trainer **out);

/* Batches from the token datasets of data.path: the training split, and
 * the validation split when train.eval_batches > 0 (without one, a warning
 * and no validation loss). *vocab (unless NULL: a program that already
 * read it, weft_token_source_vocab): the datasets' vocabulary. */
WEFT_API int weft_trainer_open_tokens(weft_trainer *t, int *vocab);
/* Or a source of the program's own (the trainer owns and closes them; val
 * may be NULL). Sources see this rank's data-parallel coordinates through
 * weft_trainer_mesh. */
WEFT_API void weft_trainer_set_source(weft_trainer *t, weft_source *train, weft_source *val);

/* The part of the model this rank builds (stage, TP slice, slots,
 * micro-batch and sequence length). */
WEFT_API void weft_trainer_part(const weft_trainer *t, weft_model_part *out);
/* The same for world rank `rank` of `world` ranks, from the keys alone (no
 * communicator: out->tp is NULL), for the memory planner (train/memory.h). */
WEFT_API int weft_trainer_part_at(const weft_config *cfg, int world, int rank, weft_model_part *out);
WEFT_API const weft_mesh *weft_trainer_mesh(const weft_trainer *t);
/* Data parallelism (buckets, ZeRO; weft_dp_mem), after weft_trainer_set_model. */
WEFT_API const weft_dp *weft_trainer_dp(const weft_trainer *t);
/* Collective. Every parameter of this rank's part in the model's param_data
 * (under parallel.zero = 3 only the shard is there between uses), until the
 * next step: before using the model outside the trainer (sampling,
 * writing its parameters out). */
WEFT_API int weft_trainer_whole_params(weft_trainer *t);

/* Collective. The trainer owns the model from here (it frees it). */
WEFT_API int weft_trainer_set_model(weft_trainer *t, weft_model *m);

typedef struct weft_trainer_start_opts {
    int resume;              /* 0 fresh (refused where run.dir holds a run, unless run.overwrite), 1 from
                              * run.dir's latest checkpoint (none: the newest that loads), 2 (auto): the
                              * same, falling back past bad ones, from step 0 when there is none */
    const char *init_from;   /* a checkpoint's weights only (fine-tuning): fresh optimizer and data; a
                              * file, or a run or checkpoints directory (its latest). A model with frozen
                              * tensors (model.h; LoRA) loads only those from it, and needs it unless it
                              * resumes. With resume = 2: used only when there is nothing to resume */
} weft_trainer_start_opts;

/* Collective. The run's services, and the resumed state if asked. */
WEFT_API int weft_trainer_start(weft_trainer *t, const weft_trainer_start_opts *o);

/* What one step measured. */
typedef struct weft_step_stats {
    int64_t step;            /* 0-based */
    double loss, lr, grad_norm, ms, data_ms, comm_ms, hidden, val_loss, ckpt_ms;
    double pipe_idle;        /* rank 0's stage: share of the schedule spent waiting (NaN: one stage) */
    double gather_ms;        /* ZeRO-3: time this step waited for parameter gathers */
    double gather_hidden;    /* ZeRO-3: share of the gathers' time hidden behind compute (NaN: not ZeRO-3) */
    int skipped;             /* a non-finite step skipped (train.on_nonfinite = skip) */
} weft_step_stats;

/* Collective. One training step (numbered s->step), without the services:
 * usable right after weft_trainer_set_model (tests, benchmarks). */
WEFT_API int weft_trainer_step(weft_trainer *t, weft_step_stats *s);

/* Collective. Only the weights of a checkpoint (a file, or a run or
 * checkpoints directory: its latest; any layout wrote it) into the model,
 * without the run's services: for a program that evaluates rather than
 * trains (weft-eval). After weft_trainer_set_model. */
WEFT_API int weft_trainer_load_weights(weft_trainer *t, const char *name);

/* Collective. The mean loss (over every position) of `batches` global
 * batches from the start of the validation split, the evaluation the loop
 * runs (batches <= 0: train.eval_batches); NaN when there is no validation
 * source. After weft_trainer_set_model; no step, no services needed. */
WEFT_API int weft_trainer_evaluate(weft_trainer *t, int64_t batches, double *val_loss);
/* Whole global batches in one pass over the validation split (0: none,
 * -1: an endless source). */
WEFT_API int64_t weft_trainer_val_batches(const weft_trainer *t);

/* The trainer's model, data parallelism and optimizer as the checkpoint
 * layer sees them, for a program that drives weft_ckpt itself (free with
 * weft_ckpt_model_free). */
WEFT_API int weft_trainer_ckpt_model(weft_trainer *t, weft_ckpt_model *out);

/* Collective. Steps from the resumed one to train.steps, with evaluation,
 * checkpoints, metrics and the stop agreement; *last: the final step's. */
WEFT_API int weft_trainer_run(weft_trainer *t, weft_step_stats *last);

/* The program's exit status for a run that returned rc: a failure's own
 * status, 0 when done, sched.requeue_exit_code (or 75) when stopped by a
 * signal. A failure mid-run on one rank ends the whole job (weft_abort).
 * Frees the trainer, its model and sources. */
WEFT_API int weft_trainer_close(weft_trainer *t, int rc);

#endif
