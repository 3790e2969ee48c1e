/*
 * tokenizer.c -- the byte-level tokenizer as plain functions (see
 * tokenizer.h for the end-of-document convention); the tokenizer objects
 * are in bpe.c and bpe_load.c.
 */
#include "data/tokenizer.h"

size_t weft_tokenizer_bytes_encode(const uint8_t *in, size_t n, uint32_t *out, uint64_t *dropped)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        out[k] = in[i];
        k += in[i] != WEFT_BYTES_EOD;
    }
    if (dropped)
        *dropped += n - k;
    return k;
}

size_t weft_tokenizer_bytes_decode(const uint32_t *tokens, size_t n, char *out, int eod_newline)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (tokens[i] == WEFT_BYTES_EOD) {
            if (eod_newline)
                out[k++] = '\n';
        } else {
            out[k++] = tokens[i] < WEFT_BYTES_VOCAB ? (char)tokens[i] : '?';
        }
    }
    return k;
}
