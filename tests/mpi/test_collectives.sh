#!/bin/bash
# test_collectives.sh -- the MPI backend, the reference every other backend
# is checked against: the conformance suite and the communicator contract on
# 1, 2, 3 and 4 ranks (oversubscribed on small machines), and weft_init
# adopting an MPI the program started itself.
. "$(dirname "$0")/../lib.sh"
for np in 1 2 3 4; do
    mpi_tap mpi "$np" conformance
    mpi_tap mpi "$np" comm_misc
done
for np in 1 2; do
    mpi_tap "" "$np" adopt_mpi
done
