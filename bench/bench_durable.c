/*
 * bench_durable.c -- what each runtime/durable.h policy costs per file,
 * beside the plain sequence it replaces, measured in the same run on the
 * same directory:
 *
 *   raw write + rename        open, write, close, rename (no fsync): the
 *                             cheapest a crash-safe rewrite can be
 *   durable best-effort       weft_durable_write_file, BEST_EFFORT (status,
 *                             heartbeats)
 *   raw write + fsync + rename + dir fsync   the full sequence by hand
 *   durable sync              weft_durable_write_file, SYNC (checkpoint
 *                             latest, run records)
 *   fprintf + fflush line     what metrics.jsonl was (stdio, one flush a row)
 *   durable append line       weft_durable_append (one write(2) a row)
 *
 *   bench_durable [--dir DIR] [--n N] [--bytes B]
 *
 * DIR defaults to $TMPDIR or /tmp; N files (default 200) of B bytes
 * (default 2048, a status.json).
 */
#include "runtime/durable.h"
#include "runtime/timer.h"

#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[4096], path[4200], tmp[4300];
static int n = 200;
static size_t bytes = 2048;
static char *buf;

static int raw(int sync)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0 || write(fd, buf, bytes) != (ssize_t)bytes || (sync && fsync(fd) != 0) || close(fd) != 0 ||
        rename(tmp, path) != 0)
        return -1;
    if (sync) {
        int d = open(dir, O_RDONLY | O_DIRECTORY);
        if (d < 0 || fsync(d) != 0)
            return -1;
        close(d);
    }
    return 0;
}

static void row(const char *what, double t0, int rc)
{
    double us = ((1e-9 * (double)weft_now_ns()) - t0) * 1e6 / n;
    printf("%-44s %10.1f us/file%s\n", what, us, rc ? "  (FAILED)" : "");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'}, {"n", required_argument, NULL, 'n'},
                                         {"bytes", required_argument, NULL, 'b'}, {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        if (c == 'd')
            base = optarg;
        else if (c == 'n')
            n = atoi(optarg);
        else if (c == 'b')
            bytes = (size_t)atol(optarg);
        else {
            printf("usage: bench_durable [--dir DIR] [--n N] [--bytes B]\n");
            return c == 'h' ? 0 : 64;
        }
    }
    if (n <= 0 || bytes == 0) {
        fprintf(stderr, "bench_durable: --n and --bytes must be positive\n");
        return 64;
    }
    snprintf(dir, sizeof dir, "%s/weft-bench-durable.XXXXXX", base);
    if (!mkdtemp(dir) || !(buf = malloc(bytes))) {
        perror(dir);
        return 74;
    }
    memset(buf, 'x', bytes);
    snprintf(path, sizeof path, "%s/status.json", dir);
    snprintf(tmp, sizeof tmp, "%s/.status.json.tmp", dir);
    printf("%d files of %zu bytes in %s\n", n, bytes, dir);
    int rc = 0;
    double t0 = (1e-9 * (double)weft_now_ns());
    for (int i = 0; i < n && !rc; i++)
        rc = raw(0);
    row("raw write + rename", t0, rc);
    t0 = (1e-9 * (double)weft_now_ns());
    for (int i = 0; i < n && !rc; i++)
        rc = weft_durable_write_file(path, buf, bytes, WEFT_DURABLE_BEST_EFFORT);
    row("durable best-effort", t0, rc);
    t0 = (1e-9 * (double)weft_now_ns());
    for (int i = 0; i < n && !rc; i++)
        rc = raw(1);
    row("raw write + fsync + rename + dir fsync", t0, rc);
    t0 = (1e-9 * (double)weft_now_ns());
    for (int i = 0; i < n && !rc; i++)
        rc = weft_durable_write_file(path, buf, bytes, WEFT_DURABLE_SYNC);
    row("durable sync", t0, rc);

    char line[300];
    int len = snprintf(line, sizeof line, "{\"step\":1,\"loss\":5.30693817138671875,\"lr\":0.0006,\"grad_norm\":1.517,"
                                          "\"tokens_per_s\":2083.1,\"ms_per_step\":122.9}\n");
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "w");
    t0 = (1e-9 * (double)weft_now_ns());
    for (int i = 0; i < n && f; i++) {
        fputs(line, f);
        fflush(f);
    }
    row("fprintf + fflush line (per line)", t0, f ? 0 : -1);
    if (f)
        fclose(f);
    int fd;
    rc = weft_durable_append_open(path, 1, &fd);
    t0 = (1e-9 * (double)weft_now_ns());
    for (int i = 0; i < n && !rc; i++)
        rc = weft_durable_append(fd, line, (size_t)len, path);
    row("durable append line (per line)", t0, rc);
    if (fd >= 0)
        close(fd);
    unlink(path);
    snprintf(path, sizeof path, "%s/status.json", dir);
    unlink(path);
    rmdir(dir);
    free(buf);
    return 0;
}
