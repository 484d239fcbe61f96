"""Issue 6, "the comparison goes into the audit report": ``portscope audit ADDR4 ADDR6
--netns NS`` against the issue-6 lab host (listeners on all addresses, loopback only, one
address; a DROPped and a REJECTed listening port; DNAT port forwards) puts every port of
both scanned addresses in the right class in the HTML, Markdown and JSON reports, and the
forwarded ports are ``compare.unexpected`` findings in every finding format."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _local_target import build_local_target

from portscope.local.compare import host_comparison
from portscope.model import ScanRun
from portscope.testing.lab import LabHost

PORTS = "22,80,1433,2222,3000,3306,5432,8080,8443,8888,9000"

# (scanned address, port): class. Each address's section has its own ports plus the
# sockets no scanned address reaches (loopback binds: local-only; 20000 and UDP 53 were
# not scanned).
Key = tuple[str | None, int]
COMMON: dict[Key, str] = {(None, 5432): "local-only", (None, 9000): "local-only"}
EXPECTED: dict[str | None, dict[Key, str]] = {
    "A4": {("A4", 22): "exposed", ("A4", 80): "exposed", ("A4", 3000): "exposed",
           ("A4", 8080): "exposed", ("A4", 3306): "shielded",
           ("A4", 1433): "closed-but-listed", ("A4", 8888): "unexpected",
           ("A4", 2222): "unexpected", ("A4", 20000): "not-scanned",
           ("A4", 53): "not-scanned", **COMMON},
    "A6": {("A6", 22): "exposed", ("A6", 80): "exposed", ("A6", 3000): "exposed",
           ("A6", 8443): "exposed", ("A6", 3306): "shielded",
           ("A6", 1433): "closed-but-listed", ("A6", 8888): "unexpected",
           ("A6", 53): "not-scanned", **COMMON},
}


@pytest.fixture(scope="module")
def target(module_lab_host: LabHost) -> LabHost:
    return build_local_target(module_lab_host)


class Rows(HTMLParser):
    """(section address, data-address, data-port, data-class) of the comparison rows."""

    def __init__(self) -> None:
        super().__init__()
        self.section: str | None = None
        self.rows: set[tuple[str, str | None, str, str]] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and "compare" in (a.get("class") or "").split():
            self.section = a.get("data-address")
        if tag == "tr" and "data-class" in a and self.section:
            self.rows.add((self.section, a.get("data-address"), a["data-port"] or "",
                           a["data-class"] or ""))


def test_audit_netns_carries_the_comparison(target: LabHost, tmp_path: Path) -> None:
    a4, a6 = target.addr4, target.addr6
    names: dict[str | None, str | None] = {a4: "A4", a6: "A6", None: None}
    html, html_en = tmp_path / "audit.html", tmp_path / "audit-en.html"
    out_json, md = tmp_path / "audit.json", tmp_path / "audit.md"
    sarif, dojo, csv_file = tmp_path / "a.sarif", tmp_path / "a.dojo.json", tmp_path / "a.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "portscope", "audit", a4, a6, "--netns", target.name,
         "-p", PORTS, "-T5", "--max-retries", "1", "--lang", "ja", "--no-relay-test",
         "--report", str(html), "--report", str(out_json), "--report", str(md),
         "--report", str(sarif), "--report", str(dojo), "--report", str(csv_file)],
        capture_output=True, text=True, timeout=600)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert f"{a4} inside vs outside (--netns {target.name}): " in proc.stdout

    # JSON: each scanned address has its comparison, every port in its class
    run = ScanRun.from_dict(json.loads(out_json.read_text()))
    for host in run.hosts:
        c = host_comparison(host)
        assert c is not None, host.address
        assert f"network namespace {target.name}" in c.hostname
        got = {(names[e.address], e.port): e.exposure.value
               for e in c.entries}
        assert got == EXPECTED[names[host.address]], host.address
        entries = host.extra["comparison"]["entries"]
        assert all(e["label"] and e["advice"] and e["explanation"] for e in entries)
        # the forwards are findings, at medium, with the reason and the remedy
        unexpected = sorted(f.port or 0 for f in host.findings
                            if f.check == "compare.unexpected")
        assert unexpected == sorted(p for (_, p), cls in EXPECTED[names[host.address]].items()
                                    if cls == "unexpected")
        for f in host.findings:
            if f.check == "compare.unexpected":
                assert f.severity.value == "medium" and f.severity_reason and f.remediation
                assert "「中」" in f.severity_reason  # --lang ja
        # a4:8888 goes to 127.0.0.1:9000: no socket on 8888 at all
    hint_of = {(h.address, f.port): f.evidence for h in run.hosts for f in h.findings
               if f.check == "compare.unexpected"}
    assert "no socket of" in hint_of[(a4, 8888)]

    # HTML: a section per scanned address, the same classes, in Japanese
    parser = Rows()
    text = html.read_text()
    parser.feed(text)
    for addr, label in ((a4, "A4"), (a6, "A6")):
        rows = {(names.get(r[1]), int(r[2].split("/")[0])): r[3] for r in parser.rows
                if r[0] == addr}
        assert rows == EXPECTED[label], addr
    assert "内側と外側の比較" in text and "想定外" in text and "遮断" in text

    # Markdown: the section per host
    md_text = md.read_text()
    assert md_text.count("### 内側と外側の比較") == 2

    # every finding format carries the unexpected ports
    n = sum(1 for h in run.hosts for f in h.findings if f.check == "compare.unexpected")
    assert n == 3
    results = json.loads(sarif.read_text())["runs"][0]["results"]
    assert sum(r["ruleId"] == "compare.unexpected" for r in results) == n
    dojo_findings = json.loads(dojo.read_text())["findings"]
    assert sum(f["vuln_id_from_tool"] == "compare.unexpected" for f in dojo_findings) == n
    with csv_file.open(newline="") as fh:
        assert sum(r["check"] == "compare.unexpected" for r in csv.DictReader(fh)) == n

    # the same run in English, for the screenshot and the reader
    again = subprocess.run(
        [sys.executable, "-m", "portscope", "audit", "--input", str(out_json),
         "--netns", target.name, "--lang", "en", "--report", str(html_en), "-q"],
        capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    en = html_en.read_text()
    assert "Inside vs outside" in en and "unexpected" in en
