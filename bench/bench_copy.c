/*
 * bench_copy.c -- the streaming-store copy and zeroing of
 * runtime/copy_stream.h (a checkpoint's staging copies, the backward's
 * zeroing of activation gradients) beside glibc's memcpy and memset of the
 * same bytes in the same run, at destinations 0, 16, 32 and 48 bytes into
 * a cache line (a ZeRO share's staging copy starts wherever its elements
 * do). One thread; the best of --rounds rounds, every buffer touched first.
 *
 *   bench_copy [--mb MB] [--rounds N]
 *
 * MB (default 747, a 124 M model's per-rank share with AdamW on 2 ranks).
 */
#include "runtime/copy_stream.h"
#include "runtime/timer.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*copy_fn)(void *, const void *, size_t);

static double best_copy(copy_fn f, char *d, const char *s, size_t n, int rounds)
{
    double best = 1e9;
    for (int r = 0; r < rounds; r++) {
        int64_t t0 = weft_now_ns();
        f(d, s, n);
        double t = 1e-9 * (double)(weft_now_ns() - t0);
        best = t < best ? t : best;
    }
    return best;
}

static void copy_libc(void *d, const void *s, size_t n) { memcpy(d, s, n); }
static void zero_libc(void *d, const void *s, size_t n) { (void)s; memset(d, 0, n); }
static void zero_stream(void *d, const void *s, size_t n) { (void)s; weft_zero_stream(d, n); }

int main(int argc, char **argv)
{
    long mb = 747, rounds = 5;
    static const struct option opts[] = {{"mb", required_argument, NULL, 'm'},
                                         {"rounds", required_argument, NULL, 'r'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        if (c == 'm')
            mb = strtol(optarg, NULL, 10);
        else if (c == 'r')
            rounds = strtol(optarg, NULL, 10);
        else {
            printf("usage: bench_copy [--mb MB] [--rounds N]\n"
                   "weft_copy_stream and weft_zero_stream (runtime/copy_stream.h) beside glibc's memcpy and\n"
                   "memset of MB megabytes (default 747), destinations 0/16/32/48 bytes into a cache line.\n");
            return c == 'h' ? 0 : 64;
        }
    }
    if (mb < 1 || mb > 65536 || rounds < 1 || rounds > 1000) {
        fprintf(stderr, "bench_copy: --mb in [1, 65536], --rounds in [1, 1000]\n");
        return 64;
    }
    size_t n = (size_t)mb << 20;
    char *src = aligned_alloc(4096, n + 4096), *dst = aligned_alloc(4096, n + 4096);
    if (!src || !dst) {
        fprintf(stderr, "bench_copy: out of memory for 2 x %ld MB\n", mb);
        return 71;
    }
    memset(src, 1, n + 4096);
    memset(dst, 2, n + 4096);
    printf("%ld MB, one thread, best of %ld (s; GB/s of bytes copied or zeroed)\n", mb, rounds);
    printf("%-10s %-22s %-22s %-22s %-22s\n", "dst+off", "memcpy", "weft_copy_stream", "memset", "weft_zero_stream");
    for (int off = 0; off < 64; off += 16) {
        double t[4] = {best_copy(copy_libc, dst + off, src, n, (int)rounds),
                       best_copy(weft_copy_stream, dst + off, src, n, (int)rounds),
                       best_copy(zero_libc, dst + off, NULL, n, (int)rounds),
                       best_copy(zero_stream, dst + off, NULL, n, (int)rounds)};
        printf("%-10d", off);
        for (int k = 0; k < 4; k++)
            printf(" %.4f (%5.1f)        ", t[k], (double)n / t[k] / 1e9);
        printf("\n");
    }
    free(src);
    free(dst);
    return 0;
}
