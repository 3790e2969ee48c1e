#!/bin/bash
# test_mesh.sh -- the DP x TP x PP mesh's communicators on 1-4 ranks, every
# layout of the world (tests/mpi/mesh_comms.c), and the tensor-parallel
# layers against the whole model on 1, 2 and 4 ranks.
. "$(dirname "$0")/../lib.sh"
for np in 1 2 4; do
    mpi_tap "" "$np" mesh_comms
done
# Tensor-parallel layers against the whole model (tests/mpi/tp_layers.c).
for np in 1 2 4; do
    mpi_tap "" "$np" tp_layers
done
