#!/bin/bash
# test_layouts.sh -- every DP x TP x PP layout of 4 ranks trains the same
# model as one rank: a tiny GPT (L 4, NH 4, C 32, V 256 bytes, T 16) for 10
# steps from the same seed and global batch: loss and gradient norm at every
# step, the validation loss (steps 5 and 10: the forward-only pipeline) and
# every parameter after the last (reassembled from each rank's pieces by
# their shard specs) within 1e-5 relative of the single-rank run (parameters:
# 5e-5 of their tensor's scale, after ten Adam steps)
# (tests/train/layout_compare.py). Both pipeline schedules, ZeRO-1 and
# gradient accumulation appear among the layouts. A deliberately broken
# tensor-parallel reduction must fail the same comparison, and layouts that
# do not fit the world or the model exit 64 naming the constraint.
#
# optim.eps is 1e-6 rather than 1e-8: Adam turns a gradient that is zero in
# exact arithmetic (attention's key bias: softmax ignores a constant added to
# every score) into lr-sized steps driven by rounding noise (~1e-10), which
# any reordering of the sums changes; with eps above that noise and well
# below real gradients (> 1e-4 here) such elements stay put.
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train"
cmp_py="$WEFT_ROOT/tests/train/layout_compare.py"
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1
export WEFT_DUMP_PARAMS=1

tiny=(--data.path="$ds" --model.n_layer=4 --model.n_head=4 --model.n_embd=32 --model.context=16
      --train.seq_len=16 --train.micro_batch=2 --train.global_batch=8 --train.steps=10 --train.log_interval=1
      --train.eval_interval=5 --train.eval_batches=1 --optim.lr=1e-3 --optim.warmup=3 --optim.eps=1e-6
      --parallel.bucket_mb=0.01)

weft_mpirun 1 "$train" "${tiny[@]}" --run.dir="$TMPDIR_TEST/ref" >"$TMPDIR_TEST/ref.log" 2>&1 \
    || not_ok "single-rank reference run" "$(tail -5 "$TMPDIR_TEST/ref.log")"

layout() { # name dp tp pp extra-args...
    local name=$1 dp=$2 tp=$3 pp=$4 dir="$TMPDIR_TEST/$1"; shift 4
    local what="dp $dp x tp $tp x pp $pp${*:+ ($*)}: loss, grad norm and every parameter == 1 rank"
    if ! weft_mpirun 4 "$train" "${tiny[@]}" --parallel.dp="$dp" --parallel.tp="$tp" --parallel.pp="$pp" \
        --run.dir="$dir" "$@" >"$dir.log" 2>&1; then
        not_ok "$what" "the run failed: $(tail -5 "$dir.log")"
        return
    fi
    check "$what" python3 "$cmp_py" "$TMPDIR_TEST/ref" "$dir"
}
# k = global 8 / (micro 2 x dp) micro-batches: 1 (dp 4), 2 (dp 2), 4 (dp 1).
layout d4 4 1 1
layout t4 1 4 1
layout p4 1 1 4 --parallel.schedule=1f1b
layout p4g 1 1 4 --parallel.schedule=gpipe
layout p4m8 1 1 4 --parallel.schedule=1f1b --train.micro_batch=1
layout d2t2 2 2 1 --parallel.zero=1
layout d2p2 2 1 2 --parallel.schedule=gpipe --parallel.zero=1
layout d2p2f 2 1 2 --parallel.schedule=1f1b
layout t2p2 1 2 2 --parallel.schedule=1f1b
layout t2p2g 1 2 2 --parallel.schedule=gpipe --train.micro_batch=1
expect_grep "layout: dp 1 x tp 2 x pp 2 over 4 ranks" "$TMPDIR_TEST/t2p2.log" "the layout is logged at start"
check "metrics.jsonl reports the pipeline's idle share with stages, not without" python3 - "$TMPDIR_TEST" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/t2p2/metrics.jsonl")]
assert all(0 <= r["pipe_idle"] < 1 for r in rows), rows[0]
assert all("pipe_idle" not in json.loads(l) for l in open(sys.argv[1] + "/t4/metrics.jsonl"))
PY

# The comparison can fail: skipping the backward reduction of the
# column-parallel layers' input gradients is caught.
WEFT_FAULT=drop_tp_grad weft_mpirun 4 "$train" "${tiny[@]}" --parallel.tp=2 --run.dir="$TMPDIR_TEST/bug" \
    >"$TMPDIR_TEST/bug.log" 2>&1
check "the run with the bug trains to the end, the fault injected (so only the bug can fail the comparison)" \
    bash -c "grep -q 'fault injected: drop_tp_grad' '$TMPDIR_TEST/bug.log' && grep -q 'done: ' '$TMPDIR_TEST/bug.log'"
if out=$(python3 "$cmp_py" "$TMPDIR_TEST/ref" "$TMPDIR_TEST/bug" 2>&1); then
    not_ok "a missing tensor-parallel gradient reduction is caught" "$out"
else
    ok "a missing tensor-parallel gradient reduction is caught ($(echo "$out" | tail -1 | cut -c1-90))"
fi

bad() { # name pattern args...
    local name=$1 pattern=$2; shift 2
    expect_exit 64 "$name exits 64" weft_mpirun 4 "$train" "${tiny[@]}" --run.dir="$TMPDIR_TEST/bad" "$@"
    echo "$LAST_OUT" | grep -q -- "$pattern" && ok "  ... naming the constraint" || not_ok "  ... naming the constraint" "$LAST_OUT"
}
bad "tp 3 on 4 ranks" "parallel.tp (3) x parallel.pp (1) = 3 does not divide the world size 4" --parallel.tp=3
bad "dp 2 x tp 2 x pp 2 on 4 ranks" "= 8 is not the world size 4" --parallel.dp=2 --parallel.tp=2 --parallel.pp=2
bad "tp 4 with 2 heads" "parallel.tp (4) does not divide model.n_head (2)" --parallel.tp=4 --model.n_head=2
bad "pp 4 with 6 layers" "parallel.pp (4) does not divide model.n_layer (6)" --parallel.pp=4 --model.n_layer=6
bad "an unknown schedule" "parallel.schedule" --parallel.pp=2 --parallel.schedule=zigzag
