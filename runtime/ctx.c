/*
 * ctx.c -- weft_init/weft_finalize: MPI bootstrap, placement, launcher and
 * job id, the configuration, and the job summary.
 *
 * Placement comes from MPI itself (MPI_Comm_split_type with
 * MPI_COMM_TYPE_SHARED), not from launcher variables, so it is right under
 * every launcher; the launcher is detected from the environment only to
 * report it and to know whether Slurm is in charge.
 */
#include "runtime/ctx.h"
#include "runtime/error.h"
#include "runtime/fault.h"
#include "runtime/log.h"
#include "runtime/timer.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const weft_config_key weft_runtime_config_keys[] = {
    {"log.level", WEFT_CFG_ENUM, "env", WEFT_UNBOUNDED, "env|error|warn|info|debug|trace",
     "log verbosity; 'env' takes WEFT_LOG_LEVEL (default info)"},
    {"run.dir", WEFT_CFG_STRING, "weft-run", WEFT_UNBOUNDED, NULL,
     "directory for everything a run writes (metrics, checkpoints, flight records)"},
    {"run.overwrite", WEFT_CFG_BOOL, "false", WEFT_UNBOUNDED, NULL,
     "a fresh start (no --resume) in a run.dir that holds a run: move that run to run.dir/previous/<UTC time>/ "
     "and start afresh (false: refuse, exit 64)"},
    {"run.device", WEFT_CFG_ENUM, "auto", WEFT_UNBOUNDED, "auto|cpu|cuda",
     "where each rank's tensors live: cpu; cuda (the GPU of the local rank modulo the GPUs visible; no usable "
     "GPU: exit 69); auto: cuda when libcudart loads and a GPU is visible, else cpu. Training refuses cuda "
     "(exit 69) and auto trains on cpu until the training step runs on CUDA (issue 20)"},
    WEFT_CONFIG_END,
};

static weft_ctx *current;

weft_ctx *weft_ctx_current(void) { return current; }

static const char *env_lookup(const char *name) { return getenv(name); }

weft_launcher weft_launcher_detect(const char *(*lookup)(const char *name))
{
    /* mpirun sets its own variables even inside a Slurm allocation, so it
     * is checked first; srun's PMI plugin is told by the variables it sets. */
    if (lookup("OMPI_MCA_orte_hnp_uri") || lookup("OMPI_MCA_orte_launch") || lookup("PRTE_LAUNCHED"))
        return WEFT_LAUNCHER_MPIRUN;
    if (lookup("SLURM_STEP_ID") || lookup("SLURM_PROCID")) {
        if (lookup("PMIX_RANK") || lookup("PMIX_NAMESPACE"))
            return WEFT_LAUNCHER_SRUN_PMIX;
        if (lookup("PMI_FD") || lookup("PMI_RANK"))
            return WEFT_LAUNCHER_SRUN_PMI2;
        return WEFT_LAUNCHER_SRUN_NOPMI;
    }
    return WEFT_LAUNCHER_NONE;
}

const char *weft_launcher_name(weft_launcher l)
{
    switch (l) {
    case WEFT_LAUNCHER_MPIRUN: return "mpirun";
    case WEFT_LAUNCHER_SRUN_PMIX: return "srun-pmix";
    case WEFT_LAUNCHER_SRUN_PMI2: return "srun-pmi2";
    case WEFT_LAUNCHER_SRUN_NOPMI: return "srun-nopmi";
    default: return "none";
    }
}

static int mpi_fail(int mpirc, const char *what)
{
    char s[MPI_MAX_ERROR_STRING];
    int n = 0;
    MPI_Error_string(mpirc, s, &n);
    return weft_error(WEFT_ECOMM, "%s failed: %s", what, s);
}

static int start_mpi(weft_ctx *ctx, int *argc, char ***argv)
{
    int inited = 0;
    MPI_Initialized(&inited);
    if (inited) {
        MPI_Query_thread(&ctx->thread_level);
    } else {
        int rc = MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &ctx->thread_level);
        if (rc != MPI_SUCCESS)
            return weft_error(WEFT_ECOMM, "MPI_Init_thread failed (code %d); is the MPI runtime installed?", rc);
        ctx->owns_mpi = 1;
    }
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &ctx->world);
    if (rc != MPI_SUCCESS)
        return mpi_fail(rc, "MPI_Comm_dup(MPI_COMM_WORLD)");
    MPI_Comm_set_errhandler(ctx->world, MPI_ERRORS_RETURN);
    MPI_Comm_rank(ctx->world, &ctx->rank);
    MPI_Comm_size(ctx->world, &ctx->size);
    return 0;
}

/* Node index = rank of this node's leader among all leaders. */
static int learn_placement(weft_ctx *ctx)
{
    int rc = MPI_Comm_split_type(ctx->world, MPI_COMM_TYPE_SHARED, ctx->rank, MPI_INFO_NULL,
                                 &ctx->node_comm);
    if (rc != MPI_SUCCESS)
        return mpi_fail(rc, "MPI_Comm_split_type(SHARED)");
    MPI_Comm_rank(ctx->node_comm, &ctx->local_rank);
    MPI_Comm_size(ctx->node_comm, &ctx->local_size);
    MPI_Comm leaders;
    rc = MPI_Comm_split(ctx->world, ctx->local_rank == 0 ? 0 : MPI_UNDEFINED, ctx->rank, &leaders);
    if (rc != MPI_SUCCESS)
        return mpi_fail(rc, "MPI_Comm_split(node leaders)");
    int info[2] = {0, 0};
    if (leaders != MPI_COMM_NULL) {
        MPI_Comm_rank(leaders, &info[0]);
        MPI_Comm_size(leaders, &info[1]);
        MPI_Comm_free(&leaders);
    }
    rc = MPI_Bcast(info, 2, MPI_INT, 0, ctx->node_comm);
    if (rc != MPI_SUCCESS)
        return mpi_fail(rc, "MPI_Bcast(node index)");
    ctx->node = info[0];
    ctx->nnodes = info[1];
    return 0;
}

static int learn_job(weft_ctx *ctx)
{
    const char *slurm_job = getenv("SLURM_JOB_ID");
    ctx->in_slurm = slurm_job != NULL;
    if (slurm_job) {
        snprintf(ctx->job_id, sizeof ctx->job_id, "%s", slurm_job);
        return 0;
    }
    /* No scheduler id: rank 0 makes one from time and pid and shares it. */
    unsigned long long id = 0;
    if (ctx->rank == 0)
        id = ((unsigned long long)time(NULL) << 20) ^ ((unsigned long long)getpid() * 2654435761ull);
    int rc = MPI_Bcast(&id, 1, MPI_UNSIGNED_LONG_LONG, 0, ctx->world);
    if (rc != MPI_SUCCESS)
        return mpi_fail(rc, "MPI_Bcast(job id)");
    snprintf(ctx->job_id, sizeof ctx->job_id, "local-%08llx", id & 0xffffffffull);
    return 0;
}

static void short_hostname(char *buf, size_t len)
{
    if (gethostname(buf, len) != 0)
        snprintf(buf, len, "unknown");
    buf[len - 1] = '\0';
    char *dot = strchr(buf, '.');
    if (dot)
        *dot = '\0';
}

static int apply_log_level(weft_ctx *ctx)
{
    const char *lv = weft_config_str(ctx->config, "log.level");
    weft_log_level level;
    if (strcmp(lv, "env") != 0 && weft_log_level_parse(lv, &level) == 0)
        weft_log_set_level(level);
    return 0;
}

/* Runtime's table first, then the program's, NULL-terminated. */
static int load_config(weft_ctx *ctx, int *argc, char **argv, const weft_config_key *const *keys)
{
    const weft_config_key *tables[32];
    int n = 0;
    tables[n++] = weft_runtime_config_keys;
    for (int i = 0; keys && keys[i] && n < 31; i++)
        tables[n++] = keys[i];
    tables[n] = NULL;
    WEFT_CHECK(weft_config_new(tables, &ctx->config));
    WEFT_CHECK(weft_config_parse_args(ctx->config, argc, argv));
    return apply_log_level(ctx);
}

void weft_job_summary(const weft_ctx *ctx, char *buf, size_t len)
{
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int n = 0;
    MPI_Get_library_version(lib, &n);
    char *nl = strpbrk(lib, ",\n");
    if (nl)
        *nl = '\0';
    snprintf(buf, len,
             "weft %s: job %s, launcher %s%s, %d rank%s on %d node%s (%d on this node), %s, thread level %s",
             WEFT_VERSION, ctx->job_id, weft_launcher_name(ctx->launcher),
             ctx->in_slurm && ctx->launcher == WEFT_LAUNCHER_MPIRUN ? " in a Slurm allocation" : "",
             ctx->size, ctx->size == 1 ? "" : "s", ctx->nnodes, ctx->nnodes == 1 ? "" : "s",
             ctx->local_size, lib,
             ctx->thread_level == MPI_THREAD_MULTIPLE ? "multiple" : "below multiple");
}

/* MPI_Finalize waits for every peer; one stopped or killed after the job's
 * last collective would hold this rank there forever, with nothing left to
 * time out. A guard thread ends the rank instead, once the bound passes:
 * the run's files are complete by then, and the launcher sees the exit and
 * ends the rest of the job. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    double limit_s;
} fin = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

static void *finalize_guard(void *arg)
{
    (void)arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)fin.limit_s;
    until.tv_nsec += (long)((fin.limit_s - (double)(time_t)fin.limit_s) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&fin.mu);
    int rc = 0;
    while (!fin.done && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&fin.cv, &fin.mu, &until);
    int done = fin.done;
    pthread_mutex_unlock(&fin.mu);
    if (!done) {
        WEFT_ERROR("MPI_Finalize has not returned after %g s (twice comm.timeout + 5): a peer stopped, hung or died "
                   "after the job's last collective; ending this rank (exit %d) -- the run's files are complete",
                   fin.limit_s, WEFT_EXIT_SOFTWARE);
        _exit(WEFT_EXIT_SOFTWARE);
    }
    return NULL;
}

static void (*finalize_hook)(int after);

void weft_at_finalize(void (*fn)(int after)) { finalize_hook = fn; }

/* The guard is the backstop: with the watchdog still running (the
 * trainer's runs), a stopped peer is named by it first, within comm.timeout
 * and its grace; the guard waits twice that. */
static void finalize_bounded(double limit_s)
{
    pthread_t guard;
    fin.limit_s = 2 * limit_s + 5;
    int guarded = limit_s > 0 && pthread_create(&guard, NULL, finalize_guard, NULL) == 0;
    if (finalize_hook)
        finalize_hook(0);
    MPI_Finalize();
    if (finalize_hook)
        finalize_hook(1);
    if (!guarded)
        return;
    pthread_mutex_lock(&fin.mu);
    fin.done = 1;
    pthread_cond_signal(&fin.cv);
    pthread_mutex_unlock(&fin.mu);
    pthread_join(guard, NULL);
}

static void ctx_release(weft_ctx *ctx)
{
    if (ctx->node_comm != MPI_COMM_NULL && ctx->node_comm)
        MPI_Comm_free(&ctx->node_comm);
    if (ctx->world != MPI_COMM_NULL && ctx->world)
        MPI_Comm_free(&ctx->world);
    if (ctx->owns_mpi) {
        int fin = 0;
        MPI_Finalized(&fin);
        if (!fin) {
            weft_fault_at(WEFT_FAULT_FINALIZE, -1); /* kill_finalize, stall_finalize: the others inside it */
            finalize_bounded(ctx->finalize_timeout_s);
        }
    }
    weft_config_free(ctx->config);
    if (current == ctx)
        current = NULL;
    free(ctx);
}

static int bootstrap(weft_ctx *ctx, int *argc, char **argv)
{
    /* Before MPI_Init: a singleton's MPI_Init starts a helper daemon that
     * sets the very variables mpirun would. */
    ctx->launcher = weft_launcher_detect(env_lookup);
    WEFT_CHECK(start_mpi(ctx, argc, &argv));
    short_hostname(ctx->host, sizeof ctx->host);
    weft_log_set_identity(ctx->rank, ctx->size, ctx->host);
    WEFT_CHECK(learn_placement(ctx));
    return learn_job(ctx);
}

/* weft_bug's way out in a job: the whole job ends, as on any abort. */
static void bug_abort(int status, const char *msg) { weft_abort_with(status, "bug: %s", msg); }

int weft_init(int *argc, char **argv, const weft_config_key *const *keys, weft_ctx **out)
{
    weft_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return weft_error(WEFT_ENOMEM, "weft_init: out of memory");
    ctx->world = ctx->node_comm = MPI_COMM_NULL;
    ctx->t_init_ns = weft_now_ns();
    weft_log_level_from_env();
    weft_set_bug_handler(bug_abort);
    current = ctx;
    int rc = bootstrap(ctx, argc, argv);
    if (rc == 0) /* WEFT_FAULT: once, before any thread could reach a fault point */
        rc = weft_fault_init(ctx->rank);
    if (rc == 0)
        rc = load_config(ctx, argc, argv, keys);
    if (rc == 0) /* where hold_* faults meet the test (runtime/fault.h) */
        weft_fault_set_dir(weft_config_str(ctx->config, "run.dir"));
    if (rc < 0) {
        if (ctx->rank == 0 || rc != WEFT_ECONFIG)
            WEFT_ERROR("%s", weft_last_error());
        ctx_release(ctx);
        return rc;
    }
    if (ctx->thread_level != MPI_THREAD_MULTIPLE && ctx->rank == 0)
        WEFT_WARN("MPI provides thread level %d, not MPI_THREAD_MULTIPLE: background threads "
                  "(checkpoint writer, watchdog) must not communicate", ctx->thread_level);
    if (ctx->rank == 0) {
        char line[1024];
        weft_job_summary(ctx, line, sizeof line);
        WEFT_INFO("%s", line);
    }
    *out = ctx;
    return 0;
}

void weft_finalize(weft_ctx *ctx)
{
    if (ctx)
        ctx_release(ctx);
}
