/*
 * matmul.cu -- the linear layer on cuBLASLt: out = inp @ weight^T + bias
 * and its backward, on the context's stream, workspace and handle.
 *
 * cuBLASLt is column-major; a row-major (R, K) array is the column-major
 * (K, R) one, so each product is written on the transposes:
 *   forward   out^T (OC, N)  = op_T(W as (C, OC)) . inp as (C, N)   + bias (the BIAS epilogue adds a
 *                                                                     vector along OC, fused)
 *   dinp      dinp^T (C, N) += W as (C, OC) . dout as (OC, N)
 *   dweight   dW^T (C, OC)  += inp as (C, N) . op_T(dout as (OC, N))
 * dbias += the column sums of dout, by reduce.cu's fixed-order passes (a
 * bias-gradient epilogue would sum in an order cuBLASLt chooses).
 *
 * Precision: CUBLAS_COMPUTE_32F, or with ctx->bf16 CUBLAS_COMPUTE_32F_FAST_16BF
 * (bf16 tensor cores: inputs rounded to bf16, f32 accumulation).
 */
#include "kernels/cuda/common.cuh"

static int lt_fail(weft_cuda_ctx *ctx, cublasStatus_t s, const char *what)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return 0;
    snprintf(ctx->err, sizeof ctx->err, "%s: cuBLASLt status %d", what, (int)s);
    return 1000 + (int)s; /* not a cudaError_t: told apart by the message */
}

/* D (m, n) = alpha op(A) op(B) + beta D, column-major, f32 arrays; lda etc.
 * the leading dimensions of the stored (untransposed) matrices. */
static int gemm(weft_cuda_ctx *ctx, const char *what, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                const float *A, int lda, const float *B, int ldb, float *D, int ldd, float beta, const float *bias)
{
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, ld = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasComputeType_t ct = ctx->bf16 ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F;
    cublasStatus_t s = cublasLtMatmulDescCreate(&op, ct, CUDA_R_32F);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (s == CUBLAS_STATUS_SUCCESS && bias) {
        cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BIAS;
        s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep);
        if (s == CUBLAS_STATUS_SUCCESS)
            s = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    }
    /* stored shapes: A is (m, k) or, transposed, (k, m); B (k, n) or (n, k) */
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, m, n, ldd);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceCreate(&pref);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                 &ctx->workspace_bytes, sizeof ctx->workspace_bytes);
    cublasLtMatmulHeuristicResult_t h;
    int found = 0;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulAlgoGetHeuristic(ctx->lt, op, la, lb, ld, ld, pref, 1, &h, &found);
    if (s == CUBLAS_STATUS_SUCCESS && found == 0)
        s = CUBLAS_STATUS_NOT_SUPPORTED;
    float alpha = 1.0f;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmul(ctx->lt, op, &alpha, A, la, B, lb, &beta, D, ld, D, ld, &h.algo, ctx->workspace,
                           ctx->workspace_bytes, ctx->stream);
    if (pref)
        cublasLtMatmulPreferenceDestroy(pref);
    if (ld)
        cublasLtMatrixLayoutDestroy(ld);
    if (lb)
        cublasLtMatrixLayoutDestroy(lb);
    if (la)
        cublasLtMatrixLayoutDestroy(la);
    if (op)
        cublasLtMatmulDescDestroy(op);
    return lt_fail(ctx, s, what);
}

extern "C" {

int weft_cuda_matmul_forward(weft_cuda_ctx *ctx, float *out, const float *inp, const float *weight,
                             const float *bias, int N, int C, int OC)
{
    return gemm(ctx, "matmul_forward", CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, weight, C, inp, C, out, OC, 0.0f, bias);
}

int weft_cuda_matmul_backward(weft_cuda_ctx *ctx, float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, int N, int C, int OC)
{
    int rc = 0;
    if (dinp)
        rc = gemm(ctx, "matmul_backward (input)", CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, weight, C, dout, OC, dinp, C,
                  1.0f, NULL);
    if (rc == 0 && dweight)
        rc = gemm(ctx, "matmul_backward (weight)", CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, inp, C, dout, OC, dweight, C,
                  1.0f, NULL);
    if (rc == 0 && dbias)
        rc = weft_cuda_colsum_add(ctx, dbias, dout, N, OC);
    return rc;
}

}
