/*
 * prov.c -- provenance text, the seal, identities, the signature attribute
 * and key files as text (see prov.h). Pure: no files, no HDF5, no
 * libsodium, so that tests/fuzz/fuzz_ckpt_attrs.c can drive every parser
 * here with arbitrary bytes.
 */
#include "checkpoint/prov.h"
#include "runtime/error.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

/* --- hex -------------------------------------------------------------------- */

void weft_hex_put(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* lowercase only: one spelling of each value */
}

int weft_hex_get(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static int hex_u64(const char *s, uint64_t *v)
{
    uint8_t b[8];
    if (weft_hex_get(s, 8, b) != 0)
        return -1;
    *v = 0;
    for (int i = 0; i < 8; i++)
        *v = *v << 8 | b[i];
    return 0;
}

/* --- building ----------------------------------------------------------------- */

static int key_ok(const char *k, size_t n)
{
    if (n == 0 || n > 32)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((k[i] >= 'a' && k[i] <= 'z') || k[i] == '_'))
            return 0;
    return 1;
}

int weft_prov_add(weft_prov *p, const char *key, const char *fmt, ...)
{
    char value[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    for (char *c = value; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = ' ';
    size_t room = sizeof p->text - p->len;
    int n = snprintf(p->text + p->len, room, "%s %s\n", key, value);
    if (!key_ok(key, strlen(key)) || n < 0 || (size_t)n >= room) {
        p->text[p->len] = '\0';
        p->overflow = 1;
        return weft_error(WEFT_EINVAL, "checkpoint provenance: line '%s' does not fit or has a bad key", key);
    }
    p->len += (size_t)n;
    return 0;
}

/* --- parsing ---------------------------------------------------------------- */

static int bad(const char *origin, int line, const char *why)
{
    return weft_error(WEFT_EDATA, "%s: provenance line %d: %s", origin, line, why);
}

/* A singular field: set once. */
static int set_once(const char **field, const char *value, const char *origin, int line)
{
    if (**field)
        return bad(origin, line, "key repeated");
    *field = value;
    return 0;
}

/* "HEX16 KIND PATH" */
static int parse_parent(weft_prov_view *v, char *val, const char *origin, int line)
{
    if (v->has_parent)
        return bad(origin, line, "key repeated");
    char *kind = strlen(val) > 17 && val[16] == ' ' ? val + 17 : NULL;
    char *sp = kind ? strchr(kind, ' ') : NULL;
    if (!sp || hex_u64(val, &v->parent) != 0 || sp == kind || sp[1] == '\0')
        return bad(origin, line, "expected 'parent IDENTITY KIND PATH' (IDENTITY: 16 lowercase hex digits)");
    *sp = '\0';
    if (strcmp(kind, "resume") && strcmp(kind, "init-from") && strcmp(kind, "import") && strcmp(kind, "merge"))
        return bad(origin, line, "parent kind must be resume, init-from, import or merge");
    v->parent_kind = kind;
    v->parent_path = sp + 1;
    v->has_parent = 1;
    return 0;
}

static int parse_line(weft_prov_view *v, char *s, const char *origin, int line)
{
    char *sp = strchr(s, ' ');
    if (!sp || !key_ok(s, (size_t)(sp - s)))
        return bad(origin, line, "expected 'key value' (key: lowercase letters and '_')");
    *sp = '\0';
    char *val = sp + 1;
    for (const char *c = val; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return bad(origin, line, "control character in the value");
    static const char *const names[] = {"weft_version", "source_commit", "config_hash", "job", "host", "user", "time"};
    const char **fields[] = {&v->weft_version, &v->source_commit, &v->config_hash, &v->job, &v->host, &v->user,
                             &v->time};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i]) == 0)
            return set_once(fields[i], val, origin, line);
    if (strcmp(s, "parent") == 0)
        return parse_parent(v, val, origin, line);
    if (strcmp(s, "dataset") == 0 && v->ndatasets < WEFT_PROV_DATASETS)
        v->datasets[v->ndatasets++] = val;
    return 0; /* a newer weft's key, or one dataset too many: kept in the text */
}

int weft_prov_parse(const char *text, size_t len, const char *origin, weft_prov_view *v)
{
    memset(v, 0, sizeof *v);
    v->weft_version = v->source_commit = v->config_hash = v->job = v->host = v->user = v->time = "";
    v->parent_kind = v->parent_path = "";
    if (len > WEFT_PROV_MAX)
        return weft_error(WEFT_EDATA, "%s: provenance is %zu bytes, more than %d", origin, len, WEFT_PROV_MAX);
    if (memchr(text, '\0', len))
        return weft_error(WEFT_EDATA, "%s: provenance holds a NUL byte", origin);
    if (len > 0 && text[len - 1] != '\n')
        return weft_error(WEFT_EDATA, "%s: provenance does not end with a newline", origin);
    v->buf = malloc(len + 1);
    if (!v->buf)
        return weft_error(WEFT_ENOMEM, "out of memory");
    memcpy(v->buf, text, len);
    v->buf[len] = '\0';
    int line = 1, rc = 0;
    for (char *s = v->buf; rc == 0 && *s; line++) {
        char *nl = strchr(s, '\n'); /* present: the text ends with one */
        *nl = '\0';
        rc = parse_line(v, s, origin, line);
        s = nl + 1;
    }
    if (rc)
        weft_prov_view_free(v);
    return rc;
}

void weft_prov_view_free(weft_prov_view *v)
{
    free(v->buf);
    v->buf = NULL;
}

/* --- the seal and identity ------------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
    return strcmp(((const weft_seal_entry *)a)->name, ((const weft_seal_entry *)b)->name);
}

int weft_seal_text(weft_seal_entry *e, int n, int64_t step, const char *prov, char **out, size_t *len)
{
    size_t plen = prov ? strlen(prov) : 0, cap = 128 + plen + (size_t)n * (sizeof e->name + 96);
    char *s = malloc(cap);
    if (!s)
        return weft_error(WEFT_ENOMEM, "out of memory");
    if (n > 1)
        qsort(e, (size_t)n, sizeof *e, by_name);
    size_t k = (size_t)snprintf(s, cap, "weft-checkpoint-seal 1\nstep %" PRId64 "\ndatasets %d\n", step, n);
    for (int i = 0; i < n; i++) {
        if (e[i].ndim == 2)
            k += (size_t)snprintf(s + k, cap - k, "%.*s %d %" PRId64 "x%" PRId64 " %016" PRIx64 "\n",
                                  (int)sizeof e->name, e[i].name, e[i].esize, e[i].shape[0], e[i].shape[1], e[i].xxh3);
        else
            k += (size_t)snprintf(s + k, cap - k, "%.*s %d %" PRId64 " %016" PRIx64 "\n", (int)sizeof e->name,
                                  e[i].name, e[i].esize, e[i].shape[0], e[i].xxh3);
    }
    k += (size_t)snprintf(s + k, cap - k, "provenance %zu\n", plen);
    memcpy(s + k, prov ? prov : "", plen + 1);
    *out = s;
    *len = k + plen;
    return 0;
}

uint64_t weft_seal_identity(const char *seal, size_t len) { return XXH3_64bits(seal, len); }

/* --- the signature attribute ------------------------------------------------------ */

void weft_sig_format(const uint8_t pk[32], uint64_t identity, const uint8_t sig[64], char out[WEFT_SIG_TEXT_LEN + 1])
{
    char p[65], s[129];
    weft_hex_put(pk, 32, p);
    weft_hex_put(sig, 64, s);
    snprintf(out, WEFT_SIG_TEXT_LEN + 1, "ed25519 %s %016" PRIx64 " %s", p, identity, s);
}

int weft_sig_parse(const char *t, size_t len, const char *origin, uint8_t pk[32], uint64_t *identity, uint8_t sig[64])
{
    if (len != WEFT_SIG_TEXT_LEN || memcmp(t, "ed25519 ", 8) != 0 || t[72] != ' ' || t[89] != ' ' ||
        weft_hex_get(t + 8, 32, pk) != 0 || hex_u64(t + 73, identity) != 0 || weft_hex_get(t + 90, 64, sig) != 0)
        return weft_error(WEFT_EDATA, "%s: the signature attribute is malformed (expected 'ed25519 PUBLIC_KEY "
                          "IDENTITY SIGNATURE' in lowercase hex): the signature is corrupt", origin);
    return 0;
}

/* --- key files ---------------------------------------------------------------------- */

int weft_key_parse(const char *text, size_t len, const char *origin, int secret, uint8_t *key)
{
    const char *tag = secret ? "weft-ed25519-secret " : "weft-ed25519-public ";
    size_t tl = strlen(tag), n = secret ? 64 : 32;
    if (len < tl + 2 * n || memcmp(text, tag, tl) != 0 || weft_hex_get(text + tl, n, key) != 0 ||
        (len > tl + 2 * n && text[tl + 2 * n] != ' ' && text[tl + 2 * n] != '\n'))
        return weft_error(WEFT_EDATA, "%s is not a weft %s key file (expected one line '%s%s')", origin,
                          secret ? "secret" : "public", tag, secret ? "<128 hex digits>" : "<64 hex digits> [comment]");
    return 0;
}

void weft_key_id(const uint8_t pk[32], char out[17]) { weft_hex_put(pk, 8, out); }

uint64_t weft_prov_config_hash(const char *ini) { return XXH3_64bits(ini, strlen(ini)); }

int weft_prov_add_time(weft_prov *p)
{
    char buf[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return weft_prov_add(p, "time", "%s", buf);
}
