/*
 * writer_int.h -- the checkpointer object, shared by writer.c (the object,
 * its thread and the step loop's side) and save.c (one save, on the writer
 * thread). Not part of the API (checkpoint/ckpt.h).
 */
#ifndef WEFT_CHECKPOINT_WRITER_INT_H
#define WEFT_CHECKPOINT_WRITER_INT_H

#include <hdf5.h>
#include <mpi.h>
#include <pthread.h>

#include "checkpoint/ckpt.h"
#include "checkpoint/drain.h"
#include "checkpoint/plan.h"

enum { IDLE, PENDING, WRITING, DONE };
#define SCRATCH_BYTES (4u << 20)

struct weft_ckpt {
    weft_ckpt_layout layout;
    weft_ckpt_state state;
    weft_ckpt_opts opts;       /* opts.dir: where saves commit (local_dir when tiered) */
    char shared[4096];         /* with a local tier: checkpoint.dir, where drain commits */
    weft_ckpt_drain *drain;    /* rank 0, with a local tier */
    int drain_failed_seen;     /* drain failures already reported to the step loop */
    char *config_ini;
    weft_ckpt_plan plan;
    uint8_t *stage;            /* plan.stage_bytes, allocated once */
    void *scratch;             /* checksum read-back, SCRATCH_BYTES */
    uint64_t *hashes;          /* per dataset */
    hid_t *dsets;              /* per dataset, during a write */
    size_t (*spans)[2];        /* per dataset: file bytes [lo, hi) this rank wrote (writeback) */
    weft_comm *wcomm;          /* the writer thread's */
    MPI_Comm mpi;              /* the writer thread's, for HDF5 */
    int rank, size, fsyncer;   /* fsyncer: first rank of its node */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int st, quit;              /* IDLE/PENDING/WRITING/DONE */
    int gated;                 /* weft_ckpt_gate: a save commits only once released */
    int64_t released;          /* saves of steps <= this may commit (under mu) */
    int result;
    char result_msg[2048];
    weft_ckpt_meta meta;       /* of the save in flight */
    int64_t last_step;
    char last_path[4200];
    weft_ckpt_stats stats;
    /* provenance and signing (seal.c): the run's provenance lines and, with
     * checkpoint.signing_key, the key; rank 0 only */
    char *provenance;
    int signing;
    uint8_t sign_sk[64], sign_pk[32];
};

/* One save of what is staged (collective over the writer communicators):
 * 0 once committed, else the agreed error. Writer thread only. */
int weft_ckpt_write_one(weft_ckpt *c);
/* The root attributes of a checkpoint file (docs/checkpoint-format.md):
 * format, versions, step, schedule, dataset hash, config, layout. Shared by
 * the job's writer (save.c) and the one-process writer (single.c). */
int weft_ckpt_root_attrs(hid_t f, const weft_ckpt_meta *m, const weft_ckpt_layout *l, int world,
                         const char *config_ini);
/* Rank 0: (re)create the disk-space reserve in the checkpoint directory. */
void weft_ckpt_reserve_take(weft_ckpt *c);
void weft_ckpt_reserve_release(weft_ckpt *c);

/* The writer thread, before a save's commit: wait until the step loop
 * released the save's step (weft_ckpt_release), when gated. */
void weft_ckpt_await_release(weft_ckpt *c);

#endif
