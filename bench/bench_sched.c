/*
 * bench_sched.c -- what scheduler integration costs the training step,
 * measured beside a reference in the same run:
 *   - the per-step stop agreement (weft_comm_any: a 4-byte MAX allreduce on
 *     the configured backend) beside Open MPI's MPI_Allreduce of one int;
 *   - rank 0's per-step report (weft_sched_step, with the reporter thread
 *     and the metrics server running) beside its floor, one
 *     clock_gettime and an uncontended mutex lock/unlock.
 *
 *   mpirun -np 2 build/bench/bench_sched [--comm.backend=mpi]
 */
#include "collectives/agree.h"
#include "runtime/sched.h"
#include "weft.h"

#include <pthread.h>
#include <stdlib.h>

#define REPS 2001

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median seconds per call of f over REPS timed calls (each rank's time,
 * the max over ranks). */
static double median(double *t, weft_ctx *ctx)
{
    qsort(t, REPS, sizeof *t, cmp);
    double m = t[REPS / 2], all;
    MPI_Allreduce(&m, &all, 1, MPI_DOUBLE, MPI_MAX, ctx->world);
    return all;
}

static double time_agree(weft_ctx *ctx, weft_comm *c, int use_mpi, double *t)
{
    for (int i = 0; i < REPS; i++) {
        int any = 0, local = 0;
        MPI_Barrier(ctx->world);
        int64_t t0 = weft_now_ns();
        if (use_mpi)
            MPI_Allreduce(&local, &any, 1, MPI_INT, MPI_MAX, ctx->world);
        else
            weft_comm_any(c, local, &any);
        t[i] = 1e-9 * (double)(weft_now_ns() - t0);
    }
    return median(t, ctx);
}

static double time_report(weft_ctx *ctx, weft_sched *s, int floor, double *t)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    for (int i = 0; i < REPS; i++) {
        weft_sched_step_info in = {.step = i + 1, .loss = 2.5, .tokens = 4096, .step_s = 0.01, .compute_s = 0.008};
        int64_t t0 = weft_now_ns();
        if (floor) {
            pthread_mutex_lock(&mu);
            volatile double w = weft_wall_s();
            (void)w;
            pthread_mutex_unlock(&mu);
        } else {
            weft_sched_step(s, &in);
        }
        t[i] = 1e-9 * (double)(weft_now_ns() - t0);
    }
    return median(t, ctx);
}

int main(int argc, char **argv)
{
    if (weft_cli_wants_help(argc, argv)) {
        printf("usage: mpirun -np 2 bench_sched [--comm.KEY=VALUE ...] [--sched.KEY=VALUE ...]\n"
               "The per-step stop agreement beside MPI_Allreduce of one int, and rank 0's per-step report\n"
               "beside a clock read and a mutex: what scheduler integration costs a step.\n");
        return 0;
    }
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {weft_comm_config_keys, weft_sched_config_keys, NULL};
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    weft_cli cli;
    if (weft_cli_operands_only(&cli, "bench_sched", argc, argv, ctx->rank ? WEFT_CLI_QUIET : 0, 0, 0,
                               "no operands")) {
        weft_finalize(ctx);
        return WEFT_EXIT_USAGE;
    }
    weft_comm_opts o;
    weft_comm_opts_from_config(ctx->config, &o);
    weft_comm *c;
    weft_sched *s;
    double *t = malloc(REPS * sizeof *t);
    weft_config_set(ctx->config, "sched.metrics_port", "0", "bench");
    weft_config_set(ctx->config, "sched.status_interval", "0", "bench");
    if (!t || weft_comm_world(ctx, &o, &c) || weft_sched_start(ctx, ctx->config, REPS, &s))
        return 70;
    double mpi = time_agree(ctx, c, 1, t), weft = time_agree(ctx, c, 0, t);
    double fl = time_report(ctx, s, 1, t), rep = time_report(ctx, s, 0, t);
    if (ctx->rank == 0) {
        printf("# scheduler integration per step, %d ranks, backend %s, median of %d\n", ctx->size,
               weft_comm_backend(c), REPS);
        printf("%-34s %10s %12s %8s\n", "", "weft", "reference", "ratio");
        printf("%-34s %8.2fus %10.2fus %8.2f   (MPI_Allreduce 1 int MAX)\n", "stop agreement (weft_comm_any)",
               weft * 1e6, mpi * 1e6, weft / mpi);
        printf("%-34s %8.0fns %10.0fns %8.2f   (clock_gettime + mutex)\n", "report (weft_sched_step, rank 0)",
               rep * 1e9, fl * 1e9, rep / fl);
    }
    weft_sched_finish(s, WEFT_RUN_DONE, NULL);
    free(t);
    weft_comm_free(c);
    weft_finalize(ctx);
    return 0;
}
