/*
 * save.c -- one save, on the writer thread, from staging to a committed
 * file (see checkpoint-format.md):
 *   preflight (free space) -> create the temporary file collectively ->
 *   reserve its blocks (rank 0, fallocate) -> the data phase (save_data.c:
 *   create every dataset, then each rank pwrites its bytes at their file
 *   offsets, reads them back and compares, hashes; no collective call per
 *   dataset) -> agree -> attributes -> close -> agree -> write-back + fsync
 *   -> agree -> rank 0 renames, fsyncs the directory, updates latest,
 *   applies retention -> agree -> committed.
 * Every rank goes through the same collective calls even after a local
 * error (recorded, then agreed on), so a failure never leaves ranks waiting
 * in different collectives; a full disk is caught before any data is
 * written (the reserve).
 */
#include "checkpoint/agree.h"
#include "checkpoint/commit.h"
#include "checkpoint/h5.h"
#include "checkpoint/seal.h"
#include "checkpoint/writer_int.h"
#include "collectives/watchdog.h"
#include "runtime/ctx.h"
#include "runtime/durable.h"
#include "runtime/error.h"
#include "runtime/fault.h"
#include "runtime/log.h"
#include "runtime/runfiles.h"
#include "runtime/timer.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef WEFT_VERSION
#define WEFT_VERSION "unknown"
#endif

/* --- the reserve ---------------------------------------------------------- */

/* Rank 0 keeps DIR/.weft-ckpt-reserve: disk blocks (metadata's worth)
 * released when a save fails for lack of space, so the file can still be
 * closed cleanly and removed. */
static size_t reserve_bytes(const weft_ckpt *c) { return 65536 + 2048 * (size_t)c->plan.nd; }

static void reserve_path(const weft_ckpt *c, char *buf, size_t len)
{
    snprintf(buf, len, "%s/" WEFT_RUNFILE_CKPT_RESERVE, c->opts.dir);
}

void weft_ckpt_reserve_take(weft_ckpt *c)
{
    char p[4200];
    reserve_path(c, p, sizeof p);
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return;
    if (posix_fallocate(fd, 0, (off_t)reserve_bytes(c)) != 0)
        unlink(p); /* no room even for that, or unsupported: go without */
    close(fd);
}

static size_t file_bytes_estimate(const weft_ckpt *c);

/* fallocate the temporary file's blocks (its size unchanged). WEFT_EIO on
 * a full disk; file systems without fallocate go on unreserved. */
static int reserve_file(weft_ckpt *c, const char *tmp)
{
    int fd = open(tmp, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return weft_error(WEFT_EIO, "checkpoint: cannot open %s: %s", tmp, strerror(errno));
    size_t need = file_bytes_estimate(c);
    int r = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)need), e = errno;
    close(fd);
    if (r == 0 || e == EOPNOTSUPP || e == ENOSYS)
        return 0;
    struct statvfs sv;
    double avail = statvfs(c->opts.dir, &sv) == 0 ? (double)sv.f_bavail * (double)sv.f_frsize : -1;
    return weft_error(WEFT_EIO, "checkpoint step %lld: cannot reserve %.1f MiB for %s: %s (%.1f MiB free); free "
                      "space or lower checkpoint.keep_last", (long long)c->meta.step, need / 1048576.0, tmp,
                      strerror(e), avail / 1048576.0);
}

void weft_ckpt_reserve_release(weft_ckpt *c)
{
    char p[4200];
    reserve_path(c, p, sizeof p);
    unlink(p);
}

/* --- the file ------------------------------------------------------------- */

/* Keep the first error; later ones only add to the log. */
static int keep(int rc, int now) { return rc ? rc : now; }

int weft_ckpt_root_attrs(hid_t f, const weft_ckpt_meta *m, const weft_ckpt_layout *l, int world,
                         const char *config_ini)
{
    char layout[128];
    snprintf(layout, sizeof layout, "world=%d dp=%d tp=%d pp=%d zero=%d", world, l->dp_size, l->tp_size,
             l->pp_size, l->zero);
    int rc = 0;
    rc = keep(rc, weft_h5_attr_str(f, "format", "weft-checkpoint"));
    rc = keep(rc, weft_h5_attr_i64(f, "format_version", 2));
    rc = keep(rc, weft_h5_attr_u64(f, "checksum_block", WEFT_CKPT_SUM_BLOCK)); /* sum.h */
    rc = keep(rc, weft_h5_attr_str(f, "weft_version", WEFT_VERSION));
    rc = keep(rc, weft_h5_attr_i64(f, "step", m->step));
    rc = keep(rc, weft_h5_attr_f64(f, "wall_time", weft_wall_s()));
    rc = keep(rc, weft_h5_attr_u64(f, "dataset_hash", m->dataset_hash));
    rc = keep(rc, weft_h5_attr_str(f, "config", config_ini ? config_ini : ""));
    rc = keep(rc, weft_h5_attr_str(f, "layout", layout));
    rc = keep(rc, weft_h5_attr_i64(f, "world_size", world));
    rc = keep(rc, weft_h5_attr_i64(f, "dp", l->dp_size));
    rc = keep(rc, weft_h5_attr_i64(f, "tp", l->tp_size));
    rc = keep(rc, weft_h5_attr_i64(f, "pp", l->pp_size));
    rc = keep(rc, weft_h5_attr_i64(f, "zero", l->zero));
    rc = keep(rc, weft_h5_attr_i64(f, "optim_t", m->optim_t));
    rc = keep(rc, weft_h5_attr_f64(f, "lr", m->lr));
    rc = keep(rc, weft_h5_attr_f64(f, "lr_peak", m->lr_peak));
    rc = keep(rc, weft_h5_attr_f64(f, "lr_min", m->lr_min));
    rc = keep(rc, weft_h5_attr_i64(f, "lr_warmup", m->warmup));
    rc = keep(rc, weft_h5_attr_i64(f, "lr_total_steps", m->total_steps));
    if (m->base_path) {
        rc = keep(rc, weft_h5_attr_str(f, "base_checkpoint", m->base_path));
        rc = keep(rc, weft_h5_attr_u64(f, "base_hash", m->base_hash));
    }
    return rc;
}

static int write_file_raw(weft_ckpt *c, const char *tmp);

/* HDF5's calls here are collective MPI-IO the communicators do not see:
 * the watchdog bounds them (collectives/watchdog.h, "Raw MPI"). */
static int write_file(weft_ckpt *c, const char *tmp)
{
    char what[4400];
    snprintf(what, sizeof what, "writing checkpoint file %s", tmp);
    weft_watchdog_raw_begin(what);
    int rc = write_file_raw(c, tmp);
    weft_watchdog_raw_end();
    return rc;
}

static int write_file_raw(weft_ckpt *c, const char *tmp)
{
    size_t data = 0;
    for (int i = 0; i < c->plan.nd; i++)
        data += weft_ckpt_dset_bytes(&c->plan.d[i]);
    weft_h5_tuning tune = {0, c->opts.coll_metadata, c->opts.alignment,
                           weft_h5_meta_block(data, (size_t)c->plan.nd, strlen(c->config_ini))};
    hid_t fapl = weft_h5_fapl(c->nodefiles ? c->node_mpi : c->mpi, &tune); /* a file per node: the node's */
    weft_fault_at(WEFT_FAULT_SAVE_OPEN, c->meta.step); /* kill_save_open, stall_save_open: the others in MPI-IO */
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0)
        return weft_h5_error(WEFT_EIO, "cannot create checkpoint file %s", tmp);
    /* Reserve the whole file's blocks before writing: a full disk then fails
     * here, cleanly, and never in the middle of the data or of HDF5's
     * metadata writes. Each rank's own descriptor carries its data. */
    int rc = weft_ckpt_committer(c) ? reserve_file(c, tmp) : 0;
    c->fd = open(tmp, O_RDWR | O_CLOEXEC);
    if (c->fd < 0)
        rc = keep(rc, weft_error(WEFT_EIO, "checkpoint: cannot open %s for writing: %s", tmp, strerror(errno)));
    rc = weft_ckpt_agree(c->wcomm, rc);
    if (rc) {
        if (weft_ckpt_committer(c))
            weft_ckpt_reserve_release(c); /* room for the superblock HDF5 writes at close */
        H5Fclose(f);
        return rc;
    }
    int64_t t0 = weft_now_ns();
    rc = weft_ckpt_data_create(c, f);
    if (c->nodefiles) /* every dataset at one offset in every node's file */
        rc = weft_ckpt_nodes_offsets(c, rc);
    c->stats.create_s = 1e-9 * (double)(weft_now_ns() - t0);
    if (rc == 0) /* the device's staging copies ran while HDF5 created the datasets */
        rc = weft_ckpt_staged_wait(c);
    if (rc == 0)
        rc = weft_ckpt_data_write(c, tmp);
    c->stats.data_s = 1e-9 * (double)(weft_now_ns() - t0);
    t0 = weft_now_ns();
    rc = weft_ckpt_data_check(c, tmp, rc); /* joins the write-back thread data_write started */
    c->stats.verify_s = 1e-9 * (double)(weft_now_ns() - t0);
    /* All ranks learn now whether the data is safe. If not, nothing more is
     * written, and rank 0 frees the reserve so HDF5's closing metadata flush
     * cannot fail too (a close that fails leaves HDF5 broken). */
    int all = weft_ckpt_agree(c->wcomm, rc);
    if (all) {
        rc = keep(rc, all);
        if (weft_ckpt_committer(c))
            weft_ckpt_reserve_release(c);
    }
    for (int i = 0; all == 0 && i < c->plan.nd; i++)
        if (c->dsets[i] >= 0)
            rc = keep(rc, weft_h5_attr_u64(c->dsets[i], "xxh3_64", c->hashes[i]));
    if (all == 0)
        rc = keep(rc, weft_ckpt_root_attrs(f, &c->meta, &c->layout, c->size, c->config_ini));
    if (all == 0)
        rc = keep(rc, weft_ckpt_seal_job(c, f)); /* provenance, signature: seal.c */
    if (all == 0 && c->nodefiles)
        rc = keep(rc, weft_ckpt_nodes_attrs(c, f));
    for (int i = 0; i < c->plan.nd; i++)
        if (c->dsets[i] >= 0)
            H5Dclose(c->dsets[i]);
    if (H5Fclose(f) < 0)
        rc = keep(rc, weft_h5_error(WEFT_EIO, "closing checkpoint file %s failed", tmp));
    if (rc)
        weft_ckpt_wrap(rc, "checkpoint step %lld", (long long)c->meta.step);
    return rc;
}

/* --- one save ------------------------------------------------------------- */

static size_t file_bytes_estimate(const weft_ckpt *c)
{
    size_t b = 65536 + strlen(c->config_ini); /* superblock, root attributes */
    for (int i = 0; i < c->plan.nd; i++) {
        size_t bytes = weft_ckpt_dset_bytes(&c->plan.d[i]);
        b += bytes + 1024 + (c->opts.alignment > 1 && bytes >= WEFT_H5_ALIGN_MIN(c->opts.alignment)
                             ? c->opts.alignment : 0); /* header, attribute, padding (h5.c) */
    }
    return b;
}

static int preflight(weft_ckpt *c)
{
    if (!c->opts.preflight || !weft_ckpt_committer(c))
        return 0;
    struct statvfs sv;
    if (statvfs(c->opts.dir, &sv) != 0)
        return weft_error(WEFT_EIO, "checkpoint: cannot stat %s: %s", c->opts.dir, strerror(errno));
    size_t need = file_bytes_estimate(c), avail = (size_t)sv.f_bavail * sv.f_frsize;
    if (avail < need)
        return weft_error(WEFT_EIO, "checkpoint step %lld: not enough space in %s: the file needs about %.1f MiB, "
                          "%.1f MiB are free (No space left on device); free space or lower checkpoint.keep_last",
                          (long long)c->meta.step, c->opts.dir, need / 1048576.0, avail / 1048576.0);
    return 0;
}

static int commit(weft_ckpt *c, const char *tmp, const char *name)
{
    weft_ckpt_await_release(c); /* weft_ckpt_gate: the step's metrics line first */
    int rc = weft_ckpt_agree(c->wcomm, weft_ckpt_data_writeback(c, tmp, SYNC_FILE_RANGE_WAIT_BEFORE |
                                                                     SYNC_FILE_RANGE_WRITE |
                                                                     SYNC_FILE_RANGE_WAIT_AFTER));
    if (rc)
        return rc;
    rc = c->fsyncer ? weft_durable_fsync_path(tmp) : 0;
    WEFT_CHECK(weft_ckpt_agree(c->wcomm, rc));
    weft_fault_at(WEFT_FAULT_SAVE_COMMIT, c->meta.step); /* durable, not yet renamed */
    if (!weft_ckpt_committer(c)) /* kill_save_latest on the others: while rank 0 publishes */
        weft_fault_at(WEFT_FAULT_SAVE_LATEST, c->meta.step);
    if (weft_ckpt_committer(c)) { /* with a file per node, each node's first rank in its local_dir */
        rc = weft_ckpt_publish(c->opts.dir, tmp, name, c->meta.step); /* retention: writer.c, after */
    }
    return weft_ckpt_agree(c->wcomm, rc);
}

int weft_ckpt_write_one(weft_ckpt *c)
{
    char name[64], tmp[4200];
    weft_ckpt_file_name(c->meta.step, name, sizeof name);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", c->opts.dir, name);
    weft_fault_at(WEFT_FAULT_SAVE_HOLD, c->meta.step); /* hold_save: busy until the loop reaches a step */
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid)); /* -1 is a nice value too */
    c->stats.write_nice = errno ? 0 : nice;
    int64_t t0 = weft_now_ns();
    int rc = weft_ckpt_agree(c->wcomm, preflight(c));
    if (rc == 0) {
        weft_h5_lock();
        rc = write_file(c, tmp);
        weft_h5_unlock();
        rc = weft_ckpt_agree(c->wcomm, rc);
    }
    int64_t t1 = weft_now_ns();
    if (rc == 0)
        rc = commit(c, tmp, name);
    c->stats.commit_s = 1e-9 * (double)(weft_now_ns() - t1);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (rc && weft_ckpt_committer(c)) {
        unlink(tmp);
        weft_ckpt_reserve_take(c); /* again, now that the failed file is gone */
    }
    c->stats.write_s = 1e-9 * (double)(weft_now_ns() - t0);
    if (rc == 0) {
        pthread_mutex_lock(&c->mu);
        c->last_step = c->meta.step;
        snprintf(c->last_path, sizeof c->last_path, "%s/%s", c->opts.dir, name);
        pthread_mutex_unlock(&c->mu);
        struct stat st;
        c->stats.bytes_file = stat(c->last_path, &st) == 0 ? (size_t)st.st_size : 0;
        if (c->rank == 0)
            WEFT_INFO("checkpoint step %lld committed: %s (%.1f MiB in %.2f s)", (long long)c->meta.step,
                      c->last_path, c->stats.bytes_file / 1048576.0, c->stats.write_s);
        if (c->drain)
            weft_ckpt_drain_post(c->drain, c->meta.step);
        if (c->nodefiles)
            weft_ckpt_nodes_drain(c, WEFT_CKPT_SUM_BLOCK); /* the shared tier, behind the local commit */
    }
    return rc;
}
