/*
 * tokenizer.h -- weft's tokenizers: the built-in byte-level one, and
 * byte-level BPE read from a Hugging Face tokenizer.json or GPT-2's
 * vocab.json + merges.txt (data/bpe.c), behind one opaque handle.
 *
 * The byte-level tokenizer ("bytes"): token = byte value, vocab 256, and
 * token 0 (the NUL byte) marks the end of a document. Text files do not
 * contain NUL, so NUL is free to serve as the end-of-document token without
 * growing the vocab past 256; a NUL byte that does occur in an input is
 * dropped (and counted) so that it can never be mistaken for a document
 * boundary.
 *
 * BPE: GPT-2's byte-to-character mapping, merges by rank, the pre-tokenizer
 * split rules of GPT-2 or Llama 3 (data/pretok.h), the file's added tokens
 * recognised in the text (so "<|endoftext|>" in a file is a document
 * boundary), and no normalizer, BOS or post-processing. Formats, limits and
 * messages: docs/finetuning.md, "Tokenizers".
 *
 * A weft_tokenizer is immutable after weft_tokenizer_load; any number of
 * threads may encode and decode with it at once (each keeps its own cache of
 * recent words). Every function that can fail returns 0 or a negative
 * WEFT_E* code with a message for weft_last_error().
 */
#ifndef WEFT_DATA_TOKENIZER_H
#define WEFT_DATA_TOKENIZER_H

#include "runtime/api.h"

#include <stddef.h>
#include <stdint.h>

#define WEFT_BYTES_VOCAB 256
#define WEFT_BYTES_EOD 0

typedef struct weft_tokenizer weft_tokenizer;

/* path: a tokenizer.json; a directory holding tokenizer.json, or vocab.json
 * + merges.txt, or encoder.json + vocab.bpe (GPT-2's names for the same two
 * files); or "bytes" for the built-in byte-level tokenizer. WEFT_ENOENT if
 * nothing is there, WEFT_EDATA naming file, line and field for a malformed
 * or unsupported file. */
WEFT_API int weft_tokenizer_load(const char *path, weft_tokenizer **out);
WEFT_API void weft_tokenizer_free(weft_tokenizer *t);

/* Ids are < this (one more than the largest id, specials included). */
WEFT_API int weft_tokenizer_vocab(const weft_tokenizer *t);

/* Identity: XXH3_64bits over a canonical form of the vocabulary (id and
 * bytes of each token), the merges in rank order, the pre-tokenizer and the
 * added tokens. The same tokenizer read from tokenizer.json or from
 * vocab.json + merges.txt has the same hash; dataset manifests record it. */
WEFT_API uint64_t weft_tokenizer_hash(const weft_tokenizer *t);

/* The hash of the byte-level tokenizer ("bytes"). */
WEFT_API uint64_t weft_tokenizer_bytes_hash(void);

/* The document-boundary token: <|endoftext|>, <|end_of_text|>, </s> or
 * <eos> among the added tokens (in that order of preference); 0 for
 * "bytes"; -1 if none. */
WEFT_API int32_t weft_tokenizer_eot(const weft_tokenizer *t);

/* "bytes", "bpe/gpt2" or "bpe/llama3": kind and pre-tokenizer. */
WEFT_API const char *weft_tokenizer_name(const weft_tokenizer *t);

/* The tokenizer id recorded in shard headers: WEFT_TOKENIZER_BYTES (1) or
 * WEFT_TOKENIZER_FILE (2). */
WEFT_API uint32_t weft_tokenizer_id(const weft_tokenizer *t);

/* Encode n bytes of text (UTF-8; other bytes are encoded too) into out.
 * *nout is the number of ids; if that is more than cap, nothing past cap is
 * written and the call fails (WEFT_EINVAL) saying how many are needed, with
 * *nout holding that number. No end-of-document token is added. */
WEFT_API int weft_tokenizer_encode(const weft_tokenizer *t, const char *text, size_t n, uint32_t *out, size_t cap,
                                   size_t *nout);

/* Decode n ids into out (bytes, not NUL-terminated): *nout bytes; a cap too
 * small fails (WEFT_EINVAL) as for encode. An id that is not in the
 * vocabulary is WEFT_EDATA. Added tokens decode to their text; for "bytes"
 * the end-of-document token 0 decodes to nothing. */
WEFT_API int weft_tokenizer_decode(const weft_tokenizer *t, const uint32_t *ids, size_t n, char *out, size_t cap,
                                   size_t *nout);

/* The byte-level tokenizer as plain functions. Encode n bytes into out (room
 * for n tokens); returns the number of tokens written. *dropped (if not
 * NULL) is increased by the NUL bytes skipped. The caller appends
 * WEFT_BYTES_EOD after the last chunk of each document. */
WEFT_API size_t weft_tokenizer_bytes_encode(const uint8_t *in, size_t n, uint32_t *out, uint64_t *dropped);

/* Decode tokens back to bytes (EOD becomes '\n' when eod_newline, else is
 * skipped); returns bytes written to out (room for n). Tokens >= 256 are
 * written as '?'. */
WEFT_API size_t weft_tokenizer_bytes_decode(const uint32_t *tokens, size_t n, char *out, int eod_newline);

#endif
