#!/bin/bash
# test_faults.sh -- checkpoints under real faults:
#   - kill -9 of one rank (chosen at random) at a random moment while
#     checkpoints are being written back to back (every other time just
#     after a save began), 8 times: every time, latest
#     names a complete file that weft-ckpt verify passes, never a partial one;
#     the next run resumes from exactly that step (--resume=auto) and left-
#     over temporary files are removed; at least one kill hit a save in flight;
#   - a full disk (a small tmpfs mounted for the test): with
#     checkpoint.on_error = continue training finishes (exit 0) and says why
#     saves fail; with stop the run ends with exit 74 and the message; either
#     way the earlier checkpoint is intact and resumable, and no temporary
#     file is left.
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train" ck="$WEFT_BIN/weft-ckpt"
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1
tiny=(--data.path="$ds" --model.n_layer=2 --model.n_head=2 --model.n_embd=32 --model.context=32
      --train.seq_len=32 --train.micro_batch=2 --train.global_batch=8 --train.log_interval=1
      --train.eval_interval=0 --train.eval_batches=1)
latest_step() { sed -n 's/^step-0*\([0-9][0-9]*\)\.h5$/\1/p' "$1/checkpoints/latest" 2>/dev/null; }

# 1. kill -9 during saves. A bigger model (10 MB files) saved after every step
# keeps the writer busy most of the time.
run="$TMPDIR_TEST/kill"
big=("${tiny[@]}" --model.n_embd=128 --model.n_layer=4 --model.n_head=4 --train.steps=1000000
     --checkpoint.every=1 --checkpoint.keep_last=2)
prev=0 mid=0 bad=""
for i in $(seq 8); do
    weft_mpirun 2 "$train" "${big[@]}" --run.dir="$run" --resume=auto >"$run-$i.log" 2>&1 &
    bg=$!
    # wait for a checkpoint newer than the last run's, then a random moment
    if ! wait_for 60 bash -c "s=\$(sed -n 's/^step-0*\([0-9]*\)\.h5\$/\1/p' '$run/checkpoints/latest'); [ \"\${s:-0}\" -gt $prev ]"; then
        bad="run $i never committed a checkpoint: $(tail -5 "$run-$i.log")"
        kill -9 $(ranks_of "$train" "$run") 2>/dev/null; wait $bg; break
    fi
    # odd runs: any moment; even runs: just after a save begins
    [ $((i % 2)) -eq 0 ] && wait_for 5 bash -c "ls '$run/checkpoints'/.step-*.h5.tmp"
    sleep "0.0$((RANDOM % 10))$((RANDOM % 10))"
    [ $((i % 2)) -eq 1 ] && sleep "0.$((RANDOM % 10))"
    pids=($(ranks_of "$train" "$run"))
    ls "$run/checkpoints"/.step-*.h5.tmp >/dev/null 2>&1 && mid=$((mid + 1))
    kill -9 "${pids[$((RANDOM % ${#pids[@]}))]}"
    wait $bg
    s=$(latest_step "$run")
    if ! "$ck" verify "$run/checkpoints/step-$(printf %08d "$s").h5" >"$run-$i.verify" 2>&1; then
        bad="after kill $i, latest (step $s) does not verify: $(cat "$run-$i.verify")"; break
    fi
    if [ "$i" -gt 1 ] && ! grep -q "resumed from .*step-$(printf %08d "$prev").h5 (step $prev," "$run-$i.log"; then
        bad="run $i did not resume from step $prev: $(grep -m3 'resumed\|ERROR' "$run-$i.log")"; break
    fi
    prev=$s
done
[ -z "$bad" ] && ok "kill -9 of a random rank at random moments, 8 times: latest always names a checkpoint that verifies, and the next run resumes from it" ||
    not_ok "kill -9 during saves: the previous checkpoint always loads" "$bad"
[ "$mid" -ge 1 ] && ok "at least one kill hit a save in flight ($mid of 8 had a temporary file)" ||
    not_ok "at least one kill hit a save in flight" "no .tmp file was ever present at the kill"
weft_mpirun 2 "$train" "${big[@]}" --train.steps=$((prev + 2)) --run.dir="$run" --resume >"$run-end.log" 2>&1
check "after the kills, --resume finishes the run from step $prev" grep -q "resumed from .*(step $prev," "$run-end.log"
check "no temporary checkpoint file is left" bash -c "! ls '$run/checkpoints'/.step-* 2>/dev/null"
check "metrics.jsonl holds every step once, in order, across the kills and resumes" python3 -c '
import json, sys
s = [json.loads(l)["step"] for l in open(sys.argv[1])]
assert s == list(range(1, int(sys.argv[2]) + 1)), s' "$run/metrics.jsonl" $((prev + 2))

# checkpoint.if_busy = skip: saves due while one is written are skipped and
# logged; the final one never is.
weft_mpirun 2 "$train" "${big[@]}" --train.steps=6 --run.dir="$TMPDIR_TEST/skip" --checkpoint.if_busy=skip \
    >"$TMPDIR_TEST/skip.log" 2>&1
expect_grep "checkpoint at step [0-9]+ skipped: step [0-9]+ is still being written \(checkpoint.if_busy = skip\)" \
    "$TMPDIR_TEST/skip.log" "if_busy = skip: a save due during a save is skipped, and logged"
check "if_busy = skip: the final step's checkpoint is still written" grep -qx step-00000006.h5 "$TMPDIR_TEST/skip/checkpoints/latest"

# 2. Disk full: a tmpfs with room for one checkpoint (0.45 MB) and the reserve.
mnt="$TMPDIR_TEST/ckpt-tmpfs"
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=1000k ckpt-tmpfs "$mnt" 2>/dev/null; then
    skip "disk full: on_error = continue" "cannot mount a tmpfs here (not root?)"
    skip "disk full: on_error = stop" "cannot mount a tmpfs here (not root?)"
    echo "1..$TAP_N"; exit 0
fi
trap 'umount "$mnt" 2>/dev/null; rm -rf "$TMPDIR_TEST"' EXIT
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
