#!/bin/bash
# test_campaign.sh -- the fault campaign's fixed-seed sample in make test:
# tests/faults/campaign.py (docs/operations.md, "Fault injection") with seed
# 1, a few trials (a kill or stall of a random rank at a random registry
# point, or a write error in a save; then latest verified, the resume bitwise
# equal to an uninterrupted run, metrics.jsonl whole). Each trial is one TAP
# line here. `make faults N=...` runs more.
. "$(dirname "$0")/../lib.sh"
python3 "$(dirname "$0")/campaign.py" --bin "$WEFT_BIN" --seed "${WEFT_CAMPAIGN_SEED:-1}" \
    --trials "${WEFT_CAMPAIGN_TRIALS:-8}" >"$TMPDIR_TEST/campaign.out" 2>&1
rc=$?
while IFS= read -r line; do
    case "$line" in
    "ok "*) ok "${line#ok * - }" ;;
    "not ok "*) not_ok "${line#not ok * - }" "$(grep -A8 -F "$line" "$TMPDIR_TEST/campaign.out" | sed -n '2,9p' | sed -n '/^#/p' | sed 's/^# //')" ;;
    esac
done <"$TMPDIR_TEST/campaign.out"
grep '^# campaign' "$TMPDIR_TEST/campaign.out"
[ "$rc" -eq 0 ] || grep -q '^not ok' "$TMPDIR_TEST/campaign.out" ||
    not_ok "campaign.py exited $rc" "$(tail -20 "$TMPDIR_TEST/campaign.out")"
echo "1..$TAP_N"
