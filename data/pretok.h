/*
 * pretok.h -- the pre-tokenizers of byte-level BPE: the regular expressions
 * GPT-2 and Llama 3 split text with before BPE, each written out by hand
 * (weft has no general regex engine; data/bpe.c recognises the two known
 * patterns in a tokenizer.json and refuses any other).
 *
 *   GPT-2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *            ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *
 * Semantics are those of the Hugging Face tokenizers library (Oniguruma):
 * \s is Unicode White_Space, \p{L} and \p{N} the general categories (tables
 * in data/unicode_tables.c), (?i) folds with Unicode simple case folding
 * ('ſ' matches 's'). Text is UTF-8; a byte that is not part of a
 * well-formed sequence is a character of its own of class "other".
 */
#ifndef WEFT_DATA_PRETOK_H
#define WEFT_DATA_PRETOK_H

#include <stddef.h>
#include <stdint.h>

typedef enum { WEFT_PRETOK_GPT2 = 1, WEFT_PRETOK_LLAMA3 = 2 } weft_pretok;

/* Length in bytes (>= 1) of the pre-token that starts at s[0], n >= 1. */
size_t weft_pretok_next(weft_pretok kind, const uint8_t *s, size_t n);

/* The pattern string of kind, exactly as a tokenizer.json writes it. */
const char *weft_pretok_pattern(weft_pretok kind);

#endif
