#!/bin/bash
# test_fuzz.sh -- runs every libFuzzer target briefly (WEFT_FUZZ_SECONDS, 10 by
# default) from its seed corpus in tests/fuzz/corpus/<target>/. A crash, a
# sanitizer report or a leak fails the check and leaves the reproducer in the
# test's scratch directory, printed below.
. "$(dirname "$0")/../lib.sh"
secs=${WEFT_FUZZ_SECONDS:-10}
found=0
for bin in "$WEFT_ROOT/$BUILD"/tests/fuzz/fuzz_*; do
    [ -x "$bin" ] || continue
    found=1
    name=$(basename "$bin")
    seeds="$WEFT_ROOT/tests/fuzz/corpus/$name"
    work="$TMPDIR_TEST/$name"
    mkdir -p "$work/corpus"
    [ -d "$seeds" ] && cp -r "$seeds"/. "$work/corpus/"
    if (cd "$work" && "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 corpus >"$work/log" 2>&1); then
        ok "$name: ${secs}s without a crash ($(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$work/log" | grep -Eo '[0-9]+$') inputs)"
    else
        not_ok "$name" "$(grep -E -A20 'ERROR|SUMMARY|crash-|leak-' "$work/log" | head -60)"
    fi
done
[ "$found" -eq 1 ] || not_ok "fuzz targets built" "none under $BUILD/tests/fuzz"
