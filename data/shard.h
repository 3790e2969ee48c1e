/*
 * shard.h -- the token shard file: a fixed 4096-byte header followed by the
 * tokens, and the checks that make a bad shard an error instead of bad data.
 *
 * The header is encoded field by field, little-endian (layout in
 * docs/data-format.md); the payload starts at byte 4096 so it is aligned for
 * O_DIRECT. A shard's payload may exceed 4 GiB: every offset is 64-bit.
 * Decoding never trusts the input: every field is range-checked and the
 * header carries its own checksum, so the decoder is safe on any bytes (it is
 * fuzzed by tests/fuzz/fuzz_shard_header.c).
 */
#ifndef WEFT_DATA_SHARD_H
#define WEFT_DATA_SHARD_H

#include <stddef.h>
#include <stdint.h>

#define WEFT_SHARD_HEADER_SIZE 4096
#define WEFT_SHARD_VERSION 1
#define WEFT_SHARD_MAGIC "WEFTSHRD" /* 8 bytes at offset 0, no terminator */

/* Where the tokens came from; recorded, never interpreted by the loader. */
enum {
    WEFT_TOKENIZER_EXTERNAL = 0, /* imported token arrays (weft-data import) */
    WEFT_TOKENIZER_BYTES = 1,    /* built-in byte-level tokenizer, vocab 256 */
    WEFT_TOKENIZER_FILE = 2,     /* a tokenizer file (BPE); the manifest's tokenizer_hash names it */
};

typedef struct weft_shard_header {
    uint32_t token_width;      /* bytes per token: 2 or 4 */
    uint32_t vocab_size;       /* every token is < vocab_size */
    uint32_t tokenizer_id;     /* WEFT_TOKENIZER_* or a user-chosen id */
    uint64_t token_count;      /* tokens in the payload */
    uint64_t payload_checksum; /* XXH3_64bits of the payload bytes */
} weft_shard_header;

/* Encode h into buf (exactly WEFT_SHARD_HEADER_SIZE bytes), including the
 * header checksum. */
void weft_shard_header_encode(const weft_shard_header *h, uint8_t *buf);

/* Decode and validate len bytes read from the start of the file `path` (used
 * in messages). WEFT_EDATA with a message naming path, offset, expected and
 * found value for: short header, wrong magic, unknown version, bad header
 * checksum, bad field values, non-zero reserved bytes. */
int weft_shard_header_decode(const uint8_t *buf, size_t len, const char *path,
                             weft_shard_header *out);

/* Payload bytes of a shard: token_count * token_width. */
static inline uint64_t weft_shard_payload_bytes(const weft_shard_header *h)
{
    return h->token_count * h->token_width;
}

/* Open the shard at path (O_DIRECT when direct is non-zero; falls back to
 * buffered I/O, setting *direct_used to 0, when the filesystem refuses it),
 * read and decode its header, and check the file size matches the header
 * (truncated or trailing bytes: WEFT_EDATA naming the offset). When expect is
 * not NULL its fields must match the header's (the manifest's view of the
 * shard). Missing file: WEFT_ENOENT; other open/read failures: WEFT_EIO.
 * On success *fd_out is an open descriptor the caller closes. */
int weft_shard_open(const char *path, int direct, const weft_shard_header *expect,
                    weft_shard_header *h, int *fd_out, int *direct_used);

/* Compare a decoded header with what the manifest says about the shard:
 * WEFT_EDATA naming the first field that differs. */
int weft_shard_header_match(const weft_shard_header *h, const weft_shard_header *expect,
                            const char *path);

#endif
