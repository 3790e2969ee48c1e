/*
 * report.c -- status.json, Prometheus text and the Slurm comment, rendered
 * from a weft_report. See report.h.
 */
#include "runtime/report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const state_names[WEFT_RUN_NSTATES] = {
    "starting", "running", "stopping", "preempted", "done", "failed",
};

const char *weft_run_state_name(weft_run_state s) { return s < WEFT_RUN_NSTATES ? state_names[s] : "?"; }

static const char *const mem_names[WEFT_MEM_NCAT] = {
    "params", "grads", "optimizer", "activations", "comm", "checkpoint", "runtime",
};

const char *weft_mem_cat_name(weft_mem_cat c) { return c < WEFT_MEM_NCAT ? mem_names[c] : "?"; }

void weft_report_init(weft_report *r, const char *job_id)
{
    memset(r, 0, sizeof *r);
    snprintf(r->job_id, sizeof r->job_id, "%s", job_id ? job_id : "");
    r->loss = r->eta_s = r->tokens_per_s = r->flops_per_s = r->peak_flops = NAN;
    r->ckpt_step = r->drained_step = -1;
    r->exit_code = -1;
    r->mem.peak_rss = NAN;
}

/* An append-only text buffer that never overruns. */
typedef struct {
    char *p;
    size_t len, used;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...)
{
    if (o->used >= o->len)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->p + o->used, o->len - o->used, fmt, ap);
    va_end(ap);
    o->used += n > 0 ? (size_t)n : 0;
    if (o->used >= o->len)
        o->used = o->len - 1;
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void put_jstr(out *o, const char *s)
{
    put(o, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            put(o, "\\%c", c);
        else if (c < 0x20)
            put(o, "\\u%04x", c);
        else
            put(o, "%c", c);
    }
    put(o, "\"");
}

/* JSON has no NaN or infinity: null instead. */
static void put_jnum(out *o, const char *key, double v, int digits)
{
    if (isfinite(v))
        put(o, ",\"%s\":%.*g", key, digits, v);
    else
        put(o, ",\"%s\":null", key);
}

int weft_report_json(const weft_report *r, double now, char *buf, size_t len)
{
    out o = {buf, len, 0};
    put(&o, "{\"state\":\"%s\",\"job_id\":", weft_run_state_name(r->state));
    put_jstr(&o, r->job_id);
    put(&o, ",\"step\":%lld,\"total_steps\":%lld", (long long)r->step, (long long)r->total_steps);
    put_jnum(&o, "loss", r->loss, 9);
    put_jnum(&o, "tokens_per_s", r->tokens_per_s, 6);
    put_jnum(&o, "model_flops_per_s_per_rank", r->flops_per_s, 6);
    put_jnum(&o, "peak_flops_per_rank", r->peak_flops, 6);
    put_jnum(&o, "mfu", r->flops_per_s / r->peak_flops, 4);
    put_jnum(&o, "eta_s", r->eta_s, 6);
    put_jnum(&o, "elapsed_s", r->started > 0 ? now - r->started : NAN, 6);
    put(&o, ",\"tokens\":%lld", (long long)r->tokens);
    if (r->ckpt_step >= 0) {
        put(&o, ",\"last_checkpoint\":{\"step\":%lld,\"path\":", (long long)r->ckpt_step);
        put_jstr(&o, r->ckpt_path);
        put(&o, ",\"time\":%.3f}", r->ckpt_time);
    } else {
        put(&o, ",\"last_checkpoint\":null");
    }
    if (r->tiered) { /* the drain to the shared tier: a failure is never silent */
        put(&o, ",\"shared_tier\":{\"drained_step\":%lld,\"drained\":%d,\"retried\":%d,\"failed\":%d,\"error\":",
            (long long)r->drained_step, r->drains, r->drain_retries, r->drain_failures);
        put_jstr(&o, r->drain_error);
        put(&o, "}");
    }
    put(&o, ",\"restarts\":%d", r->restarts);
    if (r->stop_signal)
        put(&o, ",\"stop_signal\":%d", r->stop_signal);
    if (r->exit_code >= 0) /* how it ended, for weft-report (absent while running) */
        put(&o, ",\"exit_code\":%d", r->exit_code);
    if (r->mem.known) { /* bytes: the planned account of the rank holding most, and the measured peak */
        put(&o, ",\"memory\":{\"rank\":%d", r->mem.rank);
        for (int c = 0; c < WEFT_MEM_NCAT; c++)
            put(&o, ",\"%s_bytes\":%.0f", mem_names[c], r->mem.bytes[c]);
        put(&o, ",\"planned_bytes\":%.0f", r->mem.planned);
        put_jnum(&o, "peak_rss_bytes", r->mem.peak_rss, 15);
        put(&o, ",\"peak_rss_rank\":%d}", r->mem.peak_rank);
    }
    put(&o, ",\"message\":");
    put_jstr(&o, r->message);
    put(&o, ",\"heartbeat\":%.3f,\"updated\":%.3f}\n", r->heartbeat, now);
    return (int)o.used;
}

/* Prometheus sample values: Go's float syntax, with NaN and +Inf spelt as
 * the format requires. */
static void put_pval(out *o, double v)
{
    if (isnan(v))
        put(o, "NaN\n");
    else if (isinf(v))
        put(o, v > 0 ? "+Inf\n" : "-Inf\n");
    else
        put(o, "%.17g\n", v);
}

static void metric(out *o, const char *name, const char *type, const char *help, const char *job, double v)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n%s{job_id=\"%s\"} ", name, help, name, type, name, job);
    put_pval(o, v);
}

/* Label values are escaped (backslash, quote, newline) per the format. */
static void label_value(char *dst, size_t len, const char *s)
{
    size_t j = 0;
    for (; *s && j + 3 < len; s++) {
        if (*s == '\\' || *s == '"')
            dst[j++] = '\\', dst[j++] = *s;
        else if (*s == '\n')
            dst[j++] = '\\', dst[j++] = 'n';
        else
            dst[j++] = *s;
    }
    dst[j] = '\0';
}

static void breakdown(out *o, const weft_report *r, const char *job)
{
    static const char *const phases[] = {"compute", "comm", "data_wait", "checkpoint_stall"};
    const double v[] = {r->compute_s, r->comm_s, r->data_s, r->ckpt_s};
    put(o, "# HELP weft_step_phase_seconds Last step's wall time by phase (comm: exposed communication).\n"
           "# TYPE weft_step_phase_seconds gauge\n");
    for (int i = 0; i < 4; i++) {
        put(o, "weft_step_phase_seconds{job_id=\"%s\",phase=\"%s\"} ", job, phases[i]);
        put_pval(o, v[i]);
    }
}

static void memory(out *o, const weft_report *r, const char *job)
{
    if (!r->mem.known)
        return;
    put(o, "# HELP weft_memory_bytes Bytes the rank planning to hold the most holds, by category (train/memory.h).\n"
           "# TYPE weft_memory_bytes gauge\n");
    for (int c = 0; c < WEFT_MEM_NCAT; c++) {
        put(o, "weft_memory_bytes{job_id=\"%s\",rank=\"%d\",category=\"%s\"} ", job, r->mem.rank, mem_names[c]);
        put_pval(o, r->mem.bytes[c]);
    }
    metric(o, "weft_memory_planned_bytes", "gauge", "The sum of weft_memory_bytes: that rank's planned total.", job,
           r->mem.planned);
    metric(o, "weft_memory_peak_rss_bytes", "gauge", "The largest peak resident memory (VmHWM) over the ranks.", job,
           r->mem.peak_rss);
}

static void states(out *o, const weft_report *r, const char *job)
{
    put(o, "# HELP weft_state The run's state (1 for the current one).\n# TYPE weft_state gauge\n");
    for (int s = 0; s < WEFT_RUN_NSTATES; s++)
        put(o, "weft_state{job_id=\"%s\",state=\"%s\"} %d\n", job, state_names[s], r->state == (weft_run_state)s);
}

int weft_report_prometheus(const weft_report *r, double now, char *buf, size_t len)
{
    out o = {buf, len, 0};
    char job[160];
    label_value(job, sizeof job, r->job_id);
    metric(&o, "weft_step", "gauge", "Optimizer steps completed.", job, (double)r->step);
    metric(&o, "weft_steps_planned", "gauge", "Optimizer steps the run will take (train.steps).", job,
           (double)r->total_steps);
    metric(&o, "weft_loss", "gauge", "Training loss of the last step.", job, r->loss);
    metric(&o, "weft_tokens_per_second", "gauge", "Training throughput of the last step.", job, r->tokens_per_s);
    metric(&o, "weft_model_flops_per_second_per_rank", "gauge", "Model FLOP/s of the last step on one rank.", job,
           r->flops_per_s);
    metric(&o, "weft_mfu", "gauge", "Model FLOP/s over the rank's peak (weft_peak_flops_per_rank), in [0, 1].", job,
           r->flops_per_s / r->peak_flops);
    metric(&o, "weft_peak_flops_per_rank", "gauge", "One rank's peak FLOP/s (run.peak_flops or measured at start).",
           job, r->peak_flops);
    metric(&o, "weft_tokens_total", "counter", "Tokens trained by this attempt.", job, (double)r->tokens);
    metric(&o, "weft_step_seconds", "gauge", "Wall time of the last step.", job, r->step_s);
    breakdown(&o, r, job);
    metric(&o, "weft_eta_seconds", "gauge", "Estimated seconds to the last step.", job, r->eta_s);
    metric(&o, "weft_checkpoint_step", "gauge", "Step of the last committed checkpoint (-1: none).", job,
           (double)r->ckpt_step);
    metric(&o, "weft_checkpoint_age_seconds", "gauge", "Seconds since the last checkpoint commit (NaN: none).",
           job, r->ckpt_step >= 0 ? now - r->ckpt_time : NAN);
    if (r->tiered) {
        metric(&o, "weft_checkpoint_drained_step", "gauge",
               "Step of the newest checkpoint drained to the shared tier (checkpoint.dir) by this attempt (-1: none).",
               job, (double)r->drained_step);
        metric(&o, "weft_checkpoint_drains_total", "counter", "Checkpoints drained to the shared tier.", job,
               (double)r->drains);
        metric(&o, "weft_checkpoint_drain_retries_total", "counter", "Drain attempts to the shared tier retried.",
               job, (double)r->drain_retries);
        metric(&o, "weft_checkpoint_drain_failures_total", "counter",
               "Checkpoints given up on for the shared tier (on the local tier only).", job, (double)r->drain_failures);
    }
    metric(&o, "weft_restarts", "gauge", "Times the scheduler restarted this job.", job, (double)r->restarts);
    metric(&o, "weft_heartbeat_timestamp_seconds", "gauge", "Wall time of the training loop's last report.", job,
           r->heartbeat);
    memory(&o, r, job);
    states(&o, r, job);
    return (int)o.used;
}

/* 1234567 -> "1.2M"; for the short comment. */
static void human(char *dst, size_t len, double v)
{
    if (!isfinite(v))
        snprintf(dst, len, "?");
    else if (v >= 1e6)
        snprintf(dst, len, "%.1fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(dst, len, "%.1fk", v / 1e3);
    else
        snprintf(dst, len, "%.0f", v);
}

static void duration(char *dst, size_t len, double s)
{
    if (!isfinite(s) || s < 0)
        snprintf(dst, len, "?");
    else if (s >= 3600)
        snprintf(dst, len, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else if (s >= 60)
        snprintf(dst, len, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(dst, len, "%ds", (int)s);
}

int weft_report_comment(const weft_report *r, char *buf, size_t len)
{
    char tps[32], eta[32], ckpt[32] = "none", loss[32] = "?";
    human(tps, sizeof tps, r->tokens_per_s);
    duration(eta, sizeof eta, r->eta_s);
    if (r->ckpt_step >= 0)
        snprintf(ckpt, sizeof ckpt, "%lld", (long long)r->ckpt_step);
    if (isfinite(r->loss))
        snprintf(loss, sizeof loss, "%.4g", r->loss);
    int n = snprintf(buf, len, "weft %s step %lld/%lld loss %s %s tok/s ETA %s ckpt %s",
                     weft_run_state_name(r->state), (long long)r->step, (long long)r->total_steps, loss, tps, eta,
                     ckpt);
    return n < 0 ? 0 : n;
}
