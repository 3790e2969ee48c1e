#!/bin/bash
# test_progress.sh -- waits keep point-to-point traffic moving: a rank with a
# large MPI send in flight that then waits on a tensor-parallel allreduce
# (the tp 2 x pp 2 1F1B pattern that hung weft-train; tests/mpi/p2p_progress.c).
# tp groups on shm (weft-train's default on one node) and on tcp, pp groups
# on shm (MPI point-to-point) and on mpi. A hang is a comm.timeout abort after
# 10 s, which fails the run; each passes in about a second.
. "$(dirname "$0")/../lib.sh"
cd "$TMPDIR_TEST" || exit 1 # an abort writes its flight records under ./weft-run
mpi_tap shm 4 p2p_progress --comm.timeout=10
mpi_tap shm 4 p2p_progress mpi --comm.timeout=10
mpi_tap tcp 4 p2p_progress mpi --comm.timeout=10
