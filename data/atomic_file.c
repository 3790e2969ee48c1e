/*
 * atomic_file.c -- temporary name, fsync, rename, fsync the directory (see
 * atomic_file.h). Used for the manifest and every shard weft-data writes.
 */
#include "data/atomic_file.h"
#include "runtime/error.h"
#include "runtime/fault.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int weft_write_full(int fd, const void *buf, size_t len, long long offset, const char *path)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, (off_t)offset);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return weft_error(WEFT_EIO, "%s: write of %zu bytes at offset %lld failed: %s", path, len,
                              offset, w < 0 ? strerror(errno) : "no progress");
        p += w;
        len -= (size_t)w;
        offset += w;
    }
    return 0;
}

int weft_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return weft_error(WEFT_EIO, "%s: cannot open directory to fsync: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0)
        return weft_error(WEFT_EIO, "%s: fsync of directory failed: %s", dir, strerror(e));
    return 0;
}

int weft_atomic_commit(int fd, const char *tmp, const char *final, const char *dir)
{
    if (fsync(fd) != 0)
        return weft_error(WEFT_EIO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (rename(tmp, final) != 0)
        return weft_error(WEFT_EIO, "rename %s -> %s failed: %s", tmp, final, strerror(errno));
    return weft_fsync_dir(dir);
}

int weft_atomic_write(const char *dir, const char *name, const void *buf, size_t len)
{
    char tmp[4096], final[4096];
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp.%ld", dir, name, (long)getpid());
    snprintf(final, sizeof final, "%s/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return weft_error(WEFT_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    /* enospc_file, eio_file: the hook every small-file writer passes (the
     * durable-file module keeps it when it takes this function's place). */
    int err = weft_fault_at(WEFT_FAULT_FILE_WRITE, -1);
    int rc = err ? weft_error(WEFT_EIO, "%s: write of %zu bytes failed: %s (injected: WEFT_FAULT)", tmp, len,
                              strerror(err))
                 : weft_write_full(fd, buf, len, 0, tmp);
    if (rc == 0)
        rc = weft_atomic_commit(fd, tmp, final, dir);
    close(fd);
    if (rc < 0)
        unlink(tmp);
    return rc;
}
