/*
 * commit.c -- checkpoint names, `latest`, retention (see commit.h).
 */
#include "checkpoint/commit.h"
#include "checkpoint/ckpt.h"
#include "checkpoint/latest.h"
#include "runtime/durable.h"
#include "runtime/error.h"
#include "runtime/fault.h"
#include "runtime/log.h"
#include "runtime/runfiles.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int weft_ckpt_mkdir(const char *dir)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    char *slash = strrchr(buf, '/');
    if (slash && slash != buf) { /* the parent (run.dir) first */
        *slash = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST)
            return weft_error(WEFT_EIO, "cannot create directory %s: %s", buf, strerror(errno));
    }
    if (mkdir(dir, 0750) != 0 && errno != EEXIST)
        return weft_error(WEFT_EIO, "cannot create checkpoint directory %s: %s", dir, strerror(errno));
    return 0;
}

int weft_ckpt_publish(const char *dir, const char *tmp, const char *name, int64_t step)
{
    char final[4200], latest[4200], line[64];
    snprintf(final, sizeof final, "%s/%s", dir, name);
    snprintf(latest, sizeof latest, "%s/" WEFT_RUNFILE_LATEST, dir);
    /* The file is durable under its name before `latest` names it. */
    WEFT_CHECK(weft_durable_publish(tmp, final, WEFT_DURABLE_SYNC));
    weft_fault_at(WEFT_FAULT_SAVE_LATEST, step); /* the file in place, latest still the old one */
    int n = snprintf(line, sizeof line, "%s\n", name);
    return weft_durable_write_file(latest, line, (size_t)n, WEFT_DURABLE_SYNC);
}

int weft_ckpt_find_latest(const char *dir, char *path, size_t len)
{
    char p[4200], buf[80], name[64];
    snprintf(p, sizeof p, "%s/" WEFT_RUNFILE_LATEST, dir);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return weft_error(WEFT_ENOENT, "no checkpoint to resume from: %s does not exist (no checkpoint was "
                          "committed in %s)", p, dir);
    if (fd < 0)
        return weft_error(WEFT_EIO, "cannot read %s: %s", p, strerror(errno));
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n < 0)
        return weft_error(WEFT_EIO, "cannot read %s: %s", p, strerror(errno));
    int64_t step;
    WEFT_CHECK(weft_ckpt_parse_latest(buf, (size_t)n, p, name, sizeof name, &step));
    if ((size_t)snprintf(path, len, "%s/%s", dir, name) >= len)
        return weft_error(WEFT_EINVAL, "checkpoint path too long: %s/%s", dir, name);
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int weft_ckpt_list(const char *dir, int64_t **steps, int *n)
{
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return weft_error(errno == ENOENT ? WEFT_ENOENT : WEFT_EIO, "cannot list %s: %s", dir, strerror(errno));
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s;
        if (!weft_ckpt_parse_name(e->d_name, &s))
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            int64_t *g = realloc(*steps, (size_t)cap * sizeof *g);
            if (!g) {
                closedir(d);
                return weft_error(WEFT_ENOMEM, "out of memory");
            }
            *steps = g;
        }
        (*steps)[(*n)++] = s;
    }
    closedir(d);
    if (*n > 1) /* none found: *steps is NULL, which qsort may not be given */
        qsort(*steps, (size_t)*n, sizeof **steps, cmp_i64);
    return 0;
}

int weft_ckpt_retain(const char *dir, int keep_last, int keep_every, int64_t current)
{
    int64_t *steps;
    int n;
    WEFT_CHECK(weft_ckpt_list(dir, &steps, &n));
    int removed = 0;
    for (int i = 0; i < n - (keep_last > 1 ? keep_last : 1); i++) {
        if ((keep_every > 0 && steps[i] % keep_every == 0) || steps[i] == current)
            continue; /* current: the one latest names, even if a reused directory has later steps */
        char name[64], p[4200];
        weft_ckpt_file_name(steps[i], name, sizeof name);
        snprintf(p, sizeof p, "%s/%s", dir, name);
        if (unlink(p) == 0)
            removed++;
        else
            WEFT_WARN("checkpoint retention: cannot remove %s: %s", p, strerror(errno));
    }
    free(steps);
    return removed ? weft_durable_fsync_dir(dir) : 0;
}

void weft_ckpt_remove_stale(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, ".step-", 6) == 0 && len > 7 && strcmp(e->d_name + len - 7, ".h5.tmp") == 0) {
            char p[4200];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (unlink(p) == 0)
                WEFT_INFO("checkpoint: removed %s, left by a save that never finished", p);
        }
    }
    closedir(d);
}

int64_t weft_ckpt_latest_step(const char *dir)
{
    char path[4300];
    int64_t s;
    if (weft_ckpt_find_latest(dir, path, sizeof path) != 0 || !weft_ckpt_parse_name(strrchr(path, '/') + 1, &s))
        return -1;
    return s;
}
