#!/bin/bash
# bundle.sh -- packs what tests/gpu/run.sh needs on a GPU machine whose image
# has CUDA (runtime, cuBLASLt, NCCL as the nvidia-nccl-cu13 wheel) and python3
# but none of weft's other link dependencies, and which reaches no package
# registry (issue 20). Made here, carried there with the working tree.
#
# The bundle directory (default .gpu-bundle/, gitignored) holds three files:
#   payload.tar.xz  a tree laid out like a build dir -- bin/ (weft-train,
#                   weft-data, weft-ckpt), lib/ (libweft.so, libweft-cuda.so),
#                   tests/gpu/ (kernels_check, device_check, nccl_check,
#                   nccl_bench), tests/mpi/noalloc_step, all stripped -- and
#                   sys/, Debian's packages that own every shared library those
#                   programs, mpirun, orted and Open MPI's components load
#                   (found with ldd + dpkg -S, fetched with apt-get download,
#                   unpacked with dpkg -x; never installed), less docs, man
#                   pages, headers and the components for fabrics the check
#                   never uses (ucx, ofi, psm, psm2, openib, munge). xz, because
#                   oneDNN and OpenBLAS alone are 76 MB unpacked and a device
#                   call carries 64 MiB with the working tree.
#   env.sh          `. DIR/env.sh` unpacks the payload once, outside DIR,
#                   into ${TMPDIR:-/tmp}/weft-bundle.CKSUM (python3's
#                   tarfile: the image may lack xz), and sets PATH,
#                   LD_LIBRARY_PATH, OPAL_PREFIX and the Open MPI / PMIx
#                   paths to it, plus the image's CUDA and the NCCL wheel's
#                   lib folder (found at run time with python3). No absolute
#                   path of this machine is baked in.
#   MANIFEST        the programs, packages and sizes, for the report.
# glibc, libgcc_s and libstdc++ are left to the image (they must match its
# loader, and any image with python3 has them); so are CUDA's own libraries.
#
#   tests/gpu/bundle.sh [--build DIR] [--out DIR] [--help]
#
# --build DIR  the build tree to take the programs from (default build; it
#              must hold weft-train, weft-data, weft-ckpt and noalloc_step:
#              make BUILD=DIR all gpu-tests DIR/tests/mpi/noalloc_step)
# --out DIR    where to write the bundle (default .gpu-bundle; replaced)
# Needs dpkg, apt-get (Debian's mirror, or the .debs cached in
# DIR/gpu-bundle-debs from an earlier run), ldd, strip, python3.
# Exit status: 0 made, 64 bad usage, 66 a program missing from the build,
# 69 apt-get download failed, 70 something else failed (it says what).
set -u
cd "$(dirname "$0")/../.." || exit 70
build=build out=.gpu-bundle
usage() { sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case $1 in
    --build) build=${2:?--build needs a directory}; shift 2 ;;
    --build=*) build=${1#*=}; shift ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --out=*) out=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bundle.sh: unknown argument '$1' (see --help)" >&2; exit 64 ;;
    esac
done
die() { echo "bundle.sh: $2" >&2; exit "$1"; }
libdir=/usr/lib/x86_64-linux-gnu
ompi_mca=$libdir/openmpi/lib/openmpi3 pmix_mca=$libdir/pmix2/lib/pmix

# --- the programs ------------------------------------------------------------
required="bin/weft-train bin/weft-data bin/weft-ckpt tests/mpi/noalloc_step lib/libweft.so"
optional="lib/libweft-cuda.so tests/gpu/kernels_check tests/gpu/device_check tests/gpu/nccl_check tests/gpu/nccl_bench"
for p in $required; do
    [ -f "$build/$p" ] || die 66 "$build/$p is not built: make BUILD=$build all gpu-tests $build/tests/mpi/noalloc_step"
done
stage=$(mktemp -d) || die 70 "mktemp failed"
trap 'rm -rf "$stage"' EXIT
tree=$stage/tree
progs=()
for p in $required $optional; do
    [ -f "$build/$p" ] || { echo "# $build/$p not built (no nvcc here?): left out"; continue; }
    mkdir -p "$tree/$(dirname "$p")"
    strip --strip-unneeded -o "$tree/$p" "$build/$p" || die 70 "strip $build/$p failed"
    progs+=("$build/$p")
done

# --- the packages that own every library they (and mpirun) load --------------
# Open MPI's components for fabrics a one-node check never uses pull in
# ucx, libfabric, psm and munge: those components are dropped, not their
# libraries bundled.
skip_mca='ucx|ofi|psm|openib|verbs|munge'
mca=()
for f in "$ompi_mca"/*.so "$pmix_mca"/*.so; do
    [[ $(basename "$f") =~ $skip_mca ]] || mca+=("$f")
done
mpirun_bin=$(readlink -f "$(command -v mpirun)") || die 70 "mpirun is not installed here (apt-get install openmpi-bin)"
# owner FILE: the package that owns FILE (merged /usr: try both spellings)
owner() {
    local f p o
    f=$(readlink -f "$1")
    for p in "$f" "${f#/usr}" "/usr$f" "$1" "${1#/usr}" "/usr$1"; do
        o=$(dpkg -S "$p" 2>/dev/null | head -1 | cut -d: -f1)
        [ -n "$o" ] && { echo "$o"; return 0; }
    done
    echo "bundle.sh: no package owns $1 (needed by a bundled program)" >&2
    return 1
}
cuda_libs='libcudart|libcublas|libnccl|libcuda\.'
libs=$(ldd "${progs[@]}" "$mpirun_bin" /usr/bin/orted "${mca[@]}" 2>/dev/null | awk '/=> \//{print $3}' |
    grep -v -E "$cuda_libs" | sort -u)
missing=$(ldd "${progs[@]}" 2>/dev/null | grep 'not found' | grep -v -E "$cuda_libs" | sort -u)
[ -z "$missing" ] || die 70 "libraries not found here: $missing"
pkgs="openmpi-bin openmpi-common libopenmpi3 libpmix2"
for l in $libs; do
    p=$(owner "$l") || exit 70
    case $p in libc6 | libgcc-s1 | libstdc++6) continue ;; esac # the image's own
    pkgs="$pkgs $p"
done
pkgs=$(echo "$pkgs" | tr ' ' '\n' | sort -u)

cache=$build/gpu-bundle-debs
mkdir -p "$cache"
for p in $pkgs; do
    v=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null) || die 70 "package $p is not installed here"
    ls "$cache/${p}_"*.deb >/dev/null 2>&1 && continue
    (cd "$cache" && { apt-get download -q "$p=$v" >/dev/null 2>&1 || apt-get download -q "$p" >/dev/null 2>&1; }) ||
        die 69 "apt-get download $p failed (no mirror? apt-get update first)"
done
for p in $pkgs; do
    dpkg -x "$(ls "$cache/${p}_"*.deb | tail -1)" "$tree/sys" || die 70 "dpkg -x $p failed"
done

# Some packages still ship under /lib (bookworm's libnl-3-200): one tree, the
# merged /usr one that env.sh names
for d in lib bin sbin; do
    [ -d "$tree/sys/$d" ] || continue
    mkdir -p "$tree/sys/usr/$d" && cp -a "$tree/sys/$d/." "$tree/sys/usr/$d/" && rm -rf "${tree:?}/sys/$d" ||
        die 70 "cannot merge $tree/sys/$d into usr/$d"
done

# --- shrink ---------------------------------------------------------------------
s=$tree/sys
rm -rf "$s/usr/share/doc" "$s/usr/share/man" "$s/usr/share/locale" "$s/usr/share/lintian" "$s/usr/include" \
    "$s/usr/share/bug" "$s$libdir/openmpi/include" "$s$libdir/pkgconfig" "$s$libdir/cmake"
find "$s" \( -name '*.a' -o -name '*.la' -o -name 'libmpi_java*' -o -name 'libmpi_usempi*' -o -name 'libmpi_mpifh*' \
    -o -name 'libmpi_cxx*' -o -name '*.jar' \) -exec rm -f {} +
find "$s$ompi_mca" "$s$pmix_mca" -name '*.so' | grep -E "$skip_mca" | xargs -r rm -f
# OpenBLAS's reference-BLAS/LAPACK stand-ins: weft links libopenblas.so.0 only
rm -f "$s$libdir"/openblas-pthread/libblas.so* "$s$libdir"/openblas-pthread/liblapack.so*
# mpirun: Debian names it through alternatives (/etc/alternatives), which
# dpkg -x does not create
ln -sf orterun "$s/usr/bin/mpirun"
ln -sf orterun "$s/usr/bin/mpiexec"

# --- env.sh and the payload --------------------------------------------------------
rm -rf "$out"
mkdir -p "$out" || die 70 "cannot create $out"
cp tests/gpu/bundle_env.sh "$out/env.sh" || die 70 "cannot write $out/env.sh"
tar -C "$tree" -cf - . | xz -T2 -6 >"$out/payload.tar.xz" || die 70 "cannot write $out/payload.tar.xz"
{
    echo "made $(date -u +%FT%TZ) from $build (weft $(git rev-parse --short HEAD 2>/dev/null))"
    echo "programs: ${progs[*]}"
    echo "packages: $(echo $pkgs)"
    echo "unpacked: $(du -sh "$tree" | cut -f1), payload: $(du -h "$out/payload.tar.xz" | cut -f1)"
} >"$out/MANIFEST"
cat "$out/MANIFEST"
