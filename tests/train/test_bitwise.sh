#!/bin/bash
# test_bitwise.sh -- the library trainer computes what the tool's own step
# did before it moved into train/: the demo and bench-cpu configurations
# (examples/configs/) give the same loss at each of 30 steps on 1, 2 and 4
# ranks (dp 2, tp 2, pp 2 under 1F1B, tp 2 x pp 2) as the values recorded
# before the move, in tests/train/bitwise_losses.txt (17 significant
# digits, as metrics.jsonl writes them) -- within 1e-5 relative at every
# step, since the f32 linear layer moved to oneDNN (kernels/matmul_dnnl.c),
# which sums in another order than the OpenBLAS of the recording (measured:
# at most 1.3e-8); and the 1- and 4-rank layouts run twice and must give
# bitwise the same losses both times (every resume test relies on it too). The demo runs on its generated corpus; bench-cpu
# on 200k tokens of an LCG over vocabulary 8192, at seq_len 64 so the suite
# stays short (the config is otherwise unchanged).
#
#   WEFT_RECORD=FILE tests/train/test_bitwise.sh   writes the values instead
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train"
ref="$WEFT_ROOT/tests/train/bitwise_losses.txt"
d=$TMPDIR_TEST

"$WEFT_ROOT/examples/corpus/make-corpus.sh" "$d/corpus.txt" 4000
"$WEFT_BIN/weft-data" prepare -o "$d/demo-ds" --val-fraction 0.05 "$d/corpus.txt" >/dev/null
python3 - "$d/tokens.u16" <<'PY'
import struct, sys
s, out = 42, []
for _ in range(200000):
    s = (s * 6364136223846793005 + 1442695040888963407) % (1 << 64)
    out.append((s >> 33) % 8192)
open(sys.argv[1], "wb").write(struct.pack("<%dH" % len(out), *out))
PY
"$WEFT_BIN/weft-data" import -o "$d/bench-ds" --dtype u16 --vocab 8192 "$d/tokens.u16" >/dev/null \
    || not_ok "importing the synthetic tokens"

common=(--train.steps=30 --train.log_interval=1 --train.eval_interval=0 --train.eval_batches=0
        --checkpoint.every=0 --checkpoint.at_end=false)
demo=(--config "$WEFT_ROOT/examples/configs/demo.ini" --data.path="$d/demo-ds")
bench=(--config "$WEFT_ROOT/examples/configs/bench-cpu.ini" --data.path="$d/bench-ds" --train.seq_len=64)
layouts=("1 --parallel.dp=1" "2 --parallel.dp=2" "2 --parallel.tp=2" "2 --parallel.pp=2 --parallel.schedule=1f1b"
         "4 --parallel.tp=2 --parallel.pp=2 --parallel.schedule=1f1b")

losses() { python3 -c 'import json,sys; print(" ".join(repr(json.loads(l)["loss"]) for l in open(sys.argv[1])))' "$1"; }

out=${WEFT_RECORD:-$d/now.txt}
: >"$out" && : >"$d/again.txt"
for cfg in demo bench; do
    for l in "${layouts[@]}"; do
        set -- $l; np=$1; shift
        name="$cfg np=$np $*"
        if [ "$cfg" = demo ]; then args=("${demo[@]}"); else args=("${bench[@]}"); fi
        for pass in 1 2; do
            [ "$pass" = 2 ] && [ -n "${WEFT_RECORD:-}" ] && break
            [ "$pass" = 2 ] && [ "$np" = 2 ] && break # twice: the 1- and 4-rank layouts (time)
            dir="$d/run-$cfg-$np-${#*}-$pass-$RANDOM"
            if weft_mpirun "$np" "$train" "${args[@]}" "${common[@]}" "$@" --run.dir="$dir" >"$dir.log" 2>&1; then
                if [ "$pass" = 1 ]; then to=$out; else to=$d/again.txt; fi
                echo "$name: $(losses "$dir/metrics.jsonl")" >>"$to"
            else
                not_ok "$name trains (run $pass)" "$(tail -5 "$dir.log")"
            fi
        done
    done
done
[ -n "${WEFT_RECORD:-}" ] && { cat "$out"; ok "recorded"; exit 0; }
while IFS= read -r line; do
    name=${line%%:*}
    got=$(grep -F "$name:" "$out")
    again=$(grep -F "$name:" "$d/again.txt")
    if [ -z "$again" ]; then :
    elif [ -n "$got" ] && [ "$got" = "$again" ]; then ok "$name: 30 losses bitwise the same in two runs"
    else not_ok "$name: 30 losses bitwise the same in two runs" "run 1 $got"$'\n'"run 2 $again"; fi
    # prints the largest relative difference; exits 1 past 1e-5 or on a missing loss
    worst=$(python3 -c '
import sys
want, got = (s.split(":", 1)[1].split() if ":" in s else [] for s in sys.argv[1:3])
if len(got) != 30 or len(want) != 30:
    print("%d losses, want 30" % len(got)); sys.exit(1)
worst = max(abs(float(g) - float(w)) / abs(float(w)) for g, w in zip(got, want))
print("%.2e" % worst); sys.exit(worst > 1e-5)' "$line" "$got") \
        && ok "$name: 30 losses within 1e-5 relative of the recorded ones (largest difference $worst)" \
        || not_ok "$name: 30 losses within 1e-5 relative of the recorded ones" "largest difference: $worst"
done <"$ref"
