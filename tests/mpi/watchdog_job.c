/*
 * watchdog_job.c -- a hang no thread is waiting on, for test_hang.sh: rank 0
 * posts an allreduce and never waits for it (it sleeps, as if stuck in
 * compute); rank 1 never posts it. Only the watchdog thread can notice: it
 * must end the job after comm.timeout (plus its grace), naming the
 * operation and rank 1 -- alive, by its heartbeat, but never arrived.
 *   mpirun -np 2 watchdog_job --comm.timeout=2 --run.dir=DIR
 *
 * WATCHDOG_JOB=raw: the hang is inside raw MPI (as in HDF5's MPI-IO), where
 * no weft operation is pending: rank 1 stops itself (SIGSTOP) and rank 0
 * enters MPI_Barrier inside weft_watchdog_raw_begin/end; the watchdog must
 * end the job naming rank 1 as silent. WATCHDOG_JOB=raw_slow: rank 1 is
 * alive but late (it sleeps 2.5 timeouts before the barrier, its heartbeat
 * fresh): the job must finish, exit 0 -- slow is not stuck.
 */
#include "collectives/watchdog.h"
#include "weft.h"

#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int raw(weft_ctx *ctx, weft_comm *c, double timeout_s, int slow)
{
    if (ctx->rank == 1) {
        if (!slow)
            raise(SIGSTOP);
        struct timespec ts = {(time_t)(2.5 * timeout_s), 0}; /* the lateness under test, not a wait for an event */
        nanosleep(&ts, NULL);
    }
    weft_watchdog_raw_begin("a test's raw MPI barrier");
    MPI_Barrier(MPI_COMM_WORLD);
    weft_watchdog_raw_end();
    printf("watchdog_job: rank %d passed the raw barrier\n", ctx->rank);
    weft_watchdog_stop();
    weft_comm_free(c);
    weft_finalize(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {weft_comm_config_keys, NULL};
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    weft_comm_opts opts;
    weft_comm_opts_from_config(ctx->config, &opts);
    weft_comm *c;
    if (weft_comm_world(ctx, &opts, &c) != 0 ||
        weft_watchdog_start(ctx, weft_config_str(ctx->config, "run.dir"), 0.5, opts.timeout_s) != 0)
        return 70;
    float x = 1, y = 0;
    weft_comm_allreduce(c, &x, &y, 1, WEFT_F32, WEFT_SUM); /* #0 completes */
    const char *mode = getenv("WATCHDOG_JOB");
    if (mode && (strcmp(mode, "raw") == 0 || strcmp(mode, "raw_slow") == 0))
        return raw(ctx, c, opts.timeout_s, strcmp(mode, "raw_slow") == 0);
    weft_request *req = NULL;
    if (ctx->rank == 0)
        weft_comm_iallreduce(c, &x, &y, 1, WEFT_F32, WEFT_SUM, &req); /* #1, never waited on */
    sleep(60); /* bounded: a watchdog that never fires fails the test, not hangs it */
    printf("watchdog_job: reached the end, which it must not\n");
    weft_watchdog_stop();
    weft_comm_free(c);
    weft_finalize(ctx);
    return 0;
}
