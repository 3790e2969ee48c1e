/*
 * drain.c -- the second tier (see drain.h): a thread that copies each
 * checkpoint committed in checkpoint.local_dir to checkpoint.dir and commits
 * it there with the same protocol as the first tier:
 *   copy to DIR/.step-N.h5.tmp -> fsync -> rename -> fsync DIR -> latest
 *   (temporary name, fsync, rename) -> retention (checkpoint.keep_last).
 * A crash at any instant leaves the shared latest naming a complete file.
 *
 * States (one job, one thread, on the rank that commits):
 *   idle --weft_ckpt_drain_post(N)--> pending(N) --thread--> copying(N)
 *   copying(N) --ok--> drained = N, idle (or pending(M) if M was posted)
 *   copying(N) --error--> retry after 0.5, 1, 2 ... s, at most `retries`
 *   times, unless a newer M was posted (N is superseded); then failed(N):
 *   counted and reported (weft_ckpt_drain_get), never silent.
 */
#include "checkpoint/drain.h"
#include "checkpoint/commit.h"
#include "runtime/error.h"
#include "runtime/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct weft_ckpt_drain {
    char from[4096], to[4096];
    int keep_last, keep_every, retries;
    int64_t hold_step;           /* WEFT_FAULT_DRAIN_HOLD (tests): stop mid-copy of this step */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t posted, copying;     /* newest committed locally; being copied (-1: none) */
    int quit;
    weft_ckpt_drain_stats st;
};

enum { CHUNK = 8 << 20 };

static int copy_fd(int in, int out, const char *src, const char *dst, int64_t step, int64_t hold, const char *to)
{
    char *buf = malloc(CHUNK);
    if (!buf)
        return weft_error(WEFT_ENOMEM, "checkpoint drain: out of memory");
    int rc = 0, first = 1;
    for (;;) {
        ssize_t n = read(in, buf, CHUNK);
        if (n < 0) {
            rc = weft_error(WEFT_EIO, "checkpoint drain: reading %s: %s", src, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0) {
                rc = weft_error(WEFT_EIO, "checkpoint drain: writing %s: %s", dst, strerror(errno));
                break;
            }
            done += w;
        }
        if (rc)
            break;
        if (first && step == hold) { /* the fault point: a drain stopped mid-copy, for kill -9 */
            char mark[4200];
            snprintf(mark, sizeof mark, "%s/.drain-held", to);
            close(open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0640));
            for (;;)
                pause();
        }
        first = 0;
    }
    free(buf);
    return rc;
}

/* One attempt: copy step's file, commit it in `to`, apply retention. */
static int drain_one(weft_ckpt_drain *d, int64_t step)
{
    char name[64], src[4200], tmp[4200];
    weft_ckpt_file_name(step, name, sizeof name);
    snprintf(src, sizeof src, "%s/%s", d->from, name);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", d->to, name);
    WEFT_CHECK(weft_ckpt_mkdir(d->to));
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return weft_error(WEFT_EIO, "checkpoint drain: cannot open %s: %s", src, strerror(errno));
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    int rc = out < 0 ? weft_error(WEFT_EIO, "checkpoint drain: cannot create %s: %s", tmp, strerror(errno))
                     : copy_fd(in, out, src, tmp, step, d->hold_step, d->to);
    if (rc == 0 && fsync(out) != 0)
        rc = weft_error(WEFT_EIO, "checkpoint drain: fsync of %s failed: %s", tmp, strerror(errno));
    if (out >= 0 && close(out) != 0 && rc == 0)
        rc = weft_error(WEFT_EIO, "checkpoint drain: closing %s failed: %s", tmp, strerror(errno));
    close(in);
    if (rc == 0)
        rc = weft_ckpt_publish(d->to, tmp, name);
    if (rc) {
        unlink(tmp);
        return rc;
    }
    if (weft_ckpt_retain(d->to, d->keep_last, d->keep_every, step) != 0)
        WEFT_WARN("%s", weft_last_error());
    return 0;
}

/* Sleep s seconds unless quit or a newer step is posted; 1 if woken so. */
static int backoff(weft_ckpt_drain *d, double s, int64_t step)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)s;
    until.tv_nsec += (long)((s - (double)(time_t)s) * 1e9);
    if (until.tv_nsec >= 1000000000L)
        until.tv_sec++, until.tv_nsec -= 1000000000L;
    while (!d->quit && d->posted == step)
        if (pthread_cond_timedwait(&d->cv, &d->mu, &until) == ETIMEDOUT)
            return 0;
    return 1;
}

/* With d->mu held: drain step, retrying; records the outcome. */
static void drain_step(weft_ckpt_drain *d, int64_t step)
{
    for (int attempt = 1;; attempt++) {
        d->copying = step;
        pthread_mutex_unlock(&d->mu);
        int rc = drain_one(d, step);
        char why[900];
        snprintf(why, sizeof why, "%s", rc ? weft_last_error() : "");
        pthread_mutex_lock(&d->mu);
        d->copying = -1;
        if (rc == 0) {
            d->st.drained_step = step;
            d->st.drained++;
            d->st.error[0] = '\0';
            WEFT_INFO("checkpoint step %lld drained to %s", (long long)step, d->to);
            break;
        }
        snprintf(d->st.error, sizeof d->st.error, "step %lld: %s", (long long)step, why);
        if (attempt > d->retries) {
            d->st.failed++;
            d->st.failed_step = step;
            WEFT_ERROR("checkpoint step %lld could not be drained to %s after %d attempts: %s; it is on the local "
                       "tier only (%s)", (long long)step, d->to, attempt, why, d->from);
            break;
        }
        d->st.retried++;
        double wait = 0.5 * (double)(1 << (attempt - 1));
        WEFT_WARN("checkpoint drain of step %lld to %s failed (attempt %d of %d): %s; retrying in %.1f s",
                  (long long)step, d->to, attempt, d->retries + 1, why, wait);
        if (backoff(d, wait, step)) {
            if (!d->quit) {
                d->st.failed++;
                d->st.failed_step = step;
                WEFT_WARN("checkpoint step %lld not drained: step %lld was committed since and is drained instead",
                          (long long)step, (long long)d->posted);
            }
            break;
        }
    }
    pthread_cond_broadcast(&d->cv);
}

static void *drain_main(void *arg)
{
    weft_ckpt_drain *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->quit && (d->posted <= d->st.drained_step || d->posted <= d->st.failed_step))
            pthread_cond_wait(&d->cv, &d->mu);
        if (d->quit)
            break;
        drain_step(d, d->posted);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

int weft_ckpt_drain_new(const char *from, const char *to, int keep_last, int keep_every, int retries,
                        weft_ckpt_drain **out)
{
    *out = NULL;
    weft_ckpt_drain *d = calloc(1, sizeof *d);
    if (!d)
        return weft_error(WEFT_ENOMEM, "checkpoint drain: out of memory");
    snprintf(d->from, sizeof d->from, "%s", from);
    snprintf(d->to, sizeof d->to, "%s", to);
    d->keep_last = keep_last, d->keep_every = keep_every, d->retries = retries;
    const char *hold = getenv("WEFT_FAULT_DRAIN_HOLD");
    d->hold_step = hold ? strtoll(hold, NULL, 10) : -2;
    d->posted = d->copying = d->st.drained_step = d->st.failed_step = -1;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    int rc = weft_ckpt_mkdir(to);
    if (rc == 0)
        weft_ckpt_remove_stale(to); /* a drain killed mid-copy */
    if (rc == 0 && pthread_create(&d->thread, NULL, drain_main, d) != 0)
        rc = weft_error(WEFT_EINTERNAL, "checkpoint drain: cannot start its thread");
    if (rc) {
        pthread_mutex_destroy(&d->mu);
        pthread_cond_destroy(&d->cv);
        free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void weft_ckpt_drain_post(weft_ckpt_drain *d, int64_t step)
{
    pthread_mutex_lock(&d->mu);
    d->posted = step;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

int weft_ckpt_drain_wait(weft_ckpt_drain *d, int64_t step, double timeout_s)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)timeout_s;
    pthread_mutex_lock(&d->mu);
    int timed_out = 0;
    while (d->st.drained_step < step && d->st.failed_step < step && !timed_out)
        timed_out = pthread_cond_timedwait(&d->cv, &d->mu, &until) == ETIMEDOUT;
    int rc = 0;
    if (d->st.drained_step >= step)
        rc = 0;
    else if (d->st.failed_step >= step)
        rc = weft_error(WEFT_EIO, "checkpoint step %lld was not drained to %s: %s", (long long)step, d->to,
                        d->st.error);
    else
        rc = weft_error(WEFT_EIO, "checkpoint step %lld was not drained to %s within checkpoint.drain_timeout "
                        "(%.0f s): it is on the local tier only (%s)", (long long)step, d->to, timeout_s, d->from);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

void weft_ckpt_drain_get(weft_ckpt_drain *d, weft_ckpt_drain_stats *out)
{
    pthread_mutex_lock(&d->mu);
    *out = d->st;
    pthread_mutex_unlock(&d->mu);
}

void weft_ckpt_drain_close(weft_ckpt_drain *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->quit = 1;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d);
}
