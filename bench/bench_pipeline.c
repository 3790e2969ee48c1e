/*
 * bench_pipeline.c -- pipeline and tensor parallelism measured:
 *
 *  1. For a few (p stages, m micro-batches), each stage's measured idle
 *     (bubble) fraction of a training step beside the theoretical
 *     (p - 1) / (m + p - 1), and the peak activation memory a stage held
 *     under 1F1B and under GPipe (slots in use x bytes per micro-batch).
 *  2. Tokens/s of one GPT trained with dp = 2, tp = 2 and pp = 2 on the same
 *     two ranks, same global batch, in the same run (full steps: schedule,
 *     gradient reduction, AdamW).
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
#include "model/optim.h"
#include "parallel/dp.h"
#include "parallel/mesh.h"
#include "parallel/pipeline.h"
#include "runtime/rng.h"
#include "runtime/timer.h"
#include "weft.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    weft_mesh *mesh;
    weft_gpt *model;
    weft_dp *dp;
    weft_optim *opt;
    weft_pipe *pipe;
    int b, T, k;
    int32_t *tok, *tgt; /* (k, b, T) */
    size_t wte_off, wte_n;
} job;

static int fwd(void *arg, int mb, int slot)
{
    job *j = arg;
    double loss;
    size_t o = (size_t)mb * j->b * j->T;
    return weft_gpt_forward_slot(j->model, slot, j->tok + o, j->tgt + o, j->b, j->T, &loss);
}
static int bwd(void *arg, int mb, int slot, int last)
{
    job *j = arg;
    (void)mb;
    return weft_gpt_backward_slot(j->model, slot, 1.0 / j->k, last && j->dp ? weft_dp_hook : NULL, j->dp);
}
static float *in_(void *a, int s) { return weft_gpt_stage_input(((job *)a)->model, s); }
static float *out_(void *a, int s) { return weft_gpt_stage_output(((job *)a)->model, s); }
static float *dout_(void *a) { return weft_gpt_stage_doutput(((job *)a)->model); }
static float *din_(void *a) { return weft_gpt_stage_dinput(((job *)a)->model); }

/* A job on world for layout (dp, tp, pp): model part, pipeline, and with
 * train set the data-parallel reducer and optimizer. */
static int job_new(weft_comm *world, const weft_gpt_config *gc, int dp, int tp, int pp, weft_pipe_schedule s,
                   int b, int T, int k, int train, job *j)
{
    memset(j, 0, sizeof *j);
    weft_mesh_layout l = {.size = {dp, tp, pp}};
    WEFT_CHECK(weft_mesh_new(world, &l, &j->mesh));
    j->b = b, j->T = T, j->k = k;
    weft_gpt_part part = {.tp_rank = weft_mesh_rank(j->mesh, WEFT_AXIS_TP), .tp_size = tp,
                          .pp_rank = weft_mesh_rank(j->mesh, WEFT_AXIS_PP), .pp_size = pp,
                          .nslots = weft_pipe_nslots(s, pp, k), .tp = weft_mesh_comm(j->mesh, WEFT_AXIS_TP)};
    WEFT_CHECK(weft_gpt_new_part(gc, &part, b, T, &j->model));
    weft_gpt_init(j->model, 1);
    j->tok = malloc((size_t)k * b * T * sizeof(int32_t));
    j->tgt = malloc((size_t)k * b * T * sizeof(int32_t));
    if (!j->tok || !j->tgt)
        return weft_error(WEFT_ENOMEM, "out of memory");
    weft_rng r;
    weft_rng_seed(&r, 5 + (uint64_t)weft_mesh_rank(j->mesh, WEFT_AXIS_DP));
    for (size_t i = 0; i < (size_t)k * b * T; i++) {
        j->tok[i] = (int32_t)(weft_rng_u64(&r) % (uint64_t)gc->vocab);
        j->tgt[i] = (int32_t)(weft_rng_u64(&r) % (uint64_t)gc->vocab);
    }
    weft_pipe_stage st = {j, fwd, bwd, in_, out_, dout_, din_};
    WEFT_CHECK(weft_pipe_new(weft_mesh_comm(j->mesh, WEFT_AXIS_PP), s, k, (size_t)b * T * gc->n_embd, &st,
                             &j->pipe));
    if (!train)
        return 0;
    weft_dp_opts o = {.bucket_bytes = 4 << 20, .zero = 0};
    WEFT_CHECK(weft_dp_new(weft_mesh_comm(j->mesh, WEFT_AXIS_DP), weft_gpt_params(j->model),
                           weft_gpt_grads(j->model), weft_gpt_num_params(j->model), &o, &j->dp));
    int np = weft_gpt_nparams(j->model);
    weft_optim_segment segs[256];
    for (int i = 0; i < np && i < 256; i++) {
        const weft_gpt_param *p = weft_gpt_param_at(j->model, i);
        segs[i] = (weft_optim_segment){p->offset, p->numel, p->decay};
        if (strcmp(p->name, "wte") == 0)
            j->wte_off = p->offset, j->wte_n = p->numel;
    }
    weft_adamw_opts ao = {.lr = 1e-4, .min_lr = 1e-5, .warmup = 1, .total_steps = 1000, .beta1 = 0.9,
                          .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1, .grad_clip = 1.0};
    return weft_optim_new(segs, np, j->dp, &ao, &j->opt);
}

static void job_free(job *j)
{
    weft_optim_free(j->opt);
    weft_dp_free(j->dp);
    weft_pipe_free(j->pipe);
    weft_gpt_free(j->model);
    weft_mesh_free(j->mesh);
    free(j->tok);
    free(j->tgt);
}

/* A full training step, as weft-train takes it. */
static int train_step(job *j)
{
    weft_gpt_zero_grad(j->model);
    weft_dp_begin(j->dp);
    WEFT_CHECK(weft_pipe_train(j->pipe));
    weft_comm *e = weft_mesh_embed_comm(j->mesh);
    float *g = weft_gpt_grads(j->model) + j->wte_off;
    if (e)
        WEFT_CHECK(weft_comm_allreduce(e, g, g, j->wte_n, WEFT_F32, WEFT_SUM));
    WEFT_CHECK(weft_dp_finish_grads(j->dp));
    weft_optim_step(j->opt, weft_gpt_params(j->model), weft_gpt_grads(j->model), 1e-4, 1.0);
    return 0;
}

/* Part 1: one (p, m, schedule): idle fraction per stage, peak memory. */
static int bubble(weft_comm *world, const weft_gpt_config *gc, int p, int m, weft_pipe_schedule s, int steps)
{
    int n = weft_comm_size(world);
    job j;
    WEFT_CHECK(job_new(world, gc, n / p, 1, p, s, 2, 64, m, 0, &j));
    double idle = 0, mem = 0;
    for (int i = 0; i < steps + 1; i++) {
        weft_gpt_zero_grad(j.model);
        WEFT_CHECK(weft_pipe_train(j.pipe));
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

/* Part 2: tokens/s of one layout on the 2-rank communicator. */
static int throughput(weft_comm *two, const weft_gpt_config *gc, int dp, int tp, int pp, int steps, double *tps)
{
    int G = 16, b = 4, T = 128, k = G / (b * dp);
    job j;
    WEFT_CHECK(job_new(two, gc, dp, tp, pp, WEFT_PIPE_1F1B, b, T, k, 1, &j));
    WEFT_CHECK(train_step(&j));
    WEFT_CHECK(weft_comm_barrier(two));
    int64_t t0 = weft_now_ns();
    for (int i = 0; i < steps; i++)
        WEFT_CHECK(train_step(&j));
    WEFT_CHECK(weft_comm_barrier(two));
    *tps = (double)G * T * steps / (1e-9 * (double)(weft_now_ns() - t0));
    job_free(&j);
    return 0;
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
            WEFT_CHECK(throughput(two, &gc, lay[i][0], lay[i][1], lay[i][2], steps, &tps[i]));
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
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {NULL};
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    int steps = 5;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--steps") == 0)
            steps = atoi(argv[++i]);
    weft_kernels_init(1);
    rc = run(ctx, steps);
    if (rc)
        WEFT_ERROR("bench_pipeline: %s", weft_last_error());
    weft_finalize(ctx);
    return weft_exit_code(rc);
}
