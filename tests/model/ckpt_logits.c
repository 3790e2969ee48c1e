/*
 * ckpt_logits.c -- weft's logits for a model loaded from a checkpoint file,
 * for comparison with an independent reference (tests/ckpt/test_hf.sh:
 * the weights of a Hugging Face model imported by weft-ckpt import, against
 * a numpy float64 forward of the Hugging Face files themselves).
 *
 *   ckpt_logits CKPT B T SEED OUT
 *
 * The model is the one the checkpoint's config attribute describes (its
 * model.* keys, model/lm.h), whole on one process, its vocabulary the
 * embedding's rows; every parameter is read from params/NAME at its shape.
 * Tokens (B, T) are drawn from SplitMix64 seeded SEED. OUT holds records in
 * llama_dump's format (tests/model/llama_dump.c): "config family=...", then
 * "tokens i32 2 B T" and "logits f32 3 B T V", each line followed by its
 * raw little-endian data.
 *
 * Exits 0, 64 on bad usage, 65 when the checkpoint does not fit the model
 * it describes, 70 when the forward fails, 74 when OUT cannot be written.
 */
#include "checkpoint/h5.h"
#include "checkpoint/inspect.h"
#include "model/lm.h"
#include "runtime/error.h"
#include "runtime/rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(int code, const char *what)
{
    fprintf(stderr, "ckpt_logits: %s: %s\n", what, weft_last_error());
    exit(code);
}

/* The model.* keys of the checkpoint and its vocabulary. */
static weft_config *model_config(hid_t f, int *vocab)
{
    static const weft_config_key *const tables[] = {weft_model_config_keys, NULL};
    weft_config *cfg;
    char *ini;
    if (weft_config_new(tables, &cfg) != 0 || weft_h5_get_str(f, "config", &ini) != 0 ||
        weft_config_parse_string(cfg, ini, strlen(ini), "the checkpoint's config") != 0)
        die(65, "config");
    free(ini);
    int llama = strcmp(weft_config_str(cfg, "model.family"), "llama") == 0, nd;
    float *emb;
    int64_t sh[2];
    if (weft_ckpt_read_f32(f, llama ? "params/model.embed_tokens.weight" : "params/wte", &emb, &nd, sh) != 0)
        die(65, "embedding");
    free(emb);
    *vocab = (int)sh[0];
    return cfg;
}

static void load(hid_t f, weft_model *m)
{
    for (int i = 0; i < m->nparams; i++) {
        const weft_tensor *p = &m->params[i];
        char dpath[160];
        float *x;
        int nd;
        int64_t sh[2];
        snprintf(dpath, sizeof dpath, "params/%s", p->name);
        if (weft_ckpt_read_f32(f, dpath, &x, &nd, sh) != 0)
            die(65, dpath);
        if (nd != p->ndim || sh[0] != p->shape[0] || (nd == 2 && sh[1] != p->shape[1])) {
            weft_error(WEFT_EDATA, "shape differs from the model's");
            die(65, dpath);
        }
        memcpy(m->param_data + p->offset, x, p->numel * sizeof(float));
        free(x);
    }
}

static void put(FILE *f, const char *name, const char *dtype, int ndim, const int64_t *shape, const void *data,
                size_t elsize)
{
    size_t n = 1;
    fprintf(f, "%s %s %d", name, dtype, ndim);
    for (int i = 0; i < ndim; i++) {
        fprintf(f, " %lld", (long long)shape[i]);
        n *= (size_t)shape[i];
    }
    fputc('\n', f);
    if (fwrite(data, elsize, n, f) != n)
        die(74, "short write");
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: ckpt_logits CKPT B T SEED OUT\n");
        return 64;
    }
    int B = atoi(argv[2]), T = atoi(argv[3]), V;
    uint64_t seed = strtoull(argv[4], NULL, 10);
    if (B < 1 || T < 1)
        return 64;
    hid_t f;
    weft_h5_lock();
    if (weft_ckpt_open_file(argv[1], &f) != 0)
        die(65, argv[1]);
    weft_config *cfg = model_config(f, &V);
    weft_model_part part = {.tp_size = 1, .pp_size = 1, .nslots = 1, .micro_batch = B, .seq_len = T};
    weft_model *m;
    if (weft_lm_new(cfg, V, &part, 0, &m) != 0)
        die(65, "building the model");
    load(f, m);
    H5Fclose(f);
    weft_h5_unlock();

    int32_t *tok = malloc(sizeof *tok * (size_t)(B * T));
    weft_rng r;
    weft_rng_seed(&r, seed);
    for (int i = 0; i < B * T; i++)
        tok[i] = (int32_t)(weft_rng_u64(&r) % (uint64_t)V);
    const float *logits;
    if (m->ops->logits(m, tok, B, T, &logits) != 0)
        die(70, "logits");
    FILE *o = fopen(argv[5], "wb");
    if (!o)
        die(74, argv[5]);
    fprintf(o, "config family=%s vocab=%d B=%d T=%d\n", weft_config_str(cfg, "model.family"), V, B, T);
    int64_t bt[3] = {B, T, V};
    put(o, "tokens", "i32", 2, bt, tok, sizeof *tok);
    put(o, "logits", "f32", 3, bt, logits, sizeof *logits);
    if (fclose(o) != 0)
        die(74, argv[5]);
    free(tok);
    weft_model_free(m);
    weft_config_free(cfg);
    return 0;
}
