/*
 * token_source.h -- weft's token datasets (data/loader.h) as a batch source
 * (train/source.h): the data.* configuration, this rank's slice of every
 * global batch of windows of seq_len + 1 tokens, the loader's position in
 * every checkpoint.
 */
#ifndef WEFT_TRAIN_TOKEN_SOURCE_H
#define WEFT_TRAIN_TOKEN_SOURCE_H

#include "runtime/api.h"
#include "data/loader.h"
#include "data/manifest.h"
#include "runtime/config.h"
#include "train/source.h"

typedef struct weft_token_source_opts {
    weft_split split;
    int64_t seq_len, global_batch;
    int dp_rank, dp_size;
    uint64_t seed;
} weft_token_source_opts;

/* Open the datasets data.path names (WEFT_ECONFIG if it is unset). The
 * validation split is read in file order. */
WEFT_API int weft_token_source_open(const weft_config *cfg, const weft_token_source_opts *o, weft_source **out);

/* The largest vocabulary among the datasets data.path names and the model's
 * tokenizer (data.tokenizer, when set). With data.tokenizer, a dataset whose
 * manifest records another tokenizer (or none) is WEFT_EDATA naming both
 * hashes. */
WEFT_API int weft_token_source_vocab(const weft_config *cfg, int *vocab);

/* The loader underneath (windows consumed, for the log). */
WEFT_API weft_loader *weft_token_source_loader(weft_source *s);

#endif
