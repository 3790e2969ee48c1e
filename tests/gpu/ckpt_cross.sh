#!/bin/bash
# ckpt_cross.sh -- checkpoints cross between the GPU and the CPU (issue 20):
# a checkpoint written from device memory is the same global HDF5 datasets
# as one written on the cpu, so either resumes on the other. On one rank,
# with a small GPT-2 (L 2, NH 2, C 32, T 32, global batch 8, f32):
#   - 10 steps on the GPU with a checkpoint at step 5, and the same on the cpu
#     (the uninterrupted runs; the GPU's losses within 1e-4 relative of the
#     cpu's);
#   - the GPU's step-5 checkpoint passes weft-ckpt verify (its checksums)
#     and resumes on the cpu: steps 6-10 run, their losses within 1e-4
#     relative of the uninterrupted run's;
#   - the cpu's step-5 checkpoint resumes on the GPU, the same;
#   - each run says which device it trained on.
# Prints ok / not ok lines and "N passed, N failed"; exit 0 when none failed.
# Run by tests/gpu/run.sh on a machine with a GPU (after its build). The
# cuda training is behind WEFT_GPU_CHECK=1 (issue 20), exported here.
#
#   tests/gpu/ckpt_cross.sh [--gpu cuda|cpu] [--help]
#
# --gpu cpu (or --gpu=cpu) runs the "GPU" side on the cpu too: the script's
# own logic checked on a machine without a GPU (every comparison then holds
# bit for bit). Needs $BUILD/bin/weft-train, weft-data and weft-ckpt, and
# python3 (no modules); mpirun when it is on PATH (else the singleton).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
gpu=cuda
while [ $# -gt 0 ]; do
    case $1 in
    --gpu) gpu=${2:-}; shift ;;
    --gpu=*) gpu=${1#--gpu=} ;;
    -h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "ckpt_cross.sh: unknown argument '$1' (try --help)" >&2; exit 64 ;;
    esac
    shift
done
case $gpu in cuda | cpu) ;; *) echo "ckpt_cross.sh: --gpu is cuda or cpu, not '$gpu'" >&2; exit 64 ;; esac
export WEFT_GPU_CHECK=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
bin="$BUILD/bin" pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok() { pass=$((pass + 1)); echo "ok $((pass + fail)) - $1"; }
not_ok() {
    fail=$((fail + 1)); echo "not ok $((pass + fail)) - $1"
    [ $# -gt 1 ] && printf '%s\n' "$2" | sed 's/^/# /'
    return 0
}
check() {
    local name=$1 out; shift
    if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "$out"; fi
}
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit; }

for p in weft-train weft-data weft-ckpt; do
    [ -x "$bin/$p" ] || { not_ok "$bin/$p is built (make BUILD=$BUILD)"; finish; }
done
launch=()
command -v mpirun >/dev/null && launch=(mpirun -np 1)

for i in $(seq 300); do echo "the quick brown fox jumps over the lazy dog. a stitch in time saves nine"; done \
    >"$tmp/ds.txt"
if ! out=$("$bin/weft-data" prepare -o "$tmp/ds" "$tmp/ds.txt" 2>&1); then
    not_ok "the dataset" "$out"; finish
fi
tiny=(--data.path="$tmp/ds" --model.n_layer=2 --model.n_head=2 --model.n_embd=32 --model.context=32
      --train.seq_len=32 --train.micro_batch=2 --train.global_batch=8 --train.log_interval=1
      --train.eval_interval=0 --optim.lr=3e-3 --optim.warmup=3 --train.steps=10
      --checkpoint.every=5 --checkpoint.keep_last=5)

# train NAME DEVICE [ARGS]: one rank, 10 steps into $tmp/NAME; its log
# there; reports a failed run.
train() {
    local name=$1 dev=$2; shift 2
    if timeout -k 5 600 "${launch[@]}" "$bin/weft-train" "${tiny[@]}" --run.device="$dev" \
        --run.dir="$tmp/$name" "$@" >"$tmp/$name.log" 2>&1; then
        ok "$name: trained on $dev"
    else
        not_ok "$name: trained on $dev (exit $?)" "$(grep -E 'ERROR|error' "$tmp/$name.log" | head -5)"
    fi
}

# on_device NAME DEVICE: the trainer's device line names it.
on_device() { grep -Eq "device: $2" "$tmp/$1.log" || { grep "device:" "$tmp/$1.log"; return 1; }; }

# compare REF OTHER FROM: the losses of the steps after FROM (all of them
# for 0) are those of 1..10, within 1e-4 relative of REF's.
compare() {
    python3 - "$tmp/$1/metrics.jsonl" "$tmp/$2/metrics.jsonl" "$3" <<'PY'
import json, sys
def losses(p):
    return {r["step"]: r["loss"] for r in map(json.loads, open(p)) if "loss" in r}
ref, got, start = losses(sys.argv[1]), losses(sys.argv[2]), int(sys.argv[3])
steps = sorted(s for s in got if s > start)
assert steps == list(range(start + 1, 11)), f"steps run: {steps}, want {start + 1}..10"
for s in steps:
    d = abs(got[s] - ref[s]) / abs(ref[s])
    assert d <= 1e-4, f"step {s}: loss {got[s]!r} vs {ref[s]!r} (relative {d:.3g}, tolerance 1e-4)"
print(f"steps {steps[0]}..{steps[-1]} within 1e-4")
PY
}

# resume FROM NAME DEVICE: FROM's step-5 checkpoint as NAME's latest, then
# NAME resumes from it on DEVICE.
resume() {
    mkdir -p "$tmp/$2/checkpoints"
    cp "$tmp/$1/checkpoints/step-00000005.h5" "$tmp/$2/checkpoints/"
    echo step-00000005.h5 >"$tmp/$2/checkpoints/latest"
    train "$2" "$3" --resume
    check "$2: resumed from $1's step-5 checkpoint" grep -Eq "resumed from .*step-00000005.h5 \(step 5" \
        "$tmp/$2.log"
}

train gpu "$gpu"
check "gpu: trained on $gpu (its device line)" on_device gpu "$gpu"
train cpu cpu
check "cpu: trained on cpu (its device line)" on_device cpu cpu
check "gpu: losses of 10 steps within 1e-4 of the cpu's" compare cpu gpu 0
check "gpu: its step-5 checkpoint passes weft-ckpt verify" "$bin/weft-ckpt" verify \
    "$tmp/gpu/checkpoints/step-00000005.h5"
resume gpu gpu-to-cpu cpu
check "gpu-to-cpu: steps 6-10 within 1e-4 of the uninterrupted $gpu run" compare gpu gpu-to-cpu 5
resume cpu cpu-to-gpu "$gpu"
check "cpu-to-gpu: resumed on $gpu (its device line)" on_device cpu-to-gpu "$gpu"
check "cpu-to-gpu: steps 6-10 within 1e-4 of the uninterrupted cpu run" compare cpu cpu-to-gpu 5
finish
