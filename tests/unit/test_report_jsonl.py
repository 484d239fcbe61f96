"""The ``jsonl`` format: streamed events, crash-safe, and its reader."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from portscope.errors import DataError
from portscope.model import (
    Finding,
    Host,
    HostStatus,
    PortResult,
    PortState,
    Protocol,
    ScanRun,
    Severity,
    Stats,
    expand_host,
)
from portscope.report import read_jsonl, render
from portscope.report.jsonl import JSONLinesOutput

DATA = Path(__file__).resolve().parent.parent / "data" / "report"
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def sample_run() -> ScanRun:
    run = ScanRun.from_dict(json.loads((DATA / "sample_run.json").read_text("utf-8")))
    return run.with_hosts(expand_host(h) for h in run.hosts)


class FlushCounter(io.StringIO):
    """A stream that records what had been flushed at each flush."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[str] = []

    def flush(self) -> None:
        super().flush()
        self.flushed.append(self.getvalue())


def port(n: int, state: PortState = PortState.OPEN, reason: str = "syn-ack") -> PortResult:
    return PortResult(n, Protocol.TCP, state, reason)


def header() -> ScanRun:
    return ScanRun(id="live", started=T0, command="portscope scan 192.0.2.0/30",
                   scan_types=("syn",), ports_spec="T:1-100")


def test_events_in_order_and_schema() -> None:
    lines = render("jsonl", sample_run()).splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["type"] for e in events] == ["run", "host", "host", "host", "end"]
    assert events[0]["schema_version"] == 1
    assert events[0]["run"]["id"] == "run-0001"
    assert events[1]["address"] == "192.0.2.10"
    assert events[1]["extraports"][0]["count"] == 1019  # collapsed like json
    assert events[-1] == {"type": "end", "complete": True, "finished": "2026-01-15T09:30:12.345Z",
                          "stats": sample_run().stats.to_dict()}


def test_every_event_is_flushed_as_one_whole_line() -> None:
    stream = FlushCounter()
    out = JSONLinesOutput(stream)
    out.start(header())
    out.port("192.0.2.1", port(22))
    out.port("192.0.2.1", port(23, PortState.CLOSED, "reset"))
    host = Host(address="192.0.2.1", status=HostStatus.UP, reason="syn-ack",
                ports=(port(22), port(23, PortState.CLOSED, "reset")))
    out.host(host)
    out.finish(replace(header(), hosts=(host,), finished=T0, stats=Stats(hosts_total=4)))
    assert len(stream.flushed) >= 5
    for snapshot in stream.flushed:
        assert snapshot.endswith("\n")
        for line in snapshot.splitlines():
            json.loads(line)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["type"] for e in events] == ["run", "port", "port", "host", "end"]
    assert events[1] == {"type": "port", "address": "192.0.2.1", "port": 22, "protocol": "tcp",
                         "state": "open", "reason": "syn-ack", "ttl": None, "service": None}


def test_finish_rewrites_hosts_that_changed_or_were_never_streamed() -> None:
    stream = io.StringIO()
    out = JSONLinesOutput(stream)
    out.start(header())
    a = Host(address="192.0.2.1", status=HostStatus.UP, ports=(port(22),))
    b = Host(address="192.0.2.2", status=HostStatus.UP, ports=(port(80),))
    out.host(a)
    out.host(b)
    finding = Finding(id="f", check="c", severity=Severity.LOW, severity_reason="r",
                      title="t", port=22, protocol=Protocol.TCP)
    a2 = replace(a, findings=(finding,))  # the audit added a finding after the scan
    c = Host(address="192.0.2.3", status=HostStatus.DOWN)
    final = replace(header(), hosts=(a2, b, c), finished=T0)
    out.finish(final)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    hosts = [(e["address"], len(e["findings"])) for e in events if e["type"] == "host"]
    assert hosts == [("192.0.2.1", 0), ("192.0.2.2", 0), ("192.0.2.1", 1), ("192.0.2.3", 0)]
    assert read_jsonl(stream.getvalue().splitlines()) == final


def test_reader_round_trip_of_the_sample() -> None:
    run = sample_run()
    assert read_jsonl(io.StringIO(render("jsonl", run))) == run


def test_reader_on_a_stream_cut_short() -> None:
    stream = io.StringIO()
    out = JSONLinesOutput(stream)
    out.start(header())
    out.port("192.0.2.1", port(22))
    out.port("192.0.2.1", port(80, PortState.CLOSED, "reset"))
    out.port("192.0.2.2", port(22, PortState.FILTERED, "no-response"))
    out.host(Host(address="192.0.2.3", status=HostStatus.UP, ports=(port(443),)))
    out.port("192.0.2.3", port(8443))  # after its host line
    text = stream.getvalue()
    cut = text + '{"type":"port","address":"192.0.2.1","po'  # killed mid-line
    run = read_jsonl(cut.splitlines())
    assert run.complete is False
    assert run.finished is None
    assert [h.address for h in run.hosts] == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    one, two, three = run.hosts
    assert one.status is HostStatus.UP  # a port answered
    assert [(p.port, p.state) for p in one.ports] == [(22, PortState.OPEN), (80, PortState.CLOSED)]
    assert two.status is HostStatus.UNKNOWN  # nothing answered
    assert [p.port for p in three.ports] == [443, 8443]


def test_reader_every_prefix_is_readable() -> None:
    text = render("jsonl", sample_run())
    for cut in range(text.index("\n") + 1, len(text), 97):
        run = read_jsonl(text[:cut].splitlines())
        assert run.complete is False
        assert run.id == "run-0001"


def test_reader_ignores_unknown_events_and_blank_lines() -> None:
    lines = render("jsonl", sample_run()).splitlines()
    lines.insert(1, '{"type": "progress", "percent": 50}')
    lines.insert(2, "   ")
    assert read_jsonl(lines) == sample_run()


@pytest.mark.parametrize(("lines", "message"), [
    ([], "no run header"),
    (['{"type": "port", "address": "192.0.2.1", "port": 1}'], "no run header"),
    (["not json", '{"type": "run", "run": {"id": "x"}}'], "line 1: not valid JSON"),
    (['{"type": "run", "schema_version": 1, "run": {"id": "x"}}', "[1, 2]"],
     "line 2: expected a JSON object"),
    (['{"type": "run", "schema_version": 1, "run": {"id": "x"}}', "{oops",
      '{"type": "end", "complete": true}'], "line 2: not valid JSON"),
    (['{"type": "run", "schema_version": 1, "run": {"id": "x"}}'] * 2, "second run header"),
    (['{"type": "run", "schema_version": 99, "run": {"id": "x"}}'], "upgrade portscope"),
    (['{"type": "run", "schema_version": 1, "run": {"id": "x"}}',
      '{"type": "port", "address": "nowhere", "port": 1, "protocol": "tcp", "state": "open"}'],
     "not an IP address"),
])
def test_reader_errors(lines: list[str], message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_jsonl(lines)


def test_reader_ignores_a_truncated_last_line_only() -> None:
    good = ['{"type": "run", "schema_version": 1, "run": {"id": "x"}}', '{"type": "end", "comp']
    run = read_jsonl(good)
    assert run.id == "x"
    assert run.complete is False


def test_header_is_written_by_finish_when_start_was_not_called() -> None:
    stream = io.StringIO()
    out = JSONLinesOutput(stream)
    out.finish(replace(header(), complete=False))
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["type"] for e in events] == ["run", "end"]
    assert events[-1]["complete"] is False
