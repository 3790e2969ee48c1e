/*
 * config.c -- the [checkpoint] configuration keys and the options they give.
 */
#include "checkpoint/ckpt.h"
#include "runtime/runfiles.h"

#include <stdio.h>
#include <string.h>

const weft_config_key weft_ckpt_config_keys[] = {
    {"checkpoint.every", WEFT_CFG_INT, "0", 0, 1e12, NULL,
     "save a checkpoint every this many steps (0: only at the end, see checkpoint.at_end)"},
    {"checkpoint.at_end", WEFT_CFG_BOOL, "true", WEFT_UNBOUNDED, NULL, "save a checkpoint when training ends"},
    {"checkpoint.dir", WEFT_CFG_STRING, "", WEFT_UNBOUNDED, NULL,
     "directory of step-NNNNNNNN.h5 and latest (empty: run.dir/checkpoints)"},
    {"checkpoint.keep_last", WEFT_CFG_INT, "3", 1, 1e9, NULL,
     "keep the newest this many checkpoints (in checkpoint.dir, the shared tier when checkpoint.local_dir is set)"},
    {"checkpoint.local_dir", WEFT_CFG_STRING, "", WEFT_UNBOUNDED, NULL,
     "first tier (a fast disk): saves commit here, then each is drained to checkpoint.dir behind; one directory "
     "every rank sees (one file, rank 0 copies it) or a disk of each node's own, e.g. NVMe (a file per node, "
     "assembled in checkpoint.dir); anything else exits 64, as does one holding another run's checkpoints (its "
     ".weft-owner mark) (empty: one tier, checkpoint.dir)"},
    {"checkpoint.local_keep", WEFT_CFG_INT, "2", 1, 1e9, NULL, "keep the newest this many checkpoints in checkpoint.local_dir"},
    {"checkpoint.drain_timeout", WEFT_CFG_FLOAT, "600", 0, 1e9, NULL,
     "seconds a stop signal or the end of training waits for the last checkpoint to reach checkpoint.dir; past it "
     "a stop still exits 138 (the checkpoint on the local tier only, logged) and the end follows "
     "checkpoint.on_error"},
    {"checkpoint.drain_retries", WEFT_CFG_INT, "3", 0, 100, NULL,
     "a failed drain to checkpoint.dir is retried this many times (0.5 s, 1 s, 2 s ... apart), then reported "
     "(log, status.json, Prometheus) and handled per checkpoint.on_error"},
    {"checkpoint.keep_every", WEFT_CFG_INT, "0", 0, 1e12, NULL,
     "also keep every checkpoint whose step is a multiple of this (0: none)"},
    {"checkpoint.if_busy", WEFT_CFG_ENUM, "wait", WEFT_UNBOUNDED, "wait|skip",
     "a save due while the previous one is still being written: wait for it, or skip this one (logged)"},
    {"checkpoint.on_error", WEFT_CFG_ENUM, "stop", WEFT_UNBOUNDED, "stop|continue",
     "a save that fails (disk full, I/O error): stop training (exit 74), or log it and go on"},
    {"checkpoint.async", WEFT_CFG_BOOL, "true", WEFT_UNBOUNDED, NULL,
     "write in a background thread while training goes on (false: the step loop waits for the commit)"},
    {"checkpoint.collective", WEFT_CFG_ENUM, "auto", WEFT_UNBOUNDED, "auto|true|false",
     "no effect: tensor data is written with pwrite at each dataset's offset (kept so existing configs run)"},
    {"checkpoint.coll_metadata", WEFT_CFG_ENUM, "auto", WEFT_UNBOUNDED, "auto|true|false",
     "collective HDF5 metadata writes when a save creates the file and its datasets (auto: only across nodes)"},
    {"checkpoint.alignment", WEFT_CFG_SIZE, "1M", 0, 1073741824, NULL,
     "align datasets at least 16 times this long to this many bytes in the file (0: off)"},
    {"checkpoint.load_share", WEFT_CFG_BOOL, "true", WEFT_UNBOUNDED, NULL,
     "on resume, data-parallel replicas on different nodes each read a part of the tensors they hold alike and "
     "broadcast it, so the file system serves each byte once (false: every replica reads all it holds)"},
    {"checkpoint.preflight", WEFT_CFG_BOOL, "true", WEFT_UNBOUNDED, NULL,
     "check the free space before writing a checkpoint, failing early and cleanly when it cannot fit"},
    {"checkpoint.signing_key", WEFT_CFG_STRING, "", WEFT_UNBOUNDED, NULL,
     "secret key file (weft-ckpt keygen) that signs every checkpoint's checksum table and provenance at commit "
     "(empty: unsigned)"},
    {"checkpoint.trusted_keys", WEFT_CFG_STRING, "", WEFT_UNBOUNDED, NULL,
     "public key files, comma-separated: --resume and --init-from then accept only checkpoints signed by one of "
     "them, refusing unsigned, wrongly signed and tampered ones (exit 65)"},
    WEFT_CONFIG_END,
};

/* auto|true|false: -1, 1, 0 */
static int tristate(const char *v) { return strcmp(v, "auto") == 0 ? -1 : strcmp(v, "true") == 0; }

void weft_ckpt_opts_from_config(const weft_config *cfg, weft_ckpt_opts *o)
{
    memset(o, 0, sizeof *o);
    const char *dir = weft_config_str(cfg, "checkpoint.dir");
    if (*dir)
        snprintf(o->dir, sizeof o->dir, "%s", dir);
    else
        snprintf(o->dir, sizeof o->dir, "%s/" WEFT_RUNFILE_CKPT_DIR, weft_config_str(cfg, "run.dir"));
    o->keep_last = (int)weft_config_int(cfg, "checkpoint.keep_last");
    snprintf(o->local_dir, sizeof o->local_dir, "%s", weft_config_str(cfg, "checkpoint.local_dir"));
    o->local_keep = (int)weft_config_int(cfg, "checkpoint.local_keep");
    o->drain_timeout = weft_config_float(cfg, "checkpoint.drain_timeout");
    o->drain_retries = (int)weft_config_int(cfg, "checkpoint.drain_retries");
    o->keep_every = (int)weft_config_int(cfg, "checkpoint.keep_every");
    o->skip_if_busy = strcmp(weft_config_str(cfg, "checkpoint.if_busy"), "skip") == 0;
    o->stop_on_error = strcmp(weft_config_str(cfg, "checkpoint.on_error"), "stop") == 0;
    o->async = weft_config_bool(cfg, "checkpoint.async");
    o->collective = tristate(weft_config_str(cfg, "checkpoint.collective"));
    o->coll_metadata = tristate(weft_config_str(cfg, "checkpoint.coll_metadata"));
    o->alignment = (size_t)weft_config_int(cfg, "checkpoint.alignment");
    o->preflight = weft_config_bool(cfg, "checkpoint.preflight");
    snprintf(o->signing_key, sizeof o->signing_key, "%s", weft_config_str(cfg, "checkpoint.signing_key"));
}
