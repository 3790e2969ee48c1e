/*
 * test_flash.c -- the flash-style attention ops of kernels/kernels.h
 * (weft_attention_flash_*, weft_gqa_attention_flash_*) against independent
 * references:
 *   - forward and each row's log-sum-exp against textbook loops written
 *     here in double (scores, causal softmax, weighted values), at T that
 *     spans several query and key tiles (64) and ends mid-tile;
 *   - backward against central finite differences of the f64 flash forward
 *     (loss = sum(out * R)), with gradients starting non-zero and backward
 *     run twice, so += is checked too; and against the materialised ops'
 *     backward (weft_attention_backward_f64, the (T, T) one);
 *   - the f32 ops against the f64 ones on the same inputs;
 *   - grouped-query sharing (NKV = 1, 2, NH), the fused-qkv MHA form, the
 *     causal mask (later tokens never change earlier outputs, bitwise) and
 *     the same bits on a second run.
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

#include "kernels/kernels.h"

#define KF_SEED 0x2545F4914F6CDD1Dull
#include "tests/unit/kernel_fixtures.h"

/* --- the problem: q (B, T, NH*hs), k, v (B, T, NKV*hs), R like out ------- */

typedef struct {
    int B, T, NH, NKV, hs;
    double *q, *k, *v, *out, *lse, *R;
} fa_case;

static size_t nq(const fa_case *c) { return (size_t)c->B * c->T * c->NH * c->hs; }
static size_t nkv(const fa_case *c) { return (size_t)c->B * c->T * c->NKV * c->hs; }
static size_t nrow(const fa_case *c) { return (size_t)c->B * c->NH * c->T; }

static fa_case make_case(int B, int T, int NH, int NKV, int hs)
{
    fa_case c = {B, T, NH, NKV, hs, NULL, NULL, NULL, NULL, NULL, NULL};
    c.q = rnd(nq(&c), 2);   // scores of a few units: the softmax is far from uniform
    c.k = rnd(nkv(&c), 2);
    c.v = rnd(nkv(&c), 1);
    c.out = filled(nq(&c), 0);
    c.lse = filled(nrow(&c), 0);
    c.R = rnd(nq(&c), 1);
    return c;
}

static void free_case(fa_case *c)
{
    free(c->q); free(c->k); free(c->v); free(c->out); free(c->lse); free(c->R);
}

static double fa_loss(void *p)
{
    fa_case *c = p;
    weft_gqa_attention_flash_forward_f64(c->out, c->lse, c->q, c->k, c->v, c->B, c->T, c->NH, c->NKV, c->hs);
    double s = 0;
    for (size_t i = 0; i < nq(c); i++)
        s += c->out[i] * c->R[i];
    return s;
}

/* Textbook causal attention in double, the log-sum-exp of each row too. */
static void reference(const fa_case *c, double *out, double *lse)
{
    const int T = c->T, hs = c->hs, Cq = c->NH * hs, Ckv = c->NKV * hs;
    double *p = malloc((size_t)T * sizeof(double));
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->NH; h++)
            for (int t = 0; t < T; t++) {
                int kh = h / (c->NH / c->NKV);
                const double *qt = c->q + ((size_t)b * T + t) * Cq + h * hs;
                double m = -INFINITY, s = 0;
                for (int j = 0; j <= t; j++) {
                    const double *kj = c->k + ((size_t)b * T + j) * Ckv + kh * hs;
                    p[j] = 0;
                    for (int i = 0; i < hs; i++)
                        p[j] += qt[i] * kj[i] / sqrt(hs);
                    m = fmax(m, p[j]);
                }
                for (int j = 0; j <= t; j++)
                    s += (p[j] = exp(p[j] - m));
                lse[((size_t)b * c->NH + h) * T + t] = m + log(s);
                double *o = out + ((size_t)b * T + t) * Cq + h * hs;
                for (int i = 0; i < hs; i++) {
                    o[i] = 0;
                    for (int j = 0; j <= t; j++)
                        o[i] += p[j] / s * c->v[((size_t)b * T + j) * Ckv + kh * hs + i];
                }
            }
    free(p);
}


/* --- forward ------------------------------------------------------------- */

static void check_forward(int B, int T, int NH, int NKV, int hs)
{
    fa_case c = make_case(B, T, NH, NKV, hs);
    double *ref = filled(nq(&c), 0), *ref_lse = filled(nrow(&c), 0);
    reference(&c, ref, ref_lse);
    fa_loss(&c);
    assert_true(rel_err(c.out, ref, nq(&c)) < 1e-13);
    assert_true(rel_err(c.lse, ref_lse, nrow(&c)) < 1e-13);
    // f32 against the same reference, and the same bits twice
    float *fq = to_f32(c.q, nq(&c)), *fk = to_f32(c.k, nkv(&c)), *fv = to_f32(c.v, nkv(&c));
    float *fo = calloc(nq(&c), 4), *fo2 = calloc(nq(&c), 4), *fl = calloc(nrow(&c), 4);
    weft_gqa_attention_flash_forward(fo, fl, fq, fk, fv, B, T, NH, NKV, hs);
    assert_true(rel_err_f32(fo, ref, nq(&c)) < 1e-5);
    assert_true(rel_err_f32(fl, ref_lse, nrow(&c)) < 1e-5);
    weft_gqa_attention_flash_forward(fo2, fl, fq, fk, fv, B, T, NH, NKV, hs);
    assert_memory_equal(fo, fo2, nq(&c) * 4);
    free(ref); free(ref_lse); free(fq); free(fk); free(fv); free(fo); free(fo2); free(fl);
    free_case(&c);
}

/* T = 150: query and key tiles of 64, 64, 22; multi-head, grouped, one kv head */
static void test_flash_forward(void **state)
{
    (void)state;
    check_forward(2, 150, 4, 4, 16);
    check_forward(2, 150, 4, 2, 16);
    check_forward(1, 150, 4, 1, 8);
    check_forward(1, 5, 2, 1, 8);      // shorter than a tile
    check_forward(1, 128, 2, 2, 64);   // whole tiles, GPT-2's head size
}

/* --- backward ------------------------------------------------------------ */

/* dq, dk, dv of the f64 flash backward, run twice on top of G0 and brought
 * back to one call's */
static void flash_grads(fa_case *c, double *dq, double *dk, double *dv)
{
    fa_loss(c);
    for (size_t i = 0; i < nq(c); i++)
        dq[i] = G0;
    for (size_t i = 0; i < nkv(c); i++)
        dk[i] = dv[i] = G0;
    for (int r = 0; r < 2; r++)
        weft_gqa_attention_flash_backward_f64(dq, dk, dv, c->R, c->q, c->k, c->v, c->out, c->lse, c->B, c->T, c->NH,
                                              c->NKV, c->hs);
    for (size_t i = 0; i < nq(c); i++)
        dq[i] = (dq[i] - G0) / 2;
    for (size_t i = 0; i < nkv(c); i++) {
        dk[i] = (dk[i] - G0) / 2;
        dv[i] = (dv[i] - G0) / 2;
    }
}

/* T = 70: two query tiles (64, 6), the second sweeping a full and a
 * diagonal key tile; two query heads share the one kv head. */
static void test_flash_backward_fd(void **state)
{
    (void)state;
    fa_case c = make_case(1, 70, 2, 1, 4);
    double *dq = malloc(nq(&c) * 8), *dk = malloc(nkv(&c) * 8), *dv = malloc(nkv(&c) * 8);
    flash_grads(&c, dq, dk, dv);
    assert_true(fd_check("flash dq", c.q, nq(&c), dq, fa_loss, &c, 1) < FD_TOL);
    assert_true(fd_check("flash dk", c.k, nkv(&c), dk, fa_loss, &c, 1) < FD_TOL);
    assert_true(fd_check("flash dv", c.v, nkv(&c), dv, fa_loss, &c, 1) < FD_TOL);
    free(dq); free(dk); free(dv);
    free_case(&c);
}

/* Against the materialised op's backward (it keeps the (T, T) probabilities),
 * and f32 against f64, grouped (NKV = 2 of 4). */
static void test_flash_backward_matches(void **state)
{
    (void)state;
    enum { B = 2, T = 150, NH = 4, NKV = 2, HS = 16 };
    fa_case c = make_case(B, T, NH, NKV, HS);
    size_t n = nq(&c), m = nkv(&c), na = (size_t)B * NH * T * T;
    double *dq = malloc(n * 8), *dk = malloc(m * 8), *dv = malloc(m * 8);
    flash_grads(&c, dq, dk, dv);
    double *att = filled(na, 0), *datt = filled(na, 0), *o = filled(n, 0);
    double *rq = filled(n, 0), *rk = filled(m, 0), *rv = filled(m, 0);
    weft_gqa_attention_forward_f64(o, att, c.q, c.k, c.v, B, T, NH, NKV, HS);
    weft_gqa_attention_backward_f64(rq, rk, rv, datt, c.R, c.q, c.k, c.v, att, B, T, NH, NKV, HS);
    assert_true(rel_err(dq, rq, n) < 1e-12);
    assert_true(rel_err(dk, rk, m) < 1e-12);
    assert_true(rel_err(dv, rv, m) < 1e-12);
    float *fq = to_f32(c.q, n), *fk = to_f32(c.k, m), *fv = to_f32(c.v, m), *fR = to_f32(c.R, n);
    float *fo = calloc(n, 4), *fl = calloc(nrow(&c), 4), *fdq = calloc(n, 4), *fdk = calloc(m, 4), *fdv = calloc(m, 4);
    weft_gqa_attention_flash_forward(fo, fl, fq, fk, fv, B, T, NH, NKV, HS);
    weft_gqa_attention_flash_backward(fdq, fdk, fdv, fR, fq, fk, fv, fo, fl, B, T, NH, NKV, HS);
    assert_true(rel_err_f32(fdq, dq, n) < 1e-4);
    assert_true(rel_err_f32(fdk, dk, m) < 1e-4);
    assert_true(rel_err_f32(fdv, dv, m) < 1e-4);
    free(dq); free(dk); free(dv); free(att); free(datt); free(o); free(rq); free(rk); free(rv);
    free(fq); free(fk); free(fv); free(fR); free(fo); free(fl); free(fdq); free(fdk); free(fdv);
    free_case(&c);
}

/* --- the fused-qkv (GPT-2) form ------------------------------------------- */

/* qkv (B, T, 3C) built from a multi-head case; the fused op equals the
 * grouped one with NKV = NH, forward and backward, and f32 its f64. */
static void test_flash_fused_qkv(void **state)
{
    (void)state;
    enum { B = 2, T = 133, NH = 4, HS = 8, C = NH * HS };
    fa_case c = make_case(B, T, NH, NH, HS);
    size_t n = nq(&c), nr = nrow(&c);
    double *qkv = malloc(3 * n * 8), *dqkv = filled(3 * n, 0), *o = filled(n, 0), *l = filled(nr, 0);
    for (size_t r = 0; r < (size_t)B * T; r++) {
        memcpy(qkv + r * 3 * C, c.q + r * C, C * 8);
        memcpy(qkv + r * 3 * C + C, c.k + r * C, C * 8);
        memcpy(qkv + r * 3 * C + 2 * C, c.v + r * C, C * 8);
    }
    double *dq = malloc(n * 8), *dk = malloc(n * 8), *dv = malloc(n * 8);
    flash_grads(&c, dq, dk, dv);
    weft_attention_flash_forward_f64(o, l, qkv, B, T, C, NH);
    assert_true(rel_err(o, c.out, n) < 1e-14 && rel_err(l, c.lse, nr) < 1e-14);
    weft_attention_flash_backward_f64(dqkv, c.R, qkv, o, l, B, T, C, NH);
    // the fused gradient back in the grouped layout, compared whole (a
    // row's dq can be all but 0: position 0's softmax has one entry)
    double *split = malloc(3 * n * 8);
    for (size_t r = 0; r < (size_t)B * T; r++)
        for (int part = 0; part < 3; part++)
            memcpy(split + part * n + r * C, dqkv + r * 3 * C + part * C, C * 8);
    assert_true(rel_err(split, dq, n) < 1e-12);
    assert_true(rel_err(split + n, dk, n) < 1e-12);
    assert_true(rel_err(split + 2 * n, dv, n) < 1e-12);
    free(split);
    float *fqkv = to_f32(qkv, 3 * n), *fR = to_f32(c.R, n), *fo = calloc(n, 4), *fl = calloc(nr, 4);
    float *fd = calloc(3 * n, 4);
    weft_attention_flash_forward(fo, fl, fqkv, B, T, C, NH);
    assert_true(rel_err_f32(fo, o, n) < 1e-5);
    weft_attention_flash_backward(fd, fR, fqkv, fo, fl, B, T, C, NH);
    assert_true(rel_err_f32(fd, dqkv, 3 * n) < 1e-4);
    free(qkv); free(dqkv); free(o); free(l); free(dq); free(dk); free(dv);
    free(fqkv); free(fR); free(fo); free(fl); free(fd);
    free_case(&c);
}

/* The causal mask (kernel_fixtures.h). */
static void test_flash_causal(void **state)
{
    (void)state;
    flash_causal_check();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flash_forward),
        cmocka_unit_test(test_flash_backward_fd),
        cmocka_unit_test(test_flash_backward_matches),
        cmocka_unit_test(test_flash_fused_qkv),
        cmocka_unit_test(test_flash_causal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
