"""Importers: nmap XML (defusedxml), masscan JSON/NDJSON/list, portscope's own files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from portscope.errors import DataError
from portscope.importers import IMPORTERS, detect, load_file, parse_bytes
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
)
from portscope.report import render

DATA = Path(__file__).parent.parent / "data"
T0 = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)


def test_nmap_xml_from_nmap() -> None:
    run, fmt = load_file(str(DATA / "nmap-connect.xml"))
    assert fmt == "xml"
    assert run.ports_spec == "T:1-100,443"
    assert run.scan_types == ("connect",)
    assert run.complete and run.targets == ("198.18.0.2",)
    (host,) = run.hosts
    assert host.status is HostStatus.UP and host.reason == "user-set"
    assert len(host.ports) == 101  # extraports expanded from <extrareasons ports=...>
    assert {p.port for p in host.open_ports} == {22, 80, 443}
    assert host.port(25).state is PortState.FILTERED  # type: ignore[union-attr]
    closed = host.port(23)
    assert closed is not None and closed.state is PortState.CLOSED
    assert closed.reason == "conn-refused"
    assert run.id.startswith("nmap-") and run.id == load_file(str(DATA / "nmap-connect.xml"))[0].id


def _run() -> ScanRun:
    tls = {"sha256": "ab" * 32, "not_after": "2026-01-01T00:00:00Z", "subject_cn": "lab"}
    ports = (
        PortResult(22, Protocol.TCP, PortState.OPEN, "syn-ack", ttl=64,
                   service=Service("ssh", "OpenSSH", "9.2p1", banner="SSH-2.0-OpenSSH_9.2p1",
                                   method="banner", confidence=8, cpe=("cpe:/a:openbsd:openssh",))),
        PortResult(443, Protocol.TCP, PortState.OPEN, "syn-ack",
                   service=Service("https", method="probe", confidence=9, tls=tls,
                                   tunnel="ssl")),
        PortResult(53, Protocol.UDP, PortState.OPEN_FILTERED, "no-response"),
        *(PortResult(n, Protocol.TCP, PortState.CLOSED, "conn-refused") for n in range(1, 21)),
    )
    finding = Finding("telnet:23", "cleartext-login", Severity.HIGH, "cleartext", "Telnet",
                      port=22, protocol=Protocol.TCP, risk="sniffing", evidence="banner",
                      remediation="use ssh", references=("https://example.org/x",),
                      confidence=90)
    host = Host("198.18.0.2", HostStatus.UP, "syn-ack", hostnames=("lab.example",),
                ports=ports, findings=(finding,))
    return ScanRun(id="r1", started=T0, finished=T0, command="portscope scan 198.18.0.2",
                   scan_types=("connect", "udp"), ports_spec="T:1-30,443,U:53",
                   targets=("198.18.0.2",), hosts=(host,))


def test_portscope_xml_round_trip_keeps_ports_banners_findings() -> None:
    run = _run()
    back, fmt = parse_bytes(render("xml", run).encode())
    assert fmt == "xml"
    h0, h1 = run.hosts[0], back.hosts[0]
    assert {(p.key, p.state, p.reason) for p in h0.ports} == \
        {(p.key, p.state, p.reason) for p in h1.ports}
    ssh = h1.port(22)
    assert ssh is not None and ssh.service is not None
    assert (ssh.service.product, ssh.service.version, ssh.service.banner) == \
        ("OpenSSH", "9.2p1", "SSH-2.0-OpenSSH_9.2p1")
    assert ssh.service.cpe == ("cpe:/a:openbsd:openssh",)
    assert h1.findings == h0.findings
    assert back.ports_spec == "T:1-30,443,U:53"
    assert h1.hostnames == ("lab.example",)


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_portscope_json_formats(fmt: str) -> None:
    run = _run()
    back, name = parse_bytes(render(fmt, run).encode())
    assert name == fmt
    assert sorted(back.hosts[0].ports, key=lambda p: p.key) == \
        sorted(run.hosts[0].ports, key=lambda p: p.key)
    assert back.hosts[0].findings == run.hosts[0].findings


def test_masscan_json_with_trailing_comma_and_banner() -> None:
    run, fmt = load_file(str(DATA / "masscan.json"))
    assert fmt == "masscan-json"
    assert run.ports_spec == ""  # masscan files do not say what was scanned
    (host,) = run.hosts
    assert [p.port for p in host.open_ports] == [22, 80]
    http = host.port(80)
    assert http is not None and http.service is not None
    assert http.service.name == "http" and "Server: lab" in (http.service.banner or "")
    assert host.port(22).ttl == 64  # type: ignore[union-attr]


def test_masscan_list_and_ndjson() -> None:
    lst, fmt = load_file(str(DATA / "masscan.list"))
    assert fmt == "masscan-list"
    assert [p.port for p in lst.hosts[0].open_ports] == [22, 80, 443]
    assert lst.hosts[0].port(22).service.banner == "SSH-2.0-OpenSSH_9.2p1"  # type: ignore[union-attr]
    nd, fmt = load_file(str(DATA / "masscan.ndjson"))
    assert fmt == "masscan-json"
    assert [p.port for p in nd.hosts[0].open_ports] == [22, 443]


def test_masscan_interrupted_json() -> None:
    text = (DATA / "masscan.json").read_text()
    cut = text[:text.index('"service"')]  # killed while writing the third record
    run, _ = parse_bytes(cut.encode())
    assert [p.port for p in run.hosts[0].open_ports] == [22, 80]
    whole_records = text[:text.rindex("}") + 1]  # no closing "]"
    run, _ = parse_bytes(whole_records.encode())
    assert run.hosts[0].port(80).service is not None  # type: ignore[union-attr]


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE nmaprun [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>
<nmaprun scanner="nmap" args="&b;"></nmaprun>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE nmaprun [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<nmaprun scanner="nmap" args="&x;"></nmaprun>"""


@pytest.mark.parametrize("data", [
    BILLION_LAUGHS, EXTERNAL,
    b"<?xml version='1.0'?><nmaprun><host><address addr='198.18.0.2' addrtype='ipv4'/>",
    b"<?xml version='1.0'?><other/>",
    b"<nmaprun><host><address addr='198.18.0.2' addrtype='ipv4'/><ports><port protocol='tcp'"
    b" portid='99999'><state state='open' reason='x'/></port></ports></host></nmaprun>",
    b"<nmaprun><host><address addr='198.18.0.2' addrtype='ipv4'/><ports><port protocol='tcp'"
    b" portid='22'><state state='ajar' reason='x'/></port></ports></host></nmaprun>",
    b"<nmaprun><host><address addr='not-an-ip' addrtype='ipv4'/></host></nmaprun>",
    b'[{"ip": "198.18.0.2", "ports": [{"port": "x"}]}]',
    b'[{"ip": "198.18.0.2", "ports": 5}]',
    b"#masscan\nopen tcp 22\n",
    b"#masscan\nopen tcp 22 198.18.0.999 1\n",
    b'{"schema_version": 1, "run": {"id": "x"}, "hosts": [{"address": 7}]}',
    b'{"type": "run", "run": {"id": "x"}}\n{"type": "port", "address": "198.18.0.2"}\n{}\n',
    b"\x00\x01binary garbage",
    b"hello world",
])
def test_corrupt_inputs_are_data_errors(data: bytes) -> None:
    with pytest.raises(DataError):
        parse_bytes(data)


def test_load_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<?xml version='1.0'?><nmaprun><host>")
    with pytest.raises(DataError, match=r"bad\.xml"):
        load_file(str(bad))
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load_file(str(empty))


def test_every_importer_sniffs_its_own_sample() -> None:
    samples = {"xml": DATA / "nmap-connect.xml", "masscan-json": DATA / "masscan.json",
               "masscan-list": DATA / "masscan.list"}
    for name, path in samples.items():
        assert detect(path.read_bytes()).name == name
    assert detect(render("json", _run()).encode()).name == "json"
    assert detect(render("jsonl", _run()).encode()).name == "jsonl"
    assert set(IMPORTERS) == {"xml", "masscan-json", "masscan-list", "json", "jsonl"}
    json.loads(render("json", _run()))
