/*
 * single.h -- a checkpoint file written by one process with no job (no MPI,
 * no communicator, no writer thread): weft-ckpt import. The file is the
 * format a training job writes (docs/checkpoint-format.md) with the same
 * root attributes (save.c's weft_ckpt_root_attrs), an xxh3_64 on every
 * dataset, and rng/state for a world of one; without optimizer state or
 * loader position, so it serves --init-from and not --resume. Written to a
 * temporary name beside path, fsync'd, renamed, the directory fsync'd:
 * nothing is left under path on an error.
 *
 * Callers hold weft_h5_lock (checkpoint/h5.h).
 */
#ifndef WEFT_CHECKPOINT_SINGLE_H
#define WEFT_CHECKPOINT_SINGLE_H

#include "checkpoint/ckpt.h"

/* The state's tensors must be whole (one rank's whole model); tied copies
 * are skipped; s->m must be NULL. source, when not NULL, is stored as the
 * root attribute "source" (where the weights came from); prov (NULL: none)
 * as the provenance, with the time added (checkpoint/seal.h). */
int weft_ckpt_write_single(const char *path, const weft_ckpt_state *s, const weft_ckpt_meta *m,
                           const char *config_ini, const char *source, const char *prov);

#endif
