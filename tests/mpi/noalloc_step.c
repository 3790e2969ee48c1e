/*
 * noalloc_step.c -- "no allocation on the steady-state step path", checked:
 * this program replaces malloc/calloc/realloc/free (forwarding to glibc's
 * __libc_* functions) and counts calls on the training thread while it runs
 * training steps built from the same library calls as weft-train: loader
 * next, forward, backward with the data-parallel hook, bucket reduction,
 * gradient norm, AdamW, ZeRO-1 gather. After warm-up steps, the measured
 * steps must allocate nothing. Prints TAP from rank 0.
 *
 *   mpirun -np 2 noalloc_step DATASET_DIR [--comm.backend=shm] [--parallel.zero=1]
 */
#include "data/loader.h"
#include "kernels/kernels.h"
#include "model/gpt.h"
#include "model/optim.h"
#include "parallel/dp.h"
#include "runtime/weft.h"
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

enum { T = 32, MICRO = 4, GLOBAL = 8 };

typedef struct {
    weft_gpt *m;
    weft_dp *dp;
    weft_optim *opt;
    weft_loader *L;
    weft_comm *c;
    int32_t in[MICRO * T], tgt[MICRO * T];
} job;

static int step(job *j, int64_t s)
{
    const int32_t *rows;
    WEFT_CHECK(weft_loader_next(j->L, &rows));
    weft_gpt_zero_grad(j->m);
    weft_dp_begin(j->dp);
    int64_t k = GLOBAL / (MICRO * weft_comm_size(j->c));
    for (int64_t mb = 0; mb < k; mb++) {
        for (int i = 0; i < MICRO; i++) {
            memcpy(j->in + i * T, rows + (mb * MICRO + i) * (T + 1), T * sizeof(int32_t));
            memcpy(j->tgt + i * T, rows + (mb * MICRO + i) * (T + 1) + 1, T * sizeof(int32_t));
        }
        weft_gpt_forward(j->m, j->in, j->tgt, MICRO, T);
        weft_gpt_backward(j->m, 1.0 / (double)k, mb == k - 1 ? weft_dp_hook : NULL, j->dp);
    }
    WEFT_CHECK(weft_dp_finish_grads(j->dp));
    double sumsq;
    WEFT_CHECK(weft_dp_grad_sumsq(j->dp, &sumsq));
    weft_optim_step(j->opt, weft_gpt_params(j->m), weft_gpt_grads(j->m), weft_optim_lr(j->opt, s),
                    weft_optim_clip_scale(j->opt, sqrt(sumsq)));
    return weft_dp_gather_params(j->dp);
}

static int setup(weft_ctx *ctx, const char *dataset, job *j)
{
    weft_comm_opts co;
    weft_comm_opts_from_config(ctx->config, &co);
    WEFT_CHECK(weft_comm_world(ctx, &co, &j->c));
    weft_gpt_config gc = {.vocab = 256, .max_seq = T, .n_layer = 2, .n_head = 2, .n_embd = 32};
    WEFT_CHECK(weft_gpt_new(&gc, MICRO, T, &j->m));
    weft_gpt_init(j->m, 1);
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
    lo.dp_rank = weft_comm_rank(j->c);
    lo.dp_size = weft_comm_size(j->c);
    return weft_loader_open(&lo, &j->L);
}

int main(int argc, char **argv)
{
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {weft_comm_config_keys, weft_parallel_config_keys, NULL};
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
    tap_end("no allocation in 5 steady-state training steps (backend %s, ZeRO-%d, %d rank%s)",
            j.c ? weft_comm_backend(j.c) : "?", (int)weft_config_int(ctx->config, "parallel.zero"), ctx->size,
            ctx->size == 1 ? "" : "s");
    weft_loader_close(j.L);
    weft_optim_free(j.opt);
    weft_dp_free(j.dp);
    weft_gpt_free(j.m);
    weft_comm_free(j.c);
    weft_finalize(ctx);
    return tap_total_failed ? 1 : 0;
}
