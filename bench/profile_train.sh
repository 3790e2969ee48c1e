#!/bin/bash
# profile_train.sh -- where a CPU training step's time goes: perf samples of
# weft-train on examples/configs/bench-cpu.ini (2 data-parallel ranks, one
# thread each, the dataset bench_train makes), grouped by what the code
# does: matmul (oneDNN's JIT kernels and library), bf16 rounding (weights'
# copies and per-call operands), attention (its loops and the per-head
# OpenBLAS products), norm (LayerNorm/RMSNorm), residual, activation
# (GELU/SwiGLU), xent, embedding, optimizer (AdamW, norms), comm (MPI,
# weft's collectives, the shm segment, and waiting on them: the clock
# polled, yields), start-up (initialisation, first-touch page faults), and
# the rest (the kernel's own work mostly). The peak measurement is skipped
# (run.peak_flops given); start-up is in it, so more steps dilute it.
#
#   bench/profile_train.sh [--precision f32|bf16] [--family gpt2|llama] [--steps N] [--build DIR]
#
# Needs perf (linux-perf) allowed to sample (perf_event_paranoid <= 2 for a
# process's own threads).
set -eu
precision=f32 family=gpt2 steps=8 build=build
while [ $# -gt 0 ]; do
    case $1 in
        --precision=*) precision=${1#*=} ;; --precision) precision=$2; shift ;;
        --family=*) family=${1#*=} ;; --family) family=$2; shift ;;
        --steps=*) steps=${1#*=} ;; --steps) steps=$2; shift ;;
        --build=*) build=${1#*=} ;; --build) build=$2; shift ;;
        --help|-h) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "profile_train.sh: unknown option $1 (see --help)" >&2; exit 64 ;;
    esac
    shift
done
command -v perf >/dev/null || { echo "profile_train.sh: perf is not installed (Debian: linux-perf)" >&2; exit 69; }
data=$build/bench-data/synthetic-v8192
[ -f "$data/manifest" ] || { echo "profile_train.sh: no $data: run $build/bench/bench_train once first" >&2; exit 66; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-profile.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
args=(--config examples/configs/bench-cpu.ini --data.path="$data" --run.dir="$tmp/run" --train.steps="$steps"
      --train.precision="$precision" --run.peak_flops=1e12 --checkpoint.every=0 --checkpoint.at_end=false)
[ "$family" = llama ] && args+=(--model.family=llama --model.n_kv_head=2 --model.ffn_dim=800 --model.tie_embeddings=true)
perf record -q -F 499 -o "$tmp/perf.data" -- mpirun -np 2 "$build/bin/weft-train" "${args[@]}" >"$tmp/train.log" 2>&1 \
    || { echo "profile_train.sh: the run failed:" >&2; tail -5 "$tmp/train.log" >&2; exit 70; }
perf report -i "$tmp/perf.data" --no-children --sort dso,sym --comm weft-train -F overhead,dso,sym --stdio 2>/dev/null \
    | python3 -c '
import re, sys
groups = [  # (category, pattern on "dso symbol"), first match wins
    ("matmul", r"\[JIT\]|libdnnl|libgomp|weft_matmul|colsum_acc"),
    ("bf16 rounding", r"round_avx512|weft_bf16_round|round1"),
    ("attention", r"attention|gqa|libopenblas|rope|row_exp_sum|row_exp_shift|exp_shift|row_dot|fa_|causal_softmax"),
    ("norm", r"layernorm|rmsnorm|ln_back|ln_res|rms_res"),
    ("residual", r"residual|row_add|row_acc"),
    ("activation", r"gelu|swiglu"),
    ("xent", r"xent|sum_exp|exp_affine|__expf|__ieee754_log|__log"),  # libm exp/log: per row and per tile
    ("embedding", r"embedding"),
    ("optimizer", r"adamw|sumsq|optim"),
    ("comm", r"libmpi|mca_|libopen-pal|libopen-rte|libevent|libpmix|shm|weft_comm|reduce|advance|request|"
             r"clock_gettime|sched_yield|__schedule|futex"),  # the shm backend polls the clock while it waits
    ("start-up", r"init_values|__cos|__sin|clear_page|fill|manifest"),
]
tot, by, top = 0.0, {}, {}
for line in sys.stdin:
    m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+(.*)$", line)
    if not m:
        continue
    pct, dso, sym = float(m.group(1)), m.group(2), m.group(3).strip()
    key = dso + " " + sym
    cat = next((c for c, p in groups if re.search(p, key)), "other")
    by[cat] = by.get(cat, 0) + pct
    tot += pct
    if cat == "other":
        top[key] = top.get(key, 0) + pct
for c, _ in groups + [("other", "")]:
    print("  %-14s %5.1f %%" % (c, 100 * by.get(c, 0) / tot if tot else 0))
print("  (largest in other: %s)" % ", ".join("%s %.1f%%" % (k.split()[-1][:40], v) for k, v in sorted(top.items(), key=lambda kv: -kv[1])[:4]))
'
grep -o "[0-9]* tok/s | [0-9.]* ms" "$tmp/train.log" | tail -1 | sed "s/^/  last step: /"
