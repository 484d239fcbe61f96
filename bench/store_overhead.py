"""How much does streaming into the store slow a full-range scan?

Runs ``portscope scan -p- -T4 HOST`` on a namespace lab host (needs root) alternately with
the default SQLite store and with ``--no-store``, N times each, and prints the medians of
the wall time and of the scan time portscope reports.

    sudo .venv/bin/python bench/store_overhead.py [N] [--db URL]
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from portscope.testing.lab import Lab


def main() -> None:
    args = sys.argv[1:]
    db = None
    if "--db" in args:
        i = args.index("--db")
        db = args[i + 1]
        del args[i:i + 2]
    n = int(args[0]) if args else 5
    with Lab() as lab, tempfile.TemporaryDirectory() as tmp:
        host = lab.add_host()
        host.listen_tcp([22, 80, 443, 8080, 40000, 65535])
        env = dict(os.environ, PORTSCOPE_DB=db or os.path.join(tmp, "bench.sqlite3"))
        results: dict[str, list[tuple[float, float]]] = {"store": [], "no-store": []}
        for _ in range(n):
            for mode in ("store", "no-store"):
                argv = [sys.executable, "-m", "portscope", "scan", "-p-", "-T4", host.addr4]
                if mode == "no-store":
                    argv.append("--no-store")
                t0 = time.monotonic()
                proc = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
                wall = time.monotonic() - t0
                m = re.search(r"scanned in ([\d.]+) seconds", proc.stdout)
                results[mode].append((wall, float(m.group(1)) if m else float("nan")))
        for mode, rows in results.items():
            walls = [w for w, _ in rows]
            scans = [s for _, s in rows]
            print(f"{mode:9} wall median {statistics.median(walls):6.2f} s "
                  f"(min {min(walls):.2f}, max {max(walls):.2f}); scan median "
                  f"{statistics.median(scans):6.2f} s (min {min(scans):.2f}, "
                  f"max {max(scans):.2f})")


if __name__ == "__main__":
    main()
