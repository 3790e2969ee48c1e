/*
 * cadence.c -- the trainer's checkpoints (trainer.h): resuming at start
 * (--resume, --resume=auto, --init-from; weights alone for weft-eval:
 * weft_trainer_load_weights), saving after steps
 * (checkpoint.every, at the end, on a stop signal), and telling the
 * scheduler what is committed. With checkpoint.trusted_keys a checkpoint
 * is loaded only once its signature holds; what was loaded is the parent in
 * this run's provenance (provenance.c). The checkpoint itself is checkpoint/ckpt.h;
 * the model's tensors reach it through checkpoint/state.h.
 */
#include "train/trainer_int.h"
#include "checkpoint/agree.h"
#include "checkpoint/commit.h"
#include "checkpoint/owner.h"
#include "runtime/error.h"
#include "runtime/fault.h"
#include "runtime/log.h"
#include "runtime/rng.h"
#include "runtime/timer.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The flags of a load from a checkpoint file: f, and every replica
 * reading all it holds when checkpoint.load_share is off. */
static unsigned load_flags(const weft_trainer *t, unsigned f)
{
    return weft_config_bool(t->cfg, "checkpoint.load_share") ? f : f | WEFT_CKPT_EVERY_REPLICA;
}

/* --- frozen tensors ----------------------------------------------------------
 * A model with a frozen table (LoRA's base weights) trains only its
 * parameters; the frozen tensors come from a checkpoint of their own: the
 * --init-from checkpoint, whose absolute path and weft_ckpt_params_hash
 * every checkpoint of the run records (base_checkpoint, base_hash), and
 * which a resume loads again after checking the hash. */

/* Load the frozen tensors from the checkpoint at path. want: the hash the
 * resumed checkpoint recorded (0: none to check, --init-from); by: that
 * checkpoint, for messages. */
static int load_base(weft_trainer *t, const char *path, uint64_t want, const char *by)
{
    int64_t got[2] = {0, 0}; /* rc, hash: rank 0 reads, every rank learns */
    uint64_t h = 0;
    if (t->rank == 0 && (got[0] = weft_ckpt_params_hash(path, &h)) == 0)
        memcpy(&got[1], &h, sizeof h);
    WEFT_CHECK(weft_comm_broadcast(t->world, got, got, 2, WEFT_I64, 0));
    memcpy(&h, &got[1], sizeof h);
    if (got[0] && by)
        return weft_error((int)got[0], "the base checkpoint %s that %s was trained from: %s", path, by,
                          t->rank == 0 ? weft_last_error() : "unreadable (see rank 0)");
    if (got[0])
        return t->rank == 0 ? (int)got[0] : weft_error((int)got[0], "%s: unreadable (see rank 0)", path);
    if (want && h != want)
        return weft_error(WEFT_EDATA, "the base checkpoint %s has weights hash %016llx, but %s was trained on a "
                          "base of hash %016llx: the file changed since; put that base back at %s",
                          path, (unsigned long long)h, by, (unsigned long long)want, path);
    const weft_model *m = t->model;
    weft_ckpt_state fs = {.params = m->frozen_data, .n = m->frozen_n, .tensors = m->frozen, .ntensors = m->nfrozen,
                          .dev = weft_ckpt_model_device(m)};
    weft_ckpt_loaded L;
    WEFT_CHECK(weft_ckpt_load(&t->cdesc.layout, &fs, path, load_flags(t, WEFT_CKPT_WEIGHTS_ONLY), &L));
    weft_ckpt_loaded_free(&L);
    char abs[PATH_MAX];
    free(t->base_path);
    t->base_path = strdup(realpath(path, abs) ? abs : path);
    t->base_hash = h;
    if (!t->base_path)
        return weft_error(WEFT_ENOMEM, "out of memory");
    if (t->rank == 0)
        WEFT_INFO("frozen weights (%d tensors) from %s (weights hash %016llx)", m->nfrozen, t->base_path,
                  (unsigned long long)h);
    return 0;
}

/* A resumed checkpoint of a model with frozen tensors: the base it names. */
static int resume_base(weft_trainer *t, const char *path, const weft_ckpt_meta *meta)
{
    if (!meta->base_path)
        return weft_error(WEFT_EDATA, "checkpoint %s names no base checkpoint (attribute base_checkpoint), but "
                          "the model has %d frozen tensors (%s): it was not written by such a run; start from "
                          "the base with --init-from instead", path, t->model->nfrozen,
                          t->model->adapter ? t->model->adapter : "frozen");
    return load_base(t, meta->base_path, meta->base_hash, path);
}

/* The loaded checkpoint L of path into the trainer (unless weights_only,
 * the optimizer, the step and the training source's position; the data
 * must be the data the checkpoint was trained on). Logs what it resumed
 * from. */
static int apply_loaded(weft_trainer *t, const char *path, weft_ckpt_loaded *L, int weights_only)
{
    int rc = 0;
    uint64_t have = weights_only ? 0 : t->train->ops->hash(t->train);
    if (!weights_only && L->meta.dataset_hash != have)
        rc = weft_error(WEFT_EDATA, "checkpoint %s was trained on dataset %016llx, but data.path gives %016llx: "
                        "resume with the same data, or start from its weights with --init-from", path,
                        (unsigned long long)L->meta.dataset_hash, (unsigned long long)have);
    if (rc == 0 && !weights_only && L->meta.loader_state)
        rc = t->train->ops->restore(t->train, L->meta.loader_state, L->meta.loader_len);
    if (rc == 0) /* ZeRO-3: the load wrote whole tensors; keep only the shard */
        rc = weft_dp_release_params(t->dp);
    if (rc == 0 && !weights_only && t->model->nfrozen)
        rc = resume_base(t, path, &L->meta);
    if (rc == 0 && !weights_only) {
        weft_optim_set_t(t->opt, L->meta.optim_t);
        t->start_step = L->meta.step;
        t->loaded = 1;
    }
    if (rc == 0 && t->rank == 0)
        WEFT_INFO("%s %s (step %lld, written by world=%d dp=%d tp=%d pp=%d zero=%d)",
                  weights_only ? "initialised weights from" : "resumed from", path, (long long)L->meta.step,
                  L->world, L->dp, L->tp, L->pp, L->zero);
    weft_ckpt_loaded_free(L);
    return rc;
}

/* --init-from NAME: a file, or a run or checkpoints directory's latest. */
static int init_from(weft_trainer *t, const char *name)
{
    char path[4300];
    weft_ckpt_loaded L;
    WEFT_CHECK(weft_ckpt_resolve(name, path, sizeof path));
    WEFT_CHECK(weft_trainer_check_trusted(t, path));
    if (t->model->nfrozen) { /* the frozen tensors; the trained ones keep their initial values */
        WEFT_CHECK(load_base(t, path, 0, NULL));
        weft_trainer_note_parent(t, path, "init-from");
        return 0;
    }
    WEFT_CHECK(weft_ckpt_load(&t->cdesc.layout, &t->cdesc.state, path, load_flags(t, WEFT_CKPT_WEIGHTS_ONLY), &L));
    weft_trainer_note_parent(t, path, "init-from");
    return apply_loaded(t, path, &L, 1);
}

/* The checkpoints a resume tries, best first, as steps (rank 0 looks and
 * tells every rank): the one latest names; then, under --resume=auto or
 * when there is no latest at all, every step-*.h5 newest first. c[0]: what
 * reading latest gave (0 or a WEFT_E*), c[1]: how many, c[2..]: steps. */
#define MAX_TRIES 64
static void list_tries(const char *dir, int mode, int64_t c[MAX_TRIES + 2])
{
    char path[4300];
    int64_t latest = -1, *steps = NULL;
    int n = 0;
    c[0] = weft_ckpt_find_latest(dir, path, sizeof path);
    c[1] = 0;
    if (c[0] == 0 && weft_ckpt_parse_name(strrchr(path, '/') + 1, &latest))
        c[2 + c[1]++] = latest;
    if (!(mode == 2 || c[0] == WEFT_ENOENT) || weft_ckpt_list(dir, &steps, &n) != 0)
        return;
    for (int i = n - 1; i >= 0 && c[1] < MAX_TRIES; i--)
        if (steps[i] != latest)
            c[2 + c[1]++] = steps[i];
    free(steps);
}

/* Load the first of the tries (dirs[i]/step-tries[i].h5) that loads
 * (checksums verified): its index, or the first failure's error once none
 * does. */
static int load_first(weft_trainer *t, const char *const *dirs, const int64_t *tries, int n, weft_ckpt_loaded *L,
                      char *path, size_t len)
{
    char first[2048] = "";
    int frc = 0;
    for (int i = 0; i < n; i++) {
        char name[64];
        weft_ckpt_file_name(tries[i], name, sizeof name);
        snprintf(path, len, "%s/%s", dirs[i], name);
        int rc = weft_trainer_check_trusted(t, path);
        if (rc == 0)
            rc = weft_ckpt_load(&t->cdesc.layout, &t->cdesc.state, path, load_flags(t, 0), L);
        if (rc == 0)
            return i;
        if (!frc)
            frc = rc, snprintf(first, sizeof first, "%s", weft_last_error());
        if (t->rank == 0 && i + 1 < n)
            WEFT_WARN("cannot resume from %s: %s; trying the checkpoint before it", path, weft_last_error());
    }
    return weft_error(frc, "%s%s", first, n > 1 ? " (and no older checkpoint loads either)" : "");
}

/* Why a resume did not use latest's file, for the log. */
static void say_fallback(const weft_trainer *t, int mode, int64_t latest_rc, int used, const char *path)
{
    if (t->rank != 0 || (latest_rc == 0 && used == 0))
        return;
    WEFT_WARN("%s: %s; resuming from the newest checkpoint that loads and verifies, %s",
              mode == 2 ? "--resume=auto" : "--resume",
              latest_rc == WEFT_ENOENT ? "no latest in the checkpoint directory" :
              latest_rc ? "latest is unusable" : "the checkpoint latest names does not load", path);
}

/* --resume (mode 1) or --resume=auto (2) from run.dir's checkpoints. */
static int resume(weft_trainer *t, const char *dir, int mode)
{
    int64_t c[MAX_TRIES + 2] = {0};
    if (t->rank == 0)
        list_tries(dir, mode, c);
    WEFT_CHECK(weft_comm_broadcast(t->world, c, c, MAX_TRIES + 2, WEFT_I64, 0));
    int n = (int)c[1];
    if (n == 0 && mode == 2) {
        if (t->rank == 0)
            WEFT_INFO("--resume=auto: no checkpoint in %s, starting from step 0", dir);
        return 0;
    }
    if (n == 0 && c[0] == WEFT_ENOENT)
        return weft_error(WEFT_ENOENT, "no checkpoint to resume from: %s/latest does not exist and %s holds no "
                          "step-*.h5 (nothing was committed); start afresh without --resume, or use "
                          "--resume=auto", dir, dir);
    if (n == 0 || (c[0] && c[0] != WEFT_ENOENT && mode == 1)) /* latest is unusable: rank 0 says why */
        return t->rank == 0 ? (int)c[0] : weft_error((int)c[0], "no usable checkpoint in %s (see rank 0)", dir);
    char path[4300];
    weft_ckpt_loaded L;
    weft_fault_at(WEFT_FAULT_RESUME, -1); /* kill_resume, stall_resume: chosen, not yet read */
    /* Every rank here before HDF5's collective open, which is raw MPI and
     * would wait forever for a stopped rank: this barrier meets comm.timeout
     * instead (found by the campaign's stall_resume). */
    WEFT_CHECK(weft_comm_barrier(t->world));
    const char **dirs = malloc((size_t)n * sizeof *dirs);
    if (!dirs)
        return weft_error(WEFT_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        dirs[i] = dir;
    int used = load_first(t, dirs, c + 2, n, &L, path, sizeof path);
    free(dirs);
    if (used < 0)
        return used;
    say_fallback(t, mode, c[0], used, path);
    weft_trainer_note_parent(t, path, "resume");
    return apply_loaded(t, path, &L, 0);
}

/* Which of the local tier's tries every rank sees (a node whose local
 * tier is gone sees none): flags, agreed. */
static int visible_everywhere(weft_trainer *t, const char *dir, const int64_t *steps, int n, int32_t *ok)
{
    for (int i = 0; i < n; i++) {
        char name[64], p[4300];
        weft_ckpt_file_name(steps[i], name, sizeof name);
        snprintf(p, sizeof p, "%s/%s", dir, name);
        ok[i] = access(p, R_OK) == 0;
    }
    return n ? weft_comm_allreduce(t->world, ok, ok, (size_t)n, WEFT_I32, WEFT_MIN) : 0;
}

/* Two tiers: the newest checkpoint of either that every rank can read and
 * that loads and verifies; at equal steps the local one. Says which. */
static int resume_tiers(weft_trainer *t, const char *local, const char *shared, int mode)
{
    int64_t cl[MAX_TRIES + 2] = {0}, cs[MAX_TRIES + 2] = {0};
    /* another run's checkpoints in the local tier are not candidates: the
     * run stops (exit 64) before loading anything (checkpoint/owner.h);
     * looked at by each node's first rank (the tier is one directory, or
     * one per node) */
    WEFT_CHECK(weft_trainer_owner_id(t));
    int mine = t->ctx->local_rank == 0 ? weft_ckpt_owner_check(local, t->owner_id, 0) : 0;
    WEFT_CHECK(weft_ckpt_agree(t->world, mine));
    if (t->rank == 0) {
        list_tries(local, 2, cl); /* every local file: the tier may be older or newer than shared */
        list_tries(shared, mode, cs);
    }
    WEFT_CHECK(weft_comm_broadcast(t->world, cl, cl, MAX_TRIES + 2, WEFT_I64, 0));
    WEFT_CHECK(weft_comm_broadcast(t->world, cs, cs, MAX_TRIES + 2, WEFT_I64, 0));
    int nl = (int)cl[1], ns = (int)cs[1], n = 0;
    int32_t ok[MAX_TRIES];
    WEFT_CHECK(visible_everywhere(t, local, cl + 2, nl, ok));
    int64_t tries[2 * MAX_TRIES];
    const char *dirs[2 * MAX_TRIES];
    for (int i = 0, j = 0; i < nl || j < ns;) { /* merge, newest first, local first at equal steps */
        int take_local = i < nl && (j >= ns || cl[2 + i] >= cs[2 + j]);
        if (take_local && !ok[i]) {
            i++;
            continue;
        }
        tries[n] = take_local ? cl[2 + i++] : cs[2 + j++];
        dirs[n++] = take_local ? local : shared;
    }
    if (n == 0 && mode == 2) {
        if (t->rank == 0)
            WEFT_INFO("--resume=auto: no checkpoint in %s or %s, starting from step 0", local, shared);
        return 0;
    }
    if (n == 0)
        return weft_error(WEFT_ENOENT, "no checkpoint to resume from: neither the local tier %s nor the shared "
                          "tier %s holds one every rank can read; start afresh without --resume, or use "
                          "--resume=auto", local, shared);
    char path[4300];
    weft_ckpt_loaded L;
    weft_fault_at(WEFT_FAULT_RESUME, -1); /* as a one-tier resume (above) */
    WEFT_CHECK(weft_comm_barrier(t->world));
    int used = load_first(t, dirs, tries, n, &L, path, sizeof path);
    if (used < 0)
        return used;
    int tried_local = 0; /* local checkpoints tried before the one used (they did not load) */
    for (int i = 0; i < used; i++)
        tried_local |= dirs[i] == local;
    if (t->rank == 0)
        WEFT_INFO("resuming from the %s tier: %s%s", dirs[used] == local ? "local" : "shared", path,
                  dirs[used] == local ? "" : tried_local ? " (the local tier's newer ones do not load, see above)"
                                       : nl ? " (the local tier holds none as new that every rank can read)"
                                            : " (nothing in the local tier)");
    weft_trainer_note_parent(t, path, "resume");
    return apply_loaded(t, path, &L, 0);
}

int weft_trainer_ckpt_resume(weft_trainer *t, const weft_trainer_start_opts *so)
{
    WEFT_CHECK(weft_ckpt_model_describe(t->model, t->dp, t->opt, t->world, t->mesh, t->o.zero, &t->cdesc));
    if (so->resume) {
        weft_ckpt_opts o;
        weft_ckpt_opts_from_config(t->cfg, &o);
        WEFT_CHECK(o.local_dir[0] ? resume_tiers(t, o.local_dir, o.dir, so->resume) : resume(t, o.dir, so->resume));
    }
    if (so->init_from && !t->loaded) /* --resume=auto --init-from: only when there was nothing to resume */
        WEFT_CHECK(init_from(t, so->init_from));
    const weft_model *m = t->model;
    if (m->nfrozen && !t->base_path)
        return weft_error(WEFT_ECONFIG, "the model's %d frozen tensors (%s: only the adapters are trained) need "
                          "a checkpoint to come from, and there is none: give --init-from BASE (a checkpoint of "
                          "the same model without adapters, e.g. one weft-ckpt import made)", m->nfrozen,
                          m->adapter ? m->adapter : "frozen");
    return 0;
}

int weft_trainer_load_weights(weft_trainer *t, const char *name)
{
    if (!t->model)
        return weft_error(WEFT_EINVAL, "weft_trainer_load_weights: set the model first");
    weft_ckpt_model_free(&t->cdesc);
    WEFT_CHECK(weft_ckpt_model_describe(t->model, t->dp, t->opt, t->world, t->mesh, t->o.zero, &t->cdesc));
    WEFT_CHECK(init_from(t, name));
    weft_trainer_weights_changed(t);
    return 0;
}

int weft_trainer_ckpt_setup(weft_trainer *t)
{
    weft_ckpt_opts o;
    weft_ckpt_opts_from_config(t->cfg, &o);
    o.loader_len = t->train->ops->state_size(t->train);
    if (!t->owner_id) /* a fresh start: owner.json is written by now (a resume read it already) */
        WEFT_CHECK(weft_trainer_owner_id(t));
    o.owner = t->owner_id;
    t->source_state = malloc(o.loader_len + 1);
    char *ini = weft_config_to_ini(t->cfg);
    int rc = t->source_state && ini ? weft_ckpt_new(&t->cdesc.layout, &t->cdesc.state, &o, ini, &t->ckpt)
                                    : weft_error(WEFT_ENOMEM, "out of memory");
    if (rc == 0)
        rc = weft_trainer_provenance(t, ini);
    if (rc == 0) /* a save commits after its step's metrics line (weft_trainer_run releases it) */
        weft_ckpt_gate(t->ckpt);
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
                        .loader_state = t->source_state, .loader_len = len,
                        .base_path = t->base_path, .base_hash = t->base_hash};
    int64_t t0 = weft_now_ns();
    WEFT_CHECK(wait ? weft_ckpt_save_wait(t->ckpt, &m) : weft_ckpt_save(t->ckpt, &m, NULL));
    s->ckpt_ms = 1e-6 * (double)(weft_now_ns() - t0);
    return 0;
}

int weft_trainer_ckpt_drained(weft_trainer *t)
{
    return weft_ckpt_wait_drained(t->ckpt, weft_config_float(t->cfg, "checkpoint.drain_timeout"));
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
    weft_ckpt_stats st;
    weft_ckpt_get_stats(t->ckpt, &st);
    if (st.tiers == 2 && t->rank == 0) /* the drain runs on rank 0 */
        weft_sched_drain(t->sched, st.drained_step, st.drained, st.drain_retried, st.drain_failed, st.drain_error);
}

/* After a step: start a save if one is due (checkpoint.every); the last
 * step's is weft_trainer_ckpt_final's. */
int weft_trainer_ckpt_step(weft_trainer *t, weft_step_stats *s)
{
    int64_t done = s->step + 1, every = t->o.ckpt_every;
    int last = done == t->o.steps && t->o.at_end;
    if (!last && every && done % every == 0) {
        int rc = weft_trainer_ckpt_save(t, s, 0);
        if (rc) /* status.json shows a drain failure that stops the run */
            weft_trainer_ckpt_report(t);
        WEFT_CHECK(rc);
    }
    weft_trainer_ckpt_report(t);
    return 0;
}

/* After the last step's metrics line: its save (checkpoint.at_end), never
 * skipped, and waited for; a failure obeys checkpoint.on_error. */
int weft_trainer_ckpt_final(weft_trainer *t, weft_step_stats *s)
{
    int last = s->step + 1 == t->o.steps && t->o.at_end;
    if (last) {
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
