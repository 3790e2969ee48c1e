/*
 * watchdog.c -- heartbeat files and hang detection. See watchdog.h.
 *
 * Heartbeat file (run.dir/heartbeat/rank-N), one record per line:
 *   weft-heartbeat 1
 *   rank R SIZE
 *   pid P
 *   host H
 *   time WALL_SECONDS
 *   step S                      (steps completed; -1 before the first)
 *   comm ID SIZE POSTED OLDEST_PENDING OP AGE_S   (OLDEST_PENDING -1, OP -: none)
 *   raw AGE_S WHAT              (only while inside raw MPI: weft_watchdog_raw_begin)
 */
#include "collectives/watchdog.h"
#include "collectives/backend.h"
#include "runtime/durable.h"
#include "runtime/error.h"
#include "runtime/fault.h"
#include "runtime/log.h"
#include "runtime/runfiles.h"
#include "runtime/sched.h"
#include "runtime/timer.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct {
    weft_ctx *ctx;
    char dir[4096];
    double heartbeat_s, timeout_s;
    atomic_int running, quit, ending;
    pthread_t thread;
    pthread_mutex_t raw_mu; /* guards raw_what, raw_since_ns, raw_depth */
    char raw_what[512];
    int64_t raw_since_ns;
    int raw_depth;
} wd = {.raw_mu = PTHREAD_MUTEX_INITIALIZER};

void weft_watchdog_raw_begin(const char *what)
{
    pthread_mutex_lock(&wd.raw_mu);
    if (wd.raw_depth++ == 0) {
        snprintf(wd.raw_what, sizeof wd.raw_what, "%s", what);
        wd.raw_since_ns = weft_now_ns();
    }
    pthread_mutex_unlock(&wd.raw_mu);
}

void weft_watchdog_raw_end(void)
{
    pthread_mutex_lock(&wd.raw_mu);
    if (wd.raw_depth > 0 && --wd.raw_depth == 0)
        wd.raw_since_ns = 0;
    pthread_mutex_unlock(&wd.raw_mu);
}

/* Seconds this rank has been inside raw MPI (0: not inside), and what. */
static double raw_age(char *what, size_t len)
{
    pthread_mutex_lock(&wd.raw_mu);
    double age = wd.raw_since_ns ? 1e-9 * (double)(weft_now_ns() - wd.raw_since_ns) : 0;
    snprintf(what, len, "%s", wd.raw_what);
    pthread_mutex_unlock(&wd.raw_mu);
    return age;
}

/* --- publishing ------------------------------------------------------------- */

static void put_comm(weft_comm *c, void *arg)
{
    FILE *f = arg;
    uint64_t seq = 0;
    weft_op_kind op = WEFT_OP_BARRIER;
    int64_t age = 0;
    int pending = weft_flight_oldest_pending(c->flight, &seq, &op, &age);
    fprintf(f, "comm %s %d %llu %lld %s %.3f\n", c->id, c->size, (unsigned long long)weft_flight_next_seq(c->flight),
            pending ? (long long)seq : -1LL, pending ? weft_op_name(op) : "-", pending ? 1e-9 * (double)age : 0.0);
}

static void publish(void)
{
    char path[4200];
    weft_durable d;
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_HEARTBEAT_FMT, wd.dir, wd.ctx->rank);
    if (weft_durable_open(&d, path, WEFT_DURABLE_BEST_EFFORT) != 0)
        return; /* best effort: the next beat tries again */
    FILE *f = d.f;
    fprintf(f, "weft-heartbeat 1\nrank %d %d\npid %d\nhost %s\ntime %.3f\nstep %lld\n", wd.ctx->rank, wd.ctx->size,
            (int)getpid(), wd.ctx->host, weft_wall_s(), (long long)weft_sched_current_step());
    weft_comm_foreach_live(put_comm, f);
    char what[512];
    double raw = raw_age(what, sizeof what);
    if (raw > 0)
        fprintf(f, "raw %.3f %s\n", raw, what);
    weft_durable_commit(&d);
}

/* --- reading a peer's heartbeat ---------------------------------------------- */

typedef struct {
    int found, has_comm;
    double time;
    long long step, posted, pending;
    int pid;
    char host[64], op[32];
} peer;

static void read_peer(int world_rank, const char *id, peer *p)
{
    char path[4200], line[512], cid[96];
    memset(p, 0, sizeof *p);
    p->step = -1;
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_HEARTBEAT_FMT, wd.dir, world_rank);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    p->found = 1;
    while (fgets(line, sizeof line, f)) {
        int size;
        long long posted, pending;
        char op[32];
        if (sscanf(line, "time %lf", &p->time) == 1 || sscanf(line, "step %lld", &p->step) == 1 ||
            sscanf(line, "pid %d", &p->pid) == 1 || sscanf(line, "host %63s", p->host) == 1)
            continue;
        if (sscanf(line, "comm %95s %d %lld %lld %31s", cid, &size, &posted, &pending, op) == 5 &&
            strcmp(cid, id) == 0) {
            p->has_comm = 1;
            p->posted = posted;
            p->pending = pending;
            snprintf(p->op, sizeof p->op, "%s", op);
        }
    }
    fclose(f);
}

/* "0-3,5": members as ranges of world ranks. */
static void ranges(const int *r, int n, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used + 24 < len; i++) {
        int j = i;
        while (j + 1 < n && r[j + 1] == r[j] + 1)
            j++;
        used += (size_t)snprintf(buf + used, len - used, i ? ",%d" : "%d", r[i]);
        if (j > i)
            used += (size_t)snprintf(buf + used, len - used, "-%d", r[j]);
        i = j;
    }
}

/* --- the verdict --------------------------------------------------------------- */

/* Members other than this rank fall in three groups: alive but never
 * reached the operation (missing), silent -- heartbeat too old, so stopped,
 * hung or dead wherever it was (silent) -- and the rest (reached it, alive:
 * not listed). Each listed member also gets a line for the hang file. */
typedef struct {
    char missing[2048], silent[2048], missing_list[512], silent_list[512], peers[4096];
    int nmissing, nsilent;
} verdict;

static void add(char *text, size_t tlen, char *list, size_t llen, int *n, int rank, const char *what)
{
    size_t u = strlen(text), l = strlen(list);
    if (*n < 8)
        snprintf(text + u, tlen - u, "%s%s", *n ? "; " : "", what);
    snprintf(list + l, llen - l, "%s%d", *n ? "," : "", rank);
    (*n)++;
}

static void add_peer(verdict *v, int w, const char *status, const peer *p, double age)
{
    size_t u = strlen(v->peers);
    snprintf(v->peers + u, sizeof v->peers - u, "peer %d %s %s %d %lld %lld %.1f\n", w, status,
             p->host[0] ? p->host : "?", p->pid, p->step, p->posted - 1, age);
}

/* A live rank rewrites its file every heartbeat; one older than two and a
 * half (with slack for a loaded machine) is not running. */
static double stale_s(void) { return 2.5 * wd.heartbeat_s + 0.5; }

static void judge_one(const weft_comm *c, uint64_t seq, int w, verdict *v)
{
    double now = weft_wall_s(), stale = stale_s();
    char what[400];
    peer p;
    read_peer(w, c->id, &p);
    double age = now - p.time;
    if (!p.found || !p.has_comm) {
        snprintf(what, sizeof what, "rank %d (%s)", w, p.found ? "its heartbeat lists no such communicator"
                                                               : "no heartbeat file: not started, or run.dir not "
                                                                 "shared between nodes");
        add(v->silent, sizeof v->silent, v->silent_list, sizeof v->silent_list, &v->nsilent, w, what);
        add_peer(v, w, "unknown", &p, -1);
    } else if (age > stale) {
        snprintf(what, sizeof what, "rank %d (%s pid %d: silent for %.1f s, stopped, hung or dead; last heard at "
                 "step %lld, operation #%lld%s)", w, p.host, p.pid, age, p.step, p.posted - 1,
                 (uint64_t)p.posted > seq ? ", this one" : "");
        add(v->silent, sizeof v->silent, v->silent_list, sizeof v->silent_list, &v->nsilent, w, what);
        add_peer(v, w, "silent", &p, age);
    } else if ((uint64_t)p.posted <= seq) {
        snprintf(what, sizeof what, "rank %d (%s pid %d: alive at step %lld, its last operation #%lld%s)", w, p.host,
                 p.pid, p.step, p.posted - 1, p.pending >= 0 ? ", itself waiting on an earlier one" : "");
        add(v->missing, sizeof v->missing, v->missing_list, sizeof v->missing_list, &v->nmissing, w, what);
        add_peer(v, w, "missing", &p, age);
    }
}

static void judge(const weft_comm *c, uint64_t seq, verdict *v)
{
    memset(v, 0, sizeof *v);
    for (int i = 0; i < c->size; i++)
        if (i != c->rank)
            judge_one(c, seq, c->world_ranks[i], v);
}

/* run.dir/hang-rN.txt for an operation `op` #seq of communicator `id`
 * (world ranks `members`), pending for pending_s. */
static void write_hang_record(const char *id, const char *members, uint64_t seq, double pending_s, const verdict *v,
                              const char *op)
{
    char path[4200];
    weft_durable d;
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_HANG_FMT, wd.dir, wd.ctx->rank);
    /* The waiting thread and the watchdog may both give up at once: each
     * writes its own temporary name (runtime/durable.h). */
    if (weft_durable_open(&d, path, WEFT_DURABLE_SYNC) != 0) {
        WEFT_WARN("hang record: %s", weft_last_error());
        return;
    }
    FILE *f = d.f;
    fprintf(f, "weft-hang 1\nrank %d\nhost %s\ntime %.3f\nstep %lld\ncomm %s\nmembers %s\nseq %llu\nop %s\n"
               "pending_s %.3f\ntimeout_s %g\nmissing %s\nsilent %s\n%s",
            wd.ctx->rank, wd.ctx->host, weft_wall_s(), (long long)weft_sched_current_step(), id, members,
            (unsigned long long)seq, op, pending_s, wd.timeout_s, v->missing_list, v->silent_list, v->peers);
    if (weft_durable_commit(&d) != 0)
        WEFT_WARN("hang record: %s", weft_last_error());
}

static void write_hang(const weft_comm *c, uint64_t seq, double pending_s, const verdict *v, const char *op)
{
    char members[1024];
    ranges(c->world_ranks, c->size, members, sizeof members);
    write_hang_record(c->id, members, seq, pending_s, v, op);
}

void weft_watchdog_explain(const weft_comm *c, uint64_t seq, weft_op_kind op, double pending_s, char *buf, size_t len)
{
    if (!atomic_load(&wd.running))
        return;
    verdict v;
    judge(c, seq, &v);
    size_t u = strlen(buf);
    if (v.nmissing)
        u += (size_t)snprintf(buf + u, len > u ? len - u : 0, "; never reached it: %s%s", v.missing,
                              v.nmissing > 8 ? " and more" : "");
    if (v.nsilent && u < len)
        u += (size_t)snprintf(buf + u, len - u, "; silent: %s%s", v.silent, v.nsilent > 8 ? " and more" : "");
    if (!v.nmissing && !v.nsilent && u < len)
        snprintf(buf + u, len - u, "; by their heartbeats every member reached it and is alive (a transport "
                                   "stall?)");
    write_hang(c, seq, pending_s, &v, weft_op_name(op));
}

/* --- the thread ----------------------------------------------------------------- */

typedef struct {
    double limit_s;
    char message[4096];
    int hung;
} scan;

static void check_comm(weft_comm *c, void *arg)
{
    scan *s = arg;
    uint64_t seq;
    weft_op_kind op;
    int64_t age;
    if (s->hung || !weft_flight_oldest_pending(c->flight, &seq, &op, &age))
        return;
    int64_t unheld = weft_now_ns() - weft_fault_held_since(); /* a test's hold_* fault parks this rank */
    if (unheld < age)
        age = unheld;
    if (1e-9 * (double)age <= s->limit_s)
        return;
    s->hung = 1;
    snprintf(s->message, sizeof s->message,
             "watchdog: %s #%llu on communicator '%s' (%d ranks) pending for %.1f s (comm.timeout = %g s)",
             weft_op_name(op), (unsigned long long)seq, c->id, c->size, 1e-9 * (double)age, wd.timeout_s);
    weft_watchdog_explain(c, seq, op, 1e-9 * (double)age, s->message, sizeof s->message);
}

/* Inside raw MPI for longer than limit_s: the world's silent ranks, if
 * any, into s (the job cannot go on without them). */
static void check_raw(scan *s)
{
    char what[512], text[400], members[32];
    double age = raw_age(what, sizeof what), now = weft_wall_s();
    if (age <= s->limit_s)
        return;
    verdict v;
    memset(&v, 0, sizeof v);
    for (int w = 0; w < wd.ctx->size; w++) {
        peer p;
        if (w == wd.ctx->rank)
            continue;
        read_peer(w, "", &p);
        /* Silent for a whole comm.timeout, not the heartbeat's staleness
         * rule: a heartbeat a few seconds late on a loaded node must not end
         * a save that is merely slow. */
        double quiet = now - p.time;
        if (p.found && quiet <= wd.timeout_s)
            continue;
        snprintf(text, sizeof text, "rank %d (%s pid %d: %s%.1f s, stopped, hung or dead; last heard at step %lld)",
                 w, p.host[0] ? p.host : "?", p.pid, p.found ? "silent for " : "no heartbeat file, ",
                 p.found ? quiet : 0.0, p.step);
        add(v.silent, sizeof v.silent, v.silent_list, sizeof v.silent_list, &v.nsilent, w, text);
        add_peer(&v, w, "silent", &p, p.found ? quiet : -1);
    }
    if (v.nsilent == 0)
        return; /* slow, not stuck: every rank is alive */
    s->hung = 1;
    snprintf(s->message, sizeof s->message, "watchdog: this rank has waited %.1f s inside %s (raw MPI, which "
             "weft's communicators do not see; comm.timeout = %g s); silent: %s%s", age, what, wd.timeout_s,
             v.silent, v.nsilent > 8 ? " and more" : "");
    /* weft-doctor reads it as any hang: the "communicator" is the world's
     * raw MPI, the operation "raw" */
    snprintf(members, sizeof members, wd.ctx->size > 1 ? "0-%d" : "0", wd.ctx->size - 1);
    write_hang_record("raw-mpi", members, 0, age, &v, "raw");
}

static void *watchdog_main(void *arg)
{
    (void)arg;
    /* The thread waiting on an operation reports its timeout first; the
     * watchdog catches what nobody waits on, a little later. */
    double period = wd.heartbeat_s < wd.timeout_s / 4 ? wd.heartbeat_s : wd.timeout_s / 4;
    double grace = 2 * period > 1 ? 2 * period : 1, next_beat = 0;
    while (!atomic_load(&wd.quit)) {
        double now = 1e-9 * (double)weft_now_ns();
        if (now >= next_beat) {
            publish();
            next_beat = now + wd.heartbeat_s;
        }
        scan s = {.limit_s = wd.timeout_s + grace};
        weft_comm_foreach_live(check_comm, &s);
        if (!s.hung)
            check_raw(&s);
        if (s.hung)
            weft_abort("%s", s.message);
        struct timespec ts = {(time_t)period, (long)((period - (double)(time_t)period) * 1e9)};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* A run directory reused by a new attempt (a requeue, a resume) must not
 * keep the last attempt's verdicts: each rank removes its own hang record,
 * rank 0 the heartbeats of ranks this attempt does not have. */
static void forget_previous_attempt(weft_ctx *ctx, const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_HANG_FMT, dir, ctx->rank);
    unlink(path);
    if (ctx->rank != 0)
        return;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        int r;
        if (weft_runfile_rank(e->d_name, WEFT_RUNFILE_HANG_FMT, &r) && r >= ctx->size) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    if (d)
        closedir(d);
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_HEARTBEAT_DIR, dir);
    d = opendir(path);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        int r;
        if (weft_runfile_rank(e->d_name, WEFT_RUNFILE_HEARTBEAT_NAME, &r) && r >= ctx->size) {
            snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_HEARTBEAT_DIR "/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

/* A rank that aborts says so once more: its heartbeat then holds the step
 * it reached, not the one of up to sched.heartbeat earlier, and weft-doctor
 * can tell the ranks that aborted from a killed one (whose file is older). */
static void publish_on_abort(void *arg)
{
    (void)arg;
    if (atomic_load(&wd.running))
        publish();
}

/* weft_finalize's hook: MPI_Finalize is raw MPI like HDF5's calls. */
static void on_finalize(int after)
{
    if (!atomic_load(&wd.running))
        return;
    if (!after) {
        weft_watchdog_raw_begin("MPI_Finalize, the job's end");
        return;
    }
    weft_watchdog_raw_end();
    weft_watchdog_stop();
}

void weft_watchdog_end_run(void)
{
    if (atomic_load(&wd.running))
        atomic_store(&wd.ending, 1);
}

int weft_watchdog_start(weft_ctx *ctx, const char *dir, double heartbeat_s, double timeout_s)
{
    static atomic_int hooked;
    if (atomic_load(&wd.running) && atomic_load(&wd.ending))
        weft_watchdog_stop(); /* the last run's, waiting for MPI_Finalize */
    if (atomic_load(&wd.running))
        return weft_error(WEFT_ESTATE, "the watchdog is already running");
    if (heartbeat_s <= 0 || timeout_s <= 0)
        return weft_error(WEFT_EINVAL, "watchdog: heartbeat (%g s) and timeout (%g s) must be positive", heartbeat_s,
                          timeout_s);
    wd.ctx = ctx;
    snprintf(wd.dir, sizeof wd.dir, "%s", dir);
    /* A silent rank is told from a live one by its heartbeat's age, which
     * must be judged well within comm.timeout. */
    wd.heartbeat_s = heartbeat_s < timeout_s / 4 ? heartbeat_s : timeout_s / 4;
    wd.timeout_s = timeout_s;
    char hb[4200];
    snprintf(hb, sizeof hb, "%s/" WEFT_RUNFILE_HEARTBEAT_DIR, dir);
    if ((mkdir(dir, 0750) != 0 && errno != EEXIST) || (mkdir(hb, 0750) != 0 && errno != EEXIST))
        return weft_error(WEFT_EIO, "cannot create %s: %s", hb, strerror(errno));
    forget_previous_attempt(ctx, dir);
    if (!atomic_exchange(&hooked, 1)) {
        WEFT_CHECK(weft_at_abort(publish_on_abort, NULL));
        weft_at_finalize(on_finalize);
    }
    atomic_store(&wd.quit, 0);
    publish();
    if (pthread_create(&wd.thread, NULL, watchdog_main, NULL) != 0)
        return weft_error(WEFT_EINTERNAL, "cannot start the watchdog thread");
    atomic_store(&wd.running, 1);
    return 0;
}

void weft_watchdog_stop(void)
{
    if (!atomic_load(&wd.running))
        return;
    atomic_store(&wd.quit, 1);
    pthread_join(wd.thread, NULL);
    atomic_store(&wd.running, 0);
    atomic_store(&wd.ending, 0);
    publish(); /* the final state: every operation done */
}
