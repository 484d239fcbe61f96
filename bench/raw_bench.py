"""Side-by-side benchmark of the raw engine against nmap (and masscan) in the namespace lab.

    sudo .venv/bin/python bench/raw_bench.py [--runs 5] [--only syn,loss,sweep,udp]

Scenarios (issue 3):
  syn    -sS -p- of one lab host (50 open ports, a DROPped range): portscope vs nmap -T4
  loss   the same with 1% random loss each way: portscope vs nmap -T4 vs masscan 100k pps
  sweep  a /16 of lab addresses (local route) on 3 ports, portscope at its highest rate
  udp    -sU --top-ports 100, default ICMP rate limit, 3 real answering services
Prints medians of wall time, open ports found, pps and peak RSS (of the scanner process,
from wait4's rusage), and the ratios. Only lab addresses are ever scanned.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from portscope.testing.lab import Lab, LabHost

PY = sys.executable


def portscope(args: list[str]) -> tuple[float, set[int], float, int]:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "o.json"
        t = time.monotonic()
        proc = subprocess.run([PY, "-m", "portscope", "scan", *args, "--json", str(out),
                               "--no-fallback"], capture_output=True, text=True)
        wall = time.monotonic() - t
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        doc = json.loads(out.read_text())
    opened = {p["port"] for h in doc["hosts"] for p in h["ports"] if p["state"] == "open"}
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, opened, float(doc["stats"].get("pps", 0.0)), rss


def nmap(args: list[str]) -> tuple[float, set[int]]:
    t = time.monotonic()
    proc = subprocess.run(["nmap", "-n", "-Pn", *args, "-oG", "-"], capture_output=True,
                          text=True)
    wall = time.monotonic() - t
    opened = set()
    for line in proc.stdout.splitlines():
        if "Ports:" in line:
            for item in line.split("Ports:", 1)[1].split(","):
                f = item.strip().split("/")
                if len(f) > 1 and f[1] == "open":
                    opened.add(int(f[0]))
    return wall, opened


def masscan(host: LabHost, rate: int) -> tuple[float, set[int]]:
    t = time.monotonic()
    proc = subprocess.run(["masscan", "-p1-65535", host.addr4, "--rate", str(rate),
                           *host.masscan_args(), "--wait", "2", "-oL", "-"],
                          capture_output=True, text=True)
    wall = time.monotonic() - t
    opened = {int(ln.split()[2]) for ln in proc.stdout.splitlines()
              if ln.startswith("open")}
    return wall, opened


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def target(lab: Lab) -> tuple[LabHost, set[int]]:
    host = lab.add_host()
    rng = random.Random(7)
    ports = set(rng.sample([p for p in range(1, 65536) if not 20000 <= p <= 24999], 50))
    host.listen_tcp(sorted(ports))
    host.drop_range(20000, 24999)
    return host, ports


def bench_syn(lab: Lab, runs: int, loss: float = 0.0) -> None:
    host, ports = target(lab)
    if loss:
        host.loss(loss)
    ours, theirs, found_o, found_n, pps = [], [], [], [], []
    for _ in range(runs):
        w, o, p, _rss = portscope(["-sS", "-p-", "-T4", "-Pn", host.addr4])
        ours.append(w)
        found_o.append(len(o & ports))
        pps.append(p)
        if not loss or len(theirs) < 1:  # nmap under loss takes ~10 min a run: once
            w, o = nmap(["-sS", "-T4", "-p-", host.addr4])
            theirs.append(w)
            found_n.append(len(o & ports))
    name = f"SYN -p- loss {loss}%" if loss else "SYN -p-"
    print(f"{name}: portscope median {med(ours):.2f}s (runs {[round(x, 2) for x in ours]}), "
          f"open found {min(found_o)}..{max(found_o)}/{len(ports)}, pps {med(pps):,.0f}; "
          f"nmap -T4 median {med(theirs):.2f}s, found {found_n}; "
          f"ratio {med(ours) / med(theirs):.3f}")
    if loss:
        got = [masscan(host, 100_000) for _ in range(min(runs, 3))]
        print(f"  masscan 100k pps: {[round(w, 2) for w, _ in got]}s, open found "
              f"{[len(o & ports) for _, o in got]}/{len(ports)}")


def bench_sweep(lab: Lab, runs: int) -> None:
    host = lab.add_host()
    net = host.add_local_route()
    host.listen_tcp([80])
    res = []
    for _ in range(runs):
        w, _o, p, rss = portscope(["-sS", "-p", "22,80,443", "-T5", "-Pn", "--open",
                                  str(net)])
        res.append((w, p, rss))
    print(f"sweep {net} x 3 ports: median {med([r[0] for r in res]):.2f}s, "
          f"pps {med([r[1] for r in res]):,.0f}, peak RSS of the runs (max over children) "
          f"{max(r[2] for r in res) / 1024:.0f} MiB")


def bench_udp(lab: Lab, runs: int) -> None:
    from portscope.testing import daemons

    host = lab.add_host()
    daemons.start_dnsmasq(host)
    daemons.start_ntp(host)
    daemons.start_snmpd(host)
    ours = []
    for _ in range(runs):
        w, o, _p, _r = portscope(["-sU", "--top-ports", "100", "-T4", "-Pn", host.addr4])
        ours.append((w, sorted(o)))
    w, o = nmap(["-sU", "-T4", "--top-ports", "100", host.addr4])
    print(f"UDP top-100: portscope median {med([x[0] for x in ours]):.2f}s open "
          f"{ours[0][1]}; nmap -T4 {w:.2f}s open {sorted(o)}; "
          f"ratio {med([x[0] for x in ours]) / w:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default="syn,loss,sweep,udp")
    a = ap.parse_args()
    only = set(a.only.split(","))
    print(f"load average before: {os.getloadavg()}")
    with Lab() as lab:
        if "syn" in only:
            bench_syn(lab, a.runs)
        if "loss" in only:
            bench_syn(lab, a.runs, loss=1.0)
        if "sweep" in only:
            bench_sweep(lab, a.runs)
        if "udp" in only:
            bench_udp(lab, a.runs)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
