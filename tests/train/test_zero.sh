#!/bin/bash
# test_zero.sh -- ZeRO-2 (parallel.zero = 2: gradients reduce-scattered,
# each rank keeps only its shard) trains the same model as a ZeRO-0 run of
# the same config on one rank, the independent reference: loss and gradient
# norm at every step, the validation loss and every parameter after ten
# steps within 1e-5 (tests/train/layout_compare.py), on 1, 2 and 4 ranks,
# with gradient accumulation (k = 4, 2, 1 micro-batches), with tensor
# parallelism (dp 2 x tp 2) and with a 1F1B pipeline (dp 2 x pp 2). The
# tiny model is test_layouts.sh's (see there for optim.eps).
#
# That the gradients are really not kept is checked against the kernel's
# page table (tests/mpi/zero_resident.c: mincore after library steps, the
# shard computed independently), with ZeRO-1 as the case where the whole
# buffer must show as resident.
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

# Residency: a GPT-2 of L 2, C 64 (~116 K floats, 453 KiB of gradients) in
# 64 KiB buckets, so every bucket's non-shard part spans whole pages.
res=(--data.path="$ds" --model.n_layer=2 --model.n_head=2 --model.n_embd=64 --model.context=32 --train.seq_len=32
     --train.micro_batch=2 --train.global_batch=8 --parallel.bucket_mb=0.0625 --run.dir="$TMPDIR_TEST/res")
mpi_tap shm 2 zero_resident "${res[@]}" --parallel.zero=2
mpi_tap shm 4 zero_resident "${res[@]}" --parallel.zero=2
mpi_tap shm 2 zero_resident "${res[@]}" --parallel.zero=1
