/*
 * tcp_guard.c -- keeps a tcp communicator busy while strangers knock: the
 * ranks run allreduces (each checked against the exact sum) until the test
 * script, having made its foreign connections, creates DIR/go. Writes
 * DIR/ready once the communicator is up. Usage: tcp_guard DIR.
 * Exit 0 only if every result was right; a failed operation aborts the job
 * (weft_abort), naming the failure.
 */
#include "weft.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {weft_comm_config_keys, NULL};
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    if (argc < 2) {
        fprintf(stderr, "usage: tcp_guard DIR\n");
        return 64;
    }
    weft_comm_opts o;
    weft_comm_opts_from_config(ctx->config, &o);
    snprintf(o.backend, sizeof o.backend, "tcp");
    weft_comm *c;
    if ((rc = weft_comm_world(ctx, &o, &c)) != 0) {
        fprintf(stderr, "create: %s\n", weft_last_error());
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/ready", argv[1]);
    if (ctx->rank == 0)
        fclose(fopen(path, "w"));
    snprintf(path, sizeof path, "%s/go", argv[1]);
    int bad = 0, iters = 0;
    double x[1000], y[1000];
    for (int stop = 0; !stop && iters < 600000; iters++) { /* bounded: the script's own timeout ends it sooner */
        for (int i = 0; i < 1000; i++)
            x[i] = ctx->rank + i + iters;
        rc = weft_comm_allreduce(c, x, y, 1000, WEFT_F64, WEFT_SUM);
        for (int i = 0; rc == 0 && i < 1000; i++)
            if (y[i] != ctx->size * (double)(i + iters) + ctx->size * (ctx->size - 1) / 2.0)
                bad++;
        stop = rc != 0 || (ctx->rank == 0 && access(path, F_OK) == 0);
        rc = rc ? rc : weft_comm_broadcast(c, &stop, &stop, 1, WEFT_I32, 0);
        if (rc) /* what a trainer does: the job cannot go on */
            weft_abort("rank %d: %s", ctx->rank, weft_last_error());
        usleep(1000);
    }
    printf("rank %d: %d iterations, %d wrong elements\n", ctx->rank, iters, bad);
    weft_comm_free(c);
    weft_finalize(ctx);
    return rc || bad ? 1 : 0;
}
