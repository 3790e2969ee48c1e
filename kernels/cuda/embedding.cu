/*
 * embedding.cu -- token (+ position) embedding, forward and backward.
 *
 * Backward must be deterministic (issue 20: no float atomics in a varying
 * order), and two rows of a batch may hold the same token. Each thread
 * owns one channel of the tokens of one residue class (token % BUCKETS)
 * and walks the rows in order, adding where the token is of its class:
 * every element of dwte is then summed by one thread, rows in order, with
 * BUCKETS times the parallelism of one thread per channel. The price is
 * that every thread reads the whole token list (from cache).
 */
#include "kernels/cuda/common.cuh"

#define THREADS 256
#define BUCKETS 32

__global__ void embedding_fwd(float *out, const int32_t *tokens, const float *wte, const float *wpe, int T, int C,
                              size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t row = i / C;
        int c = (int)(i % C), t = (int)(row % T);
        float v = wte[(size_t)tokens[row] * C + c];
        out[i] = wpe ? v + wpe[(size_t)t * C + c] : v;
    }
}

/* grid (ceil(C / THREADS), BUCKETS) */
__global__ void embedding_bwd_wte(float *dwte, const float *dout, const int32_t *tokens, int N, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x, bucket = blockIdx.y;
    if (c >= C)
        return;
    for (int n = 0; n < N; n++) {
        int tok = tokens[n];
        if (tok % BUCKETS == bucket)
            dwte[(size_t)tok * C + c] += dout[(size_t)n * C + c];
    }
}

/* thread per (t, c): the sum over the batch, b in order */
__global__ void embedding_bwd_wpe(float *dwpe, const float *dout, int B, int T, int C)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)T * C)
        return;
    float s = 0.0f;
    for (int b = 0; b < B; b++)
        s += dout[(size_t)b * T * C + i];
    dwpe[i] += s;
}

extern "C" {

int weft_cuda_embedding_forward(weft_cuda_ctx *ctx, float *out, const int32_t *tokens, const float *wte,
                                const float *wpe, int B, int T, int C)
{
    size_t n = (size_t)B * T * C;
    embedding_fwd<<<weft_cuda_blocks(n, THREADS), THREADS, 0, ctx->stream>>>(out, tokens, wte, wpe, T, C, n);
    return WEFT_CUDA_LAUNCHED(ctx, "embedding_forward");
}

int weft_cuda_embedding_backward(weft_cuda_ctx *ctx, float *dwte, float *dwpe, const float *dout,
                                 const int32_t *tokens, int B, int T, int C)
{
    dim3 grid((C + THREADS - 1) / THREADS, BUCKETS);
    embedding_bwd_wte<<<grid, THREADS, 0, ctx->stream>>>(dwte, dout, tokens, B * T, C);
    int rc = WEFT_CUDA_LAUNCHED(ctx, "embedding_backward (wte)");
    if (rc || !dwpe)
        return rc;
    size_t n = (size_t)T * C;
    embedding_bwd_wpe<<<(unsigned)((n + THREADS - 1) / THREADS), THREADS, 0, ctx->stream>>>(dwpe, dout, B, T, C);
    return WEFT_CUDA_LAUNCHED(ctx, "embedding_backward (wpe)");
}

}
