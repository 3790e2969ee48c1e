/*
 * bench_ckpt.c -- what a checkpoint costs the training loop, beside the
 * references measured in the same run:
 *
 *   mpirun -np 2 build/bench/bench_ckpt [--dir DIR] [--steps N] [--checkpoint.KEY=V ...]
 *
 * A GPT-2 of about 48M parameters (V 16384, C 768, L 5, context 64) with
 * AdamW under ZeRO-1 on every rank, trained by the library trainer's step
 * (weft_trainer_step) on random tokens (micro-batch 1 x 32), saved to DIR (default build/bench-data/ckpt) with keep_last 1.
 * Rows (the slowest rank's figure for times):
 *   memcpy         this rank's share of the state copied once (the floor of
 *                  what an asynchronous save must block for)
 *   async blocked  time weft_ckpt_save keeps the step loop (target <= 2x memcpy)
 *   sync save      weft_ckpt_save_wait: create .. commit, and its throughput
 *   raw write      every rank writes its share to its own file in DIR in 4 MiB
 *                  write()s and fsyncs: the directory's bandwidth (dd-style);
 *                  checkpoint throughput / raw (target >= 60%)
 *   step time      normal, and while an asynchronous save is in flight
 *                  (target <= 1.1x)
 *   practices      sync save time with alignment off, collective metadata
 *                  off, independent data transfers (each alone)
 * bench/README.md has numbers and what they mean.
 */
#include "model/gpt.h"
#include "kernels/kernels.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/rng.h"
#include "runtime/timer.h"
#include "weft.h"
#include "train/synthetic_source.h"
#include "train/trainer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { B = 1, T = 32, V = 16384 };

typedef struct {
    weft_ctx *ctx;
    weft_comm *world;       /* the benchmark's own measurements */
    weft_trainer *t;        /* the library trainer: its step is the work a save must not slow */
    weft_gpt *model;        /* owned by t */
    weft_ckpt_model desc;
    char dir[4096];
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
    weft_gpt_config gc = {.vocab = V, .max_seq = 64, .n_layer = 5, .n_head = 12, .n_embd = 768};
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

/* memcpy of `bytes` between two buffers already touched. */
static double memcpy_s(size_t bytes)
{
    char *a = malloc(bytes), *c = malloc(bytes);
    memset(a, 1, bytes);
    memset(c, 2, bytes);
    double best = 1e9;
    for (int r = 0; r < 3; r++) {
        int64_t t0 = weft_now_ns();
        memcpy(c, a, bytes);
        double s = 1e-9 * (double)(weft_now_ns() - t0);
        best = s < best ? s : best;
    }
    free(a);
    free(c);
    return best;
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

static int open_ckpt(bench *b, const weft_ckpt_opts *o, weft_ckpt **c)
{
    return weft_ckpt_new(&b->desc.layout, &b->desc.state, o, "[bench]\n", c);
}

/* Median of 3 synchronous saves with options o: seconds, and file bytes. */
static weft_ckpt_stats last_sync; /* rank 0's phases of the last sync save */

static int sync_save(bench *b, const weft_ckpt_opts *o, double *secs, double *data_s, size_t *file)
{
    weft_ckpt *c;
    WEFT_CHECK(open_ckpt(b, o, &c));
    double t[3], d[3];
    for (int r = 0; r < 3; r++) {
        weft_ckpt_meta m = meta_of(b);
        m.step = ++b->saves;
        weft_comm_barrier(b->world);
        int64_t t0 = weft_now_ns();
        WEFT_CHECK(weft_ckpt_save_wait(c, &m));
        t[r] = max_over_ranks(b, 1e-9 * (double)(weft_now_ns() - t0));
        weft_ckpt_stats st;
        weft_ckpt_get_stats(c, &st);
        d[r] = max_over_ranks(b, st.data_s);
        last_sync = st;
        *file = st.bytes_file ? st.bytes_file : *file;
    }
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (t[j] < t[i]) {
                double x = t[i]; t[i] = t[j]; t[j] = x;
                x = d[i]; d[i] = d[j]; d[j] = x;
            }
    *secs = t[1];
    *data_s = d[1];
    return weft_ckpt_close(c);
}

static double async_copy; /* of the blocked time: the copy into staging */

/* Asynchronous saves: blocked time, and the steps run while each is in
 * flight. */
static int async_saves(bench *b, const weft_ckpt_opts *o, double *blocked, double *step_during, int *nsteps)
{
    weft_ckpt *c;
    WEFT_CHECK(open_ckpt(b, o, &c));
    double blk = 0, during = 0, copy = 0;
    int n = 0;
    for (int r = 0; r < 3; r++) {
        weft_ckpt_meta m = meta_of(b);
        m.step = ++b->saves;
        WEFT_CHECK(weft_ckpt_save(c, &m, NULL));
        weft_ckpt_stats st;
        weft_ckpt_get_stats(c, &st);
        blk += max_over_ranks(b, st.blocked_s);
        copy += max_over_ranks(b, st.copy_s);
        /* steps until every rank sees the commit */
        for (;;) {
            int32_t done = weft_ckpt_last(c, NULL, 0) == m.step, all;
            weft_comm_allreduce(b->world, &done, &all, 1, WEFT_I32, WEFT_MIN);
            if (all)
                break;
            int64_t t0 = weft_now_ns();
            WEFT_CHECK(step(b));
            during += max_over_ranks(b, 1e-9 * (double)(weft_now_ns() - t0));
            n++;
        }
    }
    *blocked = blk / 3;
    async_copy = copy / 3;
    *step_during = n ? during / n : 0;
    *nsteps = n;
    return weft_ckpt_close(c);
}

static int run(bench *b, int nsteps)
{
    WEFT_CHECK(build(b));
    weft_ckpt_opts o;
    weft_ckpt_opts_from_config(b->ctx->config, &o);
    snprintf(o.dir, sizeof o.dir, "%s", b->dir);
    o.keep_last = 1;
    o.async = 1;
    for (int i = 0; i < 2; i++)
        WEFT_CHECK(step(b));
    double normal = 0;
    for (int i = 0; i < nsteps; i++) {
        int64_t t0 = weft_now_ns();
        WEFT_CHECK(step(b));
        normal += max_over_ranks(b, 1e-9 * (double)(weft_now_ns() - t0));
    }
    normal /= nsteps;
    /* this rank's share: what it writes (params share + its moments) */
    size_t share = (weft_gpt_num_params(b->model) / 2 + 2 * moments(b)) * sizeof(float);
    double mc = max_over_ranks(b, memcpy_s(share));
    double sync_s, data_s, blocked, during;
    size_t file = 0;
    int ndur;
    WEFT_CHECK(sync_save(b, &o, &sync_s, &data_s, &file));
    weft_ckpt_stats ph = last_sync;
    double raw = raw_write_s(b, share);
    WEFT_CHECK(async_saves(b, &o, &blocked, &during, &ndur));
    weft_ckpt_opts v = o;
    double t_noalign, t_nocoll, t_indep, d;
    v.alignment = 0;
    WEFT_CHECK(sync_save(b, &v, &t_noalign, &d, &file));
    v = o;
    v.coll_metadata = 0;
    WEFT_CHECK(sync_save(b, &v, &t_nocoll, &d, &file));
    v = o;
    v.collective = 0;
    WEFT_CHECK(sync_save(b, &v, &t_indep, &d, &file));
    if (b->ctx->rank != 0)
        return 0;
    int ranks = b->ctx->size;
    double mb = (double)file / 1e6, raw_bw = (double)share * ranks / 1e6 / raw, ck_bw = mb / sync_s;
    printf("state: %.1fM parameters + AdamW m, v (ZeRO-1 over %d ranks): %.0f MB file, %.0f MB per rank\n",
           weft_gpt_num_params(b->model) / 1e6, ranks, mb, share / 1e6);
    printf("%-34s %8.3f s\n", "memcpy of a rank's share", mc);
    printf("%-34s %8.3f s   %.2fx memcpy (target <= 2x)  %s; of which the copy to staging %.3f s\n",
           "async save: step loop blocked", blocked, blocked / mc, blocked <= 2 * mc ? "MET" : "MISSED", async_copy);
    printf("%-34s %8.3f s   %6.0f MB/s (data phase alone %.3f s, %.0f MB/s)\n", "sync save (create .. commit)",
           sync_s, ck_bw, data_s, mb / data_s);
    printf("%-34s data %.3f s, read-back check + checksums %.3f s, fsync + rename + latest %.3f s (rank 0)\n",
           "  its phases", ph.data_s, ph.verify_s, ph.commit_s);
    printf("%-34s %8.3f s   %6.0f MB/s\n", "raw write, same dir (dd + fsync)", raw, raw_bw);
    printf("%-34s %8.0f%%  of raw (target >= 60%%)  %s\n", "checkpoint write throughput", 100 * ck_bw / raw_bw,
           ck_bw >= 0.6 * raw_bw ? "MET" : "MISSED");
    printf("%-34s %8.3f s normal, %.3f s during a save (%d steps): %.2fx (target <= 1.1x)  %s\n", "step time",
           normal, during, ndur, ndur ? during / normal : 0, ndur && during <= 1.1 * normal ? "MET" : "MISSED");
    printf("parallel-HDF5 practices, sync save (median of 3): all on %.3f s; alignment off %.3f s; collective "
           "metadata off %.3f s; independent transfers %.3f s\n", sync_s, t_noalign, t_nocoll, t_indep);
    return 0;
}

int main(int argc, char **argv)
{
    static const weft_config_key *const keys[] = {WEFT_TRAINER_CONFIG_KEYS, NULL};
    weft_ctx *ctx;
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    bench b = {.ctx = ctx};
    snprintf(b.dir, sizeof b.dir, "build/bench-data/ckpt");
    int nsteps = 4;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--dir") == 0)
            snprintf(b.dir, sizeof b.dir, "%s", argv[i + 1]);
        else if (strcmp(argv[i], "--steps") == 0)
            nsteps = atoi(argv[i + 1]) > 0 ? atoi(argv[i + 1]) : 4;
    }
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
