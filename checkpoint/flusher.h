/*
 * flusher.h -- a save's write-back to disk and its read-back check, walked
 * behind the writer's pwrites by a thread of its own.
 *
 * Why a thread: sync_file_range(SYNC_FILE_RANGE_WRITE) is "start the
 * write-back", but the call blocks once the disk's queue is full, so a
 * writer that starts it itself either waits on the disk between its own
 * pwrites or starts it late, and then the commit's fsync waits for the
 * rest. In a thread of its own the disk writes from the first published
 * piece to the last while the writer thread goes on copying into the page
 * cache: the save takes about as long as the disk needs, not the sum of
 * the phases (bench/README.md, bench_ckpt).
 *
 * Why the check trails the write-back in the same walk: a save that wrote
 * all of its bytes, then read them all back, then waited for the disk held
 * the whole checkpoint in the page cache at once, and on a machine whose
 * free pages cost something to take back (a VM that reports them to its
 * host) a 1.5 GB save took 1.3 to 4 s for the same bytes. Checked a few
 * pieces behind the write-back -- each piece waited for on disk, read back,
 * compared and hashed, then dropped from the page cache -- the save holds
 * about LIMIT bytes of page cache (and the checksum blocks a rank writes
 * part of, until hashed: save_data.c), reuses pages freed milliseconds before,
 * and took 0.9 to 1.2 s, steady (bench/README.md, "a bounded page-cache
 * footprint"); it also stops a checkpoint evicting what a data loader
 * reads.
 *
 * The writer publishes how many of its bytes, in the order of its runs of
 * segments ("positions"), are in the page cache; the flusher starts the
 * write-back of each run up to that point, and once TRAIL bytes beyond a
 * piece have been started (or the writer is done), hands the piece to the
 * check. The writer waits in publish while it is LIMIT bytes ahead of the
 * check. One flusher per save, started by weft_ckpt_flusher_start and
 * ended by weft_ckpt_flusher_end, both on the writer thread; publish is the
 * only call between them.
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

/* What checks positions [pos, pos + n) (bytes in run order) once their
 * write-back has been started: called in order, each position once.
 * 0, or a weft error code with its message recorded on the calling thread
 * (weft_error); the flusher then stops and weft_ckpt_flusher_end reports it. */
typedef int (*weft_ckpt_check_fn)(void *ctx, size_t pos, size_t n);

enum {
    WEFT_FLUSH_CHECK_PIECE = 16u << 20, /* checked at a time */
    WEFT_FLUSH_TRAIL = 64u << 20,       /* started beyond a piece before it is checked: the disk's queue */
    WEFT_FLUSH_LIMIT = 128u << 20       /* the writer's lead over the check: the save's page cache */
};

typedef struct weft_ckpt_flusher {
    const weft_ckpt_segs *segs; /* the save's segments, sorted (not owned); NULL: never started */
    int fd;
    weft_ckpt_flush_fn flush;
    weft_ckpt_check_fn check;   /* NULL: write-back only */
    void *ctx;
    size_t piece, trail, limit; /* WEFT_FLUSH_CHECK_PIECE, _TRAIL, _LIMIT (a test sets its own under mu) */
    pthread_t thread;
    int running;                /* a thread started and not yet joined */
    pthread_mutex_t mu;
    pthread_cond_t more;        /* to the flusher: published, or closed */
    pthread_cond_t room;        /* to the writer: checked, or stopped */
    size_t published;           /* positions the writer has written (under mu) */
    size_t started;             /* whose write-back was started (under mu) */
    size_t checked;             /* checked (under mu) */
    int closed;                 /* the writer publishes no more (under mu) */
    int stopped;                /* the walk is over (under mu) */
    int err;                    /* the first failed sync_file_range's errno */
    size_t err_off, err_len;    /* and its range */
    int check_rc;               /* the check's failure, and its message */
    char check_msg[1024];
} weft_ckpt_flusher;

/* Start the thread for the runs of segs on fd (flush NULL: the real
 * write-back; check NULL: none): 0, or WEFT_EINTERNAL when no thread can
 * be made (the save then goes on without one: weft_ckpt_flusher_end walks
 * everything on the writer's thread). */
int weft_ckpt_flusher_start(weft_ckpt_flusher *f, const weft_ckpt_segs *segs, int fd, weft_ckpt_flush_fn flush,
                            weft_ckpt_check_fn check, void *ctx);
/* n more positions are in the page cache; waits while the writer is more
 * than LIMIT ahead of the check. 0, or -1 once the walk has stopped on a
 * failure (the writer need write no more: end reports it). */
int weft_ckpt_flusher_publish(weft_ckpt_flusher *f, size_t n);
/* No more bytes come; wait until every published byte's write-back has
 * been started and checked. 0, the check's error, or WEFT_EIO naming path
 * and the range whose write-back failed. Never started: 0 at once. */
int weft_ckpt_flusher_end(weft_ckpt_flusher *f, const char *path);

#endif
