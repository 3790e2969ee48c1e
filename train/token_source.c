/*
 * token_source.c -- a weft_loader behind the batch source interface
 * (token_source.h, source.h).
 */
#include "train/token_source.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "runtime/config.h"
#include "runtime/error.h"

#include <inttypes.h>
#include <stdlib.h>

typedef struct {
    weft_source base;
    weft_loader *L;
} token_source;

static weft_loader *loader(const weft_source *s) { return ((const token_source *)s)->L; }

static int ts_next(weft_source *s, const void **batch)
{
    const int32_t *rows;
    WEFT_CHECK(weft_loader_next(loader(s), &rows));
    *batch = rows;
    return 0;
}

static int ts_seek(weft_source *s, uint64_t b) { return weft_loader_seek(loader(s), b); }
static size_t ts_state_size(const weft_source *s) { return weft_loader_state_size(loader(s)); }
static int ts_save(const weft_source *s, uint8_t *buf, size_t len) { return weft_loader_save(loader(s), buf, len); }
static int ts_restore(weft_source *s, const uint8_t *buf, size_t len)
{
    return weft_loader_restore(loader(s), buf, len);
}
static uint64_t ts_hash(const weft_source *s) { return weft_loader_dataset_hash(loader(s)); }
static int64_t ts_wait(const weft_source *s) { return weft_loader_last_wait_ns(loader(s)); }
static int64_t ts_samples(const weft_source *s) { return (int64_t)weft_loader_samples(loader(s), 0); }

static void ts_close(weft_source *s)
{
    weft_loader_close(loader(s));
    free(s);
}

static const weft_source_ops token_ops = {
    .next = ts_next,
    .seek = ts_seek,
    .state_size = ts_state_size,
    .save = ts_save,
    .restore = ts_restore,
    .hash = ts_hash,
    .last_wait_ns = ts_wait,
    .samples = ts_samples,
    .close = ts_close,
};

int weft_token_source_open(const weft_config *cfg, const weft_token_source_opts *to, weft_source **out)
{
    weft_loader_options o;
    weft_loader_options_default(&o);
    WEFT_CHECK(weft_loader_options_from_config(cfg, &o));
    if (o.n_datasets < 1)
        return weft_error(WEFT_ECONFIG, "data.path is not set: give a dataset directory made by weft-data");
    o.split = to->split;
    o.seq_len = to->seq_len;
    o.global_batch = to->global_batch;
    o.dp_rank = to->dp_rank;
    o.dp_size = to->dp_size;
    o.seed = to->seed;
    if (to->split == WEFT_SPLIT_VAL)
        o.shuffle = false;
    token_source *s = calloc(1, sizeof *s);
    if (!s)
        return weft_error(WEFT_ENOMEM, "out of memory");
    s->base.ops = &token_ops;
    int rc = weft_loader_open(&o, &s->L);
    if (rc) {
        free(s);
        return rc;
    }
    *out = &s->base;
    return 0;
}

/* The tokenizer that made dataset dir's tokens (its manifest's
 * tokenizer_hash; a byte-level dataset from before that line existed is the
 * byte-level tokenizer) must be the model's, data.tokenizer. */
static int check_tokenizer(const weft_tokenizer *t, const char *tpath, const char *dir, const weft_manifest *m)
{
    uint64_t h = m->tokenizer_hash, want = weft_tokenizer_hash(t);
    if (!h && m->tokenizer_id == WEFT_TOKENIZER_BYTES)
        h = weft_tokenizer_bytes_hash();
    if (h == want)
        return 0;
    if (!h)
        return weft_error(WEFT_EDATA, "dataset %s (data.path) records no tokenizer (tokenizer id %u, no "
                          "tokenizer_hash), so it cannot be checked against data.tokenizer %s (hash %016" PRIx64 "): "
                          "rebuild it with weft-data prepare --tokenizer %s, or import it with --tokenizer %s",
                          dir, m->tokenizer_id, tpath, want, tpath, tpath);
    return weft_error(WEFT_EDATA, "dataset %s (data.path) was tokenized by tokenizer %016" PRIx64 " (its manifest's "
                      "tokenizer_hash), but the model's tokenizer, data.tokenizer %s, is %016" PRIx64 ": rebuild the "
                      "dataset with weft-data prepare --tokenizer %s, or set data.tokenizer to the tokenizer that "
                      "made it", dir, h, tpath, want, tpath);
}

int weft_token_source_vocab(const weft_config *cfg, int *vocab)
{
    weft_loader_options o;
    weft_tokenizer *t = NULL;
    const char *tpath = weft_config_str(cfg, "data.tokenizer");
    weft_loader_options_default(&o);
    WEFT_CHECK(weft_loader_options_from_config(cfg, &o));
    *vocab = 0;
    if (tpath[0]) {
        WEFT_CHECK(weft_tokenizer_load(tpath, &t));
        *vocab = weft_tokenizer_vocab(t);
    }
    for (int i = 0; i < o.n_datasets; i++) {
        weft_manifest *m = NULL;
        int rc = weft_manifest_load(o.paths[i], &m);
        if (rc == 0 && t)
            rc = check_tokenizer(t, tpath, o.paths[i], m);
        if (rc) {
            weft_manifest_free(m);
            weft_tokenizer_free(t);
            return rc;
        }
        uint32_t v = m->vocab_size;
        weft_manifest_free(m);
        /* A model needs two tokens at least, and an embedding row per token:
         * more than WEFT_DATA_MAX_VOCAB is a dataset written from bytes that
         * were not tokens (weft-data import --dtype u32 of the wrong file). */
        if (v < 2 || v > WEFT_DATA_MAX_VOCAB) {
            weft_tokenizer_free(t);
            return weft_error(WEFT_ECONFIG, "dataset %s (data.path) has vocabulary size %u: a model needs one in "
                              "[2, %d]; check how it was made (weft-data info %s) and rebuild it with weft-data "
                              "import --vocab N", o.paths[i], v, WEFT_DATA_MAX_VOCAB, o.paths[i]);
        }
        if ((int)v > *vocab)
            *vocab = (int)v;
    }
    weft_tokenizer_free(t);
    return 0;
}

weft_loader *weft_token_source_loader(weft_source *s) { return loader(s); }
