/*
 * shard.c -- encode, decode and open token shards (see shard.h and
 * docs/data-format.md for the byte layout).
 *
 * Decode checks the fields in the order that gives the most useful message:
 * magic first (is this a shard at all?), then version (a newer weft wrote it),
 * then the header checksum (is the header intact?), then each field. Open
 * additionally checks that the file is exactly as long as the header says, so
 * a truncated copy is caught before any token is read from it.
 */
#include "data/shard.h"
#include "data/le.h"
#include "runtime/error.h"
#include "runtime/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

/* Field offsets in the header. */
enum {
    OFF_MAGIC = 0,
    OFF_VERSION = 8,
    OFF_HEADER_SIZE = 12,
    OFF_WIDTH = 16,
    OFF_VOCAB = 20,
    OFF_COUNT = 24,
    OFF_PAYLOAD_SUM = 32,
    OFF_TOKENIZER = 40,
    OFF_FLAGS = 44,
    OFF_RESERVED = 48,
    OFF_HEADER_SUM = WEFT_SHARD_HEADER_SIZE - 8,
};

void weft_shard_header_encode(const weft_shard_header *h, uint8_t *buf)
{
    memset(buf, 0, WEFT_SHARD_HEADER_SIZE);
    memcpy(buf + OFF_MAGIC, WEFT_SHARD_MAGIC, 8);
    weft_le_put32(buf + OFF_VERSION, WEFT_SHARD_VERSION);
    weft_le_put32(buf + OFF_HEADER_SIZE, WEFT_SHARD_HEADER_SIZE);
    weft_le_put32(buf + OFF_WIDTH, h->token_width);
    weft_le_put32(buf + OFF_VOCAB, h->vocab_size);
    weft_le_put64(buf + OFF_COUNT, h->token_count);
    weft_le_put64(buf + OFF_PAYLOAD_SUM, h->payload_checksum);
    weft_le_put32(buf + OFF_TOKENIZER, h->tokenizer_id);
    weft_le_put64(buf + OFF_HEADER_SUM, XXH3_64bits(buf, OFF_HEADER_SUM));
}

static int bad(const char *path, int off, const char *field, const char *expected,
               unsigned long long found)
{
    return weft_error(WEFT_EDATA, "%s: bad shard header at offset %d (%s): expected %s, found %llu",
                      path, off, field, expected, found);
}

/* Printable form of the 8 magic bytes for a message. */
static void show_magic(const uint8_t *p, char *out)
{
    for (int i = 0; i < 8; i++)
        out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '.';
    out[8] = '\0';
}

static int check_fields(const uint8_t *buf, const char *path)
{
    uint32_t width = weft_le_get32(buf + OFF_WIDTH);
    uint32_t vocab = weft_le_get32(buf + OFF_VOCAB);
    uint64_t count = weft_le_get64(buf + OFF_COUNT);

    if (weft_le_get32(buf + OFF_HEADER_SIZE) != WEFT_SHARD_HEADER_SIZE)
        return bad(path, OFF_HEADER_SIZE, "header size", "4096",
                   weft_le_get32(buf + OFF_HEADER_SIZE));
    if (width != 2 && width != 4)
        return bad(path, OFF_WIDTH, "token width", "2 or 4", width);
    if (vocab == 0 || (width == 2 && vocab > 65536))
        return bad(path, OFF_VOCAB, "vocab size", width == 2 ? "1..65536 for 2-byte tokens"
                                                             : "at least 1", vocab);
    /* Keep every byte offset representable as a signed 64-bit off_t. */
    if (count > (uint64_t)(INT64_MAX - WEFT_SHARD_HEADER_SIZE) / width)
        return bad(path, OFF_COUNT, "token count", "a count whose bytes fit in 63 bits", count);
    if (weft_le_get32(buf + OFF_FLAGS) != 0)
        return bad(path, OFF_FLAGS, "flags", "0", weft_le_get32(buf + OFF_FLAGS));
    for (int i = OFF_RESERVED; i < OFF_HEADER_SUM; i++)
        if (buf[i] != 0)
            return bad(path, i, "reserved byte", "0", buf[i]);
    return 0;
}

int weft_shard_header_decode(const uint8_t *buf, size_t len, const char *path,
                             weft_shard_header *out)
{
    char magic[9];
    if (len < WEFT_SHARD_HEADER_SIZE)
        return weft_error(WEFT_EDATA, "%s: truncated shard header at offset %zu: expected %d header bytes, found %zu",
                          path, len, WEFT_SHARD_HEADER_SIZE, len);
    if (memcmp(buf + OFF_MAGIC, WEFT_SHARD_MAGIC, 8) != 0) {
        show_magic(buf, magic);
        return weft_error(WEFT_EDATA, "%s: not a weft token shard: at offset 0 expected magic \"%s\", found \"%s\"",
                          path, WEFT_SHARD_MAGIC, magic);
    }
    uint32_t version = weft_le_get32(buf + OFF_VERSION);
    if (version != WEFT_SHARD_VERSION)
        return weft_error(WEFT_EDATA, "%s: bad shard header at offset %d (format version): expected %d, found %u%s",
                          path, OFF_VERSION, WEFT_SHARD_VERSION, version,
                          version > WEFT_SHARD_VERSION ? " (written by a newer weft?)" : "");
    uint64_t want = XXH3_64bits(buf, OFF_HEADER_SUM);
    uint64_t got = weft_le_get64(buf + OFF_HEADER_SUM);
    if (want != got)
        return weft_error(WEFT_EDATA, "%s: shard header checksum mismatch at offset %d: expected %016llx (computed), found %016llx; the header is corrupt",
                          path, OFF_HEADER_SUM, (unsigned long long)want, (unsigned long long)got);
    WEFT_CHECK(check_fields(buf, path));
    out->token_width = weft_le_get32(buf + OFF_WIDTH);
    out->vocab_size = weft_le_get32(buf + OFF_VOCAB);
    out->token_count = weft_le_get64(buf + OFF_COUNT);
    out->payload_checksum = weft_le_get64(buf + OFF_PAYLOAD_SUM);
    out->tokenizer_id = weft_le_get32(buf + OFF_TOKENIZER);
    return 0;
}

int weft_shard_header_match(const weft_shard_header *h, const weft_shard_header *e,
                            const char *path)
{
    const char *what = "the manifest";
    if (h->token_count != e->token_count)
        return weft_error(WEFT_EDATA, "%s: offset %d (token count): expected %llu (%s), found %llu",
                          path, OFF_COUNT, (unsigned long long)e->token_count, what,
                          (unsigned long long)h->token_count);
    if (h->payload_checksum != e->payload_checksum)
        return weft_error(WEFT_EDATA, "%s: offset %d (payload checksum): expected %016llx (%s), found %016llx",
                          path, OFF_PAYLOAD_SUM, (unsigned long long)e->payload_checksum, what,
                          (unsigned long long)h->payload_checksum);
    if (h->token_width != e->token_width)
        return weft_error(WEFT_EDATA, "%s: offset %d (token width): expected %u (%s), found %u",
                          path, OFF_WIDTH, e->token_width, what, h->token_width);
    if (h->vocab_size != e->vocab_size)
        return weft_error(WEFT_EDATA, "%s: offset %d (vocab size): expected %u (%s), found %u",
                          path, OFF_VOCAB, e->vocab_size, what, h->vocab_size);
    if (h->tokenizer_id != e->tokenizer_id)
        return weft_error(WEFT_EDATA, "%s: offset %d (tokenizer id): expected %u (%s), found %u",
                          path, OFF_TOKENIZER, e->tokenizer_id, what, h->tokenizer_id);
    return 0;
}

static int open_file(const char *path, int direct, int *fd, int *direct_used)
{
    *direct_used = 0;
    if (direct) {
        *fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
        if (*fd >= 0) {
            *direct_used = 1;
            return 0;
        }
        /* tmpfs and some network filesystems refuse O_DIRECT with EINVAL:
         * buffered reads still give correct data. */
        if (errno != EINVAL)
            goto fail;
    }
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd >= 0)
        return 0;
fail:
    if (errno == ENOENT)
        return weft_error(WEFT_ENOENT, "%s: shard listed in the manifest is missing (%s); restore it or rebuild the dataset",
                          path, strerror(errno));
    return weft_error(WEFT_EIO, "%s: cannot open shard: %s", path, strerror(errno));
}

/* Read the header with buffered-or-direct-safe alignment. */
static int read_header(int fd, const char *path, uint8_t *buf, size_t *got)
{
    size_t n = 0;
    while (n < WEFT_SHARD_HEADER_SIZE) {
        ssize_t r = pread(fd, buf + n, WEFT_SHARD_HEADER_SIZE - n, (off_t)n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return weft_error(WEFT_EIO, "%s: read header at offset %zu: %s", path, n, strerror(errno));
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *got = n;
    return 0;
}

static int check_size(int fd, const char *path, const weft_shard_header *h)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return weft_error(WEFT_EIO, "%s: stat: %s", path, strerror(errno));
    uint64_t want = WEFT_SHARD_HEADER_SIZE + weft_shard_payload_bytes(h);
    uint64_t have = (uint64_t)st.st_size;
    if (have < want)
        return weft_error(WEFT_EDATA, "%s: truncated shard: data ends at offset %llu, expected %llu bytes (4096-byte header + %llu tokens x %u bytes)",
                          path, (unsigned long long)have, (unsigned long long)want,
                          (unsigned long long)h->token_count, h->token_width);
    if (have > want)
        return weft_error(WEFT_EDATA, "%s: trailing bytes after offset %llu: expected a file of %llu bytes, found %llu",
                          path, (unsigned long long)want, (unsigned long long)want,
                          (unsigned long long)have);
    return 0;
}

int weft_shard_open(const char *path, int direct, const weft_shard_header *expect,
                    weft_shard_header *h, int *fd_out, int *direct_used)
{
    int fd, rc;
    size_t got = 0;
    uint8_t *buf = NULL;
    WEFT_CHECK(open_file(path, direct, &fd, direct_used));
    /* Aligned so the same read works under O_DIRECT. */
    if (posix_memalign((void **)&buf, WEFT_SHARD_HEADER_SIZE, WEFT_SHARD_HEADER_SIZE) != 0) {
        close(fd);
        return weft_error(WEFT_ENOMEM, "%s: no memory for a shard header", path);
    }
    rc = read_header(fd, path, buf, &got);
    if (rc == 0)
        rc = weft_shard_header_decode(buf, got, path, h);
    if (rc == 0)
        rc = check_size(fd, path, h);
    if (rc == 0 && expect)
        rc = weft_shard_header_match(h, expect, path);
    free(buf);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}
