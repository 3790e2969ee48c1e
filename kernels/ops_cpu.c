/*
 * ops_cpu.c -- the cpu device's ops table (kernels/ops.h): every entry is a
 * direct call of the kernels.h function of the same name, so a model that
 * computes through the table gets bitwise the results of calling kernels.h;
 * the memory ops (zero, copy, scale, axpy) are the host code they replaced
 * in the models.
 * No entry can fail: the CPU kernels have no error path.
 */
#include "kernels/ops.h"
#include "kernels/kernels.h"
#include "runtime/copy_stream.h"
#include "runtime/error.h"
#include "runtime/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void cpu_matmul_forward(weft_ops *o, float *out, const float *inp, const float *weight, const float *bias, int N,
                               int C, int OC)
{
    (void)o;
    weft_matmul_forward(out, inp, weight, bias, N, C, OC);
}

static void cpu_matmul_backward(weft_ops *o, float *dinp, float *dweight, float *dbias, const float *dout,
                                const float *inp, const float *weight, int N, int C, int OC)
{
    (void)o;
    weft_matmul_backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
}

static void cpu_layernorm_forward(weft_ops *o, float *out, float *mean, float *rstd, const float *inp,
                                  const float *weight, const float *bias, int N, int C)
{
    (void)o;
    weft_layernorm_forward(out, mean, rstd, inp, weight, bias, N, C);
}

static void cpu_layernorm_backward(weft_ops *o, float *dinp, float *dweight, float *dbias, const float *dout,
                                   const float *inp, const float *weight, const float *mean, const float *rstd, int N,
                                   int C)
{
    (void)o;
    weft_layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}

static void cpu_layernorm_residual_forward(weft_ops *o, float *res, float *out, float *mean, float *rstd,
                                           const float *a, const float *b, const float *weight, const float *bias,
                                           int N, int C)
{
    (void)o;
    weft_layernorm_residual_forward(res, out, mean, rstd, a, b, weight, bias, N, C);
}

static void cpu_layernorm_residual_backward(weft_ops *o, float *da, float *db, float *dweight, float *dbias,
                                            const float *dout, const float *dres, const float *res, const float *weight,
                                            const float *mean, const float *rstd, int N, int C)
{
    (void)o;
    weft_layernorm_residual_backward(da, db, dweight, dbias, dout, dres, res, weight, mean, rstd, N, C);
}

static void cpu_rmsnorm_forward(weft_ops *o, float *out, float *rstd, const float *inp, const float *weight, int N,
                                int C, double eps)
{
    (void)o;
    weft_rmsnorm_forward(out, rstd, inp, weight, N, C, eps);
}

static void cpu_rmsnorm_backward(weft_ops *o, float *dinp, float *dweight, const float *dout, const float *inp,
                                 const float *weight, const float *rstd, int N, int C)
{
    (void)o;
    weft_rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, N, C);
}

static void cpu_rmsnorm_residual_forward(weft_ops *o, float *res, float *out, float *rstd, const float *a,
                                         const float *b, const float *weight, int N, int C, double eps)
{
    (void)o;
    weft_rmsnorm_residual_forward(res, out, rstd, a, b, weight, N, C, eps);
}

static void cpu_rmsnorm_residual_backward(weft_ops *o, float *da, float *db, float *dweight, const float *dout,
                                          const float *dres, const float *res, const float *weight, const float *rstd,
                                          int N, int C)
{
    (void)o;
    weft_rmsnorm_residual_backward(da, db, dweight, dout, dres, res, weight, rstd, N, C);
}

static void cpu_gelu_forward(weft_ops *o, float *out, const float *inp, size_t n)
{
    (void)o;
    weft_gelu_forward(out, inp, n);
}

static void cpu_gelu_backward(weft_ops *o, float *dinp, const float *inp, const float *dout, size_t n)
{
    (void)o;
    weft_gelu_backward(dinp, inp, dout, n);
}

static void cpu_residual_forward(weft_ops *o, float *out, const float *a, const float *b, size_t n)
{
    (void)o;
    weft_residual_forward(out, a, b, n);
}

static void cpu_residual_backward(weft_ops *o, float *da, float *db, const float *dout, size_t n)
{
    (void)o;
    weft_residual_backward(da, db, dout, n);
}

static void cpu_swiglu_forward(weft_ops *o, float *out, const float *gate, const float *up, size_t n)
{
    (void)o;
    weft_swiglu_forward(out, gate, up, n);
}

static void cpu_swiglu_backward(weft_ops *o, float *dgate, float *dup, const float *gate, const float *up,
                                const float *dout, size_t n)
{
    (void)o;
    weft_swiglu_backward(dgate, dup, gate, up, dout, n);
}

static void cpu_embedding_forward(weft_ops *o, float *out, const int32_t *tokens, const float *wte, const float *wpe,
                                  int B, int T, int C)
{
    (void)o;
    weft_embedding_forward(out, tokens, wte, wpe, B, T, C);
}

static void cpu_embedding_backward(weft_ops *o, float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                                   int B, int T, int C)
{
    (void)o;
    weft_embedding_backward(dwte, dwpe, dout, tokens, B, T, C);
}

static void cpu_xent_forward_backward(weft_ops *o, double *mean, float *losses, float *dlogits, const float *logits,
                                      const int32_t *targets, int N, int V, double dloss)
{
    (void)o;
    *mean = weft_xent_forward_backward(losses, dlogits, logits, targets, N, V, dloss);
}

static void cpu_xent_stats(weft_ops *o, double *mx, double *sum, double *xt, const float *logits,
                           const int32_t *targets, int N, int V, int v0)
{
    (void)o;
    weft_xent_stats(mx, sum, xt, logits, targets, N, V, v0);
}

static void cpu_xent_grad(weft_ops *o, float *dlogits, const float *logits, const double *lse, const int32_t *targets,
                          int N, int V, int v0, double dloss)
{
    (void)o;
    weft_xent_grad(dlogits, logits, lse, targets, N, V, v0, dloss);
}

static void cpu_xent_head_backward(weft_ops *o, float *dinp, float *dweight, float *logits, const double *lse,
                                   const int32_t *targets, const float *inp, const float *weight, int N, int C, int V,
                                   int v0, double dloss)
{
    (void)o;
    weft_xent_head_backward(dinp, dweight, logits, lse, targets, inp, weight, N, C, V, v0, dloss);
}

static void cpu_adamw_update(weft_ops *o, float *params, const float *grads, float *m, float *v, size_t n, double lr,
                             double beta1, double beta2, double eps, double weight_decay, int64_t t, double grad_scale)
{
    (void)o;
    weft_adamw_update(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, t, grad_scale);
}

static void cpu_sumsq(weft_ops *o, double *out, const float *x, size_t n)
{
    (void)o;
    *out = weft_sumsq(x, n);
}

static void cpu_rope_table(weft_ops *o, float *cos, float *sin, int T, int hs, double theta)
{
    (void)o;
    weft_rope_table(cos, sin, T, hs, theta);
}

static void cpu_rope_forward(weft_ops *o, float *x, const float *cos, const float *sin, int B, int T, int nh, int hs)
{
    (void)o;
    weft_rope_forward(x, cos, sin, B, T, nh, hs);
}

static void cpu_rope_backward(weft_ops *o, float *dx, const float *cos, const float *sin, int B, int T, int nh, int hs)
{
    (void)o;
    weft_rope_backward(dx, cos, sin, B, T, nh, hs);
}

static void cpu_attention_flash_forward(weft_ops *o, float *out, float *lse, const float *qkv, int B, int T, int C,
                                        int NH)
{
    (void)o;
    weft_attention_flash_forward(out, lse, qkv, B, T, C, NH);
}

static void cpu_attention_flash_backward(weft_ops *o, float *dqkv, const float *dout, const float *qkv,
                                         const float *out, const float *lse, int B, int T, int C, int NH)
{
    (void)o;
    weft_attention_flash_backward(dqkv, dout, qkv, out, lse, B, T, C, NH);
}

static void cpu_gqa_attention_flash_forward(weft_ops *o, float *out, float *lse, const float *q, const float *k,
                                            const float *v, int B, int T, int NH, int NKV, int hs)
{
    (void)o;
    weft_gqa_attention_flash_forward(out, lse, q, k, v, B, T, NH, NKV, hs);
}

static void cpu_gqa_attention_flash_backward(weft_ops *o, float *dq, float *dk, float *dv, const float *dout,
                                             const float *q, const float *k, const float *v, const float *out,
                                             const float *lse, int B, int T, int NH, int NKV, int hs)
{
    (void)o;
    weft_gqa_attention_flash_backward(dq, dk, dv, dout, q, k, v, out, lse, B, T, NH, NKV, hs);
}

static void cpu_attention_decode(weft_ops *o, float *out, float *scratch, const float *q, const float *kc,
                                 const float *vc, int n, int pos0, int NH, int NKV, int hs)
{
    (void)o;
    weft_attention_decode(out, scratch, q, kc, vc, n, pos0, NH, NKV, hs);
}

/* The memory ops: what the host code they replaced in the models did (the
 * zeroing with streaming stores when large: runtime/copy_stream.h says why). */
static void cpu_zero(weft_ops *o, float *x, size_t n)
{
    (void)o;
    weft_zero_stream(x, n * sizeof *x);
}

static void cpu_copy(weft_ops *o, float *dst, const float *src, size_t n)
{
    (void)o;
    memcpy(dst, src, n * sizeof *dst);
}

static void cpu_scale(weft_ops *o, float *x, size_t n, float s)
{
    (void)o;
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
}

static void cpu_axpy(weft_ops *o, float *y, const float *x, size_t n, float a)
{
    (void)o;
    for (size_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* parallel/tp.c's loop, moved here unchanged. */
static void cpu_xent_finish(weft_ops *o, double *mean, float *losses, double *lse, const double *mx, const double *sum,
                            const double *xt, const int32_t *targets, int N)
{
    (void)o;
    double total = 0;
    int counted = 0;
    for (int n = 0; n < N; n++) {
        lse[n] = mx[n] + log(sum[n]);
        double loss = targets[n] >= 0 ? lse[n] - xt[n] : 0.0;
        if (losses)
            losses[n] = (float)loss;
        if (targets[n] >= 0) {
            total += loss;
            counted++;
        }
    }
    *mean = counted ? total / counted : 0.0;
}

/* parallel/dp_zero3.c's poison loop (one run of it), unchanged. */
static void cpu_fill(weft_ops *o, float *x, size_t n, float v)
{
    (void)o;
    for (size_t i = 0; i < n; i++)
        x[i] = v;
}

static void cpu_bf16_mirror(weft_ops *o, const float *base, size_t n)
{
    int rc = weft_matmul_bf16_mirror(base, n);
    if (rc)
        weft_ops_fail(o, rc, "bf16_mirror", "%s", weft_last_error());
}

static void cpu_bf16_refresh(weft_ops *o, const float *p, size_t n)
{
    (void)o;
    weft_matmul_bf16_refresh(p, n);
}

/* parallel/tp.c's loops, moved here unchanged. */
static void cpu_add_rows(weft_ops *o, float *out, const float *rows, int N, int P, int C)
{
    (void)o;
    for (size_t i = 0; i < (size_t)N; i++)
        for (int c = 0; c < C; c++)
            out[i * C + c] += rows[(i % (size_t)P) * C + c];
}

static void cpu_embedding_vp_forward(weft_ops *o, float *out, const int32_t *tokens, const float *wte_local, int v0,
                                     int Vl, int N, int C)
{
    (void)o;
    for (size_t i = 0; i < (size_t)N; i++) {
        int32_t v = tokens[i] - v0;
        float *r = out + i * C;
        if (v >= 0 && v < Vl)
            memcpy(r, wte_local + (size_t)v * C, (size_t)C * sizeof(float));
        else
            memset(r, 0, (size_t)C * sizeof(float));
    }
}

static void cpu_embedding_vp_backward(weft_ops *o, float *dwte_local, float *dwpe, const float *dout,
                                      const int32_t *tokens, int v0, int Vl, int B, int T, int C)
{
    (void)o;
    size_t N = (size_t)B * T;
    for (size_t i = 0; i < N; i++) {
        const float *d = dout + i * C;
        int32_t v = tokens[i] - v0;
        float *pw = dwpe ? dwpe + (i % T) * C : NULL;
        for (int c = 0; pw && c < C; c++)
            pw[c] += d[c];
        if (v < 0 || v >= Vl)
            continue;
        float *w = dwte_local + (size_t)v * C;
        for (int c = 0; c < C; c++)
            w[c] += d[c];
    }
}

static void cpu_xent_rescale(weft_ops *o, double *sum, double *mx, const double *gmx, int N)
{
    (void)o;
    for (int n = 0; n < N; n++)
        sum[n] *= exp(mx[n] - gmx[n]);
    memcpy(mx, gmx, (size_t)N * sizeof(double));
}

/* model/lora.c's loops (dy_times_b, dh_times_a, its dropout), unchanged. */
static void cpu_matmul_nn_add(weft_ops *o, float *out, const float *a, const float *b, int N, int K, int M)
{
    (void)o;
    for (int n = 0; n < N; n++) {
        float *d = out + (size_t)n * M;
        for (int k = 0; k < K; k++) {
            float c = a[(size_t)n * K + k];
            const float *row = b + (size_t)k * M;
            for (int m = 0; m < M; m++)
                d[m] += c * row[m];
        }
    }
}

static int lora_kept(uint64_t key, uint64_t id, int n, int j, double p)
{
    uint64_t h = weft_rng_mix(key ^ id ^ weft_rng_mix(((uint64_t)n << 32) ^ (uint64_t)j));
    return (double)(h >> 11) * 0x1.0p-53 >= p;
}

static void cpu_lora_dropout(weft_ops *o, float *xd, const float *x, int N, int in, int col0, uint64_t key,
                             uint64_t id, double p)
{
    (void)o;
    float inv = (float)(1.0 / (1.0 - p));
    for (int n = 0; n < N; n++)
        for (int j = 0; j < in; j++) {
            size_t e = (size_t)n * in + j;
            xd[e] = lora_kept(key, id, n, col0 + j, p) ? x[e] * inv : 0.0f;
        }
}

static void cpu_lora_dropout_add(weft_ops *o, float *dx, const float *g, int N, int in, int col0, uint64_t key,
                                 uint64_t id, double p)
{
    (void)o;
    float inv = (float)(1.0 / (1.0 - p));
    for (int n = 0; n < N; n++)
        for (int j = 0; j < in; j++)
            if (lora_kept(key, id, n, col0 + j, p))
                dx[(size_t)n * in + j] += g[(size_t)n * in + j] * inv;
}

/* parallel/dp.c's gradient-norm sum: each range by weft_sumsq (four
 * double accumulators), added to the running total. One running double
 * over every element, as it was, waited on each add's latency: 7 ms a
 * call at 5 M gradients, 3% of a bf16 bench-cpu step. */
static void cpu_sumsq_acc(weft_ops *o, double *acc, const float *x, size_t n)
{
    (void)o;
    *acc += weft_sumsq(x, n);
}

int weft_ops_cpu_new(weft_dev *d, weft_ops **out)
{
    weft_ops *o = calloc(1, sizeof *o);
    if (!o)
        return weft_error(WEFT_ENOMEM, "ops table for the cpu: out of memory");
    o->dev = d;
    o->matmul_forward = cpu_matmul_forward;
    o->matmul_backward = cpu_matmul_backward;
    o->layernorm_forward = cpu_layernorm_forward;
    o->layernorm_backward = cpu_layernorm_backward;
    o->layernorm_residual_forward = cpu_layernorm_residual_forward;
    o->layernorm_residual_backward = cpu_layernorm_residual_backward;
    o->rmsnorm_forward = cpu_rmsnorm_forward;
    o->rmsnorm_backward = cpu_rmsnorm_backward;
    o->rmsnorm_residual_forward = cpu_rmsnorm_residual_forward;
    o->rmsnorm_residual_backward = cpu_rmsnorm_residual_backward;
    o->gelu_forward = cpu_gelu_forward;
    o->gelu_backward = cpu_gelu_backward;
    o->residual_forward = cpu_residual_forward;
    o->residual_backward = cpu_residual_backward;
    o->swiglu_forward = cpu_swiglu_forward;
    o->swiglu_backward = cpu_swiglu_backward;
    o->embedding_forward = cpu_embedding_forward;
    o->embedding_backward = cpu_embedding_backward;
    o->xent_forward_backward = cpu_xent_forward_backward;
    o->xent_stats = cpu_xent_stats;
    o->xent_grad = cpu_xent_grad;
    o->xent_head_backward = cpu_xent_head_backward;
    o->adamw_update = cpu_adamw_update;
    o->sumsq = cpu_sumsq;
    o->rope_table = cpu_rope_table;
    o->rope_forward = cpu_rope_forward;
    o->rope_backward = cpu_rope_backward;
    o->attention_flash_forward = cpu_attention_flash_forward;
    o->attention_flash_backward = cpu_attention_flash_backward;
    o->gqa_attention_flash_forward = cpu_gqa_attention_flash_forward;
    o->gqa_attention_flash_backward = cpu_gqa_attention_flash_backward;
    o->attention_decode = cpu_attention_decode;
    o->zero = cpu_zero;
    o->copy = cpu_copy;
    o->scale = cpu_scale;
    o->axpy = cpu_axpy;
    o->xent_finish = cpu_xent_finish;
    o->fill = cpu_fill;
    o->bf16_mirror = cpu_bf16_mirror;
    o->bf16_refresh = cpu_bf16_refresh;
    o->add_rows = cpu_add_rows;
    o->embedding_vp_forward = cpu_embedding_vp_forward;
    o->embedding_vp_backward = cpu_embedding_vp_backward;
    o->xent_rescale = cpu_xent_rescale;
    o->matmul_nn_add = cpu_matmul_nn_add;
    o->lora_dropout = cpu_lora_dropout;
    o->lora_dropout_add = cpu_lora_dropout_add;
    o->sumsq_acc = cpu_sumsq_acc;
    *out = o;
    return 0;
}
