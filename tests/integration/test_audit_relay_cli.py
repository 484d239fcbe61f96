"""The relay runner and ``portscope audit`` against loopback servers this test starts
(127.0.0.1, port 0): an open relay, a closed one, and hostile/slow servers."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from portscope.checks.config import RelayOptions
from portscope.cli import cli, main
from portscope.engine.relay import relay_session, run_relay_tests
from portscope.model import Host, HostStatus, PortResult, PortState, Protocol, ScanRun, Service

Handler = Callable[[socket.socket], None]


@contextmanager
def tcp_server(handler: Handler) -> Iterator[int]:
    class H(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            try:
                handler(self.request)
            except OSError:
                pass

    class S(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = S(("127.0.0.1", 0), H)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        t.join(5)


def smtp(relay: bool) -> Handler:
    def handle(sock: socket.socket) -> None:
        f = sock.makefile("rb")
        sock.sendall(b"220 mx.lab.test ESMTP fake\r\n")
        for raw in f:
            line = raw.decode().strip()
            verb = line.split(" ", 1)[0].split(":")[0].upper()
            if verb == "EHLO":
                sock.sendall(b"250-mx.lab.test\r\n250 PIPELINING\r\n")
            elif verb in ("MAIL", "RSET"):
                sock.sendall(b"250 Ok\r\n")
            elif verb == "RCPT":
                ok = relay and line.endswith("relaytest@example.com>")
                sock.sendall(b"250 Ok\r\n" if ok else b"554 5.7.1 Relay access denied\r\n")
            elif verb == "QUIT":
                sock.sendall(b"221 Bye\r\n")
                return
            else:
                sock.sendall(b"502 what\r\n")
    return handle


def run_with(port: int) -> ScanRun:
    now = datetime.now(UTC)
    p = PortResult(port, Protocol.TCP, PortState.OPEN, "syn-ack",
                   service=Service("smtp", method="banner"))
    return ScanRun("t", now, now, targets=("127.0.0.1",),
                   hosts=(Host("127.0.0.1", HostStatus.UP, ports=(p,)),))


def test_relay_runner_finds_an_open_relay_and_keeps_the_dialogue() -> None:
    with tcp_server(smtp(relay=True)) as port:
        run = run_relay_tests(run_with(port), RelayOptions(timeout=5))
    fact = run.hosts[0].ports[0].service.extra["smtp_relay"]  # type: ignore[union-attr]
    assert fact["verdict"] == "open" and fact["accepted"] >= 4
    assert "S: 220 mx.lab.test ESMTP fake" in fact["transcript"]
    assert "C: QUIT" in fact["transcript"]


def test_relay_runner_closed_relay() -> None:
    with tcp_server(smtp(relay=False)) as port:
        fact = relay_session("127.0.0.1", port, RelayOptions(timeout=5))
    assert fact["verdict"] == "refused" and fact["completed"] == 16


@pytest.mark.parametrize(("behaviour", "error"), [
    ("silent", "no reply in time"),
    ("garbage", "not an SMTP reply"),
    ("flood", "longer than 4096"),
    ("close", "closed by the server"),
])
def test_relay_runner_survives_hostile_servers(behaviour: str, error: str) -> None:
    stop = threading.Event()

    def handle(sock: socket.socket) -> None:
        if behaviour == "silent":
            stop.wait(5)
        elif behaviour == "garbage":
            sock.sendall(b"\x16\x03\x01\x00\xff garbage\r\n")
        elif behaviour == "flood":
            sock.sendall(b"2" * 10000)
            stop.wait(5)
        elif behaviour == "close":
            sock.sendall(b"220 hi\r\n")

    with tcp_server(handle) as port:
        fact = relay_session("127.0.0.1", port, RelayOptions(timeout=0.5))
        stop.set()
    assert fact["verdict"] == "inconclusive"
    assert error in fact["error"]


def test_relay_runner_connection_refused() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    fact = relay_session("127.0.0.1", port, RelayOptions(timeout=1))
    assert fact["verdict"] == "inconclusive" and "cannot connect" in fact["error"]


def _config(tmp_path: Path, port: int, extra: str = "") -> Path:
    cfg = tmp_path / "audit.toml"
    cfg.write_text(f"[relay]\nports = [{port}]\ntimeout = 5\n{extra}", "utf-8")
    return cfg


def test_audit_cli_open_relay_report_and_fail_on(tmp_path: Path) -> None:
    html, sarif, js = tmp_path / "r.html", tmp_path / "r.sarif", tmp_path / "r.json"
    with tcp_server(smtp(relay=True)) as port:
        res = CliRunner().invoke(cli, [
            "audit", "127.0.0.1", "-p", str(port), "--config", str(_config(tmp_path, port)),
            "--report", str(html), "--report", str(sarif), "--json", str(js),
            "--lang", "ja", "--fail-on", "high", "--no-progress"])
    assert res.exit_code == 1, res.output
    assert "portscope audit: " in res.output and "1 high" in res.output
    doc = json.loads(js.read_text("utf-8"))
    findings = doc["hosts"][0]["findings"]
    relay = next(f for f in findings if f["check"] == "smtp.open-relay")
    assert relay["severity"] == "high" and "RCPT TO:<relaytest@example.com>" in relay["evidence"]
    assert "第三者中継" in relay["title"]
    assert "セキュリティ診断報告書" in html.read_text("utf-8")
    assert json.loads(sarif.read_text("utf-8"))["version"] == "2.1.0"


def test_audit_cli_closed_relay_passes(tmp_path: Path) -> None:
    with tcp_server(smtp(relay=False)) as port:
        res = CliRunner().invoke(cli, [
            "audit", "127.0.0.1", "-p", str(port), "--config", str(_config(tmp_path, port)),
            "--fail-on", "high", "-q", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("portscope audit: ")


def main_exit(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the real entry point (error mapping and exit codes included)."""
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_audit_cli_input_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                    ) -> None:
    now = datetime.now(UTC)
    run = ScanRun("t", now, now, hosts=(Host("198.18.0.2", HostStatus.UP, ports=(
        PortResult(23, Protocol.TCP, PortState.OPEN, "syn-ack"),)),))
    saved = tmp_path / "scan.json"
    saved.write_text(json.dumps(run.to_dict()), "utf-8")
    md = tmp_path / "check.md"
    r = CliRunner().invoke(cli, ["audit", "--input", str(saved), "--report", str(md), "-q",
                                 "--fail-on", "medium"])
    assert r.exit_code == 1, r.output  # telnet: high, from the saved run, no network
    assert "Telnet reachable on 23/tcp" in md.read_text("utf-8")
    r = CliRunner().invoke(cli, ["audit", "--input", str(saved), "-q", "--fail-on",
                                 "critical"])
    assert r.exit_code == 0
    code, out = main_exit(["audit", "--input", str(saved), "--report", "x.docx"], capsys)
    assert code == 64 and out.startswith("portscope: error: --report x.docx")
    bad = tmp_path / "bad.toml"
    bad.write_text("[services.ftp]\nseverity = \"severe\"\n", "utf-8")
    code, out = main_exit(["audit", "--input", str(saved), "--config", str(bad)], capsys)
    assert code == 65 and "severity 'severe'" in out and "Traceback" not in out
    code, out = main_exit(["audit", "--input", str(saved), "--relay-confirm"], capsys)
    assert code == 64 and "mailbox" in out
    garbage = tmp_path / "g.json"
    garbage.write_text("{nope", "utf-8")
    code, out = main_exit(["audit", "--input", str(garbage)], capsys)
    assert code == 65 and "not JSON" in out
    code, out = main_exit(["audit", "--input", str(tmp_path / "missing.json")], capsys)
    assert code == 66


def test_audit_cli_policy(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    host = Host("198.18.0.2", HostStatus.UP, ports=(
        PortResult(80, Protocol.TCP, PortState.OPEN, "syn-ack"),
        PortResult(3306, Protocol.TCP, PortState.OPEN, "syn-ack")))
    saved = tmp_path / "scan.json"
    saved.write_text(json.dumps(replace(ScanRun("t", now, now, hosts=(host,))).to_dict()),
                     "utf-8")
    policy = tmp_path / "policy.yaml"
    policy.write_text("name: web\nhosts:\n  - name: web servers\n    targets: [198.18.0.0/24]\n"
                      "    allow: [tcp/80, tcp/443]\n", "utf-8")
    out = tmp_path / "out.json"
    r = CliRunner().invoke(cli, ["audit", "--input", str(saved), "--policy", str(policy),
                                 "--json", str(out), "-q"])
    assert r.exit_code == 0, r.output
    checks = {(f["check"], f["port"]) for f in json.loads(out.read_text())["hosts"][0]["findings"]}
    assert ("policy.not-allowed", 3306) in checks and ("policy.not-allowed", 80) not in checks
