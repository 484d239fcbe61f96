"""The inside/outside comparison in the audit: which host an inventory describes (the
merge), the ``compare.unexpected`` finding, the report sections (HTML parsed, Markdown,
JSON, CSV, DefectDojo, SARIF) in English and Japanese, and ``portscope audit
--inventory`` on saved files."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_audit_reports import parse

from portscope.checks import run_checks
from portscope.checks.config import AuditConfig
from portscope.checks.kb import load_kb
from portscope.cli import main
from portscope.cli.audit import split_inventory_spec
from portscope.errors import UsageError
from portscope.local.advice import class_text
from portscope.local.compare import (
    COMPARISON_EXTRA,
    SourcedInventory,
    assign_inventories,
    host_comparison,
    merge_into_run,
)
from portscope.local.risk import KBRiskSource
from portscope.model import (
    Exposure,
    Host,
    HostStatus,
    Inventory,
    ListeningSocket,
    LocalAddress,
    PortResult,
    PortState,
    Protocol,
    ScanRun,
    SocketProcess,
)
from portscope.report import render
from portscope.report.audit_view import LABELS, audit_report

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
WEB, OTHER = "198.18.0.2", "198.18.0.3"
S = ListeningSocket.make
EXPECTED = {(22, "exposed"), (3306, "shielded"), (8888, "unexpected"), (5432, "local-only"),
            (8888, "local-only")}  # the forward's loopback twin is local-only itself


def inventory(hostname: str = "web1", addresses: tuple[str, ...] = (WEB, "127.0.0.1")
              ) -> Inventory:
    sshd = (SocketProcess(812, "sshd", "root"),)
    return Inventory(hostname=hostname, taken=T0, collector="test",
                     addresses=tuple(LocalAddress(a, "eth0") for a in addresses)
                     ).with_sockets([
                         S("tcp", "0.0.0.0", 22, processes=sshd, service="ssh"),
                         S("tcp", "0.0.0.0", 3306, service="mysql"),
                         S("tcp", "127.0.0.1", 5432, service="postgresql"),
                         S("tcp", "127.0.0.1", 8888)])  # the DNAT forward's loopback twin


def port(n: int, state: PortState = PortState.OPEN, reason: str = "syn-ack") -> PortResult:
    return PortResult(n, Protocol.TCP, state, reason)


def scan(*extra_hosts: Host) -> ScanRun:
    web = Host(WEB, HostStatus.UP, "syn-ack", ports=(
        port(22), port(3306, PortState.FILTERED, "no-response"), port(8888),
        port(5432, PortState.CLOSED, "reset")))
    return ScanRun(id="r1", started=T0, finished=T0, ports_spec="T:1-10000",
                   targets=(WEB,), vantage="scanner", hosts=(web, *extra_hosts))


def other_host() -> Host:
    return Host(OTHER, HostStatus.UP, "syn-ack", ports=(port(80),))


def audited(lang: str = "en", run: ScanRun | None = None,
            sources: list[SourcedInventory] | None = None) -> ScanRun:
    run = run or scan(other_host())
    srcs = sources if sources is not None else [SourcedInventory("--inventory web1.json",
                                                                 inventory())]
    if srcs:
        run = merge_into_run(run, srcs, risk=KBRiskSource(load_kb()), lang=lang)
    return run_checks(run, AuditConfig(lang=lang))


# ------------------------------------------------------------------------------------
# the merge


def test_inventory_applies_to_the_host_whose_address_it_lists() -> None:
    run = audited()
    web, other = run.host(WEB), run.host(OTHER)
    assert web is not None and other is not None
    assert COMPARISON_EXTRA not in other.extra
    c = host_comparison(web)
    assert c is not None and c.addresses == (WEB,) and not c.translated
    assert {(e.port, e.exposure.value) for e in c.entries} == EXPECTED
    assert run.extra["audit"]["comparisons"] == [
        {"address": WEB, "source": "--inventory web1.json", "hostname": "web1",
         "counts": c.counts()}]
    # exposed ports are rated by the audit's knowledge base
    (ssh,) = c.of(Exposure.EXPOSED)
    assert ssh.risk is not None and ssh.risk.severity.value in ("low", "medium")


def test_ambiguous_and_conflicting_assignments_are_usage_errors() -> None:
    stranger = inventory("nat-box", addresses=("203.0.113.9",))
    two = scan(other_host())
    with pytest.raises(UsageError, match=r"--inventory n.json: none of the 2 scanned .*ADDR=FILE"):
        assign_inventories(two, [SourcedInventory("--inventory n.json", stranger)])
    # one scanned host: taken to be the inventory's host behind NAT, as compare does ...
    one = scan()
    ((_, hosts),) = assign_inventories(one, [SourcedInventory("--inventory n.json", stranger)])
    assert [h.address for h in hosts] == [WEB]
    merged = merge_into_run(one, [SourcedInventory("--inventory n.json", stranger)])
    c = host_comparison(merged.hosts[0])
    assert c is not None and c.translated == (WEB,) and "translated" in c.notes
    # ... but not an inventory taken now (--local / --netns): that must be the target
    with pytest.raises(UsageError, match=r"--local \(this machine\): none of the 1 .*--address"):
        assign_inventories(one, [SourcedInventory("--local (this machine)", stranger,
                                                  exact=True)])
    # the user says which host it is
    ((_, hosts),) = assign_inventories(two, [SourcedInventory("x", stranger, (OTHER,))])
    assert [h.address for h in hosts] == [OTHER]
    with pytest.raises(UsageError, match=r"198.18.0.9 was not scanned"):
        assign_inventories(two, [SourcedInventory("x", stranger, ("198.18.0.9",))])
    with pytest.raises(UsageError, match="not an IP address"):
        assign_inventories(two, [SourcedInventory("x", stranger, ("web1",))])
    # two inventories for one host
    with pytest.raises(UsageError, match=r"claimed by both --inventory a.json and"):
        assign_inventories(two, [SourcedInventory("--inventory a.json", inventory()),
                                 SourcedInventory("--inventory b.json", stranger, (WEB,))])


def test_two_inventories_two_hosts() -> None:
    run = scan(other_host())
    db = Inventory(hostname="db1", taken=T0, addresses=(LocalAddress(OTHER),)
                   ).with_sockets([S("tcp", "0.0.0.0", 80)])
    merged = merge_into_run(run, [SourcedInventory("--inventory db1.json", db),
                                  SourcedInventory("--inventory web1.json", inventory())])
    web, other = (host_comparison(h) for h in merged.hosts)
    assert web is not None and web.hostname == "web1"
    assert other is not None and other.hostname == "db1"
    assert [e.exposure for e in other.entries] == [Exposure.EXPOSED]


def test_one_machine_scanned_at_two_addresses() -> None:
    """A socket bound to the IPv6 address is compared at the IPv6 host, not 'not scanned'
    at the IPv4 one; each host's section has its own address's ports."""
    a6 = "2001:db8::2"
    inv = Inventory(hostname="web1", taken=T0,
                    addresses=(LocalAddress(WEB), LocalAddress(a6))).with_sockets([
                        S("tcp", "0.0.0.0", 22), S("tcp", a6, 8443)])
    h4 = Host(WEB, HostStatus.UP, "syn-ack", ports=(port(22),))
    h6 = Host(a6, HostStatus.UP, "syn-ack", ports=(port(8443),))
    run = ScanRun(id="r", started=T0, ports_spec="T:1-10000", hosts=(h4, h6))
    merged = merge_into_run(run, [SourcedInventory("--local (this machine)", inv, exact=True)])
    c4, c6 = (host_comparison(h) for h in merged.hosts)
    assert c4 is not None and c6 is not None
    assert {(e.port, e.exposure.value) for e in c4.entries} == {(22, "exposed")}
    assert {(e.port, e.exposure.value) for e in c6.entries} == {(8443, "exposed")}
    assert merged.hosts[0].extra[COMPARISON_EXTRA]["also_compared"] == [a6]


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_namespace_inventory_is_named_in_the_report_language(lang: str) -> None:
    ns = replace(inventory("vm"), netns="web1-ns")
    run = audited(lang, scan(), [SourcedInventory("--netns web1-ns", ns, exact=True)])
    host = run.hosts[0]
    (f,) = [f for f in host.findings if f.check == "compare.unexpected"]
    assert "web1-ns" in f.extra["i18n"]["en"]["title"] and "vm (" not in f.title
    intro = audit_report(run)["hosts"][0]["comparison"]["intro"]
    want = {"en": "vm (network namespace web1-ns)", "ja": "vm（ネットワーク名前空間 web1-ns）"}
    assert want[lang] in intro and "--netns web1-ns" in intro
    assert host.extra[COMPARISON_EXTRA]["inventory"]["netns"] == "web1-ns"


def test_inventory_spec() -> None:
    assert split_inventory_spec("inv.json") == (None, "inv.json")
    assert split_inventory_spec("198.18.0.2=inv.json") == ("198.18.0.2", "inv.json")
    assert split_inventory_spec("[2001:db8::2]=a=b.json") == ("2001:db8::2", "a=b.json")
    assert split_inventory_spec("x=inv.json") == (None, "x=inv.json")  # a file named so


# ------------------------------------------------------------------------------------
# the finding


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_unexpected_port_is_a_finding(lang: str) -> None:
    run = audited(lang)
    web = run.host(WEB)
    assert web is not None
    (f,) = [f for f in web.findings if f.check == "compare.unexpected"]
    assert (f.port, f.protocol) == (8888, Protocol.TCP)
    assert f.severity.value == "medium" and f.extra["category"] == "exposure"
    for lg in ("en", "ja"):
        t = f.extra["i18n"][lg]
        assert t["title"] and t["risk"] and t["severity_reason"] and t["remediation"]
        assert "web1" in t["title"] and "8888/tcp" in t["title"]
    assert f.title == f.extra["i18n"][lang]["title"]
    assert "「中」" in f.extra["i18n"]["ja"]["severity_reason"]
    assert "iptables -t nat" in f.remediation
    assert "no socket of web1 listens on 198.18.0.2 8888/tcp" in f.evidence
    assert "127.0.0.1:8888" in f.evidence  # the loopback twin, and the hint about it
    assert "forwarded" in f.evidence
    # the other classes are not findings
    assert all(not fd.check.startswith("compare.") or fd.port == 8888 for fd in web.findings)
    # the same port is still rated as an exposure
    assert any(fd.check.startswith("exposure.") and fd.port == 8888 for fd in web.findings)


def test_without_inventory_nothing_changes() -> None:
    plain = audited(sources=[])
    assert not any(f.check.startswith("compare.") for _, f in plain.findings)
    assert "comparisons" not in plain.extra["audit"]
    for fmt in ("html", "markdown"):
        text = render(fmt, plain)
        assert LABELS["en"]["cmp_title"] not in text and "compare-" not in text
    assert all(h["comparison"] is None for h in audit_report(plain)["hosts"])
    # checks may run again on a stored run: the finding comes back from the host's extra
    again = run_checks(audited(), AuditConfig())
    assert sum(f.check == "compare.unexpected" for _, f in again.findings) == 1
    # and the check can be disabled like any other
    off = run_checks(audited(), AuditConfig(disable=frozenset({"compare"})))
    assert not any(f.check == "compare.unexpected" for _, f in off.findings)


# ------------------------------------------------------------------------------------
# the report sections


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_html_section(lang: str) -> None:
    run = audited(lang)
    L = LABELS[lang]
    doc = parse(render("html", run))
    (sec,) = doc.all("section", id=f"compare-{WEB}")
    assert not doc.all("section", id=f"compare-{OTHER}")
    assert sec.all("h3")[0].content() == L["cmp_title"]
    assert "web1" in sec.all("p", **{"class": "intro"})[0].content()
    (table,) = sec.all("table", **{"class": "compare"})
    assert [th.content() for th in table.all("th")] == [
        L[k] for k in ("cmp_class", "port", "cmp_inside", "cmp_outside", "cmp_service",
                       "level", "cmp_why")]
    rows = table.all("tbody")[0].all("tr")
    got = {(int(r.attrs["data-port"].split("/")[0]), r.attrs["data-class"]) for r in rows}
    assert got == EXPECTED and len(rows) == len(EXPECTED)
    for r in rows:  # the class label in the report's language
        label = class_text(Exposure(r.attrs["data-class"]), lang).label
        assert r.all("span", **{"class": "xc"})[0].content() == label
    # the unexpected row links to its finding, which exists, and has its level
    (unexpected,) = [r for r in rows if r.attrs["data-class"] == "unexpected"]
    (badge,) = unexpected.all("span", **{"class": "badge"})
    assert badge.attrs["class"] == "badge bg-medium"
    (link,) = unexpected.all("a")
    anchors = {a.attrs["id"] for a in doc.all("article")}
    assert link.attrs["href"].removeprefix("#") in anchors
    (art,) = [a for a in doc.all("article") if a.attrs["id"] == link.attrs["href"][1:]]
    assert art.attrs["data-check"] == "compare.unexpected"
    # exposed row: listener with its process, outside state, a risk level
    (ssh,) = [r for r in rows if r.attrs["data-class"] == "exposed"]
    assert "sshd[812]" in ssh.content() and "open (syn-ack)" in ssh.content()
    assert ssh.all("span", **{"class": "badge"})
    # shielded/local-only rows are marked informational; the advice per class present
    shielded = next(r for r in rows if r.attrs["data-class"] == "shielded")
    assert "info" in shielded.attrs["class"].split()
    dds = sec.all("dl", **{"class": "classes"})[0].all("dd")
    assert [d.attrs["data-class"] for d in dds] == ["unexpected", "exposed", "shielded",
                                                    "local-only"]  # in order of attention
    for d in dds:
        assert class_text(Exposure(d.attrs["data-class"]), lang).advice in d.content()
    assert L["cmp_overview_value"].format(n=1) in doc.all("section", id="overview")[0].content()


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_markdown_section(lang: str) -> None:
    L = LABELS[lang]
    md = render("markdown", audited(lang))
    head = f"### {L['cmp_title']}"
    assert md.count(head) == 1
    section = md.split(head, 1)[1].split("\n### ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("| ")]
    assert lines[0] == "| " + " | ".join(L[k] for k in (
        "cmp_class", "port", "cmp_inside", "cmp_outside", "cmp_service", "level",
        "cmp_why")) + " |"
    body = {(ln.split(" | ")[1], ln.split(" | ")[0].removeprefix("| ").strip("*")): ln
            for ln in lines[1:]}
    assert set(body) == {(f"{p}/tcp", class_text(Exposure(c), lang).label) for p, c in EXPECTED}
    ssh = body[("22/tcp", class_text(Exposure.EXPOSED, lang).label)]
    assert "`0.0.0.0` sshd[812] (root)" in ssh
    assert f"#### {L['cmp_classes']}" in section
    assert class_text(Exposure.UNEXPECTED, lang).advice in section


def test_json_report_carries_classes_and_advice() -> None:
    doc = json.loads(render("json", audited("ja")))
    (web,) = [h for h in doc["hosts"] if h["address"] == WEB]
    cmp = web["extra"]["comparison"]
    assert cmp["kind"] == "portscope-comparison" and cmp["source"] == "--inventory web1.json"
    assert {(e["port"], e["class"]) for e in cmp["entries"]} == EXPECTED
    by_port = {e["port"]: e for e in cmp["entries"] if e["address"]}
    assert by_port[8888]["label"] == "想定外"
    assert by_port[8888]["advice"] == class_text(Exposure.UNEXPECTED, "ja").advice
    assert by_port[8888]["explanation"] and by_port[8888]["hint_texts"]
    assert [f["check"] for f in web["findings"]].count("compare.unexpected") == 1
    # it reads back: the saved run still carries its comparison
    back = ScanRun.from_dict(doc)
    c = host_comparison(next(h for h in back.hosts if h.address == WEB))
    assert c is not None and {(e.port, e.exposure.value) for e in c.entries} == EXPECTED


def test_finding_formats_carry_the_unexpected_finding() -> None:
    run = audited()
    rows = list(csv.DictReader(io.StringIO(render("csv", run))))
    (row,) = [r for r in rows if r["check"] == "compare.unexpected"]
    assert (row["host"], row["port"], row["severity"]) == (WEB, "8888", "medium")
    assert row["severity_reason"] and row["remediation"]
    dojo = json.loads(render("defectdojo", run))
    (item,) = [i for i in dojo["findings"] if i["vuln_id_from_tool"] == "compare.unexpected"]
    assert item["severity"] == "Medium" and item["endpoints"] == [{"host": WEB, "port": 8888}]
    assert item["severity_justification"] and item["mitigation"]
    sarif = json.loads(render("sarif", run))
    results = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == "compare.unexpected"]
    assert len(results) == 1 and results[0]["level"] == "warning"
    assert (results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            == f"tcp://{WEB}:8888")


# ------------------------------------------------------------------------------------
# the command line, on saved files


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_audit_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scan_file = tmp_path / "scan.json"
    scan_file.write_text(json.dumps(scan(other_host()).to_dict()))
    inv_file = tmp_path / "web1.json"
    inv_file.write_text(json.dumps(inventory().to_dict()))
    out = tmp_path / "out.json"
    code, stdout, err = run_cli(["audit", "--input", str(scan_file), "--inventory",
                                 str(inv_file), "--report", str(out), "-q"], capsys)
    assert code == 0, err
    assert f"{WEB} inside vs outside (--inventory {inv_file}): " in stdout
    assert "1 unexpected" in stdout
    doc = json.loads(out.read_text())
    assert any(f["check"] == "compare.unexpected" for h in doc["hosts"] for f in h["findings"])
    # --fail-on medium trips on the unexpected port
    code, _, _ = run_cli(["audit", "--input", str(scan_file), "--inventory", str(inv_file),
                          "--fail-on", "medium", "-q", "--no-relay-test"], capsys)
    assert code == 1
    # an inventory of another machine with two scanned hosts: say which, in one line
    stranger = tmp_path / "nat.json"
    stranger.write_text(json.dumps(inventory("nat-box", ("203.0.113.9",)).to_dict()))
    code, _, err = run_cli(["audit", "--input", str(scan_file), "--inventory", str(stranger),
                            "-q"], capsys)
    assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "ADDR=FILE" in err
    code, stdout, err = run_cli(["audit", "--input", str(scan_file), "--inventory",
                                 f"{OTHER}={stranger}", "-q"], capsys)
    assert code == 0, err
    assert f"{OTHER} inside vs outside" in stdout
    code, _, err = run_cli(["audit", "--input", str(scan_file), "--address", WEB, "-q"], capsys)
    assert code != 0 and "--address needs" in err
    code, _, err = run_cli(["audit", "--input", str(scan_file), "--inventory", str(inv_file),
                            "--inventory", str(stranger), "--address", WEB, "-q"], capsys)
    assert code != 0 and "--inventory ADDR=FILE" in err
    code, _, err = run_cli(["audit", "--input", str(scan_file), "--inventory",
                            str(tmp_path / "missing.json"), "-q"], capsys)
    assert code != 0 and "missing.json" in err and "Traceback" not in err
