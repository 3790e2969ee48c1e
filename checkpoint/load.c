/*
 * load.c -- reading a checkpoint into the current layout: each rank reads,
 * with independent I/O, the hyperslabs of the global tensors its own pieces
 * are (by shard spec) and the moments of its own ZeRO ranges, whatever
 * layout wrote the file. Every dataset's checksum is verified by one rank,
 * planned before the reading (verify_plan_make): by one that reads all of
 * it in one piece where a rank does, which hashes each piece right after
 * its pread, while it is in cache (under ZeRO-1 every parameter and every
 * moment not split between ranks), else by any, which reads it again
 * afterwards; spread over the ranks by bytes. Data-parallel replicas on
 * different nodes split the tensors they hold alike and broadcast them
 * (share.h). Every rank reports the same first error. A state on a GPU
 * (weft_ckpt_state.dev) is read piece by piece into host memory, hashed
 * there, and copied up through the device layer.
 */
#include "checkpoint/agree.h"
#include "checkpoint/ckpt.h"
#include "checkpoint/h5.h"
#include "checkpoint/inspect.h"
#include "checkpoint/nodepart.h"
#include "checkpoint/plan.h"
#include "checkpoint/rawdata.h"
#include "checkpoint/share.h"
#include "checkpoint/sum.h"
#include "collectives/watchdog.h"
#include "runtime/error.h"
#include "runtime/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const char *path;
    hid_t f;
    int rank, size;
    unsigned flags;
    int fd; /* the file, for pread of contiguous datasets (-1: HDF5 reads all) */
    weft_dev *dev; /* the state is this device's memory: read into host memory, copy up (NULL: read in place) */
    int vrank, vsize; /* among the ranks verifying this file: all, or a node's with its part (nodepart.h) */
    struct verify_plan *vp; /* which datasets this rank verifies, and their hashes taken while reading */
    const weft_ckpt_share *share; /* which replicated tensors this rank reads (share.h); NULL: all it holds */
    size_t block; /* the file's checksum block (sum.h; 0: format 1, datasets hashed whole) */
} loader_ctx;

/* The load's checksum work, planned before the reading (verify_plan):
 * every dataset of the file, which rank verifies it, and -- for those this
 * rank verifies and reads whole -- the hash of the bytes taken as they were
 * read, while they were in cache, so they cross memory once. */
typedef struct verify_plan {
    char **list;           /* the file's datasets */
    int n;
    size_t *bytes;         /* each one's size */
    int *owner;            /* the verifying rank of each (among x->vrank's) */
    unsigned char *whole;  /* this rank reads all of it in one piece */
    unsigned char *have;   /* its hash is in hash[] (taken while reading) */
    uint64_t *hash;
    /* Datasets no rank reads whole (ZeRO's moments cut mid-tensor), in a
     * file with checksum blocks: every rank hashes the blocks it reads all
     * of, and their verifier reads only the rest again (sum.h). */
    unsigned char *split;
    size_t *block0;        /* a split dataset's first block in blocks[] */
    size_t nblocks;
    uint64_t *blocks;      /* nblocks hashes, then whether each is in */
    MPI_Comm comm;         /* the verifying ranks' (MPI_COMM_NULL: one process) */
} verify_plan;

/* The plan's index of dataset dpath (-1: not in it, or no plan). */
static int plan_index(const loader_ctx *x, const char *dpath)
{
    for (int i = 0; x->vp && i < x->vp->n; i++)
        if (strcmp(x->vp->list[i], dpath) == 0)
            return i;
    return -1;
}

/* The state's memory is read through host buffers when it is a GPU's (or
 * when asked: WEFT_CKPT_STAGED, what the cpu tests use). */
static weft_dev *staged_dev(const weft_ckpt_state *s, unsigned flags)
{
    if (!s->dev)
        return NULL;
    return weft_device_where(s->dev).kind != WEFT_DEVICE_CPU || (flags & WEFT_CKPT_STAGED) ? s->dev : NULL;
}

/* A contiguous dataset's file offset, when its bytes can be read as they
 * are (pread): every weft checkpoint's tensors. HADDR_UNDEF for anything
 * else -- chunked, compressed, external, another byte order or type --
 * which H5Dread reads (files written by other tools). */
static haddr_t direct_offset(const loader_ctx *x, hid_t d, hid_t mem_type)
{
    if (x->fd < 0)
        return HADDR_UNDEF;
    hid_t dcpl = H5Dget_create_plist(d), t = H5Dget_type(d);
    int plain = dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CONTIGUOUS && H5Pget_external_count(dcpl) == 0 &&
                H5Pget_nfilters(dcpl) == 0 && t >= 0 && H5Tequal(t, mem_type) > 0;
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (t >= 0)
        H5Tclose(t);
    return plain ? H5Dget_offset(d) : HADDR_UNDEF;
}

/* Rectangles r[0..n) of a contiguous f32 dataset at file offset base into
 * dst (row-major order of their union): one pread per contiguous run. A
 * dataset read whole for its checksum (slot >= 0: then it is one run) is
 * read in scratch-sized pieces, each hashed right after its pread while it
 * is in cache, instead of hashed again from memory after the reading; so
 * is a split one (split >= 0), each of its blocks read whole hashed on its
 * own (sum.h). */
static int read_direct(const loader_ctx *x, const char *dpath, const weft_shard_spec *sp, const int64_t gs[2],
                       const weft_ckpt_rect *r, int n, haddr_t base, float *dst, int slot, int split)
{
    weft_ckpt_segs v = {0};
    int rc = weft_ckpt_segs_add(&v, sp->ndim, gs, sizeof(float), r, n, (size_t)base, 0, 0);
    weft_ckpt_sum h;
    weft_ckpt_sum_begin(&h, x->block);
    weft_ckpt_blocks blk;
    if (split >= 0)
        weft_ckpt_blocks_begin(&blk, x->block, x->vp->bytes[split], x->vp->blocks + x->vp->block0[split],
                               x->vp->blocks + x->vp->nblocks + x->vp->block0[split]);
    for (int i = 0, j; rc == 0 && i < v.n; i = j) {
        size_t len, done = 0;
        j = weft_ckpt_segs_run(&v, i, &len);
        int hashed = slot >= 0 && i == 0 && j == v.n, e = 0;
        size_t piece = hashed || split >= 0 ? WEFT_CKPT_SCRATCH : len; /* else one pread for the run */
        for (size_t a = 0; a < len && e == 0; a += piece) {
            size_t k = len - a < piece ? len - a : piece, got = 0;
            char *p = (char *)dst + v.s[i].mem + a;
            e = weft_ckpt_pread_all(x->fd, p, k, v.s[i].off + a, &got);
            done = a + got;
            if (e == 0 && hashed)
                weft_ckpt_sum_update(&h, p, k);
            if (e == 0 && split >= 0)
                weft_ckpt_blocks_update(&blk, v.s[i].off + a - (size_t)base, p, k);
        }
        if (e)
            rc = weft_error(WEFT_EDATA, "checkpoint %s: cannot read tensor '%s' (%zu bytes at offset %zu): %s "
                            "(truncated file?)", x->path, dpath, len, v.s[i].off + done, strerror(e));
        else if (hashed)
            x->vp->hash[slot] = weft_ckpt_sum_end(&h), x->vp->have[slot] = 1;
    }
    weft_ckpt_segs_free(&v);
    return rc;
}

static void shape_str(int ndim, const int64_t s[2], char *buf, size_t len)
{
    if (ndim == 1)
        snprintf(buf, len, "(%lld)", (long long)s[0]);
    else
        snprintf(buf, len, "(%lld, %lld)", (long long)s[0], (long long)s[1]);
}

/* Open dataset dpath, checking it is f32 of the given global shape. */
static int open_tensor(const loader_ctx *x, const char *dpath, const weft_shard_spec *sp, hid_t *out)
{
    char want[64], have[64];
    int64_t gs[2] = {sp->global_shape[0], sp->ndim == 2 ? sp->global_shape[1] : 0};
    shape_str(sp->ndim, gs, want, sizeof want);
    if (H5Lexists(x->f, dpath, H5P_DEFAULT) <= 0)
        return weft_error(WEFT_EDATA, "checkpoint %s has no tensor '%s' (the model has it, shape %s; check "
                          "model.family and model.* against weft-ckpt info of the checkpoint)", x->path, dpath, want);
    hid_t d = H5Dopen2(x->f, dpath, H5P_DEFAULT);
    if (d < 0)
        return weft_h5_error(WEFT_EDATA, "checkpoint %s: cannot open tensor '%s'", x->path, dpath);
    int ndim, rc;
    int64_t shape[2];
    rc = weft_h5_shape(d, dpath, &ndim, shape);
    hid_t t = H5Dget_type(d);
    int f32 = t >= 0 && H5Tget_class(t) == H5T_FLOAT && H5Tget_size(t) == 4;
    if (t >= 0)
        H5Tclose(t);
    if (rc == 0 && !f32)
        rc = weft_error(WEFT_EDATA, "checkpoint %s: tensor '%s' is not float32 (the model's dtype)", x->path, dpath);
    if (rc == 0 && (ndim != sp->ndim || shape[0] != gs[0] || shape[1] != gs[1])) {
        shape_str(ndim, shape, have, sizeof have);
        rc = weft_error(WEFT_EDATA, "checkpoint %s: tensor '%s' has shape %s in the checkpoint but %s in the model "
                        "(different model dimensions: check model.* and the dataset's vocabulary; weft-ckpt info shows the "
                        "checkpoint's)", x->path, dpath,
                        have, want);
    }
    if (rc) {
        H5Dclose(d);
        return rc;
    }
    *out = d;
    return 0;
}

/* Read local elements [a, b) of the tensor at dpath into dst. */
static int read_piece(const loader_ctx *x, hid_t d, const char *dpath, const weft_shard_spec *sp, size_t a, size_t b,
                      float *dst, int slot, int split)
{
    weft_ckpt_rect rects[64];
    if (weft_ckpt_region_cap(sp) > 64)
        return weft_error(WEFT_EINTERNAL, "checkpoint: tensor '%s' has too many blocks", dpath);
    int n = weft_ckpt_region(sp, a, b, rects);
    int64_t gs[2] = {sp->global_shape[0], sp->ndim == 2 ? sp->global_shape[1] : 0};
    haddr_t base = direct_offset(x, d, H5T_NATIVE_FLOAT);
    if (base != HADDR_UNDEF)
        return read_direct(x, dpath, sp, gs, rects, n, base, dst, slot, split);
    hid_t fs = weft_h5_select(sp->ndim, gs, rects, n), ms = weft_h5_memspace(b - a);
    herr_t r = H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, dst);
    H5Sclose(fs);
    H5Sclose(ms);
    if (r < 0)
        return weft_h5_error(WEFT_EDATA, "checkpoint %s: cannot read tensor '%s' (truncated file?)", x->path, dpath);
    return 0;
}

/* read_piece into the state's memory dst: in place, or (x->dev) into host
 * memory first and then to the device with the device layer's copy. A
 * dataset this rank verifies and reads whole is hashed on the way: by
 * read_direct, else (HDF5 read it) from the host bytes just read. */
static int read_into(const loader_ctx *x, hid_t d, const char *dpath, const weft_shard_spec *sp, size_t a, size_t b,
                     float *dst)
{
    /* this rank verifies it and [a, b) is all of it: hashed as read; a
     * split dataset: its blocks hashed as read */
    const verify_plan *vp = x->vp;
    int i = plan_index(x, dpath);
    int slot = i >= 0 && vp->owner[i] == x->vrank && vp->whole[i] && a == 0 &&
               (b - a) * sizeof(float) == vp->bytes[i] ? i : -1;
    int split = i >= 0 && vp->split && vp->split[i] ? i : -1;
    size_t bytes = (b - a) * sizeof(float);
    float *host = x->dev ? malloc(bytes ? bytes : 1) : dst;
    if (!host)
        return weft_error(WEFT_ENOMEM, "checkpoint %s: no %zu bytes of host memory to read tensor '%s' into",
                          x->path, bytes, dpath);
    int rc = read_piece(x, d, dpath, sp, a, b, host, slot, split);
    if (rc == 0 && slot >= 0 && !x->vp->have[slot])
        x->vp->hash[slot] = weft_ckpt_sum_of(host, bytes, x->block), x->vp->have[slot] = 1;
    if (!x->dev)
        return rc;
    if (rc == 0 && (rc = weft_device_copy(x->dev, dst, host, bytes, WEFT_COPY_H2D)) != 0)
        rc = weft_ckpt_wrap(rc, "checkpoint %s: tensor '%s' to the device", x->path, dpath);
    free(host);
    return rc;
}

/* The moments of tensor t for this rank's ranges. */
static int read_moments(const loader_ctx *x, const weft_ckpt_state *s, const weft_tensor *t)
{
    static const char *const which[2] = {"optim/m/", "optim/v/"};
    for (int k = 0; k < 2; k++) {
        char dpath[128];
        snprintf(dpath, sizeof dpath, "%s%s", which[k], t->name);
        hid_t d;
        WEFT_CHECK(open_tensor(x, dpath, &t->shard, &d));
        int rc = 0;
        for (int i = 0; i < s->nranges && rc == 0; i++) {
            size_t a = s->ranges[i][0] > t->offset ? s->ranges[i][0] : t->offset;
            size_t e1 = s->ranges[i][0] + s->ranges[i][1], e2 = t->offset + t->numel, b = e1 < e2 ? e1 : e2;
            if (a < b)
                rc = read_into(x, d, dpath, &t->shard, a - t->offset, b - t->offset,
                               (k ? s->v : s->m) + weft_ckpt_moment_pos(s, a));
        }
        H5Dclose(d);
        WEFT_CHECK(rc);
    }
    return 0;
}

static int read_tensors(const loader_ctx *x, const weft_ckpt_state *s)
{
    int moments = s->m && !(x->flags & WEFT_CKPT_WEIGHTS_ONLY);
    if (moments && H5Lexists(x->f, "optim", H5P_DEFAULT) <= 0)
        return weft_error(WEFT_EDATA, "checkpoint %s has no optimizer state (it holds weights only): start from it "
                          "with --init-from instead of resuming", x->path);
    for (int i = 0; i < s->ntensors; i++) {
        const weft_tensor *t = &s->tensors[i];
        char dpath[128];
        snprintf(dpath, sizeof dpath, "params/%s", t->name);
        hid_t d;
        WEFT_CHECK(open_tensor(x, dpath, &t->shard, &d));
        int rc = weft_ckpt_share_reads(x->share, i, 0) ? read_into(x, d, dpath, &t->shard, 0, t->numel,
                                                                   s->params + t->offset) : 0;
        H5Dclose(d);
        WEFT_CHECK(rc);
        /* a tied copy's moments are its owner's: the same updates */
        if (moments && weft_ckpt_share_reads(x->share, i, 1))
            WEFT_CHECK(read_moments(x, s, t));
    }
    return 0;
}

/* Tensors in the file that the model (all ranks together) lacks. */
static int check_extra(const loader_ctx *x, const weft_ckpt_name *names, int ng)
{
    hid_t g = H5Gopen2(x->f, "params", H5P_DEFAULT);
    if (g < 0)
        return weft_h5_error(WEFT_EDATA, "checkpoint %s has no 'params' group: not a weft checkpoint", x->path);
    H5G_info_t info;
    int rc = H5Gget_info(g, &info) < 0 ? weft_h5_error(WEFT_EDATA, "checkpoint %s: cannot list params", x->path) : 0;
    for (hsize_t i = 0; rc == 0 && i < info.nlinks; i++) {
        char name[128];
        if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0)
            continue;
        int found = 0;
        for (int j = 0; j < ng && !found; j++)
            found = strcmp(names[j].name, name) == 0;
        if (!found)
            rc = weft_error(WEFT_EDATA, "checkpoint %s has tensor '%s', which the model does not have (different "
                            "model dimensions or family: check model.family and model.n_layer; weft-ckpt info shows the "
                            "checkpoint's)", x->path, name);
    }
    H5Gclose(g);
    return rc;
}

/* Bytes of each dataset in list (n of them): what verifying it reads. */
static size_t *dataset_bytes(const loader_ctx *x, char **list, int n)
{
    size_t *b = calloc((size_t)n + 1, sizeof *b);
    for (int i = 0; b && i < n; i++) {
        hid_t d = H5Dopen2(x->f, list[i], H5P_DEFAULT);
        b[i] = d >= 0 ? (size_t)H5Dget_storage_size(d) : 0;
        if (d >= 0)
            H5Dclose(d);
    }
    return b;
}

/* Whether this rank reads all of dataset dpath in one piece (numel
 * elements): a whole tensor's parameters, and its moments when one
 * contiguous range of them covers it, unless another replica reads them
 * (share.h). Such a dataset can be hashed as it is read (read_into). */
static int reads_whole(const loader_ctx *x, const weft_ckpt_state *s, const char *dpath, size_t *numel)
{
    int kind = strncmp(dpath, "params/", 7) == 0 ? 0 : strncmp(dpath, "optim/m/", 8) == 0 ? 1
             : strncmp(dpath, "optim/v/", 8) == 0 ? 2 : -1;
    if (kind < 0 || (kind > 0 && !s->m))
        return 0;
    const char *name = dpath + (kind ? 8 : 7);
    for (int i = 0; i < s->ntensors; i++) {
        const weft_tensor *t = &s->tensors[i];
        if (strcmp(t->name, name) != 0 || t->shard.nparts != 1 || (t->flags & WEFT_TENSOR_TIED_COPY))
            continue;
        *numel = t->numel;
        if (!weft_ckpt_share_reads(x->share, i, kind > 0))
            return 0;
        if (kind == 0)
            return 1;
        size_t pos = weft_ckpt_moment_pos(s, t->offset);
        return pos != (size_t)-1 && weft_ckpt_moment_pos(s, t->offset + t->numel - 1) == pos + t->numel - 1;
    }
    return 0;
}

/* A dataset's stored checksum against have, the hash of its bytes. */
static int check_hash(const loader_ctx *x, const char *dpath, uint64_t have)
{
    hid_t d = H5Dopen2(x->f, dpath, H5P_DEFAULT);
    uint64_t want = 0;
    int rc = d < 0 ? weft_h5_error(WEFT_EDATA, "checkpoint %s: cannot open '%s'", x->path, dpath)
                   : weft_h5_get_u64(d, "xxh3_64", &want);
    if (d >= 0)
        H5Dclose(d);
    if (rc)
        return weft_ckpt_wrap(rc, "checkpoint %s: tensor '%s'", x->path, dpath);
    if (want != have)
        return weft_error(WEFT_EDATA, "checkpoint %s: tensor '%s' fails its checksum (stored xxh3 %016llx, data "
                          "gives %016llx): the file is corrupt", x->path, dpath, (unsigned long long)want,
                          (unsigned long long)have);
    return 0;
}

/* Dataset i's stored checksum against its bytes read with pread: all of
 * them, or, split, the blocks no rank read whole -- across a ZeRO cut, or
 * in a part nobody read -- beside the block hashes the ranks took while
 * reading (gathered in vp->blocks). 1 when it is not contiguous (the
 * caller reads all of it with HDF5). */
static int verify_direct(const loader_ctx *x, int i, void *scratch)
{
    const verify_plan *vp = x->vp;
    const char *dpath = vp->list[i];
    hid_t d = H5Dopen2(x->f, dpath, H5P_DEFAULT);
    if (d < 0)
        return 1;
    hid_t t = H5Dget_type(d);
    haddr_t base = t >= 0 ? direct_offset(x, d, t) : HADDR_UNDEF; /* any type: its bytes are hashed */
    if (t >= 0)
        H5Tclose(t);
    H5Dclose(d);
    if (base == HADDR_UNDEF)
        return 1;
    const size_t B = x->block, bytes = vp->bytes[i];
    uint64_t have = 0;
    if (!(vp->split && vp->split[i])) {
        int e = weft_ckpt_pread_hash(x->fd, (size_t)base, bytes, scratch, WEFT_CKPT_SCRATCH, B, &have);
        if (e)
            return weft_error(WEFT_EDATA, "checkpoint %s: tensor '%s': cannot read its %zu bytes at offset %zu: %s "
                              "(truncated file?)", x->path, dpath, bytes, (size_t)base, strerror(e));
        return check_hash(x, dpath, have);
    }
    size_t n = weft_ckpt_sum_nblocks(bytes, B);
    uint64_t *h = vp->blocks + vp->block0[i];
    const uint64_t *in = vp->blocks + vp->nblocks + vp->block0[i];
    for (size_t k = 0; k < n; k++) {
        size_t len = bytes - k * B < B ? bytes - k * B : B;
        int e = in[k] ? 0 : weft_ckpt_pread_hash(x->fd, (size_t)base + k * B, len, scratch, WEFT_CKPT_SCRATCH, 0,
                                                 &h[k]);
        if (e)
            return weft_error(WEFT_EDATA, "checkpoint %s: tensor '%s': cannot read its %zu bytes at offset %zu: %s "
                              "(truncated file?)", x->path, dpath, len, (size_t)base + k * B, strerror(e));
    }
    return check_hash(x, dpath, weft_ckpt_sum_root(h, n));
}

/* weft_ckpt_agree, or rc itself for one process without a job (world NULL). */
static int agree(weft_comm *world, int rc) { return world ? weft_ckpt_agree(world, rc) : rc; }

static void verify_plan_free(verify_plan *vp)
{
    if (vp->list)
        weft_ckpt_free_list(vp->list);
    free(vp->bytes);
    free(vp->owner);
    free(vp->whole);
    free(vp->have);
    free(vp->hash);
    free(vp->split);
    free(vp->block0);
    free(vp->blocks);
    memset(vp, 0, sizeof *vp);
}

/* The datasets no rank reads whole (held: the allgather of who does), and
 * room for their block hashes. The same on every rank. */
static int split_blocks(const loader_ctx *x, verify_plan *vp, const unsigned char *held)
{
    vp->split = calloc((size_t)vp->n + 1, 1);
    vp->block0 = calloc((size_t)vp->n + 1, sizeof *vp->block0);
    if (!vp->split || !vp->block0)
        return weft_error(WEFT_ENOMEM, "out of memory");
    for (int i = 0; i < vp->n; i++) {
        int any = 0;
        for (int r = 0; r < x->vsize && !any; r++)
            any = held[(size_t)r * (size_t)vp->n + (size_t)i];
        vp->split[i] = !any;
        vp->block0[i] = vp->nblocks;
        vp->nblocks += any ? 0 : weft_ckpt_sum_nblocks(vp->bytes[i], x->block);
    }
    vp->blocks = calloc(2 * vp->nblocks + 1, sizeof *vp->blocks);
    return vp->blocks ? 0 : weft_error(WEFT_ENOMEM, "out of memory");
}

/* Which rank verifies each dataset of the file: one that reads all of it
 * whole (hashing it as it reads, read_direct) where a rank does, else any,
 * which reads it again afterwards; spread by bytes among the ranks allowed
 * each (weft_ckpt_assign_by_bytes). Under ZeRO-1 every parameter and every
 * moment not split between ranks is hashed as it is read: only the split
 * moments are read twice. Decided before the reading, from the layout
 * alone (one allgather of who reads what whole over hmpi). Collective over
 * hmpi and world; every rank returns the same result. world NULL: one
 * process, no job (x->vsize 1). */
static int verify_plan_make(const loader_ctx *x, const weft_ckpt_state *s, MPI_Comm hmpi, weft_comm *world,
                            verify_plan *vp)
{
    memset(vp, 0, sizeof *vp);
    vp->comm = world ? hmpi : MPI_COMM_NULL;
    int weights = x->flags & WEFT_CKPT_WEIGHTS_ONLY, n = 0;
    weft_h5_lock();
    int rc = weft_ckpt_list_datasets(x->f, x->path, &vp->list);
    while (rc == 0 && vp->list[n])
        n++;
    vp->n = n;
    vp->bytes = rc == 0 ? dataset_bytes(x, vp->list, n) : NULL;
    weft_h5_unlock();
    rc = agree(world, rc);
    int lo_hi[2] = {n, -n};
    if (rc == 0 && world && MPI_Allreduce(MPI_IN_PLACE, lo_hi, 2, MPI_INT, MPI_MIN, hmpi) != MPI_SUCCESS)
        rc = weft_error(WEFT_ECOMM, "checkpoint %s: agreeing on its datasets failed", x->path);
    else if (rc == 0 && lo_hi[0] != -lo_hi[1])
        rc = weft_error(WEFT_EDATA, "checkpoint %s: the ranks reading it see different datasets (%d to %d)",
                        x->path, lo_hi[0], -lo_hi[1]);
    size_t nv = (size_t)n * (size_t)x->vsize;
    unsigned char *held = calloc(nv + 1, 1);
    vp->owner = calloc((size_t)n + 1, sizeof *vp->owner);
    vp->whole = calloc((size_t)n + 1, 1);
    vp->have = calloc((size_t)n + 1, 1);
    vp->hash = calloc((size_t)n + 1, sizeof *vp->hash);
    if (rc == 0 && !(vp->bytes && held && vp->owner && vp->whole && vp->have && vp->hash))
        rc = weft_error(WEFT_ENOMEM, "out of memory");
    rc = agree(world, rc);
    for (int i = 0; i < n && rc == 0; i++) {
        size_t numel = 0;
        vp->whole[i] = reads_whole(x, s, vp->list[i], &numel) && numel * sizeof(float) == vp->bytes[i] &&
                       (!weights || strncmp(vp->list[i], "params/", 7) == 0);
    }
    if (rc == 0 && !world)
        memcpy(held, vp->whole, (size_t)n);
    else if (rc == 0 && MPI_Allgather(vp->whole, n, MPI_BYTE, held, n, MPI_BYTE, hmpi) != MPI_SUCCESS)
        rc = weft_error(WEFT_ECOMM, "checkpoint %s: exchanging which rank reads which tensor whole failed", x->path);
    if (rc == 0)
        weft_ckpt_assign_by_bytes(vp->bytes, held, n, x->vsize, vp->owner);
    if (rc == 0 && x->block)
        rc = split_blocks(x, vp, held);
    free(held);
    rc = agree(world, rc);
    if (rc)
        verify_plan_free(vp);
    return rc;
}

/* The checksums this rank verifies: hashed while reading (compared now),
 * from the ranks' block hashes, or read again from the file. Every rank
 * returns the same result. */
static int verify_rest(const loader_ctx *x, weft_comm *world)
{
    const verify_plan *vp = x->vp;
    int weights = x->flags & WEFT_CKPT_WEIGHTS_ONLY;
    void *scratch = malloc(WEFT_CKPT_SCRATCH);
    int rc = scratch ? 0 : weft_error(WEFT_ENOMEM, "out of memory");
    /* Every block is read whole by one rank or by several (replicas): those
     * hash the same bytes, so the largest of the hashes and flags is each
     * block's own. */
    if (rc == 0 && vp->nblocks && vp->comm != MPI_COMM_NULL &&
        MPI_Allreduce(MPI_IN_PLACE, vp->blocks, (int)(2 * vp->nblocks), MPI_UINT64_T, MPI_MAX, vp->comm) != MPI_SUCCESS)
        rc = weft_error(WEFT_ECOMM, "checkpoint %s: gathering the block checksums failed", x->path);
    weft_h5_lock();
    for (int i = 0; i < vp->n && rc == 0; i++) {
        if (vp->owner[i] != x->vrank || (weights && strncmp(vp->list[i], "params/", 7) != 0))
            continue;
        if (vp->have[i])
            rc = check_hash(x, vp->list[i], vp->hash[i]);
        else if ((rc = verify_direct(x, i, scratch)) == 1)
            rc = weft_ckpt_verify_dataset(x->f, x->path, vp->list[i], scratch);
    }
    weft_h5_unlock();
    free(scratch);
    return agree(world, rc);
}

static int read_meta(const loader_ctx *x, weft_ckpt_loaded *out)
{
    char *fmt = NULL;
    int rc = weft_h5_get_str(x->f, "format", &fmt);
    if (rc != 0 || strcmp(fmt, "weft-checkpoint") != 0) {
        char why[512];
        snprintf(why, sizeof why, "%s", rc ? weft_last_error() : "its format attribute is not weft-checkpoint");
        free(fmt);
        return weft_error(WEFT_EDATA, "%s is an HDF5 file but not a weft checkpoint (%s)", x->path, why);
    }
    free(fmt);
    int64_t v, w, dp, tp, pp, z;
    weft_ckpt_meta *m = &out->meta;
    WEFT_CHECK(weft_h5_get_i64(x->f, "format_version", &v));
    if (v != 1 && v != 2)
        return weft_error(WEFT_EDATA, "checkpoint %s has format version %lld; this weft reads versions 1 and 2",
                          x->path, (long long)v);
    rc = rc ? rc : weft_h5_get_i64(x->f, "step", &m->step);
    rc = rc ? rc : weft_h5_get_i64(x->f, "optim_t", &m->optim_t);
    rc = rc ? rc : weft_h5_get_f64(x->f, "lr", &m->lr);
    rc = rc ? rc : weft_h5_get_u64(x->f, "dataset_hash", &m->dataset_hash);
    rc = rc ? rc : weft_h5_get_i64(x->f, "world_size", &w);
    rc = rc ? rc : weft_h5_get_i64(x->f, "dp", &dp);
    rc = rc ? rc : weft_h5_get_i64(x->f, "tp", &tp);
    rc = rc ? rc : weft_h5_get_i64(x->f, "pp", &pp);
    rc = rc ? rc : weft_h5_get_i64(x->f, "zero", &z);
    if (rc == 0 && H5Aexists(x->f, "base_checkpoint") > 0) {
        char *base = NULL;
        rc = weft_h5_get_str(x->f, "base_checkpoint", &base);
        rc = rc ? rc : weft_h5_get_u64(x->f, "base_hash", &m->base_hash);
        m->base_path = base;
    }
    if (rc)
        return weft_ckpt_wrap(rc, "checkpoint %s", x->path);
    out->world = (int)w, out->dp = (int)dp, out->tp = (int)tp, out->pp = (int)pp, out->zero = (int)z;
    return 0;
}

/* loader/state (whole) and this rank's rng/state element. */
static int read_small(const loader_ctx *x, weft_ckpt_loaded *out)
{
    if (H5Lexists(x->f, "loader", H5P_DEFAULT) > 0 && H5Lexists(x->f, "loader/state", H5P_DEFAULT) > 0) {
        hid_t d = H5Dopen2(x->f, "loader/state", H5P_DEFAULT);
        int nd;
        int64_t sh[2];
        int rc = d < 0 ? WEFT_EDATA : weft_h5_shape(d, "loader/state", &nd, sh);
        uint8_t *buf = rc == 0 && nd == 1 ? malloc((size_t)sh[0] + 1) : NULL;
        if (buf && H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0) {
            out->meta.loader_state = buf;
            out->meta.loader_len = (size_t)sh[0];
        } else {
            free(buf);
            rc = weft_h5_error(WEFT_EDATA, "checkpoint %s: cannot read loader/state", x->path);
        }
        if (d >= 0)
            H5Dclose(d);
        WEFT_CHECK(rc);
    }
    hid_t d = H5Dopen2(x->f, "rng/state", H5P_DEFAULT);
    if (d < 0)
        return weft_h5_error(WEFT_EDATA, "checkpoint %s: cannot open rng/state", x->path);
    int nd;
    int64_t sh[2];
    int rc = weft_h5_shape(d, "rng/state", &nd, sh);
    if (rc == 0 && sh[0] > 0) {
        weft_shard_spec sp = weft_shard_whole(sh[0], 0);
        weft_ckpt_rect r;
        size_t mine = (size_t)(x->rank % sh[0]);
        weft_ckpt_region(&sp, mine, mine + 1, &r);
        hid_t fs = weft_h5_select(1, sh, &r, 1), ms = weft_h5_memspace(1);
        if (H5Dread(d, H5T_NATIVE_UINT64, ms, fs, H5P_DEFAULT, &out->meta.rng) < 0)
            rc = weft_h5_error(WEFT_EDATA, "checkpoint %s: cannot read rng/state", x->path);
        H5Sclose(fs);
        H5Sclose(ms);
    }
    H5Dclose(d);
    return rc;
}

/* What the file says of itself, and that the model has all its tensors. */
static int read_head(const loader_ctx *x, const weft_ckpt_name *names, int ng, weft_ckpt_loaded *out)
{
    WEFT_CHECK(read_meta(x, out));
    return check_extra(x, names, ng);
}

/* The tensors, hashing on the way what x->vp says this rank verifies, and
 * the loader and rng states. */
static int read_body(const loader_ctx *x, const weft_ckpt_state *s, weft_ckpt_loaded *out)
{
    WEFT_CHECK(read_tensors(x, s));
    return x->flags & WEFT_CKPT_WEIGHTS_ONLY ? 0 : read_small(x, out);
}

/* A node's part (nodepart.h): every rank of the job reads its own node's
 * file, so HDF5 opens it over that node's ranks, who verify it; a whole
 * file: over all (*hmpi = mpi). Agreed. */
static int node_part_comm(loader_ctx *x, const weft_ckpt_layout *l, MPI_Comm mpi, MPI_Comm *hmpi)
{
    int64_t node;
    weft_h5_lock();
    int prc = weft_ckpt_node_part(x->path, l, x->rank, x->size, &node);
    weft_h5_unlock();
    int rc = weft_ckpt_agree(l->world, prc);
    if (rc)
        return rc;
    int32_t part = node >= 0, all[2], mine[2] = {part, -part};
    WEFT_CHECK(weft_comm_allreduce(l->world, mine, all, 2, WEFT_I32, WEFT_MIN));
    if (all[0] != -all[1])
        return weft_error(WEFT_EDATA, "checkpoint %s is one node's part on some ranks and a whole file on others: "
                          "the ranks' checkpoint directories hold different files", x->path);
    *hmpi = mpi;
    if (!part)
        return 0;
    if (MPI_Comm_split(mpi, (int)node, x->rank, hmpi) != MPI_SUCCESS) {
        *hmpi = MPI_COMM_NULL;
        return weft_error(WEFT_ECOMM, "checkpoint %s: cannot make the communicator of its node", x->path);
    }
    MPI_Comm_rank(*hmpi, &x->vrank);
    MPI_Comm_size(*hmpi, &x->vsize);
    return 0;
}

/* Missing, not HDF5: the same answer on every rank, before any collective. */
static int precheck(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return weft_error(errno == ENOENT ? WEFT_ENOENT : WEFT_EIO, "checkpoint %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return weft_error(WEFT_EDATA, "checkpoint %s is not a regular file", path);
    weft_h5_lock();
    htri_t is = H5Fis_hdf5(path);
    weft_h5_unlock();
    if (is <= 0)
        return weft_error(WEFT_EDATA, "checkpoint %s is not an HDF5 file (%lld bytes, no HDF5 signature)", path,
                          (long long)st.st_size);
    return 0;
}

int weft_ckpt_load(const weft_ckpt_layout *l, const weft_ckpt_state *s, const char *path, unsigned flags,
                   weft_ckpt_loaded *out)
{
    memset(out, 0, sizeof *out);
    loader_ctx x = {path, -1, weft_comm_rank(l->world), weft_comm_size(l->world), flags, -1, staged_dev(s, flags),
                    0, 0};
    x.vrank = x.rank, x.vsize = x.size;
    MPI_Comm mpi, hmpi = MPI_COMM_NULL;
    WEFT_CHECK(weft_comm_mpi_dup(l->world, &mpi));
    weft_ckpt_name *names = NULL;
    int ng = 0;
    char what[4400];
    snprintf(what, sizeof what, "reading checkpoint file %s", path);
    weft_watchdog_raw_begin(what); /* HDF5's collective MPI-IO (collectives/watchdog.h, "Raw MPI") */
    int rc = weft_ckpt_names(mpi, s, &names, &ng);
    rc = weft_ckpt_agree(l->world, rc ? rc : precheck(path));
    if (rc == 0)
        rc = node_part_comm(&x, l, mpi, &hmpi);
    if (rc == 0) {
        x.fd = open(path, O_RDONLY | O_CLOEXEC); /* -1: HDF5 reads everything */
        weft_h5_lock();
        hid_t fapl = weft_h5_fapl(hmpi, NULL);
        x.f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
        H5Pclose(fapl);
        rc = x.f < 0 ? weft_h5_error(WEFT_EDATA, "checkpoint %s cannot be opened (truncated or damaged?)", path)
                     : read_head(&x, names, ng, out);
        rc = rc ? rc : weft_ckpt_sum_block_of(x.f, path, &x.block);
        weft_h5_unlock();
        rc = weft_ckpt_agree(l->world, rc);
        weft_ckpt_share share = {.group = MPI_COMM_NULL};
        if (rc == 0 && !x.dev && !(flags & WEFT_CKPT_EVERY_REPLICA)) { /* host memory: replicas split the reading (share.h) */
            rc = weft_ckpt_agree(l->world, weft_ckpt_share_plan(hmpi, l, s, s->m && !(flags & WEFT_CKPT_WEIGHTS_ONLY),
                                                                &share));
            x.share = &share;
            if (rc == 0 && x.rank == 0 && share.size > 1)
                WEFT_INFO("checkpoint %s: each of %d nodes reads 1/%d of the replicated tensors, and the replicas "
                          "share them", path, share.size, share.size);
        }
        verify_plan vp = {0};
        if (rc == 0 && (rc = verify_plan_make(&x, s, hmpi, l->world, &vp)) == 0) {
            x.vp = &vp;
            weft_h5_lock();
            rc = read_body(&x, s, out);
            weft_h5_unlock();
            rc = weft_ckpt_agree(l->world, rc);
        }
        if (rc == 0)
            rc = weft_ckpt_agree(l->world, weft_ckpt_share_send(&share, s));
        if (rc == 0)
            rc = verify_rest(&x, l->world);
        verify_plan_free(&vp);
        weft_ckpt_share_free(&share);
        weft_h5_lock();
        if (x.f >= 0)
            H5Fclose(x.f);
        weft_h5_unlock();
        if (x.fd >= 0)
            close(x.fd);
    }
    weft_watchdog_raw_end();
    free(names);
    if (hmpi != MPI_COMM_NULL && hmpi != mpi)
        MPI_Comm_free(&hmpi);
    MPI_Comm_free(&mpi);
    if (rc)
        weft_ckpt_loaded_free(out);
    return rc;
}

/* --- one process, without a job ------------------------------------------- */

int weft_ckpt_read_config(const char *path, const char *tensor, char **config, int64_t shape[2])
{
    hid_t f;
    if (config)
        *config = NULL;
    weft_h5_lock();
    int rc = weft_ckpt_open_file(path, &f);
    if (rc == 0) {
        if (config && weft_h5_get_str(f, "config", config) != 0)
            rc = weft_error(WEFT_EDATA, "checkpoint %s has no 'config' attribute (the configuration of the run "
                            "that wrote it)", path);
        char dpath[128];
        snprintf(dpath, sizeof dpath, "params/%s", tensor ? tensor : "");
        hid_t d = rc == 0 && tensor ? (H5Lexists(f, dpath, H5P_DEFAULT) > 0 ? H5Dopen2(f, dpath, H5P_DEFAULT) : -1)
                                    : 0;
        int ndim = 0;
        if (rc == 0 && tensor && d < 0)
            rc = weft_error(WEFT_EDATA, "checkpoint %s has no tensor '%s': its configuration's model.family does "
                            "not match its tensors", path, dpath);
        if (rc == 0 && tensor)
            rc = weft_h5_shape(d, dpath, &ndim, shape);
        if (rc == 0 && tensor && ndim == 1)
            shape[1] = 0;
        if (d > 0)
            H5Dclose(d);
        H5Fclose(f);
    }
    weft_h5_unlock();
    if (rc && config) {
        free(*config);
        *config = NULL;
    }
    return rc;
}

int weft_ckpt_load_whole(const weft_ckpt_state *s, const char *path)
{
    weft_ckpt_name *names = calloc((size_t)s->ntensors + 1, sizeof *names);
    if (!names)
        return weft_error(WEFT_ENOMEM, "out of memory");
    for (int i = 0; i < s->ntensors; i++) {
        if (s->tensors[i].shard.nparts > 1) {
            free(names);
            return weft_error(WEFT_EINVAL, "weft_ckpt_load_whole: tensor '%s' is one piece of %d: a whole model "
                              "only", s->tensors[i].name, s->tensors[i].shard.nparts);
        }
        snprintf(names[i].name, sizeof names[i].name, "%s", s->tensors[i].name);
    }
    int64_t node;
    weft_ckpt_layout one = {0};
    weft_h5_lock();
    int prc = weft_ckpt_node_part(path, &one, 0, -1, &node);
    weft_h5_unlock();
    if (prc != 0) { /* a node's part: never a whole model */
        free(names);
        return weft_error(WEFT_EDATA, "%s; a whole model loads from the shared tier's file (checkpoint.dir)",
                          weft_last_error());
    }
    loader_ctx x = {path, -1, 0, 1, WEFT_CKPT_WEIGHTS_ONLY, open(path, O_RDONLY | O_CLOEXEC), staged_dev(s, 0), 0, 1};
    weft_ckpt_state weights = *s;
    weights.m = weights.v = NULL;
    weft_ckpt_loaded out;
    memset(&out, 0, sizeof out);
    weft_h5_lock();
    int rc = weft_ckpt_open_file(path, &x.f);
    if (rc == 0)
        rc = read_head(&x, names, s->ntensors, &out);
    if (rc == 0)
        rc = weft_ckpt_sum_block_of(x.f, path, &x.block);
    weft_h5_unlock();
    verify_plan vp = {0};
    if (rc == 0 && (rc = verify_plan_make(&x, &weights, MPI_COMM_NULL, NULL, &vp)) == 0) {
        x.vp = &vp;
        weft_h5_lock();
        rc = read_body(&x, &weights, &out);
        weft_h5_unlock();
    }
    if (rc == 0)
        rc = verify_rest(&x, NULL);
    verify_plan_free(&vp);
    weft_h5_lock();
    if (x.f >= 0)
        H5Fclose(x.f);
    weft_h5_unlock();
    if (x.fd >= 0)
        close(x.fd);
    weft_ckpt_loaded_free(&out);
    free(names);
    return rc;
}

void weft_ckpt_loaded_free(weft_ckpt_loaded *l)
{
    free((void *)l->meta.loader_state);
    free((void *)l->meta.base_path);
    l->meta.loader_state = NULL;
    l->meta.base_path = NULL;
    l->meta.loader_len = 0;
}

int weft_ckpt_adopt_config(const char *path, weft_config *cfg, const char *const *keys)
{
    char *ini, origin[4200];
    WEFT_CHECK(weft_ckpt_read_config(path, NULL, &ini, NULL));
    snprintf(origin, sizeof origin, "checkpoint %s", path);
    int rc = weft_config_adopt(cfg, ini, strlen(ini), origin, keys);
    free(ini);
    return rc;
}
