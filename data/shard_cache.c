/*
 * shard_cache.c -- LRU cache of open shard descriptors with reference counts
 * (see shard_cache.h). One mutex guards the table; opening a shard (a 4 KiB
 * header read) happens under it, which serialises first opens but keeps the
 * table simple; a steady-state hit costs a lock and two stores.
 */
#include "data/shard_cache.h"
#include "runtime/error.h"
#include "runtime/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
    int fd;           /* -1: empty */
    bool direct;
    size_t id;
    int users;        /* readers holding it */
    uint64_t last_use;
} entry;

struct weft_shard_cache {
    pthread_mutex_t mu;
    pthread_cond_t cv_idle;   /* signalled when an entry's users drops to 0 */
    entry *e;                 /* (capacity) */
    int capacity;
    int *slot_of;             /* (n_ids) entry index, -1 when closed */
    size_t n_ids;
    uint64_t clock;
    atomic_bool direct;
};

int weft_shard_cache_new(int capacity, size_t n_ids, bool direct, weft_shard_cache **out)
{
    weft_shard_cache *c = calloc(1, sizeof *c);
    if (c) {
        c->e = calloc((size_t)capacity, sizeof *c->e);
        c->slot_of = malloc((n_ids ? n_ids : 1) * sizeof *c->slot_of);
    }
    if (!c || !c->e || !c->slot_of) {
        if (c) {
            free(c->e);
            free(c->slot_of);
        }
        free(c);
        return weft_error(WEFT_ENOMEM, "data: no memory for a cache of %d shard descriptors", capacity);
    }
    c->capacity = capacity;
    c->n_ids = n_ids;
    for (int i = 0; i < capacity; i++)
        c->e[i].fd = -1;
    for (size_t i = 0; i < n_ids; i++)
        c->slot_of[i] = -1;
    atomic_store(&c->direct, direct);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv_idle, NULL);
    *out = c;
    return 0;
}

void weft_shard_cache_free(weft_shard_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->capacity; i++)
        if (c->e[i].fd >= 0)
            close(c->e[i].fd);
    pthread_cond_destroy(&c->cv_idle);
    pthread_mutex_destroy(&c->mu);
    free(c->e);
    free(c->slot_of);
    free(c);
}

/* An idle entry to reuse: an empty one, else the least recently used idle
 * one (closed here). -1 when all are in use. */
static int pick_victim(weft_shard_cache *c)
{
    int v = -1;
    for (int i = 0; i < c->capacity; i++) {
        entry *e = &c->e[i];
        if (e->fd < 0)
            return i;
        if (e->users == 0 && (v < 0 || e->last_use < c->e[v].last_use))
            v = i;
    }
    if (v >= 0) {
        close(c->e[v].fd);
        c->slot_of[c->e[v].id] = -1;
        c->e[v].fd = -1;
    }
    return v;
}

static int open_into(weft_shard_cache *c, entry *e, const char *dir, const char *name,
                     const weft_shard_header *expect)
{
    char path[4096];
    weft_shard_header h;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int want = atomic_load(&c->direct), used = 0;
    WEFT_CHECK(weft_shard_open(path, want, expect, &h, &e->fd, &used));
    e->direct = used;
    if (want && !used)
        weft_shard_cache_drop_direct(c, path);
    return 0;
}

/* An entry opened O_DIRECT after direct I/O was dropped: reopen buffered. */
static void refresh(weft_shard_cache *c, int slot)
{
    entry *e = &c->e[slot];
    if (e->direct && e->users == 0 && !atomic_load(&c->direct)) {
        close(e->fd);
        e->fd = -1;
        c->slot_of[e->id] = -1;
    }
}

int weft_shard_cache_get(weft_shard_cache *c, size_t id, const char *dir, const char *name,
                         const weft_shard_header *expect, int *fd, bool *direct)
{
    int rc = 0, s;
    pthread_mutex_lock(&c->mu);
    if ((s = c->slot_of[id]) >= 0)
        refresh(c, s);
    if ((s = c->slot_of[id]) < 0) {
        while ((s = pick_victim(c)) < 0)
            pthread_cond_wait(&c->cv_idle, &c->mu);
        rc = open_into(c, &c->e[s], dir, name, expect);
        if (rc == 0) {
            c->e[s].id = id;
            c->slot_of[id] = s;
        }
    }
    if (rc == 0) {
        entry *e = &c->e[s];
        e->users++;
        e->last_use = ++c->clock;
        *fd = e->fd;
        *direct = e->direct;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void weft_shard_cache_put(weft_shard_cache *c, size_t id)
{
    pthread_mutex_lock(&c->mu);
    int s = c->slot_of[id];
    if (s >= 0 && --c->e[s].users == 0)
        pthread_cond_signal(&c->cv_idle);
    pthread_mutex_unlock(&c->mu);
}

void weft_shard_cache_drop_direct(weft_shard_cache *c, const char *path)
{
    if (atomic_exchange(&c->direct, false))
        WEFT_WARN("data: %s: the filesystem refuses O_DIRECT; reading through the page cache instead", path);
}

bool weft_shard_cache_direct(const weft_shard_cache *c) { return atomic_load(&c->direct); }
