/*
 * bench_recompute.c -- what train.recompute = block costs and saves: two
 * trainers of the same model in one process, one keeping every block's
 * activations (the reference) and one recomputing them, stepped in turn
 * (none, block, none, block, ...) so that a machine whose load drifts
 * slows both alike. Prints each one's median step time, their ratio, and
 * the activation bytes each holds (the model's own account, model.h's
 * weft_model_mem: kept per micro-batch in flight, and shared).
 *
 *   mpirun -np 1 BUILD/bench/bench_recompute --data.path=DIR [model and train keys] [--bench.steps=N]
 *
 * bench/README.md gives the 50M-parameter run and its figures. Every key
 * of weft-train applies; train.recompute is set by the benchmark.
 */
#include "model/lm.h"
#include "runtime/timer.h"
#include "train/trainer.h"
#include "weft.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_STEPS = 64 };

typedef struct {
    const char *mode;
    weft_trainer *t;
    weft_model_mem mem;
    double ms[MAX_STEPS];
} arm;

static int build(weft_ctx *ctx, arm *a)
{
    WEFT_CHECK(weft_config_set(ctx->config, "train.recompute", a->mode, "bench_recompute"));
    WEFT_CHECK(weft_trainer_new(ctx, &a->t));
    int vocab;
    WEFT_CHECK(weft_trainer_open_tokens(a->t, &vocab));
    weft_model_part mp;
    weft_trainer_part(a->t, &mp); /* reads train.recompute now */
    weft_model *m;
    WEFT_CHECK(weft_lm_new(ctx->config, vocab, &mp, 1, &m));
    a->mem = m->mem;
    return weft_trainer_set_model(a->t, m);
}

static int cmp(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double activations(const weft_model_mem *m) { return (double)m->nslots * m->slot_bytes + m->shared_bytes; }

int main(int argc, char **argv)
{
    static const weft_config_key bench_keys[] = {
        {"bench.steps", WEFT_CFG_INT, "6", 1, MAX_STEPS, NULL, "timed steps of each trainer (after one warm-up)"},
        WEFT_CONFIG_END,
    };
    const weft_config_key *const keys[] = {weft_model_config_keys, WEFT_TRAINER_CONFIG_KEYS, bench_keys, NULL};
    if (weft_cli_wants_help(argc, argv)) {
        printf("usage: mpirun -np 1 bench_recompute --data.path=DIR [--model.KEY=VALUE ...] [--train.KEY=VALUE ...]\n"
               "                [--bench.steps=N]\n"
               "train.recompute = none beside block, stepped in turn in one process: median step times,\n"
               "their ratio, and the activation bytes each holds. Every key of weft-train applies.\n");
        return 0;
    }
    weft_ctx *ctx;
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    weft_cli cli;
    if (weft_cli_operands_only(&cli, "bench_recompute", argc, argv, ctx->rank ? WEFT_CLI_QUIET : 0, 0, 0,
                               "no operands")) {
        weft_finalize(ctx);
        return WEFT_EXIT_USAGE;
    }
    int steps = (int)weft_config_int(ctx->config, "bench.steps");
    arm arms[2] = {{.mode = "none"}, {.mode = "block"}};
    for (int i = 0; rc == 0 && i < 2; i++)
        rc = build(ctx, &arms[i]);
    for (int s = 0; rc == 0 && s <= steps; s++) /* step 0 of each: warm-up, not timed */
        for (int i = 0; rc == 0 && i < 2; i++) {
            weft_step_stats st = {.step = s};
            int64_t t0 = weft_now_ns();
            rc = weft_trainer_step(arms[i].t, &st);
            if (s > 0)
                arms[i].ms[s - 1] = 1e-6 * (double)(weft_now_ns() - t0);
        }
    if (rc == 0 && ctx->rank == 0) {
        const weft_model_mem *n = &arms[0].mem, *b = &arms[1].mem;
        double tn = median(arms[0].ms, steps), tb = median(arms[1].ms, steps);
        printf("%-34s %12s %12s %8s\n", "", "none (ref)", "block", "ratio");
        printf("%-34s %12.1f %12.1f %7.2fx\n", "median step time (ms)", tn, tb, tb / tn);
        printf("%-34s %12.1f %12.1f %7.2fx\n", "activations (MiB)", activations(n) / 1048576.0,
               activations(b) / 1048576.0, activations(n) / activations(b));
        printf("%-34s %12.1f %12.1f\n", "  kept per micro-batch (MiB)", n->slot_bytes / 1048576.0,
               b->slot_bytes / 1048576.0);
        printf("%-34s %12d %12d\n", "  micro-batches in flight", n->nslots, b->nslots);
        printf("%-34s %12.1f %12.1f\n", "  shared (MiB)", n->shared_bytes / 1048576.0, b->shared_bytes / 1048576.0);
        printf("(%s; %d timed steps each, alternating; model %s)\n", "train.recompute none vs block", steps,
               weft_config_str(ctx->config, "model.family"));
    }
    if (rc && ctx->rank == 0)
        fprintf(stderr, "bench_recompute: %s\n", weft_last_error());
    for (int i = 0; i < 2; i++)
        weft_trainer_close(arms[i].t, 0);
    weft_finalize(ctx);
    return rc ? weft_exit_code(rc) : 0;
}
