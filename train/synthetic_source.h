/*
 * synthetic_source.h -- uniformly random tokens as a batch source
 * (train/source.h), for benchmarks and tests that need a language model's
 * batches without a dataset on disk. Batch n of data-parallel rank r is
 * drawn from a generator seeded by (seed, n, r): the position is n alone,
 * so it checkpoints and resumes like a dataset.
 */
#ifndef WEFT_TRAIN_SYNTHETIC_SOURCE_H
#define WEFT_TRAIN_SYNTHETIC_SOURCE_H

#include "runtime/api.h"
#include <stdint.h>

#include "train/source.h"

/* rows windows of seq_len + 1 tokens in [0, vocab) per batch. */
WEFT_API int weft_synthetic_source_open(int vocab, int64_t seq_len, int64_t rows, uint64_t seed, int dp_rank,
                                        weft_source **out);

#endif
