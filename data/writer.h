/*
 * writer.h -- builds a dataset directory: cuts an incoming token stream into
 * shards of a fixed size per split, then commits the shards and the manifest.
 *
 * States: open (weft_dataset_writer_open) -> appending
 * (weft_dataset_writer_append, any number of times, per split) -> committed
 * (weft_dataset_writer_commit) or abandoned (weft_dataset_writer_free without
 * commit, which removes every temporary file). Shards are written under
 * temporary names (".train-000000.wtok.tmp") and only renamed into place at
 * commit, after their headers carry the final vocab size, so an interrupted
 * run never leaves a shard or manifest that looks complete.
 */
#ifndef WEFT_DATA_WRITER_H
#define WEFT_DATA_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "data/manifest.h"

typedef struct weft_dataset_writer weft_dataset_writer;

typedef struct weft_dataset_writer_options {
    const char *dir;        /* created (mode 0750) if missing */
    uint32_t token_width;   /* 2 or 4 */
    uint32_t vocab_size;    /* 0: infer max token + 1 at commit */
    uint32_t tokenizer_id;
    uint64_t shard_tokens;  /* tokens per shard (the last one may be shorter) */
    uint64_t tokenizer_hash; /* recorded in the manifest; 0: none */
} weft_dataset_writer_options;

int weft_dataset_writer_open(const weft_dataset_writer_options *o, weft_dataset_writer **out);

/* Append n tokens to split. A token that does not fit the vocab size or the
 * token width is WEFT_EDATA (callers check first to name the input offset). */
int weft_dataset_writer_append(weft_dataset_writer *w, weft_split split, const uint32_t *tokens,
                               size_t n);

/* Finish the shards, write their headers, rename them into place and write
 * the manifest. After it, *out (if not NULL) describes the dataset; free it
 * with weft_manifest_free. */
int weft_dataset_writer_commit(weft_dataset_writer *w, weft_manifest **out);

/* Largest token appended so far (0 if none). */
uint32_t weft_dataset_writer_max_token(const weft_dataset_writer *w);
uint64_t weft_dataset_writer_tokens(const weft_dataset_writer *w, weft_split split);

/* Free; removes temporary files when commit did not succeed. */
void weft_dataset_writer_free(weft_dataset_writer *w);

#endif
