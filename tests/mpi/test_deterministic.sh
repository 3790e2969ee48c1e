#!/bin/bash
# test_deterministic.sh -- comm.deterministic on 1-4 ranks: shm (two chunk
# sizes) and mpi give bitwise the same reductions, equal to a rank-order
# reference. (Without it, Open MPI's 4-rank allreduce already differs.)
. "$(dirname "$0")/../lib.sh"
for np in 1 2 3 4; do
    mpi_tap "" "$np" deterministic
done
