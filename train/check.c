/*
 * check.c -- the whole configuration checked at start, before any rank
 * allocates a model or starts a thread (weft_trainer_check, trainer.h).
 *
 * Each key is checked alone when it is set (runtime/config.c: type and
 * range). What needs two keys or more -- min_lr against lr, the batch
 * against the mesh, the model's shape against TP and PP -- lives here, in
 * one table: the keys a rule involves and the function that checks them.
 * The layer is train/ because the rules read the keys of optim, parallel,
 * train and model at once.
 *
 * A rule runs only when the program declares every key it names (the MLP
 * example has no model.* keys), and a rule that needs the vocabulary runs
 * only when the caller knows it. Each message names every key involved,
 * its value, and what to change. Rules are checked in table order and the
 * first failure is returned: a later rule may assume an earlier one held
 * (the batch rule uses the mesh the layout rule accepted).
 *
 * optim.warmup > train.steps is not a rule here but a warning the trainer
 * logs once at start (train/report.c): shortening train.steps for a smoke
 * test of a real config is legitimate, and the schedule is still well
 * defined (the learning rate just never reaches optim.lr).
 */
#include "train/trainer.h"
#include "model/lm.h"
#include "runtime/error.h"

#include <string.h>

typedef struct {
    const char *keys[6]; /* declared keys the rule reads; NULL-terminated */
    int needs_vocab;     /* skipped when the vocabulary is not known (in->vocab == 0) */
    int (*check)(const weft_config *cfg, const weft_trainer_check_in *in);
} rule;

static int64_t ival(const weft_config *c, const char *k) { return weft_config_int(c, k); }

static int check_lr(const weft_config *c, const weft_trainer_check_in *in)
{
    double lr = weft_config_float(c, "optim.lr"), min_lr = weft_config_float(c, "optim.min_lr");
    (void)in;
    if (min_lr > lr)
        return weft_error(WEFT_ECONFIG, "optim.min_lr (%g, %s) is larger than optim.lr (%g, %s): the cosine "
                          "schedule would climb instead of decay; set optim.min_lr <= optim.lr (e.g. "
                          "--optim.min_lr=%g)", min_lr, weft_config_origin(c, "optim.min_lr"), lr,
                          weft_config_origin(c, "optim.lr"), lr / 10);
    return 0;
}

static int check_layout(const weft_config *c, const weft_trainer_check_in *in)
{
    weft_mesh_layout l;
    return weft_mesh_layout_from_config(c, in->world, &l);
}

static int check_batch(const weft_config *c, const weft_trainer_check_in *in)
{
    weft_mesh_layout l;
    WEFT_CHECK(weft_mesh_layout_from_config(c, in->world, &l));
    int64_t G = ival(c, "train.global_batch"), b = ival(c, "train.micro_batch"), D = l.size[WEFT_AXIS_DP];
    if (G % (b * D) != 0)
        return weft_error(WEFT_ECONFIG, "train.global_batch (%lld) is not divisible by train.micro_batch (%lld) x "
                          "data-parallel size (%lld) = %lld (parallel.dp = %lld on %d ranks with parallel.tp = %lld, "
                          "parallel.pp = %lld): make train.global_batch a multiple of %lld",
                          (long long)G, (long long)b, (long long)D, (long long)(b * D),
                          (long long)ival(c, "parallel.dp"), in->world, (long long)ival(c, "parallel.tp"),
                          (long long)ival(c, "parallel.pp"), (long long)(b * D));
    return 0;
}

static int check_context(const weft_config *c, const weft_trainer_check_in *in)
{
    int64_t T = ival(c, "train.seq_len"), ctx = ival(c, "model.context");
    (void)in;
    if (T > ctx)
        return weft_error(WEFT_ECONFIG, "train.seq_len (%lld) is longer than model.context (%lld): raise "
                          "model.context or lower train.seq_len", (long long)T, (long long)ctx);
    return 0;
}

/* The model family's own shape rules, then its shape against TP and PP
 * (model/lm.h: each family knows what tensor parallelism splits). */
static int check_model(const weft_config *c, const weft_trainer_check_in *in)
{
    weft_mesh_layout l;
    WEFT_CHECK(weft_mesh_layout_from_config(c, in->world, &l));
    return weft_lm_check(c, in->vocab, l.size[WEFT_AXIS_TP], l.size[WEFT_AXIS_PP]);
}

static int check_whole_model(const weft_config *c, const weft_trainer_check_in *in)
{
    int64_t tp = ival(c, "parallel.tp"), pp = ival(c, "parallel.pp");
    if (in->whole_model && (tp > 1 || pp > 1))
        return weft_error(WEFT_ECONFIG, "%s needs the whole model on rank 0, but parallel.tp = %lld and "
                          "parallel.pp = %lld split it: drop %s, or train with parallel.tp = parallel.pp = 1",
                          in->whole_model, (long long)tp, (long long)pp, in->whole_model);
    return 0;
}

static const rule rules[] = {
    {{"optim.lr", "optim.min_lr", NULL}, 0, check_lr},
    {{"parallel.dp", "parallel.tp", "parallel.pp", NULL}, 0, check_layout},
    {{"train.global_batch", "train.micro_batch", "parallel.dp", "parallel.tp", "parallel.pp", NULL}, 0, check_batch},
    {{"train.seq_len", "model.context", NULL}, 0, check_context},
    {{"model.family", "model.n_layer", "model.n_head", "model.n_embd", "parallel.tp", NULL}, 1, check_model},
    {{"parallel.tp", "parallel.pp", NULL}, 0, check_whole_model},
};

static int applies(const rule *r, const weft_config *cfg, const weft_trainer_check_in *in)
{
    if (r->needs_vocab && in->vocab <= 0)
        return 0;
    for (int i = 0; r->keys[i]; i++)
        if (!weft_config_has(cfg, r->keys[i]))
            return 0;
    return 1;
}

int weft_trainer_check(const weft_config *cfg, const weft_trainer_check_in *in)
{
    if (!cfg || !in || in->world < 1)
        return weft_error(WEFT_EINVAL, "weft_trainer_check needs a configuration and a world size >= 1");
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (applies(&rules[i], cfg, in))
            WEFT_CHECK(rules[i].check(cfg, in));
    return 0;
}
