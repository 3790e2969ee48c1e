/*
 * shm_segment.c -- create, open, unlink and unmap the shared segments of
 * the shm backend, and sweep segments left behind by dead creators (see
 * shm_segment.h for the lifecycle and why no entry outlives a crash).
 */
#include "collectives/shm_segment.h"
#include "runtime/error.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static atomic_uint counter;

/* Job ids come from the environment: keep only a safe alphabet. */
static void clean_job(const char *job, char *out, size_t len)
{
    size_t k = 0;
    for (const char *p = job && *job ? job : "nojob"; *p && k + 1 < len; p++)
        out[k++] = isalnum((unsigned char)*p) ? *p : '_';
    out[k] = '\0';
}

static int map_fd(weft_shm_segment *s, int fd, size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int err = errno;
    close(fd);
    if (p == MAP_FAILED)
        return weft_error(WEFT_ENOMEM, "shm: mmap of %zu bytes of %s failed: %s", bytes, s->name,
                          strerror(err));
    s->base = p;
    s->bytes = bytes;
    return 0;
}

int weft_shm_segment_create(weft_shm_segment *s, const char *job_id, size_t bytes)
{
    char job[40];
    clean_job(job_id, job, sizeof job);
    snprintf(s->name, sizeof s->name, "/" WEFT_SHM_PREFIX "%s-%d-%u", job, (int)getpid(),
             atomic_fetch_add(&counter, 1));
    s->base = NULL;
    int fd = shm_open(s->name, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0)
        return weft_error(WEFT_EIO, "shm: cannot create %s: %s (is /dev/shm mounted and writable?)",
                          s->name, strerror(errno));
    int err = posix_fallocate(fd, 0, (off_t)bytes);
    if (err != 0) {
        close(fd);
        shm_unlink(s->name);
        s->name[0] = '\0';
        return weft_error(WEFT_ENOMEM, "shm: cannot reserve %zu bytes in /dev/shm: %s (make /dev/shm "
                          "larger, e.g. docker --shm-size, or use comm.backend=mpi)", bytes, strerror(err));
    }
    int rc = map_fd(s, fd, bytes);
    if (rc < 0)
        weft_shm_segment_unlink(s);
    return rc;
}

int weft_shm_segment_open(weft_shm_segment *s, const char *name, size_t bytes)
{
    snprintf(s->name, sizeof s->name, "%s", name);
    s->base = NULL;
    int fd = shm_open(name, O_RDWR, 0);
    if (fd < 0)
        return weft_error(WEFT_EIO, "shm: cannot open %s made by rank 0: %s", name, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < bytes) {
        close(fd);
        return weft_error(WEFT_EIO, "shm: %s is smaller than the %zu bytes rank 0 announced", name, bytes);
    }
    return map_fd(s, fd, bytes);
}

void weft_shm_segment_unlink(weft_shm_segment *s)
{
    if (s->name[0])
        shm_unlink(s->name);
    s->name[0] = '\0';
}

void weft_shm_segment_unmap(weft_shm_segment *s)
{
    if (s->base)
        munmap(s->base, s->bytes);
    s->base = NULL;
}

/* The creator pid of "weft-<job>-<pid>-<counter>", or -1. */
static long creator_pid(const char *name)
{
    if (strncmp(name, WEFT_SHM_PREFIX, strlen(WEFT_SHM_PREFIX)) != 0)
        return -1;
    const char *last = strrchr(name, '-');
    if (!last || last == name)
        return -1;
    const char *p = last - 1;
    while (p > name && isdigit((unsigned char)*p))
        p--;
    if (*p != '-' || p + 1 == last)
        return -1;
    return strtol(p + 1, NULL, 10);
}

int weft_shm_segment_sweep(void)
{
    DIR *d = opendir("/dev/shm");
    if (!d)
        return 0;
    int removed = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        long pid = creator_pid(e->d_name);
        if (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char name[300];
        snprintf(name, sizeof name, "/%s", e->d_name);
        if (shm_unlink(name) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}
