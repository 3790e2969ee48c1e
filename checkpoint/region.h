/*
 * region.h -- which rectangles of a global tensor a run of a rank's local
 * piece is. A checkpoint writes (and reads back) a rank's elements as one
 * union of hyperslabs per dataset; this file computes that union.
 *
 * The local piece is stored row-major at its local shape (runtime/shard.h);
 * a flat range [a, b) of it (a ZeRO-1 range can start and end mid-row) maps
 * to at most a few rectangles per block of the split dimension. The map from
 * local to global row-major order is monotonic for every shard spec, so the
 * union's row-major order (the order HDF5 transfers a hyperslab union in) is
 * the local order: a contiguous memory buffer of b - a elements matches it.
 * One-dimensional tensors are treated as (n, 1).
 */
#ifndef WEFT_CHECKPOINT_REGION_H
#define WEFT_CHECKPOINT_REGION_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/shard.h"

typedef struct weft_ckpt_rect {
    int64_t start[2], count[2]; /* global coordinates; dimension 1 is 1 wide for 1-D */
} weft_ckpt_rect;

/* Enough rectangles for any range of a spec with nblocks blocks. */
static inline int weft_ckpt_region_cap(const weft_shard_spec *s) { return 4 * s->nblocks + 8; }

/* The rectangles of local elements [a, b) (a < b <= local numel), in local
 * order. out has room for weft_ckpt_region_cap(s). Returns their number. */
int weft_ckpt_region(const weft_shard_spec *s, size_t a, size_t b, weft_ckpt_rect *out);

#endif
