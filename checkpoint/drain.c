/*
 * drain.c -- the second tier (see drain.h): a thread that copies each
 * checkpoint committed in checkpoint.local_dir to checkpoint.dir and commits
 * it there with the same protocol as the first tier:
 *   free space (checkpoint.preflight) -> copy to DIR/.step-N.h5.tmp ->
 *   fsync -> rename -> fsync DIR -> latest (temporary name, fsync, rename)
 *   -> drained (the waiters told) -> retention (checkpoint.keep_last,
 *   keep_every), off the drain's time as the writer's is off the save's.
 * A crash at any instant leaves the shared latest naming a complete file;
 * the next job removes the temporary file and drains again what the local
 * tier holds newer than the shared latest.
 *
 * States (one job, one thread, on the rank that commits):
 *   idle --weft_ckpt_drain_post(N)--> pending(N) --thread--> copying(N)
 *   copying(N) --ok--> drained = N, idle (or pending(M) if M was posted)
 *   copying(N) --error--> retry after 0.5, 1, 2 ... s, at most `retries`
 *   times, unless a newer M was posted (N is superseded) or the drain is
 *   closing; then failed(N): counted and reported (weft_ckpt_drain_get,
 *   the log), never silent.
 * The copy goes in 8 MiB chunks (the first at most half the file: copy_fd),
 * by copy_file_range within one file system
 * (the kernel copies, or clones where it can), else read + write. As a
 * save does (flusher.h), the copy holds a bounded share of the page cache:
 * each chunk's write-back is started behind it, and 32 MiB behind, waited
 * for and dropped, with the same range of the source -- a drain of a
 * 1.5 GB checkpoint neither evicts what training reads nor depends on how
 * fast the machine gives pages back.
 */
#include "checkpoint/drain.h"
#include "checkpoint/commit.h"
#include "checkpoint/latest.h"
#include "runtime/error.h"
#include "runtime/fault.h"
#include "runtime/log.h"
#include "runtime/timer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

struct weft_ckpt_drain {
    char from[4096], to[4096];
    int keep_last, keep_every, retries, preflight;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t posted;              /* newest step committed locally (-1: none) */
    int quit;
    weft_ckpt_drain_stats st;
};

enum { CHUNK = 8 << 20 };

static int closing(weft_ckpt_drain *d)
{
    pthread_mutex_lock(&d->mu);
    int q = d->quit;
    pthread_mutex_unlock(&d->mu);
    return q;
}

static int closing_cb(void *arg) { return closing(arg); }

/* The fault points (runtime/fault.h; docs/operations.md, "Fault
 * injection"), reached after an attempt's first chunk is in the temporary
 * file: fail_drain fails the attempt (EIO); kill_drain, stall_drain stop
 * the process mid-copy; hold_drain parks the copy until the test releases
 * it or the drain closes (then the attempt fails, ECANCELED). 0, or the
 * errno the attempt fails with. */
static int drain_fault(weft_ckpt_drain *d, int64_t step)
{
    int e = weft_fault_at(WEFT_FAULT_DRAIN_TRY, -1);
    return e ? e : weft_fault_at_or(WEFT_FAULT_DRAIN_COPY, step, closing_cb, d);
}

/* One chunk of in appended to out: copy_file_range where the kernel can
 * (same file system: no copy through user space), else read + write
 * (*kernel becomes 0 for the rest). Bytes copied (0: end of file), or -1
 * with the error recorded. */
static ssize_t copy_chunk(int in, int out, char *buf, size_t want, int *kernel, const char *src, const char *dst)
{
    if (*kernel) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, want, 0);
        if (n >= 0)
            return n;
        if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP && errno != EINTR)
            return weft_error(WEFT_EIO, "checkpoint drain: copying %s to %s: %s", src, dst, strerror(errno)), -1;
        *kernel = errno == EINTR;
    }
    ssize_t n;
    while ((n = read(in, buf, want)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return weft_error(WEFT_EIO, "checkpoint drain: reading %s: %s", src, strerror(errno)), -1;
    for (ssize_t done = 0; done < n;) {
        ssize_t w = write(out, buf + done, (size_t)(n - done));
        if (w >= 0)
            done += w;
        else if (errno != EINTR)
            return weft_error(WEFT_EIO, "checkpoint drain: writing %s: %s", dst, strerror(errno)), -1;
    }
    return n;
}

enum { DRAIN_TRAIL = 32u << 20 }; /* written back ahead of the range dropped */

/* Bytes [from, to) of out on disk (waited for) and both files' pages of
 * them dropped; start: only start the write-back. 0, or -1 with the error
 * recorded. A file system without sync_file_range: nothing to do (the
 * commit's fsync writes everything). */
static int write_back(int in, int out, size_t from, size_t to, int start, const char *dst)
{
    unsigned flags = start ? SYNC_FILE_RANGE_WRITE
                           : SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
    if (sync_file_range(out, (off_t)from, (off_t)(to - from), flags) != 0 && errno != ENOSYS)
        return weft_error(WEFT_EIO, "checkpoint drain: writing %s back to disk failed: %s (%zu bytes at offset %zu)",
                          dst, strerror(errno), to - from, from), -1;
    if (!start) {
        posix_fadvise(out, (off_t)from, (off_t)(to - from), POSIX_FADV_DONTNEED);
        posix_fadvise(in, (off_t)from, (off_t)(to - from), POSIX_FADV_DONTNEED);
    }
    return 0;
}

/* The first chunk is at most half the file, so that the fault points
 * after it are mid-copy for a file of any size (a small file would
 * otherwise be whole after one chunk). */
static int copy_fd(weft_ckpt_drain *d, int in, int out, const char *src, const char *dst, int64_t step)
{
    char *buf = malloc(CHUNK);
    if (!buf)
        return weft_error(WEFT_ENOMEM, "checkpoint drain: out of memory");
    struct stat sb;
    size_t half = fstat(in, &sb) == 0 && sb.st_size > 1 ? (size_t)sb.st_size / 2 : CHUNK;
    int rc = 0, kernel = 1;
    size_t copied = 0, dropped = 0;
    for (int first = 1; rc == 0; first = 0) {
        ssize_t n = copy_chunk(in, out, buf, first && half < CHUNK ? half : CHUNK, &kernel, src, dst);
        if (n <= 0) {
            rc = n < 0 ? WEFT_EIO : 0;
            break;
        }
        copied += (size_t)n;
        if (write_back(in, out, copied - (size_t)n, copied, 1, dst) != 0) {
            rc = WEFT_EIO;
            break;
        }
        if (copied - dropped > DRAIN_TRAIL) { /* what is DRAIN_TRAIL behind: on disk, then out of the cache */
            if (write_back(in, out, dropped, copied - DRAIN_TRAIL, 0, dst) != 0) {
                rc = WEFT_EIO;
                break;
            }
            dropped = copied - DRAIN_TRAIL;
        }
        int e = first ? drain_fault(d, step) : 0;
        if (e)
            rc = weft_error(WEFT_EIO, "checkpoint drain: writing %s: %s (fault injected: %s)", dst, strerror(e),
                            e == ECANCELED ? "hold_drain, the job ended while held" : "fail_drain");
    }
    free(buf);
    return rc;
}

/* checkpoint.preflight: the shared tier has room for the file. */
static int check_space(const weft_ckpt_drain *d, int in, const char *src, int64_t step)
{
    struct stat sb;
    struct statvfs vb;
    if (!d->preflight || fstat(in, &sb) != 0 || statvfs(d->to, &vb) != 0)
        return 0; /* no answer: the copy itself finds out */
    double need = (double)sb.st_size, have = (double)vb.f_bavail * (double)vb.f_frsize;
    if (need <= have)
        return 0;
    return weft_error(WEFT_EIO, "checkpoint drain of step %lld: not enough space in %s: %s needs %.1f MiB, %.1f "
                      "MiB are free (%s)", (long long)step, d->to, src, need / 1048576.0, have / 1048576.0,
                      strerror(ENOSPC));
}

/* One attempt: copy step's file and commit it in `to`. */
static int drain_one(weft_ckpt_drain *d, int64_t step, size_t *bytes)
{
    char name[64], src[4200], tmp[4200];
    weft_ckpt_file_name(step, name, sizeof name);
    snprintf(src, sizeof src, "%s/%s", d->from, name);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", d->to, name);
    WEFT_CHECK(weft_ckpt_mkdir(d->to));
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return weft_error(WEFT_EIO, "checkpoint drain: cannot open %s: %s", src, strerror(errno));
    posix_fadvise(in, 0, 0, POSIX_FADV_SEQUENTIAL);
    int out = -1, rc = check_space(d, in, src, step);
    if (rc == 0 && (out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0)
        rc = weft_error(WEFT_EIO, "checkpoint drain: cannot create %s: %s", tmp, strerror(errno));
    if (rc == 0)
        rc = copy_fd(d, in, out, src, tmp, step);
    if (rc == 0 && fsync(out) != 0)
        rc = weft_error(WEFT_EIO, "checkpoint drain: fsync of %s failed: %s", tmp, strerror(errno));
    struct stat sb;
    *bytes = rc == 0 && fstat(out, &sb) == 0 ? (size_t)sb.st_size : 0;
    if (out >= 0 && close(out) != 0 && rc == 0)
        rc = weft_error(WEFT_EIO, "checkpoint drain: closing %s failed: %s", tmp, strerror(errno));
    close(in);
    if (rc == 0)
        rc = weft_ckpt_publish(d->to, tmp, name, step);
    if (rc)
        unlink(tmp);
    return rc;
}

/* With d->mu held: sleep s seconds unless the drain closes or a step newer
 * than `step` is posted; 1 if woken so. */
static int backoff(weft_ckpt_drain *d, double s, int64_t step)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long long ns = (long long)until.tv_nsec + (long long)(s * 1e9);
    until.tv_sec += (time_t)(ns / 1000000000LL);
    until.tv_nsec = (long)(ns % 1000000000LL);
    while (!d->quit && d->posted == step)
        if (pthread_cond_timedwait(&d->cv, &d->mu, &until) == ETIMEDOUT)
            return 0;
    return 1;
}

/* With d->mu held: the attempt failed for good. */
static void give_up(weft_ckpt_drain *d, int64_t step, int attempts, const char *why)
{
    d->st.failed++;
    d->st.failed_step = step;
    if (d->quit)
        WEFT_ERROR("checkpoint step %lld was not drained to %s: the job is ending (%s); it is on the local tier only "
                   "(%s), and the next job with the same checkpoint.local_dir drains it", (long long)step, d->to,
                   why, d->from);
    else if (d->posted != step)
        WEFT_ERROR("checkpoint step %lld was not drained to %s (%s): step %lld was committed since and is drained "
                   "instead", (long long)step, d->to, why, (long long)d->posted);
    else
        WEFT_ERROR("checkpoint step %lld could not be drained to %s after %d attempt%s: %s; it is on the local tier "
                   "only (%s)", (long long)step, d->to, attempts, attempts == 1 ? "" : "s", why, d->from);
}

/* With d->mu held: drain step, retrying; records the outcome. */
static void drain_step(weft_ckpt_drain *d, int64_t step)
{
    for (int attempt = 1;; attempt++) {
        pthread_mutex_unlock(&d->mu);
        int64_t t0 = weft_now_ns();
        size_t bytes = 0;
        int rc = drain_one(d, step, &bytes);
        double secs = 1e-9 * (double)(weft_now_ns() - t0);
        char why[900];
        snprintf(why, sizeof why, "%s", rc ? weft_last_error() : "");
        pthread_mutex_lock(&d->mu);
        if (rc == 0) {
            d->st.drained_step = step;
            d->st.drained++;
            d->st.last_bytes = bytes, d->st.last_s = secs;
            d->st.error[0] = '\0';
            WEFT_INFO("checkpoint step %lld drained to %s (%.1f MiB in %.2f s)", (long long)step, d->to,
                      (double)bytes / 1048576.0, secs);
            /* retention after the waiters hear of the drain: unlinking the
             * previous file (0.1-0.17 s at 577 MB: its pages and extents
             * freed) is nobody's wait; weft_ckpt_drain_close joins the
             * thread after it */
            pthread_cond_broadcast(&d->cv);
            pthread_mutex_unlock(&d->mu);
            if (weft_ckpt_retain(d->to, d->keep_last, d->keep_every, step) != 0)
                WEFT_WARN("%s", weft_last_error());
            pthread_mutex_lock(&d->mu);
            break;
        }
        snprintf(d->st.error, sizeof d->st.error, "step %lld: %s", (long long)step, why);
        if (attempt > d->retries || d->quit) {
            give_up(d, step, attempt, why);
            break;
        }
        d->st.retried++;
        double wait = 0.5 * (double)(1 << (attempt - 1 < 20 ? attempt - 1 : 20));
        WEFT_WARN("checkpoint drain of step %lld to %s failed (attempt %d of %d): %s; retrying in %.1f s",
                  (long long)step, d->to, attempt, d->retries + 1, why, wait);
        if (backoff(d, wait, step)) {
            give_up(d, step, attempt, why);
            break;
        }
    }
    pthread_cond_broadcast(&d->cv);
}

static void *drain_main(void *arg)
{
    weft_ckpt_drain *d = arg;
    /* Not niced like the writer: a stop signal waits for the drain, and a
     * niced copy on a busy 2-core VM ran at 59 MB/s against 139 MB/s
     * un-niced (bench_ckpt --tiers-only, load ~11; bench/README.md). */
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

/* The two tiers must be two directories. */
static int distinct(const char *from, const char *to)
{
    struct stat a, b;
    if (stat(from, &a) != 0 || stat(to, &b) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino)
        return 0;
    return weft_error(WEFT_ECONFIG, "checkpoint.local_dir %s and checkpoint.dir %s are the same directory: the "
                      "local tier drains to the shared one; give two directories, or leave checkpoint.local_dir "
                      "empty for one tier", from, to);
}

static void drain_free(weft_ckpt_drain *d)
{
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d);
}

int weft_ckpt_drain_new(const weft_ckpt_drain_opts *o, weft_ckpt_drain **out)
{
    *out = NULL;
    weft_ckpt_drain *d = calloc(1, sizeof *d);
    if (!d)
        return weft_error(WEFT_ENOMEM, "checkpoint drain: out of memory");
    snprintf(d->from, sizeof d->from, "%s", o->from);
    snprintf(d->to, sizeof d->to, "%s", o->to);
    d->keep_last = o->keep_last, d->keep_every = o->keep_every;
    d->retries = o->retries, d->preflight = o->preflight;
    d->posted = d->st.drained_step = d->st.failed_step = -1;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    int rc = weft_ckpt_mkdir(o->to);
    if (rc == 0)
        rc = distinct(o->from, o->to);
    if (rc) {
        drain_free(d);
        return rc;
    }
    weft_ckpt_remove_stale(o->to); /* a drain killed mid-copy */
    int64_t local = weft_ckpt_latest_step(o->from), shared = weft_ckpt_latest_step(o->to);
    if (local > shared) {
        WEFT_INFO("checkpoint step %lld of the local tier %s is not in the shared tier %s (latest: %s): draining it",
                  (long long)local, o->from, o->to, shared >= 0 ? "older" : "none");
        d->posted = local;
    }
    if (pthread_create(&d->thread, NULL, drain_main, d) != 0) {
        drain_free(d);
        return weft_error(WEFT_EINTERNAL, "checkpoint drain: cannot start its thread");
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
    double end = (double)until.tv_sec + 1e-9 * (double)until.tv_nsec + timeout_s;
    until.tv_sec = (time_t)end;
    until.tv_nsec = (long)((end - (double)until.tv_sec) * 1e9);
    pthread_mutex_lock(&d->mu);
    if (d->st.drained_step < step && d->st.failed_step < step)
        WEFT_INFO("waiting for checkpoint step %lld to drain to %s (at most checkpoint.drain_timeout = %g s)",
                  (long long)step, d->to, timeout_s);
    int timed_out = 0;
    while (d->st.drained_step < step && d->st.failed_step < step && !timed_out)
        timed_out = pthread_cond_timedwait(&d->cv, &d->mu, &until) == ETIMEDOUT;
    int rc = 0;
    if (d->st.drained_step >= step)
        rc = 0;
    else if (d->st.failed_step >= step)
        rc = weft_error(WEFT_EIO, "checkpoint step %lld was not drained to %s: %s; it is on the local tier only (%s)",
                        (long long)step, d->to, d->st.error, d->from);
    else
        rc = weft_error(WEFT_EIO, "checkpoint step %lld was not drained to %s within checkpoint.drain_timeout "
                        "(%g s): it is on the local tier only (%s)", (long long)step, d->to, timeout_s, d->from);
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
    drain_free(d);
}
