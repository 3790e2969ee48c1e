/*
 * optim.c -- AdamW on the shard data parallelism assigns. See optim.h.
 */
#include "model/optim.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "runtime/device.h"
#include "runtime/error.h"

#include <stdlib.h>

const weft_config_key weft_optim_config_keys[] = {
    {"optim.lr", WEFT_CFG_FLOAT, "6e-4", 0, 10, NULL, "peak learning rate (after warm-up)"},
    {"optim.min_lr", WEFT_CFG_FLOAT, "6e-5", 0, 10, NULL, "learning rate at the end of the cosine decay"},
    {"optim.warmup", WEFT_CFG_INT, "10", 0, 1e12, NULL, "steps of linear warm-up from 0 to optim.lr"},
    {"optim.beta1", WEFT_CFG_FLOAT, "0.9", 0, 0.999999, NULL, "AdamW first-moment decay"},
    {"optim.beta2", WEFT_CFG_FLOAT, "0.95", 0, 0.999999, NULL, "AdamW second-moment decay"},
    {"optim.eps", WEFT_CFG_FLOAT, "1e-8", 1e-30, 1, NULL, "AdamW epsilon"},
    {"optim.weight_decay", WEFT_CFG_FLOAT, "0.1", 0, 10, NULL,
     "decoupled weight decay on matrices and embeddings (not biases or LayerNorm)"},
    {"optim.grad_clip", WEFT_CFG_FLOAT, "1.0", 0, 1e9, NULL, "clip the global gradient norm to this (0: off)"},
    WEFT_CONFIG_END,
};

void weft_adamw_opts_from_config(const weft_config *cfg, int64_t total_steps, weft_adamw_opts *o)
{
    o->lr = weft_config_float(cfg, "optim.lr");
    o->min_lr = weft_config_float(cfg, "optim.min_lr");
    o->warmup = weft_config_int(cfg, "optim.warmup");
    o->beta1 = weft_config_float(cfg, "optim.beta1");
    o->beta2 = weft_config_float(cfg, "optim.beta2");
    o->eps = weft_config_float(cfg, "optim.eps");
    o->weight_decay = weft_config_float(cfg, "optim.weight_decay");
    o->grad_clip = weft_config_float(cfg, "optim.grad_clip");
    o->total_steps = total_steps;
}

/* A contiguous piece of the shard with one decay setting and its place in
 * the moment buffers. */
typedef struct {
    size_t offset, len, state_off;
    int decay, trainable;
} piece;

struct weft_optim {
    weft_adamw_opts opts;
    piece *pieces;
    int npieces;
    float *m, *v;   /* (nstate) AdamW's moments, in arena */
    size_t nstate;  /* floats in m and in v */
    weft_device_arena *arena;
    weft_ops *ops; /* the process's device's ops table: AdamW runs through it */
    int64_t t;
};

/* Intersect every shard range with every segment: pieces in buffer order. */
static int build_pieces(weft_optim *o, const weft_tensor *segs, int nsegs, weft_dp *dp)
{
    int ns = weft_dp_nshards(dp), cap = ns + nsegs + 1;
    o->pieces = calloc((size_t)cap, sizeof *o->pieces);
    if (!o->pieces)
        return weft_error(WEFT_ENOMEM, "optimizer: out of memory");
    size_t state = 0;
    for (int i = 0; i < ns; i++) {
        size_t so, sl;
        weft_dp_shard(dp, i, &so, &sl);
        for (int j = 0; j < nsegs && sl; j++) {
            size_t a = so > segs[j].offset ? so : segs[j].offset;
            size_t e1 = so + sl, e2 = segs[j].offset + segs[j].numel, b = e1 < e2 ? e1 : e2;
            if (a >= b)
                continue;
            if (o->npieces == cap) {
                cap *= 2;
                piece *p = realloc(o->pieces, (size_t)cap * sizeof *p);
                if (!p)
                    return weft_error(WEFT_ENOMEM, "optimizer: out of memory");
                o->pieces = p;
            }
            o->pieces[o->npieces++] = (piece){a, b - a, state, (segs[j].flags & WEFT_TENSOR_DECAY) != 0,
                                              (segs[j].flags & WEFT_TENSOR_TRAINABLE) != 0};
            state += b - a;
        }
    }
    o->nstate = state;
    /* The moments in one arena on the process's device, next to the
     * parameters they update (zero, like calloc: a fresh mmap). */
    size_t bytes = (state ? state : 1) * sizeof(float), round = WEFT_DEVICE_ALIGN;
    bytes = (bytes + round - 1) / round * round;
    WEFT_CHECK(weft_device_arena_new(weft_device_current(), "optimizer", 2 * bytes, &o->arena));
    WEFT_CHECK(weft_device_arena_alloc(o->arena, bytes, 0, (void **)&o->m));
    return weft_device_arena_alloc(o->arena, bytes, 0, (void **)&o->v);
}

int weft_optim_new(const weft_tensor *segs, int nsegs, weft_dp *dp, const weft_adamw_opts *opts,
                   weft_optim **out)
{
    weft_optim *o = calloc(1, sizeof *o);
    if (!o)
        return weft_error(WEFT_ENOMEM, "optimizer: out of memory");
    o->opts = *opts;
    int rc = build_pieces(o, segs, nsegs, dp);
    if (rc == 0)
        rc = weft_ops_open(weft_device_current(), 0, &o->ops);
    if (rc) {
        weft_optim_free(o);
        return rc;
    }
    *out = o;
    return 0;
}

void weft_optim_free(weft_optim *o)
{
    if (!o)
        return;
    free(o->pieces);
    weft_ops_close(o->ops);
    weft_device_arena_free(o->arena);
    free(o);
}

double weft_optim_lr(const weft_optim *o, int64_t step)
{
    return weft_lr_at(step, o->opts.lr, o->opts.min_lr, o->opts.warmup, o->opts.total_steps);
}

int weft_optim_step(weft_optim *o, float *params, const float *grads, double lr, double grad_scale)
{
    weft_ops *ops = o->ops;
    o->t++;
    for (int i = 0; i < o->npieces; i++) {
        const piece *p = &o->pieces[i];
        if (!p->trainable)
            continue;
        ops->adamw_update(ops, params + p->offset, grads + p->offset, o->m + p->state_off, o->v + p->state_off, p->len,
                          lr, o->opts.beta1, o->opts.beta2, o->opts.eps, p->decay ? o->opts.weight_decay : 0.0, o->t,
                          grad_scale);
    }
    return weft_ops_status(ops); /* once per step (kernels/ops.h) */
}

double weft_optim_clip_scale(const weft_optim *o, double grad_norm)
{
    return weft_clip_scale(grad_norm, o->opts.grad_clip);
}

int64_t weft_optim_t(const weft_optim *o) { return o->t; }

float *weft_optim_m(weft_optim *o) { return o->m; }
float *weft_optim_v(weft_optim *o) { return o->v; }
size_t weft_optim_state_size(const weft_optim *o) { return o->nstate; }
void weft_optim_set_t(weft_optim *o, int64_t t) { o->t = t; }
