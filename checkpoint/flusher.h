/*
 * flusher.h -- a save's write-back to disk, started behind its pwrites by
 * a thread of its own.
 *
 * Why a thread: sync_file_range(SYNC_FILE_RANGE_WRITE) is "start the
 * write-back", but the call blocks once the disk's queue is full, so a
 * writer that starts it itself either waits on the disk between its own
 * pwrites (and its read-back) or starts it late, and then the commit's
 * fsync waits for the rest. In a thread of its own the disk writes from the
 * first published piece to the last while the writer thread goes on
 * copying into the page cache and reading back: the save takes about as
 * long as the disk needs, not the sum of the phases (bench/README.md,
 * bench_ckpt).
 *
 * The writer publishes how many of its bytes, in the order of its runs of
 * segments, are in the page cache; the flusher starts the write-back of
 * each run up to that point. One flusher per save, started by
 * weft_ckpt_flusher_start and joined by weft_ckpt_flusher_end, both on the
 * writer thread; publish is the only call between them.
 */
#ifndef WEFT_CHECKPOINT_FLUSHER_H
#define WEFT_CHECKPOINT_FLUSHER_H

#include <pthread.h>
#include <stddef.h>

#include "checkpoint/rawdata.h"

/* What starts the write-back of bytes [off, off + len) of fd: 0 or an
 * errno. sync_file_range(SYNC_FILE_RANGE_WRITE) unless a test gives its
 * own recorder. */
typedef int (*weft_ckpt_flush_fn)(int fd, size_t off, size_t len);

typedef struct weft_ckpt_flusher {
    const weft_ckpt_segs *segs; /* the save's segments, sorted (not owned) */
    int fd;
    weft_ckpt_flush_fn flush;
    pthread_t thread;
    int running;                /* started and not yet joined */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t published;           /* bytes written, in run order (under mu) */
    int closed;                 /* the writer publishes no more (under mu) */
    int err;                    /* the first failed sync_file_range's errno */
    size_t err_off, err_len;    /* and its range */
} weft_ckpt_flusher;

/* Start the thread for the runs of segs on fd (flush NULL: the real
 * write-back): 0, or WEFT_EINTERNAL when no thread can be made (the save
 * then goes on without one: the commit's write-back writes everything). */
int weft_ckpt_flusher_start(weft_ckpt_flusher *f, const weft_ckpt_segs *segs, int fd, weft_ckpt_flush_fn flush);
/* n more bytes, in run order, are in the page cache. */
void weft_ckpt_flusher_publish(weft_ckpt_flusher *f, size_t n);
/* No more bytes come; wait until the write-back of every published byte
 * has been started. 0, or WEFT_EIO naming path and the range that failed.
 * Without a running thread: 0 at once. */
int weft_ckpt_flusher_end(weft_ckpt_flusher *f, const char *path);

#endif
