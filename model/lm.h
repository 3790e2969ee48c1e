/*
 * lm.h -- the language models weft builds by name: model.family selects
 * GPT-2 (model/gpt.h) or Llama (model/llama.h), and the model.* keys give
 * its shape. Programs (weft-train, weft-info, benchmarks) go through here so
 * that a new family is one more entry in lm.c, not one more branch in each
 * of them.
 */
#ifndef WEFT_MODEL_LM_H
#define WEFT_MODEL_LM_H

#include <stdint.h>

#include "model/gpt.h"
#include "model/llama.h"
#include "model/model.h"
#include "runtime/api.h"
#include "runtime/config.h"

/* Every family's model.* keys (model.family, the shape, Llama's extras). */
extern WEFT_API const weft_config_key weft_model_config_keys[];

/* The lora.* keys (model/lora.h). */
WEFT_API void weft_lora_config_from(const weft_config *cfg, weft_lora_config *out);

/* The Llama shape the model.* keys give, for a vocabulary of vocab tokens
 * (model.n_kv_head 0 and model.ffn_dim 0 resolved to their defaults). */
WEFT_API void weft_llama_config_from(const weft_config *cfg, int vocab, weft_llama_config *out);

/* The family's shape rules, then the shape against tensor- and pipeline-
 * parallel sizes tp and pp; WEFT_ECONFIG naming the keys at fault. */
WEFT_API int weft_lm_check(const weft_config *cfg, int vocab, int tp, int pp);

/* What this rank's part of the model would hold (model.h's weft_model_mem:
 * elements and activation bytes), without building it: the planner's
 * numbers, computed by the code that sizes a built model. */
WEFT_API int weft_lm_plan(const weft_config *cfg, int vocab, const weft_model_part *part, weft_model_mem *out);

/* The name of the family's token embedding, whose rows are the
 * vocabulary: a checkpoint's vocabulary is that tensor's first dimension. */
WEFT_API const char *weft_lm_embedding_name(const weft_config *cfg);

/* Build this rank's part of the model the keys describe and initialise it
 * from seed (the same values on every layout). */
WEFT_API int weft_lm_new(const weft_config *cfg, int vocab, const weft_model_part *part, uint64_t seed,
                         weft_model **out);

#endif
