/*
 * safetensors.h -- reading and writing Hugging Face's safetensors files:
 * an 8-byte little-endian header length N, N bytes of JSON
 * ({"NAME": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 * ..., "__metadata__": {"k": "v"}}), then the data area, each tensor's
 * bytes row-major little-endian at [begin, end) of it.
 *
 * Hand-written: the format is a page long and Debian ships no C library
 * for it. The reader is the gate for files from outside, so it checks
 * every header field before it reads a byte of data (weft_st_parse_header,
 * fuzzed by tests/fuzz/fuzz_safetensors.c): the header length against the
 * file and WEFT_ST_MAX_HEADER, the JSON (runtime/json.h, strict), each
 * tensor's fields (exactly dtype, shape, data_offsets), its dtype (F32,
 * F16, BF16; the format's other dtypes are refused by name), shape x dtype
 * size == end - begin, offsets inside the data area, no two tensors
 * overlapping; __metadata__ must map strings to strings. Errors are
 * WEFT_EDATA (exit 65) naming the file, the tensor and the field; a file
 * that cannot be read WEFT_ENOENT (66) or WEFT_EIO (74).
 *
 * The writer (weft-ckpt export) writes f32 tensors in the order given,
 * the header padded with spaces to a multiple of 8 bytes as the reference
 * implementation does, to a temporary name, fsync'd and renamed.
 */
#ifndef WEFT_CHECKPOINT_SAFETENSORS_H
#define WEFT_CHECKPOINT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/dtype.h"
#include "runtime/json.h"

#define WEFT_ST_MAX_HEADER (100u << 20) /* the reference implementation's bound */
#define WEFT_ST_MAX_DIMS 8

typedef struct weft_st_tensor {
    const char *name;            /* NUL-terminated, owned by the file */
    weft_dtype dtype;            /* WEFT_F32, WEFT_F16 or WEFT_BF16 */
    int ndim;
    int64_t shape[WEFT_ST_MAX_DIMS];
    size_t numel;
    uint64_t begin, end;         /* bytes in the data area */
} weft_st_tensor;

typedef struct weft_st_file {
    char path[4096];
    int fd;                      /* -1 for a header parsed from memory */
    uint64_t file_size;
    uint64_t data_start;         /* 8 + the header length */
    int ntensors;
    weft_st_tensor *tensors;     /* (ntensors) in header order */
    const weft_json *metadata;   /* __metadata__, or NULL */
    weft_json_doc *doc;
} weft_st_file;

/* Parse and check a header of len bytes for a data area of data_len bytes;
 * origin names the file in messages. The file's fd is -1. */
int weft_st_parse_header(const char *header, size_t len, uint64_t data_len, const char *origin, weft_st_file **out);

/* Open and check path (the header only; no data is read). */
int weft_st_open(const char *path, weft_st_file **out);
void weft_st_close(weft_st_file *f);

/* The tensor of that name, or NULL. */
const weft_st_tensor *weft_st_find(const weft_st_file *f, const char *name);
/* Its elements as f32 (F16 and BF16 widened exactly) into out (numel). */
int weft_st_read_f32(const weft_st_file *f, const weft_st_tensor *t, float *out);

/* One f32 tensor to write. */
typedef struct weft_st_out {
    const char *name;
    int ndim;                    /* 1 or 2 */
    int64_t shape[2];
    const float *data;           /* row-major */
} weft_st_out;

/* Write n tensors and the metadata (key, value, key, value, ..., NULL) to
 * path through path.tmp.PID, fsync'd and renamed: nothing is left under
 * path on an error. */
int weft_st_write(const char *path, const weft_st_out *t, int n, const char *const *meta);

#endif
