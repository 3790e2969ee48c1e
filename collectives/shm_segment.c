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

static int reserve(weft_shm_segment *s, int fd, size_t bytes)
{
    int err = posix_fallocate(fd, 0, (off_t)bytes);
    if (err == 0)
        return 0;
    return weft_error(WEFT_ENOMEM, "shm: cannot reserve %zu bytes of shared memory for %s: %s (make "
                      "/dev/shm larger, e.g. docker --shm-size, or use comm.backend=mpi)", bytes, s->name,
                      strerror(err));
}

static int create_anonymous(weft_shm_segment *s, size_t bytes)
{
    int fd = memfd_create("weft-shm", MFD_CLOEXEC);
    if (fd < 0)
        return weft_error(WEFT_EIO, "shm: memfd_create failed: %s", strerror(errno));
    /* The others open it by this path until weft_shm_segment_unlink closes it. */
    snprintf(s->name, sizeof s->name, "/proc/%d/fd/%d", (int)getpid(), fd);
    int rc = reserve(s, fd, bytes);
    void *p = rc == 0 ? mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    if (rc == 0 && p == MAP_FAILED)
        rc = weft_error(WEFT_ENOMEM, "shm: mmap of %zu bytes failed: %s", bytes, strerror(errno));
    if (rc < 0) {
        close(fd);
        s->name[0] = '\0';
        return rc;
    }
    s->base = p;
    s->bytes = bytes;
    s->fd = fd;
    return 0;
}

static int create_named(weft_shm_segment *s, const char *job_id, size_t bytes)
{
    char job[40];
    clean_job(job_id, job, sizeof job);
    snprintf(s->name, sizeof s->name, "/" WEFT_SHM_PREFIX "%s-%d-%u", job, (int)getpid(),
             atomic_fetch_add(&counter, 1));
    int fd = shm_open(s->name, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0)
        return weft_error(WEFT_EIO, "shm: cannot create %s: %s (is /dev/shm mounted and writable?)",
                          s->name, strerror(errno));
    int rc = reserve(s, fd, bytes);
    if (rc == 0)
        rc = map_fd(s, fd, bytes);
    else
        close(fd);
    if (rc < 0)
        weft_shm_segment_unlink(s);
    return rc;
}

int weft_shm_segment_create(weft_shm_segment *s, const char *job_id, size_t bytes, int named)
{
    s->base = NULL;
    s->fd = -1;
    return named ? create_named(s, job_id, bytes) : create_anonymous(s, bytes);
}

int weft_shm_segment_open(weft_shm_segment *s, const char *name, size_t bytes)
{
    snprintf(s->name, sizeof s->name, "%s", name);
    s->base = NULL;
    s->fd = -1;
    int anon = strncmp(name, "/proc/", 6) == 0;
    int fd = anon ? open(name, O_RDWR | O_CLOEXEC) : shm_open(name, O_RDWR, 0);
    if (fd < 0)
        return weft_error(WEFT_EIO, "shm: cannot open %s made by rank 0: %s", name, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < bytes) {
        close(fd);
        return weft_error(WEFT_EIO, "shm: %s is smaller than the %zu bytes rank 0 announced", name, bytes);
    }
    int rc = map_fd(s, fd, bytes);
    s->name[0] = '\0'; /* only the creator unlinks */
    return rc;
}

void weft_shm_segment_unlink(weft_shm_segment *s)
{
    if (s->fd >= 0)
        close(s->fd);
    else if (s->name[0] == '/' && strncmp(s->name, "/proc/", 6) != 0)
        shm_unlink(s->name);
    s->fd = -1;
    s->name[0] = '\0';
}

void weft_shm_segment_unmap(weft_shm_segment *s)
{
    weft_shm_segment_unlink(s);
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
