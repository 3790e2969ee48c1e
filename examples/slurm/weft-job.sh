# weft-job.sh -- the part every weft sbatch script shares; sourced by
# train.sbatch, finetune.sbatch and sweep.sbatch (docs/slurm.md).
#
# Sourcing it installs the stop traps at once, then offers:
#   weft_stage DIR     copy the dataset DIR once per node to node-local
#                      storage ($LOCAL); sets $data (DIR itself with STAGE=0)
#   weft_run ARGS...   run weft-train ARGS on every task (LAUNCHER=srun:
#                      srun --mpi=pmix; mpirun: Open MPI's mpirun inside the
#                      allocation), in the background, and wait for it;
#                      returns its exit status (0 only if RUN_DIR/status.json
#                      also says done)
# Environment: WEFT (the weft tree), BUILD (its build tree, default build;
# build-san for `make SAN=... test`), LOCAL (node-local directory, default
# $TMPDIR or /tmp), STAGE (1: stage, 0: read in place), LAUNCHER.

WEFT=${WEFT:-${SLURM_SUBMIT_DIR:-$PWD}}
BUILD=${BUILD:-build}
LOCAL=${LOCAL:-${TMPDIR:-/tmp}}
STAGE=${STAGE:-1}
LAUNCHER=${LAUNCHER:-srun}
NODES=${SLURM_JOB_NUM_NODES:-1}

# A stop signal may come at any moment (--signal before the time limit,
# scancel --signal, preemption's SIGTERM). bash runs a trap only between
# foreground commands, so the step runs in the background and the script
# waits: the trap fires at once and passes SIGUSR1 on (srun and mpirun
# forward it to every rank; SIGTERM would make mpirun kill them).
weft_step="" weft_stop=""
weft_on_stop() {
    echo "weft: $1: asking the ranks to checkpoint and stop"
    weft_stop=$1
    [ -n "$weft_step" ] && kill -USR1 "$weft_step"
}
trap 'weft_on_stop SIGUSR1' USR1
trap 'weft_on_stop SIGTERM' TERM

echo "weft: job ${SLURM_JOB_ID:-?}${SLURM_ARRAY_TASK_ID:+ (array task $SLURM_ARRAY_TASK_ID)} restart ${SLURM_RESTART_COUNT:-0} on $NODES node(s): ${SLURM_JOB_NODELIST:-$(hostname -s)}"

# The dataset once per node on local storage (NVMe), where the loader reads
# it; removed when the script ends, however it ends.
weft_stage() {
    data=$1
    [ "$STAGE" = 1 ] || return 0
    data=$LOCAL/weft-data-${SLURM_JOB_ID:-$$}
    srun --ntasks="$NODES" --ntasks-per-node=1 --mpi=none \
        bash -c 'rm -rf "$1" && mkdir -p "$1" && cp -r "$2"/. "$1"/' stage "$data" "$1" || exit 74
    trap 'srun --ntasks="$NODES" --ntasks-per-node=1 --mpi=none rm -rf "$data" 2>/dev/null' EXIT
}

weft_run() {
    if [ -n "$weft_stop" ]; then
        echo "weft: $weft_stop before training started: nothing to save, exit 75"
        return 75
    fi
    case $LAUNCHER in
    srun) srun --mpi=pmix --kill-on-bad-exit=1 "$WEFT/$BUILD/bin/weft-train" "$@" & ;;
    mpirun) mpirun "$WEFT/$BUILD/bin/weft-train" "$@" & ;;
    *) echo "weft: LAUNCHER must be srun or mpirun, not '$LAUNCHER'" >&2; return 64 ;;
    esac
    weft_step=$!
    local rc
    # wait returns early when a trap ran; wait again until the step has ended.
    while :; do
        wait "$weft_step"
        rc=$?
        kill -0 "$weft_step" 2>/dev/null || break
    done
    # srun can report 0 for a step whose tasks never launched: success must
    # also be what rank 0 wrote.
    if [ "$rc" = 0 ] && [ -n "${RUN_DIR:-}" ] && ! grep -q '"state":"done"' "$RUN_DIR/status.json" 2>/dev/null; then
        echo "weft: the launcher reported success but $RUN_DIR/status.json does not say done: failing (70)"
        rc=70
    fi
    # 0 done; 138 (sched.requeue_exit_code): checkpointed after a stop
    # signal, and requeued by weft's rank 0; else a failure (docs/slurm.md).
    echo "weft: step ended with exit status $rc"
    return $rc
}
