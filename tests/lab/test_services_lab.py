"""-sV against real daemons from Debian's packages in a lab host, on their standard ports
and on unusual ones, compared with nmap -sV on the same host."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from portscope.engine.services import ServiceOptions, detect
from portscope.model import Host, HostStatus, PortResult, PortState, Protocol, ScanRun
from portscope.testing import daemons as D
from portscope.testing.lab import LabHost
from portscope.testing.nmap import nmap_services


@pytest.fixture(scope="module")
def service_lab(module_lab_host: LabHost) -> Iterator[D.ServiceLab]:
    try:
        lab = D.start_service_lab(module_lab_host)
    except D.DaemonError as exc:
        pytest.fail(f"lab daemons: {exc}")
    with lab:
        yield lab


@pytest.fixture(scope="module")
def sv_json(service_lab: D.ServiceLab, tmp_path_factory: pytest.TempPathFactory
            ) -> dict[str, Any]:
    """``portscope scan -sV`` over every lab TCP port (the user's path), as JSON."""
    out = tmp_path_factory.mktemp("sv") / "scan.json"
    ports = ",".join(str(p) for p in service_lab.tcp_ports)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "portscope", "scan", "-sV", "-Pn", "-p", ports,
                           service_lab.host.addr4, "--json", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(out.read_text())
    doc["_wall"] = time.monotonic() - t0
    doc["_stdout"] = proc.stdout
    return doc


@pytest.fixture(scope="module")
def udp_run(service_lab: D.ServiceLab) -> ScanRun:
    """UDP ports through detect() (as open|filtered, what a UDP scan leaves them)."""
    ports = tuple(PortResult(p, Protocol.UDP, PortState.OPEN_FILTERED, "no-response")
                  for p in service_lab.udp_ports)
    run = ScanRun(id="udp", started=datetime.now(UTC),
                  hosts=(Host(service_lab.host.addr4, HostStatus.UP, ports=ports),))
    return detect(run, ServiceOptions())


def _tcp(doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {p["port"]: p for p in doc["hosts"][0]["ports"] if p["protocol"] == "tcp"}


def test_daemon_versions_are_known(service_lab: D.ServiceLab) -> None:
    for e in service_lab.expect.values():
        assert e.version, e


def test_tcp_products_and_exact_versions(service_lab: D.ServiceLab,
                                         sv_json: dict[str, Any]) -> None:
    ports = _tcp(sv_json)
    wrong = []
    for (proto, port), e in service_lab.expect.items():
        if proto != "tcp":
            continue
        svc = ports[port]["service"]
        got = (svc["name"], svc["product"], svc["version"], svc["tunnel"])
        if got != (e.name, e.product, e.version, e.tunnel) or svc["method"] == "port-table":
            wrong.append((port, got, e))
    assert not wrong
    assert f"OpenSSH {service_lab.by_name('sshd').version}" in sv_json["_stdout"]
    stats = sv_json["run"]["extra"]["service_detection"]
    assert stats["identified"] == len(ports) and stats["connections_left_open"] == 0


def test_udp_products_and_versions(service_lab: D.ServiceLab, udp_run: ScanRun) -> None:
    for p in udp_run.hosts[0].ports:
        e = service_lab.expect[("udp", p.port)]
        assert p.state is PortState.OPEN and p.reason == "udp-response"
        assert p.service is not None
        assert (p.service.name, p.service.product, p.service.version) == \
            (e.name, e.product, e.version), p.port


def test_certificate_facts(service_lab: D.ServiceLab, sv_json: dict[str, Any]) -> None:
    ports = _tcp(sv_json)
    sha = service_lab.cert.sha256
    for port in (443, 8443, 993, 25, 587, 21, 5432):
        tls = ports[port]["service"]["tls"]
        assert tls is not None, port
        assert tls["sha256"] == sha and tls["self_signed"] is True
        assert tls["subject_cn"] == "lab.example" and tls["key_bits"] == 2048
        assert set(tls["private_names"]) == {"intranet.local", "10.1.2.3"}
        assert tls["expired"] is False and 28 <= tls["days_left"] <= 30
        assert "TLSv1.2" in tls["versions"] and "SSLv3" not in tls["versions"]
        assert tls.get("starttls", False) is (port in (25, 587, 21, 5432))
    assert "TLSv1.0" in ports[8443]["service"]["tls"]["versions"]  # the legacy server
    assert "TLSv1.0" not in ports[443]["service"]["tls"]["versions"]
    assert ports[443]["service"]["tls"]["chain_length"] == 1


def test_exposure_facts(sv_json: dict[str, Any], udp_run: ScanRun) -> None:
    ports = _tcp(sv_json)
    assert ports[21]["service"]["extra"]["anonymous_login"] is True
    assert ports[6379]["service"]["extra"]["auth_required"] is False
    assert ports[5432]["service"]["extra"]["auth_required"] is False  # pg_hba trust
    assert ports[25]["service"]["extra"]["vrfy"] is True
    assert ports[53]["service"]["extra"]["recursion"] is False
    assert ports[80]["service"]["extra"]["title"] == "portscope lab"
    snmp = {p.port: p for p in udp_run.hosts[0].ports}[161].service
    assert snmp is not None and snmp.extra["community"] == "public"
    assert snmp.extra["sys_name"] == "lab-host"


@pytest.mark.slow
def test_side_by_side_with_nmap(service_lab: D.ServiceLab, sv_json: dict[str, Any],
                                udp_run: ScanRun, nmap_bin: str, tmp_path: Path) -> None:
    """At least as many correct products and versions as nmap -sV, in less time."""
    tcp = ",".join(str(p) for p in service_lab.tcp_ports)
    udp = ",".join(str(p) for p in service_lab.udp_ports)
    t0 = time.monotonic()
    proc = subprocess.run([nmap_bin, "-sV", "-sS", "-sU", "-Pn", "-n", "-p", f"T:{tcp},U:{udp}",
                           service_lab.host.addr4, "-oX", "-"], capture_output=True, text=True,
                          timeout=600, check=False)
    nmap_wall = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    theirs = nmap_services(proc.stdout)
    ours = {("tcp", p): (s["service"]["product"], s["service"]["version"])
            for p, s in _tcp(sv_json).items()}
    ours.update({("udp", p.port): (p.service.product if p.service else None,
                                   p.service.version if p.service else None)
                 for p in udp_run.hosts[0].ports})
    our_wall = sv_json["_wall"] + udp_run.extra["service_detection"]["duration_s"]

    def correct(got: tuple[str | None, str | None], key: tuple[str, int]) -> bool:
        e = service_lab.expect[key]
        product, version = got
        return product == e.product and version is not None and \
            (version == e.version or version.startswith(f"{e.version} "))

    ours_ok = sum(correct(ours[k], k) for k in service_lab.expect)
    nmap_ok = sum(correct((theirs[k].product or None, theirs[k].version or None), k)
                  for k in service_lab.expect if k in theirs)
    print(f"\ncorrect product+version: portscope {ours_ok}/{len(service_lab.expect)} in "
          f"{our_wall:.1f}s, nmap {nmap_ok}/{len(service_lab.expect)} in {nmap_wall:.1f}s")
    assert ours_ok == len(service_lab.expect)
    assert ours_ok >= nmap_ok
    assert our_wall < nmap_wall


def test_ntp_chronyd(lab_host: LabHost) -> None:
    D.start_ntp(lab_host)
    run = ScanRun(id="ntp", started=datetime.now(UTC), hosts=(Host(
        lab_host.addr4, HostStatus.UP,
        ports=(PortResult(123, Protocol.UDP, PortState.OPEN_FILTERED, "no-response"),)),))
    p = detect(run, ServiceOptions(intensity=5)).hosts[0].ports[0]
    assert p.state is PortState.OPEN and p.service is not None
    assert p.service.name == "ntp" and p.service.method == "probe"
    assert p.service.extra["stratum"] == 10 and p.service.extra["version"] == 4
    assert p.service.extra["monlist"] is False  # chrony has no mode 7
