/*
 * dp.c -- bucketed, overlapped gradient averaging and ZeRO-1. See dp.h.
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
#include "parallel/dp.h"
#include "runtime/error.h"
#include "runtime/timer.h"
#include "runtime/trace.h"

#include <stdlib.h>

const weft_config_key weft_parallel_config_keys[] = {
    {"parallel.zero", WEFT_CFG_INT, "0", 0, 1, NULL,
     "ZeRO stage: 0 replicates optimizer state, 1 shards it across data-parallel ranks"},
    {"parallel.bucket_mb", WEFT_CFG_FLOAT, "4", 0.001, 4096, NULL,
     "gradient bucket size in MiB; buckets are reduced while backward runs"},
    WEFT_CONFIG_END,
};

void weft_dp_opts_from_config(const weft_config *cfg, weft_dp_opts *o)
{
    o->zero = (int)weft_config_int(cfg, "parallel.zero");
    o->bucket_bytes = (size_t)(weft_config_float(cfg, "parallel.bucket_mb") * 1048576.0);
}

enum { IDLE, LAUNCHED, DONE };

typedef struct {
    size_t start, len;          /* range of the flat buffer */
    size_t shard_off, shard_len; /* this rank's chunk within it (ZeRO-1) */
    int state;
    weft_request *req;
    int64_t t_launch;            /* trace: when it was launched */
} bucket;

struct weft_dp {
    weft_comm *comm;
    float *params, *grads;
    size_t n;
    weft_dp_opts opts;
    bucket *b;
    int nb, next;      /* buckets, and the next one to launch */
    int err;           /* first error seen in the hook */
    int64_t t_first_launch, t_last_done, exposed_ns;
    int64_t t_finished;          /* when weft_dp_finish_grads returned */
};

/* Bucket k just completed. */
static void complete(weft_dp *dp, bucket *k)
{
    k->state = DONE;
    dp->t_last_done = weft_now_ns();
    weft_trace_end("bucket.%d.reduce", "comm", WEFT_TRACE_COMM, (int)(k - dp->b), k->t_launch);
}

static void make_buckets(weft_dp *dp)
{
    size_t cap = dp->opts.bucket_bytes / sizeof(float);
    if (cap < 1)
        cap = 1;
    int size = weft_comm_size(dp->comm), rank = weft_comm_rank(dp->comm);
    for (size_t end = dp->n; end > 0;) {
        size_t start = end > cap ? end - cap : 0;
        bucket *k = &dp->b[dp->nb++];
        k->start = start;
        k->len = end - start;
        weft_comm_chunk(k->len, size, rank, &k->shard_off, &k->shard_len);
        end = start;
    }
}

int weft_dp_new(weft_comm *comm, float *params, float *grads, size_t n, const weft_dp_opts *o, weft_dp **out)
{
    if (!comm || !params || !grads || !n)
        return weft_error(WEFT_EINVAL, "weft_dp_new: communicator, buffers and a size are required");
    weft_dp *dp = calloc(1, sizeof *dp);
    size_t cap = o->bucket_bytes / sizeof(float);
    size_t nb = (n + (cap ? cap : 1) - 1) / (cap ? cap : 1);
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
    make_buckets(dp);
    /* Every bucket may be in flight at once, plus the step's small
     * reductions (loss, norm): reserve them now, not in the steady state. */
    int rc = weft_comm_reserve(comm, dp->nb + 2);
    if (rc) {
        weft_dp_free(dp);
        return rc;
    }
    *out = dp;
    return 0;
}

void weft_dp_free(weft_dp *dp)
{
    if (!dp)
        return;
    free(dp->b);
    free(dp);
}

void weft_dp_begin(weft_dp *dp)
{
    for (int i = 0; i < dp->nb; i++)
        dp->b[i].state = IDLE;
    dp->next = 0;
    dp->err = 0;
    dp->t_first_launch = dp->t_last_done = dp->exposed_ns = dp->t_finished = 0;
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
static int poll(weft_dp *dp)
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
    int rc = poll(dp);
    if (rc)
        dp->err = rc;
}

int weft_dp_finish_grads(weft_dp *dp)
{
    int64_t t0 = weft_now_ns();
    weft_dp_hook(dp, 0);
    if (dp->err)
        return dp->err;
    for (int i = 0; i < dp->nb; i++) {
        bucket *k = &dp->b[i];
        if (k->state != LAUNCHED)
            continue;
        WEFT_CHECK(weft_request_wait(k->req));
        complete(dp, k);
    }
    dp->t_finished = weft_now_ns();
    dp->exposed_ns = dp->t_finished - t0;
    return 0;
}

int weft_dp_nshards(const weft_dp *dp) { return dp->opts.zero ? dp->nb : 1; }

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

int weft_dp_grad_sumsq_ranges(weft_dp *dp, const size_t (*ranges)[2], int n, double *out)
{
    double s = 0;
    for (int i = 0; i < weft_dp_nshards(dp); i++) {
        size_t off, len;
        weft_dp_shard(dp, i, &off, &len);
        for (int r = 0; r < n; r++) { /* shard and range intersected */
            size_t a = off > ranges[r][0] ? off : ranges[r][0];
            size_t e1 = off + len, e2 = ranges[r][0] + ranges[r][1], b = e1 < e2 ? e1 : e2;
            for (size_t j = a; j < b; j++)
                s += (double)dp->grads[j] * dp->grads[j];
        }
    }
    if (dp->opts.zero)
        WEFT_CHECK(weft_comm_allreduce(dp->comm, &s, &s, 1, WEFT_F64, WEFT_SUM));
    *out = s;
    return 0;
}

int weft_dp_gather_params(weft_dp *dp)
{
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

size_t weft_dp_plan_shard(size_t n, const weft_dp_opts *o, int size, int rank)
{
    if (!o->zero)
        return n;
    size_t cap = o->bucket_bytes / sizeof(float), total = 0;
    if (cap < 1)
        cap = 1;
    for (size_t end = n; end > 0;) { /* make_buckets' cuts */
        size_t start = end > cap ? end - cap : 0, off, len;
        weft_comm_chunk(end - start, size, rank, &off, &len);
        total += len;
        end = start;
    }
    return total;
}
