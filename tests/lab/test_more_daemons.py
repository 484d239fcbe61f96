"""-sV and audit against more real daemons from Debian's packages (MariaDB, Samba,
memcached, OpenLDAP), each in its own lab host with a throw-away configuration and data
directory, compared with nmap -sV on the same ports.

Expected versions come from ``dpkg-query`` (the installed package's upstream version), so
the tests follow the machine's packages instead of hard-coding a release."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portscope.testing import daemons as D
from portscope.testing.lab import Lab, LabHost
from portscope.testing.nmap import NmapService, nmap_services

Json = dict[str, Any]


# --- helpers --------------------------------------------------------------------------------


def sv_scan(host: LabHost, ports: str, out: Path, *extra: str) -> dict[tuple[str, int], Json]:
    """``portscope scan -sV`` (the user's path): ``{(proto, port): port object}``."""
    proc = subprocess.run([sys.executable, "-m", "portscope", "scan", "-sV", "-Pn", *extra,
                           "-p", ports, host.addr4, "--json", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    return {(p["protocol"], p["port"]): p for p in doc["hosts"][0]["ports"]}


def audit(host: LabHost, ports: str, out: Path, *extra: str) -> tuple[int, list[Json]]:
    """``portscope audit`` of *ports*: exit code and the findings."""
    proc = subprocess.run([sys.executable, "-m", "portscope", "audit", host.addr4, "-p", ports,
                           *extra, "--json", str(out), "-q", "--no-progress", "-Pn"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(out.read_text())
    return proc.returncode, [f for h in doc["hosts"] for f in h["findings"]]


def by_check(findings: list[Json]) -> dict[tuple[str, int | None], Json]:
    return {(f["check"], f["port"]): f for f in findings}


def nmap_sv(nmap_bin: str, host: LabHost, ports: str, *extra: str
            ) -> dict[tuple[str, int], NmapService]:
    proc = subprocess.run([nmap_bin, "-sV", "-Pn", "-n", *extra, "-p", ports, host.addr4,
                           "-oX", "-"], capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return nmap_services(proc.stdout)


def nmap_line(svc: NmapService) -> str:
    return " ".join(x for x in (svc.name, "|", svc.product, svc.version,
                                f"({svc.extrainfo})" if svc.extrainfo else "") if x)


@pytest.fixture
def own_lab_host(module_lab: Lab) -> Iterator[LabHost]:
    """A fresh host of the module's lab for one test, closed (processes killed, namespace
    deleted) after it."""
    host = module_lab.add_host()
    try:
        yield host
    finally:
        host.close()


# --- MariaDB --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mariadb(module_lab: Lab) -> Iterator[D.Daemon]:
    host = module_lab.add_host()
    try:
        d = D.start_mariadb(host)
    except D.DaemonError as exc:
        pytest.fail(f"mariadb: {exc}")
    D.redirect(host, 13306, 3306)
    with d:
        yield d


def test_mariadb_sv_names_mariadb_and_the_exact_version(mariadb: D.Daemon,
                                                        tmp_path: Path) -> None:
    assert mariadb.version and mariadb.version[0].isdigit()
    ports = sv_scan(mariadb.host, "3306,13306", tmp_path / "sv.json")
    for port in (3306, 13306):  # standard and unusual port: the greeting, not the port
        svc = ports[("tcp", port)]["service"]
        assert (svc["name"], svc["product"], svc["version"]) == \
            ("mysql", "MariaDB", mariadb.version), port
        assert svc["method"] == "banner"
        assert svc["cpe"] == [f"cpe:2.3:a:mariadb:mariadb:{mariadb.version}:*:*:*:*:*:*:*"]
        assert svc["extra"]["protocol"] == 10
        assert svc["extra"]["server_version"].startswith(f"5.5.5-{mariadb.version}-MariaDB")
        assert svc["extra"]["auth_plugin"] == "mysql_native_password"
        assert svc["extra"]["ssl"] is False


def test_mariadb_audit_reports_the_database_reachable_from_outside(mariadb: D.Daemon,
                                                                   tmp_path: Path) -> None:
    code, findings = audit(mariadb.host, "3306", tmp_path / "audit.json", "--fail-on", "high")
    assert code == 1
    checks = by_check(findings)
    exposure = checks[("exposure.service", 3306)]
    assert exposure["severity"] == "high"
    assert f"MariaDB {mariadb.version}" in exposure["evidence"]
    # it asks for a password: no "reachable without authentication"
    assert ("access.no-auth", 3306) not in checks


def test_mariadb_without_a_remote_account_still_names_mariadb(own_lab_host: LabHost,
                                                              tmp_path: Path) -> None:
    """Only root@localhost: MariaDB refuses the scanner's address (error 1130) before any
    handshake, so there is no version to read, but the product is still MariaDB."""
    with D.start_mariadb(own_lab_host, remote_user=None):
        svc = sv_scan(own_lab_host, "3306", tmp_path / "sv.json")[("tcp", 3306)]["service"]
        _, findings = audit(own_lab_host, "3306", tmp_path / "audit.json")
    assert (svc["name"], svc["product"], svc["version"]) == ("mysql", "MariaDB", None)
    assert svc["extrainfo"] == "unauthorized"
    assert svc["extra"]["error"].startswith("1130 Host ")
    assert by_check(findings)[("exposure.service", 3306)]["severity"] == "high"


@pytest.mark.slow
def test_mariadb_side_by_side_with_nmap(mariadb: D.Daemon, nmap_bin: str,
                                        tmp_path: Path) -> None:
    ours = sv_scan(mariadb.host, "3306", tmp_path / "sv.json")[("tcp", 3306)]["service"]
    theirs = nmap_sv(nmap_bin, mariadb.host, "3306")[("tcp", 3306)]
    print(f"\nMariaDB {mariadb.version}: portscope {ours['product']} {ours['version']}; "
          f"nmap {nmap_line(theirs)}")
    assert (ours["product"], ours["version"]) == ("MariaDB", mariadb.version)
    # nmap 7.93 says "MySQL" with the raw "5.5.5-<version>-MariaDB-..." string as the
    # version (the same server: the version is in there)
    assert mariadb.version in theirs.version
