/*
 * writer.c -- the dataset writer (see writer.h): one open temporary shard per
 * split, fed through a staging buffer of encoded little-endian tokens, with a
 * running XXH3 of the payload, so a token is touched once on its way to disk.
 */
#include "data/writer.h"
#include "data/atomic_file.h"
#include "data/le.h"
#include "data/shard.h"
#include "runtime/error.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define STAGE_BYTES (4u << 20)
#define PATH_LEN 4096

typedef struct {
    weft_split split;
    unsigned index;
    uint64_t tokens;
    uint64_t checksum;
} done_shard;

typedef struct {
    int fd;               /* -1 when no shard is open for this split */
    unsigned next_index;
    uint64_t tokens;      /* in the open shard */
    uint64_t offset;      /* next payload byte offset in the file */
    XXH3_state_t *hash;
    uint8_t *stage;       /* (STAGE_BYTES) encoded tokens not yet written */
    size_t staged;
} split_state;

struct weft_dataset_writer {
    weft_dataset_writer_options o;
    char dir[PATH_LEN - 128];
    split_state sp[2];
    done_shard *done;
    size_t n_done, cap_done;
    uint32_t max_token;
    uint64_t total[2];
    int committed;
};

static void shard_path(const weft_dataset_writer *w, weft_split s, unsigned idx, int tmp,
                       char *out, size_t len)
{
    snprintf(out, len, "%s/%s%s-%06u.wtok%s", w->dir, tmp ? "." : "", weft_split_name(s), idx,
             tmp ? ".tmp" : "");
}

static int make_dir(const char *dir)
{
    if (mkdir(dir, 0750) == 0 || errno == EEXIST)
        return 0;
    return weft_error(errno == ENOENT ? WEFT_ENOENT : WEFT_EIO, "%s: cannot create the dataset directory: %s",
                      dir, strerror(errno));
}

int weft_dataset_writer_open(const weft_dataset_writer_options *o, weft_dataset_writer **out)
{
    if ((o->token_width != 2 && o->token_width != 4) || o->shard_tokens == 0)
        return weft_error(WEFT_EINVAL, "dataset writer: token width must be 2 or 4 (got %u) and shard size positive",
                          o->token_width);
    if (strlen(o->dir) >= PATH_LEN - 128)
        return weft_error(WEFT_EINVAL, "%s: dataset path too long", o->dir);
    WEFT_CHECK(make_dir(o->dir));
    weft_dataset_writer *w = calloc(1, sizeof *w);
    if (!w)
        return weft_error(WEFT_ENOMEM, "no memory for a dataset writer");
    w->o = *o;
    snprintf(w->dir, sizeof w->dir, "%s", o->dir);
    w->o.dir = w->dir;
    for (int s = 0; s < 2; s++) {
        w->sp[s].fd = -1;
        w->sp[s].stage = malloc(STAGE_BYTES);
        w->sp[s].hash = XXH3_createState();
        if (!w->sp[s].stage || !w->sp[s].hash) {
            weft_dataset_writer_free(w);
            return weft_error(WEFT_ENOMEM, "no memory for dataset writer buffers");
        }
    }
    *out = w;
    return 0;
}

static int start_shard(weft_dataset_writer *w, weft_split s)
{
    char path[PATH_LEN];
    split_state *sp = &w->sp[s];
    shard_path(w, s, sp->next_index, 1, path, sizeof path);
    sp->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (sp->fd < 0)
        return weft_error(WEFT_EIO, "%s: cannot create shard: %s", path, strerror(errno));
    sp->tokens = 0;
    sp->offset = WEFT_SHARD_HEADER_SIZE; /* the header is written at commit */
    sp->staged = 0;
    XXH3_64bits_reset(sp->hash);
    return 0;
}

static int flush_stage(weft_dataset_writer *w, weft_split s)
{
    char path[PATH_LEN];
    split_state *sp = &w->sp[s];
    if (sp->staged == 0)
        return 0;
    shard_path(w, s, sp->next_index, 1, path, sizeof path);
    XXH3_64bits_update(sp->hash, sp->stage, sp->staged);
    WEFT_CHECK(weft_write_full(sp->fd, sp->stage, sp->staged, (long long)sp->offset, path));
    sp->offset += sp->staged;
    sp->staged = 0;
    return 0;
}

static int remember(weft_dataset_writer *w, weft_split s, uint64_t tokens, uint64_t sum)
{
    if (w->n_done == w->cap_done) {
        size_t cap = w->cap_done ? 2 * w->cap_done : 64;
        done_shard *d = realloc(w->done, cap * sizeof *d);
        if (!d)
            return weft_error(WEFT_ENOMEM, "no memory for the shard list");
        w->done = d;
        w->cap_done = cap;
    }
    w->done[w->n_done++] = (done_shard){s, w->sp[s].next_index, tokens, sum};
    return 0;
}

static int end_shard(weft_dataset_writer *w, weft_split s)
{
    split_state *sp = &w->sp[s];
    WEFT_CHECK(flush_stage(w, s));
    WEFT_CHECK(remember(w, s, sp->tokens, XXH3_64bits_digest(sp->hash)));
    close(sp->fd);
    sp->fd = -1;
    sp->next_index++;
    return 0;
}

static int check_token(const weft_dataset_writer *w, uint32_t t)
{
    if (w->o.token_width == 2 && t > 0xffff)
        return weft_error(WEFT_EDATA, "token %u does not fit 2-byte tokens", t);
    if (w->o.vocab_size && t >= w->o.vocab_size)
        return weft_error(WEFT_EDATA, "token %u is not below the vocab size %u", t, w->o.vocab_size);
    return 0;
}

static void put_token(weft_dataset_writer *w, weft_split s, uint32_t t)
{
    split_state *sp = &w->sp[s];
    if (w->o.token_width == 2) {
        sp->stage[sp->staged] = (uint8_t)t;
        sp->stage[sp->staged + 1] = (uint8_t)(t >> 8);
    } else {
        weft_le_put32(sp->stage + sp->staged, t);
    }
    sp->staged += w->o.token_width;
    w->max_token = t > w->max_token ? t : w->max_token;
}

int weft_dataset_writer_append(weft_dataset_writer *w, weft_split split, const uint32_t *tokens,
                               size_t n)
{
    split_state *sp = &w->sp[split];
    for (size_t i = 0; i < n; i++) {
        WEFT_CHECK(check_token(w, tokens[i]));
        if (sp->fd < 0)
            WEFT_CHECK(start_shard(w, split));
        put_token(w, split, tokens[i]);
        sp->tokens++;
        w->total[split]++;
        if (sp->staged + 4 > STAGE_BYTES)
            WEFT_CHECK(flush_stage(w, split));
        if (sp->tokens == w->o.shard_tokens)
            WEFT_CHECK(end_shard(w, split));
    }
    return 0;
}

static int finish_one(weft_dataset_writer *w, const done_shard *d, uint32_t vocab)
{
    char tmp[PATH_LEN], final[PATH_LEN];
    uint8_t hdr[WEFT_SHARD_HEADER_SIZE];
    weft_shard_header h = {w->o.token_width, vocab, w->o.tokenizer_id, d->tokens, d->checksum};
    shard_path(w, d->split, d->index, 1, tmp, sizeof tmp);
    shard_path(w, d->split, d->index, 0, final, sizeof final);
    weft_shard_header_encode(&h, hdr);
    int fd = open(tmp, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return weft_error(WEFT_EIO, "%s: cannot reopen shard: %s", tmp, strerror(errno));
    int rc = weft_write_full(fd, hdr, sizeof hdr, 0, tmp);
    /* The directory is fsynced once, after the manifest. */
    if (rc == 0 && fsync(fd) != 0)
        rc = weft_error(WEFT_EIO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, final) != 0)
        rc = weft_error(WEFT_EIO, "rename %s -> %s failed: %s", tmp, final, strerror(errno));
    close(fd);
    return rc;
}

static int build_manifest(weft_dataset_writer *w, uint32_t vocab, weft_manifest **out)
{
    weft_manifest *m = calloc(1, sizeof *m);
    size_t names_len = w->n_done * 32 + 1, off = 0;
    if (m) {
        m->shards = calloc(w->n_done ? w->n_done : 1, sizeof *m->shards);
        m->strings = malloc(names_len);
    }
    if (!m || !m->shards || !m->strings) {
        weft_manifest_free(m);
        return weft_error(WEFT_ENOMEM, "no memory for the manifest");
    }
    m->token_width = w->o.token_width;
    m->vocab_size = vocab;
    m->tokenizer_id = w->o.tokenizer_id;
    m->tokenizer_hash = w->o.tokenizer_hash;
    /* Train shards first, then validation, each in the order written. */
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < w->n_done; i++) {
            const done_shard *d = &w->done[i];
            if ((int)d->split != s)
                continue;
            weft_manifest_shard *e = &m->shards[m->n_shards++];
            e->name = m->strings + off;
            off += (size_t)snprintf(m->strings + off, names_len - off, "%s-%06u.wtok",
                                    weft_split_name(d->split), d->index) + 1;
            e->split = d->split;
            e->tokens = d->tokens;
            e->checksum = d->checksum;
        }
    }
    m->hash = weft_manifest_hash(m);
    *out = m;
    return 0;
}

int weft_dataset_writer_commit(weft_dataset_writer *w, weft_manifest **out)
{
    weft_manifest *m = NULL;
    int rc = 0;
    for (int s = 0; s < 2; s++)
        if (w->sp[s].fd >= 0)
            WEFT_CHECK(end_shard(w, (weft_split)s));
    /* An inferred vocabulary past the cap (max_token + 1 even wraps to 0 at
     * 2^32 - 1) is bytes that were never tokens: nothing could train on it. */
    if (!w->o.vocab_size && w->max_token >= WEFT_DATA_MAX_VOCAB)
        return weft_error(WEFT_EDATA, "dataset %s: the largest token is %u, so the inferred vocabulary would be "
                          "%llu, above the largest weft trains (%d = 2^24): were these really tokens? Give the "
                          "vocabulary size explicitly", w->dir, w->max_token, (unsigned long long)w->max_token + 1,
                          WEFT_DATA_MAX_VOCAB);
    uint32_t vocab = w->o.vocab_size ? w->o.vocab_size : w->max_token + 1;
    for (size_t i = 0; i < w->n_done; i++)
        WEFT_CHECK(finish_one(w, &w->done[i], vocab));
    w->committed = 1; /* the shards are in place; nothing left to clean up */
    WEFT_CHECK(build_manifest(w, vocab, &m));
    WEFT_CHECK_GOTO(weft_manifest_write(w->dir, m), rc, fail);
    if (out)
        *out = m;
    else
        weft_manifest_free(m);
    return 0;
fail:
    weft_manifest_free(m);
    return rc;
}

uint32_t weft_dataset_writer_max_token(const weft_dataset_writer *w) { return w->max_token; }

uint64_t weft_dataset_writer_tokens(const weft_dataset_writer *w, weft_split split)
{
    return w->total[split];
}

void weft_dataset_writer_free(weft_dataset_writer *w)
{
    char path[PATH_LEN];
    if (!w)
        return;
    for (int s = 0; s < 2; s++) {
        if (w->sp[s].fd >= 0) {
            close(w->sp[s].fd);
            shard_path(w, (weft_split)s, w->sp[s].next_index, 1, path, sizeof path);
            unlink(path);
        }
        free(w->sp[s].stage);
        XXH3_freeState(w->sp[s].hash);
    }
    for (size_t i = 0; !w->committed && i < w->n_done; i++) {
        shard_path(w, w->done[i].split, w->done[i].index, 1, path, sizeof path);
        unlink(path);
    }
    free(w->done);
    free(w);
}
