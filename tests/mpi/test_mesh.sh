#!/bin/bash
# test_mesh.sh -- the DP x TP x PP mesh's communicators on 1-4 ranks, every
# layout of the world (tests/mpi/mesh_comms.c).
. "$(dirname "$0")/../lib.sh"
for np in 1 2 4; do
    mpi_tap "" "$np" mesh_comms
done
