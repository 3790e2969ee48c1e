/*
 * shard.c -- arithmetic of shard specs (see shard.h): local shapes and the
 * global slabs a rank's piece of a tensor maps to.
 */
#include "runtime/shard.h"

#include <assert.h>

weft_shard_spec weft_shard_whole(int64_t d0, int64_t d1)
{
    weft_shard_spec s = {.ndim = d1 ? 2 : 1, .global_shape = {d0, d1}, .split_dim = -1,
                         .nblocks = 1, .part = 0, .nparts = 1};
    return s;
}

weft_shard_spec weft_shard_split(int64_t d0, int64_t d1, int dim, int nblocks, int part, int nparts)
{
    weft_shard_spec s = weft_shard_whole(d0, d1);
    assert(dim >= 0 && dim < s.ndim && nblocks >= 1 && nparts >= 1 && part >= 0 && part < nparts);
    assert(s.global_shape[dim] % ((int64_t)nblocks * nparts) == 0);
    s.split_dim = dim;
    s.nblocks = nblocks;
    s.part = part;
    s.nparts = nparts;
    return s;
}

void weft_shard_local_shape(const weft_shard_spec *s, int64_t local[2])
{
    local[0] = s->global_shape[0];
    local[1] = s->global_shape[1];
    if (s->split_dim >= 0)
        local[s->split_dim] /= s->nparts;
}

size_t weft_shard_local_numel(const weft_shard_spec *s)
{
    int64_t l[2];
    weft_shard_local_shape(s, l);
    return (size_t)l[0] * (size_t)(s->ndim == 2 ? l[1] : 1);
}

int weft_shard_nslabs(const weft_shard_spec *s)
{
    return s->split_dim < 0 ? 1 : s->nblocks;
}

void weft_shard_slab(const weft_shard_spec *s, int i, int64_t start[2], int64_t count[2], int64_t *local_start)
{
    start[0] = start[1] = 0;
    count[0] = s->global_shape[0];
    count[1] = s->ndim == 2 ? s->global_shape[1] : 1;
    *local_start = 0;
    if (s->split_dim < 0)
        return;
    int d = s->split_dim;
    int64_t block = s->global_shape[d] / s->nblocks; /* global extent of one block */
    int64_t piece = block / s->nparts;              /* this rank's share of it */
    start[d] = i * block + s->part * piece;
    count[d] = piece;
    *local_start = i * piece;
}
