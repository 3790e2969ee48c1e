#!/bin/bash
# test_lora_finetune.sh -- what LoRA is for: a GPT-2 base trained on one
# text, fine-tuned with rank-8 adapters on another, lowers the validation
# loss on the new text (against the base's own loss there: step 0 of a
# LoRA run is the base model); and on the demo model
# (examples/configs/demo.ini) at rank 8 with the default targets, the
# trainable parameters and the optimizer state are at most 2% of full
# fine-tuning's, as the start line says.
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train"
mk() { # DIR TEXT: a dataset of TEXT repeated, a tenth for validation
    local i
    for i in $(seq 400); do echo "$2"; done >"$1.txt"
    "$WEFT_BIN/weft-data" prepare -o "$1" --val-fraction 0.1 "$1.txt" >/dev/null
}
mk "$TMPDIR_TEST/a" "the quick brown fox jumps over the lazy dog. a stitch in time saves nine"
mk "$TMPDIR_TEST/b" "pack my box with five dozen liquor jugs; how vexingly quick daft zebras jump!"

small=(--model.n_layer=2 --model.n_head=2 --model.n_embd=64 --model.context=32 --train.seq_len=32
       --train.micro_batch=4 --train.global_batch=8 --train.log_interval=10 --train.eval_batches=2
       --optim.warmup=5)
weft_mpirun 1 "$train" "${small[@]}" --data.path="$TMPDIR_TEST/a" --train.steps=60 --optim.lr=3e-3 \
    --run.dir="$TMPDIR_TEST/base" >"$TMPDIR_TEST/base.log" 2>&1 \
    || not_ok "the base run on text A" "$(tail -5 "$TMPDIR_TEST/base.log")"
lora=(--data.path="$TMPDIR_TEST/b" --init-from="$TMPDIR_TEST/base" --lora.rank=8 --lora.targets=qkv,proj,fc,fcproj)
# lr 0: the base model's loss on B (the adapters' B is zero, so nothing moves)
weft_mpirun 1 "$train" "${small[@]}" "${lora[@]}" --train.steps=1 --optim.lr=0 --optim.min_lr=0 \
    --run.dir="$TMPDIR_TEST/b0" >"$TMPDIR_TEST/b0.log" 2>&1 \
    || not_ok "the base model on text B" "$(tail -5 "$TMPDIR_TEST/b0.log")"
weft_mpirun 2 "$train" "${small[@]}" "${lora[@]}" --train.steps=60 --optim.lr=1e-2 \
    --run.dir="$TMPDIR_TEST/ft" >"$TMPDIR_TEST/ft.log" 2>&1 \
    || not_ok "the LoRA fine-tune on text B (2 ranks)" "$(tail -5 "$TMPDIR_TEST/ft.log")"
check "LoRA fine-tuning on B lowers B's validation loss well below the base model's" python3 - "$TMPDIR_TEST" <<'PY'
import json, sys
last = lambda d: [json.loads(l) for l in open(f"{sys.argv[1]}/{d}/metrics.jsonl")][-1]["val_loss"]
before, after = last("b0"), last("ft")
print(f"validation loss on B: base {before:.4f}, after LoRA {after:.4f}")
assert after < 0.7 * before, (before, after)
PY

# The demo model at rank 8, default targets (qkv): counts from the start line.
demo=(--config "$WEFT_ROOT/examples/configs/demo.ini" --data.path="$TMPDIR_TEST/a" --train.steps=1
      --train.eval_batches=0)
weft_mpirun 1 "$train" "${demo[@]}" --run.dir="$TMPDIR_TEST/dbase" >"$TMPDIR_TEST/dbase.log" 2>&1 \
    || not_ok "a demo-model base" "$(tail -5 "$TMPDIR_TEST/dbase.log")"
weft_mpirun 1 "$train" "${demo[@]}" --lora.rank=8 --init-from="$TMPDIR_TEST/dbase" --run.dir="$TMPDIR_TEST/dlora" \
    >"$TMPDIR_TEST/dlora.log" 2>&1 || not_ok "the demo model with LoRA rank 8" "$(tail -5 "$TMPDIR_TEST/dlora.log")"
check "demo model, rank 8: trainable parameters and optimizer state <= 2% of full fine-tuning's" \
    python3 - "$TMPDIR_TEST/dlora.log" <<'PY'
import re, sys
m = re.search(r"lora: (\d+) trainable of (\d+) \(([\d.]+)%\), optimizer state ([\d.]+) MiB vs ([\d.]+) MiB full",
              open(sys.argv[1]).read())
assert m, "no 'lora: N trainable of M' line"
n, total, pct, opt, full = int(m[1]), int(m[2]), float(m[3]), float(m[4]), float(m[5])
print(m[0])
assert n == 4 * 8 * (128 + 3 * 128), n  # 4 blocks x rank 8 x (in + out) of attn.c_attn
assert n <= 0.02 * total and opt <= 0.02 * full, (n, total, opt, full)
PY
