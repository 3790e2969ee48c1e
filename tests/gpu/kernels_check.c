/*
 * kernels_check.c -- every CUDA kernel of libweft-cuda.so (kernels/cuda/)
 * against the CPU's f64 kernel (kernels/kernels.h) on the same inputs, run
 * by tests/gpu/run.sh on a machine with a GPU. TAP on stdout.
 *
 * Inputs are drawn in double and rounded to float, so both sides see the
 * same numbers; the reference then computes in double. Sizes include the
 * awkward ones: T not a multiple of the attention's 64-row blocks, C not a
 * multiple of 64, the GPT-2 vocabulary (50257). Backward ops start from
 * random gradients, checking that they accumulate. The ops whose
 * determinism issue 20 asks for (embedding, attention, norms' backward)
 * also run twice and must agree bit for bit.
 *
 * Tolerances (|got - want| <= atol + rtol |want|), per kind of op:
 *   element-wise f32                  rtol 1e-5, atol 1e-6
 *   reductions over a row (norms, matmul K <= 768, attention, xent)
 *                                     rtol 1e-4, atol 1e-5 (matmul: TF32 is
 *                                     not enabled: CUBLAS_COMPUTE_32F)
 *   bf16 matmul (FAST_16BF)           rtol 2e-2, atol 2e-2 (inputs of
 *                                     magnitude <= 1, K <= 200)
 *
 *   kernels_check [LIBDIR]   LIBDIR holds libweft-cuda.so (default build/lib)
 */
#include "kernels/cuda/cuda_ops.h"
#include "kernels/kernels.h"

#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const weft_cuda_ops *K;
static weft_cuda_ctx *ctx;
static int tests, failed;
static unsigned seed = 12345;

static void tap(int pass, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s %d - ", pass ? "ok" : "not ok", ++tests);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    failed += !pass;
    fflush(stdout);
}

static double uniform(void)
{
    seed = seed * 1664525u + 1013904223u;
    return (double)(seed >> 8) / (double)(1u << 24) * 2.0 - 1.0;
}

/* n values in [-scale, scale], each exactly a float */
static double *rnd(size_t n, double scale)
{
    double *h = malloc((n ? n : 1) * sizeof *h);
    for (size_t i = 0; i < n; i++)
        h[i] = (double)(float)(uniform() * scale);
    return h;
}

static void *dmalloc(size_t bytes)
{
    void *d = NULL;
    if (cudaMalloc(&d, bytes ? bytes : 1) != cudaSuccess) {
        printf("Bail out! cudaMalloc(%zu) failed\n", bytes);
        exit(1);
    }
    return d;
}

static float *up(const double *h, size_t n)
{
    float *f = malloc((n ? n : 1) * sizeof *f), *d = dmalloc(n * sizeof *f);
    for (size_t i = 0; i < n; i++)
        f[i] = (float)h[i];
    cudaMemcpy(d, f, n * sizeof *f, cudaMemcpyHostToDevice);
    free(f);
    return d;
}

static int32_t *up_i32(const int32_t *h, size_t n)
{
    int32_t *d = dmalloc(n * sizeof *d);
    cudaMemcpy(d, h, n * sizeof *d, cudaMemcpyHostToDevice);
    return d;
}

/* The device array back as doubles (waits for the work before it). */
static double *down(const float *d, size_t n)
{
    float *f = malloc((n ? n : 1) * sizeof *f);
    double *h = malloc((n ? n : 1) * sizeof *h);
    cudaError_t e = cudaMemcpy(f, d, n * sizeof *f, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) {
        printf("Bail out! copying back: %s\n", cudaGetErrorString(e));
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        h[i] = f[i];
    free(f);
    return h;
}

static int op_ok(int rc, const char *what)
{
    if (rc)
        tap(0, "%s: status %d: %s", what, rc, K->ctx_error(ctx));
    return rc == 0;
}

/* got (device, n floats) against want; one TAP line. */
static void expect(const char *what, const float *got_d, const double *want, size_t n, double rtol, double atol)
{
    double *got = down(got_d, n), worst = 0;
    size_t bad = n;
    for (size_t i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]), lim = atol + rtol * fabs(want[i]);
        if (!(err <= lim) && bad == n)
            bad = i;
        if (err > worst)
            worst = err;
    }
    if (bad == n)
        tap(1, "%s (%zu values, max error %.2e)", what, n, worst);
    else
        tap(0, "%s: element %zu is %.9g, want %.9g (tolerance %.1e + %.1e rel)", what, bad, got[bad], want[bad], atol,
            rtol);
    free(got);
}

static void expect_same(const char *what, const float *a_d, const float *b_d, size_t n)
{
    double *a = down(a_d, n), *b = down(b_d, n);
    size_t i = 0;
    while (i < n && memcmp(&a[i], &b[i], sizeof a[i]) == 0)
        i++;
    tap(i == n, "%s: two runs bitwise equal%s", what, i == n ? "" : " (they differ)");
    free(a);
    free(b);
}

static void check_matmul(int N, int C, int OC, int bf16)
{
    double *inp = rnd((size_t)N * C, 1), *w = rnd((size_t)OC * C, 1), *b = rnd(OC, 1), *dout = rnd((size_t)N * OC, 1);
    double *out = malloc((size_t)N * OC * sizeof *out), *dinp = rnd((size_t)N * C, 1), *dw = rnd((size_t)OC * C, 1),
           *db = rnd(OC, 1);
    float *d_inp = up(inp, (size_t)N * C), *d_w = up(w, (size_t)OC * C), *d_b = up(b, OC),
          *d_dout = up(dout, (size_t)N * OC), *d_out = dmalloc((size_t)N * OC * 4), *d_dinp = up(dinp, (size_t)N * C),
          *d_dw = up(dw, (size_t)OC * C), *d_db = up(db, OC);
    weft_matmul_forward_f64(out, inp, w, b, N, C, OC);
    weft_matmul_backward_f64(dinp, dw, db, dout, inp, w, N, C, OC);
    K->ctx_set_bf16(ctx, bf16);
    double rt = bf16 ? 2e-2 : 1e-4, at = bf16 ? 2e-2 : 1e-5;
    char what[128];
    snprintf(what, sizeof what, "matmul %s N %d C %d OC %d", bf16 ? "bf16" : "f32", N, C, OC);
    if (op_ok(K->matmul_forward(ctx, d_out, d_inp, d_w, d_b, N, C, OC), what))
        expect(what, d_out, out, (size_t)N * OC, rt, at);
    strcat(what, " backward");
    if (op_ok(K->matmul_backward(ctx, d_dinp, d_dw, d_db, d_dout, d_inp, d_w, N, C, OC), what)) {
        expect(what, d_dinp, dinp, (size_t)N * C, rt, at);
        expect(what, d_dw, dw, (size_t)OC * C, rt, at);
        expect(what, d_db, db, OC, 1e-4, 1e-5); /* bias gradient: f32 sums whatever the precision */
    }
    K->ctx_set_bf16(ctx, 0);
    free(inp), free(w), free(b), free(dout), free(out), free(dinp), free(dw), free(db);
    cudaFree(d_inp), cudaFree(d_w), cudaFree(d_b), cudaFree(d_dout), cudaFree(d_out), cudaFree(d_dinp), cudaFree(d_dw),
        cudaFree(d_db);
}

static void check_layernorm(int N, int C)
{
    size_t nc = (size_t)N * C;
    double *x = rnd(nc, 2), *w = rnd(C, 1), *b = rnd(C, 1), *dy = rnd(nc, 1), *out = malloc(nc * 8), *mean = malloc(N * 8),
           *rstd = malloc(N * 8), *dx = rnd(nc, 1), *dw = rnd(C, 1), *db = rnd(C, 1);
    for (size_t i = 0; i < nc; i++) /* an offset much larger than the spread: the centred variance matters */
        x[i] = (double)(float)(x[i] + 10.0);
    float *d_x = up(x, nc), *d_w = up(w, C), *d_b = up(b, C), *d_dy = up(dy, nc), *d_out = dmalloc(nc * 4),
          *d_mean = dmalloc(N * 4), *d_rstd = dmalloc(N * 4), *d_dx = up(dx, nc), *d_dw = up(dw, C), *d_db = up(db, C),
          *d_dx2 = up(dx, nc), *d_dw2 = up(dw, C), *d_db2 = up(db, C);
    weft_layernorm_forward_f64(out, mean, rstd, x, w, b, N, C);
    weft_layernorm_backward_f64(dx, dw, db, dy, x, w, mean, rstd, N, C);
    char what[96];
    snprintf(what, sizeof what, "layernorm N %d C %d", N, C);
    if (op_ok(K->layernorm_forward(ctx, d_out, d_mean, d_rstd, d_x, d_w, d_b, N, C), what)) {
        expect(what, d_out, out, nc, 1e-4, 1e-5);
        expect("layernorm mean", d_mean, mean, N, 1e-5, 1e-6);
        expect("layernorm rstd", d_rstd, rstd, N, 1e-4, 1e-5);
    }
    strcat(what, " backward");
    if (op_ok(K->layernorm_backward(ctx, d_dx, d_dw, d_db, d_dy, d_x, d_w, d_mean, d_rstd, N, C), what) &&
        op_ok(K->layernorm_backward(ctx, d_dx2, d_dw2, d_db2, d_dy, d_x, d_w, d_mean, d_rstd, N, C), what)) {
        expect(what, d_dx, dx, nc, 1e-4, 1e-4);
        expect(what, d_dw, dw, C, 1e-4, 1e-4);
        expect(what, d_db, db, C, 1e-4, 1e-4);
        expect_same(what, d_dw, d_dw2, C);
    }
    free(x), free(w), free(b), free(dy), free(out), free(mean), free(rstd), free(dx), free(dw), free(db);
    cudaFree(d_x), cudaFree(d_w), cudaFree(d_b), cudaFree(d_dy), cudaFree(d_out), cudaFree(d_mean), cudaFree(d_rstd),
        cudaFree(d_dx), cudaFree(d_dw), cudaFree(d_db), cudaFree(d_dx2), cudaFree(d_dw2), cudaFree(d_db2);
}

static void check_rmsnorm(int N, int C)
{
    size_t nc = (size_t)N * C;
    double *x = rnd(nc, 2), *w = rnd(C, 1), *dy = rnd(nc, 1), *out = malloc(nc * 8), *rstd = malloc(N * 8),
           *dx = rnd(nc, 1), *dw = rnd(C, 1);
    float *d_x = up(x, nc), *d_w = up(w, C), *d_dy = up(dy, nc), *d_out = dmalloc(nc * 4), *d_rstd = dmalloc(N * 4),
          *d_dx = up(dx, nc), *d_dw = up(dw, C);
    weft_rmsnorm_forward_f64(out, rstd, x, w, N, C, 1e-5);
    weft_rmsnorm_backward_f64(dx, dw, dy, x, w, rstd, N, C);
    char what[96];
    snprintf(what, sizeof what, "rmsnorm N %d C %d", N, C);
    if (op_ok(K->rmsnorm_forward(ctx, d_out, d_rstd, d_x, d_w, N, C, 1e-5), what)) {
        expect(what, d_out, out, nc, 1e-4, 1e-5);
        expect("rmsnorm rstd", d_rstd, rstd, N, 1e-4, 1e-5);
    }
    strcat(what, " backward");
    if (op_ok(K->rmsnorm_backward(ctx, d_dx, d_dw, d_dy, d_x, d_w, d_rstd, N, C), what)) {
        expect(what, d_dx, dx, nc, 1e-4, 1e-4);
        expect(what, d_dw, dw, C, 1e-4, 1e-4);
    }
    free(x), free(w), free(dy), free(out), free(rstd), free(dx), free(dw);
    cudaFree(d_x), cudaFree(d_w), cudaFree(d_dy), cudaFree(d_out), cudaFree(d_rstd), cudaFree(d_dx), cudaFree(d_dw);
}

static void check_pointwise(size_t n)
{
    double *a = rnd(n, 6), *b = rnd(n, 3), *dy = rnd(n, 1), *out = malloc(n * 8), *da = rnd(n, 1), *db = rnd(n, 1);
    float *d_a = up(a, n), *d_b = up(b, n), *d_dy = up(dy, n), *d_out = dmalloc(n * 4), *d_da = up(da, n),
          *d_db = up(db, n);
    weft_gelu_forward_f64(out, a, n);
    if (op_ok(K->gelu_forward(ctx, d_out, d_a, n), "gelu"))
        expect("gelu forward", d_out, out, n, 1e-5, 1e-6);
    weft_gelu_backward_f64(da, a, dy, n);
    if (op_ok(K->gelu_backward(ctx, d_da, d_a, d_dy, n), "gelu backward"))
        expect("gelu backward", d_da, da, n, 1e-5, 1e-6);
    weft_residual_forward_f64(out, a, b, n);
    if (op_ok(K->residual_forward(ctx, d_out, d_a, d_b, n), "residual"))
        expect("residual forward", d_out, out, n, 1e-7, 0);
    weft_residual_backward_f64(da, db, dy, n);
    if (op_ok(K->residual_backward(ctx, d_da, d_db, d_dy, n), "residual backward")) {
        expect("residual backward (a)", d_da, da, n, 1e-6, 1e-6);
        expect("residual backward (b)", d_db, db, n, 1e-6, 1e-6);
    }
    weft_swiglu_forward_f64(out, a, b, n);
    if (op_ok(K->swiglu_forward(ctx, d_out, d_a, d_b, n), "swiglu"))
        expect("swiglu forward", d_out, out, n, 1e-5, 1e-6);
    weft_swiglu_backward_f64(da, db, a, b, dy, n);
    if (op_ok(K->swiglu_backward(ctx, d_da, d_db, d_a, d_b, d_dy, n), "swiglu backward")) {
        expect("swiglu backward (gate)", d_da, da, n, 1e-5, 1e-5);
        expect("swiglu backward (up)", d_db, db, n, 1e-5, 1e-5);
    }
    free(a), free(b), free(dy), free(out), free(da), free(db);
    cudaFree(d_a), cudaFree(d_b), cudaFree(d_dy), cudaFree(d_out), cudaFree(d_da), cudaFree(d_db);
}

static void check_embedding(int B, int T, int C, int V, int with_wpe)
{
    size_t n = (size_t)B * T * C;
    int32_t *tok = malloc((size_t)B * T * sizeof *tok);
    for (int i = 0; i < B * T; i++) /* few distinct tokens: many rows share one */
        tok[i] = (int32_t)((unsigned)(uniform() * 1e6 + 1e6) % (unsigned)(i % 3 ? 7 : V));
    double *wte = rnd((size_t)V * C, 1), *wpe = rnd((size_t)T * C, 1), *dy = rnd(n, 1), *out = malloc(n * 8),
           *dwte = rnd((size_t)V * C, 1), *dwpe = rnd((size_t)T * C, 1), *zero = calloc((size_t)T * C, 8);
    int32_t *d_tok = up_i32(tok, (size_t)B * T);
    float *d_wte = up(wte, (size_t)V * C), *d_wpe = up(wpe, (size_t)T * C), *d_dy = up(dy, n), *d_out = dmalloc(n * 4),
          *d_dwte = up(dwte, (size_t)V * C), *d_dwpe = up(dwpe, (size_t)T * C), *d_dwte2 = up(dwte, (size_t)V * C);
    /* The CPU op always adds wpe: give it zeros for "no position table". */
    weft_embedding_forward_f64(out, tok, wte, with_wpe ? wpe : zero, B, T, C);
    char what[96];
    snprintf(what, sizeof what, "embedding B %d T %d C %d V %d%s", B, T, C, V, with_wpe ? "" : " (no wpe)");
    if (op_ok(K->embedding_forward(ctx, d_out, d_tok, d_wte, with_wpe ? d_wpe : NULL, B, T, C), what))
        expect(what, d_out, out, n, 1e-6, 1e-6);
    double *dwpe_cpu = with_wpe ? dwpe : zero;
    weft_embedding_backward_f64(dwte, dwpe_cpu, dy, tok, B, T, C);
    strcat(what, " backward");
    if (op_ok(K->embedding_backward(ctx, d_dwte, with_wpe ? d_dwpe : NULL, d_dy, d_tok, B, T, C), what) &&
        op_ok(K->embedding_backward(ctx, d_dwte2, NULL, d_dy, d_tok, B, T, C), what)) {
        expect(what, d_dwte, dwte, (size_t)V * C, 1e-5, 1e-5);
        if (with_wpe)
            expect(what, d_dwpe, dwpe, (size_t)T * C, 1e-5, 1e-5);
        expect_same(what, d_dwte, d_dwte2, (size_t)V * C);
    }
    free(tok), free(wte), free(wpe), free(dy), free(out), free(dwte), free(dwpe), free(zero);
    cudaFree(d_tok), cudaFree(d_wte), cudaFree(d_wpe), cudaFree(d_dy), cudaFree(d_out), cudaFree(d_dwte),
        cudaFree(d_dwpe), cudaFree(d_dwte2);
}

static void check_xent(int N, int V)
{
    size_t n = (size_t)N * V;
    double *logits = rnd(n, 8), *losses = malloc(N * 8), *dl = malloc(n * 8);
    int32_t *tgt = malloc(N * sizeof *tgt);
    for (int i = 0; i < N; i++)
        tgt[i] = i % 5 == 4 ? -1 : (int32_t)((unsigned)(uniform() * 1e6 + 1e6) % (unsigned)V);
    float *d_logits = up(logits, n), *d_losses = dmalloc(N * 4), *d_dl = dmalloc(n * 4);
    int32_t *d_tgt = up_i32(tgt, N);
    double dloss = 1.0 / N, mean = weft_xent_forward_backward_f64(losses, dl, logits, tgt, N, V, dloss), got = 0;
    char what[96];
    snprintf(what, sizeof what, "xent N %d V %d", N, V);
    if (op_ok(K->xent_forward_backward(ctx, d_losses, d_dl, d_logits, d_tgt, N, V, dloss), what)) {
        expect("xent losses", d_losses, losses, N, 1e-5, 1e-5);
        expect("xent dlogits", d_dl, dl, n, 1e-4, 1e-8);
        if (op_ok(K->xent_mean(ctx, &got, d_losses, d_tgt, N), "xent_mean"))
            tap(fabs(got - mean) <= 1e-5 * fabs(mean) + 1e-6, "xent mean %.9g, want %.9g", got, mean);
    }
    /* in place: dlogits over the logits themselves */
    if (op_ok(K->xent_forward_backward(ctx, NULL, d_logits, d_logits, d_tgt, N, V, dloss), "xent in place"))
        expect("xent dlogits in place", d_logits, dl, n, 1e-4, 1e-8);
    free(dl);
    /* the vocabulary-parallel passes on the second half of the columns */
    int v0 = V / 2, Vl = V - v0;
    double *slice = malloc((size_t)N * Vl * 8), *mx = malloc(N * 8), *sum = malloc(N * 8), *xt = malloc(N * 8),
           *lse = malloc(N * 8), *grad = malloc((size_t)N * Vl * 8);
    for (int r = 0; r < N; r++)
        memcpy(slice + (size_t)r * Vl, logits + (size_t)r * V + v0, Vl * 8);
    weft_xent_stats_f64(mx, sum, xt, slice, tgt, N, Vl, v0);
    for (int r = 0; r < N; r++)
        lse[r] = mx[r] + log(sum[r]);
    weft_xent_grad_f64(grad, slice, lse, tgt, N, Vl, v0, dloss);
    float *d_slice = up(slice, (size_t)N * Vl), *d_grad = dmalloc((size_t)N * Vl * 4);
    double *d_mx = dmalloc(N * 8), *d_sum = dmalloc(N * 8), *d_xt = dmalloc(N * 8), *d_lse = dmalloc(N * 8);
    cudaMemcpy(d_lse, lse, N * 8, cudaMemcpyHostToDevice);
    if (op_ok(K->xent_stats(ctx, d_mx, d_sum, d_xt, d_slice, d_tgt, N, Vl, v0), "xent_stats")) {
        double *h = malloc(3 * N * 8);
        cudaMemcpy(h, d_mx, N * 8, cudaMemcpyDeviceToHost);
        cudaMemcpy(h + N, d_sum, N * 8, cudaMemcpyDeviceToHost);
        cudaMemcpy(h + 2 * N, d_xt, N * 8, cudaMemcpyDeviceToHost);
        int bad = -1;
        for (int r = 0; r < N && bad < 0; r++)
            if (h[r] != mx[r] || fabs(h[N + r] - sum[r]) > 1e-5 * sum[r] || h[2 * N + r] != xt[r])
                bad = r;
        tap(bad < 0, "xent_stats v0 %d: max, sum, target logit per row%s", v0, bad < 0 ? "" : " differ");
        free(h);
    }
    if (op_ok(K->xent_grad(ctx, d_grad, d_slice, d_lse, d_tgt, N, Vl, v0, dloss), "xent_grad"))
        expect("xent_grad", d_grad, grad, (size_t)N * Vl, 1e-4, 1e-8);
    free(logits), free(losses), free(tgt), free(slice), free(mx), free(sum), free(xt), free(lse), free(grad);
    cudaFree(d_logits), cudaFree(d_losses), cudaFree(d_dl), cudaFree(d_tgt), cudaFree(d_slice), cudaFree(d_grad),
        cudaFree(d_mx), cudaFree(d_sum), cudaFree(d_xt), cudaFree(d_lse);
}

static void check_optimizer(size_t n)
{
    double *p = rnd(n, 1), *g = rnd(n, 1), *m = rnd(n, 0.1), *v = rnd(n, 0.1);
    for (size_t i = 0; i < n; i++)
        v[i] = fabs(v[i]);
    float *d_p = up(p, n), *d_g = up(g, n), *d_m = up(m, n), *d_v = up(v, n);
    double want = weft_sumsq_f64(g, n), got = 0;
    if (op_ok(K->sumsq(ctx, &got, d_g, n), "sumsq"))
        tap(fabs(got - want) <= 1e-9 * want, "sumsq of %zu: %.12g, want %.12g", n, got, want);
    weft_adamw_update_f64(p, g, m, v, n, 3e-4, 0.9, 0.95, 1e-8, 0.1, 7, 0.5);
    if (op_ok(K->adamw_update(ctx, d_p, d_g, d_m, d_v, n, 3e-4, 0.9, 0.95, 1e-8, 0.1, 7, 0.5), "adamw")) {
        expect("adamw params", d_p, p, n, 1e-5, 1e-7);
        expect("adamw m", d_m, m, n, 1e-5, 1e-8);
        expect("adamw v", d_v, v, n, 1e-5, 1e-9);
    }
    free(p), free(g), free(m), free(v);
    cudaFree(d_p), cudaFree(d_g), cudaFree(d_m), cudaFree(d_v);
}

/* sumsq_acc (the gradient norm's running sum, parallel/dp.c) against the
 * serial double loop dp.c had, over three ranges of one buffer continuing
 * one sum from a nonzero start (odd lengths, one empty): a fixed-order
 * reduction is not that loop's order, so relative 1e-12, not bitwise. */
static void check_sumsq_acc(size_t n)
{
    double *g = rnd(n, 1);
    float *d_g = up(g, n);
    const size_t cut[4] = {0, n / 3 + 1, n / 3 + 1, n};
    double want = 0.75, got = 0.75;
    for (size_t i = 0; i < n; i++) {
        float f = (float)g[i];
        want += (double)f * f;
    }
    int ok = 1;
    for (int r = 0; r < 3 && ok; r++)
        ok = op_ok(K->sumsq_acc(ctx, &got, d_g + cut[r], cut[r + 1] - cut[r]), "sumsq_acc");
    if (ok)
        tap(fabs(got - want) <= 1e-12 * want, "sumsq_acc over 3 ranges of %zu from 0.75: %.15g, want %.15g", n, got,
            want);
    free(g);
    cudaFree(d_g);
}

/* The memory ops (ops.h's zero, copy, scale, axpy) against the host float
 * loops they replaced; zero and copy exactly, scale and axpy to element-
 * wise f32 tolerance (the host compiler may contract a*x + y). */
static void check_memory(size_t n)
{
    double *x = rnd(n, 1), *y = rnd(n, 1), *want = malloc(n * sizeof *want);
    float *d_x = up(x, n), *d_y = up(y, n);
    for (size_t i = 0; i < n; i++)
        want[i] = 0;
    if (op_ok(K->zero(ctx, d_y + 1, n - 2), "zero")) {
        double *got = down(d_y, n);
        size_t bad = n;
        for (size_t i = 0; i < n && bad == n; i++)
            if (got[i] != (i == 0 || i == n - 1 ? (double)(float)y[i] : 0.0))
                bad = i;
        tap(bad == n, "zero of %zu values between two kept ones%s", n - 2, bad == n ? "" : ": wrong element");
        free(got);
    }
    if (op_ok(K->copy(ctx, d_y, d_x, n), "copy"))
        expect("copy", d_y, x, n, 0, 0);
    for (size_t i = 0; i < n; i++)
        want[i] = (double)((float)x[i] * 0.37f);
    if (op_ok(K->scale(ctx, d_x, n, 0.37f), "scale"))
        expect("scale", d_x, want, n, 1e-6, 1e-7);
    float *d_y2 = up(y, n);
    for (size_t i = 0; i < n; i++)
        want[i] = (double)((float)y[i] + -1.7f * (float)want[i]);
    if (op_ok(K->axpy(ctx, d_y2, d_x, n, -1.7f), "axpy"))
        expect("axpy", d_y2, want, n, 1e-6, 1e-7);
    free(x), free(y), free(want);
    cudaFree(d_x), cudaFree(d_y), cudaFree(d_y2);
}

/* fill (ABI 4) against ZeRO-3's poison loop on the host: a released
 * bucket's parameters outside the shard become NaN, bit for bit the host's
 * NAN, and the shard between the two fills keeps its values. */
static void check_fill(size_t n)
{
    double *x = rnd(n, 1);
    float *d_x = up(x, n);
    size_t s0 = n / 3, s1 = 2 * n / 3 + 1; /* the shard: [s0, s1) */
    int ok0 = op_ok(K->fill(ctx, d_x, s0, NAN), "fill"), ok1 = op_ok(K->fill(ctx, d_x + s1, n - s1, NAN), "fill");
    if (ok0 && ok1) {
        float *got = malloc(n * sizeof *got), nan = NAN;
        cudaMemcpy(got, d_x, n * sizeof *got, cudaMemcpyDeviceToHost);
        size_t bad = n;
        for (size_t i = 0; i < n && bad == n; i++) {
            float want = i < s0 || i >= s1 ? nan : (float)x[i];
            if (memcmp(&got[i], &want, sizeof want) != 0)
                bad = i;
        }
        tap(bad == n, "fill: NaN over [0, %zu) and [%zu, %zu), the shard between kept%s", s0, s1, n,
            bad == n ? "" : ": an element differs from the host loop's");
        free(got);
    }
    if (op_ok(K->fill(ctx, d_x, 0, 1.0f), "fill")) /* nothing to do */
        tap(1, "fill of 0 values");
    free(x);
    cudaFree(d_x);
}

/* tp.c's vocabulary-parallel pieces (ABI 4) against the host, in double:
 * this rank holds rows [v0, v0 + Vl) of a V-row table; tokens fall on
 * both sides of the slice and repeat; the embedding's backward runs twice
 * and must agree bit for bit (deterministic), with and without positions. */
static void check_vocab_parallel(int B, int T, int C, int V, int v0, int Vl)
{
    size_t N = (size_t)B * T, n = N * C;
    int32_t *tok = malloc(N * sizeof *tok);
    for (size_t i = 0; i < N; i++)
        tok[i] = (int32_t)((unsigned)(uniform() * 1e6 + 1e6) % (unsigned)(i % 3 ? 2 * Vl : V));
    double *wte = rnd((size_t)Vl * C, 1), *wpe = rnd((size_t)T * C, 1), *dy = rnd(n, 1), *out = malloc(n * 8),
           *dwte = rnd((size_t)Vl * C, 1), *dwpe = rnd((size_t)T * C, 1), *bias = rnd((size_t)C, 1);
    int32_t *d_tok = up_i32(tok, N);
    float *d_wte = up(wte, (size_t)Vl * C), *d_wpe = up(wpe, (size_t)T * C), *d_dy = up(dy, n),
          *d_out = dmalloc(n * 4), *d_dwte = up(dwte, (size_t)Vl * C), *d_dwpe = up(dwpe, (size_t)T * C),
          *d_dwte2 = up(dwte, (size_t)Vl * C), *d_bias = up(bias, (size_t)C);
    for (size_t i = 0; i < N; i++) /* the held row, or zeros */
        for (int c = 0; c < C; c++) {
            int v = tok[i] - v0;
            out[i * C + c] = v >= 0 && v < Vl ? (double)(float)wte[(size_t)v * C + c] : 0.0;
        }
    char what[96];
    snprintf(what, sizeof what, "embedding_vp_forward N %zu C %d rows [%d, %d)", N, C, v0, v0 + Vl);
    if (op_ok(K->embedding_vp_forward(ctx, d_out, d_tok, d_wte, v0, Vl, (int)N, C), what))
        expect(what, d_out, out, n, 0, 0);
    for (size_t i = 0; i < n; i++) /* + positions, + a bias */
        out[i] = (double)(float)((float)out[i] + (float)wpe[(i / C) % T * C + i % C]);
    if (op_ok(K->add_rows(ctx, d_out, d_wpe, (int)N, T, C), "add_rows (positions)"))
        expect("add_rows P = T (positions)", d_out, out, n, 1e-6, 1e-7);
    for (size_t i = 0; i < n; i++)
        out[i] = (double)(float)((float)out[i] + (float)bias[i % C]);
    if (op_ok(K->add_rows(ctx, d_out, d_bias, (int)N, 1, C), "add_rows (bias)"))
        expect("add_rows P = 1 (bias)", d_out, out, n, 1e-6, 1e-7);
    for (size_t i = 0; i < N; i++)
        for (int c = 0; c < C; c++) {
            double d = (float)dy[i * C + c];
            dwpe[(i % T) * C + c] += d;
            int v = tok[i] - v0;
            if (v >= 0 && v < Vl)
                dwte[(size_t)v * C + c] += d;
        }
    snprintf(what, sizeof what, "embedding_vp_backward B %d T %d C %d rows [%d, %d)", B, T, C, v0, v0 + Vl);
    if (op_ok(K->embedding_vp_backward(ctx, d_dwte, d_dwpe, d_dy, d_tok, v0, Vl, B, T, C), what) &&
        op_ok(K->embedding_vp_backward(ctx, d_dwte2, NULL, d_dy, d_tok, v0, Vl, B, T, C), what)) {
        expect(what, d_dwte, dwte, (size_t)Vl * C, 1e-5, 1e-5);
        expect(what, d_dwpe, dwpe, (size_t)T * C, 1e-5, 1e-5);
        expect_same(what, d_dwte, d_dwte2, (size_t)Vl * C);
    }
    /* the loss's rescale: sum *= exp(mx - gmx), mx = gmx, in double */
    double *sum = rnd(N, 1), *mx = rnd(N, 3), *gmx = malloc(N * 8), *h = malloc(2 * N * 8);
    for (size_t i = 0; i < N; i++)
        sum[i] = 1 + fabs(sum[i]) * 50, gmx[i] = mx[i] + fabs(uniform()) * 4;
    double *d_sum = dmalloc(N * 8), *d_mx = dmalloc(N * 8), *d_gmx = dmalloc(N * 8);
    cudaMemcpy(d_sum, sum, N * 8, cudaMemcpyHostToDevice);
    cudaMemcpy(d_mx, mx, N * 8, cudaMemcpyHostToDevice);
    cudaMemcpy(d_gmx, gmx, N * 8, cudaMemcpyHostToDevice);
    if (op_ok(K->xent_rescale(ctx, d_sum, d_mx, d_gmx, (int)N), "xent_rescale")) {
        cudaMemcpy(h, d_sum, N * 8, cudaMemcpyDeviceToHost);
        cudaMemcpy(h + N, d_mx, N * 8, cudaMemcpyDeviceToHost);
        long bad = -1;
        for (size_t i = 0; i < N && bad < 0; i++) {
            double want = sum[i] * exp(mx[i] - gmx[i]);
            if (fabs(h[i] - want) > 1e-12 * fabs(want) || h[N + i] != gmx[i])
                bad = (long)i;
        }
        tap(bad < 0, "xent_rescale of %zu rows (sums to the global max, mx = gmx)%s", N,
            bad < 0 ? "" : ": a row differs");
    }
    free(tok), free(wte), free(wpe), free(dy), free(out), free(dwte), free(dwpe), free(bias);
    free(sum), free(mx), free(gmx), free(h);
    cudaFree(d_tok), cudaFree(d_wte), cudaFree(d_wpe), cudaFree(d_dy), cudaFree(d_out), cudaFree(d_dwte),
        cudaFree(d_dwpe), cudaFree(d_dwte2), cudaFree(d_bias), cudaFree(d_sum), cudaFree(d_mx), cudaFree(d_gmx);
}

/* LoRA's loops (ABI 4) against the host's: the rank-r products in double
 * (f32 tolerance of a row reduction), and dropout's mask and values
 * exactly -- the host's float arithmetic and runtime/rng.h's hash, so the
 * GPU keeps the elements the cpu keeps. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void check_lora(int N, int in, int out, int r)
{
    double *dy = rnd((size_t)N * out, 1), *B = rnd((size_t)out * r, 1), *dh = rnd((size_t)N * r, 1),
           *x = rnd((size_t)N * in, 1), *dx = rnd((size_t)N * in, 1);
    float *d_dy = up(dy, (size_t)N * out), *d_B = up(B, (size_t)out * r), *d_dh = up(dh, (size_t)N * r),
          *d_A = up(x, (size_t)r * in), *d_x = up(x, (size_t)N * in), *d_dx = up(dx, (size_t)N * in),
          *d_xd = dmalloc((size_t)N * in * 4);
    for (int n = 0; n < N; n++) /* dh += dy B: the reference's dh, then dx += dh A with the new dh */
        for (int m = 0; m < r; m++) {
            double acc = (float)dh[(size_t)n * r + m];
            for (int k = 0; k < out; k++)
                acc += (double)(float)dy[(size_t)n * out + k] * (float)B[(size_t)k * r + m];
            dh[(size_t)n * r + m] = acc;
        }
    char what[96];
    snprintf(what, sizeof what, "matmul_nn_add dy B (N %d, K %d, M %d)", N, out, r);
    if (op_ok(K->matmul_nn_add(ctx, d_dh, d_dy, d_B, N, out, r), what))
        expect(what, d_dh, dh, (size_t)N * r, 1e-4, 1e-5);
    double *dh_got = down(d_dh, (size_t)N * r); /* dh A from the GPU's dh: one op's error at a time */
    for (int n = 0; n < N; n++)
        for (int j = 0; j < in; j++) {
            double acc = (float)dx[(size_t)n * in + j];
            for (int k = 0; k < r; k++)
                acc += dh_got[(size_t)n * r + k] * (float)x[(size_t)k * in + j];
            dx[(size_t)n * in + j] = acc;
        }
    snprintf(what, sizeof what, "matmul_nn_add dh A (N %d, K %d, M %d)", N, r, in);
    if (op_ok(K->matmul_nn_add(ctx, d_dx, d_dh, d_A, N, r, in), what))
        expect(what, d_dx, dx, (size_t)N * in, 1e-4, 1e-5);
    uint64_t key = 0x243f6a8885a308d3ull, id = 0x13198a2e03707344ull;
    double p = 0.1;
    int col0 = 3 * in;
    float inv = (float)(1.0 / (1.0 - p));
    float *xf = malloc((size_t)N * in * 4), *want = malloc((size_t)N * in * 4), *dxf = malloc((size_t)N * in * 4);
    char *keep = malloc((size_t)N * in);
    cudaMemcpy(xf, d_x, (size_t)N * in * 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(dxf, d_dx, (size_t)N * in * 4, cudaMemcpyDeviceToHost);
    size_t dropped = 0;
    for (int n = 0; n < N; n++)
        for (int j = 0; j < in; j++) {
            size_t e = (size_t)n * in + j;
            uint64_t h = mix(key ^ id ^ mix(((uint64_t)n << 32) ^ (uint64_t)(col0 + j)));
            int k = (double)(h >> 11) * 0x1.0p-53 >= p;
            want[e] = k ? xf[e] * inv : 0.0f;
            keep[e] = (char)k;
            dropped += !k;
        }
    if (op_ok(K->lora_dropout(ctx, d_xd, d_x, N, in, col0, key, id, p), "lora_dropout")) {
        float *got = malloc((size_t)N * in * 4);
        cudaMemcpy(got, d_xd, (size_t)N * in * 4, cudaMemcpyDeviceToHost);
        tap(memcmp(got, want, (size_t)N * in * 4) == 0, "lora_dropout (N %d, in %d, p %g): the host's mask and "
            "values bit for bit (%zu of %zu dropped)", N, in, p, dropped, (size_t)N * in);
        free(got);
    }
    for (size_t e = 0; e < (size_t)N * in; e++) /* dx += g inv where kept: g = the dropped-out x */
        if (keep[e])
            dxf[e] += want[e] * inv;
    if (op_ok(K->lora_dropout_add(ctx, d_dx, d_xd, N, in, col0, key, id, p), "lora_dropout_add")) {
        float *got = malloc((size_t)N * in * 4);
        cudaMemcpy(got, d_dx, (size_t)N * in * 4, cudaMemcpyDeviceToHost);
        tap(memcmp(got, dxf, (size_t)N * in * 4) == 0, "lora_dropout_add (N %d, in %d): the host's values bit "
            "for bit, dropped elements untouched", N, in);
        free(got);
    }
    free(dy), free(B), free(dh), free(x), free(dx), free(dh_got), free(xf), free(want), free(dxf), free(keep);
    cudaFree(d_dy), cudaFree(d_B), cudaFree(d_dh), cudaFree(d_A), cudaFree(d_x), cudaFree(d_dx), cudaFree(d_xd);
}

/* xent_finish against the host loop tp.c had, in double, on statistics
 * like xent_stats': a max, a sum >= 1, a target logit <= the max. */
static void check_xent_finish(int N)
{
    double *mx = rnd((size_t)N, 3), *sum = rnd((size_t)N, 1), *xt = rnd((size_t)N, 1);
    double *lse = malloc((size_t)N * sizeof *lse), *loss = malloc((size_t)N * sizeof *loss), total = 0;
    int32_t *tgt = malloc((size_t)N * sizeof *tgt);
    int counted = 0;
    for (int n = 0; n < N; n++) {
        sum[n] = 1 + 100 * fabs(sum[n]);
        xt[n] = mx[n] - fabs(xt[n]) * 5;
        tgt[n] = n % 7 == 3 ? -1 : n;
        lse[n] = mx[n] + log(sum[n]);
        loss[n] = tgt[n] >= 0 ? (double)(float)(lse[n] - xt[n]) : 0.0;
        if (tgt[n] >= 0)
            total += loss[n], counted++;
    }
    double *d_mx = dmalloc((size_t)N * 8), *d_sum = dmalloc((size_t)N * 8), *d_xt = dmalloc((size_t)N * 8),
           *d_lse = dmalloc((size_t)N * 8), got = -1, want = total / counted;
    cudaMemcpy(d_mx, mx, (size_t)N * 8, cudaMemcpyHostToDevice);
    cudaMemcpy(d_sum, sum, (size_t)N * 8, cudaMemcpyHostToDevice);
    cudaMemcpy(d_xt, xt, (size_t)N * 8, cudaMemcpyHostToDevice);
    int32_t *d_tgt = up_i32(tgt, (size_t)N);
    float *d_loss = dmalloc((size_t)N * sizeof(float));
    if (op_ok(K->xent_finish(ctx, &got, d_loss, d_lse, d_mx, d_sum, d_xt, d_tgt, N), "xent_finish")) {
        expect("xent_finish losses", d_loss, loss, (size_t)N, 1e-6, 1e-7);
        double *h = malloc((size_t)N * 8);
        cudaMemcpy(h, d_lse, (size_t)N * 8, cudaMemcpyDeviceToHost);
        int bad = -1;
        for (int n = 0; n < N && bad < 0; n++)
            if (fabs(h[n] - lse[n]) > 1e-12 * fabs(lse[n]) + 1e-12)
                bad = n;
        tap(bad < 0, "xent_finish lse of %d rows%s", N, bad < 0 ? "" : ": a row differs");
        tap(fabs(got - want) <= 1e-6 * fabs(want), "xent_finish mean %.12g, want %.12g", got, want);
        free(h);
    }
    free(mx), free(sum), free(xt), free(lse), free(loss), free(tgt);
    cudaFree(d_mx), cudaFree(d_sum), cudaFree(d_xt), cudaFree(d_lse), cudaFree(d_tgt), cudaFree(d_loss);
}

static void check_rope(int B, int T, int nh, int hs)
{
    size_t n = (size_t)B * T * nh * hs, nt = (size_t)T * (hs / 2);
    double *cs = malloc(nt * 8), *sn = malloc(nt * 8), *x = rnd(n, 1);
    weft_rope_table_f64(cs, sn, T, hs, 10000.0);
    for (size_t i = 0; i < nt; i++)
        cs[i] = (double)(float)cs[i], sn[i] = (double)(float)sn[i];
    float *d_cs = up(cs, nt), *d_sn = up(sn, nt), *d_x = up(x, n);
    weft_rope_forward_f64(x, cs, sn, B, T, nh, hs);
    if (op_ok(K->rope_forward(ctx, d_x, d_cs, d_sn, B, T, nh, hs), "rope"))
        expect("rope forward", d_x, x, n, 1e-5, 1e-6);
    weft_rope_backward_f64(x, cs, sn, B, T, nh, hs);
    if (op_ok(K->rope_backward(ctx, d_x, d_cs, d_sn, B, T, nh, hs), "rope backward"))
        expect("rope backward", d_x, x, n, 1e-5, 1e-6);
    free(cs), free(sn), free(x);
    cudaFree(d_cs), cudaFree(d_sn), cudaFree(d_x);
}

static void check_attention(int B, int T, int C, int NH)
{
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, nl = (size_t)B * NH * T;
    double *qkv = rnd(nq, 1), *out = malloc(no * 8), *lse = malloc(nl * 8), *dout = rnd(no, 1), *dqkv = rnd(nq, 1);
    float *d_qkv = up(qkv, nq), *d_out = dmalloc(no * 4), *d_lse = dmalloc(nl * 4), *d_dout = up(dout, no),
          *d_dqkv = up(dqkv, nq), *d_dqkv2 = up(dqkv, nq);
    weft_attention_flash_forward_f64(out, lse, qkv, B, T, C, NH);
    weft_attention_flash_backward_f64(dqkv, dout, qkv, out, lse, B, T, C, NH);
    char what[96];
    snprintf(what, sizeof what, "attention B %d T %d C %d NH %d", B, T, C, NH);
    if (op_ok(K->attention_forward(ctx, d_out, d_lse, d_qkv, B, T, C, NH), what)) {
        expect(what, d_out, out, no, 1e-4, 1e-5);
        expect("attention lse", d_lse, lse, nl, 1e-5, 1e-5);
    }
    strcat(what, " backward");
    if (op_ok(K->attention_backward(ctx, d_dqkv, d_dout, d_qkv, d_out, d_lse, B, T, C, NH), what) &&
        op_ok(K->attention_backward(ctx, d_dqkv2, d_dout, d_qkv, d_out, d_lse, B, T, C, NH), what)) {
        expect(what, d_dqkv, dqkv, nq, 1e-4, 1e-4);
        expect_same(what, d_dqkv, d_dqkv2, nq);
    }
    free(qkv), free(out), free(lse), free(dout), free(dqkv);
    cudaFree(d_qkv), cudaFree(d_out), cudaFree(d_lse), cudaFree(d_dout), cudaFree(d_dqkv), cudaFree(d_dqkv2);
}

static void check_gqa(int B, int T, int NH, int NKV, int hs)
{
    size_t nq = (size_t)B * T * NH * hs, nk = (size_t)B * T * NKV * hs, nl = (size_t)B * NH * T;
    double *q = rnd(nq, 1), *k = rnd(nk, 1), *v = rnd(nk, 1), *out = malloc(nq * 8), *lse = malloc(nl * 8),
           *dout = rnd(nq, 1), *dq = rnd(nq, 1), *dk = rnd(nk, 1), *dv = rnd(nk, 1);
    float *d_q = up(q, nq), *d_k = up(k, nk), *d_v = up(v, nk), *d_out = dmalloc(nq * 4), *d_lse = dmalloc(nl * 4),
          *d_dout = up(dout, nq), *d_dq = up(dq, nq), *d_dk = up(dk, nk), *d_dv = up(dv, nk);
    weft_gqa_attention_flash_forward_f64(out, lse, q, k, v, B, T, NH, NKV, hs);
    weft_gqa_attention_flash_backward_f64(dq, dk, dv, dout, q, k, v, out, lse, B, T, NH, NKV, hs);
    char what[96];
    snprintf(what, sizeof what, "gqa attention B %d T %d NH %d NKV %d hs %d", B, T, NH, NKV, hs);
    if (op_ok(K->gqa_attention_forward(ctx, d_out, d_lse, d_q, d_k, d_v, B, T, NH, NKV, hs), what))
        expect(what, d_out, out, nq, 1e-4, 1e-5);
    strcat(what, " backward");
    if (op_ok(K->gqa_attention_backward(ctx, d_dq, d_dk, d_dv, d_dout, d_q, d_k, d_v, d_out, d_lse, B, T, NH, NKV, hs),
              what)) {
        expect("gqa dq", d_dq, dq, nq, 1e-4, 1e-4);
        expect("gqa dk", d_dk, dk, nk, 1e-4, 1e-4);
        expect("gqa dv", d_dv, dv, nk, 1e-4, 1e-4);
    }
    free(q), free(k), free(v), free(out), free(lse), free(dout), free(dq), free(dk), free(dv);
    cudaFree(d_q), cudaFree(d_k), cudaFree(d_v), cudaFree(d_out), cudaFree(d_lse), cudaFree(d_dout), cudaFree(d_dq),
        cudaFree(d_dk), cudaFree(d_dv);
}

int main(int argc, char **argv)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/libweft-cuda.so", argc > 1 ? argv[1] : "build/lib");
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    weft_cuda_ops_get_fn get = lib ? (weft_cuda_ops_get_fn)dlsym(lib, "weft_cuda_ops_get") : NULL;
    if (!get) {
        printf("Bail out! cannot load %s: %s\n", path, dlerror());
        return 1;
    }
    K = get();
    if (K->abi != WEFT_CUDA_OPS_ABI) {
        printf("Bail out! %s has table version %d, this test %d\n", path, K->abi, WEFT_CUDA_OPS_ABI);
        return 1;
    }
    char err[512];
    int rc = K->ctx_new(NULL, 1024, &ctx, err, sizeof err);
    if (rc) {
        printf("Bail out! ctx_new: %s\n", err);
        return 1;
    }
    tap(1, "libweft-cuda.so loaded, context of %zu bytes", K->ctx_bytes(ctx));
    check_matmul(67, 72, 200, 0);
    check_matmul(64, 768, 96, 0);
    check_matmul(67, 72, 200, 1);
    check_layernorm(67, 72);
    check_layernorm(33, 768);
    check_rmsnorm(67, 72);
    check_pointwise(1000003);
    check_embedding(3, 67, 72, 1000, 1);
    check_embedding(2, 33, 40, 300, 0);
    check_xent(37, 50257);
    check_optimizer(100003);
    check_memory(100003);
    check_fill(100003);
    check_vocab_parallel(3, 67, 72, 1000, 500, 500);
    check_vocab_parallel(2, 33, 40, 50257, 25129, 25128);
    check_lora(67, 72, 200, 8);
    check_lora(1024, 768, 2304, 16);
    check_xent_finish(4097);
    check_sumsq_acc(1000003);
    check_rope(2, 67, 3, 24);
    check_attention(2, 67, 72, 3);
    check_attention(1, 130, 128, 2);
    check_gqa(2, 67, 4, 2, 32);
    check_gqa(1, 65, 4, 1, 128);
    /* a head too large for the kernel is refused with a message, not run */
    rc = K->gqa_attention_forward(ctx, NULL, NULL, NULL, NULL, NULL, 1, 4, 1, 1, WEFT_CUDA_MAX_HS + 2);
    tap(rc != 0 && strstr(K->ctx_error(ctx), "head size"), "head size %d refused: %s", WEFT_CUDA_MAX_HS + 2,
        K->ctx_error(ctx));
    K->ctx_free(ctx);
    printf("1..%d\n", tests);
    return failed ? 1 : 0;
}
