/*
 * runfiles.h -- reading what weft-train leaves in a run directory
 * (metrics.jsonl, run.json), for weft-plot and weft-report. Header-only,
 * static: each tool is one program.
 *
 * The files are ours: flat JSON objects of numbers, strings, booleans and
 * null, one per line. field() finds a key's number; rows are checked to be
 * objects with a step, and a line that is not is reported with its number.
 */
#ifndef WEFT_TOOLS_RUNFILES_H
#define WEFT_TOOLS_RUNFILES_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EX_OK = 0, EX_USAGE = 64, EX_DATAERR = 65, EX_NOINPUT = 66, EX_UNAVAILABLE = 69, EX_SOFTWARE = 70,
       EX_IOERR = 74 };

typedef struct {
    double step, loss, lr, grad_norm, tps, ms, flops, data_ms, comm_ms, ckpt_ms, val_loss;
    int skipped;
} metrics_row;

/* The number after "key": in the object text line; NAN when absent or null. */
static inline double field(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p)
        return NAN;
    p += strlen(pat);
    char *end;
    double v = strtod(p, &end);
    return end == p ? NAN : v;
}

/* The string after "key": copied into out (empty when absent). */
static inline void field_str(const char *line, const char *key, char *out, size_t len)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(line, pat);
    size_t n = 0;
    if (p)
        for (p += strlen(pat); *p && *p != '"' && n + 1 < len; p++)
            out[n++] = *p;
    out[n] = 0;
}

/* Read run_dir/metrics.jsonl: *rows (malloc'ed), *n. Returns an exit code,
 * with the message printed under the program's name. */
static inline int read_metrics(const char *prog, const char *run_dir, metrics_row **rows, int *n)
{
    char path[4200], line[8192];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: cannot read %s: is %s a weft-train run directory?\n", prog, path, run_dir);
        return EX_NOINPUT;
    }
    int cap = 0, lineno = 0, rc = EX_OK;
    *rows = NULL;
    *n = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0)
            continue;
        double step = field(line, "step");
        if (line[0] != '{' || line[len - 1] != '}' || isnan(step)) {
            fprintf(stderr, "%s: %s:%d: not a metrics row (a JSON object with a step)\n", prog, path, lineno);
            rc = EX_DATAERR;
            break;
        }
        if (*n == cap) {
            metrics_row *r = realloc(*rows, (size_t)(cap = cap * 2 + 256) * sizeof *r);
            if (!r) {
                fprintf(stderr, "%s: out of memory\n", prog);
                rc = EX_SOFTWARE;
                break;
            }
            *rows = r;
        }
        /* The step loop's checkpoint stall is timed apart from ms_per_step:
         * an iteration took ms + ckpt_ms, of which compute is ms - comm - data. */
        double ck = field(line, "ckpt_blocked_ms");
        ck = isnan(ck) ? 0.0 : ck;
        (*rows)[(*n)++] = (metrics_row){
            step, field(line, "loss"), field(line, "lr"), field(line, "grad_norm"), field(line, "tokens_per_s"),
            field(line, "ms_per_step"), field(line, "flops_per_s"), field(line, "data_wait_ms"),
            field(line, "comm_wait_ms"), ck, field(line, "val_loss"),
            strstr(line, "\"skipped\":true") != NULL,
        };
    }
    fclose(f);
    if (rc == EX_OK && *n == 0) {
        fprintf(stderr, "%s: %s has no rows yet\n", prog, path);
        rc = EX_DATAERR;
    }
    if (rc != EX_OK) {
        free(*rows);
        *rows = NULL;
    }
    return rc;
}

/* Zero when absent (NaN-safe for sums). */
static inline double z(double v) { return isnan(v) ? 0.0 : v; }

#endif
