#!/bin/bash
# test_eval.sh -- weft-eval on checkpoints weft-train wrote (a tiny Llama
# with grouped-query attention, and GPT-2):
#   - on 1 rank its loss is the val_loss weft-train logged at the step the
#     checkpoint holds (same train.* batch keys, --batches =
#     train.eval_batches), to the last bit; the model.* keys and
#     train.seq_len come from the checkpoint;
#   - on 2 ranks as tp 2, pp 2 and dp 2 (a layout other than the one that
#     wrote it) the loss is within 1e-5 of 1 rank's;
#   - the default covers every whole global batch of the validation split,
#     and the perplexity is exp(loss);
#   - nothing is written (no run directory);
#   - bad input: a missing checkpoint (66), model.* keys that contradict the
#     checkpoint (65 naming the tensor), a dataset without a validation
#     split (65), no --init-from (64).
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train" ev="$WEFT_BIN/weft-eval"
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1

batch=(--train.micro_batch=4 --train.global_batch=8)
tiny=(--data.path="$ds" --model.n_layer=2 --model.n_head=4 --model.n_embd=32 --model.context=32
      --train.seq_len=24 "${batch[@]}" --train.steps=30 --optim.lr=3e-3 --train.log_interval=100
      --train.eval_interval=30 --train.eval_batches=3)
for m in llama gpt2; do
    extra=() && [ $m = llama ] && extra=(--model.family=llama --model.n_kv_head=2)
    weft_mpirun 1 "$train" "${tiny[@]}" "${extra[@]}" --run.dir="$TMPDIR_TEST/$m" >"$TMPDIR_TEST/$m.log" 2>&1 \
        || not_ok "training $m" "$(tail -5 "$TMPDIR_TEST/$m.log")"
done

field() { sed -n "s/.*\"$1\": \([^,}]*\).*/\1/p" "$2"; }
logged() { grep '"val_loss"' "$1/metrics.jsonl" | tail -1 | sed 's/.*"val_loss":\([^,}]*\).*/\1/'; }
close() { # A B TOL: |A - B| <= TOL |B|
    awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; s = b < 0 ? -b : b; exit !(d <= t * s && a != "") }'
}

cd "$TMPDIR_TEST" || exit 1
before=$(ls -R "$TMPDIR_TEST")
for m in llama gpt2; do
    run="$TMPDIR_TEST/$m" one="$TMPDIR_TEST/$m-1.json"
    args=(--init-from "$run" --data.path="$ds" "${batch[@]}" --batches 3 --json)
    weft_mpirun 1 "$ev" "${args[@]}" >"$one" 2>"$one.err" || not_ok "$m: weft-eval on 1 rank" "$(cat "$one.err")"
    want=$(logged "$run") got=$(field loss "$one")
    [ -n "$got" ] && [ "$got" = "$want" ] && ok "$m: 1 rank: loss $got == the val_loss weft-train logged, bit for bit" \
        || not_ok "$m: 1 rank: loss == logged val_loss" "weft-eval $got, weft-train $want"
    for l in "tp 2 --parallel.tp=2" "pp 2 --parallel.pp=2" "dp 2 --parallel.dp=2"; do
        set -- $l
        out="$TMPDIR_TEST/$m-$1.json"
        weft_mpirun 2 "$ev" "${args[@]}" "$3" >"$out" 2>"$out.err"
        other=$(field loss "$out")
        close "$other" "$got" 1e-5 && ok "$m: 2 ranks $1 $2: loss $other within 1e-5 of 1 rank's" \
            || not_ok "$m: 2 ranks $1 $2 == 1 rank" "$other vs $got: $(tail -3 "$out.err")"
    done
done
after=$(ls -R "$TMPDIR_TEST" | grep -v '^\(llama\|gpt2\)-.*\.json\(\.err\)\?$')
[ "$before" = "$after" ] && ok "nothing written (no run directory, no file but the test's own output)" \
    || not_ok "nothing written" "$(diff <(echo "$before") <(echo "$after"))"

# The whole split by default: its 2250 tokens (10% of 300 lines of 75
# bytes) make 89 windows of 25, 11 whole batches of 8.
"$ev" --init-from "$TMPDIR_TEST/llama" --data.path="$ds" "${batch[@]}" --json >"$TMPDIR_TEST/all.json" 2>/dev/null
b=$(field batches "$TMPDIR_TEST/all.json") loss=$(field loss "$TMPDIR_TEST/all.json") ppl=$(field perplexity "$TMPDIR_TEST/all.json")
[ "$b" = 11 ] && ok "by default every whole batch of the split (11)" || not_ok "whole split" "$(cat "$TMPDIR_TEST/all.json")"
close "$ppl" "$(awk -v l="$loss" 'BEGIN { printf "%.17g", exp(l) }')" 1e-12 && ok "perplexity = exp(loss)" \
    || not_ok "perplexity = exp(loss)" "$loss $ppl"
"$ev" --init-from "$TMPDIR_TEST/llama" --data.path="$ds" "${batch[@]}" >"$TMPDIR_TEST/human.out" 2>/dev/null
expect_grep "^loss [0-9.]+  perplexity [0-9.]+$" "$TMPDIR_TEST/human.out" "the plain output: loss and perplexity"

# --- bad input ------------------------------------------------------------
bad() { # code name pattern args...
    local code=$1 name=$2 pattern=$3; shift 3
    expect_exit "$code" "$name exits $code" "$ev" "$@"
    echo "$LAST_OUT" | grep -q -- "$pattern" && ok "  ... saying $pattern" || not_ok "  ... saying $pattern" "$LAST_OUT"
}
bad 66 "a missing checkpoint" "nothing" --init-from "$TMPDIR_TEST/nothing" --data.path="$ds"
bad 65 "--model.n_layer=3 against a 2-layer checkpoint" "model.layers.2" --init-from "$TMPDIR_TEST/llama" \
    --data.path="$ds" "${batch[@]}" --model.n_layer=3
repeat_dataset "$TMPDIR_TEST/noval" 0
bad 65 "a dataset without a validation split" "no validation batch" --init-from "$TMPDIR_TEST/llama" \
    --data.path="$TMPDIR_TEST/noval" "${batch[@]}"
bad 64 "--batches 12 of a split of 11" "holds 11 whole global batches" --init-from "$TMPDIR_TEST/llama" \
    --data.path="$ds" "${batch[@]}" --batches 12
bad 64 "no --init-from" "--init-from CKPT is required" --data.path="$ds"
bad 66 "a missing dataset" "missing-ds" --init-from "$TMPDIR_TEST/llama" --data.path="$TMPDIR_TEST/missing-ds"
expect_exit 0 "--help exits 0" "$ev" --help
echo "$LAST_OUT" | grep -q -- "--batches N" && ok "  ... and lists the options" || not_ok "  ... lists options"
