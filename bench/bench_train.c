/*
 * bench_train.c -- the CPU training benchmark: weft-train on
 * examples/configs/bench-cpu.ini (GPT-2, L 4, NH 4, C 256, T 256, V 8192,
 * micro-batch 8 on each of 2 data-parallel ranks, one compute thread each)
 * in f32 and in bf16 (train.precision), beside the GEMM rates of oneDNN
 * (the library weft's linear layers run on) with one thread, f32 and bf16
 * (bf16 x bf16 -> f32, what the bf16 linear layers run), at the model's
 * matrix shapes and at its peak (large squares), and OpenBLAS's SGEMM at
 * the model's shapes, all measured in the same run, before the training.
 *
 *   BUILD/bench/bench_train [steps]      (BUILD: the build tree it is in)
 *   BUILD/bench/bench_train [steps] zero (only the ZeRO comparison below)
 *
 * Prints, per family and precision, tokens/s (and bf16's over f32's:
 * issue 16's target >= 1.8x), achieved model FLOP/s per rank, its ratio to
 * oneDNN's rate of the same precision at the model's shapes (target for
 * f32: >= 70%) and at its peak, the run's MFU (against the peak
 * weft-train measured itself, in its precision), and the fraction of
 * gradient-reduction time hidden behind backward, for GPT-2 and, beside
 * it, a Llama of the same parameter count on the same shape (LLAMA_ARGS).
 * bf16 is left out, saying why, on a CPU without avx512_bf16/AMX. Then
 * ZeRO-3 (parallel.zero = 3, each layer's parameters gathered before use,
 * prefetch 1 and 0) beside ZeRO-1 on the same 2 ranks: ms per step, the
 * ratio to ZeRO-1 (issue 17's target: <= 1.15 with prefetch), the time a
 * step waited for gathers, the share of gather time hidden behind compute
 * (metrics.jsonl's gather_hidden) and, as its check, the wait saved against
 * prefetch 0 (which waits for every gather whole); and prefetch 1 again
 * without the models' progress points (WEFT_ZERO3_PROGRESS=0), where a
 * prefetched gather moves only at layer boundaries. The
 * synthetic dataset (uniform random tokens) is made on first use with the
 * dataset writer, under BUILD/bench-data/. Last, the same GPT-2 in PyTorch
 * (bench/torch_ddp.py: DDP over gloo, one thread per rank) when Debian's
 * python3-torch is installed. Run it from the repository's root.
 */
#include "data/manifest.h"
#include "data/writer.h"
#include "kernels/kernels.h"
#include "runtime/cli.h"
#include "runtime/error.h"
#include "runtime/rng.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define VOCAB 8192

static char build[1024], data[1100], run[1100]; /* the build tree; its dataset and run directory */

static int make_dataset(void)
{
    struct stat st;
    char path[1200];
    snprintf(path, sizeof path, "%s/manifest", data);
    if (stat(path, &st) == 0)
        return 0;
    snprintf(path, sizeof path, "%s/bench-data", build);
    mkdir(path, 0750);
    weft_dataset_writer_options o = {.dir = data, .token_width = 2, .vocab_size = VOCAB, .tokenizer_id = 0,
                                     .shard_tokens = 1 << 22};
    weft_dataset_writer *w;
    WEFT_CHECK(weft_dataset_writer_open(&o, &w));
    static uint32_t buf[1 << 16];
    weft_rng rng;
    weft_rng_seed(&rng, 42);
    for (int chunk = 0; chunk < 128; chunk++) { /* 8M tokens: every window seen once at most */
        for (size_t i = 0; i < sizeof buf / sizeof buf[0]; i++)
            buf[i] = (uint32_t)(weft_rng_u64(&rng) % VOCAB);
        int rc = weft_dataset_writer_append(w, WEFT_SPLIT_TRAIN, buf, sizeof buf / sizeof buf[0]);
        if (rc) {
            weft_dataset_writer_free(w);
            return rc;
        }
    }
    int rc = weft_dataset_writer_commit(w, NULL);
    weft_dataset_writer_free(w);
    return rc;
}

/* FLOP-weighted rate over the model's linear layers, out (2048, OC) =
 * inp (2048, C) @ weight (OC, C)^T (rows = micro-batch x T = 2048): qkv,
 * attention projection, MLP up and down, LM head. lib: OPENBLAS
 * (single-core SGEMM), DNNL_F32 or DNNL_BF16 (oneDNN with the threads
 * weft_kernels_init set; bf16 inputs, f32 output). */
enum { OPENBLAS, DNNL_F32, DNNL_BF16 };
static double model_shapes_rate(int lib)
{
    const int shapes[][2] = {{256, 768}, {256, 256}, {256, 1024}, {1024, 256}, {256, VOCAB}};
    double flops = 0, secs = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        double f = 2.0 * 2048 * shapes[i][0] * shapes[i][1];
        double rate = lib == OPENBLAS ? weft_sgemm_rate(2048, shapes[i][1], shapes[i][0], 0.3)
                      : weft_matmul_rate_as(lib == DNNL_BF16 ? WEFT_BF16 : WEFT_F32, 2048, shapes[i][1],
                                            shapes[i][0], 0.3);
        flops += f;
        secs += f / rate;
    }
    return flops / secs;
}

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double x = v[j]; v[j] = v[j - 1]; v[j - 1] = x;
        }
    return n ? v[n / 2] : 0;
}

/* Pull one numeric field out of a metrics line. */
static double field(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p) { /* torch_ddp.py's key=value */
        snprintf(pat, sizeof pat, " %s=", key);
        p = strstr(line, pat);
    }
    return p ? atof(p + strlen(pat)) : 0;
}

typedef struct {
    int n;
    double ms, tps, flops, mfu, hidden, gwait, ghidden;
} run_stats;

/* weft-train on bench-cpu.ini plus args for steps steps: the medians of
 * steps 3.. (the first steps warm caches and the allocator). */
static int measure(const char *args, int steps, run_stats *out)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "mpirun -np 2 %s/bin/weft-train --config examples/configs/bench-cpu.ini --run.overwrite=true "
             "--data.path=%s --run.dir=%s --train.steps=%d %s > %s.log 2>&1", build, data, run, steps, args, run);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_train: weft-train %s failed; see %s.log\n", args, run);
        return 70;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run);
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return 66;
    }
    double tps[1024], fl[1024], hid[1024], ms[1024], mfu[1024], gw[1024], gh[1024];
    int n = 0, row = 0;
    char line[2048];
    while (fgets(line, sizeof line, f) && n < 1024)
        if (row++ >= 2) {
            tps[n] = field(line, "tokens_per_s");
            fl[n] = field(line, "flops_per_s") / 2;
            hid[n] = field(line, "comm_hidden");
            mfu[n] = field(line, "mfu");
            gw[n] = field(line, "gather_wait_ms");
            gh[n] = field(line, "gather_hidden");
            ms[n++] = field(line, "ms_per_step");
        }
    fclose(f);
    *out = (run_stats){n,           median(ms, n),  median(tps, n), median(fl, n),
                       median(mfu, n), median(hid, n), median(gw, n),  median(gh, n)};
    return 0;
}

/* The PyTorch reference (bench/torch_ddp.py: the same GPT-2, batch and
 * optimizer under DDP/gloo, one thread per rank): 0 with its figures, 69
 * when python3-torch is not installed. */
static int torch_reference(int steps, double *tps, double *flops, char *version, size_t len)
{
    char cmd[256], line[512] = "";
    /* Debian's interpreter first: python3-torch is installed for it, not for
     * whatever python3 comes first on PATH (a pyenv, a venv) */
    snprintf(cmd, sizeof cmd, "%s bench/torch_ddp.py %d 2>/dev/null",
             access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3", steps);
    FILE *p = popen(cmd, "r");
    if (!p)
        return 70;
    while (fgets(line, sizeof line, p) && strncmp(line, "torch_ddp ", 10) != 0)
        ;
    int st = pclose(p), rc = WIFEXITED(st) ? WEXITSTATUS(st) : 70;
    const char *v = strstr(line, "torch=");
    if (rc || !v)
        return rc ? rc : 70;
    *tps = field(line, "tokens_per_s");
    *flops = field(line, "flops_per_s_per_rank");
    snprintf(version, len, "%.*s", (int)strcspn(v + 6, " \n"), v + 6);
    return 0;
}

/* Llama at GPT-2's parameter count on the same shape: NKV 2 of 4 heads,
 * SwiGLU of 800 channels, tied head: 5.34 M parameters against 5.32 M. */
#define LLAMA_ARGS "--model.family=llama --model.n_kv_head=2 --model.ffn_dim=800 --model.tie_embeddings=true"

/* ZeRO-3 against ZeRO-1 on the same model and ranks. */
static int zero_compare(int steps)
{
    run_stats z1, z3, z3n, z3q;
    int rc = measure("--parallel.zero=1", steps, &z1);
    rc = rc ? rc : measure("--parallel.zero=3 --parallel.zero_prefetch=1", steps, &z3);
    rc = rc ? rc : measure("--parallel.zero=3 --parallel.zero_prefetch=0", steps, &z3n);
    /* the same as prefetch 1 without the models' progress points (model.h:
     * weft_model_progress), so the gathers move only at layer boundaries */
    setenv("WEFT_ZERO3_PROGRESS", "0", 1);
    rc = rc ? rc : measure("--parallel.zero=3 --parallel.zero_prefetch=1", steps, &z3q);
    unsetenv("WEFT_ZERO3_PROGRESS");
    if (rc)
        return rc;
    printf("bench_train zero: GPT-2 L4 NH4 C256 T256 V8192, micro-batch 8 x 2 data-parallel ranks (median of steps "
           "3..%d)\n", steps);
    printf("                                        ZeRO-1     ZeRO-3 prefetch 1   ZeRO-3 prefetch 0   "
           "prefetch 1, no progress points\n");
    printf("  ms per step                           %-10.1f %-19.1f %-19.1f %.1f\n", z1.ms, z3.ms, z3n.ms, z3q.ms);
    printf("  step time / ZeRO-1                    %-10.2f %-19.2f %-19.2f %.2f   (target <= 1.15 with prefetch)\n",
           1.0, z3.ms / z1.ms, z3n.ms / z1.ms, z3q.ms / z1.ms);
    printf("  waited for parameter gathers, ms      %-10s %-19.2f %-19.2f %.2f\n", "-", z3.gwait, z3n.gwait,
           z3q.gwait);
    printf("  gather time hidden (gather_hidden)    %-10s %-19.0f %-19.0f %.0f   %%\n", "-", 100 * z3.ghidden,
           100 * z3n.ghidden, 100 * z3q.ghidden);
    /* gather_hidden counts a gather's life from launch to done; whether it
     * moved meanwhile depends on the backend. Prefetch 0 waits for every
     * gather whole, so 1 - wait / wait(prefetch 0) is what prefetching saved. */
    printf("  gather wait saved vs prefetch 0       %-10s %-19.0f %-19s %.0f   %%\n", "-",
           z3n.gwait > 0 ? 100 * (1 - z3.gwait / z3n.gwait) : 0.0, "-",
           z3n.gwait > 0 ? 100 * (1 - z3q.gwait / z3n.gwait) : 0.0);
    return 0;
}

static const char usage[] =
    "usage: BUILD/bench/bench_train [STEPS] [zero]\n"
    "weft-train on examples/configs/bench-cpu.ini (2 ranks, GPT-2 and Llama, f32 and bf16) beside oneDNN's\n"
    "GEMM rates at the model's shapes and at peak, OpenBLAS's, and PyTorch DDP when python3-torch is\n"
    "installed; STEPS timed steps per run (default 12). With `zero`: only ZeRO-3 beside ZeRO-1.\n"
    "bench/README.md explains the rows.\n";

int main(int argc, char **argv)
{
    if (weft_cli_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    weft_cli cli;
    if (weft_cli_operands_only(&cli, "bench_train", argc, argv, 0, 0, 2, "[STEPS] [zero]"))
        return WEFT_EXIT_USAGE;
    int steps = cli.nops > 0 ? atoi(cli.ops[0]) : 12, zero = cli.nops > 1 && strcmp(cli.ops[1], "zero") == 0;
    if (steps < 1 || (cli.nops > 1 && !zero))
        return weft_cli_error(&cli, "expected [STEPS] [zero]: STEPS a positive number of steps, then the word zero");
    char self[1024];
    snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(build, sizeof build, "%s", dirname(dirname(self))); /* BUILD/bench/bench_train -> BUILD */
    snprintf(data, sizeof data, "%s/bench-data/synthetic-v8192", build);
    snprintf(run, sizeof run, "%s/bench-data/run", build);
    if (make_dataset()) {
        fprintf(stderr, "bench_train: making the synthetic dataset failed: %s\n", weft_last_error());
        return 74;
    }
    weft_kernels_init(1);
    char why[256];
    int bf16 = weft_matmul_bf16_supported(why, sizeof why);
    double dnnl = model_shapes_rate(DNNL_F32), sgemm = model_shapes_rate(OPENBLAS), peak = weft_matmul_peak(1.0);
    double dnnl16 = bf16 ? model_shapes_rate(DNNL_BF16) : 0, peak16 = bf16 ? weft_matmul_peak_as(WEFT_BF16, 1.0) : 0;
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 1);
    if (zero)
        return zero_compare(steps);
    /* GPT-2 f32, GPT-2 bf16, Llama f32, Llama bf16 */
    static const char *const args[4] = {"", "--train.precision=bf16", LLAMA_ARGS, LLAMA_ARGS " --train.precision=bf16"};
    run_stats r[4] = {{0}};
    for (int i = 0; i < 4; i++) {
        if (!bf16 && i % 2)
            continue;
        int rc = measure(args[i], steps, &r[i]);
        if (rc)
            return rc;
    }
    const double ref[4] = {dnnl, dnnl16, dnnl, dnnl16}, pk[4] = {peak, peak16, peak, peak16};
    printf("bench_train: L4 NH4 C256 T256 V8192, micro-batch 8 x 2 data-parallel ranks, 1 thread each\n");
    printf("  steps measured                          %d (median of steps 3..%d)\n", r[0].n, steps);
    if (!bf16)
        printf("  bf16 not run: %s\n", why);
    printf("                                          GPT-2 (5.32 M)      Llama (5.34 M: NKV 2, F 800, tied)\n");
    printf("                                          f32       bf16      f32       bf16\n");
#define ROW(name, expr, fmt)                                     \
    do {                                                         \
        printf("  %-40s", name);                                 \
        for (int i = 0; i < 4; i++) {                            \
            const run_stats *x = &r[i];                          \
            (void)x;                                             \
            if (x->n)                                            \
                printf(fmt, (expr));                             \
            else                                                 \
                printf("%-10s", "-");                            \
        }                                                        \
        printf("\n");                                            \
    } while (0)
    ROW("ms per step", x->ms, "%-10.1f");
    ROW("tokens/s (2 ranks)", x->tps, "%-10.0f");
    ROW("tokens/s over the family's f32", x->tps / r[i & 2].tps, "%-10.2f");
    ROW("model GFLOP/s per rank", x->flops / 1e9, "%-10.2f");
    ROW("% of oneDNN, GPT-2's shapes, same prec", 100 * x->flops / ref[i], "%-10.0f");
    ROW("% of oneDNN peak, same precision", 100 * x->flops / pk[i], "%-10.0f");
    ROW("MFU weft-train reported (median) %", 100 * x->mfu, "%-10.1f");
    ROW("reduction hidden behind backward %", 100 * x->hidden, "%-10.0f");
#undef ROW
    printf("  (f32 target: >= 70%% of oneDNN at the model's shapes; bf16 target: >= 1.8x the f32 tokens/s)\n");
    printf("  oneDNN f32 GEMM, 1 thread, GPT-2's shapes  %.2f G   (measured now)\n", dnnl / 1e9);
    printf("  oneDNN f32 GEMM, 1 thread, peak            %.2f G   (best of 1024 and 1536 squares, measured now)\n",
           peak / 1e9);
    if (bf16) {
        printf("  oneDNN bf16 GEMM, 1 thread, GPT-2's shapes %.2f G   (bf16 x bf16 -> f32, measured now)\n",
               dnnl16 / 1e9);
        printf("  oneDNN bf16 GEMM, 1 thread, peak           %.2f G   (best of 1024 and 1536 squares, measured now)\n",
               peak16 / 1e9);
    }
    printf("  OpenBLAS SGEMM, 1 core, GPT-2's shapes     %.2f G   (measured now)\n", sgemm / 1e9);
    double ttps, tfl;
    char tv[64];
    int trc = torch_reference(steps, &ttps, &tfl, tv, sizeof tv);
    if (trc == 0)
        printf("  PyTorch %s DDP (gloo), GPT-2 f32         %.0f tokens/s, %.2f G model FLOP/s per rank: weft is %.2fx "
               "(measured now)\n", tv, ttps, tfl / 1e9, r[0].tps / ttps);
    else
        printf("  PyTorch DDP reference                 %s\n", trc == 69 ? "not run: python3-torch is not installed "
               "(apt-get install python3-torch)" : "failed (run python3 bench/torch_ddp.py to see why)");
    return zero_compare(steps);
}
