/*
 * adopt_mpi.c -- a program that initialises MPI itself, then weft: weft must
 * adopt that MPI (not initialise it again), leave it running after
 * weft_finalize, and still give the right placement. Prints TAP from rank 0.
 */
#include "weft.h"
#include "tests/mpi/mpitap.h"

int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &tap_rank);
    int size;
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    weft_ctx *ctx = NULL;
    tap_begin();
    int rc = weft_init(&argc, argv, NULL, &ctx);
    TAP_CHECK(rc == 0, "weft_init after MPI_Init: %s", weft_last_error());
    TAP_CHECK(ctx && !ctx->owns_mpi, "weft claims to own an MPI it did not start");
    TAP_CHECK(ctx && ctx->rank == tap_rank && ctx->size == size, "rank/size differ from MPI's");
    TAP_CHECK(ctx && ctx->local_size == size && ctx->nnodes == 1 && ctx->node == 0,
              "placement on one host: local_size %d nnodes %d", ctx ? ctx->local_size : -1, ctx ? ctx->nnodes : -1);
    TAP_CHECK(ctx && ctx->thread_level == provided, "thread level %d, MPI says %d", ctx ? ctx->thread_level : -1, provided);
    weft_finalize(ctx);
    int finalized = 1;
    MPI_Finalized(&finalized);
    TAP_CHECK(!finalized, "weft_finalize finalised an MPI it did not start");
    tap_end("weft_init adopts an MPI the program started, and leaves it running");

    tap_begin();
    rc = weft_init(&argc, argv, NULL, &ctx); /* again: init/finalize pairs repeat */
    TAP_CHECK(rc == 0, "second weft_init: %s", weft_last_error());
    weft_finalize(ctx);
    tap_end("weft_init/weft_finalize can be repeated inside one MPI session");
    MPI_Finalize();
    return tap_total_failed ? 1 : 0;
}
