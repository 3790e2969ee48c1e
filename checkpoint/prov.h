/*
 * prov.h -- a checkpoint's provenance, its seal and its identity, as text
 * (docs/checkpoint-format.md, "Provenance, identity and signatures"). No
 * HDF5 and no I/O here: these are the parsers of attributes read back from
 * a file, fuzzed by tests/fuzz/fuzz_ckpt_attrs.c. Reading and writing them
 * in files is seal.c; keys and Ed25519 are sign.c.
 *
 *   provenance  the root attribute "provenance": "key value\n" lines
 *               (weft_version, source_commit, config_hash, dataset..., parent,
 *               job, host, user, time), built with weft_prov_add.
 *   seal        the text a signature covers: the step, the checksum table
 *               (every dataset's name, element size, shape and xxh3_64,
 *               sorted by name) and the provenance, verbatim.
 *   identity    XXH3-64 of the seal: what a child's "parent" line names.
 *   signature   the root attribute "signature":
 *               "ed25519 <public key, 64 hex> <identity, 16 hex> <signature, 128 hex>".
 */
#ifndef WEFT_CHECKPOINT_PROV_H
#define WEFT_CHECKPOINT_PROV_H

#include <stddef.h>
#include <stdint.h>

#define WEFT_PROV_MAX 16384   /* the longest provenance text */
#define WEFT_PROV_DATASETS 16 /* dataset lines kept by the parser (data.path's blend limit) */

/* A provenance under construction (one line per weft_prov_add). */
typedef struct weft_prov {
    char text[WEFT_PROV_MAX];
    size_t len;
    int overflow;                /* a line did not fit: weft_prov_add returned WEFT_EINVAL */
} weft_prov;

/* Append "KEY VALUE\n"; newlines and other control bytes in the value become
 * spaces. KEY: [a-z_]+. */
int weft_prov_add(weft_prov *p, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The lines every writer records first: weft_version, source_commit (baked
 * in by the Makefile: git describe --always --dirty), host, user. The
 * "time" line is added when the checkpoint is sealed. (In seal.c, with the
 * build's version.) */
int weft_prov_add_common(weft_prov *p);
/* Append "time YYYY-MM-DDTHH:MM:SSZ" (now, UTC). */
int weft_prov_add_time(weft_prov *p);

/* The config_hash line's value: XXH3-64 of the configuration's INI text as
 * stored in the checkpoint's "config" attribute. */
uint64_t weft_prov_config_hash(const char *ini);

/* A parsed provenance: fields point into the parsed text's copy (value
 * strings, NUL-terminated), "" when absent. */
typedef struct weft_prov_view {
    char *buf;                                      /* owns the strings below */
    const char *weft_version, *source_commit, *config_hash, *job, *host, *user, *time;
    const char *datasets[WEFT_PROV_DATASETS];
    int ndatasets;
    int has_parent;
    uint64_t parent;                                /* identity of the parent */
    const char *parent_kind;                        /* resume | init-from | import */
    const char *parent_path;                        /* where it was (may be gone) */
} weft_prov_view;

/* Parse provenance text (need not be NUL-terminated). Unknown keys are kept
 * but not shown (a newer weft's); malformed lines, a repeated key other than
 * dataset, and a parent line that is not "parent HEX16 KIND PATH" are
 * WEFT_EDATA naming origin and the line. */
int weft_prov_parse(const char *text, size_t len, const char *origin, weft_prov_view *out);
void weft_prov_view_free(weft_prov_view *v);

/* One row of the checksum table. */
typedef struct weft_seal_entry {
    char name[192];              /* "params/wte" (no leading slash) */
    int esize;                   /* bytes per element */
    int ndim;                    /* 1 or 2 */
    int64_t shape[2];
    uint64_t xxh3;
} weft_seal_entry;

/* The seal text of a checkpoint (malloc'ed, NUL-terminated; *len without
 * the NUL). Sorts e by name. */
int weft_seal_text(weft_seal_entry *e, int n, int64_t step, const char *prov, char **out, size_t *len);
uint64_t weft_seal_identity(const char *seal, size_t len);

/* The signature attribute. */
#define WEFT_SIG_TEXT_LEN (8 + 64 + 1 + 16 + 1 + 128)
void weft_sig_format(const uint8_t pk[32], uint64_t identity, const uint8_t sig[64], char out[WEFT_SIG_TEXT_LEN + 1]);
int weft_sig_parse(const char *text, size_t len, const char *origin, uint8_t pk[32], uint64_t *identity,
                   uint8_t sig[64]);

/* Key files: one line "weft-ed25519-public HEX64 [comment]" or
 * "weft-ed25519-secret HEX128" (libsodium's 64-byte secret key: seed then
 * public key). */
int weft_key_parse(const char *text, size_t len, const char *origin, int secret, uint8_t *key);
/* A key's short name: the first 8 bytes of the public key in hex. */
void weft_key_id(const uint8_t pk[32], char out[17]);

/* Hex helpers: n bytes <-> 2n lowercase hex digits (parse: 0 or -1). */
void weft_hex_put(const uint8_t *b, size_t n, char *out);
int weft_hex_get(const char *s, size_t n, uint8_t *out);

#endif
