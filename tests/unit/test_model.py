"""The result model: round trips, validation of untrusted documents, collapse/expand."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portscope.errors import DataError
from portscope.model import (
    SCHEMA_VERSION,
    Finding,
    Host,
    HostStatus,
    OSGuess,
    PortResult,
    PortState,
    Protocol,
    ScanRun,
    Service,
    Severity,
    Stats,
    collapse_host,
    expand_host,
    format_port_list,
    iter_port_list,
)

T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def sample_run() -> ScanRun:
    svc = Service(name="ssh", product="OpenSSH", version="9.2p1",
                  cpe=("cpe:2.3:a:openbsd:openssh:9.2p1:*:*:*:*:*:*:*",),
                  banner="SSH-2.0-OpenSSH_9.2p1 Debian-2", method="banner", confidence=10,
                  extra={"kex": ["curve25519-sha256"]})
    f = Finding(id="f1", check="cleartext-login", severity=Severity.HIGH,
                severity_reason="passwords cross the network in clear text", title="Telnet",
                port=23, protocol=Protocol.TCP, references=("CISA BOD 23-02",))
    host = Host(address="198.18.0.2", status=HostStatus.UP, reason="syn-ack",
                hostnames=("lab.test",),
                ports=(PortResult(22, Protocol.TCP, PortState.OPEN, "syn-ack", 64, svc),
                       PortResult(23, Protocol.TCP, PortState.OPEN, "syn-ack"),
                       PortResult(53, Protocol.UDP, PortState.OPEN_FILTERED, "no-response")),
                os=OSGuess(name="Linux 5.x-6.x", accuracy=92, family="Linux"),
                findings=(f,), rtt_ms=0.12)
    return ScanRun(id="r1", started=T0, finished=T0, command="portscope scan 198.18.0.2",
                   scan_types=("connect",), ports_spec="T:22-23,U:53", targets=("198.18.0.2",),
                   hosts=(host,), stats=Stats(probes_sent=3, replies=2, duration_s=0.5))


def test_round_trip_through_json() -> None:
    run = sample_run()
    doc = json.loads(json.dumps(run.to_dict()))
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["hosts"][0]["ports"][0]["state"] == "open"
    assert ScanRun.from_dict(doc) == run


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.pop("run"), "not a portscope result"),
    (lambda d: d.__setitem__("schema_version", 99), "upgrade portscope"),
    (lambda d: d["hosts"][0]["ports"][0].__setitem__("port", 70000), "out of range"),
    (lambda d: d["hosts"][0]["ports"][0].__setitem__("state", "ajar"), "not one of"),
    (lambda d: d["hosts"][0].__setitem__("address", "not-an-ip"), "not an IP address"),
    (lambda d: d["hosts"][0].__setitem__("ports", {"x": 1}), "expected a list"),
    (lambda d: d["run"].__setitem__("started", "yesterday"), "ISO 8601"),
    (lambda d: d["hosts"][0]["findings"][0].__setitem__("severity", "apocalyptic"), "not one of"),
])
def test_corrupt_documents_raise_data_error(mutate: object, message: str) -> None:
    doc = json.loads(json.dumps(sample_run().to_dict()))
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(DataError, match=message):
        ScanRun.from_dict(doc)


def test_not_an_object() -> None:
    with pytest.raises(DataError):
        ScanRun.from_dict([1, 2])  # type: ignore[arg-type]


@given(st.sets(st.integers(min_value=0, max_value=2000)))
@settings(max_examples=80, deadline=None)
def test_port_list_round_trip(ports: set[int]) -> None:
    assert sorted(iter_port_list(format_port_list(ports))) == sorted(ports)


def test_port_list_format() -> None:
    assert format_port_list([5, 1, 2, 3, 7, 8]) == "1-3,5,7-8"
    assert format_port_list([]) == ""


def test_collapse_keeps_everything() -> None:
    ports = [PortResult(p, Protocol.TCP, PortState.CLOSED, "conn-refused") for p in range(1, 1001)]
    ports[79] = PortResult(80, Protocol.TCP, PortState.OPEN, "syn-ack")
    ports += [PortResult(p, Protocol.TCP, PortState.FILTERED, "no-response")
              for p in range(2000, 2030)]
    ports += [PortResult(3000, Protocol.TCP, PortState.FILTERED, "admin-prohibited")]
    host = Host(address="198.18.0.2", status=HostStatus.UP, ports=tuple(ports))
    small = collapse_host(host)
    assert [p.port for p in small.ports] == [80]
    states = {e.state: e for e in small.extraports}
    assert states[PortState.CLOSED].count == 999
    assert states[PortState.FILTERED].count == 31
    reasons = {r.reason: r for r in states[PortState.FILTERED].reasons}
    assert reasons["admin-prohibited"].ports == "3000"
    assert reasons["no-response"].ports == "2000-2029"
    back = expand_host(small)
    assert sorted(back.ports, key=lambda p: p.port) == sorted(ports, key=lambda p: p.port)
    # and through JSON
    run = ScanRun(id="x", started=T0, hosts=(small,))
    again = ScanRun.from_dict(json.loads(json.dumps(run.to_dict())))
    assert expand_host(again.hosts[0]).ports == back.ports


def test_small_groups_are_listed() -> None:
    ports = tuple(PortResult(p, Protocol.TCP, PortState.CLOSED, "conn-refused")
                  for p in range(1, 11))
    host = Host(address="198.18.0.2", ports=ports)
    assert collapse_host(host).ports == ports and not collapse_host(host).extraports


def test_severity_order() -> None:
    assert Severity.CRITICAL.rank > Severity.HIGH.rank > Severity.MEDIUM.rank > \
        Severity.LOW.rank > Severity.INFO.rank


def test_service_detected_flag() -> None:
    assert not Service(name="http").detected
    assert Service(name="http", method="probe", confidence=10).detected
