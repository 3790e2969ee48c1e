/*
 * reader.c -- reading one token window from a shard (see reader.h): a
 * descriptor from the shared cache, pread into the calling worker's aligned
 * bounce buffer (the enclosing aligned span under O_DIRECT), then widening to
 * int32 with the vocab check. The hot path formats no strings: paths are
 * only put together for error messages.
 */
#include "data/reader.h"
#include "data/le.h"
#include "data/shard.h"
#include "data/shard_cache.h"
#include "runtime/error.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ALIGN 4096

/* Each worker keeps references to the last few shards it read, so a hit
 * touches no lock shared with the other workers (a shared lock per row
 * stops a warm cache from scaling past a few threads). */
#define LOCAL 4

typedef struct {
    size_t id;
    int fd;
    bool direct;
    uint64_t last_use;
} local_ref;

typedef struct {
    struct weft_reader *r;
    uint8_t *bounce;        /* aligned; room for the longest window + 2 pages */
    local_ref local[LOCAL];
    int n_local;
    uint64_t clock;
} worker;

struct weft_reader {
    weft_shard_cache *cache;
    worker *w;              /* (n_workers) */
    int n_workers;
    size_t bounce_len, max_tokens;
};

/* ---- one window ------------------------------------------------------------- */

static void req_path(const weft_read_req *q, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", q->dir, q->ms->name);
}

/* pread until len bytes or end of file; *got says how many arrived. 0, or
 * WEFT_EIO with *err set (the caller writes the message, so the hot path
 * never formats a path). */
static int read_at(int fd, uint8_t *buf, size_t len, uint64_t off, size_t *got, int *err)
{
    *got = 0;
    while (*got < len) {
        ssize_t n = pread(fd, buf + *got, len - *got, (off_t)(off + *got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *err = errno;
            return WEFT_EIO;
        }
        if (n == 0)
            break;
        *got += (size_t)n;
    }
    return 0;
}

/* Message for a failed or short read of need bytes at off. */
static int read_error(const weft_read_req *q, int rc, int err, uint64_t off, size_t need, size_t got)
{
    char path[4096];
    req_path(q, path, sizeof path);
    if (rc == WEFT_EIO)
        return weft_error(WEFT_EIO, "%s: read of %zu bytes at offset %" PRIu64 " failed: %s", path, need, off,
                          strerror(err));
    return weft_error(WEFT_EDATA, "%s: truncated shard: expected %zu bytes at offset %" PRIu64 ", found %zu (the file shrank after it was opened?)",
                      path, need, off, got);
}

/* Under O_DIRECT, offset, length and buffer must be aligned: read the
 * enclosing aligned span. A refused read (EINVAL) drops O_DIRECT for good
 * and retries through the page cache on a private descriptor. */
static int read_direct(worker *w, int fd, const weft_read_req *q, size_t bytes, const uint8_t **data)
{
    uint64_t start = q->offset & ~(uint64_t)(ALIGN - 1);
    size_t skip = (size_t)(q->offset - start), span = (skip + bytes + ALIGN - 1) / ALIGN * ALIGN, got;
    int err = 0, rc = read_at(fd, w->bounce, span, start, &got, &err);
    char path[4096];
    *data = w->bounce + skip;
    if (rc == 0 || err != EINVAL)
        return rc < 0 || got < skip + bytes ? read_error(q, rc, err, start, skip + bytes, got) : 0;
    req_path(q, path, sizeof path);
    weft_shard_cache_drop_direct(w->r->cache, path);
    int bfd = open(path, O_RDONLY | O_CLOEXEC);
    if (bfd < 0)
        return weft_error(WEFT_EIO, "%s: cannot reopen: %s", path, strerror(errno));
    rc = read_at(bfd, w->bounce, bytes, q->offset, &got, &err);
    close(bfd);
    *data = w->bounce;
    return rc < 0 || got < bytes ? read_error(q, rc, err, q->offset, bytes, got) : 0;
}

static int bad_token(const weft_read_req *q, const uint8_t *src, size_t n)
{
    char path[4096];
    unsigned w = q->m->token_width;
    req_path(q, path, sizeof path);
    for (size_t j = 0; j < n; j++) {
        uint32_t t = w == 2 ? weft_le_get16(src + 2 * j) : weft_le_get32(src + 4 * j);
        if (t >= q->m->vocab_size)
            return weft_error(WEFT_EDATA, "%s: token out of range at offset %" PRIu64 ": expected a token below the vocab size %u, found %u",
                              path, q->offset + j * w, q->m->vocab_size, t);
    }
    return weft_error(WEFT_EINTERNAL, "%s: token range check disagreed with itself", path);
}

/* Little-endian tokens to int32, returning the largest. Plain loops over
 * native integers on little-endian hosts (the common case) so the compiler
 * vectorises them; this is the one loop over every token the loader runs.
 * -O2's cheap vectoriser model skips loops of unknown length, hence O3. */
#if defined(__GNUC__) && !defined(__clang__)
#define VECTORIZE __attribute__((optimize("O3")))
#else
#define VECTORIZE /* clang vectorises these at -O2 already */
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
VECTORIZE
static uint32_t widen16(const uint8_t *src, int32_t *restrict dst, size_t n)
{
    uint16_t max = 0;
    const uint16_t *s = (const uint16_t *)(const void *)src; /* bounce buffers are aligned */
    for (size_t j = 0; j < n; j++) {
        max = s[j] > max ? s[j] : max;
        dst[j] = s[j];
    }
    return max;
}

VECTORIZE
static uint32_t widen32(const uint8_t *src, int32_t *restrict dst, size_t n)
{
    uint32_t max = 0;
    const uint32_t *s = (const uint32_t *)(const void *)src;
    for (size_t j = 0; j < n; j++) {
        max = s[j] > max ? s[j] : max;
        dst[j] = (int32_t)s[j];
    }
    return max;
}
#else
static uint32_t widen16(const uint8_t *src, int32_t *dst, size_t n)
{
    uint32_t max = 0;
    for (size_t j = 0; j < n; j++) {
        uint32_t t = weft_le_get16(src + 2 * j);
        max = t > max ? t : max;
        dst[j] = (int32_t)t;
    }
    return max;
}

static uint32_t widen32(const uint8_t *src, int32_t *dst, size_t n)
{
    uint32_t max = 0;
    for (size_t j = 0; j < n; j++) {
        uint32_t t = weft_le_get32(src + 4 * j);
        max = t > max ? t : max;
        dst[j] = (int32_t)t;
    }
    return max;
}
#endif

/* Convert, checking the vocab once per window. */
static int convert(const weft_read_req *q, const uint8_t *src, int32_t *dst, size_t n)
{
    uint32_t max = q->m->token_width == 2 ? widen16(src, dst, n) : widen32(src, dst, n);
    return max >= q->m->vocab_size ? bad_token(q, src, n) : 0;
}

/* The worker's reference to q's shard: a local hit, or a new reference
 * from the shared cache replacing the least recently used local one. */
static int local_get(worker *w, const weft_read_req *q, local_ref **out)
{
    weft_shard_cache *c = w->r->cache;
    local_ref *v = &w->local[0];
    for (int i = 0; i < w->n_local; i++) {
        local_ref *l = &w->local[i];
        /* An O_DIRECT descriptor after direct I/O was dropped is replaced. */
        if (l->id == q->shard && !(l->direct && !weft_shard_cache_direct(c))) {
            l->last_use = ++w->clock;
            *out = l;
            return 0;
        }
        if (l->last_use < v->last_use)
            v = l;
    }
    if (w->n_local < LOCAL)
        v = &w->local[w->n_local];
    else
        weft_shard_cache_put(c, v->id);
    weft_shard_header want = {q->m->token_width, q->m->vocab_size, q->m->tokenizer_id, q->ms->tokens, q->ms->checksum};
    int rc = weft_shard_cache_get(c, q->shard, q->dir, q->ms->name, &want, &v->fd, &v->direct);
    if (rc < 0) {
        /* The slot is free now: move the last local entry into it. */
        if (v != &w->local[w->n_local])
            *v = w->local[--w->n_local];
        return rc;
    }
    if (v == &w->local[w->n_local])
        w->n_local++;
    v->id = q->shard;
    v->last_use = ++w->clock;
    *out = v;
    return 0;
}

static int read_row(worker *w, const weft_read_req *q, int32_t *dst, size_t len)
{
    int fd, err = 0, rc;
    bool direct;
    local_ref *l;
    const uint8_t *data = w->bounce;
    size_t bytes = len * q->m->token_width, got = 0;
    WEFT_CHECK(local_get(w, q, &l));
    fd = l->fd;
    direct = l->direct;
    if (direct) {
        rc = read_direct(w, fd, q, bytes, &data);
    } else {
        rc = read_at(fd, w->bounce, bytes, q->offset, &got, &err);
        if (rc < 0 || got < bytes)
            rc = read_error(q, rc, err, q->offset, bytes, got);
    }
    return rc < 0 ? rc : convert(q, data, dst, len);
}

/* ---- batch-level helpers, lifetime -------------------------------------------- */

int weft_reader_read(weft_reader *r, int worker_id, const weft_read_req *q, size_t len, int32_t *out)
{
    if (worker_id < 0 || worker_id >= r->n_workers || len > r->max_tokens)
        return weft_error(WEFT_EINTERNAL, "data: reader worker %d / window of %zu tokens out of range", worker_id, len);
    return read_row(&r->w[worker_id], q, out, len);
}

void weft_reader_announce(weft_reader *r, const weft_read_req *req, size_t n, size_t len)
{
    if (weft_shard_cache_direct(r->cache))
        return; /* O_DIRECT bypasses the page cache the hint would fill */
    for (size_t i = 0; i < n; i++) {
        const weft_read_req *q = &req[i];
        weft_shard_header want = {q->m->token_width, q->m->vocab_size, q->m->tokenizer_id, q->ms->tokens, q->ms->checksum};
        int fd;
        bool direct;
        /* Errors surface again, with their message, when the row is read. */
        if (weft_shard_cache_get(r->cache, q->shard, q->dir, q->ms->name, &want, &fd, &direct) != 0)
            return;
        posix_fadvise(fd, (off_t)q->offset, (off_t)(len * q->m->token_width), POSIX_FADV_WILLNEED);
        weft_shard_cache_put(r->cache, q->shard);
    }
}

int weft_reader_new(int workers, int max_open, size_t n_shards, bool direct, size_t max_tokens,
                    weft_reader **out)
{
    weft_reader *r = calloc(1, sizeof *r);
    if (!r)
        return weft_error(WEFT_ENOMEM, "data: no memory for the reader");
    /* Workers hold up to LOCAL references each; one more each, plus room for
     * the planner's read-ahead hints, keeps an idle descriptor available. */
    int need = workers * (LOCAL + 1) + 2, cap = max_open > need ? max_open : need;
    r->max_tokens = max_tokens;
    r->bounce_len = (max_tokens * 4 + 3 * ALIGN) / ALIGN * ALIGN;
    r->w = calloc((size_t)workers, sizeof *r->w);
    r->n_workers = r->w ? workers : 0;
    int rc = r->w ? weft_shard_cache_new(cap, n_shards, direct, &r->cache)
                  : weft_error(WEFT_ENOMEM, "data: no memory for the reader");
    for (int i = 0; rc == 0 && i < workers; i++) {
        r->w[i].r = r;
        if (posix_memalign((void **)&r->w[i].bounce, ALIGN, r->bounce_len) != 0)
            rc = weft_error(WEFT_ENOMEM, "data: no memory for read buffers");
    }
    if (rc < 0) {
        weft_reader_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void weft_reader_free(weft_reader *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n_workers; i++) {
        for (int j = 0; j < r->w[i].n_local; j++)
            weft_shard_cache_put(r->cache, r->w[i].local[j].id);
        free(r->w[i].bounce);
    }
    weft_shard_cache_free(r->cache);
    free(r->w);
    free(r);
}

bool weft_reader_direct(const weft_reader *r) { return weft_shard_cache_direct(r->cache); }
