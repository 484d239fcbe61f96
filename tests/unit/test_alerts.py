"""Alert triggers, keys, mutes (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from portscope.alerts import (
    Alert,
    alerts_from_diff,
    muted_by,
    normalize_scope,
    parse_channel,
    still_active,
)
from portscope.diff import diff_runs
from portscope.errors import UsageError
from portscope.model import (
    Finding,
    Host,
    HostStatus,
    PortResult,
    PortState,
    Protocol,
    ScanRun,
    Service,
    Severity,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def run(rid: str, ports: list[PortResult], findings: tuple[Finding, ...] = (),
        **extra: object) -> ScanRun:
    h = Host("198.18.0.2", HostStatus.UP, "syn-ack", ports=tuple(ports), findings=findings)
    return ScanRun(id=rid, started=NOW, ports_spec="T:1-1000", targets=("198.18.0.2",),
                   hosts=(h,), extra=dict(extra))


def p(n: int, state: PortState = PortState.OPEN, svc: Service | None = None) -> PortResult:
    return PortResult(n, Protocol.TCP, state, "syn-ack", service=svc)


def test_new_open_port_alert_and_key() -> None:
    a = run("a", [p(22), p(8080, PortState.CLOSED)])
    b = run("b", [p(22), p(8080)])
    (alert,) = alerts_from_diff(diff_runs(a, b), b, now=NOW)
    assert alert.trigger == "new_open_port" and alert.port == 8080
    assert alert.key == "new_open_port|198.18.0.2|8080/tcp|"
    d = alert.to_dict(watch="w", run_id="b", now=NOW)
    assert d["trigger"] == "new_open_port" and d["run"] == "b" and d["watch"] == "w"


def test_first_run_has_no_change_alerts() -> None:
    b = run("b", [p(22), p(8080)])
    assert alerts_from_diff(None, b, now=NOW) == []


def test_cert_expiring_and_new_finding_threshold() -> None:
    tls = {"sha256": "cc", "not_after": "2025-06-10T00:00:00Z"}
    svc = Service("https", method="probe", tls=tls)
    hi = Finding("x:1", "telnet", Severity.HIGH, "", "Telnet open", port=23,
                 protocol=Protocol.TCP)
    lo = Finding("y:1", "banner", Severity.LOW, "", "Banner", port=22, protocol=Protocol.TCP)
    a = run("a", [p(443, svc=svc), p(22), p(23)], audited=True)
    b = run("b", [p(443, svc=svc), p(22), p(23)], (hi, lo))
    alerts = alerts_from_diff(diff_runs(a, b), b, now=NOW)
    assert sorted(x.trigger for x in alerts) == ["cert_expiring", "new_finding"]
    cert = next(x for x in alerts if x.trigger == "cert_expiring")
    assert cert.ident == "cc" and "9 days" in cert.detail
    low = alerts_from_diff(diff_runs(a, b), b, now=NOW, min_severity="low")
    assert sum(x.trigger == "new_finding" for x in low) == 2
    far = alerts_from_diff(diff_runs(a, b), b, now=NOW, cert_days=5)
    assert not any(x.trigger == "cert_expiring" for x in far)


def test_service_changed() -> None:
    a = run("a", [p(22, svc=Service("ssh", "OpenSSH", "8.9", method="probe"))])
    b = run("b", [p(22, svc=Service("ssh", "OpenSSH", "9.6", method="probe"))])
    (alert,) = alerts_from_diff(diff_runs(a, b), b, now=NOW)
    assert alert.trigger == "service_changed" and "9.6" in alert.detail


def test_still_active() -> None:
    b = run("b", [p(22), p(8080, PortState.CLOSED)])

    def scanned(a: str, proto: str, port: int) -> bool:
        return port < 9000

    assert still_active("new_open_port", "198.18.0.2", "tcp", 22, "", b, scanned) is True
    assert still_active("new_open_port", "198.18.0.2", "tcp", 8080, "", b, scanned) is False
    assert still_active("new_open_port", "198.18.0.2", "tcp", 9999, "", b, scanned) is None


@pytest.mark.parametrize(("text", "norm"), [
    ("198.18.0.2", "host:198.18.0.2"),
    ("198.18.0.2:8080", "host:198.18.0.2:8080/tcp"),
    ("198.18.0.2:53/udp", "host:198.18.0.2:53/udp"),
    ("[2001:db8::1]:443", "host:2001:db8::1:443/tcp"),
    ("2001:db8::1", "host:2001:db8::1"),
    ("port:23", "port:23/tcp"),
    ("check:ftp-anon", "check:ftp-anon"),
    ("trigger:cert_expiring", "trigger:cert_expiring"),
])
def test_mute_scopes(text: str, norm: str) -> None:
    assert normalize_scope(text) == norm


@pytest.mark.parametrize("bad", ["nonsense", "198.18.0.2:99999", "trigger:nope", "check:",
                                 "port:x"])
def test_bad_mute_scopes(bad: str) -> None:
    with pytest.raises(UsageError):
        normalize_scope(bad)


def test_muted_by() -> None:
    a = Alert("new_finding", "198.18.0.2", "t", "tcp", 23, check="telnet")
    assert muted_by(a, ["host:198.18.0.3"]) is None
    assert muted_by(a, ["check:telnet"]) == "check:telnet"
    assert muted_by(a, ["host:198.18.0.2:23/tcp"]) == "host:198.18.0.2:23/tcp"
    assert muted_by(a, ["port:23/tcp"]) == "port:23/tcp"
    assert muted_by(a, ["trigger:new_finding"]) == "trigger:new_finding"
    assert muted_by(a, ["host:198.18.0.2"]) == "host:198.18.0.2"


@pytest.mark.parametrize("bad", ["pager:x", "webhook:ftp://x", "webhook:", "email:nobody",
                                 "email:a@b?bogus=1", "command:", "syslog:host:notaport"])
def test_bad_channels(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_channel(bad)


def test_channel_descriptions() -> None:
    assert parse_channel("webhook:http://127.0.0.1:9/x?token=secret").describe() == \
        "webhook http://127.0.0.1:9/x"  # no query string: tokens stay out of logs
    assert "127.0.0.1:2525" in parse_channel("email:ops@example.org?smtp=127.0.0.1:2525"
                                             ).describe()
    assert parse_channel("syslog").describe() == "syslog /dev/log"
    assert parse_channel("syslog:127.0.0.1:5514").describe() == "syslog udp 127.0.0.1:5514"
