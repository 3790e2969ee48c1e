/*
 * atomic_file.h -- write a file so that a crash never leaves a half-written
 * file under its final name: write to a temporary name in the same
 * directory, fsync, rename into place, fsync the directory. Files are
 * created mode 0640.
 */
#ifndef WEFT_DATA_ATOMIC_FILE_H
#define WEFT_DATA_ATOMIC_FILE_H

#include <stddef.h>

/* Write len bytes as DIR/NAME atomically. */
int weft_atomic_write(const char *dir, const char *name, const void *buf, size_t len);

/* Write all of len bytes at offset with pwrite, retrying short writes. */
int weft_write_full(int fd, const void *buf, size_t len, long long offset, const char *path);

/* fsync fd then rename tmp to final, then fsync the directory DIR. */
int weft_atomic_commit(int fd, const char *tmp, const char *final, const char *dir);

/* fsync a directory so renames inside it are durable. */
int weft_fsync_dir(const char *dir);

#endif
