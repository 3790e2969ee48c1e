/*
 * verify.c -- the full dataset check (see verify.h). Reads each shard once,
 * front to back, in 8 MiB blocks with sequential read-ahead advice, hashing
 * and range-checking each block as it arrives: the check runs at the speed
 * of the disk, not of the hash.
 */
#include "data/verify.h"
#include "data/le.h"
#include "data/manifest.h"
#include "data/shard.h"
#include "runtime/error.h"
#include "runtime/timer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#define BLOCK (8u << 20)

typedef struct {
    weft_verify_bad_fn bad;
    weft_progress_fn progress;
    void *arg;
    uint8_t *buf;            /* (BLOCK) */
    XXH3_state_t *hash;
    uint64_t done, total;
} verifier;

/* Index of the first token >= vocab in n tokens of width w, or n. */
static size_t scan_range(const uint8_t *p, size_t n, unsigned w, uint32_t vocab)
{
    uint32_t max = 0;
    if (w == 2)
        for (size_t j = 0; j < n; j++) {
            uint32_t t = weft_le_get16(p + 2 * j);
            max = t > max ? t : max;
        }
    else
        for (size_t j = 0; j < n; j++) {
            uint32_t t = weft_le_get32(p + 4 * j);
            max = t > max ? t : max;
        }
    if (max < vocab)
        return n;
    for (size_t j = 0;; j++)
        if ((w == 2 ? weft_le_get16(p + 2 * j) : weft_le_get32(p + 4 * j)) >= vocab)
            return j;
}

static int read_block(int fd, uint8_t *buf, size_t len, uint64_t off, const char *path)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return weft_error(WEFT_EIO, "%s: read at offset %" PRIu64 " failed: %s", path, off + got, strerror(errno));
        if (n == 0)
            return weft_error(WEFT_EDATA, "%s: truncated shard: expected data at offset %" PRIu64 ", found end of file", path, off + got);
        got += (size_t)n;
    }
    return 0;
}

static int check_payload(verifier *v, int fd, const weft_shard_header *h, const char *path)
{
    uint64_t left = weft_shard_payload_bytes(h), off = WEFT_SHARD_HEADER_SIZE;
    size_t block = BLOCK / h->token_width * h->token_width;
    XXH3_64bits_reset(v->hash);
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    while (left > 0) {
        size_t len = left < block ? (size_t)left : block;
        WEFT_CHECK(read_block(fd, v->buf, len, off, path));
        XXH3_64bits_update(v->hash, v->buf, len);
        size_t n = len / h->token_width, j = scan_range(v->buf, n, h->token_width, h->vocab_size);
        if (j < n) {
            uint32_t t = h->token_width == 2 ? weft_le_get16(v->buf + 2 * j) : weft_le_get32(v->buf + 4 * j);
            return weft_error(WEFT_EDATA, "%s: token out of range at offset %" PRIu64 ": expected a token below the vocab size %u, found %u",
                              path, off + j * h->token_width, h->vocab_size, t);
        }
        off += len;
        left -= len;
        v->done += len;
        if (v->progress)
            v->progress(v->arg, v->done, v->total);
    }
    uint64_t sum = XXH3_64bits_digest(v->hash);
    if (sum != h->payload_checksum)
        return weft_error(WEFT_EDATA, "%s: payload checksum mismatch over offsets 4096..%" PRIu64 ": expected %016" PRIx64 " (header and manifest), found %016" PRIx64 "; the shard is corrupt",
                          path, off, h->payload_checksum, sum);
    return 0;
}

static int check_shard(verifier *v, const char *dir, const weft_manifest *m, const weft_manifest_shard *s)
{
    char path[4096];
    int fd, direct;
    weft_shard_header h, want = {m->token_width, m->vocab_size, m->tokenizer_id, s->tokens, s->checksum};
    snprintf(path, sizeof path, "%s/%s", dir, s->name);
    WEFT_CHECK(weft_shard_open(path, 0, &want, &h, &fd, &direct));
    int rc = check_payload(v, fd, &h, path);
    close(fd);
    return rc;
}

static int run(verifier *v, const char *dir, const weft_manifest *m, weft_verify_report *rep)
{
    int first = 0;
    for (size_t i = 0; i < m->n_shards; i++)
        v->total += m->shards[i].tokens * m->token_width;
    for (size_t i = 0; i < m->n_shards; i++) {
        uint64_t before = v->done;
        int rc = check_shard(v, dir, m, &m->shards[i]);
        if (rc < 0) {
            rep->bad++;
            first = first ? first : rc;
            if (v->bad)
                v->bad(v->arg, rc, weft_last_error());
            /* Keep the progress honest when a shard was skipped part-way. */
            v->done = before + m->shards[i].tokens * m->token_width;
        } else {
            rep->tokens += m->shards[i].tokens;
        }
    }
    rep->bytes = v->done;
    return first;
}

int weft_dataset_verify(const char *dir, weft_verify_bad_fn bad, weft_progress_fn progress,
                        void *arg, weft_verify_report *rep)
{
    weft_manifest *m;
    int64_t t0 = weft_now_ns();
    verifier v = {bad, progress, arg, NULL, NULL, 0, 0};
    memset(rep, 0, sizeof *rep);
    WEFT_CHECK(weft_manifest_load(dir, &m));
    rep->shards = m->n_shards;
    v.buf = malloc(BLOCK);
    v.hash = XXH3_createState();
    int rc = (v.buf && v.hash) ? run(&v, dir, m, rep)
                               : weft_error(WEFT_ENOMEM, "verify: no memory for an 8 MiB read buffer");
    rep->seconds = (double)(weft_now_ns() - t0) * 1e-9;
    free(v.buf);
    XXH3_freeState(v.hash);
    weft_manifest_free(m);
    return rc;
}
