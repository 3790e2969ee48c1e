/*
 * ops_impl.h -- the bodies of every CPU op in kernels.h, written once and
 * compiled twice: ops_f32.c includes it with REAL = float, ops_f64.c with
 * REAL = double. The f64 build exists for finite-difference checks and as a
 * reference, so both must stay the same algorithm line for line; the only
 * per-type choices are the macros the includer defines:
 *
 *   REAL        float | double
 *   SFX(name)   name  | name##_f64       (public names)
 *   GEMM        cblas_sgemm | cblas_dgemm
 *   R_EXP, R_SQRT, R_FABS                the math of that type (R_EXP is
 *                                        only ever called on x <= 0)
 *   R_SELECT(c, a, b)                    c ? a : b (branch-free for f32)
 *   OPS_MATMUL_ELSEWHERE                 defined: the matmul ops come from
 *                                        another file (f32: matmul_dnnl.c)
 *   EXP_LOOP(name)                       defined: how to call the exp loops
 *                                        (f32: the widest copy, vexp.h);
 *                                        undefined: compiled here (f64)
 *
 * Deliberately not here: allocation (scratch comes from the caller), threads
 * (only BLAS's own), anything about ranks or shards.
 *
 * Loops are written for gcc's vectoriser at the default -O2, whose
 * "very-cheap" cost model vectorises a loop only when its trip count is a
 * known multiple of the vector width: so every hot loop runs over blocks of
 * VB = 8 elements (a fixed inner loop gcc vectorises) and then a scalar
 * tail, with restrict pointers and unit stride. Reductions keep 8 partial
 * sums, which also vectorises without -ffast-math (and loses less precision
 * than one running sum over an 8192-wide row). The f32 math macros are
 * inline polynomials (fastmath.h) so that loops calling them vectorise too.
 *
 * No include guard: this file is meant to be included once per type.
 */
#include <assert.h>
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "kernels/kernels.h"

#define LN_EPS 1e-5
/* Row block for the causal attention products: the lower triangle of the
 * (T, T) score matrix is covered by row blocks of BLK rows, each multiplied
 * only against the columns up to its last row, so about half the square
 * is never computed, while each gemm stays large enough for BLAS. */
#define ATT_BLK 64
#define VB 8   /* lanes of a vectorised block; see the top of the file */

/* --- row helpers ---------------------------------------------------------- */

static REAL row_sum(const REAL *restrict x, int n)
{
    REAL acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += x[i + k];
    REAL s = 0;
    for (; i < n; i++)
        s += x[i];
    for (int k = 0; k < 8; k++)
        s += acc[k];
    return s;
}

static REAL row_dot(const REAL *restrict x, const REAL *restrict y, int n)
{
    REAL acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += x[i + k] * y[i + k];
    REAL s = 0;
    for (; i < n; i++)
        s += x[i] * y[i];
    for (int k = 0; k < 8; k++)
        s += acc[k];
    return s;
}

/* sum of x[i] y[i] z[i] */
static REAL row_dot3(const REAL *restrict x, const REAL *restrict y, const REAL *restrict z, int n)
{
    REAL acc[VB] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + VB <= n; i += VB)
        for (int k = 0; k < VB; k++)
            acc[k] += x[i + k] * y[i + k] * z[i + k];
    REAL s = 0;
    for (; i < n; i++)
        s += x[i] * y[i] * z[i];
    for (int k = 0; k < VB; k++)
        s += acc[k];
    return s;
}

static REAL row_max(const REAL *restrict x, int n)
{
    REAL acc[8];
    for (int k = 0; k < 8; k++)
        acc[k] = x[0];
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] = x[i + k] > acc[k] ? x[i + k] : acc[k];
    REAL m = x[0];
    for (; i < n; i++)
        m = x[i] > m ? x[i] : m;
    for (int k = 0; k < 8; k++)
        m = acc[k] > m ? acc[k] : m;
    return m;
}

/* The loops whose cost is exp (kernels/vexp_impl.h), called as
 * EXP_LOOP(name): the f64 build compiles them here, the f32 build (ops_f32.c)
 * defines EXP_LOOP to call the copy for the widest vectors this CPU runs. */
#ifndef EXP_LOOP
#define VX(name) name##_loop
#define VX_LANES VB
#include "kernels/act_impl.h"
#include "kernels/vexp_impl.h"
#define EXP_LOOP(name) name##_loop
#endif

/* x[i] = exp(x[i] - shift) in place; returns the sum of the new values. */
static REAL row_exp_sum(REAL *restrict x, int n, REAL shift)
{
    EXP_LOOP(exp_shift)(x, n, shift);
    return row_sum(x, n);
}

static void row_scale(REAL *restrict x, size_t n, REAL s)
{
    size_t i = 0;
    for (; i + VB <= n; i += VB)
        for (int k = 0; k < VB; k++)
            x[i + k] *= s;
    for (; i < n; i++)
        x[i] *= s;
}

/* y += x */
static void row_acc(REAL *restrict y, const REAL *restrict x, size_t n)
{
    size_t i = 0;
    for (; i + VB <= n; i += VB)
        for (int k = 0; k < VB; k++)
            y[i + k] += x[i + k];
    for (; i < n; i++)
        y[i] += x[i];
}

/* o = a + b */
static void row_add(REAL *restrict o, const REAL *restrict a, const REAL *restrict b, size_t n)
{
    size_t i = 0;
    for (; i + VB <= n; i += VB)
        for (int k = 0; k < VB; k++)
            o[i + k] = a[i + k] + b[i + k];
    for (; i < n; i++)
        o[i] = a[i] + b[i];
}

/* --- matmul -------------------------------------------------------------- */

/* The f32 build defines OPS_MATMUL_ELSEWHERE: its linear layer runs on
 * oneDNN (matmul_dnnl.c). These CBLAS bodies are the f64 reference's. */
#ifndef OPS_MATMUL_ELSEWHERE
void SFX(weft_matmul_forward)(REAL *out, const REAL *inp, const REAL *weight, const REAL *bias,
                              int N, int C, int OC)
{
    // out (N, OC) = inp (N, C) @ weight (OC, C)^T (+ bias): the bias is
    // broadcast into out first so that one gemm with beta = 1 adds it.
    if (N <= 0 || OC <= 0)
        return;
    if (bias)
        for (int n = 0; n < N; n++)
            memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(REAL));
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1, inp, C, weight, C, bias ? 1 : 0,
         out, OC);
}

void SFX(weft_matmul_backward)(REAL *dinp, REAL *dweight, REAL *dbias, const REAL *dout,
                               const REAL *inp, const REAL *weight, int N, int C, int OC)
{
    if (N <= 0 || OC <= 0 || C <= 0)
        return;
    // dinp (N, C) += dout (N, OC) @ weight (OC, C)
    if (dinp)
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1, dout, OC, weight, C, 1, dinp,
             C);
    // dweight (OC, C) += dout^T (OC, N) @ inp (N, C); NULL: a frozen weight
    if (dweight)
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1, dout, OC, inp, C, 1, dweight, C);
    // dbias (OC) += column sums of dout, row by row so the inner loop is unit stride
    if (dbias)
        for (int n = 0; n < N; n++)
            row_acc(dbias, dout + (size_t)n * OC, OC);
}
#endif /* OPS_MATMUL_ELSEWHERE */

/* --- layernorm ----------------------------------------------------------- */

static void ln_row(REAL *restrict out, const REAL *restrict x, const REAL *restrict w,
                   const REAL *restrict b, REAL mean, REAL rstd, int C)
{
    int i = 0;
    for (; i + VB <= C; i += VB)
        for (int k = 0; k < VB; k++)
            out[i + k] = (x[i + k] - mean) * rstd * w[i + k] + b[i + k];
    for (; i < C; i++)
        out[i] = (x[i] - mean) * rstd * w[i] + b[i];
}

/* sum of (x[i] - m)^2 */
static REAL row_sqdev(const REAL *restrict x, int n, REAL m)
{
    REAL acc[VB] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + VB <= n; i += VB)
        for (int k = 0; k < VB; k++)
            acc[k] += (x[i + k] - m) * (x[i + k] - m);
    REAL s = 0;
    for (; i < n; i++)
        s += (x[i] - m) * (x[i] - m);
    for (int k = 0; k < VB; k++)
        s += acc[k];
    return s;
}

void SFX(weft_layernorm_forward)(REAL *out, REAL *mean, REAL *rstd, const REAL *inp,
                                 const REAL *weight, const REAL *bias, int N, int C)
{
    for (int n = 0; n < N; n++) {
        const REAL *x = inp + (size_t)n * C;   // (C)
        REAL m = row_sum(x, C) / (REAL)C;
        // variance from the centred values (two passes): no cancellation
        // when |mean| >> std, as in activations with a large offset
        REAL v = row_sqdev(x, C, m) / (REAL)C;
        REAL s = (REAL)1 / R_SQRT(v + (REAL)LN_EPS);
        ln_row(out + (size_t)n * C, x, weight, bias, m, s, C);
        mean[n] = m;
        rstd[n] = s;
    }
}

static inline void ln_back_elem(REAL *restrict dx, REAL *restrict dw, REAL *restrict db, REAL dy,
                                REAL x, REAL w, REAL mean, REAL rstd, REAL g_mean, REAL gx_mean)
{
    REAL xhat = (x - mean) * rstd;
    *db += dy;
    *dw += xhat * dy;
    *dx += (w * dy - g_mean - xhat * gx_mean) * rstd;
}

/* mean(g) and mean(g * xhat) over a row, g = w * dy, xhat = (x - mean) * rstd:
 * what LayerNorm's input gradient needs, trained or frozen. */
static inline void ln_back_means(const REAL *restrict dy, const REAL *restrict x, const REAL *restrict w,
                                 REAL mean, REAL rstd, int C, REAL *g_mean_out, REAL *gx_mean_out)
{
    REAL ga[VB] = {0, 0, 0, 0, 0, 0, 0, 0}, gxa[VB] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + VB <= C; i += VB)
        for (int k = 0; k < VB; k++) {
            REAL g = w[i + k] * dy[i + k];
            ga[k] += g;
            gxa[k] += g * (x[i + k] - mean) * rstd;
        }
    REAL g_mean = 0, gx_mean = 0;
    for (; i < C; i++) {
        REAL g = w[i] * dy[i];
        g_mean += g;
        gx_mean += g * (x[i] - mean) * rstd;
    }
    for (int k = 0; k < VB; k++) {
        g_mean += ga[k];
        gx_mean += gxa[k];
    }
    g_mean /= (REAL)C;
    gx_mean /= (REAL)C;
    *g_mean_out = g_mean;
    *gx_mean_out = gx_mean;
}

static void ln_back_row(REAL *restrict dx, REAL *restrict dw, REAL *restrict db,
                        const REAL *restrict dy, const REAL *restrict x, const REAL *restrict w,
                        REAL mean, REAL rstd, int C)
{
    // With xhat = (x - mean) * rstd and g = w * dy, the gradient through the
    // normalisation is rstd * (g - mean(g) - xhat * mean(g * xhat)).
    REAL g_mean, gx_mean;
    ln_back_means(dy, x, w, mean, rstd, C, &g_mean, &gx_mean);
    int i;
    for (i = 0; i + VB <= C; i += VB)
        for (int k = 0; k < VB; k++)
            ln_back_elem(dx + i + k, dw + i + k, db + i + k, dy[i + k], x[i + k], w[i + k], mean,
                         rstd, g_mean, gx_mean);
    for (; i < C; i++)
        ln_back_elem(dx + i, dw + i, db + i, dy[i], x[i], w[i], mean, rstd, g_mean, gx_mean);
}

/* ln_back_row for a frozen LayerNorm: the input's gradient only */
static void ln_back_row_dx(REAL *restrict dx, const REAL *restrict dy, const REAL *restrict x,
                           const REAL *restrict w, REAL mean, REAL rstd, int C)
{
    REAL g_mean, gx_mean;
    ln_back_means(dy, x, w, mean, rstd, C, &g_mean, &gx_mean);
    int i;
    for (i = 0; i < C; i++)
        dx[i] += (w[i] * dy[i] - g_mean - (x[i] - mean) * rstd * gx_mean) * rstd;
}

void SFX(weft_layernorm_backward)(REAL *dinp, REAL *dweight, REAL *dbias, const REAL *dout,
                                  const REAL *inp, const REAL *weight, const REAL *mean,
                                  const REAL *rstd, int N, int C)
{
    if (!dweight || !dbias) { // frozen: dweight and dbias are both NULL
        for (int n = 0; n < N; n++)
            ln_back_row_dx(dinp + (size_t)n * C, dout + (size_t)n * C, inp + (size_t)n * C,
                           weight, mean[n], rstd[n], C);
        return;
    }
    for (int n = 0; n < N; n++)
        ln_back_row(dinp + (size_t)n * C, dweight, dbias, dout + (size_t)n * C,
                    inp + (size_t)n * C, weight, mean[n], rstd[n], C);
}

/* --- RMSNorm ------------------------------------------------------------- */

/* out = x * rstd * w */
static void rms_row(REAL *restrict out, const REAL *restrict x, const REAL *restrict w, REAL rstd,
                    int C)
{
    int i = 0;
    for (; i + VB <= C; i += VB)
        for (int k = 0; k < VB; k++)
            out[i + k] = x[i + k] * rstd * w[i + k];
    for (; i < C; i++)
        out[i] = x[i] * rstd * w[i];
}

void SFX(weft_rmsnorm_forward)(REAL *out, REAL *rstd, const REAL *inp, const REAL *weight, int N,
                               int C, double eps)
{
    for (int n = 0; n < N; n++) {
        const REAL *x = inp + (size_t)n * C;   // (C)
        REAL ms = row_dot(x, x, C) / (REAL)C;
        REAL s = (REAL)1 / R_SQRT(ms + (REAL)eps);
        rms_row(out + (size_t)n * C, x, weight, s, C);
        rstd[n] = s;
    }
}

static void rms_back_row(REAL *restrict dx, REAL *restrict dw, const REAL *restrict dy,
                         const REAL *restrict x, const REAL *restrict w, REAL rstd, int C)
{
    // With xhat = x * rstd and g = w * dy, the gradient through the
    // normalisation is rstd * (g - xhat * mean(g * xhat)): LayerNorm's
    // without the mean terms
    REAL gx_mean = row_dot3(w, dy, x, C) * rstd / (REAL)C;
    int i = 0;
    for (; i + VB <= C; i += VB)
        for (int k = 0; k < VB; k++) {
            REAL xhat = x[i + k] * rstd;
            dw[i + k] += xhat * dy[i + k];
            dx[i + k] += (w[i + k] * dy[i + k] - xhat * gx_mean) * rstd;
        }
    for (; i < C; i++) {
        REAL xhat = x[i] * rstd;
        dw[i] += xhat * dy[i];
        dx[i] += (w[i] * dy[i] - xhat * gx_mean) * rstd;
    }
}

/* rms_back_row for a frozen RMSNorm: the input's gradient only */
static void rms_back_row_dx(REAL *restrict dx, const REAL *restrict dy, const REAL *restrict x,
                            const REAL *restrict w, REAL rstd, int C)
{
    REAL gx_mean = row_dot3(w, dy, x, C) * rstd / (REAL)C;
    for (int i = 0; i < C; i++)
        dx[i] += (w[i] * dy[i] - x[i] * rstd * gx_mean) * rstd;
}

void SFX(weft_rmsnorm_backward)(REAL *dinp, REAL *dweight, const REAL *dout, const REAL *inp,
                                const REAL *weight, const REAL *rstd, int N, int C)
{
    if (!dweight) { // frozen
        for (int n = 0; n < N; n++)
            rms_back_row_dx(dinp + (size_t)n * C, dout + (size_t)n * C, inp + (size_t)n * C,
                            weight, rstd[n], C);
        return;
    }
    for (int n = 0; n < N; n++)
        rms_back_row(dinp + (size_t)n * C, dweight, dout + (size_t)n * C, inp + (size_t)n * C,
                     weight, rstd[n], C);
}

/* --- attention ----------------------------------------------------------- */

/* Causal softmax of row t of the scores in place: entries 0..t become
 * probabilities, entries t+1..T-1 become 0 (backward relies on the zeros). */
static void causal_softmax_row(REAL *restrict row, int t, int T)
{
    int n = t + 1;
    REAL m = row_max(row, n);
    REAL s = row_exp_sum(row, n, m);
    row_scale(row, n, (REAL)1 / s);
    for (int j = n; j < T; j++)
        row[j] = 0;
}

/* One (batch, head) of causal attention as strided views: q (T, hs) with
 * leading dimension ldq, k and v (T, hs) with ldkv, the output (T, hs) with
 * ldo, each gradient in the layout of its value. The fused-qkv op (q, k, v
 * interleaved in one row) and the grouped-query op (q, k, v apart, key/value
 * heads shared) differ only in these views. */
typedef struct {
    const REAL *q, *k, *v;
    int ldq, ldkv, ldo;
} att_head;

/* o = softmax(scale * q k^T, causal) v; a (T, T) keeps the probabilities */
static void att_head_forward(const att_head *w, REAL *o, REAL *a, int T, int hs, REAL scale)
{
    // scores a[i0:i0+r, 0:i0+r] = scale * q[i0:i0+r] @ k[0:i0+r]^T
    for (int i0 = 0; i0 < T; i0 += ATT_BLK) {
        int r = T - i0 < ATT_BLK ? T - i0 : ATT_BLK;
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, r, i0 + r, hs, scale,
             w->q + (size_t)i0 * w->ldq, w->ldq, w->k, w->ldkv, 0, a + (size_t)i0 * T, T);
    }
    for (int t = 0; t < T; t++)
        causal_softmax_row(a + (size_t)t * T, t, T);
    // o[i0:i0+r] = a[i0:i0+r, 0:i0+r] @ v[0:i0+r]
    for (int i0 = 0; i0 < T; i0 += ATT_BLK) {
        int r = T - i0 < ATT_BLK ? T - i0 : ATT_BLK;
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, hs, i0 + r, 1,
             a + (size_t)i0 * T, T, w->v, w->ldkv, 0, o + (size_t)i0 * w->ldo, w->ldo);
    }
}

void SFX(weft_attention_forward)(REAL *out, REAL *att, const REAL *qkv, int B, int T, int C,
                                 int NH)
{
    assert(NH > 0 && C % NH == 0);
    const int hs = C / NH, C3 = 3 * C;
    const REAL scale = (REAL)1 / R_SQRT((REAL)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            // per (b, h): q, k, v are (T, hs) views with leading dimension 3C
            const REAL *q = qkv + (size_t)b * T * C3 + (size_t)h * hs;
            att_head w = {q, q + C, q + 2 * C, C3, C3, C};
            att_head_forward(&w, out + (size_t)b * T * C + (size_t)h * hs,
                             att + ((size_t)b * NH + h) * T * T, T, hs, scale);
        }
}

/* Softmax backward of row t, in place on datt's row, with the 1/sqrt(hs)
 * score scale folded in: d[j] = scale * p[j] * (d[j] - sum_k p[k] d[k]) for
 * j <= t, and 0 above the diagonal (the products below read those zeros). */
static void causal_softmax_back_row(REAL *restrict d, const REAL *restrict p, int t, int T,
                                    REAL scale)
{
    int n = t + 1;
    REAL s = row_dot(p, d, n);
    int j = 0;
    for (; j + VB <= n; j += VB)
        for (int k = 0; k < VB; k++)
            d[j + k] = scale * p[j + k] * (d[j + k] - s);
    for (; j < n; j++)
        d[j] = scale * p[j] * (d[j] - s);
    for (int j = n; j < T; j++)
        d[j] = 0;
}

/* dq, dk, dv += the gradients of one head's att_head_forward, given dO (T,
 * hs) with ldo and its saved probabilities a; da (T, T) is scratch */
static void att_head_backward(const att_head *w, REAL *dq, REAL *dk, REAL *dv, REAL *da,
                              const REAL *dO, const REAL *a, int T, int hs, REAL scale)
{
    const int ldq = w->ldq, ldkv = w->ldkv, ldo = w->ldo;
    for (int i0 = 0; i0 < T; i0 += ATT_BLK) {
        int r = T - i0 < ATT_BLK ? T - i0 : ATT_BLK;
        // da[i0:i0+r, 0:i0+r] = dO[i0:i0+r] @ v[0:i0+r]^T
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, r, i0 + r, hs, 1,
             dO + (size_t)i0 * ldo, ldo, w->v, ldkv, 0, da + (size_t)i0 * T, T);
        // dv[i0:i0+r] += a[i0:T, i0:i0+r]^T @ dO[i0:T]; rows above i0 of
        // that column block are zero (causal), so they are skipped
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, r, hs, T - i0, 1,
             a + (size_t)i0 * T + i0, T, dO + (size_t)i0 * ldo, ldo, 1, dv + (size_t)i0 * ldkv,
             ldkv);
    }
    for (int t = 0; t < T; t++)
        causal_softmax_back_row(da + (size_t)t * T, a + (size_t)t * T, t, T, scale);
    for (int i0 = 0; i0 < T; i0 += ATT_BLK) {
        int r = T - i0 < ATT_BLK ? T - i0 : ATT_BLK;
        // dq[i0:i0+r] += da[i0:i0+r, 0:i0+r] @ k[0:i0+r]
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, hs, i0 + r, 1,
             da + (size_t)i0 * T, T, w->k, ldkv, 1, dq + (size_t)i0 * ldq, ldq);
        // dk[i0:i0+r] += da[i0:T, i0:i0+r]^T @ q[i0:T]
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, r, hs, T - i0, 1,
             da + (size_t)i0 * T + i0, T, w->q + (size_t)i0 * ldq, ldq, 1,
             dk + (size_t)i0 * ldkv, ldkv);
    }
}

void SFX(weft_attention_backward)(REAL *dqkv, REAL *datt, const REAL *dout, const REAL *qkv,
                                  const REAL *att, int B, int T, int C, int NH)
{
    assert(NH > 0 && C % NH == 0);
    const int hs = C / NH, C3 = 3 * C;
    const REAL scale = (REAL)1 / R_SQRT((REAL)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t qoff = (size_t)b * T * C3 + (size_t)h * hs;
            const REAL *q = qkv + qoff;
            REAL *dq = dqkv + qoff;   // (T, hs), ld 3C, as are dk and dv
            att_head w = {q, q + C, q + 2 * C, C3, C3, C};
            size_t aoff = ((size_t)b * NH + h) * T * T;
            att_head_backward(&w, dq, dq + C, dq + 2 * C, datt + aoff,
                              dout + (size_t)b * T * C + (size_t)h * hs, att + aoff, T, hs, scale);
        }
}

/* --- grouped-query attention --------------------------------------------- */

void SFX(weft_gqa_attention_forward)(REAL *out, REAL *att, const REAL *q, const REAL *k,
                                     const REAL *v, int B, int T, int NH, int NKV, int hs)
{
    assert(NKV > 0 && NH % NKV == 0 && hs > 0);
    const int Cq = NH * hs, Ckv = NKV * hs, group = NH / NKV;
    const REAL scale = (REAL)1 / R_SQRT((REAL)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            // query head h reads key/value head h / group; every view has
            // its tensor's row as leading dimension
            size_t qoff = (size_t)b * T * Cq + (size_t)h * hs;
            size_t kvoff = (size_t)b * T * Ckv + (size_t)(h / group) * hs;
            att_head w = {q + qoff, k + kvoff, v + kvoff, Cq, Ckv, Cq};
            att_head_forward(&w, out + qoff, att + ((size_t)b * NH + h) * T * T, T, hs, scale);
        }
}

void SFX(weft_gqa_attention_backward)(REAL *dq, REAL *dk, REAL *dv, REAL *datt,
                                      const REAL *dout, const REAL *q, const REAL *k,
                                      const REAL *v, const REAL *att, int B, int T, int NH,
                                      int NKV, int hs)
{
    assert(NKV > 0 && NH % NKV == 0 && hs > 0);
    const int Cq = NH * hs, Ckv = NKV * hs, group = NH / NKV;
    const REAL scale = (REAL)1 / R_SQRT((REAL)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            // the group's query heads add into the same dk, dv in turn
            size_t qoff = (size_t)b * T * Cq + (size_t)h * hs;
            size_t kvoff = (size_t)b * T * Ckv + (size_t)(h / group) * hs;
            att_head w = {q + qoff, k + kvoff, v + kvoff, Cq, Ckv, Cq};
            size_t aoff = ((size_t)b * NH + h) * T * T;
            att_head_backward(&w, dq + qoff, dk + kvoff, dv + kvoff, datt + aoff, dout + qoff,
                              att + aoff, T, hs, scale);
        }
}

/* One head's decoding attention: rows i0 .. i0+r-1 of the new queries (at
 * positions pos0+i0 ..) over the cache's first pos0+i0+r positions, the
 * same blocked products and causal softmax as att_head_forward. */
static void att_head_decode(const att_head *w, REAL *o, REAL *a, int r, int i0, int pos0, int hs,
                            REAL scale)
{
    const int L = pos0 + i0 + r;   // positions the block's last row sees
    // scores a[0:r, 0:L] = scale * q[i0:i0+r] @ k[0:L]^T
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, r, L, hs, scale, w->q + (size_t)i0 * w->ldq,
         w->ldq, w->k, w->ldkv, 0, a, L);
    for (int i = 0; i < r; i++)
        causal_softmax_row(a + (size_t)i * L, pos0 + i0 + i, L);
    // o[i0:i0+r] = a[0:r, 0:L] @ v[0:L]
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, hs, L, 1, a, L, w->v, w->ldkv, 0,
         o + (size_t)i0 * w->ldo, w->ldo);
}

void SFX(weft_attention_decode)(REAL *out, REAL *scratch, const REAL *q, const REAL *kc,
                                const REAL *vc, int n, int pos0, int NH, int NKV, int hs)
{
    assert(NKV > 0 && NH % NKV == 0 && hs > 0 && n > 0 && pos0 >= 0);
    const int Cq = NH * hs, Ckv = NKV * hs, group = NH / NKV;
    const REAL scale = (REAL)1 / R_SQRT((REAL)hs);
    for (int h = 0; h < NH; h++) {
        size_t kvoff = (size_t)(h / group) * hs;
        att_head w = {q + (size_t)h * hs, kc + kvoff, vc + kvoff, Cq, Ckv, Cq};
        for (int i0 = 0; i0 < n; i0 += WEFT_ATT_DECODE_ROWS) {
            int r = n - i0 < WEFT_ATT_DECODE_ROWS ? n - i0 : WEFT_ATT_DECODE_ROWS;
            att_head_decode(&w, out + (size_t)h * hs, scratch, r, i0, pos0, hs, scale);
        }
    }
}

/* --- flash attention ----------------------------------------------------- */

/* Causal attention without the (T, T) matrix. Query tiles of FA_BR rows
 * sweep the key tiles of FA_BC keys up to their diagonal; each tile's scores
 * live only in a stack tile (16 KiB in f32) while an online softmax keeps,
 * per query row, the running max m, the running sum l of exp(s - m) and the
 * output rescaled to the current max. Forward saves lse = m + log l per row
 * (T floats a head, where the plain op saves T*T); backward recomputes each
 * tile's probabilities as exp(s - lse) and, with D = rowsum(dO * O), gets
 * dS = P (dP - D) without a full row of dP. The order of every sum depends
 * only on T and the tile sizes, so results are the same on every run and in
 * every layout that gives a rank whole heads. */
#define FA_BR 64
#define FA_BC 64

/* Keys of the tile at j0 (c of them) that query row t may see: 0..n-1. */
static int fa_visible(int t, int j0, int c)
{
    int n = t - j0 + 1;
    return n < 0 ? 0 : n > c ? c : n;
}

/* One query row's online-softmax step over a tile row of scores sr (c):
 * sr becomes exp(s - m_new) (0 where masked), the row's output o (hs) is
 * rescaled to the new max, and m, l move on. */
static void fa_row_update(REAL *restrict sr, REAL *restrict o, REAL *m, REAL *l, int n, int c, int hs)
{
    if (n == 0) {   // the whole tile lies above this row's diagonal
        memset(sr, 0, (size_t)c * sizeof(REAL));
        return;
    }
    REAL mt = row_max(sr, n);
    REAL mn = mt > *m ? mt : *m;
    REAL corr = R_EXP(*m - mn);   // first tile: m = -inf, l = o = 0
    REAL sum = row_exp_sum(sr, n, mn);
    for (int j = n; j < c; j++)
        sr[j] = 0;
    *l = *l * corr + sum;
    *m = mn;
    row_scale(o, (size_t)hs, corr);
}

/* o = softmax(scale * q k^T, causal) v for one head; lse (T) */
static void fa_head_forward(const att_head *w, REAL *o, REAL *lse, int T, int hs, REAL scale)
{
    REAL st[FA_BR * FA_BC], m[FA_BR], l[FA_BR];   // one tile of scores; row stats
    for (int i0 = 0; i0 < T; i0 += FA_BR) {
        const int r = T - i0 < FA_BR ? T - i0 : FA_BR;
        REAL *oi = o + (size_t)i0 * w->ldo;
        for (int i = 0; i < r; i++) {
            m[i] = (REAL)-INFINITY;
            l[i] = 0;
            memset(oi + (size_t)i * w->ldo, 0, (size_t)hs * sizeof(REAL));
        }
        for (int j0 = 0; j0 < i0 + r; j0 += FA_BC) {
            const int c = i0 + r - j0 < FA_BC ? i0 + r - j0 : FA_BC;
            // st (r, c) = scale * q[i0:i0+r] @ k[j0:j0+c]^T
            GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, r, c, hs, scale, w->q + (size_t)i0 * w->ldq,
                 w->ldq, w->k + (size_t)j0 * w->ldkv, w->ldkv, 0, st, FA_BC);
            for (int i = 0; i < r; i++)
                fa_row_update(st + (size_t)i * FA_BC, oi + (size_t)i * w->ldo, &m[i], &l[i],
                              fa_visible(i0 + i, j0, c), c, hs);
            // o[i0:i0+r] += st @ v[j0:j0+c]
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, hs, c, 1, st, FA_BC,
                 w->v + (size_t)j0 * w->ldkv, w->ldkv, 1, oi, w->ldo);
        }
        for (int i = 0; i < r; i++) {
            row_scale(oi + (size_t)i * w->ldo, (size_t)hs, (REAL)1 / l[i]);
            lse[i0 + i] = m[i] + (REAL)log((double)l[i]);
        }
    }
}

/* d = scale * p * (d - Di) over one tile row of c */
static void fa_dscores_row(REAL *restrict d, const REAL *restrict p, REAL Di, int c, REAL scale)
{
    int j = 0;
    for (; j + VB <= c; j += VB)
        for (int k = 0; k < VB; k++)
            d[j + k] = scale * p[j + k] * (d[j + k] - Di);
    for (; j < c; j++)
        d[j] = scale * p[j] * (d[j] - Di);
}

/* ds = scale * p * (dp - D) over a tile (r, c), row by row (ld FA_BC) */
static void fa_dscores(REAL *ds, const REAL *p, const REAL *D, int r, int c, REAL scale)
{
    for (int i = 0; i < r; i++)
        fa_dscores_row(ds + (size_t)i * FA_BC, p + (size_t)i * FA_BC, D[i], c, scale);
}

/* The products of one (query tile, key tile) pair of backward: p (r, c)
 * holds the tile's probabilities, dp scratch of the same shape. */
static void fa_tile_backward(const att_head *w, REAL *dq, REAL *dk, REAL *dv, const REAL *dO, REAL *p,
                             REAL *dp, const REAL *D, int i0, int r, int j0, int c, int hs, REAL scale)
{
    const int ldq = w->ldq, ldkv = w->ldkv, ldo = w->ldo;
    const REAL *qi = w->q + (size_t)i0 * ldq, *kj = w->k + (size_t)j0 * ldkv, *dOi = dO + (size_t)i0 * ldo;
    // dv[j0:j0+c] += p^T @ dO[i0:i0+r]
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, c, hs, r, 1, p, FA_BC, dOi, ldo, 1, dv + (size_t)j0 * ldkv, ldkv);
    // dp = dO[i0:i0+r] @ v[j0:j0+c]^T, then the softmax's backward in place
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, r, c, hs, 1, dOi, ldo, w->v + (size_t)j0 * ldkv, ldkv, 0, dp,
         FA_BC);
    fa_dscores(dp, p, D, r, c, scale);
    // dq[i0:i0+r] += ds @ k[j0:j0+c]; dk[j0:j0+c] += ds^T @ q[i0:i0+r]
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, hs, c, 1, dp, FA_BC, kj, ldkv, 1, dq + (size_t)i0 * ldq, ldq);
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, c, hs, r, 1, dp, FA_BC, qi, ldq, 1, dk + (size_t)j0 * ldkv, ldkv);
}

/* dq, dk, dv += the gradients of one head's fa_head_forward, from dO and
 * the forward's o and lse (each (T, hs) with ldo, and (T)) */
static void fa_head_backward(const att_head *w, REAL *dq, REAL *dk, REAL *dv, const REAL *dO, const REAL *o,
                             const REAL *lse, int T, int hs, REAL scale)
{
    REAL p[FA_BR * FA_BC], dp[FA_BR * FA_BC], D[FA_BR];
    for (int i0 = 0; i0 < T; i0 += FA_BR) {
        const int r = T - i0 < FA_BR ? T - i0 : FA_BR;
        // D = rowsum(dO * O) = sum_j P dP over the row, which dS needs
        for (int i = 0; i < r; i++)
            D[i] = row_dot(dO + (size_t)(i0 + i) * w->ldo, o + (size_t)(i0 + i) * w->ldo, hs);
        for (int j0 = 0; j0 < i0 + r; j0 += FA_BC) {
            const int c = i0 + r - j0 < FA_BC ? i0 + r - j0 : FA_BC;
            // p (r, c) = exp(scale * q k^T - lse), 0 above the diagonal
            GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, r, c, hs, scale, w->q + (size_t)i0 * w->ldq, w->ldq,
                 w->k + (size_t)j0 * w->ldkv, w->ldkv, 0, p, FA_BC);
            for (int i = 0; i < r; i++) {
                REAL *pr = p + (size_t)i * FA_BC;
                int n = fa_visible(i0 + i, j0, c);
                EXP_LOOP(exp_shift)(pr, n, lse[i0 + i]);
                for (int j = n; j < c; j++)
                    pr[j] = 0;
            }
            fa_tile_backward(w, dq, dk, dv, dO, p, dp, D, i0, r, j0, c, hs, scale);
        }
    }
}

#ifdef OPS_FLASH_BF16   // f32: the tile products in bf16 when the linear layers' are
#include "kernels/flash_bf16_impl.h"
#else
#define FA_HEAD_FORWARD fa_head_forward
#define FA_HEAD_BACKWARD fa_head_backward
#endif

void SFX(weft_attention_flash_forward)(REAL *out, REAL *lse, const REAL *qkv, int B, int T, int C, int NH)
{
    assert(NH > 0 && C % NH == 0);
    const int hs = C / NH, C3 = 3 * C;
    const REAL scale = (REAL)1 / R_SQRT((REAL)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const REAL *q = qkv + (size_t)b * T * C3 + (size_t)h * hs;
            att_head w = {q, q + C, q + 2 * C, C3, C3, C};
            FA_HEAD_FORWARD(&w, out + (size_t)b * T * C + (size_t)h * hs, lse + ((size_t)b * NH + h) * T, T, hs,
                            scale);
        }
}

void SFX(weft_attention_flash_backward)(REAL *dqkv, const REAL *dout, const REAL *qkv, const REAL *out,
                                        const REAL *lse, int B, int T, int C, int NH)
{
    assert(NH > 0 && C % NH == 0);
    const int hs = C / NH, C3 = 3 * C;
    const REAL scale = (REAL)1 / R_SQRT((REAL)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t qoff = (size_t)b * T * C3 + (size_t)h * hs, ooff = (size_t)b * T * C + (size_t)h * hs;
            const REAL *q = qkv + qoff;
            REAL *dq = dqkv + qoff;   // (T, hs), ld 3C, as are dk and dv
            att_head w = {q, q + C, q + 2 * C, C3, C3, C};
            FA_HEAD_BACKWARD(&w, dq, dq + C, dq + 2 * C, dout + ooff, out + ooff, lse + ((size_t)b * NH + h) * T, T,
                             hs, scale);
        }
}

void SFX(weft_gqa_attention_flash_forward)(REAL *out, REAL *lse, const REAL *q, const REAL *k, const REAL *v,
                                           int B, int T, int NH, int NKV, int hs)
{
    assert(NKV > 0 && NH % NKV == 0 && hs > 0);
    const int Cq = NH * hs, Ckv = NKV * hs, group = NH / NKV;
    const REAL scale = (REAL)1 / R_SQRT((REAL)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t qoff = (size_t)b * T * Cq + (size_t)h * hs;
            size_t kvoff = (size_t)b * T * Ckv + (size_t)(h / group) * hs;
            att_head w = {q + qoff, k + kvoff, v + kvoff, Cq, Ckv, Cq};
            FA_HEAD_FORWARD(&w, out + qoff, lse + ((size_t)b * NH + h) * T, T, hs, scale);
        }
}

void SFX(weft_gqa_attention_flash_backward)(REAL *dq, REAL *dk, REAL *dv, const REAL *dout, const REAL *q,
                                            const REAL *k, const REAL *v, const REAL *out, const REAL *lse, int B,
                                            int T, int NH, int NKV, int hs)
{
    assert(NKV > 0 && NH % NKV == 0 && hs > 0);
    const int Cq = NH * hs, Ckv = NKV * hs, group = NH / NKV;
    const REAL scale = (REAL)1 / R_SQRT((REAL)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            // the group's query heads add into the same dk, dv in turn
            size_t qoff = (size_t)b * T * Cq + (size_t)h * hs;
            size_t kvoff = (size_t)b * T * Ckv + (size_t)(h / group) * hs;
            att_head w = {q + qoff, k + kvoff, v + kvoff, Cq, Ckv, Cq};
            FA_HEAD_BACKWARD(&w, dq + qoff, dk + kvoff, dv + kvoff, dout + qoff, out + qoff,
                             lse + ((size_t)b * NH + h) * T, T, hs, scale);
        }
}

/* --- GELU ---------------------------------------------------------------- */

/* The element math is in kernels/act_impl.h, the loops in vexp_impl.h. */

void SFX(weft_gelu_forward)(REAL *restrict out, const REAL *restrict inp, size_t n)
{
    EXP_LOOP(gelu_forward)(out, inp, n);
}

void SFX(weft_gelu_backward)(REAL *restrict dinp, const REAL *restrict inp,
                             const REAL *restrict dout, size_t n)
{
    EXP_LOOP(gelu_backward)(dinp, inp, dout, n);
}

/* --- rotary position embedding (RoPE) ----------------------------------- */

void SFX(weft_rope_table)(REAL *cos_t, REAL *sin_t, int T, int hs, double theta)
{
    assert(hs > 0 && hs % 2 == 0);
    const int half = hs / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            // in double whatever REAL is: the angle reaches T radians, and a
            // float product t * freq at t = 8192 can be 5e-4 radians off
            double angle = (double)t * pow(theta, -2.0 * i / hs);
            cos_t[(size_t)t * half + i] = (REAL)cos(angle);
            sin_t[(size_t)t * half + i] = (REAL)sin(angle);
        }
}

/* Turn each pair (lo[i], hi[i]) by the angle whose cosine and sine are c[i],
 * s[i], forward (dir = 1) or back (dir = -1, the transpose). */
static void rope_turn(REAL *restrict lo, REAL *restrict hi, const REAL *restrict c,
                      const REAL *restrict s, int n, REAL dir)
{
    int i = 0;
    for (; i + VB <= n; i += VB)
        for (int k = 0; k < VB; k++) {
            REAL a = lo[i + k], b = hi[i + k], sn = dir * s[i + k];
            lo[i + k] = a * c[i + k] - b * sn;
            hi[i + k] = b * c[i + k] + a * sn;
        }
    for (; i < n; i++) {
        REAL a = lo[i], b = hi[i], sn = dir * s[i];
        lo[i] = a * c[i] - b * sn;
        hi[i] = b * c[i] + a * sn;
    }
}

/* Every head of every (b, t) row of x (B, T, nh*hs) turned by row t of
 * the tables (T, hs/2). */
static void rope_apply(REAL *x, const REAL *cos_t, const REAL *sin_t, int B, int T, int nh, int hs,
                       REAL dir)
{
    assert(hs > 0 && hs % 2 == 0);
    const int half = hs / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const REAL *c = cos_t + (size_t)t * half, *s = sin_t + (size_t)t * half;
            REAL *row = x + ((size_t)b * T + t) * nh * hs;
            for (int h = 0; h < nh; h++)
                rope_turn(row + (size_t)h * hs, row + (size_t)h * hs + half, c, s, half, dir);
        }
}

void SFX(weft_rope_forward)(REAL *x, const REAL *cos_t, const REAL *sin_t, int B, int T, int nh,
                            int hs)
{
    rope_apply(x, cos_t, sin_t, B, T, nh, hs, 1);
}

void SFX(weft_rope_backward)(REAL *dx, const REAL *cos_t, const REAL *sin_t, int B, int T, int nh,
                             int hs)
{
    // a rotation's transpose is its inverse: dx turned by -angle, in place
    // (the one backward that overwrites; see kernels.h)
    rope_apply(dx, cos_t, sin_t, B, T, nh, hs, -1);
}

/* --- SwiGLU -------------------------------------------------------------- */

void SFX(weft_swiglu_forward)(REAL *restrict out, const REAL *restrict gate,
                              const REAL *restrict up, size_t n)
{
    EXP_LOOP(swiglu_forward)(out, gate, up, n);
}

void SFX(weft_swiglu_backward)(REAL *restrict dgate, REAL *restrict dup, const REAL *restrict gate,
                               const REAL *restrict up, const REAL *restrict dout, size_t n)
{
    EXP_LOOP(swiglu_backward)(dgate, dup, gate, up, dout, n);
}

/* --- residual ------------------------------------------------------------ */

void SFX(weft_residual_forward)(REAL *out, const REAL *a, const REAL *b, size_t n)
{
    // out may be a or b (x += f(x) in place): each case gets its own
    // restrict-qualified loop
    if (out == a)
        row_acc(out, b, n);
    else if (out == b)
        row_acc(out, a, n);
    else
        row_add(out, a, b, n);
}

void SFX(weft_residual_backward)(REAL *restrict da, REAL *restrict db,
                                 const REAL *restrict dout, size_t n)
{
    row_acc(da, dout, n);
    row_acc(db, dout, n);
}

/* --- embedding ----------------------------------------------------------- */

void SFX(weft_embedding_forward)(REAL *restrict out, const int32_t *tokens,
                                 const REAL *restrict wte, const REAL *restrict wpe, int B, int T,
                                 int C)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int32_t tok = tokens[b * T + t];
            assert(tok >= 0);
            row_add(out + ((size_t)b * T + t) * C, wte + (size_t)tok * C, wpe + (size_t)t * C, C);
        }
}

void SFX(weft_embedding_backward)(REAL *restrict dwte, REAL *restrict dwpe,
                                  const REAL *restrict dout, const int32_t *tokens, int B, int T,
                                  int C)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const REAL *d = dout + ((size_t)b * T + t) * C;
            row_acc(dwte + (size_t)tokens[b * T + t] * C, d, C);
            row_acc(dwpe + (size_t)t * C, d, C);
        }
}

/* --- softmax + cross-entropy -------------------------------------------- */

/* Rows are read in tiles of XENT_TILE logits (4 KiB in f32): a tile's max
 * and then its sum of exponentials are taken while it is in L1, so the
 * forward reads each logit from memory once (an online softmax: the sum so
 * far is rescaled when a later tile raises the max). The tile sums are f32
 * in 8 lanes and the row's total is double, so the error does not grow with
 * the vocabulary. */
#define XENT_TILE 1024

/* mx, sum of exp(x - mx) over one row, one pass over its tiles */
static void xent_row_stats(const REAL *restrict x, int V, double *mx_out, double *sum_out)
{
    REAL m = x[0];
    double s = 0;
    for (int j0 = 0; j0 < V; j0 += XENT_TILE) {
        int n = V - j0 < XENT_TILE ? V - j0 : XENT_TILE;
        REAL tm = row_max(x + j0, n);
        if (tm > m) {   // rescale what was summed against the old max
            s *= exp((double)m - (double)tm);
            m = tm;
        }
        s += (double)EXP_LOOP(sum_exp)(x + j0, n, m);
    }
    *mx_out = (double)m;
    *sum_out = s;
}

void SFX(weft_xent_stats)(double *mx, double *sum, double *xt, const REAL *logits,
                          const int32_t *targets, int N, int V, int v0)
{
    for (int n = 0; n < N; n++) {
        const REAL *x = logits + (size_t)n * V;   // (V)
        xent_row_stats(x, V, &mx[n], &sum[n]);
        int32_t t = targets[n] - v0;
        xt[n] = targets[n] >= 0 && t >= 0 && t < V ? (double)x[t] : 0.0;
    }
}

/* The gradient row is d = exp(x - (hi + lo)) * s (EXP_LOOP(exp_affine),
 * out of place and in place). The log-sum-exp comes in two parts, hi = lse rounded to REAL
 * and lo the rest: x - hi is exact wherever the probability is not tiny
 * (x within a factor 2 of hi), so a row at logits near 1e4 keeps f32's
 * precision instead of losing the 1e-3 that rounding lse would cost. */
void SFX(weft_xent_grad)(REAL *dlogits, const REAL *logits, const double *lse,
                         const int32_t *targets, int N, int V, int v0, double dloss)
{
    const REAL s = (REAL)dloss;
    for (int n = 0; n < N; n++) {
        const REAL *x = logits + (size_t)n * V;   // (V)
        REAL *d = dlogits + (size_t)n * V;
        if (targets[n] < 0) {   // ignored position: no gradient
            memset(d, 0, (size_t)V * sizeof(REAL));
            continue;
        }
        // lse >= every logit of the row, so exp's argument is <= 0 (up to
        // rounding, which the polynomial tolerates)
        REAL hi = (REAL)lse[n], lo = (REAL)(lse[n] - (double)hi);
        if (d == x)
            EXP_LOOP(exp_affine_inplace)(d, V, hi, lo, s);
        else
            EXP_LOOP(exp_affine)(d, x, V, hi, lo, s);
        int32_t t = targets[n] - v0;
        if (t >= 0 && t < V)
            d[t] -= s;
    }
}

double SFX(weft_xent_forward_backward)(REAL *losses, REAL *dlogits, const REAL *logits,
                                       const int32_t *targets, int N, int V, double dloss)
{
    double total = 0;
    int counted = 0;
    for (int n = 0; n < N; n++) {
        const REAL *x = logits + (size_t)n * V;   // (V)
        int32_t tgt = targets[n];
        assert(tgt < V);
        double mx, s, xt, lse;
        if (dlogits) {
            // Forward and backward in one call: exponentiate once into
            // dlogits and scale it (a row's passes run in cache), rather
            // than the two-call path's second exp. The target's logit is
            // read before dlogits (maybe the logits) is written.
            REAL *d = dlogits + (size_t)n * V;
            xt = tgt >= 0 ? (double)x[tgt] : 0.0;
            if (tgt < 0) {   // ignored position: no loss, no gradient
                memset(d, 0, (size_t)V * sizeof(REAL));
                if (losses)
                    losses[n] = 0;
                continue;
            }
            REAL m = row_max(x, V);
            if (d != x)
                memcpy(d, x, (size_t)V * sizeof(REAL));
            REAL sr = row_exp_sum(d, V, m);   // d = exp(x - max)
            row_scale(d, (size_t)V, (REAL)(dloss / (double)sr));
            d[tgt] -= (REAL)dloss;
            mx = (double)m, s = (double)sr;
        } else {   // the loss only: one pass over vocabulary tiles
            SFX(weft_xent_stats)(&mx, &s, &xt, x, &targets[n], 1, V, 0);
        }
        lse = mx + log(s);
        double loss = tgt >= 0 ? lse - xt : 0.0;   // ignored position: loss 0
        if (losses)
            losses[n] = (REAL)loss;
        if (tgt >= 0) {
            total += loss;
            counted++;
        }
    }
    // mean over the positions that count, as PyTorch's ignore_index does
    return counted ? total / counted : 0.0;
}

/* --- optimizer ----------------------------------------------------------- */

static inline void adamw_elem(REAL *restrict p, REAL g, REAL *restrict m, REAL *restrict v,
                              REAL b1, REAL b2, REAL c1, REAL c2, REAL lr, REAL wd, REAL eps)
{
    REAL mi = b1 * *m + ((REAL)1 - b1) * g;
    REAL vi = b2 * *v + ((REAL)1 - b2) * g * g;
    *m = mi;
    *v = vi;
    // decoupled weight decay: applied to the parameter, not the gradient
    *p -= lr * ((mi * c1) / (R_SQRT(vi * c2) + eps) + wd * *p);
}

void SFX(weft_adamw_update)(REAL *restrict params, const REAL *restrict grads, REAL *restrict m,
                            REAL *restrict v, size_t n, double lr, double beta1, double beta2,
                            double eps, double weight_decay, int64_t t, double grad_scale)
{
    // bias corrections of step t (t counts from 1), computed once in double
    const REAL b1 = (REAL)beta1, b2 = (REAL)beta2, gs = (REAL)grad_scale;
    const REAL c1 = (REAL)(1.0 / (1.0 - pow(beta1, (double)t)));
    const REAL c2 = (REAL)(1.0 / (1.0 - pow(beta2, (double)t)));
    const REAL lr_ = (REAL)lr, wd = (REAL)weight_decay, e = (REAL)eps;
    size_t i = 0;
    for (; i + VB <= n; i += VB)
        for (int k = 0; k < VB; k++)
            adamw_elem(params + i + k, grads[i + k] * gs, m + i + k, v + i + k, b1, b2, c1, c2,
                       lr_, wd, e);
    for (; i < n; i++)
        adamw_elem(params + i, grads[i] * gs, m + i, v + i, b1, b2, c1, c2, lr_, wd, e);
}

double SFX(weft_sumsq)(const REAL *restrict x, size_t n)
{
    // 4 independent double accumulators: exact enough for a norm of
    // millions of f32 values and not bound by one add's latency
    double acc[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++)
            acc[k] += (double)x[i + k] * (double)x[i + k];
    for (; i < n; i++)
        acc[0] += (double)x[i] * (double)x[i];
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}
