#!/bin/bash
# test_faults.sh -- checkpoints under faults injected at exact points of the
# save (WEFT_FAULT, docs/operations.md "Fault injection"), never by timing:
#   - one run directory, killed again and again (SIGKILL of rank 0 or 1)
#     during a save's data phase, after its fsync before the rename, between
#     the rename and `latest`, at a step, mid-evaluation and mid-resume, each
#     time restarted with --resume=auto: latest always names the checkpoint
#     the fault point implies and weft-ckpt verify passes it; the next run
#     resumes from exactly that step; a save killed before its rename left
#     its temporary file (so the kill hit the save in flight) and the next
#     run removes it; a rank stopped (SIGSTOP) in a save ends the job within
#     comm.timeout + 30 s naming it, also when stopped before the final
#     save's file is created (the others inside HDF5's raw MPI-IO); the run finished with --resume ends
#     with weights and optimizer state bitwise equal to an uninterrupted
#     run's, and metrics.jsonl holds every step once;
#   - checkpoint.if_busy = skip with the writer held busy (hold_save);
#   - injected ENOSPC and EIO in the HDF5 writes: on_error = continue goes
#     on and later saves commit, stop exits 74; the earlier checkpoint stays;
#     EIO writing owner.json on rank 0 at start-up ends every rank (74);
#   - a real full disk (a small tmpfs): on_error = continue and stop.
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train" ck="$WEFT_BIN/weft-ckpt"
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1
tiny=(--data.path="$ds" --model.n_layer=2 --model.n_head=2 --model.n_embd=32 --model.context=32
      --train.seq_len=32 --train.micro_batch=2 --train.global_batch=8 --train.log_interval=1
      --train.eval_interval=0 --train.eval_batches=1)
latest_step() { sed -n 's/^step-0*\([0-9][0-9]*\)\.h5$/\1/p' "$1/checkpoints/latest" 2>/dev/null; }
name() { printf 'step-%08d.h5' "$1"; }

# 1. Kills at the save's phases. Saves every 2 steps, an evaluation every 4.
# comm.timeout: long enough that a rank starved by a loaded machine (rank
# 0's fsyncs at start-up took over 5 s beside other jobs) is not taken for
# a stopped one; the two stall trials each wait it out.
steps=20 timeout=20
chain=("${tiny[@]}" --train.steps=$steps --checkpoint.every=2 --checkpoint.keep_last=3 --train.eval_interval=4
       --comm.timeout=$timeout)
weft_mpirun 2 "$train" "${chain[@]}" --run.dir="$TMPDIR_TEST/ref" >"$TMPDIR_TEST/ref.log" 2>&1 ||
    not_ok "the uninterrupted reference run" "$(tail -5 "$TMPDIR_TEST/ref.log")"
run="$TMPDIR_TEST/kill" prev=0 i=0
# trial FAULT WANT TMP: run with --resume=auto and WEFT_FAULT=FAULT, which
# must end the job. WANT: the steps latest may then name ("4", or "4|6"
# where the fault point leaves a save of the step before it in flight).
# TMP: 1 if the save's temporary file must be there (killed before rename).
trial() {
    local fault=$1 want=$2 tmp=$3 log s why=""
    i=$((i + 1)) log="$run-$i.log"
    WEFT_FAULT=$fault weft_mpirun 2 "$train" "${chain[@]}" --run.dir="$run" --resume=auto >"$log" 2>&1
    local rc=$?
    t_end=$(date +%s.%N)
    s=$(latest_step "$run")
    if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then why="the job exited $rc: the fault did not end it (or it hung)"
    elif ! grep -q "fault injected: $fault" "$log"; then why="the fault was never reached"
    elif ! [[ "$s" =~ ^($want)$ ]]; then why="latest names step ${s:-none}, wanted $want"
    elif ! "$ck" verify "$run/checkpoints/$(name "$s")" >"$log.verify" 2>&1; then why="latest does not verify: $(cat "$log.verify")"
    elif [ "$prev" -gt 0 ] && [[ $fault != *_resume* ]] && ! grep -q "resumed from .*$(name "$prev") (step $prev," "$log"; then
        why="did not resume from step $prev: $(grep -m3 'resumed\|ERROR' "$log")"
    elif [ "$tmp" = 1 ] && ! ls "$run/checkpoints"/.step-*.h5.tmp >/dev/null 2>&1; then
        why="no temporary file: the kill did not hit the save in flight"
    fi
    local left=""
    [ "$tmp" = 1 ] && left=", the save in flight left its temporary file"
    if [ -z "$why" ]; then ok "$fault: the job ends (exit $rc), latest = step $s verifies$left"
    else not_ok "$fault: latest names a verified checkpoint, the resume is exact" "$why: $(tail -5 "$log")"; fi
    prev=${s:-0}
}
trial kill_save_data:4@1 2 1
trial kill_save_commit:6@0 4 1
trial kill_save_latest:8@0 6 0
check "kill_save_latest: the step-8 file was renamed into place, latest still names step 6" \
    test -e "$run/checkpoints/$(name 8)"
trial kill_save_data:10@0 8 1
trial kill_step:11@1 "8|10" 0
trial kill_eval:12@0 "10|12" 0
trial kill_resume@1 "$prev" 0
# A stopped rank inside a save: the other's watchdog ends the job, timed
# from the fault's own log line (its wall-clock time), not from the launch.
# ended_in_time NAME: the last trial's job ended within comm.timeout + 30 s of its fault
ended_in_time() {
    local t_fault elapsed
    t_fault=$(sed -n 's/.*fault injected: .*(unix time \([0-9.]*\)).*/\1/p' "$run-$i.log" | head -1)
    elapsed=$(python3 -c 'import sys; print(round(float(sys.argv[1]) - float(sys.argv[2]), 1))' "$t_end" "${t_fault:-0}")
    python3 -c 'import sys; sys.exit(float(sys.argv[1]) > float(sys.argv[2]) + 30)' "$elapsed" "$timeout" &&
        ok "$1: the job ended $elapsed s after the stall (comm.timeout $timeout s + 30)" ||
        not_ok "$1: the job ends within comm.timeout + 30 s of the stall" "it took $elapsed s"
}
trial stall_save_data:14@1 12 1
ended_in_time stall_save_data
expect_grep "r0/2 .*aborting the job: .*rank 1 " "$run-$i.log" "stall_save_data: rank 0's abort names rank 1 as silent"
# Stopped before the final (synchronous) save's file is created: rank 0
# waits inside HDF5's collective MPI-IO open, which no communicator sees;
# the watchdog's raw-MPI bound ends it (hung forever before).
trial stall_save_open:20@1 18 0
ended_in_time stall_save_open
# (rank 0's main thread may time out in a collective of its own first; the
# raw-MPI path alone is tested in tests/sched/test_hang.sh)
expect_grep "r0/2 .*aborting the job: .*silent: rank 1 " "$run-$i.log" \
    "stall_save_open: rank 0's abort names rank 1 as silent"
check "stall_save_open: weft-doctor names rank 1 silent" bash -c \
    "'$WEFT_BIN/weft-doctor' '$run' | grep -q 'silent (stopped, hung or dead): rank 1'"
weft_mpirun 2 "$train" "${chain[@]}" --run.dir="$run" --resume >"$run-end.log" 2>&1
check "after the faults, --resume finishes the run from step $prev" grep -q "resumed from .*(step $prev," "$run-end.log"
check "no temporary checkpoint file is left" bash -c "! ls '$run/checkpoints'/.step-* 2>/dev/null"
check "the finished run's final checkpoint is bitwise the uninterrupted run's (weights, moments, state)" \
    "$ck" diff "$TMPDIR_TEST/ref/checkpoints/$(name $steps)" "$run/checkpoints/$(name $steps)"
check "metrics.jsonl holds every step once, in order, across the faults and resumes" python3 -c '
import json, sys
s = [json.loads(l)["step"] for l in open(sys.argv[1])]
assert s == list(range(1, int(sys.argv[2]) + 1)), s' "$run/metrics.jsonl" $steps

# checkpoint.if_busy = skip: with the writer held until step 5 begins, the
# saves due at steps 2-4 find it busy and are skipped, and logged; the
# final one never is.
WEFT_FAULT=hold_save:5 weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=6 --checkpoint.every=1 \
    --run.dir="$TMPDIR_TEST/skip" --checkpoint.if_busy=skip >"$TMPDIR_TEST/skip.log" 2>&1
for s in 2 3 4; do
    expect_grep "checkpoint at step $s skipped: step 1 is still being written \(checkpoint.if_busy = skip\)" \
        "$TMPDIR_TEST/skip.log" "if_busy = skip: the save due at step $s, while step 1 is written, is skipped and logged"
done
check "if_busy = skip: the final step's checkpoint is still written" grep -qx step-00000006.h5 "$TMPDIR_TEST/skip/checkpoints/latest"

# 2. Injected write errors in the HDF5 data writes of the step-4 save.
io=("${tiny[@]}" --train.steps=8 --checkpoint.every=2 --checkpoint.keep_last=5)
WEFT_FAULT=enospc_save:4@1 weft_mpirun 2 "$train" "${io[@]}" --run.dir="$TMPDIR_TEST/nospc" \
    --checkpoint.on_error=continue >"$TMPDIR_TEST/nospc.log" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -q "done: 8 steps" "$TMPDIR_TEST/nospc.log" && ok "enospc_save, on_error = continue: training finishes (exit 0)" ||
    not_ok "enospc_save, on_error = continue: training finishes" "exit $rc: $(tail -5 "$TMPDIR_TEST/nospc.log")"
expect_grep "checkpoint step 4: .*writing [^ ]+ failed: No space left on device .*training goes on" "$TMPDIR_TEST/nospc.log" \
    "enospc_save: the failed save names the dataset and the error"
check "enospc_save: no step-4 file; steps 2, 6 and 8 committed, latest names 8 and verifies" bash -c "
    c='$TMPDIR_TEST/nospc/checkpoints'; ! ls \"\$c\"/step-00000004.h5 \"\$c\"/.step-* 2>/dev/null &&
    ls \"\$c\"/step-00000002.h5 \"\$c\"/step-00000006.h5 >/dev/null && grep -qx step-00000008.h5 \"\$c/latest\" &&
    '$ck' verify \"\$c/step-00000008.h5\""
expect_exit 74 "eio_save, on_error = stop: exit 74" env WEFT_FAULT=eio_save:4@0 \
    timeout -k 5 300 mpirun -np 2 --oversubscribe "$train" "${io[@]}" --run.dir="$TMPDIR_TEST/eio"
check "eio_save, on_error = stop: the error names the dataset and EIO" \
    grep -q "checkpoint step 4: .*writing .* failed: Input/output error" <<<"$LAST_OUT"
check "eio_save: latest still names step 2, which verifies" bash -c \
    "grep -qx step-00000002.h5 '$TMPDIR_TEST/eio/checkpoints/latest' && '$ck' verify '$TMPDIR_TEST/eio/checkpoints/step-00000002.h5'"

# A small file rank 0 writes at start-up failing (eio_file:1, owner.json):
# every rank ends with exit 74 -- before the fix rank 1 waited forever.
expect_exit 74 "eio_file at start-up (rank 0's owner.json): the whole job ends, exit 74" env WEFT_FAULT=eio_file:1@0 \
    timeout -k 5 120 mpirun -np 2 --oversubscribe "$train" "${io[@]}" --run.dir="$TMPDIR_TEST/eiofile"
check "eio_file: rank 0 names the file and EIO, rank 1 points at rank 0" bash -c "
    grep -q 'r0/2 .*owner.json.tmp.*: write of [0-9]* bytes failed: Input/output error' <<<\"\$0\" &&
    grep -q 'r1/2 .*rank 0 could not write the run.s files' <<<\"\$0\"" "$LAST_OUT"

# 3. A real full disk: a tmpfs with room for one checkpoint (0.45 MB) and the reserve.
mnt="$TMPDIR_TEST/ckpt-tmpfs"
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=1000k ckpt-tmpfs "$mnt" 2>/dev/null; then
    skip "disk full: on_error = continue" "cannot mount a tmpfs here (not root?)"
    skip "disk full: on_error = stop" "cannot mount a tmpfs here (not root?)"
    echo "1..$TAP_N"; exit 0
fi
trap 'umount "$mnt" 2>/dev/null; [ -n "${WEFT_TEST_KEEP:-}" ] || rm -rf "$TMPDIR_TEST"' EXIT
full=("${tiny[@]}" --train.steps=10 --checkpoint.every=2 --checkpoint.keep_last=5)
weft_mpirun 2 "$train" "${full[@]}" --run.dir="$TMPDIR_TEST/dc" --checkpoint.dir="$mnt/c" \
    --checkpoint.on_error=continue --checkpoint.preflight=false >"$TMPDIR_TEST/dc.log" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -q "done: 10 steps" "$TMPDIR_TEST/dc.log" && ok "disk full, on_error = continue: training finishes (exit 0)" ||
    not_ok "disk full, on_error = continue: training finishes" "exit $rc: $(grep -v '^step' "$TMPDIR_TEST/dc.log" | tail -5)"
expect_grep "checkpoint step 4: cannot reserve .* No space left on device .*training goes on" "$TMPDIR_TEST/dc.log" \
    "disk full, on_error = continue: each failed save says why (the reservation, before any HDF5 write)"
check "disk full: the step-2 checkpoint is intact, latest names it" bash -c \
    "grep -qx step-00000002.h5 '$mnt/c/latest' && '$ck' verify '$mnt/c/step-00000002.h5'"
check "disk full: no temporary file left" bash -c "! ls '$mnt/c'/.step-* 2>/dev/null"
rm -rf "$mnt/c"
expect_exit 74 "disk full, on_error = stop (free space checked first): exit 74" \
    weft_mpirun 2 "$train" "${full[@]}" --run.dir="$TMPDIR_TEST/ds2" --checkpoint.dir="$mnt/c"
check "disk full, on_error = stop: the error names the directory and the sizes" \
    grep -q "checkpoint step 4: not enough space in $mnt/c: the file needs about .* MiB are free (No space left on device)" <<<"$LAST_OUT"
check "disk full, on_error = stop: training stopped at the failed save" python3 -c '
import json, sys; s = [json.loads(l)["step"] for l in open(sys.argv[1])]; assert 4 <= s[-1] < 10, s' \
    "$TMPDIR_TEST/ds2/metrics.jsonl"
rm -f "$mnt/c/.weft-ckpt-reserve"
weft_mpirun 2 "$train" "${full[@]}" --run.dir="$TMPDIR_TEST/ds2" --checkpoint.dir="$mnt/c" --resume \
    --checkpoint.every=0 --checkpoint.at_end=false >"$TMPDIR_TEST/ds3.log" 2>&1
check "disk full: the surviving checkpoint resumes" grep -q "resumed from .*step-00000002.h5 (step 2" "$TMPDIR_TEST/ds3.log"
umount "$mnt"
echo "1..$TAP_N"
