/*
 * loader.h -- the streaming token loader: deterministic, rank-independent
 * batches of token windows, prefetched from shards by a background thread.
 *
 * Vocabulary: T = seq_len, B = global batch (samples per step, all ranks),
 * D = data-parallel size, rows = B / D samples per rank per step. A sample is
 * a window of T+1 tokens (inputs are its first T, targets its last T).
 *
 * The global stream: sample number g (g = step * B + i) comes from the
 * dataset the blend picks at position g, and within that dataset from the
 * c-th draw (c = how many samples that dataset gave before g); draw c is
 * window perm_e(c mod N) of epoch e = c / N, perm_e a keyed permutation of the
 * dataset's N windows (data/shuffle.h). Nothing here depends on D: rank r of D
 * simply keeps rows i in [r*rows, (r+1)*rows) of each global batch, so the
 * concatenation of the ranks' batches is the same for every D.
 *
 * States of a loader:
 *   open (weft_loader_open: manifests read, no shard opened, threads
 *   started) -> streaming (weft_loader_next, any number of times) -> closed
 *   (weft_loader_close). weft_loader_restore and weft_loader_seek stop the
 *   thread, move the position, and restart it (back to streaming). A read
 *   or data error is sticky: every later next() returns it, until a restore.
 *
 * Threads: one planner computes which windows each batch needs, and
 * `io_threads` workers read them, up to `prefetch_depth` batches ahead
 * (details in loader.c).
 *
 * Memory: `prefetch_depth` batch buffers of rows*(T+1) int32 tokens, one
 * bounce buffer per I/O thread and a cache of open shard descriptors
 * (`max_open_shards`, raised to 5 per I/O thread + 2 if smaller) are
 * allocated at open; weft_loader_next allocates nothing.
 */
#ifndef WEFT_DATA_LOADER_H
#define WEFT_DATA_LOADER_H

#include "runtime/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "data/manifest.h"
#include "runtime/config.h"

/* The most datasets one loader blends (data/blend.c works to this bound too). */
#define WEFT_BLEND_MAX 16

typedef struct weft_loader weft_loader;

typedef struct weft_loader_options {
    int n_datasets;                       /* 1..WEFT_BLEND_MAX */
    const char *paths[WEFT_BLEND_MAX];    /* dataset directories */
    double weights[WEFT_BLEND_MAX];       /* blend weights; all 0: equal */
    weft_split split;                     /* which shards to read */
    int64_t seq_len;                      /* T */
    int64_t global_batch;                 /* B, divisible by dp_size */
    int dp_rank, dp_size;                 /* this rank's slice of each batch */
    uint64_t seed;                        /* shuffle seed */
    bool shuffle;                         /* false: windows in file order */
    int prefetch_depth;                   /* batches buffered ahead, >= 1 */
    int io_threads;                       /* threads reading windows, >= 1 */
    bool direct_io;                       /* O_DIRECT reads (falls back with a warning) */
    int max_open_shards;                  /* descriptor cache size, >= 1 */
    char storage[4096];                   /* backing text for paths set from a config */
} weft_loader_options;

/* Defaults: one dataset, train split, shuffle on, depth 4, 4 I/O threads,
 * buffered I/O, 64 open shards, dp 0 of 1. The caller fills paths, seq_len, global_batch. */
WEFT_API void weft_loader_options_default(weft_loader_options *o);

/* Configuration keys of the [data] section (data.path, data.weights,
 * data.split, data.shuffle, data.prefetch_depth, data.io_threads,
 * data.direct_io, data.max_open_shards). */
extern WEFT_API const weft_config_key weft_data_config_keys[];

/* Fill the data-section fields of o from cfg (paths, weights, split, shuffle,
 * prefetch depth, direct I/O, open-shard cap). The trainer sets seq_len,
 * global_batch, dp_rank/dp_size and seed from its own keys. WEFT_ECONFIG on a
 * bad list (empty path, weights not matching paths, a weight <= 0). */
WEFT_API int weft_loader_options_from_config(const weft_config *cfg, weft_loader_options *o);

/* Read the manifests, build the sample index and start prefetching at the
 * start of the stream. Errors: WEFT_ENOENT (missing dataset/manifest),
 * WEFT_EDATA (bad manifest, empty split, seq_len longer than every shard),
 * WEFT_ECONFIG (B not divisible by D, bad T, depth, rank). */
WEFT_API int weft_loader_open(const weft_loader_options *o, weft_loader **out);

/* The next batch of this rank: *tokens points at rows * (T+1) tokens, row-
 * major, valid until the following next/restore/seek/close. The time spent
 * waiting for the loader's threads is added to weft_loader_wait_ns. Errors
 * from the shards (WEFT_ENOENT missing shard, WEFT_EDATA corrupt shard or
 * token >= vocab, WEFT_EIO) name the file and offset. */
WEFT_API int weft_loader_next(weft_loader *L, const int32_t **tokens);

WEFT_API int64_t weft_loader_rows(const weft_loader *L);     /* B / D */
WEFT_API int64_t weft_loader_row_len(const weft_loader *L);  /* T + 1 */

/* Total and last nanoseconds next() waited for data. */
WEFT_API int64_t weft_loader_wait_ns(const weft_loader *L);
WEFT_API int64_t weft_loader_last_wait_ns(const weft_loader *L);

/* Global samples consumed so far (all ranks), and the epoch of dataset d
 * (how many full passes over its windows the consumed stream has made). */
WEFT_API uint64_t weft_loader_position(const weft_loader *L);
WEFT_API uint64_t weft_loader_epoch(const weft_loader *L, int d);
/* Windows per epoch of dataset d. */
WEFT_API uint64_t weft_loader_samples(const weft_loader *L, int d);

/* Identifies the data: the dataset hash for one dataset, a hash of the
 * datasets' hashes for a blend. */
WEFT_API uint64_t weft_loader_dataset_hash(const weft_loader *L);

/* Serialised position (versioned, little-endian; layout in
 * docs/data-format.md): weft_loader_state_size bytes. save writes the state
 * after the last batch returned by next, so restoring it resumes with the
 * following batch. restore accepts a state saved by a loader with the same
 * datasets, weights, split, seq_len, seed and shuffle, any D and any rank
 * (WEFT_EDATA otherwise, naming what differs). */
WEFT_API size_t weft_loader_state_size(const weft_loader *L);
WEFT_API int weft_loader_save(const weft_loader *L, uint8_t *buf, size_t len);
WEFT_API int weft_loader_restore(weft_loader *L, const uint8_t *buf, size_t len);

/* Move to global sample position g (replays the blend from 0: O(g) for
 * blends, O(1) for one dataset). */
WEFT_API int weft_loader_seek(weft_loader *L, uint64_t g);

/* Whether O_DIRECT is in use (false after a fallback). */
WEFT_API bool weft_loader_direct(const weft_loader *L);

WEFT_API void weft_loader_close(weft_loader *L);

#endif
