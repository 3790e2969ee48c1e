/*
 * lm.c -- model.family: the model.* keys of every language model family,
 * and the one place that turns them into a model (lm.h).
 */
#include "model/lm.h"
#include "runtime/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const weft_config_key weft_model_config_keys[] = {
    {"model.family", WEFT_CFG_ENUM, "gpt2", WEFT_UNBOUNDED, "gpt2|llama",
     "the model: gpt2 (LayerNorm, learned positions, GELU MLP, tied head) or llama (RMSNorm, rotary "
     "positions, grouped-query attention, SwiGLU MLP)"},
    {"model.n_layer", WEFT_CFG_INT, "4", 1, 1024, NULL, "transformer blocks (L)"},
    {"model.n_head", WEFT_CFG_INT, "4", 1, 1024, NULL, "attention heads per block (NH); must divide model.n_embd"},
    {"model.n_embd", WEFT_CFG_INT, "128", 1, 65536, NULL, "channels (C)"},
    {"model.context", WEFT_CFG_INT, "256", 1, 1 << 20, NULL,
     "positions the model has (maxT); train.seq_len may not exceed it"},
    {"model.n_kv_head", WEFT_CFG_INT, "0", 0, 1024, NULL,
     "llama: key/value heads (NKV), dividing model.n_head; 0: model.n_head (plain multi-head attention)"},
    {"model.ffn_dim", WEFT_CFG_INT, "0", 0, 1 << 20, NULL,
     "llama: SwiGLU MLP channels (F); 0: 8 n_embd / 3 rounded up to a multiple of 32"},
    {"model.rope_theta", WEFT_CFG_FLOAT, "10000", 1, 1e9, NULL,
     "llama: rotary embedding base (10000 in Llama 2, 500000 in Llama 3)"},
    {"model.norm_eps", WEFT_CFG_FLOAT, "1e-5", 1e-12, 0.1, NULL, "llama: RMSNorm epsilon"},
    {"model.tie_embeddings", WEFT_CFG_BOOL, "false", WEFT_UNBOUNDED, NULL,
     "llama: the LM head is the token embedding (no lm_head.weight)"},
    {"lora.rank", WEFT_CFG_INT, "0", 0, 65536, NULL,
     "low-rank adapters (LoRA) of this rank on lora.targets, the model's own weights frozen and loaded from "
     "--init-from BASE (docs/finetuning.md); 0: no adapters, every weight trained"},
    {"lora.alpha", WEFT_CFG_FLOAT, "16", 1e-6, 1e6, NULL, "the adapters' update is scaled by lora.alpha / lora.rank"},
    {"lora.targets", WEFT_CFG_STRING, "", WEFT_UNBOUNDED, NULL,
     "comma-separated linears that get adapters: gpt2 qkv, proj, fc, fcproj (attn.c_attn, attn.c_proj, "
     "mlp.c_fc, mlp.c_proj); llama q, k, v, o, gate, up, down. Empty: qkv (gpt2), q,v (llama)"},
    {"lora.dropout", WEFT_CFG_FLOAT, "0", 0, 1, NULL,
     "dropout on the adapters' input in training steps (each element kept with probability 1 - p and scaled by 1 / (1 - p)), drawn from (train.seed, step, micro-batch): a resumed run draws the same masks"},
    WEFT_CONFIG_END,
};

/* Whether key's value is other than its default in weft_model_config_keys. */
static int differs_from_default(const weft_config *cfg, const char *key)
{
    for (const weft_config_key *k = weft_model_config_keys; k->name; k++) {
        if (strcmp(k->name, key) != 0)
            continue;
        switch (k->type) {
        case WEFT_CFG_INT: return weft_config_int(cfg, key) != strtoll(k->def, NULL, 10);
        case WEFT_CFG_FLOAT: return weft_config_float(cfg, key) != strtod(k->def, NULL);
        case WEFT_CFG_BOOL: return weft_config_bool(cfg, key) != (strcmp(k->def, "true") == 0);
        default: return strcmp(weft_config_str(cfg, key), k->def) != 0;
        }
    }
    return 0;
}

static int is_llama(const weft_config *cfg) { return strcmp(weft_config_str(cfg, "model.family"), "llama") == 0; }

void weft_lora_config_from(const weft_config *cfg, weft_lora_config *out)
{
    *out = (weft_lora_config){.rank = (int)weft_config_int(cfg, "lora.rank"),
                              .alpha = weft_config_float(cfg, "lora.alpha"),
                              .dropout = weft_config_float(cfg, "lora.dropout")};
    snprintf(out->targets, sizeof out->targets, "%s", weft_config_str(cfg, "lora.targets"));
}

void weft_llama_config_from(const weft_config *cfg, int vocab, weft_llama_config *out)
{
    int C = (int)weft_config_int(cfg, "model.n_embd"), NH = (int)weft_config_int(cfg, "model.n_head");
    int NKV = (int)weft_config_int(cfg, "model.n_kv_head"), F = (int)weft_config_int(cfg, "model.ffn_dim");
    *out = (weft_llama_config){
        .vocab = vocab,
        .max_seq = (int)weft_config_int(cfg, "model.context"),
        .n_layer = (int)weft_config_int(cfg, "model.n_layer"),
        .n_head = NH,
        .n_kv_head = NKV > 0 ? NKV : NH,
        .n_embd = C,
        /* Llama's 2/3 of GPT-2's 4C (three matrices instead of two, the same
         * parameters), rounded up as Llama rounds to multiple_of. */
        .ffn_dim = F > 0 ? F : (8 * C / 3 + 31) / 32 * 32,
        .rope_theta = weft_config_float(cfg, "model.rope_theta"),
        .norm_eps = weft_config_float(cfg, "model.norm_eps"),
        .tie_embeddings = weft_config_bool(cfg, "model.tie_embeddings"),
    };
    weft_lora_config_from(cfg, &out->lora);
}

int weft_lm_check(const weft_config *cfg, int vocab, int tp, int pp)
{
    if (is_llama(cfg)) {
        weft_llama_config lc;
        weft_llama_config_from(cfg, vocab, &lc);
        WEFT_CHECK(weft_llama_config_check(&lc));
        return weft_llama_layout_check(&lc, tp, pp);
    }
    /* A Llama key set (to other than its default) for GPT-2 is a config meant
     * for the other family, or a forgotten model.family: refuse it rather
     * than train something else. */
    static const char *const llama_only[] = {"model.n_kv_head", "model.ffn_dim", "model.rope_theta",
                                             "model.norm_eps", "model.tie_embeddings"};
    for (size_t i = 0; i < sizeof llama_only / sizeof llama_only[0]; i++)
        if (differs_from_default(cfg, llama_only[i]))
            return weft_error(WEFT_ECONFIG, "%s is set (%s) but model.family is gpt2 (%s), which has no such "
                              "setting: set model.family = llama, or drop %s", llama_only[i],
                              weft_config_origin(cfg, llama_only[i]), weft_config_origin(cfg, "model.family"),
                              llama_only[i]);
    weft_gpt_config gc;
    weft_gpt_config_from(cfg, vocab, &gc);
    weft_lora_config_from(cfg, &gc.lora);
    WEFT_CHECK(weft_gpt_config_check(&gc));
    return weft_gpt_layout_check(&gc, tp, pp);
}

int weft_lm_new(const weft_config *cfg, int vocab, const weft_model_part *part, uint64_t seed, weft_model **out)
{
    if (is_llama(cfg)) {
        weft_llama_config lc;
        weft_llama *m;
        weft_llama_config_from(cfg, vocab, &lc);
        lc.lora.seed = seed;
        WEFT_CHECK(weft_llama_new_part(&lc, part, part->micro_batch, part->seq_len, &m));
        weft_llama_init(m, seed);
        *out = weft_llama_model(m);
        return 0;
    }
    weft_gpt_config gc;
    weft_gpt *g;
    weft_gpt_config_from(cfg, vocab, &gc);
    weft_lora_config_from(cfg, &gc.lora);
    gc.lora.seed = seed;
    WEFT_CHECK(weft_gpt_new_part(&gc, part, part->micro_batch, part->seq_len, &g));
    weft_gpt_init(g, seed);
    *out = weft_gpt_model(g);
    return 0;
}

int weft_lm_plan(const weft_config *cfg, int vocab, const weft_model_part *part, weft_model_mem *out)
{
    if (is_llama(cfg)) {
        weft_llama_config lc;
        weft_llama_config_from(cfg, vocab, &lc);
        return weft_llama_plan(&lc, part, part->micro_batch, part->seq_len, out);
    }
    weft_gpt_config gc;
    weft_gpt_config_from(cfg, vocab, &gc);
    weft_lora_config_from(cfg, &gc.lora);
    return weft_gpt_plan(&gc, part, part->micro_batch, part->seq_len, out);
}

const char *weft_lm_embedding_name(const weft_config *cfg)
{
    return is_llama(cfg) ? "model.embed_tokens.weight" : "wte";
}
