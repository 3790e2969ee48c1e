/*
 * rundir.c -- who owns run.dir (trainer.h), decided before any rank writes
 * anything there. Rank 0 looks at the directory and every rank takes its
 * decision (one agreement):
 *
 *   new or empty                       a fresh run claims it
 *   holds a run, --resume[=auto]       the run goes on (cadence.c picks the checkpoint)
 *   holds a run, fresh start           refused, exit 64, saying what is there
 *   holds a run, run.overwrite = true  rank 0 moves it to run.dir/previous/<UTC time>/
 *                                      (never deletes it), then a fresh run claims it
 *
 * "Holds a run": metrics.jsonl, owner.json, or checkpoint files (step-*.h5
 * or latest) in the checkpoint directory. The claim is run.dir/owner.json:
 * the job id, a hash of the configuration and the start time, written by
 * weft_trainer_rundir_own once the run is sure to train.
 */
#include "train/trainer_int.h"
#include "checkpoint/agree.h"
#include "checkpoint/commit.h"
#include "collectives/agree.h"
#include "runtime/durable.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/readfile.h"
#include "runtime/runfiles.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

static int exists(const char *dir, const char *name)
{
    char p[4200];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0;
}

/* What of a run is in run.dir and its checkpoint directory, in words
 * (what[0] == '\0': nothing). */
static void look(const char *run, const char *cdir, char *what, size_t len)
{
    int64_t *steps = NULL;
    int n = 0, pos = 0;
    what[0] = '\0';
    if (exists(run, WEFT_RUNFILE_METRICS))
        pos += snprintf(what + pos, len - (size_t)pos, WEFT_RUNFILE_METRICS ", ");
    if (exists(run, WEFT_RUNFILE_OWNER))
        pos += snprintf(what + pos, len - (size_t)pos, WEFT_RUNFILE_OWNER ", ");
    if (weft_ckpt_list(cdir, &steps, &n) == 0 && n > 0)
        pos += snprintf(what + pos, len - (size_t)pos, "%d checkpoint%s in %s (steps %lld to %lld), ", n,
                        n == 1 ? "" : "s", cdir, (long long)steps[0], (long long)steps[n - 1]);
    free(steps);
    if (exists(cdir, WEFT_RUNFILE_LATEST))
        pos += snprintf(what + pos, len - (size_t)pos, "%s/" WEFT_RUNFILE_LATEST ", ", cdir);
    if (pos >= 2 && (size_t)pos < len)
        what[pos - 2] = '\0';
}

/* dst = run/previous/<UTC time>[-N], made and new. */
static int make_previous(const char *run, char *dst, size_t len)
{
    char stamp[32];
    time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", gmtime(&now));
    snprintf(dst, len, "%s/" WEFT_RUNFILE_PREVIOUS_DIR, run);
    if (mkdir(dst, 0750) != 0 && errno != EEXIST)
        return weft_error(WEFT_EIO, "run.overwrite: cannot create %s: %s", dst, strerror(errno));
    for (int i = 0; i < 100; i++) {
        snprintf(dst, len, i ? "%s/" WEFT_RUNFILE_PREVIOUS_DIR "/%s-%d" : "%s/" WEFT_RUNFILE_PREVIOUS_DIR "/%s", run, stamp, i);
        if (mkdir(dst, 0750) == 0)
            return 0;
        if (errno != EEXIST)
            break;
    }
    return weft_error(WEFT_EIO, "run.overwrite: cannot create %s: %s", dst, strerror(errno));
}

/* Move every entry of src (but `keep`) into dst by rename. */
static int move_entries(const char *src, const char *dst, const char *keep)
{
    DIR *d = opendir(src);
    if (!d)
        return errno == ENOENT ? 0 : weft_error(WEFT_EIO, "run.overwrite: cannot list %s: %s", src, strerror(errno));
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || (keep && !strcmp(e->d_name, keep)))
            continue;
        char a[4200], b[4200];
        snprintf(a, sizeof a, "%s/%s", src, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
        if (rename(a, b) != 0)
            rc = weft_error(WEFT_EIO, "run.overwrite: cannot move %s to %s: %s; move the old run away yourself",
                            a, b, strerror(errno));
    }
    closedir(d);
    return rc;
}

/* cdir outside run: is it run/... ? */
static int inside(const char *run, const char *cdir)
{
    size_t n = strlen(run);
    return strncmp(cdir, run, n) == 0 && cdir[n] == '/';
}

/* Rank 0: move the old run (and its checkpoints, when checkpoint.dir is
 * elsewhere) to run/previous/<UTC time>/. */
static int move_aside(const char *run, const char *cdir, const char *what)
{
    char dst[4200], sub[4300];
    WEFT_CHECK(make_previous(run, dst, sizeof dst));
    WEFT_CHECK(move_entries(run, dst, WEFT_RUNFILE_PREVIOUS_DIR));
    if (!inside(run, cdir)) {
        snprintf(sub, sizeof sub, "%s/" WEFT_RUNFILE_CKPT_DIR, dst);
        if (mkdir(sub, 0750) != 0 && errno != EEXIST)
            return weft_error(WEFT_EIO, "run.overwrite: cannot create %s: %s", sub, strerror(errno));
        WEFT_CHECK(move_entries(cdir, sub, NULL));
    }
    WEFT_INFO("run.overwrite: moved the previous run in %s (%s) to %s", run, what, dst);
    return 0;
}

/* Rank 0's decision: 0 to go on, else a WEFT_E* with its message. */
static int decide(const weft_trainer *t, const weft_trainer_start_opts *so, const char *cdir)
{
    char what[6000];
    if (so->resume)
        return 0;
    look(t->o.run_dir, cdir, what, sizeof what);
    if (!what[0])
        return 0;
    if (weft_config_bool(t->cfg, "run.overwrite"))
        return move_aside(t->o.run_dir, cdir, what);
    return weft_error(WEFT_ECONFIG, "run.dir %s already holds a run (%s); a fresh start would overwrite it. "
                      "Continue it with --resume (or --resume=auto), start afresh with --run.overwrite=true "
                      "(the old run is moved to %s/previous/<UTC time>/), or choose another run.dir",
                      t->o.run_dir, what, t->o.run_dir);
}

/* Rank 0, before the ranks agree to go on (so no writer is at work yet):
 * the temporaries a killed run left behind (runtime/durable.h). */
static void remove_stale(const char *run)
{
    static const char *const subs[] = {"", "/" WEFT_RUNFILE_HEARTBEAT_DIR, "/" WEFT_RUNFILE_TRACE_DIR};
    char dir[4200];
    int n = 0;
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        snprintf(dir, sizeof dir, "%s%s", run, subs[i]);
        n += weft_durable_remove_stale(dir);
    }
    if (n)
        WEFT_INFO("run.dir %s: removed %d temporary file%s left by a run that stopped mid-write", run, n,
                  n == 1 ? "" : "s");
}

int weft_trainer_rundir_claim(weft_trainer *t, const weft_trainer_start_opts *so)
{
    weft_ckpt_opts o;
    weft_ckpt_opts_from_config(t->cfg, &o);
    int rc = t->rank == 0 ? decide(t, so, o.dir) : 0, any;
    if (t->rank == 0 && rc == 0)
        remove_stale(t->o.run_dir);
    WEFT_CHECK(weft_comm_any(t->world, -rc, &any));
    if (rc || !any)
        return rc;
    return weft_error(-any, "run.dir %s: rank 0 refused to start here (its message says why)", t->o.run_dir);
}

int weft_trainer_rundir_own(weft_trainer *t)
{
    if (t->rank != 0 || (t->resuming && exists(t->o.run_dir, WEFT_RUNFILE_OWNER)))
        return 0;
    char *ini = weft_config_to_ini(t->cfg), json[512], stamp[32];
    if (!ini)
        return weft_error(WEFT_ENOMEM, "out of memory");
    unsigned long long hash = (unsigned long long)XXH3_64bits(ini, strlen(ini));
    free(ini);
    time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    snprintf(json, sizeof json, "{\"job\":\"%s\",\"config_hash\":\"%016llx\",\"started\":\"%s\",\"host\":\"%s\","
             "\"pid\":%d}\n", t->ctx->job_id, hash, stamp, t->ctx->host, (int)getpid());
    return weft_trainer_write_file(t, WEFT_RUNFILE_OWNER, json);
}

/* t->owner_id: rank 0 hashes run.dir/owner.json (0: there is none yet),
 * every rank learns it. It names the run on its local checkpoint tier
 * (checkpoint/owner.h): kept across resumes, new after a fresh start. */
int weft_trainer_owner_id(weft_trainer *t)
{
    uint64_t id = 0;
    int rc = 0;
    if (t->rank == 0 && exists(t->o.run_dir, WEFT_RUNFILE_OWNER)) {
        char path[4200], *buf = NULL;
        size_t n = 0;
        snprintf(path, sizeof path, "%s/%s", t->o.run_dir, WEFT_RUNFILE_OWNER);
        rc = weft_read_file(path, 65536, "the run's owner.json", &buf, &n);
        if (rc == 0 && (id = XXH3_64bits(buf, n)) == 0)
            id = 1; /* a hash of 0 is still an identity */
        free(buf);
    }
    /* unreadable: every rank stops (an identity made up now would not
     * match the tier's mark at the next resume) */
    WEFT_CHECK(weft_ckpt_agree(t->world, rc));
    WEFT_CHECK(weft_comm_broadcast(t->world, &id, &id, sizeof id, WEFT_U8, 0));
    t->owner_id = id;
    return 0;
}
