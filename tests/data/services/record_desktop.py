"""Record TigerVNC's Xvnc (RFB and X11) and xrdp answers to portscope's dialogs as replay
fixtures (the companion of record.py, same format, same replay test).

Run as root (it starts the daemons of portscope.testing.daemons in lab hosts)::

    .venv/bin/python tests/data/services/record_desktop.py

tests/unit/test_service_replays.py replays every JSON file here; the facts these daemons
taught us (xrdp is not Windows, X.Org's release is its version, TigerVNC's lockout is not
an RFB 3.3 server) are asserted in tests/unit/test_service_replays_desktop.py.
"""

from __future__ import annotations

import asyncio
import socket

from record import record, save  # type: ignore[import-not-found]  # the sibling script

from portscope.engine.services import ServiceEngine, ServiceOptions
from portscope.model import Host, HostStatus
from portscope.testing import daemons as D
from portscope.testing.lab import Lab

# host index -> (fixture name, protocol, port, transport, implicit TLS)
CASES = {
    0: [("tigervnc-none", "vnc", 5901, "tcp", False),
        ("xvnc-x11-open", "X11", 6001, "tcp", False)],
    1: [("tigervnc-vncauth", "vnc", 5999, "tcp", False),
        ("xvnc-x11-refused", "X11", 6001, "tcp", False)],
    2: [("tigervnc-locked-out", "vnc", 5901, "tcp", False)],
    3: [("xrdp", "ms-wbt-server", 3389, "tcp", False)],
    4: [("xrdp-tls", "ms-wbt-server", 3389, "tcp", False)],
    5: [("xrdp-rdp", "ms-wbt-server", 3389, "tcp", False)],
}


def main() -> None:
    with Lab() as lab:
        hosts = [lab.add_host() for _ in CASES]
        daemons: list[D.Daemon] = []
        try:
            daemons += [D.start_xvnc(hosts[0], x11_tcp=True, access_control=False),
                        D.start_xvnc(hosts[1], rfb_port=5999, password="lab-secret",
                                     x11_tcp=True),
                        D.start_xvnc(hosts[2], blacklist_threshold=2),
                        D.start_xrdp(hosts[3]),
                        D.start_xrdp(hosts[4], security_layer="tls"),
                        D.start_xrdp(hosts[5], security_layer="rdp")]

            async def all_cases() -> list[dict[str, object]]:
                engine = ServiceEngine(ServiceOptions())
                out = []
                for index, cases in CASES.items():
                    if index == 2:  # three connections without authentication: blacklisted
                        for _ in range(3):
                            with socket.create_connection((hosts[2].addr4, 5901), 5) as s:
                                s.recv(12)
                    model_host = Host(hosts[index].addr4, HostStatus.UP)
                    out += [await record(engine, model_host, *case) for case in cases]
                return out

            save(asyncio.run(all_cases()))
        finally:
            for d in daemons:
                d.stop()


if __name__ == "__main__":
    main()
