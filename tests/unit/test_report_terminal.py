"""The Rich terminal view."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

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
    Stats,
    expand_host,
)
from portscope.report.terminal import render_terminal

DATA = Path(__file__).resolve().parent.parent / "data" / "report"
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
TCP = Protocol.TCP


def sample_run() -> ScanRun:
    run = ScanRun.from_dict(json.loads((DATA / "sample_run.json").read_text("utf-8")))
    return run.with_hosts(expand_host(h) for h in run.hosts)


def console() -> Console:
    return Console(record=True, width=100, color_system="truecolor", force_terminal=True)


def printed(run: ScanRun) -> tuple[str, str]:
    """(plain text, text with ANSI styles)"""
    c = console()
    c.print(render_terminal(run))
    styled = c.export_text(styles=True, clear=False)
    return c.export_text(), styled


def one_host_run(*ports: PortResult, **kw: object) -> ScanRun:
    host = Host(address="192.0.2.9", status=HostStatus.UP, reason="syn-ack", ports=ports,
                **kw)  # type: ignore[arg-type]
    return ScanRun(id="t", started=T0, finished=T0, hosts=(host,), stats=Stats(duration_s=2))


def test_same_table_as_the_normal_format() -> None:
    text, _ = printed(sample_run())
    lines = [line.rstrip() for line in text.splitlines()]
    assert "PORT    STATE         SERVICE  REASON              VERSION" in lines
    assert "80/tcp  open          http     syn-ack ttl 64      nginx 1.24.0" in lines
    assert "23/tcp  open          telnet   syn-ack ttl 64" in lines  # table guess: no version
    assert "Not shown: 1020 closed tcp ports (reset)" in lines
    tail = " ".join(text[text.rindex("portscope done:"):].split())  # the summary may wrap
    assert tail == ("portscope done: 3 IP addresses (2 hosts up) scanned in 12.35 seconds; "
                    "findings: 1 high, 1 medium, 1 low, 1 info")


def test_states_are_coloured() -> None:
    run = one_host_run(PortResult(1, TCP, PortState.OPEN, "syn-ack"),
                       PortResult(2, TCP, PortState.CLOSED, "reset"),
                       PortResult(3, TCP, PortState.FILTERED, "no-response"))
    _, styled = printed(run)
    assert "\x1b[32mopen" in styled  # green
    assert "\x1b[2mclosed" in styled  # dim
    assert "\x1b[33mfiltered" in styled  # yellow


def test_severity_colours_and_summary() -> None:
    f = Finding(id="f", check="c", severity=Severity.CRITICAL, severity_reason="r", title="T",
                port=1, protocol=TCP)
    run = one_host_run(PortResult(1, TCP, PortState.OPEN, "syn-ack"), findings=(f,))
    text, styled = printed(replace(run, complete=False))
    assert "CRITICAL" in text
    tail = " ".join(text[text.rindex("portscope done:"):].split())  # the summary may wrap
    assert tail == ("portscope done: 1 IP address (1 host up) scanned in 2.00 seconds; "
                    "findings: 1 critical (interrupted: results are incomplete)")
    assert "\x1b[1;97;41mCRITICAL" in styled or "\x1b[1;37;41mCRITICAL" in styled


def test_markup_and_escape_sequences_from_the_network_are_inert() -> None:
    svc = Service(name="[red]x[/red]", product="\x1b]0;pwned\x07[bold]P[/bold]",
                  method="banner")
    run = one_host_run(PortResult(1, TCP, PortState.OPEN, "syn-ack", service=svc),
                       hostnames=("\x1b[2Jevil",))
    text, styled = printed(run)
    assert "[red]x[/red]" in text
    assert "\\x1B]0;pwned\\x07[bold]P[/bold]" in text
    assert "(\\x1B[2Jevil)" in text
    assert "\x1b]0;" not in styled and "\x1b[2J" not in styled and "\x07" not in styled


def test_empty_run_has_just_the_summary() -> None:
    text, _ = printed(ScanRun(id="e", started=T0))
    assert text == "portscope done: 0 IP addresses (0 hosts up) scanned in 0.00 seconds\n"
