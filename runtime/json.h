/*
 * json.h -- a small strict JSON parser (RFC 8259) for the JSON files weft
 * reads from other tools: safetensors headers, Hugging Face config.json and
 * model.safetensors.index.json (checkpoint/hf.c), and anything else that
 * needs a real parser rather than a field scan.
 *
 * Strict: one value and nothing but whitespace around it; no comments,
 * trailing commas, NaN/Infinity, leading zeros or '+'; strings must be valid
 * UTF-8 with no raw control characters, escapes decoded (\uXXXX surrogate
 * pairs to 4-byte UTF-8, a lone surrogate refused); an object with the same
 * key twice is refused (safetensors: two tensors of one name); nesting at
 * most WEFT_JSON_MAX_DEPTH. Errors are WEFT_EDATA naming the origin, the
 * byte offset and what was expected. Safe on any input: fuzzed through
 * tests/fuzz/fuzz_safetensors.c.
 *
 * The result is a tree of open structs owned by one weft_json_doc: walk
 * an array's or object's members with first/next; numbers keep their text,
 * so integers above 2^53 (byte offsets) read exactly (weft_json_u64).
 */
#ifndef WEFT_RUNTIME_JSON_H
#define WEFT_RUNTIME_JSON_H

#include <stddef.h>
#include <stdint.h>

#define WEFT_JSON_MAX_DEPTH 64

typedef enum {
    WEFT_JSON_NULL,
    WEFT_JSON_FALSE,
    WEFT_JSON_TRUE,
    WEFT_JSON_NUMBER,
    WEFT_JSON_STRING,
    WEFT_JSON_ARRAY,
    WEFT_JSON_OBJECT,
} weft_json_type;

typedef struct weft_json {
    weft_json_type type;
    const char *key;          /* member name inside an object (decoded, NUL-terminated), else NULL */
    size_t key_len;
    const char *str;          /* STRING: decoded, NUL-terminated; NUMBER: its text as written */
    size_t len;
    double num;               /* NUMBER: the value (rounded to double) */
    size_t offset;            /* byte offset of the value in the text (messages) */
    size_t n;                 /* ARRAY, OBJECT: number of members */
    struct weft_json *first;  /* ARRAY, OBJECT: the first member */
    struct weft_json *next;   /* the next member of the parent */
} weft_json;

typedef struct weft_json_doc weft_json_doc;

/* Parse len bytes of text (need not be NUL-terminated); origin names the
 * text in messages ("model.safetensors: header"). */
int weft_json_parse(const char *text, size_t len, const char *origin, weft_json_doc **out);
const weft_json *weft_json_root(const weft_json_doc *doc);
void weft_json_free(weft_json_doc *doc);

/* The member key of an object, or NULL (not an object, or no such key). */
const weft_json *weft_json_get(const weft_json *obj, const char *key);
/* A NUMBER that is a non-negative integer written without fraction or
 * exponent, at most UINT64_MAX: 0 and *out, else -1. */
int weft_json_u64(const weft_json *v, uint64_t *out);
/* "null", "false", "number", ... */
const char *weft_json_type_name(weft_json_type t);

#endif
