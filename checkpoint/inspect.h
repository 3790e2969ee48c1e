/*
 * inspect.h -- reading a checkpoint file on one process, without a job:
 * for weft-ckpt (ls, info, verify, diff, export) and for the checks a load
 * shares with it (the dataset list, checksum verification).
 *
 * Callers hold weft_h5_lock (checkpoint/h5.h) around these.
 */
#ifndef WEFT_CHECKPOINT_INSPECT_H
#define WEFT_CHECKPOINT_INSPECT_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* Open path read-only with the serial driver and check it is a weft
 * checkpoint: WEFT_ENOENT missing, WEFT_EDATA not HDF5 / truncated / not
 * weft's / another format version. */
int weft_ckpt_open_file(const char *path, hid_t *f);

/* Every dataset's path ("params/wte", ...), sorted; a NULL-terminated
 * malloc'ed list (free with weft_ckpt_free_list). */
int weft_ckpt_list_datasets(hid_t f, const char *path, char ***list);
void weft_ckpt_free_list(char **list);

/* Compare dataset dpath's data with its stored xxh3_64 checksum:
 * WEFT_EDATA naming the tensor on a mismatch. scratch: 4 MiB. */
#define WEFT_CKPT_SCRATCH (4u << 20)
int weft_ckpt_verify_dataset(hid_t f, const char *path, const char *dpath, void *scratch);

/* A whole f32 dataset, malloc'ed. */
int weft_ckpt_read_f32(hid_t f, const char *dpath, float **data, int *ndim, int64_t shape[2]);

#endif
