/*
 * sched.c -- the stop signals and rank 0's reporter: status.json, the
 * Prometheus endpoint and textfile, the Slurm comment, requeue. See sched.h.
 *
 * The training thread writes into `rep` under `mu` and signals `wake`; the
 * reporter thread copies `rep` out under the lock and does the I/O outside
 * it. The metrics server thread renders from a copy the same way.
 */
#include "runtime/sched.h"
#include "runtime/durable.h"
#include "runtime/error.h"
#include "runtime/httpd.h"
#include "runtime/log.h"
#include "runtime/runfiles.h"
#include "runtime/slurm.h"
#include "runtime/stop.h"
#include "runtime/timer.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

const weft_config_key weft_sched_config_keys[] = {
    {"sched.signals", WEFT_CFG_STRING, "USR1,TERM", WEFT_UNBOUNDED, NULL,
     "signals that mean 'checkpoint and stop' (preemption, time limit): comma-separated names or numbers"},
    {"sched.requeue_exit_code", WEFT_CFG_INT, "138", 1, 255, NULL,
     "exit status after a stop with a committed checkpoint (138 = 128+SIGUSR1: Kubeflow's retryable code)"},
    {"sched.requeue", WEFT_CFG_BOOL, "true", WEFT_UNBOUNDED, NULL,
     "under Slurm, rank 0 requeues the job (scontrol requeue) after a stop with a committed checkpoint"},
    {"sched.max_requeues", WEFT_CFG_INT, "10", 0, 100000, NULL,
     "requeue only while SLURM_RESTART_COUNT is below this"},
    {"sched.status_interval", WEFT_CFG_FLOAT, "2", 0, 86400, NULL,
     "seconds between rewrites of run.dir/status.json and the textfile (0: every step)"},
    {"sched.metrics_port", WEFT_CFG_INT, "-1", -1, 65535, NULL,
     "rank 0 serves Prometheus metrics at http://BIND:PORT/metrics (-1: off; 0: any free port, written to "
     "run.dir/metrics.port)"},
    {"sched.metrics_bind", WEFT_CFG_STRING, "127.0.0.1", WEFT_UNBOUNDED, NULL,
     "IPv4 address the metrics server listens on (0.0.0.0: every interface)"},
    {"sched.textfile", WEFT_CFG_STRING, "", WEFT_UNBOUNDED, NULL,
     "also write the metrics to this file for node_exporter's textfile collector (a .prom path; '': off)"},
    {"sched.heartbeat", WEFT_CFG_FLOAT, "1", 0.05, 3600, NULL,
     "seconds between each rank's heartbeat file (run.dir/heartbeat/rank-N), which hang diagnoses read"},
    {"sched.comment_interval", WEFT_CFG_FLOAT, "60", 0, 86400, NULL,
     "under Slurm, seconds between job comment updates (squeue -o %k; 0: off)"},
    WEFT_CONFIG_END,
};

struct weft_sched {
    weft_ctx *ctx;
    char dir[4096], textfile[4096];
    int publisher; /* rank 0 */
    int requeue, max_requeues, exit_code;
    double status_every, comment_every;
    double ema_step_s;
    int64_t first_step; /* resumed from */
    pthread_mutex_t mu;
    pthread_cond_t wake;
    weft_report rep; /* under mu */
    int dirty, quit; /* under mu */
    pthread_t thread;
    int thread_started;
    weft_httpd *httpd;
    pid_t comment_pid; /* reporter thread only */
    double comment_started;
    char *buf;         /* 64 KiB render buffer of the reporter thread */
};

static _Atomic int64_t current_step = -1;
static weft_sched *_Atomic aborting_sched; /* the publisher, for the abort hook */
static atomic_int hook_installed;

int64_t weft_sched_current_step(void) { return atomic_load(&current_step); }

int weft_write_atomic(const char *path, const char *text, size_t len)
{
    return weft_durable_write_file(path, text, len, WEFT_DURABLE_BEST_EFFORT);
}

/* --- rendering from a copy ----------------------------------------------- */

static void snapshot(weft_sched *s, weft_report *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->rep;
    s->dirty = 0;
    pthread_mutex_unlock(&s->mu);
}

static int render_metrics(void *arg, char *buf, size_t len)
{
    weft_sched *s = arg;
    weft_report r;
    pthread_mutex_lock(&s->mu);
    r = s->rep;
    pthread_mutex_unlock(&s->mu);
    return weft_report_prometheus(&r, weft_wall_s(), buf, len);
}

static void write_files(weft_sched *s, const weft_report *r)
{
    char path[4200];
    double now = weft_wall_s();
    int n = weft_report_json(r, now, s->buf, 65536);
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_STATUS, s->dir);
    if (weft_write_atomic(path, s->buf, (size_t)n) != 0)
        WEFT_WARN("status: %s", weft_last_error());
    if (!s->textfile[0])
        return;
    n = weft_report_prometheus(r, now, s->buf, 65536);
    if (weft_write_atomic(s->textfile, s->buf, (size_t)n) != 0)
        WEFT_WARN("sched.textfile: %s", weft_last_error());
}

/* One comment update at a time; one stuck for 30 s is killed. */
static void update_comment(weft_sched *s, const weft_report *r, double now)
{
    int status;
    if (s->comment_pid > 0) {
        if (!weft_slurm_reap(s->comment_pid, &status)) {
            if (now - s->comment_started < 30)
                return;
            kill(s->comment_pid, SIGKILL);
            waitpid(s->comment_pid, NULL, 0);
            status = 137;
        }
        if (status != 0)
            WEFT_DEBUG("scontrol update Comment exited %d", status);
        s->comment_pid = 0;
    }
    char text[256];
    weft_report_comment(r, text, sizeof text);
    if (weft_slurm_comment(s->ctx->job_id, text, &s->comment_pid) != 0) {
        WEFT_WARN("job comment: %s", weft_last_error());
        s->comment_pid = 0;
    }
    s->comment_started = now;
}

static void *reporter_main(void *arg)
{
    weft_sched *s = arg;
    double last_status = 0, last_comment = 0;
    pthread_mutex_lock(&s->mu);
    while (!s->quit) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100000000;
        if (until.tv_nsec >= 1000000000)
            until.tv_sec++, until.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&s->wake, &s->mu, &until);
        if (s->quit)
            break;
        int dirty = s->dirty;
        pthread_mutex_unlock(&s->mu);
        double now = 1e-9 * (double)weft_now_ns();
        weft_report r;
        if (dirty && now - last_status >= s->status_every) {
            snapshot(s, &r);
            write_files(s, &r);
            last_status = now;
        }
        if (s->ctx->in_slurm && s->comment_every > 0 && now - last_comment >= s->comment_every) {
            snapshot(s, &r);
            update_comment(s, &r, now);
            last_comment = now;
        }
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* weft_abort: the job ends now; status.json says failed and why. The
 * lock is only tried (the aborting thread may have interrupted a holder). */
static void on_abort(void *arg)
{
    (void)arg;
    weft_sched *s = atomic_load(&aborting_sched);
    if (!s)
        return;
    int locked = 0;
    for (int i = 0; i < 100 && !(locked = pthread_mutex_trylock(&s->mu) == 0); i++)
        usleep(10000);
    s->rep.state = WEFT_RUN_FAILED;
    snprintf(s->rep.message, sizeof s->rep.message, "aborted: %s", weft_abort_reason());
    s->rep.exit_code = weft_abort_status();
    weft_report r = s->rep;
    if (locked)
        pthread_mutex_unlock(&s->mu);
    static char buf[16384]; /* not s->buf: the reporter thread may be using it */
    char path[4200];
    int n = weft_report_json(&r, weft_wall_s(), buf, sizeof buf);
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_STATUS, s->dir);
    weft_write_atomic(path, buf, (size_t)n);
}

/* --- lifecycle ------------------------------------------------------------- */

static int start_metrics(weft_sched *s, const weft_config *cfg)
{
    int port = (int)weft_config_int(cfg, "sched.metrics_port");
    if (port < 0)
        return 0;
    WEFT_CHECK(weft_httpd_start(weft_config_str(cfg, "sched.metrics_bind"), port, "/metrics",
                                "text/plain; version=0.0.4; charset=utf-8", render_metrics, s, &s->httpd));
    char path[4200], text[32];
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_METRICS_PORT, s->dir);
    int n = snprintf(text, sizeof text, "%d\n", weft_httpd_port(s->httpd));
    WEFT_CHECK(weft_write_atomic(path, text, (size_t)n));
    WEFT_INFO("metrics: http://%s:%d/metrics", weft_config_str(cfg, "sched.metrics_bind"),
              weft_httpd_port(s->httpd));
    return 0;
}

static void read_config(weft_sched *s, const weft_config *cfg)
{
    snprintf(s->dir, sizeof s->dir, "%s", weft_config_str(cfg, "run.dir"));
    snprintf(s->textfile, sizeof s->textfile, "%s", weft_config_str(cfg, "sched.textfile"));
    s->requeue = weft_config_bool(cfg, "sched.requeue");
    s->max_requeues = (int)weft_config_int(cfg, "sched.max_requeues");
    s->exit_code = (int)weft_config_int(cfg, "sched.requeue_exit_code");
    s->status_every = weft_config_float(cfg, "sched.status_interval");
    s->comment_every = weft_config_float(cfg, "sched.comment_interval");
}

static int start_publisher(weft_sched *s, const weft_config *cfg)
{
    if (mkdir(s->dir, 0750) != 0 && errno != EEXIST)
        return weft_error(WEFT_EIO, "cannot create run directory %s: %s", s->dir, strerror(errno));
    s->buf = malloc(65536);
    if (!s->buf)
        return weft_error(WEFT_ENOMEM, "out of memory");
    write_files(s, &s->rep);
    WEFT_CHECK(start_metrics(s, cfg));
    if (!atomic_exchange(&hook_installed, 1))
        WEFT_CHECK(weft_at_abort(on_abort, NULL));
    atomic_store(&aborting_sched, s);
    if (pthread_create(&s->thread, NULL, reporter_main, s) != 0)
        return weft_error(WEFT_EINTERNAL, "cannot start the reporter thread");
    s->thread_started = 1;
    return 0;
}

static void sched_free(weft_sched *s)
{
    weft_sched *self = s;
    atomic_compare_exchange_strong(&aborting_sched, &self, NULL);
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->quit = 1;
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    weft_httpd_stop(s->httpd);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->wake);
    free(s->buf);
    free(s);
}

int weft_sched_start(weft_ctx *ctx, const weft_config *cfg, int64_t total_steps, weft_sched **out)
{
    if (!weft_stop_installed())
        WEFT_CHECK(weft_stop_install(weft_config_str(cfg, "sched.signals")));
    weft_sched *s = calloc(1, sizeof *s);
    if (!s)
        return weft_error(WEFT_ENOMEM, "out of memory");
    s->ctx = ctx;
    s->publisher = ctx->rank == 0;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->wake, NULL);
    read_config(s, cfg);
    weft_report_init(&s->rep, ctx->job_id);
    s->rep.total_steps = total_steps;
    s->rep.restarts = weft_slurm_restart_count();
    s->rep.started = s->rep.heartbeat = weft_wall_s();
    int rc = s->publisher ? start_publisher(s, cfg) : 0;
    if (rc) {
        sched_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static void touch(weft_sched *s)
{
    s->dirty = 1;
    s->rep.heartbeat = weft_wall_s();
    if (s->status_every <= 0)
        pthread_cond_signal(&s->wake);
}

void weft_sched_step(weft_sched *s, const weft_sched_step_info *in)
{
    atomic_store(&current_step, in->step);
    if (!s->publisher)
        return;
    /* A mean over about the last 20 steps; the first step (warm-up) is
     * taken as it is and soon forgotten. */
    s->ema_step_s = s->ema_step_s > 0 ? 0.9 * s->ema_step_s + 0.1 * in->step_s : in->step_s;
    pthread_mutex_lock(&s->mu);
    weft_report *r = &s->rep;
    if (r->state == WEFT_RUN_STARTING)
        r->state = WEFT_RUN_RUNNING;
    r->step = in->step;
    r->loss = in->loss;
    r->tokens += in->tokens;
    r->tokens_per_s = in->step_s > 0 ? (double)in->tokens / in->step_s : NAN;
    r->flops_per_s = in->step_s > 0 && in->flops_per_rank > 0 ? in->flops_per_rank / in->step_s : NAN;
    r->peak_flops = in->peak_flops > 0 ? in->peak_flops : NAN;
    r->step_s = in->step_s;
    r->compute_s = in->compute_s;
    r->comm_s = in->comm_s;
    r->data_s = in->data_s;
    r->ckpt_s = in->ckpt_s;
    r->eta_s = (double)(r->total_steps - in->step) * s->ema_step_s;
    touch(s);
    pthread_mutex_unlock(&s->mu);
}

void weft_sched_resumed(weft_sched *s, int64_t step)
{
    atomic_store(&current_step, step);
    s->first_step = step;
    pthread_mutex_lock(&s->mu);
    s->rep.step = step;
    touch(s);
    pthread_mutex_unlock(&s->mu);
}

void weft_sched_memory(weft_sched *s, const weft_report_memory *m)
{
    if (!s || !s->publisher)
        return;
    pthread_mutex_lock(&s->mu);
    s->rep.mem = *m;
    touch(s);
    pthread_mutex_unlock(&s->mu);
}

void weft_sched_checkpoint(weft_sched *s, int64_t step, const char *path)
{
    pthread_mutex_lock(&s->mu);
    s->rep.ckpt_step = step;
    snprintf(s->rep.ckpt_path, sizeof s->rep.ckpt_path, "%s", path ? path : "");
    s->rep.ckpt_time = weft_wall_s();
    touch(s);
    pthread_mutex_unlock(&s->mu);
}

void weft_sched_drain(weft_sched *s, int64_t drained_step, int drains, int retries, int failures, const char *error)
{
    pthread_mutex_lock(&s->mu);
    weft_report *r = &s->rep;
    int changed = !r->tiered || r->drained_step != drained_step || r->drains != drains ||
                  r->drain_retries != retries || r->drain_failures != failures;
    r->tiered = 1;
    r->drained_step = drained_step;
    r->drains = drains, r->drain_retries = retries, r->drain_failures = failures;
    snprintf(r->drain_error, sizeof r->drain_error, "%s", error ? error : "");
    if (changed)
        touch(s);
    pthread_mutex_unlock(&s->mu);
}

void weft_sched_heartbeat(weft_sched *s)
{
    pthread_mutex_lock(&s->mu);
    touch(s);
    pthread_mutex_unlock(&s->mu);
}

int weft_sched_stop_signal(const weft_sched *s)
{
    (void)s;
    return weft_stop_requested();
}

void weft_sched_stopping(weft_sched *s, int64_t step, int signal)
{
    pthread_mutex_lock(&s->mu);
    int first = s->rep.state != WEFT_RUN_STOPPING;
    s->rep.state = WEFT_RUN_STOPPING;
    s->rep.stop_signal = signal;
    snprintf(s->rep.message, sizeof s->rep.message, "stop requested%s%s; all ranks stop after step %lld",
             signal ? " by " : " by a signal on another rank", signal ? weft_signal_name(signal) : "",
             (long long)step);
    char msg[sizeof s->rep.message];
    snprintf(msg, sizeof msg, "%s", s->rep.message);
    touch(s);
    pthread_mutex_unlock(&s->mu);
    /* Every rank says where it stops: the proof that they agree. */
    if (first)
        WEFT_INFO("%s", msg);
}

/* Rank 0 under Slurm: requeue, unless restarted too often already. */
static void requeue(weft_sched *s)
{
    int restarts = weft_slurm_restart_count();
    if (!s->ctx->in_slurm || !s->requeue)
        return;
    if (restarts >= s->max_requeues) {
        WEFT_WARN("not requeueing job %s: it has been restarted %d times (sched.max_requeues = %d)", s->ctx->job_id,
                  restarts, s->max_requeues);
        return;
    }
    if (weft_slurm_requeue(s->ctx->job_id) == 0)
        WEFT_INFO("requeued Slurm job %s (restart %d of at most %d); it resumes from the last checkpoint",
                  s->ctx->job_id, restarts + 1, s->max_requeues);
    else
        WEFT_WARN("could not requeue job %s: %s", s->ctx->job_id, weft_last_error());
}

int weft_sched_preempted(weft_sched *s, int committed)
{
    pthread_mutex_lock(&s->mu);
    s->rep.state = WEFT_RUN_PREEMPTED;
    size_t n = strlen(s->rep.message);
    snprintf(s->rep.message + n, sizeof s->rep.message - n, "%s",
             committed ? "; checkpoint committed" : "; no checkpoint was saved");
    s->rep.exit_code = committed ? s->exit_code : WEFT_EXIT_TEMPFAIL;
    pthread_mutex_unlock(&s->mu);
    if (!committed)
        return WEFT_EXIT_TEMPFAIL;
    if (s->publisher)
        requeue(s);
    return s->exit_code;
}

/* The last status and comment, written before the program exits. */
static void final_report(weft_sched *s)
{
    weft_report r;
    snapshot(s, &r);
    write_files(s, &r);
    if (!s->ctx->in_slurm || s->comment_every <= 0)
        return;
    int status;
    if (s->comment_pid > 0 && !weft_slurm_reap(s->comment_pid, &status)) {
        kill(s->comment_pid, SIGKILL);
        waitpid(s->comment_pid, NULL, 0);
    }
    char text[256], jobarg[96], comment[300];
    weft_report_comment(&r, text, sizeof text);
    snprintf(jobarg, sizeof jobarg, "JobId=%s", s->ctx->job_id);
    snprintf(comment, sizeof comment, "Comment=%s", text);
    char *argv[] = {"update", jobarg, comment, NULL};
    if (weft_slurm_run(argv, 10) != 0)
        WEFT_WARN("job comment: %s", weft_last_error());
}

void weft_sched_exit_status(weft_sched *s, int status)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->rep.exit_code = status;
    pthread_mutex_unlock(&s->mu);
}

void weft_sched_finish(weft_sched *s, weft_run_state final, const char *message)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    if (s->rep.state != WEFT_RUN_PREEMPTED)
        s->rep.state = final;
    if (message && s->rep.state != WEFT_RUN_PREEMPTED)
        snprintf(s->rep.message, sizeof s->rep.message, "%s", message);
    s->rep.heartbeat = weft_wall_s();
    pthread_mutex_unlock(&s->mu);
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->quit = 1;
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        s->thread_started = 0;
    }
    if (s->publisher)
        final_report(s);
    /* A stopping process stays stopping: after a requeue the scheduler
     * cancels the step (Slurm: SIGTERM, then SIGKILL after KillWait) while
     * the ranks still wait for each other in MPI_Finalize; with the default
     * disposition back, that SIGTERM turned a rank's exit 138 into a death
     * by signal (143) and the step's status with it (test_requeue, on a
     * loaded machine). The handler only sets the flag, so it stays. */
    if (!weft_stop_requested())
        weft_stop_uninstall();
    sched_free(s);
}
