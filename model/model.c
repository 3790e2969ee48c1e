/*
 * model.c -- the parts of the model interface every implementation shares:
 * the parameter table and the flat parameter and gradient buffers (model.h).
 */
#include "model/model.h"
#include "kernels/ops.h"
#include "runtime/error.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int weft_model_add_param(weft_model *m, int cap, const char *name, weft_shard_spec shard, unsigned flags)
{
    if (!m->params) {
        m->params = calloc((size_t)cap, sizeof *m->params);
        if (!m->params)
            return weft_error(WEFT_ENOMEM, "model: out of memory for %d parameters", cap);
    }
    if (m->nparams >= cap)
        return weft_error(WEFT_EINTERNAL, "model: more than %d parameters (adding %s)", cap, name);
    weft_tensor *t = &m->params[m->nparams++];
    *t = weft_tensor_param(name, shard, m->n, flags);
    m->n += t->numel;
    return 0;
}

int weft_model_freeze(weft_model *m)
{
    if (m->frozen || m->param_data)
        return weft_error(WEFT_EINTERNAL, "model: weft_model_freeze twice, or after weft_model_alloc");
    m->frozen = m->params;
    m->nfrozen = m->nparams;
    m->frozen_n = m->n;
    for (int i = 0; i < m->nfrozen; i++)
        m->frozen[i].flags &= ~(unsigned)WEFT_TENSOR_TRAINABLE;
    m->params = NULL;
    m->nparams = 0;
    m->n = 0;
    return 0;
}

static size_t page_round(size_t bytes, size_t page) { return (bytes + page - 1) / page * page; }

int weft_model_alloc(weft_model *m)
{
    weft_dev *d = weft_device_current();
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pb = page_round((m->n ? m->n : 1) * sizeof(float), page);
    size_t fb = m->nfrozen ? page_round((m->frozen_n ? m->frozen_n : 1) * sizeof(float), page) : 0;
    WEFT_CHECK(weft_device_arena_new(d, "model", 2 * pb + fb, &m->arena));
    WEFT_CHECK(weft_device_arena_alloc(m->arena, pb, page, (void **)&m->param_data));
    WEFT_CHECK(weft_device_arena_alloc(m->arena, pb, page, (void **)&m->grad_data));
    if (m->nfrozen)
        WEFT_CHECK(weft_device_arena_alloc(m->arena, fb, page, (void **)&m->frozen_data));
    /* The widest column reduction a backward makes (bias and norm-weight
     * gradients): no wider than the widest dimension of any tensor. */
    int64_t cols = 1;
    for (int i = 0; i < m->nparams + m->nfrozen; i++) {
        const weft_tensor *t = i < m->nparams ? &m->params[i] : &m->frozen[i - m->nparams];
        for (int k = 0; k < t->ndim; k++)
            cols = t->shape[k] > cols ? t->shape[k] : cols;
    }
    WEFT_CHECK(weft_ops_open(d, (int)cols, &m->kops));
    weft_device where = weft_device_where(d);
    for (int i = 0; i < m->nparams; i++)
        m->params[i].device = where;
    for (int i = 0; i < m->nfrozen; i++)
        m->frozen[i].device = where;
    return 0;
}

int weft_model_acts_new(weft_model *m, size_t host_bytes, int ncarve)
{
    const weft_model_mem *mm = &m->mem;
    size_t planned = (size_t)mm->nslots * mm->slot_bytes + mm->shared_bytes;
    if (!m->kops || host_bytes > planned || ncarve < 0)
        return weft_error(WEFT_EINTERNAL, "model: activation arena asked %s (planned %zu bytes, %zu on the host)",
                          m->kops ? "with more host bytes than planned" : "before weft_model_alloc", planned,
                          host_bytes);
    size_t bytes = planned - host_bytes + (size_t)ncarve * WEFT_DEVICE_ALIGN;
    return weft_device_arena_new(m->kops->dev, "activations", bytes, &m->acts);
}

int weft_model_acts_take(weft_model *m, size_t bytes, void **out)
{
    return weft_device_arena_alloc(m->acts, bytes, 0, out);
}

/* Cut this rank's piece of a global tensor (host) into local (host, the
 * piece's own layout). */
static void take_piece(const weft_shard_spec *s, const float *global, float *local)
{
    int64_t lshape[2];
    weft_shard_local_shape(s, lshape);
    int64_t gcols = s->ndim == 2 ? s->global_shape[1] : 1, lcols = s->ndim == 2 ? lshape[1] : 1;
    for (int i = 0; i < weft_shard_nslabs(s); i++) {
        int64_t st[2], ct[2], ls;
        weft_shard_slab(s, i, st, ct, &ls);
        for (int64_t r = 0; r < ct[0]; r++) {
            int64_t lr = s->split_dim == 0 ? ls + r : r, lc = s->split_dim == 1 ? ls : 0;
            memcpy(local + lr * lcols + lc, global + (st[0] + r) * gcols + st[1], (size_t)ct[1] * sizeof(float));
        }
    }
}

/* The piece of global tensor g (host) that t holds, cut on the host in
 * piece, then copied up into dst (t's storage on the model's device). */
static int put_piece(weft_model *m, const weft_tensor *t, const float *global, float *piece, float *dst)
{
    take_piece(&t->shard, global, piece);
    return weft_device_copy(m->kops->dev, dst, piece, t->numel * sizeof(float), WEFT_COPY_H2D);
}

int weft_model_init_from_whole(weft_model *m, const weft_model *whole, uint64_t seed, weft_param_fill fill, void *arg)
{
    size_t big = 0;
    for (int i = 0; i < whole->nparams; i++)
        big = whole->params[i].numel > big ? whole->params[i].numel : big;
    for (int i = 0; i < whole->nfrozen; i++)
        big = whole->frozen[i].numel > big ? whole->frozen[i].numel : big;
    /* the global tensor's values, then this rank's piece of it (no larger) */
    float *buf = malloc(2 * (big ? big : 1) * sizeof(float)), *piece = buf + (big ? big : 1);
    if (!buf)
        return weft_error(WEFT_ENOMEM, "model: out of memory initialising the parameters (%zu floats)", big);
    weft_rng rng;
    weft_rng_seed(&rng, seed);
    int rc = 0;
    /* The frozen table first: a model with adapters draws its base values
     * as the same model without them draws its parameters. */
    for (int i = 0; rc == 0 && i < whole->nfrozen + whole->nparams; i++) {
        const weft_tensor *g = i < whole->nfrozen ? &whole->frozen[i] : &whole->params[i - whole->nfrozen];
        fill(arg, g, &rng, buf);
        for (int j = 0; rc == 0 && j < m->nparams; j++)
            if (strcmp(m->params[j].name, g->name) == 0)
                rc = put_piece(m, &m->params[j], buf, piece, m->param_data + m->params[j].offset);
        for (int j = 0; rc == 0 && j < m->nfrozen; j++)
            if (strcmp(m->frozen[j].name, g->name) == 0)
                rc = put_piece(m, &m->frozen[j], buf, piece, m->frozen_data + m->frozen[j].offset);
    }
    free(buf);
    return rc;
}

int weft_model_decode_check(int tp, int pp, int V, int context, int cached, const int32_t *tokens, int n, int pos0)
{
    if (tp != 1 || pp != 1)
        return weft_error(WEFT_EINVAL, "decoding needs the whole model on one rank, but this part is split over "
                          "parallel.tp = %d x parallel.pp = %d ranks: generate with tp = pp = 1", tp, pp);
    if (n < 1 || pos0 < 0)
        return weft_error(WEFT_EINVAL, "decode: %d tokens at position %d: nothing to decode", n, pos0);
    if (pos0 != 0 && pos0 != cached)
        return weft_error(WEFT_EINVAL, "decode: tokens at position %d, but the cache holds positions 0..%d: "
                          "continue at %d, or start a new sequence at 0", pos0, cached - 1, cached);
    if (pos0 + n > context)
        return weft_error(WEFT_EINVAL, "decode: positions %d..%d are past the model's %d (model.context)", pos0,
                          pos0 + n - 1, context);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return weft_error(WEFT_EINVAL, "decode: token %d (at position %d) is outside the vocabulary [0, %d)",
                              (int)tokens[i], pos0 + i, V);
    return 0;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

int weft_model_set_units(weft_model *m, const size_t *starts, int n)
{
    size_t *u = malloc((size_t)(n + 1) * sizeof *u);
    if (!u)
        return weft_error(WEFT_ENOMEM, "model: out of memory");
    int k = 0;
    u[k++] = 0;
    for (int i = 0; i < n; i++)
        if (starts[i] < m->n)
            u[k++] = starts[i];
    qsort(u, (size_t)k, sizeof *u, cmp_size);
    int w = 1;
    for (int i = 1; i < k; i++)
        if (u[i] != u[w - 1])
            u[w++] = u[i];
    free(m->units);
    m->units = u;
    m->nunits = m->n ? w : 0;
    return 0;
}

/* The unit starting at start, or -1 (binary search: a block's use costs
 * log L comparisons, not L). */
static int unit_at(const weft_model *m, size_t start)
{
    int lo = 0, hi = m->nunits - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (m->units[mid] == start)
            return mid;
        if (m->units[mid] < start)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

int weft_model_use_begin(weft_model *m, size_t start, int dir)
{
    int u = m->use.begin ? unit_at(m, start) : -1;
    return u < 0 ? 0 : m->use.begin(m->use.arg, u, dir);
}

void weft_model_progress(weft_model *m)
{
    if (m->use.progress)
        m->use.progress(m->use.arg);
}

void weft_model_use_end(weft_model *m, size_t start)
{
    int u = m->use.end ? unit_at(m, start) : -1;
    if (u >= 0)
        m->use.end(m->use.arg, u);
}

void weft_model_release(weft_model *m)
{
    free(m->params);
    weft_device_arena_free(m->arena); /* param_data, grad_data, frozen_data */
    m->arena = NULL;
    weft_device_arena_free(m->acts); /* the activations (weft_model_acts_new) */
    m->acts = NULL;
    weft_ops_close(m->kops);
    m->kops = NULL;
    free(m->frozen);
    free(m->units);
    m->units = NULL;
    m->nunits = 0;
    m->params = m->frozen = NULL;
    m->param_data = m->grad_data = m->frozen_data = NULL;
}

int weft_model_part_check(const weft_model_part *p)
{
    if (p->tp_size < 1 || p->pp_size < 1 || p->tp_rank < 0 || p->tp_rank >= p->tp_size || p->pp_rank < 0 ||
        p->pp_rank >= p->pp_size || p->nslots < 1)
        return weft_error(WEFT_EINVAL, "model: bad part (tp %d/%d, pp %d/%d, %d slots)", p->tp_rank, p->tp_size,
                          p->pp_rank, p->pp_size, p->nslots);
    if (p->tp_size > 1 && (!p->tp || weft_comm_size(p->tp) != p->tp_size))
        return weft_error(WEFT_EINVAL, "model: tensor parallelism over %d ranks needs their communicator",
                          p->tp_size);
    return 0;
}

void weft_model_split_windows(const int32_t *batch, int mb, int B, int T, int32_t *inputs, int32_t *targets)
{
    for (int i = 0; i < B; i++) {
        const int32_t *w = batch + ((size_t)mb * B + i) * (size_t)(T + 1);
        memcpy(inputs + (size_t)i * T, w, (size_t)T * sizeof(int32_t));
        memcpy(targets + (size_t)i * T, w + 1, (size_t)T * sizeof(int32_t));
    }
}

const weft_tensor *weft_model_param(const weft_model *m, const char *name)
{
    for (int i = 0; i < m->nparams; i++)
        if (strcmp(m->params[i].name, name) == 0)
            return &m->params[i];
    return NULL;
}

const weft_tensor *weft_model_frozen(const weft_model *m, const char *name)
{
    for (int i = 0; i < m->nfrozen; i++)
        if (strcmp(m->frozen[i].name, name) == 0)
            return &m->frozen[i];
    return NULL;
}

void weft_model_zero_grad(weft_model *m) { m->kops->zero(m->kops, m->grad_data, m->n); }

void weft_model_free(weft_model *m)
{
    if (m)
        m->ops->free(m);
}

void weft_model_mem_units(weft_model_mem *mm, const size_t *blk_off, int L, size_t head_off, size_t n)
{
    mm->unit_first = L > 0 ? blk_off[0] : head_off;
    mm->unit_head = n - head_off;
    mm->unit_block = 0;
    for (int i = 0; i < L; i++) {
        size_t len = (i + 1 < L ? blk_off[i + 1] : head_off) - blk_off[i];
        mm->unit_block = len > mm->unit_block ? len : mm->unit_block;
    }
}
