/*
 * comm_misc.c -- the rest of the communicator contract, on 1 to 4 ranks:
 * point-to-point ring exchange, barrier, request test(), invalid arguments
 * (each a WEFT_EINVAL with a message, never a crash), the cross-rank
 * argument check, sticky failure after a timeout and after a short receive,
 * dup, and the flight recorder ring.
 */
#include "weft.h"
#include "tests/mpi/mpitap.h"

#include <stdlib.h>
#include <string.h>

static void test_ring(weft_comm *c)
{
    int me = weft_comm_rank(c), n = weft_comm_size(c);
    int next = (me + 1) % n, prev = (me + n - 1) % n;
    tap_begin();
    for (int dt = 0; dt < WEFT_NDTYPES; dt++) {
        size_t count = 1001, es = weft_dtype_size((weft_dtype)dt);
        unsigned char *out = malloc(count * es), *in = malloc(count * es);
        for (size_t i = 0; i < count * es; i++)
            out[i] = (unsigned char)(me * 31 + i * 7 + dt);
        weft_request *rr, *rs;
        int rc = weft_comm_irecv(c, in, count, dt, prev, 100 + dt, &rr);
        rc = rc ? rc : weft_comm_isend(c, out, count, dt, next, 100 + dt, &rs);
        rc = rc ? rc : weft_request_wait(rs);
        rc = rc ? rc : weft_request_wait(rr);
        TAP_CHECK(rc == 0, "ring %s: %s", weft_dtype_name(dt), weft_last_error());
        for (size_t i = 0; rc == 0 && i < count * es; i++)
            if (in[i] != (unsigned char)(prev * 31 + i * 7 + dt)) {
                tap_fail("ring %s: byte %zu from rank %d is wrong", weft_dtype_name(dt), i, prev);
                break;
            }
        free(out);
        free(in);
    }
    tap_end("send/recv ring, every dtype (%d ranks)", n);
}

static void test_barrier_and_test(weft_comm *c)
{
    tap_begin();
    int rc = weft_comm_barrier(c);
    TAP_CHECK(rc == 0, "barrier: %s", weft_last_error());
    weft_request *r;
    rc = weft_comm_ibarrier(c, &r);
    int done = 0, spins = 0;
    while (rc == 0 && !done && spins++ < 50000000)
        rc = weft_request_test(r, &done);
    TAP_CHECK(rc == 0 && done, "ibarrier via test: rc %d done %d: %s", rc, done, weft_last_error());
    rc = weft_request_wait(r); /* released already: must be refused, not crash */
    TAP_CHECK(rc == WEFT_EINVAL, "waiting on a released request returned %d", rc);
    tap_end("barrier, ibarrier completed by test, released request refused");
}

static void expect_einval(int rc, const char *what, const char *needle)
{
    if (rc != WEFT_EINVAL)
        tap_fail("%s: rc %s, want WEFT_EINVAL", what, weft_strerror(rc));
    else if (!strstr(weft_last_error(), needle))
        tap_fail("%s: message '%s' lacks '%s'", what, weft_last_error(), needle);
}

static void test_invalid(weft_comm *c)
{
    int n = weft_comm_size(c);
    float a[64] = {0}, b[64] = {0};
    weft_request *r;
    tap_begin();
    expect_einval(weft_comm_allreduce(c, NULL, b, 4, WEFT_F32, WEFT_SUM), "null send", "send buffer is NULL");
    expect_einval(weft_comm_allreduce(c, a, NULL, 4, WEFT_F32, WEFT_SUM), "null recv", "receive buffer is NULL");
    expect_einval(weft_comm_allreduce(c, a, b, 4, (weft_dtype)99, WEFT_SUM), "bad dtype", "unknown dtype");
    expect_einval(weft_comm_allreduce(c, a, b, 4, WEFT_F32, (weft_redop)9), "bad op", "unknown reduction op");
    expect_einval(weft_comm_allreduce(c, a, a + 1, 4, WEFT_F32, WEFT_SUM), "overlap", "overlap");
    expect_einval(weft_comm_broadcast(c, a, b, 4, WEFT_F32, n), "root == size", "root out of range");
    expect_einval(weft_comm_reduce(c, a, b, 4, WEFT_F32, WEFT_SUM, -1), "root -1", "root out of range");
    expect_einval(weft_comm_send(c, a, 4, WEFT_F32, n + 3, 0), "peer", "peer out of range");
    expect_einval(weft_comm_send(c, a, 4, WEFT_F32, 0, 40000), "tag", "tag must be");
    expect_einval(weft_comm_allreduce(NULL, a, b, 4, WEFT_F32, WEFT_SUM), "null comm", "communicator is NULL");
    expect_einval(weft_comm_iallreduce(c, a, b, 4, WEFT_F32, WEFT_SUM, NULL), "null request", "request pointer");
    expect_einval(weft_comm_allreduce(c, a, b, SIZE_MAX / 2, WEFT_F32, WEFT_SUM), "huge count", "overflows");
    expect_einval(weft_request_wait(NULL), "wait NULL", "request is NULL");
    if (n > 1) /* a reduce_scatter receive buffer inside send but not at this rank's offset */
        expect_einval(weft_comm_reduce_scatter(c, a, a + 63 - weft_comm_rank(c), 64, WEFT_F32, WEFT_SUM),
                      "reduce_scatter misplaced in-place", "overlap");
    (void)r;
    /* The communicator is still healthy after all of that. */
    for (int i = 0; i < 4; i++) a[i] = 1;
    int rc = weft_comm_allreduce(c, a, b, 4, WEFT_F32, WEFT_SUM);
    TAP_CHECK(rc == 0 && b[3] == (float)n, "allreduce after bad calls: rc %d b %g", rc, b[3]);
    TAP_CHECK(weft_comm_failed(c) == 0, "communicator failed by argument errors");
    tap_end("invalid arguments give WEFT_EINVAL with a message and leave the communicator healthy");
}

static void test_check_args(weft_ctx *ctx, weft_comm *world, const weft_comm_opts *base)
{
    weft_comm_opts o = *base;
    o.check_args = 1;
    weft_comm *c = NULL;
    MPI_Comm raw;
    MPI_Comm_dup(ctx->world, &raw);
    tap_begin();
    int rc = weft_comm_world(ctx, &o, &c);
    TAP_CHECK(rc == 0, "create: %s", weft_last_error());
    float a[16] = {0}, b[16];
    rc = weft_comm_allreduce(c, a, b, 8, WEFT_F32, WEFT_SUM);
    TAP_CHECK(rc == 0, "matching arguments refused: %s", weft_last_error());
    if (ctx->size > 1) {
        rc = weft_comm_allreduce(c, a, b, 8 + (size_t)ctx->rank, WEFT_F32, WEFT_SUM);
        expect_einval(rc, "count differs across ranks", "disagree on the count");
        rc = weft_comm_broadcast(c, a, b, 8, WEFT_F32, ctx->rank == 0 ? 1 : 0);
        expect_einval(rc, "root differs across ranks", "disagree on the root");
        rc = weft_comm_allreduce(c, a, b, 8, ctx->rank ? WEFT_F32 : WEFT_F64, WEFT_SUM);
        expect_einval(rc, "dtype differs across ranks", "disagree on the dtype");
    }
    rc = weft_comm_allreduce(c, a, b, 8, WEFT_F32, WEFT_MAX);
    TAP_CHECK(rc == 0, "still usable after mismatches: %s", weft_last_error());
    weft_comm_free(c);
    MPI_Comm_free(&raw);
    (void)world;
    tap_end("comm.check_args names arguments that disagree across ranks");
}

/* Rank 0 waits alone until comm.timeout; the others arrive only after it
 * has seen the timeout. The communicator stays failed (sticky) even though
 * the late operation then completes. */
static void test_timeout_sticky(weft_ctx *ctx, const weft_comm_opts *base)
{
    if (ctx->size < 2)
        return;
    weft_comm_opts o = *base;
    o.timeout_s = 0.3;
    o.abort_on_timeout = 0;
    weft_comm *c;
    tap_begin();
    int rc = weft_comm_world(ctx, &o, &c);
    TAP_CHECK(rc == 0, "create: %s", weft_last_error());
    double x = ctx->rank + 1, y = 0;
    if (ctx->rank == 0) {
        weft_request *r;
        rc = weft_comm_iallreduce(c, &x, &y, 1, WEFT_F64, WEFT_SUM, &r);
        int w = rc ? rc : weft_request_wait(r);
        TAP_CHECK(w == WEFT_ETIMEDOUT, "wait returned %s, want WEFT_ETIMEDOUT", weft_strerror(w));
        TAP_CHECK(strstr(weft_last_error(), "allreduce #0") != NULL, "timeout message: %s", weft_last_error());
        TAP_CHECK(weft_comm_failed(c) == WEFT_ETIMEDOUT, "not marked failed");
        rc = weft_comm_barrier(c);
        TAP_CHECK(rc == WEFT_ESTATE && strstr(weft_last_error(), "failed earlier"),
                  "call after failure: %s %s", weft_strerror(rc), weft_last_error());
        MPI_Barrier(ctx->world); /* now let the others in */
        w = weft_request_wait(r);
        TAP_CHECK(w == 0 && y == ctx->size * (ctx->size + 1) / 2.0, "late completion: rc %d y %g", w, y);
    } else {
        MPI_Barrier(ctx->world);
        rc = weft_comm_allreduce(c, &x, &y, 1, WEFT_F64, WEFT_SUM);
        TAP_CHECK(rc == 0, "late rank: %s", weft_last_error());
    }
    weft_comm_free(c);
    tap_end("timeout: WEFT_ETIMEDOUT naming the operation, then sticky WEFT_ESTATE");
}

static void test_short_recv(weft_ctx *ctx, weft_comm *world)
{
    if (ctx->size < 2)
        return;
    weft_comm *c;
    tap_begin();
    int rc = weft_comm_dup(world, "p2p-check", &c);
    TAP_CHECK(rc == 0, "dup: %s", weft_last_error());
    int v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    if (ctx->rank == 0) {
        rc = weft_comm_send(c, v, 5, WEFT_I32, 1, 7);
        TAP_CHECK(rc == 0, "send: %s", weft_last_error());
    } else if (ctx->rank == 1) {
        rc = weft_comm_recv(c, v, 6, WEFT_I32, 0, 7);
        TAP_CHECK(rc == WEFT_ECOMM && strstr(weft_last_error(), "expected 6 i32 elements, got 5"),
                  "short recv: %s %s", weft_strerror(rc), weft_last_error());
        TAP_CHECK(weft_comm_allreduce(c, v, v, 1, WEFT_I32, WEFT_SUM) == WEFT_ESTATE, "not sticky");
    }
    weft_comm_free(c);
    tap_end("a receive shorter than asked fails the communicator, naming peer and counts");
}

static void test_flight(weft_ctx *ctx, const weft_comm_opts *base)
{
    weft_comm_opts o = *base;
    o.flight_records = 16;
    weft_comm *c;
    tap_begin();
    int rc = weft_comm_world(ctx, &o, &c);
    TAP_CHECK(rc == 0, "create: %s", weft_last_error());
    float x = 1, y;
    for (int i = 0; i < 40; i++)
        rc |= weft_comm_allreduce(c, &x, &y, 1, WEFT_F32, i % 2 ? WEFT_MAX : WEFT_SUM);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    rc |= weft_comm_flight_dump(c, f);
    fclose(f);
    TAP_CHECK(rc == 0, "ops/dump: %s", weft_last_error());
    TAP_CHECK(strstr(text, "\"next_seq\":40") && strstr(text, "{\"seq\":24,") && !strstr(text, "{\"seq\":23,"),
              "ring does not hold exactly seq 24..39: %.300s", text);
    TAP_CHECK(strstr(text, "\"op\":\"allreduce\",\"dtype\":\"f32\",\"redop\":\"max\",\"count\":1") != NULL,
              "record fields missing: %.300s", text);
    TAP_CHECK(!strstr(text, "\"posted\""), "completed ops still posted: %.300s", text);
    free(text);
    weft_comm_free(c);
    tap_end("flight recorder keeps the last N operations with their fields");
}

int main(int argc, char **argv)
{
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {weft_comm_config_keys, NULL};
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    tap_rank = ctx->rank;
    weft_comm_opts opts;
    weft_comm_opts_from_config(ctx->config, &opts);
    const char *backend = getenv("WEFT_TEST_BACKEND");
    if (backend && *backend)
        snprintf(opts.backend, sizeof opts.backend, "%s", backend);
    weft_comm *world;
    if (weft_comm_world(ctx, &opts, &world) != 0) {
        printf("not ok 1 - create world communicator: %s\n", weft_last_error());
        return 1;
    }
    test_ring(world);
    test_barrier_and_test(world);
    test_invalid(world);
    test_check_args(ctx, world, &opts);
    test_timeout_sticky(ctx, &opts);
    test_short_recv(ctx, world);
    test_flight(ctx, &opts);
    weft_comm_free(world);
    weft_finalize(ctx);
    return tap_total_failed ? 1 : 0;
}
