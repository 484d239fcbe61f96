"""``defectdojo``: DefectDojo's "Generic Findings Import" JSON (``{"findings": [...]}``
with only the attributes its parser allows; endpoints as host/port/protocol)."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from portscope import __version__
from portscope.model import ScanRun
from portscope.report._common import json_dumps, sorted_findings
from portscope.report.audit_view import report_lang, text
from portscope.report.base import Output

DOJO_SEVERITY = {"critical": "Critical", "high": "High", "medium": "Medium", "low": "Low",
                 "info": "Info"}
_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")


def dojo_document(run: ScanRun, lang: str | None = None) -> dict[str, Any]:
    lang = lang or report_lang(run)
    findings = []
    date = (run.finished or run.started).date().isoformat()
    for h in run.hosts:
        svc_of = {(p.protocol, p.port): p.service for p in h.ports}
        for f in sorted_findings(h.findings):
            svc = svc_of.get((f.protocol, f.port)) \
                if f.port is not None and f.protocol is not None else None
            endpoint: dict[str, Any] = {"host": h.address}
            if f.port is not None:
                endpoint["port"] = f.port
            if svc is not None and _SCHEME.match(svc.name.lower()):
                endpoint["protocol"] = svc.name.lower()
            description = text(f, "risk", lang)
            if f.evidence:
                description += "\n\nEvidence:\n" + f.evidence
            item: dict[str, Any] = {
                "title": f"{text(f, 'title', lang)} ({h.address})",
                "severity": DOJO_SEVERITY[f.severity.value],
                "description": description or text(f, "title", lang),
                "mitigation": text(f, "remediation", lang),
                "impact": text(f, "risk", lang),
                "severity_justification": text(f, "severity_reason", lang),
                "references": "\n".join(f.references),
                "date": date,
                "active": True,
                "verified": False,
                "static_finding": False,
                "dynamic_finding": True,
                "unique_id_from_tool": f.id,
                "vuln_id_from_tool": f.check,
                "endpoints": [endpoint],
                "tags": ["portscope", str(f.extra.get("category") or "audit")],
            }
            if svc is not None:
                item["service"] = svc.name
                if svc.product:
                    item["component_name"] = svc.product
                if svc.version:
                    item["component_version"] = svc.version
            cve = next((r for r in f.references if _CVE.match(r)), None)
            if cve:
                item["cve"] = cve
            findings.append(item)
    return {"name": "portscope audit", "type": "portscope audit", "version": __version__,
            "description": f"portscope {__version__} security check of {', '.join(run.targets)}"
                           f" (run {run.id})", "dynamic_tool": True, "static_tool": False,
            "findings": findings}


class DefectDojoOutput(Output):
    name: ClassVar[str] = "defectdojo"
    lang: ClassVar[str | None] = None

    def finish(self, run: ScanRun) -> None:
        self.write(json_dumps(dojo_document(run, self.lang), ascii_only=not self.unicode_ok,
                              indent=2) + "\n")
