#!/bin/bash
# recompute_time.sh -- what train.recompute = block costs and saves, in one
# run: bench_memory.sh's GPT-2 of 57M parameters (L 8, NH 12, C 768, T 128,
# micro-batch 4) on NP ranks (default 4) trained with recompute none, then
# block, then none again (the machine's drift shows as the two "none" runs'
# difference), each STEPS steps; prints each run's median ms per step after
# the first two steps, the activation bytes --plan gives rank 0 for each
# setting, and the ratios (issue 17's targets: activations cut >= 3x for
# <= 1.4x the step time).
#
#   bench/recompute_time.sh [NP] [STEPS]   (BUILD=build-x for another tree)
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
np=${1:-4} steps=${2:-8}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-bench-recompute.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp/ds.txt" <<'PY'
import random, sys
random.seed(1)
words = "the quick brown fox jumps over the lazy dog a stitch in time saves nine".split()
open(sys.argv[1], "w").write(" ".join(random.choice(words) for _ in range(400000)))
PY
"$BUILD/bin/weft-data" prepare -o "$tmp/ds" "$tmp/ds.txt" >/dev/null || exit 1
args=(--data.path="$tmp/ds" --model.n_layer=8 --model.n_head=12 --model.n_embd=768 --model.context=128
      --train.seq_len=128 --train.micro_batch=4 --train.global_batch=$((4 * np)) --train.steps="$steps"
      --train.log_interval=1 --train.eval_interval=0 --train.eval_batches=0 --optim.warmup=1
      --checkpoint.at_end=false --checkpoint.every=0 --run.peak_flops=1e11)
acts() { "$BUILD/bin/weft-train" "${args[@]}" --train.recompute="$1" --plan --world-size "$np" 2>/dev/null |
         sed -n 's/.*rank 0 .*activations \([0-9.]*\),.*/\1/p'; }
median_ms() { python3 -c '
import json, statistics, sys
ms = [json.loads(l)["ms_per_step"] for l in open(sys.argv[1])][2:]
print(f"{statistics.median(ms):.1f}")' "$1/metrics.jsonl"; }
declare -A ms
for run in none1 block none2; do
    rc=${run%[12]}
    mpirun -np "$np" "$BUILD/bin/weft-train" "${args[@]}" --train.recompute="$rc" --run.dir="$tmp/$run" \
        >"$tmp/$run.log" 2>&1 || { echo "recompute=$rc failed:"; tail -5 "$tmp/$run.log"; exit 1; }
    ms[$run]=$(median_ms "$tmp/$run")
done
a_none=$(acts none) a_block=$(acts block)
echo "recompute  ms/step (median after 2)  activations per rank (--plan, MiB)"
echo "none       ${ms[none1]} / ${ms[none2]}           $a_none"
echo "block      ${ms[block]}                  $a_block"
python3 -c '
import sys
n1, n2, b, an, ab = map(float, sys.argv[1:])
print(f"step time block / none: {b / ((n1 + n2) / 2):.2f}x (target <= 1.4x; the two none runs differ by {abs(n1 - n2) / min(n1, n2):.0%})")
print(f"activations none / block: {an / ab:.2f}x (target >= 3x)")' "${ms[none1]}" "${ms[none2]}" "${ms[block]}" "$a_none" "$a_block"
