"""The issue-6 lab host, shared by the ``portscope local/compare`` acceptance test and the
audit's inside/outside test: listeners on all addresses, on loopback only and on one
address (IPv4 and IPv6, IPv6-only and dual-stack), iptables DROP and REJECT rules on
listening ports and DNAT port forwards. Everything lives in the lab host's namespace and
goes with it (the lab fixture tears it down, processes included)."""

from __future__ import annotations

import subprocess
import sys

from portscope.testing.lab import LabHost

DUAL_STACK = r"""
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 3000)); s.listen(64)
print("READY", flush=True)
while True:  # accept and close: repeated scans and service probes never fill the backlog
    c, _ = s.accept()
    c.close()
"""


def build_local_target(h: LabHost) -> LabHost:
    """Set *h* up (see the module doc); returns it."""
    a4, a6 = h.addr4, h.addr6
    h.listen(tcp=[22, 80, 3306, 1433], udp=[53], addr=["0.0.0.0", "::"])  # all (v6only)
    h.listen_tcp([20000], addr="0.0.0.0")  # all IPv4 addresses, above the scanned range
    h.listen_tcp([5432], addr=["127.0.0.1", "::1"])  # loopback only
    h.listen_tcp([9000], addr="127.0.0.1")  # loopback: the DNAT target
    h.listen_tcp([8080], addr=a4)  # one IPv4 address
    h.listen_tcp([8443], addr=a6)  # one IPv6 address
    dual = h.popen([sys.executable, "-c", DUAL_STACK], stdout=subprocess.PIPE, text=True)
    assert dual.stdout is not None and dual.stdout.readline().strip() == "READY"
    h.drop(3306)  # both families: the firewall works
    h.reject(1433, with_="tcp-reset")  # a REJECT that looks closed
    # port forwards: 8888 -> 127.0.0.1:9000 (IPv4), 2222 -> a4:22, [a6]:8888 -> [a6]:8443
    h.sysctl({"net.ipv4.conf.all.route_localnet": 1, "net.ipv4.conf.eth0.route_localnet": 1})
    h.iptables("-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "8888", "-j", "DNAT",
               "--to-destination", "127.0.0.1:9000")
    h.iptables("-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "2222", "-j", "DNAT",
               "--to-destination", f"{a4}:22")
    h.ip6tables("-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "8888", "-j", "DNAT",
                "--to-destination", f"[{a6}]:8443")
    return h
