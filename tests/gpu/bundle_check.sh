#!/bin/bash
# bundle_check.sh -- proves a GPU bundle (tests/gpu/bundle.sh) complete
# without a GPU: in a minimal Debian 12 root (debootstrap --variant=minbase
# bookworm + python3: no Open MPI, HDF5, oneDNN, OpenBLAS or
# libsodium, like the lent GPU machines' image), with the working tree's
# files (tracked and untracked-not-ignored: what a device call sends) and the
# bundle copied in, it runs
#   1. WEFT_GPU_TRAIN_DEVICE=cpu tests/gpu/run.sh --bundle .gpu-bundle --train
#      (the cpu halves of the training checks, 1-rank mpirun in ckpt_cross.sh;
#      run.sh first checks that every bundled program finds its libraries);
#   2. a 1-rank and a 2-rank mpirun of the bundled weft-train, 6 steps of a
#      small GPT-2 over shm on the cpu, through the bundle's relocated Open MPI.
# Both must pass. Not part of `make test` (needs root, debootstrap, a mirror).
# The root is kept between runs (--fresh makes a new one); mounts (/proc,
# /sys, /dev, a tmpfs /dev/shm) are undone on exit, also on failure.
#
#   tests/gpu/bundle_check.sh [--bundle DIR] [--root DIR] [--mirror URL]
#                             [--drop NAME] [--fresh] [--help]
#
# --bundle DIR  the bundle to check (default .gpu-bundle)
# --root DIR    the Debian root (default /var/tmp/weft-bundle-root)
# --drop NAME   first delete from the copied bundle every file whose name
#               starts with NAME (e.g. libsodium): the check must then fail,
#               naming what is missing
# Exit status: 0 passed, 1 a check failed (it says which), 64 bad usage,
# 66 no bundle, 69 debootstrap or the mirror unavailable.
set -u
cd "$(dirname "$0")/../.." || exit 70
bundle=.gpu-bundle root=/var/tmp/weft-bundle-root mirror=http://deb.debian.org/debian drop='' fresh=0
usage() { sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case $1 in
    --bundle) bundle=${2:?--bundle needs a directory}; shift 2 ;;
    --bundle=*) bundle=${1#*=}; shift ;;
    --root) root=${2:?--root needs a directory}; shift 2 ;;
    --root=*) root=${1#*=}; shift ;;
    --mirror) mirror=${2:?--mirror needs a URL}; shift 2 ;;
    --mirror=*) mirror=${1#*=}; shift ;;
    --drop) drop=${2:?--drop needs a file name}; shift 2 ;;
    --drop=*) drop=${1#*=}; shift ;;
    --fresh) fresh=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bundle_check.sh: unknown argument '$1' (see --help)" >&2; exit 64 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "bundle_check.sh: run as root (debootstrap, chroot, mount)" >&2; exit 64; }
[ -f "$bundle/env.sh" ] && [ -f "$bundle/payload.tar.xz" ] ||
    { echo "bundle_check.sh: $bundle is not a bundle (make one with tests/gpu/bundle.sh)" >&2; exit 66; }
step() { echo "== $(date -u +%H:%M:%S) $*"; }
fail() { echo "bundle_check.sh: FAILED: $*" >&2; exit 1; }

mounted=()
cleanup() {
    local i p
    for p in /proc/[0-9]*; do # processes left in the root (a rank), by pid
        [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -KILL "${p#/proc/}" 2>/dev/null
    done
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" 2>/dev/null
    done
}
trap cleanup EXIT
mnt() { mount "$@" && mounted+=("${@: -1}"); }

[ "$fresh" -eq 1 ] && rm -rf --one-file-system "$root"
if [ ! -x "$root/usr/bin/python3" ]; then
    command -v debootstrap >/dev/null || { echo "bundle_check.sh: debootstrap is missing" >&2; exit 69; }
    step "debootstrap bookworm (minbase + python3) into $root from $mirror"
    rm -rf --one-file-system "$root"
    debootstrap --variant=minbase --include=python3 bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
        { tail -20 "$root.debootstrap.log" >&2; exit 69; }
fi
# The root must lack what the bundle brings, or it proves nothing.
for l in libmpi.so.40 libhdf5_openmpi.so.103 libdnnl.so.2 libopenblas.so.0 libsodium.so.23 orterun; do
    [ -z "$(find "$root/usr" "$root/etc" -name "$l" -print -quit 2>/dev/null)" ] ||
        fail "$root is not bare: it has $l (use --fresh)"
done
step "mounts: /proc, /sys, /dev, /dev/shm (tmpfs)"
mnt -t proc proc "$root/proc" || fail "mount /proc"
mnt -t sysfs sys "$root/sys" || fail "mount /sys"
mnt --bind /dev "$root/dev" || fail "bind /dev"
mnt -t tmpfs -o size=1g shm "$root/dev/shm" || fail "mount /dev/shm"

step "copy the working tree's files and $bundle into $root/root/weft"
rm -rf "$root/root/weft" && mkdir -p "$root/root/weft/.gpu-bundle" || fail "mkdir in $root"
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -C "$root/root/weft" -xf - ||
    fail "copy of the working tree"
cp "$bundle/env.sh" "$bundle/MANIFEST" "$root/root/weft/.gpu-bundle/" || fail "copy of $bundle"
if [ -n "$drop" ]; then
    step "--drop $drop: the bundle's payload without $drop*"
    xz -dc "$bundle/payload.tar.xz" | tar --delete --wildcards "*/$drop*" | xz -T2 -1 \
        >"$root/root/weft/.gpu-bundle/payload.tar.xz" || fail "rewrite the payload without $drop"
else
    cp "$bundle/payload.tar.xz" "$root/root/weft/.gpu-bundle/" || fail "copy of $bundle"
fi

in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    TMPDIR=/tmp /bin/bash -c "cd /root/weft && $1"; }
rc=0
step "1. WEFT_GPU_TRAIN_DEVICE=cpu tests/gpu/run.sh --bundle .gpu-bundle --train"
in_root "rm -rf /tmp/weft-bundle.*; WEFT_GPU_TRAIN_DEVICE=cpu tests/gpu/run.sh --bundle .gpu-bundle --train" \
    >"$root.train.log" 2>&1 || rc=1
grep -E '^(ok|not ok|#)|passed' "$root.train.log"
[ "$rc" -eq 0 ] || echo "bundle_check.sh: check 1 failed (log: $root.train.log)"

step "2. mpirun -np 1 and -np 2 of the bundled weft-train (6 steps, cpu, shm) in the root"
for np in 1 2; do
    two='. .gpu-bundle/env.sh || exit 1
echo "# mpirun: $(command -v mpirun)"
w=$(mktemp -d) && examples/corpus/make-corpus.sh $w/c.txt 3000 &&
$WEFT_BUNDLE_BUILD/bin/weft-data prepare -o $w/d --val-fraction 0.05 $w/c.txt >/dev/null &&
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
OMPI_MCA_btl_vader_single_copy_mechanism=none timeout -k 5 180 mpirun -np '$np' $WEFT_BUNDLE_BUILD/bin/weft-train \
    --config examples/configs/demo.ini --data.path=$w/d --model.n_layer=2 --model.n_head=2 --model.n_embd=32 \
    --model.context=32 --train.seq_len=32 --train.micro_batch=2 --train.global_batch=8 --train.steps=6 \
    --optim.warmup=2 --train.eval_interval=0 --checkpoint.at_end=false --run.device=cpu --comm.backend=shm \
    --run.dir=$w/run'
    log=$root.mpirun$np.log
    # passes when the bundle's own mpirun started np ranks that trained to the end
    if in_root "$two" >"$log" 2>&1 && grep -q '^# mpirun: /tmp/weft-bundle\.' "$log" &&
        grep -q "launcher mpirun, $np ranks\{0,1\} on 1 node" "$log" && grep -q 'done:' "$log"; then
        echo "ok - $np-rank mpirun of the bundled weft-train: $(grep -m1 'done:' "$log")"
    else
        echo "not ok - $np-rank mpirun of the bundled weft-train (log: $log)"
        grep -v '^\[weft r[01]/[12].*step ' "$log" | head -14 | sed 's/^/#   /'
        rc=1
    fi
done
[ "$rc" -eq 0 ] || fail "the bundle is incomplete or broken (see above)"
step "the bundle is complete: both checks passed in a root without weft's libraries"
