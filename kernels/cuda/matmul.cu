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
 *
 * Each distinct product (shape, transposes, bias, operand alignment,
 * precision) is planned once and cached in the context (common.cuh's
 * weft_cuda_plan): the descriptors and the heuristic's choice cost host
 * allocations and tens of microseconds, too much for every call of a step.
 */
#include "kernels/cuda/common.cuh"

#include <stdint.h>
#include <string.h>

static int lt_fail(weft_cuda_ctx *ctx, cublasStatus_t s, const char *what)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return 0;
    snprintf(ctx->err, sizeof ctx->err, "%s: cuBLASLt status %d", what, (int)s);
    return 1000 + (int)s; /* not a cudaError_t: told apart by the message */
}

static void plan_destroy(weft_cuda_plan *p)
{
    if (p->ld)
        cublasLtMatrixLayoutDestroy(p->ld);
    if (p->lb)
        cublasLtMatrixLayoutDestroy(p->lb);
    if (p->la)
        cublasLtMatrixLayoutDestroy(p->la);
    if (p->op)
        cublasLtMatmulDescDestroy(p->op);
    memset(p, 0, sizeof *p);
}

void weft_cuda_plans_free(weft_cuda_ctx *ctx)
{
    for (int i = 0; i < ctx->nplans; i++)
        plan_destroy(&ctx->plans[i]);
    ctx->nplans = 0;
}

/* The largest power of two, at most 256, that divides every address: the
 * heuristic is told it (its default assumes 256-byte aligned operands, and
 * an algorithm chosen for those refuses a carve at a 4-byte offset). */
static int alignment(const void *A, const void *B, const void *D, const void *bias)
{
    uintptr_t u = (uintptr_t)A | (uintptr_t)B | (uintptr_t)D | (uintptr_t)bias | 256u;
    return (int)(u & (~u + 1));
}

/* Descriptor, layouts and algorithm for the key; p is zeroed on failure. */
static cublasStatus_t plan_make(weft_cuda_ctx *ctx, weft_cuda_plan *p, const int *key)
{
    cublasOperation_t ta = (cublasOperation_t)key[0], tb = (cublasOperation_t)key[1];
    int m = key[2], n = key[3], k = key[4], lda = key[5], ldb = key[6], ldd = key[7], bias = key[8];
    uint32_t align = (uint32_t)key[9];
    cublasComputeType_t ct = key[10] ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F;
    memcpy(p->key, key, sizeof p->key);
    cublasLtMatmulPreference_t pref = NULL;
    cublasStatus_t s = cublasLtMatmulDescCreate(&p->op, ct, CUDA_R_32F);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (s == CUBLAS_STATUS_SUCCESS && bias) {
        cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BIAS;
        s = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep);
    }
    /* stored shapes: A is (m, k) or, transposed, (k, m); B (k, n) or (n, k) */
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatrixLayoutCreate(&p->la, CUDA_R_32F, ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m,
                                       lda);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_32F, tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k,
                                       ldb);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatrixLayoutCreate(&p->ld, CUDA_R_32F, m, n, ldd);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceCreate(&pref);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                 &ctx->workspace_bytes, sizeof ctx->workspace_bytes);
    const cublasLtMatmulPreferenceAttributes_t aligns[] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4 && s == CUBLAS_STATUS_SUCCESS; i++)
        s = cublasLtMatmulPreferenceSetAttribute(pref, aligns[i], &align, sizeof align);
    cublasLtMatmulHeuristicResult_t h;
    int found = 0;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulAlgoGetHeuristic(ctx->lt, p->op, p->la, p->lb, p->ld, p->ld, pref, 1, &h, &found);
    if (s == CUBLAS_STATUS_SUCCESS && found == 0)
        s = CUBLAS_STATUS_NOT_SUPPORTED;
    if (pref)
        cublasLtMatmulPreferenceDestroy(pref);
    if (s == CUBLAS_STATUS_SUCCESS)
        p->algo = h.algo;
    else
        plan_destroy(p);
    return s;
}

/* D (m, n) = alpha op(A) op(B) + beta D, column-major, f32 arrays; lda etc.
 * the leading dimensions of the stored (untransposed) matrices. The plan
 * comes from the context's cache; past WEFT_CUDA_PLANS shapes a plan is
 * made for the call and destroyed after it (correct, only slower). */
static int gemm(weft_cuda_ctx *ctx, const char *what, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                const float *A, int lda, const float *B, int ldb, float *D, int ldd, float beta, const float *bias)
{
    const int key[WEFT_CUDA_PLAN_KEY] = {(int)ta, (int)tb, m, n, k, lda, ldb, ldd, bias != NULL,
                                        alignment(A, B, D, bias), ctx->bf16};
    weft_cuda_plan once, *p = NULL;
    for (int i = 0; i < ctx->nplans && !p; i++)
        if (memcmp(ctx->plans[i].key, key, sizeof key) == 0)
            p = &ctx->plans[i];
    cublasStatus_t s = CUBLAS_STATUS_SUCCESS;
    if (!p) {
        p = ctx->nplans < WEFT_CUDA_PLANS ? &ctx->plans[ctx->nplans] : &once;
        memset(p, 0, sizeof *p);
        s = plan_make(ctx, p, key);
        if (s == CUBLAS_STATUS_SUCCESS && p != &once)
            ctx->nplans++;
    }
    /* the bias pointer is the call's, not the plan's */
    if (s == CUBLAS_STATUS_SUCCESS && bias)
        s = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    float alpha = 1.0f;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmul(ctx->lt, p->op, &alpha, A, p->la, B, p->lb, &beta, D, p->ld, D, p->ld, &p->algo,
                           ctx->workspace, ctx->workspace_bytes, ctx->stream);
    if (p == &once)
        plan_destroy(&once);
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
