"""Service detection end to end against servers this test starts on 127.0.0.1: hostile
ones (megabytes, silence, TLS garbage, a byte a second, instant close) and small fakes
of real protocols (greetings, SMTP with a real STARTTLS, HTTPS)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from portscope.engine.services import ServiceOptions, detect
from portscope.model import Host, HostStatus, PortResult, PortState, Protocol, ScanRun
from portscope.testing import hostile as H
from portscope.testing.daemons import make_certificate


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    c = make_certificate(tmp_path_factory.mktemp("cert"), common_name="loopback.test",
                         dns_names=("loopback.test", "files.internal"),
                         ip_addresses=("127.0.0.1",))
    return str(c.cert), str(c.key)


@pytest.fixture
def servers() -> Iterator[H.LoopbackServers]:
    with H.LoopbackServers() as srv:
        yield srv


def run_of(ports: dict[int, str]) -> ScanRun:
    results = tuple(PortResult(p, Protocol(proto), PortState.OPEN if proto == "tcp"
                               else PortState.OPEN_FILTERED, "syn-ack")
                    for p, proto in ports.items())
    return ScanRun(id="t", started=datetime.now(UTC),
                   hosts=(Host("127.0.0.1", HostStatus.UP, ports=results),))


def by_port(run: ScanRun) -> dict[int, PortResult]:
    return {p.port: p for p in run.hosts[0].ports}


FAST = ServiceOptions(timeout=2.0, banner_wait=2.0, connect_timeout=2.0, port_timeout=20.0)


def test_hostile_servers_cost_bounded_time_and_memory(servers: H.LoopbackServers) -> None:
    flood = servers.tcp(H.flood_handler(64 << 20))
    silent = servers.tcp(H.silent_handler())
    garbage = servers.tcp(H.garbage_handler())
    trickle = servers.tcp(H.trickle_handler())
    closer = servers.tcp(H.close_handler())
    run = run_of({flood: "tcp", silent: "tcp", garbage: "tcp", trickle: "tcp", closer: "tcp"})
    decided: list[int] = []
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        out = detect(run, FAST, on_port=lambda addr, p: decided.append(p.port))
    finally:
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    elapsed = time.monotonic() - t0
    ports = by_port(out)
    assert sorted(decided) == sorted(ports)
    assert elapsed < FAST.port_timeout, elapsed
    assert peak < 48 << 20, f"peak traced memory {peak >> 20} MiB"
    stats = out.extra["service_detection"]
    assert stats["bytes_read"] < 16 << 20  # far less than the 64 MiB offered
    assert stats["connections_left_open"] == 0
    for p in ports.values():
        assert p.state is PortState.OPEN and p.service is not None
        assert p.service.banner is None or len(p.service.banner) <= 2048
    assert ports[flood].service.banner.startswith("AAAA")  # type: ignore[union-attr]
    assert not ports[flood].service.detected  # type: ignore[union-attr]
    assert ports[silent].service.banner is None  # type: ignore[union-attr]
    assert not ports[silent].service.detected  # type: ignore[union-attr]
    g = ports[garbage].service
    assert g is not None and not g.detected and g.tls is None
    t = ports[trickle].service
    assert t is not None and t.banner is not None and t.banner.startswith("2")
    c = ports[closer].service
    assert c is not None and c.name == "tcpwrapped"


def test_real_protocol_fakes(servers: H.LoopbackServers, cert: tuple[str, str]) -> None:
    ctx = H.server_context(*cert)
    ssh = servers.tcp(H.greeting_handler(b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n"))
    smtp = servers.tcp(H.smtp_starttls_handler(ctx))
    https = servers.tcp(H.http_handler(b"Apache/2.4.58 (Ubuntu)", b"secure"), tls=ctx)
    web = servers.tcp(H.http_handler())
    done = detect(run_of({ssh: "tcp", smtp: "tcp", https: "tcp", web: "tcp"}), FAST)
    assert done.extra["service_detection"]["connections_left_open"] == 0
    out = by_port(done)

    s = out[ssh].service
    assert s is not None and (s.name, s.product, s.version) == ("ssh", "OpenSSH", "9.6p1")
    assert s.extrainfo == "Ubuntu 3ubuntu13; protocol 2.0" and s.method == "banner"

    m = out[smtp].service
    assert m is not None and (m.product, m.version) == ("Postfix smtpd", "3.7.11")
    assert m.extra["starttls"] is True and m.extra["auth_before_tls"] is False
    assert m.extra["auth_mechanisms"] == ["PLAIN", "LOGIN"]  # learned after STARTTLS
    assert m.tls is not None and m.tls["starttls"] is True
    assert m.tls["subject_cn"] == "loopback.test"
    assert m.tls["self_signed"] is True
    assert set(m.tls["private_names"]) == {"files.internal", "127.0.0.1"}
    assert "TLSv1.2" in m.tls["versions"]

    h = out[https].service
    assert h is not None and (h.name, h.tunnel, h.product, h.version) == \
        ("https", "ssl", "Apache httpd", "2.4.58")
    assert h.extra["title"] == "secure" and h.extra["risky_methods"] == ["PUT"]
    assert h.tls is not None and h.tls["negotiated_version"] in ("TLSv1.2", "TLSv1.3")
    assert "TLSv1.3" in h.tls["versions"] and "SSLv3" not in h.tls["versions"]
    assert h.tls["chain_length"] == 1
    assert h.cpe == ("cpe:2.3:a:apache:http_server:2.4.58:*:*:*:*:*:*:*",)

    w = out[web].service
    assert w is not None and (w.name, w.product, w.version) == ("http", "nginx", "1.22.1")


def test_udp_answer_opens_the_port(servers: H.LoopbackServers) -> None:
    import dns.message
    import dns.rrset

    def answer(data: bytes) -> bytes | None:
        try:
            q = dns.message.from_wire(data)
        except Exception:
            return None
        r = dns.message.make_response(q)
        if q.question and q.question[0].name.to_text() == "version.bind.":
            r.answer.append(dns.rrset.from_text("version.bind.", 0, "CH", "TXT",
                                                '"unbound 1.17.1"'))
        return r.to_wire()

    dnsport = servers.udp(answer)
    quiet = servers.udp(lambda data: None)
    out = by_port(detect(run_of({dnsport: "udp", quiet: "udp"}),
                         ServiceOptions(timeout=0.5, intensity=2)))
    d = out[dnsport]
    assert d.state is PortState.OPEN and d.reason == "udp-response"
    assert d.service is not None and (d.service.product, d.service.version) == \
        ("Unbound", "1.17.1")
    q = out[quiet]
    assert q.state is PortState.OPEN_FILTERED
    assert q.service is not None and not q.service.detected


def test_port_table_guess_is_never_a_detection(servers: H.LoopbackServers) -> None:
    silent = servers.tcp(H.silent_handler())
    run = run_of({silent: "tcp"})
    out = detect(run, ServiceOptions(timeout=0.5, banner_wait=0.5, intensity=0))
    svc = by_port(out)[silent].service
    assert svc is not None and svc.method == "port-table" and not svc.detected


def test_cli_scan_sv_on_loopback(servers: H.LoopbackServers, tmp_path: Path) -> None:
    ssh = servers.tcp(H.greeting_handler(b"SSH-2.0-dropbear_2022.83\r\n"))
    web = servers.tcp(H.http_handler(b"lighttpd/1.4.69"))
    out = tmp_path / "scan.json"
    jsonl = tmp_path / "scan.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "portscope", "scan", "-sV", "--version-light", "-p",
         f"{ssh},{web}", "127.0.0.1", "--json", str(out), "--jsonl", str(jsonl)],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Dropbear sshd 2022.83" in proc.stdout and "lighttpd 1.4.69" in proc.stdout
    doc = json.loads(out.read_text())
    ports = {p["port"]: p for p in doc["hosts"][0]["ports"]}
    assert ports[ssh]["service"]["product"] == "Dropbear sshd"
    assert ports[web]["service"]["method"] == "probe"
    assert doc["run"]["extra"]["service_detection"]["identified"] == 2
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    web_lines = [x for x in lines if x.get("type") == "port" and x["port"] == web]
    assert len(web_lines) == 2  # once from the port scan, once identified
    assert web_lines[0]["service"] is None  # an unnamed port: no port-table guess either
    assert web_lines[1]["service"]["product"] == "lighttpd"


def test_cli_version_options_need_sv() -> None:
    proc = subprocess.run([sys.executable, "-m", "portscope", "scan", "--version-all", "-p",
                           "1", "127.0.0.1"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 64
    assert "--version-all needs -sV" in proc.stderr


def test_detection_can_be_stopped(servers: H.LoopbackServers) -> None:
    import asyncio

    from portscope.engine.services import Control, detect_async

    silent = [servers.tcp(H.silent_handler()) for _ in range(3)]
    control = Control()

    async def main() -> ScanRun:
        asyncio.get_running_loop().call_later(0.5, control.stop)  # what Ctrl-C does
        return await detect_async(run_of(dict.fromkeys(silent, "tcp")),
                                  ServiceOptions(timeout=10, banner_wait=10, port_timeout=60),
                                  control=control)

    t0 = time.monotonic()
    out = asyncio.run(main())
    assert time.monotonic() - t0 < 5
    assert out.extra["service_detection"]["complete"] is False
    assert out.extra["service_detection"]["connections_left_open"] == 0
    assert all(p.state is PortState.OPEN for p in out.hosts[0].ports)
    stopped_before = detect(run_of(dict.fromkeys(silent, "tcp")), control=control)
    assert stopped_before.extra["service_detection"]["probed"] == 0
