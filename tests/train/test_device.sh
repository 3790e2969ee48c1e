#!/bin/bash
# test_device.sh -- run.device (runtime/device.h) through the real programs
# on this machine, which has no GPU (a GPU machine runs tests/gpu/run.sh):
#   - weft-train --run.device=cuda exits 69 before it writes anything into
#     run.dir: on 2 ranks refused as not running on CUDA yet, naming the
#     ranks; on 1 rank (the first GPU milestone's configuration) refused as
#     never verified on a GPU, and with WEFT_GPU_CHECK=1 (the gate open)
#     saying why no GPU is usable instead; with the gate open LoRA is still
#     refused, named;
#   - a value that is none of auto|cpu|cuda exits 64 naming it;
#   - cpu and auto train, and the start line says which device each rank
#     uses and how run.device chose it;
#   - weft-info prints each rank's device, and exits 69 for cuda.
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train" info="$WEFT_BIN/weft-info"
if [ "$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')" -gt 0 ]; then
    skip "run.device without a GPU" "this machine has a GPU: tests/gpu/run.sh checks it"
    exit 0
fi
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0
tiny=(--data.path="$ds" --model.n_layer=1 --model.n_head=2 --model.n_embd=32 --model.context=16
      --train.seq_len=16 --train.micro_batch=2 --train.global_batch=4 --train.steps=2 --train.eval_interval=0)

expect_exit 69 "weft-train --run.device=cuda on 2 ranks exits 69" \
    weft_mpirun 2 "$train" "${tiny[@]}" --run.device=cuda --run.dir="$TMPDIR_TEST/cuda"
echo "$LAST_OUT" >"$TMPDIR_TEST/cuda.log"
expect_grep "run.device = cuda: the model's training step does not run on CUDA yet: 2 ranks \(only 1 rank" \
    "$TMPDIR_TEST/cuda.log" "  ... refused as not running on CUDA yet, naming the ranks"
check "  ... and writing nothing into run.dir" test ! -e "$TMPDIR_TEST/cuda"
env -u WEFT_GPU_CHECK "$train" "${tiny[@]}" --run.device=cuda --run.dir="$TMPDIR_TEST/cuda1" >"$TMPDIR_TEST/cuda1.log" 2>&1
check "1 rank, gate closed: exits 69" test $? -eq 69
expect_grep "does not run on CUDA yet: it has never been verified on a GPU \(WEFT_GPU_CHECK=1" "$TMPDIR_TEST/cuda1.log" \
    "  ... refused as never verified on a GPU"
WEFT_GPU_CHECK=1 "$train" "${tiny[@]}" --run.device=cuda --run.dir="$TMPDIR_TEST/cuda2" >"$TMPDIR_TEST/cuda2.log" 2>&1
check "1 rank, WEFT_GPU_CHECK=1 (gate open): exits 69" test $? -eq 69
expect_grep "run.device = cuda, but this process has no usable GPU: .+\. Run on a GPU node, or set run.device = cpu" \
    "$TMPDIR_TEST/cuda2.log" "  ... saying why no GPU is usable, not the refusal"
check "  ... which it no longer says" sh -c "! grep -q 'does not run on CUDA yet' '$TMPDIR_TEST/cuda2.log'"
check "  ... and writing nothing into run.dir" test ! -e "$TMPDIR_TEST/cuda2"
CUDA_VISIBLE_DEVICES= WEFT_GPU_CHECK=1 expect_exit 69 "  ... also with CUDA_VISIBLE_DEVICES empty" \
    "$train" "${tiny[@]}" --run.device=cuda --run.dir="$TMPDIR_TEST/cuda3"
WEFT_GPU_CHECK=1 "$train" "${tiny[@]}" --run.device=cuda --lora.rank=2 --run.dir="$TMPDIR_TEST/cuda4" \
    >"$TMPDIR_TEST/cuda4.log" 2>&1
check "gate open, lora.rank = 2: exits 69" test $? -eq 69
expect_grep "does not run on CUDA yet: lora.rank = 2 \(LoRA is not supported on cuda yet\)" "$TMPDIR_TEST/cuda4.log" \
    "  ... naming LoRA as not supported on cuda yet"

expect_exit 64 "run.device = tpu exits 64" "$train" "${tiny[@]}" --run.device=tpu --run.dir="$TMPDIR_TEST/tpu"
echo "$LAST_OUT" >"$TMPDIR_TEST/tpu.log"
expect_grep "run.device.*tpu" "$TMPDIR_TEST/tpu.log" "  ... naming the key and the value"

for dev in cpu auto; do
    expect_exit 0 "run.device = $dev trains on 2 ranks" \
        weft_mpirun 2 "$train" "${tiny[@]}" --run.device=$dev --run.dir="$TMPDIR_TEST/$dev"
    echo "$LAST_OUT" >"$TMPDIR_TEST/$dev.log"
done
expect_grep "device: cpu on every rank \(run.device = cpu\)" "$TMPDIR_TEST/cpu.log" "start line: cpu on every rank"
expect_grep "device: cpu on every rank \(run.device = auto: no GPU \(.+\), cpu\)" "$TMPDIR_TEST/auto.log" \
    "start line: auto found no GPU and says why"

expect_exit 0 "weft-info on 2 ranks" weft_mpirun 2 "$info" --no-check
echo "$LAST_OUT" >"$TMPDIR_TEST/info.log"
expect_grep "rank 1: node 0 .*, device cpu$" "$TMPDIR_TEST/info.log" "weft-info names each rank's device"
expect_exit 69 "weft-info --run.device=cuda exits 69" "$info" --no-check --run.device=cuda
echo "$LAST_OUT" >"$TMPDIR_TEST/info-cuda.log"
expect_grep "rank 0: .*device unavailable \(.*no usable GPU" "$TMPDIR_TEST/info-cuda.log" "  ... saying why"
echo "1..$TAP_N"
