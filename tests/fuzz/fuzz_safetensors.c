/*
 * fuzz_safetensors.c -- libFuzzer target for the safetensors header checks
 * (checkpoint/safetensors.c, with runtime/json.c under them). The input is
 * a whole file: its first 8 bytes the header length, then the header, then
 * the data area. Any bytes must be accepted or refused with WEFT_EDATA and
 * a message, never crash; what is accepted must hold only what the reader
 * promises before it reads data: every tensor's offsets inside the data
 * area, its byte length shape x dtype, no two tensors overlapping.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/safetensors.h"
#include "runtime/error.h"

static void check(const weft_st_file *f, uint64_t data_len)
{
    for (int i = 0; i < f->ntensors; i++) {
        const weft_st_tensor *t = &f->tensors[i];
        if (t->begin > t->end || t->end > data_len || t->end - t->begin != t->numel * weft_dtype_size(t->dtype))
            abort();
        for (int j = 0; j < i; j++) {
            const weft_st_tensor *u = &f->tensors[j];
            if (t->end > t->begin && u->end > u->begin && t->begin < u->end && u->begin < t->end)
                abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    if (n < 8)
        return 0;
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--)
        len = len << 8 | data[i];
    if (len > n - 8)
        return 0; /* weft_st_open refuses it before parsing */
    weft_st_file *f;
    int rc = weft_st_parse_header((const char *)data + 8, (size_t)len, n - 8 - len, "fuzz.safetensors", &f);
    if (rc != 0) {
        if (rc != WEFT_EDATA || strstr(weft_last_error(), "fuzz.safetensors") == NULL)
            abort();
        return 0;
    }
    check(f, n - 8 - len);
    weft_st_close(f);
    return 0;
}
