/*
 * norm.cu -- LayerNorm (GPT-2) and RMSNorm (Llama), forward and backward.
 * A block of 256 threads per row; row statistics by weft_block_sum (fixed
 * order); the weight and bias gradients, sums over all rows, in two passes
 * through the context's column scratch (reduce.cu), never by atomics.
 */
#include "kernels/cuda/common.cuh"

#define LN_EPS 1e-5f
#define THREADS 256

__global__ void layernorm_fwd(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                              int C)
{
    __shared__ float sh[THREADS];
    const float *x = inp + (size_t)blockIdx.x * C;
    float s = 0.0f;
    for (int c = threadIdx.x; c < C; c += THREADS)
        s += x[c];
    float m = weft_block_sum<float, THREADS>(s, sh) / (float)C;
    float v = 0.0f;
    for (int c = threadIdx.x; c < C; c += THREADS) /* centred: no cancellation when |mean| >> std */
        v += (x[c] - m) * (x[c] - m);
    float r = 1.0f / sqrtf(weft_block_sum<float, THREADS>(v, sh) / (float)C + LN_EPS);
    float *o = out + (size_t)blockIdx.x * C;
    for (int c = threadIdx.x; c < C; c += THREADS)
        o[c] = (x[c] - m) * r * w[c] + b[c];
    if (threadIdx.x == 0) {
        mean[blockIdx.x] = m;
        rstd[blockIdx.x] = r;
    }
}

/* dinp of one row: (w dy - mean(w dy) - xhat mean(w dy xhat)) rstd */
__global__ void layernorm_bwd_dx(float *dinp, const float *dout, const float *inp, const float *w, const float *mean,
                                 const float *rstd, int C)
{
    __shared__ float sh[THREADS];
    size_t row = (size_t)blockIdx.x * C;
    float m = mean[blockIdx.x], r = rstd[blockIdx.x], g = 0.0f, gx = 0.0f;
    for (int c = threadIdx.x; c < C; c += THREADS) {
        float gi = w[c] * dout[row + c];
        g += gi;
        gx += gi * (inp[row + c] - m) * r;
    }
    g = weft_block_sum<float, THREADS>(g, sh) / (float)C;
    gx = weft_block_sum<float, THREADS>(gx, sh) / (float)C;
    for (int c = threadIdx.x; c < C; c += THREADS) {
        float xhat = (inp[row + c] - m) * r;
        dinp[row + c] += (w[c] * dout[row + c] - g - xhat * gx) * r;
    }
}

/* Pass one of dweight = sum dy xhat, dbias = sum dy: grid (C / 256, PARTS). */
__global__ void layernorm_bwd_dw(float *parts_w, float *parts_b, const float *dout, const float *inp,
                                 const float *mean, const float *rstd, int N, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    int r0 = (int)((long long)N * blockIdx.y / WEFT_CUDA_COLSUM_PARTS);
    int r1 = (int)((long long)N * (blockIdx.y + 1) / WEFT_CUDA_COLSUM_PARTS);
    float sw = 0.0f, sb = 0.0f;
    for (int n = r0; n < r1; n++) {
        float dy = dout[(size_t)n * C + c];
        sw += dy * (inp[(size_t)n * C + c] - mean[n]) * rstd[n];
        sb += dy;
    }
    parts_w[(size_t)blockIdx.y * C + c] = sw;
    if (parts_b)
        parts_b[(size_t)blockIdx.y * C + c] = sb;
}

__global__ void rmsnorm_fwd(float *out, float *rstd, const float *inp, const float *w, int C, float eps)
{
    __shared__ float sh[THREADS];
    const float *x = inp + (size_t)blockIdx.x * C;
    float s = 0.0f;
    for (int c = threadIdx.x; c < C; c += THREADS)
        s += x[c] * x[c];
    float r = 1.0f / sqrtf(weft_block_sum<float, THREADS>(s, sh) / (float)C + eps);
    float *o = out + (size_t)blockIdx.x * C;
    for (int c = threadIdx.x; c < C; c += THREADS)
        o[c] = x[c] * r * w[c];
    if (threadIdx.x == 0)
        rstd[blockIdx.x] = r;
}

/* dinp of one row: (w dy - xhat mean(w dy xhat)) rstd, xhat = x rstd */
__global__ void rmsnorm_bwd_dx(float *dinp, const float *dout, const float *inp, const float *w, const float *rstd,
                               int C)
{
    __shared__ float sh[THREADS];
    size_t row = (size_t)blockIdx.x * C;
    float r = rstd[blockIdx.x], gx = 0.0f;
    for (int c = threadIdx.x; c < C; c += THREADS)
        gx += w[c] * dout[row + c] * inp[row + c] * r;
    gx = weft_block_sum<float, THREADS>(gx, sh) / (float)C;
    for (int c = threadIdx.x; c < C; c += THREADS)
        dinp[row + c] += (w[c] * dout[row + c] - inp[row + c] * r * gx) * r;
}

/* Pass one of dweight = sum dy x rstd: a LayerNorm with mean 0. */
__global__ void rmsnorm_bwd_dw(float *parts, const float *dout, const float *inp, const float *rstd, int N, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    int r0 = (int)((long long)N * blockIdx.y / WEFT_CUDA_COLSUM_PARTS);
    int r1 = (int)((long long)N * (blockIdx.y + 1) / WEFT_CUDA_COLSUM_PARTS);
    float s = 0.0f;
    for (int n = r0; n < r1; n++)
        s += dout[(size_t)n * C + c] * inp[(size_t)n * C + c] * rstd[n];
    parts[(size_t)blockIdx.y * C + c] = s;
}

static int too_wide(weft_cuda_ctx *ctx, const char *op, int C)
{
    if (C <= ctx->max_cols)
        return 0;
    snprintf(ctx->err, sizeof ctx->err, "%s: C = %d, wider than the context's %d columns", op, C, ctx->max_cols);
    return (int)cudaErrorInvalidValue;
}

extern "C" {

int weft_cuda_layernorm_forward(weft_cuda_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
                                const float *weight, const float *bias, int N, int C)
{
    layernorm_fwd<<<N, THREADS, 0, ctx->stream>>>(out, mean, rstd, inp, weight, bias, C);
    return WEFT_CUDA_LAUNCHED(ctx, "layernorm_forward");
}

int weft_cuda_layernorm_backward(weft_cuda_ctx *ctx, float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *weight, const float *mean, const float *rstd, int N,
                                 int C)
{
    int rc = too_wide(ctx, "layernorm_backward", C);
    if (rc)
        return rc;
    if (dweight) {
        float *pw = ctx->colsum, *pb = ctx->colsum + (size_t)WEFT_CUDA_COLSUM_PARTS * C;
        dim3 grid((C + THREADS - 1) / THREADS, WEFT_CUDA_COLSUM_PARTS);
        layernorm_bwd_dw<<<grid, THREADS, 0, ctx->stream>>>(pw, dbias ? pb : NULL, dout, inp, mean, rstd, N, C);
        if ((rc = WEFT_CUDA_LAUNCHED(ctx, "layernorm_backward (weight)")) ||
            (rc = weft_cuda_colsum_finish(ctx, dweight, pw, C)) ||
            (dbias && (rc = weft_cuda_colsum_finish(ctx, dbias, pb, C))))
            return rc;
    }
    layernorm_bwd_dx<<<N, THREADS, 0, ctx->stream>>>(dinp, dout, inp, weight, mean, rstd, C);
    return WEFT_CUDA_LAUNCHED(ctx, "layernorm_backward");
}

int weft_cuda_rmsnorm_forward(weft_cuda_ctx *ctx, float *out, float *rstd, const float *inp, const float *weight,
                              int N, int C, double eps)
{
    rmsnorm_fwd<<<N, THREADS, 0, ctx->stream>>>(out, rstd, inp, weight, C, (float)eps);
    return WEFT_CUDA_LAUNCHED(ctx, "rmsnorm_forward");
}

int weft_cuda_rmsnorm_backward(weft_cuda_ctx *ctx, float *dinp, float *dweight, const float *dout, const float *inp,
                               const float *weight, const float *rstd, int N, int C)
{
    int rc = too_wide(ctx, "rmsnorm_backward", C);
    if (rc)
        return rc;
    if (dweight) {
        dim3 grid((C + THREADS - 1) / THREADS, WEFT_CUDA_COLSUM_PARTS);
        rmsnorm_bwd_dw<<<grid, THREADS, 0, ctx->stream>>>(ctx->colsum, dout, inp, rstd, N, C);
        if ((rc = WEFT_CUDA_LAUNCHED(ctx, "rmsnorm_backward (weight)")) ||
            (rc = weft_cuda_colsum_finish(ctx, dweight, ctx->colsum, C)))
            return rc;
    }
    rmsnorm_bwd_dx<<<N, THREADS, 0, ctx->stream>>>(dinp, dout, inp, weight, rstd, C);
    return WEFT_CUDA_LAUNCHED(ctx, "rmsnorm_backward");
}

}
