/*
 * encode_pool.h -- encode many texts at once on a fixed set of threads
 * (weft-data prepare --tokenizer): the threads live as long as the pool, so
 * each keeps its tokenizer cache warm from one batch to the next.
 *
 * States: new (weft_encode_pool_new starts the threads, idle) -> running
 * (weft_encode_pool_run hands out the jobs of one batch and returns when all
 * are done) -> idle again ... -> freed (weft_encode_pool_free joins them).
 */
#ifndef WEFT_DATA_ENCODE_POOL_H
#define WEFT_DATA_ENCODE_POOL_H

#include "data/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

typedef struct weft_encode_pool weft_encode_pool;

typedef struct {
    const char *text;  /* in */
    size_t len;
    uint32_t *ids;     /* out: room for cap ids (len is always enough) */
    size_t cap;
    size_t nids;
    int rc;            /* 0, or the job's WEFT_E* code with its message in err */
    char err[512];
} weft_encode_job;

/* The CPUs this process may run on (sched_getaffinity), at least 1. */
int weft_cpu_count(void);

int weft_encode_pool_new(const weft_tokenizer *t, int threads, weft_encode_pool **out);

/* Encode jobs[0..n) on the pool's threads; returns the first failed job's
 * code (its message recorded for this thread), else 0. */
int weft_encode_pool_run(weft_encode_pool *p, weft_encode_job *jobs, size_t n);

void weft_encode_pool_free(weft_encode_pool *p);

#endif
