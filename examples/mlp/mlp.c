/*
 * mlp.c -- training a model of your own with weft: a two-layer MLP learning
 * a synthetic regression task, on weft's library trainer.
 *
 *   mpirun -np 2 build/examples/mlp [--config FILE] [--train.steps=N] [--run.dir=DIR] [--resume]
 *
 * What a researcher writes when the model is not GPT (docs/training.md,
 * "A model of your own"): the model's parameters as a table of weft_tensors
 * in one flat buffer (weft_model_add_param), forward and backward of one
 * micro-batch (weft's kernels or your own loops), and a source of batches.
 * The trainer (train/trainer.h) does the rest: data parallelism with
 * gradient buckets and ZeRO, AdamW with the warm-up + cosine schedule and
 * clipping, checkpoints with --resume, stop signals (SIGUSR1/SIGTERM: it
 * checkpoints and exits 138 to be requeued), metrics.jsonl and status.json.
 * The target is y = sin(3 x0) + x1 * x2, so the answer is known and the loss
 * must fall well below the best linear fit's 0.276.
 */
#include "kernels/kernels.h"
#include "model/model.h"
#include "runtime/cli.h"
#include "runtime/rng.h"
#include "weft.h"
#include "train/trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { IN = 3, HID = 64 }; /* inputs, hidden units */

/* --- the model -------------------------------------------------------------- */

typedef struct {
    float *h, *a, *out;  /* (B, HID), (B, HID), (B): one micro-batch's activations */
    const float *xy;     /* (B, IN + 1) its samples: x then y */
} mlp_slot;

typedef struct {
    weft_model base;     /* first: the model interface */
    int B, nslots;
    mlp_slot *slot;
    float *dh, *x, *dout; /* (B, HID), (B, IN), (B): scratch */
} mlp;

static float *param(mlp *m, int i) { return m->base.param_data + m->base.params[i].offset; }
static float *grad(mlp *m, int i) { return m->base.grad_data + m->base.params[i].offset; }

/* Micro-batch mb of the batch: B samples of (x0, x1, x2, y). */
static int mlp_forward(weft_model *mm, int slot, const void *batch, int mb, double *loss)
{
    mlp *m = (mlp *)mm;
    mlp_slot *s = &m->slot[slot];
    int B = m->B;
    s->xy = (const float *)batch + (size_t)mb * B * (IN + 1);
    float *x = m->x;
    for (int i = 0; i < B; i++)
        memcpy(x + i * IN, s->xy + i * (IN + 1), IN * sizeof(float));
    weft_matmul_forward(s->h, x, param(m, 0), param(m, 1), B, IN, HID);  /* h (B, HID) */
    for (int i = 0; i < B * HID; i++)
        s->a[i] = tanhf(s->h[i]);                                          /* a = tanh(h) */
    weft_matmul_forward(s->out, s->a, param(m, 2), param(m, 3), B, HID, 1); /* out (B, 1) */
    double sum = 0;
    for (int i = 0; i < B; i++) {
        double d = s->out[i] - s->xy[i * (IN + 1) + IN];
        sum += d * d;
    }
    *loss = sum / B;                                                       /* mean squared error */
    return 0;
}

static int mlp_backward(weft_model *mm, int slot, double loss_scale, weft_grad_hook hook, void *arg)
{
    mlp *m = (mlp *)mm;
    mlp_slot *s = &m->slot[slot];
    int B = m->B;
    float *x = m->x, *dout = m->dout;
    for (int i = 0; i < B; i++) {
        memcpy(x + i * IN, s->xy + i * (IN + 1), IN * sizeof(float));
        dout[i] = (float)(loss_scale * 2 * (s->out[i] - s->xy[i * (IN + 1) + IN]) / B);
    }
    memset(m->dh, 0, (size_t)B * HID * sizeof(float));
    weft_matmul_backward(m->dh, grad(m, 2), grad(m, 3), dout, s->a, param(m, 2), B, HID, 1);
    for (int i = 0; i < B * HID; i++)
        m->dh[i] *= 1 - s->a[i] * s->a[i];                                /* through tanh */
    weft_matmul_backward(NULL, grad(m, 0), grad(m, 1), m->dh, x, param(m, 0), B, IN, HID);
    if (hook)
        hook(arg, 0);                                                      /* every gradient is final */
    return 0;
}

static void mlp_free(weft_model *mm)
{
    mlp *m = (mlp *)mm;
    for (int i = 0; m->slot && i < m->nslots; i++)
        free(m->slot[i].h);
    free(m->slot);
    free(m->dh);
    free(m->x);
    free(m->dout);
    weft_model_release(&m->base);
    free(m);
}

/* One stage only: no stage buffers, so parallel.pp > 1 is refused. */
static const weft_model_ops mlp_ops = {.family = "mlp", .forward = mlp_forward, .backward = mlp_backward,
                                       .free = mlp_free};

static int mlp_new(const weft_model_part *part, uint64_t seed, weft_model **out)
{
    if (part->tp_size != 1 || part->pp_size != 1)
        return weft_error(WEFT_ECONFIG, "examples/mlp is data parallel only: set parallel.tp = parallel.pp = 1");
    mlp *m = calloc(1, sizeof *m);
    if (!m)
        return weft_error(WEFT_ENOMEM, "out of memory");
    m->base.ops = &mlp_ops;
    *out = &m->base;
    unsigned mat = WEFT_TENSOR_TRAINABLE | WEFT_TENSOR_DECAY, vec = WEFT_TENSOR_TRAINABLE;
    WEFT_CHECK(weft_model_add_param(&m->base, 4, "fc1.weight", weft_shard_whole(HID, IN), mat));
    WEFT_CHECK(weft_model_add_param(&m->base, 4, "fc1.bias", weft_shard_whole(HID, 0), vec));
    WEFT_CHECK(weft_model_add_param(&m->base, 4, "fc2.weight", weft_shard_whole(1, HID), mat));
    WEFT_CHECK(weft_model_add_param(&m->base, 4, "fc2.bias", weft_shard_whole(1, 0), vec));
    WEFT_CHECK(weft_model_alloc(&m->base));
    m->B = part->micro_batch;
    m->nslots = part->nslots;
    m->slot = calloc((size_t)m->nslots, sizeof *m->slot);
    m->dh = malloc((size_t)m->B * HID * sizeof(float));
    m->x = malloc((size_t)m->B * IN * sizeof(float));
    m->dout = malloc((size_t)m->B * sizeof(float));
    for (int i = 0; m->slot && i < m->nslots; i++) {
        float *mem = malloc(((size_t)2 * m->B * HID + m->B) * sizeof(float));
        m->slot[i] = (mlp_slot){mem, mem ? mem + m->B * HID : NULL, mem ? mem + 2 * m->B * HID : NULL, NULL};
        if (!mem)
            m->slot = NULL; /* reported below; mlp_free frees what was allocated */
    }
    if (!m->slot || !m->dh || !m->x || !m->dout)
        return weft_error(WEFT_ENOMEM, "out of memory");
    m->base.global_params = m->base.n;
    m->base.tokens_per_sample = 1;
    m->base.flops_per_token = 6.0 * (double)m->base.n;
    m->base.largest_matmul[0] = HID;
    m->base.largest_matmul[1] = IN;
    snprintf(m->base.summary, sizeof m->base.summary, "MLP %d -> %d -> 1 (tanh): %zu parameters", IN, HID,
             m->base.n);
    weft_rng init; /* the same on every rank */
    weft_rng_seed(&init, seed);
    for (size_t i = 0; i < m->base.n; i++)
        m->base.param_data[i] = (float)(weft_rng_normal(&init) * (i < HID * IN ? 1.0 : 0.2));
    return 0;
}

/* --- the data: a batch source ------------------------------------------------ */

/* Batch n of data-parallel rank r is drawn from a generator seeded by (seed,
 * n, r), so the position is just n: a resumed run draws what the
 * uninterrupted one would have. */
typedef struct {
    weft_source base;
    uint64_t seed, pos;
    int dp_rank;
    size_t samples;      /* per rank per step: micro-batches x micro_batch */
    float *xy;
} mlp_source;

static int src_next(weft_source *ss, const void **batch)
{
    mlp_source *s = (mlp_source *)ss;
    weft_rng rng;
    weft_rng_seed(&rng, weft_rng_mix(s->seed ^ weft_rng_mix(s->pos * 65536 + (uint64_t)s->dp_rank)));
    for (size_t i = 0; i < s->samples; i++) {
        float *xy = s->xy + i * (IN + 1);
        for (int j = 0; j < IN; j++)
            xy[j] = (float)(2 * weft_rng_uniform(&rng) - 1);
        xy[IN] = sinf(3 * xy[0]) + xy[1] * xy[2];
    }
    s->pos++;
    *batch = s->xy;
    return 0;
}

static int src_seek(weft_source *s, uint64_t b) { ((mlp_source *)s)->pos = b; return 0; }
static size_t src_state_size(const weft_source *s) { (void)s; return 8; }
static int src_save(const weft_source *s, uint8_t *buf, size_t len)
{
    (void)len;
    memcpy(buf, &((const mlp_source *)s)->pos, 8);
    return 0;
}
static int src_restore(weft_source *s, const uint8_t *buf, size_t len)
{
    if (len != 8)
        return weft_error(WEFT_EDATA, "examples/mlp: a data position of %zu bytes, not 8", len);
    memcpy(&((mlp_source *)s)->pos, buf, 8);
    return 0;
}
static uint64_t src_hash(const weft_source *s) { return weft_rng_mix(((const mlp_source *)s)->seed ^ 0x6d6c70); }
static int64_t src_wait(const weft_source *s) { (void)s; return 0; }
static void src_close(weft_source *s)
{
    free(((mlp_source *)s)->xy);
    free(s);
}

static const weft_source_ops src_ops = {.next = src_next, .seek = src_seek, .state_size = src_state_size,
                                        .save = src_save, .restore = src_restore, .hash = src_hash,
                                        .last_wait_ns = src_wait, .close = src_close};

static int source_new(weft_trainer *t, const weft_config *cfg, weft_source **out)
{
    mlp_source *s = calloc(1, sizeof *s);
    if (!s)
        return weft_error(WEFT_ENOMEM, "out of memory");
    const weft_mesh *mesh = weft_trainer_mesh(t);
    s->base.ops = &src_ops;
    s->seed = (uint64_t)weft_config_int(cfg, "train.seed");
    s->dp_rank = weft_mesh_rank(mesh, WEFT_AXIS_DP);
    s->samples = (size_t)(weft_config_int(cfg, "train.global_batch") / weft_mesh_size(mesh, WEFT_AXIS_DP));
    s->xy = malloc(s->samples * (IN + 1) * sizeof(float));
    *out = &s->base;
    return s->xy ? 0 : weft_error(WEFT_ENOMEM, "out of memory");
}

/* --- the program ---------------------------------------------------------------- */

static const weft_config_key *const keys[] = {WEFT_TRAINER_CONFIG_KEYS, NULL};

/* The example's own defaults, where the command line and --config left the
 * trainer's: 64 samples per rank per step, 400 steps, a quick schedule. */
static int example_defaults(weft_config *cfg)
{
    static const char *const defaults[][2] = {
        {"train.steps", "400"},      {"train.micro_batch", "64"}, {"train.global_batch", "128"},
        {"train.seed", "7"},         {"train.log_interval", "50"}, {"train.eval_batches", "0"},
        {"optim.lr", "1e-2"},        {"optim.min_lr", "1e-3"},     {"optim.warmup", "20"},
        {"optim.beta2", "0.999"},    {"optim.weight_decay", "0"}, {"optim.grad_clip", "0"},
        {"run.dir", "weft-run/mlp"}, {"checkpoint.every", "100"},
    };
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        if (strcmp(weft_config_origin(cfg, defaults[i][0]), "default") == 0)
            WEFT_CHECK(weft_config_set(cfg, defaults[i][0], defaults[i][1], "examples/mlp"));
    return 0;
}

static int train(weft_ctx *ctx, weft_trainer **tp, int resume)
{
    WEFT_CHECK(example_defaults(ctx->config));
    WEFT_CHECK(weft_trainer_new(ctx, tp));
    weft_source *src = NULL;
    WEFT_CHECK(source_new(*tp, ctx->config, &src));
    weft_trainer_set_source(*tp, src, NULL);
    weft_model_part part;
    weft_trainer_part(*tp, &part);
    weft_model *m = NULL;
    int rc = mlp_new(&part, (uint64_t)weft_config_int(ctx->config, "train.seed"), &m);
    if (rc) {
        weft_model_free(m);
        return rc;
    }
    WEFT_CHECK(weft_trainer_set_model(*tp, m)); /* the trainer owns it from here */
    weft_trainer_start_opts so = {.resume = resume};
    WEFT_CHECK(weft_trainer_start(*tp, &so));
    weft_step_stats last;
    WEFT_CHECK(weft_trainer_run(*tp, &last));
    if (ctx->rank == 0 && last.step == weft_config_int(ctx->config, "train.steps") - 1)
        printf("final loss %.5f on %d ranks (the best linear fit: 0.276)\n", last.loss, ctx->size);
    return 0;
}

/* --resume[=auto], the getopt_long way (runtime/cli.h); the configuration
 * arguments are weft_init's. 0, or WEFT_EXIT_USAGE with the message printed. */
static int parse_args(int argc, char **argv, int rank, int *resume)
{
    static const struct option opts[] = {{"resume", optional_argument, NULL, 256}, {NULL, 0, NULL, 0}};
    weft_cli c;
    weft_cli_init(&c, "mlp", argc, argv, opts, rank ? WEFT_CLI_QUIET : 0);
    for (int o; (o = weft_cli_next(&c)) != WEFT_CLI_END;) {
        if (o != 256)
            return WEFT_EXIT_USAGE;
        if (c.arg && strcmp(c.arg, "auto") != 0)
            return weft_cli_bad_value(&c, "'auto' (--resume=auto), or no value");
        *resume = c.arg ? 2 : 1;
    }
    return weft_cli_operands(&c, 0, 0, "no operands") ? WEFT_EXIT_USAGE : 0;
}

int main(int argc, char **argv)
{
    if (weft_cli_wants_help(argc, argv)) {
        printf("usage: mlp [--config FILE] [--section.key=value ...] [--resume | --resume=auto]\n\n"
               "Trains a two-layer MLP on y = sin(3 x0) + x1 x2 with weft's library trainer.\n\n");
        weft_config_help(keys, stdout);
        return 0;
    }
    weft_ctx *ctx;
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    int resume = 0;
    if (parse_args(argc, argv, ctx->rank, &resume) != 0) {
        weft_finalize(ctx);
        return WEFT_EXIT_USAGE;
    }
    weft_trainer *t = NULL;
    rc = train(ctx, &t, resume);
    int status = weft_trainer_close(t, rc);
    weft_finalize(ctx);
    return status;
}
