/*
 * memreport.c -- the trainer's memory account in the run's reports: every
 * rank's bytes by category (train/memory.h, from the built model's own
 * numbers) logged as a table at start, the account of the rank planning
 * to hold the most published (status.json's "memory", Prometheus'
 * weft_memory_*, read by weft-report) beside the largest peak resident
 * memory (VmHWM) measured over the ranks at each logged step, and at the
 * end each rank's planned total against its measured peak.
 *
 * Each function is collective over the world (one allgather of a few
 * numbers per rank); rank 0 logs and publishes.
 */
#include "train/trainer_int.h"
#include "runtime/error.h"
#include "runtime/log.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { COLS = WEFT_MEM_NCAT + 1 }; /* a rank's categories, then its total */

/* Rows of the start table: the first data-parallel replica's ranks (the
 * others hold the same but for a ZeRO shard's rounding), at most this many. */
enum { MAX_ROWS = 16 };

static void publish(weft_trainer *t)
{
    const double *all = t->mem_all;
    int worst = 0;
    for (int r = 1; r < t->size; r++)
        if (all[r * COLS + WEFT_MEM_NCAT] > all[worst * COLS + WEFT_MEM_NCAT])
            worst = r;
    weft_report_memory m = {.known = 1, .rank = worst, .planned = all[worst * COLS + WEFT_MEM_NCAT],
                            .peak_rss = NAN, .peak_rank = 0};
    for (int c = 0; c < WEFT_MEM_NCAT; c++)
        m.bytes[c] = all[worst * COLS + c];
    const double *peak = t->mem_peak;
    for (int r = 0; peak[0] > 0 && r < t->size; r++)
        if (r == 0 || peak[r] > m.peak_rss)
            m.peak_rss = peak[r], m.peak_rank = r;
    weft_sched_memory(t->sched, &m);
}

static void log_table(const weft_trainer *t)
{
    int rows = 0, worst = 0;
    for (int r = 0; r < t->size; r++) {
        weft_mem_account a = {.rank = r, .total = (size_t)t->mem_all[r * COLS + WEFT_MEM_NCAT]};
        if (a.total > (size_t)t->mem_all[worst * COLS + WEFT_MEM_NCAT])
            worst = r;
        weft_mesh_coords_of(weft_mesh_layout_of(t->mesh), r, a.coord);
        if (a.coord[WEFT_AXIS_DP] != 0 || rows == MAX_ROWS)
            continue;
        for (int c = 0; c < WEFT_MEM_NCAT; c++)
            a.bytes[c] = (size_t)t->mem_all[r * COLS + c];
        char row[512];
        weft_memory_row(&a, row, sizeof row);
        WEFT_INFO("memory, planned (MiB): %s", row);
        rows++;
    }
    WEFT_INFO("memory: rank %d plans to hold the most, %.1f MiB (train.recompute = %s, ZeRO-%d)", worst,
              t->mem_all[worst * COLS + WEFT_MEM_NCAT] / 1048576.0, t->o.recompute ? "block" : "none", t->o.zero);
}

int weft_trainer_memory_start(weft_trainer *t)
{
    const weft_model *m = t->model;
    weft_model_mem mm = m->mem;
    if (mm.params == 0 && mm.frozen == 0) /* a model that does not say: its buffers, no activations */
        mm = (weft_model_mem){.params = m->n, .frozen = m->frozen_n};
    /* The optimizer's shard as data parallelism cut it (parallel/dp.h,
     * weft_dp_mem); the rest is counted as --plan counts it (memory.c). */
    weft_dp_mem_bytes d;
    weft_dp_mem(t->dp, &d);
    WEFT_CHECK(weft_memory_account(t->cfg, t->size, t->rank, &mm, &d, t->runtime_rss, &t->mem));
    assert(t->mem.opt_elems == weft_optim_state_size(t->opt));
    t->mem_all = calloc((size_t)t->size * COLS, sizeof(double));
    t->mem_peak = calloc((size_t)t->size, sizeof(double));
    if (!t->mem_all || !t->mem_peak)
        return weft_error(WEFT_ENOMEM, "out of memory");
    double mine[COLS];
    for (int c = 0; c < WEFT_MEM_NCAT; c++)
        mine[c] = (double)t->mem.bytes[c];
    mine[WEFT_MEM_NCAT] = (double)t->mem.total;
    /* count: the whole gathered buffer, each rank sending its equal chunk */
    WEFT_CHECK(weft_comm_allgather(t->world, mine, t->mem_all, (size_t)t->size * COLS, WEFT_F64));
    if (t->rank == 0) {
        log_table(t);
        publish(t);
    }
    return 0;
}

int weft_trainer_memory_peak(weft_trainer *t, int final)
{
    if (!t->mem_all)
        return 0;
    size_t hwm;
    weft_memory_resident(NULL, &hwm);
    double mine = (double)hwm;
    WEFT_CHECK(weft_comm_allgather(t->world, &mine, t->mem_peak, (size_t)t->size, WEFT_F64));
    if (t->rank != 0)
        return 0;
    publish(t);
    for (int r = 0; final && r < t->size; r++) {
        double plan = t->mem_all[r * COLS + WEFT_MEM_NCAT], peak = t->mem_peak[r];
        WEFT_INFO("memory: rank %d planned %.1f MiB, peak resident %.1f MiB (%+.1f%%)", r, plan / 1048576.0,
                  peak / 1048576.0, peak > 0 ? 100.0 * (plan - peak) / peak : NAN);
    }
    return 0;
}
