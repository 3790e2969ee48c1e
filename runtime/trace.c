/*
 * trace.c -- the per-rank Chrome-trace recorder. See trace.h.
 *
 * States: off (no window; weft_trace_active_ stays 0 and every trace point
 * is one branch) -> armed (weft_trace_init found a window and allocated the
 * buffer) -> recording (weft_trace_step inside the window sets
 * weft_trace_active_) -> armed again past the window -> written and freed
 * (weft_trace_finish). Events are claimed with an atomic counter, so a
 * helper thread may record too.
 */
#include "runtime/trace.h"
#include "runtime/durable.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/runfiles.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const weft_config_key weft_trace_config_keys[] = {
    {"trace.steps", WEFT_CFG_STRING, "", WEFT_UNBOUNDED, NULL,
     "record a Chrome-trace timeline of steps a:b (1-based, inclusive) to run.dir/trace/; empty: off"},
    {"trace.max_events", WEFT_CFG_INT, "262144", 1024, 1e9, NULL,
     "events each rank can hold (40 bytes each, allocated at start); later ones are dropped and counted"},
    WEFT_CONFIG_END,
};

typedef struct {
    const char *name, *cat;
    int32_t idx, lane;
    int64_t step;
    int64_t t0, t1; /* monotonic ns */
} event;

int weft_trace_active_;

static struct {
    int enabled;
    int64_t first, last, step;
    event *ev;
    int64_t cap;
    atomic_llong n, dropped;
    int64_t origin_ns; /* monotonic time of the job-wide origin */
    int rank;
    char host[64];
    char run_dir[4096];
    int hooked;
} tr;

/* weft_abort: keep what was recorded, the timeline up to the failure. */
static void on_abort(void *arg)
{
    (void)arg;
    weft_trace_finish(tr.run_dir);
}

static int parse_window(const char *s, int64_t *a, int64_t *b)
{
    char *end;
    errno = 0;
    *a = strtoll(s, &end, 10);
    if (*end != ':' || errno || end == s)
        return -1;
    const char *p = end + 1;
    *b = strtoll(p, &end, 10);
    if (*end || errno || end == p || *a < 1 || *b < *a)
        return -1;
    return 0;
}

int weft_trace_init(const weft_ctx *ctx, const weft_config *cfg)
{
    const char *w = weft_config_str(cfg, "trace.steps");
    tr.enabled = 0;
    weft_trace_active_ = 0;
    if (!*w)
        return 0;
    if (parse_window(w, &tr.first, &tr.last))
        return weft_error(WEFT_ECONFIG, "trace.steps = '%s': want a:b, two step numbers with 1 <= a <= b "
                          "(e.g. 10:12)", w);
    tr.cap = weft_config_int(cfg, "trace.max_events");
    tr.ev = malloc((size_t)tr.cap * sizeof *tr.ev);
    if (!tr.ev)
        return weft_error(WEFT_ENOMEM, "trace: %lld events: out of memory; lower trace.max_events",
                          (long long)tr.cap);
    atomic_store(&tr.n, 0);
    atomic_store(&tr.dropped, 0);
    tr.rank = ctx->rank;
    snprintf(tr.host, sizeof tr.host, "%s", ctx->host);
    snprintf(tr.run_dir, sizeof tr.run_dir, "%s", weft_config_str(cfg, "run.dir"));
    if (!tr.hooked && weft_at_abort(on_abort, NULL) == 0)
        tr.hooked = 1;
    /* One origin for the job: rank 0's wall clock, mapped onto each rank's
     * monotonic clock (aligned across hosts as well as their clocks are). */
    int64_t wall = (int64_t)(weft_wall_s() * 1e9), mono = weft_now_ns();
    int64_t origin_wall = wall;
    if (ctx->size > 1)
        MPI_Bcast(&origin_wall, 1, MPI_INT64_T, 0, ctx->world);
    tr.origin_ns = mono - (wall - origin_wall);
    tr.enabled = 1;
    return 0;
}

int weft_trace_enabled(void) { return tr.enabled; }

void weft_trace_step(int64_t step)
{
    tr.step = step;
    weft_trace_active_ = tr.enabled && step >= tr.first && step <= tr.last;
}

void weft_trace_record(const char *name, const char *cat, int lane, int idx, int64_t t0, int64_t t1)
{
    long long i = atomic_fetch_add_explicit(&tr.n, 1, memory_order_relaxed);
    if (i >= tr.cap) {
        atomic_fetch_sub_explicit(&tr.n, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&tr.dropped, 1, memory_order_relaxed);
        return;
    }
    tr.ev[i] = (event){name, cat, idx, lane, tr.step, t0, t1};
}

int64_t weft_trace_count(void) { return atomic_load(&tr.n); }
int64_t weft_trace_dropped(void) { return atomic_load(&tr.dropped); }

/* name with its one %d replaced by idx (idx < 0: name as it is). */
static void put_name(FILE *f, const char *name, int idx)
{
    for (const char *p = name; *p; p++) {
        if (idx >= 0 && p[0] == '%' && p[1] == 'd') {
            fprintf(f, "%d", idx);
            p++;
        } else if (*p == '"' || *p == '\\') {
            fprintf(f, "\\%c", *p);
        } else {
            fputc(*p, f);
        }
    }
}

static void put_us(FILE *f, const char *key, int64_t ns)
{
    fprintf(f, ",\"%s\":%lld.%03lld", key, (long long)(ns / 1000), (long long)(ns % 1000));
}

static void write_events(FILE *f)
{
    static const char *const lanes[WEFT_TRACE_NLANES] = {"compute", "gradient reduction"};
    fprintf(f, "[\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"args\":{\"name\":\"rank %d (",
            tr.rank, tr.rank);
    put_name(f, tr.host, -1);
    fprintf(f, ")\"}},\n{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,"
            "\"args\":{\"sort_index\":%d}}", tr.rank, tr.rank);
    for (int l = 0; l < WEFT_TRACE_NLANES; l++)
        fprintf(f, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":\"%s\"}}",
                tr.rank, l, lanes[l]);
    fprintf(f, ",\n{\"name\":\"trace_info\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"args\":{\"steps\":\"%lld:%lld\","
            "\"events\":%lld,\"dropped\":%lld}}", tr.rank, (long long)tr.first, (long long)tr.last,
            (long long)weft_trace_count(), (long long)weft_trace_dropped());
    int64_t n = weft_trace_count();
    for (int64_t i = 0; i < n; i++) {
        const event *e = &tr.ev[i];
        fputs(",\n{\"name\":\"", f);
        put_name(f, e->name, e->idx);
        fprintf(f, "\",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":%d,\"tid\":%d", e->cat, tr.rank, e->lane);
        put_us(f, "ts", e->t0 - tr.origin_ns);
        put_us(f, "dur", e->t1 > e->t0 ? e->t1 - e->t0 : 0);
        fprintf(f, ",\"args\":{\"step\":%lld}}", (long long)e->step);
    }
    fputs("\n]\n", f);
}

int weft_trace_finish(const char *run_dir)
{
    weft_trace_active_ = 0;
    if (!tr.enabled)
        return 0;
    tr.enabled = 0;
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/" WEFT_RUNFILE_TRACE_DIR, run_dir);
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_TRACE_FMT, run_dir, tr.rank);
    int rc = 0;
    weft_durable d;
    if (mkdir(dir, 0750) != 0 && errno != EEXIST)
        rc = weft_error(WEFT_EIO, "trace: cannot create %s: %s", dir, strerror(errno));
    if (rc == 0)
        rc = weft_durable_open(&d, path, WEFT_DURABLE_SYNC);
    if (rc == 0) {
        write_events(d.f);
        rc = weft_durable_commit(&d);
    }
    if (weft_trace_dropped() > 0)
        WEFT_WARN("trace: %lld events dropped (buffer of %lld full); raise trace.max_events",
                  (long long)weft_trace_dropped(), (long long)tr.cap);
    free(tr.ev);
    tr.ev = NULL;
    return rc;
}

void weft_trace_discard(void)
{
    weft_trace_active_ = 0;
    tr.enabled = 0;
    free(tr.ev);
    tr.ev = NULL;
}
