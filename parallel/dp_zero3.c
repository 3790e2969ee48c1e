/*
 * dp_zero3.c -- ZeRO-3: parameters sharded across the data-parallel group;
 * each unit of the model (the embedding, a block, the head: model.h) is
 * gathered into its own place in param_data just before it is used and
 * given back right after. See dp.h for what is resident when.
 *
 * A unit's states, and what moves it:
 *   RELEASED  only this rank's shard (and the partial edge pages) resident
 *     -> GATHERING   launch_gather: weft_dp_use_begin of this unit, or of
 *                    one up to parallel.zero_prefetch units before it in
 *                    the direction the model walks (forward: up, backward:
 *                    down); one async allgather per bucket, in place
 *     -> GATHERED    wait_gather: weft_dp_use_begin of this unit
 *     -> RELEASED    weft_dp_use_end of its last user; or
 *                    weft_dp_release_params (every unit, after the
 *                    optimizer, after evaluation, after a load)
 * weft_dp_gather_all puts every unit in place and makes begin/end no-ops
 * (`whole`) until the next weft_dp_release_params.
 *
 * Every data-parallel rank runs the same schedule of begins and ends, so
 * the gathers are issued in the same order everywhere, interleaved the
 * same way with the gradient reduce-scatters launched from backward.
 *
 * The gathered copy is the unit's own range of param_data: no second
 * buffer is allocated, in the step or at start. Giving it back is
 * madvise(MADV_DONTNEED) of the whole pages outside the shard (the pages
 * read as zero when next touched: the next gather maps them again).
 *
 * Trace: one span "unit.N.gather" per gather on the communication lane,
 * from its launch to when a begin waited it done.
 */
#include "parallel/dp_int.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "runtime/error.h"
#include "runtime/invariant.h"
#include "runtime/timer.h"
#include "runtime/trace.h"

#include <math.h>
#include <stdlib.h>

static int launch_gather(weft_dp *dp, unit *u)
{
    if (u->state != RELEASED)
        return 0;
    u->t_launch = weft_trace_begin();
    if (!u->t_launch)
        u->t_launch = weft_now_ns();
    for (int i = u->b0; i < u->b0 + u->nb; i++) {
        bucket *k = &dp->b[i];
        float *p = dp->params + k->start;
        k->gdone = 0;
        WEFT_CHECK(weft_comm_iallgather(dp->comm, p + k->shard_off, p, k->len, WEFT_F32, &k->greq));
    }
    u->state = GATHERING;
    return 0;
}

/* The parameters are the device's memory: through its ops table (a
 * failure is the table's sticky error, which the model's next forward or
 * the optimizer reports); without one, the host's loops. */
static void fill(weft_dp *dp, float *x, size_t n, float v)
{
    weft_ops *o = dp->opts.ops;
    if (o)
        o->fill(o, x, n, v);
    else
        for (size_t i = 0; i < n; i++)
            x[i] = v;
}

static void bf16_refresh(weft_dp *dp, const float *p, size_t n)
{
    weft_ops *o = dp->opts.ops;
    if (o)
        o->bf16_refresh(o, p, n);
    else
        weft_matmul_bf16_refresh(p, n);
}

static int wait_gather(weft_dp *dp, unit *u)
{
    if (u->state != GATHERING)
        return 0;
    int64_t t0 = weft_now_ns();
    for (int i = u->b0; i < u->b0 + u->nb; i++)
        if (!dp->b[i].gdone)
            WEFT_CHECK(weft_request_wait(dp->b[i].greq));
    int64_t t1 = weft_now_ns();
    dp->gather_wait_ns += t1 - t0;
    dp->gather_ns += t1 - u->t_launch;
    weft_trace_end("unit.%d.gather", "comm", WEFT_TRACE_COMM, (int)(u - dp->u), u->t_launch);
    /* train.precision = bf16: the products read the bf16 copy of the
     * weights, which must see what the gather wrote (a no-op in f32, where
     * no copy is registered) */
    for (int i = u->b0; i < u->b0 + u->nb; i++)
        bf16_refresh(dp, dp->params + dp->b[i].start, dp->b[i].len);
    u->state = GATHERED;
    return 0;
}

/* WEFT_ZERO3_POISON=1 (tests): a released unit's parameters outside the
 * shard are NaN rather than given back, so a use without its gather --
 * whatever the page size or the buckets -- makes the loss NaN. */
static void poison(weft_dp *dp, const bucket *k)
{
    size_t s0 = k->start + k->shard_off, s1 = s0 + k->shard_len, end = k->start + k->len;
    fill(dp, dp->params + k->start, s0 - k->start, NAN);
    fill(dp, dp->params + s1, end - s1, NAN);
}

static void release_unit(weft_dp *dp, unit *u)
{
    for (int i = u->b0; i < u->b0 + u->nb; i++) {
        if (dp->poison)
            poison(dp, &dp->b[i]);
        else
            weft_dp_drop(dp->params, (const size_t(*)[2])dp->b[i].pdrop);
    }
    u->state = RELEASED;
    u->users = 0;
}

int weft_dp_use_begin(void *arg, int ui, int dir)
{
    weft_dp *dp = arg;
    if (dp->whole)
        return 0;
    unit *u = &dp->u[ui];
    WEFT_CHECK(launch_gather(dp, u));
    for (int d = 1; dir && d <= dp->opts.prefetch; d++) {
        int v = ui + d * dir;
        if (v < 0 || v >= dp->nu)
            break;
        WEFT_CHECK(launch_gather(dp, &dp->u[v]));
    }
    WEFT_CHECK(wait_gather(dp, u));
    u->users++;
    WEFT_INVARIANT(weft_dp_check(dp, 0, "a unit gathered for use"), "dp");
    return 0;
}

/* Test the gathers in flight once: collectives that are not MPI's move
 * only while their ranks test or wait them, so a prefetched gather
 * progresses at each layer boundary, not only when its layer is needed. */
static int poll_gathers(weft_dp *dp)
{
    for (int i = 0; i < dp->nu; i++) {
        unit *u = &dp->u[i];
        for (int j = u->b0; u->state == GATHERING && j < u->b0 + u->nb; j++)
            if (!dp->b[j].gdone)
                WEFT_CHECK(weft_request_test(dp->b[j].greq, &dp->b[j].gdone));
    }
    return 0;
}

void weft_dp_use_end(void *arg, int ui)
{
    weft_dp *dp = arg;
    unit *u = &dp->u[ui];
    if (dp->whole)
        return;
    if (u->users > 0 && --u->users == 0)
        release_unit(dp, u);
    int rc = poll_gathers(dp);
    if (rc && !dp->err)
        dp->err = rc; /* end cannot return it: the step's finish_grads does */
    WEFT_INVARIANT(weft_dp_check(dp, 0, "a unit's use ended"), "dp");
}

void weft_dp_progress(void *arg)
{
    weft_dp *dp = arg;
    if (dp->err || dp->whole || dp->no_progress)
        return;
    int rc = poll_gathers(dp);
    rc = rc ? rc : weft_dp_poll(dp);
    if (rc)
        dp->err = rc;
}

int weft_dp_release_params(weft_dp *dp)
{
    for (int i = 0; dp->opts.zero >= 3 && i < dp->nu; i++) {
        WEFT_CHECK(wait_gather(dp, &dp->u[i]));
        release_unit(dp, &dp->u[i]);
    }
    dp->whole = 0;
    return 0;
}

int weft_dp_gather_all(weft_dp *dp)
{
    if (dp->opts.zero < 3 || dp->whole)
        return 0;
    WEFT_CHECK(weft_dp_release_params(dp));
    for (int i = 0; i < dp->nu; i++)
        WEFT_CHECK(launch_gather(dp, &dp->u[i]));
    for (int i = 0; i < dp->nu; i++)
        WEFT_CHECK(wait_gather(dp, &dp->u[i]));
    dp->whole = 1;
    WEFT_INVARIANT(weft_dp_check(dp, 0, "every unit gathered"), "dp");
    return 0;
}

static int cmp_desc(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x < y) - (x > y);
}

/* The most parameter floats gathered at once, as a bound: a unit in use,
 * the tied embedding beside the head, and the prefetched ones -- the
 * prefetch + 2 largest units' pages outside the shard. */
static size_t pool_bound(const weft_dp *dp)
{
    size_t *sz = calloc((size_t)dp->nu, sizeof *sz), total = 0;
    if (!sz)
        return 0;
    for (int i = 0; i < dp->nu; i++)
        for (int j = dp->u[i].b0; j < dp->u[i].b0 + dp->u[i].nb; j++)
            sz[i] += dp->b[j].pdrop[0][1] - dp->b[j].pdrop[0][0] + dp->b[j].pdrop[1][1] - dp->b[j].pdrop[1][0];
    qsort(sz, (size_t)dp->nu, sizeof *sz, cmp_desc);
    for (int i = 0; i < dp->nu && i < dp->opts.prefetch + 2; i++)
        total += sz[i];
    free(sz);
    return total;
}

/* The units over the buckets dp.c cut (from the end: the last unit's
 * buckets first), and every unit given back: the model was built whole. */
int weft_dp_z3_setup(weft_dp *dp)
{
    dp->nu = dp->opts.nunits;
    dp->u = calloc((size_t)dp->nu, sizeof *dp->u);
    if (!dp->u)
        return weft_error(WEFT_ENOMEM, "data parallel: %d ZeRO-3 units: out of memory", dp->nu);
    for (int i = 0; i < dp->nu; i++) {
        unit *u = &dp->u[i];
        u->start = dp->opts.units[i];
        u->len = (i + 1 < dp->nu ? dp->opts.units[i + 1] : dp->n) - u->start;
        u->b0 = -1;
        for (int k = 0; k < dp->nb; k++) /* contiguous: dp.c cut the unit into them */
            if (dp->b[k].start >= u->start && dp->b[k].start < u->start + u->len) {
                u->b0 = u->b0 < 0 ? k : u->b0;
                u->nb++;
            }
        if (u->nb == 0)
            return weft_error(WEFT_EINTERNAL, "data parallel: ZeRO-3 unit %d [%zu, %zu) has no buckets", i,
                              u->start, u->start + u->len);
    }
    dp->pool = pool_bound(dp);
    const char *e = getenv("WEFT_ZERO3_POISON");
    dp->poison = e && *e == '1';
    e = getenv("WEFT_ZERO3_PROGRESS"); /* bench_train zero: the same run without the progress points */
    dp->no_progress = e && *e == '0';
    return weft_dp_release_params(dp);
}

void weft_dp_z3_free(weft_dp *dp)
{
    free(dp->u);
    dp->u = NULL;
}

void weft_dp_gather_times(const weft_dp *dp, int64_t *gather_ns, int64_t *wait_ns)
{
    *gather_ns = dp->gather_ns;
    *wait_ns = dp->gather_wait_ns;
}
