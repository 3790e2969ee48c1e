/*
 * shard.h -- a tensor's shard spec: how the piece a rank holds relates to the
 * tensor at its global shape. The checkpoint stores every tensor at its
 * global shape and uses the spec to write (and, on another layout, read back)
 * the slab each rank holds.
 *
 * A tensor of at most 2 dimensions is either whole on this rank (split_dim
 * -1) or split along split_dim over a group of nparts ranks (the tensor-
 * parallel group), this rank holding part `part`. The split dimension may be
 * made of nblocks equal blocks that are each split separately: attention's
 * fused qkv weight (3C, C) is three (C, C) blocks, and a tensor-parallel rank
 * holds its heads' rows of q, of k and of v. Locally the rank's pieces of the
 * blocks are stored one after another along split_dim.
 *
 *   global extent G of split_dim = nblocks * nparts * s, local extent nblocks * s;
 *   local index b*s + i  <->  global index b*(G/nblocks) + part*s + i.
 */
#ifndef WEFT_RUNTIME_SHARD_H
#define WEFT_RUNTIME_SHARD_H

#include "runtime/api.h"

#include <stddef.h>
#include <stdint.h>

typedef struct weft_shard_spec {
    int ndim;                /* 1 or 2 */
    int64_t global_shape[2]; /* as stored in a checkpoint; [1] = 0 when ndim = 1 */
    int split_dim;           /* -1: whole on this rank; else 0 or 1 */
    int nblocks;             /* >= 1: independently split blocks along split_dim */
    int part, nparts;        /* this rank holds part `part` of nparts (1 when whole) */
} weft_shard_spec;

/* A whole (unsplit) tensor of the given shape (d1 = 0 for one dimension). */
WEFT_API weft_shard_spec weft_shard_whole(int64_t d0, int64_t d1);

/* The same tensor split along dim over nparts, this rank holding part; the
 * spec's extent along dim must be divisible by nblocks * nparts. */
WEFT_API weft_shard_spec weft_shard_split(int64_t d0, int64_t d1, int dim, int nblocks, int part, int nparts);

/* The local shape this rank holds. */
WEFT_API void weft_shard_local_shape(const weft_shard_spec *s, int64_t local[2]);
WEFT_API size_t weft_shard_local_numel(const weft_shard_spec *s);

/* The rank's piece is nblocks rectangular slabs of the global tensor (one
 * when whole or unblocked). Slab i: global start and extent per dimension,
 * and where it starts along split_dim in the local tensor. */
WEFT_API int weft_shard_nslabs(const weft_shard_spec *s);
WEFT_API void weft_shard_slab(const weft_shard_spec *s, int i, int64_t start[2], int64_t count[2],
                              int64_t *local_start);

#endif
