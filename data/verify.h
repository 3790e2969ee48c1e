/*
 * verify.h -- full check of a dataset directory: every shard listed in the
 * manifest is opened, its header and size checked against the manifest, and
 * its payload read sequentially in large blocks to check the checksum and
 * that every token is below the vocab size. Every bad shard is reported (the
 * check goes on after the first), each message naming file, offset, expected
 * and found.
 */
#ifndef WEFT_DATA_VERIFY_H
#define WEFT_DATA_VERIFY_H

#include <stdint.h>
#include <stddef.h>

/* Called with bytes done and total; for progress displays. */
typedef void (*weft_progress_fn)(void *arg, uint64_t done, uint64_t total);
/* Called once per bad shard with its error code and message. */
typedef void (*weft_verify_bad_fn)(void *arg, int rc, const char *msg);

typedef struct weft_verify_report {
    size_t shards;    /* listed in the manifest */
    size_t bad;       /* failed a check */
    uint64_t tokens;  /* in the good shards */
    uint64_t bytes;   /* read */
    double seconds;
} weft_verify_report;

/* 0 when every shard is good; else the code of the first bad shard
 * (WEFT_EDATA, WEFT_ENOENT or WEFT_EIO), after reporting all of them to bad().
 * A bad or missing manifest is returned at once. */
int weft_dataset_verify(const char *dir, weft_verify_bad_fn bad, weft_progress_fn progress,
                        void *arg, weft_verify_report *rep);

#endif
