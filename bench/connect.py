#!/usr/bin/env python3
"""TCP connect scan, side by side: portscope -sT, nmap -sT, and the naive asyncio design.

Builds one namespace lab host (50 open ports spread over 1-65535, a dropped range of
5,000 ports, a few DROP / REJECT rules), then runs each scanner RUNS times over all
65,535 ports and prints medians, spreads, ratios and whether the open set was exact.

    sudo .venv/bin/python bench/connect.py [--runs 5]

The "naive asyncio" column is the design the foundation issue warns about (one
coroutine per port, a semaphore, asyncio.wait_for): it is here to show why the engine
is a single epoll loop instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Sample, Series, machine_note, repeat, run_timed, table

from portscope.model import PortState, ScanRun, expand_host
from portscope.testing.lab import Lab
from portscope.testing.nmap import parse_nmap_xml

DROPPED_RANGE = (20000, 24999)


def open_ports() -> list[int]:
    rng = random.Random(5)
    pool = [p for p in range(1, 65536) if not DROPPED_RANGE[0] <= p <= DROPPED_RANGE[1]]
    return sorted(rng.sample(pool, 50))


def portscope_run(addr: str, expected: list[int]) -> Sample:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "o.json"
        secs, rss, proc = run_timed([sys.executable, "-m", "portscope", "scan", "-sT", "-p-",
                                     "-T4", "-Pn", addr, "--json", str(out)])
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        run = ScanRun.from_dict(json.loads(out.read_text()))
        got = sorted(p.port for p in expand_host(run.hosts[0]).ports
                     if p.state is PortState.OPEN)
    return Sample(secs, rss, got == expected)


def nmap_run(addr: str, expected: list[int]) -> Sample:
    secs, rss, proc = run_timed(["nmap", "-sT", "-p-", "-T4", "-Pn", "-n", "-oX", "-", addr])
    hosts = parse_nmap_xml(proc.stdout)
    got = sorted(p.port for h in hosts for p in h.ports if p.state == "open") if hosts else []
    return Sample(secs, rss, got == expected)


def naive_run(addr: str, expected: list[int]) -> Sample:
    async def probe(sem: asyncio.Semaphore, port: int, res: dict[int, str]) -> None:
        async with sem:
            for _ in range(2):
                try:
                    _, w = await asyncio.wait_for(asyncio.open_connection(addr, port), 0.2)
                    w.close()
                    res[port] = "open"
                    return
                except ConnectionRefusedError:
                    res[port] = "closed"
                    return
                except (TimeoutError, OSError):
                    continue
            res[port] = "filtered"

    async def main() -> dict[int, str]:
        sem = asyncio.Semaphore(4096)
        res: dict[int, str] = {}
        await asyncio.gather(*(probe(sem, p, res) for p in range(1, 65536)))
        return res

    t0 = time.perf_counter()
    res = asyncio.run(main())
    secs = time.perf_counter() - t0
    got = sorted(p for p, s in res.items() if s == "open")
    return Sample(secs, 0.0, got == expected)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-naive", action="store_true")
    args = ap.parse_args()
    expected = open_ports()
    with Lab() as lab:
        host = lab.add_host()
        host.listen_tcp(expected)
        host.drop_range(*DROPPED_RANGE)
        host.drop([7, 135, 445])
        host.reject([23, 3389], with_="icmp-admin-prohibited")
        addr = host.addr4
        series: list[Series] = [
            repeat("portscope -sT -T4", args.runs, lambda: portscope_run(addr, expected)),
            repeat("nmap -sT -T4", args.runs, lambda: nmap_run(addr, expected)),
        ]
        if not args.skip_naive:
            series.append(repeat("naive asyncio (1 task/port)", args.runs,
                                 lambda: naive_run(addr, expected)))
    base = series[0].median
    rows = [("scanner", "median s", "range s", "x portscope", "open set exact")]
    for s in series:
        exact = sum(1 for x in s.samples if x.value)
        rows.append((s.name, f"{s.median:.2f}", s.spread, f"{s.median / base:.2f}",
                     f"{exact}/{len(s.samples)}"))
    print(f"# bench/connect.py, {time.strftime('%Y-%m-%d')}, {machine_note()}")
    print(f"# 65,535 TCP ports, 50 open, {DROPPED_RANGE[1] - DROPPED_RANGE[0] + 1} dropped, "
          f"{args.runs} runs each")
    print(table(rows))


if __name__ == "__main__":
    main()
