"""netns.py -- two "hosts" on one machine for the fault campaign's `link`
kind (DESIGN.md section 7; tests/net/test_multihost.sh builds the same with
one network): a network namespace per host, each with two links,

  control  wctl   CTL.<i+1>/24  on bridge <p>c: mpirun's daemons (oob)
  data     wdata  DATA.<i+1>/24 on bridge <p>d: weft's tcp transport, MPI's btl

so that cutting a host's data link (`ip link set wdata down` inside its
namespace) breaks the job's collectives while mpirun can still end the job
-- as a cluster's management network outlives a failed fabric link. Only
these namespaces' own addresses carry traffic; every wait is bounded;
close() removes the namespaces, links and bridges, also after a failure.
"""
import os
import subprocess
import time

CTL, DATA = "10.213.81", "10.213.82"


def _ip(*args, ns=None):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + ["ip"] + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise OSError(f"{' '.join(cmd)}: {r.stderr.strip()}")


def _reaches(ns, addr):
    """From namespace ns, does addr:9 answer (a reset counts: reachable)?"""
    probe = (f"import socket, sys; s = socket.socket(); s.settimeout(0.5); "
             f"sys.exit(0 if s.connect_ex(('{addr}', 9)) in (0, 111) else 1)")
    return subprocess.run(["ip", "netns", "exec", ns, "python3", "-c", probe],
                          capture_output=True).returncode == 0


class Hosts:
    """Two namespace hosts. up() returns None, or why they cannot be made."""

    def __init__(self, base, n=2):
        self.p = f"wf{os.getpid() % 100000}"
        self.n, self.base = n, base
        self.ns = [f"{self.p}h{i}" for i in range(n)]
        self.made = False
        self.agent = os.path.join(base, "agent.sh")

    def data_addr(self, i):
        return f"{DATA}.{i + 1}"

    def up(self):
        if os.geteuid() != 0:
            return "network namespaces need root (CAP_NET_ADMIN)"
        used = subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True).stdout
        if f"inet {CTL}." in used or f"inet {DATA}." in used:
            return f"subnet {CTL}.0/24 or {DATA}.0/24 is in use on this machine"
        try:
            self.made = True
            self._build()
        except OSError as e:
            return f"cannot create network namespaces here: {e}"
        for i in range(self.n):
            for net in (CTL, DATA):
                if not self._wait_reach(self.ns[i], f"{net}.254"):
                    return f"namespace {self.ns[i]} does not reach {net}.254 within 10 s"
        self._write_agent()
        return None

    def _build(self):
        for net, tag in ((CTL, "c"), (DATA, "d")):
            br = f"{self.p}{tag}"
            _ip("link", "add", br, "type", "bridge")
            _ip("addr", "add", f"{net}.254/24", "dev", br)
            _ip("link", "set", br, "up")
        for i, ns in enumerate(self.ns):
            _ip("netns", "add", ns)
            _ip("link", "set", "lo", "up", ns=ns)
            for net, tag, dev in ((CTL, "c", "wctl"), (DATA, "d", "wdata")):
                veth = f"{self.p}{tag}{i}"
                _ip("link", "add", veth, "type", "veth", "peer", "name", dev, "netns", ns)
                _ip("link", "set", veth, "master", f"{self.p}{tag}", "up")
                _ip("addr", "add", f"{net}.{i + 1}/24", "dev", dev, ns=ns)
                _ip("link", "set", dev, "up", ns=ns)

    def _wait_reach(self, ns, addr, secs=10.0):
        end = time.time() + secs
        while time.time() < end:
            if _reaches(ns, addr):
                return True
            time.sleep(0.1)
        return False

    def _write_agent(self):
        cases = " ".join(f"{CTL}.{i + 1}) ns={ns} ;;" for i, ns in enumerate(self.ns))
        with open(self.agent, "w") as f:
            f.write(f"""#!/bin/sh
# mpirun's rsh agent: start a daemon "on" a host = in its namespace, with a
# session directory of its own (one hostname and /tmp for every host).
host=$1; shift
case $host in {cases} *) echo "agent: unknown host $host" >&2; exit 1 ;; esac
mkdir -p {self.base}/tmp-$ns
export TMPDIR={self.base}/tmp-$ns
exec ip netns exec $ns sh -c "$*"
""")
        os.chmod(self.agent, 0o755)

    def mpirun(self, env):
        """mpirun's command head for one rank per host; WEFT_FAULT forwarded."""
        hosts = ",".join(f"{CTL}.{i + 1}:1" for i in range(self.n))
        cmd = ["mpirun", "-np", str(self.n), "-H", hosts, "--mca", "plm_rsh_agent", self.agent,
               "--mca", "oob_tcp_if_include", f"{CTL}.0/24", "--mca", "btl", "tcp,self",
               "--mca", "btl_tcp_if_include", f"{DATA}.0/24"]
        return cmd + (["-x", "WEFT_FAULT"] if "WEFT_FAULT" in env else [])

    def weft_args(self):
        return ["--comm.backend=tcp", "--comm.tcp_ifname=wdata"]

    def cut(self, i):
        _ip("link", "set", "wdata", "down", ns=self.ns[i])

    def restore(self, i):
        """The data link up again and carrying traffic (bounded: 10 s); True if so."""
        _ip("link", "set", "wdata", "up", ns=self.ns[i])
        return self._wait_reach(self.ns[i], f"{DATA}.254")

    def kill_all(self):
        """Every process left in the namespaces (a rank or daemon of a failed job)."""
        for ns in self.ns:
            r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            for pid in r.stdout.split():
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass

    def close(self):
        if not self.made:
            return
        self.kill_all()
        for ns in self.ns:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for tag in ("c", "d"):
            for i in range(self.n):
                subprocess.run(["ip", "link", "del", f"{self.p}{tag}{i}"], capture_output=True)
            subprocess.run(["ip", "link", "del", f"{self.p}{tag}"], capture_output=True)
