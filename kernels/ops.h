/*
 * ops.h -- the compute ops of a training step as one table per device:
 * what the models (model/gpt.c, llama.c, lora.c), the optimizer
 * (model/optim.c) and the vocabulary-parallel layers (parallel/tp.c) call,
 * so that the same code runs on the CPU kernels (kernels/kernels.h) and on
 * the CUDA kernels (kernels/cuda/cuda_ops.h) without an #if.
 *
 * Every entry has the semantics of the kernels.h function of the same name
 * (weft_<name>): row-major, the same dimension letters, every backward
 * ACCUMULATES (+=) except rope_backward (in place), no entry allocates. Two
 * differences: each entry takes the table first, and the two that hand a
 * number to the host (xent_forward_backward's mean loss, sumsq) return it
 * through an out-parameter.
 *
 * Errors: entries return void and keep a sticky first error in the table,
 * as cudaGetLastError does. weft_ops_status returns 0 or the first failure
 * (a WEFT_E* whose message names the op); callers check it once per
 * forward, backward or optimizer step and return it. Later failures do
 * not replace the first.
 *
 * The table is made once, at the model's (or optimizer's) creation, by
 * weft_ops_open for a device of the device layer:
 *   cpu  -- kernels/ops_cpu.c: every entry a direct call of its kernels.h
 *           function, so results are bitwise those of calling kernels.h;
 *   cuda -- kernels/ops_cuda.c: adapters over libweft-cuda.so's table on a
 *           context of the device's compute stream (what it lacks is listed
 *           at the top of that file).
 * The arrays an entry takes are the device's memory (host memory on cpu).
 *
 * Past kernels.h's ops: the memory ops (zero, copy, scale, axpy, fill),
 * xent_finish, the bf16 weight copies' upkeep and sumsq_acc, which replace
 * host code the models, LoRA, tp.c, ZeRO-3, dp.c and the trainer had on
 * device memory; their cpu entries are that code, unchanged.
 *
 * kernels.h's unfused, materialising attention (weft_attention_forward,
 * weft_gqa_attention_forward and their backwards) is not here: the models
 * train with the flash ops; tests and references call it directly.
 */
#ifndef WEFT_KERNELS_OPS_H
#define WEFT_KERNELS_OPS_H

#include "runtime/api.h"
#include "runtime/device.h"

#include <stddef.h>
#include <stdint.h>

typedef struct weft_ops weft_ops;

struct weft_ops {
    void (*matmul_forward)(weft_ops *o, float *out, const float *inp, const float *weight, const float *bias, int N,
                           int C, int OC);
    void (*matmul_backward)(weft_ops *o, float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, int N, int C, int OC);
    void (*layernorm_forward)(weft_ops *o, float *out, float *mean, float *rstd, const float *inp,
                              const float *weight, const float *bias, int N, int C);
    void (*layernorm_backward)(weft_ops *o, float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, const float *mean, const float *rstd, int N,
                               int C);
    void (*layernorm_residual_forward)(weft_ops *o, float *res, float *out, float *mean, float *rstd,
                                       const float *a, const float *b, const float *weight, const float *bias, int N,
                                       int C);
    void (*layernorm_residual_backward)(weft_ops *o, float *da, float *db, float *dweight, float *dbias,
                                        const float *dout, const float *dres, const float *res, const float *weight,
                                        const float *mean, const float *rstd, int N, int C);
    void (*rmsnorm_forward)(weft_ops *o, float *out, float *rstd, const float *inp, const float *weight, int N,
                            int C, double eps);
    void (*rmsnorm_backward)(weft_ops *o, float *dinp, float *dweight, const float *dout, const float *inp,
                             const float *weight, const float *rstd, int N, int C);
    void (*rmsnorm_residual_forward)(weft_ops *o, float *res, float *out, float *rstd, const float *a,
                                     const float *b, const float *weight, int N, int C, double eps);
    void (*rmsnorm_residual_backward)(weft_ops *o, float *da, float *db, float *dweight, const float *dout,
                                      const float *dres, const float *res, const float *weight, const float *rstd,
                                      int N, int C);
    void (*gelu_forward)(weft_ops *o, float *out, const float *inp, size_t n);
    void (*gelu_backward)(weft_ops *o, float *dinp, const float *inp, const float *dout, size_t n);
    void (*residual_forward)(weft_ops *o, float *out, const float *a, const float *b, size_t n);
    void (*residual_backward)(weft_ops *o, float *da, float *db, const float *dout, size_t n);
    void (*swiglu_forward)(weft_ops *o, float *out, const float *gate, const float *up, size_t n);
    void (*swiglu_backward)(weft_ops *o, float *dgate, float *dup, const float *gate, const float *up,
                            const float *dout, size_t n);
    void (*embedding_forward)(weft_ops *o, float *out, const int32_t *tokens, const float *wte, const float *wpe,
                              int B, int T, int C);
    void (*embedding_backward)(weft_ops *o, float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                               int B, int T, int C);
    /* *mean (host) gets kernels.h's return value. */
    void (*xent_forward_backward)(weft_ops *o, double *mean, float *losses, float *dlogits, const float *logits,
                                  const int32_t *targets, int N, int V, double dloss);
    void (*xent_stats)(weft_ops *o, double *mx, double *sum, double *xt, const float *logits,
                       const int32_t *targets, int N, int V, int v0);
    void (*xent_grad)(weft_ops *o, float *dlogits, const float *logits, const double *lse, const int32_t *targets,
                      int N, int V, int v0, double dloss);
    /* kernels.h's weft_xent_head_backward (cuda: xent_grad, then matmul_backward). */
    void (*xent_head_backward)(weft_ops *o, float *dinp, float *dweight, float *logits, const double *lse,
                               const int32_t *targets, const float *inp, const float *weight, int N, int C, int V,
                               int v0, double dloss);
    void (*adamw_update)(weft_ops *o, float *params, const float *grads, float *m, float *v, size_t n, double lr,
                         double beta1, double beta2, double eps, double weight_decay, int64_t t, double grad_scale);
    /* *out (host) gets the sum of squares. */
    void (*sumsq)(weft_ops *o, double *out, const float *x, size_t n);
    void (*rope_table)(weft_ops *o, float *cos, float *sin, int T, int hs, double theta);
    void (*rope_forward)(weft_ops *o, float *x, const float *cos, const float *sin, int B, int T, int nh, int hs);
    void (*rope_backward)(weft_ops *o, float *dx, const float *cos, const float *sin, int B, int T, int nh, int hs);
    void (*attention_flash_forward)(weft_ops *o, float *out, float *lse, const float *qkv, int B, int T, int C,
                                    int NH);
    void (*attention_flash_backward)(weft_ops *o, float *dqkv, const float *dout, const float *qkv,
                                     const float *out, const float *lse, int B, int T, int C, int NH);
    void (*gqa_attention_flash_forward)(weft_ops *o, float *out, float *lse, const float *q, const float *k,
                                        const float *v, int B, int T, int NH, int NKV, int hs);
    void (*gqa_attention_flash_backward)(weft_ops *o, float *dq, float *dk, float *dv, const float *dout,
                                         const float *q, const float *k, const float *v, const float *out,
                                         const float *lse, int B, int T, int NH, int NKV, int hs);
    void (*attention_decode)(weft_ops *o, float *out, float *scratch, const float *q, const float *kc,
                             const float *vc, int n, int pos0, int NH, int NKV, int hs);

    /* The memory ops the models used to do with memset, memcpy and loops
     * on the host (which a cuda device's memory forbids). No kernels.h
     * function of their own: the cpu entries are the loops they replace,
     * in the same order with the same arithmetic, so results stay bitwise.
     *   zero:  x[0..n) = 0 (all bits zero, as memset);
     *   copy:  dst[0..n) = src[0..n), both the device's, not overlapping;
     *   scale: x[i] *= s;
     *   axpy:  y[i] += a * x[i] (a = 1 is bitwise y[i] += x[i]). */
    void (*zero)(weft_ops *o, float *x, size_t n);
    void (*copy)(weft_ops *o, float *dst, const float *src, size_t n);
    void (*scale)(weft_ops *o, float *x, size_t n, float s);
    void (*axpy)(weft_ops *o, float *y, const float *x, size_t n, float a);
    /* The end of the vocabulary-parallel loss (parallel/tp.c), from the
     * rows' combined statistics mx, sum (of exp(x - mx)), xt (the target's
     * logit), all (N) device doubles: lse[n] = mx[n] + log(sum[n]);
     * losses[n] = lse[n] - xt[n] as float (0 where targets[n] < 0; losses
     * NULL: none, cpu only); *mean (host) the mean loss over targets >= 0
     * (0 if none). cpu: tp.c's loop as it was (sums the double losses);
     * cuda: sums the float losses (waits for the stream). */
    void (*xent_finish)(weft_ops *o, double *mean, float *losses, double *lse, const double *mx, const double *sum,
                        const double *xt, const int32_t *targets, int N);

    /* Data parallelism's and the trainer's host loops on parameters
     * (cuda_ops.h ABI 4):
     *   fill: x[0..n) = v (ZeRO-3's poison of a released unit: NaN);
     *   bf16_mirror, bf16_refresh: train.precision = bf16's copies of the
     *   weights (kernels.h weft_matmul_bf16_mirror: register [base, base +
     *   n) as weights, a failure is the table's sticky error; _refresh: bring
     *   the copy of [p, p + n) up to date after a write). cpu: those
     *   functions; cuda: nothing to do -- the CUDA products round their f32
     *   operands to bf16 themselves (cuBLASLt's FAST_16BF), there is no copy. */
    void (*fill)(weft_ops *o, float *x, size_t n, float v);
    void (*bf16_mirror)(weft_ops *o, const float *base, size_t n);
    void (*bf16_refresh)(weft_ops *o, const float *p, size_t n);
    /* parallel/tp.c's loops with TP > 1 (and the llama's embedding):
     *   add_rows: out (N, C) += rows (P, C), row i taking rows[i % P] (the
     *   row-parallel bias after its allreduce: P = 1; the positions after
     *   the embedding's allreduce: P = T);
     *   embedding_vp_forward: out (N, C) row i = wte_local[tokens[i] - v0]
     *   when this rank holds that row (0 <= tokens[i] - v0 < Vl), else 0;
     *   embedding_vp_backward: dwpe (T, C, may be NULL) += dout row i at
     *   i % T, dwte_local (Vl, C) += dout row i at tokens[i] - v0 where
     *   held; rows in order (deterministic);
     *   xent_rescale: sum[n] *= exp(mx[n] - gmx[n]), then mx[n] = gmx[n]
     *   (a slice's sum of exps moved to the whole row's max gmx; all (N)
     *   device doubles).
     * cpu: tp.c's loops as they were. */
    void (*add_rows)(weft_ops *o, float *out, const float *rows, int N, int P, int C);
    void (*embedding_vp_forward)(weft_ops *o, float *out, const int32_t *tokens, const float *wte_local, int v0,
                                 int Vl, int N, int C);
    void (*embedding_vp_backward)(weft_ops *o, float *dwte_local, float *dwpe, const float *dout,
                                  const int32_t *tokens, int v0, int Vl, int B, int T, int C);
    void (*xent_rescale)(weft_ops *o, double *sum, double *mx, const double *gmx, int N);
    /* LoRA's loops (model/lora.c):
     *   matmul_nn_add: out (N, M) += a (N, K) b (K, M), each element summed
     *   over K in order onto its old value (the rank-r products dy B and
     *   dh A: BLAS's NoTrans x NoTrans allocates per call, and matmul's
     *   order is another);
     *   lora_dropout: xd (N, in) = x * 1/(1-p) where element (n, col0 + j)
     *   is kept, else 0; lora_dropout_add: dx (N, in) += g * 1/(1-p) where
     *   kept, untouched elsewhere. Kept: the hash of key, id and the
     *   element's place (weft_rng_mix), uniform in [0, 1), >= p -- the same
     *   mask in forward and backward, drawn again from the key. */
    void (*matmul_nn_add)(weft_ops *o, float *out, const float *a, const float *b, int N, int K, int M);
    void (*lora_dropout)(weft_ops *o, float *xd, const float *x, int N, int in, int col0, uint64_t key,
                         uint64_t id, double p);
    void (*lora_dropout_add)(weft_ops *o, float *dx, const float *g, int N, int in, int col0, uint64_t key,
                             uint64_t id, double p);
    /* The gradient norm's running sum (parallel/dp.c; cuda_ops.h ABI 5): *acc (host) +=
     * x[i]^2 in double over x (n, the device's), so that a sum over many
     * ranges is one sum. Each range is summed in a fixed order, then added
     * to *acc: the same on every run. cpu: weft_sumsq's four accumulators;
     * cuda: a fixed-order reduction (waits for the stream). Neither is
     * bitwise the serial loop (relative difference ~1e-15 per range,
     * kernels_check allows 1e-12). */
    void (*sumsq_acc)(weft_ops *o, double *acc, const float *x, size_t n);

    /* --- the implementation's, not the caller's --- */
    int status;     /* the first failure, 0 while none */
    char msg[400];  /* its message */
    weft_dev *dev;  /* the device the table computes on */
    void *impl;     /* the implementation's state (cuda: its context) */
    void (*close)(weft_ops *o);
};

/* The table for device d: cpu's over kernels.h, cuda's over the CUDA
 * kernels with column scratch for up to max_cols columns (the widest bias
 * or norm weight; ignored on cpu). WEFT_ENOMEM; on cuda WEFT_EUNAVAILABLE
 * when the kernels' library or a context cannot be had (no GPU). */
WEFT_API int weft_ops_open(weft_dev *d, int max_cols, weft_ops **out);
/* NULL is a no-op. */
WEFT_API void weft_ops_close(weft_ops *o);

/* 0, or the first failure of any op since the table was made (or last
 * cleared); records its message again with weft_error, so that the
 * caller's weft_last_error is the op's. */
WEFT_API int weft_ops_status(const weft_ops *o);
/* Forget the sticky failure (after the caller handled it). */
WEFT_API void weft_ops_clear(weft_ops *o);

/* For implementations: record a failure of op `op`; only the first since
 * the last clear is kept. Returns rc. */
WEFT_API int weft_ops_fail(weft_ops *o, int rc, const char *op, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The two implementations' constructors (ops_cpu.c, ops_cuda.c). */
int weft_ops_cpu_new(weft_dev *d, weft_ops **out);
int weft_ops_cuda_new(weft_dev *d, int max_cols, weft_ops **out);

#endif
