/*
 * resolve.c -- which checkpoint file a name on a command line means
 * (ckpt.h): a file is itself, a checkpoints directory means the file its
 * `latest` names, a run directory its checkpoints/latest. One function, so
 * that --init-from and every weft-ckpt command read names the same way.
 */
#include "checkpoint/ckpt.h"
#include "checkpoint/commit.h"
#include "runtime/error.h"
#include "runtime/runfiles.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int weft_ckpt_dir_of(const char *arg, char *dir, size_t len)
{
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/" WEFT_RUNFILE_CKPT_DIR, arg);
    const char *d = is_dir(sub) ? sub : arg;
    if ((size_t)snprintf(dir, len, "%s", d) >= len)
        return weft_error(WEFT_EINVAL, "path too long: %s", d);
    return 0;
}

/* No latest in dir: say which files there are, so the user can name one. */
static int no_latest(const char *arg, const char *dir)
{
    int64_t *steps;
    int n;
    if (weft_ckpt_list(dir, &steps, &n) != 0 || n == 0) {
        free(steps);
        return weft_error(WEFT_ENOENT, "%s holds no checkpoint (no %s/latest, no step-*.h5 files)", arg, dir);
    }
    char name[64];
    weft_ckpt_file_name(steps[n - 1], name, sizeof name);
    int64_t first = steps[0], last = steps[n - 1];
    free(steps);
    return weft_error(WEFT_ENOENT, "%s has no latest (nothing committed, or it was removed) but holds %d "
                      "checkpoint%s (steps %lld to %lld): name one file, e.g. %s/%s", arg, n, n == 1 ? "" : "s",
                      (long long)first, (long long)last, dir, name);
}

int weft_ckpt_resolve(const char *arg, char *path, size_t len)
{
    struct stat st;
    if (stat(arg, &st) != 0)
        return weft_error(errno == ENOENT ? WEFT_ENOENT : WEFT_EIO, "checkpoint %s: %s", arg, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        if ((size_t)snprintf(path, len, "%s", arg) >= len)
            return weft_error(WEFT_EINVAL, "checkpoint path too long: %s", arg);
        return 0;
    }
    char dir[4200];
    WEFT_CHECK(weft_ckpt_dir_of(arg, dir, sizeof dir));
    int rc = weft_ckpt_find_latest(dir, path, len);
    return rc == WEFT_ENOENT ? no_latest(arg, dir) : rc;
}
