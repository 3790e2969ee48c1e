/*
 * agree.h -- ranks agreeing on the outcome of a collective step of a save or
 * a load, so that all of them go on together or fail together, and all of
 * them report the same reason: the failing rank with the lowest number
 * broadcasts its code and message.
 */
#ifndef WEFT_CHECKPOINT_AGREE_H
#define WEFT_CHECKPOINT_AGREE_H

#include "collectives/comm.h"

/* Collective over c. rc: this rank's result (0 or WEFT_E*, with
 * weft_last_error() set). Returns 0 when every rank succeeded, else the
 * first failing rank's code, its message now this rank's last error. */
int weft_ckpt_agree(weft_comm *c, int rc);

/* Put "PREFIX: " before the calling thread's last error message (which it
 * may itself be formatted from) and return rc. */
int weft_ckpt_wrap(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Make msg (another thread's or rank's, "rank N: ..." or not) this
 * thread's last error, without a second rank prefix. Returns rc. */
int weft_ckpt_rethrow(int rc, const char *msg);

#endif
