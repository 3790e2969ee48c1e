/*
 * weft-trace -- merges the per-rank timelines weft-train wrote under
 * RUN_DIR/trace/ (rank-N.json, one JSON array of trace events each) into one
 * Chrome-trace file with a track per rank, for Perfetto or chrome://tracing.
 *
 *   weft-trace RUN_DIR [-o OUT]      (OUT defaults to RUN_DIR/trace.json)
 *
 * Options are read by runtime/cli.h: -o OUT, -oOUT, --output OUT or
 * --output=OUT, before or after RUN_DIR.
 *
 * Each input is checked by a small JSON syntax reader (the whole file must be
 * one array of objects) and its objects are copied as they are: pid is the
 * rank already, so the merge is a concatenation. It does not interpret the
 * events; a malformed file is named with the byte offset of the fault.
 */
#include "runtime/cli.h"
#include "runtime/durable.h"
#include "runtime/error.h"
#include "runtime/runfiles.h"
#include "tools/rundir_read.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const char *s;
    size_t n, i;
    const char *err;
} reader;

static void ws(reader *r)
{
    while (r->i < r->n && strchr(" \t\r\n", r->s[r->i]))
        r->i++;
}

static int fail(reader *r, const char *why)
{
    if (!r->err)
        r->err = why;
    return -1;
}

static int value(reader *r, int depth);

static int string(reader *r)
{
    if (r->i >= r->n || r->s[r->i] != '"')
        return fail(r, "expected a string");
    for (r->i++; r->i < r->n; r->i++) {
        unsigned char c = (unsigned char)r->s[r->i];
        if (c == '"') {
            r->i++;
            return 0;
        }
        if (c < 0x20)
            return fail(r, "control character in a string");
        if (c == '\\' && ++r->i >= r->n)
            break;
    }
    return fail(r, "unterminated string");
}

static int number(reader *r)
{
    char *end;
    const char *p = r->s + r->i;
    if (!strchr("-0123456789", *p))
        return fail(r, "expected a value");
    strtod(p, &end);
    if (end == p)
        return fail(r, "bad number");
    r->i += (size_t)(end - p);
    return 0;
}

static int literal(reader *r, const char *word)
{
    size_t k = strlen(word);
    if (r->n - r->i < k || memcmp(r->s + r->i, word, k) != 0)
        return fail(r, "expected a value");
    r->i += k;
    return 0;
}

/* open ... close with items separated by commas; item parses one. */
static int sequence(reader *r, char close, int depth, int is_object)
{
    r->i++;
    ws(r);
    if (r->i < r->n && r->s[r->i] == close) {
        r->i++;
        return 0;
    }
    for (;;) {
        ws(r);
        if (is_object) {
            if (string(r))
                return -1;
            ws(r);
            if (r->i >= r->n || r->s[r->i] != ':')
                return fail(r, "expected ':'");
            r->i++;
            ws(r);
        }
        if (value(r, depth + 1))
            return -1;
        ws(r);
        if (r->i < r->n && r->s[r->i] == ',') {
            r->i++;
            continue;
        }
        if (r->i < r->n && r->s[r->i] == close) {
            r->i++;
            return 0;
        }
        return fail(r, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int value(reader *r, int depth)
{
    if (depth > 64)
        return fail(r, "nested too deeply");
    if (r->i >= r->n)
        return fail(r, "unexpected end of file");
    switch (r->s[r->i]) {
    case '{': return sequence(r, '}', depth, 1);
    case '[': return sequence(r, ']', depth, 0);
    case '"': return string(r);
    case 't': return literal(r, "true");
    case 'f': return literal(r, "false");
    case 'n': return literal(r, "null");
    default: return number(r);
    }
}

/* Check s is an array of objects; append each object to out, counting. */
static int merge_one(const char *s, size_t n, FILE *out, long *events, const char **why, size_t *at)
{
    reader r = {s, n, 0, NULL};
    ws(&r);
    if (r.i >= n || s[r.i] != '[') {
        *why = "expected '[' (a JSON array of trace events)";
        *at = r.i;
        return -1;
    }
    r.i++;
    for (;;) {
        ws(&r);
        if (r.i < n && s[r.i] == ']' && *events >= 0) {
            r.i++;
            break;
        }
        if (r.i >= n || s[r.i] != '{') {
            r.err = r.i >= n ? "unexpected end of file" : "expected an event object '{'";
            break;
        }
        size_t start = r.i;
        if (value(&r, 1))
            break;
        fprintf(out, "%s", *events > 0 ? ",\n" : "");
        fwrite(s + start, 1, r.i - start, out);
        (*events)++;
        ws(&r);
        if (r.i < n && s[r.i] == ',') {
            r.i++;
            continue;
        }
        if (r.i < n && s[r.i] == ']') {
            r.i++;
            break;
        }
        r.err = "expected ',' or ']'";
        break;
    }
    ws(&r);
    if (!r.err && r.i != n)
        r.err = "text after the array";
    *why = r.err;
    *at = r.i;
    return r.err ? -1 : 0;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0;
    *n = 0;
    for (;;) {
        if (*n + 65536 > cap) {
            char *b = realloc(buf, cap = cap * 2 + 65536);
            if (!b)
                break;
            buf = b;
        }
        size_t k = fread(buf + *n, 1, cap - *n, f);
        *n += k;
        if (k == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    return buf;
}

static int is_rank_file(const char *name, int *rank)
{
    return weft_runfile_rank(name, WEFT_RUNFILE_TRACE_NAME, rank);
}

static int by_rank(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

static void usage(FILE *f)
{
    fputs("usage: weft-trace RUN_DIR [-o|--output OUT]\n"
          "       weft-trace --config JOB.ini | --run.dir=DIR [-o OUT]   (the job's run.dir)\n"
          "\n"
          "Merges the per-rank timelines weft-train wrote under RUN_DIR/trace/ (with\n"
          "trace.steps = a:b) into one Chrome-trace file, a track per rank:\n"
          "OUT, default RUN_DIR/trace.json. Open it in https://ui.perfetto.dev or\n"
          "chrome://tracing. See docs/observability.md.\n"
          "\n"
          "exit status: 0 done, 64 bad usage, 65 a malformed trace file (named, with the\n"
          "byte offset), 66 no RUN_DIR or no trace in it, 74 cannot write OUT\n", f);
}

static int collect(const char *dir, int **ranks, int *n)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    int cap = 0, r;
    *n = 0;
    *ranks = NULL;
    while ((e = readdir(d))) {
        if (!is_rank_file(e->d_name, &r))
            continue;
        if (*n == cap) {
            int *p = realloc(*ranks, (size_t)(cap = cap * 2 + 16) * sizeof *p);
            if (!p)
                break;
            *ranks = p;
        }
        (*ranks)[(*n)++] = r;
    }
    closedir(d);
    if (*n > 1) /* none found: *ranks may be NULL, which qsort may not be given */
        qsort(*ranks, (size_t)*n, sizeof **ranks, by_rank);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *run, *out_path = NULL;
    weft_cli cli;
    int c, given;
    if (weft_cli_wants_help(argc, argv)) {
        usage(stdout);
        return WEFT_EXIT_OK;
    }
    weft_config *cfg = job_config("weft-trace", &argc, argv, &given); /* RUN_DIR may come from run.dir */
    if (!cfg)
        return WEFT_EXIT_USAGE;
    char job_dir[4096];
    snprintf(job_dir, sizeof job_dir, "%s", weft_config_str(cfg, "run.dir"));
    weft_config_free(cfg);
    weft_cli_init(&cli, "weft-trace", argc, argv, opts, 0);
    while ((c = weft_cli_next(&cli)) != WEFT_CLI_END) {
        if (c == 'o') {
            out_path = cli.arg;
        } else if (c == 'h') {
            usage(stdout);
            return WEFT_EXIT_OK;
        } else {
            return WEFT_EXIT_USAGE;
        }
    }
    if ((c = weft_cli_operands(&cli, given ? 0 : 1, 1, given ? "at most one RUN_DIR" : "one RUN_DIR")) != 0)
        return c;
    run = cli.nops ? cli.ops[0] : job_dir;
    char dir[4200], def_out[4200], path[4400];
    snprintf(dir, sizeof dir, "%s/" WEFT_RUNFILE_TRACE_DIR, run);
    snprintf(def_out, sizeof def_out, "%s/" WEFT_RUNFILE_TRACE_MERGED, run);
    if (!out_path)
        out_path = def_out;
    struct stat st;
    if (stat(run, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "weft-trace: %s is not a run directory: %s\n", run, strerror(errno ? errno : ENOTDIR));
        return WEFT_EXIT_NOINPUT;
    }
    int *ranks, n;
    if (collect(dir, &ranks, &n) != 0 || n == 0) {
        fprintf(stderr, "weft-trace: no trace files (rank-N.json) in %s: run weft-train with "
                "--trace.steps=a:b\n", dir);
        return WEFT_EXIT_NOINPUT;
    }
    weft_durable d;
    if (weft_durable_open(&d, out_path, WEFT_DURABLE_SYNC) != 0) {
        fprintf(stderr, "weft-trace: %s\n", weft_last_error());
        free(ranks);
        return WEFT_EXIT_IOERR;
    }
    FILE *out = d.f;
    fputs("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n", out);
    long events = 0;
    int rc = WEFT_EXIT_OK;
    for (int i = 0; i < n && rc == WEFT_EXIT_OK; i++) {
        size_t len, at;
        const char *why;
        snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_TRACE_FMT, run, ranks[i]);
        char *text = slurp(path, &len);
        if (!text) {
            fprintf(stderr, "weft-trace: cannot read %s: %s\n", path, strerror(errno));
            rc = WEFT_EXIT_NOINPUT;
        } else if (merge_one(text, len, out, &events, &why, &at) != 0) {
            fprintf(stderr, "weft-trace: %s: malformed at byte offset %zu: %s\n", path, at, why);
            rc = WEFT_EXIT_DATAERR;
        }
        free(text);
    }
    fputs("\n]}\n", out);
    if (rc != WEFT_EXIT_OK) {
        weft_durable_discard(&d);
    } else if (weft_durable_commit(&d) != 0) {
        fprintf(stderr, "weft-trace: %s\n", weft_last_error());
        rc = WEFT_EXIT_IOERR;
    }
    if (rc == WEFT_EXIT_OK)
        printf("%s: %ld events from %d rank%s\n", out_path, events, n, n == 1 ? "" : "s");
    free(ranks);
    return rc;
}
