/*
 * reader.h -- reads single token windows from shards for the loader's I/O
 * threads: each worker has its own aligned bounce buffer, and all share one
 * bounded cache of open shard descriptors (data/shard_cache.h). A window is
 * read with pread (aligned spans under O_DIRECT), converted from
 * little-endian u16/u32 to int32 and checked against the vocab size. No
 * allocation after weft_reader_new.
 */
#ifndef WEFT_DATA_READER_H
#define WEFT_DATA_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "data/manifest.h"

typedef struct weft_reader weft_reader;

typedef struct weft_read_req {
    size_t shard;                   /* dense shard id for the descriptor cache */
    const char *dir;                /* dataset directory */
    const weft_manifest *m;         /* the dataset's manifest (width, vocab) */
    const weft_manifest_shard *ms;  /* the shard's manifest entry */
    uint64_t offset;                /* byte offset of the window's first token */
} weft_read_req;

/* workers: how many threads will call weft_reader_read (ids 0..workers-1).
 * max_tokens: the longest window ever requested. */
int weft_reader_new(int workers, int max_open, size_t n_shards, bool direct, size_t max_tokens,
                    weft_reader **out);
void weft_reader_free(weft_reader *r);

/* Read the window q of len tokens into out, using worker's buffer. Errors
 * name file, offset, expected and found: WEFT_ENOENT (missing shard),
 * WEFT_EDATA (bad header, truncated, token >= vocab), WEFT_EIO. */
int weft_reader_read(weft_reader *r, int worker, const weft_read_req *q, size_t len, int32_t *out);

/* Hint the kernel to start reading n windows now (POSIX_FADV_WILLNEED), so
 * a cold batch has all its reads queued at the device at once. No-op under
 * O_DIRECT. */
void weft_reader_announce(weft_reader *r, const weft_read_req *req, size_t n, size_t len);

/* Whether reads currently bypass the page cache. */
bool weft_reader_direct(const weft_reader *r);

#endif
