/*
 * embedding.cu -- token (+ position) embedding, forward and backward.
 *
 * Backward must be deterministic (issue 20: no float atomics in a varying
 * order), and two rows of a batch may hold the same token. Each thread
 * owns one channel of the tokens of one residue class (token % BUCKETS)
 * and walks the rows in order, adding where the token is of its class:
 * every element of dwte is then summed by one thread, rows in order, with
 * BUCKETS times the parallelism of one thread per channel. The price is
 * that every thread reads the whole token list (from cache). The
 * vocabulary-parallel forms (parallel/tp.c with TP > 1) do the same over
 * the rows [v0, v0 + Vl) a rank holds.
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

/* The vocabulary-parallel forms (tp.c): this rank holds rows [v0, v0 + Vl). */
__global__ void embedding_vp_fwd(float *out, const int32_t *tokens, const float *wte, int v0, int Vl, int C, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t row = i / C;
        int v = tokens[row] - v0;
        out[i] = v >= 0 && v < Vl ? wte[(size_t)v * C + i % C] : 0.0f;
    }
}

/* As embedding_bwd_wte, for the held rows only. */
__global__ void embedding_vp_bwd_wte(float *dwte, const float *dout, const int32_t *tokens, int v0, int Vl, int N,
                                     int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x, bucket = blockIdx.y;
    if (c >= C)
        return;
    for (int n = 0; n < N; n++) {
        int v = tokens[n] - v0;
        if (v >= 0 && v < Vl && v % BUCKETS == bucket)
            dwte[(size_t)v * C + c] += dout[(size_t)n * C + c];
    }
}

/* thread per (t, c): adds each batch row's value in order, as the host loop */
__global__ void embedding_vp_bwd_wpe(float *dwpe, const float *dout, int B, int T, int C)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)T * C)
        return;
    float s = dwpe[i];
    for (int b = 0; b < B; b++)
        s += dout[(size_t)b * T * C + i];
    dwpe[i] = s;
}

extern "C" {

int weft_cuda_embedding_vp_forward(weft_cuda_ctx *ctx, float *out, const int32_t *tokens, const float *wte_local,
                                   int v0, int Vl, int N, int C)
{
    size_t n = (size_t)N * C;
    if (n == 0)
        return 0;
    embedding_vp_fwd<<<weft_cuda_blocks(n, THREADS), THREADS, 0, ctx->stream>>>(out, tokens, wte_local, v0, Vl, C, n);
    return WEFT_CUDA_LAUNCHED(ctx, "embedding_vp_forward");
}

int weft_cuda_embedding_vp_backward(weft_cuda_ctx *ctx, float *dwte_local, float *dwpe, const float *dout,
                                    const int32_t *tokens, int v0, int Vl, int B, int T, int C)
{
    if ((size_t)B * T * C == 0)
        return 0;
    dim3 grid((C + THREADS - 1) / THREADS, BUCKETS);
    embedding_vp_bwd_wte<<<grid, THREADS, 0, ctx->stream>>>(dwte_local, dout, tokens, v0, Vl, B * T, C);
    int rc = WEFT_CUDA_LAUNCHED(ctx, "embedding_vp_backward (wte)");
    if (rc || !dwpe)
        return rc;
    size_t n = (size_t)T * C;
    embedding_vp_bwd_wpe<<<(unsigned)((n + THREADS - 1) / THREADS), THREADS, 0, ctx->stream>>>(dwpe, dout, B, T, C);
    return WEFT_CUDA_LAUNCHED(ctx, "embedding_vp_backward (wpe)");
}

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
