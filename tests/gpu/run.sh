#!/bin/bash
# run.sh -- every GPU check in one command, on a machine with a GPU (never
# part of `make test`, which runs without one): every CUDA kernel of
# libweft-cuda.so against the CPU's f64 kernels (kernels_check, TAP), the
# device layer's cuda implementation on every GPU (device_check: arenas,
# copies, streams and events, the run.device selection and training
# refusal; TAP), the nccl backend's conformance on one rank per GPU (TAP),
# then its allreduce
# benchmark beside a device-to-device copy, then training on cuda (issue
# 20's first milestone; weft-train lets it through only with
# WEFT_GPU_CHECK=1, which this script sets: docs/operations.md): 1 rank,
# 50 steps of the demo GPT-2 (examples/configs/demo.ini) and of the demo
# Llama (llama-demo.ini) in f32 on cuda against the same on cpu, every
# step's loss within 1e-4 relative
# (tests/gpu/loss_compare.py on the two metrics.jsonl), and no device-layer
# allocation in 5 steady-state steps on cuda (tests/mpi/noalloc_step; its
# host allocation count is printed, not judged: cuBLASLt's descriptors are
# made per matmul); then tests/gpu/ckpt_cross.sh (a GPU checkpoint resumes
# on the cpu and the other way round). The training checks need weft-train
# and noalloc_step,
# which link Open MPI, parallel HDF5, oneDNN/OpenBLAS, xxhash and libsodium:
# a GPU machine without them (the lent ones: CUDA and python3 only, no
# package registry) runs the whole script from a bundle made here by
# tests/gpu/bundle.sh -- the programs and Debian's .debs of every library
# they load, Open MPI's runtime included, unpacked with dpkg -x, never
# installed (docs/operations.md, "GPU checks on a lent machine"). Every
# check prints ok / not ok. Ends with "N passed, N failed" like tests/run.sh.
#
#   tests/gpu/run.sh             build (make gpu-tests, the programs and
#                                noalloc_step) and run
#   tests/gpu/run.sh --no-build  run binaries already in $BUILD/tests/gpu
#   tests/gpu/run.sh --no-build --kernels   only kernels_check and
#                                device_check: they need nothing but the CUDA
#                                runtime and cuBLASLt, so they (and
#                                $BUILD/lib/libweft-cuda.so) built here run
#                                on a GPU machine that lacks MPI and HDF5
#   tests/gpu/run.sh --bundle DIR   no build: the programs, libraries and
#                                mpirun of a bundle (tests/gpu/bundle.sh),
#                                through DIR/env.sh; combines with --kernels
#                                or --train
#   tests/gpu/run.sh --no-build --train   only the training checks;
#                                WEFT_GPU_TRAIN_DEVICE=cpu runs their "cuda"
#                                side (and ckpt_cross.sh's) on the cpu, which checks the
#                                comparison itself on a machine without a GPU
set -u
here=$PWD
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
build=1 kernels_only=0 train_only=0 bundle=
usage="usage: tests/gpu/run.sh [--no-build | --bundle DIR] [--kernels | --train]"
while [ $# -gt 0 ]; do
    case $1 in
    --no-build) build=0 ;;
    --bundle) [ $# -gt 1 ] || { echo "$usage" >&2; exit 64; }; bundle=$2; shift ;;
    --bundle=*) bundle=${1#--bundle=} ;;
    --kernels) kernels_only=1 ;;
    --train) train_only=1 ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "$usage" >&2; exit 64 ;;
    esac
    shift
done
if [ -n "$bundle" ]; then
    case $bundle in /*) ;; *) bundle=$here/$bundle ;; esac
    [ -f "$bundle/env.sh" ] ||
        { echo "run.sh: $bundle/env.sh not found: make the bundle with tests/gpu/bundle.sh" >&2; exit 66; }
    # shellcheck source=tests/gpu/bundle_env.sh
    . "$bundle/env.sh" || { echo "0 passed, 1 failed (the bundle $bundle)"; exit 1; }
    BUILD=$WEFT_BUNDLE_BUILD build=0
    echo "# bundle $bundle: $(head -1 "$bundle/MANIFEST" 2>/dev/null)"
    # every library the bundled programs load resolves here (CUDA's are the
    # machine's: on a machine without them only the cpu checks can run)
    missing=$(for f in "$BUILD"/bin/* "$BUILD"/lib/*.so "$BUILD"/tests/*/* "$(command -v mpirun)"; do
        ldd "$f" 2>&1 | grep 'not found' | grep -v -E 'libcudart|libcublas|libnccl' | sed "s|^|${f#"$BUILD"/}: |"
    done | sort -u)
    if [ -n "$missing" ]; then
        echo "not ok - the bundle's programs find every library they link (LD_LIBRARY_PATH from $bundle/env.sh)"
        echo "$missing" | sed 's/^[[:space:]]*/#   /'
        echo "0 passed, 1 failed"; exit 1
    fi
fi
if [ "$build" = 1 ]; then
    make -j"$(nproc)" BUILD="$BUILD" gpu-tests all "$BUILD/tests/mpi/noalloc_step" >/dev/null ||
        { echo "0 passed, 1 failed (build)"; exit 1; }
fi

# --- training on cuda: tpass/tfail ------------------------------------------
tpass=0 tfail=0
tap() { # tap OK NAME [DETAIL]: one check's line
    if [ "$1" = 0 ]; then echo "ok - $2"; tpass=$((tpass + 1)); else echo "not ok - $2"; tfail=$((tfail + 1)); fi
    [ -z "${3:-}" ] || echo "$3" | head -5 | sed 's/^/#   /'
}
# run_pair NAME CONFIG: 50 steps of CONFIG on $dev and on cpu, losses compared
run_pair() {
    local name=$1 config=$2 out rc
    local train=("$BUILD/bin/weft-train" --config "$config" --data.path="$w/demo" --train.steps=50
                 --train.log_interval=1 --train.eval_interval=0 --train.precision=f32 --checkpoint.at_end=false
                 --run.overwrite=true)
    # 1 rank, no mpirun (a singleton): the milestone's configuration
    out=$(WEFT_GPU_CHECK=1 timeout -k 5 240 "${train[@]}" --run.device="$dev" --run.dir="$w/$name-dev" 2>&1); rc=$?
    tap $rc "$name: 1 rank, 50 steps of $config in f32 on $dev (WEFT_GPU_CHECK=1)" \
        "$(echo "$out" | grep -E 'device:|ERROR|done:|error while loading|Framework:|Component:' | tail -4)"
    out=$(timeout -k 5 240 "${train[@]}" --run.device=cpu --run.dir="$w/$name-cpu" 2>&1); rc=$?
    tap $rc "$name: the same 50 steps on cpu (the reference)" "$(echo "$out" | grep -E 'ERROR|done:|error while loading|Framework:|Component:' | tail -2)"
    out=$(python3 tests/gpu/loss_compare.py "$w/$name-cpu/metrics.jsonl" "$w/$name-dev/metrics.jsonl" --rel 1e-4 \
          --steps 50 2>&1)
    tap $? "$name: $dev vs cpu, every step's loss within 1e-4 relative" "$out"
}
train_checks() {
    local dev=${WEFT_GPU_TRAIN_DEVICE:-cuda} w out
    w=$(mktemp -d)
    examples/corpus/make-corpus.sh "$w/corpus.txt" &&
        "$BUILD/bin/weft-data" prepare -o "$w/demo" --val-fraction 0.05 "$w/corpus.txt" >"$w/data.log" 2>&1
    tap $? "the demo dataset" "$(tail -3 "$w/data.log")"
    run_pair gpt2 examples/configs/demo.ini
    run_pair llama examples/configs/llama-demo.ini
    # no device allocation in 5 steady-state steps (noalloc_step counts through the device layer)
    out=$(WEFT_GPU_CHECK=1 timeout -k 5 120 "$BUILD/tests/mpi/noalloc_step" --data.path="$w/demo" --model.n_layer=2 \
          --model.n_head=2 --model.n_embd=32 --model.context=32 --train.seq_len=32 --train.micro_batch=2 \
          --train.global_batch=8 --optim.warmup=2 --comm.backend=shm --run.device="$dev" --run.dir="$w/noalloc" 2>&1)
    echo "$out" | grep -q "^# measured: steps ran, .* device ${dev}[:0-9]*: 0 device-layer allocations"
    tap $? "no device-layer allocation in 5 steady-state steps on $dev" "$(echo "$out" | grep -E '^# measured|ERROR' | head -2)"
    rm -rf "$w"
    # checkpoints crossing between the device and the cpu: its own ok / not ok lines
    out=$(BUILD="$BUILD" timeout -k 5 300 tests/gpu/ckpt_cross.sh --gpu "$dev" 2>&1); rc=$?
    echo "$out" | grep -E '^(not )?ok|^#'
    local p f
    p=$(echo "$out" | grep -c '^ok'); f=$(echo "$out" | grep -c '^not ok')
    [ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || f=$((f + 1)) # died without saying why: one failure
    tpass=$((tpass + p)); tfail=$((tfail + f))
}
if [ "$train_only" = 1 ]; then
    train_checks
    echo "$tpass passed, $tfail failed"
    [ "$tfail" -eq 0 ]
    exit
fi
if ! ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU'); then
    echo "no GPU here (nvidia-smi found none)"; echo "0 passed, 1 failed"; exit 1
fi
echo "# $ngpu GPU(s): $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
log=$(mktemp)
timeout -k 5 300 "$BUILD/tests/gpu/kernels_check" "$BUILD/lib" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
kpass=$(grep -c '^ok ' "$log"); kfail=$(grep -c '^not ok ' "$log")
[ "$rc" -eq 0 ] || [ "$kfail" -gt 0 ] || kfail=$((kfail + 1))
timeout -k 5 300 "$BUILD/tests/gpu/device_check" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
p=$(grep -c '^ok ' "$log"); f=$(grep -c '^not ok ' "$log")
[ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || f=$((f + 1)) # died without saying why: one failure
kpass=$((kpass + p)); kfail=$((kfail + f))
if [ "$kernels_only" = 1 ]; then
    rm -f "$log"
    echo "$kpass passed, $kfail failed"
    [ "$kfail" -eq 0 ]
    exit
fi
timeout -k 5 600 mpirun -np "$ngpu" --oversubscribe "$BUILD/tests/gpu/nccl_check" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
pass=$(grep -c '^ok ' "$log"); fail=$(grep -c '^not ok ' "$log")
[ "$rc" -eq 0 ] || [ "$fail" -gt 0 ] || fail=$((fail + 1))
timeout -k 5 600 mpirun -np "$ngpu" --oversubscribe "$BUILD/tests/gpu/nccl_bench" 2>&1
rm -f "$log"
train_checks
pass=$((pass + kpass + tpass)); fail=$((fail + kfail + tfail))
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
