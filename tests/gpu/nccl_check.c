/*
 * nccl_check.c -- the nccl backend on GPU buffers, one rank per GPU: every
 * operation and dtype against a reference computed on the host (every rank
 * can compute every rank's contribution, so no second backend is needed),
 * even and uneven splits, in-place forms, async completion, and the refusals
 * (host pointers, integer AVG, comm.deterministic). Run by tests/gpu/run.sh.
 *
 * Contributions are small integers, exact in every dtype (bf16 holds
 * integers up to 256 exactly), so sums are compared for equality.
 */
#include "weft.h"
#include "tests/mpi/mpitap.h"

#include <cuda_runtime_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int me, n;

/* Rank r's element i: a small integer that differs by rank and index. */
static double contrib(int r, size_t i) { return (double)((r * 7 + (int)(i % 13)) % 17); }

static void fill(void *host, weft_dtype dt, size_t count, int r, size_t base)
{
    for (size_t i = 0; i < count; i++)
        weft_dtype_store(host, i, dt, contrib(r, base + i));
}

static double reduce_ref(weft_redop op, size_t i)
{
    double acc = contrib(0, i);
    for (int r = 1; r < n; r++) {
        double v = contrib(r, i);
        acc = op == WEFT_MAX ? (v > acc ? v : acc) : op == WEFT_MIN ? (v < acc ? v : acc) : acc + v;
    }
    return op == WEFT_AVG ? acc / n : acc;
}

static void *dev_alloc(size_t bytes)
{
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess)
        tap_fail("cudaMalloc(%zu) failed", bytes);
    return p;
}

static int compare(const void *host, weft_dtype dt, size_t count, double (*want)(size_t, void *), void *arg,
                   const char *what)
{
    for (size_t i = 0; i < count; i++) {
        double got = weft_dtype_load(host, i, dt), w = want(i, arg);
        double tol = dt == WEFT_BF16 || dt == WEFT_F16 ? 0.02 * (w < 0 ? -w : w) + 1e-3 : 1e-9;
        if (got - w > tol || w - got > tol) {
            tap_fail("%s %s: element %zu is %g, want %g", what, weft_dtype_name(dt), i, got, w);
            return -1;
        }
    }
    return 0;
}

typedef struct { weft_redop op; size_t base; } red_arg;
static double want_reduce(size_t i, void *a) { red_arg *x = a; return reduce_ref(x->op, x->base + i); }

static void test_allreduce(weft_comm *c)
{
    static const weft_dtype dts[] = {WEFT_F32, WEFT_F64, WEFT_BF16, WEFT_F16, WEFT_I32, WEFT_I64, WEFT_U8};
    static const size_t counts[] = {1, 1000, (1u << 20) + 3};
    tap_begin();
    for (size_t d = 0; d < sizeof dts / sizeof *dts; d++)
        for (size_t k = 0; k < 3; k++)
            for (int op = 0; op < WEFT_NREDOPS; op++) {
                weft_dtype dt = dts[d];
                if (op == WEFT_AVG && !weft_dtype_is_float(dt))
                    continue;
                size_t count = counts[k], bytes = count * weft_dtype_size(dt);
                void *h = malloc(bytes), *dsend = dev_alloc(bytes), *drecv = dev_alloc(bytes);
                fill(h, dt, count, me, 0);
                cudaMemcpy(dsend, h, bytes, cudaMemcpyHostToDevice);
                int inplace = k == 1;
                int rc = weft_comm_allreduce(c, dsend, inplace ? dsend : drecv, count, dt, (weft_redop)op);
                TAP_CHECK(rc == 0, "allreduce: %s", weft_last_error());
                cudaMemcpy(h, inplace ? dsend : drecv, bytes, cudaMemcpyDeviceToHost);
                red_arg a = {(weft_redop)op, 0};
                if (rc == 0 && compare(h, dt, count, want_reduce, &a, weft_redop_name((weft_redop)op)) < 0)
                    printf("# rank %d: allreduce %s %s count %zu %s is wrong\n", me, weft_redop_name((weft_redop)op),
                           weft_dtype_name(dt), count, inplace ? "in place" : "out of place");
                free(h);
                cudaFree(dsend);
                cudaFree(drecv);
            }
    tap_end("nccl allreduce: 7 dtypes x sum/avg/max/min x 3 sizes, in place and not (%d ranks)", n);
}

static void test_scatter_gather(weft_comm *c)
{
    tap_begin();
    for (size_t count = 1000 * (size_t)n; count <= 1000 * (size_t)n + 1; count++) { /* even, then uneven */
        size_t bytes = count * 4, off, len;
        weft_comm_chunk(count, n, me, &off, &len);
        float *h = malloc(bytes);
        void *dsend = dev_alloc(bytes), *drecv = dev_alloc(bytes);
        fill(h, WEFT_F32, count, me, 0);
        cudaMemcpy(dsend, h, bytes, cudaMemcpyHostToDevice);
        int rc = weft_comm_reduce_scatter(c, dsend, drecv, count, WEFT_F32, WEFT_SUM);
        TAP_CHECK(rc == 0, "reduce_scatter: %s", weft_last_error());
        cudaMemcpy(h, drecv, len * 4, cudaMemcpyDeviceToHost);
        red_arg a = {WEFT_SUM, off};
        if (rc == 0)
            compare(h, WEFT_F32, len, want_reduce, &a, "reduce_scatter");
        /* allgather in place: each rank's chunk already sits at its offset. */
        fill(h, WEFT_F32, count, me, 0);
        cudaMemcpy(drecv, h, bytes, cudaMemcpyHostToDevice);
        rc = weft_comm_allgather(c, (char *)drecv + off * 4, drecv, count, WEFT_F32);
        TAP_CHECK(rc == 0, "allgather: %s", weft_last_error());
        cudaMemcpy(h, drecv, bytes, cudaMemcpyDeviceToHost);
        for (int r = 0; rc == 0 && r < n; r++) {
            size_t o, l;
            weft_comm_chunk(count, n, r, &o, &l);
            for (size_t i = 0; i < l; i++)
                if (h[o + i] != (float)contrib(r, o + i)) {
                    tap_fail("allgather count %zu: element %zu is %g, want %g (rank %d's)", count, o + i,
                             h[o + i], contrib(r, o + i), r);
                    break;
                }
        }
        free(h);
        cudaFree(dsend);
        cudaFree(drecv);
    }
    tap_end("nccl reduce_scatter and in-place allgather, even and uneven counts");
}

static void test_rooted_and_alltoall(weft_comm *c)
{
    tap_begin();
    size_t count = 4099, bytes = count * 8;
    double *h = malloc(bytes * (size_t)n);
    void *d = dev_alloc(bytes * (size_t)n), *d2 = dev_alloc(bytes * (size_t)n);
    for (int root = 0; root < n; root++) {
        fill(h, WEFT_F64, count, me, 0);
        cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice);
        int rc = weft_comm_broadcast(c, d, d, count, WEFT_F64, root);
        TAP_CHECK(rc == 0, "broadcast: %s", weft_last_error());
        cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost);
        for (size_t i = 0; rc == 0 && i < count; i++)
            if (h[i] != contrib(root, i)) {
                tap_fail("broadcast from %d: element %zu is %g", root, i, h[i]);
                break;
            }
        fill(h, WEFT_F64, count, me, 0);
        cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice);
        rc = weft_comm_reduce(c, d, d2, count, WEFT_F64, WEFT_SUM, root);
        TAP_CHECK(rc == 0, "reduce: %s", weft_last_error());
        if (me == root && rc == 0) {
            cudaMemcpy(h, d2, bytes, cudaMemcpyDeviceToHost);
            red_arg a = {WEFT_SUM, 0};
            compare(h, WEFT_F64, count, want_reduce, &a, "reduce");
        }
    }
    /* alltoall: block j of rank r's send is contrib(r, j*count + i). */
    fill(h, WEFT_F64, count * (size_t)n, me, 0);
    cudaMemcpy(d, h, bytes * (size_t)n, cudaMemcpyHostToDevice);
    int rc = weft_comm_alltoall(c, d, d2, count, WEFT_F64);
    TAP_CHECK(rc == 0, "alltoall: %s", weft_last_error());
    cudaMemcpy(h, d2, bytes * (size_t)n, cudaMemcpyDeviceToHost);
    for (int r = 0; rc == 0 && r < n; r++)
        for (size_t i = 0; i < count; i++)
            if (h[(size_t)r * count + i] != contrib(r, (size_t)me * count + i)) {
                tap_fail("alltoall: block %d element %zu wrong", r, i);
                r = n;
                break;
            }
    free(h);
    cudaFree(d);
    cudaFree(d2);
    tap_end("nccl broadcast and reduce from every root, alltoall");
}

static void test_async_and_barrier(weft_comm *c)
{
    tap_begin();
    size_t count = 1 << 22, bytes = count * 4;
    float *h = malloc(bytes);
    void *d = dev_alloc(bytes);
    fill(h, WEFT_F32, count, me, 0);
    cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice);
    weft_request *r;
    int rc = weft_comm_iallreduce(c, d, d, count, WEFT_F32, WEFT_SUM, &r);
    int done = 0;
    for (long spins = 0; rc == 0 && !done && spins < 100000000L; spins++)
        rc = weft_request_test(r, &done);
    TAP_CHECK(rc == 0 && done, "iallreduce by test: rc %d done %d: %s", rc, done, weft_last_error());
    cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost);
    red_arg a = {WEFT_SUM, 0};
    if (rc == 0)
        compare(h, WEFT_F32, count, want_reduce, &a, "iallreduce");
    rc = weft_comm_barrier(c);
    TAP_CHECK(rc == 0, "barrier: %s", weft_last_error());
    if (n > 1) {
        int next = (me + 1) % n, prev = (me + n - 1) % n;
        weft_request *rs, *rr;
        void *d2 = dev_alloc(bytes);
        rc = weft_comm_irecv(c, d2, count, WEFT_F32, prev, 0, &rr);
        rc = rc ? rc : weft_comm_isend(c, d, count, WEFT_F32, next, 0, &rs);
        rc = rc ? rc : weft_request_wait(rs);
        rc = rc ? rc : weft_request_wait(rr);
        TAP_CHECK(rc == 0, "send/recv ring: %s", weft_last_error());
        cudaFree(d2);
    }
    free(h);
    cudaFree(d);
    tap_end("nccl async allreduce completed by test, barrier, send/recv");
}

static void test_refusals(weft_ctx *ctx, weft_comm *c)
{
    tap_begin();
    float host[16] = {0};
    int rc = weft_comm_allreduce(c, host, host, 16, WEFT_F32, WEFT_SUM);
    TAP_CHECK(rc == WEFT_EINVAL && strstr(weft_last_error(), "host memory"),
              "host buffer: rc %s: %s", weft_strerror(rc), weft_last_error());
    void *d = dev_alloc(64);
    rc = weft_comm_allreduce(c, d, d, 16, WEFT_I32, WEFT_AVG);
    TAP_CHECK(rc == WEFT_EUNSUPPORTED, "integer AVG: rc %s", weft_strerror(rc));
    cudaFree(d);
    TAP_CHECK(!weft_comm_failed(c), "refusals must not fail the communicator");
    weft_comm_opts o;
    weft_comm_opts_default(&o);
    snprintf(o.backend, sizeof o.backend, "nccl");
    o.deterministic = 1;
    weft_comm *det = NULL;
    rc = weft_comm_world(ctx, &o, &det);
    TAP_CHECK(rc == WEFT_EUNSUPPORTED && strstr(weft_last_error(), "deterministic"),
              "deterministic: rc %s: %s", weft_strerror(rc), weft_last_error());
    if (det)
        weft_comm_free(det);
    tap_end("nccl refuses host buffers, integer AVG and comm.deterministic with clear errors");
}

int main(int argc, char **argv)
{
    static const weft_config_key *const keys[] = {weft_comm_config_keys, NULL};
    weft_ctx *ctx;
    if (weft_init(&argc, argv, keys, &ctx))
        return 1;
    me = ctx->rank;
    n = ctx->size;
    tap_rank = me;
    weft_comm_opts o;
    weft_comm_opts_from_config(ctx->config, &o);
    snprintf(o.backend, sizeof o.backend, "nccl");
    weft_comm *c;
    if (weft_comm_world(ctx, &o, &c)) {
        printf("not ok 1 - nccl communicator: %s\n", weft_last_error());
        weft_finalize(ctx);
        return 1;
    }
    if (me == 0)
        printf("# nccl backend on %d rank%s\n", n, n > 1 ? "s" : "");
    test_allreduce(c);
    test_scatter_gather(c);
    test_rooted_and_alltoall(c);
    test_async_and_barrier(c);
    test_refusals(ctx, c);
    weft_comm_free(c);
    weft_finalize(ctx);
    return tap_total_failed ? 1 : 0;
}
