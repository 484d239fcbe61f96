"""Issue 6 acceptance: a lab host with listeners on all addresses, loopback only and
specific addresses (IPv4 and IPv6, IPv6-only and dual-stack), iptables DROP and REJECT
rules on listening ports and DNAT port forwards.

* ``portscope local --netns NS`` lists exactly what ``ss -ltnup`` lists there (with PIDs);
* ``portscope compare --netns NS ADDR4 ADDR6 -p ...`` (a connect scan from the root
  namespace, the outside vantage point) puts every port in the expected class.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _local_target import build_local_target

from portscope.local.listing import parse_listing
from portscope.model import Comparison, Inventory
from portscope.testing.lab import LabHost

SCAN_PORTS = "1-10000"


@pytest.fixture(scope="module")
def target(module_lab_host: LabHost) -> LabHost:
    return build_local_target(module_lab_host)


def portscope(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "portscope", *args], capture_output=True,
                          text=True, timeout=600)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def rows(inv: Inventory, *, pids: bool = True) -> set[tuple[object, ...]]:
    return {(s.protocol.value, s.display_address, s.port,
             tuple(sorted(p.pid for p in s.processes)) if pids else ())
            for s in inv.sockets}


def test_local_netns_lists_exactly_what_ss_lists(target: LabHost, tmp_path: Path) -> None:
    out = tmp_path / "inv.json"
    proc = portscope("local", "--netns", target.name, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    inv = Inventory.from_dict(json.loads(out.read_text()))
    ss = parse_listing(target.ss())
    assert rows(inv) == rows(ss)
    assert len(inv.sockets) == 17
    assert inv.netns == target.name and inv.process_detail == "full"
    assert all(s.processes and "python" in (s.processes[0].name or "") for s in inv.sockets)
    assert {a.address for a in inv.addresses} >= {target.addr4, target.addr6, "127.0.0.1"}
    # the table names the namespace and the dual-stack socket as ss does
    assert f"network namespace {target.name}" in proc.stdout
    assert any(line.split()[:3] == ["tcp", "*", "3000"] for line in proc.stdout.splitlines())


@pytest.mark.parametrize("collector", ["procfs", "psutil"])
def test_fallback_collectors_agree(target: LabHost, collector: str) -> None:
    proc = portscope("local", "--netns", target.name, "--collector", collector, "--json", "-")
    assert proc.returncode == 0, proc.stderr
    inv = Inventory.from_dict(json.loads(proc.stdout))
    ss = parse_listing(target.ss())
    # /proc and psutil cannot tell IPv6-only "::" from dual-stack: compare bare addresses
    assert ({(s.protocol.value, s.address, s.port) for s in inv.sockets}
            == {(s.protocol.value, s.address, s.port) for s in ss.sockets})
    assert all(s.processes for s in inv.sockets)


EXPECTED = {
    # (address, proto, port): class
    ("A4", "tcp", 22): "exposed", ("A6", "tcp", 22): "exposed",
    ("A4", "tcp", 80): "exposed", ("A6", "tcp", 80): "exposed",
    ("A4", "tcp", 3000): "exposed", ("A6", "tcp", 3000): "exposed",  # dual stack
    ("A4", "tcp", 8080): "exposed",
    ("A6", "tcp", 8443): "exposed",
    ("A4", "tcp", 3306): "shielded", ("A6", "tcp", 3306): "shielded",
    ("A4", "tcp", 1433): "closed-but-listed", ("A6", "tcp", 1433): "closed-but-listed",
    ("A4", "tcp", 8888): "unexpected", ("A6", "tcp", 8888): "unexpected",  # DNAT
    ("A4", "tcp", 2222): "unexpected",  # DNAT
    ("A4", "tcp", 20000): "not-scanned",
    ("A4", "udp", 53): "not-scanned", ("A6", "udp", 53): "not-scanned",
    (None, "tcp", 5432): "local-only",
    (None, "tcp", 9000): "local-only",
}


@pytest.mark.slow
def test_compare_classifies_every_port(target: LabHost, tmp_path: Path) -> None:
    out = tmp_path / "cmp.json"
    scan = tmp_path / "scan.json"
    proc = portscope("compare", "--netns", target.name, target.addr4, target.addr6,
                     "-p", SCAN_PORTS, "-T5", "--max-retries", "1", "--json", str(out),
                     "--save-scan", str(scan), "--fail-on", "unexpected")
    assert proc.returncode == 1, proc.stderr  # --fail-on unexpected: the DNAT forwards
    c = Comparison.from_dict(json.loads(out.read_text()))
    names = {target.addr4: "A4", target.addr6: "A6", None: None}
    got = {(names[e.address], e.protocol.value, e.port): e.exposure.value for e in c.entries}
    assert got == EXPECTED
    assert set(c.addresses) == {target.addr4, target.addr6} and not c.translated
    # the text report (stdout is a pipe) shows the classes and the advice
    assert "unexpected" in proc.stdout and "What to do:" in proc.stdout
    why = {(names[e.address], e.port): e.why for e in c.entries}
    assert why[("A4", 20000)] == "port-not-scanned"
    assert why[("A4", 53)] == "protocol-not-scanned"

    # the same comparison from the saved files, in Japanese: --local FILE --scan FILE
    inv_file = tmp_path / "inv.json"
    assert portscope("local", "--netns", target.name, "--json", str(inv_file)).returncode == 0
    again = portscope("compare", "--local", str(inv_file), "--scan", str(scan), "--lang", "ja",
                      "--json", "-")
    assert again.returncode == 0, again.stderr
    c2 = Comparison.from_dict(json.loads(again.stdout))
    assert {(names[e.address], e.protocol.value, e.port): e.exposure.value
            for e in c2.entries} == EXPECTED
    assert c2.lang == "ja"
