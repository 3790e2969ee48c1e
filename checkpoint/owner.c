/*
 * owner.c -- a local tier's owner mark, checked and claimed (see owner.h).
 */
#include "checkpoint/owner.h"
#include "checkpoint/ckpt.h"
#include "checkpoint/latest.h"
#include "runtime/durable.h"
#include "runtime/error.h"
#include "runtime/readfile.h"
#include "runtime/runfiles.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The mark's run identity: 0 none (no file), 1 read into *id, <0 malformed
 * or unreadable (weft_last_error says which). */
static int read_mark(const char *path, uint64_t *id)
{
    char *buf = NULL;
    size_t n = 0;
    int rc = weft_read_file(path, 64, "a local tier's owner mark", &buf, &n);
    if (rc == WEFT_ENOENT)
        return 0;
    if (rc == 0)
        rc = weft_ckpt_parse_owner(buf, n, path, id);
    free(buf);
    return rc ? rc : 1;
}

static void mark_of(const char *dir, char *mark, size_t len)
{
    snprintf(mark, len, "%s/%s", dir, WEFT_CKPT_OWNER_MARK);
}

int weft_ckpt_tier_held(const char *dir, char *what, size_t len)
{
    char latest[4200];
    snprintf(latest, sizeof latest, "%s/%s", dir, WEFT_RUNFILE_LATEST);
    int64_t *steps = NULL;
    int n = 0;
    struct stat st;
    if (weft_ckpt_list(dir, &steps, &n) != 0)
        n = 0;
    int held = n ? WEFT_TIER_STEPS : stat(latest, &st) == 0 ? WEFT_TIER_LATEST_ONLY : WEFT_TIER_EMPTY;
    if (n)
        snprintf(what, len, "%d checkpoint%s (steps %lld to %lld)", n, n == 1 ? "" : "s", (long long)steps[0],
                 (long long)steps[n - 1]);
    else
        snprintf(what, len, "%s", held ? "only a latest file" : "no checkpoints");
    free(steps);
    return held;
}

int weft_ckpt_owner_check(const char *dir, uint64_t owner, int claim)
{
    char mark[4200], what[96];
    mark_of(dir, mark, sizeof mark);
    int holds = weft_ckpt_tier_held(dir, what, sizeof what) != WEFT_TIER_EMPTY;
    uint64_t id = 0;
    int had = read_mark(mark, &id);
    if (had < 0 && holds)
        return had;
    if (had == 1 && id != owner && holds) {
        char me[64] = "this run has no run.dir/owner.json yet";
        if (owner)
            snprintf(me, sizeof me, "this one is %016llx, from run.dir/owner.json", (unsigned long long)owner);
        return weft_error(WEFT_ECONFIG, "checkpoint.local_dir %s holds %s of another run (%s names run %016llx; "
                          "%s): taking them for this run's would drain them into its checkpoint.dir and resume "
                          "from them; give this run a local_dir of its own, remove that run's files if nothing "
                          "needs them, or, if this run continues that one, 'weft-ckpt release %s' hands them to "
                          "the next run that uses the directory", dir, what, mark, (unsigned long long)id, me, dir);
    }
    if (!claim || !owner || (had == 1 && id == owner))
        return 0;
    char text[32];
    int len = snprintf(text, sizeof text, "owner %016llx\n", (unsigned long long)owner);
    return weft_durable_write_file(mark, text, (size_t)len, WEFT_DURABLE_SYNC);
}

int weft_ckpt_owner_read(const char *dir, uint64_t *owner)
{
    char mark[4200];
    mark_of(dir, mark, sizeof mark);
    *owner = 0;
    int had = read_mark(mark, owner);
    return had < 0 ? had : 0;
}

int weft_ckpt_owner_release(const char *dir, uint64_t *owner)
{
    struct stat st;
    *owner = 0;
    if (stat(dir, &st) != 0)
        return weft_error(errno == ENOENT ? WEFT_ENOENT : WEFT_EIO, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return weft_error(WEFT_EINVAL, "%s is not a directory (a checkpoint.local_dir is one)", dir);
    char mark[4200];
    mark_of(dir, mark, sizeof mark);
    if (read_mark(mark, owner) < 0)
        *owner = 0; /* malformed: removed all the same, which is what the caller asked */
    if (unlink(mark) != 0) {
        if (errno == ENOENT)
            return 0;
        return weft_error(WEFT_EIO, "cannot remove %s: %s", mark, strerror(errno));
    }
    /* the removal must survive a crash, or a later run finds the mark again */
    return weft_durable_fsync_dir(dir);
}
