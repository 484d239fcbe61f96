"""Property tests over arbitrary runs: JSON and JSON Lines are lossless, JSON Lines is
readable when cut anywhere, XML is well-formed and read back by nmap-XML parsers, and the
human formats never crash or let a control character through."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from portscope.model import (
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
    address_key,
    collapse_host,
    expand_host,
    iter_port_list,
)
from portscope.report import read_jsonl, render
from portscope.report._common import display_host, xml_safe
from portscope.report.jsonl import JSONLinesOutput
from portscope.report.terminal import render_terminal
from portscope.testing.nmap import parse_nmap_xml

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# any text, including control characters, lone surrogates and non-characters
any_text = st.text(st.characters(exclude_categories=()), max_size=12)
short = st.text(st.characters(exclude_categories=()), max_size=4)
reasons = st.sampled_from(["syn-ack", "reset", "conn-refused", "no-response", "port-unreach",
                           "udp-response", ""]) | any_text


@st.composite
def times(draw: st.DrawFn) -> datetime:
    t = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
    return t.replace(microsecond=t.microsecond // 1000 * 1000, tzinfo=UTC)  # ms precision


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(short, inner, max_size=3),
    max_leaves=6,
)
json_objects = st.dictionaries(short, json_values, max_size=3)

services = st.builds(
    Service,
    name=any_text, product=st.none() | any_text, version=st.none() | any_text,
    extrainfo=st.none() | any_text, cpe=st.lists(any_text, max_size=2).map(tuple),
    banner=st.none() | any_text, tls=st.none() | json_objects, extra=json_objects,
    method=st.sampled_from(["port-table", "banner", "probe"]),
    confidence=st.integers(0, 10), tunnel=st.none() | st.just("ssl"),
)


@st.composite
def port_lists(draw: st.DrawFn) -> tuple[PortResult, ...]:
    ports: dict[tuple[Protocol, int], PortResult] = {}
    if draw(st.booleans()):  # a big uniform group, so that collapsing happens
        proto = draw(st.sampled_from(Protocol))
        state = draw(st.sampled_from([PortState.CLOSED, PortState.FILTERED]))
        reason = draw(reasons)
        start = draw(st.integers(0, 65000))
        for n in range(start, start + draw(st.integers(20, 60))):
            ports[(proto, n)] = PortResult(n, proto, state, reason)
    for _ in range(draw(st.integers(0, 8))):
        proto = draw(st.sampled_from(Protocol))
        n = draw(st.integers(0, 65535))
        ports[(proto, n)] = PortResult(
            n, proto, draw(st.sampled_from(PortState)), draw(reasons),
            ttl=draw(st.none() | st.integers(0, 255)), service=draw(st.none() | services))
    return tuple(sorted(ports.values(), key=lambda p: (p.protocol.value, p.port)))


@st.composite
def findings(draw: st.DrawFn, ports: tuple[PortResult, ...]) -> Finding:
    on_port = draw(st.none() | st.sampled_from(ports)) if ports else None
    port = on_port.port if on_port is not None else draw(st.none() | st.integers(0, 65535))
    proto = on_port.protocol if on_port is not None else draw(st.none() | st.sampled_from(Protocol))
    return Finding(
        id=draw(any_text), check=draw(any_text), severity=draw(st.sampled_from(Severity)),
        severity_reason=draw(any_text), title=draw(any_text), port=port, protocol=proto,
        risk=draw(any_text), evidence=draw(any_text), remediation=draw(any_text),
        references=tuple(draw(st.lists(any_text, max_size=2))),
        confidence=draw(st.integers(0, 100)), extra=draw(json_objects))


@st.composite
def hosts(draw: st.DrawFn, address: str) -> Host:
    ports = draw(port_lists())
    return Host(
        address=address, status=draw(st.sampled_from(HostStatus)), reason=draw(reasons),
        hostnames=tuple(draw(st.lists(any_text, max_size=2))), ports=ports,
        os=draw(st.none() | st.builds(OSGuess, name=any_text, accuracy=st.integers(0, 100),
                                      family=st.none() | any_text, vendor=st.none() | any_text,
                                      cpe=st.lists(any_text, max_size=2).map(tuple),
                                      evidence=json_objects)),
        findings=tuple(draw(st.lists(findings(ports), max_size=3))),
        mac=draw(st.none() | any_text),
        rtt_ms=draw(st.none() | st.floats(0, 1e6, allow_nan=False)),
        extra=draw(json_objects),
    )


@st.composite
def runs(draw: st.DrawFn) -> ScanRun:
    addresses = draw(st.lists(st.ip_addresses().map(str), unique=True, max_size=3))
    addresses.sort(key=address_key)
    return ScanRun(
        # (an empty id trips ScanRun.from_dict: reported to the model's owner)
        id=draw(any_text.filter(bool)), started=draw(times()), finished=draw(st.none() | times()),
        command=draw(any_text), scan_types=tuple(draw(st.lists(any_text, max_size=2))),
        ports_spec=draw(st.just("") | st.just("T:1-100,U:53") | any_text),
        targets=tuple(draw(st.lists(any_text, max_size=2))), vantage=draw(any_text),
        complete=draw(st.booleans()), hosts=tuple(draw(hosts(a)) for a in addresses),
        stats=Stats(probes_sent=draw(st.integers(0, 10**9)), replies=draw(st.integers(0, 10**9)),
                    retransmissions=draw(st.integers(0, 10**6)),
                    duration_s=draw(st.integers(0, 10**9)) / 1000,
                    pps=draw(st.integers(0, 10**7)) / 10,
                    hosts_total=draw(st.integers(0, 1000)), hosts_up=draw(st.integers(0, 1000))),
        extra=draw(json_objects),
    )


# --------------------------------------------------------------------------------------


def without_collapsed_ttls(run: ScanRun) -> ScanRun:
    """*run* as it reads back: ports summarised in extraports keep state, reason and
    number, but not their reply TTL."""
    def fix(h: Host) -> Host:
        small = collapse_host(h)
        summarised = {(r.protocol, n) for e in small.extraports for r in e.reasons
                      for n in iter_port_list(r.ports)}
        return replace(h, ports=tuple(replace(p, ttl=None) if (p.protocol, p.port) in summarised
                                      else p for p in h.ports))
    return replace(run, hosts=tuple(fix(h) for h in run.hosts))


@SETTINGS
@given(runs())
def test_json_round_trip(run: ScanRun) -> None:
    text = render("json", run)
    text.encode("utf-8")
    back = ScanRun.from_dict(json.loads(text))
    assert back.with_hosts(expand_host(h) for h in back.hosts) == without_collapsed_ttls(run)


@SETTINGS
@given(runs())
def test_jsonl_round_trip(run: ScanRun) -> None:
    text = render("jsonl", run)
    text.encode("utf-8")
    lines = text.split("\n")
    assert lines[-1] == ""
    assert all(json.loads(line)["type"] for line in lines[:-1])
    # also with str.splitlines' many separators
    assert read_jsonl(text.splitlines()) == without_collapsed_ttls(run)


@SETTINGS
@given(runs(), st.data())
def test_jsonl_stream_cut_anywhere_is_readable(run: ScanRun, data: st.DataObject) -> None:
    stream = io.StringIO()
    out = JSONLinesOutput(stream)
    out.start(run)
    for h in run.hosts:
        for p in h.ports[:5]:
            out.port(h.address, p)
        out.host(h)
    full_length = len(stream.getvalue())
    out.finish(run)
    text = stream.getvalue()
    cut = data.draw(st.integers(text.index("\n") + 1, len(text)), label="cut")
    partial = read_jsonl(io.StringIO(text[:cut]))
    assert partial.id == run.id
    if cut < len(text) - 1:  # (only the final newline missing: the end line is whole)
        assert partial.complete is False
    if cut >= full_length:  # every host line was written
        assert {h.address for h in partial.hosts} == {h.address for h in run.hosts}
    if cut == len(text):
        assert partial == run


def _state_map(host: Host) -> dict[tuple[int, str], tuple[str, str]]:
    return {(p.port, p.protocol.value): (p.state.value, xml_safe(p.reason))
            for p in expand_host(display_host(host)).ports}


@SETTINGS
@given(runs())
def test_xml_is_well_formed_and_loses_no_port(run: ScanRun) -> None:
    text = render("xml", run)
    root = ET.fromstring(text.encode("utf-8"))
    assert len(root.findall("host")) == len(run.hosts)
    assert root.get("args") == xml_safe(run.command or "portscope")
    parsed = parse_nmap_xml(text)
    assert [h.address for h in parsed] == [h.address for h in run.hosts]
    for original, back in zip(run.hosts, parsed, strict=True):
        assert back.status == original.status.value
        got = {(p.port, p.protocol): (p.state, p.reason) for p in back.ports}
        assert got == _state_map(original)


@settings(SETTINGS, max_examples=15)
@given(runs())
def test_xml_is_read_by_python_libnmap(run: ScanRun) -> None:
    parser = pytest.importorskip("libnmap.parser")
    report = parser.NmapParser.parse_fromstring(render("xml", run))
    assert [h.address for h in report.hosts] == [h.address for h in run.hosts]


_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


@SETTINGS
@given(runs())
def test_normal_text_never_carries_control_characters(run: ScanRun) -> None:
    text = render("normal", run)
    assert _CONTROL.search(text) is None
    assert text.endswith(" seconds\n")


@SETTINGS
@given(runs())
def test_terminal_view_never_carries_control_characters(run: ScanRun) -> None:
    console = Console(record=True, width=100, color_system=None, force_terminal=False,
                      file=io.StringIO())
    console.print(render_terminal(run))
    assert _CONTROL.search(console.export_text()) is None


@SETTINGS
@given(runs(), st.booleans())
def test_streamed_documents_equal_the_whole_ones(run: ScanRun, ascii_only: bool) -> None:
    """JSON, XML and normal text are written one host at a time; the bytes are exactly
    those of the document rendered as one string."""
    from portscope.report._common import json_dumps
    from portscope.report.jsondoc import JSONOutput, collapsed_document
    from portscope.report.nmapxml import XMLOutput, render_xml
    from portscope.report.normal import NormalOutput, render_normal

    whole = json_dumps(collapsed_document(run), ascii_only=ascii_only, indent=2) + "\n"
    for cls, expect in ((JSONOutput, whole), (XMLOutput, render_xml(run)),
                        (NormalOutput, render_normal(run))):
        buf = io.StringIO()
        out = cls(buf)
        out.unicode_ok = not ascii_only
        out.finish(run)
        got = buf.getvalue()
        if cls is JSONOutput or not ascii_only:
            assert got == expect
        else:
            assert got.isascii()
