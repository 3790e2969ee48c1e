/*
 * test_kernels.c -- the CPU ops of kernels/kernels.h against independent
 * references:
 *   - every backward against central finite differences of its own f64
 *     forward, with the scalar loss L = sum(out * R) for a fixed random R
 *     (so every output element matters); gradient buffers start at a
 *     non-zero value and backward runs twice, so the check also proves that
 *     backward accumulates (+=) rather than overwrites. rope_backward,
 *     the one that overwrites, is checked instead as the transpose of
 *     rope_forward, <R, rope(x)> = <rope_back(R), x>, and as its inverse;
 *   - forwards against naive loops written here (matmul, layernorm,
 *     attention, GELU, embedding, cross-entropy, RMSNorm, RoPE with angles
 *     from theta, SwiGLU, grouped-query attention);
 *   - the f32 ops against the f64 ops on the same inputs;
 *   - special properties: causal mask, cross-entropy at logits of +-1e4,
 *     ignored targets, in-place dlogits, AdamW by hand, the LR schedule,
 *     clipping, sumsq, grouped-query attention with NKV = NH equal to the
 *     fused-qkv op, the rotary table at long positions, SwiGLU far out;
 *   - the checker itself: a wrong gradient must be caught.
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
#include "tests/unit/kernel_fixtures.h"

/* --- helpers ------------------------------------------------------------- */

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* Gradient accumulated by two backward calls on top of G0 -> one call's. */
static void unaccumulate(double *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g[i] = (g[i] - G0) / 2;
}

/* --- matmul -------------------------------------------------------------- */

enum { MM_N = 10, MM_C = 8, MM_OC = 6 };
typedef struct {
    double *inp, *w, *bias, *out, *R;
} mm_ctx;

static double mm_loss(void *p)
{
    mm_ctx *c = p;
    weft_matmul_forward_f64(c->out, c->inp, c->w, c->bias, MM_N, MM_C, MM_OC);
    return dot(c->out, c->R, MM_N * MM_OC);
}

static void test_matmul(void **state)
{
    (void)state;
    mm_ctx c = {rnd(MM_N * MM_C, 1), rnd(MM_OC * MM_C, 1), rnd(MM_OC, 1),
                filled(MM_N * MM_OC, 0), rnd(MM_N * MM_OC, 1)};
    // forward against the naive triple loop
    mm_loss(&c);
    double ref[MM_N * MM_OC];
    for (int n = 0; n < MM_N; n++)
        for (int o = 0; o < MM_OC; o++) {
            double s = c.bias[o];
            for (int i = 0; i < MM_C; i++)
                s += c.inp[n * MM_C + i] * c.w[o * MM_C + i];
            ref[n * MM_OC + o] = s;
        }
    assert_true(rel_err(c.out, ref, MM_N * MM_OC) < 1e-14);
    // backward, twice, on top of G0
    double *di = filled(MM_N * MM_C, G0), *dw = filled(MM_OC * MM_C, G0), *db = filled(MM_OC, G0);
    for (int k = 0; k < 2; k++)
        weft_matmul_backward_f64(di, dw, db, c.R, c.inp, c.w, MM_N, MM_C, MM_OC);
    unaccumulate(di, MM_N * MM_C);
    unaccumulate(dw, MM_OC * MM_C);
    unaccumulate(db, MM_OC);
    assert_true(fd_check("matmul dinp", c.inp, MM_N * MM_C, di, mm_loss, &c, 1) < FD_TOL);
    assert_true(fd_check("matmul dweight", c.w, MM_OC * MM_C, dw, mm_loss, &c, 1) < FD_TOL);
    assert_true(fd_check("matmul dbias", c.bias, MM_OC, db, mm_loss, &c, 1) < FD_TOL);
    // dinp and dbias may be NULL: dweight is the same
    double *dw2 = filled(MM_OC * MM_C, 0);
    weft_matmul_backward_f64(NULL, dw2, NULL, c.R, c.inp, c.w, MM_N, MM_C, MM_OC);
    assert_true(rel_err(dw2, dw, MM_OC * MM_C) < 1e-14);
    // no bias: out = inp @ w^T
    weft_matmul_forward_f64(c.out, c.inp, c.w, NULL, MM_N, MM_C, MM_OC);
    for (int n = 0; n < MM_N; n++)
        for (int o = 0; o < MM_OC; o++)
            ref[n * MM_OC + o] -= c.bias[o];
    assert_true(rel_err(c.out, ref, MM_N * MM_OC) < 1e-14);
    // f32 against f64
    float *fi = to_f32(c.inp, MM_N * MM_C), *fw = to_f32(c.w, MM_OC * MM_C),
          *fb = to_f32(c.bias, MM_OC), *fo = to_f32(c.out, MM_N * MM_OC),
          *fR = to_f32(c.R, MM_N * MM_OC);
    float *fdi = calloc(MM_N * MM_C, 4), *fdw = calloc(MM_OC * MM_C, 4), *fdb = calloc(MM_OC, 4);
    weft_matmul_forward(fo, fi, fw, fb, MM_N, MM_C, MM_OC);
    mm_loss(&c);
    assert_true(rel_err_f32(fo, c.out, MM_N * MM_OC) < 1e-5);
    weft_matmul_backward(fdi, fdw, fdb, fR, fi, fw, MM_N, MM_C, MM_OC);
    assert_true(rel_err_f32(fdi, di, MM_N * MM_C) < 1e-5);
    assert_true(rel_err_f32(fdw, dw, MM_OC * MM_C) < 1e-5);
    assert_true(rel_err_f32(fdb, db, MM_OC) < 1e-5);
    free(c.inp); free(c.w); free(c.bias); free(c.out); free(c.R);
    free(di); free(dw); free(db); free(dw2);
    free(fi); free(fw); free(fb); free(fo); free(fR); free(fdi); free(fdw); free(fdb);
}

/* The f32 linear layer runs on oneDNN (kernels/matmul_dnnl.c), a separate
 * code path from the f64 one (CBLAS): compare them at shapes where
 * oneDNN's blocking has tails, with and without bias, accumulating twice on
 * top of G0, and with dinp and dbias NULL. The f64 reference gets the
 * f32-rounded inputs, so only the f32 sums' rounding is measured. */
static float *f32_of(double *x, size_t n)
{
    float *y = to_f32(x, n);
    for (size_t i = 0; i < n; i++)
        x[i] = y[i];
    return y;
}

static void matmul_f32_case(int N, int C, int OC, int bias)
{
    size_t nin = (size_t)N * C, nw = (size_t)OC * C, nout = (size_t)N * OC;
    double *inp = rnd(nin, 1), *w = rnd(nw, 1), *b = rnd(OC, 1), *R = rnd(nout, 1), *out = filled(nout, 0);
    float *fi = f32_of(inp, nin), *fw = f32_of(w, nw), *fb = f32_of(b, OC), *fR = f32_of(R, nout);
    float *fo = calloc(nout, 4);
    weft_matmul_forward_f64(out, inp, w, bias ? b : NULL, N, C, OC);
    weft_matmul_forward(fo, fi, fw, bias ? fb : NULL, N, C, OC);
    assert_true(rel_err_f32(fo, out, nout) < 1e-5);
    double *di = filled(nin, G0), *dw = filled(nw, G0), *db = filled(OC, G0), *dw1 = filled(nw, 0);
    float *fdi = to_f32(di, nin), *fdw = to_f32(dw, nw), *fdb = to_f32(db, OC), *fdw1 = calloc(nw, 4);
    for (int k = 0; k < 2; k++) {
        weft_matmul_backward_f64(di, dw, db, R, inp, w, N, C, OC);
        weft_matmul_backward(fdi, fdw, fdb, fR, fi, fw, N, C, OC);
    }
    weft_matmul_backward_f64(NULL, dw1, NULL, R, inp, w, N, C, OC);
    weft_matmul_backward(NULL, fdw1, NULL, fR, fi, fw, N, C, OC);
    assert_true(rel_err_f32(fdi, di, nin) < 1e-5);
    assert_true(rel_err_f32(fdw, dw, nw) < 1e-5);
    assert_true(rel_err_f32(fdb, db, OC) < 1e-5);
    assert_true(rel_err_f32(fdw1, dw1, nw) < 1e-5);
    free(inp); free(w); free(b); free(R); free(out); free(di); free(dw); free(db); free(dw1);
    free(fi); free(fw); free(fb); free(fR); free(fo); free(fdi); free(fdw); free(fdb); free(fdw1);
}

static void test_matmul_f32(void **state)
{
    (void)state;
    static const int shapes[][3] = {{1, 1, 1}, {10, 8, 6}, {37, 29, 23}, {64, 256, 200}, {300, 17, 129}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int bias = 0; bias < 2; bias++)
            matmul_f32_case(shapes[i][0], shapes[i][1], shapes[i][2], bias);
}

/* --- layernorm ----------------------------------------------------------- */

enum { LN_N = 10, LN_C = 8 };
typedef struct {
    double *inp, *w, *b, *out, *mean, *rstd, *R;
} ln_ctx;

static double ln_loss(void *p)
{
    ln_ctx *c = p;
    weft_layernorm_forward_f64(c->out, c->mean, c->rstd, c->inp, c->w, c->b, LN_N, LN_C);
    return dot(c->out, c->R, LN_N * LN_C);
}

static void test_layernorm(void **state)
{
    (void)state;
    ln_ctx c = {rnd(LN_N * LN_C, 2), rnd(LN_C, 1), rnd(LN_C, 1), filled(LN_N * LN_C, 0),
                filled(LN_N, 0), filled(LN_N, 0), rnd(LN_N * LN_C, 1)};
    for (int i = 0; i < LN_C; i++)
        c.inp[i] += 100;   // one row with a large offset: two-pass variance
    ln_loss(&c);
    double ref[LN_N * LN_C];
    for (int n = 0; n < LN_N; n++) {
        double m = 0, v = 0;
        for (int i = 0; i < LN_C; i++)
            m += c.inp[n * LN_C + i] / LN_C;
        for (int i = 0; i < LN_C; i++)
            v += (c.inp[n * LN_C + i] - m) * (c.inp[n * LN_C + i] - m) / LN_C;
        assert_true(fabs(c.mean[n] - m) < 1e-12 * fmax(1, fabs(m)));
        assert_true(fabs(c.rstd[n] - 1 / sqrt(v + 1e-5)) < 1e-12 * c.rstd[n]);
        for (int i = 0; i < LN_C; i++)
            ref[n * LN_C + i] = (c.inp[n * LN_C + i] - m) / sqrt(v + 1e-5) * c.w[i] + c.b[i];
    }
    assert_true(rel_err(c.out, ref, LN_N * LN_C) < 1e-13);
    double *di = filled(LN_N * LN_C, G0), *dw = filled(LN_C, G0), *db = filled(LN_C, G0);
    for (int k = 0; k < 2; k++)
        weft_layernorm_backward_f64(di, dw, db, c.R, c.inp, c.w, c.mean, c.rstd, LN_N, LN_C);
    unaccumulate(di, LN_N * LN_C);
    unaccumulate(dw, LN_C);
    unaccumulate(db, LN_C);
    assert_true(fd_check("layernorm dinp", c.inp, LN_N * LN_C, di, ln_loss, &c, 1) < FD_TOL);
    assert_true(fd_check("layernorm dweight", c.w, LN_C, dw, ln_loss, &c, 1) < FD_TOL);
    assert_true(fd_check("layernorm dbias", c.b, LN_C, db, ln_loss, &c, 1) < FD_TOL);
    // f32 against f64 (forward and backward)
    ln_loss(&c);
    float *fi = to_f32(c.inp, LN_N * LN_C), *fw = to_f32(c.w, LN_C), *fb = to_f32(c.b, LN_C),
          *fR = to_f32(c.R, LN_N * LN_C);
    float *fo = calloc(LN_N * LN_C, 4), *fm = calloc(LN_N, 4), *fs = calloc(LN_N, 4);
    float *fdi = calloc(LN_N * LN_C, 4), *fdw = calloc(LN_C, 4), *fdb = calloc(LN_C, 4);
    weft_layernorm_forward(fo, fm, fs, fi, fw, fb, LN_N, LN_C);
    assert_true(rel_err_f32(fo, c.out, LN_N * LN_C) < 1e-5);
    weft_layernorm_backward(fdi, fdw, fdb, fR, fi, fw, fm, fs, LN_N, LN_C);
    assert_true(rel_err_f32(fdi, di, LN_N * LN_C) < 1e-4);
    assert_true(rel_err_f32(fdw, dw, LN_C) < 1e-5);
    free(c.inp); free(c.w); free(c.b); free(c.out); free(c.mean); free(c.rstd); free(c.R);
    free(di); free(dw); free(db);
    free(fi); free(fw); free(fb); free(fR); free(fo); free(fm); free(fs);
    free(fdi); free(fdw); free(fdb);
}

/* --- attention ----------------------------------------------------------- */

typedef struct {
    int B, T, C, NH;
    double *qkv, *out, *att, *R;
} at_ctx;

static double at_loss(void *p)
{
    at_ctx *c = p;
    weft_attention_forward_f64(c->out, c->att, c->qkv, c->B, c->T, c->C, c->NH);
    return dot(c->out, c->R, (size_t)c->B * c->T * c->C);
}

/* The textbook loops: scores, masked softmax, weighted sum of values. */
static void attention_ref(double *out, const double *qkv, int B, int T, int C, int NH)
{
    int hs = C / NH;
    double *p = malloc((size_t)T * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const double *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                double m = -INFINITY, s = 0;
                for (int j = 0; j <= t; j++) {
                    const double *k = qkv + ((size_t)b * T + j) * 3 * C + C + h * hs;
                    p[j] = 0;
                    for (int i = 0; i < hs; i++)
                        p[j] += q[i] * k[i] / sqrt(hs);
                    m = fmax(m, p[j]);
                }
                for (int j = 0; j <= t; j++)
                    s += (p[j] = exp(p[j] - m));
                double *o = out + ((size_t)b * T + t) * C + h * hs;
                for (int i = 0; i < hs; i++) {
                    o[i] = 0;
                    for (int j = 0; j <= t; j++)
                        o[i] += p[j] / s * qkv[((size_t)b * T + j) * 3 * C + 2 * C + h * hs + i];
                }
            }
    free(p);
}

/* Forward against the reference, backward against finite differences
 * (every stride-th qkv element), f32 against f64. */
static void check_attention(int B, int T, int C, int NH, size_t stride)
{
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = (size_t)B * NH * T * T;
    at_ctx c = {B, T, C, NH, rnd(nq, 1.5), filled(no, 0), filled(na, 0), rnd(no, 1)};
    at_loss(&c);
    double *ref = filled(no, 0);
    attention_ref(ref, c.qkv, B, T, C, NH);
    assert_true(rel_err(c.out, ref, no) < 1e-13);
    for (int bh = 0; bh < B * NH; bh++)   // saved probabilities: zero above the diagonal
        for (int t = 0; t < T; t++)
            for (int j = t + 1; j < T; j++)
                assert_true(c.att[((size_t)bh * T + t) * T + j] == 0.0);
    double *dq = filled(nq, G0), *datt = filled(na, 7);   // scratch starts dirty on purpose
    for (int k = 0; k < 2; k++)
        weft_attention_backward_f64(dq, datt, c.R, c.qkv, c.att, B, T, C, NH);
    unaccumulate(dq, nq);
    char what[64];
    snprintf(what, sizeof what, "attention dqkv T=%d", T);
    assert_true(fd_check(what, c.qkv, nq, dq, at_loss, &c, stride) < FD_TOL);
    // f32 against f64
    at_loss(&c);
    float *fq = to_f32(c.qkv, nq), *fR = to_f32(c.R, no), *fo = calloc(no, 4),
          *fa = calloc(na, 4), *fda = calloc(na, 4), *fdq = calloc(nq, 4);
    weft_attention_forward(fo, fa, fq, B, T, C, NH);
    assert_true(rel_err_f32(fo, c.out, no) < 1e-5);
    weft_attention_backward(fdq, fda, fR, fq, fa, B, T, C, NH);
    assert_true(rel_err_f32(fdq, dq, nq) < 1e-4);
    free(c.qkv); free(c.out); free(c.att); free(c.R); free(ref); free(dq); free(datt);
    free(fq); free(fR); free(fo); free(fa); free(fda); free(fdq);
}

static void test_attention_small(void **state)
{
    (void)state;
    check_attention(2, 5, 8, 2, 1);
}

/* T spans three row blocks of the blocked causal products (64, 64, 5). */
static void test_attention_blocked(void **state)
{
    (void)state;
    check_attention(1, 133, 8, 2, 7);
}

static void test_attention_causal(void **state)
{
    (void)state;
    enum { B = 2, T = 70, C = 8, NH = 2, CUT = 40 };
    float *qkv = malloc(B * T * 3 * C * 4), *o1 = malloc(B * T * C * 4), *o2 = malloc(B * T * C * 4);
    float *att = malloc((size_t)B * NH * T * T * 4);
    for (int i = 0; i < B * T * 3 * C; i++)
        qkv[i] = (float)urand();
    weft_attention_forward(o1, att, qkv, B, T, C, NH);
    for (int b = 0; b < B; b++)   // change every token from CUT on: q, k and v
        for (int i = CUT * 3 * C; i < T * 3 * C; i++)
            qkv[b * T * 3 * C + i] += 10.0f;
    weft_attention_forward(o2, att, qkv, B, T, C, NH);
    for (int b = 0; b < B; b++) {
        // earlier outputs are bitwise unchanged, later ones do change
        assert_memory_equal(o1 + b * T * C, o2 + b * T * C, CUT * C * 4);
        assert_memory_not_equal(o1 + (b * T + CUT) * C, o2 + (b * T + CUT) * C, C * 4);
    }
    free(qkv); free(o1); free(o2); free(att);
}

/* --- GELU, residual ------------------------------------------------------ */

enum { GN = 60 };
typedef struct {
    double *x, *out, *R;
} gl_ctx;

static double gl_loss(void *p)
{
    gl_ctx *c = p;
    weft_gelu_forward_f64(c->out, c->x, GN);
    return dot(c->out, c->R, GN);
}

static void test_gelu(void **state)
{
    (void)state;
    gl_ctx c = {rnd(GN, 5), filled(GN, 0), rnd(GN, 1)};
    gl_loss(&c);
    for (int i = 0; i < GN; i++) {
        double x = c.x[i];
        double r = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
        assert_true(fabs(c.out[i] - r) < 1e-14 * fmax(1, fabs(r)));
    }
    double *dx = filled(GN, G0);
    for (int k = 0; k < 2; k++)
        weft_gelu_backward_f64(dx, c.x, c.R, GN);
    unaccumulate(dx, GN);
    assert_true(fd_check("gelu dinp", c.x, GN, dx, gl_loss, &c, 1) < FD_TOL);
    float *fx = to_f32(c.x, GN), *fo = calloc(GN, 4), *fR = to_f32(c.R, GN), *fdx = calloc(GN, 4);
    weft_gelu_forward(fo, fx, GN);
    assert_true(rel_err_f32(fo, c.out, GN) < 1e-5);
    weft_gelu_backward(fdx, fx, fR, GN);
    assert_true(rel_err_f32(fdx, dx, GN) < 1e-5);
    free(c.x); free(c.out); free(c.R); free(dx); free(fx); free(fo); free(fR); free(fdx);
}

enum { RN = 20 };
typedef struct {
    double *a, *b, *out, *R;
} rs_ctx;

static double rs_loss(void *p)
{
    rs_ctx *c = p;
    weft_residual_forward_f64(c->out, c->a, c->b, RN);
    return dot(c->out, c->R, RN);
}

static void test_residual(void **state)
{
    (void)state;
    rs_ctx c = {rnd(RN, 1), rnd(RN, 1), filled(RN, 0), rnd(RN, 1)};
    rs_loss(&c);
    for (int i = 0; i < RN; i++)
        assert_true(c.out[i] == c.a[i] + c.b[i]);
    double *da = filled(RN, G0), *db = filled(RN, G0);
    for (int k = 0; k < 2; k++)
        weft_residual_backward_f64(da, db, c.R, RN);
    unaccumulate(da, RN);
    unaccumulate(db, RN);
    assert_true(fd_check("residual da", c.a, RN, da, rs_loss, &c, 1) < FD_TOL);
    assert_true(fd_check("residual db", c.b, RN, db, rs_loss, &c, 1) < FD_TOL);
    // in place (out == a) is allowed
    double a0 = c.a[3];
    weft_residual_forward_f64(c.a, c.a, c.b, RN);
    assert_true(c.a[3] == a0 + c.b[3]);
    free(c.a); free(c.b); free(c.out); free(c.R); free(da); free(db);
}

/* --- embedding ----------------------------------------------------------- */

enum { EB = 2, ET = 5, EC = 8, EV = 11, EMAXT = 7 };
static const int32_t etok[EB * ET] = {3, 0, 10, 3, 7, 7, 3, 1, 0, 10};   // repeats on purpose
typedef struct {
    double *wte, *wpe, *out, *R;
} em_ctx;

static double em_loss(void *p)
{
    em_ctx *c = p;
    weft_embedding_forward_f64(c->out, etok, c->wte, c->wpe, EB, ET, EC);
    return dot(c->out, c->R, EB * ET * EC);
}

static void test_embedding(void **state)
{
    (void)state;
    em_ctx c = {rnd(EV * EC, 1), rnd(EMAXT * EC, 1), filled(EB * ET * EC, 0), rnd(EB * ET * EC, 1)};
    em_loss(&c);
    for (int b = 0; b < EB; b++)
        for (int t = 0; t < ET; t++)
            for (int i = 0; i < EC; i++)
                assert_true(c.out[(b * ET + t) * EC + i] ==
                            c.wte[etok[b * ET + t] * EC + i] + c.wpe[t * EC + i]);
    double *dte = filled(EV * EC, G0), *dpe = filled(EMAXT * EC, G0);
    for (int k = 0; k < 2; k++)
        weft_embedding_backward_f64(dte, dpe, c.R, etok, EB, ET, EC);
    unaccumulate(dte, EV * EC);
    unaccumulate(dpe, EMAXT * EC);
    assert_true(fd_check("embedding dwte", c.wte, EV * EC, dte, em_loss, &c, 1) < FD_TOL);
    assert_true(fd_check("embedding dwpe", c.wpe, EMAXT * EC, dpe, em_loss, &c, 1) < FD_TOL);
    // rows of positions >= T get nothing
    for (int i = ET * EC; i < EMAXT * EC; i++)
        assert_true(dpe[i] == 0.0);
    free(c.wte); free(c.wpe); free(c.out); free(c.R); free(dte); free(dpe);
}

/* --- softmax + cross-entropy -------------------------------------------- */

enum { XN = 10, XV = 11 };
static const int32_t xtgt[XN] = {0, 10, 5, -1, 3, 3, 9, 1, -1, 2};
#define XDLOSS 0.37
typedef struct {
    double *logits, *losses;
} xe_ctx;

static double xe_loss(void *p)
{
    xe_ctx *c = p;
    weft_xent_forward_backward_f64(c->losses, NULL, c->logits, xtgt, XN, XV, XDLOSS);
    double s = 0;
    for (int n = 0; n < XN; n++)
        s += c->losses[n];
    return XDLOSS * s;   // dlogits is d(this)/dlogits
}

static void test_xent(void **state)
{
    (void)state;
    xe_ctx c = {rnd(XN * XV, 4), filled(XN, 0)};
    double *dl = filled(XN * XV, 99);
    double mean = weft_xent_forward_backward_f64(c.losses, dl, c.logits, xtgt, XN, XV, XDLOSS);
    double sum = 0;
    int counted = 0;
    for (int n = 0; n < XN; n++) {
        if (xtgt[n] < 0) {
            assert_true(c.losses[n] == 0.0);
            for (int v = 0; v < XV; v++)
                assert_true(dl[n * XV + v] == 0.0);
            continue;
        }
        long double s = 0;
        for (int v = 0; v < XV; v++)
            s += expl((long double)c.logits[n * XV + v]);
        double ref = (double)(logl(s) - c.logits[n * XV + xtgt[n]]);
        assert_true(fabs(c.losses[n] - ref) < 1e-13 * fmax(1, ref));
        sum += ref;
        counted++;
    }
    assert_true(fabs(mean - sum / counted) < 1e-13);
    assert_true(fd_check("xent dlogits", c.logits, XN * XV, dl, xe_loss, &c, 1) < FD_TOL);
    // dlogits may alias logits
    double *inplace = malloc(XN * XV * sizeof(double));
    memcpy(inplace, c.logits, XN * XV * sizeof(double));
    double mean2 = weft_xent_forward_backward_f64(NULL, inplace, inplace, xtgt, XN, XV, XDLOSS);
    assert_true(mean2 == mean);
    assert_true(rel_err(inplace, dl, XN * XV) < 1e-15);
    // f32 against f64
    float *fl = to_f32(c.logits, XN * XV), *flo = calloc(XN, 4), *fdl = calloc(XN * XV, 4);
    double fmean = weft_xent_forward_backward(flo, fdl, fl, xtgt, XN, XV, XDLOSS);
    assert_true(fabs(fmean - mean) < 1e-5 * mean);
    assert_true(rel_err_f32(fdl, dl, XN * XV) < 1e-5);
    free(c.logits); free(c.losses); free(dl); free(inplace); free(fl); free(flo); free(fdl);
}

static void test_xent_extreme(void **state)
{
    (void)state;
    enum { N = 3, V = 5 };
    float l32[N * V] = {1e4f, -1e4f, 0, 3, -3,  1e4f, -1e4f, 0, 3, -3,  -1e4f, -1e4f, -1e4f, -1e4f, -1e4f};
    double l64[N * V];
    for (int i = 0; i < N * V; i++)
        l64[i] = l32[i];
    const int32_t tg[N] = {0, 1, 2};
    float lo32[N], d32[N * V];
    double lo64[N], d64[N * V];
    double m32 = weft_xent_forward_backward(lo32, d32, l32, tg, N, V, 1.0);
    double m64 = weft_xent_forward_backward_f64(lo64, d64, l64, tg, N, V, 1.0);
    assert_true(isfinite(m32) && isfinite(m64));
    for (int i = 0; i < N * V; i++)
        assert_true(isfinite(d32[i]) && isfinite(d64[i]));
    assert_true(fabs(lo64[0]) < 1e-12);                 // certain and right: loss 0
    assert_true(fabs(lo64[1] - 2e4) < 1e-8);            // certain and wrong: the logit gap
    assert_true(fabs(lo64[2] - log(5.0)) < 1e-12);      // all equal: log V
    assert_true(fabs(lo32[1] - 2e4f) < 1e-2f);
    assert_true(fabs(d64[V + 0] - 1) < 1e-12 && fabs(d64[V + 1] + 1) < 1e-12);
    assert_true(fabs(d32[2 * V + 2] - (0.2f - 1)) < 1e-6f);
    assert_true(fabs(m64 - (2e4 + log(5.0)) / 3) < 1e-8);
    // a NaN logit gives a NaN loss (the trainer must see it), not a finite one
    l32[3] = NAN;
    assert_true(isnan(weft_xent_forward_backward(lo32, d32, l32, tg, 1, V, 1.0)));
    assert_true(isnan(weft_xent_forward_backward(lo32, NULL, l32, tg, 1, V, 1.0)));
}

/* The tiled cross-entropy (weft_xent_stats/grad) over rows much wider than
 * one vocabulary tile (1024) and not a multiple of it or of 8: a rising row
 * (every tile raises the max, so the running sum is rescaled each time), a
 * falling one, one with logits near 60, and an ignored row. f32 and f64
 * against a long-double reference; the row split in two column slices
 * ([0, V1), [V1, V), as two tensor-parallel ranks hold it) and combined
 * as parallel/tp.c does gives the whole row's statistics. */
static void test_xent_tiles(void **state)
{
    (void)state;
    enum { N = 4, V = 3001, V1 = 1300 };
    const int32_t tg[N] = {2999, 7, 1500, -1};
    double *l64 = rnd((size_t)N * V, 2);
    for (int v = 0; v < V; v++) {
        l64[v] += 0.01 * v;               // rising
        l64[V + v] -= 0.01 * v;           // falling
        l64[2 * V + v] += 60;             // large
    }
    float *l32 = to_f32(l64, (size_t)N * V);
    double ref_lse[N], mx[N], sum[N], xt[N], lse[N];
    for (int n = 0; n < N; n++) {
        long double s = 0;
        for (int v = 0; v < V; v++)
            s += expl((long double)l64[(size_t)n * V + v]);
        ref_lse[n] = (double)logl(s);
    }
    // f64 stats: tight; f32: the f32 tile sums' rounding only
    weft_xent_stats_f64(mx, sum, xt, l64, tg, N, V, 0);
    for (int n = 0; n < N; n++) {
        assert_true(fabs(mx[n] + log(sum[n]) - ref_lse[n]) < 1e-12 * fabs(ref_lse[n]));
        assert_true(xt[n] == (tg[n] >= 0 ? l64[(size_t)n * V + tg[n]] : 0.0));
    }
    weft_xent_stats(mx, sum, xt, l32, tg, N, V, 0);
    for (int n = 0; n < N; n++) {
        lse[n] = mx[n] + log(sum[n]);
        assert_true(fabs(lse[n] - ref_lse[n]) < 2e-6 * fmax(1, fabs(ref_lse[n])));
    }
    // the gradient against softmax - onehot in long double, from the f32 lse
    double *ref_d = malloc((size_t)N * V * sizeof(double));
    float *d32 = malloc((size_t)N * V * sizeof(float));
    for (int n = 0; n < N; n++)
        for (int v = 0; v < V; v++) {
            size_t i = (size_t)n * V + v;
            ref_d[i] = tg[n] < 0 ? 0.0 : (double)(0.5L * (expl((long double)l64[i] - ref_lse[n]) - (v == tg[n])));
        }
    weft_xent_grad(d32, l32, lse, tg, N, V, 0, 0.5);
    assert_true(rel_err_f32(d32, ref_d, (size_t)N * V) < 1e-5);
    for (int v = 0; v < V; v++)
        assert_true(d32[3 * V + v] == 0.0f);
    // in place gives the same bits
    weft_xent_grad(l32, l32, lse, tg, N, V, 0, 0.5);
    assert_memory_equal(l32, d32, (size_t)N * V * sizeof(float));
    // two column slices combined: max of maxima, sums rescaled to it
    double *a = malloc((size_t)N * V1 * sizeof(double)), *b = malloc((size_t)N * (V - V1) * sizeof(double));
    for (int n = 0; n < N; n++) {
        memcpy(a + (size_t)n * V1, l64 + (size_t)n * V, V1 * sizeof(double));
        memcpy(b + (size_t)n * (V - V1), l64 + (size_t)n * V + V1, (V - V1) * sizeof(double));
    }
    double ma[N], sa[N], xa[N], mb[N], sb[N], xb[N];
    weft_xent_stats_f64(ma, sa, xa, a, tg, N, V1, 0);
    weft_xent_stats_f64(mb, sb, xb, b, tg, N, V - V1, V1);
    for (int n = 0; n < N; n++) {
        double m = fmax(ma[n], mb[n]);
        double s = sa[n] * exp(ma[n] - m) + sb[n] * exp(mb[n] - m);
        assert_true(fabs(m + log(s) - ref_lse[n]) < 1e-12 * fabs(ref_lse[n]));
        assert_true(xa[n] + xb[n] == (tg[n] >= 0 ? l64[(size_t)n * V + tg[n]] : 0.0));
        assert_true(xa[n] == 0.0 || xb[n] == 0.0);   // one owner
    }
    free(l64); free(l32); free(ref_d); free(d32); free(a); free(b);
}

/* The f32 polynomial exp (fastmath.h) through GELU and softmax over a wide range,
 * in blocks long enough to take the vectorised path. */
static void test_f32_math(void **state)
{
    (void)state;
    enum { N = 4096 };
    float x[N], y[N];
    double worst = 0;
    for (int i = 0; i < N; i++)
        x[i] = -30.0f + 60.0f * (float)i / N;
    weft_gelu_forward(y, x, N);
    for (int i = 0; i < N; i++) {
        double r = 0.5 * x[i] * (1 + tanh(sqrt(2 / M_PI) * (x[i] + 0.044715 * (double)x[i] * x[i] * x[i])));
        worst = fmax(worst, fabs(y[i] - r) / fmax(1e-3, fabs(r)));
    }
    assert_true(worst < 2e-6);
    x[7] = NAN;
    weft_gelu_forward(y, x, N);
    assert_true(isnan(y[7]) && isfinite(y[8]));
    // softmax through exp: the causal row of a 1-head attention with huge
    // score gaps is still a distribution
    enum { T = 9, C = 8 };
    float qkv[T * 3 * C], out[T * C], att[T * T];
    for (int i = 0; i < T * 3 * C; i++)
        qkv[i] = (float)(i % 5) * 40.0f - 80.0f;
    weft_attention_forward(out, att, qkv, 1, T, C, 1);
    for (int t = 0; t < T; t++) {
        double s = 0;
        for (int j = 0; j < T; j++) {
            assert_true(att[t * T + j] >= 0 && isfinite(att[t * T + j]));
            s += att[t * T + j];
        }
        assert_true(fabs(s - 1) < 1e-6);
    }
}

/* --- RMSNorm ------------------------------------------------------------- */

enum { RM_N = 10, RM_C = 12 };   /* C: one vectorised block and a tail */
#define RM_EPS 1e-6
typedef struct {
    double *inp, *w, *out, *rstd, *R;
} rm_ctx;

static double rm_loss(void *p)
{
    rm_ctx *c = p;
    weft_rmsnorm_forward_f64(c->out, c->rstd, c->inp, c->w, RM_N, RM_C, RM_EPS);
    return dot(c->out, c->R, RM_N * RM_C);
}

static void test_rmsnorm(void **state)
{
    (void)state;
    rm_ctx c = {rnd(RM_N * RM_C, 2), rnd(RM_C, 1), filled(RM_N * RM_C, 0), filled(RM_N, 0),
                rnd(RM_N * RM_C, 1)};
    for (int i = 0; i < RM_C; i++)
        c.inp[i] += 50;   // a row far from zero mean: no centring in RMSNorm
    rm_loss(&c);
    double ref[RM_N * RM_C];
    for (int n = 0; n < RM_N; n++) {
        double ms = 0;
        for (int i = 0; i < RM_C; i++)
            ms += c.inp[n * RM_C + i] * c.inp[n * RM_C + i] / RM_C;
        double r = 1 / sqrt(ms + RM_EPS);
        assert_true(fabs(c.rstd[n] - r) < 1e-14 * r);
        for (int i = 0; i < RM_C; i++)
            ref[n * RM_C + i] = c.inp[n * RM_C + i] * r * c.w[i];
    }
    assert_true(rel_err(c.out, ref, RM_N * RM_C) < 1e-14);
    double *di = filled(RM_N * RM_C, G0), *dw = filled(RM_C, G0);
    for (int k = 0; k < 2; k++)
        weft_rmsnorm_backward_f64(di, dw, c.R, c.inp, c.w, c.rstd, RM_N, RM_C);
    unaccumulate(di, RM_N * RM_C);
    unaccumulate(dw, RM_C);
    assert_true(fd_check("rmsnorm dinp", c.inp, RM_N * RM_C, di, rm_loss, &c, 1) < FD_TOL);
    assert_true(fd_check("rmsnorm dweight", c.w, RM_C, dw, rm_loss, &c, 1) < FD_TOL);
    // f32 against f64 (forward and backward)
    rm_loss(&c);
    float *fi = to_f32(c.inp, RM_N * RM_C), *fw = to_f32(c.w, RM_C), *fR = to_f32(c.R, RM_N * RM_C);
    float *fo = calloc(RM_N * RM_C, 4), *fs = calloc(RM_N, 4);
    float *fdi = calloc(RM_N * RM_C, 4), *fdw = calloc(RM_C, 4);
    weft_rmsnorm_forward(fo, fs, fi, fw, RM_N, RM_C, RM_EPS);
    assert_true(rel_err_f32(fo, c.out, RM_N * RM_C) < 1e-5);
    assert_true(rel_err_f32(fs, c.rstd, RM_N) < 1e-5);
    weft_rmsnorm_backward(fdi, fdw, fR, fi, fw, fs, RM_N, RM_C);
    assert_true(rel_err_f32(fdi, di, RM_N * RM_C) < 1e-4);
    assert_true(rel_err_f32(fdw, dw, RM_C) < 1e-5);
    free(c.inp); free(c.w); free(c.out); free(c.rstd); free(c.R); free(di); free(dw);
    free(fi); free(fw); free(fR); free(fo); free(fs); free(fdi); free(fdw);
}

/* --- rotary position embedding ------------------------------------------- */

/* hs/2 = 10: a vectorised block of 8 and a tail in each half-head */
enum { RO_B = 2, RO_T = 7, RO_NH = 3, RO_HS = 20, RO_HALF = RO_HS / 2 };
enum { RO_N = RO_B * RO_T * RO_NH * RO_HS };
#define RO_THETA 10000.0

static void test_rope(void **state)
{
    (void)state;
    double cs[RO_T * RO_HALF], sn[RO_T * RO_HALF];
    weft_rope_table_f64(cs, sn, RO_T, RO_HS, RO_THETA);
    // the tables and the rotation against angles computed here from theta
    double *x = rnd(RO_N, 1), *y = malloc(RO_N * sizeof(double)), *ref = malloc(RO_N * sizeof(double));
    for (int t = 0; t < RO_T; t++)
        for (int i = 0; i < RO_HALF; i++) {
            double ang = t / pow(RO_THETA, (double)(2 * i) / RO_HS);
            assert_true(fabs(cs[t * RO_HALF + i] - cos(ang)) < 1e-15);
            assert_true(fabs(sn[t * RO_HALF + i] - sin(ang)) < 1e-15);
            for (int b = 0; b < RO_B; b++)
                for (int h = 0; h < RO_NH; h++) {
                    size_t o = ((size_t)(b * RO_T + t) * RO_NH + h) * RO_HS;
                    ref[o + i] = x[o + i] * cos(ang) - x[o + i + RO_HALF] * sin(ang);
                    ref[o + i + RO_HALF] = x[o + i + RO_HALF] * cos(ang) + x[o + i] * sin(ang);
                }
        }
    memcpy(y, x, RO_N * sizeof(double));
    weft_rope_forward_f64(y, cs, sn, RO_B, RO_T, RO_NH, RO_HS);
    assert_true(rel_err(y, ref, RO_N) < 1e-14);
    // backward is the transpose: <R, rope(x)> = <rope_back(R), x>, and it
    // overwrites (no G0 here: the one backward that does not accumulate)
    double *R = rnd(RO_N, 1), *dR = malloc(RO_N * sizeof(double));
    memcpy(dR, R, RO_N * sizeof(double));
    weft_rope_backward_f64(dR, cs, sn, RO_B, RO_T, RO_NH, RO_HS);
    double lhs = dot(R, y, RO_N), rhs = dot(dR, x, RO_N);
    assert_true(fabs(lhs - rhs) < 1e-13 * fmax(1, fabs(lhs)));
    // and its inverse: rope_back(rope(x)) = x
    weft_rope_backward_f64(y, cs, sn, RO_B, RO_T, RO_NH, RO_HS);
    assert_true(rel_err(y, x, RO_N) < 1e-15);
    // f32: the table is the f64 one rounded; rotations against f64
    float fcs[RO_T * RO_HALF], fsn[RO_T * RO_HALF];
    weft_rope_table(fcs, fsn, RO_T, RO_HS, RO_THETA);
    for (int i = 0; i < RO_T * RO_HALF; i++)
        assert_true(fcs[i] == (float)cs[i] && fsn[i] == (float)sn[i]);
    float *fy = to_f32(x, RO_N), *fdR = to_f32(R, RO_N);
    weft_rope_forward(fy, fcs, fsn, RO_B, RO_T, RO_NH, RO_HS);
    assert_true(rel_err_f32(fy, ref, RO_N) < 1e-6);
    weft_rope_backward(fdR, fcs, fsn, RO_B, RO_T, RO_NH, RO_HS);
    assert_true(rel_err_f32(fdR, dR, RO_N) < 1e-6);
    free(x); free(y); free(ref); free(R); free(dR); free(fy); free(fdR);
}

/* Long positions and Llama 3's base: the table stays accurate where the
 * angle is thousands of radians (computed in double before rounding). */
static void test_rope_table_long(void **state)
{
    (void)state;
    enum { T = 8192, HS = 64, HALF = HS / 2 };
    float *c = malloc((size_t)T * HALF * 4), *s = malloc((size_t)T * HALF * 4);
    weft_rope_table(c, s, T, HS, 500000.0);
    double worst = 0;
    for (int t = T - 3; t < T; t++)
        for (int i = 0; i < HALF; i++) {
            long double ang = (long double)t * powl(500000.0L, -2.0L * i / HS);
            worst = fmax(worst, fabs(c[t * HALF + i] - (double)cosl(ang)));
            worst = fmax(worst, fabs(s[t * HALF + i] - (double)sinl(ang)));
        }
    assert_true(worst < 1e-7);   // f32 rounding of the value only
    assert_true(c[0] == 1.0f && s[0] == 0.0f);   // position 0 does not turn
    free(c); free(s);
}

/* --- SwiGLU -------------------------------------------------------------- */

enum { SG_N = 60 };
typedef struct {
    double *gate, *up, *out, *R;
} sg_ctx;

static double sg_loss(void *p)
{
    sg_ctx *c = p;
    weft_swiglu_forward_f64(c->out, c->gate, c->up, SG_N);
    return dot(c->out, c->R, SG_N);
}

static void test_swiglu(void **state)
{
    (void)state;
    sg_ctx c = {rnd(SG_N, 6), rnd(SG_N, 2), filled(SG_N, 0), rnd(SG_N, 1)};
    sg_loss(&c);
    for (int i = 0; i < SG_N; i++) {
        double r = c.gate[i] / (1 + exp(-c.gate[i])) * c.up[i];
        assert_true(fabs(c.out[i] - r) < 1e-14 * fmax(1, fabs(r)));
    }
    double *dg = filled(SG_N, G0), *du = filled(SG_N, G0);
    for (int k = 0; k < 2; k++)
        weft_swiglu_backward_f64(dg, du, c.gate, c.up, c.R, SG_N);
    unaccumulate(dg, SG_N);
    unaccumulate(du, SG_N);
    assert_true(fd_check("swiglu dgate", c.gate, SG_N, dg, sg_loss, &c, 1) < FD_TOL);
    assert_true(fd_check("swiglu dup", c.up, SG_N, du, sg_loss, &c, 1) < FD_TOL);
    // f32 against f64
    float *fg = to_f32(c.gate, SG_N), *fu = to_f32(c.up, SG_N), *fR = to_f32(c.R, SG_N);
    float *fo = calloc(SG_N, 4), *fdg = calloc(SG_N, 4), *fdu = calloc(SG_N, 4);
    weft_swiglu_forward(fo, fg, fu, SG_N);
    assert_true(rel_err_f32(fo, c.out, SG_N) < 1e-5);
    weft_swiglu_backward(fdg, fdu, fg, fu, fR, SG_N);
    assert_true(rel_err_f32(fdg, dg, SG_N) < 1e-5);
    assert_true(rel_err_f32(fdu, du, SG_N) < 1e-5);
    // f32 far out on both sides (R_EXP's clamp), in a vectorised block:
    // silu(x) -> x for x >> 0, -> 0 (not NaN) for x << 0; a NaN stays NaN
    float xg[8] = {-1e4f, -100, -88, -20, 20, 88, 100, 1e4f}, one[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    float xo[8], xdg[8] = {0}, xdu[8] = {0};
    weft_swiglu_forward(xo, xg, one, 8);
    weft_swiglu_backward(xdg, xdu, xg, one, one, 8);
    for (int i = 0; i < 8; i++) {
        double r = xg[i] / (1 + exp(-(double)xg[i]));
        assert_true(fabs(xo[i] - r) <= 1e-6 * fmax(1, fabs(r)));
        assert_true(isfinite(xdg[i]) && fabs(xdg[i] - (xg[i] > 0)) < 1e-6);
    }
    xg[3] = NAN;
    weft_swiglu_forward(xo, xg, one, 8);
    assert_true(isnan(xo[3]) && isfinite(xo[4]));
    free(c.gate); free(c.up); free(c.out); free(c.R); free(dg); free(du);
    free(fg); free(fu); free(fR); free(fo); free(fdg); free(fdu);
}

/* --- grouped-query attention --------------------------------------------- */

typedef struct {
    int B, T, NH, NKV, hs;
    double *q, *k, *v, *out, *att, *R;
} gq_ctx;

static double gq_loss(void *p)
{
    gq_ctx *c = p;
    weft_gqa_attention_forward_f64(c->out, c->att, c->q, c->k, c->v, c->B, c->T, c->NH, c->NKV,
                                   c->hs);
    return dot(c->out, c->R, (size_t)c->B * c->T * c->NH * c->hs);
}

/* The textbook loops, with the head mapping written out: query head h
 * attends with key/value head h / (NH / NKV). */
static void gqa_ref(double *out, const double *q, const double *k, const double *v, int B, int T,
                    int NH, int NKV, int hs)
{
    int Cq = NH * hs, Ckv = NKV * hs;
    double *p = malloc((size_t)T * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int kh = h / (NH / NKV);
            for (int t = 0; t < T; t++) {
                const double *qt = q + ((size_t)b * T + t) * Cq + h * hs;
                double m = -INFINITY, s = 0;
                for (int j = 0; j <= t; j++) {
                    const double *kj = k + ((size_t)b * T + j) * Ckv + kh * hs;
                    p[j] = 0;
                    for (int i = 0; i < hs; i++)
                        p[j] += qt[i] * kj[i] / sqrt(hs);
                    m = fmax(m, p[j]);
                }
                for (int j = 0; j <= t; j++)
                    s += (p[j] = exp(p[j] - m));
                double *o = out + ((size_t)b * T + t) * Cq + h * hs;
                for (int i = 0; i < hs; i++) {
                    o[i] = 0;
                    for (int j = 0; j <= t; j++)
                        o[i] += p[j] / s * v[((size_t)b * T + j) * Ckv + kh * hs + i];
                }
            }
        }
    free(p);
}

/* Forward against the reference, backward against finite differences
 * (every stride-th element of q, k, v), f32 against f64. */
static void check_gqa(int B, int T, int NH, int NKV, int hs, size_t stride)
{
    size_t nq = (size_t)B * T * NH * hs, nkv = (size_t)B * T * NKV * hs;
    size_t na = (size_t)B * NH * T * T;
    gq_ctx c = {B, T, NH, NKV, hs, rnd(nq, 1.5), rnd(nkv, 1.5), rnd(nkv, 1.5), filled(nq, 0),
                filled(na, 0), rnd(nq, 1)};
    gq_loss(&c);
    double *ref = filled(nq, 0);
    gqa_ref(ref, c.q, c.k, c.v, B, T, NH, NKV, hs);
    assert_true(rel_err(c.out, ref, nq) < 1e-13);
    for (int bh = 0; bh < B * NH; bh++)   // saved probabilities: zero above the diagonal
        for (int t = 0; t < T; t++)
            for (int j = t + 1; j < T; j++)
                assert_true(c.att[((size_t)bh * T + t) * T + j] == 0.0);
    double *dq = filled(nq, G0), *dk = filled(nkv, G0), *dv = filled(nkv, G0);
    double *datt = filled(na, 7);   // scratch starts dirty on purpose
    for (int r = 0; r < 2; r++)
        weft_gqa_attention_backward_f64(dq, dk, dv, datt, c.R, c.q, c.k, c.v, c.att, B, T, NH, NKV,
                                        hs);
    unaccumulate(dq, nq);
    unaccumulate(dk, nkv);
    unaccumulate(dv, nkv);
    char what[64];
    snprintf(what, sizeof what, "gqa dq T=%d NH=%d NKV=%d", T, NH, NKV);
    assert_true(fd_check(what, c.q, nq, dq, gq_loss, &c, stride) < FD_TOL);
    snprintf(what, sizeof what, "gqa dk T=%d NH=%d NKV=%d", T, NH, NKV);
    assert_true(fd_check(what, c.k, nkv, dk, gq_loss, &c, stride) < FD_TOL);
    snprintf(what, sizeof what, "gqa dv T=%d NH=%d NKV=%d", T, NH, NKV);
    assert_true(fd_check(what, c.v, nkv, dv, gq_loss, &c, stride) < FD_TOL);
    // f32 against f64
    gq_loss(&c);
    float *fq = to_f32(c.q, nq), *fk = to_f32(c.k, nkv), *fv = to_f32(c.v, nkv),
          *fR = to_f32(c.R, nq), *fo = calloc(nq, 4), *fa = calloc(na, 4), *fda = calloc(na, 4),
          *fdq = calloc(nq, 4), *fdk = calloc(nkv, 4), *fdv = calloc(nkv, 4);
    weft_gqa_attention_forward(fo, fa, fq, fk, fv, B, T, NH, NKV, hs);
    assert_true(rel_err_f32(fo, c.out, nq) < 1e-5);
    weft_gqa_attention_backward(fdq, fdk, fdv, fda, fR, fq, fk, fv, fa, B, T, NH, NKV, hs);
    assert_true(rel_err_f32(fdq, dq, nq) < 1e-4);
    assert_true(rel_err_f32(fdk, dk, nkv) < 1e-4);
    assert_true(rel_err_f32(fdv, dv, nkv) < 1e-4);
    free(c.q); free(c.k); free(c.v); free(c.out); free(c.att); free(c.R); free(ref);
    free(dq); free(dk); free(dv); free(datt);
    free(fq); free(fk); free(fv); free(fR); free(fo); free(fa); free(fda); free(fdq); free(fdk);
    free(fdv);
}

static void test_gqa_small(void **state)
{
    (void)state;
    check_gqa(2, 5, 4, 2, 4, 1);   // two query heads per key/value head
    check_gqa(2, 5, 4, 1, 4, 1);   // multi-query
    check_gqa(2, 5, 4, 4, 4, 1);   // multi-head
}

/* T spans three row blocks of the blocked causal products (64, 64, 5). */
static void test_gqa_blocked(void **state)
{
    (void)state;
    check_gqa(1, 133, 4, 2, 4, 7);
    check_gqa(2, 133, 4, 1, 4, 11);
}

/* With NKV = NH, grouped-query attention is the fused-qkv op on the same
 * q, k, v packed as qkv (B, T, 3C): forward, saved probabilities and
 * gradients agree. */
/* Decoding over a key/value cache: new queries at positions pos0.. against
 * the cache of every position so far equal those rows of the f64 full
 * attention (the textbook loops), for a prefill of the whole prefix, a
 * chunk after a prefix, one token at a time, and chunks longer than the
 * kernel's row block; f32 against f64. */
static void check_decode(int T, int NH, int NKV, int hs, int pos0, int n)
{
    size_t Cq = (size_t)NH * hs, Ckv = (size_t)NKV * hs;
    double *q = rnd(T * Cq, 1.5), *k = rnd(T * Ckv, 1.5), *v = rnd(T * Ckv, 1.5);
    double *ref = filled(T * Cq, 0), *out = filled(n * Cq, 9);
    double *scratch = filled((size_t)WEFT_ATT_DECODE_ROWS * (pos0 + n), 7);   // dirty on purpose
    gqa_ref(ref, q, k, v, 1, T, NH, NKV, hs);
    weft_attention_decode_f64(out, scratch, q + pos0 * Cq, k, v, n, pos0, NH, NKV, hs);
    double err = rel_err(out, ref + pos0 * Cq, n * Cq);
    if (!(err < 1e-13))
        print_error("decode f64 T=%d NH=%d NKV=%d pos0=%d n=%d: relative error %g\n", T, NH, NKV, pos0, n, err);
    assert_true(err < 1e-13);
    float *fq = to_f32(q + pos0 * Cq, n * Cq), *fk = to_f32(k, T * Ckv), *fv = to_f32(v, T * Ckv);
    float *fo = calloc(n * Cq, 4), *fs = calloc((size_t)WEFT_ATT_DECODE_ROWS * (pos0 + n), 4);
    weft_attention_decode(fo, fs, fq, fk, fv, n, pos0, NH, NKV, hs);
    assert_true(rel_err_f32(fo, ref + pos0 * Cq, n * Cq) < 1e-5);
    free(q); free(k); free(v); free(ref); free(out); free(scratch);
    free(fq); free(fk); free(fv); free(fo); free(fs);
}

static void test_attention_decode(void **state)
{
    (void)state;
    check_decode(9, 4, 2, 4, 0, 9);     // prefill of the whole prefix, GQA
    check_decode(9, 4, 2, 4, 8, 1);     // the last token alone
    check_decode(9, 4, 1, 4, 3, 4);     // a chunk after a prefix, multi-query
    check_decode(9, 4, 4, 4, 5, 2);     // multi-head (GPT-2)
    check_decode(150, 2, 1, 8, 0, 150); // rows in three blocks (64, 64, 22)
    check_decode(150, 2, 2, 8, 70, 80); // blocks after a prefix
    for (int p = 0; p < 12; p++)        // every position one at a time
        check_decode(12, 2, 1, 6, p, 1);
}

static void test_gqa_is_mha(void **state)
{
    (void)state;
    enum { B = 2, T = 70, NH = 2, HS = 4, C = NH * HS };
    size_t n = (size_t)B * T * C, na = (size_t)B * NH * T * T;
    double *q = rnd(n, 1.5), *k = rnd(n, 1.5), *v = rnd(n, 1.5), *dout = rnd(n, 1);
    double *qkv = malloc(3 * n * sizeof(double));
    for (size_t r = 0; r < (size_t)B * T; r++) {
        memcpy(qkv + r * 3 * C, q + r * C, C * sizeof(double));
        memcpy(qkv + r * 3 * C + C, k + r * C, C * sizeof(double));
        memcpy(qkv + r * 3 * C + 2 * C, v + r * C, C * sizeof(double));
    }
    double *o1 = filled(n, 0), *a1 = filled(na, 0), *o2 = filled(n, 0), *a2 = filled(na, 0);
    weft_gqa_attention_forward_f64(o1, a1, q, k, v, B, T, NH, NH, HS);
    weft_attention_forward_f64(o2, a2, qkv, B, T, C, NH);
    assert_true(rel_err(o1, o2, n) < 1e-14);
    assert_true(rel_err(a1, a2, na) < 1e-14);
    double *dq = filled(n, G0), *dk = filled(n, G0), *dv = filled(n, G0), *dqkv = filled(3 * n, G0);
    double *datt = filled(na, 0);
    weft_gqa_attention_backward_f64(dq, dk, dv, datt, dout, q, k, v, a1, B, T, NH, NH, HS);
    weft_attention_backward_f64(dqkv, datt, dout, qkv, a2, B, T, C, NH);
    double worst = 0;
    for (size_t r = 0; r < (size_t)B * T; r++) {
        worst = fmax(worst, rel_err(dq + r * C, dqkv + r * 3 * C, C));
        worst = fmax(worst, rel_err(dk + r * C, dqkv + r * 3 * C + C, C));
        worst = fmax(worst, rel_err(dv + r * C, dqkv + r * 3 * C + 2 * C, C));
    }
    assert_true(worst < 1e-13);
    free(q); free(k); free(v); free(dout); free(qkv); free(o1); free(a1); free(o2); free(a2);
    free(dq); free(dk); free(dv); free(dqkv); free(datt);
}

/* --- optimizer, schedule, clipping -------------------------------------- */

static void test_adamw(void **state)
{
    (void)state;
    // one step by hand: g = 0.5 * 2 = 1; m = 0.1; v = 0.001; mhat = vhat = 1;
    // p = 1 - 0.1 * (1 / (1 + 1e-8) + 0.01 * 1)
    double p = 1, g = 0.5, m = 0, v = 0;
    weft_adamw_update_f64(&p, &g, &m, &v, 1, 0.1, 0.9, 0.999, 1e-8, 0.01, 1, 2.0);
    assert_true(fabs(m - 0.1) < 1e-15 && fabs(v - 0.001) < 1e-15);
    assert_true(fabs(p - (1 - 0.1 * (1 / (1 + 1e-8) + 0.01))) < 1e-15);
    // second step, t = 2, no grad_scale, written out from the definition
    double g2 = -0.3, p1 = p;
    weft_adamw_update_f64(&p, &g2, &m, &v, 1, 0.1, 0.9, 0.999, 1e-8, 0.01, 2, 1.0);
    double m2 = 0.9 * 0.1 + 0.1 * -0.3, v2 = 0.999 * 0.001 + 0.001 * 0.09;
    double mh = m2 / (1 - 0.81), vh = v2 / (1 - 0.999 * 0.999);
    assert_true(fabs(p - (p1 - 0.1 * (mh / (sqrt(vh) + 1e-8) + 0.01 * p1))) < 1e-14);
    // f32 matches over a vector
    float fp[4] = {1, -2, 0.5f, 3}, fg[4] = {0.5f, -1, 0.25f, 0}, fm[4] = {0}, fv[4] = {0};
    double dp[4] = {1, -2, 0.5, 3}, dg[4] = {0.5, -1, 0.25, 0}, dm[4] = {0}, dv[4] = {0};
    weft_adamw_update(fp, fg, fm, fv, 4, 1e-2, 0.9, 0.95, 1e-8, 0.1, 1, 0.5);
    weft_adamw_update_f64(dp, dg, dm, dv, 4, 1e-2, 0.9, 0.95, 1e-8, 0.1, 1, 0.5);
    assert_true(rel_err_f32(fp, dp, 4) < 1e-6);
    assert_true(fabs(dp[3] - 3 * (1 - 1e-2 * 0.1)) < 1e-15);   // zero grad: decay only
}

static void test_lr_schedule(void **state)
{
    (void)state;
    const double mx = 1e-3, mn = 1e-4;
    // warm-up (warmup 10): (step + 1) / warmup of max_lr, max_lr at step 9
    assert_true(fabs(weft_lr_at(0, mx, mn, 10, 110) - 1e-4) < 1e-15);
    assert_true(fabs(weft_lr_at(4, mx, mn, 10, 110) - 5e-4) < 1e-15);
    assert_true(fabs(weft_lr_at(9, mx, mn, 10, 110) - mx) < 1e-15);
    // cosine: max at its start, halfway between max and min in the middle, min at the end
    assert_true(fabs(weft_lr_at(10, mx, mn, 10, 110) - mx) < 1e-15);
    assert_true(fabs(weft_lr_at(60, mx, mn, 10, 110) - (mx + mn) / 2) < 1e-15);
    assert_true(fabs(weft_lr_at(35, mx, mn, 10, 110) - (mn + (mx - mn) * 0.5 * (1 + cos(M_PI / 4)))) < 1e-15);
    assert_true(fabs(weft_lr_at(110, mx, mn, 10, 110) - mn) < 1e-15);
    assert_true(fabs(weft_lr_at(500, mx, mn, 10, 110) - mn) < 1e-15);
    // monotone non-increasing after warm-up
    for (int s = 10; s < 120; s++)
        assert_true(weft_lr_at(s + 1, mx, mn, 10, 110) <= weft_lr_at(s, mx, mn, 10, 110));
    // no warm-up
    assert_true(fabs(weft_lr_at(0, mx, mn, 0, 100) - mx) < 1e-15);
}

static void test_clip_and_sumsq(void **state)
{
    (void)state;
    assert_true(weft_clip_scale(0.5, 1.0) == 1.0);
    assert_true(weft_clip_scale(5.0, 0.0) == 1.0);   // clipping off
    double s = weft_clip_scale(4.0, 1.0);
    assert_true(fabs(s - 0.25) < 1e-6 && 4.0 * s <= 1.0);
    float x[1001];
    double ref = 0;
    for (int i = 0; i < 1001; i++) {
        x[i] = (float)urand();
        ref += (double)x[i] * x[i];
    }
    assert_true(fabs(weft_sumsq(x, 1001) - ref) < 1e-12 * ref);
    double y[3] = {3, 4, 12};
    assert_true(weft_sumsq_f64(y, 3) == 169.0);
    assert_true(weft_sumsq(x, 0) == 0.0);
}

static void test_sgemm_rate(void **state)
{
    (void)state;
    double r = weft_sgemm_rate(64, 64, 64, 0.01);
    assert_true(r > 1e6 && isfinite(r));
    r = weft_matmul_rate(64, 64, 64, 0.01);
    assert_true(r > 1e6 && isfinite(r));
}

/* The checker must fail on a wrong gradient, or every test above is empty. */
static void test_checker_catches_errors(void **state)
{
    (void)state;
    mm_ctx c = {rnd(MM_N * MM_C, 1), rnd(MM_OC * MM_C, 1), rnd(MM_OC, 1),
                filled(MM_N * MM_OC, 0), rnd(MM_N * MM_OC, 1)};
    double *dw = filled(MM_OC * MM_C, 0);
    weft_matmul_backward_f64(NULL, dw, NULL, c.R, c.inp, c.w, MM_N, MM_C, MM_OC);
    dw[5] *= 1.0001;   // one element off by 1e-4
    assert_true(fd_check("(expected failure)", c.w, MM_OC * MM_C, dw, mm_loss, &c, 1) > FD_TOL);
    free(c.inp); free(c.w); free(c.bias); free(c.out); free(c.R); free(dw);
}

/* The same for the Llama ops' checks: a RMSNorm gradient that forgets that
 * rstd depends on the input, a GQA key gradient off by 1e-4 in one element,
 * and a rotary backward that turns forward instead of back. */
static void test_checker_catches_llama_errors(void **state)
{
    (void)state;
    rm_ctx c = {rnd(RM_N * RM_C, 2), rnd(RM_C, 1), filled(RM_N * RM_C, 0), filled(RM_N, 0),
                rnd(RM_N * RM_C, 1)};
    rm_loss(&c);
    double *di = filled(RM_N * RM_C, 0);
    for (int n = 0; n < RM_N; n++)   // w * dy * rstd: rstd taken as a constant
        for (int i = 0; i < RM_C; i++)
            di[n * RM_C + i] = c.w[i] * c.R[n * RM_C + i] * c.rstd[n];
    assert_true(fd_check("(expected failure)", c.inp, RM_N * RM_C, di, rm_loss, &c, 1) > FD_TOL);
    free(c.inp); free(c.w); free(c.out); free(c.rstd); free(c.R); free(di);

    enum { B = 1, T = 6, NH = 4, NKV = 2, HS = 4 };
    size_t nq = B * T * NH * HS, nkv = B * T * NKV * HS, na = B * NH * T * T;
    gq_ctx g = {B, T, NH, NKV, HS, rnd(nq, 1.5), rnd(nkv, 1.5), rnd(nkv, 1.5), filled(nq, 0),
                filled(na, 0), rnd(nq, 1)};
    gq_loss(&g);
    double *dq = filled(nq, 0), *dk = filled(nkv, 0), *dv = filled(nkv, 0), *datt = filled(na, 0);
    weft_gqa_attention_backward_f64(dq, dk, dv, datt, g.R, g.q, g.k, g.v, g.att, B, T, NH, NKV, HS);
    dk[5] *= 1.0001;
    assert_true(fd_check("(expected failure)", g.k, nkv, dk, gq_loss, &g, 1) > FD_TOL);
    free(g.q); free(g.k); free(g.v); free(g.out); free(g.att); free(g.R);
    free(dq); free(dk); free(dv); free(datt);

    double cs[RO_T * RO_HALF], sn[RO_T * RO_HALF];
    weft_rope_table_f64(cs, sn, RO_T, RO_HS, RO_THETA);
    double *x = rnd(RO_N, 1), *y = malloc(RO_N * sizeof(double)), *R = rnd(RO_N, 1);
    memcpy(y, x, RO_N * sizeof(double));
    weft_rope_forward_f64(y, cs, sn, RO_B, RO_T, RO_NH, RO_HS);
    double lhs = dot(R, y, RO_N);                                 // <R, rope(x)>
    weft_rope_forward_f64(R, cs, sn, RO_B, RO_T, RO_NH, RO_HS);   // the wrong "backward"
    assert_true(fabs(lhs - dot(R, x, RO_N)) > 1e-3 * fmax(1, fabs(lhs)));
    free(x); free(R); free(y);
}

int main(void)
{
    weft_kernels_init(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_matmul_f32),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_attention_small),
        cmocka_unit_test(test_attention_blocked),
        cmocka_unit_test(test_attention_causal),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_residual),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_xent),
        cmocka_unit_test(test_xent_extreme),
        cmocka_unit_test(test_xent_tiles),
        cmocka_unit_test(test_f32_math),
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_lr_schedule),
        cmocka_unit_test(test_clip_and_sumsq),
        cmocka_unit_test(test_sgemm_rate),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_rope_table_long),
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_gqa_small),
        cmocka_unit_test(test_gqa_blocked),
        cmocka_unit_test(test_gqa_is_mha),
        cmocka_unit_test(test_attention_decode),
        cmocka_unit_test(test_checker_catches_errors),
        cmocka_unit_test(test_checker_catches_llama_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
