#!/bin/bash
# test_memory.sh -- the memory account (train/memory.h) and weft-train --plan:
#  - --plan (one process, no model built) predicts each rank's measured peak
#    resident memory (VmHWM, which the run logs per rank at its end) within
#    10%, on 2 ranks (ZeRO-1, 1F1B) and on tp2 x pp2 (GPipe, recompute),
#    and for ZeRO-2 and ZeRO-3 on 4 ranks with a model whose state
#    outweighs its activations (micro-batch 1, 1 MiB buckets, no checkpoint
#    written: the peak is backward's -- the gradients written and not yet
#    reduced, ZeRO-3's gathered blocks -- and counting every gradient, as
#    ZeRO-1 must, would miss it by more than 10%);
#  - the run's own account at start is --plan's, category by category (the
#    same function; only "runtime", measured in each process, may differ);
#  - status.json's "memory", the Prometheus textfile's weft_memory_* and
#    weft-report's memory line carry it;
#  - --memory BYTES: the micro-batch it names fits and the next one does not
#    (checked against --plan's own totals), exit 64 naming the category when
#    nothing fits, 64 for a bad byte count or a layout that is not the world;
#  - train.recompute = block cuts the planned activations at least 3x here.
. "$(dirname "$0")/../lib.sh"
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0
train="$WEFT_BIN/weft-train"
# A GPT-2 of 3.3M parameters, whose buffers (tens of MiB a rank) outweigh
# what no account can know (allocator slack, library caches).
model=(--data.path="$ds" --model.n_layer=4 --model.n_head=4 --model.n_embd=256 --model.context=128
       --train.seq_len=128 --train.micro_batch=4 --train.global_batch=16 --train.steps=2 --optim.warmup=1)

# Each "rank R ... total X MiB" row of a table: "R X".
rows() { sed -n 's/.*rank \([0-9]*\) (dp.* total \([0-9.]*\) MiB.*/\1 \2/p' "$1"; }
# The row text without the runtime (measured in each process) and the total.
cats() { sed -n 's/.*\(rank [0-9]* (dp.*\), runtime .*/\1/p' "$1"; }

# ZeRO-2/3: C 512, so the parameters, gradients and moments (49 MiB each
# unsharded) are most of a rank's peak
state=(--model.n_embd=512 --train.micro_batch=1 --train.global_batch=4 --parallel.bucket_mb=1
       --checkpoint.at_end=false)
for case in "2 --parallel.zero=1 --parallel.schedule=1f1b" \
            "4 --parallel.tp=2 --parallel.pp=2 --parallel.schedule=gpipe --train.recompute=block" \
            "4 ${state[*]} --parallel.zero=2" "4 ${state[*]} --parallel.zero=3 --train.recompute=block"; do
    np=${case%% *}; layout=${case#* }
    run="$TMPDIR_TEST/run-$np-$(echo "$layout" | md5sum | cut -c1-8)"
    # shellcheck disable=SC2086
    "$train" "${model[@]}" $layout --plan --world-size "$np" >"$run.plan" 2>&1
    # shellcheck disable=SC2086
    weft_mpirun "$np" "$train" "${model[@]}" $layout --run.dir="$run" --sched.textfile="$run.prom" \
        --sched.status_interval=0 >"$run.log" 2>&1
    if [ $? -ne 0 ]; then
        not_ok "np=$np $layout: training run" "$(tail -5 "$run.log")"
        continue
    fi
    sed -n 's/.*memory: rank \([0-9]*\) planned [0-9.]* MiB, peak resident \([0-9.]*\) MiB.*/\1 \2/p' "$run.log" \
        >"$run.peak"
    rows "$run.plan" >"$run.planned"
    out=$(python3 - "$run.planned" "$run.peak" "$np" <<'EOF'
import sys
plan = dict(l.split() for l in open(sys.argv[1]))
peak = dict(l.split() for l in open(sys.argv[2]))
bad, worst = [], 0.0
for r in range(int(sys.argv[3])):
    p, m = float(plan.get(str(r), "nan")), float(peak.get(str(r), "nan"))
    err = abs(p - m) / m if m > 0 else float("inf")
    worst = max(worst, err) if err == err else float("inf")
    if not err <= 0.10:
        bad.append(f"rank {r}: --plan {p} MiB, measured peak {m} MiB")
print("; ".join(bad) if bad else f"worst {100 * worst:.1f}%")
sys.exit(1 if bad or len(plan) != int(sys.argv[3]) else 0)
EOF
)
    if [ $? -eq 0 ]; then
        ok "np=$np $layout: --plan predicts every rank's peak resident memory within 10% ($out)"
    else
        not_ok "np=$np $layout: --plan within 10% of each rank's peak" "$out"
    fi
    grep 'memory, planned' "$run.log" >"$run.start"
    if [ -s "$run.start" ] && diff <(cats "$run.start") <(cats "$run.plan" | head -n "$(cats "$run.start" | wc -l)") >/dev/null; then
        ok "np=$np $layout: the run's account at start is --plan's, category by category"
    else
        not_ok "np=$np $layout: the run's account at start is --plan's" "$(diff <(cats "$run.start") <(cats "$run.plan"))"
    fi
    expect_grep '"memory":\{"rank":[0-9]+,"params_bytes":[0-9]+,.*"planned_bytes":[0-9]+,"peak_rss_bytes":[0-9]+' \
        "$run/status.json" "np=$np $layout: status.json has the memory account and the measured peak"
    expect_grep '^weft_memory_bytes\{job_id="[^"]*",rank="[0-9]+",category="activations"\} [0-9]' "$run.prom" \
        "np=$np $layout: the Prometheus textfile has weft_memory_bytes by category"
    expect_grep '^weft_memory_peak_rss_bytes\{job_id="[^"]*"\} [1-9]' "$run.prom" \
        "np=$np $layout: the Prometheus textfile has the measured peak"
    "$WEFT_BIN/weft-report" "$run" >"$run.report" 2>&1
    expect_grep '^memory +rank [0-9]+ plans [0-9.]+ MiB, peak resident [0-9.]+ MiB' "$run.report" \
        "np=$np $layout: weft-report's memory line"
done

# --memory: the largest micro-batch that fits, checked against --plan's totals.
most() { sed -n 's/^  most: rank [0-9]*, \([0-9.]*\) MiB/\1/p'; }
"$train" "${model[@]}" --plan --world-size 2 --memory 300M >"$TMPDIR_TEST/fit" 2>&1
b=$(sed -n 's/.*largest train.micro_batch that fits is \([0-9]*\).*/\1/p' "$TMPDIR_TEST/fit")
if [ -n "$b" ]; then
    at_b=$("$train" "${model[@]}" --plan --world-size 2 --train.micro_batch="$b" --train.global_batch=$((b * 4)) 2>/dev/null | most)
    at_b1=$("$train" "${model[@]}" --plan --world-size 2 --train.micro_batch=$((b + 1)) \
        --train.global_batch=$(((b + 1) * 4)) 2>/dev/null | most)
    if python3 -c "import sys; sys.exit(0 if $at_b <= 300 < $at_b1 else 1)"; then
        ok "--memory 300M: micro-batch $b fits ($at_b MiB), $((b + 1)) does not ($at_b1 MiB)"
    else
        not_ok "--memory 300M: micro-batch $b should fit and $((b + 1)) not" "$at_b MiB, $at_b1 MiB"
    fi
else
    not_ok "--memory 300M names a micro-batch" "$(cat "$TMPDIR_TEST/fit")"
fi
expect_exit 64 "--memory 40M: nothing fits, exit 64" "$train" "${model[@]}" --plan --world-size 2 --memory 40M
echo "$LAST_OUT" | grep -q "grads does not fit on rank 0" && ok "--memory 40M names the category that does not fit" ||
    not_ok "--memory 40M names the category that does not fit" "$LAST_OUT"
expect_exit 64 "--memory 12Q: a bad byte count, exit 64" "$train" "${model[@]}" --plan --memory 12Q
expect_exit 64 "--plan --world-size 3 with parallel.tp = 2: exit 64" "$train" "${model[@]}" --plan --world-size 3 \
    --parallel.tp=2
expect_exit 64 "--memory without --plan: exit 64" "$train" "${model[@]}" --memory 1G

# Recomputation's share, as planned: activations at least 3x smaller here.
acts() { "$train" "${model[@]}" --plan --world-size 1 "$@" 2>/dev/null | sed -n 's/.*activations \([0-9.]*\), comm.*/\1/p'; }
none=$(acts --train.recompute=none) block=$(acts --train.recompute=block)
if python3 -c "import sys; sys.exit(0 if $none >= 3 * $block else 1)"; then
    ok "train.recompute = block plans ${block} MiB of activations, none ${none} MiB (>= 3x)"
else
    not_ok "train.recompute = block cuts the planned activations 3x" "none $none MiB, block $block MiB"
fi
