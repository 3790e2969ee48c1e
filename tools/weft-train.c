/*
 * weft-train -- trains a language model (GPT-2 or Llama: model.family) on a
 * weft dataset with data, tensor and pipeline parallelism on a DP x TP x PP
 * mesh: the main job.
 *
 *   mpirun -np 2 weft-train --config examples/configs/demo.ini [--key=value ...]
 *   weft-train --config ... --plan [--world-size N] [--memory BYTES] [--vocab V]
 *
 * A thin program over the library trainer (train/trainer.h), which owns the
 * step, checkpoints, stop signals and metrics: parse the command line, open
 * the token datasets, build this rank's part of GPT-2, run the trainer, and
 * at the end sample from the model (--sample, through model/generate.h).
 * --plan prints every rank's memory by category for a layout without
 * building the model (train/memory.h, the trainer's own account), as one
 * process; --memory finds the largest micro-batch that fits.
 */
#include "model/generate.h"
#include "checkpoint/ckpt.h"
#include "model/lm.h"
#include "runtime/cli.h"
#include "runtime/durable.h"
#include "runtime/runfiles.h"
#include "weft.h"
#include "train/memory.h"
#include "train/token_source.h"
#include "train/trainer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const weft_config_key *const program_keys[] = {weft_model_config_keys, WEFT_TRAINER_CONFIG_KEYS, NULL};
static const weft_config_key *const all_keys[] = {weft_runtime_config_keys, weft_model_config_keys,
                                                  WEFT_TRAINER_CONFIG_KEYS, NULL};

typedef struct {
    int print_config;       /* --print-config */
    int check;              /* --check: validate only */
    int sample_tokens;      /* --sample N */
    double temperature;     /* --temperature, 0: greedy */
    const char *prompt;     /* --prompt */
    int resume;             /* --resume: 1 from latest, 2 (=auto) only if there is one */
    const char *init_from;  /* --init-from FILE|RUN_DIR: weights only */
    int plan;               /* --plan: the memory account, no training */
    int world;              /* --world-size N (0: this job's) */
    int64_t memory;         /* --memory BYTES (0: not given) */
    int vocab;              /* --vocab V (0: the datasets') */
} cli_opts;

/* --- the model ------------------------------------------------------------ */

/* The whole configuration against the job's size and the datasets'
 * vocabulary (train/check.c), before any thread or allocation: --check
 * stops here, and a bad run ends with 64 before it has written anything. */
static int check_config(weft_ctx *ctx, const cli_opts *cli, int *vocab)
{
    WEFT_CHECK(weft_token_source_vocab(ctx->config, vocab));
    weft_trainer_check_in in = {.world = ctx->size, .rank = ctx->rank, .vocab = *vocab,
                                .whole_model = cli->sample_tokens > 0 ? "--sample" : NULL};
    return weft_trainer_check(ctx->config, &in);
}

/* This rank's part of the model for the trainer's mesh, from the model.*
 * keys and the datasets' vocabulary. */
static int build_model(weft_trainer *t, const weft_config *cfg, int vocab, weft_model **out)
{
    weft_model_part mp;
    weft_trainer_part(t, &mp);
    return weft_lm_new(cfg, vocab, &mp, (uint64_t)weft_config_int(cfg, "train.seed"), out); /* checked at start */
}

/* --- sampling ------------------------------------------------------------- */

static void print_tokens(const int32_t *tok, int n, int vocab)
{
    for (int i = 0; i < n; i++) {
        if (vocab <= 256)
            putchar(tok[i] == '\n' || (tok[i] >= 32 && tok[i] < 127) ? tok[i] : '?');
        else
            printf("%d ", tok[i]);
    }
}

/* --sample N: rank 0 generates N tokens after the prompt through the
 * model's key/value cache (model/generate.h, as weft-generate does), at
 * --temperature, seeded train.seed + 1. */
static int sample(weft_ctx *ctx, weft_model *m, int V, const cli_opts *cli)
{
    if (ctx->rank != 0 || cli->sample_tokens <= 0)
        return 0;
    if (weft_config_int(ctx->config, "parallel.tp") > 1 || weft_config_int(ctx->config, "parallel.pp") > 1)
        return 0; /* refused at start by check_config */
    int context = (int)weft_config_int(ctx->config, "model.context"), total = cli->sample_tokens, n = 0;
    int cap = context < 256 ? context : 256;
    int32_t *tok = malloc((size_t)(cap + total) * sizeof(int32_t));
    if (!tok)
        return weft_error(WEFT_ENOMEM, "--sample %d: out of memory", total);
    size_t len = strlen(cli->prompt);
    for (const char *p = cli->prompt + (len > (size_t)cap ? len - (size_t)cap : 0); *p; p++)
        tok[n++] = V >= 256 ? (unsigned char)*p : 0;
    if (n == 0)
        tok[n++] = V > '\n' ? '\n' : 0;
    weft_sample_opts so = {.temperature = cli->temperature, .top_p = 1.0,
                           .seed = (uint64_t)weft_config_int(ctx->config, "train.seed") + 1};
    weft_generate_opts go = {.context = context, .max_new = total, .eot = -1};
    weft_sampler *s = NULL;
    int made = 0, rc = weft_sampler_new(V, &so, &s);
    if (rc == 0)
        rc = weft_generate(m, s, tok, n, &go, tok + n, &made);
    if (rc == 0) {
        printf("--- sample (%d tokens, temperature %g) ---\n", made, cli->temperature);
        print_tokens(tok, n + made, V);
        printf("\n---\n");
    }
    weft_sampler_free(s);
    free(tok);
    return rc;
}

/* WEFT_DUMP_PARAMS=1 (tests): every rank writes its parameters to
 * run.dir/params-rN.bin (dump_params), each tensor as one text line "name global0
 * global1 split_dim nblocks part nparts tied_copy numel" and numel f32s,
 * so a test can reassemble the global model from any layout. */
static int dump_table(const char *path, const weft_tensor *table, int n, const float *data)
{
    weft_durable d;
    WEFT_CHECK(weft_durable_open(&d, path, WEFT_DURABLE_SYNC));
    FILE *f = d.f;
    for (int i = 0; i < n; i++) {
        const weft_tensor *p = &table[i];
        const weft_shard_spec *s = &p->shard;
        fprintf(f, "%s %lld %lld %d %d %d %d %d %zu\n", p->name, (long long)s->global_shape[0],
                (long long)s->global_shape[1], s->split_dim, s->nblocks, s->part, s->nparts, (p->flags & WEFT_TENSOR_TIED_COPY) != 0, p->numel);
        fwrite(data + p->offset, sizeof(float), p->numel, f);
    }
    return weft_durable_commit(&d);
}

/* ... and the frozen tensors, if any, to run.dir/frozen-rN.bin alike. */
static int dump_params(const weft_config *cfg, int rank, const weft_model *m)
{
    if (!getenv("WEFT_DUMP_PARAMS"))
        return 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_PARAMS_FMT, weft_config_str(cfg, "run.dir"), rank);
    WEFT_CHECK(dump_table(path, m->params, m->nparams, m->param_data));
    if (!m->nfrozen)
        return 0;
    snprintf(path, sizeof path, "%s/frozen-r%d.bin", weft_config_str(cfg, "run.dir"), rank);
    return dump_table(path, m->frozen, m->nfrozen, m->frozen_data);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: weft-train [--config FILE] [--section.key=value ...] [--sample N] [--temperature X]\n"
            "                  [--prompt TEXT]\n"
            "\n"
            "Trains a GPT-2 or Llama model (model.family) on a dataset made by weft-data over the ranks\n"
            "it is launched on, data-parallel unless parallel.tp / parallel.pp ask for tensor / pipeline\n"
            "parallelism:\n"
            "  mpirun -np 2 weft-train --config examples/configs/demo.ini\n"
            "  mpirun -np 4 weft-train --config ... --parallel.tp=2 --parallel.pp=2\n"
            "Writes run.dir/metrics.jsonl (one JSON object per logged step), run.dir/config.ini,\n"
            "run.dir/run.json, checkpoints in run.dir/checkpoints (every checkpoint.every steps and at\n"
            "the end; docs/checkpoint-format.md), and with trace.steps = a:b run.dir/trace/rank-N.json.\n"
            "\n"
            "  --sample N       after training, rank 0 prints N generated tokens\n"
            "  --temperature X  sampling temperature (0: greedy; default 0.8)\n"
            "  --prompt TEXT    text to start the sample from (byte-level vocabularies)\n"
            "  --resume         continue from the newest checkpoint in run.dir/checkpoints (latest; without\n"
            "                   one, the newest step-*.h5 that verifies)\n"
            "  --resume=auto    the same when there is one, else start from step 0 (requeued jobs)\n"
            "  --init-from FILE|RUN_DIR  start from a checkpoint's weights (fine-tuning: fresh optimizer\n"
            "                   and data); a run directory means its latest checkpoint. With lora.rank > 0\n"
            "                   it is the frozen base (required); with --resume=auto, used only when there\n"
            "                   is no checkpoint to resume (requeued fine-tuning jobs). The model.* keys\n"
            "                   not given are the checkpoint's (an imported model needs none)\n"
            "  --check          check the whole configuration and the datasets' manifests, create\n"
            "                   nothing, exit 0 (good) or 64 (bad; 66: a dataset is missing)\n"
            "A fresh start in a run.dir that holds a run is refused (exit 64): --resume it, or\n"
            "--run.overwrite=true moves it to run.dir/previous/<UTC time>/ first.\n"
            "  --plan           print every rank's memory by category (parameters, gradients, optimizer\n"
            "                   state, activations, communication, checkpoint staging, the process itself)\n"
            "                   for the layout, without building the model or launching (one process);\n"
            "                   exit 0, or 64 for a configuration that is bad or does not fit\n"
            "  --world-size N   with --plan: the ranks to plan for (default: this job's)\n"
            "  --memory BYTES   with --plan: a rank's memory (K/M/G/T suffixes, powers of 1024); prints the\n"
            "                   largest train.micro_batch that fits, exit 64 naming the category that does\n"
            "                   not fit even with micro-batch 1\n"
            "  --vocab V        with --plan: the vocabulary, instead of reading data.path's manifests\n"
            "  --print-config   check the configuration, print it resolved (INI) and exit\n"
            "  --config-markdown  print the reference of every key (docs/config.md) and exit\n"
            "\n"
            "exit status: 0 done, 64 bad configuration or usage, 65 bad data, 66 missing dataset,\n"
            "70 stopped (non-finite loss, aborted job), 74 I/O error, 75 stopped by a signal with\n"
            "nothing saved, 138 (sched.requeue_exit_code) stopped by a signal after committing a\n"
            "checkpoint: requeue me (see docs/slurm.md)\n\n");
    weft_config_help(all_keys, out);
}

/* The program's own options, the getopt_long way (runtime/cli.h): --opt
 * value or --opt=value, anywhere among the configuration arguments, which
 * weft_init has already taken out. 0, or WEFT_EXIT_USAGE with the message
 * printed (by rank 0). */
static int parse_cli(int argc, char **argv, int rank, cli_opts *cli)
{
    enum { SAMPLE = 256, TEMPERATURE, PROMPT, PRINT_CONFIG, RESUME, INIT_FROM, CHECK, PLAN, WORLD, MEMORY, VOCAB };
    static const struct option opts[] = {
        {"sample", required_argument, NULL, SAMPLE},         {"temperature", required_argument, NULL, TEMPERATURE},
        {"prompt", required_argument, NULL, PROMPT},         {"print-config", no_argument, NULL, PRINT_CONFIG},
        {"resume", optional_argument, NULL, RESUME},         {"init-from", required_argument, NULL, INIT_FROM},
        {"check", no_argument, NULL, CHECK},                 {"plan", no_argument, NULL, PLAN},
        {"world-size", required_argument, NULL, WORLD},      {"memory", required_argument, NULL, MEMORY},
        {"vocab", required_argument, NULL, VOCAB},
        {NULL, 0, NULL, 0},
    };
    *cli = (cli_opts){.temperature = 0.8, .prompt = ""};
    weft_cli c;
    weft_cli_init(&c, "weft-train", argc, argv, opts, rank ? WEFT_CLI_QUIET : 0);
    long long n;
    for (int o; (o = weft_cli_next(&c)) != WEFT_CLI_END;) {
        int bad = 0;
        switch (o) {
        case SAMPLE: bad = weft_cli_long(&c, 0, 1 << 24, &n); cli->sample_tokens = (int)n; break;
        case TEMPERATURE: bad = weft_cli_double(&c, 0, 1e6, &cli->temperature); break;
        case PROMPT: cli->prompt = c.arg; break;
        case PRINT_CONFIG: cli->print_config = 1; break;
        case CHECK: cli->check = 1; break;
        case RESUME:
            if (c.arg && strcmp(c.arg, "auto") != 0)
                bad = weft_cli_bad_value(&c, "'auto' (--resume=auto), or no value");
            cli->resume = c.arg ? 2 : 1;
            break;
        case INIT_FROM: cli->init_from = c.arg; break;
        case PLAN: cli->plan = 1; break;
        case WORLD: bad = weft_cli_long(&c, 1, 1 << 24, &n); cli->world = (int)n; break;
        case VOCAB: bad = weft_cli_long(&c, 2, 1 << 30, &n); cli->vocab = (int)n; break;
        case MEMORY:
            if (weft_size_parse(c.arg, &cli->memory) != 0 || cli->memory <= 0)
                bad = weft_cli_bad_value(&c, "a byte count above 0 with an optional K/M/G/T suffix (powers of 1024)");
            break;
        default: return WEFT_EXIT_USAGE;
        }
        if (bad)
            return WEFT_EXIT_USAGE;
    }
    if (weft_cli_operands(&c, 0, 0, "no operands (configuration goes in --config FILE or --section.key=value)"))
        return WEFT_EXIT_USAGE;
    if (!cli->plan && (cli->world || cli->memory || cli->vocab))
        return weft_cli_error(&c, "--world-size, --memory and --vocab go with --plan");
    if (cli->resume == 1 && cli->init_from)
        return weft_cli_error(&c, "--resume and --init-from exclude each other (--resume=auto --init-from X "
                              "resumes when there is a checkpoint, else starts from X)");
    return 0;
}

/* --- the memory plan -------------------------------------------------------- */

/* The rank whose account is largest, every rank printed (only the first
 * data-parallel replica's past 64 ranks: the others hold the same). */
static int plan_table(weft_config *cfg, int world, int vocab, size_t runtime, weft_mem_account *worst)
{
    *worst = (weft_mem_account){0};
    for (int r = 0; r < world; r++) {
        weft_mem_account a;
        WEFT_CHECK(weft_memory_plan(cfg, world, r, vocab, runtime, &a));
        if (a.total > worst->total)
            *worst = a;
        if (world > 64 && a.coord[WEFT_AXIS_DP] != 0)
            continue;
        char row[512];
        weft_memory_row(&a, row, sizeof row);
        printf("  %s\n", row);
        printf("      activations: %d micro-batch%s in flight x %.1f MiB + %.1f MiB shared\n", a.model.nslots,
               a.model.nslots == 1 ? "" : "es", a.model.slot_bytes / 1048576.0, a.model.shared_bytes / 1048576.0);
    }
    printf("  most: rank %d, %.1f MiB\n", worst->rank, worst->total / 1048576.0);
    return 0;
}

/* Where a rank's account runs past limit, adding the fixed costs first and
 * the activations (which grow with the micro-batch) last. */
static weft_mem_cat first_over(const weft_mem_account *a, size_t limit)
{
    static const weft_mem_cat order[WEFT_MEM_NCAT] = {WEFT_MEM_RUNTIME, WEFT_MEM_PARAMS, WEFT_MEM_GRADS,
                                                      WEFT_MEM_OPTIM,   WEFT_MEM_COMM,   WEFT_MEM_CKPT,
                                                      WEFT_MEM_ACTS};
    size_t sum = 0;
    for (int i = 0; i < WEFT_MEM_NCAT; i++)
        if ((sum += a->bytes[order[i]]) > limit)
            return order[i];
    return WEFT_MEM_ACTS;
}

/* --memory: the largest micro-batch that fits; WEFT_ECONFIG naming the
 * category when not even 1 does. */
static int plan_fit(weft_config *cfg, int world, int vocab, size_t runtime, const cli_opts *cli,
                    const weft_mem_account *worst)
{
    int best;
    weft_mem_account over;
    size_t limit = (size_t)cli->memory;
    WEFT_CHECK(weft_memory_fit(cfg, world, vocab, runtime, limit, 1 << 20, &best, &over));
    if (best == 0) {
        weft_mem_cat c = first_over(&over, limit);
        return weft_error(WEFT_ECONFIG, "--memory %.1f MiB: %s does not fit on rank %d (dp %d tp %d pp %d) even "
                          "with train.micro_batch = 1: %s needs %.1f MiB of what is left (rank total %.1f MiB); "
                          "shard or split more (parallel.zero, parallel.tp, parallel.pp), train.recompute = "
                          "block, or a smaller model", limit / 1048576.0, weft_mem_cat_name(c), over.rank,
                          over.coord[WEFT_AXIS_DP], over.coord[WEFT_AXIS_TP], over.coord[WEFT_AXIS_PP],
                          weft_mem_cat_name(c), over.bytes[c] / 1048576.0, over.total / 1048576.0);
    }
    int64_t b = weft_config_int(cfg, "train.micro_batch");
    printf("  --memory %.1f MiB: the largest train.micro_batch that fits is %d (with the same micro-batches per "
           "step); the configured %lld %s\n", limit / 1048576.0, best, (long long)b,
           worst->total <= limit ? "fits" : "does not");
    return 0;
}

/* --plan: the memory account of every rank of --world-size ranks, by rank
 * 0 alone, without building the model or starting anything. */
static int plan(weft_ctx *ctx, const cli_opts *cli)
{
    int world = cli->world ? cli->world : ctx->size, vocab = cli->vocab;
    if (!vocab)
        WEFT_CHECK(weft_token_source_vocab(ctx->config, &vocab));
    weft_trainer_check_in in = {.world = world, .rank = ctx->rank, .vocab = vocab};
    WEFT_CHECK(weft_trainer_check(ctx->config, &in));
    if (ctx->rank != 0)
        return 0;
    size_t runtime;
    weft_memory_resident(&runtime, NULL); /* this process before any model: what a rank starts from */
    printf("weft-train --plan: %d rank%s, %s, train.recompute = %s, ZeRO-%lld, schedule %s, micro-batch %lld of "
           "%lld tokens, vocabulary %d (MiB)\n", world, world == 1 ? "" : "s",
           weft_config_str(ctx->config, "model.family"), weft_config_str(ctx->config, "train.recompute"),
           (long long)weft_config_int(ctx->config, "parallel.zero"), weft_config_str(ctx->config, "parallel.schedule"),
           (long long)weft_config_int(ctx->config, "train.micro_batch"),
           (long long)weft_config_int(ctx->config, "train.seq_len"), vocab);
    weft_mem_account worst;
    WEFT_CHECK(plan_table(ctx->config, world, vocab, runtime, &worst));
    return cli->memory ? plan_fit(ctx->config, world, vocab, runtime, cli, &worst) : 0;
}

/* --- main ----------------------------------------------------------------- */

/* --init-from: the checkpoint's model.* keys where the job did not give
 * them, so a fine-tune from an imported model (weft-ckpt import) or another
 * run needs no copy of its shape. Every rank reads the file, before any
 * collective: the same answer everywhere. */
static int adopt_model_keys(weft_ctx *ctx, const cli_opts *cli)
{
    static const char *const keys[] = {"model.", NULL};
    char path[4096];
    if (!cli->init_from)
        return 0;
    WEFT_CHECK(weft_ckpt_resolve(cli->init_from, path, sizeof path));
    return weft_ckpt_adopt_config(path, ctx->config, keys);
}

/* Set up, train, sample. The model is the trainer's until it is closed. */
static int train(weft_ctx *ctx, weft_trainer **tp, const cli_opts *cli)
{
    int vocab;
    WEFT_CHECK(adopt_model_keys(ctx, cli));
    WEFT_CHECK(check_config(ctx, cli, &vocab));
    if (cli->check) {
        if (ctx->rank == 0)
            printf("weft-train --check: the configuration is good for %d rank%s (vocabulary %d)\n", ctx->size,
                   ctx->size == 1 ? "" : "s", vocab);
        return 0;
    }
    WEFT_CHECK(weft_trainer_new(ctx, tp));
    weft_trainer *t = *tp;
    WEFT_CHECK(weft_trainer_open_tokens(t, NULL)); /* vocab: read by check_config */
    weft_model *m;
    WEFT_CHECK(build_model(t, ctx->config, vocab, &m));
    WEFT_CHECK(weft_trainer_set_model(t, m));
    weft_trainer_start_opts so = {.resume = cli->resume, .init_from = cli->init_from};
    WEFT_CHECK(weft_trainer_start(t, &so));
    WEFT_CHECK(weft_trainer_run(t, NULL));
    if (cli->sample_tokens > 0 || getenv("WEFT_DUMP_PARAMS"))
        WEFT_CHECK(weft_trainer_whole_params(t)); /* ZeRO-3: only the shard is in place between uses */
    WEFT_CHECK(sample(ctx, m, vocab, cli));
    return dump_params(ctx->config, ctx->rank, m);
}

int main(int argc, char **argv)
{
    if (weft_cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    if (weft_cli_has(argc, argv, "--config-markdown")) {
        weft_config_markdown(all_keys, stdout);
        return 0;
    }
    weft_ctx *ctx;
    int rc = weft_init(&argc, argv, program_keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    cli_opts cli;
    weft_trainer *t = NULL;
    if (parse_cli(argc, argv, ctx->rank, &cli) != 0) {
        weft_finalize(ctx);
        return WEFT_EXIT_USAGE;
    }
    if (cli.print_config) {
        char *ini = weft_config_to_ini(ctx->config);
        if (ctx->rank == 0 && ini)
            fputs(ini, stdout);
        free(ini);
    } else if (cli.plan) {
        rc = plan(ctx, &cli);
    } else {
        rc = train(ctx, &t, &cli);
    }
    if (rc && !t && ctx->rank == 0) /* check_config failed: the same on every rank, said once */
        WEFT_ERROR("%s", weft_last_error());
    int status = weft_trainer_close(t, rc);
    weft_finalize(ctx);
    return status;
}
