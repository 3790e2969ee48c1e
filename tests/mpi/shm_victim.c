/*
 * shm_victim.c -- a job for the shm kill test (tests/mpi/test_shm.sh):
 * every rank writes its pid to DIR/pid.<rank>, then creates and frees shm
 * communicators in a loop, running a few collectives on each, for at most
 * ITERS iterations or SECONDS seconds. The test SIGKILLs one rank mid-run
 * and checks that the job ends and that no /dev/shm entry is left behind.
 *
 * With "steady" the ranks instead make one communicator and run ITERS
 * allreduces on it with no MPI call in between, so a killed peer is met
 * inside a shm wait: the survivors must name it (WEFT_EPEER) and abort.
 *
 *   mpirun -np 3 shm_victim DIR [ITERS [SECONDS [steady]]]
 */
#include "weft.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_pid(const char *dir, int rank)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/pid.%d", dir, rank);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    return rename(tmp, path);
}

/* One communicator's life: create, a few collectives, free. */
static int one_comm(weft_ctx *ctx, const weft_comm_opts *o, float *buf, size_t n)
{
    weft_comm *c;
    WEFT_CHECK(weft_comm_world(ctx, o, &c));
    int rc = strcmp(weft_comm_backend(c), "shm") == 0 ? 0 : WEFT_EINTERNAL;
    for (int i = 0; rc == 0 && i < 8; i++)
        rc = weft_comm_allreduce(c, buf, buf, n, WEFT_F32, WEFT_SUM);
    if (rc == 0)
        rc = weft_comm_barrier(c);
    weft_comm_free(c);
    return rc;
}

/* One communicator, iters allreduces, no MPI in between; a failure ends
 * the job (a survivor of a dead peer cannot finalize MPI cleanly). */
static void steady(weft_ctx *ctx, const weft_comm_opts *o, float *buf, size_t n, long iters)
{
    weft_comm *c;
    int rc = weft_comm_world(ctx, o, &c);
    for (long i = 0; rc == 0 && i < iters; i++)
        rc = weft_comm_allreduce(c, buf, buf, n, WEFT_F32, WEFT_MAX);
    if (rc)
        weft_abort("shm_victim: %s", weft_last_error());
    weft_comm_free(c);
}

int main(int argc, char **argv)
{
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {weft_comm_config_keys, NULL};
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    if (argc < 2 || write_pid(argv[1], ctx->rank) != 0) {
        fprintf(stderr, "usage: shm_victim DIR [ITERS [SECONDS]] (DIR must be writable)\n");
        weft_finalize(ctx);
        return 64;
    }
    long iters = argc > 2 ? atol(argv[2]) : 100000;
    double seconds = argc > 3 ? atof(argv[3]) : 60;
    weft_comm_opts o;
    weft_comm_opts_from_config(ctx->config, &o);
    snprintf(o.backend, sizeof o.backend, "shm");
    size_t n = 16384;
    float *buf = calloc(n, sizeof *buf);
    if (argc > 4 && strcmp(argv[4], "steady") == 0)
        steady(ctx, &o, buf, n, iters);
    int64_t t0 = weft_now_ns();
    long i = 0;
    for (; rc == 0 && i < iters; i++) {
        int stop = 1e-9 * (double)(weft_now_ns() - t0) > seconds;
        MPI_Allreduce(MPI_IN_PLACE, &stop, 1, MPI_INT, MPI_MAX, ctx->world);
        if (stop)
            break;
        rc = one_comm(ctx, &o, buf, n);
    }
    if (rc)
        fprintf(stderr, "shm_victim rank %d: %s\n", ctx->rank, weft_last_error());
    else if (ctx->rank == 0)
        printf("shm_victim: %ld communicators created and freed\n", i);
    free(buf);
    weft_finalize(ctx);
    return rc ? weft_exit_code(rc) : 0;
}
