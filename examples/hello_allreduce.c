/*
 * hello_allreduce.c -- the smallest program written against weft: start the
 * runtime, make a communicator over the job, average a vector across ranks,
 * check the answer. Build it against an installed weft with
 *   cc hello_allreduce.c $(pkg-config --cflags --libs weft) -o hello
 * and run it with  mpirun -np 4 ./hello
 */
#include <stdio.h>
#include <weft.h>

int main(int argc, char **argv)
{
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {weft_comm_config_keys, NULL};
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);

    weft_comm_opts opts;
    weft_comm_opts_from_config(ctx->config, &opts);
    weft_comm *world;
    rc = weft_comm_world(ctx, &opts, &world);

    float v[4];
    for (int i = 0; i < 4; i++)
        v[i] = (float)(ctx->rank + i);
    if (rc == 0)
        rc = weft_comm_allreduce(world, v, v, 4, WEFT_F32, WEFT_AVG); /* in place */

    /* The average of rank + i over ranks 0..n-1 is (n-1)/2 + i. */
    float want = (float)(ctx->size - 1) / 2.0f + 3.0f;
    if (rc == 0 && ctx->rank == 0)
        printf("hello from %d ranks: v[3] = %g (expected %g)\n", ctx->size, v[3], want);
    if (rc)
        WEFT_ERROR("%s", weft_last_error());
    weft_comm_free(world);
    weft_finalize(ctx);
    return rc ? weft_exit_code(rc) : v[3] == want ? 0 : 1;
}
