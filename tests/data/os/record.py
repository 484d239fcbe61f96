"""Record a lab host's replies to the OS-detection probes as a fixture for the unit tests.

Run as root: ``.venv/bin/python tests/data/os/record.py [NAME]`` writes NAME.json
(default ``linux-lab``): the probes sent and every reply (raw IP packets, with times).
The lab hosts are network namespaces of this machine, so the stack is this machine's
Linux kernel (its version is stored with the fixture).
"""

from __future__ import annotations

import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from portscope.engine import osdetect
from portscope.model import Host, HostStatus, PortResult, PortState, Protocol, ScanRun
from portscope.testing.lab import Lab


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "linux-lab"
    with Lab() as lab:
        host = lab.add_host()
        host.listen_tcp([22])
        ports = (PortResult(22, Protocol.TCP, PortState.OPEN, "syn-ack"),
                 PortResult(23, Protocol.TCP, PortState.CLOSED, "reset"))
        run = ScanRun(id="os", started=datetime.now(UTC),
                      hosts=(Host(host.addr4, HostStatus.UP, ports=ports),))
        rec = osdetect.record(run)[host.addr4]
    rec["kernel"] = platform.release()
    path = Path(__file__).parent / f"{name}.json"
    path.write_text(json.dumps(rec, indent=1) + "\n")
    print(path, file=sys.stderr)


if __name__ == "__main__":
    main()
