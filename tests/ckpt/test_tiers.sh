#!/bin/bash
# test_tiers.sh -- two checkpoint tiers (checkpoint.local_dir drained to
# checkpoint.dir) with real processes and real faults, deterministic: the
# drain is held at an exact point by the registry's hold_drain (WEFT_FAULT,
# docs/operations.md "Fault injection"), never by sleeping.
#   1. same-layout resume from either tier is bitwise the uninterrupted
#      one-tier run (losses and final state); the drained file is byte for
#      byte the local one; resharded resumes from both tiers within 1e-5;
#   2. kill -9 of the job while a drain is held mid-copy: the shared latest
#      names a checkpoint that verifies, the next run resumes from the newer
#      local tier and says so, removes the half-copied file and drains the
#      local checkpoint the shared tier lacked;
#   3. the local tier gone (as after a requeue to another node): resume
#      from the shared tier, saying so; a damaged local checkpoint: the
#      shared copy of the same step;
#   4. a failed drain is retried (fail_drain) and reported;
#   5. a stop signal (SIGUSR1) waits for the drain of the checkpoint it
#      wrote and exits 138 with it in the shared tier; bounded by
#      checkpoint.drain_timeout;
#   6. ENOSPC on the shared tier (a small tmpfs): in the log, status.json and
#      the Prometheus textfile; the local tier intact; training goes on
#      (on_error = continue) or stops with 74 (stop);
#   7. the same directory for both tiers is refused (64);
#   8. so is a local_dir the ranks of one node do not share (a tmpfs in each
#      rank's own mount namespace): neither one directory for all nor one per
#      node (tests/ckpt/test_tiers_nodes.sh runs one per node);
#   9. a local_dir holding another run's checkpoints is refused (64) on a
#      fresh start and on --resume=auto, before anything is drained or
#      loaded, both tiers untouched; its owner mark is the XXH3-64 of the
#      run's owner.json (python's xxhash, the independent reference); the
#      run itself resumes there; continued in a new run.dir, it resumes
#      there once `weft-ckpt release` removed the mark, and claims the tier;
#      a malformed mark beside checkpoints is refused (65); emptied of
#      checkpoints, another run claims it.
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train" ck="$WEFT_BIN/weft-ckpt"
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1
tiny=(--data.path="$ds" --model.n_layer=2 --model.n_head=2 --model.n_embd=32 --model.context=32
      --train.seq_len=32 --train.micro_batch=2 --train.global_batch=8 --train.log_interval=1
      --train.eval_interval=0 --train.eval_batches=1 --optim.lr=3e-3 --optim.warmup=3)
ten=("${tiny[@]}" --train.steps=10 --checkpoint.every=5 --checkpoint.keep_last=5)
name() { printf 'step-%08d.h5' "$1"; }
latest_of() { sed -n 's/^step-0*\([0-9][0-9]*\)\.h5$/\1/p' "$1/latest" 2>/dev/null; }
verifies() { "$ck" verify "$1/$(name "$(latest_of "$1")")"; }
at_least() { [ "$(latest_of "$1")" -ge "$2" ] 2>/dev/null; }  # at_least DIR N: DIR's latest is step N or newer
# compare REF OTHER FROM TOL: losses of steps > FROM (to 10), relative difference <= TOL (0: bitwise)
compare() {
    python3 - "$@" <<'PY'
import json, sys
ref = {r["step"]: r["loss"] for r in map(json.loads, open(sys.argv[1]))}
got = {r["step"]: r["loss"] for r in map(json.loads, open(sys.argv[2]))}
start, tol = int(sys.argv[3]), float(sys.argv[4])
steps = sorted(s for s in got if s > start)
assert steps == list(range(start + 1, 11)), f"steps run after resuming: {steps}"
for s in steps:
    d = abs(got[s] - ref[s]) / abs(ref[s])
    assert d <= tol, f"step {s}: loss {got[s]!r} vs uninterrupted {ref[s]!r} (relative {d:.3g})"
PY
}
# status FILE EXPR: a python expression over status.json as s
status() { python3 -c "import json, sys; s = json.load(open(sys.argv[1])); assert $2, s" "$1"; }

# 1. Bitwise and resharded resumes from each tier.
ref="$TMPDIR_TEST/ref" two="$TMPDIR_TEST/two"
weft_mpirun 2 "$train" "${ten[@]}" --run.dir="$ref" >"$ref.log" 2>&1
weft_mpirun 2 "$train" "${ten[@]}" --run.dir="$two" --checkpoint.local_dir="$two/local" >"$two.log" 2>&1
check "two tiers train exactly as one: losses bitwise equal" compare "$ref/metrics.jsonl" "$two/metrics.jsonl" 0 0
check "both tiers hold steps 5 and 10, each tier's latest names step 10" bash -c "
    for d in '$two/local' '$two/checkpoints'; do
        [ \"\$(cd \$d && echo step-*.h5)\" = 'step-00000005.h5 step-00000010.h5' ] && grep -qx step-00000010.h5 \$d/latest || exit 1
    done"
check "the drained file is byte for byte the local one" cmp "$two/local/$(name 10)" "$two/checkpoints/$(name 10)"
check "the shared tier's latest verifies (weft-ckpt verify)" verifies "$two/checkpoints"
# from_tier TIER NP ARGS...: a fresh run whose TIER (local|shared) holds only two's step 5
from_tier() {
    local tier=$1 np=$2 run="$TMPDIR_TEST/from-$1-$2${3:+-x}"
    shift 2
    local dir="$run/checkpoints"
    [ "$tier" = local ] && dir="$run/local"
    mkdir -p "$dir"
    cp "$two/$([ "$tier" = local ] && echo local || echo checkpoints)/$(name 5)" "$dir/"
    echo "$(name 5)" >"$dir/latest"
    weft_mpirun "$np" "$train" "${ten[@]}" "$@" --run.dir="$run" --checkpoint.local_dir="$run/local" --resume \
        >"$run.log" 2>&1
    echo "$run"
}
r=$(from_tier local 2)
expect_grep "resuming from the local tier: $r/local/$(name 5)" "$r.log" "resume names the local tier when it holds the newest"
check "resumed from the local tier: losses of steps 6-10 bitwise equal to the uninterrupted run" \
    compare "$ref/metrics.jsonl" "$r/metrics.jsonl" 5 0
check "resumed from the local tier: final parameters and moments bitwise equal (weft-ckpt diff)" \
    "$ck" diff "$ref/checkpoints/$(name 10)" "$r/checkpoints/$(name 10)"
r=$(from_tier shared 2)
expect_grep "resuming from the shared tier: $r/checkpoints/$(name 5) \(nothing in the local tier\)" "$r.log" \
    "resume names the shared tier, and why (nothing in the local tier)"
check "resumed from the shared tier: losses of steps 6-10 bitwise equal to the uninterrupted run" \
    compare "$ref/metrics.jsonl" "$r/metrics.jsonl" 5 0
check "resumed from the shared tier: final parameters and moments bitwise equal (weft-ckpt diff)" \
    "$ck" diff "$ref/checkpoints/$(name 10)" "$r/checkpoints/$(name 10)"
r=$(from_tier local 1)
check "written on 2 ranks, resumed from the local tier on 1 rank: losses within 1e-5" \
    compare "$ref/metrics.jsonl" "$r/metrics.jsonl" 5 1e-5
check "... final weights and moments within 1e-4 of the tensor scale" \
    "$ck" diff "$ref/checkpoints/$(name 10)" "$r/checkpoints/$(name 10)" --tol 1e-4
r=$(from_tier shared 2 --parallel.tp=2)
check "written by DP 2, resumed from the shared tier on TP 2: losses within 1e-5" \
    compare "$ref/metrics.jsonl" "$r/metrics.jsonl" 5 1e-5
check "... final weights and moments within 1e-4 of the tensor scale" \
    "$ck" diff "$ref/checkpoints/$(name 10)" "$r/checkpoints/$(name 10)" --tol 1e-4

# 2. kill -9 while the drain of step 4 is held after its first chunk;
# training goes on meanwhile, committing newer local checkpoints.
run="$TMPDIR_TEST/kill" sh="$TMPDIR_TEST/kill/checkpoints" lo="$TMPDIR_TEST/kill/local"
long=("${tiny[@]}" --train.steps=1000000 --checkpoint.every=2 --checkpoint.keep_last=3 --checkpoint.local_keep=2
      --checkpoint.local_dir="$lo")
WEFT_FAULT=hold_drain:4@0 weft_mpirun 2 "$train" "${long[@]}" --run.dir="$run" >"$run-1.log" 2>&1 &
bg=$!
if wait_for 120 test -e "$run/fault-held-r0" && wait_for 120 at_least "$lo" 6; then
    kill -9 $(ranks_of "$train" "$run")
    wait $bg
    check "killed mid-drain: the half-copied file is there (the kill hit the drain)" test -e "$sh/.$(name 4).tmp"
    check "killed mid-drain: the shared latest names step 2, which verifies" bash -c \
        "[ \"\$(cat '$sh/latest')\" = $(name 2) ] && '$ck' verify '$sh/$(name 2)'"
    L=$(latest_of "$lo")
    check "killed mid-drain: the local latest (step $L) verifies" verifies "$lo"
    weft_mpirun 2 "$train" "${long[@]}" --train.steps=$((L + 2)) --run.dir="$run" --resume=auto >"$run-2.log" 2>&1
    expect_grep "resuming from the local tier: $lo/$(name "$L")" "$run-2.log" \
        "the next run resumes from the newer local tier (step $L) and says so"
    expect_grep "resumed from .*$(name "$L") \(step $L," "$run-2.log" "... and loads it"
    expect_grep "removed $sh/.$(name 4).tmp, left by a save that never finished" "$run-2.log" \
        "the half-copied file in the shared tier is removed"
    expect_grep "checkpoint step $L of the local tier .* is not in the shared tier .*: draining it" "$run-2.log" \
        "the local checkpoint the shared tier lacked is drained at start"
    check "after the resumed run: the shared latest is its final step $((L + 2)), which verifies" bash -c \
        "[ \"\$(cat '$sh/latest')\" = $(name $((L + 2))) ] && '$ck' verify '$sh/$(name $((L + 2)))'"
    check "... and step $L reached the shared tier too" test -f "$sh/$(name "$L")"
    check "no temporary file is left in either tier" bash -c "! ls '$sh'/.step-* '$lo'/.step-* 2>/dev/null"
else
    not_ok "the held drain of step 4 was reached" "$(tail -5 "$run-1.log")"
    kill -9 $(ranks_of "$train" "$run") 2>/dev/null
    wait $bg
    L=0
fi

# 3. The local tier gone: resume from the shared one. A damaged local
# checkpoint: the shared copy of the same step.
rm -rf "$lo"
weft_mpirun 2 "$train" "${long[@]}" --train.steps=$((L + 4)) --run.dir="$run" --resume=auto >"$run-3.log" 2>&1
expect_grep "resuming from the shared tier: $sh/$(name $((L + 2))) \(nothing in the local tier\)" "$run-3.log" \
    "local tier removed: resumes from the shared tier's step $((L + 2)), saying why"
expect_grep "resumed from .*$(name $((L + 2))) \(step $((L + 2))," "$run-3.log" "... and loads it"
pyh5=/usr/bin/python3
if $pyh5 -c 'import h5py' 2>/dev/null; then
    $pyh5 "$WEFT_ROOT/tests/ckpt/flip.py" "$lo/$(name $((L + 4)))" tensor params/wte >/dev/null
    weft_mpirun 2 "$train" "${long[@]}" --train.steps=$((L + 6)) --run.dir="$run" --resume=auto >"$run-4.log" 2>&1
    expect_grep "cannot resume from $lo/$(name $((L + 4))): .*checksum" "$run-4.log" \
        "a damaged local checkpoint is named, with why"
    expect_grep "resuming from the shared tier: $sh/$(name $((L + 4)))" "$run-4.log" \
        "... and the shared tier's copy of the same step is used"
else
    skip "a damaged local checkpoint falls back to the shared copy" "python3-h5py is not installed"
fi

# 4. A failed drain is retried, and reported.
run="$TMPDIR_TEST/retry"
WEFT_FAULT=fail_drain:1 weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=4 --run.dir="$run" \
    --checkpoint.local_dir="$run/local" >"$run.log" 2>&1
expect_grep "checkpoint drain of step 4 to $run/checkpoints failed \(attempt 1 of 4\): .*retrying in 0.5 s" "$run.log" \
    "a failed drain is logged with its attempt and retried"
expect_grep "checkpoint step 4 drained to $run/checkpoints" "$run.log" "the retry drains it"
check "status.json: shared_tier drained step 4, 1 retry, 0 failures" \
    status "$run/status.json" 's["shared_tier"] == {"drained_step": 4, "drained": 1, "retried": 1, "failed": 0, "error": ""}'
check "the retried drain's file verifies" verifies "$run/checkpoints"
run="$TMPDIR_TEST/retry2"
expect_exit 74 "a drain failing every attempt (drain_retries = 1), on_error = stop: exit 74" \
    env WEFT_FAULT=fail_drain timeout 300 mpirun -np 2 "$train" "${tiny[@]}" --train.steps=4 --run.dir="$run" \
    --checkpoint.local_dir="$run/local" --checkpoint.drain_retries=1
check "... the error says which step, how many attempts and where it still is" grep -q \
    "checkpoint step 4 was not drained to $run/checkpoints: step 4: .*fault injected.*; it is on the local tier only" <<<"$LAST_OUT"
check "... status.json: failed, with the drain failure" status "$run/status.json" \
    's["state"] == "failed" and s["shared_tier"]["failed"] == 1 and s["shared_tier"]["retried"] == 1'

# 5. A stop signal waits for the drain of its checkpoint: the drain is held
# (any step: the stop's is the only one) until the test releases it.
run="$TMPDIR_TEST/stop" sh="$TMPDIR_TEST/stop/checkpoints"
stoprun=("${tiny[@]}" --train.steps=1000000 --checkpoint.every=0 --checkpoint.local_dir="$run/local")
WEFT_FAULT=hold_drain weft_mpirun 2 "$train" "${stoprun[@]}" --run.dir="$run" >"$run.log" 2>&1 &
bg=$!
wait_for 120 bash -c "[ \$(wc -l <'$run/metrics.jsonl') -ge 3 ]"
kill -USR1 $(ranks_of "$train" "$run")
if wait_for 120 test -e "$run/fault-held-r0"; then
    check "stop signal: while the drain is held the job is still running, the shared tier has no latest" bash -c \
        "kill -0 $(ranks_of "$train" "$run" | head -1) && ! test -e '$sh/latest'"
    touch "$run/fault-release-r0"
fi
wait $bg
rc=$?
S=$(latest_of "$run/local")
[ "$rc" -eq 138 ] && ok "stop signal: exit 138 after the drain" || not_ok "stop signal: exit 138" "exit $rc: $(tail -5 "$run.log")"
check "stop signal: the shared tier's latest is the stop's checkpoint (step $S), which verifies" bash -c \
    "[ -n '$S' ] && [ \"\$(cat '$sh/latest')\" = $(name "${S:-0}") ] && '$ck' verify '$sh/$(name "${S:-0}")'"
check "stop signal: the log waits for the drain, then stops" python3 - "$run.log" "$S" <<'PY'
import sys
log, s = open(sys.argv[1]).read(), sys.argv[2]
w = log.find(f"waiting for checkpoint step {s} to drain")
d = log.find(f"checkpoint step {s} drained to")
e = log.find(f"stopped after step {s} ")
assert 0 <= w < d < e, (w, d, e)
PY
run="$TMPDIR_TEST/stopt" sh="$TMPDIR_TEST/stopt/checkpoints"
stoprun=("${tiny[@]}" --train.steps=1000000 --checkpoint.every=0 --checkpoint.local_dir="$run/local")
WEFT_FAULT=hold_drain weft_mpirun 2 "$train" "${stoprun[@]}" --run.dir="$run" --checkpoint.drain_timeout=1 \
    >"$run.log" 2>&1 &
bg=$!
wait_for 120 bash -c "[ \$(wc -l <'$run/metrics.jsonl') -ge 3 ]"
kill -USR1 $(ranks_of "$train" "$run")
wait $bg
rc=$?
S=$(latest_of "$run/local")
[ "$rc" -eq 138 ] && ok "stop signal, drain never finishing: exit 138 after checkpoint.drain_timeout" ||
    not_ok "stop signal, drain held: exit 138" "exit $rc: $(tail -5 "$run.log")"
expect_grep "checkpoint step $S was not drained to $sh within checkpoint.drain_timeout \(1 s\): it is on the local tier only" \
    "$run.log" "... the log says the checkpoint is on the local tier only"
check "... the local tier's latest (step $S) verifies, the shared tier has none" bash -c \
    "'$ck' verify '$run/local/$(name "${S:-0}")' && ! test -e '$sh/latest'"

# 6. ENOSPC on the shared tier: a tmpfs with room for one checkpoint (0.45 MB).
mnt="$TMPDIR_TEST/shared-tmpfs"
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=700k tiers-tmpfs "$mnt" 2>/dev/null; then
    skip "ENOSPC on the shared tier" "cannot mount a tmpfs here (not root?)"
else
    trap 'umount "$mnt" 2>/dev/null; rm -rf "$TMPDIR_TEST"' EXIT
    run="$TMPDIR_TEST/full"
    full=("${tiny[@]}" --train.steps=10 --checkpoint.every=2 --checkpoint.keep_last=5 --checkpoint.drain_retries=1
          --checkpoint.local_dir="$run/local" --checkpoint.dir="$mnt/c" --sched.textfile="$run/weft.prom")
    weft_mpirun 2 "$train" "${full[@]}" --run.dir="$run" --checkpoint.on_error=continue --checkpoint.preflight=false \
        >"$run.log" 2>&1
    rc=$?
    [ $rc -eq 0 ] && grep -q "done: 10 steps" "$run.log" && ok "shared tier full, on_error = continue: training finishes (exit 0)" ||
        not_ok "shared tier full, on_error = continue: training finishes" "exit $rc: $(grep -v '^step' "$run.log" | tail -5)"
    expect_grep "checkpoint (step [0-9]+ could not be drained|drain of step [0-9]+) .*No space left on device" "$run.log" \
        "... the log says the drain failed, with ENOSPC"
    check "... status.json: shared_tier has failures and the ENOSPC error, step 2 drained" status "$run/status.json" \
        's["state"] == "done" and s["shared_tier"]["failed"] >= 1 and "No space left on device" in s["shared_tier"]["error"] and s["shared_tier"]["drained_step"] == 2'
    check "... Prometheus: weft_checkpoint_drain_failures_total >= 1, weft_checkpoint_drained_step 2" python3 -c '
import re, sys
t = open(sys.argv[1]).read()
f = float(re.search(r"^weft_checkpoint_drain_failures_total\{[^}]*\} (\S+)$", t, re.M).group(1))
d = float(re.search(r"^weft_checkpoint_drained_step\{[^}]*\} (\S+)$", t, re.M).group(1))
assert "# TYPE weft_checkpoint_drain_failures_total counter" in t and f >= 1 and d == 2, (f, d)' "$run/weft.prom"
    check "... the local tier is intact: its latest is step 10 and verifies" bash -c \
        "[ \"\$(cat '$run/local/latest')\" = $(name 10) ] && '$ck' verify '$run/local/$(name 10)'"
    check "... the shared tier still names step 2, which verifies, and holds no temporary file" bash -c \
        "[ \"\$(cat '$mnt/c/latest')\" = $(name 2) ] && '$ck' verify '$mnt/c/$(name 2)' && ! ls '$mnt/c'/.step-* 2>/dev/null"
    rm -rf "$mnt/c" "$run"
    expect_exit 74 "shared tier full, on_error = stop (free space checked first): exit 74" \
        weft_mpirun 2 "$train" "${full[@]}" --run.dir="$run"
    check "... the error names the shared directory and the sizes" grep -q \
        "not enough space in $mnt/c: .* needs .* MiB, .* MiB are free (No space left on device)" <<<"$LAST_OUT"
    check "... status.json: failed, with the drain failure" status "$run/status.json" \
        's["state"] == "failed" and s["shared_tier"]["failed"] >= 1 and "not enough space" in s["shared_tier"]["error"]'
    check "... the local tier is intact: its latest verifies" verifies "$run/local"
    umount "$mnt"
fi

# 7. One directory for both tiers.
expect_exit 64 "checkpoint.local_dir = checkpoint.dir: exit 64" weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=2 \
    --run.dir="$TMPDIR_TEST/same" --checkpoint.local_dir="$TMPDIR_TEST/same/checkpoints"
check "... naming both keys" grep -q "checkpoint.local_dir .* and checkpoint.dir .* are the same directory" <<<"$LAST_OUT"

# 8. A local_dir that is neither one directory for every rank nor one per
# node: each rank of one node in its own mount namespace with a private
# tmpfs at the same path.
priv="$TMPDIR_TEST/private"
mkdir -p "$priv"
if unshare -m --propagation private true 2>/dev/null; then
    expect_exit 64 "checkpoint.local_dir private to each rank of one node: exit 64" weft_mpirun 2 \
        unshare -m --propagation private sh -c 'mount -t tmpfs node-local "$0" && exec "$@"' "$priv" \
        "$train" "${tiny[@]}" --train.steps=2 --run.dir="$TMPDIR_TEST/priv" --checkpoint.local_dir="$priv"
    check "... saying that the ranks of one node do not see their own node's directory" grep -q \
        "checkpoint.local_dir $priv is neither one directory every rank sees nor one directory per node" <<<"$LAST_OUT"
else
    skip "checkpoint.local_dir private to each rank: exit 64" "unshare -m is not permitted here"
fi
# 9. A local tier is one run's (checkpoint/owner.h).
lo="$TMPDIR_TEST/node-local" runa="$TMPDIR_TEST/own-a" runb="$TMPDIR_TEST/own-b"
own=("${tiny[@]}" --checkpoint.every=2 --checkpoint.keep_last=5 --checkpoint.local_keep=5 --checkpoint.local_dir="$lo")
weft_mpirun 2 "$train" "${own[@]}" --train.steps=4 --run.dir="$runa" >"$runa.log" 2>&1 ||
    not_ok "run A with a local tier" "$(tail -20 "$runa.log")"
check "the local tier's owner mark is the XXH3-64 of run A's owner.json" test "$(cat "$lo/.weft-owner")" = "$(owner_mark "$runa")"
before=$(cd "$lo" && ls -la --time-style=full-iso step-* latest && cat latest)
expect_exit 64 "another run's local tier, fresh start: exit 64" weft_mpirun 2 "$train" "${own[@]}" --train.steps=4 \
    --run.dir="$runb"
check "... naming the directory, its steps and both runs" grep -q \
    "checkpoint.local_dir $lo holds 2 checkpoints (steps 2 to 4) of another run ($lo/.weft-owner names run [0-9a-f]\{16\}; this one is [0-9a-f]\{16\}, from run.dir/owner.json)" <<<"$LAST_OUT"
check "... nothing drained into its shared tier" bash -c "! ls '$runb/checkpoints'/step-* 2>/dev/null"
expect_exit 64 "another run's local tier, --resume=auto in a new run.dir: exit 64 before loading" weft_mpirun 2 "$train" \
    "${own[@]}" --train.steps=6 --run.dir="$runb-auto" --resume=auto
check "... saying this run has no identity yet" grep -q "this run has no run.dir/owner.json yet" <<<"$LAST_OUT"
check "... and how a continued run takes the tier" grep -q "if this run continues that one, 'weft-ckpt release $lo'" <<<"$LAST_OUT"
check "... nothing resumed from it" bash -c "! grep -q 'resuming from' <<<\"\$1\"" _ "$LAST_OUT"
check "... the local tier untouched by both" test "$before" = "$(cd "$lo" && ls -la --time-style=full-iso step-* latest && cat latest)"
weft_mpirun 2 "$train" "${own[@]}" --train.steps=6 --run.dir="$runa" --resume=auto >"$runa-2.log" 2>&1 ||
    not_ok "run A resumes from its own local tier" "$(tail -20 "$runa-2.log")"
expect_grep "resuming from the local tier: $lo/$(name 4)" "$runa-2.log" "run A resumes from its own local tier"
# Run A continued in a new run.dir (C): refused as above until weft-ckpt
# release removes A's mark; then C resumes from the tier and claims it.
runc="$TMPDIR_TEST/own-c" marka=$(owner_mark "$runa")
check "weft-ckpt ls names the local tier's owner" bash -c "'$ck' ls '$lo' | grep -qx '  owner: run ${marka#owner } (.weft-owner, a local tier.s mark)'"
out=$("$ck" release "$lo") || not_ok "weft-ckpt release LOCAL_DIR" "$out"
check "weft-ckpt release names the steps the tier held and the run they were" test "$out" = \
    "released $lo: its 3 checkpoints (steps 2 to 6) were run ${marka#owner }'s; the next run to use it as checkpoint.local_dir takes them as its own"
check "... and the mark is gone" test ! -e "$lo/.weft-owner"
weft_mpirun 2 "$train" "${own[@]}" --train.steps=8 --run.dir="$runc" --resume=auto >"$runc.log" 2>&1 ||
    not_ok "after release, the continued run resumes from the tier" "$(tail -20 "$runc.log")"
expect_grep "resuming from the local tier: $lo/$(name 6)" "$runc.log" "after release, the continued run resumes from the tier's newest"
check "... and claims it (its mark now run C's)" test "$(cat "$lo/.weft-owner")" = "$(owner_mark "$runc")"
expect_exit 66 "weft-ckpt release of a directory that does not exist: exit 66" "$ck" release "$TMPDIR_TEST/no-such-tier"
printf 'owner of this: me\n' >"$lo/.weft-owner"
expect_exit 65 "a malformed owner mark beside checkpoints: exit 65" weft_mpirun 2 "$train" "${own[@]}" --train.steps=6 \
    --run.dir="$runa" --resume=auto
check "... naming the mark file" grep -q "$lo/.weft-owner is malformed ('owner of this: me')" <<<"$LAST_OUT"
rm -f "$lo"/step-* "$lo/latest"
weft_mpirun 2 "$train" "${own[@]}" --train.steps=2 --run.dir="$runb" --run.overwrite=true >"$runb.log" 2>&1 ||
    not_ok "a local tier emptied of checkpoints: another run claims it" "$(tail -20 "$runb.log")"
check "a local tier emptied of checkpoints: another run claims it (its mark now run B's)" \
    test "$(cat "$lo/.weft-owner")" = "$(owner_mark "$runb")"
echo "1..$TAP_N"
