/*
 * manifest.c -- parse, hash and atomically write the dataset manifest (see
 * manifest.h; grammar in docs/data-format.md).
 *
 * The parser copies the text once and turns it into NUL-terminated fields in
 * place, so shard names cost no allocation each and a 10 000-shard manifest
 * parses in a few milliseconds. Every error names origin:line and the byte
 * offset of the offending field.
 */
#include "data/manifest.h"
#include "runtime/durable.h"
#include "runtime/error.h"
#include "runtime/readfile.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define MAX_FIELDS 6
#define MANIFEST_MAX_BYTES (1u << 30)

typedef struct {
    const char *origin;
    const char *base; /* start of the copied text, for offsets */
    int line;
    char *f[MAX_FIELDS];
    int nf;
} parser;

const char *weft_split_name(weft_split s) { return s == WEFT_SPLIT_VAL ? "val" : "train"; }

int weft_split_parse(const char *s, weft_split *out)
{
    if (strcmp(s, "train") == 0)
        *out = WEFT_SPLIT_TRAIN;
    else if (strcmp(s, "val") == 0)
        *out = WEFT_SPLIT_VAL;
    else
        return WEFT_EINVAL;
    return 0;
}

int weft_manifest_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > WEFT_SHARD_NAME_MAX || name[0] == '.')
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

static int perr(const parser *p, const char *at, const char *what, const char *found)
{
    return weft_error(WEFT_EDATA, "%s:%d (offset %td): %s, found \"%.64s\"", p->origin, p->line,
                      at - p->base, what, found);
}

/* Split line [s, e) into whitespace-separated fields, NUL-terminating each. */
static void split_fields(parser *p, char *s, char *e)
{
    p->nf = 0;
    while (s < e) {
        while (s < e && (*s == ' ' || *s == '\t' || *s == '\r'))
            *s++ = '\0';
        if (s >= e)
            break;
        if (p->nf < MAX_FIELDS)
            p->f[p->nf] = s;
        p->nf++;
        while (s < e && *s != ' ' && *s != '\t' && *s != '\r')
            s++;
    }
    *e = '\0';
}

static int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s || (s[0] == '0' && s[1]))
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

static int parse_hex64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (strlen(s) != 16)
        return -1;
    for (; *s; s++) {
        int d = (*s >= '0' && *s <= '9') ? *s - '0' : (*s >= 'a' && *s <= 'f') ? *s - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

static int parse_u32_field(parser *p, const char *expected, uint64_t max, uint32_t *out)
{
    uint64_t v;
    char what[128];
    snprintf(what, sizeof what, "expected \"%s\"", expected);
    if (p->nf != 2)
        return perr(p, p->f[0], what, p->f[0]);
    if (parse_u64(p->f[1], &v) != 0 || v > max)
        return perr(p, p->f[1], what, p->f[1]);
    *out = (uint32_t)v;
    return 0;
}

static int parse_shard(parser *p, weft_manifest *m)
{
    weft_manifest_shard *s = &m->shards[m->n_shards];
    if (p->nf != 5)
        return perr(p, p->f[0], "expected \"shard SPLIT NAME TOKENS CHECKSUM\"", p->f[0]);
    if (weft_split_parse(p->f[1], &s->split) != 0)
        return perr(p, p->f[1], "expected split \"train\" or \"val\"", p->f[1]);
    if (!weft_manifest_name_ok(p->f[2], strlen(p->f[2])))
        return perr(p, p->f[2], "expected a shard file name of [A-Za-z0-9._-] not starting with '.'", p->f[2]);
    if (parse_u64(p->f[3], &s->tokens) != 0)
        return perr(p, p->f[3], "expected a token count (decimal)", p->f[3]);
    if (parse_hex64(p->f[4], &s->checksum) != 0)
        return perr(p, p->f[4], "expected a 16-digit lower-case hex checksum", p->f[4]);
    s->name = p->f[2];
    m->n_shards++;
    return 0;
}

static int parse_line(parser *p, weft_manifest *m, unsigned *seen)
{
    const char *k = p->f[0];
    if (strcmp(k, "shard") == 0)
        return parse_shard(p, m);
    if (strcmp(k, "token_width") == 0) {
        WEFT_CHECK(parse_u32_field(p, "token_width 2 or 4", 4, &m->token_width));
        if (m->token_width != 2 && m->token_width != 4)
            return perr(p, p->f[1], "expected token_width 2 or 4", p->f[1]);
        *seen |= 1;
    } else if (strcmp(k, "vocab_size") == 0) {
        WEFT_CHECK(parse_u32_field(p, "vocab_size 1..4294967295", UINT32_MAX, &m->vocab_size));
        if (m->vocab_size == 0)
            return perr(p, p->f[1], "expected vocab_size 1..4294967295", p->f[1]);
        *seen |= 2;
    } else if (strcmp(k, "tokenizer_id") == 0) {
        WEFT_CHECK(parse_u32_field(p, "tokenizer_id 0..4294967295", UINT32_MAX, &m->tokenizer_id));
        *seen |= 4;
    } else if (strcmp(k, "tokenizer_hash") == 0) { /* optional */
        if (p->nf != 2 || parse_hex64(p->f[1], &m->tokenizer_hash) != 0 || m->tokenizer_hash == 0)
            return perr(p, p->nf > 1 ? p->f[1] : k, "expected tokenizer_hash HEX16 (not all zero)",
                        p->nf > 1 ? p->f[1] : k);
    } else if (strcmp(k, "dataset_hash") == 0) {
        if (p->nf != 2 || parse_hex64(p->f[1], &m->hash) != 0)
            return perr(p, p->nf > 1 ? p->f[1] : k, "expected dataset_hash HEX16", p->nf > 1 ? p->f[1] : k);
        *seen |= 8;
    } else {
        return perr(p, k, "expected a key (shard, token_width, vocab_size, tokenizer_id, tokenizer_hash, dataset_hash)", k);
    }
    return 0;
}

static int check_header_line(parser *p)
{
    if (p->nf == 2 && strcmp(p->f[0], "weft-dataset") == 0 && strcmp(p->f[1], "1") != 0)
        return perr(p, p->f[1], "unsupported manifest version: expected 1", p->f[1]);
    if (p->nf != 2 || strcmp(p->f[0], "weft-dataset") != 0)
        return perr(p, p->nf ? p->f[0] : p->base, "not a weft dataset manifest: expected first line \"weft-dataset 1\"",
                    p->nf ? p->f[0] : "");
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Shard names must be unique: two entries for one file would double-count it. */
static int check_unique(const weft_manifest *m, const char *origin)
{
    int rc = 0;
    if (m->n_shards < 2)
        return 0;
    const char **names = malloc(m->n_shards * sizeof *names);
    if (!names)
        return weft_error(WEFT_ENOMEM, "%s: no memory to check %zu shard names", origin, m->n_shards);
    for (size_t i = 0; i < m->n_shards; i++)
        names[i] = m->shards[i].name;
    qsort(names, m->n_shards, sizeof *names, name_cmp);
    for (size_t i = 1; i < m->n_shards && rc == 0; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            rc = weft_error(WEFT_EDATA, "%s: shard \"%s\" is listed twice: expected each shard once",
                            origin, names[i]);
    free(names);
    return rc;
}

static int check_complete(const weft_manifest *m, unsigned seen, const char *origin)
{
    static const char *const keys[] = {"token_width", "vocab_size", "tokenizer_id", "dataset_hash"};
    for (int i = 0; i < 4; i++)
        if (!(seen & (1u << i)))
            return weft_error(WEFT_EDATA, "%s: missing \"%s\" line: expected one (is the manifest truncated?)",
                              origin, keys[i]);
    if (m->token_width == 2 && m->vocab_size > 65536)
        return weft_error(WEFT_EDATA, "%s: vocab_size %u does not fit token_width 2: expected at most 65536",
                          origin, m->vocab_size);
    uint64_t h = weft_manifest_hash(m);
    if (h != m->hash)
        return weft_error(WEFT_EDATA, "%s: dataset_hash mismatch: expected %016" PRIx64 " (computed from the shard lines), found %016" PRIx64 "; the manifest was edited or damaged",
                          origin, h, m->hash);
    return check_unique(m, origin);
}

static int check_chars(const char *t, size_t len, const char *origin)
{
    int line = 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '\n')
            line++;
        else if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f)
            return weft_error(WEFT_EDATA, "%s:%d (offset %zu): expected text, found control byte 0x%02x",
                              origin, line, i, c);
    }
    return 0;
}

static int parse_lines(parser *p, weft_manifest *m, char *t, size_t len)
{
    unsigned seen = 0;
    char *s = t, *end = t + len;
    while (s < end) {
        char *e = memchr(s, '\n', (size_t)(end - s));
        if (!e)
            e = end;
        p->line++;
        split_fields(p, s, e);
        if (p->line == 1) {
            WEFT_CHECK(check_header_line(p));
        } else if (p->nf > 0 && p->f[0][0] != '#') {
            if (p->nf > MAX_FIELDS)
                return perr(p, p->f[0], "expected at most 5 fields", p->f[0]);
            WEFT_CHECK(parse_line(p, m, &seen));
        }
        s = e + 1;
    }
    if (p->line == 0)
        return weft_error(WEFT_EDATA, "%s: empty manifest: expected first line \"weft-dataset 1\"", p->origin);
    return check_complete(m, seen, p->origin);
}

int weft_manifest_parse(const char *text, size_t len, const char *origin, weft_manifest **out)
{
    int rc;
    size_t lines = 1;
    parser p = {.origin = origin};
    *out = NULL;
    WEFT_CHECK(check_chars(text, len, origin));
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    weft_manifest *m = calloc(1, sizeof *m);
    if (m) {
        m->strings = malloc(len + 1);
        m->shards = malloc(lines * sizeof *m->shards);
    }
    if (!m || !m->strings || !m->shards) {
        weft_manifest_free(m);
        return weft_error(WEFT_ENOMEM, "%s: no memory for a manifest of %zu bytes", origin, len);
    }
    memcpy(m->strings, text, len);
    m->strings[len] = '\0';
    p.base = m->strings;
    WEFT_CHECK_GOTO(parse_lines(&p, m, m->strings, len), rc, fail);
    *out = m;
    return 0;
fail:
    weft_manifest_free(m);
    return rc;
}

void weft_manifest_free(weft_manifest *m)
{
    if (!m)
        return;
    free(m->shards);
    free(m->strings);
    free(m);
}

static int shard_line(char *buf, size_t len, const weft_manifest_shard *s)
{
    return snprintf(buf, len, "shard %s %s %" PRIu64 " %016" PRIx64 "\n", weft_split_name(s->split),
                    s->name, s->tokens, s->checksum);
}

uint64_t weft_manifest_hash(const weft_manifest *m)
{
    char line[WEFT_SHARD_NAME_MAX + 80];
    XXH3_state_t *st = XXH3_createState();
    uint64_t h;
    if (!st)
        return 0; /* out of memory: 0 never matches a real manifest */
    XXH3_64bits_reset(st);
    for (size_t i = 0; i < m->n_shards; i++) {
        int n = shard_line(line, sizeof line, &m->shards[i]);
        XXH3_64bits_update(st, line, (size_t)n);
    }
    h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h;
}

static char *format_manifest(const weft_manifest *m, size_t *len)
{
    size_t cap = 256 + m->n_shards * (WEFT_SHARD_NAME_MAX + 80), n;
    char *t = malloc(cap);
    if (!t)
        return NULL;
    n = (size_t)snprintf(t, cap, "weft-dataset %d\n# written by weft-data; see docs/data-format.md\n"
                         "token_width %u\nvocab_size %u\ntokenizer_id %u\n", WEFT_MANIFEST_VERSION,
                         m->token_width, m->vocab_size, m->tokenizer_id);
    if (m->tokenizer_hash)
        n += (size_t)snprintf(t + n, cap - n, "tokenizer_hash %016" PRIx64 "\n", m->tokenizer_hash);
    for (size_t i = 0; i < m->n_shards; i++)
        n += (size_t)shard_line(t + n, cap - n, &m->shards[i]);
    n += (size_t)snprintf(t + n, cap - n, "dataset_hash %016" PRIx64 "\n", weft_manifest_hash(m));
    *len = n;
    return t;
}

int weft_manifest_write(const char *dir, const weft_manifest *m)
{
    size_t len;
    char *t = format_manifest(m, &len);
    if (!t)
        return weft_error(WEFT_ENOMEM, "%s: no memory to format a manifest of %zu shards", dir, m->n_shards);
    char path[4200];
    snprintf(path, sizeof path, "%s/" WEFT_MANIFEST_NAME, dir);
    int rc = weft_durable_write_file(path, t, len, WEFT_DURABLE_SYNC);
    free(t);
    return rc;
}

int weft_manifest_load(const char *dir, weft_manifest **out)
{
    char path[4096];
    char *text = NULL;
    size_t len = 0;
    struct stat st;
    if (stat(dir, &st) != 0)
        return weft_error(WEFT_ENOENT, "%s: dataset directory not found: %s", dir, strerror(errno));
    snprintf(path, sizeof path, "%s/%s", dir, WEFT_MANIFEST_NAME);
    int rc = weft_read_file(path, MANIFEST_MAX_BYTES, "the dataset manifest", &text, &len);
    if (rc == WEFT_ENOENT)
        return weft_error(rc, "%s (is %s a dataset directory made by weft-data?)", weft_last_error(), dir);
    if (rc)
        return rc;
    rc = weft_manifest_parse(text, len, path, out);
    free(text);
    return rc;
}

uint64_t weft_manifest_tokens(const weft_manifest *m, int split)
{
    uint64_t n = 0;
    for (size_t i = 0; i < m->n_shards; i++)
        if (split < 0 || (int)m->shards[i].split == split)
            n += m->shards[i].tokens;
    return n;
}

size_t weft_manifest_count(const weft_manifest *m, int split)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_shards; i++)
        n += split < 0 || (int)m->shards[i].split == split;
    return n;
}
