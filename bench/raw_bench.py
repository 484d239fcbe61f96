"""Side-by-side benchmark of the raw engine against nmap (and masscan) in the namespace lab.

    sudo .venv/bin/python bench/raw_bench.py [--runs 5] [--only syn,loss,sweep,udp]

Scenarios (issue 3):
  syn    -sS -p- of one lab host (50 open ports, a DROPped range): portscope vs nmap -T4
  loss   the same with 1% random loss each way: portscope vs nmap -T4 vs masscan 100k pps
  sweep  a /16 of lab addresses (local route) on 3 ports, portscope at its highest rate
  udp    -sU --top-ports 100, default ICMP rate limit, 3 real answering services
Prints medians of wall time, open ports found, pps and peak RSS (of the scanner process,
from wait4's rusage), and the ratios. Only lab addresses are ever scanned.

portscope runs with --no-store (nmap and masscan write no database either); --store also
times the default command, which streams every port into the result store (a temporary
SQLite file here, never the user's store).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from portscope.testing.lab import Lab, LabHost

PY = sys.executable


STORE = False  # --store: the default command (results streamed into a store) instead


def portscope(args: list[str], *, store: bool | None = None
              ) -> tuple[float, set[int], float, int, dict[str, Any]]:
    """Wall time, open ports, pps, peak RSS (KiB, this scan's process tree only: wait4),
    and the JSON document's stats."""
    store = STORE if store is None else store
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "o.json"
        extra = ["--db", str(Path(d) / "bench.sqlite3")] if store else ["--no-store"]
        t = time.monotonic()
        proc = subprocess.Popen([PY, "-m", "portscope", "scan", *args, "--json", str(out),
                                 "--no-fallback", *extra], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(err)
        doc = json.loads(out.read_text())
    opened = {p["port"] for h in doc["hosts"] for p in h["ports"] if p["state"] == "open"}
    return wall, opened, float(doc["stats"].get("pps", 0.0)), usage.ru_maxrss, doc


NMAP_STATES: dict[str, int] = {}  # states of the last nmap run's listed ports


def nmap(args: list[str]) -> tuple[float, set[int]]:
    t = time.monotonic()
    proc = subprocess.run(["nmap", "-n", "-Pn", *args, "-oG", "-"], capture_output=True,
                          text=True)
    wall = time.monotonic() - t
    opened = set()
    NMAP_STATES.clear()
    for line in proc.stdout.splitlines():
        if "Ports:" in line:
            for item in line.split("Ports:", 1)[1].split(","):
                f = item.strip().split("/")
                if len(f) > 1:
                    NMAP_STATES[f[1]] = NMAP_STATES.get(f[1], 0) + 1
                if len(f) > 1 and f[1] == "open":
                    opened.add(int(f[0]))
    return wall, opened


def masscan(host: LabHost, rate: int) -> tuple[float, set[int], bool]:
    """Wall time, open ports, and whether it hung. masscan 1.3.2 on a veth sometimes never
    exits after its --wait ("waiting -120-secs", ignoring SIGINT): it is stopped with
    SIGTERM after its send time + wait + 10 s; stdbuf keeps its -oL lines unbuffered."""
    t = time.monotonic()
    proc = subprocess.Popen(["stdbuf", "-oL", "masscan", "-p1-65535", host.addr4, "--rate",
                             str(rate), *host.masscan_args(), "--wait", "2", "-oL", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    hung = False
    try:
        out, _ = proc.communicate(timeout=65535 / rate + 2 + 10)
    except subprocess.TimeoutExpired:
        hung = True
        proc.terminate()
        out, _ = proc.communicate()
    wall = time.monotonic() - t
    opened = {int(ln.split()[2]) for ln in out.splitlines() if ln.startswith("open")}
    return wall, opened, hung


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
    ours: list[float] = []
    theirs: list[float] = []
    found_o: list[int] = []
    found_n: list[int] = []
    pps: list[float] = []
    for _ in range(runs):
        w, o, p, _rss, _doc = portscope(["-sS", "-p-", "-T4", "-Pn", host.addr4])
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
        bench_masscan(host, ports, runs)


def bench_masscan(host: LabHost, ports: set[int], runs: int) -> None:
    got = [masscan(host, 100_000) for _ in range(min(runs, 3))]
    print(f"  masscan 100k pps: {[round(w, 2) for w, _, _ in got]}s "
          f"(hung and killed: {[h for _, _, h in got]}), open found "
          f"{[len(o & ports) for _, o, _ in got]}/{len(ports)}")


def _sweep(net: str, runs: int) -> list[tuple[float, float, int, int, float]]:
    res = []
    for _ in range(runs):
        w, _o, p, rss, doc = portscope(["-sS", "-p", "22,80,443", "-T5", "-Pn", "--open",
                                        net])
        up = sum(1 for h in doc["hosts"]
                 if any(q["state"] == "open" and q["port"] == 80 for q in h["ports"]))
        stats = doc["stats"]
        res.append((w, p, rss, up, float(stats.get("duration_s", 0.0))))
    return res


# The engine alone, in its own process: the probe walk, RawEngine and a callback that
# counts (what a scan keeps for its report is not the engine's memory).
ENGINE_DRIVER = r"""
import json, sys, time
from portscope.engine.raw import RawEngine
from portscope.engine.timing import template
from portscope.probes import get
from portscope.targets import PortSpec, ProbeSpace, parse_targets
net, ports, level = sys.argv[1], [int(p) for p in sys.argv[2].split(",")], int(sys.argv[3])
n = [0, 0]
def cb(addr, r):  # counts only: the engine's memory, not a result list's
    n[0] += 1
    if r.state.value == "open":
        n[1] += 1
space = ProbeSpace(parse_targets([net]), PortSpec(tcp=ports), seed=int(time.time()))
eng = RawEngine(space.walk(), template(level), cb, get("S"), level=level)
t = time.monotonic()
st = eng.run()
w = time.monotonic() - t
print(json.dumps({"engine_s": w, "sent": st.probes_sent, "pps": st.probes_sent / w,
                  "results": n[0], "up": n[1]}))
"""


def engine_only(net: str, ports: str, level: int) -> tuple[dict[str, Any], int]:
    proc = subprocess.Popen([PY, "-c", ENGINE_DRIVER, net, ports, str(level)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"engine driver failed: {out}")
    return json.loads(out), usage.ru_maxrss


def bench_sweep(lab: Lab, runs: int) -> None:
    host = lab.add_host()
    net = host.add_local_route()
    host.listen_tcp([80])
    small = ipaddress.ip_network(f"{net.network_address}/20")
    for n in (small, net):
        got = [engine_only(str(n), "22,80,443", 5) for _ in range(runs)]
        secs = med([g["engine_s"] for g, _ in got])
        print(f"sweep {n} x 3 ports, engine alone: median {secs:.2f}s, "
              f"pps {med([g['pps'] for g, _ in got]):,.0f}, open results (port 80 only) "
              f"{[g['up'] for g, _ in got]}/{n.num_addresses}, peak RSS "
              f"{[round(r / 1024) for _, r in got]} MiB")
    for n, rr in ((small, max(1, runs // 2)), (net, max(1, runs // 2))):
        res = _sweep(str(n), rr)
        print(f"sweep {n} x 3 ports: median wall {med([r[0] for r in res]):.2f}s "
              f"(engine+report {med([r[4] for r in res]):.2f}s), pps "
              f"{med([r[1] for r in res]):,.0f}, addresses with 80 open "
              f"{[r[3] for r in res]}/{n.num_addresses}, peak RSS "
              f"{[round(r[2] / 1024) for r in res]} MiB")


def bench_udp(lab: Lab, runs: int) -> None:
    from portscope.testing import daemons

    host = lab.add_host()
    daemons.start_dnsmasq(host)
    daemons.start_ntp(host)
    daemons.start_snmpd(host)
    ours = []
    for _ in range(runs):
        # the target's ICMP token bucket (Linux: 1/s, burst 6) refills between runs, so
        # every run, ours and nmap's, starts from the same state
        time.sleep(7)
        w, o, _p, _r, doc = portscope(["-sU", "--top-ports", "100", "-T4", "-Pn",
                                       host.addr4])
        states: dict[str, int] = {}
        for h in doc["hosts"]:
            for q in h["ports"]:
                k = f"{q['state']}/{q['reason']}"
                states[k] = states.get(k, 0) + 1
        ours.append((w, sorted(o), states))
    theirs = []
    for _ in range(min(runs, 3)):  # ~75 s a run
        time.sleep(7)
        w, o = nmap(["-sU", "-T4", "--top-ports", "100", host.addr4])
        theirs.append((w, sorted(o), dict(NMAP_STATES)))
    mo, mn = med([x[0] for x in ours]), med([x[0] for x in theirs])
    print(f"UDP top-100: portscope median {mo:.2f}s "
          f"(runs {[round(x[0], 2) for x in ours]}) open {ours[0][1]}, listed states "
          f"{[x[2] for x in ours]}; nmap -T4 median {mn:.2f}s (runs "
          f"{[round(x[0], 2) for x in theirs]}) open {theirs[0][1]}, listed states "
          f"{[x[2] for x in theirs]}; ratio {mo / mn:.3f}")


def cpu_probe() -> str:
    """How fast this (virtual) machine runs Python right now: the same VM gave 1.7 to
    3.7 s for this loop within an hour, and portscope is CPU-bound where nmap is not."""
    t = time.perf_counter()
    x = 0
    for i in range(3_000_000):
        x += i
    return f"CPU probe {time.perf_counter() - t:.2f} s (3M-step Python loop; lower is faster)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default="syn,loss,sweep,udp",
                    help="comma-separated: syn, loss, sweep, udp (and masscan: only the loss "
                         "scenario's masscan runs)")
    ap.add_argument("--store", action="store_true",
                    help="time the default command (results into a temporary store)")
    a = ap.parse_args()
    global STORE
    STORE = a.store
    only = set(a.only.split(","))
    # portscope's modules byte-compiled first, as an installed package has them (with
    # PYTHONDONTWRITEBYTECODE set, an editable install would compile every module at
    # every start: ~0.15 s that no installed copy pays)
    import compileall

    import portscope

    compileall.compile_dir(os.path.dirname(portscope.__file__), quiet=1)
    print(f"load average before: {os.getloadavg()}, {cpu_probe()}")
    with Lab() as lab:
        if "syn" in only:
            bench_syn(lab, a.runs)
        if "loss" in only:
            bench_syn(lab, a.runs, loss=1.0)
        if "masscan" in only:  # the loss scenario's masscan runs alone
            host, ports = target(lab)
            host.loss(1.0)
            bench_masscan(host, ports, a.runs)
        if "sweep" in only:
            bench_sweep(lab, a.runs)
        if "udp" in only:
            bench_udp(lab, a.runs)
    print(f"load average after: {os.getloadavg()}, {cpu_probe()}")


if __name__ == "__main__":
    main()
