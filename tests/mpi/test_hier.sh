#!/bin/bash
# test_hier.sh -- the hier backend on one machine: ranks grouped into
# pretend nodes of WEFT_HIER_RANKS_PER_NODE consecutive ranks (shm inside,
# tcp between leaders), so every multi-node path runs: even and uneven
# nodes (3 ranks in nodes of 2), one rank per node, split groups. The
# conformance suite and the communicator contract on 1-4 ranks. Real
# separate hosts (network namespaces) are in tests/net/test_multihost.sh.
. "$(dirname "$0")/../lib.sh"
for np in 1 2 3 4; do
    WEFT_HIER_RANKS_PER_NODE=2 mpi_tap hier "$np" conformance
    WEFT_HIER_RANKS_PER_NODE=2 mpi_tap hier "$np" comm_misc
done
WEFT_HIER_RANKS_PER_NODE=1 mpi_tap hier 3 conformance
WEFT_HIER_RANKS_PER_NODE=2 mpi_tap hier 4 conformance --comm.hier_net=mpi
