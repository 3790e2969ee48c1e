/*
 * fuzz_tokenizer.c -- libFuzzer target for the tokenizer file parsers: any
 * bytes must load or fail with WEFT_EDATA and a message, never crash or
 * leak. The first byte picks the format: even, a tokenizer.json (the rest);
 * odd, a vocab.json and a merges.txt (the rest, cut at the first NUL byte).
 * A tokenizer that loads must encode text (a fixed sample and the input
 * itself) to ids below its vocabulary that decode to that text again.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/bpe.h"
#include "runtime/error.h"

static void round_trip(const weft_tokenizer *t, const char *text, size_t n)
{
    uint32_t *ids = malloc((n + 1) * sizeof *ids);
    char *back = malloc(n + 1);
    size_t k, m;
    if (weft_tokenizer_encode(t, text, n, ids, n + 1, &k) != 0)
        abort();
    for (size_t i = 0; i < k; i++)
        if (ids[i] >= (uint32_t)weft_tokenizer_vocab(t))
            abort();
    if (weft_tokenizer_decode(t, ids, k, back, n + 1, &m) != 0 || m != n || memcmp(back, text, n) != 0)
        abort();
    free(ids);
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char sample[] = "Hello world's  \n\n  it'S 12345 h\xc3\xa9llo <|endoftext|> \xe4\xb8\xad\xe6\x96\x87 x  ";
    weft_tokenizer *t = NULL;
    int rc;
    if (size < 1)
        return 0;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] % 2 == 0) {
        rc = weft_tokenizer_load_mem(text, n, "fuzz.json", NULL, 0, NULL, &t);
    } else {
        const char *nul = memchr(text, '\0', n);
        size_t vn = nul ? (size_t)(nul - text) : n;
        rc = weft_tokenizer_load_mem(text, vn, "vocab.json", nul ? nul + 1 : "", nul ? n - vn - 1 : 0, "merges.txt", &t);
    }
    if (rc != 0) {
        if (rc != WEFT_EDATA && rc != WEFT_ENOMEM)
            abort();
        if (!weft_last_error()[0])
            abort();
        return 0;
    }
    round_trip(t, sample, sizeof sample - 1);
    round_trip(t, text, n < 4096 ? n : 4096);
    weft_tokenizer_free(t);
    return 0;
}
