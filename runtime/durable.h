/*
 * durable.h -- the one way weft puts a file on disk. Every file a weft
 * program writes (run directory, checkpoints, datasets, exports) is made
 * here, so there is one temp + fsync + rename sequence and one fsync habit
 * per kind of file, not one per writer.
 *
 * A writer writes to a temporary name beside the final one
 * (".NAME.tmp.<thread id>", created with mode 0640), then commits: fsync
 * the file (by policy), rename it over the final name, fsync the directory
 * (by policy). A crash at any instant leaves the old file or the new one
 * under the final name, never a part of one; what it may leave is a
 * temporary name, which readers ignore (runtime/runfiles.h names them).
 *
 * Policies (the file kinds are listed with theirs in runtime/runfiles.h):
 *
 *   WEFT_DURABLE_SYNC         file and directory fsynced before commit
 *                             returns: checkpoints, `latest`, manifests,
 *                             exports, the run's records (config.ini,
 *                             run.json, owner.json), flight, hang and trace
 *                             files -- what a resume or a post-mortem reads.
 *   WEFT_DURABLE_BATCH        file fsynced and renamed; the caller fsyncs
 *                             the directory once for the batch
 *                             (weft_durable_fsync_dir): dataset shards,
 *                             made durable with their manifest.
 *   WEFT_DURABLE_BEST_EFFORT  renamed, never fsynced: status.json, the
 *                             heartbeats, metrics.port, the Prometheus
 *                             textfile -- rewritten every few seconds, read
 *                             only while the job lives. A power loss may
 *                             lose the newest version; a reader still never
 *                             sees a torn one.
 *
 * The one file changed in place is metrics.jsonl: weft_durable_append puts
 * one whole line per write(2) on an O_APPEND descriptor, so a crash leaves
 * at most a torn last line, which a resume drops (train/report.c).
 *
 * Every byte goes through weft_durable_pwrite, and every fsync and rename
 * through this file's own helpers: the one place an I/O fault (ENOSPC, EIO)
 * can be injected for all writers.
 *
 * A weft_durable handle is used by one thread: open -> write... -> commit
 * (or discard). After a failed write the handle is sticky: commit fails
 * with the first error and removes the temporary file.
 */
#ifndef WEFT_RUNTIME_DURABLE_H
#define WEFT_RUNTIME_DURABLE_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    WEFT_DURABLE_SYNC = 0,
    WEFT_DURABLE_BATCH,
    WEFT_DURABLE_BEST_EFFORT,
} weft_durable_policy;

typedef struct {
    int fd;                     /* the temporary file; -1 once closed */
    FILE *f;                    /* a stream over fd whose writes go through weft_durable_pwrite */
    long long off;              /* where the stream's next byte goes */
    int err;                    /* first failure (WEFT_E*), sticky; its message is weft_last_error()'s */
    weft_durable_policy policy;
    char path[4096];            /* final name */
    char tmp[4200];             /* temporary name beside it */
} weft_durable;

/* Every write of every file: all of len bytes at offset (offset < 0: at
 * the descriptor's position, as write(2) -- for O_APPEND), retrying short
 * writes and EINTR. WEFT_EIO naming path on failure. */
int weft_durable_pwrite(int fd, const void *buf, size_t len, long long offset, const char *path);

/* Create path's temporary file (mode 0640) and a stream over it (d->f). */
int weft_durable_open(weft_durable *d, const char *path, weft_durable_policy policy);

/* Write len bytes at offset of the temporary file (for writers that place
 * bytes themselves; not mixed with d->f). Sticky: after a failure it does
 * nothing and returns the first error. */
int weft_durable_write_at(weft_durable *d, const void *buf, size_t len, long long offset);

/* Flush, fsync (by policy), rename over the final name, fsync the directory
 * (SYNC). Closes the handle either way; on failure the temporary file is
 * removed and the final name keeps what it held. */
int weft_durable_commit(weft_durable *d);

/* Close the handle and remove the temporary file (a writer that gave up). */
void weft_durable_discard(weft_durable *d);

/* The whole of a file at once: open + write + commit. */
int weft_durable_write_file(const char *path, const void *buf, size_t len, weft_durable_policy policy);

/* from's bytes as a new file `to` (0640, which must not exist): the copy
 * a tool then changes in place and publishes (weft-ckpt sign, merge).
 * Removed again on failure; not fsynced (weft_durable_publish does). */
int weft_durable_copy(const char *from, const char *to);

/* Commit a temporary file another library wrote (HDF5, MPI-IO): chmod 0640,
 * fsync it (SYNC, BATCH), rename tmp -> path, fsync the directory (SYNC).
 * tmp must be in path's directory. A directory whose files were committed
 * one by one (an export) is put in place the same way, with mode 0750. */
int weft_durable_publish(const char *tmp, const char *path, weft_durable_policy policy);

/* fsync an open file (a writer that must create its file itself: a secret
 * key, O_EXCL and mode 0600 from the first byte). */
int weft_durable_fsync_fd(int fd, const char *path);

/* fsync a file by name (a rank that did not write it may make it durable). */
int weft_durable_fsync_path(const char *path);

/* fsync a directory, so renames and removals in it are durable. */
int weft_durable_fsync_dir(const char *dir);

/* Open path for appending whole lines (O_APPEND, created 0640; emptied
 * first when truncate); *fd. */
int weft_durable_append_open(const char *path, int truncate, int *fd);

/* Append one line (len bytes, ending in '\n') with one write(2). */
int weft_durable_append(int fd, const char *line, size_t len, const char *path);

/* Remove the temporaries (".NAME.tmp.<digits>") a killed writer left in
 * dir; only while no writer can be at work there (a run's start, before
 * its ranks agree to go on). Returns how many were removed. */
int weft_durable_remove_stale(const char *dir);

/* The directory part of path ("." for a bare name) into dir. */
void weft_durable_dir_of(const char *path, char *dir, size_t len);

#endif
