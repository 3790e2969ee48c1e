/*
 * deterministic.c -- comm.deterministic: reductions are bitwise identical
 * whatever the backend (shm, mpi, tcp, hier), the shm chunking (two slot sizes) and the
 * operation (allreduce, reduce_scatter, reduce), and equal to an independent
 * reference every rank computes itself: x0 + x1 + ... + x(n-1) in rank
 * order, in f32 for f32/bf16/f16 and in f64 for f64, rounded once. The data
 * spans 40 binary orders of magnitude, so any other summation order shows.
 */
#include "runtime/rng.h"
#include "weft.h"
#include "tests/mpi/mpitap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rank r's value at i, as stored in dt. */
static double val(int r, size_t i, weft_dtype dt)
{
    uint64_t h = weft_rng_mix(((uint64_t)r << 40) ^ i);
    double x = ((double)(h >> 11) * 0x1p-53 * 2 - 1) * ldexp(1.0, (int)(h % 41) - 20);
    char b[8];
    weft_dtype_store(b, 0, dt, x);
    return weft_dtype_load(b, 0, dt);
}

/* The reference: rank-order sum in the wide type, AVG divided, rounded once. */
static double reference(weft_dtype dt, weft_redop op, int n, size_t i)
{
    double acc;
    if (dt == WEFT_F64) {
        acc = val(0, i, dt);
        for (int r = 1; r < n; r++)
            acc = acc + val(r, i, dt);
        if (op == WEFT_AVG)
            acc = acc / n;
    } else {
        float f = (float)val(0, i, dt);
        for (int r = 1; r < n; r++)
            f = f + (float)val(r, i, dt);
        if (op == WEFT_AVG)
            f = f / (float)n;
        acc = f;
    }
    char b[8];
    weft_dtype_store(b, 0, dt, acc);
    return weft_dtype_load(b, 0, dt);
}

static const weft_dtype dts[] = {WEFT_F32, WEFT_BF16, WEFT_F16, WEFT_F64};
static const size_t counts[] = {1, 1003, 100003};

static void check_comm(weft_comm *c, const char *what)
{
    int n = weft_comm_size(c), me = weft_comm_rank(c);
    for (size_t d = 0; d < 4; d++)
        for (int op = WEFT_SUM; op <= WEFT_AVG; op++)
            for (size_t z = 0; z < 3; z++) {
                weft_dtype dt = dts[d];
                size_t count = counts[z], es = weft_dtype_size(dt), off, len;
                weft_comm_chunk(count, n, me, &off, &len);
                char *send = malloc(count * es), *all = malloc(count * es), *part = malloc(len * es + 1);
                char *red = malloc(count * es);
                for (size_t i = 0; i < count; i++)
                    weft_dtype_store(send, i, dt, val(me, i, dt));
                int rc = weft_comm_allreduce(c, send, all, count, dt, op);
                rc = rc ? rc : weft_comm_reduce_scatter(c, send, part, count, dt, op);
                rc = rc ? rc : weft_comm_reduce(c, send, me == n - 1 ? red : NULL, count, dt, op, n - 1);
                TAP_CHECK(rc == 0, "%s: %s", what, weft_last_error());
                for (size_t i = 0; rc == 0 && i < count; i++) {
                    double want = reference(dt, (weft_redop)op, n, i);
                    double a = weft_dtype_load(all, i, dt);
                    double p = i >= off && i < off + len ? weft_dtype_load(part, i - off, dt) : want;
                    double q = me == n - 1 ? weft_dtype_load(red, i, dt) : want;
                    if (memcmp(&a, &want, 8) || memcmp(&p, &want, 8) || memcmp(&q, &want, 8)) {
                        tap_fail("%s %s %s count %zu element %zu: allreduce %a reduce_scatter %a reduce %a, "
                                 "rank-order reference %a", what, weft_dtype_name(dt), weft_redop_name(op), count,
                                 i, a, p, q, want);
                        break;
                    }
                }
                free(send), free(all), free(part), free(red);
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
    const struct { const char *backend, *slot; } runs[] = {
        {"shm", NULL}, {"shm", "4096"}, {"mpi", NULL}, {"tcp", NULL}, {"hier", NULL}};
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        weft_comm_opts o;
        weft_comm_opts_default(&o);
        o.deterministic = 1;
        snprintf(o.backend, sizeof o.backend, "%s", runs[k].backend);
        if (runs[k].slot)
            setenv("WEFT_SHM_SLOT_BYTES", runs[k].slot, 1);
        else
            unsetenv("WEFT_SHM_SLOT_BYTES");
        weft_comm *c = NULL;
        tap_begin();
        rc = weft_comm_world(ctx, &o, &c);
        TAP_CHECK(rc == 0, "create %s: %s", runs[k].backend, weft_last_error());
        if (c)
            check_comm(c, runs[k].backend);
        tap_end("deterministic %s%s%s: allreduce, reduce_scatter, reduce bitwise equal to the rank-order "
                "reference (%d ranks)", runs[k].backend, runs[k].slot ? ", slot " : "",
                runs[k].slot ? runs[k].slot : "", ctx->size);
        weft_comm_free(c);
    }
    weft_finalize(ctx);
    return tap_total_failed ? 1 : 0;
}
