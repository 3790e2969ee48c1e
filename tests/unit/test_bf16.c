/*
 * test_bf16.c -- the bf16 linear layer (weft_matmul_set_precision(WEFT_BF16),
 * kernels/bf16.c + matmul_dnnl.c) against float64 references, with
 * tolerances derived from the rounding, not fitted:
 *
 *   u = 2^-8 for bf16 (8 significant bits), v = 2^-24 for f32, and for an
 *   output c = sum over K of a_k b_k (+ bias, + the value accumulated into),
 *   S = sum |a_k| |b_k| (+ |bias| + |c0|) in f64:
 *   - against the exact product of the f32 inputs, each input rounded once
 *     to bf16 (relative error <= u each, products exact in f32) and the
 *     K-term sum accumulated in f32:  |c - ref| <= ((1+u)^2 - 1 + g) S,
 *     g = gamma_{K+2} = (K+2) v / (1 - (K+2) v);
 *   - against the exact product of the inputs rounded to bf16 here (by
 *     runtime/dtype.c's weft_f32_to_bf16, round to nearest even -- not the
 *     kernels' code):  |c - ref16| <= g S16. This one proves the operands
 *     were rounded to nearest even and the sums kept in f32;
 *   - and that bf16 is really in effect: somewhere the error against the
 *     f32 product exceeds what f32 alone would give (g S), so a silent f32
 *     fallback fails.
 * Forward with and without bias, backward (dinp, dweight, dbias) on top
 * of a non-zero start (accumulation), at shapes with tails; the weight
 * mirror: a registered weight is read from its copy (stale until
 * refreshed, fresh after); the LM head's backward in one op, its gradient
 * rounded as it is made. Skipped where the CPU has no bf16.
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
#include "runtime/dtype.h"
#include "runtime/error.h"

#define U16 (1.0 / 256)        /* bf16 unit roundoff, 2^-8 */
#define U32 (1.0 / 16777216)   /* f32 unit roundoff, 2^-24 */
#define G0 0.5f                /* gradient buffers start here: proves += */

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static float urand(void) /* uniform in [-1, 1), an f32 */
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 4503599627370496.0 - 1.0);
}

static float *rnd(size_t n)
{
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = urand();
    return x;
}

static float *filled(size_t n, float v)
{
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = v;
    return x;
}

static double r16(float x) { return weft_bf16_to_f32(weft_f32_to_bf16(x)); }
static double gamma_k(int K) { return (K + 2) * U32 / (1 - (K + 2) * U32); }

/* One output's check: c against sum_k a[k*sa] b[k*sb] (+ c0) in f64, both
 * ways (module comment); worst records how far past f32's own bound the
 * error against the f32 product went (> 1 somewhere: bf16 ran). */
static void check_dot(float c, const float *a, size_t sa, const float *b, size_t sb, int K, double c0,
                      double *worst)
{
    double ref = c0, ref16 = c0, S = fabs(c0), S16 = fabs(c0);
    for (int k = 0; k < K; k++) {
        double x = a[k * sa], y = b[k * sb];
        ref += x * y;
        S += fabs(x * y);
        ref16 += r16(a[k * sa]) * r16(b[k * sb]);
        S16 += fabs(r16(a[k * sa]) * r16(b[k * sb]));
    }
    double g = gamma_k(K), err = fabs(c - ref), err16 = fabs(c - ref16);
    if (!(err <= ((1 + U16) * (1 + U16) - 1 + g) * S + 1e-30))
        fail_msg("bf16 product %.9g vs f64 %.9g: error %.3g > bound %.3g (K %d)", c, ref, err,
                 ((1 + U16) * (1 + U16) - 1 + g) * S, K);
    if (!(err16 <= g * S16 + 1e-30))
        fail_msg("bf16 product %.9g vs f64 of bf16-rounded inputs %.9g: error %.3g > f32 accumulation bound "
                 "%.3g (K %d)", c, ref16, err16, g * S16, K);
    if (S > 0 && err / (g * S) > *worst)
        *worst = err / (g * S);
}

static void matmul_bf16_case(int N, int C, int OC, int bias)
{
    size_t nin = (size_t)N * C, nw = (size_t)OC * C, nout = (size_t)N * OC;
    float *inp = rnd(nin), *w = rnd(nw), *b = rnd(OC), *dout = rnd(nout), *out = filled(nout, 0);
    double worst = 0;
    weft_matmul_forward(out, inp, w, bias ? b : NULL, N, C, OC);
    for (int n = 0; n < N; n++) /* out[n, o] = inp[n, :] . w[o, :] + b[o] */
        for (int o = 0; o < OC; o++)
            check_dot(out[(size_t)n * OC + o], inp + (size_t)n * C, 1, w + (size_t)o * C, 1, C, bias ? b[o] : 0,
                      &worst);
    float *di = filled(nin, G0), *dw = filled(nw, G0), *db = filled(OC, G0);
    weft_matmul_backward(di, dw, db, dout, inp, w, N, C, OC); /* adds to G0 */
    for (int n = 0; n < N; n++) /* dinp[n, c] = G0 + dout[n, :] . w[:, c] */
        for (int c = 0; c < C; c++)
            check_dot(di[(size_t)n * C + c], dout + (size_t)n * OC, 1, w + c, (size_t)C, OC, G0, &worst);
    for (int o = 0; o < OC; o++) /* dweight[o, c] = G0 + dout[:, o] . inp[:, c] */
        for (int c = 0; c < C; c++)
            check_dot(dw[(size_t)o * C + c], dout + o, (size_t)OC, inp + c, (size_t)C, N, G0, &worst);
    for (int o = 0; o < OC; o++) { /* dbias: f32 column sums, no bf16 */
        double ref = G0, S = G0;
        for (int n = 0; n < N; n++)
            ref += dout[(size_t)n * OC + o], S += fabs(dout[(size_t)n * OC + o]);
        assert_true(fabs(db[o] - ref) <= gamma_k(N) * S);
    }
    if (N * C * OC >= 4096 && !(worst > 1)) /* small shapes may round luckily; these may not */
        fail_msg("%dx%dx%d: every error within f32's own bound (worst %.2f of it): did bf16 run?", N, C, OC, worst);
    free(inp); free(w); free(b); free(dout); free(out); free(di); free(dw); free(db);
}

static void test_matmul_bf16(void **state)
{
    (void)state;
    static const int shapes[][3] = {{1, 1, 1}, {10, 8, 6}, {37, 29, 23}, {64, 256, 200}, {300, 17, 129}, {16, 1024, 48}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int bias = 0; bias < 2; bias++)
            matmul_bf16_case(shapes[i][0], shapes[i][1], shapes[i][2], bias);
}

/* weft_xent_head_backward in bf16 (kernels/xent_head.c): the gradient laid
 * over the logits' first half is weft_xent_grad's f32 gradient rounded to
 * nearest even, bitwise (ignored rows zero, a target outside the slice
 * v0.. no -1); the products are of it and the bf16 weight and input,
 * summed in f32 (check_dot's bounds), on top of G0. */
static void xent_head_case(int N, int C, int V, int v0)
{
    size_t nl = (size_t)N * V;
    float *logits = rnd(nl), *g32 = malloc(nl * sizeof *g32), *inp = rnd((size_t)N * C), *w = rnd((size_t)V * C);
    float *di = filled((size_t)N * C, G0), *dw = filled((size_t)V * C, G0);
    double *lse = malloc((size_t)N * sizeof *lse);
    int32_t *tgt = malloc((size_t)N * sizeof *tgt);
    assert_non_null(g32);
    assert_non_null(lse);
    assert_non_null(tgt);
    for (size_t i = 0; i < nl; i++)
        logits[i] *= 4; /* a peaked softmax */
    for (int n = 0; n < N; n++) {
        double mx = -INFINITY, z = 0;
        for (int v = 0; v < V; v++)
            mx = fmax(mx, logits[(size_t)n * V + v]);
        for (int v = 0; v < V; v++)
            z += exp(logits[(size_t)n * V + v] - mx);
        lse[n] = mx + log(z) + 0.5; /* as if other ranks' columns added to the sum */
        tgt[n] = n % 7 == 3 ? -1 : n % 5 == 1 ? v0 + V + 2 : v0 + (n * 13) % V;
    }
    memcpy(g32, logits, nl * sizeof *g32);
    weft_xent_grad(g32, g32, lse, tgt, N, V, v0, 0.125);
    weft_xent_head_backward(di, dw, logits, lse, tgt, inp, w, N, C, V, v0, 0.125);
    const uint16_t *g16 = (const uint16_t *)(void *)logits;
    for (size_t i = 0; i < nl; i++)
        if (g16[i] != weft_f32_to_bf16(g32[i]))
            fail_msg("xent head %dx%dx%d: gradient %zu is 0x%04x, not %g rounded (0x%04x)", N, C, V, i, g16[i],
                     g32[i], weft_f32_to_bf16(g32[i]));
    double worst = 0;
    for (int n = 0; n < N; n++) /* dinp[n, c] = G0 + g[n, :] . w[:, c] */
        for (int c = 0; c < C; c++)
            check_dot(di[(size_t)n * C + c], g32 + (size_t)n * V, 1, w + c, (size_t)C, V, G0, &worst);
    for (int v = 0; v < V; v++) /* dweight[v, c] = G0 + g[:, v] . inp[:, c] */
        for (int c = 0; c < C; c++)
            check_dot(dw[(size_t)v * C + c], g32 + v, (size_t)V, inp + c, (size_t)C, N, G0, &worst);
    free(logits); free(g32); free(inp); free(w); free(di); free(dw); free(lse); free(tgt);
}

static void test_xent_head_bf16(void **state)
{
    (void)state;
    xent_head_case(37, 24, 1500, 0);   /* rows over two tiles and a tail */
    xent_head_case(64, 64, 2048, 4096); /* a slice of a larger vocabulary */
    xent_head_case(3, 8, 5, 1);
}

static void test_mirror(void **state)
{
    (void)state;
    enum { N = 8, C = 64, OC = 32 };
    float *inp = rnd(N * C), *params = rnd(OC * C + 100), *out = filled(N * OC, 0), *ref = filled(N * OC, 0);
    float *w = params + 100; /* a weight inside a larger parameter buffer */
    float *copy = malloc(OC * C * sizeof *copy);
    assert_non_null(copy);
    memcpy(copy, w, OC * C * sizeof *copy);
    weft_matmul_forward(ref, inp, copy, NULL, N, C, OC); /* not registered: rounded per call */
    assert_int_equal(weft_matmul_bf16_mirror(params, OC * C + 100), 0);
    weft_matmul_forward(out, inp, w, NULL, N, C, OC);
    assert_memory_equal(out, ref, sizeof(float) * N * OC); /* the mirror rounds the same way */
    for (int i = 0; i < OC * C; i++)
        w[i] = -w[i];
    weft_matmul_forward(out, inp, w, NULL, N, C, OC);
    assert_memory_equal(out, ref, sizeof(float) * N * OC); /* stale: the copy is what products read */
    weft_matmul_bf16_refresh(w, OC * C);
    weft_matmul_forward(out, inp, w, NULL, N, C, OC);
    for (int i = 0; i < N * OC; i++)
        assert_true(out[i] == -ref[i]); /* refreshed: exactly the negated weights' product */
    weft_matmul_bf16_forget(params);
    free(inp); free(params); free(out); free(ref); free(copy);
}

static void test_precision_api(void **state)
{
    (void)state;
    assert_int_equal(weft_matmul_precision(), WEFT_BF16);
    assert_int_equal(weft_matmul_set_precision(WEFT_F16), WEFT_EINVAL);
    assert_true(weft_matmul_peak_as(WEFT_BF16, 0.1) > 0);
    assert_true(weft_matmul_rate_as(WEFT_BF16, 64, 64, 64, 0.01) > 0);
}

int main(void)
{
    weft_kernels_init(1);
    char why[256];
    if (!weft_matmul_bf16_supported(why, sizeof why)) {
        printf("1..0 # SKIP bf16 linear layer: %s\n", why);
        return 0;
    }
    assert_int_equal(weft_matmul_set_precision(WEFT_BF16), 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_bf16),
        cmocka_unit_test(test_xent_head_bf16),
        cmocka_unit_test(test_mirror),
        cmocka_unit_test(test_precision_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
