# slurm.sh -- a private, local Slurm for the tests: munged, slurmctld and
# slurmd from Debian's packages (recipe in DESIGN.md section 7), configured for
# this one host, with every key, socket, state and spool file under the
# test's scratch directory. Source it after tests/lib.sh.
#
#   slurm_start          start the daemons, export SLURM_CONF, wait for the
#                        node to be idle; fails loudly (exit 1) if it cannot
#   slurm_stop           cancel jobs, stop the daemons by their pid files
#                        (slurm_start arranges for it to run at exit, also
#                        when a test fails)
#   slurm_wait_state JOB STATES SECS   wait until JOB's state matches the
#                        extended regex STATES; 1 if it did not in time
#   slurm_job_field JOB FIELD          one field of `scontrol show job`
#
# Ports are picked free at random, and the cluster, munge socket and state
# are the test's own, so two suites on one machine do not see each other.
SLURM_DIR=""

# Every Slurm client call that should answer at once is bounded in time: a
# client that cannot reach slurmctld (retrying a name lookup, say) fails
# in seconds instead of holding a test's wait loop, which counts rounds,
# for many minutes (found in a fresh root, where one such loop ran into
# run.sh's 900 s limit). srun runs jobs and is left alone. (timeout runs
# the program, not this function.)
for _slurm_client in sinfo squeue scontrol scancel sbatch sacct; do
    eval "$_slurm_client() { timeout -k 2 ${SLURM_CLIENT_TIMEOUT:-20} $_slurm_client \"\$@\"; }"
done
unset _slurm_client

slurm_free_port() {
    local p i
    for i in $(seq 50); do
        p=$((20000 + RANDOM % 20000))
        ss -ltnH "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
    done
    return 1
}

slurm_fail() {
    echo "# slurm harness: $*" >&2
    local f
    for f in "$SLURM_DIR"/log/*.log "$SLURM_DIR"/log/*.start "$SLURM_DIR"/munge/*.log; do [ -f "$f" ] && { echo "# --- $f"; tail -15 "$f" | sed 's/^/# /'; }; done
    not_ok "local Slurm starts (slurmctld, slurmd, munged)" "$*"
    exit 1
}

slurm_start_munge() {
    local m=$SLURM_DIR/munge
    mkdir -p "$m"
    mungekey -c -k "$m/munge.key" >/dev/null 2>&1 || slurm_fail "mungekey -c failed"
    chown -R munge:munge "$m"
    # The socket's directory must be searchable by everyone (daemons, job
    # users); the key stays readable by munge alone.
    chmod 0711 "$m"
    chmod 0400 "$m/munge.key"
    runuser -u munge -- munged --socket="$m/munge.socket" --key-file="$m/munge.key" \
        --pid-file="$m/munged.pid" --log-file="$m/munged.log" --seed-file="$m/munged.seed" \
        >"$SLURM_DIR/log/munged.start" 2>&1 || slurm_fail "munged did not start: $(cat "$SLURM_DIR/log/munged.start")"
}

slurm_write_conf() {
    local host node mem
    host=$(hostname -s)
    node=$(slurmd -C | head -1 | sed 's/ RealMemory=.*//')
    mem=$(free -m | awk '/^Mem:/ {print int($2 * 0.9)}')
    # Addresses given, not looked up: a fresh machine or container need not
    # resolve its own hostname (a debootstrap root has no /etc/hosts), and
    # everything here is on this host's loopback.
    cat >"$SLURM_DIR/slurm.conf" <<CONF
ClusterName=weft$$
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(slurm_free_port)
SlurmdPort=$(slurm_free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SLURM_DIR/munge/munge.socket,cred_expire=5
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
# The steps' scratch (the PMIx plugin's spmix_appdir_* among it) in the
# test's own directory: a stale /tmp/spmix_appdir_0_10.1 left by a killed
# job once failed every later job 10's srun ("task launch failed").
TmpFS=$SLURM_DIR/tmp
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_DIR/log/slurmd.log
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=600
InactiveLimit=0
MailProg=/bin/true
# A requeued job waits cred_expire + 1 s before it may start again, and the
# main scheduler looks every sched_interval: both short, so tests of
# requeue take seconds, not minutes.
SchedulerParameters=sched_min_interval=0,sched_interval=2
$node RealMemory=$mem NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=weft Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
}

slurm_stop() {
    [ -n "$SLURM_DIR" ] && [ -d "$SLURM_DIR" ] || return 0
    local i pidf pid
    if [ -f "$SLURM_DIR/slurmctld.pid" ]; then
        scancel --full --quiet $(squeue -h -o %i 2>/dev/null) 2>/dev/null
        for i in $(seq 40); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.25; done
    fi
    for pidf in slurmd.pid slurmctld.pid munge/munged.pid; do
        pid=$(cat "$SLURM_DIR/$pidf" 2>/dev/null) || continue
        kill "$pid" 2>/dev/null || continue
        for i in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$pid" 2>/dev/null
    done
    # Job steps outlive the daemons (slurmstepd is its own process): any
    # process still naming this test's directories -- a job script, the
    # program a step ran -- is this test's and goes too; its slurmstepd
    # then ends. (A job left running here once trained on both cores for
    # half an hour after its test was killed.)
    kill_naming "$SLURM_DIR" "$TMPDIR_TEST/" # tests/procs.sh
    SLURM_DIR=""
}

slurm_start() {
    command -v slurmctld >/dev/null && command -v munged >/dev/null ||
        slurm_fail "slurmctld/munged are not installed: run mk/deps.sh install (slurm-wlm, munge)"
    [ "$(id -u)" -eq 0 ] || slurm_fail "the local Slurm runs its daemons as root (SlurmUser=root)"
    SLURM_DIR=$TMPDIR_TEST/slurm
    mkdir -p "$SLURM_DIR/state" "$SLURM_DIR/spool" "$SLURM_DIR/log" "$SLURM_DIR/tmp"
    chmod 0711 "$TMPDIR_TEST" "$SLURM_DIR"
    trap 'slurm_stop; rm -rf "$TMPDIR_TEST"' EXIT
    slurm_start_munge
    slurm_write_conf
    export SLURM_CONF=$SLURM_DIR/slurm.conf
    # A Slurm environment the tests themselves run in must not leak into jobs.
    unset $(env | sed -n 's/^\(SLURM_[A-Z_]*\)=.*/\1/p' | grep -v '^SLURM_CONF$') 2>/dev/null
    slurmctld -c -f "$SLURM_CONF" >"$SLURM_DIR/log/slurmctld.start" 2>&1 || slurm_fail "slurmctld did not start"
    slurmd -f "$SLURM_CONF" >"$SLURM_DIR/log/slurmd.start" 2>&1 || slurm_fail "slurmd did not start"
    local end=$((SECONDS + 30))
    while [ "$SECONDS" -lt "$end" ]; do
        sinfo -h -o %T 2>/dev/null | grep -qx idle && { ok "local Slurm starts and its node is idle"; return 0; }
        sleep 0.25
    done
    slurm_fail "the node is not idle after 30 s (sinfo: $(sinfo -h -o '%T %E' 2>&1))"
}

slurm_job_field() {
    scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1
}

slurm_wait_state() {
    local job=$1 states=$2 end=$((SECONDS + $3))
    while [ "$SECONDS" -lt "$end" ]; do
        slurm_job_field "$job" JobState | grep -Eqx "$states" && return 0
        sleep 0.25
    done
    return 1
}

# slurm_signal_batch JOB SIG LOG: scancel --batch --signal=SIG JOB until the
# batch script's trap says so in LOG ("weft: SIGSIG: asking the ranks"):
# up to 3 sends, 20 s apart. Once, in a full `make test`, a signal never
# reached the trap (the job trained on to its bound); a send is repeated
# only while the trap has not run, so the ranks see one signal in the
# normal case and at most a second after a lost one. On failure: what
# scancel said and slurmd's last lines, for whoever sees it next.
slurm_signal_batch() {
    local job=$1 sig=$2 log=$3 try i said=""
    for try in 1 2 3; do
        said+="send $try: $(scancel --batch --signal="$sig" "$job" 2>&1; echo "scancel exit $?"); "
        for i in $(seq 80); do
            grep -q "weft: SIG$sig: asking the ranks" "$log" 2>/dev/null && return 0
            sleep 0.25
        done
    done
    echo "$said"
    tail -20 "$SLURM_DIR/log/slurmd.log" 2>/dev/null
    return 1
}
