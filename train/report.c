/*
 * report.c -- what the trainer tells people and programs (trainer.h):
 * config.ini and run.json at start (for weft-report), metrics.jsonl and the
 * log line per logged step, the live progress line, the layout at start,
 * and each step's figures for the scheduler (runtime/sched.h).
 */
#include "train/trainer_int.h"
#include "kernels/kernels.h"
#include "runtime/error.h"
#include "runtime/durable.h"
#include "runtime/log.h"
#include "runtime/runfiles.h"
#include "runtime/timer.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* mkdir -p: a run directory may be new several levels deep. */
static int make_dirs(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0750) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(path, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

int weft_trainer_open_metrics(weft_trainer *t)
{
    const char *dir = t->o.run_dir;
    if (make_dirs(dir) != 0)
        return weft_error(WEFT_EIO, "cannot create run directory %s: %s", dir, strerror(errno));
    if (t->rank != 0)
        return 0;
    snprintf(t->metrics_path, sizeof t->metrics_path, "%s/" WEFT_RUNFILE_METRICS, dir);
    return weft_durable_append_open(t->metrics_path, !t->resuming, &t->metrics_fd);
}

/* Resuming: keep the rows of metrics.jsonl up to the resumed step (rows of
 * steps after the checkpoint are run again), then append. A last line
 * without its newline is what a crash mid-append leaves: dropped, and said. */
int weft_trainer_metrics_resume(weft_trainer *t)
{
    if (t->metrics_fd < 0)
        return 0;
    FILE *f = fopen(t->metrics_path, "r");
    if (!f)
        return weft_error(WEFT_EIO, "cannot read %s for the resumed run: %s", t->metrics_path, strerror(errno));
    char line[8192];
    long keep = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        lineno++;
        if (len == 0 || line[len - 1] != '\n') {
            WEFT_WARN("%s: dropped a torn last line (line %ld, %zu bytes without a newline), left by the run "
                      "that stopped mid-write", t->metrics_path, lineno, len);
            break;
        }
        const char *p = strstr(line, "{\"step\":");
        if (!p || atoll(p + 8) > t->start_step)
            break;
        keep = ftell(f);
    }
    fclose(f);
    if (ftruncate(t->metrics_fd, keep) != 0)
        return weft_error(WEFT_EIO, "cannot cut %s back to the resumed step %lld: %s", t->metrics_path,
                          (long long)t->start_step, strerror(errno));
    return 0;
}

/* run.dir/NAME holds text, made durable (runtime/durable.h). */
int weft_trainer_write_file(const weft_trainer *t, const char *name, const char *text)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", t->o.run_dir, name);
    return weft_durable_write_file(path, text, strlen(text), WEFT_DURABLE_SYNC);
}

/* The peak MFU divides by: run.peak_flops, or the machine's peak in the
 * run's precision (train.precision: f32, or bf16 inputs with f32
 * accumulation) as a rank sees it -- the best oneDNN GEMM of a few large
 * squares on the rank's threads, every rank measuring at once (as they
 * will run), never a model-shaped rate, so MFU stays below 100%. */
static void measure_peak(weft_trainer *t, char *what, size_t len)
{
    double given = weft_config_float(t->cfg, "run.peak_flops");
    int threads = weft_matmul_threads();
    weft_dtype dt = t->bf16 ? WEFT_BF16 : WEFT_F32;
    t->peak_flops = given > 0 ? given : weft_matmul_peak_as(dt, 0.6);
    if (given > 0)
        snprintf(what, len, "run.peak_flops");
    else
        snprintf(what, len, "oneDNN %s GEMM, best of 1024/1536 squares, %d thread%s", weft_dtype_name(dt),
                 threads, threads == 1 ? "" : "s");
}

/* Rank 0 records the run's configuration and layout for weft-report, with
 * the peak every rank measured. */
int weft_trainer_write_run_info(weft_trainer *t)
{
    const weft_model *m = t->model;
    char peak_what[128];
    measure_peak(t, peak_what, sizeof peak_what);
    if (t->rank != 0)
        return 0;
    char json[2048];
    char *ini = weft_config_to_ini(t->cfg);
    if (!ini)
        return weft_error(WEFT_ENOMEM, "out of memory");
    int rc = weft_trainer_write_file(t, WEFT_RUNFILE_CONFIG, ini);
    free(ini);
    WEFT_CHECK(rc);
    snprintf(json, sizeof json,
             "{\"ranks\":%d,\"dp\":%d,\"tp\":%d,\"pp\":%d,\"schedule\":\"%s\",\"nodes\":%d,\"host\":\"%s\","
             "\"backend\":\"%s\",\"zero\":%d,\"buckets\":%d,\"model\":\"%s\","
             "\"bucket_mb\":%g,\"params\":%zu,\"micro_batches\":%lld,\"tokens_per_step\":%lld,"
             "\"flops_per_token\":%.6g,\"peak_flops\":%.6g,\"peak_precision\":\"%s\",\"peak_source\":\"%s\","
             "\"threads\":%d,\"checkpoints\":0,\"restarts\":0,\"started\":%.3f}\n",
             t->size, t->D, weft_mesh_size(t->mesh, WEFT_AXIS_TP), weft_mesh_size(t->mesh, WEFT_AXIS_PP),
             t->o.schedule, t->ctx->nnodes, t->ctx->host, weft_comm_backend(t->comm), t->o.zero,
             weft_dp_nbuckets(t->dp), m->ops->family, weft_config_float(t->cfg, "parallel.bucket_mb"),
             m->global_params, (long long)t->o.k, (long long)(t->o.G * m->tokens_per_sample), m->flops_per_token,
             t->peak_flops, t->bf16 ? "bf16" : "f32", peak_what, weft_matmul_threads(), weft_wall_s());
    return weft_trainer_write_file(t, WEFT_RUNFILE_RUN, json);
}

void weft_trainer_describe(const weft_trainer *t)
{
    if (t->rank != 0)
        return;
    const trainer_opts *o = &t->o;
    WEFT_INFO("model: %s", t->model->summary);
    const weft_model *m = t->model;
    if (m->nfrozen && m->global_trainable < m->global_params) /* AdamW: two f32 moments per trained element */
        WEFT_INFO("%s: %zu trainable of %zu (%.2f%%), optimizer state %.2f MiB vs %.2f MiB full",
                  m->adapter ? m->adapter : "frozen", m->global_trainable, m->global_params,
                  100.0 * (double)m->global_trainable / (double)m->global_params,
                  8.0 * (double)m->global_trainable / 1048576.0, 8.0 * (double)m->global_params / 1048576.0);
    char mesh[128];
    weft_mesh_describe(t->mesh, mesh, sizeof mesh);
    char *cut = strstr(mesh, " (this rank");
    if (cut)
        *cut = '\0';
    int pp = weft_mesh_size(t->mesh, WEFT_AXIS_PP), nb = weft_dp_nbuckets(t->dp);
    int64_t tps = t->model->tokens_per_sample;
    if (t->bf16)
        WEFT_INFO("precision: bf16 linear layers (bf16 weight copies and activations, f32 accumulation), f32 "
                  "master weights, optimizer state, norms and softmax");
    WEFT_INFO("device: %s (%s)", t->devices, t->device_note);
    WEFT_INFO("layout: %s over %d rank%s: data parallel over %d (backend %s), ZeRO-%d, %d gradient bucket%s; "
              "global batch %lld x %lld tokens = %lld per step, %lld micro-batch%s of %lld per replica%s%s",
              mesh, t->size, t->size == 1 ? "" : "s", t->D, weft_comm_backend(t->comm), o->zero, nb,
              nb == 1 ? "" : "s", (long long)o->G, (long long)tps, (long long)(o->G * tps), (long long)o->k,
              o->k == 1 ? "" : "es", (long long)o->b, pp > 1 ? ", pipeline schedule " : "", pp > 1 ? o->schedule : "");
    if (o->adamw.warmup > o->steps)
        WEFT_WARN("optim.warmup (%lld) is longer than train.steps (%lld): the learning rate never reaches "
                  "optim.lr (%g); fine for a short test, else lower optim.warmup", (long long)o->adamw.warmup,
                  (long long)o->steps, o->adamw.lr);
    if (weft_mesh_tp_spans_nodes(t->mesh))
        WEFT_WARN("a tensor-parallel group spans nodes: its two allreduces per block each way cross the network. "
                  "Place ranks node by node (mpirun --map-by core, srun --distribution=block) with "
                  "parallel.tp dividing the ranks per node");
    int64_t n = t->train->ops->samples ? t->train->ops->samples(t->train) : -1;
    if (n >= 0)
        WEFT_INFO("data: dataset %016llx, %llu training windows",
                  (unsigned long long)t->train->ops->hash(t->train), (unsigned long long)n);
    else
        WEFT_INFO("data: source %016llx", (unsigned long long)t->train->ops->hash(t->train));
}

/* JSON has no NaN or infinity: a non-finite value is written as null.
 * Appends to b (cap bytes, *n used; a line that does not fit is cut short
 * and then refused by the caller). */
static void json_num(char *b, size_t cap, size_t *n, const char *key, double v, int digits)
{
    if (*n >= cap)
        return;
    if (isfinite(v))
        *n += (size_t)snprintf(b + *n, cap - *n, ",\"%s\":%.*g", key, digits, v);
    else
        *n += (size_t)snprintf(b + *n, cap - *n, ",\"%s\":null", key);
}

/* One metrics row, written whole with one append (a crash leaves at most a
 * torn last line, which a resume drops). */
static void write_row(weft_trainer *t, const weft_step_stats *s, double tps, double flops, double mfu)
{
    char b[1024];
    size_t n = (size_t)snprintf(b, sizeof b, "{\"step\":%lld", (long long)s->step + 1), cap = sizeof b - 32;
    json_num(b, cap, &n, "loss", s->loss, 17);
    json_num(b, cap, &n, "lr", s->lr, 7);
    json_num(b, cap, &n, "grad_norm", s->grad_norm, 7);
    json_num(b, cap, &n, "tokens_per_s", tps, 7);
    json_num(b, cap, &n, "ms_per_step", s->ms, 6);
    json_num(b, cap, &n, "flops_per_s", flops, 5);
    if (isfinite(mfu))
        json_num(b, cap, &n, "mfu", mfu, 4);
    json_num(b, cap, &n, "data_wait_ms", s->data_ms, 4);
    json_num(b, cap, &n, "comm_wait_ms", s->comm_ms, 4);
    json_num(b, cap, &n, "comm_hidden", s->hidden, 3);
    if (!isnan(s->pipe_idle))
        json_num(b, cap, &n, "pipe_idle", s->pipe_idle, 3);
    if (!isnan(s->gather_hidden)) {
        json_num(b, cap, &n, "gather_wait_ms", s->gather_ms, 4);
        json_num(b, cap, &n, "gather_hidden", s->gather_hidden, 3);
    }
    if (!isnan(s->val_loss))
        json_num(b, cap, &n, "val_loss", s->val_loss, 17);
    if (s->ckpt_ms > 0)
        json_num(b, cap, &n, "ckpt_blocked_ms", s->ckpt_ms, 4);
    if (n < cap)
        n += (size_t)snprintf(b + n, sizeof b - n, "%s}\n", s->skipped ? ",\"skipped\":true" : "");
    if (n >= cap) {
        WEFT_WARN("%s: the row of step %lld is too long; not written", t->metrics_path, (long long)s->step + 1);
        return;
    }
    if (weft_durable_append(t->metrics_fd, b, n, t->metrics_path) != 0 && !t->metrics_warned) {
        t->metrics_warned = 1; /* once: a full disk would say it every step */
        WEFT_WARN("%s (metrics rows are lost until it is writable again)", weft_last_error());
    }
}

void weft_trainer_log_step(weft_trainer *t, const weft_step_stats *s)
{
    if (t->rank != 0)
        return;
    double tokens = (double)(t->o.G * t->model->tokens_per_sample), tps = tokens / (s->ms * 1e-3);
    double flops = t->model->flops_per_token * tps, mfu = t->peak_flops > 0 ? flops / t->size / t->peak_flops : NAN;
    write_row(t, s, tps, flops, mfu);
    double eta = (double)(t->o.steps - s->step - 1) * s->ms * 1e-3;
    char mfu_s[32] = "";
    if (isfinite(mfu))
        snprintf(mfu_s, sizeof mfu_s, "MFU %.1f%% | ", 100 * mfu);
    if (mfu > 1 && !t->peak_warned) {
        t->peak_warned = 1;
        WEFT_WARN("MFU %.0f%%: this step ran faster than the peak of %.2f GFLOP/s per rank (%s), so that peak is "
                  "too low -- other processes shared the cores when it was measured at start; give the machine's "
                  "peak with run.peak_flops", 100 * mfu, t->peak_flops / 1e9,
                  weft_config_float(t->cfg, "run.peak_flops") > 0 ? "run.peak_flops" : "measured at start");
    }
    printf("%sstep %5lld/%lld | loss %.4f | lr %.2e | norm %.3f | %.0f tok/s | %.1f ms | %.2f GFLOP/s/rank | "
           "%sETA %.0fs\n", t->o.tty ? "\r\033[K" : "", (long long)s->step + 1, (long long)t->o.steps,
           s->loss, s->lr, s->grad_norm, tps, s->ms, flops / t->size / 1e9, mfu_s, eta);
    if (!isnan(s->val_loss))
        printf("          validation loss %.4f\n", s->val_loss);
    fflush(stdout);
}

void weft_trainer_progress(const weft_trainer *t, const weft_step_stats *s)
{
    if (t->rank != 0 || !t->o.tty)
        return;
    double eta = (double)(t->o.steps - s->step - 1) * s->ms * 1e-3;
    printf("\r\033[Kstep %lld/%lld  loss %.4f  ETA %.0fs", (long long)s->step + 1, (long long)t->o.steps, s->loss,
           eta);
    fflush(stdout);
}

void weft_trainer_report_step(weft_trainer *t, const weft_step_stats *s)
{
    weft_sched_step_info in = {.step = s->step + 1, .loss = s->loss,
                               .tokens = t->o.G * t->model->tokens_per_sample, .step_s = s->ms * 1e-3,
                               .comm_s = s->comm_ms * 1e-3, .data_s = s->data_ms * 1e-3,
                               .ckpt_s = s->ckpt_ms * 1e-3,
                               .flops_per_rank = t->model->flops_per_token * (double)(t->o.G * t->model->tokens_per_sample) /
                                                 t->size,
                               .peak_flops = t->peak_flops};
    in.compute_s = in.step_s - in.comm_s - in.data_s - in.ckpt_s;
    weft_sched_step(t->sched, &in);
}
