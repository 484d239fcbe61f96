"""The nmap-compatible XML output: structure, DTD, escaping, and the real consumers
(nmap's ndiff, python-libnmap, portscope.testing.nmap)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from portscope.model import (
    ExtraPorts,
    ExtraReason,
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
from portscope.report import render
from portscope.report.nmapxml import scaninfo
from portscope.testing.nmap import parse_nmap_xml

DATA = Path(__file__).resolve().parent.parent / "data" / "report"
NMAP_DTD = Path("/usr/share/nmap/nmap.dtd")
NDIFF = shutil.which("ndiff")

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def sample_run() -> ScanRun:
    run = ScanRun.from_dict(json.loads((DATA / "sample_run.json").read_text("utf-8")))
    return run.with_hosts(expand_host(h) for h in run.hosts)


def small_run(*ports: PortResult, findings: tuple[Finding, ...] = (), **host_kw: object
              ) -> ScanRun:
    host = Host(address="192.0.2.1", status=HostStatus.UP, reason="syn-ack", ports=ports,
                findings=findings, **host_kw)  # type: ignore[arg-type]
    return ScanRun(id="r1", started=T0, finished=T0, command="portscope scan 192.0.2.1",
                   scan_types=("connect",), ports_spec="T:1-100", hosts=(host,),
                   stats=Stats(duration_s=0.5, hosts_total=1, hosts_up=1))


def open_port(port: int, **kw: object) -> PortResult:
    return PortResult(port, Protocol.TCP, PortState.OPEN, "syn-ack", **kw)  # type: ignore[arg-type]


def finding(check: str, port: int | None = None, severity: Severity = Severity.HIGH,
            **kw: object) -> Finding:
    kw.setdefault("title", f"{check} found")
    return Finding(id=f"{check}:{port}", check=check, severity=severity,
                   severity_reason="because", port=port,
                   protocol=Protocol.TCP if port is not None else None,
                   **kw)  # type: ignore[arg-type]


def parse(text: str) -> ET.Element:
    return ET.fromstring(text.encode("utf-8"))


# --------------------------------------------------------------------------------------
# structure


def test_nmap_skeleton_and_order() -> None:
    root = parse(render("xml", sample_run()))
    assert root.tag == "nmaprun"
    assert root.get("scanner") == "portscope"
    assert root.get("xmloutputversion") == "1.05"
    assert root.get("start") == str(int(datetime(2026, 1, 15, 9, 30, tzinfo=UTC).timestamp()))
    assert [c.tag for c in root][:4] == ["scaninfo", "scaninfo", "verbose", "debugging"]
    assert [c.tag for c in root][-1] == "runstats"
    info = [(s.get("type"), s.get("protocol"), s.get("numservices"), s.get("services"))
            for s in root.iter("scaninfo")]
    assert info == [("syn", "tcp", "1024", "1-1024"), ("udp", "udp", "2", "53,161")]
    host = root.find("host")
    assert host is not None
    assert [c.tag for c in host] == ["status", "address", "address", "hostnames", "ports", "os",
                                     "hostscript"]


def test_extraports_keep_exact_port_lists_and_ports_are_sorted() -> None:
    root = parse(render("xml", sample_run()))
    host = root.findall("host")[0]
    extra = host.find("ports/extraports")
    assert extra is not None
    assert (extra.get("state"), extra.get("count")) == ("closed", "1020")
    reasons = extra.find("extrareasons")
    assert reasons is not None
    assert reasons.attrib == {"reason": "reset", "count": "1020", "proto": "tcp",
                              "ports": "1-21,24-79,81-442,444-1024"}
    ports = [(p.get("protocol"), p.get("portid")) for p in host.iter("port")]
    assert ports == [("tcp", "22"), ("tcp", "23"), ("tcp", "80"), ("tcp", "443"),
                     ("udp", "53"), ("udp", "161")]


def test_port_table_guess_is_method_table_without_version() -> None:
    svc = Service(name="telnet", product="should not show", version="1.0", method="port-table")
    root = parse(render("xml", small_run(open_port(23, service=svc))))
    el = root.find("host/ports/port/service")
    assert el is not None
    assert el.attrib == {"name": "telnet", "method": "table", "conf": "3"}


def test_detected_service_attributes() -> None:
    svc = Service(name="http", product="nginx", version="1.24.0", extrainfo="Ubuntu",
                  cpe=("cpe:/a:nginx:nginx:1.24.0",), method="probe", confidence=10,
                  tunnel="ssl", extra={"ostype": "Linux"})
    root = parse(render("xml", small_run(open_port(443, ttl=63, service=svc))))
    port = root.find("host/ports/port")
    assert port is not None
    state = port.find("state")
    assert state is not None
    assert state.attrib == {"state": "open", "reason": "syn-ack", "reason_ttl": "63"}
    el = port.find("service")
    assert el is not None
    assert el.attrib == {"name": "http", "product": "nginx", "version": "1.24.0",
                         "extrainfo": "Ubuntu", "ostype": "Linux", "tunnel": "ssl",
                         "method": "probed", "conf": "10"}
    assert [c.text for c in el.findall("cpe")] == ["cpe:/a:nginx:nginx:1.24.0"]


def test_one_script_per_port_and_per_hostscript() -> None:
    svc = Service(name="ssh", product="OpenSSH", banner="SSH-2.0-x\r\n", method="banner")
    run = small_run(open_port(22, service=svc),
                    findings=(finding("a", 22, Severity.LOW), finding("b", 22),
                              finding("c"), finding("d", 99)))
    root = parse(render("xml", run))
    scripts = root.findall("host/ports/port/script")
    assert len(scripts) == 1
    script = scripts[0]
    assert script.get("id") == "portscope"
    output = script.get("output") or ""
    assert output.startswith("\n  banner: SSH-2.0-x\\x0D\\x0A\n  HIGH: b found [b]")
    assert output.index("HIGH: b found") < output.index("LOW: a found")
    banner = script.find("elem[@key='banner']")
    assert banner is not None
    assert banner.text == "SSH-2.0-x\\x0D\\x0A"
    tables = script.findall("table[@key='findings']/table")
    assert [t.findtext("elem[@key='check']") for t in tables] == ["b", "a"]
    assert tables[0].findtext("elem[@key='severity']") == "high"
    assert tables[0].findtext("elem[@key='port']") == "22"
    # host-level findings and findings on ports that are not listed: one hostscript
    host_scripts = root.findall("host/hostscript/script")
    assert len(host_scripts) == 1
    checks = [t.findtext("elem[@key='check']")
              for t in host_scripts[0].findall("table[@key='findings']/table")]
    assert checks == ["c", "d"]
    assert "HIGH: d found [d] on 99/tcp" in (host_scripts[0].get("output") or "")


def test_finding_structured_fields() -> None:
    f = finding("weak", 22, references=("https://a.example/1", "https://a.example/2"),
                risk="r1\nr2", extra={"algos": ["a", "b"], "n": 2, "ok": True})
    root = parse(render("xml", small_run(open_port(22), findings=(f,))))
    table = root.find("host/ports/port/script/table[@key='findings']/table")
    assert table is not None
    assert table.findtext("elem[@key='risk']") == "r1\nr2"
    assert [e.text for e in table.findall("table[@key='references']/elem")] == [
        "https://a.example/1", "https://a.example/2"]
    assert [e.text for e in table.findall("table[@key='extra']/table[@key='algos']/elem")] == [
        "a", "b"]
    assert table.findtext("table[@key='extra']/elem[@key='ok']") == "true"
    assert table.find("elem[@key='evidence']") is None  # empty fields are left out


def test_no_port_service_is_no_service_element() -> None:
    root = parse(render("xml", small_run(open_port(7))))
    port = root.find("host/ports/port")
    assert port is not None
    assert [c.tag for c in port] == ["state"]


def test_duplicate_extraports_states_are_merged() -> None:
    # ndiff rejects two <extraports> with the same state
    host = Host(address="192.0.2.1", status=HostStatus.UP, extraports=(
        ExtraPorts(PortState.CLOSED, 3, (ExtraReason("reset", 3, Protocol.TCP, "1-3"),)),
        ExtraPorts(PortState.CLOSED, 2, (ExtraReason("reset", 2, Protocol.TCP, "7-8"),
                                         )),
    ))
    run = replace(small_run(), hosts=(host,))
    groups = parse(render("xml", run)).findall("host/ports/extraports")
    assert len(groups) == 1
    assert groups[0].get("count") == "5"
    reason = groups[0].find("extrareasons")
    assert reason is not None
    assert (reason.get("count"), reason.get("ports")) == ("5", "1-3,7-8")


def test_down_host_and_counts() -> None:
    run = sample_run()
    root = parse(render("xml", run))
    down = root.findall("host")[1]
    status = down.find("status")
    assert status is not None
    assert status.attrib == {"state": "down", "reason": "no-response", "reason_ttl": "0"}
    assert down.find("ports") is None
    hosts = root.find("runstats/hosts")
    assert hosts is not None
    assert hosts.attrib == {"up": "2", "down": "1", "total": "3"}
    v6 = root.findall("host")[2].find("address")
    assert v6 is not None
    assert v6.attrib == {"addr": "2001:db8::5", "addrtype": "ipv6"}


def test_interrupted_run_is_still_a_whole_document() -> None:
    run = replace(sample_run(), complete=False, finished=None)
    root = parse(render("xml", run))
    fin = root.find("runstats/finished")
    assert fin is not None
    assert fin.get("exit") == "error"
    assert fin.get("errormsg") == "scan interrupted: results are incomplete"
    assert fin.get("elapsed") == "12.35"


def test_empty_run() -> None:
    run = ScanRun(id="empty", started=T0)
    root = parse(render("xml", run))
    assert root.find("host") is None
    hosts = root.find("runstats/hosts")
    assert hosts is not None
    assert hosts.attrib == {"up": "0", "down": "0", "total": "0"}
    assert root.find("scaninfo") is None


@pytest.mark.parametrize(("types", "expected"), [
    (("syn", "udp"), [("syn", Protocol.TCP), ("udp", Protocol.UDP)]),
    (("tcp_connect", "-sS", "sS", "ping", "-sn"),
     [("connect", Protocol.TCP), ("syn", Protocol.TCP)]),
    (("-sN", "-sU", "UDP"), [("null", Protocol.TCP), ("udp", Protocol.UDP)]),
    (("XMAS", "fin", "null", "ack", "window", "maimon"),
     [("xmas", Protocol.TCP), ("fin", Protocol.TCP), ("null", Protocol.TCP),
      ("ack", Protocol.TCP), ("window", Protocol.TCP), ("maimon", Protocol.TCP)]),
])
def test_scaninfo_types(types: tuple[str, ...], expected: list[tuple[str, Protocol]]) -> None:
    assert scaninfo(ScanRun(id="x", started=T0, scan_types=types)) == expected


def test_scaninfo_services_fall_back_to_results_when_spec_unparsable() -> None:
    run = replace(small_run(open_port(22), open_port(80)), ports_spec="ssh,http")
    el = parse(render("xml", run)).find("scaninfo")
    assert el is not None
    assert (el.get("numservices"), el.get("services")) == ("2", "22,80")


# --------------------------------------------------------------------------------------
# escaping


NASTY = ('a\x00b\x01\x08\x0b\x0c\x1b[31m\x7f\x85 <&>"\' \t\r\n ]]> -- '
         '\ud800\udcff\ufffe\uffff 日本 😀')


def test_control_characters_and_markup_in_every_field_stay_well_formed() -> None:
    svc = Service(name=NASTY, product=NASTY, version=NASTY, extrainfo=NASTY, banner=NASTY,
                  cpe=(NASTY,), method="probe")
    f = Finding(id=NASTY, check=NASTY, severity=Severity.LOW, severity_reason=NASTY,
                title=NASTY, port=1, protocol=Protocol.TCP, risk=NASTY, evidence=NASTY,
                remediation=NASTY, references=(NASTY,), extra={NASTY: [NASTY, {NASTY: NASTY}]})
    host = Host(address="192.0.2.1", status=HostStatus.UP, reason=NASTY, hostnames=(NASTY,),
                ports=(PortResult(1, Protocol.TCP, PortState.OPEN, NASTY, service=svc),),
                findings=(f, replace(f, port=None)))
    run = ScanRun(id=NASTY, started=T0, command=NASTY + " --x", hosts=(host,))
    text = render("xml", run)
    root = parse(text)  # well-formed
    assert "\x1b" not in text and "\x00" not in text
    assert root.get("args") == "a\\x00b\\x01\\x08\\x0B\\x0C\\x1B[31m\x7f\x85 <&>\"' \t\r\n ]]> " \
                               "-- \\uD800\\xFF\\uFFFE\\uFFFF 日本 😀 --x"
    service = root.find("host/ports/port/service")
    assert service is not None
    # network text is shown nmap-style: every control character escaped
    assert service.get("product") == ("a\\x00b\\x01\\x08\\x0B\\x0C\\x1B[31m\\x7F\\x85 <&>\"' "
                                      "\\x09\\x0D\\x0A ]]> -- \\uD800\\xFF\\uFFFE\\uFFFF 日本 😀")
    # the comment cannot be ended early
    assert text.count("-->") == 1


@pytest.mark.skipif(not NMAP_DTD.exists(), reason="nmap's DTD is not installed")
def test_valid_against_nmaps_dtd() -> None:
    etree = pytest.importorskip("lxml.etree")
    # the one deliberate difference: scanner="portscope" (nmap's DTD only lists "nmap")
    dtd_text = NMAP_DTD.read_text()
    relaxed = dtd_text.replace("scanner\t\t(nmap)", "scanner\t\t(nmap|portscope)")
    assert relaxed != dtd_text
    dtd = etree.DTD(io.StringIO(relaxed))
    svc = Service(name="x", banner="\x1b\x00", method="banner", product=NASTY)
    nasty = small_run(open_port(1, service=svc), findings=(finding("n", 1, title=NASTY),))
    for run in (sample_run(), replace(sample_run(), complete=False), nasty,
                ScanRun(id="e", started=T0)):
        doc = etree.parse(io.BytesIO(render("xml", run).encode("utf-8")))
        assert dtd.validate(doc), dtd.error_log.filter_from_errors()


# --------------------------------------------------------------------------------------
# consumers


def test_project_nmap_parser_reads_every_port_back() -> None:
    run = sample_run()
    hosts = {h.address: h for h in parse_nmap_xml(render("xml", run))}
    for original in run.hosts:
        parsed = hosts[original.address]
        assert parsed.status == original.status.value
        expected = {(p.port, p.protocol.value): (p.state.value, p.reason) for p in original.ports}
        got = {(p.port, p.protocol): (p.state, p.reason) for p in parsed.ports}
        assert got == expected


def test_python_libnmap_parses_the_file(tmp_path: Path) -> None:
    parser = pytest.importorskip("libnmap.parser")
    path = tmp_path / "scan.xml"
    path.write_text(render("xml", sample_run()), encoding="utf-8")
    report = parser.NmapParser.parse_fromfile(str(path))
    assert (report.hosts_total, report.hosts_up, report.hosts_down) == (3, 2, 1)
    assert report.elapsed == 12.35
    gw = report.hosts[0]
    assert gw.address == "192.0.2.10"
    assert gw.hostnames == ["gw.example.net", "router.example.net"]
    assert [(s.port, s.protocol, s.state) for s in gw.services] == [
        (22, "tcp", "open"), (23, "tcp", "open"), (80, "tcp", "open"), (443, "tcp", "open"),
        (53, "udp", "open"), (161, "udp", "open|filtered")]
    ssh = gw.get_service(22)
    assert ssh.service == "ssh"
    assert ssh.banner.startswith("product: OpenSSH version: 8.9p1")
    assert ssh.scripts_results[0]["id"] == "portscope"
    assert ssh.scripts_results[0]["elements"]["findings"][None]["check"] == "ssh-password-auth"
    assert gw.os_match_probabilities()[0].name == "Linux 5.4 - 5.15"
    assert gw.extraports_state["state"]["count"] == "1020"
    assert report.hosts[2].address == "2001:db8::5"


def _ndiff(tmp_path: Path, a: str, b: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert NDIFF is not None
    (tmp_path / "a.xml").write_text(a, encoding="utf-8")
    (tmp_path / "b.xml").write_text(b, encoding="utf-8")
    return subprocess.run([NDIFF, *args, str(tmp_path / "a.xml"), str(tmp_path / "b.xml")],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.skipif(NDIFF is None, reason="nmap's ndiff is not installed")
def test_ndiff_identical_runs(tmp_path: Path) -> None:
    doc = render("xml", sample_run())
    result = _ndiff(tmp_path, doc, doc)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


@pytest.mark.skipif(NDIFF is None, reason="nmap's ndiff is not installed")
def test_ndiff_shows_the_one_port_that_changed(tmp_path: Path) -> None:
    run = sample_run()
    gw = run.hosts[0]
    changed = tuple(replace(p, state=PortState.FILTERED, reason="no-response", ttl=None)
                    if p.key == ("tcp", 23) else p for p in gw.ports)
    run_b = replace(run, hosts=(replace(gw, ports=changed), *run.hosts[1:]))
    result = _ndiff(tmp_path, render("xml", run), render("xml", run_b))
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert "gw.example.net" in lines[1]
    port_lines = [line for line in lines if line[:1] in "+-" and line[1:2].isdigit()]
    assert port_lines == ["-23/tcp open     telnet", "+23/tcp filtered telnet"]
    assert "2001:db8::5" not in result.stdout  # only the host that changed


@pytest.mark.skipif(NDIFF is None, reason="nmap's ndiff is not installed")
def test_ndiff_xml_mode_shows_a_changed_finding(tmp_path: Path) -> None:
    # (ndiff's *text* mode crashes when only a port's script output changes, also on
    # nmap's own NSE output: a bug of ndiff 7.93-7.95; its XML mode works)
    run = sample_run()
    gw = run.hosts[0]
    findings = tuple(replace(f, severity=Severity.CRITICAL) if f.port == 23 else f
                     for f in gw.findings)
    run_b = replace(run, hosts=(replace(gw, findings=findings), *run.hosts[1:]))
    result = _ndiff(tmp_path, render("xml", run), render("xml", run_b), "--xml")
    assert result.returncode == 1, result.stderr
    diff = ET.fromstring(result.stdout)
    port = diff.find(".//portdiff/port")
    assert port is not None
    assert port.get("portid") == "23"
    b_script = diff.find(".//portdiff/port/b/script")
    assert b_script is not None
    assert "CRITICAL: Telnet is open" in (b_script.get("output") or "")


@pytest.mark.skipif(NDIFF is None, reason="nmap's ndiff is not installed")
def test_ndiff_reads_interrupted_and_nasty_documents(tmp_path: Path) -> None:
    svc = Service(name="x", banner=NASTY, method="banner", product=NASTY)
    nasty = small_run(open_port(1, service=svc),
                      findings=(finding("n", 1), finding("m", 1), finding("h"), finding("g")))
    doc = render("xml", replace(nasty, complete=False))
    result = _ndiff(tmp_path, doc, doc)
    assert result.returncode == 0, result.stderr
