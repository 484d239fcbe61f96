"""Shared bits of the benchmarks: timing subprocesses, medians, peak memory, the table."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Sample:
    seconds: float
    peak_rss_mb: float
    value: Any = None


@dataclass
class Series:
    name: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def spread(self) -> str:
        xs = sorted(s.seconds for s in self.samples)
        return f"{xs[0]:.2f}-{xs[-1]:.2f}"

    @property
    def rss(self) -> float:
        return statistics.median(s.peak_rss_mb for s in self.samples)


def run_timed(argv: Sequence[str],
              **kw: Any) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Run a command; (wall seconds, peak RSS of the child in MB, the process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(list(argv), capture_output=True, text=True, **kw)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the max over all children so far: good enough when the
    # measured command is the largest child; reported as such.
    return elapsed, max(after, before) / 1024, proc


def repeat(name: str, runs: int, fn: Callable[[], Sample]) -> Series:
    series = Series(name)
    for _ in range(runs):
        series.samples.append(fn())
    return series


def machine_note() -> str:
    load = os.getloadavg()
    return (f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)
