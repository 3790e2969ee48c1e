#!/bin/bash
# bench_memory.sh -- per-rank peak resident memory of weft-train for
# train.recompute none / block and parallel.zero 0 / 1 / 2 / 3 on NP ranks (default
# 4) with a GPT-2 of 57M parameters (L 8, NH 12, C 768, T 128, micro-batch
# 4, a byte-level vocabulary), a few steps each: each rank's measured peak
# (VmHWM, logged by the run at its end) beside what weft-train --plan
# predicted for it, run as one process before the job, and the planned
# activations. Prints a markdown table (bench/README.md has one).
#
#   bench/bench_memory.sh [NP] [STEPS]      (BUILD=build-x for another tree,
#                                            ZEROS="2 3" for some stages only)
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
np=${1:-4} steps=${2:-2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-bench-memory.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
for i in $(seq 2000); do echo "the quick brown fox jumps over the lazy dog. a stitch in time saves nine"; done >"$tmp/ds.txt"
"$BUILD/bin/weft-data" prepare -o "$tmp/ds" "$tmp/ds.txt" >/dev/null || exit 1
model=(--data.path="$tmp/ds" --model.n_layer=8 --model.n_head=12 --model.n_embd=768 --model.context=128
       --train.seq_len=128 --train.micro_batch=4 --train.global_batch=$((4 * np)) --train.steps="$steps"
       --optim.warmup=1 --checkpoint.at_end=false --train.eval_batches=0)
echo "| ZeRO | recompute | rank | planned activations (MiB) | planned total (MiB) | measured peak (MiB) | plan error |"
echo "|---|---|---|---|---|---|---|"
for zero in ${ZEROS:-0 1 2 3}; do
    for rc in none block; do
        keys=(--parallel.zero="$zero" --train.recompute="$rc")
        "$BUILD/bin/weft-train" "${model[@]}" "${keys[@]}" --plan --world-size "$np" 2>/dev/null >"$tmp/plan"
        mpirun -np "$np" "$BUILD/bin/weft-train" "${model[@]}" "${keys[@]}" --run.dir="$tmp/run-$zero-$rc" \
            >"$tmp/log" 2>&1 || { echo "run failed: $(tail -3 "$tmp/log")" >&2; continue; }
        for r in $(seq 0 $((np - 1))); do
            row=$(grep "^  rank $r (" "$tmp/plan")
            acts=$(echo "$row" | sed -n 's/.*activations \([0-9.]*\),.*/\1/p')
            plan=$(echo "$row" | sed -n 's/.*total \([0-9.]*\) MiB/\1/p')
            peak=$(sed -n "s/.*memory: rank $r planned [0-9.]* MiB, peak resident \([0-9.]*\) MiB.*/\1/p" "$tmp/log")
            err=$(python3 -c "print(f'{100 * ($plan - $peak) / $peak:+.1f}%')")
            echo "| $zero | $rc | $r | $acts | $plan | $peak | $err |"
        done
    done
done
