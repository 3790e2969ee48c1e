/*
 * test_lora.c -- low-rank adapters (model/lora.h) on both families: the
 * tables (the base frozen, the parameters and gradients the adapters
 * alone), the step-0 model equal to the base model (the same base values
 * from the same seed, bitwise the same logits and loss), the gradient of
 * every adapter element against a fourth-order central difference of the
 * loss with every target on, with and without dropout (drawn again by
 * backward from the step's key), and the refusals (unknown target, rank too
 * large, dropout of 1, k/v adapters on replicated k/v heads).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/gpt.h"
#include "model/llama.h"
#include "runtime/error.h"
#include "runtime/rng.h"

enum { V = 13, L = 2, NH = 4, C = 16, F = 24, B = 2, T = 7, R = 3 };

static weft_lora_config lora(int rank, const char *targets)
{
    weft_lora_config c = {.rank = rank, .alpha = 2.0 * rank};
    snprintf(c.targets, sizeof c.targets, "%s", targets);
    return c;
}

static weft_gpt_config gpt_cfg(weft_lora_config lc)
{
    return (weft_gpt_config){.vocab = V, .max_seq = 8, .n_layer = L, .n_head = NH, .n_embd = C, .lora = lc};
}

static weft_llama_config llama_cfg(weft_lora_config lc)
{
    return (weft_llama_config){.vocab = V, .max_seq = 8, .n_layer = L, .n_head = NH, .n_kv_head = 2, .n_embd = C,
                               .ffn_dim = F, .rope_theta = 10000, .norm_eps = 1e-5, .lora = lc};
}

/* A family behind one interface, for the tests that run on both. */
typedef struct {
    void *m;
    weft_model *mm;
    int llama;
} net;

static net make(int llama, weft_lora_config lc)
{
    net n = {.llama = llama};
    if (llama) {
        weft_llama_config c = llama_cfg(lc);
        weft_llama *m = NULL;
        assert_int_equal(weft_llama_new(&c, B, T, &m), 0);
        weft_llama_init(m, 5);
        n.m = m, n.mm = weft_llama_model(m);
    } else {
        weft_gpt_config c = gpt_cfg(lc);
        weft_gpt *m = NULL;
        assert_int_equal(weft_gpt_new(&c, B, T, &m), 0);
        weft_gpt_init(m, 5);
        n.m = m, n.mm = weft_gpt_model(m);
    }
    return n;
}

static void destroy(net *n) { weft_model_free(n->mm); }

static void batch(int32_t *tok, int32_t *tgt)
{
    weft_rng r;
    weft_rng_seed(&r, 99);
    for (int i = 0; i < B * T; i++) {
        tok[i] = (int32_t)(weft_rng_u64(&r) % V);
        tgt[i] = (int32_t)(weft_rng_u64(&r) % V);
    }
    tgt[3] = -1;
}

static double loss_of(net *n, const int32_t *tok, const int32_t *tgt)
{
    double loss;
    if (n->llama)
        assert_int_equal(weft_llama_forward(n->m, tok, tgt, B, T, &loss), 0);
    else
        assert_int_equal(weft_gpt_forward(n->m, tok, tgt, B, T, &loss), 0);
    return loss;
}

static void backward(net *n)
{
    if (n->llama)
        assert_int_equal(weft_llama_backward(n->m, 1.0, NULL, NULL), 0);
    else
        assert_int_equal(weft_gpt_backward(n->m, 1.0, NULL, NULL), 0);
}

static const float *logits(net *n)
{
    return n->llama ? weft_llama_logits(n->m) : weft_gpt_logits(n->m);
}

/* The tables: base tensors frozen (not trainable), the parameters exactly
 * the adapters, in block order, A before B, shapes (r, in) and (out, r). */
static void check_tables(int llama)
{
    net off = make(llama, lora(0, "")), on = make(llama, lora(R, llama ? "q,k,v,o,gate,up,down" : "qkv,proj,fc,fcproj"));
    const weft_model *a = off.mm, *b = on.mm;
    assert_int_equal(b->nfrozen, a->nparams);
    assert_int_equal(b->frozen_n, a->n);
    int targets = llama ? 7 : 4;
    assert_int_equal(b->nparams, 2 * targets * L);
    size_t want = 0;
    for (int i = 0; i < b->nparams; i++) {
        const weft_tensor *p = &b->params[i];
        assert_non_null(strstr(p->name, i % 2 ? ".lora_B.weight" : ".lora_A.weight"));
        assert_true(p->flags & WEFT_TENSOR_TRAINABLE);
        assert_int_equal(p->offset, want);
        want += p->numel;
        assert_int_equal(p->shape[i % 2 ? 1 : 0], R);
    }
    assert_int_equal(b->n, want); /* gradients exist for the adapters only */
    assert_int_equal(b->global_trainable, want);
    assert_int_equal(b->global_params, a->global_params);
    for (int i = 0; i < b->nfrozen; i++)
        assert_false(b->frozen[i].flags & WEFT_TENSOR_TRAINABLE);
    const char *q = llama ? "model.layers.1.self_attn.q_proj.lora_A.weight" : "h.1.attn.c_attn.lora_A.weight";
    const weft_tensor *A = weft_model_param(b, q);
    assert_non_null(A);
    assert_int_equal(A->shape[1], C);
    const char *d = llama ? "model.layers.0.mlp.down_proj.lora_B.weight" : "h.0.mlp.c_proj.lora_B.weight";
    const weft_tensor *Bt = weft_model_param(b, d);
    assert_non_null(Bt);
    assert_int_equal(Bt->shape[0], C);
    /* Initial values: B zero, A within +-1/sqrt(in), not all zero. */
    double amax = 0;
    for (size_t j = 0; j < A->numel; j++)
        amax = fmax(amax, fabs(b->param_data[A->offset + j]));
    assert_true(amax > 0 && amax <= 1 / sqrt((double)C) + 1e-7);
    for (size_t j = 0; j < Bt->numel; j++)
        assert_true(b->param_data[Bt->offset + j] == 0.0f);
    destroy(&off);
    destroy(&on);
}

static void test_tables_gpt(void **state) { (void)state; check_tables(0); }
static void test_tables_llama(void **state) { (void)state; check_tables(1); }

/* Step 0 is the base model: the frozen values equal the LoRA-off model's
 * parameters from the same seed, and logits and loss are bitwise equal. */
static void check_step0(int llama)
{
    net off = make(llama, lora(0, "")), on = make(llama, lora(R, llama ? "q,k,v,o,gate,up,down" : "qkv,proj,fc,fcproj"));
    assert_memory_equal(on.mm->frozen_data, off.mm->param_data, off.mm->n * sizeof(float));
    int32_t tok[B * T], tgt[B * T];
    batch(tok, tgt);
    double la = loss_of(&off, tok, tgt), lb = loss_of(&on, tok, tgt);
    assert_true(la == lb);
    assert_memory_equal(logits(&off), logits(&on), (size_t)B * T * V * sizeof(float));
    /* Backward leaves the frozen weights alone and reaches the adapters. */
    weft_model_zero_grad(on.mm);
    backward(&on);
    double sq = 0;
    for (size_t j = 0; j < on.mm->n; j++)
        sq += (double)on.mm->grad_data[j] * on.mm->grad_data[j];
    assert_true(sq > 0);
    assert_memory_equal(on.mm->frozen_data, off.mm->param_data, off.mm->n * sizeof(float));
    destroy(&off);
    destroy(&on);
}

static void test_step0_gpt(void **state) { (void)state; check_step0(0); }
static void test_step0_llama(void **state) { (void)state; check_step0(1); }

/* Order-one values (see test_llama.c) for the frozen weights, and 0.3 for
 * the adapters -- B too, or A's gradient would be zero. At 0.5 the update
 * s B A (s = 2, r = 3) outweighs the base and the loss curves so fast that
 * the difference quotient misses Llama's largest gradients by up to 40% at
 * this step (halving the step moves it to within 5% of backward's: the
 * quotient, not backward, is off). */
static void order_one(weft_model *mm)
{
    weft_rng r;
    weft_rng_seed(&r, 7);
    for (int i = 0; i < mm->nfrozen; i++) {
        const weft_tensor *p = &mm->frozen[i];
        for (size_t e = 0; e < p->numel; e++)
            mm->frozen_data[p->offset + e] = (float)(p->ndim == 2 ? 0.5 * weft_rng_normal(&r)
                                                                   : 1 + 0.5 * weft_rng_normal(&r));
    }
    for (size_t j = 0; j < mm->n; j++)
        mm->param_data[j] = (float)(0.3 * weft_rng_normal(&r));
}

/* Every adapter element against a fourth-order central difference, as
 * test_llama.c checks every parameter (its step and tolerances). */
static void check_gradients(int llama, const char *targets)
{
    net n = make(llama, lora(R, targets));
    weft_model *mm = n.mm;
    order_one(mm);
    int32_t tok[B * T], tgt[B * T];
    batch(tok, tgt);
    loss_of(&n, tok, tgt);
    weft_model_zero_grad(mm);
    backward(&n);
    float *P = mm->param_data;
    const float *G = mm->grad_data;
    const double eps = 5e-3; /* 2.5e-3: the f32 noise fails a q,v element of gradient 7e-4 */
    size_t bad = 0, nonzero = 0;
    for (size_t j = 0; j < mm->n; j++) {
        float keep = P[j];
        double f[4];
        const double at[4] = {-2, -1, 1, 2};
        for (int k = 0; k < 4; k++) {
            P[j] = (float)(keep + at[k] * eps);
            f[k] = loss_of(&n, tok, tgt);
        }
        P[j] = keep;
        double fd = (8 * (f[2] - f[1]) - (f[3] - f[0])) / (12 * eps), g = G[j];
        if (fabs(fd - g) > 3e-4 + 2e-2 * fabs(fd)) {
            if (bad < 10)
                print_message("%s %s: element %zu: backward %.6g, finite difference %.6g\n",
                              llama ? "llama" : "gpt2", targets, j, g, fd);
            bad++;
        }
        nonzero += fabs(g) > 1e-6;
    }
    assert_int_equal(bad, 0);
    assert_true(nonzero > mm->n / 2);
    destroy(&n);
}

static void test_gradients_gpt(void **state) { (void)state; check_gradients(0, "qkv,proj,fc,fcproj"); }
static void test_gradients_llama(void **state) { (void)state; check_gradients(1, "q,k,v,o,gate,up,down"); }
static void test_gradients_defaults(void **state)
{
    (void)state;
    check_gradients(0, "");
    check_gradients(1, "");
}

/* Dropout: a training step's forward (the model interface, training = 1)
 * draws masks from (seed, step, micro-batch). The same step draws the same
 * masks (the loss repeats bitwise; a resume relies on it), another step
 * others, evaluation none; and backward, which draws them again, is the
 * gradient of that masked loss: every adapter element against the
 * fourth-order difference, as above. */
static double iface_loss(weft_model *mm, const int32_t *win, int training, int64_t step)
{
    double loss;
    mm->training = training;
    mm->step = step;
    assert_int_equal(mm->ops->forward(mm, 0, win, 0, &loss), 0);
    return loss;
}

static void check_dropout(int llama)
{
    weft_lora_config lc = lora(R, llama ? "q,k,v,o,gate,up,down" : "qkv,proj,fc,fcproj");
    lc.dropout = 0.3;
    lc.seed = 11;
    net n = make(llama, lc);
    weft_model *mm = n.mm;
    order_one(mm);
    int32_t win[B * (T + 1)];
    weft_rng r;
    weft_rng_seed(&r, 5);
    for (int i = 0; i < B * (T + 1); i++)
        win[i] = (int32_t)(weft_rng_u64(&r) % V);
    double a = iface_loss(mm, win, 1, 3), b = iface_loss(mm, win, 1, 3), c = iface_loss(mm, win, 1, 4);
    double e = iface_loss(mm, win, 0, 3);
    assert_true(a == b);                  /* the same step: the same masks */
    assert_true(a != c && a != e && c != e); /* another step, and evaluation (no masks) */
    iface_loss(mm, win, 1, 3);
    weft_model_zero_grad(mm);
    assert_int_equal(mm->ops->backward(mm, 0, 1.0, NULL, NULL), 0);
    float *P = mm->param_data;
    const float *G = mm->grad_data;
    const double eps = 5e-3;
    size_t bad = 0, nonzero = 0;
    for (size_t j = 0; j < mm->n; j++) {
        float keep = P[j];
        double f[4];
        const double at[4] = {-2, -1, 1, 2};
        for (int k = 0; k < 4; k++) {
            P[j] = (float)(keep + at[k] * eps);
            f[k] = iface_loss(mm, win, 1, 3);
        }
        P[j] = keep;
        double fd = (8 * (f[2] - f[1]) - (f[3] - f[0])) / (12 * eps), g = G[j];
        if (fabs(fd - g) > 3e-4 + 2e-2 * fabs(fd)) {
            if (bad < 10)
                print_message("%s dropout: element %zu: backward %.6g, finite difference %.6g\n",
                              llama ? "llama" : "gpt2", j, g, fd);
            bad++;
        }
        nonzero += fabs(g) > 1e-6;
    }
    assert_int_equal(bad, 0);
    assert_true(nonzero > mm->n / 2);
    destroy(&n);
}

static void test_dropout_gpt(void **state) { (void)state; check_dropout(0); }
static void test_dropout_llama(void **state) { (void)state; check_dropout(1); }

static void refused_gpt(weft_lora_config lc, const char *needle)
{
    weft_gpt_config c = gpt_cfg(lc);
    weft_gpt *m = NULL;
    assert_int_equal(weft_gpt_new(&c, B, T, &m), WEFT_ECONFIG);
    if (!strstr(weft_last_error(), needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, weft_last_error());
}

static void test_refusals(void **state)
{
    (void)state;
    refused_gpt(lora(2, "qkv,attn"), "unknown target 'attn'");
    refused_gpt(lora(C + 1, ""), "lora.rank (17)");
    weft_lora_config lc = lora(2, "");
    lc.dropout = 1;
    refused_gpt(lc, "lora.dropout (1) must be in [0, 1)");
    weft_llama_config c = llama_cfg(lora(2, "q,gate,w1"));
    assert_int_equal(weft_llama_config_check(&c), WEFT_ECONFIG);
    assert_non_null(strstr(weft_last_error(), "unknown target 'w1'"));
    c = llama_cfg(lora(9, "k"));
    assert_int_equal(weft_llama_config_check(&c), WEFT_ECONFIG); /* k_proj is (8, 16) */
    assert_non_null(strstr(weft_last_error(), "target k's smaller side (8"));
    c = llama_cfg(lora(2, "q,v"));
    c.vocab = 16;
    assert_int_equal(weft_llama_layout_check(&c, 4, 1), WEFT_ECONFIG); /* 2 k/v heads over 4 ranks */
    assert_non_null(strstr(weft_last_error(), "lora.targets has k or v"));
    c = llama_cfg(lora(2, "q,o"));
    c.vocab = 16;
    assert_int_equal(weft_llama_layout_check(&c, 4, 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_gpt),     cmocka_unit_test(test_tables_llama),
        cmocka_unit_test(test_step0_gpt),      cmocka_unit_test(test_step0_llama),
        cmocka_unit_test(test_gradients_gpt),  cmocka_unit_test(test_gradients_llama),
        cmocka_unit_test(test_gradients_defaults),
        cmocka_unit_test(test_dropout_gpt),    cmocka_unit_test(test_dropout_llama),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
