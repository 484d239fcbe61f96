"""How much does streaming into the store slow a full-range scan?

Runs ``portscope scan -p- -T4 HOST`` on a namespace lab host (needs root) alternately with
the default SQLite store and with ``--no-store``, N times each, and prints the medians of
the wall time and of the scan time portscope reports, and the overhead (also as the
median of the per-pair ratios, steadier on a busy machine).

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
    load0 = f"{os.getloadavg()[0]:.2f}"
    with Lab() as lab, tempfile.TemporaryDirectory() as tmp:
        host = lab.add_host()
        host.listen_tcp([22, 80, 443, 8080, 40000, 65535])
        env = dict(os.environ, PORTSCOPE_DB=db or os.path.join(tmp, "bench.sqlite3"))
        results: dict[str, list[tuple[float, float]]] = {"store": [], "no-store": []}
        # one run first, not counted: creates the store's schema (a one-time cost)
        subprocess.run([sys.executable, "-m", "portscope", "scan", "-p", "1-10", host.addr4],
                       capture_output=True, check=True, env=env)
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
        # the runs alternate, so each pair saw about the same machine load: the median
        # of the pairs' ratios is steadier than the ratio of the medians on a busy machine
        ratios = [a[0] / b[0] for a, b in zip(results["store"], results["no-store"],
                                              strict=True)]
        walls_s = statistics.median(w for w, _ in results["store"])
        walls_n = statistics.median(w for w, _ in results["no-store"])
        print(f"overhead: {100 * (walls_s / walls_n - 1):+.1f}% (ratio of the medians), "
              f"{100 * (statistics.median(ratios) - 1):+.1f}% (median of the {n} pairs' "
              f"ratios); load average {load0} before, {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
