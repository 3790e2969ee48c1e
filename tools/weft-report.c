/*
 * weft-report -- a one-page plain-text summary of a weft-train run, at most
 * 80 columns, to paste into an issue.
 *
 *   weft-report RUN_DIR
 *
 * Reads RUN_DIR/config.ini (the resolved configuration), run.json (layout
 * and the peak FLOP/s per rank weft-train measured at start or was given),
 * metrics.jsonl, status.json (last checkpoint, restarts) and checkpoints/,
 * and prints: configuration, layout, throughput (median tokens/s, ms/step
 * and model FLOP/s per rank over the logged steps), MFU (model FLOP/s per
 * rank over that peak, which it names), time breakdown, checkpoints,
 * restarts, memory (the planned bytes by category of the rank holding the
 * most, beside the largest measured peak), errors (skipped or non-finite
 * steps) and the final and best losses. Medians are those of Python's statistics.median.
 *
 * First of all it says how the run ended, from status.json's state,
 * exit_code and message and, while the state is not final, the age of
 * the newest sign of life (status.json's updated, heartbeat/rank-N):
 *   done | stopped for requeue (exit 138) | failed (exit N): why |
 *   still running (fresh) | ended without a final report (stale: killed).
 */
#include "tools/rundir_read.h"

#include <dirent.h>
#include <stddef.h>
#include <sys/stat.h>
#include <time.h>

#define WIDTH 78

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of the finite values of column off in rows (NAN if none). */
static double median(const metrics_row *r, int n, size_t off)
{
    double *v = malloc((size_t)n * sizeof *v);
    int k = 0;
    for (int i = 0; v && i < n; i++) {
        double x = *(const double *)((const char *)&r[i] + off);
        if (isfinite(x))
            v[k++] = x;
    }
    double m = NAN;
    if (k) {
        qsort(v, (size_t)k, sizeof *v, cmp_double);
        m = k % 2 ? v[k / 2] : 0.5 * (v[k / 2 - 1] + v[k / 2]);
    }
    free(v);
    return m;
}

/* Print "label" then items wrapped to WIDTH with a 12-column indent. */
typedef struct {
    int col;
} wrap;

static void item(wrap *w, const char *s)
{
    char buf[WIDTH + 1];
    size_t len = strlen(s);
    if (len > WIDTH - 12) { /* a long path: keep its end */
        snprintf(buf, sizeof buf, "...%s", s + len - (WIDTH - 15));
        s = buf;
        len = strlen(s);
    }
    if (w->col > 12 && w->col + 1 + (int)len > WIDTH) {
        printf("\n%12s", "");
        w->col = 12;
    } else if (w->col > 12) {
        putchar(' ');
        w->col++;
    }
    fputs(s, stdout);
    w->col += (int)len;
}

/* The sections of config.ini worth a line each. */
static void config(const char *run)
{
    static const char *const wanted[] = {"model", "parallel", "train", "optim", "data", "trace", NULL};
    char path[4200], line[4200], section[64] = "", buf[4300];
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_CONFIG, run);
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("config      (no config.ini in the run directory)\n");
        return;
    }
    wrap w = {0};
    int first = 1;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        char key[128], val[4096];
        if (sscanf(line, "[%63[^]]]", section) == 1)
            continue;
        if (sscanf(line, "%127s = %4095[^\n]", key, val) != 2)
            continue;
        int keep = 0;
        for (int i = 0; wanted[i]; i++)
            keep |= !strcmp(section, wanted[i]);
        if (!keep || (!strcmp(section, "data") && strcmp(key, "path")))
            continue;
        if (first) {
            printf("%-12s", "config");
            w.col = 12;
            first = 0;
        }
        snprintf(buf, sizeof buf, "%s.%s=%s", section, key, val);
        item(&w, buf);
    }
    fclose(f);
    if (!first)
        putchar('\n');
    printf("%-12s(all keys: config.ini in the run directory)\n", "");
}

/* The peak per rank MFU divides by and what it is. Runs before the
 * machine's peak recorded a one-core SGEMM at one model shape instead. */
static double peak_of(const char *js, char *what, size_t len)
{
    double peak = field(js, "peak_flops");
    field_str(js, "peak_source", what, len);
    if (!(peak > 0)) {
        peak = field(js, "sgemm_peak_flops");
        snprintf(what, len, "one-core SGEMM at one model shape (an older run: not a peak)");
    }
    return peak;
}

static void layout(const char *js, double *peak, char *peak_what, size_t len, double *ranks)
{
    char backend[64], host[64];
    field_str(js, "backend", backend, sizeof backend);
    field_str(js, "host", host, sizeof host);
    *ranks = field(js, "ranks");
    *peak = peak_of(js, peak_what, len);
    if (!*js) {
        printf("layout      (no run.json in the run directory)\n");
        return;
    }
    char mesh[128] = "data parallel", sched[16] = "";
    field_str(js, "schedule", sched, sizeof sched);
    if (field(js, "tp") > 0) /* runs since the DP x TP x PP mesh record it */
        snprintf(mesh, sizeof mesh, "dp %.0f x tp %.0f x pp %.0f%s%s", field(js, "dp"), field(js, "tp"),
                 field(js, "pp"), field(js, "pp") > 1 ? ", schedule " : "", field(js, "pp") > 1 ? sched : "");
    printf("layout      %.0f rank%s on %.0f node%s (%s), backend %s, %s\n", *ranks, *ranks == 1 ? "" : "s",
           field(js, "nodes"), field(js, "nodes") == 1 ? "" : "s", host, backend, mesh);
    printf("            ZeRO-%.0f, %.0f gradient bucket%s of %g MiB, %.0f micro-batch%s/step\n",
           field(js, "zero"), field(js, "buckets"), field(js, "buckets") == 1 ? "" : "s", field(js, "bucket_mb"),
           field(js, "micro_batches"), field(js, "micro_batches") == 1 ? "" : "es");
    printf("            %.3fM parameters, %.0f tokens per step\n", field(js, "params") / 1e6,
           field(js, "tokens_per_step"));
}

static void read_text(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, len - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
}

/* A number from config.ini's [section] key (NAN when absent). */
static double ini_num(const char *run, const char *section, const char *key)
{
    char path[4200], line[512], sec[64] = "", k[128];
    double v = NAN, x;
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_CONFIG, run);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "[%63[^]]]", sec) == 1)
            continue;
        if (sscanf(line, "%127s = %lf", k, &x) == 2 && !strcmp(sec, section) && !strcmp(k, key))
            v = x;
    }
    if (f)
        fclose(f);
    return v;
}

/* The newest sign of life: status.json's "updated" and the heartbeat
 * files' modification times (wall seconds; 0 if none). */
static double newest_beat(const char *run, const char *status)
{
    double t = isnan(field(status, "updated")) ? 0 : field(status, "updated");
    char path[4300];
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_HEARTBEAT_DIR, run);
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));) {
        struct stat st;
        if (snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_HEARTBEAT_DIR "/%s", run, e->d_name) >= (int)sizeof path)
            continue; /* a path too long to stat */
        int r;
        if (weft_runfile_rank(e->d_name, WEFT_RUNFILE_HEARTBEAT_NAME, &r) && stat(path, &st) == 0 &&
            (double)st.st_mtime > t)
            t = (double)st.st_mtime;
    }
    if (d)
        closedir(d);
    return t;
}

/* How the run ended (see the top of the file). A run whose status is not
 * final counts as running while the newest sign of life is younger than
 * three of its reporting intervals (at least 10 s). */
static void outcome(const char *run)
{
    char path[4200], st[16384] = "", state[32], msg[1024];
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_STATUS, run);
    read_text(path, st, sizeof st);
    if (!*st) {
        printf("%-12sunknown (no status.json in the run directory)\n", "ended");
        return;
    }
    field_str(st, "state", state, sizeof state);
    field_str(st, "message", msg, sizeof msg);
    double step = field(st, "step"), total = field(st, "total_steps"), code = field(st, "exit_code");
    char exit_s[32] = "exit code unknown";
    if (!isnan(code))
        snprintf(exit_s, sizeof exit_s, "exit %.0f", code);
    /* head: how it ended, kept on one line; then why, wrapped */
    char head[256], why[1200] = "";
    if (!strcmp(state, "done")) {
        snprintf(head, sizeof head, "done: all %.0f steps (%s)", total, exit_s);
    } else if (!strcmp(state, "preempted")) {
        snprintf(head, sizeof head, "stopped and requeued after step %.0f of %.0f (%s):", step, total, exit_s);
        snprintf(why, sizeof why, "%s", msg);
    } else if (!strcmp(state, "failed")) {
        snprintf(head, sizeof head, "failed at step %.0f of %.0f (%s):", step, total, exit_s);
        snprintf(why, sizeof why, "%s", msg[0] ? msg : "no reason recorded");
    } else {
        double every = fmax(z(ini_num(run, "sched", "heartbeat")), z(ini_num(run, "sched", "status_interval")));
        double age = fmax(0.0, (double)time(NULL) - newest_beat(run, st)); /* mtimes are whole seconds */
        if (age <= fmax(10.0, 3 * every)) {
            snprintf(head, sizeof head, "still running (%s) at step %.0f of %.0f,", state, step, total);
            snprintf(why, sizeof why, "last heartbeat %.0f s ago", age);
        } else {
            snprintf(head, sizeof head, "did not finish (killed or lost):");
            snprintf(why, sizeof why, "status.json still says %s at step %.0f of %.0f, but nothing was heard for "
                     "%.0f s; weft-doctor RUN_DIR says more", state, step, total, age);
        }
    }
    wrap w = {12};
    printf("%-12s%s", "ended", head);
    w.col += (int)strlen(head);
    for (char *save, *t = strtok_r(why, " ", &save); t; t = strtok_r(NULL, " ", &save))
        item(&w, t);
    putchar('\n');
}

static void throughput(const metrics_row *r, int n, double peak, const char *peak_what, double ranks)
{
    double tps = median(r, n, offsetof(metrics_row, tps)), ms = median(r, n, offsetof(metrics_row, ms));
    double flops = median(r, n, offsetof(metrics_row, flops));
    printf("throughput  median %.0f tokens/s, %.2f ms/step (%d logged steps)\n", tps, ms, n);
    if (isfinite(ranks) && ranks > 0)
        printf("            model %.2f GFLOP/s per rank\n", flops / ranks / 1e9);
    if (isfinite(peak) && peak > 0 && isfinite(ranks) && ranks > 0) {
        printf("MFU         %.1f%%: %.2f GFLOP/s per rank (model) / %.2f GFLOP/s peak per rank\n",
               100.0 * flops / ranks / peak, flops / ranks / 1e9, peak / 1e9);
        wrap w = {.col = 12};
        printf("%12s", "");
        char buf[200];
        snprintf(buf, sizeof buf, "(peak: %s)", peak_what);
        for (char *word = strtok(buf, " "); word; word = strtok(NULL, " "))
            item(&w, word);
        putchar('\n');
    } else {
        printf("MFU         unknown (no peak in run.json)\n");
    }
}

static void breakdown(const metrics_row *r, int n)
{
    double total = 0, comm = 0, data = 0, ck = 0;
    for (int i = 0; i < n; i++) {
        total += z(r[i].ms); /* ms_per_step includes the checkpoint stall (train/trainer.c) */
        comm += z(r[i].comm_ms);
        data += z(r[i].data_ms);
        ck += z(r[i].ckpt_ms);
    }
    double pc = total > 0 ? 100.0 / total : 0;
    printf("time        compute %.1f%%, communication wait %.1f%%, data wait %.1f%%,\n"
           "            checkpoint stall %.1f%% (of %.2f s in the logged steps)\n",
           (total - comm - data - ck) * pc, comm * pc, data * pc, ck * pc, total / 1e3);
}

/* Checkpoints on disk, the last committed one and the restarts, from
 * status.json (written by weft-train's reporter) and checkpoints/. */
static void checkpoints(const char *run)
{
    char path[4200], text[8192] = "";
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_CKPT_DIR, run);
    int count = 0;
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));)
        count += strncmp(e->d_name, "step-", 5) == 0 && strstr(e->d_name, ".h5") &&
                 strcmp(strstr(e->d_name, ".h5"), ".h5") == 0;
    if (d)
        closedir(d);
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_STATUS, run);
    FILE *f = fopen(path, "r");
    if (f) {
        size_t len = fread(text, 1, sizeof text - 1, f);
        text[len] = 0;
        fclose(f);
    }
    const char *last = strstr(text, "\"last_checkpoint\":{");
    double step = last ? field(last, "step") : NAN, restarts = field(text, "restarts");
    if (count == 0 && isnan(step))
        printf("checkpoints none\n");
    else if (isnan(step))
        printf("checkpoints %d on disk\n", count);
    else
        printf("checkpoints %d on disk, last committed at step %.0f\n", count, step);
    printf("restarts    %.0f\n", isnan(restarts) ? 0.0 : restarts);
}

/* Memory from status.json's "memory": the planned bytes by category of
 * the rank that holds the most (train/memory.h) beside the largest peak
 * resident memory measured over the ranks. */
static void memory(const char *run)
{
    static const char *const cats[] = {"params", "grads", "optimizer", "activations", "comm", "checkpoint",
                                       "runtime"};
    char path[4200], text[8192] = "";
    snprintf(path, sizeof path, "%s/status.json", run);
    read_text(path, text, sizeof text);
    const char *m = strstr(text, "\"memory\":{");
    if (!m) {
        printf("memory      not reported (a run from before memory accounting, or stopped at start)\n");
        return;
    }
    double planned = field(m, "planned_bytes"), peak = field(m, "peak_rss_bytes");
    printf("memory      rank %.0f plans %.1f MiB", field(m, "rank"), planned / 1048576.0);
    if (isfinite(peak))
        printf(", peak resident %.1f MiB (rank %.0f, plan %+.1f%%)\n", peak / 1048576.0, field(m, "peak_rss_rank"),
               100.0 * (planned - peak) / peak);
    else
        printf(", peak resident not measured\n");
    wrap w = {12};
    printf("%12s", "");
    for (size_t i = 0; i < sizeof cats / sizeof cats[0]; i++) {
        char key[32], buf[64];
        snprintf(key, sizeof key, "%s_bytes", cats[i]);
        snprintf(buf, sizeof buf, "%s %.1f%s", cats[i], field(m, key) / 1048576.0,
                 i + 1 < sizeof cats / sizeof cats[0] ? "," : " MiB");
        item(&w, buf);
    }
    printf("\n");
}

static void losses(const metrics_row *r, int n)
{
    int skipped = 0, best = -1, lastv = -1;
    for (int i = 0; i < n; i++) {
        skipped += r[i].skipped || !isfinite(r[i].loss);
        if (!isnan(r[i].val_loss)) {
            lastv = i;
            if (best < 0 || r[i].val_loss < r[best].val_loss)
                best = i;
        }
    }
    printf("errors      %d skipped or non-finite step%s\n", skipped, skipped == 1 ? "" : "s");
    printf("loss        final %.4f (step %.0f)\n", r[n - 1].loss, r[n - 1].step);
    if (lastv >= 0)
        printf("validation  final %.4f (step %.0f), best %.4f (step %.0f)\n", r[lastv].val_loss, r[lastv].step,
               r[best].val_loss, r[best].step);
    else
        printf("validation  none recorded\n");
}

static void usage(FILE *f)
{
    fputs("usage: weft-report RUN_DIR\n"
          "       weft-report --config JOB.ini | --run.dir=DIR   (the job's run.dir)\n"
          "\n"
          "Prints a one-page summary of a weft-train run (at most 80 columns): how it\n"
          "ended (done, stopped and requeued, failed with exit code and reason, still\n"
          "running), config, layout, throughput, MFU against the peak per rank in\n"
          "run.json, time breakdown, checkpoints, restarts, errors, final and best\n"
          "losses. Reads RUN_DIR/metrics.jsonl, run.json, config.ini, status.json,\n"
          "heartbeat/ and checkpoints/.\n"
          "\n"
          "exit status: 0 done, 64 bad usage, 65 a malformed metrics file, 66 no run\n"
          "directory or no metrics in it\n", f);
}

int main(int argc, char **argv)
{
    const char *run = NULL;
    int st = run_dir_args("weft-report", argc, argv, usage, &run);
    if (st >= 0)
        return st;
    metrics_row *r;
    int n;
    int rc = read_metrics("weft-report", run, &r, &n);
    if (rc)
        return rc;
    char path[4200], js[8192];
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_RUN, run);
    read_text(path, js, sizeof js);
    time_t started = (time_t)field(js, "started");
    char when[64] = "unknown";
    if (*js && !isnan(field(js, "started")))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&started));
    wrap w = {12};
    printf("%-12s", "weft run");
    item(&w, run);
    printf("\n%-12sstarted %s, %d steps logged, last step %.0f\n", "", when, n, r[n - 1].step);
    outcome(run);
    config(run);
    double peak, ranks;
    char peak_what[160];
    layout(js, &peak, peak_what, sizeof peak_what, &ranks);
    throughput(r, n, peak, peak_what, ranks);
    breakdown(r, n);
    checkpoints(run);
    memory(run);
    losses(r, n);
    free(r);
    return WEFT_EXIT_OK;
}
