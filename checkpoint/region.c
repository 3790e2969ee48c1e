/*
 * region.c -- a run of a rank's local piece as rectangles of the global
 * tensor (see region.h).
 */
#include "checkpoint/region.h"

/* Global index of local index i along the split dimension of extent
 * `local` (nblocks blocks of local/nblocks each). */
static int64_t to_global(const weft_shard_spec *s, int64_t i, int64_t local)
{
    if (s->split_dim < 0)
        return i;
    int64_t piece = local / s->nblocks, block = piece * s->nparts;
    return (i / piece) * block + s->part * piece + i % piece;
}

/* Rows [r0, r1) x local columns [c0, c1): cut where the split dimension
 * crosses a block boundary, each piece one global rectangle. */
static int add_rect(const weft_shard_spec *s, const int64_t lshape[2], int64_t r0, int64_t r1, int64_t c0,
                    int64_t c1, weft_ckpt_rect *out, int n)
{
    int d = s->split_dim;
    int64_t lo[2] = {r0, c0}, hi[2] = {r1, c1};
    if (d < 0) {
        out[n++] = (weft_ckpt_rect){{r0, c0}, {r1 - r0, c1 - c0}};
        return n;
    }
    int64_t piece = lshape[d] / s->nblocks;
    for (int64_t x = lo[d]; x < hi[d];) {
        int64_t end = (x / piece + 1) * piece;
        if (end > hi[d])
            end = hi[d];
        weft_ckpt_rect r = {{r0, c0}, {r1 - r0, c1 - c0}};
        r.start[d] = to_global(s, x, lshape[d]);
        r.count[d] = end - x;
        out[n++] = r;
        x = end;
    }
    return n;
}

int weft_ckpt_region(const weft_shard_spec *s, size_t a, size_t b, weft_ckpt_rect *out)
{
    int64_t l[2];
    weft_shard_local_shape(s, l);
    if (s->ndim == 1)
        l[1] = 1;
    int64_t cols = l[1], r = (int64_t)a / cols, c = (int64_t)a % cols, end = (int64_t)b;
    int n = 0;
    if (c != 0) { /* the partial first row */
        int64_t stop = (int64_t)b - r * cols < cols ? (int64_t)b - r * cols : cols;
        n = add_rect(s, l, r, r + 1, c, stop, out, n);
        r++;
    }
    int64_t full = (end - r * cols) / cols; /* whole rows next */
    if (r * cols < end && full > 0) {
        n = add_rect(s, l, r, r + full, 0, cols, out, n);
        r += full;
    }
    if (r * cols < end) /* the partial last row */
        n = add_rect(s, l, r, r + 1, 0, end - r * cols, out, n);
    return n;
}
