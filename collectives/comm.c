/*
 * comm.c -- communicator lifecycle: creation over an MPI group, split, dup,
 * free; backend selection from the registry; sticky failure; the comm.*
 * configuration keys; the registry of live communicators whose flight
 * recorders weft_abort dumps.
 *
 * States: healthy (failed == 0) -> failed (weft_comm_fail: a timeout, a
 * backend error). There is no way back: a failed communicator is freed.
 */
#include "collectives/backend.h"
#include "runtime/durable.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/runfiles.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const weft_config_key weft_comm_config_keys[] = {
    {"comm.backend", WEFT_CFG_ENUM, "auto", WEFT_UNBOUNDED, "auto|shm|hier|mpi|tcp|ib|nccl",
     "collectives backend; auto picks per group: shm when all of its ranks share a node, hier "
     "(shm within nodes, comm.hier_net between) when it spans nodes; mpi, tcp, ib (RDMA) and nccl "
     "(GPU buffers) only by name"},
    {"comm.hier_net", WEFT_CFG_ENUM, "tcp", WEFT_UNBOUNDED, "tcp|mpi|ib",
     "backend the hier backend uses between nodes (shm is used within each node)"},
    {"comm.algo", WEFT_CFG_ENUM, "auto", WEFT_UNBOUNDED, "auto|ring|tree",
     "algorithm of the tcp/ib/hier backends: auto takes binomial trees up to 32 KiB and rings above"},
    {"comm.tcp_ifname", WEFT_CFG_STRING, "", WEFT_UNBOUNDED, NULL,
     "network interface the tcp backend uses (e.g. eth1); empty: the first up non-loopback IPv4 one, "
     "else loopback"},
    {"comm.timeout", WEFT_CFG_FLOAT, "600", 0.1, 604800, NULL,
     "seconds an operation may stay pending before the job is aborted"},
    {"comm.flight_records", WEFT_CFG_INT, "4096", 16, 1 << 20, NULL,
     "operations kept per communicator in the flight recorder"},
    {"comm.check_args", WEFT_CFG_BOOL, "false", WEFT_UNBOUNDED, NULL,
     "verify every collective's count/dtype/op/root across ranks (one extra small allreduce)"},
    {"comm.deterministic", WEFT_CFG_BOOL, "false", WEFT_UNBOUNDED, NULL,
     "reductions bitwise identical whatever the backend, algorithm and chunking (sums in rank order)"},
    WEFT_CONFIG_END,
};

void weft_comm_opts_default(weft_comm_opts *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->backend, sizeof o->backend, "auto");
    snprintf(o->algo, sizeof o->algo, "auto");
    snprintf(o->hier_net, sizeof o->hier_net, "tcp");
    o->timeout_s = 600;
    o->abort_on_timeout = 1;
    o->flight_records = 4096;
}

void weft_comm_opts_from_config(const weft_config *cfg, weft_comm_opts *o)
{
    weft_comm_opts_default(o);
    snprintf(o->backend, sizeof o->backend, "%s", weft_config_str(cfg, "comm.backend"));
    snprintf(o->algo, sizeof o->algo, "%s", weft_config_str(cfg, "comm.algo"));
    snprintf(o->hier_net, sizeof o->hier_net, "%s", weft_config_str(cfg, "comm.hier_net"));
    snprintf(o->tcp_ifname, sizeof o->tcp_ifname, "%s", weft_config_str(cfg, "comm.tcp_ifname"));
    o->timeout_s = weft_config_float(cfg, "comm.timeout");
    o->flight_records = (int)weft_config_int(cfg, "comm.flight_records");
    o->check_args = weft_config_bool(cfg, "comm.check_args");
    o->deterministic = weft_config_bool(cfg, "comm.deterministic");
}

/* --- live registry ------------------------------------------------------- */

static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static weft_comm *live_head;
static int abort_hook_installed;

static void dump_on_abort(void *arg)
{
    (void)arg;
    weft_ctx *ctx = weft_ctx_current();
    const char *dir = ctx && ctx->config ? weft_config_str(ctx->config, "run.dir") : ".";
    if (weft_comm_flight_dump_all(dir) == 0)
        WEFT_ERROR("flight records written to %s/flight-r%d.json", dir, ctx ? ctx->rank : 0);
    else
        WEFT_ERROR("could not write flight records: %s", weft_last_error());
}

/* Names made so far and how many of each: the ordinal in a comm's id. */
static struct {
    char name[64];
    int count;
} made[64];
static int nmade;

static void assign_id(weft_comm *c)
{
    int i = 0;
    while (i < nmade && strcmp(made[i].name, c->name) != 0)
        i++;
    if (i == nmade && nmade < 64)
        snprintf(made[nmade++].name, sizeof made[0].name, "%s", c->name);
    snprintf(c->id, sizeof c->id, "%s.%d", c->name, i < 64 ? made[i].count++ : 0);
}

void weft_comm_foreach_live(void (*fn)(weft_comm *c, void *arg), void *arg)
{
    pthread_mutex_lock(&live_mu);
    for (weft_comm *c = live_head; c; c = c->next_live)
        fn(c, arg);
    pthread_mutex_unlock(&live_mu);
}

/* Each member's world rank, for naming ranks in hang diagnoses. */
static int learn_world_ranks(weft_comm *c)
{
    c->world_ranks = malloc((size_t)c->size * sizeof(int));
    int *mine = malloc((size_t)c->size * sizeof(int));
    if (!c->world_ranks || !mine) {
        free(mine);
        return weft_error(WEFT_ENOMEM, "communicator '%s': out of memory", c->name);
    }
    MPI_Group g, w;
    MPI_Comm_group(c->mpi, &g);
    MPI_Comm_group(c->ctx->world, &w);
    for (int i = 0; i < c->size; i++)
        mine[i] = i;
    MPI_Group_translate_ranks(g, c->size, mine, w, c->world_ranks);
    MPI_Group_free(&g);
    MPI_Group_free(&w);
    free(mine);
    return 0;
}

static void live_add(weft_comm *c)
{
    pthread_mutex_lock(&live_mu);
    assign_id(c);
    c->next_live = live_head;
    if (live_head)
        live_head->prev_live = c;
    live_head = c;
    if (!abort_hook_installed && weft_at_abort(dump_on_abort, NULL) == 0)
        abort_hook_installed = 1;
    pthread_mutex_unlock(&live_mu);
}

static void live_remove(weft_comm *c)
{
    pthread_mutex_lock(&live_mu);
    if (c->prev_live)
        c->prev_live->next_live = c->next_live;
    else
        live_head = c->next_live;
    if (c->next_live)
        c->next_live->prev_live = c->prev_live;
    pthread_mutex_unlock(&live_mu);
}

static int dump_all_to(FILE *f, int rank)
{
    fprintf(f, "{\"rank\":%d,\"comms\":[", rank);
    int first = 1, rc = 0;
    for (weft_comm *c = live_head; c; c = c->next_live) {
        if (!first)
            fputc(',', f);
        first = 0;
        if (weft_flight_dump(c->flight, f) < 0)
            rc = WEFT_EIO;
    }
    fputs("]}\n", f);
    return rc;
}

int weft_comm_flight_dump_all(const char *dir)
{
    weft_ctx *ctx = weft_ctx_current();
    int rank = ctx ? ctx->rank : 0;
    char path[4200];
    weft_durable d;
    if (mkdir(dir, 0750) != 0 && errno != EEXIST)
        return weft_error(WEFT_EIO, "cannot create run directory %s: %s", dir, strerror(errno));
    snprintf(path, sizeof path, "%s/" WEFT_RUNFILE_FLIGHT_FMT, dir, rank);
    WEFT_CHECK(weft_durable_open(&d, path, WEFT_DURABLE_SYNC));
    /* The abort path may hold no locks; a bounded trylock avoids waiting on
     * a thread that died holding the registry. */
    int locked = 0;
    for (int i = 0; i < 1000 && !(locked = pthread_mutex_trylock(&live_mu) == 0); i++)
        usleep(1000);
    int rc = dump_all_to(d.f, rank);
    if (locked)
        pthread_mutex_unlock(&live_mu);
    if (rc) {
        weft_durable_discard(&d);
        return weft_error(WEFT_EIO, "writing %s failed", path);
    }
    return weft_durable_commit(&d);
}

int weft_comm_flight_dump(const weft_comm *c, FILE *out) { return weft_flight_dump(c->flight, out); }

/* --- creation ------------------------------------------------------------ */

static const weft_backend *pick_backend(weft_comm *c)
{
    for (int i = 0; weft_backends[i]; i++) {
        const weft_backend *b = weft_backends[i];
        int wanted = strcmp(c->opts.backend, "auto") == 0 || strcmp(c->opts.backend, b->name) == 0;
        if (wanted && b->can_connect(c))
            return b;
    }
    return NULL;
}

/* The reason a backend asked for by name refused, or NULL. */
static const char *why_not(const weft_comm *c)
{
    for (int i = 0; weft_backends[i]; i++)
        if (strcmp(c->opts.backend, weft_backends[i]->name) == 0)
            return weft_backends[i]->why_not ? weft_backends[i]->why_not(c) : NULL;
    return NULL;
}

/* Group names end up in JSON and file names: keep them to a safe alphabet. */
static void set_name(weft_comm *c, const char *name)
{
    snprintf(c->name, sizeof c->name, "%s", name && *name ? name : "comm");
    for (char *p = c->name; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._:/-", *p))
            *p = '_';
}

static int comm_create(weft_ctx *ctx, MPI_Comm dup_of, const char *name, const weft_comm_opts *opts,
                       weft_comm **out)
{
    weft_comm *c = calloc(1, sizeof *c);
    if (!c)
        return weft_error(WEFT_ENOMEM, "communicator '%s': out of memory", name);
    c->ctx = ctx;
    if (opts)
        c->opts = *opts;
    else
        weft_comm_opts_default(&c->opts);
    set_name(c, name);
    if (MPI_Comm_dup(dup_of, &c->mpi) != MPI_SUCCESS) {
        free(c);
        return weft_error(WEFT_ECOMM, "communicator '%s': MPI_Comm_dup failed", name);
    }
    MPI_Comm_set_errhandler(c->mpi, MPI_ERRORS_RETURN);
    MPI_Comm_rank(c->mpi, &c->rank);
    MPI_Comm_size(c->mpi, &c->size);
    c->oversubscribed = ctx->local_size > sysconf(_SC_NPROCESSORS_ONLN);
    c->backend = pick_backend(c);
    /* A backend named in comm.backend that cannot serve here is a
     * configuration error (exit 64), with the backend's own reason. */
    int rc = WEFT_ECONFIG;
    if (!c->backend)
        weft_error(rc, "communicator '%s': comm.backend '%s' cannot serve this group of %d ranks here%s%s",
                   c->name, c->opts.backend, c->size, why_not(c) ? ": " : "", why_not(c) ? why_not(c) : "");
    else
        rc = c->backend->init(c);
    if (rc == 0)
        rc = weft_flight_new(c->name, c->rank, c->size, c->backend->name, c->opts.flight_records,
                             &c->flight);
    if (rc == 0)
        rc = learn_world_ranks(c);
    if (rc < 0) {
        if (c->backend)
            c->backend->fini(c);
        weft_flight_free(c->flight);
        MPI_Comm_free(&c->mpi);
        free(c->world_ranks);
        free(c);
        return rc;
    }
    live_add(c);
    *out = c;
    return 0;
}

int weft_comm_world(weft_ctx *ctx, const weft_comm_opts *opts, weft_comm **out)
{
    if (!ctx || !out)
        return weft_error(WEFT_EINVAL, "weft_comm_world: ctx and out must not be NULL");
    return comm_create(ctx, ctx->world, "world", opts, out);
}

int weft_comm_split(weft_comm *parent, int color, int key, const char *name, weft_comm **out)
{
    if (!parent || !out)
        return weft_error(WEFT_EINVAL, "weft_comm_split: parent and out must not be NULL");
    if (parent->failed)
        return weft_error(WEFT_ESTATE, "split of failed communicator '%s': %s", parent->name,
                          parent->failure);
    MPI_Comm sub;
    if (MPI_Comm_split(parent->mpi, color < 0 ? MPI_UNDEFINED : color, key, &sub) != MPI_SUCCESS)
        return weft_comm_fail(parent, WEFT_ECOMM, "MPI_Comm_split(color %d) failed", color);
    *out = NULL;
    if (sub == MPI_COMM_NULL)
        return 0;
    char full[64];
    snprintf(full, sizeof full, "%s", name ? name : parent->name);
    int rc = comm_create(parent->ctx, sub, full, &parent->opts, out);
    MPI_Comm_free(&sub);
    return rc;
}

int weft_comm_sub(weft_comm *parent, MPI_Comm mpi, const char *suffix, const char *backend, weft_comm **out)
{
    weft_comm_opts o = parent->opts;
    snprintf(o.backend, sizeof o.backend, "%s", backend);
    char name[96];
    snprintf(name, sizeof name, "%s.%s", parent->name, suffix);
    return comm_create(parent->ctx, mpi, name, &o, out);
}

int weft_comm_dup(weft_comm *c, const char *name, weft_comm **out)
{
    if (!c || !out)
        return weft_error(WEFT_EINVAL, "weft_comm_dup: comm and out must not be NULL");
    if (c->failed)
        return weft_error(WEFT_ESTATE, "dup of failed communicator '%s': %s", c->name, c->failure);
    return comm_create(c->ctx, c->mpi, name ? name : c->name, &c->opts, out);
}

int weft_comm_mpi_dup(weft_comm *c, MPI_Comm *out)
{
    if (c->failed)
        return weft_error(WEFT_ESTATE, "MPI dup of failed communicator '%s': %s", c->name, c->failure);
    if (MPI_Comm_dup(c->mpi, out) != MPI_SUCCESS)
        return weft_comm_fail(c, WEFT_ECOMM, "MPI_Comm_dup failed");
    return 0;
}

void weft_comm_free(weft_comm *c)
{
    if (!c)
        return;
    live_remove(c);
    for (int i = 0; i < c->nrequests; i++) {
        weft_request_mpi_settled(c->all_requests[i]); /* one never completed */
        if (c->backend->request_release)
            c->backend->request_release(c->all_requests[i]);
        free(c->all_requests[i]);
    }
    free(c->all_requests);
    c->backend->fini(c);
    weft_flight_free(c->flight);
    free(c->world_ranks);
    /* A failed communicator may have operations that never completed; freeing
     * its MPI communicator would be collective, so leave it to MPI_Finalize. */
    if (!c->failed)
        MPI_Comm_free(&c->mpi);
    free(c);
}

int weft_comm_rank(const weft_comm *c) { return c->rank; }
int weft_comm_size(const weft_comm *c) { return c->size; }
const char *weft_comm_name(const weft_comm *c) { return c->name; }
const char *weft_comm_backend(const weft_comm *c) { return c->backend->name; }
int weft_comm_failed(const weft_comm *c) { return c->failed; }

int weft_comm_fail(weft_comm *c, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->failure, sizeof c->failure, fmt, ap);
    va_end(ap);
    if (!c->failed)
        c->failed = rc;
    return weft_error(rc, "communicator '%s' (rank %d of %d, %s): %s", c->name, c->rank, c->size,
                      c->backend ? c->backend->name : "?", c->failure);
}

void weft_comm_chunk(size_t count, int size, int rank, size_t *offset, size_t *len)
{
    size_t base = count / (size_t)size, extra = count % (size_t)size, r = (size_t)rank;
    *len = base + (r < extra ? 1 : 0);
    *offset = r * base + (r < extra ? r : extra);
}

const char *weft_redop_name(weft_redop op)
{
    static const char *const names[] = {"sum", "avg", "max", "min"};
    return (unsigned)op < WEFT_NREDOPS ? names[op] : "invalid";
}
