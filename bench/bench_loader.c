/*
 * bench_loader.c -- the loader's throughput beside the raw sequential read
 * bandwidth of the same shard files, measured in the same run, from a cold
 * page cache (posix_fadvise DONTNEED, and O_DIRECT) and a warm one.
 *
 *   build/bench/bench_loader [--dir DIR] [--gib G] [--seq-len T] [--batch B]
 *                            [--depth N] [--shards S] [--io-threads N] [--only cold|direct|warm] [--keep]
 *
 * Without --dir it builds a dataset of G GiB of random u16 tokens (vocab
 * 50257) in a temporary directory under $TMPDIR (default /tmp), fsynced so
 * DONTNEED can drop it, and removes it at the end unless --keep. Each loader
 * pass reads one full epoch (every window once, in shuffled order); the
 * consumer only touches the tokens, so the loader's speed is what is
 * measured. Target: loader >= 80% of raw (see bench/README.md).
 */
#include "data/loader.h"
#include "data/manifest.h"
#include "data/writer.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/timer.h"

#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *dir;
    double gib;
    int64_t T, B;
    int depth, shards, keep, threads;
    const char *only; /* run one mode: cold, direct or warm */
} bench_opts;

static int build_dataset(const bench_opts *b)
{
    uint64_t total = (uint64_t)(b->gib * (double)(1ull << 30)) / 2;
    weft_dataset_writer_options wo = {b->dir, 2, 50257, 0, (total + (uint64_t)b->shards - 1) / (uint64_t)b->shards};
    weft_dataset_writer *w;
    uint32_t *t = malloc((1u << 20) * sizeof *t);
    uint64_t x = 88172645463325252ull;
    WEFT_CHECK(weft_dataset_writer_open(&wo, &w));
    for (uint64_t done = 0; done < total;) {
        size_t n = total - done < (1u << 20) ? (size_t)(total - done) : (1u << 20);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            t[i] = (uint32_t)(x % 50257);
        }
        WEFT_CHECK(weft_dataset_writer_append(w, WEFT_SPLIT_TRAIN, t, n));
        done += n;
    }
    free(t);
    int rc = weft_dataset_writer_commit(w, NULL);
    weft_dataset_writer_free(w);
    return rc;
}

static void drop_cache(const weft_manifest *m, const char *dir)
{
    char path[4096];
    for (size_t i = 0; i < m->n_shards; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, m->shards[i].name);
        int fd = open(path, O_RDONLY);
        if (fd >= 0) {
            fdatasync(fd);
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            close(fd);
        }
    }
}

/* Sequential read of every shard in 8 MiB blocks: bytes per second. */
static double raw_read(const weft_manifest *m, const char *dir, int direct, uint64_t *bytes)
{
    char path[4096];
    size_t blk = 8u << 20;
    uint8_t *buf;
    if (posix_memalign((void **)&buf, 4096, blk) != 0)
        return 0;
    *bytes = 0;
    int64_t t0 = weft_now_ns();
    for (size_t i = 0; i < m->n_shards; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, m->shards[i].name);
        int fd = open(path, O_RDONLY | (direct ? O_DIRECT : 0));
        if (fd < 0 && direct)
            fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        ssize_t n;
        while ((n = read(fd, buf, blk)) > 0)
            *bytes += (uint64_t)n;
        close(fd);
    }
    double s = (double)(weft_now_ns() - t0) * 1e-9;
    free(buf);
    return (double)*bytes / s;
}

/* Random window reads, the loader's access pattern without the loader:
 * every window of every shard once in a scrambled order, pread by
 * `threads` threads (buffered or O_DIRECT). Bytes per second. */
typedef struct {
    const weft_manifest *m;
    const char *dir;
    int direct, nthreads, id;
    int64_t T;
    uint64_t windows, bytes;
} rand_job;

static void *rand_thread(void *arg)
{
    rand_job *j = arg;
    char path[4096];
    size_t len = (size_t)(j->T + 1) * 2, span = (len + 2 * 4096) / 4096 * 4096;
    uint8_t *buf;
    int *fds = calloc(j->m->n_shards, sizeof *fds);
    uint64_t per = (j->m->shards[0].tokens - 1) / (uint64_t)j->T;
    if (posix_memalign((void **)&buf, 4096, span) != 0)
        return NULL;
    for (size_t s = 0; s < j->m->n_shards; s++) {
        snprintf(path, sizeof path, "%s/%s", j->dir, j->m->shards[s].name);
        fds[s] = open(path, O_RDONLY | (j->direct ? O_DIRECT : 0));
    }
    for (uint64_t i = (uint64_t)j->id; i < j->windows; i += (uint64_t)j->nthreads) {
        uint64_t w = (i * 0x9e3779b97f4a7c15ull) % j->windows; /* odd multiplier: a bijection for power-of-2 counts, close enough otherwise */
        size_t s = (size_t)(w / per);
        if (s >= j->m->n_shards)
            s = j->m->n_shards - 1;
        uint64_t off = 4096 + (w % per) * (uint64_t)j->T * 2, start = j->direct ? off & ~4095ull : off;
        size_t n = j->direct ? (off - start + len + 4095) / 4096 * 4096 : len;
        ssize_t r = pread(fds[s], buf, n, (off_t)start);
        j->bytes += r > 0 ? (uint64_t)len : 0;
    }
    for (size_t s = 0; s < j->m->n_shards; s++)
        close(fds[s]);
    free(fds);
    free(buf);
    return NULL;
}

static double raw_random(const bench_opts *b, const weft_manifest *m, int direct)
{
    enum { MAXT = 64 };
    pthread_t th[MAXT];
    rand_job jobs[MAXT];
    int n = b->threads + 1 > MAXT ? MAXT : b->threads + 1;
    uint64_t windows = 0, bytes = 0;
    for (size_t s = 0; s < m->n_shards; s++)
        windows += (m->shards[s].tokens - 1) / (uint64_t)b->T;
    int64_t t0 = weft_now_ns();
    for (int i = 0; i < n; i++) {
        jobs[i] = (rand_job){m, b->dir, direct, n, i, b->T, windows, 0};
        pthread_create(&th[i], NULL, rand_thread, &jobs[i]);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        bytes += jobs[i].bytes;
    }
    return (double)bytes / ((double)(weft_now_ns() - t0) * 1e-9);
}

/* One epoch through the loader: payload bytes per second; *wait_frac is the
 * share of the time the consumer waited. */
static double loader_pass(const bench_opts *b, int direct, double *tok_s, double *wait_frac)
{
    weft_loader_options o;
    weft_loader *L;
    weft_loader_options_default(&o);
    o.paths[0] = b->dir;
    o.seq_len = b->T;
    o.global_batch = b->B;
    o.prefetch_depth = b->depth;
    o.io_threads = b->threads;
    o.direct_io = direct;
    o.seed = 1;
    int64_t t0 = weft_now_ns();
    if (weft_loader_open(&o, &L) != 0) {
        fprintf(stderr, "bench_loader: %s\n", weft_last_error());
        exit(1);
    }
    uint64_t steps = weft_loader_samples(L, 0) / (uint64_t)b->B, sink = 0;
    for (uint64_t s = 0; s < steps; s++) {
        const int32_t *t;
        if (weft_loader_next(L, &t) != 0) {
            fprintf(stderr, "bench_loader: %s\n", weft_last_error());
            exit(1);
        }
        for (int64_t r = 0; r < b->B; r++)
            sink += (uint64_t)t[r * (b->T + 1)];
    }
    double secs = (double)(weft_now_ns() - t0) * 1e-9;
    *wait_frac = (double)weft_loader_wait_ns(L) * 1e-9 / secs;
    weft_loader_close(L);
    if (sink == 1)
        fputc(' ', stderr); /* keep the reads */
    *tok_s = (double)(steps * (uint64_t)b->B * (uint64_t)b->T) / secs;
    return (double)(steps * (uint64_t)b->B * (uint64_t)(b->T + 1) * 2) / secs;
}

static void row(const char *what, double raw_bps, double rnd_bps, double bps, double tok_s, const char *extra)
{
    if (tok_s > 0)
        printf("%-34s %7.0f MB/s %10.3g tok/s %5.0f%% of raw seq %5.0f%% of raw random%s\n", what, bps / 1e6,
               tok_s, 100 * bps / raw_bps, 100 * bps / rnd_bps, extra);
    else
        printf("%-34s %7.0f MB/s %10.3g tok/s\n", what, bps / 1e6, bps / 2);
}

static void run(const bench_opts *b)
{
    weft_manifest *m;
    uint64_t bytes;
    double tok, wait, raw, rnd, ld;
    char extra[64];
    if (weft_manifest_load(b->dir, &m) != 0) {
        fprintf(stderr, "bench_loader: %s\n", weft_last_error());
        exit(1);
    }
    printf("bench_loader: %s, %zu shards, %.2f GiB, T=%" PRId64 ", B=%" PRId64 ", depth %d, %d I/O threads\n", b->dir,
           m->n_shards, (double)weft_manifest_tokens(m, -1) * 2 / (1ull << 30), b->T, b->B, b->depth, b->threads);
    if (!b->only || strcmp(b->only, "cold") == 0) {
        drop_cache(m, b->dir);
        raw = raw_read(m, b->dir, 0, &bytes);
        row("raw sequential, cold", raw, raw, raw, 0, "");
        drop_cache(m, b->dir);
        rnd = raw_random(b, m, 0);
        row("raw random windows, cold", raw, rnd, rnd, 0, "");
        drop_cache(m, b->dir);
        ld = loader_pass(b, 0, &tok, &wait);
        snprintf(extra, sizeof extra, "  (consumer waited %.0f%%)", 100 * wait);
        row("loader, cold (fadvise)", raw, rnd, ld, tok, extra);
    }
    if (!b->only || strcmp(b->only, "direct") == 0) {
        raw = raw_read(m, b->dir, 1, &bytes);
        row("raw sequential, O_DIRECT", raw, raw, raw, 0, "");
        rnd = raw_random(b, m, 1);
        row("raw random windows, O_DIRECT", raw, rnd, rnd, 0, "");
        ld = loader_pass(b, 1, &tok, &wait);
        snprintf(extra, sizeof extra, "  (consumer waited %.0f%%)", 100 * wait);
        row("loader, O_DIRECT", raw, rnd, ld, tok, extra);
    }
    if (!b->only || strcmp(b->only, "warm") == 0) {
        raw_read(m, b->dir, 0, &bytes); /* warm the cache */
        raw = raw_read(m, b->dir, 0, &bytes);
        row("raw sequential, warm", raw, raw, raw, 0, "");
        rnd = raw_random(b, m, 0);
        row("raw random windows, warm", raw, rnd, rnd, 0, "");
        ld = loader_pass(b, 0, &tok, &wait);
        snprintf(extra, sizeof extra, "  (consumer waited %.0f%%)", 100 * wait);
        row("loader, warm", raw, rnd, ld, tok, extra);
    }
    weft_manifest_free(m);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"dir", required_argument, NULL, 'd'},   {"gib", required_argument, NULL, 'g'},
        {"seq-len", required_argument, NULL, 'T'}, {"batch", required_argument, NULL, 'B'},
        {"depth", required_argument, NULL, 'p'}, {"shards", required_argument, NULL, 's'},
        {"io-threads", required_argument, NULL, 't'}, {"only", required_argument, NULL, 'o'}, {"keep", no_argument, NULL, 'k'},        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bench_opts b = {NULL, 1.0, 1024, 64, 8, 8, 0, 4, NULL};
    char tmp[4096];
    int c, made = 0;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'd': b.dir = optarg; break;
        case 'g': b.gib = atof(optarg); break;
        case 'T': b.T = atoll(optarg); break;
        case 'B': b.B = atoll(optarg); break;
        case 'p': b.depth = atoi(optarg); break;
        case 's': b.shards = atoi(optarg); break;
        case 't': b.threads = atoi(optarg); break;
        case 'o': b.only = optarg; break;
        case 'k': b.keep = 1; break;
        default:
            printf("usage: bench_loader [--dir DIR] [--gib G] [--seq-len T] [--batch B] [--depth N] [--shards S] [--io-threads N] [--only cold|direct|warm] [--keep]\n");
            return c == 'h' ? 0 : 64;
        }
    }
    if (!b.dir) {
        const char *t = getenv("TMPDIR");
        snprintf(tmp, sizeof tmp, "%s/weft-bench-loader.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmp))
            return 74;
        b.dir = tmp;
        made = 1;
        fprintf(stderr, "bench_loader: writing %.2f GiB of tokens to %s\n", b.gib, tmp);
        if (build_dataset(&b) != 0) {
            fprintf(stderr, "bench_loader: %s\n", weft_last_error());
            return weft_exit_code(weft_last_error_code());
        }
    }
    weft_log_set_level(WEFT_LOG_ERROR);
    run(&b);
    if (made && !b.keep) {
        snprintf(tmp + strlen(tmp), sizeof tmp - strlen(tmp), "%s", "");
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", b.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_loader: could not remove %s\n", b.dir);
    }
    return 0;
}
