"""The scope-aware diff (pure): hosts, ports, services, certificates, findings."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from portscope.diff import diff_runs, render_text
from portscope.model import (
    ExtraPorts,
    ExtraReason,
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

T0 = datetime(2025, 3, 1, tzinfo=UTC)
OPEN, CLOSED, FILTERED = PortState.OPEN, PortState.CLOSED, PortState.FILTERED


def port(n: int, state: PortState = OPEN, svc: Service | None = None) -> PortResult:
    reason = {OPEN: "syn-ack", CLOSED: "conn-refused"}.get(state, "no-response")
    return PortResult(n, Protocol.TCP, state, reason, service=svc)


def host(addr: str, *ports: PortResult, status: HostStatus = HostStatus.UP,
         findings: tuple[Finding, ...] = ()) -> Host:
    return Host(addr, status, "syn-ack", ports=ports, findings=findings)


def run(rid: str, *hosts: Host, spec: str = "T:1-100", targets: tuple[str, ...] = (),
        **kw: object) -> ScanRun:
    return ScanRun(id=rid, started=T0, ports_spec=spec,
                   targets=targets or tuple(h.address for h in hosts), hosts=hosts,
                   **kw)  # type: ignore[arg-type]


def all_ports(open_: set[int], n: int = 100) -> list[PortResult]:
    return [port(i, OPEN if i in open_ else CLOSED) for i in range(1, n + 1)]


def kinds(d: object) -> list[tuple[str, int | None]]:
    return [(c.kind, c.port) for c in d.changes]  # type: ignore[attr-defined]


def test_same_runs_no_difference() -> None:
    a = run("a", host("198.18.0.2", *all_ports({22, 80})))
    d = diff_runs(a, replace(a, id="b"))
    assert not d.different
    assert "no differences" in render_text(d)


def test_port_opened_and_closed() -> None:
    a = run("a", host("198.18.0.2", *all_ports({22, 80})))
    b = run("b", host("198.18.0.2", *all_ports({22, 25})))
    d = diff_runs(a, b)
    assert kinds(d) == [("port-opened", 25), ("port-closed", 80)]
    assert d.different
    text = render_text(d)
    assert "+ 25/tcp" in text and "- 80/tcp" in text and "2 change(s)" in text


def test_only_ports_in_both_scopes_count() -> None:
    # a: ports 1-100; b: only 1-50. Port 80 open in a, not scanned in b: not "closed".
    a = run("a", host("198.18.0.2", *all_ports({22, 80})))
    b = run("b", host("198.18.0.2", *all_ports({22}, n=50)), spec="T:1-50")
    d = diff_runs(a, b)
    assert not d.different
    assert [(c.kind, c.port) for c in d.not_compared] == [("port-closed", 80)]


def test_collapsed_extraports_are_in_scope() -> None:
    collapsed = Host("198.18.0.2", HostStatus.UP, "syn-ack", ports=(port(22),),
                     extraports=(ExtraPorts(CLOSED, 99, (ExtraReason(
                         "conn-refused", 99, Protocol.TCP, "1-21,23-100"),)),))
    a = run("a", collapsed)
    b = run("b", host("198.18.0.2", *all_ports({22, 23})))
    assert kinds(diff_runs(a, b)) == [("port-opened", 23)]


def test_unknown_scope_covers_only_listed_ports() -> None:
    # masscan-like: only open ports, no ports_spec
    a = run("a", host("198.18.0.2", port(22), port(80)), spec="")
    b = run("b", host("198.18.0.2", *all_ports({22})))
    d = diff_runs(a, b)
    assert kinds(d) == [("port-closed", 80)]  # 80 is listed in a and scanned in b
    d2 = diff_runs(b, a)  # 80 closed in b, open in a (listed): opened
    assert kinds(d2) == [("port-opened", 80)]


def test_state_change_and_hosts() -> None:
    a = run("a", host("198.18.0.2", port(22), port(23, CLOSED)),
            host("198.18.0.3", port(22)), targets=("198.18.0.0/24",))
    b = run("b", host("198.18.0.2", port(22), port(23, FILTERED)),
            host("198.18.0.3", status=HostStatus.DOWN), host("198.18.0.4", port(22)),
            targets=("198.18.0.0/24",))
    d = diff_runs(a, b)
    assert ("port-state", 23) in kinds(d)
    assert ("host-down", None) in kinds(d)
    assert ("host-up", None) in kinds(d)
    # 198.18.0.3 went down: reported as host-down, its ports were not scanned
    assert ("port-closed", 22) not in kinds(d)
    assert ("port-opened", 22) in kinds(d)  # 198.18.0.4 is new in scope
    # a host outside the earlier run's targets is not "up" by the diff's rules
    c = run("c", host("198.18.1.9", port(22)), targets=("198.18.1.9",))
    d2 = diff_runs(a, c)
    assert not any(ch.address == "198.18.1.9" for ch in d2.changes)


def test_service_changes_only_between_detections() -> None:
    old = Service("ssh", "OpenSSH", "8.9", method="probe", confidence=10)
    new = Service("ssh", "OpenSSH", "9.6", method="probe", confidence=10)
    guess = Service("ssh")
    a = run("a", host("198.18.0.2", port(22, svc=old)))
    assert kinds(diff_runs(a, run("b", host("198.18.0.2", port(22, svc=new))))) == [
        ("service-changed", 22)]
    assert kinds(diff_runs(a, run("b", host("198.18.0.2", port(22, svc=guess))))) == []


def test_certificate_change() -> None:
    def svc(sha: str) -> Service:
        return Service("https", method="probe", tls={"sha256": sha, "subject_cn": "lab",
                                                     "not_after": "2030-01-01T00:00:00Z"})
    a = run("a", host("198.18.0.2", port(443, svc=svc("aa"))))
    b = run("b", host("198.18.0.2", port(443, svc=svc("bb"))))
    d = diff_runs(a, b)
    assert kinds(d) == [("cert-changed", 443)]
    assert d.changes[0].before == "aa" and "CN=lab" in d.changes[0].detail


def test_findings_new_and_resolved_when_both_audited() -> None:
    f1 = Finding("ftp-anon:21", "ftp-anon", Severity.HIGH, "", "Anonymous FTP", port=21,
                 protocol=Protocol.TCP)
    f2 = Finding("telnet:23", "telnet", Severity.HIGH, "", "Telnet", port=23,
                 protocol=Protocol.TCP)
    a = run("a", host("198.18.0.2", port(21), port(23), findings=(f1,)))
    b = run("b", host("198.18.0.2", port(21), port(23), findings=(f2,)))
    assert kinds(diff_runs(a, b)) == [("finding-resolved", 21), ("finding-new", 23)]
    # an unaudited later run resolves nothing
    c = run("c", host("198.18.0.2", port(21), port(23)))
    assert kinds(diff_runs(a, c)) == []
    d = replace(c, extra={"audited": True})
    assert kinds(diff_runs(a, d)) == [("finding-resolved", 21)]


def test_json_shape() -> None:
    a = run("a", host("198.18.0.2", *all_ports({22})))
    b = run("b", host("198.18.0.2", *all_ports({22, 80})))
    doc = diff_runs(a, b).to_dict()
    assert doc["different"] is True
    assert doc["counts"] == {"port-opened": 1}
    assert doc["changes"][0] == {"kind": "port-opened", "address": "198.18.0.2",
                                 "protocol": "tcp", "port": 80,
                                 "before": "closed (conn-refused)", "after": "open (syn-ack)",
                                 "detail": ""}
    assert doc["a"]["id"] == "a" and doc["b"]["id"] == "b"
