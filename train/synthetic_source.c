/*
 * synthetic_source.c -- random token batches (synthetic_source.h).
 */
#include "train/synthetic_source.h"
#include "runtime/error.h"
#include "runtime/rng.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    weft_source base;
    int vocab, dp_rank;
    uint64_t seed, pos;
    size_t n;             /* tokens per batch */
    int32_t *tok;
} synthetic;

static synthetic *of(const weft_source *s) { return (synthetic *)s; }

static int syn_next(weft_source *ss, const void **batch)
{
    synthetic *s = of(ss);
    weft_rng rng;
    weft_rng_seed(&rng, weft_rng_mix(s->seed ^ weft_rng_mix(s->pos * 65536 + (uint64_t)s->dp_rank)));
    for (size_t i = 0; i < s->n; i++)
        s->tok[i] = (int32_t)(weft_rng_u64(&rng) % (uint64_t)s->vocab);
    s->pos++;
    *batch = s->tok;
    return 0;
}

static int syn_seek(weft_source *s, uint64_t b) { of(s)->pos = b; return 0; }
static size_t syn_state_size(const weft_source *s) { (void)s; return 8; }
static int syn_save(const weft_source *s, uint8_t *buf, size_t len)
{
    if (len < 8)
        return weft_error(WEFT_EINVAL, "synthetic source: %zu bytes for an 8-byte position", len);
    memcpy(buf, &of(s)->pos, 8);
    return 0;
}
static int syn_restore(weft_source *s, const uint8_t *buf, size_t len)
{
    if (len != 8)
        return weft_error(WEFT_EDATA, "synthetic source: a position of %zu bytes, not 8", len);
    memcpy(&of(s)->pos, buf, 8);
    return 0;
}
static uint64_t syn_hash(const weft_source *s) { return weft_rng_mix(of(s)->seed ^ (uint64_t)of(s)->vocab); }
static int64_t syn_wait(const weft_source *s) { (void)s; return 0; }
static void syn_close(weft_source *s)
{
    free(of(s)->tok);
    free(s);
}

static const weft_source_ops syn_ops = {.next = syn_next, .seek = syn_seek, .state_size = syn_state_size,
                                        .save = syn_save, .restore = syn_restore, .hash = syn_hash,
                                        .last_wait_ns = syn_wait, .close = syn_close};

int weft_synthetic_source_open(int vocab, int64_t seq_len, int64_t rows, uint64_t seed, int dp_rank,
                               weft_source **out)
{
    if (vocab < 1 || seq_len < 1 || rows < 1)
        return weft_error(WEFT_EINVAL, "synthetic source: vocab %d, seq_len %lld, rows %lld must be >= 1", vocab,
                          (long long)seq_len, (long long)rows);
    synthetic *s = calloc(1, sizeof *s);
    if (!s)
        return weft_error(WEFT_ENOMEM, "out of memory");
    *s = (synthetic){.base = {&syn_ops}, .vocab = vocab, .dp_rank = dp_rank, .seed = seed,
                     .n = (size_t)rows * (size_t)(seq_len + 1)};
    s->tok = malloc(s->n * sizeof *s->tok);
    if (!s->tok) {
        free(s);
        return weft_error(WEFT_ENOMEM, "out of memory");
    }
    *out = &s->base;
    return 0;
}
