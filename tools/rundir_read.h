/*
 * rundir_read.h -- reading what weft-train leaves in a run directory
 * (metrics.jsonl, run.json; the names are runtime/runfiles.h's), for
 * weft-plot, weft-report, weft-doctor and weft-trace, and their one
 * command line (RUN_DIR). Header-only, static: each tool is
 * one program. Exit statuses are runtime/error.h's WEFT_EXIT_*.
 *
 * The files are ours: flat JSON objects of numbers, strings, booleans and
 * null, one per line. field() finds a key's number; rows are checked to be
 * objects with a step, and a line that is not is reported with its number.
 */
#ifndef WEFT_TOOLS_RUNDIR_READ_H
#define WEFT_TOOLS_RUNDIR_READ_H

#include "runtime/cli.h"
#include "runtime/config.h"
#include "runtime/ctx.h"
#include "runtime/error.h"
#include "runtime/runfiles.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_METRICS, run_dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: cannot read %s: is %s a weft-train run directory?\n", prog, path, run_dir);
        return WEFT_EXIT_NOINPUT;
    }
    int cap = 0, lineno = 0, rc = WEFT_EXIT_OK;
    *rows = NULL;
    *n = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len && line[len - 1] != '\n' && feof(f)) { /* a crash mid-append; a resume drops it */
            fprintf(stderr, "%s: %s:%d: ignoring a torn last line (no newline)\n", prog, path, lineno);
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0)
            continue;
        double step = field(line, "step");
        if (line[0] != '{' || line[len - 1] != '}' || isnan(step)) {
            fprintf(stderr, "%s: %s:%d: not a metrics row (a JSON object with a step)\n", prog, path, lineno);
            rc = WEFT_EXIT_DATAERR;
            break;
        }
        if (*n == cap) {
            metrics_row *r = realloc(*rows, (size_t)(cap = cap * 2 + 256) * sizeof *r);
            if (!r) {
                fprintf(stderr, "%s: out of memory\n", prog);
                rc = WEFT_EXIT_SOFTWARE;
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
    if (rc == WEFT_EXIT_OK && *n == 0) {
        fprintf(stderr, "%s: %s has no rows yet\n", prog, path);
        rc = WEFT_EXIT_DATAERR;
    }
    if (rc != WEFT_EXIT_OK) {
        free(*rows);
        *rows = NULL;
    }
    return rc;
}

/* The job's configuration on a tool's command line: --config FILE and
 * --section.key=value, as weft-train takes them (sections of other
 * programs are kept, runtime/config.c), taken out of argv. *given: whether
 * any was. Only the [run] keys are read here (run.dir). NULL, after saying
 * why, on a bad file or key. */
static inline weft_config *job_config(const char *prog, int *argc, char **argv, int *given)
{
    static const weft_config_key *const tables[] = {weft_runtime_config_keys, NULL};
    weft_config *cfg;
    int before = *argc;
    if (weft_config_new(tables, &cfg) != 0 || weft_config_parse_args(cfg, argc, argv) != 0) {
        fprintf(stderr, "%s: %s\n", prog, weft_last_error());
        return NULL;
    }
    *given = *argc != before;
    return cfg;
}

/* The command line of a tool that reads one run directory: RUN_DIR and
 * -h/--help, in any order (runtime/cli.h); or, instead of RUN_DIR, the
 * job's --config FILE / --run.dir=DIR (the run.dir weft-train used).
 * Returns -1 with *run set (static storage), or an exit status: 0 after
 * printing usage for --help, 64 after saying what was wrong. */
static inline int run_dir_args(const char *prog, int argc, char **argv, void (*usage)(FILE *), const char **run)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    static char dir[4096];
    weft_cli cli;
    int c, given;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return WEFT_EXIT_OK;
        }
    weft_config *cfg = job_config(prog, &argc, argv, &given);
    if (!cfg)
        return WEFT_EXIT_USAGE;
    snprintf(dir, sizeof dir, "%s", weft_config_str(cfg, "run.dir"));
    weft_config_free(cfg);
    weft_cli_init(&cli, prog, argc, argv, opts, 0);
    while ((c = weft_cli_next(&cli)) != WEFT_CLI_END)
        return WEFT_EXIT_USAGE; /* --help was handled above */
    int st = weft_cli_operands(&cli, given ? 0 : 1, 1, given ? "at most one RUN_DIR" : "one RUN_DIR");
    if (st)
        return st;
    *run = cli.nops ? cli.ops[0] : dir;
    return -1;
}

/* Zero when absent (NaN-safe for sums). */
static inline double z(double v) { return isnan(v) ? 0.0 : v; }

#endif
