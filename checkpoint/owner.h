/*
 * owner.h -- whose checkpoints a local tier (checkpoint.local_dir) holds.
 *
 * A local tier's files carry step numbers only. One left holding another
 * run's checkpoints -- two experiments given the same node-local path, a
 * run.dir started afresh beside an old local tier -- would be taken for
 * this run's: the catch-up drain copies the other run's newest into this
 * run's checkpoint.dir (whose retention then removes this run's own), a
 * resume loads it (silently, when the shapes match), and the two runs'
 * steps overwrite each other. So a local tier names its run in a mark,
 * DIR/.weft-owner: "owner <16 hex digits>\n", the run's identity (weft-train:
 * XXH3-64 of run.dir/owner.json, which a run keeps across resumes and a
 * fresh start replaces). A tier holding checkpoints marked by another run
 * is refused (exit 64); one holding none is claimed; one without a mark
 * (made by a weft before marks) is taken as this run's and claimed.
 */
#ifndef WEFT_CHECKPOINT_OWNER_H
#define WEFT_CHECKPOINT_OWNER_H

#include <stddef.h>
#include <stdint.h>

#define WEFT_CKPT_OWNER_MARK ".weft-owner"

/* Whether the local tier dir may serve the run `owner` (0: a run without
 * an identity yet, which no mark names): yes when it does not exist, holds
 * no committed checkpoint (step-*.h5 or latest), has no mark, or its mark
 * names owner; else
 * WEFT_ECONFIG naming the directory, its steps, both identities and what
 * to do (a malformed mark beside checkpoints: WEFT_EDATA). claim (owner
 * not 0): then write the mark (durably, before any save commits there)
 * unless it already names owner. */
int weft_ckpt_owner_check(const char *dir, uint64_t owner, int claim);

/* What the tier dir holds, said in what for messages ("3 checkpoints
 * (steps 2 to 6)", "only a latest file", "no checkpoints") and returned. */
enum { WEFT_TIER_EMPTY = 0, WEFT_TIER_LATEST_ONLY, WEFT_TIER_STEPS };
int weft_ckpt_tier_held(const char *dir, char *what, size_t len);

/* What dir's mark says: *owner the run it names (0 when there is no mark);
 * 0, or the mark's error (malformed: WEFT_EDATA, unreadable: WEFT_EIO). */
int weft_ckpt_owner_read(const char *dir, uint64_t *owner);

/* Remove dir's mark durably (its directory entry synced), so that the next
 * run to use dir takes what it holds as its own -- for a run continued in a
 * new run.dir (weft-ckpt release). *owner: the run the mark named (0: there
 * was none, or it was malformed: removed all the same). WEFT_ENOENT when
 * dir does not exist. */
int weft_ckpt_owner_release(const char *dir, uint64_t *owner);

#endif
