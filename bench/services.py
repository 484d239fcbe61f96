#!/usr/bin/env python3
"""Service and version detection, side by side: portscope -sV and nmap -sV.

Builds one namespace lab host running real daemons from Debian's packages (sshd, postfix,
vsftpd, nginx with HTTP/HTTPS/legacy TLS, dnsmasq, snmpd, redis, postgresql), reachable
on their standard ports and, through iptables redirects, on unusual ones (ssh on 8080,
smtp on 2222, ftp on 3306, http on 5900, https on 993, redis on 1433, postgresql on
3389, dns on 8053/tcp and 5353/udp, snmp on 1161/udp). Runs each scanner RUNS times and
prints median wall times and how many ports each named with the right product and the
exact version (the versions of the installed packages); then -O side by side on the same
host.

    sudo .venv/bin/python bench/services.py [--runs 3]

portscope's TCP ports go through ``portscope scan -sV``; its UDP ports through the same
detection code on open|filtered ports when this build has no UDP scan (-sU) yet, timed
and added. nmap runs ``-sV -sS -sU`` over both in one process.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Sample, Series, machine_note, repeat, run_timed, table

from portscope.engine.scan import ENGINES
from portscope.engine.services import ServiceOptions, detect
from portscope.model import Host, HostStatus, PortResult, PortState, Protocol, ScanRun
from portscope.testing import daemons as D
from portscope.testing.lab import Lab
from portscope.testing.nmap import nmap_services

Result = dict[tuple[str, int], tuple[str | None, str | None]]


def has_udp_scan() -> bool:
    return "U" in ENGINES


def portscope_run(lab: D.ServiceLab, extra: list[str]) -> Sample:
    addr = lab.host.addr4
    tcp = ",".join(map(str, lab.tcp_ports))
    udp = ",".join(map(str, lab.udp_ports))
    got: Result = {}
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "o.json"
        if has_udp_scan():
            argv = [sys.executable, "-m", "portscope", "scan", "-sS", "-sU", "-sV", *extra,
                    "-Pn", "-p", f"T:{tcp},U:{udp}", addr, "--json", str(out)]
        else:
            argv = [sys.executable, "-m", "portscope", "scan", "-sV", *extra, "-Pn", "-p", tcp,
                    addr, "--json", str(out)]
        secs, rss, proc = run_timed(argv)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        doc = json.loads(out.read_text())
    for p in doc["hosts"][0]["ports"]:
        svc = p["service"] or {}
        got[(p["protocol"], p["port"])] = (svc.get("product"), svc.get("version"))
    if not has_udp_scan():
        ports = tuple(PortResult(p, Protocol.UDP, PortState.OPEN_FILTERED, "no-response")
                      for p in lab.udp_ports)
        run = ScanRun(id="udp", started=datetime.now(UTC),
                      hosts=(Host(addr, HostStatus.UP, ports=ports),))
        intensity = 2 if "--version-light" in extra else 7
        t0 = time.perf_counter()
        done = detect(run, ServiceOptions(intensity=intensity))
        secs += time.perf_counter() - t0
        for p in done.hosts[0].ports:
            got[("udp", p.port)] = (p.service.product if p.service else None,
                                    p.service.version if p.service else None)
    return Sample(secs, rss, got)


def nmap_run(lab: D.ServiceLab, extra: list[str]) -> Sample:
    tcp = ",".join(map(str, lab.tcp_ports))
    udp = ",".join(map(str, lab.udp_ports))
    secs, rss, proc = run_timed(["nmap", "-sV", "-sS", "-sU", *extra, "-Pn", "-n", "-p",
                                 f"T:{tcp},U:{udp}", "-oX", "-", lab.host.addr4])
    services = nmap_services(proc.stdout)
    got: Result = {k: (s.product or None, s.version or None) for k, s in services.items()}
    return Sample(secs, rss, got)


def os_portscope(addr: str) -> Sample:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "o.json"
        secs, rss, proc = run_timed([sys.executable, "-m", "portscope", "scan", "-O", "-Pn",
                                     "-p", "22,23", addr, "--json", str(out)])
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        os_ = json.loads(out.read_text())["hosts"][0]["os"] or {}
    return Sample(secs, rss, f"{os_.get('name')} ({os_.get('accuracy')}%)")


def os_nmap(addr: str) -> Sample:
    import xml.etree.ElementTree as ET

    secs, rss, proc = run_timed(["nmap", "-O", "-Pn", "-n", "-p", "22,23", "-oX", "-", addr])
    root = ET.fromstring(proc.stdout)
    match = root.find(".//osmatch")
    name = f"{match.get('name')} ({match.get('accuracy')}%)" if match is not None else "none"
    return Sample(secs, rss, name)


def correct(lab: D.ServiceLab, got: Result) -> int:
    """Ports with the expected product and version; a version that goes on after the
    number (nmap's ``9.2p1 Debian 2+deb12u10``) counts when the number is right."""
    n = 0
    for k, e in lab.expect.items():
        product, version = got.get(k, (None, None))
        if product == e.product and version is not None and \
                (version == e.version or version.startswith(f"{e.version} ")):
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with Lab() as lab_, D.start_service_lab(lab_.add_host()) as lab:
        series: list[Series] = [
            repeat("portscope -sV", args.runs, lambda: portscope_run(lab, [])),
            repeat("portscope -sV --version-light", args.runs,
                   lambda: portscope_run(lab, ["--version-light"])),
            repeat("nmap -sV", args.runs, lambda: nmap_run(lab, [])),
            repeat("nmap -sV --version-light", args.runs,
                   lambda: nmap_run(lab, ["--version-light"])),
        ]
        os_series = [repeat("portscope -O", args.runs, lambda: os_portscope(lab.host.addr4)),
                     repeat("nmap -O", args.runs, lambda: os_nmap(lab.host.addr4))]
        total = len(lab.expect)
        rows = [("scanner", "median s", "range s", "correct product+version (per run)")]
        for s in series:
            counts = [correct(lab, x.value) for x in s.samples]
            rows.append((s.name, f"{s.median:.2f}", s.spread,
                         " ".join(f"{c}/{total}" for c in counts)))
        detail = [("port", "expected", "portscope -sV", "nmap -sV")]
        ours, theirs = series[0].samples[-1].value, series[2].samples[-1].value
        for key in sorted(lab.expect, key=lambda k: (k[0], k[1])):
            e = lab.expect[key]

            def show(v: tuple[str | None, str | None] | None) -> str:
                return " ".join(x for x in (v or ("-", None)) if x) or "-"
            detail.append((f"{key[1]}/{key[0]}", f"{e.product} {e.version}",
                           show(ours.get(key)), show(theirs.get(key))))
    print(f"# bench/services.py, {time.strftime('%Y-%m-%d')}, {machine_note()}")
    print(f"# {len(lab.tcp_ports)} TCP + {len(lab.udp_ports)} UDP ports of real daemons, "
          f"{args.runs} runs each; UDP scan in this build: {has_udp_scan()}")
    print(table(rows))
    print()
    print(table(detail))
    print()
    print(f"# -O on the same host (its stack is this machine's Linux kernel), "
          f"ports 22 open and 23 closed, {args.runs} runs each")
    os_rows = [("scanner", "median s", "range s", "guess (last run)")]
    for s in os_series:
        os_rows.append((s.name, f"{s.median:.2f}", s.spread, str(s.samples[-1].value)))
    print(table(os_rows))


if __name__ == "__main__":
    main()
