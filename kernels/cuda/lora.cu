/*
 * lora.cu -- LoRA's own loops (model/lora.c through ops.h): the rank-r
 * products dy B and dh A as out += a b with each element summed over K in
 * the host loop's order (one thread per element, separate multiply and add
 * roundings: the host's bits), and dropout's masks, drawn from the same
 * hash of (key, adapter id, element) as the host (runtime/rng.h's
 * weft_rng_mix, here for the device), so forward and backward, cpu and
 * GPU, keep the same elements.
 */
#include "kernels/cuda/common.cuh"

#define THREADS 256

/* runtime/rng.h's weft_rng_mix (splitmix64's finaliser), for the device */
__device__ static uint64_t rng_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

__device__ static bool kept(uint64_t key, uint64_t id, int n, int j, double p)
{
    uint64_t h = rng_mix(key ^ id ^ rng_mix(((uint64_t)n << 32) ^ (uint64_t)j));
    return (double)(h >> 11) * 0x1.0p-53 >= p;
}

/* thread per element of out (N, M) */
__global__ void nn_add_k(float *out, const float *a, const float *b, int K, int M, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t row = i / M, m = i % M;
        float s = out[i];
        for (int k = 0; k < K; k++)
            s = __fadd_rn(s, __fmul_rn(a[row * K + k], b[(size_t)k * M + m]));
        out[i] = s;
    }
}

/* thread per element (n, j) of (N, in); add: dx += g * inv where kept, else x -> xd */
__global__ void dropout_k(float *y, const float *x, int in, int col0, uint64_t key, uint64_t id, double p,
                          float inv, int add, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        bool k = kept(key, id, (int)(i / in), col0 + (int)(i % in), p);
        if (add) {
            if (k)
                y[i] = __fadd_rn(y[i], __fmul_rn(x[i], inv));
        } else {
            y[i] = k ? __fmul_rn(x[i], inv) : 0.0f;
        }
    }
}

extern "C" {

int weft_cuda_matmul_nn_add(weft_cuda_ctx *ctx, float *out, const float *a, const float *b, int N, int K, int M)
{
    size_t n = (size_t)N * M;
    if (n == 0)
        return 0;
    nn_add_k<<<weft_cuda_blocks(n, THREADS), THREADS, 0, ctx->stream>>>(out, a, b, K, M, n);
    return WEFT_CUDA_LAUNCHED(ctx, "matmul_nn_add");
}

static int dropout(weft_cuda_ctx *ctx, float *y, const float *x, int N, int in, int col0, uint64_t key, uint64_t id,
                   double p, int add, const char *what)
{
    size_t n = (size_t)N * in;
    if (n == 0)
        return 0;
    float inv = (float)(1.0 / (1.0 - p));
    dropout_k<<<weft_cuda_blocks(n, THREADS), THREADS, 0, ctx->stream>>>(y, x, in, col0, key, id, p, inv, add, n);
    return WEFT_CUDA_LAUNCHED(ctx, what);
}

int weft_cuda_lora_dropout(weft_cuda_ctx *ctx, float *xd, const float *x, int N, int in, int col0, uint64_t key,
                           uint64_t id, double p)
{
    return dropout(ctx, xd, x, N, in, col0, key, id, p, 0, "lora_dropout");
}

int weft_cuda_lora_dropout_add(weft_cuda_ctx *ctx, float *dx, const float *g, int N, int in, int col0, uint64_t key,
                               uint64_t id, double p)
{
    return dropout(ctx, dx, g, N, in, col0, key, id, p, 1, "lora_dropout_add");
}
}
