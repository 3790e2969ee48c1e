/*
 * weft-generate -- text from a trained checkpoint, on one process (no MPI,
 * no launcher):
 *
 *   weft-generate --init-from RUN_DIR --prompt "Once upon" --max-new-tokens 100
 *
 * The model (GPT-2 or Llama) is built from the model.* keys of the
 * configuration stored in the checkpoint, its vocabulary from the shape of
 * the token embedding, and its weights read whole (checksums verified:
 * weft_ckpt_load_whole). The prompt is prefilled once and each new token
 * costs one step through the key/value cache (model/generate.h); sampling
 * is greedy (--temperature 0) or temperature with top-k and top-p, from a
 * seeded generator. Generation stops after --max-new-tokens or at the
 * tokenizer's end-of-text token.
 *
 * Output: the prompt and the continuation as text on stdout, streamed as
 * tokens come (end-of-text is not printed); with --print-ids a last line of
 * the generated ids, comma-separated (end-of-text included when it ended
 * the text). Timings on stderr.
 *
 * Tokenizer: --tokenizer PATH (data/tokenizer.h: a tokenizer.json, GPT-2's
 * vocab.json + merges.txt, or 'bytes'), behind the four tok_* functions.
 *
 * Exit status: 0 done, 64 bad usage (a prompt longer than model.context, a
 * bad --prompt-ids, a vocabulary the tokenizer does not match), 65 bad or
 * corrupt checkpoint, 66 missing checkpoint, 74 I/O error.
 */
#include "checkpoint/ckpt.h"
#include "checkpoint/seal.h"
#include "data/tokenizer.h"
#include "kernels/kernels.h"
#include "model/generate.h"
#include "model/lm.h"
#include "runtime/cli.h"
#include "runtime/error.h"
#include "runtime/timer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage_text =
    "usage: weft-generate --init-from CKPT [--prompt TEXT | --prompt-ids IDS] [options]\n"
    "\n"
    "Generates text from a checkpoint weft-train wrote, on one process (no mpirun). CKPT is a\n"
    "checkpoint file, or a run directory or checkpoints directory (its latest). The model and its\n"
    "shape come from the configuration stored in the checkpoint.\n"
    "  weft-generate --init-from runs/demo --prompt 'the quick' --max-new-tokens 100\n"
    "  weft-generate --init-from runs/demo --prompt-ids 116,104,101 --temperature 0 --print-ids\n"
    "\n"
    "  --init-from CKPT        the checkpoint (required)\n"
    "  --prompt TEXT           the text to continue (tokenized with --tokenizer)\n"
    "  --prompt-ids IDS        or its token ids, comma-separated (e.g. 1,2,3)\n"
    "                          neither: start from the end-of-text token (a new document)\n"
    "  --tokenizer PATH        the model's tokenizer: a tokenizer.json, a directory with it or\n"
    "                          with vocab.json + merges.txt, or 'bytes' (default: byte-level,\n"
    "                          end-of-text = token 0)\n"
    "  --max-new-tokens N      tokens to generate at most (default 64); stops earlier at\n"
    "                          end-of-text. Past model.context positions the window slides:\n"
    "                          the last context/2 tokens are kept\n"
    "  --temperature X         0: greedy (the most likely token); default 0.8\n"
    "  --top-k K               sample among the K most likely tokens (0: all; 1: greedy)\n"
    "  --top-p P               ... and among the fewest most likely whose probability\n"
    "                          reaches P (nucleus; default 1: all)\n"
    "  --seed S                the sampling seed (default 1): the same seed, the same text\n"
    "  --print-ids             end with a line of the generated ids, comma-separated\n"
    "                          (end-of-text included when it ended the text)\n"
    "  --threads N             BLAS threads (default 1)\n"
    "  --trusted PUBKEY        load the checkpoint only if a trusted key signed it (repeatable,\n"
    "                          or comma-separated; keys from weft-ckpt keygen): unsigned, signed\n"
    "                          by another key or modified since signing exits 65\n"
    "\n"
    "Options may be written '--opt value' or '--opt=value'.\n"
    "exit status: 0 done, 64 bad usage (bad --prompt-ids, a prompt longer than model.context,\n"
    "a tokenizer whose vocabulary is not the model's), 65 bad or corrupt checkpoint, 66 missing\n"
    "checkpoint, 74 I/O error\n";

typedef struct {
    const char *init_from, *prompt, *prompt_ids, *tokenizer;
    char trusted[8192]; /* --trusted key files, comma-separated ("": none) */
    int max_new, print_ids, threads;
    weft_sample_opts sample;
} gen_args;

/* --- the tokenizer ----------------------------------------------------------- */

/* What the program asks of a tokenizer (data/tokenizer.h): its vocabulary
 * and end-of-text id, text to ids, ids to text. */
typedef struct {
    weft_tokenizer *t;
    const char *name;
    int vocab;
    int32_t eot;
} tokenizer;

static int tok_open(const char *path, tokenizer *t)
{
    WEFT_CHECK(weft_tokenizer_load(path ? path : "bytes", &t->t));
    t->name = weft_tokenizer_name(t->t);
    t->vocab = weft_tokenizer_vocab(t->t);
    t->eot = weft_tokenizer_eot(t->t);
    return 0;
}

/* text -> ids (malloc'ed, *n of them). */
static int tok_encode(const tokenizer *t, const char *text, int32_t **ids, int *n)
{
    size_t len = strlen(text), cap = len + 16, got = 0; /* byte-level BPE: at most one id per byte */
    uint32_t *u = malloc(cap * sizeof *u);
    if (!u)
        return weft_error(WEFT_ENOMEM, "out of memory");
    int rc = weft_tokenizer_encode(t->t, text, len, u, cap, &got);
    if (rc) {
        free(u);
        return rc;
    }
    *ids = (int32_t *)u; /* ids < vocab <= INT32_MAX: the same bits */
    *n = (int)got;
    return 0;
}

/* ids -> text on out; end-of-text writes nothing. */
static void tok_write(const tokenizer *t, const int32_t *ids, int n, FILE *out)
{
    char buf[1024];
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        if (ids[i] == t->eot || weft_tokenizer_decode(t->t, (const uint32_t *)&ids[i], 1, buf, sizeof buf, &len))
            continue; /* an id the tokenizer cannot spell in 1 KiB is not text */
        fwrite(buf, 1, len, out);
    }
}

static void tok_close(tokenizer *t) { weft_tokenizer_free(t->t); }

/* --- the model ---------------------------------------------------------------- */

/* The model the checkpoint at path holds, whole on this process: its
 * configuration's model.* keys, its vocabulary from the embedding's rows. */
static int load_model(const char *path, weft_model **out, int *vocab, int *context)
{
    static const weft_config_key *const tables[] = {weft_model_config_keys, NULL};
    static const char *const model_keys[] = {"model.", NULL};
    weft_config *cfg;
    int64_t shape[2] = {0, 0};
    WEFT_CHECK(weft_config_new(tables, &cfg));
    int rc = weft_ckpt_adopt_config(path, cfg, model_keys);
    if (rc == 0)
        rc = weft_ckpt_read_config(path, weft_lm_embedding_name(cfg), NULL, shape);
    *vocab = (int)shape[0];
    weft_model_part whole = {.tp_size = 1, .pp_size = 1, .nslots = 1, .micro_batch = 1, .seq_len = 1};
    if (rc == 0)
        rc = weft_lm_check(cfg, *vocab, 1, 1);
    if (rc == 0)
        rc = weft_lm_new(cfg, *vocab, &whole, 0, out);
    *context = rc ? 0 : (int)weft_config_int(cfg, "model.context");
    weft_config_free(cfg);
    WEFT_CHECK(rc);
    weft_model *m = *out;
    weft_ckpt_state st = {.params = m->param_data, .n = m->n, .tensors = m->params, .ntensors = m->nparams};
    rc = weft_ckpt_load_whole(&st, path);
    if (rc) { /* the caller frees *out too: a damaged checkpoint was a double free */
        weft_model_free(m);
        *out = NULL;
    }
    return rc;
}

/* --- the prompt ----------------------------------------------------------------- */

/* "1,2,3" -> ids (malloc'ed); the vocabulary is checked by the caller. */
static int parse_ids(const char *s, int32_t **ids, int *n)
{
    int cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    int32_t *v = malloc((size_t)cap * sizeof *v);
    if (!v)
        return weft_error(WEFT_ENOMEM, "out of memory");
    int k = 0;
    for (const char *p = s;; p++) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT32_MAX || (*end != ',' && *end != '\0') || *p == ' ' || *p == '+' ||
            *p == '-') {
            free(v);
            return weft_error(WEFT_ECONFIG, "--prompt-ids '%s': expected token ids (integers >= 0) separated by "
                              "commas, e.g. 1,2,3", s);
        }
        v[k++] = (int32_t)x;
        if (*end == '\0')
            break;
        p = end;
    }
    *ids = v;
    *n = k;
    return 0;
}

/* The prompt's ids (malloc'ed): --prompt-ids, --prompt through the
 * tokenizer, or the end-of-text token alone. Checked against the model. */
static int make_prompt(const gen_args *a, const tokenizer *tk, int V, int context, int32_t **ids, int *n)
{
    if (a->prompt_ids)
        WEFT_CHECK(parse_ids(a->prompt_ids, ids, n));
    else if (a->prompt && *a->prompt)
        WEFT_CHECK(tok_encode(tk, a->prompt, ids, n));
    else if (!(*ids = malloc(sizeof **ids)))
        return weft_error(WEFT_ENOMEM, "out of memory");
    else
        (*ids)[0] = tk->eot, *n = 1;
    int rc = 0;
    for (int i = 0; i < *n && rc == 0; i++)
        if ((*ids)[i] >= V)
            rc = weft_error(WEFT_ECONFIG, "prompt token %d (number %d) is outside the model's vocabulary [0, %d)",
                            (int)(*ids)[i], i + 1, V);
    if (rc == 0 && *n > context)
        rc = weft_error(WEFT_ECONFIG, "the prompt is %d tokens, longer than the model's %d positions "
                        "(model.context): shorten it", *n, context);
    if (rc == 0 && *n == 0)
        rc = weft_error(WEFT_ECONFIG, "the prompt is empty after tokenizing");
    if (rc) {
        free(*ids);
        *ids = NULL;
    }
    return rc;
}

/* --- generating ------------------------------------------------------------------ */

typedef struct {
    const tokenizer *tk;
    int text;        /* print text (the tokenizer fits the model) */
} stream;

static void on_token(void *arg, int32_t t)
{
    const stream *s = arg;
    if (!s->text || t == s->tk->eot)
        return;
    tok_write(s->tk, &t, 1, stdout);
    fflush(stdout);
}

static int generate(const gen_args *a, weft_model *m, int V, int context)
{
    tokenizer tk;
    WEFT_CHECK(tok_open(a->tokenizer, &tk));
    int text = tk.vocab == V, rc, np = 0, nout = 0;
    int32_t *prompt = NULL, *out = NULL;
    weft_sampler *s = NULL;
    if (!text && (a->prompt || !a->prompt_ids))
        rc = weft_error(WEFT_ECONFIG, "the checkpoint's vocabulary is %d tokens but the %s tokenizer's is %d: give "
                        "the --tokenizer the model was trained with, or --prompt-ids", V, tk.name, tk.vocab);
    else
        rc = make_prompt(a, &tk, V, context, &prompt, &np);
    if (rc == 0)
        rc = weft_sampler_new(V, &a->sample, &s);
    if (rc == 0 && !(out = malloc((size_t)(a->max_new > 0 ? a->max_new : 1) * sizeof *out)))
        rc = weft_error(WEFT_ENOMEM, "out of memory");
    stream st = {&tk, text};
    weft_generate_opts go = {.context = context, .max_new = a->max_new, .eot = text ? tk.eot : -1,
                             .on_token = on_token, .arg = &st};
    int64_t t0 = weft_now_ns();
    if (rc == 0 && text && !(np == 1 && prompt[0] == tk.eot))
        tok_write(&tk, prompt, np, stdout);
    if (rc == 0 && a->max_new > 0)
        rc = weft_generate(m, s, prompt, np, &go, out, &nout);
    double secs = 1e-9 * (double)(weft_now_ns() - t0);
    if (rc == 0 && text)
        putchar('\n');
    if (rc == 0 && (a->print_ids || !text)) {
        for (int i = 0; i < nout; i++)
            printf("%s%d", i ? "," : "", (int)out[i]);
        putchar('\n');
    }
    if (rc == 0 && fflush(stdout) != 0)
        rc = weft_error(WEFT_EIO, "writing the output: %s", strerror(errno));
    if (rc == 0)
        fprintf(stderr, "weft-generate: %d prompt + %d new tokens in %.3f s (%.1f tokens/s)%s\n", np, nout, secs,
                secs > 0 ? nout / secs : 0.0, nout && out[nout - 1] == go.eot ? "; stopped at end-of-text" : "");
    weft_sampler_free(s);
    free(prompt);
    free(out);
    tok_close(&tk);
    return rc;
}

/* --- main ------------------------------------------------------------------------- */

enum { O_INIT = 256, O_PROMPT, O_IDS, O_TOK, O_MAX, O_TEMP, O_TOPK, O_TOPP, O_SEED, O_PRINT, O_THREADS, O_TRUSTED };

static int parse_args(int argc, char **argv, gen_args *a)
{
    static const struct option opts[] = {
        {"init-from", required_argument, NULL, O_INIT},   {"prompt", required_argument, NULL, O_PROMPT},
        {"prompt-ids", required_argument, NULL, O_IDS},   {"tokenizer", required_argument, NULL, O_TOK},
        {"max-new-tokens", required_argument, NULL, O_MAX}, {"temperature", required_argument, NULL, O_TEMP},
        {"top-k", required_argument, NULL, O_TOPK},       {"top-p", required_argument, NULL, O_TOPP},
        {"seed", required_argument, NULL, O_SEED},        {"print-ids", no_argument, NULL, O_PRINT},
        {"threads", required_argument, NULL, O_THREADS},  {"trusted", required_argument, NULL, O_TRUSTED},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *a = (gen_args){.max_new = 64, .threads = 1, .sample = {.temperature = 0.8, .top_p = 1.0, .seed = 1}};
    weft_cli c;
    weft_cli_init(&c, "weft-generate", argc, argv, opts, 0);
    long long n;
    for (int o; (o = weft_cli_next(&c)) != WEFT_CLI_END;) {
        int bad = 0;
        switch (o) {
        case O_INIT: a->init_from = c.arg; break;
        case O_PROMPT: a->prompt = c.arg; break;
        case O_IDS: a->prompt_ids = c.arg; break;
        case O_TOK: a->tokenizer = c.arg; break;
        case O_MAX: bad = weft_cli_long(&c, 0, 1 << 24, &n); a->max_new = (int)n; break;
        case O_TEMP: bad = weft_cli_double(&c, 0, 1e6, &a->sample.temperature); break;
        case O_TOPK: bad = weft_cli_long(&c, 0, 1 << 30, &n); a->sample.top_k = (int)n; break;
        case O_TOPP:
            bad = weft_cli_double(&c, 0, 1, &a->sample.top_p);
            if (!bad && !(a->sample.top_p > 0))
                bad = weft_cli_bad_value(&c, "a probability in (0, 1]");
            break;
        case O_SEED: bad = weft_cli_long(&c, 0, INT64_MAX, &n); a->sample.seed = (uint64_t)n; break;
        case O_PRINT: a->print_ids = 1; break;
        case O_THREADS: bad = weft_cli_long(&c, 1, 1024, &n); a->threads = (int)n; break;
        case O_TRUSTED: {
            size_t len = strlen(a->trusted);
            if (len + strlen(c.arg) + 2 > sizeof a->trusted)
                return weft_cli_error(&c, "too many --trusted keys");
            snprintf(a->trusted + len, sizeof a->trusted - len, "%s%s", len ? "," : "", c.arg);
            break;
        }
        case 'h': fputs(usage_text, stdout); return -1;
        default: return WEFT_EXIT_USAGE;
        }
        if (bad)
            return WEFT_EXIT_USAGE;
    }
    if (weft_cli_operands(&c, 0, 0, "no operands (the checkpoint goes in --init-from)"))
        return WEFT_EXIT_USAGE;
    if (!a->init_from)
        return weft_cli_error(&c, "--init-from CKPT is required (a checkpoint file or a run directory)");
    if (a->prompt && a->prompt_ids)
        return weft_cli_error(&c, "--prompt and --prompt-ids exclude each other");
    return 0;
}

int main(int argc, char **argv)
{
    gen_args a;
    int st = parse_args(argc, argv, &a);
    if (st)
        return st < 0 ? WEFT_EXIT_OK : st;
    weft_kernels_init(a.threads);
    char path[4300];
    weft_model *m = NULL;
    int V = 0, context = 0, rc = weft_ckpt_resolve(a.init_from, path, sizeof path);
    char signer[17];
    if (rc == 0 && a.trusted[0] && (rc = weft_ckpt_check_trusted(path, a.trusted, "--trusted", signer)) == 0)
        fprintf(stderr, "weft-generate: %s: signature by trusted key %s holds\n", path, signer);
    if (rc == 0)
        rc = load_model(path, &m, &V, &context);
    if (rc == 0)
        rc = generate(&a, m, V, context);
    weft_model_free(m);
    if (rc) {
        fprintf(stderr, "weft-generate: %s\n", weft_last_error());
        return weft_exit_code(rc);
    }
    return 0;
}
