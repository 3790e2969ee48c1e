/*
 * weft-data -- builds, imports, verifies and describes token datasets.
 *
 *   weft-data prepare -o DIR [options] INPUT...   text -> tokens (bytes or BPE)
 *   weft-data import  -o DIR [options] INPUT...   raw u16/u32 or llm.c tokens
 *   weft-data verify  DIR...                      full check of every shard
 *   weft-data info    DIR...                      counts, sizes, dataset hash
 *   weft-data tokenize --tokenizer PATH FILE...   text -> ids, or ids -> text
 *
 * The formats are in docs/data-format.md, usage with examples in
 * docs/weft-data.md. Options are read by runtime/cli.h (getopt_long: before
 * or after the inputs, "--opt value" or "--opt=value"). Exit status
 * (sysexits): 0 ok, 64 bad usage, 65 bad data, 66 missing input, 74 I/O
 * error. Every error names the file, the
 * offset, and what was expected and found. A progress bar is drawn on stderr
 * only when stderr is a terminal.
 */
#include "data/bpe.h"
#include "data/encode_pool.h"
#include "data/import.h"
#include "data/loader.h"
#include "data/manifest.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "data/verify.h"
#include "data/writer.h"
#include "runtime/cli.h"
#include "runtime/config.h"
#include "runtime/ctx.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/readfile.h"
#include "runtime/timer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (4u << 20)

/* ---- usage ---------------------------------------------------------------- */

static const char *const usage_main =
    "usage: weft-data COMMAND [options] ...\n"
    "\n"
    "Builds and checks weft token datasets (a directory of shards + manifest).\n"
    "\n"
    "commands:\n"
    "  prepare -o DIR INPUT...   tokenize text files/directories (byte level, or --tokenizer)\n"
    "  import  -o DIR INPUT...   import raw u16/u32 token arrays or llm.c token shards\n"
    "  verify  DIR...            check headers, sizes, token range and checksums\n"
    "  info    DIR...            print shard counts, token counts, sizes, dataset hash\n"
    "  tokenize --tokenizer PATH FILE...  print each file's token ids (--decode: the reverse)\n"
    "\n"
    "'weft-data COMMAND --help' describes each command. Options may come before or\n"
    "after the inputs, as '--opt value' or '--opt=value'.\n"
    "exit status: 0 ok, 64 bad usage, 65 bad data, 66 missing input, 74 I/O error\n";

static const char *const usage_prepare =
    "usage: weft-data prepare -o DIR [options] INPUT...\n"
    "\n"
    "Tokenizes text with the built-in byte-level tokenizer (token = byte, vocab 256),\n"
    "or with --tokenizer's BPE. Each input file is one document, followed by the\n"
    "end-of-document token (bytes: 0, with NUL bytes in the input dropped; BPE: the\n"
    "tokenizer's <|endoftext|> or <|end_of_text|>). Directories are walked\n"
    "recursively in sorted order (hidden entries skipped).\n"
    "\n"
    "options:\n"
    "  -o, --output DIR        dataset directory to create\n"
    "  --tokenizer PATH        tokenizer.json, a directory with tokenizer.json or\n"
    "                          vocab.json + merges.txt, or 'bytes' (the default)\n"
    "  --threads N             encoding threads (default: every CPU this process may use)\n"
    "  --shard-size SIZE       bytes of tokens per shard, K/M/G suffix (default 256M);\n"
    "                          at least 1K, and at most 100000 shards in all\n"
    "  --val-fraction F        last fraction F of the tokens goes to the 'val' split\n"
    "                          (default 0)\n"
    "  --force                 replace an existing dataset in DIR\n"
    "  -h, --help              this text\n";

static const char *const usage_import =
    "usage: weft-data import -o DIR [options] INPUT...\n"
    "\n"
    "Imports token files written by other tools: raw little-endian arrays (what\n"
    "numpy's ndarray.tofile writes) and llm.c token shards (detected by their magic\n"
    "20240520). Inputs are concatenated in the order given.\n"
    "\n"
    "options:\n"
    "  -o, --output DIR        dataset directory to create\n"
    "  --dtype u16|u32         token type of raw inputs (default u16)\n"
    "  --vocab N               vocab size, at most 16777216 (2^24); a token >= N is an\n"
    "                          error naming file and offset (default: inferred as the\n"
    "                          largest token + 1, which must be at most 2^24 too)\n"
    "  --tokenizer-id N        id recorded in the shards (default 0: external)\n"
    "  --tokenizer PATH        the tokenizer that made the tokens: its hash is recorded\n"
    "                          (training checks it), --vocab defaults to its vocabulary\n"
    "  --shard-size SIZE       bytes of tokens per shard, K/M/G suffix (default 256M);\n"
    "                          at least 1K, and at most 100000 shards in all\n"
    "  --val-fraction F        last fraction F of the tokens goes to 'val' (default 0)\n"
    "  --force                 replace an existing dataset in DIR\n"
    "  -h, --help              this text\n";

static const char *const usage_verify =
    "usage: weft-data verify [-h] DIR...\n"
    "\n"
    "Reads every shard listed in each dataset's manifest front to back and checks\n"
    "its header, its size, that every token is below the vocab size and its\n"
    "checksum. Every bad shard is named (the check goes on after the first).\n"
    "exit status: 0 all good, 65 a shard is corrupt, 66 a shard or manifest is\n"
    "missing, 74 a read failed.\n";

static const char *const usage_info =
    "usage: weft-data info [-h] DIR...\n"
    "\n"
    "Prints, from the manifest, the vocab size, token width, tokenizer, shard and\n"
    "token counts and sizes per split, and the dataset hash (which identifies the\n"
    "data in checkpoints and logs). Reads no shard; use verify for that.\n";

static int fail(int rc)
{
    fprintf(stderr, "weft-data: %s\n", weft_last_error());
    return weft_exit_code(rc);
}

/* ---- progress bar --------------------------------------------------------- */

typedef struct {
    int on;
    const char *what;
    int64_t t0, last;
} progress;

static void progress_init(progress *p, const char *what)
{
    p->on = isatty(STDERR_FILENO);
    p->what = what;
    p->t0 = p->last = weft_now_ns();
}

static void progress_show(void *arg, uint64_t done, uint64_t total)
{
    progress *p = arg;
    int64_t now = weft_now_ns();
    if (!p->on || (now - p->last < 100000000 && done < total))
        return;
    p->last = now;
    double f = total ? (double)done / (double)total : 1.0, s = (double)(now - p->t0) * 1e-9;
    int bar = (int)(f * 30);
    char fill[31];
    memset(fill, '=', 30);
    fill[bar > 30 ? 30 : bar] = '\0';
    fprintf(stderr, "\r%s [%-30s] %3.0f%% %8.1f MB %7.0f MB/s", p->what, fill, 100 * f,
            (double)done / 1e6, s > 0 ? (double)done / 1e6 / s : 0.0);
}

static void progress_end(progress *p)
{
    if (p->on)
        fprintf(stderr, "\n");
}

/* ---- shared options ------------------------------------------------------- */

typedef struct {
    const char *out;
    uint64_t shard_bytes;
    double val_fraction;
    int force;
    unsigned raw_width;   /* import: 2 or 4 */
    uint64_t vocab;       /* import: 0 = infer */
    uint32_t tokenizer_id;
    const char *tokenizer; /* --tokenizer PATH (NULL: bytes for prepare, none for import) */
    int threads;           /* prepare: encoding threads (0: one per CPU) */
    int decode;            /* tokenize --decode */
    uint64_t tokenizer_hash; /* import --tokenizer: recorded in the manifest */
} build_opts;

enum { OPT_SHARD_SIZE = 256, OPT_VAL, OPT_FORCE, OPT_DTYPE, OPT_VOCAB, OPT_TOKENIZER, OPT_TOKENIZER_PATH, OPT_THREADS,
       OPT_DECODE };

static const struct option build_long[] = {
    {"output", required_argument, NULL, 'o'},
    {"shard-size", required_argument, NULL, OPT_SHARD_SIZE},
    {"val-fraction", required_argument, NULL, OPT_VAL},
    {"force", no_argument, NULL, OPT_FORCE},
    {"dtype", required_argument, NULL, OPT_DTYPE},
    {"vocab", required_argument, NULL, OPT_VOCAB},
    {"tokenizer-id", required_argument, NULL, OPT_TOKENIZER},
    {"tokenizer", required_argument, NULL, OPT_TOKENIZER_PATH},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"decode", no_argument, NULL, OPT_DECODE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    int shift = 0;
    if (end == s || errno || *s == '-')
        return -1;
    switch (*end) {
    case 'K': case 'k': shift = 10; end++; break;
    case 'M': case 'm': shift = 20; end++; break;
    case 'G': case 'g': shift = 30; end++; break;
    case 'T': case 't': shift = 40; end++; break;
    }
    if (*end == 'i' && shift)
        end++;
    if (*end == 'B')
        end++;
    if (*end || v == 0 || v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

static int parse_u64_arg(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || errno || *s == '-' || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Returns -1 to go on, else an exit status. */
static int parse_build_opt(int c, weft_cli *cli, const char *usage, build_opts *o)
{
    const char *a = cli->arg;
    uint64_t v;
    char *end;
    switch (c) {
    case 'o': o->out = a; return -1;
    case OPT_FORCE: o->force = 1; return -1;
    case 'h': fputs(usage, stdout); return WEFT_EXIT_OK;
    case OPT_SHARD_SIZE:
        /* A bare number is bytes: "10" meant 10M, and would write a file
         * per 10 bytes of tokens. */
        if (parse_size(a, &o->shard_bytes) != 0 || o->shard_bytes < WEFT_DATA_MIN_SHARD_BYTES)
            return weft_cli_bad_value(cli, "a byte count of at least 1K, like 256M (a bare number is bytes: "
                                           "did you forget the M?)");
        return -1;
    case OPT_VAL:
        o->val_fraction = strtod(a, &end);
        if (end == a || *end || !(o->val_fraction >= 0 && o->val_fraction < 1))
            return weft_cli_bad_value(cli, "a number in [0, 1)");
        return -1;
    case OPT_DTYPE:
        if (strcmp(a, "u16") != 0 && strcmp(a, "u32") != 0)
            return weft_cli_bad_value(cli, "u16 or u32");
        o->raw_width = a[1] == '1' ? 2 : 4;
        return -1;
    case OPT_VOCAB:
        if (parse_u64_arg(a, WEFT_DATA_MAX_VOCAB, &o->vocab) != 0 || o->vocab == 0)
            return weft_cli_bad_value(cli, "an integer in 1..16777216 (2^24, the largest vocabulary weft trains)");
        return -1;
    case OPT_TOKENIZER:
        if (parse_u64_arg(a, UINT32_MAX, &v) != 0)
            return weft_cli_bad_value(cli, "an integer in 0..4294967295");
        o->tokenizer_id = (uint32_t)v;
        return -1;
    case OPT_TOKENIZER_PATH: o->tokenizer = a; return -1;
    case OPT_DECODE: o->decode = 1; return -1;
    case OPT_THREADS:
        if (parse_u64_arg(a, 4096, &v) != 0 || v == 0)
            return weft_cli_bad_value(cli, "a thread count in 1..4096");
        o->threads = (int)v;
        return -1;
    default: /* WEFT_CLI_ERROR: weft_cli_next said why */
        return WEFT_EXIT_USAGE;
    }
}

/* The job's data.path (--config FILE / --data.path=...; sections of other
 * programs kept): the dataset to build when -o is not given, the datasets
 * to verify or describe when none is named. */
static char job_data[4096];
static char job_tokenizer[4096]; /* data.tokenizer: prepare's --tokenizer when not given */
static char *job_dirs[WEFT_BLEND_MAX + 1];
static int njob_dirs;

static int read_job_config(int *argc, char **argv)
{
    static const weft_config_key *const tables[] = {weft_runtime_config_keys, weft_data_config_keys, NULL};
    weft_config *cfg;
    if (weft_config_new(tables, &cfg) != 0 || weft_config_parse_args(cfg, argc, argv) != 0) {
        fprintf(stderr, "weft-data: %s\n", weft_last_error());
        return WEFT_EXIT_USAGE;
    }
    snprintf(job_data, sizeof job_data, "%s", weft_config_str(cfg, "data.path"));
    snprintf(job_tokenizer, sizeof job_tokenizer, "%s", weft_config_str(cfg, "data.tokenizer"));
    weft_config_free(cfg);
    for (char *save = NULL, *p = strtok_r(job_data, ",", &save); p && njob_dirs < WEFT_BLEND_MAX;
         p = strtok_r(NULL, ",", &save))
        job_dirs[njob_dirs++] = p + strspn(p, " ");
    return 0;
}

/* Options and inputs in any order; the inputs end up in cli->ops. */
static int parse_build(int argc, char **argv, const char *usage, int import, build_opts *o, weft_cli *cli)
{
    int c, st;
    memset(o, 0, sizeof *o);
    o->shard_bytes = 256ull << 20;
    o->raw_width = 2;
    o->tokenizer_id = import ? WEFT_TOKENIZER_EXTERNAL : WEFT_TOKENIZER_BYTES;
    weft_cli_init(cli, import ? "weft-data import" : "weft-data prepare", argc, argv, build_long, 0);
    while ((c = weft_cli_next(cli)) != WEFT_CLI_END) {
        if (!import && (c == OPT_DTYPE || c == OPT_VOCAB || c == OPT_TOKENIZER))
            return weft_cli_error(cli, "option '%s' belongs to 'weft-data import'", cli->name);
        if ((import && c == OPT_THREADS) || c == OPT_DECODE)
            return weft_cli_error(cli, "option '%s' belongs to 'weft-data %s'", cli->name,
                                  c == OPT_DECODE ? "tokenize" : "prepare");
        if ((st = parse_build_opt(c, cli, usage, o)) >= 0)
            return st;
    }
    if (!o->out && njob_dirs == 1)
        o->out = job_dirs[0]; /* the job's data.path */
    if (!o->tokenizer && job_tokenizer[0])
        o->tokenizer = job_tokenizer; /* the job's data.tokenizer */
    if (!o->out)
        return weft_cli_error(cli, "missing -o DIR (the dataset directory to create; or the job's --config with "
                              "one data.path)");
    if (cli->nops == 0)
        return weft_cli_error(cli, "no inputs given");
    return -1;
}

/* Refuse to overwrite a dataset unless --force. */
static int check_output(const build_opts *o)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", o->out, WEFT_MANIFEST_NAME);
    if (!o->force && access(path, F_OK) == 0) {
        fprintf(stderr, "weft-data: %s already exists: expected a new dataset directory (use --force to replace it)\n", path);
        return WEFT_EXIT_USAGE;
    }
    return -1;
}

/* ---- token sink: splits the stream into train then val -------------------- */

typedef struct {
    weft_dataset_writer *w;
    uint64_t written;     /* tokens emitted so far */
    uint64_t val_from;    /* first token index that goes to val */
    uint64_t tokenizer_hash; /* for the manifest (set before open_sink) */
} sink;

static int sink_put(sink *s, const uint32_t *t, size_t n)
{
    size_t train = 0;
    if (s->written < s->val_from)
        train = (uint64_t)n < s->val_from - s->written ? n : (size_t)(s->val_from - s->written);
    if (train)
        WEFT_CHECK(weft_dataset_writer_append(s->w, WEFT_SPLIT_TRAIN, t, train));
    if (n > train)
        WEFT_CHECK(weft_dataset_writer_append(s->w, WEFT_SPLIT_VAL, t + train, n - train));
    s->written += n;
    return 0;
}

static uint64_t val_start(uint64_t total, double fraction)
{
    return total - (uint64_t)llround(fraction * (double)total);
}

static int open_sink(sink *s, const build_opts *o, unsigned width, uint32_t vocab, uint64_t total)
{
    weft_dataset_writer_options wo = {o->out, width, vocab, o->tokenizer_id, o->shard_bytes / width, s->tokenizer_hash};
    if (wo.shard_tokens == 0)
        wo.shard_tokens = 1;
    uint64_t shards = (total + wo.shard_tokens - 1) / wo.shard_tokens;
    if (shards > WEFT_DATA_MAX_SHARDS)
        return weft_error(WEFT_ECONFIG, "--shard-size %" PRIu64 " (bytes) would write %" PRIu64 " shard files for "
                          "%" PRIu64 " tokens of %u bytes, more than %d: give a larger --shard-size (at least %"
                          PRIu64 " bytes; the default is 256M)", o->shard_bytes, shards, total, width,
                          WEFT_DATA_MAX_SHARDS, (total * width + WEFT_DATA_MAX_SHARDS - 1) / WEFT_DATA_MAX_SHARDS);
    s->written = 0;
    s->val_from = val_start(total, o->val_fraction);
    return weft_dataset_writer_open(&wo, &s->w);
}

static void print_summary(const char *what, const weft_manifest *m, const char *dir, double secs)
{
    printf("%s %s: %zu train shards (%" PRIu64 " tokens), %zu val shards (%" PRIu64 " tokens), vocab %u, hash %016" PRIx64 ", %.1fs\n",
           what, dir, weft_manifest_count(m, WEFT_SPLIT_TRAIN), weft_manifest_tokens(m, WEFT_SPLIT_TRAIN),
           weft_manifest_count(m, WEFT_SPLIT_VAL), weft_manifest_tokens(m, WEFT_SPLIT_VAL),
           m->vocab_size, m->hash, secs);
}

static int commit_sink(sink *s, const char *what, const char *dir, int64_t t0)
{
    weft_manifest *m = NULL;
    WEFT_CHECK(weft_dataset_writer_commit(s->w, &m));
    print_summary(what, m, dir, (double)(weft_now_ns() - t0) * 1e-9);
    weft_manifest_free(m);
    return 0;
}

/* ---- prepare: collect inputs ---------------------------------------------- */

typedef struct {
    char **paths;
    uint64_t *sizes;
    size_t n, cap;
    uint64_t bytes;
} file_list;

static int list_add(file_list *l, const char *path, uint64_t size)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **p = realloc(l->paths, cap * sizeof *p);
        if (p)
            l->paths = p;
        uint64_t *z = realloc(l->sizes, cap * sizeof *z);
        if (z)
            l->sizes = z;
        if (!p || !z)
            return weft_error(WEFT_ENOMEM, "no memory for the input list");
        l->cap = cap;
    }
    l->sizes[l->n] = size;
    if (!(l->paths[l->n] = strdup(path)))
        return weft_error(WEFT_ENOMEM, "no memory for the input list");
    l->n++;
    l->bytes += size;
    return 0;
}

static void list_free(file_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->paths[i]);
    free(l->paths);
    free(l->sizes);
}

static int walk(file_list *l, const char *path, int depth);

static int walk_dir(file_list *l, const char *path, int depth)
{
    struct dirent **ents;
    int n = scandir(path, &ents, NULL, alphasort), rc = 0;
    if (n < 0)
        return weft_error(WEFT_EIO, "%s: cannot list directory: %s", path, strerror(errno));
    for (int i = 0; i < n; i++) {
        char child[4096];
        if (rc == 0 && ents[i]->d_name[0] != '.') {
            snprintf(child, sizeof child, "%s/%s", path, ents[i]->d_name);
            rc = walk(l, child, depth + 1);
        }
        free(ents[i]);
    }
    free(ents);
    return rc;
}

static int walk(file_list *l, const char *path, int depth)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return weft_error(errno == ENOENT ? WEFT_ENOENT : WEFT_EIO, "%s: cannot read input: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return depth > 64 ? weft_error(WEFT_EDATA, "%s: directories nested deeper than 64 levels", path)
                          : walk_dir(l, path, depth);
    if (S_ISREG(st.st_mode))
        return list_add(l, path, (uint64_t)st.st_size);
    return depth == 0 ? weft_error(WEFT_ENOENT, "%s: expected a regular file or directory", path) : 0;
}

/* ---- prepare: tokenize ---------------------------------------------------- */

static int tokenize_file(sink *s, const char *path, uint8_t *buf, uint32_t *tok, uint64_t *dropped,
                         progress *p, uint64_t *done, uint64_t total)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return weft_error(errno == ENOENT ? WEFT_ENOENT : WEFT_EIO, "%s: cannot open input: %s", path, strerror(errno));
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    int rc = 0;
    for (uint64_t off = 0;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = weft_error(WEFT_EIO, "%s: read at offset %" PRIu64 " failed: %s", path, off, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        size_t k = weft_tokenizer_bytes_encode(buf, (size_t)n, tok, dropped);
        if ((rc = sink_put(s, tok, k)) < 0)
            break;
        off += (uint64_t)n;
        *done += (uint64_t)n;
        progress_show(p, *done, total);
    }
    close(fd);
    if (rc == 0) {
        uint32_t eod = WEFT_BYTES_EOD;
        rc = sink_put(s, &eod, 1);
    }
    return rc;
}

static int prepare_files(const build_opts *o, file_list *l)
{
    sink s = {0};
    progress p;
    uint64_t dropped = 0, done = 0;
    int64_t t0 = weft_now_ns();
    uint8_t *buf = malloc(CHUNK);
    uint32_t *tok = malloc(CHUNK * sizeof *tok);
    int rc = (buf && tok) ? 0 : weft_error(WEFT_ENOMEM, "no memory for read buffers");
    s.tokenizer_hash = weft_tokenizer_bytes_hash();
    /* The split point is estimated from the input sizes (bytes + one
     * end-of-document token per file); dropped NUL bytes shift it slightly. */
    if (rc == 0)
        rc = open_sink(&s, o, 2, WEFT_BYTES_VOCAB, l->bytes + l->n);
    progress_init(&p, "prepare");
    for (size_t i = 0; rc == 0 && i < l->n; i++)
        rc = tokenize_file(&s, l->paths[i], buf, tok, &dropped, &p, &done, l->bytes);
    progress_end(&p);
    if (rc == 0 && dropped)
        fprintf(stderr, "weft-data: dropped %" PRIu64 " NUL bytes from the input (token 0 marks end of document)\n", dropped);
    if (rc == 0)
        rc = commit_sink(&s, "prepared", o->out, t0);
    weft_dataset_writer_free(s.w);
    free(buf);
    free(tok);
    return rc;
}

/* ---- prepare with a BPE tokenizer, on every core ----------------------------- */

/* The text is cut into chunks of about BPE_CHUNK bytes, each encoded by a
 * thread of the pool, and appended to the dataset in input order, so the
 * result does not depend on the thread count. A chunk ends at the end of its
 * file, or just before a space between two ASCII letters: there the
 * pre-tokenizers of GPT-2 and Llama 3 always start a new piece, so the ids
 * are those of the whole file. (A tokenizer with an added token holding a
 * space gets whole files.) */
#define BPE_CHUNK (1u << 20)
#define BPE_READ (1u << 20)

typedef struct {
    char *text;
    size_t len, cap, scanned;
    uint64_t start;   /* offset of text[0] in the concatenated input */
    int eod;          /* the chunk ends its file */
} chunk;

typedef struct {
    const file_list *l;
    size_t file;      /* next file to read */
    int fd;
    chunk carry;      /* read past the last cut */
    uint64_t pos;     /* input bytes handed out so far */
    int can_cut;
} reader;

static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static size_t find_cut(chunk *c, size_t from)
{
    size_t p = c->scanned > from ? c->scanned : from;
    for (p = p ? p : 1; p + 1 < c->len; p++)
        if (c->text[p] == ' ' && is_alpha(c->text[p - 1]) && is_alpha(c->text[p + 1]))
            return p;
    c->scanned = c->len ? c->len - 1 : 0;
    return 0;
}

static int chunk_reserve(chunk *c, size_t n)
{
    if (n <= c->cap)
        return 0;
    char *t = realloc(c->text, n);
    if (!t)
        return weft_error(WEFT_ENOMEM, "no memory for %zu bytes of text", n);
    c->text = t;
    c->cap = n;
    return 0;
}

/* Fill c with the next chunk of about target bytes; c->len == 0 and !eod:
 * no input left. */
static int read_chunk(reader *r, chunk *c, size_t target)
{
    c->len = c->scanned = 0;
    c->eod = 0;
    c->start = r->pos;
    if (r->fd < 0 && r->carry.len == 0) {
        if (r->file == r->l->n)
            return 0;
        const char *path = r->l->paths[r->file];
        if ((r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
            return weft_error(errno == ENOENT ? WEFT_ENOENT : WEFT_EIO, "%s: cannot open input: %s", path, strerror(errno));
        posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    }
    WEFT_CHECK(chunk_reserve(c, r->carry.len + BPE_READ));
    memcpy(c->text, r->carry.text, r->carry.len);
    c->len = r->carry.len;
    r->carry.len = 0;
    for (;;) {
        size_t cut = r->can_cut && c->len > target ? find_cut(c, target) : 0;
        if (cut) {
            WEFT_CHECK(chunk_reserve(&r->carry, c->len - cut));
            memcpy(r->carry.text, c->text + cut, c->len - cut);
            r->carry.len = c->len - cut;
            c->len = cut;
            break;
        }
        WEFT_CHECK(chunk_reserve(c, c->len + BPE_READ));
        ssize_t n = read(r->fd, c->text + c->len, BPE_READ);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return weft_error(WEFT_EIO, "%s: read failed: %s", r->l->paths[r->file], strerror(errno));
        if (n == 0) {
            close(r->fd);
            r->fd = -1;
            r->file++;
            c->eod = 1;
            break;
        }
        c->len += (size_t)n;
    }
    r->pos += c->len;
    return 0;
}

typedef struct {
    const build_opts *o;
    const weft_tokenizer *t;
    weft_encode_pool *pool;
    chunk *chunks;
    weft_encode_job *jobs;
    size_t n;          /* chunks per batch */
    uint64_t split;    /* input offset where the val split starts */
    uint64_t l_bytes;  /* input size */
} bpe_run;

/* One batch: read up to n chunks, encode them, append in order. *more = 0
 * when the input is done. */
static int bpe_batch(bpe_run *b, reader *r, sink *s, int *more, progress *p)
{
    size_t k = 0;
    uint32_t eot = (uint32_t)weft_tokenizer_eot(b->t);
    for (; k < b->n; k++) {
        chunk *c = &b->chunks[k];
        uint64_t left = r->pos < b->split ? b->split - r->pos : BPE_CHUNK;
        WEFT_CHECK(read_chunk(r, c, left < BPE_CHUNK ? (size_t)left : BPE_CHUNK));
        if (c->len == 0 && !c->eod)
            break;
        weft_encode_job *j = &b->jobs[k];
        if (j->cap < c->len + 1) {
            uint32_t *ids = realloc(j->ids, (c->len + 1) * sizeof *ids);
            if (!ids)
                return weft_error(WEFT_ENOMEM, "no memory for %zu token ids", c->len + 1);
            j->ids = ids;
            j->cap = c->len + 1;
        }
        j->text = c->text;
        j->len = c->len;
    }
    *more = k == b->n;
    WEFT_CHECK(weft_encode_pool_run(b->pool, b->jobs, k));
    for (size_t i = 0; i < k; i++) {
        if (b->chunks[i].start >= b->split && s->val_from == UINT64_MAX)
            s->val_from = s->written;
        WEFT_CHECK(sink_put(s, b->jobs[i].ids, b->jobs[i].nids));
        if (b->chunks[i].eod)
            WEFT_CHECK(sink_put(s, &eot, 1));
        progress_show(p, b->chunks[i].start + b->chunks[i].len, b->l_bytes);
    }
    return 0;
}


static int prepare_bpe(const build_opts *o, file_list *l, const weft_tokenizer *t)
{
    sink s = {.tokenizer_hash = weft_tokenizer_hash(t)};
    progress p;
    int64_t t0 = weft_now_ns();
    uint32_t vocab = (uint32_t)weft_tokenizer_vocab(t);
    int threads = o->threads ? o->threads : weft_cpu_count(), more = 1;
    bpe_run b = {o, t, NULL, NULL, NULL, 2 * (size_t)threads,
                 l->bytes - (uint64_t)llround(o->val_fraction * (double)l->bytes), l->bytes};
    reader r = {.l = l, .fd = -1, .can_cut = !weft_tokenizer_added_has(t, ' ')};
    if (weft_tokenizer_eot(t) < 0)
        return weft_error(WEFT_EDATA, "%s: the tokenizer has no end-of-text token (<|endoftext|>, <|end_of_text|>, "
                          "</s> or <eos> among its added tokens) to end each document with", o->tokenizer);
    b.chunks = calloc(b.n, sizeof *b.chunks);
    b.jobs = calloc(b.n, sizeof *b.jobs);
    int rc = b.chunks && b.jobs ? 0 : weft_error(WEFT_ENOMEM, "no memory");
    if (rc == 0)
        rc = weft_encode_pool_new(t, threads, &b.pool);
    if (rc == 0)
        rc = open_sink(&s, o, vocab <= 65536 ? 2 : 4, vocab, l->bytes + l->n);
    s.val_from = UINT64_MAX; /* until the chunk at the split (bpe_batch) */
    progress_init(&p, "prepare");
    while (rc == 0 && more)
        rc = bpe_batch(&b, &r, &s, &more, &p);
    progress_end(&p);
    if (rc == 0)
        rc = commit_sink(&s, "prepared", o->out, t0);
    if (rc == 0)
        printf("tokenizer %s: %s, vocab %u, hash %016" PRIx64 ", %d threads, %.1f MB/s\n", o->tokenizer,
               weft_tokenizer_name(t), vocab, weft_tokenizer_hash(t), threads,
               (double)l->bytes / 1e6 / ((double)(weft_now_ns() - t0) * 1e-9));
    weft_dataset_writer_free(s.w);
    weft_encode_pool_free(b.pool);
    for (size_t i = 0; b.chunks && i < b.n; i++)
        free(b.chunks[i].text);
    for (size_t i = 0; b.jobs && i < b.n; i++)
        free(b.jobs[i].ids);
    free(b.chunks);
    free(b.jobs);
    free(r.carry.text);
    if (r.fd >= 0)
        close(r.fd);
    return rc;
}

static int cmd_prepare(int argc, char **argv)
{
    build_opts o;
    weft_cli cli;
    file_list l = {0};
    weft_tokenizer *t = NULL;
    int st = parse_build(argc, argv, usage_prepare, 0, &o, &cli), rc = 0;
    if (st >= 0 || (st = check_output(&o)) >= 0)
        return st;
    if (o.tokenizer && strcmp(o.tokenizer, "bytes") != 0) {
        rc = weft_tokenizer_load(o.tokenizer, &t);
        o.tokenizer_id = WEFT_TOKENIZER_FILE;
    }
    for (int i = 0; rc == 0 && i < cli.nops; i++)
        rc = walk(&l, cli.ops[i], 0);
    if (rc == 0 && l.n == 0)
        rc = weft_error(WEFT_ENOENT, "%s: no input files found", cli.ops[0]);
    if (rc == 0)
        rc = t ? prepare_bpe(&o, &l, t) : prepare_files(&o, &l);
    list_free(&l);
    weft_tokenizer_free(t);
    return rc < 0 ? fail(rc) : 0;
}

/* ---- tokenize --------------------------------------------------------------- */

static const char *const usage_tokenize =
    "usage: weft-data tokenize --tokenizer PATH [--decode] [FILE...]\n"
    "\n"
    "Encodes each FILE (standard input when none) and prints its token ids in\n"
    "decimal, separated by spaces, one line per file (no end-of-document token is\n"
    "added). With --decode, reads ids (separated by spaces, commas or newlines) and\n"
    "writes the text they decode to. A line on stderr describes the tokenizer: kind,\n"
    "vocabulary, end-of-text id and hash.\n"
    "\n"
    "options:\n"
    "  --tokenizer PATH        tokenizer.json, a directory with tokenizer.json or\n"
    "                          vocab.json + merges.txt (encoder.json + vocab.bpe), or\n"
    "                          'bytes'\n"
    "  --decode                ids -> text\n"
    "  -h, --help              this text\n"
    "exit status: 0 ok, 64 bad usage, 65 a bad tokenizer file or id, 66 a missing file\n";

/* --encode and --decode read their whole input: a text or a list of ids. */
#define INPUT_MAX_BYTES (1u << 30)

static int encode_file(const weft_tokenizer *t, const char *path)
{
    char *text;
    size_t n, k = 0;
    WEFT_CHECK(weft_read_file(path, INPUT_MAX_BYTES, "the text to encode", &text, &n));
    uint32_t *ids = malloc((n + 1) * sizeof *ids);
    int rc = ids ? weft_tokenizer_encode(t, text, n, ids, n + 1, &k) : weft_error(WEFT_ENOMEM, "no memory");
    for (size_t i = 0; rc == 0 && i < k; i++)
        printf(i ? " %u" : "%u", ids[i]);
    if (rc == 0)
        printf("\n");
    free(ids);
    free(text);
    return rc;
}

/* Ids in decimal, separated by spaces, commas or newlines. */
static int parse_ids(const char *path, const char *text, size_t n, uint32_t *ids, size_t *k)
{
    *k = 0;
    for (size_t i = 0; i < n;) {
        if (strchr(" ,\n\t\r", text[i]) && text[i]) {
            i++;
            continue;
        }
        uint64_t v = 0;
        size_t s = i;
        while (i < n && text[i] >= '0' && text[i] <= '9' && v <= UINT32_MAX)
            v = v * 10 + (uint64_t)(text[i++] - '0');
        if (i == s || v > UINT32_MAX)
            return weft_error(WEFT_EDATA, "%s: offset %zu: expected a token id (decimal), found byte 0x%02x", path, i,
                              (unsigned char)text[i < n ? i : n - 1]);
        ids[(*k)++] = (uint32_t)v;
    }
    return 0;
}

static int decode_file(const weft_tokenizer *t, const char *path)
{
    char *text, *out = NULL;
    size_t n, k = 0, len = 0;
    WEFT_CHECK(weft_read_file(path, INPUT_MAX_BYTES, "the ids to decode", &text, &n));
    uint32_t *ids = malloc((n / 2 + 1) * sizeof *ids);
    int rc = ids ? parse_ids(path, text, n, ids, &k) : weft_error(WEFT_ENOMEM, "no memory");
    if (rc == 0 && weft_tokenizer_decode(t, ids, k, NULL, 0, &len) == WEFT_EDATA)
        rc = WEFT_EDATA; /* a bad id: the message is recorded */
    if (rc == 0 && !(out = malloc(len + 1)))
        rc = weft_error(WEFT_ENOMEM, "no memory");
    if (rc == 0)
        rc = weft_tokenizer_decode(t, ids, k, out, len + 1, &len);
    if (rc == 0)
        fwrite(out, 1, len, stdout);
    free(out);
    free(ids);
    free(text);
    return rc;
}

static int cmd_tokenize(int argc, char **argv)
{
    static const struct option opts[] = {
        {"tokenizer", required_argument, NULL, OPT_TOKENIZER_PATH},
        {"decode", no_argument, NULL, OPT_DECODE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    weft_cli cli;
    const char *path = NULL;
    int c, decode = 0, rc = 0;
    weft_cli_init(&cli, "weft-data tokenize", argc, argv, opts, 0);
    while ((c = weft_cli_next(&cli)) != WEFT_CLI_END) {
        if (c == 'h') {
            fputs(usage_tokenize, stdout);
            return WEFT_EXIT_OK;
        }
        if (c == OPT_TOKENIZER_PATH)
            path = cli.arg;
        else if (c == OPT_DECODE)
            decode = 1;
        else
            return WEFT_EXIT_USAGE;
    }
    if (!path)
        return weft_cli_error(&cli, "missing --tokenizer PATH");
    weft_tokenizer *t;
    if ((rc = weft_tokenizer_load(path, &t)) < 0)
        return fail(rc);
    fprintf(stderr, "weft-data: tokenizer %s: %s, vocab %d, end of text %d, hash %016" PRIx64 "\n", path,
            weft_tokenizer_name(t), weft_tokenizer_vocab(t), weft_tokenizer_eot(t), weft_tokenizer_hash(t));
    char *stdin_only[] = {"-"};
    char **files = cli.nops ? cli.ops : stdin_only;
    for (int i = 0; rc == 0 && i < (cli.nops ? cli.nops : 1); i++)
        rc = decode ? decode_file(t, files[i]) : encode_file(t, files[i]);
    fflush(stdout);
    weft_tokenizer_free(t);
    return rc < 0 ? fail(rc) : 0;
}

/* ---- import ----------------------------------------------------------------- */

static int range_error(const char *path, uint64_t off, uint32_t t, uint64_t vocab)
{
    return weft_error(WEFT_EDATA, "%s: token out of range at offset %" PRIu64 ": expected a token below --vocab %" PRIu64 ", found %u",
                      path, off, vocab, t);
}

/* Without --vocab the vocabulary is the largest token + 1; a token this
 * large means the input is not what --dtype says (or not tokens at all). */
static int infer_error(const char *path, uint64_t off, uint32_t t, unsigned width)
{
    return weft_error(WEFT_EDATA, "%s: token %u at offset %" PRIu64 " would make the inferred vocabulary %" PRIu64
                      ", above the largest weft trains (%d = 2^24): is this a file of %s tokens? Check --dtype, "
                      "or give --vocab N if the tokens are real", path, t, off, (uint64_t)t + 1,
                      WEFT_DATA_MAX_VOCAB, width == 2 ? "u16" : "u32");
}

static int import_file(sink *s, const build_opts *o, const char *path, const weft_import_source *src,
                       uint8_t *buf, uint32_t *tok, progress *p, uint64_t *done, uint64_t total)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
    if (fd < 0)
        return weft_error(errno == ENOENT ? WEFT_ENOENT : WEFT_EIO, "%s: cannot open input: %s", path, strerror(errno));
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    uint64_t off = src->offset, end = src->offset + src->tokens * src->width;
    while (rc == 0 && off < end) {
        size_t len = end - off < CHUNK ? (size_t)(end - off) : CHUNK;
        ssize_t n = pread(fd, buf, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || (size_t)n % src->width) {
            rc = n < 0 ? weft_error(WEFT_EIO, "%s: read at offset %" PRIu64 " failed: %s", path, off, strerror(errno))
                       : weft_error(WEFT_EDATA, "%s: truncated input at offset %" PRIu64 ": expected %" PRIu64 " bytes", path, off + (uint64_t)(n > 0 ? n : 0), end);
            break;
        }
        size_t k = (size_t)n / src->width;
        for (size_t j = 0; j < k; j++) {
            tok[j] = src->width == 2 ? (uint32_t)(buf[2 * j] | buf[2 * j + 1] << 8)
                                     : (uint32_t)buf[4 * j] | (uint32_t)buf[4 * j + 1] << 8 |
                                           (uint32_t)buf[4 * j + 2] << 16 | (uint32_t)buf[4 * j + 3] << 24;
            if (o->vocab && tok[j] >= o->vocab) {
                rc = range_error(path, off + j * src->width, tok[j], o->vocab);
                break;
            }
            if (!o->vocab && tok[j] >= WEFT_DATA_MAX_VOCAB) {
                rc = infer_error(path, off + j * src->width, tok[j], src->width);
                break;
            }
        }
        if (rc == 0)
            rc = sink_put(s, tok, k);
        off += (uint64_t)n;
        *done += (uint64_t)n;
        progress_show(p, *done, total);
    }
    close(fd);
    return rc;
}

static int import_all(const build_opts *o, int n, char **inputs, weft_import_source *src)
{
    sink s = {.tokenizer_hash = o->tokenizer_hash};
    progress p;
    uint64_t tokens = 0, bytes = 0, done = 0;
    unsigned width = o->vocab ? (o->vocab <= 65536 ? 2 : 4) : 2;
    int64_t t0 = weft_now_ns();
    for (int i = 0; i < n; i++) {
        WEFT_CHECK(weft_import_probe(inputs[i], o->raw_width, &src[i]));
        tokens += src[i].tokens;
        bytes += src[i].tokens * src[i].width;
        if (!o->vocab && src[i].width == 4)
            width = 4; /* inferred vocab may need 4-byte tokens */
    }
    uint8_t *buf = malloc(CHUNK);
    uint32_t *tok = malloc(CHUNK / 2 * sizeof *tok);
    int rc = (buf && tok) ? open_sink(&s, o, width, (uint32_t)o->vocab, tokens)
                          : weft_error(WEFT_ENOMEM, "no memory for read buffers");
    progress_init(&p, "import");
    for (int i = 0; rc == 0 && i < n; i++)
        rc = import_file(&s, o, inputs[i], &src[i], buf, tok, &p, &done, bytes);
    progress_end(&p);
    if (rc == 0 && tokens == 0)
        rc = weft_error(WEFT_EDATA, "%s: the inputs hold no tokens: expected at least one", inputs[0]);
    if (rc == 0)
        rc = commit_sink(&s, "imported", o->out, t0);
    weft_dataset_writer_free(s.w);
    free(buf);
    free(tok);
    return rc;
}

static int cmd_import(int argc, char **argv)
{
    build_opts o;
    weft_cli cli;
    int st = parse_build(argc, argv, usage_import, 1, &o, &cli);
    if (st >= 0 || (st = check_output(&o)) >= 0)
        return st;
    weft_tokenizer *t = NULL;
    if (o.tokenizer) { /* the tokenizer that made the tokens: its id, hash and vocabulary */
        int rc = weft_tokenizer_load(o.tokenizer, &t);
        if (rc < 0)
            return fail(rc);
        o.tokenizer_id = weft_tokenizer_id(t);
        o.tokenizer_hash = weft_tokenizer_hash(t);
        if (!o.vocab)
            o.vocab = (uint64_t)weft_tokenizer_vocab(t);
        weft_tokenizer_free(t);
    }
    weft_import_source *src = calloc((size_t)cli.nops, sizeof *src);
    if (!src)
        return fail(weft_error(WEFT_ENOMEM, "no memory"));
    int rc = import_all(&o, cli.nops, cli.ops, src);
    free(src);
    return rc < 0 ? fail(rc) : 0;
}

/* ---- verify and info ------------------------------------------------------ */

static void report_bad(void *arg, int rc, const char *msg)
{
    (void)arg;
    fprintf(stderr, "%sweft-data: BAD (%s): %s\n", isatty(STDERR_FILENO) ? "\n" : "", weft_strerror(rc), msg);
}

static int verify_one(const char *dir)
{
    weft_verify_report rep;
    progress p;
    progress_init(&p, "verify");
    int rc = weft_dataset_verify(dir, report_bad, progress_show, &p, &rep);
    progress_end(&p);
    if (rep.shards == 0 && rc < 0)
        return fail(rc); /* the manifest itself is bad or missing */
    printf("verify %s: %zu shards, %zu bad, %" PRIu64 " tokens good, %.1f MB read in %.2fs (%.0f MB/s)\n",
           dir, rep.shards, rep.bad, rep.tokens, (double)rep.bytes / 1e6, rep.seconds,
           rep.seconds > 0 ? (double)rep.bytes / 1e6 / rep.seconds : 0.0);
    return rc < 0 ? weft_exit_code(rc) : 0;
}

static const struct option help_only[] = {
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* verify and info: DIR... and --help. Returns -1 to go on with cli->ops,
 * else an exit status. */
static int parse_dirs(int argc, char **argv, const char *prog, const char *usage, weft_cli *cli)
{
    int c;
    weft_cli_init(cli, prog, argc, argv, help_only, 0);
    while ((c = weft_cli_next(cli)) != WEFT_CLI_END) {
        if (c != 'h')
            return WEFT_EXIT_USAGE;
        fputs(usage, stdout);
        return WEFT_EXIT_OK;
    }
    if (cli->nops == 0 && njob_dirs > 0) { /* the job's data.path */
        cli->ops = job_dirs;
        cli->nops = njob_dirs;
    }
    int st = weft_cli_operands(cli, 1, -1, "one or more dataset directories (or the job's --config)");
    return st ? st : -1;
}

static int cmd_verify(int argc, char **argv)
{
    weft_cli cli;
    int worst = 0, st = parse_dirs(argc, argv, "weft-data verify", usage_verify, &cli);
    if (st >= 0)
        return st;
    for (int i = 0; i < cli.nops; i++) {
        st = verify_one(cli.ops[i]);
        worst = worst ? worst : st;
    }
    return worst;
}

static void info_split(const weft_manifest *m, weft_split s)
{
    uint64_t t = weft_manifest_tokens(m, (int)s);
    printf("  %-6s %6zu shards %14" PRIu64 " tokens %12.1f MB\n", weft_split_name(s), weft_manifest_count(m, (int)s),
           t, (double)(t * m->token_width + WEFT_SHARD_HEADER_SIZE * weft_manifest_count(m, (int)s)) / 1e6);
}

static int info_one(const char *dir)
{
    weft_manifest *m;
    int rc = weft_manifest_load(dir, &m);
    if (rc < 0)
        return fail(rc);
    printf("dataset %s\n", dir);
    printf("  hash   %016" PRIx64 "\n", m->hash);
    printf("  vocab  %u, token width %u bytes, tokenizer %u (%s)\n", m->vocab_size, m->token_width, m->tokenizer_id,
           m->tokenizer_id == WEFT_TOKENIZER_BYTES ? "weft bytes" : m->tokenizer_id == 0 ? "external"
           : m->tokenizer_id == WEFT_TOKENIZER_FILE ? "tokenizer file" : "user");
    if (m->tokenizer_hash)
        printf("  tokenizer hash %016" PRIx64 "\n", m->tokenizer_hash);
    info_split(m, WEFT_SPLIT_TRAIN);
    info_split(m, WEFT_SPLIT_VAL);
    weft_manifest_free(m);
    return 0;
}

static int cmd_info(int argc, char **argv)
{
    weft_cli cli;
    int worst = 0, st = parse_dirs(argc, argv, "weft-data info", usage_info, &cli);
    if (st >= 0)
        return st;
    for (int i = 0; i < cli.nops; i++) {
        st = info_one(cli.ops[i]);
        worst = worst ? worst : st;
    }
    return worst;
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } cmds[] = {
        {"prepare", cmd_prepare}, {"import", cmd_import}, {"verify", cmd_verify}, {"info", cmd_info},
        {"tokenize", cmd_tokenize},
    };
    weft_cli cli;
    int c;
    weft_log_level_from_env();
    if (!(weft_cli_wants_help(argc, argv) && argc == 2) && read_job_config(&argc, argv) != 0)
        return WEFT_EXIT_USAGE;
    weft_cli_init(&cli, "weft-data", argc, argv, help_only, WEFT_CLI_COMMAND);
    while ((c = weft_cli_next(&cli)) != WEFT_CLI_END) {
        if (c != 'h')
            return WEFT_EXIT_USAGE;
        fputs(usage_main, stdout);
        return WEFT_EXIT_OK;
    }
    if (cli.nops == 0)
        return weft_cli_error(&cli, "expected a command: prepare, import, verify, info or tokenize");
    if (strcmp(cli.ops[0], "help") == 0) {
        fputs(usage_main, stdout);
        return WEFT_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(cli.ops[0], cmds[i].name) == 0)
            return cmds[i].run(cli.nops, cli.ops);
    return weft_cli_error(&cli, "unknown command '%s' (expected prepare, import, verify, info or tokenize)", cli.ops[0]);
}
