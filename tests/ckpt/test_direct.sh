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
#     passes (the stored checksums); the same with the state in a device
#     arena (the cpu device): staged through the device layer with no
#     device allocation in the save, and loaded
#     back the GPU's way equal to what was saved; every object header of
#     the file in its first 256 KiB (the metadata block, checkpoint/h5.c);
#     the writer thread at nice 15 (checkpoint/writer.c);
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
}
pattern 2 tp "TP on 2 ranks"
# The writer thread below the training threads (checkpoint/writer.c: nice 15)
check "TP on 2 ranks: the writer thread runs at nice 15" grep -qx "writer threads at nice 15: 1" \
    "$TMPDIR_TEST/TP on 2 ranks.log"
# HDF5's metadata in one block at the file's head (h5.c weft_h5_meta_block):
# every object header within the first 256 KiB of the ~30 MB file, where
# HDF5's default 2 KiB blocks put them between the datasets (past 9 MB)
check "TP on 2 ranks: every object header of the file is in its first 256 KiB (h5ls -v: Location)" bash -c \
    "h5ls -v -r '$TMPDIR_TEST/TP on 2 ranks/step-00000007.h5' | awk '/Location:/ { split(\$2, a, \":\"); n++; if (a[2] + 0 >= 262144) bad++ } END { exit !(n > 10 && !bad) }'"
pattern 2 zero "ZeRO-1 on 2 ranks"
pattern 3 zero "ZeRO-1 on 3 ranks"
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
