/*
 * fuzz_latest.c -- libFuzzer target for the parser of a checkpoint
 * directory's `latest` file: any bytes must parse or fail with WEFT_EDATA
 * and a message, never crash; what parses is a bare checkpoint file name
 * (no path, no traversal) that parses again to the same step.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/latest.h"
#include "runtime/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
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
