/*
 * elementwise.cu -- the ops that touch each element once: residual, GELU,
 * SwiGLU, the AdamW update, and the memory ops (zero, copy, scale, axpy,
 * fill) the models and ZeRO-3 once did on the host. Each thread takes elements i, i + stride, ...
 * (a grid-stride loop), so any n runs with a bounded grid. The math follows
 * kernels/ops_impl.h's forms (sigmoid through exp(-|x|), never overflowing).
 */
#include "kernels/cuda/common.cuh"

#define GELU_S 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_K 0.044715f
#define THREADS 256

#define FOR_EACH(i, n) for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
                            i += (size_t)gridDim.x * blockDim.x)

__global__ void residual_fwd(float *out, const float *a, const float *b, size_t n)
{
    FOR_EACH(i, n) out[i] = a[i] + b[i];
}

__global__ void residual_bwd(float *da, float *db, const float *dout, size_t n)
{
    FOR_EACH(i, n) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

/* x sigmoid(2u): see ops_impl.h's gelu for the form. */
__device__ inline float gelu(float x)
{
    float u = GELU_S * (x + GELU_K * x * x * x);
    float e = expf(-2.0f * fabsf(u)), q = 1.0f / (1.0f + e);
    return x * (u >= 0.0f ? q : e * q);
}

__device__ inline float gelu_grad(float x)
{
    float u = GELU_S * (x + GELU_K * x * x * x);
    float du = GELU_S * (1.0f + 3.0f * GELU_K * x * x);
    float e = expf(-2.0f * fabsf(u)), q = 1.0f / (1.0f + e);
    return (u >= 0.0f ? q : e * q) + 2.0f * x * e * q * q * du;
}

__global__ void gelu_fwd(float *out, const float *inp, size_t n)
{
    FOR_EACH(i, n) out[i] = gelu(inp[i]);
}

__global__ void gelu_bwd(float *dinp, const float *inp, const float *dout, size_t n)
{
    FOR_EACH(i, n) dinp[i] += gelu_grad(inp[i]) * dout[i];
}

__global__ void swiglu_fwd(float *out, const float *gate, const float *up, size_t n)
{
    FOR_EACH(i, n) {
        float g = gate[i], e = expf(-fabsf(g)), q = 1.0f / (1.0f + e);
        out[i] = g * (g >= 0.0f ? q : e * q) * up[i];
    }
}

__global__ void swiglu_bwd(float *dgate, float *dup, const float *gate, const float *up, const float *dout, size_t n)
{
    FOR_EACH(i, n) {
        float g = gate[i], e = expf(-fabsf(g)), q = 1.0f / (1.0f + e);
        float sig = g >= 0.0f ? q : e * q, d = dout[i];
        dgate[i] += d * up[i] * (sig + g * e * q * q);
        dup[i] += d * g * sig;
    }
}

__global__ void adamw(float *p, const float *grads, float *m, float *v, size_t n, float lr, float b1, float b2,
                      float eps, float wd, float c1, float c2, float gs)
{
    FOR_EACH(i, n) {
        float g = grads[i] * gs;
        float mi = b1 * m[i] + (1.0f - b1) * g;
        float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        p[i] -= lr * ((mi * c1) / (sqrtf(vi * c2) + eps) + wd * p[i]);
    }
}

__global__ void scale_k(float *x, size_t n, float s)
{
    FOR_EACH(i, n) x[i] *= s;
}

/* a * x[i] rounded, then added: the CPU loop's two roundings (nvcc would
 * contract a*x+y into one fma; __fmul_rn keeps the product apart). */
__global__ void axpy_k(float *y, const float *x, size_t n, float a)
{
    FOR_EACH(i, n) y[i] = __fadd_rn(y[i], __fmul_rn(a, x[i]));
}

__global__ void fill_k(float *x, size_t n, float v)
{
    FOR_EACH(i, n) x[i] = v;
}

/* out (N, C) += rows (P, C), row i taking rows[i % P]: one add per element */
__global__ void add_rows_k(float *out, const float *rows, size_t P, size_t C, size_t n)
{
    FOR_EACH(i, n) out[i] = __fadd_rn(out[i], rows[((i / C) % P) * C + i % C]);
}

extern "C" {

int weft_cuda_zero(weft_cuda_ctx *ctx, float *x, size_t n)
{
    return weft_cuda_fail(ctx, cudaMemsetAsync(x, 0, n * sizeof *x, ctx->stream), "zero (cudaMemsetAsync)");
}

int weft_cuda_copy(weft_cuda_ctx *ctx, float *dst, const float *src, size_t n)
{
    return weft_cuda_fail(ctx, cudaMemcpyAsync(dst, src, n * sizeof *dst, cudaMemcpyDeviceToDevice, ctx->stream),
                          "copy (cudaMemcpyAsync)");
}

int weft_cuda_scale(weft_cuda_ctx *ctx, float *x, size_t n, float s)
{
    if (n == 0)
        return 0;
    scale_k<<<weft_cuda_blocks(n, THREADS), THREADS, 0, ctx->stream>>>(x, n, s);
    return WEFT_CUDA_LAUNCHED(ctx, "scale");
}

int weft_cuda_axpy(weft_cuda_ctx *ctx, float *y, const float *x, size_t n, float a)
{
    if (n == 0)
        return 0;
    axpy_k<<<weft_cuda_blocks(n, THREADS), THREADS, 0, ctx->stream>>>(y, x, n, a);
    return WEFT_CUDA_LAUNCHED(ctx, "axpy");
}

int weft_cuda_fill(weft_cuda_ctx *ctx, float *x, size_t n, float v)
{
    if (n == 0)
        return 0;
    fill_k<<<weft_cuda_blocks(n, THREADS), THREADS, 0, ctx->stream>>>(x, n, v);
    return WEFT_CUDA_LAUNCHED(ctx, "fill");
}

int weft_cuda_add_rows(weft_cuda_ctx *ctx, float *out, const float *rows, int N, int P, int C)
{
    size_t n = (size_t)N * C;
    if (n == 0)
        return 0;
    add_rows_k<<<weft_cuda_blocks(n, THREADS), THREADS, 0, ctx->stream>>>(out, rows, (size_t)P, (size_t)C, n);
    return WEFT_CUDA_LAUNCHED(ctx, "add_rows");
}

int weft_cuda_residual_forward(weft_cuda_ctx *ctx, float *out, const float *a, const float *b, size_t n)
{
    residual_fwd<<<weft_cuda_blocks(n, THREADS), THREADS, 0, ctx->stream>>>(out, a, b, n);
    return WEFT_CUDA_LAUNCHED(ctx, "residual_forward");
}

int weft_cuda_residual_backward(weft_cuda_ctx *ctx, float *da, float *db, const float *dout, size_t n)
{
    residual_bwd<<<weft_cuda_blocks(n, THREADS), THREADS, 0, ctx->stream>>>(da, db, dout, n);
    return WEFT_CUDA_LAUNCHED(ctx, "residual_backward");
}

int weft_cuda_gelu_forward(weft_cuda_ctx *ctx, float *out, const float *inp, size_t n)
{
    gelu_fwd<<<weft_cuda_blocks(n, THREADS), THREADS, 0, ctx->stream>>>(out, inp, n);
    return WEFT_CUDA_LAUNCHED(ctx, "gelu_forward");
}

int weft_cuda_gelu_backward(weft_cuda_ctx *ctx, float *dinp, const float *inp, const float *dout, size_t n)
{
    gelu_bwd<<<weft_cuda_blocks(n, THREADS), THREADS, 0, ctx->stream>>>(dinp, inp, dout, n);
    return WEFT_CUDA_LAUNCHED(ctx, "gelu_backward");
}

int weft_cuda_swiglu_forward(weft_cuda_ctx *ctx, float *out, const float *gate, const float *up, size_t n)
{
    swiglu_fwd<<<weft_cuda_blocks(n, THREADS), THREADS, 0, ctx->stream>>>(out, gate, up, n);
    return WEFT_CUDA_LAUNCHED(ctx, "swiglu_forward");
}

int weft_cuda_swiglu_backward(weft_cuda_ctx *ctx, float *dgate, float *dup, const float *gate, const float *up,
                              const float *dout, size_t n)
{
    swiglu_bwd<<<weft_cuda_blocks(n, THREADS), THREADS, 0, ctx->stream>>>(dgate, dup, gate, up, dout, n);
    return WEFT_CUDA_LAUNCHED(ctx, "swiglu_backward");
}

/* The bias corrections of step t (from 1) in double once, as the CPU's. */
int weft_cuda_adamw_update(weft_cuda_ctx *ctx, float *params, const float *grads, float *m, float *v, size_t n,
                           double lr, double beta1, double beta2, double eps, double weight_decay, int64_t t,
                           double grad_scale)
{
    float c1 = (float)(1.0 / (1.0 - pow(beta1, (double)t))), c2 = (float)(1.0 / (1.0 - pow(beta2, (double)t)));
    adamw<<<weft_cuda_blocks(n, THREADS), THREADS, 0, ctx->stream>>>(params, grads, m, v, n, (float)lr, (float)beta1,
                                                                     (float)beta2, (float)eps, (float)weight_decay,
                                                                     c1, c2, (float)grad_scale);
    return WEFT_CUDA_LAUNCHED(ctx, "adamw_update");
}

int weft_cuda_sumsq(weft_cuda_ctx *ctx, double *out, const float *x, size_t n)
{
    return weft_cuda_dsum(ctx, out, NULL, x, NULL, n, 1);
}

/* The gradient norm's running sum: this range's squares by the same
 * fixed-order two-pass reduction, added to the host's running double. */
int weft_cuda_sumsq_acc(weft_cuda_ctx *ctx, double *acc, const float *x, size_t n)
{
    double s = 0;
    if (n == 0)
        return 0;
    int rc = weft_cuda_dsum(ctx, &s, NULL, x, NULL, n, 1);
    if (rc == 0)
        *acc += s;
    return rc;
}

}
