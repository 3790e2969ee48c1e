/*
 * nodefile.c -- the local tier on several nodes: checkpoint.local_dir on a
 * disk of each node's own (NVMe), one file per node, and the shared tier's
 * file assembled from the nodes' bytes behind the local commit.
 *
 * A save (save.c, on the writer thread of every rank):
 *   each node creates its own DIR/.step-N.h5.tmp in its local_dir with the
 *   same HDF5 calls over its own ranks (so every dataset sits at the same
 *   offset in every node's file: checked across the nodes, nodes_offsets);
 *   every rank pwrites all it holds (plan.c, nodewise: replicas on one node
 *   write the same bytes), so the node's file alone resumes its ranks; the
 *   other nodes' bytes are holes (zeros). Each dataset's xxh3_64 is the
 *   checksum of what this node's file holds of it, so the file verifies on
 *   its own (weft-ckpt verify, a resume), and the root attributes tier_node,
 *   tier_nodes, tier_ranks say that it is one node's part (load.c resumes
 *   from it only on the same layout with the same ranks on the node).
 *   Each node's first rank commits in its local_dir (rename, fsync, latest)
 *   once the node's bytes are durable; the checkpoint is committed locally
 *   when every node is (the save's agreement).
 * Then the shared tier (nodes_drain, still on the writer thread, while
 * training goes on):
 *   rank 0 copies its node's file to SHARED/.step-N.h5.tmp -> agree ->
 *   every rank of the other nodes pwrites its bytes there from staging
 *   (the same snapshot), reads them back, fdatasyncs -> agree -> the whole
 *   datasets' checksums, spread over the ranks -> rank 0 writes them and
 *   drops the tier_* attributes, fsync, rename, fsync SHARED, latest,
 *   retention -> agree. Failures are retried (checkpoint.drain_retries,
 *   0.5, 1, 2 ... s apart, all ranks together), then recorded (status.json,
 *   Prometheus: c->dst as drain.c's stats) and handled per on_error.
 * At start (nodes_catch_up): a step every node committed that the shared
 * tier lacks is read back into staging from the nodes' files and assembled
 * the same way.
 * Why on the writer thread and not a drain thread per node: every step
 * above is an agreement between nodes, and the writer's communicator
 * already carries them with comm.timeout and the watchdog; the cost is
 * that the next save waits for (or skips, checkpoint.if_busy) the shared
 * tier's write.
 */
#include "checkpoint/agree.h"
#include "checkpoint/commit.h"
#include "checkpoint/latest.h"
#include "checkpoint/h5.h"
#include "checkpoint/nodepart.h"
#include "checkpoint/writer_int.h"
#include "collectives/watchdog.h"
#include "runtime/ctx.h"
#include "runtime/durable.h"
#include "runtime/error.h"
#include "runtime/fault.h"
#include "runtime/log.h"
#include "runtime/timer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

int weft_ckpt_committer(const weft_ckpt *c) { return c->nodefiles ? c->leader : c->rank == 0; }

/* --- setup ----------------------------------------------------------------- */

/* What local_dir is: each node's first rank leaves DIR/.weft-tier-check-K,
 * every rank looks for every node's. All see all: one directory (one file,
 * as before); each sees only its own node's: one per node; else neither
 * works (some nodes share it, or a node's ranks do not). */
static int local_kind(weft_ckpt *c, int rc, int *pernode)
{
    char mark[4300];
    snprintf(mark, sizeof mark, "%s/.weft-tier-check-%d", c->opts.dir, c->node);
    if (rc == 0 && c->leader)
        close(open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0640));
    WEFT_CHECK(weft_ckpt_agree(c->layout.world, rc));
    int32_t seen[2] = {1, 1}, all[2]; /* every node's mark; only this node's */
    for (int k = 0; k < c->nnodes; k++) {
        char m[4300];
        snprintf(m, sizeof m, "%s/.weft-tier-check-%d", c->opts.dir, k);
        int here = access(m, F_OK) == 0;
        seen[0] &= here;
        seen[1] &= here == (k == c->node);
    }
    WEFT_CHECK(weft_comm_allreduce(c->layout.world, seen, all, 2, WEFT_I32, WEFT_MIN));
    WEFT_CHECK(weft_comm_barrier(c->layout.world));
    if (c->leader)
        unlink(mark);
    *pernode = !all[0] && all[1];
    if (all[0] || all[1])
        return 0;
    return weft_error(WEFT_ECONFIG, "checkpoint.local_dir %s is neither one directory every rank sees nor one "
                      "directory per node (some nodes see another node's, or the ranks of one node do not see "
                      "their own): give each node a disk of its own (node-local NVMe) or one shared by all",
                      c->opts.dir);
}

/* This node's world ranks, "0,1", for the tier_ranks attribute. */
static int node_ranks(weft_ckpt *c)
{
    int32_t *nodes = calloc((size_t)c->size, sizeof *nodes), me = c->node;
    if (!nodes)
        return weft_error(WEFT_ENOMEM, "out of memory");
    int rc = weft_comm_allgather(c->layout.world, &me, nodes, (size_t)c->size, WEFT_I32); /* total count */
    size_t at = 0;
    c->node_ranks[0] = '\0';
    for (int r = 0; rc == 0 && r < c->size; r++)
        if (nodes[r] == c->node && at + 16 < sizeof c->node_ranks)
            at += (size_t)snprintf(c->node_ranks + at, sizeof c->node_ranks - at, "%s%d", at ? "," : "", r);
    free(nodes);
    return rc;
}

int weft_ckpt_nodes_setup(weft_ckpt *c, int rc)
{
    int pernode = 0;
    WEFT_CHECK(local_kind(c, rc, &pernode));
    if (!pernode)
        return 0;
    if (c->opts.signing_key[0])
        return weft_error(WEFT_ECONFIG, "checkpoint.signing_key with a node-local checkpoint.local_dir on %d nodes: "
                          "a node's file holds part of the checkpoint, and signing its checksums is not "
                          "implemented; sign without local_dir, or use a local_dir every rank sees", c->nnodes);
    c->nodefiles = 1;
    c->multinode = 0; /* the file written is the node's own: nothing to flush for other nodes */
    if (MPI_Comm_split(c->mpi, c->node, c->rank, &c->node_mpi) != MPI_SUCCESS)
        return weft_error(WEFT_ECOMM, "checkpoint: cannot make the node communicator");
    c->dst.drained_step = c->dst.failed_step = -1;
    WEFT_CHECK(node_ranks(c));
    if (c->rank == 0)
        WEFT_INFO("checkpoint.local_dir %s is node-local on %d nodes: each node writes a file of its own there, and "
                  "the writer assembles each checkpoint in %s after the local commit", c->opts.dir, c->nnodes,
                  c->shared);
    return 0;
}

/* --- in a save ------------------------------------------------------------- */


int weft_ckpt_nodes_attrs(weft_ckpt *c, hid_t f)
{
    WEFT_CHECK(weft_h5_attr_i64(f, "tier_node", c->node));
    WEFT_CHECK(weft_h5_attr_i64(f, "tier_nodes", c->nnodes));
    return weft_h5_attr_str(f, "tier_ranks", c->node_ranks);
}

int weft_ckpt_nodes_offsets(weft_ckpt *c, int rc)
{
    int nd = c->plan.nd;
    int64_t *lo = calloc((size_t)nd + 1, sizeof *lo), *hi = calloc((size_t)nd + 1, sizeof *hi);
    if (!lo || !hi) {
        free(lo), free(hi);
        return weft_error(WEFT_ENOMEM, "out of memory"); /* WEFT_ENOMEM ends the job: no collective half done */
    }
    for (int i = 0; i < nd; i++)
        lo[i] = rc || c->dsets[i] < 0 ? -1 : (int64_t)H5Dget_offset(c->dsets[i]);
    int e = weft_comm_allreduce(c->wcomm, lo, hi, (size_t)nd, WEFT_I64, WEFT_MAX);
    if (e == 0)
        e = weft_comm_allreduce(c->wcomm, lo, lo, (size_t)nd, WEFT_I64, WEFT_MIN);
    for (int i = 0; e == 0 && i < nd; i++)
        c->offs[i] = (size_t)hi[i];
    for (int i = 0; e == 0 && rc == 0 && i < nd; i++)
        if (lo[i] != hi[i] && lo[i] >= 0)
            rc = weft_error(WEFT_EINTERNAL, "checkpoint step %lld: dataset %s is at offset %lld of one node's file "
                            "and %lld of another's: the nodes' files must have one layout (the same HDF5 library "
                            "on every node?); the shared tier cannot be assembled from them",
                            (long long)c->meta.step, c->plan.d[i].path, (long long)lo[i], (long long)hi[i]);
    free(lo);
    free(hi);
    /* The others' bytes are holes: the file must reach the last dataset's
     * end before this node's ranks read theirs back (HDF5 extends it to its
     * end of allocation only when it closes). */
    size_t end = 0;
    for (int i = 0; i < nd; i++)
        if (c->offs[i] + weft_ckpt_dset_bytes(&c->plan.d[i]) > end)
            end = c->offs[i] + weft_ckpt_dset_bytes(&c->plan.d[i]);
    struct stat sb;
    if (e == 0 && rc == 0 && c->leader && c->fd >= 0 && fstat(c->fd, &sb) == 0 && (size_t)sb.st_size < end &&
        ftruncate(c->fd, (off_t)end) != 0)
        rc = weft_error(WEFT_EIO, "checkpoint: cannot extend the node's file to %zu bytes: %s", end, strerror(errno));
    return e ? e : weft_ckpt_agree(c->wcomm, rc);
}

/* --- the shared tier --------------------------------------------------------- */

/* Rank 0: its node's file as the temporary file (metadata, node 0's bytes,
 * zeros for the others'). */
/* checkpoint.preflight: the shared tier has room for src's size. */
static int shared_space(const weft_ckpt *c, const char *src)
{
    struct stat sb;
    struct statvfs vb;
    if (!c->opts.preflight || stat(src, &sb) != 0 || statvfs(c->shared, &vb) != 0)
        return 0; /* no answer: the copy itself finds out */
    double need = (double)sb.st_size, have = (double)vb.f_bavail * (double)vb.f_frsize;
    if (need <= have)
        return 0;
    return weft_error(WEFT_EIO, "checkpoint drain of step %lld: not enough space in %s: %s needs %.1f MiB, %.1f "
                      "MiB are free (%s)", (long long)c->meta.step, c->shared, src, need / 1048576.0,
                      have / 1048576.0, strerror(ENOSPC));
}

static int copy_first(weft_ckpt *c, const char *src, const char *tmp)
{
    unlink(tmp); /* an earlier attempt's */
    WEFT_CHECK(weft_ckpt_mkdir(c->shared));
    WEFT_CHECK(shared_space(c, src));
    WEFT_CHECK(weft_durable_copy(src, tmp));
    /* On disk before the others write: a later write-back of this copy's
     * zeros must not land over their bytes. */
    WEFT_CHECK(weft_durable_fsync_path(tmp));
    int e = weft_fault_at(WEFT_FAULT_DRAIN_TRY, -1); /* fail_drain */
    if (!e)
        weft_fault_at(WEFT_FAULT_DRAIN_COPY, c->meta.step); /* kill_drain, stall_drain, hold_drain */
    return e ? weft_error(WEFT_EIO, "checkpoint drain: writing %s: %s (fault injected: fail_drain)", tmp,
                          strerror(e)) : 0;
}

/* The other nodes' ranks: their bytes into tmp at their offsets, read back
 * and compared, durable. */
static int write_part(weft_ckpt *c, const char *tmp)
{
    int fd = open(tmp, O_RDWR | O_CLOEXEC); /* never O_TRUNC: rank 0 made it */
    if (fd < 0)
        return weft_error(WEFT_EIO, "checkpoint drain: cannot open %s: %s", tmp, strerror(errno));
    const weft_ckpt_segs *v = &c->segs;
    int e = 0;
    for (int i = 0, j; i < v->n && !e; i = j) {
        size_t len, done;
        j = weft_ckpt_segs_run(v, i, &len);
        e = weft_ckpt_pwrite_all(fd, c->stage + v->s[i].mem, len, v->s[i].off, &done);
        for (size_t a = 0; a < len && !e; a += SCRATCH_BYTES) {
            size_t n = len - a < SCRATCH_BYTES ? len - a : SCRATCH_BYTES;
            e = weft_ckpt_pread_all(fd, c->scratch, n, v->s[i].off + a, &done);
            if (!e && memcmp(c->scratch, c->stage + v->s[i].mem + a, n) != 0)
                e = EIO;
        }
    }
    if (!e && fdatasync(fd) != 0)
        e = errno;
    close(fd);
    return e ? weft_error(WEFT_EIO, "checkpoint drain: writing this node's bytes into %s: %s", tmp, strerror(e))
             : 0;
}

/* Every dataset's checksum over the whole assembled file (in blocks of
 * block bytes, sum.h), dataset i by rank i % size, summed. */
static int whole_hashes(weft_ckpt *c, const char *tmp, size_t block)
{
    memset(c->hashes, 0, (size_t)c->plan.nd * sizeof *c->hashes);
    int fd = open(tmp, O_RDONLY | O_CLOEXEC), rc = 0; /* opened after the others' bytes are durable */
    if (fd < 0)
        rc = weft_error(WEFT_EIO, "checkpoint drain: cannot open %s: %s", tmp, strerror(errno));
    for (int i = 0; rc == 0 && i < c->plan.nd; i++) {
        if (i % c->size != c->rank)
            continue;
        int e = weft_ckpt_pread_hash(fd, c->offs[i], weft_ckpt_dset_bytes(&c->plan.d[i]), c->scratch, SCRATCH_BYTES,
                                     block, &c->hashes[i]);
        if (e)
            rc = weft_error(WEFT_EIO, "checkpoint drain: %s: cannot read it from %s: %s", c->plan.d[i].path, tmp,
                            strerror(e));
    }
    if (fd >= 0)
        close(fd);
    rc = weft_ckpt_agree(c->wcomm, rc);
    return rc ? rc : weft_comm_allreduce(c->wcomm, c->hashes, c->hashes, (size_t)c->plan.nd, WEFT_I64, WEFT_SUM);
}

/* Rank 0: the whole file's checksums in place of node 0's, the node
 * attributes gone: a file as one tier writes it. */
static int rewrite_attrs(weft_ckpt *c, const char *tmp)
{
    weft_h5_lock();
    hid_t fapl = weft_h5_fapl(MPI_COMM_NULL, NULL);
    hid_t f = H5Fopen(tmp, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    int rc = f < 0 ? weft_h5_error(WEFT_EIO, "checkpoint drain: cannot open %s", tmp) : 0;
    for (int i = 0; rc == 0 && i < c->plan.nd; i++) {
        hid_t d = H5Dopen2(f, c->plan.d[i].path, H5P_DEFAULT);
        rc = d < 0 ? weft_h5_error(WEFT_EIO, "checkpoint drain: no dataset %s in %s", c->plan.d[i].path, tmp)
                   : weft_h5_attr_u64(d, "xxh3_64", c->hashes[i]);
        if (d >= 0)
            H5Dclose(d);
    }
    static const char *const tier[] = {"tier_node", "tier_nodes", "tier_ranks"};
    for (int k = 0; rc == 0 && k < 3; k++)
        if (H5Adelete(f, tier[k]) < 0)
            rc = weft_h5_error(WEFT_EIO, "checkpoint drain: cannot remove attribute %s of %s", tier[k], tmp);
    if (f >= 0 && H5Fclose(f) < 0)
        rc = rc ? rc : weft_h5_error(WEFT_EIO, "checkpoint drain: closing %s failed", tmp);
    weft_h5_unlock();
    return rc;
}

/* One attempt, collective. */
static int assemble(weft_ckpt *c, const char *name, const char *tmp, size_t block)
{
    char src[4300];
    snprintf(src, sizeof src, "%s/%s", c->opts.dir, name);
    int rc = weft_ckpt_agree(c->wcomm, c->rank == 0 ? copy_first(c, src, tmp) : 0);
    if (rc == 0)
        rc = weft_ckpt_agree(c->wcomm, c->node != 0 ? write_part(c, tmp) : 0);
    if (rc == 0)
        rc = whole_hashes(c, tmp, block);
    if (rc == 0 && c->rank == 0) {
        rc = rewrite_attrs(c, tmp);
        if (rc == 0)
            rc = weft_ckpt_publish(c->shared, tmp, name, c->meta.step);
        if (rc == 0 && weft_ckpt_retain(c->shared, c->shared_keep_last, c->shared_keep_every,
                                        c->meta.step) != 0)
            WEFT_WARN("%s", weft_last_error());
    }
    rc = weft_ckpt_agree(c->wcomm, rc);
    if (rc && c->rank == 0)
        unlink(tmp);
    return rc;
}

static void record(weft_ckpt *c, int rc, int attempts, double secs, const char *tmp)
{
    char why[900];
    snprintf(why, sizeof why, "%s", rc ? weft_last_error() : "");
    pthread_mutex_lock(&c->mu);
    if (rc == 0) {
        c->dst.drained_step = c->meta.step;
        c->dst.drained++;
        c->dst.last_s = secs;
        c->dst.last_bytes = c->stats.bytes_file;
        c->dst.error[0] = '\0';
    } else {
        c->dst.failed++;
        c->dst.failed_step = c->meta.step;
        snprintf(c->dst.error, sizeof c->dst.error, "step %lld: %s", (long long)c->meta.step, why);
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->rank != 0)
        return;
    if (rc == 0)
        WEFT_INFO("checkpoint step %lld assembled in %s from %d nodes (%.2f s)", (long long)c->meta.step,
                  c->shared, c->nnodes, secs);
    else
        WEFT_ERROR("checkpoint step %lld could not be assembled in %s after %d attempt%s: %s; it is on the nodes' "
                   "local tiers only (%s)", (long long)c->meta.step, c->shared, attempts, attempts == 1 ? "" : "s",
                   why, tmp);
}

void weft_ckpt_nodes_drain(weft_ckpt *c, size_t block)
{
    char name[64], tmp[4300];
    weft_ckpt_file_name(c->meta.step, name, sizeof name);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", c->shared, name);
    int64_t t0 = weft_now_ns();
    int rc = 0, attempt;
    for (attempt = 1;; attempt++) {
        if ((rc = assemble(c, name, tmp, block)) == 0 || attempt > c->opts.drain_retries)
            break;
        double wait = 0.5 * (double)(1 << (attempt - 1 < 20 ? attempt - 1 : 20));
        if (c->rank == 0)
            WEFT_WARN("checkpoint drain of step %lld to %s failed (attempt %d of %d): %s; retrying in %.1f s",
                      (long long)c->meta.step, c->shared, attempt, c->opts.drain_retries + 1, weft_last_error(),
                      wait);
        pthread_mutex_lock(&c->mu);
        c->dst.retried++;
        pthread_mutex_unlock(&c->mu);
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        nanosleep(&ts, NULL); /* a retry's delay, the same on every rank; the attempt agrees again */
    }
    record(c, rc, attempt, 1e-9 * (double)(weft_now_ns() - t0), tmp);
}

/* --- catching up at start ------------------------------------------------------ */

/* This node's committed file of a step back into staging, as the save had
 * it: every dataset's offset and checksum, this rank's segments read from
 * it, and the node's datasets verified by its ranks in turn; *block: its
 * checksum block (sum.h; an older weft's file: 0), the assembled file's. */
static int load_part(weft_ckpt *c, const char *path, size_t *block)
{
    weft_h5_lock();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    int rc = f < 0 ? weft_h5_error(WEFT_EDATA, "checkpoint %s cannot be opened", path) : 0;
    rc = rc ? rc : weft_ckpt_sum_block_of(f, path, block);
    for (int i = 0; rc == 0 && i < c->plan.nd; i++) {
        hid_t d = H5Dopen2(f, c->plan.d[i].path, H5P_DEFAULT);
        haddr_t a = d >= 0 ? H5Dget_offset(d) : HADDR_UNDEF;
        rc = a == HADDR_UNDEF ? weft_h5_error(WEFT_EDATA, "checkpoint %s: no dataset %s", path, c->plan.d[i].path)
                              : weft_h5_get_u64(d, "xxh3_64", &c->hashes[i]);
        c->offs[i] = (size_t)a;
        if (d >= 0)
            H5Dclose(d);
    }
    if (f >= 0)
        H5Fclose(f);
    weft_h5_unlock();
    c->segs.n = 0;
    for (int i = 0; rc == 0 && i < c->plan.nd; i++) {
        const weft_ckpt_dset *d = &c->plan.d[i];
        if (d->nrect)
            rc = weft_ckpt_segs_add(&c->segs, d->ndim, d->shape, d->esize, d->rects, d->nrect, c->offs[i],
                                    d->stage_off, i);
    }
    weft_ckpt_segs_sort(&c->segs);
    int fd = rc ? -1 : open(path, O_RDONLY | O_CLOEXEC), lr, ln, e = 0;
    if (rc == 0 && fd < 0)
        return weft_error(WEFT_EIO, "checkpoint: cannot open %s: %s", path, strerror(errno));
    MPI_Comm_rank(c->node_mpi, &lr);
    MPI_Comm_size(c->node_mpi, &ln);
    for (int i = 0; rc == 0 && !e && i < c->segs.n; i++) {
        size_t done;
        e = weft_ckpt_pread_all(fd, c->stage + c->segs.s[i].mem, c->segs.s[i].len, c->segs.s[i].off, &done);
    }
    for (int i = lr; rc == 0 && !e && i < c->plan.nd; i += ln) {
        uint64_t have;
        e = weft_ckpt_pread_hash(fd, c->offs[i], weft_ckpt_dset_bytes(&c->plan.d[i]), c->scratch, SCRATCH_BYTES,
                                 *block, &have);
        if (!e && have != c->hashes[i])
            rc = weft_error(WEFT_EDATA, "checkpoint %s: tensor '%s' fails its checksum: the node's file is corrupt",
                            path, c->plan.d[i].path);
    }
    if (fd >= 0)
        close(fd);
    return rc ? rc : e ? weft_error(WEFT_EIO, "checkpoint: reading %s: %s", path, strerror(e)) : 0;
}

void weft_ckpt_nodes_catch_up(weft_ckpt *c)
{
    int64_t mine = weft_ckpt_latest_step(c->opts.dir), lo, hi, shared = c->rank == 0 ? weft_ckpt_latest_step(c->shared) : -1;
    if (weft_comm_allreduce(c->wcomm, &mine, &lo, 1, WEFT_I64, WEFT_MIN) != 0 ||
        weft_comm_allreduce(c->wcomm, &mine, &hi, 1, WEFT_I64, WEFT_MAX) != 0 ||
        weft_comm_broadcast(c->wcomm, &shared, &shared, 1, WEFT_I64, 0) != 0 || lo != hi || lo <= shared)
        return; /* not every node holds the same newest step, or the shared tier has it */
    char name[64], path[4300];
    weft_ckpt_file_name(lo, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", c->opts.dir, name);
    int64_t node;
    weft_h5_lock();
    int rc = weft_ckpt_node_part(path, &c->layout, c->rank, c->size, &node);
    weft_h5_unlock();
    size_t block = 0;
    rc = weft_ckpt_agree(c->wcomm, rc ? rc : load_part(c, path, &block));
    if (rc) {
        if (c->rank == 0)
            WEFT_WARN("checkpoint step %lld is on every node's local tier but not in %s, and cannot be assembled "
                      "there: %s; the next checkpoint goes there", (long long)lo, c->shared, weft_last_error());
        return;
    }
    if (c->rank == 0)
        WEFT_INFO("checkpoint step %lld is on every node's local tier but not in %s (latest: %s): assembling it",
                  (long long)lo, c->shared, shared >= 0 ? "older" : "none");
    struct stat sb;
    c->meta.step = lo;
    c->stats.bytes_file = stat(path, &sb) == 0 ? (size_t)sb.st_size : 0;
    weft_ckpt_nodes_drain(c, block);
}
