/*
 * tokenizer.h -- the built-in byte-level tokenizer: token = byte value,
 * vocab 256, and token 0 (the NUL byte) marks the end of a document.
 *
 * Text files do not contain NUL, so NUL is free to serve as the
 * end-of-document token without growing the vocab past 256; a NUL byte that
 * does occur in an input is dropped (and counted) so that it can never be
 * mistaken for a document boundary.
 */
#ifndef WEFT_DATA_TOKENIZER_H
#define WEFT_DATA_TOKENIZER_H

#include "runtime/api.h"

#include <stddef.h>
#include <stdint.h>

#define WEFT_BYTES_VOCAB 256
#define WEFT_BYTES_EOD 0

/* Encode n bytes into out (room for n tokens); returns the number of tokens
 * written. *dropped (if not NULL) is increased by the NUL bytes skipped. The
 * caller appends WEFT_BYTES_EOD after the last chunk of each document. */
WEFT_API size_t weft_tokenizer_bytes_encode(const uint8_t *in, size_t n, uint32_t *out, uint64_t *dropped);

/* Decode tokens back to bytes (EOD becomes '\n' when eod_newline, else is
 * skipped); returns bytes written to out (room for n). Tokens >= 256 are
 * written as '?'. */
WEFT_API size_t weft_tokenizer_bytes_decode(const uint32_t *tokens, size_t n, char *out, int eod_newline);

#endif
