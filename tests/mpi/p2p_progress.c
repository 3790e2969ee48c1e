/*
 * p2p_progress.c -- a rank that waits on a collective must keep its own
 * point-to-point sends moving. On 4 ranks as a 2 x 2 grid, the pattern of
 * tensor x pipeline parallelism (1F1B) that hung weft-train: ranks {0,1}
 * and {2,3} form "tp" groups, {0,2} and {1,3} "pp" groups, and each round
 *   rank 0: isend a large block to 2, then allreduce on tp with 1
 *   rank 1: recv a large block from 3, then allreduce on tp with 0
 *   rank 3: isend a large block to 1, then allreduce on tp with 2
 *   rank 2: recv a large block from 0, then allreduce on tp with 3
 * (roles swap every other round). A large MPI message goes by rendezvous:
 * the sender's MPI must see the receiver's answer to push the rest, so a
 * sender spinning in a shm allreduce without ever calling MPI starves its
 * receiver, whose tp partner is the sender's tp partner's peer: a cycle.
 * Run with a short comm.timeout: a hang aborts the job, which fails.
 *
 *   p2p_progress [PP_BACKEND]   pp groups on that backend (default: the
 *                               tp one, WEFT_TEST_BACKEND or auto)
 */
#include "weft.h"
#include "tests/mpi/mpitap.h"

#include <stdlib.h>
#include <string.h>

#define BIG ((size_t)1 << 18) /* floats: 1 MiB, far above any eager limit */
#define ROUNDS 20

static float value(int rank, int round, size_t i) { return (float)(rank * 1000 + round) + (float)(i % 97); }

static void cycle(weft_comm *tp, weft_comm *pp, int rank)
{
    float *blk = malloc(BIG * sizeof *blk);
    float *red = malloc(BIG * sizeof *red);
    int peer = 1 - weft_comm_rank(pp), stage = weft_comm_rank(pp), col = weft_comm_rank(tp);
    tap_begin();
    for (int round = 0; round < ROUNDS && blk && red; round++) {
        /* Who sends this round: the column-0 rank of stage 0 and the
         * column-1 rank of stage 1, then the other two. */
        int sender = (stage == col) == (round % 2 == 0);
        int from = rank + (stage ? -2 : 2); /* the pp peer's world rank */
        weft_request *p2p = NULL;
        int rc;
        if (sender) {
            for (size_t i = 0; i < BIG; i++)
                blk[i] = value(rank, round, i);
            rc = weft_comm_isend(pp, blk, BIG, WEFT_F32, peer, round, &p2p);
        } else {
            rc = weft_comm_recv(pp, blk, BIG, WEFT_F32, peer, round);
            for (size_t i = 0; rc == 0 && i < BIG; i++)
                if (blk[i] != value(from, round, i)) {
                    tap_fail("round %d: element %zu from rank %d is %g", round, i, from, blk[i]);
                    break;
                }
        }
        for (size_t i = 0; i < BIG; i++)
            red[i] = (float)(rank + round);
        rc = rc ? rc : weft_comm_allreduce(tp, red, red, BIG, WEFT_F32, WEFT_SUM);
        if (p2p)
            rc = rc ? rc : weft_request_wait(p2p);
        /* tp partners are world ranks 2k and 2k+1. */
        float want = (float)(rank / 2 * 4 + 1 + 2 * round);
        TAP_CHECK(rc == 0, "round %d: %s", round, weft_last_error());
        TAP_CHECK(rc != 0 || (red[0] == want && red[BIG - 1] == want), "round %d: allreduce gave %g, want %g",
                  round, red[0], want);
        if (rc)
            break;
    }
    TAP_CHECK(blk && red, "out of memory");
    free(blk);
    free(red);
    tap_end("isend then a tp allreduce, crossed over two pp pairs (%s / %s), %d rounds", weft_comm_backend(tp),
            weft_comm_backend(pp), ROUNDS);
}

int main(int argc, char **argv)
{
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {weft_comm_config_keys, NULL};
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    tap_rank = ctx->rank;
    if (ctx->size != 4) {
        if (ctx->rank == 0)
            printf("ok 1 - p2p progress # SKIP needs 4 ranks, not %d\n", ctx->size);
        weft_finalize(ctx);
        return 0;
    }
    weft_comm_opts opts;
    weft_comm_opts_from_config(ctx->config, &opts);
    const char *backend = getenv("WEFT_TEST_BACKEND");
    if (backend && *backend)
        snprintf(opts.backend, sizeof opts.backend, "%s", backend);
    weft_comm_opts pp_opts = opts;
    if (argc > 1)
        snprintf(pp_opts.backend, sizeof pp_opts.backend, "%s", argv[1]);
    weft_comm *world = NULL, *pp_world = NULL, *tp = NULL, *pp = NULL;
    rc = weft_comm_world(ctx, &opts, &world);
    rc = rc ? rc : weft_comm_world(ctx, &pp_opts, &pp_world);
    rc = rc ? rc : weft_comm_split(world, ctx->rank / 2, ctx->rank, "tp", &tp);
    rc = rc ? rc : weft_comm_split(pp_world, ctx->rank % 2, ctx->rank, "pp", &pp);
    if (rc) {
        printf("not ok 1 - make the tp and pp communicators: %s\n", weft_last_error());
        return 1;
    }
    cycle(tp, pp, ctx->rank);
    weft_comm_free(pp);
    weft_comm_free(tp);
    weft_comm_free(pp_world);
    weft_comm_free(world);
    weft_finalize(ctx);
    return tap_total_failed ? 1 : 0;
}
