/*
 * tok_json.c -- the JSON parser of tok_json.h: recursive descent to a depth
 * of WEFT_TJSON_MAX_DEPTH, one node per value in document order.
 */
#include "data/tok_json.h"
#include "runtime/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_BYTES (1u << 30)

typedef struct {
    weft_tjson *j;
    size_t i;
    int depth;
} parser;

const char *weft_tjson_type_name(int type)
{
    static const char *const names[] = {"null", "false", "true", "a number", "a string", "an array", "an object"};
    return type >= 0 && type <= WEFT_TJSON_OBJ ? names[type] : "?";
}

void weft_tjson_where(const weft_tjson *j, size_t off, int *line, int *col)
{
    int l = 1;
    size_t bol = 0;
    for (size_t i = 0; i < off && i < j->n; i++)
        if (j->text[i] == '\n')
            l++, bol = i + 1;
    *line = l;
    *col = (int)(off - bol) + 1;
}

/* "origin:line:col: bad JSON: expected WHAT, found ..." */
static int bad(const parser *p, const char *what)
{
    int line, col;
    weft_tjson_where(p->j, p->i, &line, &col);
    if (p->i >= p->j->n)
        return weft_error(WEFT_EDATA, "%s:%d:%d: truncated JSON: expected %s, found the end of the file",
                          p->j->origin, line, col, what);
    unsigned char c = (unsigned char)p->j->text[p->i];
    if (c >= 0x20 && c < 0x7f)
        return weft_error(WEFT_EDATA, "%s:%d:%d: bad JSON: expected %s, found '%c'", p->j->origin, line, col, what, c);
    return weft_error(WEFT_EDATA, "%s:%d:%d: bad JSON: expected %s, found byte 0x%02x", p->j->origin, line, col,
                      what, c);
}

static void skip_ws(parser *p)
{
    const char *t = p->j->text;
    while (p->i < p->j->n && (t[p->i] == ' ' || t[p->i] == '\n' || t[p->i] == '\r' || t[p->i] == '\t'))
        p->i++;
}

static int new_node(parser *p, int type, uint32_t *idx)
{
    weft_tjson *j = p->j;
    if (j->nnodes == j->cap) {
        uint32_t cap = j->cap ? j->cap * 2 : 1024;
        weft_tjson_node *n = cap > j->cap ? realloc(j->nodes, (size_t)cap * sizeof *n) : NULL;
        if (!n)
            return weft_error(WEFT_ENOMEM, "%s: no memory for %u JSON values", j->origin, j->nnodes);
        j->nodes = n;
        j->cap = cap;
    }
    *idx = j->nnodes++;
    j->nodes[*idx] = (weft_tjson_node){.type = (uint8_t)type, .off = (uint32_t)p->i, .next = WEFT_TJSON_NONE};
    return 0;
}

static int hex4(const char *s, unsigned *v)
{
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        *v = *v << 4 | (unsigned)d;
    }
    return 0;
}

static int parse_string(parser *p, uint32_t *idx)
{
    const char *t = p->j->text;
    p->i++; /* the opening quote */
    WEFT_CHECK(new_node(p, WEFT_TJSON_STR, idx));
    size_t start = p->i;
    while (p->i < p->j->n && t[p->i] != '"') {
        unsigned char c = (unsigned char)t[p->i];
        if (c < 0x20)
            return bad(p, "a string character (control bytes must be escaped)");
        if (c == '\\') {
            p->i++;
            if (p->i >= p->j->n)
                break;
            unsigned v;
            if (t[p->i] == 'u') {
                if (p->j->n - p->i < 5 || hex4(t + p->i + 1, &v) != 0)
                    return bad(p, "\\u and 4 hex digits");
                p->i += 4;
            } else if (!strchr("\"\\/bfnrt", t[p->i]) || !t[p->i]) {
                return bad(p, "an escape: \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX");
            }
        }
        p->i++;
    }
    if (p->i >= p->j->n)
        return bad(p, "'\"' to end the string");
    if (p->i - start > UINT32_MAX)
        return bad(p, "a string under 4 GiB");
    p->j->nodes[*idx].off = (uint32_t)start;
    p->j->nodes[*idx].len = (uint32_t)(p->i - start);
    p->i++;
    return 0;
}

static int digits(parser *p)
{
    size_t s = p->i;
    while (p->i < p->j->n && p->j->text[p->i] >= '0' && p->j->text[p->i] <= '9')
        p->i++;
    return p->i > s ? 0 : bad(p, "a digit");
}

static int parse_number(parser *p, uint32_t *idx)
{
    const char *t = p->j->text;
    size_t start = p->i;
    WEFT_CHECK(new_node(p, WEFT_TJSON_NUM, idx));
    if (t[p->i] == '-')
        p->i++;
    WEFT_CHECK(digits(p));
    if (p->i < p->j->n && t[p->i] == '.') {
        p->i++;
        WEFT_CHECK(digits(p));
    }
    if (p->i < p->j->n && (t[p->i] == 'e' || t[p->i] == 'E')) {
        p->i++;
        if (p->i < p->j->n && (t[p->i] == '+' || t[p->i] == '-'))
            p->i++;
        WEFT_CHECK(digits(p));
    }
    p->j->nodes[*idx].len = (uint32_t)(p->i - start);
    return 0;
}

static int parse_word(parser *p, const char *w, int type, uint32_t *idx)
{
    size_t n = strlen(w);
    if (p->j->n - p->i < n || memcmp(p->j->text + p->i, w, n) != 0)
        return bad(p, "a JSON value");
    WEFT_CHECK(new_node(p, type, idx));
    p->i += n;
    return 0;
}

static int parse_value(parser *p, uint32_t *idx);

/* The elements of an array or the members of an object, after its '['/'{'. */
static int parse_container(parser *p, int obj, uint32_t idx)
{
    const char close = obj ? '}' : ']';
    uint32_t prev = WEFT_TJSON_NONE, count = 0;
    if (++p->depth > WEFT_TJSON_MAX_DEPTH)
        return bad(p, "JSON nested at most 64 deep");
    p->i++;
    skip_ws(p);
    if (p->i < p->j->n && p->j->text[p->i] == close) {
        p->i++;
        p->depth--;
        return 0;
    }
    for (;;) {
        uint32_t k, v;
        skip_ws(p);
        if (obj) {
            if (p->i >= p->j->n || p->j->text[p->i] != '"')
                return bad(p, "a member name in double quotes");
            WEFT_CHECK(parse_string(p, &k));
            skip_ws(p);
            if (p->i >= p->j->n || p->j->text[p->i] != ':')
                return bad(p, "':' after the member name");
            p->i++;
            WEFT_CHECK(parse_value(p, &v));
            p->j->nodes[k].next = v;
        } else {
            WEFT_CHECK(parse_value(p, &k));
            v = k;
        }
        if (prev != WEFT_TJSON_NONE)
            p->j->nodes[prev].next = k;
        prev = v;
        count++;
        skip_ws(p);
        if (p->i < p->j->n && p->j->text[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->j->n && p->j->text[p->i] == close)
            break;
        return bad(p, obj ? "',' or '}' in the object" : "',' or ']' in the array");
    }
    p->i++;
    p->depth--;
    p->j->nodes[idx].count = count;
    return 0;
}

static int parse_value(parser *p, uint32_t *idx)
{
    skip_ws(p);
    if (p->i >= p->j->n)
        return bad(p, "a JSON value");
    switch (p->j->text[p->i]) {
    case '{':
        WEFT_CHECK(new_node(p, WEFT_TJSON_OBJ, idx));
        return parse_container(p, 1, *idx);
    case '[':
        WEFT_CHECK(new_node(p, WEFT_TJSON_ARR, idx));
        return parse_container(p, 0, *idx);
    case '"': return parse_string(p, idx);
    case 't': return parse_word(p, "true", WEFT_TJSON_TRUE, idx);
    case 'f': return parse_word(p, "false", WEFT_TJSON_FALSE, idx);
    case 'n': return parse_word(p, "null", WEFT_TJSON_NULL, idx);
    default:
        if (p->j->text[p->i] == '-' || (p->j->text[p->i] >= '0' && p->j->text[p->i] <= '9'))
            return parse_number(p, idx);
        return bad(p, "a JSON value");
    }
}

int weft_tjson_parse(const char *text, size_t n, const char *origin, weft_tjson *j)
{
    *j = (weft_tjson){.text = text, .n = n, .origin = origin};
    if (n > JSON_MAX_BYTES)
        return weft_error(WEFT_EDATA, "%s: expected a JSON file under 1 GiB, found %zu bytes", origin, n);
    parser p = {j, 0, 0};
    uint32_t root;
    int rc = parse_value(&p, &root);
    if (rc == 0) {
        skip_ws(&p);
        if (p.i < n)
            rc = bad(&p, "the end of the file after the JSON value");
    }
    if (rc != 0)
        weft_tjson_free(j);
    return rc;
}

void weft_tjson_free(weft_tjson *j)
{
    free(j->nodes);
    j->nodes = NULL;
    j->nnodes = j->cap = 0;
}

uint32_t weft_tjson_child(const weft_tjson *j, uint32_t node)
{
    const weft_tjson_node *x = &j->nodes[node];
    return (x->type == WEFT_TJSON_ARR || x->type == WEFT_TJSON_OBJ) && x->count ? node + 1 : WEFT_TJSON_NONE;
}

static void put_utf8(char *b, size_t *k, unsigned cp)
{
    if (cp < 0x80) {
        b[(*k)++] = (char)cp;
    } else if (cp < 0x800) {
        b[(*k)++] = (char)(0xC0 | cp >> 6);
        b[(*k)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        b[(*k)++] = (char)(0xE0 | cp >> 12);
        b[(*k)++] = (char)(0x80 | (cp >> 6 & 0x3F));
        b[(*k)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        b[(*k)++] = (char)(0xF0 | cp >> 18);
        b[(*k)++] = (char)(0x80 | (cp >> 12 & 0x3F));
        b[(*k)++] = (char)(0x80 | (cp >> 6 & 0x3F));
        b[(*k)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static int str_error(const weft_tjson *j, size_t off, const char *what)
{
    int line, col;
    weft_tjson_where(j, off, &line, &col);
    return weft_error(WEFT_EDATA, "%s:%d:%d: %s", j->origin, line, col, what);
}

/* One escape at s[i] (after the backslash) into b; *i moves past it. */
static int unescape(const weft_tjson *j, const char *s, size_t n, size_t *i, char *b, size_t *k)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    unsigned cp, lo;
    const char *e = strchr(from, s[*i]);
    if (s[*i] != 'u') {
        b[(*k)++] = to[e - from]; /* the parser checked it */
        (*i)++;
        return 0;
    }
    hex4(s + *i + 1, &cp);
    *i += 5;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return str_error(j, (size_t)(s - j->text) + *i - 6, "bad string: a \\u escape of a lone low surrogate");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (n - *i < 6 || s[*i] != '\\' || s[*i + 1] != 'u' || hex4(s + *i + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
            return str_error(j, (size_t)(s - j->text) + *i - 6, "bad string: a high surrogate \\u escape not followed by a low one");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        *i += 6;
    }
    put_utf8(b, k, cp);
    return 0;
}

int weft_tjson_str(const weft_tjson *j, uint32_t node, char *buf, size_t cap, size_t *len)
{
    const weft_tjson_node *x = &j->nodes[node];
    const char *s = j->text + x->off;
    size_t n = x->len, k = 0;
    if (x->type != WEFT_TJSON_STR)
        return str_error(j, x->off, "expected a string");
    for (size_t i = 0; i < n;) {
        if (cap - k < 4)
            return str_error(j, x->off, "string too long");
        if (s[i] != '\\')
            buf[k++] = s[i++];
        else {
            i++;
            WEFT_CHECK(unescape(j, s, n, &i, buf, &k));
        }
    }
    *len = k;
    return 0;
}

int weft_tjson_str_eq(const weft_tjson *j, uint32_t node, const char *s)
{
    char buf[256];
    size_t len;
    if (node == WEFT_TJSON_NONE || j->nodes[node].type != WEFT_TJSON_STR || j->nodes[node].len > sizeof buf - 4)
        return 0;
    if (weft_tjson_str(j, node, buf, sizeof buf, &len) != 0)
        return 0;
    return len == strlen(s) && memcmp(buf, s, len) == 0;
}

uint32_t weft_tjson_get(const weft_tjson *j, uint32_t obj, const char *key)
{
    if (obj == WEFT_TJSON_NONE || j->nodes[obj].type != WEFT_TJSON_OBJ)
        return WEFT_TJSON_NONE;
    for (uint32_t k = weft_tjson_child(j, obj); k != WEFT_TJSON_NONE; k = weft_tjson_next(j, j->nodes[k].next))
        if (weft_tjson_str_eq(j, k, key))
            return j->nodes[k].next;
    return WEFT_TJSON_NONE;
}

int weft_tjson_int(const weft_tjson *j, uint32_t node, int64_t lo, int64_t hi, int64_t *out)
{
    const weft_tjson_node *x = &j->nodes[node];
    const char *s = j->text + x->off;
    int64_t v = 0;
    size_t i = s[0] == '-';
    if (x->type != WEFT_TJSON_NUM || x->len > 18)
        return -1;
    for (; i < x->len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1; /* a fraction or an exponent */
        v = v * 10 + (s[i] - '0');
    }
    if (s[0] == '-')
        v = -v;
    if (v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}
