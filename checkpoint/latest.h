/*
 * latest.h -- the checkpoint file names and the contents of `latest`, parsed
 * strictly: `latest` is input that a crash, a person or another tool may
 * have left, and it decides which file a job resumes from. No MPI, no HDF5
 * (tests/fuzz/fuzz_latest.c runs it alone).
 */
#ifndef WEFT_CHECKPOINT_LATEST_H
#define WEFT_CHECKPOINT_LATEST_H

#include <stddef.h>
#include <stdint.h>

/* "step-00000100.h5" */
void weft_ckpt_file_name(int64_t step, char *buf, size_t len);
/* 1 and *step when name is exactly a checkpoint file name ("step-", 8 to 15
 * digits, ".h5"), else 0. */
int weft_ckpt_parse_name(const char *name, int64_t *step);

/* The step DIR/latest names, or -1 (none, or unreadable); in the library
 * with weft_ckpt_find_latest, not in latest.c (which the fuzzer builds alone). */
int64_t weft_ckpt_latest_step(const char *dir);

/* The n bytes of a `latest` file (origin names it in errors): one file
 * name, optionally followed by one newline. On success name (len >= 32)
 * holds it and *step its step; WEFT_EDATA naming origin otherwise. */
int weft_ckpt_parse_latest(const char *buf, size_t n, const char *origin, char *name, size_t len, int64_t *step);

/* The n bytes of a local tier's owner mark (WEFT_CKPT_OWNER_MARK, owner.h):
 * exactly "owner " and 16 lowercase hex digits, optionally followed by one
 * newline. On success *owner holds the run identity it names (never 0);
 * WEFT_EDATA naming origin otherwise. */
int weft_ckpt_parse_owner(const char *buf, size_t n, const char *origin, uint64_t *owner);

#endif
