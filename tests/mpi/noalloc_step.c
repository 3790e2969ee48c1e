/*
 * noalloc_step.c -- "no allocation on the steady-state step path", checked:
 * this program replaces malloc/calloc/realloc/free (forwarding to glibc's
 * __libc_* functions) and counts calls on the training thread while it runs
 * training steps built from the same library calls as weft-train: loader
 * next, forward, backward with the data-parallel hook, bucket reduction,
 * gradient norm, AdamW, ZeRO-1 gather -- on any DP x TP x PP layout, the
 * micro-batches run by the pipeline schedule (send/recv between stages,
 * tensor-parallel allreduces inside the layers, the tied embedding's sum).
 * After warm-up steps, the measured steps must allocate nothing. Prints TAP
 * from rank 0.
 *
 *   mpirun -np 2 noalloc_step DATASET_DIR [--comm.backend=shm] [--parallel.zero=1]
 *   mpirun -np 4 noalloc_step DATASET_DIR --parallel.tp=2 --parallel.pp=2 [--parallel.schedule=gpipe]
 */
#include "data/loader.h"
#include "kernels/kernels.h"
#include "model/gpt.h"
#include "model/optim.h"
#include "parallel/dp.h"
#include "parallel/mesh.h"
#include "parallel/pipeline.h"
#include "weft.h"
#include "tests/mpi/mpitap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static _Thread_local int counting;
static _Thread_local long allocs;

void *malloc(size_t n) { allocs += counting; return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { allocs += counting; return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { allocs += counting; return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }

enum { T = 32, MICRO = 2, GLOBAL = 8 };

typedef struct {
    weft_gpt *m;
    weft_dp *dp;
    weft_optim *opt;
    weft_loader *L;
    weft_comm *world, *c; /* c: the data-parallel group */
    weft_mesh *mesh;
    weft_pipe *pipe;
    const int32_t *rows;
    int64_t k;
    size_t wte_off, wte_n;
    int32_t in[MICRO * T], tgt[MICRO * T];
} job;

static int fwd(void *arg, int mb, int slot)
{
    job *j = arg;
    double loss;
    for (int i = 0; i < MICRO; i++) {
        memcpy(j->in + i * T, j->rows + (mb * MICRO + i) * (T + 1), T * sizeof(int32_t));
        memcpy(j->tgt + i * T, j->rows + (mb * MICRO + i) * (T + 1) + 1, T * sizeof(int32_t));
    }
    return weft_gpt_forward_slot(j->m, slot, j->in, j->tgt, MICRO, T, &loss);
}
static int bwd(void *arg, int mb, int slot, int last)
{
    job *j = arg;
    (void)mb;
    return weft_gpt_backward_slot(j->m, slot, 1.0 / (double)j->k, last ? weft_dp_hook : NULL, j->dp);
}
static float *in_(void *a, int s) { return weft_gpt_stage_input(((job *)a)->m, s); }
static float *out_(void *a, int s) { return weft_gpt_stage_output(((job *)a)->m, s); }
static float *dout_(void *a) { return weft_gpt_stage_doutput(((job *)a)->m); }
static float *din_(void *a) { return weft_gpt_stage_dinput(((job *)a)->m); }

static int step(job *j, int64_t s)
{
    WEFT_CHECK(weft_loader_next(j->L, &j->rows));
    weft_gpt_zero_grad(j->m);
    weft_dp_begin(j->dp);
    WEFT_CHECK(weft_pipe_train(j->pipe));
    weft_comm *e = weft_mesh_embed_comm(j->mesh);
    float *g = weft_gpt_grads(j->m) + j->wte_off;
    if (e)
        WEFT_CHECK(weft_comm_allreduce(e, g, g, j->wte_n, WEFT_F32, WEFT_SUM));
    WEFT_CHECK(weft_dp_finish_grads(j->dp));
    double sumsq;
    WEFT_CHECK(weft_dp_grad_sumsq(j->dp, &sumsq));
    WEFT_CHECK(weft_comm_allreduce(weft_mesh_comm(j->mesh, WEFT_AXIS_TP), &sumsq, &sumsq, 1, WEFT_F64, WEFT_SUM));
    WEFT_CHECK(weft_comm_allreduce(weft_mesh_comm(j->mesh, WEFT_AXIS_PP), &sumsq, &sumsq, 1, WEFT_F64, WEFT_SUM));
    weft_optim_step(j->opt, weft_gpt_params(j->m), weft_gpt_grads(j->m), weft_optim_lr(j->opt, s),
                    weft_optim_clip_scale(j->opt, sqrt(sumsq)));
    return weft_dp_gather_params(j->dp);
}

static int setup(weft_ctx *ctx, const char *dataset, job *j)
{
    weft_comm_opts co;
    weft_comm_opts_from_config(ctx->config, &co);
    WEFT_CHECK(weft_comm_world(ctx, &co, &j->world));
    weft_mesh_layout l;
    WEFT_CHECK(weft_mesh_layout_from_config(ctx->config, ctx->size, &l));
    WEFT_CHECK(weft_mesh_new(j->world, &l, &j->mesh));
    j->c = weft_mesh_comm(j->mesh, WEFT_AXIS_DP);
    j->k = GLOBAL / (MICRO * weft_comm_size(j->c));
    weft_pipe_schedule sched;
    WEFT_CHECK(weft_pipe_schedule_parse(weft_config_str(ctx->config, "parallel.schedule"), &sched));
    int tp = l.size[WEFT_AXIS_TP], pp = l.size[WEFT_AXIS_PP];
    weft_gpt_part part = {.tp_rank = weft_mesh_rank(j->mesh, WEFT_AXIS_TP), .tp_size = tp,
                          .pp_rank = weft_mesh_rank(j->mesh, WEFT_AXIS_PP), .pp_size = pp,
                          .nslots = weft_pipe_nslots(sched, pp, (int)j->k),
                          .tp = weft_mesh_comm(j->mesh, WEFT_AXIS_TP)};
    weft_gpt_config gc = {.vocab = 256, .max_seq = T, .n_layer = 2, .n_head = 2, .n_embd = 32};
    WEFT_CHECK(weft_gpt_new_part(&gc, &part, MICRO, T, &j->m));
    weft_gpt_init(j->m, 1);
    weft_pipe_stage st = {j, fwd, bwd, in_, out_, dout_, din_};
    WEFT_CHECK(weft_pipe_new(weft_mesh_comm(j->mesh, WEFT_AXIS_PP), sched, (int)j->k, (size_t)MICRO * T * 32, &st,
                             &j->pipe));
    weft_dp_opts dpo;
    weft_dp_opts_from_config(ctx->config, &dpo);
    dpo.bucket_bytes = 16384; /* several buckets */
    WEFT_CHECK(weft_dp_new(j->c, weft_gpt_params(j->m), weft_gpt_grads(j->m), weft_gpt_num_params(j->m), &dpo,
                           &j->dp));
    weft_optim_segment segs[64];
    int n = weft_gpt_nparams(j->m);
    for (int i = 0; i < n; i++) {
        const weft_gpt_param *p = weft_gpt_param_at(j->m, i);
        segs[i] = (weft_optim_segment){p->offset, p->numel, p->decay};
        if (strcmp(p->name, "wte") == 0)
            j->wte_off = p->offset, j->wte_n = p->numel;
    }
    weft_adamw_opts ao = {.lr = 1e-3, .min_lr = 1e-4, .warmup = 2, .total_steps = 100, .beta1 = 0.9,
                          .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1, .grad_clip = 1.0};
    WEFT_CHECK(weft_optim_new(segs, n, j->dp, &ao, &j->opt));
    weft_loader_options lo;
    weft_loader_options_default(&lo);
    lo.n_datasets = 1;
    lo.paths[0] = dataset;
    lo.seq_len = T;
    lo.global_batch = GLOBAL;
    lo.dp_rank = weft_mesh_rank(j->mesh, WEFT_AXIS_DP);
    lo.dp_size = weft_comm_size(j->c);
    return weft_loader_open(&lo, &j->L);
}

int main(int argc, char **argv)
{
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {weft_comm_config_keys, weft_parallel_config_keys, weft_mesh_config_keys,
                                           NULL};
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    tap_rank = ctx->rank;
    weft_kernels_init(1);
    job j = {0};
    tap_begin();
    rc = argc > 1 ? setup(ctx, argv[1], &j) : weft_error(WEFT_EINVAL, "usage: noalloc_step DATASET_DIR");
    TAP_CHECK(rc == 0, "setup: %s", weft_last_error());
    for (int64_t s = 0; rc == 0 && s < 3; s++) /* warm-up: pools and scratch grow here */
        rc = step(&j, s);
    counting = 1;
    for (int64_t s = 3; rc == 0 && s < 8; s++)
        rc = step(&j, s);
    counting = 0;
    TAP_CHECK(rc == 0, "steps: %s", weft_last_error());
    TAP_CHECK(allocs == 0, "%ld allocations in 5 steady-state steps on the training thread", allocs);
    char mesh[128] = "?";
    if (j.mesh)
        weft_mesh_describe(j.mesh, mesh, sizeof mesh);
    if (strstr(mesh, " (this"))
        *strstr(mesh, " (this") = '\0';
    tap_end("no allocation in 5 steady-state training steps (backend %s, ZeRO-%d, %d rank%s, %s, %s)",
            j.c ? weft_comm_backend(j.c) : "?", (int)weft_config_int(ctx->config, "parallel.zero"), ctx->size,
            ctx->size == 1 ? "" : "s", mesh, weft_config_str(ctx->config, "parallel.schedule"));
    weft_loader_close(j.L);
    weft_optim_free(j.opt);
    weft_pipe_free(j.pipe);
    weft_dp_free(j.dp);
    weft_gpt_free(j.m);
    weft_mesh_free(j.mesh);
    weft_comm_free(j.world);
    weft_finalize(ctx);
    return tap_total_failed ? 1 : 0;
}
