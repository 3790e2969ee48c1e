/*
 * abort_job.c -- a job that goes wrong on purpose, for test_abort.sh:
 *   abort_job abort    rank 1 calls weft_abort while the others wait in a
 *                      barrier: the whole job must end, not hang
 *   abort_job timeout  rank 1 never joins an allreduce: rank 0 must give up
 *                      after comm.timeout, dump its flight record and end
 *                      the job naming the operation
 * Accepts the usual --config/--section.key=value arguments.
 */
#include "weft.h"

#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {weft_comm_config_keys, NULL};
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    const char *mode = argc > 1 ? argv[1] : "abort";
    weft_comm_opts opts;
    weft_comm_opts_from_config(ctx->config, &opts);
    weft_comm *c;
    if (weft_comm_world(ctx, &opts, &c) != 0)
        return 70;
    float x = 1, y = 0;
    weft_comm_allreduce(c, &x, &y, 1, WEFT_F32, WEFT_SUM); /* one completed record */
    int culprit = ctx->size > 1 ? 1 : 0;
    if (strcmp(mode, "abort") == 0) {
        if (ctx->rank == culprit)
            weft_abort("deliberate abort from rank %d for the test", ctx->rank);
        weft_comm_barrier(c);
    } else if (ctx->rank == culprit && ctx->size > 1) {
        sleep(120); /* never joins; bounded so a broken abort cannot hang forever */
    } else {
        weft_comm_allreduce(c, &x, &y, 1, WEFT_F32, WEFT_SUM);
    }
    printf("abort_job: reached the end, which it must not\n");
    weft_comm_free(c);
    weft_finalize(ctx);
    return 0;
}
