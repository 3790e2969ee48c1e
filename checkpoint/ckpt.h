/*
 * ckpt.h -- asynchronous parallel-HDF5 checkpoints: what a training job
 * saves, how it resumes, and how a checkpoint written with one layout loads
 * on another. File layout: docs/checkpoint-format.md.
 *
 * The caller (the trainer) describes two things once:
 *   - the layout: the world communicator its training thread uses, this
 *     rank's data/tensor/pipeline coordinates and sizes, and ZeRO;
 *   - the state: a flat f32 parameter buffer with a table of tensors, each
 *     with its shard spec (runtime/shard.h: how the local piece maps to the
 *     global tensor), and the AdamW moments, which cover the ranges of the
 *     flat buffer this rank's optimizer updates (all of it, or under ZeRO-1
 *     its shard: flat ranges that can cross tensors and cover partial rows).
 * Every tensor is stored at its global shape; each rank writes its own
 * slabs, collectively, so nothing is gathered on one rank. Replicas are
 * written once: the data-parallel replicas split the flat buffer between
 * them, tensors whole across tensor parallelism are written by TP rank 0,
 * and tied copies never.
 *
 * States of a weft_ckpt (checkpoint/writer.c):
 *   idle --weft_ckpt_save--> writing (staging filled, writer thread runs)
 *   writing --writer done--> done(rc) --next save/wait/close--> idle
 * weft_ckpt_save is collective over layout.world; its busy/error decision
 * is agreed by all ranks, so every rank starts (or skips) the same saves.
 *
 * Threads: the writer thread has its own weft communicator and MPI
 * communicator (dups of the world), used by one thread at a time: the
 * writer thread for an asynchronous save (at nice 15, below the step
 * loop), the calling thread for a synchronous one (weft_ckpt_save_wait,
 * checkpoint.async = false), which it writes at its own priority. HDF5
 * here is not thread-safe, so every HDF5 call in weft holds one
 * process-wide lock.
 */
#ifndef WEFT_CHECKPOINT_CKPT_H
#define WEFT_CHECKPOINT_CKPT_H

#include "runtime/api.h"

#include <stddef.h>
#include <stdint.h>

#include "collectives/comm.h"
#include "runtime/config.h"
#include "runtime/device.h"
#include "runtime/shard.h"
#include "runtime/tensor.h"

/* The [checkpoint] configuration keys. */
extern WEFT_API const weft_config_key weft_ckpt_config_keys[];

typedef struct weft_ckpt_layout {
    weft_comm *world;            /* every rank; used by the calling thread only */
    int dp_rank, dp_size;
    int tp_rank, tp_size;
    int pp_rank, pp_size;
    int zero;                    /* 1: moments cover only this rank's ranges */
} weft_ckpt_layout;

typedef struct weft_ckpt_state {
    float *params;               /* (n) flat buffer holding every tensor's piece */
    size_t n;
    const weft_tensor *tensors;  /* arena form, offsets into params */
    int ntensors;
    /* AdamW moments: the flat ranges [off, off+len) this rank's optimizer
     * updates (disjoint, in any order), and m, v holding them concatenated
     * in that order. m = v = NULL: no optimizer state (weights only). */
    float *m, *v;
    const size_t (*ranges)[2];
    int nranges;
    /* The device params, m and v live on (all three on one; the model's
     * arena's). NULL: plain host memory. A save stages them with the
     * device layer's copies (cuda: device -> pinned host on the staging
     * stream, waited for by the writer thread; cpu: a memcpy), a load
     * reads into host memory and copies each piece up. */
    weft_dev *dev;
} weft_ckpt_state;

/* The small state saved beside the tensors (one value per job unless said). */
typedef struct weft_ckpt_meta {
    int64_t step;                /* optimizer steps completed */
    int64_t optim_t;             /* AdamW's bias-correction step count */
    double lr;                   /* learning rate of the last step taken */
    double lr_peak, lr_min;      /* the schedule (warm-up then cosine decay) */
    int64_t warmup, total_steps;
    uint64_t dataset_hash;
    uint64_t rng;                /* this rank's generator state */
    const uint8_t *loader_state; /* weft_loader_save bytes (the same on every rank) */
    size_t loader_len;
    /* A model with frozen tensors (model/model.h; LoRA's base): the
     * checkpoint they came from, which this one does not hold, as an
     * absolute path and weft_ckpt_params_hash of it; NULL: none. Kept by
     * pointer: it must outlive the save. */
    const char *base_path;
    uint64_t base_hash;
} weft_ckpt_meta;

typedef struct weft_ckpt_opts {
    char dir[4096];              /* where step-NNNNNNNN.h5 and latest live (the shared tier) */
    char local_dir[4096];        /* "" or the first tier: saves commit here, then go to dir -- one directory
                                    all ranks see: rank 0's drain thread copies each file (drain.h); a disk
                                    per node: a file per node, assembled in dir by the writer (nodefile.c) */
    int local_keep;              /* retention in local_dir */
    double drain_timeout;        /* seconds weft_ckpt_wait_drained waits */
    int drain_retries;
    int keep_last, keep_every;   /* retention */
    int skip_if_busy;            /* 1: a save during a save is skipped; 0: waits */
    int stop_on_error;           /* 1: a failed save stops training */
    int async;                   /* 0: weft_ckpt_save returns once committed */
    int collective;              /* no effect: the data is written with pwrite (save_data.c); kept
                                    for checkpoint.collective in existing configurations */
    int coll_metadata;           /* collective metadata writes of a save; -1: auto, on when the job spans nodes */
    size_t alignment;            /* objects >= 16 x alignment start on its multiples (0: off) */
    int preflight;               /* check free space first */
    size_t loader_len;           /* bytes reserved for the loader state */
    char signing_key[4096];      /* secret key file signing every checkpoint ("": none) */
    uint64_t owner;              /* the run's identity: with local_dir, the local tier is marked with it and
                                    refused when it holds another run's checkpoints (owner.h; 0: neither) */
} weft_ckpt_opts;

/* opts from cfg: dir = run.dir/checkpoints (checkpoint.dir overrides). */
WEFT_API void weft_ckpt_opts_from_config(const weft_config *cfg, weft_ckpt_opts *o);

typedef struct weft_ckpt weft_ckpt;

/* Collective. Plans what this rank writes, allocates the staging buffers
 * (once), duplicates the communicators and starts the writer thread.
 * config_ini: the resolved configuration text stored in every file. */
WEFT_API int weft_ckpt_new(const weft_ckpt_layout *layout, const weft_ckpt_state *state, const weft_ckpt_opts *opts,
                           const char *config_ini, weft_ckpt **out);

/* Collective. Start saving the state as it is now (the step loop goes on
 * once it is copied to staging). If a save is still in flight it waits or
 * skips (checkpoint.if_busy); *started says which. A failed earlier save is
 * reported here: an error if checkpoint.on_error = stop, else a warning. */
WEFT_API int weft_ckpt_save(weft_ckpt *c, const weft_ckpt_meta *meta, int *started);

/* Collective. Save now and return once the checkpoint is committed (for
 * preemption): waits for an in-flight save first, never skips; the calling
 * thread writes it. */
WEFT_API int weft_ckpt_save_wait(weft_ckpt *c, const weft_ckpt_meta *meta);

/* Collective. The provenance lines this job records in every checkpoint
 * (checkpoint/prov.h: weft_version, source_commit, config_hash, dataset,
 * parent, job, host, user; rank 0's text is the one used, others may pass
 * NULL), and, with opts.signing_key, rank 0 loads that key: every later
 * checkpoint is signed. An unusable key is an error on every rank. */
WEFT_API int weft_ckpt_set_provenance(weft_ckpt *c, const char *provenance);

/* From now on a save of step N commits (renamed into place, named by
 * `latest`) only after weft_ckpt_release(c, >= N), or once the step loop
 * waits for it (weft_ckpt_wait, _finish, _save_wait, _close, a save while
 * busy). The trainer releases a step after writing its metrics line, so a
 * committed checkpoint's steps are always in metrics.jsonl: a resume from
 * it never lacks a line. */
WEFT_API void weft_ckpt_gate(weft_ckpt *c);
WEFT_API void weft_ckpt_release(weft_ckpt *c, int64_t step);

/* Wait for the in-flight save, if any; its result. */
WEFT_API int weft_ckpt_wait(weft_ckpt *c);
/* Collective. The same, and (two tiers) a drain failure not yet reported,
 * then checkpoint.on_error: a failure is returned under stop, logged
 * (rank 0) and forgotten under continue. For the end of training. */
WEFT_API int weft_ckpt_finish(weft_ckpt *c);

/* The newest committed checkpoint of this job (path and step), or -1 with
 * path "" when none yet. Thread-safe. */
WEFT_API int64_t weft_ckpt_last(weft_ckpt *c, char *path, size_t len);

/* Collective. With checkpoint.local_dir: wait (at most timeout_s) until
 * the last committed checkpoint is also committed in checkpoint.dir. 0
 * then, or without a local tier or a checkpoint; WEFT_EIO (the same on
 * every rank) when its drain failed or took longer. */
WEFT_API int weft_ckpt_wait_drained(weft_ckpt *c, double timeout_s);

/* Timings of the last save on this rank. */
typedef struct weft_ckpt_stats {
    double blocked_s;            /* inside weft_ckpt_save (copy + agreement) */
    double copy_s;               /* the copies into staging: done (host memory, cpu), or enqueued (cuda) */
    double stage_wait_s;         /* writer: waiting for the device's staging copies to finish (cuda) */
    double write_s;              /* writer: create .. commit */
    double data_s;               /* writer: creating the datasets and writing the data (the write-back and
                                    read-back check run behind the writes: flusher.h) */
    double create_s;             /* writer: of data_s, creating the datasets (HDF5 metadata) */
    double verify_s;             /* writer: the read-back check's last pieces, the checksums of the
                                    datasets split between ranks */
    double commit_s;             /* writer: fsync, rename, latest (retention comes after: writer.c) */
    size_t bytes_rank;           /* bytes this rank wrote */
    size_t bytes_file;           /* file size */
    size_t bytes_reread;         /* read from the file again for the checksums of datasets split between
                                    ranks (this rank, last save; plan.c keeps them few) */
    size_t bytes_kept;           /* of this rank's bytes, those the read-back check left in the page cache
                                    for those checksums (the blocks it writes only part of; dropped with
                                    the rest at the data phase's end: save_data.c) */
    int saves, skipped, failed;
    int write_nice;              /* the nice value of the thread that wrote the last save: the writer
                                    thread's 15 (async), the caller's own (sync: weft_ckpt_save_wait) */
    /* the shared tier (rank 0; -1 / 0 / "" without checkpoint.local_dir) */
    int tiers;                   /* 2 with checkpoint.local_dir, else 1 */
    int64_t drained_step;        /* newest checkpoint drained by this job */
    int drained, drain_retried, drain_failed;
    size_t drain_bytes;          /* the last drained file's size */
    double drain_s;              /* and the seconds its copy and commit took */
    char drain_error[1024];      /* the last drain failure ("" after a success) */
} weft_ckpt_stats;
WEFT_API void weft_ckpt_get_stats(weft_ckpt *c, weft_ckpt_stats *out);

/* Collective. Waits for the in-flight save, stops the writer, frees. The
 * in-flight save's result. */
WEFT_API int weft_ckpt_close(weft_ckpt *c);

/* --- loading ---------------------------------------------------------------- */

/* WEFT_CKPT_STAGED: read a state.dev on the cpu the way a GPU's is read
 * (each piece into host memory, then the device layer's host->device
 * copy), for the tests of that path on machines without a GPU. */
/* WEFT_CKPT_EVERY_REPLICA: every data-parallel replica reads all it holds
 * from the file, instead of the replicas on different nodes splitting the
 * reading of what they hold alike and broadcasting it (checkpoint/share.h;
 * checkpoint.load_share = false). */
enum { WEFT_CKPT_WEIGHTS_ONLY = 1, WEFT_CKPT_STAGED = 2, WEFT_CKPT_EVERY_REPLICA = 4 };

/* What a load found besides the tensors. */
typedef struct weft_ckpt_loaded {
    weft_ckpt_meta meta;         /* loader_state, base_path: malloc'ed, free with weft_ckpt_loaded_free */
    int world, dp, tp, pp, zero; /* the layout that wrote it */
} weft_ckpt_loaded;
WEFT_API void weft_ckpt_loaded_free(weft_ckpt_loaded *l);

/* Collective. Read the checkpoint at path into the state for this rank's
 * current layout: each tensor's piece by its shard spec, and (unless
 * WEFT_CKPT_WEIGHTS_ONLY) the moments for this rank's ranges. Checksums are
 * verified. Errors (the same on every rank): WEFT_ENOENT missing file,
 * WEFT_EDATA not a weft checkpoint, truncated, a checksum mismatch or a
 * tensor missing or of another shape (naming the tensor and both shapes). */
WEFT_API int weft_ckpt_load(const weft_ckpt_layout *layout, const weft_ckpt_state *state, const char *path,
                            unsigned flags, weft_ckpt_loaded *out);

/* Single process (no collective): the identity of the weights of the
 * checkpoint at path, xxh3-64 of the text "NAME CHECKSUM\n" over its params/
 * datasets in name order, each dataset's stored xxh3_64 checksum (which a
 * load verifies against the data), so the hash names the tensors' values
 * without reading them. WEFT_ENOENT / WEFT_EDATA as weft-ckpt's commands. */
WEFT_API int weft_ckpt_params_hash(const char *path, uint64_t *out);

/* One process, no job (no MPI): weft-generate, and weft-eval before its
 * model exists. Each takes weft_h5_lock itself.
 *
 * The configuration the run that wrote the checkpoint at path used (its INI
 * text, malloc'ed; not read when config is NULL) and, unless tensor is
 * NULL, the global shape of its tensor params/<tensor> (shape[1] = 0 for a
 * vector). Errors as weft_ckpt_load, WEFT_EDATA naming a missing attribute
 * or tensor. */
WEFT_API int weft_ckpt_read_config(const char *path, const char *tensor, char **config, int64_t shape[2]);
/* The stored run's settings where cfg does not give them (weft_config_adopt
 * of the checkpoint's configuration, origin "checkpoint PATH"): keys names
 * keys or sections ("model."). --init-from, weft-eval and weft-generate
 * build the model the checkpoint holds this way. */
WEFT_API int weft_ckpt_adopt_config(const char *path, weft_config *cfg, const char *const *keys);
/* The weights of the checkpoint at path into a whole model's state (every
 * tensor whole: one rank, tp = pp = 1; no moments read), with the checks and
 * checksums of weft_ckpt_load and its errors. */
WEFT_API int weft_ckpt_load_whole(const weft_ckpt_state *s, const char *path);

/* The file `latest` in dir names (validated): path = dir/step-NNNNNNNN.h5.
 * WEFT_ENOENT when there is no latest, WEFT_EDATA when it is malformed. */
WEFT_API int weft_ckpt_find_latest(const char *dir, char *path, size_t len);

/* The checkpoint file a name means: a file is itself; a checkpoints
 * directory means the file its latest names; a run directory its
 * checkpoints/latest (--init-from and every weft-ckpt command). WEFT_ENOENT
 * when there is no such name or no latest (listing the files there). */
WEFT_API int weft_ckpt_resolve(const char *name, char *path, size_t len);
/* The checkpoints directory of a run directory (arg/checkpoints when it
 * exists), else arg itself. */
WEFT_API int weft_ckpt_dir_of(const char *arg, char *dir, size_t len);
/* Committed checkpoint files in dir, steps ascending (malloc'ed; none: *n
 * = 0). WEFT_ENOENT when dir does not exist. */
WEFT_API int weft_ckpt_list(const char *dir, int64_t **steps, int *n);

#endif
