"""Helpers shared by the output formats."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from portscope.model import (
    ExtraPorts,
    ExtraReason,
    Host,
    HostStatus,
    PortResult,
    PortState,
    Protocol,
    ScanRun,
    Service,
    Stats,
    expand_host,
)
from portscope.report._common import (
    display_host,
    elapsed_s,
    finished_time,
    host_counts,
    json_dumps,
    latency_label,
    printable,
    printable_lines,
    reason_label,
    scanned_ports,
    service_label,
    version_label,
    xml_safe,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
TCP, UDP = Protocol.TCP, Protocol.UDP


@pytest.mark.parametrize(("text", "shown"), [
    ("plain 日本 ü", "plain 日本 ü"),
    ("a\r\nb\tc\x00", "a\\x0D\\x0Ab\\x09c\\x00"),
    ("\x1b[31mred\x1b[0m", "\\x1B[31mred\\x1B[0m"),
    ("del\x7f c1\x85\x9b", "del\\x7F c1\\x85\\x9B"),
    ("bidi \u202e \u2066 \u200f", "bidi \\u202E \\u2066 \\u200F"),
    ("line\u2028sep", "line\\u2028sep"),
    ("byte \udcff and \ud800", "byte \\xFF and \\uD800"),
    ("bom\ufeff nonchar\uffff", "bom\\uFEFF nonchar\\uFFFF"),
])
def test_printable(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_printable_lines() -> None:
    assert printable_lines("a\r\nb\rc\n\x1bd") == ["a", "b", "c", "\\x1Bd"]


def test_xml_safe_keeps_what_xml_allows() -> None:
    assert xml_safe("tab\tnl\ncr\r ok\x85\u202e 😀") == "tab\tnl\ncr\r ok\x85\u202e 😀"
    assert xml_safe("\x00\x08\x0b\x1f\ud800\udcfe\ufffe") == "\\x00\\x08\\x0B\\x1F\\uD800\\xFE" \
                                                            "\\uFFFE"


def test_json_dumps_is_strict_json() -> None:
    text = json_dumps({"nan": float("nan"), "s": "\udcff\u2028", "b": b"\x00\xff",
                       "nested": [{"inf": float("-inf")}]})
    text.encode("utf-8")
    back = json.loads(text)
    assert back == {"nan": None, "s": "\udcff\u2028", "b": "\x00\xff", "nested": [{"inf": None}]}
    assert "\u2028" not in text
    assert json_dumps({"k": "日本"}, ascii_only=True) == '{"k":"\\u65e5\\u672c"}'


def test_display_host_collapses_ttl_and_table_guesses_but_keeps_them_listed_elsewhere() -> None:
    closed = [PortResult(n, TCP, PortState.CLOSED, "reset", ttl=64,
                         service=Service(name=f"s{n}")) for n in range(1, 41)]
    detected = PortResult(41, TCP, PortState.CLOSED, "reset", ttl=64,
                          service=Service(name="x", product="y", method="probe"))
    opened = PortResult(80, TCP, PortState.OPEN, "syn-ack", ttl=64, service=Service(name="http"))
    host = Host(address="192.0.2.1", status=HostStatus.UP, ports=(opened, detected, *closed))
    shown = display_host(host)
    assert [p.port for p in shown.ports] == [41, 80]
    assert shown.ports[1] == opened  # listed ports keep their service and TTL
    assert shown.extraports == (ExtraPorts(PortState.CLOSED, 40, (
        ExtraReason("reset", 40, TCP, "1-40"),)),)
    # nothing is lost: expanding gives every port back (without the table guesses)
    assert {p.port for p in expand_host(shown).ports} == {p.port for p in host.ports}


def test_display_host_small_groups_stay_listed() -> None:
    ports = tuple(PortResult(n, TCP, PortState.FILTERED, "no-response") for n in range(1, 26))
    shown = display_host(Host(address="192.0.2.1", ports=ports))
    assert len(shown.ports) == 25
    assert shown.extraports == ()


@pytest.mark.parametrize(("spec", "expected"), [
    ("T:1-3,U:53", {TCP: [1, 2, 3], UDP: [53]}),
    ("22,80", {TCP: [22, 80], UDP: [22, 80]}),
    ("U:53,161,T:21-22", {UDP: [53, 161], TCP: [21, 22]}),
    ("T:-2,U:65534-", {TCP: [1, 2], UDP: [65534, 65535]}),
    ("S:1-3,T:9", {TCP: [9]}),
])
def test_scanned_ports_from_spec(spec: str, expected: dict[Protocol, list[int]]) -> None:
    assert scanned_ports(ScanRun(id="x", started=T0, ports_spec=spec)) == expected


def test_scanned_ports_from_results_when_no_spec() -> None:
    host = Host(address="192.0.2.1", ports=(PortResult(9, TCP, PortState.OPEN, "syn-ack"),),
                extraports=(ExtraPorts(PortState.CLOSED, 2, (
                    ExtraReason("reset", 2, TCP, "1-2"),)),))
    for spec in ("", "http,ssh", "T:70000"):
        run = ScanRun(id="x", started=T0, ports_spec=spec, hosts=(host,))
        assert scanned_ports(run) == {TCP: [1, 2, 9]}


def test_labels() -> None:
    assert service_label(None) == "unknown"
    assert service_label(Service(name="http", tunnel="ssl")) == "ssl/http"
    assert service_label(Service(name="")) == "unknown"
    assert version_label(Service(name="x", product="P", version="1")) == ""  # table guess
    assert version_label(Service(name="x", product="P", version="1", extrainfo="e",
                                 method="banner")) == "P 1 (e)"
    assert reason_label(PortResult(1, TCP, PortState.OPEN, "syn-ack", ttl=0)) == "syn-ack ttl 0"
    assert reason_label(PortResult(1, TCP, PortState.OPEN, "", ttl=5)) == ""
    assert latency_label(Host(address="192.0.2.1", rtt_ms=0.39)) == "0.00039s"
    assert latency_label(Host(address="192.0.2.1", rtt_ms=1500)) == "1.5s"
    assert latency_label(Host(address="192.0.2.1", rtt_ms=float("nan"))) == ""


def test_counts_and_times() -> None:
    up = Host(address="192.0.2.1", status=HostStatus.UP)
    down = Host(address="192.0.2.2", status=HostStatus.DOWN)
    assert host_counts(ScanRun(id="x", started=T0, hosts=(up, down))) == (2, 1)
    assert host_counts(ScanRun(id="x", started=T0, hosts=(up,),
                               stats=Stats(hosts_total=256, hosts_up=3))) == (256, 3)
    assert host_counts(ScanRun(id="x", started=T0)) == (0, 0)
    run = ScanRun(id="x", started=T0, finished=T0 + timedelta(seconds=4))
    assert elapsed_s(run) == 4.0
    assert elapsed_s(ScanRun(id="x", started=T0, stats=Stats(duration_s=2.5))) == 2.5
    assert finished_time(ScanRun(id="x", started=T0, stats=Stats(duration_s=2.5))) == \
        T0 + timedelta(seconds=2.5)
