/*
 * fuzz_loader_state.c -- libFuzzer target for the loader state a checkpoint
 * carries (/loader/state, docs/data-format.md): weft_loader_restore of any
 * bytes, on a loader blending two small datasets made once at start (the
 * data unit tests' fixtures). Any bytes must be refused with WEFT_EDATA and
 * a message, leaving the loader as it was, or be accepted; an accepted state
 * must save back to the same bytes (it has one encoding) and the next batch
 * must come, every token below the vocabulary.
 *
 * The state names its stream (bytes 8..15: datasets, weights, seed...),
 * which mutation will not guess, so each input is also tried with the
 * loader's stream id written there: the fuzzer then reaches the position
 * and the per-dataset counts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/le.h"
#include "data/loader.h"
#include "runtime/error.h"
#include "tests/unit/data_fixtures.h"

#define VOCAB 300

static weft_loader *L;
static uint64_t stream_id;

static const fx_shard_spec spec_a[] = {
    {"a0.wtok", WEFT_SPLIT_TRAIN, 1000}, {"a1.wtok", WEFT_SPLIT_TRAIN, 517}, {"a2.wtok", WEFT_SPLIT_TRAIN, 64},
};
static const fx_shard_spec spec_b[] = {{"b0.wtok", WEFT_SPLIT_TRAIN, 700}};

static void cleanup(void)
{
    weft_loader_close(L);
    fx_remove_root();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fx_setup_root();
    fx_make_dataset("a", spec_a, 3, 2, VOCAB);
    fx_make_dataset("b", spec_b, 1, 2, VOCAB);
    weft_loader_options o;
    weft_loader_options_default(&o);
    o.n_datasets = 2;
    o.paths[0] = fx_path("a");
    o.paths[1] = fx_path("b");
    o.weights[0] = 1;
    o.weights[1] = 3;
    o.seq_len = 16;
    o.global_batch = 4;
    o.seed = 7;
    o.prefetch_depth = 1;
    o.io_threads = 1;
    uint8_t st[64];
    if (weft_loader_open(&o, &L) != 0 || weft_loader_save(L, st, sizeof st) != 0)
        abort();
    stream_id = weft_le_get64(st + 8);
    atexit(cleanup);
    return 0;
}

static void try_state(const uint8_t *data, size_t n, int patch)
{
    uint8_t *buf = malloc(n ? n : 1), again[64];
    memcpy(buf, data, n);
    if (patch)
        weft_le_put64(buf + 8, stream_id);
    int rc = weft_loader_restore(L, buf, n);
    if (rc == 0) {
        const int32_t *tok;
        if (n != weft_loader_state_size(L) || weft_loader_save(L, again, sizeof again) != 0 ||
            memcmp(again, buf, n) != 0)
            abort();
        if (weft_loader_next(L, &tok) != 0)
            abort();
        for (int64_t i = 0; i < weft_loader_rows(L) * weft_loader_row_len(L); i++)
            if (tok[i] < 0 || tok[i] >= VOCAB)
                abort();
    } else if (rc != WEFT_EDATA || weft_last_error()[0] == '\0') {
        abort();
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    try_state(data, n, 0);
    if (n >= 16)
        try_state(data, n, 1);
    return 0;
}
