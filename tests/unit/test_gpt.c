/*
 * test_gpt.c -- the GPT-2 model as a whole: parameter table (names, shapes,
 * layout, count formula), initialisation, and every parameter tensor's
 * gradient against central finite differences of the loss, on a tiny model
 * (so a wiring mistake in gpt.c -- a gradient sent to the wrong buffer, a
 * missing accumulation, the tied embedding -- cannot hide behind kernels
 * that are each correct). Also: backward's hook reports a final tail that
 * only grows towards offset 0, and backward accumulates; the activations
 * are one arena on the model's device that the planner's numbers size
 * exactly (but for the carvings' alignment), for every part shape.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/gpt.h"
#include "model/model.h"
#include "runtime/device.h"
#include "runtime/error.h"
#include "runtime/rng.h"

enum { V = 11, MAXT = 8, L = 2, NH = 2, C = 8, B = 2, T = 5 };

static weft_gpt *tiny(void)
{
    weft_gpt_config cfg = {.vocab = V, .max_seq = MAXT, .n_layer = L, .n_head = NH, .n_embd = C};
    weft_gpt *m = NULL;
    assert_int_equal(weft_gpt_new(&cfg, B, T, &m), 0);
    weft_gpt_init(m, 5);
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
}

static void test_table(void **state)
{
    (void)state;
    weft_gpt *m = tiny();
    size_t want = (size_t)V * C + (size_t)MAXT * C + (size_t)L * (12 * C * C + 13 * C) + 2 * C;
    assert_int_equal(weft_gpt_num_params(m), want);
    assert_int_equal(weft_gpt_nparams(m), 2 + 12 * L + 2);
    size_t next = 0;
    for (int i = 0; i < weft_gpt_nparams(m); i++) {
        const weft_tensor *p = weft_gpt_param_at(m, i);
        assert_int_equal(p->offset, next); /* contiguous, in table order */
        next += p->numel;
    }
    const weft_tensor *qkv = weft_gpt_param_at(m, 2 + 2);
    assert_string_equal(qkv->name, "h.0.attn.c_attn.weight");
    assert_int_equal(qkv->shape[0], 3 * C);
    assert_int_equal(qkv->shape[1], C);
    assert_string_equal(weft_gpt_param_at(m, weft_gpt_nparams(m) - 1)->name, "ln_f.bias");
    /* Initialisation: LayerNorm weight 1, biases 0, projections scaled. */
    const float *P = weft_gpt_params(m);
    assert_true(P[weft_gpt_param_at(m, 2)->offset] == 1.0f);      /* h.0.ln_1.weight */
    assert_true(P[weft_gpt_param_at(m, 3)->offset] == 0.0f);      /* h.0.ln_1.bias */
    weft_gpt_free(m);
}

static void test_config_errors(void **state)
{
    (void)state;
    weft_gpt_config bad = {.vocab = V, .max_seq = MAXT, .n_layer = L, .n_head = 3, .n_embd = C};
    weft_gpt *m = NULL;
    assert_int_equal(weft_gpt_new(&bad, B, T, &m), WEFT_ECONFIG);
    assert_non_null(strstr(weft_last_error(), "model.n_embd (8) is not divisible by model.n_head (3)"));
    bad.n_head = NH;
    assert_int_equal(weft_gpt_new(&bad, B, MAXT + 1, &m), WEFT_ECONFIG);
    assert_non_null(strstr(weft_last_error(), "model.context"));
}

/* The shape against tensor- and pipeline-parallel sizes (exit 64 material). */
static void test_layout_constraints(void **state)
{
    (void)state;
    weft_gpt_config c = {.vocab = 256, .max_seq = 8, .n_layer = 4, .n_head = 4, .n_embd = 32};
    assert_int_equal(weft_gpt_layout_check(&c, 4, 1), 0);
    c.n_head = 2;
    assert_int_equal(weft_gpt_layout_check(&c, 4, 1), WEFT_ECONFIG);
    assert_non_null(strstr(weft_last_error(), "parallel.tp (4) does not divide model.n_head (2)"));
    c.n_head = 4, c.vocab = 250;
    assert_int_equal(weft_gpt_layout_check(&c, 4, 1), WEFT_ECONFIG);
    assert_non_null(strstr(weft_last_error(), "parallel.tp (4) does not divide the vocabulary size (250"));
    c.vocab = 256;
    assert_int_equal(weft_gpt_layout_check(&c, 1, 3), WEFT_ECONFIG);
    assert_non_null(strstr(weft_last_error(), "parallel.pp (3) does not divide model.n_layer (4)"));
    c.vocab = 255, c.n_layer = 6;
    assert_int_equal(weft_gpt_layout_check(&c, 1, 3), 0);
}

static double loss_at(weft_gpt *m, const int32_t *tok, const int32_t *tgt)
{
    double loss;
    assert_int_equal(weft_gpt_forward(m, tok, tgt, B, T, &loss), 0);
    return loss;
}

/* Every tensor: 3 elements (first, middle, last), central differences. */
static void test_gradients(void **state)
{
    (void)state;
    weft_gpt *m = tiny();
    int32_t tok[B * T], tgt[B * T];
    batch(tok, tgt);
    loss_at(m, tok, tgt);
    weft_gpt_zero_grad(m);
    assert_int_equal(weft_gpt_backward(m, 1.0, NULL, NULL), 0);
    float *P = weft_gpt_params(m);
    const float *G = weft_gpt_grads(m);
    const double eps = 1e-2;
    int checked = 0;
    for (int i = 0; i < weft_gpt_nparams(m); i++) {
        const weft_tensor *p = weft_gpt_param_at(m, i);
        size_t picks[3] = {0, p->numel / 2, p->numel - 1};
        for (int k = 0; k < 3; k++) {
            size_t j = p->offset + picks[k];
            float keep = P[j];
            P[j] = (float)(keep + eps);
            double up = loss_at(m, tok, tgt);
            P[j] = (float)(keep - eps);
            double down = loss_at(m, tok, tgt);
            P[j] = keep;
            double fd = (up - down) / (2 * eps), g = G[j];
            double tol = 5e-5 + 3e-2 * fabs(fd);
            if (fabs(fd - g) > tol)
                fail_msg("%s[%zu]: backward %.6g, finite difference %.6g", p->name, picks[k], g, fd);
            checked++;
        }
    }
    assert_int_equal(checked, 3 * weft_gpt_nparams(m));
    weft_gpt_free(m);
}

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
    weft_gpt *m = tiny();
    int32_t tok[B * T], tgt[B * T];
    batch(tok, tgt);
    size_t n = weft_gpt_num_params(m);
    float *once = malloc(n * sizeof(float));
    loss_at(m, tok, tgt);
    weft_gpt_zero_grad(m);
    assert_int_equal(weft_gpt_backward(m, 1.0, hook, NULL), 0);
    assert_int_equal(hook_calls, L + 2);       /* ln_f, each block, embeddings */
    assert_true(hook_monotone);
    assert_int_equal(last_offset, 0);
    memcpy(once, weft_gpt_grads(m), n * sizeof(float));
    loss_at(m, tok, tgt);
    assert_int_equal(weft_gpt_backward(m, 1.0, NULL, NULL), 0); /* no zeroing: accumulates */
    const float *G = weft_gpt_grads(m);
    for (size_t i = 0; i < n; i++)
        assert_true(fabsf(G[i] - 2 * once[i]) <= 1e-5f + 1e-4f * fabsf(once[i]));
    free(once);
    weft_gpt_free(m);
}

/* The activation arena (model.h weft_model_acts_new): it exists on the
 * model's device, is sized from the planner's weft_model_mem (slots x
 * slot_bytes + shared_bytes, less the host-kept split micro-batch, plus
 * alignment for its 5 carvings) -- the same numbers weft_gpt_plan gives
 * without building -- and the model carves all of it but the padding, for
 * parts with and without the head or the embedding, recomputation, slots. */
static void test_activation_arena(void **state)
{
    (void)state;
    weft_gpt_config cfg = {.vocab = V, .max_seq = MAXT, .n_layer = L, .n_head = NH, .n_embd = C};
    for (int k = 0; k < 8; k++) {
        weft_gpt_part part = {.tp_size = 1, .pp_size = k & 1 ? 2 : 1, .nslots = k & 2 ? 3 : 1,
                              .recompute = (k >> 2) & 1};
        for (part.pp_rank = 0; part.pp_rank < part.pp_size; part.pp_rank++) {
            weft_gpt *m = NULL;
            weft_model_mem plan;
            assert_int_equal(weft_gpt_plan(&cfg, &part, B, T, &plan), 0);
            assert_int_equal(weft_gpt_new_part(&cfg, &part, B, T, &m), 0);
            const weft_model *mm = weft_gpt_model(m);
            assert_non_null(mm->acts);
            size_t size = weft_device_arena_size(mm->acts), used = weft_device_arena_used(mm->acts);
            size_t want = (size_t)plan.nslots * plan.slot_bytes + plan.shared_bytes - 2 * (size_t)B * T * 4 +
                          5 * WEFT_DEVICE_ALIGN;
            if (size != want || used > size || size - used >= 5 * WEFT_DEVICE_ALIGN)
                fail_msg("part %d (pp %d/%d, %d slots, recompute %d): arena %zu bytes (planned %zu), %zu carved",
                         k, part.pp_rank, part.pp_size, part.nslots, part.recompute, size, want, used);
            weft_gpt_free(m);
        }
    }
}

int main(void)
{
    weft_kernels_init(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_layout_constraints),
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_hook_and_accumulation),
        cmocka_unit_test(test_activation_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
