/*
 * sum.h -- a dataset's checksum, the attribute xxh3_64 of every dataset of
 * a checkpoint (docs/checkpoint-format.md): XXH3-64 (seed 0) of each block
 * of the file's checksum_block bytes (the last one shorter), then -- when
 * there are two blocks or more -- XXH3-64 of those block hashes, each as
 * eight little-endian bytes, in order. A dataset of one block (or none)
 * has the XXH3-64 of its bytes, as in format 1, whose files hash every
 * dataset whole (no checksum_block attribute: block 0 here).
 *
 * Why blocks: a dataset split between ranks -- ZeRO's moments cut
 * mid-tensor, a TP shard -- had its checksum computed by one rank reading
 * all of it again after the others wrote (or read) their parts: 365 MB of
 * the 1.5 GB file of a 124 M model, on every save and every load. With
 * blocks, each rank hashes the blocks inside its own part while the bytes
 * are in cache, the ranks exchange the block hashes, and only the blocks
 * across a cut (at most one per cut) are read again. XXH3 itself cannot be
 * continued from another rank's partial state without a serial chain
 * (bench/README.md, bench_ckpt: tried, slower).
 */
#ifndef WEFT_CHECKPOINT_SUM_H
#define WEFT_CHECKPOINT_SUM_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>
#ifndef XXH_STATIC_LINKING_ONLY
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t inside weft_ckpt_sum */
#endif
#include <xxhash.h>

/* The block every file weft writes uses (format 2). */
#define WEFT_CKPT_SUM_BLOCK ((size_t)1 << 20)

/* A checksum computed from bytes fed in order, in pieces of any size. */
typedef struct weft_ckpt_sum {
    XXH3_state_t cur;  /* the block being fed (block 0: all the bytes) */
    XXH3_state_t top;  /* the hashes of the finished blocks */
    size_t block;      /* bytes per block; 0: one XXH3 over everything (format 1) */
    size_t fill;       /* bytes of the current block fed so far */
    uint64_t nblocks;  /* finished blocks */
    uint64_t first;    /* the first block's hash */
} weft_ckpt_sum;

void weft_ckpt_sum_begin(weft_ckpt_sum *s, size_t block);
void weft_ckpt_sum_update(weft_ckpt_sum *s, const void *p, size_t n);
uint64_t weft_ckpt_sum_end(weft_ckpt_sum *s);

/* The checksum of n bytes at p in one call. */
uint64_t weft_ckpt_sum_of(const void *p, size_t n, size_t block);

/* Blocks of a dataset of bytes bytes (1 for block 0 or no bytes). */
size_t weft_ckpt_sum_nblocks(size_t bytes, size_t block);

/* The checksum from the hashes of all n blocks of a dataset, in order
 * (each block's XXH3-64): what weft_ckpt_sum gives for its bytes. */
uint64_t weft_ckpt_sum_root(const uint64_t *hashes, size_t n);

/* The hashes of a dataset's blocks that lie wholly inside the bytes a rank
 * feeds, at their positions in the dataset, in increasing order, in pieces
 * of any size, with gaps (other ranks' parts): each block all of whose
 * bytes were fed in one stretch, its hash into hash[k] and in[k] = 1; the
 * others are left as they are. */
typedef struct weft_ckpt_blocks {
    XXH3_state_t cur;  /* the block being fed */
    size_t block, bytes; /* bytes per block; the dataset's bytes */
    size_t next;       /* the position the block being fed expects next (SIZE_MAX: none) */
    uint64_t *hash, *in;
} weft_ckpt_blocks;

void weft_ckpt_blocks_begin(weft_ckpt_blocks *b, size_t block, size_t bytes, uint64_t *hash, uint64_t *in);
void weft_ckpt_blocks_update(weft_ckpt_blocks *b, size_t pos, const void *p, size_t n);

/* The block of file f: its root attribute checksum_block, 0 for a format 1
 * file (every dataset hashed whole). WEFT_EDATA for a block that is not a
 * positive multiple of 4 KiB. */
int weft_ckpt_sum_block_of(hid_t f, const char *path, size_t *block);

#endif
