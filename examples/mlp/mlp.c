/*
 * mlp.c -- training a model of your own with weft: a two-layer MLP learning
 * a synthetic regression task, data-parallel over the ranks it runs on.
 *
 *   mpirun -np 2 build/examples/mlp [--train.steps=N] [--train.seed=S]
 *
 * What a researcher writes when the model is not GPT: keep parameters and
 * gradients in one flat buffer each; call weft's kernels (or your own
 * loops) for forward and backward; hand the gradient buffer to weft_dp,
 * which averages it across ranks in buckets; let weft_optim apply AdamW to
 * this rank's shard. The target is y = sin(3 x0) + x1 * x2, so the answer is
 * known and the loss must fall well below the best linear fit's 0.276.
 */
#include "kernels/kernels.h"
#include "model/optim.h"
#include "parallel/dp.h"
#include "runtime/rng.h"
#include "weft.h"

#include <math.h>
#include <stdlib.h>

enum { IN = 3, HID = 64, B = 64 }; /* inputs, hidden units, samples per rank per step */

static const weft_config_key mlp_keys[] = {
    {"train.steps", WEFT_CFG_INT, "400", 1, 1e9, NULL, "optimizer steps"},
    {"train.seed", WEFT_CFG_INT, "7", 0, 1e18, NULL, "seed of initialisation and data"},
    WEFT_CONFIG_END,
};

/* Parameters, in one flat buffer: w1 (HID, IN), b1 (HID), w2 (1, HID), b2 (1). */
static const weft_optim_segment segs[] = {
    {0, HID * IN, 1}, {HID * IN, HID, 0}, {HID * IN + HID, HID, 1}, {HID * IN + 2 * HID, 1, 0}};
#define NPARAMS (HID * IN + 2 * HID + 1)

/* A batch of this rank's samples: different on every rank and every step. */
static void make_batch(weft_rng *rng, float *x, float *y)
{
    for (int i = 0; i < B; i++) {
        for (int j = 0; j < IN; j++)
            x[i * IN + j] = (float)(2 * weft_rng_uniform(rng) - 1);
        y[i] = sinf(3 * x[i * IN]) + x[i * IN + 1] * x[i * IN + 2];
    }
}

/* Forward and backward of the MSE loss; returns the loss. */
static double step_grads(const float *p, float *g, const float *x, const float *y, float *h, float *a, float *out)
{
    const float *w1 = p, *b1 = p + HID * IN, *w2 = b1 + HID, *b2 = w2 + HID;
    float *gw1 = g, *gb1 = g + HID * IN, *gw2 = gb1 + HID, *gb2 = gw2 + HID;
    weft_matmul_forward(h, x, w1, b1, B, IN, HID);            /* h (B, HID) */
    for (int i = 0; i < B * HID; i++)
        a[i] = tanhf(h[i]);                                   /* a = tanh(h) */
    weft_matmul_forward(out, a, w2, b2, B, HID, 1);           /* out (B, 1) */
    double loss = 0;
    for (int i = 0; i < B; i++) {
        float d = out[i] - y[i];
        loss += (double)d * d / B;
        out[i] = 2 * d / B;                                   /* out becomes dloss/dout */
    }
    for (int i = 0; i < B * HID; i++)
        h[i] = 0;                                             /* h becomes dloss/da */
    weft_matmul_backward(h, gw2, gb2, out, a, w2, B, HID, 1);
    for (int i = 0; i < B * HID; i++)
        h[i] *= 1 - a[i] * a[i];                              /* through tanh */
    weft_matmul_backward(NULL, gw1, gb1, h, x, w1, B, IN, HID);
    return loss;
}

int main(int argc, char **argv)
{
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {weft_comm_config_keys, mlp_keys, NULL};
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    weft_kernels_init(1);
    int64_t steps = weft_config_int(ctx->config, "train.steps");
    weft_comm_opts co;
    weft_comm_opts_from_config(ctx->config, &co);
    weft_comm *world;
    weft_dp *dp;
    weft_optim *opt;
    static float p[NPARAMS], g[NPARAMS], x[B * IN], y[B], h[B * HID], a[B * HID], out[B];
    weft_dp_opts dpo = {.bucket_bytes = 1024, .zero = 0};
    weft_adamw_opts ao = {.lr = 1e-2, .min_lr = 1e-3, .warmup = 20, .total_steps = steps, .beta1 = 0.9,
                          .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0, .grad_clip = 0};
    rc = weft_comm_world(ctx, &co, &world);
    rc = rc ? rc : weft_dp_new(world, p, g, NPARAMS, &dpo, &dp);
    rc = rc ? rc : weft_optim_new(segs, 4, dp, &ao, &opt);
    if (rc) {
        WEFT_ERROR("%s", weft_last_error());
        return weft_exit_code(rc);
    }

    weft_rng init, data;                              /* same init everywhere, data per rank */
    weft_rng_seed(&init, (uint64_t)weft_config_int(ctx->config, "train.seed"));
    weft_rng_seed(&data, 1000003u * (uint64_t)(ctx->rank + 1));
    for (int i = 0; i < NPARAMS; i++)
        p[i] = (float)(weft_rng_normal(&init) * (i < HID * IN ? 1.0 : 0.2));

    double loss = 0;
    for (int64_t s = 0; s < steps && rc == 0; s++) {
        make_batch(&data, x, y);
        for (int i = 0; i < NPARAMS; i++)
            g[i] = 0;
        weft_dp_begin(dp);
        double local = step_grads(p, g, x, y, h, a, out);
        rc = weft_dp_finish_grads(dp);                          /* average across ranks */
        rc = rc ? rc : weft_comm_allreduce(world, &local, &loss, 1, WEFT_F64, WEFT_AVG);
        if (rc == 0)
            weft_optim_step(opt, p, g, weft_optim_lr(opt, s), 1.0);
        if (ctx->rank == 0 && (s % 50 == 0 || s == steps - 1))
            printf("step %4lld  loss %.5f\n", (long long)s, loss);
    }
    if (rc)
        WEFT_ERROR("%s", weft_last_error());
    else if (ctx->rank == 0)
        printf("final loss %.5f on %d ranks (the best linear fit: 0.276)\n", loss, ctx->size);
    weft_optim_free(opt);
    weft_dp_free(dp);
    weft_comm_free(world);
    weft_finalize(ctx);
    return rc ? weft_exit_code(rc) : 0;
}
