#!/bin/bash
# test_size.sh -- a checkpoint file is at most 1.1x the bytes of its tensors
# (parameters and both AdamW moments, f32) for a tiny model (35 K
# parameters, 53 datasets): objects shorter than 16 x checkpoint.alignment
# are packed, never padded to it (docs/checkpoint-format.md, "Tuning").
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train" ck="$WEFT_BIN/weft-ckpt"
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1
tiny=(--data.path="$ds" --model.n_layer=2 --model.n_head=2 --model.n_embd=32 --model.context=32
      --train.seq_len=32 --train.micro_batch=2 --train.global_batch=8 --train.steps=2 --train.eval_interval=0)
# ratio FILE: file bytes / tensor bytes (f32 datasets under params/ and optim/, from weft-ckpt info)
ratio() {
    "$ck" info "$1" | awk -v size="$(stat -c %s "$1")" '
        $1 ~ /^(params|optim)\// { gsub(/[(),]/, " "); n = 1; for (i = 2; i <= NF; i++) n *= $i; b += 4 * n }
        END { printf "%.4f %d %d\n", size / b, size, b }'
}
for z in 0 1; do
    run="$TMPDIR_TEST/z$z"
    weft_mpirun 2 "$train" "${tiny[@]}" --parallel.zero=$z --run.dir="$run" >"$run.log" 2>&1
    f="$run/checkpoints/step-00000002.h5"
    r=$(ratio "$f")
    check "tiny model, ZeRO-$z: the checkpoint is at most 1.1x its tensors' bytes (file/tensors, file, tensors: $r)" \
        awk -v r="${r%% *}" 'BEGIN { exit !(r > 1 && r <= 1.1) }'
done
echo "1..$TAP_N"
