/*
 * json.c -- the strict JSON parser of json.h: recursive descent over the
 * text, members allocated in blocks (pointers stay put), every decoded
 * string and number text in one buffer of at most 2 * len + 2 bytes.
 */
#include "runtime/json.h"
#include "runtime/error.h"

#include <stdlib.h>
#include <string.h>

#define BLOCK 256

typedef struct block {
    struct block *next;
    size_t used;
    weft_json v[BLOCK];
} block;

struct weft_json_doc {
    weft_json *root;
    block *blocks;
    char *strings;
};

typedef struct {
    const char *s, *origin;
    size_t len, pos;
    char *out;          /* next free byte of doc->strings */
    weft_json_doc *doc;
} parser;

static int fail(const parser *p, const char *what)
{
    if (p->pos >= p->len)
        return weft_error(WEFT_EDATA, "%s: invalid JSON at byte %zu (the end of the text): %s", p->origin, p->pos,
                          what);
    unsigned char c = (unsigned char)p->s[p->pos];
    if (c >= 0x20 && c < 0x7f)
        return weft_error(WEFT_EDATA, "%s: invalid JSON at byte %zu ('%c'): %s", p->origin, p->pos, c, what);
    return weft_error(WEFT_EDATA, "%s: invalid JSON at byte %zu (byte 0x%02x): %s", p->origin, p->pos, c, what);
}

static weft_json *node(parser *p, weft_json_type t)
{
    block *b = p->doc->blocks;
    if (!b || b->used == BLOCK) {
        b = calloc(1, sizeof *b);
        if (!b)
            return NULL;
        b->next = p->doc->blocks;
        p->doc->blocks = b;
    }
    weft_json *v = &b->v[b->used++];
    v->type = t;
    v->offset = p->pos;
    return v;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
                               p->s[p->pos] == '\r'))
        p->pos++;
}

static int literal(parser *p, const char *word, weft_json_type t, weft_json **out)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return fail(p, "expected a value (object, array, string, number, true, false or null)");
    if (!(*out = node(p, t)))
        return weft_error(WEFT_ENOMEM, "%s: out of memory parsing JSON", p->origin);
    p->pos += n;
    return 0;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int digits(parser *p)
{
    size_t a = p->pos;
    while (p->pos < p->len && is_digit(p->s[p->pos]))
        p->pos++;
    return p->pos > a;
}

static int number(parser *p, weft_json **out)
{
    size_t a = p->pos;
    if (p->pos < p->len && p->s[p->pos] == '-')
        p->pos++;
    if (p->pos < p->len && p->s[p->pos] == '0')
        p->pos++;
    else if (!digits(p))
        return fail(p, "expected a digit");
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        if (!digits(p))
            return fail(p, "expected a digit after the decimal point");
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        if (!digits(p))
            return fail(p, "expected a digit in the exponent");
    }
    weft_json *v = node(p, WEFT_JSON_NUMBER);
    if (!v)
        return weft_error(WEFT_ENOMEM, "%s: out of memory parsing JSON", p->origin);
    v->offset = a;
    v->len = p->pos - a;
    memcpy(p->out, p->s + a, v->len);
    p->out[v->len] = 0;
    v->str = p->out;
    v->num = strtod(p->out, NULL);
    p->out += v->len + 1;
    *out = v;
    return 0;
}

static int hex4(parser *p, unsigned *cp)
{
    if (p->len - p->pos < 4)
        return fail(p, "expected 4 hex digits after \\u");
    *cp = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos];
        unsigned d = is_digit(c) ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                   : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16;
        if (d == 16)
            return fail(p, "expected 4 hex digits after \\u");
        *cp = *cp * 16 + d;
        p->pos++;
    }
    return 0;
}

static char *put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xc0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xe0 | cp >> 12);
        *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *o++ = (char)(0xf0 | cp >> 18);
        *o++ = (char)(0x80 | (cp >> 12 & 0x3f));
        *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    }
    return o;
}

/* \uXXXX, or a surrogate pair \uD8xx\uDCxx, as UTF-8. */
static int unicode_escape(parser *p, char **o)
{
    unsigned cp, lo;
    WEFT_CHECK(hex4(p, &cp));
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return fail(p, "a low surrogate \\u escape with no high surrogate before it");
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
            return fail(p, "a high surrogate \\u escape must be followed by a low one");
        p->pos += 2;
        WEFT_CHECK(hex4(p, &lo));
        if (lo < 0xdc00 || lo > 0xdfff)
            return fail(p, "a high surrogate \\u escape must be followed by a low one");
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    *o = put_utf8(*o, cp);
    return 0;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid
 * (overlong, a surrogate, past U+10FFFF, truncated). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0], cp;
    size_t k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    if (k == 0 || c > 0xf4 || k > n)
        return 0;
    cp = c & (0x3f >> (k - 1));
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k;
}

static int escape(parser *p, char **o)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    p->pos++; /* the backslash */
    if (p->pos >= p->len)
        return fail(p, "unterminated string");
    char c = p->s[p->pos];
    if (c == 'u') {
        p->pos++;
        return unicode_escape(p, o);
    }
    const char *k = memchr(from, c, sizeof from - 1);
    if (!k || !c)
        return fail(p, "unknown escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX are JSON's)");
    *(*o)++ = to[k - from];
    p->pos++;
    return 0;
}

/* The string at p->pos (its opening quote) into p->out. */
static int string_at(parser *p, const char **str, size_t *len)
{
    char *start = p->out, *o = p->out;
    p->pos++;
    for (;;) {
        if (p->pos >= p->len)
            return fail(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"')
            break;
        if (c == '\\') {
            WEFT_CHECK(escape(p, &o));
        } else if (c < 0x20) {
            return fail(p, "a control character inside a string (escape it)");
        } else if (c < 0x80) {
            *o++ = (char)c;
            p->pos++;
        } else {
            size_t k = utf8_len((const unsigned char *)p->s + p->pos, p->len - p->pos);
            if (!k)
                return fail(p, "invalid UTF-8 inside a string");
            memcpy(o, p->s + p->pos, k);
            o += k, p->pos += k;
        }
    }
    p->pos++;
    *o++ = 0;
    *str = start;
    *len = (size_t)(o - start) - 1;
    p->out = o;
    return 0;
}

static int value(parser *p, int depth, weft_json **out);

static int key_cmp(const void *a, const void *b)
{
    const weft_json *x = *(const weft_json *const *)a, *y = *(const weft_json *const *)b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* The first key that occurs twice in obj, or NULL. */
static const weft_json *duplicate_key(const weft_json *obj, int *oom)
{
    *oom = 0;
    if (obj->n < 2)
        return NULL;
    const weft_json **v = malloc(obj->n * sizeof *v);
    if (!v) {
        *oom = 1;
        return NULL;
    }
    size_t i = 0;
    for (const weft_json *m = obj->first; m; m = m->next)
        v[i++] = m;
    qsort(v, obj->n, sizeof *v, key_cmp);
    const weft_json *dup = NULL;
    for (i = 1; i < obj->n && !dup; i++)
        if (key_cmp(&v[i - 1], &v[i]) == 0)
            dup = v[i];
    free(v);
    return dup;
}

static int members(parser *p, int depth, weft_json *v, char close)
{
    weft_json **tail = &v->first;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return 0;
    }
    for (;;) {
        const char *key = NULL;
        size_t klen = 0;
        weft_json *m;
        skip_ws(p);
        if (close == '}') {
            if (p->pos >= p->len || p->s[p->pos] != '"')
                return fail(p, "expected a member name (a string)");
            WEFT_CHECK(string_at(p, &key, &klen));
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':')
                return fail(p, "expected ':' after the member name");
            p->pos++;
        }
        WEFT_CHECK(value(p, depth + 1, &m));
        m->key = key, m->key_len = klen;
        *tail = m, tail = &m->next;
        v->n++;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            return 0;
        }
        return fail(p, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int container(parser *p, int depth, weft_json_type t, weft_json **out)
{
    if (depth >= WEFT_JSON_MAX_DEPTH)
        return fail(p, "nested too deeply");
    weft_json *v = node(p, t);
    if (!v)
        return weft_error(WEFT_ENOMEM, "%s: out of memory parsing JSON", p->origin);
    WEFT_CHECK(members(p, depth, v, t == WEFT_JSON_OBJECT ? '}' : ']'));
    int oom;
    const weft_json *dup = t == WEFT_JSON_OBJECT ? duplicate_key(v, &oom) : NULL;
    if (t == WEFT_JSON_OBJECT && oom)
        return weft_error(WEFT_ENOMEM, "%s: out of memory parsing JSON", p->origin);
    if (dup)
        return weft_error(WEFT_EDATA, "%s: invalid JSON at byte %zu: the object there has the key \"%.200s\" twice",
                          p->origin, v->offset, dup->key);
    *out = v;
    return 0;
}

static int value(parser *p, int depth, weft_json **out)
{
    skip_ws(p);
    if (p->pos >= p->len)
        return fail(p, "expected a value");
    switch (p->s[p->pos]) {
    case '{': return container(p, depth, WEFT_JSON_OBJECT, out);
    case '[': return container(p, depth, WEFT_JSON_ARRAY, out);
    case 't': return literal(p, "true", WEFT_JSON_TRUE, out);
    case 'f': return literal(p, "false", WEFT_JSON_FALSE, out);
    case 'n': return literal(p, "null", WEFT_JSON_NULL, out);
    case '"': {
        weft_json *v = node(p, WEFT_JSON_STRING);
        if (!v)
            return weft_error(WEFT_ENOMEM, "%s: out of memory parsing JSON", p->origin);
        *out = v;
        return string_at(p, &v->str, &v->len);
    }
    default: return number(p, out);
    }
}

int weft_json_parse(const char *text, size_t len, const char *origin, weft_json_doc **out)
{
    *out = NULL;
    weft_json_doc *d = calloc(1, sizeof *d);
    char *strings = d && len < SIZE_MAX / 2 - 2 ? malloc(2 * len + 2) : NULL;
    if (!strings) {
        free(d);
        return weft_error(WEFT_ENOMEM, "%s: out of memory for %zu bytes of JSON", origin, len);
    }
    d->strings = strings;
    parser p = {text, origin, len, 0, strings, d};
    int rc = value(&p, 0, &d->root);
    if (rc == 0) {
        skip_ws(&p);
        if (p.pos != p.len)
            rc = fail(&p, "text after the JSON value");
    }
    if (rc) {
        weft_json_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

const weft_json *weft_json_root(const weft_json_doc *doc) { return doc->root; }

void weft_json_free(weft_json_doc *doc)
{
    if (!doc)
        return;
    while (doc->blocks) {
        block *b = doc->blocks;
        doc->blocks = b->next;
        free(b);
    }
    free(doc->strings);
    free(doc);
}

const weft_json *weft_json_get(const weft_json *obj, const char *key)
{
    if (!obj || obj->type != WEFT_JSON_OBJECT)
        return NULL;
    size_t n = strlen(key);
    for (const weft_json *m = obj->first; m; m = m->next)
        if (m->key_len == n && memcmp(m->key, key, n) == 0)
            return m;
    return NULL;
}

int weft_json_u64(const weft_json *v, uint64_t *out)
{
    if (!v || v->type != WEFT_JSON_NUMBER || v->len == 0 || v->len > 20)
        return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < v->len; i++) {
        if (!is_digit(v->str[i]))
            return -1; /* a sign, a fraction or an exponent */
        unsigned d = (unsigned)(v->str[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

const char *weft_json_type_name(weft_json_type t)
{
    static const char *const names[] = {"null", "false", "true", "number", "string", "array", "object"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "invalid";
}
