/*
 * conformance.c -- the collectives conformance suite. Run under mpirun on 1
 * to 4 ranks (tests/mpi/test_collectives.sh); WEFT_TEST_BACKEND picks the
 * backend under test.
 *
 * Every rank can compute every other rank's contribution (val() is a pure
 * function of rank, element and salt), so each rank checks its results
 * against an independent reference: exact for integers and data movement,
 * a float64 sum with a rounding bound for floats. Covered: every op x dtype
 * x reduction x size (0, 1, odd, not divisible by the rank count, large),
 * in-place and out-of-place, blocking and async (several requests in flight,
 * waited in reverse), on world and on split groups. Point-to-point, barrier,
 * bad arguments and failures are in comm_misc.c.
 */
#include "runtime/rng.h"
#include "weft.h"
#include "tests/mpi/mpitap.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const size_t sizes[] = {0, 1, 7, 1003, 100003};
#define NSIZES (sizeof sizes / sizeof sizes[0])
static int salt_of_comm;

/* The value rank contributes at element i, exactly as stored in dt. */
static double val(int rank, size_t i, weft_dtype dt)
{
    uint64_t h = weft_rng_mix(((uint64_t)rank << 40) ^ ((uint64_t)i << 8) ^ (uint64_t)salt_of_comm);
    double x = (double)(h >> 11) * 0x1p-53 * 2.0 - 1.0;
    switch (dt) {
    case WEFT_F64: return x;
    case WEFT_F32: return (float)x;
    case WEFT_BF16: return weft_bf16_to_f32(weft_f32_to_bf16((float)x));
    case WEFT_F16: return weft_f16_to_f32(weft_f32_to_f16((float)x));
    case WEFT_I32: return (double)((int64_t)(h % 2001) - 1000);
    case WEFT_I64: return (double)((int64_t)(h % 2000001) - 1000000);
    default: return (double)(h % 256);
    }
}


/* Reference reduction of element i over ranks 0..n-1, in float64 (exact
 * for the integer ranges val() produces). */
static double ref_reduce(weft_redop op, weft_dtype dt, int n, size_t i, double *sumabs)
{
    double acc = val(0, i, dt), abs_acc = fabs(acc);
    for (int r = 1; r < n; r++) {
        double v = val(r, i, dt);
        abs_acc += fabs(v);
        acc = op == WEFT_MAX ? fmax(acc, v) : op == WEFT_MIN ? fmin(acc, v) : acc + v;
    }
    *sumabs = abs_acc;
    if (op == WEFT_SUM && dt == WEFT_U8)
        return (double)(uint8_t)(int64_t)acc; /* u8 sums wrap */
    if (op == WEFT_AVG)
        return weft_dtype_is_float(dt) ? acc / n : (double)((int64_t)acc / n);
    return acc;
}

static int close_enough(weft_redop op, weft_dtype dt, double got, double ref, double sumabs, int n)
{
    if (!weft_dtype_is_float(dt) || op == WEFT_MAX || op == WEFT_MIN)
        return got == ref;
    double accum = 4.0 * n * FLT_EPSILON * sumabs; /* f32 accumulation */
    switch (dt) {
    case WEFT_F64: return fabs(got - ref) <= 4.0 * n * DBL_EPSILON * sumabs;
    case WEFT_F32: return fabs(got - ref) <= accum;
    case WEFT_BF16: return fabs(got - ref) <= 0x1p-8 * fabs(ref) + accum + 0x1p-126;
    default: return fabs(got - ref) <= 0x1p-10 * fabs(ref) + accum + 0x1p-24;
    }
}

static void *buf(size_t n, weft_dtype dt)
{
    void *p = malloc(n * weft_dtype_size(dt) + 16);
    memset(p, 0xA5, n * weft_dtype_size(dt) + 16);
    return p;
}

typedef struct {
    weft_comm *c;
    weft_dtype dt;
    size_t count;
    int inplace, async;
} spec;

static const char *desc(const spec *s, weft_redop op)
{
    static char d[160];
    snprintf(d, sizeof d, "%s count %zu %s %s %s", weft_dtype_name(s->dt), s->count,
             weft_redop_name(op), s->inplace ? "in-place" : "out-of-place", s->async ? "async" : "blocking");
    return d;
}

/* Post (or run) one operation per reduction op; async waits in reverse. */
typedef int (*post_fn)(const spec *s, weft_redop op, void *send, void *recv, weft_request **req);

static void wait_all(const spec *s, weft_request **req, int *rc)
{
    for (int op = WEFT_NREDOPS - 1; op >= 0; op--)
        if (s->async && rc[op] == 0)
            rc[op] = weft_request_wait(req[op]);
}

/* --- allreduce ----------------------------------------------------------- */

static int post_allreduce(const spec *s, weft_redop op, void *send, void *recv, weft_request **req)
{
    if (s->async)
        return weft_comm_iallreduce(s->c, send, recv, s->count, s->dt, op, req);
    return weft_comm_allreduce(s->c, send, recv, s->count, s->dt, op);
}

static void check_reduced(const spec *s, weft_redop op, const void *out, size_t off, size_t len, int rc)
{
    int n = weft_comm_size(s->c);
    if (rc) {
        tap_fail("%s: rc %s: %s", desc(s, op), weft_strerror(rc), weft_last_error());
        return;
    }
    for (size_t j = 0; j < len; j++) {
        double sumabs, ref = ref_reduce(op, s->dt, n, off + j, &sumabs);
        double got = weft_dtype_load(out, j, s->dt);
        if (!close_enough(op, s->dt, got, ref, sumabs, n)) {
            tap_fail("%s: element %zu = %.9g, reference %.9g", desc(s, op), off + j, got, ref);
            return;
        }
    }
}

static void case_allreduce(const spec *s)
{
    int me = weft_comm_rank(s->c);
    void *send[WEFT_NREDOPS], *recv[WEFT_NREDOPS];
    weft_request *req[WEFT_NREDOPS];
    int rc[WEFT_NREDOPS];
    for (int op = 0; op < WEFT_NREDOPS; op++) {
        send[op] = buf(s->count, s->dt);
        recv[op] = s->inplace ? send[op] : buf(s->count, s->dt);
        for (size_t i = 0; i < s->count; i++)
            weft_dtype_store(send[op], i, s->dt, val(me, i, s->dt));
        rc[op] = post_allreduce(s, (weft_redop)op, send[op], recv[op], &req[op]);
    }
    wait_all(s, req, rc);
    for (int op = 0; op < WEFT_NREDOPS; op++) {
        check_reduced(s, (weft_redop)op, recv[op], 0, s->count, rc[op]);
        if (!s->inplace)
            free(recv[op]);
        free(send[op]);
    }
}

/* --- reduce_scatter ------------------------------------------------------ */

static void case_reduce_scatter(const spec *s)
{
    int me = weft_comm_rank(s->c), n = weft_comm_size(s->c);
    size_t off, len, es = weft_dtype_size(s->dt);
    weft_comm_chunk(s->count, n, me, &off, &len);
    void *send[WEFT_NREDOPS], *recv[WEFT_NREDOPS];
    weft_request *req[WEFT_NREDOPS];
    int rc[WEFT_NREDOPS];
    for (int op = 0; op < WEFT_NREDOPS; op++) {
        send[op] = buf(s->count, s->dt);
        recv[op] = s->inplace ? (char *)send[op] + off * es : buf(len, s->dt);
        for (size_t i = 0; i < s->count; i++)
            weft_dtype_store(send[op], i, s->dt, val(me, i, s->dt));
        rc[op] = s->async ? weft_comm_ireduce_scatter(s->c, send[op], recv[op], s->count, s->dt, op, &req[op])
                          : weft_comm_reduce_scatter(s->c, send[op], recv[op], s->count, s->dt, op);
    }
    wait_all(s, req, rc);
    for (int op = 0; op < WEFT_NREDOPS; op++) {
        check_reduced(s, (weft_redop)op, recv[op], off, len, rc[op]);
        if (!s->inplace)
            free(recv[op]);
        free(send[op]);
    }
}

/* --- reduce -------------------------------------------------------------- */

static void case_reduce(const spec *s)
{
    int me = weft_comm_rank(s->c), n = weft_comm_size(s->c);
    int root = (int)((s->count + 1) % (size_t)n);
    void *send[WEFT_NREDOPS], *recv[WEFT_NREDOPS];
    weft_request *req[WEFT_NREDOPS];
    int rc[WEFT_NREDOPS];
    for (int op = 0; op < WEFT_NREDOPS; op++) {
        send[op] = buf(s->count, s->dt);
        /* Non-roots pass no receive buffer at all: it must not be touched. */
        recv[op] = me != root ? NULL : s->inplace ? send[op] : buf(s->count, s->dt);
        for (size_t i = 0; i < s->count; i++)
            weft_dtype_store(send[op], i, s->dt, val(me, i, s->dt));
        rc[op] = s->async ? weft_comm_ireduce(s->c, send[op], recv[op], s->count, s->dt, op, root, &req[op])
                          : weft_comm_reduce(s->c, send[op], recv[op], s->count, s->dt, op, root);
    }
    wait_all(s, req, rc);
    for (int op = 0; op < WEFT_NREDOPS; op++) {
        if (me == root)
            check_reduced(s, (weft_redop)op, recv[op], 0, s->count, rc[op]);
        else if (rc[op])
            tap_fail("%s (non-root): %s", desc(s, op), weft_last_error());
        if (recv[op] && recv[op] != send[op])
            free(recv[op]);
        free(send[op]);
    }
}

/* --- data movement: allgather, broadcast, alltoall ------------------------ */

static void expect_values(const spec *s, const char *what, const void *out, size_t n, int (*owner)(size_t, void *),
                          size_t (*index)(size_t, void *), void *arg, int rc)
{
    if (rc) {
        tap_fail("%s %s: rc %s: %s", what, desc(s, WEFT_SUM), weft_strerror(rc), weft_last_error());
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double want = val(owner(i, arg), index(i, arg), s->dt), got = weft_dtype_load(out, i, s->dt);
        if (got != want) {
            tap_fail("%s %s: element %zu = %.9g, want %.9g", what, desc(s, WEFT_SUM), i, got, want);
            return;
        }
    }
}

static size_t ident(size_t i, void *arg) { (void)arg; return i; }
static int owner_chunk(size_t i, void *arg)
{
    const spec *s = arg;
    int n = weft_comm_size(s->c);
    for (int r = 0; r < n; r++) {
        size_t off, len;
        weft_comm_chunk(s->count, n, r, &off, &len);
        if (i >= off && i < off + len)
            return r;
    }
    return -1;
}

static void case_allgather(const spec *s)
{
    int me = weft_comm_rank(s->c);
    size_t off, len, es = weft_dtype_size(s->dt);
    weft_comm_chunk(s->count, weft_comm_size(s->c), me, &off, &len);
    void *recv = buf(s->count, s->dt);
    void *send = s->inplace ? (char *)recv + off * es : buf(len, s->dt);
    for (size_t j = 0; j < len; j++)
        weft_dtype_store(send, j, s->dt, val(me, off + j, s->dt));
    weft_request *req;
    int rc = s->async ? weft_comm_iallgather(s->c, send, recv, s->count, s->dt, &req)
                      : weft_comm_allgather(s->c, send, recv, s->count, s->dt);
    if (s->async && rc == 0)
        rc = weft_request_wait(req);
    expect_values(s, "allgather", recv, s->count, owner_chunk, ident, (void *)s, rc);
    if (!s->inplace)
        free(send);
    free(recv);
}

static int bcast_root;
static int owner_root(size_t i, void *arg) { (void)i; (void)arg; return bcast_root; }

static void case_broadcast(const spec *s)
{
    int me = weft_comm_rank(s->c);
    bcast_root = (int)(s->count % (size_t)weft_comm_size(s->c));
    void *recv = buf(s->count, s->dt);
    void *send = s->inplace ? recv : buf(s->count, s->dt);
    if (me == bcast_root)
        for (size_t i = 0; i < s->count; i++)
            weft_dtype_store(send, i, s->dt, val(me, i, s->dt));
    weft_request *req;
    int rc = s->async ? weft_comm_ibroadcast(s->c, send, recv, s->count, s->dt, bcast_root, &req)
                      : weft_comm_broadcast(s->c, send, recv, s->count, s->dt, bcast_root);
    if (s->async && rc == 0)
        rc = weft_request_wait(req);
    expect_values(s, "broadcast", recv, s->count, owner_root, ident, NULL, rc);
    if (!s->inplace)
        free(send);
    free(recv);
}

static int a2a_me;
static size_t a2a_count;
static int owner_peer(size_t i, void *arg) { (void)arg; return (int)(i / a2a_count); }
static size_t index_peer(size_t i, void *arg) { (void)arg; return (size_t)a2a_me * a2a_count + i % a2a_count; }

static void case_alltoall(const spec *s)
{
    int me = weft_comm_rank(s->c), n = weft_comm_size(s->c);
    size_t total = s->count * (size_t)n;
    void *recv = buf(total, s->dt);
    void *send = s->inplace ? recv : buf(total, s->dt);
    for (size_t i = 0; i < total; i++)
        weft_dtype_store(send, i, s->dt, val(me, i, s->dt));
    weft_request *req;
    int rc = s->async ? weft_comm_ialltoall(s->c, send, recv, s->count, s->dt, &req)
                      : weft_comm_alltoall(s->c, send, recv, s->count, s->dt);
    if (s->async && rc == 0)
        rc = weft_request_wait(req);
    a2a_me = me;
    a2a_count = s->count ? s->count : 1;
    expect_values(s, "alltoall", recv, total, owner_peer, index_peer, NULL, rc);
    if (!s->inplace)
        free(send);
    free(recv);
}

/* --- the op x dtype sweep -------------------------------------------------- */

static const struct {
    const char *name;
    void (*run)(const spec *s);
} cases[] = {
    {"allreduce", case_allreduce}, {"reduce_scatter", case_reduce_scatter}, {"reduce", case_reduce},
    {"allgather", case_allgather}, {"broadcast", case_broadcast},           {"alltoall", case_alltoall},
};

static void sweep(weft_comm *c, int salt)
{
    salt_of_comm = salt;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        for (int dt = 0; dt < WEFT_NDTYPES; dt++) {
            tap_begin();
            for (size_t z = 0; z < NSIZES; z++)
                for (int mode = 0; mode < 4; mode++) {
                    spec s = {c, (weft_dtype)dt, sizes[z], mode & 1, mode >> 1};
                    cases[k].run(&s);
                }
            tap_end("%s %s on '%s' (%d ranks, backend %s)", cases[k].name, weft_dtype_name((weft_dtype)dt),
                    weft_comm_name(c), weft_comm_size(c), weft_comm_backend(c));
        }
    }
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
    weft_comm *world = NULL, *half = NULL;
    if ((rc = weft_comm_world(ctx, &opts, &world)) != 0) {
        printf("not ok 1 - create world communicator: %s\n", weft_last_error());
        weft_finalize(ctx);
        return 1;
    }
    sweep(world, 1);
    /* Split: even and odd ranks, each group in reverse rank order. */
    rc = weft_comm_split(world, ctx->rank % 2, -ctx->rank, "parity", &half);
    tap_begin();
    TAP_CHECK(rc == 0 && half, "split: %s", weft_last_error());
    if (half) {
        int n = weft_comm_size(half), want = (ctx->size - ctx->rank % 2 + 1) / 2;
        TAP_CHECK(n == want, "split size %d, want %d", n, want);
        TAP_CHECK(weft_comm_rank(half) == n - 1 - ctx->rank / 2, "split rank %d for world rank %d",
                  weft_comm_rank(half), ctx->rank);
    }
    tap_end("split by parity, reverse key: sizes and ranks");
    if (half)
        sweep(half, 2);
    weft_comm_free(half);
    weft_comm_free(world);
    weft_finalize(ctx);
    return tap_total_failed ? 1 : 0;
}
