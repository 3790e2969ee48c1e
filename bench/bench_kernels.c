/*
 * bench_kernels.c -- every CPU op of kernels.h at the shapes of the
 * bench-cpu GPT (B 8, T 256, C 256, NH 4, V 8192, 4 layers), one BLAS
 * thread. For each op: median forward and backward time; for the matrix
 * products and attention (materialised, and flash: what the models call)
 * also the achieved GFLOP/s beside the single-core SGEMM rate of the same
 * BLAS at the same shape, measured in this run.
 * It ends with a projected training step (the ops a GPT step calls, summed)
 * and its model FLOP/s against SGEMM at the model's shapes: the figure the
 * issue's target (>= 50%) is about. Beside the ops: LayerNorm + residual
 * unfused and fused, and the exp loops (GELU, the cross-entropy's passes)
 * in each vector width this CPU runs (kernels/vexp.h).
 *
 *   build/bench/bench_kernels [--cpu-time] [B T C NH V L]
 *
 * --cpu-time: time each op by this thread's CPU time (CLOCK_THREAD_CPUTIME_ID)
 * instead of the wall clock: on a machine shared with other work the op's
 * own cost, without the time it was descheduled (cache sharing still
 * counts). The SGEMM references stay wall-clock, so their ratios are only
 * meaningful on a quiet machine.
 */
#include "kernels/kernels.h"
#include "kernels/vexp.h"
#include "runtime/cli.h"
#include "runtime/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/timer.h"

#include <time.h>

#define MAX_REPS 200
#define MIN_SECONDS 0.25   /* per timed op */
#define SGEMM_SECONDS 0.3  /* per reference shape */

static double median(double *t, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double x = t[j]; t[j] = t[j - 1]; t[j - 1] = x;
        }
    return t[n / 2];
}

static int cpu_time; /* --cpu-time */

/* Nanoseconds: wall clock, or this thread's CPU time with --cpu-time. */
static int64_t now_ns(void)
{
    if (!cpu_time)
        return weft_now_ns();
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ms = median time of STMT over repeats (one warm-up call first). */
#define TIME_MS(ms, STMT)                                                                  \
    do {                                                                                   \
        double ts_[MAX_REPS];                                                              \
        int n_ = 0;                                                                        \
        STMT;                                                                              \
        int64_t start_ = now_ns();                                                         \
        while (n_ < MAX_REPS && (n_ < 3 || (now_ns() - start_) * 1e-9 < MIN_SECONDS)) {    \
            int64_t t0_ = now_ns();                                                        \
            STMT;                                                                          \
            ts_[n_++] = (now_ns() - t0_) * 1e-6;                                           \
        }                                                                                  \
        (ms) = median(ts_, n_);                                                            \
    } while (0)

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static float *buf(size_t n, float scale)
{
    float *x = malloc(n * sizeof(float));
    if (!x) {
        fprintf(stderr, "bench_kernels: out of memory allocating %zu floats\n", n);
        exit(70);
    }
    for (size_t i = 0; i < n; i++) {
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
        x[i] = scale * ((float)(rng >> 40) / 16777216.0f - 0.5f);
    }
    return x;
}

static void row(const char *op, const char *shape, double fwd_ms, double bwd_ms,
                double fwd_flop, double bwd_flop, double sgemm)
{
    printf("%-14s %-22s %9.3f %9.3f", op, shape, fwd_ms, bwd_ms);
    if (fwd_flop > 0)
        printf(" %9.1f %9.1f %9.1f %6.0f%%\n", fwd_flop / fwd_ms * 1e-6, bwd_flop / bwd_ms * 1e-6,
               sgemm * 1e-9, 100 * (fwd_flop + bwd_flop) / ((fwd_ms + bwd_ms) * 1e-3) / sgemm);
    else
        printf("\n");
}

/* One linear layer: returns fwd+bwd ms; adds its FLOPs and its SGEMM-rate
 * time (FLOPs / rate) to the running totals. */
static double bench_linear(const char *name, int N, int C, int OC, int has_bias, double *flops,
                           double *sgemm_s)
{
    float *inp = buf((size_t)N * C, 2), *w = buf((size_t)OC * C, 0.04f), *b = buf(OC, 0.04f);
    float *out = buf((size_t)N * OC, 1), *dout = buf((size_t)N * OC, 1);
    float *dinp = calloc((size_t)N * C, 4), *dw = calloc((size_t)OC * C, 4), *db = calloc(OC, 4);
    double f, bk;
    TIME_MS(f, weft_matmul_forward(out, inp, w, has_bias ? b : NULL, N, C, OC));
    TIME_MS(bk, weft_matmul_backward(dinp, dw, has_bias ? db : NULL, dout, inp, w, N, C, OC));
    double fl = 2.0 * N * C * OC;
    double rate = weft_sgemm_rate(N, OC, C, SGEMM_SECONDS);
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%d -> %d", N, C, OC);
    row(name, shape, f, bk, fl, 2 * fl, rate);
    *flops += 3 * fl;
    *sgemm_s += 3 * fl / rate;
    free(inp); free(w); free(b); free(out); free(dout); free(dinp); free(dw); free(db);
    return f + bk;
}

/* The reference for the cross-entropy rows: what parallel/tp.c did before
 * the tiled kernels -- a max pass, then libm's scalar expf per logit summed
 * in double; backward expf per logit again. sum (N) gets the sums. */
static void xent_libm_forward(double *sum, const float *logits, int N, int V)
{
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        float m = x[0];
        for (int v = 1; v < V; v++)
            m = x[v] > m ? x[v] : m;
        double s = 0;
        for (int v = 0; v < V; v++)
            s += expf(x[v] - m);
        sum[n] = s;
    }
}

static void xent_libm_backward(float *d, const float *logits, const double *lse, const int32_t *tok, int N, int V,
                               double dloss)
{
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        float *dr = d + (size_t)n * V, l = (float)lse[n], s = (float)dloss;
        for (int v = 0; v < V; v++)
            dr[v] = expf(x[v] - l) * s;
        dr[tok[n]] -= s;
    }
}

int main(int argc, char **argv)
{
    int B = 8, T = 256, C = 256, NH = 4, V = 8192, L = 4;
    if (weft_cli_wants_help(argc, argv)) {
        printf("usage: bench_kernels [--cpu-time] [B T C NH V L]  (see the top of bench/bench_kernels.c)\n");
        return 0;
    }
    static const struct option opts[] = {{"cpu-time", no_argument, NULL, 'c'}, {NULL, 0, NULL, 0}};
    weft_cli cli;
    weft_cli_init(&cli, "bench_kernels", argc, argv, opts, 0);
    for (int c; (c = weft_cli_next(&cli)) != WEFT_CLI_END;) {
        if (c != 'c')
            return WEFT_EXIT_USAGE;
        cpu_time = 1;
    }
    if (cli.nops != 0 && cli.nops != 6)
        return weft_cli_error(&cli, "expected no operands or all six of B T C NH V L");
    if (cli.nops == 6) {
        B = atoi(cli.ops[0]); T = atoi(cli.ops[1]); C = atoi(cli.ops[2]);
        NH = atoi(cli.ops[3]); V = atoi(cli.ops[4]); L = atoi(cli.ops[5]);
    }
    if (B < 1 || T < 1 || NH < 1 || C % NH || V < 1 || L < 1)
        return weft_cli_error(&cli, "bad shape B %d T %d C %d NH %d V %d L %d (each positive, C a multiple of NH)",
                              B, T, C, NH, V, L);
    weft_kernels_init(1);
    const int N = B * T, hs = C / NH;
    printf("bench_kernels: B %d T %d C %d NH %d V %d (L %d for the step), 1 BLAS thread%s\n",
           B, T, C, NH, V, L, cpu_time ? "; op times: thread CPU time" : "");
    printf("%-14s %-22s %9s %9s %9s %9s %9s %7s\n", "op", "shape", "fwd ms", "bwd ms",
           "fwd GF/s", "bwd GF/s", "sgemm", "of sg.");

    // --- matrix products of one block and the LM head -------------------
    double flops = 0, sgemm_s = 0, layer_ms = 0;
    layer_ms += bench_linear("matmul qkv", N, C, 3 * C, 1, &flops, &sgemm_s);
    layer_ms += bench_linear("matmul attproj", N, C, C, 1, &flops, &sgemm_s);
    layer_ms += bench_linear("matmul fc", N, C, 4 * C, 1, &flops, &sgemm_s);
    layer_ms += bench_linear("matmul fcproj", N, 4 * C, C, 1, &flops, &sgemm_s);
    flops *= L;
    sgemm_s *= L;
    layer_ms *= L;
    double lmf = 0, lms = 0;
    double head_ms = bench_linear("matmul lmhead", N, C, V, 0, &lmf, &lms);
    flops += lmf;
    sgemm_s += lms;

    // --- attention ------------------------------------------------------
    size_t na = (size_t)B * NH * T * T;
    float *qkv = buf((size_t)N * 3 * C, 2), *aout = buf((size_t)N * C, 1);
    float *att = buf(na, 1), *datt = buf(na, 1), *dqkv = calloc((size_t)N * 3 * C, 4);
    float *dout = buf((size_t)N * C, 1);
    double af, ab;
    TIME_MS(af, weft_attention_forward(aout, att, qkv, B, T, C, NH));
    TIME_MS(ab, weft_attention_backward(dqkv, datt, dout, qkv, att, B, T, C, NH));
    // the causal products only: (T(T+1)/2) x hs multiply-adds for QK^T and
    // for att.V per (b, h); backward does twice that
    double afl = (double)B * NH * 2.0 * 2.0 * hs * ((double)T * (T + 1) / 2);
    double arate = weft_sgemm_rate(T, T, hs, SGEMM_SECONDS);
    char shape[64];
    snprintf(shape, sizeof shape, "B%d NH%d T%d hs%d", B, NH, T, hs);
    row("attention", shape, af, ab, afl, 2 * afl, arate);
    // flash: what the models train with (no (T, T) matrix; backward
    // recomputes the scores, one product more than the materialised op)
    float *lse = buf((size_t)B * NH * T, 1);
    double ff, fb;
    TIME_MS(ff, weft_attention_flash_forward(aout, lse, qkv, B, T, C, NH));
    TIME_MS(fb, weft_attention_flash_backward(dqkv, dout, qkv, aout, lse, B, T, C, NH));
    row("attention flash", shape, ff, fb, afl, 2 * afl, arate);
    af = ff, ab = fb;   // the projected step uses what the models call
    flops += L * 3 * afl;
    sgemm_s += L * 3 * afl / arate;
    double other_ms = L * (af + ab);

    // --- row-wise ops -----------------------------------------------------
    float *x = buf((size_t)N * 4 * C, 2), *y = buf((size_t)N * 4 * C, 1);
    float *dy = buf((size_t)N * 4 * C, 1), *dx = calloc((size_t)N * 4 * C, 4);
    float *w = buf(C, 1), *b = buf(C, 1), *dw = calloc(C, 4), *db = calloc(C, 4);
    float *mean = calloc(N, 4), *rstd = calloc(N, 4);
    double f, bk;
    TIME_MS(f, weft_layernorm_forward(y, mean, rstd, x, w, b, N, C));
    TIME_MS(bk, weft_layernorm_backward(dx, dw, db, dy, x, w, mean, rstd, N, C));
    snprintf(shape, sizeof shape, "%dx%d", N, C);
    row("layernorm", shape, f, bk, 0, 0, 0);
    other_ms += (2 * L + 1) * (f + bk);
    TIME_MS(f, weft_gelu_forward(y, x, (size_t)N * 4 * C));
    TIME_MS(bk, weft_gelu_backward(dx, x, dy, (size_t)N * 4 * C));
    snprintf(shape, sizeof shape, "%dx%d", N, 4 * C);
    row("gelu", shape, f, bk, 0, 0, 0);
    other_ms += L * (f + bk);
    TIME_MS(f, weft_residual_forward(y, x, dy, (size_t)N * C));
    TIME_MS(bk, weft_residual_backward(dx, y, dy, (size_t)N * C));
    snprintf(shape, sizeof shape, "%dx%d", N, C);
    row("residual", shape, f, bk, 0, 0, 0);
    other_ms += 2 * L * (f + bk);
    // what a block does between attention and MLP, unfused (residual add,
    // then LayerNorm; LayerNorm backward, then the residual's) and fused
    float *res = buf((size_t)N * C, 1), *dres = buf((size_t)N * C, 1), *da = calloc((size_t)N * C, 4);
    TIME_MS(f, (weft_residual_forward(res, x, dy, (size_t)N * C),
                weft_layernorm_forward(y, mean, rstd, res, w, b, N, C)));
    TIME_MS(bk, (weft_layernorm_backward(dres, dw, db, dy, res, w, mean, rstd, N, C),
                 weft_residual_backward(dx, da, dres, (size_t)N * C)));
    row("ln+res unfused", shape, f, bk, 0, 0, 0);
    double uf = f, ub = bk;
    TIME_MS(f, weft_layernorm_residual_forward(res, y, mean, rstd, x, dy, w, b, N, C));
    TIME_MS(bk, weft_layernorm_residual_backward(dx, da, dw, db, dy, dres, res, w, mean, rstd, N, C));
    row("ln+res fused", shape, f, bk, 0, 0, 0);
    printf("%-14s %-22s %9.2fx %8.2fx   (unfused / fused)\n", "", "", uf / f, ub / bk);
    free(res); free(dres); free(da);

    float *wte = buf((size_t)V * C, 0.04f), *wpe = buf((size_t)T * C, 0.02f);
    float *dwte = calloc((size_t)V * C, 4), *dwpe = calloc((size_t)T * C, 4);
    int32_t *tok = malloc((size_t)N * sizeof(int32_t));
    for (int i = 0; i < N; i++)
        tok[i] = (int32_t)(((uint64_t)i * 2654435761u) % (uint64_t)V);
    TIME_MS(f, weft_embedding_forward(y, tok, wte, wpe, B, T, C));
    TIME_MS(bk, weft_embedding_backward(dwte, dwpe, dy, tok, B, T, C));
    snprintf(shape, sizeof shape, "%dx%d V%d", N, C, V);
    row("embedding", shape, f, bk, 0, 0, 0);
    other_ms += f + bk;

    float *logits = buf((size_t)N * V, 8), *dlogits = malloc((size_t)N * V * 4);
    float *losses = malloc((size_t)N * 4);
    TIME_MS(f, weft_xent_forward_backward(losses, NULL, logits, tok, N, V, 1.0 / N));
    TIME_MS(bk, weft_xent_forward_backward(losses, dlogits, logits, tok, N, V, 1.0 / N));
    snprintf(shape, sizeof shape, "%dx%d", N, V);
    row("xent (f / f+b)", shape, f, bk, 0, 0, 0);
    // the models' path (parallel/tp.c): stats forward, grad backward as
    // two calls, beside the scalar libm loops it replaced
    double *mx = malloc((size_t)N * 3 * sizeof(double)), *xlse = mx + 2 * N;
    TIME_MS(f, weft_xent_stats(mx, mx + N, xlse, logits, tok, N, V, 0));
    for (int i = 0; i < N; i++)
        xlse[i] = mx[i] + log(mx[N + i]);
    TIME_MS(bk, weft_xent_grad(dlogits, logits, xlse, tok, N, V, 0, 1.0 / N));
    row("xent 2-call", shape, f, bk, 0, 0, 0);
    other_ms += f + bk;   // the projected step counts what the models call
    double rf, rb;
    TIME_MS(rf, xent_libm_forward(mx, logits, N, V));
    TIME_MS(rb, xent_libm_backward(dlogits, logits, xlse, tok, N, V, 1.0 / N));
    row("xent libm ref", shape, rf, rb, 0, 0, 0);
    free(mx);

    // the exp loops (kernels/vexp.h) in each copy this CPU runs; the ops
    // above ran the widest
    static const char *const isas[] = {"sse2", "avx2", "avx512"};
    printf("exp loops by vector width (the ops above use %s):\n", weft_vexp()->isa);
    for (int c = 0; c < 3; c++) {
        const weft_vexp_ops *v = weft_vexp_isa(isas[c]);
        if (!v)
            continue;
        char op[32];
        TIME_MS(f, v->gelu_forward(y, x, (size_t)N * 4 * C));
        TIME_MS(bk, v->gelu_backward(dx, x, dy, (size_t)N * 4 * C));
        snprintf(op, sizeof op, "gelu %s", v->isa);
        snprintf(shape, sizeof shape, "%dx%d", N, 4 * C);
        row(op, shape, f, bk, 0, 0, 0);
        // the cross-entropy's two exp passes: tile sums, gradient row
        double sfake = 0;
        TIME_MS(f, for (int i = 0; i < N; i++) sfake += v->sum_exp(logits + (size_t)i * V, V, 40.0f));
        TIME_MS(bk, for (int i = 0; i < N; i++) v->exp_affine(dlogits + (size_t)i * V, logits + (size_t)i * V, V,
                                                               40.0f, 0.0f, 1.0f / N));
        snprintf(op, sizeof op, "xent exp %s", v->isa);
        snprintf(shape, sizeof shape, "%dx%d", N, V);
        row(op, shape, f, bk, 0, 0, 0);
        if (sfake < 0)
            printf("%g\n", sfake);
    }

    // AdamW and the norm over every parameter of the model
    size_t np = (size_t)V * C + (size_t)T * C + (size_t)L * (12 * C * C + 13 * C) + 2 * C;
    float *p = buf(np, 0.04f), *g = buf(np, 0.01f), *m = calloc(np, 4), *v = calloc(np, 4);
    double sq = 0;
    TIME_MS(f, weft_adamw_update(p, g, m, v, np, 1e-3, 0.9, 0.95, 1e-8, 0.1, 10, 1.0));
    TIME_MS(bk, sq += weft_sumsq(g, np));
    snprintf(shape, sizeof shape, "%zu params", np);
    printf("%-14s %-22s %9.3f %9s   (sumsq %.3f ms)\n", "adamw", shape, f, "", bk);
    other_ms += f + bk;

    // --- projected step -----------------------------------------------------
    double step_ms = layer_ms + head_ms + other_ms;
    double model = flops / (step_ms * 1e-3), ref = flops / sgemm_s;
    printf("\nprojected GPT step (L %d, fwd+bwd+AdamW, ops summed): %.1f ms, of which "
           "matmul %.1f, attention %.1f, other %.1f\n", L, step_ms, layer_ms + head_ms,
           L * (af + ab), other_ms - L * (af + ab));
    printf("model FLOPs/step %.2f G (matmuls x3 + causal attention x3); model FLOP/s %.1f G; "
           "SGEMM at the model's shapes %.1f G; ratio %.0f%% (target >= 50%%)\n",
           flops * 1e-9, model * 1e-9, ref * 1e-9, 100 * model / ref);
    if (sq < 0)   // keep the sumsq calls observable
        printf("%g\n", sq);
    free(qkv); free(aout); free(att); free(datt); free(dqkv); free(dout); free(lse);
    free(x); free(y); free(dy); free(dx); free(w); free(b); free(dw); free(db);
    free(mean); free(rstd); free(wte); free(wpe); free(dwte); free(dwpe); free(tok);
    free(logits); free(dlogits); free(losses); free(p); free(g); free(m); free(v);
    return 0;
}
