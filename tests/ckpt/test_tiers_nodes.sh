#!/bin/bash
# test_tiers_nodes.sh -- checkpoint.local_dir truly node-local: three
# "nodes" (network namespaces on a bridge, DESIGN.md section 7; 2 + 1 + 1
# ranks), each with its own disk mounted at the same local_dir path (a bind
# mount inside the node's own mount namespace, as NVMe per node), and a
# shared checkpoint.dir. Real processes, no sleeps as synchronisation:
#   1. two tiers train exactly as one tier (losses bitwise); every node's
#      local tier holds its own file of each checkpoint, which verifies on its
#      own (weft-ckpt verify) and marks itself a node's part, and each tier
#      names the run (.weft-owner, checkpoint/owner.h); the shared
#      tier's files hold the same tensors as the one-tier run's (weft-ckpt
#      diff, bitwise, and h5py over every dataset), verify, and are no parts;
#   2. resume from the local tier (each node holds step 5 only): bitwise;
#   3. one node's local tier emptied (a requeue elsewhere): resume from the
#      shared tier, bitwise, saying so, each node reading a third of the
#      replicated tensors and sharing them (checkpoint/share.h);
#   4. kill -9 of rank 0 while it assembles step 10 in the shared tier: the
#      shared latest still names step 5, which verifies; the next run
#      resumes from the local tier's step 10 (every node holds it), says so,
#      assembles step 10 in the shared tier at start (the same tensors as
#      the uninterrupted run's), and the shared tier gets its next one;
#   5. a node's part resumes only its own ranks: with the ranks placed
#      otherwise on the nodes the parts are refused and the shared tier used;
#   6. a failed assembly (fail_drain) is retried and reported in status.json;
#      the shared tier full (a small tmpfs): reported, the local tiers intact,
#      training goes on (on_error = continue);
#   7. ZeRO-1, ZeRO-3 and tensor parallel 2: the shared tier as one tier's,
#      the local resume bitwise, and the resume from the shared tier's file
#      (replicas on other nodes each reading part of it, checkpoint/share.h)
#      bitwise.
# Skips where namespaces or mounts cannot be made.
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train" ck="$WEFT_BIN/weft-ckpt"

. "$(dirname "$0")/../netns.sh"
netns_init "wtn$$" 10.213.78 "$TMPDIR_TEST"
# Each node's disk: DISK/<ns>, mounted at $local inside the node's mount
# namespace (ip netns exec gives each command its own, private).
local=$TMPDIR_TEST/local disk=$TMPDIR_TEST/disk
netns_bind "$disk" "$local"
cleanup() {
    netns_down
    umount "$TMPDIR_TEST/small" 2>/dev/null
    [ -n "${WEFT_TEST_KEEP:-}" ] || rm -rf "$TMPDIR_TEST"
}
trap cleanup EXIT
netns_up
case $? in
1) skip "node-local tiers" "$NETNS_WHY"; exit 0 ;;
2) not_ok "namespaces, veths and bridge set up, each host reaching it" "$NETNS_WHY"; exit 0 ;;
esac
SUBNET=$NETNS_SUBNET
mh_mpirun() { # NP ARGS...: weft-train across the namespace hosts, bounded
    local np=$1; shift
    netns_mpirun "$np" -x WEFT_FAULT "$train" "$@"
}
export WEFT_FAULT=""

ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1
tiny=(--data.path="$ds" --model.n_layer=2 --model.n_head=2 --model.n_embd=32 --model.context=32
      --train.seq_len=32 --train.micro_batch=2 --train.global_batch=8 --train.log_interval=1
      --train.eval_interval=0 --train.eval_batches=1 --optim.lr=3e-3 --optim.warmup=3 --comm.timeout=60)
ten=("${tiny[@]}" --train.steps=10 --checkpoint.every=5 --checkpoint.keep_last=5 --checkpoint.local_keep=5)
name() { printf 'step-%08d.h5' "$1"; }
compare() { # REF OTHER FROM: losses of steps FROM+1..10 bitwise equal
    python3 - "$@" <<'PY'
import json, sys
ref = {r["step"]: r["loss"] for r in map(json.loads, open(sys.argv[1]))}
got = {r["step"]: r["loss"] for r in map(json.loads, open(sys.argv[2]))}
start = int(sys.argv[3])
steps = sorted(s for s in got if s > start)
assert steps == list(range(start + 1, 11)), f"steps run after resuming: {steps}"
for s in steps:
    assert got[s] == ref[s], f"step {s}: loss {got[s]!r} vs uninterrupted {ref[s]!r}"
PY
}
# same_tensors A B: every dataset of A equals B's, read by h5py (no weft code)
same_tensors() {
    /usr/bin/python3 - "$@" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = []
a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
assert len(names) > 10, names
for n in names:
    x, y = a[n][()], b[n][()]
    assert x.shape == y.shape and np.array_equal(x, y), f"{n} differs"
    assert a[n].attrs["xxh3_64"] == b[n].attrs["xxh3_64"], f"{n}: checksums differ"
PY
}
is_part() { /usr/bin/python3 -c "import h5py, sys; sys.exit(0 if 'tier_nodes' in h5py.File(sys.argv[1], 'r').attrs else 1)" "$1"; }

# 1. Two tiers on three nodes against one tier on the same three nodes.
ref="$TMPDIR_TEST/ref" two="$TMPDIR_TEST/two"
mh_mpirun 4 "${ten[@]}" --run.dir="$ref" >"$ref.log" 2>&1 || not_ok "one-tier reference run" "$(tail -20 "$ref.log")"
mh_mpirun 4 "${ten[@]}" --run.dir="$two" --checkpoint.local_dir="$local" >"$two.log" 2>&1 ||
    not_ok "two-tier run on 3 nodes" "$(tail -30 "$two.log")"
check "two tiers on 3 node-local disks train exactly as one tier: losses bitwise" \
    compare "$ref/metrics.jsonl" "$two/metrics.jsonl" 0
expect_grep "node-local on 3 nodes" "$two.log" "... the log says each node writes its own file"
for ns in "${NS[@]}"; do
    check "node $ns: its own local tier holds steps 5 and 10, latest 10, and no file in the mount point itself" bash -c "
        [ \"\$(cd '$disk/$ns' && echo step-*.h5)\" = 'step-00000005.h5 step-00000010.h5' ] &&
        grep -qx step-00000010.h5 '$disk/$ns/latest' && ! ls '$local'/step-* 2>/dev/null"
    check "node $ns: its file verifies on its own (weft-ckpt verify) and is marked a node's part" bash -c \
        "'$ck' verify '$disk/$ns/$(name 10)' && $(declare -f is_part); is_part '$disk/$ns/$(name 10)'"
    check "node $ns: its local tier names the run (.weft-owner: XXH3-64 of run.dir/owner.json, python's xxhash)" \
        test "$(cat "$disk/$ns/.weft-owner")" = "$(owner_mark "$two")"
done
expect_exit 65 "weft-ckpt export of one node's part is refused (exit 65): it is not the whole model" \
    "$ck" export "$disk/${NS[1]}/$(name 10)" --format safetensors -o "$TMPDIR_TEST/part-export"
check "... naming the ranks it holds" grep -q "node 1's part of a checkpoint written on 3 nodes, and holds only the state of ranks 2" <<<"$LAST_OUT"
for s in 5 10; do
    check "shared tier step $s: the same tensors as the one-tier run (weft-ckpt diff, bitwise)" \
        "$ck" diff "$ref/checkpoints/$(name "$s")" "$two/checkpoints/$(name "$s")"
    check "shared tier step $s: every dataset and checksum equal (h5py)" \
        same_tensors "$ref/checkpoints/$(name "$s")" "$two/checkpoints/$(name "$s")"
    check "shared tier step $s verifies and is a whole file, not a node's part" bash -c \
        "'$ck' verify '$two/checkpoints/$(name "$s")' && ! ($(declare -f is_part); is_part '$two/checkpoints/$(name "$s")')"
done
check "shared tier's latest names step 10, no temporary file left" bash -c \
    "grep -qx step-00000010.h5 '$two/checkpoints/latest' && ! ls '$two/checkpoints'/.step-* 2>/dev/null"

# fresh_disks: every node's local tier emptied
fresh_disks() { rm -rf "$disk/${NS[0]}"/* "$disk/${NS[1]}"/* "$disk/${NS[2]}"/* "$disk"/*/.??* 2>/dev/null; true; }
# keep_step N: each node's local tier holds only run 1's step N (its own node's part)
parts=$TMPDIR_TEST/parts
for ns in "${NS[@]}"; do mkdir -p "$parts/$ns" && cp "$disk/$ns"/step-*.h5 "$parts/$ns/"; done
keep_step() {
    local ns
    fresh_disks
    for ns in "${NS[@]}"; do
        cp "$parts/$ns/$(name "$1")" "$disk/$ns/" && echo "$(name "$1")" >"$disk/$ns/latest"
    done
}

# 2. Resume from the local tier: each node holds its own part of step 5.
keep_step 5
run="$TMPDIR_TEST/from-local"
mh_mpirun 4 "${ten[@]}" --run.dir="$run" --checkpoint.local_dir="$local" --resume >"$run.log" 2>&1 ||
    not_ok "resume from the local tier" "$(tail -30 "$run.log")"
expect_grep "resuming from the local tier: $local/$(name 5)" "$run.log" "resume from the nodes' local tier: says so"
check "... losses of steps 6-10 bitwise the uninterrupted run's" compare "$ref/metrics.jsonl" "$run/metrics.jsonl" 5
check "... its step 10 in the shared tier equals the one-tier run's" \
    same_tensors "$ref/checkpoints/$(name 10)" "$run/checkpoints/$(name 10)"

# 3. One node's local tier gone (requeued elsewhere): the shared tier.
keep_step 5
rm -rf "${disk:?}/${NS[2]}"/*
run="$TMPDIR_TEST/from-shared"
mkdir -p "$run/checkpoints"
cp "$two/checkpoints/$(name 5)" "$run/checkpoints/" && echo "$(name 5)" >"$run/checkpoints/latest"
mh_mpirun 4 "${ten[@]}" --run.dir="$run" --checkpoint.local_dir="$local" --resume >"$run.log" 2>&1 ||
    not_ok "resume with one node's local tier gone" "$(tail -30 "$run.log")"
expect_grep "resuming from the shared tier: $run/checkpoints/$(name 5)" "$run.log" \
    "one node's local tier emptied: resume from the shared tier, saying so"
expect_grep "each of 3 nodes reads 1/3 of the replicated tensors, and the replicas share them" "$run.log" \
    "... each node reading a third of the replicated tensors (and moments: ZeRO off), sharing them over MPI"
run="$TMPDIR_TEST/from-shared-every"
mkdir -p "$run/checkpoints"
cp "$two/checkpoints/$(name 5)" "$run/checkpoints/" && echo "$(name 5)" >"$run/checkpoints/latest"
mh_mpirun 4 "${ten[@]}" --run.dir="$run" --checkpoint.load_share=false --resume >"$run.log" 2>&1 ||
    not_ok "resume with checkpoint.load_share = false" "$(tail -30 "$run.log")"
check "checkpoint.load_share = false: every replica reads all it holds (no sharing said), losses bitwise" bash -c \
    "! grep -q 'replicas share them' '$run.log' && $(declare -f compare); compare '$ref/metrics.jsonl' '$run/metrics.jsonl' 5"
check "... losses of steps 6-10 bitwise the uninterrupted run's" compare "$ref/metrics.jsonl" "$run/metrics.jsonl" 5

# 4. kill -9 of rank 0 while it assembles step 10 in the shared tier.
fresh_disks
run="$TMPDIR_TEST/killed"
WEFT_FAULT=kill_drain:10@0 mh_mpirun 4 "${ten[@]}" --run.dir="$run" --checkpoint.local_dir="$local" \
    >"$run-1.log" 2>&1
check "kill -9 mid-assembly: the shared latest still names step 5, which verifies" bash -c \
    "grep -qx step-00000005.h5 '$run/checkpoints/latest' && '$ck' verify '$run/checkpoints/$(name 5)'"
check "... every node committed step 10 in its local tier first" bash -c \
    "for d in '$disk'/*/; do grep -qx step-00000010.h5 \$d/latest || exit 1; done"
mh_mpirun 4 "${tiny[@]}" --train.steps=15 --checkpoint.every=5 --checkpoint.keep_last=5 --run.dir="$run" --checkpoint.local_dir="$local" \
    --resume >"$run-2.log" 2>&1 || not_ok "the run after the kill" "$(tail -30 "$run-2.log")"
expect_grep "resuming from the local tier: $local/$(name 10)" "$run-2.log" \
    "... the next run resumes from the newest valid tier, the local step 10, saying so"
expect_grep "checkpoint step 10 is on every node's local tier but not in $run/checkpoints .*: assembling it" \
    "$run-2.log" "... and assembles step 10 in the shared tier at start, saying so"
check "... the shared tier's step 10 then holds the same tensors as the uninterrupted one-tier run's" \
    same_tensors "$ref/checkpoints/$(name 10)" "$run/checkpoints/$(name 10)"
check "... which removed the half-assembled file and committed step 15 in the shared tier" bash -c \
    "grep -qx step-00000015.h5 '$run/checkpoints/latest' && '$ck' verify '$run/checkpoints/$(name 15)' &&
     ! ls '$run/checkpoints'/.step-* 2>/dev/null"

# 5. A node's part resumes only its own ranks on the same layout.
keep_step 5
run="$TMPDIR_TEST/relayout"
mkdir -p "$run/checkpoints"
cp "$two/checkpoints/$(name 5)" "$run/checkpoints/" && echo "$(name 5)" >"$run/checkpoints/latest"
NETNS_HOSTS="$SUBNET.1:1,$SUBNET.2:1,$SUBNET.3:2" # rank 1 now on node b
mh_mpirun 4 "${ten[@]}" --run.dir="$run" --checkpoint.local_dir="$local" --resume >"$run.log" 2>&1 ||
    not_ok "resume with other ranks on the nodes" "$(tail -30 "$run.log")"
expect_grep "holds the state of ranks .*this rank \([0-9]\) was on another node" "$run.log" \
    "other ranks on the nodes: the local parts are refused, naming why"
expect_grep "resuming from the shared tier: $run/checkpoints/$(name 5)" "$run.log" "... and the shared tier is used"
check "... and training goes on to step 10" grep -q '"step": *10' "$run/metrics.jsonl"

# 6. A failed assembly is retried and reported (rank 0's first attempt fails).
NETNS_HOSTS="$SUBNET.1:2,$SUBNET.2:1,$SUBNET.3:1"
fresh_disks
run="$TMPDIR_TEST/retry"
WEFT_FAULT=fail_drain:1@0 mh_mpirun 4 "${tiny[@]}" --train.steps=4 --run.dir="$run" --checkpoint.local_dir="$local" \
    >"$run.log" 2>&1 || not_ok "the run with a failed assembly" "$(tail -30 "$run.log")"
expect_grep "checkpoint drain of step 4 to $run/checkpoints failed \(attempt 1 of 4\): .*fail_drain.*retrying in 0.5 s" \
    "$run.log" "a failed assembly is logged with its attempt and retried"
check "... status.json: shared_tier assembled step 4, 1 retry, 0 failures" python3 -c '
import json, sys; s = json.load(open(sys.argv[1]))["shared_tier"]
assert s == {"drained_step": 4, "drained": 1, "retried": 1, "failed": 0, "error": ""}, s' "$run/status.json"
check "... and the retried file verifies" "$ck" verify "$run/checkpoints/$(name 4)"

# 6b. The shared tier full (a small tmpfs every node mounts): reported, the
# local tiers intact, training goes on (on_error = continue).
small=$TMPDIR_TEST/small
mkdir -p "$small"
if mount -t tmpfs -o size=64k weft-small "$small" 2>/dev/null; then
    fresh_disks
    run="$TMPDIR_TEST/full"
    mh_mpirun 4 "${tiny[@]}" --train.steps=4 --checkpoint.every=2 --run.dir="$run" --checkpoint.dir="$small/c" \
        --checkpoint.local_dir="$local" --checkpoint.drain_retries=0 --checkpoint.on_error=continue \
        >"$run.log" 2>&1 || not_ok "the run with the shared tier full" "$(tail -30 "$run.log")"
    expect_grep "checkpoint step 4 could not be assembled in $small/c after 1 attempt: .*not enough space in $small/c" \
        "$run.log" "shared tier full: the assembly fails, naming the directory and the sizes"
    check "... status.json counts the failure; training ran to step 4" python3 -c '
import json, sys; s = json.load(open(sys.argv[1])); t = s["shared_tier"]
assert s["step"] == 4 and t["failed"] >= 1 and "not enough space" in t["error"], s' "$run/status.json"
    check "... every node's local tier holds step 4, which verifies" bash -c \
        "for d in '$disk'/*/; do grep -qx step-00000004.h5 \$d/latest && '$ck' verify \$d/step-00000004.h5 || exit 1; done"
    umount "$small"
else
    skip "shared tier full" "cannot mount a tmpfs here"
fi

# 7. Other layouts: ZeRO-1 (moments sharded across the nodes), ZeRO-3
# (parameters too), tensor parallel 2 (a TP pair spans nodes b and c): the
# shared tier holds the one-tier run's tensors, a node's part resumes its
# ranks bitwise.
for lay in --parallel.zero=1 --parallel.zero=3 --parallel.tp=2; do
    r1="$TMPDIR_TEST/ref${lay#--parallel.}" r2="$TMPDIR_TEST/two${lay#--parallel.}" r3="$TMPDIR_TEST/res${lay#--parallel.}"
    fresh_disks
    mh_mpirun 4 "${ten[@]}" "$lay" --run.dir="$r1" >"$r1.log" 2>&1 || not_ok "$lay: one-tier run" "$(tail -20 "$r1.log")"
    mh_mpirun 4 "${ten[@]}" "$lay" --run.dir="$r2" --checkpoint.local_dir="$local" >"$r2.log" 2>&1 ||
        not_ok "$lay: two-tier run" "$(tail -20 "$r2.log")"
    check "$lay: two tiers on 3 nodes train as one (losses bitwise), the shared step 10 holds the same tensors" \
        bash -c "$(declare -f compare same_tensors); compare '$r1/metrics.jsonl' '$r2/metrics.jsonl' 0 &&
                 same_tensors '$r1/checkpoints/$(name 10)' '$r2/checkpoints/$(name 10)'"
    for ns in "${NS[@]}"; do mkdir -p "$parts/$ns" && cp "$disk/$ns/$(name 5)" "$parts/$ns/"; done
    keep_step 5
    mh_mpirun 4 "${ten[@]}" "$lay" --run.dir="$r3" --checkpoint.local_dir="$local" --resume >"$r3.log" 2>&1 ||
        not_ok "$lay: resume from the local tier" "$(tail -20 "$r3.log")"
    expect_grep "resuming from the local tier: $local/$(name 5)" "$r3.log" "$lay: resume from the nodes' parts"
    check "$lay: ... losses of steps 6-10 bitwise" compare "$r1/metrics.jsonl" "$r3/metrics.jsonl" 5
    # the shared tier's file: replicas on different nodes split its reading
    r4="$TMPDIR_TEST/shr${lay#--parallel.}"
    mkdir -p "$r4/checkpoints" && cp "$r2/checkpoints/$(name 5)" "$r4/checkpoints/" &&
        echo "$(name 5)" >"$r4/checkpoints/latest"
    mh_mpirun 4 "${ten[@]}" "$lay" --run.dir="$r4" --resume >"$r4.log" 2>&1 ||
        not_ok "$lay: resume from the shared tier's file" "$(tail -20 "$r4.log")"
    expect_grep "nodes reads 1/[23] of the replicated tensors, and the replicas share them" "$r4.log" \
        "$lay: resume from the shared tier's file, the replicas on other nodes sharing the reading"
    check "$lay: ... losses of steps 6-10 bitwise" compare "$r1/metrics.jsonl" "$r4/metrics.jsonl" 5
done
echo "1..$TAP_N"
