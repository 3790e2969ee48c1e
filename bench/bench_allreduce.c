/*
 * bench_allreduce.c -- weft's allreduce (blocking and async forms, MPI
 * backend) beside Open MPI's own MPI_Allreduce and MPI_Iallreduce, measured
 * in the same run on the same buffers, over a range of sizes. Prints time
 * per call and bus bandwidth (2(n-1)/n x bytes / time, as nccl-tests does).
 *
 *   mpirun -np 2 build/bench/bench_allreduce [max_bytes]
 */
#include "weft.h"

#include <stdlib.h>
#include <string.h>

typedef int (*call_fn)(weft_comm *c, float *buf, size_t n);

static int run_weft(weft_comm *c, float *buf, size_t n)
{
    return weft_comm_allreduce(c, buf, buf, n, WEFT_F32, WEFT_SUM);
}

static int run_mpi(weft_comm *c, float *buf, size_t n)
{
    (void)c;
    return MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

static int run_mpi_nb(weft_comm *c, float *buf, size_t n)
{
    (void)c;
    MPI_Request r;
    MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r);
    return MPI_Wait(&r, MPI_STATUS_IGNORE);
}

/* Median of reps timed calls, after warm-up; every rank agrees on the max. */
static double time_call(call_fn f, weft_comm *c, float *buf, size_t n, int reps)
{
    double t[64];
    for (int i = 0; i < 3; i++)
        f(c, buf, n);
    for (int i = 0; i < reps; i++) {
        MPI_Barrier(MPI_COMM_WORLD);
        int64_t t0 = weft_now_ns();
        f(c, buf, n);
        double dt = 1e-9 * (double)(weft_now_ns() - t0);
        MPI_Allreduce(&dt, &t[i], 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    }
    for (int i = 1; i < reps; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double x = t[j]; t[j] = t[j - 1]; t[j - 1] = x;
        }
    return t[reps / 2];
}

int main(int argc, char **argv)
{
    if (weft_cli_wants_help(argc, argv)) {
        printf("usage: mpirun -np N bench_allreduce [MAX_BYTES] [--comm.KEY=VALUE ...]\n"
               "weft's allreduce (blocking, async; MPI backend) beside MPI_Allreduce and MPI_Iallreduce on\n"
               "the same buffers, sizes 4 B .. MAX_BYTES (default 64 MiB) by 4x: time per call, bus bandwidth.\n");
        return 0;
    }
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {weft_comm_config_keys, NULL};
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    weft_cli cli;
    if (weft_cli_operands_only(&cli, "bench_allreduce", argc, argv, ctx->rank ? WEFT_CLI_QUIET : 0, 0, 1,
                               "[MAX_BYTES]")) {
        weft_finalize(ctx);
        return WEFT_EXIT_USAGE;
    }
    size_t max_bytes = cli.nops ? strtoull(cli.ops[0], NULL, 0) : (64u << 20);
    weft_comm_opts o;
    weft_comm_opts_from_config(ctx->config, &o);
    weft_comm *c;
    if (weft_comm_world(ctx, &o, &c))
        return 70;
    float *buf = calloc(max_bytes / 4 + 1, 4);
    int n = ctx->size;
    if (ctx->rank == 0)
        printf("# allreduce f32 sum in place, %d ranks, median of up to 21 calls\n"
               "%12s %12s %12s %12s %10s %10s\n", n, "bytes", "MPI_Allreduce", "MPI_Iallred", "weft(mpi)",
               "weft/MPI", "busbw GB/s");
    for (size_t bytes = 4; bytes <= max_bytes; bytes *= 4) {
        size_t cnt = bytes / 4;
        int reps = bytes > (8u << 20) ? 7 : 21;
        double tm = time_call(run_mpi, c, buf, cnt, reps);
        double tn = time_call(run_mpi_nb, c, buf, cnt, reps);
        double tw = time_call(run_weft, c, buf, cnt, reps);
        double bus = n > 1 ? 2.0 * (n - 1) / n * (double)bytes / tw / 1e9 : 0;
        if (ctx->rank == 0)
            printf("%12zu %10.1fus %10.1fus %10.1fus %10.2f %10.2f\n", bytes, tm * 1e6, tn * 1e6, tw * 1e6,
                   tw / tm, bus);
    }
    free(buf);
    weft_comm_free(c);
    weft_finalize(ctx);
    return 0;
}
