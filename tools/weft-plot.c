/*
 * weft-plot -- charts of a run from its metrics.jsonl, drawn by gnuplot.
 *
 *   weft-plot RUN_DIR
 *
 * Writes RUN_DIR/plots/: train.dat and val.dat (whitespace columns),
 * plots.gp (the gnuplot script, re-runnable by hand), and four PNGs: loss
 * (training and validation vs step), tokens/s, the step-time breakdown
 * (compute / communication wait / data wait / checkpoint stall, stacked) and
 * the learning rate. gnuplot runs as a child process in that directory, so
 * no path is ever interpreted by a shell or by gnuplot's own quoting.
 */
#include "runtime/durable.h"
#include "tools/rundir_read.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const pngs[] = {"loss.png", "tokens_per_s.png", "step_time.png", "lr.png"};
enum { NPNG = sizeof pngs / sizeof pngs[0] };

static void num(FILE *f, double v)
{
    if (isnan(v) || isinf(v))
        fputs(" NaN", f);
    else
        fprintf(f, " %.9g", v);
}

/* train.dat: step loss lr tokens/s compute comm data ckpt (ms, stacked
 * sums in the last four: compute, +comm, +data, +ckpt). val.dat: step val. */
static int write_data(const char *dir, const metrics_row *r, int n, int *nval)
{
    char path[4300];
    weft_durable df, dv;
    snprintf(path, sizeof path, "%s/train.dat", dir);
    if (weft_durable_open(&df, path, WEFT_DURABLE_BEST_EFFORT) != 0) {
        fprintf(stderr, "weft-plot: %s\n", weft_last_error());
        return WEFT_EXIT_IOERR;
    }
    snprintf(path, sizeof path, "%s/val.dat", dir);
    if (weft_durable_open(&dv, path, WEFT_DURABLE_BEST_EFFORT) != 0) {
        fprintf(stderr, "weft-plot: %s\n", weft_last_error());
        weft_durable_discard(&df);
        return WEFT_EXIT_IOERR;
    }
    FILE *f = df.f, *v = dv.f;
    fputs("# step loss lr tokens_per_s compute +comm_wait +data_wait +ckpt_stall (ms, cumulative)\n", f);
    *nval = 0;
    for (int i = 0; i < n; i++) {
        double comm = z(r[i].comm_ms), data = z(r[i].data_ms), ck = z(r[i].ckpt_ms);
        double compute = z(r[i].ms) - comm - data; /* the checkpoint stall comes on top of ms */
        fprintf(f, "%.0f", r[i].step);
        num(f, r[i].loss);
        num(f, r[i].lr);
        num(f, r[i].tps);
        num(f, compute < 0 ? 0 : compute);
        num(f, (compute < 0 ? 0 : compute) + comm);
        num(f, (compute < 0 ? 0 : compute) + comm + data);
        num(f, (compute < 0 ? 0 : compute) + comm + data + ck);
        fputc('\n', f);
        if (!isnan(r[i].val_loss)) {
            fprintf(v, "%.0f", r[i].step);
            num(v, r[i].val_loss);
            fputc('\n', v);
            (*nval)++;
        }
    }
    int bad = weft_durable_commit(&df);
    if (bad)
        weft_durable_discard(&dv);
    else
        bad = weft_durable_commit(&dv);
    if (bad) {
        fprintf(stderr, "weft-plot: %s\n", weft_last_error());
        return WEFT_EXIT_IOERR;
    }
    return WEFT_EXIT_OK;
}

static int write_script(const char *dir, int nval)
{
    char path[4300];
    weft_durable d;
    snprintf(path, sizeof path, "%s/plots.gp", dir);
    if (weft_durable_open(&d, path, WEFT_DURABLE_BEST_EFFORT) != 0) {
        fprintf(stderr, "weft-plot: %s\n", weft_last_error());
        return WEFT_EXIT_IOERR;
    }
    FILE *f = d.f;
    fprintf(f, "# weft-plot: run with `gnuplot plots.gp` inside this directory\n"
               "set terminal pngcairo size 900,540 noenhanced\n"
               "set grid\nset key top right\nset xlabel 'step'\n"
               "set output '%s'\nset title 'loss'\nset ylabel 'cross-entropy'\n"
               "plot 'train.dat' using 1:2 with lines lw 2 title 'training'%s\n",
            pngs[0], nval ? ", 'val.dat' using 1:2 with linespoints lw 2 pt 7 title 'validation'" : "");
    fprintf(f, "set output '%s'\nset title 'throughput'\nset ylabel 'tokens/s'\n"
               "plot 'train.dat' using 1:4 with lines lw 2 title 'tokens/s'\n", pngs[1]);
    fprintf(f, "set output '%s'\nset title 'step time breakdown'\nset ylabel 'ms per step'\n"
               "set yrange [0:*]\n"
               "plot 'train.dat' using 1:8 with filledcurves x1 title 'checkpoint stall', \\\n"
               "     '' using 1:7 with filledcurves x1 title 'data wait', \\\n"
               "     '' using 1:6 with filledcurves x1 title 'communication wait', \\\n"
               "     '' using 1:5 with filledcurves x1 title 'compute'\n"
               "set autoscale y\n", pngs[2]);
    fprintf(f, "set output '%s'\nset title 'learning rate'\nset ylabel 'lr'\nset format y '%%.1e'\n"
               "plot 'train.dat' using 1:3 with lines lw 2 title 'lr'\nset output\n", pngs[3]);
    if (weft_durable_commit(&d) != 0) {
        fprintf(stderr, "weft-plot: %s\n", weft_last_error());
        return WEFT_EXIT_IOERR;
    }
    return WEFT_EXIT_OK;
}

/* Whether an executable named prog is on PATH. */
static int on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[4300];
    while (path && *path) {
        size_t k = strcspn(path, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)k, path, prog);
        if (access(buf, X_OK) == 0)
            return 1;
        path += k + (path[k] == ':');
    }
    return 0;
}

static int run_gnuplot(const char *dir)
{
    if (!on_path("gnuplot")) {
        fprintf(stderr, "weft-plot: gnuplot is not installed (Debian: apt-get install gnuplot-nox); "
                "the data and script are in %s\n", dir);
        return WEFT_EXIT_UNAVAILABLE;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "weft-plot: fork: %s\n", strerror(errno));
        return WEFT_EXIT_SOFTWARE;
    }
    if (pid == 0) {
        if (chdir(dir) != 0)
            _exit(126);
        execlp("gnuplot", "gnuplot", "plots.gp", (char *)NULL);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return WEFT_EXIT_SOFTWARE;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        fprintf(stderr, "weft-plot: cannot run gnuplot\n");
        return WEFT_EXIT_UNAVAILABLE;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "weft-plot: gnuplot failed on %s/plots.gp (status %d)\n", dir, status);
        return WEFT_EXIT_SOFTWARE;
    }
    return WEFT_EXIT_OK;
}

static void usage(FILE *f)
{
    fputs("usage: weft-plot RUN_DIR\n"
          "       weft-plot --config JOB.ini | --run.dir=DIR   (the job's run.dir)\n"
          "\n"
          "Charts a weft-train run from RUN_DIR/metrics.jsonl with gnuplot, into\n"
          "RUN_DIR/plots/: loss.png (training and validation), tokens_per_s.png,\n"
          "step_time.png (compute / communication wait / data wait / checkpoint stall)\n"
          "and lr.png, beside their data files and plots.gp. Prints the PNG paths.\n"
          "\n"
          "exit status: 0 done, 64 bad usage, 65 a malformed metrics file, 66 no run\n"
          "directory or metrics, 69 gnuplot missing (apt-get install gnuplot-nox),\n"
          "70 gnuplot failed or drew nothing, 74 cannot write RUN_DIR/plots\n", f);
}

int main(int argc, char **argv)
{
    const char *run = NULL;
    int st = run_dir_args("weft-plot", argc, argv, usage, &run);
    if (st >= 0)
        return st;
    umask(027); /* the files weft writes are 0640 at most; gnuplot inherits it */
    metrics_row *rows;
    int n, nval;
    int rc = read_metrics("weft-plot", run, &rows, &n);
    if (rc)
        return rc;
    char dir[4200], path[4400];
    snprintf(dir, sizeof dir, "%s/" WEFT_RUNFILE_PLOTS_DIR, run);
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        fprintf(stderr, "weft-plot: cannot create %s: %s\n", dir, strerror(errno));
        free(rows);
        return WEFT_EXIT_IOERR;
    }
    for (int i = 0; i < NPNG; i++) { /* so a stale chart never passes for a new one */
        snprintf(path, sizeof path, "%s/%s", dir, pngs[i]);
        unlink(path);
    }
    rc = write_data(dir, rows, n, &nval);
    free(rows);
    if (!rc)
        rc = write_script(dir, nval);
    if (!rc)
        rc = run_gnuplot(dir);
    for (int i = 0; i < NPNG && !rc; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, pngs[i]);
        if (stat(path, &st) != 0 || st.st_size == 0) {
            fprintf(stderr, "weft-plot: gnuplot did not write %s\n", path);
            rc = WEFT_EXIT_SOFTWARE;
        }
    }
    for (int i = 0; i < NPNG && !rc; i++)
        printf("%s/%s\n", dir, pngs[i]);
    return rc;
}
