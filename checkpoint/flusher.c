/*
 * flusher.c -- the write-back and read-back walk of a save (flusher.h says
 * why it is a thread and why the check trails the write-back): it walks the
 * writer's runs of segments in the order the writer writes them, starts
 * each published range's write-back, and hands the started bytes to the
 * check a trail behind.
 */
#include "checkpoint/flusher.h"
#include "runtime/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

static int start_writeback(int fd, size_t off, size_t len)
{
    return sync_file_range(fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE) == 0 ? 0 : errno;
}

/* Where the write-back walk stands: run [i, j) of len bytes, the first
 * base positions before it, done of it started. */
typedef struct {
    int i, j;
    size_t base, len, done;
} run_cursor;

/* Start the write-back of every published position not yet started, run by
 * run; mu is held on entry and exit, dropped around each call. 0 (also when
 * there is no such call here: flush becomes NULL), or -1 once the walk must
 * stop on a failure, recorded. */
static int start_published(weft_ckpt_flusher *f, run_cursor *r)
{
    const weft_ckpt_segs *v = f->segs;
    while (r->i < v->n && f->published > f->started) {
        size_t upto = f->published < r->base + r->len ? f->published : r->base + r->len;
        size_t off = v->s[r->i].off + r->done, n = upto - r->base - r->done;
        pthread_mutex_unlock(&f->mu);
        int e = f->flush(f->fd, off, n);
        pthread_mutex_lock(&f->mu);
        if (e == ENOSYS) { /* no such call here: the commit's fsync writes everything; the check */
            f->flush = NULL; /* still runs (walk: "started" is "published" from now on) */
            return 0;
        }
        if (e) {
            f->err = e, f->err_off = off, f->err_len = n;
            return -1;
        }
        r->done += n;
        f->started = upto;
        if (r->done == r->len) {
            r->base += r->len, r->done = 0, r->i = r->j;
            if (r->i < v->n)
                r->j = weft_ckpt_segs_run(v, r->i, &r->len);
        }
    }
    return 0;
}

/* The walk, under mu: start what is published, check what trails it by
 * f->trail (everything, once the writer is done), until the writer is done
 * and every published position is started and checked, or a failure. */
static void walk(weft_ckpt_flusher *f)
{
    run_cursor r = {0};
    if (f->segs->n)
        r.j = weft_ckpt_segs_run(f->segs, 0, &r.len);
    for (;;) {
        if (f->published > f->started && f->flush && start_published(f, &r) != 0)
            break;
        if (!f->flush) /* without write-back, "started" is "published" */
            f->started = f->published;
        int all = f->closed && f->started == f->published;
        if (f->check && f->checked < f->started && (all || f->started - f->checked >= f->trail)) {
            size_t pos = f->checked, n = f->started - pos < f->piece ? f->started - pos : f->piece;
            pthread_mutex_unlock(&f->mu);
            int rc = f->check(f->ctx, pos, n);
            if (rc)
                snprintf(f->check_msg, sizeof f->check_msg, "%s", weft_last_error());
            pthread_mutex_lock(&f->mu);
            if (rc) {
                f->check_rc = rc;
                break;
            }
            f->checked = pos + n;
            pthread_cond_signal(&f->room);
            continue;
        }
        if (all && (!f->check || f->checked == f->started))
            break;
        pthread_cond_wait(&f->more, &f->mu);
    }
    f->stopped = 1;
    pthread_cond_signal(&f->room);
}

static void *flusher_main(void *arg)
{
    weft_ckpt_flusher *f = arg;
    pthread_mutex_lock(&f->mu);
    walk(f);
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

int weft_ckpt_flusher_start(weft_ckpt_flusher *f, const weft_ckpt_segs *segs, int fd, weft_ckpt_flush_fn flush,
                            weft_ckpt_check_fn check, void *ctx)
{
    *f = (weft_ckpt_flusher){.segs = segs, .fd = fd, .flush = flush ? flush : start_writeback, .check = check,
                             .ctx = ctx, .piece = WEFT_FLUSH_CHECK_PIECE, .trail = WEFT_FLUSH_TRAIL, .limit = WEFT_FLUSH_LIMIT};
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->more, NULL);
    pthread_cond_init(&f->room, NULL);
    int e = pthread_create(&f->thread, NULL, flusher_main, f);
    if (e)
        return weft_error(WEFT_EINTERNAL, "checkpoint: cannot start the write-back thread: %s", strerror(e));
    f->running = 1;
    return 0;
}

int weft_ckpt_flusher_publish(weft_ckpt_flusher *f, size_t n)
{
    pthread_mutex_lock(&f->mu);
    f->published += n;
    pthread_cond_signal(&f->more);
    /* Without a thread nothing checks until the end: no waiting. */
    while (f->running && f->check && !f->stopped && f->published - f->checked > f->limit)
        pthread_cond_wait(&f->room, &f->mu);
    int stopped = f->stopped && (f->err || f->check_rc);
    pthread_mutex_unlock(&f->mu);
    return stopped ? -1 : 0;
}

int weft_ckpt_flusher_end(weft_ckpt_flusher *f, const char *path)
{
    if (!f->segs)
        return 0;
    pthread_mutex_lock(&f->mu);
    f->closed = 1;
    pthread_cond_signal(&f->more);
    if (!f->running) /* no thread: the whole walk here */
        walk(f);
    pthread_mutex_unlock(&f->mu);
    if (f->running)
        pthread_join(f->thread, NULL);
    pthread_cond_destroy(&f->room);
    pthread_cond_destroy(&f->more);
    pthread_mutex_destroy(&f->mu);
    f->running = 0;
    f->segs = NULL;
    if (f->err)
        return weft_error(WEFT_EIO, "checkpoint: writing %s back to disk failed: %s (%zu bytes at offset %zu)", path,
                          strerror(f->err), f->err_len, f->err_off);
    if (f->check_rc)
        return weft_error(f->check_rc, "%s", f->check_msg);
    return 0;
}
