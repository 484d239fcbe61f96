# ruff: noqa: E501
"""Re-record the socket tables in this directory (root; uses the namespace lab).

    sudo .venv/bin/python tests/data/local/record.py

A lab host gets listeners on all addresses, loopback, a specific address (IPv4, IPv6,
IPv4-mapped IPv6, dual-stack ::), UDP sockets (bound, connected), an established TCP
connection and a TIME-WAIT one; its /proc/net files, raw sock_diag replies and
``ss -ltnup`` are saved here.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from portscope.testing.lab import Lab

HERE = Path(__file__).parent

SERVER = r"""
import socket, sys, time
def tcp(fam, addr, port, v6only=None):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    s.bind((addr, port)); s.listen(8); return s
def udp(fam, addr, port, v6only=None, connect=None):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    s.bind((addr, port))
    if connect: s.connect(connect)
    return s
A4, A6 = sys.argv[1], sys.argv[2]
keep = [
    tcp(socket.AF_INET, "0.0.0.0", 22),
    tcp(socket.AF_INET6, "::", 22, 1),
    tcp(socket.AF_INET6, "::", 80, 0),
    tcp(socket.AF_INET, "127.0.0.1", 5432),
    tcp(socket.AF_INET6, "::1", 5432, 1),
    tcp(socket.AF_INET, A4, 8080),
    tcp(socket.AF_INET6, A6, 8443, 1),
    tcp(socket.AF_INET6, "::ffff:" + A4, 9090, 0),
    udp(socket.AF_INET, "0.0.0.0", 53),
    udp(socket.AF_INET6, "::", 53, 1),
    udp(socket.AF_INET, "127.0.0.1", 323),
    udp(socket.AF_INET6, "::", 5353, 0),
    udp(socket.AF_INET, A4, 40000, connect=("127.0.0.1", 9)),
]
c = socket.create_connection(("127.0.0.1", 5432))
a, _ = keep[3].accept()
t = socket.create_connection(("127.0.0.1", 5432)); t2, _ = keep[3].accept(); t.close(); t2.close()
print("ready", flush=True)
time.sleep(600)
"""

DUMP = r"""
import socket, sys
sys.path.insert(0, sys.argv[1])
from portscope.local import sockdiag
for seq, (proto, fam) in enumerate([("tcp","ipv4"),("tcp","ipv6"),("udp","ipv4"),("udp","ipv6")], 1):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, sockdiag.NETLINK_SOCK_DIAG)
    s.sendto(sockdiag.dump_request(proto, fam, seq=seq), (0, 0))
    chunks = []
    while True:
        data = s.recv(1 << 18)
        chunks.append(data.hex())
        r = sockdiag.parse_dump(data, seq=seq)
        if r.done: break
    print(f"{proto}{'6' if fam == 'ipv6' else ''} " + " ".join(chunks))
"""


def main() -> int:
    src = str(Path(__file__).resolve().parents[3] / "src")
    with Lab() as lab:
        host = lab.add_host()
        proc = host.popen([sys.executable, "-c", SERVER, host.addr4, host.addr6],
                          stdout=-1, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.2)
        for name in ("tcp", "tcp6", "udp", "udp6"):
            (HERE / f"proc_net_{name}.txt").write_text(host.run(["cat", f"/proc/net/{name}"]).stdout)
        (HERE / "sockdiag_dump.hex").write_text(
            host.run([sys.executable, "-c", DUMP, src]).stdout)
        ss = host.run(["ss", "-ltnu"]).stdout
        (HERE / "ss_ltnu.txt").write_text(ss)
        (HERE / "addresses.txt").write_text(f"{host.addr4} {host.addr6}\n")
        print(ss)
    return 0


if __name__ == "__main__":
    sys.exit(main())
