/*
 * shard_cache.h -- a bounded, thread-safe cache of open shard descriptors.
 *
 * The loader opens shards lazily, when a sample first needs one, and keeps at
 * most `capacity` open; the least recently used idle one is closed to make
 * room. Each open validates the shard (header, size, agreement with the
 * manifest) via weft_shard_open. Reader threads hold a reference while they
 * read (get ... put), so a descriptor is never closed under a read in
 * progress. Shards are named by a dense integer id chosen by the caller.
 */
#ifndef WEFT_DATA_SHARD_CACHE_H
#define WEFT_DATA_SHARD_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "data/shard.h"

typedef struct weft_shard_cache weft_shard_cache;

/* capacity >= 1 descriptors for shard ids 0..n_ids-1; direct asks for
 * O_DIRECT (dropped, with one warning, where the filesystem refuses it). */
int weft_shard_cache_new(int capacity, size_t n_ids, bool direct, weft_shard_cache **out);
void weft_shard_cache_free(weft_shard_cache *c);

/* A referenced descriptor for shard id, the file name in directory dir,
 * opened and validated against expect if not already open; *direct says
 * whether it was opened O_DIRECT. Waits while every descriptor is in use.
 * Errors are those of weft_shard_open. Each successful get needs one put. */
int weft_shard_cache_get(weft_shard_cache *c, size_t id, const char *dir, const char *name,
                         const weft_shard_header *expect, int *fd, bool *direct);
void weft_shard_cache_put(weft_shard_cache *c, size_t id);

/* Stop using O_DIRECT (a read was refused): descriptors opened with it are
 * reopened buffered once idle. Warns once. */
void weft_shard_cache_drop_direct(weft_shard_cache *c, const char *path);
bool weft_shard_cache_direct(const weft_shard_cache *c);

#endif
