#!/bin/bash
# zero_memory.sh -- what ZeRO-0/1/2/3 cost in memory, measured: weft-train on
# 4 data-parallel ranks with a GPT-2 of 63.8 M parameters (L 9, C 768, byte
# vocabulary, T 64, micro-batch 1: activations are small beside the model
# state), 3 steps each; prints every rank's peak resident set (GNU time's
# %M: the kernel's high-water mark, so the transient full gradient buffer of
# ZeRO-2's backward and ZeRO-3's gathered layers count) beside the model
# state the stage implies per rank (parameters P, gradients G, AdamW m and v;
# f32; D = 4), and the ZeRO-0 run minus that state as the baseline every run
# carries (MPI, oneDNN, the loader, activations, the binary).
#
#   bench/zero_memory.sh [BUILD]          (BUILD: build tree, default build)
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-${BUILD:-build}}
bin="$PWD/$BUILD/bin"
work=$(mktemp -d "${TMPDIR:-/tmp}/weft-zero-mem.XXXXXX")
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
for i in $(seq 2000); do echo "the quick brown fox jumps over the lazy dog. a stitch in time saves nine"; done >"$work/t.txt"
"$bin/weft-data" prepare -o "$work/ds" "$work/t.txt" >/dev/null
model=(--data.path="$work/ds" --model.n_layer=9 --model.n_head=12 --model.n_embd=768 --model.context=64
       --train.seq_len=64 --train.micro_batch=1 --train.global_batch=4 --train.steps=3 --train.eval_interval=0
       --train.threads=1 --checkpoint.at_end=false)
N=63.8 # M parameters: 9 x (12 C^2 + 13 C) + (256 + 64) C + 2 C
printf '%-8s %-34s %-22s %s\n' "stage" "peak RSS per rank, MiB (min-max)" "model state, MiB" "RSS - state, MiB"
for z in 0 1 2 3; do
    mpirun -np 4 /usr/bin/time -f "peak %M" "$bin/weft-train" "${model[@]}" --parallel.zero=$z \
        --run.dir="$work/run$z" >"$work/z$z.log" 2>&1 || { echo "ZeRO-$z failed: see"; tail -5 "$work/z$z.log"; exit 70; }
    read -r lo hi < <(awk '/^peak/ {k = $2 / 1024; if (!n++ || k < lo) lo = k; if (k > hi) hi = k} END {printf "%.0f %.0f\n", lo, hi}' "$work/z$z.log")
    # bytes per parameter a rank holds: P G m v at 4 bytes, sharded by the stage over D = 4
    state=$(awk -v z=$z -v n=$N 'BEGIN { d = 4; b = z == 0 ? 16 : z == 1 ? 8 + 8 / d : z == 2 ? 4 + 12 / d : 16 / d;
                                         printf "%.0f", n * 1e6 * b / 1048576 }')
    printf '%-8s %-34s %-22s %s\n' "ZeRO-$z" "$lo - $hi" "$state" "$((hi - state))"
done
