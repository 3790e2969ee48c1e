/*
 * gpt.c -- GPT-2 forward and backward over the CPU kernels, in the manner
 * of llm.c: one flat parameter buffer, one flat gradient buffer, and every
 * activation (and its gradient) preallocated at creation in the model's
 * activation arena on its device (model.h weft_model_acts_new), so a
 * training step allocates nothing and, on cuda, computes on device memory.
 *
 * A model may be one rank's part of a larger one (weft_gpt_part): a pipeline
 * stage's blocks, and within them a tensor-parallel rank's heads and MLP
 * channels, the communicating steps done by parallel/tp.h. Forward
 * activations live in `nslots` slots, one per micro-batch a pipeline
 * schedule keeps in flight; the gradients of activations need one set only,
 * since backward runs one micro-batch at a time.
 *
 * With recomputation (part.recompute, train.recompute = block) a slot keeps
 * each block's input only (the stage input and every block's output): the
 * block's other activations are computed into one shared work block in
 * forward, and computed again, by the same kernels in the same order, just
 * before the block's backward, so the gradients are bitwise the same. The
 * activations' gradients are then one shared block too.
 *
 * Trace points (runtime/trace.h, off unless trace.steps is set): each block's
 * forward, recomputation and backward, the embedding and the head (final
 * LayerNorm, tied LM head, cross-entropy), on the compute lane.
 */
#include "model/gpt.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "parallel/tp.h"
#include "runtime/error.h"
#include "runtime/log.h"
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

/* One block's activations (forward) or their gradients (backward). Cl =
 * C / tp_size: the channels of this rank's heads (and Cl * 4 of the MLP). */
typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd; /* (B,T,C), (B,T), (B,T) */
    float *qkv;                       /* (B,T,3Cl) */
    float *atty;                      /* (B,T,Cl) attention output before c_proj */
    float *att_lse;                   /* (B,NH/tp,T) log-sum-exp of each attention row (flash) */
    float *attproj;                   /* (B,T,C) */
    float *residual2;                 /* (B,T,C) = input + attproj */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu;            /* (B,T,4Cl) */
    float *fcproj;                    /* (B,T,C) */
    float *residual3;                 /* (B,T,C) = residual2 + fcproj: the block's output */
} block_acts;

/* One micro-batch's forward activations. */
typedef struct {
    float *encoded;            /* (B,T,C) the stage's input: embeddings, or the previous stage's output */
    block_acts *blk;           /* Ll (this stage's blocks) */
    float *lnf, *lnf_mean, *lnf_rstd; /* last stage only */
    float *logits;             /* (B,T,Vl); backward turns it into dlogits */
    float *losses;             /* (B,T) */
    double *lse;               /* (B,T) log-sum-exp of each row's logits, for backward */
    int32_t *tokens, *targets; /* (B,T) copies of the forward's inputs and targets */
    int b, t, have_targets;
    int n_valid;               /* targets >= 0: the loss is their mean */
} slot_acts;

struct weft_gpt {
    weft_model base;          /* first: the model interface (model/model.h) */
    weft_gpt_config cfg;
    weft_gpt_part part;
    int B, T;                 /* activation capacity */
    int Ll, l0;               /* blocks held, and the first one's global index */
    int Cl, NHl, Vl, v0;      /* this TP rank's channels, heads, vocabulary rows from v0 */
    int has_embed, has_head;  /* first / last pipeline stage */
    int i_wte, i_wpe, i_blk, i_lnf; /* table indices (-1: not held) */
    size_t hook_floor;        /* backward never reports wte final (pp > 1: the tied sum comes later) */
    int32_t *in, *tgt;        /* (B,T) a micro-batch split from the step's batch */
    slot_acts *slot;          /* nslots */
    block_acts *dblk;         /* Ll (recompute: 1, shared): gradients of one micro-batch's activations */
    block_acts work;          /* recompute: the block forward and backward compute into; a slot
                               * keeps only each block's output (residual3) */
    float *dres[2];           /* recompute: the residual stream's gradient between blocks, alternating */
    float *dencoded, *dlnf, *doutput;
    double *xent_scratch;     /* (3 B T), WEFT_TP_XENT_SCRATCH */
    double *lse_mem;          /* (nslots, B T) */
    float *act_mem, *dact_mem;
    int32_t *tok_mem;
    size_t slot_floats, dact_floats;
    size_t *blk_off;          /* (Ll) where block l's trainable tensors start (backward's hook) */
    size_t head_off;          /* where the head's do */
    weft_lora *lora;          /* adapters (cfg.lora.rank > 0), else NULL */
    int *ad;                  /* (Ll, NTARGET) each target's adapter index, -1: none; NULL without LoRA */
    int slot_now;             /* the slot forward or backward is computing (LoRA's activations) */
    struct gpt_cache *cache;  /* incremental decoding (ops->decode), allocated on first use */
};

/* LoRA's targets: their names (lora.targets) and block parameters. */
enum { NTARGET = 4 };
static const char *const target_names[NTARGET] = {"qkv", "proj", "fc", "fcproj"};
static const int target_param[NTARGET] = {QKVW, ATTPROJW, FCW, FCPROJW};
enum { T_QKV, T_PROJ, T_FC, T_FCPROJ };

/* Incremental decoding (ops->decode): the keys and values of every layer at
 * every position, and one chunk's activations (a prompt longer than CHUNK
 * tokens is prefilled CHUNK at a time). */
enum { CHUNK = 64 };

typedef struct gpt_cache {
    int pos;                       /* positions cached */
    float *k, *v;                  /* (L, maxT, C) */
    float *x, *ln, *q, *atty, *tmp; /* (CHUNK, C) */
    float *qkv;                    /* (CHUNK, 3C) */
    float *fch, *fch_gelu;         /* (CHUNK, 4C) */
    float *mean, *rstd;            /* (CHUNK) */
    float *att;                    /* (WEFT_ATT_DECODE_ROWS, maxT) attention scratch */
    float *logits;                 /* (V) the last token's */
    float *mem;
} gpt_cache;

static void cache_free(gpt_cache *c)
{
    if (c)
        free(c->mem);
    free(c);
}

void weft_gpt_config_from(const weft_config *cfg, int vocab, weft_gpt_config *out)
{
    out->vocab = vocab;
    out->n_layer = (int)weft_config_int(cfg, "model.n_layer");
    out->n_head = (int)weft_config_int(cfg, "model.n_head");
    out->n_embd = (int)weft_config_int(cfg, "model.n_embd");
    out->max_seq = (int)weft_config_int(cfg, "model.context");
}

/* Adapters: known targets, a rank no larger than a target's smaller side
 * (C for every GPT-2 linear); dropout in [0, 1). */
static int lora_check(const weft_gpt_config *c)
{
    const weft_lora_config *lc = &c->lora;
    if (lc->rank == 0)
        return 0;
    unsigned mask;
    WEFT_CHECK(weft_lora_parse_targets(lc->targets, "qkv", target_names, NTARGET, &mask));
    if (!(lc->dropout >= 0 && lc->dropout < 1))
        return weft_error(WEFT_ECONFIG, "lora.dropout (%g) must be in [0, 1): the kept inputs are scaled by "
                          "1 / (1 - p)", lc->dropout);
    if (lc->rank < 0 || lc->rank > c->n_embd)
        return weft_error(WEFT_ECONFIG, "lora.rank (%d) must be in [0, %d]: at most the smaller side of every "
                          "target linear (model.n_embd)", lc->rank, c->n_embd);
    return 0;
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
    return lora_check(c);
}

int weft_gpt_layout_check(const weft_gpt_config *c, int tp, int pp)
{
    if (c->n_head % tp != 0)
        return weft_error(WEFT_ECONFIG, "parallel.tp (%d) does not divide model.n_head (%d): tensor parallelism "
                          "gives each rank whole attention heads", tp, c->n_head);
    if (c->n_embd % tp != 0)
        return weft_error(WEFT_ECONFIG, "parallel.tp (%d) does not divide model.n_embd (%d)", tp, c->n_embd);
    if (c->vocab % tp != 0)
        return weft_error(WEFT_ECONFIG, "parallel.tp (%d) does not divide the vocabulary size (%d, from the "
                          "dataset): the token embedding and the loss are split by vocabulary rows", tp, c->vocab);
    if (c->n_layer % pp != 0)
        return weft_error(WEFT_ECONFIG, "parallel.pp (%d) does not divide model.n_layer (%d): every pipeline "
                          "stage holds the same number of blocks", pp, c->n_layer);
    return 0;
}

/* --- the parameter table ------------------------------------------------ */

/* Parameters per model part: wte, wpe, ln_f (2) and NBLOCK per block. */
static int table_cap(int blocks) { return 4 + NBLOCK * blocks; }

static void add_param(weft_gpt *m, const char *name, weft_shard_spec shard, unsigned tied)
{
    unsigned flags = WEFT_TENSOR_TRAINABLE | (shard.ndim == 2 ? WEFT_TENSOR_DECAY : 0) | tied;
    int rc = weft_model_add_param(&m->base, table_cap(m->Ll), name, shard, flags);
    assert(rc == 0); /* the table was allocated for every parameter */
    (void)rc;
}

/* The spec of a tensor split over the TP group (whole when there is none). */
static weft_shard_spec tp_spec(const weft_gpt *m, int64_t d0, int64_t d1, int dim, int nblocks)
{
    if (m->part.tp_size == 1 || dim < 0)
        return weft_shard_whole(d0, d1);
    return weft_shard_split(d0, d1, dim, nblocks, m->part.tp_rank, m->part.tp_size);
}

static void add_block(weft_gpt *m, int l)
{
    int64_t C = m->cfg.n_embd;
    /* Column-parallel layers split their output rows (c_attn by q, k, v
     * blocks: each rank its heads of each), row-parallel ones their input
     * columns; biases of row-parallel layers and LayerNorms are whole. */
    const struct { int64_t d0, d1; int dim, nblocks; } spec[NBLOCK] = {
        {C, 0, -1, 1},     {C, 0, -1, 1},         {3 * C, C, 0, 3}, {3 * C, 0, 0, 3},
        {C, C, 1, 1},      {C, 0, -1, 1},         {C, 0, -1, 1},    {C, 0, -1, 1},
        {4 * C, C, 0, 1},  {4 * C, 0, 0, 1},      {C, 4 * C, 1, 1}, {C, 0, -1, 1},
    };
    for (int k = 0; k < NBLOCK; k++) {
        char name[64];
        snprintf(name, sizeof name, "h.%d.%s", l, block_names[k]);
        add_param(m, name, tp_spec(m, spec[k].d0, spec[k].d1, spec[k].dim, spec[k].nblocks), 0);
    }
}

/* LoRA: the table built so far becomes the frozen base, and the adapters
 * of each block's target linears, block by block, are the parameters. */
static int add_adapters(weft_gpt *m)
{
    const weft_gpt_config *c = &m->cfg;
    unsigned mask;
    WEFT_CHECK(weft_lora_parse_targets(c->lora.targets, "qkv", target_names, NTARGET, &mask));
    WEFT_CHECK(weft_model_freeze(&m->base));
    m->ad = malloc((size_t)(m->Ll ? m->Ll : 1) * NTARGET * sizeof *m->ad);
    if (!m->ad)
        return weft_error(WEFT_ENOMEM, "model: out of memory");
    m->hook_floor = 0; /* the tied embedding is frozen */
    size_t C = (size_t)c->n_embd, sides[NTARGET] = {4 * C, 2 * C, 5 * C, 5 * C}, per_block = 0;
    for (int l = 0; l < m->Ll; l++) {
        m->blk_off[l] = m->base.n;
        for (int k = 0; k < NTARGET; k++) {
            int i = -1;
            if (mask >> k & 1) {
                const weft_tensor *w = &m->base.frozen[m->i_blk + l * NBLOCK + target_param[k]];
                WEFT_CHECK(i = weft_lora_add(m->lora, &m->base, 2 * NTARGET * m->Ll, w, c->lora.rank));
            }
            m->ad[l * NTARGET + k] = i;
        }
    }
    m->head_off = m->base.n;
    for (int k = 0; k < NTARGET; k++)
        per_block += (mask >> k & 1) * sides[k] * (size_t)c->lora.rank;
    m->base.global_trainable = per_block * (size_t)c->n_layer;
    m->base.adapter = "lora";
    return 0;
}

/* ZeRO-3 (model.h): the units are the embedding (and, on a later stage, the
 * tied head's copy), each block and the head (ln_f). Not with adapters:
 * their parameters are not laid out by layer that way. */
static int set_units(weft_gpt *m)
{
    size_t *starts = malloc((size_t)(m->Ll + 1) * sizeof *starts);
    if (!starts)
        return weft_error(WEFT_ENOMEM, "model: out of memory");
    for (int l = 0; l < m->Ll; l++)
        starts[l] = m->blk_off[l];
    starts[m->Ll] = m->head_off;
    int rc = weft_model_set_units(&m->base, starts, m->Ll + 1);
    free(starts);
    return rc;
}

static int build_table(weft_gpt *m)
{
    const weft_gpt_config *c = &m->cfg;
    int64_t C = c->n_embd;
    m->i_wte = m->i_wpe = m->i_lnf = -1;
    if (m->has_embed || m->has_head) {
        m->i_wte = m->base.nparams;
        /* With stages, the first holds the embedding and the last a copy as
         * its LM head; their gradients are summed every step. */
        unsigned tied = m->part.pp_size > 1 ? WEFT_TENSOR_TIED | (m->has_embed ? 0 : WEFT_TENSOR_TIED_COPY) : 0;
        add_param(m, "wte", tp_spec(m, c->vocab, C, 0, 1), tied);
    }
    if (m->has_embed) {
        m->i_wpe = m->base.nparams;
        add_param(m, "wpe", weft_shard_whole(c->max_seq, C), 0);
    }
    m->i_blk = m->base.nparams;
    for (int l = m->l0; l < m->l0 + m->Ll; l++)
        add_block(m, l);
    if (m->has_head) {
        m->i_lnf = m->base.nparams;
        add_param(m, "ln_f.weight", weft_shard_whole(C, 0), 0);
        add_param(m, "ln_f.bias", weft_shard_whole(C, 0), 0);
    }
    /* With stages, the tied embedding's gradient is final only after the
     * first and last stage summed theirs, so backward never reports it. */
    if (c->n_layer > 0 && m->part.pp_size > 1 && m->i_wte >= 0)
        m->hook_floor = m->base.params[m->i_wte].offset + m->base.params[m->i_wte].numel;
    m->base.global_params = (size_t)c->vocab * C + (size_t)c->max_seq * C +
                       (size_t)c->n_layer * (12 * C * C + 13 * C) + 2 * (size_t)C;
    m->base.global_trainable = m->base.global_params;
    m->blk_off = malloc((size_t)(m->Ll ? m->Ll : 1) * sizeof *m->blk_off);
    if (!m->blk_off)
        return weft_error(WEFT_ENOMEM, "model: out of memory");
    for (int l = 0; l < m->Ll; l++)
        m->blk_off[l] = m->base.params[m->i_blk + l * NBLOCK].offset;
    m->head_off = m->has_head ? m->base.params[m->i_lnf].offset : m->base.n;
    return c->lora.rank > 0 ? add_adapters(m) : set_units(m);
}

/* --- activations -------------------------------------------------------- */

/* Carve one block's activation arrays from *p, advancing it. */
static void carve_block(block_acts *a, float **p, size_t BT, size_t C, size_t Cl, size_t att_floats)
{
    float *q = *p;
#define TAKE(field, n) (a->field = q, q += (n))
    TAKE(ln1, BT * C); TAKE(ln1_mean, BT); TAKE(ln1_rstd, BT);
    TAKE(qkv, BT * 3 * Cl); TAKE(atty, BT * Cl); TAKE(att_lse, att_floats); TAKE(attproj, BT * C);
    TAKE(residual2, BT * C); TAKE(ln2, BT * C); TAKE(ln2_mean, BT); TAKE(ln2_rstd, BT);
    TAKE(fch, BT * 4 * Cl); TAKE(fch_gelu, BT * 4 * Cl); TAKE(fcproj, BT * C); TAKE(residual3, BT * C);
#undef TAKE
    *p = q;
}

static size_t block_floats(size_t BT, size_t C, size_t Cl, size_t att_floats)
{
    return BT * C * 6 + BT * Cl * 12 + BT * 4 + att_floats; /* must match carve_block */
}

/* Forward activations of one slot, carved from *p. */
static void carve_slot(weft_gpt *m, slot_acts *s, float **p)
{
    size_t BT = (size_t)m->B * m->T, C = m->cfg.n_embd, att = (size_t)m->B * m->NHl * m->T;
    float *q = *p;
    s->encoded = q, q += BT * C;
    for (int l = 0; l < m->Ll; l++) {
        if (m->part.recompute)
            s->blk[l].residual3 = q, q += BT * C; /* the rest is the shared work block */
        else
            carve_block(&s->blk[l], &q, BT, C, m->Cl, att);
    }
    if (m->has_head) {
        s->lnf = q, q += BT * C;
        s->lnf_mean = q, q += BT;
        s->lnf_rstd = q, q += BT;
        s->logits = q, q += BT * m->Vl;
        s->losses = q, q += BT;
    }
    *p = q;
}

/* Floats of activations: one slot's (*slot), the work block recomputation
 * computes into (*work), and the activations' gradients (*dact: the region
 * backward zeroes, then the output's gradient). The one formula both
 * alloc_acts and the planner (weft_gpt_plan) use; carve_slot, carve_block
 * and alloc_acts must match it. */
static void act_floats(const weft_gpt *m, size_t *slot, size_t *work, size_t *dact)
{
    size_t BT = (size_t)m->B * m->T, C = m->cfg.n_embd, att = (size_t)m->B * m->NHl * m->T;
    size_t blk = block_floats(BT, C, m->Cl, att), dblk = block_floats(BT, C, m->Cl, 0);
    size_t L = (size_t)m->Ll;
    int rc = m->part.recompute && L > 0;
    *slot = BT * C + L * (rc ? BT * C : blk);
    if (m->has_head)
        *slot += BT * C + 2 * BT + BT * m->Vl + BT;
    *work = rc ? blk : 0;
    /* dencoded, the blocks' gradients (recompute: one shared block and the
     * two alternating residual gradients), dlnf; flash attention's backward
     * needs no (T, T) scratch */
    *dact = BT * C + (rc ? dblk + 2 * BT * C : L * dblk) + BT * C;
}

/* What the part holds (model.h's weft_model_mem), from act_floats and the
 * other per-slot and shared arrays of alloc_acts. */
static void mem_of(const weft_gpt *m, weft_model_mem *out)
{
    size_t BT = (size_t)m->B * m->T, slot, work, dact;
    act_floats(m, &slot, &work, &dact);
    *out = (weft_model_mem){
        .params = m->base.n, .frozen = m->base.frozen_n, .nslots = m->part.nslots,
        /* tokens and targets, log-sum-exp */
        .slot_bytes = slot * sizeof(float) + 2 * BT * sizeof(int32_t) + BT * sizeof(double) +
                      weft_lora_slot_bytes(m->lora),
        /* + the received output gradient, xent scratch, the split micro-batch */
        .shared_bytes = (work + dact + BT * m->cfg.n_embd) * sizeof(float) +
                        WEFT_TP_XENT_SCRATCH(BT) * sizeof(double) + 2 * BT * sizeof(int32_t),
    };
    if (m->cfg.lora.rank == 0) { /* the units set_units gives ZeRO-3 */
        weft_model_mem_units(out, m->blk_off, m->Ll, m->head_off, m->base.n);
        /* the tied head writes wte's gradient first; it is final last */
        if (m->has_head && m->i_wte >= 0)
            out->grad_early = m->base.params[m->i_wte].numel;
    }
}

/* The activations, their gradients, the slots' tokens and targets, the
 * log-sum-exps and the loss's scratch: carvings of the model's activation
 * arena on its device (weft_model_acts_new), sized from mem_of, the
 * planner's numbers. Only the split micro-batch (m->in, m->tgt) and
 * LoRA's arrays stay on the host. */
static int take_acts(weft_gpt *m, size_t BT, size_t C, size_t work)
{
    size_t ns = (size_t)m->part.nslots;
    weft_model *b = &m->base;
    WEFT_CHECK(weft_model_acts_new(b, ns * weft_lora_slot_bytes(m->lora) + 2 * BT * sizeof(int32_t), 5));
    WEFT_CHECK(weft_model_acts_take(b, m->slot_floats * ns * sizeof(float), (void **)&m->act_mem));
    WEFT_CHECK(weft_model_acts_take(b, (m->dact_floats + BT * C + work) * sizeof(float), (void **)&m->dact_mem));
    WEFT_CHECK(weft_model_acts_take(b, 2 * ns * BT * sizeof(int32_t), (void **)&m->tok_mem));
    WEFT_CHECK(weft_model_acts_take(b, WEFT_TP_XENT_SCRATCH(BT) * sizeof(double), (void **)&m->xent_scratch));
    return weft_model_acts_take(b, ns * BT * sizeof(double), (void **)&m->lse_mem);
}

static int alloc_acts(weft_gpt *m)
{
    size_t BT = (size_t)m->B * m->T, C = m->cfg.n_embd, ns = (size_t)m->part.nslots;
    size_t att = (size_t)m->B * m->NHl * m->T, work;
    int rc = m->part.recompute && m->Ll > 0;
    /* Gradients of activations: the same blocks, without the attention
     * rows' log-sum-exp (no gradient of their own); the
     * output's gradient (received, or from the head) sits at the end, out of
     * the region backward zeroes. The work block sits after it. */
    act_floats(m, &m->slot_floats, &work, &m->dact_floats);
    mem_of(m, &m->base.mem);
    WEFT_CHECK(take_acts(m, BT, C, work));
    m->slot = calloc(ns, sizeof *m->slot);
    m->dblk = calloc(rc ? 1 : (size_t)m->Ll ? (size_t)m->Ll : 1, sizeof *m->dblk);
    for (size_t i = 0; m->slot && i < ns; i++)
        m->slot[i].blk = calloc((size_t)m->Ll, sizeof(block_acts));
    int ok = m->slot && m->dblk;
    for (size_t i = 0; ok && i < ns; i++)
        ok = m->slot[i].blk != NULL;
    if (!ok)
        return weft_error(WEFT_ENOMEM, "model: the activations' index for B=%d T=%d x %zu slots: out of memory",
                          m->B, m->T, ns);
    float *p = m->act_mem;
    for (size_t i = 0; i < ns; i++) {
        float *q = p + i * m->slot_floats;
        carve_slot(m, &m->slot[i], &q);
        m->slot[i].tokens = m->tok_mem + 2 * i * BT;
        m->slot[i].targets = m->slot[i].tokens + BT;
        m->slot[i].lse = m->lse_mem + i * BT;
    }
    p = m->dact_mem;
    m->dencoded = p, p += BT * C;
    for (int l = 0; l < (rc ? 1 : m->Ll); l++)
        carve_block(&m->dblk[l], &p, BT, C, m->Cl, 0);
    if (rc)
        m->dres[0] = p, m->dres[1] = p + BT * C, p += 2 * BT * C;
    m->dlnf = p, p += BT * C;
    m->doutput = p; /* == dact_mem + dact_floats */
    p += BT * C;
    if (rc)
        carve_block(&m->work, &p, BT, C, m->Cl, att);
    if (m->Ll > 0 && !rc)
        m->dblk[m->Ll - 1].residual3 = m->doutput;
    return weft_ops_status(m->base.kops);
}

static void describe(weft_gpt *m); /* the interface's fields, at the end of this file */

static int part_check(const weft_gpt_config *c, const weft_gpt_part *p)
{
    WEFT_CHECK(weft_model_part_check(p));
    return weft_gpt_layout_check(c, p->tp_size, p->pp_size);
}

/* The part's shape and parameter table (and adapters), no buffers: what
 * weft_gpt_new_part allocates for, and all weft_gpt_plan needs. */
static int new_table(const weft_gpt_config *cfg, const weft_gpt_part *part, int B, int T, weft_gpt **out)
{
    weft_gpt *m = calloc(1, sizeof *m);
    if (!m)
        return weft_error(WEFT_ENOMEM, "model: out of memory");
    m->cfg = *cfg;
    m->part = *part;
    m->B = B;
    m->T = T;
    m->Ll = cfg->n_layer / part->pp_size;
    m->l0 = part->pp_rank * m->Ll;
    m->Cl = cfg->n_embd / part->tp_size;
    m->NHl = cfg->n_head / part->tp_size;
    m->Vl = cfg->vocab / part->tp_size;
    m->v0 = part->tp_rank * m->Vl;
    m->has_embed = part->pp_rank == 0;
    m->has_head = part->pp_rank == part->pp_size - 1;
    *out = m;
    m->base.params = calloc((size_t)table_cap(m->Ll), sizeof *m->base.params);
    if (!m->base.params)
        return weft_error(WEFT_ENOMEM, "model: out of memory");
    int rc = cfg->lora.rank > 0 ? weft_lora_new(&cfg->lora, B * T, part->nslots, part->tp, &m->lora) : 0;
    return rc ? rc : build_table(m);
}

int weft_gpt_plan(const weft_gpt_config *cfg, const weft_gpt_part *part, int B, int T, weft_model_mem *out)
{
    WEFT_CHECK(weft_gpt_config_check(cfg));
    WEFT_CHECK(weft_gpt_layout_check(cfg, part->tp_size, part->pp_size)); /* no communicator to check */
    weft_gpt *m = NULL;
    int rc = new_table(cfg, part, B, T, &m);
    if (rc == 0)
        mem_of(m, out);
    weft_gpt_free(m);
    return rc;
}

int weft_gpt_new_part(const weft_gpt_config *cfg, const weft_gpt_part *part, int B, int T, weft_gpt **out)
{
    WEFT_CHECK(weft_gpt_config_check(cfg));
    WEFT_CHECK(part_check(cfg, part));
    if (B < 1 || T < 1 || T > cfg->max_seq)
        return weft_error(WEFT_ECONFIG, "model: sequence length %d must be in [1, model.context = %d]", T,
                          cfg->max_seq);
    weft_gpt *m = NULL;
    int rc = new_table(cfg, part, B, T, &m);
    if (!m)
        return rc;
    describe(m);
    m->in = malloc((size_t)B * T * sizeof(int32_t));
    m->tgt = malloc((size_t)B * T * sizeof(int32_t));
    rc = rc ? rc : weft_model_alloc(&m->base);
    if (rc == 0 && m->lora) {
        weft_lora_set_ops(m->lora, m->base.kops);
        rc = weft_lora_alloc(m->lora);
    }
    if (rc == 0)
        rc = m->in && m->tgt ? alloc_acts(m) : weft_error(WEFT_ENOMEM, "model: out of memory");
    if (rc) {
        weft_gpt_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int weft_gpt_new(const weft_gpt_config *cfg, int B, int T, weft_gpt **out)
{
    weft_gpt_part whole = {.tp_size = 1, .pp_size = 1, .nslots = 1};
    return weft_gpt_new_part(cfg, &whole, B, T, out);
}

void weft_gpt_free(weft_gpt *m)
{
    if (!m)
        return;
    for (int i = 0; m->slot && i < m->part.nslots; i++)
        free(m->slot[i].blk);
    free(m->slot);
    weft_model_release(&m->base);
    free(m->in);
    free(m->tgt);
    free(m->dblk); /* the activations themselves are the model's arena, freed with it */
    cache_free(m->cache);
    free(m->blk_off);
    free(m->ad);
    weft_lora_free(m->lora);
    free(m);
}

/* --- initialisation ------------------------------------------------------ */

/* Values of the whole model's tensor g (in the single-rank order, from one
 * random stream), so that every layout starts from the same weights. */
static void init_values(void *arg, const weft_tensor *g, weft_rng *rng, float *w)
{
    double proj_std = *(const double *)arg;
    if (weft_lora_fill(g, rng, w))
        return;
    int is_ln_weight = strstr(g->name, "ln_") && strstr(g->name, ".weight");
    int is_proj = strstr(g->name, "c_proj.weight") != NULL;
    for (size_t j = 0; j < g->numel; j++) {
        if (g->ndim == 2)
            w[j] = (float)(weft_rng_normal(rng) * (is_proj ? proj_std : 0.02));
        else
            w[j] = is_ln_weight ? 1.0f : 0.0f;
    }
}

void weft_gpt_init(weft_gpt *m, uint64_t seed)
{
    /* The whole model's table (no buffers), from which every part takes its
     * pieces (weft_model_init_from_whole). */
    weft_gpt w = {.cfg = m->cfg, .part = {.tp_size = 1, .pp_size = 1, .nslots = 1}, .Ll = m->cfg.n_layer,
                  .has_embed = 1, .has_head = 1};
    w.base.params = calloc((size_t)table_cap(w.Ll), sizeof *w.base.params);
    double proj_std = 0.02 / sqrt(2.0 * m->cfg.n_layer);
    int rc = WEFT_ENOMEM;
    if (w.base.params && build_table(&w) == 0)
        rc = weft_model_init_from_whole(&m->base, &w.base, seed, init_values, &proj_std);
    if (rc) /* only at start, and the caller's later allocations fail too */
        WEFT_ERROR("model: out of memory initialising the parameters");
    weft_model_release(&w.base);
    free(w.blk_off);
    free(w.ad);
}

const weft_gpt_config *weft_gpt_cfg(const weft_gpt *m) { return &m->cfg; }
int weft_gpt_nparams(const weft_gpt *m) { return m->base.nparams; }
const weft_tensor *weft_gpt_param_at(const weft_gpt *m, int i) { return &m->base.params[i]; }
size_t weft_gpt_num_params(const weft_gpt *m) { return m->base.n; }
size_t weft_gpt_global_params(const weft_gpt *m) { return m->base.global_params; }
const weft_gpt_part *weft_gpt_part_of(const weft_gpt *m) { return &m->part; }
float *weft_gpt_params(weft_gpt *m) { return m->base.param_data; }
float *weft_gpt_grads(weft_gpt *m) { return m->base.grad_data; }
const float *weft_gpt_logits(const weft_gpt *m) { return m->slot[0].logits; }
float *weft_gpt_stage_input(weft_gpt *m, int slot) { return m->slot[slot].encoded; }
float *weft_gpt_stage_output(weft_gpt *m, int slot)
{
    return m->Ll ? m->slot[slot].blk[m->Ll - 1].residual3 : m->slot[slot].encoded;
}
float *weft_gpt_stage_doutput(weft_gpt *m) { return m->doutput; }
float *weft_gpt_stage_dinput(weft_gpt *m) { return m->dencoded; }
size_t weft_gpt_slot_bytes(const weft_gpt *m) { return m->slot_floats * sizeof(float) + weft_lora_slot_bytes(m->lora); }

/* --- forward ------------------------------------------------------------- */

/* GPT-2's own weights and their gradients: the parameters, or with LoRA the
 * frozen table, which has no gradients (NULL: the kernels skip them). */
static const weft_tensor *wtab(const weft_gpt *m) { return m->base.nfrozen ? m->base.frozen : m->base.params; }
static float *weights(const weft_gpt *m) { return m->base.nfrozen ? m->base.frozen_data : m->base.param_data; }
static float *wgrads(const weft_gpt *m) { return m->base.nfrozen ? NULL : m->base.grad_data; }

/* Pointer to weight k of local block l in buffer base (weights or their
 * gradients; NULL stays NULL). */
static float *bp(const weft_gpt *m, float *base, int l, int k)
{
    return base ? base + wtab(m)[m->i_blk + l * NBLOCK + k].offset : NULL;
}

static float *pw(const weft_gpt *m, float *base, int i) { return base ? base + wtab(m)[i].offset : NULL; }

/* The adapter of target k of block l, if any: forward and backward
 * (model/lora.h), on the slot being computed. */
static int lora_forward(weft_gpt *m, int l, int k, const float *x, float *y, int N)
{
    int i = m->ad ? m->ad[l * NTARGET + k] : -1;
    return i < 0 ? 0 : weft_lora_forward(m->lora, i, m->slot_now, m->base.param_data, x, y, N);
}

static int lora_backward(weft_gpt *m, int l, int k, const float *x, const float *dy, float *dx, int N)
{
    int i = m->ad ? m->ad[l * NTARGET + k] : -1;
    return i < 0 ? 0 : weft_lora_backward(m->lora, i, m->slot_now, m->base.param_data, m->base.grad_data, x, dy,
                                          dx, N);
}

static int block_forward(weft_gpt *m, block_acts *a, int l, const float *x, int b, int t)
{
    weft_ops *ops = m->base.kops;
    int BT = b * t, C = m->cfg.n_embd, Cl = m->Cl;
    float *P = weights(m);
    weft_comm *tp = m->part.tp;
    ops->layernorm_forward(ops, a->ln1, a->ln1_mean, a->ln1_rstd, x, bp(m, P, l, LN1W), bp(m, P, l, LN1B), BT, C);
    ops->matmul_forward(ops, a->qkv, a->ln1, bp(m, P, l, QKVW), bp(m, P, l, QKVB), BT, C, 3 * Cl); /* column */
    weft_model_progress(&m->base); /* ZeRO-3: the prefetched gather moves (model.h) */
    WEFT_CHECK(lora_forward(m, l, T_QKV, a->ln1, a->qkv, BT));
    ops->attention_flash_forward(ops, a->atty, a->att_lse, a->qkv, b, t, Cl, m->NHl);
    weft_model_progress(&m->base);
    WEFT_CHECK(weft_tp_row_linear_forward(ops, a->attproj, a->atty, bp(m, P, l, ATTPROJW), bp(m, P, l, ATTPROJB), BT,
                                          Cl, C, tp));
    WEFT_CHECK(lora_forward(m, l, T_PROJ, a->atty, a->attproj, BT));
    weft_model_progress(&m->base);
    ops->layernorm_residual_forward(ops, a->residual2, a->ln2, a->ln2_mean, a->ln2_rstd, x, a->attproj,
                                    bp(m, P, l, LN2W), bp(m, P, l, LN2B), BT, C);
    ops->matmul_forward(ops, a->fch, a->ln2, bp(m, P, l, FCW), bp(m, P, l, FCB), BT, C, 4 * Cl); /* column */
    WEFT_CHECK(lora_forward(m, l, T_FC, a->ln2, a->fch, BT));
    weft_model_progress(&m->base);
    ops->gelu_forward(ops, a->fch_gelu, a->fch, (size_t)BT * 4 * Cl);
    WEFT_CHECK(weft_tp_row_linear_forward(ops, a->fcproj, a->fch_gelu, bp(m, P, l, FCPROJW), bp(m, P, l, FCPROJB), BT,
                                          4 * Cl, C, tp));
    WEFT_CHECK(lora_forward(m, l, T_FCPROJ, a->fch_gelu, a->fcproj, BT));
    ops->residual_forward(ops, a->residual3, a->residual2, a->fcproj, (size_t)BT * C);
    return 0;
}

/* ln_f, the tied LM head (this rank's vocabulary columns) and the loss. */
static int head_forward(weft_gpt *m, slot_acts *s, const float *x, const int32_t *targets, double *loss)
{
    weft_ops *ops = m->base.kops;
    int BT = s->b * s->t, C = m->cfg.n_embd;
    float *P = weights(m);
    ops->layernorm_forward(ops, s->lnf, s->lnf_mean, s->lnf_rstd, x, pw(m, P, m->i_lnf), pw(m, P, m->i_lnf + 1), BT, C);
    ops->matmul_forward(ops, s->logits, s->lnf, pw(m, P, m->i_wte), NULL, BT, C, m->Vl);
    s->have_targets = targets != NULL;
    if (!targets)
        return 0;
    /* the slot's copy (the device's: backward's kernels read it); the
     * count of valid targets from the caller's, on the host */
    WEFT_CHECK(weft_device_copy(ops->dev, s->targets, targets, (size_t)BT * sizeof(int32_t), WEFT_COPY_H2D));
    s->n_valid = 0;
    for (int i = 0; i < BT; i++)
        s->n_valid += targets[i] >= 0;
    return weft_tp_xent_forward(ops, s->losses, s->lse, loss, s->logits, s->targets, BT, m->Vl, m->v0, m->xent_scratch,
                                m->part.tp);
}

/* ZeRO-3: the head's parameters are ln_f (its own unit) and the tied
 * embedding (the first unit, used out of order). begin 1: bring both; 0:
 * done with both. */
static int head_use(weft_gpt *m, int begin, int dir)
{
    if (!m->base.use.begin) /* no ZeRO-3 (and with adapters i_wte is no index into params) */
        return 0;
    if (!begin) {
        weft_model_use_end(&m->base, m->head_off);
        weft_model_use_end(&m->base, m->base.params[m->i_wte].offset);
        return 0;
    }
    WEFT_CHECK(weft_model_use_begin(&m->base, m->head_off, dir));
    return weft_model_use_begin(&m->base, m->base.params[m->i_wte].offset, WEFT_USE_ALONE);
}

int weft_gpt_forward_slot(weft_gpt *m, int slot, const int32_t *tokens, const int32_t *targets, int b, int t,
                          double *loss)
{
    weft_ops *ops = m->base.kops;
    assert(slot >= 0 && slot < m->part.nslots && b <= m->B && t <= m->T);
    slot_acts *s = &m->slot[slot];
    int C = m->cfg.n_embd;
    float *P = weights(m);
    *loss = 0;
    m->slot_now = slot;
    s->b = b;
    s->t = t;
    int64_t t0 = weft_trace_begin();
    if (m->has_embed) {
        /* uploaded once: the embedding's forward and backward read the slot's copy */
        WEFT_CHECK(weft_device_copy(ops->dev, s->tokens, tokens, (size_t)b * t * sizeof(int32_t), WEFT_COPY_H2D));
        WEFT_CHECK(weft_model_use_begin(&m->base, 0, WEFT_USE_FORWARD));
        WEFT_CHECK(weft_tp_embedding_forward(ops, s->encoded, s->tokens, pw(m, P, m->i_wte), m->v0, m->Vl,
                                             pw(m, P, m->i_wpe), b, t, C, m->part.tp));
        weft_model_use_end(&m->base, 0);
        weft_trace_end("embed.forward", "forward", WEFT_TRACE_COMPUTE, -1, t0);
    }
    const float *x = s->encoded;
    for (int l = 0; l < m->Ll; l++) {
        /* Recomputation: the work block, its output kept in the slot. */
        block_acts a = m->part.recompute ? m->work : s->blk[l];
        a.residual3 = s->blk[l].residual3;
        t0 = weft_trace_begin();
        WEFT_CHECK(weft_model_use_begin(&m->base, m->blk_off[l], WEFT_USE_FORWARD));
        WEFT_CHECK(block_forward(m, &a, l, x, b, t));
        weft_model_use_end(&m->base, m->blk_off[l]);
        weft_trace_end("h.%d.forward", "forward", WEFT_TRACE_COMPUTE, m->l0 + l, t0);
        x = s->blk[l].residual3;
    }
    s->have_targets = 0;
    if (!m->has_head)
        return weft_ops_status(m->base.kops);
    t0 = weft_trace_begin();
    WEFT_CHECK(head_use(m, 1, WEFT_USE_FORWARD));
    WEFT_CHECK(head_forward(m, s, x, targets, loss));
    head_use(m, 0, 0);
    weft_trace_end("head.forward", "forward", WEFT_TRACE_COMPUTE, -1, t0);
    /* the ops' sticky error, once per forward (kernels/ops.h) */
    return weft_ops_status(m->base.kops);
}

int weft_gpt_forward(weft_gpt *m, const int32_t *tokens, const int32_t *targets, int b, int t, double *loss)
{
    if (m->part.pp_size > 1)
        return weft_error(WEFT_EINVAL, "weft_gpt_forward needs the model's one stage (pp %d): use the model "
                          "interface's forward", m->part.pp_size);
    weft_lora_begin(m->lora, 0, 0, 0, 0); /* not a training step: no dropout */
    return weft_gpt_forward_slot(m, 0, tokens, targets, b, t, loss);
}

void weft_gpt_zero_grad(weft_gpt *m) { m->base.kops->zero(m->base.kops, m->base.grad_data, m->base.n); }

/* --- backward ------------------------------------------------------------ */

/* Block l's backward from its activations a; d holds the gradients of its
 * activations, d->residual3 the output's (read), the rest zeroed; dx (the
 * input's gradient) is accumulated into. */
static int block_backward(weft_gpt *m, const block_acts *a, block_acts *d, int l, const float *x, float *dx, int b,
                          int t)
{
    weft_ops *ops = m->base.kops;
    int BT = b * t, C = m->cfg.n_embd, Cl = m->Cl;
    size_t n = (size_t)BT * C;
    float *P = weights(m), *G = wgrads(m);
    weft_comm *tp = m->part.tp;
    /* The output's gradient is c_proj's output gradient as it is (the residual
     * add passes it through): read in place, not copied. Row-parallel c_proj:
     * the output gradient is whole; no communication. */
    ops->matmul_backward(ops, d->fch_gelu, bp(m, G, l, FCPROJW), bp(m, G, l, FCPROJB), d->residual3, a->fch_gelu,
                         bp(m, P, l, FCPROJW), BT, 4 * Cl, C);
    WEFT_CHECK(lora_backward(m, l, T_FCPROJ, a->fch_gelu, d->residual3, d->fch_gelu, BT));
    weft_model_progress(&m->base); /* ZeRO-3 (model.h) */
    ops->gelu_backward(ops, d->fch, a->fch, d->fch_gelu, (size_t)BT * 4 * Cl);
    /* Column-parallel c_fc: each rank's input gradient is a partial sum. */
    ops->matmul_backward(ops, d->ln2, bp(m, G, l, FCW), bp(m, G, l, FCB), d->fch, a->ln2, bp(m, P, l, FCW), BT, C,
                         4 * Cl);
    WEFT_CHECK(lora_backward(m, l, T_FC, a->ln2, d->fch, d->ln2, BT));
    weft_model_progress(&m->base);
    WEFT_CHECK(weft_tp_reduce_grad(d->ln2, n, tp));
    /* residual2's gradient (the output's plus ln_2's) into the input's and
     * the attention projection's, in one sweep */
    ops->layernorm_residual_backward(ops, dx, d->attproj, bp(m, G, l, LN2W), bp(m, G, l, LN2B), d->ln2, d->residual3,
                                     a->residual2, bp(m, P, l, LN2W), a->ln2_mean, a->ln2_rstd, BT, C);
    ops->matmul_backward(ops, d->atty, bp(m, G, l, ATTPROJW), bp(m, G, l, ATTPROJB), d->attproj, a->atty,
                         bp(m, P, l, ATTPROJW), BT, Cl, C);
    WEFT_CHECK(lora_backward(m, l, T_PROJ, a->atty, d->attproj, d->atty, BT));
    weft_model_progress(&m->base);
    ops->attention_flash_backward(ops, d->qkv, d->atty, a->qkv, a->atty, a->att_lse, b, t, Cl, m->NHl);
    weft_model_progress(&m->base);
    ops->matmul_backward(ops, d->ln1, bp(m, G, l, QKVW), bp(m, G, l, QKVB), d->qkv, a->ln1, bp(m, P, l, QKVW), BT, C,
                         3 * Cl);
    WEFT_CHECK(lora_backward(m, l, T_QKV, a->ln1, d->qkv, d->ln1, BT));
    WEFT_CHECK(weft_tp_reduce_grad(d->ln1, n, tp));
    ops->layernorm_backward(ops, dx, bp(m, G, l, LN1W), bp(m, G, l, LN1B), d->ln1, x, bp(m, P, l, LN1W), a->ln1_mean,
                            a->ln1_rstd, BT, C);
    return 0;
}

static int head_backward(weft_gpt *m, slot_acts *s, double loss_scale)
{
    weft_ops *ops = m->base.kops;
    int BT = s->b * s->t, C = m->cfg.n_embd;
    float *P = weights(m), *G = wgrads(m);
    const float *x = m->Ll ? s->blk[m->Ll - 1].residual3 : s->encoded;
    weft_tp_xent_head_backward(ops, m->dlnf, pw(m, G, m->i_wte), s->logits, s->lse, s->targets, s->lnf,
                               pw(m, P, m->i_wte), BT, C, m->Vl, m->v0, loss_scale / (s->n_valid ? s->n_valid : 1));
    WEFT_CHECK(weft_tp_reduce_grad(m->dlnf, (size_t)BT * C, m->part.tp));
    ops->layernorm_backward(ops, m->doutput, pw(m, G, m->i_lnf), pw(m, G, m->i_lnf + 1), m->dlnf, x, pw(m, P, m->i_lnf),
                            s->lnf_mean, s->lnf_rstd, BT, C);
    return 0;
}

/* What block l's backward reads and writes: without recomputation the
 * slot's activations and block l's own gradients (zeroed with the rest at
 * the start of backward); with it, the block computed again into the work
 * block, and the shared gradient block zeroed, reading the output's
 * gradient from the block above and writing the input's into the other
 * alternating buffer. */
static int backward_acts(weft_gpt *m, slot_acts *s, int l, const float *x, block_acts *a, block_acts *d, float **dx)
{
    if (!m->part.recompute) {
        *a = s->blk[l];
        *d = m->dblk[l];
        *dx = l ? m->dblk[l - 1].residual3 : m->dencoded;
        return 0;
    }
    size_t BT = (size_t)s->b * s->t, C = m->cfg.n_embd;
    *a = m->work; /* its residual3 is scratch: backward does not read the output */
    int64_t t0 = weft_trace_begin();
    WEFT_CHECK(block_forward(m, a, l, x, s->b, s->t));
    weft_trace_end("h.%d.recompute", "backward", WEFT_TRACE_COMPUTE, m->l0 + l, t0);
    m->base.kops->zero(m->base.kops, m->dblk[0].ln1, block_floats((size_t)m->B * m->T, C, m->Cl, 0));
    *d = m->dblk[0];
    d->residual3 = l == m->Ll - 1 ? m->doutput : m->dres[(l + 1) & 1];
    *dx = l ? m->dres[l & 1] : m->dencoded;
    m->base.kops->zero(m->base.kops, *dx, BT * C);
    return 0;
}

static void report(weft_gpt *m, weft_grad_hook hook, void *arg, size_t offset)
{
    if (hook)
        hook(arg, offset > m->hook_floor ? offset : m->hook_floor);
}

int weft_gpt_backward_slot(weft_gpt *m, int slot, double loss_scale, weft_grad_hook hook, void *arg)
{
    slot_acts *s = &m->slot[slot];
    int b = s->b, t = s->t;
    assert(!m->has_head || s->have_targets); /* backward of a forward without targets is a bug */
    m->slot_now = slot;
    /* Kernels accumulate into activation gradients: start them at zero (all
     * but the output's gradient, which a later stage sent). */
    weft_ops *ops = m->base.kops;
    ops->zero(ops, m->dact_mem, m->dact_floats);
    int64_t t0 = weft_trace_begin();
    if (m->has_head) {
        ops->zero(ops, m->doutput, (size_t)b * t * m->cfg.n_embd);
        WEFT_CHECK(head_use(m, 1, WEFT_USE_BACKWARD));
        WEFT_CHECK(head_backward(m, s, loss_scale));
        head_use(m, 0, 0);
        weft_trace_end("head.backward", "backward", WEFT_TRACE_COMPUTE, -1, t0);
        report(m, hook, arg, m->head_off);
    }
    for (int l = m->Ll - 1; l >= 0; l--) {
        const float *x = l ? s->blk[l - 1].residual3 : s->encoded;
        block_acts a, d;
        float *dx;
        /* ZeRO-3: the block's weights are gathered before the recomputation,
         * which reads them too */
        WEFT_CHECK(weft_model_use_begin(&m->base, m->blk_off[l], WEFT_USE_BACKWARD));
        WEFT_CHECK(backward_acts(m, s, l, x, &a, &d, &dx));
        t0 = weft_trace_begin();
        WEFT_CHECK(block_backward(m, &a, &d, l, x, dx, b, t));
        weft_model_use_end(&m->base, m->blk_off[l]);
        weft_trace_end("h.%d.backward", "backward", WEFT_TRACE_COMPUTE, m->l0 + l, t0);
        report(m, hook, arg, m->blk_off[l]);
    }
    if (m->has_embed && wgrads(m)) {
        t0 = weft_trace_begin();
        weft_tp_embedding_backward(m->base.kops, pw(m, m->base.grad_data, m->i_wte), pw(m, m->base.grad_data, m->i_wpe),
                                   m->dencoded, s->tokens, m->v0, m->Vl, b, t, m->cfg.n_embd, m->part.tp);
        weft_trace_end("embed.backward", "backward", WEFT_TRACE_COMPUTE, -1, t0);
    }
    report(m, hook, arg, 0);
    return weft_ops_status(m->base.kops); /* once per backward (kernels/ops.h) */
}

int weft_gpt_backward(weft_gpt *m, double loss_scale, weft_grad_hook hook, void *arg)
{
    return weft_gpt_backward_slot(m, 0, loss_scale, hook, arg);
}

double weft_gpt_flops_per_token(const weft_gpt *m, int t)
{
    const weft_gpt_config *c = &m->cfg;
    double N = (double)m->base.global_params - (double)c->max_seq * c->n_embd; /* positions do no matmul */
    return 6.0 * N + 12.0 * c->n_layer * (double)t * c->n_embd;
}

/* --- decoding with a key/value cache (ops->decode) ------------------------ */

static int cache_alloc(weft_gpt *m)
{
    size_t L = (size_t)m->cfg.n_layer, T = (size_t)m->cfg.max_seq, C = (size_t)m->cfg.n_embd, R = CHUNK;
    size_t n = 2 * L * T * C + R * C * 5 + R * 3 * C + R * 8 * C + 2 * R + WEFT_ATT_DECODE_ROWS * T +
               (size_t)m->cfg.vocab;
    gpt_cache *c = calloc(1, sizeof *c);
    float *p = c ? malloc(n * sizeof(float)) : NULL;
    if (!p) {
        free(c);
        return weft_error(WEFT_ENOMEM, "model: %.1f MiB for the key/value cache of %zu positions: out of memory",
                          (double)n * 4.0 / (1 << 20), T);
    }
    c->mem = p;
#define TAKE(field, count) (c->field = p, p += (count))
    TAKE(k, L * T * C); TAKE(v, L * T * C);
    TAKE(x, R * C); TAKE(ln, R * C); TAKE(q, R * C); TAKE(atty, R * C); TAKE(tmp, R * C);
    TAKE(qkv, R * 3 * C); TAKE(fch, R * 4 * C); TAKE(fch_gelu, R * 4 * C);
    TAKE(mean, R); TAKE(rstd, R); TAKE(att, WEFT_ATT_DECODE_ROWS * T); TAKE(logits, (size_t)m->cfg.vocab);
#undef TAKE
    assert((size_t)(p - c->mem) == n);
    m->cache = c;
    return 0;
}

/* Block l on the chunk's n rows at positions p..p+n-1: as block_forward,
 * but attention reads the keys and values of every earlier position from
 * the cache, after this chunk's are written there. */
static void decode_block(weft_gpt *m, gpt_cache *c, int l, int n, int p)
{
    weft_ops *ops = m->base.kops;
    int C = m->cfg.n_embd, NH = m->cfg.n_head;
    size_t layer = (size_t)l * m->cfg.max_seq * C;
    float *P = weights(m), *kc = c->k + layer, *vc = c->v + layer;
    ops->layernorm_forward(ops, c->ln, c->mean, c->rstd, c->x, bp(m, P, l, LN1W), bp(m, P, l, LN1B), n, C);
    ops->matmul_forward(ops, c->qkv, c->ln, bp(m, P, l, QKVW), bp(m, P, l, QKVB), n, C, 3 * C);
    for (int i = 0; i < n; i++) {
        const float *row = c->qkv + (size_t)i * 3 * C;
        ops->copy(ops, c->q + (size_t)i * C, row, (size_t)C);
        ops->copy(ops, kc + (size_t)(p + i) * C, row + C, (size_t)C);
        ops->copy(ops, vc + (size_t)(p + i) * C, row + 2 * C, (size_t)C);
    }
    ops->attention_decode(ops, c->atty, c->att, c->q, kc, vc, n, p, NH, NH, C / NH);
    ops->matmul_forward(ops, c->tmp, c->atty, bp(m, P, l, ATTPROJW), bp(m, P, l, ATTPROJB), n, C, C);
    ops->residual_forward(ops, c->x, c->x, c->tmp, (size_t)n * C);
    ops->layernorm_forward(ops, c->ln, c->mean, c->rstd, c->x, bp(m, P, l, LN2W), bp(m, P, l, LN2B), n, C);
    ops->matmul_forward(ops, c->fch, c->ln, bp(m, P, l, FCW), bp(m, P, l, FCB), n, C, 4 * C);
    ops->gelu_forward(ops, c->fch_gelu, c->fch, (size_t)n * 4 * C);
    ops->matmul_forward(ops, c->tmp, c->fch_gelu, bp(m, P, l, FCPROJW), bp(m, P, l, FCPROJB), n, 4 * C, C);
    ops->residual_forward(ops, c->x, c->x, c->tmp, (size_t)n * C);
}

/* n <= CHUNK tokens at positions p..p+n-1; with_logits: the last one's. */
static void decode_chunk(weft_gpt *m, const int32_t *tokens, int n, int p, int with_logits)
{
    weft_ops *ops = m->base.kops;
    gpt_cache *c = m->cache;
    int C = m->cfg.n_embd;
    float *P = weights(m);
    ops->embedding_forward(ops, c->x, tokens, pw(m, P, m->i_wte), pw(m, P, m->i_wpe) + (size_t)p * C, 1, n, C);
    for (int l = 0; l < m->cfg.n_layer; l++)
        decode_block(m, c, l, n, p);
    c->pos = p + n;
    if (!with_logits)
        return;
    ops->layernorm_forward(ops, c->ln, c->mean, c->rstd, c->x + (size_t)(n - 1) * C, pw(m, P, m->i_lnf),
                           pw(m, P, m->i_lnf + 1), 1, C);
    ops->matmul_forward(ops, c->logits, c->ln, pw(m, P, m->i_wte), NULL, 1, C, m->cfg.vocab);
}

/* --- the model interface (model/model.h) ----------------------------------- */

static weft_gpt *gpt_of(weft_model *m) { return (weft_gpt *)m; }

/* Micro-batch mb of the step's batch (weft_model_split_windows). */
static int iface_forward(weft_model *mm, int slot, const void *batch, int mb, double *loss)
{
    weft_gpt *m = gpt_of(mm);
    weft_model_split_windows(batch, mb, m->B, m->T, m->in, m->tgt);
    weft_lora_begin(m->lora, slot, mm->training, mm->step, mb);
    return weft_gpt_forward_slot(m, slot, m->in, m->tgt, m->B, m->T, loss);
}

static int iface_backward(weft_model *m, int slot, double loss_scale, weft_grad_hook hook, void *arg)
{
    return weft_gpt_backward_slot(gpt_of(m), slot, loss_scale, hook, arg);
}

static float *iface_input(weft_model *m, int slot) { return weft_gpt_stage_input(gpt_of(m), slot); }
static float *iface_output(weft_model *m, int slot) { return weft_gpt_stage_output(gpt_of(m), slot); }
static float *iface_doutput(weft_model *m) { return weft_gpt_stage_doutput(gpt_of(m)); }
static float *iface_dinput(weft_model *m) { return weft_gpt_stage_dinput(gpt_of(m)); }
static int iface_logits(weft_model *mm, const int32_t *tokens, int b, int t, const float **out)
{
    weft_gpt *m = gpt_of(mm);
    double unused;
    WEFT_CHECK(weft_gpt_forward_slot(m, 0, tokens, NULL, b, t, &unused));
    *out = m->slot[0].logits;
    return 0;
}

static int iface_decode(weft_model *mm, const int32_t *tokens, int n, int pos0, const float **out)
{
    weft_gpt *m = gpt_of(mm);
    WEFT_CHECK(weft_model_decode_check(m->part.tp_size, m->part.pp_size, m->cfg.vocab, m->cfg.max_seq,
                                       m->cache ? m->cache->pos : 0, tokens, n, pos0));
    if (m->lora) /* decoding knows no adapters: generate from the merged checkpoint */
        return weft_error(WEFT_EINVAL, "model: decoding a model with LoRA adapters: fold them into the base "
                          "first (weft-ckpt merge) and decode the merged checkpoint");
    if (!m->cache)
        WEFT_CHECK(cache_alloc(m));
    for (int i = 0; i < n; i += CHUNK)
        decode_chunk(m, tokens + i, n - i < CHUNK ? n - i : CHUNK, pos0 + i, i + CHUNK >= n);
    *out = m->cache->logits;
    return weft_ops_status(m->base.kops);
}

static void iface_free(weft_model *m) { weft_gpt_free(gpt_of(m)); }

static const weft_model_ops gpt_ops = {
    .family = "gpt2",
    .forward = iface_forward,
    .backward = iface_backward,
    .stage_input = iface_input,
    .stage_output = iface_output,
    .stage_doutput = iface_doutput,
    .stage_dinput = iface_dinput,
    .logits = iface_logits,
    .decode = iface_decode,
    .free = iface_free,
};

static void describe(weft_gpt *m)
{
    const weft_gpt_config *c = &m->cfg;
    m->base.ops = &gpt_ops;
    m->base.stage_floats = (size_t)m->B * m->T * c->n_embd;
    m->base.tokens_per_sample = m->T;
    m->base.flops_per_token = weft_gpt_flops_per_token(m, m->T);
    int C = c->n_embd, outs[] = {3 * C, C, 4 * C, C, c->vocab}, ins[] = {C, C, C, 4 * C, C}, best = 0;
    for (int i = 1; i < 5; i++)
        if ((double)outs[i] * ins[i] > (double)outs[best] * ins[best])
            best = i;
    m->base.largest_matmul[0] = outs[best];
    m->base.largest_matmul[1] = ins[best];
    char lora[80] = "";
    if (c->lora.rank > 0)
        snprintf(lora, sizeof lora, "; LoRA rank %d, alpha %g on %.32s", c->lora.rank, c->lora.alpha,
                 *c->lora.targets ? c->lora.targets : "qkv");
    snprintf(m->base.summary, sizeof m->base.summary, "GPT-2, L=%d NH=%d C=%d V=%d context %d: %.2fM parameters%s",
             c->n_layer, c->n_head, c->n_embd, c->vocab, c->max_seq, (double)m->base.global_params / 1e6, lora);
}

weft_model *weft_gpt_model(weft_gpt *m) { return &m->base; }
