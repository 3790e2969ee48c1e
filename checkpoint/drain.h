/*
 * drain.h -- the second checkpoint tier: a background thread on the rank
 * that commits, copying each checkpoint committed in the local tier
 * (checkpoint.local_dir) to the shared one (checkpoint.dir) and committing
 * it there with the first tier's protocol (commit.h), each tier with its
 * own latest and retention. States and retries: drain.c. For a local_dir
 * that every rank sees; with a disk per node the writer assembles the
 * shared file instead (nodefile.c).
 */
#ifndef WEFT_CHECKPOINT_DRAIN_H
#define WEFT_CHECKPOINT_DRAIN_H

#include <stddef.h>
#include <stdint.h>

typedef struct weft_ckpt_drain weft_ckpt_drain;

typedef struct weft_ckpt_drain_opts {
    const char *from, *to;       /* the local tier, the shared tier */
    int keep_last, keep_every;   /* retention in `to` */
    int retries;                 /* attempts after the first, 0.5 s, 1 s, 2 s ... apart */
    int preflight;               /* check `to`'s free space before copying */
} weft_ckpt_drain_opts;

typedef struct weft_ckpt_drain_stats {
    int64_t drained_step;        /* newest step committed in the shared tier by this job (-1: none) */
    int64_t failed_step;         /* newest step given up on (-1: none) */
    int drained, retried, failed;
    size_t last_bytes;           /* the last drained file's size */
    double last_s;               /* and the seconds its copy + commit took */
    char error[1024];            /* the last failure ("" after a success) */
} weft_ckpt_drain_stats;

/* Start the thread (to made if missing, its left-over temporary files
 * removed; the same directory as from is WEFT_ECONFIG). A local
 * checkpoint newer than the shared tier's latest -- a job killed before
 * its drain finished -- is posted at once. */
int weft_ckpt_drain_new(const weft_ckpt_drain_opts *o, weft_ckpt_drain **out);
/* Step was committed in the local tier: drain it (superseding any older
 * one not yet started or being retried). */
void weft_ckpt_drain_post(weft_ckpt_drain *d, int64_t step);
/* Wait until step (or a newer one) is drained: 0; WEFT_EIO when it failed
 * or timeout_s passed first (the message says which). */
int weft_ckpt_drain_wait(weft_ckpt_drain *d, int64_t step, double timeout_s);
void weft_ckpt_drain_get(weft_ckpt_drain *d, weft_ckpt_drain_stats *out);
/* Stop the thread (a copy in progress finishes first; a held one, see
 * drain.c's fault points, is abandoned) and free. NULL is a no-op. */
void weft_ckpt_drain_close(weft_ckpt_drain *d);

#endif
