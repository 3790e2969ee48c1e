/*
 * weft-train -- trains a GPT-2 model on a weft dataset with data, tensor and
 * pipeline parallelism on a DP x TP x PP mesh: the main job.
 *
 *   mpirun -np 2 weft-train --config examples/configs/demo.ini [--key=value ...]
 *
 * One step, as in llm.c: next batch -> the pipeline schedule runs forward
 * and backward of every micro-batch through this rank's stage (the last
 * backward reduces gradient buckets as it goes; with one stage it is plain
 * gradient accumulation) -> sum the tied embedding's gradient between first
 * and last stage -> finish the reductions -> clip -> AdamW on this rank's
 * shard -> (ZeRO-1) gather the parameters. Tensor parallelism happens inside
 * the model's layers (parallel/tp.h). Everything the run writes goes under run.dir: config.ini (the
 * resolved configuration) and run.json (layout, measured SGEMM peak) at
 * start, metrics.jsonl as it goes, trace/rank-N.json when trace.steps is set.
 */
#include "collectives/agree.h"
#include "checkpoint/gpt_state.h"
#include "collectives/watchdog.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "kernels/kernels.h"
#include "model/gpt.h"
#include "model/optim.h"
#include "parallel/dp.h"
#include "parallel/mesh.h"
#include "parallel/pipeline.h"
#include "runtime/rng.h"
#include "runtime/sched.h"
#include "runtime/stop.h"
#include "runtime/trace.h"
#include "weft.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const weft_config_key train_keys[] = {
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
    {"train.blas_threads", WEFT_CFG_INT, "1", 1, 1024, NULL, "BLAS threads per rank"},
    {"train.progress", WEFT_CFG_ENUM, "auto", WEFT_UNBOUNDED, "auto|on|off",
     "live progress line between log lines; auto: when stdout is a terminal and not under mpirun/srun"},
    WEFT_CONFIG_END,
};

static const weft_config_key *const program_keys[] = {
    weft_comm_config_keys, weft_data_config_keys, weft_model_config_keys, weft_optim_config_keys,
    weft_parallel_config_keys, weft_mesh_config_keys, train_keys, weft_trace_config_keys, weft_sched_config_keys,
    weft_ckpt_config_keys,
    NULL,
};
static const weft_config_key *const all_keys[] = {
    weft_runtime_config_keys, weft_comm_config_keys,     weft_data_config_keys, weft_model_config_keys,
    weft_optim_config_keys,   weft_parallel_config_keys, weft_mesh_config_keys, train_keys,
    weft_trace_config_keys,   weft_sched_config_keys,    weft_ckpt_config_keys, NULL,
};

typedef struct {
    int print_config;       /* --print-config */
    int sample_tokens;      /* --sample N */
    double temperature;     /* --temperature, 0: greedy */
    const char *prompt;     /* --prompt */
    int resume;             /* --resume: 1 from latest, 2 (=auto) only if there is one */
    const char *init_from;  /* --init-from FILE: weights only */
} cli_opts;

typedef struct {
    weft_ctx *ctx;
    const weft_config *cfg;
    weft_comm *world;
    weft_mesh *mesh;
    weft_comm *comm;        /* the data-parallel group (the mesh's DP axis) */
    weft_gpt *model;        /* this rank's stage and tensor-parallel slice */
    weft_dp *dp;
    weft_optim *opt;
    weft_pipe *pipe;
    const int32_t *rows;    /* the batch the pipeline's micro-batches come from */
    double loss_sum;        /* sum of micro-batch losses (last stage; 0 elsewhere) */
    size_t (*norm)[2];      /* ranges this rank counts in the global gradient norm */
    int nnorm;
    size_t wte_off, wte_n;  /* the tied embedding (first and last stage) */
    weft_loader *train, *val;
    int64_t steps, T, b, G, k; /* k micro-batches per step */
    int D;
    int32_t *inputs, *targets; /* (b, T) */
    FILE *metrics;
    double flops_per_token;
    double sgemm_peak;      /* single-core SGEMM FLOP/s at the largest matmul shape */
    int sgemm_shape[3];     /* its M, N, K */
    int64_t t_start_ns;
    int skip_nonfinite, tty;
    int running;            /* past setup: a failure now leaves ranks mid-collective */
    int64_t fault_nan_step; /* WEFT_FAULT_NAN_STEP: poison this step's loss (tests) */
    long fault_step_ms;     /* WEFT_FAULT_STEP_MS: every step also sleeps this long (tests of preemption) */
    weft_sched *sched;      /* stop signals and progress reports (runtime/sched.h) */
    int exit_status;        /* set when the run ends with its own status (preemption) */
    weft_ckpt *ckpt;        /* checkpoints (checkpoint/ckpt.h) */
    weft_ckpt_gpt cdesc;    /* the model as the checkpoint sees it */
    uint8_t *loader_state;  /* staging for weft_loader_save */
    int64_t start_step;     /* steps already done (resumed) */
    int64_t reported_ckpt;  /* the last committed step told to the scheduler */
    int resuming;           /* --resume: metrics.jsonl is kept up to the resumed step */
} trainer;

typedef struct {
    int64_t step;
    double loss, lr, grad_norm, ms, data_ms, comm_ms, hidden, val_loss, ckpt_ms;
    double pipe_idle;       /* rank 0's stage: share of the schedule spent waiting (NaN: one stage) */
    int skipped;
} step_stats;

/* --- setup -------------------------------------------------------------- */

static int check_layout(trainer *t)
{
    if (t->G % (t->b * t->D) != 0)
        return weft_error(WEFT_ECONFIG,
                          "train.global_batch (%lld) is not divisible by train.micro_batch (%lld) x data-parallel "
                          "size (%d) = %lld", (long long)t->G, (long long)t->b, t->D, (long long)(t->b * t->D));
    int64_t ctx_len = weft_config_int(t->cfg, "model.context");
    if (t->T > ctx_len)
        return weft_error(WEFT_ECONFIG, "train.seq_len (%lld) is longer than model.context (%lld)", (long long)t->T,
                          (long long)ctx_len);
    t->k = t->G / (t->b * t->D);
    return 0;
}

static int open_loader(trainer *t, weft_split split, weft_loader **out)
{
    weft_loader_options o;
    weft_loader_options_default(&o);
    WEFT_CHECK(weft_loader_options_from_config(t->cfg, &o));
    if (o.n_datasets < 1)
        return weft_error(WEFT_ECONFIG, "data.path is not set: give a dataset directory made by weft-data");
    o.split = split;
    o.seq_len = t->T;
    o.global_batch = t->G;
    o.dp_rank = weft_mesh_rank(t->mesh, WEFT_AXIS_DP);
    o.dp_size = t->D;
    o.seed = (uint64_t)weft_config_int(t->cfg, "train.seed");
    if (split == WEFT_SPLIT_VAL)
        o.shuffle = false;
    return weft_loader_open(&o, out);
}

/* The largest vocabulary among the blended datasets. */
static int dataset_vocab(trainer *t, int *vocab)
{
    weft_loader_options o;
    weft_loader_options_default(&o);
    WEFT_CHECK(weft_loader_options_from_config(t->cfg, &o));
    *vocab = 0;
    for (int i = 0; i < o.n_datasets; i++) {
        weft_manifest *m;
        WEFT_CHECK(weft_manifest_load(o.paths[i], &m));
        if ((int)m->vocab_size > *vocab)
            *vocab = (int)m->vocab_size;
        weft_manifest_free(m);
    }
    return 0;
}

/* --- the pipeline's view of this rank's stage ----------------------------- */

static void split_rows(trainer *t, const int32_t *rows, int64_t j);

static int stage_forward(void *arg, int mb, int slot)
{
    trainer *t = arg;
    double loss;
    split_rows(t, t->rows, mb);
    WEFT_CHECK(weft_gpt_forward_slot(t->model, slot, t->inputs, t->targets, (int)t->b, (int)t->T, &loss));
    t->loss_sum += loss;
    return 0;
}

/* The step's last backward reduces gradient buckets as it goes. */
static int stage_backward(void *arg, int mb, int slot, int last)
{
    trainer *t = arg;
    (void)mb;
    return weft_gpt_backward_slot(t->model, slot, 1.0 / (double)t->k, last ? weft_dp_hook : NULL, t->dp);
}

static float *stage_input(void *arg, int slot) { return weft_gpt_stage_input(((trainer *)arg)->model, slot); }
static float *stage_output(void *arg, int slot) { return weft_gpt_stage_output(((trainer *)arg)->model, slot); }
static float *stage_doutput(void *arg) { return weft_gpt_stage_doutput(((trainer *)arg)->model); }
static float *stage_dinput(void *arg) { return weft_gpt_stage_dinput(((trainer *)arg)->model); }

static int build_pipeline(trainer *t)
{
    weft_pipe_schedule sched;
    WEFT_CHECK(weft_pipe_schedule_parse(weft_config_str(t->cfg, "parallel.schedule"), &sched));
    weft_pipe_stage st = {t, stage_forward, stage_backward, stage_input, stage_output, stage_doutput, stage_dinput};
    size_t act = (size_t)(t->b * t->T) * (size_t)weft_gpt_cfg(t->model)->n_embd;
    return weft_pipe_new(weft_mesh_comm(t->mesh, WEFT_AXIS_PP), sched, (int)t->k, act, &st, &t->pipe);
}

/* Which gradients this rank counts in the global norm: its slices of split
 * tensors, whole tensors on TP rank 0 only, never the tied copy. */
static int norm_ranges(trainer *t)
{
    int np = weft_gpt_nparams(t->model), tp_rank = weft_mesh_rank(t->mesh, WEFT_AXIS_TP);
    t->norm = calloc((size_t)np, sizeof *t->norm);
    if (!t->norm)
        return weft_error(WEFT_ENOMEM, "out of memory");
    for (int i = 0; i < np; i++) {
        const weft_gpt_param *p = weft_gpt_param_at(t->model, i);
        if (strcmp(p->name, "wte") == 0)
            t->wte_off = p->offset, t->wte_n = p->numel;
        if (p->tied_copy || (p->shard.split_dim < 0 && tp_rank != 0))
            continue;
        if (t->nnorm && t->norm[t->nnorm - 1][0] + t->norm[t->nnorm - 1][1] == p->offset)
            t->norm[t->nnorm - 1][1] += p->numel;
        else
            t->norm[t->nnorm][0] = p->offset, t->norm[t->nnorm++][1] = p->numel;
    }
    return 0;
}

static int build_model(trainer *t)
{
    int vocab;
    WEFT_CHECK(dataset_vocab(t, &vocab));
    weft_gpt_config gc;
    weft_gpt_config_from(t->cfg, vocab, &gc);
    WEFT_CHECK(weft_gpt_config_check(&gc));
    WEFT_CHECK(weft_mesh_layout_check_model(weft_mesh_layout_of(t->mesh), gc.n_head, gc.n_embd, vocab, gc.n_layer));
    weft_pipe_schedule sched;
    WEFT_CHECK(weft_pipe_schedule_parse(weft_config_str(t->cfg, "parallel.schedule"), &sched));
    int pp = weft_mesh_size(t->mesh, WEFT_AXIS_PP), tp = weft_mesh_size(t->mesh, WEFT_AXIS_TP);
    weft_gpt_part part = {.tp_rank = weft_mesh_rank(t->mesh, WEFT_AXIS_TP), .tp_size = tp,
                          .pp_rank = weft_mesh_rank(t->mesh, WEFT_AXIS_PP), .pp_size = pp,
                          .nslots = weft_pipe_nslots(sched, pp, (int)t->k),
                          .tp = tp > 1 ? weft_mesh_comm(t->mesh, WEFT_AXIS_TP) : NULL};
    WEFT_CHECK(weft_gpt_new_part(&gc, &part, (int)t->b, (int)t->T, &t->model));
    weft_gpt_init(t->model, (uint64_t)weft_config_int(t->cfg, "train.seed"));
    WEFT_CHECK(norm_ranges(t));
    WEFT_CHECK(build_pipeline(t));
    t->flops_per_token = weft_gpt_flops_per_token(t->model, (int)t->T);
    weft_dp_opts dpo;
    weft_dp_opts_from_config(t->cfg, &dpo);
    size_t n = weft_gpt_num_params(t->model);
    WEFT_CHECK(weft_dp_new(t->comm, weft_gpt_params(t->model), weft_gpt_grads(t->model), n, &dpo, &t->dp));
    int np = weft_gpt_nparams(t->model);
    weft_optim_segment *segs = calloc((size_t)np, sizeof *segs);
    if (!segs)
        return weft_error(WEFT_ENOMEM, "out of memory");
    for (int i = 0; i < np; i++) {
        const weft_gpt_param *p = weft_gpt_param_at(t->model, i);
        segs[i] = (weft_optim_segment){p->offset, p->numel, p->decay};
    }
    weft_adamw_opts ao;
    weft_adamw_opts_from_config(t->cfg, t->steps, &ao);
    int rc = weft_optim_new(segs, np, t->dp, &ao, &t->opt);
    free(segs);
    return rc;
}

static int open_metrics(trainer *t)
{
    const char *dir = weft_config_str(t->cfg, "run.dir");
    if (mkdir(dir, 0750) != 0 && errno != EEXIST)
        return weft_error(WEFT_EIO, "cannot create run directory %s: %s", dir, strerror(errno));
    if (t->ctx->rank != 0)
        return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    int fd = open(path, (t->resuming ? O_RDWR : O_WRONLY | O_TRUNC) | O_CREAT | O_CLOEXEC, 0640);
    t->metrics = fd >= 0 ? fdopen(fd, t->resuming ? "r+" : "w") : NULL;
    if (!t->metrics)
        return weft_error(WEFT_EIO, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

/* Write text to path under a temporary name, then rename (mode 0640). */
static int write_atomic(const char *path, const char *text)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        return weft_error(WEFT_EIO, "cannot write %s: %s", tmp, strerror(errno));
    fputs(text, f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return weft_error(WEFT_EIO, "cannot write %s: %s", path, strerror(errno));
    }
    return 0;
}

/* The model's largest matmul by FLOPs (rows b*T): M, N (outputs), K. */
static void largest_matmul(const trainer *t, int shape[3])
{
    const weft_gpt_config *c = weft_gpt_cfg(t->model);
    int C = c->n_embd, outs[] = {3 * C, C, 4 * C, C, c->vocab}, ins[] = {C, C, C, 4 * C, C};
    int best = 0;
    for (int i = 1; i < 5; i++)
        if ((double)outs[i] * ins[i] > (double)outs[best] * ins[best])
            best = i;
    shape[0] = (int)(t->b * t->T);
    shape[1] = outs[best];
    shape[2] = ins[best];
}

/* Rank 0 records the run's configuration and layout for weft-report. Every
 * rank measures the SGEMM rate at once (as they will run). */
static int write_run_info(trainer *t)
{
    largest_matmul(t, t->sgemm_shape);
    t->sgemm_peak = weft_sgemm_rate(t->sgemm_shape[0], t->sgemm_shape[1], t->sgemm_shape[2], 0.2);
    if (t->ctx->rank != 0)
        return 0;
    const char *dir = weft_config_str(t->cfg, "run.dir");
    char path[4096], json[2048];
    char *ini = weft_config_to_ini(t->cfg);
    if (!ini)
        return weft_error(WEFT_ENOMEM, "out of memory");
    snprintf(path, sizeof path, "%s/config.ini", dir);
    int rc = write_atomic(path, ini);
    free(ini);
    WEFT_CHECK(rc);
    snprintf(json, sizeof json,
             "{\"ranks\":%d,\"dp\":%d,\"tp\":%d,\"pp\":%d,\"schedule\":\"%s\",\"nodes\":%d,\"host\":\"%s\",\"backend\":\"%s\",\"zero\":%d,\"buckets\":%d,"
             "\"bucket_mb\":%g,\"params\":%zu,\"micro_batches\":%lld,\"tokens_per_step\":%lld,"
             "\"flops_per_token\":%.6g,\"sgemm_peak_flops\":%.6g,\"sgemm_shape\":[%d,%d,%d],"
             "\"checkpoints\":0,\"restarts\":0,\"started\":%.3f}\n",
             t->ctx->size, t->D, weft_mesh_size(t->mesh, WEFT_AXIS_TP), weft_mesh_size(t->mesh, WEFT_AXIS_PP),
             weft_config_str(t->cfg, "parallel.schedule"), t->ctx->nnodes, t->ctx->host, weft_comm_backend(t->comm),
             (int)weft_config_int(t->cfg, "parallel.zero"), weft_dp_nbuckets(t->dp),
             weft_config_float(t->cfg, "parallel.bucket_mb"), weft_gpt_global_params(t->model), (long long)t->k,
             (long long)(t->G * t->T), t->flops_per_token, t->sgemm_peak, t->sgemm_shape[0], t->sgemm_shape[1],
             t->sgemm_shape[2], weft_wall_s());
    snprintf(path, sizeof path, "%s/run.json", dir);
    return write_atomic(path, json);
}

/* --- checkpoints: resume at start, save after steps ---------------------- */

/* Resuming: keep the rows of metrics.jsonl up to the resumed step (rows of
 * steps after the checkpoint are run again), then append. */
static int metrics_resume(trainer *t)
{
    FILE *f = t->metrics;
    if (!f)
        return 0;
    char line[8192];
    long keep = 0;
    rewind(f);
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "{\"step\":");
        if (!p || atoll(p + 8) > t->start_step)
            break;
        keep = ftell(f);
    }
    if (fflush(f) != 0 || ftruncate(fileno(f), keep) != 0 || fseek(f, keep, SEEK_SET) != 0)
        return weft_error(WEFT_EIO, "cannot rewrite metrics.jsonl for the resumed run: %s", strerror(errno));
    return 0;
}

static int ckpt_setup(trainer *t, const cli_opts *cli)
{
    int zero = (int)weft_config_int(t->cfg, "parallel.zero");
    WEFT_CHECK(weft_ckpt_gpt_describe(t->model, t->dp, t->opt, t->world, t->mesh, zero, &t->cdesc));
    weft_ckpt_opts o;
    weft_ckpt_opts_from_config(t->cfg, &o);
    char path[4200];
    if (cli->init_from || cli->resume) {
        int rc = cli->init_from ? 0 : weft_ckpt_find_latest(o.dir, path, sizeof path);
        if (rc == WEFT_ENOENT && cli->resume == 2) {
            if (t->ctx->rank == 0)
                WEFT_INFO("--resume=auto: no checkpoint in %s, starting from step 0", o.dir);
        } else {
            WEFT_CHECK(rc);
            WEFT_CHECK(weft_ckpt_gpt_resume(&t->cdesc, t->opt, t->train, cli->init_from ? cli->init_from : path,
                                            cli->init_from != NULL, &t->start_step));
        }
    }
    o.loader_len = weft_loader_state_size(t->train);
    t->loader_state = malloc(o.loader_len + 1);
    char *ini = weft_config_to_ini(t->cfg);
    int rc = t->loader_state && ini ? weft_ckpt_new(&t->cdesc.layout, &t->cdesc.state, &o, ini, &t->ckpt)
                                    : weft_error(WEFT_ENOMEM, "out of memory");
    free(ini);
    t->reported_ckpt = -1;
    return rc ? rc : metrics_resume(t);
}

/* Save the state after s->step (0-based) now; wait: until committed. */
static int ckpt_save(trainer *t, step_stats *s, int wait)
{
    weft_adamw_opts ao;
    weft_adamw_opts_from_config(t->cfg, t->steps, &ao);
    size_t len = weft_loader_state_size(t->train);
    WEFT_CHECK(weft_loader_save(t->train, t->loader_state, len));
    weft_ckpt_meta m = {.step = s->step + 1, .optim_t = weft_optim_t(t->opt), .lr = s->lr, .lr_peak = ao.lr,
                        .lr_min = ao.min_lr, .warmup = ao.warmup, .total_steps = ao.total_steps,
                        .dataset_hash = weft_loader_dataset_hash(t->train),
                        .rng = weft_rng_mix((uint64_t)weft_config_int(t->cfg, "train.seed") + (uint64_t)t->ctx->rank),
                        .loader_state = t->loader_state, .loader_len = len};
    int64_t t0 = weft_now_ns();
    WEFT_CHECK(wait ? weft_ckpt_save_wait(t->ckpt, &m) : weft_ckpt_save(t->ckpt, &m, NULL));
    s->ckpt_ms = 1e-6 * (double)(weft_now_ns() - t0);
    return 0;
}

/* Tell the scheduler about a newly committed checkpoint. */
static void ckpt_report(trainer *t)
{
    char path[4200];
    int64_t last = weft_ckpt_last(t->ckpt, path, sizeof path);
    if (last != t->reported_ckpt && last >= 0) {
        weft_sched_checkpoint(t->sched, last, path);
        t->reported_ckpt = last;
    }
}

/* After a step: save if one is due (checkpoint.every, the end). */
static int ckpt_step(trainer *t, step_stats *s)
{
    int64_t done = s->step + 1, every = weft_config_int(t->cfg, "checkpoint.every");
    int last = done == t->steps && weft_config_bool(t->cfg, "checkpoint.at_end");
    if (!last && every && done % every == 0)
        WEFT_CHECK(ckpt_save(t, s, 0));
    if (last) { /* never skipped, and waited for; a failure obeys checkpoint.on_error */
        int rc = ckpt_save(t, s, 1);
        if (rc && strcmp(weft_config_str(t->cfg, "checkpoint.on_error"), "continue") == 0) {
            if (t->ctx->rank == 0)
                WEFT_WARN("the final checkpoint failed (checkpoint.on_error = continue): %s", weft_last_error());
            rc = 0;
        }
        WEFT_CHECK(rc);
    }
    ckpt_report(t);
    return 0;
}

static int setup(trainer *t)
{
    t->steps = weft_config_int(t->cfg, "train.steps");
    t->T = weft_config_int(t->cfg, "train.seq_len");
    t->b = weft_config_int(t->cfg, "train.micro_batch");
    t->G = weft_config_int(t->cfg, "train.global_batch");
    const char *fault = getenv("WEFT_FAULT_NAN_STEP");
    t->fault_nan_step = fault ? atoll(fault) : -1;
    fault = getenv("WEFT_FAULT_STEP_MS");
    t->fault_step_ms = fault ? atol(fault) : 0;
    t->skip_nonfinite = strcmp(weft_config_str(t->cfg, "train.on_nonfinite"), "skip") == 0;
    /* mpirun and srun hand every rank a pseudo-terminal whatever the user's
     * stdout is, so under a launcher 'auto' means off. */
    const char *progress = weft_config_str(t->cfg, "train.progress");
    t->tty = strcmp(progress, "on") == 0 ||
             (strcmp(progress, "auto") == 0 && isatty(STDOUT_FILENO) && t->ctx->launcher == WEFT_LAUNCHER_NONE);
    weft_kernels_init((int)weft_config_int(t->cfg, "train.blas_threads"));
    weft_comm_opts co;
    weft_comm_opts_from_config(t->cfg, &co);
    WEFT_CHECK(weft_comm_world(t->ctx, &co, &t->world));
    weft_mesh_layout layout;
    WEFT_CHECK(weft_mesh_layout_from_config(t->cfg, t->ctx->size, &layout));
    WEFT_CHECK(weft_mesh_new(t->world, &layout, &t->mesh));
    t->comm = weft_mesh_comm(t->mesh, WEFT_AXIS_DP);
    t->D = weft_comm_size(t->comm);
    WEFT_CHECK(weft_trace_init(t->ctx, t->cfg));
    WEFT_CHECK(check_layout(t));
    WEFT_CHECK(build_model(t));
    WEFT_CHECK(open_loader(t, WEFT_SPLIT_TRAIN, &t->train));
    int64_t eval_batches = weft_config_int(t->cfg, "train.eval_batches");
    if (eval_batches > 0 && open_loader(t, WEFT_SPLIT_VAL, &t->val) != 0 && t->ctx->rank == 0)
        WEFT_WARN("no validation loss: %s", weft_last_error());
    t->inputs = malloc((size_t)(t->b * t->T) * sizeof(int32_t));
    t->targets = malloc((size_t)(t->b * t->T) * sizeof(int32_t));
    if (!t->inputs || !t->targets)
        return weft_error(WEFT_ENOMEM, "out of memory");
    WEFT_CHECK(open_metrics(t));
    return write_run_info(t);
}

static void describe(const trainer *t)
{
    if (t->ctx->rank != 0)
        return;
    const weft_gpt_config *c = weft_gpt_cfg(t->model);
    size_t n = weft_gpt_global_params(t->model);
    WEFT_INFO("model: GPT-2, L=%d NH=%d C=%d V=%d context %d: %.2fM parameters", c->n_layer, c->n_head, c->n_embd,
              c->vocab, c->max_seq, (double)n / 1e6);
    char mesh[128];
    weft_mesh_describe(t->mesh, mesh, sizeof mesh);
    *strstr(mesh, " (this rank") = '\0';
    WEFT_INFO("layout: %s over %d rank%s: data parallel over %d (backend %s), ZeRO-%d, %d gradient bucket%s; "
              "global batch %lld x %lld tokens = %lld per step, %lld micro-batch%s of %lld per replica%s%s",
              mesh, t->ctx->size, t->ctx->size == 1 ? "" : "s", t->D, weft_comm_backend(t->comm),
              (int)weft_config_int(t->cfg, "parallel.zero"),
              weft_dp_nbuckets(t->dp), weft_dp_nbuckets(t->dp) == 1 ? "" : "s", (long long)t->G, (long long)t->T,
              (long long)(t->G * t->T), (long long)t->k, t->k == 1 ? "" : "es", (long long)t->b,
              weft_mesh_size(t->mesh, WEFT_AXIS_PP) > 1 ? ", pipeline schedule " : "",
              weft_mesh_size(t->mesh, WEFT_AXIS_PP) > 1 ? weft_config_str(t->cfg, "parallel.schedule") : "");
    if (weft_mesh_tp_spans_nodes(t->mesh))
        WEFT_WARN("a tensor-parallel group spans nodes: its two allreduces per block each way cross the network. "
                  "Place ranks node by node (mpirun --map-by core, srun --distribution=block) with "
                  "parallel.tp dividing the ranks per node");
    WEFT_INFO("data: dataset %016llx, %llu training windows", (unsigned long long)weft_loader_dataset_hash(t->train),
              (unsigned long long)weft_loader_samples(t->train, 0));
}

/* --- the step ------------------------------------------------------------ */

/* Micro-batch j of this rank's rows: inputs are each window's first T
 * tokens, targets its last T. */
static void split_rows(trainer *t, const int32_t *rows, int64_t j)
{
    int64_t T = t->T;
    for (int64_t i = 0; i < t->b; i++) {
        const int32_t *w = rows + (j * t->b + i) * (T + 1);
        memcpy(t->inputs + i * T, w, (size_t)T * sizeof(int32_t));
        memcpy(t->targets + i * T, w + 1, (size_t)T * sizeof(int32_t));
    }
}

static int nonfinite(trainer *t, step_stats *s)
{
    if (isfinite(s->loss) && isfinite(s->grad_norm))
        return 0;
    if (t->skip_nonfinite) {
        if (t->ctx->rank == 0)
            WEFT_WARN("step %lld: loss %g, gradient norm %g: skipping the update (train.on_nonfinite = skip)",
                      (long long)s->step, s->loss, s->grad_norm);
        s->skipped = 1;
        return 0;
    }
    return weft_error(WEFT_EINTERNAL,
                      "step %lld: the loss (%g) or gradient norm (%g) is not finite; stopping rather than training "
                      "on. Lower optim.lr, check the data, or set train.on_nonfinite = skip",
                      (long long)s->step, s->loss, s->grad_norm);
}

/* The tied embedding: the first stage's gradient (embedding) and the last
 * stage's (LM head) summed on both, so their copies stay equal. */
static int reduce_tied(trainer *t)
{
    weft_comm *e = weft_mesh_embed_comm(t->mesh);
    if (!e)
        return 0;
    float *g = weft_gpt_grads(t->model) + t->wte_off;
    return weft_comm_allreduce(e, g, g, t->wte_n, WEFT_F32, WEFT_SUM);
}

static double pipe_idle(const trainer *t)
{
    weft_pipe_stats ps;
    weft_pipe_get_stats(t->pipe, &ps);
    if (weft_mesh_size(t->mesh, WEFT_AXIS_PP) < 2 || ps.total_ns <= 0)
        return NAN;
    return (double)ps.wait_ns / (double)ps.total_ns;
}

/* The loss lives on the last stage (the same on its TP ranks): summed over
 * stages, averaged over replicas. */
static int reduce_loss(trainer *t, double local, double *out)
{
    WEFT_CHECK(weft_comm_allreduce(weft_mesh_comm(t->mesh, WEFT_AXIS_PP), &local, &local, 1, WEFT_F64, WEFT_SUM));
    return weft_comm_allreduce(t->comm, &local, out, 1, WEFT_F64, WEFT_AVG);
}

/* Global gradient norm: each rank's share (norm_ranges), over every axis. */
static int grad_norm(trainer *t, double *out)
{
    double sumsq;
    WEFT_CHECK(weft_dp_grad_sumsq_ranges(t->dp, (const size_t(*)[2])t->norm, t->nnorm, &sumsq));
    WEFT_CHECK(weft_comm_allreduce(weft_mesh_comm(t->mesh, WEFT_AXIS_TP), &sumsq, &sumsq, 1, WEFT_F64, WEFT_SUM));
    WEFT_CHECK(weft_comm_allreduce(weft_mesh_comm(t->mesh, WEFT_AXIS_PP), &sumsq, &sumsq, 1, WEFT_F64, WEFT_SUM));
    *out = sqrt(sumsq);
    return 0;
}

static int train_step(trainer *t, step_stats *s)
{
    int64_t t0 = weft_now_ns(), tt = weft_trace_begin(), tw = tt;
    const int32_t *rows;
    WEFT_CHECK(weft_loader_next(t->train, &rows));
    weft_trace_end("data.wait", "data", WEFT_TRACE_COMPUTE, -1, tw);
    s->data_ms = 1e-6 * (double)weft_loader_last_wait_ns(t->train);
    s->lr = weft_optim_lr(t->opt, s->step);
    weft_gpt_zero_grad(t->model);
    weft_dp_begin(t->dp);
    t->rows = rows;
    t->loss_sum = 0;
    WEFT_CHECK(weft_pipe_train(t->pipe));
    s->pipe_idle = pipe_idle(t);
    tw = weft_trace_begin();
    WEFT_CHECK(reduce_tied(t));
    WEFT_CHECK(weft_dp_finish_grads(t->dp));
    weft_trace_end("grads.wait", "comm", WEFT_TRACE_COMPUTE, -1, tw);
    double loss = t->loss_sum / (double)t->k;
    if (s->step == t->fault_nan_step && t->ctx->rank == t->ctx->size - 1)
        loss = NAN; /* fault injection: one rank's loss goes bad; the allreduce spreads it */
    WEFT_CHECK(reduce_loss(t, loss, &s->loss));
    WEFT_CHECK(grad_norm(t, &s->grad_norm));
    WEFT_CHECK(nonfinite(t, s));
    if (!s->skipped) {
        double clip = weft_optim_clip_scale(t->opt, s->grad_norm);
        tw = weft_trace_begin();
        weft_optim_step(t->opt, weft_gpt_params(t->model), weft_gpt_grads(t->model), s->lr, clip);
        weft_trace_end("optimizer", "optim", WEFT_TRACE_COMPUTE, -1, tw);
        tw = weft_trace_begin();
        WEFT_CHECK(weft_dp_gather_params(t->dp));
        weft_trace_end("params.gather", "comm", WEFT_TRACE_COMPUTE, -1, tw);
    }
    s->comm_ms = 1e-6 * (double)weft_dp_exposed_ns(t->dp);
    int64_t span = weft_dp_comm_span_ns(t->dp);
    s->hidden = span > 0 ? 1.0 - (double)weft_dp_exposed_ns(t->dp) / (double)span : 0.0;
    s->ms = 1e-6 * (double)(weft_now_ns() - t0);
    weft_trace_end("step %d", "step", WEFT_TRACE_COMPUTE, (int)s->step + 1, tt);
    return 0;
}

/* Mean loss over train.eval_batches global batches from the start of the
 * validation split, so evaluations are comparable. */
static int evaluate(trainer *t, double *val_loss)
{
    int64_t batches = weft_config_int(t->cfg, "train.eval_batches");
    *val_loss = NAN;
    if (!t->val || batches <= 0)
        return 0;
    int64_t tt = weft_trace_begin();
    WEFT_CHECK(weft_loader_seek(t->val, 0));
    t->loss_sum = 0;
    for (int64_t i = 0; i < batches; i++) {
        int stop;
        WEFT_CHECK(weft_comm_any(t->world, weft_sched_stop_signal(t->sched), &stop));
        if (stop) { /* every rank abandons the evaluation at the same batch */
            if (t->ctx->rank == 0)
                WEFT_INFO("evaluation abandoned after %lld of %lld batches: stop requested", (long long)i,
                          (long long)batches);
            return 0;
        }
        weft_sched_heartbeat(t->sched);
        WEFT_CHECK(weft_loader_next(t->val, &t->rows));
        WEFT_CHECK(weft_pipe_forward(t->pipe, (int)t->k));
    }
    int rc = reduce_loss(t, t->loss_sum / (double)(batches * t->k), val_loss);
    weft_trace_end("eval", "eval", WEFT_TRACE_COMPUTE, -1, tt);
    return rc;
}

/* --- reporting ------------------------------------------------------------ */

/* JSON has no NaN or infinity: a non-finite value is written as null. */
static void json_num(FILE *f, const char *key, double v, int digits)
{
    fprintf(f, ",\"%s\":", key);
    if (isfinite(v))
        fprintf(f, "%.*g", digits, v);
    else
        fputs("null", f);
}

static void log_step(trainer *t, const step_stats *s)
{
    if (t->ctx->rank != 0)
        return;
    double tokens = (double)(t->G * t->T), tps = tokens / (s->ms * 1e-3);
    double flops = t->flops_per_token * tps;
    FILE *f = t->metrics;
    fprintf(f, "{\"step\":%lld", (long long)s->step + 1);
    json_num(f, "loss", s->loss, 17);
    json_num(f, "lr", s->lr, 7);
    json_num(f, "grad_norm", s->grad_norm, 7);
    json_num(f, "tokens_per_s", tps, 7);
    json_num(f, "ms_per_step", s->ms, 6);
    json_num(f, "flops_per_s", flops, 5);
    json_num(f, "data_wait_ms", s->data_ms, 4);
    json_num(f, "comm_wait_ms", s->comm_ms, 4);
    json_num(f, "comm_hidden", s->hidden, 3);
    if (!isnan(s->pipe_idle))
        json_num(f, "pipe_idle", s->pipe_idle, 3);
    if (!isnan(s->val_loss))
        json_num(f, "val_loss", s->val_loss, 17);
    if (s->ckpt_ms > 0)
        json_num(f, "ckpt_blocked_ms", s->ckpt_ms, 4);
    fprintf(f, "%s}\n", s->skipped ? ",\"skipped\":true" : "");
    fflush(f);
    double eta = (double)(t->steps - s->step - 1) * s->ms * 1e-3;
    printf("%sstep %5lld/%lld | loss %.4f | lr %.2e | norm %.3f | %.0f tok/s | %.1f ms | %.2f GFLOP/s/rank | "
           "ETA %.0fs\n", t->tty ? "\r\033[K" : "", (long long)s->step + 1, (long long)t->steps, s->loss, s->lr,
           s->grad_norm, tps, s->ms, flops / t->ctx->size / 1e9, eta);
    if (!isnan(s->val_loss))
        printf("          validation loss %.4f\n", s->val_loss);
    fflush(stdout);
}

static void progress(const trainer *t, const step_stats *s)
{
    if (t->ctx->rank != 0 || !t->tty)
        return;
    double eta = (double)(t->steps - s->step - 1) * s->ms * 1e-3;
    printf("\r\033[Kstep %lld/%lld  loss %.4f  ETA %.0fs", (long long)s->step + 1, (long long)t->steps, s->loss, eta);
    fflush(stdout);
}

/* --- sampling ------------------------------------------------------------- */

static int32_t pick(const float *logits, int V, double temperature, weft_rng *rng)
{
    int32_t best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best])
            best = v;
    if (temperature <= 0)
        return best;
    double z = 0, r;
    for (int v = 0; v < V; v++)
        z += exp((logits[v] - logits[best]) / temperature);
    r = weft_rng_uniform(rng) * z;
    for (int v = 0; v < V; v++) {
        r -= exp((logits[v] - logits[best]) / temperature);
        if (r <= 0)
            return v;
    }
    return best;
}

static void print_tokens(const int32_t *tok, int n, int vocab)
{
    for (int i = 0; i < n; i++) {
        if (vocab <= 256)
            putchar(tok[i] == '\n' || (tok[i] >= 32 && tok[i] < 127) ? tok[i] : '?');
        else
            printf("%d ", tok[i]);
    }
}

static void sample(trainer *t, const cli_opts *cli)
{
    if (t->ctx->rank != 0 || cli->sample_tokens <= 0)
        return;
    if (weft_mesh_size(t->mesh, WEFT_AXIS_TP) > 1 || weft_mesh_size(t->mesh, WEFT_AXIS_PP) > 1) {
        WEFT_WARN("--sample: sampling needs the whole model on rank 0 (parallel.tp = parallel.pp = 1); skipped");
        return;
    }
    int V = weft_gpt_cfg(t->model)->vocab, T = (int)t->T, n = 0, total = cli->sample_tokens;
    int32_t *tok = malloc((size_t)(total + 256) * sizeof(int32_t));
    weft_rng rng;
    weft_rng_seed(&rng, (uint64_t)weft_config_int(t->cfg, "train.seed") + 1);
    for (const char *p = cli->prompt; *p && n < 256; p++)
        tok[n++] = V >= 256 ? (unsigned char)*p : 0;
    if (n == 0)
        tok[n++] = V > '\n' ? '\n' : 0;
    int start = n;
    for (int i = 0; i < total; i++, n++) {
        int ctx = n < T ? n : T;
        weft_gpt_forward(t->model, tok + n - ctx, NULL, 1, ctx);
        tok[n] = pick(weft_gpt_logits(t->model) + (size_t)(ctx - 1) * V, V, cli->temperature, &rng);
    }
    printf("--- sample (%d tokens, temperature %g) ---\n", total, cli->temperature);
    print_tokens(tok, start, V);
    print_tokens(tok + start, n - start, V);
    printf("\n---\n");
    free(tok);
}

/* --- main ----------------------------------------------------------------- */

/* --- scheduler hooks (runtime/sched.h) ------------------------------------ */

static void report_step(trainer *t, const step_stats *s)
{
    weft_sched_step_info in = {.step = s->step + 1, .loss = s->loss, .tokens = t->G * t->T, .step_s = s->ms * 1e-3,
                               .comm_s = s->comm_ms * 1e-3, .data_s = s->data_ms * 1e-3,
                               .ckpt_s = s->ckpt_ms * 1e-3};
    in.compute_s = in.step_s - in.comm_s - in.data_s - in.ckpt_s;
    weft_sched_step(t->sched, &in);
}

/* Every rank agreed to stop after `done` steps: commit a checkpoint, then
 * end with the "requeue me" status (rank 0 requeues under Slurm). */
static int stop_run(trainer *t, step_stats *s, int signal)
{
    int64_t done = s->step + 1;
    weft_sched_stopping(t->sched, done, weft_sched_stop_signal(t->sched));
    (void)signal;
    int rc = ckpt_save(t, s, 1), committed = rc == 0;
    if (rc && t->ctx->rank == 0)
        WEFT_ERROR("stopping without a checkpoint: %s", weft_last_error());
    ckpt_report(t);
    WEFT_CHECK(weft_comm_barrier(t->world));
    t->exit_status = weft_sched_preempted(t->sched, committed);
    if (t->ctx->rank == 0)
        WEFT_INFO("stopped after step %lld of %lld; exit status %d", (long long)done, (long long)t->steps,
                  t->exit_status);
    return 0;
}

/* WEFT_DUMP_PARAMS=1 (tests): every rank writes its parameters to
 * run.dir/params-rN.bin, each tensor as one text line "name global0
 * global1 split_dim nblocks part nparts tied_copy numel" and numel f32s,
 * so a test can reassemble the global model from any layout. */
static int dump_params(trainer *t)
{
    if (!getenv("WEFT_DUMP_PARAMS"))
        return 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/params-r%d.bin", weft_config_str(t->cfg, "run.dir"), t->ctx->rank);
    FILE *f = fopen(path, "wb");
    if (!f)
        return weft_error(WEFT_EIO, "cannot write %s: %s", path, strerror(errno));
    const float *w = weft_gpt_params(t->model);
    for (int i = 0; i < weft_gpt_nparams(t->model); i++) {
        const weft_gpt_param *p = weft_gpt_param_at(t->model, i);
        const weft_shard_spec *s = &p->shard;
        fprintf(f, "%s %lld %lld %d %d %d %d %d %zu\n", p->name, (long long)s->global_shape[0],
                (long long)s->global_shape[1], s->split_dim, s->nblocks, s->part, s->nparts, p->tied_copy, p->numel);
        fwrite(w + p->offset, sizeof(float), p->numel, f);
    }
    return fclose(f) == 0 ? 0 : weft_error(WEFT_EIO, "cannot write %s: %s", path, strerror(errno));
}

static int run(trainer *t, const cli_opts *cli)
{
    /* Before set-up: a stop signal during start-up sets the flag (the job
     * stops after its first step) instead of killing the process. */
    WEFT_CHECK(weft_stop_install(weft_config_str(t->cfg, "sched.signals")));
    t->resuming = cli->resume != 0;
    WEFT_CHECK(setup(t));
    WEFT_CHECK(weft_sched_start(t->ctx, t->cfg, t->steps, &t->sched));
    WEFT_CHECK(weft_watchdog_start(t->ctx, weft_config_str(t->cfg, "run.dir"),
                                   weft_config_float(t->cfg, "sched.heartbeat"),
                                   weft_config_float(t->cfg, "comm.timeout")));
    WEFT_CHECK(ckpt_setup(t, cli));
    if (t->start_step > 0)
        weft_sched_resumed(t->sched, t->start_step);
    describe(t);
    int64_t eval_every = weft_config_int(t->cfg, "train.eval_interval");
    int64_t log_every = weft_config_int(t->cfg, "train.log_interval");
    t->t_start_ns = weft_now_ns();
    t->running = 1;
    step_stats s = {0};
    for (int64_t step = t->start_step; step < t->steps; step++) {
        s = (step_stats){.step = step, .val_loss = NAN, .pipe_idle = NAN};
        weft_trace_step(step + 1);
        WEFT_CHECK(train_step(t, &s));
        if (t->fault_step_ms)
            nanosleep(&(struct timespec){t->fault_step_ms / 1000, t->fault_step_ms % 1000 * 1000000}, NULL);
        WEFT_CHECK(ckpt_step(t, &s));
        int last = step == t->steps - 1;
        if (last || (eval_every && (step + 1) % eval_every == 0))
            WEFT_CHECK(evaluate(t, &s.val_loss));
        if (last || (step + 1) % log_every == 0 || !isnan(s.val_loss) || step == 0)
            log_step(t, &s);
        else
            progress(t, &s);
        report_step(t, &s);
        int stop;
        WEFT_CHECK(weft_comm_any(t->world, weft_sched_stop_signal(t->sched), &stop));
        if (stop && !last)
            return stop_run(t, &s, stop);
    }
    weft_trace_step(0);
    WEFT_CHECK(weft_ckpt_finish(t->ckpt)); /* the last save's commit (checkpoint.on_error) */
    ckpt_report(t);
    int rc = weft_ckpt_close(t->ckpt);
    t->ckpt = NULL;
    WEFT_CHECK(rc);
    WEFT_CHECK(weft_trace_finish(weft_config_str(t->cfg, "run.dir")));
    double secs = 1e-9 * (double)(weft_now_ns() - t->t_start_ns);
    if (t->ctx->rank == 0) {
        char val[64] = "";
        if (!isnan(s.val_loss))
            snprintf(val, sizeof val, ", validation loss %.4f", s.val_loss);
        WEFT_INFO("done: %lld steps in %.1f s, final loss %.4f%s; metrics in %s/metrics.jsonl", (long long)t->steps,
                  secs, s.loss, val, weft_config_str(t->cfg, "run.dir"));
    }
    sample(t, cli);
    return dump_params(t);
}

static void teardown(trainer *t, int rc)
{
    weft_watchdog_stop();
    weft_sched_finish(t->sched, rc ? WEFT_RUN_FAILED : WEFT_RUN_DONE, rc ? weft_last_error() : NULL);
    if (t->metrics)
        fclose(t->metrics);
    weft_ckpt_close(t->ckpt);
    weft_ckpt_gpt_free(&t->cdesc);
    free(t->loader_state);
    weft_loader_close(t->train);
    weft_loader_close(t->val);
    weft_optim_free(t->opt);
    weft_pipe_free(t->pipe);
    weft_dp_free(t->dp);
    weft_gpt_free(t->model);
    weft_mesh_free(t->mesh);
    weft_comm_free(t->world);
    free(t->norm);
    /* A run that failed mid-way keeps its timeline; a set-up failure has none. */
    if (t->running)
        weft_trace_finish(weft_config_str(t->cfg, "run.dir"));
    weft_trace_discard();
    free(t->inputs);
    free(t->targets);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: weft-train [--config FILE] [--section.key=value ...] [--sample N] [--temperature X]\n"
            "                  [--prompt TEXT]\n"
            "\n"
            "Trains a GPT-2 model on a dataset made by weft-data over the ranks it is launched on,\n"
            "data-parallel unless parallel.tp / parallel.pp ask for tensor / pipeline parallelism:\n"
            "  mpirun -np 2 weft-train --config examples/configs/demo.ini\n"
            "  mpirun -np 4 weft-train --config ... --parallel.tp=2 --parallel.pp=2\n"
            "Writes run.dir/metrics.jsonl (one JSON object per logged step), run.dir/config.ini,\n"
            "run.dir/run.json, checkpoints in run.dir/checkpoints (every checkpoint.every steps and at\n"
            "the end; docs/checkpoint-format.md), and with trace.steps = a:b run.dir/trace/rank-N.json.\n"
            "\n"
            "  --sample N       after training, rank 0 prints N generated tokens\n"
            "  --temperature X  sampling temperature (0: greedy; default 0.8)\n"
            "  --prompt TEXT    text to start the sample from (byte-level vocabularies)\n"
            "  --resume         continue from the newest checkpoint in run.dir/checkpoints (latest)\n"
            "  --resume=auto    the same when there is one, else start from step 0 (requeued jobs)\n"
            "  --init-from FILE start from a checkpoint's weights (fine-tuning: fresh optimizer and data)\n"
            "  --print-config   check the configuration, print it resolved (INI) and exit\n"
            "  --config-markdown  print the reference of every key (docs/config.md) and exit\n"
            "\n"
            "exit status: 0 done, 64 bad configuration or usage, 65 bad data, 66 missing dataset,\n"
            "70 stopped (non-finite loss, aborted job), 74 I/O error, 75 stopped by a signal with\n"
            "nothing saved, 138 (sched.requeue_exit_code) stopped by a signal after committing a\n"
            "checkpoint: requeue me (see docs/slurm.md)\n\n");
    weft_config_help(all_keys, out);
}

static int parse_cli(int argc, char **argv, cli_opts *cli)
{
    *cli = (cli_opts){.temperature = 0.8, .prompt = ""};
    for (int i = 1; i < argc; i++) {
        int has_next = i + 1 < argc;
        if (strcmp(argv[i], "--sample") == 0 && has_next)
            cli->sample_tokens = atoi(argv[++i]);
        else if (strcmp(argv[i], "--temperature") == 0 && has_next)
            cli->temperature = atof(argv[++i]);
        else if (strcmp(argv[i], "--prompt") == 0 && has_next)
            cli->prompt = argv[++i];
        else if (strcmp(argv[i], "--print-config") == 0)
            cli->print_config = 1;
        else if (strcmp(argv[i], "--resume") == 0 || strcmp(argv[i], "--resume=auto") == 0)
            cli->resume = argv[i][8] ? 2 : 1;
        else if (strcmp(argv[i], "--init-from") == 0 && has_next)
            cli->init_from = argv[++i];
        else
            return weft_error(WEFT_EINVAL, "weft-train: unknown argument '%s' (see --help)", argv[i]);
    }
    if (cli->resume && cli->init_from)
        return weft_error(WEFT_EINVAL, "weft-train: --resume and --init-from exclude each other");
    if (cli->sample_tokens < 0 || cli->temperature < 0)
        return weft_error(WEFT_EINVAL, "weft-train: --sample and --temperature must not be negative");
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--config-markdown") == 0) {
            weft_config_markdown(all_keys, stdout);
            return 0;
        }
    }
    weft_ctx *ctx;
    int rc = weft_init(&argc, argv, program_keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    trainer t = {.ctx = ctx, .cfg = ctx->config};
    cli_opts cli;
    rc = parse_cli(argc, argv, &cli);
    if (rc == 0 && cli.print_config) {
        char *ini = weft_config_to_ini(ctx->config);
        if (ctx->rank == 0 && ini)
            fputs(ini, stdout);
        free(ini);
    } else if (rc == 0) {
        rc = run(&t, &cli);
    }
    /* Set-up failures are the same on every rank and return normally; one
     * rank failing mid-run would leave the others in a collective, so it
     * ends the whole job, with the failure's own exit status. */
    if (rc && t.running && ctx->size > 1)
        weft_abort_with(weft_exit_code(rc), "%s", weft_last_error());
    if (rc && (ctx->rank == 0 || (rc != WEFT_ECONFIG && rc != WEFT_EINVAL)))
        WEFT_ERROR("%s", weft_last_error());
    teardown(&t, rc);
    weft_finalize(ctx);
    return rc == 0 && t.exit_status ? t.exit_status : weft_exit_code(rc);
}
