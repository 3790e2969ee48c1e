/*
 * data_fixtures.h -- helpers shared by the data unit tests: a scratch
 * directory under /tmp removed at the end, shards written byte by byte
 * (independently of the dataset writer, so the writer can be tested against
 * them), and manifests for hand-made shards.
 */
#ifndef WEFT_TESTS_DATA_FIXTURES_H
#define WEFT_TESTS_DATA_FIXTURES_H

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "data/manifest.h"
#include "data/shard.h"

static char fx_root[256];

static inline void fx_setup_root(void)
{
    snprintf(fx_root, sizeof fx_root, "/tmp/weft-data-test.XXXXXX");
    if (!mkdtemp(fx_root))
        abort();
}

static inline int fx_rm(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st; (void)flag; (void)f;
    return remove(p);
}

static inline void fx_remove_root(void)
{
    if (fx_root[0])
        nftw(fx_root, fx_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* fx_path("a/b") -> "<root>/a/b" in a rotating static buffer. */
static inline const char *fx_path(const char *rel)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 512, "%s/%s", fx_root, rel);
    return b;
}

static inline void fx_mkdir(const char *rel) { mkdir(fx_path(rel), 0750); }

/* Encode tokens little-endian at width w into a malloc'ed buffer. */
static inline uint8_t *fx_encode(const uint32_t *t, uint64_t n, unsigned w)
{
    uint8_t *p = malloc(n * w + 1);
    for (uint64_t i = 0; i < n; i++)
        for (unsigned b = 0; b < w; b++)
            p[i * w + b] = (uint8_t)(t[i] >> (8 * b));
    return p;
}

/* Write a complete shard file; returns its manifest entry fields. */
static inline void fx_write_shard(const char *path, const uint32_t *t, uint64_t n, unsigned w, uint32_t vocab,
                           uint64_t *checksum)
{
    uint8_t hdr[WEFT_SHARD_HEADER_SIZE], *pay = fx_encode(t, n, w);
    weft_shard_header h = {w, vocab, 7, n, XXH3_64bits(pay, n * w)};
    weft_shard_header_encode(&h, hdr);
    FILE *f = fopen(path, "wb");
    fwrite(hdr, 1, sizeof hdr, f);
    fwrite(pay, 1, n * w, f);
    fclose(f);
    *checksum = h.payload_checksum;
    free(pay);
}

typedef struct {
    const char *name;
    weft_split split;
    uint64_t n;
} fx_shard_spec;

/* A dataset of hand-made shards in <root>/rel: shard i holds tokens
 * (base_i + j) % vocab where base_i is the number of tokens before it, so
 * every token tells its position. */
static inline void fx_make_dataset(const char *rel, const fx_shard_spec *specs, size_t ns, unsigned w, uint32_t vocab)
{
    weft_manifest m = {w, vocab, 7, 0, 0, calloc(ns, sizeof(weft_manifest_shard)), NULL};
    uint64_t base = 0;
    char path[600];
    fx_mkdir(rel);
    for (size_t i = 0; i < ns; i++) {
        uint32_t *t = malloc((specs[i].n + 1) * sizeof *t);
        for (uint64_t j = 0; j < specs[i].n; j++)
            t[j] = (uint32_t)((base + j) % vocab);
        snprintf(path, sizeof path, "%s/%s", fx_path(rel), specs[i].name);
        fx_write_shard(path, t, specs[i].n, w, vocab, &m.shards[i].checksum);
        m.shards[i].name = specs[i].name;
        m.shards[i].split = specs[i].split;
        m.shards[i].tokens = specs[i].n;
        m.n_shards++;
        base += specs[i].n;
        free(t);
    }
    if (weft_manifest_write(fx_path(rel), &m) != 0)
        abort();
    free(m.shards);
}

/* Overwrite bytes of a file at offset. */
static inline void fx_patch(const char *path, long long off, const void *bytes, size_t n)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0 || pwrite(fd, bytes, n, off) != (ssize_t)n)
        abort();
    close(fd);
}

static inline long long fx_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static inline char *fx_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    long long n = fx_size(path);
    char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    b[*len] = 0;
    fclose(f);
    return b;
}

static inline void fx_write(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    fwrite(text, 1, len, f);
    fclose(f);
}

#endif
