/*
 * memory.c -- a rank's bytes by category (memory.h): the account, the
 * planner's way to it without a model, the search for the largest
 * micro-batch that fits, and the process's measured resident memory.
 */
#include "train/memory.h"
#include "collectives/comm.h"
#include "model/lm.h"
#include "parallel/dp.h"
#include "runtime/error.h"
#include "train/trainer.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* collectives/backend_shm.c: each communicator of more than one rank on a
 * node maps a segment of a control line and two slots per rank (the default
 * slot, WEFT_SHM_SLOT_BYTES unset); every member touches all of it. */
enum { SHM_CTL_BYTES = 256, SHM_SLOT_BYTES = 256 << 10 };
/* checkpoint/writer_int.h: the writer's checksum read-back buffer. */
enum { CKPT_SCRATCH_BYTES = 4 << 20 };
/* What writing a file adds on every rank besides the staging: parallel
 * HDF5's and MPI-IO's own buffers and the writer thread's stack. Measured,
 * not derived: peak resident memory with and without a checkpoint at the
 * end of otherwise equal runs differed by 5.7 to 8.2 MiB per rank (2 and 4
 * ranks, Open MPI 4.1's MPI-IO, HDF5 1.10; tests/train/test_memory.sh). */
enum { CKPT_WRITE_BYTES = 8 << 20 };

static size_t shm_segment(int size) { return size > 1 ? (size_t)size * (SHM_CTL_BYTES + 2 * (size_t)SHM_SLOT_BYTES) : 0; }

/* ZeRO-2/3's kept elements (resident between uses: the shard and the
 * partial pages at the edges of the ranges given back), as planned
 * (weft_dp_plan_kept) -- by the running trainer too, so that its account
 * and --plan's are the same numbers; parallel/dp.h's weft_dp_mem has the
 * exact count, within a page a bucket of it. kept[0]: parameters (ZeRO-3),
 * kept[1]: gradients (ZeRO-2/3). */
static void kept_elems(const weft_mem_account *a, const weft_dp_opts *o, int D, size_t kept[2])
{
    size_t n = a->model.params, k = weft_dp_plan_kept(n, o, D, a->coord[WEFT_AXIS_DP]);
    kept[0] = o->zero >= 3 ? k : n;
    kept[1] = k;
}

static size_t share_out(size_t x, int D) { return x - x / (size_t)D; } /* the part outside a shard of 1/D */

/* ZeRO-2/3, beyond the kept elements, at the moment of a step when the
 * most are resident: out[0] parameters gathered (ZeRO-3), out[1] gradients
 * backward has written and no reduction has given back yet. With one
 * micro-batch a step (k = 1) one of three moments of backward decides it
 * (parallel/dp.h; the models' backward; p = parallel.zero_prefetch):
 *   head:      the head, and a tied embedding (the first unit), gathered
 *              with p blocks prefetched; written: the head's gradients
 *              and the tied embedding's (grad_early);
 *   block:     a block gathered and p units prefetched (the first unit
 *              among them near the end); written: the block's gradients,
 *              grad_early, and the buckets whose reductions are in flight
 *              (WEFT_DP_IN_FLIGHT; under ZeRO-2 buckets cross blocks, so
 *              one more, the one the block's end cuts);
 *   embedding: the first unit (prefetched by block 0 and never used in
 *              backward, so gathered until the step ends); written: its
 *              gradients and block 0's buckets in flight.
 * Each is counted outside this rank's shard (the shard is kept already).
 * With k > 1 backward accumulates into the whole buffer from the first
 * micro-batch on (dp.h): every gradient is resident, at every moment. */
static void peak_extra(const weft_mem_account *a, const weft_dp_opts *o, int D, int64_t k, const size_t kept[2],
                       size_t out[2])
{
    const weft_model_mem *m = &a->model;
    out[0] = out[1] = 0;
    if (o->zero < 2 || D < 2)
        return;
    int z3 = o->zero >= 3;
    size_t p = z3 ? (size_t)o->prefetch : 0, cap = o->bucket_bytes / sizeof(float);
    size_t fl = (WEFT_DP_IN_FLIGHT + (z3 ? 0 : 1)) * (cap ? cap : 1), blk = m->unit_block, first = m->unit_first;
    size_t tied = m->grad_early ? first : 0, before = blk > first ? blk : first;
    if (z3 && fl > blk && blk) /* a block's buckets never cross it */
        fl = blk;
    size_t g[3] = {m->unit_head + tied + p * blk, blk + (p ? (p - 1) * blk + before : 0), p ? first : 0};
    size_t w[3] = {m->unit_head + m->grad_early, blk + m->grad_early + fl, first + fl};
    size_t best = 0;
    for (int i = 0; i < 3; i++) {
        size_t gi = z3 ? share_out(g[i], D) : 0, wi = share_out(w[i], D);
        gi = gi < m->params - kept[0] ? gi : m->params - kept[0];
        wi = k > 1 ? m->params - kept[1] : wi < m->params - kept[1] ? wi : m->params - kept[1];
        if (i == 0 || gi + wi > best) {
            best = gi + wi;
            out[0] = gi;
            out[1] = wi;
        }
    }
}

/* Parameters, gradients, optimizer state, at the peak of a step. ZeRO-0
 * keeps all three whole, ZeRO-1 AdamW's moments for its shard only
 * (parallel/dp.h), ZeRO-2 also keeps only its shard of the gradients and
 * ZeRO-3 of the parameters, and at the peak holds peak_extra beside. The
 * running trainer and --plan both come here. */
static void dp_state(const weft_mem_account *a, const weft_dp_opts *o, int D, int64_t k, size_t out[3],
                     size_t extra[2])
{
    size_t kept[2];
    kept_elems(a, o, D, kept);
    peak_extra(a, o, D, k, kept, extra);
    out[0] = (kept[0] + extra[0] + a->model.frozen) * sizeof(float);
    out[1] = (kept[1] + extra[1]) * sizeof(float);
    out[2] = 2 * a->opt_elems * sizeof(float); /* AdamW: m and v */
    extra[0] *= sizeof(float);
    extra[1] *= sizeof(float);
}

/* The checkpoint writer's staging (checkpoint/plan.c): this rank's share of
 * the parameters and of both moments (its ZeRO shard; what the replicas
 * hold the same they write by whole tensors spread by bytes, about 1/D of
 * it, counted as exactly 1/D), the read-back scratch, and what writing
 * adds. */
static size_t ckpt_staging(const weft_mem_account *a, int zero, int dp_size)
{
    size_t off, share = a->opt_elems;
    if (!zero)
        weft_comm_chunk(a->model.params, dp_size, a->coord[WEFT_AXIS_DP], &off, &share);
    return 3 * share * sizeof(float) + CKPT_SCRATCH_BYTES + CKPT_WRITE_BYTES;
}

/* The communicators the trainer builds (collectives/comm.h: the world, one
 * per mesh axis, the first/last-stage group of the tied embedding), each a
 * shared segment (the one-node default backend). */
static size_t comm_buffers(int world, const weft_mesh_layout *l)
{
    size_t n = shm_segment(world);
    for (int ax = 0; ax < WEFT_NAXES; ax++)
        n += shm_segment(l->size[ax]);
    return n + shm_segment(l->size[WEFT_AXIS_PP] > 1 ? 2 : 1);
}

/* A checkpoint written only when training ends (checkpoint.every = 0 or
 * not before train.steps, checkpoint.at_end) adds its read-back scratch
 * and its write buffers after the last step, when ZeRO-2/3 have given back
 * what backward gathered and wrote (extra): the two never coincide, so the
 * account keeps the larger and counts every category at that moment.
 * Written during training, the writer's buffers stay beside the later
 * steps, and both count. Never written, CKPT_WRITE_BYTES stays counted as
 * measured: ZeRO-1 runs without any checkpoint peaked within 1% of plans
 * that count it (bench/README.md), so part of it is not the writer's. */
static void one_peak(const weft_config *cfg, weft_mem_account *a, const size_t extra[2])
{
    int64_t every = weft_config_int(cfg, "checkpoint.every"), steps = weft_config_int(cfg, "train.steps");
    size_t write = CKPT_SCRATCH_BYTES + CKPT_WRITE_BYTES;
    if ((every > 0 && every < steps) || !weft_config_bool(cfg, "checkpoint.at_end"))
        return;
    if (extra[0] + extra[1] >= write) {
        a->bytes[WEFT_MEM_CKPT] -= write;
    } else {
        a->bytes[WEFT_MEM_PARAMS] -= extra[0];
        a->bytes[WEFT_MEM_GRADS] -= extra[1];
    }
}

int weft_memory_account(const weft_config *cfg, int world, int rank, const weft_model_mem *mm,
                        const weft_dp_mem_bytes *held, size_t runtime, weft_mem_account *out)
{
    weft_mesh_layout l;
    WEFT_CHECK(weft_mesh_layout_from_config(cfg, world, &l));
    weft_dp_opts o;
    weft_dp_opts_from_config(cfg, &o);
    memset(out, 0, sizeof *out);
    out->rank = rank;
    weft_mesh_coords_of(&l, rank, out->coord);
    out->model = *mm;
    int D = l.size[WEFT_AXIS_DP];
    int64_t b = weft_config_int(cfg, "train.micro_batch"), G = weft_config_int(cfg, "train.global_batch");
    int64_t k = b > 0 ? G / (b * D) : 1; /* micro-batches a step (trainer.c) */
    out->opt_elems = held ? held->optim_shard / sizeof(float)
                          : weft_dp_plan_shard(mm->params, &o, D, out->coord[WEFT_AXIS_DP]);
    size_t st[3], extra[2];
    dp_state(out, &o, D, k, st, extra);
    out->bytes[WEFT_MEM_PARAMS] = st[0];
    out->bytes[WEFT_MEM_GRADS] = st[1];
    out->bytes[WEFT_MEM_OPTIM] = st[2];
    out->bytes[WEFT_MEM_ACTS] = (size_t)mm->nslots * mm->slot_bytes + mm->shared_bytes;
    out->bytes[WEFT_MEM_COMM] = comm_buffers(world, &l);
    out->bytes[WEFT_MEM_CKPT] = ckpt_staging(out, o.zero, D);
    out->bytes[WEFT_MEM_RUNTIME] = runtime;
    one_peak(cfg, out, extra);
    for (int c = 0; c < WEFT_MEM_NCAT; c++)
        out->total += out->bytes[c];
    return 0;
}

int weft_memory_plan(const weft_config *cfg, int world, int rank, int vocab, size_t runtime, weft_mem_account *out)
{
    weft_model_part part;
    weft_model_mem mm;
    WEFT_CHECK(weft_trainer_part_at(cfg, world, rank, &part));
    WEFT_CHECK(weft_lm_plan(cfg, vocab, &part, &mm));
    return weft_memory_account(cfg, world, rank, &mm, NULL, runtime, out);
}

/* The value of "key:" in kB in /proc/self/status text, in bytes. */
static size_t status_kb(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    return p ? (size_t)strtoull(p + strlen(key), NULL, 10) * 1024 : 0;
}

void weft_memory_resident(size_t *rss, size_t *hwm)
{
    char buf[4096]; /* the file is about 1.5 KB; no stdio: called during the run */
    ssize_t n = 0;
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = read(fd, buf, sizeof buf - 1);
        close(fd);
    }
    buf[n > 0 ? n : 0] = '\0';
    if (rss)
        *rss = status_kb(buf, "VmRSS:");
    if (hwm)
        *hwm = status_kb(buf, "VmHWM:");
}

void weft_memory_row(const weft_mem_account *a, char *buf, size_t len)
{
    int n = snprintf(buf, len, "rank %d (dp %d tp %d pp %d):", a->rank, a->coord[WEFT_AXIS_DP],
                     a->coord[WEFT_AXIS_TP], a->coord[WEFT_AXIS_PP]);
    for (int c = 0; c < WEFT_MEM_NCAT && n > 0 && (size_t)n < len; c++)
        n += snprintf(buf + n, len - (size_t)n, " %s %.1f,", weft_mem_cat_name((weft_mem_cat)c),
                      (double)a->bytes[c] / 1048576.0);
    if (n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, " total %.1f MiB", (double)a->total / 1048576.0);
}

/* Every rank's account with train.micro_batch = b (and train.global_batch
 * keeping the configured micro-batches per step); the first rank over
 * limit in *over (returns 0 when all fit, 1 when one does not). */
static int try_micro_batch(weft_config *cfg, int world, int vocab, size_t runtime, size_t limit, int64_t b, int64_t k,
                           int64_t D, weft_mem_account *over, int *rc)
{
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)b);
    *rc = weft_config_set(cfg, "train.micro_batch", v, "--memory");
    snprintf(v, sizeof v, "%lld", (long long)(b * k * D));
    if (*rc == 0)
        *rc = weft_config_set(cfg, "train.global_batch", v, "--memory");
    for (int r = 0; *rc == 0 && r < world; r++) {
        weft_mem_account a;
        *rc = weft_memory_plan(cfg, world, r, vocab, runtime, &a);
        if (*rc == 0 && a.total > limit) {
            *over = a;
            return 1;
        }
    }
    return 0;
}

int weft_memory_fit(weft_config *cfg, int world, int vocab, size_t runtime, size_t limit, int max_b, int *best,
                    weft_mem_account *worst)
{
    weft_mesh_layout l;
    WEFT_CHECK(weft_mesh_layout_from_config(cfg, world, &l));
    int64_t b0 = weft_config_int(cfg, "train.micro_batch"), G0 = weft_config_int(cfg, "train.global_batch");
    int64_t D = l.size[WEFT_AXIS_DP], k = G0 / (b0 * D);
    /* put back at the end, with where they came from */
    char keep_b[32], keep_g[32], from_b[256], from_g[256];
    snprintf(keep_b, sizeof keep_b, "%lld", (long long)b0);
    snprintf(keep_g, sizeof keep_g, "%lld", (long long)G0);
    snprintf(from_b, sizeof from_b, "%s", weft_config_origin(cfg, "train.micro_batch"));
    snprintf(from_g, sizeof from_g, "%s", weft_config_origin(cfg, "train.global_batch"));
    int rc = 0, lo = 0, hi = max_b;
    weft_mem_account over;
    *best = 0;
    if (try_micro_batch(cfg, world, vocab, runtime, limit, 1, k, D, &over, &rc))
        *worst = over;
    else if (rc == 0) {
        lo = 1; /* fits; the largest that does is in [lo, hi] */
        while (lo < hi && rc == 0) {
            int mid = lo + (hi - lo + 1) / 2;
            if (try_micro_batch(cfg, world, vocab, runtime, limit, mid, k, D, &over, &rc))
                hi = mid - 1;
            else
                lo = mid;
        }
        *best = rc == 0 ? lo : 0;
    }
    int rc2 = weft_config_set(cfg, "train.micro_batch", keep_b, from_b);
    if (rc2 == 0)
        rc2 = weft_config_set(cfg, "train.global_batch", keep_g, from_g);
    return rc ? rc : rc2;
}
