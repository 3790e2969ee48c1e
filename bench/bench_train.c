/*
 * bench_train.c -- the CPU training benchmark: weft-train on
 * examples/configs/bench-cpu.ini (GPT-2, L 4, NH 4, C 256, T 256, V 8192,
 * micro-batch 8 on each of 2 data-parallel ranks, one BLAS thread each),
 * beside the single-core SGEMM rate of the same BLAS at the model's matrix
 * shapes, measured in the same run.
 *
 *   build/bench/bench_train [steps]     (BUILD=DIR: weft-train from DIR/bin)
 *
 * Prints tokens/s, achieved model FLOP/s per rank, its ratio to the SGEMM
 * rate (target >= 50%), and the fraction of gradient-reduction time hidden
 * behind backward, for GPT-2 and, beside it, a Llama of the same parameter
 * count on the same shape (LLAMA_ARGS). The synthetic dataset (uniform
 * random tokens) is made on first use with the dataset writer.
 */
#include "data/manifest.h"
#include "data/writer.h"
#include "kernels/kernels.h"
#include "runtime/error.h"
#include "runtime/rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DATA "build/bench-data/synthetic-v8192"
#define RUN "build/bench-data/run"
#define VOCAB 8192

static int make_dataset(void)
{
    struct stat st;
    if (stat(DATA "/manifest", &st) == 0)
        return 0;
    mkdir("build/bench-data", 0750);
    weft_dataset_writer_options o = {.dir = DATA, .token_width = 2, .vocab_size = VOCAB, .tokenizer_id = 0,
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

/* FLOP-weighted single-core SGEMM rate over the model's matmul shapes
 * (rows = micro-batch x T = 2048). */
static double sgemm_reference(void)
{
    const int shapes[][2] = {{256, 768}, {256, 256}, {256, 1024}, {1024, 256}, {256, VOCAB}};
    double flops = 0, secs = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        double f = 2.0 * 2048 * shapes[i][0] * shapes[i][1];
        double rate = weft_sgemm_rate(2048, shapes[i][1], shapes[i][0], 0.3);
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
    return p ? atof(p + strlen(pat)) : 0;
}

typedef struct {
    int n;
    double ms, tps, flops, hidden;
} run_stats;

/* weft-train on bench-cpu.ini plus args, for steps steps: the medians of
 * steps 3.. (the first steps warm caches and the allocator). */
static int measure(const char *args, int steps, run_stats *out)
{
    char cmd[1024];
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build"; /* the tree this benchmark was built in */
    snprintf(cmd, sizeof cmd, "mpirun -np 2 %s/bin/weft-train --config examples/configs/bench-cpu.ini "
                              "--run.overwrite=true --train.steps=%d %s > " RUN ".log 2>&1", build, steps, args);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_train: weft-train %s failed; see " RUN ".log\n", args);
        return 70;
    }
    FILE *f = fopen(RUN "/metrics.jsonl", "r");
    if (!f) {
        perror(RUN "/metrics.jsonl");
        return 66;
    }
    double tps[1024], fl[1024], hid[1024], ms[1024];
    int n = 0, row = 0;
    char line[2048];
    while (fgets(line, sizeof line, f) && n < 1024)
        if (row++ >= 2) {
            tps[n] = field(line, "tokens_per_s");
            fl[n] = field(line, "flops_per_s") / 2;
            hid[n] = field(line, "comm_hidden");
            ms[n++] = field(line, "ms_per_step");
        }
    fclose(f);
    *out = (run_stats){n, median(ms, n), median(tps, n), median(fl, n), median(hid, n)};
    return 0;
}

/* Llama at GPT-2's parameter count on the same shape: NKV 2 of 4 heads,
 * SwiGLU of 800 channels, tied head: 5.34 M parameters against 5.32 M. */
#define LLAMA_ARGS "--model.family=llama --model.n_kv_head=2 --model.ffn_dim=800 --model.tie_embeddings=true"

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 12;
    if (make_dataset()) {
        fprintf(stderr, "bench_train: making the synthetic dataset failed: %s\n", weft_last_error());
        return 74;
    }
    weft_kernels_init(1);
    double sgemm = sgemm_reference();
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 1);
    run_stats g, l;
    int rc = measure("", steps, &g);
    if (rc == 0)
        rc = measure(LLAMA_ARGS, steps, &l);
    if (rc)
        return rc;
    printf("bench_train: L4 NH4 C256 T256 V8192, micro-batch 8 x 2 data-parallel ranks, 1 BLAS thread each\n");
    printf("  steps measured            %d (median of steps 3..%d)\n", g.n, steps);
    printf("                            GPT-2 (5.32 M)   Llama (5.34 M: NKV 2, F 800, tied)\n");
    printf("  ms per step               %-16.1f %.1f\n", g.ms, l.ms);
    printf("  tokens/s (2 ranks)        %-16.0f %.0f\n", g.tps, l.tps);
    printf("  model FLOP/s per rank     %-16.2f %.2f G\n", g.flops / 1e9, l.flops / 1e9);
    printf("  ratio to SGEMM            %-16.0f %.0f %%   (target >= 50%%)\n", 100 * g.flops / sgemm,
           100 * l.flops / sgemm);
    printf("  reduction hidden          %-16.0f %.0f %%\n", 100 * g.hidden, 100 * l.hidden);
    printf("  SGEMM, 1 core, GPT-2's shapes %.2f G   (reference, measured now)\n", sgemm / 1e9);
    return 0;
}
