/*
 * test_loader.c -- the streaming loader: every window exactly once per
 * epoch, a global stream independent of the number of data-parallel ranks,
 * exact resume (same and different D), blends within one sample of their
 * weights at every prefix, every bad input named, 10 000 lazily opened
 * shards, and a sparse shard larger than 4 GiB.
 *
 * The hand-made shards (data_fixtures.h) hold token = position in the
 * dataset mod vocab, so a window's first token says which window it is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/data_fixtures.h"

#include "data/blend.h"
#include "data/le.h"
#include "data/loader.h"
#include "data/shuffle.h"
#include "runtime/config.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/timer.h"

#define assert_msg(needle) \
    do { if (!strstr(weft_last_error(), needle)) fail_msg("message \"%s\" lacks \"%s\"", weft_last_error(), needle); } while (0)

/* Dataset "a": three train shards with 1000, 517 and 64 tokens and one val
 * shard; positions fit below the vocab so tokens are unique. */
static const fx_shard_spec spec_a[] = {
    {"a0.wtok", WEFT_SPLIT_TRAIN, 1000}, {"a1.wtok", WEFT_SPLIT_TRAIN, 517},
    {"a2.wtok", WEFT_SPLIT_TRAIN, 64},   {"av.wtok", WEFT_SPLIT_VAL, 300},
};
static const fx_shard_spec spec_b[] = {{"b0.wtok", WEFT_SPLIT_TRAIN, 4000}};

static weft_loader_options opts(const char *rel, int64_t T, int64_t B, int rank, int D)
{
    weft_loader_options o;
    weft_loader_options_default(&o);
    o.paths[0] = fx_path(rel);
    o.seq_len = T;
    o.global_batch = B;
    o.dp_rank = rank;
    o.dp_size = D;
    o.seed = 1234;
    return o;
}

static weft_loader *must_open(const weft_loader_options *o)
{
    weft_loader *L = NULL;
    int rc = weft_loader_open(o, &L);
    if (rc != 0)
        fail_msg("open: %s", weft_last_error());
    return L;
}

/* Hash of `steps` global batches read by D simulated ranks. */
static uint64_t stream_hash(weft_loader_options o, int D, int steps, const uint8_t *state, size_t slen)
{
    weft_loader *L[8];
    XXH3_state_t *h = XXH3_createState();
    XXH3_64bits_reset(h);
    for (int r = 0; r < D; r++) {
        o.dp_rank = r;
        o.dp_size = D;
        L[r] = must_open(&o);
        if (state)
            assert_int_equal(weft_loader_restore(L[r], state, slen), 0);
    }
    for (int s = 0; s < steps; s++)
        for (int r = 0; r < D; r++) {
            const int32_t *t;
            assert_int_equal(weft_loader_next(L[r], &t), 0);
            XXH3_64bits_update(h, t, (size_t)(weft_loader_rows(L[r]) * weft_loader_row_len(L[r])) * 4);
        }
    for (int r = 0; r < D; r++)
        weft_loader_close(L[r]);
    uint64_t d = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    return d;
}

/* ---- stream properties ------------------------------------------------------- */

static void test_windows_and_epochs(void **st)
{
    (void)st;
    const int64_t T = 16;
    /* Windows: (1000-1)/16 + (517-1)/16 + (64-1)/16 = 62 + 32 + 3 = 97. */
    weft_loader_options o = opts("a", T, 1, 0, 1);
    weft_loader *L = must_open(&o);
    uint64_t N = weft_loader_samples(L, 0);
    assert_true(N == 97);
    static const uint64_t starts[] = {0, 1000, 1517};
    int32_t order[2][97];
    for (int e = 0; e < 2; e++) {
        uint8_t seen[97] = {0};
        for (uint64_t i = 0; i < N; i++) {
            const int32_t *t;
            assert_int_equal(weft_loader_next(L, &t), 0);
            /* Contiguous T+1 tokens starting on a stride-T boundary. */
            for (int j = 1; j <= T; j++)
                assert_int_equal(t[j], t[0] + j);
            int s = t[0] >= 1517 ? 2 : t[0] >= 1000 ? 1 : 0;
            uint64_t off = (uint64_t)t[0] - starts[s];
            assert_int_equal(off % T, 0);
            int w = (int)(off / T) + (s >= 1 ? 62 : 0) + (s >= 2 ? 32 : 0);
            assert_int_equal(seen[w], 0);
            seen[w] = 1;
            order[e][i] = t[0];
        }
        assert_true(weft_loader_epoch(L, 0) == (uint64_t)e + 1);
    }
    assert_true(memcmp(order[0], order[1], sizeof order[0]) != 0);
    weft_loader_close(L);
    /* shuffle off: file order. */
    o.shuffle = false;
    L = must_open(&o);
    for (int i = 0; i < 5; i++) {
        const int32_t *t;
        assert_int_equal(weft_loader_next(L, &t), 0);
        assert_int_equal(t[0], i * T);
    }
    weft_loader_close(L);
}

static void test_rank_independent_stream(void **st)
{
    (void)st;
    weft_loader_options o = opts("a", 8, 8, 0, 1);
    uint64_t h1 = stream_hash(o, 1, 60, NULL, 0);
    assert_true(h1 == stream_hash(o, 2, 60, NULL, 0));
    assert_true(h1 == stream_hash(o, 4, 60, NULL, 0));
    assert_true(h1 == stream_hash(o, 8, 60, NULL, 0));
    o.prefetch_depth = 1;
    assert_true(h1 == stream_hash(o, 2, 60, NULL, 0));
    o.seed = 99;
    assert_true(h1 != stream_hash(o, 1, 60, NULL, 0));
    /* Blends too. */
    o = opts("a", 8, 12, 0, 1);
    o.n_datasets = 2;
    o.paths[1] = fx_path("b");
    o.weights[0] = 1;
    o.weights[1] = 3;
    h1 = stream_hash(o, 1, 40, NULL, 0);
    assert_true(h1 == stream_hash(o, 3, 40, NULL, 0));
    assert_true(h1 == stream_hash(o, 4, 40, NULL, 0));
}

static void test_resume_exact(void **st)
{
    (void)st;
    weft_loader_options o = opts("a", 8, 8, 0, 1);
    o.n_datasets = 2;
    o.paths[1] = fx_path("b");
    o.weights[0] = 0.3;
    o.weights[1] = 0.7;
    uint8_t state[256];
    weft_loader *L = must_open(&o);
    size_t n = weft_loader_state_size(L);
    assert_int_equal(n, 24 + 16);
    const int32_t *t;
    for (int s = 0; s < 37; s++) /* mid-epoch of dataset a (97 windows) */
        assert_int_equal(weft_loader_next(L, &t), 0);
    assert_int_equal(weft_loader_save(L, state, n), 0);
    assert_true(weft_loader_position(L) == 37 * 8);
    weft_loader_close(L);
    /* Uninterrupted: 37 + 25 steps; its tail equals a restored run's head. */
    weft_loader_options ref = o;
    weft_loader *R = must_open(&ref);
    XXH3_state_t *h = XXH3_createState();
    XXH3_64bits_reset(h);
    for (int s = 0; s < 62; s++) {
        assert_int_equal(weft_loader_next(R, &t), 0);
        if (s >= 37)
            XXH3_64bits_update(h, t, 8 * 9 * 4);
    }
    uint64_t tail = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    weft_loader_close(R);
    assert_true(tail == stream_hash(o, 1, 25, state, n));
    /* Saved by one rank of 1, restored on 2 and 4 ranks: same global stream. */
    assert_true(tail == stream_hash(o, 2, 25, state, n));
    assert_true(tail == stream_hash(o, 4, 25, state, n));
    /* seek to the same position is the same as restoring. */
    L = must_open(&o);
    assert_int_equal(weft_loader_seek(L, 37 * 8), 0);
    uint8_t s2[256];
    assert_int_equal(weft_loader_save(L, s2, n), 0);
    assert_memory_equal(state, s2, n);
    weft_loader_close(L);
}

static void test_state_errors(void **st)
{
    (void)st;
    weft_loader_options o = opts("a", 8, 4, 0, 1);
    weft_loader *L = must_open(&o);
    uint8_t s[64];
    size_t n = weft_loader_state_size(L);
    assert_int_equal(weft_loader_save(L, s, 3), WEFT_EINVAL);
    assert_int_equal(weft_loader_save(L, s, n), 0);
    /* Another seed is another stream. */
    o.seed = 5;
    weft_loader *M = must_open(&o);
    assert_int_equal(weft_loader_restore(M, s, n), WEFT_EDATA);
    assert_msg("different stream");
    weft_loader_close(M);
    s[0] ^= 1;
    assert_int_equal(weft_loader_restore(L, s, n), WEFT_EDATA);
    s[0] ^= 1;
    s[4] = 9;
    assert_int_equal(weft_loader_restore(L, s, n), WEFT_EDATA);
    assert_msg("version");
    s[4] = 1;
    s[16] = 1; /* position no longer equals the count sum */
    assert_int_equal(weft_loader_restore(L, s, n), WEFT_EDATA);
    assert_int_equal(weft_loader_restore(L, s, n - 1), WEFT_EDATA);
    /* A good state after failed restores still works. */
    s[16] = 0;
    assert_int_equal(weft_loader_restore(L, s, n), 0);
    const int32_t *t;
    assert_int_equal(weft_loader_next(L, &t), 0);
    weft_loader_close(L);
}

/* ---- blends ------------------------------------------------------------------ */

/* Exhaustive over the first 200 000 positions of many weight vectors: every
 * dataset's count stays strictly within one sample of n * weight, checked in
 * exact integer arithmetic. */
static void test_blend_within_one_sample(void **st)
{
    (void)st;
    static const double fixed[][6] = {
        {1, 1}, {0.9, 0.1}, {0.7, 0.2, 0.1}, {1, 2, 3, 4, 5, 6}, {0.999, 0.0005, 0.0005},
        {0.3, 0.3, 0.3, 0.05, 0.05}, {0.01, 0.01, 0.01, 0.97}, {1, 1, 1, 1, 1, 1}, {1.0 / 3, 2.0 / 3},
    };
    static const int fk[] = {2, 2, 3, 6, 3, 5, 4, 6, 2};
    uint64_t rng = 7;
    for (int c = 0; c < 29; c++) {
        double w[WEFT_BLEND_MAX];
        int k;
        if (c < 9) {
            k = fk[c];
            memcpy(w, fixed[c], sizeof(double) * (size_t)k);
        } else {
            rng = weft_mix64(rng);
            k = 2 + (int)(rng % 15);
            for (int d = 0; d < k; d++)
                w[d] = 1 + (double)(weft_mix64(rng + (uint64_t)d) % 1000) * ((d & 1) ? 0.001 : 1);
        }
        weft_blend b;
        assert_int_equal(weft_blend_init(&b, w, k), 0);
        uint64_t cnt[WEFT_BLEND_MAX] = {0};
        for (uint64_t n = 1; n <= 200000; n++) {
            cnt[weft_blend_pick(&b, cnt, n - 1)]++;
            for (int d = 0; d < k; d++) {
                __int128 err = (__int128)cnt[d] * WEFT_BLEND_SCALE - (__int128)n * b.w[d];
                if (err >= (__int128)WEFT_BLEND_SCALE || err <= -(__int128)WEFT_BLEND_SCALE)
                    fail_msg("weights case %d: dataset %d count %llu at n=%llu is a sample or more off",
                             c, d, (unsigned long long)cnt[d], (unsigned long long)n);
            }
        }
    }
    weft_blend b;
    double bad[2] = {1, 0};
    assert_int_equal(weft_blend_init(&b, bad, 2), WEFT_EINVAL);
    bad[1] = -1;
    assert_int_equal(weft_blend_init(&b, bad, 2), WEFT_EINVAL);
}

static void test_blend_loader_counts(void **st)
{
    (void)st;
    weft_loader_options o = opts("a", 8, 10, 0, 1);
    o.n_datasets = 2;
    o.paths[1] = fx_path("b");
    o.weights[0] = 1;
    o.weights[1] = 4;
    weft_loader *L = must_open(&o);
    const int32_t *t;
    for (int s = 0; s < 50; s++)
        assert_int_equal(weft_loader_next(L, &t), 0);
    /* The state holds the per-dataset counts: exactly 100 and 400. */
    uint8_t s[64];
    assert_int_equal(weft_loader_save(L, s, sizeof s), 0);
    assert_true(weft_le_get64(s + 24) == 100);
    assert_true(weft_le_get64(s + 32) == 400);
    weft_loader_close(L);
}

/* ---- bad inputs ---------------------------------------------------------------- */

static int open_rc(weft_loader_options o)
{
    weft_loader *L = NULL;
    int rc = weft_loader_open(&o, &L);
    weft_loader_close(L);
    return rc;
}

static void test_open_errors(void **st)
{
    (void)st;
    assert_int_equal(open_rc(opts("missing", 8, 4, 0, 1)), WEFT_ENOENT);
    assert_msg("missing");
    fx_mkdir("nomanifest");
    assert_int_equal(open_rc(opts("nomanifest", 8, 4, 0, 1)), WEFT_ENOENT);
    assert_msg("manifest");
    assert_int_equal(open_rc(opts("a", 8, 6, 0, 4)), WEFT_ECONFIG);
    assert_msg("not divisible");
    assert_int_equal(open_rc(opts("a", 8, 4, 4, 4)), WEFT_ECONFIG);
    assert_int_equal(open_rc(opts("a", 0, 4, 0, 1)), WEFT_ECONFIG);
    /* seq_len longer than any shard: names the longest shard. */
    assert_int_equal(open_rc(opts("a", 1000, 4, 0, 1)), WEFT_EDATA);
    assert_msg("a0.wtok");
    assert_msg("seq_len 1000");
    assert_int_equal(open_rc(opts("a", 999, 4, 0, 1)), 0);
    /* Empty split. */
    weft_loader_options o = opts("b", 8, 4, 0, 1);
    o.split = WEFT_SPLIT_VAL;
    assert_int_equal(open_rc(o), WEFT_EDATA);
    assert_msg("empty dataset");
    fx_make_dataset("empty", NULL, 0, 2, 100);
    assert_int_equal(open_rc(opts("empty", 8, 4, 0, 1)), WEFT_EDATA);
    assert_msg("empty");
    /* Bad manifest. */
    fx_mkdir("badman");
    fx_write(fx_path("badman/manifest"), "weft-dataset 9\n", 15);
    assert_int_equal(open_rc(opts("badman", 8, 4, 0, 1)), WEFT_EDATA);
    assert_msg("badman/manifest:1");
    o = opts("a", 8, 4, 0, 1);
    o.n_datasets = 2;
    o.paths[1] = fx_path("b");
    o.weights[0] = 1;
    o.weights[1] = -1;
    assert_int_equal(open_rc(o), WEFT_ECONFIG);
}

/* Copy dataset "a" to rel, break it with fn, and expect the first epoch's
 * reads to fail with rc and a message naming needle. */
static void expect_read_error(const char *rel, void (*fn)(const char *dir), int rc, const char *needle)
{
    fx_make_dataset(rel, spec_a, 4, 2, 65536);
    fn(fx_path(rel));
    weft_loader_options o = opts(rel, 8, 16, 0, 1);
    weft_loader *L = must_open(&o);
    const int32_t *t;
    int got = 0;
    for (int s = 0; s < 40 && got == 0; s++)
        got = weft_loader_next(L, &t);
    assert_int_equal(got, rc);
    assert_msg(needle);
    /* Sticky: the next call says the same. */
    assert_int_equal(weft_loader_next(L, &t), rc);
    assert_msg(needle);
    weft_loader_close(L);
}

static char tmp_path[600];
static const char *in_dir(const char *dir, const char *name)
{
    snprintf(tmp_path, sizeof tmp_path, "%s/%s", dir, name);
    return tmp_path;
}
static void del_shard(const char *dir) { unlink(in_dir(dir, "a1.wtok")); }
static void bad_magic(const char *dir) { fx_patch(in_dir(dir, "a1.wtok"), 0, "XXXX", 4); }
static void bad_version(const char *dir)
{
    uint8_t v = 2;
    fx_patch(in_dir(dir, "a1.wtok"), 8, &v, 1);
}
static void cut_shard(const char *dir) { assert_int_equal(truncate(in_dir(dir, "a1.wtok"), 4096 + 500), 0); }
static void bad_header_sum(const char *dir)
{
    uint8_t v = 1;
    fx_patch(in_dir(dir, "a1.wtok"), 3000, &v, 1);
}
/* The manifest (with a consistent dataset_hash) disagrees with the shard. */
static void checksum_in_manifest(const char *dir)
{
    weft_manifest *m;
    assert_int_equal(weft_manifest_load(dir, &m), 0);
    m->shards[1].checksum ^= 1;
    assert_int_equal(weft_manifest_write(dir, m), 0);
    weft_manifest_free(m);
}

static void test_read_errors(void **st)
{
    (void)st;
    expect_read_error("r_del", del_shard, WEFT_ENOENT, "a1.wtok: shard listed in the manifest is missing");
    expect_read_error("r_magic", bad_magic, WEFT_EDATA, "a1.wtok: not a weft token shard");
    expect_read_error("r_ver", bad_version, WEFT_EDATA, "format version");
    expect_read_error("r_cut", cut_shard, WEFT_EDATA, "a1.wtok: truncated shard");
    expect_read_error("r_hsum", bad_header_sum, WEFT_EDATA, "header checksum");
    expect_read_error("r_man", checksum_in_manifest, WEFT_EDATA, "a1.wtok: offset 32 (payload checksum)");
}

static void test_token_out_of_range(void **st)
{
    (void)st;
    /* Hand-made shard with vocab 300 whose tokens run to 999. */
    uint32_t t[1000];
    uint64_t sum;
    for (int i = 0; i < 1000; i++)
        t[i] = (uint32_t)(i < 500 ? 1 : i);
    fx_mkdir("range");
    fx_write_shard(fx_path("range/x.wtok"), t, 1000, 2, 300, &sum);
    weft_manifest_shard s = {"x.wtok", WEFT_SPLIT_TRAIN, 1000, sum};
    weft_manifest m = {2, 300, 7, 0, 1, &s, NULL};
    assert_int_equal(weft_manifest_write(fx_path("range"), &m), 0);
    weft_loader_options o = opts("range", 10, 4, 0, 1);
    o.shuffle = false;
    weft_loader *L = must_open(&o);
    const int32_t *p;
    int rc = 0;
    for (int i = 0; i < 40 && rc == 0; i++)
        rc = weft_loader_next(L, &p);
    assert_int_equal(rc, WEFT_EDATA);
    /* The first token >= 300 is 500, at index 500: offset 4096 + 1000. */
    assert_msg("x.wtok: token out of range at offset 5096");
    assert_msg("found 500");
    weft_loader_close(L);
}

/* ---- scale ---------------------------------------------------------------------- */

static void test_ten_thousand_shards(void **st)
{
    (void)st;
    enum { NS = 10000 };
    fx_mkdir("many");
    weft_manifest m = {2, 65536, 7, 0, 0, calloc(NS, sizeof(weft_manifest_shard)), NULL};
    char *names = malloc(NS * 32);
    for (int i = 0; i < NS; i++) {
        uint32_t t[40];
        char path[600];
        for (int j = 0; j < 40; j++)
            t[j] = (uint32_t)(i + j);
        snprintf(names + 32 * i, 32, "s%05d.wtok", i);
        snprintf(path, sizeof path, "%s/%s", fx_path("many"), names + 32 * i);
        fx_write_shard(path, t, 40, 2, 65536, &m.shards[i].checksum);
        m.shards[i] = (weft_manifest_shard){names + 32 * i, WEFT_SPLIT_TRAIN, 40, m.shards[i].checksum};
        m.n_shards++;
    }
    assert_int_equal(weft_manifest_write(fx_path("many"), &m), 0);
    free(m.shards);
    free(names);
    int64_t t0 = weft_now_ns();
    weft_loader_options o = opts("many", 16, 64, 0, 1);
    weft_loader *L = must_open(&o);
    const int32_t *t;
    assert_int_equal(weft_loader_next(L, &t), 0);
    double secs = (double)(weft_now_ns() - t0) * 1e-9;
    assert_true(weft_loader_samples(L, 0) == 2 * NS);
    weft_loader_close(L);
    print_message("# 10000 shards: open + first batch in %.3f s\n", secs);
    /* A guard against start-up growing with the shard count; generous. */
    assert_true(secs < 1.0);
}

/* A sparse shard of 2^32 + 4096 two-byte tokens (8 GiB + 8 KiB payload) with
 * known tokens written past the 4 GiB and 8 GiB marks, read back through the
 * loader. The manifest's checksum is not checked by the loader, so the 8 GiB
 * of zeros are never hashed. */
static void test_sparse_shard_over_4gib(void **st)
{
    (void)st;
    const uint64_t count = (1ull << 32) + 4096, T = 1024;
    const char *dir = fx_path("huge");
    char path[600];
    fx_mkdir("huge");
    snprintf(path, sizeof path, "%s/h.wtok", dir);
    uint8_t hdr[WEFT_SHARD_HEADER_SIZE];
    weft_shard_header h = {2, 65536, 7, count, 0x1234};
    weft_shard_header_encode(&h, hdr);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0640);
    assert_true(fd >= 0);
    if (ftruncate(fd, (off_t)(WEFT_SHARD_HEADER_SIZE + count * 2)) != 0) {
        close(fd);
        skip();
    }
    assert_int_equal(pwrite(fd, hdr, sizeof hdr, 0), (ssize_t)sizeof hdr);
    /* Tokens 2^31 .. 2^31+4095 (bytes past 4 GiB) and the last 4096. */
    uint64_t marks[2] = {1ull << 31, count - 4096};
    for (int k = 0; k < 2; k++) {
        uint16_t v[4096];
        for (int j = 0; j < 4096; j++)
            v[j] = (uint16_t)((marks[k] + (uint64_t)j) * 7 % 65536); /* little-endian host */
        assert_int_equal(pwrite(fd, v, sizeof v, (off_t)(WEFT_SHARD_HEADER_SIZE + marks[k] * 2)), (ssize_t)sizeof v);
    }
    close(fd);
    weft_manifest_shard s = {"h.wtok", WEFT_SPLIT_TRAIN, count, 0x1234};
    weft_manifest m = {2, 65536, 7, 0, 1, &s, NULL};
    assert_int_equal(weft_manifest_write(dir, &m), 0);
    weft_loader_options o = opts("huge", (int64_t)T, 1, 0, 1);
    weft_loader *L = must_open(&o);
    uint64_t N = weft_loader_samples(L, 0);
    assert_true(N == (count - 1) / T);
    /* Find the epoch positions of a window past 4 GiB and the last window. */
    weft_shuffle sh;
    weft_shuffle_init(&sh, N, o.seed, 0, 0);
    uint64_t want[2] = {marks[0] / T + 1, N - 1}, pos[2] = {N, N};
    for (uint64_t i = 0; i < N && (pos[0] == N || pos[1] == N); i++) {
        uint64_t w = weft_shuffle_apply(&sh, i);
        for (int k = 0; k < 2; k++)
            if (w == want[k])
                pos[k] = i;
    }
    for (int k = 0; k < 2; k++) {
        const int32_t *t;
        assert_int_equal(weft_loader_seek(L, pos[k]), 0);
        assert_int_equal(weft_loader_next(L, &t), 0);
        for (uint64_t j = 0; j <= T; j++)
            assert_int_equal(t[j], (int32_t)((want[k] * T + j) * 7 % 65536));
    }
    weft_loader_close(L);
    unlink(path);
}

/* ---- I/O modes, wait time, configuration ------------------------------------------ */

static void test_direct_io_same_stream(void **st)
{
    (void)st;
    weft_loader_options o = opts("a", 8, 8, 0, 1);
    uint64_t h = stream_hash(o, 1, 30, NULL, 0);
    o.direct_io = true;
    assert_true(h == stream_hash(o, 1, 30, NULL, 0));
    o.max_open_shards = 1; /* every sample may evict: still the same stream */
    assert_true(h == stream_hash(o, 2, 30, NULL, 0));
    /* tmpfs refuses O_DIRECT: fall back with a warning, same data. */
    struct stat sb;
    if (stat("/dev/shm", &sb) == 0) {
        char dir[64] = "/dev/shm/weft-data-test.XXXXXX", cmd[700];
        if (mkdtemp(dir)) {
            snprintf(cmd, sizeof cmd, "cp -r %s %s/a", fx_path("a"), dir);
            assert_int_equal(system(cmd), 0);
            o.paths[0] = strcat(dir, "/a");
            weft_loader *L = must_open(&o);
            const int32_t *t;
            assert_int_equal(weft_loader_next(L, &t), 0);
            weft_loader_close(L);
            assert_true(h == stream_hash(o, 1, 30, NULL, 0));
            dir[strlen(dir) - 2] = 0;
            snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
            assert_int_equal(system(cmd), 0);
        }
    }
}

static void test_wait_time_measured(void **st)
{
    (void)st;
    weft_loader_options o = opts("a", 8, 8, 0, 1);
    weft_loader *L = must_open(&o);
    const int32_t *t;
    for (int i = 0; i < 10; i++)
        assert_int_equal(weft_loader_next(L, &t), 0);
    assert_true(weft_loader_wait_ns(L) > 0);
    assert_true(weft_loader_last_wait_ns(L) >= 0);
    assert_true(weft_loader_wait_ns(L) >= weft_loader_last_wait_ns(L));
    assert_true(weft_loader_dataset_hash(L) != 0);
    weft_loader_close(L);
}

static void test_options_from_config(void **st)
{
    (void)st;
    const weft_config_key *const tables[] = {weft_data_config_keys, NULL};
    weft_config *cfg;
    weft_loader_options o;
    assert_int_equal(weft_config_new(tables, &cfg), 0);
    weft_loader_options_default(&o);
    assert_int_equal(weft_loader_options_from_config(cfg, &o), WEFT_ECONFIG); /* no path */
    assert_int_equal(weft_config_set(cfg, "data.path", "/x/a, /y/b", "test"), 0);
    assert_int_equal(weft_config_set(cfg, "data.weights", "1,3", "test"), 0);
    assert_int_equal(weft_config_set(cfg, "data.prefetch_depth", "7", "test"), 0);
    assert_int_equal(weft_config_set(cfg, "data.split", "val", "test"), 0);
    assert_int_equal(weft_loader_options_from_config(cfg, &o), 0);
    assert_int_equal(o.n_datasets, 2);
    assert_string_equal(o.paths[1], "/y/b");
    assert_true(o.weights[1] == 3.0);
    assert_int_equal(o.prefetch_depth, 7);
    assert_int_equal(o.io_threads, 4);
    assert_int_equal(o.split, WEFT_SPLIT_VAL);
    assert_int_equal(weft_config_set(cfg, "data.weights", "1", "test"), 0);
    assert_int_equal(weft_loader_options_from_config(cfg, &o), WEFT_ECONFIG);
    weft_config_free(cfg);
}

static int setup(void **st)
{
    (void)st;
    weft_log_set_level(WEFT_LOG_ERROR); /* the O_DIRECT fallback warns */
    fx_setup_root();
    fx_make_dataset("a", spec_a, 4, 2, 65536);
    fx_make_dataset("b", spec_b, 1, 2, 65536);
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    fx_remove_root();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_windows_and_epochs),
        cmocka_unit_test(test_rank_independent_stream),
        cmocka_unit_test(test_resume_exact),
        cmocka_unit_test(test_state_errors),
        cmocka_unit_test(test_blend_within_one_sample),
        cmocka_unit_test(test_blend_loader_counts),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_read_errors),
        cmocka_unit_test(test_token_out_of_range),
        cmocka_unit_test(test_ten_thousand_shards),
        cmocka_unit_test(test_sparse_shard_over_4gib),
        cmocka_unit_test(test_direct_io_same_stream),
        cmocka_unit_test(test_wait_time_measured),
        cmocka_unit_test(test_options_from_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
