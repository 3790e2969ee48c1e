/*
 * safetensors.c -- the safetensors reader and writer (see safetensors.h).
 *
 * Reading is two steps: weft_st_open reads the 8-byte length and the
 * header, and weft_st_parse_header checks all of it (no I/O, so the fuzz
 * target runs it on any bytes); only then does weft_st_read_f32 read a
 * tensor's bytes, at offsets already known to be inside the file.
 */
#include "checkpoint/safetensors.h"
#include "runtime/durable.h"
#include "runtime/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- the header ----------------------------------------------------------- */

/* The format's dtypes weft does not read: refused by name, not as unknown. */
static const char *const other_dtypes[] = {"F64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4",
                                           "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL", "C64",
                                           NULL};

static int bad(const char *origin, const char *tensor, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "FILE: tensor 'NAME': field 'F': why" */
static int bad(const char *origin, const char *tensor, const char *field, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return weft_error(WEFT_EDATA, "%s: tensor '%.200s': field '%s': %s", origin, tensor, field, why);
}

static int parse_dtype(const char *origin, const char *name, const weft_json *v, weft_dtype *dt)
{
    if (!v)
        return bad(origin, name, "dtype", "is missing");
    if (v->type != WEFT_JSON_STRING)
        return bad(origin, name, "dtype", "is a %s, not a string", weft_json_type_name(v->type));
    static const struct { const char *name; weft_dtype dt; } known[] = {
        {"F32", WEFT_F32}, {"F16", WEFT_F16}, {"BF16", WEFT_BF16}};
    for (size_t i = 0; i < 3; i++)
        if (strcmp(v->str, known[i].name) == 0) {
            *dt = known[i].dt;
            return 0;
        }
    for (int i = 0; other_dtypes[i]; i++)
        if (strcmp(v->str, other_dtypes[i]) == 0)
            return bad(origin, name, "dtype", "%s is not supported (weft reads F32, F16 and BF16)", v->str);
    return bad(origin, name, "dtype", "unknown dtype \"%.40s\" (weft reads F32, F16 and BF16)", v->str);
}

static int parse_shape(const char *origin, weft_st_tensor *t, const weft_json *v)
{
    if (!v || v->type != WEFT_JSON_ARRAY)
        return bad(origin, t->name, "shape", "%s", v ? "is not an array" : "is missing");
    if (v->n > WEFT_ST_MAX_DIMS)
        return bad(origin, t->name, "shape", "has %zu dimensions (at most %d)", v->n, WEFT_ST_MAX_DIMS);
    uint64_t numel = 1;
    int overflow = 0;
    t->ndim = 0;
    for (const weft_json *d = v->first; d; d = d->next) {
        uint64_t x;
        if (weft_json_u64(d, &x) != 0 || x > INT64_MAX)
            return bad(origin, t->name, "shape", "dimension %d is not a non-negative integer", t->ndim);
        t->shape[t->ndim++] = (int64_t)x;
        if (x && numel > UINT64_MAX / x)
            overflow = 1;
        numel *= x;
    }
    if (overflow || numel > SIZE_MAX / 8)
        return bad(origin, t->name, "shape", "has more elements than fit in memory");
    t->numel = (size_t)numel;
    return 0;
}

static int parse_offsets(const char *origin, weft_st_tensor *t, const weft_json *v, uint64_t data_len)
{
    uint64_t o[2];
    if (!v || v->type != WEFT_JSON_ARRAY || v->n != 2 || weft_json_u64(v->first, &o[0]) != 0 ||
        weft_json_u64(v->first->next, &o[1]) != 0)
        return bad(origin, t->name, "data_offsets", "%s",
                   v ? "must be [begin, end], two non-negative integers" : "is missing");
    if (o[0] > o[1])
        return bad(origin, t->name, "data_offsets", "begin %llu is past end %llu", (unsigned long long)o[0],
                   (unsigned long long)o[1]);
    if (o[1] > data_len)
        return bad(origin, t->name, "data_offsets", "[%llu, %llu] ends past the data area (%llu bytes after the "
                   "header): truncated file or bad offsets", (unsigned long long)o[0], (unsigned long long)o[1],
                   (unsigned long long)data_len);
    uint64_t want = (uint64_t)t->numel * weft_dtype_size(t->dtype);
    if (o[1] - o[0] != want)
        return bad(origin, t->name, "data_offsets", "[%llu, %llu] is %llu bytes, but shape x dtype (%zu x %s) "
                   "is %llu", (unsigned long long)o[0], (unsigned long long)o[1],
                   (unsigned long long)(o[1] - o[0]), t->numel, weft_dtype_name(t->dtype),
                   (unsigned long long)want);
    t->begin = o[0], t->end = o[1];
    return 0;
}

static int parse_tensor(const char *origin, const weft_json *m, uint64_t data_len, weft_st_tensor *t)
{
    t->name = m->key;
    if (m->key_len == 0 || strlen(m->key) != m->key_len)
        return weft_error(WEFT_EDATA, "%s: a tensor name is empty or holds a NUL character", origin);
    if (m->type != WEFT_JSON_OBJECT)
        return weft_error(WEFT_EDATA, "%s: tensor '%.200s': its entry is a %s, not an object", origin, t->name,
                          weft_json_type_name(m->type));
    for (const weft_json *f = m->first; f; f = f->next)
        if (strcmp(f->key, "dtype") && strcmp(f->key, "shape") && strcmp(f->key, "data_offsets"))
            return bad(origin, t->name, f->key, "unknown field (a tensor has dtype, shape and data_offsets)");
    WEFT_CHECK(parse_dtype(origin, t->name, weft_json_get(m, "dtype"), &t->dtype));
    WEFT_CHECK(parse_shape(origin, t, weft_json_get(m, "shape")));
    return parse_offsets(origin, t, weft_json_get(m, "data_offsets"), data_len);
}

static int check_metadata(const char *origin, const weft_json *m)
{
    if (m->type != WEFT_JSON_OBJECT)
        return weft_error(WEFT_EDATA, "%s: field '__metadata__' is a %s, not an object of strings", origin,
                          weft_json_type_name(m->type));
    for (const weft_json *f = m->first; f; f = f->next)
        if (f->type != WEFT_JSON_STRING)
            return weft_error(WEFT_EDATA, "%s: field '__metadata__': '%.100s' is a %s, not a string", origin, f->key,
                              weft_json_type_name(f->type));
    return 0;
}

static int by_begin(const void *a, const void *b)
{
    const weft_st_tensor *x = *(const weft_st_tensor *const *)a, *y = *(const weft_st_tensor *const *)b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

/* No two tensors share a byte (empty tensors take none). */
static int check_overlaps(const char *origin, weft_st_file *f)
{
    const weft_st_tensor **v = malloc(((size_t)f->ntensors + 1) * sizeof *v);
    if (!v)
        return weft_error(WEFT_ENOMEM, "%s: out of memory", origin);
    int n = 0, rc = 0;
    for (int i = 0; i < f->ntensors; i++)
        if (f->tensors[i].end > f->tensors[i].begin)
            v[n++] = &f->tensors[i];
    qsort(v, (size_t)n, sizeof *v, by_begin);
    for (int i = 1; i < n && rc == 0; i++)
        if (v[i]->begin < v[i - 1]->end)
            rc = bad(origin, v[i]->name, "data_offsets", "[%llu, %llu] overlaps tensor '%.200s' at [%llu, %llu]",
                     (unsigned long long)v[i]->begin, (unsigned long long)v[i]->end, v[i - 1]->name,
                     (unsigned long long)v[i - 1]->begin, (unsigned long long)v[i - 1]->end);
    free(v);
    return rc;
}

static int parse_members(const char *origin, uint64_t data_len, weft_st_file *f)
{
    const weft_json *root = weft_json_root(f->doc);
    if (root->type != WEFT_JSON_OBJECT)
        return weft_error(WEFT_EDATA, "%s: the header is a JSON %s, not an object", origin,
                          weft_json_type_name(root->type));
    f->tensors = calloc(root->n + 1, sizeof *f->tensors);
    if (!f->tensors)
        return weft_error(WEFT_ENOMEM, "%s: out of memory", origin);
    for (const weft_json *m = root->first; m; m = m->next) {
        if (strcmp(m->key, "__metadata__") == 0) {
            WEFT_CHECK(check_metadata(origin, m));
            f->metadata = m;
            continue;
        }
        WEFT_CHECK(parse_tensor(origin, m, data_len, &f->tensors[f->ntensors]));
        f->ntensors++;
    }
    return check_overlaps(origin, f);
}

int weft_st_parse_header(const char *header, size_t len, uint64_t data_len, const char *origin, weft_st_file **out)
{
    *out = NULL;
    weft_st_file *f = calloc(1, sizeof *f);
    if (!f)
        return weft_error(WEFT_ENOMEM, "%s: out of memory", origin);
    f->fd = -1;
    snprintf(f->path, sizeof f->path, "%s", origin);
    char where[4200];
    snprintf(where, sizeof where, "%s: header", origin);
    int rc = weft_json_parse(header, len, where, &f->doc);
    if (rc == 0)
        rc = parse_members(origin, data_len, f);
    if (rc) {
        weft_st_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* --- files ---------------------------------------------------------------- */

static int read_at(int fd, void *buf, size_t len, uint64_t off, const char *path)
{
    char *p = buf;
    while (len) {
        ssize_t r = pread(fd, p, len, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return weft_error(WEFT_EIO, "%s: read failed: %s", path, strerror(errno));
        if (r == 0)
            return weft_error(WEFT_EDATA, "%s: the file ends early (shrunk while being read?)", path);
        p += r, len -= (size_t)r, off += (uint64_t)r;
    }
    return 0;
}

/* The header length, checked against the file's size. */
static int header_len(int fd, const char *path, uint64_t size, uint64_t *n)
{
    unsigned char b[8];
    if (size < 8)
        return weft_error(WEFT_EDATA, "%s: truncated: %llu bytes, but a safetensors file starts with an 8-byte "
                          "header length", path, (unsigned long long)size);
    WEFT_CHECK(read_at(fd, b, 8, 0, path));
    *n = 0;
    for (int i = 7; i >= 0; i--)
        *n = *n << 8 | b[i];
    if (*n < 2)
        return weft_error(WEFT_EDATA, "%s: field 'header length': %llu bytes, too short for a JSON object", path,
                          (unsigned long long)*n);
    if (*n > size - 8)
        return weft_error(WEFT_EDATA, "%s: field 'header length': %llu bytes runs past the end of the file (%llu "
                          "bytes): truncated or not a safetensors file", path, (unsigned long long)*n,
                          (unsigned long long)size);
    if (*n > WEFT_ST_MAX_HEADER)
        return weft_error(WEFT_EDATA, "%s: field 'header length': %llu bytes, more than the %u a safetensors "
                          "header may have", path, (unsigned long long)*n, WEFT_ST_MAX_HEADER);
    return 0;
}

static int open_checked(const char *path, weft_st_file **out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return weft_error(errno == ENOENT ? WEFT_ENOENT : WEFT_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    uint64_t n = 0;
    int rc = fstat(fd, &st) != 0 ? weft_error(WEFT_EIO, "%s: %s", path, strerror(errno))
           : !S_ISREG(st.st_mode) ? weft_error(WEFT_EDATA, "%s is not a regular file", path) : 0;
    if (rc == 0)
        rc = header_len(fd, path, (uint64_t)st.st_size, &n);
    char *h = rc == 0 ? malloc(n) : NULL;
    if (rc == 0 && !h)
        rc = weft_error(WEFT_ENOMEM, "%s: out of memory for a %llu-byte header", path, (unsigned long long)n);
    if (rc == 0)
        rc = read_at(fd, h, n, 8, path);
    if (rc == 0)
        rc = weft_st_parse_header(h, n, (uint64_t)st.st_size - 8 - n, path, out);
    free(h);
    if (rc) {
        close(fd);
        return rc;
    }
    (*out)->fd = fd;
    (*out)->file_size = (uint64_t)st.st_size;
    (*out)->data_start = 8 + n;
    return 0;
}

int weft_st_open(const char *path, weft_st_file **out)
{
    *out = NULL;
    return open_checked(path, out);
}

void weft_st_close(weft_st_file *f)
{
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    free(f->tensors);
    weft_json_free(f->doc);
    free(f);
}

const weft_st_tensor *weft_st_find(const weft_st_file *f, const char *name)
{
    for (int i = 0; i < f->ntensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

int weft_st_read_f32(const weft_st_file *f, const weft_st_tensor *t, float *out)
{
    if (f->fd < 0)
        return weft_error(WEFT_EINVAL, "%s: a header parsed from memory has no data", f->path);
    size_t bytes = (size_t)(t->end - t->begin);
    if (t->dtype == WEFT_F32) /* little-endian on the machines weft runs on */
        return read_at(f->fd, out, bytes, f->data_start + t->begin, f->path);
    uint16_t *h = malloc(bytes + 1);
    if (!h)
        return weft_error(WEFT_ENOMEM, "%s: tensor '%s': out of memory", f->path, t->name);
    int rc = read_at(f->fd, h, bytes, f->data_start + t->begin, f->path);
    if (rc == 0)
        weft_half_to_f32(t->dtype, h, out, t->numel);
    free(h);
    return rc;
}

/* --- writing -------------------------------------------------------------- */

typedef struct {
    char *b;
    size_t len, cap;
    int oom;
} sbuf;

static void put(sbuf *s, const char *p, size_t n)
{
    if (s->oom)
        return;
    if (s->len + n + 1 > s->cap) {
        size_t cap = (s->len + n + 1) * 2 + 256;
        char *b = realloc(s->b, cap);
        if (!b) {
            s->oom = 1;
            return;
        }
        s->b = b, s->cap = cap;
    }
    memcpy(s->b + s->len, p, n);
    s->len += n;
    s->b[s->len] = 0;
}

static void putf(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(sbuf *s, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    put(s, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void put_str(sbuf *s, const char *str)
{
    put(s, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
        if (*p == '"' || *p == '\\')
            putf(s, "\\%c", *p);
        else if (*p < 0x20)
            putf(s, "\\u%04x", *p);
        else
            put(s, (const char *)p, 1);
    }
    put(s, "\"", 1);
}

static size_t numel(const weft_st_out *t) { return (size_t)t->shape[0] * (size_t)(t->ndim == 2 ? t->shape[1] : 1); }

/* The header, padded with spaces to a multiple of 8 bytes. */
static int header(const weft_st_out *t, int n, const char *const *meta, sbuf *s)
{
    put(s, "{", 1);
    if (meta && meta[0]) {
        put(s, "\"__metadata__\":{", 16);
        for (int i = 0; meta[i] && meta[i + 1]; i += 2) {
            if (i)
                put(s, ",", 1);
            put_str(s, meta[i]);
            put(s, ":", 1);
            put_str(s, meta[i + 1]);
        }
        put(s, "}", 1);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t bytes = numel(&t[i]) * sizeof(float);
        if (i || (meta && meta[0]))
            put(s, ",", 1);
        put_str(s, t[i].name);
        putf(s, ":{\"dtype\":\"F32\",\"shape\":[%lld", (long long)t[i].shape[0]);
        if (t[i].ndim == 2)
            putf(s, ",%lld", (long long)t[i].shape[1]);
        putf(s, "],\"data_offsets\":[%zu,%zu]}", off, off + bytes);
        off += bytes;
    }
    put(s, "}", 1);
    while (!s->oom && s->len % 8)
        put(s, " ", 1);
    return s->oom ? weft_error(WEFT_ENOMEM, "safetensors header: out of memory") : 0;
}

int weft_st_write(const char *path, const weft_st_out *t, int n, const char *const *meta)
{
    sbuf h = {0};
    weft_durable d;
    int rc = header(t, n, meta, &h);
    if (rc == 0)
        rc = weft_durable_open(&d, path, WEFT_DURABLE_SYNC);
    if (rc == 0) {
        unsigned char le[8];
        for (int i = 0; i < 8; i++)
            le[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
        long long off = 8 + (long long)h.len;
        weft_durable_write_at(&d, le, 8, 0);
        weft_durable_write_at(&d, h.b, h.len, 8);
        for (int i = 0; i < n; i++) {
            weft_durable_write_at(&d, t[i].data, numel(&t[i]) * sizeof(float), off);
            off += (long long)(numel(&t[i]) * sizeof(float));
        }
        rc = weft_durable_commit(&d);
    }
    free(h.b);
    return rc;
}
