#!/bin/bash
# fresh-root-check.sh -- the README's two commands on a fresh machine: builds
# a minimal Debian 12 root (debootstrap --variant=minbase bookworm, plus what a
# container image has: gcc, make, git, ca-certificates, python3), clones this
# repository into it, and runs `make demo` there, then a few tests (or the
# whole `make test` with --full). Everything else weft needs must come from
# `make`'s own dependency step (mk/deps.sh), which is what this checks.
#
# The root is bind-mounted onto itself before the chroot, with /proc, /sys,
# /dev and /dev/pts, so that `ip netns exec` (which remounts /sys) works in
# it for the multi-host tests. Mounts are undone on exit, also on failure.
#
#   mk/fresh-root-check.sh [--root DIR] [--mirror URL] [--tests PATTERN]
#                          [--full] [--keep] [--help]
#
# Needs root, debootstrap (apt-get install debootstrap) and Debian's mirror.
# Exit status: 0 all passed, 1 a step failed (it says which), 64 bad usage,
# 69 debootstrap or the mirror unavailable.
set -u
root=/var/tmp/weft-fresh-root mirror=http://deb.debian.org/debian
tests="tests/unit/test_durable,tests/unit/test_config,tests/train/test_rundir_files" full=0 keep=0
repo=$(cd "$(dirname "$0")/.." && pwd)

usage() { sed -n '2,19s/^# \{0,1\}//p' "$0"; }
while [ $# -gt 0 ]; do
    case "$1" in
    --root) root=${2:?--root needs a directory}; shift 2 ;;
    --root=*) root=${1#*=}; shift ;;
    --mirror) mirror=${2:?--mirror needs a URL}; shift 2 ;;
    --mirror=*) mirror=${1#*=}; shift ;;
    --tests) tests=${2:?--tests needs a pattern}; shift 2 ;;
    --tests=*) tests=${1#*=}; shift ;;
    --full) full=1; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "fresh-root-check: unknown argument '$1' (see --help)" >&2; exit 64 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "fresh-root-check: run as root (debootstrap, chroot, mount)" >&2; exit 64; }
command -v debootstrap >/dev/null || { echo "fresh-root-check: debootstrap is missing (apt-get install debootstrap)" >&2; exit 69; }
step() { echo "== $(date -u +%H:%M:%S) $*"; }
fail() { echo "fresh-root-check: FAILED: $*" >&2; exit 1; }

mounted=()
cleanup() {
    local i p
    # Processes this script started in the root (a daemon a test left):
    # those whose root directory is $root, by pid.
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -KILL "${p#/proc/}" 2>/dev/null
    done
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" 2>/dev/null
    done
    [ "$keep" -eq 1 ] && return
    rm -rf --one-file-system "$root" 2>/dev/null
    [ -e "$root" ] && echo "fresh-root-check: $root could not be removed entirely; remove it by hand" >&2
}
trap cleanup EXIT
mnt() { mount "$@" && mounted+=("${@: -1}"); }

if [ ! -x "$root/usr/bin/gcc" ]; then
    step "debootstrap bookworm (minbase + gcc make git ca-certificates python3) into $root from $mirror"
    rm -rf --one-file-system "$root"
    debootstrap --variant=minbase --include=gcc,make,git,ca-certificates,python3 bookworm "$root" "$mirror" \
        >"$root.debootstrap.log" 2>&1 || { tail -20 "$root.debootstrap.log" >&2; exit 69; }
fi
step "mounts: $root onto itself, /proc, /sys, /dev, /dev/pts"
mnt --bind "$root" "$root" || fail "bind-mount $root onto itself"
mnt -t proc proc "$root/proc" || fail "mount /proc"
mnt -t sysfs sys "$root/sys" || fail "mount /sys"
# A container has its cgroup file system mounted; slurmd's cgroup plugin
# refuses to start without it ("No filesystem mounted on /sys/fs/cgroup").
if mountpoint -q /sys/fs/cgroup; then
    mnt --rbind /sys/fs/cgroup "$root/sys/fs/cgroup" || fail "bind /sys/fs/cgroup"  # with v1 hierarchies beneath
fi
mnt --bind /dev "$root/dev" || fail "bind /dev"
mnt -t devpts devpts "$root/dev/pts" -o newinstance,ptmxmode=0666 || fail "mount /dev/pts"
mkdir -p "$root/run/netns"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# This network's own trust anchors: behind a TLS-inspecting proxy the
# machine's CA sits in /usr/local/share/ca-certificates, and a fresh machine
# on that network is given it too (npm's registry is reached through it).
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null 2>&1 || fail "update-ca-certificates in the root"
fi

step "clone $repo (HEAD $(git -C "$repo" rev-parse --short HEAD)) into the root"
rm -rf "$root/root/weft"
git clone -q "$repo" "$root/root/weft" || fail "git clone"
git -C "$root/root/weft" checkout -q "$(git -C "$repo" rev-parse HEAD)" || fail "checkout"

# NODE_EXTRA_CA_CERTS: npm trusts Node's built-in list, not the system's.
in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    /bin/bash -c "cd /root/weft && $1"; }
step "make demo (installs weft's Debian packages through mk/deps.sh, builds, trains)"
in_root "make demo" >"$root.demo.log" 2>&1 || { tail -30 "$root.demo.log" >&2; fail "make demo (log: $root.demo.log)"; }
grep -E 'validation loss|done:' "$root.demo.log" | tail -3
if [ "$full" -eq 1 ]; then
    step "make test"
    in_root "make test" >"$root.test.log" 2>&1
    tail -1 "$root.test.log"
    grep -q ' 0 failed' "$root.test.log" || fail "make test (log: $root.test.log)"
else
    step "make tests; tests/run.sh $tests"
    in_root "make tests -j2 >/dev/null && tests/run.sh '$tests'" >"$root.test.log" 2>&1
    grep -E '^(PASS|FAIL) |passed' "$root.test.log"
    grep -q ' 0 failed' "$root.test.log" || fail "tests (log: $root.test.log)"
fi
step "all passed"
