#!/bin/bash
# test_bad.sh -- checkpoints that must not load, and what weft-ckpt says:
#   - bytes flipped inside a tensor (dd conv=notrunc at the offset h5dump
#     reports): --resume and weft-ckpt verify exit 65 naming the tensor;
#   - another model (n_embd, n_layer up and down): exit 65 naming the tensor
#     and both shapes, or the missing / extra tensor;
#   - a float64 tensor (written with h5py): exit 65 naming it;
#   - truncated file, not HDF5, HDF5 but not weft's: exit 65; missing latest
#     or the file it names: 66; malformed latest (a path, garbage): 65;
#   - weft-ckpt export: an independent reader (python json + struct) parses
#     the safetensors file; names and shapes are Hugging Face GPT-2's and the
#     values equal h5dump's raw dump of the checkpoint (transposed for Conv1D);
#   - weft-ckpt: bad usage exits 64, info shows step, layout and shapes.
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train" ck="$WEFT_BIN/weft-ckpt"
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1
tiny=(--data.path="$ds" --model.n_layer=2 --model.n_head=2 --model.n_embd=32 --model.context=32
      --train.seq_len=32 --train.micro_batch=2 --train.global_batch=8 --train.log_interval=1
      --train.eval_interval=0 --train.eval_batches=1 --train.steps=4)
ref="$TMPDIR_TEST/ref"
weft_mpirun 2 "$train" "${tiny[@]}" --run.dir="$ref" >"$ref.log" 2>&1
good="$ref/checkpoints/step-00000004.h5"
check "a 4-step run commits step-00000004.h5 and latest" grep -qx step-00000004.h5 "$ref/checkpoints/latest"

# with_file NAME FILE: a run dir whose latest names a copy of FILE
with_file() {
    local d="$TMPDIR_TEST/$1"
    mkdir -p "$d/checkpoints"
    cp "$2" "$d/checkpoints/step-00000004.h5"
    echo step-00000004.h5 >"$d/checkpoints/latest"
    echo "$d"
}
# resume_expect CODE PATTERN NAME DIR [ARGS]: --resume from DIR exits CODE, log matches PATTERN
resume_expect() {
    local code=$1 pat=$2 name=$3 dir=$4; shift 4
    expect_exit "$code" "$name: exit $code" weft_mpirun 2 "$train" "${tiny[@]}" --run.dir="$dir" --resume "$@"
    if grep -Eq -- "$pat" <<<"$LAST_OUT"; then ok "$name: the error says so"; else
        not_ok "$name: the error says so" "no /$pat/ in: $(grep -i error <<<"$LAST_OUT" | head -5)"; fi
}

# 1. Flipped bytes.
t=h.0.attn.c_attn.weight
off=$(h5dump -p -H -d "/params/$t" "$good" | awk '/OFFSET/ {print $2}')
d=$(with_file flip "$good")
printf '\xde\xad\xbe\xef' | dd of="$d/checkpoints/step-00000004.h5" bs=1 seek=$((off + 400)) conv=notrunc 2>/dev/null
resume_expect 65 "tensor 'params/$t' fails its checksum" "4 bytes flipped in params/$t" "$d"
expect_exit 65 "weft-ckpt verify of the damaged file exits 65" "$ck" verify "$d/checkpoints/step-00000004.h5"
check "weft-ckpt verify names the damaged tensor and counts 1 corrupt" \
    grep -q "params/$t' fails its checksum" <<<"$LAST_OUT"
expect_exit 65 "weft-generate from the damaged file exits 65 (one process reads it whole and verifies it)" \
    "$WEFT_BIN/weft-generate" --init-from "$d/checkpoints/step-00000004.h5" --prompt-ids 1,2 --max-new-tokens 2
check "weft-generate names the damaged tensor" grep -q "params/$t' fails its checksum" <<<"$LAST_OUT"
check "weft-ckpt verify of an intact file: 0 corrupt" bash -c "'$ck' verify '$good' | grep -q ', 0 corrupt'"

# 1b. Flipped bytes in the optimizer's moments of a ZeRO-1 checkpoint: the
# load verifies each dataset on a rank that holds it whole where one does,
# from memory (rank 0 holds wte's moments, rank 1 ln_f's and h.1's), else on
# any, from the file (h.0.mlp.c_fc straddles the shard boundary; flipped in
# rank 0's piece and at the end, in rank 1's): each kind refused, naming the
# tensor.
zref="$TMPDIR_TEST/zref"
weft_mpirun 2 "$train" "${tiny[@]}" --parallel.zero=1 --run.dir="$zref" >"$zref.log" 2>&1
zgood="$zref/checkpoints/step-00000004.h5"
check "a ZeRO-1 run commits step-00000004.h5" test -s "$zgood"
for t in optim/m/wte optim/v/ln_f.bias optim/m/h.1.attn.c_attn.weight optim/v/h.0.mlp.c_fc.weight; do
    off=$(h5dump -p -H -d "/$t" "$zgood" | awk '/OFFSET/ {print $2}')
    d=$(with_file "zflip-${t//\//-}" "$zgood")
    printf '\xde\xad\xbe\xef' | dd of="$d/checkpoints/step-00000004.h5" bs=1 seek=$((off + 4)) conv=notrunc 2>/dev/null
    resume_expect 65 "tensor '$t' fails its checksum" "4 bytes flipped in $t (ZeRO-1)" "$d" --parallel.zero=1
done
t=optim/v/h.0.mlp.c_fc.weight
read -r off size < <(h5dump -p -H -d "/$t" "$zgood" | awk '/OFFSET/ {o = $2} /SIZE/ {z = $2} END {print o, z}')
d=$(with_file zflip-last "$zgood")
printf '\xde\xad\xbe\xef' | dd of="$d/checkpoints/step-00000004.h5" bs=1 seek=$((off + size - 8)) conv=notrunc 2>/dev/null
resume_expect 65 "tensor '$t' fails its checksum" "4 bytes flipped at the end of $t, rank 1's piece (ZeRO-1)" "$d" \
    --parallel.zero=1

# 2. Another model.
resume_expect 65 "tensor 'params/wte' has shape \(256, 32\) in the checkpoint but \(256, 64\) in the model" \
    "model.n_embd 64 against a checkpoint of 32" "$(with_file embd "$good")" --model.n_embd=64
resume_expect 65 "has no tensor 'params/h.2.ln_1.weight'" "model.n_layer 3 against a checkpoint of 2" \
    "$(with_file deeper "$good")" --model.n_layer=3
resume_expect 65 "has tensor 'h.1.[a-z_.0-9]+', which the model does not have" "model.n_layer 1 against a checkpoint of 2" \
    "$(with_file shallower "$good")" --model.n_layer=1
pyh5=/usr/bin/python3
if $pyh5 -c 'import h5py' 2>/dev/null; then
    d=$(with_file f64 "$good")
    $pyh5 - "$d/checkpoints/step-00000004.h5" <<'PY'
import sys, h5py
f = h5py.File(sys.argv[1], "r+")
x = f["params/ln_f.bias"][:]
del f["params/ln_f.bias"]
f.create_dataset("params/ln_f.bias", data=x.astype("float64"))
PY
    resume_expect 65 "tensor 'params/ln_f.bias' is not float32" "a float64 tensor" "$d"
    d=$(with_file foreign "$good")
    $pyh5 -c 'import h5py, sys; h5py.File(sys.argv[1], "w").create_dataset("x", data=[1.0])' "$d/checkpoints/step-00000004.h5"
    resume_expect 65 "an HDF5 file but not a weft checkpoint" "an HDF5 file that is not a checkpoint" "$d"
else
    skip "a float64 tensor" "python3-h5py is not installed"
    skip "an HDF5 file that is not a checkpoint" "python3-h5py is not installed"
fi

# 3. Damaged or missing files, bad latest.
d=$(with_file trunc "$good")
truncate -s $(($(stat -c %s "$good") / 2)) "$d/checkpoints/step-00000004.h5"
resume_expect 65 "cannot be opened \(truncated or damaged" "a checkpoint truncated to half" "$d"
d=$(with_file text "$good")
head -c 5000 /dev/urandom | base64 >"$d/checkpoints/step-00000004.h5"
resume_expect 65 "is not an HDF5 file" "a text file under a checkpoint's name" "$d"
mkdir -p "$TMPDIR_TEST/none"
resume_expect 66 "no checkpoint to resume from: .*latest does not exist" "--resume with no checkpoint" "$TMPDIR_TEST/none"
d=$(with_file gone "$good"); rm "$d/checkpoints/step-00000004.h5"
resume_expect 66 "step-00000004.h5: No such file" "latest naming a file that is gone" "$d"
d=$(with_file evil "$good"); echo "../../../etc/passwd" >"$d/checkpoints/latest"
resume_expect 65 "latest is malformed \('../../../etc/passwd'\)" "latest holding a path" "$d"
d=$(with_file junk "$good"); head -c 300 /dev/urandom >"$d/checkpoints/latest"
resume_expect 65 "latest is malformed" "latest holding random bytes" "$d"
expect_exit 64 "--resume together with --init-from: exit 64" \
    weft_mpirun 1 "$train" "${tiny[@]}" --run.dir="$TMPDIR_TEST/both" --resume --init-from "$good"
expect_exit 66 "--init-from a missing file: exit 66" \
    weft_mpirun 1 "$train" "${tiny[@]}" --run.dir="$TMPDIR_TEST/nofile" --init-from "$TMPDIR_TEST/nope.h5"

# 4. Export to safetensors, read back without weft.
st="$TMPDIR_TEST/model.safetensors"
check "weft-ckpt export --format safetensors" "$ck" export "$good" --format safetensors -o "$st"
good_id=$("$ck" info "$good" | awk '$1 == "identity" {print $2; exit}')
for x in wte h.1.attn.c_attn.weight h.0.mlp.c_proj.weight h.0.ln_2.bias; do
    h5dump -d "/params/$x" -b LE -o "$TMPDIR_TEST/$x.bin" "$good" >/dev/null
done
check "safetensors: an independent reader finds Hugging Face GPT-2 names, shapes and the checkpoint's values" \
    python3 - "$st" "$TMPDIR_TEST" "$good_id" "$(realpath "$good")" <<'PY'
import json, struct, sys
data = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", data[:8])
assert 0 < n < len(data) - 8 and n % 8 == 0, n
hdr = json.loads(data[8:8 + n])
body = data[8 + n:]
meta = hdr.pop("__metadata__")
assert meta["format"] == "pt" and meta["weft_step"] == "4", meta
assert meta["weft_identity"] == sys.argv[3] and len(sys.argv[3]) == 16, (meta, sys.argv[3])
assert meta["weft_checkpoint"] == sys.argv[4], meta
C, V, L = 32, 256, 2
want = {"transformer.wte.weight": [V, C], "transformer.wpe.weight": [32, C],
        "transformer.ln_f.weight": [C], "transformer.ln_f.bias": [C]}
for l in range(L):
    p = f"transformer.h.{l}."
    want.update({p + "ln_1.weight": [C], p + "ln_1.bias": [C], p + "ln_2.weight": [C], p + "ln_2.bias": [C],
                 p + "attn.c_attn.weight": [C, 3 * C], p + "attn.c_attn.bias": [3 * C],
                 p + "attn.c_proj.weight": [C, C], p + "attn.c_proj.bias": [C],
                 p + "mlp.c_fc.weight": [C, 4 * C], p + "mlp.c_fc.bias": [4 * C],
                 p + "mlp.c_proj.weight": [4 * C, C], p + "mlp.c_proj.bias": [C]})
assert set(hdr) == set(want), set(hdr) ^ set(want)
spans = []
for k, v in hdr.items():
    assert v["dtype"] == "F32" and v["shape"] == want[k], (k, v)
    a, b = v["data_offsets"]
    count = 1
    for d in v["shape"]:
        count *= d
    assert b - a == 4 * count, (k, v)
    spans.append((a, b))
spans.sort()
assert spans[0][0] == 0 and spans[-1][1] == len(body), "the buffer is covered exactly"
assert all(x[1] == y[0] for x, y in zip(spans, spans[1:])), "no gaps or overlaps"
def tensor(k):
    a, b = hdr[k]["data_offsets"]
    return struct.unpack(f"<{(b - a) // 4}f", body[a:b])
def raw(name):
    r = open(f"{sys.argv[2]}/{name}.bin", "rb").read()
    return struct.unpack(f"<{len(r) // 4}f", r)
assert tensor("transformer.wte.weight") == raw("wte")
assert tensor("transformer.h.0.ln_2.bias") == raw("h.0.ln_2.bias")
# Conv1D: HF (in, out)[i][j] == weft (out, in)[j][i]
for k, name, out_, in_ in (("transformer.h.1.attn.c_attn.weight", "h.1.attn.c_attn.weight", 3 * C, C),
                           ("transformer.h.0.mlp.c_proj.weight", "h.0.mlp.c_proj.weight", C, 4 * C)):
    hf, w = tensor(k), raw(name)
    assert all(hf[i * out_ + j] == w[j * in_ + i] for i in range(in_) for j in range(out_)), k
PY
expect_exit 64 "weft-ckpt export --format onnx: exit 64" "$ck" export "$good" --format onnx -o "$TMPDIR_TEST/x"
expect_exit 64 "weft-ckpt with no arguments: exit 64" "$ck"
expect_exit 64 "weft-ckpt diff --tol abc: exit 64" "$ck" diff "$good" "$good" --tol abc
expect_exit 66 "weft-ckpt info of a missing file: exit 66" "$ck" info "$TMPDIR_TEST/missing.h5"
check "weft-ckpt info: step, layout, shapes, the config" bash -c "'$ck' info '$good' --config >'$TMPDIR_TEST/info'"
expect_grep "^layout +world=2 dp=2 tp=1 pp=1 zero=0" "$TMPDIR_TEST/info" "info shows the layout that wrote it"
expect_grep "params/h.0.attn.c_attn.weight +\(96, 32\)" "$TMPDIR_TEST/info" "info shows global shapes"
expect_grep "^n_embd = 32" "$TMPDIR_TEST/info" "info --config prints the run's configuration"
expect_exit 1 "weft-ckpt diff of two different checkpoints exits 1" "$ck" diff "$good" "$TMPDIR_TEST/flip/checkpoints/step-00000004.h5"
echo "1..$TAP_N"
