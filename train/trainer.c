/*
 * trainer.c -- the trainer's life: set-up (the mesh, the sources, the
 * model's data parallelism, optimizer and pipeline), the services at start,
 * the step loop, and the end (trainer.h). One step is in step.c.
 */
#include "train/trainer_int.h"
#include "collectives/agree.h"
#include "collectives/watchdog.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "runtime/error.h"
#include "runtime/fault.h"
#include "runtime/log.h"
#include "runtime/stop.h"
#include "runtime/trace.h"
#include "train/token_source.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const weft_config_key weft_train_config_keys[] = {
    {"train.steps", WEFT_CFG_INT, "100", 1, 1e12, NULL, "optimizer steps to run"},
    {"train.seq_len", WEFT_CFG_INT, "64", 1, 1 << 20, NULL, "tokens per sequence (T); at most model.context"},
    {"train.micro_batch", WEFT_CFG_INT, "8", 1, 1 << 20, NULL, "sequences per forward/backward on each rank"},
    {"train.global_batch", WEFT_CFG_INT, "16", 1, 1 << 30, NULL,
     "sequences per optimizer step over all ranks; a multiple of micro_batch x data-parallel size"},
    {"train.seed", WEFT_CFG_INT, "1337", 0, 9.2e18, NULL, "seed of initialisation, data order and sampling"},
    {"train.log_interval", WEFT_CFG_INT, "10", 1, 1e12, NULL, "steps between metric lines"},
    {"train.eval_interval", WEFT_CFG_INT, "50", 0, 1e12, NULL,
     "steps between validation-loss evaluations (0: only at the end)"},
    {"train.eval_batches", WEFT_CFG_INT, "4", 0, 1e9, NULL, "global batches of the validation split per evaluation"},
    {"train.on_nonfinite", WEFT_CFG_ENUM, "stop", WEFT_UNBOUNDED, "stop|skip",
     "a NaN/inf loss or gradient: stop the run (exit 70), or skip that step's update"},
    {"train.recompute", WEFT_CFG_ENUM, "none", WEFT_UNBOUNDED, "none|block",
     "activations: none keeps every block's for backward; block keeps each block's input only and computes the "
     "block again just before its backward (about a third more compute, a fraction of the memory; the same "
     "gradients bit for bit)"},
    {"train.threads", WEFT_CFG_INT, "1", 1, 1024, NULL,
     "compute threads per rank (oneDNN's and BLAS's); ranks x threads should not exceed a node's cores"},
    {"train.precision", WEFT_CFG_ENUM, "f32", WEFT_UNBOUNDED, "f32|bf16",
     "the matrix products' precision (linear layers, attention's tiles): bf16 multiplies bf16 copies of weights "
     "and activations, accumulating in f32 (f32 master weights, optimizer state, norms, softmax); needs "
     "avx512_bf16 or AMX (else exit 64)"},
    {"run.peak_flops", WEFT_CFG_FLOAT, "0", 0, 1e18, NULL,
     "one rank's peak FLOP/s that MFU divides by; 0: measure at start (the best oneDNN GEMM of a few large "
     "squares on the rank's threads, in train.precision)"},
    {"train.progress", WEFT_CFG_ENUM, "auto", WEFT_UNBOUNDED, "auto|on|off",
     "live progress line between log lines; auto: when stdout is a terminal and not under mpirun/srun"},
    WEFT_CONFIG_END,
};

/* --- set-up ----------------------------------------------------------------- */

static void resolve_opts(weft_trainer *t)
{
    const weft_config *c = t->cfg;
    trainer_opts *o = &t->o;
    o->steps = weft_config_int(c, "train.steps");
    o->T = weft_config_int(c, "train.seq_len");
    o->b = weft_config_int(c, "train.micro_batch");
    o->G = weft_config_int(c, "train.global_batch");
    o->seed = (uint64_t)weft_config_int(c, "train.seed");
    o->eval_every = weft_config_int(c, "train.eval_interval");
    o->eval_batches = weft_config_int(c, "train.eval_batches");
    o->log_every = weft_config_int(c, "train.log_interval");
    o->ckpt_every = weft_config_int(c, "checkpoint.every");
    o->at_end = weft_config_bool(c, "checkpoint.at_end");
    o->on_error_continue = strcmp(weft_config_str(c, "checkpoint.on_error"), "continue") == 0;
    o->skip_nonfinite = strcmp(weft_config_str(c, "train.on_nonfinite"), "skip") == 0;
    o->zero = (int)weft_config_int(c, "parallel.zero");
    o->recompute = strcmp(weft_config_str(c, "train.recompute"), "block") == 0;
    o->run_dir = weft_config_str(c, "run.dir");
    o->schedule = weft_config_str(c, "parallel.schedule");
    weft_adamw_opts_from_config(c, o->steps, &o->adamw);
    /* mpirun and srun hand every rank a pseudo-terminal whatever the user's
     * stdout is, so under a launcher 'auto' means off. */
    const char *progress = weft_config_str(c, "train.progress");
    o->tty = strcmp(progress, "on") == 0 ||
             (strcmp(progress, "auto") == 0 && isatty(STDOUT_FILENO) && t->ctx->launcher == WEFT_LAUNCHER_NONE);
}

/* train.precision for the linear layers (kernels/kernels.h): bf16 only
 * where the CPU and oneDNN run it at speed, else a usage error saying what
 * this machine lacks. */
static int set_precision(weft_trainer *t)
{
    char why[256];
    t->bf16 = strcmp(weft_config_str(t->cfg, "train.precision"), "bf16") == 0;
    if (t->bf16 && !weft_matmul_bf16_supported(why, sizeof why))
        return weft_error(WEFT_ECONFIG, "train.precision = bf16 on rank %d: %s; use train.precision = f32 here",
                          t->rank, why);
    return weft_matmul_set_precision(t->bf16 ? WEFT_BF16 : WEFT_F32);
}

/* Micro-batches per step; weft_trainer_check has made sure they divide. */
static void split_batch(weft_trainer *t)
{
    t->o.k = t->o.G / (t->o.b * t->D);
}

/* What the cuda gate (runtime/device.h) asks of the job: the layout and
 * precision keys every trainer declares; the model's family and adapters
 * where the program declares them (weft-train), else a model of its own. */
static weft_device_job device_job(const weft_trainer *t, int world)
{
    const weft_config *c = t->cfg;
    return (weft_device_job){
        .world = world,
        .tp = (int)weft_config_int(c, "parallel.tp"),
        .pp = (int)weft_config_int(c, "parallel.pp"),
        .lora_rank = weft_config_has(c, "lora.rank") ? (int)weft_config_int(c, "lora.rank") : 0,
        .precision = weft_config_str(c, "train.precision"),
        .family = weft_config_has(c, "model.family") ? weft_config_str(c, "model.family") : NULL,
    };
}

/* The rank's device from run.device (runtime/device.h): cuda is refused
 * until the model's step has run on a GPU (issue 20) but for the first
 * milestone's configuration under WEFT_GPU_CHECK=1; auto falls back to cpu
 * and warns.
 * The cpu is the process's device already; another is opened and made
 * the process's here, before the model allocates its arenas. */
static int open_device(weft_trainer *t, int world)
{
    weft_device where;
    weft_device_job job = device_job(t, world);
    WEFT_CHECK(weft_device_for_training_job(t->cfg, t->ctx->local_rank, &job, &where, t->device_note,
                                            sizeof t->device_note));
    if (where.kind == WEFT_DEVICE_CPU) {
        t->dev = weft_device_current();
        if (strstr(t->device_note, WEFT_DEVICE_NO_CUDA_TRAINING) && t->rank == 0)
            WEFT_WARN("%s", t->device_note);
        return 0;
    }
    WEFT_CHECK(weft_device_open(where, &t->dev));
    weft_device_use(t->dev);
    return 0;
}

/* Every rank's device name, for rank 0's start line: "cpu on every rank",
 * or each rank's ("r0 cuda:0, r1 cuda:1, ..."; the first 8). */
static int gather_devices(weft_trainer *t)
{
    char mine[16], *all = calloc((size_t)t->size, sizeof mine);
    if (!all)
        return weft_error(WEFT_ENOMEM, "out of memory");
    memset(mine, 0, sizeof mine);
    weft_device_name(weft_device_where(t->dev), mine, sizeof mine);
    int rc = weft_comm_allgather(t->world, mine, all, sizeof mine * (size_t)t->size, WEFT_U8); /* total count */
    int same = 1;
    for (int r = 1; rc == 0 && r < t->size; r++)
        same &= strcmp(all + (size_t)r * sizeof mine, all) == 0;
    size_t n = 0;
    if (same)
        snprintf(t->devices, sizeof t->devices, "%s on every rank", all);
    for (int r = 0; !same && r < t->size && r < 8 && n < sizeof t->devices; r++)
        n += (size_t)snprintf(t->devices + n, sizeof t->devices - n, "%sr%d %s", r ? ", " : "", r,
                              all + (size_t)r * sizeof mine);
    if (!same && t->size > 8 && n < sizeof t->devices)
        snprintf(t->devices + n, sizeof t->devices - n, ", ...");
    free(all);
    return rc;
}

int weft_trainer_new(weft_ctx *ctx, weft_trainer **out) { return weft_trainer_new_on(ctx, NULL, ctx->config, out); }

int weft_trainer_new_on(weft_ctx *ctx, weft_comm *world, const weft_config *cfg, weft_trainer **out)
{
    size_t rss;
    weft_memory_resident(&rss, NULL); /* before anything of the run: the memory account's "runtime" */
    weft_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return weft_error(WEFT_ENOMEM, "out of memory");
    *out = t;
    t->metrics_fd = -1;
    t->runtime_rss = rss;
    t->ctx = ctx;
    t->cfg = cfg;
    t->rank = ctx->rank;
    t->size = ctx->size;
    t->reported_ckpt = -1;
    resolve_opts(t);
    /* Before any thread or communicator: a bad configuration ends here. */
    weft_trainer_check_in in = {.world = world ? weft_comm_size(world) : ctx->size, .rank = ctx->rank};
    WEFT_CHECK(weft_trainer_check(cfg, &in));
    /* Then: a stop signal during start-up sets the flag (the job stops
     * after its first step) instead of killing the process. */
    WEFT_CHECK(weft_stop_install(weft_config_str(t->cfg, "sched.signals")));
    weft_kernels_init((int)weft_config_int(t->cfg, "train.threads"));
    WEFT_CHECK(set_precision(t));
    WEFT_CHECK(open_device(t, in.world));
    t->world = world;
    if (!world) {
        weft_comm_opts co;
        weft_comm_opts_from_config(t->cfg, &co);
        WEFT_CHECK(weft_comm_world(ctx, &co, &t->world));
        t->owns_world = 1;
    }
    t->rank = weft_comm_rank(t->world);
    t->size = weft_comm_size(t->world);
    WEFT_CHECK(gather_devices(t));
    weft_mesh_layout layout;
    WEFT_CHECK(weft_mesh_layout_from_config(t->cfg, t->size, &layout));
    WEFT_CHECK(weft_mesh_new(t->world, &layout, &t->mesh));
    t->comm = weft_mesh_comm(t->mesh, WEFT_AXIS_DP);
    t->D = weft_comm_size(t->comm);
    WEFT_CHECK(weft_trace_init(ctx, t->cfg));
    split_batch(t);
    return 0;
}

int weft_trainer_open_tokens(weft_trainer *t, int *vocab)
{
    if (vocab) /* the manifests are read again only when the caller has not */
        WEFT_CHECK(weft_token_source_vocab(t->cfg, vocab));
    weft_token_source_opts so = {.split = WEFT_SPLIT_TRAIN, .seq_len = t->o.T, .global_batch = t->o.G,
                                 .dp_rank = weft_mesh_rank(t->mesh, WEFT_AXIS_DP), .dp_size = t->D,
                                 .seed = t->o.seed};
    WEFT_CHECK(weft_token_source_open(t->cfg, &so, &t->train));
    so.split = WEFT_SPLIT_VAL;
    if (t->o.eval_batches > 0 && weft_token_source_open(t->cfg, &so, &t->val) != 0 && t->rank == 0)
        WEFT_WARN("no validation loss: %s", weft_last_error());
    return 0;
}

void weft_trainer_set_source(weft_trainer *t, weft_source *train, weft_source *val)
{
    t->train = train;
    t->val = val;
}

const weft_mesh *weft_trainer_mesh(const weft_trainer *t) { return t->mesh; }
const weft_dp *weft_trainer_dp(const weft_trainer *t) { return t->dp; }

int weft_trainer_part_at(const weft_config *cfg, int world, int rank, weft_model_part *out)
{
    weft_mesh_layout l;
    WEFT_CHECK(weft_mesh_layout_from_config(cfg, world, &l));
    int c[WEFT_NAXES];
    weft_mesh_coords_of(&l, rank, c);
    weft_pipe_schedule sched = WEFT_PIPE_1F1B;
    weft_pipe_schedule_parse(weft_config_str(cfg, "parallel.schedule"), &sched); /* checked by the mesh's keys */
    int64_t b = weft_config_int(cfg, "train.micro_batch"), G = weft_config_int(cfg, "train.global_batch");
    int k = (int)(G / (b * l.size[WEFT_AXIS_DP])); /* weft_trainer_check has made sure it divides */
    *out = (weft_model_part){.tp_rank = c[WEFT_AXIS_TP], .tp_size = l.size[WEFT_AXIS_TP],
                             .pp_rank = c[WEFT_AXIS_PP], .pp_size = l.size[WEFT_AXIS_PP],
                             /* 1F1B: what this stage has in flight, pp - stage at most */
                             .nslots = weft_pipe_nslots(sched, l.size[WEFT_AXIS_PP], c[WEFT_AXIS_PP],
                                                        k > 0 ? k : 1),
                             .micro_batch = (int)b, .seq_len = (int)weft_config_int(cfg, "train.seq_len"),
                             .recompute = strcmp(weft_config_str(cfg, "train.recompute"), "block") == 0};
    return 0;
}

void weft_trainer_part(const weft_trainer *t, weft_model_part *out)
{
    int rc = weft_trainer_part_at(t->cfg, t->size, t->rank, out);
    assert(rc == 0); /* the mesh was built from the same keys */
    (void)rc;
    out->tp = out->tp_size > 1 ? weft_mesh_comm(t->mesh, WEFT_AXIS_TP) : NULL;
}

/* --- the model's data parallelism, optimizer and pipeline ------------------- */

/* Append [off, off + n) to ranges, merging with the last if adjacent. */
static void add_range(size_t (*r)[2], int *n, size_t off, size_t len)
{
    if (*n && r[*n - 1][0] + r[*n - 1][1] == off)
        r[*n - 1][1] += len;
    else
        r[*n][0] = off, r[(*n)++][1] = len;
}

/* Which gradients this rank counts in the global norm (its slices of split
 * tensors, whole tensors on TP rank 0 only, never a tied copy), and which
 * are tied between the first and last stage. */
static int classify_params(weft_trainer *t)
{
    const weft_model *m = t->model;
    int tp_rank = weft_mesh_rank(t->mesh, WEFT_AXIS_TP);
    t->norm = calloc((size_t)m->nparams + 1, sizeof *t->norm);
    t->tied = calloc((size_t)m->nparams + 1, sizeof *t->tied);
    if (!t->norm || !t->tied)
        return weft_error(WEFT_ENOMEM, "out of memory");
    for (int i = 0; i < m->nparams; i++) {
        const weft_tensor *p = &m->params[i];
        if (p->flags & WEFT_TENSOR_TIED)
            add_range(t->tied, &t->ntied, p->offset, p->numel);
        if ((p->flags & WEFT_TENSOR_TIED_COPY) || (p->shard.split_dim < 0 && tp_rank != 0))
            continue;
        add_range(t->norm, &t->nnorm, p->offset, p->numel);
    }
    return 0;
}

/* The pipeline's view of this rank's stage: the model's, through the
 * trainer (the last backward of a step reduces gradient buckets). */
static weft_model *model_of(void *arg) { return ((weft_trainer *)arg)->model; }

static int stage_forward(void *arg, const void *batch, int mb, int slot, double *loss)
{
    weft_model *m = model_of(arg);
    return m->ops->forward(m, slot, batch, mb, loss);
}

static int stage_backward(void *arg, int mb, int slot, int last)
{
    weft_trainer *t = arg;
    (void)mb;
    return t->model->ops->backward(t->model, slot, 1.0 / (double)t->o.k, last ? weft_dp_hook : NULL, t->dp);
}

static float *stage_input(void *arg, int slot) { return model_of(arg)->ops->stage_input(model_of(arg), slot); }
static float *stage_output(void *arg, int slot) { return model_of(arg)->ops->stage_output(model_of(arg), slot); }
static float *stage_doutput(void *arg) { return model_of(arg)->ops->stage_doutput(model_of(arg)); }
static float *stage_dinput(void *arg) { return model_of(arg)->ops->stage_dinput(model_of(arg)); }

static int build_pipeline(weft_trainer *t)
{
    weft_pipe_schedule sched;
    WEFT_CHECK(weft_pipe_schedule_parse(t->o.schedule, &sched));
    int pp = weft_mesh_size(t->mesh, WEFT_AXIS_PP);
    const weft_model_ops *ops = t->model->ops;
    if (pp > 1 && !(ops->stage_input && ops->stage_output && ops->stage_doutput && ops->stage_dinput))
        return weft_error(WEFT_ECONFIG, "parallel.pp = %d: model %s has no pipeline stages (its interface lacks "
                          "the stage buffers); use parallel.pp = 1", pp, ops->family);
    weft_pipe_stage st = {t, stage_forward, stage_backward, stage_input, stage_output, stage_doutput, stage_dinput};
    return weft_pipe_new(weft_mesh_comm(t->mesh, WEFT_AXIS_PP), sched, (int)t->o.k, t->model->stage_floats, &st,
                         &t->pipe);
}

int weft_trainer_set_model(weft_trainer *t, weft_model *m)
{
    if (!m->kops)
        return weft_error(WEFT_EINVAL, "model %s has no ops table: make its buffers with weft_model_alloc "
                          "(model/model.h)", m->ops->family);
    t->model = m;
    if (t->bf16) { /* the weights' bf16 copies (refreshed by weft_trainer_weights_changed) */
        m->kops->bf16_mirror(m->kops, m->param_data, m->n);
        m->kops->bf16_mirror(m->kops, m->frozen_data, m->frozen_n);
        WEFT_CHECK(weft_ops_status(m->kops));
    }
    WEFT_CHECK(classify_params(t));
    WEFT_CHECK(build_pipeline(t));
    weft_dp_opts dpo;
    weft_dp_opts_from_config(t->cfg, &dpo);
    if (dpo.zero >= 3 && m->nunits < 1)
        return weft_error(WEFT_ECONFIG, "parallel.zero = 3: model %s%s does not gather its parameters layer by "
                          "layer (model.h: units); use parallel.zero = 2", m->ops->family,
                          m->nfrozen ? " with adapters" : "");
    dpo.units = m->units;
    dpo.nunits = m->nunits;
    dpo.ops = m->kops; /* the gradients are the model's device's memory */
    WEFT_CHECK(weft_dp_new(t->comm, m->param_data, m->grad_data, m->n, &dpo, &t->dp));
    if (dpo.zero >= 3) /* ZeRO-3: the model's layers gather their parameters through data parallelism */
        m->use = (weft_param_hooks){weft_dp_use_begin, weft_dp_use_end, t->dp, weft_dp_progress};
    WEFT_CHECK(weft_optim_new(m->params, m->nparams, t->dp, &t->o.adamw, &t->opt));
    /* Everything the step uses on the device exists now: from here on a
     * device allocation is one the steady state must not make. */
    weft_device_mark_start(t->dev);
    return 0;
}

int weft_trainer_whole_params(weft_trainer *t) { return weft_dp_gather_all(t->dp); }

int weft_trainer_ckpt_model(weft_trainer *t, weft_ckpt_model *out)
{
    return weft_ckpt_model_describe(t->model, t->dp, t->opt, t->world, t->mesh, t->o.zero, out);
}

/* --- the run ---------------------------------------------------------------- */

/* Resumed at or past train.steps: say so, and leave run.dir as it is but
 * for status.json, which says done (a requeued job's script reads it). */
static int nothing_to_do(weft_trainer *t)
{
    t->nothing_to_do = 1;
    if (t->rank == 0)
        WEFT_INFO("nothing to do: checkpoint step %lld >= train.steps %lld (raise train.steps to train on); "
                  "run.dir %s left as it is (but for its heartbeat files)", (long long)t->start_step, (long long)t->o.steps, t->o.run_dir);
    WEFT_CHECK(weft_sched_start(t->ctx, t->cfg, t->o.steps, &t->sched));
    t->started = 1; /* weft_trainer_close reports the run done */
    weft_sched_resumed(t->sched, t->start_step);
    return 0;
}

/* All ranks learn whether rank 0's writes into run.dir worked. */
static int agree_files(weft_trainer *t, int rc)
{
    int any;
    WEFT_CHECK(weft_comm_any(t->world, -rc, &any));
    if (rc || !any)
        return rc;
    return weft_error(-any, "run.dir %s: rank 0 could not write the run's files (its message says why)",
                      t->o.run_dir);
}

/* metrics.jsonl, owner.json, then config.ini and run.json (after every rank
 * measured its peak): rank 0 writes them, and all ranks agree on each
 * outcome, so that a write failing there (a full disk) ends every rank, not
 * rank 0 alone with the others waiting for it forever (found by
 * WEFT_FAULT=eio_file:1@0). */
static int start_files(weft_trainer *t)
{
    int rc = weft_trainer_open_metrics(t);
    if (rc == 0)
        rc = weft_trainer_rundir_own(t);
    WEFT_CHECK(agree_files(t, rc));
    return agree_files(t, weft_trainer_write_run_info(t));
}

int weft_trainer_start(weft_trainer *t, const weft_trainer_start_opts *o)
{
    if (!t->model || !t->train)
        return weft_error(WEFT_EINVAL, "weft_trainer_start: set the model and a batch source first");
    t->resuming = o->resume != 0;
    /* Nothing is written into run.dir before these two: whose it is, and
     * (resuming) whether there is anything left to train. */
    WEFT_CHECK(weft_trainer_rundir_claim(t, o));
    /* Resuming, the watchdog runs from here on, so that a rank stopped
     * while the others read a checkpoint is named by the timeout that ends
     * the job (the campaign's stall_resume); its heartbeat files are the
     * only thing a resume with nothing left to train writes besides
     * status.json. A fresh start writes nothing before its configuration
     * has passed the checks below (test_lora: LoRA without --init-from). */
    double hb = weft_config_float(t->cfg, "sched.heartbeat"), timeout = weft_config_float(t->cfg, "comm.timeout");
    if (o->resume)
        WEFT_CHECK(weft_watchdog_start(t->ctx, t->o.run_dir, hb, timeout));
    WEFT_CHECK(weft_trainer_ckpt_resume(t, o));
    if (t->resuming && t->start_step >= t->o.steps)
        return nothing_to_do(t);
    if (!o->resume)
        WEFT_CHECK(weft_watchdog_start(t->ctx, t->o.run_dir, hb, timeout));
    WEFT_CHECK(start_files(t));
    WEFT_CHECK(weft_sched_start(t->ctx, t->cfg, t->o.steps, &t->sched));
    t->started = 1;
    WEFT_CHECK(weft_trainer_ckpt_setup(t));
    if (t->start_step > 0)
        weft_sched_resumed(t->sched, t->start_step);
    weft_trainer_weights_changed(t); /* loaded from a checkpoint, perhaps */
    weft_trainer_describe(t);
    return weft_trainer_memory_start(t);
}

/* Every rank agreed to stop after s->step: commit a checkpoint, then end
 * with the "requeue me" status (rank 0 requeues under Slurm). */
static int stop_run(weft_trainer *t, weft_step_stats *s)
{
    int64_t done = s->step + 1;
    weft_sched_stopping(t->sched, done, weft_sched_stop_signal(t->sched));
    int rc = weft_trainer_ckpt_save(t, s, 1), committed = rc == 0;
    if (rc && t->rank == 0)
        WEFT_ERROR("stopping without a checkpoint: %s", weft_last_error());
    if (committed && weft_trainer_ckpt_drained(t) != 0 && t->rank == 0) /* bounded: checkpoint.drain_timeout */
        WEFT_WARN("%s; a requeue on other nodes resumes from the shared tier's latest", weft_last_error());
    weft_trainer_ckpt_report(t);
    WEFT_CHECK(weft_comm_barrier(t->world));
    t->exit_status = weft_sched_preempted(t->sched, committed);
    if (t->rank == 0)
        WEFT_INFO("stopped after step %lld of %lld; exit status %d", (long long)done, (long long)t->o.steps,
                  t->exit_status);
    return 0;
}

/* After a step: evaluation when due, the metrics line or progress, the
 * scheduler's report. */
static int after_step(weft_trainer *t, weft_step_stats *s)
{
    int64_t step = s->step;
    int last = step == t->o.steps - 1;
    if (last || (t->o.eval_every && (step + 1) % t->o.eval_every == 0))
        WEFT_CHECK(weft_trainer_evaluate(t, 0, &s->val_loss));
    if (last || (step + 1) % t->o.log_every == 0 || !isnan(s->val_loss) || step == 0)
        weft_trainer_log_step(t, s);
    else
        weft_trainer_progress(t, s);
    if (last || (step + 1) % t->o.log_every == 0 || step == t->start_step)
        WEFT_CHECK(weft_trainer_memory_peak(t, 0));
    weft_trainer_report_step(t, s);
    return 0;
}

static int finish_run(weft_trainer *t, const weft_step_stats *s)
{
    weft_trace_step(0);
    WEFT_CHECK(weft_ckpt_finish(t->ckpt)); /* the last save's commit (checkpoint.on_error) */
    int drained = weft_trainer_ckpt_drained(t); /* the last checkpoint in the shared tier too */
    weft_trainer_ckpt_report(t);                 /* status.json: the drain's outcome either way */
    if (drained && !t->o.on_error_continue)
        return drained;
    if (drained && t->rank == 0)
        WEFT_WARN("%s (checkpoint.on_error = continue)", weft_last_error());
    int rc = weft_ckpt_close(t->ckpt);
    t->ckpt = NULL;
    WEFT_CHECK(rc);
    WEFT_CHECK(weft_trace_finish(t->o.run_dir));
    WEFT_CHECK(weft_trainer_memory_peak(t, 1));
    double secs = 1e-9 * (double)(weft_now_ns() - t->t_start_ns);
    if (t->rank == 0) {
        char val[64] = "";
        if (!isnan(s->val_loss))
            snprintf(val, sizeof val, ", validation loss %.4f", s->val_loss);
        WEFT_INFO("done: %lld steps in %.1f s, final loss %.4f%s; metrics in %s/metrics.jsonl",
                  (long long)t->o.steps, secs, s->loss, val, t->o.run_dir);
    }
    return 0;
}

int weft_trainer_run(weft_trainer *t, weft_step_stats *last_out)
{
    if (t->nothing_to_do) {
        if (last_out)
            *last_out = (weft_step_stats){.step = t->start_step - 1, .loss = NAN, .val_loss = NAN, .pipe_idle = NAN};
        return 0;
    }
    if (!t->started)
        return weft_error(WEFT_EINVAL, "weft_trainer_run: call weft_trainer_start first");
    t->t_start_ns = weft_now_ns();
    t->running = 1;
    weft_step_stats s = {.step = t->start_step - 1, .val_loss = NAN, .pipe_idle = NAN};
    weft_fault_at(WEFT_FAULT_START, -1);
    for (int64_t step = t->start_step; step < t->o.steps; step++) {
        s = (weft_step_stats){.step = step, .val_loss = NAN, .pipe_idle = NAN};
        weft_fault_at(WEFT_FAULT_STEP, step + 1); /* faults count steps as the logs do, from 1 */
        weft_trace_step(step + 1);
        WEFT_CHECK(weft_trainer_step(t, &s));
        int slow_ms = weft_fault_at(WEFT_FAULT_STEP_DELAY, -1);
        if (slow_ms)
            nanosleep(&(struct timespec){slow_ms / 1000, slow_ms % 1000 * 1000000L}, NULL);
        WEFT_CHECK(weft_trainer_ckpt_step(t, &s));
        s.ms += s.ckpt_ms; /* the step's time covers the checkpoint stall it caused (ckpt_blocked_ms <= ms_per_step) */
        WEFT_CHECK(after_step(t, &s));
        weft_ckpt_release(t->ckpt, step + 1); /* its metrics line is written: the step's save may commit */
        WEFT_CHECK(weft_trainer_ckpt_final(t, &s));
        int stop;
        WEFT_CHECK(weft_comm_any(t->world, weft_sched_stop_signal(t->sched), &stop));
        if (stop && step != t->o.steps - 1) {
            if (last_out)
                *last_out = s;
            return stop_run(t, &s);
        }
    }
    if (last_out)
        *last_out = s;
    return finish_run(t, &s);
}

/* --- the end ---------------------------------------------------------------- */

static void release(weft_trainer *t, int rc)
{
    /* running on until MPI_Finalize has returned (weft_finalize), so a
     * peer stopped at the very end is named; a no-op when it never started */
    weft_watchdog_end_run();
    if (t->started) {
        weft_sched_finish(t->sched, rc ? WEFT_RUN_FAILED : WEFT_RUN_DONE, rc ? weft_last_error() : NULL);
    }
    if (t->metrics_fd >= 0)
        close(t->metrics_fd);
    weft_ckpt_close(t->ckpt);
    weft_ckpt_model_free(&t->cdesc);
    free(t->source_state);
    weft_source_close(t->train);
    weft_source_close(t->val);
    weft_optim_free(t->opt);
    weft_pipe_free(t->pipe);
    weft_dp_free(t->dp);
    if (t->model && t->bf16) {
        weft_matmul_bf16_forget(t->model->param_data);
        weft_matmul_bf16_forget(t->model->frozen_data);
    }
    weft_model_free(t->model);
    weft_mesh_free(t->mesh);
    if (t->owns_world)
        weft_comm_free(t->world);
    free(t->norm);
    free(t->tied);
    free(t->mem_all);
    free(t->mem_peak);
    free(t->base_path);
    /* A run that failed mid-way keeps its timeline; a set-up failure has none. */
    if (t->running)
        weft_trace_finish(t->o.run_dir);
    weft_trace_discard();
}

int weft_trainer_close(weft_trainer *t, int rc)
{
    if (!t)
        return weft_exit_code(rc);
    /* Set-up failures are the same on every rank and return normally; one
     * rank failing mid-run would leave the others in a collective, so it
     * ends the whole job, with the failure's own exit status. */
    if (rc && t->running && t->size > 1)
        weft_abort_with(weft_exit_code(rc), "%s", weft_last_error());
    if (rc && (t->rank == 0 || (rc != WEFT_ECONFIG && rc != WEFT_EINVAL)))
        WEFT_ERROR("%s", weft_last_error());
    /* Every rank at the end, alive: a rank stopped after its last step is
     * named here, under comm.timeout, rather than holding the others in
     * MPI_Finalize (bounded too: weft_finalize, ctx.h). Found by the fault
     * campaign's `timed` kind: a SIGSTOP after "done" hung the job. */
    if (rc == 0 && t->started)
        weft_fault_at(WEFT_FAULT_END, -1); /* kill_end, stall_end */
    if (rc == 0 && t->started && t->size > 1 && (rc = weft_comm_barrier(t->world)) != 0)
        WEFT_ERROR("at the end: %s", weft_last_error());
    t->ctx->finalize_timeout_s = weft_config_float(t->cfg, "comm.timeout");
    int status = rc == 0 && t->exit_status ? t->exit_status : weft_exit_code(rc);
    if (t->started)
        weft_sched_exit_status(t->sched, status);
    release(t, rc);
    free(t);
    return status;
}
