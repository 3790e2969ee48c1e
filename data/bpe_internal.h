/*
 * bpe_internal.h -- the weft_tokenizer object, shared by data/bpe.c (encode,
 * decode, the per-thread cache) and data/bpe_load.c (reading the files,
 * building the tables, the hash). Nothing outside those two includes it.
 *
 * Tables, for a vocabulary of V ids (V = largest id + 1):
 *   tok_off, tok_len  (V)  each token's bytes in pool (tok_len 0: no token)
 *   tok_flags         (V)  TOK_PRESENT; TOK_ADDED (an added token: matched
 *                          in the text as a whole); TOK_LITERAL (a vocabulary
 *                          string outside GPT-2's byte alphabet: its UTF-8
 *                          bytes, never made by merges)
 *   bytes_map (pow2)       open addressing: token bytes -> id, for the
 *                          ordinary (non-added) tokens
 *   merges (pow2)          open addressing: (left id, right id) -> (rank, id)
 *   byte_id[256]           the token of each single byte
 */
#ifndef WEFT_DATA_BPE_INTERNAL_H
#define WEFT_DATA_BPE_INTERNAL_H

#include "data/bpe.h"
#include "data/pretok.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

enum { TOK_PRESENT = 1, TOK_ADDED = 2, TOK_LITERAL = 4 };
enum { KIND_BYTES = 1, KIND_BPE = 2 };

#define NO_ID UINT32_MAX
#define MAX_ADDED_LEN 256 /* bytes of an added token's text */

typedef struct {
    uint64_t key;  /* left << 32 | right; UINT64_MAX: empty slot */
    uint32_t rank; /* line of the merge, 0 first */
    uint32_t id;   /* the merged token */
} merge_slot;

typedef struct {
    uint32_t id;
    uint32_t len;
    uint32_t off;  /* in pool */
    int special;
} added_token;

struct weft_tokenizer {
    int kind;
    weft_pretok pretok;
    int ignore_merges;
    uint32_t vocab;
    uint32_t *tok_off, *tok_len;
    uint8_t *tok_flags;
    uint8_t *pool;
    size_t pool_len, pool_cap;
    uint32_t *bytes_map;
    size_t bytes_mask;
    merge_slot *merges;
    size_t merge_mask, nmerges;
    uint32_t *merge_order; /* (nmerges) the merges' pairs in rank order: left, right (2 per merge) */
    uint32_t byte_id[256];
    added_token *added;    /* sorted by first byte, then longest first */
    size_t nadded;
    uint8_t added_first[256]; /* 1: some added token starts with this byte */
    int32_t eot;
    uint64_t hash;
    pthread_key_t cache_key;
    int has_key;
    char origin[512];
};

/* Create the key of the per-thread caches (bpe.c). */
int weft_bpe_key_create(weft_tokenizer *t);

/* Lookups both files use. */
uint32_t weft_bpe_bytes_lookup(const weft_tokenizer *t, const uint8_t *s, size_t n);
const merge_slot *weft_bpe_merge_lookup(const weft_tokenizer *t, uint32_t a, uint32_t b);

#endif
