"""Reading saved scans: portscope JSON and nmap XML, including hostile XML."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from portscope.errors import DataError
from portscope.local.scanfile import parse_scan
from portscope.model import Host, HostStatus, PortResult, PortState, Protocol, ScanRun, Service
from portscope.report import render

NMAP = (Path(__file__).parents[1] / "data" / "local" / "nmap_sample.xml").read_text()


def test_nmap_xml() -> None:
    run = parse_scan(NMAP, "scan.xml")
    assert run.ports_spec == "T:1-1000" and run.scan_types == ("S",) and run.complete
    assert run.started == datetime.fromtimestamp(1700000000, UTC)
    h = run.host("198.18.0.2")
    assert h is not None and h.status is HostStatus.UP and h.hostnames == ("web1.lab",)
    ssh = h.port(22)
    assert ssh is not None and ssh.ttl == 64 and ssh.service is not None
    assert ssh.service.detected and ssh.service.product == "OpenSSH"
    http = h.port(80)
    assert http is not None and http.state is PortState.FILTERED
    assert http.service is not None and not http.service.detected
    assert [p.port for p in h.ports] == [22, 80]  # sctp is not compared
    assert h.extraports[0].state is PortState.CLOSED and h.extraports[0].count == 997
    down = run.host("198.18.0.9")
    assert down is not None and down.status is HostStatus.DOWN


def test_portscope_xml_and_json_round_trip() -> None:
    run = ScanRun(id="r", started=datetime(2026, 1, 1, tzinfo=UTC), ports_spec="T:1-100,U:53",
                  scan_types=("T", "U"), hosts=(Host("2001:db8::2", HostStatus.UP, ports=(
                      PortResult(22, Protocol.TCP, PortState.OPEN, "syn-ack",
                                 service=Service("ssh")),
                      PortResult(53, Protocol.UDP, PortState.OPEN_FILTERED, "no-response"))),))
    from_json = parse_scan(json.dumps(run.to_dict()))
    assert from_json.hosts == run.hosts
    from_xml = parse_scan(render("xml", run))
    h = from_xml.hosts[0]
    assert (h.address, [(p.port, p.protocol, p.state) for p in h.ports]) == (
        "2001:db8::2", [(22, Protocol.TCP, PortState.OPEN),
                        (53, Protocol.UDP, PortState.OPEN_FILTERED)])


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>
<nmaprun>&lol2;</nmaprun>"""
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE nmaprun [<!ENTITY x SYSTEM "file:///etc/passwd">]><nmaprun>&x;</nmaprun>"""


@pytest.mark.parametrize(("text", "msg"), [
    (BOMB, "not well-formed XML"),
    (EXTERNAL, "not well-formed XML"),
    ("<nmaprun><host>", "not well-formed XML"),
    ("<html></html>", "not nmap XML"),
    ("{\"a\": 1}", "not a portscope result"),
    ("{broken", "not valid JSON"),
    ("hello", "neither"),
    ('<nmaprun><host><address addr="x" addrtype="ipv4"/></host></nmaprun>',
     "not an IP address"),
    ('<nmaprun><host><address addr="198.18.0.2" addrtype="ipv4"/><ports><port protocol="tcp" '
     'portid="1"><state state="weird"/></port></ports></host></nmaprun>', "unknown port state"),
])
def test_bad_files_are_data_errors(text: str, msg: str) -> None:
    with pytest.raises(DataError, match=msg):
        parse_scan(text, "f")
