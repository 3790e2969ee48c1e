/*
 * zero_resident.c -- ZeRO-2 keeps only this rank's shard of the reduced
 * gradients, checked with the kernel's own page table: after a few library
 * training steps (weft_trainer_step), mincore(2) counts the gradient
 * buffer's resident pages. The reference is computed here, not taken from
 * parallel/dp.c: the buckets (parallel.bucket_mb cut from the end of the
 * buffer) and each rank's chunk of them (weft_comm_chunk's rule: the first
 * len % size ranks one more) give this rank's shard; resident must be at
 * most the shard plus four pages a bucket (the partial pages at the edges
 * of a bucket and of its shard), and weft_dp_mem's `grads` must match what
 * the page table shows. Under ZeRO-0/1 (run as the check that the
 * measurement sees pages at all) the whole buffer is resident. Prints TAP
 * from rank 0. Under ZeRO-3 the parameters likewise (after the step every
 * layer is released again).
 *
 *   mpirun -np 2 zero_resident --data.path=DATASET_DIR --parallel.zero=2 [--parallel.bucket_mb=...]
 * (tests/train/test_zero.sh gives the model.)
 */
#include "model/lm.h"
#include "weft.h"
#include "train/trainer.h"
#include "tests/mpi/mpitap.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static weft_model *model;

static int setup(weft_ctx *ctx, weft_trainer **t)
{
    WEFT_CHECK(weft_trainer_new(ctx, t));
    int vocab;
    WEFT_CHECK(weft_trainer_open_tokens(*t, &vocab));
    weft_model_part mp;
    weft_trainer_part(*t, &mp);
    WEFT_CHECK(weft_lm_new(ctx->config, vocab, &mp, 1, &model));
    return weft_trainer_set_model(*t, model);
}

/* Resident bytes of the pages holding [p, p + bytes). */
static size_t resident(const void *p, size_t bytes)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)p / pg * pg, hi = ((uintptr_t)p + bytes + pg - 1) / pg * pg;
    size_t npages = (hi - lo) / pg, count = 0;
    unsigned char *vec = malloc(npages);
    if (!vec || mincore((void *)lo, hi - lo, vec) != 0) {
        free(vec);
        return (size_t)-1;
    }
    for (size_t i = 0; i < npages; i++)
        count += vec[i] & 1;
    free(vec);
    return count * pg;
}

/* This rank's shard of [lo, hi), in floats, by the rule dp.h documents:
 * buckets of at most cap from the end, rank r's chunk of each. */
static size_t shard_of(size_t lo, size_t hi, size_t cap, int size, int rank, int *nbuckets)
{
    size_t total = 0;
    for (size_t end = hi; end > lo; (*nbuckets)++) {
        size_t start = end - lo > cap ? end - cap : lo, len = end - start;
        total += len / (size_t)size + ((size_t)rank < len % (size_t)size);
        end = start;
    }
    return total;
}

/* Over the whole buffer; under ZeRO-3 unit by unit (no bucket straddles
 * two of the model's units). */
static size_t expected_shard(const weft_model *m, int zero, size_t cap, int size, int rank, int *nbuckets)
{
    *nbuckets = 0;
    if (zero < 3)
        return shard_of(0, m->n, cap, size, rank, nbuckets);
    size_t total = 0;
    for (int i = 0; i < m->nunits; i++)
        total += shard_of(m->units[i], i + 1 < m->nunits ? m->units[i + 1] : m->n, cap, size, rank, nbuckets);
    return total;
}

int main(int argc, char **argv)
{
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {weft_model_config_keys, WEFT_TRAINER_CONFIG_KEYS, NULL};
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    tap_rank = ctx->rank;
    weft_trainer *t = NULL;
    tap_begin();
    rc = setup(ctx, &t);
    TAP_CHECK(rc == 0, "setup: %s", weft_last_error());
    for (int64_t s = 0; rc == 0 && s < 3; s++)
        rc = weft_trainer_step(t, &(weft_step_stats){.step = s});
    TAP_CHECK(rc == 0, "steps: %s", weft_last_error());
    int zero = (int)weft_config_int(ctx->config, "parallel.zero");
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), all = rc ? 0 : model->n * sizeof(float);
    size_t res = rc ? 0 : resident(model->grad_data, all);
    size_t cap = (size_t)(weft_config_float(ctx->config, "parallel.bucket_mb") * 1048576.0) / sizeof(float);
    int nb = 0;
    weft_comm *dpc = rc ? NULL : weft_dp_comm(weft_trainer_dp(t));
    size_t shard = rc ? 0 : expected_shard(model, zero, cap ? cap : 1, weft_comm_size(dpc), weft_comm_rank(dpc), &nb);
    shard *= sizeof(float);
    weft_dp_mem_bytes mem = {0};
    if (!rc)
        weft_dp_mem(weft_trainer_dp(t), &mem);
    TAP_CHECK(res != (size_t)-1, "mincore failed");
    if (zero >= 2) {
        TAP_CHECK(res <= shard + (size_t)nb * 4 * pg, "resident gradient bytes %zu > shard %zu + 4 pages x %d buckets",
                  res, shard, nb);
        TAP_CHECK(mem.grads <= res + 2 * pg && res <= mem.grads + 2 * pg,
                  "weft_dp_mem grads %zu bytes, the page table shows %zu resident", mem.grads, res);
        TAP_CHECK(res < all, "the whole gradient buffer (%zu bytes) is resident under ZeRO-2", all);
    } else {
        TAP_CHECK(res + 2 * pg >= all, "ZeRO-%d: only %zu of %zu gradient bytes resident", zero, res, all);
    }
    size_t pres = rc ? 0 : resident(model->param_data, all);
    if (zero >= 3) {
        TAP_CHECK(pres <= shard + (size_t)nb * 4 * pg, "resident parameter bytes %zu > shard %zu + 4 pages x %d "
                  "buckets", pres, shard, nb);
        TAP_CHECK(mem.params <= pres + 2 * pg && pres <= mem.params + 2 * pg,
                  "weft_dp_mem params %zu bytes, the page table shows %zu resident", mem.params, pres);
        TAP_CHECK(mem.gather_pool > 0 && mem.gather_pool < all, "weft_dp_mem gather_pool %zu (of %zu)",
                  mem.gather_pool, all);
    } else {
        TAP_CHECK(mem.params == all && pres + 2 * pg >= all, "weft_dp_mem params %zu, resident %zu, want %zu",
                  mem.params, pres, all);
    }
    TAP_CHECK(mem.grads_peak == all, "weft_dp_mem: grads_peak %zu, want %zu", mem.grads_peak, all);
    tap_end("ZeRO-%d, %d rank%s: %zu of %zu gradient bytes and %zu parameter bytes resident after a step "
            "(shard %zu, %d buckets; weft_dp_mem grads %zu, params %zu)", zero, ctx->size, ctx->size == 1 ? "" : "s",
            res, all, pres, shard, nb, mem.grads, mem.params);
    weft_trainer_close(t, rc);
    weft_finalize(ctx);
    return tap_total_failed ? 1 : 0;
}
