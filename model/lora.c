/*
 * lora.c -- low-rank adapters: their tensors, activations, forward and
 * backward, with the tensor-parallel cases of lora.h. Everything is
 * allocated by weft_lora_alloc; a step allocates nothing.
 */
#include "model/lora.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "runtime/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { WHOLE, COLUMN, ROW } split_kind;

typedef struct {
    size_t offA, offB;   /* in the model's params / grads */
    int in, out;         /* the base layer's local channels */
    int col0;            /* the global input column of local column 0 (row-parallel bases) */
    uint64_t id;         /* a hash of the base's global name: its dropout masks' own stream */
    split_kind split;
} adapter;

struct weft_lora {
    int r;
    float scale;         /* alpha / r */
    int max_rows, nslots;
    weft_comm *tp;       /* NULL: no tensor parallelism */
    weft_ops *ops;       /* the model's ops table (weft_lora_set_ops) */
    adapter *ad;
    int nad, cap;
    int max_out;
    float *h;            /* (nslots, nad, max_rows, r): s x A^T of each forward */
    float *dh;           /* (max_rows, r) */
    float *u;            /* (max_rows, max_out) the update s h B^T before it is added */
    double p;            /* dropout */
    uint64_t seed;
    uint64_t *key;       /* (nslots) this slot's micro-batch's mask key; 0: no dropout */
    int max_in;
    float *xd;           /* (max_rows, max_in) the dropped-out input, or dh A before its mask */
};

int weft_lora_parse_targets(const char *list, const char *def, const char *const *names, int n, unsigned *mask)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", *list ? list : def);
    *mask = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        int k = 0;
        while (k < n && strcmp(names[k], tok) != 0)
            k++;
        if (k == n) {
            char choices[256] = "";
            for (int j = 0; j < n; j++)
                snprintf(choices + strlen(choices), sizeof choices - strlen(choices), "%s%s", j ? "," : "", names[j]);
            return weft_error(WEFT_ECONFIG, "lora.targets: unknown target '%s' (this model's linears: %s)", tok,
                              choices);
        }
        *mask |= 1u << k;
    }
    if (!*mask)
        return weft_error(WEFT_ECONFIG, "lora.targets names no layer (this model's linears: %s ...)", names[0]);
    return 0;
}

int weft_lora_new(const weft_lora_config *c, int max_rows, int nslots, weft_comm *tp, weft_lora **out)
{
    if (c->rank < 1)
        return weft_error(WEFT_EINVAL, "lora: rank %d", c->rank);
    weft_lora *lo = calloc(1, sizeof *lo);
    if (!lo)
        return weft_error(WEFT_ENOMEM, "lora: out of memory");
    lo->r = c->rank;
    lo->scale = (float)(c->alpha / c->rank);
    lo->max_rows = max_rows;
    lo->nslots = nslots;
    lo->p = c->dropout;
    lo->seed = c->seed;
    lo->tp = tp && weft_comm_size(tp) > 1 ? tp : NULL;
    *out = lo;
    return 0;
}

/* "<module>.lora_X.weight" from the base's "<module>.weight". */
static void adapter_name(const char *base, char x, char *out, size_t len)
{
    size_t n = strlen(base);
    if (n > 7 && strcmp(base + n - 7, ".weight") == 0)
        n -= 7;
    snprintf(out, len, "%.*s.lora_%c.weight", (int)n, base, x);
}

int weft_lora_add(weft_lora *lo, weft_model *m, int cap, const weft_tensor *base, int rank)
{
    const weft_shard_spec *s = &base->shard;
    int64_t out = s->global_shape[0], in = s->global_shape[1], r = lo ? lo->r : rank;
    weft_shard_spec sa = weft_shard_whole(r, in), sb = weft_shard_whole(out, r);
    split_kind k = s->split_dim == 0 ? COLUMN : s->split_dim == 1 ? ROW : WHOLE;
    if (k == COLUMN)
        sb = weft_shard_split(out, r, 0, s->nblocks, s->part, s->nparts);
    if (k == ROW)
        sa = weft_shard_split(r, in, 1, s->nblocks, s->part, s->nparts);
    char na[WEFT_TENSOR_NAME_MAX], nb[WEFT_TENSOR_NAME_MAX];
    adapter_name(base->name, 'A', na, sizeof na);
    adapter_name(base->name, 'B', nb, sizeof nb);
    unsigned flags = WEFT_TENSOR_TRAINABLE | WEFT_TENSOR_DECAY;
    /* B after A: backward finishes B's gradient first (the buffer's end) */
    WEFT_CHECK(weft_model_add_param(m, cap, na, sa, flags));
    WEFT_CHECK(weft_model_add_param(m, cap, nb, sb, flags));
    if (!lo)
        return 0;
    if (lo->nad == lo->cap) {
        int nc = lo->cap ? 2 * lo->cap : 16;
        adapter *a = realloc(lo->ad, (size_t)nc * sizeof *a);
        if (!a)
            return weft_error(WEFT_ENOMEM, "lora: out of memory");
        lo->ad = a, lo->cap = nc;
    }
    const weft_tensor *A = &m->params[m->nparams - 2], *B = &m->params[m->nparams - 1];
    uint64_t id = 0x84222325cbf29ce4ull; /* the name, not the index: a pipeline stage's first adapter is not the model's */
    for (const char *c = base->name; *c; c++)
        id = weft_rng_mix(id ^ (unsigned char)*c);
    lo->ad[lo->nad] = (adapter){.offA = A->offset, .offB = B->offset, .in = (int)base->shape[1], .id = id,
                                .out = (int)base->shape[0], .split = k,
                                .col0 = k == ROW ? s->part * (int)base->shape[1] : 0};
    if (lo->ad[lo->nad].out > lo->max_out)
        lo->max_out = lo->ad[lo->nad].out;
    if (lo->ad[lo->nad].in > lo->max_in)
        lo->max_in = lo->ad[lo->nad].in;
    return lo->nad++;
}

int weft_lora_alloc(weft_lora *lo)
{
    size_t rows = (size_t)lo->max_rows, r = (size_t)lo->r;
    lo->h = calloc((size_t)lo->nslots * (size_t)(lo->nad ? lo->nad : 1) * rows * r, sizeof(float));
    lo->dh = calloc(rows * r, sizeof(float));
    lo->u = calloc(rows * (size_t)(lo->max_out ? lo->max_out : 1), sizeof(float));
    lo->key = calloc((size_t)lo->nslots, sizeof *lo->key);
    lo->xd = lo->p > 0 ? calloc(rows * (size_t)(lo->max_in ? lo->max_in : 1), sizeof(float)) : NULL;
    if (!lo->h || !lo->dh || !lo->u || !lo->key || (lo->p > 0 && !lo->xd))
        return weft_error(WEFT_ENOMEM, "lora: out of memory for the adapters' activations");
    return 0;
}

void weft_lora_free(weft_lora *lo)
{
    if (!lo)
        return;
    free(lo->ad);
    free(lo->h);
    free(lo->dh);
    free(lo->u);
    free(lo->key);
    free(lo->xd);
    free(lo);
}

size_t weft_lora_slot_bytes(const weft_lora *lo)
{
    return lo ? (size_t)lo->nad * lo->max_rows * lo->r * sizeof(float) : 0;
}

static float *slot_h(const weft_lora *lo, int i, int slot)
{
    return lo->h + ((size_t)slot * lo->nad + (size_t)i) * (size_t)lo->max_rows * lo->r;
}

/* The two products with the rank as the inner or outer side would go
 * through BLAS as row-major NoTrans x NoTrans: OpenBLAS's small-matrix
 * kernel for that case mallocs on every call (tests/train/test_noalloc.sh
 * caught it), and the step allocates nothing. r is small: the ops table's
 * matmul_nn_add (the loops they were, on the cpu).
 * dh (N, r) += dy (N, out) B (out, r) */
static void dy_times_b(weft_ops *ops, float *dh, const float *dy, const float *B, int N, int out, int r)
{
    ops->matmul_nn_add(ops, dh, dy, B, N, out, r);
}

/* dx (N, in) += dh (N, r) A (r, in) */
static void dh_times_a(weft_ops *ops, float *dx, const float *dh, const float *A, int N, int in, int r)
{
    ops->matmul_nn_add(ops, dx, dh, A, N, r, in);
}

void weft_lora_begin(weft_lora *lo, int slot, int training, int64_t step, int mb)
{
    if (!lo)
        return;
    uint64_t k = weft_rng_mix(lo->seed ^ weft_rng_mix((uint64_t)step * 0x9E3779B97F4A7C15ull + (uint64_t)mb));
    lo->key[slot] = training && lo->p > 0 ? (k ? k : 1) : 0;
}

/* xd (N, in) = mask * x / (1 - p) of adapter i with the slot's key. The
 * mask (ops.h, lora_dropout): element (n, global column j) survives when
 * a hash of the slot's key, the adapter's name and the element's place,
 * uniform in [0, 1), is >= p. */
static void drop(const weft_lora *lo, uint64_t key, int i, const float *x, float *xd, int N)
{
    const adapter *a = &lo->ad[i];
    lo->ops->lora_dropout(lo->ops, xd, x, N, a->in, a->col0, key, a->id, lo->p);
}

static int sum_over_tp(const weft_lora *lo, float *x, size_t n)
{
    return lo->tp ? weft_comm_allreduce(lo->tp, x, x, n, WEFT_F32, WEFT_SUM) : 0;
}

void weft_lora_set_ops(weft_lora *lo, struct weft_ops *ops) { lo->ops = ops; }

int weft_lora_forward(weft_lora *lo, int i, int slot, const float *params, const float *x, float *y, int N)
{
    weft_ops *ops = lo->ops;
    const adapter *a = &lo->ad[i];
    int r = lo->r;
    size_t nh = (size_t)N * r, ny = (size_t)N * a->out;
    float *h = slot_h(lo, i, slot);
    if (lo->key[slot]) { /* dropout: A sees the masked input */
        drop(lo, lo->key[slot], i, x, lo->xd, N);
        x = lo->xd;
    }
    /* h = s x A^T: scaled once here, so that y += h B^T and dB = dy^T h */
    ops->matmul_forward(ops, h, x, params + a->offA, NULL, N, a->in, r);
    ops->scale(ops, h, nh, lo->scale);
    if (a->split == ROW)
        WEFT_CHECK(sum_over_tp(lo, h, nh));
    ops->matmul_forward(ops, lo->u, h, params + a->offB, NULL, N, r, a->out);
    ops->axpy(ops, y, lo->u, ny, 1.0f); /* a = 1: bitwise y[j] += u[j] */
    return 0;
}

int weft_lora_backward(weft_lora *lo, int i, int slot, const float *params, float *grads, const float *x,
                       const float *dy, float *dx, int N)
{
    weft_ops *ops = lo->ops;
    const adapter *a = &lo->ad[i];
    int r = lo->r;
    size_t nh = (size_t)N * r;
    const float *h = slot_h(lo, i, slot), *A = params + a->offA;
    float *dh = lo->dh, *dA = grads + a->offA;
    /* dB += dy^T h (h holds s x A^T); dh = s dy B */
    ops->zero(ops, dh, nh);
    ops->matmul_backward(ops, NULL, grads + a->offB, NULL, dy, h, params + a->offB, N, r, a->out);
    dy_times_b(ops, dh, dy, params + a->offB, N, a->out, r);
    ops->scale(ops, dh, nh, lo->scale);
    /* Column-parallel: this rank's dh is a partial sum. Its dx share goes
     * in as it is (the base layer's dx is summed over the group later); dA
     * needs the whole dh. With dropout the share passes the same mask, and
     * dA takes the masked input, both drawn again from the slot's key. */
    uint64_t key = lo->key[slot];
    if (key) {
        ops->zero(ops, lo->xd, (size_t)N * a->in);
        dh_times_a(ops, lo->xd, dh, A, N, a->in, r);
        ops->lora_dropout_add(ops, dx, lo->xd, N, a->in, a->col0, key, a->id, lo->p);
    } else {
        dh_times_a(ops, dx, dh, A, N, a->in, r);
    }
    if (a->split == COLUMN)
        WEFT_CHECK(sum_over_tp(lo, dh, nh));
    if (key) {
        drop(lo, key, i, x, lo->xd, N);
        x = lo->xd;
    }
    ops->matmul_backward(ops, NULL, dA, NULL, dh, x, A, N, a->in, r);
    return 0;
}

int weft_lora_fill(const weft_tensor *g, weft_rng *rng, float *out)
{
    const char *p = strstr(g->name, ".lora_");
    if (!p || g->ndim != 2)
        return 0;
    if (p[6] == 'B') {
        memset(out, 0, g->numel * sizeof(float));
        return 1;
    }
    /* PEFT: kaiming_uniform_(A, a=sqrt(5)), a bound of 1/sqrt(fan_in) */
    double bound = 1.0 / sqrt((double)g->shard.global_shape[1]);
    for (size_t j = 0; j < g->numel; j++)
        out[j] = (float)((2 * weft_rng_uniform(rng) - 1) * bound);
    return 1;
}
