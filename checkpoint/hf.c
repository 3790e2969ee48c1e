/*
 * hf.c -- Hugging Face import and export (see hf.h).
 *
 * Import: config.json -> the model.* keys (refusing what weft's families
 * cannot compute exactly) -> the whole model built from them -> each of its
 * parameters read from the safetensors file(s) under its Hugging Face name,
 * shape checked, widened to f32, transposed where GPT-2's Conv1D stores
 * (in, out) -> every tensor of the files accounted for (used, a known buffer,
 * or a tied head equal to the embedding) -> checkpoint/single.h writes it.
 * Export: the checkpoint's tensors and its [model] keys -> model.safetensors
 * (+ config.json) under Hugging Face's names.
 */
#include "checkpoint/hf.h"
#include "checkpoint/agree.h"
#include "checkpoint/h5.h"
#include "checkpoint/inspect.h"
#include "checkpoint/nodepart.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/seal.h"
#include "checkpoint/single.h"
#include "runtime/durable.h"
#include "data/loader.h"
#include "model/lm.h"
#include "runtime/error.h"
#include "runtime/json.h"
#include "runtime/readfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_JSON_FILE (64u << 20) /* config.json and index.json: kilobytes in practice */

/* --- names ---------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The Hugging Face name of weft parameter weft (GPT-2 under prefix
 * "transformer." or ""), and whether Hugging Face stores it transposed. */
static void hf_name(int llama, const char *weft, const char *prefix, char *out, size_t len, int *transpose)
{
    *transpose = 0;
    if (llama) {
        snprintf(out, len, "%s", weft);
        return;
    }
    static const char *const conv1d[] = {".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight",
                                         ".mlp.c_proj.weight"};
    for (int i = 0; i < 4; i++)
        *transpose |= ends_with(weft, conv1d[i]);
    if (strcmp(weft, "wte") == 0 || strcmp(weft, "wpe") == 0)
        snprintf(out, len, "%s%s.weight", prefix, weft);
    else
        snprintf(out, len, "%s%s", prefix, weft);
}

/* Tensors of Hugging Face checkpoints that are buffers, not parameters. */
static int is_buffer(int llama, const char *name)
{
    if (llama)
        return ends_with(name, ".rotary_emb.inv_freq");
    return ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias");
}

static void transpose(const float *in, int64_t R, int64_t C, float *out)
{
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++)
            out[c * R + r] = in[r * C + c];
}

/* --- reading small JSON files ---------------------------------------------- */

static int read_text(const char *path, char **text, size_t *len)
{
    return weft_read_file(path, MAX_JSON_FILE, "a model's JSON or tokenizer file", text, len);
}

static int read_json(const char *path, weft_json_doc **doc)
{
    char *text;
    size_t len;
    WEFT_CHECK(read_text(path, &text, &len));
    int rc = weft_json_parse(text, len, path, doc);
    free(text);
    if (rc == 0 && weft_json_root(*doc)->type != WEFT_JSON_OBJECT) {
        rc = weft_error(WEFT_EDATA, "%s: a JSON %s, not an object", path,
                        weft_json_type_name(weft_json_root(*doc)->type));
        weft_json_free(*doc);
    }
    return rc;
}

/* --- config.json ------------------------------------------------------------ */

typedef struct {
    const char *path;           /* config.json */
    const weft_json *root;
    weft_config *cfg;           /* the model.* keys */
    int llama, vocab;
    char arch[64];
    char args[1024];            /* the same keys as weft-train flags */
} model_desc;

static int field_err(const model_desc *d, const char *field, const char *why)
{
    return weft_error(WEFT_EDATA, "%s: field '%s': %s", d->path, field, why);
}

/* An integer field >= 1 (def < 0: required). */
static int get_int(const model_desc *d, const char *field, long long def, long long *out)
{
    const weft_json *v = weft_json_get(d->root, field);
    uint64_t x;
    if ((!v || v->type == WEFT_JSON_NULL) && def >= 0) {
        *out = def;
        return 0;
    }
    if (!v)
        return field_err(d, field, "missing");
    if (weft_json_u64(v, &x) != 0 || x < 1 || x > (1u << 30))
        return field_err(d, field, "not a positive integer (at most 2^30)");
    *out = (long long)x;
    return 0;
}

static int get_num(const model_desc *d, const char *field, double def, double *out)
{
    const weft_json *v = weft_json_get(d->root, field);
    if (!v || v->type == WEFT_JSON_NULL) {
        *out = def;
        return 0;
    }
    if (v->type != WEFT_JSON_NUMBER || !isfinite(v->num))
        return field_err(d, field, "not a number");
    *out = v->num;
    return 0;
}

static int get_bool(const model_desc *d, const char *field, int def, int *out)
{
    const weft_json *v = weft_json_get(d->root, field);
    if (!v || v->type == WEFT_JSON_NULL)
        *out = def;
    else if (v->type == WEFT_JSON_TRUE || v->type == WEFT_JSON_FALSE)
        *out = v->type == WEFT_JSON_TRUE;
    else
        return field_err(d, field, "not true or false");
    return 0;
}

/* A string field's value, or def when absent or null. */
static const char *get_str(const model_desc *d, const char *field, const char *def)
{
    const weft_json *v = weft_json_get(d->root, field);
    return v && v->type == WEFT_JSON_STRING ? v->str : def;
}

/* Set model.key = value (text) from config.json field. */
static int set(model_desc *d, const char *key, const char *value, const char *field)
{
    char origin[4200];
    snprintf(origin, sizeof origin, "%s field '%s'", d->path, field);
    if (weft_config_set(d->cfg, key, value, origin) != 0)
        return weft_error(WEFT_EDATA, "%s: field '%s': %s", d->path, field, weft_last_error());
    size_t n = strlen(d->args);
    snprintf(d->args + n, sizeof d->args - n, "%s--%s=%s", n ? " " : "", key, value);
    return 0;
}

static int set_int(model_desc *d, const char *key, long long v, const char *field)
{
    char s[32];
    snprintf(s, sizeof s, "%lld", v);
    return set(d, key, s, field);
}

static int set_num(model_desc *d, const char *key, double v, const char *field)
{
    char s[40];
    snprintf(s, sizeof s, "%.15g", v); /* the shortest of 15 and 17 digits that reads back as v */
    if (strtod(s, NULL) != v)
        snprintf(s, sizeof s, "%.17g", v);
    return set(d, key, s, field);
}

static int gpt2_config(model_desc *d)
{
    long long V, L, NH, C, T, inner;
    double eps;
    const char *act = get_str(d, "activation_function", "gelu_new");
    WEFT_CHECK(get_int(d, "vocab_size", -1, &V));
    WEFT_CHECK(get_int(d, "n_layer", -1, &L));
    WEFT_CHECK(get_int(d, "n_head", -1, &NH));
    WEFT_CHECK(get_int(d, "n_embd", -1, &C));
    WEFT_CHECK(get_int(d, "n_ctx", 0, &T));
    WEFT_CHECK(get_int(d, "n_positions", T ? T : -1, &T));
    WEFT_CHECK(get_int(d, "n_inner", 4 * C, &inner));
    WEFT_CHECK(get_num(d, "layer_norm_epsilon", 1e-5, &eps));
    if (strcmp(act, "gelu_new") != 0 && strcmp(act, "gelu_pytorch_tanh") != 0)
        return field_err(d, "activation_function", "weft's GPT-2 uses the tanh GELU (gelu_new)");
    if (inner != 4 * C)
        return field_err(d, "n_inner", "weft's GPT-2 MLP is 4 n_embd wide");
    if (fabs(eps - 1e-5) > 1e-12)
        return field_err(d, "layer_norm_epsilon", "weft's GPT-2 LayerNorm uses 1e-5");
    d->vocab = (int)V;
    WEFT_CHECK(set(d, "model.family", "gpt2", "model_type"));
    WEFT_CHECK(set_int(d, "model.n_layer", L, "n_layer"));
    WEFT_CHECK(set_int(d, "model.n_head", NH, "n_head"));
    WEFT_CHECK(set_int(d, "model.n_embd", C, "n_embd"));
    return set_int(d, "model.context", T, "n_positions");
}

/* What weft's Llama does not compute: refused rather than imported wrong. */
static int llama_refusals(const model_desc *d, long long C, long long NH)
{
    const weft_json *v;
    int b;
    long long hd;
    if (strcmp(get_str(d, "hidden_act", "silu"), "silu") != 0)
        return field_err(d, "hidden_act", "weft's Llama MLP is SwiGLU (silu)");
    WEFT_CHECK(get_bool(d, "attention_bias", 0, &b));
    if (b)
        return field_err(d, "attention_bias", "weft's Llama has no attention biases");
    WEFT_CHECK(get_bool(d, "mlp_bias", 0, &b));
    if (b)
        return field_err(d, "mlp_bias", "weft's Llama has no MLP biases");
    if ((v = weft_json_get(d->root, "rope_scaling")) && v->type != WEFT_JSON_NULL)
        return field_err(d, "rope_scaling", "weft implements plain RoPE only (no scaling)");
    WEFT_CHECK(get_int(d, "head_dim", C / NH, &hd));
    if (hd * NH != C)
        return field_err(d, "head_dim", "weft's Llama has head_dim = hidden_size / num_attention_heads");
    return 0;
}

static int llama_config(model_desc *d)
{
    long long V, L, NH, NKV, C, F, T, win;
    double eps, theta;
    int tie;
    WEFT_CHECK(get_int(d, "vocab_size", -1, &V));
    WEFT_CHECK(get_int(d, "num_hidden_layers", -1, &L));
    WEFT_CHECK(get_int(d, "num_attention_heads", -1, &NH));
    WEFT_CHECK(get_int(d, "num_key_value_heads", NH, &NKV));
    WEFT_CHECK(get_int(d, "hidden_size", -1, &C));
    WEFT_CHECK(get_int(d, "intermediate_size", -1, &F));
    WEFT_CHECK(get_int(d, "max_position_embeddings", 2048, &T));
    WEFT_CHECK(get_int(d, "sliding_window", 0, &win));
    WEFT_CHECK(get_num(d, "rms_norm_eps", 1e-6, &eps));
    WEFT_CHECK(get_num(d, "rope_theta", 10000, &theta));
    WEFT_CHECK(get_bool(d, "tie_word_embeddings", 0, &tie));
    WEFT_CHECK(llama_refusals(d, C, NH));
    d->vocab = (int)V;
    /* Mistral's sliding window: within it attention is Llama's, so the
     * model weft builds is exact up to that many positions. */
    if (win && win < T)
        T = win;
    WEFT_CHECK(set(d, "model.family", "llama", "model_type"));
    WEFT_CHECK(set_int(d, "model.n_layer", L, "num_hidden_layers"));
    WEFT_CHECK(set_int(d, "model.n_head", NH, "num_attention_heads"));
    WEFT_CHECK(set_int(d, "model.n_kv_head", NKV, "num_key_value_heads"));
    WEFT_CHECK(set_int(d, "model.n_embd", C, "hidden_size"));
    WEFT_CHECK(set_int(d, "model.ffn_dim", F, "intermediate_size"));
    WEFT_CHECK(set_int(d, "model.context", T, win && win == T ? "sliding_window" : "max_position_embeddings"));
    WEFT_CHECK(set_num(d, "model.rope_theta", theta, "rope_theta"));
    WEFT_CHECK(set_num(d, "model.norm_eps", eps, "rms_norm_eps"));
    return set(d, "model.tie_embeddings", tie ? "true" : "false", "tie_word_embeddings");
}

static const struct {
    const char *arch, *type;
    int llama;
} families[] = {
    {"GPT2LMHeadModel", "gpt2", 0},
    {"LlamaForCausalLM", "llama", 1},
    {"MistralForCausalLM", "mistral", 1},
};

/* Which family: architectures[0] if present, else model_type. */
static int choose_family(model_desc *d)
{
    const weft_json *a = weft_json_get(d->root, "architectures");
    const char *field = "architectures", *name = NULL;
    if (a && a->type == WEFT_JSON_ARRAY && a->n >= 1 && a->first->type == WEFT_JSON_STRING)
        name = a->first->str;
    else if (a && a->type != WEFT_JSON_NULL)
        return field_err(d, field, "not a list of class names");
    if (!name)
        name = get_str(d, "model_type", NULL), field = "model_type";
    if (!name)
        return weft_error(WEFT_EDATA, "%s: neither 'architectures' nor 'model_type' says which model it is", d->path);
    snprintf(d->arch, sizeof d->arch, "%s", name);
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (strcmp(name, families[i].arch) == 0 || strcmp(name, families[i].type) == 0) {
            d->llama = families[i].llama;
            return 0;
        }
    if (strcmp(name, "Qwen2ForCausalLM") == 0 || strcmp(name, "qwen2") == 0)
        return weft_error(WEFT_EDATA, "%s: field '%s': %s has q/k/v projection biases, which weft's Llama does not "
                          "have: not importable", d->path, field, name);
    return weft_error(WEFT_EDATA, "%s: field '%s': unknown architecture '%.60s' (weft imports GPT2LMHeadModel / gpt2, "
                      "LlamaForCausalLM / llama and MistralForCausalLM / mistral)", d->path, field, name);
}

static int read_config(const char *path, model_desc *d, weft_json_doc **doc)
{
    static const weft_config_key *const tables[] = {weft_model_config_keys, NULL};
    d->path = path;
    WEFT_CHECK(read_json(path, doc));
    d->root = weft_json_root(*doc);
    WEFT_CHECK(weft_config_new(tables, &d->cfg));
    WEFT_CHECK(choose_family(d));
    WEFT_CHECK(d->llama ? llama_config(d) : gpt2_config(d));
    if (weft_lm_check(d->cfg, d->vocab, 1, 1) != 0)
        return weft_error(WEFT_EDATA, "%s describes a model weft cannot build: %s", path, weft_last_error());
    return 0;
}

/* --- the safetensors files ------------------------------------------------- */

typedef struct {
    const char *name;           /* Hugging Face's, owned by its file */
    weft_st_file *file;
    const weft_st_tensor *t;
    int used;
} entry;

typedef struct {
    weft_st_file *files[1024];
    int nfiles;
    entry *e;
    int n;
    char origin[4200];          /* the index.json, or the one file: names a missing tensor */
} sources;

static void sources_free(sources *s)
{
    for (int i = 0; i < s->nfiles; i++)
        weft_st_close(s->files[i]);
    free(s->e);
}

static entry *find(const sources *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->e[i].name, name) == 0)
            return &s->e[i];
    return NULL;
}

static int open_file(sources *s, const char *path, weft_st_file **out)
{
    for (int i = 0; i < s->nfiles; i++)
        if (strcmp(s->files[i]->path, path) == 0) {
            *out = s->files[i];
            return 0;
        }
    if (s->nfiles == (int)(sizeof s->files / sizeof s->files[0]))
        return weft_error(WEFT_EDATA, "%s: more than %d shards", s->origin, s->nfiles);
    WEFT_CHECK(weft_st_open(path, out));
    s->files[s->nfiles++] = *out;
    return 0;
}

static int one_file(sources *s, const char *path)
{
    weft_st_file *f;
    snprintf(s->origin, sizeof s->origin, "%s", path);
    WEFT_CHECK(open_file(s, path, &f));
    s->e = calloc((size_t)f->ntensors + 1, sizeof *s->e);
    if (!s->e)
        return weft_error(WEFT_ENOMEM, "out of memory");
    for (int i = 0; i < f->ntensors; i++)
        s->e[s->n++] = (entry){f->tensors[i].name, f, &f->tensors[i], 0};
    return 0;
}

/* A shard file name from index.json: a plain name in the index's directory. */
static int shard_path(const sources *s, const char *dir, const weft_json *v, char *out, size_t len)
{
    if (v->type != WEFT_JSON_STRING || v->len == 0 || strchr(v->str, '/') || strcmp(v->str, "..") == 0 ||
        strcmp(v->str, ".") == 0)
        return weft_error(WEFT_EDATA, "%s: field 'weight_map': tensor '%.200s' maps to %s, not a file name in the "
                          "index's directory", s->origin, v->key, v->type == WEFT_JSON_STRING ? "a path" : "a "
                          "non-string");
    snprintf(out, len, "%s/%s", dir, v->str);
    return 0;
}

/* Every tensor of every shard is the one weight_map places there. */
static int check_shards_mapped(const sources *s)
{
    for (int i = 0; i < s->nfiles; i++)
        for (int j = 0; j < s->files[i]->ntensors; j++) {
            const weft_st_tensor *t = &s->files[i]->tensors[j];
            const entry *e = find(s, t->name);
            if (!e)
                return weft_error(WEFT_EDATA, "%s: tensor '%.200s' is not in %s's weight_map", s->files[i]->path,
                                  t->name, s->origin);
            if (e->file != s->files[i])
                return weft_error(WEFT_EDATA, "%s: tensor '%.200s' is also in %s (weight_map places it there)",
                                  s->files[i]->path, t->name, e->file->path);
        }
    return 0;
}

static int indexed(sources *s, const char *index)
{
    weft_json_doc *doc;
    char dir[4200], path[8400];
    snprintf(s->origin, sizeof s->origin, "%s", index);
    snprintf(dir, sizeof dir, "%s", index);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    WEFT_CHECK(read_json(index, &doc));
    const weft_json *map = weft_json_get(weft_json_root(doc), "weight_map");
    int rc = !map ? weft_error(WEFT_EDATA, "%s: field 'weight_map': missing", index)
           : map->type != WEFT_JSON_OBJECT ? weft_error(WEFT_EDATA, "%s: field 'weight_map': not an object", index)
           : 0;
    if (rc == 0 && !(s->e = calloc(map->n + 1, sizeof *s->e)))
        rc = weft_error(WEFT_ENOMEM, "out of memory");
    for (const weft_json *v = rc ? NULL : map->first; v && rc == 0; v = v->next) {
        weft_st_file *f;
        rc = shard_path(s, dir, v, path, sizeof path);
        if (rc == 0)
            rc = open_file(s, path, &f);
        const weft_st_tensor *t = rc ? NULL : weft_st_find(f, v->key);
        if (rc == 0 && !t)
            rc = weft_error(WEFT_EDATA, "%s: tensor '%.200s' is missing (%s's weight_map places it there)", path,
                            v->key, index);
        if (rc == 0)
            s->e[s->n++] = (entry){t->name, f, t, 0};
    }
    if (rc == 0)
        rc = check_shards_mapped(s);
    weft_json_free(doc);
    return rc;
}

/* --- import ---------------------------------------------------------------- */

typedef struct {
    sources src;
    model_desc d;
    weft_json_doc *config;
    weft_model *m;
    const char *prefix;         /* GPT-2: "transformer." or "" */
} importer;

static void shape_str(int ndim, const int64_t *s, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (n < len)
        snprintf(buf + n, len - n, "]");
}

static int load_param(importer *im, const weft_tensor *p)
{
    char name[256], want_s[64], have_s[64];
    int tr;
    hf_name(im->d.llama, p->name, im->prefix, name, sizeof name, &tr);
    int64_t want[2] = {tr ? p->shape[1] : p->shape[0], tr ? p->shape[0] : p->shape[1]};
    shape_str(p->ndim, want, want_s, sizeof want_s);
    entry *e = find(&im->src, name);
    if (!e)
        return weft_error(WEFT_EDATA, "%s: tensor '%s' is missing (the model %s describes has it, shape %s)",
                          im->src.origin, name, im->d.path, want_s);
    const weft_st_tensor *t = e->t;
    if (t->ndim != p->ndim || t->shape[0] != want[0] || (p->ndim == 2 && t->shape[1] != want[1])) {
        shape_str(t->ndim, t->shape, have_s, sizeof have_s);
        return weft_error(WEFT_EDATA, "%s: tensor '%s': field 'shape': %s, but the model %s describes has %s",
                          e->file->path, name, have_s, im->d.path, want_s);
    }
    float *dst = im->m->param_data + p->offset, *tmp = tr ? malloc(p->numel * sizeof(float) + 1) : dst;
    if (!tmp)
        return weft_error(WEFT_ENOMEM, "tensor '%s': out of memory", name);
    int rc = weft_st_read_f32(e->file, t, tmp);
    if (rc == 0 && tr)
        transpose(tmp, t->shape[0], t->shape[1], dst);
    if (tr)
        free(tmp);
    e->used = 1;
    return rc;
}

/* A stored lm_head of a tied model must be the embedding itself. */
static int check_tied_head(importer *im, entry *e)
{
    const weft_tensor *emb = weft_model_param(im->m, im->d.llama ? "model.embed_tokens.weight" : "wte");
    if (!emb || e->t->ndim != 2 || (size_t)e->t->numel != emb->numel)
        return weft_error(WEFT_EDATA, "%s: tensor '%s' does not have the embedding's shape, but the model ties "
                          "them", e->file->path, e->name);
    float *h = malloc(emb->numel * sizeof(float) + 1);
    if (!h)
        return weft_error(WEFT_ENOMEM, "out of memory");
    int rc = weft_st_read_f32(e->file, e->t, h);
    if (rc == 0 && memcmp(h, im->m->param_data + emb->offset, emb->numel * sizeof(float)) != 0)
        rc = weft_error(WEFT_EDATA, "%s: tensor '%s' differs from the embedding, but %s (%s) ties the LM head to "
                        "it", e->file->path, e->name, im->d.path, im->d.llama ? "tie_word_embeddings" : "GPT-2");
    free(h);
    e->used = 1;
    return rc;
}

/* Every tensor in the files was used, is a buffer, or is a tied head. */
static int check_leftovers(importer *im)
{
    int tied = !im->d.llama || weft_config_bool(im->d.cfg, "model.tie_embeddings");
    for (int i = 0; i < im->src.n; i++) {
        entry *e = &im->src.e[i];
        if (e->used || is_buffer(im->d.llama, e->name))
            continue;
        if (tied && strcmp(e->name, "lm_head.weight") == 0)
            WEFT_CHECK(check_tied_head(im, e));
        else
            return weft_error(WEFT_EDATA, "%s: tensor '%.200s' is not part of the %s model %s describes (weft "
                              "would drop it)", e->file->path, e->name, im->d.arch, im->d.path);
    }
    return 0;
}

static int build(importer *im)
{
    weft_model_part part = {.tp_size = 1, .pp_size = 1, .nslots = 1, .micro_batch = 1, .seq_len = 1};
    WEFT_CHECK(weft_lm_new(im->d.cfg, im->d.vocab, &part, 0, &im->m));
    im->prefix = !im->d.llama && find(&im->src, "transformer.wte.weight") ? "transformer." : "";
    for (int i = 0; i < im->m->nparams; i++)
        WEFT_CHECK(load_param(im, &im->m->params[i]));
    return check_leftovers(im);
}

/* An import's provenance: its parent is the Hugging Face files (config.json,
 * then each safetensors file), hashed (checkpoint/seal.h). */
static int import_provenance(const importer *im, const char *src, const char *ini, weft_prov *p)
{
    const char *paths[1 + sizeof im->src.files / sizeof im->src.files[0]];
    char abs[PATH_MAX];
    uint64_t h;
    paths[0] = im->d.path;
    for (int i = 0; i < im->src.nfiles; i++)
        paths[1 + i] = im->src.files[i]->path;
    WEFT_CHECK(weft_prov_hash_files(paths, 1 + im->src.nfiles, &h));
    WEFT_CHECK(weft_prov_add_common(p));
    WEFT_CHECK(weft_prov_add(p, "config_hash", "%016llx", (unsigned long long)weft_prov_config_hash(ini)));
    WEFT_CHECK(weft_prov_add(p, "parent", "%016llx import %s", (unsigned long long)h, realpath(src, abs) ? abs : src));
    return weft_prov_add(p, "job", "none (weft-ckpt import)");
}

static int write_out(importer *im, const char *src, const char *out)
{
    static weft_prov prov;
    char *ini = weft_config_to_ini(im->d.cfg), source[4400];
    if (!ini)
        return weft_error(WEFT_ENOMEM, "out of memory");
    memset(&prov, 0, sizeof prov);
    int prc = import_provenance(im, src, ini, &prov);
    if (prc) {
        free(ini);
        return prc;
    }
    snprintf(source, sizeof source, "hugging face %s: %s", im->d.arch, src);
    weft_ckpt_state s = {.params = im->m->param_data, .n = im->m->n, .tensors = im->m->params,
                         .ntensors = im->m->nparams};
    weft_ckpt_meta meta = {0};
    int rc = weft_ckpt_write_single(out, &s, &meta, ini, source, prov.text);
    free(ini);
    return rc;
}

/* Which files: config.json's path and the weights (a file or an index). */
static int locate(const char *src, const char *config, char *cfg, char *weights, size_t len, int *is_index)
{
    struct stat st;
    if (stat(src, &st) != 0)
        return weft_error(errno == ENOENT ? WEFT_ENOENT : WEFT_EIO, "%s: %s", src, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        snprintf(weights, len, "%s/model.safetensors", src);
        *is_index = stat(weights, &st) != 0;
        if (*is_index)
            snprintf(weights, len, "%s/model.safetensors.index.json", src);
        if (*is_index && stat(weights, &st) != 0)
            return weft_error(WEFT_ENOENT, "%s holds neither model.safetensors nor model.safetensors.index.json",
                              src);
        snprintf(cfg, len, "%s/config.json", src);
    } else {
        snprintf(weights, len, "%s", src);
        *is_index = ends_with(src, ".json");
        const char *slash = strrchr(src, '/');
        if (*is_index && !config) /* an index lives in its model's directory */
            snprintf(cfg, len, "%.*sconfig.json", slash ? (int)(slash - src + 1) : 0, src);
        else if (!config)
            return weft_error(WEFT_EINVAL, "%s is a file: say which config.json describes it with --config", src);
    }
    if (config)
        snprintf(cfg, len, "%s", config);
    return 0;
}

static void describe(const importer *im, weft_hf_import_info *info)
{
    memset(info, 0, sizeof *info);
    snprintf(info->family, sizeof info->family, "%s", im->d.llama ? "llama" : "gpt2");
    snprintf(info->arch, sizeof info->arch, "%s", im->d.arch);
    snprintf(info->model_args, sizeof info->model_args, "%s", im->d.args);
    info->ntensors = im->m->nparams;
    info->nfiles = im->src.nfiles;
    info->vocab = im->d.vocab;
    static const weft_dtype dts[3] = {WEFT_F32, WEFT_F16, WEFT_BF16};
    static const char *const names[3] = {"F32", "F16", "BF16"};
    for (int k = 0; k < 3; k++) {
        int seen = 0;
        for (int i = 0; i < im->src.n; i++)
            seen |= im->src.e[i].used && im->src.e[i].t->dtype == dts[k];
        size_t n = strlen(info->dtypes);
        if (seen)
            snprintf(info->dtypes + n, sizeof info->dtypes - n, "%s%s", n ? "," : "", names[k]);
    }
}

int weft_hf_import(const char *src, const char *config, const char *out, weft_hf_import_info *info)
{
    char cfg[4200], weights[4200];
    int is_index = 0;
    WEFT_CHECK(locate(src, config, cfg, weights, sizeof cfg, &is_index));
    importer im = {0};
    int rc = read_config(cfg, &im.d, &im.config);
    if (rc == 0)
        rc = is_index ? indexed(&im.src, weights) : one_file(&im.src, weights);
    if (rc == 0)
        rc = build(&im);
    if (rc == 0)
        rc = write_out(&im, src, out);
    if (rc == 0 && info)
        describe(&im, info);
    if (im.m)
        weft_model_free(im.m);
    sources_free(&im.src);
    weft_config_free(im.d.cfg);
    weft_json_free(im.config);
    return rc;
}

/* --- export ---------------------------------------------------------------- */

typedef struct {
    weft_st_out *t;
    float **bufs;
    int n;
} out_tensors;

static void out_free(out_tensors *o)
{
    for (int i = 0; i < o->n; i++) {
        free(o->bufs[i]);
        free((char *)o->t[i].name);
    }
    free(o->t);
    free(o->bufs);
}

/* One checkpoint dataset params/NAME as its Hugging Face tensor. */
static int add_tensor(hid_t f, const char *dpath, int llama, out_tensors *o)
{
    weft_st_out *t = realloc(o->t, (size_t)(o->n + 1) * sizeof *t);
    float **b = t ? realloc(o->bufs, (size_t)(o->n + 1) * sizeof *b) : NULL;
    if (t)
        o->t = t;
    if (!b)
        return weft_error(WEFT_ENOMEM, "out of memory");
    o->bufs = b;
    float *raw;
    int ndim, tr;
    int64_t shape[2];
    char name[256];
    WEFT_CHECK(weft_ckpt_read_f32(f, dpath, &raw, &ndim, shape));
    hf_name(llama, dpath + 7, "transformer.", name, sizeof name, &tr);
    if (tr && ndim == 2) {
        float *x = malloc((size_t)shape[0] * (size_t)shape[1] * sizeof(float) + 1);
        if (!x) {
            free(raw);
            return weft_error(WEFT_ENOMEM, "out of memory");
        }
        transpose(raw, shape[0], shape[1], x);
        free(raw);
        raw = x;
        int64_t r = shape[0];
        shape[0] = shape[1], shape[1] = r;
    }
    o->bufs[o->n] = raw;
    o->t[o->n] = (weft_st_out){strdup(name), ndim, {shape[0], shape[1]}, raw};
    if (!o->t[o->n].name) {
        free(raw);
        return weft_error(WEFT_ENOMEM, "out of memory");
    }
    o->n++;
    return 0;
}

/* The model.* keys of the checkpoint's config attribute (files from before
 * model.family existed are GPT-2). */
static int ckpt_model(hid_t f, const char *path, weft_config **cfg)
{
    static const weft_config_key *const tables[] = {weft_model_config_keys, weft_data_config_keys, NULL};
    char *ini = NULL;
    WEFT_CHECK(weft_config_new(tables, cfg));
    int rc = weft_h5_get_str(f, "config", &ini);
    if (rc == 0 && weft_config_parse_string(*cfg, ini, strlen(ini), path) != 0)
        rc = weft_error(WEFT_EDATA, "checkpoint %s: its config attribute: %s", path, weft_last_error());
    else if (rc)
        rc = weft_ckpt_wrap(rc, "checkpoint %s", path);
    free(ini);
    return rc;
}

static size_t json_config(const weft_config *c, int V, char *buf, size_t len)
{
    int C = (int)weft_config_int(c, "model.n_embd"), NH = (int)weft_config_int(c, "model.n_head");
    int L = (int)weft_config_int(c, "model.n_layer"), T = (int)weft_config_int(c, "model.context");
    if (strcmp(weft_config_str(c, "model.family"), "llama") != 0)
        return (size_t)snprintf(buf, len,
            "{\n  \"architectures\": [\"GPT2LMHeadModel\"],\n  \"model_type\": \"gpt2\",\n  \"vocab_size\": %d,\n"
            "  \"n_positions\": %d,\n  \"n_ctx\": %d,\n  \"n_embd\": %d,\n  \"n_layer\": %d,\n  \"n_head\": %d,\n"
            "  \"n_inner\": null,\n  \"activation_function\": \"gelu_new\",\n  \"layer_norm_epsilon\": 1e-05,\n"
            "  \"tie_word_embeddings\": true,\n  \"torch_dtype\": \"float32\"\n}\n", V, T, T, C, L, NH);
    weft_llama_config lc;
    weft_llama_config_from(c, V, &lc);
    return (size_t)snprintf(buf, len,
        "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n  \"vocab_size\": %d,\n"
        "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
        "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n"
        "  \"hidden_act\": \"silu\",\n  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %.17g,\n"
        "  \"rope_theta\": %.17g,\n  \"rope_scaling\": null,\n  \"attention_bias\": false,\n  \"mlp_bias\": false,\n"
        "  \"tie_word_embeddings\": %s,\n  \"torch_dtype\": \"float32\"\n}\n", V, C, lc.ffn_dim, L, NH, lc.n_kv_head,
        C / NH, T, lc.norm_eps, lc.rope_theta, lc.tie_embeddings ? "true" : "false");
}

/* The tokenizer files the run used (data.tokenizer: a tokenizer.json, or a
 * directory holding one, or vocab.json + merges.txt or GPT-2's npm names
 * encoder.json + vocab.bpe) copied into dir under Hugging Face's names.
 * *copied: how many; 0 with no error when the run had none or 'bytes'. */
static int copy_tokenizer(const char *tok, const char *dir, int *copied)
{
    static const char *const sets[][2][2] = {
        {{"tokenizer.json", "tokenizer.json"}, {NULL, NULL}},
        {{"vocab.json", "vocab.json"}, {"merges.txt", "merges.txt"}},
        {{"encoder.json", "vocab.json"}, {"vocab.bpe", "merges.txt"}},
    };
    *copied = 0;
    if (!tok || !*tok || strcmp(tok, "bytes") == 0)
        return 0;
    struct stat sb;
    if (stat(tok, &sb) != 0)
        return weft_error(WEFT_ENOENT, "data.tokenizer %s (the tokenizer the run used): %s; export from where the "
                          "path resolves", tok, strerror(errno));
    for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) {
        char from[2][4200];
        int have = 1;
        for (int j = 0; j < 2 && sets[k][j][0]; j++) {
            if (S_ISDIR(sb.st_mode))
                snprintf(from[j], sizeof from[j], "%s/%s", tok, sets[k][j][0]);
            else if (k == 0)
                snprintf(from[j], sizeof from[j], "%s", tok);
            else
                have = 0;
            have = have && access(from[j], R_OK) == 0;
        }
        for (int j = 0; have && j < 2 && sets[k][j][0]; j++) {
            char *text;
            size_t len;
            WEFT_CHECK(read_text(from[j], &text, &len));
            char to[4300];
            snprintf(to, sizeof to, "%s/%s", dir, sets[k][j][1]);
            int rc = weft_durable_write_file(to, text, len, WEFT_DURABLE_SYNC);
            free(text);
            WEFT_CHECK(rc);
            (*copied)++;
        }
        if (have)
            return 0;
    }
    return weft_error(WEFT_ENOENT, "data.tokenizer %s: no tokenizer.json, vocab.json + merges.txt or encoder.json + "
                      "vocab.bpe there", tok);
}

/* config.json, model.safetensors and the run's tokenizer files in a new
 * directory out. */
static int write_dir(const char *out, const out_tensors *o, const char *const *meta, const char *json, size_t jlen,
                     const char *tok)
{
    char tmp[4200], st[4300];
    struct stat sb;
    if (stat(out, &sb) == 0 || errno != ENOENT)
        return weft_error(WEFT_EINVAL, "%s already exists: export --format hf makes a new directory", out);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", out, (int)getpid());
    if (mkdir(tmp, 0750) != 0)
        return weft_error(WEFT_EIO, "cannot create directory %s: %s", tmp, strerror(errno));
    snprintf(st, sizeof st, "%s/config.json", tmp);
    int rc = weft_durable_write_file(st, json, jlen, WEFT_DURABLE_SYNC), ntok = 0;
    snprintf(st, sizeof st, "%s/model.safetensors", tmp);
    if (rc == 0)
        rc = weft_st_write(st, o->t, o->n, meta);
    if (rc == 0)
        rc = copy_tokenizer(tok, tmp, &ntok);
    if (rc == 0) /* the directory is put in place like a file */
        rc = weft_durable_publish(tmp, out, WEFT_DURABLE_SYNC);
    if (rc == 0)
        return 0;
    static const char *const files[] = {"model.safetensors", "config.json", "tokenizer.json", "vocab.json",
                                        "merges.txt"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(st, sizeof st, "%s/%s", tmp, files[i]);
        unlink(st);
    }
    rmdir(tmp);
    return rc;
}

static int export_tensors(hid_t f, const char *path, int llama, out_tensors *o, int *vocab)
{
    char **list;
    WEFT_CHECK(weft_ckpt_list_datasets(f, path, &list));
    int rc = 0;
    for (int i = 0; rc == 0 && list[i]; i++)
        if (strncmp(list[i], "params/", 7) == 0)
            rc = add_tensor(f, list[i], llama, o);
    weft_ckpt_free_list(list);
    const char *emb = llama ? "model.embed_tokens.weight" : "transformer.wte.weight";
    for (int i = 0; rc == 0 && i < o->n; i++)
        if (strcmp(o->t[i].name, emb) == 0)
            *vocab = (int)o->t[i].shape[0];
    if (rc == 0 && *vocab == 0)
        rc = weft_error(WEFT_EDATA, "checkpoint %s has no embedding (%s)", path, emb);
    return rc;
}

int weft_hf_export(const char *path, const char *format, const char *out, const char *tokenizer, int *ntensors,
                   char *family, size_t len)
{
    int hf = strcmp(format, "hf") == 0;
    if (!hf && strcmp(format, "safetensors") != 0)
        return weft_error(WEFT_EINVAL, "weft-ckpt export: unknown --format '%s' (known: hf, safetensors)", format);
    hid_t f;
    weft_config *cfg = NULL;
    out_tensors o = {0};
    int64_t step = 0;
    int vocab = 0;
    int64_t node;
    weft_ckpt_layout none = {0};
    WEFT_CHECK(weft_ckpt_node_part(path, &none, 0, -1, &node)); /* one node's part: not the whole model (h5 lock: the caller's) */
    WEFT_CHECK(weft_ckpt_open_file(path, &f));
    int rc = ckpt_model(f, path, &cfg);
    int llama = rc == 0 && strcmp(weft_config_str(cfg, "model.family"), "llama") == 0;
    if (rc == 0)
        rc = export_tensors(f, path, llama, &o, &vocab);
    weft_h5_get_i64(f, "step", &step);
    /* Where the weights came from, for whoever receives only the export:
     * the checkpoint's identity (its provenance chain: weft-ckpt info). */
    uint64_t id = 0;
    if (rc == 0)
        rc = weft_ckpt_identity(f, path, &id);
    H5Fclose(f);
    char stepstr[32], idstr[17], json[4096], abs[PATH_MAX];
    snprintf(stepstr, sizeof stepstr, "%lld", (long long)step);
    snprintf(idstr, sizeof idstr, "%016llx", (unsigned long long)id);
    const char *meta[] = {"format", "pt", "weft_step", stepstr, "weft_identity", idstr,
                          "weft_checkpoint", realpath(path, abs) ? abs : path, NULL};
    if (rc == 0 && !hf)
        rc = weft_st_write(out, o.t, o.n, meta);
    if (rc == 0 && hf)
        rc = write_dir(out, &o, meta, json, json_config(cfg, vocab, json, sizeof json),
                       tokenizer ? tokenizer : weft_config_str(cfg, "data.tokenizer"));
    if (rc == 0) {
        *ntensors = o.n;
        snprintf(family, len, "%s", llama ? "llama" : "gpt2");
    }
    out_free(&o);
    weft_config_free(cfg);
    return rc;
}
