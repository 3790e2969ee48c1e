/*
 * trace.h -- a per-rank timeline in Chrome trace format (Perfetto,
 * chrome://tracing): complete ("X") events with a name, a category, a start
 * and a duration, on a lane (tid) of this rank's track (pid = rank).
 *
 * Off by default. `trace.steps = a:b` records optimizer steps a..b (1-based,
 * inclusive, the numbering of metrics.jsonl); the trainer calls
 * weft_trace_step() at the start of each step. Events go to a buffer
 * allocated at weft_trace_init (trace.max_events); nothing is allocated on
 * the step path, and when the buffer is full further events are dropped and
 * counted. weft_trace_finish writes <run.dir>/trace/rank-<r>.json; so does
 * weft_abort (a hook), so a job that ends on an error keeps its timeline.
 *
 * Cost when off: one predictable branch per trace point (weft_trace_on()).
 *
 *   int64_t t0 = weft_trace_begin();
 *   ... work ...
 *   weft_trace_end("h.%d.forward", "fwd", WEFT_TRACE_COMPUTE, l, t0);
 *
 * name is a static string, or a format with one %d filled with idx when the
 * file is written (idx < 0: name is used as it is). It must outlive the
 * trace (a string literal).
 */
#ifndef WEFT_RUNTIME_TRACE_H
#define WEFT_RUNTIME_TRACE_H

#include "runtime/api.h"

#include "runtime/config.h"
#include "runtime/ctx.h"
#include "runtime/timer.h"

#include <stdint.h>

/* Lanes: the tid of an event inside its rank's track. */
enum { WEFT_TRACE_COMPUTE = 0, WEFT_TRACE_COMM = 1, WEFT_TRACE_NLANES = 2 };

extern WEFT_API const weft_config_key weft_trace_config_keys[];

/* Nonzero while the current step is inside the window. */
extern WEFT_API int weft_trace_active_;
static inline int weft_trace_on(void) { return __builtin_expect(weft_trace_active_, 0); }

/* Read trace.*; when a window is set, allocate the buffer and agree on a
 * job-wide time origin (a broadcast on ctx->world: call on every rank).
 * WEFT_ECONFIG for a malformed window. */
WEFT_API int weft_trace_init(const weft_ctx *ctx, const weft_config *cfg);
/* Whether trace.steps names a window (the files will be written). */
WEFT_API int weft_trace_enabled(void);
/* The 1-based step about to run: turns recording on inside the window. */
WEFT_API void weft_trace_step(int64_t step);

static inline int64_t weft_trace_begin(void) { return weft_trace_on() ? weft_now_ns() : 0; }
WEFT_API void weft_trace_record(const char *name, const char *cat, int lane, int idx, int64_t t0, int64_t t1);
static inline void weft_trace_end(const char *name, const char *cat, int lane, int idx, int64_t t0)
{
    if (!weft_trace_on())
        return;
    weft_trace_record(name, cat, lane, idx, t0, weft_now_ns());
}

/* Events recorded and dropped so far. */
WEFT_API int64_t weft_trace_count(void);
WEFT_API int64_t weft_trace_dropped(void);

/* Write run_dir/trace/rank-<r>.json (temporary name, rename, mode 0640) if
 * a window was set, and free the buffer. WEFT_EIO on failure. */
WEFT_API int weft_trace_finish(const char *run_dir);
/* Drop the buffer without writing (a run that failed before its end). */
WEFT_API void weft_trace_discard(void);

#endif
