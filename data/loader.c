/*
 * loader.c -- the streaming loader (contract and states in loader.h).
 *
 * Threads: the consumer (the training loop) calls next(), which hands out
 * ready batch slots in step order. The planner (one background thread) walks
 * the global sample stream with its own cursor and writes, for each free
 * slot in turn, the list of this rank's windows (plan_batch), then publishes
 * the slot's rows. The workers (io_threads of them) claim published rows one
 * at a time from a shared counter that runs across batches and read them
 * (data/reader.h); the worker that finishes a slot's last row marks it READY.
 * There is no barrier between batches: up to prefetch_depth batches are
 * being read at once, so the device sees many reads in flight and warm-cache
 * copies use every core.
 *
 * Slot states, under mu: FREE (planner may plan it) -> FILLING (planned,
 * rows being read; planner) -> READY (last row read; a worker) -> HELD
 * (returned by next(); consumer) -> FREE (the following next(); consumer).
 * Only the planner touches the cursor and shuffle state; only workers touch
 * the reader. A read error marks the loader failed at that step: next()
 * returns it for that step and every later one (sticky) until a restore.
 *
 * Shards are opened lazily, when a sample first needs them, and kept in a
 * small LRU cache of descriptors (data/shard_cache.h), so opening a dataset
 * of 10 000 shards reads one manifest and nothing else.
 */
#include "data/loader.h"
#include "data/blend.h"
#include "data/le.h"
#include "data/reader.h"
#include "data/shard.h"
#include "data/shuffle.h"
#include "runtime/error.h"
#include "runtime/invariant.h"
#include "runtime/log.h"
#include "runtime/timer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#define STATE_MAGIC 0x54534c57u /* "WLST" */
#define STATE_VERSION 1
#define ERR_LEN 1024
#define COLD_NS 8000 /* mean read time per row above which the cache looks cold */
#define PROBE_EVERY 16

typedef struct {
    const weft_manifest_shard *ms;
    uint64_t first_window;  /* windows in earlier shards of the dataset */
    uint64_t windows;
    size_t id;              /* dense id over all datasets, for the descriptor cache */
} shard_ref;

typedef struct {
    char dir[2048];
    weft_manifest *m;
    shard_ref *shards;      /* (n_shards) of the chosen split */
    size_t n_shards;
    uint64_t windows;       /* N: samples per epoch */
} dataset;

typedef struct {
    uint64_t pos;                       /* global samples before this point */
    uint64_t counts[WEFT_BLEND_MAX];    /* samples drawn from each dataset */
} cursor;

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY, SLOT_HELD };

typedef struct {
    int32_t *tokens;        /* (rows, T+1) */
    weft_read_req *reqs;    /* (rows) this rank's windows of the batch */
    cursor after;           /* stream position after this batch */
    int state;
    atomic_long remaining;  /* rows not yet read */
    atomic_long read_ns;    /* summed read time of its rows (cold detection) */
    bool announced;         /* its reads were hinted with WILLNEED */
} slot;

typedef struct {
    struct weft_loader *L;
    int id;
    pthread_t thread;
} worker;

struct weft_loader {
    weft_loader_options o;
    int64_t T, rows;
    dataset ds[WEFT_BLEND_MAX];
    weft_blend blend;
    uint64_t stream_id, data_hash;

    /* Planner-only state. */
    cursor pc;
    weft_shuffle shuf[WEFT_BLEND_MAX];
    uint64_t shuf_epoch[WEFT_BLEND_MAX];
    uint64_t plan_step;     /* next step to plan */
    size_t n_shard_ids;

    /* Workers. */
    weft_reader *reader;
    worker *workers;        /* (io_threads) */
    atomic_ullong next_row; /* next row to claim, counted across steps */
    atomic_ullong planned_rows; /* rows published by the planner */
    atomic_bool cold;       /* last batch looked uncached: announce reads */

    /* Shared, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv_ready, cv_free, cv_work;
    slot *slots;            /* (depth) */
    uint64_t cons_step;
    int failed;             /* a read failed at fail_step */
    uint64_t fail_step;
    int err_rc;
    char err_msg[ERR_LEN];
    atomic_bool stop;
    pthread_t planner;
    int running;

    /* Consumer-only state. */
    slot *held;
    cursor cc;              /* after the last batch returned */
    int64_t wait_ns, last_wait_ns;
};

/* ---- options and configuration ------------------------------------------ */

void weft_loader_options_default(weft_loader_options *o)
{
    memset(o, 0, sizeof *o);
    o->n_datasets = 1;
    o->split = WEFT_SPLIT_TRAIN;
    o->dp_size = 1;
    o->shuffle = true;
    o->prefetch_depth = 4;
    o->io_threads = 4;
    o->max_open_shards = 64;
}

/* ---- opening: manifests and the sample index ---------------------------- */

static int index_split(dataset *ds, weft_split split, int64_t T, size_t *next_id)
{
    const weft_manifest *m = ds->m;
    uint64_t longest = 0;
    const char *longest_name = "";
    ds->shards = calloc(m->n_shards ? m->n_shards : 1, sizeof *ds->shards);
    if (!ds->shards)
        return weft_error(WEFT_ENOMEM, "%s: no memory for the shard index", ds->dir);
    for (size_t i = 0; i < m->n_shards; i++) {
        const weft_manifest_shard *s = &m->shards[i];
        if (s->split != split)
            continue;
        shard_ref *r = &ds->shards[ds->n_shards++];
        r->ms = s;
        r->first_window = ds->windows;
        /* Windows of T+1 tokens at stride T: window j is tokens [jT, jT+T]. */
        r->windows = s->tokens > (uint64_t)T ? (s->tokens - 1) / (uint64_t)T : 0;
        r->id = (*next_id)++;
        ds->windows += r->windows;
        if (s->tokens >= longest) {
            longest = s->tokens;
            longest_name = s->name;
        }
    }
    if (ds->n_shards == 0 || longest == 0)
        return weft_error(WEFT_EDATA, "%s/%s: empty dataset: expected at least one '%s' shard with tokens, found %zu shards with %" PRIu64 " tokens",
                          ds->dir, WEFT_MANIFEST_NAME, weft_split_name(split), ds->n_shards, longest);
    if (ds->windows == 0)
        return weft_error(WEFT_EDATA, "%s/%s: seq_len %" PRId64 " is longer than any '%s' shard: expected a shard of at least %" PRId64 " tokens, found at most %" PRIu64 " (%s); use a smaller seq_len or larger shards",
                          ds->dir, longest_name, T, weft_split_name(split), T + 1, longest, longest_name);
    return 0;
}

static int open_dataset(weft_loader *L, int d)
{
    dataset *ds = &L->ds[d];
    if (!L->o.paths[d] || !*L->o.paths[d])
        return weft_error(WEFT_ECONFIG, "data: dataset %d has no path", d);
    snprintf(ds->dir, sizeof ds->dir, "%s", L->o.paths[d]);
    WEFT_CHECK(weft_manifest_load(ds->dir, &ds->m));
    return index_split(ds, L->o.split, L->T, &L->n_shard_ids);
}

static int check_options(const weft_loader_options *o)
{
    if (o->n_datasets < 1 || o->n_datasets > WEFT_BLEND_MAX)
        return weft_error(WEFT_ECONFIG, "data: %d datasets; expected 1..%d", o->n_datasets, WEFT_BLEND_MAX);
    if (o->seq_len < 1 || o->seq_len > (1 << 28))
        return weft_error(WEFT_ECONFIG, "data: seq_len %" PRId64 "; expected 1..%d", o->seq_len, 1 << 28);
    if (o->dp_size < 1 || o->dp_rank < 0 || o->dp_rank >= o->dp_size)
        return weft_error(WEFT_ECONFIG, "data: data-parallel rank %d of %d is not a valid rank", o->dp_rank, o->dp_size);
    if (o->global_batch < 1 || o->global_batch % o->dp_size != 0)
        return weft_error(WEFT_ECONFIG, "data: global batch %" PRId64 " is not divisible by the data-parallel size %d; choose a global batch that is a multiple of %d",
                          o->global_batch, o->dp_size, o->dp_size);
    if (o->prefetch_depth < 1 || o->prefetch_depth > 1024)
        return weft_error(WEFT_ECONFIG, "data: prefetch depth %d; expected 1..1024", o->prefetch_depth);
    if (o->io_threads < 1 || o->io_threads > 256)
        return weft_error(WEFT_ECONFIG, "data: %d I/O threads; expected 1..256", o->io_threads);
    if (o->max_open_shards < 1 || o->max_open_shards > 65536)
        return weft_error(WEFT_ECONFIG, "data: max open shards %d; expected 1..65536", o->max_open_shards);
    if ((uint64_t)(o->global_batch / o->dp_size) * (uint64_t)(o->seq_len + 1) > (1ull << 34))
        return weft_error(WEFT_ECONFIG, "data: a batch of %" PRId64 " x %" PRId64 " tokens is too large for one rank",
                          o->global_batch / o->dp_size, o->seq_len + 1);
    return 0;
}

static int init_blend(weft_loader *L)
{
    double w[WEFT_BLEND_MAX];
    int any = 0;
    for (int d = 0; d < L->o.n_datasets; d++)
        any |= L->o.weights[d] != 0;
    for (int d = 0; d < L->o.n_datasets; d++)
        w[d] = any ? L->o.weights[d] : 1.0;
    int rc = weft_blend_init(&L->blend, w, L->o.n_datasets);
    if (rc < 0)
        return weft_error(WEFT_ECONFIG, "data.weights: %s", weft_last_error());
    return 0;
}

/* The stream id binds a saved position to everything that defines the
 * stream except B and D: datasets, split, weights, T, seed, shuffle. */
static void compute_ids(weft_loader *L)
{
    uint8_t b[16 + 24 * WEFT_BLEND_MAX], *p = b;
    for (int d = 0; d < L->o.n_datasets; d++, p += 16) {
        weft_le_put64(p, L->ds[d].m->hash);
        weft_le_put64(p + 8, L->blend.w[d]);
    }
    L->data_hash = L->o.n_datasets == 1 ? L->ds[0].m->hash : XXH3_64bits(b, (size_t)(p - b));
    weft_le_put64(p, (uint64_t)L->T);
    weft_le_put64(p + 8, L->o.seed);
    weft_le_put64(p + 16, (uint64_t)L->o.split | (uint64_t)L->o.shuffle << 8);
    L->stream_id = XXH3_64bits(b, (size_t)(p + 24 - b));
}

static int alloc_buffers(weft_loader *L)
{
    int depth = L->o.prefetch_depth;
    size_t row_bytes = (size_t)(L->T + 1) * 4;
    L->slots = calloc((size_t)depth, sizeof *L->slots);
    L->workers = calloc((size_t)L->o.io_threads, sizeof *L->workers);
    if (!L->slots || !L->workers)
        return weft_error(WEFT_ENOMEM, "data: no memory for loader buffers");
    for (int i = 0; i < depth; i++) {
        L->slots[i].tokens = malloc((size_t)L->rows * row_bytes);
        L->slots[i].reqs = calloc((size_t)L->rows, sizeof *L->slots[i].reqs);
        if (!L->slots[i].tokens || !L->slots[i].reqs)
            return weft_error(WEFT_ENOMEM, "data: no memory for %d prefetch buffers of %zu bytes",
                              depth, (size_t)L->rows * row_bytes);
    }
    return weft_reader_new(L->o.io_threads, L->o.max_open_shards, L->n_shard_ids, L->o.direct_io,
                           (size_t)L->T + 1, &L->reader);
}

static void *planner_main(void *arg);
static void *worker_main(void *arg);
static void stop_threads(weft_loader *L);

static int start_threads(weft_loader *L)
{
    atomic_store(&L->stop, false);
    int e = pthread_create(&L->planner, NULL, planner_main, L);
    if (e == 0)
        L->running = 1; /* planner + (running - 1) workers */
    for (int i = 0; e == 0 && i < L->o.io_threads; i++) {
        L->workers[i] = (worker){L, i, 0};
        e = pthread_create(&L->workers[i].thread, NULL, worker_main, &L->workers[i]);
        if (e == 0)
            L->running = 2 + i;
    }
    if (e == 0)
        return 0;
    stop_threads(L);
    return weft_error(WEFT_EINTERNAL, "data: cannot start the loader's threads: %s", strerror(e));
}

int weft_loader_open(const weft_loader_options *o, weft_loader **out)
{
    int rc;
    *out = NULL;
    WEFT_CHECK(check_options(o));
    weft_loader *L = calloc(1, sizeof *L);
    if (!L)
        return weft_error(WEFT_ENOMEM, "data: no memory for a loader");
    L->o = *o;
    /* paths may point into o->storage: re-point them at our copy. */
    for (int d = 0; d < o->n_datasets; d++)
        if (o->paths[d] >= o->storage && o->paths[d] < o->storage + sizeof o->storage)
            L->o.paths[d] = L->o.storage + (o->paths[d] - o->storage);
    L->T = o->seq_len;
    L->rows = o->global_batch / o->dp_size;
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv_ready, NULL);
    pthread_cond_init(&L->cv_free, NULL);
    pthread_cond_init(&L->cv_work, NULL);
    atomic_store(&L->cold, true);
    for (int d = 0; d < o->n_datasets; d++)
        WEFT_CHECK_GOTO(open_dataset(L, d), rc, fail);
    WEFT_CHECK_GOTO(init_blend(L), rc, fail);
    compute_ids(L);
    WEFT_CHECK_GOTO(alloc_buffers(L), rc, fail);
    WEFT_CHECK_GOTO(start_threads(L), rc, fail);
    *out = L;
    return 0;
fail:
    weft_loader_close(L);
    return rc;
}

/* ---- planner: locating samples ------------------------------------------ */

static shard_ref *find_shard(dataset *ds, uint64_t w)
{
    size_t lo = 0, hi = ds->n_shards;
    /* Last shard with first_window <= w (shards with no windows are skipped
     * because the next shard has the same first_window). */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (ds->shards[mid].first_window <= w)
            lo = mid;
        else
            hi = mid;
    }
    while (ds->shards[lo].windows == 0 || w >= ds->shards[lo].first_window + ds->shards[lo].windows)
        lo++; /* only reached past empty shards at equal first_window */
    return &ds->shards[lo];
}

static void locate(weft_loader *L, int d, uint64_t c, weft_read_req *q)
{
    dataset *ds = &L->ds[d];
    uint64_t epoch = c / ds->windows, p = c % ds->windows;
    if (L->o.shuffle) {
        if (L->shuf_epoch[d] != epoch + 1) {
            weft_shuffle_init(&L->shuf[d], ds->windows, L->o.seed, (uint64_t)d, epoch);
            L->shuf_epoch[d] = epoch + 1;
        }
        p = weft_shuffle_apply(&L->shuf[d], p);
    }
    shard_ref *r = find_shard(ds, p);
    q->shard = r->id;
    q->dir = ds->dir;
    q->m = ds->m;
    q->ms = r->ms;
    q->offset = WEFT_SHARD_HEADER_SIZE + (p - r->first_window) * (uint64_t)L->T * ds->m->token_width;
}

/* Walk one global batch from cursor c, keeping this rank's rows in s. */
static void plan_batch(weft_loader *L, cursor *c, slot *s)
{
    int64_t lo = (int64_t)L->o.dp_rank * L->rows, hi = lo + L->rows;
    for (int64_t i = 0; i < L->o.global_batch; i++) {
        int d = L->o.n_datasets > 1 ? weft_blend_pick(&L->blend, c->counts, c->pos) : 0;
        if (i >= lo && i < hi)
            locate(L, d, c->counts[d], &s->reqs[i - lo]);
        c->counts[d]++;
        c->pos++;
    }
}

/* ---- invariants ------------------------------------------------------------
 * The slot ring, with mu held (the consumer writes held and cons_step under
 * mu too, so any thread may check). With c = cons_step, p = plan_step and
 * D = prefetch_depth: the slots of steps [c, p) are FILLING or READY (in
 * that order of steps, each at step % D), the slot of step c - 1 is HELD
 * exactly when the consumer holds a batch (held points at it), every other
 * slot is FREE, so p - c + (held != NULL) <= D; a READY slot has no row left
 * to read; the planner has published p * rows rows and the workers have
 * claimed no more than that. */
static int loader_check(const weft_loader *L, const char *when)
{
    uint64_t D = (uint64_t)L->o.prefetch_depth, c = L->cons_step, p = L->plan_step;
    unsigned long long claimed = atomic_load(&L->next_row), planned = atomic_load(&L->planned_rows);
    uint64_t inuse = p - c + (L->held != NULL);
    if (c > p || inuse > D)
        return weft_error(WEFT_EINTERNAL, "loader (%s): consumer at step %llu, planner at %llu, %s batch held: "
                          "more than %llu slots in use", when, (unsigned long long)c, (unsigned long long)p,
                          L->held ? "a" : "no", (unsigned long long)D);
    if (planned != p * (uint64_t)L->rows || claimed > planned)
        return weft_error(WEFT_EINTERNAL, "loader (%s): %llu rows claimed, %llu published for %llu planned steps "
                          "of %lld rows", when, claimed, planned, (unsigned long long)p, (long long)L->rows);
    if (L->held && L->held != &L->slots[(c - 1) % D])
        return weft_error(WEFT_EINTERNAL, "loader (%s): the held batch is slot %td, not step %llu's", when,
                          L->held - L->slots, (unsigned long long)(c - 1));
    for (uint64_t i = 0; i < D; i++) {
        const slot *s = &L->slots[i];
        /* the step this slot holds, if any: the one in [c - held, p) that is i mod D */
        uint64_t lo = c - (L->held != NULL), k = lo + (i + D - lo % D) % D;
        int want_free = k >= p, held = L->held == s;
        if (held ? s->state != SLOT_HELD
                 : want_free ? s->state != SLOT_FREE : s->state != SLOT_FILLING && s->state != SLOT_READY)
            return weft_error(WEFT_EINTERNAL, "loader (%s): slot %llu is in state %d; expected %s (consumer at "
                              "step %llu, planner at %llu)", when, (unsigned long long)i, s->state,
                              held ? "HELD" : want_free ? "FREE" : "FILLING or READY", (unsigned long long)c,
                              (unsigned long long)p);
        if (s->state == SLOT_READY && atomic_load(&s->remaining) != 0)
            return weft_error(WEFT_EINTERNAL, "loader (%s): slot %llu is READY with %ld rows still to read", when,
                              (unsigned long long)i, atomic_load(&s->remaining));
    }
    return 0;
}

/* ---- planner and workers ------------------------------------------------- */

static void *planner_main(void *arg)
{
    weft_loader *L = arg;
    pthread_mutex_lock(&L->mu);
    while (!atomic_load(&L->stop)) {
        slot *s = &L->slots[L->plan_step % (uint64_t)L->o.prefetch_depth];
        if (s->state != SLOT_FREE) {
            pthread_cond_wait(&L->cv_free, &L->mu);
            continue;
        }
        pthread_mutex_unlock(&L->mu);
        plan_batch(L, &L->pc, s);
        s->after = L->pc;
        atomic_store(&s->remaining, (long)L->rows);
        atomic_store(&s->read_ns, 0);
        /* Every PROBE_EVERY-th batch goes unannounced, so its read time
         * tells whether the cache has warmed up (announced reads look fast
         * either way). */
        s->announced = atomic_load(&L->cold) && L->plan_step % PROBE_EVERY != 0;
        if (s->announced)
            weft_reader_announce(L->reader, s->reqs, (size_t)L->rows, (size_t)L->T + 1);
        pthread_mutex_lock(&L->mu);
        s->state = SLOT_FILLING;
        L->plan_step++;
        atomic_store(&L->planned_rows, L->plan_step * (uint64_t)L->rows);
        WEFT_INVARIANT(loader_check(L, "a batch planned"), "loader");
        pthread_cond_broadcast(&L->cv_work);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

/* Claim up to `chunk` published rows [*k, *k + *n); false when stopping.
 * Claiming a few rows at a time keeps the shared counter from bouncing
 * between cores on every row when many workers read a warm cache. */
static bool claim_rows(weft_loader *L, uint64_t chunk, uint64_t *k, uint64_t *n)
{
    for (;;) {
        if (atomic_load(&L->stop))
            return false;
        /* unsigned long long, the type atomic_ullong holds: uint64_t is
         * unsigned long here, which clang refuses as its expected value */
        unsigned long long next = atomic_load(&L->next_row);
        uint64_t planned = atomic_load(&L->planned_rows);
        if (next < planned) {
            uint64_t take = planned - next < chunk ? planned - next : chunk;
            if (atomic_compare_exchange_weak(&L->next_row, &next, next + take)) {
                *k = next;
                *n = take;
                return true;
            }
            continue;
        }
        pthread_mutex_lock(&L->mu);
        while (!atomic_load(&L->stop) && atomic_load(&L->next_row) >= atomic_load(&L->planned_rows))
            pthread_cond_wait(&L->cv_work, &L->mu);
        pthread_mutex_unlock(&L->mu);
    }
}

static void record_failure(weft_loader *L, uint64_t step, int rc)
{
    pthread_mutex_lock(&L->mu);
    if (!L->failed || step < L->fail_step) {
        L->failed = 1;
        L->fail_step = step;
        L->err_rc = rc;
        snprintf(L->err_msg, sizeof L->err_msg, "%s", weft_last_error());
    }
    pthread_cond_broadcast(&L->cv_ready);
    pthread_mutex_unlock(&L->mu);
}

/* The last row of a slot is in: hand it to the consumer. */
static void finish_slot(weft_loader *L, slot *s)
{
    /* A batch averaging more than COLD_NS per row came from the device; a
     * fast announced batch says nothing, so it leaves the guess alone. */
    bool slow = atomic_load(&s->read_ns) / L->rows > COLD_NS;
    if (slow || !s->announced)
        atomic_store(&L->cold, slow);
    pthread_mutex_lock(&L->mu);
    s->state = SLOT_READY;
    WEFT_INVARIANT(loader_check(L, "a batch read"), "loader");
    pthread_cond_broadcast(&L->cv_ready);
    pthread_mutex_unlock(&L->mu);
}

/* Account for `done` rows of step's slot read in `ns`; the last one in
 * hands the slot over. */
static void rows_done(weft_loader *L, uint64_t step, long done, int64_t ns)
{
    slot *s = &L->slots[step % (uint64_t)L->o.prefetch_depth];
    atomic_fetch_add(&s->read_ns, (long)ns);
    if (atomic_fetch_sub(&s->remaining, done) == done)
        finish_slot(L, s);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    weft_loader *L = w->L;
    uint64_t k, n, rows = (uint64_t)L->rows;
    uint64_t chunk = rows / (uint64_t)L->o.io_threads;
    size_t len = (size_t)L->T + 1;
    chunk = chunk < 1 ? 1 : chunk > 16 ? 16 : chunk;
    while (claim_rows(L, chunk, &k, &n)) {
        uint64_t step = k / rows;
        long done = 0;
        int64_t t0 = weft_now_ns();
        for (uint64_t r = k; r < k + n; r++) {
            if (r / rows != step) { /* the chunk crosses into the next batch */
                rows_done(L, step, done, weft_now_ns() - t0);
                step = r / rows;
                done = 0;
                t0 = weft_now_ns();
            }
            slot *s = &L->slots[step % (uint64_t)L->o.prefetch_depth];
            int rc = weft_reader_read(L->reader, w->id, &s->reqs[r % rows], len, s->tokens + (r % rows) * len);
            if (rc < 0) {
                /* A failed slot never becomes READY: next() reports it. */
                record_failure(L, step, rc);
                done = -1;
                break;
            }
            done++;
        }
        if (done > 0)
            rows_done(L, step, done, weft_now_ns() - t0);
    }
    return NULL;
}

/* ---- consumer ------------------------------------------------------------ */

static void release_held(weft_loader *L)
{
    if (!L->held)
        return;
    pthread_mutex_lock(&L->mu);
    L->held->state = SLOT_FREE;
    L->held = NULL;
    WEFT_INVARIANT(loader_check(L, "a batch released"), "loader");
    pthread_cond_signal(&L->cv_free);
    pthread_mutex_unlock(&L->mu);
}

int weft_loader_next(weft_loader *L, const int32_t **tokens)
{
    int64_t t0 = weft_now_ns();
    release_held(L);
    pthread_mutex_lock(&L->mu);
    slot *s = &L->slots[L->cons_step % (uint64_t)L->o.prefetch_depth];
    while (s->state != SLOT_READY && !(L->failed && L->fail_step <= L->cons_step))
        pthread_cond_wait(&L->cv_ready, &L->mu);
    int ready = s->state == SLOT_READY && !(L->failed && L->fail_step <= L->cons_step);
    if (ready) {
        s->state = SLOT_HELD;
        L->held = s;
        L->cons_step++;
        WEFT_INVARIANT(loader_check(L, "a batch taken"), "loader");
    }
    pthread_mutex_unlock(&L->mu);
    L->last_wait_ns = weft_now_ns() - t0;
    L->wait_ns += L->last_wait_ns;
    if (!ready)
        return weft_error(L->err_rc, "%s", L->err_msg);
    L->cc = s->after;
    *tokens = s->tokens;
    return 0;
}

/* ---- position, state ----------------------------------------------------- */

static void stop_threads(weft_loader *L)
{
    if (!L->running)
        return;
    pthread_mutex_lock(&L->mu);
    atomic_store(&L->stop, true);
    pthread_cond_broadcast(&L->cv_free);
    pthread_cond_broadcast(&L->cv_work);
    pthread_mutex_unlock(&L->mu);
    pthread_join(L->planner, NULL);
    for (int i = 0; i < L->running - 1; i++)
        pthread_join(L->workers[i].thread, NULL);
    L->running = 0;
}

/* Stop, reset the ring to start at cursor c, restart. */
static int restart_at(weft_loader *L, const cursor *c)
{
    stop_threads(L);
    for (int i = 0; i < L->o.prefetch_depth; i++)
        L->slots[i].state = SLOT_FREE;
    L->held = NULL;
    L->plan_step = L->cons_step = 0;
    atomic_store(&L->next_row, 0);
    atomic_store(&L->planned_rows, 0);
    L->failed = 0;
    L->err_rc = 0;
    L->pc = *c;
    L->cc = *c;
    WEFT_INVARIANT(loader_check(L, "a restart"), "loader");
    return start_threads(L);
}

size_t weft_loader_state_size(const weft_loader *L) { return 24 + 8 * (size_t)L->o.n_datasets; }

int weft_loader_save(const weft_loader *L, uint8_t *buf, size_t len)
{
    int k = L->o.n_datasets;
    if (len < weft_loader_state_size(L))
        return weft_error(WEFT_EINVAL, "data: loader state needs %zu bytes, buffer has %zu",
                          weft_loader_state_size(L), len);
    weft_le_put32(buf, STATE_MAGIC);
    weft_le_put32(buf + 4, STATE_VERSION | (uint32_t)k << 16);
    weft_le_put64(buf + 8, L->stream_id);
    weft_le_put64(buf + 16, L->cc.pos);
    for (int d = 0; d < k; d++)
        weft_le_put64(buf + 24 + 8 * d, L->cc.counts[d]);
    return 0;
}

static int decode_state(const weft_loader *L, const uint8_t *buf, size_t len, cursor *c)
{
    int k = L->o.n_datasets;
    uint64_t sum = 0;
    if (len < 24 || weft_le_get32(buf) != STATE_MAGIC)
        return weft_error(WEFT_EDATA, "loader state: expected %zu bytes starting with \"WLST\", found %zu bytes", weft_loader_state_size(L), len);
    uint32_t vk = weft_le_get32(buf + 4);
    if ((vk & 0xffff) != STATE_VERSION)
        return weft_error(WEFT_EDATA, "loader state at offset 4: expected version %d, found %u", STATE_VERSION, vk & 0xffff);
    if ((int)(vk >> 16) != k || len != weft_loader_state_size(L))
        return weft_error(WEFT_EDATA, "loader state at offset 6: expected %d datasets (%zu bytes), found %u (%zu bytes)",
                          k, weft_loader_state_size(L), vk >> 16, len);
    if (weft_le_get64(buf + 8) != L->stream_id)
        return weft_error(WEFT_EDATA, "loader state at offset 8: saved for a different stream (id %016" PRIx64 ", this loader %016" PRIx64 "): the datasets, weights, split, seq_len, seed or shuffle differ",
                          weft_le_get64(buf + 8), L->stream_id);
    memset(c, 0, sizeof *c);
    c->pos = weft_le_get64(buf + 16);
    for (int d = 0; d < k; d++) {
        c->counts[d] = weft_le_get64(buf + 24 + 8 * d);
        sum += c->counts[d];
    }
    if (sum != c->pos)
        return weft_error(WEFT_EDATA, "loader state: expected dataset counts summing to the position %" PRIu64 ", found %" PRIu64, c->pos, sum);
    return 0;
}

int weft_loader_restore(weft_loader *L, const uint8_t *buf, size_t len)
{
    cursor c;
    WEFT_CHECK(decode_state(L, buf, len, &c));
    return restart_at(L, &c);
}

int weft_loader_seek(weft_loader *L, uint64_t g)
{
    cursor c;
    memset(&c, 0, sizeof c);
    if (L->o.n_datasets == 1) {
        c.pos = c.counts[0] = g;
    } else {
        while (c.pos < g) {
            c.counts[weft_blend_pick(&L->blend, c.counts, c.pos)]++;
            c.pos++;
        }
    }
    return restart_at(L, &c);
}

int64_t weft_loader_rows(const weft_loader *L) { return L->rows; }
int64_t weft_loader_row_len(const weft_loader *L) { return L->T + 1; }
int64_t weft_loader_wait_ns(const weft_loader *L) { return L->wait_ns; }
int64_t weft_loader_last_wait_ns(const weft_loader *L) { return L->last_wait_ns; }
uint64_t weft_loader_position(const weft_loader *L) { return L->cc.pos; }
uint64_t weft_loader_dataset_hash(const weft_loader *L) { return L->data_hash; }
bool weft_loader_direct(const weft_loader *L) { return weft_reader_direct(L->reader); }

uint64_t weft_loader_samples(const weft_loader *L, int d)
{
    return d >= 0 && d < L->o.n_datasets ? L->ds[d].windows : 0;
}

uint64_t weft_loader_epoch(const weft_loader *L, int d)
{
    return d >= 0 && d < L->o.n_datasets ? L->cc.counts[d] / L->ds[d].windows : 0;
}

void weft_loader_close(weft_loader *L)
{
    if (!L)
        return;
    stop_threads(L);
    weft_reader_free(L->reader);
    for (int i = 0; L->slots && i < L->o.prefetch_depth; i++) {
        free(L->slots[i].tokens);
        free(L->slots[i].reqs);
    }
    for (int d = 0; d < L->o.n_datasets; d++) {
        weft_manifest_free(L->ds[d].m);
        free(L->ds[d].shards);
    }
    free(L->slots);
    free(L->workers);
    pthread_cond_destroy(&L->cv_ready);
    pthread_cond_destroy(&L->cv_free);
    pthread_cond_destroy(&L->cv_work);
    pthread_mutex_destroy(&L->mu);
    free(L);
}
