/*
 * durable.c -- temporary name, fsync by policy, rename, fsync the
 * directory (see durable.h). The only file in weft that calls write(2),
 * fsync(2) or rename(2) to put a file in place.
 */
#include "runtime/durable.h"
#include "runtime/error.h"
#include "runtime/fault.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int weft_durable_pwrite(int fd, const void *buf, size_t len, long long offset, const char *path)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = offset < 0 ? write(fd, p, len) : pwrite(fd, p, len, (off_t)offset);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return weft_error(WEFT_EIO, "%s: write of %zu bytes at offset %lld failed: %s", path, len, offset,
                              w < 0 ? strerror(errno) : "no progress");
        p += w;
        len -= (size_t)w;
        if (offset >= 0)
            offset += w;
    }
    return 0;
}

static int sync_fd(int fd, const char *what)
{
    if (fsync(fd) != 0)
        return weft_error(WEFT_EIO, "%s: fsync failed: %s", what, strerror(errno));
    return 0;
}

static int move(const char *tmp, const char *path)
{
    if (rename(tmp, path) != 0)
        return weft_error(WEFT_EIO, "rename %s -> %s failed: %s", tmp, path, strerror(errno));
    return 0;
}

void weft_durable_dir_of(const char *path, char *dir, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, len, ".");
    else if (slash == path)
        snprintf(dir, len, "/");
    else
        snprintf(dir, len, "%.*s", (int)(slash - path), path);
}

int weft_durable_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return weft_error(WEFT_EIO, "%s: cannot open directory to fsync: %s", dir, strerror(errno));
    int rc = sync_fd(fd, dir);
    close(fd);
    return rc;
}

int weft_durable_fsync_fd(int fd, const char *path) { return sync_fd(fd, path); }

int weft_durable_fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return weft_error(WEFT_EIO, "%s: cannot open to fsync: %s", path, strerror(errno));
    int rc = sync_fd(fd, path);
    close(fd);
    return rc;
}

/* The stream's writes: through weft_durable_pwrite, sticky on failure. */
static ssize_t stream_write(void *cookie, const char *buf, size_t len)
{
    weft_durable *d = cookie;
    if (d->err == 0)
        d->err = weft_durable_pwrite(d->fd, buf, len, d->off, d->tmp);
    if (d->err)
        return -1;
    d->off += (long long)len;
    return (ssize_t)len;
}

/* The temporary file without a stream: no allocation, so the abort path
 * may write its status this way. */
static int open_tmp(weft_durable *d, const char *path, weft_durable_policy policy)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    memset(d, 0, sizeof *d);
    d->fd = -1;
    d->policy = policy;
    weft_durable_dir_of(path, dir, sizeof dir);
    if ((size_t)snprintf(d->path, sizeof d->path, "%s", path) >= sizeof d->path)
        return weft_error(WEFT_EINVAL, "path too long: %s", path);
    /* The thread's own temporary name: two threads (the reporter and the
     * abort path) may write one file at once. */
    snprintf(d->tmp, sizeof d->tmp, "%s/.%s.tmp.%ld", dir, slash ? slash + 1 : path, (long)syscall(SYS_gettid));
    d->fd = open(d->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (d->fd < 0)
        return weft_error(WEFT_EIO, "cannot create %s: %s", d->tmp, strerror(errno));
    return 0;
}

int weft_durable_open(weft_durable *d, const char *path, weft_durable_policy policy)
{
    WEFT_CHECK(open_tmp(d, path, policy));
    cookie_io_functions_t io = {.write = stream_write};
    d->f = fopencookie(d, "w", io);
    if (!d->f) {
        weft_durable_discard(d);
        return weft_error(WEFT_ENOMEM, "%s: no memory for a stream", path);
    }
    return 0;
}

int weft_durable_write_at(weft_durable *d, const void *buf, size_t len, long long offset)
{
    if (d->err == 0)
        d->err = weft_durable_pwrite(d->fd, buf, len, offset, d->tmp);
    return d->err;
}

/* Close the stream and the descriptor; the first failure wins. */
static int close_handle(weft_durable *d)
{
    if (d->f && fclose(d->f) != 0 && d->err == 0)
        d->err = weft_error(WEFT_EIO, "%s: writing failed: %s", d->tmp, strerror(errno));
    d->f = NULL;
    if (d->fd >= 0 && d->err == 0 && d->policy != WEFT_DURABLE_BEST_EFFORT)
        d->err = sync_fd(d->fd, d->tmp);
    if (d->fd >= 0 && close(d->fd) != 0 && d->err == 0)
        d->err = weft_error(WEFT_EIO, "%s: close failed: %s", d->tmp, strerror(errno));
    d->fd = -1;
    return d->err;
}

int weft_durable_commit(weft_durable *d)
{
    char dir[4096];
    int rc = close_handle(d);
    if (rc == 0)
        rc = move(d->tmp, d->path);
    if (rc) {
        unlink(d->tmp);
        return rc;
    }
    weft_durable_dir_of(d->path, dir, sizeof dir);
    return d->policy == WEFT_DURABLE_SYNC ? weft_durable_fsync_dir(dir) : 0;
}

void weft_durable_discard(weft_durable *d)
{
    if (d->f)
        fclose(d->f);
    if (d->fd >= 0)
        close(d->fd);
    d->f = NULL;
    d->fd = -1;
    if (d->tmp[0])
        unlink(d->tmp);
}

int weft_durable_write_file(const char *path, const void *buf, size_t len, weft_durable_policy policy)
{
    weft_durable d;
    WEFT_CHECK(open_tmp(&d, path, policy));
    /* enospc_file, eio_file (runtime/fault.h): the point every whole-file
     * writer passes -- owner.json, config.ini, run.json, latest, manifests */
    int err = weft_fault_at(WEFT_FAULT_FILE_WRITE, -1);
    if (err) {
        weft_durable_discard(&d);
        return weft_error(WEFT_EIO, "%s: write of %zu bytes failed: %s (injected: WEFT_FAULT)", d.tmp, len,
                          strerror(err));
    }
    weft_durable_write_at(&d, buf, len, 0);
    return weft_durable_commit(&d);
}

int weft_durable_copy(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return weft_error(errno == ENOENT ? WEFT_ENOENT : WEFT_EIO, "cannot open %s: %s", from, strerror(errno));
    int fd = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    int rc = fd < 0 ? weft_error(WEFT_EIO, "cannot create %s: %s", to, strerror(errno)) : 0;
    static char buf[1 << 20];
    long long off = 0;
    for (ssize_t n; rc == 0 && (n = read(in, buf, sizeof buf)) != 0; off += n)
        rc = n < 0 ? weft_error(WEFT_EIO, "reading %s: %s", from, strerror(errno))
                   : weft_durable_pwrite(fd, buf, (size_t)n, off, to);
    close(in);
    if (fd >= 0)
        close(fd);
    if (rc && fd >= 0)
        unlink(to);
    return rc;
}

int weft_durable_publish(const char *tmp, const char *path, weft_durable_policy policy)
{
    char dir[4096];
    struct stat st;
    /* MPI-IO and HDF5 create files 0666 & ~umask; a directory (an export)
     * keeps its search bit. */
    if (stat(tmp, &st) != 0 || chmod(tmp, S_ISDIR(st.st_mode) ? 0750 : 0640) != 0)
        return weft_error(WEFT_EIO, "chmod %s failed: %s", tmp, strerror(errno));
    if (policy != WEFT_DURABLE_BEST_EFFORT)
        WEFT_CHECK(weft_durable_fsync_path(tmp));
    WEFT_CHECK(move(tmp, path));
    weft_durable_dir_of(path, dir, sizeof dir);
    return policy == WEFT_DURABLE_SYNC ? weft_durable_fsync_dir(dir) : 0;
}

int weft_durable_append_open(const char *path, int truncate, int *fd)
{
    *fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0640);
    if (*fd < 0)
        return weft_error(WEFT_EIO, "cannot open %s to append: %s", path, strerror(errno));
    return 0;
}

int weft_durable_append(int fd, const char *line, size_t len, const char *path)
{
    return weft_durable_pwrite(fd, line, len, -1, path);
}

/* ".NAME.tmp.<digits>": open_tmp's names. */
static int is_tmp_name(const char *name)
{
    const char *t = strstr(name, ".tmp.");
    if (name[0] != '.' || !t || t == name || !t[5])
        return 0;
    for (const char *p = t + 5; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    return 1;
}

int weft_durable_remove_stale(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    char p[4400];
    for (struct dirent *e; d && (e = readdir(d));)
        if (is_tmp_name(e->d_name)) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            n += unlink(p) == 0;
        }
    if (d)
        closedir(d);
    return n;
}
