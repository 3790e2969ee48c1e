/*
 * ops.cu -- the context (stream, scratch, cuBLASLt handle and workspace)
 * and the table libweft-cuda.so hands the device layer: the library's one
 * exported symbol, weft_cuda_ops_get (cuda_ops.h).
 */
#include "kernels/cuda/common.cuh"

#include <stdlib.h>

#define WORKSPACE_BYTES (32u << 20) /* cuBLASLt's: what Hopper's best kernels ask for */

static void ctx_free(weft_cuda_ctx *ctx)
{
    if (!ctx)
        return;
    if (ctx->lt)
        cublasLtDestroy(ctx->lt);
    cudaFree(ctx->workspace);
    cudaFree(ctx->colsum);
    cudaFree(ctx->dscratch);
    free(ctx);
}

static int ctx_new(void *stream, int max_cols, weft_cuda_ctx **out, char *err, size_t errlen)
{
    *out = NULL;
    weft_cuda_ctx *ctx = (weft_cuda_ctx *)calloc(1, sizeof *ctx);
    if (!ctx) {
        snprintf(err, errlen, "out of host memory for a CUDA context");
        return (int)cudaErrorMemoryAllocation;
    }
    ctx->stream = (cudaStream_t)stream;
    ctx->max_cols = max_cols < 1 ? 1 : max_cols;
    ctx->workspace_bytes = WORKSPACE_BYTES;
    size_t colsum = (size_t)WEFT_CUDA_COLSUM_PARTS * 2 * ctx->max_cols * sizeof(float);
    int rc = weft_cuda_fail(ctx, cudaMalloc((void **)&ctx->colsum, colsum), "cudaMalloc (column scratch)");
    if (rc == 0)
        rc = weft_cuda_fail(ctx, cudaMalloc((void **)&ctx->dscratch, (2 * WEFT_CUDA_DPARTS + 2) * sizeof(double)),
                            "cudaMalloc (sum scratch)");
    if (rc == 0)
        rc = weft_cuda_fail(ctx, cudaMalloc(&ctx->workspace, ctx->workspace_bytes), "cudaMalloc (cuBLASLt workspace)");
    if (rc == 0) {
        cublasStatus_t s = cublasLtCreate(&ctx->lt);
        if (s != CUBLAS_STATUS_SUCCESS) {
            snprintf(ctx->err, sizeof ctx->err, "cublasLtCreate: status %d", (int)s);
            rc = 1000 + (int)s;
        }
    }
    if (rc) {
        snprintf(err, errlen, "%s", ctx->err);
        ctx_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

static const char *ctx_error(const weft_cuda_ctx *ctx) { return ctx->err; }
static void ctx_set_bf16(weft_cuda_ctx *ctx, int on) { ctx->bf16 = on != 0; }

static size_t ctx_bytes(const weft_cuda_ctx *ctx)
{
    return (size_t)WEFT_CUDA_COLSUM_PARTS * 2 * ctx->max_cols * sizeof(float) +
           (2 * WEFT_CUDA_DPARTS + 2) * sizeof(double) + ctx->workspace_bytes;
}

static const weft_cuda_ops table = {
    WEFT_CUDA_OPS_ABI,
    ctx_new,
    ctx_free,
    ctx_error,
    ctx_set_bf16,
    ctx_bytes,
    weft_cuda_matmul_forward,
    weft_cuda_matmul_backward,
    weft_cuda_layernorm_forward,
    weft_cuda_layernorm_backward,
    weft_cuda_rmsnorm_forward,
    weft_cuda_rmsnorm_backward,
    weft_cuda_gelu_forward,
    weft_cuda_gelu_backward,
    weft_cuda_residual_forward,
    weft_cuda_residual_backward,
    weft_cuda_swiglu_forward,
    weft_cuda_swiglu_backward,
    weft_cuda_embedding_forward,
    weft_cuda_embedding_backward,
    weft_cuda_xent_forward_backward,
    weft_cuda_xent_mean,
    weft_cuda_xent_stats,
    weft_cuda_xent_grad,
    weft_cuda_adamw_update,
    weft_cuda_sumsq,
    weft_cuda_rope_forward,
    weft_cuda_rope_backward,
    weft_cuda_attention_forward,
    weft_cuda_attention_backward,
    weft_cuda_gqa_attention_forward,
    weft_cuda_gqa_attention_backward,
    weft_cuda_zero,
    weft_cuda_copy,
    weft_cuda_scale,
    weft_cuda_axpy,
    weft_cuda_xent_finish,
    weft_cuda_fill, /* ABI 4 */
    weft_cuda_add_rows,
    weft_cuda_embedding_vp_forward,
    weft_cuda_embedding_vp_backward,
    weft_cuda_xent_rescale,
    weft_cuda_matmul_nn_add,
    weft_cuda_lora_dropout,
    weft_cuda_lora_dropout_add,
    weft_cuda_sumsq_acc, /* ABI 5 */
};

extern "C" __attribute__((visibility("default"))) const weft_cuda_ops *weft_cuda_ops_get(void) { return &table; }
