/*
 * plan.c -- the datasets of a checkpoint and this rank's share of them (see
 * plan.h).
 */
#include "checkpoint/plan.h"
#include "checkpoint/sum.h"
#include "collectives/comm.h"
#include "runtime/error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int same_shape(const weft_ckpt_name *a, int ndim, const int64_t shape[2])
{
    return a->ndim == ndim && a->shape[0] == shape[0] && (ndim == 1 || a->shape[1] == shape[1]);
}

/* Append the tensors of `all` (n of them) not yet in out. */
static int merge_names(const weft_ckpt_name *all, int n, weft_ckpt_name *out, int *nout)
{
    for (int i = 0; i < n; i++) {
        int j = 0;
        while (j < *nout && strcmp(out[j].name, all[i].name) != 0)
            j++;
        if (j == *nout)
            out[(*nout)++] = all[i];
        else if (!same_shape(&out[j], all[i].ndim, all[i].shape))
            return weft_error(WEFT_EINTERNAL, "checkpoint: ranks disagree on the global shape of tensor '%s'",
                              all[i].name);
    }
    return 0;
}

int weft_ckpt_names(MPI_Comm comm, const weft_ckpt_state *s, weft_ckpt_name **out, int *n)
{
    int size, mine = 0;
    MPI_Comm_size(comm, &size);
    weft_ckpt_name *loc = calloc((size_t)s->ntensors + 1, sizeof *loc);
    int *counts = calloc((size_t)size, sizeof(int)), *displs = calloc((size_t)size, sizeof(int));
    weft_ckpt_name *all = NULL;
    int rc = 0;
    if (!loc || !counts || !displs) {
        rc = weft_error(WEFT_ENOMEM, "checkpoint: out of memory");
        goto done;
    }
    for (int i = 0; i < s->ntensors; i++) {
        const weft_tensor *t = &s->tensors[i];
        if ((t->flags & WEFT_TENSOR_TIED_COPY))
            continue;
        snprintf(loc[mine].name, sizeof loc[mine].name, "%s", t->name);
        loc[mine].ndim = t->shard.ndim;
        loc[mine].shape[0] = t->shard.global_shape[0];
        loc[mine].shape[1] = t->shard.ndim == 2 ? t->shard.global_shape[1] : 0;
        mine++;
    }
    int bytes = mine * (int)sizeof *loc, total = 0;
    MPI_Allgather(&bytes, 1, MPI_INT, counts, 1, MPI_INT, comm);
    for (int r = 0; r < size; r++) {
        displs[r] = total;
        total += counts[r];
    }
    all = malloc((size_t)total + 1);
    *out = calloc((size_t)total / sizeof *loc + 1, sizeof **out);
    if (!all || !*out) {
        rc = weft_error(WEFT_ENOMEM, "checkpoint: out of memory");
        goto done;
    }
    MPI_Allgatherv(loc, bytes, MPI_BYTE, all, counts, displs, MPI_BYTE, comm);
    *n = 0;
    rc = merge_names(all, total / (int)sizeof *loc, *out, n);
done:
    free(loc);
    free(counts);
    free(displs);
    free(all);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

size_t weft_ckpt_moment_pos(const weft_ckpt_state *s, size_t x)
{
    size_t pos = 0;
    for (int i = 0; s->m && i < s->nranges; i++) {
        if (x >= s->ranges[i][0] && x < s->ranges[i][0] + s->ranges[i][1])
            return pos + (x - s->ranges[i][0]);
        pos += s->ranges[i][1];
    }
    return (size_t)-1;
}

static int add_dset(weft_ckpt_plan *p, int kind, const char *name, int ndim, const int64_t shape[2], size_t esize)
{
    static const char *const prefix[] = {"params/", "optim/m/", "optim/v/", "loader/", "rng/"};
    weft_ckpt_dset *d = &p->d[p->nd++];
    memset(d, 0, sizeof *d);
    snprintf(d->path, sizeof d->path, "%s%s", prefix[kind], name);
    snprintf(d->name, sizeof d->name, "%s", kind <= WEFT_CKPT_V ? name : "");
    d->kind = kind;
    d->ndim = ndim;
    d->shape[0] = shape[0];
    d->shape[1] = ndim == 2 ? shape[1] : 0;
    d->esize = esize;
    return 0;
}

/* Add local elements [a, b) of tensor t to dataset d, copied from src; the
 * copy's stage_off is relative to the dataset until offsets are assigned. */
static int add_piece(weft_ckpt_plan *p, int di, const weft_shard_spec *spec, size_t a, size_t b, const void *src)
{
    weft_ckpt_dset *d = &p->d[di];
    int cap = weft_ckpt_region_cap(spec);
    weft_ckpt_rect *r = realloc(d->rects, (size_t)(d->nrect + cap) * sizeof *r);
    if (!r)
        return weft_error(WEFT_ENOMEM, "checkpoint: out of memory");
    d->rects = r;
    d->nrect += weft_ckpt_region(spec, a, b, r + d->nrect);
    weft_ckpt_run *u = realloc(d->runs, (size_t)(d->nruns + 1) * sizeof *u);
    if (!u)
        return weft_error(WEFT_ENOMEM, "checkpoint: out of memory");
    d->runs = u;
    d->runs[d->nruns++] = (weft_ckpt_run){*spec, a, b, d->count * d->esize};
    if (p->ncopies == p->cap_copies) {
        int nc = p->cap_copies ? 2 * p->cap_copies : 64;
        weft_ckpt_copy *c = realloc(p->copies, (size_t)nc * sizeof *c);
        if (!c)
            return weft_error(WEFT_ENOMEM, "checkpoint: out of memory");
        p->copies = c;
        p->cap_copies = nc;
    }
    /* bytes and a provisional offset; the dataset index rides in stage_off's
     * high part until assign_offsets fixes it */
    p->copies[p->ncopies++] = (weft_ckpt_copy){src, d->count * d->esize, (b - a) * d->esize};
    p->copies[p->ncopies - 1].stage_off |= (size_t)di << 48;
    d->count += b - a;
    return 0;
}

static int find_name(const weft_ckpt_name *names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i].name, name) == 0)
            return i;
    return -1;
}

enum { PARAMS = 1, MOMENTS = 2 };

/* This rank's share of tensor t: its write ranges intersected with t, of
 * the parameters and/or (what) the moments. */
static int add_tensor(weft_ckpt_plan *p, const weft_ckpt_state *s, const weft_tensor *t, int gi, int ng,
                      const size_t (*w)[2], int nw, int what)
{
    for (int i = 0; i < nw; i++) {
        size_t a = w[i][0] > t->offset ? w[i][0] : t->offset;
        size_t e1 = w[i][0] + w[i][1], e2 = t->offset + t->numel, b = e1 < e2 ? e1 : e2;
        if (a >= b)
            continue;
        if (what & PARAMS)
            WEFT_CHECK(add_piece(p, gi, &t->shard, a - t->offset, b - t->offset, s->params + a));
        if (!(what & MOMENTS))
            continue;
        size_t pos = weft_ckpt_moment_pos(s, a);
        if (pos == (size_t)-1 || weft_ckpt_moment_pos(s, b - 1) != pos + (b - a - 1))
            return weft_error(WEFT_EINTERNAL, "checkpoint: no optimizer moments for elements %zu..%zu of '%s'", a,
                              b, t->name);
        WEFT_CHECK(add_piece(p, ng + gi, &t->shard, a - t->offset, b - t->offset, s->m + pos));
        WEFT_CHECK(add_piece(p, 2 * ng + gi, &t->shard, a - t->offset, b - t->offset, s->v + pos));
    }
    return 0;
}

/* Datasets get 64-byte aligned places in staging, in order; copies learn
 * theirs. */
static void assign_offsets(weft_ckpt_plan *p)
{
    size_t off = 0;
    for (int i = 0; i < p->nd; i++) {
        p->d[i].stage_off = off;
        off += (p->d[i].count * p->d[i].esize + 63) & ~(size_t)63;
    }
    for (int i = 0; i < p->ncopies; i++) {
        size_t di = p->copies[i].stage_off >> 48, rel = p->copies[i].stage_off & (((size_t)1 << 48) - 1);
        p->copies[i].stage_off = p->d[di].stage_off + rel;
    }
    p->stage_bytes = off;
}

/* Whether rank r may take dataset i of n: a holder, or anyone when none
 * holds it. */
static int may_take(const unsigned char *held, int i, int n, int size, int r)
{
    if (!held || held[(size_t)r * (size_t)n + (size_t)i])
        return 1;
    for (int q = 0; q < size; q++)
        if (held[(size_t)q * (size_t)n + (size_t)i])
            return 0;
    return 1;
}

static int candidates(const unsigned char *held, int i, int n, int size)
{
    int c = 0;
    for (int r = 0; r < size; r++)
        c += may_take(held, i, n, size, r);
    return c;
}

void weft_ckpt_assign_by_bytes(const size_t *bytes, const unsigned char *held, int n, int size, int *owner)
{
    size_t *load = calloc((size_t)size, sizeof *load);
    char *done = calloc((size_t)n + 1, 1);
    int *nc = calloc((size_t)n + 1, sizeof *nc);
    for (int i = 0; i < n && nc; i++)
        nc[i] = candidates(held, i, n, size);
    for (int k = 0; k < n && load && done && nc; k++) {
        int next = -1;
        for (int i = 0; i < n; i++)
            if (!done[i] && (next < 0 || nc[i] < nc[next] || (nc[i] == nc[next] && bytes[i] > bytes[next])))
                next = i;
        int r = -1;
        for (int j = 0; j < size; j++)
            if (may_take(held, next, n, size, j) && (r < 0 || load[j] < load[r]))
                r = j;
        done[next] = 1;
        owner[next] = r;
        load[r] += bytes[next];
    }
    for (int i = 0; (!load || !done || !nc) && i < n; i++)
        owner[i] = i % size;
    free(load);
    free(done);
    free(nc);
}

/* Which rank hashes each dataset: one that writes all of it (it hashes the
 * bytes in its read-back pass, at no extra read), else -- a dataset split
 * between ranks, whose blocks (sum.h) every rank hashes where it wrote all
 * of one, and its hasher the rest, reading them from the file -- spread by
 * bytes, so that no rank reads much more than another. */
static int assign_hashers(MPI_Comm comm, weft_ckpt_plan *p)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int *h = calloc((size_t)p->nd + 1, sizeof *h), *owner = calloc((size_t)p->nd + 1, sizeof *owner);
    size_t *split = calloc((size_t)p->nd + 1, sizeof *split);
    if (!h || !owner || !split) {
        free(h), free(owner), free(split);
        return weft_error(WEFT_ENOMEM, "checkpoint: out of memory");
    }
    for (int i = 0; i < p->nd; i++) {
        weft_ckpt_dset *d = &p->d[i];
        size_t numel = (size_t)d->shape[0] * (size_t)(d->ndim == 2 ? d->shape[1] : 1);
        d->whole = d->count == numel;
        h[i] = d->whole ? rank + 1 : 0;
    }
    MPI_Allreduce(MPI_IN_PLACE, h, p->nd, MPI_INT, MPI_MAX, comm);
    for (int i = 0; i < p->nd; i++) {
        const weft_ckpt_dset *d = &p->d[i];
        split[i] = h[i] ? 0 : weft_ckpt_dset_bytes(d);
    }
    weft_ckpt_assign_by_bytes(split, NULL, p->nd, size, owner);
    p->nblocks = 0;
    for (int i = 0; i < p->nd; i++) {
        weft_ckpt_dset *d = &p->d[i];
        d->hasher = h[i] ? h[i] == rank + 1 : owner[i] == rank;
        d->split = h[i] == 0;
        d->block0 = p->nblocks;
        p->nblocks += d->split ? weft_ckpt_sum_nblocks(weft_ckpt_dset_bytes(d), WEFT_CKPT_SUM_BLOCK) : 0;
    }
    free(h);
    free(owner);
    free(split);
    return 0;
}

static int cmp_range(const void *x, const void *y)
{
    size_t a = ((const size_t *)x)[0], b = ((const size_t *)y)[0];
    return (a > b) - (a < b);
}

/* The flat ranges this rank writes, in increasing order (a dataset's
 * staging must follow the file's row-major order): its ZeRO-1 ranges (data
 * parallelism lists them from the end of the buffer), or its even share;
 * all: the whole buffer (a file per node: everything this rank holds). */
static int write_ranges(const weft_ckpt_layout *l, const weft_ckpt_state *s, int sharded, int all,
                        size_t (**w)[2], int *nw)
{
    int n = sharded && s->nranges > 0 ? s->nranges : 1;
    *w = calloc((size_t)n, sizeof **w);
    if (!*w)
        return weft_error(WEFT_ENOMEM, "checkpoint: out of memory");
    if (sharded && s->nranges > 0) {
        memcpy(*w, s->ranges, (size_t)n * sizeof **w);
        qsort(*w, (size_t)n, sizeof **w, cmp_range);
    } else if (all)
        (*w)[0][0] = 0, (*w)[0][1] = s->n;
    else
        weft_comm_chunk(s->n, l->dp_size, l->dp_rank, &(*w)[0][0], &(*w)[0][1]);
    *nw = n;
    return 0;
}

/* Whether this rank writes tensor t at all: not a tied copy, and a tensor
 * whole across tensor parallelism only from TP rank 0. */
static int writes_tensor(const weft_ckpt_layout *l, const weft_tensor *t)
{
    return !(t->flags & WEFT_TENSOR_TIED_COPY) && (t->shard.split_dim >= 0 || l->tp_rank == 0);
}

int weft_ckpt_cut_run(int r, int size, size_t done, size_t numel, size_t total)
{
    /* run r ends at the boundary nearest (r + 1) * total / size: the item
     * goes to r + 1 once its middle is past that mark */
    while (r + 1 < size && 2 * done + numel > 2 * (total * (size_t)(r + 1) / (size_t)size))
        r++;
    return r;
}

/* Data every data-parallel replica holds the same (the parameters below
 * ZeRO-3, the moments without ZeRO) is written by one replica per tensor,
 * whole: then no dataset is split between replicas, and its checksum comes
 * from its writer's read-back pass instead of a second read of the file by
 * a hasher (save_data.c). An even share of the flat buffer, as before, cut
 * a tensor at each replica's boundary. The tensors are cut into dp_size
 * runs in buffer order, each cut at the tensor boundary nearest its even
 * share (so a replica's bytes are off by at most half a tensor each side):
 * a replica's tensors stay adjacent in the buffer, in staging and in the
 * file, so its copies merge (plan_merge_copies) and its writes are long
 * runs. The ranges are this rank's tensors', increasing. */
static int replica_ranges(const weft_ckpt_layout *l, const weft_ckpt_state *s, size_t (**w)[2], int *nw)
{
    size_t total = 0, done = 0;
    for (int i = 0; i < s->ntensors; i++)
        total += writes_tensor(l, &s->tensors[i]) ? s->tensors[i].numel : 0;
    *w = calloc((size_t)s->ntensors + 1, sizeof **w);
    *nw = 0;
    if (!*w)
        return weft_error(WEFT_ENOMEM, "checkpoint: out of memory");
    int r = 0; /* the replica writing the next tensor */
    for (int i = 0; i < s->ntensors; i++) {
        const weft_tensor *t = &s->tensors[i];
        if (!writes_tensor(l, t))
            continue;
        r = weft_ckpt_cut_run(r, l->dp_size, done, t->numel, total);
        if (r == l->dp_rank)
            (*w)[*nw][0] = t->offset, (*w)[(*nw)++][1] = t->numel;
        done += t->numel;
    }
    qsort(*w, (size_t)*nw, sizeof **w, cmp_range);
    return 0;
}

/* Every tensor's share: in one file for the job, the elements no other
 * rank writes -- the replicated data by tensor (replica_ranges), the ZeRO
 * shards' by range; in a file per node (nodewise), all this rank holds --
 * its parameters (all of them but under ZeRO-3, whole tensors on every TP
 * rank) and its moments -- so that the node's file alone resumes its
 * ranks (replicas on one node write the same bytes at the same offsets). */
static int add_tensors(weft_ckpt_plan *p, const weft_ckpt_layout *l, const weft_ckpt_state *s,
                       const weft_ckpt_name *names, int ng, int moments, int nodewise)
{
    size_t (*w)[2] = NULL, (*wm)[2] = NULL;
    int nw = 0, nwm = 0, rc = 0;
    if (nodewise) {
        if ((rc = write_ranges(l, s, l->zero >= 3, 1, &w, &nw)) == 0)
            rc = write_ranges(l, s, l->zero != 0, 1, &wm, &nwm);
    } else {
        rc = l->zero >= 3 ? write_ranges(l, s, 1, 0, &w, &nw) : replica_ranges(l, s, &w, &nw);
        if (rc == 0)
            rc = l->zero != 0 ? write_ranges(l, s, 1, 0, &wm, &nwm) : replica_ranges(l, s, &wm, &nwm);
    }
    for (int i = 0; i < s->ntensors && rc == 0; i++) {
        const weft_tensor *t = &s->tensors[i];
        if ((t->flags & WEFT_TENSOR_TIED_COPY) || (!nodewise && !writes_tensor(l, t)))
            continue;
        int gi = find_name(names, ng, t->name);
        if ((rc = add_tensor(p, s, t, gi, ng, (const size_t(*)[2])w, nw, PARAMS)) == 0 && moments)
            rc = add_tensor(p, s, t, gi, ng, (const size_t(*)[2])wm, nwm, MOMENTS);
    }
    free(w);
    free(wm);
    return rc;
}

static int fill_plan(MPI_Comm comm, MPI_Comm hcomm, const weft_ckpt_layout *l, const weft_ckpt_state *s,
                     size_t loader_len, weft_ckpt_plan *p, const weft_ckpt_name *names, int ng)
{
    int hrank, nodewise = hcomm != comm;
    MPI_Comm_rank(hcomm, &hrank);
    int rank, size, moments = s->m != NULL, any_moments;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    MPI_Allreduce(&moments, &any_moments, 1, MPI_INT, MPI_MAX, comm);
    p->d = calloc((size_t)(3 * ng + 2), sizeof *p->d);
    if (!p->d)
        return weft_error(WEFT_ENOMEM, "checkpoint: out of memory");
    for (int k = WEFT_CKPT_PARAM; k <= (any_moments ? WEFT_CKPT_V : WEFT_CKPT_PARAM); k++)
        for (int i = 0; i < ng; i++)
            add_dset(p, k, names[i].name, names[i].ndim, names[i].shape, sizeof(float));
    WEFT_CHECK(add_tensors(p, l, s, names, ng, moments, nodewise));
    int64_t lshape[2] = {(int64_t)loader_len, 0}, rshape[2] = {size, 0};
    weft_shard_spec lspec = weft_shard_whole(lshape[0], 0), rspec = weft_shard_whole(size, 0);
    if (loader_len > 0) {
        add_dset(p, WEFT_CKPT_LOADER, "state", 1, lshape, 1);
        if (hrank == 0) /* the loader's position is the same on every rank */
            WEFT_CHECK(add_piece(p, p->nd - 1, &lspec, 0, loader_len, NULL));
    }
    add_dset(p, WEFT_CKPT_RNG, "state", 1, rshape, sizeof(uint64_t));
    return add_piece(p, p->nd - 1, &rspec, (size_t)rank, (size_t)rank + 1, NULL);
}

static int cmp_copy(const void *x, const void *y)
{
    const weft_ckpt_copy *a = x, *b = y;
    uintptr_t p = (uintptr_t)a->src, q = (uintptr_t)b->src;
    if (!p != !q)
        return p ? -1 : 1; /* the filled-at-save ones (no source) last */
    return (p > q) - (p < q);
}

/* Copies adjacent both in the state and in staging become one: a rank's
 * consecutive tensors (its ZeRO range, its run of replicated tensors) are
 * one copy of many megabytes instead of one per tensor -- fewer calls
 * (on a GPU, fewer cudaMemcpyAsync), and long runs for the streaming
 * stores of weft_copy_stream. Their order does not matter: the copies are
 * disjoint. */
static void plan_merge_copies(weft_ckpt_plan *p)
{
    if (p->ncopies < 2)
        return;
    qsort(p->copies, (size_t)p->ncopies, sizeof *p->copies, cmp_copy);
    int n = 0;
    for (int i = 0; i < p->ncopies; i++) {
        weft_ckpt_copy *last = n ? &p->copies[n - 1] : NULL, *c = &p->copies[i];
        if (last && last->src && c->src && (const char *)last->src + last->bytes == (const char *)c->src &&
            last->stage_off + last->bytes == c->stage_off)
            last->bytes += c->bytes;
        else
            p->copies[n++] = *c;
    }
    p->ncopies = n;
}

int weft_ckpt_plan_build(MPI_Comm comm, MPI_Comm node, const weft_ckpt_layout *l, const weft_ckpt_state *s,
                         size_t loader_len, weft_ckpt_plan *p)
{
    MPI_Comm hcomm = node != MPI_COMM_NULL ? node : comm;
    memset(p, 0, sizeof *p);
    weft_ckpt_name *names;
    int ng;
    WEFT_CHECK(weft_ckpt_names(comm, s, &names, &ng));
    int rc = fill_plan(comm, hcomm, l, s, loader_len, p, names, ng);
    free(names);
    if (rc == 0) {
        assign_offsets(p);
        plan_merge_copies(p);
        /* the loader and rng copies have no source: filled at each save */
        for (int i = 0; i < p->nd; i++) {
            if (p->d[i].kind == WEFT_CKPT_LOADER)
                p->loader_off = p->d[i].stage_off;
            if (p->d[i].kind == WEFT_CKPT_RNG)
                p->rng_off = p->d[i].stage_off;
        }
        rc = assign_hashers(hcomm, p);
    }
    if (rc)
        weft_ckpt_plan_free(p);
    return rc;
}

size_t weft_ckpt_dset_bytes(const weft_ckpt_dset *d)
{
    return (size_t)d->shape[0] * (size_t)(d->ndim == 2 ? d->shape[1] : 1) * d->esize;
}

void weft_ckpt_plan_free(weft_ckpt_plan *p)
{
    for (int i = 0; p->d && i < p->nd; i++)
        free(p->d[i].rects), free(p->d[i].runs);
    free(p->d);
    free(p->copies);
    memset(p, 0, sizeof *p);
}
