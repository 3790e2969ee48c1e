/*
 * weft-bench -- nccl-tests-style collective benchmark: for each operation
 * and size, the time, algorithm and bus bandwidth and the number of wrong
 * elements of weft's chosen backend, beside the MPI library's own
 * collective measured in the same run on the same buffers, and on one node
 * the bound memory bandwidth sets (a memcpy of each row's size measured in
 * the same run, all ranks copying at once). See docs/collectives.md for the columns.
 *
 *   mpirun -np 2 weft-bench --comm.backend=shm [--op allreduce] [--max=64M]
 *
 * weft_init takes the configuration arguments out of argv; the rest are
 * options read by runtime/cli.h ("--op allreduce" or "--op=allreduce").
 *
 * Deliberately not here: device buffers (nccl has its own nccl-tests) and
 * per-call latency distributions (one mean per size, as nccl-tests).
 */
#include "runtime/cli.h"
#include "weft.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const weft_config_key *const program_keys[] = {weft_comm_config_keys, NULL};
static const weft_config_key *const all_keys[] = {weft_runtime_config_keys, weft_comm_config_keys, NULL};

enum { OP_ALLREDUCE, OP_REDUCE_SCATTER, OP_ALLGATHER, OP_BROADCAST, OP_ALLTOALL, NOPS };
static const char *const op_names[NOPS] = {"allreduce", "reduce_scatter", "allgather", "broadcast", "alltoall"};

typedef struct {
    int ops[NOPS];
    weft_dtype dt;
    size_t min_bytes, max_bytes, step;
    int iters, warmup, mpi;
    const char *json;
} bench_opts;

typedef struct {
    weft_comm *c;
    MPI_Comm mpi;
    int me, n;
    void *send, *recv;
    int *cnt, *dsp; /* per-rank counts and offsets for MPI's v-collectives */
} bench_env;

typedef struct {
    double time_us, algbw, busbw;
    long wrong;
} result;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mpirun -np N weft-bench [--config FILE] [--section.key=value ...] [options]\n"
            "\n"
            "Times weft's collectives on the configured backend (--comm.backend=shm|hier|tcp|ib|mpi|auto)\n"
            "beside the MPI library's own, per operation and size, as nccl-tests does:\n"
            "time (us), algbw and busbw (GB/s) and #wrong (elements that differ from the\n"
            "closed-form answer). On one node it also prints the bound that memory\n"
            "bandwidth puts on busbw. See docs/collectives.md.\n"
            "\n"
            "options:\n"
            "  --op=LIST       operations, comma-separated: allreduce, reduce_scatter,\n"
            "                  allgather, broadcast, alltoall, or all (default all)\n"
            "  --dtype=T       f32 (default), bf16, f16, f64, i32, i64, u8\n"
            "  --min=BYTES     smallest size (default 8; K, M, G suffixes)\n"
            "  --max=BYTES     largest size (default 64M)\n"
            "  --step=F        size factor between rows (default 2)\n"
            "  --iters=N       timed calls per size (default 20; up to 50x that below 64K)\n"
            "  --warmup=N      untimed calls per size first (default 5)\n"
            "  --no-mpi        skip the MPI library's columns\n"
            "  --json=FILE     also write every row as a JSON line to FILE ('-': stdout)\n"
            "  -h, --help      this text\n"
            "Every option takes its value as --opt=VALUE or --opt VALUE.\n"
            "The job's config files are accepted whole: sections other weft programs read\n"
            "([model], [train], ...) are skipped; the keys below are the ones weft-bench reads.\n"
            "\n");
    weft_config_help(all_keys, out);
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    double v = strtod(s, &end);
    double mul = *end == 'K' || *end == 'k' ? 1024.0 : *end == 'M' || *end == 'm' ? 1048576.0
               : *end == 'G' || *end == 'g' ? 1073741824.0 : 1.0;
    if (mul != 1.0)
        end++;
    if (end == s || *end || v < 0 || v * mul > 1e12)
        return -1;
    *out = (size_t)(v * mul);
    return 0;
}

static int parse_ops(const char *s, int *ops)
{
    memset(ops, 0, NOPS * sizeof *ops);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int found = 0;
        for (int k = 0; k < NOPS; k++)
            if (strcmp(t, op_names[k]) == 0 || strcmp(t, "all") == 0)
                ops[k] = found = 1;
        if (!found)
            return -1;
    }
    return 0;
}

static int parse_dtype(const char *s, weft_dtype *dt)
{
    for (int d = 0; d < WEFT_NDTYPES; d++)
        if (strcmp(s, weft_dtype_name((weft_dtype)d)) == 0) {
            *dt = (weft_dtype)d;
            return 0;
        }
    return -1;
}

enum { OPT_OP = 256, OPT_DTYPE, OPT_MIN, OPT_MAX, OPT_STEP, OPT_ITERS, OPT_WARMUP, OPT_NO_MPI, OPT_JSON };

static const struct option bench_long[] = {
    {"op", required_argument, NULL, OPT_OP},
    {"dtype", required_argument, NULL, OPT_DTYPE},
    {"min", required_argument, NULL, OPT_MIN},
    {"max", required_argument, NULL, OPT_MAX},
    {"step", required_argument, NULL, OPT_STEP},
    {"iters", required_argument, NULL, OPT_ITERS},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"no-mpi", no_argument, NULL, OPT_NO_MPI},
    {"json", required_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* One option; 0 to go on, else an exit status (the message printed). */
static int parse_opt(int c, weft_cli *cli, bench_opts *o)
{
    const char *v = cli->arg;
    long long n;
    switch (c) {
    case OPT_OP:
        return parse_ops(v, o->ops) ? weft_cli_bad_value(cli, "a comma-separated list of allreduce, "
                                                         "reduce_scatter, allgather, broadcast, alltoall or all") : 0;
    case OPT_DTYPE:
        return parse_dtype(v, &o->dt) ? weft_cli_bad_value(cli, "f32, bf16, f16, f64, i32, i64 or u8") : 0;
    case OPT_MIN:
        return parse_size(v, &o->min_bytes) ? weft_cli_bad_value(cli, "a size in bytes like 8, 64K or 1M") : 0;
    case OPT_MAX:
        return parse_size(v, &o->max_bytes) ? weft_cli_bad_value(cli, "a size in bytes like 8, 64K or 1M") : 0;
    case OPT_STEP:
        if (weft_cli_long(cli, 2, 1 << 20, &n))
            return WEFT_EXIT_USAGE;
        o->step = (size_t)n;
        return 0;
    case OPT_ITERS:
        if (weft_cli_long(cli, 1, 1000000, &n))
            return WEFT_EXIT_USAGE;
        o->iters = (int)n;
        return 0;
    case OPT_WARMUP:
        if (weft_cli_long(cli, 0, 1000000, &n))
            return WEFT_EXIT_USAGE;
        o->warmup = (int)n;
        return 0;
    case OPT_NO_MPI: o->mpi = 0; return 0;
    case OPT_JSON:
        if (!*v)
            return weft_cli_bad_value(cli, "a file name, or '-' for stdout");
        o->json = v;
        return 0;
    default: /* WEFT_CLI_ERROR (said why); 'h' was answered before weft_init */
        return c == 'h' ? WEFT_EXIT_OK : WEFT_EXIT_USAGE;
    }
}

/* -1 to go on, else an exit status. quiet: print nothing (ranks but 0). */
static int parse_args(int argc, char **argv, int quiet, bench_opts *o)
{
    *o = (bench_opts){.dt = WEFT_F32, .min_bytes = 8, .max_bytes = 64u << 20, .step = 2, .iters = 20,
                      .warmup = 5, .mpi = 1};
    parse_ops("all", o->ops);
    weft_cli cli;
    int c, st;
    weft_cli_init(&cli, "weft-bench", argc, argv, bench_long, quiet ? WEFT_CLI_QUIET : 0);
    while ((c = weft_cli_next(&cli)) != WEFT_CLI_END)
        if ((st = parse_opt(c, &cli, o)) != 0)
            return st;
    if ((st = weft_cli_operands(&cli, 0, 0, "no operands")) != 0)
        return st;
    if (o->min_bytes < 1 || o->min_bytes > o->max_bytes)
        return weft_cli_error(&cli, "--min %zu and --max %zu: expected 1 <= min <= max", o->min_bytes, o->max_bytes);
    return -1;
}

/* --- values with closed-form results ---------------------------------------
 * Rank r contributes (r % 4 + 1) * (i % 3 + 1) at element i: small integers,
 * so sums are exact in every dtype for up to 16 ranks. */
static double val(int r, size_t i) { return (double)((r % 4 + 1) * (int)(i % 3 + 1)); }

static double rank_sum(int n)
{
    double s = 0;
    for (int r = 0; r < n; r++) s += r % 4 + 1;
    return s;
}


/* The count argument of op for a size in bytes (0: the size is too small). */
static size_t op_count(int op, size_t bytes, weft_dtype dt, int n)
{
    size_t c = bytes / weft_dtype_size(dt);
    return op == OP_ALLTOALL ? c / (size_t)n : c;
}

static double bus_factor(int op, int n)
{
    if (op == OP_ALLREDUCE)
        return 2.0 * (n - 1) / n;
    return op == OP_BROADCAST ? 1.0 : (double)(n - 1) / n;
}

/* Fill the send buffer for op: element i of what this rank contributes. */
static void fill(const bench_env *e, int op, size_t count, weft_dtype dt)
{
    size_t off = 0, len = count;
    if (op == OP_ALLGATHER)
        weft_comm_chunk(count, e->n, e->me, &off, &len);
    if (op == OP_ALLTOALL)
        len = count * (size_t)e->n;
    for (size_t i = 0; i < len; i++)
        weft_dtype_store(e->send, i, dt, val(e->me, off + i));
}

/* Elements of recv that differ from the closed-form answer. */
static long count_wrong(const bench_env *e, int op, size_t count, weft_dtype dt)
{
    size_t off, len;
    weft_comm_chunk(count, e->n, e->me, &off, &len);
    double s = rank_sum(e->n);
    long bad = 0;
    size_t total = op == OP_REDUCE_SCATTER ? len : op == OP_ALLTOALL ? count * (size_t)e->n : count;
    for (size_t i = 0; i < total; i++) {
        double want;
        switch (op) {
        case OP_ALLREDUCE: want = s * (double)(i % 3 + 1); break;
        case OP_REDUCE_SCATTER: want = s * (double)((off + i) % 3 + 1); break;
        case OP_ALLGATHER: {
            int owner = 0;
            for (int r = 0; r < e->n; r++) {
                size_t o, l;
                weft_comm_chunk(count, e->n, r, &o, &l);
                if (i >= o && i < o + l)
                    owner = r;
            }
            want = val(owner, i);
            break;
        }
        case OP_BROADCAST: want = val(0, i); break;
        default: want = val((int)(i / count), (size_t)e->me * count + i % count); break;
        }
        bad += weft_dtype_load(e->recv, i, dt) != want;
    }
    return bad;
}

/* --- the two implementations ---------------------------------------------- */

static int run_weft(const bench_env *e, int op, size_t count, weft_dtype dt)
{
    switch (op) {
    case OP_ALLREDUCE: return weft_comm_allreduce(e->c, e->send, e->recv, count, dt, WEFT_SUM);
    case OP_REDUCE_SCATTER: return weft_comm_reduce_scatter(e->c, e->send, e->recv, count, dt, WEFT_SUM);
    case OP_ALLGATHER: return weft_comm_allgather(e->c, e->send, e->recv, count, dt);
    case OP_BROADCAST: return weft_comm_broadcast(e->c, e->send, e->recv, count, dt, 0);
    default: return weft_comm_alltoall(e->c, e->send, e->recv, count, dt);
    }
}

static MPI_Datatype mpi_type(weft_dtype dt)
{
    switch (dt) {
    case WEFT_F32: return MPI_FLOAT;
    case WEFT_F64: return MPI_DOUBLE;
    case WEFT_I32: return MPI_INT32_T;
    case WEFT_I64: return MPI_INT64_T;
    case WEFT_U8: return MPI_UINT8_T;
    default: return MPI_UINT16_T;
    }
}

/* MPI reduces no bf16/f16: those rows have no MPI reduction figures. */
static int mpi_can(int op, weft_dtype dt)
{
    return !(op == OP_ALLREDUCE || op == OP_REDUCE_SCATTER) || !(dt == WEFT_BF16 || dt == WEFT_F16);
}

static int run_mpi(const bench_env *e, int op, size_t count, weft_dtype dt)
{
    MPI_Datatype t = mpi_type(dt);
    int rc, *cnt = e->cnt, *dsp = e->dsp;
    if (op == OP_REDUCE_SCATTER || op == OP_ALLGATHER)
        for (int r = 0; r < e->n; r++) {
            size_t o, l;
            weft_comm_chunk(count, e->n, r, &o, &l);
            cnt[r] = (int)l;
            dsp[r] = (int)o;
        }
    switch (op) {
    case OP_ALLREDUCE: rc = MPI_Allreduce(e->send, e->recv, (int)count, t, MPI_SUM, e->mpi); break;
    case OP_REDUCE_SCATTER: rc = MPI_Reduce_scatter(e->send, e->recv, cnt, t, MPI_SUM, e->mpi); break;
    case OP_ALLGATHER: rc = MPI_Allgatherv(e->send, cnt[e->me], t, e->recv, cnt, dsp, t, e->mpi); break;
    case OP_BROADCAST:
        if (e->me == 0)
            memcpy(e->recv, e->send, count * weft_dtype_size(dt));
        rc = MPI_Bcast(e->recv, (int)count, t, 0, e->mpi);
        break;
    default: rc = MPI_Alltoall(e->send, (int)count, t, e->recv, (int)count, t, e->mpi); break;
    }
    return rc == MPI_SUCCESS ? 0 : WEFT_ECOMM;
}

typedef int (*impl_fn)(const bench_env *e, int op, size_t count, weft_dtype dt);

/* Small sizes get up to 50x the iterations, so one descheduling does not
 * make a row's mean. */
static int row_iters(const bench_opts *o, size_t bytes)
{
    size_t mul = bytes >= 65536 ? 1 : 65536 / bytes;
    return o->iters * (int)(mul > 50 ? 50 : mul);
}

/* Mean time per call over iters calls (the slowest rank's), after warm-up;
 * then one more call into a poisoned buffer, checked. */
static int measure(const bench_env *e, impl_fn f, int op, size_t count, size_t bytes, const bench_opts *o,
                   result *res)
{
    int rc = 0, iters = row_iters(o, bytes);
    for (int i = 0; rc == 0 && i < o->warmup; i++)
        rc = f(e, op, count, o->dt);
    MPI_Barrier(e->mpi);
    int64_t t0 = weft_now_ns();
    for (int i = 0; rc == 0 && i < iters; i++)
        rc = f(e, op, count, o->dt);
    double t = 1e-9 * (double)(weft_now_ns() - t0) / iters, tmax = 0;
    MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, e->mpi);
    memset(e->recv, 0xff, bytes + 64);
    if (rc == 0)
        rc = f(e, op, count, o->dt);
    long wrong = rc ? -1 : count_wrong(e, op, count, o->dt), all = 0;
    MPI_Allreduce(&wrong, &all, 1, MPI_LONG, MPI_SUM, e->mpi);
    int any = rc != 0, anyrc = 0;
    MPI_Allreduce(&any, &anyrc, 1, MPI_INT, MPI_MAX, e->mpi);
    res->time_us = tmax * 1e6;
    res->algbw = tmax > 0 ? (double)bytes / tmax / 1e9 : 0;
    res->busbw = res->algbw * bus_factor(op, e->n);
    res->wrong = all;
    return anyrc ? (rc ? rc : WEFT_ECOMM) : 0;
}

/* memcpy bandwidth per rank with every rank copying 64 MiB at once (GB/s):
 * the best of 7 rounds (the slowest rank's time in each), since a bound
 * should not suffer from a noisy neighbour. */
static double copy_bandwidth(const bench_env *e)
{
    size_t bytes = 64u << 20;
    char *a = malloc(bytes), *b = malloc(bytes);
    double best = 0;
    if (a && b) {
        memset(a, 1, bytes);
        memset(b, 2, bytes);
        for (int k = 0; k < 7; k++) {
            MPI_Barrier(e->mpi);
            int64_t t0 = weft_now_ns();
            memcpy(k % 2 ? a : b, k % 2 ? b : a, bytes);
            double dt = 1e-9 * (double)(weft_now_ns() - t0), tmax = 0;
            MPI_Allreduce(&dt, &tmax, 1, MPI_DOUBLE, MPI_MAX, e->mpi);
            if (tmax > 0 && (double)bytes / tmax / 1e9 > best)
                best = (double)bytes / tmax / 1e9;
        }
    }
    free(a);
    free(b);
    return best;
}

static void print_header(const bench_env *e, const bench_opts *o, double copy_bw, int one_node)
{
    printf("# weft-bench: %d rank%s, backend %s, dtype %s, %d iterations (up to 50x below 64 KiB; +%d warm-up), "
           "out of place\n", e->n,
           e->n == 1 ? "" : "s", weft_comm_backend(e->c), weft_dtype_name(o->dt), o->iters, o->warmup);
    if (one_node)
        printf("# memory bandwidth: memcpy of 64 MiB, all ranks at once, best of 7: %.2f GB/s per rank\n"
               "# bound: busbw of a plain memcpy send -> recv of the row's size on every rank at once\n", copy_bw);
    printf("#\n# %-14s %12s %11s %5s | %10s %8s %8s %6s | %10s %8s %8s %6s | %8s %7s\n", "", "", "", "",
           "weft", "", "", "", "MPI", "", "", "", "", "");
    printf("# %-14s %12s %11s %5s | %10s %8s %8s %6s | %10s %8s %8s %6s | %8s %7s\n", "op", "size(B)", "count",
           "type", "time(us)", "algbw", "busbw", "#wrong", "time(us)", "algbw", "busbw", "#wrong", "bound", "weft/MPI");
}

static void print_row(FILE *json, const bench_env *e, const bench_opts *o, int op, size_t bytes, size_t count,
                      const result *w, const result *m, double bound)
{
    char mcols[64] = "", ratio[16] = "-", bcol[16] = "-";
    if (m)
        snprintf(mcols, sizeof mcols, "%10.2f %8.2f %8.2f %6ld", m->time_us, m->algbw, m->busbw, m->wrong);
    else
        snprintf(mcols, sizeof mcols, "%10s %8s %8s %6s", "-", "-", "-", "-");
    if (m && w->time_us > 0)
        snprintf(ratio, sizeof ratio, "%.2f", m->time_us / w->time_us);
    if (bound > 0)
        snprintf(bcol, sizeof bcol, "%.2f", bound);
    printf("  %-14s %12zu %11zu %5s | %10.2f %8.2f %8.2f %6ld | %s | %8s %7s\n", op_names[op], bytes, count,
           weft_dtype_name(o->dt), w->time_us, w->algbw, w->busbw, w->wrong, mcols, bcol, ratio);
    fflush(stdout);
    if (!json)
        return;
    fprintf(json, "{\"op\":\"%s\",\"size\":%zu,\"count\":%zu,\"type\":\"%s\",\"ranks\":%d,\"backend\":\"%s\","
            "\"time_us\":%.3f,\"algbw\":%.4f,\"busbw\":%.4f,\"wrong\":%ld", op_names[op], bytes, count,
            weft_dtype_name(o->dt), e->n, weft_comm_backend(e->c), w->time_us, w->algbw, w->busbw, w->wrong);
    if (m)
        fprintf(json, ",\"mpi_time_us\":%.3f,\"mpi_algbw\":%.4f,\"mpi_busbw\":%.4f,\"mpi_wrong\":%ld", m->time_us,
                m->algbw, m->busbw, m->wrong);
    if (bound > 0)
        fprintf(json, ",\"bound_busbw\":%.4f", bound);
    fprintf(json, "}\n");
    fflush(json);
}

/* The bound at one size: the time of a plain memcpy of the row's bytes from
 * the send to the receive buffer, every rank at once, timed like the
 * collective (mean over iters, slowest rank), as busbw. Every rank must at
 * least read its input and write its output once, so no collective on one
 * node beats it by much; it follows the caches as the sizes grow. */
static double copy_bound(const bench_env *e, int op, size_t bytes, const bench_opts *o)
{
    for (int i = 0; i < o->warmup; i++)
        memcpy(e->recv, e->send, bytes);
    MPI_Barrier(e->mpi);
    int64_t t0 = weft_now_ns();
    int iters = row_iters(o, bytes);
    for (int i = 0; i < iters; i++)
        memcpy(e->recv, e->send, bytes);
    double t = 1e-9 * (double)(weft_now_ns() - t0) / iters, tmax = 0;
    MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, e->mpi);
    return tmax > 0 ? (double)bytes / tmax / 1e9 * bus_factor(op, e->n) : 0;
}

/* One operation over every size. Returns the number of wrong elements. */
static long bench_op(const bench_env *e, const bench_opts *o, int op, int one_node, FILE *json, int *rc)
{
    long wrong = 0;
    for (size_t bytes = o->min_bytes; bytes <= o->max_bytes && *rc == 0; bytes *= o->step) {
        size_t count = op_count(op, bytes, o->dt, e->n);
        size_t used = (op == OP_ALLTOALL ? count * (size_t)e->n : count) * weft_dtype_size(o->dt);
        if (count == 0)
            continue;
        fill(e, op, count, o->dt);
        result w, m;
        *rc = measure(e, run_weft, op, count, used, o, &w);
        int with_mpi = o->mpi && mpi_can(op, o->dt) && *rc == 0;
        if (with_mpi)
            *rc = measure(e, run_mpi, op, count, used, o, &m);
        wrong += w.wrong + (with_mpi ? m.wrong : 0);
        double bound = one_node && *rc == 0 ? copy_bound(e, op, used, o) : 0;
        if (e->me == 0 && *rc == 0)
            print_row(json, e, o, op, used, count, &w, with_mpi ? &m : NULL, bound);
        if (bytes > SIZE_MAX / o->step)
            break;
    }
    return wrong;
}

static int run(weft_ctx *ctx, const bench_opts *o)
{
    weft_comm_opts co;
    weft_comm_opts_from_config(ctx->config, &co);
    bench_env e = {.me = ctx->rank, .n = ctx->size, .mpi = ctx->world};
    WEFT_CHECK(weft_comm_world(ctx, &co, &e.c));
    size_t cap = o->max_bytes + 64;
    e.send = malloc(cap);
    e.recv = malloc(cap);
    e.cnt = malloc((size_t)e.n * sizeof *e.cnt);
    e.dsp = malloc((size_t)e.n * sizeof *e.dsp);
    FILE *json = NULL;
    int rc = e.send && e.recv && e.cnt && e.dsp ? 0 : weft_error(WEFT_ENOMEM, "weft-bench: %zu bytes of buffers", 2 * cap);
    if (rc == 0 && ctx->rank == 0 && o->json) {
        json = strcmp(o->json, "-") == 0 ? stdout : fopen(o->json, "w");
        if (!json)
            rc = weft_error(WEFT_EIO, "weft-bench: cannot write %s", o->json);
    }
    MPI_Allreduce(MPI_IN_PLACE, &rc, 1, MPI_INT, MPI_MIN, ctx->world);
    int one_node = ctx->nnodes == 1;
    double copy_bw = rc == 0 && one_node ? copy_bandwidth(&e) : 0;
    if (rc == 0 && ctx->rank == 0)
        print_header(&e, o, copy_bw, one_node);
    long wrong = 0;
    for (int op = 0; op < NOPS && rc == 0; op++)
        if (o->ops[op])
            wrong += bench_op(&e, o, op, one_node, json, &rc);
    if (json && json != stdout)
        fclose(json);
    free(e.send);
    free(e.recv);
    free(e.cnt);
    free(e.dsp);
    weft_comm_free(e.c);
    if (rc == 0 && wrong)
        rc = weft_error(WEFT_EINTERNAL, "weft-bench: %ld wrong elements (see the #wrong columns)", wrong);
    return rc;
}

int main(int argc, char **argv)
{
    if (weft_cli_wants_help(argc, argv)) {
        usage(stdout);
        return WEFT_EXIT_OK;
    }
    weft_ctx *ctx;
    int rc = weft_init(&argc, argv, program_keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    bench_opts o;
    int st = parse_args(argc, argv, ctx->rank != 0, &o);
    if (st >= 0) {
        weft_finalize(ctx);
        return st;
    }
    rc = run(ctx, &o);
    if (rc && ctx->rank == 0)
        fprintf(stderr, "weft-bench: %s\n", weft_last_error());
    weft_finalize(ctx);
    return weft_exit_code(rc);
}
