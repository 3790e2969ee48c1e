/*
 * provenance.c -- what the trainer tells its checkpoints about where they
 * came from, and which checkpoints it accepts (trainer_int.h):
 *   - checkpoint.trusted_keys: a checkpoint is loaded (--resume,
 *     --init-from) only when its signature by one of these keys holds;
 *   - the checkpoint loaded becomes the "parent" of every checkpoint this
 *     run writes, named by its identity;
 *   - the provenance lines (checkpoint/prov.h) rank 0 hands the writer:
 *     version and commit, host and user, the configuration's hash, each
 *     dataset's manifest hash and tokenizer, the parent, the job.
 */
#include "train/trainer_int.h"
#include "checkpoint/agree.h"
#include "checkpoint/h5.h"
#include "checkpoint/inspect.h"
#include "checkpoint/seal.h"
#include "checkpoint/sign.h"
#include "data/loader.h"
#include "data/manifest.h"
#include "runtime/error.h"
#include "runtime/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

static int check_on_rank0(const char *path, const char *keys)
{
    char signer[17];
    WEFT_CHECK(weft_ckpt_check_trusted(path, keys, "checkpoint.trusted_keys", signer));
    WEFT_INFO("checkpoint %s: signature by trusted key %s holds", path, signer);
    return 0;
}

int weft_trainer_check_trusted(weft_trainer *t, const char *path)
{
    const char *keys = weft_config_str(t->cfg, "checkpoint.trusted_keys");
    if (!*keys)
        return 0;
    return weft_ckpt_agree(t->world, t->rank == 0 ? check_on_rank0(path, keys) : 0);
}

void weft_trainer_note_parent(weft_trainer *t, const char *path, const char *kind)
{
    if (t->rank != 0)
        return;
    hid_t f;
    weft_h5_lock();
    int rc = weft_ckpt_open_file(path, &f);
    if (rc == 0) {
        rc = weft_ckpt_identity(f, path, &t->parent_id);
        H5Fclose(f);
    }
    weft_h5_unlock();
    t->has_parent = rc == 0;
    if (rc) {
        WEFT_WARN("provenance: the identity of %s is unknown (%s); checkpoints will name no parent", path,
                  weft_last_error());
        return;
    }
    char abs[PATH_MAX];
    snprintf(t->parent_kind, sizeof t->parent_kind, "%s", kind);
    snprintf(t->parent_path, sizeof t->parent_path, "%s", realpath(path, abs) ? abs : path);
}

/* The manifest of one dataset: its bytes' hash, the dataset hash and the
 * tokenizer: tokenizer_hash when the manifest has that line (weft-data's
 * BPE tokenizers write it: "tokenizer_hash HEX16"; read from the text so
 * that this does not depend on weft_manifest having the field), else its
 * tokenizer_id. */
static int add_dataset(weft_prov *p, const char *dir)
{
    static char text[1 << 20];
    char path[4200], abs[PATH_MAX];
    snprintf(path, sizeof path, "%s/" WEFT_MANIFEST_NAME, dir);
    const char *where = realpath(dir, abs) ? abs : dir;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, text, sizeof text - 1) : -1;
    if (fd >= 0)
        close(fd);
    weft_manifest *m = NULL;
    if (n < 0 || weft_manifest_parse(text, (size_t)n, path, &m) != 0)
        return weft_prov_add(p, "dataset", "%s manifest=unreadable", where);
    text[n] = '\0';
    char tok[64];
    const char *th = strstr(text, "\ntokenizer_hash ");
    if (th)
        snprintf(tok, sizeof tok, "tokenizer_hash=%.16s", th + 16);
    else
        snprintf(tok, sizeof tok, "tokenizer_id=%u", m->tokenizer_id);
    int rc = weft_prov_add(p, "dataset", "%s manifest=%016llx dataset_hash=%016llx %s", where,
                           (unsigned long long)XXH3_64bits(text, (size_t)n), (unsigned long long)m->hash, tok);
    weft_manifest_free(m);
    return rc;
}

static int build(const weft_trainer *t, const char *ini, weft_prov *p)
{
    WEFT_CHECK(weft_prov_add_common(p));
    WEFT_CHECK(weft_prov_add(p, "config_hash", "%016llx", (unsigned long long)weft_prov_config_hash(ini)));
    weft_loader_options o;
    weft_loader_options_default(&o);
    if (*weft_config_str(t->cfg, "data.path") && weft_loader_options_from_config(t->cfg, &o) == 0)
        for (int i = 0; i < o.n_datasets; i++)
            WEFT_CHECK(add_dataset(p, o.paths[i]));
    if (t->has_parent)
        WEFT_CHECK(weft_prov_add(p, "parent", "%016llx %s %s", (unsigned long long)t->parent_id, t->parent_kind,
                                 t->parent_path));
    return weft_prov_add(p, "job", "%s %s ranks=%d", weft_launcher_name(t->ctx->launcher), t->ctx->job_id, t->size);
}

int weft_trainer_provenance(weft_trainer *t, const char *ini)
{
    static weft_prov p;
    int rc = 0;
    memset(&p, 0, sizeof p);
    if (t->rank == 0)
        rc = build(t, ini, &p);
    rc = weft_ckpt_agree(t->world, rc);
    return rc ? rc : weft_ckpt_set_provenance(t->ckpt, p.text);
}
