/*
 * ops_cuda.c -- the cuda device's ops table (kernels/ops.h): adapters over
 * the CUDA kernels' C table (kernels/cuda/cuda_ops.h, libweft-cuda.so,
 * loaded by kernels/cuda_load.c) on one context on the device's compute
 * stream, made when the table is. An op that fails records the kernels'
 * message (ctx_error) as the table's sticky error, WEFT_EUNAVAILABLE: the
 * GPU, not the caller, failed.
 *
 * Where cuda_ops.h has no kernel of its own:
 * - layernorm_residual_* and rmsnorm_residual_* are composed: forward is
 *   residual_forward then the norm's forward; backward adds dres to da and
 *   db (residual_backward), then the norm's input gradient into each of
 *   them (its weight gradients once). Same values up to float rounding, not
 *   bitwise the fused CPU kernel's (the CPU adds dres and the norm's
 *   gradient before accumulating); the norm's backward runs twice.
 * - xent_forward_backward is the kernels' xent_forward_backward then
 *   xent_mean (which waits for the stream); it needs losses (the mean is
 *   taken from them): losses NULL is WEFT_EUNSUPPORTED; so is xent_finish's.
 * - bf16_mirror and bf16_refresh do nothing: there are no bf16 copies of
 *   the weights to keep, the products round their operands (ctx_set_bf16).
 * - rope_table (made once, at model creation) and attention_decode (the
 *   key/value-cache attention of generation) have no CUDA kernel: they
 *   report WEFT_EUNSUPPORTED naming the op.
 *
 * Compiled and type-checked on every machine; it has never run on a GPU
 * (issue 20's tests/gpu/run.sh is where it will).
 */
#include "kernels/ops.h"
#include "kernels/cuda_load.h"
#include "runtime/error.h"

#include <stdlib.h>

typedef struct cuda_state {
    const weft_cuda_ops *k;
    weft_cuda_ctx *ctx;
} cuda_state;

/* rc of a kernel call: nonzero is the table's sticky error. */
static void check(weft_ops *o, const char *op, int rc)
{
    if (rc) {
        cuda_state *s = o->impl;
        weft_ops_fail(o, WEFT_EUNAVAILABLE, op, "CUDA kernel failed (%d): %s", rc, s->k->ctx_error(s->ctx));
    }
}

static void unsupported(weft_ops *o, const char *op)
{
    weft_ops_fail(o, WEFT_EUNSUPPORTED, op, "no CUDA kernel for this op yet (kernels/ops_cuda.c)");
}

static void cu_matmul_forward(weft_ops *o, float *out, const float *inp, const float *weight, const float *bias, int N,
                              int C, int OC)
{
    cuda_state *s = o->impl;
    check(o, "matmul_forward", s->k->matmul_forward(s->ctx, out, inp, weight, bias, N, C, OC));
}

static void cu_matmul_backward(weft_ops *o, float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, int N, int C, int OC)
{
    cuda_state *s = o->impl;
    check(o, "matmul_backward", s->k->matmul_backward(s->ctx, dinp, dweight, dbias, dout, inp, weight, N, C, OC));
}

static void cu_layernorm_forward(weft_ops *o, float *out, float *mean, float *rstd, const float *inp,
                                 const float *weight, const float *bias, int N, int C)
{
    cuda_state *s = o->impl;
    check(o, "layernorm_forward", s->k->layernorm_forward(s->ctx, out, mean, rstd, inp, weight, bias, N, C));
}

static void cu_layernorm_backward(weft_ops *o, float *dinp, float *dweight, float *dbias, const float *dout,
                                  const float *inp, const float *weight, const float *mean, const float *rstd, int N,
                                  int C)
{
    cuda_state *s = o->impl;
    check(o, "layernorm_backward",
          s->k->layernorm_backward(s->ctx, dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C));
}

static void cu_rmsnorm_forward(weft_ops *o, float *out, float *rstd, const float *inp, const float *weight, int N,
                               int C, double eps)
{
    cuda_state *s = o->impl;
    check(o, "rmsnorm_forward", s->k->rmsnorm_forward(s->ctx, out, rstd, inp, weight, N, C, eps));
}

static void cu_rmsnorm_backward(weft_ops *o, float *dinp, float *dweight, const float *dout, const float *inp,
                                const float *weight, const float *rstd, int N, int C)
{
    cuda_state *s = o->impl;
    check(o, "rmsnorm_backward", s->k->rmsnorm_backward(s->ctx, dinp, dweight, dout, inp, weight, rstd, N, C));
}

static void cu_gelu_forward(weft_ops *o, float *out, const float *inp, size_t n)
{
    cuda_state *s = o->impl;
    check(o, "gelu_forward", s->k->gelu_forward(s->ctx, out, inp, n));
}

static void cu_gelu_backward(weft_ops *o, float *dinp, const float *inp, const float *dout, size_t n)
{
    cuda_state *s = o->impl;
    check(o, "gelu_backward", s->k->gelu_backward(s->ctx, dinp, inp, dout, n));
}

static void cu_residual_forward(weft_ops *o, float *out, const float *a, const float *b, size_t n)
{
    cuda_state *s = o->impl;
    check(o, "residual_forward", s->k->residual_forward(s->ctx, out, a, b, n));
}

static void cu_residual_backward(weft_ops *o, float *da, float *db, const float *dout, size_t n)
{
    cuda_state *s = o->impl;
    check(o, "residual_backward", s->k->residual_backward(s->ctx, da, db, dout, n));
}

static void cu_swiglu_forward(weft_ops *o, float *out, const float *gate, const float *up, size_t n)
{
    cuda_state *s = o->impl;
    check(o, "swiglu_forward", s->k->swiglu_forward(s->ctx, out, gate, up, n));
}

static void cu_swiglu_backward(weft_ops *o, float *dgate, float *dup, const float *gate, const float *up,
                               const float *dout, size_t n)
{
    cuda_state *s = o->impl;
    check(o, "swiglu_backward", s->k->swiglu_backward(s->ctx, dgate, dup, gate, up, dout, n));
}

static void cu_embedding_forward(weft_ops *o, float *out, const int32_t *tokens, const float *wte, const float *wpe,
                                 int B, int T, int C)
{
    cuda_state *s = o->impl;
    check(o, "embedding_forward", s->k->embedding_forward(s->ctx, out, tokens, wte, wpe, B, T, C));
}

static void cu_embedding_backward(weft_ops *o, float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                                  int B, int T, int C)
{
    cuda_state *s = o->impl;
    check(o, "embedding_backward", s->k->embedding_backward(s->ctx, dwte, dwpe, dout, tokens, B, T, C));
}

static void cu_xent_stats(weft_ops *o, double *mx, double *sum, double *xt, const float *logits, const int32_t *targets,
                          int N, int V, int v0)
{
    cuda_state *s = o->impl;
    check(o, "xent_stats", s->k->xent_stats(s->ctx, mx, sum, xt, logits, targets, N, V, v0));
}

static void cu_xent_grad(weft_ops *o, float *dlogits, const float *logits, const double *lse, const int32_t *targets,
                         int N, int V, int v0, double dloss)
{
    cuda_state *s = o->impl;
    check(o, "xent_grad", s->k->xent_grad(s->ctx, dlogits, logits, lse, targets, N, V, v0, dloss));
}

/* The head's gradient in f32 over the logits, then its products: the
 * composition the op stands for (bf16's one pass is the CPU's). */
static void cu_xent_head_backward(weft_ops *o, float *dinp, float *dweight, float *logits, const double *lse,
                                  const int32_t *targets, const float *inp, const float *weight, int N, int C, int V,
                                  int v0, double dloss)
{
    cu_xent_grad(o, logits, logits, lse, targets, N, V, v0, dloss);
    cu_matmul_backward(o, dinp, dweight, NULL, logits, inp, weight, N, C, V);
}

static void cu_adamw_update(weft_ops *o, float *params, const float *grads, float *m, float *v, size_t n, double lr,
                            double beta1, double beta2, double eps, double weight_decay, int64_t t, double grad_scale)
{
    cuda_state *s = o->impl;
    check(o, "adamw_update",
          s->k->adamw_update(s->ctx, params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, t, grad_scale));
}

static void cu_sumsq(weft_ops *o, double *out, const float *x, size_t n)
{
    cuda_state *s = o->impl;
    check(o, "sumsq", s->k->sumsq(s->ctx, out, x, n));
}

static void cu_rope_forward(weft_ops *o, float *x, const float *cos, const float *sin, int B, int T, int nh, int hs)
{
    cuda_state *s = o->impl;
    check(o, "rope_forward", s->k->rope_forward(s->ctx, x, cos, sin, B, T, nh, hs));
}

static void cu_rope_backward(weft_ops *o, float *dx, const float *cos, const float *sin, int B, int T, int nh, int hs)
{
    cuda_state *s = o->impl;
    check(o, "rope_backward", s->k->rope_backward(s->ctx, dx, cos, sin, B, T, nh, hs));
}

static void cu_attention_flash_forward(weft_ops *o, float *out, float *lse, const float *qkv, int B, int T, int C,
                                       int NH)
{
    cuda_state *s = o->impl;
    check(o, "attention_flash_forward", s->k->attention_forward(s->ctx, out, lse, qkv, B, T, C, NH));
}

static void cu_attention_flash_backward(weft_ops *o, float *dqkv, const float *dout, const float *qkv, const float *out,
                                        const float *lse, int B, int T, int C, int NH)
{
    cuda_state *s = o->impl;
    check(o, "attention_flash_backward", s->k->attention_backward(s->ctx, dqkv, dout, qkv, out, lse, B, T, C, NH));
}

static void cu_gqa_attention_flash_forward(weft_ops *o, float *out, float *lse, const float *q, const float *k,
                                           const float *v, int B, int T, int NH, int NKV, int hs)
{
    cuda_state *s = o->impl;
    check(o, "gqa_attention_flash_forward", s->k->gqa_attention_forward(s->ctx, out, lse, q, k, v, B, T, NH, NKV, hs));
}

static void cu_gqa_attention_flash_backward(weft_ops *o, float *dq, float *dk, float *dv, const float *dout,
                                            const float *q, const float *k, const float *v, const float *out,
                                            const float *lse, int B, int T, int NH, int NKV, int hs)
{
    cuda_state *s = o->impl;
    check(o, "gqa_attention_flash_backward",
          s->k->gqa_attention_backward(s->ctx, dq, dk, dv, dout, q, k, v, out, lse, B, T, NH, NKV, hs));
}

static void cu_layernorm_residual_forward(weft_ops *o, float *res, float *out, float *mean, float *rstd, const float *a,
                                          const float *b, const float *weight, const float *bias, int N, int C)
{
    cuda_state *s = o->impl;
    check(o, "layernorm_residual_forward", s->k->residual_forward(s->ctx, res, a, b, (size_t)N * C));
    check(o, "layernorm_residual_forward", s->k->layernorm_forward(s->ctx, out, mean, rstd, res, weight, bias, N, C));
}

static void cu_layernorm_residual_backward(weft_ops *o, float *da, float *db, float *dweight, float *dbias,
                                           const float *dout, const float *dres, const float *res, const float *weight,
                                           const float *mean, const float *rstd, int N, int C)
{
    cuda_state *s = o->impl;
    const char *op = "layernorm_residual_backward";
    check(o, op, s->k->residual_backward(s->ctx, da, db, dres, (size_t)N * C));
    check(o, op, s->k->layernorm_backward(s->ctx, da, dweight, dbias, dout, res, weight, mean, rstd, N, C));
    check(o, op, s->k->layernorm_backward(s->ctx, db, NULL, NULL, dout, res, weight, mean, rstd, N, C));
}

static void cu_rmsnorm_residual_forward(weft_ops *o, float *res, float *out, float *rstd, const float *a,
                                        const float *b, const float *weight, int N, int C, double eps)
{
    cuda_state *s = o->impl;
    check(o, "rmsnorm_residual_forward", s->k->residual_forward(s->ctx, res, a, b, (size_t)N * C));
    check(o, "rmsnorm_residual_forward", s->k->rmsnorm_forward(s->ctx, out, rstd, res, weight, N, C, eps));
}

static void cu_rmsnorm_residual_backward(weft_ops *o, float *da, float *db, float *dweight, const float *dout,
                                         const float *dres, const float *res, const float *weight, const float *rstd,
                                         int N, int C)
{
    cuda_state *s = o->impl;
    const char *op = "rmsnorm_residual_backward";
    check(o, op, s->k->residual_backward(s->ctx, da, db, dres, (size_t)N * C));
    check(o, op, s->k->rmsnorm_backward(s->ctx, da, dweight, dout, res, weight, rstd, N, C));
    check(o, op, s->k->rmsnorm_backward(s->ctx, db, NULL, dout, res, weight, rstd, N, C));
}

static void cu_xent_forward_backward(weft_ops *o, double *mean, float *losses, float *dlogits, const float *logits,
                                     const int32_t *targets, int N, int V, double dloss)
{
    cuda_state *s = o->impl;
    *mean = 0;
    if (!losses) {
        weft_ops_fail(o, WEFT_EUNSUPPORTED, "xent_forward_backward",
                      "on cuda the mean loss is taken from losses, which must not be NULL");
        return;
    }
    check(o, "xent_forward_backward",
          s->k->xent_forward_backward(s->ctx, losses, dlogits, logits, targets, N, V, dloss));
    check(o, "xent_forward_backward", s->k->xent_mean(s->ctx, mean, losses, targets, N));
}

static void cu_rope_table(weft_ops *o, float *cos, float *sin, int T, int hs, double theta)
{
    (void)cos, (void)sin, (void)T, (void)hs, (void)theta;
    unsupported(o, "rope_table");
}

static void cu_attention_decode(weft_ops *o, float *out, float *scratch, const float *q, const float *kc,
                                const float *vc, int n, int pos0, int NH, int NKV, int hs)
{
    (void)out, (void)scratch, (void)q, (void)kc, (void)vc, (void)n, (void)pos0, (void)NH, (void)NKV, (void)hs;
    unsupported(o, "attention_decode");
}

static void cu_zero(weft_ops *o, float *x, size_t n)
{
    cuda_state *s = o->impl;
    check(o, "zero", s->k->zero(s->ctx, x, n));
}

static void cu_copy(weft_ops *o, float *dst, const float *src, size_t n)
{
    cuda_state *s = o->impl;
    check(o, "copy", s->k->copy(s->ctx, dst, src, n));
}

static void cu_scale(weft_ops *o, float *x, size_t n, float sc)
{
    cuda_state *s = o->impl;
    check(o, "scale", s->k->scale(s->ctx, x, n, sc));
}

static void cu_axpy(weft_ops *o, float *y, const float *x, size_t n, float a)
{
    cuda_state *s = o->impl;
    check(o, "axpy", s->k->axpy(s->ctx, y, x, n, a));
}

static void cu_xent_finish(weft_ops *o, double *mean, float *losses, double *lse, const double *mx, const double *sum,
                           const double *xt, const int32_t *targets, int N)
{
    cuda_state *s = o->impl;
    if (!losses) { /* the mean is taken from them */
        weft_ops_fail(o, WEFT_EUNSUPPORTED, "xent_finish", "needs losses on cuda (kernels/ops_cuda.c)");
        return;
    }
    check(o, "xent_finish", s->k->xent_finish(s->ctx, mean, losses, lse, mx, sum, xt, targets, N));
}

static void cu_fill(weft_ops *o, float *x, size_t n, float v)
{
    cuda_state *s = o->impl;
    check(o, "fill", s->k->fill(s->ctx, x, n, v));
}

/* No bf16 copies of the weights on cuda: the products round f32 operands
 * themselves (cuda_ops.h, ctx_set_bf16). */
static void cu_bf16_mirror(weft_ops *o, const float *base, size_t n)
{
    (void)o, (void)base, (void)n;
}

static void cu_bf16_refresh(weft_ops *o, const float *p, size_t n)
{
    (void)o, (void)p, (void)n;
}

static void cu_add_rows(weft_ops *o, float *out, const float *rows, int N, int P, int C)
{
    cuda_state *s = o->impl;
    check(o, "add_rows", s->k->add_rows(s->ctx, out, rows, N, P, C));
}

static void cu_embedding_vp_forward(weft_ops *o, float *out, const int32_t *tokens, const float *wte_local, int v0,
                                    int Vl, int N, int C)
{
    cuda_state *s = o->impl;
    check(o, "embedding_vp_forward", s->k->embedding_vp_forward(s->ctx, out, tokens, wte_local, v0, Vl, N, C));
}

static void cu_embedding_vp_backward(weft_ops *o, float *dwte_local, float *dwpe, const float *dout,
                                     const int32_t *tokens, int v0, int Vl, int B, int T, int C)
{
    cuda_state *s = o->impl;
    check(o, "embedding_vp_backward",
          s->k->embedding_vp_backward(s->ctx, dwte_local, dwpe, dout, tokens, v0, Vl, B, T, C));
}

static void cu_xent_rescale(weft_ops *o, double *sum, double *mx, const double *gmx, int N)
{
    cuda_state *s = o->impl;
    check(o, "xent_rescale", s->k->xent_rescale(s->ctx, sum, mx, gmx, N));
}

static void cu_matmul_nn_add(weft_ops *o, float *out, const float *a, const float *b, int N, int K, int M)
{
    cuda_state *s = o->impl;
    check(o, "matmul_nn_add", s->k->matmul_nn_add(s->ctx, out, a, b, N, K, M));
}

static void cu_lora_dropout(weft_ops *o, float *xd, const float *x, int N, int in, int col0, uint64_t key,
                            uint64_t id, double p)
{
    cuda_state *s = o->impl;
    check(o, "lora_dropout", s->k->lora_dropout(s->ctx, xd, x, N, in, col0, key, id, p));
}

static void cu_lora_dropout_add(weft_ops *o, float *dx, const float *g, int N, int in, int col0, uint64_t key,
                                uint64_t id, double p)
{
    cuda_state *s = o->impl;
    check(o, "lora_dropout_add", s->k->lora_dropout_add(s->ctx, dx, g, N, in, col0, key, id, p));
}

static void cu_sumsq_acc(weft_ops *o, double *acc, const float *x, size_t n)
{
    cuda_state *s = o->impl;
    check(o, "sumsq_acc", s->k->sumsq_acc(s->ctx, acc, x, n));
}

static void cuda_close(weft_ops *o)
{
    cuda_state *s = o->impl;
    if (s && s->ctx)
        s->k->ctx_free(s->ctx);
    free(s);
    o->impl = NULL;
}

int weft_ops_cuda_new(weft_dev *d, int max_cols, weft_ops **out)
{
    *out = NULL;
    cuda_state *s = calloc(1, sizeof *s);
    weft_ops *o = calloc(1, sizeof *o);
    if (!s || !o) {
        free(s);
        free(o);
        return weft_error(WEFT_ENOMEM, "ops table for cuda: out of memory");
    }
    int rc = weft_cuda_kernels_open(d, max_cols, &s->k, &s->ctx);
    if (rc) {
        free(s);
        free(o);
        return rc;
    }
    o->dev = d;
    o->impl = s;
    o->close = cuda_close;
    o->matmul_forward = cu_matmul_forward;
    o->matmul_backward = cu_matmul_backward;
    o->layernorm_forward = cu_layernorm_forward;
    o->layernorm_backward = cu_layernorm_backward;
    o->layernorm_residual_forward = cu_layernorm_residual_forward;
    o->layernorm_residual_backward = cu_layernorm_residual_backward;
    o->rmsnorm_forward = cu_rmsnorm_forward;
    o->rmsnorm_backward = cu_rmsnorm_backward;
    o->rmsnorm_residual_forward = cu_rmsnorm_residual_forward;
    o->rmsnorm_residual_backward = cu_rmsnorm_residual_backward;
    o->gelu_forward = cu_gelu_forward;
    o->gelu_backward = cu_gelu_backward;
    o->residual_forward = cu_residual_forward;
    o->residual_backward = cu_residual_backward;
    o->swiglu_forward = cu_swiglu_forward;
    o->swiglu_backward = cu_swiglu_backward;
    o->embedding_forward = cu_embedding_forward;
    o->embedding_backward = cu_embedding_backward;
    o->xent_forward_backward = cu_xent_forward_backward;
    o->xent_stats = cu_xent_stats;
    o->xent_grad = cu_xent_grad;
    o->xent_head_backward = cu_xent_head_backward;
    o->adamw_update = cu_adamw_update;
    o->sumsq = cu_sumsq;
    o->rope_table = cu_rope_table;
    o->rope_forward = cu_rope_forward;
    o->rope_backward = cu_rope_backward;
    o->attention_flash_forward = cu_attention_flash_forward;
    o->attention_flash_backward = cu_attention_flash_backward;
    o->gqa_attention_flash_forward = cu_gqa_attention_flash_forward;
    o->gqa_attention_flash_backward = cu_gqa_attention_flash_backward;
    o->attention_decode = cu_attention_decode;
    o->zero = cu_zero;
    o->copy = cu_copy;
    o->scale = cu_scale;
    o->axpy = cu_axpy;
    o->xent_finish = cu_xent_finish;
    o->fill = cu_fill;
    o->bf16_mirror = cu_bf16_mirror;
    o->bf16_refresh = cu_bf16_refresh;
    o->add_rows = cu_add_rows;
    o->embedding_vp_forward = cu_embedding_vp_forward;
    o->embedding_vp_backward = cu_embedding_vp_backward;
    o->xent_rescale = cu_xent_rescale;
    o->matmul_nn_add = cu_matmul_nn_add;
    o->lora_dropout = cu_lora_dropout;
    o->lora_dropout_add = cu_lora_dropout_add;
    o->sumsq_acc = cu_sumsq_acc;
    *out = o;
    return 0;
}
