/*
 * dp.c -- bucketed, overlapped gradient averaging and ZeRO-1/2. See dp.h.
 *
 * Bucket states within a step: idle -> launched (request in flight) ->
 * done. weft_dp_begin resets every bucket to idle; the hook launches and
 * polls; finish_grads launches the rest and waits. An error in the hook
 * (which cannot return one) is kept and returned by finish_grads.
 *
 * Trace: each bucket's reduction is one span "bucket.N.reduce" on the
 * gradient-reduction lane, from its launch to when a poll or wait saw it
 * done (so its end is as late as the next poll), beside backward on the
 * compute lane.
 */
#include "parallel/dp_int.h"
#include "kernels/ops.h"
#include "runtime/error.h"
#include "runtime/fault.h"
#include "runtime/invariant.h"
#include "runtime/timer.h"
#include "runtime/trace.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

const weft_config_key weft_parallel_config_keys[] = {
    {"parallel.zero", WEFT_CFG_INT, "0", 0, 3, NULL,
     "ZeRO stage: 0 replicates optimizer state, 1 shards it across data-parallel ranks, 2 also keeps only "
     "this rank's shard of the reduced gradients, 3 also of the parameters (each layer's gathered before "
     "its forward and its backward)"},
    {"parallel.zero_prefetch", WEFT_CFG_INT, "1", 0, 16, NULL,
     "ZeRO-3: how many layers ahead to launch parameter gathers, so they overlap the current layer's "
     "compute (0: gather each layer only when it is needed)"},
    {"parallel.bucket_mb", WEFT_CFG_FLOAT, "4", 0.001, 4096, NULL,
     "gradient bucket size in MiB; buckets are reduced while backward runs"},
    WEFT_CONFIG_END,
};

void weft_dp_opts_from_config(const weft_config *cfg, weft_dp_opts *o)
{
    o->zero = (int)weft_config_int(cfg, "parallel.zero");
    o->bucket_bytes = (size_t)(weft_config_float(cfg, "parallel.bucket_mb") * 1048576.0);
    o->prefetch = (int)weft_config_int(cfg, "parallel.zero_prefetch");
}

/* The whole pages of [a, b) (float offsets into buf), as float offsets
 * [out[0], out[1]) (equal: none). Only whole pages can be given back; the
 * partial pages at the edges stay. */
void weft_dp_whole_pages(const float *buf, size_t a, size_t b, size_t out[2])
{
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)(buf + a) + pg - 1) / pg * pg, hi = (uintptr_t)(buf + b) / pg * pg;
    out[0] = out[1] = a;
    if (b > a && hi > lo) {
        out[0] = (size_t)((const float *)lo - buf);
        out[1] = (size_t)((const float *)hi - buf);
    }
}

/* ZeRO-2: give the pages of a reduced bucket outside this rank's shard back
 * to the system. They are private anonymous memory (the model's calloc),
 * so the next touch maps a zeroed page: the next step's backward finds them
 * zero without a memset, and they are resident only while it writes them. */
void weft_dp_drop(float *buf, const size_t (*drop)[2])
{
    for (int j = 0; j < 2; j++)
        if (drop[j][1] > drop[j][0])
            madvise(buf + drop[j][0], (drop[j][1] - drop[j][0]) * sizeof(float), MADV_DONTNEED);
}

/* Bucket k just completed. */
static void complete(weft_dp *dp, bucket *k)
{
    k->state = DONE;
    if (dp->opts.zero >= 2)
        weft_dp_drop(dp->grads, (const size_t(*)[2])k->drop);
    dp->t_last_done = weft_now_ns();
    weft_trace_end("bucket.%d.reduce", "comm", WEFT_TRACE_COMM, (int)(k - dp->b), k->t_launch);
}

/* Cut [lo, hi) into buckets of at most cap floats from its end. */
static void cut(weft_dp *dp, size_t lo, size_t hi, size_t cap)
{
    int size = weft_comm_size(dp->comm), rank = weft_comm_rank(dp->comm);
    for (size_t end = hi; end > lo;) {
        size_t start = end - lo > cap ? end - cap : lo;
        bucket *k = &dp->b[dp->nb++];
        k->start = start;
        k->len = end - start;
        weft_comm_chunk(k->len, size, rank, &k->shard_off, &k->shard_len);
        size_t s0 = start + k->shard_off, s1 = s0 + k->shard_len;
        if (dp->opts.zero >= 2) {
            weft_dp_whole_pages(dp->grads, start, s0, k->drop[0]);
            weft_dp_whole_pages(dp->grads, s1, end, k->drop[1]);
            dp->dropped += k->drop[0][1] - k->drop[0][0] + k->drop[1][1] - k->drop[1][0];
        }
        if (dp->opts.zero >= 3) {
            weft_dp_whole_pages(dp->params, start, s0, k->pdrop[0]);
            weft_dp_whole_pages(dp->params, s1, end, k->pdrop[1]);
            dp->pdropped += k->pdrop[0][1] - k->pdrop[0][0] + k->pdrop[1][1] - k->pdrop[1][0];
        }
        end = start;
    }
}

/* Buckets from the end of the buffer towards its start (the order backward
 * finishes it); under ZeRO-3 none straddles two units, so a unit's gather
 * is whole buckets. */
static void make_buckets(weft_dp *dp)
{
    size_t cap = dp->opts.bucket_bytes / sizeof(float);
    cap = cap ? cap : 1;
    if (dp->opts.zero < 3) {
        cut(dp, 0, dp->n, cap);
        return;
    }
    for (int i = dp->opts.nunits - 1; i >= 0; i--)
        cut(dp, dp->opts.units[i], i + 1 < dp->opts.nunits ? dp->opts.units[i + 1] : dp->n, cap);
}

int weft_dp_new(weft_comm *comm, float *params, float *grads, size_t n, const weft_dp_opts *o, weft_dp **out)
{
    if (!comm || !params || !grads || !n || !o->ops)
        return weft_error(WEFT_EINVAL, "weft_dp_new: communicator, buffers, a size and the model's ops table are "
                          "required");
    weft_dp *dp = calloc(1, sizeof *dp);
    size_t cap = o->bucket_bytes / sizeof(float);
    size_t nb = (n + (cap ? cap : 1) - 1) / (cap ? cap : 1) + (o->zero >= 3 ? (size_t)o->nunits : 0);
    if (dp)
        dp->b = calloc(nb, sizeof *dp->b);
    if (!dp || !dp->b) {
        free(dp);
        return weft_error(WEFT_ENOMEM, "data parallel: %zu buckets: out of memory", nb);
    }
    dp->comm = comm;
    dp->params = params;
    dp->grads = grads;
    dp->n = n;
    dp->opts = *o;
    if (o->zero >= 3 && (!o->units || o->nunits < 1 || o->units[0] != 0)) {
        free(dp->b);
        free(dp);
        return weft_error(WEFT_EINVAL, "weft_dp_new: ZeRO-3 needs the model's units (model.h)");
    }
    make_buckets(dp);
    /* Every bucket may be in flight at once (ZeRO-3: its reduction and its
     * gather), plus the step's small reductions (loss, norm): reserve them
     * now, not in the steady state. */
    int rc = weft_comm_reserve(comm, (o->zero >= 3 ? 2 : 1) * dp->nb + 2);
    if (rc == 0 && o->zero >= 3)
        rc = weft_dp_z3_setup(dp);
    if (rc) {
        weft_dp_free(dp);
        return rc;
    }
    WEFT_INVARIANT(weft_dp_check(dp, 0, "created"), "dp");
    *out = dp;
    return 0;
}

void weft_dp_free(weft_dp *dp)
{
    if (!dp)
        return;
    weft_dp_z3_free(dp);
    free(dp->b);
    free(dp);
}

/* Zero [a, b) but for the dropped pages inside it (already zero, and not
 * to be touched: that would map them again). */
static void zero_kept(weft_ops *ops, float *g, size_t a, size_t b, const size_t (*drop)[2])
{
    for (int j = 0; j < 2 && a < b; j++) {
        if (drop[j][1] <= drop[j][0] || drop[j][1] <= a || drop[j][0] >= b)
            continue;
        ops->zero(ops, g + a, drop[j][0] - a);
        a = drop[j][1];
    }
    if (a < b)
        ops->zero(ops, g + a, b - a);
}

void weft_dp_zero_grads(weft_dp *dp)
{
    weft_ops *ops = dp->opts.ops;
    if (dp->opts.zero < 2) {
        ops->zero(ops, dp->grads, dp->n);
        return;
    }
    for (int i = 0; i < dp->nb; i++) {
        bucket *k = &dp->b[i];
        zero_kept(ops, dp->grads, k->start, k->start + k->len, (const size_t(*)[2])k->drop);
    }
}

void weft_dp_begin(weft_dp *dp)
{
    for (int i = 0; i < dp->nb; i++)
        dp->b[i].state = IDLE;
    dp->next = 0;
    dp->err = 0;
    dp->t_first_launch = dp->t_last_done = dp->exposed_ns = dp->t_finished = 0;
    dp->gather_ns = dp->gather_wait_ns = 0;
    WEFT_INVARIANT(weft_dp_check(dp, 0, "a step begun"), "dp");
}

static int launch(weft_dp *dp, bucket *k)
{
    float *g = dp->grads + k->start;
    if (dp->t_first_launch == 0)
        dp->t_first_launch = weft_now_ns();
    k->state = LAUNCHED;
    k->t_launch = weft_trace_begin();
    if (dp->opts.zero)
        return weft_comm_ireduce_scatter(dp->comm, g, g + k->shard_off, k->len, WEFT_F32, WEFT_AVG, &k->req);
    return weft_comm_iallreduce(dp->comm, g, g, k->len, WEFT_F32, WEFT_AVG, &k->req);
}

/* Test every bucket in flight once, so the collectives progress. */
int weft_dp_poll(weft_dp *dp)
{
    for (int i = 0; i < dp->next; i++) {
        bucket *k = &dp->b[i];
        int done = 0;
        if (k->state != LAUNCHED)
            continue;
        WEFT_CHECK(weft_request_test(k->req, &done));
        if (done)
            complete(dp, k);
    }
    return 0;
}

/* ZeRO-2/3: at most WEFT_DP_IN_FLIGHT (dp.h) buckets' reductions in flight
 * during backward; an older one is waited for in the hook. The backends
 * other than MPI move a collective only while it is tested or waited, so
 * without a bound every reduction would finish in finish_grads, after
 * backward had written -- and kept resident -- the whole gradient buffer.
 * The memory planner counts the bound too. */
static int bound_in_flight(weft_dp *dp)
{
    for (int i = 0; dp->opts.zero >= 2 && i < dp->next - WEFT_DP_IN_FLIGHT; i++) {
        bucket *k = &dp->b[i];
        if (k->state != LAUNCHED)
            continue;
        WEFT_CHECK(weft_request_wait(k->req));
        complete(dp, k);
    }
    return 0;
}

void weft_dp_hook(void *arg, size_t offset)
{
    weft_dp *dp = arg;
    if (dp->err)
        return;
    while (dp->next < dp->nb && dp->b[dp->next].start >= offset) {
        int rc = launch(dp, &dp->b[dp->next++]);
        if (rc) {
            dp->err = rc;
            return;
        }
    }
    int rc = weft_dp_poll(dp);
    rc = rc ? rc : bound_in_flight(dp);
    if (rc)
        dp->err = rc;
    WEFT_INVARIANT(weft_dp_check(dp, -1, "a backward hook"), "dp");
}

int weft_dp_finish_grads(weft_dp *dp)
{
    int64_t t0 = weft_now_ns();
    weft_dp_hook(dp, 0);
    if (dp->err)
        return dp->err;
    weft_fault_at(WEFT_FAULT_GRAD_REDUCE, -1); /* hold_grad: the reductions in flight, none waited for */
    for (int i = 0; i < dp->nb; i++) {
        bucket *k = &dp->b[i];
        if (k->state != LAUNCHED)
            continue;
        WEFT_CHECK(weft_request_wait(k->req));
        complete(dp, k);
    }
    dp->t_finished = weft_now_ns();
    dp->exposed_ns = dp->t_finished - t0;
    WEFT_INVARIANT(weft_dp_check(dp, 1, "the gradients reduced"), "dp");
    return 0;
}

int weft_dp_nshards(const weft_dp *dp) { return dp->opts.zero ? dp->nb : 1; }

void weft_dp_mem(const weft_dp *dp, weft_dp_mem_bytes *out)
{
    size_t all = dp->n * sizeof(float), shard = weft_dp_shard_total(dp) * sizeof(float);
    memset(out, 0, sizeof *out);
    out->params = dp->opts.zero >= 3 ? all - dp->pdropped * sizeof(float) : all;
    out->grads_peak = all;
    out->grads = dp->opts.zero >= 2 ? all - dp->dropped * sizeof(float) : all;
    out->optim_shard = shard;
    out->comm = (size_t)dp->nb * sizeof(bucket) + (size_t)dp->nu * sizeof(unit);
    out->gather_pool = dp->pool * sizeof(float);
}

void weft_dp_shard(const weft_dp *dp, int i, size_t *offset, size_t *len)
{
    if (!dp->opts.zero) {
        *offset = 0;
        *len = dp->n;
        return;
    }
    *offset = dp->b[i].start + dp->b[i].shard_off;
    *len = dp->b[i].shard_len;
}

size_t weft_dp_shard_total(const weft_dp *dp)
{
    size_t total = 0;
    for (int i = 0; i < weft_dp_nshards(dp); i++) {
        size_t off, len;
        weft_dp_shard(dp, i, &off, &len);
        total += len;
    }
    return total;
}

int weft_dp_grad_sumsq(weft_dp *dp, double *out)
{
    const size_t all[1][2] = {{0, dp->n}};
    return weft_dp_grad_sumsq_ranges(dp, all, 1, out);
}

/* One running double over every shard x range piece, in that order (each
 * piece's sum, in a fixed order, added by ops.h's sumsq_acc): the same
 * bits on every run of a layout. */
int weft_dp_grad_sumsq_ranges(weft_dp *dp, const size_t (*ranges)[2], int n, double *out)
{
    weft_ops *ops = dp->opts.ops;
    double s = 0;
    for (int i = 0; i < weft_dp_nshards(dp); i++) {
        size_t off, len;
        weft_dp_shard(dp, i, &off, &len);
        for (int r = 0; r < n; r++) { /* shard and range intersected */
            size_t a = off > ranges[r][0] ? off : ranges[r][0];
            size_t e1 = off + len, e2 = ranges[r][0] + ranges[r][1], b = e1 < e2 ? e1 : e2;
            if (a < b)
                ops->sumsq_acc(ops, &s, dp->grads + a, b - a);
        }
    }
    WEFT_CHECK(weft_ops_status(ops));
    if (dp->opts.zero)
        WEFT_CHECK(weft_comm_allreduce(dp->comm, &s, &s, 1, WEFT_F64, WEFT_SUM));
    *out = s;
    return 0;
}

int weft_dp_gather_params(weft_dp *dp)
{
    if (dp->opts.zero >= 3)
        return weft_dp_release_params(dp);
    if (!dp->opts.zero)
        return 0;
    /* All in flight at once, then waited: the gathers overlap each other. */
    for (int i = 0; i < dp->nb; i++) {
        bucket *k = &dp->b[i];
        float *p = dp->params + k->start;
        WEFT_CHECK(weft_comm_iallgather(dp->comm, p + k->shard_off, p, k->len, WEFT_F32, &k->req));
    }
    for (int i = 0; i < dp->nb; i++)
        WEFT_CHECK(weft_request_wait(dp->b[i].req));
    return 0;
}

int64_t weft_dp_exposed_ns(const weft_dp *dp) { return dp->exposed_ns; }
/* The window ends when finish_grads returns, not at the last completion: the
 * step cannot use the gradients before then, and the exposed wait then lies
 * inside the window whenever a bucket was launched before finish_grads. */
int64_t weft_dp_comm_span_ns(const weft_dp *dp)
{
    return dp->t_first_launch && dp->t_finished > dp->t_first_launch ? dp->t_finished - dp->t_first_launch : 0;
}
int weft_dp_nbuckets(const weft_dp *dp) { return dp->nb; }
weft_comm *weft_dp_comm(const weft_dp *dp) { return dp->comm; }

/* make_buckets' cuts without units: the elements of this rank's shard, and
 * the ranges outside it each bucket gives back (ZeRO-2/3). */
static size_t plan_cuts(size_t n, const weft_dp_opts *o, int size, int rank, size_t *nranges)
{
    size_t cap = o->bucket_bytes / sizeof(float), total = 0;
    if (cap < 1)
        cap = 1;
    *nranges = 0;
    for (size_t end = n; end > 0;) {
        size_t start = end > cap ? end - cap : 0, off, len;
        weft_comm_chunk(end - start, size, rank, &off, &len);
        total += len;
        *nranges += (off > 0) + (off + len < end - start);
        end = start;
    }
    return total;
}

size_t weft_dp_plan_shard(size_t n, const weft_dp_opts *o, int size, int rank)
{
    size_t nranges;
    return o->zero ? plan_cuts(n, o, size, rank, &nranges) : n;
}

size_t weft_dp_plan_kept(size_t n, const weft_dp_opts *o, int size, int rank)
{
    size_t nranges, shard = plan_cuts(n, o, size, rank, &nranges);
    size_t kept = shard + nranges * ((size_t)sysconf(_SC_PAGESIZE) / sizeof(float));
    return o->zero < 2 || size < 2 || kept > n ? n : kept;
}
