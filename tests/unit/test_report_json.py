"""The ``json`` format: the result contract with hosts collapsed, and lossless."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from portscope.model import (
    Host,
    HostStatus,
    PortResult,
    PortState,
    Protocol,
    ScanRun,
    Service,
    Stats,
    collapse_host,
    expand_host,
)
from portscope.report import render
from portscope.report.jsondoc import JSONOutput

DATA = Path(__file__).resolve().parent.parent / "data" / "report"
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def sample_run() -> ScanRun:
    run = ScanRun.from_dict(json.loads((DATA / "sample_run.json").read_text("utf-8")))
    return run.with_hosts(expand_host(h) for h in run.hosts)


def read_back(text: str) -> ScanRun:
    run = ScanRun.from_dict(json.loads(text))
    return run.with_hosts(expand_host(h) for h in run.hosts)


def test_document_is_the_contract_with_collapsed_hosts() -> None:
    run = sample_run()
    doc = json.loads(render("json", run))
    expected = replace(run, hosts=tuple(collapse_host(h) for h in run.hosts)).to_dict()
    assert doc == json.loads(json.dumps(expected))
    assert doc["schema_version"] == 1
    gw = doc["hosts"][0]
    assert [p["port"] for p in gw["ports"]] == [22, 23, 25, 80, 443, 53, 161]
    assert gw["extraports"] == [{"state": "closed", "count": 1019, "reasons": [
        {"reason": "reset", "count": 1019, "protocol": "tcp",
         "ports": "1-21,24,26-79,81-442,444-1024"}]}]


def test_round_trip_of_the_sample_is_exact() -> None:
    run = sample_run()
    assert read_back(render("json", run)) == run


def test_interrupted_run_round_trips() -> None:
    run = replace(sample_run(), complete=False, finished=None)
    back = read_back(render("json", run))
    assert back.complete is False
    assert back == run


def test_lone_surrogates_are_escaped_and_survive() -> None:
    svc = Service(name="x", banner="bad \udcff byte \ud800", method="banner")
    run = ScanRun(id="s", started=T0, hosts=(Host(
        address="192.0.2.1", status=HostStatus.UP,
        ports=(PortResult(1, Protocol.TCP, PortState.OPEN, "syn-ack", service=svc),)),))
    text = render("json", run)
    text.encode("utf-8")  # encodable: no raw surrogate in the output
    assert "\\udcff" in text
    assert read_back(text) == run


def test_non_finite_numbers_become_null_and_the_document_stays_valid() -> None:
    host = Host(address="192.0.2.1", status=HostStatus.UP, rtt_ms=float("nan"),
                extra={"x": float("inf"), "when": T0, "raw": b"\xff", "set": {2, 1}})
    run = ScanRun(id="n", started=T0, hosts=(host,),
                  stats=Stats(duration_s=float("inf"), pps=float("nan")))
    text = render("json", run)
    doc = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert doc["hosts"][0]["rtt_ms"] is None
    assert doc["hosts"][0]["extra"] == {"x": None, "when": "2026-03-01T12:00:00+00:00",
                                        "raw": "\xff", "set": [1, 2]}
    assert doc["stats"]["duration_s"] is None


def test_unicode_is_written_as_is_and_line_separators_escaped() -> None:
    run = replace(sample_run(), command="scan 日本\u2028x\x85y")
    text = render("json", run)
    assert "日本" in text
    assert "\u2028" not in text and "\x85" not in text
    assert json.loads(text)["run"]["command"] == "scan 日本\u2028x\x85y"


def test_ascii_only_on_a_stream_that_cannot_take_unicode() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    out = JSONOutput(stream)
    assert out.unicode_ok is False
    run = sample_run()
    out.finish(run)
    stream.flush()
    text = raw.getvalue().decode("ascii")
    assert read_back(text) == run


def test_only_finish_writes() -> None:
    buf = io.StringIO()
    out = JSONOutput(buf)
    run = sample_run()
    out.start(run)
    out.port("192.0.2.10", run.hosts[0].ports[0])
    out.host(run.hosts[0])
    assert buf.getvalue() == ""
    out.finish(run)
    assert out.finished
    assert json.loads(buf.getvalue())["run"]["id"] == "run-0001"
