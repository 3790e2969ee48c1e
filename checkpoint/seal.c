/*
 * seal.c -- provenance, identity and signatures in checkpoint files (see
 * seal.h): the commit-time attributes of the job's writer and of one
 * process, the seal read back from a file, signature checks, and signing a
 * committed file.
 */
#include "checkpoint/seal.h"
#include "checkpoint/agree.h"
#include "checkpoint/h5.h"
#include "checkpoint/inspect.h"
#include "checkpoint/sign.h"
#include "runtime/durable.h"
#include "runtime/error.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#if defined(__has_include)
#if __has_include("source_commit.h") /* made by the Makefile in $(BUILD)/gen */
#include "source_commit.h"
#endif
#endif
#ifndef WEFT_SOURCE_COMMIT
#define WEFT_SOURCE_COMMIT "unknown"
#endif
#ifndef WEFT_VERSION
#define WEFT_VERSION "unknown"
#endif

int weft_prov_add_common(weft_prov *p)
{
    char host[256] = "unknown";
    gethostname(host, sizeof host - 1);
    const char *user = getenv("USER");
    struct passwd *pw = user && *user ? NULL : getpwuid(geteuid());
    if (!user || !*user)
        user = pw ? pw->pw_name : "unknown";
    WEFT_CHECK(weft_prov_add(p, "weft_version", "%s", WEFT_VERSION));
    WEFT_CHECK(weft_prov_add(p, "source_commit", "%s", WEFT_SOURCE_COMMIT));
    WEFT_CHECK(weft_prov_add(p, "host", "%s", host));
    return weft_prov_add(p, "user", "%s", user);
}

/* --- the job's writer ------------------------------------------------------- */

int weft_ckpt_set_provenance(weft_ckpt *c, const char *provenance)
{
    int rc = 0;
    if (c->rank == 0) {
        free(c->provenance);
        c->provenance = strdup(provenance ? provenance : "");
        rc = c->provenance ? 0 : weft_error(WEFT_ENOMEM, "out of memory");
        if (rc == 0 && c->opts.signing_key[0])
            rc = weft_ckpt_wrap(weft_sign_load_secret(c->opts.signing_key, c->sign_sk, c->sign_pk),
                                "checkpoint.signing_key");
        c->signing = rc == 0 && c->opts.signing_key[0];
    }
    return weft_ckpt_agree(c->layout.world, rc);
}

static int seal_of_plan(const weft_ckpt *c, const char *prov, char **seal, size_t *len)
{
    weft_seal_entry *e = calloc((size_t)c->plan.nd + 1, sizeof *e);
    if (!e)
        return weft_error(WEFT_ENOMEM, "out of memory");
    for (int i = 0; i < c->plan.nd; i++) {
        const weft_ckpt_dset *d = &c->plan.d[i];
        snprintf(e[i].name, sizeof e[i].name, "%s", d->path);
        e[i].esize = (int)d->esize;
        e[i].ndim = d->ndim;
        e[i].shape[0] = d->shape[0];
        e[i].shape[1] = d->ndim == 2 ? d->shape[1] : 0;
        e[i].xxh3 = c->hashes[i];
    }
    int rc = weft_seal_text(e, c->plan.nd, c->meta.step, prov, seal, len);
    free(e);
    return rc;
}

/* Rank 0: the signature attribute's text for seal ("" unsigned). */
static int sign_seal(const weft_ckpt *c, const char *seal, size_t len, char out[WEFT_SIG_TEXT_LEN + 1])
{
    uint8_t sig[64];
    out[0] = '\0';
    if (!c->signing)
        return 0;
    WEFT_CHECK(weft_sign(c->sign_sk, seal, len, sig));
    weft_sig_format(c->sign_pk, weft_seal_identity(seal, len), sig, out);
    return 0;
}

/* Rank 0's provenance with the time, on every rank (the same bytes). */
static int shared_provenance(weft_ckpt *c, weft_prov *p, int *rc)
{
    int64_t len = 0;
    if (c->rank == 0) {
        p->len = (size_t)snprintf(p->text, sizeof p->text, "%s", c->provenance ? c->provenance : "");
        *rc = weft_prov_add_time(p);
        len = (int64_t)p->len;
    }
    WEFT_CHECK(weft_comm_broadcast(c->wcomm, &len, &len, 1, WEFT_I64, 0));
    return weft_comm_broadcast(c->wcomm, p->text, p->text, (size_t)len + 1, WEFT_U8, 0);
}

int weft_ckpt_seal_job(weft_ckpt *c, hid_t f)
{
    char sig[WEFT_SIG_TEXT_LEN + 1] = "", *seal = NULL;
    size_t slen = 0;
    int rc = 0, brc;
    weft_prov *p = calloc(1, sizeof *p); /* 16 KiB */
    if (!p)
        rc = weft_error(WEFT_ENOMEM, "out of memory"); /* still in every collective below */
    static weft_prov none;
    brc = shared_provenance(c, p ? p : &none, &rc);
    if (brc == 0 && c->rank == 0 && rc == 0 && (rc = seal_of_plan(c, p->text, &seal, &slen)) == 0)
        rc = sign_seal(c, seal, slen, sig);
    free(seal);
    if (rc)
        sig[0] = '\0'; /* every rank writes the same attributes: none */
    if (brc == 0)
        brc = weft_comm_broadcast(c->wcomm, sig, sig, sizeof sig, WEFT_U8, 0);
    int wrc = brc ? brc : weft_h5_attr_str(f, "provenance", p ? p->text : "");
    if (wrc == 0 && sig[0])
        wrc = weft_h5_attr_str(f, "signature", sig);
    free(p);
    return rc ? rc : wrc;
}

/* --- one process -------------------------------------------------------------- */

int weft_ckpt_seal_single(hid_t f, const char *path, int64_t step, const char *prov)
{
    (void)path;
    (void)step;
    static weft_prov p;
    memset(&p, 0, sizeof p);
    p.len = (size_t)snprintf(p.text, sizeof p.text, "%s", prov ? prov : "");
    WEFT_CHECK(weft_prov_add_time(&p));
    return weft_h5_attr_str(f, "provenance", p.text);
}

int weft_prov_hash_files(const char *const *paths, int n, uint64_t *out)
{
    static char buf[1 << 20];
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    for (int i = 0; i < n; i++) {
        int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return weft_error(WEFT_EIO, "cannot read %s: %s", paths[i], strerror(errno));
        ssize_t r;
        while ((r = read(fd, buf, sizeof buf)) > 0)
            XXH3_64bits_update(&st, buf, (size_t)r);
        int e = errno;
        close(fd);
        if (r < 0)
            return weft_error(WEFT_EIO, "reading %s: %s", paths[i], strerror(e));
    }
    *out = XXH3_64bits_digest(&st);
    return 0;
}

/* --- reading ---------------------------------------------------------------------- */

static int entry_of(hid_t f, const char *path, const char *dpath, weft_seal_entry *e)
{
    hid_t d = H5Dopen2(f, dpath, H5P_DEFAULT);
    if (d < 0)
        return weft_h5_error(WEFT_EDATA, "checkpoint %s: cannot open '%s'", path, dpath);
    snprintf(e->name, sizeof e->name, "%s", dpath);
    int rc = weft_h5_shape(d, dpath, &e->ndim, e->shape);
    hid_t t = rc == 0 ? H5Dget_type(d) : -1;
    e->esize = t >= 0 ? (int)H5Tget_size(t) : 0;
    if (t >= 0)
        H5Tclose(t);
    if (rc == 0)
        rc = weft_h5_get_u64(d, "xxh3_64", &e->xxh3);
    H5Dclose(d);
    return rc ? weft_ckpt_wrap(rc, "checkpoint %s: dataset '%s'", path, dpath) : 0;
}

int weft_ckpt_seal_read(hid_t f, const char *path, char **seal, size_t *len)
{
    char **list, *prov = NULL;
    int64_t step;
    WEFT_CHECK(weft_h5_get_i64(f, "step", &step));
    if (H5Aexists(f, "provenance") > 0)
        WEFT_CHECK(weft_ckpt_wrap(weft_h5_get_str(f, "provenance", &prov), "checkpoint %s", path));
    int rc = weft_ckpt_list_datasets(f, path, &list), n = 0;
    while (rc == 0 && list[n])
        n++;
    weft_seal_entry *e = rc == 0 ? calloc((size_t)n + 1, sizeof *e) : NULL;
    if (rc == 0 && !e)
        rc = weft_error(WEFT_ENOMEM, "out of memory");
    for (int i = 0; rc == 0 && i < n; i++)
        rc = entry_of(f, path, list[i], &e[i]);
    if (rc == 0)
        rc = weft_seal_text(e, n, step, prov, seal, len);
    free(e);
    free(prov);
    if (list)
        weft_ckpt_free_list(list);
    return rc;
}

int weft_ckpt_identity(hid_t f, const char *path, uint64_t *id)
{
    char *seal;
    size_t len;
    WEFT_CHECK(weft_ckpt_seal_read(f, path, &seal, &len));
    *id = weft_seal_identity(seal, len);
    free(seal);
    return 0;
}

/* --- checking a signature -------------------------------------------------------- */

static int trusted_key(const uint8_t pk[32], const uint8_t (*trusted)[32], int n)
{
    for (int i = 0; i < n; i++)
        if (memcmp(pk, trusted[i], 32) == 0)
            return 1;
    return 0;
}

int weft_ckpt_sig_check(hid_t f, const char *path, const uint8_t (*trusted)[32], int ntrusted, char signer[17])
{
    char *text = NULL, *seal = NULL, id[17];
    uint8_t pk[32], sig[64];
    uint64_t signed_id, now;
    size_t slen;
    if (signer)
        signer[0] = '\0';
    if (H5Aexists(f, "signature") <= 0)
        return weft_error(WEFT_EDATA, "checkpoint %s is not signed, and only checkpoints signed by a trusted key are "
                          "accepted (checkpoint.trusted_keys; sign it with weft-ckpt sign)", path);
    WEFT_CHECK(weft_ckpt_wrap(weft_h5_get_str(f, "signature", &text), "checkpoint %s", path));
    int rc = weft_sig_parse(text, strlen(text), path, pk, &signed_id, sig);
    free(text);
    WEFT_CHECK(rc);
    weft_key_id(pk, id);
    if (signer)
        snprintf(signer, 17, "%s", id);
    if (!trusted_key(pk, trusted, ntrusted))
        return weft_error(WEFT_EDATA, "checkpoint %s is signed by key %s, which is not one of the trusted keys "
                          "(checkpoint.trusted_keys / --trusted)", path, id);
    WEFT_CHECK(weft_ckpt_seal_read(f, path, &seal, &slen));
    now = weft_seal_identity(seal, slen);
    if (now != signed_id)
        rc = weft_error(WEFT_EDATA, "checkpoint %s has been modified since key %s signed it: its checksum table, "
                        "step or provenance differs (identity %016llx, signed %016llx): tampered", path, id,
                        (unsigned long long)now, (unsigned long long)signed_id);
    else if (!weft_sign_ok(pk, seal, slen, sig))
        rc = weft_error(WEFT_EDATA, "checkpoint %s has an invalid signature for key %s: the signature itself is "
                        "corrupt or forged", path, id);
    free(seal);
    return rc;
}

int weft_ckpt_sig_check_file(const char *path, const uint8_t (*trusted)[32], int ntrusted, char signer[17])
{
    hid_t f;
    weft_h5_lock();
    int rc = weft_ckpt_open_file(path, &f);
    if (rc == 0) {
        rc = weft_ckpt_sig_check(f, path, trusted, ntrusted, signer);
        H5Fclose(f);
    }
    weft_h5_unlock();
    return rc;
}

int weft_ckpt_check_trusted(const char *path, const char *keys, const char *source, char signer[17])
{
    uint8_t (*trusted)[32] = malloc(WEFT_SIGN_MAX_TRUSTED * sizeof *trusted);
    if (!trusted)
        return weft_error(WEFT_ENOMEM, "out of memory");
    int n, rc = weft_ckpt_wrap(weft_sign_load_trusted(keys, trusted, &n), "%s", source);
    if (rc == 0)
        rc = weft_ckpt_sig_check_file(path, (const uint8_t(*)[32])trusted, n, signer);
    free(trusted);
    return rc;
}

/* --- signing a committed file ------------------------------------------------------- */

/* Every dataset against its checksum, then the seal. */
static int verified_seal(const char *path, char **seal, size_t *len)
{
    hid_t f;
    char **list;
    WEFT_CHECK(weft_ckpt_open_file(path, &f));
    int rc = weft_ckpt_list_datasets(f, path, &list);
    void *scratch = rc == 0 ? malloc(WEFT_CKPT_SCRATCH) : NULL;
    if (rc == 0 && !scratch)
        rc = weft_error(WEFT_ENOMEM, "out of memory");
    for (int i = 0; rc == 0 && list[i]; i++)
        rc = weft_ckpt_verify_dataset(f, path, list[i], scratch);
    free(scratch);
    weft_ckpt_free_list(list);
    if (rc == 0)
        rc = weft_ckpt_seal_read(f, path, seal, len);
    H5Fclose(f);
    return rc;
}

static int add_signature(const char *tmp, const char *text)
{
    hid_t fapl = weft_h5_fapl(MPI_COMM_NULL, NULL);
    hid_t f = H5Fopen(tmp, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    if (f < 0)
        return weft_h5_error(WEFT_EIO, "cannot open %s for writing", tmp);
    int rc = weft_h5_attr_str(f, "signature", text);
    if (H5Fclose(f) < 0 && rc == 0)
        rc = weft_h5_error(WEFT_EIO, "closing %s failed", tmp);
    return rc;
}

int weft_ckpt_sign_file(const char *path, const char *keyfile, char signer[17])
{
    uint8_t sk[64], pk[32], sig[64];
    char *seal = NULL, text[WEFT_SIG_TEXT_LEN + 1], dir[4096], tmp[4400];
    size_t len;
    WEFT_CHECK(weft_sign_load_secret(keyfile, sk, pk));
    weft_key_id(pk, signer);
    int rc = verified_seal(path, &seal, &len);
    if (rc == 0)
        rc = weft_sign(sk, seal, len, sig);
    memset(sk, 0, sizeof sk);
    if (rc == 0)
        weft_sig_format(pk, weft_seal_identity(seal, len), sig, text);
    free(seal);
    WEFT_CHECK(rc);
    const char *slash = strrchr(path, '/');
    weft_durable_dir_of(path, dir, sizeof dir);
    snprintf(tmp, sizeof tmp, "%s/.%s.sign.%d", dir, slash ? slash + 1 : path, (int)getpid());
    WEFT_CHECK(weft_durable_copy(path, tmp));
    rc = add_signature(tmp, text);
    if (rc == 0)
        rc = weft_durable_publish(tmp, path, WEFT_DURABLE_SYNC);
    if (rc)
        unlink(tmp);
    return rc;
}
