/*
 * common.cuh -- what every kernel family of libweft-cuda.so shares: the
 * context (stream, scratch, cuBLASLt), the launch check that turns a CUDA
 * error into the context's message, and block-wide reductions in a fixed
 * order.
 */
#ifndef WEFT_KERNELS_CUDA_COMMON_CUH
#define WEFT_KERNELS_CUDA_COMMON_CUH

#include "kernels/cuda/cuda_ops.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <stdio.h>

struct weft_cuda_ctx {
    cudaStream_t stream;
    int max_cols;
    float *colsum;     /* (WEFT_CUDA_COLSUM_PARTS, 2 max_cols): column partial sums, two reductions' worth */
    double *dscratch;  /* (2 WEFT_CUDA_DPARTS + 2): partial sums and counts, then the totals */
    cublasLtHandle_t lt;
    void *workspace;   /* cuBLASLt's */
    size_t workspace_bytes;
    int bf16;
    char err[512];
};

/* Blocks of the two-pass double reductions (sumsq, xent_mean). */
#define WEFT_CUDA_DPARTS 256

/* Record a failed CUDA call in the context; returns the status (0: none). */
static inline int weft_cuda_fail(weft_cuda_ctx *ctx, cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return 0;
    snprintf(ctx->err, sizeof ctx->err, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
    return (int)e;
}

/* After a launch: a bad configuration or an earlier asynchronous fault. */
#define WEFT_CUDA_LAUNCHED(ctx, what) weft_cuda_fail((ctx), cudaGetLastError(), (what))

static inline unsigned weft_cuda_blocks(size_t n, unsigned threads)
{
    size_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 65535u * 32u ? (b ? b : 1) : 65535u * 32u);
}

/* A reduction over a block of T threads (T a power of two, <= 1024)
 * through shared memory, in a fixed tree order: the same result every run.
 * All threads must call it; every thread gets the result. */
template <typename R, int T, typename Op>
__device__ inline R weft_block_reduce(R v, R *sh, Op op)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = T / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s)
            sh[threadIdx.x] = op(sh[threadIdx.x], sh[threadIdx.x + s]);
        __syncthreads();
    }
    R r = sh[0];
    __syncthreads();
    return r;
}

template <typename R, int T>
__device__ inline R weft_block_sum(R v, R *sh)
{
    return weft_block_reduce<R, T>(v, sh, [](R x, R y) { return x + y; });
}

template <typename R, int T>
__device__ inline R weft_block_max(R v, R *sh)
{
    return weft_block_reduce<R, T>(v, sh, [](R x, R y) { return x > y ? x : y; });
}

/* Column reductions in two fixed-order passes. Pass one (the caller's own
 * kernel, or colsum_add's) writes WEFT_CUDA_COLSUM_PARTS rows of partial
 * sums, part p covering rows [p N / PARTS, (p+1) N / PARTS); pass two adds
 * the parts, in order, into dst. */
int weft_cuda_colsum_finish(weft_cuda_ctx *ctx, float *dst, const float *parts, int cols);
/* dst (cols) += the column sums of src (N, cols), through ctx->colsum. */
int weft_cuda_colsum_add(weft_cuda_ctx *ctx, float *dst, const float *src, int N, int cols);

/* *sum = the sum of x[i] (squared when `squares`) over i < n whose mask[i]
 * >= 0 (mask NULL: all), in double, and *count (may be NULL) how many;
 * through ctx->dscratch, then to the host: waits for the stream. */
int weft_cuda_dsum(weft_cuda_ctx *ctx, double *sum, int64_t *count, const float *x, const int32_t *mask, size_t n,
                   int squares);

/* The ops of the table (cuda_ops.h), one definition each in its family's
 * .cu, collected by ops.cu. */
extern "C" {
int weft_cuda_matmul_forward(weft_cuda_ctx *ctx, float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);
int weft_cuda_matmul_backward(weft_cuda_ctx *ctx, float *dinp, float *dweight, float *dbias, const float *dout, const float *inp, const float *weight, int N, int C, int OC);
int weft_cuda_layernorm_forward(weft_cuda_ctx *ctx, float *out, float *mean, float *rstd, const float *inp, const float *weight, const float *bias, int N, int C);
int weft_cuda_layernorm_backward(weft_cuda_ctx *ctx, float *dinp, float *dweight, float *dbias, const float *dout, const float *inp, const float *weight, const float *mean, const float *rstd, int N, int C);
int weft_cuda_rmsnorm_forward(weft_cuda_ctx *ctx, float *out, float *rstd, const float *inp, const float *weight, int N, int C, double eps);
int weft_cuda_rmsnorm_backward(weft_cuda_ctx *ctx, float *dinp, float *dweight, const float *dout, const float *inp, const float *weight, const float *rstd, int N, int C);
int weft_cuda_gelu_forward(weft_cuda_ctx *ctx, float *out, const float *inp, size_t n);
int weft_cuda_gelu_backward(weft_cuda_ctx *ctx, float *dinp, const float *inp, const float *dout, size_t n);
int weft_cuda_residual_forward(weft_cuda_ctx *ctx, float *out, const float *a, const float *b, size_t n);
int weft_cuda_residual_backward(weft_cuda_ctx *ctx, float *da, float *db, const float *dout, size_t n);
int weft_cuda_swiglu_forward(weft_cuda_ctx *ctx, float *out, const float *gate, const float *up, size_t n);
int weft_cuda_swiglu_backward(weft_cuda_ctx *ctx, float *dgate, float *dup, const float *gate, const float *up, const float *dout, size_t n);
int weft_cuda_embedding_forward(weft_cuda_ctx *ctx, float *out, const int32_t *tokens, const float *wte, const float *wpe, int B, int T, int C);
int weft_cuda_embedding_backward(weft_cuda_ctx *ctx, float *dwte, float *dwpe, const float *dout, const int32_t *tokens, int B, int T, int C);
int weft_cuda_xent_forward_backward(weft_cuda_ctx *ctx, float *losses, float *dlogits, const float *logits, const int32_t *targets, int N, int V, double dloss);
int weft_cuda_xent_mean(weft_cuda_ctx *ctx, double *mean, const float *losses, const int32_t *targets, int N);
int weft_cuda_xent_stats(weft_cuda_ctx *ctx, double *mx, double *sum, double *xt, const float *logits, const int32_t *targets, int N, int V, int v0);
int weft_cuda_xent_grad(weft_cuda_ctx *ctx, float *dlogits, const float *logits, const double *lse, const int32_t *targets, int N, int V, int v0, double dloss);
int weft_cuda_adamw_update(weft_cuda_ctx *ctx, float *params, const float *grads, float *m, float *v, size_t n, double lr, double beta1, double beta2, double eps, double weight_decay, int64_t t, double grad_scale);
int weft_cuda_sumsq(weft_cuda_ctx *ctx, double *out, const float *x, size_t n);
int weft_cuda_sumsq_acc(weft_cuda_ctx *ctx, double *acc, const float *x, size_t n);
int weft_cuda_zero(weft_cuda_ctx *ctx, float *x, size_t n);
int weft_cuda_copy(weft_cuda_ctx *ctx, float *dst, const float *src, size_t n);
int weft_cuda_scale(weft_cuda_ctx *ctx, float *x, size_t n, float s);
int weft_cuda_axpy(weft_cuda_ctx *ctx, float *y, const float *x, size_t n, float a);
int weft_cuda_fill(weft_cuda_ctx *ctx, float *x, size_t n, float v);
int weft_cuda_add_rows(weft_cuda_ctx *ctx, float *out, const float *rows, int N, int P, int C);
int weft_cuda_embedding_vp_forward(weft_cuda_ctx *ctx, float *out, const int32_t *tokens, const float *wte_local,
                                   int v0, int Vl, int N, int C);
int weft_cuda_embedding_vp_backward(weft_cuda_ctx *ctx, float *dwte_local, float *dwpe, const float *dout,
                                    const int32_t *tokens, int v0, int Vl, int B, int T, int C);
int weft_cuda_xent_rescale(weft_cuda_ctx *ctx, double *sum, double *mx, const double *gmx, int N);
int weft_cuda_matmul_nn_add(weft_cuda_ctx *ctx, float *out, const float *a, const float *b, int N, int K, int M);
int weft_cuda_lora_dropout(weft_cuda_ctx *ctx, float *xd, const float *x, int N, int in, int col0, uint64_t key,
                           uint64_t id, double p);
int weft_cuda_lora_dropout_add(weft_cuda_ctx *ctx, float *dx, const float *g, int N, int in, int col0, uint64_t key,
                               uint64_t id, double p);
int weft_cuda_xent_finish(weft_cuda_ctx *ctx, double *mean, float *losses, double *lse, const double *mx,
                          const double *sum, const double *xt, const int32_t *targets, int N);
int weft_cuda_rope_forward(weft_cuda_ctx *ctx, float *x, const float *cos, const float *sin, int B, int T, int nh, int hs);
int weft_cuda_rope_backward(weft_cuda_ctx *ctx, float *dx, const float *cos, const float *sin, int B, int T, int nh, int hs);
int weft_cuda_attention_forward(weft_cuda_ctx *ctx, float *out, float *lse, const float *qkv, int B, int T, int C, int NH);
int weft_cuda_attention_backward(weft_cuda_ctx *ctx, float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse, int B, int T, int C, int NH);
int weft_cuda_gqa_attention_forward(weft_cuda_ctx *ctx, float *out, float *lse, const float *q, const float *k, const float *v, int B, int T, int NH, int NKV, int hs);
int weft_cuda_gqa_attention_backward(weft_cuda_ctx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v, const float *out, const float *lse, int B, int T, int NH, int NKV, int hs);
}

#endif
