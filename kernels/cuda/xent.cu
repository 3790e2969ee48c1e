/*
 * xent.cu -- softmax + cross-entropy over vocabulary rows, and the two
 * passes of the vocabulary-parallel loss (tensor parallelism: each rank
 * holds columns [v0, v0 + V) of the logits). A block per row; the row's
 * max and sum of exponentials by fixed-order block reductions, the sum in
 * double as the CPU kernel's statistics are.
 */
#include "kernels/cuda/common.cuh"

#define THREADS 256

/* The row's max, sum of exp(x - max) (double) and, where this slice holds
 * it, the target's logit; every thread of the block gets them. */
__device__ void row_stats(const float *x, int V, int tgt, double *mx, double *sum, double *xt)
{
    __shared__ float shf[THREADS];
    __shared__ double shd[THREADS];
    float m = -INFINITY;
    for (int i = threadIdx.x; i < V; i += THREADS)
        m = fmaxf(m, x[i]);
    m = weft_block_max<float, THREADS>(m, shf);
    float s = 0.0f;
    for (int i = threadIdx.x; i < V; i += THREADS)
        s += expf(x[i] - m);
    *sum = weft_block_sum<double, THREADS>((double)s, shd);
    *mx = (double)m;
    *xt = tgt >= 0 && tgt < V ? (double)x[tgt] : 0.0;
}

/* d = exp(x - lse) s, lse split as hi + lo (ops_impl.h's xent_row_grad:
 * x - hi stays exact where the probability matters); minus s at the target. */
__device__ void row_grad(float *d, const float *x, int V, double lse, int tgt, float s)
{
    float hi = (float)lse, lo = (float)(lse - (double)hi);
    for (int i = threadIdx.x; i < V; i += THREADS)
        d[i] = expf((x[i] - hi) - lo) * s - (i == tgt ? s : 0.0f);
}

__global__ void xent_fused(float *losses, float *dlogits, const float *logits, const int32_t *targets, int V,
                           float dloss)
{
    size_t row = blockIdx.x;
    const float *x = logits + row * V;
    int tgt = targets[row];
    double mx, sum, xt;
    row_stats(x, V, tgt, &mx, &sum, &xt);
    double lse = mx + log(sum);
    if (threadIdx.x == 0 && losses)
        losses[row] = tgt >= 0 ? (float)(lse - xt) : 0.0f;
    if (!dlogits)
        return;
    __syncthreads(); /* every thread has read x before d (maybe x itself) is written */
    float *d = dlogits + row * V;
    if (tgt < 0) {
        for (int i = threadIdx.x; i < V; i += THREADS)
            d[i] = 0.0f;
        return;
    }
    row_grad(d, x, V, lse, tgt, dloss);
}

__global__ void xent_stats_k(double *mx, double *sum, double *xt, const float *logits, const int32_t *targets, int V,
                             int v0)
{
    size_t row = blockIdx.x;
    int tgt = targets[row];
    double m, s, t;
    row_stats(logits + row * V, V, tgt >= 0 ? tgt - v0 : -1, &m, &s, &t);
    if (threadIdx.x == 0) {
        mx[row] = m;
        sum[row] = s;
        xt[row] = t;
    }
}

__global__ void xent_grad_k(float *dlogits, const float *logits, const double *lse, const int32_t *targets, int V,
                            int v0, float dloss)
{
    size_t row = blockIdx.x;
    float *d = dlogits + row * V;
    if (targets[row] < 0) {
        for (int i = threadIdx.x; i < V; i += THREADS)
            d[i] = 0.0f;
        return;
    }
    row_grad(d, logits + row * V, V, lse[row], targets[row] - v0, dloss);
}

__global__ void xent_finish_k(float *losses, double *lse, const double *mx, const double *sum, const double *xt,
                              const int32_t *targets, int N)
{
    int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N)
        return;
    double l = mx[n] + log(sum[n]);
    lse[n] = l;
    losses[n] = targets[n] >= 0 ? (float)(l - xt[n]) : 0.0f;
}

__global__ void xent_rescale_k(double *sum, double *mx, const double *gmx, int N)
{
    int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N)
        return;
    sum[n] *= exp(mx[n] - gmx[n]);
    mx[n] = gmx[n];
}

extern "C" {

/* A slice's sum of exps moved to the row's global max (vocabulary-parallel
 * loss, between its two allreduces). */
int weft_cuda_xent_rescale(weft_cuda_ctx *ctx, double *sum, double *mx, const double *gmx, int N)
{
    if (N <= 0)
        return 0;
    xent_rescale_k<<<(N + THREADS - 1) / THREADS, THREADS, 0, ctx->stream>>>(sum, mx, gmx, N);
    return WEFT_CUDA_LAUNCHED(ctx, "xent_rescale");
}

int weft_cuda_xent_forward_backward(weft_cuda_ctx *ctx, float *losses, float *dlogits, const float *logits,
                                    const int32_t *targets, int N, int V, double dloss)
{
    xent_fused<<<N, THREADS, 0, ctx->stream>>>(losses, dlogits, logits, targets, V, (float)dloss);
    return WEFT_CUDA_LAUNCHED(ctx, "xent_forward_backward");
}

int weft_cuda_xent_mean(weft_cuda_ctx *ctx, double *mean, const float *losses, const int32_t *targets, int N)
{
    double sum;
    int64_t count;
    int rc = weft_cuda_dsum(ctx, &sum, &count, losses, targets, (size_t)N, 0);
    if (rc == 0)
        *mean = count ? sum / (double)count : 0.0;
    return rc;
}

/* The end of the vocabulary-parallel loss: one thread per row, then the
 * mean through xent_mean's fixed-order sum of the float losses. */
int weft_cuda_xent_finish(weft_cuda_ctx *ctx, double *mean, float *losses, double *lse, const double *mx,
                          const double *sum, const double *xt, const int32_t *targets, int N)
{
    if (N > 0) {
        xent_finish_k<<<(N + THREADS - 1) / THREADS, THREADS, 0, ctx->stream>>>(losses, lse, mx, sum, xt, targets, N);
        int rc = WEFT_CUDA_LAUNCHED(ctx, "xent_finish");
        if (rc)
            return rc;
    }
    return weft_cuda_xent_mean(ctx, mean, losses, targets, N);
}

int weft_cuda_xent_stats(weft_cuda_ctx *ctx, double *mx, double *sum, double *xt, const float *logits,
                         const int32_t *targets, int N, int V, int v0)
{
    xent_stats_k<<<N, THREADS, 0, ctx->stream>>>(mx, sum, xt, logits, targets, V, v0);
    return WEFT_CUDA_LAUNCHED(ctx, "xent_stats");
}

int weft_cuda_xent_grad(weft_cuda_ctx *ctx, float *dlogits, const float *logits, const double *lse,
                        const int32_t *targets, int N, int V, int v0, double dloss)
{
    xent_grad_k<<<N, THREADS, 0, ctx->stream>>>(dlogits, logits, lse, targets, V, v0, (float)dloss);
    return WEFT_CUDA_LAUNCHED(ctx, "xent_grad");
}

}
