/*
 * flusher.c -- the write-back thread of a save (flusher.h says why it is a
 * thread): it walks the writer's runs of segments in the order the writer
 * writes them and starts each published range's write-back.
 */
#include "checkpoint/flusher.h"
#include "runtime/error.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

static int start_writeback(int fd, size_t off, size_t len)
{
    return sync_file_range(fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE) == 0 ? 0 : errno;
}

static void *flusher_main(void *arg)
{
    weft_ckpt_flusher *f = arg;
    const weft_ckpt_segs *v = f->segs;
    size_t base = 0;         /* published bytes before run i */
    size_t len = 0, done = 0; /* run i's length, and how much of it was started */
    int i = 0, j = v->n ? weft_ckpt_segs_run(v, 0, &len) : 0;
    pthread_mutex_lock(&f->mu);
    while (i < v->n) {
        while (!f->closed && f->published <= base + done)
            pthread_cond_wait(&f->cv, &f->mu);
        size_t upto = f->published < base + len ? f->published : base + len;
        if (upto <= base + done) /* closed, and nothing more of this run came */
            break;
        size_t off = v->s[i].off + done, n = upto - base - done;
        pthread_mutex_unlock(&f->mu);
        int e = f->flush(f->fd, off, n);
        pthread_mutex_lock(&f->mu);
        if (e == ENOSYS) /* no such call here: the commit's fsync writes everything */
            break;
        if (e) {
            f->err = e, f->err_off = off, f->err_len = n;
            break;
        }
        done += n;
        if (done == len) {
            base += len, done = 0, i = j;
            if (i < v->n)
                j = weft_ckpt_segs_run(v, i, &len);
        }
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

int weft_ckpt_flusher_start(weft_ckpt_flusher *f, const weft_ckpt_segs *segs, int fd, weft_ckpt_flush_fn flush)
{
    *f = (weft_ckpt_flusher){.segs = segs, .fd = fd, .flush = flush ? flush : start_writeback};
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    int e = pthread_create(&f->thread, NULL, flusher_main, f);
    if (e) {
        pthread_cond_destroy(&f->cv);
        pthread_mutex_destroy(&f->mu);
        return weft_error(WEFT_EINTERNAL, "checkpoint: cannot start the write-back thread: %s", strerror(e));
    }
    f->running = 1;
    return 0;
}

void weft_ckpt_flusher_publish(weft_ckpt_flusher *f, size_t n)
{
    if (!f->running)
        return;
    pthread_mutex_lock(&f->mu);
    f->published += n;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

int weft_ckpt_flusher_end(weft_ckpt_flusher *f, const char *path)
{
    if (!f->running)
        return 0;
    pthread_mutex_lock(&f->mu);
    f->closed = 1;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    f->running = 0;
    if (f->err)
        return weft_error(WEFT_EIO, "checkpoint: writing %s back to disk failed: %s (%zu bytes at offset %zu)", path,
                          strerror(f->err), f->err_len, f->err_off);
    return 0;
}
