"""The namespace lab itself: hosts answer as configured, nmap agrees, teardown is complete.

Every packet goes to lab hosts in 198.18.0.0/15 / 2001:db8::/32 created here.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from portscope.testing.lab import LOCK_DIR, Lab, LabCommandError, LabError, LabHost
from portscope.testing.nmap import run_nmap

OPEN = [2201, 2202, 2203]
DROPPED = 2301
RESET = 2302
ADMIN = 2303
NOTHING = 2304  # no listener, no rule: the kernel resets
DROPPED_RANGE = (2400, 2402)

EXPECTED_TCP = {
    **{p: ("open", "syn-ack") for p in OPEN},
    DROPPED: ("filtered", "no-response"),
    RESET: ("closed", "reset"),
    ADMIN: ("filtered", "admin-prohibited"),
    NOTHING: ("closed", "reset"),
    **{p: ("filtered", "no-response") for p in range(DROPPED_RANGE[0], DROPPED_RANGE[1] + 1)},
}
PORT_SPEC = ",".join(str(p) for p in sorted(EXPECTED_TCP))


@pytest.fixture(scope="module")
def firewalled(module_lab_host: LabHost) -> LabHost:
    host = module_lab_host
    host.listen_tcp(OPEN)
    host.drop(DROPPED)
    host.reject(RESET, with_="tcp-reset")
    host.reject(ADMIN, with_="icmp-admin-prohibited")
    host.drop_range(*DROPPED_RANGE)
    return host


def _root_state() -> tuple[str, str, str, str]:
    def out(*cmd: str) -> str:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    return (
        out("ip", "netns", "list"),
        out("ip", "-o", "link", "show"),
        out("ip", "-4", "route", "show", "table", "all"),
        out("ip", "-6", "route", "show", "table", "all"),
    )


def _assert_gone(host: LabHost, extra_nets: Sequence[str] = ()) -> None:
    netns, links, routes4, routes6 = _root_state()
    assert host.name not in netns.split()
    assert host.veth not in links
    for net in [str(host.net4), str(host.net6), *extra_nets]:
        assert net not in routes4 + routes6, f"route {net} left behind"
    assert host.gw4 not in routes4
    assert not (LOCK_DIR / "owners" / host.name).exists()


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie of ours counts as gone
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_nmap_sees_open_closed_filtered(firewalled: LabHost, nmap_bin: str, family: str) -> None:
    addr = firewalled.addr4 if family == "ipv4" else firewalled.addr6
    args = ["-sS", "-Pn", "-n", "-T4", "--max-retries", "1", "--reason", "-p", PORT_SPEC]
    hosts = run_nmap([*args, *(["-6"] if family == "ipv6" else []), addr], timeout=120)
    assert [h.address for h in hosts] == [addr]
    assert hosts[0].states("tcp") == EXPECTED_TCP


def test_nmap_udp_open_and_closed(module_lab_host: LabHost, nmap_bin: str) -> None:
    host = module_lab_host
    with host.listen_udp(40001, reply=b"pong"):
        hosts = run_nmap(
            ["-sU", "-Pn", "-n", "-T4", "--max-retries", "1", "--reason", "-p",
             "40001,40002", host.addr4],
            timeout=120,
        )  # fmt: skip
    assert hosts[0].states("udp") == {
        40001: ("open", "udp-response"),
        40002: ("closed", "port-unreach"),
    }


def test_udp_listener_replies_in_both_families(lab_host: LabHost) -> None:
    lab_host.listen_udp([5300, 5301], reply=b"hello")
    lab_host.listen_udp(5302, reply=None)  # echo
    for family, addr in ((socket.AF_INET, lab_host.addr4), (socket.AF_INET6, lab_host.addr6)):
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(3)
            for port in (5300, 5301):
                s.sendto(b"ping", (addr, port))
                data, peer = s.recvfrom(100)
                assert (data, peer[0], peer[1]) == (b"hello", addr, port)
            s.sendto(b"echo me", (addr, 5302))
            assert s.recvfrom(100)[0] == b"echo me"


def test_tcp_listener_banner_echo_and_ss(lab_host: LabHost) -> None:
    lab_host.listen_tcp([2500, 2501], banner=b"SSH-2.0-lab\r\n", echo=True)
    for addr in (lab_host.addr4, lab_host.addr6):
        with socket.create_connection((addr, 2501), timeout=3) as s:
            assert s.recv(100) == b"SSH-2.0-lab\r\n"
            s.sendall(b"hi there")
            assert s.recv(100) == b"hi there"
    listening = lab_host.ss()
    assert "0.0.0.0:2500" in listening
    assert "[::]:2501" in listening


def test_listener_bind_error_is_reported(lab_host: LabHost) -> None:
    lab_host.listen_tcp(2600)
    with pytest.raises(LabError, match="Address already in use"):
        lab_host.listen_tcp(2600)


def test_host_basics_no_default_route(lab_host: LabHost) -> None:
    assert ipaddress.ip_address(lab_host.addr4) in ipaddress.ip_network("198.18.0.0/15")
    assert ipaddress.ip_address(lab_host.addr6) in ipaddress.ip_network("2001:db8::/32")
    assert lab_host.run(["ip", "-4", "route", "show", "default"]).stdout.strip() == ""
    assert lab_host.run(["ip", "-6", "route", "show", "default"]).stdout.strip() == ""
    assert "UP" in lab_host.run(["ip", "-br", "link", "show", "lo"]).stdout
    with pytest.raises(LabCommandError) as info:
        lab_host.run(["sh", "-c", "echo oops >&2; exit 3"])
    assert info.value.returncode == 3
    assert "oops" in str(info.value)
    assert lab_host.run(["false"], check=False).returncode == 1


def test_sysctl_and_icmp_ratelimit(lab_host: LabHost) -> None:
    root_value = Path("/proc/sys/net/ipv4/icmp_ratelimit").read_text()
    lab_host.icmp_ratelimit(0)
    assert lab_host.get_sysctl("net.ipv4.icmp_ratelimit") == "0"
    assert lab_host.get_sysctl("net.ipv6.icmp.ratelimit") == "0"
    lab_host.sysctl({"net.ipv4.icmp_ratelimit": 1000})
    assert lab_host.get_sysctl("net.ipv4.icmp_ratelimit") == "1000"
    assert Path("/proc/sys/net/ipv4/icmp_ratelimit").read_text() == root_value  # root untouched


def test_loss_each_way(lab_host: LabHost) -> None:
    lab_host.listen_udp(5400, reply=b"r")
    lab_host.loss(100)
    with pytest.raises(OSError):
        socket.create_connection((lab_host.addr4, 5400), timeout=0.5).close()
    lab_host.loss(50)  # 50% each way: about a quarter of the requests get an answer
    answered = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(400):
            s.sendto(b"q", (lab_host.addr4, 5400))
        s.settimeout(1.0)
        try:
            while True:
                s.recvfrom(10)
                answered += 1
        except TimeoutError:
            pass
    assert 40 <= answered <= 170, answered
    lab_host.loss(0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(b"q", (lab_host.addr4, 5400))
        assert s.recvfrom(10)[0] == b"r"


def test_local_route_makes_a_block_answer(lab_host: LabHost) -> None:
    net4 = lab_host.add_local_route(prefixlen=24)
    net6 = lab_host.add_local_route(version=6)
    assert net4.prefixlen == 24
    assert net6.prefixlen == 64
    lab_host.listen(tcp=2700, udp=2701, reply=b"anyip")
    for net in (net4, net6):
        addr = str(net.network_address + 77)
        family = socket.AF_INET if net.version == 4 else socket.AF_INET6
        with socket.create_connection((addr, 2700), timeout=3) as s:
            assert s.getpeername()[0] == addr
        with socket.socket(family, socket.SOCK_DGRAM) as u:
            u.settimeout(3)
            u.sendto(b"x", (addr, 2701))
            data, peer = u.recvfrom(100)
            assert (data, peer[0]) == (b"anyip", addr)  # answered from the probed address
    with pytest.raises(LabError, match="outside the lab ranges"):
        lab_host.add_local_route("10.0.0.0/8")
    with pytest.raises(LabError, match="overlaps"):
        lab_host.add_local_route(str(net4))


def test_unowned_lab_address_is_unreachable_here(lab_host: LabHost) -> None:
    # guard route: a lab address no host owns must fail locally, never leave via eth0
    with pytest.raises(OSError) as info:
        socket.create_connection(("198.18.255.254", 9), timeout=3).close()
    assert info.value.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH)


def test_teardown_removes_everything(lab_required: None) -> None:
    with Lab() as lab:
        a = lab.add_host()
        b = lab.add_host(sysctls={"net.ipv4.icmp_ratelimit": 0})
        net = a.add_local_route(prefixlen=28)
        listener = a.listen(tcp=[2800, 2801], udp=2802)
        sleeper = b.popen(["sleep", "600"])
        b.drop(1)
        b.loss(10)
        assert a.name in _root_state()[0]
    for host in (a, b):
        _assert_gone(host, [str(net)])
    assert listener.proc.poll() is not None
    assert sleeper.poll() is not None


def test_teardown_on_exception(lab_required: None) -> None:
    hosts: list[LabHost] = []
    pids: list[int] = []

    def fail_inside_lab() -> None:
        with Lab() as lab:
            hosts.append(lab.add_host())
            pids.append(hosts[0].listen_tcp(2900).pid)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_inside_lab()
    _assert_gone(hosts[0])
    assert _pid_gone(pids[0])


_CHILD = textwrap.dedent(
    """
    import os, sys
    from portscope.testing.lab import Lab
    lab = Lab()
    hosts = [lab.add_host() for _ in range(int(sys.argv[1]))]
    if hosts:
        hosts[0].listen_tcp(7)
    print(" ".join(f"{h.name},{h.veth},{h.addr4},{h.addr6}" for h in hosts), flush=True)
    if sys.argv[2] == "die":
        os._exit(0)  # no teardown at all: leaves everything behind
    sys.stdin.read()
    lab.close()
    """
)


def _child(count: int, mode: str) -> subprocess.Popen[str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = dict(os.environ, PYTHONPATH=src)
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(count), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_cleanup_stale_removes_dead_owners_only(lab: Lab) -> None:
    from portscope.testing.lab import cleanup_stale

    mine = lab.add_host()  # alive owner: must survive
    proc = _child(2, "die")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    left = [entry.split(",") for entry in out.split()]
    assert len(left) == 2
    netns = _root_state()[0].split()
    assert all(name in netns for name, *_ in left)  # really left behind
    cleanup_stale()
    netns, links, routes4, _ = _root_state()
    for name, veth, addr4, _addr6 in left:
        assert name not in netns
        assert veth not in links
        assert addr4 not in routes4
    assert mine.name in netns
    assert mine.veth in links


def test_concurrent_processes_get_distinct_addresses(lab_required: None) -> None:
    children = [_child(4, "hold") for _ in range(3)]
    try:
        lines = []
        for child in children:
            assert child.stdout is not None
            lines.append(child.stdout.readline())
        entries = [e.split(",") for line in lines for e in line.split()]
        assert len(entries) == 12
        for column in range(4):  # names, veths, IPv4 and IPv6 addresses
            values = [e[column] for e in entries]
            assert len(set(values)) == len(values), values
        links = _root_state()[1]
        assert all(e[1] in links for e in entries)
    finally:
        deadline = time.monotonic() + 60
        for child in children:
            if child.stdin:
                child.stdin.close()
            child.wait(max(1.0, deadline - time.monotonic()))
    links = _root_state()[1]
    assert not any(e[1] in links for e in entries)
