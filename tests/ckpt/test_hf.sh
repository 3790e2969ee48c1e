#!/bin/bash
# test_hf.sh -- Hugging Face import and export (weft-ckpt import / export
# --format hf) on models written by an independent writer (hf_model.py:
# Python, numpy and json, no weft code): GPT-2 (with and without the
# "transformer." prefix, attn.bias buffers, a stored tied lm_head) and
# Llama (grouped-query, tied and untied), F32, BF16 and F16, one file and
# sharded with model.safetensors.index.json.
#   - import: exit 0, weft-ckpt verify passes, the checkpoint's logits
#     (tests/model/ckpt_logits) match a float64 numpy forward of the
#     Hugging Face files within 1e-5 relative;
#   - export --format hf gives back the same tensors: byte for byte for F32
#     sources, exactly widened for 16-bit ones; config.json agrees;
#   - weft-train --init-from the import on 1 rank and on 2 (tp 2), with a
#     learning rate of 0: the run's checkpoint exports to the source's
#     tensors again; with model.* keys that do not match: exit 65 naming the
#     tensor; a normal run trains;
#   - bad input (each: exit 65 or the documented code, a message naming the
#     file and the field or tensor, nothing under the output name and no
#     temporary file left): truncated file, header length past the file,
#     a header of 2^63 bytes, bad JSON, overlapping offsets, offsets out of
#     the file, dtype / shape / byte-length mismatches, F64, a missing
#     tensor, an unexpected tensor, shapes that contradict config.json,
#     unknown architecture, Qwen2 (biases), a weight_map naming a tensor its
#     shard lacks or missing one a shard has; missing SRC 66; usage 64.
. "$(dirname "$0")/../lib.sh"
ck="$WEFT_BIN/weft-ckpt" train="$WEFT_BIN/weft-train"
logits="$WEFT_ROOT/$BUILD/tests/model/ckpt_logits"
hf="$WEFT_ROOT/tests/ckpt/hf_model.py"
numpy_python
[ -x "$logits" ] || { not_ok "$logits exists" "make BUILD=$BUILD tests"; exit 1; }
T=$TMPDIR_TEST

# model NAME WRITE_ARGS...: write it, import it, verify, logits, export.
model() {
    local name=$1 d="$T/$1"; shift
    "$py" "$hf" write "$d" "$@" >/dev/null || { not_ok "$name: the writer" "$*"; return; }
    local what="$name ($*)"
    if ! out=$("$ck" import "$d" -o "$d.h5" 2>&1); then not_ok "$what: import" "$out"; return; fi
    ok "$what: import ($(head -1 <<<"$out" | sed 's/.*: \([0-9]* tensors.*\)/\1/'))"
    check "$name: weft-ckpt verify of the import" bash -c "'$ck' verify '$d.h5' | grep -q ', 0 corrupt'"
    if out=$("$logits" "$d.h5" 2 13 7 "$d.dump" 2>&1) && out=$("$py" "$hf" logits "$d" "$d.dump" 2>&1); then
        ok "$name: weft's logits == float64 numpy forward of the HF files: $out"
    else
        not_ok "$name: weft's logits == float64 numpy forward of the HF files" "$out"
    fi
    if out=$("$ck" export "$d.h5" --format hf -o "$d.out" 2>&1) && out=$("$py" "$hf" same "$d" "$d.out" 2>&1); then
        ok "$name: export --format hf gives back the source: $out"
    else
        not_ok "$name: export --format hf gives back the source" "$out"
    fi
}
small=(--vocab 256 --context 32 --embd 32 --layers 2 --heads 4)
model gpt2-f32 --family gpt2 "${small[@]}" --seed 1
model gpt2-bf16-shards --family gpt2 "${small[@]}" --dtype BF16 --shards 3 --no-prefix --tied-head --seed 2
model llama-f32 --family llama "${small[@]}" --kv-heads 2 --ffn 80 --seed 3
model llama-bf16-shards --family llama "${small[@]}" --kv-heads 2 --ffn 80 --tie 1 --theta 500000 --eps 1e-5 \
    --dtype BF16 --shards 2 --seed 4
model llama-f16-mqa --family llama --vocab 97 --context 16 --embd 48 --layers 3 --heads 4 --kv-heads 1 --ffn 72 \
    --dtype F16 --seed 5

# The comparison can fail: a reference with one square weight transposed
# (an import that missed or added a transpose) misses the tolerance.
for m in gpt2-f32 llama-f32; do
    if out=$("$py" "$hf" logits --break "$T/$m" "$T/$m.dump" 2>&1); then
        not_ok "$m: a reference with attn.c_proj / o_proj transposed fails the comparison" "$out"
    else
        ok "$m: a reference with attn.c_proj / o_proj transposed fails the comparison (${out%% (*})"
    fi
done

# Mistral: Llama's tensors; its sliding window bounds model.context.
"$py" - "$T/llama-f32" "$T/mistral" <<'PY'
import json, shutil, sys
shutil.copytree(sys.argv[1], sys.argv[2])
c = json.load(open(sys.argv[2] + "/config.json"))
c.update(architectures=["MistralForCausalLM"], model_type="mistral", sliding_window=16)
json.dump(c, open(sys.argv[2] + "/config.json", "w"))
PY
check "a MistralForCausalLM imports as llama with model.context = its sliding_window (16)" \
    bash -c "'$ck' import '$T/mistral' -o '$T/mistral.h5' | grep -q -- '--model.family=llama .*--model.context=16 '"

# A single .safetensors with --config, and an index file as SRC.
d="$T/gpt2-f32"
check "import FILE.safetensors --config config.json" "$ck" import "$d/model.safetensors" --config "$d/config.json" \
    -o "$T/file.h5"
check "... holds the same weights as the directory's import" "$ck" diff "$T/file.h5" "$d.h5"
check "import DIR/model.safetensors.index.json" "$ck" import "$T/llama-bf16-shards/model.safetensors.index.json" \
    -o "$T/index.h5"
expect_exit 64 "import FILE without --config: exit 64" "$ck" import "$d/model.safetensors" -o "$T/x.h5"
expect_exit 64 "import without -o: exit 64" "$ck" import "$d"
expect_exit 66 "import of a missing directory: exit 66" "$ck" import "$T/nowhere" -o "$T/x.h5"
expect_exit 64 "export --format hf into an existing directory: exit 64" "$ck" export "$d.h5" --format hf -o "$d"
check "import prints the model.* keys to train with" bash -c "'$ck' import '$d' -o '$T/again.h5' |
    grep -q -- '--model.family=gpt2 --model.n_layer=2 --model.n_head=4 --model.n_embd=32 --model.context=32'"

# weft-train from the imports: lr 0 keeps the weights, so the run's own
# checkpoint (written on its layout) exports to the source again.
ds="$T/ds"
repeat_dataset "$ds" 0.1
run=(--data.path="$ds" --train.seq_len=32 --train.micro_batch=2 --train.global_batch=8 --train.log_interval=1
     --train.eval_interval=0 --train.eval_batches=1)
gpt2_keys=(--model.family=gpt2 --model.n_layer=2 --model.n_head=4 --model.n_embd=32 --model.context=32)
llama_keys=(--model.family=llama --model.n_layer=2 --model.n_head=4 --model.n_kv_head=2 --model.n_embd=32
            --model.ffn_dim=80 --model.context=32 --model.rope_theta=10000 --model.norm_eps=1e-6)
from() { # NAME NP SRC KEYS...: --init-from SRC.h5 at lr 0, then export and compare
    local name=$1 np=$2 src=$3 out; shift 3
    local r="$T/run-$name"
    if ! out=$(weft_mpirun "$np" "$train" "${run[@]}" --train.steps=2 --optim.lr=0 --optim.min_lr=0 \
            --run.dir="$r" --init-from "$T/$src.h5" "$@" 2>&1); then
        not_ok "$name: weft-train --init-from on $np rank(s)" "$(tail -5 <<<"$out")"
        return
    fi
    ok "$name: weft-train --init-from on $np rank(s) ($(grep -o 'initialised weights from [^ ]*' <<<"$out" | head -1))"
    if out=$("$ck" export "$r" --format hf -o "$r.out" 2>&1) && out=$("$py" "$hf" same "$T/$src" "$r.out" 2>&1); then
        ok "$name: the run's checkpoint (lr 0) exports to the source's tensors: $out"
    else
        not_ok "$name: the run's checkpoint (lr 0) exports to the source's tensors" "$out"
    fi
}
from gpt2-np1 1 gpt2-f32 "${gpt2_keys[@]}"
from gpt2-tp2 2 gpt2-f32 "${gpt2_keys[@]}" --parallel.tp=2
from llama-np1 1 llama-f32 "${llama_keys[@]}"
from llama-tp2 2 llama-f32 "${llama_keys[@]}" --parallel.tp=2
out=$(weft_mpirun 2 "$train" "${run[@]}" --train.steps=4 --run.dir="$T/run-train" --init-from "$T/llama-f32.h5" \
    "${llama_keys[@]}" --parallel.tp=2 2>&1)
if grep -Eq 'done: 4 steps.*final loss [0-9]' <<<"$out"; then ok "llama: 4 training steps on tp 2 from the import"
else not_ok "llama: 4 training steps on tp 2 from the import" "$(tail -5 <<<"$out")"; fi
expect_exit 65 "--init-from with model.n_embd 64 against an import of 32: exit 65" weft_mpirun 1 "$train" "${run[@]}" \
    --train.steps=1 --run.dir="$T/run-bad1" --init-from "$T/gpt2-f32.h5" "${gpt2_keys[@]}" --model.n_embd=64
check "... naming the tensor and both shapes" grep -q "tensor 'params/wte' has shape (256, 32) in the checkpoint but (256, 64)" <<<"$LAST_OUT"
expect_exit 0 "--init-from a Llama import with no model.* keys: weft-train takes the checkpoint's" \
    weft_mpirun 1 "$train" "${run[@]}" --train.steps=1 --run.dir="$T/run-adopt" --init-from "$T/llama-f32.h5"
check "... and builds that Llama" grep -q "model: Llama, L=2 NH=4 NKV=2 C=32" <<<"$LAST_OUT"
expect_exit 64 "--init-from a Llama import with model.family=gpt2 given: exit 64 before any load" weft_mpirun 1 \
    "$train" "${run[@]}" --train.steps=1 --run.dir="$T/run-bad2" --init-from "$T/llama-f32.h5" --model.family=gpt2
check "... naming model.family and the checkpoint's Llama key" grep -q \
    "model.n_kv_head is set (checkpoint .*llama-f32.h5) but model.family is gpt2 (command line)" <<<"$LAST_OUT"

# Bad input: exit CODE, the message matches PATTERN, nothing left in the
# output directory.
bad() { # KIND SRC CODE PATTERN
    local kind=$1 src=$2 code=$3 pat=$4 d="$T/bad-$1" o="$T/out-$1"
    "$py" "$hf" corrupt "$T/$src" "$kind" "$d" || { not_ok "$kind: corrupt"; return; }
    mkdir -p "$o"
    expect_exit "$code" "$kind: exit $code" "$ck" import "$d" -o "$o/model.h5"
    if grep -Eq -- "$pat" <<<"$LAST_OUT"; then ok "$kind: the message names file and field"
    else not_ok "$kind: the message names file and field" "no /$pat/ in: $LAST_OUT"; fi
    if [ -z "$(ls -A "$o")" ]; then ok "$kind: nothing under the output name"
    else not_ok "$kind: nothing under the output name" "$(ls -A "$o")"; fi
}
st='model\.safetensors: '
bad truncated llama-f32 65 "${st}tensor '[^']+': field 'data_offsets': .* ends past the data area"
bad header-past-eof llama-f32 65 "${st}field 'header length': [0-9]+ bytes runs past the end of the file"
bad header-huge gpt2-f32 65 "${st}field 'header length': 9223372036854775808 bytes runs past the end"
bad not-json gpt2-f32 65 "${st}header: invalid JSON at byte [0-9]+"
bad overlap llama-f32 65 "${st}tensor '[^']+': field 'data_offsets': .* overlaps tensor '[^']+'"
bad out-of-file gpt2-f32 65 "${st}tensor '[^']+': field 'data_offsets': .* ends past the data area"
bad dtype-size llama-f32 65 "${st}tensor '[^']+': field 'data_offsets': .* but shape x dtype \([0-9]+ x f16\)"
bad dtype-f64 llama-f32 65 "${st}tensor '[^']+': field 'dtype': F64 is not supported"
bad shape-bytes gpt2-f32 65 "${st}tensor '[^']+': field 'data_offsets': \[[0-9, ]+\] is [0-9]+ bytes, but shape x dtype"
bad offsets-bytes llama-f32 65 "${st}tensor '[^']+': field 'data_offsets': \[[0-9, ]+\] is [0-9]+ bytes, but"
bad missing-tensor llama-f32 65 "${st}tensor 'model\.layers\.[0-9.a-z_]+' is missing"
bad extra-tensor llama-f32 65 "${st}tensor 'model.layers.0.self_attn.q_proj.bias' is not part of"
bad config-shape gpt2-f32 65 "${st}tensor 'transformer.wte.weight': field 'shape': \[256, 32\], but the model .*config.json describes has \[256, 64\]"
bad arch-unknown gpt2-f32 65 "config\.json: field 'architectures': unknown architecture 'BertModel'"
bad arch-qwen2 llama-f32 65 "config\.json: field 'architectures': Qwen2ForCausalLM has q/k/v projection biases"
bad index-unmapped llama-bf16-shards 65 "model-0000[12]-of-00002\.safetensors: tensor '[^']+' is not in .*index\.json's weight_map"
bad index-missing llama-bf16-shards 65 "model-0000[12]-of-00002\.safetensors: tensor 'model.layers.9.mlp.up_proj.weight' is missing \(.*weight_map"
