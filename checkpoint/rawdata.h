/*
 * rawdata.h -- a checkpoint's tensor bytes moved with POSIX pwrite/pread at
 * the file offsets of its contiguous HDF5 datasets, not through HDF5.
 *
 * Why: a save used to be ~170 H5Dcreate + H5Dwrite pairs, each a collective
 * MPI-IO / metadata synchronisation between the ranks; on a loaded node
 * every one waits for a time slice, and the data phase of the same 288 MB
 * per rank took 0.1 s to 4.6 s (bench/README.md, bench_ckpt). Now HDF5
 * creates every dataset (metadata only) and each rank writes its bytes with
 * a few large pwrites on its own descriptor: no synchronisation per dataset.
 *
 * Why the file is still a standard HDF5 file: the datasets are contiguous,
 * their space is allocated at creation and never filled (h5.c), so HDF5
 * holds only their address and never reads or writes their raw bytes after
 * creating them. pwrite at address + row-major byte offset is what HDF5's
 * own contiguous H5Dwrite does (sec2 and MPI-IO drivers alike).
 *
 * A rank's part of a dataset is a union of rectangles (region.h), stored in
 * staging in global row-major order; here it becomes segments, one per
 * contiguous file run, sorted by file offset. Consecutive segments adjacent
 * both in the file and in staging go in one system call.
 */
#ifndef WEFT_CHECKPOINT_RAWDATA_H
#define WEFT_CHECKPOINT_RAWDATA_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint/region.h"

typedef struct weft_ckpt_seg {
    size_t off;   /* bytes into the file */
    size_t mem;   /* bytes into the memory buffer (staging, or a load's destination) */
    size_t len;   /* bytes */
    int dset;     /* the dataset it belongs to (the caller's index) */
} weft_ckpt_seg;

typedef struct weft_ckpt_segs {
    weft_ckpt_seg *s;
    int n, cap;
} weft_ckpt_segs;

/* Append the segments of rects r[0..n) of a dataset of shape (ndim 1 or 2;
 * 1-D: shape[1] unused, rects 1 wide) whose bytes start at file offset
 * base, esize bytes per element; their bytes lie in memory from mem on, in
 * row-major order. The new segments are sorted by file offset, with their
 * memory offsets assigned in that order. WEFT_ENOMEM on failure. */
int weft_ckpt_segs_add(weft_ckpt_segs *v, int ndim, const int64_t shape[2], size_t esize,
                       const weft_ckpt_rect *r, int n, size_t base, size_t mem, int dset);
/* Sort every segment by file offset (after adding several datasets). */
void weft_ckpt_segs_sort(weft_ckpt_segs *v);
void weft_ckpt_segs_free(weft_ckpt_segs *v);

/* The end j of the run of segments [i, j) that follow each other both in
 * the file and in memory (one system call moves them); *bytes: its length. */
int weft_ckpt_segs_run(const weft_ckpt_segs *v, int i, size_t *bytes);

/* pwrite/pread all of len bytes at off, retrying on EINTR and partial
 * transfers: 0, or the errno (EIO for a transfer that returns 0 bytes
 * early); *done: the bytes moved. */
int weft_ckpt_pwrite_all(int fd, const void *buf, size_t len, size_t off, size_t *done);
int weft_ckpt_pread_all(int fd, void *buf, size_t len, size_t off, size_t *done);

/* The checksum (sum.h, in blocks of block bytes; 0: whole) of bytes
 * [off, off + len) of fd, read in pieces through buf (bufsize bytes): 0, or
 * the errno of the failed read. */
int weft_ckpt_pread_hash(int fd, size_t off, size_t len, void *buf, size_t bufsize, size_t block, uint64_t *out);

#endif
