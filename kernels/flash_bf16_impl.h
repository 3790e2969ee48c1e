/*
 * flash_bf16_impl.h -- flash attention with its tile products in bf16
 * (train.precision = bf16): the algorithm of ops_impl.h's fa_head_forward
 * and fa_head_backward tile for tile -- 64 x 64 tiles, the online softmax,
 * lse saved, the probabilities recomputed in backward, every sum in a fixed
 * order -- but each of a tile pair's products multiplies bf16 operands
 * into f32, as the bf16 linear layers do (and GPU flash attention in bf16).
 * What is rounded to bf16: a head's q, k, v and dO (once per head, into
 * dense (T, hs) copies), the probabilities P and the score gradient dS of
 * each tile. What stays f32: the scores, the softmax statistics, D, the
 * output and every gradient's sums.
 *
 * Why the dense copies: a tile product is a oneDNN primitive
 * (weft_matmul_bf16_dense), and oneDNN 2.6 runs a product at the CPU's
 * best bf16 kernel (AMX, 0.5 TFLOP/s on a 64 x 64 x 64 tile, 1 us a call,
 * measured) only when each operand is stored densely; q, k and v strided
 * inside the fused qkv rows fall back to its generic gemm at a third of
 * that. The copies are padded with zero rows to whole tiles, so every tile
 * product has the same three shapes per head size (the primitives are made
 * once) and a tail tile's extra rows add zeros. Why not by hand: the
 * AVX512-BF16 dot-product instruction runs at half the f32 FMA's rate on
 * the Xeons with AMX (measured here), so only the library's AMX kernels
 * make bf16 attention faster than f32.
 *
 * Scratch: one buffer, grown on the first call to what the largest head
 * needs and kept (later steps allocate nothing), behind a mutex. When it
 * cannot grow, or the precision is f32, the f32 head runs instead; a
 * product oneDNN refuses is computed by a plain loop (told once).
 *
 * Included by ops_impl.h (f32 only: OPS_FLASH_BF16), after the f32 flash
 * heads, whose row helpers it uses; defines FA_HEAD_FORWARD/BACKWARD, the
 * head functions the public flash ops call.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "kernels/matmul_dnnl.h"
#include "runtime/dtype.h"
#include "runtime/log.h"

static struct {
    pthread_mutex_t mu;
    void *mem;
    size_t cap;
    int warned;
} fa_bf = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* A head's scratch, carved from fa_bf.mem: the bf16 copies (Tp, hs), the
 * gradients' f32 sums (Tp, hs; backward) and the tiles. */
typedef struct {
    uint16_t *q, *k, *v, *dO;      // (Tp, hs) each, rows past T zero
    float *dq, *dk, *dv;           // (Tp, hs) each, backward
    float *s, *dp, *oacc;          // (BR, BC), (BR, BC), (BR, hs)
    uint16_t *pb, *dsb;            // (BR, BC) each
} fa_bf16_scratch;

/* Carve a head's scratch from base, or only count it (base NULL): the
 * bytes it takes, each piece on its own 64-byte line. */
static size_t fa_carve(fa_bf16_scratch *x, char *base, int Tp, int hs, int backward)
{
    size_t th = (size_t)Tp * hs, tile = (size_t)FA_BR * FA_BC, off = 0;
#define TAKE(field, bytes) (x->field = base ? (void *)(base + off) : NULL, off += ((bytes) + 63) & ~(size_t)63)
    *x = (fa_bf16_scratch){0};
    TAKE(q, th * 2); TAKE(k, th * 2); TAKE(v, th * 2);
    if (backward) {
        TAKE(dO, th * 2); TAKE(dq, th * 4); TAKE(dk, th * 4); TAKE(dv, th * 4);
    }
    TAKE(s, tile * 4); TAKE(dp, tile * 4); TAKE(oacc, (size_t)FA_BR * hs * 4); TAKE(pb, tile * 2); TAKE(dsb, tile * 2);
#undef TAKE
    return off;
}

/* Lock the scratch and carve it for a head of (Tp, hs); 0 when it cannot
 * grow (unlocked then). */
static int fa_bf16_begin(fa_bf16_scratch *x, int Tp, int hs, int backward)
{
    size_t need = fa_carve(x, NULL, Tp, hs, backward);
    pthread_mutex_lock(&fa_bf.mu);
    if (need > fa_bf.cap) {   // first step only: the largest head so far
        void *grown = NULL;
        if (posix_memalign(&grown, 64, need)) {
            pthread_mutex_unlock(&fa_bf.mu);
            return 0;
        }
        free(fa_bf.mem);
        fa_bf.mem = grown;
        fa_bf.cap = need;
    }
    fa_carve(x, fa_bf.mem, Tp, hs, backward);
    return 1;
}

static void fa_bf16_end(void) { pthread_mutex_unlock(&fa_bf.mu); }

/* dst (Tp, hs) dense = src (T rows of hs, leading dimension ld) rounded;
 * rows T..Tp-1 zero. */
static void fa_round_rows(uint16_t *dst, const float *src, int ld, int T, int Tp, int hs)
{
    for (int t = 0; t < T; t++)
        weft_bf16_round(dst + (size_t)t * hs, src + (size_t)t * ld, (size_t)hs);
    memset(dst + (size_t)T * hs, 0, (size_t)(Tp - T) * hs * sizeof *dst);
}

/* dst rows (ld) += src (T, hs) dense */
static void fa_add_rows(float *dst, int ld, const float *src, int T, int hs)
{
    for (int t = 0; t < T; t++) {
        float *restrict d = dst + (size_t)t * ld;
        const float *restrict s = src + (size_t)t * hs;
        for (int j = 0; j < hs; j++)
            d[j] += s[j];
    }
}

/* C (M, N) [+]= op(A) @ op(B), bf16 operands stored densely (see
 * weft_matmul_bf16_dense): oneDNN, or this loop when it cannot. */
static void fa_product(float *c, const uint16_t *a, const uint16_t *b, int M, int N, int K, int ta, int tb,
                       int accum)
{
    if (weft_matmul_bf16_dense(c, a, b, M, N, K, ta, tb, accum))
        return;
    if (!fa_bf.warned) {
        fa_bf.warned = 1;
        WEFT_WARN("kernels: a bf16 attention tile product (%dx%dx%d) runs as a plain loop: oneDNN has no "
                  "primitive for it", M, N, K);
    }
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float s = 0;
            for (int k = 0; k < K; k++)
                s += weft_bf16_to_f32(a[ta ? (size_t)k * M + i : (size_t)i * K + k]) *
                     weft_bf16_to_f32(b[tb ? (size_t)j * K + k : (size_t)k * N + j]);
            c[(size_t)i * N + j] = accum ? c[(size_t)i * N + j] + s : s;
        }
}

static int fa_round_up(int T) { return (T + FA_BR - 1) / FA_BR * FA_BR; }

/* fa_head_forward with bf16 tile products. */
static void fa_head_forward_bf16(const att_head *w, float *o, float *lse, int T, int hs, float scale,
                                 const fa_bf16_scratch *x)
{
    const int Tp = fa_round_up(T);
    float m[FA_BR], l[FA_BR];
    fa_round_rows(x->q, w->q, w->ldq, T, Tp, hs);
    fa_round_rows(x->k, w->k, w->ldkv, T, Tp, hs);
    fa_round_rows(x->v, w->v, w->ldkv, T, Tp, hs);
    for (int i0 = 0; i0 < T; i0 += FA_BR) {
        const int r = T - i0 < FA_BR ? T - i0 : FA_BR;
        for (int i = 0; i < FA_BR; i++) {
            m[i] = -INFINITY;
            l[i] = 0;
        }
        memset(x->oacc, 0, (size_t)FA_BR * hs * sizeof(float));
        for (int j0 = 0; j0 < i0 + r; j0 += FA_BC) {
            const int c = i0 + r - j0 < FA_BC ? i0 + r - j0 : FA_BC;
            // s = q[i0:i0+BR] @ k[j0:j0+BC]^T over whole tiles: rows past T
            // are 0 (zero queries), so their p is 0 too
            fa_product(x->s, x->q + (size_t)i0 * hs, x->k + (size_t)j0 * hs, FA_BR, FA_BC, hs, 0, 1, 0);
            for (int i = 0; i < r; i++) {
                float *sr = x->s + (size_t)i * FA_BC;
                int n = fa_visible(i0 + i, j0, c);
                row_scale(sr, (size_t)n, scale);
                fa_row_update(sr, x->oacc + (size_t)i * hs, &m[i], &l[i], n, c, hs);
                // keys past T: their scores are 0 already (zero key rows) and are
                // never exponentiated; zeroed so P's padding does not rest on that
                memset(sr + c, 0, (size_t)(FA_BC - c) * sizeof(float));
            }
            weft_bf16_round(x->pb, x->s, (size_t)FA_BR * FA_BC);
            // oacc += p @ v[j0:j0+BC]
            fa_product(x->oacc, x->pb, x->v + (size_t)j0 * hs, FA_BR, hs, FA_BC, 0, 0, 1);
        }
        for (int i = 0; i < r; i++) {
            float *oi = o + (size_t)(i0 + i) * w->ldo;
            const float *acc = x->oacc + (size_t)i * hs;
            const float inv = 1.0f / l[i];
            for (int j = 0; j < hs; j++)
                oi[j] = acc[j] * inv;
            lse[i0 + i] = m[i] + (float)log((double)l[i]);
        }
    }
}

/* fa_head_backward with bf16 tile products: the gradients are summed in
 * the scratch's dense (Tp, hs) arrays and added to dq, dk, dv at the end. */
static void fa_head_backward_bf16(const att_head *w, float *dq, float *dk, float *dv, const float *dO,
                                  const float *o, const float *lse, int T, int hs, float scale,
                                  const fa_bf16_scratch *x)
{
    const int Tp = fa_round_up(T);
    const size_t th = (size_t)Tp * hs;
    float D[FA_BR];
    fa_round_rows(x->q, w->q, w->ldq, T, Tp, hs);
    fa_round_rows(x->k, w->k, w->ldkv, T, Tp, hs);
    fa_round_rows(x->v, w->v, w->ldkv, T, Tp, hs);
    fa_round_rows(x->dO, dO, w->ldo, T, Tp, hs);
    memset(x->dq, 0, th * sizeof(float));
    memset(x->dk, 0, th * sizeof(float));
    memset(x->dv, 0, th * sizeof(float));
    float *p = x->s;
    for (int i0 = 0; i0 < T; i0 += FA_BR) {
        const int r = T - i0 < FA_BR ? T - i0 : FA_BR;
        for (int i = 0; i < FA_BR; i++)   // rows past T: p = 0, so ds = 0
            D[i] = i < r ? row_dot(dO + (size_t)(i0 + i) * w->ldo, o + (size_t)(i0 + i) * w->ldo, hs) : 0;
        for (int j0 = 0; j0 < i0 + r; j0 += FA_BC) {
            const int c = i0 + r - j0 < FA_BC ? i0 + r - j0 : FA_BC;
            // p = exp(scale * q k^T - lse), 0 above the diagonal and past T
            fa_product(p, x->q + (size_t)i0 * hs, x->k + (size_t)j0 * hs, FA_BR, FA_BC, hs, 0, 1, 0);
            for (int i = 0; i < FA_BR; i++) {
                float *pr = p + (size_t)i * FA_BC;
                int n = i < r ? fa_visible(i0 + i, j0, c) : 0;
                row_scale(pr, (size_t)n, scale);
                EXP_LOOP(exp_shift)(pr, n, i < r ? lse[i0 + i] : 0);
                memset(pr + n, 0, (size_t)(FA_BC - n) * sizeof(float));
            }
            weft_bf16_round(x->pb, p, (size_t)FA_BR * FA_BC);
            // dv[j0:j0+BC] += p^T @ dO[i0:i0+BR]
            fa_product(x->dv + (size_t)j0 * hs, x->pb, x->dO + (size_t)i0 * hs, FA_BC, hs, FA_BR, 1, 0, 1);
            // dp = dO[i0:i0+BR] @ v[j0:j0+BC]^T, then ds = scale * p * (dp - D)
            fa_product(x->dp, x->dO + (size_t)i0 * hs, x->v + (size_t)j0 * hs, FA_BR, FA_BC, hs, 0, 1, 0);
            fa_dscores(x->dp, p, D, FA_BR, FA_BC, scale);
            weft_bf16_round(x->dsb, x->dp, (size_t)FA_BR * FA_BC);
            // dq[i0:i0+BR] += ds @ k[j0:j0+BC]; dk[j0:j0+BC] += ds^T @ q[i0:i0+BR]
            fa_product(x->dq + (size_t)i0 * hs, x->dsb, x->k + (size_t)j0 * hs, FA_BR, hs, FA_BC, 0, 0, 1);
            fa_product(x->dk + (size_t)j0 * hs, x->dsb, x->q + (size_t)i0 * hs, FA_BC, hs, FA_BR, 1, 0, 1);
        }
    }
    fa_add_rows(dq, w->ldq, x->dq, T, hs);
    fa_add_rows(dk, w->ldkv, x->dk, T, hs);
    fa_add_rows(dv, w->ldkv, x->dv, T, hs);
}

/* The head the public flash ops run: bf16 tiles when the products are bf16
 * (weft_matmul_precision) and the scratch is there, else f32's. */
static void fa_head_forward_pick(const att_head *w, float *o, float *lse, int T, int hs, float scale)
{
    fa_bf16_scratch x;
    if (weft_matmul_precision() == WEFT_BF16 && fa_bf16_begin(&x, fa_round_up(T), hs, 0)) {
        fa_head_forward_bf16(w, o, lse, T, hs, scale, &x);
        fa_bf16_end();
        return;
    }
    fa_head_forward(w, o, lse, T, hs, scale);
}

static void fa_head_backward_pick(const att_head *w, float *dq, float *dk, float *dv, const float *dO,
                                  const float *o, const float *lse, int T, int hs, float scale)
{
    fa_bf16_scratch x;
    if (weft_matmul_precision() == WEFT_BF16 && fa_bf16_begin(&x, fa_round_up(T), hs, 1)) {
        fa_head_backward_bf16(w, dq, dk, dv, dO, o, lse, T, hs, scale, &x);
        fa_bf16_end();
        return;
    }
    fa_head_backward(w, dq, dk, dv, dO, o, lse, T, hs, scale);
}

#define FA_HEAD_FORWARD fa_head_forward_pick
#define FA_HEAD_BACKWARD fa_head_backward_pick
