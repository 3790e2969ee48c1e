/*
 * test_tokenizer.c -- the tokenizers' parts on inputs built here: the
 * pre-tokenizers' splits of GPT-2 and Llama 3 on hand-derived cases (the
 * regexes' alternatives, backtracking of \s+(?!\S), \p{N}{1,3}, case folding,
 * Unicode classes); the heap merge loop against the rescanning one on long
 * pieces of a tokenizer with random merge ranks; "a b" and ["a", "b"] merges
 * giving one hash; a too-small output naming the size needed; and malformed
 * JSON named by line and column. Comparisons with the real tokenizers and
 * their reference encoders are in tests/data/test_tokenizer.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/bpe.h"
#include "data/tok_json.h"
#include "data/pretok.h"
#include "runtime/error.h"

/* ---- a tokenizer.json built here ------------------------------------------- */

static void put_char(char **p, uint32_t cp)
{
    if (cp == '"' || cp == '\\') {
        *(*p)++ = '\\';
        *(*p)++ = (char)cp;
    } else if (cp < 0x80) {
        *(*p)++ = (char)cp;
    } else {
        *(*p)++ = (char)(0xC0 | cp >> 6);
        *(*p)++ = (char)(0x80 | (cp & 0x3F));
    }
}

/* GPT-2's character for byte b */
static uint32_t byte_char(int b)
{
    uint32_t n = 0;
    for (int c = 0; c < 256; c++) {
        int printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
        if (c == b)
            return printable ? (uint32_t)c : 256 + n;
        n += !printable;
    }
    return 0;
}

/* 256 byte tokens, then every string over {a, b} of length 2..4 as tokens
 * 256.., merged as (all but the last, last) in a random rank order (seed).
 * pairs: ["x", "y"] merges, else "x y". pattern: the Split regex or NULL. */
static char *make_json(unsigned seed, int pairs, const char *pattern)
{
    char *buf = malloc(1 << 16), *p = buf;
    char toks[64][8];
    int nt = 0, order[64];
    p += sprintf(p, "{\"normalizer\": null, \"added_tokens\": [{\"id\": 400, \"content\": \"<|endoftext|>\", "
                    "\"special\": true}],\n");
    if (pattern)
        p += sprintf(p, "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
                        "\"pattern\": {\"Regex\": \"%s\"}, \"behavior\": \"Isolated\", \"invert\": false}, "
                        "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]},\n", pattern);
    else
        p += sprintf(p, "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false},\n");
    p += sprintf(p, "\"model\": {\"type\": \"BPE\", \"vocab\": {");
    for (int b = 0; b < 256; b++) {
        *p++ = '"';
        put_char(&p, byte_char(b));
        p += sprintf(p, "\": %d, ", b);
    }
    for (int len = 2; len <= 4; len++)
        for (int m = 0; m < (1 << len); m++) {
            for (int i = 0; i < len; i++)
                toks[nt][i] = (char)('a' + (m >> i & 1));
            toks[nt][len] = '\0';
            p += sprintf(p, "%s\"%s\": %d", nt ? ", " : "", toks[nt], 256 + nt);
            nt++;
        }
    p += sprintf(p, "}, \"merges\": [");
    srand(seed);
    for (int i = 0; i < nt; i++)
        order[i] = i;
    for (int i = nt - 1; i > 0; i--) {
        int j = rand() % (i + 1), x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    for (int k = 0; k < nt; k++) {
        const char *s = toks[order[k]];
        size_t n = strlen(s);
        if (pairs)
            p += sprintf(p, "%s[\"%.*s\", \"%s\"]", k ? ", " : "", (int)(n - 1), s, s + n - 1);
        else
            p += sprintf(p, "%s\"%.*s %s\"", k ? ", " : "", (int)(n - 1), s, s + n - 1);
    }
    p += sprintf(p, "]}}\n");
    return buf;
}

static weft_tokenizer *load(const char *json)
{
    weft_tokenizer *t = NULL;
    int rc = weft_tokenizer_load_mem(json, strlen(json), "test.json", NULL, 0, NULL, &t);
    if (rc)
        fprintf(stderr, "%s\n", weft_last_error());
    assert_int_equal(rc, 0);
    return t;
}

/* ---- splits ------------------------------------------------------------------ */

typedef struct {
    char out[1024];
    size_t n;
} joined;

/* pieces joined with '|' */
static void collect(void *arg, const char *s, size_t len, int added)
{
    joined *j = arg;
    if (j->n)
        j->out[j->n++] = '|';
    if (added)
        j->out[j->n++] = '@';
    memcpy(j->out + j->n, s, len);
    j->n += len;
    j->out[j->n] = '\0';
}

static void expect_split(const weft_tokenizer *t, const char *text, const char *want)
{
    joined j = {{0}, 0};
    assert_int_equal(weft_tokenizer_split(t, text, strlen(text), collect, &j), 0);
    if (strcmp(j.out, want) != 0)
        fprintf(stderr, "split of \"%s\": got \"%s\", expected \"%s\"\n", text, j.out, want);
    assert_string_equal(j.out, want);
}

static void test_gpt2_split(void **state)
{
    (void)state;
    char *json = make_json(1, 0, NULL);
    weft_tokenizer *t = load(json);
    assert_string_equal(weft_tokenizer_name(t), "bpe/gpt2");
    expect_split(t, "Hello world", "Hello| world");
    expect_split(t, "it's we're I'M", "it|'s| we|'re| I|'|M");
    expect_split(t, "a  b", "a| | b");
    expect_split(t, "a   \n\nb", "a|   \n|\n|b");
    expect_split(t, "x  ", "x|  ");
    expect_split(t, "123abc 45", "123|abc| 45");
    expect_split(t, "\xc3\xa9t\xc3\xa9 \xc3\xbc", "\xc3\xa9t\xc3\xa9| \xc3\xbc"); /* été ü */
    expect_split(t, "hi!!  ?", "hi|!!| | ?");
    expect_split(t, "\t\tx", "\t|\t|x");
    expect_split(t, "\xe4\xb8\xad\xe6\x96\x87\xe3\x80\x82", "\xe4\xb8\xad\xe6\x96\x87|\xe3\x80\x82"); /* 中文。 */
    expect_split(t, "\xc2\xa0x", "\xc2\xa0|x");   /* U+00A0 is white space */
    expect_split(t, "\x80\xffz", "\x80\xff|z");   /* invalid UTF-8: "other" */
    expect_split(t, "a<|endoftext|>b", "a|@<|endoftext|>|b");
    weft_tokenizer_free(t);
    free(json);
}

static void test_llama3_split(void **state)
{
    (void)state;
    /* the pattern as it stands in the JSON text: backslashes doubled */
    char pat[512], *q = pat;
    for (const char *s = weft_pretok_pattern(WEFT_PRETOK_LLAMA3); *s; s++) {
        if (*s == '\\')
            *q++ = '\\';
        *q++ = *s;
    }
    *q = '\0';
    char *json = make_json(2, 1, pat);
    weft_tokenizer *t = load(json);
    assert_string_equal(weft_tokenizer_name(t), "bpe/llama3");
    expect_split(t, "Hello world", "Hello| world");
    expect_split(t, "IT'S we'Re", "IT|'S| we|'Re");
    expect_split(t, "12345 678", "123|45| |678");
    expect_split(t, "(hello ((x", "(hello| ((|x");
    expect_split(t, "a  \n\n  b", "a|  \n\n| | b");
    expect_split(t, "foo.\n\nbar", "foo|.\n\n|bar");
    expect_split(t, "\thello", "\thello");
    expect_split(t, "x\n  ", "x|\n|  ");
    expect_split(t, "'\xc5\xbf", "'\xc5\xbf");       /* 'ſ folds to 's */
    expect_split(t, "\xd9\xa3\xd9\xa4\xd9\xa5\xd9\xa6", "\xd9\xa3\xd9\xa4\xd9\xa5|\xd9\xa6"); /* Arabic-Indic digits */
    weft_tokenizer_free(t);
    free(json);
}

/* ---- merging ----------------------------------------------------------------- */

static void encode_with(const weft_tokenizer *t, size_t heap_from, const char *text, uint32_t *ids, size_t *n)
{
    size_t saved = weft_bpe_heap_from;
    weft_bpe_heap_from = heap_from;
    assert_int_equal(weft_tokenizer_encode(t, text, strlen(text), ids, 4096, n), 0);
    weft_bpe_heap_from = saved;
}

static void test_heap_equals_scan(void **state)
{
    (void)state;
    uint32_t a[4096], b[4096];
    char text[1200];
    for (unsigned seed = 1; seed <= 20; seed++) {
        char *json = make_json(seed, 0, NULL);
        weft_tokenizer *t = load(json);
        srand(seed * 7919);
        for (int rep = 0; rep < 20; rep++) {
            int len = 1 + rand() % 1000;
            for (int i = 0; i < len; i++)
                text[i] = "ab"[rand() % 2];
            text[len] = '\0';
            size_t na, nb, nc;
            encode_with(t, SIZE_MAX, text, a, &na);
            encode_with(t, 0, text, b, &nb);
            assert_int_equal(na, nb);
            assert_memory_equal(a, b, na * sizeof *a);
            encode_with(t, 64, text, b, &nc); /* through the cache: twice */
            encode_with(t, 64, text, b, &nc);
            assert_int_equal(na, nc);
            assert_memory_equal(a, b, na * sizeof *a);
            char back[1200];
            size_t nd;
            assert_int_equal(weft_tokenizer_decode(t, a, na, back, sizeof back, &nd), 0);
            assert_int_equal(nd, (size_t)len);
            assert_memory_equal(back, text, nd);
        }
        weft_tokenizer_free(t);
        free(json);
    }
}

static void test_merge_encodings_hash(void **state)
{
    (void)state;
    char *a = make_json(5, 0, NULL), *b = make_json(5, 1, NULL), *c = make_json(6, 0, NULL);
    weft_tokenizer *ta = load(a), *tb = load(b), *tc = load(c);
    assert_true(weft_tokenizer_hash(ta) == weft_tokenizer_hash(tb));
    assert_true(weft_tokenizer_hash(ta) != weft_tokenizer_hash(tc)); /* another rank order */
    assert_int_equal(weft_tokenizer_vocab(ta), 401);
    assert_int_equal(weft_tokenizer_eot(ta), 400);
    weft_tokenizer_free(ta);
    weft_tokenizer_free(tb);
    weft_tokenizer_free(tc);
    free(a);
    free(b);
    free(c);
}

static void test_small_output(void **state)
{
    (void)state;
    char *json = make_json(3, 0, NULL);
    weft_tokenizer *t = load(json);
    uint32_t ids[4];
    size_t n;
    const char *text = "x y z w v";
    assert_int_equal(weft_tokenizer_encode(t, text, strlen(text), ids, 4, &n), WEFT_EINVAL);
    assert_int_equal(n, 9);
    assert_non_null(strstr(weft_last_error(), "needs room for 9 ids, given 4"));
    uint32_t one[2] = {400, 401};
    char out[64];
    assert_int_equal(weft_tokenizer_decode(t, one, 1, out, 4, &n), WEFT_EINVAL);
    assert_int_equal(n, 13);
    assert_int_equal(weft_tokenizer_decode(t, one, 2, out, sizeof out, &n), WEFT_EDATA);
    assert_non_null(strstr(weft_last_error(), "id 401 (at position 1) is not a token"));
    weft_tokenizer_free(t);
    free(json);
}

static void test_bytes(void **state)
{
    (void)state;
    weft_tokenizer *t;
    assert_int_equal(weft_tokenizer_load("bytes", &t), 0);
    uint32_t ids[8];
    size_t n;
    assert_int_equal(weft_tokenizer_encode(t, "a\0b", 3, ids, 8, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[1], 'b');
    assert_int_equal(weft_tokenizer_vocab(t), 256);
    assert_int_equal(weft_tokenizer_eot(t), 0);
    assert_true(weft_tokenizer_hash(t) == weft_tokenizer_bytes_hash());
    weft_tokenizer_free(t);
}

/* ---- malformed files ------------------------------------------------------------ */

static void expect_bad(const char *json, const char *msg)
{
    weft_tokenizer *t = NULL;
    int rc = weft_tokenizer_load_mem(json, strlen(json), "tok.json", NULL, 0, NULL, &t);
    assert_int_equal(rc, WEFT_EDATA);
    assert_null(t);
    if (!strstr(weft_last_error(), msg))
        fprintf(stderr, "message \"%s\" lacks \"%s\"\n", weft_last_error(), msg);
    assert_non_null(strstr(weft_last_error(), msg));
}

/* a vocab.json of the 256 byte tokens */
static void expect_bad_merges(const char *merges, const char *msg)
{
    char vocab[8192], *p = vocab;
    *p++ = '{';
    for (int b = 0; b < 256; b++) {
        p += sprintf(p, "%s\"", b ? ", " : "");
        put_char(&p, byte_char(b));
        p += sprintf(p, "\": %d", b);
    }
    *p++ = '}';
    *p = '\0';
    weft_tokenizer *t = NULL;
    int rc = weft_tokenizer_load_mem(vocab, strlen(vocab), "vocab.json", merges, strlen(merges), "merges.txt", &t);
    assert_int_equal(rc, WEFT_EDATA);
    if (!strstr(weft_last_error(), msg))
        fprintf(stderr, "message \"%s\" lacks \"%s\"\n", weft_last_error(), msg);
    assert_non_null(strstr(weft_last_error(), msg));
}

static void test_bad_files(void **state)
{
    (void)state;
    expect_bad("{\"model\": {\"vocab\": {\"a\": 0}", "tok.json:1:29: truncated JSON");
    expect_bad("{\n  \"model\": [1,\n 2 3]}", "tok.json:3:4: bad JSON: expected ',' or ']' in the array");
    expect_bad("{\"a\": \"\\x\"}", "tok.json:1:9: bad JSON: expected an escape");
    expect_bad("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]", "nested at most 64");
    expect_bad("{\"model\": {\"type\": \"WordPiece\"}}", "model.type: expected type \"BPE\"");
    expect_bad("{\"normalizer\": {\"type\": \"NFC\"}, \"model\": {}}", "normalizer: expected null");
    expect_bad("{\"model\": {\"byte_fallback\": true}, \"pre_tokenizer\": null}", "model.byte_fallback");
    expect_bad("{\"model\": {\"vocab\": {}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Whitespace\"}}",
               "pre_tokenizer: expected type \"Sequence\"");
    expect_bad("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",
               "no token for the byte 0x00");
    expect_bad("{\"model\": {\"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",
               "id 0 is given twice");
    expect_bad("{\"model\": {\"vocab\": {\"a\": 1.5}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",
               "model.vocab: expected an id in 0..16777215");
    expect_bad_merges("#version: 0.2\na b c\n", "merges.txt:2: bad merge line: expected two tokens separated by one space");
    expect_bad_merges("a\n", "merges.txt:1: bad merge line");
    expect_bad_merges("a b\nab c\n", "merges.txt:1: bad merge line \"a b\": the merged token is not in the vocabulary");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt2_split),
        cmocka_unit_test(test_llama3_split),
        cmocka_unit_test(test_heap_equals_scan),
        cmocka_unit_test(test_merge_encodings_hash),
        cmocka_unit_test(test_small_output),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
