/*
 * fuzz_ckpt_attrs.c -- libFuzzer target for the parsers of the text
 * attributes weft reads back from a checkpoint and of its key files
 * (checkpoint/prov.c): the provenance, the signature, and public and secret
 * key files. (The "config" attribute is INI, fuzzed by fuzz_ini; the other
 * attributes are typed HDF5 scalars.) Every input goes to each parser. Any
 * bytes must parse or fail with WEFT_EDATA and a message naming the origin,
 * never crash; what parses must hold what the readers rely on: a parent's
 * kind is one of three, the fields have no control characters, and a
 * signature or key has one encoding (formatting it again gives the input).
 * The seal of what parsed is computed too (weft_seal_text).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/prov.h"
#include "runtime/error.h"

static void refused(int rc)
{
    if (rc != WEFT_EDATA || !strstr(weft_last_error(), "fuzz"))
        abort();
}

static void clean(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            abort();
}

static void provenance(const char *text, size_t n)
{
    weft_prov_view v;
    int rc = weft_prov_parse(text, n, "fuzz/provenance", &v);
    if (rc) {
        refused(rc);
        return;
    }
    const char *fields[] = {v.weft_version, v.source_commit, v.config_hash, v.job, v.host, v.user, v.time,
                            v.parent_kind, v.parent_path};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        clean(fields[i]);
    for (int i = 0; i < v.ndatasets; i++)
        clean(v.datasets[i]);
    if (v.has_parent && strcmp(v.parent_kind, "resume") && strcmp(v.parent_kind, "init-from") &&
        strcmp(v.parent_kind, "import"))
        abort();
    weft_seal_entry e[2] = {{"params/b", 4, 1, {3, 0}, 1}, {"params/a", 4, 2, {2, 5}, 2}};
    char *seal;
    size_t len;
    if (weft_seal_text(e, 2, 7, v.buf, &seal, &len) != 0 || strlen(seal) != len)
        abort();
    (void)weft_seal_identity(seal, len);
    free(seal);
    weft_prov_view_free(&v);
}

static void signature(const char *text, size_t n)
{
    uint8_t pk[32], sig[64];
    uint64_t id;
    char again[WEFT_SIG_TEXT_LEN + 1];
    int rc = weft_sig_parse(text, n, "fuzz/signature", pk, &id, sig);
    if (rc) {
        refused(rc);
        return;
    }
    weft_sig_format(pk, id, sig, again);
    if (n != WEFT_SIG_TEXT_LEN || memcmp(again, text, n) != 0)
        abort();
}

static void key(const char *text, size_t n, int secret)
{
    uint8_t k[64];
    char hex[129];
    int rc = weft_key_parse(text, n, "fuzz/key", secret, k);
    if (rc) {
        refused(rc);
        return;
    }
    size_t kl = secret ? 64 : 32;
    weft_hex_put(k, kl, hex);
    if (memcmp(text + 20, hex, 2 * kl) != 0) /* after "weft-ed25519-xxxxxx " */
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    char *text = malloc(n ? n : 1); /* exact size: ASan sees any over-read */
    memcpy(text, data, n);
    provenance(text, n);
    signature(text, n);
    key(text, n, 0);
    key(text, n, 1);
    free(text);
    return 0;
}
