#!/bin/bash
# test_train.sh -- weft-train end to end on a tiny GPT:
#   - the same seed and layout give a bitwise identical loss sequence;
#   - 2 data-parallel ranks with micro-batch b match 1 rank accumulating 2
#     micro-batches of b (loss per step within 1e-5 relative, 20 steps),
#     with and without ZeRO-1;
#   - the model learns a repeating text (loss far below an untrained model's);
#   - metrics.jsonl has the documented fields; --sample prints text;
#   - bad configurations exit 64 naming the keys, a missing dataset 66, and a
#     non-finite loss stops the run (or is skipped when configured).
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train"
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1

tiny=(--data.path="$ds" --model.n_layer=2 --model.n_head=2 --model.n_embd=32 --model.context=32
      --train.seq_len=32 --train.micro_batch=4 --train.global_batch=8 --train.log_interval=1
      --train.eval_interval=0 --train.eval_batches=1 --optim.lr=3e-3 --optim.warmup=5)

losses() { python3 -c 'import json,sys; print("\n".join(repr(json.loads(l)["loss"]) for l in open(sys.argv[1])))' "$1"; }

# 1. Determinism.
weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=15 --run.dir="$TMPDIR_TEST/a" >/dev/null 2>&1
weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=15 --run.dir="$TMPDIR_TEST/b" >/dev/null 2>&1
if [ -s "$TMPDIR_TEST/a/metrics.jsonl" ] && cmp -s <(losses "$TMPDIR_TEST/a/metrics.jsonl") <(losses "$TMPDIR_TEST/b/metrics.jsonl"); then
    ok "same seed and layout: bitwise identical loss sequence over 15 steps"
else
    not_ok "same seed and layout: bitwise identical loss sequence" "$(paste <(losses "$TMPDIR_TEST/a/metrics.jsonl") <(losses "$TMPDIR_TEST/b/metrics.jsonl") | head)"
fi

# 2. Data parallel == gradient accumulation, with and without ZeRO-1.
compare() { # reference other
    python3 - "$1" "$2" <<'PY'
import json, sys
A = [json.loads(l) for l in open(sys.argv[1])]
B = [json.loads(l) for l in open(sys.argv[2])]
assert len(A) == len(B) == 20, (len(A), len(B))
# AdamW is nearly blind to the gradients' scale, so the loss alone would not
# notice gradients summed instead of averaged: compare the norms too.
for key, tol in (("loss", 1e-5), ("grad_norm", 1e-4)):
    worst = max(abs(x[key] - y[key]) / abs(x[key]) for x, y in zip(A, B))
    assert worst <= tol, f"{key}: max relative difference {worst:.3g}"
assert A[0]["loss"] != A[-1]["loss"], "the loss did not change at all"
PY
}
weft_mpirun 1 "$train" "${tiny[@]}" --train.steps=20 --run.dir="$TMPDIR_TEST/acc" >/dev/null 2>&1
for zero in 0 1; do
    weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=20 --parallel.zero=$zero --parallel.bucket_mb=0.01 \
        --run.dir="$TMPDIR_TEST/dp$zero" >"$TMPDIR_TEST/dp$zero.log" 2>&1
    check "2 ranks x micro-batch 4 (ZeRO-$zero, small buckets) == 1 rank x 2 accumulated micro-batches: loss and gradient norm, 20 steps" \
        compare "$TMPDIR_TEST/acc/metrics.jsonl" "$TMPDIR_TEST/dp$zero/metrics.jsonl"
done
expect_grep "ZeRO-1, [0-9]+ gradient buckets" "$TMPDIR_TEST/dp1.log" "the layout line names ZeRO and the buckets"

# 3. It learns, and reports what it should.
weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=150 --train.eval_interval=75 --run.dir="$TMPDIR_TEST/learn" \
    --optim.lr=1e-2 --optim.min_lr=1e-3 --sample 60 --temperature 0 >"$TMPDIR_TEST/learn.log" 2>&1
check "the loss on a repeating text falls below 1.0 (untrained: ln 256 = 5.5)" python3 - "$TMPDIR_TEST/learn/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert rows[0]["loss"] > 4.5, rows[0]
assert rows[-1]["loss"] < 1.0, rows[-1]
PY
check "metrics.jsonl: every documented field, val_loss on eval steps" python3 - "$TMPDIR_TEST/learn/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["step"] for r in rows] == list(range(1, 151)), "one row per step"
for r in rows:
    for k in ("step", "loss", "lr", "grad_norm", "tokens_per_s", "ms_per_step", "flops_per_s"):
        assert k in r and r[k] == r[k], (k, r)
evals = [r["step"] for r in rows if "val_loss" in r]
assert evals == [75, 150], evals
assert rows[-1]["val_loss"] < 2.0, rows[-1]
assert rows[4]["lr"] < rows[5]["lr"] or rows[5]["lr"] >= rows[-1]["lr"], "warm-up then decay"
PY
expect_grep "quick brown fox" "$TMPDIR_TEST/learn.log" "--sample writes text the model learned"

# 4. Bad input.
bad() { # code name args...
    local code=$1 name=$2; shift 2
    expect_exit "$code" "$name" weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=2 --run.dir="$TMPDIR_TEST/bad" "$@"
}
bad 64 "n_embd not divisible by n_head exits 64" --model.n_head=3
echo "$LAST_OUT" | grep -q "model.n_embd (32) is not divisible by model.n_head (3)" && ok "  ... naming both keys" || not_ok "  ... naming both keys" "$LAST_OUT"
bad 64 "global batch not divisible by micro-batch x ranks exits 64" --train.global_batch=6
echo "$LAST_OUT" | grep -q "train.global_batch (6) is not divisible by train.micro_batch (4) x data-parallel size (2)" \
    && ok "  ... naming the keys and the rank count" || not_ok "  ... naming the keys and the rank count" "$LAST_OUT"
bad 64 "a sequence longer than the context exits 64" --train.seq_len=64
echo "$LAST_OUT" | grep -q "train.seq_len (64) is longer than model.context (32)" && ok "  ... naming both keys" || not_ok "  ... naming both keys" "$LAST_OUT"
bad 66 "a missing dataset exits 66" --data.path="$TMPDIR_TEST/nope"
bad 64 "an unknown key exits 64" --train.stpes=3
# WEFT_FAULT=nan_step:4@1 makes rank 1's loss NaN at step 4 (docs/operations.md, "Fault injection").
export WEFT_FAULT=nan_step:4@1
bad 70 "a non-finite loss on one rank stops the whole run with exit 70" --train.steps=6
echo "$LAST_OUT" | grep -q "is not finite; stopping rather than training on" && ok "  ... saying why" || not_ok "  ... saying why" "$LAST_OUT"
# The stopped run above left its metrics in bad/: start over it (docs/operations.md, "Run directories").
bad 0 "train.on_nonfinite=skip skips such steps and finishes" --train.steps=6 --train.on_nonfinite=skip --run.overwrite=true
unset WEFT_FAULT
echo "$LAST_OUT" | grep -q "skipping the update" && ok "  ... with a warning" || not_ok "  ... with a warning" "$LAST_OUT"
expect_exit 0 "--help exits 0" "$train" --help
check "the skipped step is marked, its loss written as JSON null" python3 - "$TMPDIR_TEST/bad/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
bad = [r for r in rows if r.get("skipped")]
assert [r["step"] for r in bad] == [4] and bad[0]["loss"] is None, rows
PY
