"""What the real-daemon lab tests share: portscope ``scan -sV`` / ``audit`` and nmap ``-sV``
run as a user runs them, and one-line renderings of what each named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from portscope.testing.lab import LabHost
from portscope.testing.nmap import NmapService, nmap_services

Json = dict[str, Any]


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


def nmap_line(svc: NmapService | None) -> str:
    if svc is None:
        return "(nothing)"
    return " ".join(x for x in (svc.name, "|", svc.product, svc.version,
                                f"({svc.extrainfo})" if svc.extrainfo else "") if x)


def ours_line(svc: Json) -> str:
    return " ".join(x for x in (svc["name"], "|", svc["product"], svc["version"],
                                f"({svc['extrainfo']})" if svc["extrainfo"] else "") if x)
