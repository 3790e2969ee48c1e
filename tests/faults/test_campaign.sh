#!/bin/bash
# test_campaign.sh -- the fault campaign's fixed-seed sample in make test:
# tests/faults/campaign.py (docs/operations.md, "Fault injection") with seed
# 1: a few trials of the one-tier kinds (a kill or stall of a random rank at
# a random registry point, or a write error in a save), then one trial of
# each newer kind in turn (drain: a kill or stall mid-drain with two tiers;
# drain_fail: failed drain attempts; link: a namespace host's data link cut
# mid-allreduce, a TAP skip where namespaces cannot be made); each checks
# latest verified, the resume bitwise equal to an uninterrupted run,
# metrics.jsonl whole. Each trial is one TAP line here. `make faults N=...`
# runs more.
. "$(dirname "$0")/../lib.sh"
seed=${WEFT_CAMPAIGN_SEED:-1}
# comm.timeout 10 s, not campaign.py's 3: at a load of 13-19 on 2 cores
# un-faulted runs timed out at 3 s and at 5 s in a start-up collective
# (allreduce #3: one rank slow to start, the other waiting).
timeout=${WEFT_CAMPAIGN_TIMEOUT:-10}
# relay OUT RC: campaign.py's TAP lines into this script's numbering.
relay() {
    local out=$1 rc=$2 line
    while IFS= read -r line; do
        case "$line" in
        "ok "*"# SKIP "*) skip "$(sed 's/^ok [0-9]* - \(.*\) # SKIP .*/\1/' <<<"$line")" "${line##*# SKIP }" ;;
        "ok "*) ok "${line#ok * - }" ;;
        "not ok "*) not_ok "${line#not ok * - }" "$(grep -A8 -F "$line" "$out" | sed -n '2,9p' | sed -n '/^#/p' | sed 's/^# //')" ;;
        esac
    done <"$out"
    grep '^# campaign' "$out"
    [ "$rc" -eq 0 ] || grep -q '^not ok' "$out" || not_ok "campaign.py exited $rc" "$(tail -20 "$out")"
}
python3 "$(dirname "$0")/campaign.py" --bin "$WEFT_BIN" --seed "$seed" --timeout "$timeout" --trials "${WEFT_CAMPAIGN_TRIALS:-8}" \
    --only start,step,eval,end,save_open,save_data,save_commit,save_latest,resume,enospc_save,eio_save,short_save,timed \
    >"$TMPDIR_TEST/campaign.out" 2>&1
relay "$TMPDIR_TEST/campaign.out" $?
python3 "$(dirname "$0")/campaign.py" --bin "$WEFT_BIN" --seed "$seed" --timeout "$timeout" --trials 3 --round-robin \
    --only drain,drain_fail,link >"$TMPDIR_TEST/campaign-new.out" 2>&1
relay "$TMPDIR_TEST/campaign-new.out" $?
echo "1..$TAP_N"
