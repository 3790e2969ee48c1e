/*
 * commit.h -- the names and the commit protocol of checkpoint files:
 *
 *   DIR/.step-NNNNNNNN.h5.tmp   written by every rank (never a final name)
 *   fsync it, rename to DIR/step-NNNNNNNN.h5, fsync DIR,
 *   then DIR/latest := "step-NNNNNNNN.h5\n" (itself temp + fsync + rename),
 *   then retention removes old files (never the one latest names).
 * Every fsync and rename here is runtime/durable.h's (weft_durable_publish
 * for the file HDF5 wrote, weft_durable_write_file for latest).
 * A crash at any instant leaves latest naming a complete, durable file (or
 * no latest at all), and every step-NNNNNNNN.h5 complete: loaders follow
 * latest, an explicit path, or (a resume without a usable latest) the newest
 * step file that loads and verifies.
 */
#ifndef WEFT_CHECKPOINT_COMMIT_H
#define WEFT_CHECKPOINT_COMMIT_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint/ckpt.h"
#include "checkpoint/latest.h"

/* Make DIR (and its parent) if missing. */
int weft_ckpt_mkdir(const char *dir);
/* chmod 0640, fsync tmp, rename it to DIR/NAME, fsync DIR, then write
 * DIR/latest the same way (runtime/durable.h, WEFT_DURABLE_SYNC); the
 * checkpoint of `step`: the save_latest fault point sits between the two. */
int weft_ckpt_publish(const char *dir, const char *tmp, const char *name, int64_t step);
/* weft_ckpt_list (committed checkpoints in DIR) is in ckpt.h. */
/* Remove all but the newest keep_last and multiples of keep_every, never
 * the step just committed (current). */
int weft_ckpt_retain(const char *dir, int keep_last, int keep_every, int64_t current);
/* Remove temporary files a killed save left behind. */
void weft_ckpt_remove_stale(const char *dir);

#endif
