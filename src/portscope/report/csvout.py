"""``csv``: one row per finding (spreadsheets, ticketing imports), texts in the run's audit
language, UTF-8 with a header row."""

from __future__ import annotations

import csv
import io
from typing import ClassVar

from portscope.model import ScanRun
from portscope.report._common import sorted_findings
from portscope.report.audit_view import report_lang, text
from portscope.report.base import Output

COLUMNS = ("host", "hostnames", "port", "protocol", "service", "severity", "check", "title",
           "severity_reason", "risk", "remediation", "confidence", "evidence", "references",
           "overridden", "default_severity", "kb_id", "finding_id")


def _safe(value: str) -> str:
    """Keep spreadsheet programs from running a cell as a formula (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def render_csv(run: ScanRun, lang: str | None = None) -> str:
    lang = lang or report_lang(run)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for h in run.hosts:
        svc_of = {(p.protocol, p.port): p.service for p in h.ports}
        for f in sorted_findings(h.findings):
            svc = svc_of.get((f.protocol, f.port)) \
                if f.port is not None and f.protocol is not None else None
            w.writerow([_safe(str(v)) for v in (
                h.address, " ".join(h.hostnames), f.port if f.port is not None else "",
                f.protocol.value if f.protocol else "", svc.name if svc else "",
                f.severity.value, f.check, text(f, "title", lang),
                text(f, "severity_reason", lang), text(f, "risk", lang),
                text(f, "remediation", lang), f.confidence, f.evidence,
                " ".join(f.references), "yes" if f.extra.get("overridden") else "no",
                f.extra.get("default_severity") or f.severity.value,
                f.extra.get("kb_id") or "", f.id)])
    return buf.getvalue()


class CSVOutput(Output):
    name: ClassVar[str] = "csv"
    lang: ClassVar[str | None] = None

    def finish(self, run: ScanRun) -> None:
        self.write(render_csv(run, self.lang))
