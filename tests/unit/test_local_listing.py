# ruff: noqa: E501
"""Inventories from netstat and ss text of other platforms."""

from __future__ import annotations

import pytest

from portscope.errors import DataError
from portscope.local.listing import parse_listing, with_services
from portscope.model import BindScope


def rows(text: str) -> list[tuple[str, str, int, int | None, str | None]]:
    inv = parse_listing(text)
    return [(s.protocol.value, s.display_address, s.port, s.pid, s.process)
            for s in inv.sockets]


def test_windows_netstat_ano() -> None:
    text = """
  Proto  Local Address          Foreign Address        State           PID
  TCP    0.0.0.0:135            0.0.0.0:0              LISTENING       948
  TCP    10.0.0.5:139           0.0.0.0:0              LISTENING       4
  TCP    10.0.0.5:50000         52.1.1.1:443           ESTABLISHED     1234
  TCP    [::]:445               [::]:0                 LISTENING       4
  TCP    [::1]:5357             [::]:0                 LISTENING       4
  UDP    0.0.0.0:500            *:*                                    3000
  UDP    [fe80::1%7]:1900       *:*                                    2800
  UDP    10.0.0.5:60000         8.8.8.8:53                             2800
"""
    pids = {r[2]: r[3] for r in rows(text)}
    assert pids == {135: 948, 139: 4, 445: 4, 5357: 4, 500: 3000, 1900: 2800}
    got = {(r[0], r[1], r[2]) for r in rows(text)}
    assert got == {("tcp", "0.0.0.0", 135), ("tcp", "10.0.0.5", 139), ("tcp", "[::]", 445),
                   ("tcp", "[::1]", 5357), ("udp", "0.0.0.0", 500),
                   ("udp", "[fe80::1]%7", 1900)}
    inv = parse_listing(text)
    assert [a.address for a in inv.addresses] == ["10.0.0.5", "fe80::1"]


def test_linux_netstat_tulnp() -> None:
    text = """Active Internet connections (only servers)
Proto Recv-Q Send-Q Local Address           Foreign Address         State       PID/Program name
tcp        0      0 0.0.0.0:22              0.0.0.0:*               LISTEN      812/sshd: /usr/sbin
tcp        0      0 127.0.0.1:5432          0.0.0.0:*               LISTEN      -
tcp6       0      0 :::22                   :::*                    LISTEN      812/sshd: /usr/sbin
udp        0      0 0.0.0.0:68              0.0.0.0:*                           700/dhclient
udp6       0      0 :::546                  :::*                                -
udp        0      0 10.0.0.5:40000          10.0.0.1:53             ESTABLISHED 900/x
"""
    got = {(r[0], r[1], r[2], r[3], r[4]) for r in rows(text)}
    assert got == {("tcp", "0.0.0.0", 22, 812, "sshd:"), ("tcp", "127.0.0.1", 5432, None, None),
                   ("tcp", "[::]", 22, 812, "sshd:"), ("udp", "0.0.0.0", 68, 700, "dhclient"),
                   ("udp", "[::]", 546, None, None)}


def test_ss_ltnup_with_processes_and_interfaces() -> None:
    text = """Netid State  Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess
udp   UNCONN 0      0      127.0.0.53%lo:53         0.0.0.0:*    users:(("systemd-resolve",pid=600,fd=13))
udp   ESTAB  0      0      10.0.0.5:40000      10.0.0.1:53
tcp   LISTEN 0      511          *:80               *:*    users:(("nginx",pid=10,fd=6),("nginx",pid=11,fd=6))
tcp   LISTEN 0      128       [::]:22            [::]:*    users:(("sshd",pid=812,fd=4))
tcp   LISTEN 0      4096 [fe80::1]%eth0:8080      [::]:*
"""
    inv = parse_listing(text)
    by_port = {s.port: s for s in inv.sockets}
    assert set(by_port) == {53, 80, 22, 8080}
    assert by_port[53].interface == "lo" and by_port[53].scope is BindScope.LOOPBACK
    assert by_port[80].display_address == "*" and by_port[80].v6only is False
    assert [p.pid for p in by_port[80].processes] == [10, 11]
    assert by_port[8080].interface == "eth0" and by_port[8080].address == "fe80::1"


def test_bsd_netstat_an() -> None:
    text = """Active Internet connections (including servers)
Proto Recv-Q Send-Q  Local Address          Foreign Address        (state)
tcp4       0      0  *.22                   *.*                    LISTEN
tcp46      0      0  *.5000                 *.*                    LISTEN
tcp6       0      0  *.7000                 *.*                    LISTEN
tcp4       0      0  127.0.0.1.631          *.*                    LISTEN
tcp6       0      0  ::1.631                *.*                    LISTEN
tcp4       0      0  10.0.0.5.50000         52.1.1.1.443           ESTABLISHED
udp4       0      0  *.5353                 *.*
udp6       0      0  fe80::1%lo0.123        *.*
"""
    got = {(r[0], r[1], r[2]) for r in rows(text)}
    assert got == {("tcp", "0.0.0.0", 22), ("tcp", "*", 5000), ("tcp", "[::]", 7000),
                   ("tcp", "127.0.0.1", 631), ("tcp", "[::1]", 631),
                   ("udp", "0.0.0.0", 5353), ("udp", "[fe80::1]%lo0", 123)}


@pytest.mark.parametrize("text", ["", "hello\nworld\n", "{not json",
                                  "TCP 1.2.3.4:99999 0.0.0.0:0 LISTENING\n",
                                  "tcp LISTEN 0 1 nonsense:22 *:*\n"])
def test_nothing_recognised_is_a_data_error(text: str) -> None:
    with pytest.raises(DataError, match="no listening sockets"):
        parse_listing(text)


def test_with_services() -> None:
    inv = parse_listing("TCP 0.0.0.0:22 0.0.0.0:0 LISTENING\n")
    named = with_services(inv, lambda port, proto: {22: "ssh"}.get(port))
    assert named.sockets[0].service == "ssh"
