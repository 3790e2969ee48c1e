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
 */
#include "tools/runfiles.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

#define MAX_RANKS 4096

typedef struct {
    int present, pid;
    double time;
    long long step;
    char host[64];
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

static void usage(FILE *out)
{
    fprintf(out, "usage: weft-doctor RUN_DIR\n\n"
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
    snprintf(path, sizeof path, "%s/heartbeat", dir);
    DIR *d = opendir(path);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        int r;
        char tail;
        if (sscanf(e->d_name, "rank-%d%c", &r, &tail) != 1)
            continue;
        snprintf(path, sizeof path, "%s/heartbeat/%s", dir, e->d_name);
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
        char tail[8];
        if (sscanf(e->d_name, "hang-r%d.tx%7s", &r, tail) != 2 || strcmp(tail, "t") != 0)
            continue;
        char path[4300], line[1200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
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

static void describe_rank(int r, double at)
{
    const beat *b = r >= 0 && r < MAX_RANKS ? &beats[r] : NULL;
    if (!b || !b->present) {
        printf("    rank %d: no heartbeat file\n", r);
        return;
    }
    printf("    rank %d (%s, pid %d): last heartbeat %.1f s before, at step %lld\n", r, b->host, b->pid, at - b->time,
           b->step);
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
        printf("    rank %d (%s, pid %d): silent for %.1f s -- stopped, hung or dead; last heard at step %lld, "
               "operation #%lld\n", r, host, pid, age, step, last);
    else
        printf("    rank %d (%s, pid %d): alive at step %lld but its last operation was #%lld\n", r, host, pid,
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

/* Without a hang record: the rank whose heartbeat stopped well before the
 * others' died or stopped first. */
static void print_silence(void)
{
    double newest = 0;
    for (int r = 0; r < nbeats; r++)
        if (beats[r].present && beats[r].time > newest)
            newest = beats[r].time;
    int found = 0;
    for (int r = 0; r < nbeats; r++) {
        if (!beats[r].present || newest - beats[r].time < 2.5)
            continue;
        if (!found++)
            printf("silent first: these ranks' heartbeats stopped well before the others' (killed, stopped or "
                   "hung):\n");
        describe_rank(r, newest);
    }
    if (!found && nbeats)
        printf("heartbeats: all %d rank%s reported until the end\n", nbeats, nbeats == 1 ? "" : "s");
}

static int print_status(const char *dir)
{
    char path[4300], line[8192], state[32], msg[1024], ckpt[1024], job[64];
    snprintf(path, sizeof path, "%s/status.json", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    field_str(line, "state", state, sizeof state);
    field_str(line, "message", msg, sizeof msg);
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

static void print_last_good(void)
{
    long long low = -1;
    for (int r = 0; r < nbeats; r++)
        if (beats[r].present && (low < 0 || beats[r].step < low))
            low = beats[r].step;
    if (low >= 0)
        printf("last step every rank completed: %lld (lowest heartbeat step of %d rank%s)\n", low, nbeats,
               nbeats == 1 ? "" : "s");
}

static void print_flights(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        int r;
        char tail[8];
        if (sscanf(e->d_name, "flight-r%d.jso%7s", &r, tail) == 2 && strcmp(tail, "n") == 0)
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
    read_beats(dir);
    hang h = {0};
    int nhang;
    read_hangs(dir, &h, &nhang);
    int have_status = print_status(dir);
    if (!have_status && !nbeats && !nhang) {
        fprintf(stderr, "weft-doctor: %s holds no weft run files (status.json, heartbeat/, hang-rN.txt)\n", dir);
        return WEFT_EXIT_NOINPUT;
    }
    print_last_good();
    if (nhang)
        print_hang(&h, nhang);
    else
        print_silence();
    print_flights(dir);
    return WEFT_EXIT_OK;
}
