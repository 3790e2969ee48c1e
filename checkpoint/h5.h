/*
 * h5.h -- the small set of HDF5 calls checkpoints make, with weft errors.
 *
 * HDF5 (Debian's parallel build) is not thread-safe, so every use holds
 * weft_h5_lock: the writer thread for a whole save, a load or a tool for
 * the whole file. Error messages carry HDF5's own innermost reason (an MPI
 * or system error such as "No space left on device") after weft's.
 *
 * Files are opened with the MPI-IO driver on a communicator (collective
 * parallel I/O) or, with MPI_COMM_NULL, with the serial sec2 driver (tools).
 */
#ifndef WEFT_CHECKPOINT_H5_H
#define WEFT_CHECKPOINT_H5_H

#include <hdf5.h>
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint/region.h"

void weft_h5_lock(void);
void weft_h5_unlock(void);

/* weft_error(rc, ...) with HDF5's innermost error message appended; clears
 * HDF5's error stack. */
int weft_h5_error(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct weft_h5_tuning {
    int collective;       /* collective data transfers */
    int coll_metadata;    /* collective metadata reads and writes */
    size_t alignment;     /* align objects at least WEFT_H5_ALIGN_MIN long to this (0: off) */
    size_t meta_block;    /* HDF5's metadata gathered in blocks this long (0: HDF5's 2 KiB); weft_h5_meta_block */
} weft_h5_tuning;
/* The smallest object aligned: padding is at most 1/16 of what it pads. */
#define WEFT_H5_ALIGN_MIN(a) ((hsize_t)(a) * 16)

/* The metadata block for a file of data_bytes of datasets, nobjects of
 * them, and text_bytes of text attributes: long enough to hold all the
 * file's metadata in one block at its head, so that a cold open reads it
 * in one place instead of one disk read per dataset scattered through the
 * file; at most 1/256 of data_bytes (the unused rest of the block stays in
 * the file), 0 (HDF5's default) when that is under 4 KiB. */
size_t weft_h5_meta_block(size_t data_bytes, size_t nobjects, size_t text_bytes);

/* A file access property list: MPI-IO on comm (or sec2 for MPI_COMM_NULL). */
hid_t weft_h5_fapl(MPI_Comm comm, const weft_h5_tuning *t);

/* A contiguous dataset of type at path (intermediate groups created), space
 * allocated at once and never pre-filled: every element is written. */
hid_t weft_h5_create(hid_t file, const char *path, hid_t type, int ndim, const int64_t shape[2]);

/* The file space of a dataset of shape with the union of rects selected
 * (none when n = 0). One-dimensional datasets use start[0]/count[0]. */
hid_t weft_h5_select(int ndim, const int64_t shape[2], const weft_ckpt_rect *r, int n);
/* A one-dimensional memory space of count elements (none selected if 0). */
hid_t weft_h5_memspace(size_t count);

/* Attributes on an object (a file id means its root group). */
int weft_h5_attr_str(hid_t obj, const char *name, const char *value);
int weft_h5_attr_i64(hid_t obj, const char *name, int64_t value);
int weft_h5_attr_u64(hid_t obj, const char *name, uint64_t value);
int weft_h5_attr_f64(hid_t obj, const char *name, double value);
/* Readers: WEFT_EDATA naming the attribute when missing or of another kind. */
int weft_h5_get_str(hid_t obj, const char *name, char **value); /* malloc'ed */
int weft_h5_get_i64(hid_t obj, const char *name, int64_t *value);
int weft_h5_get_u64(hid_t obj, const char *name, uint64_t *value);
int weft_h5_get_f64(hid_t obj, const char *name, double *value);

/* Shape of an open dataset (ndim 1 or 2; WEFT_EDATA otherwise). */
int weft_h5_shape(hid_t dset, const char *path, int *ndim, int64_t shape[2]);

/* A whole dataset's checksum (sum.h: in blocks of block bytes, 0 for a
 * format 1 file) over its bytes in row-major order, read with independent
 * I/O in pieces through buf (bufsize bytes). */
int weft_h5_checksum(hid_t dset, const char *path, void *buf, size_t bufsize, size_t block, uint64_t *out);

/* XXH3-64 (seed 0) of bytes in memory: the identities' texts (inspect.c).
 * A dataset's checksum is weft_ckpt_sum_of (sum.h). */
uint64_t weft_h5_hash(const void *data, size_t bytes);

#endif
