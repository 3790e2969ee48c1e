/*
 * test_decode.c -- incremental decoding with a key/value cache (the model
 * interface's decode) against the full forward (its logits), for GPT-2 and
 * the Llama family: every position's logits equal the full forward's over
 * the whole prefix within 1e-5 of the logits' scale, for a prefill then one
 * token at a time, a prefill longer than a decoding chunk (64 rows) and the
 * attention kernel's row block, and a chunked prefill; grouped-query,
 * multi-query and multi-head attention, tied and untied heads, rope_theta
 * 10000 and 500000, positions past the model's training length T. Starting
 * again at position 0 gives the same logits, bit for bit. Refusals: a
 * position out of order, past model.context, a token outside the
 * vocabulary, a split model.
 *
 * The weights are drawn wider than the training initialisation (as
 * tests/model/llama_dump.c --wide) so that attention is far from uniform
 * and a position off by one moves the logits far past the tolerance.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gpt.h"
#include "model/llama.h"
#include "runtime/error.h"
#include "runtime/rng.h"

#define TOL 1e-5

/* Every parameter redrawn: matrices N(0, 1/in), embeddings N(0, 1), norm
 * weights 1 + N(0, 0.2), biases N(0, 0.1). */
static void widen(weft_model *m, uint64_t seed)
{
    weft_rng r;
    weft_rng_seed(&r, seed);
    for (int i = 0; i < m->nparams; i++) {
        const weft_tensor *p = &m->params[i];
        float *w = m->param_data + p->offset;
        int embed = strstr(p->name, "wte") || strstr(p->name, "wpe") || strstr(p->name, "embed_tokens");
        int bias = strstr(p->name, "bias") != NULL;
        double sd = p->ndim == 1 ? (bias ? 0.1 : 0.2) : embed ? 1.0 : 1.0 / sqrt((double)p->shape[1]);
        for (size_t j = 0; j < p->numel; j++)
            w[j] = (float)((p->ndim == 1 && !bias ? 1.0 : 0.0) + sd * weft_rng_normal(&r));
    }
}

static int32_t *draw(int n, int V, uint64_t seed)
{
    weft_rng r;
    weft_rng_seed(&r, seed);
    int32_t *t = malloc((size_t)n * sizeof *t);
    for (int i = 0; i < n; i++)
        t[i] = (int32_t)(weft_rng_u64(&r) % (uint64_t)V);
    return t;
}

/* max |a - b| / max(1, max |b|) over n */
static double diff(const float *a, const float *b, int n)
{
    double d = 0, s = 1;
    for (int i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    return d / s;
}

/* The full forward's logits of tokens (1, T): (T, V), copied. */
static float *full_logits(weft_model *m, const int32_t *tok, int T, int V)
{
    const float *out;
    assert_int_equal(m->ops->logits(m, tok, 1, T, &out), 0);
    float *copy = malloc((size_t)T * V * sizeof(float));
    memcpy(copy, out, (size_t)T * V * sizeof(float));
    return copy;
}

/* Decode tok (T) in pieces of the given sizes (summing to T, the last ones
 * repeated), comparing the logits after each piece with the full forward's
 * at that piece's last position. */
static double decode_in_pieces(weft_model *m, const int32_t *tok, const float *full, int T, int V, const int *pieces,
                               int npieces, const char *what)
{
    double worst = 0;
    int pos = 0;
    for (int i = 0; pos < T; i++) {
        int n = pieces[i < npieces ? i : npieces - 1];
        n = n < T - pos ? n : T - pos;
        const float *lg;
        int rc = m->ops->decode(m, tok + pos, n, pos, &lg);
        if (rc)
            fail_msg("%s: decode of %d tokens at %d: %s", what, n, pos, weft_last_error());
        pos += n;
        double d = diff(lg, full + (size_t)(pos - 1) * V, V);
        if (!(d <= TOL))
            fail_msg("%s: position %d: logits differ from the full forward's by %g of their scale", what, pos - 1, d);
        worst = fmax(worst, d);
    }
    return worst;
}

/* The comparisons every model goes through. */
static void check_model(weft_model *m, int T, int V, const char *what)
{
    widen(m, 77);
    int32_t *tok = draw(T, V, 3);
    float *full = full_logits(m, tok, T, V);
    static const int one[] = {1}, prompt[] = {5, 1}, whole[] = {1 << 20}, chunks[] = {3, 17, 1, 70};
    char w[160];
    snprintf(w, sizeof w, "%s, one token at a time", what);
    double d1 = decode_in_pieces(m, tok, full, T, V, one, 1, w);
    snprintf(w, sizeof w, "%s, a prompt of 5 then one at a time", what);
    double d2 = decode_in_pieces(m, tok, full, T, V, prompt, 2, w);
    snprintf(w, sizeof w, "%s, the whole sequence as one prefill", what);
    double d3 = decode_in_pieces(m, tok, full, T, V, whole, 1, w);
    snprintf(w, sizeof w, "%s, chunks of 3, 17, 1, 70", what);
    double d4 = decode_in_pieces(m, tok, full, T, V, chunks, 4, w);
    print_message("%s: worst logit difference %.2g / %.2g / %.2g / %.2g of their scale\n", what, d1, d2, d3, d4);

    /* Starting again at 0 after a longer sequence: the same logits, bitwise. */
    const float *lg;
    assert_int_equal(m->ops->decode(m, tok, 7, 0, &lg), 0);
    float *again = malloc((size_t)V * sizeof(float));
    memcpy(again, lg, (size_t)V * sizeof(float));
    assert_int_equal(m->ops->decode(m, tok, 3, 0, &lg), 0);
    assert_int_equal(m->ops->decode(m, tok + 3, 4, 3, &lg), 0);
    assert_true(diff(lg, full + 6 * (size_t)V, V) <= TOL);
    assert_int_equal(m->ops->decode(m, tok, 7, 0, &lg), 0);
    assert_memory_equal(lg, again, (size_t)V * sizeof(float));

    /* Refusals, each naming what is wrong; the cache is left as it was. */
    assert_int_equal(m->ops->decode(m, tok, 1, 9, &lg), WEFT_EINVAL); /* 7 cached: 9 is out of order */
    assert_non_null(strstr(weft_last_error(), "continue at 7"));
    assert_int_equal(m->ops->decode(m, tok, T - 6, 7, &lg), WEFT_EINVAL); /* past model.context */
    assert_non_null(strstr(weft_last_error(), "model.context"));
    int32_t bad[2] = {1, V};
    assert_int_equal(m->ops->decode(m, bad, 2, 7, &lg), WEFT_EINVAL);
    assert_non_null(strstr(weft_last_error(), "outside the vocabulary"));
    bad[1] = -1;
    assert_int_equal(m->ops->decode(m, bad, 2, 7, &lg), WEFT_EINVAL);
    assert_int_equal(m->ops->decode(m, tok + 7, 1, 7, &lg), 0); /* and it goes on */
    assert_true(diff(lg, full + 7 * (size_t)V, V) <= TOL);
    free(again);
    free(full);
    free(tok);
}

static void gpt_case(int T, int V, int L, int NH, int C, int build_T)
{
    weft_gpt_config cfg = {.vocab = V, .n_layer = L, .n_head = NH, .n_embd = C, .max_seq = T};
    weft_gpt *g;
    assert_int_equal(weft_gpt_new(&cfg, 1, build_T, &g), 0);
    weft_gpt_init(g, 1);
    char what[128];
    snprintf(what, sizeof what, "gpt2 T=%d V=%d L=%d NH=%d C=%d", T, V, L, NH, C);
    check_model(weft_gpt_model(g), T, V, what);
    weft_gpt_free(g);
}

static void llama_case(int T, int V, int L, int NH, int NKV, int C, int F, double theta, int tie)
{
    weft_llama_config cfg = {.vocab = V, .max_seq = T, .n_layer = L, .n_head = NH, .n_kv_head = NKV, .n_embd = C,
                             .ffn_dim = F, .rope_theta = theta, .norm_eps = 1e-5, .tie_embeddings = tie};
    weft_llama *m;
    assert_int_equal(weft_llama_new(&cfg, 1, T, &m), 0);
    weft_llama_init(m, 2);
    char what[160];
    snprintf(what, sizeof what, "llama T=%d V=%d L=%d NH=%d NKV=%d C=%d F=%d theta=%g %s", T, V, L, NH, NKV, C, F,
             theta, tie ? "tied" : "untied");
    check_model(weft_llama_model(m), T, V, what);
    weft_llama_free(m);
}

static void test_gpt(void **state)
{
    (void)state;
    gpt_case(24, 37, 2, 4, 32, 24);
    gpt_case(150, 64, 2, 2, 16, 150); /* prefills across decoding chunks and attention row blocks */
}

static void test_llama_gqa(void **state)
{
    (void)state;
    llama_case(24, 37, 2, 4, 2, 32, 48, 10000, 0);
    llama_case(150, 64, 2, 4, 2, 32, 40, 500000, 1);
}

static void test_llama_mqa_mha(void **state)
{
    (void)state;
    llama_case(20, 50, 3, 4, 1, 32, 40, 10000, 1);
    llama_case(20, 50, 2, 2, 2, 24, 32, 500000, 0); /* head size 12 */
}

/* A model built for training length 8 decodes every one of its 30
 * positions: the cache's rotary tables cover model.context, not T. */
static void test_positions_past_T(void **state)
{
    (void)state;
    enum { CTX = 30, V = 40 };
    weft_llama_config cfg = {.vocab = V, .max_seq = CTX, .n_layer = 2, .n_head = 4, .n_kv_head = 2, .n_embd = 32,
                             .ffn_dim = 48, .rope_theta = 10000, .norm_eps = 1e-5};
    weft_llama *small, *whole;
    assert_int_equal(weft_llama_new(&cfg, 1, 8, &small), 0);
    assert_int_equal(weft_llama_new(&cfg, 1, CTX, &whole), 0);
    weft_model *ms = weft_llama_model(small), *mw = weft_llama_model(whole);
    widen(mw, 5);
    memcpy(ms->param_data, mw->param_data, mw->n * sizeof(float));
    int32_t *tok = draw(CTX, V, 9);
    float *full = full_logits(mw, tok, CTX, V);
    static const int one[] = {1};
    decode_in_pieces(ms, tok, full, CTX, V, one, 1, "llama built for T=8, decoding 30 positions");
    free(full);
    free(tok);
    weft_llama_free(small);
    weft_llama_free(whole);

    weft_gpt_config gc = {.vocab = V, .n_layer = 2, .n_head = 2, .n_embd = 16, .max_seq = CTX};
    weft_gpt *gs, *gw;
    assert_int_equal(weft_gpt_new(&gc, 1, 4, &gs), 0);
    assert_int_equal(weft_gpt_new(&gc, 1, CTX, &gw), 0);
    widen(weft_gpt_model(gw), 6);
    memcpy(weft_gpt_params(gs), weft_gpt_params(gw), weft_gpt_num_params(gw) * sizeof(float));
    tok = draw(CTX, V, 10);
    full = full_logits(weft_gpt_model(gw), tok, CTX, V);
    decode_in_pieces(weft_gpt_model(gs), tok, full, CTX, V, one, 1, "gpt2 built for T=4, decoding 30 positions");
    free(full);
    free(tok);
    weft_gpt_free(gs);
    weft_gpt_free(gw);
}

static void test_split_refused(void **state)
{
    (void)state;
    int32_t t = 0;
    assert_int_equal(weft_model_decode_check(2, 1, 10, 8, 0, &t, 1, 0), WEFT_EINVAL);
    assert_non_null(strstr(weft_last_error(), "whole model on one rank"));
    assert_int_equal(weft_model_decode_check(1, 2, 10, 8, 0, &t, 1, 0), WEFT_EINVAL);
    assert_int_equal(weft_model_decode_check(1, 1, 10, 8, 0, &t, 0, 0), WEFT_EINVAL);
    assert_int_equal(weft_model_decode_check(1, 1, 10, 8, 0, &t, 1, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt),
        cmocka_unit_test(test_llama_gqa),
        cmocka_unit_test(test_llama_mqa_mha),
        cmocka_unit_test(test_positions_past_T),
        cmocka_unit_test(test_split_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
