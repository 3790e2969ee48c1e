/*
 * runfiles.c -- the table of a run directory's files (see runfiles.h):
 * every name, its format and how durably it is written. A new file in
 * run.dir gets its line here, or tests/train/test_rundir_files.sh fails.
 */
#include "runtime/runfiles.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#define CK WEFT_RUNFILE_CKPT_DIR "/"

const weft_runfile weft_runfiles[] = {
    {WEFT_RUNFILE_METRICS, WEFT_RUNFMT_JSONL, 1, WEFT_DURABLE_SYNC,
     "rank 0, one row per logged step; whole lines appended, a torn last line dropped on resume"},
    {WEFT_RUNFILE_CONFIG, WEFT_RUNFMT_INI, 0, WEFT_DURABLE_SYNC, "rank 0 at start: the resolved configuration"},
    {WEFT_RUNFILE_RUN, WEFT_RUNFMT_JSON, 0, WEFT_DURABLE_SYNC, "rank 0 at start: layout, model size, peak FLOP/s"},
    {WEFT_RUNFILE_OWNER, WEFT_RUNFMT_JSON, 0, WEFT_DURABLE_SYNC, "rank 0: job, config hash, start (the claim)"},
    {WEFT_RUNFILE_STATUS, WEFT_RUNFMT_JSON, 0, WEFT_DURABLE_BEST_EFFORT, "rank 0: progress, rewritten while running"},
    {WEFT_RUNFILE_METRICS_PORT, WEFT_RUNFMT_TEXT, 0, WEFT_DURABLE_BEST_EFFORT, "rank 0: the Prometheus port"},
    {WEFT_RUNFILE_HEARTBEAT_DIR "/rank-*", WEFT_RUNFMT_TEXT, 0, WEFT_DURABLE_BEST_EFFORT,
     "every rank: liveness and its oldest pending collective"},
    {"hang-r*.txt", WEFT_RUNFMT_TEXT, 0, WEFT_DURABLE_SYNC, "a rank whose collective timed out: who never came"},
    {"flight-r*.json", WEFT_RUNFMT_JSON, 0, WEFT_DURABLE_SYNC, "a rank that aborted: its flight recorder"},
    {WEFT_RUNFILE_TRACE_DIR "/rank-*.json", WEFT_RUNFMT_JSON, 0, WEFT_DURABLE_SYNC, "every rank, trace.steps"},
    {WEFT_RUNFILE_TRACE_MERGED, WEFT_RUNFMT_JSON, 0, WEFT_DURABLE_SYNC, "weft-trace: the ranks' traces merged"},
    {WEFT_RUNFILE_PLOTS_DIR "/*", WEFT_RUNFMT_BINARY, 0, WEFT_DURABLE_SYNC, "weft-plot: data, script, images"},
    {"fault-held-r*", WEFT_RUNFMT_TEXT, 0, WEFT_DURABLE_BEST_EFFORT,
     "tests only (WEFT_FAULT hold_*): a rank parked at a fault point, while it waits"},
    {"fault-release-r*", WEFT_RUNFMT_BINARY, 0, WEFT_DURABLE_BEST_EFFORT,
     "tests only: the test's release of a held rank (removed by the rank)"},
    {"params-r*.bin", WEFT_RUNFMT_BINARY, 0, WEFT_DURABLE_SYNC, "tests only (WEFT_DUMP_PARAMS): each rank's weights"},
    {CK "step-*.h5", WEFT_RUNFMT_HDF5, 0, WEFT_DURABLE_SYNC, "the writer ranks: a committed checkpoint"},
    {CK WEFT_RUNFILE_LATEST, WEFT_RUNFMT_LATEST, 0, WEFT_DURABLE_SYNC, "rank 0 after a commit: the newest one"},
    {CK WEFT_RUNFILE_CKPT_RESERVE, WEFT_RUNFMT_BINARY, 0, WEFT_DURABLE_BEST_EFFORT,
     "space fallocated so a failed save can still close its file"},
    {NULL, 0, 0, 0, NULL},
};

/* ".NAME.tmp" or ".NAME.tmp.<digits>" in the last component: NAME. */
static int strip_tmp(const char *rel, char *out, size_t len)
{
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    if (base[0] != '.')
        return 0;
    const char *t = strstr(base, ".tmp");
    if (!t || t == base)
        return 0;
    for (const char *p = t + 4; *p; p++)
        if (p == t + 4 ? *p != '.' : (*p < '0' || *p > '9'))
            return 0;
    snprintf(out, len, "%.*s%.*s", (int)(base - rel), rel, (int)(t - base - 1), base + 1);
    return 1;
}

const weft_runfile *weft_runfile_find(const char *rel)
{
    char plain[4096];
    const char *prev = WEFT_RUNFILE_PREVIOUS_DIR "/";
    /* previous/<UTC time>/...: a run moved aside, with the same files */
    if (strncmp(rel, prev, strlen(prev)) == 0) {
        const char *rest = strchr(rel + strlen(prev), '/');
        return rest ? weft_runfile_find(rest + 1) : NULL;
    }
    if (strip_tmp(rel, plain, sizeof plain))
        rel = plain;
    for (const weft_runfile *f = weft_runfiles; f->pattern; f++)
        if (fnmatch(f->pattern, rel, FNM_PATHNAME | FNM_PERIOD) == 0)
            return f;
    return NULL;
}

int weft_runfile_rank(const char *name, const char *fmt, int *rank)
{
    const char *d = strstr(fmt, "%d");
    size_t pre = (size_t)(d - fmt);
    if (!d || strncmp(name, fmt, pre) != 0)
        return 0;
    const char *p = name + pre;
    long r = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 9; p++, digits++)
        r = r * 10 + (*p - '0');
    if (!digits || strcmp(p, d + 2) != 0)
        return 0;
    *rank = (int)r;
    return 1;
}

const char *weft_runfile_format_name(weft_runfile_format f)
{
    static const char *const names[] = {"json", "jsonl", "ini", "text", "hdf5", "latest", "binary"};
    return (unsigned)f < sizeof names / sizeof names[0] ? names[f] : "?";
}
