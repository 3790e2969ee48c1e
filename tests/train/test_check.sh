#!/bin/bash
# test_check.sh -- the whole configuration is checked at start, before any
# rank builds a model, starts a thread or creates run.dir: optim.min_lr >
# optim.lr and --sample with tensor parallelism exit 64 naming the keys and
# create nothing; --check validates only (0 or 64) and creates nothing; a
# dataset whose vocabulary no model can use is named with its value.
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train"
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds"
tiny=(--data.path="$ds" --model.n_layer=2 --model.n_head=2 --model.n_embd=32 --model.context=32
      --train.seq_len=32 --train.micro_batch=4 --train.global_batch=8 --train.steps=2 --train.log_interval=1
      --train.eval_interval=0 --optim.warmup=1)
run=$TMPDIR_TEST/run

expect_exit 64 "optim.min_lr > optim.lr exits 64" "$train" "${tiny[@]}" --run.dir="$run" --optim.lr=1e-4 \
    --optim.min_lr=2e-4
echo "$LAST_OUT" | grep -q "optim.min_lr (0.0002, command line) is larger than optim.lr (0.0001, command line)" \
    && ok "the message names both keys and values" || not_ok "the message names both keys and values" "$LAST_OUT"
[ ! -e "$run" ] && ok "... and no run.dir was created" || not_ok "... and no run.dir was created"

expect_exit 64 "--sample with parallel.tp = 2 exits 64 at start" weft_mpirun 2 "$train" "${tiny[@]}" \
    --run.dir="$run" --parallel.tp=2 --sample 10
echo "$LAST_OUT" | grep -q -- "--sample needs the whole model on rank 0, but parallel.tp = 2" \
    && ok "the message names --sample and parallel.tp" || not_ok "the message names --sample and parallel.tp" "$LAST_OUT"
[ ! -e "$run" ] && ok "... before training: no run.dir" || not_ok "... before training: no run.dir" "$(ls -R "$run")"

expect_exit 0 "--check of a good configuration exits 0" "$train" "${tiny[@]}" --run.dir="$run" --check
expect_exit 0 "--check on 2 ranks with tp 2" weft_mpirun 2 "$train" "${tiny[@]}" --run.dir="$run" --parallel.tp=2 --check
expect_exit 64 "--check of global_batch not divisible exits 64" weft_mpirun 2 "$train" "${tiny[@]}" \
    --run.dir="$run" --train.global_batch=12 --check
echo "$LAST_OUT" | grep -q "train.global_batch (12) is not divisible by train.micro_batch (4)" \
    && ok "the batch message names the keys" || not_ok "the batch message names the keys" "$LAST_OUT"
expect_exit 64 "--check: train.seq_len > model.context exits 64" "$train" "${tiny[@]}" --run.dir="$run" \
    --train.seq_len=64 --check
[ ! -e "$run" ] && ok "--check creates nothing" || not_ok "--check creates nothing" "$(ls -R "$run")"

# A dataset that claims a vocabulary no model can have (written before
# weft-data capped it): named, with its value, instead of "vocab size 0".
cp -r "$ds" "$TMPDIR_TEST/huge"
sed -i 's/^vocab_size .*/vocab_size 4294967295/; s/^token_width .*/token_width 4/' "$TMPDIR_TEST/huge/manifest"
if grep -q "^vocab_size 4294967295" "$TMPDIR_TEST/huge/manifest"; then
    expect_exit 64 "an unusable dataset vocabulary exits 64" "$train" "${tiny[@]}" --data.path="$TMPDIR_TEST/huge" \
        --run.dir="$run" --check
    echo "$LAST_OUT" | grep -q "dataset $TMPDIR_TEST/huge (data.path) has vocabulary size 4294967295" \
        && ok "the message names the dataset and the value" || not_ok "the message names the dataset and the value" "$LAST_OUT"
else
    skip "an unusable dataset vocabulary" "manifest has no vocab_size line"
fi
