#!/bin/bash
# test_ib.sh -- the ib backend. This machine has no RDMA device: asking for
# comm.backend=ib must fail at once with a clear reason (exit 64), and auto
# must never pick ib. The protocol itself (rings in the peer's memory,
# credits, the registration cache, completions) runs against the fake verbs
# (WEFT_IB_FAKE=1, collectives/ib_fake.c): the conformance suite and the
# communicator contract on 1-4 ranks, and the deterministic check.
. "$(dirname "$0")/../lib.sh"
info="$WEFT_BIN/weft-info"
if [ -e /sys/class/infiniband ] && [ -n "$(ls /sys/class/infiniband 2>/dev/null)" ]; then
    skip "comm.backend=ib without a device" "this machine has an RDMA device"
else
    expect_exit 64 "comm.backend=ib with no RDMA device exits 64" weft_mpirun 2 "$info" --comm.backend=ib
    echo "$LAST_OUT" >"$TMPDIR_TEST/noib.log"
    expect_grep "comm.backend 'ib' cannot serve .*(no RDMA device|without libibverbs)" "$TMPDIR_TEST/noib.log" \
        "the message says there is no RDMA device"
fi
WEFT_IB_FAKE=1 mpi_tap "" 2 conformance
expect_grep "^ok .*backend shm\)" "$(ls -t "$TMPDIR_TEST"/default-conformance-2-*.log | head -1)" \
    "auto picks shm, not ib, even where an ib device (the fake) exists"
for np in 1 2 3 4; do
    WEFT_IB_FAKE=1 mpi_tap ib "$np" conformance
done
for np in 2 3; do
    WEFT_IB_FAKE=1 mpi_tap ib "$np" comm_misc
done
WEFT_IB_FAKE=1 mpi_tap ib 3 conformance --comm.algo=ring
