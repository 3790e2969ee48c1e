/*
 * fuzz_latest.c -- libFuzzer target for the parsers of a checkpoint
 * directory's small text files: `latest` and a local tier's owner mark
 * (.weft-owner). Any bytes must parse or fail with WEFT_EDATA and a
 * message, never crash; what parses as `latest` is a bare checkpoint file
 * name (no path, no traversal) that parses again to the same step; what
 * parses as a mark is a nonzero identity that prints back to the same
 * text.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/latest.h"
#include "runtime/error.h"

static void owner_mark(const uint8_t *data, size_t n)
{
    uint64_t id = 0;
    int rc = weft_ckpt_parse_owner((const char *)data, n, "fuzz/.weft-owner", &id);
    if (rc != 0) {
        if (rc != WEFT_EDATA || strstr(weft_last_error(), "malformed") == NULL)
            abort();
        return;
    }
    char text[32];
    snprintf(text, sizeof text, "owner %016llx", (unsigned long long)id);
    if (id == 0 || n < 22 || memcmp(text, data, 22) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    owner_mark(data, n);
    char name[64];
    int64_t step, again;
    int rc = weft_ckpt_parse_latest((const char *)data, n, "fuzz/latest", name, sizeof name, &step);
    if (rc != 0) {
        if (rc != WEFT_EDATA || strstr(weft_last_error(), "malformed") == NULL)
            abort();
        return 0;
    }
    if (strchr(name, '/') || strstr(name, "..") || step < 0)
        abort();
    if (!weft_ckpt_parse_name(name, &again) || again != step)
        abort();
    return 0;
}
