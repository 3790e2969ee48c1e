/*
 * bench_gather.c -- does an allgather in flight move while its ranks
 * compute? The question behind ZeRO-3's prefetch (parallel/dp_zero3.c):
 * the next layer's gather is posted before the current layer computes, and
 * is only worth it if it progresses meanwhile. weft's shm backend moves a
 * collective only inside weft_request_test/wait (collectives/backend_shm.c:
 * "Progress"), so this measures, on the job's communicator and in one run:
 *
 *   alone       post the allgather of one layer's parameters, wait at once:
 *               the time a gather takes (what prefetch 0 waits for);
 *   compute     the layer's compute alone: a chain of matmuls (the linear
 *               layers of a GPT-2 block, forward), no collective;
 *   no tests    post, compute, then wait: the wait left after compute when
 *               nothing tests the request meanwhile;
 *   tests       the same with weft_request_test after every matmul (what
 *               the models' progress points do: model.h, weft_model_progress);
 *   skew        compute, then a barrier: what any wait after compute costs
 *               when the ranks finish it apart (a loaded machine), which no
 *               progress can hide -- the floor of the two waits above.
 *
 * and the share of the gather hidden, 1 - (wait - skew) / alone, for the
 * no-tests and tests rows. Medians of the repetitions (each the slowest
 * rank's time); each repetition starts on a barrier.
 *
 *   mpirun -np 2 BUILD/bench/bench_gather [--layer-mb M] [--reps N] [--comm.backend=shm|mpi]
 */
#include "weft.h"
#include "kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_ROWS = 2048, C = 256 }; /* B x T rows and channels of bench-cpu.ini (micro-batch 8, T 256) */

typedef struct {
    float *x, *w, *y; /* x (N_ROWS, C), w (4C, C), y (N_ROWS, 4C) */
} work;

/* One block's linear layers, forward: qkv (3C), proj (C), fc (4C), fc_proj (C)
 * -- as four products of (N_ROWS, C) x (C, 4C) at most; tests after each. */
static int compute(work *w, weft_request **r, int test)
{
    static const int oc[4] = {3 * C, C, 4 * C, C};
    for (int i = 0; i < 4; i++) {
        weft_matmul_forward(w->y, w->x, w->w, NULL, N_ROWS, C, oc[i]);
        int done = 0;
        if (test && *r)
            WEFT_CHECK(weft_request_test(*r, &done));
        if (done)
            *r = NULL; /* a request seen done is released: not to be waited */
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* mode 0 alone, 1 compute only, 2 post + compute + wait, 3 the same with
 * tests, 4 compute + barrier: the median over reps of the slowest rank's
 * wait (mode 1: compute; 4: the barrier). */
static int measure(weft_comm *c, float *buf, size_t n, work *w, int mode, int reps, double *ms)
{
    double t[64] = {0};
    int size = weft_comm_size(c), rank = weft_comm_rank(c);
    size_t per = n / (size_t)size;
    for (int i = 0; i < reps; i++) {
        weft_request *r = NULL;
        WEFT_CHECK(weft_comm_barrier(c));
        int64_t t0 = weft_now_ns();
        if (mode != 1 && mode != 4)
            WEFT_CHECK(weft_comm_iallgather(c, buf + (size_t)rank * per, buf, per * (size_t)size, WEFT_F32, &r));
        if (mode >= 1)
            WEFT_CHECK(compute(w, &r, mode == 3));
        int64_t t1 = weft_now_ns();
        if (r)
            WEFT_CHECK(weft_request_wait(r));
        if (mode == 4)
            WEFT_CHECK(weft_comm_barrier(c));
        int64_t t2 = weft_now_ns();
        double dt = 1e-6 * (double)(mode == 0 ? t2 - t0 : mode == 1 ? t1 - t0 : t2 - t1);
        WEFT_CHECK(weft_comm_allreduce(c, &dt, &t[i], 1, WEFT_F64, WEFT_MAX));
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    *ms = t[reps / 2];
    return 0;
}

static int run(weft_ctx *ctx, weft_comm *c, double layer_mb, int reps)
{
    size_t n = (size_t)(layer_mb * 1048576.0 / sizeof(float));
    n -= n % (size_t)ctx->size;
    float *buf = calloc(n, sizeof *buf);
    work w = {calloc((size_t)N_ROWS * C, sizeof(float)), calloc((size_t)4 * C * C, sizeof(float)),
              calloc((size_t)N_ROWS * 4 * C, sizeof(float))};
    if (!buf || !w.x || !w.w || !w.y)
        return weft_error(WEFT_ENOMEM, "bench_gather: out of memory");
    double ms[5];
    for (int m = 0; m < 5; m++)
        WEFT_CHECK(measure(c, buf, n, &w, m, reps, &ms[m]));
    if (ctx->rank == 0) {
        printf("bench_gather: allgather of %.1f MiB over %d ranks (%s), compute = 4 matmuls (%d x %d x up to %d), "
               "median of %d\n", (double)n * sizeof(float) / 1048576.0, ctx->size, weft_comm_backend(c), N_ROWS,
               C, 4 * C, reps);
        printf("  gather alone (post, wait)                 %8.2f ms\n", ms[0]);
        printf("  compute alone                             %8.2f ms\n", ms[1]);
        printf("  skew: a barrier after compute             %8.2f ms\n", ms[4]);
        for (int m = 2; m < 4; m++)
            printf("  wait after compute, %-21s %8.2f ms   gather hidden %4.0f%%\n",
                   m == 2 ? "no tests meanwhile" : "a test per matmul", ms[m],
                   100 * (1 - (ms[m] > ms[4] ? ms[m] - ms[4] : 0) / ms[0]));
    }
    free(buf);
    free(w.x);
    free(w.w);
    free(w.y);
    return 0;
}

int main(int argc, char **argv)
{
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {weft_comm_config_keys, NULL};
    if (weft_cli_wants_help(argc, argv)) {
        printf("usage: mpirun -np N bench_gather [--layer-mb M] [--reps N] [--comm.backend=shm|mpi|...]\n"
               "Does a ZeRO-3 layer gather (M MB per layer, default 3) move while the ranks compute? N\n"
               "repetitions (default 9, at most 63). bench/README.md explains the rows.\n");
        return 0;
    }
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    static const struct option opts[] = {{"layer-mb", required_argument, NULL, 'l'},
                                         {"reps", required_argument, NULL, 'r'}, {NULL, 0, NULL, 0}};
    weft_cli cli;
    weft_cli_init(&cli, "bench_gather", argc, argv, opts, ctx->rank ? WEFT_CLI_QUIET : 0);
    double layer_mb = 3.0; /* a block of bench-cpu.ini's GPT-2: 12 C^2 + 13 C floats, C 256 */
    long long reps = 9;
    for (int c; rc == 0 && (c = weft_cli_next(&cli)) != WEFT_CLI_END;)
        rc = c == 'l' ? weft_cli_double(&cli, 0.001, 1e6, &layer_mb)
           : c == 'r' ? weft_cli_long(&cli, 1, 63, &reps) : WEFT_EXIT_USAGE;
    if (rc == 0)
        rc = weft_cli_operands(&cli, 0, 0, "no operands");
    if (rc) {
        weft_finalize(ctx);
        return WEFT_EXIT_USAGE;
    }
    weft_kernels_init(1);
    weft_comm_opts o;
    weft_comm_opts_from_config(ctx->config, &o);
    weft_comm *c;
    rc = weft_comm_world(ctx, &o, &c);
    rc = rc ? rc : run(ctx, c, layer_mb, (int)reps);
    if (rc)
        fprintf(stderr, "bench_gather: %s\n", weft_last_error());
    weft_comm_free(c);
    weft_finalize(ctx);
    return rc ? weft_exit_code(rc) : 0;
}
