/*
 * fuzz_shard_header.c -- libFuzzer target for the shard header decoder: any
 * bytes must decode or fail with WEFT_EDATA, never crash or read out of
 * bounds; a header that decodes must re-encode to the same bytes (the format
 * has exactly one encoding of each header).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/shard.h"
#include "runtime/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    weft_shard_header h;
    /* Copy to an exact-size heap buffer so ASan sees any over-read. */
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    int rc = weft_shard_header_decode(buf, size, "fuzz.wtok", &h);
    if (rc == 0) {
        uint8_t again[WEFT_SHARD_HEADER_SIZE];
        weft_shard_header_encode(&h, again);
        if (memcmp(again, buf, WEFT_SHARD_HEADER_SIZE) != 0)
            abort();
    } else if (rc != WEFT_EDATA || weft_last_error()[0] == '\0') {
        abort();
    }
    free(buf);
    return 0;
}
