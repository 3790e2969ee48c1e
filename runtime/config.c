/*
 * config.c -- declared configuration keys: checks of the key tables, INI
 * text and files, --config / --section.key=value arguments, typed getters,
 * the resolved configuration as INI, and the generated --help and Markdown.
 * config.h is the contract.
 *
 * A weft_config is one entry per declared key, in table order, each holding
 * its current value and where that value came from. Every value -- a table
 * default, a line of a file, a command-line override -- goes through the
 * same convert(), so the three can never disagree about what is valid.
 *
 * Invariants:
 *   1. An entry's value always passed convert() for its key.
 *   2. Parsing one text is all-or-nothing: lines are converted into a pending
 *      list that is committed only after the last line parsed, so a bad file
 *      leaves the configuration as it was. (parse_args applies several files
 *      and overrides in turn; a failure there ends the program anyway.)
 *   3. Input is bounded: a line to MAX_LINE bytes, a string value to MAX_STR,
 *      a declared name to MAX_NAME. Hence every line weft_config_to_ini
 *      writes (at most MAX_NAME + 2 * MAX_STR + 5 bytes) parses back.
 *
 * The grammar is small on purpose -- no includes, interpolation, multi-line
 * values or environment variables:
 *   line    = blank | comment | "[" section "]" [comment] | key "=" value [comment]
 *   comment = "#" or ";" and the rest of the line; after an unquoted value
 *             it must follow whitespace (so "a#b" is a value, "a #b" is "a")
 *   value   = text, trimmed | '"' text with \" and \\ escapes '"'
 * Lines end in LF or CRLF; a UTF-8 byte order mark at the start is skipped.
 */
#include "runtime/config.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/readfile.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_LINE 16384           /* bytes in one line, without its newline */
#define MAX_STR 4096             /* bytes in a string value (a path: PATH_MAX) */
#define MAX_NAME 64              /* bytes in a declared "section.key" */
#define MAX_FILE (16 << 20)      /* a config file larger than this is a mistake */
#define SHOWN 64                 /* bytes of a value or key quoted in a message */
#define SHOW_CAP (SHOWN * 4 + 8) /* room for SHOWN bytes escaped as \xNN, "..." */
#define HELP_WIDTH 100           /* columns of --help */

typedef union {
    int64_t i; /* INT, SIZE */
    double f;  /* FLOAT */
    bool b;    /* BOOL */
    char *s;   /* STRING, ENUM (the canonical choice); owned */
} value;

typedef struct {
    const weft_config_key *key;
    value v;
    char *origin;  /* owned "FILE:LINE" or caller's origin; NULL: "default" */
    size_t set_at; /* line of the text being parsed that set it; 0: none */
} entry;

struct weft_config {
    entry *e; /* (n) in table order */
    size_t n;
};

/* Where a value came from, for messages: "train.ini:12" or "command line". */
typedef struct {
    const char *origin;
    size_t line; /* 0: no line */
} src;

/* A converted line waiting for the whole text to parse (invariant 2). */
typedef struct {
    size_t idx;
    value v;
    char *origin;
} pending;

typedef struct {
    weft_config *cfg;
    src at;
    char section[MAX_NAME + 1]; /* current [section]; "" before the first */
    bool foreign;               /* the current section is another program's: skip its keys */
    pending *p;                 /* (np), room for cap */
    size_t np, cap;
} parser;

static const char *type_name(weft_config_type t)
{
    static const char *const names[] = {"int", "float", "bool", "string", "enum", "size"};
    return (unsigned)t <= WEFT_CFG_SIZE ? names[t] : "?";
}

/* ---- small text helpers ------------------------------------------------ */

static bool is_ws(char c) { return c == ' ' || c == '\t'; }

static bool is_str(weft_config_type t) { return t == WEFT_CFG_STRING || t == WEFT_CFG_ENUM; }

static bool is_comment(char c) { return c == '#' || c == ';'; }

/* Trims spaces and tabs at both ends, in place. */
static char *trim(char *s)
{
    while (is_ws(*s))
        s++;
    size_t n = strlen(s);
    while (n && is_ws(s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* True if s holds nothing but whitespace and perhaps a comment. */
static bool rest_is_comment(const char *s)
{
    while (is_ws(*s))
        s++;
    return !*s || is_comment(*s);
}

/* Length of the valid UTF-8 sequence (2-4 bytes) at s, or 0. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
    size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (n == 0 || n > avail || (n == 4 && s[0] < 0xf0))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 4 && s[0] == 0xf0 && s[1] < 0x90) ||
        (n == 4 && s[0] == 0xf4 && s[1] > 0x8f) || (n == 3 && s[0] == 0xed && s[1] > 0x9f))
        return 0; /* overlong, beyond U+10FFFF, or a surrogate */
    return n;
}

/* Copies len bytes of s into buf (SHOW_CAP bytes) for a message: printable
 * text and valid UTF-8 as is, other bytes as \xNN, and at most SHOWN bytes,
 * so a hostile value cannot flood or garble a terminal. With esc, '"' and
 * '\' are escaped too, for text the message puts between double quotes. */
static const char *show_text(char *buf, const char *s, size_t len, bool esc)
{
    size_t o = 0, i = 0;
    while (i < len && i < SHOWN) {
        unsigned char c = (unsigned char)s[i];
        size_t u = c >= 0x80 ? utf8_len((const unsigned char *)s + i, len - i) : 0;
        if (u) {
            memcpy(buf + o, s + i, u);
            o += u, i += u;
            continue;
        }
        if (esc && (c == '"' || c == '\\'))
            buf[o++] = '\\';
        if (c >= 0x20 && c < 0x7f)
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, 5, "\\x%02x", c);
        i++;
    }
    strcpy(buf + o, i < len ? "..." : "");
    return buf;
}

static const char *show(char *buf, const char *s, size_t len) { return show_text(buf, s, len, true); }

/* For a piece of a line as the user wrote it. */
static const char *show_raw(char *buf, const char *s, size_t len) { return show_text(buf, s, len, false); }

static size_t min2(size_t a, size_t b) { return a < b ? a : b; }

static bool same_ci(char a, char b) { return tolower((unsigned char)a) == tolower((unsigned char)b); }

/* Levenshtein distance ignoring case, with a swap of two neighbours counted
 * as one edit ("smh" -> "shm"), the commonest typo; SIZE_MAX for strings
 * too long to be a name. Rows: r0 two back, r1 previous, r2 current. */
static size_t distance(const char *a, size_t la, const char *b, size_t lb)
{
    size_t rows[3][2 * MAX_NAME + 3], *r0 = rows[0], *r1 = rows[1], *r2 = rows[2];
    if (la > 2 * MAX_NAME + 1 || lb > 2 * MAX_NAME + 1)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        r1[j] = j;
    for (size_t i = 1; i <= la; i++) {
        r2[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = !same_ci(a[i - 1], b[j - 1]);
            r2[j] = min2(min2(r1[j] + 1, r2[j - 1] + 1), r1[j - 1] + cost);
            if (i > 1 && j > 1 && same_ci(a[i - 1], b[j - 2]) && same_ci(a[i - 2], b[j - 1]))
                r2[j] = min2(r2[j], r0[j - 2] + 1);
        }
        size_t *t = r0;
        r0 = r1, r1 = r2, r2 = t;
    }
    return r1[lb];
}

/* A suggestion is worth making when at most a third of it differs. */
static bool close_enough(size_t d, size_t la, size_t lb)
{
    return d != SIZE_MAX && d * 3 <= (la > lb ? la : lb);
}

/* Steps through choices "a|b|c": returns the choice at *it, sets *len to
 * its length and moves *it past it; NULL after the last. */
static const char *next_choice(const char **it, size_t *len)
{
    const char *c = *it;
    if (!c)
        return NULL;
    *len = strcspn(c, "|");
    *it = c[*len] ? c + *len + 1 : NULL;
    return c;
}

static int fail(const char **why, const char *what)
{
    *why = what;
    return WEFT_ECONFIG;
}

static int nomem(const char *what)
{
    return weft_error(WEFT_ENOMEM, "config: out of memory while %s", what);
}

/* ---- the declared keys ---------------------------------------------- */

/* Every section some weft program reads. One job has one configuration, and
 * every program is handed all of it (weft-info and weft-bench get the
 * trainer's files), so a section another program reads is skipped, not
 * refused; any other unknown section is still a typo to report. A program
 * that declares a section of its own needs no entry here: its own sections
 * are always known. */
static const char *const weft_sections[] = {
    "checkpoint", "comm", "data", "log", "lora", "model", "optim", "parallel", "run", "sched", "trace", "train", NULL,
};

static bool weft_section(const char *sec, size_t len)
{
    for (size_t i = 0; weft_sections[i]; i++)
        if (strlen(weft_sections[i]) == len && strncmp(weft_sections[i], sec, len) == 0)
            return true;
    return false;
}

static bool find(const weft_config *cfg, const char *name, size_t *idx)
{
    for (size_t i = 0; i < cfg->n; i++) {
        if (strcmp(cfg->e[i].key->name, name) == 0) {
            *idx = i;
            return true;
        }
    }
    return false;
}

/* Length of the section part of a declared name ("comm" of "comm.timeout"). */
static size_t sec_len(const char *name) { return strcspn(name, "."); }

static bool same_section(const char *name, const char *sec, size_t len)
{
    return sec_len(name) == len && strncmp(name, sec, len) == 0;
}

/* True if no key before entry i is in entry i's section: i opens it. */
static bool first_of_section(const weft_config *cfg, size_t i)
{
    const char *name = cfg->e[i].key->name;
    for (size_t j = 0; j < i; j++)
        if (same_section(cfg->e[j].key->name, name, sec_len(name)))
            return false;
    return true;
}

static bool section_known(const weft_config *cfg, const char *sec, size_t len)
{
    for (size_t i = 0; i < cfg->n; i++)
        if (same_section(cfg->e[i].key->name, sec, len))
            return true;
    return false;
}

/* "comm, data, train": the known sections in table order. */
static const char *section_list(const weft_config *cfg, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < cfg->n && o < cap; i++) {
        const char *name = cfg->e[i].key->name;
        if (first_of_section(cfg, i))
            o += (size_t)snprintf(buf + o, cap - o, "%s%.*s", o ? ", " : "", (int)sec_len(name), name);
    }
    return buf;
}

/* "comm.a, comm.b": the keys of one section. */
static const char *key_list(const weft_config *cfg, const char *sec, size_t len, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < cfg->n && o < cap; i++)
        if (same_section(cfg->e[i].key->name, sec, len))
            o += (size_t)snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", cfg->e[i].key->name);
    return buf;
}

/* The declared key closest to name, or NULL if none is close enough. */
static const char *closest_key(const weft_config *cfg, const char *name)
{
    const char *best = NULL;
    size_t bd = SIZE_MAX, ln = strlen(name);
    for (size_t i = 0; i < cfg->n; i++) {
        const char *k = cfg->e[i].key->name;
        size_t d = distance(name, ln, k, strlen(k));
        if (d < bd && close_enough(d, ln, strlen(k)))
            bd = d, best = k;
    }
    return best;
}

/* The entry whose section is closest to sec, or SIZE_MAX. */
static size_t closest_section(const weft_config *cfg, const char *sec, size_t len)
{
    size_t best = SIZE_MAX, bd = SIZE_MAX;
    for (size_t i = 0; i < cfg->n; i++) {
        const char *k = cfg->e[i].key->name;
        size_t d = distance(sec, len, k, sec_len(k));
        if (d < bd && close_enough(d, len, sec_len(k)))
            bd = d, best = i;
    }
    return best;
}

/* ---- formatting values and what is allowed ------------------------------ */

/* Shortest text that reads back as exactly x; whole numbers without an
 * exponent ("86400", not "8.64e+04"). */
static void fmt_double(char *buf, size_t cap, double x)
{
    if (x == floor(x) && fabs(x) < 1e15 && !(x == 0 && signbit(x))) {
        snprintf(buf, cap, "%.0f", x);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            return;
    }
}

/* Bytes in the largest binary unit that divides them: "64MiB", "4 KiB". */
static void fmt_size(char *buf, size_t cap, int64_t x, const char *sep)
{
    static const char *const unit[] = {"TiB", "GiB", "MiB", "KiB"};
    for (int u = 0; u < 4; u++) {
        int64_t m = (int64_t)1 << (40 - 10 * u);
        if (x >= m && x % m == 0) {
            snprintf(buf, cap, "%" PRId64 "%s%s", x / m, sep, unit[u]);
            return;
        }
    }
    snprintf(buf, cap, "%" PRId64, x);
}

/* A range bound as a person reads it: "86400", "0.001", "1 GiB". */
static void fmt_bound(char *buf, size_t cap, weft_config_type t, double x)
{
    bool whole = x == floor(x) && fabs(x) < 9e18;
    if (t == WEFT_CFG_SIZE && whole && x >= 0)
        fmt_size(buf, cap, (int64_t)x, " ");
    else if (t == WEFT_CFG_INT && whole)
        snprintf(buf, cap, "%.0f", x);
    else
        fmt_double(buf, cap, x);
}

static bool bounded(const weft_config_key *k) { return k->min <= k->max; }

/* "[1, 86400]" or "no limit". */
static const char *range_text(const weft_config_key *k, char *buf, size_t cap)
{
    char lo[48], hi[48];
    if (!bounded(k))
        return "no limit";
    fmt_bound(lo, sizeof lo, k->type, k->min);
    fmt_bound(hi, sizeof hi, k->type, k->max);
    snprintf(buf, cap, "[%s, %s]", lo, hi);
    return buf;
}

/* What a message says is allowed: "float in [1, 86400]", "one of a|b". */
static const char *allowed_text(const weft_config_key *k, char *buf, size_t cap)
{
    static const char *const word[] = {"integer", "float", "", "", "", "size"};
    char r[128];
    switch (k->type) {
    case WEFT_CFG_BOOL:
        return "true/false, yes/no, on/off, 1/0";
    case WEFT_CFG_STRING:
        return "text of at most 4096 bytes without control characters";
    case WEFT_CFG_ENUM:
        snprintf(buf, cap, "one of %s", k->choices);
        return buf;
    default:
        snprintf(buf, cap, bounded(k) ? "%s in %s" : "%s, %s", word[k->type], range_text(k, r, sizeof r));
        return buf;
    }
}

/* ---- converting text to values ------------------------------------------ */

static bool in_range(const weft_config_key *k, double x)
{
    return !bounded(k) || (x >= k->min && x <= k->max);
}

/* strtoll and strtod skip leading white space; a value may not start with it. */
static bool starts_ok(const char *t) { return *t && !isspace((unsigned char)*t); }

static int conv_int(const weft_config_key *k, const char *t, int64_t *out, const char **why)
{
    char *end;
    errno = 0;
    long long x = starts_ok(t) ? strtoll(t, &end, 10) : 0;
    if (!starts_ok(t) || *end)
        return fail(why, "is not an integer");
    if (errno == ERANGE || !in_range(k, (double)x))
        return fail(why, "is out of range");
    *out = x;
    return 0;
}

static int conv_float(const weft_config_key *k, const char *t, double *out, const char **why)
{
    char *end;
    double x = starts_ok(t) ? strtod(t, &end) : 0;
    if (!starts_ok(t) || *end)
        return fail(why, "is not a number");
    if (!isfinite(x))
        return fail(why, "is not a finite number");
    if (!in_range(k, x))
        return fail(why, "is out of range");
    *out = x;
    return 0;
}

static int conv_bool(const char *t, bool *out, const char **why)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(t, yes[i]) == 0 || strcasecmp(t, no[i]) == 0) {
            *out = strcasecmp(t, yes[i]) == 0;
            return 0;
        }
    }
    return fail(why, "is not a boolean");
}

/* Strings are paths, hosts and names: a control character in one is a
 * mistake, and refusing them keeps every value writable on one INI line. */
static int conv_str(const char *t, char **out, const char **why)
{
    size_t n = strlen(t);
    if (n > MAX_STR)
        return fail(why, "is too long");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return fail(why, "contains a control character");
    }
    *out = strdup(t);
    return *out ? 0 : WEFT_ENOMEM;
}

/* Choices match without regard to case; the value kept is the declared one. */
static int conv_enum(const weft_config_key *k, const char *t, char **out, const char **why)
{
    const char *it = k->choices, *c;
    size_t len, n = strlen(t);
    while ((c = next_choice(&it, &len))) {
        if (len == n && strncasecmp(c, t, n) == 0) {
            *out = strndup(c, len);
            return *out ? 0 : WEFT_ENOMEM;
        }
    }
    return fail(why, "is not one of the choices");
}

/* Multiplier of a size suffix (K, KiB, ... case-insensitive), or 0. */
static int64_t size_unit(const char *s)
{
    static const char *const sfx[] = {"", "b", "k", "kib", "m", "mib", "g", "gib", "t", "tib"};
    static const int shift[] = {0, 0, 10, 10, 20, 20, 30, 30, 40, 40};
    while (is_ws(*s))
        s++;
    for (int i = 0; i < 10; i++)
        if (strcasecmp(s, sfx[i]) == 0)
            return (int64_t)1 << shift[i];
    return 0;
}

static int conv_size(const weft_config_key *k, const char *t, int64_t *out, const char **why)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)t[0]))
        return fail(why, "is not a byte count with an optional K/M/G/T (or KiB/MiB/GiB/TiB) suffix");
    unsigned long long n = strtoull(t, &end, 10);
    int64_t unit = size_unit(end);
    if (!unit)
        return fail(why, "is not a byte count with an optional K/M/G/T (or KiB/MiB/GiB/TiB) suffix");
    if (errno == ERANGE || n > (unsigned long long)(INT64_MAX / unit))
        return fail(why, "is too large");
    if (!in_range(k, (double)((int64_t)n * unit)))
        return fail(why, "is out of range");
    *out = (int64_t)n * unit;
    return 0;
}

int weft_size_parse(const char *text, int64_t *out)
{
    static const weft_config_key any = {"size", WEFT_CFG_SIZE, "0", 0, 9.2e18, NULL, "a byte count"};
    const char *why = NULL;
    return conv_size(&any, text, out, &why) == 0 ? 0 : WEFT_ECONFIG;
}

/* Converts text to a value of k's type. Returns 0, WEFT_ENOMEM, or
 * WEFT_ECONFIG with *why saying what is wrong ("is not a number"). */
static int convert(const weft_config_key *k, const char *t, value *v, const char **why)
{
    switch (k->type) {
    case WEFT_CFG_INT: return conv_int(k, t, &v->i, why);
    case WEFT_CFG_FLOAT: return conv_float(k, t, &v->f, why);
    case WEFT_CFG_BOOL: return conv_bool(t, &v->b, why);
    case WEFT_CFG_STRING: return conv_str(t, &v->s, why);
    case WEFT_CFG_ENUM: return conv_enum(k, t, &v->s, why);
    case WEFT_CFG_SIZE: return conv_size(k, t, &v->i, why);
    }
    return fail(why, "has an undeclared type");
}

static void value_free(const weft_config_key *k, value *v)
{
    if (is_str(k->type))
        free(v->s);
    v->s = NULL;
}

/* "; did you mean 'shm'?" for a misspelt enum choice, else "". */
static const char *choice_hint(const weft_config_key *k, const char *t, char *buf, size_t cap)
{
    size_t bd = SIZE_MAX, lt = strlen(t), bl = 0, len;
    const char *best = NULL, *it = k->choices, *c;
    buf[0] = '\0';
    while ((c = next_choice(&it, &len))) {
        size_t d = distance(t, lt, c, len);
        if (d < bd && close_enough(d, lt, len))
            bd = d, best = c, bl = len;
    }
    if (best)
        snprintf(buf, cap, "; did you mean '%.*s'?", (int)bl, best);
    return buf;
}

static const char *where(const src *at, char *buf, size_t cap)
{
    if (at->line)
        snprintf(buf, cap, "%s:%zu", at->origin, at->line);
    else
        snprintf(buf, cap, "%s", at->origin);
    return buf;
}

/* The message for a value its key does not allow. */
static int value_error(int rc, const src *at, const weft_config_key *k, const char *t, const char *why)
{
    char w[512], val[SHOW_CAP], allowed[256], hint[96] = "";
    if (k->type == WEFT_CFG_ENUM)
        choice_hint(k, t, hint, sizeof hint);
    return weft_error(rc, "config: %s: %s = \"%s\" %s (%s)%s", where(at, w, sizeof w), k->name,
                      show(val, t, strlen(t)), why, allowed_text(k, allowed, sizeof allowed), hint);
}

/* Converts t for k, reporting a bad value as a WEFT_ECONFIG at 'at'. */
static int convert_at(const src *at, const weft_config_key *k, const char *t, value *v)
{
    const char *why = NULL;
    int rc = convert(k, t, v, &why);
    if (rc == WEFT_ECONFIG)
        return value_error(rc, at, k, t, why);
    return rc == WEFT_ENOMEM ? nomem("storing a value") : rc;
}

/* The message for a name that no table declares. */
static int unknown_key(const weft_config *cfg, const src *at, const char *name)
{
    char w[512], shown[SHOW_CAP], sec[SHOW_CAP], list[512], hint[MAX_NAME + 32] = "";
    size_t sl = sec_len(name);
    const char *best = closest_key(cfg, name);
    if (best)
        snprintf(hint, sizeof hint, "; did you mean '%s'?", best);
    where(at, w, sizeof w);
    show_raw(shown, name, strlen(name));
    if (!name[sl])
        return weft_error(WEFT_ECONFIG, "config: %s: unknown key '%s': keys are named section.key "
                          "(known sections: %s)%s", w, shown, section_list(cfg, list, sizeof list), hint);
    if (!section_known(cfg, name, sl))
        return weft_error(WEFT_ECONFIG, "config: %s: unknown key '%s': there is no section [%s] "
                          "(known sections: %s)%s", w, shown, show_raw(sec, name, sl),
                          section_list(cfg, list, sizeof list), hint);
    if (best)
        return weft_error(WEFT_ECONFIG, "config: %s: unknown key '%s'%s", w, shown, hint);
    return weft_error(WEFT_ECONFIG, "config: %s: unknown key '%s' (section [%.*s] has %s)", w, shown,
                      (int)sl, name, key_list(cfg, name, sl, list, sizeof list));
}

/* ---- the configuration object ------------------------------------------- */

/* Replaces entry e's value and origin with v and origin, which it takes. */
static void assign(entry *e, value v, char *origin)
{
    value_free(e->key, &e->v);
    free(e->origin);
    e->v = v;
    e->origin = origin;
}

static int table_bug(const char *name, const char *what)
{
    char shown[SHOW_CAP];
    return weft_error(WEFT_EINTERNAL, "config: bug in a key table: '%s' %s",
                      name ? show_raw(shown, name, strlen(name)) : "(null)", what);
}

/* "section.key": lower-case letters, digits and '_', each part non-empty and
 * starting with a letter. */
static bool name_ok(const char *name)
{
    size_t dot = sec_len(name), n = strlen(name);
    if (n > MAX_NAME || dot == 0 || dot >= n - 1 || !islower((unsigned char)name[dot + 1]) ||
        !islower((unsigned char)name[0]))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (i != dot && !(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '_'))
            return false;
    }
    return true;
}

/* Choices are words that never need quoting: "auto|mpi|shm". */
static bool choices_ok(const char *ch)
{
    if (!ch || !*ch || *ch == '|' || ch[strlen(ch) - 1] == '|' || strstr(ch, "||"))
        return false;
    for (const char *c = ch; *c; c++)
        if (!isgraph((unsigned char)*c) || strchr("\"\\#;=[]", *c))
            return false;
    const char *it = ch, *c, *d;
    size_t len, dl;
    while ((c = next_choice(&it, &len))) { /* no choice twice, in any case */
        const char *rest = it;
        while ((d = next_choice(&rest, &dl)))
            if (dl == len && strncasecmp(c, d, len) == 0)
                return false;
    }
    return true;
}

/* Checks the declaration of entry i, then sets it to its default. */
static int declare(weft_config *cfg, size_t i)
{
    const weft_config_key *k = cfg->e[i].key;
    size_t j;
    if (!k->name || !name_ok(k->name))
        return table_bug(k->name, "is not a lower-case name of the form section.key");
    if (find(cfg, k->name, &j) && j < i)
        return table_bug(k->name, "is declared twice");
    if ((unsigned)k->type > WEFT_CFG_SIZE)
        return table_bug(k->name, "has no valid type");
    if (!k->def || !k->doc || strchr(k->doc, '\n'))
        return table_bug(k->name, "needs a default and a one-line doc");
    if (k->type == WEFT_CFG_ENUM && !choices_ok(k->choices))
        return table_bug(k->name, "needs choices like \"a|b|c\" (distinct words, no spaces)");
    if (isnan(k->min) || isnan(k->max))
        return table_bug(k->name, "has a NaN bound");
    const char *why = NULL;
    int rc = convert(k, k->def, &cfg->e[i].v, &why);
    if (rc == WEFT_ECONFIG)
        return value_error(WEFT_EINTERNAL, &(src){"bug in a key table, the default", 0}, k, k->def, why);
    return rc == WEFT_ENOMEM ? nomem("creating the configuration") : rc;
}

int weft_config_new(const weft_config_key *const *tables, weft_config **out)
{
    size_t n = 0;
    if (!out || !tables)
        return weft_error(WEFT_EINVAL, "config: weft_config_new needs tables and out");
    *out = NULL;
    for (size_t t = 0; tables[t]; t++)
        for (const weft_config_key *k = tables[t]; k->name; k++)
            n++;
    weft_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg || !(cfg->e = calloc(n ? n : 1, sizeof *cfg->e))) {
        free(cfg);
        return nomem("creating the configuration");
    }
    for (size_t t = 0; tables[t]; t++)
        for (const weft_config_key *k = tables[t]; k->name; k++)
            cfg->e[cfg->n++].key = k;
    for (size_t i = 0; i < n; i++) {
        int rc = declare(cfg, i);
        if (rc < 0) {
            weft_config_free(cfg);
            return rc;
        }
    }
    *out = cfg;
    return 0;
}

void weft_config_free(weft_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n; i++)
        assign(&cfg->e[i], (value){.s = NULL}, NULL);
    free(cfg->e);
    free(cfg);
}

/* ---- parsing INI text ---------------------------------------------------- */

/* A WEFT_ECONFIG about the current line: "config: FILE:LINE: " + fmt. */
__attribute__((format(printf, 2, 3))) static int syntax(const parser *p, const char *fmt, ...)
{
    char w[512], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return weft_error(WEFT_ECONFIG, "config: %s: %s", where(&p->at, w, sizeof w), msg);
}

#define MALFORMED "malformed section header '%s' (expected [name], a name of letters, digits, '_', '-')"

/* "[name]" with an optional comment after it. */
static int parse_section(parser *p, char *s)
{
    char *close = strchr(s, ']'), shown[SHOW_CAP], list[512], hint[MAX_NAME + 32] = "";
    show_raw(shown, s, close && rest_is_comment(close + 1) ? (size_t)(close + 1 - s) : strlen(s));
    if (!close || !rest_is_comment(close + 1))
        return syntax(p, MALFORMED, shown);
    *close = '\0';
    char *name = trim(s + 1);
    size_t len = strlen(name);
    if (!len || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != len)
        return syntax(p, MALFORMED, shown);
    p->foreign = !section_known(p->cfg, name, len) && weft_section(name, len);
    if (section_known(p->cfg, name, len) || p->foreign) {
        memcpy(p->section, name, len + 1); /* known, so len <= MAX_NAME */
        return 0;
    }
    size_t best = closest_section(p->cfg, name, len);
    if (best != SIZE_MAX)
        snprintf(hint, sizeof hint, "; did you mean [%.*s]?", (int)sec_len(p->cfg->e[best].key->name),
                 p->cfg->e[best].key->name);
    return syntax(p, "unknown section [%s]%s (known sections: %s)", show_raw(shown, name, len), hint,
                  section_list(p->cfg, list, sizeof list));
}

/* Unescapes a quoted value in place: s points at the opening quote. */
static int unquote(const parser *p, const char *name, char *s, char **out)
{
    char *o = s, *r = s + 1, shown[SHOW_CAP], esc[SHOW_CAP];
    show_raw(shown, s, strlen(s)); /* before the loop rewrites s */
    for (; *r && *r != '"' && !(*r == '\\' && !r[1]); r++) {
        if (*r == '\\' && r[1] != '"' && r[1] != '\\')
            return syntax(p, "%s = %s has an unknown escape '%s' (a quoted value allows only "
                          "\\\" and \\\\)", name, shown, show_raw(esc, r, 2));
        *o++ = *r == '\\' ? *++r : *r;
    }
    if (*r != '"')
        return syntax(p, "%s = %s has no closing '\"'", name, shown);
    if (!rest_is_comment(r + 1))
        return syntax(p, "%s = %s: unexpected text after the closing quote", name, shown);
    *o = '\0';
    *out = s;
    return 0;
}

/* The value text of "key = raw": unquoted, or cut at a trailing comment. */
static int value_text(const parser *p, const char *name, char *raw, char **out)
{
    if (*raw == '"')
        return unquote(p, name, raw, out);
    for (char *c = raw; *c; c++) {
        if (is_comment(*c) && (c == raw || is_ws(c[-1]))) {
            *c = '\0';
            break;
        }
    }
    *out = trim(raw);
    return 0;
}

static int outside_section(const parser *p, const char *key)
{
    char shown[SHOW_CAP], sec[SHOW_CAP], hint[SHOW_CAP + 32] = "";
    size_t sl = sec_len(key);
    if (key[sl])
        snprintf(hint, sizeof hint, ", e.g. [%s]", show_raw(sec, key, sl));
    return syntax(p, "key '%s' is outside any section; put it under a [section] header%s",
                  show_raw(shown, key, strlen(key)), hint);
}

/* Queues the converted value of entry idx for commit (invariant 2). */
static int add_pending(parser *p, size_t idx, const char *text)
{
    entry *e = &p->cfg->e[idx];
    char w[512];
    if (e->set_at)
        return syntax(p, "duplicate key '%s' (already set at line %zu; a key may appear once per file)",
                      e->key->name, e->set_at);
    if (p->np == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        pending *np = realloc(p->p, cap * sizeof *np);
        if (!np)
            return nomem("parsing");
        p->p = np, p->cap = cap;
    }
    pending *q = &p->p[p->np];
    WEFT_CHECK(convert_at(&p->at, e->key, text, &q->v));
    if (!(q->origin = strdup(where(&p->at, w, sizeof w)))) {
        value_free(e->key, &q->v);
        return nomem("parsing");
    }
    q->idx = idx;
    p->np++;
    e->set_at = p->at.line;
    return 0;
}

static int parse_assignment(parser *p, char *s)
{
    char name[2 * MAX_NAME + 2], shown[SHOW_CAP], *eq = strchr(s, '='), *text = NULL;
    size_t idx;
    if (!eq)
        return syntax(p, "expected 'key = value' or '[section]', got '%s'", show_raw(shown, s, strlen(s)));
    *eq = '\0';
    char *key = trim(s), *raw = trim(eq + 1);
    if (!*key)
        return syntax(p, "no key before '=' (value '%s')", show_raw(shown, raw, strlen(raw)));
    if (!p->section[0])
        return outside_section(p, key);
    if (p->foreign)
        return 0; /* another program's key: that program checks it */
    /* A key too long to be declared is cut here, and then matches nothing. */
    snprintf(name, sizeof name, "%s.%s", p->section, key);
    if (!find(p->cfg, name, &idx))
        return unknown_key(p->cfg, &p->at, name);
    WEFT_CHECK(value_text(p, name, raw, &text));
    return add_pending(p, idx, text);
}

static int parse_line(parser *p, char *s)
{
    s = trim(s);
    if (!*s || is_comment(*s))
        return 0;
    if (*s == '[')
        return parse_section(p, s);
    return parse_assignment(p, s);
}

/* Copies one line (without its LF or CRLF) into buf, NUL-terminated. */
static int take_line(const parser *p, const char *s, size_t len, char *buf)
{
    if (len && s[len - 1] == '\r')
        len--;
    if (len > MAX_LINE)
        return syntax(p, "line is longer than %d bytes", MAX_LINE);
    if (memchr(s, '\0', len))
        return syntax(p, "line contains a NUL byte; is this a text file?");
    memcpy(buf, s, len);
    buf[len] = '\0';
    return 0;
}

static int parse_lines(parser *p, const char *text, size_t len)
{
    char buf[MAX_LINE + 1];
    size_t pos = len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        p->at.line++;
        WEFT_CHECK(take_line(p, text + pos, end - pos, buf));
        WEFT_CHECK(parse_line(p, buf));
        pos = end + 1;
    }
    return 0;
}

int weft_config_parse_string(weft_config *cfg, const char *text, size_t len, const char *origin)
{
    if (!cfg || (!text && len))
        return weft_error(WEFT_EINVAL, "config: weft_config_parse_string needs a config and text");
    parser p = {.cfg = cfg, .at = {origin ? origin : "(string)", 0}};
    for (size_t i = 0; i < cfg->n; i++)
        cfg->e[i].set_at = 0;
    int rc = parse_lines(&p, text, len);
    for (size_t i = 0; i < p.np; i++) {
        entry *e = &cfg->e[p.p[i].idx];
        if (rc == 0) {
            assign(e, p.p[i].v, p.p[i].origin);
        } else {
            value_free(e->key, &p.p[i].v);
            free(p.p[i].origin);
        }
    }
    free(p.p);
    return rc;
}

int weft_config_load_file(weft_config *cfg, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    if (!cfg || !path)
        return weft_error(WEFT_EINVAL, "config: weft_config_load_file needs a config and a path");
    int rc = weft_read_file(path, MAX_FILE, "the config file", &text, &len);
    if (rc)
        return weft_error(rc, "config: %s; check the --config path", weft_last_error());
    rc = weft_config_parse_string(cfg, text, len, path);
    free(text);
    return rc;
}

int weft_config_set(weft_config *cfg, const char *key, const char *text, const char *origin)
{
    src at = {origin ? origin : "command line", 0};
    size_t idx;
    value v;
    if (!cfg || !key || !text)
        return weft_error(WEFT_EINVAL, "config: weft_config_set needs a config, a key and a value");
    if (!find(cfg, key, &idx))
        return unknown_key(cfg, &at, key);
    WEFT_CHECK(convert_at(&at, cfg->e[idx].key, text, &v));
    char *o = strdup(at.origin);
    if (!o) {
        value_free(cfg->e[idx].key, &v);
        return nomem("setting a value");
    }
    assign(&cfg->e[idx], v, o);
    return 0;
}

/* ---- adopting a stored configuration's values ------------------------------ */

/* Whether names selects key: its exact name, or its section as "sec.". */
static bool selected(const char *const *names, const char *key)
{
    for (size_t i = 0; names[i]; i++) {
        size_t n = strlen(names[i]);
        if (n && names[i][n - 1] == '.' ? strncmp(key, names[i], n) == 0 : strcmp(key, names[i]) == 0)
            return true;
    }
    return false;
}

/* The lines of text (len bytes) that set a key names selects, each under
 * its section's header (malloc'ed, *out_len bytes): whatever else the text
 * holds, another program's sections included, is never parsed. */
static char *selected_lines(const char *text, size_t len, const char *const *names, size_t *out_len)
{
    size_t lines = 1, n = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    char *out = malloc(len + 1 + lines * (MAX_NAME + 4)), sec[MAX_NAME + 1] = ""; /* a header per line at most */
    bool header_out = false;
    for (size_t a = 0; out && a < len;) {
        size_t b = a;
        while (b < len && text[b] != '\n')
            b++;
        const char *s = text + a, *e = text + b;
        while (s < e && is_ws(*s))
            s++;
        const char *close = *s == '[' ? memchr(s, ']', (size_t)(e - s)) : NULL;
        if (close && (size_t)(close - s - 1) <= MAX_NAME) {
            snprintf(sec, sizeof sec, "%.*s", (int)(close - s - 1), s + 1);
            header_out = false;
        } else if (s < e && !is_comment(*s) && memchr(s, '=', (size_t)(e - s))) {
            const char *k = s;
            while (k < e && *k != '=' && !is_ws(*k))
                k++;
            char name[2 * MAX_NAME + 2];
            snprintf(name, sizeof name, "%s.%.*s", sec, (int)(k - s), s);
            if (*sec && selected(names, name)) {
                if (!header_out)
                    n += (size_t)sprintf(out + n, "[%s]\n", sec);
                header_out = true;
                memcpy(out + n, text + a, b - a);
                n += b - a;
                out[n++] = '\n';
            }
        }
        a = b + 1;
    }
    *out_len = n;
    return out;
}

int weft_config_adopt(weft_config *cfg, const char *text, size_t len, const char *origin, const char *const *names)
{
    size_t klen;
    char *kept = selected_lines(text, len, names, &klen);
    weft_config tmp = {calloc(cfg->n ? cfg->n : 1, sizeof *tmp.e), 0};
    if (!kept || !tmp.e) {
        free(kept);
        free(tmp.e);
        return nomem("adopting a stored configuration");
    }
    int rc = 0;
    for (size_t i = 0; i < cfg->n && rc == 0; i++, tmp.n++) {
        tmp.e[i].key = cfg->e[i].key;
        rc = declare(&tmp, i);
    }
    if (rc == 0)
        rc = weft_config_parse_string(&tmp, kept, klen, origin);
    for (size_t i = 0; i < cfg->n && rc == 0; i++) {
        if (cfg->e[i].origin || !tmp.e[i].origin || !selected(names, cfg->e[i].key->name))
            continue;
        char *o = strdup(origin);
        if (!o) {
            rc = nomem("adopting a stored configuration");
            break;
        }
        assign(&cfg->e[i], tmp.e[i].v, o);
        tmp.e[i].v.s = NULL; /* moved */
    }
    for (size_t i = 0; i < tmp.n; i++)
        assign(&tmp.e[i], (value){.s = NULL}, NULL);
    free(tmp.e);
    free(kept);
    return rc;
}

/* ---- command-line arguments --------------------------------------------- */

enum { ARG_KEEP, ARG_CONFIG, ARG_CONFIG_FILE, ARG_CONFIG_EQ, ARG_SET };

/* "--section.key..." : a name with a dot before any '='. */
static bool is_override(const char *a)
{
    size_t n;
    if (a[0] != '-' || a[1] != '-')
        return false;
    n = strcspn(a + 2, "=");
    return n > 0 && memchr(a + 2, '.', n) != NULL;
}

static int classify_one(int argc, char **argv, int i, unsigned char *kind)
{
    const char *a = argv[i];
    if (strcmp(a, "--config") == 0) {
        if (i + 1 >= argc || strcmp(argv[i + 1], "--") == 0)
            return weft_error(WEFT_ECONFIG, "config: command line: --config needs a file: "
                              "--config FILE or --config=FILE");
        kind[i] = ARG_CONFIG;
        kind[i + 1] = ARG_CONFIG_FILE;
        return 1;
    }
    if (strncmp(a, "--config=", 9) == 0) {
        if (!a[9])
            return weft_error(WEFT_ECONFIG, "config: command line: --config= needs a file: --config=FILE");
        kind[i] = ARG_CONFIG_EQ;
    } else if (is_override(a)) {
        char shown[SHOW_CAP];
        if (!strchr(a, '='))
            return weft_error(WEFT_ECONFIG, "config: command line: '%s' has no value; write %s=VALUE "
                              "(the form '%s VALUE' is not accepted)", show_raw(shown, a, strlen(a)), shown, shown);
        kind[i] = ARG_SET;
    }
    return 0;
}

/* Marks each of weft's arguments, checking their form before anything is
 * applied. Returns 0 or a negative code. */
static int classify(int argc, char **argv, unsigned char *kind)
{
    for (int i = 1; i < argc && argv[i] && strcmp(argv[i], "--") != 0; i++) {
        int rc = classify_one(argc, argv, i, kind);
        if (rc < 0)
            return rc;
        i += rc;
    }
    return 0;
}

static int apply_override(weft_config *cfg, const char *a)
{
    size_t n = strcspn(a + 2, "="), sl = sec_len(a + 2);
    if (!section_known(cfg, a + 2, sl) && weft_section(a + 2, sl))
        return 0; /* --model.n_layer=4 given to every program of a job: the trainer's to check */
    char *key = strndup(a + 2, n);
    if (!key)
        return nomem("reading the command line");
    int rc = weft_config_set(cfg, key, a + 2 + n + 1, "command line");
    free(key);
    return rc;
}

static int apply_args(weft_config *cfg, int argc, char **argv, const unsigned char *kind)
{
    for (int i = 1; i < argc; i++) {
        if (kind[i] == ARG_CONFIG_FILE)
            WEFT_CHECK(weft_config_load_file(cfg, argv[i]));
        else if (kind[i] == ARG_CONFIG_EQ)
            WEFT_CHECK(weft_config_load_file(cfg, argv[i] + 9));
    }
    for (int i = 1; i < argc; i++)
        if (kind[i] == ARG_SET)
            WEFT_CHECK(apply_override(cfg, argv[i]));
    return 0;
}

int weft_config_parse_args(weft_config *cfg, int *argc, char **argv)
{
    if (!cfg || !argc || *argc < 0 || (*argc > 0 && !argv))
        return weft_error(WEFT_EINVAL, "config: weft_config_parse_args needs a config, argc and argv");
    int n = *argc, kept = n ? 1 : 0;
    unsigned char *kind = calloc((size_t)n + 1, 1);
    if (!kind)
        return nomem("reading the command line");
    int rc = classify(n, argv, kind);
    if (rc == 0)
        rc = apply_args(cfg, n, argv, kind);
    if (rc == 0) { /* argv changes only on success */
        for (int i = 1; i < n; i++)
            if (kind[i] == ARG_KEEP)
                argv[kept++] = argv[i];
        if (n)
            argv[kept] = NULL; /* argv[argc] is NULL by C's rule; keep it so */
        *argc = kept;
    }
    free(kind);
    return rc;
}

/* ---- getters --------------------------------------------------------------- */

/* The entry for key, which must be declared with type a or b. */
static const entry *get(const weft_config *cfg, const char *key, int a, int b, const char *fn)
{
    size_t idx;
    if (!cfg || !key || !find(cfg, key, &idx))
        weft_bug("config: %s(\"%s\"): no such key is declared; the program reads a key none of its tables "
                 "declares (declare it in its module's key table)", fn, key ? key : "(null)");
    const entry *e = &cfg->e[idx];
    if ((int)e->key->type != a && (int)e->key->type != b)
        weft_bug("config: %s(\"%s\"): the key is declared as %s; read it with that type's getter", fn, key,
                 type_name(e->key->type));
    return e;
}

int64_t weft_config_int(const weft_config *cfg, const char *key)
{
    return get(cfg, key, WEFT_CFG_INT, WEFT_CFG_SIZE, "weft_config_int")->v.i;
}

double weft_config_float(const weft_config *cfg, const char *key)
{
    return get(cfg, key, WEFT_CFG_FLOAT, -1, "weft_config_float")->v.f;
}

bool weft_config_bool(const weft_config *cfg, const char *key)
{
    return get(cfg, key, WEFT_CFG_BOOL, -1, "weft_config_bool")->v.b;
}

const char *weft_config_str(const weft_config *cfg, const char *key)
{
    return get(cfg, key, WEFT_CFG_STRING, WEFT_CFG_ENUM, "weft_config_str")->v.s;
}

bool weft_config_has(const weft_config *cfg, const char *key)
{
    size_t idx;
    return cfg && key && find(cfg, key, &idx);
}

const char *weft_config_origin(const weft_config *cfg, const char *key)
{
    size_t idx;
    if (!cfg || !key || !find(cfg, key, &idx))
        weft_bug("config: weft_config_origin(\"%s\"): no such key is declared", key ? key : "(null)");
    return cfg->e[idx].origin ? cfg->e[idx].origin : "default";
}

/* ---- the resolved configuration as INI ------------------------------------ */

typedef struct {
    char *b;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *sb, const char *s, size_t len)
{
    if (sb->oom)
        return;
    if (sb->n + len + 1 > sb->cap) {
        size_t cap = (sb->n + len + 1) * 2;
        char *b = realloc(sb->b, cap);
        if (!b) {
            sb->oom = true;
            return;
        }
        sb->b = b, sb->cap = cap;
    }
    memcpy(sb->b + sb->n, s, len);
    sb->n += len;
    sb->b[sb->n] = '\0';
}

static void sb_str(sbuf *sb, const char *s) { sb_add(sb, s, strlen(s)); }

/* A string needs quotes if trimming or comment cutting would change it. */
static bool needs_quotes(const char *s)
{
    size_t n = strlen(s);
    return !n || is_ws(s[0]) || is_ws(s[n - 1]) || strpbrk(s, "\"\\#;");
}

static void sb_quoted(sbuf *sb, const char *s)
{
    sb_add(sb, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            sb_add(sb, "\\", 1);
        sb_add(sb, s, 1);
    }
    sb_add(sb, "\"", 1);
}

static void sb_value(sbuf *sb, const entry *e)
{
    char num[64];
    switch (e->key->type) {
    case WEFT_CFG_INT: snprintf(num, sizeof num, "%" PRId64, e->v.i); break;
    case WEFT_CFG_FLOAT: fmt_double(num, sizeof num, e->v.f); break;
    case WEFT_CFG_BOOL: snprintf(num, sizeof num, "%s", e->v.b ? "true" : "false"); break;
    case WEFT_CFG_SIZE: fmt_size(num, sizeof num, e->v.i, ""); break;
    case WEFT_CFG_ENUM: sb_str(sb, e->v.s); return;
    case WEFT_CFG_STRING:
        if (needs_quotes(e->v.s))
            sb_quoted(sb, e->v.s);
        else
            sb_str(sb, e->v.s);
        return;
    }
    sb_str(sb, num);
}

/* Writes section i opens: its header and every key in it, in table order. */
static void sb_section(sbuf *sb, const weft_config *cfg, size_t i)
{
    const char *name = cfg->e[i].key->name;
    size_t sl = sec_len(name);
    sb_str(sb, i ? "\n[" : "[");
    sb_add(sb, name, sl);
    sb_str(sb, "]\n");
    for (size_t j = i; j < cfg->n; j++) {
        if (!same_section(cfg->e[j].key->name, name, sl))
            continue;
        sb_str(sb, cfg->e[j].key->name + sl + 1);
        sb_str(sb, " = ");
        sb_value(sb, &cfg->e[j]);
        sb_str(sb, "\n");
    }
}

char *weft_config_to_ini(const weft_config *cfg)
{
    sbuf sb = {0};
    if (!cfg)
        return NULL;
    sb_str(&sb, "");
    for (size_t i = 0; i < cfg->n; i++)
        if (first_of_section(cfg, i))
            sb_section(&sb, cfg, i);
    if (sb.oom) {
        free(sb.b);
        return NULL;
    }
    return sb.b;
}

/* ---- generated documentation ------------------------------------------ */

/* Calls fn for every key of the tables, grouped by section in the order the
 * sections first appear; first is true for the key that opens a section. */
static void each_by_section(const weft_config_key *const *tables,
                            void (*fn)(const weft_config_key *, bool first, void *), void *arg)
{
    size_t n = 0, i = 0;
    for (size_t t = 0; tables && tables[t]; t++)
        for (const weft_config_key *k = tables[t]; k->name; k++)
            n++;
    const weft_config_key **all = malloc((n ? n : 1) * sizeof *all);
    if (!all)
        return; /* documentation is best effort */
    for (size_t t = 0; tables && tables[t]; t++)
        for (const weft_config_key *k = tables[t]; k->name; k++)
            all[i++] = k;
    for (i = 0; i < n; i++) {
        size_t sl = sec_len(all[i]->name), j = 0;
        while (j < i && !same_section(all[j]->name, all[i]->name, sl))
            j++;
        for (j = j < i ? n : i; j < n; j++) /* only when i opens the section */
            if (same_section(all[j]->name, all[i]->name, sl))
                fn(all[j], j == i, arg);
    }
    free(all);
}

/* The default as --help shows it: strings quoted when a file would need it. */
static const char *default_text(const weft_config_key *k, char *buf, size_t cap)
{
    if (k->type != WEFT_CFG_STRING || !needs_quotes(k->def))
        return k->def;
    sbuf sb = {0};
    sb_quoted(&sb, k->def);
    snprintf(buf, cap, "%s", sb.b ? sb.b : k->def);
    free(sb.b);
    return buf;
}

/* The allowed column of --help and Markdown. */
static const char *column_text(const weft_config_key *k, char *buf, size_t cap)
{
    switch (k->type) {
    case WEFT_CFG_BOOL: return "true/false";
    case WEFT_CFG_STRING: return "text";
    case WEFT_CFG_ENUM: return k->choices;
    default: return range_text(k, buf, cap);
    }
}

typedef struct {
    FILE *out;
    int wname, wdef; /* column widths */
} help_fmt;

static void measure(const weft_config_key *k, bool first, void *arg)
{
    help_fmt *h = arg;
    char buf[256];
    int n = (int)strlen(k->name), d = (int)strlen(default_text(k, buf, sizeof buf));
    (void)first;
    h->wname = n > h->wname && n <= 32 ? n : h->wname;
    h->wdef = d > h->wdef && d <= 16 ? d : h->wdef;
}

/* Writes text word by word, wrapped at HELP_WIDTH, each line indented. */
static void wrap(FILE *out, const char *text, int indent)
{
    int col = 0;
    while (*text) {
        size_t w = strcspn(text, " ");
        if (col > indent && col + 1 + (int)w > HELP_WIDTH)
            col = 0, fputc('\n', out);
        col += col ? fprintf(out, " ") : fprintf(out, "%*s", indent, "");
        col += fprintf(out, "%.*s", (int)w, text);
        text += w;
        text += strspn(text, " ");
    }
    fputc('\n', out);
}

static void help_row(const weft_config_key *k, bool first, void *arg)
{
    help_fmt *h = arg;
    char def[256], col[128];
    if (first)
        fprintf(h->out, "\n[%.*s]\n", (int)sec_len(k->name), k->name);
    fprintf(h->out, "  %-*s  %-6s  %-*s  %s\n", h->wname, k->name, type_name(k->type), h->wdef,
            default_text(k, def, sizeof def), column_text(k, col, sizeof col));
    wrap(h->out, k->doc, 6);
}

void weft_config_help(const weft_config_key *const *tables, FILE *out)
{
    help_fmt h = {out, 4, 7};
    each_by_section(tables, measure, &h);
    fprintf(out, "Configuration keys: set them in an INI file (--config FILE, repeatable) or with\n"
                 "--section.key=VALUE, which overrides the files.\n\n");
    fprintf(out, "  %-*s  %-6s  %-*s  %s\n", h.wname, "KEY", "TYPE", h.wdef, "DEFAULT", "ALLOWED");
    each_by_section(tables, help_row, &h);
}

/* Writes a Markdown table cell, escaping the '|' that would end it. */
static void md_cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', out);
        fputc(*s == '\n' ? ' ' : *s, out);
    }
}

static void md_row(const weft_config_key *k, bool first, void *arg)
{
    FILE *out = arg;
    char def[256], col[128];
    if (first)
        fprintf(out, "\n## [%.*s]\n\n| Key | Type | Default | Allowed | Description |\n"
                     "|---|---|---|---|---|\n", (int)sec_len(k->name), k->name);
    fprintf(out, "| `%s` | %s | `", k->name, type_name(k->type));
    md_cell(out, default_text(k, def, sizeof def));
    fputs("` | ", out);
    md_cell(out, column_text(k, col, sizeof col));
    fputs(" | ", out);
    md_cell(out, k->doc);
    fputs(" |\n", out);
}

void weft_config_markdown(const weft_config_key *const *tables, FILE *out)
{
    fprintf(out, "# Configuration keys\n\nGenerated from the key tables by `weft_config_markdown`; "
                 "do not edit by hand. Precedence, lowest first: the default, each `--config FILE` in "
                 "order, each `--section.key=VALUE` override. Sizes take K/M/G/T (or KiB/MiB/GiB/TiB) "
                 "suffixes, binary multiples.\n");
    each_by_section(tables, md_row, out);
}
