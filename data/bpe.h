/*
 * bpe.h -- the internals of the tokenizers of tokenizer.h that tests and
 * the fuzz target reach: loading from memory, and the merge loops.
 */
#ifndef WEFT_DATA_BPE_H
#define WEFT_DATA_BPE_H

#include "data/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

/* A tokenizer from the text of a tokenizer.json (merges == NULL), or of a
 * vocab.json and a merges.txt. origin and merges_origin name them in
 * messages. */
int weft_tokenizer_load_mem(const char *json, size_t n, const char *origin, const char *merges, size_t mn,
                            const char *merges_origin, weft_tokenizer **out);

/* Pieces (pre-tokens) longer than this many bytes are merged with a heap
 * instead of rescanning the pairs after every merge; tests set it to 0 or
 * to SIZE_MAX to run one loop against the other. */
extern size_t weft_bpe_heap_from;

/* Does some added token's text hold byte c? (weft-data prepare cuts text
 * only at spaces that no added token can span.) */
int weft_tokenizer_added_has(const weft_tokenizer *t, char c);

/* The pre-tokens of text[0..n) as the tokenizer splits it (added tokens
 * first, then its pre-tokenizer): calls fn for each with its bytes and
 * whether it is an added token. For tests. */
int weft_tokenizer_split(const weft_tokenizer *t, const char *text, size_t n,
                         void (*fn)(void *arg, const char *s, size_t len, int added), void *arg);

#endif
