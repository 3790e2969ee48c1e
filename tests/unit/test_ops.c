/*
 * test_ops.c -- the ops table (kernels/ops.h):
 *   - the cpu table's every entry against the kernels.h function of the
 *     same name on the same inputs, bit for bit over every buffer either
 *     could write (outputs start random, so backward's += shows too), and
 *     the memory ops (zero, copy, scale, axpy, fill) and the bf16 weight
 *     copies' upkeep and tp.c's vocabulary-parallel pieces (add_rows,
 *     embedding_vp_*, xent_rescale) and LoRA's (matmul_nn_add, the
 *     dropout) against the host code they replaced in the models, LoRA,
 *     ZeRO-3, the trainer and tp.c, so an entry routed to the wrong kernel, or given its arguments in the
 *     wrong order, fails here; and no entry is NULL;
 *   - the sticky status: a failing entry (a fake installed in a cpu table)
 *     sets it once with a message naming the op, later failures keep the
 *     first, ops after it still run, weft_ops_clear forgets it; a model's
 *     forward and backward return it;
 *   - weft_ops_open on a cuda device here (no GPU) fails with
 *     WEFT_EUNAVAILABLE and leaves no table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "kernels/matmul_dnnl.h"
#include "kernels/ops.h"
#include "model/gpt.h"
#include "model/model.h"
#include "runtime/device_impl.h"
#include "runtime/error.h"
#include "runtime/rng.h"

/* Shapes: small, but odd enough that no dimension hides another. */
enum { B = 2, T = 8, NH = 2, NKV = 1, HS = 4, C = NH * HS, N = B * T, OC = 12, V = 10 };
enum { NF = 8, NFLOAT = 1024, ND = 4, NDOUBLE = 64 };

typedef struct {
    float *f[NF]; /* f[7] is non-negative (variances, rstd) */
    double *d[ND];
    int32_t tok[N], tgt[N];
} bufs;

static uint64_t seed_state;
static float frand(void)
{
    seed_state = seed_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(seed_state >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

/* The same random contents every call: both runs of a case start equal. */
static void fill(bufs *b)
{
    seed_state = 42;
    for (int i = 0; i < NF; i++)
        for (int j = 0; j < NFLOAT; j++)
            b->f[i][j] = i == 7 ? fabsf(frand()) + 0.1f : frand();
    for (int i = 0; i < ND; i++)
        for (int j = 0; j < NDOUBLE; j++)
            b->d[i][j] = fabs((double)frand()) + 0.5;
    for (int j = 0; j < N; j++) {
        b->tok[j] = (int32_t)(j * 7 % V);
        b->tgt[j] = j % 5 == 0 ? -1 : (int32_t)(j * 3 % V); /* some rows ignored */
    }
}

static void alloc(bufs *b)
{
    for (int i = 0; i < NF; i++)
        b->f[i] = malloc(NFLOAT * sizeof(float));
    for (int i = 0; i < ND; i++)
        b->d[i] = malloc(NDOUBLE * sizeof(double));
}

static void release(bufs *b)
{
    for (int i = 0; i < NF; i++)
        free(b->f[i]);
    for (int i = 0; i < ND; i++)
        free(b->d[i]);
}

/* Runs one op: through table o, or (o NULL) the kernels.h function. */
#define CALL(name, ...)                                                                                            \
    do {                                                                                                           \
        if (o)                                                                                                     \
            o->name(o, __VA_ARGS__);                                                                               \
        else                                                                                                       \
            weft_##name(__VA_ARGS__);                                                                              \
    } while (0)

typedef void (*op_case)(weft_ops *o, bufs *b);
#define F(i) (b->f[i])
#define D(i) (b->d[i])

static void c_matmul_forward(weft_ops *o, bufs *b) { CALL(matmul_forward, F(0), F(1), F(2), F(3), N, C, OC); }
static void c_matmul_backward(weft_ops *o, bufs *b) { CALL(matmul_backward, F(0), F(1), F(2), F(3), F(4), F(5), N, C, OC); }
static void c_layernorm_forward(weft_ops *o, bufs *b) { CALL(layernorm_forward, F(0), F(1), F(2), F(3), F(4), F(5), N, C); }
static void c_layernorm_backward(weft_ops *o, bufs *b)
{
    CALL(layernorm_backward, F(0), F(1), F(2), F(3), F(4), F(5), F(6), F(7), N, C);
}
static void c_layernorm_residual_forward(weft_ops *o, bufs *b)
{
    CALL(layernorm_residual_forward, F(0), F(1), F(2), F(3), F(4), F(5), F(6), F(7), N, C);
}
static void c_layernorm_residual_backward(weft_ops *o, bufs *b)
{
    CALL(layernorm_residual_backward, F(0), F(1), F(2), F(3), F(4), F(5), F(6), F(6) + 512, F(7), F(7) + 512, N, C);
}
static void c_rmsnorm_forward(weft_ops *o, bufs *b) { CALL(rmsnorm_forward, F(0), F(1), F(2), F(3), N, C, 1e-5); }
static void c_rmsnorm_backward(weft_ops *o, bufs *b) { CALL(rmsnorm_backward, F(0), F(1), F(2), F(3), F(4), F(7), N, C); }
static void c_rmsnorm_residual_forward(weft_ops *o, bufs *b)
{
    CALL(rmsnorm_residual_forward, F(0), F(1), F(2), F(3), F(4), F(5), N, C, 1e-6);
}
static void c_rmsnorm_residual_backward(weft_ops *o, bufs *b)
{
    CALL(rmsnorm_residual_backward, F(0), F(1), F(2), F(3), F(4), F(5), F(6), F(7), N, C);
}
static void c_gelu_forward(weft_ops *o, bufs *b) { CALL(gelu_forward, F(0), F(1), 300); }
static void c_gelu_backward(weft_ops *o, bufs *b) { CALL(gelu_backward, F(0), F(1), F(2), 300); }
static void c_residual_forward(weft_ops *o, bufs *b) { CALL(residual_forward, F(0), F(1), F(2), 300); }
static void c_residual_backward(weft_ops *o, bufs *b) { CALL(residual_backward, F(0), F(1), F(2), 300); }
static void c_swiglu_forward(weft_ops *o, bufs *b) { CALL(swiglu_forward, F(0), F(1), F(2), 300); }
static void c_swiglu_backward(weft_ops *o, bufs *b) { CALL(swiglu_backward, F(0), F(1), F(2), F(3), F(4), 300); }
static void c_embedding_forward(weft_ops *o, bufs *b) { CALL(embedding_forward, F(0), b->tok, F(1), F(2), B, T, C); }
static void c_embedding_backward(weft_ops *o, bufs *b) { CALL(embedding_backward, F(0), F(1), F(2), b->tok, B, T, C); }
static void c_xent_forward_backward(weft_ops *o, bufs *b)
{
    double dloss = 1.0 / N;
    if (o)
        o->xent_forward_backward(o, D(3), F(0), F(1), F(2), b->tgt, N, V, dloss);
    else
        D(3)[0] = weft_xent_forward_backward(F(0), F(1), F(2), b->tgt, N, V, dloss);
}
static void c_xent_stats(weft_ops *o, bufs *b) { CALL(xent_stats, D(0), D(1), D(2), F(0), b->tgt, N, V, 3); }
static void c_xent_grad(weft_ops *o, bufs *b) { CALL(xent_grad, F(0), F(1), D(0), b->tgt, N, V, 3, 0.25); }
static void c_xent_head_backward(weft_ops *o, bufs *b)
{
    CALL(xent_head_backward, F(0), F(1), F(2), D(0), b->tgt, F(3), F(4), N, C, V, 3, 0.25);
}
static void c_adamw_update(weft_ops *o, bufs *b)
{
    CALL(adamw_update, F(0), F(1), F(2), F(7), 500, 1e-3, 0.9, 0.95, 1e-8, 0.1, 3, 0.5);
}
static void c_sumsq(weft_ops *o, bufs *b)
{
    if (o)
        o->sumsq(o, D(3), F(0), 700);
    else
        D(3)[0] = weft_sumsq(F(0), 700);
}
static void c_rope_table(weft_ops *o, bufs *b) { CALL(rope_table, F(0), F(1), T, HS, 10000.0); }
static void c_rope_forward(weft_ops *o, bufs *b) { CALL(rope_forward, F(0), F(1), F(2), B, T, NH, HS); }
static void c_rope_backward(weft_ops *o, bufs *b) { CALL(rope_backward, F(0), F(1), F(2), B, T, NH, HS); }
static void c_attention_flash_forward(weft_ops *o, bufs *b)
{
    CALL(attention_flash_forward, F(0), F(1), F(2), B, T, C, NH);
}
static void c_attention_flash_backward(weft_ops *o, bufs *b)
{
    CALL(attention_flash_backward, F(0), F(1), F(2), F(3), F(7), B, T, C, NH);
}
static void c_gqa_attention_flash_forward(weft_ops *o, bufs *b)
{
    CALL(gqa_attention_flash_forward, F(0), F(1), F(2), F(3), F(4), B, T, NH, NKV, HS);
}
static void c_gqa_attention_flash_backward(weft_ops *o, bufs *b)
{
    CALL(gqa_attention_flash_backward, F(0), F(1), F(2), F(3), F(4), F(5), F(6), F(6) + 512, F(7), B, T, NH, NKV, HS);
}
static void c_attention_decode(weft_ops *o, bufs *b)
{
    CALL(attention_decode, F(0), F(1), F(2), F(3), F(4), 3, 5, NH, NKV, HS);
}

/* The memory ops have no kernels.h function: o NULL runs the host code
 * they replaced in the models (gpt.c's memsets and memcpys, lora.c's and
 * llama.c's loops), which the entry must match bit for bit. */
static void c_zero(weft_ops *o, bufs *b)
{
    if (o)
        o->zero(o, F(0) + 3, 301);
    else
        memset(F(0) + 3, 0, 301 * sizeof(float));
}
static void c_copy(weft_ops *o, bufs *b)
{
    if (o)
        o->copy(o, F(0) + 1, F(1) + 5, 299);
    else
        memcpy(F(0) + 1, F(1) + 5, 299 * sizeof(float));
}
static void c_scale(weft_ops *o, bufs *b)
{
    if (o) {
        o->scale(o, F(0), 300, 0.37f);
    } else {
        float *x = F(0);
        for (size_t i = 0; i < 300; i++)
            x[i] *= 0.37f;
    }
}
static void c_axpy(weft_ops *o, bufs *b)
{
    if (o) {
        o->axpy(o, F(0), F(1), 300, -1.7f);
        o->axpy(o, F(2), F(3), 300, 1.0f);
    } else {
        float *y = F(0), *x = F(1), *g = F(2), *kv = F(3);
        for (size_t i = 0; i < 300; i++)
            y[i] += -1.7f * x[i];
        for (size_t i = 0; i < 300; i++)
            g[i] += kv[i]; /* llama.c's replicated-KV sum: a = 1 must be this */
    }
}
/* tp.c's loss loop as it was: lse, losses, the mean of the valid rows;
 * D(0..2) the statistics (sums positive), D(3)[0] the mean, b->tgt has
 * rows < 0 (see fill). */
static void c_xent_finish(weft_ops *o, bufs *b)
{
    if (o) {
        o->xent_finish(o, D(3), F(0), D(3) + 1, D(0), D(1), D(2), b->tgt, N);
        return;
    }
    double *mx = D(0), *sz = D(1), *xt = D(2), *lse = D(3) + 1, total = 0;
    float *losses = F(0);
    int counted = 0;
    for (int n = 0; n < N; n++) {
        lse[n] = mx[n] + log(sz[n]);
        double loss = b->tgt[n] >= 0 ? lse[n] - xt[n] : 0.0;
        losses[n] = (float)loss;
        if (b->tgt[n] >= 0) {
            total += loss;
            counted++;
        }
    }
    D(3)[0] = counted ? total / counted : 0.0;
}

/* dp_zero3.c's poison loop as it was: a bucket [0, 500) of F(0) with its
 * shard at [123, 321) -- NaN outside, through two fills. */
static void c_fill(weft_ops *o, bufs *b)
{
    size_t start = 0, len = 500, s0 = 123, s1 = 321;
    float *params = F(0);
    if (o) {
        o->fill(o, params + start, s0 - start, NAN);
        o->fill(o, params + s1, start + len - s1, NAN);
        return;
    }
    for (size_t j = start; j < start + len; j++)
        if (j < s0 || j >= s1)
            params[j] = NAN;
}
/* The bf16 copies of weights: F(0)[0..600) registered, then changed and
 * refreshed in part; what the products would read (the copy's bf16 bits)
 * lands in F(1) so the two runs can be compared. */
static void bf16_copy_out(bufs *b)
{
    const uint16_t *bf = weft_bf16_operand(F(0), 600, 0);
    assert_non_null(bf); /* inside a registered copy: the copy itself */
    memcpy(F(1), bf, 600 * sizeof *bf);
    weft_matmul_bf16_forget(F(0));
}
static void c_bf16_mirror(weft_ops *o, bufs *b)
{
    if (o)
        o->bf16_mirror(o, F(0), 600);
    else
        assert_int_equal(weft_matmul_bf16_mirror(F(0), 600), 0);
    bf16_copy_out(b);
}
static void c_bf16_refresh(weft_ops *o, bufs *b)
{
    assert_int_equal(weft_matmul_bf16_mirror(F(0), 600), 0);
    for (int i = 100; i < 400; i++)
        F(0)[i] *= 3.0f;
    if (o)
        o->bf16_refresh(o, F(0) + 100, 200); /* [100, 300) fresh, [300, 400) stale */
    else
        weft_matmul_bf16_refresh(F(0) + 100, 200);
    bf16_copy_out(b);
}

/* tp.c's loops as they were (TP > 1): the row-parallel bias (P = 1) and
 * the positions (P = T) after their allreduces; the vocabulary-parallel
 * embedding of the rows [3, 7) this rank holds (b->tok has tokens on both
 * sides, and repeats); the loss's rescale of the sums to the global max. */
static void c_add_rows(weft_ops *o, bufs *b)
{
    float *out = F(0), *bias = F(1), *wpe = F(2);
    if (o) {
        o->add_rows(o, out, bias, N, 1, OC);
        o->add_rows(o, out + N * OC, wpe, N, T, C);
        return;
    }
    for (int n = 0; n < N; n++)
        for (int k = 0; k < OC; k++)
            out[(size_t)n * OC + k] += bias[k];
    out += N * OC;
    for (size_t i = 0; i < N; i++)
        for (int c = 0; c < C; c++)
            out[i * C + c] += wpe[(i % T) * C + c];
}
static void c_embedding_vp_forward(weft_ops *o, bufs *b)
{
    int v0 = 3, Vl = 4;
    if (o) {
        o->embedding_vp_forward(o, F(0), b->tok, F(1), v0, Vl, N, C);
        return;
    }
    for (size_t i = 0; i < N; i++) {
        int32_t v = b->tok[i] - v0;
        float *r = F(0) + i * C;
        if (v >= 0 && v < Vl)
            memcpy(r, F(1) + (size_t)v * C, (size_t)C * sizeof(float));
        else
            memset(r, 0, (size_t)C * sizeof(float));
    }
}
static void vp_backward_loop(float *dwte_local, float *dwpe, const float *dout, const int32_t *tokens, int v0, int Vl)
{
    for (size_t i = 0; i < N; i++) {
        const float *d = dout + i * C;
        int32_t v = tokens[i] - v0;
        float *pw = dwpe ? dwpe + (i % T) * C : NULL;
        for (int c = 0; pw && c < C; c++)
            pw[c] += d[c];
        if (v < 0 || v >= Vl)
            continue;
        float *w = dwte_local + (size_t)v * C;
        for (int c = 0; c < C; c++)
            w[c] += d[c];
    }
}
static void c_embedding_vp_backward(weft_ops *o, bufs *b)
{
    if (o) {
        o->embedding_vp_backward(o, F(0), F(1), F(2), b->tok, 3, 4, B, T, C);
        o->embedding_vp_backward(o, F(3), NULL, F(2), b->tok, 0, 6, B, T, C); /* llama: no positions */
        return;
    }
    vp_backward_loop(F(0), F(1), F(2), b->tok, 3, 4);
    vp_backward_loop(F(3), NULL, F(2), b->tok, 0, 6);
}
static void c_xent_rescale(weft_ops *o, bufs *b)
{
    double *sz = D(0), *mx = D(1), *gmx = D(2);
    if (o) {
        o->xent_rescale(o, sz, mx, gmx, N);
        return;
    }
    for (int n = 0; n < N; n++)
        sz[n] *= exp(mx[n] - gmx[n]);
    memcpy(mx, gmx, (size_t)N * sizeof(double));
}

/* lora.c's loops as they were: dy_times_b (dh (N, r) += dy (N, out) B
 * (out, r)) and dh_times_a (dx (N, in) += dh (N, r) A (r, in)) with r = 3;
 * the dropout of x and the masked add of its gradient (p = 0.3, columns
 * from 5 on: a row-parallel piece). */
static int lora_kept_ref(uint64_t key, uint64_t id, int n, int j, double p)
{
    uint64_t h = weft_rng_mix(key ^ id ^ weft_rng_mix(((uint64_t)n << 32) ^ (uint64_t)j));
    return (double)(h >> 11) * 0x1.0p-53 >= p;
}
static void c_matmul_nn_add(weft_ops *o, bufs *b)
{
    int r = 3, out = OC, in = C + 3;
    if (o) {
        o->matmul_nn_add(o, F(0), F(1), F(2), N, out, r);
        o->matmul_nn_add(o, F(3), F(4), F(5), N, r, in);
        return;
    }
    for (int n = 0; n < N; n++) {
        float *d = F(0) + (size_t)n * r;
        const float *g = F(1) + (size_t)n * out;
        for (int k = 0; k < out; k++)
            for (int m = 0; m < r; m++)
                d[m] += g[k] * F(2)[(size_t)k * r + m];
    }
    for (int n = 0; n < N; n++) {
        float *d = F(3) + (size_t)n * in;
        for (int k = 0; k < r; k++) {
            float c = F(4)[(size_t)n * r + k];
            const float *a = F(5) + (size_t)k * in;
            for (int j = 0; j < in; j++)
                d[j] += c * a[j];
        }
    }
}
static void c_lora_dropout(weft_ops *o, bufs *b)
{
    uint64_t key = 0x1234567890abcdefull, id = 77;
    double p = 0.3;
    if (o) {
        o->lora_dropout(o, F(0), F(1), N, C, 5, key, id, p);
        return;
    }
    float inv = (float)(1.0 / (1.0 - p));
    for (int n = 0; n < N; n++)
        for (int j = 0; j < C; j++) {
            size_t e = (size_t)n * C + j;
            F(0)[e] = lora_kept_ref(key, id, n, 5 + j, p) ? F(1)[e] * inv : 0.0f;
        }
}
static void c_lora_dropout_add(weft_ops *o, bufs *b)
{
    uint64_t key = 0x1234567890abcdefull, id = 77;
    double p = 0.3;
    F(0)[7] = -0.0f; /* a dropped element keeps its bits: no += 0 */
    if (o) {
        o->lora_dropout_add(o, F(0), F(1), N, C, 5, key, id, p);
        return;
    }
    float inv = (float)(1.0 / (1.0 - p));
    for (int n = 0; n < N; n++)
        for (int j = 0; j < C; j++)
            if (lora_kept_ref(key, id, n, 5 + j, p))
                F(0)[(size_t)n * C + j] += F(1)[(size_t)n * C + j] * inv;
}

/* dp.c's gradient-norm sum continued from D(3)[0] over two ranges of
 * F(0): each range in four double accumulators (element j into j mod 4,
 * the tail into the first), summed pairwise, then added. */
static double sumsq4_ref(const float *g, size_t n)
{
    double a[4] = {0, 0, 0, 0};
    size_t j = 0;
    for (; j + 4 <= n; j += 4)
        for (int k = 0; k < 4; k++)
            a[k] += (double)g[j + k] * g[j + k];
    for (; j < n; j++)
        a[0] += (double)g[j] * g[j];
    return (a[0] + a[1]) + (a[2] + a[3]);
}

static void c_sumsq_acc(weft_ops *o, bufs *b)
{
    if (o) {
        o->sumsq_acc(o, D(3), F(0), 700);
        o->sumsq_acc(o, D(3), F(0) + 700, 301);
        return;
    }
    D(3)[0] += sumsq4_ref(F(0), 700);
    D(3)[0] += sumsq4_ref(F(0) + 700, 301);
}

static const struct {
    const char *name;
    size_t offset; /* of the entry in weft_ops */
    op_case run;
} cases[] = {
#define CASE(n) {#n, offsetof(weft_ops, n), c_##n}
    CASE(matmul_forward),
    CASE(matmul_backward),
    CASE(layernorm_forward),
    CASE(layernorm_backward),
    CASE(layernorm_residual_forward),
    CASE(layernorm_residual_backward),
    CASE(rmsnorm_forward),
    CASE(rmsnorm_backward),
    CASE(rmsnorm_residual_forward),
    CASE(rmsnorm_residual_backward),
    CASE(gelu_forward),
    CASE(gelu_backward),
    CASE(residual_forward),
    CASE(residual_backward),
    CASE(swiglu_forward),
    CASE(swiglu_backward),
    CASE(embedding_forward),
    CASE(embedding_backward),
    CASE(xent_forward_backward),
    CASE(xent_stats),
    CASE(xent_grad),
    CASE(xent_head_backward),
    CASE(adamw_update),
    CASE(sumsq),
    CASE(rope_table),
    CASE(rope_forward),
    CASE(rope_backward),
    CASE(attention_flash_forward),
    CASE(attention_flash_backward),
    CASE(gqa_attention_flash_forward),
    CASE(gqa_attention_flash_backward),
    CASE(attention_decode),
    CASE(zero),
    CASE(copy),
    CASE(scale),
    CASE(axpy),
    CASE(xent_finish),
    CASE(fill),
    CASE(bf16_mirror),
    CASE(bf16_refresh),
    CASE(add_rows),
    CASE(embedding_vp_forward),
    CASE(embedding_vp_backward),
    CASE(xent_rescale),
    CASE(matmul_nn_add),
    CASE(lora_dropout),
    CASE(lora_dropout_add),
    CASE(sumsq_acc),
#undef CASE
};
#define NCASES (sizeof cases / sizeof cases[0])
/* The table's entries: every function pointer before `status`. */
#define NENTRIES (offsetof(weft_ops, status) / sizeof(void (*)(void)))

static weft_ops *cpu_table(weft_dev **dev)
{
    assert_int_equal(weft_device_open((weft_device){WEFT_DEVICE_CPU, 0}, dev), 0);
    weft_ops *o = NULL;
    assert_int_equal(weft_ops_open(*dev, 64, &o), 0);
    assert_non_null(o);
    return o;
}

static void test_every_entry_is_its_kernel(void **state)
{
    (void)state;
    weft_dev *dev;
    weft_ops *o = cpu_table(&dev);
    assert_int_equal(NCASES, NENTRIES); /* a new entry needs a case here */
    bufs ref, got;
    alloc(&ref);
    alloc(&got);
    for (size_t i = 0; i < NCASES; i++) {
        void (*const *entry)(void) = (void (*const *)(void))((const char *)o + cases[i].offset);
        if (!*entry)
            fail_msg("entry %s is NULL", cases[i].name);
        fill(&ref);
        fill(&got);
        cases[i].run(NULL, &ref);
        cases[i].run(o, &got);
        int changed = 0; /* the case must write something, or it proves nothing */
        bufs start;
        alloc(&start);
        fill(&start);
        for (int k = 0; k < NF; k++) {
            if (memcmp(ref.f[k], got.f[k], NFLOAT * sizeof(float)) != 0)
                fail_msg("%s: float buffer %d differs from kernels.h's", cases[i].name, k);
            changed |= memcmp(ref.f[k], start.f[k], NFLOAT * sizeof(float)) != 0;
        }
        for (int k = 0; k < ND; k++) {
            if (memcmp(ref.d[k], got.d[k], NDOUBLE * sizeof(double)) != 0)
                fail_msg("%s: double buffer %d differs from kernels.h's", cases[i].name, k);
            changed |= memcmp(ref.d[k], start.d[k], NDOUBLE * sizeof(double)) != 0;
        }
        release(&start);
        if (!changed)
            fail_msg("%s: the case wrote nothing", cases[i].name);
    }
    assert_int_equal(weft_ops_status(o), 0);
    release(&ref);
    release(&got);
    weft_ops_close(o);
    weft_device_close(dev);
}

/* Fakes standing in for ops an implementation lacks or that fail. */
static int fake_calls;
static void fail_gelu(weft_ops *o, float *out, const float *inp, size_t n)
{
    (void)out, (void)inp, (void)n;
    fake_calls++;
    weft_ops_fail(o, WEFT_EUNSUPPORTED, "gelu_forward", "no kernel for this op (a fake)");
}
static void fail_residual(weft_ops *o, float *out, const float *a, const float *b, size_t n)
{
    (void)out, (void)a, (void)b, (void)n;
    fake_calls++;
    weft_ops_fail(o, WEFT_EINVAL, "residual_forward", "a later failure (a fake)");
}

static void test_sticky_status(void **state)
{
    (void)state;
    weft_dev *dev;
    weft_ops *o = cpu_table(&dev);
    o->gelu_forward = fail_gelu;
    o->residual_forward = fail_residual;
    float x[4] = {1, 2, 3, 4}, y[4] = {0}, z[4] = {0};
    assert_int_equal(weft_ops_status(o), 0);
    o->gelu_forward(o, y, x, 4);
    o->residual_forward(o, y, x, x, 4);
    o->swiglu_forward(o, z, x, x, 4); /* a healthy op after a failure still runs */
    assert_int_equal(fake_calls, 2);
    assert_true(z[3] > 3.9f);
    weft_error_clear();
    assert_int_equal(weft_ops_status(o), WEFT_EUNSUPPORTED); /* the first, not the later */
    assert_non_null(strstr(weft_last_error(), "op gelu_forward"));
    assert_null(strstr(weft_last_error(), "residual_forward"));
    assert_int_equal(weft_ops_status(o), WEFT_EUNSUPPORTED); /* asking again changes nothing */
    weft_ops_clear(o);
    assert_int_equal(weft_ops_status(o), 0);
    o->residual_forward(o, y, x, x, 4);
    assert_int_equal(weft_ops_status(o), WEFT_EINVAL);
    assert_non_null(strstr(weft_last_error(), "op residual_forward"));
    weft_ops_close(o);
    weft_device_close(dev);
}

/* A model's forward and backward hand the table's failure to the caller. */
static void test_model_returns_status(void **state)
{
    (void)state;
    weft_gpt_config cfg = {.vocab = 32, .max_seq = 8, .n_layer = 1, .n_head = 2, .n_embd = 8};
    weft_gpt *m = NULL;
    assert_int_equal(weft_gpt_new(&cfg, 1, 8, &m), 0);
    weft_gpt_init(m, 3);
    weft_ops *o = weft_gpt_model(m)->kops;
    assert_non_null(o);
    int32_t tok[8] = {1, 2, 3, 4, 5, 6, 7, 8}, tgt[8] = {2, 3, 4, 5, 6, 7, 8, 9};
    double loss = 0;
    assert_int_equal(weft_gpt_forward(m, tok, tgt, 1, 8, &loss), 0);
    assert_true(loss > 0);
    void (*gelu)(weft_ops *, float *, const float *, size_t) = o->gelu_forward;
    o->gelu_forward = fail_gelu;
    weft_error_clear();
    assert_int_equal(weft_gpt_forward(m, tok, tgt, 1, 8, &loss), WEFT_EUNSUPPORTED);
    assert_non_null(strstr(weft_last_error(), "op gelu_forward"));
    assert_int_equal(weft_gpt_backward(m, 1.0, NULL, NULL), WEFT_EUNSUPPORTED); /* sticky */
    o->gelu_forward = gelu;
    weft_ops_clear(o);
    assert_int_equal(weft_gpt_forward(m, tok, tgt, 1, 8, &loss), 0);
    assert_int_equal(weft_gpt_backward(m, 1.0, NULL, NULL), 0);
    weft_gpt_free(m);
}

/* No GPU here: a cuda device (built by hand: weft_device_open refuses one)
 * gets no table, and says why. With the built kernels' library named, the
 * failure is the context's; without, the library's: both unavailable. */
static void test_cuda_unavailable(void **state)
{
    (void)state;
    const char *b = getenv("BUILD");
    char lib[4200];
    snprintf(lib, sizeof lib, "%s/lib/libweft-cuda.so", b && *b ? b : "build");
    if (access(lib, R_OK) == 0)
        setenv("WEFT_CUDA_LIB", lib, 1);
    struct weft_dev fake = {.impl = &weft_device_cuda_impl, .where = {WEFT_DEVICE_CUDA, 0}};
    weft_ops *o = (weft_ops *)1;
    weft_error_clear();
    assert_int_equal(weft_ops_open(&fake, 64, &o), WEFT_EUNAVAILABLE);
    assert_null(o);
    print_message("cuda here: %s\n", weft_last_error());
    assert_non_null(strstr(weft_last_error(), "CUDA kernels"));
    assert_int_equal(weft_ops_open(NULL, 64, &o), WEFT_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_entry_is_its_kernel),
        cmocka_unit_test(test_sticky_status),
        cmocka_unit_test(test_model_returns_status),
        cmocka_unit_test(test_cuda_unavailable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
