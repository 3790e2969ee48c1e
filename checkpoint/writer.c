/*
 * writer.c -- the checkpointer: staging buffers, the writer thread, and the
 * step loop's side of a save (see ckpt.h for the states; save.c for what
 * the writer thread does with a save).
 *
 * The step loop (weft_ckpt_save): agree on busy/failed -> wait or skip ->
 * copy the state into staging (the only time it is blocked; from a
 * device: enqueue the copies, see stage_device) -> hand it to the writer
 * thread -> go on. The writer thread (writer_main) runs one save
 * at a time and records its agreed result, collected at the next save,
 * wait or close. A sync save (weft_ckpt_save_wait, checkpoint.async =
 * false) is written by the calling thread itself, not niced (save()).
 */
#include "checkpoint/agree.h"
#include "checkpoint/commit.h"
#include "checkpoint/owner.h"
#include "checkpoint/writer_int.h"
#include "runtime/copy_stream.h"
#include "runtime/ctx.h"
#include "runtime/error.h"
#include "runtime/invariant.h"
#include "runtime/log.h"
#include "runtime/timer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The save states (ckpt.h), with mu held: IDLE -> PENDING (the step loop
 * staged a save; only from IDLE, its previous result collected) ->
 * WRITING (the writer thread took it; a sync save: its caller writes it,
 * save()) -> DONE (its result recorded) ->
 * IDLE (collected). A save is never PENDING or WRITING without the thread
 * and the staging buffer. */
static int writer_check(const weft_ckpt *c, int to)
{
    static const char *const names[] = {"IDLE", "PENDING", "WRITING", "DONE"};
    int from = c->st;
    if (from < IDLE || from > DONE || to < IDLE || to > DONE)
        return weft_error(WEFT_EINTERNAL, "checkpoint writer: state %d -> %d is not a state", from, to);
    if (to != (from + 1) % 4)
        return weft_error(WEFT_EINTERNAL, "checkpoint writer: %s -> %s (step %lld): the states go IDLE -> PENDING "
                          "-> WRITING -> DONE -> IDLE", names[from], names[to], (long long)c->meta.step);
    if ((to == PENDING || to == WRITING) && (!c->thread_started || !c->stage))
        return weft_error(WEFT_EINTERNAL, "checkpoint writer: a save %s without %s", names[to],
                          c->thread_started ? "its staging buffer" : "the writer thread");
    return 0;
}

static void move(weft_ckpt *c, int to, const char *when)
{
    WEFT_INVARIANT(writer_check(c, to), when);
    c->st = to;
}

/* Removing the checkpoints retention (checkpoint.keep_last, keep_every)
 * drops is no part of a save: unlinking a file of 577 MB (its pages freed,
 * its extents released) took 0.10-0.17 s, most of the commit phase and a
 * fifth of a save (bench_ckpt), while every rank waited for it at the
 * commit's last agreement. The writer thread does it once it has reported
 * the save, before it takes the next (whose preflight then sees the space
 * freed); close waits for it. A sync save's too: written by its caller,
 * it hands its retention to the writer thread and returns at its commit
 * (the removals took 0.12-0.24 s of a 0.5 s sync save at 48 M, bench_ckpt),
 * and the next sync save waits for them before it starts. */
static void retain_after(weft_ckpt *c, int64_t committed)
{
    if (weft_ckpt_retain(c->opts.dir, c->opts.keep_last, c->opts.keep_every, committed) != 0)
        WEFT_WARN("%s", weft_last_error()); /* an old file left over is no failure of a save */
}

/* One save in WRITING, on whichever thread writes it: its result recorded,
 * DONE, then retention (by the writer thread: here, or handed to it). */
static void write_and_record(weft_ckpt *c, int writer_thread)
{
    int rc = weft_ckpt_write_one(c);
    pthread_mutex_lock(&c->mu);
    c->result = rc;
    snprintf(c->result_msg, sizeof c->result_msg, "%s", rc ? weft_last_error() : "");
    /* taken before DONE: the step loop may stage the next save (c->meta) once it sees DONE */
    int64_t committed = rc == 0 && weft_ckpt_committer(c) ? c->meta.step : -1;
    move(c, DONE, "a save's result recorded");
    if (committed >= 0 && !writer_thread)
        c->retain_step = committed;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (committed >= 0 && writer_thread)
        retain_after(c, committed);
}

static void *writer_main(void *arg)
{
    weft_ckpt *c = arg;
    /* Below the training threads: where cores are short, the step loop
     * keeps them and the save takes longer (Linux nices threads alone).
     * Against a busy nice-0 thread a nice-n one gets about weight(n) /
     * (1024 + weight(n)) of the core: 9.7% at nice 10, which made steps
     * during an async save 1.18-1.22x their time; 3.4% at nice 15 made
     * them 1.04-1.06x, and each save took ~10 s instead of ~3.5 s on the
     * two saturated cores (bench_ckpt, bench/README.md). A sync save is
     * not written here but by the thread that waits for it (save() says
     * why). Where a core is idle, nice costs nothing. */
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 15);
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (c->st != PENDING && c->retain_step < 0 && !c->quit)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->retain_step >= 0) { /* a sync save's, before anything else (and before quitting) */
            int64_t step = c->retain_step;
            pthread_mutex_unlock(&c->mu);
            retain_after(c, step);
            pthread_mutex_lock(&c->mu);
            c->retain_step = -1;
            pthread_cond_broadcast(&c->cv);
            continue;
        }
        if (c->st != PENDING)
            break;
        move(c, WRITING, "the writer thread takes a save");
        pthread_mutex_unlock(&c->mu);
        write_and_record(c, 1);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* --- the main thread's side ---------------------------------------------- */

/* The staging buffer, once: the device's pinned host memory and the
 * events that order its copies when the state is on a device, else
 * 64-byte aligned host memory. */
static int stage_alloc(weft_ckpt *c)
{
    weft_dev *d = c->state.dev;
    if (!d) {
        c->stage = aligned_alloc(64, c->plan.stage_bytes + 64);
        return 0; /* NULL: reported with the other buffers */
    }
    for (int s = 0; s < 2; s++)
        WEFT_CHECK(weft_device_event_new(d, &c->ready[s]));
    WEFT_CHECK(weft_device_event_new(d, &c->staged));
    return weft_device_host_alloc(d, c->plan.stage_bytes + 64, (void **)&c->stage);
}

static void stage_free(weft_ckpt *c)
{
    weft_dev *d = c->state.dev;
    if (!d) {
        free(c->stage);
        return;
    }
    /* a save that failed before its writer waited may still be copying */
    if (c->stage && weft_device_stream_sync(d, WEFT_STREAM_STAGE) != 0)
        WEFT_WARN("checkpoint: closing: %s", weft_last_error());
    weft_device_host_free(d, c->stage, c->plan.stage_bytes + 64);
    for (int s = 0; s < 2; s++)
        weft_device_event_free(c->ready[s]);
    weft_device_event_free(c->staged);
}

static int setup(weft_ckpt *c, const weft_ckpt_layout *l, const weft_ckpt_state *s, const weft_ckpt_opts *o,
                 const char *ini)
{
    c->layout = *l;
    c->state = *s;
    c->opts = *o;
    if (o->local_dir[0]) { /* saves commit in the local tier; the drain takes them to dir */
        snprintf(c->shared, sizeof c->shared, "%s", o->dir);
        snprintf(c->opts.dir, sizeof c->opts.dir, "%s", o->local_dir);
        c->opts.keep_last = o->local_keep;
        c->opts.keep_every = 0;
    }
    c->last_step = -1;
    c->retain_step = -1;
    c->fd = -1;
    c->rank = weft_comm_rank(l->world);
    c->size = weft_comm_size(l->world);
    weft_ctx *ctx = weft_ctx_current();
    c->fsyncer = c->leader = !ctx || ctx->local_rank == 0;
    c->node = ctx ? ctx->node : 0;
    c->nnodes = ctx ? ctx->nnodes : 1;
    c->shared_keep_last = o->keep_last, c->shared_keep_every = o->keep_every;
    /* auto: collective metadata writes pay across nodes (one writer, no
     * metadata storm on a shared file system); on one node they are only
     * more synchronisation. The data never goes through HDF5 (save_data.c),
     * so opts.collective is resolved for what it reports and used by nothing
     * (docs/checkpoint-format.md, "Tuning"). */
    int nodes = ctx ? ctx->nnodes : 2;
    c->multinode = nodes > 1;
    if (c->opts.collective < 0)
        c->opts.collective = nodes > 1;
    if (c->opts.coll_metadata < 0)
        c->opts.coll_metadata = nodes > 1;
    c->config_ini = strdup(ini ? ini : "");
    WEFT_CHECK(weft_comm_dup(l->world, "ckpt-writer", &c->wcomm));
    WEFT_CHECK(weft_comm_mpi_dup(l->world, &c->mpi));
    if (c->shared[0]) { /* one local_dir for all, or one per node (nodefile.c) */
        WEFT_CHECK(weft_ckpt_nodes_setup(c, c->leader ? weft_ckpt_mkdir(c->opts.dir) : 0));
        /* Claimed for this run before anything else touches it, once per
         * directory (each node's first rank, or rank 0 of a directory all
         * see: two nodes renaming their copies of the mark into one
         * shared directory could fail). A tier holding another run's
         * checkpoints is refused (owner.h). No owner (a benchmark): no mark. */
        int rc = weft_ckpt_committer(c) && o->owner ? weft_ckpt_owner_check(c->opts.dir, o->owner, 1) : 0;
        WEFT_CHECK(weft_ckpt_agree(l->world, rc));
    }
    WEFT_CHECK(weft_ckpt_plan_build(c->mpi, c->node_mpi, l, s, o->loader_len, &c->plan));
    WEFT_CHECK(stage_alloc(c));
    c->scratch = malloc(SCRATCH_BYTES);
    c->hashes = calloc((size_t)c->plan.nd + 1, sizeof *c->hashes);
    c->dsets = calloc((size_t)c->plan.nd + 1, sizeof *c->dsets);
    c->offs = calloc((size_t)c->plan.nd + 1, sizeof *c->offs);
    c->blocks = calloc(2 * c->plan.nblocks + 1, sizeof *c->blocks);
    if (!c->config_ini || !c->stage || !c->scratch || !c->hashes || !c->dsets || !c->offs || !c->blocks)
        return weft_error(WEFT_ENOMEM, "checkpoint: %.1f MiB of staging: out of memory",
                          c->plan.stage_bytes / 1048576.0);
    memset(c->stage, 0, c->plan.stage_bytes); /* touch it now, not during the first save */
    for (int i = 0; i < c->plan.nd; i++)
        c->stats.bytes_rank += c->plan.d[i].count * c->plan.d[i].esize;
    int rc = weft_ckpt_committer(c) ? weft_ckpt_mkdir(c->opts.dir) : 0;
    if (rc == 0 && weft_ckpt_committer(c)) {
        weft_ckpt_remove_stale(c->opts.dir);
        weft_ckpt_reserve_take(c);
    }
    if (c->nodefiles && c->rank == 0 && rc == 0 && (rc = weft_ckpt_mkdir(c->shared)) == 0)
        weft_ckpt_remove_stale(c->shared);
    if (c->shared[0] && !c->nodefiles) {
        weft_ckpt_drain_opts d = {.from = c->opts.dir, .to = c->shared, .keep_last = o->keep_last,
                                  .keep_every = o->keep_every, .retries = o->drain_retries,
                                  .preflight = o->preflight};
        if (c->rank == 0)
            rc = weft_ckpt_drain_new(&d, &c->drain);
    }
    return rc;
}

int weft_ckpt_new(const weft_ckpt_layout *l, const weft_ckpt_state *s, const weft_ckpt_opts *o, const char *ini,
                  weft_ckpt **out)
{
    *out = NULL;
    weft_ckpt *c = calloc(1, sizeof *c);
    if (!c)
        return weft_error(WEFT_ENOMEM, "checkpoint: out of memory");
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->node_mpi = MPI_COMM_NULL;
    int rc = setup(c, l, s, o, ini);
    rc = weft_ckpt_agree(l->world, rc);
    if (rc == 0 && c->nodefiles)
        weft_ckpt_nodes_catch_up(c); /* before the writer thread: wcomm is this thread's until then */
    if (rc == 0 && pthread_create(&c->thread, NULL, writer_main, c) != 0)
        rc = weft_error(WEFT_EINTERNAL, "checkpoint: cannot start the writer thread");
    c->thread_started = rc == 0;
    if (rc) {
        weft_ckpt_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void weft_ckpt_gate(weft_ckpt *c)
{
    pthread_mutex_lock(&c->mu);
    c->gated = 1;
    pthread_mutex_unlock(&c->mu);
}

void weft_ckpt_release(weft_ckpt *c, int64_t step)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    if (step > c->released)
        c->released = step;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void weft_ckpt_await_release(weft_ckpt *c)
{
    pthread_mutex_lock(&c->mu);
    while (c->gated && c->released < c->meta.step && !c->quit)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

/* Wait for the writer to finish the save in flight; collect its result.
 * Whoever waits for a save lets it commit (releases its step). */
static int collect(weft_ckpt *c)
{
    pthread_mutex_lock(&c->mu);
    if ((c->st == PENDING || c->st == WRITING) && c->released < c->meta.step) {
        c->released = c->meta.step;
        pthread_cond_broadcast(&c->cv);
    }
    while (c->st == PENDING || c->st == WRITING)
        pthread_cond_wait(&c->cv, &c->mu);
    int rc = 0;
    if (c->st == DONE) {
        rc = c->result;
        if (rc) {
            weft_ckpt_rethrow(rc, c->result_msg);
            c->stats.failed++;
        }
        move(c, IDLE, "a save's result collected");
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int weft_ckpt_wait(weft_ckpt *c) { return c ? collect(c) : 0; }

static int busy(weft_ckpt *c)
{
    pthread_mutex_lock(&c->mu);
    int b = c->st == PENDING || c->st == WRITING;
    pthread_mutex_unlock(&c->mu);
    return b;
}

/* Rank 0: a drain that failed since the last look, as an error. */
static int drain_result(weft_ckpt *c)
{
    weft_ckpt_drain_stats d;
    if (c->drain)
        weft_ckpt_drain_get(c->drain, &d);
    else if (c->nodefiles && c->rank == 0) {
        pthread_mutex_lock(&c->mu);
        d = c->dst;
        pthread_mutex_unlock(&c->mu);
    } else
        return 0;
    if (d.failed == c->drain_failed_seen)
        return 0;
    c->drain_failed_seen = d.failed;
    return weft_error(WEFT_EIO, "checkpoint drain to %s failed: %s", c->shared, d.error);
}

/* A failed earlier save (or, with_drain, drain): an error to stop on, or a
 * warning. */
static int previous_result(weft_ckpt *c, int with_drain)
{
    int rc = collect(c);
    if (rc == 0 && with_drain)
        rc = drain_result(c);
    if (rc == 0)
        return 0;
    if (c->opts.stop_on_error)
        return rc;
    if (c->rank == 0)
        WEFT_WARN("%s (checkpoint.on_error = continue: training goes on)", weft_last_error());
    return 0;
}

/* The state on a device into staging. The copies run on the staging
 * stream after the state's last writers (the optimizer on the compute
 * stream, ZeRO's gathers on the communication stream), and both streams
 * wait for their end (staged) before they write the state again; the
 * writer thread waits for it before it reads stage (weft_ckpt_staged_wait).
 * The host goes on once they are enqueued: on a GPU the step's stall is the
 * copy, taken by the next kernels queued behind it. On cpu each copy is a
 * memcpy done on return, and the events are reached as they are recorded. */
static int stage_device(weft_ckpt *c)
{
    weft_dev *d = c->state.dev;
    const weft_ckpt_plan *p = &c->plan;
    static const weft_stream writers[2] = {WEFT_STREAM_COMPUTE, WEFT_STREAM_COMM};
    for (int s = 0; s < 2; s++) {
        WEFT_CHECK(weft_device_event_record(c->ready[s], writers[s]));
        WEFT_CHECK(weft_device_stream_wait(d, WEFT_STREAM_STAGE, c->ready[s]));
    }
    for (int i = 0; i < p->ncopies; i++)
        if (p->copies[i].src)
            WEFT_CHECK(weft_device_copy_async(d, c->stage + p->copies[i].stage_off, p->copies[i].src,
                                              p->copies[i].bytes, WEFT_COPY_D2H, WEFT_STREAM_STAGE));
    WEFT_CHECK(weft_device_event_record(c->staged, WEFT_STREAM_STAGE));
    for (int s = 0; s < 2; s++)
        WEFT_CHECK(weft_device_stream_wait(d, writers[s], c->staged));
    return 0;
}

int weft_ckpt_staged_wait(weft_ckpt *c)
{
    if (!c->state.dev)
        return 0;
    int64_t t0 = weft_now_ns();
    int rc = weft_device_event_sync(c->staged);
    c->stats.stage_wait_s = 1e-9 * (double)(weft_now_ns() - t0);
    if (rc)
        return weft_ckpt_wrap(rc, "checkpoint step %lld: staging the state from the device",
                              (long long)c->meta.step);
    return 0;
}

static int stage_state(weft_ckpt *c, const weft_ckpt_meta *m)
{
    int64_t t0 = weft_now_ns();
    const weft_ckpt_plan *p = &c->plan;
    int rc = 0;
    if (c->state.dev)
        rc = stage_device(c);
    else
        for (int i = 0; i < p->ncopies; i++)
            if (p->copies[i].src)
                weft_copy_stream(c->stage + p->copies[i].stage_off, p->copies[i].src, p->copies[i].bytes);
    if (c->opts.loader_len && weft_ckpt_committer(c)) /* the rank(s) writing loader/state (plan.c) */
        memcpy(c->stage + p->loader_off, m->loader_state, m->loader_len < c->opts.loader_len ? m->loader_len
                                                                                             : c->opts.loader_len);
    memcpy(c->stage + p->rng_off, &m->rng, sizeof m->rng);
    c->meta = *m;
    c->meta.loader_state = NULL;
    c->stats.copy_s = 1e-9 * (double)(weft_now_ns() - t0);
    c->stats.stage_wait_s = 0;
    return rc;
}

/* A save: agreed, staged, then handed to the writer thread -- or, sync
 * (the caller waits for it: weft_ckpt_save_wait, checkpoint.async =
 * false), written by the calling thread itself, at its own priority: the
 * writer thread runs at nice 15 so that an async save yields the cores to
 * the step loop, but a sync save has no step loop to yield to: at nice 15
 * behind two busy processes it took 29-37 s against 2.8-3.1 s written by
 * its caller (bench/README.md, bench_ckpt) -- a stop signal's checkpoint
 * must fit its grace period. The writer thread is idle meanwhile (the
 * previous save was collected), so the writer's communicators have one
 * user at a time, as always. */
static int save(weft_ckpt *c, const weft_ckpt_meta *m, int never_skip, int sync, int *started)
{
    int64_t t0 = weft_now_ns();
    *started = 0;
    if (m->loader_len != c->opts.loader_len && c->opts.loader_len)
        return weft_error(WEFT_EINVAL, "checkpoint: loader state of %zu bytes, %zu reserved", m->loader_len,
                          c->opts.loader_len);
    /* Every rank must start (or skip) the same saves: agree on "busy". */
    int32_t b = busy(c), any;
    WEFT_CHECK(weft_comm_allreduce(c->layout.world, &b, &any, 1, WEFT_I32, WEFT_MAX));
    if (any && c->opts.skip_if_busy && !never_skip) {
        c->stats.skipped++;
        if (c->rank == 0)
            WEFT_WARN("checkpoint at step %lld skipped: step %lld is still being written (checkpoint.if_busy = "
                      "skip)", (long long)m->step, (long long)c->meta.step);
        return 0;
    }
    /* A save that must happen (the last, a stop's) is not kept from the
     * local tier by a failed drain; weft_ckpt_finish reports that later. */
    WEFT_CHECK(weft_ckpt_agree(c->layout.world, previous_result(c, !never_skip)));
    int rc = stage_state(c, m);
    if (c->state.dev) /* a device's copies can fail: on every rank, or on none */
        rc = weft_ckpt_agree(c->layout.world, rc);
    WEFT_CHECK(rc);
    pthread_mutex_lock(&c->mu);
    while (sync && c->retain_step >= 0) /* the previous sync save's removals: this preflight sees their space */
        pthread_cond_wait(&c->cv, &c->mu);
    move(c, PENDING, sync ? "a sync save, for the calling thread" : "a save handed to the writer thread");
    if (sync) {
        move(c, WRITING, "the calling thread writes its sync save");
        c->released = c->meta.step > c->released ? c->meta.step : c->released; /* its waiter: this thread */
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    *started = 1;
    c->stats.saves++;
    c->stats.blocked_s = 1e-9 * (double)(weft_now_ns() - t0);
    if (sync)
        write_and_record(c, 0);
    return 0;
}

int weft_ckpt_finish(weft_ckpt *c)
{
    return c ? weft_ckpt_agree(c->layout.world, previous_result(c, 1)) : 0; /* a drain's failure: rank 0's */
}

int weft_ckpt_save(weft_ckpt *c, const weft_ckpt_meta *m, int *started)
{
    int s;
    WEFT_CHECK(save(c, m, 0, !c->opts.async, started ? started : &s));
    if (c->opts.async)
        return 0;
    int rc = collect(c);
    c->stats.blocked_s += c->stats.write_s;
    return rc;
}

int weft_ckpt_save_wait(weft_ckpt *c, const weft_ckpt_meta *m)
{
    int started;
    WEFT_CHECK(save(c, m, 1, 1, &started));
    return collect(c);
}

/* Rank 0, a file per node: the writer thread assembles the shared tier's
 * file after the local commit (nodefile.c); wait for step's. */
static int nodes_wait(weft_ckpt *c, int64_t step, double timeout_s)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    double end = (double)until.tv_sec + 1e-9 * (double)until.tv_nsec + timeout_s;
    until.tv_sec = (time_t)end;
    until.tv_nsec = (long)((end - (double)until.tv_sec) * 1e9);
    pthread_mutex_lock(&c->mu);
    if (c->dst.drained_step < step && c->dst.failed_step < step)
        WEFT_INFO("waiting for checkpoint step %lld to be assembled in %s (at most checkpoint.drain_timeout = %g s)",
                  (long long)step, c->shared, timeout_s);
    int timed_out = 0;
    while (c->dst.drained_step < step && c->dst.failed_step < step && !timed_out)
        timed_out = pthread_cond_timedwait(&c->cv, &c->mu, &until) == ETIMEDOUT;
    int rc = 0;
    if (c->dst.drained_step < step)
        rc = weft_error(WEFT_EIO, "checkpoint step %lld was not written to %s: %s; it is on the nodes' local tiers "
                        "only (%s)", (long long)step, c->shared, c->dst.failed_step >= step ? c->dst.error :
                        "checkpoint.drain_timeout passed first", c->opts.dir);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int weft_ckpt_wait_drained(weft_ckpt *c, double timeout_s)
{
    if (!c || !c->shared[0])
        return 0;
    int64_t last = weft_ckpt_last(c, NULL, 0);
    int rc = c->drain && last >= 0 ? weft_ckpt_drain_wait(c->drain, last, timeout_s) : 0;
    if (c->nodefiles && c->rank == 0 && last >= 0)
        rc = nodes_wait(c, last, timeout_s);
    return weft_ckpt_agree(c->layout.world, rc);
}

int64_t weft_ckpt_last(weft_ckpt *c, char *path, size_t len)
{
    pthread_mutex_lock(&c->mu);
    int64_t s = c->last_step;
    if (path && len)
        snprintf(path, len, "%s", c->last_path);
    pthread_mutex_unlock(&c->mu);
    return s;
}

void weft_ckpt_get_stats(weft_ckpt *c, weft_ckpt_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    pthread_mutex_unlock(&c->mu);
    out->tiers = c->shared[0] ? 2 : 1;
    out->drained_step = -1;
    if (c->drain || c->nodefiles) {
        weft_ckpt_drain_stats d;
        if (c->drain)
            weft_ckpt_drain_get(c->drain, &d);
        else {
            pthread_mutex_lock(&c->mu);
            d = c->dst;
            pthread_mutex_unlock(&c->mu);
        }
        out->drained_step = d.drained_step;
        out->drained = d.drained, out->drain_retried = d.retried, out->drain_failed = d.failed;
        out->drain_bytes = d.last_bytes, out->drain_s = d.last_s;
        snprintf(out->drain_error, sizeof out->drain_error, "%s", d.error);
    }
}

int weft_ckpt_close(weft_ckpt *c)
{
    if (!c)
        return 0;
    int rc = c->thread_started ? collect(c) : 0;
    if (c->thread_started) {
        pthread_mutex_lock(&c->mu);
        c->quit = 1;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
    }
    if (c->thread_started && weft_ckpt_committer(c))
        weft_ckpt_reserve_release(c); /* the directory holds only checkpoints again */
    weft_ckpt_drain_close(c->drain);
    if (c->mpi != MPI_COMM_NULL && c->mpi)
        MPI_Comm_free(&c->mpi);
    if (c->node_mpi != MPI_COMM_NULL)
        MPI_Comm_free(&c->node_mpi);
    weft_comm_free(c->wcomm);
    stage_free(c);
    weft_ckpt_plan_free(&c->plan);
    free(c->scratch);
    free(c->hashes);
    free(c->dsets);
    free(c->offs);
    free(c->blocks);
    weft_ckpt_segs_free(&c->segs);
    free(c->config_ini);
    free(c->provenance);
    memset(c->sign_sk, 0, sizeof c->sign_sk);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
    return rc;
}
