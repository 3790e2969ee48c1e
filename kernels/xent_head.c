/*
 * xent_head.c -- the LM head's backward as one op (weft_xent_head_backward):
 * the cross-entropy's gradient of the logits, then the head's two products
 * (the input's gradient and the weight's).
 *
 * Why one op: the logit gradient (N, V) is the largest activation of a
 * step (N = 2048 rows x V = 8192 at the bench shapes: 64 MiB in f32), and
 * in bf16 the path through separate ops moved it four times -- the
 * gradient written in f32 over the logits, read back and written again as
 * bf16 to be rounded, read by each product. Here, in bf16, each row is made
 * a 4 KiB tile at a time on the stack (the same exp as weft_xent_grad, so
 * the same values) and rounded there, and the bf16 row is written over the
 * logits' own memory (its first half: a tile's bf16 lands on bytes whose
 * floats were already read), once; the products read it. In f32 it is
 * weft_xent_grad then weft_matmul_backward, bitwise as before.
 */
#include "kernels/kernels.h"
#include "kernels/matmul_dnnl.h"
#include "kernels/vexp.h"
#include "runtime/dtype.h"

#include <string.h>

#define TILE 1024 /* floats of a row made at once, as weft_xent_stats' tiles */

/* g (N, V) bf16 = the gradient weft_xent_grad makes, rounded to nearest
 * even; g lies over logits (its first N V halves), row n's over floats
 * already read. */
static void grad_bf16(uint16_t *g, const float *logits, const double *lse, const int32_t *targets, int N, int V,
                      int v0, double dloss)
{
    const weft_vexp_ops *vx = weft_vexp();
    const float s = (float)dloss;
    float d[TILE];
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        uint16_t *out = g + (size_t)n * V;
        if (targets[n] < 0) { // ignored position: no gradient
            memset(out, 0, (size_t)V * sizeof *out);
            continue;
        }
        const float hi = (float)lse[n], lo = (float)(lse[n] - (double)hi);
        const int t = targets[n] - v0;
        for (int j0 = 0; j0 < V; j0 += TILE) {
            int k = V - j0 < TILE ? V - j0 : TILE;
            vx->exp_affine(d, x + j0, k, hi, lo, s); // the tile is read whole before its bf16 is written
            if (t >= j0 && t < j0 + k)
                d[t - j0] -= s;
            weft_bf16_round(out + j0, d, (size_t)k);
        }
    }
}

/* g (n bf16 over the first half of x) back to n floats in place, from the
 * end: float i covers halves 2i and 2i+1, already widened. */
static void widen(float *x, size_t n)
{
    const uint16_t *g = (const uint16_t *)(const void *)x;
    for (size_t i = n; i-- > 0;) {
        float f = weft_bf16_to_f32(g[i]);
        memcpy(x + i, &f, sizeof f); /* the bytes of halves 2i, 2i+1: not through a float lvalue of g's */
    }
}

void weft_xent_head_backward(float *dinp, float *dweight, float *logits, const double *lse, const int32_t *targets,
                             const float *inp, const float *weight, int N, int C, int V, int v0, double dloss)
{
    if (weft_matmul_precision() != WEFT_BF16) {
        weft_xent_grad(logits, logits, lse, targets, N, V, v0, dloss);
        weft_matmul_backward(dinp, dweight, NULL, logits, inp, weight, N, C, V);
        return;
    }
    uint16_t *g = (uint16_t *)(void *)logits;
    grad_bf16(g, logits, lse, targets, N, V, v0, dloss);
    int done = weft_matmul_backward_bf16(dinp, dweight, g, inp, weight, N, C, V);
    if (done != 3) { // a product oneDNN could not run in bf16 (warned): the rest from the floats
        widen(logits, (size_t)N * V);
        weft_matmul_backward(done & 1 ? NULL : dinp, done & 2 ? NULL : dweight, NULL, logits, inp, weight, N, C, V);
    }
}
