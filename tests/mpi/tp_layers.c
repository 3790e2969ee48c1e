/*
 * tp_layers.c -- tensor-parallel GPT layers against the whole model, on a
 * world of 1-4 ranks forming one tensor-parallel group. Every rank builds
 * the whole model and its tensor-parallel part from the same seed; then:
 *   - each parameter of the part equals its piece of the whole model's, the
 *     piece located by the parameter's shard spec (so init and the specs
 *     agree with the single-rank layout);
 *   - forward: the vocabulary-parallel loss equals the whole model's;
 *   - backward: every gradient piece equals the whole model's gradient
 *     there (column/row-parallel linears, the vocabulary-parallel embedding
 *     and LM head, and the replicated LayerNorms and biases);
 *   - the logits of the part are the whole logits' columns of its
 *     vocabulary rows (never gathered).
 * Prints TAP from rank 0.
 */
#include "model/gpt.h"
#include "runtime/rng.h"
#include "runtime/shard.h"
#include "weft.h"
#include "tests/mpi/mpitap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { V = 64, MAXT = 8, L = 2, NH = 4, C = 16, B = 2, T = 8 };

/* Worst |local - piece of global| / max |global| over a tensor. */
static double piece_error(const weft_shard_spec *s, const float *global, const float *local)
{
    int64_t ls[2];
    weft_shard_local_shape(s, ls);
    int64_t gcols = s->ndim == 2 ? s->global_shape[1] : 1, lcols = s->ndim == 2 ? ls[1] : 1;
    size_t gn = (size_t)s->global_shape[0] * (size_t)gcols;
    double scale = 1e-30, worst = 0;
    for (size_t i = 0; i < gn; i++)
        scale = fmax(scale, fabs(global[i]));
    for (int k = 0; k < weft_shard_nslabs(s); k++) {
        int64_t st[2], ct[2], l0;
        weft_shard_slab(s, k, st, ct, &l0);
        for (int64_t r = 0; r < ct[0]; r++)
            for (int64_t c = 0; c < ct[1]; c++) {
                int64_t lr = s->split_dim == 0 ? l0 + r : r, lc = s->split_dim == 1 ? l0 + c : c;
                double d = fabs(local[lr * lcols + lc] - global[(st[0] + r) * gcols + st[1] + c]);
                worst = fmax(worst, d / scale);
            }
    }
    return worst;
}

static const weft_tensor *find(const weft_gpt *m, const char *name)
{
    for (int i = 0; i < weft_gpt_nparams(m); i++)
        if (strcmp(weft_gpt_param_at(m, i)->name, name) == 0)
            return weft_gpt_param_at(m, i);
    return NULL;
}

/* Every tensor of part against whole (params or grads). */
static void compare(weft_gpt *whole, weft_gpt *part, int grads, double tol, const char *what)
{
    float *W = grads ? weft_gpt_grads(whole) : weft_gpt_params(whole);
    float *P = grads ? weft_gpt_grads(part) : weft_gpt_params(part);
    TAP_CHECK(weft_gpt_nparams(part) == weft_gpt_nparams(whole), "%s: %d tensors, want %d", what,
              weft_gpt_nparams(part), weft_gpt_nparams(whole));
    for (int i = 0; i < weft_gpt_nparams(part); i++) {
        const weft_tensor *p = weft_gpt_param_at(part, i), *g = find(whole, p->name);
        TAP_CHECK(g != NULL, "%s: unknown tensor %s", what, p->name);
        if (!g)
            continue;
        double e = piece_error(&p->shard, W + g->offset, P + p->offset);
        TAP_CHECK(e <= tol, "%s %s: relative error %.3g > %.1g", what, p->name, e, tol);
    }
}

static void run(weft_comm *world)
{
    int n = weft_comm_size(world), me = weft_comm_rank(world);
    weft_gpt_config cfg = {.vocab = V, .max_seq = MAXT, .n_layer = L, .n_head = NH, .n_embd = C};
    weft_gpt_part part = {.tp_rank = me, .tp_size = n, .pp_rank = 0, .pp_size = 1, .nslots = 1, .tp = world};
    weft_gpt *whole = NULL, *mp = NULL;
    tap_begin();
    int rc = weft_gpt_new(&cfg, B, T, &whole);
    rc = rc ? rc : weft_gpt_new_part(&cfg, &part, B, T, &mp);
    TAP_CHECK(rc == 0, "models: %s", weft_last_error());
    if (rc == 0) {
        weft_gpt_init(whole, 7);
        weft_gpt_init(mp, 7);
        compare(whole, mp, 0, 0.0, "init");
        int32_t tok[B * T], tgt[B * T];
        weft_rng r;
        weft_rng_seed(&r, 3);
        for (int i = 0; i < B * T; i++) {
            tok[i] = (int32_t)(weft_rng_u64(&r) % V);
            tgt[i] = i == 5 ? -1 : (int32_t)(weft_rng_u64(&r) % V); /* one ignored position */
        }
        double lw = 0, lp = 0;
        rc = weft_gpt_forward(whole, tok, tgt, B, T, &lw);
        if (rc == 0)
            rc = weft_gpt_forward_slot(mp, 0, tok, tgt, B, T, &lp);
        TAP_CHECK(rc == 0 && fabs(lw - lp) <= 1e-6 * fabs(lw), "loss %.9g, whole model %.9g", lp, lw);
        const float *zw = weft_gpt_logits(whole), *zp = weft_gpt_logits(mp);
        double worst = 0;
        for (int i = 0; i < B * T; i++)
            for (int v = 0; v < V / n; v++)
                worst = fmax(worst, fabs(zp[i * (V / n) + v] - zw[i * V + me * (V / n) + v]));
        TAP_CHECK(worst <= 1e-6, "logit columns differ by %.3g", worst);
        weft_gpt_zero_grad(whole);
        weft_gpt_zero_grad(mp);
        rc = weft_gpt_backward(whole, 1.0, NULL, NULL);
        if (rc == 0)
            rc = weft_gpt_backward_slot(mp, 0, 1.0, NULL, NULL);
        TAP_CHECK(rc == 0, "backward: %s", weft_last_error());
        compare(whole, mp, 1, 1e-5, "gradient");
    }
    weft_gpt_free(mp);
    weft_gpt_free(whole);
    tap_end("tensor parallel over %d rank%s: init pieces, loss, logits and every gradient == whole model", n,
            n == 1 ? "" : "s");
}

int main(int argc, char **argv)
{
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {weft_comm_config_keys, NULL};
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    tap_rank = ctx->rank;
    weft_comm *world;
    if (weft_comm_world(ctx, NULL, &world) != 0) {
        printf("not ok 1 - create world communicator: %s\n", weft_last_error());
        return 1;
    }
    run(world);
    weft_comm_free(world);
    weft_finalize(ctx);
    return tap_total_failed ? 1 : 0;
}
