/*
 * source.h -- where the trainer's batches come from: an interface (a small
 * vtable) with two implementations in mind, weft's token datasets
 * (weft_token_source_open, over data/loader.h) and a researcher's own
 * generator (examples/mlp).
 *
 * Each call of next() gives this data-parallel rank its part of the next
 * global batch, in whatever form the model's forward reads (model/model.h):
 * for a language model k micro-batches of B windows of T + 1 tokens. The
 * position in the stream is part of every checkpoint (save / restore), and
 * hash() names the data, so a resume on other data is refused.
 *
 * States: open --next()*--> ... ; restore() and seek() move the position;
 * close() ends it. A source is used by the training thread only.
 */
#ifndef WEFT_TRAIN_SOURCE_H
#define WEFT_TRAIN_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/api.h"

typedef struct weft_source weft_source;

typedef struct weft_source_ops {
    int (*next)(weft_source *s, const void **batch);
    int (*seek)(weft_source *s, uint64_t batch);   /* to the start of global batch `batch` */
    size_t (*state_size)(const weft_source *s);
    int (*save)(const weft_source *s, uint8_t *buf, size_t len);
    int (*restore)(weft_source *s, const uint8_t *buf, size_t len);
    uint64_t (*hash)(const weft_source *s);        /* identity of the data */
    int64_t (*last_wait_ns)(const weft_source *s); /* how long the last next() waited */
    int64_t (*samples)(const weft_source *s);      /* samples in one epoch (-1: endless) */
    void (*close)(weft_source *s);
} weft_source_ops;

/* An implementation embeds this as its first member. */
struct weft_source {
    const weft_source_ops *ops;
};

WEFT_API void weft_source_close(weft_source *s);

#endif
