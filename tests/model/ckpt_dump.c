/*
 * ckpt_dump.c -- a checkpoint's model (GPT-2 or Llama) and one full forward
 * over given tokens, written in llama_dump's format for
 * tests/model/greedy_check.py, which checks weft-generate's greedy tokens
 * against the full forward's logits and, for Llama, against the
 * independent numpy float64 forward of llama_ref.py
 * (tests/tools/test_generate.sh).
 *
 *   ckpt_dump CKPT IDS PROMPT_LEN OUT
 *
 * IDS: the prompt's ids and the generated ones, comma-separated. The model
 * is built as weft-generate builds it: the model.* keys of the configuration
 * stored in the checkpoint, the vocabulary from the token embedding, the
 * weights read whole (weft_ckpt_load_whole), but with activations for the
 * whole sequence, and run through the model interface's full forward
 * (ops->logits), not the key/value cache.
 *
 * Records: "config family=... k=v ..." (Llama's keys as llama_dump writes
 * them), every parameter in buffer order, "tokens" (1, n) i32,
 * "prompt_len" (1) i32, "logits" (1, n, V) f32.
 *
 * Exits 0, 64 on bad usage, 65/66 when the checkpoint does not load, 70
 * when the forward fails, 74 when the file cannot be written.
 */
#include "checkpoint/ckpt.h"
#include "model/lm.h"
#include "runtime/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(int code, const char *what)
{
    fprintf(stderr, "ckpt_dump: %s: %s\n", what, weft_last_error());
    exit(code);
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

static int32_t *parse_ids(const char *s, int *n)
{
    int32_t *v = malloc((strlen(s) + 1) * sizeof *v);
    char *end;
    *n = 0;
    for (const char *p = s; v && *p; p = *end ? end + 1 : end)
        v[(*n)++] = (int32_t)strtol(p, &end, 10);
    return v;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: ckpt_dump CKPT IDS PROMPT_LEN OUT\n");
        return 64;
    }
    static const weft_config_key *const tables[] = {weft_model_config_keys, NULL};
    static const char *const keys[] = {"model.", NULL};
    char path[4300], *ini;
    int64_t shape[2];
    weft_config *cfg;
    if (weft_ckpt_resolve(argv[1], path, sizeof path) || weft_config_new(tables, &cfg) ||
        weft_ckpt_read_config(path, NULL, &ini, NULL) || weft_config_adopt(cfg, ini, strlen(ini), "checkpoint", keys) ||
        weft_ckpt_read_config(path, weft_lm_embedding_name(cfg), NULL, shape))
        die(weft_exit_code(weft_last_error_code()), argv[1]);
    int n, V = (int)shape[0], prompt_len = atoi(argv[3]);
    int32_t *tok = parse_ids(argv[2], &n);
    if (!tok || n < 1 || n > weft_config_int(cfg, "model.context"))
        die(64, "IDS: 1 to model.context ids");
    weft_model_part whole = {.tp_size = 1, .pp_size = 1, .nslots = 1, .micro_batch = 1, .seq_len = n};
    weft_model *m;
    if (weft_lm_new(cfg, V, &whole, 0, &m))
        die(64, "building the model");
    weft_ckpt_state st = {.params = m->param_data, .n = m->n, .tensors = m->params, .ntensors = m->nparams};
    if (weft_ckpt_load_whole(&st, path))
        die(weft_exit_code(weft_last_error_code()), path);
    const float *logits;
    if (m->ops->logits(m, tok, 1, n, &logits))
        die(70, "forward");

    FILE *f = fopen(argv[4], "wb");
    if (!f)
        die(74, argv[4]);
    if (strcmp(weft_config_str(cfg, "model.family"), "llama") == 0) {
        weft_llama_config c;
        weft_llama_config_from(cfg, V, &c);
        fprintf(f, "config family=llama vocab=%d n_layer=%d n_head=%d n_kv_head=%d n_embd=%d ffn_dim=%d context=%d "
                   "rope_theta=%.17g norm_eps=%.17g tie=%d\n", c.vocab, c.n_layer, c.n_head, c.n_kv_head, c.n_embd,
                c.ffn_dim, c.max_seq, c.rope_theta, c.norm_eps, c.tie_embeddings);
    } else {
        fprintf(f, "config family=gpt2 vocab=%d\n", V);
    }
    for (int i = 0; i < m->nparams; i++) {
        const weft_tensor *p = &m->params[i];
        put(f, p->name, "f32", p->ndim, p->shape, m->param_data + p->offset, sizeof(float));
    }
    int64_t tn[2] = {1, n}, one[1] = {1}, lg[3] = {1, n, V};
    int32_t pl = prompt_len;
    put(f, "tokens", "i32", 2, tn, tok, sizeof *tok);
    put(f, "prompt_len", "i32", 1, one, &pl, sizeof pl);
    put(f, "logits", "f32", 3, lg, logits, sizeof *logits);
    if (fclose(f) != 0)
        die(74, argv[4]);
    free(ini);
    free(tok);
    weft_model_free(m);
    weft_config_free(cfg);
    return 0;
}
