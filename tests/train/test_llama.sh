#!/bin/bash
# test_llama.sh -- the Llama family gets everything the trainer gives GPT-2,
# unchanged:
#   - every DP x TP x PP layout of 4 ranks trains the same tiny Llama (L 4,
#     NH 4, NKV 2, C 32, F 96, untied head; T 16) as one rank: loss and
#     gradient norm every step, validation loss, and every parameter after
#     10 steps (tests/train/layout_compare.py, as tests/train/test_layouts.sh
#     for GPT-2). 1 x 4 x 1 has fewer key/value heads than TP ranks, so k_proj
#     and v_proj are replicated and their gradients summed; a tied head runs
#     through the pipeline's tied-embedding path;
#   - resume: bitwise on the same layout (TP 2 with one KV head, PP 2; weft-
#     ckpt diff with tolerance 0), and within 1e-5 after a reshard (TP 2 ->
#     DP 2, PP 2 -> TP 2);
#   - weft-ckpt info names the family and its dimensions; the checkpoint holds
#     the Hugging Face tensor names at their global shapes;
#   - bad layouts and shapes exit 64 naming the constraint.
# optim.eps 1e-6 as in test_layouts.sh (rounding-noise gradients).
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train" ck="$WEFT_BIN/weft-ckpt"
cmp_py="$WEFT_ROOT/tests/train/layout_compare.py"
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1
export WEFT_DUMP_PARAMS=1

tiny=(--data.path="$ds" --model.family=llama --model.n_layer=4 --model.n_head=4 --model.n_kv_head=2
      --model.n_embd=32 --model.context=16 --train.seq_len=16 --train.micro_batch=2 --train.global_batch=8
      --train.steps=10 --train.log_interval=1 --train.eval_interval=5 --train.eval_batches=1 --optim.lr=1e-3
      --optim.warmup=3 --optim.eps=1e-6 --parallel.bucket_mb=0.01)

run_ref() { # name args...
    local name=$1; shift
    weft_mpirun 1 "$train" "${tiny[@]}" --run.dir="$TMPDIR_TEST/$name" "$@" >"$TMPDIR_TEST/$name.log" 2>&1 \
        || not_ok "single-rank reference run $name" "$(tail -5 "$TMPDIR_TEST/$name.log")"
}
run_ref ref
run_ref reftied --model.tie_embeddings=true
expect_grep "Llama, L=4 NH=4 NKV=2 C=32 F=96 V=256 context 16: " "$TMPDIR_TEST/ref.log" \
    "the model is logged with its family and shape (ffn_dim 0 -> 8C/3 rounded up to 32)"

layout() { # name ref dp tp pp extra-args...
    local name=$1 ref=$2 dp=$3 tp=$4 pp=$5 dir="$TMPDIR_TEST/$1"; shift 5
    local what="llama dp $dp x tp $tp x pp $pp${*:+ ($*)}: loss, grad norm and every parameter == 1 rank"
    if ! weft_mpirun 4 "$train" "${tiny[@]}" --parallel.dp="$dp" --parallel.tp="$tp" --parallel.pp="$pp" \
        --run.dir="$dir" "$@" >"$dir.log" 2>&1; then
        not_ok "$what" "the run failed: $(tail -5 "$dir.log")"
        return
    fi
    check "$what" python3 "$cmp_py" "$TMPDIR_TEST/$ref" "$dir"
}
layout d4 ref 4 1 1
layout t4 ref 1 4 1
layout p4 ref 1 1 4 --parallel.schedule=1f1b
layout p4tied reftied 1 1 4 --parallel.schedule=1f1b --model.tie_embeddings=true
layout d2t2 ref 2 2 1 --parallel.zero=1
layout t2p2 ref 1 2 2 --parallel.schedule=1f1b
expect_grep "replicated" "$TMPDIR_TEST/t4.log" "tp 4 over 2 key/value heads: the replication is logged"

# The comparison can fail: skipping the column-parallel input-gradient
# reduction is caught on the Llama layers too.
WEFT_FAULT=drop_tp_grad weft_mpirun 4 "$train" "${tiny[@]}" --parallel.tp=2 --run.dir="$TMPDIR_TEST/bug" \
    >"$TMPDIR_TEST/bug.log" 2>&1
check "the run with the bug trains to the end, the fault injected (so only the bug can fail the comparison)" \
    bash -c "grep -q 'fault injected: drop_tp_grad' '$TMPDIR_TEST/bug.log' && grep -q 'done: ' '$TMPDIR_TEST/bug.log'"
if out=$(python3 "$cmp_py" "$TMPDIR_TEST/ref" "$TMPDIR_TEST/bug" 2>&1); then
    not_ok "a missing tensor-parallel gradient reduction is caught" "$out"
else
    ok "a missing tensor-parallel gradient reduction is caught ($(echo "$out" | tail -1 | cut -c1-90))"
fi

# --- resume ---------------------------------------------------------------
unset WEFT_DUMP_PARAMS
ck_args=(--checkpoint.every=5 --checkpoint.keep_last=5 --train.eval_interval=0)
compare() { # REF OTHER FROM TOL: losses of steps > FROM within TOL relative (0: bitwise)
    python3 - "$@" <<'PY'
import json, sys
ref = {r["step"]: r["loss"] for r in map(json.loads, open(sys.argv[1]))}
got = {r["step"]: r["loss"] for r in map(json.loads, open(sys.argv[2]))}
start, tol = int(sys.argv[3]), float(sys.argv[4])
steps = sorted(s for s in got if s > start)
assert steps == list(range(start + 1, 11)), f"steps run after resuming: {steps}"
for s in steps:
    d = abs(got[s] - ref[s]) / abs(ref[s])
    assert d <= tol, f"step {s}: loss {got[s]!r} vs uninterrupted {ref[s]!r} (relative {d:.3g})"
PY
}
resume_from() { # REF_DIR NEW_DIR: NEW_DIR starts with REF_DIR's step-5 checkpoint as latest
    mkdir -p "$2/checkpoints"
    cp "$1/checkpoints/step-00000005.h5" "$2/checkpoints/"
    echo step-00000005.h5 >"$2/checkpoints/latest"
}
final() { echo "$1/checkpoints/step-00000010.h5"; }

for l in "tp --parallel.tp=2,--model.n_kv_head=1" "pp --parallel.pp=2"; do
    set -- $l
    args=(${2//,/ }) ref="$TMPDIR_TEST/rref$1" res="$TMPDIR_TEST/rres$1"
    weft_mpirun 2 "$train" "${tiny[@]}" "${ck_args[@]}" "${args[@]}" --run.dir="$ref" >"$ref.log" 2>&1
    resume_from "$ref" "$res"
    weft_mpirun 2 "$train" "${tiny[@]}" "${ck_args[@]}" "${args[@]}" --run.dir="$res" --resume >"$res.log" 2>&1
    check "llama, 2 ranks ${args[*]}: resumed at step 5, losses of steps 6-10 bitwise equal to the uninterrupted run" \
        compare "$ref/metrics.jsonl" "$res/metrics.jsonl" 5 0
    check "llama, 2 ranks ${args[*]}: final parameters and AdamW moments bitwise equal (weft-ckpt diff)" \
        "$ck" diff "$(final "$ref")" "$(final "$res")"
done
# Reshard: FROM ARGS -- the run that wrote step 5, and the layout resuming it.
for l in "rreftp --parallel.tp=1,--parallel.zero=1,--model.n_kv_head=1" "rrefpp --parallel.tp=2"; do
    set -- $l
    from=$1 args=(${2//,/ }) res="$TMPDIR_TEST/x-$1"
    resume_from "$TMPDIR_TEST/$from" "$res"
    weft_mpirun 2 "$train" "${tiny[@]}" "${ck_args[@]}" "${args[@]}" --run.dir="$res" --resume >"$res.log" 2>&1
    check "llama, written by $from, resumed on 2 ranks ${args[*]}: losses of steps 6-10 within 1e-5" \
        compare "$TMPDIR_TEST/$from/metrics.jsonl" "$res/metrics.jsonl" 5 1e-5
    check "llama, written by $from, resumed on ${args[*]}: final weights and moments within 1e-4 of the tensor scale" \
        "$ck" diff "$(final "$TMPDIR_TEST/$from")" "$(final "$res")" --tol 1e-4
done

f=$(final "$TMPDIR_TEST/rreftp")
"$ck" info "$f" >"$TMPDIR_TEST/info.txt" 2>&1
expect_grep "^model .*family=llama n_layer=4 n_head=4 n_embd=32 context=16 n_kv_head=1 ffn_dim=0" \
    "$TMPDIR_TEST/info.txt" "weft-ckpt info names the family and its dimensions"
expect_grep "params/model.layers.3.self_attn.k_proj.weight +\\(8, 32\\)" "$TMPDIR_TEST/info.txt" \
    "the replicated k_proj is stored once, at its global shape (1 head x 8, 32)"
expect_grep "params/lm_head.weight +\\(256, 32\\)" "$TMPDIR_TEST/info.txt" "the untied head at its global shape"

# --- sampling (--sample): the model interface's logits, both families ------
for fam in llama gpt2; do
    extra=() && [ $fam = gpt2 ] && extra=(--model.n_kv_head=0)
    weft_mpirun 1 "$train" "${tiny[@]}" --model.family=$fam "${extra[@]}" --train.steps=2 --train.eval_interval=0 \
        --run.dir="$TMPDIR_TEST/sample-$fam" --sample 20 --prompt "ab" >"$TMPDIR_TEST/sample-$fam.log" 2>&1
    check "$fam: --sample prints 20 generated tokens after training" grep -q -- "--- sample (20 tokens" \
        "$TMPDIR_TEST/sample-$fam.log"
done

# --- refusals -------------------------------------------------------------
bad() { # name pattern np args...
    local name=$1 pattern=$2 np=$3; shift 3
    expect_exit 64 "$name exits 64" weft_mpirun "$np" "$train" "${tiny[@]}" --run.dir="$TMPDIR_TEST/bad" "$@"
    echo "$LAST_OUT" | grep -q -- "$pattern" && ok "  ... naming the constraint" || not_ok "  ... naming the constraint" "$LAST_OUT"
}
bad "tp 2 with 3 key/value heads of 6" "parallel.tp (2) and model.n_kv_head (3)" 2 --parallel.tp=2 \
    --model.n_head=6 --model.n_kv_head=3 --model.n_embd=36
bad "n_kv_head 3 of 4 heads" "model.n_kv_head (3) does not divide model.n_head (4)" 1 --model.n_kv_head=3
bad "an odd head size" "is odd: rotary embeddings" 1 --model.n_embd=12
bad "tp 4 with ffn_dim 30" "parallel.tp (4) does not divide model.ffn_dim (30)" 4 --parallel.tp=4 \
    --model.ffn_dim=30
bad "an unknown family" "model.family" 1 --model.family=gpt3
bad "a Llama key with model.family = gpt2" "model.n_kv_head is set (command line) but model.family is gpt2" 1 \
    --model.family=gpt2
