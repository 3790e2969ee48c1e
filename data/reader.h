/*
 * reader.h -- reads a batch of token windows from shards with a small pool
 * of I/O threads, so that many reads are in flight at once (a cold page
 * cache or O_DIRECT is bound by the device's queue depth, a warm one by
 * memory copies that parallelise).
 *
 * The calling thread takes part in each batch; the helpers pick rows off a
 * shared counter. Each window is read with pread into the thread's aligned
 * bounce buffer (aligned spans under O_DIRECT), converted from little-endian
 * u16/u32 to int32 and checked against the vocab size. Descriptors come from
 * a shared weft_shard_cache. No allocation after weft_reader_new.
 */
#ifndef WEFT_DATA_READER_H
#define WEFT_DATA_READER_H

#include <stdatomic.h>
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

/* threads: helper threads (0: the caller reads alone). max_tokens: the
 * longest window ever requested. */
int weft_reader_new(int threads, int max_open, size_t n_shards, bool direct, size_t max_tokens,
                    weft_reader **out);
void weft_reader_free(weft_reader *r);

/* Read n windows of len tokens: window i into out + i*len. Returns 0, or the
 * first error (file, offset, expected, found in its message). Stops early
 * when *stop becomes true. */
int weft_reader_run(weft_reader *r, const weft_read_req *req, size_t n, size_t len, int32_t *out,
                    const atomic_bool *stop);

/* Whether reads currently bypass the page cache. */
bool weft_reader_direct(const weft_reader *r);

#endif
