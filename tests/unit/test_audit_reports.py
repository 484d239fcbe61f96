"""The security-check report formats: the HTML's structure (parsed), Markdown, CSV,
DefectDojo Generic Findings Import and SARIF 2.1.0."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser

import pytest
from audit_sample import audited

from portscope.model import Finding, Severity
from portscope.report import render
from portscope.report.audit_view import LABELS, audit_report, reference_link
from portscope.report.html import render_html

VOID = {"meta", "br", "col", "link", "img", "hr", "input"}
DOJO_ALLOWED = {
    "title", "severity", "description", "date", "cwe", "cve", "epss_score", "epss_percentile",
    "cvssv3", "cvssv3_score", "cvssv4", "cvssv4_score", "mitigation", "impact",
    "steps_to_reproduce", "severity_justification", "references", "active", "verified",
    "false_p", "out_of_scope", "risk_accepted", "under_review", "is_mitigated", "thread_id",
    "mitigated", "numerical_severity", "param", "payload", "line", "file_path",
    "component_name", "component_version", "static_finding", "dynamic_finding",
    "scanner_confidence", "unique_id_from_tool", "vuln_id_from_tool", "sast_source_object",
    "sast_sink_object", "sast_source_line", "sast_source_file_path", "nb_occurences",
    "publish_date", "service", "planned_remediation_date", "planned_remediation_version",
    "effort_for_fixing", "tags", "kev_date", "known_exploited", "ransomware_used",
    "fix_available", "fix_version", "endpoints", "files", "vulnerability_ids",
}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def all(self, tag: str, **attrs: str) -> list[Node]:
        out = []
        for c in self.children:
            if c.tag == tag and all(attrs[k] in c.attrs.get(k, "").split() if k == "class"
                                    else c.attrs.get(k) == v for k, v in attrs.items()):
                out.append(c)
            out.extend(c.all(tag, **attrs))
        return out

    def content(self) -> str:
        return "".join(self.text) + "".join(c.content() for c in self.children)


class TreeBuilder(HTMLParser):
    """A strict little DOM: fails on mismatched tags, so the document must be well formed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].text.append(data)


def parse(html: str) -> Node:
    b = TreeBuilder()
    b.feed(html)
    b.close()
    assert b.stack == [b.root], "unclosed elements"
    return b.root


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_html_structure(lang: str) -> None:
    run = audited(lang)
    html = render_html(run)
    assert html.startswith("<!DOCTYPE html>")
    doc = parse(html)
    L = LABELS[lang]
    (root,) = doc.all("html")
    assert root.attrs["lang"] == lang
    # self-contained: no scripts, no external stylesheets/images/fonts
    assert not doc.all("script") and not doc.all("link") and not doc.all("img")
    assert "@import" not in html and "url(" not in html
    assert "@media print" in html and "@page" in html
    assert doc.all("h1")[0].content() == L["doc_title"]
    # summary: one card per level, counts agree with the findings
    findings = [f for _, f in run.findings]
    cards = doc.all("div", **{"class": "card"})
    assert [c.attrs["data-severity"] for c in cards] == ["critical", "high", "medium", "low",
                                                         "info"]
    for c in cards:
        n = int(c.all("div", **{"class": "n"})[0].content())
        assert n == sum(1 for f in findings if f.severity.value == c.attrs["data-severity"])
    # riskiest exposures: worst first, each linking to its finding
    (top,) = doc.all("table", id="riskiest")
    rows = top.all("tr")[1:]
    assert rows and rows[0].attrs["class"] == "sev-critical"
    ranks = [Severity(r.attrs["class"].removeprefix("sev-")).rank for r in rows]
    assert ranks == sorted(ranks, reverse=True)
    anchors = {a.attrs["id"] for a in doc.all("article")}
    for r in rows:
        (a,) = r.all("a")
        assert a.attrs["href"].removeprefix("#") in anchors
    # per host: the ISP table with its eight columns, one row per open port
    for host in run.hosts:
        (sec,) = doc.all("section", id=f"host-{host.address}")
        tables = sec.all("table", **{"class": "ports"})
        if not host.open_ports:
            assert not tables
            continue
        (table,) = tables
        heads = [th.content() for th in table.all("th")]
        assert heads == [L[k] for k in ("port", "protocol", "function", "risk", "state",
                                        "level", "reasoning", "advice")]
        body = table.all("tbody")[0].all("tr")
        assert sorted(r.attrs["data-port"] for r in body) == sorted(
            f"{p.port}/{p.protocol.value}" for p in host.open_ports)
        assert len(sec.all("article")) == len(host.findings)
    # the relay finding shows the dialogue
    (relay,) = [a for a in doc.all("article") if a.attrs["data-check"] == "smtp.open-relay"]
    assert "RCPT TO:&lt;" not in relay.content()
    assert "RCPT TO:<relaytest@example.com>" in relay.all("pre")[0].content()
    assert L["appendix"] in html and L["levels_title"] in html


def test_html_escapes_hostile_banners() -> None:
    run = audited()
    host = run.hosts[0]
    evil = Finding("e1", "exposure.unknown", Severity.INFO, "r", "<script>alert(1)</script>",
                   evidence="<img src=x onerror=alert(1)>\x1b[31m")
    run = replace(run, hosts=(replace(host, findings=(*host.findings, evil)), *run.hosts[1:]))
    html = render_html(run)
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html and "\x1b" not in html
    parse(html)


def test_html_shows_overrides_and_interruption() -> None:
    from portscope.checks.config import parse_config

    config = parse_config({"services": {"ftp": {"severity": "high", "reason": "web root"}}},
                          "audit.toml")
    run = replace(audited(config=config), complete=False)
    html = render_html(run)
    assert LABELS["en"]["incomplete"] in html
    assert "services.ftp" in html and "web root" in html
    assert LABELS["en"]["overridden"] in html


def test_report_language_follows_the_run_or_the_argument() -> None:
    run = audited("ja")
    assert audit_report(run)["lang"] == "ja"
    en = audit_report(run, "en")
    assert en["title"] == "Security check report"
    assert any("reachable" in f["title"] for f in en["top"])


def test_markdown() -> None:
    md = render("markdown", audited("ja"))
    assert md.startswith("# セキュリティ診断報告書")
    header = ("| ポート | プロトコル | 機能 | 想定される危険 | このサーバの状態 | 危険度 | "
              "判定理由 | 対策 |")
    assert header in md
    assert "```text\nAccepted relay tests:" in md
    assert "S: 220 mail.example.test ESMTP Postfix" in md
    assert "## ホスト 198.18.0.2 (mail.example.test)" in md


def test_csv_one_row_per_finding() -> None:
    run = audited()
    rows = list(csv.DictReader(io.StringIO(render("csv", run))))
    assert len(rows) == len(run.findings)
    for host in {r["host"] for r in rows}:
        ranks = [Severity(r["severity"]).rank for r in rows if r["host"] == host]
        assert ranks == sorted(ranks, reverse=True)
    relay = next(r for r in rows if r["check"] == "smtp.open-relay")
    assert relay["port"] == "25" and relay["service"] == "smtp" and "RCPT TO" in relay["evidence"]


def test_csv_neutralises_formulas() -> None:
    run = audited()
    host = run.hosts[0]
    f = Finding("e1", "exposure.unknown", Severity.INFO, "r", "=HYPERLINK(\"x\")")
    run = replace(run, hosts=(replace(host, findings=(f,)),))
    rows = list(csv.DictReader(io.StringIO(render("csv", run))))
    assert rows[0]["title"].startswith("'=")


def test_defectdojo_generic_findings() -> None:
    run = audited()
    doc = json.loads(render("defectdojo", run))
    assert len(doc["findings"]) == len(run.findings)
    for item in doc["findings"]:
        assert {"title", "severity", "description"} <= set(item)
        assert set(item) <= DOJO_ALLOWED
        assert item["severity"] in {"Critical", "High", "Medium", "Low", "Info"}
        assert item["endpoints"][0]["host"].startswith("198.18.0.")
    relay = next(i for i in doc["findings"] if i["vuln_id_from_tool"] == "smtp.open-relay")
    assert relay["endpoints"] == [{"host": "198.18.0.2", "port": 25, "protocol": "smtp"}]
    assert relay["cve"] == "CVE-1999-0512" and "RCPT TO" in relay["description"]


def test_sarif() -> None:
    run = audited()
    doc = json.loads(render("sarif", run))
    assert doc["version"] == "2.1.0" and "sarif-2.1.0" in doc["$schema"]
    (r,) = doc["runs"]
    rules = r["tool"]["driver"]["rules"]
    assert len({x["id"] for x in rules}) == len(rules)
    assert len(r["results"]) == len(run.findings)
    for res in r["results"]:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["level"] in {"error", "warning", "note"}
        uri = res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert uri.startswith(("tcp://", "udp://", "ip://"))
        assert float(res["properties"]["security-severity"]) >= 0
    crit = next(x for x in r["results"] if x["ruleId"] == "malware.blaster-chain")
    assert crit["level"] == "error" and crit["properties"]["security-severity"] == "9.5"


def test_reference_links() -> None:
    assert reference_link("CVE-2017-0144")[1] == "https://nvd.nist.gov/vuln/detail/CVE-2017-0144"
    assert reference_link("MS03-026")[1].endswith("/2003/ms03-026")  # type: ignore[union-attr]
    assert reference_link("RFC 8314")[1] == "https://www.rfc-editor.org/rfc/rfc8314"
    assert reference_link("CISA BOD 23-02") == ("CISA BOD 23-02", None)
