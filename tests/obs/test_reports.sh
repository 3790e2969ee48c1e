#!/bin/bash
# test_reports.sh -- what the run directory and the tools report is true,
# on 2 ranks of a tiny GPT:
#   - weft-report says how a run ended: failed with its exit code and reason
#     (a NaN loss: exit 70), still running (fresh heartbeat), stopped and
#     requeued (SIGUSR1: exit 138), done;
#   - a failing run's log names the rank once per line (no "rank 1: rank 1:",
#     no "[weft r1/2 ...] ... rank 1: ...");
#   - every fraction (comm_hidden, pipe_idle) lies in [0, 1], every time is
#     >= 0 and ckpt_blocked_ms <= ms_per_step, in metrics.jsonl, status.json
#     and weft-report's time breakdown, over dp 2 (checkpoint.every = 2,
#     evaluation), tp 2, pp 2 (1F1B) and ZeRO-1;
#   - a small model's checkpoint (0.12 M parameters) is within 2x its raw
#     size (parameters and two Adam moments in f32): only datasets at least
#     checkpoint.alignment long are aligned.
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train"
report="$WEFT_BIN/weft-report"
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1
tiny=(--data.path="$ds" --model.n_layer=2 --model.n_head=2 --model.n_embd=32 --model.context=32
      --train.seq_len=32 --train.micro_batch=2 --train.global_batch=8 --train.log_interval=1
      --train.eval_interval=0 --train.eval_batches=1 --parallel.bucket_mb=0.01)
# ended REPORT: weft-report's "ended" entry, its wrapped lines joined.
ended() { awk '/^ended /{on=1; printf "%s", $0; next} on && /^            /{sub(/^ +/, " "); printf "%s", $0; next} {on=0}' "$1"; echo; }

# 1. A run that fails: the last rank's loss is NaN at step 3 (exit 70).
run="$TMPDIR_TEST/nan"
WEFT_FAULT=nan_step:4@1 weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=10 --run.dir="$run" >"$run.log" 2>&1
rc=$?
[ "$rc" -eq 70 ] && ok "a NaN loss ends the run with exit 70" || not_ok "a NaN loss ends the run with exit 70" "exit $rc: $(tail -5 "$run.log")"
"$report" "$run" >"$run.report" 2>&1
ended "$run.report" >"$run.ended"
expect_grep "^ended +failed at step 3 of 10 \(exit 70\): .*not finite" "$run.ended" \
    "weft-report on the failed run: failed, at which step, exit code 70 and the reason"
check "the failing run's log names the rank once per line" python3 - "$run.log" <<'PY'
import re, sys
bad = []
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"\[weft r(\d+)/\d+ [^]]*\](.*)", line)
    if re.search(r"rank (\d+): rank \1:", line) or (m and re.search(r"\brank %s: " % m.group(1), m.group(2))):
        bad.append(line.rstrip())
assert not bad, "\n".join(bad)
PY

# 2. A run stopped by SIGUSR1 to one rank: weft-report says still running
#    while it is, then stopped and requeued (exit 138).
run="$TMPDIR_TEST/stop"
weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=1000000 --run.dir="$run" --sched.status_interval=0 \
    >"$run.log" 2>&1 &
bg=$!
for i in $(seq 600); do grep -q '"step":[1-9][0-9]' "$run/status.json" 2>/dev/null && break; sleep 0.1; done
"$report" "$run" >"$run.live" 2>&1
ended "$run.live" >"$run.live.ended"
expect_grep "^ended +still running \(running\) at step [0-9]+ of 1000000, last heartbeat [0-9]+ s ago" "$run.live.ended" \
    "weft-report on a live run: still running"
kill -USR1 "$(awk '/^pid/ {print $2}' "$run/heartbeat/rank-1")"
wait "$bg"
rc=$?
[ "$rc" -eq 138 ] && ok "SIGUSR1 stops the run with exit 138" || not_ok "SIGUSR1 stops the run with exit 138" "exit $rc: $(tail -5 "$run.log")"
"$report" "$run" >"$run.report" 2>&1
ended "$run.report" >"$run.ended"
expect_grep "^ended +stopped and requeued after step [0-9]+ of 1000000 \(exit 138\): stop requested" "$run.ended" \
    "weft-report on the stopped run: stopped and requeued, exit 138"

# 3. Fractions and times over layouts.
sweep() { # name extra-args...
    local name=$1 dir="$TMPDIR_TEST/$1"; shift
    if ! weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=8 --run.dir="$dir" "$@" >"$dir.log" 2>&1; then
        not_ok "$name: the run finishes" "$(tail -5 "$dir.log")"
        return
    fi
    "$report" "$dir" >"$dir.report" 2>&1
    check "$name: fractions in [0, 1], times >= 0, ckpt_blocked_ms <= ms_per_step (metrics, status, weft-report)" \
        python3 - "$dir" <<'PY'
import json, re, sys
d = sys.argv[1]
rows = [json.loads(l) for l in open(d + "/metrics.jsonl")]
assert len(rows) == 8, len(rows)
for r in rows:
    for k in ("comm_hidden", "pipe_idle"):
        if k in r:
            assert 0 <= r[k] <= 1, (k, r)
    for k in ("ms_per_step", "data_wait_ms", "comm_wait_ms", "ckpt_blocked_ms", "tokens_per_s", "flops_per_s"):
        if k in r:
            assert r[k] is not None and r[k] >= 0, (k, r)
    assert r.get("ckpt_blocked_ms", 0) <= r["ms_per_step"], r
    assert r["data_wait_ms"] + r["comm_wait_ms"] + r.get("ckpt_blocked_ms", 0) <= r["ms_per_step"] * 1.001, r
st = json.load(open(d + "/status.json"))
assert st["state"] == "done" and st["exit_code"] == 0, st
for k in ("elapsed_s", "eta_s", "tokens_per_s"):
    assert st[k] is not None and st[k] >= 0, (k, st)
rep = open(d + ".report").read()
assert re.search(r"^ended +done: all 8 steps \(exit 0\)", rep, re.M), rep
t = re.search(r"compute (-?[\d.]+)%, communication wait (-?[\d.]+)%, data wait (-?[\d.]+)%,\s+"
              r"checkpoint stall (-?[\d.]+)%", rep)
assert t, rep
parts = [float(x) for x in t.groups()]
assert all(0 <= p <= 100 for p in parts) and abs(sum(parts) - 100) < 0.5, parts
PY
}
sweep dp2 --parallel.dp=2 --checkpoint.every=2 --train.eval_interval=2
sweep tp2 --parallel.tp=2 --parallel.dp=1
sweep pp2 --parallel.pp=2 --parallel.dp=1 --parallel.schedule=1f1b
sweep zero1 --parallel.dp=2 --parallel.zero=1 --checkpoint.every=2
check "pp2: metrics.jsonl has pipe_idle" grep -q '"pipe_idle"' "$TMPDIR_TEST/pp2/metrics.jsonl"
check "dp2: metrics.jsonl has ckpt_blocked_ms and val_loss" \
    sh -c "grep -q ckpt_blocked_ms '$TMPDIR_TEST/dp2/metrics.jsonl' && grep -q val_loss '$TMPDIR_TEST/dp2/metrics.jsonl'"

# 4. A small model's checkpoint is within 2x its raw size.
run="$TMPDIR_TEST/small"
weft_mpirun 2 "$train" "${tiny[@]}" --model.n_embd=64 --train.steps=2 --run.dir="$run" >"$run.log" 2>&1
check "a 0.12 M-parameter model's checkpoint is within 2x its raw size (parameters + Adam moments, f32)" \
    python3 - "$run" <<'PY'
import glob, json, os, sys
d = sys.argv[1]
params = json.load(open(d + "/run.json"))["params"]
assert 100000 < params < 150000, params
raw = 3 * 4 * params
files = glob.glob(d + "/checkpoints/step-*.h5")
assert files, os.listdir(d + "/checkpoints")
for f in files:
    size = os.path.getsize(f)
    assert size <= 2 * raw, (f, size, raw)
PY
