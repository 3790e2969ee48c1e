#!/bin/bash
# test_direct.sh -- the save's data path: each rank pwrites its bytes at the
# datasets' file offsets (checkpoint/save_data.c), and the file is still a
# standard HDF5 file:
#   - a checkpoint of known values (tests/mpi/ckpt_pattern.c) on 2 ranks
#     with tensor parallelism (split tensors' rows interleave the ranks'
#     bytes, a fused 3-block tensor too) and on 2 and 3 ranks with ZeRO-1
#     (moments split mid-tensor, mid-row), with and without alignment: h5py
#     reads every tensor, both moments and rng/state equal to the values
#     the program wrote, computed by tests/ckpt/pattern_check.py from the
#     same formula; h5dump reads a tensor's values; weft-ckpt verify
#     passes (the stored checksums), which are the format's (XXH3 of
#     1 MiB blocks, computed by tests/ckpt/sum_check.py with python3-xxhash);
#     the same with the state in a device
#     arena (the cpu device): staged through the device layer with no
#     device allocation in the save, and loaded
#     back the GPU's way equal to what was saved; every object header of
#     the file in its first 256 KiB (the metadata block, checkpoint/h5.c);
#     the writer thread at nice 15 (checkpoint/writer.c), a sync save
#     written by its caller at the caller's nice value;
#   - the load of moments split between ranks: the 2-rank ZeRO-1 file on 2
#     and 3 ranks; a byte changed inside a block one rank reads whole, and
#     in the block across the cut: exit 65 naming the tensor; the same file
#     rewritten as format 1 (whole-bytes checksums) verifies and loads; a
#     bad checksum_block or format_version: exit 65 saying so;
#   - an injected short write (short_save: half the bytes taken, then no
#     more), EIO (eio_save) and a lost write (lost_save: reported written,
#     never in the file; only the read-back sees it) on one rank: exit 74
#     naming the dataset, the file and the offset; no checkpoint committed
#     (no step file, no latest, no temporary file left).
. "$(dirname "$0")/../lib.sh"
prog="$WEFT_ROOT/$BUILD/tests/mpi/ckpt_pattern" ck="$WEFT_BIN/weft-ckpt"
py=/usr/bin/python3
have_h5py=1
$py -c 'import h5py, numpy' 2>/dev/null || have_h5py=0

# pattern NP LAYOUT NAME [KEY=VALUE...]: write the pattern, then check it.
pattern() {
    local np=$1 layout=$2 name=$3 d="$TMPDIR_TEST/$3"
    shift 3
    if ! weft_mpirun "$np" "$prog" "$d" "$layout" "$@" >"$d.log" 2>&1; then
        not_ok "$name: the save" "$(tail -5 "$d.log")"
        return
    fi
    local f="$d/step-00000007.h5"
    if [ $have_h5py = 1 ]; then
        check "$name: h5py reads every tensor, m, v and rng/state as written" $py "$WEFT_ROOT/tests/ckpt/pattern_check.py" "$f" "$np"
    else
        skip "$name: h5py reads every tensor as written" "python3-h5py is not installed"
    fi
    # c.bias is tensor 2: 20000 .. 20006
    check "$name: h5dump reads params/c.bias = 20000..20006" bash -c \
        "h5dump -d /params/c.bias -y -w 0 '$f' | awk '/DATA \\{/ {on = 1; next} on && /\\}/ {exit} on' | tr -d ' \n' |
         grep -qx '20000,20001,20002,20003,20004,20005,20006'"
    check "$name: weft-ckpt verify passes (the stored checksums)" "$ck" verify "$f"
    if [ $have_h5py = 1 ]; then
        check "$name: every checksum is the format's (XXH3 blocks, python3-xxhash)" $py \
            "$WEFT_ROOT/tests/ckpt/sum_check.py" "$f"
    fi
}
pattern 2 tp "TP on 2 ranks"
# The writer thread below the training threads (checkpoint/writer.c: nice 15)
check "TP on 2 ranks: the writer thread runs at nice 15" grep -qx "writer threads at nice 15: 1" \
    "$TMPDIR_TEST/TP on 2 ranks.log"
# ... but a sync save is written by its caller, at the caller's priority
check "TP on 2 ranks: the sync save was written at the calling thread's nice value, not the writer's" \
    grep -q "^sync save written at the caller's nice: yes" "$TMPDIR_TEST/TP on 2 ranks.log"
# HDF5's metadata in one block at the file's head (h5.c weft_h5_meta_block):
# every object header within the first 256 KiB of the ~35 MB file, where
# HDF5's default 2 KiB blocks put them between the datasets (past 9 MB)
check "TP on 2 ranks: every object header of the file is in its first 256 KiB (h5ls -v: Location)" bash -c \
    "h5ls -v -r '$TMPDIR_TEST/TP on 2 ranks/step-00000007.h5' | awk '/Location:/ { split(\$2, a, \":\"); n++; if (a[2] + 0 >= 262144) bad++ } END { exit !(n > 10 && !bad) }'"
pattern 2 zero "ZeRO-1 on 2 ranks"
pattern 3 zero "ZeRO-1 on 3 ranks"
# The page cache a save leaves (checkpoint/save_data.c): each piece dropped
# once checked but for the checksum blocks of split datasets a rank writes
# only part of, which their hashers read again -- every byte of a TP
# shard's interleaved rows; a block on each side of a ZeRO cut -- and
# everything once hashed. (A 124 M ZeRO-1 save left 1.0 GB of its 1.5 GB
# behind when any split dataset's segment kept its whole piece.)
resident_kib() { sed -n 's/^page cache after the save: \([0-9]*\) of [0-9]* KiB$/\1/p' "$TMPDIR_TEST/$1.log"; }
for n in "TP on 2 ranks" "ZeRO-1 on 2 ranks" "ZeRO-1 on 3 ranks"; do
    kib=$(resident_kib "$n")
    if grep -q "^page cache after the save: not measured" "$TMPDIR_TEST/$n.log"; then
        skip "$n: the file is out of the page cache after the save" "$(grep '^page cache' "$TMPDIR_TEST/$n.log")"
    else
        check "$n: at most its 256 KiB metadata block of the 33 MB file is left in the page cache (${kib:-?} KiB)" \
            test "${kib:-999999}" -le 256
    fi
done
check "TP on 2 ranks: rank 1, which writes only TP-split rows, kept all its bytes for their hasher" \
    grep -Eq '^rank 1 kept ([0-9]+) of its \1 bytes' "$TMPDIR_TEST/TP on 2 ranks.log"
for n in "ZeRO-1 on 2 ranks" "ZeRO-1 on 3 ranks"; do
    check "$n: each rank kept at most a 1 MiB block on each side of its cuts (2 cut datasets: m, v)" awk '
        /^rank [0-9]+ kept / { n++; if ($4 > 2 * 1048576 + 4096 || $4 == 0) bad++ } END { exit !(n >= 2 && !bad) }' \
        "$TMPDIR_TEST/$n.log"
done
pattern 2 tp "TP on 2 ranks, alignment off" --checkpoint.alignment=0
# The state in a device's arena (the cpu here): staged through the device
# layer's copies and events, then read back the GPU's way (host memory,
# then host->device copies) equal to what was saved.
pattern 2 tp "TP on 2 ranks, state on the device" device
pattern 3 zero "ZeRO-1 on 3 ranks, state on the device" device
for n in "TP on 2 ranks" "ZeRO-1 on 3 ranks"; do
    check "$n, state on the device: loaded back through the device layer equal to what was saved" \
        grep -qx reloaded "$TMPDIR_TEST/$n, state on the device.log"
done

# The load's checksums of moments split between ranks (checkpoint/sum.h):
# each rank hashes the 1 MiB blocks it reads all of, the verifier reads
# the rest again. The 2-rank file loaded on 2 and 3 ranks (other cuts);
# a byte changed inside a block rank 0 reads whole (2 MiB into e.weight's
# m; rank 0 holds its first 5766864 bytes) and inside the block across the
# cut: the load fails naming the tensor. A format 1 file (every checksum
# of the whole bytes, as weft wrote before checksum blocks) loads too.
z2="$TMPDIR_TEST/ZeRO-1 on 2 ranks"
loads() { # NAME DIR NP: the pattern loads from DIR on NP ranks
    weft_mpirun "$3" "$prog" "$2" zero load >"$2.load$3.log" 2>&1
    check "$1: loaded on $3 ranks, equal to the pattern" grep -qx reloaded "$2.load$3.log"
}
loads "ZeRO-1 file of 2 ranks" "$z2" 2
loads "ZeRO-1 file of 2 ranks" "$z2" 3
for at in 2097157 5766866; do
    d="$TMPDIR_TEST/flip$at"
    mkdir -p "$d" && cp "$z2/step-00000007.h5" "$d/"
    if [ $have_h5py = 1 ]; then
        $py "$WEFT_ROOT/tests/ckpt/flip.py" "$d/step-00000007.h5" tensor optim/m/e.weight $at
        expect_exit 65 "byte $at of optim/m/e.weight changed: the load on 2 ranks exits 65" \
            timeout -k 5 300 mpirun -np 2 --oversubscribe "$prog" "$d" zero load
        check "byte $at of optim/m/e.weight changed: the error names the tensor and its checksum" \
            grep -q "tensor 'optim/m/e.weight' fails its checksum" <<<"$LAST_OUT"
    fi
done
if [ $have_h5py = 1 ]; then
    v1="$TMPDIR_TEST/format1"
    mkdir -p "$v1"
    $py "$WEFT_ROOT/tests/ckpt/sum_check.py" "$z2/step-00000007.h5" format-1 "$v1/step-00000007.h5"
    check "format 1 file: weft-ckpt verify passes" "$ck" verify "$v1/step-00000007.h5"
    check "weft-ckpt info names each file's format" bash -c \
        "'$ck' info '$v1/step-00000007.h5' | grep -qx 'format          1 (checksums of whole datasets)' &&
         '$ck' info '$z2/step-00000007.h5' | grep -qx 'format          2 (checksums in blocks of 1024 KiB)'"
    loads "format 1 file" "$v1" 2
    loads "format 1 file" "$v1" 3
    $py "$WEFT_ROOT/tests/ckpt/flip.py" "$v1/step-00000007.h5" tensor optim/m/e.weight 2097157
    expect_exit 65 "format 1 file, a byte of optim/m/e.weight changed: the load exits 65" \
        timeout -k 5 300 mpirun -np 2 --oversubscribe "$prog" "$v1" zero load
    # root attributes rewritten (h5py): each load fails naming what is wrong
    bad_root() { # NAME ATTR VALUE PATTERN
        local d="$TMPDIR_TEST/root-$2-$3"
        mkdir -p "$d" && cp "$z2/step-00000007.h5" "$d/"
        $py -c 'import sys, h5py, numpy
with h5py.File(sys.argv[1], "r+") as f:
    f.attrs.modify(sys.argv[2], numpy.array(int(sys.argv[3]), dtype=f.attrs[sys.argv[2]].dtype))' \
            "$d/step-00000007.h5" "$2" "$3"
        expect_exit 65 "$1: the load exits 65" timeout -k 5 300 mpirun -np 2 --oversubscribe "$prog" "$d" zero load
        check "$1: the error says what is wrong" grep -Eq "$4" <<<"$LAST_OUT"
    }
    bad_root "checksum_block 5" checksum_block 5 "attribute checksum_block = 5 is not a positive multiple of 4096"
    bad_root "checksum_block 2 MiB (not the file's)" checksum_block 2097152 "tensor '[^']+' fails its checksum"
    bad_root "format_version 3" format_version 3 "has format version 3; this weft reads versions 1 and 2"
fi

# faulted NAME FAULT PATTERN: the save fails cleanly, nothing committed.
faulted() {
    local name=$1 fault=$2 re=$3 d="$TMPDIR_TEST/f-$2"
    expect_exit 74 "$name: exit 74" env WEFT_FAULT="$fault" timeout -k 5 300 mpirun -np 2 --oversubscribe \
        "$prog" "$d" tp
    check "$name: the error names the dataset, the file and the offset" grep -Eq "$re" <<<"$LAST_OUT"
    check "$name: no checkpoint committed, no temporary file left" bash -c \
        "! ls '$d'/step-* '$d'/latest '$d'/.step-* 2>/dev/null"
}
faulted "short write on rank 1" short_save:7@1 \
    "rank 1: checkpoint step 7: writing params/[^ ]+ failed: Input/output error \(short write: [0-9]+ of [0-9]+ bytes at offset [0-9]+ of .*/f-short_save:7@1/\.step-00000007\.h5\.tmp"
faulted "EIO on rank 0" eio_save:7@0 \
    "rank 0: checkpoint step 7: writing params/[^ ]+ failed: Input/output error \(pwrite of [0-9]+ bytes at offset [0-9]+ of .*\.step-00000007\.h5\.tmp"
faulted "lost write on rank 1, caught by the read-back" lost_save:7@1 \
    "rank 1: checkpoint step 7: [^ ]+: the data read back from .*/f-lost_save:7@1/\.step-00000007\.h5\.tmp at offset [0-9]+ \([0-9]+ bytes\) differs from what was written"
echo "1..$TAP_N"
