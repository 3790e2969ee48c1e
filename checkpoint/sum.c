/*
 * sum.c -- a dataset's checksum in blocks (sum.h says why).
 */
#include "checkpoint/sum.h"
#include "checkpoint/h5.h"
#include "runtime/error.h"

#include <stdint.h>
#include <string.h>

void weft_ckpt_sum_begin(weft_ckpt_sum *s, size_t block)
{
    s->block = block;
    s->fill = 0;
    s->nblocks = 0;
    s->first = 0;
    XXH3_64bits_reset(&s->cur);
    XXH3_64bits_reset(&s->top);
}

static void le64(uint64_t v, unsigned char b[8])
{
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

/* The current block is done: its hash into the top hash. */
static void finish_block(weft_ckpt_sum *s)
{
    uint64_t h = XXH3_64bits_digest(&s->cur);
    unsigned char b[8];
    le64(h, b);
    XXH3_64bits_update(&s->top, b, 8);
    if (s->nblocks++ == 0)
        s->first = h;
    s->fill = 0;
    XXH3_64bits_reset(&s->cur);
}

void weft_ckpt_sum_update(weft_ckpt_sum *s, const void *p, size_t n)
{
    const unsigned char *b = p;
    if (s->block == 0) {
        XXH3_64bits_update(&s->cur, b, n);
        return;
    }
    while (n > 0) {
        size_t k = s->block - s->fill < n ? s->block - s->fill : n;
        XXH3_64bits_update(&s->cur, b, k);
        s->fill += k, b += k, n -= k;
        if (s->fill == s->block)
            finish_block(s);
    }
}

uint64_t weft_ckpt_sum_end(weft_ckpt_sum *s)
{
    if (s->block == 0)
        return XXH3_64bits_digest(&s->cur);
    if (s->fill > 0 || s->nblocks == 0) /* a last, shorter block; or no bytes at all */
        finish_block(s);
    return s->nblocks == 1 ? s->first : XXH3_64bits_digest(&s->top);
}

uint64_t weft_ckpt_sum_of(const void *p, size_t n, size_t block)
{
    if (block == 0 || n <= block)
        return XXH3_64bits(p, n);
    weft_ckpt_sum s;
    weft_ckpt_sum_begin(&s, block);
    weft_ckpt_sum_update(&s, p, n);
    return weft_ckpt_sum_end(&s);
}

size_t weft_ckpt_sum_nblocks(size_t bytes, size_t block)
{
    return block == 0 || bytes == 0 ? 1 : (bytes + block - 1) / block;
}

uint64_t weft_ckpt_sum_root(const uint64_t *hashes, size_t n)
{
    if (n == 0)
        return XXH3_64bits(NULL, 0);
    if (n == 1)
        return hashes[0];
    XXH3_state_t top;
    XXH3_64bits_reset(&top);
    for (size_t i = 0; i < n; i++) {
        unsigned char b[8];
        le64(hashes[i], b);
        XXH3_64bits_update(&top, b, 8);
    }
    return XXH3_64bits_digest(&top);
}

void weft_ckpt_blocks_begin(weft_ckpt_blocks *b, size_t block, size_t bytes, uint64_t *hash, uint64_t *in)
{
    b->block = block, b->bytes = bytes, b->hash = hash, b->in = in;
    b->next = SIZE_MAX;
}

void weft_ckpt_blocks_update(weft_ckpt_blocks *b, size_t pos, const void *p, size_t n)
{
    const unsigned char *c = p;
    const size_t B = b->block;
    while (n > 0) {
        size_t k = pos / B, end = (k + 1) * B < b->bytes ? (k + 1) * B : b->bytes;
        size_t m = end - pos < n ? end - pos : n;
        if (pos == k * B) { /* a block starts here */
            XXH3_64bits_reset(&b->cur);
            b->next = pos;
        }
        if (b->next == pos) {
            XXH3_64bits_update(&b->cur, c, m);
            b->next = pos + m;
            if (b->next == end) {
                b->hash[k] = XXH3_64bits_digest(&b->cur);
                b->in[k] = 1;
                b->next = SIZE_MAX;
            }
        } else
            b->next = SIZE_MAX; /* the block's start was not fed */
        pos += m, c += m, n -= m;
    }
}

int weft_ckpt_sum_block_of(hid_t f, const char *path, size_t *block)
{
    *block = 0;
    if (H5Aexists(f, "checksum_block") <= 0)
        return 0;
    uint64_t b = 0;
    WEFT_CHECK(weft_h5_get_u64(f, "checksum_block", &b));
    if (b == 0 || b % 4096 != 0 || b > ((uint64_t)1 << 40))
        return weft_error(WEFT_EDATA, "checkpoint %s: attribute checksum_block = %llu is not a positive multiple "
                          "of 4096 bytes", path, (unsigned long long)b);
    *block = (size_t)b;
    return 0;
}
