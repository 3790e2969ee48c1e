/*
 * save_data.c -- a save's data phase, on the writer thread (save.c runs the
 * rest): every dataset created in one pass (HDF5 metadata only), then this
 * rank's bytes written with pwrite at their file offsets through one
 * descriptor; behind the pwrites a thread of its own (flusher.h) starts
 * their write-back to disk and, a few pieces further behind, waits for it,
 * reads the bytes back (mapped), compares and hashes them in one pass, and
 * drops them from the page cache (check_piece).
 *
 * Why POSIX writes: HDF5's MPI-IO data path was one collective
 * H5Dcreate + H5Dwrite synchronisation per dataset (~170 per save), so one
 * slow rank held every other at each tensor. Here ranks write disjoint
 * byte ranges of one file, and nothing waits for another rank except the
 * barrier before datasets split between ranks are hashed. (That
 * synchronisation was taken for the save's bottleneck; measured, it was
 * not: quiet, the read-back and the write-back are -- bench/README.md,
 * bench_ckpt. rawdata.h says why the file stays a standard HDF5 file.)
 */
#include "checkpoint/agree.h"
#include "checkpoint/h5.h"
#include "checkpoint/writer_int.h"
#include "runtime/error.h"
#include "runtime/fault.h"
#include "runtime/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static hid_t file_type(int kind)
{
    return kind == WEFT_CKPT_LOADER ? H5T_STD_U8LE : kind == WEFT_CKPT_RNG ? H5T_STD_U64LE : H5T_IEEE_F32LE;
}

/* Keep the first error; later ones only add to the log. */
static int keep(int rc, int now) { return rc ? rc : now; }

/* Every dataset, then this rank's segments: each dataset's address (its
 * space is allocated at creation) plus its rectangles' byte offsets. */
int weft_ckpt_data_create(weft_ckpt *c, hid_t f)
{
    int rc = 0;
    c->segs.n = 0;
    for (int i = 0; i < c->plan.nd; i++) {
        const weft_ckpt_dset *d = &c->plan.d[i];
        c->dsets[i] = weft_h5_create(f, d->path, file_type(d->kind), d->ndim, d->shape);
        if (c->dsets[i] < 0)
            rc = keep(rc, weft_h5_error(WEFT_EIO, "cannot create dataset %s", d->path));
    }
    for (int i = 0; i < c->plan.nd && rc == 0; i++) {
        const weft_ckpt_dset *d = &c->plan.d[i];
        haddr_t base = H5Dget_offset(c->dsets[i]);
        c->offs[i] = (size_t)base; /* where the split datasets' blocks lie (nodefile.c checks them across nodes) */
        if (d->nrect == 0)
            continue;
        if (base == HADDR_UNDEF)
            return weft_h5_error(WEFT_EINTERNAL, "checkpoint: dataset %s has no file address (its space is not "
                                 "allocated)", d->path);
        rc = weft_ckpt_segs_add(&c->segs, d->ndim, d->shape, d->esize, d->rects, d->nrect, (size_t)base,
                                d->stage_off, i);
    }
    weft_ckpt_segs_sort(&c->segs);
    return rc;
}

/* The dataset holding file byte off of run [i, j). */
static int dset_at(const weft_ckpt_segs *v, int i, int j, size_t off)
{
    for (int k = i; k < j; k++)
        if (off < v->s[k].off + v->s[k].len)
            return v->s[k].dset;
    return v->s[j - 1].dset;
}

static int write_error(weft_ckpt *c, const char *tmp, int i, int j, int err, size_t len, size_t done,
                       int injected)
{
    const weft_ckpt_segs *v = &c->segs;
    size_t at = v->s[i].off + done;
    const char *path = c->plan.d[dset_at(v, i, j, at)].path;
    if (done && injected) /* short_save: what a disk that stops taking bytes does */
        return weft_error(WEFT_EIO, "writing %s failed: %s (short write: %zu of %zu bytes at offset %zu of %s; "
                          "injected: WEFT_FAULT)", path, strerror(err), done, len, v->s[i].off, tmp);
    return weft_error(WEFT_EIO, "writing %s failed: %s (pwrite of %zu bytes at offset %zu of %s%s)", path,
                      strerror(err), len - done, at, tmp, injected ? "; injected: WEFT_FAULT" : "");
}

/* The writer publishes its progress to the flusher in pieces this large:
 * the disk starts on the first 16 MiB while the rest is copied. */
enum { PUBLISH_PIECE = 16u << 20 };

/* Run [i, j) from staging to the file in PUBLISH_PIECE pieces, each
 * published once written: 0, an errno, or -1 when the flusher has stopped
 * on a failure of its own (it reports it); *done: bytes written. */
static int write_run(weft_ckpt *c, int i, size_t len, size_t *done)
{
    const weft_ckpt_seg *s = &c->segs.s[i];
    *done = 0;
    for (size_t a = 0; a < len;) {
        size_t n = len - a < PUBLISH_PIECE ? len - a : PUBLISH_PIECE, d;
        int err = weft_ckpt_pwrite_all(c->fd, c->stage + s->mem + a, n, s->off + a, &d);
        *done += d;
        if (err)
            return err;
        if (weft_ckpt_flusher_publish(&c->flusher, n) != 0)
            return -1;
        a += n;
    }
    return 0;
}

static int check_piece(void *ctx, size_t pos, size_t n);

int weft_ckpt_data_write(weft_ckpt *c, const char *tmp)
{
    const weft_ckpt_segs *v = &c->segs;
    int rc = 0;
    /* The sums the check fills in as it reads back (check_piece) */
    memset(c->hashes, 0, (size_t)c->plan.nd * sizeof *c->hashes);
    memset(c->blocks, 0, 2 * c->plan.nblocks * sizeof *c->blocks);
    for (int i = 0; i < c->plan.nd; i++)
        if (c->plan.d[i].hasher && c->plan.d[i].whole) /* empty datasets keep the checksum of no bytes */
            c->hashes[i] = weft_ckpt_sum_of(NULL, 0, WEFT_CKPT_SUM_BLOCK);
    c->readback = (weft_ckpt_readback){.tmp = tmp, .cur = -1, .bdset = -1};
    c->stats.bytes_kept = 0;
    if (weft_ckpt_flusher_start(&c->flusher, v, c->fd, NULL, check_piece, c) != 0) /* ended in data_check */
        WEFT_WARN("%s; the writer's thread writes the checkpoint back and checks it at the end instead",
                  weft_last_error());
    for (int i = 0, j; i < v->n && rc == 0; i = j) {
        size_t len, done = 0;
        j = weft_ckpt_segs_run(v, i, &len);
        /* enospc_save, eio_save: the disk refuses this write; short_save:
         * it takes half of it, then no more. */
        int err = weft_fault_at(WEFT_FAULT_SAVE_WRITE, c->meta.step), injected = err != 0;
        int cut = !err && weft_fault_at(WEFT_FAULT_SAVE_SHORT, c->meta.step);
        /* lost_save: the write "succeeds" and nothing reaches the file, as
         * MPI-IO once did; only the read-back can catch it */
        int lost = !err && !cut && i == 0 && weft_fault_at(WEFT_FAULT_SAVE_LOST, c->meta.step);
        if (!err && !lost)
            err = write_run(c, i, cut ? len / 2 : len, &done);
        if (lost && weft_ckpt_flusher_publish(&c->flusher, len) != 0) /* "written", as far as the writer knows */
            err = -1;
        if (err == -1) /* the flusher stopped on a failed write-back or check: data_check reports it */
            break;
        if (!err && cut)
            err = EIO, injected = 1;
        if (err)
            rc = write_error(c, tmp, i, j, err, len, done, injected);
        if (i == 0) /* kill_save_data: one write in the file, the rest not */
            weft_fault_at(WEFT_FAULT_SAVE_DATA, c->meta.step);
    }
    if (v->n == 0)
        weft_fault_at(WEFT_FAULT_SAVE_DATA, c->meta.step);
    return rc;
}

/* --- read-back check, behind the write-back (flusher.h) -------------------- */

/* Bytes of dataset dset at file offset off, in file order, into the sums:
 * the dataset a rank hashes whole (it wrote all of it), and the blocks
 * (sum.h) of a split dataset that it wrote all of -- one dataset at a
 * time: segments are sorted by offset and datasets' extents are disjoint. */
static void hash_bytes(weft_ckpt *c, int dset, size_t off, const void *p, size_t n)
{
    weft_ckpt_readback *r = &c->readback;
    const weft_ckpt_dset *d = &c->plan.d[dset];
    if (d->split) {
        if (dset != r->bdset)
            weft_ckpt_blocks_begin(&r->blocks, WEFT_CKPT_SUM_BLOCK, weft_ckpt_dset_bytes(d), c->blocks + d->block0,
                                   c->blocks + c->plan.nblocks + d->block0);
        r->bdset = dset;
        weft_ckpt_blocks_update(&r->blocks, off - c->offs[dset], p, n);
        return;
    }
    if (!d->hasher || !d->whole)
        return;
    if (dset != r->cur) {
        if (r->cur >= 0)
            c->hashes[r->cur] = weft_ckpt_sum_end(&r->whole);
        weft_ckpt_sum_begin(&r->whole, WEFT_CKPT_SUM_BLOCK);
        r->cur = dset;
    }
    weft_ckpt_sum_update(&r->whole, p, n);
}

/* The lost-write error for n bytes at file offset at, of segment k. */
static int lost_write(weft_ckpt *c, int k, size_t at, size_t n, int e)
{
    return weft_error(WEFT_EIO, "%s: the data read back from %s at offset %zu (%zu bytes) differs from what was "
                      "written%s%s: the write was lost (disk full? I/O error?)", c->plan.d[c->segs.s[k].dset].path,
                      c->readback.tmp, at, n, e ? ": " : "", e ? strerror(e) : "");
}

enum { PIECE = 256u << 10 }; /* compared and hashed while in L2 */

/* Bytes [a, a + n) of segment k as read back at file: compared with
 * staging and hashed, PIECE by PIECE while the piece is in cache -- the
 * bytes cross memory once. */
static int compare_and_hash(weft_ckpt *c, int k, size_t a, size_t n, const uint8_t *file)
{
    const weft_ckpt_seg *s = &c->segs.s[k];
    for (size_t b = 0; b < n; b += PIECE) {
        size_t m = n - b < PIECE ? n - b : PIECE;
        if (memcmp(file + b, c->stage + s->mem + a + b, m) != 0)
            return lost_write(c, k, s->off + a + b, m, 0);
        hash_bytes(c, s->dset, s->off + a + b, file + b, m);
    }
    return 0;
}

/* Bytes [a, a + n) of segment k read back with pread in scratch-sized
 * pieces: the way for a file system that cannot map the file, and for
 * runs of the rank's bytes too short to be worth a mapping (MAP_MIN). */
static int read_back_pread(weft_ckpt *c, int k, size_t a, size_t n)
{
    const weft_ckpt_seg *s = &c->segs.s[k];
    for (size_t b = 0; b < n; b += SCRATCH_BYTES) {
        size_t m = n - b < SCRATCH_BYTES ? n - b : SCRATCH_BYTES, done;
        int e = weft_ckpt_pread_all(c->fd, c->scratch, m, s->off + a + b, &done);
        if (e || done < m)
            return lost_write(c, k, s->off + a + b, m, e);
        WEFT_CHECK(compare_and_hash(c, k, a + b, m, c->scratch));
    }
    return 0;
}

/* The file range [*lo, *hi) of this rank's run of split dataset bytes that
 * segment k is in: the segments of its dataset adjacent to it in the file
 * (ZeRO's cut writes one run in up to three: a partial first row, whole
 * rows, a partial last row; a TP shard's rows are a run each). */
static void run_of(const weft_ckpt_segs *v, int k, size_t *lo, size_t *hi)
{
    int a = k, b = k;
    while (a > 0 && v->s[a - 1].dset == v->s[k].dset && v->s[a - 1].off + v->s[a - 1].len == v->s[a].off)
        a--;
    while (b + 1 < v->n && v->s[b + 1].dset == v->s[k].dset && v->s[b].off + v->s[b].len == v->s[b + 1].off)
        b++;
    *lo = v->s[a].off;
    *hi = v->s[b].off + v->s[b].len;
}

/* Drops file range [lo, hi), checked, from the page cache -- the next
 * pieces reuse its pages -- except where a split dataset's hasher will read
 * it again (hash_split): the checksum blocks (sum.h) this rank writes only
 * part of, at the two ends of each of its runs of such a dataset, which no
 * rank writes whole. For a TP shard's rows that is all of them; for a
 * ZeRO cut, at most a block on each side of it. (Session 36 kept every
 * checked piece holding any segment of a split dataset next to another:
 * a 124 M ZeRO-1 save, its moments cut at every bucket, left 1.0 GB of its
 * 1.5 GB file in the page cache.) Segments [k0, k1] are the range's. */
static void drop_checked(weft_ckpt *c, int k0, int k1, size_t lo, size_t hi)
{
    const weft_ckpt_segs *v = &c->segs;
    const size_t B = WEFT_CKPT_SUM_BLOCK;
    size_t from = lo, rlo = 0, rhi = 0;
    for (int k = k0; k <= k1; k++) {
        const weft_ckpt_dset *d = &c->plan.d[v->s[k].dset];
        if (!d->split || (v->s[k].off >= rlo && v->s[k].off < rhi)) /* not split, or the run just seen */
            continue;
        run_of(v, k, &rlo, &rhi);
        size_t base = c->offs[v->s[k].dset], end = base + weft_ckpt_dset_bytes(d);
        size_t head = (rlo - base) % B ? base + ((rlo - base) / B + 1) * B : rlo; /* end of a partial first block */
        size_t tail = rhi != end && (rhi - base) % B ? base + (rhi - base) / B * B : rhi; /* a partial last one */
        size_t keep[2][2] = {{rlo, head < rhi ? head : rhi}, {tail > rlo ? tail : rlo, rhi}};
        for (int i = 0; i < 2; i++) {
            size_t ka = keep[i][0] > from ? keep[i][0] : from, kb = keep[i][1] < hi ? keep[i][1] : hi;
            if (ka >= kb)
                continue;
            if (ka > from)
                posix_fadvise(c->fd, (off_t)from, (off_t)(ka - from), POSIX_FADV_DONTNEED);
            c->stats.bytes_kept += kb - ka;
            from = kb;
        }
    }
    if (from < hi)
        posix_fadvise(c->fd, (off_t)from, (off_t)(hi - from), POSIX_FADV_DONTNEED);
}

enum { MAP_MIN = 1u << 20 }; /* smaller groups are read with pread: a mapping per row costs more */

/* Positions [p, end) of the piece from segment r->k on, as far as they are
 * adjacent in the file (this rank's bytes only, no other rank's between):
 * mapped (or read with pread), compared, hashed, and dropped from the page
 * cache but for what a hasher reads again (drop_checked); returns with
 * r->k, r->kpos at the last segment touched and *next the first position
 * after the group. Mapping only the rank's own bytes keeps the mapping's
 * pages, which count in the process's resident memory, to at most a piece
 * (what --plan accounts for). */
static int check_group(weft_ckpt *c, size_t p, size_t end, size_t *next)
{
    weft_ckpt_readback *r = &c->readback;
    const weft_ckpt_segs *v = &c->segs;
    size_t lo = v->s[r->k].off + (p - r->kpos), hi = lo, q = p;
    int first = r->k, k = r->k;
    for (;; k++) { /* the group's file range [lo, hi), its segments r->k .. k */
        size_t kpos = k == r->k ? r->kpos : q; /* a later segment starts where the group is */
        size_t take = (kpos + v->s[k].len < end ? kpos + v->s[k].len : end) - q;
        hi += take, q += take;
        if (q == end || k + 1 == v->n || v->s[k + 1].off != v->s[k].off + v->s[k].len)
            break;
    }
    size_t page = (size_t)sysconf(_SC_PAGESIZE), lead = lo % page;
    void *map = hi - lo >= MAP_MIN ? mmap(NULL, lead + hi - lo, PROT_READ, MAP_SHARED | MAP_POPULATE, c->fd,
                                          (off_t)(lo - lead))
                                   : MAP_FAILED;
    int rc = 0;
    while (p < q && rc == 0) { /* segment by segment */
        const weft_ckpt_seg *s = &v->s[r->k];
        size_t a = p - r->kpos, m = (r->kpos + s->len < q ? r->kpos + s->len : q) - p;
        rc = map != MAP_FAILED ? compare_and_hash(c, r->k, a, m, (const uint8_t *)map + lead + (s->off + a - lo))
                               : read_back_pread(c, r->k, a, m);
        p += m;
        if (p == r->kpos + s->len && p < q)
            r->kpos += v->s[r->k++].len;
    }
    if (map != MAP_FAILED)
        munmap(map, lead + hi - lo);
    if (rc == 0)
        drop_checked(c, first, k, lo, hi);
    *next = q;
    return rc;
}

/* The flusher's check (flusher.h) of positions [pos, pos + n): wait until
 * the disk holds them, read them back (mapped: the page cache, in place),
 * compare them with staging and hash them, then drop them from the page
 * cache. Every rank reads back what it wrote: MPI-IO once lost a failed
 * write without reporting it, and the check caught it; a checkpoint is
 * never committed on a lost write. The file's size is checked first: a
 * mapped page past the end of the file would be SIGBUS, not an error. */
static int check_piece(void *ctx, size_t pos, size_t n)
{
    weft_ckpt *c = ctx;
    weft_ckpt_readback *r = &c->readback;
    const weft_ckpt_segs *v = &c->segs;
    while (pos >= r->kpos + v->s[r->k].len) /* the segment pos is in */
        r->kpos += v->s[r->k++].len;
    int k1 = r->k;
    size_t k1pos = r->kpos;
    while (pos + n > k1pos + v->s[k1].len) /* the segment the last position is in */
        k1pos += v->s[k1++].len;
    size_t lo = v->s[r->k].off + (pos - r->kpos), hi = v->s[k1].off + (pos + n - k1pos);
    if (sync_file_range(c->fd, (off_t)lo, (off_t)(hi - lo), SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                        SYNC_FILE_RANGE_WAIT_AFTER) != 0 && errno != ENOSYS)
        return weft_error(WEFT_EIO, "checkpoint: writing %s back to disk failed: %s (%zu bytes at offset %zu)",
                          r->tmp, strerror(errno), hi - lo, lo);
    struct stat st;
    if (fstat(c->fd, &st) != 0)
        return lost_write(c, r->k, lo, hi - lo, errno);
    if ((size_t)st.st_size < hi) /* a write that never extended the file */
        return lost_write(c, r->k, (size_t)st.st_size > lo ? (size_t)st.st_size : lo, hi - lo, 0);
    for (size_t p = pos; p < pos + n;) {
        if (p == r->kpos + v->s[r->k].len) /* the group before ended with segment r->k */
            r->kpos += v->s[r->k++].len;
        WEFT_CHECK(check_group(c, p, pos + n, &p));
    }
    return 0;
}

/* The checksums of the datasets split between ranks, by their hashers,
 * once every rank's block hashes are in c->blocks: the blocks no rank
 * wrote whole (across a ZeRO cut; a TP shard's interleaved rows) are read
 * from the file. Across nodes the others' bytes are visible once they
 * flushed them (done before the barrier), through a descriptor opened
 * after it. */
static int hash_split(weft_ckpt *c, const char *tmp)
{
    int fd = c->fd, rc = 0;
    const size_t B = WEFT_CKPT_SUM_BLOCK, nb = c->plan.nblocks;
    c->stats.bytes_reread = 0;
    for (int i = 0; i < c->plan.nd && rc == 0; i++) {
        const weft_ckpt_dset *d = &c->plan.d[i];
        if (!d->hasher || !d->split)
            continue;
        size_t bytes = weft_ckpt_dset_bytes(d), n = weft_ckpt_sum_nblocks(bytes, B);
        uint64_t *h = c->blocks + d->block0, *in = c->blocks + nb + d->block0;
        for (size_t k = 0; k < n && rc == 0; k++) {
            if (in[k] == 1)
                continue;
            if (fd == c->fd && c->multinode && (fd = open(tmp, O_RDONLY | O_CLOEXEC)) < 0)
                return weft_error(WEFT_EIO, "checkpoint: cannot open %s: %s", tmp, strerror(errno));
            size_t len = bytes - k * B < B ? bytes - k * B : B;
            c->stats.bytes_reread += len;
            int e = weft_ckpt_pread_hash(fd, c->offs[i] + k * B, len, c->scratch, SCRATCH_BYTES, 0, &h[k]);
            if (e)
                rc = weft_error(WEFT_EIO, "%s: cannot read it back from %s for its checksum (%zu bytes at offset "
                                "%zu): %s", d->path, tmp, len, c->offs[i] + k * B, strerror(e));
        }
        c->hashes[i] = weft_ckpt_sum_root(h, n);
    }
    if (fd != c->fd)
        close(fd);
    return rc;
}

/* Out of the page cache, once every rank's bytes are checked (on disk) and
 * hashed -- the agreement after hash_split: what check_group kept for
 * hash_split (drop_checked), what the hashers read again, and the large
 * folios (up to 2 MiB) the checks' drops could not take because each
 * covered only part of one: at a piece's end, at a group's. One call over
 * the whole file: with the checks' drops alone a small TP save
 * (tests/mpi/ckpt_pattern.c) left a 2 MiB folio of its 34 MB file behind,
 * and before drop_checked kept only partial blocks, 27 MB. Pages still dirty
 * (across nodes, before the commit's fsync; HDF5's metadata) are skipped,
 * never lost. After the agreement every rank of the node is done with the
 * file, so its first rank drops it for all. */
static void drop_written(const weft_ckpt *c)
{
    if (c->fsyncer) /* one rank per node: the page cache is the node's */
        posix_fadvise(c->fd, 0, 0, POSIX_FADV_DONTNEED);
}

/* Every rank's block hashes to every rank: a block is in from the one rank
 * that wrote all of it (ranks write disjoint bytes), so a sum gathers them. */
static int gather_blocks(weft_ckpt *c)
{
    size_t n = 2 * c->plan.nblocks;
    if (n == 0)
        return 0;
    if (!c->nodefiles)
        return weft_comm_allreduce(c->wcomm, c->blocks, c->blocks, n, WEFT_I64, WEFT_SUM);
    if (MPI_Allreduce(MPI_IN_PLACE, c->blocks, (int)n, MPI_UINT64_T, MPI_SUM, c->node_mpi) != MPI_SUCCESS)
        return weft_error(WEFT_ECOMM, "checkpoint: gathering the block checksums over the node's ranks failed");
    return 0;
}

int weft_ckpt_data_check(weft_ckpt *c, const char *tmp, int rc)
{
    rc = keep(rc, weft_ckpt_flusher_end(&c->flusher, tmp)); /* every byte written back and checked */
    if (rc == 0 && c->readback.cur >= 0)
        c->hashes[c->readback.cur] = weft_ckpt_sum_end(&c->readback.whole);
    if (rc == 0 && c->multinode) /* others read these bytes: to the file system first */
        rc = weft_ckpt_data_writeback(c, tmp, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                                  SYNC_FILE_RANGE_WAIT_AFTER);
    if (rc == 0 && c->multinode && fdatasync(c->fd) != 0)
        rc = weft_error(WEFT_EIO, "checkpoint: fdatasync of %s failed: %s", tmp, strerror(errno));
    /* Every rank's bytes are in (and every rank knows whether they are)
     * before anyone hashes them: a failed write on one rank is reported as
     * itself, not as another rank's short read. On the writer's weft
     * communicator, not raw MPI: a rank stopped in the data phase must
     * meet comm.timeout and the watchdog here, not hang the job (found by
     * stall_save_data, tests/ckpt/test_faults.sh). */
    rc = weft_ckpt_agree(c->wcomm, rc);
    if (rc == 0)
        rc = weft_ckpt_agree(c->wcomm, gather_blocks(c));
    if (rc == 0)
        rc = weft_ckpt_agree(c->wcomm, hash_split(c, tmp));
    if (rc == 0)
        drop_written(c);
    if (rc == 0 && !c->nodefiles)
        rc = weft_comm_allreduce(c->wcomm, c->hashes, c->hashes, (size_t)c->plan.nd, WEFT_I64, WEFT_SUM);
    /* A file per node (nodefile.c): the checksums of what the node's file
     * holds, from its own hashers (plan.c); raw MPI inside save.c's
     * watchdog bracket. */
    if (rc == 0 && c->nodefiles && MPI_Allreduce(MPI_IN_PLACE, c->hashes, c->plan.nd, MPI_UINT64_T, MPI_SUM,
                                                 c->node_mpi) != MPI_SUCCESS)
        rc = weft_error(WEFT_ECOMM, "checkpoint: summing the checksums over the node's ranks failed");
    return c->nodefiles ? weft_ckpt_agree(c->wcomm, rc) : rc;
}

/* --- write-back ------------------------------------------------------------ */

/* sync_file_range of bytes [off, off + len) of the file (a file system
 * without it: nothing to do, the commit's fsync writes everything). */
static int writeback_range(weft_ckpt *c, const char *tmp, size_t off, size_t len, unsigned flags)
{
    if (sync_file_range(c->fd, (off_t)off, (off_t)len, flags) != 0 && errno != ENOSYS)
        return weft_error(WEFT_EIO, "checkpoint: writing %s back to disk failed: %s", tmp, strerror(errno));
    return 0;
}

int weft_ckpt_data_writeback(weft_ckpt *c, const char *tmp, unsigned flags)
{
    const weft_ckpt_segs *v = &c->segs;
    for (int i = 0; i < v->n;) {
        size_t lo = v->s[i].off, hi = lo + v->s[i].len;
        for (i++; i < v->n && v->s[i].off - hi < 65536; i++) /* neighbours: one call */
            hi = v->s[i].off + v->s[i].len;
        WEFT_CHECK(writeback_range(c, tmp, lo, hi - lo, flags));
    }
    return 0;
}
