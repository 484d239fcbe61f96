"""``markdown``: the security-check report as Markdown (GitHub-flavoured tables): summary,
riskiest exposures, per host the port table and the findings with their evidence."""

from __future__ import annotations

from typing import Any, ClassVar

from portscope.model import ScanRun
from portscope.report.audit_view import audit_report
from portscope.report.base import Output


def _cell(text: Any) -> str:
    s = str(text if text is not None else "")
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", "<br>")


def _fence(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}text\n{text}\n{fence}"


def _comparison(c: dict[str, Any], L: dict[str, str]) -> list[str]:
    """The host's "inside vs outside" section."""
    out = ["", f"### {L['cmp_title']}", "", c["intro"], "",
           " · ".join(f"**{k['label']}** {k['n']}" for k in c["counts"]) or L["cmp_empty"]]
    if c["rows"]:
        out += ["", "| " + " | ".join(L[k] for k in ("cmp_class", "port", "cmp_inside",
                                                      "cmp_outside", "cmp_service", "level",
                                                      "cmp_why")) + " |",
                "|---|---:|---|---|---|---|---|"]
        for row in c["rows"]:
            inside = "<br>".join(f"`{s['address']}`" + (f" {s['process']}" if s["process"]
                                                         else "") for s in row["inside"])
            why = "<br>".join([row["why"], *(f"▸ {t}" for t in row["hints"])])
            if row["finding_id"]:
                why += f"<br>({L['cmp_finding']})"
            out.append("| " + " | ".join(_cell(v) for v in (
                f"**{row['label']}**" if not row["informational"] else row["label"],
                row["where"], inside or "—", row["outside"] or "—", row["service"] or "—",
                row["level"] or "—")) + " | " + _cell(why) + " |")
    if c["classes"]:
        out += ["", f"#### {L['cmp_classes']}", ""]
        for k in c["classes"]:
            info = f" *({L['cmp_informational']})*" if k["informational"] else ""
            out.append(f"- **{k['label']}**: {_cell(k['meaning'])}{info}<br>→ "
                       f"{_cell(k['advice'])}")
    notes = [*c["notes"], *([c["also"]] if c["also"] else [])]
    if notes:
        out += ["", f"**{L['cmp_notes']}**", ""] + [f"- {_cell(n)}" for n in notes]
    return out


def render_markdown(run: ScanRun, lang: str | None = None) -> str:
    r = audit_report(run, lang)
    L = r["labels"]
    out: list[str] = [f"# {L['doc_title']}", "", f"> {L['confidential']}", ""]
    if not r["complete"]:
        out += [f"**{L['incomplete']}**", ""]
    out += [f"## {L['summary']}", ""]
    overall = r["worst_level"] if r["worst"] and r["worst"] != "info" else "—"
    out += [f"**{L['overall']}: {overall}** — {L['findings_total'].format(n=r['total'])}", ""]
    out += ["| " + " | ".join(r["severity_labels"][s] for s in r["severities"]) + " |",
            "|" + "---:|" * len(r["severities"]),
            "| " + " | ".join(str(r["counts"][s]) for s in r["severities"]) + " |", ""]
    out += [f"{L['hosts']}: {L['hosts_value'].format(scanned=r['hosts_scanned'], up=r['hosts_up'])}"
            f" · {L['open_ports']}: {r['open_ports']}", ""]
    out += [f"### {L['riskiest']}", ""]
    if r["top"]:
        out += [f"| {L['level']} | {L['host']} | {L['where']} | {L['finding']} |",
                "|---|---|---|---|"]
        out += [f"| {f['level']} | {f['host']} | {f['where'] or '—'} | {_cell(f['title'])} |"
                for f in r["top"]]
    else:
        out.append(L["no_findings"])
    out += ["", f"## {L['overview']}", ""]
    for label, value in ((L["targets"], r["targets"]), (L["ports"], r["ports_spec"] or "—"),
                         (L["scan_types"], r["scan_types"]),
                         (L["performed"], f"{r['started']} – {r['finished']} "
                                          f"({L['duration']} {r['duration']})"),
                         (L["vantage"], r["vantage"]), (L["tool"], f"portscope {r['version']}")):
        out.append(f"- **{label}**: {_cell(value)}")
    if r["policy"]:
        out.append(f"- **{L['policy_title']}**: {_cell(r['policy'])}")
    if r["compared"]:
        out.append(f"- **{L['cmp_overview']}**: "
                   f"{L['cmp_overview_value'].format(n=r['compared'])}")
    for h in r["hosts"]:
        names = f" ({', '.join(h['hostnames'])})" if h["hostnames"] else ""
        out += ["", f"## {L['host']} {h['address']}{names}", ""]
        chips = ", ".join(f"{r['severity_labels'][s]} {h['counts'][s]}" for s in r["severities"]
                          if h["counts"][s])
        out.append(f"{chips or L['no_findings']} · {L['open_ports']}: {h['open_ports']}")
        if h["rows"]:
            out += ["", "| " + " | ".join(L[k] for k in ("port", "protocol", "function", "risk",
                                                          "state", "level", "reasoning",
                                                          "advice")) + " |",
                    "|---:|---|---|---|---|---|---|---|"]
            for row in h["rows"]:
                risk = row["risk"]
                if row["others"]:
                    risk += "<br>" + "<br>".join(f"▸ {o['title']} ({o['level']})"
                                                 for o in row["others"])
                out.append("| " + " | ".join(_cell(v) for v in (
                    row["port"], f"{row['name'] or row['service']} ({row['protocol']})",
                    row["function"], risk, row["state"], f"**{row['level']}**",
                    row["reasoning"], row["advice"])) + " |")
        if h["unconfirmed"]:
            out += ["", f"{L['unconfirmed']}: {', '.join(h['unconfirmed'])}"]
        if h["comparison"]:
            out += _comparison(h["comparison"], L)
        if h["findings"]:
            out += ["", f"### {L['details']}"]
            for f in h["findings"]:
                out += ["", f"#### [{f['level']}] {f['title']}", "",
                        f"`{f['where'] or L['host_level']}` · `{f['check']}` · "
                        f"{L['confidence']} {f['confidence']}%", ""]
                if f["risk"]:
                    out.append(f"- **{L['risk']}**: {_cell(f['risk'])}")
                reason = f["reason"] + (f" *({L['overridden']})*" if f["overridden"] else "")
                out.append(f"- **{L['why']}**: {_cell(reason)}")
                out.append(f"- **{L['remediation']}**: {_cell(f['remediation'])}")
                if f["confidence_note"]:
                    out.append(f"- **{L['confidence']}**: {_cell(f['confidence_note'])}")
                if f["references"]:
                    refs = ", ".join(f"[{label}]({url})" if url else label
                                     for label, url in f["references"])
                    out.append(f"- **{L['references']}**: {refs}")
                if f["evidence"]:
                    out += ["", f"**{L['evidence']}**", "", _fence(f["evidence"])]
    out += ["", f"## {L['appendix']}", "", f"### {L['levels_title']}", ""]
    out += [f"- **{lv['level']}**: {lv['definition']}" for lv in r["levels"]]
    out += ["", f"### {L['overrides_title']}", ""]
    if r["overrides"]:
        out += [f"- `{o['scope']}` → **{r['severity_labels'][o['severity']]}**: "
                f"{_cell(o['reason'])} ({o['source']})" for o in r["overrides"]]
    else:
        out.append(L["no_overrides"])
    out += ["", f"### {L['method_title']}", "", r["method"], "", f"*{r['generated']}*", ""]
    return "\n".join(out)


class MarkdownOutput(Output):
    name: ClassVar[str] = "markdown"
    lang: ClassVar[str | None] = None

    def finish(self, run: ScanRun) -> None:
        self.write(render_markdown(run, self.lang))
