"""compare(): every class, the address rules, notes, and the knowledge-base adapter."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from portscope.errors import DataError, UsageError
from portscope.local import advice
from portscope.local.compare import MIDDLEBOX_OPEN, compare
from portscope.local.render import render_comparison_rich, render_comparison_text
from portscope.local.risk import KBRiskSource, default_risk_source
from portscope.model import (
    Comparison,
    Exposure,
    Host,
    HostStatus,
    Inventory,
    ListeningSocket,
    LocalAddress,
    PortResult,
    PortState,
    Protocol,
    ScanRun,
    Service,
    Severity,
    SocketProcess,
    collapse_host,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
A4, A6 = "198.18.0.2", "2001:db8::2"
S = ListeningSocket.make


def inventory(*sockets: ListeningSocket, addresses: tuple[str, ...] = (A4, A6, "127.0.0.1",
                                                                       "::1")) -> Inventory:
    return Inventory(hostname="web1", taken=T0, collector="test",
                     addresses=tuple(LocalAddress(a, "eth0") for a in addresses)
                     ).with_sockets(sockets)


def run(*hosts: Host, spec: str = "T:1-10000", started: datetime = T0,
        complete: bool = True) -> ScanRun:
    return ScanRun(id="r1", started=started, ports_spec=spec, vantage="scanner",
                   complete=complete, hosts=hosts)


def host(address: str, states: dict[int, PortState], *, default: PortState = PortState.CLOSED,
         spec: range = range(1, 10001), udp: dict[int, PortState] | None = None) -> Host:
    reasons = {PortState.OPEN: "syn-ack", PortState.CLOSED: "reset",
               PortState.FILTERED: "no-response", PortState.OPEN_FILTERED: "no-response"}
    ports = [PortResult(p, Protocol.TCP, states.get(p, default), reasons[states.get(p, default)])
             for p in spec]
    ports += [PortResult(p, Protocol.UDP, s, reasons[s]) for p, s in (udp or {}).items()]
    return collapse_host(Host(address, HostStatus.UP, ports=tuple(ports)))


def classes(c: Comparison) -> dict[tuple[str | None, str, int], tuple[str, str]]:
    return {(e.address, e.protocol.value, e.port): (e.exposure.value, e.why) for e in c.entries}


def test_every_class() -> None:
    inv = inventory(
        S("tcp", "0.0.0.0", 22), S("tcp", "0.0.0.0", 3306), S("tcp", "127.0.0.1", 5432),
        S("tcp", A4, 8080), S("tcp", "0.0.0.0", 1029), S("tcp", "0.0.0.0", 20000),
        S("udp", "0.0.0.0", 53))
    r = run(host(A4, {22: PortState.OPEN, 3306: PortState.FILTERED, 8080: PortState.OPEN,
                      8443: PortState.OPEN}, udp={53: PortState.OPEN_FILTERED}),
            spec="T:1-10000,U:53")
    got = classes(compare(inv, r))
    assert got == {
        (A4, "tcp", 22): ("exposed", "open"),
        (A4, "tcp", 3306): ("shielded", "filtered"),
        (A4, "tcp", 8080): ("exposed", "open"),
        (A4, "tcp", 8443): ("unexpected", "no-listener"),
        (A4, "tcp", 1029): ("closed-but-listed", "closed"),
        (A4, "tcp", 20000): ("not-scanned", "port-not-scanned"),
        (A4, "udp", 53): ("undetermined", "open-filtered"),
        (None, "tcp", 5432): ("local-only", "loopback"),
    }


def test_bind_addresses_decide_which_scanned_address_a_socket_answers_on() -> None:
    inv = inventory(
        S("tcp", "0.0.0.0", 21),  # IPv4 only
        S("tcp", "::", 22, v6only=True),  # IPv6 only
        S("tcp", "::", 80, v6only=False),  # dual stack
        S("tcp", "::", 81),  # unknown v6only: assumed dual stack (the kernel default)
        S("tcp", A6, 443),  # one IPv6 address
        S("tcp", f"::ffff:{A4}", 9090),  # an IPv4 address through an IPv6 socket
        S("tcp", "::1", 6379),
        S("tcp", "198.18.5.5", 8000),  # an address of the host that was not scanned
    )
    opened = {21: PortState.OPEN, 22: PortState.OPEN, 80: PortState.OPEN, 81: PortState.OPEN,
              443: PortState.OPEN, 9090: PortState.OPEN}
    r = run(host(A4, opened), host(A6, opened))
    got = classes(compare(inv, r, addresses=[A4, A6]))
    assert got[(A4, "tcp", 21)] == ("exposed", "open")
    assert got[(A6, "tcp", 21)] == ("unexpected", "no-listener")
    assert got[(A4, "tcp", 22)] == ("unexpected", "no-listener")
    assert got[(A6, "tcp", 22)] == ("exposed", "open")
    assert got[(A4, "tcp", 80)] == got[(A6, "tcp", 80)] == ("exposed", "open")
    assert got[(A4, "tcp", 81)] == ("exposed", "open")
    assert got[(A6, "tcp", 443)] == ("exposed", "open")
    assert got[(A4, "tcp", 443)] == ("unexpected", "no-listener")
    assert got[(A4, "tcp", 9090)] == ("exposed", "open")
    assert got[(None, "tcp", 6379)] == ("local-only", "loopback")
    assert got[(None, "tcp", 8000)] == ("not-scanned", "address-not-scanned")
    c = compare(inv, r, addresses=[A4, A6])
    hints = {(e.address, e.port): e.hints for e in c.entries}
    assert hints[(A4, 22)] == ("v6only-listener",)
    assert hints[(A6, 21)] == ("other-address-listener",)


def test_unexpected_port_forward_to_loopback_gets_a_hint() -> None:
    inv = inventory(S("tcp", "127.0.0.1", 9000))
    c = compare(inv, run(host(A4, {8080: PortState.OPEN})))
    (e,) = c.of(Exposure.UNEXPECTED)
    assert (e.port, e.hints) == (8080, ())
    c = compare(inventory(S("tcp", "127.0.0.1", 8080)), run(host(A4, {8080: PortState.OPEN})))
    (e,) = c.of(Exposure.UNEXPECTED)
    assert e.hints == ("loopback-listener",)
    assert "forwarded" in " ".join(advice.hint_texts(e, "en"))


def test_family_and_protocol_not_scanned() -> None:
    inv = inventory(S("tcp", "::", 22, v6only=True), S("udp", "0.0.0.0", 161))
    c = compare(inv, run(host(A4, {})))
    assert classes(c) == {(None, "tcp", 22): ("not-scanned", "family-not-scanned"),
                          (A4, "udp", 161): ("not-scanned", "protocol-not-scanned")}


def test_reject_rules_are_shielded_with_a_hint_and_tcp_reset_is_closed_but_listed() -> None:
    inv = inventory(S("tcp", "0.0.0.0", 23), S("tcp", "0.0.0.0", 1433))
    h = Host(A4, HostStatus.UP, ports=(
        PortResult(23, Protocol.TCP, PortState.FILTERED, "admin-prohibited"),
        PortResult(1433, Protocol.TCP, PortState.CLOSED, "reset")))
    c = compare(inv, run(h, spec="T:23,1433"))
    e23, e1433 = sorted(c.entries, key=lambda e: e.port)
    assert (e23.exposure, e23.hints) == (Exposure.SHIELDED, ("rejected",))
    assert e1433.exposure is Exposure.CLOSED_BUT_LISTED


def test_host_down_interrupted_and_time_gap_are_noted() -> None:
    inv = inventory(S("tcp", "0.0.0.0", 22))
    down = Host(A4, HostStatus.DOWN, reason="no-response")
    c = compare(inv, run(down, started=T0 + timedelta(hours=30), complete=False))
    assert classes(c) == {(A4, "tcp", 22): ("not-scanned", "host-down")}
    assert set(c.notes) >= {"host-down", "scan-incomplete", "time-gap", "no-risk-source"}
    texts = " ".join(advice.note_texts(c))
    assert "30 hour(s)" in texts and A4 in texts
    assert "30 時間" in " ".join(advice.note_texts(c, "ja"))


def test_translated_address_matches_by_port() -> None:
    inv = inventory(S("tcp", "10.0.0.5", 443), S("tcp", "127.0.0.1", 5432),
                    S("tcp", "0.0.0.0", 22), addresses=("10.0.0.5", "127.0.0.1"))
    public = "198.18.7.7"
    c = compare(inv, run(host(public, {443: PortState.OPEN, 22: PortState.FILTERED})))
    assert c.translated == (public,) and "translated" in c.notes
    assert classes(c) == {(public, "tcp", 443): ("exposed", "open"),
                          (public, "tcp", 22): ("shielded", "filtered"),
                          (None, "tcp", 5432): ("local-only", "loopback")}


def test_middlebox_answering_everything_is_noted() -> None:
    opened = dict.fromkeys(range(1, MIDDLEBOX_OPEN + 10), PortState.OPEN)
    c = compare(inventory(), run(host(A4, opened)))
    assert "middlebox" in c.notes
    assert len(c.of(Exposure.UNEXPECTED)) == MIDDLEBOX_OPEN + 9


def test_host_selection() -> None:
    inv = inventory(S("tcp", "0.0.0.0", 22))
    two = run(host("198.18.9.1", {}), host("198.18.9.2", {}))
    with pytest.raises(UsageError, match="--address"):
        compare(inv, two)
    c = compare(inv, two, addresses=["198.18.9.2"])
    assert c.addresses == ("198.18.9.2",) and c.translated == ("198.18.9.2",)
    with pytest.raises(UsageError, match="not scanned"):
        compare(inv, two, addresses=["198.18.9.3"])
    with pytest.raises(UsageError, match="not an IP address"):
        compare(inv, two, addresses=["nope"])
    with pytest.raises(DataError, match="no hosts"):
        compare(inv, run())
    # of several scanned hosts, the ones that are the inventory's own addresses
    c = compare(inv, run(host("198.18.9.1", {}), host(A4, {22: PortState.OPEN})))
    assert c.addresses == (A4,) and not c.translated


def test_service_name_prefers_detection_then_local_table() -> None:
    inv = inventory(replace(S("tcp", "0.0.0.0", 8080), service="http-proxy"))
    detected = PortResult(8080, Protocol.TCP, PortState.OPEN, "syn-ack",
                          service=Service("http", method="probe", confidence=10))
    c = compare(inv, run(Host(A4, HostStatus.UP, ports=(detected,)), spec="T:8080"))
    assert c.entries[0].service == "http"
    guessed = replace(detected, service=Service("http-alt"))
    c = compare(inv, run(Host(A4, HostStatus.UP, ports=(guessed,)), spec="T:8080"))
    assert c.entries[0].service == "http-proxy"


class FakeEntry:
    def __init__(self, severity: Any) -> None:
        self.severity = severity

    def severity_reason(self, lang: str) -> str:
        return f"reason-{lang}"

    def title(self, lang: str) -> str:
        return f"title-{lang}"

    def remediation(self, lang: str) -> str:
        return f"fix-{lang}"


class FakeKB:
    def __init__(self) -> None:
        self.calls: list[tuple[int, str, str | None]] = []

    def lookup(self, port: int, protocol: str, service: str | None) -> Any:
        self.calls.append((port, protocol, service))
        if port == 23:
            return FakeEntry(Severity.HIGH)
        if port == 21:
            return FakeEntry("MEDIUM")  # a string is fine too
        if port == 666:
            raise RuntimeError("broken entry")
        return None


def test_risk_from_a_knowledge_base() -> None:
    kb = FakeKB()
    inv = inventory(*(S("tcp", "0.0.0.0", p, service=n) for p, n in
                      ((21, "ftp"), (23, "telnet"), (80, "http"), (666, "doom"), (3306, "mysql"))))
    r = run(host(A4, {21: PortState.OPEN, 23: PortState.OPEN, 80: PortState.OPEN,
                      666: PortState.OPEN, 3306: PortState.FILTERED, 8080: PortState.OPEN}))
    c = compare(inv, r, risk=KBRiskSource(kb), lang="ja")
    risks = {e.port: e.risk for e in c.entries}
    assert risks[23] is not None and risks[23].severity is Severity.HIGH
    assert (risks[23].title, risks[23].reason, risks[23].remediation) == (
        "title-ja", "reason-ja", "fix-ja")
    assert risks[21] is not None and risks[21].severity is Severity.MEDIUM
    assert risks[80] is None and risks[666] is None  # unknown port; a broken entry
    assert risks[3306] is None  # shielded ports are not rated
    assert (8080, "tcp", None) in kb.calls  # unexpected ports are rated too
    assert c.risk_source == "audit knowledge base" and "no-risk-source" not in c.notes
    # the riskiest exposure first within its class
    exposed = [e.port for e in c.of(Exposure.EXPOSED)]
    assert exposed[:2] == [23, 21]
    text = render_comparison_text(c)
    assert "危険度" in text and "high" in text and "fix-ja" in text


def test_default_risk_source_degrades_without_the_audit_module() -> None:
    import importlib.util

    src = default_risk_source()
    if importlib.util.find_spec("portscope.checks") is None:
        assert src is None
    c = compare(inventory(S("tcp", "0.0.0.0", 22)), run(host(A4, {22: PortState.OPEN})),
                risk=None)
    assert c.risk_source is None and c.entries[0].risk is None
    assert "RISK" not in render_comparison_text(c).splitlines()[3]


def test_json_round_trip_and_rendering() -> None:
    proc = SocketProcess(pid=812, name="sshd\x1b[31m", user="root", fd=3,
                         cmdline=("/usr/sbin/sshd", "-D"))
    inv = inventory(replace(S("tcp", "0.0.0.0", 22, uid=0, inode=5), processes=(proc,)),
                    S("udp", "127.0.0.1", 53))
    c = compare(inv, run(host(A4, {22: PortState.OPEN})), risk=KBRiskSource(FakeKB()))
    doc = json.loads(json.dumps(c.to_dict()))
    assert Comparison.from_dict(doc) == c
    assert doc["counts"]["exposed"] == 1 and doc["counts"]["local-only"] == 1
    text = render_comparison_text(c)
    assert "\x1b" not in text and "sshd\\x1B[31m(812)" in text
    for lang in ("en", "ja"):
        render_comparison_text(c, lang)
        render_comparison_rich(c, lang)
    with pytest.raises(DataError):
        Comparison.from_dict({"kind": "something else"})


def test_every_class_and_code_has_text_in_both_languages() -> None:
    for lang in advice.LANGS:
        for x in Exposure:
            t = advice.class_text(x, lang)
            assert t.label and t.meaning and t.advice
    assert set(advice.WHY["en"]) == set(advice.WHY["ja"])
    assert set(advice.HINTS["en"]) == set(advice.HINTS["ja"])
    assert set(advice.NOTES["en"]) == set(advice.NOTES["ja"])
    with pytest.raises(UsageError):
        advice.class_text(Exposure.EXPOSED, "fr")
