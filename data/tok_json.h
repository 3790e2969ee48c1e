/*
 * tok_json.h -- the JSON parser of the tokenizer files
 * (tokenizer.json, vocab.json): the whole text becomes a flat array of
 * nodes in document order, strings are left in place and decoded on demand.
 *
 * It is kept apart from runtime/json.h (the tree parser of safetensors
 * headers and config.json) for two things a tokenizer file needs: messages
 * by line and column, as a person editing a 9 MB tokenizer.json finds them,
 * and no copy per string (a Llama 3 file has 400 000).
 *
 * Errors name origin:line:column and what was expected and found; nesting
 * is limited to WEFT_TJSON_MAX_DEPTH and texts to 1 GiB, so any input is
 * safe (fuzzed by tests/fuzz/fuzz_tokenizer.c).
 */
#ifndef WEFT_DATA_TOK_JSON_H
#define WEFT_DATA_TOK_JSON_H

#include <stddef.h>
#include <stdint.h>

#define WEFT_TJSON_MAX_DEPTH 64
#define WEFT_TJSON_NONE UINT32_MAX

typedef enum { WEFT_TJSON_NULL, WEFT_TJSON_FALSE, WEFT_TJSON_TRUE, WEFT_TJSON_NUM, WEFT_TJSON_STR,
               WEFT_TJSON_ARR, WEFT_TJSON_OBJ } weft_tjson_type;

typedef struct {
    uint8_t type;    /* weft_tjson_type */
    uint32_t off;    /* byte offset of the value (a string: of its first character) */
    uint32_t len;    /* a string: raw bytes between the quotes; a number: its length */
    uint32_t count;  /* an array: elements; an object: members (key and value nodes each) */
    uint32_t next;   /* the next sibling's index, WEFT_TJSON_NONE after the last */
} weft_tjson_node;

typedef struct {
    const char *text;       /* not owned; must outlive the parse */
    size_t n;
    const char *origin;     /* file name for messages */
    weft_tjson_node *nodes;  /* nodes[0] is the root; a container's first child follows it */
    uint32_t nnodes, cap;
} weft_tjson;

/* Parse text[0..n) (one value, white space around it). WEFT_EDATA naming
 * origin:line:col on malformed or truncated input. */
int weft_tjson_parse(const char *text, size_t n, const char *origin, weft_tjson *j);
void weft_tjson_free(weft_tjson *j);

/* First child of a container (WEFT_TJSON_NONE if empty) and the one after. */
uint32_t weft_tjson_child(const weft_tjson *j, uint32_t node);
static inline uint32_t weft_tjson_next(const weft_tjson *j, uint32_t node) { return j->nodes[node].next; }

/* The value of member key in object obj, or WEFT_TJSON_NONE (also when obj
 * is not an object). */
uint32_t weft_tjson_get(const weft_tjson *j, uint32_t obj, const char *key);

/* Decode string node into buf (UTF-8, not NUL-terminated); its length in
 * *len. WEFT_EDATA if it does not fit cap or holds a bad escape. */
int weft_tjson_str(const weft_tjson *j, uint32_t node, char *buf, size_t cap, size_t *len);

/* Does string node equal s (after decoding)? */
int weft_tjson_str_eq(const weft_tjson *j, uint32_t node, const char *s);

/* An integer number node in [lo, hi]: 0, else -1. */
int weft_tjson_int(const weft_tjson *j, uint32_t node, int64_t lo, int64_t hi, int64_t *out);

/* 1-based line and column of byte offset off. */
void weft_tjson_where(const weft_tjson *j, size_t off, int *line, int *col);

const char *weft_tjson_type_name(int type);

#endif
