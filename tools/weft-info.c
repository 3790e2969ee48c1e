/*
 * weft-info -- shows what weft sees of a job and checks it end to end: the
 * launcher, job id, ranks and nodes, each rank's placement, the resolved
 * configuration, and a round of collectives on the configured backend.
 * Run it under the same launcher and options as the real job to find out
 * why a launch misbehaves before a week-long run does.
 *
 * weft_init takes the configuration arguments out of argv (anywhere); the
 * rest are options read by runtime/cli.h. --help and --config-markdown are
 * answered before weft_init, so they need neither MPI nor a valid
 * configuration.
 */
#include "runtime/cli.h"
#include "weft.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* weft-train's keys, not only the comm.* that weft-info itself reads: it
 * takes the job's config files and --print-config shows the configuration
 * weft-train would resolve from them (a key the job misspells is caught
 * here, before the job is queued). */
static const weft_config_key *const program_keys[] = {weft_model_config_keys, WEFT_TRAINER_CONFIG_KEYS, NULL};
static const weft_config_key *const all_keys[] = {weft_runtime_config_keys, weft_model_config_keys,
                                                  WEFT_TRAINER_CONFIG_KEYS, NULL};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: weft-info [--config FILE] [--section.key=value ...] [options]\n"
            "\n"
            "Shows the job as weft sees it (launcher, job id, ranks, nodes, placement of\n"
            "every rank) and checks the collectives end to end on the configured backend.\n"

            "Run it with the same launcher and options as the real job, e.g.\n"
            "  mpirun -np 4 weft-info --comm.backend=mpi\n"
            "\n"
            "options:\n"
            "  --config FILE        read configuration from an INI file (repeatable)\n"
            "  --section.key=value  override one configuration key\n"
            "  --print-config       print the job's configuration resolved as weft-train does\n"
            "                       (every key below, INI) and exit\n"
            "  --config-markdown    print the reference of these keys as Markdown and exit\n"
            "  --no-check           skip the collectives check\n"
            "  -h, --help           this text\n"
            "\n"
            "exit status: 0 ok, 64 bad usage or configuration, 66 configuration file\n"
            "missing, 70 the collectives check failed\n"
            "\n"
            "It reads the comm.* keys; it accepts (and --print-config shows) every key of the job,\n"
            "those of weft-train below.\n"
            "\n");
    weft_config_help(all_keys, out);
}

enum { OPT_PRINT_CONFIG = 256, OPT_CONFIG_MARKDOWN, OPT_NO_CHECK };

static const struct option info_opts[] = {
    {"print-config", no_argument, NULL, OPT_PRINT_CONFIG},
    {"config-markdown", no_argument, NULL, OPT_CONFIG_MARKDOWN},
    {"no-check", no_argument, NULL, OPT_NO_CHECK},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* This rank's device as run.device chooses it (runtime/device.h), and as
 * weft-train would train on it (cpu until its step runs on CUDA). */
static int device_of(weft_ctx *ctx, char *buf, size_t len)
{
    weft_device where, train;
    char name[32], tname[32], note[512];
    int rc = weft_device_select(ctx->config, ctx->local_rank, &where, note, sizeof note);
    if (rc) {
        snprintf(buf, len, "device unavailable (%s)", weft_last_error());
        return rc;
    }
    weft_device_name(where, name, sizeof name);
    if (weft_device_for_training(ctx->config, ctx->local_rank, &train, NULL, 0) != 0)
        snprintf(buf, len, "device %s (weft-train refuses it: %s)", name,
                 WEFT_DEVICE_NO_CUDA_TRAINING);
    else if (train.kind != where.kind)
        snprintf(buf, len, "device %s (weft-train trains on %s: %s)", name,
                 weft_device_name(train, tname, sizeof tname), WEFT_DEVICE_NO_CUDA_TRAINING);
    else
        snprintf(buf, len, "device %s", name);
    return 0;
}

/* Rank 0 prints one line per rank, in rank order. Returns this rank's
 * device error (run.device = cuda without a GPU: exit 69). */
static int print_placement(weft_ctx *ctx)
{
    char mine[640], dev[448], *all = NULL;
    int rc = device_of(ctx, dev, sizeof dev);
    snprintf(mine, sizeof mine, "  rank %d: node %d (%s), local rank %d of %d, pid %d, %s", ctx->rank, ctx->node,
             ctx->host, ctx->local_rank, ctx->local_size, (int)getpid(), dev);
    if (ctx->rank == 0)
        all = malloc(sizeof mine * (size_t)ctx->size);
    MPI_Gather(mine, sizeof mine, MPI_CHAR, all, sizeof mine, MPI_CHAR, 0, ctx->world);
    if (ctx->rank == 0) {
        for (int r = 0; r < ctx->size; r++)
            printf("%s\n", all + (size_t)r * sizeof mine);
        free(all);
    }
    return rc;
}

/* One of each kind of collective, with answers known in closed form. */
static int check_collectives(weft_comm *c)
{
    int n = weft_comm_size(c), me = weft_comm_rank(c);
    int64_t x = me + 1, sum = 0;
    WEFT_CHECK(weft_comm_allreduce(c, &x, &sum, 1, WEFT_I64, WEFT_SUM));
    if (sum != (int64_t)n * (n + 1) / 2)
        return weft_error(WEFT_EINTERNAL, "allreduce: sum of 1..%d came back %lld", n, (long long)sum);
    double v[64], part[64];
    size_t off, len;
    weft_comm_chunk(64, n, me, &off, &len);
    for (int i = 0; i < 64; i++)
        v[i] = i + me;
    WEFT_CHECK(weft_comm_reduce_scatter(c, v, part, 64, WEFT_F64, WEFT_SUM));
    for (size_t j = 0; j < len; j++)
        if (part[j] != (double)n * (double)(off + j) + n * (n - 1) / 2.0)
            return weft_error(WEFT_EINTERNAL, "reduce_scatter: element %zu is %g", off + j, part[j]);
    WEFT_CHECK(weft_comm_allgather(c, part, v, 64, WEFT_F64));
    for (int i = 0; i < 64; i++)
        if (v[i] != (double)n * i + n * (n - 1) / 2.0)
            return weft_error(WEFT_EINTERNAL, "allgather: element %d is %g", i, v[i]);
    int root_val = me == n - 1 ? 12345 : 0;
    WEFT_CHECK(weft_comm_broadcast(c, &root_val, &root_val, 1, WEFT_I32, n - 1));
    if (root_val != 12345)
        return weft_error(WEFT_EINTERNAL, "broadcast: got %d, want 12345", root_val);
    return weft_comm_barrier(c);
}

static int run(weft_ctx *ctx, int check)
{
    if (ctx->rank == 0)
        printf("%s\n", "placement:");
    int dev_rc = print_placement(ctx);
    if (dev_rc || !check)
        return dev_rc;
    weft_comm_opts opts;
    weft_comm_opts_from_config(ctx->config, &opts);
    weft_comm *world;
    WEFT_CHECK(weft_comm_world(ctx, &opts, &world));
    int64_t t0 = weft_now_ns();
    int rc = check_collectives(world);
    double ms = 1e-6 * (double)(weft_now_ns() - t0);
    /* Every rank must agree on the verdict before anyone reports it. */
    int bad = rc != 0, any = 0;
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, ctx->world);
    if (rc)
        WEFT_ERROR("collectives check failed: %s", weft_last_error());
    else if (any == 0 && ctx->rank == 0)
        printf("collectives: allreduce, reduce_scatter, allgather, broadcast, barrier ok on %d rank%s "
               "(backend %s, %.1f ms)\n", weft_comm_size(world), weft_comm_size(world) == 1 ? "" : "s",
               weft_comm_backend(world), ms);
    weft_comm_free(world);
    return any ? WEFT_EINTERNAL : 0;
}

int main(int argc, char **argv)
{
    if (weft_cli_wants_help(argc, argv)) {
        usage(stdout);
        return WEFT_EXIT_OK;
    }
    if (weft_cli_has(argc, argv, "--config-markdown")) {
        weft_config_markdown(all_keys, stdout);
        return WEFT_EXIT_OK;
    }
    weft_ctx *ctx;
    int rc = weft_init(&argc, argv, program_keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    int print_config = 0, check = 1, c, st = -1;
    weft_cli cli;
    weft_cli_init(&cli, "weft-info", argc, argv, info_opts, ctx->rank == 0 ? 0 : WEFT_CLI_QUIET);
    while (st < 0 && (c = weft_cli_next(&cli)) != WEFT_CLI_END) {
        switch (c) {
        case OPT_PRINT_CONFIG: print_config = 1; break;
        case OPT_NO_CHECK: check = 0; break;
        case OPT_CONFIG_MARKDOWN: /* an abbreviation: --config-m */
            if (ctx->rank == 0)
                weft_config_markdown(all_keys, stdout);
            st = WEFT_EXIT_OK;
            break;
        case 'h':
            if (ctx->rank == 0)
                usage(stdout);
            st = WEFT_EXIT_OK;
            break;
        default: st = WEFT_EXIT_USAGE; break;
        }
    }
    if (st < 0 && cli.nops > 0)
        st = weft_cli_operands(&cli, 0, 0, "no operands");
    if (st >= 0) {
        weft_finalize(ctx);
        return st;
    }
    if (print_config) {
        char *ini = weft_config_to_ini(ctx->config);
        if (ctx->rank == 0 && ini)
            fputs(ini, stdout);
        free(ini);
        weft_finalize(ctx);
        return 0;
    }
    rc = run(ctx, check);
    if (rc)
        WEFT_ERROR("%s", weft_last_error());
    weft_finalize(ctx);
    return weft_exit_code(rc);
}
