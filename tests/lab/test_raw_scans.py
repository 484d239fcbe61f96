"""Issue 3's acceptance: the raw scans give the same state as nmap on every port of a lab
host with open ports, DROP and REJECT (admin-prohibited, tcp-reset) rules, over IPv4 and
IPv6; UDP against real daemons (dnsmasq, an NTP server, snmpd)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from portscope.model import ScanRun, expand_host
from portscope.testing import daemons
from portscope.testing.lab import LabHost
from portscope.testing.nmap import run_nmap

DROPPED = [7, 135, 445, 3389, 40000]
DROPPED_RANGE = (20000, 20999)
ADMIN_PROHIBITED = [23, 2049, 61000]
RESET = [1433, 8081]


def open_ports() -> list[int]:
    rng = random.Random(3)
    ruled = set(DROPPED) | set(ADMIN_PROHIBITED) | set(RESET)
    pool = [p for p in range(1, 65536)
            if p not in ruled and not DROPPED_RANGE[0] <= p <= DROPPED_RANGE[1]]
    return sorted({22, 80, 443, 65535, 1, *rng.sample(pool, 30)})


@pytest.fixture(scope="module")
def target(module_lab_host: LabHost) -> LabHost:
    host = module_lab_host
    host.icmp_ratelimit(0)  # exact comparison: nmap and we both see every ICMP error
    host.listen_tcp(open_ports())
    host.drop(DROPPED)
    host.drop_range(*DROPPED_RANGE)
    host.reject(ADMIN_PROHIBITED, with_="icmp-admin-prohibited")
    host.reject(RESET, with_="tcp-reset")
    return host


def scan(*args: str, tmp: Path) -> dict[int, tuple[str, str]]:
    out = tmp / "out.json"
    proc = subprocess.run([sys.executable, "-m", "portscope", "scan", *args, "--json", str(out),
                           "--no-fallback"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    run = ScanRun.from_dict(json.loads(out.read_text()))
    (host,) = run.hosts
    return {p.port: (p.state.value, p.reason) for p in expand_host(host).ports}


def nmap_states(*args: str, protocol: str = "tcp") -> dict[int, tuple[str, str]]:
    (host,) = run_nmap(["-n", "-Pn", "--reason", *args])
    return host.states(protocol)


PORTS = "1-3000,20000-20999,40000,61000,65535"


@pytest.mark.slow
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_syn_full_range_finds_every_open_port(target: LabHost, tmp_path: Path,
                                              family: str) -> None:
    addr = target.addr4 if family == "ipv4" else target.addr6
    got = scan("-sS", "-p-", "-T4", "-Pn", addr, tmp=tmp_path)
    assert len(got) == 65535
    assert sorted(p for p, (s, _) in got.items() if s == "open") == open_ports()
    filtered = {p for p, (s, _) in got.items() if s == "filtered"}
    assert filtered == set(DROPPED) | set(ADMIN_PROHIBITED) | set(
        range(DROPPED_RANGE[0], DROPPED_RANGE[1] + 1))
    for p in ADMIN_PROHIBITED:
        assert got[p][1] == "admin-prohibited"
    for p in RESET:
        assert got[p] == ("closed", "reset")


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_without_mmsg_the_same_states(target: LabHost, tmp_path: Path, family: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # one packet per system call both ways (where recvmmsg/sendmmsg are not reachable):
    # the fallback gives the batched paths' states
    addr = target.addr4 if family == "ipv4" else target.addr6
    batched = scan("-sS", "-p", PORTS, "-T4", "-Pn", addr, tmp=tmp_path)
    monkeypatch.setenv("PORTSCOPE_NO_MMSG", "1")
    single = scan("-sS", "-p", PORTS, "-T4", "-Pn", addr, tmp=tmp_path)
    assert single == batched
    assert sorted(p for p, (s, _) in single.items() if s == "open") == \
        [p for p in open_ports() if p <= 3000 or p in (40000, 61000, 65535)]


@pytest.mark.parametrize(("flag", "family"), [(f, fam) for f in "SFNXAW"
                                              for fam in ("ipv4", "ipv6")])
def test_states_equal_nmap(target: LabHost, tmp_path: Path, flag: str, family: str,
                           nmap_bin: str) -> None:
    addr = target.addr4 if family == "ipv4" else target.addr6
    ours = scan(f"-s{flag}", "-p", PORTS, "-T4", "-Pn", addr, tmp=tmp_path)
    theirs = nmap_states(f"-s{flag}", "-p", PORTS, "-T4", *(["-6"] if family == "ipv6" else []),
                         addr)
    assert ours.keys() == theirs.keys()
    diff = {p: (ours[p], theirs[p]) for p in ours if ours[p][0] != theirs[p][0]}
    sample = dict(list(diff.items())[:10])
    assert not diff, f"states differ from nmap on {len(diff)} ports: {sample}"
    # the reasons agree too, where nmap names one we also name
    for p in ADMIN_PROHIBITED:
        if p in ours:
            assert ours[p][1] == theirs[p][1] == "admin-prohibited"


UDP_DROPPED = [69, 500]
UDP_CLOSED_SAMPLE = [7, 9, 19, 111, 137, 1900]


@pytest.fixture(scope="module")
def udp_target(module_lab: object) -> LabHost:
    host = module_lab.add_host()  # type: ignore[attr-defined]
    host.icmp_ratelimit(0)
    daemons.start_dnsmasq(host)
    daemons.start_ntp(host)
    daemons.start_snmpd(host)
    host.drop(UDP_DROPPED, "udp")
    return host


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_udp_states_equal_nmap(udp_target: LabHost, tmp_path: Path, family: str,
                               nmap_bin: str) -> None:
    addr = udp_target.addr4 if family == "ipv4" else udp_target.addr6
    ports = ",".join(map(str, sorted({53, 123, 161, *UDP_DROPPED, *UDP_CLOSED_SAMPLE})))
    ours = scan("-sU", "-p", ports, "-T4", "-Pn", addr, tmp=tmp_path)
    assert ours[53][0] == ours[123][0] == ours[161][0] == "open"
    for p in UDP_DROPPED:
        assert ours[p][0] == "open|filtered"
    for p in UDP_CLOSED_SAMPLE:
        assert ours[p] == ("closed", "port-unreach")
    theirs = nmap_states("-sU", "-p", ports, "-T4", *(["-6"] if family == "ipv6" else []), addr,
                         protocol="udp")
    assert {p: s for p, (s, _) in ours.items()} == {p: s for p, (s, _) in theirs.items()}


def test_udp_under_default_icmp_ratelimit_never_misreports(lab: object,
                                                           tmp_path: Path) -> None:
    """Linux's default ICMP rate limit: answering services are found, closed ports are
    closed or explicitly unresolved (icmp-ratelimit), never open."""
    host = lab.add_host()  # type: ignore[attr-defined]
    host.listen_udp([53, 123, 161])
    got = scan("-sU", "--top-ports", "100", "-T4", "-Pn", host.addr4, tmp=tmp_path)
    assert len(got) == 100
    for p in (53, 123, 161):
        assert got[p] == ("open", "udp-response")
    for p, (state, reason) in got.items():
        if p in (53, 123, 161):
            continue
        assert (state, reason) in (("closed", "port-unreach"),
                                   ("open|filtered", "icmp-ratelimit")), (p, state, reason)


def test_fallback_without_privileges(tmp_path: Path, lab_host: LabHost) -> None:
    """Without CAP_NET_RAW -sS explains and runs -sT; --no-fallback refuses (exit 77)."""
    lab_host.listen_tcp([22])
    code = ("import sys, portscope.engine.rawsock as r; "
            "r.raw_available = lambda: 'no permission to open raw sockets'; "
            "from portscope.cli import main; sys.argv = ['portscope'] + sys.argv[1:]; main()")
    args = ["scan", "-sS", "-p", "21,22", "-Pn", lab_host.addr4]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "using -sT" in proc.stderr and "CAP_NET_RAW" in proc.stderr
    assert "22/tcp" in proc.stdout and "open" in proc.stdout
    proc = subprocess.run([sys.executable, "-c", code, *args, "--no-fallback"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 77
    assert "CAP_NET_RAW" in proc.stderr and "Traceback" not in proc.stderr
