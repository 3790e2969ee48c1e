# netns.sh -- three "hosts" on one machine for the multi-node tests and
# benchmarks (sourced; DESIGN.md section 7 has the recipe): network
# namespaces <prefix>a/b/c, each with a veth into a private subnet, joined
# by a bridge; mpirun starts its daemons "on" a host through an rsh agent
# that runs `ip netns exec`. Optionally each host gets its own disk: a
# directory bind-mounted at the same path inside the host's private mount
# namespace (node-local NVMe, as checkpoint.local_dir expects).
#
#   netns_init PREFIX SUBNET WORKDIR   names (NS, BR, the agent in WORKDIR)
#   netns_bind DISKS MOUNT             each host mounts DISKS/<its ns> at MOUNT
#   netns_up                           creates them; 1 with NETNS_WHY set when
#                                      this machine cannot (the caller skips)
#   netns_mpirun NP [mpirun args] PROG ARGS...
#                                      mpirun across the hosts (NETNS_HOSTS),
#                                      TCP on the subnet only, bounded by
#                                      WEFT_MPI_TIMEOUT (300 s)
#   netns_down                         removes all of it, processes first
# Used by tests/net/test_multihost.sh, tests/ckpt/test_tiers_nodes.sh and
# bench/ckpt_nodes.sh.

netns_init() {
    NETNS_P=$1 NETNS_SUBNET=$2 NETNS_WORK=$3
    NS=("${NETNS_P}a" "${NETNS_P}b" "${NETNS_P}c")
    BR=${NETNS_P}br
    NETNS_HOSTS="$NETNS_SUBNET.1:2,$NETNS_SUBNET.2:1,$NETNS_SUBNET.3:1"
    NETNS_AGENT=$NETNS_WORK/agent.sh
    NETNS_DISKS="" NETNS_MOUNT=""
}

netns_bind() { NETNS_DISKS=$1 NETNS_MOUNT=$2; }

netns_down() {
    local ns pid i
    for ns in "${NS[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    for i in 0 1 2; do ip link del "${NETNS_P}v$i" 2>/dev/null; done
    ip link del "$BR" 2>/dev/null
    true
}

# Whether host $1 reaches the bridge address: a reset back (nothing
# listens on port 9) or a connection.
netns_reach() {
    ip netns exec "$1" python3 -c "import socket, sys; s = socket.socket(); s.settimeout(0.5)
sys.exit(0 if s.connect_ex(('$NETNS_SUBNET.254', 9)) in (0, 111) else 1)" 2>/dev/null
}

netns_write_agent() {
    local mount=""
    [ -n "$NETNS_DISKS" ] && mount="mount --bind $NETNS_DISKS/\$ns $NETNS_MOUNT && "
    mkdir -p "$NETNS_WORK"
    cat >"$NETNS_AGENT" <<AGENT
#!/bin/sh
host=\$1; shift
case \$host in
$NETNS_SUBNET.1) ns=${NS[0]} ;; $NETNS_SUBNET.2) ns=${NS[1]} ;; $NETNS_SUBNET.3) ns=${NS[2]} ;;
*) echo "agent: unknown host \$host" >&2; exit 1 ;;
esac
# Same hostname and /tmp everywhere: each host's daemon gets its own
# session directory, or two "hosts" race to create the same one.
mkdir -p $NETNS_WORK/tmp-\$ns
export TMPDIR=$NETNS_WORK/tmp-\$ns
exec ip netns exec \$ns sh -c "$mount\$*"
AGENT
    chmod +x "$NETNS_AGENT"
}

netns_up() {
    local i ns tries
    NETNS_WHY=""
    if ! command -v ip >/dev/null || ! ip netns add "${NS[0]}" 2>/dev/null; then
        NETNS_WHY="cannot create network namespaces here (needs iproute2 and CAP_NET_ADMIN)"
        return 1
    fi
    if ip -4 addr | grep -q "inet $NETNS_SUBNET\."; then
        NETNS_WHY="subnet $NETNS_SUBNET.0/24 is in use on this machine"
        return 1
    fi
    ip link add "$BR" type bridge && ip addr add "$NETNS_SUBNET.254/24" dev "$BR" && ip link set "$BR" up || return 2
    for i in 0 1 2; do
        [ "$i" -gt 0 ] && { ip netns add "${NS[$i]}" || return 2; }
        ip link add "${NETNS_P}v$i" type veth peer name wnet0 netns "${NS[$i]}" || return 2
        ip link set "${NETNS_P}v$i" master "$BR" up || return 2
        ip netns exec "${NS[$i]}" ip addr add "$NETNS_SUBNET.$((i + 1))/24" dev wnet0 || return 2
        ip netns exec "${NS[$i]}" ip link set wnet0 up || return 2
        ip netns exec "${NS[$i]}" ip link set lo up || return 2
    done
    # links take a moment to carry traffic: poll, bounded (5 s per host)
    for ns in "${NS[@]}"; do
        for tries in $(seq 50); do netns_reach "$ns" && break; sleep 0.1; done
        netns_reach "$ns" || { NETNS_WHY="host $ns does not reach the bridge"; return 2; }
    done
    netns_write_agent
    if [ -n "$NETNS_DISKS" ]; then
        mkdir -p "$NETNS_MOUNT" "$NETNS_DISKS/${NS[0]}" "$NETNS_DISKS/${NS[1]}" "$NETNS_DISKS/${NS[2]}"
        if ! ip netns exec "${NS[1]}" sh -c "mount --bind $NETNS_DISKS/${NS[1]} $NETNS_MOUNT && touch $NETNS_MOUNT/probe" ||
            [ ! -e "$NETNS_DISKS/${NS[1]}/probe" ] || [ -e "$NETNS_MOUNT/probe" ]; then
            NETNS_WHY="bind mounts inside a namespace are not permitted here"
            return 1
        fi
        rm -f "$NETNS_DISKS/${NS[1]}/probe"
    fi
    return 0
}

netns_mpirun() {
    local np=$1; shift
    timeout -k 5 "${WEFT_MPI_TIMEOUT:-300}" mpirun -np "$np" -H "$NETNS_HOSTS" --mca plm_rsh_agent "$NETNS_AGENT" \
        --mca btl tcp,self --mca btl_tcp_if_include "$NETNS_SUBNET.0/24" \
        --mca oob_tcp_if_include "$NETNS_SUBNET.0/24" "$@"
}
