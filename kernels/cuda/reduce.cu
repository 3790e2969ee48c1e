/*
 * reduce.cu -- the deterministic reductions the other families share:
 * column sums (bias and norm-weight gradients) and double sums to the host
 * (the gradient norm's sum of squares, the mean loss). Each runs in two
 * passes with a fixed split, so a result never depends on scheduling: no
 * float atomics anywhere (issue 20: backward deterministic).
 */
#include "kernels/cuda/common.cuh"

/* Row range of part p of N rows. */
__device__ inline void part_rows(int N, int p, int *r0, int *r1)
{
    *r0 = (int)((long long)N * p / WEFT_CUDA_COLSUM_PARTS);
    *r1 = (int)((long long)N * (p + 1) / WEFT_CUDA_COLSUM_PARTS);
}

/* grid (ceil(cols / 256), PARTS): thread = column, block row = part. */
__global__ void colsum_partial(float *parts, const float *src, int N, int cols)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x, r0, r1;
    if (c >= cols)
        return;
    part_rows(N, blockIdx.y, &r0, &r1);
    float s = 0.0f;
    for (int r = r0; r < r1; r++)
        s += src[(size_t)r * cols + c];
    parts[(size_t)blockIdx.y * cols + c] = s;
}

__global__ void colsum_finish(float *dst, const float *parts, int cols)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols)
        return;
    float s = 0.0f;
    for (int p = 0; p < WEFT_CUDA_COLSUM_PARTS; p++)
        s += parts[(size_t)p * cols + c];
    dst[c] += s;
}

int weft_cuda_colsum_finish(weft_cuda_ctx *ctx, float *dst, const float *parts, int cols)
{
    colsum_finish<<<(cols + 255) / 256, 256, 0, ctx->stream>>>(dst, parts, cols);
    return WEFT_CUDA_LAUNCHED(ctx, "colsum_finish");
}

int weft_cuda_colsum_add(weft_cuda_ctx *ctx, float *dst, const float *src, int N, int cols)
{
    if (cols > 2 * ctx->max_cols) {
        snprintf(ctx->err, sizeof ctx->err, "column sum over %d columns: the context was made for %d", cols,
                 2 * ctx->max_cols);
        return (int)cudaErrorInvalidValue;
    }
    dim3 grid((cols + 255) / 256, WEFT_CUDA_COLSUM_PARTS);
    colsum_partial<<<grid, 256, 0, ctx->stream>>>(ctx->colsum, src, N, cols);
    int rc = WEFT_CUDA_LAUNCHED(ctx, "colsum_partial");
    return rc ? rc : weft_cuda_colsum_finish(ctx, dst, ctx->colsum, cols);
}

/* grid DPARTS x 256: block b sums elements b*256+tid, stepping by the grid. */
__global__ void dsum_partial(double *parts, const float *x, const int32_t *mask, size_t n, int squares)
{
    __shared__ double sh[256];
    double s = 0.0, k = 0.0;
    for (size_t i = (size_t)blockIdx.x * 256 + threadIdx.x; i < n; i += (size_t)gridDim.x * 256) {
        if (mask && mask[i] < 0)
            continue;
        double v = x[i];
        s += squares ? v * v : v;
        k += 1.0;
    }
    s = weft_block_sum<double, 256>(s, sh);
    k = weft_block_sum<double, 256>(k, sh);
    if (threadIdx.x == 0) {
        parts[blockIdx.x] = s;
        parts[WEFT_CUDA_DPARTS + blockIdx.x] = k;
    }
}

__global__ void dsum_finish(double *parts)
{
    __shared__ double sh[WEFT_CUDA_DPARTS];
    double s = weft_block_sum<double, WEFT_CUDA_DPARTS>(parts[threadIdx.x], sh);
    double k = weft_block_sum<double, WEFT_CUDA_DPARTS>(parts[WEFT_CUDA_DPARTS + threadIdx.x], sh);
    if (threadIdx.x == 0) {
        parts[2 * WEFT_CUDA_DPARTS] = s;
        parts[2 * WEFT_CUDA_DPARTS + 1] = k;
    }
}

int weft_cuda_dsum(weft_cuda_ctx *ctx, double *sum, int64_t *count, const float *x, const int32_t *mask, size_t n,
                   int squares)
{
    dsum_partial<<<WEFT_CUDA_DPARTS, 256, 0, ctx->stream>>>(ctx->dscratch, x, mask, n, squares);
    int rc = WEFT_CUDA_LAUNCHED(ctx, "dsum_partial");
    if (rc)
        return rc;
    dsum_finish<<<1, WEFT_CUDA_DPARTS, 0, ctx->stream>>>(ctx->dscratch);
    if ((rc = WEFT_CUDA_LAUNCHED(ctx, "dsum_finish")))
        return rc;
    double host[2];
    cudaError_t e = cudaMemcpyAsync(host, ctx->dscratch + 2 * WEFT_CUDA_DPARTS, sizeof host, cudaMemcpyDeviceToHost,
                                    ctx->stream);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(ctx->stream);
    if ((rc = weft_cuda_fail(ctx, e, "copying a sum to the host")))
        return rc;
    *sum = host[0];
    if (count)
        *count = (int64_t)host[1];
    return 0;
}
