#!/bin/bash
# ckpt_nodes.sh -- bench_ckpt on three "nodes": network namespaces on a
# bridge (tests/netns.sh), one rank each, TCP between them, each node with
# its own local disk (a directory bind-mounted at the same path inside the
# node, as NVMe per node: checkpoint.local_dir) and one shared
# checkpoint.dir. The multi-node figures of the two-tier checkpoints: the
# local tier writes a file per node, the drain assembles them in the shared
# tier, a load of the shared file has the replicas on the three nodes each
# read a third of the replicated tensors and broadcast them.
#
#   bench/ckpt_nodes.sh [--build DIR] [--work DIR] [--ranks 2|3|4] [BENCH_CKPT ARGS...]
#
# --work: where the shared tier and the nodes' disks go (default
# build/bench-data/nodes; all on this machine's one disk: the nodes' I/O
# shares it). --ranks 2: two nodes, one rank each; --ranks 4: two ranks on
# the first node. Needs root (namespaces, bind mounts); says so and exits
# 69 where they cannot be made.
set -u
build=build work=build/bench-data/nodes ranks=3
args=()
while [ $# -gt 0 ]; do
    case $1 in
        --build=*) build=${1#*=} ;; --build) build=$2; shift ;;
        --work=*) work=${1#*=} ;; --work) work=$2; shift ;;
        --ranks=*) ranks=${1#*=} ;; --ranks) ranks=$2; shift ;;
        --help|-h) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) args+=("$1") ;;
    esac
    shift
done
case $ranks in 2 | 3 | 4) ;; *) echo "ckpt_nodes.sh: --ranks must be 2, 3 or 4, not '$ranks'" >&2; exit 64 ;; esac
[ -x "$build/bench/bench_ckpt" ] || { echo "ckpt_nodes.sh: no $build/bench/bench_ckpt: make $build/bench/bench_ckpt" >&2; exit 66; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
. "$(dirname "$0")/../tests/netns.sh"
work=$(realpath -m "$work")
rm -rf "$work" && mkdir -p "$work"
netns_init "wbn$$" 10.213.79 "$work"
netns_bind "$work/disk" "$work/local"
trap 'netns_down' EXIT
netns_up || { echo "ckpt_nodes.sh: ${NETNS_WHY:-the namespaces could not be set up}" >&2; exit 69; }
case $ranks in
2) NETNS_HOSTS="$NETNS_SUBNET.1:1,$NETNS_SUBNET.2:1" ;;
3) NETNS_HOSTS="$NETNS_SUBNET.1:1,$NETNS_SUBNET.2:1,$NETNS_SUBNET.3:1" ;;
esac
verbose=()
[ -n "${BENCH_CKPT_VERBOSE:-}" ] && verbose=(-x BENCH_CKPT_VERBOSE)
WEFT_MPI_TIMEOUT=${WEFT_MPI_TIMEOUT:-1800} # The "nodes" share this machine's cores, which mpirun cannot know (each
# has its own slots): ranks waiting in MPI yield instead of spinning on
# the cores the others write with.
netns_mpirun "$ranks" "${verbose[@]}" --mca mpi_yield_when_idle 1 \
    "$(realpath "$build/bench/bench_ckpt")" --dir "$work/shared" --local "$work/local" "${args[@]}"
