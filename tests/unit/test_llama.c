/*
 * test_llama.c -- the Llama model as a whole: its parameter table (Hugging
 * Face names, shapes, buffer layout, the count formula, tied and untied
 * heads), initialisation, the shape and layout rules, and the gradient of
 * every parameter element against central finite differences of the loss
 * on tiny models with grouped-query attention, an untied head, T not a
 * power of two, and multi-query attention with a tied head. Also: backward's
 * hook reports a tail that only grows towards offset 0, and backward
 * accumulates. (The logits against an independent numpy reference:
 * tests/model/test_llama_ref.sh; every layout: tests/train/test_llama.sh.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/llama.h"
#include "runtime/error.h"
#include "runtime/rng.h"

enum { V = 13, L = 2, NH = 4, C = 16, F = 24, B = 2, T = 7 };

static weft_llama_config cfg_of(int n_kv_head, int tie)
{
    return (weft_llama_config){.vocab = V, .max_seq = 8, .n_layer = L, .n_head = NH, .n_kv_head = n_kv_head,
                               .n_embd = C, .ffn_dim = F, .rope_theta = 10000, .norm_eps = 1e-5,
                               .tie_embeddings = tie};
}

static weft_llama *tiny(int n_kv_head, int tie)
{
    weft_llama_config cfg = cfg_of(n_kv_head, tie);
    weft_llama *m = NULL;
    assert_int_equal(weft_llama_new(&cfg, B, T, &m), 0);
    weft_llama_init(m, 5);
    return m;
}

static void batch(int32_t *tok, int32_t *tgt)
{
    weft_rng r;
    weft_rng_seed(&r, 99);
    for (int i = 0; i < B * T; i++) {
        tok[i] = (int32_t)(weft_rng_u64(&r) % V);
        tgt[i] = (int32_t)(weft_rng_u64(&r) % V);
    }
    tgt[3] = -1; /* an ignored position */
}

static void test_table(void **state)
{
    (void)state;
    weft_llama *m = tiny(2, 0);
    const weft_model *mm = weft_llama_model(m);
    int hs = C / NH;
    size_t block = 2 * C + (size_t)(NH * hs + 2 * 2 * hs) * C + (size_t)C * NH * hs + 3 * (size_t)F * C;
    size_t want = 2 * (size_t)V * C + L * block + C;
    assert_int_equal(mm->n, want);
    assert_int_equal(mm->global_params, want);
    assert_int_equal(mm->nparams, 1 + 9 * L + 2);
    size_t next = 0;
    for (int i = 0; i < mm->nparams; i++) {
        assert_int_equal(mm->params[i].offset, next); /* contiguous, in table order */
        next += mm->params[i].numel;
    }
    assert_string_equal(mm->params[0].name, "model.embed_tokens.weight");
    const weft_tensor *k = weft_model_param(mm, "model.layers.1.self_attn.k_proj.weight");
    assert_non_null(k);
    assert_int_equal(k->shape[0], 2 * hs);
    assert_int_equal(k->shape[1], C);
    const weft_tensor *o = weft_model_param(mm, "model.layers.0.self_attn.o_proj.weight");
    assert_int_equal(o->shape[0], C);
    assert_int_equal(o->shape[1], NH * hs);
    const weft_tensor *down = weft_model_param(mm, "model.layers.0.mlp.down_proj.weight");
    assert_int_equal(down->shape[0], C);
    assert_int_equal(down->shape[1], F);
    assert_string_equal(mm->params[mm->nparams - 2].name, "model.norm.weight");
    assert_string_equal(mm->params[mm->nparams - 1].name, "lm_head.weight");
    /* Initialisation: norms 1, matrices small, the residual outputs smaller. */
    const float *P = mm->param_data;
    const weft_tensor *norm = weft_model_param(mm, "model.layers.0.input_layernorm.weight");
    assert_true(P[norm->offset] == 1.0f && P[norm->offset + C - 1] == 1.0f);
    double sq_q = 0, sq_o = 0;
    const weft_tensor *q = weft_model_param(mm, "model.layers.0.self_attn.q_proj.weight");
    for (size_t j = 0; j < q->numel; j++)
        sq_q += (double)P[q->offset + j] * P[q->offset + j];
    for (size_t j = 0; j < o->numel; j++)
        sq_o += (double)P[o->offset + j] * P[o->offset + j];
    assert_true(sqrt(sq_q / q->numel) > 0.01 && sqrt(sq_q / q->numel) < 0.03);
    assert_true(sqrt(sq_o / o->numel) < 0.6 * sqrt(sq_q / q->numel)); /* 0.02 / sqrt(2L) */
    weft_llama_free(m);

    /* Tied: no lm_head; one embedding fewer in the count. */
    m = tiny(1, 1);
    mm = weft_llama_model(m);
    assert_null(weft_model_param(mm, "lm_head.weight"));
    assert_string_equal(mm->params[mm->nparams - 1].name, "model.norm.weight");
    assert_int_equal(mm->global_params, mm->n);
    assert_string_equal(mm->ops->family, "llama");
    weft_llama_free(m);
}

static void fails(weft_llama_config c, const char *needle)
{
    weft_llama *m = NULL;
    assert_int_equal(weft_llama_new(&c, B, T, &m), WEFT_ECONFIG);
    if (!strstr(weft_last_error(), needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, weft_last_error());
}

static void test_config_errors(void **state)
{
    (void)state;
    weft_llama_config c = cfg_of(3, 0);
    fails(c, "model.n_kv_head (3) does not divide model.n_head (4)");
    c = cfg_of(2, 0), c.n_embd = 12, c.n_head = 4; /* head size 3 */
    fails(c, "model.n_embd / model.n_head = 3 is odd");
    c = cfg_of(2, 0), c.n_embd = 18;
    fails(c, "model.n_embd (18) is not divisible by model.n_head (4)");
    c = cfg_of(2, 0);
    weft_llama *m = NULL;
    assert_int_equal(weft_llama_new(&c, B, 9, &m), WEFT_ECONFIG);
    assert_non_null(strstr(weft_last_error(), "model.context"));
}

static void test_layout_constraints(void **state)
{
    (void)state;
    weft_llama_config c = cfg_of(2, 0);
    c.vocab = 256, c.ffn_dim = 32;
    assert_int_equal(weft_llama_layout_check(&c, 4, 1), 0); /* NKV 2 < TP 4: replicated */
    assert_int_equal(weft_llama_layout_check(&c, 2, 2), 0);
    c.n_head = 6, c.n_kv_head = 3;
    assert_int_equal(weft_llama_layout_check(&c, 2, 1), WEFT_ECONFIG);
    assert_non_null(strstr(weft_last_error(), "parallel.tp (2) and model.n_kv_head (3)"));
    c.n_head = 4, c.n_kv_head = 2;
    assert_int_equal(weft_llama_layout_check(&c, 8, 1), WEFT_ECONFIG);
    assert_non_null(strstr(weft_last_error(), "parallel.tp (8) does not divide model.n_head (4)"));
    c.ffn_dim = 30;
    assert_int_equal(weft_llama_layout_check(&c, 4, 1), WEFT_ECONFIG);
    assert_non_null(strstr(weft_last_error(), "model.ffn_dim (30)"));
    c.ffn_dim = 32, c.vocab = 250;
    assert_int_equal(weft_llama_layout_check(&c, 4, 1), WEFT_ECONFIG);
    assert_non_null(strstr(weft_last_error(), "vocabulary size (250"));
    c.vocab = 256;
    assert_int_equal(weft_llama_layout_check(&c, 1, 3), WEFT_ECONFIG);
    assert_non_null(strstr(weft_last_error(), "parallel.pp (3) does not divide model.n_layer (2)"));
}

static double loss_at(weft_llama *m, const int32_t *tok, const int32_t *tgt)
{
    double loss;
    assert_int_equal(weft_llama_forward(m, tok, tgt, B, T, &loss), 0);
    return loss;
}

/* Weights of order 1 instead of the initialisation's 0.02: RMSNorm divides
 * by its input's scale, so with 0.02-sized embeddings a finite-difference
 * step of 1e-2 would be half the value and the difference quotient far from
 * the derivative; at scale 1 the same step is small and still far above the
 * f32 rounding noise of the loss (~1e-7). Norm weights 1 +- 0.5, so their
 * gradients are not those of the identity. */
static void order_one(weft_model *mm)
{
    weft_rng r;
    weft_rng_seed(&r, 7);
    for (int i = 0; i < mm->nparams; i++) {
        const weft_tensor *p = &mm->params[i];
        for (size_t e = 0; e < p->numel; e++)
            mm->param_data[p->offset + e] = (float)(p->ndim == 2 ? 0.5 * weft_rng_normal(&r)
                                                                  : 1 + 0.5 * weft_rng_normal(&r));
    }
}

/* Every element of every tensor against a fourth-order central difference
 * of the loss. The step, 5e-3, balances the two errors: the f32 loss
 * carries rounding noise of ~1e-6, which the quotient divides by the step
 * (halving it fails here), and the model's curvature grows the truncation
 * error with the step's fourth power (1e-2 fails on embedding rows of small
 * norm, where RMSNorm's 1/rms is steep). Tolerances 3e-4 absolute, 2%
 * relative; the ignored-target scaling bug this test found was 7%. */
#define TOL_ABS 3e-4
#define TOL_REL 2e-2
static void check_gradients(int n_kv_head, int tie)
{
    weft_llama *m = tiny(n_kv_head, tie);
    weft_model *mm = weft_llama_model(m);
    order_one(mm);
    int32_t tok[B * T], tgt[B * T];
    batch(tok, tgt);
    loss_at(m, tok, tgt);
    weft_model_zero_grad(mm);
    assert_int_equal(weft_llama_backward(m, 1.0, NULL, NULL), 0);
    float *P = mm->param_data;
    const float *G = mm->grad_data;
    const double eps = 2.5e-3;
    size_t checked = 0, nonzero = 0, bad = 0;
    for (int i = 0; i < mm->nparams; i++) {
        const weft_tensor *p = &mm->params[i];
        for (size_t e = 0; e < p->numel; e++) {
            size_t j = p->offset + e;
            float keep = P[j];
            double f[4];
            const double at[4] = {-2, -1, 1, 2};
            for (int k = 0; k < 4; k++) {
                P[j] = (float)(keep + at[k] * eps);
                f[k] = loss_at(m, tok, tgt);
            }
            P[j] = keep;
            /* Fourth-order central difference: truncation error O(eps^4). */
            double fd = (8 * (f[2] - f[1]) - (f[3] - f[0])) / (12 * eps), g = G[j];
            if (fabs(fd - g) > TOL_ABS + TOL_REL * fabs(fd)) {
                print_message("NKV %d tie %d: %s[%zu]: backward %.6g, finite difference %.6g\n", n_kv_head, tie,
                              p->name, e, g, fd);
                bad++;
            }
            checked++;
            nonzero += fabs(g) > 1e-6;
        }
    }
    assert_int_equal(bad, 0);
    assert_int_equal(checked, mm->n);
    assert_true(nonzero > mm->n / 2); /* the check compared real gradients, not zeros */
    weft_llama_free(m);
}

static void test_gradients_gqa_untied(void **state) { (void)state; check_gradients(2, 0); }
static void test_gradients_mqa_tied(void **state) { (void)state; check_gradients(1, 1); }
static void test_gradients_mha(void **state) { (void)state; check_gradients(NH, 0); }

static size_t last_offset;
static int hook_calls, hook_monotone = 1;
static void hook(void *arg, size_t offset)
{
    (void)arg;
    if (hook_calls++ && offset > last_offset)
        hook_monotone = 0;
    last_offset = offset;
}

static void test_hook_and_accumulation(void **state)
{
    (void)state;
    weft_llama *m = tiny(2, 0);
    weft_model *mm = weft_llama_model(m);
    int32_t tok[B * T], tgt[B * T];
    batch(tok, tgt);
    loss_at(m, tok, tgt);
    weft_model_zero_grad(mm);
    assert_int_equal(weft_llama_backward(m, 1.0, hook, NULL), 0);
    assert_true(hook_monotone);
    assert_int_equal(last_offset, 0);
    assert_int_equal(hook_calls, L + 2); /* head, each block, the embedding */
    float *once = malloc(mm->n * sizeof(float));
    assert_non_null(once);
    memcpy(once, mm->grad_data, mm->n * sizeof(float));
    loss_at(m, tok, tgt);
    assert_int_equal(weft_llama_backward(m, 1.0, NULL, NULL), 0);
    for (size_t j = 0; j < mm->n; j++)
        assert_true(fabsf(mm->grad_data[j] - 2 * once[j]) <= 1e-6f + 1e-5f * fabsf(once[j]));
    free(once);
    weft_llama_free(m);
}

/* Logits only (sampling): the same as the training forward's, and a
 * shorter sequence gives the prefix's logits (causal, positions from 0). */
static void test_logits(void **state)
{
    (void)state;
    weft_llama *m = tiny(2, 1);
    weft_model *mm = weft_llama_model(m);
    int32_t tok[B * T], tgt[B * T];
    batch(tok, tgt);
    double loss;
    assert_int_equal(weft_llama_forward(m, tok, NULL, 1, T, &loss), 0);
    float full[T * V];
    memcpy(full, weft_llama_logits(m), sizeof full);
    const float *part;
    assert_int_equal(mm->ops->logits(mm, tok, 1, 4, &part), 0);
    for (int i = 0; i < 4 * V; i++)
        assert_true(fabsf(part[i] - full[i]) <= 1e-5f * (1 + fabsf(full[i])));
    weft_llama_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_layout_constraints),
        cmocka_unit_test(test_gradients_gqa_untied),
        cmocka_unit_test(test_gradients_mqa_tied),
        cmocka_unit_test(test_gradients_mha),
        cmocka_unit_test(test_hook_and_accumulation),
        cmocka_unit_test(test_logits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
