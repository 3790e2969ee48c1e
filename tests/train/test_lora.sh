#!/bin/bash
# test_lora.sh -- LoRA fine-tuning (model/lora.h) through weft-train and
# weft-ckpt, from a GPT-2 base trained here for 10 steps:
#   - a LoRA run (adapters on every linear) on 4 ranks as dp 4, dp 2 x tp 2
#     (ZeRO-1), dp 2 x pp 2 and tp 2 x pp 2 matches the single-rank LoRA
#     run: loss, gradient norm, validation loss and every adapter element
#     within 1e-5 (tests/train/layout_compare.py), and a Llama LoRA run on
#     dp 2 x tp 2 matches its single-rank run alike;
#   - the base stays bitwise what the base checkpoint holds after training
#     (the frozen tensors every rank dumps, reassembled, against the file);
#   - a resumed LoRA run gives bitwise the uninterrupted run's losses and
#     final checkpoint; its checkpoints hold only the adapters and name the
#     base (base_checkpoint, base_hash); a missing base exits 66 and a
#     changed one 65, each naming the base;
#   - weft-ckpt merge writes base + (alpha/r) B A (numpy over the HDF5
#     files), and the merged model, loaded with --init-from and LoRA off,
#     has the LoRA run's validation loss;
#   - dropout (0.2): the masks are drawn from (seed, step, micro-batch), so
#     tp 2 x pp 2 (the same micro-batches as one rank) matches the single-
#     rank dropout run within 1e-5 -- the ranks agree on the masks of the
#     columns they split -- and a resumed dropout run is bitwise the
#     uninterrupted one;
#   - refusals exit 64: an unknown target, lora.rank > the layers' smaller
#     side, lora.dropout of 1, LoRA without --init-from or --resume.
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train" ck="$WEFT_BIN/weft-ckpt"
cmp_py="$WEFT_ROOT/tests/train/layout_compare.py"
py=/usr/bin/python3 # h5py and numpy
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1
export WEFT_DUMP_PARAMS=1

tiny=(--data.path="$ds" --model.n_layer=4 --model.n_head=4 --model.n_embd=32 --model.context=16
      --train.seq_len=16 --train.micro_batch=2 --train.global_batch=8 --train.steps=10 --train.log_interval=1
      --train.eval_interval=5 --train.eval_batches=1 --optim.lr=1e-2 --optim.warmup=3 --optim.eps=1e-6
      --parallel.bucket_mb=0.001)
lora=(--lora.rank=4 --lora.alpha=8 --lora.targets=qkv,proj,fc,fcproj)
base="$TMPDIR_TEST/base/checkpoints/step-00000010.h5"

weft_mpirun 1 "$train" "${tiny[@]}" --run.dir="$TMPDIR_TEST/base" >"$TMPDIR_TEST/base.log" 2>&1 \
    || not_ok "the base run" "$(tail -5 "$TMPDIR_TEST/base.log")"
weft_mpirun 1 "$train" "${tiny[@]}" "${lora[@]}" --init-from="$base" --checkpoint.every=5 \
    --run.dir="$TMPDIR_TEST/ref" >"$TMPDIR_TEST/ref.log" 2>&1 \
    || not_ok "the single-rank LoRA run" "$(tail -5 "$TMPDIR_TEST/ref.log")"
expect_grep "lora: [0-9]+ trainable of [0-9]+ \(" "$TMPDIR_TEST/ref.log" "the start says what is trained"

# frozen_same RUN: the frozen tensors the ranks dumped == the base file's.
frozen_same() {
    "$py" - "$1" "$base" <<'PY'
import glob, h5py, numpy as np, sys
f = h5py.File(sys.argv[2], "r")
def pieces(path):  # the dump format of weft-train's WEFT_DUMP_PARAMS (tests/train/layout_compare.py)
    data = open(path, "rb").read(); pos = 0
    while pos < len(data):
        nl = data.index(b"\n", pos)
        name, g0, g1, dim, nb, part, nparts, tied, n = data[pos:nl].decode().split()
        pos = nl + 1
        yield name, int(dim), int(nb), int(part), int(nparts), np.frombuffer(data, "<f4", int(n), pos)
        pos += 4 * int(n)
seen = set()
for path in sorted(glob.glob(sys.argv[1] + "/frozen-r*.bin")):
    for name, dim, nb, part, nparts, vals in pieces(path):
        g = f["params/" + name][()]
        if dim >= 0:  # this rank's piece of each of nb blocks along dim
            blocks = np.split(g, nb, axis=dim)
            g = np.concatenate([np.split(b, nparts, axis=dim)[part] for b in blocks], axis=dim)
        assert np.array_equal(g.reshape(-1), vals), f"{path}: {name} differs from the base"
        seen.add(name)
assert seen == set(f["params"]), f"frozen tensors {sorted(seen)} vs the base's {sorted(f['params'])}"
PY
}
check "1 rank: the frozen base is bitwise the base checkpoint after 10 steps" frozen_same "$TMPDIR_TEST/ref"

layout() { # name dp tp pp extra-args...
    local name=$1 dp=$2 tp=$3 pp=$4 dir="$TMPDIR_TEST/$1"; shift 4
    local what="LoRA dp $dp x tp $tp x pp $pp${*:+ ($*)}: loss, grad norm, every adapter == 1 rank"
    if ! weft_mpirun 4 "$train" "${tiny[@]}" "${lora[@]}" --init-from="$base" --parallel.dp="$dp" \
        --parallel.tp="$tp" --parallel.pp="$pp" --run.dir="$dir" "$@" >"$dir.log" 2>&1; then
        not_ok "$what" "the run failed: $(tail -5 "$dir.log")"
        return
    fi
    check "$what" python3 "$cmp_py" "$TMPDIR_TEST/ref" "$dir"
}
layout d4 4 1 1
layout d2t2 2 2 1 --parallel.zero=1
layout d2p2 2 1 2 --parallel.schedule=1f1b
layout t2p2 1 2 2 --parallel.schedule=gpipe
check "tp 2 x pp 2: the frozen base is bitwise the base checkpoint" frozen_same "$TMPDIR_TEST/t2p2"

# Llama: its own base, adapters on all seven linears, dp 2 x tp 2. Adam's
# eps 1e-5 here: at 1e-6 one up_proj.lora_B element whose gradient is
# about eps turns the layouts' rounding differences into 6e-5 of the
# tensor's scale in 10 steps (past layout_compare's bound); it passes at
# 1e-5 and 1e-4, and any adapter subset passes at 1e-6.
llama=(--optim.lr=3e-3 --optim.eps=1e-5 --model.family=llama --model.n_kv_head=2 --lora.rank=4 --lora.alpha=8 --lora.targets=q,k,v,o,gate,up,down)
weft_mpirun 1 "$train" "${tiny[@]}" --model.family=llama --model.n_kv_head=2 --run.dir="$TMPDIR_TEST/lbase" \
    >"$TMPDIR_TEST/lbase.log" 2>&1 || not_ok "the Llama base run" "$(tail -5 "$TMPDIR_TEST/lbase.log")"
for np_layout in "1 1 1" "4 2 2"; do
    set -- $np_layout
    weft_mpirun "$1" "$train" "${tiny[@]}" "${llama[@]}" --init-from="$TMPDIR_TEST/lbase" --parallel.dp="$2" \
        --parallel.tp="$3" --run.dir="$TMPDIR_TEST/llama$1" >"$TMPDIR_TEST/llama$1.log" 2>&1 \
        || not_ok "Llama LoRA on $1 rank(s)" "$(tail -5 "$TMPDIR_TEST/llama$1.log")"
done
check "Llama LoRA dp 2 x tp 2: loss, grad norm, every adapter == 1 rank" \
    python3 "$cmp_py" "$TMPDIR_TEST/llama1" "$TMPDIR_TEST/llama4"

# Checkpoints: adapters only, naming the base.
ref5="$TMPDIR_TEST/ref/checkpoints/step-00000005.h5" ref10="$TMPDIR_TEST/ref/checkpoints/step-00000010.h5"
check "a LoRA checkpoint holds the adapters only and names the base by path and hash" "$py" - "$ref10" "$base" <<'PY'
import h5py, sys
f = h5py.File(sys.argv[1], "r")
names = list(f["params"])
assert names and all(".lora_A." in n or ".lora_B." in n for n in names), names
assert len(names) == 4 * 4 * 2, len(names)
named = f.attrs["base_checkpoint"]
named = named.decode() if isinstance(named, bytes) else named
assert named.startswith("/") and named.endswith("base/checkpoints/step-00000010.h5"), named
assert int(f.attrs["base_hash"]) != 0
PY

# Bitwise resume from step 5.
res="$TMPDIR_TEST/res"
mkdir -p "$res/checkpoints" && cp "$ref5" "$res/checkpoints/" && echo step-00000005.h5 >"$res/checkpoints/latest"
weft_mpirun 1 "$train" "${tiny[@]}" "${lora[@]}" --checkpoint.every=5 --run.dir="$res" --resume >"$res.log" 2>&1 \
    || not_ok "the resumed LoRA run" "$(tail -5 "$res.log")"
check "resumed at step 5: losses of steps 6-10 bitwise the uninterrupted run's" python3 - "$TMPDIR_TEST/ref" "$res" <<'PY'
import json, sys
ref = {r["step"]: r["loss"] for r in map(json.loads, open(sys.argv[1] + "/metrics.jsonl"))}
got = {r["step"]: r["loss"] for r in map(json.loads, open(sys.argv[2] + "/metrics.jsonl"))}
assert [s for s in got if s > 5] == list(range(6, 11)), got
for s in range(6, 11):
    assert got[s] == ref[s], f"step {s}: {got[s]!r} vs {ref[s]!r}"
PY
check "resumed: the final checkpoint (adapters and moments) is bitwise the uninterrupted run's" \
    "$ck" diff "$ref10" "$res/checkpoints/step-00000010.h5"
expect_grep "frozen weights .* from .*base/checkpoints/step-00000010.h5" "$res.log" "the resume loads the base it names"

# A missing or changed base.
moved="$TMPDIR_TEST/moved.h5"
mv "$base" "$moved"
rm -rf "$res" && mkdir -p "$res/checkpoints" && cp "$ref5" "$res/checkpoints/" && echo step-00000005.h5 >"$res/checkpoints/latest"
expect_exit 66 "resuming without the base exits 66" weft_mpirun 1 "$train" "${tiny[@]}" "${lora[@]}" --run.dir="$res" --resume
echo "$LAST_OUT" | grep -q "base checkpoint .*base/checkpoints/step-00000010.h5" && ok "  ... naming the base" || not_ok "  ... naming the base" "$LAST_OUT"
cp "$TMPDIR_TEST/lbase/checkpoints/step-00000010.h5" "$base" # another checkpoint in its place
expect_exit 65 "resuming on a changed base exits 65" weft_mpirun 1 "$train" "${tiny[@]}" "${lora[@]}" --run.dir="$res" --resume
echo "$LAST_OUT" | grep -q "has weights hash .* but .* was trained on a base of hash" && ok "  ... naming both hashes" || not_ok "  ... naming both hashes" "$LAST_OUT"
mv "$moved" "$base"

# Merge: base + (alpha / r) B A, and the merged model is the LoRA model.
merged="$TMPDIR_TEST/merged.h5"
check "weft-ckpt merge writes a checkpoint" "$ck" merge "$TMPDIR_TEST/ref" -o "$merged"
check "merged weights == base + alpha/r B A (numpy, float64), every other tensor bitwise the base's" \
    "$py" - "$merged" "$base" "$ref10" <<'PY'
import h5py, numpy as np, sys
m, b, l = (h5py.File(p, "r") for p in sys.argv[1:4])
assert set(m["params"]) == set(b["params"]) and "optim" not in m and int(m.attrs["step"]) == 0
adapted = 0
for n in b["params"]:
    W, W0 = m["params/" + n][()], b["params/" + n][()]
    mod = n[: -len(".weight")]
    if mod + ".lora_A.weight" in l["params"]:
        A = l[f"params/{mod}.lora_A.weight"][()].astype(np.float64)
        B = l[f"params/{mod}.lora_B.weight"][()].astype(np.float64)
        ref = W0.astype(np.float64) + 8.0 / A.shape[0] * B @ A
        err = np.abs(W - ref).max() / np.abs(ref).max()
        assert err < 1e-6 and np.abs(W - W0).max() > 1e-4, (n, err)
        adapted += 1
    else:
        assert np.array_equal(W, W0), n
assert adapted == 16, adapted
PY
check "weft-ckpt verify passes on the merged file" "$ck" verify "$merged"
expect_exit 0 "weft-ckpt info on the merged file" "$ck" info "$merged"
lora_id=$("$ck" info "$ref10" | awk '$1 == "identity" {print $2; exit}')
if grep -Eq "<- merge +$(realpath "$ref10") \(step 10, identity $lora_id\)" <<<"$LAST_OUT" &&
   grep -Eq "<- init-from +$(realpath "$base")" <<<"$LAST_OUT"; then ok "  ... the chain: merge -> LoRA run -> base"
else not_ok "  ... the chain: merge -> LoRA run -> base" "$LAST_OUT"; fi
check "  ... and not the base's signature (the merged file is unsigned)" grep -q "^signature *none" <<<"$LAST_OUT"
weft_mpirun 1 "$train" "${tiny[@]}" --init-from="$merged" --train.steps=1 --optim.lr=0 --optim.min_lr=0 \
    --run.dir="$TMPDIR_TEST/m" >"$TMPDIR_TEST/m.log" 2>&1 || not_ok "a run from the merged model" "$(tail -5 "$TMPDIR_TEST/m.log")"
check "the merged model (LoRA off) has the LoRA run's final validation loss" python3 - "$TMPDIR_TEST" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1] + "/ref/metrics.jsonl")][-1]["val_loss"]
b = [json.loads(l) for l in open(sys.argv[1] + "/m/metrics.jsonl")][-1]["val_loss"]
assert abs(a - b) <= 1e-5 * abs(a), (a, b)
PY

# Dropout: the same masks on every layout that computes the same
# micro-batches, and after a resume. Adam's eps 1e-5 as for Llama above:
# with the masks' extra zeros a few elements' gradients sit near 1e-6, and
# Adam at eps 1e-6 turns the layouts' rounding differences in them into
# 1e-4 of the gradient norm within five steps (measured: 2.1e-4 at step 5);
# the losses agree to 3e-7 either way, which a mask drawn differently on one
# rank would miss by orders of magnitude.
drop=(--lora.dropout=0.2 --checkpoint.every=5 --optim.eps=1e-5)
weft_mpirun 1 "$train" "${tiny[@]}" "${lora[@]}" "${drop[@]}" --init-from="$base" --run.dir="$TMPDIR_TEST/drop1" \
    >"$TMPDIR_TEST/drop1.log" 2>&1 || not_ok "the single-rank dropout run" "$(tail -5 "$TMPDIR_TEST/drop1.log")"
check "dropout 0.2 changes the losses (the masks are drawn)" python3 - "$TMPDIR_TEST/ref" "$TMPDIR_TEST/drop1" <<'PY'
import json, sys
a, b = ([json.loads(l)["loss"] for l in open(d + "/metrics.jsonl")] for d in sys.argv[1:3])
assert a[0] == b[0] or True  # step 1: B = 0, so the masked input cannot move the loss yet
assert any(x != y for x, y in zip(a[1:], b[1:])), (a, b)
PY
weft_mpirun 4 "$train" "${tiny[@]}" "${lora[@]}" "${drop[@]}" --init-from="$base" --parallel.tp=2 --parallel.pp=2 \
    --run.dir="$TMPDIR_TEST/drop4" >"$TMPDIR_TEST/drop4.log" 2>&1 \
    || not_ok "the tp 2 x pp 2 dropout run" "$(tail -5 "$TMPDIR_TEST/drop4.log")"
check "dropout, tp 2 x pp 2: loss, grad norm, every adapter == 1 rank (the same masks)" \
    python3 "$cmp_py" "$TMPDIR_TEST/drop1" "$TMPDIR_TEST/drop4"
dres="$TMPDIR_TEST/dres"
mkdir -p "$dres/checkpoints" && cp "$TMPDIR_TEST/drop1/checkpoints/step-00000005.h5" "$dres/checkpoints/" \
    && echo step-00000005.h5 >"$dres/checkpoints/latest"
weft_mpirun 1 "$train" "${tiny[@]}" "${lora[@]}" "${drop[@]}" --run.dir="$dres" --resume >"$dres.log" 2>&1 \
    || not_ok "the resumed dropout run" "$(tail -5 "$dres.log")"
check "dropout: resumed at step 5, the final checkpoint is bitwise the uninterrupted run's" \
    "$ck" diff "$TMPDIR_TEST/drop1/checkpoints/step-00000010.h5" "$dres/checkpoints/step-00000010.h5"

bad() { # name pattern args...
    local name=$1 pattern=$2; shift 2
    expect_exit 64 "$name exits 64" weft_mpirun 1 "$train" "${tiny[@]}" --run.dir="$TMPDIR_TEST/bad" "$@"
    echo "$LAST_OUT" | grep -q -- "$pattern" && ok "  ... saying why" || not_ok "  ... saying why" "$LAST_OUT"
    [ ! -e "$TMPDIR_TEST/bad" ] && ok "  ... writing nothing" || not_ok "  ... writing nothing" "$(ls -R "$TMPDIR_TEST/bad")"
    rm -rf "$TMPDIR_TEST/bad"
}
bad "an unknown target" "unknown target 'mlp'" --lora.rank=4 --lora.targets=qkv,mlp --init-from="$base"
bad "lora.rank 33 > n_embd 32" "lora.rank (33)" --lora.rank=33 --init-from="$base"
bad "lora.dropout 1" "lora.dropout (1) must be in" --lora.rank=4 --lora.dropout=1 --init-from="$base"
bad "LoRA without --init-from" "give --init-from BASE" --lora.rank=4
