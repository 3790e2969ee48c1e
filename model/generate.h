/*
 * generate.h -- text generation from a language model: choosing the next
 * token from logits (greedy, or sampled with temperature, top-k and top-p
 * from a seeded generator), and the generation loop over the model
 * interface's decode (model/model.h): the prompt prefilled once, then one
 * token per step through the key/value cache, each costing O(T) rather than
 * a forward over the whole context. weft-generate and weft-train --sample
 * both go through here; tokenizing is the program's.
 */
#ifndef WEFT_MODEL_GENERATE_H
#define WEFT_MODEL_GENERATE_H

#include <stdint.h>

#include "model/model.h"
#include "runtime/api.h"

typedef struct weft_sample_opts {
    double temperature; /* 0: greedy, the most likely token (the lowest id of equals) */
    int top_k;          /* sample among the k most likely tokens only (0: all) */
    double top_p;       /* ... and among the fewest most likely whose probability reaches top_p (1: all) */
    uint64_t seed;      /* the generator's seed: the same seed, the same tokens */
} weft_sample_opts;

typedef struct weft_sampler weft_sampler;

/* A sampler for logits of V tokens. WEFT_EINVAL for options out of range
 * (temperature < 0, top_k < 0, top_p outside (0, 1]). */
WEFT_API int weft_sampler_new(int V, const weft_sample_opts *o, weft_sampler **out);
/* The next token from logits (V). top_k = 1 is greedy whatever the
 * temperature; greedy draws no random number. */
WEFT_API int32_t weft_sampler_pick(weft_sampler *s, const float *logits);
WEFT_API void weft_sampler_free(weft_sampler *s);

typedef struct weft_generate_opts {
    int context;       /* the model's positions (model.context) */
    int max_new;       /* tokens to generate at most */
    int32_t eot;       /* stop once this token is generated (it is the last one out); < 0: never */
    void (*on_token)(void *arg, int32_t token); /* told each new token as it is made, or NULL */
    void *arg;
} weft_generate_opts;

/* Up to o->max_new tokens following prompt (np tokens, 1 to o->context) into
 * out (room for max_new); *nout says how many. Past o->context positions
 * the window slides: the cache is rebuilt from the last context / 2 tokens
 * and generation goes on. WEFT_EINVAL for a model without decode (a split
 * one, or not a language model), a prompt out of range or a token outside
 * the vocabulary. */
WEFT_API int weft_generate(weft_model *m, weft_sampler *s, const int32_t *prompt, int np, const weft_generate_opts *o,
                           int32_t *out, int *nout);

#endif
