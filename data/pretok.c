/*
 * pretok.c -- GPT-2's and Llama 3's pre-tokenizer regexes, by hand (see
 * pretok.h for the patterns and their semantics).
 *
 * Each function matches the alternatives of its pattern in order at the
 * start of the text, as a backtracking regex engine would: the first
 * alternative that matches wins, and it takes what its greedy quantifiers
 * leave after backtracking. The character classes involved are disjoint
 * (letter, number, white space, other), so each alternative reduces to runs
 * of one class plus a few single characters.
 */
#include "data/pretok.h"
#include "data/unicode.h"

#define L WEFT_UC_LETTER
#define N WEFT_UC_NUMBER
#define S WEFT_UC_SPACE
#define O WEFT_UC_OTHER

/* Classes of the ASCII characters (the common case, no table search). */
static const uint8_t ascii_class[128] = {
    O, O, O, O, O, O, O, O, O, S, S, S, S, S, O, O, /* \t \n \v \f \r */
    O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, O,
    S, O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, /* space */
    N, N, N, N, N, N, N, N, N, N, O, O, O, O, O, O, /* 0-9 */
    O, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, /* A-O */
    L, L, L, L, L, L, L, L, L, L, L, O, O, O, O, O, /* P-Z */
    O, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, /* a-o */
    L, L, L, L, L, L, L, L, L, L, L, O, O, O, O, O, /* p-z */
};

typedef struct {
    const uint8_t *s;
    size_t n;
} text;

/* Class of the character at byte i (< n); *len its length, *cp its value. */
static inline int char_at(const text *t, size_t i, size_t *len, uint32_t *cp)
{
    uint8_t b = t->s[i];
    if (b < 0x80) {
        *len = 1;
        *cp = b;
        return ascii_class[b];
    }
    *len = weft_utf8_next(t->s + i, t->n - i, cp);
    return weft_uc_classify(*cp);
}

static inline int class_at(const text *t, size_t i, size_t *len)
{
    uint32_t cp;
    return char_at(t, i, len, &cp);
}

/* End of the run of class k starting at byte i; *count its characters. */
static size_t run_end(const text *t, size_t i, int k, size_t *count)
{
    size_t len, c = 0;
    while (i < t->n && class_at(t, i, &len) == k)
        i += len, c++;
    if (count)
        *count = c;
    return i;
}

/* The white space alternatives \s+(?!\S)|\s+ at a run of white space
 * [0, end) whose last character starts at byte last. */
static size_t space_tail(const text *t, size_t end, size_t last, size_t count)
{
    if (end == t->n || count == 1)
        return end;       /* to the end of the text, or \s+ of one character */
    return last;          /* \s+(?!\S) leaves the last one for the next token */
}

/* White space run from byte 0: its end, its character count, and where its
 * last character (*last) and its last \r or \n (*crlf, 0 if none) start. */
static size_t space_run(const text *t, size_t *count, size_t *last, size_t *crlf_end)
{
    size_t i = 0, c = 0, len;
    *crlf_end = 0;
    while (i < t->n && class_at(t, i, &len) == S) {
        if (t->s[i] == '\r' || t->s[i] == '\n')
            *crlf_end = i + 1;
        *last = i;
        i += len, c++;
    }
    *count = c;
    return i;
}

static int lower_ascii(uint8_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* 's 't 're 've 'm 'll 'd after an apostrophe at byte 0: the match length or
 * 0. fold: Llama 3's (?i:...), where 'ſ' (U+017F, C5 BF) folds to 's'. */
static size_t contraction(const text *t, int fold)
{
    if (t->n < 2 || t->s[0] != '\'')
        return 0;
    const uint8_t *s = t->s;
    int a = fold ? lower_ascii(s[1]) : s[1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if (fold && t->n >= 3 && s[1] == 0xC5 && s[2] == 0xBF)
        return 3;
    if (t->n < 3)
        return 0;
    int b = fold ? lower_ascii(s[2]) : s[2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return 3;
    return 0;
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t gpt2_next(const text *t)
{
    size_t len, c = contraction(t, 0), count, last, crlf;
    if (c)
        return c;
    int k = class_at(t, 0, &len);
    if (t->s[0] == ' ' && t->n > 1) {
        size_t l2;
        int k2 = class_at(t, 1, &l2);
        if (k2 != S) /* " ?" then a run of letters, numbers or others */
            return run_end(t, 1, k2, NULL);
    }
    if (k != S)
        return run_end(t, 0, k, NULL);
    size_t end = space_run(t, &count, &last, &crlf);
    return space_tail(t, end, last, count);
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t llama3_next(const text *t)
{
    size_t len, l2 = 0, c = contraction(t, 1), count, last, crlf;
    if (c)
        return c;
    int k = class_at(t, 0, &len);
    int k2 = len < t->n ? class_at(t, len, &l2) : -1;
    if (k == L)
        return run_end(t, 0, L, NULL);
    if (k2 == L && t->s[0] != '\r' && t->s[0] != '\n' && k != N)
        return run_end(t, len, L, NULL);           /* one prefix character, then letters */
    if (k == N) {                                   /* \p{N}{1,3} */
        size_t i = len, n = 1;
        while (n < 3 && i < t->n && class_at(t, i, &l2) == N)
            i += l2, n++;
        return i;
    }
    if (k == O || (t->s[0] == ' ' && k2 == O)) {    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
        size_t i = run_end(t, k == O ? 0 : 1, O, NULL);
        while (i < t->n && (t->s[i] == '\r' || t->s[i] == '\n'))
            i++;
        return i;
    }
    size_t end = space_run(t, &count, &last, &crlf);
    if (crlf)                                       /* \s*[\r\n]+ */
        return crlf;
    return space_tail(t, end, last, count);
}

size_t weft_pretok_next(weft_pretok kind, const uint8_t *s, size_t n)
{
    text t = {s, n};
    return kind == WEFT_PRETOK_LLAMA3 ? llama3_next(&t) : gpt2_next(&t);
}

const char *weft_pretok_pattern(weft_pretok kind)
{
    if (kind == WEFT_PRETOK_LLAMA3)
        return "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
               "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    return "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
}
