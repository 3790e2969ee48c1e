/*
 * cuda_ops.h -- the CUDA kernels of a training step, as one table of C
 * functions: what kernels.h is for the CPU, on device memory.
 *
 * The kernels live in their own shared library, libweft-cuda.so, built by
 * `make` whenever nvcc is found at CUDA_HOME (one .cu per family in this
 * folder). libweft never links it, nor the CUDA runtime or cuBLAS: the
 * device layer opens it with dlopen and takes the table from its one
 * exported function, weft_cuda_ops_get, so the same weft-train runs on a
 * machine without CUDA. This header is plain C, included by both sides.
 *
 * Conventions, as kernels.h's: row-major, the same dimension letters, every
 * backward ACCUMULATES (+=) into its gradients (rope_backward turns in
 * place), no op allocates -- scratch and the cuBLASLt workspace are the
 * context's, allocated once by ctx_new. Every op is enqueued on the
 * context's stream and returns at once (0, or a CUDA/cuBLAS status whose
 * message ctx_error gives), except those that hand a number to the host
 * (xent_mean, sumsq), which wait for the stream. Reductions run in a fixed
 * order: results are the same on every run, no float atomics.
 *
 * Precision: f32 arrays throughout; with ctx_set_bf16(ctx, 1) the linear
 * layers multiply on bf16 tensor cores (cuBLASLt's CUBLAS_COMPUTE_32F_FAST_16BF:
 * inputs rounded to bf16, f32 accumulation and output), as the CPU's
 * train.precision = bf16 does with oneDNN.
 */
#ifndef WEFT_KERNELS_CUDA_OPS_H
#define WEFT_KERNELS_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever the table changes: the device layer refuses a library
 * of another version rather than calling through a wrong layout. */
#define WEFT_CUDA_OPS_ABI 5

/* Rows of partial sums the column reductions (bias and norm-weight
 * gradients) split N into; the context's scratch holds this many rows of
 * the widest reduction. */
#define WEFT_CUDA_COLSUM_PARTS 128

typedef struct weft_cuda_ctx weft_cuda_ctx;

typedef struct weft_cuda_ops {
    int abi; /* WEFT_CUDA_OPS_ABI */

    /* A context on the current device: stream (a cudaStream_t; NULL: the
     * default stream), scratch for reductions over up to max_cols columns,
     * the cuBLASLt handle and workspace. 0 or a CUDA status; err gets the
     * message. */
    int (*ctx_new)(void *stream, int max_cols, weft_cuda_ctx **out, char *err, size_t errlen);
    void (*ctx_free)(weft_cuda_ctx *ctx);
    /* The message of the last failed op of this context. */
    const char *(*ctx_error)(const weft_cuda_ctx *ctx);
    void (*ctx_set_bf16)(weft_cuda_ctx *ctx, int on);
    /* Bytes of device memory ctx_new took (scratch + workspace). */
    size_t (*ctx_bytes)(const weft_cuda_ctx *ctx);

    /* out (N, OC) = inp (N, C) @ weight (OC, C)^T + bias (OC, may be NULL) */
    int (*matmul_forward)(weft_cuda_ctx *, float *out, const float *inp, const float *weight, const float *bias,
                          int N, int C, int OC);
    /* dinp += dout @ weight; dweight += dout^T @ inp; dbias += colsum(dout); any of the three may be NULL */
    int (*matmul_backward)(weft_cuda_ctx *, float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *weight, int N, int C, int OC);
    int (*layernorm_forward)(weft_cuda_ctx *, float *out, float *mean, float *rstd, const float *inp,
                             const float *weight, const float *bias, int N, int C);
    int (*layernorm_backward)(weft_cuda_ctx *, float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, const float *mean, const float *rstd, int N,
                              int C);
    int (*rmsnorm_forward)(weft_cuda_ctx *, float *out, float *rstd, const float *inp, const float *weight, int N,
                           int C, double eps);
    int (*rmsnorm_backward)(weft_cuda_ctx *, float *dinp, float *dweight, const float *dout, const float *inp,
                            const float *weight, const float *rstd, int N, int C);
    int (*gelu_forward)(weft_cuda_ctx *, float *out, const float *inp, size_t n);
    int (*gelu_backward)(weft_cuda_ctx *, float *dinp, const float *inp, const float *dout, size_t n);
    int (*residual_forward)(weft_cuda_ctx *, float *out, const float *a, const float *b, size_t n);
    int (*residual_backward)(weft_cuda_ctx *, float *da, float *db, const float *dout, size_t n);
    int (*swiglu_forward)(weft_cuda_ctx *, float *out, const float *gate, const float *up, size_t n);
    int (*swiglu_backward)(weft_cuda_ctx *, float *dgate, float *dup, const float *gate, const float *up,
                           const float *dout, size_t n);
    /* out (B, T, C) = wte[tokens] + wpe[t] (wpe NULL: no position table, Llama) */
    int (*embedding_forward)(weft_cuda_ctx *, float *out, const int32_t *tokens, const float *wte, const float *wpe,
                             int B, int T, int C);
    /* dwte += scatter of dout by token, dwpe += sum over b (dwpe NULL: none); deterministic */
    int (*embedding_backward)(weft_cuda_ctx *, float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                              int B, int T, int C);
    /* Softmax + cross-entropy per row of logits (N, V): losses (N) (0 where target < 0); dlogits
     * (NULL: none; may alias logits) = (softmax - onehot) * dloss, zero rows where target < 0. */
    int (*xent_forward_backward)(weft_cuda_ctx *, float *losses, float *dlogits, const float *logits,
                                 const int32_t *targets, int N, int V, double dloss);
    /* The mean of losses (N) over rows whose target is >= 0 (0 if none), to the host; waits. */
    int (*xent_mean)(weft_cuda_ctx *, double *mean, const float *losses, const int32_t *targets, int N);
    /* The vocabulary-parallel passes (kernels.h weft_xent_stats / weft_xent_grad); mx, sum, xt, lse
     * are device arrays of N doubles. */
    int (*xent_stats)(weft_cuda_ctx *, double *mx, double *sum, double *xt, const float *logits,
                      const int32_t *targets, int N, int V, int v0);
    int (*xent_grad)(weft_cuda_ctx *, float *dlogits, const float *logits, const double *lse, const int32_t *targets,
                     int N, int V, int v0, double dloss);
    int (*adamw_update)(weft_cuda_ctx *, float *params, const float *grads, float *m, float *v, size_t n, double lr,
                        double beta1, double beta2, double eps, double weight_decay, int64_t t, double grad_scale);
    /* Sum of squares of n values in double, to the host; waits. */
    int (*sumsq)(weft_cuda_ctx *, double *out, const float *x, size_t n);
    /* In place on x (B, T, nh*hs), tables cos, sin (T, hs/2) on the device (kernels.h's). */
    int (*rope_forward)(weft_cuda_ctx *, float *x, const float *cos, const float *sin, int B, int T, int nh, int hs);
    int (*rope_backward)(weft_cuda_ctx *, float *dx, const float *cos, const float *sin, int B, int T, int nh,
                         int hs);
    /* Flash-style causal attention (kernels.h's weft_attention_flash_* on fused qkv (B, T, 3C), and
     * weft_gqa_attention_flash_* on q (B, T, NH*hs), k, v (B, T, NKV*hs)); lse (B, NH, T). Never
     * materialises (B, NH, T, T). hs <= WEFT_CUDA_MAX_HS. */
    int (*attention_forward)(weft_cuda_ctx *, float *out, float *lse, const float *qkv, int B, int T, int C, int NH);
    int (*attention_backward)(weft_cuda_ctx *, float *dqkv, const float *dout, const float *qkv, const float *out,
                              const float *lse, int B, int T, int C, int NH);
    int (*gqa_attention_forward)(weft_cuda_ctx *, float *out, float *lse, const float *q, const float *k,
                                 const float *v, int B, int T, int NH, int NKV, int hs);
    int (*gqa_attention_backward)(weft_cuda_ctx *, float *dq, float *dk, float *dv, const float *dout,
                                  const float *q, const float *k, const float *v, const float *out, const float *lse,
                                  int B, int T, int NH, int NKV, int hs);
    /* The memory ops of ops.h (ABI 2): x[0..n) = 0 (cudaMemsetAsync); dst = src, device to device
     * (cudaMemcpyAsync); x *= s; y += a x. */
    int (*zero)(weft_cuda_ctx *, float *x, size_t n);
    int (*copy)(weft_cuda_ctx *, float *dst, const float *src, size_t n);
    int (*scale)(weft_cuda_ctx *, float *x, size_t n, float s);
    int (*axpy)(weft_cuda_ctx *, float *y, const float *x, size_t n, float a);
    /* lse (N) = mx + log(sum); losses (N) = lse - xt as float (0 where target < 0); *mean (host) the
     * mean of losses over targets >= 0, 0 if none; waits. mx, sum, xt, lse: device doubles. */
    int (*xent_finish)(weft_cuda_ctx *, double *mean, float *losses, double *lse, const double *mx,
                       const double *sum, const double *xt, const int32_t *targets, int N);
    /* ABI 4: x[0..n) = v (ZeRO-3's poison of released parameters: NaN). */
    int (*fill)(weft_cuda_ctx *, float *x, size_t n, float v);
    /* ABI 4: the vocabulary-parallel layers' pieces (ops.h): out (N, C) += rows[i % P];
     * out row i = wte_local[tokens[i] - v0] or 0 where not held; dwte_local += dout rows by
     * held token, dwpe (may be NULL) += dout rows by i % T, deterministic; sum *= exp(mx - gmx)
     * then mx = gmx (device doubles). */
    int (*add_rows)(weft_cuda_ctx *, float *out, const float *rows, int N, int P, int C);
    int (*embedding_vp_forward)(weft_cuda_ctx *, float *out, const int32_t *tokens, const float *wte_local, int v0,
                                int Vl, int N, int C);
    int (*embedding_vp_backward)(weft_cuda_ctx *, float *dwte_local, float *dwpe, const float *dout,
                                 const int32_t *tokens, int v0, int Vl, int B, int T, int C);
    int (*xent_rescale)(weft_cuda_ctx *, double *sum, double *mx, const double *gmx, int N);
    /* ABI 4: LoRA's (ops.h): out (N, M) += a (N, K) b (K, M) summed over K in order per element;
     * xd = x / (1 - p) where kept else 0; dx += g / (1 - p) where kept (the mask: ops.h). */
    int (*matmul_nn_add)(weft_cuda_ctx *, float *out, const float *a, const float *b, int N, int K, int M);
    int (*lora_dropout)(weft_cuda_ctx *, float *xd, const float *x, int N, int in, int col0, uint64_t key,
                        uint64_t id, double p);
    int (*lora_dropout_add)(weft_cuda_ctx *, float *dx, const float *g, int N, int in, int col0, uint64_t key,
                            uint64_t id, double p);
    /* ABI 5: *acc (host) += the sum of squares of x (n) in double, a fixed-order reduction (the
     * gradient norm's running sum over ranges, parallel/dp.c); waits. n = 0 leaves *acc. */
    int (*sumsq_acc)(weft_cuda_ctx *, double *acc, const float *x, size_t n);
} weft_cuda_ops;

/* The largest head size the attention kernels take (a row of q and of the
 * output accumulator live in registers). */
#define WEFT_CUDA_MAX_HS 128

/* The one symbol libweft-cuda.so exports. */
const weft_cuda_ops *weft_cuda_ops_get(void);
typedef const weft_cuda_ops *(*weft_cuda_ops_get_fn)(void);

#ifdef __cplusplus
}
#endif

#endif
