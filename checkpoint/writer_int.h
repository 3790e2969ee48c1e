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
#include "checkpoint/flusher.h"
#include "checkpoint/plan.h"
#include "checkpoint/rawdata.h"
#include "checkpoint/sum.h"

enum { IDLE, PENDING, WRITING, DONE };

/* A save's read-back check (save_data.c), walked by the flusher thread:
 * where it stands in the segments, and the checksums it takes of the bytes
 * it reads back -- the dataset this rank hashes whole, and the blocks
 * (sum.h) of a split dataset that this rank wrote all of. */
typedef struct weft_ckpt_readback {
    const char *tmp;         /* the file, for messages */
    int k;                   /* the segment the next position is in */
    size_t kpos;             /* its first position (bytes of the segments before it) */
    weft_ckpt_sum whole;
    int cur;                 /* the dataset whole is of (-1: none yet) */
    weft_ckpt_blocks blocks;
    int bdset;               /* the split dataset blocks is of (-1: none yet) */
} weft_ckpt_readback;
#define SCRATCH_BYTES (8u << 20) /* read-back pieces: large reads, in cache */

struct weft_ckpt {
    weft_ckpt_layout layout;
    weft_ckpt_state state;
    weft_ckpt_opts opts;       /* opts.dir: where saves commit (local_dir when tiered) */
    char shared[4096];         /* with a local tier: checkpoint.dir, where drain commits */
    weft_ckpt_drain *drain;    /* rank 0, with a local tier */
    int drain_failed_seen;     /* drain failures already reported to the step loop */
    char *config_ini;
    weft_ckpt_plan plan;
    uint8_t *stage;            /* plan.stage_bytes, allocated once (pinned: the device's staging memory) */
    /* Staging from state.dev (NULL: memcpy from host memory): the points the
     * compute and communication streams had reached (the state's last
     * writers), and the end of the copies on the staging stream, which the
     * writer thread waits for before it reads stage. */
    weft_device_event *ready[2], *staged;
    void *scratch;             /* checksum read-back, SCRATCH_BYTES */
    uint64_t *hashes;          /* per dataset */
    uint64_t *blocks;          /* the split datasets' block hashes (plan.nblocks), then whether each is in */
    hid_t *dsets;              /* per dataset, during a write */
    weft_ckpt_segs segs;       /* this rank's file segments, sorted (during a write) */
    int fd;                    /* this rank's descriptor on the temporary file (-1: none) */
    weft_ckpt_flusher flusher; /* its write-back and read-back, during the data phase (flusher.h) */
    weft_ckpt_readback readback; /* the read-back's place and checksums (on the flusher's thread) */
    int multinode;             /* ranks on several nodes: flush before reading others' bytes */
    /* The local tier on several nodes (nodefile.c): each node writes a file
     * of its own in its own local_dir, the writer assembles the shared one */
    int nodefiles;
    int node, nnodes, leader;  /* this rank's node, the job's nodes; leader: first rank of its node */
    MPI_Comm node_mpi;         /* the writer thread's, over this node's ranks (MPI_COMM_NULL: one file) */
    char node_ranks[1024];     /* the world ranks of this node, "0,1" (the tier_ranks attribute) */
    weft_ckpt_drain_stats dst; /* nodefiles: the shared tier's assembly (as drain.c's stats) */
    int shared_keep_last, shared_keep_every; /* retention in `shared` */
    size_t *offs;              /* nodefiles: each dataset's offset, the same in every node's file */
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
    int64_t retain_step;       /* a sync save's retention, handed to the writer thread: the step it
                                  committed, until the removals are done (-1: none; under mu) */
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
/* The data phase (save_data.c), in order, on every rank: create every
 * dataset and find this rank's file segments; pwrite them through c->fd;
 * read back, compare and hash (rc: this rank's error so far -- the
 * barrier and the checksums' allreduce happen whatever it is); start or
 * finish the write-back of this rank's bytes (sync_file_range flags). */
int weft_ckpt_data_create(weft_ckpt *c, hid_t f);
int weft_ckpt_data_write(weft_ckpt *c, const char *tmp);
int weft_ckpt_data_check(weft_ckpt *c, const char *tmp, int rc);
int weft_ckpt_data_writeback(weft_ckpt *c, const char *tmp, unsigned flags);
/* The root attributes of a checkpoint file (docs/checkpoint-format.md):
 * format, versions, step, schedule, dataset hash, config, layout. Shared by
 * the job's writer (save.c) and the one-process writer (single.c). */
int weft_ckpt_root_attrs(hid_t f, const weft_ckpt_meta *m, const weft_ckpt_layout *l, int world,
                         const char *config_ini);
/* A file per node (nodefile.c). The first rank of each node (rank 0 with
 * one file) publishes in opts.dir. */
int weft_ckpt_committer(const weft_ckpt *c);
/* Collective at setup: decide c->nodefiles from what local_dir is (one
 * directory every rank sees, or one per node; else WEFT_ECONFIG). */
int weft_ckpt_nodes_setup(weft_ckpt *c, int rc);
/* In a save, every rank: the node attributes of a node's file; the
 * datasets' offsets agree across the nodes' files (WEFT_EINTERNAL, naming
 * the dataset, if not). */
int weft_ckpt_nodes_attrs(weft_ckpt *c, hid_t f);
int weft_ckpt_nodes_offsets(weft_ckpt *c, int rc);
/* After the local commit, collective: assemble the shared tier's file
 * from the nodes' bytes and commit it there (retried; recorded in c->dst),
 * its checksums in blocks of block bytes (sum.h: the nodes' files' own). */
void weft_ckpt_nodes_drain(weft_ckpt *c, size_t block);
/* At start, collective: a step every node committed locally that the
 * shared tier lacks (a job killed during its assembly) is assembled now,
 * from the nodes' files (verified first). */
void weft_ckpt_nodes_catch_up(weft_ckpt *c);
/* Rank 0: (re)create the disk-space reserve in the checkpoint directory. */
void weft_ckpt_reserve_take(weft_ckpt *c);
void weft_ckpt_reserve_release(weft_ckpt *c);

/* The writer thread, before it reads stage: wait until the device's
 * staging copies of the save are done (0 at once without a device). */
int weft_ckpt_staged_wait(weft_ckpt *c);

/* The writer thread, before a save's commit: wait until the step loop
 * released the save's step (weft_ckpt_release), when gated. */
void weft_ckpt_await_release(weft_ckpt *c);

#endif
