#!/bin/bash
# test_resume.sh -- checkpoints written by weft-train resume exactly:
#   - same layout (2 ranks, ZeRO-0 and ZeRO-1): the continuation from the
#     step-5 checkpoint gives bitwise the losses of the uninterrupted run and
#     bitwise the same final parameters and moments (weft-ckpt diff, tol 0);
#   - the same for tensor parallelism (TP 2) and pipeline parallelism (PP 2);
#   - another layout (2 ranks ZeRO-1 -> 1 rank, 1 rank -> 2 ranks ZeRO-1,
#     2 ranks ZeRO-0 -> ZeRO-1, TP 2 -> TP 2 x PP 2 on 4 ranks, PP 2 -> TP 2,
#     TP 2 -> DP 2 ZeRO-1): losses within 1e-5 relative, so the data
#     stream went on where it stopped, and final weights and moments within
#     1e-4 of each tensor's scale (AdamW turns the layouts' different
#     summation orders into differences of that size in small tensors);
#   - --init-from loads weights only (step 0, fresh optimizer);
#   - --resume=auto with no checkpoint starts from step 0;
#   - the files open in h5dump and (if installed) h5py with no weft code,
#     and retention keeps checkpoint.keep_last files, with sync saves too.
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train" ck="$WEFT_BIN/weft-ckpt"
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1
tiny=(--data.path="$ds" --model.n_layer=2 --model.n_head=2 --model.n_embd=32 --model.context=32
      --train.seq_len=32 --train.micro_batch=2 --train.global_batch=8 --train.log_interval=1
      --train.eval_interval=0 --train.eval_batches=1 --optim.lr=3e-3 --optim.warmup=3 --train.steps=10
      --checkpoint.every=5 --checkpoint.keep_last=5)

# compare REF OTHER FROM TOL: losses of steps > FROM, relative difference <= TOL (0: bitwise)
compare() {
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
# resume_from REF_DIR NEW_DIR: NEW_DIR starts with REF_DIR's step-5 checkpoint as latest
resume_from() {
    mkdir -p "$2/checkpoints"
    cp "$1/checkpoints/step-00000005.h5" "$2/checkpoints/"
    echo step-00000005.h5 >"$2/checkpoints/latest"
}
final() { echo "$1/checkpoints/step-00000010.h5"; }

# 1. Same layout: bitwise. NAME ARGS: DP ZeRO-0/1, tensor parallel, pipeline.
# 1b: ZeRO-1 with many small buckets: each rank's ranges cut tensors mid-row
# and come from data parallelism in decreasing order.
same=("0 --parallel.zero=0" "1 --parallel.zero=1" "1b --parallel.zero=1,--parallel.bucket_mb=0.004"
      "tp --parallel.tp=2" "pp --parallel.pp=2")
for l in "${same[@]}"; do
    set -- $l
    args=(${2//,/ }) ref="$TMPDIR_TEST/ref$1" res="$TMPDIR_TEST/res$1"
    weft_mpirun 2 "$train" "${tiny[@]}" "${args[@]}" --run.dir="$ref" >"$ref.log" 2>&1
    resume_from "$ref" "$res"
    weft_mpirun 2 "$train" "${tiny[@]}" "${args[@]}" --run.dir="$res" --resume >"$res.log" 2>&1
    check "2 ranks ${args[*]}: resumed at step 5, losses of steps 6-10 bitwise equal to the uninterrupted run" \
        compare "$ref/metrics.jsonl" "$res/metrics.jsonl" 5 0
    check "2 ranks ${args[*]}: final parameters and AdamW moments bitwise equal (weft-ckpt diff)" \
        "$ck" diff "$(final "$ref")" "$(final "$res")"
done
expect_grep "resumed from .*step-00000005.h5 \(step 5" "$TMPDIR_TEST/res1.log" "the resume is logged with its file and step"

# 2. Other layouts: within 1e-5, data continuing exactly.
weft_mpirun 1 "$train" "${tiny[@]}" --run.dir="$TMPDIR_TEST/ref1r" >/dev/null 2>&1
# FROM NP ARGS: the reference run, and the layout that resumes its step 5.
layouts=("ref1 1 --parallel.zero=0" "ref1r 2 --parallel.zero=1" "ref0 2 --parallel.zero=1" "ref1 2 --parallel.zero=0"
         "reftp 4 --parallel.tp=2,--parallel.pp=2" "refpp 2 --parallel.tp=2" "reftp 2 --parallel.zero=1"
         "ref1b 1 --parallel.zero=0" "ref1 2 --parallel.zero=1,--parallel.bucket_mb=0.004")
for l in "${layouts[@]}"; do
    set -- $l
    from=$1 np=$2 args=(${3//,/ }) res="$TMPDIR_TEST/x-$1-$2-${3//[=,]/_}"
    resume_from "$TMPDIR_TEST/$from" "$res"
    weft_mpirun "$np" "$train" "${tiny[@]}" "${args[@]}" --run.dir="$res" --resume >"$res.log" 2>&1
    check "written by $from, resumed on $np rank(s) ${args[*]}: losses of steps 6-10 within 1e-5" \
        compare "$TMPDIR_TEST/$from/metrics.jsonl" "$res/metrics.jsonl" 5 1e-5
    check "written by $from, resumed on $np rank(s) ${args[*]}: final weights and moments within 1e-4 of the tensor scale" \
        "$ck" diff "$(final "$TMPDIR_TEST/$from")" "$(final "$res")" --tol 1e-4
done

# 3. --init-from: weights only; --resume=auto without a checkpoint.
weft_mpirun 2 "$train" "${tiny[@]}" --run.dir="$TMPDIR_TEST/ft" --train.steps=3 --checkpoint.every=0 \
    --init-from "$TMPDIR_TEST/ref0/checkpoints/step-00000010.h5" >"$TMPDIR_TEST/ft.log" 2>&1
check "--init-from: 3 steps from step 1, loss starting near the trained model's" python3 - \
    "$TMPDIR_TEST/ft/metrics.jsonl" "$TMPDIR_TEST/ref0/metrics.jsonl" <<'PY'
import json, sys
ft = [json.loads(l) for l in open(sys.argv[1])]
ref = [json.loads(l) for l in open(sys.argv[2])]
assert [r["step"] for r in ft] == [1, 2, 3], [r["step"] for r in ft]
assert ft[0]["loss"] < ref[0]["loss"] - 0.3, (ft[0]["loss"], ref[0]["loss"])
PY
check "--init-from: the fine-tuned run's own checkpoint is step 3" test -f "$TMPDIR_TEST/ft/checkpoints/step-00000003.h5"
weft_mpirun 2 "$train" "${tiny[@]}" --run.dir="$TMPDIR_TEST/auto" --train.steps=2 --resume=auto \
    >"$TMPDIR_TEST/auto.log" 2>&1
check "--resume=auto with no checkpoint: starts from step 0" python3 -c '
import json, sys; assert [json.loads(l)["step"] for l in open(sys.argv[1])] == [1, 2]' "$TMPDIR_TEST/auto/metrics.jsonl"
expect_grep "no checkpoint in .* starting from step 0" "$TMPDIR_TEST/auto.log" "--resume=auto says it starts fresh"

# 4. The files are plain HDF5; retention; mode.
f=$(final "$TMPDIR_TEST/ref1")
check "h5dump reads a checkpoint (attributes and a tensor)" bash -c \
    "h5dump -a /step '$f' | grep -q '(0): 10' && h5dump -d /params/ln_f.weight '$f' | grep -q DATA"
pyh5=/usr/bin/python3
if $pyh5 -c 'import h5py' 2>/dev/null; then
    check "h5py reads every tensor at its global shape, the config and the step" $pyh5 - "$f" <<'PY'
import sys, h5py
f = h5py.File(sys.argv[1], "r")
assert f.attrs["step"] == 10 and f.attrs["format"] == b"weft-checkpoint"
C, V = 32, 256
assert f["params/wte"].shape == (V, C) and f["params/h.1.attn.c_attn.weight"].shape == (3 * C, C)
assert f["optim/m/h.0.mlp.c_proj.weight"].shape == (C, 4 * C)
assert b"n_embd = 32" in f.attrs["config"]
assert abs(f["params/ln_f.weight"][:].mean() - 1) < 0.5
PY
else
    skip "h5py reads a checkpoint" "python3-h5py is not installed"
fi
check "retention: checkpoint.keep_last = 1 keeps only the newest" bash -c "
    timeout 120 mpirun -np 1 '$train' ${tiny[*]} --run.dir='$TMPDIR_TEST/keep' --checkpoint.every=2 \
        --checkpoint.keep_last=1 --checkpoint.keep_every=4 >/dev/null 2>&1 &&
    [ \"\$(cd '$TMPDIR_TEST/keep/checkpoints' && echo step-*.h5)\" = 'step-00000004.h5 step-00000008.h5 step-00000010.h5' ]"
# every save sync: each hands its removals to the writer thread, the next
# waits for them, and the run's close for the last
check "retention with checkpoint.async = false: the same files" bash -c "
    timeout 120 mpirun -np 1 '$train' ${tiny[*]} --run.dir='$TMPDIR_TEST/keep_sync' --checkpoint.every=2 \
        --checkpoint.async=false --checkpoint.keep_last=1 --checkpoint.keep_every=4 >/dev/null 2>&1 &&
    [ \"\$(cd '$TMPDIR_TEST/keep_sync/checkpoints' && echo step-*.h5)\" = 'step-00000004.h5 step-00000008.h5 step-00000010.h5' ]"
check "checkpoint files are mode 0640" bash -c "[ \$(stat -c %a '$f') = 640 ]"
check "after a run the checkpoint directory holds only step-*.h5 and latest" bash -c \
    "[ -z \"\$(ls -A '$TMPDIR_TEST/ref1/checkpoints' | grep -Ev '^(step-[0-9]{8}\.h5|latest)\$')\" ]"
check "weft-ckpt ls marks the latest" bash -c "'$ck' ls '$TMPDIR_TEST/ref1' | grep -q 'step-00000010.h5.*<- latest'"
echo "1..$TAP_N"
