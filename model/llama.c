/*
 * llama.c -- the Llama family's forward and backward over the CPU kernels,
 * built like gpt.c: one flat parameter buffer and one of gradients (the
 * model interface's), every activation and its gradient allocated at
 * creation in the model's activation arena on its device, forward activations in `nslots` slots for pipeline schedules,
 * one set of activation gradients. See llama.h for the model and its
 * parameter names.
 *
 * What differs from GPT-2, and why it is written as it is:
 *   - q, k and v are three matmuls into three buffers, not one fused one:
 *     with fewer key/value heads than tensor-parallel ranks a rank's k and v
 *     rows are one head of a whole (replicated) weight, not the neighbours
 *     of its q rows in the buffer.
 *   - Rotary embeddings turn q and k in place after their matmuls; backward
 *     turns their gradients back before the matmuls' backward. Nothing
 *     before the rotation is needed later.
 *   - Replicated k_proj/v_proj (NKV < TP): each rank's gradient covers only
 *     the head its query heads use, so one micro-batch's k and v weight
 *     gradients are made in a scratch of the whole weights, summed over the
 *     group and then added: summing the accumulated gradient instead would
 *     count earlier micro-batches again.
 *
 * Trace points as GPT-2's: each block's forward and backward, the embedding
 * and the head, on the compute lane.
 */
#include "model/llama.h"
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

/* Per-block parameter order; offsets follow it. K and V must stay
 * neighbours: the replicated case sums their gradients in one allreduce. */
enum { IN_NORM, WQ, WK, WV, WO, POST_NORM, WGATE, WUP, WDOWN, NBLOCK };

static const char *const block_names[NBLOCK] = {
    "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
    "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
    "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
};

/* One block's activations (forward) or their gradients (backward). Dq =
 * NHl hs: this rank's query channels; Dkv: its key/value channels; Fl its
 * MLP channels. */
typedef struct {
    float *ln1, *ln1_rstd;       /* (B,T,C), (B,T) */
    float *q, *k, *v;            /* (B,T,Dq), (B,T,Dkv) x 2, after rotation (q, k) */
    float *atty;                 /* (B,T,Dq) attention output before o_proj */
    float *att_lse;              /* (B,NHl,T) log-sum-exp of each attention row (flash) */
    float *attproj;              /* (B,T,C) */
    float *residual2;            /* (B,T,C) = input + attproj */
    float *ln2, *ln2_rstd;
    float *gate, *up, *act;      /* (B,T,Fl): act = silu(gate) * up */
    float *down;                 /* (B,T,C) */
    float *residual3;            /* (B,T,C) the block's output */
} block_acts;

typedef struct {
    float *encoded;              /* (B,T,C) the stage's input */
    block_acts *blk;             /* Ll */
    float *lnf, *lnf_rstd;       /* last stage only */
    float *logits;               /* (B,T,Vl); backward turns it into dlogits */
    float *losses;               /* (B,T) */
    double *lse;                 /* (B,T) */
    int32_t *tokens, *targets;   /* (B,T) */
    int b, t, have_targets;
    int n_valid;               /* targets >= 0: the loss is their mean */
} slot_acts;

struct weft_llama {
    weft_model base;             /* first: the model interface */
    weft_llama_config cfg;
    weft_model_part part;
    int B, T;
    int Ll, l0;                  /* blocks held, and the first one's global index */
    int hs, NHl, Dq;             /* head size, this rank's query heads and channels */
    int NKVl, Dkv;               /* key/value heads this rank computes with, their channels */
    int kv_replicated;           /* k_proj, v_proj whole here; this rank uses head kv_head */
    int kv_head;
    int Fl, Vl, v0;              /* MLP channels, vocabulary rows from v0 */
    int has_embed, has_head;
    int i_embed, i_blk, i_norm, i_head; /* table indices (-1: not held) */
    size_t hook_floor;
    int32_t *in, *tgt;           /* (B,T) a micro-batch split from the step's batch */
    float *rope_cos, *rope_sin;  /* (T, hs/2) */
    slot_acts *slot;
    block_acts *dblk;            /* Ll (recompute: 1, shared): gradients of one micro-batch's activations */
    block_acts work;             /* recompute: the block forward and backward compute into; a slot
                                  * keeps only each block's output (residual3) */
    float *dres[2];              /* recompute: the residual stream's gradient between blocks, alternating */
    float *dencoded, *dlnf, *doutput;
    float *kv_grad;              /* (2 NKV hs, C) replicated k/v weight gradients, or NULL */
    double *xent_scratch, *lse_mem;
    float *act_mem, *dact_mem;
    int32_t *tok_mem;
    size_t slot_floats, dact_floats;
    size_t *blk_off;             /* (Ll) where block l's trainable tensors start (backward's hook) */
    size_t head_off;             /* where the head's do */
    weft_lora *lora;             /* adapters (cfg.lora.rank > 0), else NULL */
    int *ad;                     /* (Ll, NTARGET) each target's adapter index, -1: none; NULL without LoRA */
    int slot_now;                /* the slot forward or backward is computing (LoRA's activations) */
    struct llama_cache *cache;   /* incremental decoding (ops->decode), allocated on first use */
};

/* LoRA's targets: their names (lora.targets) and block weights. */
enum { NTARGET = 7 };
static const char *const target_names[NTARGET] = {"q", "k", "v", "o", "gate", "up", "down"};
static const int target_param[NTARGET] = {WQ, WK, WV, WO, WGATE, WUP, WDOWN};
enum { T_Q, T_K, T_V, T_O, T_GATE, T_UP, T_DOWN };

/* Each target's (out, in), global. */
static void target_dims(const weft_llama_config *c, int k, int64_t dims[2])
{
    int64_t C = c->n_embd, Q = C, KV = (int64_t)c->n_kv_head * (C / c->n_head), F = c->ffn_dim;
    const int64_t d[NTARGET][2] = {{Q, C}, {KV, C}, {KV, C}, {C, Q}, {F, C}, {F, C}, {C, F}};
    dims[0] = d[k][0], dims[1] = d[k][1];
}

/* Incremental decoding (ops->decode): the keys (rotated) and values of every
 * layer at every position, rotary tables for every position (the training
 * tables cover T only), and one chunk's activations (a prompt longer than
 * CHUNK tokens is prefilled CHUNK at a time). */
enum { CHUNK = 64 };

typedef struct llama_cache {
    int pos;                     /* positions cached */
    float *k, *v;                /* (L, maxT, NKV hs) */
    float *rope_cos, *rope_sin;  /* (maxT, hs/2) */
    float *x, *ln, *tmp;         /* (CHUNK, C) */
    float *q, *atty;             /* (CHUNK, NH hs) */
    float *gate, *up, *act;      /* (CHUNK, F) */
    float *rstd;                 /* (CHUNK) */
    float *att;                  /* (WEFT_ATT_DECODE_ROWS, maxT) attention scratch */
    float *logits;               /* (V) the last token's */
    float *mem;
} llama_cache;

static void cache_free(llama_cache *c)
{
    if (c)
        free(c->mem);
    free(c);
}

/* --- configuration -------------------------------------------------------- */

/* Adapters: known targets, a rank no larger than any target's smaller
 * side; dropout in [0, 1). */
static int lora_check(const weft_llama_config *c)
{
    const weft_lora_config *lc = &c->lora;
    if (lc->rank == 0)
        return 0;
    unsigned mask;
    WEFT_CHECK(weft_lora_parse_targets(lc->targets, "q,v", target_names, NTARGET, &mask));
    if (!(lc->dropout >= 0 && lc->dropout < 1))
        return weft_error(WEFT_ECONFIG, "lora.dropout (%g) must be in [0, 1): the kept inputs are scaled by "
                          "1 / (1 - p)", lc->dropout);
    for (int k = 0; k < NTARGET; k++) {
        int64_t d[2];
        target_dims(c, k, d);
        int64_t side = d[0] < d[1] ? d[0] : d[1];
        if ((mask >> k & 1) && (lc->rank < 0 || lc->rank > side))
            return weft_error(WEFT_ECONFIG, "lora.rank (%d) is larger than target %s's smaller side (%lld of its "
                              "(%lld, %lld)): the rank must be in [0, %lld]", lc->rank, target_names[k],
                              (long long)side, (long long)d[0], (long long)d[1], (long long)side);
    }
    return 0;
}

int weft_llama_config_check(const weft_llama_config *c)
{
    if (c->vocab < 2)
        return weft_error(WEFT_ECONFIG, "model: vocab size %d must be at least 2 (it comes from the dataset)", c->vocab);
    if (c->n_layer < 1 || c->n_head < 1 || c->n_embd < 1 || c->max_seq < 1 || c->n_kv_head < 1 || c->ffn_dim < 1)
        return weft_error(WEFT_ECONFIG, "model.n_layer (%d), model.n_head (%d), model.n_kv_head (%d), "
                          "model.n_embd (%d), model.ffn_dim (%d) and model.context (%d) must all be >= 1",
                          c->n_layer, c->n_head, c->n_kv_head, c->n_embd, c->ffn_dim, c->max_seq);
    if (c->n_embd % c->n_head != 0)
        return weft_error(WEFT_ECONFIG, "model.n_embd (%d) is not divisible by model.n_head (%d): each head "
                          "needs n_embd / n_head channels", c->n_embd, c->n_head);
    if ((c->n_embd / c->n_head) % 2 != 0)
        return weft_error(WEFT_ECONFIG, "model.n_embd / model.n_head = %d is odd: rotary embeddings turn pairs "
                          "of a head's channels, so the head size must be even", c->n_embd / c->n_head);
    if (c->n_head % c->n_kv_head != 0)
        return weft_error(WEFT_ECONFIG, "model.n_kv_head (%d) does not divide model.n_head (%d): each key/value "
                          "head serves an equal group of query heads", c->n_kv_head, c->n_head);
    if (!(c->rope_theta > 1.0))
        return weft_error(WEFT_ECONFIG, "model.rope_theta (%g) must be > 1", c->rope_theta);
    if (!(c->norm_eps > 0.0 && c->norm_eps < 1.0))
        return weft_error(WEFT_ECONFIG, "model.norm_eps (%g) must be in (0, 1)", c->norm_eps);
    return lora_check(c);
}

int weft_llama_layout_check(const weft_llama_config *c, int tp, int pp)
{
    if (c->n_head % tp != 0)
        return weft_error(WEFT_ECONFIG, "parallel.tp (%d) does not divide model.n_head (%d): tensor parallelism "
                          "gives each rank whole attention heads", tp, c->n_head);
    if (c->n_kv_head % tp != 0 && tp % c->n_kv_head != 0)
        return weft_error(WEFT_ECONFIG, "parallel.tp (%d) and model.n_kv_head (%d): one must divide the other "
                          "(key/value heads are split over the ranks, or each replicated on tp / n_kv_head "
                          "of them)", tp, c->n_kv_head);
    if (c->ffn_dim % tp != 0)
        return weft_error(WEFT_ECONFIG, "parallel.tp (%d) does not divide model.ffn_dim (%d): the MLP's "
                          "channels are split over the ranks", tp, c->ffn_dim);
    if (c->vocab % tp != 0)
        return weft_error(WEFT_ECONFIG, "parallel.tp (%d) does not divide the vocabulary size (%d, from the "
                          "dataset): the token embedding and the loss are split by vocabulary rows", tp, c->vocab);
    if (c->n_layer % pp != 0)
        return weft_error(WEFT_ECONFIG, "parallel.pp (%d) does not divide model.n_layer (%d): every pipeline "
                          "stage holds the same number of blocks", pp, c->n_layer);
    unsigned mask = 0;
    if (c->lora.rank > 0 && c->n_kv_head < tp &&
        weft_lora_parse_targets(c->lora.targets, "q,v", target_names, NTARGET, &mask) == 0 && (mask & 6))
        return weft_error(WEFT_ECONFIG, "lora.targets has k or v, but parallel.tp (%d) > model.n_kv_head (%d) "
                          "replicates k_proj and v_proj, which adapters do not support: drop k and v from "
                          "lora.targets, or use parallel.tp <= %d", tp, c->n_kv_head, c->n_kv_head);
    return 0;
}

/* --- the parameter table ---------------------------------------------------- */

/* embed, norm, lm_head and NBLOCK per block. */
static int table_cap(int blocks) { return 3 + NBLOCK * blocks; }

static void add_param(weft_llama *m, const char *name, weft_shard_spec shard, unsigned tied)
{
    unsigned flags = WEFT_TENSOR_TRAINABLE | (shard.ndim == 2 ? WEFT_TENSOR_DECAY : 0) | tied;
    int rc = weft_model_add_param(&m->base, table_cap(m->Ll), name, shard, flags);
    assert(rc == 0); /* the table was allocated for every parameter */
    (void)rc;
}

static weft_shard_spec split(const weft_llama *m, int64_t d0, int64_t d1, int dim)
{
    if (m->part.tp_size == 1)
        return weft_shard_whole(d0, d1);
    return weft_shard_split(d0, d1, dim, 1, m->part.tp_rank, m->part.tp_size);
}

static void add_block(weft_llama *m, int l)
{
    const weft_llama_config *c = &m->cfg;
    int64_t C = c->n_embd, hs = m->hs, Q = (int64_t)c->n_head * hs, KV = (int64_t)c->n_kv_head * hs;
    weft_shard_spec kv = m->kv_replicated ? weft_shard_whole(KV, C) : split(m, KV, C, 0);
    weft_shard_spec spec[NBLOCK] = {
        [IN_NORM] = weft_shard_whole(C, 0),  [WQ] = split(m, Q, C, 0),
        [WK] = kv,                           [WV] = kv,
        [WO] = split(m, C, Q, 1),            [POST_NORM] = weft_shard_whole(C, 0),
        [WGATE] = split(m, c->ffn_dim, C, 0), [WUP] = split(m, c->ffn_dim, C, 0),
        [WDOWN] = split(m, C, c->ffn_dim, 1),
    };
    for (int k = 0; k < NBLOCK; k++) {
        char name[WEFT_TENSOR_NAME_MAX];
        snprintf(name, sizeof name, "model.layers.%d.%s", l, block_names[k]);
        add_param(m, name, spec[k], 0);
    }
}

/* LoRA: the table built so far becomes the frozen base, and the adapters
 * of each block's target linears, block by block, are the parameters. */
static int add_adapters(weft_llama *m)
{
    const weft_llama_config *c = &m->cfg;
    unsigned mask;
    WEFT_CHECK(weft_lora_parse_targets(c->lora.targets, "q,v", target_names, NTARGET, &mask));
    WEFT_CHECK(weft_model_freeze(&m->base));
    m->ad = malloc((size_t)(m->Ll ? m->Ll : 1) * NTARGET * sizeof *m->ad);
    if (!m->ad)
        return weft_error(WEFT_ENOMEM, "model: out of memory");
    m->hook_floor = 0; /* the tied embedding is frozen */
    size_t per_block = 0;
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
    for (int k = 0; k < NTARGET; k++) {
        int64_t d[2];
        target_dims(c, k, d);
        per_block += (mask >> k & 1) * (size_t)(d[0] + d[1]) * (size_t)c->lora.rank;
    }
    m->base.global_trainable = per_block * (size_t)c->n_layer;
    m->base.adapter = "lora";
    return 0;
}

/* ZeRO-3 (model.h): the units are the embedding (or, on a later stage, the
 * tied head's copy), each block and the head (the final norm and an untied
 * lm_head). Not with adapters. */
static int set_units(weft_llama *m)
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

static int build_table(weft_llama *m)
{
    const weft_llama_config *c = &m->cfg;
    int64_t C = c->n_embd;
    int tied_head = c->tie_embeddings && m->has_head;
    m->i_embed = m->i_norm = m->i_head = -1;
    if (m->has_embed || tied_head) {
        m->i_embed = m->base.nparams;
        /* Tied with stages: the first holds the embedding, the last a copy as
         * its LM head; their gradients are summed every step. */
        unsigned tied = c->tie_embeddings && m->part.pp_size > 1
                            ? WEFT_TENSOR_TIED | (m->has_embed ? 0 : WEFT_TENSOR_TIED_COPY) : 0;
        add_param(m, "model.embed_tokens.weight", split(m, c->vocab, C, 0), tied);
    }
    m->i_blk = m->base.nparams;
    for (int l = m->l0; l < m->l0 + m->Ll; l++)
        add_block(m, l);
    if (m->has_head) {
        m->i_norm = m->base.nparams;
        add_param(m, "model.norm.weight", weft_shard_whole(C, 0), 0);
        m->i_head = m->i_embed;
        if (!c->tie_embeddings) {
            m->i_head = m->base.nparams;
            add_param(m, "lm_head.weight", split(m, c->vocab, C, 0), 0);
        }
    }
    if (m->part.pp_size > 1 && c->tie_embeddings && m->i_embed >= 0)
        m->hook_floor = m->base.params[m->i_embed].offset + m->base.params[m->i_embed].numel;
    size_t Q = (size_t)c->n_head * m->hs, KV = (size_t)c->n_kv_head * m->hs;
    size_t per_block = 2 * (size_t)C + (Q + 2 * KV) * C + C * Q + 3 * (size_t)c->ffn_dim * C;
    m->base.global_params = (size_t)c->vocab * C * (c->tie_embeddings ? 1 : 2) + (size_t)c->n_layer * per_block + C;
    m->base.global_trainable = m->base.global_params;
    m->blk_off = malloc((size_t)(m->Ll ? m->Ll : 1) * sizeof *m->blk_off);
    if (!m->blk_off)
        return weft_error(WEFT_ENOMEM, "model: out of memory");
    for (int l = 0; l < m->Ll; l++)
        m->blk_off[l] = m->base.params[m->i_blk + l * NBLOCK].offset;
    m->head_off = m->has_head ? m->base.params[m->i_norm].offset : m->base.n;
    return c->lora.rank > 0 ? add_adapters(m) : set_units(m);
}

/* --- activations ------------------------------------------------------------ */

typedef struct {
    size_t BT, C, Dq, Dkv, Fl, att;
} dims;

static dims dims_of(const weft_llama *m, size_t att)
{
    return (dims){(size_t)m->B * m->T, (size_t)m->cfg.n_embd, (size_t)m->Dq, (size_t)m->Dkv, (size_t)m->Fl, att};
}

static size_t carve_block(block_acts *a, float *p, dims d)
{
    float *q = p;
#define TAKE(field, n) (a->field = q, q += (n))
    TAKE(ln1, d.BT * d.C); TAKE(ln1_rstd, d.BT);
    TAKE(q, d.BT * d.Dq); TAKE(k, d.BT * d.Dkv); TAKE(v, d.BT * d.Dkv);
    TAKE(atty, d.BT * d.Dq); TAKE(att_lse, d.att); TAKE(attproj, d.BT * d.C); TAKE(residual2, d.BT * d.C);
    TAKE(ln2, d.BT * d.C); TAKE(ln2_rstd, d.BT);
    TAKE(gate, d.BT * d.Fl); TAKE(up, d.BT * d.Fl); TAKE(act, d.BT * d.Fl);
    TAKE(down, d.BT * d.C); TAKE(residual3, d.BT * d.C);
#undef TAKE
    return (size_t)(q - p);
}

static size_t block_floats(dims d)
{
    return d.BT * (6 * d.C + 2 + 2 * d.Dq + 2 * d.Dkv + 3 * d.Fl) + d.att; /* must match carve_block */
}

static size_t carve_slot(weft_llama *m, slot_acts *s, float *p)
{
    dims d = dims_of(m, (size_t)m->B * m->NHl * m->T);
    float *q = p;
    s->encoded = q, q += d.BT * d.C;
    for (int l = 0; l < m->Ll; l++) {
        if (m->part.recompute)
            s->blk[l].residual3 = q, q += d.BT * d.C; /* the rest is the shared work block */
        else
            q += carve_block(&s->blk[l], q, d);
    }
    if (m->has_head) {
        s->lnf = q, q += d.BT * d.C;
        s->lnf_rstd = q, q += d.BT;
        s->logits = q, q += d.BT * m->Vl;
        s->losses = q, q += d.BT;
    }
    return (size_t)(q - p);
}

/* Floats of activations: one slot's (*slot), the work block recomputation
 * computes into (*work), and the activations' gradients (*dact: the region
 * backward zeroes, then the output's gradient). The one formula both
 * alloc_acts and the planner (weft_llama_plan) use; carve_slot,
 * carve_block and alloc_acts must match it. */
static void act_floats(const weft_llama *m, size_t *slot, size_t *work, size_t *dact)
{
    size_t att = (size_t)m->B * m->NHl * m->T, L = (size_t)m->Ll;
    dims d0 = dims_of(m, 0);
    size_t BT = d0.BT, C = d0.C, blk = block_floats(dims_of(m, att)), dblk = block_floats(d0);
    int rc = m->part.recompute && L > 0;
    *slot = BT * C + L * (rc ? BT * C : blk);
    if (m->has_head)
        *slot += BT * C + BT + BT * m->Vl + BT;
    *work = rc ? blk : 0;
    /* dencoded, the blocks' gradients (recompute: one shared block and the
     * two alternating residual gradients), dlnf; flash attention's backward
     * needs no (T, T) scratch */
    *dact = BT * C + (rc ? dblk + 2 * BT * C : L * dblk) + BT * C;
}

/* What the part holds (model.h's weft_model_mem), from act_floats and the
 * other arrays alloc_acts makes. */
static void mem_of(const weft_llama *m, weft_model_mem *out)
{
    size_t BT = (size_t)m->B * m->T, C = (size_t)m->cfg.n_embd, slot, work, dact;
    size_t kvg = m->kv_replicated ? 2 * (size_t)m->cfg.n_kv_head * m->hs * C : 0;
    act_floats(m, &slot, &work, &dact);
    *out = (weft_model_mem){
        .params = m->base.n, .frozen = m->base.frozen_n, .nslots = m->part.nslots,
        /* tokens and targets, log-sum-exp */
        .slot_bytes = slot * sizeof(float) + 2 * BT * sizeof(int32_t) + BT * sizeof(double) +
                      weft_lora_slot_bytes(m->lora),
        /* + the received output gradient, rotary tables, replicated k/v
         * gradients, xent scratch, the split micro-batch */
        .shared_bytes = (work + dact + BT * C + (size_t)m->T * (size_t)m->hs + kvg) * sizeof(float) +
                        WEFT_TP_XENT_SCRATCH(BT) * sizeof(double) + 2 * BT * sizeof(int32_t),
    };
    if (m->cfg.lora.rank == 0) { /* the units set_units gives ZeRO-3 */
        weft_model_mem_units(out, m->blk_off, m->Ll, m->head_off, m->base.n);
        /* a tied head writes the embedding's gradient first; it is final last */
        if (m->cfg.tie_embeddings && m->has_head && m->i_embed >= 0)
            out->grad_early = m->base.params[m->i_embed].numel;
    }
}

/* The activations, their gradients, the slots' tokens and targets, the
 * log-sum-exps, the loss's scratch, the rotary tables and the replicated
 * k/v gradients: carvings of the model's activation arena on its device
 * (weft_model_acts_new), sized from mem_of, the planner's numbers. Only
 * the split micro-batch (m->in, m->tgt) and LoRA's arrays stay on the host. */
static int take_acts(weft_llama *m, size_t BT, size_t C, size_t work, size_t kvg)
{
    size_t ns = (size_t)m->part.nslots, half = (size_t)m->hs / 2;
    weft_model *b = &m->base;
    WEFT_CHECK(weft_model_acts_new(b, ns * weft_lora_slot_bytes(m->lora) + 2 * BT * sizeof(int32_t), 8));
    WEFT_CHECK(weft_model_acts_take(b, m->slot_floats * ns * sizeof(float), (void **)&m->act_mem));
    WEFT_CHECK(weft_model_acts_take(b, (m->dact_floats + BT * C + work) * sizeof(float), (void **)&m->dact_mem));
    WEFT_CHECK(weft_model_acts_take(b, 2 * ns * BT * sizeof(int32_t), (void **)&m->tok_mem));
    WEFT_CHECK(weft_model_acts_take(b, WEFT_TP_XENT_SCRATCH(BT) * sizeof(double), (void **)&m->xent_scratch));
    WEFT_CHECK(weft_model_acts_take(b, ns * BT * sizeof(double), (void **)&m->lse_mem));
    WEFT_CHECK(weft_model_acts_take(b, (size_t)m->T * half * sizeof(float), (void **)&m->rope_cos));
    WEFT_CHECK(weft_model_acts_take(b, (size_t)m->T * half * sizeof(float), (void **)&m->rope_sin));
    m->kv_grad = NULL;
    return kvg ? weft_model_acts_take(b, kvg * sizeof(float), (void **)&m->kv_grad) : 0;
}

/* The rotary tables (T, hs/2), computed on the host (kernels.h's
 * weft_rope_table, what the cpu ops table's rope_table calls) and copied up
 * to the model's device: once, at creation, so no CUDA kernel is needed. */
static int rope_tables(weft_llama *m)
{
    size_t n = (size_t)m->T * (size_t)(m->hs / 2);
    float *h = malloc(2 * (n ? n : 1) * sizeof(float));
    if (!h)
        return weft_error(WEFT_ENOMEM, "model: out of memory for the rotary tables (%zu floats)", 2 * n);
    weft_rope_table(h, h + n, m->T, m->hs, m->cfg.rope_theta);
    weft_dev *d = m->base.kops->dev;
    int rc = weft_device_copy(d, m->rope_cos, h, n * sizeof(float), WEFT_COPY_H2D);
    if (rc == 0)
        rc = weft_device_copy(d, m->rope_sin, h + n, n * sizeof(float), WEFT_COPY_H2D);
    free(h);
    return rc;
}

static int alloc_acts(weft_llama *m)
{
    size_t ns = (size_t)m->part.nslots, att = (size_t)m->B * m->NHl * m->T, work;
    dims d0 = dims_of(m, 0);
    size_t BT = d0.BT, C = d0.C;
    int rc = m->part.recompute && m->Ll > 0;
    /* Activation gradients: the blocks without the attention rows'
     * log-sum-exp (no gradient of their own), then the head's, then the output's gradient at the
     * end, outside the region backward zeroes; the work block after it. */
    act_floats(m, &m->slot_floats, &work, &m->dact_floats);
    mem_of(m, &m->base.mem);
    size_t kvg = m->kv_replicated ? 2 * (size_t)m->cfg.n_kv_head * m->hs * C : 0;
    WEFT_CHECK(take_acts(m, BT, C, work, kvg));
    m->slot = calloc(ns, sizeof *m->slot);
    m->dblk = calloc(rc || !m->Ll ? 1 : (size_t)m->Ll, sizeof *m->dblk);
    int ok = m->slot && m->dblk;
    for (size_t i = 0; ok && i < ns; i++)
        ok = (m->slot[i].blk = calloc((size_t)m->Ll ? (size_t)m->Ll : 1, sizeof(block_acts))) != NULL;
    if (!ok)
        return weft_error(WEFT_ENOMEM, "model: the activations' index for B=%d T=%d x %zu slots: out of memory",
                          m->B, m->T, ns);
    for (size_t i = 0; i < ns; i++) {
        size_t used = carve_slot(m, &m->slot[i], m->act_mem + i * m->slot_floats);
        assert(used == m->slot_floats);
        (void)used;
        m->slot[i].tokens = m->tok_mem + 2 * i * BT;
        m->slot[i].targets = m->slot[i].tokens + BT;
        m->slot[i].lse = m->lse_mem + i * BT;
    }
    float *p = m->dact_mem;
    m->dencoded = p, p += BT * C;
    for (int l = 0; l < (rc ? 1 : m->Ll); l++)
        p += carve_block(&m->dblk[l], p, d0);
    if (rc)
        m->dres[0] = p, m->dres[1] = p + BT * C, p += 2 * BT * C;
    m->dlnf = p, p += BT * C;
    m->doutput = p; /* == dact_mem + dact_floats */
    p += BT * C;
    if (rc)
        p += carve_block(&m->work, p, dims_of(m, att));
    if (m->Ll > 0 && !rc)
        m->dblk[m->Ll - 1].residual3 = m->doutput;
    return rope_tables(m);
}

static void describe(weft_llama *m);

static int part_check(const weft_llama_config *c, const weft_model_part *p)
{
    WEFT_CHECK(weft_model_part_check(p));
    return weft_llama_layout_check(c, p->tp_size, p->pp_size);
}

/* The part's shape and parameter table (and adapters), no buffers: what
 * weft_llama_new_part allocates for, and all weft_llama_plan needs. */
static int new_table(const weft_llama_config *cfg, const weft_model_part *part, int B, int T, weft_llama **out)
{
    weft_llama *m = calloc(1, sizeof *m);
    if (!m)
        return weft_error(WEFT_ENOMEM, "model: out of memory");
    *out = m;
    int P = part->tp_size;
    m->cfg = *cfg;
    m->part = *part;
    m->B = B;
    m->T = T;
    m->Ll = cfg->n_layer / part->pp_size;
    m->l0 = part->pp_rank * m->Ll;
    m->hs = cfg->n_embd / cfg->n_head;
    m->NHl = cfg->n_head / P;
    m->Dq = m->NHl * m->hs;
    m->kv_replicated = cfg->n_kv_head < P;
    m->NKVl = m->kv_replicated ? 1 : cfg->n_kv_head / P;
    m->kv_head = m->kv_replicated ? part->tp_rank * m->NHl / (cfg->n_head / cfg->n_kv_head) : 0;
    m->Dkv = m->NKVl * m->hs;
    m->Fl = cfg->ffn_dim / P;
    m->Vl = cfg->vocab / P;
    m->v0 = part->tp_rank * m->Vl;
    m->has_embed = part->pp_rank == 0;
    m->has_head = part->pp_rank == part->pp_size - 1;
    m->base.params = calloc((size_t)table_cap(m->Ll), sizeof *m->base.params);
    if (!m->base.params)
        return weft_error(WEFT_ENOMEM, "model: out of memory");
    int rc = cfg->lora.rank > 0 ? weft_lora_new(&cfg->lora, B * T, part->nslots, part->tp, &m->lora) : 0;
    return rc ? rc : build_table(m);
}

int weft_llama_plan(const weft_llama_config *cfg, const weft_model_part *part, int B, int T, weft_model_mem *out)
{
    WEFT_CHECK(weft_llama_config_check(cfg));
    WEFT_CHECK(weft_llama_layout_check(cfg, part->tp_size, part->pp_size)); /* no communicator to check */
    weft_llama *m = NULL;
    int rc = new_table(cfg, part, B, T, &m);
    if (rc == 0)
        mem_of(m, out);
    weft_llama_free(m);
    return rc;
}

int weft_llama_new_part(const weft_llama_config *cfg, const weft_model_part *part, int B, int T, weft_llama **out)
{
    WEFT_CHECK(weft_llama_config_check(cfg));
    WEFT_CHECK(part_check(cfg, part));
    if (B < 1 || T < 1 || T > cfg->max_seq)
        return weft_error(WEFT_ECONFIG, "model: sequence length %d must be in [1, model.context = %d]", T,
                          cfg->max_seq);
    weft_llama *m = NULL;
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
        weft_llama_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int weft_llama_new(const weft_llama_config *cfg, int B, int T, weft_llama **out)
{
    weft_model_part whole = {.tp_size = 1, .pp_size = 1, .nslots = 1};
    return weft_llama_new_part(cfg, &whole, B, T, out);
}

void weft_llama_free(weft_llama *m)
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
    free(m->blk_off);
    free(m->ad);
    weft_lora_free(m->lora);
    cache_free(m->cache);
    free(m);
}

/* --- initialisation --------------------------------------------------------- */

static void init_values(void *arg, const weft_tensor *g, weft_rng *rng, float *w)
{
    double proj_std = *(const double *)arg;
    if (weft_lora_fill(g, rng, w))
        return;
    int is_proj = strstr(g->name, "o_proj.weight") || strstr(g->name, "down_proj.weight");
    for (size_t j = 0; j < g->numel; j++)
        w[j] = g->ndim == 2 ? (float)(weft_rng_normal(rng) * (is_proj ? proj_std : 0.02)) : 1.0f;
}

void weft_llama_init(weft_llama *m, uint64_t seed)
{
    weft_llama w = {.cfg = m->cfg, .part = {.tp_size = 1, .pp_size = 1, .nslots = 1}, .Ll = m->cfg.n_layer,
                    .hs = m->hs, .has_embed = 1, .has_head = 1};
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

weft_model *weft_llama_model(weft_llama *m) { return &m->base; }
const weft_llama_config *weft_llama_cfg(const weft_llama *m) { return &m->cfg; }
const float *weft_llama_logits(const weft_llama *m) { return m->slot[0].logits; }

/* --- forward ----------------------------------------------------------------- */

/* The Llama weights and their gradients: the parameters, or with LoRA the
 * frozen table, which has no gradients (NULL: the kernels skip them). */
static const weft_tensor *wtab(const weft_llama *m) { return m->base.nfrozen ? m->base.frozen : m->base.params; }
static float *weights(const weft_llama *m) { return m->base.nfrozen ? m->base.frozen_data : m->base.param_data; }
static float *wgrads(const weft_llama *m) { return m->base.nfrozen ? NULL : m->base.grad_data; }

static float *bp(const weft_llama *m, float *base, int l, int k)
{
    return base ? base + wtab(m)[m->i_blk + l * NBLOCK + k].offset : NULL;
}

static float *pw(const weft_llama *m, float *base, int i) { return base ? base + wtab(m)[i].offset : NULL; }

/* This rank's rows of k_proj or v_proj (its head, when they are replicated). */
static float *kv_rows(const weft_llama *m, float *base, int l, int k)
{
    return bp(m, base, l, k) + (size_t)m->kv_head * m->hs * m->cfg.n_embd;
}

/* The adapter of target k of block l, if any (model/lora.h), on the slot
 * being computed. */
static int lora_forward(weft_llama *m, int l, int k, const float *x, float *y, int N)
{
    int i = m->ad ? m->ad[l * NTARGET + k] : -1;
    return i < 0 ? 0 : weft_lora_forward(m->lora, i, m->slot_now, m->base.param_data, x, y, N);
}

static int lora_backward(weft_llama *m, int l, int k, const float *x, const float *dy, float *dx, int N)
{
    int i = m->ad ? m->ad[l * NTARGET + k] : -1;
    return i < 0 ? 0 : weft_lora_backward(m->lora, i, m->slot_now, m->base.param_data, m->base.grad_data, x, dy,
                                          dx, N);
}

static int block_forward(weft_llama *m, block_acts *a, int l, const float *x, int b, int t)
{
    weft_ops *ops = m->base.kops;
    int BT = b * t, C = m->cfg.n_embd;
    float *P = weights(m);
    weft_comm *tp = m->part.tp;
    ops->rmsnorm_forward(ops, a->ln1, a->ln1_rstd, x, bp(m, P, l, IN_NORM), BT, C, m->cfg.norm_eps);
    ops->matmul_forward(ops, a->q, a->ln1, bp(m, P, l, WQ), NULL, BT, C, m->Dq);
    ops->matmul_forward(ops, a->k, a->ln1, kv_rows(m, P, l, WK), NULL, BT, C, m->Dkv);
    ops->matmul_forward(ops, a->v, a->ln1, kv_rows(m, P, l, WV), NULL, BT, C, m->Dkv);
    WEFT_CHECK(lora_forward(m, l, T_Q, a->ln1, a->q, BT));
    WEFT_CHECK(lora_forward(m, l, T_K, a->ln1, a->k, BT));
    WEFT_CHECK(lora_forward(m, l, T_V, a->ln1, a->v, BT));
    weft_model_progress(&m->base); /* ZeRO-3: the prefetched gather moves (model.h) */
    ops->rope_forward(ops, a->q, m->rope_cos, m->rope_sin, b, t, m->NHl, m->hs);
    ops->rope_forward(ops, a->k, m->rope_cos, m->rope_sin, b, t, m->NKVl, m->hs);
    ops->gqa_attention_flash_forward(ops, a->atty, a->att_lse, a->q, a->k, a->v, b, t, m->NHl, m->NKVl, m->hs);
    WEFT_CHECK(weft_tp_row_linear_forward(ops, a->attproj, a->atty, bp(m, P, l, WO), NULL, BT, m->Dq, C, tp));
    WEFT_CHECK(lora_forward(m, l, T_O, a->atty, a->attproj, BT));
    weft_model_progress(&m->base);
    ops->rmsnorm_residual_forward(ops, a->residual2, a->ln2, a->ln2_rstd, x, a->attproj, bp(m, P, l, POST_NORM), BT, C,
                                  m->cfg.norm_eps);
    ops->matmul_forward(ops, a->gate, a->ln2, bp(m, P, l, WGATE), NULL, BT, C, m->Fl);
    ops->matmul_forward(ops, a->up, a->ln2, bp(m, P, l, WUP), NULL, BT, C, m->Fl);
    WEFT_CHECK(lora_forward(m, l, T_GATE, a->ln2, a->gate, BT));
    WEFT_CHECK(lora_forward(m, l, T_UP, a->ln2, a->up, BT));
    weft_model_progress(&m->base);
    ops->swiglu_forward(ops, a->act, a->gate, a->up, (size_t)BT * m->Fl);
    WEFT_CHECK(weft_tp_row_linear_forward(ops, a->down, a->act, bp(m, P, l, WDOWN), NULL, BT, m->Fl, C, tp));
    WEFT_CHECK(lora_forward(m, l, T_DOWN, a->act, a->down, BT));
    ops->residual_forward(ops, a->residual3, a->residual2, a->down, (size_t)BT * C);
    return 0;
}

static int head_forward(weft_llama *m, slot_acts *s, const float *x, const int32_t *targets, double *loss)
{
    weft_ops *ops = m->base.kops;
    int BT = s->b * s->t, C = m->cfg.n_embd;
    float *P = weights(m);
    ops->rmsnorm_forward(ops, s->lnf, s->lnf_rstd, x, pw(m, P, m->i_norm), BT, C, m->cfg.norm_eps);
    ops->matmul_forward(ops, s->logits, s->lnf, pw(m, P, m->i_head), NULL, BT, C, m->Vl);
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

/* ZeRO-3: the head's parameters are the final norm's unit (with an untied
 * lm_head) and, when tied, the embedding (the first unit, used out of
 * order). begin 1: bring them; 0: done with them. */
static int head_use(weft_llama *m, int begin, int dir)
{
    if (!m->base.use.begin) /* no ZeRO-3 (and with adapters i_head is no index into params) */
        return 0;
    size_t head = m->base.params[m->i_head].offset;
    if (!begin) {
        weft_model_use_end(&m->base, m->head_off);
        weft_model_use_end(&m->base, head); /* a no-op when untied: no unit starts there */
        return 0;
    }
    WEFT_CHECK(weft_model_use_begin(&m->base, m->head_off, dir));
    return weft_model_use_begin(&m->base, head, WEFT_USE_ALONE);
}

static int forward_slot(weft_llama *m, int slot, const int32_t *tokens, const int32_t *targets, int b, int t,
                        double *loss)
{
    weft_ops *ops = m->base.kops;
    assert(slot >= 0 && slot < m->part.nslots && b <= m->B && t <= m->T);
    slot_acts *s = &m->slot[slot];
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
        WEFT_CHECK(weft_tp_embedding_forward(ops, s->encoded, s->tokens, pw(m, P, m->i_embed), m->v0, m->Vl, NULL, b, t,
                                             m->cfg.n_embd, m->part.tp));
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
        weft_trace_end("layers.%d.forward", "forward", WEFT_TRACE_COMPUTE, m->l0 + l, t0);
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

int weft_llama_forward(weft_llama *m, const int32_t *tokens, const int32_t *targets, int b, int t, double *loss)
{
    if (m->part.pp_size > 1)
        return weft_error(WEFT_EINVAL, "weft_llama_forward needs the model's one stage (pp %d): use the "
                          "model interface's forward", m->part.pp_size);
    weft_lora_begin(m->lora, 0, 0, 0, 0); /* not a training step: no dropout */
    return forward_slot(m, 0, tokens, targets, b, t, loss);
}

/* --- backward ---------------------------------------------------------------- */

/* k_proj and v_proj's gradient of one micro-batch when they are replicated:
 * this rank's head's rows in a zeroed scratch of both whole weights (their
 * layout in the buffer: k then v), summed over the group, added. */
static int kv_backward_replicated(weft_llama *m, const block_acts *a, block_acts *d, int l, int BT)
{
    weft_ops *ops = m->base.kops;
    int C = m->cfg.n_embd;
    size_t whole = (size_t)m->cfg.n_kv_head * m->hs * C, row0 = (size_t)m->kv_head * m->hs * C;
    float *P = m->base.param_data, *G = m->base.grad_data;
    ops->zero(ops, m->kv_grad, 2 * whole);
    ops->matmul_backward(ops, d->ln1, m->kv_grad + row0, NULL, d->k, a->ln1, kv_rows(m, P, l, WK), BT, C, m->Dkv);
    ops->matmul_backward(ops, d->ln1, m->kv_grad + whole + row0, NULL, d->v, a->ln1, kv_rows(m, P, l, WV), BT, C,
                         m->Dkv);
    WEFT_CHECK(weft_comm_allreduce(m->part.tp, m->kv_grad, m->kv_grad, 2 * whole, WEFT_F32, WEFT_SUM));
    float *g = bp(m, G, l, WK); /* v_proj follows k_proj in the buffer */
    ops->axpy(ops, g, m->kv_grad, 2 * whole, 1.0f); /* a = 1: bitwise g[i] += kv_grad[i] */
    return 0;
}

/* Block l's backward from its activations a; d holds the gradients of its
 * activations, d->residual3 the output's (read), the rest zeroed; dx (the
 * input's gradient) is accumulated into. */
static int block_backward(weft_llama *m, const block_acts *a, block_acts *d, int l, const float *x, float *dx, int b,
                          int t)
{
    weft_ops *ops = m->base.kops;
    int BT = b * t, C = m->cfg.n_embd;
    size_t n = (size_t)BT * C;
    float *P = weights(m), *G = wgrads(m);
    weft_comm *tp = m->part.tp;
    /* The output's gradient is down_proj's output gradient as it is (the
     * residual add passes it through): read in place, not copied.
     * Row-parallel down_proj: its output gradient is whole; no communication. */
    ops->matmul_backward(ops, d->act, bp(m, G, l, WDOWN), NULL, d->residual3, a->act, bp(m, P, l, WDOWN), BT, m->Fl, C);
    WEFT_CHECK(lora_backward(m, l, T_DOWN, a->act, d->residual3, d->act, BT));
    weft_model_progress(&m->base); /* ZeRO-3 (model.h) */
    ops->swiglu_backward(ops, d->gate, d->up, a->gate, a->up, d->act, (size_t)BT * m->Fl);
    /* Column-parallel gate and up: the input's gradient is a partial sum. */
    ops->matmul_backward(ops, d->ln2, bp(m, G, l, WGATE), NULL, d->gate, a->ln2, bp(m, P, l, WGATE), BT, C, m->Fl);
    ops->matmul_backward(ops, d->ln2, bp(m, G, l, WUP), NULL, d->up, a->ln2, bp(m, P, l, WUP), BT, C, m->Fl);
    WEFT_CHECK(lora_backward(m, l, T_UP, a->ln2, d->up, d->ln2, BT));
    WEFT_CHECK(lora_backward(m, l, T_GATE, a->ln2, d->gate, d->ln2, BT));
    weft_model_progress(&m->base);
    WEFT_CHECK(weft_tp_reduce_grad(d->ln2, n, tp));
    /* residual2's gradient (the output's plus the norm's) into the input's
     * and o_proj's, in one sweep */
    ops->rmsnorm_residual_backward(ops, dx, d->attproj, bp(m, G, l, POST_NORM), d->ln2, d->residual3, a->residual2,
                                   bp(m, P, l, POST_NORM), a->ln2_rstd, BT, C);
    ops->matmul_backward(ops, d->atty, bp(m, G, l, WO), NULL, d->attproj, a->atty, bp(m, P, l, WO), BT, m->Dq, C);
    WEFT_CHECK(lora_backward(m, l, T_O, a->atty, d->attproj, d->atty, BT));
    weft_model_progress(&m->base);
    ops->gqa_attention_flash_backward(ops, d->q, d->k, d->v, d->atty, a->q, a->k, a->v, a->atty, a->att_lse, b, t,
                                      m->NHl, m->NKVl, m->hs);
    ops->rope_backward(ops, d->q, m->rope_cos, m->rope_sin, b, t, m->NHl, m->hs);
    ops->rope_backward(ops, d->k, m->rope_cos, m->rope_sin, b, t, m->NKVl, m->hs);
    ops->matmul_backward(ops, d->ln1, bp(m, G, l, WQ), NULL, d->q, a->ln1, bp(m, P, l, WQ), BT, C, m->Dq);
    WEFT_CHECK(lora_backward(m, l, T_Q, a->ln1, d->q, d->ln1, BT));
    WEFT_CHECK(lora_backward(m, l, T_K, a->ln1, d->k, d->ln1, BT));
    WEFT_CHECK(lora_backward(m, l, T_V, a->ln1, d->v, d->ln1, BT));
    weft_model_progress(&m->base);
    if (m->kv_replicated && !G) { /* frozen: the input's gradient only, no sum */
        ops->matmul_backward(ops, d->ln1, NULL, NULL, d->k, a->ln1, kv_rows(m, P, l, WK), BT, C, m->Dkv);
        ops->matmul_backward(ops, d->ln1, NULL, NULL, d->v, a->ln1, kv_rows(m, P, l, WV), BT, C, m->Dkv);
    } else if (m->kv_replicated) {
        WEFT_CHECK(kv_backward_replicated(m, a, d, l, BT));
    } else {
        ops->matmul_backward(ops, d->ln1, bp(m, G, l, WK), NULL, d->k, a->ln1, bp(m, P, l, WK), BT, C, m->Dkv);
        ops->matmul_backward(ops, d->ln1, bp(m, G, l, WV), NULL, d->v, a->ln1, bp(m, P, l, WV), BT, C, m->Dkv);
    }
    WEFT_CHECK(weft_tp_reduce_grad(d->ln1, n, tp));
    ops->rmsnorm_backward(ops, dx, bp(m, G, l, IN_NORM), d->ln1, x, bp(m, P, l, IN_NORM), a->ln1_rstd, BT, C);
    return 0;
}

static int head_backward(weft_llama *m, slot_acts *s, double loss_scale)
{
    weft_ops *ops = m->base.kops;
    int BT = s->b * s->t, C = m->cfg.n_embd;
    float *P = weights(m), *G = wgrads(m);
    const float *x = m->Ll ? s->blk[m->Ll - 1].residual3 : s->encoded;
    weft_tp_xent_head_backward(ops, m->dlnf, pw(m, G, m->i_head), s->logits, s->lse, s->targets, s->lnf,
                               pw(m, P, m->i_head), BT, C, m->Vl, m->v0, loss_scale / (s->n_valid ? s->n_valid : 1));
    WEFT_CHECK(weft_tp_reduce_grad(m->dlnf, (size_t)BT * C, m->part.tp));
    ops->rmsnorm_backward(ops, m->doutput, pw(m, G, m->i_norm), m->dlnf, x, pw(m, P, m->i_norm), s->lnf_rstd, BT, C);
    return 0;
}

/* What block l's backward reads and writes: without recomputation the
 * slot's activations and block l's own gradients (zeroed with the rest at
 * the start of backward); with it, the block computed again into the work
 * block, and the shared gradient block zeroed, reading the output's
 * gradient from the block above and writing the input's into the other
 * alternating buffer. */
static int backward_acts(weft_llama *m, slot_acts *s, int l, const float *x, block_acts *a, block_acts *d, float **dx)
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
    weft_trace_end("layers.%d.recompute", "backward", WEFT_TRACE_COMPUTE, m->l0 + l, t0);
    m->base.kops->zero(m->base.kops, m->dblk[0].ln1, block_floats(dims_of(m, 0)));
    *d = m->dblk[0];
    d->residual3 = l == m->Ll - 1 ? m->doutput : m->dres[(l + 1) & 1];
    *dx = l ? m->dres[l & 1] : m->dencoded;
    m->base.kops->zero(m->base.kops, *dx, BT * C);
    return 0;
}

static void report(weft_llama *m, weft_grad_hook hook, void *arg, size_t offset)
{
    if (hook)
        hook(arg, offset > m->hook_floor ? offset : m->hook_floor);
}

static int backward_slot(weft_llama *m, int slot, double loss_scale, weft_grad_hook hook, void *arg)
{
    slot_acts *s = &m->slot[slot];
    int b = s->b, t = s->t;
    assert(!m->has_head || s->have_targets); /* backward of a forward without targets is a bug */
    m->slot_now = slot;
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
        weft_trace_end("layers.%d.backward", "backward", WEFT_TRACE_COMPUTE, m->l0 + l, t0);
        report(m, hook, arg, m->blk_off[l]);
    }
    if (m->has_embed && wgrads(m)) {
        t0 = weft_trace_begin();
        weft_tp_embedding_backward(m->base.kops, pw(m, m->base.grad_data, m->i_embed), NULL, m->dencoded, s->tokens,
                                   m->v0, m->Vl, b, t, m->cfg.n_embd, m->part.tp);
        weft_trace_end("embed.backward", "backward", WEFT_TRACE_COMPUTE, -1, t0);
    }
    report(m, hook, arg, 0);
    return weft_ops_status(m->base.kops); /* once per backward (kernels/ops.h) */
}

int weft_llama_backward(weft_llama *m, double loss_scale, weft_grad_hook hook, void *arg)
{
    return backward_slot(m, 0, loss_scale, hook, arg);
}

double weft_llama_flops_per_token(const weft_llama *m, int t)
{
    const weft_llama_config *c = &m->cfg;
    /* Every weight matrix does one multiply-add per token, except the
     * embedding's lookup when the head is its own. */
    double N = (double)m->base.global_params - (c->tie_embeddings ? 0.0 : (double)c->vocab * c->n_embd);
    return 6.0 * N + 12.0 * c->n_layer * (double)t * c->n_embd;
}

/* --- decoding with a key/value cache (ops->decode) ---------------------------- */

static int cache_alloc(weft_llama *m)
{
    weft_ops *ops = m->base.kops;
    const weft_llama_config *cf = &m->cfg;
    size_t L = (size_t)cf->n_layer, T = (size_t)cf->max_seq, C = (size_t)cf->n_embd, R = CHUNK;
    size_t KV = (size_t)cf->n_kv_head * m->hs, Q = (size_t)cf->n_head * m->hs, F = (size_t)cf->ffn_dim;
    size_t half = (size_t)m->hs / 2;
    size_t n = 2 * L * T * KV + 2 * T * half + R * (3 * C + 2 * Q + 3 * F + 1) + WEFT_ATT_DECODE_ROWS * T +
               (size_t)cf->vocab;
    llama_cache *c = calloc(1, sizeof *c);
    float *p = c ? malloc(n * sizeof(float)) : NULL;
    if (!p) {
        free(c);
        return weft_error(WEFT_ENOMEM, "model: %.1f MiB for the key/value cache of %zu positions: out of memory",
                          (double)n * 4.0 / (1 << 20), T);
    }
    c->mem = p;
#define TAKE(field, count) (c->field = p, p += (count))
    TAKE(k, L * T * KV); TAKE(v, L * T * KV); TAKE(rope_cos, T * half); TAKE(rope_sin, T * half);
    TAKE(x, R * C); TAKE(ln, R * C); TAKE(tmp, R * C); TAKE(q, R * Q); TAKE(atty, R * Q);
    TAKE(gate, R * F); TAKE(up, R * F); TAKE(act, R * F); TAKE(rstd, R);
    TAKE(att, WEFT_ATT_DECODE_ROWS * T); TAKE(logits, (size_t)cf->vocab);
#undef TAKE
    assert((size_t)(p - c->mem) == n);
    ops->rope_table(ops, c->rope_cos, c->rope_sin, cf->max_seq, m->hs, cf->rope_theta);
    m->cache = c;
    return 0;
}

/* Block l on the chunk's n rows at positions p..p+n-1: as block_forward,
 * with the new keys and values written (and the keys rotated) in the
 * cache, and attention over every position cached. */
static void decode_block(weft_llama *m, llama_cache *c, int l, int n, int p)
{
    weft_ops *ops = m->base.kops;
    const weft_llama_config *cf = &m->cfg;
    int C = cf->n_embd, hs = m->hs, Q = cf->n_head * hs, KV = cf->n_kv_head * hs, F = cf->ffn_dim;
    size_t layer = (size_t)l * cf->max_seq * KV, half = (size_t)hs / 2;
    float *P = weights(m), *kc = c->k + layer, *vc = c->v + layer;
    const float *cs = c->rope_cos + (size_t)p * half, *sn = c->rope_sin + (size_t)p * half;
    ops->rmsnorm_forward(ops, c->ln, c->rstd, c->x, bp(m, P, l, IN_NORM), n, C, cf->norm_eps);
    ops->matmul_forward(ops, c->q, c->ln, bp(m, P, l, WQ), NULL, n, C, Q);
    ops->matmul_forward(ops, kc + (size_t)p * KV, c->ln, bp(m, P, l, WK), NULL, n, C, KV);
    ops->matmul_forward(ops, vc + (size_t)p * KV, c->ln, bp(m, P, l, WV), NULL, n, C, KV);
    ops->rope_forward(ops, c->q, cs, sn, 1, n, cf->n_head, hs);
    ops->rope_forward(ops, kc + (size_t)p * KV, cs, sn, 1, n, cf->n_kv_head, hs);
    ops->attention_decode(ops, c->atty, c->att, c->q, kc, vc, n, p, cf->n_head, cf->n_kv_head, hs);
    ops->matmul_forward(ops, c->tmp, c->atty, bp(m, P, l, WO), NULL, n, Q, C);
    ops->residual_forward(ops, c->x, c->x, c->tmp, (size_t)n * C);
    ops->rmsnorm_forward(ops, c->ln, c->rstd, c->x, bp(m, P, l, POST_NORM), n, C, cf->norm_eps);
    ops->matmul_forward(ops, c->gate, c->ln, bp(m, P, l, WGATE), NULL, n, C, F);
    ops->matmul_forward(ops, c->up, c->ln, bp(m, P, l, WUP), NULL, n, C, F);
    ops->swiglu_forward(ops, c->act, c->gate, c->up, (size_t)n * F);
    ops->matmul_forward(ops, c->tmp, c->act, bp(m, P, l, WDOWN), NULL, n, F, C);
    ops->residual_forward(ops, c->x, c->x, c->tmp, (size_t)n * C);
}

/* n <= CHUNK tokens at positions p..p+n-1; with_logits: the last one's. */
static void decode_chunk(weft_llama *m, const int32_t *tokens, int n, int p, int with_logits)
{
    weft_ops *ops = m->base.kops;
    llama_cache *c = m->cache;
    int C = m->cfg.n_embd;
    float *P = weights(m);
    for (int i = 0; i < n; i++) /* no positions to add: they are in the rotations */
        ops->copy(ops, c->x + (size_t)i * C, pw(m, P, m->i_embed) + (size_t)tokens[i] * C, (size_t)C);
    for (int l = 0; l < m->cfg.n_layer; l++)
        decode_block(m, c, l, n, p);
    c->pos = p + n;
    if (!with_logits)
        return;
    ops->rmsnorm_forward(ops, c->ln, c->rstd, c->x + (size_t)(n - 1) * C, pw(m, P, m->i_norm), 1, C, m->cfg.norm_eps);
    ops->matmul_forward(ops, c->logits, c->ln, pw(m, P, m->i_head), NULL, 1, C, m->cfg.vocab);
}

/* --- the model interface (model/model.h) ------------------------------------- */

static weft_llama *llama_of(weft_model *m) { return (weft_llama *)m; }

/* Micro-batch mb of the step's batch (weft_model_split_windows). */
static int iface_forward(weft_model *mm, int slot, const void *batch, int mb, double *loss)
{
    weft_llama *m = llama_of(mm);
    weft_model_split_windows(batch, mb, m->B, m->T, m->in, m->tgt);
    weft_lora_begin(m->lora, slot, mm->training, mm->step, mb);
    return forward_slot(m, slot, m->in, m->tgt, m->B, m->T, loss);
}

static int iface_backward(weft_model *m, int slot, double loss_scale, weft_grad_hook hook, void *arg)
{
    return backward_slot(llama_of(m), slot, loss_scale, hook, arg);
}

static float *iface_input(weft_model *m, int slot) { return llama_of(m)->slot[slot].encoded; }
static float *iface_output(weft_model *mm, int slot)
{
    weft_llama *m = llama_of(mm);
    return m->Ll ? m->slot[slot].blk[m->Ll - 1].residual3 : m->slot[slot].encoded;
}
static float *iface_doutput(weft_model *m) { return llama_of(m)->doutput; }
static float *iface_dinput(weft_model *m) { return llama_of(m)->dencoded; }

static int iface_logits(weft_model *mm, const int32_t *tokens, int b, int t, const float **out)
{
    weft_llama *m = llama_of(mm);
    double unused;
    WEFT_CHECK(weft_llama_forward(m, tokens, NULL, b, t, &unused));
    *out = m->slot[0].logits;
    return 0;
}

static int iface_decode(weft_model *mm, const int32_t *tokens, int n, int pos0, const float **out)
{
    weft_llama *m = llama_of(mm);
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

static void iface_free(weft_model *m) { weft_llama_free(llama_of(m)); }

static const weft_model_ops llama_ops = {
    .family = "llama",
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

static void describe(weft_llama *m)
{
    const weft_llama_config *c = &m->cfg;
    m->base.ops = &llama_ops;
    m->base.stage_floats = (size_t)m->B * m->T * c->n_embd;
    m->base.tokens_per_sample = m->T;
    m->base.flops_per_token = weft_llama_flops_per_token(m, m->T);
    int C = c->n_embd, F = c->ffn_dim, outs[] = {C, F, C, c->vocab}, ins[] = {C, C, F, C}, best = 0;
    for (int i = 1; i < 4; i++)
        if ((double)outs[i] * ins[i] > (double)outs[best] * ins[best])
            best = i;
    m->base.largest_matmul[0] = outs[best];
    m->base.largest_matmul[1] = ins[best];
    char lora[80] = "";
    if (c->lora.rank > 0)
        snprintf(lora, sizeof lora, "; LoRA rank %d, alpha %g on %.32s", c->lora.rank, c->lora.alpha,
                 *c->lora.targets ? c->lora.targets : "q,v");
    snprintf(m->base.summary, sizeof m->base.summary,
             "Llama, L=%d NH=%d NKV=%d C=%d F=%d V=%d context %d%s: %.2fM parameters%s%s", c->n_layer, c->n_head,
             c->n_kv_head, c->n_embd, F, c->vocab, c->max_seq, c->tie_embeddings ? ", tied head" : "",
             (double)m->base.global_params / 1e6,
             m->kv_replicated ? " (k/v heads replicated: fewer than tensor-parallel ranks)" : "", lora);
}
