"""The ``normal`` format: nmap-like text."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import UTC, datetime

from portscope import __version__
from portscope.model import (
    ExtraPorts,
    ExtraReason,
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
)
from portscope.report import render
from portscope.report.normal import NormalOutput, align

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
TCP, UDP = Protocol.TCP, Protocol.UDP


def run_of(*hosts: Host, **kw: object) -> ScanRun:
    base = ScanRun(id="n", started=T0, finished=T0, command="portscope scan x", hosts=hosts,
                   stats=Stats(duration_s=1.789))
    return replace(base, **kw)  # type: ignore[arg-type]


def up(*ports: PortResult, **kw: object) -> Host:
    return Host(address="192.0.2.9", status=HostStatus.UP, reason="syn-ack", ports=ports,
                **kw)  # type: ignore[arg-type]


def test_nmap_layout() -> None:
    ssh = Service(name="ssh", product="OpenSSH", version="9.6", extrainfo="protocol 2.0",
                  method="probe", confidence=10)
    closed = [PortResult(n, TCP, PortState.CLOSED, "conn-refused") for n in range(1, 101)
              if n not in (22, 80)]
    host = up(PortResult(80, TCP, PortState.OPEN, "syn-ack", service=Service(name="http")),
              PortResult(22, TCP, PortState.OPEN, "syn-ack", service=ssh), *closed,
              hostnames=("box.example",), rtt_ms=0.12)
    text = render("normal", run_of(host))
    assert text == (
        f"# portscope {__version__} scan initiated Sun Mar  1 12:00:00 2026 UTC as: "
        "portscope scan x\n"
        f"portscope {__version__} scan report for 192.0.2.9 (box.example)\n"
        "Host is up, received syn-ack (0.00012s latency).\n"
        "Not shown: 98 closed tcp ports (conn-refused)\n"
        "PORT   STATE SERVICE REASON  VERSION\n"
        "22/tcp open  ssh     syn-ack OpenSSH 9.6 (protocol 2.0)\n"
        "80/tcp open  http    syn-ack\n"
        "\n"
        "portscope done: 1 IP address (1 host up) scanned in 1.79 seconds\n"
    )


def test_table_guess_never_shows_product_or_version() -> None:
    guess = Service(name="telnet", product="BusyBox", version="1.0", extrainfo="x",
                    method="port-table")
    text = render("normal", run_of(up(PortResult(23, TCP, PortState.OPEN, "syn-ack",
                                                 service=guess))))
    assert "23/tcp open  telnet  syn-ack\n" in text
    assert "BusyBox" not in text and "VERSION" not in text


def test_ports_sorted_by_protocol_then_number_and_columns_aligned() -> None:
    ports = (PortResult(161, UDP, PortState.OPEN_FILTERED, "no-response"),
             PortResult(8080, TCP, PortState.FILTERED, "no-response"),
             PortResult(53, UDP, PortState.OPEN, "udp-response", ttl=64),
             PortResult(7, TCP, PortState.CLOSED, "reset", ttl=64))
    lines = render("normal", run_of(up(*ports))).splitlines()
    table = lines[lines.index("PORT     STATE         SERVICE REASON") :][:5]
    assert table == [
        "PORT     STATE         SERVICE REASON",
        "7/tcp    closed        unknown reset ttl 64",
        "8080/tcp filtered      unknown no-response",
        "53/udp   open          unknown udp-response ttl 64",
        "161/udp  open|filtered unknown no-response",
    ]


def test_not_shown_lists_every_group_and_reason() -> None:
    host = up(PortResult(443, TCP, PortState.OPEN, "syn-ack"), extraports=(
        ExtraPorts(PortState.FILTERED, 997, (
            ExtraReason("no-response", 990, TCP, "1-990"),
            ExtraReason("admin-prohibited", 7, TCP, "991-997"))),
        ExtraPorts(PortState.CLOSED, 1, (ExtraReason("reset", 1, TCP, "998"),)),
    ))
    text = render("normal", run_of(host))
    assert ("Not shown: 990 filtered tcp ports (no-response), 7 filtered tcp ports "
            "(admin-prohibited), 1 closed tcp port (reset)\n") in text


def test_all_ports_ignored() -> None:
    closed = tuple(PortResult(n, TCP, PortState.CLOSED, "reset") for n in range(1, 1001))
    text = render("normal", run_of(up(*closed)))
    assert ("All 1000 scanned ports on 192.0.2.9 are in ignored states.\n"
            "Not shown: 1000 closed tcp ports (reset)\n") in text
    assert "PORT" not in text


def test_down_and_unknown_hosts_and_plurals() -> None:
    down = Host(address="192.0.2.1", status=HostStatus.DOWN, reason="no-response")
    unknown = Host(address="192.0.2.2")
    text = render("normal", run_of(down, unknown, stats=Stats(hosts_total=256, duration_s=3)))
    assert "scan report for 192.0.2.1 [host down, received no-response]\n" in text
    assert "scan report for 192.0.2.2\nHost status is unknown.\n" in text
    assert text.endswith("portscope done: 256 IP addresses (0 hosts up) scanned in 3.00 seconds\n")


def test_os_mac_other_names() -> None:
    host = up(mac="02:00:00:00:00:01", hostnames=("a.example", "b.example"),
              os=OSGuess(name="Linux 6.1", accuracy=100, cpe=("cpe:/o:linux:linux_kernel:6.1",)))
    text = render("normal", run_of(host))
    assert "Other names: b.example\n" in text
    assert "MAC Address: 02:00:00:00:00:01\nOS details: Linux 6.1\n" in text
    assert "OS CPE: cpe:/o:linux:linux_kernel:6.1\n" in text


def test_findings_summary_worst_first() -> None:
    findings = (
        Finding(id="1", check="info-x", severity=Severity.INFO, severity_reason="i",
                title="FYI"),
        Finding(id="2", check="crit-y", severity=Severity.CRITICAL, severity_reason="why\nmore",
                title="Bad", port=3389, protocol=TCP, remediation="Close it."),
    )
    text = render("normal", run_of(up(findings=findings)))
    block = text[text.index("Findings:"):text.index("\n\nportscope done")]
    assert block == (
        "Findings: 1 critical, 1 info\n"
        "  CRITICAL 3389/tcp Bad [crit-y]\n"
        "                    why: why\n"
        "                         more\n"
        "                    fix: Close it.\n"
        "  INFO     -        FYI [info-x]\n"
        "                    why: i"
    )


def test_interrupted() -> None:
    text = render("normal", run_of(up(), complete=False))
    assert text.endswith("WARNING: the scan was interrupted; these results are incomplete.\n"
                         "portscope done: 1 IP address (1 host up) scanned in 1.79 seconds\n")


def test_no_control_characters_reach_the_text() -> None:
    evil = "x\x1b]0;pwned\x07\x1b[2J\r\u202eZ\x00"
    svc = Service(name=evil, product=evil, version=evil, method="banner")
    f = Finding(id="f", check=evil, severity=Severity.LOW, severity_reason=evil, title=evil,
                remediation=evil)
    host = up(PortResult(1, TCP, PortState.OPEN, evil, service=svc), hostnames=(evil,),
              findings=(f,), mac=evil, os=OSGuess(name=evil, accuracy=50))
    text = render("normal", run_of(host, command=evil))
    assert re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]", text) is None
    assert "x\\x1B]0;pwned\\x07\\x1B[2J\\x0D\\u202EZ\\x00" in text


def test_ascii_stream_gets_escapes_instead_of_an_error() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    out = NormalOutput(stream)
    out.finish(run_of(up(hostnames=("日本.example",))))
    stream.flush()
    assert b"scan report for 192.0.2.9 (\\u65e5\\u672c.example)" in raw.getvalue()


def test_align() -> None:
    assert align([["a", "bbb", "c"], ["dddd", "e", ""]]) == ["a    bbb c", "dddd e"]
    assert align([]) == []
