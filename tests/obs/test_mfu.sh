#!/bin/bash
# test_mfu.sh -- MFU is against the machine's peak, so it stays below 100%:
# a short run of the demo's configuration (examples/configs/demo.ini, 2
# ranks, 40 steps on its generated corpus) records in run.json the peak
# per rank it measured at start (the best oneDNN f32 GEMM of large squares)
# and what it is; every metrics.jsonl row's mfu, status.json's mfu and
# weft-report's MFU are model FLOP/s per rank over that peak, in (0, 100%),
# and agree with each other. run.peak_flops, when given, is the peak used
# instead (nothing measured); a step faster than the peak (a peak measured
# while other processes shared the cores, a wrong run.peak_flops) is
# warned about once, not hidden.
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train"
d=$TMPDIR_TEST
"$WEFT_ROOT/examples/corpus/make-corpus.sh" "$d/corpus.txt" 4000
"$WEFT_BIN/weft-data" prepare -o "$d/ds" --val-fraction 0.05 "$d/corpus.txt" >/dev/null
demo=(--config "$WEFT_ROOT/examples/configs/demo.ini" --data.path="$d/ds" --train.steps=40 --train.log_interval=1
      --train.eval_interval=0 --train.eval_batches=0 --checkpoint.every=0 --checkpoint.at_end=false)

run=$d/run
if weft_mpirun 2 "$train" "${demo[@]}" --run.dir="$run" >"$run.log" 2>&1; then
    ok "a 40-step run of the demo's configuration finishes"
else
    not_ok "a 40-step run of the demo's configuration finishes" "$(tail -5 "$run.log")"
fi
"$WEFT_BIN/weft-report" "$run" >"$run.report" 2>&1
check "MFU below 100% in metrics.jsonl, status.json and weft-report, all against run.json's measured peak" \
    python3 - "$run" "$run.report" <<'PY'
import json, re, statistics, sys
d, rep = sys.argv[1], open(sys.argv[2]).read()
info = json.load(open(d + "/run.json"))
peak, ranks = info["peak_flops"], info["ranks"]
assert peak > 1e8 and info["peak_precision"] == "f32" and info["peak_source"].startswith("oneDNN f32 GEMM"), info
rows = [json.loads(l) for l in open(d + "/metrics.jsonl")]
assert len(rows) == 40, len(rows)
for r in rows:
    assert 0 < r["mfu"] < 1, r
    assert abs(r["mfu"] - r["flops_per_s"] / ranks / peak) <= 1e-3 * r["mfu"], (r, peak)
st = json.load(open(d + "/status.json"))
assert 0 < st["mfu"] < 1 and abs(st["peak_flops_per_rank"] - peak) <= 1e-5 * peak, st
assert abs(st["mfu"] - st["model_flops_per_s_per_rank"] / peak) <= 1e-3 * st["mfu"], st
m = re.search(r"^MFU +([\d.]+)%: ([\d.]+) GFLOP/s per rank \(model\) / ([\d.]+) GFLOP/s peak per rank", rep, re.M)
assert m, rep
mfu = 100 * statistics.median(r["flops_per_s"] for r in rows) / ranks / peak
assert 0 < float(m.group(1)) < 100 and abs(float(m.group(1)) - mfu) < 0.06, (m.group(0), mfu)
assert abs(float(m.group(3)) * 1e9 - peak) <= 0.006e9, (m.group(3), peak)
assert "(peak: oneDNN f32 GEMM" in rep and re.search(r"model [\d.]+ GFLOP/s per rank", rep), rep
print("MFU %.1f%% of %.1f GFLOP/s" % (mfu, peak / 1e9))
PY
grep -q "MFU [0-9.]*% | ETA" "$run.log" && ok "the log line shows MFU" || not_ok "the log line shows MFU" "$(grep step "$run.log" | head -2)"

given=$d/given
weft_mpirun 2 "$train" "${demo[@]}" --train.steps=4 --run.peak_flops=2.5e12 --run.dir="$given" >"$given.log" 2>&1 \
    || not_ok "a run with run.peak_flops finishes" "$(tail -5 "$given.log")"
check "run.peak_flops is the peak used and named" python3 - "$given" <<'PY'
import json, sys
d = sys.argv[1]
info = json.load(open(d + "/run.json"))
assert info["peak_flops"] == 2.5e12 and info["peak_source"] == "run.peak_flops", info
for l in open(d + "/metrics.jsonl"):
    r = json.loads(l)
    assert abs(r["mfu"] - r["flops_per_s"] / info["ranks"] / 2.5e12) <= 1e-3 * r["mfu"], r
PY

low=$d/low
weft_mpirun 2 "$train" "${demo[@]}" --train.steps=4 --run.peak_flops=1e9 --run.dir="$low" >"$low.log" 2>&1 \
    || not_ok "a run with a too-low run.peak_flops finishes" "$(tail -5 "$low.log")"
expect_grep "MFU [0-9]+%: this step ran faster than the peak of 1.00 GFLOP/s per rank \(run.peak_flops\)" "$low.log" \
    "a step faster than the peak (a wrong run.peak_flops) is reported, not hidden"
[ "$(grep -c "ran faster than the peak" "$low.log")" = 1 ] && ok "  ... once" || not_ok "  ... once" "$(grep -c "ran faster" "$low.log")"
