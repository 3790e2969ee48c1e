/*
 * manifest.h -- the dataset manifest: a line-oriented text file named
 * "manifest" in the dataset directory listing every shard with its split,
 * token count and payload checksum, and the dataset hash derived from them.
 *
 * Grammar, hash definition and an example are in docs/data-format.md. The
 * parser is strict (unknown keys, duplicate shards, a wrong or missing
 * dataset_hash line are errors naming file, line and byte offset) and safe on
 * any input: it is fuzzed by tests/fuzz/fuzz_manifest.c. The manifest is
 * written atomically (temporary name, fsync, rename, fsync of the directory),
 * so a dataset directory always holds either the old manifest or the new one.
 */
#ifndef WEFT_DATA_MANIFEST_H
#define WEFT_DATA_MANIFEST_H

#include "runtime/api.h"

#include <stddef.h>
#include <stdint.h>

#define WEFT_MANIFEST_NAME "manifest"
#define WEFT_MANIFEST_VERSION 1
#define WEFT_SHARD_NAME_MAX 255
/* The largest vocabulary weft-data writes and the trainer accepts: 2^24,
 * 64 times the largest tokenizer in use, while 4-byte tokens of bytes that
 * were never tokens would infer up to 2^32 (and an embedding of that many
 * rows). */
#define WEFT_DATA_MAX_VOCAB (1 << 24)
/* weft-data's bounds on a shard: at least 1 KiB of tokens ("--shard-size
 * 10", a forgotten M, is refused), and at most this many shards per
 * dataset, whatever the size (a forgotten M on a large corpus). */
#define WEFT_DATA_MIN_SHARD_BYTES 1024
#define WEFT_DATA_MAX_SHARDS 100000

typedef enum { WEFT_SPLIT_TRAIN = 0, WEFT_SPLIT_VAL = 1 } weft_split;

typedef struct weft_manifest_shard {
    const char *name;  /* file name inside the dataset directory */
    weft_split split;
    uint64_t tokens;   /* token count, as in the shard header */
    uint64_t checksum; /* payload checksum, as in the shard header */
} weft_manifest_shard;

typedef struct weft_manifest {
    uint32_t token_width;  /* 2 or 4, shared by every shard */
    uint32_t vocab_size;
    uint32_t tokenizer_id;
    uint64_t hash;         /* dataset hash (weft_manifest_hash) */
    size_t n_shards;
    weft_manifest_shard *shards; /* (n_shards) in manifest order */
    char *strings;               /* storage for the shard names */
    uint64_t tokenizer_hash;     /* weft_tokenizer_hash of the tokenizer that made the tokens; 0: not recorded */
} weft_manifest;

/* Parse len bytes of manifest text (need not be NUL-terminated); origin names
 * the file in messages. WEFT_EDATA on any malformed content. */
WEFT_API int weft_manifest_parse(const char *text, size_t len, const char *origin, weft_manifest **out);

/* Read DIR/manifest: WEFT_ENOENT if the directory or manifest is missing. */
WEFT_API int weft_manifest_load(const char *dir, weft_manifest **out);

WEFT_API void weft_manifest_free(weft_manifest *m);

/* The dataset hash: XXH3_64bits over the canonical shard lines (see
 * docs/data-format.md). Depends only on the shard entries, in order. */
WEFT_API uint64_t weft_manifest_hash(const weft_manifest *m);

/* Write m (hash recomputed) to DIR/manifest atomically, mode 0640. */
WEFT_API int weft_manifest_write(const char *dir, const weft_manifest *m);

/* Validate a shard file name: [A-Za-z0-9._-], not starting with '.', at most
 * WEFT_SHARD_NAME_MAX bytes. Returns 1 if valid. */
WEFT_API int weft_manifest_name_ok(const char *name, size_t len);

WEFT_API const char *weft_split_name(weft_split s);
/* "train" or "val": 0, else WEFT_EINVAL. */
WEFT_API int weft_split_parse(const char *s, weft_split *out);

/* Totals for one split (or both when split < 0). */
WEFT_API uint64_t weft_manifest_tokens(const weft_manifest *m, int split);
WEFT_API size_t weft_manifest_count(const weft_manifest *m, int split);

#endif
