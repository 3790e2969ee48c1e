/*
 * fault.c -- the fault registry (fault.h): WEFT_FAULT parsed into a short
 * list once, then matched at each point the library reaches.
 *
 * The list is written by weft_fault_set before any thread starts and only
 * read after, so points need no lock; the hit counters (points reached
 * with n = -1, from the training and checkpoint-writer threads) and a
 * fault's "fired" mark are atomics.
 */
#include "runtime/fault.h"
#include "runtime/error.h"
#include "runtime/log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ACT_HOLD waits for a step (hold_save); ACT_WAIT for the test's release
 * file (the other hold_* faults). */
typedef enum { ACT_KILL, ACT_STALL, ACT_SIGNAL, ACT_VALUE, ACT_ARG, ACT_HOLD, ACT_WAIT } action;

/* One name: the point it fires at, what it does, the value it returns. An
 * ACT_ARG fault returns its arg (slow_step's milliseconds) at every hit. */
typedef struct {
    const char *name;
    weft_fault_point point;
    action act;
    int value;
} fault_kind;

static const fault_kind kinds[] = {
    {"kill_start", WEFT_FAULT_START, ACT_KILL, 0},
    {"stall_start", WEFT_FAULT_START, ACT_STALL, 0},
    {"kill_step", WEFT_FAULT_STEP, ACT_KILL, 0},
    {"stall_step", WEFT_FAULT_STEP, ACT_STALL, 0},
    {"usr1_step", WEFT_FAULT_STEP, ACT_SIGNAL, SIGUSR1},
    {"kill_eval", WEFT_FAULT_EVAL, ACT_KILL, 0},
    {"stall_eval", WEFT_FAULT_EVAL, ACT_STALL, 0},
    {"kill_save_data", WEFT_FAULT_SAVE_DATA, ACT_KILL, 0},
    {"stall_save_data", WEFT_FAULT_SAVE_DATA, ACT_STALL, 0},
    {"kill_save_commit", WEFT_FAULT_SAVE_COMMIT, ACT_KILL, 0},
    {"stall_save_commit", WEFT_FAULT_SAVE_COMMIT, ACT_STALL, 0},
    {"kill_save_latest", WEFT_FAULT_SAVE_LATEST, ACT_KILL, 0},
    {"stall_save_latest", WEFT_FAULT_SAVE_LATEST, ACT_STALL, 0},
    {"kill_resume", WEFT_FAULT_RESUME, ACT_KILL, 0},
    {"stall_resume", WEFT_FAULT_RESUME, ACT_STALL, 0},
    {"kill_op", WEFT_FAULT_OP_POSTED, ACT_KILL, 0},
    {"stall_op", WEFT_FAULT_OP_POSTED, ACT_STALL, 0},
    {"enospc_save", WEFT_FAULT_SAVE_WRITE, ACT_VALUE, ENOSPC},
    {"eio_save", WEFT_FAULT_SAVE_WRITE, ACT_VALUE, EIO},
    {"short_save", WEFT_FAULT_SAVE_SHORT, ACT_VALUE, 1},
    {"lost_save", WEFT_FAULT_SAVE_LOST, ACT_VALUE, 1},
    {"enospc_file", WEFT_FAULT_FILE_WRITE, ACT_VALUE, ENOSPC},
    {"eio_file", WEFT_FAULT_FILE_WRITE, ACT_VALUE, EIO},
    {"nan_step", WEFT_FAULT_LOSS, ACT_VALUE, 1},
    {"drop_tp_grad", WEFT_FAULT_TP_GRAD, ACT_VALUE, 1},
    {"close_tcp", WEFT_FAULT_TCP_SEND, ACT_VALUE, 1},
    {"slow_step", WEFT_FAULT_STEP_DELAY, ACT_ARG, 0},
    {"hold_save", WEFT_FAULT_SAVE_HOLD, ACT_HOLD, 0},
    {"kill_end", WEFT_FAULT_END, ACT_KILL, 0},
    {"stall_end", WEFT_FAULT_END, ACT_STALL, 0},
    {"kill_finalize", WEFT_FAULT_FINALIZE, ACT_KILL, 0},
    {"stall_finalize", WEFT_FAULT_FINALIZE, ACT_STALL, 0},
    {"kill_save_open", WEFT_FAULT_SAVE_OPEN, ACT_KILL, 0},
    {"stall_save_open", WEFT_FAULT_SAVE_OPEN, ACT_STALL, 0},
    {"kill_drain", WEFT_FAULT_DRAIN_COPY, ACT_KILL, 0},
    {"stall_drain", WEFT_FAULT_DRAIN_COPY, ACT_STALL, 0},
    {"hold_drain", WEFT_FAULT_DRAIN_COPY, ACT_WAIT, 0},
    {"fail_drain", WEFT_FAULT_DRAIN_TRY, ACT_VALUE, EIO},
    {"hold_grad", WEFT_FAULT_GRAD_REDUCE, ACT_WAIT, 0},
};
#define NKINDS (int)(sizeof kinds / sizeof kinds[0])
#define MAX_FAULTS 16

typedef struct {
    const fault_kind *kind;
    int64_t arg;  /* -1: none given */
    int rank;     /* -1: every rank */
    int fired;    /* a kill or stall acts once (atomic) */
    int logged;   /* a value fault is logged once (atomic) */
    char text[64]; /* the entry as given, for the log */
} fault;

static fault faults[MAX_FAULTS];
static int nfaults;
static int any_at[WEFT_FAULT_NPOINTS]; /* a fault for this rank waits at the point */
static int64_t hits[WEFT_FAULT_NPOINTS];
static int64_t step_begun; /* the last step the training loop began (atomic; for hold_save, hold_grad) */
static int my_rank;
static char hold_dir[4096] = ".";
static int64_t held_since; /* weft_fault_held_since (atomic); INT64_MAX while held */

const char *weft_fault_names(void)
{
    static char buf[1024];
    if (!buf[0])
        for (int i = 0; i < NKINDS; i++)
            snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? ", " : "", kinds[i].name);
    return buf;
}

static int bad(const char *entry, const char *why)
{
    return weft_error(WEFT_ECONFIG, "WEFT_FAULT: '%s' %s; the syntax is name[:arg][@rank],... with names %s "
                      "(docs/operations.md, \"Fault injection\")", entry, why, weft_fault_names());
}

/* A non-negative decimal filling all of s. */
static int number(const char *s, int64_t *out)
{
    if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 15)
        return -1;
    *out = strtoll(s, NULL, 10);
    return 0;
}

static int parse_one(const char *entry, fault *f)
{
    char name[64];
    if (strlen(entry) >= sizeof name)
        return bad(entry, "is too long");
    snprintf(name, sizeof name, "%s", entry);
    snprintf(f->text, sizeof f->text, "%s", entry);
    f->arg = -1;
    f->rank = -1;
    char *at = strchr(name, '@'), *colon = strchr(name, ':');
    int64_t v;
    if (at) {
        *at = '\0';
        if (number(at + 1, &v) != 0)
            return bad(entry, "has a rank that is not a number (after '@')");
        f->rank = (int)v;
    }
    if (colon) {
        *colon = '\0';
        if (number(colon + 1, &v) != 0)
            return bad(entry, "has an argument that is not a non-negative number (after ':')");
        f->arg = v;
    }
    for (int i = 0; i < NKINDS; i++)
        if (strcmp(name, kinds[i].name) == 0)
            f->kind = &kinds[i];
    if (!f->kind)
        return bad(entry, "is not a fault name");
    if ((f->kind->act == ACT_ARG || f->kind->act == ACT_HOLD) && f->arg < 0)
        return bad(entry, f->kind->act == ACT_ARG ? "needs an argument (milliseconds)" : "needs an argument (a step)");
    return 0;
}

int weft_fault_set(const char *spec, int rank)
{
    nfaults = 0;
    memset(faults, 0, sizeof faults);
    memset(any_at, 0, sizeof any_at);
    memset(hits, 0, sizeof hits);
    step_begun = 0;
    held_since = 0;
    my_rank = rank;
    if (!spec || !*spec)
        return 0;
    char buf[1024];
    if (strlen(spec) >= sizeof buf)
        return weft_error(WEFT_ECONFIG, "WEFT_FAULT is longer than %zu characters", sizeof buf - 1);
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL;
    for (char *e = strtok_r(buf, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
        if (nfaults == MAX_FAULTS)
            return weft_error(WEFT_ECONFIG, "WEFT_FAULT: more than %d faults", MAX_FAULTS);
        fault f = {0};
        int rc = parse_one(e, &f);
        if (rc) {
            nfaults = 0;
            memset(any_at, 0, sizeof any_at);
            return rc;
        }
        faults[nfaults++] = f;
        if (f.rank < 0 || f.rank == rank)
            any_at[f.kind->point] = 1;
        if (f.kind->act == ACT_HOLD || f.kind->point == WEFT_FAULT_GRAD_REDUCE) /* they need the loop's step */
            any_at[WEFT_FAULT_STEP] = 1;
    }
    for (int i = 0; i < nfaults; i++) /* entries for other ranks can never fire here */
        if (faults[i].rank >= 0 && faults[i].rank != rank)
            faults[i].fired = 1;
    return 0;
}

int weft_fault_init(int rank) { return weft_fault_set(getenv("WEFT_FAULT"), rank); }

/* The wall-clock time in the log lines: a test measures how long the job
 * took to end after the fault, not after its launch. */
static double unix_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A kill, stall or signal: say so first (the log names rank and fault, so
 * a test can tell an injected death from a real one), then do it. The
 * signal goes to the process, as a scheduler's would. */
static void act(fault *f, int64_t n)
{
    int sig = f->kind->act == ACT_KILL ? SIGKILL : f->kind->act == ACT_STALL ? SIGSTOP : f->kind->value;
    const char *name = sig == SIGKILL ? "SIGKILL" : sig == SIGSTOP ? "SIGSTOP" : sig == SIGUSR1 ? "SIGUSR1" : "a signal";
    WEFT_WARN("fault injected: %s (WEFT_FAULT) at %s %lld: %s to this process (unix time %.3f)", f->text,
              f->kind->name, (long long)n, name, unix_time());
    fflush(stdout);
    fflush(stderr);
    kill(getpid(), sig);
}

/* hold_save: wait for the training loop to begin step `until`. It polls the
 * condition (every millisecond), not a time; the 10-minute bound only keeps
 * a test's mistake (a step the run never reaches) from hanging the job. */
static void hold(const fault *f, int64_t n)
{
    WEFT_INFO("fault injected: %s (WEFT_FAULT): the save of step %lld waits for step %lld to begin", f->text,
              (long long)n, (long long)f->arg);
    for (long i = 0; i < 600000 && __atomic_load_n(&step_begun, __ATOMIC_ACQUIRE) < f->arg; i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
}

void weft_fault_set_dir(const char *dir) { snprintf(hold_dir, sizeof hold_dir, "%s", dir && *dir ? dir : "."); }

/* weft_now_ns's clock (runtime/timer.c), without linking the timers into
 * the small programs (fuzzers) that take this file alone. */
static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t weft_fault_held_since(void)
{
    int64_t t = __atomic_load_n(&held_since, __ATOMIC_ACQUIRE);
    return t == INT64_MAX ? mono_ns() : t;
}

/* A hold_* handshake (fault.h): announce, then wait for the test's release
 * file -- polled every 10 ms, bounded by 10 minutes so that a test's mistake
 * cannot park a job for ever -- or for cancelled(arg). 0, or ECANCELED. */
static int wait_release(const fault *f, int64_t n, int (*cancelled)(void *), void *arg)
{
    char held[4200], release[4200];
    snprintf(held, sizeof held, "%s/fault-held-r%d", hold_dir, my_rank);
    snprintf(release, sizeof release, "%s/fault-release-r%d", hold_dir, my_rank);
    __atomic_store_n(&held_since, INT64_MAX, __ATOMIC_RELEASE);
    WEFT_WARN("fault injected: %s (WEFT_FAULT) at %s %lld: held until %s exists (unix time %.3f)", f->text,
              f->kind->name, (long long)n, release, unix_time());
    int fd = open(held, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd >= 0) {
        dprintf(fd, "%s %lld %d\n", f->text, (long long)n, (int)getpid());
        close(fd);
    } else {
        WEFT_WARN("fault %s: cannot create %s: %s (a test waiting for it will time out)", f->text, held,
                  strerror(errno));
    }
    int rc = ETIMEDOUT;
    for (long i = 0; i < 60000 && rc == ETIMEDOUT; i++)
        if (access(release, F_OK) == 0)
            rc = 0;
        else if (cancelled && cancelled(arg))
            rc = ECANCELED;
        else
            nanosleep(&(struct timespec){0, 10000000}, NULL);
    unlink(held);
    unlink(release);
    __atomic_store_n(&held_since, mono_ns(), __ATOMIC_RELEASE);
    WEFT_INFO("fault %s: %s", f->text, rc == 0 ? "released, going on" : rc == ECANCELED ? "abandoned (cancelled)"
                                                                                       : "never released in 10 minutes, going on");
    return rc == ECANCELED ? rc : 0;
}

int weft_fault_at(weft_fault_point p, int64_t n) { return weft_fault_at_or(p, n, NULL, NULL); }

int weft_fault_at_or(weft_fault_point p, int64_t n, int (*cancelled)(void *), void *arg)
{
    if (!any_at[p])
        return 0;
    if (p == WEFT_FAULT_STEP)
        __atomic_store_n(&step_begun, n, __ATOMIC_RELEASE);
    if (n < 0 && p == WEFT_FAULT_GRAD_REDUCE)
        n = __atomic_load_n(&step_begun, __ATOMIC_ACQUIRE);
    if (n < 0)
        n = __atomic_add_fetch(&hits[p], 1, __ATOMIC_RELAXED);
    for (int i = 0; i < nfaults; i++) {
        fault *f = &faults[i];
        if (f->kind->point != p || __atomic_load_n(&f->fired, __ATOMIC_RELAXED))
            continue;
        if (f->kind->act == ACT_ARG)
            return (int)f->arg;
        if (f->kind->act == ACT_HOLD) {
            hold(f, n);
            continue;
        }
        if (f->arg >= 0 && f->arg != n)
            continue;
        if (f->kind->act == ACT_VALUE) {
            if (__atomic_exchange_n(&f->logged, 1, __ATOMIC_RELAXED) == 0)
                WEFT_WARN("fault injected: %s (WEFT_FAULT) at %s %lld (unix time %.3f)", f->text, f->kind->name,
                          (long long)n, unix_time());
            return f->kind->value;
        }
        if (__atomic_exchange_n(&f->fired, 1, __ATOMIC_RELAXED) != 0)
            continue;
        if (f->kind->act == ACT_WAIT)
            return wait_release(f, n, cancelled, arg);
        act(f, n);
    }
    return 0;
}
