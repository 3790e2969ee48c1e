#!/bin/bash
# run.sh -- every GPU check in one command, on a machine with a GPU (never
# part of `make test`, which runs without one): every CUDA kernel of
# libweft-cuda.so against the CPU's f64 kernels (kernels_check, TAP), the
# device layer's cuda implementation on every GPU (device_check: arenas,
# copies, streams and events, the run.device selection and training
# refusal; TAP), the nccl backend's conformance on one rank per GPU (TAP),
# then its allreduce
# benchmark beside a device-to-device copy. Ends with "N passed, N failed"
# like tests/run.sh.
#
#   tests/gpu/run.sh             build (make gpu-tests) and run
#   tests/gpu/run.sh --no-build  run binaries already in $BUILD/tests/gpu
#   tests/gpu/run.sh --no-build --kernels   only kernels_check and
#                                device_check: they need nothing but the CUDA
#                                runtime and cuBLASLt, so they (and
#                                $BUILD/lib/libweft-cuda.so) built here run
#                                on a GPU machine that lacks MPI and HDF5
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
build=1 kernels_only=0
for a in "$@"; do
    case $a in
    --no-build) build=0 ;;
    --kernels) kernels_only=1 ;;
    *) echo "usage: tests/gpu/run.sh [--no-build] [--kernels]" >&2; exit 64 ;;
    esac
done
if [ "$build" = 1 ]; then
    make -j"$(nproc)" gpu-tests >/dev/null || { echo "0 passed, 1 failed (build)"; exit 1; }
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
pass=$((pass + kpass)); fail=$((fail + kfail))
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
