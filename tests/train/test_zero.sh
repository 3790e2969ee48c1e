#!/bin/bash
# test_zero.sh -- ZeRO-2 (parallel.zero = 2: gradients reduce-scattered,
# each rank keeps only its shard) and ZeRO-3 (= 3: parameters sharded too,
# each layer gathered before its forward and its backward) train the same
# model as a ZeRO-0 run of the same config on one rank, the independent
# reference: loss and gradient norm at every step, the validation loss and
# every parameter after ten steps within 1e-5 (tests/train/layout_compare.py),
# on 1, 2 and 4 ranks, with gradient accumulation (k = 4, 2, 1
# micro-batches), with tensor parallelism (dp 2 x tp 2) and with a 1F1B
# pipeline (dp 2 x pp 2); ZeRO-3 also for Llama. The tiny model is
# test_layouts.sh's (see there for optim.eps).
#
# ZeRO-3 runs with WEFT_ZERO3_POISON=1: a released layer's parameters
# outside the shard are NaN, so a use without its gather makes the loss NaN
# whatever the page size (one run without it gives pages back for real).
#
# Checkpoints: ZeRO-3 resumes its own checkpoint bitwise (losses and, by
# weft-ckpt diff, final parameters and moments), and ZeRO-3 <-> ZeRO-0/1/2
# resume each other's within 1e-5 of the uninterrupted run; weft-eval
# gives the same validation loss under ZeRO-3 as under ZeRO-0.
#
# That the gradients are really not kept is checked against the kernel's
# page table (tests/mpi/zero_resident.c: mincore after library steps, the
# shard computed independently), with ZeRO-1 as the case where the whole
# buffer must show as resident; under ZeRO-3 the parameters likewise.
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

weft_mpirun 1 "$train" "${tiny[@]}" --parallel.zero=0 --run.dir="$TMPDIR_TEST/ref" >"$TMPDIR_TEST/ref.log" 2>&1 \
    || not_ok "ZeRO-0 single-rank reference run" "$(tail -5 "$TMPDIR_TEST/ref.log")"

# zero name np extra-args...: a ZeRO-N run against the reference.
zero() {
    local z=$1 name=$2 np=$3 dir="$TMPDIR_TEST/$2"; shift 3
    local what="ZeRO-$z on $np rank(s)${*:+ ($*)}: loss, grad norm and every parameter == ZeRO-0"
    if ! weft_mpirun "$np" "$train" "${tiny[@]}" --parallel.zero="$z" --run.dir="$dir" "$@" >"$dir.log" 2>&1; then
        not_ok "$what" "the run failed: $(tail -5 "$dir.log")"
        return
    fi
    check "$what" python3 "$cmp_py" "$TMPDIR_TEST/ref" "$dir"
}
zero 2 z2n1 1
zero 2 z2n2 2
zero 2 z2d4 4
zero 2 z2d2t2 4 --parallel.dp=2 --parallel.tp=2
zero 2 z2d2p2 4 --parallel.dp=2 --parallel.pp=2 --parallel.schedule=1f1b
export WEFT_ZERO3_POISON=1
zero 3 z3n1 1
zero 3 z3n2 2
zero 3 z3d4 4 --parallel.zero_prefetch=2
zero 3 z3d2t2 4 --parallel.dp=2 --parallel.tp=2
zero 3 z3d2p2 4 --parallel.dp=2 --parallel.pp=2 --parallel.schedule=1f1b
zero 3 z3np0 2 --parallel.zero_prefetch=0
WEFT_ZERO3_POISON= zero 3 z3pages 2 --parallel.bucket_mb=0.0625
llama=(--model.family=llama --model.n_kv_head=2)
weft_mpirun 1 "$train" "${tiny[@]}" "${llama[@]}" --run.dir="$TMPDIR_TEST/lref" >"$TMPDIR_TEST/lref.log" 2>&1 \
    || not_ok "Llama ZeRO-0 single-rank reference run" "$(tail -5 "$TMPDIR_TEST/lref.log")"
if weft_mpirun 4 "$train" "${tiny[@]}" "${llama[@]}" --parallel.zero=3 --parallel.dp=2 --parallel.pp=2 \
    --run.dir="$TMPDIR_TEST/l3" >"$TMPDIR_TEST/l3.log" 2>&1; then
    check "Llama ZeRO-3 dp 2 x pp 2: loss, grad norm and every parameter == ZeRO-0" \
        python3 "$cmp_py" "$TMPDIR_TEST/lref" "$TMPDIR_TEST/l3"
else
    not_ok "Llama ZeRO-3 dp 2 x pp 2" "the run failed: $(tail -5 "$TMPDIR_TEST/l3.log")"
fi
expect_exit 64 "ZeRO-3 with LoRA adapters exits 64" weft_mpirun 2 "$train" "${tiny[@]}" --parallel.zero=3 \
    --lora.rank=2 --run.dir="$TMPDIR_TEST/lora"
echo "$LAST_OUT" | grep -q "parallel.zero = 3: model gpt2 with adapters" && ok "  ... naming why" \
    || not_ok "  ... naming why" "$LAST_OUT"

# Checkpoints. compare REF OTHER TOL: losses of steps 6-10, relative (0: bitwise).
ck="$WEFT_BIN/weft-ckpt"
compare() {
    python3 - "$@" <<'PY'
import json, sys
ref = {r["step"]: r["loss"] for r in map(json.loads, open(sys.argv[1]))}
got = {r["step"]: r["loss"] for r in map(json.loads, open(sys.argv[2]))}
tol = float(sys.argv[3])
steps = sorted(s for s in got if s > 5)
assert steps == list(range(6, 11)), f"steps run after resuming: {steps}"
for s in steps:
    d = abs(got[s] - ref[s]) / abs(ref[s])
    assert d <= tol, f"step {s}: loss {got[s]!r} vs uninterrupted {ref[s]!r} (relative {d:.3g})"
PY
}
ckargs=(--checkpoint.every=5 --checkpoint.keep_last=5 --train.eval_interval=0)
for z in 3 0; do
    weft_mpirun 2 "$train" "${tiny[@]}" "${ckargs[@]}" --parallel.zero=$z --run.dir="$TMPDIR_TEST/c$z" \
        >"$TMPDIR_TEST/c$z.log" 2>&1 || not_ok "ZeRO-$z run with checkpoints" "$(tail -5 "$TMPDIR_TEST/c$z.log")"
done
# FROM NP ZERO TOL: resume run FROM's step 5 on NP ranks with ZeRO-ZERO.
resume() {
    local from=$1 np=$2 z=$3 tol=$4 res="$TMPDIR_TEST/r-$1-$2-$3"
    mkdir -p "$res/checkpoints"
    cp "$TMPDIR_TEST/$from/checkpoints/step-00000005.h5" "$res/checkpoints/"
    echo step-00000005.h5 >"$res/checkpoints/latest"
    weft_mpirun "$np" "$train" "${tiny[@]}" "${ckargs[@]}" --parallel.zero="$z" --run.dir="$res" --resume \
        >"$res.log" 2>&1
    check "written by $from, resumed on $np rank(s) ZeRO-$z: losses of steps 6-10 within $tol" \
        compare "$TMPDIR_TEST/$from/metrics.jsonl" "$res/metrics.jsonl" "$tol"
    local fin="checkpoints/step-00000010.h5"
    if [ "$tol" = 0 ]; then
        check "  ... final parameters and AdamW moments bitwise equal (weft-ckpt diff)" \
            "$ck" diff "$TMPDIR_TEST/$from/$fin" "$res/$fin"
    else
        check "  ... final weights and moments within 1e-4 of the tensor scale" \
            "$ck" diff "$TMPDIR_TEST/$from/$fin" "$res/$fin" --tol 1e-4
    fi
}
resume c3 2 3 0
resume c3 2 0 1e-5
resume c3 2 1 1e-5
resume c0 2 3 1e-5
resume c0 4 2 1e-5
# weft-eval under ZeRO-3 (loaded whole, released, gathered per layer): the
# same validation loss as ZeRO-0's.
for z in 0 3; do
    weft_mpirun 2 "$WEFT_BIN/weft-eval" --init-from "$TMPDIR_TEST/c3" --data.path="$ds" --parallel.zero=$z \
        --parallel.bucket_mb=0.01 --json 2>/dev/null | grep '"loss"' >"$TMPDIR_TEST/eval$z.json"
done
check "weft-eval under ZeRO-3 == ZeRO-0 (the same validation loss)" python3 - "$TMPDIR_TEST" <<'PY'
import json, sys
a, b = (json.load(open(f"{sys.argv[1]}/eval{z}.json"))["loss"] for z in (0, 3))
assert a == b, f"ZeRO-0 {a!r}, ZeRO-3 {b!r}"
PY
unset WEFT_ZERO3_POISON

# Residency: a GPT-2 of L 2, C 64 (~116 K floats, 453 KiB of gradients) in
# 64 KiB buckets, so every bucket's non-shard part spans whole pages.
res=(--data.path="$ds" --model.n_layer=2 --model.n_head=2 --model.n_embd=64 --model.context=32 --train.seq_len=32
     --train.micro_batch=2 --train.global_batch=8 --parallel.bucket_mb=0.0625 --run.dir="$TMPDIR_TEST/res")
mpi_tap shm 2 zero_resident "${res[@]}" --parallel.zero=2
mpi_tap shm 4 zero_resident "${res[@]}" --parallel.zero=2
mpi_tap shm 2 zero_resident "${res[@]}" --parallel.zero=1
mpi_tap shm 2 zero_resident "${res[@]}" --parallel.zero=3
