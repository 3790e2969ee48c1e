/*
 * recompute_grads.c -- train.recompute = block gives bitwise the gradients
 * of train.recompute = none: the same steps of the library trainer run
 * twice from the same initial weights and batches, once keeping every
 * block's activations and once recomputing them in backward, and every
 * rank compares its gradient buffer after each step, the step's loss and
 * gradient norm, and the parameters at the end, bit for bit. Also checks
 * that recomputation holds less: the model's kept activations per slot
 * (weft_model.mem) must shrink. Any layout and family the keys give
 * (tests/train/test_recompute.sh runs 1 rank and tp2 x pp2, GPT-2, Llama
 * and LoRA). Prints TAP from rank 0.
 *
 *   mpirun -np 4 recompute_grads --data.path=DIR --parallel.tp=2 --parallel.pp=2 [model keys]
 */
#include "model/lm.h"
#include "weft.h"
#include "train/trainer.h"
#include "tests/mpi/mpitap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { STEPS = 3 };

typedef struct {
    double loss[STEPS], norm[STEPS];
    float *grads;  /* (STEPS, n) the gradient buffer after each step */
    float *params; /* (n) after the last step */
    size_t n;
    weft_model_mem mem;
} run_result;

/* STEPS library steps with train.recompute = mode; the model built as
 * weft-train builds it. */
static int run(weft_ctx *ctx, const char *mode, run_result *r)
{
    WEFT_CHECK(weft_config_set(ctx->config, "train.recompute", mode, "recompute_grads"));
    weft_trainer *t;
    int rc = weft_trainer_new(ctx, &t), vocab = 0;
    weft_model *m = NULL;
    weft_model_part mp;
    if (rc == 0)
        rc = weft_trainer_open_tokens(t, &vocab);
    if (rc == 0) {
        weft_trainer_part(t, &mp);
        rc = weft_lm_new(ctx->config, vocab, &mp, 7, &m);
    }
    if (rc == 0)
        rc = weft_trainer_set_model(t, m);
    if (rc == 0) {
        r->n = m->n;
        r->mem = m->mem;
        r->grads = malloc(STEPS * m->n * sizeof(float));
        r->params = malloc(m->n * sizeof(float));
        rc = r->grads && r->params ? 0 : weft_error(WEFT_ENOMEM, "out of memory");
    }
    for (int s = 0; rc == 0 && s < STEPS; s++) {
        weft_step_stats st = {.step = s};
        rc = weft_trainer_step(t, &st);
        r->loss[s] = st.loss;
        r->norm[s] = st.grad_norm;
        memcpy(r->grads + (size_t)s * r->n, m->grad_data, r->n * sizeof(float));
    }
    if (rc == 0)
        memcpy(r->params, m->param_data, r->n * sizeof(float));
    return weft_trainer_close(t, rc) ? (rc ? rc : WEFT_EINTERNAL) : 0;
}

/* The first element where a and b differ as bits, or -1. */
static long first_diff(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0)
            return (long)i;
    return -1;
}

int main(int argc, char **argv)
{
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {weft_model_config_keys, WEFT_TRAINER_CONFIG_KEYS, NULL};
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    tap_rank = ctx->rank;
    run_result none = {0}, block = {0};
    tap_begin();
    rc = run(ctx, "none", &none);
    TAP_CHECK(rc == 0, "recompute none: %s", weft_last_error());
    int rc2 = run(ctx, "block", &block);
    TAP_CHECK(rc2 == 0, "recompute block: %s", weft_last_error());
    if (rc == 0 && rc2 == 0) {
        TAP_CHECK(none.n == block.n, "%zu parameters without recomputation, %zu with", none.n, block.n);
        for (int s = 0; s < STEPS; s++) {
            TAP_CHECK(memcmp(&none.loss[s], &block.loss[s], sizeof(double)) == 0 &&
                          memcmp(&none.norm[s], &block.norm[s], sizeof(double)) == 0,
                      "step %d: loss %.17g / %.17g, norm %.17g / %.17g (none / block)", s, none.loss[s],
                      block.loss[s], none.norm[s], block.norm[s]);
            long i = first_diff(none.grads + (size_t)s * none.n, block.grads + (size_t)s * none.n, none.n);
            TAP_CHECK(i < 0, "step %d: gradient element %ld differs: %.9g without recomputation, %.9g with", s, i,
                      i < 0 ? 0.0 : none.grads[(size_t)s * none.n + i], i < 0 ? 0.0 : block.grads[(size_t)s * none.n + i]);
        }
        long i = first_diff(none.params, block.params, none.n);
        TAP_CHECK(i < 0, "parameter element %ld differs after %d steps", i, STEPS);
        TAP_CHECK(block.mem.slot_bytes * 2 < none.mem.slot_bytes,
                  "a slot keeps %zu bytes with recomputation, %zu without: want less than half", block.mem.slot_bytes,
                  none.mem.slot_bytes);
    }
    tap_end("recompute = block: gradients, losses, norms and parameters bitwise those of none over %d steps "
            "(%s, tp %lld, pp %lld, ZeRO-%lld, lora rank %lld); kept activations per slot %.2f MiB -> %.2f MiB",
            STEPS, weft_config_str(ctx->config, "model.family"), (long long)weft_config_int(ctx->config, "parallel.tp"),
            (long long)weft_config_int(ctx->config, "parallel.pp"),
            (long long)weft_config_int(ctx->config, "parallel.zero"),
            (long long)weft_config_int(ctx->config, "lora.rank"), none.mem.slot_bytes / 1048576.0,
            block.mem.slot_bytes / 1048576.0);
    free(none.grads), free(none.params), free(block.grads), free(block.params);
    weft_finalize(ctx);
    return tap_total_failed ? 1 : 0;
}
