/*
 * bench_ckpt.c -- what a checkpoint costs the training loop, beside the
 * references measured in the same run:
 *
 *   mpirun -np 2 build/bench/bench_ckpt [--dir DIR] [--steps N] [--model 48m|124m] [--checkpoint.KEY=V ...]
 *
 * A GPT-2 of about 48M parameters (V 16384, C 768, L 5, context 64; --model
 * 124m: GPT-2 small, V 50257, C 768, L 12, context 1024) with
 * AdamW under ZeRO-1 on every rank, trained by the library trainer's step
 * (weft_trainer_step) on random tokens (micro-batch 1 x 32), saved to DIR (default build/bench-data/ckpt) with keep_last 1.
 * Rows (the slowest rank's figure for times):
 *   memcpy         a copy of this rank's share of the state, every rank at
 *                  once, median of 3 (the floor of what an asynchronous
 *                  save must block for); beside it one rank copying alone
 *   async blocked  time weft_ckpt_save keeps the step loop, median of 3 saves
 *                  (target <= 1.2x memcpy)
 *   sync save      weft_ckpt_save_wait: create .. commit, and its throughput
 *                  (median of 3, one training step before each, after two
 *                  saves not counted: see sync_save)
 *   raw write      every rank writes its share to its own file in DIR in 4 MiB
 *                  write()s and fsyncs: the directory's bandwidth (dd-style);
 *                  checkpoint throughput / raw (target >= 80%)
 *   load           weft_ckpt_load of the last checkpoint with the file out
 *                  of the page cache (posix_fadvise DONTNEED), beside every
 *                  rank reading its 1/N of the same file, also cold, right
 *                  before it: the median of 3 pairs (target >= 80%);
 *                  on several nodes also with every replica reading all
 *                  it holds (checkpoint.load_share = false), alternating
 *   file size      / the tensors' bytes (target <= 1.1x)
 *   step time      normal, and while an asynchronous save is in flight
 *                  (target <= 1.1x)
 *   practices      sync save time with the chosen settings, then with
 *                  collective metadata, and alignment off (each one
 *                  changed alone; the data is written with pwrite, so
 *                  collective transfers no longer apply)
 *   two tiers      sync saves committed in --local DIR (default
 *                  build/bench-data/ckpt-local; give a node-local disk or
 *                  /dev/shm) beside the one-tier sync save to --dir; the
 *                  drain of each to --dir (copy + fsync + rename + latest)
 *                  beside `dd bs=8M conv=fsync` of the same file to the same
 *                  directory (its source out of the page cache, as the
 *                  drain finds it), run by rank 0 in the same run (--tiers-only 1:
 *                  this and the one-tier sync save alone)
 *   --load A[,B]   only: cold loads of existing checkpoints of the model,
 *                  each beside a raw read of the file, --steps rounds
 *                  alternating A and B (a file and its format 1 twin)
 * bench/README.md has numbers and what they mean.
 */
#include "model/gpt.h"
#include "kernels/kernels.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/rng.h"
#include "runtime/readfile.h"
#include "runtime/timer.h"
#include "weft.h"
#include "train/synthetic_source.h"
#include "train/trainer.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { B = 1, T = 32 };
static int V = 16384;
static int big; /* --model 124m */

typedef struct {
    weft_ctx *ctx;
    weft_comm *world;       /* the benchmark's own measurements */
    weft_trainer *t;        /* the library trainer: its step is the work a save must not slow */
    weft_gpt *model;        /* owned by t */
    weft_ckpt_model desc;
    char dir[4096], local[4096];  /* --dir (one tier, and the shared tier), --local */
    int64_t step;
    int64_t saves; /* checkpoint steps: increasing, so retention keeps the newest */
} bench;

/* The trainer's settings for this benchmark, unless given on the command line. */
static int settings(weft_config *c, int ranks)
{
    char global[32];
    snprintf(global, sizeof global, "%d", ranks);
    const char *const kv[][2] = {
        {"train.micro_batch", "1"}, {"train.seq_len", "32"}, {"train.global_batch", global},
        {"train.steps", "1000"},    {"parallel.zero", "1"},  {"parallel.bucket_mb", "25"},
        {"optim.lr", "1e-4"},       {"optim.min_lr", "1e-5"}, {"optim.warmup", "0"},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (strcmp(weft_config_origin(c, kv[i][0]), "default") == 0)
            WEFT_CHECK(weft_config_set(c, kv[i][0], kv[i][1], "bench_ckpt"));
    return 0;
}

static int build(bench *b)
{
    WEFT_CHECK(settings(b->ctx->config, b->ctx->size));
    WEFT_CHECK(weft_trainer_new(b->ctx, &b->t));
    weft_model_part mp;
    weft_trainer_part(b->t, &mp);
    weft_gpt_config gc = {.vocab = V, .max_seq = big ? 1024 : 64, .n_layer = big ? 12 : 5, .n_head = 12,
                          .n_embd = 768};
    WEFT_CHECK(weft_gpt_new_part(&gc, &mp, mp.micro_batch, mp.seq_len, &b->model));
    weft_gpt_init(b->model, 1);
    WEFT_CHECK(weft_trainer_set_model(b->t, weft_gpt_model(b->model)));
    weft_source *src;
    WEFT_CHECK(weft_synthetic_source_open(V, T, B, 7, b->ctx->rank, &src));
    weft_trainer_set_source(b->t, src, NULL);
    return weft_trainer_ckpt_model(b->t, &b->desc);
}

/* One library training step on random tokens. */
static int step(bench *b)
{
    weft_step_stats s = {.step = b->step++};
    return weft_trainer_step(b->t, &s);
}

/* Floats of AdamW moments this rank holds (m, and as many in v). */
static size_t moments(const bench *b)
{
    size_t n = 0;
    for (int i = 0; i < b->desc.state.nranges; i++)
        n += b->desc.state.ranges[i][1];
    return n;
}

static double max_over_ranks(bench *b, double x)
{
    double m = x;
    weft_comm_allreduce(b->world, &x, &m, 1, WEFT_F64, WEFT_MAX);
    return m;
}

static weft_ckpt_meta meta_of(bench *b)
{
    return (weft_ckpt_meta){.step = b->step, .optim_t = b->step, .lr = 1e-4};
}

static double median3(double a, double b, double c)
{
    double lo = a < b ? a : b, hi = a < b ? b : a;
    return c < lo ? lo : c > hi ? hi : c;
}

/* memcpy of `bytes` between two buffers already touched, every rank at
 * once, as a save's copy into staging is: the slowest rank's time, the
 * median of 3 -- the stall's reference. *alone: the same with one rank
 * copying at a time (the slowest rank's median), which is what this row
 * measured before session 37 (then best of 3): with the memory bandwidth
 * to itself a rank's copy is 20-30% faster here. */
static double memcpy_s(bench *b, size_t bytes, double *alone)
{
    char *a = malloc(bytes), *c = malloc(bytes);
    memset(a, 1, bytes);
    /* A memset of c before the copy is a dead store the compiler drops:
     * this first copy faults c's pages in (0.45 s against 0.075 s). */
    memcpy(c, a, bytes);
    double t[3], mine[3] = {0, 0, 0};
    for (int r = 0; r < 3; r++) {
        weft_comm_barrier(b->world);
        int64_t t0 = weft_now_ns();
        memcpy(c, a, bytes);
        t[r] = max_over_ranks(b, 1e-9 * (double)(weft_now_ns() - t0));
    }
    for (int who = 0; who < b->ctx->size; who++) {
        weft_comm_barrier(b->world);
        for (int r = 0; r < 3 && who == b->ctx->rank; r++) {
            int64_t t0 = weft_now_ns();
            memcpy(c, a, bytes);
            mine[r] = 1e-9 * (double)(weft_now_ns() - t0);
        }
    }
    *alone = max_over_ranks(b, median3(mine[0], mine[1], mine[2]));
    free(a);
    free(c);
    return median3(t[0], t[1], t[2]);
}

/* Every rank writes `bytes` to its own file in dir with 4 MiB write()s and
 * fsyncs it; the slowest rank's time. */
static double raw_write_s(bench *b, size_t bytes)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/raw-r%d.bin", b->dir, b->ctx->rank);
    size_t chunk = 4u << 20;
    char *buf = malloc(chunk);
    for (size_t i = 0; i < chunk; i++)
        buf[i] = (char)(i * 7 + 1);
    weft_comm_barrier(b->world);
    int64_t t0 = weft_now_ns();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    for (size_t done = 0; fd >= 0 && done < bytes;) {
        size_t n = bytes - done < chunk ? bytes - done : chunk;
        ssize_t w = write(fd, buf, n);
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    double s = 1e-9 * (double)(weft_now_ns() - t0);
    unlink(path);
    free(buf);
    return max_over_ranks(b, s);
}

/* Drop path's pages from the page cache (they are clean once fsync'd): a
 * read after this comes from the disk. */
static void uncache(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fdatasync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
}

/* Every rank reads its 1/N of path (cold) with 4 MiB read()s; the slowest
 * rank's time. */
static double raw_read_s(bench *b, const char *path, size_t bytes)
{
    size_t chunk = 4u << 20, a = bytes / (size_t)b->ctx->size * (size_t)b->ctx->rank;
    size_t e = b->ctx->rank == b->ctx->size - 1 ? bytes : a + bytes / (size_t)b->ctx->size;
    char *buf = malloc(chunk);
    uncache(path);
    weft_comm_barrier(b->world);
    int64_t t0 = weft_now_ns();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    for (size_t off = a; fd >= 0 && off < e;) {
        ssize_t r = pread(fd, buf, e - off < chunk ? e - off : chunk, (off_t)off);
        if (r <= 0)
            break;
        off += (size_t)r;
    }
    if (fd >= 0)
        close(fd);
    double s = 1e-9 * (double)(weft_now_ns() - t0);
    free(buf);
    return max_over_ranks(b, s);
}

/* weft_ckpt_load of path (cold): the slowest rank's time. */
static int load_s(bench *b, const char *path, unsigned flags, double *secs)
{
    weft_ckpt_loaded L;
    uncache(path);
    weft_comm_barrier(b->world);
    int64_t t0 = weft_now_ns();
    WEFT_CHECK(weft_ckpt_load(&b->desc.layout, &b->desc.state, path, flags, &L));
    *secs = max_over_ranks(b, 1e-9 * (double)(weft_now_ns() - t0));
    weft_ckpt_loaded_free(&L);
    return 0;
}

static int open_ckpt(bench *b, const weft_ckpt_opts *o, weft_ckpt **c)
{
    return weft_ckpt_new(&b->desc.layout, &b->desc.state, o, "[bench]\n", c);
}

/* Median of 3 synchronous saves with options o: seconds, and file bytes. */
static weft_ckpt_stats last_sync; /* the median sync save's phases, each the slowest rank's */

static double sync_best; /* the fastest of the last sync_save's 3 */
/* the last sync_save's data phases (slowest rank), fastest and slowest of
 * the 3: on a VM the page cache's faults move this phase most (0.45-2.4 s
 * for the same bytes, bench/README.md), and the row shows it */
static double sync_data_lo, sync_data_hi;

/* Three counted sync saves; the median's time, data phase and phases. With
 * raw_bytes (per rank), each save is followed by raw_write_s(raw_bytes):
 * raw[r] is the write that followed save r, pair[r] save r's throughput
 * over that write's -- the reference taken beside each save rather than as
 * a separate series, since this VM's page cache drifts between minutes (a
 * sync save's data phase 0.45-2.4 s across runs). */
static int sync_save(bench *b, const weft_ckpt_opts *o, double *secs, double *data_s, size_t *file,
                     size_t raw_bytes, double raw[3], double pair[3])
{
    weft_ckpt *c;
    WEFT_CHECK(open_ckpt(b, o, &c));
    double t[3], d[3];
    weft_ckpt_stats ph[3];
    /* Saves -2 and -1 are not counted: the first saves of a process put
     * the file's bytes in page-cache memory it has not used before, which
     * on a VM with free page reporting (virtio-balloon) costs a host fault
     * per page: their data phase took 0.6-1.5 s against 0.21 s after,
     * once the pages of the files retention removes come back to be used
     * again (bench/README.md). A job pays that once, not per checkpoint. */
    for (int r = -2; r < 3; r++) {
        /* a training step between saves, as in a job: the writer thread
         * removes what retention drops after it reports a save, and a save
         * right behind the last would wait for that */
        if (r > -2)
            WEFT_CHECK(step(b));
        weft_ckpt_meta m = meta_of(b);
        m.step = ++b->saves;
        weft_comm_barrier(b->world);
        int64_t t0 = weft_now_ns();
        WEFT_CHECK(weft_ckpt_save_wait(c, &m));
        if (r < 0)
            continue;
        t[r] = max_over_ranks(b, 1e-9 * (double)(weft_now_ns() - t0));
        weft_ckpt_stats st;
        weft_ckpt_get_stats(c, &st);
        d[r] = max_over_ranks(b, st.data_s);
        ph[r] = st; /* each phase: the slowest rank's */
        ph[r].data_s = d[r];
        ph[r].create_s = max_over_ranks(b, st.create_s);
        ph[r].verify_s = max_over_ranks(b, st.verify_s);
        ph[r].commit_s = max_over_ranks(b, st.commit_s);
        *file = st.bytes_file ? st.bytes_file : *file;
        double reread = max_over_ranks(b, (double)st.bytes_reread), writer = max_over_ranks(b, st.write_s);
        double kept = max_over_ranks(b, (double)st.bytes_kept);
        if (getenv("BENCH_CKPT_VERBOSE") && b->ctx->rank == 0)
            printf("  save %lld: %.3f s: writer %.3f: data %.3f (create %.3f), verify %.3f (re-read for split "
                   "checksums %.1f MB, kept in the page cache for them %.1f MB), commit %.3f (slowest rank)\n",
                   (long long)m.step, t[r], writer, ph[r].data_s, ph[r].create_s, ph[r].verify_s, reread / 1e6,
                   kept / 1e6, ph[r].commit_s);
        if (raw_bytes) {
            /* a step before it too: the write must find the page cache as
             * the save did, not just refilled by the save's freed pages */
            WEFT_CHECK(step(b));
            raw[r] = raw_write_s(b, raw_bytes);
            pair[r] = ((double)*file / t[r]) / ((double)raw_bytes * b->ctx->size / raw[r]);
            if (getenv("BENCH_CKPT_VERBOSE") && b->ctx->rank == 0)
                printf("  raw write after it: %.3f s\n", raw[r]);
        }
    }
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (t[j] < t[i]) {
                double x = t[i]; t[i] = t[j]; t[j] = x;
                x = d[i]; d[i] = d[j]; d[j] = x;
                weft_ckpt_stats y = ph[i]; ph[i] = ph[j]; ph[j] = y;
            }
    last_sync = ph[1]; /* the median save's phases, printed beside the median time */
    *secs = t[1];
    *data_s = d[1];
    sync_best = t[0];
    sync_data_lo = sync_data_hi = d[0];
    for (int i = 1; i < 3; i++) {
        sync_data_lo = d[i] < sync_data_lo ? d[i] : sync_data_lo;
        sync_data_hi = d[i] > sync_data_hi ? d[i] : sync_data_hi;
    }
    return weft_ckpt_close(c);
}

/* --- two tiers ------------------------------------------------------------ */

typedef struct {
    double local_s, drain_s, dd_s; /* medians of 3: local sync save; drain; dd of the same file */
    size_t file;
} tier_figures;

/* Rank 0: `dd` of src into the directory dir with fsync, as a shell would
 * run it; seconds, or -1 when dd did not succeed. src is dropped from the
 * page cache first: the drain finds it so (a save keeps only a bounded
 * share of its file in the page cache, and the drain drops what it read). */
static double dd_s(const char *src, const char *dir)
{
    char cmd[9000], dst[4200];
    int fd = open(src, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    snprintf(dst, sizeof dst, "%s/dd-reference.bin", dir);
    snprintf(cmd, sizeof cmd, "dd if='%s' of='%s' bs=8M conv=fsync status=none", src, dst);
    int64_t t0 = weft_now_ns();
    int rc = system(cmd);
    double s = 1e-9 * (double)(weft_now_ns() - t0);
    unlink(dst);
    return rc == 0 ? s : -1;
}

/* Three sync saves committed in b->local and drained to b->dir, each
 * waited for, each followed by dd of the same file to b->dir (interleaved:
 * on a loaded machine conditions drift between separate series). */
static int two_tiers(bench *b, const weft_ckpt_opts *o, tier_figures *f)
{
    weft_ckpt_opts v = *o;
    snprintf(v.local_dir, sizeof v.local_dir, "%s", b->local);
    v.local_keep = 1, v.drain_retries = 0, v.drain_timeout = 3600;
    weft_ckpt *c;
    WEFT_CHECK(open_ckpt(b, &v, &c));
    double t[3], d[3], r[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        weft_ckpt_meta m = meta_of(b);
        m.step = ++b->saves;
        weft_comm_barrier(b->world);
        int64_t t0 = weft_now_ns();
        WEFT_CHECK(weft_ckpt_save_wait(c, &m));
        t[k] = max_over_ranks(b, 1e-9 * (double)(weft_now_ns() - t0));
        WEFT_CHECK(weft_ckpt_wait_drained(c, v.drain_timeout));
        weft_ckpt_stats st;
        weft_ckpt_get_stats(c, &st);
        /* on several nodes the writer thread assembles the shared tier's
         * file right after the local commit, and the wait includes it:
         * the local commit alone is the writer's create .. commit */
        if (b->ctx->nnodes > 1)
            t[k] = max_over_ranks(b, st.write_s);
        d[k] = max_over_ranks(b, st.drain_s); /* rank 0's: the others hold 0 */
        f->file = st.bytes_file;
        char last[4200];
        /* on several nodes the local tier holds each node's part: dd the
         * whole file the drain assembled in the shared tier instead */
        snprintf(last, sizeof last, "%s/step-%08lld.h5", b->ctx->nnodes > 1 ? b->dir : b->local, (long long)m.step);
        if (b->ctx->rank == 0)
            r[k] = dd_s(last, b->dir);
    }
    f->local_s = median3(t[0], t[1], t[2]);
    f->drain_s = median3(d[0], d[1], d[2]);
    f->dd_s = median3(r[0], r[1], r[2]);
    return weft_ckpt_close(c);
}

static void print_tiers(const bench *b, const tier_figures *f, double one_tier_s)
{
    double mb = (double)f->file / 1e6;
    printf("two tiers (--local %s, drained to --dir %s), median of 3:\n", b->local, b->dir);
    printf("%-34s %8.3f s   %6.0f MB/s   %.2fx the one-tier save's %.3f s\n", "  sync save, local tier commit",
           f->local_s, mb / f->local_s, f->local_s / one_tier_s, one_tier_s);
    printf("%-34s %8.3f s   %6.0f MB/s   (background: copy + fsync + rename + latest)\n",
           "  drain to the shared tier", f->drain_s, mb / f->drain_s);
    if (f->dd_s > 0)
        printf("%-34s %8.3f s   %6.0f MB/s   drain = %.0f%% of dd's throughput\n",
               "  dd bs=8M conv=fsync, same file", f->dd_s, mb / f->dd_s, 100 * f->dd_s / f->drain_s);
    else
        printf("  dd bs=8M conv=fsync, same file    (dd did not run)\n");
}

static double async_copy; /* of the blocked time: the copy into staging */

/* One training step; its time (the slowest rank's) added to *secs. */
static int timed_step(bench *b, double *secs)
{
    int64_t t0 = weft_now_ns();
    WEFT_CHECK(step(b));
    *secs += max_over_ranks(b, 1e-9 * (double)(weft_now_ns() - t0));
    return 0;
}

typedef struct {
    double blocked;     /* the step loop's stall, median of the saves' */
    double normal;      /* a step's time before the saves, mean */
    double during;      /* a step's time while a save is in flight, mean */
    int ndur;           /* steps run during the saves */
    double pair[3];     /* each save's steps during / the steps right before it */
    double ratio;       /* the median of pair[] */
} async_figures;

/* Three asynchronous saves, each after nsteps timed steps without one: the
 * stall, and the steps run while each save is in flight against the steps
 * right before it -- the target the median of the three pairs' ratios,
 * as for the save and the load: the step time itself drifts by 30% over
 * the minute between a measurement at the start and the saves. */
static int async_saves(bench *b, const weft_ckpt_opts *o, int nsteps, async_figures *f)
{
    weft_ckpt *c;
    WEFT_CHECK(open_ckpt(b, o, &c));
    double blk[3], copy[3], normal = 0, during = 0;
    *f = (async_figures){0};
    for (int r = 0; r < 3; r++) {
        double before = 0, in = 0;
        int n = 0;
        for (int i = 0; i < nsteps; i++)
            WEFT_CHECK(timed_step(b, &before));
        weft_ckpt_meta m = meta_of(b);
        m.step = ++b->saves;
        WEFT_CHECK(weft_ckpt_save(c, &m, NULL));
        weft_ckpt_stats st;
        weft_ckpt_get_stats(c, &st);
        blk[r] = max_over_ranks(b, st.blocked_s);
        copy[r] = max_over_ranks(b, st.copy_s);
        /* steps until every rank sees the commit */
        for (;;) {
            int32_t done = weft_ckpt_last(c, NULL, 0) == m.step, all;
            weft_comm_allreduce(b->world, &done, &all, 1, WEFT_I32, WEFT_MIN);
            if (all)
                break;
            WEFT_CHECK(timed_step(b, &in));
            n++;
        }
        normal += before;
        during += in;
        f->ndur += n;
        f->pair[r] = n ? (in / n) / (before / nsteps) : 0;
    }
    f->blocked = median3(blk[0], blk[1], blk[2]);
    async_copy = median3(copy[0], copy[1], copy[2]);
    f->normal = normal / (3 * nsteps);
    f->during = f->ndur ? during / f->ndur : 0;
    f->ratio = median3(f->pair[0], f->pair[1], f->pair[2]);
    return weft_ckpt_close(c);
}

/* A guest whose free pages go back to its host as soon as they are free
 * (virtio-balloon free page reporting, min_free_ms 0) pays a host fault for
 * each page-cache page that was reported: a 124 M save's data phase then
 * moves 10x between saves (bench/README.md, session 35). Said beside the
 * figures so that a reader of this machine's numbers knows. */
static int read_param(const char *name, char *buf, size_t len)
{
    char p[128], *text = NULL;
    size_t n = 0;
    snprintf(p, sizeof p, "/sys/module/page_reporting/parameters/%s", name);
    buf[0] = '\0';
    if (weft_read_file(p, 64, "a page_reporting parameter", &text, &n) == 0)
        snprintf(buf, len, "%.*s", (int)strcspn(text, "\n"), text);
    free(text);
    return buf[0] ? 0 : -1;
}

static void print_page_reporting(void)
{
    char ms[32], wait[32], kib[32];
    if (read_param("min_free_ms", ms, sizeof ms) != 0)
        return;
    if (read_param("max_waiting_mib", wait, sizeof wait) != 0)
        snprintf(wait, sizeof wait, "?");
    double gb = read_param("reported_kib", kib, sizeof kib) == 0 ? atof(kib) * 1024 / 1e9 : 0;
    printf("free page reporting to a hypervisor: min_free_ms %s, max_waiting_mib %s, %.0f GB reported since boot "
           "(a reported page costs a host fault when the page cache reuses it: the sync save's data phase varies "
           "most)\n", ms, wait, gb);
}

static int tiers_only; /* --tiers-only 1 */
static char load_files[2][4096]; /* --load A[,B] */

/* --load A[,B]: only loads of existing checkpoints of this model (cold),
 * each beside a raw read of the same file, rounds alternating A and B --
 * e.g. a file and its format 1 twin (tests/ckpt/sum_check.py). */
static int load_only(bench *b, int rounds)
{
    int nf = load_files[1][0] ? 2 : 1;
    for (int r = 0; r < rounds; r++)
        for (int f = 0; f < nf; f++) {
            struct stat st;
            if (stat(load_files[f], &st) != 0)
                return weft_error(WEFT_ENOENT, "--load %s: %s", load_files[f], strerror(errno));
            double ld, rd = raw_read_s(b, load_files[f], (size_t)st.st_size);
            WEFT_CHECK(load_s(b, load_files[f], 0, &ld));
            if (b->ctx->rank == 0)
                printf("round %d %-40s load %.3f s, raw read %.3f s: %3.0f%% of raw\n", r + 1, load_files[f], ld,
                       rd, 100 * rd / ld);
        }
    return 0;
}

/* dir's checkpoint files (step-*, their temporaries, latest) removed: a
 * bench run starts from empty tiers. Once, a local tier left by a run of
 * the other model size was newer than the shared one, and the catch-up
 * drained it into this run's --dir. */
static void empty_ckpt_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[4400];
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, "step-", 5) == 0 || strncmp(e->d_name, ".step-", 6) == 0 ||
            strcmp(e->d_name, "latest") == 0) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
}

static int run(bench *b, int nsteps)
{
    WEFT_CHECK(build(b));
    if (load_files[0][0])
        return load_only(b, nsteps);
    if (b->ctx->rank == 0)
        empty_ckpt_dir(b->dir);
    if (b->ctx->local_rank == 0)
        empty_ckpt_dir(b->local);
    WEFT_CHECK(weft_comm_barrier(b->world));
    weft_ckpt_opts o;
    weft_ckpt_opts_from_config(b->ctx->config, &o);
    if (o.collective < 0) /* auto, as weft_ckpt_new resolves it */
        o.collective = b->ctx->nnodes > 1;
    if (o.coll_metadata < 0)
        o.coll_metadata = b->ctx->nnodes > 1;
    snprintf(o.dir, sizeof o.dir, "%s", b->dir);
    o.keep_last = 1;
    o.async = 1;
    for (int i = 0; i < 2; i++)
        WEFT_CHECK(step(b));
    /* this rank's share: what it writes (params share + its moments) */
    size_t share = (weft_gpt_num_params(b->model) / (size_t)b->ctx->size + 2 * moments(b)) * sizeof(float);
    double mc_alone, mc = memcpy_s(b, share, &mc_alone);
    double sync_s, data_s;
    async_figures af;
    size_t file = 0;
    double raw_after[3], pair[3];
    WEFT_CHECK(sync_save(b, &o, &sync_s, &data_s, &file, share, raw_after, pair));
    double best = sync_best, data_lo = sync_data_lo, data_hi = sync_data_hi;
    weft_ckpt_stats ph = last_sync;
    tier_figures tf = {0};
    WEFT_CHECK(two_tiers(b, &o, &tf));
    if (tiers_only) {
        if (b->ctx->rank == 0)
            print_tiers(b, &tf, sync_s);
        return 0;
    }
    double raw = median3(raw_after[0], raw_after[1], raw_after[2]);
    char last[4200];
    snprintf(last, sizeof last, "%s/step-%08lld.h5", b->dir, (long long)b->saves);
    /* Each load right after a raw read of the same file, the target the
     * median of the three pairs' ratios, as for the save: this VM's disk
     * reads the same file in 0.5-1.3 s from one minute to the next, and
     * three raw reads and then three loads compared two moments. On
     * several nodes, after each load: every replica reading all it holds,
     * against the replicas on different nodes sharing the reading
     * (checkpoint/share.h). */
    double ld[3], rds[3], load_pair[3], le[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        rds[k] = raw_read_s(b, last, file);
        WEFT_CHECK(load_s(b, last, 0, &ld[k]));
        load_pair[k] = rds[k] / ld[k];
        if (b->ctx->nnodes > 1)
            WEFT_CHECK(load_s(b, last, WEFT_CKPT_EVERY_REPLICA, &le[k]));
    }
    double rd = median3(rds[0], rds[1], rds[2]), load_ratio = median3(load_pair[0], load_pair[1], load_pair[2]);
    ld[0] = median3(ld[0], ld[1], ld[2]);
    le[0] = median3(le[0], le[1], le[2]);
    WEFT_CHECK(async_saves(b, &o, nsteps, &af));
    /* the practices, each changed alone from what this run chose (the data
     * goes with pwrite: collective transfers no longer apply) */
    const char *what[] = {"collective metadata", "alignment off"};
    enum { NALT = 2 };
    double alt[NALT], alt_best[NALT], d;
    for (int k = 0; k < NALT; k++) {
        weft_ckpt_opts v = o;
        if (k == 0)
            v.coll_metadata = 1;
        if (k == 1)
            v.alignment = 0;
        WEFT_CHECK(sync_save(b, &v, &alt[k], &d, &file, 0, NULL, NULL));
        alt_best[k] = sync_best;
    }
    if (b->ctx->rank != 0)
        return 0;
    int ranks = b->ctx->size;
    double mb = (double)file / 1e6, raw_bw = (double)share * ranks / 1e6 / raw, ck_bw = mb / sync_s;
    double tensors = 3.0 * (double)weft_gpt_num_params(b->model) * sizeof(float);
    printf("state: %.1fM parameters + AdamW m, v (ZeRO-1 over %d ranks): %.0f MB file, %.0f MB per rank\n",
           weft_gpt_num_params(b->model) / 1e6, ranks, mb, share / 1e6);
    print_page_reporting();
    printf("%-34s %8.3fx the tensors' %.0f MB (target <= 1.1x)  %s\n", "file size", (double)file / tensors,
           tensors / 1e6, (double)file <= 1.1 * tensors ? "MET" : "MISSED");
    printf("%-34s %8.3f s   every rank at once (%.3f s one rank alone)\n", "memcpy of a rank's share", mc,
           mc_alone);
    printf("%-34s %8.3f s   %.2fx memcpy (target <= 1.2x)  %s; of which the copy to staging %.3f s\n",
           "async save: step loop blocked", af.blocked, af.blocked / mc, af.blocked <= 1.2 * mc ? "MET" : "MISSED",
           async_copy);
    printf("%-34s %8.3f s   %6.0f MB/s (data phase alone %.3f s, %.0f MB/s)\n", "sync save (create .. commit)",
           sync_s, ck_bw, data_s, mb / data_s);
    printf("%-34s data + checked behind %.3f s, last check + checksums %.3f s, fsync + rename + latest %.3f s\n",
           "  its phases (slowest rank)", ph.data_s, ph.verify_s, ph.commit_s);
    printf("%-34s %.3f to %.3f s (the pwrites and the check behind them: on a VM the page cache's faults move them most)\n",
           "  data phase of the 3 saves", data_lo, data_hi);
    printf("%-34s %8.3f s   %6.0f MB/s   %.0f%% of raw\n", "  the fastest of its 3", best, mb / best,
           100 * mb / best / raw_bw);
    printf("%-34s %8.3f s   %6.0f MB/s (median; one right after each save)\n", "raw write, same dir (dd + fsync)",
           raw, raw_bw);
    /* the target: each save against the raw write taken right after it,
     * the median of the three pairs */
    double ratio = median3(pair[0], pair[1], pair[2]);
    printf("%-34s %8.0f%%  of raw, median of the save/raw pairs %.0f%% %.0f%% %.0f%% (target >= 80%%)  %s\n",
           "checkpoint write throughput", 100 * ratio, 100 * pair[0], 100 * pair[1], 100 * pair[2],
           ratio >= 0.8 ? "MET" : "MISSED");
    printf("%-34s %8.3f s   %6.0f MB/s (page cache dropped first)\n", "load (weft_ckpt_load, verified)", ld[0],
           mb / ld[0]);
    if (le[0] > 0)
        printf("%-34s %8.3f s   %6.0f MB/s (checkpoint.load_share = false)\n", "  every replica reading all it holds",
               le[0], mb / le[0]);
    printf("%-34s %8.3f s   %6.0f MB/s (median; one right before each load)\n", "raw read, 1/N per rank (cold)", rd,
           mb / rd);
    printf("%-34s %8.0f%%  of raw, median of the raw/load pairs %.0f%% %.0f%% %.0f%% (target >= 80%%)  %s\n",
           "load throughput", 100 * load_ratio, 100 * load_pair[0], 100 * load_pair[1], 100 * load_pair[2],
           load_ratio >= 0.8 ? "MET" : "MISSED");
    printf("%-34s %8.3f s normal, %.3f s during a save (%d steps): %.2fx, median of the pairs %.2fx %.2fx %.2fx "
           "(target <= 1.1x)  %s\n", "step time", af.normal, af.during, af.ndur, af.ratio, af.pair[0], af.pair[1],
           af.pair[2], af.ndur && af.ratio <= 1.1 ? "MET" : "MISSED");
    printf("parallel-HDF5 practices, sync save, median (fastest) of 3: as chosen (coll_metadata=%d alignment=%zu) "
           "%.3f s (%.3f)", o.coll_metadata, o.alignment, sync_s, best);
    for (int k = 0; k < NALT; k++)
        printf("; %s %.3f s (%.3f)", what[k], alt[k], alt_best[k]);
    printf("\n");
    print_tiers(b, &tf, sync_s);
    return 0;
}

int main(int argc, char **argv)
{
    static const weft_config_key *const keys[] = {WEFT_TRAINER_CONFIG_KEYS, NULL};
    if (weft_cli_wants_help(argc, argv)) {
        printf("usage: mpirun -np 2 bench_ckpt [--dir DIR] [--local DIR] [--tiers-only 1] [--steps N]\n"
               "                  [--model 48m|124m] [--load A[,B]] [--checkpoint.KEY=VALUE ...]\n"
               "What a checkpoint costs the training loop (save, stall, load, step time, two tiers), each\n"
               "figure beside a reference measured in the same run (memcpy, dd + fsync, a raw read).\n"
               "--steps N: the steps timed without a save before each of the 3 async saves (default 4).\n"
               "--load A[,B]: only cold loads of existing checkpoints of the model, each beside a raw read\n"
               "of the file, --steps rounds alternating A and B.\n"
               "BENCH_CKPT_VERBOSE=1 prints each sync save's phases. bench/README.md explains the rows;\n"
               "bench/ckpt_nodes.sh runs it on three network-namespace nodes.\n");
        return 0;
    }
    weft_ctx *ctx;
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    bench b = {.ctx = ctx};
    snprintf(b.dir, sizeof b.dir, "build/bench-data/ckpt");
    snprintf(b.local, sizeof b.local, "build/bench-data/ckpt-local");
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"local", required_argument, NULL, 'l'},
                                         {"model", required_argument, NULL, 'm'},
                                         {"steps", required_argument, NULL, 's'},
                                         {"tiers-only", required_argument, NULL, 't'},
                                         {"load", required_argument, NULL, 'L'},
                                         {NULL, 0, NULL, 0}};
    weft_cli cli;
    weft_cli_init(&cli, "bench_ckpt", argc, argv, opts, ctx->rank ? WEFT_CLI_QUIET : 0);
    long long steps = 4, tiers = 0;
    for (int c; rc == 0 && (c = weft_cli_next(&cli)) != WEFT_CLI_END;) {
        if (c == 'd')
            snprintf(b.dir, sizeof b.dir, "%s", cli.arg);
        else if (c == 'l')
            snprintf(b.local, sizeof b.local, "%s", cli.arg);
        else if (c == 'm' && (strcmp(cli.arg, "48m") == 0 || strcmp(cli.arg, "124m") == 0))
            big = strcmp(cli.arg, "124m") == 0;
        else if (c == 'm')
            rc = weft_cli_bad_value(&cli, "48m or 124m");
        else if (c == 's')
            rc = weft_cli_long(&cli, 1, 1000000, &steps);
        else if (c == 't')
            rc = weft_cli_long(&cli, 0, 1, &tiers);
        else if (c == 'L') {
            const char *comma = strchr(cli.arg, ',');
            snprintf(load_files[0], sizeof load_files[0], "%.*s", comma ? (int)(comma - cli.arg) : 4000, cli.arg);
            snprintf(load_files[1], sizeof load_files[1], "%s", comma ? comma + 1 : "");
        }
        else
            rc = WEFT_EXIT_USAGE;
    }
    if (rc == 0)
        rc = weft_cli_operands(&cli, 0, 0, "no operands");
    if (rc) {
        weft_finalize(ctx);
        return WEFT_EXIT_USAGE;
    }
    int nsteps = (int)steps;
    tiers_only = (int)tiers;
    if (big)
        V = 50257;
    mkdir("build/bench-data", 0750);
    weft_kernels_init(1);
    rc = weft_comm_world(ctx, NULL, &b.world);
    if (rc == 0)
        rc = run(&b, nsteps);
    if (rc)
        WEFT_ERROR("bench_ckpt: %s", weft_last_error());
    weft_ckpt_model_free(&b.desc);
    weft_trainer_close(b.t, 0);
    weft_comm_free(b.world);
    weft_finalize(ctx);
    return weft_exit_code(rc);
}
