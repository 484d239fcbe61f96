"""Record real daemons' answers to portscope's dialogs as replay fixtures for the unit tests.

Run as root (it starts the lab daemons of portscope.testing.daemons in a lab host)::

    .venv/bin/python tests/data/services/record.py

It writes one JSON file per (protocol, port) into this directory: the first bytes the
server sent, every answer the dialog got (bytes, TLS results, reconnects) and the service
the dialog made of them. tests/unit/test_service_replays.py replays them without a network.
Certificates differ per run, so TLS answers are stored as the facts the engine derived.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from portscope.engine.services import ServiceEngine, ServiceOptions, _PortWork
from portscope.model import Host, HostStatus
from portscope.services import PROTOCOLS
from portscope.services.base import Facts, Reply, TLSResult
from portscope.testing import daemons as D
from portscope.testing.lab import Lab

HERE = Path(__file__).parent

# (fixture name, protocol, port, transport, implicit TLS)
CASES = [
    ("openssh", "ssh", 22, "tcp", False),
    ("postfix", "smtp", 25, "tcp", False),
    ("vsftpd", "ftp", 21, "tcp", False),
    ("nginx", "http", 80, "tcp", False),
    ("nginx-tls", "http", 443, "tcp", True),
    ("dnsmasq-udp", "domain", 53, "udp", False),
    ("dnsmasq-tcp", "domain", 53, "tcp", False),
    ("netsnmp", "snmp", 161, "udp", False),
    ("redis", "redis", 6379, "tcp", False),
    ("redis-auth", "redis", 6380, "tcp", False),
    ("postgresql", "postgresql", 5432, "tcp", False),
    ("postgresql-scram", "postgresql", 5433, "tcp", False),
]


def encode(item: object) -> object:
    if item is None:
        return None
    if isinstance(item, Reply):
        return {"data": item.data.hex(), "eof": item.eof, "timed_out": item.timed_out,
                "error": item.error}
    if isinstance(item, TLSResult):
        return {"tls": item.facts, "ok": item.ok, "error": item.error}
    raise TypeError(type(item))


async def record(engine: ServiceEngine, host: Host, name: str, proto: str, port: int,
                 transport: str, tls: bool) -> dict[str, object]:
    hs = engine.host_state(host)
    work = _PortWork(hs, port, None)
    facts = Facts()
    answers: list[object] = []
    ctx = engine.context(hs, port, transport=transport, tls=tls)
    p = PROTOCOLS[proto]
    if transport == "udp":
        conn = await engine.open_udp(hs, port)
        factory = p.udp
    else:
        conn = await engine.open(work, tls=tls)
        factory = p.dialog
    assert factory is not None and conn is not None
    await engine.drive(work, conn, factory, ctx, facts, record=answers)  # type: ignore[arg-type]
    svc = facts.to_service().to_dict()
    return {"name": name, "protocol": proto, "port": port, "transport": transport, "tls": tls,
            "nonce": ctx.nonce, "intensity": ctx.intensity,
            "answers": [encode(a) for a in answers], "service": svc}


def save(fixtures: list[dict[str, object]]) -> None:
    """Write each fixture as ``<name>.json`` next to this script and say what it named."""
    for fixture in fixtures:
        path = HERE / f"{fixture['name']}.json"
        path.write_text(json.dumps(fixture, indent=1, sort_keys=True) + "\n")
        svc = fixture["service"]
        assert isinstance(svc, dict)
        print(path.name, svc["product"], svc["version"], svc.get("extrainfo") or "",
              file=sys.stderr)


def main() -> None:
    with Lab() as lab:
        host = lab.add_host()
        cert = D.make_certificate(Path(tempfile.mkdtemp()))
        daemons = [D.start_sshd(host), D.start_postfix(host, cert), D.start_vsftpd(host, cert),
                   D.start_nginx(host, cert), D.start_dnsmasq_daemon(host),
                   D.start_snmpd_daemon(host),
                   D.start_redis(host), D.start_redis(host, port=6380, password="secret"),
                   D.start_postgresql(host, cert),
                   D.start_postgresql(host, port=5433, auth="scram-sha-256")]
        try:
            model_host = Host(host.addr4, HostStatus.UP)

            async def all_cases() -> list[dict[str, object]]:
                engine = ServiceEngine(ServiceOptions())
                return [await record(engine, model_host, *case) for case in CASES]

            save(asyncio.run(all_cases()))
        finally:
            for d in daemons:
                d.stop()


if __name__ == "__main__":
    main()
