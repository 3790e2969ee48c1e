/*
 * llama_dump.c -- one forward of weft's Llama on random weights and tokens,
 * written to a file that tests/model/llama_ref.py recomputes with numpy in
 * float64 from the published definition (tests/model/test_llama_ref.sh).
 *
 *   llama_dump V L NH NKV C F CONTEXT THETA EPS TIE B T SEED OUT [--wide]
 *              [--alloc B2 T2]
 *
 * The model is built with weft_llama_new and weft_llama_init(SEED). With
 * --wide every parameter is then drawn again, wider than the training
 * initialisation (matrices N(0, 1/in), the embedding N(0, 1), RMSNorm
 * weights 1 + N(0, 0.2)): attention is then far from uniform and every norm
 * weight matters, so a mistake anywhere moves the logits well past the
 * comparison's tolerance. --alloc builds the model for B2 x T2 and runs the
 * smaller B x T (the logits must still be packed (B, T, V)).
 *
 * Tokens are drawn from SplitMix64 (runtime/rng.h) seeded SEED + 1, targets
 * likewise, one of them -1 (ignored). Two forwards: without targets (the
 * logits) and with them (the loss).
 *
 * The file is a sequence of records, each a text line and raw
 * little-endian data: first "config k=v ..." (no data), then per array
 * "NAME DTYPE NDIM D0 [D1 ...]" (DTYPE f32, i32 or f64) and its elements:
 * every parameter of weft_llama_model(m)->params in buffer order at its
 * local shape, then "tokens" (B, T), "targets" (B, T), "logits" (B, T, V)
 * and "loss" (1, f64).
 *
 * Exits 0, 64 on bad usage or a configuration weft refuses, 70 when a
 * forward fails, 74 when the file cannot be written.
 */
#include "model/llama.h"
#include "runtime/error.h"
#include "runtime/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(int code, const char *what)
{
    fprintf(stderr, "llama_dump: %s%s%s\n", what, code == 64 ? "" : ": ", code == 64 ? "" : weft_last_error());
    exit(code);
}

static void put_header(FILE *f, const char *name, const char *dtype, int ndim, const int64_t *shape)
{
    fprintf(f, "%s %s %d", name, dtype, ndim);
    for (int i = 0; i < ndim; i++)
        fprintf(f, " %lld", (long long)shape[i]);
    fputc('\n', f);
}

static void put(FILE *f, const char *name, const char *dtype, int ndim, const int64_t *shape, const void *data,
                size_t elsize)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    put_header(f, name, dtype, ndim, shape);
    if (fwrite(data, elsize, n, f) != n)
        die(74, "short write");
}

/* Redraw every parameter wider than training's initialisation (--wide). */
static void widen(weft_model *mm, uint64_t seed)
{
    weft_rng r;
    weft_rng_seed(&r, seed ^ 0x5eedull);
    for (int i = 0; i < mm->nparams; i++) {
        const weft_tensor *p = &mm->params[i];
        float *w = mm->param_data + p->offset;
        int embed = strstr(p->name, "embed_tokens") != NULL;
        double sd = p->ndim == 1 ? 0.2 : embed ? 1.0 : 1.0 / sqrt((double)p->shape[1]);
        for (size_t j = 0; j < p->numel; j++)
            w[j] = (float)((p->ndim == 1 ? 1.0 : 0.0) + sd * weft_rng_normal(&r));
    }
}

static int32_t *draw(int n, int V, uint64_t seed)
{
    int32_t *x = malloc(sizeof *x * (size_t)n);
    if (!x)
        die(70, "out of memory");
    weft_rng r;
    weft_rng_seed(&r, seed);
    for (int i = 0; i < n; i++)
        x[i] = (int32_t)(weft_rng_u64(&r) % (uint64_t)V);
    return x;
}

static void usage(void)
{
    fprintf(stderr, "usage: llama_dump V L NH NKV C F CONTEXT THETA EPS TIE B T SEED OUT [--wide] [--alloc B2 T2]\n");
    exit(64);
}

int main(int argc, char **argv)
{
    if (argc < 15)
        usage();
    weft_llama_config cfg = {
        .vocab = atoi(argv[1]), .n_layer = atoi(argv[2]), .n_head = atoi(argv[3]), .n_kv_head = atoi(argv[4]),
        .n_embd = atoi(argv[5]), .ffn_dim = atoi(argv[6]), .max_seq = atoi(argv[7]),
        .rope_theta = strtod(argv[8], NULL), .norm_eps = strtod(argv[9], NULL), .tie_embeddings = atoi(argv[10]),
    };
    int B = atoi(argv[11]), T = atoi(argv[12]), wide = 0, B2 = B, T2 = T;
    uint64_t seed = strtoull(argv[13], NULL, 10);
    const char *out = argv[14];
    for (int i = 15; i < argc; i++) {
        if (strcmp(argv[i], "--wide") == 0)
            wide = 1;
        else if (strcmp(argv[i], "--alloc") == 0 && i + 2 < argc)
            B2 = atoi(argv[i + 1]), T2 = atoi(argv[i + 2]), i += 2;
        else
            usage();
    }
    if (B < 1 || T < 1 || B2 < B || T2 < T)
        usage();

    weft_llama *m;
    if (weft_llama_new(&cfg, B2, T2, &m) != 0)
        die(64, weft_last_error());
    weft_llama_init(m, seed);
    weft_model *mm = weft_llama_model(m);
    if (wide)
        widen(mm, seed);

    int BT = B * T, V = cfg.vocab;
    int32_t *tokens = draw(BT, V, seed + 1), *targets = draw(BT, V, seed + 2);
    targets[BT / 2] = -1;
    double loss = 0, unused;
    if (weft_llama_forward(m, tokens, NULL, B, T, &unused) != 0)
        die(70, "forward without targets");
    size_t nlog = (size_t)BT * (size_t)V;
    float *logits = malloc(sizeof *logits * nlog);
    if (!logits)
        die(70, "out of memory");
    memcpy(logits, weft_llama_logits(m), sizeof *logits * nlog);
    if (weft_llama_forward(m, tokens, targets, B, T, &loss) != 0)
        die(70, "forward with targets");

    FILE *f = fopen(out, "wb");
    if (!f)
        die(74, out);
    fprintf(f, "config vocab=%d n_layer=%d n_head=%d n_kv_head=%d n_embd=%d ffn_dim=%d context=%d "
               "rope_theta=%.17g norm_eps=%.17g tie=%d B=%d T=%d\n",
            cfg.vocab, cfg.n_layer, cfg.n_head, cfg.n_kv_head, cfg.n_embd, cfg.ffn_dim, cfg.max_seq,
            cfg.rope_theta, cfg.norm_eps, cfg.tie_embeddings, B, T);
    for (int i = 0; i < mm->nparams; i++) {
        const weft_tensor *p = &mm->params[i];
        put(f, p->name, "f32", p->ndim, p->shape, mm->param_data + p->offset, sizeof(float));
    }
    int64_t bt[3] = {B, T, V}, one[1] = {1};
    put(f, "tokens", "i32", 2, bt, tokens, sizeof *tokens);
    put(f, "targets", "i32", 2, bt, targets, sizeof *targets);
    put(f, "logits", "f32", 3, bt, logits, sizeof *logits);
    put(f, "loss", "f64", 1, one, &loss, sizeof loss);
    if (fclose(f) != 0)
        die(74, out);
    free(logits), free(tokens), free(targets);
    weft_llama_free(m);
    return 0;
}
