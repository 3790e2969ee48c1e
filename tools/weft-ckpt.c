/*
 * weft-ckpt -- look into checkpoints without a job (one process, no MPI):
 *
 *   weft-ckpt ls RUN_DIR|CHECKPOINT_DIR   committed checkpoints, the latest marked
 *   weft-ckpt info CKPT [--config]        step, layout, data, tensors, provenance
 *                                         and the chain of parents
 *   weft-ckpt verify CKPT [--trusted PUB]...  every dataset against its
 *                                         checksum; the signature by a trusted key
 *   weft-ckpt keygen -o KEY               an Ed25519 key pair: KEY, KEY.pub
 *   weft-ckpt sign CKPT --key KEY         sign a checkpoint's seal
 *   weft-ckpt diff A B [--tol X]          max abs / rel difference per tensor
 *   weft-ckpt export CKPT --format hf|safetensors -o OUT [--tokenizer PATH]
 *                                         the weights with Hugging Face names
 *                                         and shapes (hf: a directory with
 *                                         config.json and model.safetensors)
 *   weft-ckpt import SRC [--config config.json] -o OUT.h5
 *                                         a Hugging Face GPT-2 or Llama model
 *                                         as a weft checkpoint (step 0, weights
 *                                         only) for --init-from
 *   weft-ckpt merge LORA_CKPT [--base BASE] -o OUT.h5
 *                                         a LoRA run's adapters folded into
 *                                         its base: an ordinary checkpoint
 *   weft-ckpt release LOCAL_DIR           a local tier's owner mark removed,
 *                                         for a run continued in a new run.dir
 *
 * CKPT is a checkpoint file, or a run directory or checkpoints directory
 * meaning the file its latest names (weft_ckpt_resolve, as --init-from).
 *
 * Options are read by runtime/cli.h (getopt_long): before or after the
 * operands, "--tol X" or "--tol=X".
 * File layout: docs/checkpoint-format.md. Exit status: 0 ok (diff: no
 * difference beyond --tol), 1 diff found differences, 64 bad usage, 65 bad
 * or corrupt checkpoint or Hugging Face file, 66 missing file, 74 I/O error.
 */
#include "checkpoint/ckpt.h"
#include "checkpoint/commit.h"
#include "checkpoint/h5.h"
#include "checkpoint/hf.h"
#include "checkpoint/inspect.h"
#include "checkpoint/owner.h"
#include "checkpoint/seal.h"
#include "checkpoint/sign.h"
#include "checkpoint/sum.h"
#include "runtime/cli.h"
#include "runtime/durable.h"
#include "runtime/error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *usage_text =
    "usage: weft-ckpt ls RUN_DIR|CHECKPOINT_DIR\n"
    "       weft-ckpt info CKPT [--config]\n"
    "       weft-ckpt verify CKPT [--trusted PUBKEY]...\n"
    "       weft-ckpt diff A B [--tol X]\n"
    "       weft-ckpt export CKPT --format hf|safetensors -o OUT [--tokenizer PATH]\n"
    "       weft-ckpt import SRC [--config CONFIG_JSON] -o OUT.h5\n"
    "       weft-ckpt merge LORA_CKPT [--base BASE] -o OUT.h5\n"
    "       weft-ckpt keygen -o KEY\n"
    "       weft-ckpt sign CKPT --key KEY\n"
    "       weft-ckpt release LOCAL_DIR\n"
    "       weft-ckpt COMMAND --help\n"
    "\n"
    "Checkpoints are the HDF5 files weft-train writes (docs/checkpoint-format.md).\n"
    "CKPT (and A, B) is a checkpoint file, or a run directory or checkpoints directory:\n"
    "the checkpoint its latest names.\n"
    "  ls      the committed checkpoints in a directory, newest last, latest marked\n"
    "  info    step, layout, dataset, versions and every tensor's shape (--config: the\n"
    "          full configuration the run used); its identity, signature and provenance\n"
    "          (commit, config hash, datasets, job, host, user, time), and the chain of\n"
    "          parents (--resume, --init-from, import) back to the first, while they are\n"
    "          on disk\n"
    "  verify  recompute every dataset's xxh3 checksum; names each corrupt tensor. With\n"
    "          --trusted PUBKEY (repeatable, or comma-separated) the signature must be\n"
    "          one of those keys' over the checksum table and provenance: unsigned, an\n"
    "          untrusted key, a modified table and a corrupt signature each exit 65 with\n"
    "          their own message\n"
    "  diff    per tensor: max |a-b| and relative, max |a-b| / max |a|; exit 1 if any\n"
    "          relative difference exceeds --tol\n"
    "          (default 0: bitwise identical)\n"
    "  export  the weights with Hugging Face names and shapes: GPT-2's as GPT2LMHeadModel\n"
    "          (transformer.h.0.attn.c_attn.weight is (C, 3C): Conv1D weights transposed;\n"
    "          lm_head tied, not written), Llama's as LlamaForCausalLM (as stored);\n"
    "          --format hf: a new directory OUT with config.json, model.safetensors and the\n"
    "          tokenizer's files (--tokenizer PATH, default the run's data.tokenizer);\n"
    "          --format safetensors: the one file OUT\n"
    "  import  a Hugging Face model as a checkpoint OUT.h5 (step 0, weights only, the\n"
    "          model.* keys in its config) for weft-train --init-from, which takes its\n"
    "          model.* keys from it. SRC is a model directory\n"
    "          (config.json and model.safetensors or model.safetensors.index.json + shards),\n"
    "          an index.json, or one .safetensors file with --config CONFIG_JSON.\n"
    "          config.json's architectures / model_type: GPT2LMHeadModel / gpt2,\n"
    "          LlamaForCausalLM / llama, MistralForCausalLM / mistral; F32, F16, BF16\n"
    "          tensors, stored as f32. Every header field is checked before any data is\n"
    "          read; a bad file exits 65 naming the file, tensor and field, and nothing\n"
    "          is left under OUT.h5\n"
    "  merge   a LoRA run's checkpoint folded into its base: W + (alpha/r) B A for every\n"
    "          adapter, written as an ordinary checkpoint of the base's tensors (weights only,\n"
    "          step 0, the base's configuration) for --init-from and export. The base is the\n"
    "          one the checkpoint names (base_checkpoint), or --base BASE; its weights hash\n"
    "          must match (base_hash). -o, --output OUT.h5 names the file\n"
    "  keygen  a new Ed25519 key pair: -o KEY (secret, mode 0600) and KEY.pub (0644)\n"
    "  sign    check every checksum, then sign the checkpoint with --key KEY (the\n"
    "          file is replaced by a signed copy)\n"
    "  release remove a local tier's owner mark (LOCAL_DIR/.weft-owner, the run whose\n"
    "          checkpoints it holds), so that the next run using it as checkpoint.local_dir\n"
    "          takes them as its own: for a run continued in a new run.dir, which weft-train\n"
    "          otherwise refuses (exit 64). Not while a run is using the directory\n"
    "\n"
    "Options may come before or after the operands, as '--opt value' or '--opt=value'.\n"
    "exit status: 0 ok, 1 diff found differences, 64 bad usage, 65 bad or corrupt\n"
    "checkpoint or Hugging Face file, 66 missing file, 74 I/O error\n";

/* --- ls ------------------------------------------------------------------- */

static int cmd_ls(const char *dir)
{
    char cdir[4200], latest[4300] = "";
    struct stat st;
    WEFT_CHECK(weft_ckpt_dir_of(dir, cdir, sizeof cdir));
    int64_t *steps;
    int n;
    WEFT_CHECK(weft_ckpt_list(cdir, &steps, &n));
    int lrc = weft_ckpt_find_latest(cdir, latest, sizeof latest);
    printf("%s: %d checkpoint%s\n", cdir, n, n == 1 ? "" : "s");
    for (int i = 0; i < n; i++) {
        char name[64], p[4300];
        weft_ckpt_file_name(steps[i], name, sizeof name);
        snprintf(p, sizeof p, "%s/%s", cdir, name);
        double mb = stat(p, &st) == 0 ? (double)st.st_size / 1048576.0 : 0;
        printf("  %s  step %8lld  %9.1f MiB%s\n", name, (long long)steps[i], mb,
               strcmp(p, latest) == 0 ? "  <- latest" : "");
    }
    if (lrc == WEFT_ENOENT)
        printf("  (no latest: nothing committed to resume from)\n");
    else if (lrc)
        printf("  latest: %s\n", weft_last_error());
    free(steps);
    uint64_t owner;
    if (weft_ckpt_owner_read(cdir, &owner) != 0)
        printf("  owner: %s\n", weft_last_error());
    else if (owner)
        printf("  owner: run %016llx (%s, a local tier's mark)\n", (unsigned long long)owner,
               WEFT_CKPT_OWNER_MARK);
    return 0;
}

/* --- release --------------------------------------------------------------- */

static int cmd_release(const char *dir)
{
    char held[96];
    int what = weft_ckpt_tier_held(dir, held, sizeof held);
    uint64_t owner;
    WEFT_CHECK(weft_ckpt_owner_release(dir, &owner));
    if (owner && what == WEFT_TIER_STEPS)
        printf("released %s: its %s were run %016llx's; the next run to use it as checkpoint.local_dir takes "
               "them as its own\n", dir, held, (unsigned long long)owner);
    else if (owner)
        printf("released %s: run %016llx's mark removed; it holds %s\n", dir, (unsigned long long)owner, held);
    else
        printf("%s has no owner mark now and holds %s: the next run to use it as checkpoint.local_dir takes it\n",
               dir, held);
    return 0;
}

/* --- info ------------------------------------------------------------------ */

static void print_attr_i64(hid_t f, const char *name)
{
    int64_t v;
    if (weft_h5_get_i64(f, name, &v) == 0)
        printf("%-15s %lld\n", name, (long long)v);
}

/* The model's family and shape, from the [model] section of the stored
 * configuration: "family=llama n_layer=4 ..." (checkpoints written before
 * model.family existed are GPT-2). */
static void print_model(const char *ini)
{
    const char *sec = strstr(ini, "[model]\n");
    if (!sec)
        return;
    char line[1024] = "";
    size_t len = 0;
    if (!strstr(sec, "\nfamily ="))
        len += (size_t)snprintf(line, sizeof line, " family=gpt2");
    for (const char *p = strchr(sec, '\n') + 1; *p && *p != '[' && len < sizeof line; p = strchr(p, '\n') + 1) {
        const char *eol = strchr(p, '\n');
        if (!eol)
            break;
        const char *eq = memchr(p, '=', (size_t)(eol - p));
        if (eq && eq > p && *p != '#' && *p != ';') {
            int klen = (int)(eq - p), vlen = (int)(eol - eq - 1);
            while (klen > 0 && p[klen - 1] == ' ')
                klen--;
            const char *v = eq + 1;
            while (vlen > 0 && *v == ' ')
                v++, vlen--;
            len += (size_t)snprintf(line + len, sizeof line - len, " %.*s=%.*s", klen, p, vlen, v);
        }
    }
    printf("%-15s%s\n", "model", line);
}

/* --- provenance ---------------------------------------------------------- */

/* The provenance attribute, parsed (v->buf NULL when there is none). */
static int read_prov(hid_t f, const char *path, weft_prov_view *v)
{
    char *text = NULL;
    memset(v, 0, sizeof *v);
    if (H5Aexists(f, "provenance") <= 0)
        return 0;
    WEFT_CHECK(weft_h5_get_str(f, "provenance", &text));
    int rc = weft_prov_parse(text, strlen(text), path, v);
    free(text);
    return rc;
}

static void print_signature(hid_t f)
{
    char *text = NULL, id[17];
    uint8_t pk[32], sig[64];
    uint64_t signed_id;
    if (H5Aexists(f, "signature") <= 0) {
        printf("%-15s none (weft-ckpt sign, or checkpoint.signing_key)\n", "signature");
    } else if (weft_h5_get_str(f, "signature", &text) == 0 &&
               weft_sig_parse(text, strlen(text), "signature", pk, &signed_id, sig) == 0) {
        weft_key_id(pk, id);
        printf("%-15s ed25519, key %s (check it: weft-ckpt verify --trusted KEY.pub)\n", "signature", id);
    } else {
        printf("%-15s malformed: %s\n", "signature", weft_last_error());
    }
    free(text);
}

static void print_prov(const weft_prov_view *v)
{
    printf("%-15s weft %s, source %s\n", "provenance", v->weft_version, v->source_commit);
    printf("%-15s %s by %s@%s, job %s\n", "  written", v->time, v->user, v->host, v->job);
    printf("%-15s %s\n", "  config_hash", v->config_hash);
    for (int i = 0; i < v->ndatasets; i++)
        printf("%-15s %s\n", "  dataset", v->datasets[i]);
}

/* One parent link: 1 to follow it to next (opened), 0 when the chain ends
 * here (said why). */
static int chain_step(const weft_prov_view *v, hid_t *next)
{
    if (!v->has_parent) {
        printf("  (the first: no parent)\n");
        return 0;
    }
    if (strcmp(v->parent_kind, "import") == 0) {
        printf("  <- import     %s (Hugging Face files, hash %016llx): the first\n", v->parent_path,
               (unsigned long long)v->parent);
        return 0;
    }
    uint64_t id;
    hid_t f;
    int64_t step = -1;
    int rc = weft_ckpt_open_file(v->parent_path, &f);
    if (rc == WEFT_ENOENT) {
        printf("  <- %-10s %s: missing (identity %016llx; no longer on disk): the chain ends here\n",
               v->parent_kind, v->parent_path, (unsigned long long)v->parent);
        return 0;
    }
    if (rc == 0 && (rc = weft_ckpt_identity(f, v->parent_path, &id)) != 0)
        H5Fclose(f);
    if (rc) {
        printf("  <- %-10s %s: unreadable (%s): the chain ends here\n", v->parent_kind, v->parent_path,
               weft_last_error());
        return 0;
    }
    if (id != v->parent) {
        printf("  <- %-10s %s: on disk, but its identity is %016llx, not the recorded %016llx (replaced "
               "since): the chain ends here\n", v->parent_kind, v->parent_path, (unsigned long long)id,
               (unsigned long long)v->parent);
        H5Fclose(f);
        return 0;
    }
    weft_h5_get_i64(f, "step", &step);
    printf("  <- %-10s %s (step %lld, identity %016llx)\n", v->parent_kind, v->parent_path, (long long)step,
           (unsigned long long)id);
    *next = f;
    return 1;
}

/* This checkpoint's provenance, then its parents' while they are on disk. */
static int print_provenance(hid_t f, const char *path)
{
    uint64_t id;
    weft_prov_view v;
    WEFT_CHECK(weft_ckpt_identity(f, path, &id));
    printf("%-15s %016llx\n", "identity", (unsigned long long)id);
    print_signature(f);
    if (read_prov(f, path, &v) != 0) {
        printf("%-15s malformed: %s\n", "provenance", weft_last_error());
        return 0;
    }
    if (!v.buf) {
        printf("%-15s none (written before weft recorded provenance)\n", "provenance");
        return 0;
    }
    print_prov(&v);
    int64_t step = -1;
    weft_h5_get_i64(f, "step", &step);
    printf("chain\n     %-10s %s (step %lld)\n", "this", path, (long long)step);
    hid_t cur = -1;
    int rc = 0;
    for (int depth = 0; depth < 256; depth++) {
        char where[4400];
        snprintf(where, sizeof where, "%s", v.parent_path);
        int go = chain_step(&v, &cur);
        weft_prov_view_free(&v);
        if (!go)
            break;
        rc = read_prov(cur, where, &v);
        if (rc)
            printf("  (its provenance is malformed: %s: the chain ends here)\n", weft_last_error());
        else if (!v.buf)
            printf("  (its provenance was not recorded: the chain ends here)\n");
        H5Fclose(cur);
        if (rc || !v.buf)
            break;
    }
    weft_prov_view_free(&v);
    return 0;
}

static int cmd_info(const char *path, int show_config)
{
    hid_t f;
    WEFT_CHECK(weft_ckpt_open_file(path, &f));
    char *s = NULL, **list = NULL;
    double wall;
    uint64_t h;
    printf("%-15s %s\n", "file", path);
    print_attr_i64(f, "step");
    if (weft_h5_get_str(f, "layout", &s) == 0)
        printf("%-15s %s\n", "layout", s);
    free(s);
    if (weft_h5_get_str(f, "weft_version", &s) == 0)
        printf("%-15s %s\n", "weft_version", s);
    free(s);
    int64_t version = 0;
    size_t block = 0;
    if (weft_h5_get_i64(f, "format_version", &version) == 0 && weft_ckpt_sum_block_of(f, path, &block) == 0) {
        if (block)
            printf("%-15s %lld (checksums in blocks of %zu KiB)\n", "format", (long long)version, block >> 10);
        else
            printf("%-15s %lld (checksums of whole datasets)\n", "format", (long long)version);
    }
    if (weft_h5_get_f64(f, "wall_time", &wall) == 0)
        printf("%-15s %.3f\n", "wall_time", wall);
    if (weft_h5_get_u64(f, "dataset_hash", &h) == 0)
        printf("%-15s %016llx\n", "dataset_hash", (unsigned long long)h);
    print_attr_i64(f, "optim_t");
    if (weft_h5_get_str(f, "config", &s) == 0)
        print_model(s);
    free(s);
    s = NULL;
    int rc = print_provenance(f, path);
    if (rc == 0)
        rc = weft_ckpt_list_datasets(f, path, &list);
    if (rc == 0)
        printf("tensors\n");
    size_t total = 0;
    for (int i = 0; rc == 0 && list[i]; i++) {
        hid_t d = H5Dopen2(f, list[i], H5P_DEFAULT);
        int nd;
        int64_t sh[2];
        if (d >= 0 && weft_h5_shape(d, list[i], &nd, sh) == 0) {
            size_t n = (size_t)sh[0] * (size_t)(nd == 2 ? sh[1] : 1);
            if (strncmp(list[i], "params/", 7) == 0)
                total += n;
            if (nd == 2)
                printf("  %-40s (%lld, %lld)\n", list[i], (long long)sh[0], (long long)sh[1]);
            else
                printf("  %-40s (%lld)\n", list[i], (long long)sh[0]);
        }
        if (d >= 0)
            H5Dclose(d);
    }
    if (rc == 0)
        printf("%-15s %zu (%.2fM)\n", "parameters", total, (double)total / 1e6);
    if (rc == 0 && show_config && weft_h5_get_str(f, "config", &s) == 0) {
        printf("--- config ---\n%s", s);
        free(s);
    }
    weft_ckpt_free_list(list);
    H5Fclose(f);
    return rc;
}

/* --- verify ---------------------------------------------------------------- */

/* With trusted keys: the signature first (attributes only). Without: what
 * signs it, unchecked. */
static int verify_signature(hid_t f, const char *path, const char *trusted)
{
    static uint8_t keys[WEFT_SIGN_MAX_TRUSTED][32];
    int n;
    char signer[17];
    if (!trusted) {
        print_signature(f);
        return 0;
    }
    WEFT_CHECK(weft_sign_load_trusted(trusted, keys, &n));
    WEFT_CHECK(weft_ckpt_sig_check(f, path, (const uint8_t(*)[32])keys, n, signer));
    printf("%s: signature by trusted key %s holds over its checksum table and provenance\n", path, signer);
    return 0;
}

static int cmd_verify(const char *path, const char *trusted)
{
    hid_t f;
    WEFT_CHECK(weft_ckpt_open_file(path, &f));
    int vrc = verify_signature(f, path, trusted);
    if (vrc) {
        H5Fclose(f);
        return vrc;
    }
    char **list;
    int rc = weft_ckpt_list_datasets(f, path, &list), bad = 0, n = 0, first = 0;
    void *scratch = malloc(WEFT_CKPT_SCRATCH);
    for (int i = 0; rc == 0 && scratch && list[i]; i++, n++) {
        int r = weft_ckpt_verify_dataset(f, path, list[i], scratch);
        if (r) {
            fprintf(stderr, "weft-ckpt: %s\n", weft_last_error());
            first = first ? first : r;
            bad++;
        }
    }
    if (rc == 0)
        printf("%s: %d datasets, %d corrupt\n", path, n, bad);
    free(scratch);
    weft_ckpt_free_list(list);
    H5Fclose(f);
    if (rc == 0 && bad)
        rc = weft_error(first, "%s: %d of %d datasets fail their checksum", path, bad, n);
    return rc;
}

/* --- diff ------------------------------------------------------------------ */

static int in_list(char **list, const char *s)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

/* One dataset of both files: 1 if it differs beyond tol. */
static int diff_one(hid_t fa, hid_t fb, const char *d, double tol, double *worst_abs, double *worst_rel)
{
    float *a, *b;
    int na, nb;
    int64_t sa[2], sb[2];
    if (weft_ckpt_read_f32(fa, d, &a, &na, sa) != 0) {
        printf("  %-40s (not f32: skipped)\n", d);
        return 0;
    }
    if (weft_ckpt_read_f32(fb, d, &b, &nb, sb) != 0 || na != nb || sa[0] != sb[0] || sa[1] != sb[1]) {
        printf("  %-40s shapes differ\n", d);
        free(a);
        free(b);
        return 1;
    }
    size_t n = (size_t)sa[0] * (size_t)(na == 2 ? sa[1] : 1);
    /* Relative to the tensor's scale (its largest magnitude): element-wise
     * ratios blow up on elements that are nearly zero. */
    double mabs = 0, scale = 0, mrel;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        if (e > mabs || isnan(e))
            mabs = e;
        scale = fmax(scale, fabs((double)a[i]));
    }
    mrel = mabs == 0 ? 0 : scale > 0 ? mabs / scale : INFINITY;
    free(a);
    free(b);
    printf("  %-40s max abs %.3e  max rel %.3e\n", d, mabs, mrel);
    *worst_abs = fmax(*worst_abs, mabs);
    *worst_rel = fmax(*worst_rel, mrel);
    return !(mrel <= tol);
}

static int cmd_diff(const char *pa, const char *pb, double tol, int *differs)
{
    hid_t fa, fb;
    WEFT_CHECK(weft_ckpt_open_file(pa, &fa));
    int rc = weft_ckpt_open_file(pb, &fb);
    if (rc) {
        H5Fclose(fa);
        return rc;
    }
    char **la = NULL, **lb = NULL;
    rc = weft_ckpt_list_datasets(fa, pa, &la);
    if (rc == 0)
        rc = weft_ckpt_list_datasets(fb, pb, &lb);
    int nd = 0, n = 0;
    double wa = 0, wr = 0;
    for (int i = 0; rc == 0 && la[i]; i++) {
        if (strncmp(la[i], "params/", 7) != 0 && strncmp(la[i], "optim/", 6) != 0)
            continue;
        n++;
        if (!in_list(lb, la[i])) {
            printf("  %-40s only in %s\n", la[i], pa);
            nd++;
        } else {
            nd += diff_one(fa, fb, la[i], tol, &wa, &wr);
        }
    }
    for (int i = 0; rc == 0 && lb[i]; i++)
        if ((!strncmp(lb[i], "params/", 7) || !strncmp(lb[i], "optim/", 6)) && !in_list(la, lb[i])) {
            printf("  %-40s only in %s\n", lb[i], pb);
            nd++;
        }
    if (rc == 0)
        printf("%d tensors, %d differ beyond %g; max abs %.3e, max rel %.3e\n", n, nd, tol, wa, wr);
    *differs = nd > 0;
    weft_ckpt_free_list(la);
    weft_ckpt_free_list(lb);
    H5Fclose(fa);
    H5Fclose(fb);
    return rc;
}

/* --- import and export ----------------------------------------------------- */

static int cmd_import(const char *src, const char *config, const char *out)
{
    weft_hf_import_info info;
    WEFT_CHECK(weft_hf_import(src, config, out, &info));
    printf("%s: %s (%s) from %s: %d tensors from %d file%s (%s), vocabulary %d\n", out, info.family, info.arch, src,
           info.ntensors, info.nfiles, info.nfiles == 1 ? "" : "s", info.dtypes, info.vocab);
    printf("train from it with: --init-from %s %s\n", out, info.model_args);
    return 0;
}

static int cmd_export(const char *path, const char *format, const char *out, const char *tokenizer)
{
    int n;
    char family[16];
    WEFT_CHECK(weft_hf_export(path, format, out, tokenizer, &n, family, sizeof family));
    if (strcmp(family, "gpt2") == 0)
        printf("%s: %d tensors (Hugging Face GPT-2 names; lm_head is tied to transformer.wte.weight)%s\n", out, n,
               strcmp(format, "hf") == 0 ? "; config.json" : "");
    else
        printf("%s: %d tensors (Hugging Face Llama names)%s\n", out, n, strcmp(format, "hf") == 0 ? "; config.json" : "");
    return 0;
}

/* --- merge ------------------------------------------------------------------
 * The base file copied under a temporary name, each adapted weight
 * rewritten in place as W + s B A (in double, rounded once) with its
 * checksum, the optimizer state and the data position dropped, step 0,
 * then renamed to OUT: the same tensors, names and configuration as the
 * base, so whatever reads the base reads the merged file. */

/* lora.alpha from the [lora] section of the stored configuration. */
static int lora_alpha(hid_t f, const char *path, double *alpha)
{
    char *ini = NULL;
    WEFT_CHECK(weft_h5_get_str(f, "config", &ini));
    const char *sec = strstr(ini, "[lora]\n"), *a = sec ? strstr(sec, "\nalpha = ") : NULL;
    const char *next = sec ? strstr(sec + 1, "\n[") : NULL;
    int ok = a && (!next || a < next) && sscanf(a, "\nalpha = %lf", alpha) == 1;
    free(ini);
    return ok ? 0 : weft_error(WEFT_EDATA, "%s: its configuration has no lora.alpha: not a LoRA run's checkpoint",
                               path);
}

/* W (out, in) += s B (out, r) A (r, in) for the adapter pair at dpath (its
 * lora_A), into the open copy of the base, whose checksum block is block. */
static int merge_one(hid_t lf, hid_t out, size_t block, const char *apath, double s, int *merged)
{
    char module[256], bpath[300], wpath[300];
    snprintf(module, sizeof module, "%.*s", (int)(strstr(apath, ".lora_A.weight") - apath), apath);
    snprintf(bpath, sizeof bpath, "%s.lora_B.weight", module);
    snprintf(wpath, sizeof wpath, "%s.weight", module);
    float *A = NULL, *B = NULL, *W = NULL;
    int nda, ndb, ndw;
    int64_t sa[2], sb[2], sw[2];
    int rc = weft_ckpt_read_f32(lf, apath, &A, &nda, sa);
    rc = rc ? rc : weft_ckpt_read_f32(lf, bpath, &B, &ndb, sb);
    rc = rc ? rc : weft_ckpt_read_f32(out, wpath, &W, &ndw, sw);
    if (rc == 0 && (nda != 2 || ndb != 2 || ndw != 2 || sb[1] != sa[0] || sw[0] != sb[0] || sw[1] != sa[1]))
        rc = weft_error(WEFT_EDATA, "%s: A (%lld, %lld) and B (%lld, %lld) do not fit the base's %s (%lld, %lld)",
                        module, (long long)sa[0], (long long)sa[1], (long long)sb[0], (long long)sb[1], wpath,
                        (long long)sw[0], (long long)sw[1]);
    for (int64_t i = 0; rc == 0 && i < sw[0]; i++)
        for (int64_t j = 0; j < sw[1]; j++) {
            double acc = 0;
            for (int64_t k = 0; k < sa[0]; k++)
                acc += (double)B[i * sb[1] + k] * A[k * sa[1] + j];
            W[i * sw[1] + j] = (float)(W[i * sw[1] + j] + s * acc);
        }
    hid_t d = rc == 0 ? H5Dopen2(out, wpath, H5P_DEFAULT) : -1;
    if (rc == 0 && (d < 0 || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, W) < 0))
        rc = weft_h5_error(WEFT_EIO, "cannot write the merged %s", wpath);
    if (rc == 0)
        rc = weft_h5_attr_u64(d, "xxh3_64", weft_ckpt_sum_of(W, (size_t)(sw[0] * sw[1]) * sizeof(float), block));
    if (d >= 0)
        H5Dclose(d);
    free(A);
    free(B);
    free(W);
    *merged += rc == 0;
    return rc;
}

/* The base a LoRA checkpoint names (or --base), checked against its hash. */
static int merge_base(hid_t lf, const char *lora, const char *given, char *base, size_t len)
{
    char *named = NULL;
    uint64_t want, have;
    if (weft_h5_get_str(lf, "base_checkpoint", &named) != 0)
        return weft_error(WEFT_EDATA, "%s names no base checkpoint (attribute base_checkpoint): not a LoRA run's "
                          "checkpoint", lora);
    int rc = weft_ckpt_resolve(given ? given : named, base, len);
    free(named);
    WEFT_CHECK(rc);
    WEFT_CHECK(weft_h5_get_u64(lf, "base_hash", &want));
    weft_h5_unlock(); /* weft_ckpt_params_hash takes the lock itself */
    rc = weft_ckpt_params_hash(base, &have);
    weft_h5_lock();
    WEFT_CHECK(rc);
    if (have != want)
        return weft_error(WEFT_EDATA, "base %s has weights hash %016llx, but %s was trained on a base of hash "
                          "%016llx: not the same base", base, (unsigned long long)have, lora,
                          (unsigned long long)want);
    return 0;
}

/* Drop what belongs to the base's own training, not to its weights. */
static int weights_only(hid_t out, const char *tmp)
{
    static const char *const groups[] = {"optim", "loader"};
    for (int i = 0; i < 2; i++)
        if (H5Lexists(out, groups[i], H5P_DEFAULT) > 0 && H5Ldelete(out, groups[i], H5P_DEFAULT) < 0)
            return weft_h5_error(WEFT_EIO, "%s: cannot drop '%s'", tmp, groups[i]);
    WEFT_CHECK(weft_h5_attr_i64(out, "step", 0));
    return weft_h5_attr_i64(out, "optim_t", 0);
}

/* The merged file's own provenance: its parent is the LoRA checkpoint (by
 * identity; the LoRA run's chain goes on to the base), and the base's
 * signature, which no longer covers these weights, is dropped; the file is
 * unsigned until weft-ckpt sign signs it. */
static int merge_provenance(hid_t lf, const char *lora, hid_t out, const char *tmp)
{
    static weft_prov p;
    char abs[PATH_MAX], *ini = NULL;
    uint64_t id;
    memset(&p, 0, sizeof p);
    WEFT_CHECK(weft_ckpt_identity(lf, lora, &id));
    WEFT_CHECK(weft_h5_get_str(out, "config", &ini));
    int rc = weft_prov_add_common(&p);
    rc = rc ? rc : weft_prov_add(&p, "config_hash", "%016llx", (unsigned long long)weft_prov_config_hash(ini));
    rc = rc ? rc : weft_prov_add(&p, "parent", "%016llx merge %s", (unsigned long long)id,
                                 realpath(lora, abs) ? abs : lora);
    rc = rc ? rc : weft_prov_add(&p, "job", "none (weft-ckpt merge)");
    free(ini);
    WEFT_CHECK(rc);
    if (H5Aexists(out, "signature") > 0 && H5Adelete(out, "signature") < 0)
        return weft_h5_error(WEFT_EIO, "%s: cannot drop the base's signature", tmp);
    return weft_ckpt_seal_single(out, tmp, 0, p.text);
}

static int cmd_merge(const char *lora, const char *given_base, const char *outpath)
{
    hid_t lf, out = -1;
    char base[4300], tmp[4400];
    double alpha;
    WEFT_CHECK(weft_ckpt_open_file(lora, &lf));
    char **list = NULL;
    int rc = merge_base(lf, lora, given_base, base, sizeof base), merged = 0;
    rc = rc ? rc : lora_alpha(lf, lora, &alpha);
    rc = rc ? rc : weft_ckpt_list_datasets(lf, lora, &list);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", outpath, (int)getpid()); /* beside outpath: one rename */
    rc = rc ? rc : weft_durable_copy(base, tmp);
    if (rc == 0 && (out = H5Fopen(tmp, H5F_ACC_RDWR, H5P_DEFAULT)) < 0)
        rc = weft_h5_error(WEFT_EIO, "cannot open %s for writing", tmp);
    size_t block = 0; /* the copy's: a base written in format 1 keeps its whole-bytes checksums (sum.h) */
    rc = rc ? rc : weft_ckpt_sum_block_of(out, base, &block);
    for (int i = 0; rc == 0 && list[i]; i++) {
        const char *a = strstr(list[i], ".lora_A.weight");
        if (strncmp(list[i], "params/", 7) == 0 && a && a[14] == '\0') {
            int64_t r, sh[2];
            int nd;
            float *A;
            rc = weft_ckpt_read_f32(lf, list[i], &A, &nd, sh);
            r = sh[0];
            free(A);
            rc = rc ? rc : merge_one(lf, out, block, list[i], alpha / (double)r, &merged);
        }
    }
    rc = rc || out < 0 ? rc : weights_only(out, tmp);
    rc = rc || out < 0 ? rc : weft_h5_attr_str(out, "lora_merged", lora);
    rc = rc || out < 0 ? rc : merge_provenance(lf, lora, out, tmp);
    if (out >= 0 && H5Fclose(out) < 0)
        rc = rc ? rc : weft_h5_error(WEFT_EIO, "closing %s failed", tmp);
    H5Fclose(lf);
    weft_ckpt_free_list(list);
    if (rc == 0 && merged == 0)
        rc = weft_error(WEFT_EDATA, "%s holds no adapters (params/*.lora_A.weight)", lora);
    if (rc == 0)
        rc = weft_durable_publish(tmp, outpath, WEFT_DURABLE_SYNC);
    if (rc)
        unlink(tmp);
    else
        printf("%s: %s with %d adapters merged (alpha %g) from %s\n", outpath, base, merged, alpha, lora);
    return rc;
}

/* --- keys and signing ------------------------------------------------------ */

static int cmd_keygen(const char *out)
{
    uint8_t pk[32];
    char id[17];
    WEFT_CHECK(weft_sign_keygen(out, pk));
    weft_key_id(pk, id);
    printf("%s: secret key (mode 0600; keep it so: it signs checkpoints as key %s)\n%s.pub: public key (give it to "
           "checkpoint.trusted_keys or weft-ckpt verify --trusted)\n", out, id, out);
    return 0;
}

static int cmd_sign(const char *path, const char *key)
{
    char id[17];
    WEFT_CHECK(weft_ckpt_sign_file(path, key, id));
    printf("%s: signed by key %s\n", path, id);
    return 0;
}

/* --- main ------------------------------------------------------------------ */

enum { OPT_CONFIG = 256, OPT_TOL, OPT_FORMAT, OPT_HF_CONFIG, OPT_BASE, OPT_TOKENIZER, OPT_TRUSTED, OPT_KEY };

static const struct option ckpt_opts[] = {
    {"config", no_argument, NULL, OPT_CONFIG},    /* info */
    {"trusted", required_argument, NULL, OPT_TRUSTED}, /* verify */
    {"key", required_argument, NULL, OPT_KEY},    /* sign */
    {"tol", required_argument, NULL, OPT_TOL},    /* diff */
    {"format", required_argument, NULL, OPT_FORMAT}, /* export */
    {"output", required_argument, NULL, 'o'},     /* export, merge */
    {"base", required_argument, NULL, OPT_BASE},  /* merge */
    {"tokenizer", required_argument, NULL, OPT_TOKENIZER}, /* export */
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* import's: --config takes a file there (info's --config is a switch). */
static const struct option import_opts[] = {
    {"config", required_argument, NULL, OPT_HF_CONFIG},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* What each command takes: its operands and which of ckpt_opts. */
static const struct {
    const char *name, *operands;
    int nops, opts[3];
} cmds[] = {
    {"ls", "one RUN_DIR or CHECKPOINT_DIR", 1, {0}},
    {"info", "one checkpoint FILE or RUN_DIR", 1, {OPT_CONFIG}},
    {"verify", "one checkpoint FILE or RUN_DIR", 1, {OPT_TRUSTED}},
    {"diff", "two checkpoints A B (files or run directories)", 2, {OPT_TOL}},
    {"export", "one checkpoint FILE or RUN_DIR", 1, {OPT_FORMAT, 'o', OPT_TOKENIZER}},
    {"import", "one Hugging Face model DIR, .safetensors file or model.safetensors.index.json", 1,
     {OPT_HF_CONFIG, 'o'}},
    {"merge", "one LoRA checkpoint FILE or RUN_DIR", 1, {OPT_BASE, 'o'}},
    {"keygen", "no operands", 0, {'o'}},
    {"sign", "one checkpoint FILE or RUN_DIR", 1, {OPT_KEY}},
    {"release", "one LOCAL_DIR (a checkpoint.local_dir)", 1, {0}},
};

typedef struct {
    int show_config;
    double tol;
    const char *format, *out, *hf_config, *base, *tokenizer, *key;
    char trusted[8192];          /* --trusted files, comma-separated ("": none) */
} ckpt_args;

static int takes(size_t k, int opt)
{
    for (int i = 0; i < 3 && cmds[k].opts[i]; i++)
        if (cmds[k].opts[i] == opt)
            return 1;
    return 0;
}

/* One command's options and operands; -1 to go on, else an exit status. */
static int parse_cmd(size_t k, weft_cli *cli, ckpt_args *a)
{
    int c;
    while ((c = weft_cli_next(cli)) != WEFT_CLI_END) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            return WEFT_EXIT_OK;
        }
        if (c == WEFT_CLI_ERROR)
            return WEFT_EXIT_USAGE;
        if (!takes(k, c))
            return weft_cli_error(cli, "option '%s' does not apply to '%s'", cli->name, cmds[k].name);
        switch (c) {
        case OPT_CONFIG: a->show_config = 1; break;
        case OPT_TOL:
            if (weft_cli_double(cli, 0, HUGE_VAL, &a->tol) != 0)
                return WEFT_EXIT_USAGE;
            break;
        case OPT_FORMAT: a->format = cli->arg; break;
        case 'o': a->out = cli->arg; break;
        case OPT_HF_CONFIG: a->hf_config = cli->arg; break;
        case OPT_BASE: a->base = cli->arg; break;
        case OPT_TOKENIZER: a->tokenizer = cli->arg; break;
        case OPT_KEY: a->key = cli->arg; break;
        case OPT_TRUSTED: {
            size_t n = strlen(a->trusted);
            if (n + strlen(cli->arg) + 2 > sizeof a->trusted)
                return weft_cli_error(cli, "too many --trusted keys");
            snprintf(a->trusted + n, sizeof a->trusted - n, "%s%s", n ? "," : "", cli->arg);
            break;
        }
        }
    }
    int st = weft_cli_operands(cli, cmds[k].nops, cmds[k].nops, cmds[k].operands);
    if (st)
        return st;
    if (strcmp(cmds[k].name, "export") == 0 && (!a->format || !a->out))
        return weft_cli_error(cli, "export needs --format hf|safetensors and -o OUT");
    if (strcmp(cmds[k].name, "import") == 0 && !a->out)
        return weft_cli_error(cli, "import needs -o OUT.h5");
    if (strcmp(cmds[k].name, "merge") == 0 && !a->out)
        return weft_cli_error(cli, "merge needs -o OUT.h5");
    if (strcmp(cmds[k].name, "keygen") == 0 && !a->out)
        return weft_cli_error(cli, "keygen needs -o KEY (the secret key; KEY.pub is the public one)");
    if (strcmp(cmds[k].name, "sign") == 0 && !a->key)
        return weft_cli_error(cli, "sign needs --key KEY (a secret key from weft-ckpt keygen)");
    return -1;
}

static int run(size_t k, char **ops, const ckpt_args *a, int *differs)
{
    char p[2][4300];
    if (k == 0)
        return cmd_ls(ops[0]);
    if (k == 5)
        return cmd_import(ops[0], a->hf_config, a->out);
    if (k == 7)
        return cmd_keygen(a->out);
    if (k == 9)
        return cmd_release(ops[0]);
    for (int i = 0; i < (k == 3 ? 2 : 1); i++)
        WEFT_CHECK(weft_ckpt_resolve(ops[i], p[i], sizeof p[i]));
    switch (k) {
    case 1: return cmd_info(p[0], a->show_config);
    case 2: return cmd_verify(p[0], a->trusted[0] ? a->trusted : NULL);
    case 3: return cmd_diff(p[0], p[1], a->tol, differs);
    case 6: return cmd_merge(p[0], a->base, a->out);
    case 8: return cmd_sign(p[0], a->key);
    default: return cmd_export(p[0], a->format, a->out, a->tokenizer);
    }
}

int main(int argc, char **argv)
{
    weft_cli cli;
    int c;
    weft_cli_init(&cli, "weft-ckpt", argc, argv, ckpt_opts, WEFT_CLI_COMMAND);
    while ((c = weft_cli_next(&cli)) != WEFT_CLI_END) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            return WEFT_EXIT_OK;
        }
        return c == WEFT_CLI_ERROR ? WEFT_EXIT_USAGE
                                   : weft_cli_error(&cli, "option '%s' goes after the command", cli.name);
    }
    if (cli.nops == 0)
        return weft_cli_error(&cli, "expected a command: ls, info, verify, diff, export, import, merge, keygen, "
                              "sign or release");
    size_t k = 0, ncmds = sizeof cmds / sizeof cmds[0];
    while (k < ncmds && strcmp(cli.ops[0], cmds[k].name) != 0)
        k++;
    if (k == ncmds)
        return weft_cli_error(&cli, "unknown command '%s' (expected ls, info, verify, diff, export, import, "
                              "merge, keygen, sign or release)", cli.ops[0]);
    char prog[64];
    snprintf(prog, sizeof prog, "weft-ckpt %s", cmds[k].name);
    ckpt_args a = {0};
    weft_cli_init(&cli, prog, cli.nops, cli.ops, strcmp(cmds[k].name, "import") ? ckpt_opts : import_opts, 0);
    int st = parse_cmd(k, &cli, &a);
    if (st >= 0)
        return st;
    int differs = 0;
    weft_h5_lock();
    int rc = run(k, cli.ops, &a, &differs);
    weft_h5_unlock();
    if (rc) {
        fprintf(stderr, "weft-ckpt: %s\n", weft_last_error());
        return weft_exit_code(rc);
    }
    return differs ? 1 : 0;
}
