/*
 * save.c -- one save, on the writer thread, from staging to a committed
 * file (see checkpoint-format.md):
 *   preflight (free space) -> create the temporary file collectively ->
 *   reserve its blocks (rank 0, fallocate) -> for each dataset: create,
 *   write this rank's hyperslab union (collective) -> every rank reads back
 *   and compares what it wrote -> checksums (from staging where a rank wrote
 *   a whole dataset, else read back by one rank) -> agree -> attributes ->
 *   close -> agree -> fsync -> agree -> rank 0 renames, fsyncs the
 *   directory, updates latest, applies retention -> agree -> committed.
 * Every rank goes through the same collective calls even after a local
 * error (recorded, then agreed on), so a failure never leaves ranks waiting
 * in different collectives; a full disk is caught before HDF5 writes.
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
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

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

static hid_t file_type(int kind)
{
    return kind == WEFT_CKPT_LOADER ? H5T_STD_U8LE : kind == WEFT_CKPT_RNG ? H5T_STD_U64LE : H5T_IEEE_F32LE;
}

static hid_t mem_type(int kind)
{
    return kind == WEFT_CKPT_LOADER ? H5T_NATIVE_UINT8 : kind == WEFT_CKPT_RNG ? H5T_NATIVE_UINT64 : H5T_NATIVE_FLOAT;
}

/* Keep the first error; later ones only add to the log. */
static int keep(int rc, int now) { return rc ? rc : now; }

static int write_data(weft_ckpt *c, hid_t f, hid_t dxpl)
{
    int rc = 0;
    for (int i = 0; i < c->plan.nd; i++) {
        const weft_ckpt_dset *d = &c->plan.d[i];
        c->dsets[i] = weft_h5_create(f, d->path, file_type(d->kind), d->ndim, d->shape);
        if (c->dsets[i] < 0) {
            rc = keep(rc, weft_h5_error(WEFT_EIO, "cannot create dataset %s", d->path));
            continue;
        }
        hid_t fs = weft_h5_select(d->ndim, d->shape, d->rects, d->nrect), ms = weft_h5_memspace(d->count);
        if (H5Dwrite(c->dsets[i], mem_type(d->kind), ms, fs, dxpl, c->stage + d->stage_off) < 0)
            rc = keep(rc, weft_h5_error(WEFT_EIO, "writing %s failed", d->path));
        H5Sclose(fs);
        H5Sclose(ms);
        /* enospc_save, eio_save: the write still happens (collective transfers
         * need every rank in them), then reports the error a full or failing
         * disk would. */
        int err = weft_fault_at(WEFT_FAULT_SAVE_WRITE, c->meta.step);
        if (err)
            rc = keep(rc, weft_error(WEFT_EIO, "writing %s failed: %s (injected: WEFT_FAULT)", d->path,
                                     strerror(err)));
        if (i == 0) /* kill_save_data: one dataset in the file, the rest not */
            weft_fault_at(WEFT_FAULT_SAVE_DATA, c->meta.step);
    }
    return rc;
}

/* Read back run u of dataset d in pieces that fit the scratch buffer and
 * compare with staging: MPI-IO can lose a failed write (a full disk) without
 * reporting it, and a checkpoint must never be committed on that. */
static int verify_run(weft_ckpt *c, int i, const weft_ckpt_run *u, XXH3_state_t *h)
{
    const weft_ckpt_dset *d = &c->plan.d[i];
    size_t step = SCRATCH_BYTES / d->esize;
    weft_ckpt_rect rects[64];
    if (weft_ckpt_region_cap(&u->spec) > 64)
        return weft_error(WEFT_EINTERNAL, "checkpoint: %s: too many blocks", d->path);
    for (size_t a = u->a; a < u->b; a += step) {
        size_t b = a + step < u->b ? a + step : u->b;
        int n = weft_ckpt_region(&u->spec, a, b, rects);
        hid_t fs = weft_h5_select(d->ndim, d->shape, rects, n), ms = weft_h5_memspace(b - a);
        herr_t r = H5Dread(c->dsets[i], mem_type(d->kind), ms, fs, H5P_DEFAULT, c->scratch);
        H5Sclose(fs);
        H5Sclose(ms);
        const uint8_t *want = c->stage + d->stage_off + u->stage_rel + (a - u->a) * d->esize;
        if (r < 0 || memcmp(c->scratch, want, (b - a) * d->esize) != 0)
            return weft_h5_error(WEFT_EIO, "%s: the data read back differs from what was written (elements %zu..%zu "
                                 "of this rank's part): the write was lost (disk full? I/O error?)", d->path, a, b);
        if (h) /* the checksum of what the file holds, from the same read (still in cache) */
            XXH3_64bits_update(h, c->scratch, (b - a) * d->esize);
    }
    return 0;
}

/* Every rank reads back what it wrote; a rank that wrote all of a dataset
 * hashes the bytes it read back in the same pass (runs are in row-major
 * order: region.h). */
static int verify_written(weft_ckpt *c)
{
    XXH3_state_t h;
    for (int i = 0; i < c->plan.nd; i++) {
        const weft_ckpt_dset *d = &c->plan.d[i];
        int hash = d->hasher && d->whole;
        XXH3_64bits_reset(&h);
        for (int j = 0; c->dsets[i] >= 0 && j < d->nruns; j++)
            WEFT_CHECK(verify_run(c, i, &d->runs[j], hash ? &h : NULL));
        if (hash)
            c->hashes[i] = XXH3_64bits_digest(&h);
    }
    return 0;
}

/* This rank's file bytes of each dataset, [lo, hi) from its rectangles
 * (contiguous datasets: base address + row-major element offsets). */
static void find_spans(weft_ckpt *c)
{
    for (int i = 0; i < c->plan.nd; i++) {
        const weft_ckpt_dset *d = &c->plan.d[i];
        c->spans[i][0] = c->spans[i][1] = 0;
        haddr_t base = c->dsets[i] >= 0 && d->nrect ? H5Dget_offset(c->dsets[i]) : HADDR_UNDEF;
        if (base == HADDR_UNDEF)
            continue;
        size_t cols = d->ndim == 2 ? (size_t)d->shape[1] : 1, lo = SIZE_MAX, hi = 0;
        for (int k = 0; k < d->nrect; k++) {
            const weft_ckpt_rect *r = &d->rects[k];
            size_t a = (size_t)r->start[0] * cols + (size_t)r->start[1];
            size_t b = (size_t)(r->start[0] + r->count[0] - 1) * cols + (size_t)(r->start[1] + r->count[1]);
            lo = a < lo ? a : lo;
            hi = b > hi ? b : hi;
        }
        c->spans[i][0] = (size_t)base + lo * d->esize;
        c->spans[i][1] = (size_t)base + hi * d->esize;
    }
}

/* This rank's bytes of tmp to disk: start the writeback (flags
 * SYNC_FILE_RANGE_WRITE, right after the data writes, so the disk works
 * while the read-back runs), or finish it (WAIT_BEFORE | WRITE |
 * WAIT_AFTER, before the commit). Every rank writes back its own part at
 * once, as dd + fsync per rank does; the fsync at commit is left with
 * HDF5's metadata. */
static int writeback(weft_ckpt *c, const char *tmp, unsigned flags)
{
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return weft_error(WEFT_EIO, "checkpoint: cannot open %s: %s", tmp, strerror(errno));
    int rc = 0;
    for (int i = 0; i < c->plan.nd && rc == 0; i++) {
        size_t lo = c->spans[i][0], hi = c->spans[i][1];
        while (i + 1 < c->plan.nd && c->spans[i + 1][1] > c->spans[i + 1][0] && c->spans[i + 1][0] >= hi &&
               c->spans[i + 1][0] - hi < 65536) /* neighbours: one call */
            hi = c->spans[++i][1];
        if (hi > lo && sync_file_range(fd, (off_t)lo, (off_t)(hi - lo), flags) != 0 && errno != ENOSYS)
            rc = weft_error(WEFT_EIO, "checkpoint: writing %s back to disk failed: %s", tmp, strerror(errno));
    }
    close(fd);
    return rc;
}

/* Each dataset's hash is computed by one rank, then shared. */
static int checksums(weft_ckpt *c, hid_t f)
{
    (void)f;
    /* No H5Fflush here: the raw data went straight to MPI-IO, and a metadata
     * flush failing on one rank only would leave the ranks in different
     * collectives. A barrier is enough for read-backs to see every write.
     * On the writer's weft communicator, not raw MPI: a rank stopped in the
     * data phase must meet comm.timeout and the watchdog here, not hang the
     * job (found by stall_save_data, tests/ckpt/test_faults.sh). */
    int brc = weft_comm_barrier(c->wcomm);
    if (brc)
        return brc;
    memset(c->hashes, 0, (size_t)c->plan.nd * sizeof *c->hashes);
    int rc = verify_written(c);
    for (int i = 0; i < c->plan.nd; i++) {
        const weft_ckpt_dset *d = &c->plan.d[i];
        if (d->hasher && !d->whole && c->dsets[i] >= 0)
            rc = keep(rc, weft_h5_checksum(c->dsets[i], d->path, c->scratch, SCRATCH_BYTES, &c->hashes[i]));
    }
    rc = keep(rc, weft_comm_allreduce(c->wcomm, c->hashes, c->hashes,
                                      (size_t)c->plan.nd, WEFT_I64, WEFT_SUM));
    return rc;
}

int weft_ckpt_root_attrs(hid_t f, const weft_ckpt_meta *m, const weft_ckpt_layout *l, int world,
                         const char *config_ini)
{
    char layout[128];
    snprintf(layout, sizeof layout, "world=%d dp=%d tp=%d pp=%d zero=%d", world, l->dp_size, l->tp_size,
             l->pp_size, l->zero);
    int rc = 0;
    rc = keep(rc, weft_h5_attr_str(f, "format", "weft-checkpoint"));
    rc = keep(rc, weft_h5_attr_i64(f, "format_version", 1));
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
    weft_h5_tuning tune = {c->opts.collective, c->opts.coll_metadata, c->opts.alignment};
    hid_t fapl = weft_h5_fapl(c->mpi, &tune);
    weft_fault_at(WEFT_FAULT_SAVE_OPEN, c->meta.step); /* kill_save_open, stall_save_open: the others in MPI-IO */
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0)
        return weft_h5_error(WEFT_EIO, "cannot create checkpoint file %s", tmp);
    /* Reserve the whole file's blocks before writing: a full disk then fails
     * here, cleanly, and never in the middle of HDF5's collective writes. */
    int rc = weft_ckpt_agree(c->wcomm, c->rank == 0 ? reserve_file(c, tmp) : 0);
    if (rc) {
        if (c->rank == 0)
            weft_ckpt_reserve_release(c); /* room for the superblock HDF5 writes at close */
        H5Fclose(f);
        return rc;
    }
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(dxpl, c->opts.collective ? H5FD_MPIO_COLLECTIVE : H5FD_MPIO_INDEPENDENT);
    int64_t t0 = weft_now_ns();
    rc = write_data(c, f, dxpl);
    c->stats.data_s = 1e-9 * (double)(weft_now_ns() - t0);
    H5Pclose(dxpl);
    find_spans(c);
    if (rc == 0)
        rc = writeback(c, tmp, SYNC_FILE_RANGE_WRITE);
    t0 = weft_now_ns();
    rc = keep(rc, checksums(c, f));
    c->stats.verify_s = 1e-9 * (double)(weft_now_ns() - t0);
    /* All ranks learn now whether the data is safe. If not, nothing more is
     * written, and rank 0 frees the reserve so HDF5's closing metadata flush
     * cannot fail too (a close that fails leaves HDF5 broken). */
    int all = weft_ckpt_agree(c->wcomm, rc);
    if (all) {
        rc = keep(rc, all);
        if (c->rank == 0)
            weft_ckpt_reserve_release(c);
    }
    for (int i = 0; all == 0 && i < c->plan.nd; i++)
        if (c->dsets[i] >= 0)
            rc = keep(rc, weft_h5_attr_u64(c->dsets[i], "xxh3_64", c->hashes[i]));
    if (all == 0)
        rc = keep(rc, weft_ckpt_root_attrs(f, &c->meta, &c->layout, c->size, c->config_ini));
    if (all == 0)
        rc = keep(rc, weft_ckpt_seal_job(c, f)); /* provenance, signature: seal.c */
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
        const weft_ckpt_dset *d = &c->plan.d[i];
        size_t bytes = (size_t)d->shape[0] * (size_t)(d->ndim == 2 ? d->shape[1] : 1) * d->esize;
        b += bytes + 1024 + (c->opts.alignment > 1 && bytes >= WEFT_H5_ALIGN_MIN(c->opts.alignment)
                             ? c->opts.alignment : 0); /* header, attribute, padding (h5.c) */
    }
    return b;
}

static int preflight(weft_ckpt *c)
{
    if (!c->opts.preflight || c->rank != 0)
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
    int rc = weft_ckpt_agree(c->wcomm, writeback(c, tmp, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                                         SYNC_FILE_RANGE_WAIT_AFTER));
    if (rc)
        return rc;
    rc = c->fsyncer ? weft_durable_fsync_path(tmp) : 0;
    WEFT_CHECK(weft_ckpt_agree(c->wcomm, rc));
    weft_fault_at(WEFT_FAULT_SAVE_COMMIT, c->meta.step); /* durable, not yet renamed */
    if (c->rank != 0) /* kill_save_latest on the others: while rank 0 publishes */
        weft_fault_at(WEFT_FAULT_SAVE_LATEST, c->meta.step);
    if (c->rank == 0) {
        rc = weft_ckpt_publish(c->opts.dir, tmp, name, c->meta.step);
        if (rc == 0 && weft_ckpt_retain(c->opts.dir, c->opts.keep_last, c->opts.keep_every, c->meta.step) != 0)
            WEFT_WARN("%s", weft_last_error()); /* an old file left over is no failure of this save */
    }
    return weft_ckpt_agree(c->wcomm, rc);
}

int weft_ckpt_write_one(weft_ckpt *c)
{
    char name[64], tmp[4200];
    weft_ckpt_file_name(c->meta.step, name, sizeof name);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", c->opts.dir, name);
    weft_fault_at(WEFT_FAULT_SAVE_HOLD, c->meta.step); /* hold_save: busy until the loop reaches a step */
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
    if (rc && c->rank == 0) {
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
    }
    return rc;
}
