/*
 * bpe_load.c -- reads tokenizers (tokenizer.h): a Hugging Face
 * tokenizer.json, GPT-2's vocab.json + merges.txt, or the built-in "bytes";
 * builds the tables of bpe_internal.h and the identity hash.
 *
 * What is accepted (anything else is refused, naming the file, the line and
 * the JSON field, rather than tokenized differently from the reference):
 *   model        type "BPE", vocab {token: id}, merges as "a b" strings or
 *                ["a", "b"] pairs, no dropout, no byte_fallback, no
 *                subword prefix/suffix; ignore_merges honoured
 *   normalizer   null
 *   pre_tokenizer  ByteLevel with use_regex (GPT-2's split), or a Sequence
 *                of Split(GPT-2's or Llama 3's regex, Isolated) then
 *                ByteLevel without regex; never add_prefix_space
 *   added_tokens without lstrip, rstrip or single_word
 * post_processor and decoder are not read: weft adds no BOS/EOS, and decodes
 * byte-level.
 */
#include "data/bpe_internal.h"
#include "data/tok_json.h"
#include "data/unicode.h"
#include "runtime/error.h"
#include "runtime/readfile.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define MAX_VOCAB (1u << 24) /* WEFT_DATA_MAX_VOCAB */
#define MAX_FILE (1u << 30)

/* ---- GPT-2's byte <-> character mapping --------------------------------- */

/* Printable Latin-1 bytes stand for themselves; the others (0-32, 127-160,
 * 173) for U+0100 upward, in order: byte_char[b] is b's character. */
static void byte_chars(uint32_t byte_char[256], int16_t char_byte[324])
{
    uint32_t n = 0;
    for (int c = 0; c < 324; c++)
        char_byte[c] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        byte_char[b] = printable ? (uint32_t)b : 256 + n++;
        char_byte[byte_char[b]] = (int16_t)b;
    }
}

/* ---- building ---------------------------------------------------------- */

typedef struct {
    weft_tokenizer *t;
    int16_t char_byte[324];
    const weft_tjson *j;      /* the tokenizer.json or vocab.json being read */
    char *buf;               /* scratch for decoded strings */
    size_t buf_cap;
} builder;

static int pool_add(weft_tokenizer *t, const void *s, size_t n, uint32_t *off)
{
    if (t->pool_len + n > t->pool_cap) {
        size_t cap = (t->pool_len + n) * 2 + 4096;
        uint8_t *p = cap < UINT32_MAX ? realloc(t->pool, cap) : NULL;
        if (!p)
            return weft_error(WEFT_ENOMEM, "%s: no memory for the token strings", t->origin);
        t->pool = p;
        t->pool_cap = cap;
    }
    memcpy(t->pool + t->pool_len, s, n);
    *off = (uint32_t)t->pool_len;
    t->pool_len += n;
    return 0;
}

/* "file:line:col: FIELD: " for node */
static int field_error(const builder *b, uint32_t node, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int field_error(const builder *b, uint32_t node, const char *field, const char *fmt, ...)
{
    char msg[512];
    int line = 1, col = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (node != WEFT_TJSON_NONE)
        weft_tjson_where(b->j, b->j->nodes[node].off, &line, &col);
    return weft_error(WEFT_EDATA, "%s:%d:%d: %s: %s", b->j->origin, line, col, field, msg);
}

/* Decode string node into b->buf: *s, *n. */
static int get_str(builder *b, uint32_t node, const char *field, const char **s, size_t *n)
{
    if (node == WEFT_TJSON_NONE || b->j->nodes[node].type != WEFT_TJSON_STR)
        return field_error(b, node, field, "expected a string, found %s",
                           node == WEFT_TJSON_NONE ? "nothing" : weft_tjson_type_name(b->j->nodes[node].type));
    size_t need = (size_t)b->j->nodes[node].len + 8;
    if (need > b->buf_cap) {
        char *p = realloc(b->buf, need * 2);
        if (!p)
            return weft_error(WEFT_ENOMEM, "%s: no memory", b->j->origin);
        b->buf = p;
        b->buf_cap = need * 2;
    }
    WEFT_CHECK(weft_tjson_str(b->j, node, b->buf, b->buf_cap, n));
    *s = b->buf;
    return 0;
}

/* A vocabulary string to bytes through the character mapping, in place;
 * 0 if some character is outside the mapping (the string is then kept as
 * its UTF-8 bytes, a literal token). */
static int map_chars(const builder *b, char *s, size_t *n)
{
    size_t k = 0;
    for (size_t i = 0; i < *n;) {
        uint32_t cp;
        i += weft_utf8_next((const uint8_t *)s + i, *n - i, &cp);
        if (cp >= 324 || b->char_byte[cp] < 0)
            return 0;
        s[k++] = (char)b->char_byte[cp];
    }
    *n = k;
    return 1;
}

static int set_token(builder *b, uint32_t node, const char *field, uint32_t id, const char *s, size_t n, int flags)
{
    weft_tokenizer *t = b->t;
    if (t->tok_flags[id] & TOK_PRESENT)
        return field_error(b, node, field, "id %u is given twice: expected each id once", id);
    WEFT_CHECK(pool_add(t, s, n, &t->tok_off[id]));
    t->tok_len[id] = (uint32_t)n;
    t->tok_flags[id] = (uint8_t)(TOK_PRESENT | flags);
    return 0;
}

static int alloc_tables(weft_tokenizer *t, uint32_t vocab)
{
    t->vocab = vocab;
    t->tok_off = calloc(vocab, sizeof *t->tok_off);
    t->tok_len = calloc(vocab, sizeof *t->tok_len);
    t->tok_flags = calloc(vocab, sizeof *t->tok_flags);
    if (!t->tok_off || !t->tok_len || !t->tok_flags)
        return weft_error(WEFT_ENOMEM, "%s: no memory for a vocabulary of %u", t->origin, vocab);
    return 0;
}

static size_t pow2_above(size_t n)
{
    size_t p = 16;
    while (p < 2 * n)
        p *= 2;
    return p;
}

/* The ordinary tokens into bytes_map; the byte tokens into byte_id. */
static int index_tokens(weft_tokenizer *t)
{
    size_t size = pow2_above(t->vocab);
    t->bytes_map = malloc(size * sizeof *t->bytes_map);
    if (!t->bytes_map)
        return weft_error(WEFT_ENOMEM, "%s: no memory for the vocabulary index", t->origin);
    memset(t->bytes_map, 0xFF, size * sizeof *t->bytes_map);
    t->bytes_mask = size - 1;
    for (uint32_t id = 0; id < t->vocab; id++) {
        if ((t->tok_flags[id] & (TOK_PRESENT | TOK_LITERAL)) != TOK_PRESENT)
            continue;
        const uint8_t *s = t->pool + t->tok_off[id];
        size_t n = t->tok_len[id], i;
        if (weft_bpe_bytes_lookup(t, s, n) != NO_ID)
            continue; /* an added token that is also in the vocabulary */
        for (i = XXH3_64bits(s, n) & t->bytes_mask; t->bytes_map[i] != NO_ID; i = (i + 1) & t->bytes_mask)
            ;
        t->bytes_map[i] = id;
    }
    for (int c = 0; c < 256; c++) {
        uint8_t byte = (uint8_t)c;
        if ((t->byte_id[c] = weft_bpe_bytes_lookup(t, &byte, 1)) == NO_ID)
            return weft_error(WEFT_EDATA, "%s: model.vocab has no token for the byte 0x%02x: a byte-level BPE "
                              "vocabulary has one for each of the 256 bytes", t->origin, c);
    }
    return 0;
}

static int alloc_merges(weft_tokenizer *t, size_t n)
{
    size_t size = pow2_above(n);
    t->merges = malloc(size * sizeof *t->merges);
    t->merge_order = malloc((n ? n : 1) * 2 * sizeof *t->merge_order);
    if (!t->merges || !t->merge_order)
        return weft_error(WEFT_ENOMEM, "%s: no memory for %zu merges", t->origin, n);
    for (size_t i = 0; i < size; i++)
        t->merges[i] = (merge_slot){UINT64_MAX, 0, 0};
    t->merge_mask = size - 1;
    return 0;
}

/* Merge number rank of (a, b); a later line with the same pair wins, as in
 * the tokenizers library. 1 when a, b or their concatenation is not a
 * token (the caller names the line). */
static int add_merge(weft_tokenizer *t, const char *a, size_t na, const char *b, size_t nb, uint32_t rank,
                     char *which, size_t wlen)
{
    uint32_t ia = weft_bpe_bytes_lookup(t, (const uint8_t *)a, na);
    uint32_t ib = weft_bpe_bytes_lookup(t, (const uint8_t *)b, nb);
    if (ia == NO_ID || ib == NO_ID) {
        snprintf(which, wlen, "its %s token is not in the vocabulary", ia == NO_ID ? "first" : "second");
        return 1;
    }
    char cat[2 * MAX_ADDED_LEN];
    const uint8_t *s;
    if (na + nb <= sizeof cat) {
        memcpy(cat, a, na);
        memcpy(cat + na, b, nb);
        s = (const uint8_t *)cat;
    } else {
        snprintf(which, wlen, "the merged token is longer than %zu bytes", sizeof cat);
        return 1;
    }
    uint32_t id = weft_bpe_bytes_lookup(t, s, na + nb);
    if (id == NO_ID) {
        snprintf(which, wlen, "the merged token is not in the vocabulary");
        return 1;
    }
    uint64_t key = (uint64_t)ia << 32 | ib;
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 29) & t->merge_mask;
    while (t->merges[i].key != UINT64_MAX && t->merges[i].key != key)
        i = (i + 1) & t->merge_mask;
    t->merges[i] = (merge_slot){key, rank, id};
    t->merge_order[2 * (size_t)rank] = ia;
    t->merge_order[2 * (size_t)rank + 1] = ib;
    return 0;
}

/* ---- the identity hash --------------------------------------------------- */

static void h32(XXH3_state_t *h, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    XXH3_64bits_update(h, b, 4);
}

static int id_cmp(const void *a, const void *b)
{
    const added_token *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int compute_hash(weft_tokenizer *t)
{
    XXH3_state_t *h = XXH3_createState();
    if (!h)
        return weft_error(WEFT_ENOMEM, "no memory to hash the tokenizer");
    XXH3_64bits_reset(h);
    XXH3_64bits_update(h, "weft-bpe 1\n", 11);
    h32(h, (uint32_t)t->pretok);
    h32(h, (uint32_t)t->ignore_merges);
    h32(h, t->vocab);
    for (uint32_t id = 0; id < t->vocab; id++) {
        if (!(t->tok_flags[id] & TOK_PRESENT))
            continue;
        h32(h, id);
        h32(h, t->tok_flags[id]);
        h32(h, t->tok_len[id]);
        XXH3_64bits_update(h, t->pool + t->tok_off[id], t->tok_len[id]);
    }
    h32(h, (uint32_t)t->nmerges);
    for (size_t i = 0; i < 2 * t->nmerges; i++)
        h32(h, t->merge_order[i]);
    /* which added tokens are special, in id order */
    added_token *a = malloc((t->nadded + 1) * sizeof *a);
    if (!a) {
        XXH3_freeState(h);
        return weft_error(WEFT_ENOMEM, "no memory to hash the tokenizer");
    }
    if (t->nadded) { /* t->added is NULL without added tokens */
        memcpy(a, t->added, t->nadded * sizeof *a);
        qsort(a, t->nadded, sizeof *a, id_cmp);
    }
    for (size_t k = 0; k < t->nadded; k++) {
        h32(h, a[k].id);
        h32(h, (uint32_t)a[k].special);
    }
    free(a);
    t->hash = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    return 0;
}

/* ---- added tokens and the end-of-text token ------------------------------ */

static int added_cmp(const void *a, const void *b)
{
    const added_token *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void finish_added(weft_tokenizer *t)
{
    static const char *const eot_names[] = {"<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"};
    if (t->nadded) /* qsort of NULL, even with 0 elements, is undefined (UBSan, fuzz_tokenizer) */
        qsort(t->added, t->nadded, sizeof *t->added, added_cmp);
    t->eot = -1;
    for (size_t k = 0; k < t->nadded; k++)
        t->added_first[t->pool[t->added[k].off]] = 1;
    for (size_t e = 0; e < 4 && t->eot < 0; e++)
        for (size_t k = 0; k < t->nadded; k++)
            if (t->added[k].len == strlen(eot_names[e]) &&
                memcmp(t->pool + t->added[k].off, eot_names[e], t->added[k].len) == 0)
                t->eot = (int32_t)t->added[k].id;
}

static int add_added(builder *b, uint32_t node, const char *field, uint32_t id, const char *s, size_t n, int special)
{
    weft_tokenizer *t = b->t;
    if (n == 0 || n > MAX_ADDED_LEN)
        return field_error(b, node, field, "expected a content of 1 to %d bytes, found %zu", MAX_ADDED_LEN, n);
    if (t->tok_flags[id] & TOK_PRESENT) {
        if (t->tok_len[id] != n || memcmp(t->pool + t->tok_off[id], s, n) != 0)
            return field_error(b, node, field, "id %u is the vocabulary's token \"%.*s\", not \"%.*s\"", id,
                               (int)t->tok_len[id], t->pool + t->tok_off[id], (int)n, s);
        t->tok_flags[id] |= TOK_ADDED;
    } else {
        WEFT_CHECK(set_token(b, node, field, id, s, n, TOK_ADDED | TOK_LITERAL));
    }
    added_token *a = &t->added[t->nadded++];
    a->id = id;
    a->len = (uint32_t)n;
    a->off = t->tok_off[id];
    a->special = special;
    return 0;
}

/* ---- tokenizer.json -------------------------------------------------------- */

static int get_bool(builder *b, uint32_t obj, const char *key, const char *field, int dflt, int *out)
{
    uint32_t v = weft_tjson_get(b->j, obj, key);
    if (v == WEFT_TJSON_NONE || b->j->nodes[v].type == WEFT_TJSON_NULL) {
        *out = dflt;
        return 0;
    }
    if (b->j->nodes[v].type != WEFT_TJSON_TRUE && b->j->nodes[v].type != WEFT_TJSON_FALSE)
        return field_error(b, v, field, "expected true or false, found %s", weft_tjson_type_name(b->j->nodes[v].type));
    *out = b->j->nodes[v].type == WEFT_TJSON_TRUE;
    return 0;
}

static int is_null(const builder *b, uint32_t v)
{
    return v == WEFT_TJSON_NONE || b->j->nodes[v].type == WEFT_TJSON_NULL;
}

/* obj.type must be want; hint ends the message. */
static int expect_type(builder *b, uint32_t obj, const char *hint, const char *field, const char *want)
{
    uint32_t v = weft_tjson_get(b->j, obj, "type");
    if (!weft_tjson_str_eq(b->j, v, want)) {
        const char *s = "";
        size_t n = 0;
        if (v != WEFT_TJSON_NONE && b->j->nodes[v].type == WEFT_TJSON_STR && get_str(b, v, field, &s, &n) != 0)
            n = 0;
        return field_error(b, v == WEFT_TJSON_NONE ? obj : v, field, "expected type \"%s\", found \"%.*s\"%s", want,
                           (int)(n > 60 ? 60 : n), s, hint);
    }
    return 0;
}

/* A ByteLevel pre-tokenizer: must not add a prefix space; use_regex. */
static int byte_level(builder *b, uint32_t node, const char *field, int *use_regex)
{
    int aps;
    char f[128];
    WEFT_CHECK(expect_type(b, node, "", field, "ByteLevel"));
    snprintf(f, sizeof f, "%s.add_prefix_space", field);
    WEFT_CHECK(get_bool(b, node, "add_prefix_space", f, 0, &aps));
    if (aps)
        return field_error(b, weft_tjson_get(b->j, node, "add_prefix_space"), f,
                           "add_prefix_space true is not supported: expected false");
    snprintf(f, sizeof f, "%s.use_regex", field);
    return get_bool(b, node, "use_regex", f, 1, use_regex);
}

static int pre_tokenizer(builder *b, uint32_t root)
{
    uint32_t pt = weft_tjson_get(b->j, root, "pre_tokenizer");
    int use_regex;
    if (is_null(b, pt) || b->j->nodes[pt].type != WEFT_TJSON_OBJ)
        return field_error(b, pt == WEFT_TJSON_NONE ? 0 : pt, "pre_tokenizer", "expected a ByteLevel or Sequence "
                           "pre-tokenizer object, found %s", is_null(b, pt) ? "none" : weft_tjson_type_name(b->j->nodes[pt].type));
    if (weft_tjson_str_eq(b->j, weft_tjson_get(b->j, pt, "type"), "ByteLevel")) {
        WEFT_CHECK(byte_level(b, pt, "pre_tokenizer", &use_regex));
        if (!use_regex)
            return field_error(b, pt, "pre_tokenizer.use_regex", "false with no Split before it: a byte-level BPE "
                               "without a pre-tokenizer is not supported");
        b->t->pretok = WEFT_PRETOK_GPT2;
        return 0;
    }
    WEFT_CHECK(expect_type(b, pt, " (weft reads ByteLevel, or a Sequence of Split and ByteLevel)", "pre_tokenizer",
                           "Sequence"));
    uint32_t seq = weft_tjson_get(b->j, pt, "pretokenizers");
    if (seq == WEFT_TJSON_NONE || b->j->nodes[seq].type != WEFT_TJSON_ARR || b->j->nodes[seq].count != 2)
        return field_error(b, seq == WEFT_TJSON_NONE ? pt : seq, "pre_tokenizer.pretokenizers",
                           "expected [Split, ByteLevel], two pre-tokenizers");
    uint32_t split = weft_tjson_child(b->j, seq), bl = weft_tjson_next(b->j, split);
    WEFT_CHECK(expect_type(b, split, "", "pre_tokenizer.pretokenizers[0]", "Split"));
    uint32_t pat = weft_tjson_get(b->j, weft_tjson_get(b->j, split, "pattern"), "Regex");
    const char *s;
    size_t n;
    WEFT_CHECK(get_str(b, pat, "pre_tokenizer.pretokenizers[0].pattern.Regex", &s, &n));
    if (n == strlen(weft_pretok_pattern(WEFT_PRETOK_GPT2)) && memcmp(s, weft_pretok_pattern(WEFT_PRETOK_GPT2), n) == 0)
        b->t->pretok = WEFT_PRETOK_GPT2;
    else if (n == strlen(weft_pretok_pattern(WEFT_PRETOK_LLAMA3)) &&
             memcmp(s, weft_pretok_pattern(WEFT_PRETOK_LLAMA3), n) == 0)
        b->t->pretok = WEFT_PRETOK_LLAMA3;
    else
        return field_error(b, pat, "pre_tokenizer.pretokenizers[0].pattern.Regex", "unknown pre-tokenizer pattern "
                           "\"%.*s%s\": weft implements GPT-2's and Llama 3's split rules only", (int)(n > 80 ? 80 : n), s,
                           n > 80 ? "..." : "");
    int inv;
    WEFT_CHECK(get_bool(b, split, "invert", "pre_tokenizer.pretokenizers[0].invert", 0, &inv));
    if (inv || !weft_tjson_str_eq(b->j, weft_tjson_get(b->j, split, "behavior"), "Isolated"))
        return field_error(b, split, "pre_tokenizer.pretokenizers[0]", "expected behavior \"Isolated\" and invert "
                           "false");
    WEFT_CHECK(byte_level(b, bl, "pre_tokenizer.pretokenizers[1]", &use_regex));
    if (use_regex)
        return field_error(b, bl, "pre_tokenizer.pretokenizers[1].use_regex", "expected false after a Split");
    return 0;
}

static int check_model(builder *b, uint32_t model)
{
    static const char *const absent[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    static const char *const absent_field[] = {"model.continuing_subword_prefix", "model.end_of_word_suffix"};
    uint32_t v = weft_tjson_get(b->j, model, "type");
    if (v != WEFT_TJSON_NONE)
        WEFT_CHECK(expect_type(b, model, " (weft reads byte-level BPE models only)", "model.type", "BPE"));
    for (int i = 0; i < 2; i++) {
        v = weft_tjson_get(b->j, model, absent[i]);
        if (!is_null(b, v) && !(b->j->nodes[v].type == WEFT_TJSON_STR && b->j->nodes[v].len == 0))
            return field_error(b, v, absent_field[i], "expected null: subword prefixes and suffixes are not byte-level BPE");
    }
    v = weft_tjson_get(b->j, model, "dropout");
    int64_t zero;
    if (!is_null(b, v) && weft_tjson_int(b->j, v, 0, 0, &zero) != 0 &&
        !(b->j->nodes[v].type == WEFT_TJSON_NUM && b->j->nodes[v].len == 3 && memcmp(b->j->text + b->j->nodes[v].off, "0.0", 3) == 0))
        return field_error(b, v, "model.dropout", "expected null: BPE dropout is for training a tokenizer");
    int fallback;
    WEFT_CHECK(get_bool(b, model, "byte_fallback", "model.byte_fallback", 0, &fallback));
    if (fallback)
        return field_error(b, weft_tjson_get(b->j, model, "byte_fallback"), "model.byte_fallback",
                           "true is SentencePiece-style BPE, not byte-level: expected false");
    return get_bool(b, model, "ignore_merges", "model.ignore_merges", 0, &b->t->ignore_merges);
}

/* Largest id in the vocabulary object and the added tokens, checked. */
static int max_id(builder *b, uint32_t vocab, const char *field, uint32_t added, uint32_t *vmax)
{
    int64_t id, m = -1;
    char f[64];
    size_t i = 0;
    for (uint32_t k = weft_tjson_child(b->j, vocab); k != WEFT_TJSON_NONE; k = weft_tjson_next(b->j, b->j->nodes[k].next)) {
        uint32_t v = b->j->nodes[k].next;
        if (weft_tjson_int(b->j, v, 0, MAX_VOCAB - 1, &id) != 0)
            return field_error(b, v, field, "expected an id in 0..%u for a token, found %s", MAX_VOCAB - 1,
                               weft_tjson_type_name(b->j->nodes[v].type));
        m = id > m ? id : m;
    }
    for (uint32_t k = added == WEFT_TJSON_NONE ? WEFT_TJSON_NONE : weft_tjson_child(b->j, added); k != WEFT_TJSON_NONE;
         k = weft_tjson_next(b->j, k), i++) {
        uint32_t v = weft_tjson_get(b->j, k, "id");
        snprintf(f, sizeof f, "added_tokens[%zu].id", i);
        if (v == WEFT_TJSON_NONE || weft_tjson_int(b->j, v, 0, MAX_VOCAB - 1, &id) != 0)
            return field_error(b, v == WEFT_TJSON_NONE ? k : v, f, "expected an id in 0..%u", MAX_VOCAB - 1);
        m = id > m ? id : m;
    }
    if (m < 0)
        return field_error(b, vocab, field, "expected at least one token");
    *vmax = (uint32_t)m;
    return 0;
}

static int read_vocab(builder *b, uint32_t vocab, const char *field)
{
    for (uint32_t k = weft_tjson_child(b->j, vocab); k != WEFT_TJSON_NONE; k = weft_tjson_next(b->j, b->j->nodes[k].next)) {
        const char *s;
        size_t n;
        int64_t id;
        WEFT_CHECK(get_str(b, k, field, &s, &n));
        weft_tjson_int(b->j, b->j->nodes[k].next, 0, MAX_VOCAB - 1, &id); /* max_id checked it */
        int literal = !map_chars(b, b->buf, &n);
        if (n == 0)
            return field_error(b, k, field, "the empty string is not a token");
        WEFT_CHECK(set_token(b, k, field, (uint32_t)id, s, n, literal ? TOK_LITERAL : 0));
    }
    return 0;
}

static int read_added(builder *b, uint32_t added)
{
    size_t i = 0, n;
    char f[64];
    if (added == WEFT_TJSON_NONE)
        return 0;
    b->t->added = calloc(b->j->nodes[added].count + 1, sizeof *b->t->added);
    if (!b->t->added)
        return weft_error(WEFT_ENOMEM, "no memory");
    for (uint32_t k = weft_tjson_child(b->j, added); k != WEFT_TJSON_NONE; k = weft_tjson_next(b->j, k), i++) {
        static const char *const refused[] = {"lstrip", "rstrip", "single_word"};
        int on, special;
        int64_t id;
        const char *s;
        for (int r = 0; r < 3; r++) {
            snprintf(f, sizeof f, "added_tokens[%zu].%s", i, refused[r]);
            WEFT_CHECK(get_bool(b, k, refused[r], f, 0, &on));
            if (on)
                return field_error(b, weft_tjson_get(b->j, k, refused[r]), f, "true is not supported: expected false");
        }
        snprintf(f, sizeof f, "added_tokens[%zu].special", i);
        WEFT_CHECK(get_bool(b, k, "special", f, 0, &special));
        weft_tjson_int(b->j, weft_tjson_get(b->j, k, "id"), 0, MAX_VOCAB - 1, &id);
        snprintf(f, sizeof f, "added_tokens[%zu].content", i);
        WEFT_CHECK(get_str(b, weft_tjson_get(b->j, k, "content"), f, &s, &n));
        WEFT_CHECK(add_added(b, k, f, (uint32_t)id, s, n, special));
    }
    return 0;
}

/* One merge: "a b" (exactly one space) or ["a", "b"]. */
static int read_merge(builder *b, uint32_t node, size_t rank)
{
    char f[64], why[96];
    const char *s;
    size_t n, na, nb;
    snprintf(f, sizeof f, "model.merges[%zu]", rank);
    if (b->j->nodes[node].type == WEFT_TJSON_ARR) {
        uint32_t x = weft_tjson_child(b->j, node), y = x == WEFT_TJSON_NONE ? x : weft_tjson_next(b->j, x);
        if (b->j->nodes[node].count != 2)
            return field_error(b, node, f, "expected a pair [\"a\", \"b\"], found %u elements", b->j->nodes[node].count);
        WEFT_CHECK(get_str(b, x, f, &s, &na));
        char a[2 * MAX_ADDED_LEN];
        if (!map_chars(b, b->buf, &na) || na > sizeof a)
            return field_error(b, x, f, "expected a vocabulary token");
        memcpy(a, s, na);
        WEFT_CHECK(get_str(b, y, f, &s, &nb));
        if (!map_chars(b, b->buf, &nb))
            return field_error(b, y, f, "expected a vocabulary token");
        if (add_merge(b->t, a, na, s, nb, (uint32_t)rank, why, sizeof why))
            return field_error(b, node, f, "%s", why);
        return 0;
    }
    WEFT_CHECK(get_str(b, node, f, &s, &n));
    const char *sp = memchr(s, ' ', n);
    if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s)) || sp == s || sp + 1 == s + n)
        return field_error(b, node, f, "expected two tokens separated by one space, found \"%.*s\"", (int)(n > 60 ? 60 : n), s);
    na = (size_t)(sp - s);
    nb = n - na - 1;
    char *bs = b->buf + na + 1;
    if (!map_chars(b, b->buf, &na) || !map_chars(b, bs, &nb))
        return field_error(b, node, f, "expected vocabulary tokens");
    if (add_merge(b->t, b->buf, na, bs, nb, (uint32_t)rank, why, sizeof why))
        return field_error(b, node, f, "%s", why);
    return 0;
}

static int read_merges_json(builder *b, uint32_t merges)
{
    size_t rank = 0;
    WEFT_CHECK(alloc_merges(b->t, b->j->nodes[merges].count));
    for (uint32_t k = weft_tjson_child(b->j, merges); k != WEFT_TJSON_NONE; k = weft_tjson_next(b->j, k))
        WEFT_CHECK(read_merge(b, k, rank++));
    b->t->nmerges = rank;
    return 0;
}

static int tokenizer_json(builder *b)
{
    uint32_t root = 0, model = weft_tjson_get(b->j, root, "model"), vmax;
    if (b->j->nodes[root].type != WEFT_TJSON_OBJ || model == WEFT_TJSON_NONE || b->j->nodes[model].type != WEFT_TJSON_OBJ)
        return field_error(b, 0, "model", "expected a tokenizer.json: an object with a \"model\" object");
    uint32_t norm = weft_tjson_get(b->j, root, "normalizer");
    if (!is_null(b, norm))
        return field_error(b, norm, "normalizer", "expected null: normalizers are not supported");
    WEFT_CHECK(check_model(b, model));
    WEFT_CHECK(pre_tokenizer(b, root));
    uint32_t vocab = weft_tjson_get(b->j, model, "vocab"), merges = weft_tjson_get(b->j, model, "merges");
    uint32_t added = weft_tjson_get(b->j, root, "added_tokens");
    if (vocab == WEFT_TJSON_NONE || b->j->nodes[vocab].type != WEFT_TJSON_OBJ)
        return field_error(b, vocab == WEFT_TJSON_NONE ? model : vocab, "model.vocab", "expected an object {token: id}");
    if (merges == WEFT_TJSON_NONE || b->j->nodes[merges].type != WEFT_TJSON_ARR)
        return field_error(b, merges == WEFT_TJSON_NONE ? model : merges, "model.merges", "expected an array of merges");
    if (!is_null(b, added) && b->j->nodes[added].type != WEFT_TJSON_ARR)
        return field_error(b, added, "added_tokens", "expected an array");
    if (is_null(b, added))
        added = WEFT_TJSON_NONE;
    WEFT_CHECK(max_id(b, vocab, "model.vocab", added, &vmax));
    WEFT_CHECK(alloc_tables(b->t, vmax + 1));
    WEFT_CHECK(read_vocab(b, vocab, "model.vocab"));
    WEFT_CHECK(read_added(b, added));
    WEFT_CHECK(index_tokens(b->t));
    return read_merges_json(b, merges);
}

/* ---- vocab.json + merges.txt ---------------------------------------------- */

static int merges_txt(builder *b, const char *text, size_t n, const char *origin)
{
    size_t lines = 1, rank = 0;
    int line = 0;
    for (size_t i = 0; i < n; i++)
        lines += text[i] == '\n';
    WEFT_CHECK(alloc_merges(b->t, lines));
    char *tmp = malloc(2 * MAX_ADDED_LEN + 2);
    if (!tmp)
        return weft_error(WEFT_ENOMEM, "no memory");
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        const char *e = memchr(text + i, '\n', n - i), *s = text + i;
        size_t len = e ? (size_t)(e - s) : n - i;
        i += len + 1;
        line++;
        if (len && s[len - 1] == '\r')
            len--;
        if (len >= 8 && memcmp(s, "#version", 8) == 0)
            continue;
        if (len == 0 && i >= n)
            break; /* the newline at the end of the file */
        const char *sp = memchr(s, ' ', len);
        char why[96];
        size_t na = sp ? (size_t)(sp - s) : 0, nb = sp ? len - na - 1 : 0;
        if (!sp || na == 0 || nb == 0 || memchr(sp + 1, ' ', nb) || len > 2 * MAX_ADDED_LEN) {
            rc = weft_error(WEFT_EDATA, "%s:%d: bad merge line: expected two tokens separated by one space, found "
                            "\"%.*s\"", origin, line, (int)(len > 60 ? 60 : len), s);
            break;
        }
        memcpy(tmp, s, len);
        if (!map_chars(b, tmp, &na) || !map_chars(b, tmp + (sp - s) + 1, &nb)) {
            rc = weft_error(WEFT_EDATA, "%s:%d: bad merge line: a character outside GPT-2's byte alphabet in \"%.*s\"",
                            origin, line, (int)(len > 60 ? 60 : len), s);
            break;
        }
        if (add_merge(b->t, tmp, na, tmp + (sp - s) + 1, nb, (uint32_t)rank, why, sizeof why)) {
            rc = weft_error(WEFT_EDATA, "%s:%d: bad merge line \"%.*s\": %s", origin, line, (int)(len > 60 ? 60 : len),
                            s, why);
            break;
        }
        rank++;
    }
    free(tmp);
    b->t->nmerges = rank;
    return rc;
}

/* An ordinary token by its bytes, before the index exists. */
static uint32_t find_slow(const weft_tokenizer *t, const char *s)
{
    size_t n = strlen(s);
    for (uint32_t id = 0; id < t->vocab; id++)
        if ((t->tok_flags[id] & (TOK_PRESENT | TOK_LITERAL)) == TOK_PRESENT && t->tok_len[id] == n &&
            memcmp(t->pool + t->tok_off[id], s, n) == 0)
            return id;
    return NO_ID;
}

static int vocab_json(builder *b, const char *merges, size_t mn, const char *merges_origin)
{
    uint32_t vmax;
    if (b->j->nodes[0].type != WEFT_TJSON_OBJ)
        return field_error(b, 0, "vocabulary", "expected an object {token: id}");
    WEFT_CHECK(max_id(b, 0, "vocabulary", WEFT_TJSON_NONE, &vmax));
    WEFT_CHECK(alloc_tables(b->t, vmax + 1));
    WEFT_CHECK(read_vocab(b, 0, "vocabulary"));
    b->t->pretok = WEFT_PRETOK_GPT2;
    uint32_t eot = find_slow(b->t, "<|endoftext|>");
    b->t->added = calloc(1, sizeof *b->t->added);
    if (!b->t->added)
        return weft_error(WEFT_ENOMEM, "no memory");
    if (eot != NO_ID)
        WEFT_CHECK(add_added(b, 0, "vocabulary", eot, "<|endoftext|>", 13, 1));
    WEFT_CHECK(index_tokens(b->t));
    return merges_txt(b, merges, mn, merges_origin);
}

/* ---- entry points ------------------------------------------------------------- */

static int new_tokenizer(const char *origin, weft_tokenizer **out)
{
    weft_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return weft_error(WEFT_ENOMEM, "no memory for a tokenizer");
    snprintf(t->origin, sizeof t->origin, "%s", origin);
    t->kind = KIND_BPE;
    t->eot = -1;
    int rc = weft_bpe_key_create(t);
    if (rc) {
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int weft_tokenizer_load_mem(const char *json, size_t n, const char *origin, const char *merges, size_t mn,
                            const char *merges_origin, weft_tokenizer **out)
{
    weft_tjson j;
    builder b = {0};
    uint32_t byte_char[256];
    *out = NULL;
    WEFT_CHECK(weft_tjson_parse(json, n, origin, &j));
    int rc = new_tokenizer(origin, &b.t);
    if (rc == 0) {
        b.j = &j;
        byte_chars(byte_char, b.char_byte);
        rc = merges ? vocab_json(&b, merges, mn, merges_origin) : tokenizer_json(&b);
    }
    if (rc == 0) {
        finish_added(b.t);
        rc = compute_hash(b.t);
    }
    weft_tjson_free(&j);
    free(b.buf);
    if (rc != 0) {
        weft_tokenizer_free(b.t);
        return rc;
    }
    *out = b.t;
    return 0;
}

static int load_bytes(weft_tokenizer **out)
{
    weft_tokenizer *t;
    WEFT_CHECK(new_tokenizer("bytes", &t));
    t->kind = KIND_BYTES;
    t->eot = WEFT_BYTES_EOD;
    t->hash = weft_tokenizer_bytes_hash();
    int rc = alloc_tables(t, WEFT_BYTES_VOCAB);
    for (int c = 0; rc == 0 && c < 256; c++) {
        uint8_t byte = (uint8_t)c;
        rc = pool_add(t, &byte, 1, &t->tok_off[c]);
        t->tok_len[c] = c != WEFT_BYTES_EOD; /* the end of a document decodes to nothing */
        t->tok_flags[c] = TOK_PRESENT;
    }
    if (rc) {
        weft_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

uint64_t weft_tokenizer_bytes_hash(void) { return XXH3_64bits("weft-bytes 1\n", 13); }

static int read_file(const char *path, char **out, size_t *len)
{
    return weft_read_file(path, MAX_FILE, "the tokenizer file", out, len);
}

static int exists(const char *dir, const char *name, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static int load_pair(const char *vocab, const char *merges, weft_tokenizer **out)
{
    char *a = NULL, *b = NULL;
    size_t na, nb;
    int rc = read_file(vocab, &a, &na);
    if (rc == 0)
        rc = read_file(merges, &b, &nb);
    if (rc == 0)
        rc = weft_tokenizer_load_mem(a, na, vocab, b, nb, merges, out);
    free(a);
    free(b);
    return rc;
}

int weft_tokenizer_load(const char *path, weft_tokenizer **out)
{
    struct stat st;
    char p1[4096], p2[4096];
    *out = NULL;
    if (strcmp(path, "bytes") == 0)
        return load_bytes(out);
    if (stat(path, &st) != 0)
        return weft_error(WEFT_ENOENT, "%s: tokenizer not found (%s): expected a tokenizer.json, a directory holding "
                          "tokenizer.json or vocab.json + merges.txt, or \"bytes\"", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        if (exists(path, "tokenizer.json", p1, sizeof p1))
            return weft_tokenizer_load(p1, out);
        if (exists(path, "vocab.json", p1, sizeof p1) && exists(path, "merges.txt", p2, sizeof p2))
            return load_pair(p1, p2, out);
        if (exists(path, "encoder.json", p1, sizeof p1) && exists(path, "vocab.bpe", p2, sizeof p2))
            return load_pair(p1, p2, out);
        return weft_error(WEFT_ENOENT, "%s: no tokenizer in this directory: expected tokenizer.json, vocab.json + "
                          "merges.txt, or encoder.json + vocab.bpe", path);
    }
    char *text;
    size_t n;
    WEFT_CHECK(read_file(path, &text, &n));
    int rc = weft_tokenizer_load_mem(text, n, path, NULL, 0, NULL, out);
    free(text);
    return rc;
}
