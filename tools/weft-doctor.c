/*
 * weft-doctor -- reads what a failed (or hung, or finished) run left in its
 * run directory and says what happened: which collective hung, which ranks
 * never reached it, which rank went silent first, the last step every rank
 * completed and the last committed checkpoint.
 *
 *   weft-doctor RUN_DIR
 *
 * Inputs, all written by weft-train (docs/operations.md): status.json (rank
 * 0's last report), hang-rN.txt (a rank's verdict when an operation
 * exceeded comm.timeout), heartbeat/rank-N (each rank's last heartbeat),
 * flight-rN.json (flight recorders, named for further reading). It only
 * reads; it never needs the job's communicators or MPI.
 *
 * Each rank that did not simply run to the end is named once, with the
 * evidence, as one of:
 *   killed        a survivor saw it die (status.json / hang record: "died"),
 *                 or its process is gone from this host while status.json
 *                 is not final, or it left no flight record when the
 *                 others aborted;
 *   stopped       its process is stopped now (state T), or it was silent
 *                 while others waited and was heard again after they gave
 *                 up (SIGSTOP then SIGCONT: alive, not dead);
 *   silent        named silent by a hang record (stopped, hung or dead), or
 *                 its heartbeat stopped well before the others';
 *   never arrived alive, but never reached the operation others waited in;
 *   no heartbeat  never started (or run.dir is not shared between nodes).
 * The last step every rank completed is one number: the lowest over ranks
 * of the highest step each rank is known to have finished (heartbeat file,
 * hang records' peer lines, status.json for rank 0); steps only grow, so
 * every source is a lower bound and the highest per rank is the best.
 */
#include "tools/rundir_read.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_RANKS 4096

typedef struct {
    int present, pid;
    double time;
    long long step;
    char host[64];
    long long known;   /* highest step it is known to have completed (-2: none) */
    int flight;        /* wrote flight-rN.json */
    int died, silent, missing, resumed;
    long long hang_step; /* its step in the first hang record's peer line (-2: none) */
} beat;

typedef struct {
    int present, rank;
    double time, pending_s, timeout_s;
    long long step, seq;
    char comm[96], members[1024], op[32], missing[512], silent[512], host[64];
    char peers[4096]; /* its "peer" lines: what it knew of each listed member */
} hang;

static beat beats[MAX_RANKS];
static int nbeats; /* highest rank seen + 1 */
static double hb_every = 1; /* sched.heartbeat from config.ini */
static char state[32];      /* status.json's state ("" without one) */
static int nranks;          /* the job's size, from the heartbeat files */

static void mark_died(const char *text);

static void usage(FILE *out)
{
    fprintf(out, "usage: weft-doctor RUN_DIR\n"
                 "       weft-doctor --config JOB.ini | --run.dir=DIR   (the job's run.dir)\n\n"
                 "Diagnoses a weft-train run from the files it left in RUN_DIR: the collective that\n"
                 "hung (hang-rN.txt), the ranks that never reached it, the rank whose heartbeat\n"
                 "stopped first (heartbeat/rank-N), the last step every rank completed and the\n"
                 "last committed checkpoint (status.json). Flight records: flight-rN.json.\n\n"
                 "exit status: 0 diagnosis printed, 64 bad usage, 66 RUN_DIR missing or holds no\n"
                 "weft run files\n");
}

static void read_beat(const char *path, int rank)
{
    FILE *f = fopen(path, "r");
    if (!f || rank < 0 || rank >= MAX_RANKS) {
        if (f)
            fclose(f);
        return;
    }
    beat *b = &beats[rank];
    char line[512];
    while (fgets(line, sizeof line, f)) {
        int r, size;
        if (sscanf(line, "rank %d %d", &r, &size) == 2 && size > nranks && size <= MAX_RANKS)
            nranks = size;
        if (sscanf(line, "time %lf", &b->time) == 1 || sscanf(line, "step %lld", &b->step) == 1 ||
            sscanf(line, "pid %d", &b->pid) == 1 || sscanf(line, "host %63s", b->host) == 1)
            continue;
    }
    fclose(f);
    b->present = b->time > 0;
    if (b->present && rank + 1 > nbeats)
        nbeats = rank + 1;
}

static void read_beats(const char *dir)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_HEARTBEAT_DIR, dir);
    DIR *d = opendir(path);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        int r;
        if (!weft_runfile_rank(e->d_name, WEFT_RUNFILE_HEARTBEAT_NAME, &r))
            continue;
        if (snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_HEARTBEAT_DIR "/%s", dir, e->d_name) >= (int)sizeof path)
            continue; /* a path too long to open */
        read_beat(path, r);
    }
    closedir(d);
}

static void hang_line(hang *h, const char *line)
{
    if (sscanf(line, "rank %d", &h->rank) == 1 || sscanf(line, "time %lf", &h->time) == 1 ||
        sscanf(line, "step %lld", &h->step) == 1 || sscanf(line, "comm %95s", h->comm) == 1 ||
        sscanf(line, "members %1023s", h->members) == 1 || sscanf(line, "seq %lld", &h->seq) == 1 ||
        sscanf(line, "op %31s", h->op) == 1 || sscanf(line, "pending_s %lf", &h->pending_s) == 1 ||
        sscanf(line, "timeout_s %lf", &h->timeout_s) == 1 || sscanf(line, "host %63s", h->host) == 1 ||
        sscanf(line, "missing %511s", h->missing) == 1 || sscanf(line, "silent %511s", h->silent) == 1)
        return;
    if (strncmp(line, "peer ", 5) == 0) {
        size_t u = strlen(h->peers);
        snprintf(h->peers + u, sizeof h->peers - u, "%s", line);
    }
}

/* The earliest hang record: the first rank to give up saw the cause. */
static void read_hangs(const char *dir, hang *first, int *count)
{
    DIR *d = opendir(dir);
    *count = 0;
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        int r;
        if (!weft_runfile_rank(e->d_name, WEFT_RUNFILE_HANG_FMT, &r))
            continue;
        char path[4300], line[1200];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue; /* a path too long to open */
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        hang h = {.present = 1};
        while (fgets(line, sizeof line, f))
            hang_line(&h, line);
        fclose(f);
        (*count)++;
        if (!first->present || h.time < first->time)
            *first = h;
    }
    closedir(d);
}

/* One "peer R STATUS HOST PID STEP LAST_OP AGE" line of a hang record. */
static void print_peer(const char *line)
{
    int r, pid;
    long long step, last;
    double age;
    char status[16], host[64];
    if (sscanf(line, "peer %d %15s %63s %d %lld %lld %lf", &r, status, host, &pid, &step, &last, &age) != 7)
        return;
    if (strcmp(status, "unknown") == 0)
        printf("    rank %d: no heartbeat file (never started, or run.dir not shared between nodes)\n", r);
    else if (strcmp(status, "silent") == 0)
        printf("    rank %d (%s, pid %d): silent for %.1f s -- stopped, hung or dead; then last heard at step %lld, "
               "operation #%lld\n", r, host, pid, age, step, last); /* "then": when the hang was recorded */
    else
        printf("    rank %d (%s, pid %d): then alive at step %lld but its last operation was #%lld\n", r, host, pid,
               step, last);
}

static void print_hang(const hang *h, int count)
{
    printf("hang: %s #%lld on communicator %s (world ranks %s) was pending %.1f s on rank %d (comm.timeout = %g s); "
           "%d rank%s gave up on it\n",
           h->op, h->seq, h->comm, h->members, h->pending_s, h->rank, h->timeout_s, count, count == 1 ? "" : "s");
    if (h->missing[0])
        printf("  never reached it (alive elsewhere): rank%s %s\n", strchr(h->missing, ',') ? "s" : "", h->missing);
    if (h->silent[0])
        printf("  silent (stopped, hung or dead): rank%s %s\n", strchr(h->silent, ',') ? "s" : "", h->silent);
    char peers[4096];
    snprintf(peers, sizeof peers, "%s", h->peers);
    for (char *save, *t = strtok_r(peers, "\n", &save); t; t = strtok_r(NULL, "\n", &save))
        print_peer(t);
    if (!h->missing[0] && !h->silent[0])
        printf("  every member reached it by its heartbeat: suspect the transport (network, shared memory)\n");
}

/* Prints rank 0's last report; *step: its steps completed (-2: none). */
static int print_status(const char *dir, long long *step)
{
    char path[4300], line[8192], msg[1024], ckpt[1024], job[64];
    *step = -2;
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_STATUS, dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    field_str(line, "state", state, sizeof state);
    field_str(line, "message", msg, sizeof msg);
    mark_died(msg);
    if (!isnan(field(line, "step")))
        *step = (long long)field(line, "step");
    field_str(line, "job_id", job, sizeof job);
    char *lc = strstr(line, "\"last_checkpoint\":{");
    ckpt[0] = '\0';
    if (lc)
        field_str(lc, "path", ckpt, sizeof ckpt);
    printf("job %s: %s at step %.0f of %.0f%s%s\n", job, state, field(line, "step"), field(line, "total_steps"),
           msg[0] ? ": " : "", msg);
    if (lc)
        printf("last checkpoint: step %.0f (%s)\n", field(lc, "step"), ckpt);
    else
        printf("last checkpoint: none committed\n");
    return 1;
}

/* --- evidence per rank ------------------------------------------------------ */

static void read_config(const char *dir)
{
    char path[4300], line[512], sec[64] = "";
    double v;
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_CONFIG, dir);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "[%63[^]]]", sec) != 1 && !strcmp(sec, "sched") && sscanf(line, "heartbeat = %lf", &v) == 1)
            hb_every = v;
    if (f)
        fclose(f);
}

/* Complete flight records (a rank killed mid-dump leaves only a .tmp). */
static void read_flights(const char *dir)
{
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        int r;
        if (weft_runfile_rank(e->d_name, WEFT_RUNFILE_FLIGHT_FMT, &r) && r < MAX_RANKS)
            beats[r].flight = 1;
    }
    if (d)
        closedir(d);
}

/* "rank N of 'COMM' ... died" in a survivor's message (collectives' shm,
 * tcp and ib backends say so when a peer's process disappears). */
static void mark_died(const char *text)
{
    for (const char *p = text; (p = strstr(p, "rank ")); p += 5) {
        int r, n = 0;
        if (sscanf(p, "rank %d of '%*[^']'%n", &r, &n) != 1 || n == 0 || r < 0 || r >= MAX_RANKS)
            continue;
        const char *end = strpbrk(p + n, ";\n\"");
        const char *d = strstr(p + n, "died");
        if (d && (!end || d < end))
            beats[r].died = 1;
    }
}

/* The first hang record's verdict on each peer; a silent peer heard from
 * again after that record (its heartbeat is newer) was stopped, not dead. */
static void apply_hang(const hang *h)
{
    char peers[4096];
    snprintf(peers, sizeof peers, "%s", h->peers);
    for (char *save, *t = strtok_r(peers, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
        int r, pid;
        long long step, last;
        double age;
        char status[16], host[64];
        if (sscanf(t, "peer %d %15s %63s %d %lld %lld %lf", &r, status, host, &pid, &step, &last, &age) != 7 ||
            r < 0 || r >= MAX_RANKS)
            continue;
        beat *b = &beats[r];
        b->hang_step = step;
        b->silent = !strcmp(status, "silent");
        b->missing = !strcmp(status, "missing");
        b->resumed = b->silent && b->present && b->time > h->time;
    }
    mark_died(h->peers);
}

/* Process state on this host: 'T' stopped, 'G' gone, 'R' there, 0 unknown
 * (another host, or no pid). */
static char process_state(const beat *b)
{
    char me[64] = "", path[64], buf[512];
    if (!b->present || b->pid <= 0 || gethostname(me, sizeof me) != 0 || strcmp(me, b->host) != 0)
        return 0;
    if (kill(b->pid, 0) != 0 && errno == ESRCH)
        return 'G';
    snprintf(path, sizeof path, "/proc/%d/stat", b->pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    return p && (p[2] == 'T' || p[2] == 't') ? 'T' : 'R';
}

/* Highest step each rank is known to have completed; every rank's, the
 * lowest of those. */
static long long last_good(long long status_step)
{
    long long low = -2;
    for (int r = 0; r < nbeats; r++) {
        beat *b = &beats[r];
        b->known = b->present ? b->step : -2;
        if (b->hang_step > b->known)
            b->known = b->hang_step;
        if (r == 0 && b->present && status_step > b->known) /* status.json: rank 0's steps completed */
            b->known = status_step;
        if (b->known >= -1 && (low == -2 || b->known < low))
            low = b->known;
    }
    return low;
}

static void print_last_good(long long status_step)
{
    long long low = last_good(status_step);
    if (low >= -1)
        printf("last step every rank completed: %lld (the lowest over %d rank%s of the highest step each is known "
               "to have completed)\n", low, nbeats, nbeats == 1 ? "" : "s");
}

/* One line per rank that did not simply run to the end. Returns how many. */
static int print_ranks(void)
{
    double newest = 0;
    int flights = 0, final = !strcmp(state, "done") || !strcmp(state, "failed") || !strcmp(state, "preempted");
    for (int r = 0; r < nbeats; r++) {
        newest = beats[r].present && beats[r].time > newest ? beats[r].time : newest;
        flights += beats[r].flight;
    }
    int n = 0, total = nranks > nbeats ? nranks : nbeats;
    for (int r = 0; r < total; r++) {
        beat *b = &beats[r];
        char what[512];
        char ps = process_state(b);
        if (!b->present)
            snprintf(what, sizeof what, "no heartbeat: never started (or run.dir is not shared between nodes)");
        else if (b->died)
            snprintf(what, sizeof what, "killed: another rank saw its process die; last heard at step %lld",
                     b->known);
        else if (ps == 'T')
            snprintf(what, sizeof what, "stopped: its process is stopped now (SIGSTOP); last heard at step %lld",
                     b->known);
        else if (b->resumed)
            snprintf(what, sizeof what, "stopped: silent from step %lld while the others waited, heard again after "
                     "they gave up (at step %lld) -- stopped (SIGSTOP) or descheduled, not dead", b->hang_step,
                     b->known);
        else if (b->silent)
            snprintf(what, sizeof what, "silent: stopped, hung or dead while the others waited; last heard at step "
                     "%lld", b->known);
        else if (ps == 'G' && !final)
            snprintf(what, sizeof what, "killed: its process is gone and status.json has no final state; last heard "
                     "at step %lld", b->known);
        else if (b->missing)
            snprintf(what, sizeof what, "never arrived: alive at step %lld but never reached the operation",
                     b->known);
        else if (flights && !b->flight && !strcmp(state, "failed"))
            snprintf(what, sizeof what, "killed: the others aborted and wrote flight records, it wrote none; last "
                     "heard at step %lld", b->known);
        else if (newest - b->time > 2 * hb_every + 0.5)
            snprintf(what, sizeof what, "silent: its heartbeat stopped %.1f s before the others' (killed, stopped "
                     "or hung); last heard at step %lld", newest - b->time, b->known);
        else
            continue;
        if (!n++)
            printf("ranks:\n");
        if (b->present)
            printf("    rank %d (%s, pid %d): %s\n", r, b->host, b->pid, what);
        else
            printf("    rank %d: %s\n", r, what);
    }
    if (!n && nbeats)
        printf("heartbeats: all %d rank%s reported until the end\n", nbeats, nbeats == 1 ? "" : "s");
    return n;
}

static void print_flights(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        int r;
        if (weft_runfile_rank(e->d_name, WEFT_RUNFILE_FLIGHT_FMT, &r))
            printf("%s %s/%s", n++ ? "," : "flight records:", dir, e->d_name);
    }
    closedir(d);
    if (n)
        printf("\n");
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    int as = run_dir_args("weft-doctor", argc, argv, usage, &dir);
    if (as >= 0)
        return as;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "weft-doctor: %s: %s\n", dir, errno ? strerror(errno) : "not a directory");
        return WEFT_EXIT_NOINPUT;
    }
    for (int r = 0; r < MAX_RANKS; r++)
        beats[r].hang_step = -2;
    read_config(dir);
    read_beats(dir);
    read_flights(dir);
    hang h = {0};
    int nhang;
    read_hangs(dir, &h, &nhang);
    long long status_step;
    int have_status = print_status(dir, &status_step);
    if (!have_status && !nbeats && !nhang) {
        fprintf(stderr, "weft-doctor: %s holds no weft run files (status.json, heartbeat/, hang-rN.txt)\n", dir);
        return WEFT_EXIT_NOINPUT;
    }
    if (nhang) {
        apply_hang(&h);
        print_hang(&h, nhang);
    }
    print_last_good(status_step);
    print_ranks();
    print_flights(dir);
    return WEFT_EXIT_OK;
}
