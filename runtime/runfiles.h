/*
 * runfiles.h -- every file a run directory (run.dir) holds: its name, who
 * writes it, its format and its durability (runtime/durable.h's policy).
 * Writers and readers (weft-train, weft-report, weft-doctor, weft-plot,
 * weft-trace) take the names from here; tests/train/test_rundir_files.sh
 * checks that a run, a resume and a failed run leave no file this table
 * does not name, each 0640 or stricter and parseable as its format says.
 *
 * Names are relative to run.dir. The checkpoint directory is
 * run.dir/checkpoints unless checkpoint.dir puts it elsewhere; its files
 * are listed under WEFT_RUNFILE_CKPT_DIR.
 */
#ifndef WEFT_RUNTIME_RUNFILES_H
#define WEFT_RUNTIME_RUNFILES_H

#include "runtime/durable.h"

/* run.dir itself */
#define WEFT_RUNFILE_METRICS "metrics.jsonl"    /* rank 0, one JSON object per step, appended */
#define WEFT_RUNFILE_CONFIG "config.ini"        /* rank 0 at start: the resolved configuration */
#define WEFT_RUNFILE_RUN "run.json"             /* rank 0 at start: layout, model, peak */
#define WEFT_RUNFILE_OWNER "owner.json"         /* rank 0: the run's claim on run.dir (train/rundir.c) */
#define WEFT_RUNFILE_STATUS "status.json"       /* rank 0: live progress for schedulers */
#define WEFT_RUNFILE_METRICS_PORT "metrics.port" /* rank 0: the Prometheus port, when one is served */
#define WEFT_RUNFILE_HEARTBEAT_DIR "heartbeat"  /* heartbeat/rank-N, every rank */
#define WEFT_RUNFILE_TRACE_DIR "trace"          /* trace/rank-N.json with trace.steps */
#define WEFT_RUNFILE_TRACE_MERGED "trace.json"  /* weft-trace's merged timeline */
#define WEFT_RUNFILE_PLOTS_DIR "plots"          /* weft-plot's data, script and images */
#define WEFT_RUNFILE_PREVIOUS_DIR "previous"    /* runs moved aside by run.overwrite */
#define WEFT_RUNFILE_CKPT_DIR "checkpoints"     /* checkpoint.dir's default */
#define WEFT_RUNFILE_LATEST "latest"            /* in the checkpoint directory: the newest committed one */
#define WEFT_RUNFILE_CKPT_RESERVE ".weft-ckpt-reserve" /* in the checkpoint directory: space kept for a save */

/* Per-rank names (printf formats of the rank): the name inside its
 * directory, and the path relative to run.dir. */
#define WEFT_RUNFILE_HEARTBEAT_NAME "rank-%d"
#define WEFT_RUNFILE_HEARTBEAT_FMT WEFT_RUNFILE_HEARTBEAT_DIR "/" WEFT_RUNFILE_HEARTBEAT_NAME
#define WEFT_RUNFILE_TRACE_NAME "rank-%d.json"
#define WEFT_RUNFILE_TRACE_FMT WEFT_RUNFILE_TRACE_DIR "/" WEFT_RUNFILE_TRACE_NAME
#define WEFT_RUNFILE_HANG_FMT "hang-r%d.txt"
#define WEFT_RUNFILE_FLIGHT_FMT "flight-r%d.json"
#define WEFT_RUNFILE_PARAMS_FMT "params-r%d.bin"

/* How a test or a tool reads a file. */
typedef enum {
    WEFT_RUNFMT_JSON,      /* one JSON value */
    WEFT_RUNFMT_JSONL,     /* one JSON object per line */
    WEFT_RUNFMT_INI,       /* the config format (runtime/config.h) */
    WEFT_RUNFMT_TEXT,      /* lines of text (its first line names it) */
    WEFT_RUNFMT_HDF5,      /* a checkpoint: weft-ckpt verify */
    WEFT_RUNFMT_LATEST,    /* one checkpoint file name and a newline */
    WEFT_RUNFMT_BINARY,    /* no format to check (a test dump, reserved space, images) */
} weft_runfile_format;

typedef struct {
    const char *pattern;          /* fnmatch(3) pattern relative to run.dir */
    weft_runfile_format format;
    int append;                   /* appended in place (metrics.jsonl) rather than replaced */
    weft_durable_policy durability;
    const char *what;             /* who writes it, and when */
} weft_runfile;

/* The table, ending with a NULL pattern. */
extern const weft_runfile weft_runfiles[];

/* The entry naming rel (a path relative to run.dir, checkpoints under
 * WEFT_RUNFILE_CKPT_DIR), or NULL. A durable-file temporary
 * (".NAME.tmp.<tid>", ".step-N.h5.tmp") matches its final name's entry; a
 * file under previous/<UTC time>/ (a run moved aside by run.overwrite)
 * matches as the same name in run.dir. */
const weft_runfile *weft_runfile_find(const char *rel);

/* Whether name is fmt (one of the per-rank formats above, one "%d") with
 * a rank >= 0 in it, exactly; *rank. Temporaries never match. */
int weft_runfile_rank(const char *name, const char *fmt, int *rank);

/* "json", "jsonl", ... */
const char *weft_runfile_format_name(weft_runfile_format f);

#endif
