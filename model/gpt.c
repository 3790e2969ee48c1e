/*
 * gpt.c -- GPT-2 forward and backward over the CPU kernels, in the manner
 * of llm.c: one flat parameter buffer, one flat gradient buffer, and every
 * activation (and its gradient) preallocated for B x T at creation, so a
 * training step allocates nothing.
 *
 * Trace points (runtime/trace.h, off unless trace.steps is set): each block's
 * forward and backward, the embedding and the head (final LayerNorm, tied LM
 * head, cross-entropy), on the compute lane.
 */
#include "model/gpt.h"
#include "kernels/kernels.h"
#include "runtime/error.h"
#include "runtime/rng.h"
#include "runtime/trace.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per-block parameter order; offsets follow it. */
enum { LN1W, LN1B, QKVW, QKVB, ATTPROJW, ATTPROJB, LN2W, LN2B, FCW, FCB, FCPROJW, FCPROJB, NBLOCK };

static const char *const block_names[NBLOCK] = {
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
    "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
    "mlp.c_proj.weight", "mlp.c_proj.bias",
};

/* One block's activations (forward) or their gradients (backward). */
typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd; /* (B,T,C), (B,T), (B,T) */
    float *qkv;                       /* (B,T,3C) */
    float *atty;                      /* (B,T,C) attention output before c_proj */
    float *att;                       /* (B,NH,T,T) softmax probabilities */
    float *attproj;                   /* (B,T,C) */
    float *residual2;                 /* (B,T,C) = input + attproj */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu;            /* (B,T,4C) */
    float *fcproj;                    /* (B,T,C) */
    float *residual3;                 /* (B,T,C) = residual2 + fcproj: the block's output */
} block_acts;

struct weft_gpt {
    weft_gpt_config cfg;
    int B, T;                 /* activation capacity */
    int nparams;
    weft_gpt_param *table;    /* nparams entries, layout order */
    size_t num_params;
    float *params, *grads;    /* (num_params) each */
    /* activations */
    float *encoded;           /* (B,T,C) */
    block_acts *blk, *dblk;   /* L each: forward, and gradients */
    float *lnf, *lnf_mean, *lnf_rstd;
    float *logits;            /* (B,T,V); backward turns it into dlogits */
    float *losses;            /* (B,T) */
    float *dencoded, *dlnf, *datt_scratch;
    int32_t *tokens, *targets; /* (B,T) copies of the last forward's inputs and targets */
    int last_b, last_t, have_targets;
    float *act_mem, *dact_mem;
    size_t dact_floats;
};

const weft_config_key weft_model_config_keys[] = {
    {"model.n_layer", WEFT_CFG_INT, "4", 1, 1024, NULL, "transformer blocks (L)"},
    {"model.n_head", WEFT_CFG_INT, "4", 1, 1024, NULL, "attention heads per block (NH); must divide model.n_embd"},
    {"model.n_embd", WEFT_CFG_INT, "128", 1, 65536, NULL, "channels (C)"},
    {"model.context", WEFT_CFG_INT, "256", 1, 1 << 20, NULL,
     "positions the model has (maxT); train.seq_len may not exceed it"},
    WEFT_CONFIG_END,
};

void weft_gpt_config_from(const weft_config *cfg, int vocab, weft_gpt_config *out)
{
    out->vocab = vocab;
    out->n_layer = (int)weft_config_int(cfg, "model.n_layer");
    out->n_head = (int)weft_config_int(cfg, "model.n_head");
    out->n_embd = (int)weft_config_int(cfg, "model.n_embd");
    out->max_seq = (int)weft_config_int(cfg, "model.context");
}

int weft_gpt_config_check(const weft_gpt_config *c)
{
    if (c->vocab < 2)
        return weft_error(WEFT_ECONFIG, "model: vocab size %d must be at least 2 (it comes from the dataset)", c->vocab);
    if (c->n_layer < 1 || c->n_head < 1 || c->n_embd < 1 || c->max_seq < 1)
        return weft_error(WEFT_ECONFIG, "model.n_layer (%d), model.n_head (%d), model.n_embd (%d) and "
                          "model.context (%d) must all be >= 1", c->n_layer, c->n_head, c->n_embd, c->max_seq);
    if (c->n_embd % c->n_head != 0)
        return weft_error(WEFT_ECONFIG, "model.n_embd (%d) is not divisible by model.n_head (%d): each head "
                          "needs n_embd / n_head channels", c->n_embd, c->n_head);
    return 0;
}

static void add_param(weft_gpt *m, const char *name, int64_t d0, int64_t d1, int decay)
{
    weft_gpt_param *p = &m->table[m->nparams++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = d1 ? 2 : 1;
    p->shape[0] = d0;
    p->shape[1] = d1;
    p->numel = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    p->offset = m->num_params;
    p->decay = decay;
    p->shard = weft_shard_whole(d0, d1);
    p->tied_copy = 0;
    m->num_params += p->numel;
}

static void build_table(weft_gpt *m)
{
    const weft_gpt_config *c = &m->cfg;
    int64_t C = c->n_embd;
    add_param(m, "wte", c->vocab, C, 1);
    add_param(m, "wpe", c->max_seq, C, 1);
    const int64_t shape[NBLOCK][2] = {{C, 0}, {C, 0}, {3 * C, C}, {3 * C, 0}, {C, C},     {C, 0},
                                      {C, 0}, {C, 0}, {4 * C, C}, {4 * C, 0}, {C, 4 * C}, {C, 0}};
    for (int l = 0; l < c->n_layer; l++)
        for (int k = 0; k < NBLOCK; k++) {
            char name[64];
            snprintf(name, sizeof name, "h.%d.%s", l, block_names[k]);
            add_param(m, name, shape[k][0], shape[k][1], shape[k][1] != 0);
        }
    add_param(m, "ln_f.weight", C, 0, 0);
    add_param(m, "ln_f.bias", C, 0, 0);
}

/* Carve one block's activation arrays from *p, advancing it. */
static void carve_block(block_acts *a, float **p, size_t BT, size_t C, size_t att_floats)
{
    float *q = *p;
#define TAKE(field, n) (a->field = q, q += (n))
    TAKE(ln1, BT * C); TAKE(ln1_mean, BT); TAKE(ln1_rstd, BT);
    TAKE(qkv, BT * 3 * C); TAKE(atty, BT * C); TAKE(att, att_floats); TAKE(attproj, BT * C);
    TAKE(residual2, BT * C); TAKE(ln2, BT * C); TAKE(ln2_mean, BT); TAKE(ln2_rstd, BT);
    TAKE(fch, BT * 4 * C); TAKE(fch_gelu, BT * 4 * C); TAKE(fcproj, BT * C); TAKE(residual3, BT * C);
#undef TAKE
    *p = q;
}

static size_t block_floats(size_t BT, size_t C, size_t att_floats)
{
    return BT * C * 18 + BT * 4 + att_floats; /* must match carve_block */
}

static int alloc_acts(weft_gpt *m)
{
    const weft_gpt_config *c = &m->cfg;
    size_t BT = (size_t)m->B * m->T, C = c->n_embd, V = c->vocab, L = c->n_layer;
    size_t att = (size_t)m->B * c->n_head * m->T * m->T;
    size_t fwd = BT * C + L * block_floats(BT, C, att) + BT * C + 2 * BT + BT * V + BT;
    /* Gradients of activations: same blocks, but attention probabilities
     * need no gradient array of their own (one shared scratch instead). */
    size_t bwd = BT * C + L * block_floats(BT, C, 0) + BT * C + att;
    m->act_mem = malloc(fwd * sizeof(float));
    m->dact_mem = malloc(bwd * sizeof(float));
    m->blk = calloc(L, sizeof *m->blk);
    m->dblk = calloc(L, sizeof *m->dblk);
    m->tokens = malloc(BT * sizeof(int32_t));
    m->targets = malloc(BT * sizeof(int32_t));
    if (!m->act_mem || !m->dact_mem || !m->blk || !m->dblk || !m->tokens || !m->targets)
        return weft_error(WEFT_ENOMEM, "model: %.1f MiB of activations for B=%d T=%d: out of memory",
                          (double)(fwd + bwd) * 4 / (1 << 20), m->B, m->T);
    float *p = m->act_mem;
    m->encoded = p, p += BT * C;
    for (size_t l = 0; l < L; l++)
        carve_block(&m->blk[l], &p, BT, C, att);
    m->lnf = p, p += BT * C;
    m->lnf_mean = p, p += BT;
    m->lnf_rstd = p, p += BT;
    m->logits = p, p += BT * V;
    m->losses = p;
    p = m->dact_mem;
    m->dencoded = p, p += BT * C;
    for (size_t l = 0; l < L; l++)
        carve_block(&m->dblk[l], &p, BT, C, 0);
    m->dlnf = p, p += BT * C;
    m->datt_scratch = p;
    m->dact_floats = bwd;
    return 0;
}

int weft_gpt_new(const weft_gpt_config *cfg, int B, int T, weft_gpt **out)
{
    WEFT_CHECK(weft_gpt_config_check(cfg));
    if (B < 1 || T < 1 || T > cfg->max_seq)
        return weft_error(WEFT_ECONFIG, "model: sequence length %d must be in [1, model.context = %d]", T,
                          cfg->max_seq);
    weft_gpt *m = calloc(1, sizeof *m);
    if (!m)
        return weft_error(WEFT_ENOMEM, "model: out of memory");
    m->cfg = *cfg;
    m->B = B;
    m->T = T;
    m->table = calloc((size_t)(3 + NBLOCK * cfg->n_layer + 2), sizeof *m->table);
    if (!m->table) {
        free(m);
        return weft_error(WEFT_ENOMEM, "model: out of memory");
    }
    build_table(m);
    m->params = calloc(m->num_params, sizeof(float));
    m->grads = calloc(m->num_params, sizeof(float));
    int rc = m->params && m->grads ? alloc_acts(m)
                                   : weft_error(WEFT_ENOMEM, "model: %zu parameters: out of memory", m->num_params);
    if (rc) {
        weft_gpt_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void weft_gpt_free(weft_gpt *m)
{
    if (!m)
        return;
    free(m->table);
    free(m->params);
    free(m->grads);
    free(m->act_mem);
    free(m->dact_mem);
    free(m->blk);
    free(m->dblk);
    free(m->tokens);
    free(m->targets);
    free(m);
}

void weft_gpt_init(weft_gpt *m, uint64_t seed)
{
    weft_rng rng;
    weft_rng_seed(&rng, seed);
    double proj_std = 0.02 / sqrt(2.0 * m->cfg.n_layer);
    for (int i = 0; i < m->nparams; i++) {
        const weft_gpt_param *p = &m->table[i];
        float *w = m->params + p->offset;
        int is_ln_weight = strstr(p->name, "ln_") && strstr(p->name, ".weight");
        int is_proj = strstr(p->name, "c_proj.weight") != NULL;
        for (size_t j = 0; j < p->numel; j++) {
            if (p->ndim == 2)
                w[j] = (float)(weft_rng_normal(&rng) * (is_proj ? proj_std : 0.02));
            else
                w[j] = is_ln_weight ? 1.0f : 0.0f;
        }
    }
}

const weft_gpt_config *weft_gpt_cfg(const weft_gpt *m) { return &m->cfg; }
int weft_gpt_nparams(const weft_gpt *m) { return m->nparams; }
const weft_gpt_param *weft_gpt_param_at(const weft_gpt *m, int i) { return &m->table[i]; }
size_t weft_gpt_num_params(const weft_gpt *m) { return m->num_params; }
float *weft_gpt_params(weft_gpt *m) { return m->params; }
float *weft_gpt_grads(weft_gpt *m) { return m->grads; }
const float *weft_gpt_logits(const weft_gpt *m) { return m->logits; }

/* Pointer to parameter k of block l in buffer base (params or grads). */
static float *bp(const weft_gpt *m, float *base, int l, int k)
{
    return base + m->table[2 + l * NBLOCK + k].offset;
}

static void block_forward(weft_gpt *m, int l, const float *x, int b, int t)
{
    const weft_gpt_config *c = &m->cfg;
    int BT = b * t, C = c->n_embd, NH = c->n_head;
    block_acts *a = &m->blk[l];
    float *P = m->params;
    weft_layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, bp(m, P, l, LN1W), bp(m, P, l, LN1B), BT, C);
    weft_matmul_forward(a->qkv, a->ln1, bp(m, P, l, QKVW), bp(m, P, l, QKVB), BT, C, 3 * C);
    weft_attention_forward(a->atty, a->att, a->qkv, b, t, C, NH);
    weft_matmul_forward(a->attproj, a->atty, bp(m, P, l, ATTPROJW), bp(m, P, l, ATTPROJB), BT, C, C);
    weft_residual_forward(a->residual2, x, a->attproj, (size_t)BT * C);
    weft_layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->residual2, bp(m, P, l, LN2W), bp(m, P, l, LN2B), BT, C);
    weft_matmul_forward(a->fch, a->ln2, bp(m, P, l, FCW), bp(m, P, l, FCB), BT, C, 4 * C);
    weft_gelu_forward(a->fch_gelu, a->fch, (size_t)BT * 4 * C);
    weft_matmul_forward(a->fcproj, a->fch_gelu, bp(m, P, l, FCPROJW), bp(m, P, l, FCPROJB), BT, 4 * C, C);
    weft_residual_forward(a->residual3, a->residual2, a->fcproj, (size_t)BT * C);
}

double weft_gpt_forward(weft_gpt *m, const int32_t *tokens, const int32_t *targets, int b, int t)
{
    const weft_gpt_config *c = &m->cfg;
    int BT = b * t, C = c->n_embd, V = c->vocab, L = c->n_layer;
    float *P = m->params;
    int64_t t0 = weft_trace_begin();
    weft_embedding_forward(m->encoded, tokens, P + m->table[0].offset, P + m->table[1].offset, b, t, C);
    weft_trace_end("embed.forward", "forward", WEFT_TRACE_COMPUTE, -1, t0);
    const float *x = m->encoded;
    for (int l = 0; l < L; l++) {
        t0 = weft_trace_begin();
        block_forward(m, l, x, b, t);
        weft_trace_end("h.%d.forward", "forward", WEFT_TRACE_COMPUTE, l, t0);
        x = m->blk[l].residual3;
    }
    t0 = weft_trace_begin();
    const weft_gpt_param *lnf = &m->table[m->nparams - 2];
    weft_layernorm_forward(m->lnf, m->lnf_mean, m->lnf_rstd, x, P + lnf->offset, P + lnf->offset + C, BT, C);
    weft_matmul_forward(m->logits, m->lnf, P + m->table[0].offset, NULL, BT, C, V); /* tied LM head */
    memcpy(m->tokens, tokens, (size_t)BT * sizeof(int32_t));
    m->last_b = b;
    m->last_t = t;
    m->have_targets = targets != NULL;
    double loss = 0.0;
    if (targets) {
        memcpy(m->targets, targets, (size_t)BT * sizeof(int32_t));
        loss = weft_xent_forward_backward(m->losses, NULL, m->logits, targets, BT, V, 0.0);
    }
    weft_trace_end("head.forward", "forward", WEFT_TRACE_COMPUTE, -1, t0);
    return loss;
}

void weft_gpt_zero_grad(weft_gpt *m) { memset(m->grads, 0, m->num_params * sizeof(float)); }

static void block_backward(weft_gpt *m, int l, const float *x, float *dx, int b, int t)
{
    const weft_gpt_config *c = &m->cfg;
    int BT = b * t, C = c->n_embd, NH = c->n_head;
    size_t n = (size_t)BT * C;
    block_acts *a = &m->blk[l], *d = &m->dblk[l];
    float *P = m->params, *G = m->grads;
    weft_residual_backward(d->residual2, d->fcproj, d->residual3, n);
    weft_matmul_backward(d->fch_gelu, bp(m, G, l, FCPROJW), bp(m, G, l, FCPROJB), d->fcproj, a->fch_gelu,
                         bp(m, P, l, FCPROJW), BT, 4 * C, C);
    weft_gelu_backward(d->fch, a->fch, d->fch_gelu, n * 4);
    weft_matmul_backward(d->ln2, bp(m, G, l, FCW), bp(m, G, l, FCB), d->fch, a->ln2, bp(m, P, l, FCW), BT, C, 4 * C);
    weft_layernorm_backward(d->residual2, bp(m, G, l, LN2W), bp(m, G, l, LN2B), d->ln2, a->residual2,
                            bp(m, P, l, LN2W), a->ln2_mean, a->ln2_rstd, BT, C);
    weft_residual_backward(dx, d->attproj, d->residual2, n);
    weft_matmul_backward(d->atty, bp(m, G, l, ATTPROJW), bp(m, G, l, ATTPROJB), d->attproj, a->atty,
                         bp(m, P, l, ATTPROJW), BT, C, C);
    weft_attention_backward(d->qkv, m->datt_scratch, d->atty, a->qkv, a->att, b, t, C, NH);
    weft_matmul_backward(d->ln1, bp(m, G, l, QKVW), bp(m, G, l, QKVB), d->qkv, a->ln1, bp(m, P, l, QKVW), BT, C,
                         3 * C);
    weft_layernorm_backward(dx, bp(m, G, l, LN1W), bp(m, G, l, LN1B), d->ln1, x, bp(m, P, l, LN1W), a->ln1_mean,
                            a->ln1_rstd, BT, C);
}

void weft_gpt_backward(weft_gpt *m, double loss_scale, weft_gpt_grad_hook hook, void *arg)
{
    assert(m->have_targets); /* backward of a forward without targets is a bug */
    const weft_gpt_config *c = &m->cfg;
    int b = m->last_b, t = m->last_t, BT = b * t, C = c->n_embd, V = c->vocab, L = c->n_layer;
    float *P = m->params, *G = m->grads;
    int64_t t0 = weft_trace_begin();
    /* Kernels accumulate into activation gradients: start them at zero. */
    memset(m->dact_mem, 0, m->dact_floats * sizeof(float));
    weft_xent_forward_backward(m->losses, m->logits, m->logits, m->targets, BT, V, loss_scale / BT);
    weft_matmul_backward(m->dlnf, G + m->table[0].offset, NULL, m->logits, m->lnf, P + m->table[0].offset, BT, C, V);
    const weft_gpt_param *lnf = &m->table[m->nparams - 2];
    const float *xl = m->blk[L - 1].residual3;
    weft_layernorm_backward(m->dblk[L - 1].residual3, G + lnf->offset, G + lnf->offset + C, m->dlnf, xl,
                            P + lnf->offset, m->lnf_mean, m->lnf_rstd, BT, C);
    weft_trace_end("head.backward", "backward", WEFT_TRACE_COMPUTE, -1, t0);
    if (hook)
        hook(arg, lnf->offset);
    for (int l = L - 1; l >= 0; l--) {
        const float *x = l ? m->blk[l - 1].residual3 : m->encoded;
        float *dx = l ? m->dblk[l - 1].residual3 : m->dencoded;
        t0 = weft_trace_begin();
        block_backward(m, l, x, dx, b, t);
        weft_trace_end("h.%d.backward", "backward", WEFT_TRACE_COMPUTE, l, t0);
        if (hook)
            hook(arg, m->table[2 + l * NBLOCK].offset);
    }
    t0 = weft_trace_begin();
    weft_embedding_backward(G + m->table[0].offset, G + m->table[1].offset, m->dencoded, m->tokens, b, t, C);
    weft_trace_end("embed.backward", "backward", WEFT_TRACE_COMPUTE, -1, t0);
    if (hook)
        hook(arg, 0);
}

double weft_gpt_flops_per_token(const weft_gpt *m, int t)
{
    const weft_gpt_config *c = &m->cfg;
    double N = (double)m->num_params - (double)c->max_seq * c->n_embd; /* positions do no matmul */
    return 6.0 * N + 12.0 * c->n_layer * (double)t * c->n_embd;
}
