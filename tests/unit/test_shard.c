/*
 * test_shard.c -- the on-disk side of data/: shard header encode/decode and
 * every corruption of it, shard open checks (size, manifest agreement,
 * missing file), the manifest grammar and its failures, the dataset writer
 * against hand-made shards, the byte tokenizer, the shuffle bijection,
 * dataset verification and the import probes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/data_fixtures.h"

#include "data/import.h"
#include "data/le.h"
#include "data/shuffle.h"
#include "data/tokenizer.h"
#include "data/verify.h"
#include "data/writer.h"
#include "runtime/error.h"

#define assert_msg(needle) \
    do { if (!strstr(weft_last_error(), needle)) fail_msg("message \"%s\" lacks \"%s\"", weft_last_error(), needle); } while (0)

static const weft_shard_header sample_hdr = {2, 50257, 1, 123456789ull, 0x0123456789abcdefull};

/* ---- header ---------------------------------------------------------------- */

static void test_header_roundtrip(void **st)
{
    (void)st;
    const weft_shard_header cases[] = {
        sample_hdr,
        {4, 128256, 0, 0, 0},
        {2, 1, 9, 1, 1},
        {4, UINT32_MAX, UINT32_MAX, (1ull << 33) + 5, UINT64_MAX}, /* > 4 GiB payload */
        {2, 65536, 1, (1ull << 40), 42},
    };
    uint8_t buf[WEFT_SHARD_HEADER_SIZE];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        weft_shard_header h;
        weft_shard_header_encode(&cases[i], buf);
        assert_memory_equal(buf, WEFT_SHARD_MAGIC, 8);
        assert_int_equal(weft_shard_header_decode(buf, sizeof buf, "x", &h), 0);
        assert_int_equal(h.token_width, cases[i].token_width);
        assert_int_equal(h.vocab_size, cases[i].vocab_size);
        assert_int_equal(h.tokenizer_id, cases[i].tokenizer_id);
        assert_true(h.token_count == cases[i].token_count);
        assert_true(h.payload_checksum == cases[i].payload_checksum);
    }
    /* Explicit little-endian layout, independent of the host. */
    weft_shard_header_encode(&sample_hdr, buf);
    assert_int_equal(buf[16], 2);
    assert_int_equal(weft_le_get32(buf + 20), 50257);
    assert_true(weft_le_get64(buf + 24) == 123456789ull);
    assert_int_equal(buf[32], 0xef);
    assert_int_equal(buf[39], 0x01);
}

/* Every single-byte change anywhere in the header is detected. */
static void test_header_every_byte_flip(void **st)
{
    (void)st;
    uint8_t buf[WEFT_SHARD_HEADER_SIZE];
    weft_shard_header h;
    weft_shard_header_encode(&sample_hdr, buf);
    for (int i = 0; i < WEFT_SHARD_HEADER_SIZE; i++) {
        buf[i] ^= 0x5a;
        assert_int_equal(weft_shard_header_decode(buf, sizeof buf, "flip.wtok", &h), WEFT_EDATA);
        assert_msg("flip.wtok");
        assert_msg("offset");
        buf[i] ^= 0x5a;
    }
    assert_int_equal(weft_shard_header_decode(buf, sizeof buf, "ok", &h), 0);
}

/* Rewrite one field and re-seal the header checksum, so the field check
 * itself (not the checksum) must catch it. */
static void reseal(uint8_t *buf) { weft_le_put64(buf + 4088, XXH3_64bits(buf, 4088)); }

static void expect_field_error(uint8_t *buf, const char *needle)
{
    weft_shard_header h;
    reseal(buf);
    assert_int_equal(weft_shard_header_decode(buf, WEFT_SHARD_HEADER_SIZE, "f.wtok", &h), WEFT_EDATA);
    assert_msg(needle);
    assert_msg("f.wtok");
}

static void test_header_field_errors(void **st)
{
    (void)st;
    uint8_t buf[WEFT_SHARD_HEADER_SIZE];
    weft_shard_header h;
    weft_shard_header_encode(&sample_hdr, buf);
    assert_int_equal(weft_shard_header_decode(buf, 100, "short.wtok", &h), WEFT_EDATA);
    assert_msg("truncated");
    memcpy(buf, "WEFTSHRX", 8);
    assert_int_equal(weft_shard_header_decode(buf, sizeof buf, "m.wtok", &h), WEFT_EDATA);
    assert_msg("magic");
    assert_msg("WEFTSHRX");
    weft_shard_header_encode(&sample_hdr, buf);
    weft_le_put32(buf + 8, 2);
    expect_field_error(buf, "version");
    weft_shard_header_encode(&sample_hdr, buf);
    weft_le_put32(buf + 8, 2); /* version is checked before the checksum */
    assert_int_equal(weft_shard_header_decode(buf, sizeof buf, "v", &h), WEFT_EDATA);
    assert_msg("found 2");
    weft_shard_header_encode(&sample_hdr, buf);
    weft_le_put32(buf + 12, 512);
    expect_field_error(buf, "header size");
    weft_shard_header_encode(&sample_hdr, buf);
    weft_le_put32(buf + 16, 3);
    expect_field_error(buf, "token width");
    weft_shard_header_encode(&sample_hdr, buf);
    weft_le_put32(buf + 20, 0);
    expect_field_error(buf, "vocab");
    weft_le_put32(buf + 20, 70000); /* too big for 2-byte tokens */
    expect_field_error(buf, "vocab");
    weft_shard_header_encode(&sample_hdr, buf);
    weft_le_put64(buf + 24, UINT64_MAX / 2);
    expect_field_error(buf, "token count");
    weft_shard_header_encode(&sample_hdr, buf);
    weft_le_put32(buf + 44, 1);
    expect_field_error(buf, "flags");
    weft_shard_header_encode(&sample_hdr, buf);
    buf[1000] = 1;
    expect_field_error(buf, "offset 1000");
    weft_shard_header_encode(&sample_hdr, buf);
    buf[4090] ^= 1;
    assert_int_equal(weft_shard_header_decode(buf, sizeof buf, "c.wtok", &h), WEFT_EDATA);
    assert_msg("checksum");
}

/* ---- shard files -------------------------------------------------------------- */

static void test_shard_open_checks(void **st)
{
    (void)st;
    uint32_t t[100];
    uint64_t sum;
    int fd, direct;
    weft_shard_header h, want;
    for (int i = 0; i < 100; i++)
        t[i] = (uint32_t)i;
    const char *p = fx_path("s.wtok");
    fx_write_shard(p, t, 100, 2, 1000, &sum);
    want = (weft_shard_header){2, 1000, 7, 100, sum};
    assert_int_equal(weft_shard_open(p, 0, &want, &h, &fd, &direct), 0);
    close(fd);
    assert_true(h.token_count == 100);
    /* O_DIRECT where the filesystem allows it, silent fallback otherwise. */
    assert_int_equal(weft_shard_open(p, 1, &want, &h, &fd, &direct), 0);
    close(fd);
    want.token_count = 99;
    assert_int_equal(weft_shard_open(p, 0, &want, &h, &fd, &direct), WEFT_EDATA);
    assert_msg("token count");
    assert_msg("expected 99");
    want.token_count = 100;
    want.payload_checksum ^= 1;
    assert_int_equal(weft_shard_open(p, 0, &want, &h, &fd, &direct), WEFT_EDATA);
    assert_msg("payload checksum");
    assert_int_equal(truncate(p, 4096 + 150), 0);
    assert_int_equal(weft_shard_open(p, 0, NULL, &h, &fd, &direct), WEFT_EDATA);
    assert_msg("truncated shard");
    assert_msg("offset 4246");
    assert_int_equal(truncate(p, 4096 + 250), 0);
    assert_int_equal(weft_shard_open(p, 0, NULL, &h, &fd, &direct), WEFT_EDATA);
    assert_msg("trailing");
    assert_int_equal(truncate(p, 10), 0);
    assert_int_equal(weft_shard_open(p, 0, NULL, &h, &fd, &direct), WEFT_EDATA);
    assert_msg("truncated shard header");
    unlink(p);
    assert_int_equal(weft_shard_open(p, 0, NULL, &h, &fd, &direct), WEFT_ENOENT);
    assert_msg("s.wtok");
}

/* ---- manifest ------------------------------------------------------------------ */

static const char *good_manifest(void)
{
    static char text[1024];
    weft_manifest_shard s[2] = {{"a.wtok", WEFT_SPLIT_TRAIN, 10, 0xabcdef}, {"b.wtok", WEFT_SPLIT_VAL, 5, 1}};
    weft_manifest m = {2, 256, 1, 0, 2, s, NULL};
    snprintf(text, sizeof text,
             "weft-dataset 1\n# comment\n\ntoken_width 2\nvocab_size 256\ntokenizer_id 1\n"
             "shard train a.wtok 10 0000000000abcdef\nshard val b.wtok 5 0000000000000001\n"
             "dataset_hash %016llx\n", (unsigned long long)weft_manifest_hash(&m));
    return text;
}

static void test_manifest_parse_good(void **st)
{
    (void)st;
    weft_manifest *m;
    const char *t = good_manifest();
    assert_int_equal(weft_manifest_parse(t, strlen(t), "M", &m), 0);
    assert_int_equal(m->n_shards, 2);
    assert_string_equal(m->shards[1].name, "b.wtok");
    assert_int_equal(m->shards[1].split, WEFT_SPLIT_VAL);
    assert_true(m->shards[0].checksum == 0xabcdef);
    assert_true(weft_manifest_tokens(m, -1) == 15);
    assert_true(weft_manifest_tokens(m, WEFT_SPLIT_TRAIN) == 10);
    assert_int_equal(weft_manifest_count(m, WEFT_SPLIT_VAL), 1);
    /* Round trip through the writer: same hash, mode 0640, no temp file. */
    fx_mkdir("man");
    assert_int_equal(weft_manifest_write(fx_path("man"), m), 0);
    weft_manifest *m2;
    assert_int_equal(weft_manifest_load(fx_path("man"), &m2), 0);
    assert_true(m2->hash == m->hash);
    struct stat sb;
    assert_int_equal(stat(fx_path("man/manifest"), &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0640);
    weft_manifest_free(m);
    weft_manifest_free(m2);
}

/* Replace the first occurrence of from by to in the good manifest; expect an
 * error whose message contains needle. */
static void bad_manifest(const char *from, const char *to, const char *needle)
{
    char text[2048];
    const char *g = good_manifest(), *at = strstr(g, from);
    assert_non_null(at);
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - g), g, to, at + strlen(from));
    weft_manifest *m = (weft_manifest *)1;
    assert_int_equal(weft_manifest_parse(text, strlen(text), "dir/manifest", &m), WEFT_EDATA);
    assert_null(m);
    assert_msg(needle);
    assert_msg("dir/manifest");
}

static void test_manifest_errors(void **st)
{
    (void)st;
    weft_manifest *m;
    bad_manifest("weft-dataset 1", "weft-dataset 2", "version");
    bad_manifest("weft-dataset 1", "hello", "not a weft dataset");
    bad_manifest("vocab_size 256", "vocab_size 25x", "vocab_size");
    bad_manifest("vocab_size 256", "vocab_size 0", "vocab_size");
    bad_manifest("vocab_size 256", "vocab_size 70000", "does not fit");
    bad_manifest("token_width 2", "token_width 3", "token_width");
    bad_manifest("tokenizer_id 1", "tokenizer 1", "expected a key");
    bad_manifest("shard train a.wtok", "shard test a.wtok", "split");
    bad_manifest("a.wtok", "../a.wtok", "file name");
    bad_manifest("a.wtok", ".hidden", "file name");
    bad_manifest(" 10 ", " 1O ", "token count");
    bad_manifest(" 10 ", " 010 ", "token count");
    bad_manifest("0000000000abcdef", "0000000000ABCDEF", "hex");
    bad_manifest("0000000000abcdef", "abcdef", "hex");
    bad_manifest(" 10 ", " 11 ", "dataset_hash mismatch");
    bad_manifest("b.wtok", "a.wtok", "dataset_hash mismatch");
    bad_manifest("shard val b.wtok 5", "shard val b.wtok 5 x", "CHECKSUM");
    bad_manifest("dataset_hash", "# dataset_hash", "missing \"dataset_hash\"");
    bad_manifest("tokenizer_id 1\n", "", "missing \"tokenizer_id\"");
    bad_manifest("# comment", "# comm\001ent", "control byte");
    assert_int_equal(weft_manifest_parse("", 0, "e", &m), WEFT_EDATA);
    assert_msg("e");
    assert_int_equal(weft_manifest_parse("weft-dataset 1\0x", 16, "nul", &m), WEFT_EDATA);
    /* Offsets point at the field: "vocab_size 25x" -> the value. */
    bad_manifest("vocab_size 256", "vocab_size 25x", "offset 51");
    /* Duplicate shard names, with a correct hash. */
    weft_manifest_shard s[2] = {{"a.wtok", WEFT_SPLIT_TRAIN, 1, 1}, {"a.wtok", WEFT_SPLIT_VAL, 1, 1}};
    weft_manifest d = {2, 256, 1, 0, 2, s, NULL};
    char text[512];
    snprintf(text, sizeof text, "weft-dataset 1\ntoken_width 2\nvocab_size 256\ntokenizer_id 1\n"
             "shard train a.wtok 1 0000000000000001\nshard val a.wtok 1 0000000000000001\ndataset_hash %016llx\n",
             (unsigned long long)weft_manifest_hash(&d));
    assert_int_equal(weft_manifest_parse(text, strlen(text), "dup", &m), WEFT_EDATA);
    assert_msg("listed twice");
    assert_int_equal(weft_manifest_load(fx_path("nope"), &m), WEFT_ENOENT);
    fx_mkdir("nomanifest");
    assert_int_equal(weft_manifest_load(fx_path("nomanifest"), &m), WEFT_ENOENT);
    assert_msg("manifest");
}

/* ---- dataset writer ------------------------------------------------------------- */

static void test_writer_matches_hand_made(void **st)
{
    (void)st;
    uint32_t t[1000];
    for (int i = 0; i < 1000; i++)
        t[i] = (uint32_t)(i * 37 % 500);
    weft_dataset_writer_options o = {fx_path("w"), 2, 500, 7, 300};
    weft_dataset_writer *w;
    weft_manifest *m;
    assert_int_equal(weft_dataset_writer_open(&o, &w), 0);
    assert_int_equal(weft_dataset_writer_append(w, WEFT_SPLIT_TRAIN, t, 700), 0);
    assert_int_equal(weft_dataset_writer_append(w, WEFT_SPLIT_VAL, t + 700, 300), 0);
    uint32_t big = 500;
    assert_int_equal(weft_dataset_writer_append(w, WEFT_SPLIT_VAL, &big, 1), WEFT_EDATA);
    assert_int_equal(weft_dataset_writer_commit(w, &m), 0);
    weft_dataset_writer_free(w);
    /* 700 train tokens in shards of 300: 300, 300, 100; val: 300. */
    assert_int_equal(m->n_shards, 4);
    assert_true(m->shards[2].tokens == 100);
    assert_int_equal(m->shards[3].split, WEFT_SPLIT_VAL);
    /* Byte-identical to a shard written independently. */
    uint64_t sum;
    fx_write_shard(fx_path("ref.wtok"), t + 300, 300, 2, 500, &sum);
    assert_true(sum == m->shards[1].checksum);
    size_t la, lb;
    char *a = fx_read(fx_path("ref.wtok"), &la), *b = fx_read(fx_path("w/train-000001.wtok"), &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a);
    free(b);
    struct stat sb;
    assert_int_equal(stat(fx_path("w/train-000000.wtok"), &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0640);
    assert_int_equal(stat(fx_path("w/.train-000000.wtok.tmp"), &sb), -1);
    weft_verify_report rep;
    assert_int_equal(weft_dataset_verify(fx_path("w"), NULL, NULL, NULL, &rep), 0);
    assert_int_equal(rep.bad, 0);
    assert_true(rep.tokens == 1000);
    weft_manifest_free(m);
}

static void test_writer_abandoned_and_inferred(void **st)
{
    (void)st;
    uint32_t t[10] = {1, 2, 3, 4, 70000, 6, 7, 8, 9, 10};
    weft_dataset_writer_options o = {fx_path("ab"), 4, 0, 0, 4};
    weft_dataset_writer *w;
    assert_int_equal(weft_dataset_writer_open(&o, &w), 0);
    assert_int_equal(weft_dataset_writer_append(w, WEFT_SPLIT_TRAIN, t, 10), 0);
    weft_dataset_writer_free(w); /* no commit: nothing may remain */
    assert_int_equal(rmdir(fx_path("ab")), 0);
    o.dir = fx_path("inf");
    weft_manifest *m;
    assert_int_equal(weft_dataset_writer_open(&o, &w), 0);
    assert_int_equal(weft_dataset_writer_append(w, WEFT_SPLIT_TRAIN, t, 10), 0);
    assert_int_equal(weft_dataset_writer_commit(w, &m), 0);
    weft_dataset_writer_free(w);
    assert_int_equal(m->vocab_size, 70001);
    weft_manifest_free(m);
    /* 2-byte tokens cannot hold 70000. */
    o.dir = fx_path("inf2");
    o.token_width = 2;
    assert_int_equal(weft_dataset_writer_open(&o, &w), 0);
    assert_int_equal(weft_dataset_writer_append(w, WEFT_SPLIT_TRAIN, t, 10), WEFT_EDATA);
    weft_dataset_writer_free(w);
}

/* ---- tokenizer, shuffle --------------------------------------------------------- */

static void test_tokenizer(void **st)
{
    (void)st;
    const uint8_t in[] = "h\xc3\xa9llo\0x";
    uint32_t t[16];
    char out[16];
    uint64_t dropped = 0;
    size_t n = weft_tokenizer_bytes_encode(in, 8, t, &dropped);
    assert_int_equal(n, 7);
    assert_true(dropped == 1);
    assert_int_equal(t[1], 0xc3);
    assert_int_equal(t[6], 'x');
    t[n++] = WEFT_BYTES_EOD;
    assert_int_equal(weft_tokenizer_bytes_decode(t, n, out, 1), 8);
    assert_memory_equal(out, "h\xc3\xa9llox\n", 8);
}

static void check_bijection(uint64_t n, uint64_t seed, uint64_t epoch)
{
    weft_shuffle s;
    uint8_t *seen = calloc(n, 1);
    weft_shuffle_init(&s, n, seed, 3, epoch);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = weft_shuffle_apply(&s, i);
        assert_true(v < n);
        assert_int_equal(seen[v], 0);
        seen[v] = 1;
    }
    free(seen);
}

static void test_shuffle_bijection(void **st)
{
    (void)st;
    for (uint64_t n = 1; n <= 300; n++)
        check_bijection(n, n * 7, n % 3);
    check_bijection(65536, 1, 0);
    check_bijection(100003, 2, 5);
    /* Deterministic; epochs and seeds give different orders. */
    weft_shuffle a, b, c;
    weft_shuffle_init(&a, 1000, 42, 0, 0);
    weft_shuffle_init(&b, 1000, 42, 0, 1);
    weft_shuffle_init(&c, 1000, 43, 0, 0);
    int diff_b = 0, diff_c = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        diff_b += weft_shuffle_apply(&a, i) != weft_shuffle_apply(&b, i);
        diff_c += weft_shuffle_apply(&a, i) != weft_shuffle_apply(&c, i);
    }
    assert_true(diff_b > 900 && diff_c > 900);
    weft_shuffle_init(&b, 1000, 42, 0, 0);
    for (uint64_t i = 0; i < 1000; i++)
        assert_true(weft_shuffle_apply(&a, i) == weft_shuffle_apply(&b, i));
    /* Huge domains stay in range. */
    weft_shuffle_init(&a, (1ull << 62) + 3, 1, 0, 0);
    for (uint64_t i = 0; i < 1000; i++)
        assert_true(weft_shuffle_apply(&a, i * 977) < (1ull << 62) + 3);
}

/* ---- verify ---------------------------------------------------------------------- */

static int n_bad;
static char bad_msgs[4096];
static void on_bad(void *arg, int rc, const char *msg)
{
    (void)arg;
    (void)rc;
    n_bad++;
    strncat(bad_msgs, msg, sizeof bad_msgs - strlen(bad_msgs) - 2);
    strcat(bad_msgs, "\n");
}

static void test_verify_reports_every_bad_shard(void **st)
{
    (void)st;
    fx_shard_spec specs[] = {{"s0.wtok", WEFT_SPLIT_TRAIN, 5000}, {"s1.wtok", WEFT_SPLIT_TRAIN, 5000},
                             {"s2.wtok", WEFT_SPLIT_TRAIN, 5000}, {"s3.wtok", WEFT_SPLIT_VAL, 5000}};
    weft_verify_report rep;
    fx_make_dataset("ver", specs, 4, 2, 1000);
    assert_int_equal(weft_dataset_verify(fx_path("ver"), NULL, NULL, NULL, &rep), 0);
    /* s0: flipped payload byte; s2: token >= vocab (with a matching
     * checksum, so only the range check can see it); s3: missing. */
    uint8_t x = 0xff, zero = 0;
    fx_patch(fx_path("ver/s0.wtok"), 4096 + 776, &zero, 1); /* token 388 -> 256 */
    fx_patch(fx_path("ver/s2.wtok"), 4096 + 2 * 123 + 1, &x, 1);
    unlink(fx_path("ver/s3.wtok"));
    n_bad = 0;
    bad_msgs[0] = 0;
    assert_int_equal(weft_dataset_verify(fx_path("ver"), on_bad, NULL, NULL, &rep), WEFT_EDATA);
    assert_int_equal(n_bad, 3);
    assert_int_equal(rep.bad, 3);
    assert_true(rep.tokens == 5000);
    assert_non_null(strstr(bad_msgs, "s0.wtok: payload checksum mismatch"));
    assert_non_null(strstr(bad_msgs, "s2.wtok: token out of range at offset 4342"));
    assert_non_null(strstr(bad_msgs, "s3.wtok"));
    assert_non_null(strstr(bad_msgs, "missing"));
}

/* ---- import probes ----------------------------------------------------------------- */

static void test_import_probe(void **st)
{
    (void)st;
    uint8_t h[WEFT_LLMC_HEADER_BYTES + 20] = {0};
    weft_import_source s;
    weft_le_put32(h, WEFT_LLMC_MAGIC);
    weft_le_put32(h + 4, 1);
    weft_le_put32(h + 8, 10);
    fx_write(fx_path("l.bin"), (char *)h, sizeof h);
    assert_int_equal(weft_import_probe(fx_path("l.bin"), 4, &s), 0);
    assert_true(s.llmc && s.width == 2 && s.tokens == 10 && s.offset == 1024);
    fx_write(fx_path("l.bin"), (char *)h, sizeof h - 2);
    assert_int_equal(weft_import_probe(fx_path("l.bin"), 2, &s), WEFT_EDATA);
    assert_msg("truncated");
    assert_msg("l.bin");
    weft_le_put32(h + 4, 2);
    fx_write(fx_path("l.bin"), (char *)h, sizeof h);
    assert_int_equal(weft_import_probe(fx_path("l.bin"), 2, &s), WEFT_EDATA);
    assert_msg("version");
    fx_write(fx_path("r.u32"), "abcdefg", 7);
    assert_int_equal(weft_import_probe(fx_path("r.u32"), 4, &s), WEFT_EDATA);
    assert_msg("offset 4");
    assert_int_equal(weft_import_probe(fx_path("r.u32"), 2, &s), WEFT_EDATA);
    fx_write(fx_path("r.u16"), "abcdefgh", 8);
    assert_int_equal(weft_import_probe(fx_path("r.u16"), 2, &s), 0);
    assert_true(!s.llmc && s.tokens == 4);
    assert_int_equal(weft_import_probe(fx_path("none"), 2, &s), WEFT_ENOENT);
}

static int setup(void **st)
{
    (void)st;
    fx_setup_root();
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
        cmocka_unit_test(test_header_roundtrip),
        cmocka_unit_test(test_header_every_byte_flip),
        cmocka_unit_test(test_header_field_errors),
        cmocka_unit_test(test_shard_open_checks),
        cmocka_unit_test(test_manifest_parse_good),
        cmocka_unit_test(test_manifest_errors),
        cmocka_unit_test(test_writer_matches_hand_made),
        cmocka_unit_test(test_writer_abandoned_and_inferred),
        cmocka_unit_test(test_tokenizer),
        cmocka_unit_test(test_shuffle_bijection),
        cmocka_unit_test(test_verify_reports_every_bad_shard),
        cmocka_unit_test(test_import_probe),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
