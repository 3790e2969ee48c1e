/*
 * bench_pipeline.c -- pipeline and tensor parallelism measured:
 *
 *  1. For a few (p stages, m micro-batches), each stage's measured idle
 *     (bubble) fraction of a training step beside the theoretical
 *     (p - 1) / (m + p - 1), and the peak activation memory a stage held
 *     under 1F1B and under GPipe (slots in use x bytes per micro-batch).
 *  2. Tokens/s of one GPT trained with dp = 2, tp = 2 and pp = 2 on the same
 *     two ranks, same global batch, in the same run (full steps of the
 *     library trainer: schedule, gradient reduction, norm, AdamW).
 *
 *   mpirun -np 4 build/bench/bench_pipeline [--steps N]
 *
 * Part 1 uses pp = 2 and, with 4 or more ranks, pp = 4 (DP replicas fill
 * the rest of the world and only run the schedule); part 2 uses ranks 0-1.
 * The model is GPT-2 shaped, synthetic tokens (uniform), one BLAS thread
 * per rank. Timings on an oversubscribed machine (more ranks than cores)
 * measure the scheduler, not the pipeline.
 */
#include "kernels/kernels.h"
#include "model/gpt.h"
#include "parallel/mesh.h"
#include "parallel/pipeline.h"
#include "runtime/rng.h"
#include "runtime/timer.h"
#include "weft.h"
#include "train/synthetic_source.h"
#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Part 1's job: one model part and its pipeline, no optimizer: the
 * schedule alone, through the model interface. */
typedef struct {
    weft_mesh *mesh;
    weft_gpt *model;
    weft_pipe *pipe;
    int32_t *rows; /* (k b, T + 1) random tokens */
} job;

static weft_model *model_of(void *a) { return weft_gpt_model(((job *)a)->model); }
static int fwd(void *arg, const void *batch, int mb, int slot, double *loss)
{
    return model_of(arg)->ops->forward(model_of(arg), slot, batch, mb, loss);
}
static int bwd(void *arg, int mb, int slot, int last)
{
    (void)mb, (void)last;
    return model_of(arg)->ops->backward(model_of(arg), slot, 1.0, NULL, NULL);
}
static float *in_(void *a, int s) { return weft_gpt_stage_input(((job *)a)->model, s); }
static float *out_(void *a, int s) { return weft_gpt_stage_output(((job *)a)->model, s); }
static float *dout_(void *a) { return weft_gpt_stage_doutput(((job *)a)->model); }
static float *din_(void *a) { return weft_gpt_stage_dinput(((job *)a)->model); }

static int job_new(weft_comm *world, const weft_gpt_config *gc, int dp, int pp, weft_pipe_schedule s, int b, int T,
                   int k, job *j)
{
    memset(j, 0, sizeof *j);
    weft_mesh_layout l = {.size = {dp, 1, pp}};
    WEFT_CHECK(weft_mesh_new(world, &l, &j->mesh));
    weft_gpt_part part = {.tp_size = 1, .pp_rank = weft_mesh_rank(j->mesh, WEFT_AXIS_PP), .pp_size = pp,
                          .nslots = weft_pipe_nslots(s, pp, weft_mesh_rank(j->mesh, WEFT_AXIS_PP), k)};
    WEFT_CHECK(weft_gpt_new_part(gc, &part, b, T, &j->model));
    weft_gpt_init(j->model, 1);
    size_t n = (size_t)k * b * (T + 1);
    j->rows = malloc(n * sizeof(int32_t));
    if (!j->rows)
        return weft_error(WEFT_ENOMEM, "out of memory");
    weft_rng r;
    weft_rng_seed(&r, 5 + (uint64_t)weft_mesh_rank(j->mesh, WEFT_AXIS_DP));
    for (size_t i = 0; i < n; i++)
        j->rows[i] = (int32_t)(weft_rng_u64(&r) % (uint64_t)gc->vocab);
    weft_pipe_stage st = {j, fwd, bwd, in_, out_, dout_, din_};
    return weft_pipe_new(weft_mesh_comm(j->mesh, WEFT_AXIS_PP), s, k, (size_t)b * T * gc->n_embd, &st, &j->pipe);
}

static void job_free(job *j)
{
    weft_pipe_free(j->pipe);
    weft_gpt_free(j->model);
    weft_mesh_free(j->mesh);
    free(j->rows);
}

/* Part 1: one (p, m, schedule): idle fraction per stage, peak memory. */
static int bubble(weft_comm *world, const weft_gpt_config *gc, int p, int m, weft_pipe_schedule s, int steps)
{
    int n = weft_comm_size(world);
    job j;
    WEFT_CHECK(job_new(world, gc, n / p, p, s, 2, 64, m, &j));
    double idle = 0, mem = 0;
    for (int i = 0; i < steps + 1; i++) {
        weft_gpt_zero_grad(j.model);
        double loss;
        WEFT_CHECK(weft_pipe_train(j.pipe, j.rows, &loss));
        weft_pipe_stats st;
        weft_pipe_get_stats(j.pipe, &st);
        if (i > 0) /* the first step warms caches */
            idle += (double)st.wait_ns / (double)st.total_ns / steps;
        mem = (double)st.peak_inflight * (double)weft_gpt_slot_bytes(j.model);
    }
    double mine[2] = {idle, mem}, all[64];
    WEFT_CHECK(weft_comm_allgather(world, mine, all, 2 * (size_t)n, WEFT_F64));
    if (weft_comm_rank(world) == 0) {
        printf("  p=%d m=%-2d %-5s theory %5.1f%%  measured per stage:", p, m, weft_pipe_schedule_name(s),
               100.0 * (p - 1) / (m + p - 1));
        for (int st = 0; st < p; st++)
            printf(" %5.1f%%", 100 * all[2 * (st * (n / p))]);
        printf("   peak activations per stage (MiB):");
        for (int st = 0; st < p; st++)
            printf(" %.1f", all[2 * (st * (n / p)) + 1] / (1 << 20));
        printf("\n");
    }
    job_free(&j);
    return 0;
}

/* Part 2: tokens/s of one layout on the 2-rank communicator, full steps
 * of the library trainer (weft_trainer_step: the step weft-train runs). */
static int throughput(weft_ctx *ctx, weft_comm *two, const weft_gpt_config *gc, int dp, int tp, int pp, int steps,
                      double *tps)
{
    static const weft_config_key *const tables[] = {weft_runtime_config_keys, WEFT_TRAINER_CONFIG_KEYS, NULL};
    int G = 16, b = 4, T = 128;
    char v[3][8];
    snprintf(v[0], 8, "%d", dp), snprintf(v[1], 8, "%d", tp), snprintf(v[2], 8, "%d", pp);
    const char *const kv[][2] = {
        {"parallel.dp", v[0]},     {"parallel.tp", v[1]},        {"parallel.pp", v[2]},
        {"train.micro_batch", "4"}, {"train.seq_len", "128"},     {"train.global_batch", "16"},
        {"train.steps", "1000"},    {"parallel.bucket_mb", "4"},  {"optim.warmup", "1"},
    };
    weft_config *cfg;
    WEFT_CHECK(weft_config_new(tables, &cfg));
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof kv / sizeof kv[0]; i++)
        rc = weft_config_set(cfg, kv[i][0], kv[i][1], "bench_pipeline");
    weft_trainer *t = NULL;
    weft_gpt *g = NULL;
    weft_source *src = NULL;
    if (rc == 0)
        rc = weft_trainer_new_on(ctx, two, cfg, &t);
    weft_model_part mp;
    if (rc == 0) {
        weft_trainer_part(t, &mp);
        rc = weft_gpt_new_part(gc, &mp, b, T, &g);
    }
    if (rc == 0) {
        weft_gpt_init(g, 1);
        rc = weft_trainer_set_model(t, weft_gpt_model(g));
    }
    if (rc == 0)
        rc = weft_synthetic_source_open(gc->vocab, T, G / dp, 5, weft_mesh_rank(weft_trainer_mesh(t), WEFT_AXIS_DP),
                                        &src);
    if (rc == 0) {
        weft_trainer_set_source(t, src, NULL);
        weft_step_stats s = {0};
        rc = weft_trainer_step(t, &s);
    }
    int64_t t0 = weft_now_ns();
    for (int i = 1; rc == 0 && i <= steps; i++)
        rc = weft_trainer_step(t, &(weft_step_stats){.step = i});
    if (rc == 0)
        rc = weft_comm_barrier(two);
    *tps = (double)G * T * steps / (1e-9 * (double)(weft_now_ns() - t0));
    if (!t)
        weft_gpt_free(g);
    weft_trainer_close(t, 0);
    weft_config_free(cfg);
    return rc;
}

static int run(weft_ctx *ctx, int steps)
{
    weft_comm *world, *two = NULL;
    WEFT_CHECK(weft_comm_world(ctx, NULL, &world));
    int n = weft_comm_size(world), me = weft_comm_rank(world);
    weft_gpt_config small = {.vocab = 1024, .max_seq = 64, .n_layer = 8, .n_head = 4, .n_embd = 128};
    if (me == 0)
        printf("bench_pipeline: %d ranks; part 1: GPT L8 C128 V1024, micro-batch 2 x T 64, %d steps\n", n, steps);
    for (int p = 2; p <= n && p <= 4; p *= 2)
        for (int m = p; m <= 4 * p; m *= 2)
            for (int s = 0; s < 2; s++)
                WEFT_CHECK(bubble(world, &small, p, m, (weft_pipe_schedule)s, steps));
    WEFT_CHECK(weft_comm_split(world, me < 2 ? 0 : -1, me, "two", &two));
    if (two) {
        weft_gpt_config gc = {.vocab = 4096, .max_seq = 128, .n_layer = 4, .n_head = 4, .n_embd = 256};
        const int lay[3][3] = {{2, 1, 1}, {1, 2, 1}, {1, 1, 2}};
        double tps[3];
        for (int i = 0; i < 3; i++)
            WEFT_CHECK(throughput(ctx, two, &gc, lay[i][0], lay[i][1], lay[i][2], steps, &tps[i]));
        if (me == 0) {
            printf("part 2: GPT L4 NH4 C256 V4096 T128, global batch 16, micro-batch 4, 2 ranks, full steps\n");
            printf("  dp=2 (reference)   %8.0f tokens/s\n", tps[0]);
            printf("  tp=2               %8.0f tokens/s   %.2fx dp\n", tps[1], tps[1] / tps[0]);
            printf("  pp=2 (1f1b, m=4)   %8.0f tokens/s   %.2fx dp\n", tps[2], tps[2] / tps[0]);
        }
        weft_comm_free(two);
    }
    weft_comm_free(world);
    return 0;
}

int main(int argc, char **argv)
{
    if (weft_cli_wants_help(argc, argv)) {
        printf("usage: mpirun -np 4 bench_pipeline [--steps N]\n"
               "Pipeline bubbles and activation memory per (stages, micro-batches), 1F1B and GPipe, beside\n"
               "the theory; then tokens/s of one GPT with dp 2, tp 2, pp 2 on ranks 0-1. N timed steps\n"
               "(default 5). bench/README.md explains the rows.\n");
        return 0;
    }
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {NULL};
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    static const struct option opts[] = {{"steps", required_argument, NULL, 's'}, {NULL, 0, NULL, 0}};
    weft_cli cli;
    weft_cli_init(&cli, "bench_pipeline", argc, argv, opts, ctx->rank ? WEFT_CLI_QUIET : 0);
    long long steps = 5;
    for (int c; rc == 0 && (c = weft_cli_next(&cli)) != WEFT_CLI_END;)
        rc = c == 's' ? weft_cli_long(&cli, 1, 1000000, &steps) : WEFT_EXIT_USAGE;
    if (rc == 0)
        rc = weft_cli_operands(&cli, 0, 0, "no operands");
    if (rc) {
        weft_finalize(ctx);
        return WEFT_EXIT_USAGE;
    }
    weft_kernels_init(1);
    rc = run(ctx, (int)steps);
    if (rc)
        WEFT_ERROR("bench_pipeline: %s", weft_last_error());
    weft_finalize(ctx);
    return weft_exit_code(rc);
}
