/*
 * ckpt_pattern.c -- a checkpoint of known values written by the job's
 * writer (pwrite at the datasets' offsets, checkpoint/save_data.c), for an
 * independent reader to check (tests/ckpt/test_direct.sh: h5py).
 *
 *   mpirun -np 2 ckpt_pattern DIR LAYOUT [device|load] [--checkpoint.KEY=VALUE ...]
 *
 * LAYOUT: "tp" (tp_size = world: split tensors interleave the ranks' bytes
 * row by row, blocked ones too) or "zero" (dp_size = world, ZeRO-1: every
 * rank holds every tensor whole, the moments are split mid-tensor and
 * mid-row). Element (r, c) of tensor number t at its global shape (cols C;
 * 1-D: c = 0, C = 1) holds t * 1e4 + r * C + c; its m holds the negative,
 * its v twice it. The tensors: one large enough (9.4 MB) to cross the
 * read-back's pieces. Saves step 7 into DIR with weft_ckpt_save_wait and
 * prints "saved" on rank 0; exits 0, or the error's exit code.
 *
 * After the save rank 0 prints how much of the file the page cache still
 * holds: "page cache after the save: K of N KiB" (mincore; "not measured"
 * where the directory is in memory, tmpfs): a save drops what it wrote
 * once checked, the pages of TP-split datasets -- kept for their
 * checksums -- once hashed (checkpoint/save_data.c), so K is about the
 * HDF5 metadata the commit wrote last.
 *
 * After the save rank 0 also prints "writer threads at nice N: K", the
 * threads of the process at the writer's nice level (checkpoint/writer.c)
 * while the writer is idle between saves: test_direct.sh expects one at 15;
 * and whether the save (weft_ckpt_save_wait) was written at the calling
 * thread's own nice value (a sync save is the caller's, not the niced
 * writer thread's): test_direct.sh expects "yes".
 *
 * With `load`, nothing is saved: DIR's step 7 (written by an earlier run,
 * on any number of ranks, or rewritten by a test) is loaded into fresh
 * buffers in host memory, which must hold the pattern; rank 0 prints
 * "reloaded". Otherwise, exits as the load does (65: a checksum fails).
 *
 * With `device`, the state lives in an arena of the process's device (the
 * cpu) and says so (weft_ckpt_state.dev): the save stages it through the
 * device layer's copies, events and staging stream (what a GPU's state
 * takes) with no device allocation (the pinned staging buffer is made by
 * weft_ckpt_new), and the checkpoint is then loaded back the GPU's way
 * (WEFT_CKPT_STAGED: host memory, then host->device copies) into zeroed
 * buffers that must equal the ones saved; rank 0 prints "reloaded".
 */
#include "checkpoint/ckpt.h"
#include "collectives/comm.h"
#include "runtime/ctx.h"
#include "runtime/device.h"
#include "runtime/error.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef struct {
    const char *name;
    int64_t d0, d1;  /* global; d1 = 0: one dimension */
    int dim, blocks; /* split along dim in blocks (dim -1: whole) */
} spec;

static const spec specs[] = {
    {"a.weight", 6, 10, 1, 1},     /* columns split: row pieces of every rank interleave */
    {"b.weight", 8, 6, 0, 1},      /* rows split: one run per rank */
    {"c.bias", 7, 0, -1, 1},       /* whole, one dimension */
    {"d.weight", 4, 12, 1, 3},     /* columns in 3 blocks (a fused qkv) */
    {"e.weight", 1024, 2304, -1, 1}, /* 9.4 MB, whole */
    {"f.bias", 12, 0, 0, 1},       /* one dimension, split */
    {"g.weight", 256, 2048, 1, 1}, /* 2 MiB, columns split: page-sized row pieces (the page cache, below) */
};
#define NT (int)(sizeof specs / sizeof specs[0])

/* The global index along the split dimension of local index i (shard.h). */
static int64_t global_of(const weft_shard_spec *s, int64_t i)
{
    int64_t g = s->global_shape[s->split_dim], per = g / s->nblocks, sz = per / s->nparts;
    return (i / sz) * per + s->part * sz + i % sz;
}

static void fill(float *p, int t, const weft_shard_spec *s)
{
    int64_t loc[2];
    weft_shard_local_shape(s, loc);
    int64_t rows = loc[0], cols = s->ndim == 2 ? loc[1] : 1, gcols = s->ndim == 2 ? s->global_shape[1] : 1;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            int64_t r = s->split_dim == 0 ? global_of(s, i) : i, c = s->split_dim == 1 ? global_of(s, j) : j;
            p[i * cols + j] = (float)(t * 10000 + r * gcols + c);
        }
}

/* Three buffers of n floats in one arena of d, zeroed. */
static int dev_buffers(weft_dev *d, size_t n, weft_device_arena **a, float *b[3])
{
    WEFT_CHECK(weft_device_arena_new(d, "ckpt_pattern", 3 * (n * sizeof(float) + WEFT_DEVICE_ALIGN), a));
    for (int i = 0; i < 3; i++) {
        WEFT_CHECK(weft_device_arena_alloc(*a, n * sizeof(float), 0, (void **)&b[i]));
        memset(b[i], 0, n * sizeof(float));
    }
    return 0;
}

/* Prints how many KiB of DIR's step 7 are in the page cache (mincore). */
static void print_resident(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/step-00000007.h5", dir);
    struct statfs fs;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || fstatfs(fd, &fs) != 0 || fs.f_type == TMPFS_MAGIC || st.st_size == 0) {
        printf("page cache after the save: not measured (%s)\n", fd < 0 ? strerror(errno) : "in memory, tmpfs");
        if (fd >= 0)
            close(fd);
        return;
    }
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = ((size_t)st.st_size + page - 1) / page, in = 0;
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    unsigned char *vec = malloc(n);
    if (map != MAP_FAILED && vec && mincore(map, (size_t)st.st_size, vec) == 0) {
        for (size_t i = 0; i < n; i++)
            in += vec[i] & 1;
        printf("page cache after the save: %zu of %zu KiB\n", in * page / 1024, n * page / 1024);
    } else {
        printf("page cache after the save: not measured (%s)\n", strerror(errno));
    }
    free(vec);
    if (map != MAP_FAILED)
        munmap(map, (size_t)st.st_size);
    close(fd);
}

/* Load DIR's step 7 into fresh buffers -- with a device, the GPU's way:
 * host memory, then copies up -- which must hold what st holds (every
 * parameter, the moments of this rank's range). */
static int reload(const weft_ckpt_layout *l, const weft_ckpt_state *st, const char *dir, size_t nm)
{
    weft_device_arena *a = NULL;
    float *b[3] = {0};
    if (st->dev)
        WEFT_CHECK(dev_buffers(st->dev, st->n, &a, b));
    for (int i = 0; i < 3 && !st->dev; i++)
        if (!(b[i] = calloc(st->n + 1, sizeof(float))))
            return weft_error(WEFT_ENOMEM, "out of memory");
    weft_ckpt_state back = *st;
    back.params = b[0], back.m = b[1], back.v = b[2];
    char path[4200];
    snprintf(path, sizeof path, "%s/step-00000007.h5", dir);
    weft_ckpt_loaded L;
    int rc = weft_ckpt_load(l, &back, path, st->dev ? WEFT_CKPT_STAGED : 0, &L);
    if (rc == 0) {
        weft_ckpt_loaded_free(&L);
        const float *want[3] = {st->params, st->m, st->v};
        size_t count[3] = {st->n, nm, nm};
        for (int k = 0; k < 3 && rc == 0; k++)
            if (memcmp(b[k], want[k], count[k] * sizeof(float)) != 0)
                rc = weft_error(WEFT_EDATA, "reloaded%s, the %s differ from those saved",
                                st->dev ? " through the device layer" : "",
                                k == 0 ? "parameters" : k == 1 ? "first moments" : "second moments");
    }
    if (a)
        weft_device_arena_free(a);
    for (int i = 0; i < 3 && !st->dev; i++)
        free(b[i]);
    return rc;
}

/* Threads of this process whose nice value (field 19 of
 * /proc/self/task/T/stat) is nice. */
static int threads_at_nice(int nice)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)) != NULL) {
        char path[300], buf[1024];
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        FILE *f = e->d_name[0] != '.' ? fopen(path, "r") : NULL;
        size_t got = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        buf[got] = 0;
        char *p = strrchr(buf, ')'); /* the name may hold spaces; the fields follow it */
        int v, field = 3;           /* p: the space before field 3 */
        for (p = p ? strchr(p, ' ') : NULL; p && field < 19; field++)
            p = strchr(p + 1, ' ');
        if (p && sscanf(p, "%d", &v) == 1 && v == nice)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

int main(int argc, char **argv)
{
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {weft_ckpt_config_keys, NULL};
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    if (argc < 3 || argc > 4 || (strcmp(argv[2], "tp") && strcmp(argv[2], "zero")) ||
        (argc == 4 && strcmp(argv[3], "device") && strcmp(argv[3], "load"))) {
        fprintf(stderr, "usage: ckpt_pattern DIR tp|zero [device|load] [--checkpoint.KEY=VALUE ...]\n");
        return 64;
    }
    int load_only = argc == 4 && strcmp(argv[3], "load") == 0;
    weft_dev *dev = argc == 4 && !load_only ? weft_device_current() : NULL;
    weft_device_arena *arena = NULL;
    int tp = strcmp(argv[2], "tp") == 0, rank = ctx->rank, size = ctx->size;
    weft_comm *world;
    float *params = NULL, *m = NULL, *v = NULL;
    WEFT_CHECK_GOTO(weft_comm_world(ctx, NULL, &world), rc, out);
    weft_tensor tens[NT];
    size_t n = 0;
    for (int t = 0; t < NT; t++) {
        const spec *p = &specs[t];
        weft_shard_spec s = tp && p->dim >= 0 ? weft_shard_split(p->d0, p->d1, p->dim, p->blocks, rank, size)
                                              : weft_shard_whole(p->d0, p->d1);
        tens[t] = weft_tensor_param(p->name, s, n, 0);
        n += tens[t].numel;
    }
    if (dev) {
        float *b[3];
        WEFT_CHECK_GOTO(dev_buffers(dev, n, &arena, b), rc, out);
        params = b[0], m = b[1], v = b[2];
    } else {
        params = malloc(n * sizeof *params), m = malloc(n * sizeof *m), v = malloc(n * sizeof *v);
    }
    if (!params || !m || !v)
        return 70;
    for (int t = 0; t < NT; t++)
        fill(params + tens[t].offset, t, &tens[t].shard);
    /* ZeRO-1: this rank's even share of the flat buffer (mid-tensor, mid-row) */
    size_t range[1][2] = {{tp ? 0 : n * (size_t)rank / (size_t)size, 0}};
    range[0][1] = tp ? n : n * (size_t)(rank + 1) / (size_t)size - range[0][0];
    for (size_t k = 0; k < range[0][1]; k++) {
        m[k] = -params[range[0][0] + k];
        v[k] = 2 * params[range[0][0] + k];
    }
    weft_ckpt_layout l = {.world = world, .dp_rank = tp ? 0 : rank, .dp_size = tp ? 1 : size,
                          .tp_rank = tp ? rank : 0, .tp_size = tp ? size : 1, .pp_size = 1, .zero = !tp};
    weft_ckpt_state st = {.params = params, .n = n, .tensors = tens, .ntensors = NT, .m = m, .v = v,
                          .ranges = (const size_t(*)[2])range, .nranges = 1, .dev = dev};
    if (load_only) {
        rc = reload(&l, &st, argv[1], range[0][1]);
        if (rc == 0 && rank == 0)
            printf("reloaded\n");
        goto out;
    }
    weft_ckpt_opts o;
    weft_ckpt_opts_from_config(ctx->config, &o);
    snprintf(o.dir, sizeof o.dir, "%s", argv[1]);
    o.async = 0;
    weft_ckpt *c;
    WEFT_CHECK_GOTO(weft_ckpt_new(&l, &st, &o, "", &c), rc, out);
    weft_ckpt_meta meta = {.step = 7, .optim_t = 7, .lr = 1e-3, .rng = 42 + (uint64_t)rank};
    if (dev) /* the staging buffer and events were made by weft_ckpt_new: a save makes none */
        weft_device_mark_start(dev);
    rc = weft_ckpt_save_wait(c, &meta);
    if (rc == 0 && dev && weft_device_allocs_after_start(dev) != 0)
        rc = weft_error(WEFT_EINTERNAL, "a save made %ld device allocations (staging is allocated at start)",
                        weft_device_allocs_after_start(dev));
    if (rc == 0 && rank == 0)
        printf("writer threads at nice 15: %d\n", threads_at_nice(15));
    if (rc == 0 && rank == 0) { /* a sync save: written by this thread, at its own priority (writer.c save()) */
        weft_ckpt_stats cs;
        weft_ckpt_get_stats(c, &cs);
        errno = 0;
        int mine = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
        printf("sync save written at the caller's nice: %s (%d, caller %d)\n",
               errno == 0 && cs.write_nice == mine ? "yes" : "no", cs.write_nice, mine);
    }
    weft_ckpt_stats kept; /* what each rank's check kept for the split checksums (save_data.c drop_checked) */
    weft_ckpt_get_stats(c, &kept);
    int rc2 = weft_ckpt_close(c);
    rc = rc ? rc : rc2;
    if (rc == 0)
        printf("rank %d kept %zu of its %zu bytes for the split checksums\n", rank, kept.bytes_kept,
               kept.bytes_rank);
    if (rc == 0 && rank == 0) {
        print_resident(argv[1]);
        printf("saved\n");
    }
    if (rc == 0 && dev)
        rc = reload(&l, &st, argv[1], range[0][1]);
    if (rc == 0 && dev && rank == 0)
        printf("reloaded\n");
out:
    if (rc)
        fprintf(stderr, "ckpt_pattern: %s\n", weft_last_error()); /* "rank N: ..." */
    if (arena)
        weft_device_arena_free(arena);
    else {
        free(params);
        free(m);
        free(v);
    }
    int code = weft_exit_code(rc);
    weft_finalize(ctx);
    return code;
}
