/*
 * import.h -- recognise token files written by other tools: raw
 * little-endian u16/u32 arrays (numpy's ndarray.tofile) and llm.c's token
 * shards (a 256 x int32 header: magic 20240520, version 1, token count; then
 * u16 tokens).
 */
#ifndef WEFT_DATA_IMPORT_H
#define WEFT_DATA_IMPORT_H

#include <stdint.h>

#define WEFT_LLMC_MAGIC 20240520
#define WEFT_LLMC_HEADER_BYTES 1024

typedef struct weft_import_source {
    int llmc;              /* 1: llm.c shard */
    unsigned width;        /* bytes per token in the file: 2 or 4 */
    uint64_t offset;       /* byte offset of the first token */
    uint64_t tokens;       /* token count */
} weft_import_source;

/* Inspect the file at path. raw_width (2 or 4) applies to files that are not
 * llm.c shards. WEFT_ENOENT if missing; WEFT_EDATA (naming file, offset,
 * expected and found) for an llm.c header that disagrees with the file size,
 * an unsupported llm.c version, or a raw file whose size is not a multiple of
 * the token width. */
int weft_import_probe(const char *path, unsigned raw_width, weft_import_source *out);

#endif
