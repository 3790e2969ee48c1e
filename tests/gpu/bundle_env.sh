# shellcheck shell=bash
# bundle_env.sh -- copied by tests/gpu/bundle.sh into a GPU bundle as env.sh;
# `. BUNDLE/env.sh` (bash) unpacks BUNDLE/payload.tar.xz once, into
# ${TMPDIR:-/tmp}/weft-bundle.CKSUM (outside the bundle, so a carried bundle
# stays small; CKSUM of the payload, so a new bundle never reuses an old
# tree), and points this shell at it: the bundled programs (WEFT_BUNDLE_BUILD, a
# build-tree layout for run.sh's $BUILD), Debian's libraries and Open MPI,
# relocated with OPAL_PREFIX. Everything is relative to the bundle's own
# location, so the folder can be carried anywhere. CUDA's libraries come
# from the machine: its CUDA_HOME (default /usr/local/cuda) and the
# nvidia-nccl-cu13 wheel in python3's site-packages (libnccl.so.2, which the
# nccl backend dlopens). Returns non-zero, saying why, when the payload
# cannot be unpacked.
_wb=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
_wt=${TMPDIR:-/tmp}/weft-bundle.$(cksum <"$_wb/payload.tar.xz" | cut -d' ' -f1)
if [ ! -e "$_wt/.unpacked" ]; then
    rm -rf "$_wt"
    if ! python3 -c 'import sys, tarfile  # as packed: no filter (3.12 warns, 3.14 would refuse links)
kw = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
tarfile.open(sys.argv[1]).extractall(sys.argv[2], **kw)' \
        "$_wb/payload.tar.xz" "$_wt" || ! touch "$_wt/.unpacked"; then
        echo "env.sh: cannot unpack $_wb/payload.tar.xz into $_wt (python3 with tarfile needed)" >&2
        return 70
    fi
fi
_wr=$_wt/sys
_wl=$_wr/usr/lib/x86_64-linux-gnu
# NCCL: the pip wheel's lib folder(s), looked up before LD_LIBRARY_PATH changes
_wn=$(python3 -c '
import glob, os, sys
seen = []
for p in sys.path:
    for f in glob.glob(os.path.join(p, "nvidia", "**", "libnccl.so*"), recursive=True):
        d = os.path.dirname(f)
        if d not in seen: seen.append(d)
print(":".join(seen))' 2>/dev/null)
_wc=${CUDA_HOME:-/usr/local/cuda}/lib64
export WEFT_BUNDLE=$_wb WEFT_BUNDLE_BUILD=$_wt
export PATH=$_wr/usr/bin:$PATH
export LD_LIBRARY_PATH=$_wt/lib:$_wl:$_wl/openmpi/lib:$_wl/pmix2/lib:$_wl/openblas-pthread:$_wl/hdf5/openmpi:$_wc${_wn:+:$_wn}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# Open MPI 4.1: every configured path under the prefix follows OPAL_PREFIX;
# the ones Debian put elsewhere are named one by one.
export OPAL_PREFIX=$_wr/usr OPAL_SYSCONFDIR=$_wr/etc/openmpi OPAL_LIBDIR=$_wl/openmpi/lib
export OPAL_PKGLIBDIR=$_wl/openmpi/lib/openmpi3 OPAL_PKGDATADIR=$_wr/usr/share/openmpi OPAL_BINDIR=$_wr/usr/bin
export PMIX_INSTALL_PREFIX=$_wl/pmix2 PMIX_MCA_mca_base_component_path=$_wl/pmix2/lib/pmix
# no ssh/rsh on the image: one node, launched locally
export OMPI_MCA_plm=isolated OMPI_MCA_btl=self,vader,tcp OMPI_MCA_pml=ob1
unset _wb _wt _wr _wl _wn _wc
