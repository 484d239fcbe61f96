"""``Watcher`` cycles and alert channels against receivers this test starts on 127.0.0.1
(HTTP, SMTP, syslog/UDP, a command), with a fake scan and a store on SQLite."""

from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from portscope.alerts import DeliveryError, parse_channel
from portscope.model import (
    Finding,
    Host,
    HostStatus,
    PortResult,
    PortState,
    Protocol,
    ScanRun,
    Severity,
)
from portscope.store import Store, open_store
from portscope.watch import Watcher

T0 = datetime(2025, 3, 1, tzinfo=UTC)
SCANNED = [*range(1, 101), 8080, 8081, 9090]


# --- receivers -----------------------------------------------------------------------------


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.append(json.loads(body))  # type: ignore[attr-defined]
        status = self.server.status  # type: ignore[attr-defined]
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []  # type: ignore[attr-defined]
    server.status = 200  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def hook_url(server: ThreadingHTTPServer) -> str:
    return f"webhook:http://127.0.0.1:{server.server_address[1]}/hook"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(str(tmp_path / "w.sqlite3"))
    yield s
    s.close()


# --- a fake scanner ------------------------------------------------------------------------


@dataclass
class FakeScan:
    store: Store
    name: str
    open_ports: set[int] = field(default_factory=lambda: {22})
    findings: tuple[Finding, ...] = ()
    n: int = 0

    def __call__(self) -> ScanRun:
        self.n += 1
        ports = tuple(PortResult(p, Protocol.TCP, PortState.OPEN if p in self.open_ports
                                 else PortState.CLOSED, "syn-ack" if p in self.open_ports
                                 else "conn-refused") for p in SCANNED)
        run = ScanRun(id=f"run{self.n:03d}", started=T0 + timedelta(hours=self.n),
                      finished=T0 + timedelta(hours=self.n, seconds=5),
                      ports_spec="T:1-100,8080-8081,9090", targets=("198.18.0.2",),
                      hosts=(Host("198.18.0.2", HostStatus.UP, "syn-ack", ports=ports,
                                  findings=self.findings),),
                      extra={"audited": True})
        self.store.save_run(run, source="watch", watch=self.name)
        return run


def watcher(store: Store, scan: FakeScan, channels: list[Any], **kw: Any) -> Watcher:
    logs: list[str] = []
    return Watcher(store=store, name=scan.name, scan=scan, channels=channels,
                   every=timedelta(seconds=0), options={}, log=logs.append, **kw)


def test_one_alert_per_event_across_restarts(store: Store,
                                             webhook: ThreadingHTTPServer) -> None:
    scan = FakeScan(store, "lab")
    chans = [parse_channel(hook_url(webhook))]
    w = watcher(store, scan, chans)
    r = w.cycle()  # baseline
    assert r.baseline is None and r.new_alerts == [] and webhook.received == []  # type: ignore[attr-defined]
    scan.open_ports.add(8080)
    r = w.cycle()
    assert r.new_alerts == ["new_open_port|198.18.0.2|8080/tcp|"] and r.delivered == 1
    got = webhook.received  # type: ignore[attr-defined]
    assert len(got) == 1
    assert (got[0]["trigger"], got[0]["port"], got[0]["watch"], got[0]["run"]) == \
        ("new_open_port", 8080, "lab", "run002")
    assert "8080" in got[0]["text"]
    w.cycle()
    assert len(got) == 1
    # a restarted watch: new Watcher, same store
    w2 = watcher(store, scan, chans)
    assert w2.cycle().new_alerts == []
    assert len(got) == 1
    # the port closes (alert resolved) and reopens: alerted again
    scan.open_ports.discard(8080)
    assert w2.cycle().resolved == 1
    scan.open_ports.add(8080)
    w2.cycle()
    assert len(got) == 2
    statuses = [row["status"] for row in store.alert_rows(watch="lab")]
    assert statuses == ["sent"]


def test_failed_delivery_is_retried_without_duplicates(store: Store,
                                                       webhook: ThreadingHTTPServer) -> None:
    calls: list[str] = []

    class Flaky:
        name = "flaky"
        fail = True

        def describe(self) -> str:
            return "flaky"

        def send(self, alert: dict[str, Any], text: str) -> None:
            calls.append(alert["key"])
            if self.fail:
                raise DeliveryError("flaky: down")

    flaky = Flaky()
    scan = FakeScan(store, "lab")
    w = watcher(store, scan, [parse_channel(hook_url(webhook)), flaky])
    w.cycle()
    scan.open_ports.add(8080)
    r = w.cycle()
    assert r.failed == 1 and len(webhook.received) == 1  # type: ignore[attr-defined]
    assert store.alert_rows(status="pending")
    flaky.fail = False
    r = w.cycle()  # no new change, but the pending alert goes out on the flaky channel
    assert r.delivered == 1
    assert len(webhook.received) == 1  # type: ignore[attr-defined]  # not sent twice
    assert len(calls) == 2
    assert store.alert_rows(status="pending") == []
    # the webhook answering 500 is a failed delivery too
    webhook.status = 500  # type: ignore[attr-defined]
    scan.open_ports.add(9090)
    assert w.cycle().failed == 1


def test_mutes(store: Store, webhook: ThreadingHTTPServer) -> None:
    scan = FakeScan(store, "lab")
    w = watcher(store, scan, [parse_channel(hook_url(webhook))],
                mutes=["host:198.18.0.2:8080/tcp"])
    w.cycle()
    scan.open_ports |= {8080, 8081}
    store.mute("port:8081/tcp")
    r = w.cycle()
    assert r.muted == 2 and webhook.received == []  # type: ignore[attr-defined]


def test_new_high_finding(store: Store, webhook: ThreadingHTTPServer) -> None:
    scan = FakeScan(store, "lab", open_ports={22, 23})
    w = watcher(store, scan, [parse_channel(hook_url(webhook))])
    w.cycle()
    scan.findings = (Finding("telnet:23", "telnet", Severity.HIGH, "cleartext", "Telnet open",
                             port=23, protocol=Protocol.TCP),
                     Finding("info:22", "banner", Severity.INFO, "", "SSH banner", port=22,
                             protocol=Protocol.TCP))
    w.cycle()
    (got,) = webhook.received  # type: ignore[attr-defined]
    assert got["trigger"] == "new_finding" and got["check"] == "telnet"
    assert got["severity"] == "high"


def test_schedule_and_stop(store: Store) -> None:
    scan = FakeScan(store, "lab")
    w = Watcher(store=store, name="lab", scan=scan, channels=[], every=timedelta(hours=1),
                options={}, log=lambda m: None, now=lambda: T0 + timedelta(hours=scan.n))
    assert w.run_forever(count=1) == 1
    # the next cycle is due an hour after the last run started: stopping ends the wait
    w.stop()
    assert w.run_forever(count=5) == 0


def test_an_interrupted_scan_stops_the_watch(store: Store) -> None:
    from dataclasses import replace as dc_replace

    scan = FakeScan(store, "lab")

    def interrupted() -> ScanRun:
        return dc_replace(scan(), complete=False)

    w = Watcher(store=store, name="lab", scan=interrupted, channels=[],
                every=timedelta(seconds=0), options={}, log=lambda m: None)
    assert w.run_forever(count=5) == 1
    state = store.watch_state("lab")
    assert state is not None and state["last_run_id"] is None  # not a baseline


# --- channels ------------------------------------------------------------------------------


def test_command_channel(tmp_path: Path) -> None:
    out = tmp_path / "alert.json"
    script = ("import json,os,sys; d=json.load(sys.stdin); "
              "d['env']=os.environ['PORTSCOPE_ALERT_PORT']; "
              f"open({str(out)!r},'w').write(json.dumps(d))")
    ch = parse_channel(f"command:{sys.executable} -c {json.dumps(script)}")
    ch.send({"key": "k", "port": 8080, "trigger": "new_open_port"}, "text")
    got = json.loads(out.read_text())
    assert got["key"] == "k" and got["text"] == "text" and got["env"] == "8080"
    bad = parse_channel(f"command:{sys.executable} -c 'import sys; sys.exit(3)'")
    with pytest.raises(DeliveryError, match="exit 3"):
        bad.send({"key": "k"}, "t")
    with pytest.raises(DeliveryError):
        parse_channel("command:/nonexistent/portscope-test-cmd").send({}, "t")


def test_syslog_channel_udp() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    try:
        ch = parse_channel(f"syslog:127.0.0.1:{sock.getsockname()[1]}")
        ch.send({"key": "k", "severity": "high", "watch": "w", "run": "r"}, "[HIGH] new port")
        data = sock.recv(4096).decode()
    finally:
        sock.close()
    assert data.startswith("<27>")  # daemon (3) * 8 + err (3)
    assert "portscope: [HIGH] new port" in data and '"key": "k"' in data


class _SMTP(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        w = self.wfile.write
        w(b"220 test ESMTP\r\n")
        data = False
        lines: list[str] = []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            text = line.decode().rstrip("\r\n")
            if data:
                if text == ".":
                    data = False
                    self.server.messages.append("\n".join(lines))  # type: ignore[attr-defined]
                    w(b"250 ok\r\n")
                else:
                    lines.append(text)
                continue
            verb = text.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                w(b"250 test\r\n")
            elif verb == "DATA":
                data = True
                w(b"354 go\r\n")
            elif verb == "QUIT":
                w(b"221 bye\r\n")
                return
            else:
                w(b"250 ok\r\n")


def test_email_channel() -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTP)
    server.messages = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        ch = parse_channel(f"email:ops@example.org?smtp=127.0.0.1:{port}&from=ps@example.org")
        ch.send({"key": "k", "trigger": "new_open_port", "port": 8080}, "[HIGH] new open port")
        (msg,) = server.messages  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
    assert "Subject: portscope: [HIGH] new open port" in msg
    assert "To: ops@example.org" in msg and "port: 8080" in msg
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead = closed.getsockname()[1]
    closed.close()
    with pytest.raises(DeliveryError):
        parse_channel(f"email:ops@example.org?smtp=127.0.0.1:{dead}").send({}, "x")
