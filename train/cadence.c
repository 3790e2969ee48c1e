/*
 * cadence.c -- the trainer's checkpoints (trainer.h): resuming at start
 * (--resume, --resume=auto, --init-from), saving after steps
 * (checkpoint.every, at the end, on a stop signal), and telling the
 * scheduler what is committed. The checkpoint itself is checkpoint/ckpt.h;
 * the model's tensors reach it through checkpoint/state.h.
 */
#include "train/trainer_int.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/rng.h"
#include "runtime/timer.h"

#include <stdlib.h>
#include <string.h>

/* Load path into the model (and unless weights_only, the optimizer, the
 * step and the training source's position; the data must be the data the
 * checkpoint was trained on). Logs what it resumed from. */
static int resume_from(weft_trainer *t, const char *path, int weights_only)
{
    weft_ckpt_loaded L;
    WEFT_CHECK(weft_ckpt_load(&t->cdesc.layout, &t->cdesc.state, path, weights_only ? WEFT_CKPT_WEIGHTS_ONLY : 0,
                              &L));
    int rc = 0;
    uint64_t have = t->train->ops->hash(t->train);
    if (!weights_only && L.meta.dataset_hash != have)
        rc = weft_error(WEFT_EDATA, "checkpoint %s was trained on dataset %016llx, but data.path gives %016llx: "
                        "resume with the same data, or start from its weights with --init-from", path,
                        (unsigned long long)L.meta.dataset_hash, (unsigned long long)have);
    if (rc == 0 && !weights_only && L.meta.loader_state)
        rc = t->train->ops->restore(t->train, L.meta.loader_state, L.meta.loader_len);
    if (rc == 0 && !weights_only) {
        weft_optim_set_t(t->opt, L.meta.optim_t);
        t->start_step = L.meta.step;
    }
    if (rc == 0 && t->rank == 0)
        WEFT_INFO("%s %s (step %lld, written by world=%d dp=%d tp=%d pp=%d zero=%d)",
                  weights_only ? "initialised weights from" : "resumed from", path, (long long)L.meta.step, L.world,
                  L.dp, L.tp, L.pp, L.zero);
    weft_ckpt_loaded_free(&L);
    return rc;
}

int weft_trainer_ckpt_setup(weft_trainer *t, const weft_trainer_start_opts *so)
{
    WEFT_CHECK(weft_ckpt_model_describe(t->model, t->dp, t->opt, t->world, t->mesh, t->o.zero, &t->cdesc));
    weft_ckpt_opts o;
    weft_ckpt_opts_from_config(t->cfg, &o);
    char path[4200];
    if (so->init_from || so->resume) {
        int rc = so->init_from ? 0 : weft_ckpt_find_latest(o.dir, path, sizeof path);
        if (rc == WEFT_ENOENT && so->resume == 2) {
            if (t->rank == 0)
                WEFT_INFO("--resume=auto: no checkpoint in %s, starting from step 0", o.dir);
        } else {
            WEFT_CHECK(rc);
            WEFT_CHECK(resume_from(t, so->init_from ? so->init_from : path, so->init_from != NULL));
        }
    }
    o.loader_len = t->train->ops->state_size(t->train);
    t->source_state = malloc(o.loader_len + 1);
    char *ini = weft_config_to_ini(t->cfg);
    int rc = t->source_state && ini ? weft_ckpt_new(&t->cdesc.layout, &t->cdesc.state, &o, ini, &t->ckpt)
                                    : weft_error(WEFT_ENOMEM, "out of memory");
    free(ini);
    return rc ? rc : weft_trainer_metrics_resume(t);
}

/* Save the state after s->step (0-based) now; wait: until committed. */
int weft_trainer_ckpt_save(weft_trainer *t, weft_step_stats *s, int wait)
{
    const weft_adamw_opts *ao = &t->o.adamw;
    size_t len = t->train->ops->state_size(t->train);
    WEFT_CHECK(t->train->ops->save(t->train, t->source_state, len));
    weft_ckpt_meta m = {.step = s->step + 1, .optim_t = weft_optim_t(t->opt), .lr = s->lr, .lr_peak = ao->lr,
                        .lr_min = ao->min_lr, .warmup = ao->warmup, .total_steps = ao->total_steps,
                        .dataset_hash = t->train->ops->hash(t->train),
                        .rng = weft_rng_mix(t->o.seed + (uint64_t)t->rank),
                        .loader_state = t->source_state, .loader_len = len};
    int64_t t0 = weft_now_ns();
    WEFT_CHECK(wait ? weft_ckpt_save_wait(t->ckpt, &m) : weft_ckpt_save(t->ckpt, &m, NULL));
    s->ckpt_ms = 1e-6 * (double)(weft_now_ns() - t0);
    return 0;
}

/* Tell the scheduler about a newly committed checkpoint. */
void weft_trainer_ckpt_report(weft_trainer *t)
{
    char path[4200];
    int64_t last = weft_ckpt_last(t->ckpt, path, sizeof path);
    if (last != t->reported_ckpt && last >= 0) {
        weft_sched_checkpoint(t->sched, last, path);
        t->reported_ckpt = last;
    }
}

/* After a step: save if one is due (checkpoint.every, the end). */
int weft_trainer_ckpt_step(weft_trainer *t, weft_step_stats *s)
{
    int64_t done = s->step + 1, every = t->o.ckpt_every;
    int last = done == t->o.steps && t->o.at_end;
    if (!last && every && done % every == 0)
        WEFT_CHECK(weft_trainer_ckpt_save(t, s, 0));
    if (last) { /* never skipped, and waited for; a failure obeys checkpoint.on_error */
        int rc = weft_trainer_ckpt_save(t, s, 1);
        if (rc && t->o.on_error_continue) {
            if (t->rank == 0)
                WEFT_WARN("the final checkpoint failed (checkpoint.on_error = continue): %s", weft_last_error());
            rc = 0;
        }
        WEFT_CHECK(rc);
    }
    weft_trainer_ckpt_report(t);
    return 0;
}
