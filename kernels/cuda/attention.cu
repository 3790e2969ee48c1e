/*
 * attention.cu -- causal self-attention, flash-style: the (B, NH, T, T)
 * probabilities never exist. Forward: a thread per query row sweeps key
 * tiles (staged in shared memory) with an online softmax and saves the
 * row's log-sum-exp. Backward recomputes each probability from q, k and
 * the lse: one kernel gives dq (a thread per query row), another dk and dv
 * (a thread per key row, summing over its queries and, for grouped-query
 * attention, over the query heads sharing it) -- each gradient element
 * summed by one thread in a fixed order, so no atomics and the same result
 * every run.
 *
 * This is the first, plain version: CUDA cores, a row per thread, rows of
 * q and of the accumulators in per-thread arrays. It is written to be
 * right (checked against the CPU's f64 kernels by tests/gpu/kernels_check)
 * before it is fast; tensor-core tiles are the next step (issue 20's MFU
 * target).
 *
 * One layout serves both entry points: q, k, v and out are row-strided
 * views (element (b, t, head h, d) at base + (b T + t) ld + h hs + d), so
 * GPT-2's fused qkv (B, T, 3C) is q = qkv, k = qkv + C, v = qkv + 2C with
 * ld = 3C, and Llama's separate q, k, v have ld = NH hs and NKV hs.
 */
#include "kernels/cuda/common.cuh"

#define QROWS 64 /* query (or key) rows per block: one per thread */
#define TILE 32  /* rows staged in shared memory at a time */
#define HS WEFT_CUDA_MAX_HS

typedef struct {
    const float *q, *k, *v, *out, *dout;
    float *dq, *dk, *dv;
    int ldq, ldk, ldv, ldo;
    const float *lse_in;
    float *out_w, *lse_w;
    int B, T, NH, NKV, hs;
    float scale;
} att_args;

__device__ inline size_t row_at(int b, int t, int T, int ld, int head, int hs)
{
    return ((size_t)b * T + t) * ld + (size_t)head * hs;
}

/* Rows r0 .. r0 + TILE - 1 of head `head` of two row-strided arrays into
 * shared memory (zeros past T), by the block's QROWS threads together: the
 * key/value tiles of the forward and dq kernels, the query/dout tiles of
 * the dk/dv kernel. The caller synchronises before reading them. */
__device__ inline void stage_rows(float s1[TILE][HS], float s2[TILE][HS], const float *a1, int ld1, const float *a2,
                                  int ld2, int b, int r0, int T, int head, int hs)
{
    for (int i = threadIdx.x; i < TILE * hs; i += QROWS) {
        int r = i / hs, d = i % hs, t = r0 + r;
        s1[r][d] = t < T ? a1[row_at(b, t, T, ld1, head, hs) + d] : 0.0f;
        s2[r][d] = t < T ? a2[row_at(b, t, T, ld2, head, hs) + d] : 0.0f;
    }
}

/* grid (ceil(T / QROWS), B NH) */
__global__ void att_fwd(att_args a)
{
    __shared__ float ks[TILE][HS], vs[TILE][HS];
    int bh = blockIdx.y, b = bh / a.NH, h = bh % a.NH, g = h / (a.NH / a.NKV), hs = a.hs;
    int t = blockIdx.x * QROWS + threadIdx.x, last = min(a.T - 1, (int)(blockIdx.x * QROWS + QROWS - 1));
    float q[HS], acc[HS], m = -INFINITY, l = 0.0f;
    if (t < a.T)
        for (int d = 0; d < hs; d++) {
            q[d] = a.q[row_at(b, t, a.T, a.ldq, h, hs) + d] * a.scale;
            acc[d] = 0.0f;
        }
    for (int j0 = 0; j0 <= last; j0 += TILE) {
        stage_rows(ks, vs, a.k, a.ldk, a.v, a.ldv, b, j0, a.T, g, hs);
        __syncthreads();
        for (int r = 0; t < a.T && r < TILE && j0 + r <= t; r++) {
            float s = 0.0f;
            for (int d = 0; d < hs; d++)
                s += q[d] * ks[r][d];
            float mn = fmaxf(m, s), corr = expf(m - mn), p = expf(s - mn);
            l = l * corr + p;
            for (int d = 0; d < hs; d++)
                acc[d] = acc[d] * corr + p * vs[r][d];
            m = mn;
        }
        __syncthreads();
    }
    if (t >= a.T)
        return;
    for (int d = 0; d < hs; d++)
        a.out_w[row_at(b, t, a.T, a.ldo, h, hs) + d] = acc[d] / l;
    a.lse_w[(size_t)bh * a.T + t] = m + logf(l);
}

/* dq: grid (ceil(T / QROWS), B NH), a thread per query row. For each key
 * j <= t: p = exp(q.k scale - lse), ds = p (dout.v - D), dq += ds k scale,
 * D = dout.out of the row. */
__global__ void att_bwd_dq(att_args a)
{
    __shared__ float ks[TILE][HS], vs[TILE][HS];
    int bh = blockIdx.y, b = bh / a.NH, h = bh % a.NH, g = h / (a.NH / a.NKV), hs = a.hs;
    int t = blockIdx.x * QROWS + threadIdx.x, last = min(a.T - 1, (int)(blockIdx.x * QROWS + QROWS - 1));
    float q[HS], dO[HS], dq[HS], D = 0.0f, lse = 0.0f;
    if (t < a.T) {
        size_t qi = row_at(b, t, a.T, a.ldq, h, hs), oi = row_at(b, t, a.T, a.ldo, h, hs);
        for (int d = 0; d < hs; d++) {
            q[d] = a.q[qi + d];
            dO[d] = a.dout[oi + d];
            D += dO[d] * a.out[oi + d];
            dq[d] = 0.0f;
        }
        lse = a.lse_in[(size_t)bh * a.T + t];
    }
    for (int j0 = 0; j0 <= last; j0 += TILE) {
        stage_rows(ks, vs, a.k, a.ldk, a.v, a.ldv, b, j0, a.T, g, hs);
        __syncthreads();
        for (int r = 0; t < a.T && r < TILE && j0 + r <= t; r++) {
            float s = 0.0f, dp = 0.0f;
            for (int d = 0; d < hs; d++) {
                s += q[d] * ks[r][d];
                dp += dO[d] * vs[r][d];
            }
            float ds = expf(s * a.scale - lse) * (dp - D) * a.scale;
            for (int d = 0; d < hs; d++)
                dq[d] += ds * ks[r][d];
        }
        __syncthreads();
    }
    if (t >= a.T)
        return;
    size_t qi = row_at(b, t, a.T, a.ldq, h, hs);
    for (int d = 0; d < hs; d++)
        a.dq[qi + d] += dq[d];
}

/* dk, dv: grid (ceil(T / QROWS), B NKV), a thread per key row j of kv head
 * g; for each query head of g's group, each query t >= j: dv += p dout_t,
 * dk += ds q_t scale. Query tiles, with their D and lse, in shared memory. */
__global__ void att_bwd_dkv(att_args a)
{
    __shared__ float qs[TILE][HS], dos[TILE][HS], Ds[TILE], ls[TILE];
    int bg = blockIdx.y, b = bg / a.NKV, g = bg % a.NKV, hs = a.hs, group = a.NH / a.NKV;
    int j = blockIdx.x * QROWS + threadIdx.x, first = blockIdx.x * QROWS;
    float k[HS], v[HS], dk[HS], dv[HS];
    if (j < a.T)
        for (int d = 0; d < hs; d++) {
            k[d] = a.k[row_at(b, j, a.T, a.ldk, g, hs) + d];
            v[d] = a.v[row_at(b, j, a.T, a.ldv, g, hs) + d];
            dk[d] = dv[d] = 0.0f;
        }
    for (int h = g * group; h < (g + 1) * group; h++) {
        size_t bh = (size_t)b * a.NH + h;
        for (int t0 = first - first % TILE; t0 < a.T; t0 += TILE) {
            stage_rows(qs, dos, a.q, a.ldq, a.dout, a.ldo, b, t0, a.T, h, hs);
            if (threadIdx.x < TILE) {
                int t = t0 + threadIdx.x;
                float D = 0.0f;
                for (int d = 0; t < a.T && d < hs; d++)
                    D += a.dout[row_at(b, t, a.T, a.ldo, h, hs) + d] * a.out[row_at(b, t, a.T, a.ldo, h, hs) + d];
                Ds[threadIdx.x] = D;
                ls[threadIdx.x] = t < a.T ? a.lse_in[bh * a.T + t] : 0.0f;
            }
            __syncthreads();
            for (int r = 0; j < a.T && r < TILE && t0 + r < a.T; r++) {
                if (t0 + r < j)
                    continue;
                float s = 0.0f, dp = 0.0f;
                for (int d = 0; d < hs; d++) {
                    s += qs[r][d] * k[d];
                    dp += dos[r][d] * v[d];
                }
                float p = expf(s * a.scale - ls[r]), ds = p * (dp - Ds[r]) * a.scale;
                for (int d = 0; d < hs; d++) {
                    dv[d] += p * dos[r][d];
                    dk[d] += ds * qs[r][d];
                }
            }
            __syncthreads();
        }
    }
    if (j >= a.T)
        return;
    size_t ki = row_at(b, j, a.T, a.ldk, g, hs), vi = row_at(b, j, a.T, a.ldv, g, hs);
    for (int d = 0; d < hs; d++) {
        a.dk[ki + d] += dk[d];
        a.dv[vi + d] += dv[d];
    }
}

/* x' = x cos - x[+half] sin, x[+half]' = x[+half] cos + x sin; backward the
 * transpose (sin negated). A thread per (b, t, head, i < hs/2). */
__global__ void rope(float *x, const float *cs, const float *sn, int B, int T, int nh, int hs, float sign)
{
    int half = hs / 2;
    size_t n = (size_t)B * T * nh * half;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int d = (int)(i % half);
        size_t rest = i / half;
        int head = (int)(rest % nh);
        size_t bt = rest / nh;
        int t = (int)(bt % T);
        float *p = x + bt * (size_t)nh * hs + (size_t)head * hs;
        float c = cs[(size_t)t * half + d], s = sign * sn[(size_t)t * half + d];
        float a = p[d], b2 = p[d + half];
        p[d] = a * c - b2 * s;
        p[d + half] = b2 * c + a * s;
    }
}

static int check_hs(weft_cuda_ctx *ctx, const char *op, int NH, int NKV, int hs)
{
    if (hs >= 1 && hs <= HS && NKV >= 1 && NH % NKV == 0)
        return 0;
    snprintf(ctx->err, sizeof ctx->err, "%s: head size %d (at most %d) with %d heads over %d key/value heads", op, hs,
             HS, NH, NKV);
    return (int)cudaErrorInvalidValue;
}

static int launch_fwd(weft_cuda_ctx *ctx, att_args a, const char *op)
{
    int rc = check_hs(ctx, op, a.NH, a.NKV, a.hs);
    if (rc)
        return rc;
    dim3 grid((a.T + QROWS - 1) / QROWS, a.B * a.NH);
    att_fwd<<<grid, QROWS, 0, ctx->stream>>>(a);
    return WEFT_CUDA_LAUNCHED(ctx, op);
}

static int launch_bwd(weft_cuda_ctx *ctx, att_args a, const char *op)
{
    int rc = check_hs(ctx, op, a.NH, a.NKV, a.hs);
    if (rc)
        return rc;
    dim3 gq((a.T + QROWS - 1) / QROWS, a.B * a.NH), gkv((a.T + QROWS - 1) / QROWS, a.B * a.NKV);
    att_bwd_dq<<<gq, QROWS, 0, ctx->stream>>>(a);
    if ((rc = WEFT_CUDA_LAUNCHED(ctx, op)))
        return rc;
    att_bwd_dkv<<<gkv, QROWS, 0, ctx->stream>>>(a);
    return WEFT_CUDA_LAUNCHED(ctx, op);
}

extern "C" {

int weft_cuda_attention_forward(weft_cuda_ctx *ctx, float *out, float *lse, const float *qkv, int B, int T, int C,
                                int NH)
{
    int hs = C / NH;
    att_args a = {qkv, qkv + C, qkv + 2 * C, NULL, NULL, NULL, NULL, NULL, 3 * C, 3 * C, 3 * C, C, NULL,
                  out, lse, B, T, NH, NH, hs, 1.0f / sqrtf((float)hs)};
    return launch_fwd(ctx, a, "attention_forward");
}

int weft_cuda_attention_backward(weft_cuda_ctx *ctx, float *dqkv, const float *dout, const float *qkv,
                                 const float *out, const float *lse, int B, int T, int C, int NH)
{
    int hs = C / NH;
    att_args a = {qkv, qkv + C, qkv + 2 * C, out, dout, dqkv, dqkv + C, dqkv + 2 * C, 3 * C, 3 * C, 3 * C, C, lse,
                  NULL, NULL, B, T, NH, NH, hs, 1.0f / sqrtf((float)hs)};
    return launch_bwd(ctx, a, "attention_backward");
}

int weft_cuda_gqa_attention_forward(weft_cuda_ctx *ctx, float *out, float *lse, const float *q, const float *k,
                                    const float *v, int B, int T, int NH, int NKV, int hs)
{
    att_args a = {q, k, v, NULL, NULL, NULL, NULL, NULL, NH * hs, NKV * hs, NKV * hs, NH * hs, NULL,
                  out, lse, B, T, NH, NKV, hs, 1.0f / sqrtf((float)hs)};
    return launch_fwd(ctx, a, "gqa_attention_forward");
}

int weft_cuda_gqa_attention_backward(weft_cuda_ctx *ctx, float *dq, float *dk, float *dv, const float *dout,
                                     const float *q, const float *k, const float *v, const float *out,
                                     const float *lse, int B, int T, int NH, int NKV, int hs)
{
    att_args a = {q, k, v, out, dout, dq, dk, dv, NH * hs, NKV * hs, NKV * hs, NH * hs, lse,
                  NULL, NULL, B, T, NH, NKV, hs, 1.0f / sqrtf((float)hs)};
    return launch_bwd(ctx, a, "gqa_attention_backward");
}

int weft_cuda_rope_forward(weft_cuda_ctx *ctx, float *x, const float *cs, const float *sn, int B, int T, int nh,
                           int hs)
{
    size_t n = (size_t)B * T * nh * (hs / 2);
    rope<<<weft_cuda_blocks(n, 256), 256, 0, ctx->stream>>>(x, cs, sn, B, T, nh, hs, 1.0f);
    return WEFT_CUDA_LAUNCHED(ctx, "rope_forward");
}

int weft_cuda_rope_backward(weft_cuda_ctx *ctx, float *dx, const float *cs, const float *sn, int B, int T, int nh,
                            int hs)
{
    size_t n = (size_t)B * T * nh * (hs / 2);
    rope<<<weft_cuda_blocks(n, 256), 256, 0, ctx->stream>>>(dx, cs, sn, B, T, nh, hs, -1.0f);
    return WEFT_CUDA_LAUNCHED(ctx, "rope_backward");
}

}
