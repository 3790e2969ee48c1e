/*
 * weft-eval -- the validation loss and perplexity of a checkpoint on a
 * dataset, on any number of ranks and any DP x TP x PP layout:
 *
 *   weft-eval --init-from RUN_DIR --data.path=DS
 *   mpirun -np 4 weft-eval --init-from RUN_DIR --data.path=DS --parallel.tp=2 --parallel.pp=2
 *
 * The library trainer does the work (train/trainer.h): the mesh, the token
 * datasets, this rank's part of the model, its weights from the checkpoint
 * (weft_trainer_load_weights: any layout wrote it, none of the run's
 * services started, nothing written), and the evaluation the training loop
 * runs (weft_trainer_evaluate), so the loss is the val_loss weft-train logs
 * for the same weights, data and train.* batch keys. The model.* keys and
 * train.seq_len come from the configuration stored in the checkpoint
 * unless given; everything else is this program's configuration.
 *
 * Exit status: as weft-train's (docs/operations.md): 0 done, 64 bad usage
 * or configuration, 65 bad data (no validation split, a corrupt
 * checkpoint), 66 missing checkpoint or dataset, 70 internal, 74 I/O.
 */
#include "checkpoint/ckpt.h"
#include "model/lm.h"
#include "runtime/cli.h"
#include "train/token_source.h"
#include "train/trainer.h"
#include "weft.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const weft_config_key *const program_keys[] = {weft_model_config_keys, WEFT_TRAINER_CONFIG_KEYS, NULL};
static const weft_config_key *const all_keys[] = {weft_runtime_config_keys, weft_model_config_keys,
                                                  WEFT_TRAINER_CONFIG_KEYS, NULL};

typedef struct {
    const char *init_from;
    long long batches; /* 0: the whole validation split */
    int json;
    char path[4300];   /* the checkpoint file init_from means */
} eval_args;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: weft-eval --init-from CKPT --data.path=DS [--batches N] [--json]\n"
            "                 [--config FILE] [--section.key=value ...]\n"
            "\n"
            "Prints the mean validation loss (cross-entropy per token, nats) and perplexity of a\n"
            "checkpoint over the validation split of DS, on as many ranks and in whatever layout\n"
            "it is launched with (parallel.tp / parallel.pp / parallel.dp; the checkpoint may have\n"
            "been written by any layout):\n"
            "  weft-eval --init-from runs/demo --data.path=data/demo\n"
            "  mpirun -np 4 weft-eval --init-from runs/demo --data.path=data/demo --parallel.tp=2 --parallel.pp=2\n"
            "The model.* keys and train.seq_len are the checkpoint's (its stored configuration) unless\n"
            "given; the batch is train.global_batch windows of train.seq_len + 1 tokens, read in file\n"
            "order from the start of the split, as weft-train's validation loss: with the same\n"
            "train.* keys and --batches = train.eval_batches the loss is the val_loss it logged.\n"
            "\n"
            "  --init-from CKPT  a checkpoint file, or a run or checkpoints directory (its latest)\n"
            "  --batches N       global batches to evaluate, at most the split's (default: every\n"
            "                    whole batch of the split; the windows past the last one are left out)\n"
            "  --json            print one JSON object instead: checkpoint, loss, perplexity,\n"
            "                    batches, tokens\n"
            "  --config-markdown print the reference of every key and exit\n"
            "\n"
            "exit status: 0 done, 64 bad usage or configuration, 65 bad data (no validation split,\n"
            "a corrupt checkpoint), 66 missing checkpoint or dataset, 70 internal error, 74 I/O error\n\n");
    weft_config_help(all_keys, out);
}

static int parse_cli(int argc, char **argv, int rank, eval_args *a)
{
    enum { INIT_FROM = 256, BATCHES, JSON };
    static const struct option opts[] = {
        {"init-from", required_argument, NULL, INIT_FROM}, {"batches", required_argument, NULL, BATCHES},
        {"json", no_argument, NULL, JSON},                 {NULL, 0, NULL, 0},
    };
    *a = (eval_args){0};
    weft_cli c;
    weft_cli_init(&c, "weft-eval", argc, argv, opts, rank ? WEFT_CLI_QUIET : 0);
    for (int o; (o = weft_cli_next(&c)) != WEFT_CLI_END;) {
        int bad = 0;
        switch (o) {
        case INIT_FROM: a->init_from = c.arg; break;
        case BATCHES: bad = weft_cli_long(&c, 1, 1LL << 40, &a->batches); break;
        case JSON: a->json = 1; break;
        default: return WEFT_EXIT_USAGE;
        }
        if (bad)
            return WEFT_EXIT_USAGE;
    }
    if (weft_cli_operands(&c, 0, 0, "no operands (configuration goes in --config FILE or --section.key=value)"))
        return WEFT_EXIT_USAGE;
    if (!a->init_from)
        return weft_cli_error(&c, "--init-from CKPT is required (a checkpoint file or a run directory)");
    return 0;
}

/* The checkpoint's model.* keys and train.seq_len, where not given. Every
 * rank reads the file (the same answer everywhere, before any collective). */
static int adopt_checkpoint(weft_ctx *ctx, eval_args *a)
{
    static const char *const keys[] = {"model.", "train.seq_len", NULL};
    WEFT_CHECK(weft_ckpt_resolve(a->init_from, a->path, sizeof a->path));
    return weft_ckpt_adopt_config(a->path, ctx->config, keys);
}

/* The configuration against the job and the datasets' vocabulary
 * (train/check.c), as weft-train checks it. */
static int check_config(weft_ctx *ctx, int *vocab)
{
    WEFT_CHECK(weft_token_source_vocab(ctx->config, vocab));
    weft_trainer_check_in in = {.world = ctx->size, .rank = ctx->rank, .vocab = *vocab};
    return weft_trainer_check(ctx->config, &in);
}

static void report(const weft_ctx *ctx, const eval_args *a, int64_t batches, double loss)
{
    if (ctx->rank != 0)
        return;
    const weft_config *c = ctx->config;
    long long G = weft_config_int(c, "train.global_batch"), T = weft_config_int(c, "train.seq_len");
    long long tokens = (long long)batches * G * T;
    if (a->json) {
        printf("{\"checkpoint\": \"%s\", \"loss\": %.17g, \"perplexity\": %.17g, \"batches\": %lld, \"tokens\": "
               "%lld}\n", a->path, loss, exp(loss), (long long)batches, tokens);
        return;
    }
    printf("weft-eval: %s on %s: %lld batches x %lld sequences x %lld tokens = %lld tokens\n", a->path,
           weft_config_str(c, "data.path"), (long long)batches, G, T, tokens);
    printf("loss %.6f  perplexity %.4f\n", loss, exp(loss));
}

static int evaluate(weft_ctx *ctx, weft_trainer **tp, const eval_args *a)
{
    int vocab;
    WEFT_CHECK(check_config(ctx, &vocab));
    WEFT_CHECK(weft_trainer_new(ctx, tp));
    weft_trainer *t = *tp;
    WEFT_CHECK(weft_trainer_open_tokens(t, NULL));
    int64_t whole = weft_trainer_val_batches(t), batches = a->batches ? a->batches : whole;
    if (whole > 0 && batches > whole)
        return weft_error(WEFT_ECONFIG, "--batches %lld: the validation split of %s holds %lld whole global batches "
                          "(train.global_batch = %lld)", (long long)batches, weft_config_str(ctx->config,
                          "data.path"), (long long)whole, (long long)weft_config_int(ctx->config,
                          "train.global_batch"));
    if (batches == 0)
        return weft_error(WEFT_EDATA, "no validation batch in %s: it has no validation split (weft-data prepare "
                          "--val-fraction), or its split holds fewer than train.global_batch = %lld windows of "
                          "train.seq_len + 1 tokens, or train.eval_batches is 0", weft_config_str(ctx->config,
                          "data.path"), (long long)weft_config_int(ctx->config, "train.global_batch"));
    weft_model_part mp;
    weft_model *m;
    weft_trainer_part(t, &mp);
    WEFT_CHECK(weft_lm_new(ctx->config, vocab, &mp, 0, &m));
    WEFT_CHECK(weft_trainer_set_model(t, m));
    WEFT_CHECK(weft_trainer_load_weights(t, a->path));
    double loss;
    WEFT_CHECK(weft_trainer_evaluate(t, batches, &loss));
    report(ctx, a, batches, loss);
    return 0;
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
    eval_args a;
    weft_trainer *t = NULL;
    if (parse_cli(argc, argv, ctx->rank, &a) != 0) {
        weft_finalize(ctx);
        return WEFT_EXIT_USAGE;
    }
    rc = adopt_checkpoint(ctx, &a);
    if (rc == 0)
        rc = evaluate(ctx, &t, &a);
    if (rc && !t && ctx->rank == 0) /* before the trainer: the same on every rank, said once */
        WEFT_ERROR("%s", weft_last_error());
    int status = t ? weft_trainer_close(t, rc) : weft_exit_code(rc);
    weft_finalize(ctx);
    return status;
}
