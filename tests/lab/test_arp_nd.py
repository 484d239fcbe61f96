"""On-link host discovery (nmap's -PR): a lab host whose firewall drops every IP probe is
still found up by ARP (IPv4) and Neighbor Discovery (IPv6), with its MAC address; an
on-link address nobody owns is down; --disable-arp-ping falls back to the IP probes (which
the firewall drops: down). Compared with nmap -sn -PR on the same addresses."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portscope.importers import nmapxml
from portscope.model import Host, ScanRun
from portscope.testing.lab import LabHost
from portscope.testing.nmap import nmap_path


@pytest.fixture(scope="module")
def walled(module_lab_host: LabHost) -> LabHost:
    """A host that drops every IP packet (ICMP, TCP, UDP) except IPv6 neighbour discovery
    (without which IPv6 does not work at all; ARP is not IP: iptables never sees it)."""
    host = module_lab_host
    host.listen_tcp([80, 443])
    host.iptables("-P", "INPUT", "DROP")
    for t in ("neighbour-solicitation", "neighbour-advertisement"):
        host.ip6tables("-A", "INPUT", "-p", "icmpv6", "--icmpv6-type", t, "-j", "ACCEPT")
    host.ip6tables("-P", "INPUT", "DROP")
    return host


def scan(*args: str, tmp: Path) -> tuple[ScanRun, str]:
    out = tmp / "out.json"
    proc = subprocess.run([sys.executable, "-m", "portscope", "scan", *args, "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return ScanRun.from_dict(json.loads(out.read_text())), proc.stdout


def only_host(run: ScanRun) -> Host:
    (host,) = run.hosts
    return host


@pytest.mark.parametrize(("family", "reason"), [("ipv4", "arp-response"),
                                                ("ipv6", "nd-response")])
def test_firewalled_host_is_up_by_arp_or_nd(walled: LabHost, tmp_path: Path, family: str,
                                            reason: str) -> None:
    addr = walled.addr4 if family == "ipv4" else walled.addr6
    run, _ = scan("-sn", addr, tmp=tmp_path)
    host = only_host(run)
    assert (host.status.value, host.reason) == ("up", reason)
    assert host.mac == walled.mac
    assert host.rtt_ms is not None and host.rtt_ms < 1000
    # the IP probes alone get nothing from it
    t0 = time.monotonic()
    run, _ = scan("-sn", "--disable-arp-ping", addr, tmp=tmp_path)
    host = only_host(run)
    assert (host.status.value, host.reason, host.mac) == ("down", "no-response", None)
    assert time.monotonic() - t0 < 30


def test_unowned_onlink_addresses_are_down(walled: LabHost, tmp_path: Path) -> None:
    block = walled.add_onlink_block()
    free4 = str(block.network_address + 1)
    free6 = str(ipaddress.IPv6Address(walled.addr6) + 1)  # same /64 as the host, unused
    t0 = time.monotonic()
    run, _ = scan("-sn", "-T4", free4, free6, walled.addr4, walled.addr6, tmp=tmp_path)
    took = time.monotonic() - t0
    got = {h.address: (h.status.value, h.reason, h.mac) for h in run.hosts}
    assert got == {
        free4: ("down", "no-response", None),
        free6: ("down", "no-response", None),
        walled.addr4: ("up", "arp-response", walled.mac),
        walled.addr6: ("up", "nd-response", walled.mac),
    }
    assert run.stats.hosts_up == 2
    assert took < 20


def test_port_scan_after_arp_discovery(walled: LabHost, tmp_path: Path) -> None:
    """Discovery by ARP lets the port scan run; the dropped ports are filtered, and the
    XML report carries the MAC address as nmap's does."""
    xml = tmp_path / "out.xml"
    run, text = scan("-sS", "-T4", "-p", "80,443", walled.addr4, "-oX", str(xml), tmp=tmp_path)
    host = only_host(run)
    assert (host.status.value, host.reason, host.mac) == ("up", "arp-response", walled.mac)
    assert {p.port: p.state.value for p in host.ports} == {80: "filtered", 443: "filtered"}
    assert f"MAC Address: {walled.mac}" in text
    back = only_host(nmapxml.parse(xml.read_bytes()))
    assert back.mac == walled.mac and back.reason == "arp-response"


@pytest.mark.skipif(nmap_path() is None, reason="nmap not installed")
def test_same_verdict_as_nmap_ping_scan(walled: LabHost, tmp_path: Path) -> None:
    block = walled.add_onlink_block()
    free4 = str(block.network_address + 2)
    free6 = str(ipaddress.IPv6Address(walled.addr6) + 2)
    targets = [walled.addr4, free4]
    ours, _ = scan("-sn", *targets, tmp=tmp_path)
    ours6, _ = scan("-sn", walled.addr6, free6, tmp=tmp_path)
    theirs: dict[str, tuple[str, str, str | None]] = {}
    for extra, addrs in (([], targets), (["-6"], [walled.addr6, free6])):
        proc = subprocess.run([nmap_path() or "nmap", "-n", "-sn", "-PR", "--reason", *extra,
                               *addrs, "-oX", "-"], capture_output=True, timeout=120,
                              check=True)
        for h in nmapxml.parse(proc.stdout).hosts:
            mac = h.mac.lower() if h.mac else None
            theirs[h.address] = (h.status.value, h.reason, mac)
    mine = {h.address: (h.status.value, h.reason, h.mac)
            for run in (ours, ours6) for h in run.hosts}
    # nmap leaves down hosts out of its XML: compare the up ones, and that the rest is down
    for addr, verdict in theirs.items():
        assert mine[addr] == verdict, addr
    assert {a for a, v in mine.items() if v[0] == "up"} == {a for a, v in theirs.items()
                                                           if v[0] == "up"}
