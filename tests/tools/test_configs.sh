#!/bin/bash
# test_configs.sh -- one configuration for every program: each program that
# takes --config accepts every config in examples/configs (sections it does
# not read belong to the others), weft-info --print-config shows what
# weft-train resolves, and every program's --help exits 0 and lists every
# key it reads.
. "$(dirname "$0")/../lib.sh"
B=$WEFT_BIN
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds"

for cfg in "$WEFT_ROOT"/examples/configs/*.ini; do
    name=$(basename "$cfg")
    expect_exit 0 "weft-info --config $name --print-config" "$B/weft-info" --config "$cfg" --print-config
    expect_exit 0 "weft-info --config $name (collectives check)" "$B/weft-info" --config "$cfg"
    expect_exit 0 "weft-bench --config $name" "$B/weft-bench" --config "$cfg" --op=allreduce --max=1K \
        --iters=1 --warmup=0 --no-mpi
    # The example's dataset is built by make demo; the check reads a real one.
    expect_exit 0 "weft-train --config $name --check" "$B/weft-train" --config "$cfg" --data.path="$ds" \
        --run.dir="$TMPDIR_TEST/run-$name" --check
    [ ! -e "$TMPDIR_TEST/run-$name" ] && ok "weft-train --check with $name creates no run.dir" \
        || not_ok "weft-train --check with $name creates no run.dir"
    "$B/weft-info" --config "$cfg" --print-config >"$TMPDIR_TEST/info.ini" 2>/dev/null
    "$B/weft-train" --config "$cfg" --print-config >"$TMPDIR_TEST/train.ini" 2>/dev/null
    if cmp -s "$TMPDIR_TEST/info.ini" "$TMPDIR_TEST/train.ini"; then
        ok "weft-info --print-config with $name is weft-train's"
    else
        not_ok "weft-info --print-config with $name is weft-train's" \
            "$(diff "$TMPDIR_TEST/info.ini" "$TMPDIR_TEST/train.ini" | head -20)"
    fi
done

# A typo is still caught: of a section, and of a key in a section the program reads.
printf '[trian]\nsteps = 5\n' >"$TMPDIR_TEST/typo.ini"
expect_exit 64 "weft-bench refuses an unknown section" "$B/weft-bench" --config "$TMPDIR_TEST/typo.ini"
printf '[model]\nn_layer = 2\n[comm]\ntimout = 5\n' >"$TMPDIR_TEST/typo.ini"
expect_exit 64 "weft-bench refuses an unknown key in [comm]" "$B/weft-bench" --config "$TMPDIR_TEST/typo.ini"
echo "$LAST_OUT" | grep -q "did you mean 'comm.timeout'" && ok "the unknown key gets a suggestion" \
    || not_ok "the unknown key gets a suggestion" "$LAST_OUT"
printf '[model]\nn_layr = 2\n' >"$TMPDIR_TEST/typo.ini"
expect_exit 64 "weft-info refuses weft-train's keys misspelt" "$B/weft-info" --config "$TMPDIR_TEST/typo.ini" \
    --print-config

# --help of every program exits 0; those that read configuration list every key they read.
for tool in "$B"/weft-*; do
    expect_exit 0 "$(basename "$tool") --help exits 0" "$tool" --help
done
# (run.peak_flops is the trainer's own run.* key: weft-bench trains nothing.)
keys_of() { "$B/weft-train" --config-markdown | sed -n 's/^| `\([a-z_]*\.[a-z_]*\)`.*/\1/p' | grep -E "^($1)\." |
            { [ "$2" = weft-bench ] && grep -v '^run\.peak_flops$' || cat; }; }
for spec in "weft-train:.*" "weft-info:.*" "weft-bench:log|run|comm"; do
    tool=${spec%%:*}
    "$B/$tool" --help >"$TMPDIR_TEST/help" 2>&1
    missing=$(for k in $(keys_of "${spec#*:}" "$tool"); do grep -q "^ *$k " "$TMPDIR_TEST/help" || echo "$k"; done)
    [ -z "$missing" ] && ok "$tool --help lists every key it reads" \
        || not_ok "$tool --help lists every key it reads" "missing: $missing"
done
