/*
 * encode_pool.c -- the encoding threads of encode_pool.h: one mutex, a
 * condition for "a batch is ready" (counted by a batch number, so a thread
 * never runs one batch twice) and one for "every thread finished it"; the
 * jobs of a batch are handed out by an atomic counter.
 */
#include "data/encode_pool.h"
#include "runtime/error.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct weft_encode_pool {
    const weft_tokenizer *t;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t batch;        /* number of the current batch */
    int finished;          /* threads done with it */
    int quit;
    weft_encode_job *jobs;
    size_t njobs;
    atomic_size_t next;
    int nthreads;
    pthread_t *threads;
};

int weft_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    return 1;
}

static void run_jobs(weft_encode_pool *p)
{
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->njobs)
            return;
        weft_encode_job *j = &p->jobs[i];
        j->rc = weft_tokenizer_encode(p->t, j->text, j->len, j->ids, j->cap, &j->nids);
        if (j->rc)
            snprintf(j->err, sizeof j->err, "%s", weft_last_error());
    }
}

static void *worker(void *arg)
{
    weft_encode_pool *p = arg;
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->batch == seen && !p->quit)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->quit) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->batch;
        pthread_mutex_unlock(&p->mu);
        run_jobs(p);
        pthread_mutex_lock(&p->mu);
        if (++p->finished == p->nthreads)
            pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

int weft_encode_pool_new(const weft_tokenizer *t, int threads, weft_encode_pool **out)
{
    weft_encode_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->threads = calloc((size_t)(threads > 0 ? threads : 1), sizeof *p->threads))) {
        free(p);
        return weft_error(WEFT_ENOMEM, "no memory for %d encoding threads", threads);
    }
    p->t = t;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 0; i < (threads > 0 ? threads : 1); i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
            weft_encode_pool_free(p);
            return weft_error(WEFT_ENOMEM, "cannot start encoding thread %d of %d", i + 1, threads);
        }
        p->nthreads++;
    }
    *out = p;
    return 0;
}

int weft_encode_pool_run(weft_encode_pool *p, weft_encode_job *jobs, size_t n)
{
    pthread_mutex_lock(&p->mu);
    p->jobs = jobs;
    p->njobs = n;
    atomic_store(&p->next, 0);
    p->finished = 0;
    p->batch++;
    pthread_cond_broadcast(&p->go);
    while (p->finished < p->nthreads)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < n; i++)
        if (jobs[i].rc)
            return weft_error(jobs[i].rc, "%s", jobs[i].err);
    return 0;
}

void weft_encode_pool_free(weft_encode_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}
