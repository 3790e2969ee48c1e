#!/bin/bash
# test_obs.sh -- observability end to end on a tiny GPT, 2 ranks:
#   - --trace.steps=2:4 writes trace/rank-{0,1}.json; weft-trace merges them
#     into valid JSON with a track per rank, per-layer forward/backward,
#     bucket reductions on their own lane, optimizer and data wait, eval,
#     and nothing outside steps 2..4; tracing off writes no trace directory;
#   - weft-plot writes four non-empty PNGs (signature checked);
#   - weft-report's steps, median tokens/s and final loss match
#     metrics.jsonl recomputed in Python; it fits in 80 columns;
#   - error exits: missing run dir (66), malformed trace (65), bad window (64).
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train"
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1

tiny=(--data.path="$ds" --model.n_layer=2 --model.n_head=2 --model.n_embd=32 --model.context=32
      --train.seq_len=32 --train.micro_batch=4 --train.global_batch=8 --train.log_interval=1
      --train.eval_interval=3 --train.eval_batches=1 --optim.lr=3e-3 --optim.warmup=5
      --parallel.bucket_mb=0.01)
run=$TMPDIR_TEST/run
weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=6 --trace.steps=2:4 --run.dir="$run" >"$TMPDIR_TEST/run.log" 2>&1
rc=$?
[ $rc -eq 0 ] && ok "a traced 2-rank run finishes" || not_ok "a traced 2-rank run finishes" "$(tail -20 "$TMPDIR_TEST/run.log")"
for r in 0 1; do
    [ -s "$run/trace/rank-$r.json" ] && ok "trace/rank-$r.json written" || not_ok "trace/rank-$r.json written"
done
perm=$(stat -c %a "$run/trace/rank-0.json" 2>/dev/null)
[ "$perm" = 640 ] && ok "trace files are mode 0640" || not_ok "trace files are mode 0640" "mode $perm"
check "weft-trace merges them" "$WEFT_BIN/weft-trace" "$run"
check "the merged trace is valid JSON (python3 -m json.tool)" python3 -m json.tool "$run/trace.json"
check "tracks, per-layer names, buckets, optimizer, data wait, only steps 2..4" python3 - "$run/trace.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
ev = doc["traceEvents"]
x = [e for e in ev if e["ph"] == "X"]
meta = {(e["pid"], e["args"]["name"]) for e in ev if e["ph"] == "M" and e["name"] == "process_name"}
assert {p for p, _ in meta} == {0, 1}, meta
assert all(n.startswith(f"rank {p} (") for p, n in meta), meta
for pid in (0, 1):
    names = {e["name"] for e in x if e["pid"] == pid}
    for want in ("h.0.forward", "h.1.forward", "h.0.backward", "h.1.backward", "head.forward",
                 "head.backward", "embed.forward", "embed.backward", "optimizer", "data.wait", "grads.wait"):
        assert want in names, (pid, want, sorted(names))
    buckets = [e for e in x if e["pid"] == pid and e["name"].startswith("bucket.")]
    assert len(buckets) >= 3 * 2, ("several buckets per step", len(buckets))
    assert all(e["tid"] == 1 and e["cat"] == "comm" for e in buckets), "buckets on their own lane"
    assert all(e["tid"] == 0 for e in x if e["pid"] == pid and e["name"].endswith("forward")), "compute lane"
    steps = sorted(e["args"]["step"] for e in x if e["pid"] == pid and e["name"].startswith("step "))
    assert steps == [2, 3, 4], steps
    assert "eval" in names, "step 3 evaluates (eval_interval 3)"
assert all(2 <= e["args"]["step"] <= 4 for e in x), sorted({e["args"]["step"] for e in x})
assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in x)
# a bucket's reduction starts inside backward: launched as backward produces it
for pid in (0, 1):
    step3 = [e for e in x if e["pid"] == pid and e["args"]["step"] == 3]
    bwd = [e for e in step3 if e["name"].endswith(".backward")]
    b0 = min(e["ts"] for e in step3 if e["name"].startswith("bucket."))
    assert min(e["ts"] for e in bwd) <= b0 <= max(e["ts"] + e["dur"] for e in bwd), "overlap with backward"
PY

# Tracing off: no trace directory, and the same losses (tracing changes nothing).
weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=6 --run.dir="$TMPDIR_TEST/off" >/dev/null 2>&1
[ -s "$TMPDIR_TEST/off/metrics.jsonl" ] && [ ! -e "$TMPDIR_TEST/off/trace" ] && ok "tracing off writes no trace directory" \
    || not_ok "tracing off writes no trace directory" "$(ls -la "$TMPDIR_TEST/off" 2>&1)"
losses() { python3 -c 'import json,sys; print([json.loads(l)["loss"] for l in open(sys.argv[1])])' "$1"; }
[ "$(losses "$run/metrics.jsonl")" = "$(losses "$TMPDIR_TEST/off/metrics.jsonl")" ] \
    && ok "tracing does not change the losses" || not_ok "tracing does not change the losses"
expect_exit 66 "weft-trace of a run without traces exits 66" "$WEFT_BIN/weft-trace" "$TMPDIR_TEST/off"

# A full buffer drops events, counts them and says so; the file stays valid.
weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=40 --trace.steps=1:40 --trace.max_events=1024 \
    --run.dir="$TMPDIR_TEST/full" >"$TMPDIR_TEST/full.log" 2>&1
expect_grep "events dropped \(buffer of 1024 full\); raise trace.max_events" "$TMPDIR_TEST/full.log" \
    "a full trace buffer warns, naming trace.max_events"
check "... and the file counts the dropped events and holds 1024" python3 - "$TMPDIR_TEST/full/trace/rank-0.json" <<'PY'
import json, sys
ev = json.load(open(sys.argv[1]))
info = [e for e in ev if e["name"] == "trace_info"][0]["args"]
assert info["dropped"] > 0 and info["events"] == 1024, info
assert len([e for e in ev if e["ph"] == "X"]) == 1024
PY

# A run stopped by a non-finite loss (exit 70) keeps its timeline up to the failure.
WEFT_FAULT=nan_step:4@1 weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=6 --trace.steps=1:6 \
    --run.dir="$TMPDIR_TEST/nan" >/dev/null 2>&1
check "a run stopped at step 4 (exit 70) still writes both ranks' traces, up to step 4" python3 - "$TMPDIR_TEST/nan/trace" <<'PY'
import json, sys
for r in (0, 1):
    ev = json.load(open(f"{sys.argv[1]}/rank-{r}.json"))
    steps = {e["args"]["step"] for e in ev if e["ph"] == "X"}
    assert steps == {1, 2, 3, 4}, steps
PY

# weft-plot
if command -v gnuplot >/dev/null; then
    "$WEFT_BIN/weft-plot" "$run" >"$TMPDIR_TEST/plot.out" 2>&1
    rc=$?
    [ $rc -eq 0 ] && ok "weft-plot exits 0" || not_ok "weft-plot exits 0" "$(cat "$TMPDIR_TEST/plot.out")"
    for p in loss tokens_per_s step_time lr; do
        f="$run/plots/$p.png"
        if [ -s "$f" ] && [ "$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] \
            && grep -qx "$f" "$TMPDIR_TEST/plot.out"; then
            ok "weft-plot wrote $p.png (a non-empty PNG) and printed its path"
        else
            not_ok "weft-plot wrote $p.png (a non-empty PNG) and printed its path" "$(ls -la "$run/plots" 2>&1)"
        fi
    done
else
    skip "weft-plot charts" "gnuplot not installed (apt-get install gnuplot-nox)"
fi
expect_exit 69 "weft-plot without gnuplot exits 69" env PATH=/nonexistent "$WEFT_BIN/weft-plot" "$run"
echo "$LAST_OUT" | grep -q "gnuplot-nox" && ok "  ... naming the package" || not_ok "  ... naming the package" "$LAST_OUT"

# weft-report
"$WEFT_BIN/weft-report" "$run" >"$TMPDIR_TEST/report.txt" 2>&1
check "weft-report's figures match metrics.jsonl" python3 - "$run/metrics.jsonl" "$TMPDIR_TEST/report.txt" <<'PY'
import json, os, re, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rep = open(sys.argv[2]).read()
m = re.search(r"(\d+) steps logged, last step (\d+)", rep)
assert m and int(m.group(1)) == len(rows) and int(m.group(2)) == rows[-1]["step"], rep
tps = statistics.median(r["tokens_per_s"] for r in rows)
m = re.search(r"median (\d+) tokens/s, ([\d.]+) ms/step", rep)
assert m and abs(int(m.group(1)) - tps) <= 0.5 + 1e-6 * tps, (m and m.group(1), tps)
ms = statistics.median(r["ms_per_step"] for r in rows)
assert abs(float(m.group(2)) - ms) <= 0.006, (m.group(2), ms)
m = re.search(r"loss +final ([\d.]+) \(step (\d+)\)", rep)
assert m and abs(float(m.group(1)) - rows[-1]["loss"]) < 5e-5 and int(m.group(2)) == rows[-1]["step"], rep
v = [r for r in rows if "val_loss" in r]
m = re.search(r"validation +final ([\d.]+) \(step (\d+)\), best ([\d.]+) \(step (\d+)\)", rep)
best = min(v, key=lambda r: r["val_loss"])
assert m and abs(float(m.group(1)) - v[-1]["val_loss"]) < 5e-5 and abs(float(m.group(3)) - best["val_loss"]) < 5e-5, rep
assert int(m.group(4)) == best["step"]
assert re.search(r"MFU +\d+\.\d%", rep), rep
assert re.search(r"2 ranks on 1 node .*backend \w+", rep), rep
assert re.search(r"errors +0 skipped", rep) and re.search(r"restarts +0", rep), rep
ckdir = os.path.join(os.path.dirname(sys.argv[1]), "checkpoints")
files = sorted(f for f in os.listdir(ckdir) if re.fullmatch(r"step-\d{8}\.h5", f)) if os.path.isdir(ckdir) else []
if files:
    m = re.search(r"checkpoints +(\d+) on disk, last committed at step (\d+)", rep)
    assert m and int(m.group(1)) == len(files) and int(m.group(2)) == int(files[-1][5:13]), (files, rep)
else:
    assert "checkpoints none" in rep, rep
assert "model.n_layer=2" in rep and "train.steps=6" in rep, rep
assert max(len(l) for l in rep.splitlines()) <= 80, "wider than 80 columns"
PY

# Errors and usage.
for tool in weft-trace weft-plot weft-report; do
    expect_exit 66 "$tool of a missing run directory exits 66" "$WEFT_BIN/$tool" "$TMPDIR_TEST/nope"
    expect_exit 64 "$tool without arguments exits 64" "$WEFT_BIN/$tool"
    expect_exit 0 "$tool --help exits 0" "$WEFT_BIN/$tool" --help
done
cp -r "$run" "$TMPDIR_TEST/bad"
rm -f "$TMPDIR_TEST/bad/trace.json"
printf '[{"name":"x","ph":"X"},{"name":' >"$TMPDIR_TEST/bad/trace/rank-1.json"
expect_exit 65 "weft-trace of a truncated rank file exits 65" "$WEFT_BIN/weft-trace" "$TMPDIR_TEST/bad"
echo "$LAST_OUT" | grep -q "rank-1.json: malformed at byte offset 31" && ok "  ... naming the file and offset" \
    || not_ok "  ... naming the file and offset" "$LAST_OUT"
[ ! -e "$TMPDIR_TEST/bad/trace.json" ] && ok "  ... and leaves no trace.json" \
    || not_ok "  ... and leaves no trace.json"
echo 'not json' >"$TMPDIR_TEST/bad/metrics.jsonl"
expect_exit 65 "weft-report of a malformed metrics file exits 65" "$WEFT_BIN/weft-report" "$TMPDIR_TEST/bad"
expect_exit 64 "a malformed trace.steps exits 64" weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=2 \
    --trace.steps=4:2 --run.dir="$TMPDIR_TEST/badwin"
echo "$LAST_OUT" | grep -q "trace.steps = '4:2'" && ok "  ... naming the key" || not_ok "  ... naming the key" "$LAST_OUT"
