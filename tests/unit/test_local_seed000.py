"""Seed 000: ``netstat -a -n`` on a Windows 2000 server lists 11 listening TCP ports, the
port scanner (spp, ports 0-1000) sees 6. The article blames netstat (it shows sockets at
the TDI level, even closed ones). The comparison reproduces the situation and says what
can and cannot be concluded from it."""

from __future__ import annotations

from datetime import UTC, datetime

from portscope.local.compare import compare
from portscope.local.listing import parse_listing
from portscope.local.render import render_comparison_text
from portscope.model import Exposure, Host, HostStatus, PortResult, PortState, Protocol, ScanRun

# verbatim from the seed
NETSTAT = r"""
C:\>netstat -a -n

Active Connections

  Proto  Local Address          Foreign Address        State
  TCP    0.0.0.0:21             0.0.0.0:0              LISTENING
  TCP    0.0.0.0:80             0.0.0.0:0              LISTENING
  TCP    0.0.0.0:135            0.0.0.0:0              LISTENING
  TCP    0.0.0.0:443            0.0.0.0:0              LISTENING
  TCP    0.0.0.0:445            0.0.0.0:0              LISTENING
  TCP    0.0.0.0:1025           0.0.0.0:0              LISTENING
  TCP    0.0.0.0:1026           0.0.0.0:0              LISTENING
  TCP    0.0.0.0:1027           0.0.0.0:0              LISTENING
  TCP    0.0.0.0:1029           0.0.0.0:0              LISTENING
  TCP    0.0.0.0:3372           0.0.0.0:0              LISTENING
  TCP    192.168.0.3:139        0.0.0.0:0              LISTENING
  UDP    0.0.0.0:135            *:*
  UDP    0.0.0.0:445            *:*
  UDP    0.0.0.0:1028           *:*
  UDP    0.0.0.0:3456           *:*
  UDP    192.168.0.3:137        *:*
  UDP    192.168.0.3:138        *:*
  UDP    192.168.0.3:500        *:*
"""
SPP_OPEN = {21, 80, 139, 135, 443, 445}  # "spp artemis": ports 0 to 1000, TCP only
HOST = "192.168.0.3"  # data only: nothing is sent anywhere
ABOVE_1000 = {1025, 1026, 1027, 1029, 3372}


def spp_run(scanned: range, beyond: PortState = PortState.CLOSED) -> ScanRun:
    ports = []
    for p in scanned:
        if p in SPP_OPEN:
            ports.append(PortResult(p, Protocol.TCP, PortState.OPEN, "syn-ack"))
        elif p in ABOVE_1000:
            ports.append(PortResult(p, Protocol.TCP, beyond,
                                    "reset" if beyond is PortState.CLOSED else "no-response"))
        else:
            ports.append(PortResult(p, Protocol.TCP, PortState.CLOSED, "reset"))
    return ScanRun(id="spp", started=datetime(2002, 6, 29, tzinfo=UTC),
                   ports_spec=f"T:{scanned.start}-{scanned.stop - 1}", vantage="spp",
                   hosts=(Host(HOST, HostStatus.UP, ports=tuple(ports)),))


def inventory():  # type: ignore[no-untyped-def]
    return parse_listing(NETSTAT, hostname="artemis", taken=datetime(2002, 6, 29, tzinfo=UTC))


def test_netstat_lists_eleven_tcp_ports_the_scanner_sees_six() -> None:
    inv = inventory()
    assert len(inv.ports("tcp")) == 11 and len(inv.ports("udp")) == 7
    run = spp_run(range(0, 1001))
    seen = {p.port for _, p in run.iter_ports() if p.state is PortState.OPEN}
    assert seen == SPP_OPEN


def test_the_difference_is_the_scan_scope_not_netstat() -> None:
    """All six ports the scanner saw are exposed; the other five listening TCP ports lie
    above 1000, outside what spp scanned, and UDP was not scanned at all: nothing says
    they are closed. (The specific bind 192.168.0.3:139 makes the scanned address one of
    the host's own, so matching is exact.)"""
    c = compare(inventory(), spp_run(range(0, 1001)))
    assert c.addresses == (HOST,) and not c.translated
    assert {e.port for e in c.of(Exposure.EXPOSED)} == SPP_OPEN
    unscanned_tcp = {e.port for e in c.of(Exposure.NOT_SCANNED) if e.protocol is Protocol.TCP}
    assert unscanned_tcp == ABOVE_1000
    assert {e.why for e in c.of(Exposure.NOT_SCANNED) if e.protocol is Protocol.TCP} == {
        "port-not-scanned"}
    udp = c.of(Exposure.NOT_SCANNED)
    assert {e.port for e in udp if e.protocol is Protocol.UDP} == {135, 137, 138, 445, 500,
                                                                    1028, 3456}
    assert not c.of(Exposure.CLOSED_BUT_LISTED, Exposure.UNEXPECTED, Exposure.SHIELDED)
    text = render_comparison_text(c)
    assert "this port was outside the scanned ports" in text
    assert "a port nobody scanned is not a closed port" in text
    assert "スキャン範囲外" in render_comparison_text(c, "ja")


def test_the_articles_explanation_shows_as_closed_but_listed_with_a_full_scan() -> None:
    """Scanning every port settles it: if the five answer with RST, netstat listed sockets
    that do not accept (closed-but-listed, the article's explanation); if they are
    filtered, a firewall hides them (shielded)."""
    c = compare(inventory(), spp_run(range(1, 65536)))
    assert {e.port for e in c.of(Exposure.CLOSED_BUT_LISTED)} == ABOVE_1000
    assert {e.port for e in c.of(Exposure.EXPOSED)} == SPP_OPEN
    c = compare(inventory(), spp_run(range(1, 65536), beyond=PortState.FILTERED))
    assert {e.port for e in c.of(Exposure.SHIELDED)} == ABOVE_1000
